//! `ews-probe fleet` with mailboxes that have no EWS URL: each is discovered on its own, as
//! `probe` discovers, then checked at the endpoint it found, under that endpoint's cap. The
//! real binary against loopback servers over real TLS: every host name is a small TLS front
//! (tests/common/tls.rs, a test CA trusted with `--ca-file`) reached with `--connect-to`;
//! realm discovery and the Autodiscover v2 (JSON) service are plain wiremock servers on
//! 127.0.0.1 (`--realm-url`, `--autodiscover-v2-url`).
//!
//! Nothing can reach real DNS: the mailbox domains are `.invalid` (RFC 6761), which the
//! transport and the system SRV lookup refuse without a query unless `--connect-to` pins the
//! name, and every other host name the run may contact is pinned.

mod common;

use common::fleet_server::{self, Server};
use common::tls::{Cert, new_ca, tls_front, tls_host};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn step_ids(r: &Value) -> Vec<String> {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["id"].as_str().unwrap(),
                s["outcome"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn codes(r: &Value) -> Vec<String> {
    r["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect()
}

/// Distinct mailboxes (X-AnchorMailbox) the EWS server saw.
fn seen(s: &Server) -> BTreeSet<String> {
    s.stats
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|(_, m, _, _)| m.clone())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The test world: EWS servers for Exchange Online (found by v2 for contoso.invalid and
/// northwind.invalid), fabrikam's on-premises server (found by POX) and one for rows that carry
/// their URL; the Autodiscover hosts; realm discovery and v2; and the flags that route there.
struct World {
    exo: Server,
    fab: Server,
    given: Server,
    ad_fab: MockServer,
    broken: MockServer,
    evil: MockServer,
    v2: MockServer,
    realm: MockServer,
    /// --ca-file, --realm-url, --autodiscover-v2-url, --connect-to …, --impersonate, --timeout.
    args: Vec<String>,
    _ca_file: tempfile::NamedTempFile,
}

async fn world(exo_delay_ms: u64, exo_busy: usize) -> World {
    let ca = new_ca();
    let mut ca_file = tempfile::NamedTempFile::new().unwrap();
    ca_file.write_all(ca.pem.as_bytes()).unwrap();

    // EWS servers: Exchange Online (found by v2 for contoso.invalid), fabrikam's on-premises
    // server (found by POX), and one for the rows that carry their URL.
    let exo = fleet_server::start(exo_delay_ms, exo_busy);
    let fab = fleet_server::start(25, 0);
    let given = fleet_server::start(3, 0);
    let exo_port = tls_front(&ca, "outlook.office365.com", Cert::Good, exo.addr).await;
    let fab_port = tls_front(&ca, "mail.fabrikam.invalid", Cert::Good, fab.addr).await;

    // Autodiscover: fabrikam's POX service; broken.invalid's answers redirect to a foreign
    // host, which must receive nothing.
    let (ad_fab_port, ad_fab) = tls_host(&ca, "autodiscover.fabrikam.invalid", Cert::Good).await;
    Mock::given(method("POST"))
        .and(path("/autodiscover/autodiscover.xml"))
        .respond_with(common::autodiscover_xml("pox_settings_fabrikam.xml"))
        .mount(&ad_fab)
        .await;
    let (broken_port, broken) = tls_host(&ca, "broken.invalid", Cert::Good).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            "https://evil.example/autodiscover/autodiscover.xml",
        ))
        .mount(&broken)
        .await;
    let (evil_port, evil) = tls_host(&ca, "evil.example", Cert::Good).await;

    // The v2 JSON service knows contoso.invalid's and northwind.invalid's mailboxes only (404
    // otherwise): two domains, one discovered endpoint, whose cap is shared by both.
    let v2 = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/autodiscover/autodiscover\.json/v1\.0/[^/]+@(contoso|northwind)\.invalid$",
        ))
        .respond_with(common::autodiscover_json("v2_exo.json"))
        .mount(&v2)
        .await;
    // Realm discovery: contoso and northwind are managed Entra ID domains, the others are unknown there.
    let realm = MockServer::start().await;
    let is_exo = |r: &Request| {
        let u = r.url.as_str();
        u.contains("contoso.invalid") || u.contains("northwind.invalid")
    };
    Mock::given(method("GET"))
        .and(path("/getuserrealm.srf"))
        .and(is_exo)
        .respond_with(common::autodiscover_json("realm_managed.json"))
        .with_priority(1)
        .mount(&realm)
        .await;
    Mock::given(method("GET"))
        .and(path("/getuserrealm.srf"))
        .respond_with(common::autodiscover_json("realm_unknown.json"))
        .mount(&realm)
        .await;
    Mock::given(method("POST"))
        .and(path("/common/GetCredentialType"))
        .respond_with(common::autodiscover_json("credential_type_work.json"))
        .mount(&realm)
        .await;

    let mut args: Vec<String> = [
        "--impersonate",
        "--timeout",
        "10",
        "--ca-file",
        ca_file.path().to_str().unwrap(),
        "--realm-url",
        &realm.uri(),
        "--autodiscover-v2-url",
        &v2.uri(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (host, port) in [
        ("outlook.office365.com", exo_port),
        ("mail.fabrikam.invalid", fab_port),
        ("autodiscover.fabrikam.invalid", ad_fab_port),
        ("broken.invalid", broken_port),
        ("evil.example", evil_port),
    ] {
        args.push("--connect-to".into());
        args.push(format!("{host}:443:127.0.0.1:{port}"));
    }
    World {
        exo,
        fab,
        given,
        ad_fab,
        broken,
        evil,
        v2,
        realm,
        args,
        _ca_file: ca_file,
    }
}

/// Runs the binary (off the runtime, whose threads serve the test hosts meanwhile).
async fn run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ews-probe"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `fleet` over `csv` with `base` (the world's flags) and `extra`; the exit code, the NDJSON
/// lines and standard error.
async fn fleet(base: &[String], csv: &str, extra: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out.ndjson");
    let mut args: Vec<String> = vec![
        "fleet".into(),
        "--input".into(),
        input.display().to_string(),
        "--output".into(),
        out.display().to_string(),
        "--no-progress".into(),
    ];
    args.extend(base.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = run(args).await;
    let reports = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        o.status.code(),
        reports,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailboxes_without_a_url_are_discovered_each_and_checked_under_the_discovered_endpoints_cap()
 {
    const PER_ENDPOINT: usize = 3;
    let w = world(25, 0).await;
    let World {
        exo,
        fab,
        given,
        ad_fab,
        broken,
        evil,
        v2,
        realm,
        ..
    } = &w;
    // 40 mailboxes: 8 contoso, 8 northwind and 16 fabrikam without URL, 4 of broken.invalid without URL,
    // 4 contoso rows with their own URL.
    let mut csv = String::from("mailbox,ews_url\n");
    let mut all = Vec::new();
    for i in 0..40 {
        let (addr, url) = match i % 10 {
            0..=1 => (format!("c{i}@contoso.invalid"), String::new()),
            2..=3 => (format!("n{i}@northwind.invalid"), String::new()),
            4..=7 => (format!("f{i}@fabrikam.invalid"), String::new()),
            8 => (format!("b{i}@broken.invalid"), String::new()),
            _ => (format!("g{i}@contoso.invalid"), given.url("healthy", i)),
        };
        csv.push_str(&format!("{addr},{url}\n"));
        all.push(addr);
    }
    let (code, reports, stderr) = fleet(
        &w.args,
        &csv,
        &[
            "--concurrency",
            "12",
            "--per-endpoint",
            &PER_ENDPOINT.to_string(),
        ],
    )
    .await;
    // broken.invalid's mailboxes are CRITICAL (no endpoint found): the worst status.
    assert_eq!(code, Some(2), "{stderr}");
    // Every mailbox exactly once.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in &reports {
        *count
            .entry(r["mailbox"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(reports.len(), all.len(), "{count:?}");
    assert_eq!(
        count.keys().cloned().collect::<BTreeSet<_>>(),
        all.iter().cloned().collect::<BTreeSet<_>>()
    );

    for r in &reports {
        let m = r["mailbox"].as_str().unwrap();
        let ids = step_ids(r);
        let has = |needle: &str| ids.iter().any(|s| s.contains(needle));
        let codes = codes(r);
        match &m[..1] {
            "c" | "n" => {
                assert_eq!(
                    r["endpoint"], "https://outlook.office365.com/EWS/Exchange.asmx",
                    "{m}: {ids:?}"
                );
                assert!(has("realm") && has("v2 pass"), "{m}: {ids:?}");
                assert_eq!(r["status"], "ok", "{m}: {codes:?} {ids:?}");
            }
            "f" => {
                assert_eq!(
                    r["endpoint"], "https://mail.fabrikam.invalid/EWS/Exchange.asmx",
                    "{m}: {ids:?}"
                );
                assert!(has("v2 fail") && has("pox pass"), "{m}: {ids:?}");
                assert_eq!(r["status"], "ok", "{m}: {codes:?} {ids:?}");
            }
            "b" => {
                assert!(r["endpoint"].is_null(), "{m}: {}", r["endpoint"]);
                assert!(
                    codes.contains(&"autodiscover_failed".to_string()),
                    "{m}: {codes:?}"
                );
                // The foreign host is named, with the flag that would allow it.
                let d = r["diagnoses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|d| d["code"] == "autodiscover_failed")
                    .unwrap();
                assert!(
                    d["evidence"].as_array().unwrap().iter().any(|e| {
                        let e = e.as_str().unwrap();
                        e.contains("evil.example") && e.contains("--trust-host")
                    }),
                    "{m}: {d}"
                );
            }
            _ => {
                // A row with its URL: no Autodiscover; realm discovery runs because
                // --realm-url is given, as in probe.
                let i: usize = m[1..m.find('@').unwrap()].parse().unwrap();
                assert_eq!(r["endpoint"].as_str().unwrap(), given.url("healthy", i));
                assert!(!has("autodiscover."), "{m}: {ids:?}");
                assert!(has("realm"), "{m}: {ids:?}");
                assert_eq!(r["status"], "ok", "{m}: {codes:?} {ids:?}");
            }
        }
        if !m.starts_with('b') {
            assert!(
                !codes.contains(&"autodiscover_failed".to_string()),
                "{m}: {codes:?}"
            );
        }
    }

    // Discovery is per mailbox (no per-domain cache): one v2 request per mailbox without a
    // URL, one POX request per fabrikam mailbox, none for the rows with a URL.
    let v2_paths: Vec<String> = v2
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(v2_paths.len(), 36, "{v2_paths:?}");
    assert!(!v2_paths.iter().any(|p| p.contains("/g")), "{v2_paths:?}");
    assert_eq!(ad_fab.received_requests().await.unwrap().len(), 16);
    // The per-endpoint cap held on the discovered EWS hosts (the server counts mailboxes with
    // a request in flight), and each saw its own mailboxes, all of them.
    for (name, s, prefix) in [
        ("outlook.office365.com", &exo, "cn"),
        ("mail.fabrikam.invalid", &fab, "f"),
    ] {
        let peak = s
            .stats
            .peak_mailboxes
            .load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (1..=PER_ENDPOINT).contains(&peak),
            "{name}: {peak} mailboxes at once, cap {PER_ENDPOINT}"
        );
        let want: BTreeSet<String> = all
            .iter()
            .filter(|a| prefix.contains(&a[..1]))
            .cloned()
            .collect();
        assert_eq!(seen(s), want, "{name}");
    }
    // The untrusted host named by broken.invalid's redirects received nothing, and no request
    // anywhere carried credentials (none were given).
    assert!(evil.received_requests().await.unwrap().is_empty());
    assert!(broken.received_requests().await.unwrap().len() >= 4);
    for m in [&v2, &realm, &ad_fab, &broken] {
        for q in m.received_requests().await.unwrap() {
            assert!(q.headers.get("authorization").is_none());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_discovered_endpoint_pauses_itself_not_the_run() {
    // Exchange Online (found by v2) answers its first connectivity request with
    // ErrorServerBusy (BackOffMilliseconds 600) and each request after 20 ms; fabrikam's
    // server is healthy. The busy answer must pause the endpoint the mailbox had discovered
    // (not its domain's discovery key): contoso mailboxes that finish discovery meanwhile wait
    // for the pause before their checks, while fabrikam's go on.
    let w = world(20, 1).await;
    let mut csv = String::from("mailbox\n");
    for i in 0..24 {
        csv.push_str(&format!("c{i}@contoso.invalid\n"));
    }
    for i in 0..12 {
        csv.push_str(&format!("f{i}@fabrikam.invalid\n"));
    }
    let (code, reports, stderr) = fleet(
        &w.args,
        &csv,
        &["--concurrency", "6", "--per-endpoint", "3"],
    )
    .await;
    assert_eq!(code, Some(1), "the throttled mailbox warns: {stderr}");
    assert_eq!(reports.len(), 36);
    let throttled = reports
        .iter()
        .filter(|r| codes(r).contains(&"throttled".to_string()))
        .count();
    assert_eq!(throttled, 1, "one mailbox met the busy answer and retried");

    let log = w.exo.stats.log.lock().unwrap().clone();
    let busy = log.iter().find(|e| e.3).expect("a busy answer");
    let busy_at = busy.0 + std::time::Duration::from_millis(20);
    let backoff = std::time::Duration::from_millis(600);
    let in_window = |t: std::time::Duration| {
        t > busy_at + std::time::Duration::from_millis(100)
            && t < busy_at + backoff - std::time::Duration::from_millis(50)
    };
    // No other mailbox started its checks at Exchange Online during the back-off…
    let started: Vec<_> = log
        .iter()
        .filter(|e| e.2 && e.1 != busy.1 && in_window(e.0))
        .collect();
    assert!(
        started.is_empty(),
        "the endpoint was not paused: {started:?}"
    );
    // …and they did after it.
    assert!(log.iter().any(|e| e.2 && e.0 >= busy_at + backoff));
    // Fabrikam's endpoint was not paused: its mailboxes started checks in that window, or
    // were all done before it.
    let fab = w.fab.stats.log.lock().unwrap().clone();
    let fab_last = fab.iter().map(|e| e.0).max().unwrap();
    assert!(
        fab.iter().any(|e| e.2 && in_window(e.0)) || fab_last < busy_at + backoff,
        "fabrikam slowed down: {fab:?}, busy at {busy_at:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mailbox_gets_the_same_steps_as_probe_gives_it() {
    // The fleet runs probe's pipeline: the same discovery steps, the same endpoint, the same
    // diagnoses, for a v2 mailbox, a POX mailbox, a failing domain and a consumer address
    // (decided before any request: no Autodiscover).
    let w = world(0, 0).await;
    let mailboxes = [
        "c1@contoso.invalid",
        "f1@fabrikam.invalid",
        "b1@broken.invalid",
        "x1@outlook.com",
    ];
    let csv = format!("mailbox\n{}\n", mailboxes.join("\n"));
    let (_, reports, stderr) = fleet(&w.args, &csv, &[]).await;
    assert_eq!(reports.len(), 4, "{stderr}");
    let v2_before = w.v2.received_requests().await.unwrap().len();
    assert_eq!(v2_before, 3, "no Autodiscover for the consumer address");
    for m in mailboxes {
        let mut args = vec![
            "probe".to_string(),
            m.to_string(),
            "--format".into(),
            "json".into(),
        ];
        args.extend(w.args.iter().cloned());
        let o = run(args).await;
        let p: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{m}: {e}: {}", String::from_utf8_lossy(&o.stderr)));
        let f = reports.iter().find(|r| r["mailbox"] == m).unwrap();
        assert_eq!(step_ids(f), step_ids(&p), "{m}");
        assert_eq!(codes(f), codes(&p), "{m}");
        assert_eq!(f["endpoint"], p["endpoint"], "{m}");
        assert_eq!(f["status"], p["status"], "{m}");
    }
    assert_eq!(w.v2.received_requests().await.unwrap().len(), v2_before + 3);
    assert!(w.evil.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_discovery_base_url_stops_the_fleet_before_any_request() {
    let w = world(0, 0).await;
    let csv = format!(
        "mailbox,ews_url\nc1@contoso.invalid\ng2@contoso.invalid,{}\n",
        w.given.url("healthy", 2)
    );
    for flag in ["--realm-url", "--autodiscover-v2-url"] {
        // The world's flags, this one's value replaced by a bad one.
        let mut w2_args = w.args.clone();
        let i = w2_args.iter().position(|a| a == flag).unwrap();
        w2_args[i + 1] = "ftp://x.invalid".into();
        let (code, reports, stderr) = fleet(&w2_args, &csv, &[]).await;
        assert_eq!(code, Some(3), "{stderr}");
        assert!(
            stderr.contains(&format!("{flag} 'ftp://x.invalid' is not an http(s) URL")),
            "{stderr}"
        );
        assert!(reports.is_empty());
    }
    assert!(w.v2.received_requests().await.unwrap().is_empty());
    assert!(w.realm.received_requests().await.unwrap().is_empty());
    assert_eq!(
        w.given
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_host_applies_to_every_mailbox_of_the_fleet() {
    // broken.invalid's Autodiscover redirects to evil.example, which here answers POX naming
    // fabrikam's server. Refused without --trust-host (the other tests); with both hosts
    // trusted, every broken.invalid mailbox follows the redirect and is checked there.
    let w = world(0, 0).await;
    Mock::given(method("POST"))
        .and(path("/autodiscover/autodiscover.xml"))
        .respond_with(common::autodiscover_xml("pox_settings_fabrikam.xml"))
        .mount(&w.evil)
        .await;
    let csv = "mailbox\nb1@broken.invalid\nb2@broken.invalid\nb3@broken.invalid\n";
    let (code, reports, stderr) = fleet(
        &w.args,
        csv,
        &[
            "--trust-host",
            "evil.example",
            "--trust-host",
            "mail.fabrikam.invalid",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(reports.len(), 3);
    for r in &reports {
        assert_eq!(
            r["endpoint"],
            "https://mail.fabrikam.invalid/EWS/Exchange.asmx",
            "{:?}",
            step_ids(r)
        );
    }
    assert_eq!(w.evil.received_requests().await.unwrap().len(), 3);
    assert_eq!(seen(&w.fab).len(), 3);
}

/// Ctrl-C while mailboxes wait for their discovered endpoint: with `--per-endpoint 1` and a
/// slow Exchange Online, one contoso mailbox runs its checks there and the others, already
/// discovered, wait in the trade for its permit. The stop lets the running one finish and
/// write its line; the waiting ones are not started (no line), and `--resume` probes exactly
/// them.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_waiting_for_a_discovered_endpoint_leaves_those_to_resume() {
    use std::sync::atomic::Ordering;
    let w = world(1500, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let all: BTreeSet<String> = (0..6).map(|i| format!("c{i}@contoso.invalid")).collect();
    let csv = format!(
        "mailbox\n{}\n",
        all.iter().cloned().collect::<Vec<_>>().join("\n")
    );
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out.ndjson");
    let mut args: Vec<String> = [
        "fleet",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--no-progress",
        "--concurrency",
        "6",
        "--per-endpoint",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(w.args.iter().cloned());
    let child = Command::new(env!("CARGO_BIN_EXE_ews-probe"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first mailbox is at Exchange Online (its checks take 2 x 1.5 s); the others have
    // had time to be discovered and queue for the endpoint.
    let t = std::time::Instant::now();
    while w.exo.stats.requests.load(Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "no request reached EXO"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // SAFETY: signals the child we spawned and still own (not yet waited for).
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let o = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("5 not started (interrupted"), "{stderr}");
    let read = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["mailbox"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let first = read(&out);
    assert_eq!(
        first.len(),
        1,
        "only the mailbox in flight is written: {first:?}"
    );

    w.exo.delay_ms.store(0, Ordering::SeqCst);
    args.push("--resume".into());
    let o = run(args).await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let got = read(&out);
    assert_eq!(got.len(), all.len(), "{got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), all);
}

/// The wait for a busy discovered endpoint is admission, not probe time: with
/// `--per-endpoint 1`, each contoso mailbox's checks take ~1 s at Exchange Online (two rounds
/// of 0.5 s) and the last of five waits ~4 s for its turn, longer than `--timeout 3`; every
/// one is still checked in full (none times out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_discovered_endpoint_does_not_count_against_the_timeout() {
    let w = world(500, 0).await;
    let csv: String = std::iter::once("mailbox".to_string())
        .chain((1..=5).map(|i| format!("t{i}@contoso.invalid")))
        .map(|l| l + "\n")
        .collect();
    // The world's flags with its --timeout 10 replaced.
    let mut base = w.args.clone();
    let at = base.iter().position(|a| a == "--timeout").unwrap();
    base[at + 1] = "3".into();
    let (code, reports, stderr) =
        fleet(&base, &csv, &["--concurrency", "5", "--per-endpoint", "1"]).await;
    assert_eq!(reports.len(), 5, "{stderr}");
    for r in &reports {
        assert_eq!(r["status"], "ok", "{}: {}", r["mailbox"], r["diagnoses"]);
    }
    assert_eq!(code, Some(0), "{stderr}");
}
