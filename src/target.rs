//! The probed mailbox: its address, parsed and validated, and what can be said of the
//! account kind before any request is sent (the consumer-domain list).
//!
//! The consumer list is a fast path, not proof: a Microsoft account can use any address,
//! and a domain in the list is always a consumer (Outlook.com) mailbox. Sources: Thunderbird's
//! ISPDB `hotmail.com.xml` domain set, plus `passport.com`, `msn.*` and `windowslive.*`
//! (research/ews-protocol.md §4.5).

use serde::Serialize;
use std::fmt;

/// What kind of account the address belongs to, as far as the evidence goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AccountKind {
    /// Outlook.com / Hotmail / Live / MSN: a personal Microsoft account, no EWS.
    Consumer,
    /// A Microsoft 365 (Entra ID) work or school account.
    WorkOrSchool,
    /// An Exchange Server mailbox in the customer's own datacentre.
    OnPremises,
    /// Nothing known yet.
    Unknown,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Consumer => "consumer",
            AccountKind::WorkOrSchool => "work_or_school",
            AccountKind::OnPremises => "on_premises",
            AccountKind::Unknown => "unknown",
        }
    }
}

/// A mailbox address that passed validation, with its account kind and the reasons for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    address: String,
    local: String,
    domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("'{0}' is not a mailbox address: expected user@domain")]
    NoAt(String),
    #[error("'{0}' has an empty local part")]
    EmptyLocal(String),
    #[error("'{0}' has an invalid domain '{1}'")]
    BadDomain(String, String),
    #[error("'{0}' contains characters not allowed in a mailbox address")]
    BadChars(String),
    #[error("the address is longer than 254 characters")]
    TooLong,
}

impl Mailbox {
    /// Parses and validates an SMTP address (the practical subset: dot-atom local part,
    /// LDH domain labels). Quoted local parts and IP-literal domains are refused: no
    /// Exchange mailbox uses them and they would complicate every header that carries it.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let s = input.trim();
        let shown = crate::util::truncate_for_display(s, 80);
        if s.len() > 254 {
            return Err(AddressError::TooLong);
        }
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| AddressError::NoAt(shown.clone()))?;
        if local.is_empty() {
            return Err(AddressError::EmptyLocal(shown));
        }
        let local_ok = local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok {
            return Err(AddressError::BadChars(shown));
        }
        let domain_lc = domain.to_ascii_lowercase();
        let labels: Vec<&str> = domain_lc.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()));
        if !domain_ok {
            return Err(AddressError::BadDomain(
                shown,
                crate::util::truncate_for_display(domain, 80),
            ));
        }
        Ok(Mailbox {
            address: format!("{local}@{domain_lc}"),
            local: local.to_string(),
            domain: domain_lc,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }
    pub fn local_part(&self) -> &str {
        &self.local
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The account kind known before any request, with its basis.
    pub fn initial_kind(&self) -> (AccountKind, Vec<String>) {
        if is_consumer_domain(&self.domain) {
            (
                AccountKind::Consumer,
                vec![format!("consumer domain {}", self.domain)],
            )
        } else {
            (AccountKind::Unknown, Vec::new())
        }
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

/// Second-level labels of Microsoft's consumer mail domains; each is a consumer domain under
/// every country suffix Microsoft registered it in (listed in `CONSUMER_SUFFIXES`).
const CONSUMER_BRANDS: &[&str] = &["outlook", "hotmail", "live", "msn", "windowslive"];

/// The public suffixes under which the brands above serve consumer mail (ISPDB `hotmail.com.xml`).
const CONSUMER_SUFFIXES: &[&str] = &[
    "com", "at", "be", "ca", "cl", "cn", "cz", "de", "dk", "es", "fi", "fr", "gr", "hk", "hu",
    "ie", "in", "it", "jp", "kr", "lt", "lv", "my", "nl", "no", "ph", "pt", "rs", "ru", "sa", "se",
    "sg", "sk", "co.id", "co.il", "co.in", "co.jp", "co.kr", "co.th", "co.uk", "co.za", "com.ar",
    "com.au", "com.br", "com.gr", "com.hk", "com.mx", "com.my", "com.ph", "com.pt", "com.sg",
    "com.tr", "com.tw", "com.vn",
];

/// Single consumer domains outside the brand × suffix pattern.
const CONSUMER_EXTRA: &[&str] = &["passport.com", "livemail.tw", "msn.cn"];

/// True when the domain is one of Microsoft's consumer (Outlook.com) mail domains.
pub fn is_consumer_domain(domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if CONSUMER_EXTRA.contains(&d.as_str()) {
        return true;
    }
    let Some((brand, suffix)) = d.split_once('.') else {
        return false;
    };
    CONSUMER_BRANDS.contains(&brand) && CONSUMER_SUFFIXES.contains(&suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases_domain() {
        let m = Mailbox::parse("  Alice.Smith@Contoso.COM ").unwrap();
        assert_eq!(m.address(), "Alice.Smith@contoso.com");
        assert_eq!(m.domain(), "contoso.com");
        assert_eq!(m.local_part(), "Alice.Smith");
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "",
            "alice",
            "@contoso.com",
            "alice@",
            "alice@contoso",
            "alice@-contoso.com",
            "al ice@contoso.com",
            "alice@contoso..com",
            ".alice@contoso.com",
            "alice@192.168.0.1",
            "a\"b@contoso.com",
            "alice@contoso.com\r\nX-Injected: 1",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@contoso.com", "a".repeat(300));
        assert_eq!(Mailbox::parse(&long), Err(AddressError::TooLong));
    }

    #[test]
    fn consumer_domains() {
        for d in [
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "windowslive.com",
            "passport.com",
            "hotmail.co.uk",
            "outlook.de",
            "live.com.au",
            "OUTLOOK.FR",
        ] {
            assert!(is_consumer_domain(d), "{d}");
        }
        for d in [
            "contoso.com",
            "outlook.office365.com",
            "mail.outlook.com",
            "contoso.onmicrosoft.com",
            "outlook.example",
            "liveops.com",
        ] {
            assert!(!is_consumer_domain(d), "{d}");
        }
    }

    #[test]
    fn initial_kind_names_its_basis() {
        let (k, basis) = Mailbox::parse("a@hotmail.com").unwrap().initial_kind();
        assert_eq!(k, AccountKind::Consumer);
        assert_eq!(basis, vec!["consumer domain hotmail.com".to_string()]);
        let (k, basis) = Mailbox::parse("a@contoso.com").unwrap().initial_kind();
        assert_eq!(k, AccountKind::Unknown);
        assert!(basis.is_empty());
    }
}
