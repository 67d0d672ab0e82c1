//! Authentication end to end on loopback (issue 4): the challenge step, the OAuth 2.0 client
//! credentials flow (client secret and certificate assertion) and device code flow against a
//! wiremock token endpoint through every error path, token-endpoint error decoding, and the
//! claim-based diagnoses made before any EWS request is sent. Token endpoint answers follow
//! Microsoft's documented shapes (research/security.md §2.3, §2.4, §2.6; entra-docs
//! `v2-oauth2-device-code.md`, `v2-oauth2-client-creds-grant-flow.md`, `reference-error-codes.md`).

mod common;
use base64::Engine;
use common::oauth::*;
use common::*;
use ews_probe::auth::AuthMode;
use ews_probe::auth::facts::AuthFacts;
use ews_probe::auth::oauth::{ClientAuth, OAuthConfig};
use ews_probe::evidence::Outcome;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "contoso.onmicrosoft.com";
const SECRET: &str = "Q~client.secret+with/odd=chars";

fn app_token() -> String {
    jwt(
        serde_json::json!({
            "aud": "https://outlook.office365.com", "tid": "72f988bf-0000-4000-8000-2d7cd011db47",
            "roles": ["full_access_as_app"], "appid": "app-1", "exp": in_an_hour()
        }),
        "not-a-real-signature-but-secret",
    )
}

fn user_token() -> String {
    jwt(
        serde_json::json!({
            "aud": "https://outlook.office365.com", "tid": "72f988bf-0000-4000-8000-2d7cd011db47",
            "scp": "EWS.AccessAsUser.All", "upn": "megan@contoso.com", "exp": in_an_hour()
        }),
        "not-a-real-signature-but-secret",
    )
}

fn token_ok(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token
    }))
}

/// A Microsoft identity platform error answer (reference-error-codes.md shape).
fn token_err(status: u16, error: &str, code: u32) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: described. Trace ID: 0b6e1d2c-aaaa-4bbb-8ccc-111122223333 Correlation ID: 5d1e2f3a-dddd-4eee-9fff-444455556666 Timestamp: 2026-11-24 09:00:01Z"),
        "error_codes": [code],
        "timestamp": "2026-11-24 09:00:01Z",
        "trace_id": "0b6e1d2c-aaaa-4bbb-8ccc-111122223333",
        "correlation_id": "5d1e2f3a-dddd-4eee-9fff-444455556666",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
    }))
}

/// Keeps the tests off the user's real token cache: a temporary cache directory for the
/// whole test binary (EWS_PROBE_CACHE_DIR also turns the OS keyring off).
fn isolate_cache() {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let d = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    // SAFETY: every caller sets the same value.
    unsafe { std::env::set_var("EWS_PROBE_CACHE_DIR", d.path()) };
}

const TOKEN_PATH: &str = "/contoso.onmicrosoft.com/oauth2/v2.0/token";
const DEVICE_PATH: &str = "/contoso.onmicrosoft.com/oauth2/v2.0/devicecode";

async fn on_token(s: &MockServer, resp: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(resp)
        .mount(s)
        .await;
}

