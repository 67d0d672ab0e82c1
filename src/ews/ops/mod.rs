//! One module per EWS operation the probe sends. Each request type links to its Microsoft
//! reference page and has a unit test against a minified expected document.
//!
//! The probe never sends mail: `CreateItem` is only ever `SaveOnly` (see [`create_item`]).

pub mod create_item;
pub mod delete_item;
pub mod find_item;
pub mod get_folder;
pub mod get_user_availability;
pub mod sync_folder_items;

use super::esc;

/// Writes a `t:DistinguishedFolderId`, optionally in another mailbox (delegate access).
pub(crate) fn distinguished_folder(out: &mut String, id: &str, mailbox: Option<&str>) {
    match mailbox {
        None => out.push_str(&format!(r#"<t:DistinguishedFolderId Id="{}"/>"#, esc(id))),
        Some(m) => out.push_str(&format!(
            r#"<t:DistinguishedFolderId Id="{}"><t:Mailbox><t:EmailAddress>{}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"#,
            esc(id),
            esc(m)
        )),
    }
}

/// `xs:dateTime` in UTC with a `Z`, second precision.
pub(crate) fn utc(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
pub(crate) fn body_of<O: super::Operation>(op: &O) -> String {
    let mut s = String::new();
    op.write_body(&mut s);
    s
}
