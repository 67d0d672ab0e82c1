//! The device code flow's refresh token (cached with its access token): when the access token
//! has expired, the next run redeems the refresh token instead of a new sign-in; a refused
//! refresh token is dropped and the device code flow runs; other failures keep it; `logout`
//! and `--no-token-cache` cover it. Each test runs the binary with its own
//! EWS_PROBE_CACHE_DIR (a temporary directory, the OS keyring off) against its own wiremock
//! identity platform and EWS endpoint on 127.0.0.1.
//!
//! Shapes: the refresh request and answer follow entra-docs `v2-oauth2-auth-code-flow.md`
//! ("Refresh the access token": `client_id`, `grant_type=refresh_token`, `scope`,
//! `refresh_token`; the answer carries a new `refresh_token`, "Refresh tokens replace themselves
//! with a fresh token upon every use", `refresh-tokens.md`); error answers follow
//! `reference-error-codes.md` (AADSTS70008 expired or revoked grant, AADSTS50076 MFA required),
//! as in tests/oauth.rs.

mod common;
use base64::Engine;
use common::oauth::jwt;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "contoso.onmicrosoft.com";
const TOKEN_PATH: &str = "/contoso.onmicrosoft.com/oauth2/v2.0/token";
const DEVICE_PATH: &str = "/contoso.onmicrosoft.com/oauth2/v2.0/devicecode";
const SCOPE: &str = "https://outlook.office365.com/EWS.AccessAsUser.All offline_access";
const RT1: &str = "0.AXEA-first-refresh-token.AgABAAEAAAD";
const RT2: &str = "0.AXEA-rotated-refresh-token.AgABAAEAAAE";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A delegated EWS access token (unsigned: the probe reads claims, never verifies).
fn user_token(tag: &str, exp: i64) -> String {
    jwt(
        serde_json::json!({"aud": "https://outlook.office365.com", "scp": "EWS.AccessAsUser.All",
            "tid": "72f988bf-0000-4000-8000-2d7cd011db47", "upn": "megan@contoso.com",
            "exp": exp, "tag": tag}),
        &format!("signature-{tag}"),
    )
}

fn token_ok(access: &str, refresh: Option<&str>) -> ResponseTemplate {
    let mut body = serde_json::json!({
        "token_type": "Bearer", "scope": "https://outlook.office365.com/EWS.AccessAsUser.All",
        "expires_in": 3599, "ext_expires_in": 3599, "access_token": access
    });
    if let Some(r) = refresh {
        body["refresh_token"] = r.into();
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn token_err(error: &str, code: u32) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: described. Trace ID: 0b6e1d2c-aaaa-4bbb-8ccc-111122223333 Correlation ID: 5d1e2f3a-dddd-4eee-9fff-444455556666 Timestamp: 2026-11-24 09:00:01Z"),
        "error_codes": [code],
        "timestamp": "2026-11-24 09:00:01Z",
        "trace_id": "0b6e1d2c-aaaa-4bbb-8ccc-111122223333",
        "correlation_id": "5d1e2f3a-dddd-4eee-9fff-444455556666"
    }))
}

/// Exchange Online: a Bearer challenge, healthy EWS answers, and a device authorization
/// endpoint. The device code grant answers `answers` in turn (the last one from then on).
async fn server(device_answers: Vec<ResponseTemplate>) -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/EWS/Exchange.asmx"))
        .respond_with(ResponseTemplate::new(401).append_header(
            "WWW-Authenticate",
            r#"Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize""#,
        ))
        .mount(&s)
        .await;
    healthy(&s).await;
    Mock::given(method("POST"))
        .and(path(DEVICE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "user_code": "FJ4HXKQ2B", "device_code": "DAQABAAEAAAD-refresh-test-device-code",
            "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 0
        })))
        .mount(&s)
        .await;
    let n = device_answers.len();
    for (i, r) in device_answers.into_iter().enumerate() {
        let m = Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .and(body_string_contains("grant-type%3Adevice_code"))
            .respond_with(r)
            .with_priority(1 + i as u8);
        if i + 1 < n {
            m.up_to_n_times(1).mount(&s).await;
        } else {
            m.mount(&s).await;
        }
    }
    s
}

async fn on_refresh(s: &MockServer, r: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(r)
        .mount(s)
        .await;
}

