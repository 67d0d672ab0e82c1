//! Secrets never leak: a run with a known password and one with a known token, at -vv, with
//! --record and a JSON report, against a server that echoes the credentials back in headers
//! and body. Neither the secret nor its Basic base64 form may appear in stdout, stderr, the
//! report or the bundle, and the bundle must still replay to the same diagnosis.
//! The OAuth flows' secrets, refresh tokens included (cached, redeemed, rotated, refused with
//! an echo), are held to the same rule.

mod common;
use base64::Engine;
use common::*;
use std::process::{Command, Stdio};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PASSWORD: &str = "Tr0ub4dor&3-secret";
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiJsZWFrLXRlc3QifQ.c2VjcmV0LXNpZw";

/// Answers 401 and echoes whatever Authorization it got, in a header and in the body.
struct Echo;
impl Respond for Echo {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let auth = req
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        ResponseTemplate::new(401)
            .insert_header("www-authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"invalid_token\"")
            .insert_header("x-echo-authorization", auth.as_str())
            .insert_header("set-cookie", format!("session={auth}").as_str())
            .set_body_string(format!("<html><title>denied</title><body>you sent {auth}</body></html>"))
    }
}

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("ews-probe")
}

fn all_text_under(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
    }
    out
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !text.contains(s),
            "{what} leaks a secret: …{}…",
            &text[text.find(s).unwrap().saturating_sub(40)..][..80.min(text.len())]
        );
    }
}

/// `assert_clean` on each named output of one mode's run.
fn assert_clean_all(mode: &str, outputs: &[(&str, &str)], secrets: &[&str]) {
    for (what, text) in outputs {
        assert_clean(&format!("{mode} {what}"), text, secrets);
    }
}

