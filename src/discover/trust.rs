//! The trust policy: which hosts may receive Autodiscover requests and, after a challenge,
//! credentials. A small pure function with its own tests (research/security.md §1.4, AD-1/AD-4):
//!
//! * trusted: the mailbox's domain and its subdomains; Microsoft's own Exchange Online hosts;
//!   hosts named with `--trust-host`;
//! * never trusted, whatever the flags say: a bare public suffix (`com`, `co.uk`) and
//!   `autodiscover.<public suffix>` (`autodiscover.com`, `autodiscover.com.br`): anyone can
//!   register those, which is how the 2021 "Great Leak" collected 372,072 Windows credentials;
//! * everything else is refused with a message naming the host and `--trust-host`.
//!
//! The public-suffix test is an embedded heuristic, not the full Public Suffix List: every
//! single label, every listed multi-label suffix, and `<co|com|net|org|…>.<two-letter ccTLD>`.
//! It errs on the side of "suffix" for such names, which only ever refuses more.

/// Why a host is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trusted {
    /// The mailbox's own domain or one of its subdomains.
    MailboxDomain,
    /// A Microsoft Exchange Online host.
    Microsoft,
    /// Named with `--trust-host`.
    UserTrusted,
}

/// Why a host is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("{0} is a public suffix: anyone can register names under it; never trusted")]
    PublicSuffix(String),
    #[error(
        "{0} is autodiscover.<public suffix>, a name anyone can register (the 2021 Autodiscover credential leak); never trusted"
    )]
    AutodiscoverSuffix(String),
    #[error(
        "{host} is outside {domain} and not a Microsoft Exchange Online host; refused (pass --trust-host {host} if it really serves this mailbox)"
    )]
    Foreign { host: String, domain: String },
}

/// Registrable-domain roots whose every subdomain is Microsoft's (Exchange Online, worldwide
/// and national clouds; login for realm discovery).
const MICROSOFT_ROOTS: &[&str] = &[
    "office365.com",
    "outlook.com",
    "office.com",
    "microsoftonline.com",
    "office365.us",
    "outlook.cn",
];

/// Multi-label public suffixes that do not follow the `<generic>.<cc>` pattern, and generic
/// TLDs that are registries (every single label is a suffix anyway).
const EXTRA_SUFFIXES: &[&str] = &[
    "com.de",
    "co.com",
    "us.com",
    "uk.com",
    "eu.com",
    "gb.net",
    "uk.net",
    "jpn.com",
    "br.com",
    "cn.com",
    "de.com",
    "ru.com",
    "sa.com",
    "za.com",
    "gov.uk",
    "nhs.uk",
    "police.uk",
    "blogspot.com",
    "github.io",
    "herokuapp.com",
    "azurewebsites.net",
    "cloudapp.net",
    "appspot.com",
];

/// Second-level labels that make `<label>.<two-letter ccTLD>` a registry suffix.
const GENERIC_SECOND_LEVEL: &[&str] = &[
    "co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gen", "ltd", "plc", "nom",
    "mil", "sch", "int", "biz", "info", "me", "gob", "gv", "nic", "web", "in",
];

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// True when `name` is (by this heuristic) a public suffix: nothing below it is one owner's.
pub fn is_public_suffix(name: &str) -> bool {
    let n = normalize(name);
    if n.is_empty() {
        return true;
    }
    let labels: Vec<&str> = n.split('.').collect();
    match labels.as_slice() {
        [_] => true,
        [second, cc] if cc.len() == 2 && GENERIC_SECOND_LEVEL.contains(second) => true,
        _ => EXTRA_SUFFIXES.contains(&n.as_str()),
    }
}

/// The policy of one run.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    domain: String,
    extra: Vec<String>,
}

