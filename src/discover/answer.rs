//! The Autodiscover and realm-discovery wire formats: the request bodies the probe sends and
//! hardened readers of what comes back (research/ews-protocol.md §4.2–4.5). Pure functions,
//! tested on the recorded fixtures under `fixtures/autodiscover/`.

use quick_xml::Reader;
use quick_xml::events::Event;

/// What one Autodiscover answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The EWS URL.
    Endpoint(String),
    /// Ask again at this URL (POX `redirectUrl`, SOAP `RedirectUrl`).
    RedirectUrl(String),
    /// Ask again for this address (POX `redirectAddr`, SOAP `RedirectAddress`).
    RedirectAddr(String),
    /// The service answered but gave no EWS URL: why.
    Error(String),
}

/// Largest depth and element count accepted in an Autodiscover document.
const MAX_DEPTH: usize = 32;
const MAX_ELEMENTS: usize = 5_000;

/// `(path of local names joined by '/', text)` for every text node, in document order.
/// Refuses DOCTYPE (entity expansion), processing instructions, unknown entities and deep or
/// huge documents, like the EWS reader.
fn texts(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err("empty body".into());
    }
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut elements = 0usize;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        match ev {
            Event::Decl(_) | Event::Comment(_) => {}
            Event::DocType(_) => return Err("DOCTYPE refused (entity expansion)".into()),
            Event::PI(_) => return Err("processing instruction refused".into()),
            Event::Start(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                    return Err("document too large or too deep".into());
                }
                cur.clear();
                stack.push(e.local_name().as_ref().to_string());
            }
            Event::Empty(_) => {
                elements += 1;
                cur.clear();
            }
            Event::End(_) => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push((stack.join("/"), t.to_string()));
                }
                cur.clear();
                stack.pop();
            }
            Event::Text(t) => cur.push_str(&t.xml10_content()),
            Event::CData(t) => cur.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => cur.push(c),
                        _ => return Err("bad character reference".into()),
                    }
                } else {
                    cur.push(match r.xml10_content().as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(format!("unknown entity &{other};")),
                    });
                }
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("truncated document".into());
    }
    if out.is_empty() && !text.trim_start().starts_with('<') {
        return Err("not XML".into());
    }
    Ok(out)
}

fn find<'a>(t: &'a [(String, String)], suffix: &str) -> Option<&'a str> {
    t.iter()
        .find(|(p, _)| p == suffix || p.ends_with(&format!("/{suffix}")))
        .map(|(_, v)| v.as_str())
}

fn short(s: &str) -> String {
    crate::util::truncate_for_display(s, 160)
}

/// POX request body (research/ews-protocol.md §4.2, as Outlook and the Managed API send it).
pub fn pox_request(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>",
        crate::ews::esc(address)
    )
}

/// Reads a POX answer: `Action` settings (the `EwsUrl` of the EXPR, else EXCH, protocol),
/// `redirectUrl`, `redirectAddr`, or an `Error`.
pub fn parse_pox(body: &[u8]) -> Answer {
    let t = match texts(body) {
        Ok(t) => t,
        Err(e) => return Answer::Error(format!("not a POX Autodiscover answer: {e}")),
    };
    if !t
        .first()
        .is_some_and(|(p, _)| p.starts_with("Autodiscover/"))
    {
        return Answer::Error("not a POX Autodiscover answer (root is not Autodiscover)".into());
    }
    if let Some(code) = find(&t, "Error/ErrorCode") {
        let msg = find(&t, "Error/Message").unwrap_or("");
        return Answer::Error(short(&format!("POX error {code}: {msg}")));
    }
    match find(&t, "Account/Action")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("redirecturl") => match find(&t, "Account/RedirectUrl") {
            Some(u) => Answer::RedirectUrl(u.to_string()),
            None => Answer::Error("redirectUrl without a RedirectUrl".into()),
        },
        Some("redirectaddr") => match find(&t, "Account/RedirectAddr") {
            Some(a) => Answer::RedirectAddr(a.to_string()),
            None => Answer::Error("redirectAddr without a RedirectAddr".into()),
        },
        Some("settings") => {
            // Protocol blocks: pair each EwsUrl with the Type that precedes it.
            let mut typ = "";
            let mut by_type: Vec<(&str, &str)> = Vec::new();
            for (p, v) in &t {
                if p.ends_with("Protocol/Type") {
                    typ = v.as_str();
                } else if p.ends_with("Protocol/EwsUrl") {
                    by_type.push((typ, v.as_str()));
                }
            }
            let pick = ["EXPR", "EXCH", "WEB"]
                .iter()
                .find_map(|want| by_type.iter().find(|(ty, _)| ty == want))
                .or(by_type.first());
            match pick {
                Some((_, u)) => Answer::Endpoint(u.to_string()),
                None => Answer::Error("settings without an EwsUrl".into()),
            }
        }
        Some(other) => Answer::Error(short(&format!("unknown POX Action '{other}'"))),
        None => Answer::Error("POX answer without Action or Error".into()),
    }
}

