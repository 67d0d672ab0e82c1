//! Finding the endpoint safely: realm discovery (who the account is) and Autodiscover (where
//! its EWS is), each request a [`Step`] of evidence, under the trust policy of [`trust`].
//!
//! Order (Microsoft's documented order, research/ews-protocol.md §4.1, with the unauthenticated
//! v2 JSON endpoint of Exchange Online first, research/security.md §1.5):
//! realm discovery → v2 JSON → POX at `https://<domain>` then `https://autodiscover.<domain>`
//! → SOAP `GetUserSettings` at the same two → the unauthenticated plain-HTTP GET to
//! `http://autodiscover.<domain>` whose 302 may name a POX URL. The first good answer wins.
//!
//! The rules (research/security.md §1.4): redirects are followed by hand, never by the HTTP
//! client; every target must be https (the one plain GET excepted) and a trusted host; at most
//! 10 hops (URL, address and 3xx redirects together); a URL or address seen twice is a loop;
//! a POST stays a POST. Every first request is unauthenticated; credentials go only after a
//! `401` challenge that offers their scheme, only to a trusted host, never Basic to a Microsoft
//! host. `discover` has no credentials at all. Nothing is asked interactively: an untrusted
//! host is refused with a message naming it and `--trust-host`.
//!
//! Then the DNS SRV record `_autodiscover._tcp.<domain>` ([`srv`]), whose target must pass the
//! same trust policy. The endpoint found gets DNS/TCP/TLS steps ([`network`]), and so does any
//! host whose TLS handshake failed.

pub mod answer;
pub mod network;
pub mod srv;
pub mod trust;

use crate::auth::Credentials;
use crate::evidence::{Failure, HttpFacts, Step, StepKind};
use crate::target::Mailbox;
use crate::transport::{
    FailureKind, Header, HttpRequest, HttpResponse, Method, Transport, TransportError,
};
use answer::{Answer, Realm};
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;
use trust::TrustPolicy;

/// Microsoft's documented hop limit (redirecturl-pox.md; Managed API and exchangelib agree).
pub const MAX_HOPS: u32 = 10;
/// Where the unauthenticated v2 JSON endpoint lives (Exchange Online).
pub const DEFAULT_V2_URL: &str = "https://outlook.office365.com";
/// Where realm discovery lives.
pub const DEFAULT_REALM_URL: &str = "https://login.microsoftonline.com";

/// What one discovery run needs.
pub struct DiscoverConfig<'a> {
    pub mailbox: &'a Mailbox,
    /// `Credentials::None` for `discover`: then nothing secret can be sent.
    pub credentials: &'a Credentials,
    pub trust: TrustPolicy,
    /// Base of the v2 JSON endpoint (`--autodiscover-v2-url`).
    pub v2_url: url::Url,
    /// Base of realm discovery (`--realm-url`); `None` skips it.
    pub realm_url: Option<url::Url>,
    /// Run Autodiscover (false: realm discovery only, the endpoint came with --ews-url).
    pub autodiscover: bool,
    /// The DNS SRV lookup; `None` skips that method (replay: no DNS to ask).
    pub srv: Option<std::sync::Arc<dyn srv::SrvLookup>>,
    /// DNS/TCP/TLS steps for the endpoint found and for hosts whose TLS failed; `None` skips
    /// them (through a proxy, and on replay, where no network exists).
    pub network: Option<network::NetOptions>,
}

/// One Autodiscover method's outcome, for `autodiscover_failed` and the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MethodResult {
    pub method: String,
    pub url: String,
    pub ok: bool,
    pub why: String,
}

/// The facts of discovery, beside its steps.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Discovery {
    pub realm: Option<Realm>,
    /// Why realm discovery gave no answer, when it did not.
    pub realm_error: Option<String>,
    /// `GetCredentialType`'s `IfExistsResult` for the address.
    pub credential_type: Option<i64>,
    /// Why `GetCredentialType` gave no answer, when it did not.
    pub credential_type_error: Option<String>,
    /// Whether Autodiscover ran.
    pub autodiscover: bool,
    /// The EWS URL found.
    pub endpoint: Option<String>,
    /// The method that found it.
    pub found_by: Option<String>,
    pub methods: Vec<MethodResult>,
    /// Hosts refused by the trust policy, each with the reason.
    pub refused: Vec<String>,
    /// Some candidate wanted credentials that were not sent (none given, or not allowed there).
    pub wanted_credentials: bool,
    /// The network steps' facts, one per host checked.
    pub network: Vec<network::HostNetwork>,
}

