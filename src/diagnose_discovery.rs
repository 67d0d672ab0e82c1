//! Rules on the discovery facts (realm discovery and Autodiscover): the account basis lines
//! and `autodiscover_failed`, naming every method tried and why each failed. Pure, like the
//! rest of [`super`].

use super::Severity;
use crate::discover::Discovery;
use crate::discover::answer::Namespace;
use crate::target::AccountKind;

/// Adds what realm discovery and Autodiscover say about the account.
pub(super) fn account_basis(d: &Discovery, kind: &mut AccountKind, basis: &mut Vec<String>) {
    if let Some(r) = &d.realm {
        let dn = r.domain_name.as_deref().unwrap_or("the domain");
        match r.namespace {
            Namespace::Managed => {
                if *kind == AccountKind::Unknown {
                    *kind = AccountKind::WorkOrSchool;
                }
                basis.push(format!(
                    "realm discovery: {dn} is a managed Microsoft Entra ID domain (work or school account)"
                ));
            }
            Namespace::Federated => {
                if *kind == AccountKind::Unknown {
                    *kind = AccountKind::WorkOrSchool;
                }
                basis.push(format!(
                    "realm discovery: {dn} is a federated Microsoft Entra ID domain (work or school account, sign-in at {})",
                    r.auth_host.as_deref().unwrap_or("its identity provider")
                ));
            }
            Namespace::Unknown => basis.push(
                "realm discovery: no Microsoft Entra ID tenant holds this domain (not a Microsoft 365 work account: Exchange Server or another provider)"
                    .into(),
            ),
        }
    } else if let Some(e) = &d.realm_error {
        basis.push(format!("realm discovery gave no answer ({e})"));
    }
    let no_tenant = d
        .realm
        .as_ref()
        .is_none_or(|r| r.namespace == Namespace::Unknown);
    match d.credential_type {
        Some(0) => basis.push(
            "GetCredentialType: a Microsoft Entra ID (work or school) account has this address"
                .into(),
        ),
        Some(1) => basis.push(
            "GetCredentialType: no Microsoft Entra ID account has this address".into(),
        ),
        Some(5) => {
            if no_tenant && *kind == AccountKind::Unknown {
                *kind = AccountKind::Consumer;
            }
            basis.push(
                "GetCredentialType: the address signs in with another identity provider: a personal Microsoft account (IfExistsResult 5), not a work account"
                    .into(),
            );
        }
        Some(6) => basis.push(
            "GetCredentialType: both a work or school account and a personal Microsoft account use this address"
                .into(),
        ),
        Some(n) => basis.push(format!(
            "GetCredentialType gave no verdict (IfExistsResult {n}: throttled or server error)"
        )),
        None => {
            if let Some(e) = &d.credential_type_error {
                basis.push(format!("GetCredentialType gave no answer ({e})"));
            }
        }
    }
    if let (Some(e), Some(m)) = (&d.endpoint, &d.found_by) {
        basis.push(format!("{m} named the EWS endpoint {e}"));
    }
}

/// `autodiscover_failed`: severity, summary, remedy and one evidence line per method.
pub(super) fn autodiscover_failed(d: &Discovery) -> (Severity, String, String, Vec<String>) {
    let tried: Vec<String> = d
        .methods
        .iter()
        .map(|m| format!("{} ({})", m.method, m.why))
        .collect();
    let summary = if tried.is_empty() {
        "Autodiscover found no EWS URL: no method could be tried".to_string()
    } else {
        format!(
            "Autodiscover found no EWS URL; {} method(s) tried: {}",
            tried.len(),
            tried.join("; ")
        )
    };
    let mut remedy = Vec::new();
    if !d.refused.is_empty() {
        remedy.push(
            "A redirect went to a host outside the mailbox's domain and was refused, so no credential could leak there; if that host really serves this mailbox, run again with --trust-host HOST (never for autodiscover.<public suffix>).",
        );
    }
    if d.wanted_credentials {
        remedy.push(
            "Some Autodiscover URLs answer only with credentials: run `ews-probe probe` with credentials (they are sent only after a challenge, to trusted hosts).",
        );
    }
    remedy.push(
        "Check the Autodiscover DNS records (autodiscover.<domain> CNAME or A, or _autodiscover._tcp SRV), or pass the EWS URL with --ews-url.",
    );
    let sev = if d.wanted_credentials && d.refused.is_empty() {
        Severity::Unknown
    } else {
        Severity::Critical
    };
    let lines = d
        .methods
        .iter()
        .map(|m| format!("{} at {}: {}", m.method, m.url, m.why))
        .collect();
    (sev, summary, remedy.join(" "), lines)
}

/// `connection_failed` when a proxy answered 407 (to the CONNECT tunnel or to a plain request):
/// the proxy wants credentials this tool does not send to proxies.
pub(super) fn proxy_407(d: &Discovery) -> Option<(Severity, String, String, Vec<String>)> {
    let hit = |w: &str| {
        let l = w.to_ascii_lowercase();
        l.contains("proxy authorization required") || l.contains("407 proxy authentication")
    };
    let lines: Vec<String> = d
        .methods
        .iter()
        .filter(|m| hit(&m.why))
        .map(|m| format!("{} at {}: {}", m.method, m.url, m.why))
        .chain(
            d.realm_error
                .iter()
                .filter(|e| hit(e))
                .map(|e| format!("realm discovery: {e}")),
        )
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some((
        if d.endpoint.is_none() { Severity::Critical } else { Severity::Warning },
        "the proxy requires authentication (HTTP 407 Proxy Authentication Required): requests did not get past it".into(),
        "Corporate proxies often want NTLM/Negotiate, which this tool does not do: ask for a proxy exception (NO_PROXY) for the Exchange and Autodiscover hosts, or run through a local authenticating proxy with --proxy URL.".into(),
        lines,
    ))
}

