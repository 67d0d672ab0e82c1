//! `SyncFolderItems` without a sync state and one change at most: proves the incremental sync
//! that calendar sync depends on (throttled separately by ConcurrentSyncCalls).
//!
//! Reference: <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/syncfolderitems-operation>

use super::distinguished_folder;
use crate::ews::Operation;

#[derive(Debug, Clone)]
pub struct SyncFolderItems {
    pub folder: &'static str,
    pub mailbox: Option<String>,
    /// 1..=512 (schema and server limit).
    pub max_changes: u16,
}

impl Operation for SyncFolderItems {
    const NAME: &'static str = "SyncFolderItems";
    const READ_ONLY: bool = true;

    fn write_body(&self, out: &mut String) {
        out.push_str("<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId>");
        distinguished_folder(out, self.folder, self.mailbox.as_deref());
        out.push_str(&format!(
            "</m:SyncFolderId><m:MaxChangesReturned>{}</m:MaxChangesReturned></m:SyncFolderItems>",
            self.max_changes.clamp(1, 512)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::ops::body_of;

    #[test]
    fn serializes_first_sync_and_clamps_max() {
        let op = SyncFolderItems {
            folder: "calendar",
            mailbox: None,
            max_changes: 0,
        };
        assert_eq!(
            body_of(&op),
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="calendar"/></m:SyncFolderId><m:MaxChangesReturned>1</m:MaxChangesReturned></m:SyncFolderItems>"#
        );
    }
}