/// The auth steps of a run whose refresh was not usable: the device code sign-in follows.
const REFRESH_THEN_SIGN_IN: [&str; 4] = [
    "auth.challenge",
    "auth.refresh",
    "auth.devicecode",
    "auth.token",
];

struct Run {
    code: Option<i32>,
    report: serde_json::Value,
    stderr: String,
}

impl Run {
    fn ids(&self) -> Vec<String> {
        self.report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .take_while(|id| id.starts_with("auth."))
            .collect()
    }
    fn step(&self, id: &str) -> &serde_json::Value {
        self.report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id}: {:#}", self.report))
    }
    /// A step's detail text.
    fn detail(&self, id: &str) -> String {
        self.step(id)["detail"].as_str().unwrap().to_string()
    }
    fn codes(&self) -> Vec<String> {
        self.report["diagnoses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap().to_string())
            .collect()
    }
}

/// One `ews-probe probe --auth device-code` run with its own cache directory.
async fn run(s: &MockServer, cache: &Path, extra: &[&str]) -> Run {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("ews-probe"));
    cmd.args([
        "probe",
        "megan@contoso.com",
        "--ews-url",
        &ews_url(s),
        "--auth",
        "device-code",
        "--tenant",
        TENANT,
        "--client-id",
        "public-app",
        "--login-authority",
        &s.uri(),
        "--timeout",
        "10",
        "--format",
        "json",
    ])
    .args(extra)
    .env("EWS_PROBE_CACHE_DIR", cache)
    .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    Run {
        code: out.status.code(),
        report,
        stderr,
    }
}

fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// The token endpoint requests so far, as forms.
async fn token_forms(s: &MockServer) -> Vec<std::collections::HashMap<String, String>> {
    s.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == TOKEN_PATH)
        .map(|r| form(&r.body))
        .collect()
}

async fn count(s: &MockServer, grant: &str) -> usize {
    token_forms(s)
        .await
        .iter()
        .filter(|f| f["grant_type"].ends_with(grant))
        .count()
}

async fn device_code_requests(s: &MockServer) -> usize {
    s.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == DEVICE_PATH)
        .count()
}

fn cache_text(cache: &Path) -> String {
    std::fs::read_to_string(cache.join("tokens.json")).unwrap_or_default()
}