/// `tls_failure` for each host whose diagnostic handshake failed: the error, the hint, and
/// one evidence line per certificate of the chain. Critical when it blocks the endpoint.
pub(super) fn tls_failures(
    d: &Discovery,
    endpoint: Option<&str>,
) -> Vec<(Severity, String, String, Vec<String>)> {
    let endpoint_host = endpoint
        .and_then(|e| url::Url::parse(e).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    d.network
        .iter()
        .filter_map(|n| {
            let err = n.tls_error.as_ref()?;
            let sev = if endpoint.is_none() || endpoint_host.as_deref() == Some(n.host.as_str()) {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let hint = n.tls_hint.clone().unwrap_or_default();
            let mut lines = vec![format!("{}:{} TLS: {err}", n.host, n.port)];
            lines.extend(
                n.chain
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} certificate {}: {}", n.host, i + 1, c.line())),
            );
            Some((
                sev,
                format!("the TLS handshake with {} failed: {hint}", n.host),
                "Compare the chain in the evidence with what the server should present; behind TLS inspection run again with --ca-file PATH (the inspection root CA, PEM); if the certificate expired or lacks the name, the server's administrator must replace it.".to_string(),
                lines,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Code, Status, diagnose};
    use super::*;
    use crate::discover::MethodResult;
    use crate::discover::answer::Realm;
    use crate::evidence::Evidence;
    use crate::target::Mailbox;

    fn ev(d: Discovery) -> Evidence {
        Evidence {
            mailbox: "a@contoso.example".into(),
            endpoint: d.endpoint.clone(),
            auth: crate::auth::AuthMode::Basic,
            impersonating: false,
            write: false,
            steps: vec![],
            duration_ms: 1.0,
            discovery: Some(d),
        }
    }

    fn m(method: &str, why: &str) -> MethodResult {
        MethodResult {
            method: method.into(),
            url: "https://contoso.example/autodiscover/autodiscover.xml".into(),
            ok: false,
            why: why.into(),
        }
    }

    #[test]
    fn autodiscover_failed_names_every_method_and_why() {
        let d = Discovery {
            autodiscover: true,
            methods: vec![
                m("Autodiscover v2 (JSON)", "HTTP 404 Not Found"),
                m(
                    "POX (autodiscover.xml)",
                    "refused https://evil.example/…: evil.example is outside contoso.example",
                ),
                m(
                    "SOAP GetUserSettings (autodiscover.svc)",
                    "tls: invalid peer certificate: UnknownIssuer",
                ),
            ],
            refused: vec!["evil.example is outside contoso.example".into()],
            ..Discovery::default()
        };
        let v = diagnose(&Mailbox::parse("a@contoso.example").unwrap(), &ev(d));
        assert_eq!(v.diagnoses.len(), 1);
        let x = &v.diagnoses[0];
        assert_eq!(x.code, Code::AutodiscoverFailed);
        assert_eq!(x.severity, Status::Critical);
        for needle in [
            "3 method(s)",
            "v2 (JSON) (HTTP 404",
            "evil.example",
            "UnknownIssuer",
        ] {
            assert!(x.summary.contains(needle), "{needle}: {}", x.summary);
        }
        assert_eq!(x.evidence.len(), 3);
        assert!(x.remedy.contains("--trust-host"));
    }

    #[test]
    fn wanting_credentials_only_is_unknown_not_critical() {
        let d = Discovery {
            autodiscover: true,
            methods: vec![m(
                "POX (autodiscover.xml)",
                "HTTP 401: requires authentication",
            )],
            wanted_credentials: true,
            ..Discovery::default()
        };
        let v = diagnose(&Mailbox::parse("a@contoso.example").unwrap(), &ev(d));
        assert_eq!(v.diagnoses[0].severity, Status::Unknown);
        assert!(v.diagnoses[0].remedy.contains("with credentials"));
    }

    #[test]
    fn realm_sets_the_account_kind_only_when_unknown() {
        let realm = |ns| Realm {
            namespace: ns,
            domain_name: Some("contoso.example".into()),
            brand: None,
            auth_host: Some("sts.contoso.example".into()),
        };
        let mut kind = AccountKind::Unknown;
        let mut basis = vec![];
        let d = Discovery {
            realm: Some(realm(Namespace::Federated)),
            ..Discovery::default()
        };
        account_basis(&d, &mut kind, &mut basis);
        assert_eq!(kind, AccountKind::WorkOrSchool);
        assert!(basis[0].contains("federated") && basis[0].contains("sts.contoso.example"));
        // A consumer stays a consumer whatever realm discovery says.
        let mut kind = AccountKind::Consumer;
        let d = Discovery {
            realm: Some(realm(Namespace::Managed)),
            ..Discovery::default()
        };
        account_basis(&d, &mut kind, &mut vec![]);
        assert_eq!(kind, AccountKind::Consumer);
        let mut kind = AccountKind::Unknown;
        let d = Discovery {
            realm: Some(realm(Namespace::Unknown)),
            ..Discovery::default()
        };
        account_basis(&d, &mut kind, &mut vec![]);
        assert_eq!(kind, AccountKind::Unknown);
    }
}
