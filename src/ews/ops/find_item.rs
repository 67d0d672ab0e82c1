//! `FindItem` with one item at most: an `IndexedPageItemView` on a mail folder (email tracking
//! reads the inbox) or a `CalendarView` over a date range (calendar sync expands recurrences).
//!
//! Reference: <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem-operation>,
//! <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/indexedpageitemview>,
//! <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/calendarview>

use super::{distinguished_folder, utc};
use crate::ews::Operation;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub enum View {
    /// The first `max` items from the beginning of the folder.
    IndexedPage { max: u32 },
    /// Calendar items (occurrences expanded) between two instants; the range must stay under
    /// two years (ErrorCalendarViewRangeTooBig).
    Calendar {
        start: OffsetDateTime,
        end: OffsetDateTime,
        max: u32,
    },
}

#[derive(Debug, Clone)]
pub struct FindItem {
    pub folder: &'static str,
    pub mailbox: Option<String>,
    pub view: View,
}

impl Operation for FindItem {
    const NAME: &'static str = "FindItem";
    const READ_ONLY: bool = true;

    fn write_body(&self, out: &mut String) {
        // Element order is fixed by messages.xsd FindItemType: ItemShape, the view, ParentFolderIds.
        out.push_str(r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"#);
        match &self.view {
            View::IndexedPage { max } => out.push_str(&format!(
                r#"<m:IndexedPageItemView MaxEntriesReturned="{max}" Offset="0" BasePoint="Beginning"/>"#
            )),
            View::Calendar { start, end, max } => out.push_str(&format!(
                r#"<m:CalendarView MaxEntriesReturned="{max}" StartDate="{}" EndDate="{}"/>"#,
                utc(*start),
                utc(*end)
            )),
        }
        out.push_str("<m:ParentFolderIds>");
        distinguished_folder(out, self.folder, self.mailbox.as_deref());
        out.push_str("</m:ParentFolderIds></m:FindItem>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::ops::body_of;
    use time::macros::datetime;

    #[test]
    fn serializes_indexed_page_view() {
        let op = FindItem {
            folder: "inbox",
            mailbox: None,
            view: View::IndexedPage { max: 1 },
        };
        assert_eq!(
            body_of(&op),
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="1" Offset="0" BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>"#
        );
    }

    #[test]
    fn serializes_calendar_view_in_utc() {
        let op = FindItem {
            folder: "calendar",
            mailbox: None,
            view: View::Calendar {
                start: datetime!(2026-11-25 10:00:00 +01:00),
                end: datetime!(2026-12-02 09:00:00 UTC),
                max: 1,
            },
        };
        assert_eq!(
            body_of(&op),
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:CalendarView MaxEntriesReturned="1" StartDate="2026-11-25T09:00:00Z" EndDate="2026-12-02T09:00:00Z"/><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#
        );
    }
}
