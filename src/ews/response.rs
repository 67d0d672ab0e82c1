//! Reading EWS responses: SOAP faults, per-message `ResponseClass`/`ResponseCode`/`MessageText`,
//! `MessageXml` values such as `BackOffMilliseconds`, `ServerVersionInfo`, and the ids of items
//! the probe created.
//!
//! The body is untrusted. SOAP forbids DTDs and processing instructions, so any `DOCTYPE` or
//! PI after the declaration is refused (no entity can ever be expanded); only the five
//! predefined entities and character references are resolved; depth and element count are
//! capped. The transport caps the size before the body gets here. Errors carry the byte
//! offset, never the body.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde::Serialize;

/// Deeper than any EWS response the probe asks for (about 12 levels), far below a stack risk.
pub const MAX_DEPTH: usize = 64;
/// Elements read at most; a probe response has a few dozen.
pub const MAX_ELEMENTS: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub enum ResponseClass {
    Success,
    Warning,
    Error,
}

/// One `*ResponseMessage` (or `FreeBusyResponse/ResponseMessage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseMessage {
    /// The element's local name, e.g. `GetFolderResponseMessage`.
    pub element: String,
    pub class: ResponseClass,
    pub code: Option<String>,
    pub text: Option<String>,
    /// `MessageXml` as name/value pairs (`t:Value Name=…` or directly tagged elements).
    pub message_xml: Vec<(String, String)>,
    /// `ItemId`s in the message (CreateItem returns the new draft's).
    pub item_ids: Vec<ItemId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemId {
    pub id: String,
    pub change_key: Option<String>,
}

/// A SOAP fault: a whole-request failure (schema validation, throttling, impersonation …).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SoapFault {
    /// `faultcode` without its prefix, e.g. `ErrorServerBusy` or `Client`.
    pub faultcode: String,
    pub faultstring: String,
    /// `detail/ResponseCode`, the EWS code when the server gave one.
    pub response_code: Option<String>,
    pub message: Option<String>,
    pub message_xml: Vec<(String, String)>,
}

impl SoapFault {
    /// The EWS code: `detail/ResponseCode` first, else the `faultcode` (as exchangelib does).
    pub fn code(&self) -> &str {
        self.response_code.as_deref().unwrap_or(&self.faultcode)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ServerVersionInfo {
    pub major: Option<String>,
    pub minor: Option<String>,
    pub major_build: Option<String>,
    pub minor_build: Option<String>,
    pub version: Option<String>,
}

impl ServerVersionInfo {
    pub fn display(&self) -> String {
        let mut s = format!(
            "{}.{}.{}.{}",
            self.major.as_deref().unwrap_or("?"),
            self.minor.as_deref().unwrap_or("?"),
            self.major_build.as_deref().unwrap_or("?"),
            self.minor_build.as_deref().unwrap_or("?")
        );
        if let Some(v) = &self.version {
            s.push_str(&format!(" ({v})"));
        }
        s
    }
}

/// What a SOAP response says.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SoapResponse {
    pub server_version: Option<ServerVersionInfo>,
    pub fault: Option<SoapFault>,
    pub messages: Vec<ResponseMessage>,
}

fn value_named<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl SoapResponse {
    /// The server's back-off hint (`BackOffMilliseconds`) from the fault or any message.
    pub fn back_off_ms(&self) -> Option<u64> {
        let from_fault = self
            .fault
            .as_ref()
            .and_then(|f| value_named(&f.message_xml, "BackOffMilliseconds"));
        from_fault
            .or_else(|| {
                self.messages
                    .iter()
                    .find_map(|m| value_named(&m.message_xml, "BackOffMilliseconds"))
            })
            .and_then(|v| v.trim().parse().ok())
    }

    /// The first message that is not a success, if any.
    pub fn first_error(&self) -> Option<&ResponseMessage> {
        self.messages
            .iter()
            .find(|m| m.class == ResponseClass::Error)
    }

    /// Every EWS code present: the fault's, then each message's.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.fault
            .iter()
            .map(|f| f.code())
            .chain(self.messages.iter().filter_map(|m| m.code.as_deref()))
    }
}

impl ResponseMessage {
    /// The inner code of an `ErrorInternalServerError` (`MessageXml/InnerErrorResponseCode`).
    pub fn inner_code(&self) -> Option<&str> {
        value_named(&self.message_xml, "InnerErrorResponseCode")
    }
}