impl TrustPolicy {
    /// `domain`: the mailbox's domain; `extra`: the `--trust-host` names.
    pub fn new(domain: &str, extra: &[String]) -> Self {
        TrustPolicy {
            domain: normalize(domain),
            extra: extra.iter().map(|h| normalize(h)).collect(),
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `host` may receive discovery requests and, after a challenge, credentials.
    pub fn check(&self, host: &str) -> Result<Trusted, Untrusted> {
        let h = normalize(host);
        if is_public_suffix(&h) {
            return Err(Untrusted::PublicSuffix(h));
        }
        if let Some(rest) = h.strip_prefix("autodiscover.")
            && is_public_suffix(rest)
        {
            return Err(Untrusted::AutodiscoverSuffix(h));
        }
        if self.extra.contains(&h) {
            return Ok(Trusted::UserTrusted);
        }
        if !is_public_suffix(&self.domain)
            && (h == self.domain || h.ends_with(&format!(".{}", self.domain)))
        {
            return Ok(Trusted::MailboxDomain);
        }
        if MICROSOFT_ROOTS
            .iter()
            .any(|r| h == *r || h.ends_with(&format!(".{r}")))
        {
            return Ok(Trusted::Microsoft);
        }
        Err(Untrusted::Foreign {
            host: h,
            domain: self.domain.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(extra: &[&str]) -> TrustPolicy {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        TrustPolicy::new("contoso.example", &extra)
    }

    #[test]
    fn the_mailbox_domain_and_its_subdomains_are_trusted() {
        let t = p(&[]);
        for h in [
            "contoso.example",
            "autodiscover.contoso.example",
            "mail.eu.contoso.example",
            "CONTOSO.EXAMPLE.",
        ] {
            assert_eq!(t.check(h), Ok(Trusted::MailboxDomain), "{h}");
        }
    }

    #[test]
    fn lookalikes_are_foreign() {
        let t = p(&[]);
        for h in [
            "contoso.example.evil.example",
            "evilcontoso.example",
            "contoso-example.com",
            "fabrikam.example",
        ] {
            assert!(
                matches!(t.check(h), Err(Untrusted::Foreign { .. })),
                "{h}: {:?}",
                t.check(h)
            );
        }
        let msg = t.check("fabrikam.example").unwrap_err().to_string();
        assert!(
            msg.contains("fabrikam.example") && msg.contains("--trust-host"),
            "{msg}"
        );
    }

    #[test]
    fn microsoft_exchange_online_hosts_are_trusted() {
        let t = p(&[]);
        for h in [
            "outlook.office365.com",
            "autodiscover-s.outlook.com",
            "outlook.office.com",
            "login.microsoftonline.com",
        ] {
            assert_eq!(t.check(h), Ok(Trusted::Microsoft), "{h}");
        }
        assert!(t.check("office365.com.evil.example").is_err());
    }

    #[test]
    fn autodiscover_under_a_public_suffix_is_never_trusted_even_when_named() {
        let t = p(&["autodiscover.com", "autodiscover.com.br", "com", "co.uk"]);
        for h in [
            "autodiscover.com",
            "autodiscover.com.br",
            "autodiscover.co.uk",
            "autodiscover.es",
        ] {
            assert_eq!(
                t.check(h),
                Err(Untrusted::AutodiscoverSuffix(h.to_string())),
                "{h}"
            );
        }
        for h in ["com", "co.uk", "com.br", "example"] {
            assert_eq!(
                t.check(h),
                Err(Untrusted::PublicSuffix(h.to_string())),
                "{h}"
            );
        }
    }

    #[test]
    fn a_mailbox_on_a_bare_public_suffix_trusts_nothing_of_its_own() {
        let t = TrustPolicy::new("co.uk", &[]);
        assert!(t.check("autodiscover.co.uk").is_err());
        assert!(matches!(
            t.check("mail.co.uk"),
            Err(Untrusted::Foreign { .. })
        ));
        assert!(t.check("outlook.office365.com").is_ok());
    }

    #[test]
    fn trust_host_adds_exactly_that_host() {
        let t = p(&["mail.fabrikam.example"]);
        assert_eq!(t.check("mail.fabrikam.example"), Ok(Trusted::UserTrusted));
        assert!(t.check("other.fabrikam.example").is_err());
    }

    #[test]
    fn public_suffix_heuristic() {
        for s in [
            "com",
            "uk",
            "co.uk",
            "com.au",
            "com.br",
            "or.jp",
            "github.io",
        ] {
            assert!(is_public_suffix(s), "{s}");
        }
        for s in [
            "contoso.com",
            "contoso.co.uk",
            "outlook.com",
            "mail.contoso.example",
        ] {
            assert!(!is_public_suffix(s), "{s}");
        }
    }
}
