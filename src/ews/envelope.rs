//! The SOAP envelope: `RequestServerVersion` always, `ExchangeImpersonation` when the probe acts
//! for another mailbox (app-only OAuth or `--impersonate`).
//!
//! Reference: <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/requestserverversion>,
//! <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/exchangeimpersonation>.

use super::{Operation, esc};
use std::fmt;
use std::str::FromStr;

/// A `RequestServerVersion` value from the schema's `ExchangeVersionType` enumeration.
///
/// Only schema-valid values exist here: `Exchange2019`, which some clients send, is not one and
/// Exchange answers it with `ErrorInvalidServerVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion(&'static str);

/// Every value of `ExchangeVersionType` in types.xsd (schema V2018_01_08).
pub const SERVER_VERSIONS: &[&str] = &[
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2009",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2012",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
    "V2015_10_05",
    "V2016_01_06",
    "V2016_04_13",
    "V2016_07_13",
    "V2016_10_10",
    "V2017_01_07",
    "V2017_04_14",
    "V2017_07_11",
    "V2017_10_09",
    "V2018_01_08",
];

impl ServerVersion {
    /// The earliest version that has every element the probe sends, accepted by Exchange
    /// Online and Exchange 2013 and later (Microsoft: "version your requests with the earliest
    /// version of the EWS schema that supports the functionality you want to use").
    pub const DEFAULT: ServerVersion = ServerVersion("Exchange2013_SP1");

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl Default for ServerVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl FromStr for ServerVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SERVER_VERSIONS
            .iter()
            .find(|v| v.eq_ignore_ascii_case(s))
            .map(|v| ServerVersion(v))
            .ok_or_else(|| {
                format!(
                    "'{s}' is not an EWS schema version; one of: {}",
                    SERVER_VERSIONS.join(", ")
                )
            })
    }
}

/// What every request of one probe carries in its SOAP header.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub version: ServerVersion,
    /// The primary SMTP address to impersonate (`ExchangeImpersonation/ConnectingSID`).
    pub impersonate: Option<String>,
}

/// A request ready to send: the header elements and the body element, kept apart so the
/// schema test can validate each against Microsoft's schema.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub operation: &'static str,
    pub read_only: bool,
    pub headers: Vec<String>,
    pub body: String,
}

impl Envelope {
    pub fn new<O: Operation>(ctx: &RequestContext, op: &O) -> Self {
        let mut headers = vec![format!(
            r#"<t:RequestServerVersion Version="{}"/>"#,
            ctx.version
        )];
        if let Some(who) = &ctx.impersonate {
            headers.push(format!(
                "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>",
                esc(who)
            ));
        }
        let mut body = String::with_capacity(512);
        op.write_body(&mut body);
        Envelope {
            operation: O::NAME,
            read_only: O::READ_ONLY,
            headers,
            body,
        }
    }

    /// The whole SOAP 1.1 document.
    pub fn to_xml(&self) -> String {
        let mut s = String::with_capacity(self.body.len() + 512);
        s.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
        s.push_str(&format!(
            r#"<soap:Envelope xmlns:soap="{}" xmlns:m="{}" xmlns:t="{}"><soap:Header>"#,
            super::SOAP_NS,
            super::MESSAGES_NS,
            super::TYPES_NS
        ));
        for h in &self.headers {
            s.push_str(h);
        }
        s.push_str("</soap:Header><soap:Body>");
        s.push_str(&self.body);
        s.push_str("</soap:Body></soap:Envelope>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::ops::get_folder::GetFolder;

    #[test]
    fn envelope_with_version_only() {
        let ctx = RequestContext::default();
        let env = Envelope::new(&ctx, &GetFolder::distinguished("msgfolderroot"));
        assert_eq!(
            env.to_xml(),
            concat!(
                r#"<?xml version="1.0" encoding="utf-8"?>"#,
                r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">"#,
                r#"<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header>"#,
                r#"<soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"#,
                r#"<m:FolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:FolderIds></m:GetFolder></soap:Body></soap:Envelope>"#
            )
        );
        assert!(env.read_only);
        assert_eq!(env.operation, "GetFolder");
    }

    #[test]
    fn envelope_with_impersonation_escapes_address() {
        let ctx = RequestContext {
            version: "V2016_10_10".parse().unwrap(),
            impersonate: Some("o'neil&co@contoso.com".into()),
        };
        let env = Envelope::new(&ctx, &GetFolder::distinguished("inbox"));
        assert_eq!(
            env.headers,
            vec![
                r#"<t:RequestServerVersion Version="V2016_10_10"/>"#.to_string(),
                "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>o&apos;neil&amp;co@contoso.com</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>".to_string()
            ]
        );
    }

    #[test]
    fn only_schema_versions_parse() {
        assert_eq!(
            "exchange2016".parse::<ServerVersion>().unwrap().as_str(),
            "Exchange2016"
        );
        let err = "Exchange2019".parse::<ServerVersion>().unwrap_err();
        assert!(err.contains("not an EWS schema version"), "{err}");
    }
}
