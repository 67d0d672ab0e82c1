//! `ews-probe fleet` end to end: the real binary against loopback test servers
//! (tests/common/fleet_server.rs) with mixed scenarios: healthy, consumer (401), blocked (403),
//! a throttled endpoint (ErrorServerBusy), a dead endpoint (connection refused).

mod common;

use common::fleet_server::{self, Server};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ews-probe"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).stdin(Stdio::null()).output().unwrap()
}

/// `ews-probe fleet --input INPUT` with more arguments.
fn fleet(input: &Path, more: &[&str]) -> Output {
    let mut args = vec!["fleet", "--input", input.to_str().unwrap()];
    args.extend_from_slice(more);
    run(&args)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {e}: {l}")))
        .collect()
}

fn mailboxes(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|r| r["mailbox"].as_str().unwrap().to_string())
        .collect()
}

/// Every mailbox appears exactly once.
fn assert_once(got: &[String], expect: &[String]) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for m in got {
        *count.entry(m).or_default() += 1;
    }
    let dup: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "mailboxes with more than one line: {dup:?}");
    let mut a: Vec<_> = got.to_vec();
    let mut b: Vec<_> = expect.to_vec();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

/// A CSV over the servers: (address, url) rows in a fixed mix.
fn mixed_input(servers: &[&Server], dead: std::net::SocketAddr, n: usize) -> (String, Vec<String>) {
    let mut csv = String::from("mailbox,ews_url\n");
    let mut valid = Vec::new();
    for i in 0..n {
        let s = servers[i % servers.len()];
        let (addr, url) = match i % 10 {
            0..=5 => (format!("user{i}@contoso.com"), s.url("healthy", i)),
            6 => (format!("user{i}@outlook.com"), s.url("consumer", i)),
            7 => (format!("user{i}@contoso.com"), s.url("blocked", i)),
            8 => (
                format!("user{i}@contoso.com"),
                format!("http://{dead}/EWS/Exchange.asmx"),
            ),
            _ => (format!("user{i}@fabrikam.com"), s.url("healthy", i)),
        };
        csv.push_str(&format!("{addr},{url}\n"));
        valid.push(addr);
    }
    (csv, valid)
}