/// A first run signs in with a device code and gets an access token that expires within the
/// cache's margin (60 s), and a refresh token.
async fn signed_in_once(s: &MockServer, cache: &Path) {
    let first = run(s, cache, &[]).await;
    assert_eq!(first.code, Some(0), "{:#}\n{}", first.report, first.stderr);
    assert_eq!(
        first.ids(),
        ["auth.challenge", "auth.devicecode", "auth.token"]
    );
    assert!(
        cache_text(cache).contains(RT1),
        "the refresh token is cached"
    );
    assert_eq!(count(s, "refresh_token").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_access_token_is_refreshed_without_a_sign_in() {
    let cache = tempfile::tempdir().unwrap();
    let short = user_token("first", now() + 60);
    let s = server(vec![token_ok(&short, Some(RT1))]).await;
    let fresh = user_token("refreshed", now() + 3600);
    on_refresh(&s, token_ok(&fresh, Some(RT2))).await;
    signed_in_once(&s, cache.path()).await;
    let before = s.received_requests().await.unwrap().len();

    let second = run(&s, cache.path(), &[]).await;
    assert_eq!(second.code, Some(0), "{:#}", second.report);
    assert_eq!(second.ids(), ["auth.challenge", "auth.refresh"]);
    let st = second.step("auth.refresh");
    assert_eq!(st["outcome"], "pass");
    assert!(
        st["detail"]
            .as_str()
            .unwrap()
            .contains("refreshed from the cached refresh token"),
        "{st}"
    );
    // One refresh request, as the token endpoint received it; no new device code sign-in.
    assert_eq!(device_code_requests(&s).await, 1);
    assert_eq!(count(&s, "device_code").await, 1);
    let refreshes: Vec<_> = token_forms(&s)
        .await
        .into_iter()
        .filter(|f| f["grant_type"] == "refresh_token")
        .collect();
    assert_eq!(refreshes.len(), 1);
    let f = &refreshes[0];
    assert_eq!(f["client_id"], "public-app");
    assert_eq!(f["scope"], SCOPE);
    assert_eq!(f["refresh_token"], RT1);
    assert!(!f.contains_key("client_secret"), "a public client");
    // The EWS requests of this run carry the new access token.
    let received = s.received_requests().await.unwrap();
    let ews: Vec<_> = received[before..]
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/EWS/Exchange.asmx")
        .collect();
    assert!(!ews.is_empty());
    for r in ews {
        assert_eq!(
            r.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {fresh}")
        );
    }
    // The rotated refresh token replaced the old one, in a file still private to the user.
    let text = cache_text(cache.path());
    assert!(text.contains(RT2) && !text.contains(RT1), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache.path().join("tokens.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A third run uses the refreshed access token from the cache: no request at all.
    let third = run(&s, cache.path(), &[]).await;
    assert_eq!(third.code, Some(0));
    assert_eq!(third.ids(), ["auth.challenge", "auth.token"]);
    assert!(third.detail("auth.token").contains("token from the cache"));
    assert_eq!(token_forms(&s).await.len(), 2);
}

/// A refused refresh token (AADSTS70008, expired) is dropped at once: here the device code
/// sign-in that follows is declined, so nothing is written after the refusal, and what the
/// cache holds is what the probe kept.
#[tokio::test(flavor = "multi_thread")]
async fn refused_refresh_token_is_dropped_and_the_device_code_flow_runs() {
    let cache = tempfile::tempdir().unwrap();
    let short = user_token("first", now() + 60);
    let s = server(vec![
        token_ok(&short, Some(RT1)),
        token_err("authorization_declined", 70000),
    ])
    .await;
    on_refresh(&s, token_err("invalid_grant", 70008)).await;
    signed_in_once(&s, cache.path()).await;

    let second = run(&s, cache.path(), &[]).await;
    assert_eq!(second.ids(), REFRESH_THEN_SIGN_IN);
    // The run's verdict is the device code sign-in's (declined), not the refresh's.
    assert_eq!(second.code, Some(2));
    assert_eq!(second.codes(), ["sign_in_failed"]);
    let st = second.step("auth.refresh");
    assert_eq!(st["outcome"], "fail");
    let detail = st["detail"].as_str().unwrap();
    for needle in [
        "AADSTS70008",
        "expired",
        "removed from the cache",
        "signing in with a device code instead",
        "trace_id 0b6e1d2c-aaaa-4bbb-8ccc-111122223333",
    ] {
        assert!(detail.contains(needle), "{needle}: {detail}");
    }
    assert_eq!(
        count(&s, "refresh_token").await,
        1,
        "never a second refresh"
    );
    assert_eq!(device_code_requests(&s).await, 2);
    let text = cache_text(cache.path());
    assert!(
        !text.contains(RT1),
        "the refused refresh token is gone: {text}"
    );
    // And the next run does not try it again.
    let third = run(&s, cache.path(), &[]).await;
    assert_eq!(
        third.ids(),
        ["auth.challenge", "auth.devicecode", "auth.token"]
    );
    assert_eq!(count(&s, "refresh_token").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mfa_required_on_refresh_falls_back_and_says_so() {
    let cache = tempfile::tempdir().unwrap();
    let short = user_token("first", now() + 60);
    let after_mfa = user_token("after-mfa", now() + 3600);
    let s = server(vec![
        token_ok(&short, Some(RT1)),
        token_ok(&after_mfa, Some(RT2)),
    ])
    .await;
    on_refresh(&s, token_err("invalid_grant", 50076)).await;
    signed_in_once(&s, cache.path()).await;

    let second = run(&s, cache.path(), &[]).await;
    assert_eq!(second.code, Some(0), "{:#}", second.report);
    assert_eq!(second.ids(), REFRESH_THEN_SIGN_IN);
    let detail = second.detail("auth.refresh");
    assert!(
        detail.contains("multi-factor authentication") && detail.contains("AADSTS50076"),
        "{detail}"
    );
    // Said on the terminal too, before the device code prompt.
    assert!(
        second.stderr.contains("multi-factor authentication"),
        "{}",
        second.stderr
    );
    let text = cache_text(cache.path());
    assert!(text.contains(RT2) && !text.contains(RT1), "{text}");
}

/// A token endpoint that fails (HTTP 503, not a refusal of the grant) does not cost the
/// refresh token: the device code flow runs (here the user declines it, so the run fails on
/// that, not on the refresh) and the refresh token is kept for the next run.
#[tokio::test(flavor = "multi_thread")]
async fn refresh_token_is_kept_when_the_token_endpoint_fails() {
    let cache = tempfile::tempdir().unwrap();
    let short = user_token("first", now() + 60);
    let s = server(vec![
        token_ok(&short, Some(RT1)),
        token_err("authorization_declined", 70000),
    ])
    .await;
    on_refresh(
        &s,
        ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"),
    )
    .await;
    signed_in_once(&s, cache.path()).await;

    let second = run(&s, cache.path(), &[]).await;
    assert_eq!(second.code, Some(2));
    assert_eq!(second.ids(), REFRESH_THEN_SIGN_IN);
    let detail = second.detail("auth.refresh");
    assert!(
        detail.contains("HTTP 503") && detail.contains("kept for the next run"),
        "{detail}"
    );
    // The diagnosis is the declined sign-in, not the refresh.
    assert_eq!(second.codes(), ["sign_in_failed"]);
    assert!(
        second.report["diagnoses"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("declined")
    );
    assert_eq!(
        count(&s, "refresh_token").await,
        1,
        "never a second refresh"
    );
    assert!(cache_text(cache.path()).contains(RT1), "kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_and_no_token_cache_cover_the_refresh_token() {
    let cache = tempfile::tempdir().unwrap();
    let short = user_token("first", now() + 60);
    let s = server(vec![token_ok(&short, Some(RT1))]).await;
    on_refresh(
        &s,
        token_ok(&user_token("refreshed", now() + 3600), Some(RT2)),
    )
    .await;
    signed_in_once(&s, cache.path()).await;
    let file = cache.path().join("tokens.json");
    let bytes = std::fs::read(&file).unwrap();

    // --no-token-cache: the refresh token is neither read (a device code sign-in, no refresh
    // request) nor written (the cache file is unchanged).
    let uncached = run(&s, cache.path(), &["--no-token-cache"]).await;
    assert_eq!(uncached.code, Some(0));
    assert_eq!(
        uncached.ids(),
        ["auth.challenge", "auth.devicecode", "auth.token"]
    );
    assert_eq!(count(&s, "refresh_token").await, 0);
    assert_eq!(device_code_requests(&s).await, 2);
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    // logout removes it with its access token.
    let out = Command::new(assert_cmd::cargo::cargo_bin("ews-probe"))
        .arg("logout")
        .env("EWS_PROBE_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1 cached token"));
    assert!(!file.exists());
    let after = run(&s, cache.path(), &[]).await;
    assert_eq!(after.code, Some(0));
    assert_eq!(
        after.ids(),
        ["auth.challenge", "auth.devicecode", "auth.token"]
    );
    assert_eq!(
        count(&s, "refresh_token").await,
        0,
        "nothing left to redeem"
    );
}

/// The refreshed access token is judged like a signed-in one: a wrong audience is diagnosed
/// before any EWS request, and no device code sign-in follows (it would get the same token).
#[tokio::test(flavor = "multi_thread")]
async fn refreshed_token_claims_are_judged_before_any_ews_request() {
    let cache = tempfile::tempdir().unwrap();
    let short = user_token("first", now() + 60);
    let s = server(vec![token_ok(&short, Some(RT1))]).await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let graph = format!(
        "{}.{}.c2ln",
        b64.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
        b64.encode(
            serde_json::json!({"aud": "https://graph.microsoft.com", "scp": "Mail.Read",
                "exp": now() + 3600})
            .to_string()
        )
    );
    on_refresh(&s, token_ok(&graph, Some(RT2))).await;
    signed_in_once(&s, cache.path()).await;
    let ews_before = s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/EWS/Exchange.asmx")
        .count();

    let second = run(&s, cache.path(), &[]).await;
    assert_eq!(second.code, Some(2));
    assert_eq!(second.ids(), ["auth.challenge", "auth.refresh"]);
    assert_eq!(second.codes(), ["token_wrong_audience"]);
    assert_eq!(device_code_requests(&s).await, 1);
    let ews_after = s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/EWS/Exchange.asmx")
        .count();
    assert_eq!(ews_after, ews_before, "no EWS request with that token");
    assert!(!cache_text(cache.path()).contains(&graph), "not cached");
}
