//! Autodiscover and realm discovery over real HTTPS on 127.0.0.1: each test host
//! (contoso.example, autodiscover.contoso.example, evil.example, autodiscover.com, …) is a
//! wiremock server behind its own small TLS front (tokio-rustls) whose certificate a test CA,
//! generated here with rcgen, signed for that name. The probe reaches them with
//! `--connect-to HOST:443:127.0.0.1:PORT` and trusts the CA with `--ca-file`. Every hostile
//! case asserts on what the servers actually received: no credential ever reaches an
//! untrusted host, and untrusted hosts receive nothing at all.

mod common;
use common::tls::{Cert, new_ca, tls_host};
use common::*;
use ews_probe::discover::srv::{SrvLookup, SrvRecord};
use ews_probe::evidence::{Outcome, StepKind};
use ews_probe::report::Report;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PASSWORD: &str = "Disc0very-Secret!";

/// DNS SRV answers by name; any other name fails like NXDOMAIN. No real DNS is ever asked.
#[derive(Default)]
struct StubSrv(
    std::sync::Mutex<HashMap<String, Vec<SrvRecord>>>,
    std::sync::Mutex<Vec<String>>,
);

impl SrvLookup for StubSrv {
    fn lookup<'a>(&'a self, name: &'a str) -> ews_probe::discover::srv::Lookup<'a> {
        self.1.lock().unwrap().push(name.to_string());
        let v = self.0.lock().unwrap().get(name).cloned();
        Box::pin(async move { v.ok_or_else(|| "NXDOMAIN (stub)".to_string()) })
    }
}

/// The test world: one TLS host per name, a plain-HTTP server for `http://autodiscover.…`
/// and realm discovery, and the flags that route the probe to them.
struct World {
    hosts: HashMap<String, MockServer>,
    plain: MockServer,
    realm: MockServer,
    args: Vec<String>,
    srv: Arc<StubSrv>,
    _ca_file: tempfile::NamedTempFile,
}

const NAMES: &[&str] = &[
    "outlook.office365.com",
    "contoso.example",
    "autodiscover.contoso.example",
    "mail.contoso.example",
    "evil.example",
    "autodiscover.com",
    "fabrikam.example",
    "autodiscover.fabrikam.example",
];

impl World {
    async fn new() -> World {
        Self::with_certs(&[]).await
    }

    async fn with_certs(special: &[(&str, Cert)]) -> World {
        let ca = new_ca();
        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        ca_file.write_all(ca.pem.as_bytes()).unwrap();
        let mut args = vec![
            "--ca-file".to_string(),
            ca_file.path().display().to_string(),
            "--timeout".into(),
            "10".into(),
        ];
        let mut hosts = HashMap::new();
        for n in NAMES {
            let kind = special
                .iter()
                .find(|(h, _)| h == n)
                .map(|(_, k)| *k)
                .unwrap_or(Cert::Good);
            let (port, mock) = tls_host(&ca, n, kind).await;
            args.push("--connect-to".into());
            args.push(format!("{n}:443:127.0.0.1:{port}"));
            hosts.insert(n.to_string(), mock);
        }
        let plain = MockServer::start().await;
        for n in NAMES {
            args.push("--connect-to".into());
            args.push(format!("{n}:80:127.0.0.1:{}", plain.address().port()));
        }
        let realm = MockServer::start().await;
        args.push("--realm-url".into());
        args.push(realm.uri());
        World {
            hosts,
            plain,
            realm,
            args,
            srv: Arc::new(StubSrv::default()),
            _ca_file: ca_file,
        }
    }

    fn host(&self, n: &str) -> &MockServer {
        &self.hosts[n]
    }