/// SOAP `GetUserSettings` request (research/ews-protocol.md §4.3, the docs' sample).
pub fn soap_request(address: &str, url: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:a=\"http://schemas.microsoft.com/exchange/2010/Autodiscover\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action><wsa:To>{}</wsa:To></soap:Header><soap:Body><a:GetUserSettingsRequestMessage xmlns:a=\"http://schemas.microsoft.com/exchange/2010/Autodiscover\"><a:Request><a:Users><a:User><a:Mailbox>{}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>",
        crate::ews::esc(url),
        crate::ews::esc(address)
    )
}

/// Reads a `GetUserSettings` answer: the user's `ErrorCode` (NoError → ExternalEwsUrl, else
/// InternalEwsUrl; RedirectAddress/RedirectUrl → `RedirectTarget`; anything else an error).
pub fn parse_soap(body: &[u8]) -> Answer {
    let t = match texts(body) {
        Ok(t) => t,
        Err(e) => return Answer::Error(format!("not a SOAP Autodiscover answer: {e}")),
    };
    if !t.first().is_some_and(|(p, _)| p.starts_with("Envelope/")) {
        return Answer::Error("not a SOAP Autodiscover answer (root is not Envelope)".into());
    }
    if let Some(f) = find(&t, "Fault/faultstring") {
        return Answer::Error(short(&format!("SOAP fault: {f}")));
    }
    let top = find(&t, "Response/ErrorCode").unwrap_or("NoError");
    let user_code = find(&t, "UserResponse/ErrorCode").unwrap_or(top);
    let code = if top != "NoError" { top } else { user_code };
    let target = find(&t, "UserResponse/RedirectTarget").or(find(&t, "Response/RedirectTarget"));
    match code {
        "NoError" => {
            let mut settings: Vec<(&str, &str)> = Vec::new();
            let mut name = "";
            for (p, v) in &t {
                if p.ends_with("UserSetting/Name") {
                    name = v.as_str();
                } else if p.ends_with("UserSetting/Value") {
                    settings.push((name, v.as_str()));
                }
            }
            let get = |n: &str| settings.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
            match get("ExternalEwsUrl").or(get("InternalEwsUrl")) {
                Some(u) => Answer::Endpoint(u.to_string()),
                None => {
                    Answer::Error("NoError but neither ExternalEwsUrl nor InternalEwsUrl".into())
                }
            }
        }
        "RedirectAddress" => match target {
            Some(a) => Answer::RedirectAddr(a.to_string()),
            None => Answer::Error("RedirectAddress without a RedirectTarget".into()),
        },
        "RedirectUrl" => match target {
            Some(u) => Answer::RedirectUrl(u.to_string()),
            None => Answer::Error("RedirectUrl without a RedirectTarget".into()),
        },
        other => {
            let msg = find(&t, "UserResponse/ErrorMessage")
                .or(find(&t, "Response/ErrorMessage"))
                .unwrap_or("");
            Answer::Error(short(&format!("GetUserSettings {other}: {msg}")))
        }
    }
}

/// Reads an Autodiscover v2 (JSON) answer: `{"Protocol":"EWS","Url":…}` or `{"ErrorCode":…}`.
pub fn parse_v2(body: &[u8]) -> Answer {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Answer::Error(short(&format!("not JSON: {e}"))),
    };
    if let Some(code) = v.get("ErrorCode").and_then(|c| c.as_str()) {
        let msg = v.get("ErrorMessage").and_then(|c| c.as_str()).unwrap_or("");
        return Answer::Error(short(&format!("{code}: {msg}")));
    }
    let proto = v.get("Protocol").and_then(|p| p.as_str()).unwrap_or("");
    match v.get("Url").and_then(|u| u.as_str()) {
        Some(u) if proto.eq_ignore_ascii_case("ews") => Answer::Endpoint(u.to_string()),
        Some(u) => Answer::Error(short(&format!(
            "answered protocol '{proto}' ({u}), not EWS"
        ))),
        None => Answer::Error("JSON without Url or ErrorCode".into()),
    }
}

/// What realm discovery says about the address's domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// Entra ID cloud identities.
    Managed,
    /// Entra ID with sign-in at another identity provider (AD FS …).
    Federated,
    /// No Entra ID tenant has this domain ("Record does not exist").
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Realm {
    pub namespace: Namespace,
    pub domain_name: Option<String>,
    pub brand: Option<String>,
    /// The federated sign-in host (AuthURL), for federated domains.
    pub auth_host: Option<String>,
}

