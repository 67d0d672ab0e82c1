//! The OAuth token cache across runs (issue 4): a second probe with the same app and tenant
//! uses the cached token (no token request), `ews-probe logout` clears it, and the next run
//! fetches again. Its own test binary, so its EWS_PROBE_CACHE_DIR (a temporary directory; the
//! OS keyring is off with it) is not shared with other tests.

mod common;
use common::*;
use std::process::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread")]
async fn cached_token_is_reused_and_logout_clears_it() {
    let cache = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary; set before any probe runs.
    unsafe {
        std::env::set_var("EWS_PROBE_CACHE_DIR", cache.path());
        std::env::set_var("EWS_PROBE_CACHE_TEST_SECRET", "s3cret-for-cache-test");
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let token = format!(
        "{}.{}.c2ln",
        b64.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
        b64.encode(
            serde_json::json!({"aud": "https://outlook.office365.com", "roles": ["full_access_as_app"], "exp": exp})
                .to_string()
        )
    );
    let s = MockServer::start().await;
    healthy(&s).await;
    Mock::given(method("POST"))
        .and(path("/contoso.com/oauth2/v2.0/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token
        })))
        .mount(&s)
        .await;
    let url = ews_url(&s);
    let authority = s.uri();
    let args = [
        "megan@contoso.com",
        "--ews-url",
        &url,
        "--auth",
        "client-credentials",
        "--tenant",
        "contoso.com",
        "--client-id",
        "app-1",
        "--client-secret-env",
        "EWS_PROBE_CACHE_TEST_SECRET",
        "--login-authority",
        &authority,
    ];
    let first = probe(&args).await;
    assert_eq!(first.exit_code, 0, "{:#?}", first.diagnoses);
    assert_eq!(token_requests(&s).await, 1);
    let file = cache.path().join("tokens.json");
    assert!(file.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Second run: the cached token, no token request, and the same EWS result.
    let second = probe(&args).await;
    assert_eq!(second.exit_code, 0);
    assert_eq!(token_requests(&s).await, 1, "the cached token was used");
    assert!(
        second.steps[1].detail.contains("token from the cache"),
        "{}",
        second.steps[1].detail
    );
    // logout clears it (the binary, with the same cache directory).
    let out = Command::new(assert_cmd::cargo::cargo_bin("ews-probe"))
        .arg("logout")
        .env("EWS_PROBE_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1 cached token"));
    assert!(!file.exists());
    let third = probe(&args).await;
    assert_eq!(third.exit_code, 0);
    assert_eq!(token_requests(&s).await, 2, "fetched again after logout");
}

async fn token_requests(s: &MockServer) -> usize {
    s.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/token"))
        .count()
}