    /// Answers POST `…/autodiscover/autodiscover.xml` on `host`.
    async fn pox(&self, host: &str, resp: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path_regex("(?i)/autodiscover/autodiscover.xml$"))
            .respond_with(resp)
            .mount(self.host(host))
            .await;
    }

    /// Realm discovery answers: getuserrealm from `fixture`, GetCredentialType "no such
    /// account" for an unknown realm, "work account exists" otherwise.
    async fn realm(&self, fixture: &str) {
        let ct = if fixture.contains("unknown") {
            "credential_type_none.json"
        } else {
            "credential_type_work.json"
        };
        self.realm_with(fixture, ct).await;
    }

    async fn realm_with(&self, fixture: &str, ct: &str) {
        Mock::given(method("GET"))
            .and(path("/getuserrealm.srf"))
            .respond_with(autodiscover_json(fixture))
            .mount(&self.realm)
            .await;
        Mock::given(method("POST"))
            .and(path("/common/GetCredentialType"))
            .respond_with(autodiscover_json(ct))
            .mount(&self.realm)
            .await;
    }

    /// Every request any server received: (server name, method, path, Authorization).
    async fn received(&self) -> Vec<(String, String, String, Option<String>)> {
        let mut out = Vec::new();
        let mut all: Vec<(&str, &MockServer)> =
            self.hosts.iter().map(|(k, v)| (k.as_str(), v)).collect();
        all.push(("plain-http", &self.plain));
        all.push(("realm", &self.realm));
        for (name, m) in all {
            for r in m.received_requests().await.unwrap_or_default() {
                out.push((
                    name.to_string(),
                    r.method.to_string(),
                    r.url.path().to_string(),
                    r.headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap_or("?").to_string()),
                ));
            }
        }
        out
    }

    async fn count(&self, host: &str) -> usize {
        self.host(host)
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }

    async fn discover(&self, mailbox: &str, extra: &[&str]) -> Report {
        let mut argv = vec!["ews-probe", "discover", mailbox];
        argv.extend(self.args.iter().map(String::as_str));
        argv.extend_from_slice(extra);
        let cli = <ews_probe::cli::Cli as clap::Parser>::try_parse_from(argv).expect("flags");
        match cli.command {
            ews_probe::cli::Command::Discover(a) => {
                ews_probe::app::discover_with(&a, self.srv.clone())
                    .await
                    .unwrap()
            }
            _ => unreachable!(),
        }
    }

    /// `probe MAILBOX --auth basic` with a password file, no --ews-url.
    async fn probe_basic(&self, mailbox: &str, extra: &[&str]) -> Report {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{PASSWORD}").unwrap();
        let pw = f.path().display().to_string();
        let mut args: Vec<&str> = vec![mailbox, "--auth", "basic", "--password-file", &pw];
        args.extend(self.args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        self.probe(&args).await
    }

    /// `probe MAILBOX --auth bearer` with a token file, no --ews-url.
    async fn probe_bearer(&self, mailbox: &str, token: &str) -> Report {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{token}").unwrap();
        let tp = f.path().display().to_string();
        let mut args: Vec<&str> = vec![mailbox, "--auth", "bearer", "--token-file", &tp];
        args.extend(self.args.iter().map(String::as_str));
        self.probe(&args).await
    }

    /// Autodiscover v2 answers for `mailbox`: Exchange Online (fixtures/autodiscover/v2_exo.json).
    async fn v2_answers_exo(&self, mailbox: &str) {
        Mock::given(method("GET"))
            .and(path(format!(
                "/autodiscover/autodiscover.json/v1.0/{mailbox}"
            )))
            .respond_with(autodiscover_json("v2_exo.json"))
            .mount(self.host("outlook.office365.com"))
            .await;
    }

    /// `probe ARGS…` in-process with the stubbed SRV lookup.
    async fn probe(&self, args: &[&str]) -> Report {
        let mut argv = vec!["ews-probe", "probe"];
        argv.extend_from_slice(args);
        let cli = <ews_probe::cli::Cli as clap::Parser>::try_parse_from(argv).expect("flags");
        match cli.command {
            ews_probe::cli::Command::Probe(a) => ews_probe::app::probe_with(&a, self.srv.clone())
                .await
                .unwrap(),
            _ => unreachable!(),
        }
    }

    /// No request to a host outside `trusted` carried an Authorization header, and no
    /// request at all reached a host in `untouched`.
    async fn assert_no_leak(&self, trusted: &[&str], untouched: &[&str]) {
        for (host, m, p, auth) in self.received().await {
            if auth.is_some() {
                assert!(
                    trusted.contains(&host.as_str()),
                    "credentials reached {host}: {m} {p}"
                );
            }
            assert!(
                !untouched.contains(&host.as_str()),
                "{host} received {m} {p}"
            );
        }
    }
}

fn redirect(to: &str) -> ResponseTemplate {
    ResponseTemplate::new(302).insert_header("location", to)
}

fn ids(r: &Report) -> Vec<String> {
    r.steps
        .iter()
        .map(|s| format!("{} {:?}", s.id, s.outcome))
        .collect()
}