async fn token_requests(s: &MockServer) -> Vec<String> {
    s.received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/token"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

fn form(body: &str) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

async fn client_secret_run(s: &MockServer, mailbox: &str) -> ews_probe::report::Report {
    isolate_cache();
    let url = ews_url(s);
    let authority = s.uri();
    // SAFETY: every test of this binary sets this variable to the same value, and nothing
    // else in the process reads or writes it concurrently in a way that could observe a tear.
    unsafe { std::env::set_var("EWS_PROBE_OAUTH_TEST_SECRET", SECRET) };
    probe(&[
        mailbox,
        "--ews-url",
        &url,
        "--auth",
        "client-credentials",
        "--tenant",
        TENANT,
        "--client-id",
        "app-1",
        "--client-secret-env",
        "EWS_PROBE_OAUTH_TEST_SECRET",
        "--login-authority",
        &authority,
        // wiremock reuses server ports, so a cached token of one test would serve another.
        "--no-token-cache",
        "--timeout",
        "10",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn challenge_step_lists_offered_schemes_first() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    on_token(&s, token_ok(&app_token())).await;
    let r = client_secret_run(&s, "megan@contoso.com").await;
    let c = &r.steps[0];
    assert_eq!(c.id, "auth.challenge");
    assert_eq!(c.outcome, Outcome::Pass);
    assert_eq!(c.http_status, Some(401));
    assert!(c.detail.contains("offers Bearer, Basic"), "{}", c.detail);
    assert!(
        c.detail.contains(
            "authorization_uri https://login.microsoftonline.com/common/oauth2/authorize"
        )
    );
    assert!(c.detail.contains("X-OAuth-Enabled: True"));
    assert_eq!(
        c.headers.get("x-oauth-enabled").map(String::as_str),
        Some("True")
    );
    // The challenge carried no credential.
    let get = s
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.method.as_str() == "GET")
        .unwrap();
    assert!(get.headers.get("authorization").is_none());
    // The text report shows it first.
    let text = ews_probe::report::render(&r, ews_probe::report::Format::Text, false);
    let first_step = text
        .lines()
        .find(|l| l.trim_start().starts_with("pass ") || l.trim_start().starts_with("FAIL "))
        .unwrap();
    assert!(first_step.contains("auth.challenge"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scheme_not_offered_suggests_the_right_auth() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .append_header("WWW-Authenticate", "Negotiate")
                .append_header("WWW-Authenticate", "NTLM"),
        )
        .mount(&s)
        .await;
    on(&s, CONNECTIVITY, http("onprem_401_ntlm_only.http")).await;
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), "pw-123\n").unwrap();
    let url = ews_url(&s);
    let r = probe(&[
        "j.smith@contoso.com",
        "--ews-url",
        &url,
        "--auth",
        "basic",
        "--password-file",
        pw.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        codes(&r),
        ["invalid_credentials", "auth_scheme_not_offered"]
    );
    let d = &r.diagnoses[1];
    assert!(
        d.summary.contains("offers only Negotiate, NTLM"),
        "{}",
        d.summary
    );
    assert_eq!(d.remedy, "Use --auth ntlm.");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_secret_flow_impersonates_every_request() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    let token = app_token();
    on_token(&s, token_ok(&token)).await;
    let r = client_secret_run(&s, "megan@contoso.com").await;
    assert_eq!(r.exit_code, 0, "{:#?}", r.diagnoses);
    assert_eq!(feature_statuses(&r), ["available"; 4]);
    assert_eq!(r.steps[1].id, "auth.token");
    assert!(
        r.steps[1].detail.contains("roles full_access_as_app"),
        "{}",
        r.steps[1].detail
    );
    // One token request (never fetched twice per run), in the documented shape.
    let toks = token_requests(&s).await;
    assert_eq!(toks.len(), 1);
    let f = form(&toks[0]);
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["scope"], "https://outlook.office365.com/.default");
    assert_eq!(f["client_id"], "app-1");
    assert_eq!(f["client_secret"], SECRET);
    // Every EWS request: the token, ExchangeImpersonation and X-AnchorMailbox for the mailbox.
    let ews = ews_posts_with(&s, &token).await;
    assert_eq!(ews.len(), 8);
    for q in ews {
        assert_eq!(
            q.headers.get("x-anchormailbox").unwrap(),
            "megan@contoso.com"
        );
        let body = String::from_utf8_lossy(&q.body);
        assert!(body.contains("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>megan@contoso.com</t:PrimarySmtpAddress>"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_flow_sends_a_verifiable_assertion() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    on_token(&s, token_ok(&app_token())).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ews-probe".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    let url = ews_url(&s);
    let authority = s.uri();
    isolate_cache();
    let r = probe(&[
        "megan@contoso.com",
        "--ews-url",
        &url,
        "--auth",
        "client-credentials",
        "--tenant",
        TENANT,
        "--client-id",
        "app-1",
        "--client-cert",
        pem.path().to_str().unwrap(),
        "--login-authority",
        &authority,
        // wiremock reuses server ports, so a cached token of one test would serve another.
        "--no-token-cache",
    ])
    .await;
    assert_eq!(r.exit_code, 0, "{:#?}", r.diagnoses);
    let f = form(&token_requests(&s).await[0]);
    assert_eq!(f["grant_type"], "client_credentials");
    assert!(!f.contains_key("client_secret"));
    assert_eq!(
        f["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let parts: Vec<&str> = f["client_assertion"].split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    use sha2_like::*;
    assert_eq!(header["x5t#S256"], B64.encode(sha256(cert.der())));
    let claims: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], format!("{authority}{TOKEN_PATH}"));
    assert_eq!(claims["iss"], "app-1");
    assert_eq!(claims["sub"], "app-1");
    let (nbf, exp) = (
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > nbf && exp - nbf <= 600);
    // The signature verifies with the certificate's key.
    let pk = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        key.public_key_raw(),
    );
    pk.verify(
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
        &B64.decode(parts[2]).unwrap(),
    )
    .expect("the assertion is signed by the certificate's key");
}

mod sha2_like {
    pub fn sha256(b: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
            .as_ref()
            .to_vec()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_endpoint_errors_are_decoded_before_any_ews_request() {
    for (status, error, code, want) in [
        (400, "invalid_grant", 50020, "consumer_account_no_ews"),
        (400, "unauthorized_client", 700016, "app_not_found"),
        (400, "invalid_grant", 65001, "consent_missing"),
        (401, "invalid_client", 7000215, "invalid_credentials"),
        (400, "invalid_grant", 50076, "mfa_required"),
        (400, "invalid_grant", 50079, "mfa_required"),
        (400, "invalid_request", 90014, "sign_in_failed"),
    ] {
        let s = MockServer::start().await;
        exo_challenge(&s).await;
        healthy(&s).await;
        on_token(&s, token_err(status, error, code)).await;
        let r = client_secret_run(&s, "adele@contoso.com").await;
        assert_eq!(codes(&r), [want], "AADSTS{code}");
        assert_eq!(r.exit_code, 2);
        assert_eq!(feature_statuses(&r), ["unavailable"; 4]);
        let ev = r.diagnoses[0].evidence.join("\n");
        assert!(ev.contains(&format!("AADSTS{code}")), "{ev}");
        assert!(
            ev.contains("trace_id 0b6e1d2c-aaaa-4bbb-8ccc-111122223333"),
            "{ev}"
        );
        assert!(
            ev.contains("correlation_id 5d1e2f3a-dddd-4eee-9fff-444455556666"),
            "{ev}"
        );
        // Nothing was sent to EWS without a token.
        assert!(
            posts(&s)
                .await
                .iter()
                .all(|q| q.url.path() != "/EWS/Exchange.asmx"),
            "AADSTS{code}"
        );
        assert_eq!(r.steps[2].outcome, Outcome::Skip);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_claims_are_judged_before_any_ews_request() {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (claims, want) in [
        (
            serde_json::json!({"aud": "https://graph.microsoft.com", "roles": ["full_access_as_app"], "exp": now + 3600}),
            "token_wrong_audience",
        ),
        (
            serde_json::json!({"aud": "https://outlook.office365.com", "roles": ["Mail.Read"], "exp": now + 3600}),
            "token_missing_permission",
        ),
        (
            serde_json::json!({"aud": "https://outlook.office365.com", "roles": ["full_access_as_app"], "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "exp": now + 3600}),
            "consumer_account_no_ews",
        ),
        (
            serde_json::json!({"aud": "https://outlook.office365.com", "roles": ["full_access_as_app"], "exp": now - 60}),
            "token_expired",
        ),
    ] {
        let s = MockServer::start().await;
        exo_challenge(&s).await;
        healthy(&s).await;
        on_token(
            &s,
            token_ok(&jwt(claims.clone(), "not-a-real-signature-but-secret")),
        )
        .await;
        let r = client_secret_run(&s, "adele@contoso.com").await;
        assert_eq!(codes(&r), [want], "{claims}");
        assert_eq!(r.exit_code, 2);
        assert!(
            posts(&s)
                .await
                .iter()
                .all(|q| q.url.path() != "/EWS/Exchange.asmx"),
            "{claims}"
        );
    }
    // An opaque (personal account) token is not a JWT.
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    on_token(&s, token_ok("EwBoA8l6BAAUbDba3x2OMJElkF7gJ4z/opaque")).await;
    let r = client_secret_run(&s, "adele@contoso.com").await;
    assert_eq!(codes(&r), ["token_invalid"]);
}

async fn device_endpoint(s: &MockServer, interval: u64) {
    Mock::given(method("POST"))
        .and(path(DEVICE_PATH))
        .and(body_string_contains("client_id=public-app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "user_code": "FJ4HXKQ2B",
            "device_code": "DAQABAAEAAAD--DLA3VO7QrddgJg7WevrDEVICECODE",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": interval,
            "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FJ4HXKQ2B to authenticate."
        })))
        .mount(s)
        .await;
}

/// The token endpoint answers `first` once (pending, slow_down …), then `then`.
async fn device_token(s: &MockServer, first: Vec<ResponseTemplate>, then: ResponseTemplate) {
    for (i, r) in first.into_iter().enumerate() {
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(r)
            .up_to_n_times(1)
            .with_priority(1 + i as u8)
            .mount(s)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(then)
        .with_priority(50)
        .mount(s)
        .await;
}

fn pending() -> ResponseTemplate {
    token_err(400, "authorization_pending", 70016)
}

async fn device_run(s: &MockServer, mailbox: &str) -> ews_probe::report::Report {
    isolate_cache();
    let url = ews_url(s);
    let authority = s.uri();
    probe(&[
        mailbox,
        "--ews-url",
        &url,
        "--auth",
        "device-code",
        "--tenant",
        TENANT,
        "--client-id",
        "public-app",
        "--login-authority",
        &authority,
        // wiremock reuses server ports, so a cached token of one test would serve another.
        "--no-token-cache",
        "--timeout",
        "10",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn device_code_flow_polls_until_signed_in() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    device_endpoint(&s, 0).await;
    let token = user_token();
    device_token(&s, vec![pending(), pending()], token_ok(&token)).await;
    let r = device_run(&s, "megan@contoso.com").await;
    assert_eq!(r.exit_code, 0, "{:#?}", r.diagnoses);
    let ids: Vec<&str> = r.steps.iter().take(3).map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["auth.challenge", "auth.devicecode", "auth.token"]);
    assert_eq!(
        r.steps[2].attempts, 3,
        "two pending answers, then the token"
    );
    // The device authorization request asked for the delegated EWS scope, never consumers.
    let reqs = s.received_requests().await.unwrap();
    let dev = reqs.iter().find(|q| q.url.path() == DEVICE_PATH).unwrap();
    let f = form(&String::from_utf8_lossy(&dev.body));
    assert_eq!(
        f["scope"],
        "https://outlook.office365.com/EWS.AccessAsUser.All offline_access"
    );
    let polls = token_requests(&s).await;
    assert_eq!(polls.len(), 3);
    for p in &polls {
        let f = form(p);
        assert_eq!(
            f["grant_type"],
            "urn:ietf:params:oauth:grant-type:device_code"
        );
        assert_eq!(
            f["device_code"],
            "DAQABAAEAAAD--DLA3VO7QrddgJg7WevrDEVICECODE"
        );
    }
    // Delegated: the token, no impersonation.
    assert_delegated(&s, &token).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn device_code_error_paths() {
    for (answer, want, needle) in [
        (
            token_err(400, "authorization_declined", 70000),
            "sign_in_failed",
            "declined",
        ),
        (
            token_err(400, "expired_token", 70019),
            "sign_in_failed",
            "expired",
        ),
        (
            token_err(400, "bad_verification_code", 70018),
            "sign_in_failed",
            "did not recognise",
        ),
        (
            token_err(400, "invalid_grant", 50020),
            "consumer_account_no_ews",
            "personal Microsoft account",
        ),
    ] {
        let s = MockServer::start().await;
        exo_challenge(&s).await;
        device_endpoint(&s, 0).await;
        device_token(&s, vec![pending()], answer).await;
        let r = device_run(&s, "jamie.doe@contoso.com").await;
        assert_eq!(codes(&r), [want]);
        assert!(
            r.diagnoses[0].summary.contains(needle),
            "{}",
            r.diagnoses[0].summary
        );
        assert_eq!(r.exit_code, 2);
        assert_eq!(token_requests(&s).await.len(), 2);
    }
    // The device authorization endpoint itself refuses (unknown app).
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    Mock::given(method("POST"))
        .and(path(DEVICE_PATH))
        .respond_with(token_err(400, "unauthorized_client", 700016))
        .mount(&s)
        .await;
    let r = device_run(&s, "megan@contoso.com").await;
    assert_eq!(codes(&r), ["app_not_found"]);
    assert!(token_requests(&s).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let s = MockServer::start().await;
    device_endpoint(&s, 1).await;
    device_token(
        &s,
        vec![pending(), token_err(400, "slow_down", 70016), pending()],
        token_ok(&user_token()),
    )
    .await;
    let client = ews_probe::transport::http::HttpClient::new(&Default::default()).unwrap();
    let t = ews_probe::transport::Transport::http(
        Arc::new(client),
        Arc::new(Default::default()),
        Duration::from_secs(30),
    );
    let cfg = OAuthConfig::new(
        AuthMode::DeviceCode,
        url::Url::parse(&s.uri()).unwrap(),
        TENANT.into(),
        "public-app".into(),
        ClientAuth::None,
    );
    let slept: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let rec = slept.clone();
    let got = cfg
        .acquire_with(
            &t,
            time::OffsetDateTime::now_utc().unix_timestamp(),
            move |d| {
                rec.lock().unwrap().push(d);
                Box::pin(async {})
            },
        )
        .await;
    assert!(got.usable);
    assert!(cfg.token().is_some());
    assert_eq!(
        *slept.lock().unwrap(),
        [1, 6, 6].map(Duration::from_secs),
        "interval 1 s; slow_down adds 5 s for this and every later poll"
    );
    let Some(AuthFacts::Token { polls, .. }) = &got.steps.last().unwrap().auth else {
        panic!("token facts")
    };
    assert_eq!(*polls, 4);
    // A second acquisition in the same run reuses the token: no request.
    let before = s.received_requests().await.unwrap().len();
    let again = cfg.acquire_with(&t, 0, |_| Box::pin(async {})).await;
    assert!(again.usable && again.steps.is_empty());
    assert_eq!(s.received_requests().await.unwrap().len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_for_oauth_flags() {
    isolate_cache();
    for (args, needle) in [
        (vec!["--auth", "client-credentials"], "--client-id"),
        (
            vec!["--auth", "client-credentials", "--client-id", "a"],
            "exactly one of",
        ),
        (
            vec![
                "--auth",
                "device-code",
                "--client-id",
                "a",
                "--tenant",
                "consumers",
            ],
            "personal Microsoft accounts",
        ),
        (
            vec![
                "--auth",
                "device-code",
                "--client-id",
                "a",
                "--login-authority",
                "http://login.example.com",
            ],
            "https",
        ),
    ] {
        let mut all = vec![
            "megan@contoso.com",
            "--ews-url",
            "https://outlook.office365.com/EWS/Exchange.asmx",
        ];
        all.extend(args.iter().copied());
        let e = try_probe(&all).await.unwrap_err().to_string();
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

/// The time a person takes to sign in is not the probe's: with --timeout 1 and two polls a
/// second apart, the sign-in still completes and the EWS checks run.
#[tokio::test(flavor = "multi_thread")]
async fn device_code_wait_does_not_count_against_the_timeout() {
    isolate_cache();
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    device_endpoint(&s, 1).await;
    device_token(&s, vec![pending(), pending()], token_ok(&user_token())).await;
    let url = ews_url(&s);
    let authority = s.uri();
    let started = std::time::Instant::now();
    let r = probe(&[
        "megan@contoso.com",
        "--ews-url",
        &url,
        "--auth",
        "device-code",
        "--tenant",
        TENANT,
        "--client-id",
        "public-app",
        "--login-authority",
        &authority,
        "--no-token-cache",
        "--timeout",
        "1",
    ])
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two 1 s poll intervals were waited"
    );
    assert_eq!(r.exit_code, 0, "{:#?}", r.diagnoses);
    assert_eq!(token_requests(&s).await.len(), 3);
}

/// A token endpoint that stops answering during polling ends the wait after three failed polls
/// in a row (oauth2 alone would keep backing off until the code expires, 15 minutes).
#[tokio::test(flavor = "multi_thread")]
async fn device_code_polling_gives_up_on_a_dead_token_endpoint() {
    let s = MockServer::start().await;
    device_endpoint(&s, 0).await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(pending().set_delay(Duration::from_secs(2)))
        .mount(&s)
        .await;
    let opts = ews_probe::transport::http::HttpOptions {
        read_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let client = ews_probe::transport::http::HttpClient::new(&opts).unwrap();
    let t = ews_probe::transport::Transport::http(
        Arc::new(client),
        Arc::new(Default::default()),
        Duration::from_secs(30),
    );
    let cfg = OAuthConfig::new(
        AuthMode::DeviceCode,
        url::Url::parse(&s.uri()).unwrap(),
        TENANT.into(),
        "public-app".into(),
        ClientAuth::None,
    );
    let started = std::time::Instant::now();
    let got = cfg.acquire_with(&t, 0, |_| Box::pin(async {})).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!got.usable);
    let last = got.steps.last().unwrap();
    assert_eq!(last.id, "auth.token");
    assert_eq!(last.outcome, Outcome::Fail);
    assert_eq!(last.attempts.count, 3, "{}", last.detail);
    // The deadline is back where it was (not extended by the code's 15 minutes).
    assert!(t.remaining() <= Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_acquisitions_share_one_token_request() {
    let s = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_ok(&app_token()).set_delay(Duration::from_millis(200)))
        .mount(&s)
        .await;
    let client =
        Arc::new(ews_probe::transport::http::HttpClient::new(&Default::default()).unwrap());
    let redactor: Arc<ews_probe::transport::redact::Redactor> = Arc::new(Default::default());
    let cfg = Arc::new(OAuthConfig::new(
        AuthMode::ClientCredentials,
        url::Url::parse(&s.uri()).unwrap(),
        TENANT.into(),
        "app-1".into(),
        ClientAuth::Secret(SECRET.into()),
    ));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Eight "mailboxes", each with its own transport, ask at the same moment.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (cfg, client, redactor) = (cfg.clone(), client.clone(), redactor.clone());
            tokio::spawn(async move {
                let t = ews_probe::transport::Transport::http(
                    client,
                    redactor,
                    Duration::from_secs(30),
                );
                cfg.acquire(&t, now).await
            })
        })
        .collect();
    let mut fetched = 0;
    for t in tasks {
        let got = t.await.unwrap();
        assert!(got.usable);
        assert_eq!(got.steps.len(), 1);
        let st = &got.steps[0];
        assert_eq!(st.outcome, Outcome::Pass);
        if st
            .detail
            .starts_with("obtained once for this run and reused")
        {
            assert_eq!(st.duration_ms, 0.0);
        } else {
            assert!(st.duration_ms >= 200.0, "{}", st.duration_ms);
            fetched += 1;
        }
        assert!(matches!(st.auth, Some(AuthFacts::Token { .. })));
    }
    assert_eq!(fetched, 1);
    assert_eq!(token_requests(&s).await.len(), 1);
    assert!(cfg.token().is_some());
}