/// Why a body could not be read as a SOAP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BodyError {
    #[error("empty body")]
    Empty,
    #[error("an HTML page{}", title.as_ref().map(|t| format!(" titled \"{t}\"")).unwrap_or_default())]
    Html { title: Option<String> },
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error("refused: the body has a DOCTYPE (SOAP forbids DTDs)")]
    Doctype,
    #[error("refused: the body has a processing instruction (SOAP forbids them)")]
    ProcessingInstruction,
    #[error("refused: unknown entity reference &{name}; (no entity is ever expanded)")]
    UnknownEntity { name: String },
    #[error("truncated XML: the document ends inside <{open}>")]
    Truncated { open: String },
    #[error("malformed XML at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    #[error("refused: XML nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("refused: more than {MAX_ELEMENTS} XML elements")]
    TooManyElements,
    #[error("not XML (the body starts with \"{start}\")")]
    NotXml { start: String },
    #[error("XML but not a SOAP envelope (root element <{root}>)")]
    NotSoap { root: String },
}

/// Sniffs an HTML page (an IIS error, a login portal, a proxy block page).
pub fn html_title(content_type: Option<&str>, body: &[u8]) -> Option<Option<String>> {
    // Cheap test on bytes first: every response passes here, and almost none is HTML.
    let ct_html = content_type.is_some_and(|c| {
        c.as_bytes()
            .windows(4)
            .any(|w| w.eq_ignore_ascii_case(b"html"))
    });
    if !ct_html {
        let start = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(body.len());
        let t = &body[start..];
        let starts = |p: &[u8]| t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p);
        // A non-ASCII first character (other Unicode white space) takes the full test below.
        if t.first().is_some_and(|b| b.is_ascii())
            && !starts(b"<!doctype html")
            && !starts(b"<html")
        {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let lower = head.trim_start().to_ascii_lowercase();
    let is_html = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html"))
        || lower.starts_with("<!doctype html")
        || lower.starts_with("<html");
    if !is_html {
        return None;
    }
    let title = lower.find("<title>").and_then(|start| {
        let rest = &head.trim_start()[start + 7..];
        rest.to_ascii_lowercase()
            .find("</title>")
            .map(|end| crate::util::truncate_for_display(rest[..end].trim(), 120))
    });
    Some(title)
}

/// Reads a body as a SOAP response.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<SoapResponse, BodyError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(BodyError::Empty);
    }
    if let Some(title) = html_title(content_type, body) {
        return Err(BodyError::Html { title });
    }
    let text = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Parser::default().run(text)
}

#[derive(Default)]
struct Parser {
    stack: Vec<String>,
    elements: usize,
    text: String,
    out: SoapResponse,
    /// Index into out.messages and stack depth of the open response message.
    message: Option<(usize, usize)>,
    saw_envelope: bool,
    /// Name of the `t:Value` being read inside MessageXml.
    value_name: Option<String>,
}

fn local(e: &BytesStart<'_>) -> String {
    e.local_name().as_ref().to_string()
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == name)
            .then(|| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
            .flatten()
    })
}