/// `ews-probe replay BUNDLE --format json`, off the runtime (its servers keep serving).
async fn replay_json(bundle: &std::path::Path) -> std::process::Output {
    let bundle = bundle.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Command::new(bin())
            .arg("replay")
            .arg(&bundle)
            .args(["--format", "json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_any_output_and_the_bundle_replays() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Echo)
        .mount(&server)
        .await;
    let url = ews_url(&server);
    let basic_b64 =
        base64::engine::general_purpose::STANDARD.encode(format!("svc@contoso.com:{PASSWORD}"));
    let secrets = [PASSWORD, TOKEN, basic_b64.as_str()];

    for mode in ["basic", "bearer"] {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        let report = dir.path().join("report.json");
        let mut cmd = Command::new(bin());
        cmd.args([
            "probe",
            "svc@contoso.com",
            "--ews-url",
            &url,
            "--auth",
            mode,
            "-vv",
            "--format",
            "json",
        ])
        .arg("--record")
        .arg(&bundle)
        .arg("--output")
        .arg(&report)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if mode == "basic" {
            cmd.arg("--password-stdin");
        } else {
            cmd.args(["--token-env", "EWS_PROBE_TEST_TOKEN"])
                .env("EWS_PROBE_TEST_TOKEN", TOKEN);
        }
        let out = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{PASSWORD}\n").as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mode}: {stderr}");
        // The run really did send the secret, and the server really did echo it.
        let received = server.received_requests().await.unwrap();
        assert!(received.iter().any(|r| {
            let a = r
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            a.contains(PASSWORD) || a.contains(TOKEN) || a.contains(&basic_b64)
        }));
        // -vv did show the exchange, with the credential masked.
        assert!(
            stderr.contains("Authorization: Basic [redacted]")
                || stderr.contains("Authorization: Bearer [redacted]"),
            "{mode}: {stderr}"
        );
        assert!(
            stderr.contains("x-echo-authorization: "),
            "{mode}: the echo header is traced"
        );
        let report_text = std::fs::read_to_string(&report).unwrap();
        let bundle_text = all_text_under(&bundle);
        assert!(
            bundle_text.contains("[redacted]"),
            "{mode}: the recording was redacted, not empty"
        );
        assert_clean_all(
            mode,
            &[
                ("stdout", &stdout),
                ("stderr", &stderr),
                ("report", &report_text),
                ("bundle", &bundle_text),
            ],
            &secrets,
        );

        // The redacted bundle replays offline to the same diagnosis.
        let replay = replay_json(&bundle).await;
        assert_eq!(replay.status.code(), Some(2));
        let live: serde_json::Value = serde_json::from_str(&report_text).unwrap();
        let again: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
        assert_eq!(live["diagnoses"], again["diagnoses"], "{mode}");
        assert_eq!(live["features"], again["features"], "{mode}");
        assert_eq!(live["status"], again["status"]);
    }
}

#[test]
fn secret_flags_take_names_not_values() {
    // There is no flag that takes a password or token value.
    let help = Command::new(bin())
        .args(["probe", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--password ", "--token ", "--client-secret "] {
        assert!(!text.contains(flag), "{flag} must not exist");
    }
    assert!(text.contains("--password-env <VAR>") && text.contains("--token-file <PATH>"));
}

const CLIENT_SECRET: &str = "Q~oauth-client-secret.Leak/Test+1";
const DEVICE_CODE: &str = "DAQABAAEAAAD-leak-test-device-code-value";
const TOKEN_SIGNATURE: &str = "b2F1dGgtdG9rZW4tc2lnbmF0dXJlLWxlYWs";

/// OAuth modes: the client secret, the device code and the access token (its signature: the
/// header and claims are kept on purpose, they explain refusals) appear in no output, the
/// recording included, while the server echoes the token back; the bundle replays the sign-in.
#[tokio::test(flavor = "multi_thread")]
async fn no_oauth_secret_in_any_output_and_the_bundle_replays() {
    use wiremock::matchers::{method, path_regex};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let token = format!(
        "{}.{}.{TOKEN_SIGNATURE}",
        b64.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
        b64.encode(
            serde_json::json!({"aud": "https://outlook.office365.com", "scp": "EWS.AccessAsUser.All",
                "roles": ["full_access_as_app"], "exp": exp})
            .to_string()
        )
    );
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/devicecode$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "user_code": "ABCD1234", "device_code": DEVICE_CODE,
            "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 0
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/token$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token,
            "refresh_token": "0.AR-refresh-token-leak-value"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("Exchange.asmx$"))
        .respond_with(Echo)
        .mount(&server)
        .await;
    let url = ews_url(&server);
    let secrets = [
        CLIENT_SECRET,
        DEVICE_CODE,
        TOKEN_SIGNATURE,
        token.as_str(),
        "0.AR-refresh-token-leak-value",
    ];
    // The certificate credential: a key made here; its PEM body must never show.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["leak-test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem_dir = tempfile::tempdir().unwrap();
    let pem_path = pem_dir.path().join("app.pem");
    std::fs::write(&pem_path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    let key_pem = key.serialize_pem();
    let key_line = key_pem.lines().nth(2).unwrap().to_string();
    for mode in ["client-credentials", "device-code", "client-cert"] {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        let report = dir.path().join("report.json");
        let mut cmd = Command::new(bin());
        cmd.args([
            "probe",
            "svc@contoso.com",
            "--ews-url",
            &url,
            "--auth",
            if mode == "client-cert" {
                "client-credentials"
            } else {
                mode
            },
            "--client-id",
            "app-1",
            "--tenant",
            "contoso.com",
            "--login-authority",
            &server.uri(),
            "-vv",
            "--format",
            "json",
        ])
        .arg("--record")
        .arg(&bundle)
        .arg("--output")
        .arg(&report)
        .env("EWS_PROBE_TEST_CLIENT_SECRET", CLIENT_SECRET)
        .env("EWS_PROBE_CACHE_DIR", dir.path().join("cache"))
        .stdin(Stdio::null());
        if mode == "client-credentials" {
            cmd.args(["--client-secret-env", "EWS_PROBE_TEST_CLIENT_SECRET"]);
        }
        if mode == "client-cert" {
            cmd.arg("--client-cert").arg(&pem_path);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mode}: {stderr}");
        // The token really went to EWS and came back in the echo.
        let received = server.received_requests().await.unwrap();
        assert!(received.iter().any(|r| {
            r.headers
                .get("authorization")
                .is_some_and(|v| v.to_str().unwrap().contains(&token))
        }));
        assert!(
            stderr.contains("Authorization: Bearer [redacted]"),
            "{mode}: {stderr}"
        );
        assert!(
            stderr.contains("/token"),
            "{mode}: the token request is traced"
        );
        let report_text = std::fs::read_to_string(&report).unwrap();
        let bundle_text = all_text_under(&bundle);
        assert!(
            bundle_text.contains("access_token"),
            "{mode}: token answer recorded"
        );
        // The client assertion's signature, as the token endpoint received it.
        let mut secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        secrets.push(key_line.clone());
        for r in &received {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
                if k == "client_assertion" {
                    secrets.push(v.rsplit('.').next().unwrap().to_string());
                }
            }
        }
        if mode == "client-cert" {
            assert!(secrets.len() > 6, "the assertion was sent");
        }
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        assert_clean_all(
            mode,
            &[
                ("stdout", &stdout),
                ("stderr", &stderr),
                ("report", &report_text),
                ("bundle", &bundle_text),
            ],
            &secrets,
        );
        let replay = replay_json(&bundle).await;
        let live: serde_json::Value = serde_json::from_str(&report_text).unwrap();
        let again: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
        assert_eq!(replay.status.code(), Some(2), "{mode}");
        assert_eq!(live["diagnoses"], again["diagnoses"], "{mode}");
        assert_eq!(live["features"], again["features"], "{mode}");
        let ids = |v: &serde_json::Value| -> Vec<String> {
            v["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&live), ids(&again), "{mode}");
    }
}

const RT1: &str = "0.AXEA-first-refresh-token-leak-value";
const RT2: &str = "0.AR-rotated+refresh/token=leak*value";
const RT3: &str = "0.AXEA-third-refresh-token-leak-value";

/// The identity platform refusing a refresh token and echoing it back (in the description and
/// a header), so the value itself, not only the `refresh_token` field, must be masked.
struct RefuseEchoingRefreshToken;
impl Respond for RefuseEchoingRefreshToken {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let rt = url::form_urlencoded::parse(&req.body)
            .find(|(k, _)| k == "refresh_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        ResponseTemplate::new(400)
            .insert_header("x-echo-grant", rt.as_str())
            .set_body_json(serde_json::json!({
                "error": "invalid_grant",
                "error_description": format!("AADSTS70008: The provided grant {rt} has expired due to inactivity."),
                "error_codes": [70008],
                "trace_id": "0b6e1d2c-aaaa-4bbb-8ccc-111122223333",
                "correlation_id": "5d1e2f3a-dddd-4eee-9fff-444455556666"
            }))
    }
}

/// Refresh tokens (device code flow): received from a sign-in, read from the cache, sent in a
/// refresh request, rotated, refused with an echo: none of them appears in -vv traces, the
/// report, stdout, or a recorded bundle (a recorded run does not use the cache, so its bundle
/// holds a sign-in's answer with a refresh token in it).
#[tokio::test(flavor = "multi_thread")]
async fn no_refresh_token_in_any_output() {
    use wiremock::matchers::{body_string_contains, method, path_regex};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // Access tokens that expire within the cache's margin: every run needs a new one.
    let token = |tag: &str| {
        format!(
            "{}.{}.{}",
            b64.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
            b64.encode(
                serde_json::json!({"aud": "https://outlook.office365.com", "scp": "EWS.AccessAsUser.All",
                    "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 60})
                .to_string()
            ),
            b64.encode(format!("sig-{tag}"))
        )
    };
    let answer = |tag: &str, rt: &str| {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 60, "access_token": token(tag), "refresh_token": rt
        }))
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/devicecode$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "user_code": "ABCD1234", "device_code": DEVICE_CODE,
            "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 0
        })))
        .mount(&server)
        .await;
    // Device code grant: RT1 the first time, RT3 after the refused refresh.
    Mock::given(method("POST"))
        .and(path_regex("/token$"))
        .and(body_string_contains("device_code"))
        .respond_with(answer("one", RT1))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/token$"))
        .and(body_string_contains("device_code"))
        .respond_with(answer("three", RT3))
        .with_priority(2)
        .mount(&server)
        .await;
    // Refresh grant: rotated to RT2 once, then refused with an echo.
    Mock::given(method("POST"))
        .and(path_regex("/token$"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(answer("two", RT2))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/token$"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(RefuseEchoingRefreshToken)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("Exchange.asmx$"))
        .respond_with(Echo)
        .mount(&server)
        .await;
    let url = ews_url(&server);
    let encoded = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (e1, e2, e3) = (encoded(RT1), encoded(RT2), encoded(RT3));
    let secrets = [RT1, RT2, RT3, &e1, &e2, &e3, DEVICE_CODE];
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut traces = Vec::new();
    // 1: device code sign-in (RT1 cached); 2: refresh (RT1 sent, RT2 received and cached);
    // 3: refresh refused with RT2 echoed, then a device code sign-in (RT3); 4: recorded.
    for run in 1..=4 {
        let report = dir.path().join(format!("report-{run}.json"));
        let bundle = dir.path().join(format!("bundle-{run}"));
        let mut cmd = Command::new(bin());
        cmd.args([
            "probe",
            "svc@contoso.com",
            "--ews-url",
            &url,
            "--auth",
            "device-code",
            "--client-id",
            "app-1",
            "--tenant",
            "contoso.com",
            "--login-authority",
            &server.uri(),
            "-vv",
            "--format",
            "json",
        ])
        .arg("--output")
        .arg(&report)
        .env("EWS_PROBE_CACHE_DIR", &cache)
        .stdin(Stdio::null());
        if run == 4 {
            cmd.arg("--record").arg(&bundle);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "run {run}: {stderr}");
        let report_text = std::fs::read_to_string(&report).unwrap();
        let bundle_text = if run == 4 {
            all_text_under(&bundle)
        } else {
            String::new()
        };
        if run == 4 {
            assert!(bundle_text.contains("refresh_token"), "answer recorded");
        }
        for (what, text) in [
            ("stdout", &stdout),
            ("stderr", &stderr),
            ("report", &report_text),
            ("bundle", &bundle_text),
        ] {
            assert_clean(&format!("run {run} {what}"), text, &secrets);
        }
        traces.push((stderr, report_text));
    }
    // The runs did what they were meant to: the refresh token went out and came back.
    let forms: Vec<Vec<(String, String)>> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/token"))
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect();
    let sent: Vec<&str> = forms
        .iter()
        .flatten()
        .filter(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(sent, [RT1, RT2]);
    assert!(
        traces[1].0.contains("refresh_token=[redacted]"),
        "{}",
        traces[1].0
    );
    assert!(traces[2].1.contains("AADSTS70008"), "{}", traces[2].1);
    assert!(traces[2].0.contains("x-echo-grant: "), "the echo is traced");
}