/// An Autodiscover answer after the common handling of [`Walk::reply`].
enum Reply<'a> {
    Answer(&'a HttpResponse),
    Redirect(url::Url),
}

enum Next {
    Found(String),
    Address(String),
    Failed(String),
    /// Stop every method (hop limit).
    Stop(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pox,
    Soap,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Pox => "pox",
            Kind::Soap => "soap",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Pox => "POX (autodiscover.xml)",
            Kind::Soap => "SOAP GetUserSettings (autodiscover.svc)",
        }
    }
    fn file(self) -> &'static str {
        match self {
            Kind::Pox => "autodiscover.xml",
            Kind::Soap => "autodiscover.svc",
        }
    }
}

struct Walk<'a> {
    cfg: &'a DiscoverConfig<'a>,
    t: &'a Transport,
    steps: Vec<Step>,
    d: Discovery,
    seq: u32,
    hops: u32,
    seen_urls: HashSet<String>,
    seen_addrs: HashSet<String>,
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
        sensitive: false,
    }
}

/// A transport error without reqwest's `for url (…)` part: the URL is already in the step.
/// A realm-discovery answer: `parse`d when HTTP 200, else why not, as (the error kept in the
/// discovery facts, the step's note: the parse error itself; nothing for a status or a
/// transport failure, which the step shows already).
fn judge<T>(
    out: &Result<HttpResponse, TransportError>,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, (String, String)> {
    match out {
        Ok(r) if r.status == 200 => parse(&r.body).map_err(|e| (e.clone(), e)),
        Ok(r) => Err((format!("HTTP {}", r.status), String::new())),
        Err(e) => Err((tidy(e), String::new())),
    }
}

fn tidy(e: &TransportError) -> String {
    let mut m = e.to_string();
    while let Some(i) = m.find(" for url (") {
        let rest = &m[i + 10..];
        let mut depth = 1usize;
        let mut end = None;
        for (j, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + 10 + j + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        match end {
            Some(e) => m.replace_range(i..e, ""),
            None => break,
        }
    }
    m
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

impl<'a> Walk<'a> {
    fn next_id(&mut self, label: &str) -> String {
        self.seq += 1;
        format!("autodiscover.{:02}.{label}", self.seq)
    }

    /// Sends one request and records it as a step; `verdict` turns the response into the
    /// step's outcome and detail suffix.
    async fn send(
        &mut self,
        id: &str,
        method: Method,
        url: &url::Url,
        headers: Vec<Header>,
        body: Option<String>,
    ) -> Result<HttpResponse, TransportError> {
        let req = HttpRequest {
            key: id.to_string(),
            method,
            url: url.clone(),
            headers,
            body,
            retryable: false,
        };
        self.t.send(&req).await
    }

    /// What every Autodiscover request does first with its outcome: a transport failure is
    /// recorded (a TLS one also gets the diagnostic handshake) and ends this method; a 3xx is
    /// recorded and, within the hop limit, handed back as the URL to follow (the caller applies
    /// its own URL rules); anything else is the answer for the caller to read.
    async fn reply<'o>(
        &mut self,
        id: &str,
        line: &str,
        out: &'o Result<HttpResponse, TransportError>,
        u: &url::Url,
    ) -> Result<Reply<'o>, Next> {
        let r = match out {
            Err(e) => {
                let why = tidy(e);
                self.record(id.to_string(), line.to_string(), out, false, "");
                if e.kind == FailureKind::Tls {
                    self.net(u).await;
                }
                return Err(Next::Failed(why));
            }
            Ok(r) => r,
        };
        if !(300..400).contains(&r.status) {
            return Ok(Reply::Answer(r));
        }
        let loc = r.header("location").map(str::to_string);
        self.record(
            id.to_string(),
            line.to_string(),
            out,
            true,
            &format!("redirect to {}", loc.as_deref().unwrap_or("(no Location)")),
        );
        let Some(next) = loc.and_then(|l| u.join(&l).ok()) else {
            return Err(Next::Failed(format!(
                "HTTP {} without a usable Location",
                r.status
            )));
        };
        self.hop().map_err(Next::Stop)?;
        Ok(Reply::Redirect(next))
    }

    fn record(
        &mut self,
        id: String,
        line: String,
        outcome: &Result<HttpResponse, TransportError>,
        pass: bool,
        note: &str,
    ) {
        let r = self.t.redactor();
        let (http, failure, elapsed, detail) = match outcome {
            Ok(resp) => {
                let h = HttpFacts::from_response(resp);
                let d = format!("{line}: HTTP {} {}", h.status, h.reason);
                (Some(h), None, resp.elapsed, d)
            }
            Err(e) => {
                let mut f = Failure::from(e);
                f.message = r.text(&f.message);
                (
                    None,
                    Some(f),
                    e.elapsed,
                    format!("{line}: {}", r.text(&tidy(e))),
                )
            }
        };
        let detail = if note.is_empty() {
            detail
        } else {
            format!("{detail}, {note}")
        };
        let mut step = Step::ran(
            id,
            StepKind::Autodiscover,
            pass,
            crate::util::millis(elapsed),
            r.text(&detail),
        );
        step.http = http;
        step.failure = failure;
        self.steps.push(step);
    }

    /// A request the policy refused: a step that was never sent.
    fn refuse(&mut self, label: &str, url: &str, why: &str) -> Next {
        let id = self.next_id(label);
        let msg = format!("{url}: refused, not sent: {why}");
        self.d.refused.push(why.to_string());
        let mut step = Step::ran(id, StepKind::Autodiscover, false, 0.0, msg);
        step.failure = Some(Failure {
            kind: FailureKind::Refused,
            message: why.to_string(),
        });
        self.steps.push(step);
        Next::Failed(format!("refused {url}: {why}"))
    }

    /// The policy for a URL that would receive an Autodiscover request: https, a trusted host.
    fn url_allowed(&self, u: &url::Url) -> Result<(), String> {
        if u.scheme() != "https" {
            return Err(format!(
                "{} is not https: Autodiscover requests and credentials travel over https only",
                u.scheme()
            ));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("the URL carries credentials".into());
        }
        let host = u.host_str().unwrap_or("");
        self.cfg
            .trust
            .check(host)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn hop(&mut self) -> Result<(), String> {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            Err(format!(
                "more than {MAX_HOPS} redirects: stopped (Microsoft's limit)"
            ))
        } else {
            Ok(())
        }
    }

    /// Authorization for a retry after a 401, if this host may have it.
    fn credentials_for(&mut self, u: &url::Url, resp: &HttpResponse) -> Option<Header> {
        let auth = match self.cfg.credentials {
            // A replay has the recorded scheme but no secret: the same decision, a masked
            // header (the replay back end answers by step id, not by header).
            Credentials::Replayed(m) if *m != crate::auth::AuthMode::None => Header {
                name: "Authorization".into(),
                value: format!(
                    "{} {}",
                    match *m {
                        crate::auth::AuthMode::Basic => "Basic",
                        crate::auth::AuthMode::Ntlm => "NTLM",
                        _ => "Bearer",
                    },
                    crate::transport::redact::MASK
                ),
                sensitive: true,
            },
            c => c.authorization()?,
        };
        let host = u.host_str().unwrap_or("");
        let trusted = self.cfg.trust.check(host).ok()?;
        let scheme = auth.value.split(' ').next().unwrap_or("").to_string();
        let offered = crate::diagnose::offered_schemes(&resp.header_all("www-authenticate")?);
        if !offered.iter().any(|s| s.eq_ignore_ascii_case(&scheme)) {
            return None;
        }
        // AD-7: Basic is retired at Microsoft; never hand a password to its hosts.
        if scheme.eq_ignore_ascii_case("basic")
            && (trusted == trust::Trusted::Microsoft
                || crate::target::is_consumer_domain(self.cfg.trust.domain()))
        {
            return None;
        }
        Some(auth)
    }

    /// DNS, TCP and TLS steps for `u`'s host (once per host; live runs only).
    async fn net(&mut self, u: &url::Url) {
        let (Some(opts), Some(host), Some(port)) = (
            self.cfg.network.clone(),
            u.host_str().map(str::to_string),
            u.port_or_known_default(),
        ) else {
            return;
        };
        if u.scheme() != "https"
            || self.t.is_replay()
            || self
                .d
                .network
                .iter()
                .any(|n| n.host == host && n.port == port)
        {
            return;
        }
        let n = network::check(&opts, &host, port).await;
        self.steps.extend(network::steps(&n));
        self.d.network.push(n);
    }

    /// The realm discovery step.
    async fn realm(&mut self, base: &url::Url) {
        let mut u = base.clone();
        u.set_path("/getuserrealm.srf");
        u.query_pairs_mut()
            .clear()
            .append_pair("login", self.cfg.mailbox.address())
            .append_pair("json", "1");
        let id = "discover.realm".to_string();
        let line = format!("GET {u}");
        let out = self
            .send(
                &id,
                Method::Get,
                &u,
                vec![header("Accept", "application/json")],
                None,
            )
            .await;
        let (pass, note) = match judge(&out, answer::parse_realm) {
            Ok(realm) => {
                let note = format!("NameSpaceType {:?}", realm.namespace);
                self.d.realm = Some(realm);
                (true, note)
            }
            Err((error, note)) => {
                self.d.realm_error = Some(error);
                (false, note)
            }
        };
        self.record(id, line, &out, pass, &note);

        // GetCredentialType: whether the address itself is a work or a personal account.
        let mut u = base.clone();
        u.set_path("/common/GetCredentialType");
        u.set_query(None);
        let id = "discover.credential_type".to_string();
        let line = format!("POST {u}");
        let out = self
            .send(
                &id,
                Method::Post,
                &u,
                vec![
                    header("Content-Type", "application/json; charset=utf-8"),
                    header("Accept", "application/json"),
                ],
                Some(answer::credential_type_request(self.cfg.mailbox.address())),
            )
            .await;
        let (pass, note) = match judge(&out, answer::parse_credential_type) {
            Ok(n) => {
                self.d.credential_type = Some(n);
                (true, format!("IfExistsResult {n}"))
            }
            Err((error, note)) => {
                self.d.credential_type_error = Some(error);
                (false, note)
            }
        };
        self.record(id, line, &out, pass, &note);
    }

    /// Checks a URL Autodiscover named as the EWS endpoint.
    fn endpoint(&mut self, raw: &str, method: &str) -> Next {
        match url::Url::parse(raw) {
            Err(e) => Next::Failed(format!("the EWS URL '{raw}' is not a URL: {e}")),
            Ok(u) => match self.url_allowed(&u) {
                Ok(()) => {
                    self.d.found_by = Some(method.to_string());
                    Next::Found(u.to_string())
                }
                Err(why) => {
                    self.d.refused.push(why.clone());
                    Next::Failed(format!("EWS URL {u} refused: {why}"))
                }
            },
        }
    }

    /// DNS SRV `_autodiscover._tcp.<domain>`: the best https record names a host for POX.
    async fn srv(&mut self, address: &str, domain: &str) -> Next {
        let Some(lookup) = self.cfg.srv.clone() else {
            return Next::Failed("no SRV resolver".into());
        };
        let name = format!("_autodiscover._tcp.{domain}");
        let id = self.next_id("srv");
        let started = std::time::Instant::now();
        let answer = lookup.lookup(&name).await;
        let ms = crate::util::millis(started.elapsed());
        let (ok, detail, next) = match answer {
            Err(e) => (false, format!("SRV {name}: {e}"), Err(e)),
            Ok(recs) => {
                let shown: Vec<String> = recs
                    .iter()
                    .map(|r| format!("{} {} {} {}", r.priority, r.weight, r.port, r.target))
                    .collect();
                let best = srv::best(&recs);
                let detail = format!(
                    "SRV {name}: {}",
                    if shown.is_empty() {
                        "no records".to_string()
                    } else {
                        shown.join("; ")
                    }
                );
                match best.first() {
                    Some(b) => (true, detail, Ok(b.target.clone())),
                    None => (
                        false,
                        detail,
                        Err("no SRV record points to an https endpoint (port 443)".to_string()),
                    ),
                }
            }
        };
        self.steps
            .push(Step::ran(id, StepKind::Autodiscover, ok, ms, detail));
        match next {
            Err(e) => Next::Failed(e),
            Ok(target) => {
                let raw = format!("https://{target}/autodiscover/autodiscover.xml");
                match url::Url::parse(&raw) {
                    Ok(u) => self.post_chain(Kind::Pox, address, u).await,
                    Err(e) => Next::Failed(format!("SRV target {target}: {e}")),
                }
            }
        }
    }

    /// Autodiscover v2: GET `<base>/autodiscover/autodiscover.json/v1.0/<address>?Protocol=EWS`,
    /// following 3xx by hand.
    async fn v2(&mut self, address: &str) -> Next {
        let mut u = self.cfg.v2_url.clone();
        u.set_path("/autodiscover/autodiscover.json/v1.0");
        // One path segment, whatever the local part holds ('/', '?', '#' are legal there).
        if let Ok(mut seg) = u.path_segments_mut() {
            seg.push(address);
        }
        u.query_pairs_mut().clear().append_pair("Protocol", "EWS");
        let method = "Autodiscover v2 (JSON)";
        loop {
            let id = self.next_id("v2");
            if !self.seen_urls.insert(u.to_string()) {
                return Next::Failed(format!("redirect loop: {u} was already tried"));
            }
            let line = format!("GET {u}");
            let out = self
                .send(
                    &id,
                    Method::Get,
                    &u,
                    vec![header("Accept", "application/json")],
                    None,
                )
                .await;
            let r = match self.reply(&id, &line, &out, &u).await {
                Err(stop) => return stop,
                Ok(Reply::Redirect(next)) => {
                    if let Err(why) = self.url_allowed(&next) {
                        return self.refuse("v2", next.as_str(), &why);
                    }
                    u = next;
                    continue;
                }
                Ok(Reply::Answer(r)) => r,
            };
            if r.status == 200 {
                let a = answer::parse_v2(&r.body);
                let (pass, note) = match &a {
                    Answer::Endpoint(e) => (true, format!("EWS URL {e}")),
                    Answer::Error(e) => (false, e.clone()),
                    _ => (false, "unexpected answer".to_string()),
                };
                self.record(id, line, &out, pass, &note);
                return match a {
                    Answer::Endpoint(e) => self.endpoint(&e, method),
                    Answer::Error(e) => Next::Failed(e),
                    _ => Next::Failed("unexpected answer".into()),
                };
            }
            let why = format!("HTTP {} {}", r.status, r.reason);
            self.record(id, line, &out, false, "");
            return Next::Failed(why);
        }
    }

    /// POX or SOAP at one candidate URL, following redirects by hand.
    async fn post_chain(&mut self, kind: Kind, address: &str, start: url::Url) -> Next {
        let mut u = start;
        loop {
            if let Err(why) = self.url_allowed(&u) {
                return self.refuse(kind.label(), u.as_str(), &why);
            }
            if !self.seen_urls.insert(format!("{}|{address}", u)) {
                return Next::Failed(format!(
                    "redirect loop: {u} was already tried for {address}"
                ));
            }
            let body = match kind {
                Kind::Pox => answer::pox_request(address),
                Kind::Soap => answer::soap_request(address, u.as_str()),
            };
            let mut headers = vec![header("Content-Type", "text/xml; charset=utf-8")];
            if kind == Kind::Soap {
                headers.push(header(
                    "SOAPAction",
                    "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings",
                ));
            }
            let id = self.next_id(kind.label());
            let line = format!("POST {u}");
            let mut out = self
                .send(&id, Method::Post, &u, headers.clone(), Some(body.clone()))
                .await;
            let mut id = id;
            let mut line = line;
            if let Ok(r) = &out
                && r.status == 401
            {
                match self.credentials_for(&u, r) {
                    Some(auth) => {
                        self.record(
                            id,
                            line,
                            &out,
                            true,
                            "challenge; answering with credentials (trusted host)",
                        );
                        id = self.next_id(&format!("{}_auth", kind.label()));
                        line = format!("POST {u} (authenticated)");
                        let mut h = headers.clone();
                        h.push(auth);
                        out = self
                            .send(&id, Method::Post, &u, h, Some(body.clone()))
                            .await;
                    }
                    None => {
                        self.d.wanted_credentials = true;
                        let why = if matches!(self.cfg.credentials, Credentials::None) {
                            "requires authentication; no credentials given (discover never sends any)"
                        } else {
                            "requires authentication; credentials not sent (scheme not offered, or not allowed to this host)"
                        };
                        self.record(id, line, &out, false, why);
                        return Next::Failed(format!("HTTP 401: {why}"));
                    }
                }
            }
            let r = match self.reply(&id, &line, &out, &u).await {
                Err(stop) => return stop,
                Ok(Reply::Redirect(next)) => {
                    if !next.path().to_ascii_lowercase().ends_with(kind.file()) {
                        return self.refuse(
                            kind.label(),
                            next.as_str(),
                            &format!("not an Autodiscover URL (path must end in {})", kind.file()),
                        );
                    }
                    u = next;
                    continue;
                }
                Ok(Reply::Answer(r)) => r,
            };
            if r.status == 200 {
                let a = match kind {
                    Kind::Pox => answer::parse_pox(&r.body),
                    Kind::Soap => answer::parse_soap(&r.body),
                };
                let note = match &a {
                    Answer::Endpoint(e) => format!("EWS URL {e}"),
                    Answer::RedirectUrl(x) => format!("redirectUrl {x}"),
                    Answer::RedirectAddr(x) => format!("redirectAddr {x}"),
                    Answer::Error(e) => e.clone(),
                };
                self.record(id, line, &out, !matches!(a, Answer::Error(_)), &note);
                match a {
                    Answer::Endpoint(e) => return self.endpoint(&e, kind.name()),
                    Answer::Error(e) => return Next::Failed(e),
                    Answer::RedirectAddr(x) => {
                        if x.eq_ignore_ascii_case(address) {
                            return Next::Failed(format!(
                                "redirectAddr to the same address {x}: treated as invalid"
                            ));
                        }
                        return Next::Address(x);
                    }
                    Answer::RedirectUrl(x) => {
                        if let Err(why) = self.hop() {
                            return Next::Stop(why);
                        }
                        match url::Url::parse(&x) {
                            Ok(next) => u = next,
                            Err(e) => {
                                return Next::Failed(format!(
                                    "redirectUrl '{x}' is not a URL: {e}"
                                ));
                            }
                        }
                    }
                }
                // Only a redirectUrl gets here: follow it.
                continue;
            }
            let why = format!("HTTP {} {}", r.status, r.reason);
            self.record(id, line, &out, false, "");
            return Next::Failed(why);
        }
    }

    /// The unauthenticated plain-HTTP GET to `http://autodiscover.<domain>/…`; only a 302 to
    /// an https, trusted, Autodiscover-shaped URL is used, for a POX request.
    async fn http_redirect(&mut self, address: &str, domain: &str) -> Next {
        let host = format!("autodiscover.{domain}");
        let raw = format!("http://{host}/autodiscover/autodiscover.xml");
        if let Err(e) = self.cfg.trust.check(&host) {
            return self.refuse("http_redirect", &raw, &e.to_string());
        }
        let Ok(u) = url::Url::parse(&raw) else {
            return Next::Failed(format!("{raw} is not a URL"));
        };
        let id = self.next_id("http_redirect");
        let line = format!("GET {u} (plain http, no credentials)");
        let out = self.send(&id, Method::Get, &u, vec![], None).await;
        match &out {
            Ok(r) if (301..=308).contains(&r.status) => {
                let loc = r.header("location").map(str::to_string);
                self.record(
                    id,
                    line,
                    &out,
                    true,
                    &format!("redirect to {}", loc.as_deref().unwrap_or("(no Location)")),
                );
                let Some(next) = loc.and_then(|l| u.join(&l).ok()) else {
                    return Next::Failed("redirect without a usable Location".into());
                };
                if let Err(why) = self.hop() {
                    return Next::Stop(why);
                }
                if !next
                    .path()
                    .to_ascii_lowercase()
                    .ends_with("autodiscover.xml")
                {
                    return self.refuse(
                        "pox",
                        next.as_str(),
                        "not an Autodiscover URL (path must end in autodiscover.xml)",
                    );
                }
                self.post_chain(Kind::Pox, address, next).await
            }
            Ok(r) => {
                let why = format!(
                    "HTTP {} {} (only a redirect is useful here)",
                    r.status, r.reason
                );
                self.record(id, line, &out, false, "no redirect");
                Next::Failed(why)
            }
            Err(e) => {
                let why = tidy(e);
                self.record(id, line, &out, false, "");
                Next::Failed(why)
            }
        }
    }

    async fn autodiscover(&mut self) {
        self.d.autodiscover = true;
        let mut address = self.cfg.mailbox.address().to_string();
        self.seen_addrs.insert(address.to_ascii_lowercase());
        'address: loop {
            let domain = domain_of(&address);
            let base = |h: &str, k: Kind| format!("https://{h}/autodiscover/{}", k.file());
            let ad_host = format!("autodiscover.{domain}");
            let mut tries: Vec<(String, String)> = vec![(
                "Autodiscover v2 (JSON)".into(),
                format!("{}autodiscover/autodiscover.json", self.cfg.v2_url),
            )];
            for k in [Kind::Pox, Kind::Soap] {
                for h in [domain.as_str(), ad_host.as_str()] {
                    tries.push((k.name().into(), base(h, k)));
                }
            }
            tries.push((
                "HTTP redirect (GET http://autodiscover.<domain>)".into(),
                format!("http://{ad_host}/autodiscover/autodiscover.xml"),
            ));
            if self.cfg.srv.is_some() {
                tries.push(("DNS SRV".into(), format!("_autodiscover._tcp.{domain}")));
            }
            for (i, (method, url)) in tries.into_iter().enumerate() {
                let next = match i {
                    0 => self.v2(&address).await,
                    1..=4 => {
                        let k = if i <= 2 { Kind::Pox } else { Kind::Soap };
                        match url::Url::parse(&url) {
                            Ok(u) => self.post_chain(k, &address, u).await,
                            Err(e) => Next::Failed(format!("{url}: {e}")),
                        }
                    }
                    5 => self.http_redirect(&address, &domain).await,
                    _ => self.srv(&address, &domain).await,
                };
                match next {
                    Next::Found(e) => {
                        if let Ok(u) = url::Url::parse(&e) {
                            self.net(&u).await;
                        }
                        self.d.methods.push(MethodResult {
                            method,
                            url,
                            ok: true,
                            why: format!("EWS URL {e}"),
                        });
                        self.d.endpoint = Some(e);
                        return;
                    }
                    Next::Failed(why) => {
                        self.d.methods.push(MethodResult {
                            method,
                            url,
                            ok: false,
                            why,
                        });
                    }
                    Next::Stop(why) => {
                        self.d.methods.push(MethodResult {
                            method,
                            url,
                            ok: false,
                            why,
                        });
                        return;
                    }
                    Next::Address(a) => {
                        let why = format!("redirected to address {a}");
                        self.d.methods.push(MethodResult {
                            method,
                            url,
                            ok: false,
                            why,
                        });
                        if let Err(why) = self.hop() {
                            self.d.methods.push(MethodResult {
                                method: "address redirect".into(),
                                url: a,
                                ok: false,
                                why,
                            });
                            return;
                        }
                        if !self.seen_addrs.insert(a.to_ascii_lowercase()) {
                            self.d.methods.push(MethodResult {
                                method: "address redirect".into(),
                                url: a,
                                ok: false,
                                why: "address redirect loop".into(),
                            });
                            return;
                        }
                        if crate::target::Mailbox::parse(&a).is_err() {
                            self.d.methods.push(MethodResult {
                                method: "address redirect".into(),
                                url: a,
                                ok: false,
                                why: "not a mailbox address".into(),
                            });
                            return;
                        }
                        address = a;
                        continue 'address;
                    }
                }
            }
            return;
        }
    }
}

/// Runs realm discovery and, when asked, Autodiscover. Never fails: every problem is a step.
pub async fn run(cfg: &DiscoverConfig<'_>, t: &Transport) -> (Vec<Step>, Discovery) {
    let mut w = Walk {
        cfg,
        t,
        steps: Vec::new(),
        d: Discovery::default(),
        seq: 0,
        hops: 0,
        seen_urls: HashSet::new(),
        seen_addrs: HashSet::new(),
    };
    if let Some(base) = &cfg.realm_url {
        w.realm(base).await;
    }
    if cfg.autodiscover {
        w.autodiscover().await;
    }
    (w.steps, w.d)
}

/// Total time of the discovery steps (they run one after the other).
pub fn duration(steps: &[Step]) -> Duration {
    Duration::from_secs_f64(steps.iter().map(|s| s.duration_ms).sum::<f64>() / 1000.0)
}