fn autodiscover_failed(r: &Report) -> &ews_probe::diagnose::Diagnosis {
    r.diagnoses
        .iter()
        .find(|d| d.code.as_str() == "autodiscover_failed")
        .unwrap_or_else(|| panic!("no autodiscover_failed: {:#?}", r.diagnoses))
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_finds_the_endpoint_by_pox_and_sends_no_credentials() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox("contoso.example", autodiscover_xml("pox_settings.xml"))
        .await;
    let r = w.discover("j.smith@contoso.example", &[]).await;
    assert_eq!(
        r.endpoint.as_deref(),
        Some("https://mail.contoso.example/EWS/Exchange.asmx"),
        "{:#?}",
        r.steps
    );
    // realm, v2 (404 from the Exchange Online stand-in), POX at the domain: in that order.
    let steps = ids(&r);
    assert!(steps[0].starts_with("discover.realm Pass"), "{steps:?}");
    assert!(
        steps[1].starts_with("discover.credential_type Pass"),
        "{steps:?}"
    );
    let steps = steps[1..].to_vec();
    assert!(steps[1].starts_with("autodiscover.01.v2 Fail"), "{steps:?}");
    assert!(
        steps[2].starts_with("autodiscover.02.pox Pass"),
        "{steps:?}"
    );
    // Then the network steps for the endpoint found: DNS answer, TCP connect, TLS details.
    assert_eq!(
        steps[3..],
        [
            "net.mail.contoso.example.dns Pass",
            "net.mail.contoso.example.tcp Pass",
            "net.mail.contoso.example.tls Pass"
        ]
    );
    assert_eq!(r.steps[4].detail, "mail.contoso.example → 127.0.0.1");
    assert_eq!(r.steps[4].kind, StepKind::Dns);
    let tls = &r.steps[6].detail;
    assert!(
        tls.starts_with("TLSv1_3")
            && tls.contains("CN=mail.contoso.example")
            && tls.contains("CN=ews-probe test CA")
            && tls.contains("SANs mail.contoso.example"),
        "{tls}"
    );
    assert!(r.steps.iter().all(|s| s.kind != StepKind::Ews));
    assert!(
        r.steps[3]
            .detail
            .contains("https://contoso.example/autodiscover/autodiscover.xml")
    );
    assert!(r.diagnoses.is_empty(), "{:#?}", r.diagnoses);
    assert_eq!(r.exit_code, 0);
    assert!(
        r.account
            .basis
            .iter()
            .any(|b| b.contains("no Microsoft Entra ID tenant")),
        "{:?}",
        r.account.basis
    );
    assert!(
        r.account
            .basis
            .iter()
            .any(|b| b.contains("POX") && b.contains("mail.contoso.example")),
        "{:?}",
        r.account.basis
    );
    // The POX body asked for the mailbox; nothing carried credentials.
    let body = String::from_utf8_lossy(
        &w.host("contoso.example").received_requests().await.unwrap()[0].body,
    )
    .into_owned();
    assert!(
        body.contains("<EMailAddress>j.smith@contoso.example</EMailAddress>"),
        "{body}"
    );
    w.assert_no_leak(&[], &["evil.example", "autodiscover.com"])
        .await;
    assert!(w.received().await.iter().all(|(_, _, _, a)| a.is_none()));
    let text = ews_probe::report::render(&r, ews_probe::report::Format::Text, false);
    assert!(
        text.contains("Discovery\n")
            && text.contains("endpoint  https://mail.contoso.example/EWS/Exchange.asmx"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_without_ews_url_answers_a_challenge_on_a_trusted_host_then_runs_the_checks() {
    let w = World::new().await;
    w.realm("realm_managed.json").await;
    // The first (unauthenticated) POST is challenged; the retry with Basic gets the settings.
    Mock::given(method("POST"))
        .and(path("/autodiscover/autodiscover.xml"))
        .and(wiremock::matchers::header_exists("authorization"))
        .respond_with(autodiscover_xml("pox_settings.xml"))
        .with_priority(1)
        .mount(w.host("contoso.example"))
        .await;
    w.pox(
        "contoso.example",
        ResponseTemplate::new(401)
            .insert_header("www-authenticate", "Basic realm=\"contoso.example\""),
    )
    .await;
    healthy(w.host("mail.contoso.example")).await;
    let r = w.probe_basic("j.smith@contoso.example", &[]).await;
    assert_eq!(
        r.endpoint.as_deref(),
        Some("https://mail.contoso.example/EWS/Exchange.asmx"),
        "{:#?}",
        r.steps
    );
    assert_eq!(r.exit_code, 0, "{:#?}", r.diagnoses);
    assert_eq!(feature_statuses(&r), ["available"; 4]);
    let pox: Vec<_> = w.host("contoso.example").received_requests().await.unwrap();
    assert_eq!(pox.len(), 2);
    assert!(
        pox[0].headers.get("authorization").is_none(),
        "first request must be unauthenticated"
    );
    assert!(
        pox[1]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    // Discovery steps (then the challenge step of issue 4) come before the EWS checks.
    let first_ews = r
        .steps
        .iter()
        .position(|s| s.kind == StepKind::Ews)
        .unwrap();
    assert!(r.steps[..first_ews].iter().all(|s| matches!(
        s.kind,
        StepKind::Autodiscover | StepKind::Dns | StepKind::Tcp | StepKind::Tls | StepKind::Auth
    )));
    assert_eq!(r.account.kind, ews_probe::target::AccountKind::WorkOrSchool);
    w.assert_no_leak(
        &["contoso.example", "mail.contoso.example"],
        &["evil.example"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_to_a_foreign_host_is_refused_and_nothing_reaches_it() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox(
        "contoso.example",
        redirect("https://evil.example/autodiscover/autodiscover.xml"),
    )
    .await;
    w.pox("evil.example", autodiscover_xml("pox_settings.xml"))
        .await;
    let r = w.probe_basic("j.smith@contoso.example", &[]).await;
    assert_eq!(r.endpoint, None);
    let d = autodiscover_failed(&r);
    assert!(
        d.evidence
            .iter()
            .any(|e| e.contains("evil.example") && e.contains("--trust-host")),
        "{d:#?}"
    );
    assert!(d.remedy.contains("--trust-host"));
    assert_eq!(w.count("evil.example").await, 0);
    w.assert_no_leak(&[], &["evil.example"]).await;
    assert_eq!(r.exit_code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn trust_host_allows_the_named_host_only() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox(
        "contoso.example",
        redirect("https://evil.example/autodiscover/autodiscover.xml"),
    )
    .await;
    w.pox("evil.example", autodiscover_xml("pox_settings.xml"))
        .await;
    let r = w
        .discover("j.smith@contoso.example", &["--trust-host", "evil.example"])
        .await;
    // evil.example was asked (it is trusted now) and named an EWS URL in contoso.example;
    // the redirected request is still the same POST with the same body.
    let got = w.host("evil.example").received_requests().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method.to_string(), "POST");
    assert!(
        String::from_utf8_lossy(&got[0].body)
            .contains("<EMailAddress>j.smith@contoso.example</EMailAddress>")
    );
    assert_eq!(
        r.endpoint.as_deref(),
        Some("https://mail.contoso.example/EWS/Exchange.asmx")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_to_plain_http_is_refused() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox(
        "contoso.example",
        autodiscover_xml("pox_redirect_url.xml").set_body_raw(
            fixture("autodiscover/pox_redirect_url.xml").replace(
                "https://autodiscover.eu.contoso.example",
                "http://autodiscover.contoso.example",
            ),
            "text/xml",
        ),
    )
    .await;
    let r = w.probe_basic("j.smith@contoso.example", &[]).await;
    assert_eq!(r.endpoint, None);
    let d = autodiscover_failed(&r);
    assert!(d.summary.contains("not https"), "{d:#?}");
    // The plain-HTTP server saw only the documented unauthenticated GET, never a POST.
    for q in w.plain.received_requests().await.unwrap() {
        assert_eq!(q.method.to_string(), "GET");
        assert!(q.headers.get("authorization").is_none());
        assert!(q.body.is_empty());
    }
    w.assert_no_leak(&[], &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn autodiscover_dot_public_suffix_is_never_trusted_even_with_trust_host() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox(
        "contoso.example",
        redirect("https://autodiscover.com/autodiscover/autodiscover.xml"),
    )
    .await;
    w.pox("autodiscover.com", autodiscover_xml("pox_settings.xml"))
        .await;
    let r = w
        .probe_basic(
            "j.smith@contoso.example",
            &["--trust-host", "autodiscover.com"],
        )
        .await;
    assert_eq!(r.endpoint, None);
    let d = autodiscover_failed(&r);
    assert!(
        d.evidence
            .iter()
            .any(|e| e.contains("autodiscover.com") && e.contains("never trusted")),
        "{d:#?}"
    );
    assert_eq!(w.count("autodiscover.com").await, 0);
    w.assert_no_leak(&[], &["autodiscover.com"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_loop_is_detected() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox(
        "contoso.example",
        redirect("https://autodiscover.contoso.example/autodiscover/autodiscover.xml"),
    )
    .await;
    w.pox(
        "autodiscover.contoso.example",
        redirect("https://contoso.example/autodiscover/autodiscover.xml"),
    )
    .await;
    let r = w.probe_basic("j.smith@contoso.example", &[]).await;
    assert_eq!(r.endpoint, None);
    let d = autodiscover_failed(&r);
    assert!(d.summary.contains("loop"), "{d:#?}");
    // Each POX URL was asked once; the loop did not run on.
    for h in ["contoso.example", "autodiscover.contoso.example"] {
        let n = w
            .host(h)
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|q| q.url.path().ends_with(".xml"))
            .count();
        assert_eq!(n, 1, "{h}");
    }
    w.assert_no_leak(&[], &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eleven_redirects_stop_at_the_limit_of_ten() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    for i in 0..20 {
        let from = if i == 0 {
            "/autodiscover/autodiscover.xml".to_string()
        } else {
            format!("/autodiscover/h{i}/autodiscover.xml")
        };
        Mock::given(method("POST"))
            .and(path(from.as_str()))
            .respond_with(redirect(&format!(
                "https://contoso.example/autodiscover/h{}/autodiscover.xml",
                i + 1
            )))
            .mount(w.host("contoso.example"))
            .await;
    }
    let r = w.probe_basic("j.smith@contoso.example", &[]).await;
    assert_eq!(r.endpoint, None);
    let d = autodiscover_failed(&r);
    assert!(d.summary.contains("more than 10 redirects"), "{d:#?}");
    // The first request plus ten followed hops; the 11th redirect was not followed.
    assert_eq!(w.count("contoso.example").await, 11);
    // And nothing was tried after the limit stopped discovery.
    assert_eq!(w.count("autodiscover.contoso.example").await, 0);
    assert!(w.plain.received_requests().await.unwrap().is_empty());
    w.assert_no_leak(&[], &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pox_redirect_of_the_address_to_another_domain_reaches_no_host_there() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox(
        "contoso.example",
        autodiscover_xml("pox_redirect_addr.xml").set_body_raw(
            fixture("autodiscover/pox_redirect_addr.xml")
                .replace("user@subdomain.contoso.example", "victim@fabrikam.example"),
            "text/xml",
        ),
    )
    .await;
    w.pox("fabrikam.example", autodiscover_xml("pox_settings.xml"))
        .await;
    w.pox(
        "autodiscover.fabrikam.example",
        autodiscover_xml("pox_settings.xml"),
    )
    .await;
    let r = w.probe_basic("j.smith@contoso.example", &[]).await;
    assert_eq!(r.endpoint, None, "{:#?}", r.steps);
    let d = autodiscover_failed(&r);
    assert!(d.summary.contains("victim@fabrikam.example"), "{d:#?}");
    assert!(
        d.evidence
            .iter()
            .any(|e| e.contains("fabrikam.example is outside contoso.example")),
        "{d:#?}"
    );
    w.assert_no_leak(&[], &["fabrikam.example", "autodiscover.fabrikam.example"])
        .await;
    // The unauthenticated plain GET to http://autodiscover.fabrikam.example was refused too.
    assert!(w.plain.received_requests().await.unwrap().iter().all(|q| {
        q.headers
            .get("host")
            .map(|h| !h.to_str().unwrap().contains("fabrikam"))
            .unwrap_or(true)
    }));
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_json_answer_wins_first() {
    let w = World::new().await;
    w.realm("realm_managed.json").await;
    w.v2_answers_exo("adele@contoso.example").await;
    let r = w.discover("adele@contoso.example", &[]).await;
    assert_eq!(
        r.endpoint.as_deref(),
        Some("https://outlook.office365.com/EWS/Exchange.asmx")
    );
    assert_eq!(
        r.steps.len(),
        6,
        "realm, credential type, v2, dns, tcp, tls: {:?}",
        ids(&r)
    );
    assert_eq!(w.count("contoso.example").await, 0);
    assert_eq!(r.account.kind, ews_probe::target::AccountKind::WorkOrSchool);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plain_http_redirect_probe_leads_to_pox() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    Mock::given(method("GET"))
        .and(path("/autodiscover/autodiscover.xml"))
        .respond_with(redirect(
            "https://mail.contoso.example/autodiscover/autodiscover.xml",
        ))
        .mount(&w.plain)
        .await;
    w.pox("mail.contoso.example", autodiscover_xml("pox_settings.xml"))
        .await;
    let r = w.discover("j.smith@contoso.example", &[]).await;
    assert_eq!(
        r.endpoint.as_deref(),
        Some("https://mail.contoso.example/EWS/Exchange.asmx"),
        "{:?}",
        ids(&r)
    );
    let q = &w.plain.received_requests().await.unwrap()[0];
    assert_eq!(q.method.to_string(), "GET");
    assert_eq!(
        q.headers.get("host").unwrap(),
        "autodiscover.contoso.example"
    );
    assert!(q.headers.get("authorization").is_none() && q.body.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn realm_answers_give_the_account_kind_and_basis() {
    for (fx, kind, needle) in [
        (
            "realm_managed.json",
            "work_or_school",
            "managed Microsoft Entra ID",
        ),
        (
            "realm_federated.json",
            "work_or_school",
            "sign-in at sts.contoso.example",
        ),
        (
            "realm_unknown.json",
            "unknown",
            "no Microsoft Entra ID account has this address",
        ),
        (
            "consumer",
            "consumer",
            "a personal Microsoft account (IfExistsResult 5)",
        ),
    ] {
        let w = World::new().await;
        if fx == "consumer" {
            w.realm_with("realm_unknown.json", "credential_type_personal.json")
                .await;
        } else {
            w.realm(fx).await;
        }
        let r = w.discover("adele@contoso.example", &[]).await;
        assert_eq!(serde_json::to_value(r.account.kind).unwrap(), kind, "{fx}");
        assert!(
            r.account.basis.iter().any(|b| b.contains(needle)),
            "{fx}: {:?}",
            r.account.basis
        );
        let q = &w.realm.received_requests().await.unwrap()[0];
        assert_eq!(q.url.query(), Some("login=adele%40contoso.example&json=1"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_address_is_identified_before_any_ews_request() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.v2_answers_exo("jamie@outlook.com").await;
    on(
        w.host("outlook.office365.com"),
        CONNECTIVITY,
        http("consumer_403_empty.http"),
    )
    .await;
    let r = w
        .probe_bearer("jamie@outlook.com", "consumer-token-value")
        .await;
    assert_eq!(codes(&r)[0], "consumer_account_no_ews");
    assert_eq!(r.account.basis[0], "consumer domain outlook.com");
    // Realm discovery and Autodiscover come first and carry no credential; then EWS ran.
    assert_eq!(r.steps[0].id, "discover.realm");
    let first_ews = r
        .steps
        .iter()
        .position(|s| s.kind == StepKind::Ews)
        .unwrap();
    assert!(first_ews >= 2);
    assert_eq!(r.steps[first_ews].outcome, Outcome::Fail);
    let got = w
        .host("outlook.office365.com")
        .received_requests()
        .await
        .unwrap();
    assert!(
        got[0].headers.get("authorization").is_none(),
        "v2 JSON is unauthenticated"
    );
    assert!(
        w.realm.received_requests().await.unwrap()[0]
            .headers
            .get("authorization")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ca_fails_tls_without_ca_file() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox("contoso.example", autodiscover_xml("pox_settings.xml"))
        .await;
    // The same routes without --ca-file: the test CA is unknown.
    let args: Vec<String> = w.args.iter().skip(2).cloned().collect();
    let mut argv = vec!["ews-probe", "discover", "j.smith@contoso.example"];
    argv.extend(args.iter().map(String::as_str));
    let cli = <ews_probe::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
    let ews_probe::cli::Command::Discover(a) = cli.command else {
        unreachable!()
    };
    let r = ews_probe::app::discover_with(&a, w.srv.clone())
        .await
        .unwrap();
    assert_eq!(r.endpoint, None);
    let d = autodiscover_failed(&r);
    assert!(d.summary.contains("tls"), "{d:#?}");
    assert_eq!(
        w.count("contoso.example").await,
        0,
        "no request passes a failed handshake"
    );
    // tls_failure comes first, with the chain and the inspection hint.
    let t = &r.diagnoses[0];
    assert_eq!(t.code.as_str(), "tls_failure", "{:#?}", r.diagnoses);
    assert!(
        t.summary.contains("unknown issuer") && t.summary.contains("--ca-file"),
        "{}",
        t.summary
    );
    assert!(
        t.evidence.iter().any(|e| e
            .contains("certificate 1: subject CN=contoso.example; issuer CN=ews-probe test CA")),
        "{:#?}",
        t.evidence
    );
    assert_eq!(r.exit_code, 2);
    assert!(
        r.steps
            .iter()
            .any(|s| s.id == "net.contoso.example.tls" && s.outcome == Outcome::Fail)
    );
}

async fn tls_case(kind: Cert) -> Report {
    let w = World::with_certs(&[("contoso.example", kind)]).await;
    w.realm("realm_unknown.json").await;
    w.pox("contoso.example", autodiscover_xml("pox_settings.xml"))
        .await;
    let r = w.discover("j.smith@contoso.example", &[]).await;
    assert_eq!(
        w.count("contoso.example").await,
        0,
        "no request passes a failed handshake"
    );
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate_is_a_tls_failure_naming_its_end_date() {
    let r = tls_case(Cert::Expired).await;
    let t = &r.diagnoses[0];
    assert_eq!(t.code.as_str(), "tls_failure", "{:#?}", r.diagnoses);
    assert!(
        t.summary.contains("expired") && t.summary.contains("2025-01-01"),
        "{}",
        t.summary
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_name_certificate_is_a_tls_failure_naming_both_names() {
    let r = tls_case(Cert::WrongName).await;
    let t = &r.diagnoses[0];
    assert_eq!(t.code.as_str(), "tls_failure", "{:#?}", r.diagnoses);
    assert!(
        t.summary.contains("name mismatch")
            && t.summary
                .contains("www.fabrikam.example, not contoso.example"),
        "{}",
        t.summary
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn soap_get_user_settings_is_tried_after_pox() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    Mock::given(method("POST"))
        .and(path("/autodiscover/autodiscover.svc"))
        .and(wiremock::matchers::header(
            "soapaction",
            "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings",
        ))
        .respond_with(autodiscover_xml("soap_settings.xml"))
        .mount(w.host("autodiscover.contoso.example"))
        .await;
    let r = w.discover("j.smith@contoso.example", &[]).await;
    assert_eq!(
        r.endpoint.as_deref(),
        Some("https://mail.contoso.example/EWS/Exchange.asmx"),
        "{:?}",
        ids(&r)
    );
    // POX at both candidates first (404), then SOAP at the domain (404), then this one.
    let soap_steps: Vec<_> = r.steps.iter().filter(|s| s.id.ends_with(".soap")).collect();
    assert_eq!(soap_steps.len(), 2);
    let q = w
        .host("autodiscover.contoso.example")
        .received_requests()
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&q.last().unwrap().body).into_owned();
    assert!(
        body.contains("<a:Mailbox>j.smith@contoso.example</a:Mailbox>"),
        "{body}"
    );
    assert!(body.contains(
        "<wsa:To>https://autodiscover.contoso.example/autodiscover/autodiscover.svc</wsa:To>"
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_discovery_replays_to_the_same_report_without_the_secret() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    Mock::given(method("POST"))
        .and(path("/autodiscover/autodiscover.xml"))
        .and(wiremock::matchers::header_exists("authorization"))
        .respond_with(autodiscover_xml("pox_settings.xml"))
        .with_priority(1)
        .mount(w.host("autodiscover.contoso.example"))
        .await;
    w.pox(
        "autodiscover.contoso.example",
        ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"x\""),
    )
    .await;
    healthy(w.host("mail.contoso.example")).await;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("bundle");
    let rec_s = rec.display().to_string();
    let live = w
        .probe_basic("j.smith@contoso.example", &["--record", &rec_s])
        .await;
    assert_eq!(live.exit_code, 0, "{:#?}", live.diagnoses);
    let bundle = ews_probe::transport::bundle::Bundle::load(&rec).unwrap();
    let all: String = bundle
        .exchanges
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<String>()
        + &bundle.meta;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(format!("j.smith@contoso.example:{PASSWORD}"));
    assert!(!all.contains(PASSWORD) && !all.contains(&b64));
    assert!(
        bundle.meta.contains("\"autodiscover\": true"),
        "{}",
        bundle.meta
    );
    let (replayed, _) = ews_probe::app::run_bundle(&bundle).await.unwrap();
    assert_eq!(replayed.endpoint, live.endpoint);
    assert_eq!(replayed.exit_code, live.exit_code);
    // The network steps are live diagnostics: replay has no network to run them on.
    let not_net = |r: &Report| -> Vec<String> {
        ids(r)
            .into_iter()
            .filter(|i| !i.starts_with("net."))
            .collect()
    };
    assert_eq!(not_net(&replayed), not_net(&live));
    assert!(
        ids(&live)
            .iter()
            .any(|i| i.starts_with("net.mail.contoso.example.tls"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn srv_record_pointing_elsewhere_is_refused() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox("evil.example", autodiscover_xml("pox_settings.xml"))
        .await;
    w.srv.0.lock().unwrap().insert(
        "_autodiscover._tcp.contoso.example".into(),
        vec![SrvRecord {
            priority: 0,
            weight: 0,
            port: 443,
            target: "evil.example".into(),
        }],
    );
    let r = w.probe_basic("j.smith@contoso.example", &[]).await;
    assert_eq!(r.endpoint, None);
    let d = autodiscover_failed(&r);
    assert!(
        d.summary.contains("DNS SRV")
            && d.summary
                .contains("evil.example is outside contoso.example"),
        "{d:#?}"
    );
    assert_eq!(
        *w.srv.1.lock().unwrap(),
        ["_autodiscover._tcp.contoso.example"]
    );
    w.assert_no_leak(&[], &["evil.example"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn srv_record_in_the_domain_leads_to_pox() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox("mail.contoso.example", autodiscover_xml("pox_settings.xml"))
        .await;
    w.srv.0.lock().unwrap().insert(
        "_autodiscover._tcp.contoso.example".into(),
        vec![
            SrvRecord {
                priority: 10,
                weight: 0,
                port: 443,
                target: "evil.example".into(),
            },
            SrvRecord {
                priority: 0,
                weight: 5,
                port: 443,
                target: "mail.contoso.example".into(),
            },
        ],
    );
    let r = w.discover("j.smith@contoso.example", &[]).await;
    assert_eq!(
        r.endpoint.as_deref(),
        Some("https://mail.contoso.example/EWS/Exchange.asmx"),
        "{:?}",
        ids(&r)
    );
    let srv = r.steps.iter().find(|s| s.id.ends_with(".srv")).unwrap();
    assert!(
        srv.detail.contains("0 5 443 mail.contoso.example"),
        "{}",
        srv.detail
    );
    assert_eq!(w.count("evil.example").await, 0);
}

/// The binary itself: `ews-probe discover MAILBOX --connect-to … --ca-file …` prints the
/// discovery steps and the endpoint, exit 0.
#[tokio::test(flavor = "multi_thread")]
async fn the_discover_command_prints_the_step_tree_and_the_endpoint() {
    let w = World::new().await;
    w.realm("realm_managed.json").await;
    w.pox(
        "autodiscover.contoso.example",
        autodiscover_xml("pox_settings.xml"),
    )
    .await;
    // Realm discovery by name, pinned to the loopback server with curl-style --resolve.
    let port = w.realm.address().port();
    let mut args = vec!["discover".to_string(), "adele@contoso.example".to_string()];
    let mut it = w.args.iter().cloned();
    while let Some(a) = it.next() {
        if a == "--realm-url" {
            it.next();
            continue;
        }
        args.push(a);
    }
    args.extend([
        "--realm-url".to_string(),
        format!("http://login.contoso.example:{port}"),
        "--resolve".to_string(),
        format!("login.contoso.example:{port}:127.0.0.1"),
    ]);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("ews-probe"))
            .args(&args)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("endpoint  https://mail.contoso.example/EWS/Exchange.asmx"),
        "{text}"
    );
    assert!(
        text.contains("account   work_or_school (realm discovery: contoso.example is a managed"),
        "{text}"
    );
    for id in [
        "discover.realm",
        "autodiscover.01.v2",
        "autodiscover.02.pox",
        "autodiscover.03.pox",
        "net.mail.contoso.example.tls",
    ] {
        assert!(text.contains(id), "{id} missing:\n{text}");
    }
    assert!(w.received().await.iter().all(|(_, _, _, a)| a.is_none()));
    let realm = w.realm.received_requests().await.unwrap();
    assert_eq!(
        realm[0].headers.get("host").unwrap(),
        &format!("login.contoso.example:{port}")
    );
}

/// A proxy that wants credentials the probe does not have: every request (a CONNECT for
/// https) gets 407 with Negotiate/NTLM, as corporate proxies answer.
async fn proxy_407() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = c.read(&mut buf).await.unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = c
                    .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\nProxy-Authenticate: NTLM\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_407_is_reported_as_such() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    let (proxy, seen) = proxy_407().await;
    let r = w
        .probe_basic("j.smith@contoso.example", &["--proxy", &proxy])
        .await;
    assert_eq!(r.endpoint, None);
    let c = &r.diagnoses[0];
    assert_eq!(c.code.as_str(), "connection_failed", "{:#?}", r.diagnoses);
    assert!(c.summary.contains("HTTP 407"), "{}", c.summary);
    assert!(c.remedy.contains("NO_PROXY"), "{}", c.remedy);
    assert!(
        c.evidence
            .iter()
            .any(|e| e.contains("POX") && e.contains("proxy authorization required")),
        "{:#?}",
        c.evidence
    );
    assert_eq!(
        autodiscover_failed(&r).severity,
        ews_probe::diagnose::Status::Critical
    );
    assert!(
        !autodiscover_failed(&r).summary.contains("for url ("),
        "the step already names the URL"
    );
    // The proxy never saw a credential: no Authorization and no Proxy-Authorization.
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|q| q.starts_with("CONNECT contoso.example:")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|q| !q.to_ascii_lowercase().contains("authorization:")),
        "{seen:?}"
    );
    // And no target server was reached.
    w.assert_no_leak(
        &[],
        &[
            "contoso.example",
            "autodiscover.contoso.example",
            "outlook.office365.com",
        ],
    )
    .await;
}

/// The standard proxy variables: HTTPS_PROXY sends https through the proxy (407 here), and a
/// NO_PROXY entry takes a host around it.
#[tokio::test(flavor = "multi_thread")]
async fn https_proxy_and_no_proxy_variables_are_honoured() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    w.pox("contoso.example", autodiscover_xml("pox_settings.xml"))
        .await;
    let (proxy, seen) = proxy_407().await;
    let run = |no_proxy: &'static str| {
        let mut args = vec![
            "discover".to_string(),
            "j.smith@contoso.example".to_string(),
        ];
        args.extend(w.args.iter().cloned());
        let proxy = proxy.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("ews-probe"))
                .args(&args)
                .args(["--format", "json"])
                .env("HTTPS_PROXY", &proxy)
                .env("NO_PROXY", no_proxy)
                .env_remove("https_proxy")
                .env_remove("no_proxy")
                .env_remove("ALL_PROXY")
                .env_remove("all_proxy")
                .output()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        })
    };
    let through = run("").await.unwrap();
    assert_eq!(
        through["diagnoses"][0]["code"], "connection_failed",
        "{through:#}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|q| q.starts_with("CONNECT "))
    );
    let around = run("outlook.office365.com,contoso.example").await.unwrap();
    assert_eq!(
        around["endpoint"], "https://mail.contoso.example/EWS/Exchange.asmx",
        "{around:#}"
    );
}

/// A personal Microsoft account on a custom domain (no consumer domain to go by): realm
/// discovery says so before any credential is sent, and EWS's refusal is then the consumer
/// diagnosis.
#[tokio::test(flavor = "multi_thread")]
async fn a_personal_account_on_a_custom_domain_is_identified_by_realm_discovery() {
    let w = World::new().await;
    w.realm_with("realm_unknown.json", "credential_type_personal.json")
        .await;
    w.v2_answers_exo("jamie@fabrikam.example").await;
    on(
        w.host("outlook.office365.com"),
        CONNECTIVITY,
        http("consumer_403_empty.http"),
    )
    .await;
    let r = w
        .probe_bearer("jamie@fabrikam.example", "personal-token-value")
        .await;
    assert_eq!(r.account.kind, ews_probe::target::AccountKind::Consumer);
    assert_eq!(
        codes(&r)[0],
        "consumer_account_no_ews",
        "{:#?}",
        r.diagnoses
    );
    let ct = r
        .steps
        .iter()
        .position(|s| s.id == "discover.credential_type")
        .unwrap();
    let first_ews = r
        .steps
        .iter()
        .position(|s| s.kind == StepKind::Ews)
        .unwrap();
    assert!(ct < first_ews);
    // The GetCredentialType body names the address and nothing secret.
    let q = w.realm.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&q[1].body).into_owned();
    assert_eq!(
        body,
        r#"{"isOtherIdpSupported":true,"username":"jamie@fabrikam.example"}"#
    );
    assert!(q.iter().all(|x| x.headers.get("authorization").is_none()));
}

/// Answers the authenticated POX POST with the settings plus an echo of the credential it got
/// (in a header and in an XML comment), so any output path that forgot redaction would show it.
struct EchoPox;
impl wiremock::Respond for EchoPox {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let auth = req
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let body = fixture("autodiscover/pox_settings.xml").replace(
            "</Autodiscover>",
            &format!("<!-- you sent {auth} --></Autodiscover>"),
        );
        ResponseTemplate::new(200)
            .insert_header("x-echo-authorization", auth.as_str())
            .set_body_raw(body, "text/xml; charset=utf-8")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_any_output_of_a_discovering_probe() {
    use base64::Engine;
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    Mock::given(method("POST"))
        .and(path("/autodiscover/autodiscover.xml"))
        .and(wiremock::matchers::header_exists("authorization"))
        .respond_with(EchoPox)
        .with_priority(1)
        .mount(w.host("contoso.example"))
        .await;
    w.pox(
        "contoso.example",
        ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"x\""),
    )
    .await;
    healthy(w.host("mail.contoso.example")).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let mut pw = tempfile::NamedTempFile::new().unwrap();
    writeln!(pw, "{PASSWORD}").unwrap();
    let mut args: Vec<String> = [
        "probe",
        "j.smith@contoso.example",
        "--auth",
        "basic",
        "--password-file",
        pw.path().to_str().unwrap(),
        "-vv",
        "--format",
        "json",
        "--record",
        bundle.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(w.args.iter().cloned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("ews-probe"))
            .args(&args)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(format!("j.smith@contoso.example:{PASSWORD}"));
    let mut recorded = String::new();
    for e in std::fs::read_dir(&bundle).unwrap() {
        recorded.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap_or_default());
    }
    // The echo really happened (so the check below means something) …
    assert!(
        stderr.contains("x-echo-authorization: Basic [redacted]")
            || stderr.contains("x-echo-authorization: [redacted]"),
        "{stderr}"
    );
    // … and no output holds the password or its Basic form.
    for (what, text) in [
        ("stdout", &stdout),
        ("stderr", &stderr),
        ("bundle", &recorded),
    ] {
        assert!(!text.contains(PASSWORD), "{what} leaks the password");
        assert!(!text.contains(&b64), "{what} leaks the Basic credential");
    }
}

/// After an authenticated answer redirects, the next host is asked without credentials again
/// (they are never carried along a redirect), and a foreign host further down gets nothing.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_never_follow_a_redirect() {
    let w = World::new().await;
    w.realm("realm_unknown.json").await;
    Mock::given(method("POST"))
        .and(path("/autodiscover/autodiscover.xml"))
        .and(wiremock::matchers::header_exists("authorization"))
        .respond_with(redirect(
            "https://autodiscover.contoso.example/autodiscover/autodiscover.xml",
        ))
        .with_priority(1)
        .mount(w.host("contoso.example"))
        .await;
    w.pox(
        "contoso.example",
        ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"x\""),
    )
    .await;
    w.pox(
        "autodiscover.contoso.example",
        redirect("https://evil.example/autodiscover/autodiscover.xml"),
    )
    .await;
    w.pox("evil.example", autodiscover_xml("pox_settings.xml"))
        .await;
    let r = w.probe_basic("j.smith@contoso.example", &[]).await;
    assert_eq!(r.endpoint, None);
    let first = &w
        .host("autodiscover.contoso.example")
        .received_requests()
        .await
        .unwrap()[0];
    assert!(
        first.headers.get("authorization").is_none(),
        "a redirect must not carry the credential"
    );
    assert_eq!(w.count("evil.example").await, 0);
    w.assert_no_leak(&["contoso.example"], &["evil.example"])
        .await;
}

/// With `--ews-url` too, a TLS failure of the EWS request gets the diagnostic handshake: the
/// chain and the hint are in `tls_failure`, and no EWS request got through.
#[tokio::test(flavor = "multi_thread")]
async fn an_ews_url_with_an_unknown_ca_shows_the_chain() {
    let w = World::new().await;
    healthy(w.host("mail.contoso.example")).await;
    // The routes, without --ca-file (the test CA is unknown here) and without --realm-url
    // (with --ews-url, realm discovery runs only when asked).
    let mut routes: Vec<String> = w.args.iter().skip(2).cloned().collect();
    let i = routes.iter().position(|a| a == "--realm-url").unwrap();
    routes.drain(i..i + 2);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "{PASSWORD}").unwrap();
    let pw = f.path().display().to_string();
    let mut args: Vec<&str> = vec![
        "j.smith@contoso.example",
        "--ews-url",
        "https://mail.contoso.example/EWS/Exchange.asmx",
        "--auth",
        "basic",
        "--password-file",
        &pw,
    ];
    args.extend(routes.iter().map(String::as_str));
    let r = w.probe(&args).await;
    assert_eq!(codes(&r)[0], "tls_failure", "{:#?}", r.diagnoses);
    let t = &r.diagnoses[0];
    assert!(t.summary.contains("unknown issuer"), "{}", t.summary);
    assert!(
        t.evidence
            .iter()
            .any(|e| e.contains("certificate 1: subject CN=mail.contoso.example")),
        "{:#?}",
        t.evidence
    );
    assert!(
        t.evidence
            .iter()
            .any(|e| e.starts_with("ews.get_folder.msgfolderroot")),
        "the EWS step is evidence too: {:#?}",
        t.evidence
    );
    assert_eq!(r.exit_code, 2);
    // No discovery ran (the URL was given), only the handshake steps before the EWS tree.
    assert_eq!(r.steps[0].id, "net.mail.contoso.example.dns");
    assert!(w.realm.received_requests().await.unwrap().is_empty());
    assert_eq!(w.count("mail.contoso.example").await, 0);
}
