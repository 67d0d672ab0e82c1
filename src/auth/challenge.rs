//! The challenge step (`auth.challenge`): one unauthenticated request to the EWS endpoint, so
//! the report can say which schemes the server offers (`WWW-Authenticate`: Basic, Bearer with
//! its `authorization_uri`, NTLM, Negotiate) and whether `X-OAuth-Enabled` is set, before any
//! credential is sent (research/security.md AD-3). A GET carries no body and no secret.

use super::facts::{AuthFacts, Challenge};
use crate::evidence::{Failure, HttpFacts, Outcome, Step, StepKind};
use crate::transport::{FailureKind, Header, HttpRequest, Method, Transport};

pub const ID: &str = "auth.challenge";

/// A parameter of a `WWW-Authenticate` value, e.g. `authorization_uri="https://…"`.
pub fn param(www_authenticate: &str, name: &str) -> Option<String> {
    let lower = www_authenticate.to_ascii_lowercase();
    let key = format!("{}=", name.to_ascii_lowercase());
    let mut from = 0;
    while let Some(p) = lower[from..].find(&key) {
        let at = from + p;
        let ok = at == 0
            || !lower.as_bytes()[at - 1].is_ascii_alphanumeric()
                && lower.as_bytes()[at - 1] != b'_';
        let start = at + key.len();
        if ok {
            let rest = &www_authenticate[start..];
            return Some(match rest.strip_prefix('"') {
                Some(q) => q.split('"').next().unwrap_or("").to_string(),
                None => rest.split([',', ' ']).next().unwrap_or("").to_string(),
            });
        }
        from = start;
    }
    None
}

/// Reads the challenge facts from a response's headers.
pub fn facts(www_authenticate: Option<&str>, oauth_enabled: Option<&str>) -> Challenge {
    let www = www_authenticate.unwrap_or("");
    Challenge {
        schemes: crate::diagnose::offered_schemes(www),
        authorization_uri: param(www, "authorization_uri"),
        oauth_enabled: oauth_enabled.map(str::to_string),
    }
}

/// A one-line summary for people.
pub fn summary(c: &Challenge) -> String {
    let mut s = if c.schemes.is_empty() {
        "offers no authentication scheme".to_string()
    } else {
        format!("offers {}", c.schemes.join(", "))
    };
    if let Some(u) = &c.authorization_uri {
        s.push_str(&format!("; Bearer authorization_uri {u}"));
    }
    if let Some(o) = &c.oauth_enabled {
        s.push_str(&format!("; X-OAuth-Enabled: {o}"));
    }
    s
}

/// Sends the unauthenticated request and records what the server offered.
pub async fn run(t: &Transport, endpoint: &url::Url) -> Step {
    let req = HttpRequest {
        key: ID.into(),
        method: Method::Get,
        url: endpoint.clone(),
        headers: vec![Header {
            name: "Accept".into(),
            value: "text/xml".into(),
            sensitive: false,
        }],
        body: None,
        retryable: true,
    };
    let mut step = Step::skipped(ID, StepKind::Auth, None, String::new());
    step.skipped = None;
    match t.send(&req).await {
        Err(e) if e.kind == FailureKind::NotRecorded => {
            // A bundle recorded before the challenge step existed.
            step = Step::skipped(
                ID,
                StepKind::Auth,
                None,
                "the recorded bundle holds no challenge".into(),
            );
        }
        Err(e) => {
            step.outcome = Outcome::Fail;
            step.duration_ms = crate::util::millis(e.elapsed);
            let mut f = Failure::from(&e);
            f.message = t.redactor().text(&f.message);
            step.detail = f.message.clone();
            step.failure = Some(f);
        }
        Ok(resp) => {
            let http = HttpFacts::from_response(&resp);
            let c = facts(
                http.header("www-authenticate"),
                http.header("x-oauth-enabled"),
            );
            step.outcome = Outcome::Pass;
            step.duration_ms = crate::util::millis(resp.elapsed);
            step.detail = t.redactor().text(&format!(
                "HTTP {} {}: {}",
                http.status,
                http.reason,
                summary(&c)
            ));
            step.http = Some(http);
            step.auth = Some(AuthFacts::Challenge(c));
        }
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exchange_online_bearer_challenge() {
        let www = r#"Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", Basic Realm="""#;
        let c = facts(Some(www), Some("True"));
        assert_eq!(c.schemes, vec!["Bearer", "Basic"]);
        assert_eq!(
            c.authorization_uri.as_deref(),
            Some("https://login.microsoftonline.com/common/oauth2/authorize")
        );
        assert_eq!(
            summary(&c),
            "offers Bearer, Basic; Bearer authorization_uri https://login.microsoftonline.com/common/oauth2/authorize; X-OAuth-Enabled: True"
        );
    }

    #[test]
    fn reads_on_premises_challenge() {
        let c = facts(Some("Negotiate, NTLM"), None);
        assert_eq!(c.schemes, vec!["Negotiate", "NTLM"]);
        assert_eq!(c.authorization_uri, None);
        assert_eq!(
            summary(&facts(None, None)),
            "offers no authentication scheme"
        );
        assert_eq!(
            param("Bearer realm=x, error=invalid_token", "error").as_deref(),
            Some("invalid_token")
        );
    }
}
