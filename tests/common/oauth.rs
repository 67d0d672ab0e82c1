//! OAuth test pieces shared by tests/oauth.rs, tests/fleet_auth.rs and tests/refresh_token.rs:
//! unsigned access tokens (the probe reads claims, never verifies a signature), Exchange
//! Online's Bearer challenge, and the EWS requests a server received with a given token.

use base64::Engine;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A JWT with these claims and this (fake) signature.
pub fn jwt(claims: serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
        B64.encode(claims.to_string()),
        B64.encode(signature)
    )
}

/// Now + one hour, as a JWT `exp`.
pub fn in_an_hour() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + 3600
}

/// Exchange Online's unauthenticated answer: 401 with a Bearer challenge (and Basic offered,
/// as EXO still lists it), `X-OAuth-Enabled: True`.
pub async fn exo_challenge(s: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/EWS/Exchange.asmx"))
        .respond_with(
            ResponseTemplate::new(401)
                .append_header("WWW-Authenticate", r#"Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize""#)
                .append_header("WWW-Authenticate", r#"Basic Realm="""#)
                .append_header("X-OAuth-Enabled", "True"),
        )
        .mount(s)
        .await;
}

/// The SOAP requests `s` received, each asserted to carry `Bearer {token}`.
pub async fn ews_posts_with(s: &MockServer, token: &str) -> Vec<wiremock::Request> {
    let ews: Vec<_> = super::posts(s)
        .await
        .into_iter()
        .filter(|q| q.url.path() == "/EWS/Exchange.asmx")
        .collect();
    for q in &ews {
        assert_eq!(
            q.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {token}")
        );
    }
    ews
}

/// Delegated (device code): every SOAP request carries `token` and impersonates no one.
pub async fn assert_delegated(s: &MockServer, token: &str) {
    for q in ews_posts_with(s, token).await {
        assert!(!String::from_utf8_lossy(&q.body).contains("ExchangeImpersonation"));
    }
}
