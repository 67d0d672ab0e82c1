//! The check plan (DESIGN §2): which EWS operations run, in what order, and which product
//! features each one decides. The connectivity check runs first; the feature checks then run
//! concurrently over the same connection pool.

use serde::Serialize;

/// The four features an integration such as Salesforce Inbox needs from EWS, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    EmailTracking,
    SendLater,
    InsertAvailability,
    CalendarSync,
}

impl Feature {
    pub const ALL: [Feature; 4] = [
        Feature::EmailTracking,
        Feature::SendLater,
        Feature::InsertAvailability,
        Feature::CalendarSync,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Feature::EmailTracking => "email_tracking",
            Feature::SendLater => "send_later",
            Feature::InsertAvailability => "insert_availability",
            Feature::CalendarSync => "calendar_sync",
        }
    }
}

/// What a check sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOp {
    GetFolder(&'static str),
    FindItemIndexed(&'static str),
    FindItemCalendarView,
    GetUserAvailability,
    SyncFolderItems(&'static str),
    /// CreateItem SaveOnly into Drafts, then DeleteItem HardDelete of what it made.
    WriteDraft {
        deferred_send: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub id: &'static str,
    pub op: CheckOp,
    pub features: &'static [Feature],
}

pub const CONNECTIVITY: Check = Check {
    id: "ews.get_folder.msgfolderroot",
    op: CheckOp::GetFolder("msgfolderroot"),
    features: &[],
};

/// Read-only feature checks (the default).
pub const READ_CHECKS: &[Check] = &[
    Check {
        id: "ews.get_folder.sentitems",
        op: CheckOp::GetFolder("sentitems"),
        features: &[Feature::EmailTracking],
    },
    Check {
        id: "ews.find_item.inbox",
        op: CheckOp::FindItemIndexed("inbox"),
        features: &[Feature::EmailTracking],
    },
    Check {
        id: "ews.get_folder.drafts",
        op: CheckOp::GetFolder("drafts"),
        features: &[Feature::SendLater],
    },
    Check {
        id: "ews.get_user_availability.self",
        op: CheckOp::GetUserAvailability,
        features: &[Feature::InsertAvailability],
    },
    Check {
        id: "ews.get_folder.calendar",
        op: CheckOp::GetFolder("calendar"),
        features: &[Feature::CalendarSync],
    },
    Check {
        id: "ews.find_item.calendar_view",
        op: CheckOp::FindItemCalendarView,
        features: &[Feature::CalendarSync],
    },
    Check {
        id: "ews.sync_folder_items.calendar",
        op: CheckOp::SyncFolderItems("calendar"),
        features: &[Feature::CalendarSync],
    },
];

/// Write checks, only with `--write`. Each makes two steps: `<id>` (CreateItem) and its
/// cleanup `ews.delete_item.<suffix>`.
pub const WRITE_CHECKS: &[Check] = &[
    Check {
        id: "ews.create_item.draft",
        op: CheckOp::WriteDraft {
            deferred_send: false,
        },
        features: &[Feature::EmailTracking],
    },
    Check {
        id: "ews.create_item.deferred_send",
        op: CheckOp::WriteDraft {
            deferred_send: true,
        },
        features: &[Feature::SendLater],
    },
];

/// The cleanup step id of a write check.
pub fn cleanup_id(create_id: &str) -> String {
    create_id.replace("ews.create_item.", "ews.delete_item.")
}

/// The checks of a run, connectivity first.
pub fn checks(write: bool) -> Vec<Check> {
    let mut v = vec![CONNECTIVITY];
    v.extend_from_slice(READ_CHECKS);
    if write {
        v.extend_from_slice(WRITE_CHECKS);
    }
    v
}

/// The step ids that decide a feature in a run.
pub fn feature_checks(feature: Feature, write: bool) -> Vec<String> {
    let mut ids: Vec<String> = checks(write)
        .iter()
        .filter(|c| c.features.contains(&feature))
        .map(|c| c.id.to_string())
        .collect();
    ids.insert(0, CONNECTIVITY.id.to_string());
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_has_a_read_only_check() {
        for f in Feature::ALL {
            assert!(READ_CHECKS.iter().any(|c| c.features.contains(&f)), "{f:?}");
        }
    }

    #[test]
    fn write_checks_only_with_write() {
        assert!(
            !checks(false)
                .iter()
                .any(|c| matches!(c.op, CheckOp::WriteDraft { .. }))
        );
        assert_eq!(
            checks(true)
                .iter()
                .filter(|c| matches!(c.op, CheckOp::WriteDraft { .. }))
                .count(),
            2
        );
        assert_eq!(cleanup_id("ews.create_item.draft"), "ews.delete_item.draft");
    }
}
