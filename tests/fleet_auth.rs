//! `ews-probe fleet` with the authentication modes of `probe` (issue 5: "the auth flags of
//! `probe` apply to all; app-only OAuth uses one token for the whole run"): the real binary
//! against a wiremock EWS endpoint and token endpoint on 127.0.0.1. Token endpoint answers
//! follow Microsoft's documented shapes, as in tests/oauth.rs (research/security.md §2.3, §2.6).

mod common;
use base64::Engine;
use common::oauth::*;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "contoso.onmicrosoft.com";
const TOKEN_PATH: &str = "/contoso.onmicrosoft.com/oauth2/v2.0/token";
const DEVICE_PATH: &str = "/contoso.onmicrosoft.com/oauth2/v2.0/devicecode";
const SECRET: &str = "Q~fleet.client.secret+odd/chars=";

fn app_token() -> String {
    jwt(
        serde_json::json!({
            "aud": "https://outlook.office365.com", "tid": "72f988bf-0000-4000-8000-2d7cd011db47",
            "roles": ["full_access_as_app"], "appid": "app-1", "exp": in_an_hour()
        }),
        "fleet-signature-never-shown",
    )
}

fn user_token() -> String {
    jwt(
        serde_json::json!({
            "aud": "https://outlook.office365.com", "tid": "72f988bf-0000-4000-8000-2d7cd011db47",
            "scp": "EWS.AccessAsUser.All", "upn": "admin@contoso.com", "exp": in_an_hour()
        }),
        "device-signature",
    )
}

/// The token endpoint answers after a delay, so that many mailboxes ask at the same moment.
async fn on_token(s: &MockServer, resp: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(resp.set_delay(Duration::from_millis(400)))
        .mount(s)
        .await;
}

async fn requests_to(s: &MockServer, suffix: &str) -> usize {
    s.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with(suffix))
        .count()
}

fn input(dir: &std::path::Path, n: usize) -> (std::path::PathBuf, Vec<String>) {
    let all: Vec<String> = (0..n).map(|i| format!("user{i}@contoso.com")).collect();
    let p = dir.join("in.txt");
    std::fs::write(&p, all.join("\n") + "\n").unwrap();
    (p, all)
}

