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

/// A JSON fixture (leading `//` comment lines dropped) as an HTTP 200 answer.
fn json(rel: &str) -> ResponseTemplate {
    let text = common::fixture(&format!("autodiscover/{rel}"));
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    ResponseTemplate::new(200).set_body_raw(body, "application/json; charset=utf-8")
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailboxes_without_a_url_are_discovered_each_and_checked_under_the_discovered_endpoints_cap()
 {
    const PER_ENDPOINT: usize = 3;
    let ca = new_ca();
    let mut ca_file = tempfile::NamedTempFile::new().unwrap();
    ca_file.write_all(ca.pem.as_bytes()).unwrap();

    // EWS servers: Exchange Online (found by v2 for contoso.invalid), fabrikam's on-premises
    // server (found by POX), and one for the rows that carry their URL.
    let exo = fleet_server::start(25, 0);
    let fab = fleet_server::start(25, 0);
    let given = fleet_server::start(3, 0);
    let exo_port = tls_front(&ca, "outlook.office365.com", Cert::Good, exo.addr).await;
    let fab_port = tls_front(&ca, "mail.fabrikam.invalid", Cert::Good, fab.addr).await;

    // Autodiscover: fabrikam's POX service; broken.invalid's answers redirect to a foreign
    // host, which must receive nothing.
    let (ad_fab_port, ad_fab) = tls_host(&ca, "autodiscover.fabrikam.invalid", Cert::Good).await;
    Mock::given(method("POST"))
        .and(path("/autodiscover/autodiscover.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            common::fixture("autodiscover/pox_settings_fabrikam.xml"),
            "text/xml; charset=utf-8",
        ))
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
        .respond_with(json("v2_exo.json"))
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
        .respond_with(json("realm_managed.json"))
        .with_priority(1)
        .mount(&realm)
        .await;
    Mock::given(method("GET"))
        .and(path("/getuserrealm.srf"))
        .respond_with(json("realm_unknown.json"))
        .mount(&realm)
        .await;
    Mock::given(method("POST"))
        .and(path("/common/GetCredentialType"))
        .respond_with(json("credential_type_work.json"))
        .mount(&realm)
        .await;

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
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out.ndjson");

    let mut args: Vec<String> = [
        "fleet",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--impersonate",
        "--concurrency",
        "12",
        "--per-endpoint",
        &PER_ENDPOINT.to_string(),
        "--no-progress",
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
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ews-probe"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    // broken.invalid's mailboxes are CRITICAL (no endpoint found): the worst status.
    assert_eq!(run.status.code(), Some(2), "{stderr}");

    let reports: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