#[test]
fn mixed_fleet_one_line_per_mailbox_caps_held_duplicates_and_invalid_set_aside() {
    let a = fleet_server::start(3, 0);
    let b = fleet_server::start(3, 0);
    let c = fleet_server::start(3, 0);
    let dead = fleet_server::dead_port();
    let (mut csv, valid) = mixed_input(&[&a, &b, &c], dead, 300);
    // Two duplicates (one differing in case) and three invalid lines.
    csv.push_str(&format!("USER1@contoso.com,{}\n", a.url("healthy", 1)));
    csv.push_str(&format!("user2@contoso.com,{}\n", b.url("healthy", 2)));
    csv.push_str("not-an-address,\n");
    csv.push_str("a@b@c,\n");
    csv.push_str(&format!("ok@contoso.com,ftp://{}/x\n", a.addr));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out.ndjson");
    let o = fleet(
        &input,
        &[
            "--output",
            out.to_str().unwrap(),
            "--concurrency",
            "24",
            "--per-endpoint",
            "4",
            "--timeout",
            "10",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Consumer and blocked mailboxes are critical: the fleet's exit code is the worst.
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let reports = lines(&out);
    assert_once(&mailboxes(&reports), &valid);
    for r in &reports {
        assert_eq!(r["schema"], "ews-probe.report.v1");
        assert_eq!(r["features"].as_array().unwrap().len(), 4);
    }
    // Each scenario reached its verdict.
    let by: HashMap<&str, &Value> = reports
        .iter()
        .map(|r| (r["mailbox"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by["user0@contoso.com"]["status"], "ok");
    assert_eq!(
        by["user6@outlook.com"]["diagnoses"][0]["code"],
        "consumer_account_no_ews"
    );
    assert_eq!(by["user7@contoso.com"]["status"], "critical");
    assert_eq!(
        by["user8@contoso.com"]["diagnoses"][0]["code"],
        "connection_failed"
    );
    // The per-endpoint cap (mailboxes in flight) held on every server; a mailbox's feature
    // checks run together (7 at most), so requests in flight stay within cap x 7.
    for s in [&a, &b, &c] {
        let peak = s.stats.peak_mailboxes.load(Ordering::SeqCst);
        assert!(peak <= 4, "peak {peak} mailboxes in flight on one endpoint");
        assert!(peak >= 2, "the test must overlap mailboxes (peak {peak})");
        assert!(s.stats.peak_in_flight.load(Ordering::SeqCst) <= 4 * 7);
    }
    // Duplicates and invalid lines: reported once each on stderr, not probed.
    for needle in [
        "line 302: duplicate",
        "line 303: duplicate",
        "line 304: invalid",
        "line 305: invalid",
        "line 306: invalid",
    ] {
        assert_eq!(stderr.matches(needle).count(), 1, "{needle}: {stderr}");
    }
    assert!(!mailboxes(&reports).contains(&"ok@contoso.com".to_string()));
    assert!(
        stderr.contains("not probed: 3 invalid, 2 duplicate"),
        "{stderr}"
    );
    assert!(stderr.contains("consumer_account_no_ews 30"), "{stderr}");
    assert!(stderr.contains("exit 2 (CRITICAL)"), "{stderr}");
}

#[test]
fn one_address_per_line_from_stdin_to_stdout_with_default_url() {
    let s = fleet_server::start(0, 0);
    let input = "# team\nalice@contoso.com\nbob@contoso.com\n\nalice@contoso.com\n";
    let mut child = bin()
        .args(["fleet", "--input", "-", "--ews-url", &s.url("healthy", 0)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_once(
        &mailboxes(&got),
        &["alice@contoso.com".into(), "bob@contoso.com".into()],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 5: duplicate"));
}

#[test]
fn shards_cover_the_input_exactly_once_and_concatenate() {
    let s = fleet_server::start(0, 0);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let all: Vec<String> = (0..150).map(|i| format!("m{i}@contoso.com")).collect();
    std::fs::write(&input, all.join("\n") + "\nnot-valid\n").unwrap();
    let mut union = Vec::new();
    let mut invalid_reports = 0;
    for i in 1..=3 {
        let out = dir.path().join(format!("shard{i}.ndjson"));
        let o = fleet(
            &input,
            &[
                "--ews-url",
                &s.url("healthy", 0),
                "--shard",
                &format!("{i}/3"),
                "--output",
                out.to_str().unwrap(),
            ],
        );
        let got = mailboxes(&lines(&out));
        assert!(got.len() > 20 && got.len() < 80, "shard {i}: {}", got.len());
        invalid_reports += String::from_utf8_lossy(&o.stderr)
            .matches("invalid, not probed")
            .count();
        union.extend(got);
    }
    assert_once(&union, &all);
    // The invalid line belongs to one shard only.
    assert_eq!(invalid_reports, 1);
    assert_eq!(
        run(&["fleet", "--input", "x", "--shard", "4/3"])
            .status
            .code(),
        Some(3)
    );
}

#[test]
fn interrupted_run_then_resume_has_each_mailbox_once() {
    interrupted_then_resumed(libc::SIGINT);
}

/// Kubernetes and systemd stop with SIGTERM: the same orderly stop.
#[test]
fn sigterm_stops_like_ctrl_c() {
    interrupted_then_resumed(libc::SIGTERM);
}

fn interrupted_then_resumed(signal: libc::c_int) {
    let s = fleet_server::start(60, 0);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let all: Vec<String> = (0..120).map(|i| format!("r{i}@contoso.com")).collect();
    std::fs::write(&input, all.join("\n")).unwrap();
    let out = dir.path().join("out.ndjson");
    let args = [
        "fleet",
        "--input",
        input.to_str().unwrap(),
        "--ews-url",
        &s.url("healthy", 0),
        "--concurrency",
        "4",
        "--output",
        out.to_str().unwrap(),
    ];
    let child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some reports are written, then Ctrl-C (SIGINT).
    let t = Instant::now();
    while std::fs::read_to_string(&out)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 8
    {
        assert!(t.elapsed() < Duration::from_secs(20), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals the child we spawned and still own (not yet waited for).
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0);
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Interrupted: at least unknown; the summary says how many were not started.
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("not started (interrupted"), "{stderr}");
    let first = mailboxes(&lines(&out));
    assert!(first.len() < all.len(), "the run was not interrupted");
    // A process killed mid-write could leave a partial line: simulate it.
    let mut text = std::fs::read_to_string(&out).unwrap();
    text.push_str("{\"schema\":\"ews-probe.report.v1\",\"mailbox\":\"r119@cont");
    std::fs::write(&out, text).unwrap();

    s.delay_ms.store(0, Ordering::SeqCst);
    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let o = run(&resumed);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cut off a partial last line"), "{stderr}");
    assert!(
        stderr.contains(&format!("{} from the earlier output", first.len())),
        "{stderr}"
    );
    assert_once(&mailboxes(&lines(&out)), &all);
    // Nothing already done was probed again: one connectivity request per remaining mailbox
    // in the second run, plus the first run's.
    let conn = s.stats.log.lock().unwrap().iter().filter(|e| e.2).count();
    assert!(
        conn <= all.len() + 4,
        "{conn} connectivity requests for {} mailboxes",
        all.len()
    );
}

#[test]
fn server_busy_pauses_only_its_endpoint() {
    // Endpoint A answers its first connectivity request with ErrorServerBusy
    // (BackOffMilliseconds 600); endpoint B is healthy.
    // A answers after 20 ms, so without a pause its 30 mailboxes (2 slots free) would keep
    // starting all through the back-off window.
    let a = fleet_server::start(20, 1);
    let b = fleet_server::start(2, 0);
    let mut csv = String::from("mailbox,ews_url\n");
    for i in 0..30 {
        csv.push_str(&format!("a{i}@contoso.com,{}\n", a.url("healthy", i)));
    }
    for i in 0..12 {
        csv.push_str(&format!("b{i}@contoso.com,{}\n", b.url("healthy", i)));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out.ndjson");
    let o = fleet(
        &input,
        &[
            "--output",
            out.to_str().unwrap(),
            "--concurrency",
            "6",
            "--per-endpoint",
            "3",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let reports = lines(&out);
    assert_eq!(reports.len(), 42);
    let throttled: Vec<&Value> = reports
        .iter()
        .filter(|r| {
            r["diagnoses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["code"] == "throttled")
        })
        .collect();
    assert_eq!(
        throttled.len(),
        1,
        "one mailbox met the busy answer and retried"
    );

    let log_a = a.stats.log.lock().unwrap().clone();
    let log_b = b.stats.log.lock().unwrap().clone();
    // When A said busy (the request arrived, then 20 ms).
    let busy = log_a.iter().find(|e| e.3).unwrap();
    let busy_at = busy.0 + Duration::from_millis(20);
    let busy_mailbox = busy.1.clone();
    let backoff = Duration::from_millis(600);
    // No other A mailbox started in the back-off window (in-flight ones may finish).
    let started_in_window: Vec<_> = log_a
        .iter()
        .filter(|e| e.2 && e.1 != busy_mailbox)
        .filter(|e| {
            e.0 > busy_at + Duration::from_millis(100)
                && e.0 < busy_at + backoff - Duration::from_millis(50)
        })
        .collect();
    assert!(
        started_in_window.is_empty(),
        "A was not paused: {started_in_window:?}"
    );
    // A's remaining mailboxes did start after the pause.
    assert!(
        log_a
            .iter()
            .any(|e| e.2 && e.0 >= busy_at + backoff - Duration::from_millis(50))
    );
    // B was not slowed: all its mailboxes were done before A's pause ended.
    let b_last = log_b.iter().map(|e| e.0).max().unwrap();
    assert!(
        b_last < busy_at + backoff,
        "B slowed down: last request at {b_last:?}, busy at {busy_at:?}"
    );
}

#[test]
fn fleet_prometheus_is_parsed_and_nagios_summarises() {
    let s = fleet_server::start(0, 0);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "p1@contoso.com\np2@contoso.com\n").unwrap();
    let prom = dir.path().join("fleet.prom");
    let o = fleet(
        &input,
        &[
            "--ews-url",
            &s.url("healthy", 0),
            "--format",
            "prometheus",
            "--output",
            prom.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(&prom).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let per_mailbox: BTreeMap<String, f64> = scrape
        .samples
        .iter()
        .filter(|x| x.metric == "ews_probe_status")
        .map(|x| {
            let v = match x.value {
                prometheus_parse::Value::Gauge(v) => v,
                _ => panic!("not a gauge"),
            };
            (x.labels.get("mailbox").unwrap().to_string(), v)
        })
        .collect();
    assert_eq!(per_mailbox.len(), 2);
    assert!(per_mailbox.values().all(|v| *v == 0.0));

    let o = fleet(
        &input,
        &["--ews-url", &s.url("healthy", 0), "--format", "nagios"],
    );
    assert_eq!(o.status.code(), Some(0));
    let first = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(first.starts_with("EWS OK - fleet of 2: 2 ok"), "{first}");
}

#[test]
fn usage_errors_exit_3() {
    for args in [
        vec!["fleet"],
        vec!["fleet", "--input", "/nonexistent/file"],
        vec!["fleet", "--input", "x", "--concurrency", "0"],
        vec!["fleet", "--input", "x", "--resume"],
        vec!["fleet", "--input", "-", "--auth", "basic"],
        vec!["fleet", "--input", "-", "--auth", "ntlm"],
    ] {
        let o = run(&args);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn the_shared_token_never_shows_in_output_or_traces() {
    let s = fleet_server::start(0, 0);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "t1@contoso.com\nt2@contoso.com\n").unwrap();
    let out = dir.path().join("out.ndjson");
    let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fleet-secret-token.sig";
    let o = bin()
        .args([
            "fleet",
            "--input",
            input.to_str().unwrap(),
            "--ews-url",
            &s.url("healthy", 0),
            "--auth",
            "bearer",
            "--token-env",
            "FLEET_TEST_TOKEN",
            "--impersonate",
            "-vv",
            "--output",
            out.to_str().unwrap(),
        ])
        .env("FLEET_TEST_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("Authorization: Bearer [redacted]"),
        "the trace shows the header"
    );
    for text in [stderr.to_string(), std::fs::read_to_string(&out).unwrap()] {
        assert!(!text.contains("fleet-secret-token"), "token leaked");
    }
    assert_eq!(lines(&out).len(), 2);
}

#[test]
fn the_challenge_is_observed_once_per_endpoint() {
    // Two endpoints, every mailbox of one at that endpoint's one EWS URL (as in a tenant).
    let (a, b) = (fleet_server::start(0, 0), fleet_server::start(0, 0));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut csv = String::from("mailbox,ews_url\n");
    let mut all = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { &a } else { &b };
        csv.push_str(&format!("c{i}@contoso.com,{}\n", s.url("healthy", 0)));
        all.push(format!("c{i}@contoso.com"));
    }
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out.ndjson");
    let o = fleet(&input, &["--output", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = lines(&out);
    assert_once(&mailboxes(&got), &all);
    // 20 mailboxes per endpoint: 8 EWS requests each, and ONE challenge GET per endpoint.
    for s in [&a, &b] {
        assert_eq!(s.stats.requests.load(Ordering::SeqCst), 20 * 8 + 1);
    }
    // Every report still has its challenge step; all but one per endpoint say it was shared.
    let mut sent = 0;
    for r in &got {
        let c = r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "auth.challenge")
            .unwrap_or_else(|| panic!("no challenge step: {r}"));
        let d = c["detail"].as_str().unwrap();
        if d.starts_with("observed once for this endpoint in this run") {
            assert_eq!(c["duration_ms"].as_f64(), Some(0.0));
        } else {
            sent += 1;
        }
    }
    assert_eq!(sent, 2);
}

/// Runs a fleet of `n` healthy mailboxes with stderr on a new pseudo-terminal; what the
/// terminal received (progress bar drawing included) and the exit status.
#[cfg(unix)]
fn fleet_on_a_terminal(s: &Server, n: usize, extra: &[&str]) -> (String, std::process::ExitStatus) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut csv = String::from("mailbox,ews_url\n");
    for i in 0..n {
        csv.push_str(&format!("tty{i}@contoso.com,{}\n", s.url("healthy", i)));
    }
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out.ndjson");
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes the two descriptors it opens; the other arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned here only.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let mut child = bin()
        .args(["fleet", "--input", input.to_str().unwrap(), "--output"])
        .arg(&out)
        .args(extra)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // The child holds the only other end now: reading ends (EIO) when it exits.
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(k) = master.read(&mut buf) {
            if k == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..k]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let status = child.wait().unwrap();
    let seen = reader.join().unwrap();
    assert_eq!(lines(&out).len(), n, "one line per mailbox");
    (seen, status)
}

/// On a terminal the fleet draws its progress bar (the template's "N/M mailboxes … eta"),
/// then clears it and prints the summary; `--no-progress` and a non-terminal stderr get the
/// summary only.
#[cfg(unix)]
#[test]
fn a_progress_bar_on_a_terminal_only() {
    let s = fleet_server::start(30, 0);
    let (tty, status) = fleet_on_a_terminal(&s, 40, &["--concurrency", "4"]);
    assert!(status.success(), "{tty}");
    assert!(
        tty.contains("/40 mailboxes") && tty.contains("eta"),
        "no progress bar on the terminal: {tty:?}"
    );
    assert!(tty.contains("fleet: 40 reports"), "{tty:?}");

    let (quiet, status) = fleet_on_a_terminal(&s, 40, &["--concurrency", "4", "--no-progress"]);
    assert!(status.success());
    assert!(!quiet.contains("/40 mailboxes"), "{quiet:?}");
    assert!(quiet.contains("fleet: 40 reports"), "{quiet:?}");

    // A pipe is no terminal: summary only.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "pipe1@contoso.com\npipe2@contoso.com\n").unwrap();
    let o = fleet(
        &input,
        &[
            "--ews-url",
            &s.url("healthy", 0),
            "--output",
            dir.path().join("o.ndjson").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("/2 mailboxes") && err.contains("fleet: 2 reports"),
        "{err}"
    );
}