/// Runs the binary off the runtime's worker threads (wiremock keeps serving).
async fn fleet(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let cache = tempfile::tempdir().unwrap();
        Command::new(env!("CARGO_BIN_EXE_ews-probe"))
            .arg("fleet")
            .args(&args)
            .envs(env)
            .env("EWS_PROBE_CACHE_DIR", cache.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn one_line_each(got: &[Value], all: &[String]) {
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| r["mailbox"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut want = all.to_vec();
    want.sort();
    assert_eq!(seen, want, "one line per mailbox");
}

fn step<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} step in {r}"))
}

fn client_credentials_args(
    s: &MockServer,
    input: &std::path::Path,
    out: &std::path::Path,
) -> Vec<String> {
    [
        "--input",
        input.to_str().unwrap(),
        "--ews-url",
        &ews_url(s),
        "--auth",
        "client-credentials",
        "--tenant",
        TENANT,
        "--client-id",
        "app-1",
        "--client-secret-env",
        "FLEET_AUTH_TEST_SECRET",
        "--login-authority",
        &s.uri(),
        "--no-token-cache",
        "--concurrency",
        "50",
        "--per-endpoint",
        "50",
        "--output",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_one_token_for_the_run_and_each_mailbox_impersonated() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    let token = app_token();
    on_token(
        &s,
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token
        })),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (inp, all) = input(dir.path(), 50);
    let out = dir.path().join("out.ndjson");
    let mut args = client_credentials_args(&s, &inp, &out);
    args.push("-vv".into());
    let o = fleet(args, vec![("FLEET_AUTH_TEST_SECRET", SECRET.into())]).await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        &stderr[stderr.len().saturating_sub(3000)..]
    );

    // Exactly one token request for the whole run, though 50 mailboxes asked at once; and
    // one challenge GET for the endpoint (observed once, reused by the other mailboxes).
    assert_eq!(requests_to(&s, "/token").await, 1);
    let gets = s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method == wiremock::http::Method::GET)
        .count();
    assert_eq!(gets, 1, "one challenge GET per endpoint");
    let got = lines(&out);
    one_line_each(&got, &all);
    let mut fetched = 0;
    for r in &got {
        assert_eq!(r["status"], "ok", "{r}");
        let t = step(r, "auth.token");
        assert_eq!(t["outcome"], "pass");
        let detail = t["detail"].as_str().unwrap();
        assert!(detail.contains("roles full_access_as_app"), "{detail}");
        if detail.starts_with("obtained once for this run") {
            assert_eq!(t["duration_ms"].as_f64(), Some(0.0));
        } else {
            fetched += 1;
        }
    }
    assert_eq!(
        fetched, 1,
        "one mailbox's line shows the token request itself"
    );
    let observed_here = got
        .iter()
        .filter(|r| {
            let c = step(r, "auth.challenge");
            assert!(
                c["detail"].as_str().unwrap().contains("offers Bearer"),
                "{c}"
            );
            !c["detail"]
                .as_str()
                .unwrap()
                .starts_with("observed once for this endpoint")
        })
        .count();
    assert_eq!(
        observed_here, 1,
        "every line has the challenge step; one sent it"
    );

    // Every EWS request carries the one token and impersonates its own mailbox.
    let ews = ews_posts_with(&s, &token).await;
    assert_eq!(ews.len(), 50 * 8);
    let mut per_mailbox: HashMap<String, usize> = HashMap::new();
    for q in &ews {
        let anchor = q.headers.get("x-anchormailbox").unwrap().to_str().unwrap();
        let body = String::from_utf8_lossy(&q.body);
        assert!(
            body.contains(&format!("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{anchor}</t:PrimarySmtpAddress>")),
            "{anchor}: {body}"
        );
        *per_mailbox.entry(anchor.to_string()).or_default() += 1;
    }
    assert_eq!(per_mailbox.len(), 50);
    assert!(per_mailbox.values().all(|n| *n == 8), "{per_mailbox:?}");

    // Neither the client secret nor the token shows in the output or the -vv trace.
    let output = std::fs::read_to_string(&out).unwrap();
    for text in [stderr.as_ref(), output.as_str()] {
        assert!(!text.contains(SECRET), "client secret leaked");
        assert!(!text.contains(&token), "token leaked");
        assert!(
            !text.contains(&B64.encode("fleet-signature-never-shown")),
            "token signature leaked"
        );
    }
    assert!(
        stderr.contains("client_secret=[redacted]") || stderr.contains("client_secret: [redacted]"),
        "the trace shows the token request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_sign_in_is_decided_once_and_reported_on_every_line() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    // AADSTS7000215: invalid client secret (reference-error-codes.md shape).
    on_token(
        &s,
        ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Trace ID: 0b6e1d2c-aaaa-4bbb-8ccc-111122223333 Correlation ID: 5d1e2f3a-dddd-4eee-9fff-444455556666 Timestamp: 2026-11-24 09:00:01Z",
            "error_codes": [7000215],
            "timestamp": "2026-11-24 09:00:01Z",
            "trace_id": "0b6e1d2c-aaaa-4bbb-8ccc-111122223333",
            "correlation_id": "5d1e2f3a-dddd-4eee-9fff-444455556666"
        })),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (inp, all) = input(dir.path(), 50);
    let out = dir.path().join("out.ndjson");
    let args = client_credentials_args(&s, &inp, &out);
    let o = fleet(args, vec![("FLEET_AUTH_TEST_SECRET", SECRET.into())]).await;
    // DESIGN §5: auth refused is critical.
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        requests_to(&s, "/token").await,
        1,
        "one token request, not one per mailbox"
    );
    assert!(
        posts(&s)
            .await
            .iter()
            .all(|q| q.url.path() != "/EWS/Exchange.asmx"),
        "no EWS request without a token"
    );
    let got = lines(&out);
    one_line_each(&got, &all);
    for r in &got {
        assert_eq!(r["status"], "critical", "{r}");
        assert_eq!(r["diagnoses"][0]["code"], "invalid_credentials", "{r}");
        let ev = r["diagnoses"][0]["evidence"].to_string();
        assert!(ev.contains("AADSTS7000215"), "{ev}");
        assert!(
            ev.contains("trace_id 0b6e1d2c-aaaa-4bbb-8ccc-111122223333"),
            "{ev}"
        );
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("invalid_credentials 50"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn device_code_signs_in_once_for_the_run() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    Mock::given(method("POST"))
        .and(path(DEVICE_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "user_code": "FJ4HXKQ2B",
            "device_code": "DAQABAAEAAAD--FLEETDEVICECODE",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": 1,
            "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code FJ4HXKQ2B to authenticate."
        })))
        .mount(&s)
        .await;
    // One authorization_pending, then the token: the other mailboxes wait through the poll.
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "authorization_pending", "error_codes": [70016],
            "error_description": "AADSTS70016: pending"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s)
        .await;
    let token = user_token();
    on_token(
        &s,
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token
        })),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (inp, all) = input(dir.path(), 12);
    let out = dir.path().join("out.ndjson");
    let args = [
        "--input",
        inp.to_str().unwrap(),
        "--ews-url",
        &ews_url(&s),
        "--auth",
        "device-code",
        "--tenant",
        TENANT,
        "--client-id",
        "public-app",
        "--login-authority",
        &s.uri(),
        "--no-token-cache",
        // Shorter than the sign-in: waiting for the person does not count against it.
        "--timeout",
        "1",
        "--output",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let o = fleet(args, vec![]).await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(requests_to(&s, "/devicecode").await, 1);
    assert_eq!(
        requests_to(&s, "/token").await,
        2,
        "one pending poll, then the token"
    );
    assert_eq!(
        stderr.matches("enter the code FJ4HXKQ2B").count(),
        1,
        "{stderr}"
    );
    let got = lines(&out);
    one_line_each(&got, &all);
    for r in &got {
        assert_eq!(r["status"], "ok", "{r}");
    }
    // Delegated: no impersonation, each mailbox is its own anchor.
    assert_delegated(&s, &token).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificate_one_assertion_and_token_for_the_run() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    let token = app_token();
    on_token(
        &s,
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token
        })),
    )
    .await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ews-probe".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("app.pem");
    std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    let (inp, all) = input(dir.path(), 20);
    let out = dir.path().join("out.ndjson");
    let mut args = client_credentials_args(&s, &inp, &out);
    let i = args
        .iter()
        .position(|a| a == "--client-secret-env")
        .unwrap();
    args.splice(
        i..i + 2,
        [
            "--client-cert".to_string(),
            pem.to_str().unwrap().to_string(),
        ],
    );
    args.push("-vv".into());
    let o = fleet(args, vec![]).await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        &stderr[stderr.len().saturating_sub(3000)..]
    );
    let toks: Vec<String> = s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == TOKEN_PATH)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(toks.len(), 1, "one signed assertion, one token request");
    let form: HashMap<String, String> = url::form_urlencoded::parse(toks[0].as_bytes())
        .into_owned()
        .collect();
    assert!(!form.contains_key("client_secret"));
    let assertion = &form["client_assertion"];
    one_line_each(&lines(&out), &all);
    let anchors: std::collections::HashSet<String> = ews_posts_with(&s, &token)
        .await
        .iter()
        .map(|q| {
            q.headers
                .get("x-anchormailbox")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(anchors.len(), 20);
    // The assertion (a bearer credential) and the token never show in the output or trace.
    let output = std::fs::read_to_string(&out).unwrap();
    for text in [stderr.as_ref(), output.as_str()] {
        assert!(
            !text.contains(assertion.as_str()),
            "client assertion leaked"
        );
        assert!(!text.contains(&token), "token leaked");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_claims_are_judged_once_for_every_mailbox() {
    let s = MockServer::start().await;
    exo_challenge(&s).await;
    healthy(&s).await;
    // An app token without full_access_as_app (research/security.md §2.6).
    let token = jwt(
        serde_json::json!({"aud": "https://outlook.office365.com", "roles": ["Mail.Read"], "exp": in_an_hour()}),
        "sig",
    );
    on_token(
        &s,
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token
        })),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (inp, all) = input(dir.path(), 20);
    let out = dir.path().join("out.ndjson");
    let args = client_credentials_args(&s, &inp, &out);
    let o = fleet(args, vec![("FLEET_AUTH_TEST_SECRET", SECRET.into())]).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(requests_to(&s, "/token").await, 1);
    assert!(
        posts(&s)
            .await
            .iter()
            .all(|q| q.url.path() != "/EWS/Exchange.asmx"),
        "no EWS request with an unusable token"
    );
    let got = lines(&out);
    one_line_each(&got, &all);
    for r in &got {
        assert_eq!(r["diagnoses"][0]["code"], "token_missing_permission", "{r}");
    }
}
