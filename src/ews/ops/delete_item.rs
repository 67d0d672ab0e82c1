//! `DeleteItem` with `HardDelete`: removes the probe's own draft (by the id CreateItem returned)
//! without leaving it in Deleted Items.
//!
//! Reference: <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitem-operation>

use crate::ews::{Operation, esc};

#[derive(Debug, Clone)]
pub struct HardDelete {
    pub item_id: String,
    pub change_key: Option<String>,
}

impl Operation for HardDelete {
    const NAME: &'static str = "DeleteItem";
    const READ_ONLY: bool = false;

    fn write_body(&self, out: &mut String) {
        out.push_str(r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds>"#);
        match &self.change_key {
            Some(ck) => out.push_str(&format!(
                r#"<t:ItemId Id="{}" ChangeKey="{}"/>"#,
                esc(&self.item_id),
                esc(ck)
            )),
            None => out.push_str(&format!(r#"<t:ItemId Id="{}"/>"#, esc(&self.item_id))),
        }
        out.push_str("</m:ItemIds></m:DeleteItem>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::ops::body_of;

    #[test]
    fn serializes_hard_delete() {
        let op = HardDelete {
            item_id: "AAMkAD+/=".into(),
            change_key: Some("CQAAAB".into()),
        };
        assert_eq!(
            body_of(&op),
            r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="AAMkAD+/=" ChangeKey="CQAAAB"/></m:ItemIds></m:DeleteItem>"#
        );
    }
}
