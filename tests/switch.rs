//! `ews-probe switch FROM TO`: the logout-on-switch timeline, live against wiremock (each side
//! with its own credentials), recorded and replayed, and as a demo bundle.

mod common;

use assert_cmd::Command;
use clap::Parser;
use common::*;
use ews_probe::cli::{Cli, Command as Cmd};
use serde_json::Value;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer};

const BUNDLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/sessions/switch-work-to-outlook"
);

fn steps(v: &Value) -> Vec<(String, String)> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn replayed_bundle_shows_the_logout_step_and_tos_diagnosis() {
    let out = Command::cargo_bin("ews-probe")
        .unwrap()
        .args(["switch", "--replay", BUNDLE, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "ews-probe.switch.v1");
    assert_eq!(v["logout_reproduced"], true);
    assert_eq!(
        steps(&v),
        [
            ("sign_in", "accepted"),
            ("features", "ok"),
            ("switch", "done"),
            ("connectivity", "refused"),
            ("diagnosis", "critical"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let t = v["timeline"].as_array().unwrap();
    assert_eq!(t[3]["logout"], true);
    assert!(t[3]["detail"].as_str().unwrap().contains("HTTP 403"));
    assert!(
        t[3]["detail"]
            .as_str()
            .unwrap()
            .contains("an integration logs the user out here")
    );
    // Times only move forward; TO starts when FROM's recorded run ended.
    let at: Vec<f64> = t.iter().map(|e| e["at_ms"].as_f64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    assert_eq!(at[2], v["from"]["duration_ms"].as_f64().unwrap());
    assert_eq!(v["to"]["diagnoses"][0]["code"], "consumer_account_no_ews");
    // Both sides are full DESIGN §4 reports.
    assert_eq!(keys(&v["from"]), keys(&v["to"]));
    assert!(keys(&v["to"]).contains(&"features".to_string()));

    let text = Command::cargo_bin("ews-probe")
        .unwrap()
        .args(["switch", "--replay", BUNDLE])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "ACCEPTED",
        "REFUSED",
        "→ an integration logs the user out here",
        "consumer_account_no_ews",
        "Logout reproduced: yes",
        "Status: CRITICAL (exit 2)",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn demo_switch_scenario_matches_the_replay() {
    let demo = Command::cargo_bin("ews-probe")
        .unwrap()
        .args(["demo", "switch-work-to-outlook", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(demo.status.code(), Some(2));
    let d: Value = serde_json::from_slice(&demo.stdout).unwrap();
    let r: Value = serde_json::from_slice(
        &Command::cargo_bin("ews-probe")
            .unwrap()
            .args(["switch", "--replay", BUNDLE, "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(steps(&d), steps(&r));
    // `replay DIR` knows a switch bundle too.
    let generic: Value = serde_json::from_slice(
        &Command::cargo_bin("ews-probe")
            .unwrap()
            .args(["replay", BUNDLE, "--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(steps(&generic), steps(&r));
    assert_eq!(d["title"], r["title"]);
    let nagios = Command::cargo_bin("ews-probe")
        .unwrap()
        .args(["demo", "switch-work-to-outlook", "--format", "nagios"])
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&nagios.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        first.starts_with("EWS CRITICAL - logout reproduced"),
        "{first}"
    );
}

async fn run_switch(
    args: &[&str],
) -> Result<ews_probe::switch::SwitchReport, ews_probe::app::AppError> {
    let mut argv = vec!["ews-probe", "switch"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).expect("valid flags").command {
        Cmd::Switch(a) => ews_probe::switch::run(&a).await,
        _ => unreachable!(),
    }
}

/// FROM's token is accepted; TO's (a consumer token) gets the 403 with an empty body.
async fn server() -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer to-token-consumer"))
        .respond_with(http("consumer_403_empty.http"))
        .with_priority(1)
        .mount(&s)
        .await;
    healthy(&s).await;
    s
}

#[tokio::test]
async fn live_switch_uses_each_mailboxs_own_credentials_and_records_a_replayable_bundle() {
    let s = server().await;
    let url = ews_url(&s);
    // SAFETY: set before any thread of this test reads the environment; names are unique.
    unsafe {
        std::env::set_var("SWITCH_T_FROM", "from-token-work");
        std::env::set_var("SWITCH_T_TO", "to-token-consumer");
    }
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("case");
    let r = run_switch(&[
        "megan@contoso.com",
        "jamie@outlook.com",
        "--ews-url",
        &url,
        "--from-token-env",
        "SWITCH_T_FROM",
        "--to-token-env",
        "SWITCH_T_TO",
        "--record",
        rec.to_str().unwrap(),
    ])
    .await
    .unwrap();
    assert!(r.logout_reproduced);
    assert_eq!(r.exit_code, 2);
    assert_eq!(r.from.status.label(), "OK");
    assert_eq!(codes(&r.to), ["consumer_account_no_ews"]);
    // Each request carried its own mailbox's token; TO's connectivity was the last request.
    // (The unauthenticated challenge GETs of issue 4 carry none and are left out.)
    let reqs = s.received_requests().await.unwrap();
    let auth: Vec<String> = reqs
        .iter()
        .filter(|q| q.method.as_str() == "POST")
        .map(|q| {
            q.headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        auth.iter()
            .filter(|a| a.ends_with("from-token-work"))
            .count(),
        8
    );
    assert_eq!(auth.last().unwrap(), "Bearer to-token-consumer");
    assert_eq!(auth.len(), 9);
    // The recording holds no token, and replays to the same timeline.
    for e in walk(&rec) {
        let t = std::fs::read_to_string(&e).unwrap();
        assert!(
            !t.contains("from-token-work") && !t.contains("to-token-consumer"),
            "{}",
            e.display()
        );
    }
    let replayed = ews_probe::switch::replay(&rec).await.unwrap();
    let results = |x: &ews_probe::switch::SwitchReport| {
        x.timeline
            .iter()
            .map(|e| (e.step, e.result.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(results(&replayed), results(&r));
    assert_eq!(codes(&replayed.to), codes(&r.to));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    assert!(!v.is_empty());
    v
}

#[tokio::test]
async fn when_to_is_accepted_there_is_no_logout() {
    let s = MockServer::start().await;
    healthy(&s).await;
    let url = ews_url(&s);
    let r = run_switch(&["a@contoso.com", "b@contoso.com", "--ews-url", &url])
        .await
        .unwrap();
    assert!(!r.logout_reproduced);
    assert_eq!(r.exit_code, 0);
    assert!(r.timeline.iter().all(|e| !e.logout));
}

#[test]
fn switch_usage_errors_exit_3() {
    for args in [
        vec!["switch", "a@contoso.com"],
        vec!["switch", "a@contoso.com", "not-an-address"],
        vec!["switch", "--replay", "/nonexistent"],
        vec![
            "switch",
            "a@contoso.com",
            "b@contoso.com",
            "--to-auth",
            "basic",
            "--to-token-env",
            "X",
        ],
    ] {
        let o = Command::cargo_bin("ews-probe")
            .unwrap()
            .args(&args)
            .write_stdin("")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{args:?}");
    }
}

#[tokio::test]
async fn profiles_carry_each_sides_settings_but_never_a_secret() {
    let s = server().await;
    let url = ews_url(&s);
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("to.tok");
    std::fs::write(&tok, "to-token-consumer\n").unwrap();
    // SAFETY: set before any thread of this test reads the environment; the name is unique.
    unsafe { std::env::set_var("SWITCH_P_FROM", "from-token-work") };
    let from = dir.path().join("from.json");
    std::fs::write(
        &from,
        format!(r#"{{"ews_url": "{url}", "token_env": "SWITCH_P_FROM"}}"#),
    )
    .unwrap();
    let to = dir.path().join("to.json");
    std::fs::write(
        &to,
        format!(
            r#"{{"ews_url": "{url}", "auth": "bearer", "token_file": "{}"}}"#,
            tok.display()
        ),
    )
    .unwrap();
    let r = run_switch(&[
        "megan@contoso.com",
        "jamie@outlook.com",
        "--from-profile",
        from.to_str().unwrap(),
        "--to-profile",
        to.to_str().unwrap(),
    ])
    .await
    .unwrap();
    assert!(r.logout_reproduced);
    assert_eq!(r.from.status.label(), "OK");
    // A profile holding a secret is refused.
    let leaky = dir.path().join("leaky.json");
    std::fs::write(&leaky, r#"{"auth": "bearer", "token": "eyJ.secret"}"#).unwrap();
    let e = run_switch(&[
        "a@contoso.com",
        "b@contoso.com",
        "--to-profile",
        leaky.to_str().unwrap(),
    ])
    .await
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `token`"), "{e}");
    assert!(!e.to_string().contains("eyJ.secret"));
}
