//! The JSON report of every demo scenario holds to DESIGN §4 exactly: the keys, their types,
//! the four features in order, and feature checks that name steps of the same report.

use serde_json::Value;
use std::process::Command;

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("ews-probe")
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(k: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn every_scenario_report_matches_the_contract() {
    let list = Command::new(bin())
        .args(["demo", "--format", "json"])
        .output()
        .unwrap();
    let all: Value = serde_json::from_slice(&list.stdout).unwrap();
    let names: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scenario"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 12, "every built-in scenario, {names:?}");
    for name in names {
        let out = Command::new(bin())
            .args(["demo", &name, "--format", "json"])
            .output()
            .unwrap();
        let r: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: {e}"));
        // A switch scenario's JSON holds two reports; TO's is the one the scenario is about
        // (tests/switch.rs checks both sides hold to the contract).
        let r = if r["schema"] == "ews-probe.switch.v1" {
            r["to"].clone()
        } else {
            r
        };
        assert_eq!(
            keys(&r),
            sorted(&[
                "schema",
                "tool_version",
                "mailbox",
                "account",
                "endpoint",
                "status",
                "exit_code",
                "diagnoses",
                "features",
                "steps",
                "duration_ms"
            ]),
            "{name}"
        );
        assert_eq!(r["schema"], "ews-probe.report.v1");
        assert_eq!(r["tool_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(keys(&r["account"]), sorted(&["kind", "basis"]));
        assert!(
            ["consumer", "work_or_school", "on_premises", "unknown"]
                .contains(&r["account"]["kind"].as_str().unwrap())
        );
        let status = r["status"].as_str().unwrap();
        let code = r["exit_code"].as_i64().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code as i32),
            "{name}: exit code = report"
        );
        assert_eq!(
            code,
            match status {
                "ok" => 0,
                "warning" => 1,
                "critical" => 2,
                "unknown" => 3,
                s => panic!("status {s}"),
            },
            "{name}"
        );
        for d in r["diagnoses"].as_array().unwrap() {
            assert_eq!(
                keys(d),
                sorted(&["code", "severity", "summary", "remedy", "evidence"]),
                "{name}"
            );
            assert!(!d["remedy"].as_str().unwrap().is_empty());
            assert!(
                !d["evidence"].as_array().unwrap().is_empty(),
                "{name}: a diagnosis names its evidence"
            );
        }
        let steps = r["steps"].as_array().unwrap();
        let step_ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
        // The challenge step (issue 4) is in every report that reached an endpoint, before
        // the EWS checks (discovery steps, when there are any, come before it).
        let ch = step_ids.iter().position(|s| *s == "auth.challenge");
        let ews = step_ids.iter().position(|s| s.starts_with("ews."));
        if r["endpoint"].is_string() {
            assert!(ch.is_some() && ch < ews, "{name}: {step_ids:?}");
        }
        for s in steps {
            for k in [
                "id",
                "kind",
                "outcome",
                "duration_ms",
                "http_status",
                "response_code",
                "detail",
                "headers",
            ] {
                assert!(s.get(k).is_some(), "{name}: step lacks {k}");
            }
            assert!(
                ["dns", "tcp", "tls", "autodiscover", "auth", "ews"]
                    .contains(&s["kind"].as_str().unwrap())
            );
            assert!(["pass", "fail", "skip"].contains(&s["outcome"].as_str().unwrap()));
            assert!(s["duration_ms"].is_number());
        }
        let features = r["features"].as_array().unwrap();
        let fnames: Vec<&str> = features
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            fnames,
            [
                "email_tracking",
                "send_later",
                "insert_availability",
                "calendar_sync"
            ]
        );
        for f in features {
            assert_eq!(keys(f), sorted(&["name", "status", "reason", "checks"]));
            assert!(
                ["available", "unavailable", "degraded", "untested"]
                    .contains(&f["status"].as_str().unwrap())
            );
            for c in f["checks"].as_array().unwrap() {
                assert!(
                    step_ids.contains(&c.as_str().unwrap()),
                    "{name}: feature check {c} is a step"
                );
            }
        }
        assert!(r["duration_ms"].is_number());
    }
}
