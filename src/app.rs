//! The commands: each turns parsed flags into a pipeline run (target → endpoint → auth →
//! checks → evidence → diagnosis → report) and returns the report. `probe` runs it live over
//! HTTP; `replay` and `demo` run the very same pipeline over a recorded bundle.

use crate::auth::secret::{SecretError, SecretSource};
use crate::auth::{AuthMode, Credentials};
use crate::cli::{DemoArgs, DiscoverArgs, DiscoveryArgs, ProbeArgs, ReplayArgs};
use crate::diagnose;
use crate::discover::{self, DiscoverConfig, trust::TrustPolicy};
use crate::evidence::Evidence;
use crate::ews::RequestContext;
use crate::probe::{self, ProbeConfig};
use crate::report::Report;
use crate::session::{self, Expectation, SessionMeta};
use crate::target::Mailbox;
use crate::transport::Transport;
use crate::transport::bundle::Bundle;
use crate::transport::http::{HttpClient, HttpOptions};
use crate::transport::redact::Redactor;
use crate::transport::replay::Replay;
use std::sync::Arc;
use std::time::Duration;

/// Anything that stops the probe from running at all (exit 3, UNKNOWN).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Address(#[from] crate::target::AddressError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Client(#[from] crate::transport::http::ClientError),
    #[error(transparent)]
    Bundle(#[from] crate::transport::bundle::BundleError),
    #[error(transparent)]
    Replay(#[from] crate::transport::replay::ReplayError),
    #[error(transparent)]
    Session(#[from] session::SessionError),
    #[error(transparent)]
    OAuth(#[from] crate::auth::oauth::ConfigError),
    #[error(transparent)]
    Cert(#[from] crate::auth::jwt::CertError),
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
}

/// The HTTP client's options from the network flags every command shares.
pub(crate) fn http_options(net: &crate::cli::NetworkArgs) -> HttpOptions {
    HttpOptions {
        pins: net.resolve.clone(),
        ca_file: net.ca_file.clone(),
        proxy: net.proxy.clone(),
        connect_timeout: Duration::from_secs_f64(net.timeout.min(10.0)),
        read_timeout: Duration::from_secs_f64(net.timeout.min(20.0)),
        ..HttpOptions::default()
    }
}

/// Checks the EWS URL: https, or http to a loopback address only.
pub(crate) fn endpoint(
    raw: &str,
    pins: &[crate::transport::resolve::Pin],
) -> Result<url::Url, AppError> {
    let u = url::Url::parse(raw)
        .map_err(|e| AppError::Usage(format!("--ews-url '{raw}' is not a URL: {e}")))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(AppError::Usage(
            "--ews-url must not carry credentials; use --user and --password-env/--password-file"
                .into(),
        ));
    }
    match u.scheme() {
        "https" => Ok(u),
        "http" => {
            let loopback = match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => {
                    d.eq_ignore_ascii_case("localhost")
                        || pins
                            .iter()
                            .any(|p| p.host.eq_ignore_ascii_case(d) && p.addr.is_loopback())
                }
                None => false,
            };
            if loopback {
                Ok(u)
            } else {
                Err(AppError::Usage(format!(
                    "--ews-url {raw}: plain http is allowed to loopback addresses only; use https"
                )))
            }
        }
        other => Err(AppError::Usage(format!(
            "--ews-url {raw}: scheme '{other}' is not http(s)"
        ))),
    }
}

fn password_source(a: &ProbeArgs, user: &str) -> SecretSource {
    if let Some(v) = &a.password_env {
        SecretSource::Env(v.clone())
    } else if let Some(p) = &a.password_file {
        SecretSource::File(p.clone())
    } else if a.password_stdin {
        SecretSource::Stdin
    } else {
        SecretSource::Prompt(format!("Password for {user}: "))
    }
}

/// The Basic user name: the one given, else the mailbox's address; never with a ':' (the
/// header joins user and password with one).
pub(crate) fn basic_user(given: Option<&str>, mailbox: &Mailbox) -> Result<String, AppError> {
    let user = given.unwrap_or(mailbox.address()).to_string();
    if user.contains(':') {
        return Err(AppError::Usage(
            "a Basic user name cannot contain ':'".into(),
        ));
    }
    Ok(user)
}

pub(crate) fn credentials(a: &ProbeArgs, mailbox: &Mailbox) -> Result<Credentials, AppError> {
    let has_password = a.password_env.is_some() || a.password_file.is_some() || a.password_stdin;
    let has_token = a.token_env.is_some() || a.token_file.is_some();
    if has_password && !matches!(a.auth, AuthMode::Basic | AuthMode::Ntlm) {
        return Err(AppError::Usage(format!(
            "a password source was given but --auth is {}; passwords go with --auth basic or ntlm",
            a.auth.as_str()
        )));
    }
    if has_token && a.auth != AuthMode::Bearer {
        return Err(AppError::Usage(format!(
            "a token source was given but --auth is {}; use --auth bearer",
            a.auth.as_str()
        )));
    }
    match a.auth {
        AuthMode::None => Ok(Credentials::None),
        AuthMode::Basic => {
            let user = basic_user(a.user.as_deref(), mailbox)?;
            let password = password_source(a, &user).read()?;
            Ok(Credentials::Basic { user, password })
        }
        AuthMode::Bearer => {
            let src = if let Some(v) = &a.token_env {
                SecretSource::Env(v.clone())
            } else if let Some(p) = &a.token_file {
                SecretSource::File(p.clone())
            } else {
                SecretSource::Prompt("Access token: ".into())
            };
            Ok(Credentials::Bearer { token: src.read()? })
        }
        AuthMode::DeviceCode | AuthMode::ClientCredentials => {
            use crate::auth::oauth::{self, ClientAuth, OAuthConfig};
            let client_id = a.client_id.clone().ok_or_else(|| {
                AppError::Usage(format!(
                    "--auth {} needs --client-id (the app registration's Application id)",
                    a.auth.as_str()
                ))
            })?;
            let client = if a.auth == AuthMode::DeviceCode {
                if a.client_secret_env.is_some() || a.client_cert.is_some() {
                    return Err(AppError::Usage(
                        "--auth device-code is a public client: no --client-secret-env or --client-cert".into(),
                    ));
                }
                ClientAuth::None
            } else {
                match (&a.client_secret_env, &a.client_cert) {
                    (Some(var), None) => ClientAuth::Secret(SecretSource::Env(var.clone()).read()?),
                    (None, Some(path)) => {
                        ClientAuth::Certificate(crate::auth::jwt::CertCredential::load(path)?)
                    }
                    _ => {
                        return Err(AppError::Usage(
                            "--auth client-credentials needs exactly one of --client-secret-env VAR or --client-cert PATH".into(),
                        ));
                    }
                }
            };
            let mut cfg = OAuthConfig::new(
                a.auth,
                oauth::authority(&a.login_authority)?,
                oauth::tenant(a.tenant.as_deref())?,
                client_id,
                client,
            );
            // A recorded run fetches its token, so the bundle holds the sign-in.
            if a.record.is_none() && !a.no_token_cache {
                cfg.cache = crate::auth::cache::TokenCache::user();
            }
            Ok(Credentials::OAuth(Arc::new(cfg)))
        }
        AuthMode::Ntlm => {
            let user = a
                .user
                .clone()
                .unwrap_or_else(|| mailbox.address().to_string());
            let password = password_source(a, &user).read()?;
            Ok(Credentials::Ntlm(Box::new(
                crate::auth::ntlm::NtlmConfig::new(&user, password),
            )))
        }
    }
}

/// A base URL flag (`--autodiscover-v2-url`, `--realm-url`), or its default.
fn base_url(raw: Option<&str>, default: &str, flag: &str) -> Result<url::Url, AppError> {
    let raw = raw.unwrap_or(default);
    let u = url::Url::parse(raw)
        .map_err(|e| AppError::Usage(format!("{flag} '{raw}' is not a URL: {e}")))?;
    if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() {
        return Err(AppError::Usage(format!(
            "{flag} '{raw}' is not an http(s) URL"
        )));
    }
    Ok(u)
}

/// What to discover, from the flags: realm discovery always when discovering, or when
/// `--realm-url` is given; Autodiscover when no endpoint was given. The base URLs are parsed
/// once ([`DiscoveryPlan::from_args`]); a fleet plans each mailbox with
/// [`DiscoveryPlan::for_mailbox`].
#[derive(Clone)]
pub(crate) struct DiscoveryPlan {
    pub(crate) realm: Option<url::Url>,
    pub(crate) autodiscover: bool,
    pub(crate) v2: url::Url,
    pub(crate) trust_hosts: Vec<String>,
    /// Options for the DNS/TCP/TLS steps; `None` skips them.
    pub(crate) network: Option<discover::network::NetOptions>,
    /// The SRV lookup; `None` skips it.
    pub(crate) srv: Option<Arc<dyn discover::srv::SrvLookup>>,
    /// `--realm-url` (or its default), parsed once.
    realm_base: Option<url::Url>,
    /// Whether `--realm-url` was given (realm discovery then runs for every mailbox).
    realm_given: bool,
}

/// Whether a mailbox runs Autodiscover: when no endpoint was given, except a consumer address
/// without credentials, which is decided before any request (nothing to send). The one rule
/// of `probe` and `fleet`.
pub(crate) fn discovers(
    endpoint: Option<&url::Url>,
    mailbox: &Mailbox,
    creds: &Credentials,
) -> bool {
    let consumer_decided =
        crate::target::is_consumer_domain(mailbox.domain()) && matches!(creds, Credentials::None);
    endpoint.is_none() && !consumer_decided
}

/// The network steps' options, unless a proxy carries the traffic (they connect directly, so
/// they would test another path than the requests).
pub(crate) fn net_options(o: &HttpOptions, timeout: f64) -> Option<discover::network::NetOptions> {
    let env_proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    (o.proxy.is_none() && !env_proxy).then(|| discover::network::NetOptions {
        pins: o.pins.clone(),
        connect_to: o.connect_to.clone(),
        ca_file: o.ca_file.clone(),
        timeout: Duration::from_secs_f64(timeout.min(10.0)),
    })
}

impl DiscoveryPlan {
    /// Parses the base URLs (a bad one is a usage error, before any request).
    pub(crate) fn from_args(
        d: &DiscoveryArgs,
        discovering: bool,
        trust_hosts: &[String],
    ) -> Result<Self, AppError> {
        let plan = DiscoveryPlan {
            realm: None,
            autodiscover: false,
            v2: base_url(
                d.autodiscover_v2_url.as_deref(),
                discover::DEFAULT_V2_URL,
                "--autodiscover-v2-url",
            )?,
            trust_hosts: trust_hosts.to_vec(),
            network: None,
            srv: None,
            realm_base: Some(base_url(
                d.realm_url.as_deref(),
                discover::DEFAULT_REALM_URL,
                "--realm-url",
            )?),
            realm_given: d.realm_url.is_some(),
        };
        Ok(plan.for_mailbox(discovering))
    }
    /// This plan for one mailbox: Autodiscover when `discovering` ([`discovers`]), realm
    /// discovery then or when `--realm-url` was given.
    pub(crate) fn for_mailbox(&self, discovering: bool) -> Self {
        let mut p = self.clone();
        p.autodiscover = discovering;
        p.realm = if discovering || p.realm_given {
            p.realm_base.clone()
        } else {
            None
        };
        p
    }
    fn runs(&self) -> bool {
        self.realm.is_some() || self.autodiscover
    }
    fn meta(&self) -> Option<session::DiscoveryMeta> {
        self.runs().then(|| session::DiscoveryMeta {
            realm: self.realm.is_some(),
            autodiscover: self.autodiscover,
            trust_hosts: self.trust_hosts.clone(),
        })
    }
}

/// What the discovery phase found, for the check phase.
pub(crate) struct Discovered {
    steps: Vec<crate::evidence::Step>,
    found: Option<discover::Discovery>,
    /// Wall time of the discovery phase (live runs).
    elapsed: Duration,
}

/// The discovery phase: realm discovery and Autodiscover as planned; a discovered endpoint
/// goes into `cfg.endpoint` (a given one is kept).
pub(crate) async fn discover_phase(
    cfg: &mut ProbeConfig,
    plan: &DiscoveryPlan,
    t: &Transport,
) -> Discovered {
    let started = std::time::Instant::now();
    let (steps, found) = if plan.runs() {
        let dc = DiscoverConfig {
            mailbox: &cfg.mailbox,
            credentials: &cfg.credentials,
            trust: TrustPolicy::new(cfg.mailbox.domain(), &plan.trust_hosts),
            v2_url: plan.v2.clone(),
            realm_url: plan.realm.clone(),
            autodiscover: plan.autodiscover,
            network: plan.network.clone(),
            srv: plan.srv.clone(),
        };
        let (steps, d) = discover::run(&dc, t).await;
        (steps, Some(d))
    } else {
        (Vec::new(), None)
    };
    if cfg.endpoint.is_none() {
        cfg.endpoint = found
            .as_ref()
            .and_then(|d| d.endpoint.as_deref())
            .and_then(|e| url::Url::parse(e).ok());
    }
    Discovered {
        steps,
        found,
        elapsed: started.elapsed(),
    }
}

/// The check phase: the checks at `cfg.endpoint` (given or discovered), the diagnostic
/// handshake after an EWS TLS failure, and the discovery steps first; one evidence.
pub(crate) async fn check_phase(
    cfg: &ProbeConfig,
    plan: &DiscoveryPlan,
    t: &Transport,
    d: Discovered,
) -> Evidence {
    let started = std::time::Instant::now();
    let Discovered {
        steps: mut dsteps,
        found: mut disc,
        elapsed,
    } = d;
    let mut ev = probe::run(cfg, t).await;
    // An EWS TLS failure: a credential-free diagnostic handshake shows the chain (live only).
    if let (Some(opts), Some(ep)) = (&plan.network, &cfg.endpoint)
        && !t.is_replay()
        && ep.scheme() == "https"
        && ev.steps.iter().any(|s| {
            s.failure
                .as_ref()
                .is_some_and(|f| f.kind == crate::transport::FailureKind::Tls)
        })
        && let (Some(host), Some(port)) = (ep.host_str(), ep.port_or_known_default())
        && !disc
            .as_ref()
            .is_some_and(|d| d.network.iter().any(|n| n.host == host && n.port == port))
    {
        let n = discover::network::check(opts, host, port).await;
        dsteps.extend(discover::network::steps(&n));
        disc.get_or_insert_with(discover::Discovery::default)
            .network
            .push(n);
    }
    if disc.is_some() {
        let before = crate::util::millis(discover::duration(&dsteps));
        // Wall time of both phases (not the wait between them, e.g. a fleet's admission).
        ev.duration_ms = if t.is_replay() {
            ev.duration_ms + before
        } else {
            crate::util::millis(elapsed + started.elapsed())
        };
        let mut steps = dsteps;
        steps.append(&mut ev.steps);
        ev.steps = steps;
        ev.discovery = disc;
    }
    ev
}

/// Discovery (when planned), then the checks at the given or discovered endpoint; one evidence.
async fn pipeline(
    mut cfg: ProbeConfig,
    plan: &DiscoveryPlan,
    t: &Transport,
) -> (Evidence, ProbeConfig) {
    let d = discover_phase(&mut cfg, plan, t).await;
    let ev = check_phase(&cfg, plan, t, d).await;
    (ev, cfg)
}

/// `ews-probe probe`: one live run.
pub async fn probe(a: &ProbeArgs) -> Result<Report, AppError> {
    probe_with(a, Arc::new(discover::srv::SystemSrv)).await
}

/// `probe` with a given SRV lookup (tests stub DNS with it).
pub async fn probe_with(
    a: &ProbeArgs,
    srv: Arc<dyn discover::srv::SrvLookup>,
) -> Result<Report, AppError> {
    let mailbox = Mailbox::parse(&a.mailbox)?;
    let endpoint = a
        .ews_url
        .as_deref()
        .map(|u| endpoint(u, &a.net.resolve))
        .transpose()?;
    let creds = credentials(a, &mailbox)?;
    let plan = DiscoveryPlan::from_args(
        &a.discovery,
        discovers(endpoint.as_ref(), &mailbox, &creds),
        &a.trust_host,
    )?;
    let mut redactor = Redactor::default();
    creds.register_secrets(&mut redactor);
    let redactor = Arc::new(redactor);
    let opts = HttpOptions {
        connect_to: a.discovery.connect_to.clone(),
        connection_auth: a.auth == AuthMode::Ntlm,
        ..http_options(&a.net)
    };
    let mut plan = plan;
    plan.network = net_options(&opts, a.net.timeout);
    if plan.autodiscover {
        plan.srv = Some(srv);
    }
    let client = Arc::new(HttpClient::new(&opts)?);
    let mut transport = Transport::http(
        client,
        redactor.clone(),
        Duration::from_secs_f64(a.net.timeout),
    );
    if let Some(dir) = &a.record {
        transport
            .record_to(dir.clone())
            .map_err(|e| AppError::Write(dir.display().to_string(), e))?;
    }
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let given_endpoint = endpoint.is_some();
    let cfg = ProbeConfig {
        mailbox: mailbox.clone(),
        endpoint,
        credentials: creds,
        context: RequestContext {
            version: a.server_version,
            // App-only tokens act for no one: every request impersonates the mailbox (OA-5).
            impersonate: (a.impersonate || a.auth == AuthMode::ClientCredentials)
                .then(|| mailbox.address().to_string()),
        },
        write: a.write,
        now,
        challenge: None,
    };
    let (evidence, cfg) = pipeline(cfg, &plan, &transport).await;
    let verdict = diagnose::diagnose(&mailbox, &evidence);
    let report = Report::new(&evidence, verdict);
    if let Some(dir) = &a.record {
        let meta = SessionMeta {
            schema: session::SCHEMA.into(),
            mailbox: mailbox.address().to_string(),
            // A discovered endpoint is found again on replay, from the recorded answers.
            endpoint: if given_endpoint {
                evidence.endpoint.clone()
            } else {
                None
            },
            auth: cfg.credentials.mode(),
            impersonate: cfg.context.impersonate.clone(),
            write: cfg.write,
            server_version: cfg.context.version.to_string(),
            started_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            discovery: plan.meta(),
            title: None,
            expect: None,
        };
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        let path = dir.join(crate::transport::bundle::META_FILE);
        std::fs::write(&path, redactor.text(&text))
            .map_err(|e| AppError::Write(path.display().to_string(), e))?;
    }
    Ok(report)
}

/// `ews-probe logout`: removes every cached OAuth token; the line to print.
pub fn logout() -> Result<String, AppError> {
    let Some(cache) = crate::auth::cache::TokenCache::user() else {
        return Ok("no cache directory is known (HOME is not set): nothing to remove".into());
    };
    let n = cache.clear().map_err(AppError::Usage)?;
    Ok(format!(
        "removed {n} cached token{} ({})",
        if n == 1 { "" } else { "s" },
        cache.file().display()
    ))
}

/// `ews-probe discover`: realm discovery and Autodiscover only; no credentials exist here.
pub async fn discover(a: &DiscoverArgs) -> Result<Report, AppError> {
    discover_with(a, Arc::new(discover::srv::SystemSrv)).await
}

/// `discover` with a given SRV lookup (tests stub DNS with it).
pub async fn discover_with(
    a: &DiscoverArgs,
    srv: Arc<dyn discover::srv::SrvLookup>,
) -> Result<Report, AppError> {
    let mailbox = Mailbox::parse(&a.mailbox)?;
    let plan = DiscoveryPlan::from_args(&a.discovery, true, &a.trust_host)?;
    let opts = HttpOptions {
        connect_to: a.discovery.connect_to.clone(),
        ..http_options(&a.net)
    };
    let client = Arc::new(HttpClient::new(&opts)?);
    let transport = Transport::http(
        client,
        Arc::new(Redactor::default()),
        Duration::from_secs_f64(a.net.timeout),
    );
    let started = std::time::Instant::now();
    let dc = DiscoverConfig {
        mailbox: &mailbox,
        credentials: &Credentials::None,
        trust: TrustPolicy::new(mailbox.domain(), &plan.trust_hosts),
        v2_url: plan.v2.clone(),
        realm_url: plan.realm.clone(),
        autodiscover: true,
        network: net_options(&opts, a.net.timeout),
        srv: Some(srv),
    };
    let (steps, d) = discover::run(&dc, &transport).await;
    let evidence = Evidence {
        mailbox: mailbox.address().to_string(),
        endpoint: d.endpoint.clone(),
        auth: AuthMode::None,
        impersonating: false,
        write: false,
        steps,
        duration_ms: crate::util::millis(started.elapsed()),
        discovery: Some(d),
    };
    let verdict = diagnose::diagnose(&mailbox, &evidence);
    Ok(Report::new(&evidence, verdict))
}

/// Runs the pipeline over a recorded bundle.
pub async fn run_bundle(bundle: &Bundle) -> Result<(Report, SessionMeta), AppError> {
    let meta = SessionMeta::parse(&bundle.origin, &bundle.meta)?;
    let bad = |m: String| session::SessionError {
        origin: bundle.origin.clone(),
        message: m,
    };
    let mailbox = Mailbox::parse(&meta.mailbox)?;
    let endpoint = meta
        .endpoint
        .as_deref()
        .map(url::Url::parse)
        .transpose()
        .map_err(|e| bad(format!("endpoint: {e}")))?;
    let now = meta.started().map_err(bad)?;
    let version = meta.server_version.parse().map_err(bad)?;
    let replay = Replay::new(bundle)?;
    let transport = Transport::replay(replay, Arc::new(Redactor::default()));
    let plan = match &meta.discovery {
        Some(dm) => DiscoveryPlan {
            realm: dm
                .realm
                .then(|| url::Url::parse(discover::DEFAULT_REALM_URL).ok())
                .flatten(),
            autodiscover: dm.autodiscover,
            v2: url::Url::parse(discover::DEFAULT_V2_URL).map_err(|e| bad(e.to_string()))?,
            trust_hosts: dm.trust_hosts.clone(),
            network: None,
            srv: None,
            realm_base: None,
            realm_given: false,
        },
        None => DiscoveryPlan {
            realm: None,
            autodiscover: false,
            v2: url::Url::parse(discover::DEFAULT_V2_URL).map_err(|e| bad(e.to_string()))?,
            trust_hosts: Vec::new(),
            network: None,
            srv: None,
            realm_base: None,
            realm_given: false,
        },
    };
    let cfg = ProbeConfig {
        mailbox: mailbox.clone(),
        endpoint,
        credentials: match meta.auth {
            AuthMode::DeviceCode | AuthMode::ClientCredentials => Credentials::OAuth(Arc::new(
                crate::auth::oauth::OAuthConfig::replayed(meta.auth),
            )),
            AuthMode::Ntlm => {
                Credentials::Ntlm(Box::new(crate::auth::ntlm::NtlmConfig::replayed()))
            }
            m => Credentials::Replayed(m),
        },
        context: RequestContext {
            version,
            impersonate: meta.impersonate.clone(),
        },
        write: meta.write,
        now,
        challenge: None,
    };
    let (evidence, _) = pipeline(cfg, &plan, &transport).await;
    let verdict = diagnose::diagnose(&mailbox, &evidence);
    Ok((Report::new(&evidence, verdict), meta))
}

/// `ews-probe replay DIR`.
pub async fn replay(a: &ReplayArgs) -> Result<Report, AppError> {
    let bundle = Bundle::load(&a.dir)?;
    Ok(run_bundle(&bundle).await?.0)
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/demo_bundles.rs"));
}

/// Names of the built-in scenarios.
pub fn scenarios() -> Vec<&'static str> {
    embedded::SCENARIOS.iter().map(|(n, _)| *n).collect()
}

/// The embedded files of a built-in scenario (a switch scenario's sides are under `from/`, `to/`).
pub fn embedded_scenario(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    embedded::SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

pub(crate) fn scenario_bundle(name: &str) -> Result<Bundle, AppError> {
    let (n, files) = embedded::SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| {
            AppError::Usage(format!(
                "no demo scenario '{name}'; scenarios: {}",
                scenarios().join(", ")
            ))
        })?;
    Ok(Bundle::from_embedded(&format!("demo scenario {n}"), files)?)
}

/// Whether a report reached a scenario's expected verdict; the mismatch if not.
pub fn check_expectation(report: &Report, e: &Expectation) -> Result<(), String> {
    let codes: Vec<&str> = report.diagnoses.iter().map(|d| d.code.as_str()).collect();
    if report.exit_code != e.exit_code {
        return Err(format!(
            "exit {} instead of {}",
            report.exit_code, e.exit_code
        ));
    }
    if codes != e.codes {
        return Err(format!("codes {codes:?} instead of {:?}", e.codes));
    }
    if !e.features.is_empty() {
        let got: Vec<String> = report
            .features
            .iter()
            .map(|f| {
                serde_json::to_value(f.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        if got != e.features {
            return Err(format!("features {got:?} instead of {:?}", e.features));
        }
    }
    Ok(())
}

/// One demo scenario's result.
pub struct DemoRun {
    pub name: &'static str,
    pub title: String,
    pub report: Report,
    pub check: Result<(), String>,
}

/// `ews-probe demo [SCENARIO]`: one scenario's report, or every scenario checked.
pub async fn demo(a: &DemoArgs) -> Result<Vec<DemoRun>, AppError> {
    let names: Vec<&'static str> = match &a.scenario {
        Some(s) => {
            let n = scenarios().into_iter().find(|n| n == s).ok_or_else(|| {
                AppError::Usage(format!(
                    "no demo scenario '{s}'; scenarios: {}",
                    scenarios().join(", ")
                ))
            })?;
            vec![n]
        }
        None => scenarios(),
    };
    let mut runs = Vec::new();
    for name in names {
        if let Some(s) = crate::switch::demo(name).await? {
            runs.push(DemoRun {
                name,
                title: s.title.clone().unwrap_or_default(),
                check: s.check(),
                report: s.to,
            });
            continue;
        }
        let bundle = scenario_bundle(name)?;
        let (report, meta) = run_bundle(&bundle).await?;
        let check = match &meta.expect {
            Some(e) => check_expectation(&report, e),
            None => Err("the scenario has no expected verdict".into()),
        };
        runs.push(DemoRun {
            name,
            title: meta.title.unwrap_or_default(),
            report,
            check,
        });
    }
    Ok(runs)
}

#[cfg(test)]
mod discovery_plan_tests {
    use super::*;

    fn args(realm: Option<&str>) -> DiscoveryArgs {
        DiscoveryArgs {
            connect_to: Vec::new(),
            autodiscover_v2_url: None,
            realm_url: realm.map(str::to_string),
        }
    }

    #[test]
    fn who_discovers_is_one_rule() {
        let work = Mailbox::parse("adele@contoso.example").unwrap();
        let consumer = Mailbox::parse("someone@outlook.com").unwrap();
        let url = url::Url::parse("https://mail.contoso.example/EWS/Exchange.asmx").unwrap();
        let basic = Credentials::Basic {
            user: "u".into(),
            password: secrecy::SecretString::from("p".to_string()),
        };
        assert!(discovers(None, &work, &Credentials::None));
        assert!(!discovers(Some(&url), &work, &Credentials::None));
        // A consumer address without credentials is decided before any request…
        assert!(!discovers(None, &consumer, &Credentials::None));
        // …with credentials it is discovered like any other.
        assert!(discovers(None, &consumer, &basic));
    }

    #[test]
    fn a_plan_per_mailbox_from_base_urls_parsed_once() {
        let base = DiscoveryPlan::from_args(&args(None), false, &[]).unwrap();
        assert!(!base.runs());
        let d = base.for_mailbox(true);
        assert!(d.autodiscover);
        assert_eq!(
            d.realm.as_ref().map(url::Url::as_str),
            Some("https://login.microsoftonline.com/")
        );
        assert!(!d.for_mailbox(false).runs());
        // --realm-url: realm discovery for every mailbox, Autodiscover only when discovering.
        let given = DiscoveryPlan::from_args(&args(Some("http://127.0.0.1:9")), false, &[])
            .unwrap()
            .for_mailbox(false);
        assert!(!given.autodiscover);
        assert_eq!(
            given.realm.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:9/")
        );
        // A bad base URL is refused whether or not this mailbox discovers.
        assert!(DiscoveryPlan::from_args(&args(Some("ftp://x")), false, &[]).is_err());
    }
}
