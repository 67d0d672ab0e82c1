//! `GetFolder` for one distinguished folder, `IdOnly` shape: the cheapest authenticated EWS call,
//! used as the connectivity check (`msgfolderroot`) and to see each feature's folder.
//!
//! Reference: <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolder-operation>

use super::distinguished_folder;
use crate::ews::Operation;

#[derive(Debug, Clone)]
pub struct GetFolder {
    pub folder: &'static str,
    /// Another mailbox's folder (delegate access); `None` for the caller's own.
    pub mailbox: Option<String>,
}

impl GetFolder {
    pub fn distinguished(folder: &'static str) -> Self {
        GetFolder {
            folder,
            mailbox: None,
        }
    }
}

impl Operation for GetFolder {
    const NAME: &'static str = "GetFolder";
    const READ_ONLY: bool = true;

    fn write_body(&self, out: &mut String) {
        out.push_str("<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>");
        distinguished_folder(out, self.folder, self.mailbox.as_deref());
        out.push_str("</m:FolderIds></m:GetFolder>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::ops::body_of;

    #[test]
    fn serializes_own_folder() {
        assert_eq!(
            body_of(&GetFolder::distinguished("drafts")),
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="drafts"/></m:FolderIds></m:GetFolder>"#
        );
    }

    #[test]
    fn serializes_delegate_folder() {
        let op = GetFolder {
            folder: "calendar",
            mailbox: Some("boss@contoso.com".into()),
        };
        assert_eq!(
            body_of(&op),
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="calendar"><t:Mailbox><t:EmailAddress>boss@contoso.com</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>"#
        );
    }
}