impl Parser {
    fn run(mut self, text: &str) -> Result<SoapResponse, BodyError> {
        let mut reader = Reader::from_str(text);
        let mut seen_root = false;
        loop {
            let pos = reader.buffer_position();
            let ev = reader.read_event().map_err(|e| BodyError::Malformed {
                position: pos,
                message: crate::util::truncate_for_display(&e.to_string(), 160),
            })?;
            match ev {
                Event::Decl(_) | Event::Comment(_) => {}
                Event::DocType(_) => return Err(BodyError::Doctype),
                Event::PI(_) => return Err(BodyError::ProcessingInstruction),
                Event::Start(e) => {
                    let name = local(&e);
                    self.open(&e, &name, &mut seen_root)?;
                    self.stack.push(name);
                    if self.stack.len() > MAX_DEPTH {
                        return Err(BodyError::TooDeep);
                    }
                }
                Event::Empty(e) => {
                    let name = local(&e);
                    self.open(&e, &name, &mut seen_root)?;
                    self.stack.push(name);
                    self.close();
                }
                Event::End(_) => self.close(),
                Event::Text(t) => self.text.push_str(&t.xml10_content()),
                Event::CData(t) => self.text.push_str(&t.xml10_content()),
                Event::GeneralRef(r) => {
                    if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => self.text.push(c),
                            _ => {
                                return Err(BodyError::UnknownEntity {
                                    name: crate::util::truncate_for_display(&r.xml10_content(), 40),
                                });
                            }
                        }
                    } else {
                        let name = r.xml10_content();
                        let c = match name.as_ref() {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            other => {
                                return Err(BodyError::UnknownEntity {
                                    name: crate::util::truncate_for_display(other, 40),
                                });
                            }
                        };
                        self.text.push(c);
                    }
                }
                Event::Eof => break,
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(BodyError::Truncated { open: open.clone() });
        }
        if !self.saw_envelope {
            return Err(BodyError::NotXml {
                start: crate::util::truncate_for_display(text.trim(), 40),
            });
        }
        Ok(self.out)
    }

    fn open(
        &mut self,
        e: &BytesStart<'_>,
        name: &str,
        seen_root: &mut bool,
    ) -> Result<(), BodyError> {
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(BodyError::TooManyElements);
        }
        self.text.clear();
        if !*seen_root {
            *seen_root = true;
            if name != "Envelope" {
                return Err(BodyError::NotSoap {
                    root: crate::util::truncate_for_display(name, 60),
                });
            }
            self.saw_envelope = true;
            return Ok(());
        }
        let parent = self.stack.last().map(String::as_str);
        match name {
            "ServerVersionInfo" => {
                // One pass over the attributes (not one per field).
                let mut v = ServerVersionInfo::default();
                for a in e.attributes().flatten() {
                    let slot = match a.key.local_name().as_ref() {
                        "MajorVersion" => &mut v.major,
                        "MinorVersion" => &mut v.minor,
                        "MajorBuildNumber" => &mut v.major_build,
                        "MinorBuildNumber" => &mut v.minor_build,
                        "Version" => &mut v.version,
                        _ => continue,
                    };
                    if slot.is_none() {
                        *slot = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .ok()
                            .map(|v| v.into_owned());
                    }
                }
                self.out.server_version = Some(v);
            }
            "Fault" if parent == Some("Body") => {
                self.out.fault = Some(SoapFault::default());
            }
            n if n.ends_with("ResponseMessage") && self.message.is_none() => {
                if let Some(class) = attr(e, "ResponseClass") {
                    let class = match class.as_str() {
                        "Success" => ResponseClass::Success,
                        "Warning" => ResponseClass::Warning,
                        _ => ResponseClass::Error,
                    };
                    self.out.messages.push(ResponseMessage {
                        element: n.to_string(),
                        class,
                        code: None,
                        text: None,
                        message_xml: Vec::new(),
                        item_ids: Vec::new(),
                    });
                    // The message's own depth once pushed.
                    self.message = Some((self.out.messages.len() - 1, self.stack.len() + 1));
                }
            }
            "ItemId" => {
                if let (Some((i, _)), Some(id)) = (self.message, attr(e, "Id")) {
                    self.out.messages[i].item_ids.push(ItemId {
                        id,
                        change_key: attr(e, "ChangeKey"),
                    });
                }
            }
            "Value" if parent == Some("MessageXml") => {
                self.value_name = attr(e, "Name");
            }
            _ => {}
        }
        Ok(())
    }

    fn close(&mut self) {
        let Some(name) = self.stack.pop() else {
            return;
        };
        // The element's text, trimmed and copied only by the arms that keep it; the buffer
        // goes back to `self.text` for the next element.
        let buf = std::mem::take(&mut self.text);
        self.close_with(&name, &buf);
        self.text = buf;
        self.text.clear();
    }

    fn close_with(&mut self, name: &str, raw: &str) {
        let text = || raw.trim().to_string();
        let parent = self.stack.last().map(String::as_str);
        let depth = self.stack.len();
        let in_fault = self.out.fault.is_some() && self.stack.iter().any(|s| s == "Fault");

        if in_fault {
            let fault = self.out.fault.as_mut().expect("checked above");
            match (name, parent) {
                ("faultcode", _) => {
                    fault.faultcode = text().rsplit(':').next().unwrap_or("").to_string()
                }
                ("faultstring", _) => fault.faultstring = text(),
                ("ResponseCode", Some("detail")) => fault.response_code = Some(text()),
                ("Message", Some("detail")) => fault.message = Some(text()),
                ("Value", Some("MessageXml")) => {
                    let n = self.value_name.take().unwrap_or_else(|| "Value".into());
                    fault.message_xml.push((n, text()));
                }
                (n, Some("MessageXml")) => fault.message_xml.push((n.to_string(), text())),
                _ => {}
            }
            return;
        }

        if let Some((i, msg_depth)) = self.message {
            if depth + 1 == msg_depth {
                // The message element itself closed.
                self.message = None;
                return;
            }
            let msg = &mut self.out.messages[i];
            match (name, parent) {
                ("ResponseCode", _) if depth == msg_depth => msg.code = Some(text()),
                ("MessageText", _) if depth == msg_depth => msg.text = Some(text()),
                ("Value", Some("MessageXml")) => {
                    let n = self.value_name.take().unwrap_or_else(|| "Value".into());
                    msg.message_xml.push((n, text()));
                }
                (n, Some("MessageXml")) => msg.message_xml.push((n.to_string(), text())),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET_FOLDER_OK: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>
<h:ServerVersionInfo MajorVersion="15" MinorVersion="20" MajorBuildNumber="8769" MinorBuildNumber="21" Version="V2018_01_08" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header>
<s:Body><m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
<m:ResponseMessages><m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
<m:Folders><t:Folder><t:FolderId Id="AQMk=" ChangeKey="AQAAAB"/></t:Folder></m:Folders></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>"#;

    #[test]
    fn reads_success_and_server_version() {
        let r = parse(Some("text/xml; charset=utf-8"), GET_FOLDER_OK.as_bytes()).unwrap();
        assert!(r.fault.is_none());
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].class, ResponseClass::Success);
        assert_eq!(r.messages[0].code.as_deref(), Some("NoError"));
        assert_eq!(r.messages[0].element, "GetFolderResponseMessage");
        let v = r.server_version.unwrap();
        assert_eq!(v.display(), "15.20.8769.21 (V2018_01_08)");
    }

    #[test]
    fn reads_server_busy_fault_with_back_off() {
        // Shape: exchangelib tests/test_services.py (research/ews-protocol.md §2.1).
        let body = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
<faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>
<detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">
 ErrorServerBusy
</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>
<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml>
</detail></s:Fault></s:Body></s:Envelope>"#;
        let r = parse(None, body.as_bytes()).unwrap();
        let f = r.fault.as_ref().unwrap();
        assert_eq!(f.faultcode, "ErrorServerBusy");
        assert_eq!(f.code(), "ErrorServerBusy");
        assert!(f.faultstring.starts_with("The server cannot service"));
        assert_eq!(r.back_off_ms(), Some(297_749));
    }

    #[test]
    fn reads_schema_validation_fault_with_tagged_message_xml() {
        let body = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorSchemaValidation</faultcode>
<faultstring xml:lang="en-US">The request failed schema validation: bad.</faultstring>
<detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorSchemaValidation</e:ResponseCode>
<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:LineNumber>2</t:LineNumber><t:LinePosition>630</t:LinePosition><t:Violation>x</t:Violation></t:MessageXml>
</detail></s:Fault></s:Body></s:Envelope>"#;
        let r = parse(None, body.as_bytes()).unwrap();
        let f = r.fault.unwrap();
        assert_eq!(f.code(), "ErrorSchemaValidation");
        assert_eq!(
            f.message_xml,
            vec![
                ("LineNumber".into(), "2".into()),
                ("LinePosition".into(), "630".into()),
                ("Violation".into(), "x".into())
            ]
        );
    }

    #[test]
    fn reads_free_busy_response_message_and_inner_errors() {
        let body = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<GetUserAvailabilityResponse xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"><FreeBusyResponseArray><FreeBusyResponse>
<ResponseMessage ResponseClass="Error"><MessageText>No free/busy access &amp; no luck &#x263A;</MessageText><ResponseCode>ErrorNoFreeBusyAccess</ResponseCode>
<MessageXml><Value xmlns="http://schemas.microsoft.com/exchange/services/2006/types" Name="InnerErrorResponseCode">ErrorAccessDenied</Value></MessageXml>
</ResponseMessage></FreeBusyResponse></FreeBusyResponseArray></GetUserAvailabilityResponse></s:Body></s:Envelope>"#;
        let r = parse(None, body.as_bytes()).unwrap();
        let m = r.first_error().unwrap();
        assert_eq!(m.element, "ResponseMessage");
        assert_eq!(m.code.as_deref(), Some("ErrorNoFreeBusyAccess"));
        assert_eq!(m.text.as_deref(), Some("No free/busy access & no luck ☺"));
        assert_eq!(m.inner_code(), Some("ErrorAccessDenied"));
    }

    #[test]
    fn reads_created_item_id() {
        let body = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:CreateItemResponse xmlns:m="m" xmlns:t="t"><m:ResponseMessages>
<m:CreateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Message><t:ItemId Id="AAMk1" ChangeKey="CQ1"/></t:Message></m:Items></m:CreateItemResponseMessage>
</m:ResponseMessages></m:CreateItemResponse></s:Body></s:Envelope>"#;
        let r = parse(None, body.as_bytes()).unwrap();
        assert_eq!(
            r.messages[0].item_ids,
            vec![ItemId {
                id: "AAMk1".into(),
                change_key: Some("CQ1".into())
            }]
        );
    }

    #[test]
    fn refuses_what_soap_forbids_and_what_is_broken() {
        type Check = fn(&BodyError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, BodyError::Empty)),
            ("  \n", |e| matches!(e, BodyError::Empty)),
            (
                "<!DOCTYPE html><html><head><title>404 - File or directory not found.</title></head></html>",
                |e| matches!(e, BodyError::Html { title: Some(t) } if t.starts_with("404")),
            ),
            (
                r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><s:Envelope xmlns:s="x">&lol;</s:Envelope>"#,
                |e| matches!(e, BodyError::Doctype),
            ),
            (
                r#"<?xml version="1.0"?><?xml-stylesheet href="a"?><s:Envelope xmlns:s="x"/>"#,
                |e| matches!(e, BodyError::ProcessingInstruction),
            ),
            (
                r#"<s:Envelope xmlns:s="x">&ext;</s:Envelope>"#,
                |e| matches!(e, BodyError::UnknownEntity { name } if name == "ext"),
            ),
            (
                r#"<s:Envelope xmlns:s="x"><s:Body><m:GetFolderResponse>"#,
                |e| matches!(e, BodyError::Truncated { .. }),
            ),
            (r#"<s:Envelope xmlns:s="x"><s:Body></s:Envelope>"#, |e| {
                matches!(e, BodyError::Malformed { .. })
            }),
            (
                "<Autodiscover/>",
                |e| matches!(e, BodyError::NotSoap { root } if root == "Autodiscover"),
            ),
            ("{\"error\":\"x\"}", |e| {
                matches!(e, BodyError::NotXml { .. })
            }),
        ];
        for (body, check) in cases {
            let err = parse(None, body.as_bytes()).unwrap_err();
            assert!(check(&err), "{body:?} gave {err:?}");
        }
        assert_eq!(
            parse(None, &[0xff, 0xfe, 0x3c]).unwrap_err(),
            BodyError::NotUtf8
        );
    }

    /// Every recorded EWS answer (fixtures/ews/**), cut at many offsets and with a byte
    /// flipped: the reader never panics, and a body cut before the envelope's end tag is never
    /// read as a complete answer.
    #[test]
    fn every_fixture_cut_or_damaged_is_refused_not_panicked() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "xml") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ews"),
            &mut files,
        );
        assert!(files.len() >= 20, "{} fixtures", files.len());
        let ct = Some("text/xml; charset=utf-8");
        for f in &files {
            let body = std::fs::read(f).unwrap();
            assert!(
                parse(ct, &body).is_ok(),
                "{} does not parse whole",
                f.display()
            );
            let end = memchr::memmem::rfind(&body, b"Envelope>").unwrap();
            for cut in (0..end).step_by(5) {
                assert!(
                    parse(ct, &body[..cut]).is_err(),
                    "{} cut at {cut} read as complete",
                    f.display()
                );
            }
            for at in (0..body.len()).step_by(11) {
                let mut damaged = body.clone();
                damaged[at] ^= 0x5a;
                let _ = parse(ct, &damaged);
            }
        }
    }

    #[test]
    fn caps_depth() {
        let mut body = String::from(r#"<s:Envelope xmlns:s="x">"#);
        for _ in 0..100 {
            body.push_str("<a>");
        }
        assert_eq!(
            parse(None, body.as_bytes()).unwrap_err(),
            BodyError::TooDeep
        );
    }
}