/// Reads `getuserrealm.srf?…&json=1` (research/ews-protocol.md §4.5 item 3).
pub fn parse_realm(body: &[u8]) -> Result<Realm, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| short(&format!("not JSON: {e}")))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(short);
    let namespace = match s("NameSpaceType").as_deref() {
        Some("Managed") => Namespace::Managed,
        Some("Federated") => Namespace::Federated,
        Some("Unknown") => Namespace::Unknown,
        Some(other) => return Err(format!("unknown NameSpaceType '{other}'")),
        None => return Err("no NameSpaceType".into()),
    };
    let auth_host = s("AuthURL")
        .and_then(|u| url::Url::parse(&u).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    Ok(Realm {
        namespace,
        domain_name: s("DomainName"),
        brand: s("FederationBrandName"),
        auth_host,
    })
}

/// The body of `POST /common/GetCredentialType` (research/ews-protocol.md §4.5 item 4).
pub fn credential_type_request(address: &str) -> String {
    serde_json::json!({ "username": address, "isOtherIdpSupported": true }).to_string()
}

/// Reads `GetCredentialType`'s `IfExistsResult`: 0 a work or school account exists, 1 none,
/// 5 the address belongs to another identity provider (a personal Microsoft account), 6 both.
pub fn parse_credential_type(body: &[u8]) -> Result<i64, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| short(&format!("not JSON: {e}")))?;
    v.get("IfExistsResult")
        .and_then(|x| x.as_i64())
        .ok_or_else(|| "no IfExistsResult".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/autodiscover")
            .join(name);
        let text = std::fs::read_to_string(&p).unwrap();
        // Leading `<!-- … -->` / `//` comment lines say where the shape comes from.
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        body.into_bytes()
    }

    #[test]
    fn pox_settings_prefers_the_external_ews_url() {
        assert_eq!(
            parse_pox(&fx("pox_settings.xml")),
            Answer::Endpoint("https://mail.contoso.example/EWS/Exchange.asmx".into())
        );
    }

    #[test]
    fn pox_redirects_and_errors() {
        assert_eq!(
            parse_pox(&fx("pox_redirect_addr.xml")),
            Answer::RedirectAddr("user@subdomain.contoso.example".into())
        );
        assert_eq!(
            parse_pox(&fx("pox_redirect_url.xml")),
            Answer::RedirectUrl(
                "https://autodiscover.eu.contoso.example/autodiscover/autodiscover.xml".into()
            )
        );
        assert_eq!(
            parse_pox(&fx("pox_error_600.xml")),
            Answer::Error("POX error 600: Invalid Request".into())
        );
        assert!(matches!(
            parse_pox(b"<html><body>hi</body></html>"),
            Answer::Error(_)
        ));
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x \"xx\">]><Autodiscover>&x;</Autodiscover>";
        assert!(matches!(parse_pox(bomb), Answer::Error(e) if e.contains("DOCTYPE")));
    }

    #[test]
    fn soap_settings_and_redirects() {
        assert_eq!(
            parse_soap(&fx("soap_settings.xml")),
            Answer::Endpoint("https://mail.contoso.example/EWS/Exchange.asmx".into())
        );
        assert_eq!(
            parse_soap(&fx("soap_redirect_address.xml")),
            Answer::RedirectAddr("elvin@mail.contoso.example".into())
        );
    }

    #[test]
    fn v2_answers() {
        assert_eq!(
            parse_v2(&fx("v2_ews.json")),
            Answer::Endpoint("https://mail.contoso.example/EWS/Exchange.asmx".into())
        );
        assert!(
            matches!(parse_v2(&fx("v2_invalid_protocol.json")), Answer::Error(e) if e.starts_with("InvalidProtocol"))
        );
        assert!(matches!(parse_v2(b"<html/>"), Answer::Error(_)));
    }

    #[test]
    fn realm_answers() {
        let m = parse_realm(&fx("realm_managed.json")).unwrap();
        assert_eq!(m.namespace, Namespace::Managed);
        let f = parse_realm(&fx("realm_federated.json")).unwrap();
        assert_eq!(f.namespace, Namespace::Federated);
        assert_eq!(f.auth_host.as_deref(), Some("sts.contoso.example"));
        let u = parse_realm(&fx("realm_unknown.json")).unwrap();
        assert_eq!(u.namespace, Namespace::Unknown);
        assert!(parse_realm(b"{}").is_err());
    }

    #[test]
    fn credential_type_answers() {
        assert_eq!(
            parse_credential_type(&fx("credential_type_personal.json")),
            Ok(5)
        );
        assert_eq!(
            parse_credential_type(&fx("credential_type_work.json")),
            Ok(0)
        );
        assert!(parse_credential_type(b"{}").is_err());
        assert_eq!(
            credential_type_request("a\"b@c.example"),
            r#"{"isOtherIdpSupported":true,"username":"a\"b@c.example"}"#
        );
    }

    #[test]
    fn requests_escape_the_address() {
        assert!(
            pox_request("a&b@contoso.example")
                .contains("<EMailAddress>a&amp;b@contoso.example</EMailAddress>")
        );
        assert!(
            soap_request(
                "a@c.example",
                "https://c.example/autodiscover/autodiscover.svc"
            )
            .contains("<a:Mailbox>a@c.example</a:Mailbox>")
        );
    }
}
