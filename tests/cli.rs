//! The command line as scripts and monitoring see it (DESIGN §3-6): exit codes, where messages
//! go, and the key content of each output format. Every test runs the real binary; none needs
//! a network or a server (consumer addresses, demo scenarios and replayed bundles only).

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The built-in demo scenarios (fixtures/sessions/), in the order `demo` lists them.
const SCENARIOS: &[&str] = &[
    "calendar-access-denied",
    "consumer-basic-401",
    "consumer-device-code-refused",
    "consumer-token-403",
    "healthy-exchange-online",
    "onprem-found-by-autodiscover",
    "onprem-ntlm-healthy",
    "onprem-ntlm-only",
    "switch-work-to-outlook",
    "tenant-ews-blocked",
    "throttled-then-recovered",
    "wrong-token-audience",
];

/// The four features, in report order (DESIGN §2, §4).
const FEATURES: [&str; 4] = [
    "email_tracking",
    "send_later",
    "insert_availability",
    "calendar_sync",
];

fn ews_probe() -> Command {
    let mut c = Command::cargo_bin("ews-probe").expect("the ews-probe binary is built");
    // A hang (e.g. a prompt that should have been refused) fails the test instead of blocking.
    c.timeout(Duration::from_secs(30));
    c
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Runs with `args`; asserts exit 3 (UNKNOWN, never clap's 2), nothing on stdout, no panic,
/// and an error on stderr that contains every needle. Returns stderr.
fn assert_usage_error(args: &[&str], needles: &[&str]) -> String {
    let out = ews_probe().args(args).output().expect("run ews-probe");
    let stderr = stderr_of(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "ews-probe {args:?} must exit 3 (unknown); stderr:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "ews-probe {args:?}: a usage error prints nothing on stdout, got:\n{}",
        stdout_of(&out)
    );
    assert!(
        !stderr.contains("panicked"),
        "ews-probe {args:?} panicked:\n{stderr}"
    );
    assert!(
        !stderr.trim().is_empty(),
        "ews-probe {args:?}: no message on stderr"
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "ews-probe {args:?}: stderr should mention '{n}':\n{stderr}"
        );
    }
    stderr
}

/// Checks that every sample line of a Prometheus text exposition is `name{labels} value`,
/// with no timestamp (a probe's samples are scraped "now").
fn assert_prometheus_without_timestamps(text: &str) {
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rest = match line.rfind('}') {
            Some(i) => &line[i + 1..],
            None => line.split_once(' ').map(|(_, r)| r).unwrap_or(""),
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(
            fields.len(),
            1,
            "a sample must be 'name{{labels}} value' with no timestamp: {line}"
        );
        assert!(
            fields[0].parse::<f64>().is_ok(),
            "sample value is not a number: {line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Help, version, usage errors

#[test]
fn help_exits_0_and_lists_the_commands() {
    ews_probe().arg("--help").assert().code(0).stdout(
        predicate::str::contains("Usage: ews-probe")
            .and(predicate::str::contains("probe"))
            .and(predicate::str::contains("replay"))
            .and(predicate::str::contains("demo"))
            .and(predicate::str::contains("Exit codes")),
    );
}

#[test]
fn version_exits_0() {
    ews_probe()
        .arg("--version")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "ews-probe {}",
            env!("CARGO_PKG_VERSION")
        )));
}

#[test]
fn unknown_flag_exits_3() {
    assert_usage_error(&["probe", "x@contoso.com", "--bogus"], &["--bogus"]);
}

#[test]
fn missing_subcommand_exits_3() {
    assert_usage_error(&[], &["Usage: ews-probe"]);
}

#[test]
fn bad_format_exits_3() {
    assert_usage_error(
        &["probe", "x@contoso.com", "--format", "yaml"],
        &["yaml", "--format"],
    );
}

#[test]
fn zero_timeout_exits_3() {
    assert_usage_error(
        &["probe", "x@contoso.com", "--timeout", "0"],
        &["--timeout", "more than 0"],
    );
}

#[test]
fn non_numeric_and_huge_timeouts_exit_3() {
    assert_usage_error(
        &["probe", "x@contoso.com", "--timeout", "soon"],
        &["--timeout", "soon"],
    );
    assert_usage_error(
        &["probe", "x@contoso.com", "--timeout", "3601"],
        &["--timeout"],
    );
    assert_usage_error(
        &["probe", "x@contoso.com", "--timeout", "NaN"],
        &["--timeout"],
    );
}

#[test]
fn server_version_outside_the_schema_exits_3() {
    assert_usage_error(
        &["probe", "x@contoso.com", "--server-version", "Exchange2019"],
        &["Exchange2019", "not an EWS schema version", "Exchange2016"],
    );
}

// ---------------------------------------------------------------------------------------------
// Mailbox addresses

#[test]
fn address_without_at_exits_3() {
    assert_usage_error(
        &["probe", "not-an-address"],
        &["not-an-address", "not a mailbox address"],
    );
}

#[test]
fn address_with_dotless_domain_exits_3() {
    assert_usage_error(&["probe", "a@b"], &["'a@b'", "invalid domain"]);
}

#[test]
fn empty_address_exits_3() {
    assert_usage_error(&["probe", ""], &["not a mailbox address"]);
}

#[test]
fn overlong_and_non_ascii_addresses_exit_3_without_panic() {
    let long = format!("{}@contoso.com", "a".repeat(300));
    assert_usage_error(&["probe", &long], &["longer than 254"]);
    // Multi-byte characters past the display cut must not split a character.
    let wide = format!("{}@contoso.com", "é".repeat(100));
    assert_usage_error(&["probe", &wide], &["not allowed"]);
    assert_usage_error(&["probe", "a@[127.0.0.1]"], &["invalid domain"]);
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[test]
fn missing_password_file_exits_3_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-password-file");
    let missing = missing.to_str().unwrap();
    assert_usage_error(
        &[
            "probe",
            "user@contoso.com",
            "--auth",
            "basic",
            "--password-file",
            missing,
        ],
        &[missing],
    );
    assert_usage_error(
        &[
            "probe",
            "user@contoso.com",
            "--auth",
            "basic",
            "--password-file",
            "/nonexistent",
        ],
        &["/nonexistent"],
    );
}

#[test]
fn unset_password_env_exits_3_naming_the_variable() {
    let var = "EWS_PROBE_CLI_TEST_SURELY_UNSET_PASSWORD";
    let out = ews_probe()
        .env_remove(var)
        .args([
            "probe",
            "user@contoso.com",
            "--auth",
            "basic",
            "--password-env",
            var,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = stderr_of(&out);
    assert!(stderr.contains(var), "stderr should name {var}:\n{stderr}");
    assert!(stderr.contains("not set"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn basic_without_password_source_and_no_terminal_exits_3() {
    // assert_cmd gives the child a pipe for stdin: there is no terminal to prompt on.
    let out = ews_probe()
        .args(["probe", "user@contoso.com", "--auth", "basic"])
        .write_stdin("")
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no terminal"), "{stderr}");
    assert!(
        stderr.contains("--password-env"),
        "the message should say what to use instead:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn token_source_with_basic_auth_exits_3() {
    assert_usage_error(
        &[
            "probe",
            "user@contoso.com",
            "--auth",
            "basic",
            "--token-env",
            "SOME_TOKEN_VAR",
        ],
        &["token", "--auth bearer"],
    );
}

// ---------------------------------------------------------------------------------------------
// --ews-url policy

#[test]
fn plain_http_off_loopback_exits_3() {
    assert_usage_error(
        &[
            "probe",
            "user@contoso.com",
            "--ews-url",
            "http://mail.contoso.com/EWS/Exchange.asmx",
        ],
        &["http://mail.contoso.com/EWS/Exchange.asmx", "https"],
    );
}

#[test]
fn non_http_scheme_exits_3() {
    assert_usage_error(
        &["probe", "user@contoso.com", "--ews-url", "ftp://x"],
        &["ftp"],
    );
}

#[test]
fn url_with_credentials_exits_3_without_echoing_them() {
    let stderr = assert_usage_error(
        &[
            "probe",
            "user@contoso.com",
            "--ews-url",
            "https://admin:Hunter2secret@mail.contoso.com/EWS/Exchange.asmx",
        ],
        &["credentials"],
    );
    assert!(
        !stderr.contains("Hunter2secret"),
        "the password in the URL was echoed:\n{stderr}"
    );
}

#[test]
fn unparsable_url_exits_3() {
    assert_usage_error(
        &["probe", "user@contoso.com", "--ews-url", "not a url"],
        &["--ews-url", "not a URL"],
    );
}

// ---------------------------------------------------------------------------------------------
// A consumer address: decided before any request, so no network is needed.

#[test]
fn consumer_address_text_exits_2() {
    ews_probe()
        .args(["probe", "jamie@outlook.com"])
        .assert()
        .code(2)
        .stdout(
            predicate::str::contains("consumer_account_no_ews")
                .and(predicate::str::contains("CRITICAL"))
                .and(predicate::str::contains("jamie@outlook.com")),
        )
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn consumer_address_json_report() {
    let out = ews_probe()
        .args(["probe", "jamie@outlook.com", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let r = parse_json(&stdout_of(&out));
    assert_eq!(r["schema"], "ews-probe.report.v1");
    assert_eq!(r["tool_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["mailbox"], "jamie@outlook.com");
    assert_eq!(r["account"]["kind"], "consumer");
    assert_eq!(r["status"], "critical");
    assert_eq!(r["exit_code"], 2);
    let names: Vec<&str> = r["features"]
        .as_array()
        .expect("features is an array")
        .iter()
        .map(|f| f["name"].as_str().expect("feature name"))
        .collect();
    assert_eq!(names, FEATURES);
    for f in r["features"].as_array().unwrap() {
        assert_eq!(f["status"], "unavailable", "{f}");
    }
    assert_eq!(r["diagnoses"][0]["code"], "consumer_account_no_ews");
    assert_eq!(r["diagnoses"][0]["severity"], "critical");
    assert!(
        r["diagnoses"][0]["remedy"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(r["steps"].is_array());
    assert!(r["duration_ms"].is_number());
}

#[test]
fn consumer_address_nagios() {
    let out = ews_probe()
        .args(["probe", "jamie@outlook.com", "--format", "nagios"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stdout_of(&out);
    let first = text.lines().next().expect("a status line");
    assert!(first.starts_with("EWS CRITICAL - "), "first line: {first}");
    assert!(first.contains("consumer_account_no_ews"), "{first}");
}

#[test]
fn consumer_address_prometheus() {
    let out = ews_probe()
        .args(["probe", "jamie@outlook.com", "--format", "prometheus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stdout_of(&out);
    assert!(
        text.lines().any(|l| l
            == r#"ews_probe_feature_available{mailbox="jamie@outlook.com",feature="send_later"} 0"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE ews_probe_feature_available gauge"),
        "{text}"
    );
    assert_prometheus_without_timestamps(&text);
}

// ---------------------------------------------------------------------------------------------
// demo

#[test]
fn demo_without_argument_runs_every_scenario_as_a_self_check() {
    let out = ews_probe().arg("demo").output().unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr_of(&out));
    for &name in SCENARIOS {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("scenario {name} missing from:\n{text}"));
        assert_eq!(
            line.split_whitespace().next(),
            Some("ok"),
            "scenario {name} did not reach its verdict: {line}"
        );
    }
    assert!(!text.contains("FAIL"), "{text}");
    let n = SCENARIOS.len();
    assert!(text.contains(&format!("{n} of {n} scenarios")), "{text}");
}

#[test]
fn demo_healthy_exchange_online_exits_0() {
    ews_probe()
        .args(["demo", "healthy-exchange-online"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Status: OK"));
}

#[test]
fn demo_consumer_basic_401_exits_2() {
    ews_probe()
        .args(["demo", "consumer-basic-401"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("consumer_account_no_ews"));
}

#[test]
fn demo_throttled_then_recovered_exits_1() {
    ews_probe()
        .args(["demo", "throttled-then-recovered"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("throttled"));
}

#[test]
fn demo_unknown_scenario_exits_3_listing_scenarios() {
    assert_usage_error(&["demo", "no-such"], &["no-such"]);
    let stderr = assert_usage_error(&["demo", "no-such"], SCENARIOS);
    assert!(stderr.contains("scenarios"), "{stderr}");
}

#[test]
fn demo_json_is_an_array_of_every_scenario() {
    let out = ews_probe()
        .args(["demo", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let v = parse_json(&stdout_of(&out));
    let runs = v.as_array().expect("a JSON array");
    assert_eq!(runs.len(), SCENARIOS.len());
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["scenario"].as_str().expect("scenario name"))
        .collect();
    assert_eq!(names, SCENARIOS);
    for r in runs {
        assert_eq!(r["expected_verdict_reached"], true, "{}", r["scenario"]);
        assert_eq!(
            r["report"]["schema"], "ews-probe.report.v1",
            "{}",
            r["scenario"]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// --output

#[test]
fn output_writes_the_report_to_the_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    let out = ews_probe()
        .args(["demo", "tenant-ews-blocked", "--format", "json", "--output"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        out.stdout.is_empty(),
        "stdout should be empty with --output:\n{}",
        stdout_of(&out)
    );
    let r = parse_json(&std::fs::read_to_string(&path).expect("the report file"));
    assert_eq!(r["schema"], "ews-probe.report.v1");
    assert_eq!(r["exit_code"], 2);
    assert_eq!(r["diagnoses"][0]["code"], "ews_access_blocked");
    // The write is atomic: no temporary file is left beside the report.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["r.json"]);
}

#[test]
fn output_into_a_missing_directory_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("r.json");
    let stderr = assert_usage_error(
        &[
            "demo",
            "tenant-ews-blocked",
            "--format",
            "json",
            "--output",
            path.to_str().unwrap(),
        ],
        &[path.to_str().unwrap()],
    );
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------------------------
// replay

/// Writes a minimal bundle: session.json and one exchange file.
fn write_bundle(dir: &Path, http_file: &str, http_text: &str) {
    let meta = serde_json::json!({
        "schema": "ews-probe.session.v1",
        "mailbox": "megan@contoso.com",
        "endpoint": "https://outlook.office365.com/EWS/Exchange.asmx",
        "auth": "bearer",
        "server_version": "Exchange2013_SP1",
        "started_at": "2026-11-24T09:00:00Z",
    });
    std::fs::write(
        dir.join("session.json"),
        serde_json::to_string_pretty(&meta).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join(http_file), http_text).unwrap();
}

#[test]
fn replay_of_a_directory_without_session_json_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("001-x.http"), "HTTP/1.1 200 OK\n\n").unwrap();
    assert_usage_error(
        &["replay", dir.path().to_str().unwrap()],
        &["session.json", "not a recorded bundle"],
    );
    let missing = dir.path().join("missing");
    assert_usage_error(&["replay", missing.to_str().unwrap()], &["session.json"]);
}

#[test]
fn replay_of_a_minimal_403_bundle_exits_2_ews_access_blocked() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(
        dir.path(),
        "001-ews.get_folder.msgfolderroot.http",
        "HTTP/1.1 403 Forbidden\n\n",
    );
    ews_probe()
        .arg("replay")
        .arg(dir.path())
        .assert()
        .code(2)
        .stdout(predicate::str::contains("ews_access_blocked"));

    let out = ews_probe()
        .arg("replay")
        .arg(dir.path())
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let r = parse_json(&stdout_of(&out));
    assert_eq!(r["diagnoses"][0]["code"], "ews_access_blocked");
    // The challenge step comes first (skipped: this bundle has no recorded challenge).
    assert_eq!(r["steps"][0]["id"], "auth.challenge");
    assert_eq!(r["steps"][0]["outcome"], "skip");
    assert_eq!(r["steps"][1]["id"], "ews.get_folder.msgfolderroot");
    assert_eq!(r["steps"][1]["http_status"], 403);
    let names: Vec<&str> = r["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, FEATURES);
}

#[test]
fn replay_of_a_garbage_http_file_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(
        dir.path(),
        "001-ews.get_folder.msgfolderroot.http",
        "garbage, not an HTTP response\n",
    );
    assert_usage_error(
        &["replay", dir.path().to_str().unwrap()],
        &["001-ews.get_folder.msgfolderroot.http"],
    );
}

// ---------------------------------------------------------------------------------------------
// Colour

#[test]
fn no_color_text_output_has_no_escape_characters() {
    for args in [
        vec!["demo", "healthy-exchange-online"],
        vec!["demo", "consumer-basic-401"],
        vec!["probe", "jamie@outlook.com"],
        vec!["demo"],
    ] {
        let out = ews_probe()
            .env("NO_COLOR", "1")
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.stdout.is_empty(), "{args:?}: no output");
        assert!(
            !out.stdout.contains(&0x1b),
            "{args:?}: ESC in stdout with NO_COLOR=1:\n{}",
            stdout_of(&out)
        );
        assert!(
            !out.stderr.contains(&0x1b),
            "{args:?}: ESC in stderr with NO_COLOR=1"
        );
    }
}

#[test]
fn demo_prometheus_series_are_unique_per_scenario() {
    let out = ews_probe()
        .args(["demo", "--format", "prometheus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout_of(&out);
    assert_prometheus_without_timestamps(&text);
    let mut series: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    let n = series.len();
    series.sort();
    series.dedup();
    assert_eq!(series.len(), n, "a series repeats with the same labels");
    assert!(text.contains(r#"scenario="throttled-then-recovered""#));
}

#[test]
fn demo_nagios_summary_has_a_plugin_first_line() {
    let out = ews_probe()
        .args(["demo", "--format", "nagios"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let first = stdout_of(&out).lines().next().unwrap().to_string();
    let n = SCENARIOS.len();
    assert!(
        first.starts_with(&format!("EWS OK - {n} of {n} demo scenarios")),
        "{first}"
    );
}

#[test]
fn a_pipe_in_the_mailbox_cannot_start_nagios_perfdata() {
    let out = ews_probe()
        .args(["probe", "a|b@outlook.com", "--format", "nagios"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let first = stdout_of(&out).lines().next().unwrap().to_string();
    let (status, perf) = first.split_once(" | ").expect("perfdata separator");
    assert!(!status.contains('|'), "{first}");
    assert!(perf.starts_with("'total'="), "{perf}");
}

// ---------------------------------------------------------------------------------------------
// discover: bad input exits 3 before any request

#[test]
fn discover_with_a_bad_connect_to_exits_3() {
    assert_usage_error(
        &[
            "discover",
            "a@contoso.example",
            "--connect-to",
            "contoso.example:443:127.0.0.1",
        ],
        &["HOST:PORT:ADDR:PORT2"],
    );
}

#[test]
fn discover_with_a_non_http_realm_url_exits_3() {
    assert_usage_error(
        &[
            "discover",
            "a@contoso.example",
            "--realm-url",
            "ftp://login.example",
        ],
        &["--realm-url", "ftp://login.example"],
    );
    assert_usage_error(
        &[
            "discover",
            "a@contoso.example",
            "--autodiscover-v2-url",
            "not a url",
        ],
        &["--autodiscover-v2-url"],
    );
}

#[test]
fn discover_with_a_bad_address_exits_3() {
    assert_usage_error(&["discover", "no-at-sign"], &["no-at-sign"]);
}

#[test]
fn discover_takes_no_credentials() {
    assert_usage_error(
        &["discover", "a@contoso.example", "--password-env", "X"],
        &["--password-env"],
    );
}

#[test]
fn ntlm_refuses_proxy_and_connect_to_instead_of_ignoring_them() {
    for extra in [
        &["--proxy", "http://127.0.0.1:3128"][..],
        &["--connect-to", "mail.contoso.com:443:127.0.0.1:8443"][..],
    ] {
        let out = ews_probe()
            .args([
                "probe",
                "j.smith@contoso.com",
                "--ews-url",
                "https://mail.contoso.com/EWS/Exchange.asmx",
                "--auth",
                "ntlm",
                "--user",
                "CONTOSO\\j.smith",
                "--password-env",
                "EWS_PROBE_TEST_NTLM_PW",
            ])
            .args(extra)
            .env("EWS_PROBE_TEST_NTLM_PW", "pw-for-the-test")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{extra:?}");
        let err = stderr_of(&out);
        assert!(err.contains("not supported with --auth ntlm"), "{err}");
        assert!(!err.contains("pw-for-the-test"));
    }
}

/// The allocator's compiled-in options are in effect (src/main.rs `malloc_conf`): jemalloc
/// prints its options at exit when asked to through its environment variable.
#[cfg(target_os = "linux")]
#[test]
fn jemalloc_runs_with_the_compiled_in_options() {
    let out = ews_probe()
        .args(["demo", "consumer-basic-401"])
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    for opt in [
        "opt.percpu_arena: \"percpu\"",
        "opt.dirty_decay_ms: 1000",
        "opt.muzzy_decay_ms: 0",
    ] {
        assert!(err.contains(opt), "{opt} not in jemalloc's stats: {err}");
    }
}
