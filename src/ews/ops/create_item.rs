//! `CreateItem` of a draft message, always `MessageDisposition="SaveOnly"` into Drafts: the
//! write probe for email tracking and, with `PidTagDeferredSendTime`, for Send Later. The
//! disposition is not a field: this type cannot express `SendOnly` or `SendAndSaveCopy`, so the
//! probe cannot send mail by mistake. The draft is addressed to the mailbox itself and removed
//! by [`super::delete_item`] right after.
//!
//! Reference: <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitem-operation-email-message>;
//! PidTagDeferredSendTime (0x3FEF, SystemTime): <https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-send-email-messages-by-using-ews-in-exchange>

use super::utc;
use crate::ews::{Operation, esc};
use time::OffsetDateTime;

pub const PROBE_SUBJECT: &str = "ews-probe test draft - safe to delete";

#[derive(Debug, Clone)]
pub struct CreateDraft {
    pub mailbox: String,
    /// When set, the draft carries PidTagDeferredSendTime with this instant (Send Later).
    pub deferred_send: Option<OffsetDateTime>,
}

impl Operation for CreateDraft {
    const NAME: &'static str = "CreateItem";
    const READ_ONLY: bool = false;

    fn write_body(&self, out: &mut String) {
        // ItemType sequence: Subject, Body, ..., ExtendedProperty, ... then MessageType's
        // ToRecipients; the ExtendedProperty must come before ToRecipients.
        out.push_str(r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="drafts"/></m:SavedItemFolderId><m:Items><t:Message>"#);
        out.push_str(&format!(
            r#"<t:Subject>{PROBE_SUBJECT}</t:Subject><t:Body BodyType="Text">Created by ews-probe to test EWS access; it deletes this draft at once.</t:Body>"#
        ));
        if let Some(at) = self.deferred_send {
            out.push_str(&format!(
                r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x3FEF" PropertyType="SystemTime"/><t:Value>{}</t:Value></t:ExtendedProperty>"#,
                utc(at)
            ));
        }
        out.push_str(&format!(
            "<t:ToRecipients><t:Mailbox><t:EmailAddress>{}</t:EmailAddress></t:Mailbox></t:ToRecipients></t:Message></m:Items></m:CreateItem>",
            esc(&self.mailbox)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::ops::body_of;
    use time::macros::datetime;

    #[test]
    fn serializes_plain_draft() {
        let op = CreateDraft {
            mailbox: "alice@contoso.com".into(),
            deferred_send: None,
        };
        assert_eq!(
            body_of(&op),
            concat!(
                r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="drafts"/></m:SavedItemFolderId><m:Items><t:Message>"#,
                r#"<t:Subject>ews-probe test draft - safe to delete</t:Subject><t:Body BodyType="Text">Created by ews-probe to test EWS access; it deletes this draft at once.</t:Body>"#,
                r#"<t:ToRecipients><t:Mailbox><t:EmailAddress>alice@contoso.com</t:EmailAddress></t:Mailbox></t:ToRecipients></t:Message></m:Items></m:CreateItem>"#
            )
        );
    }

    #[test]
    fn serializes_deferred_send_property_before_recipients() {
        let op = CreateDraft {
            mailbox: "alice@contoso.com".into(),
            deferred_send: Some(datetime!(2099-01-01 00:00:00 UTC)),
        };
        let body = body_of(&op);
        let prop = r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x3FEF" PropertyType="SystemTime"/><t:Value>2099-01-01T00:00:00Z</t:Value></t:ExtendedProperty>"#;
        let at = body.find(prop).expect("deferred send property");
        assert!(at < body.find("<t:ToRecipients>").unwrap());
        assert!(body.contains(r#"MessageDisposition="SaveOnly""#));
        assert!(!body.contains("Send"), "never a sending disposition");
    }
}
