//! `ews-probe fleet`: the probe pipeline (the same phases as `probe`: `app::discover_phase`,
//! then `app::check_phase` → `diagnose` → `Report`) over many mailboxes; a mailbox without an
//! EWS URL is discovered on its own, as `probe` does. One shared HTTP client (one connection
//! pool), caps on concurrency overall and per endpoint (a discovered one too), per-endpoint
//! back-off, NDJSON streamed and flushed per mailbox, `--resume`, `--shard`, Ctrl-C/SIGTERM
//! handling and a summary.
//!
//! * [`input`]: the CSV / one-per-line input, duplicates and invalid lines set aside;
//! * [`shard`]: the stable split of the input between machines;
//! * [`scheduler`]: admission (global and per-endpoint caps, pauses);
//! * [`output`]: NDJSON lines, resume, atomic writes;
//! * [`summary`]: counts and the exit code.

pub mod input;
pub mod output;
pub mod scheduler;
pub mod shard;
pub mod summary;

use crate::app::{AppError, DiscoveryPlan};
use crate::auth::{AuthMode, Credentials};
use crate::cli::FleetArgs;
use crate::diagnose;
use crate::ews::RequestContext;
use crate::probe::ProbeConfig;
use crate::report::range::Thresholds;
use crate::report::{Format, Report};
use crate::transport::Transport;
use crate::transport::http::{HttpClient, HttpOptions};
use crate::transport::redact::Redactor;
use input::{Entry, RejectKind};
use scheduler::Limits;
use secrecy::{ExposeSecret, SecretString};
use std::io::{IsTerminal, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use summary::Summary;

/// The same credentials for another mailbox's probe. Secrets stay in `SecretString`s. OAuth
/// shares its one configuration, so the run acquires one token (`OAuthConfig::acquire`).
fn share(c: &Credentials) -> Credentials {
    match c {
        Credentials::None => Credentials::None,
        Credentials::Basic { user, password } => Credentials::Basic {
            user: user.clone(),
            password: SecretString::from(password.expose_secret().to_string()),
        },
        Credentials::Bearer { token } => Credentials::Bearer {
            token: SecretString::from(token.expose_secret().to_string()),
        },
        Credentials::Replayed(m) => Credentials::Replayed(*m),
        Credentials::OAuth(o) => Credentials::OAuth(o.clone()),
        // NTLM authenticates a connection: each mailbox gets a fresh configuration (its own
        // serial lock) for its own pinned connection (`Shared::ntlm`).
        Credentials::Ntlm(n) => Credentials::Ntlm(Box::new(crate::auth::ntlm::NtlmConfig::new(
            &n.display_user(),
            SecretString::from(n.password.expose_secret().to_string()),
        ))),
    }
}

fn read_input(path: &str) -> Result<String, AppError> {
    let mut text = String::new();
    let r = if path == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    r.map_err(|e| AppError::Usage(format!("cannot read --input {path}: {e}")))?;
    Ok(text)
}

/// What every mailbox's probe shares.
struct Shared {
    client: Arc<HttpClient>,
    /// NTLM: the options each mailbox builds its own client (one pinned connection) from, so
    /// mailboxes run concurrently and never share an authenticated connection.
    ntlm: Option<HttpOptions>,
    /// NTLM, if a mailbox's own client cannot be built: it uses the run's one (`client`), one
    /// mailbox at a time.
    ntlm_fallback: tokio::sync::Mutex<()>,
    redactor: Arc<Redactor>,
    credentials: Credentials,
    default_endpoint: Option<url::Url>,
    /// The run's two discovery plans, from the flags parsed once: for a mailbox that runs
    /// Autodiscover, and for one with its endpoint (realm discovery only with --realm-url).
    discovering: DiscoveryPlan,
    not_discovering: DiscoveryPlan,
    timeout: Duration,
    version: crate::ews::ServerVersion,
    impersonate: bool,
    write: bool,
    thresholds: Thresholds,
}

/// The EWS URL a mailbox starts with: its row's, else `--ews-url`.
fn given_endpoint<'a>(s: &'a Shared, e: &'a Entry) -> Option<&'a url::Url> {
    e.ews_url.as_ref().or(s.default_endpoint.as_ref())
}

/// One mailbox's discovery plan: the rule of `probe` ([`crate::app::discovers`]).
fn plan_for<'a>(s: &'a Shared, e: &Entry) -> &'a DiscoveryPlan {
    if crate::app::discovers(given_endpoint(s, e), &e.mailbox, &s.credentials) {
        &s.discovering
    } else {
        &s.not_discovering
    }
}

/// The admission key a mailbox starts under: its domain's while it discovers, else its
/// endpoint's.
fn first_key(s: &Shared, e: &Entry, plan: &DiscoveryPlan) -> String {
    if plan.autodiscover {
        scheduler::discovery_key(e.mailbox.domain())
    } else {
        scheduler::endpoint_key(given_endpoint(s, e))
    }
}

/// One mailbox through the pipeline, admitted with `slot` under `ep`: discovery (when
/// planned), then, for a discovered endpoint, the trade of the domain's permit for that
/// endpoint's, then the checks. The endpoint in use is told when it says it is busy.
async fn probe_one(
    s: &Shared,
    limits: &Limits,
    e: &Entry,
    plan: &DiscoveryPlan,
    ep: Arc<scheduler::Endpoint>,
    slot: scheduler::Slot,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Option<Report> {
    let mut client = s.client.clone();
    let mut _one_at_a_time = None;
    if let Some(opts) = &s.ntlm {
        match HttpClient::new(opts) {
            Ok(c) => client = Arc::new(c),
            Err(err) => {
                // The same options built the run's client at start; only a changed file
                // (--ca-file) gets here.
                tracing::warn!(
                    "{}: own NTLM connection not available ({err}); using the run's, one mailbox at a time",
                    e.mailbox.address()
                );
                _one_at_a_time = Some(s.ntlm_fallback.lock().await);
            }
        }
    }
    let mut transport = Transport::http(client, s.redactor.clone(), s.timeout);
    // The endpoint this mailbox uses now: its domain's while it discovers, then the
    // discovered endpoint.
    let current = Arc::new(std::sync::Mutex::new(ep.clone()));
    let busy_ep = current.clone();
    let observed = transport.observe_responses(Arc::new(move |resp| {
        if let Some(d) = scheduler::busy_pause(resp) {
            let ep = busy_ep.lock().unwrap_or_else(|p| p.into_inner()).clone();
            ep.pause(d);
        }
    }));
    if let Err(e) = observed {
        // Cannot happen for a transport made just above; the back-off then stays per request.
        tracing::warn!("per-endpoint back-off is off for this mailbox: {e}");
    }
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let mut cfg = ProbeConfig {
        mailbox: e.mailbox.clone(),
        endpoint: given_endpoint(s, e).cloned(),
        credentials: share(&s.credentials),
        context: RequestContext {
            version: s.version,
            impersonate: s.impersonate.then(|| e.mailbox.address().to_string()),
        },
        write: s.write,
        now,
        challenge: None,
    };
    let found = crate::app::discover_phase(&mut cfg, plan, &transport).await;
    let mut ep = ep;
    let mut _slot = Some(slot);
    if plan.autodiscover
        && let Some(url) = &cfg.endpoint
    {
        // Checks run under the discovered endpoint's cap and pause, not the domain's.
        let found_ep = limits.endpoint(&scheduler::endpoint_key(Some(url)));
        if let Some(held) = _slot.take() {
            // Waiting for a full or paused endpoint is admission, not probe time: the
            // deadline (--timeout) gets back what it had left before the wait.
            let left = transport.remaining();
            // The wait ends on a stop, as admission does: the mailbox is then not started
            // (no line; `--resume` probes it again).
            _slot = tokio::select! {
                s = limits.trade(held, &found_ep) => s,
                _ = until_stopped(&mut stopped) => None,
            };
            _slot.as_ref()?;
            transport.set_remaining(left);
        }
        *current.lock().unwrap_or_else(|p| p.into_inner()) = found_ep.clone();
        ep = found_ep;
    }
    // Observed once per endpoint URL in this run (one request of nine per mailbox saved).
    cfg.challenge = cfg.endpoint.as_ref().map(|u| ep.challenge(u));
    let evidence = crate::app::check_phase(&cfg, plan, &transport, found).await;
    let verdict = diagnose::diagnose(&e.mailbox, &evidence);
    let mut report = Report::new(&evidence, verdict);
    s.thresholds.apply(&mut report);
    Some(report)
}

/// Returns on a stop (Ctrl-C/SIGTERM); never without a signal watcher.
async fn until_stopped(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    if stopped.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sets `stop` on the first Ctrl-C or SIGTERM; a second one exits at once (every line written
/// so far is complete and flushed).
fn watch_signals(stop: Arc<AtomicBool>, tell: tokio::sync::watch::Sender<bool>) {
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let mut term = match signal(SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
                tokio::select! {
                    r = tokio::signal::ctrl_c() => if r.is_err() { return },
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            n += 1;
            if n == 1 {
                stop.store(true, Ordering::SeqCst);
                let _ = tell.send(true);
                eprintln!(
                    "ews-probe: stopping: no new mailboxes; finishing the ones in flight (again to quit now)"
                );
            } else {
                eprintln!("ews-probe: quitting; the output holds complete lines only");
                std::process::exit(130);
            }
        }
    });
}

/// `ews-probe fleet`; returns the exit code.
pub async fn run(a: &FleetArgs) -> Result<u8, AppError> {
    run_with(a, Arc::new(crate::discover::srv::SystemSrv)).await
}

/// `fleet` with a given SRV lookup (tests stub DNS with it).
pub async fn run_with(
    a: &FleetArgs,
    srv: Arc<dyn crate::discover::srv::SrvLookup>,
) -> Result<u8, AppError> {
    let started = Instant::now();
    let p = &a.probe;
    let format = p.out.format;
    if p.record.is_some() {
        return Err(AppError::Usage(
            "--record is for one mailbox; use probe --record".into(),
        ));
    }
    if a.resume && format != Format::Json {
        return Err(AppError::Usage(
            "--resume continues an NDJSON output: use it with --format json".into(),
        ));
    }
    if matches!(p.auth, AuthMode::Basic | AuthMode::Ntlm) && p.user.is_none() {
        return Err(AppError::Usage(format!(
            "fleet with --auth {} needs --user (one account for every mailbox, usually with --impersonate)",
            p.auth.as_str()
        )));
    }
    if p.password_stdin && a.input == "-" {
        return Err(AppError::Usage(
            "--password-stdin and --input - cannot both read standard input".into(),
        ));
    }
    let default_endpoint = p
        .ews_url
        .as_deref()
        .map(|u| crate::app::endpoint(u, &p.net.resolve))
        .transpose()?;
    // The discovery flags, parsed once: a bad base URL stops the run before any request.
    let mut discovery = DiscoveryPlan::from_args(&p.discovery, false, &p.trust_host)?;
    let text = read_input(&a.input)?;
    let pins = p.net.resolve.clone();
    let mut input = input::parse(&text, |u| {
        crate::app::endpoint(u, &pins).map_err(|e| e.to_string())
    })
    .map_err(|e| AppError::Usage(e.to_string()))?;
    if let Some(sh) = a.shard {
        input.entries.retain(|e| sh.owns(e.mailbox.address()));
        input.rejected.retain(|r| sh.owns(&r.text));
    }
    let mut summary = Summary::default();
    for r in &input.rejected {
        match r.kind {
            RejectKind::Invalid => summary.invalid += 1,
            RejectKind::Duplicate => summary.duplicates += 1,
        }
        let what = match r.kind {
            RejectKind::Invalid => "invalid",
            RejectKind::Duplicate => "duplicate",
        };
        eprintln!(
            "ews-probe: --input line {}: {what}, not probed: {}",
            r.line,
            crate::util::truncate_for_display(&r.reason, 200)
        );
    }

    // Secrets first: a missing one must not cost the previous output file.
    let credentials = match input.entries.first() {
        Some(e) => crate::app::credentials(p, &e.mailbox)?,
        None => Credentials::None,
    };
    // Resume: what the earlier run wrote counts, and is not probed again.
    let mut sink = match (&p.out.output, format) {
        (Some(path), Format::Json) => {
            if a.resume {
                let done = output::resume(path).map_err(|e| AppError::Usage(e.to_string()))?;
                if done.cut_bytes > 0 {
                    eprintln!(
                        "ews-probe: {}: cut off a partial last line ({} bytes) left by an interrupted run",
                        path.display(),
                        done.cut_bytes
                    );
                }
                input
                    .entries
                    .retain(|e| !done.done.contains(&e.mailbox.address().to_lowercase()));
                for v in &done.reports {
                    summary.add(v);
                }
                summary.resumed = done.reports.len() as u64;
            }
            Some(
                output::LineSink::file(path, a.resume)
                    .map_err(|e| AppError::Write(path.display().to_string(), e))?,
            )
        }
        (None, Format::Json | Format::Text) => Some(output::LineSink::stdout()),
        (Some(path), Format::Text) => Some(
            output::LineSink::file(path, false)
                .map_err(|e| AppError::Write(path.display().to_string(), e))?,
        ),
        _ => None,
    };

    let mut redactor = Redactor::default();
    credentials.register_secrets(&mut redactor);
    let opts = HttpOptions {
        connect_to: p.discovery.connect_to.clone(),
        // Each mailbox in flight runs up to 7 checks at once: keep their connections.
        pool_idle_per_host: (a.per_endpoint as usize * 8).min(a.concurrency as usize * 8),
        connection_auth: p.auth == AuthMode::Ntlm,
        ..crate::app::http_options(&p.net)
    };
    // As `probe`: the DNS/TCP/TLS steps for a discovered endpoint, and the diagnostic
    // handshake after an EWS TLS failure; the SRV lookup for mailboxes that discover.
    discovery.network = crate::app::net_options(&opts, p.net.timeout);
    discovery.srv = Some(srv);
    let shared = Arc::new(Shared {
        client: Arc::new(HttpClient::new(&opts)?),
        ntlm: (p.auth == AuthMode::Ntlm).then(|| opts.clone()),
        ntlm_fallback: tokio::sync::Mutex::new(()),
        redactor: Arc::new(redactor),
        credentials,
        default_endpoint,
        discovering: discovery.for_mailbox(true),
        not_discovering: discovery.for_mailbox(false),
        timeout: Duration::from_secs_f64(p.net.timeout),
        version: p.server_version,
        // App-only tokens act for no one: every mailbox's requests impersonate it (OA-5),
        // as `probe` does.
        impersonate: p.impersonate || p.auth == AuthMode::ClientCredentials,
        write: p.write,
        thresholds: p.out.thresholds(),
    });
    let limits = Arc::new(Limits::new(a.concurrency as usize, a.per_endpoint as usize));
    let stop = Arc::new(AtomicBool::new(false));
    // Mailboxes waiting for admission (a full or paused endpoint) give up at once on a stop.
    let (tell, stopped) = tokio::sync::watch::channel(false);
    watch_signals(stop.clone(), tell);

    let total = input.entries.len() as u64;
    let bar = if !a.no_progress && std::io::stderr().is_terminal() && total > 0 {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} mailboxes, {elapsed} elapsed, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    // Tasks are spawned in a window ahead of the admitted ones, not all at once: memory stays
    // flat for any input size, and mailboxes of a paused endpoint wait without holding slots.
    let window = (a.concurrency as usize * 4).max(256);
    let mut pending = std::mem::take(&mut input.entries).into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    let spawn = |tasks: &mut tokio::task::JoinSet<Option<Report>>, e: Entry| {
        let (limits, shared, stop) = (limits.clone(), shared.clone(), stop.clone());
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            let plan = plan_for(&shared, &e);
            let ep = limits.endpoint(&first_key(&shared, &e, plan));
            let slot = tokio::select! {
                s = limits.admit(&ep) => s,
                // No signal watcher (it could not be set up): never stops.
                _ = until_stopped(&mut stopped) => None,
            };
            let slot = slot.filter(|_| !stop.load(Ordering::SeqCst))?;
            // Boxed: queued mailboxes stay small until they run.
            Box::pin(probe_one(&shared, &limits, &e, plan, ep, slot, stopped)).await
        });
    };

    let mut reports = Vec::new();
    loop {
        while tasks.len() < window {
            if stop.load(Ordering::SeqCst) {
                summary.not_started += pending.len() as u64;
                pending = Vec::new().into_iter();
            }
            match pending.next() {
                Some(e) => spawn(&mut tasks, e),
                None => break,
            }
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let report = match joined {
            Ok(Some(r)) => r,
            Ok(None) => {
                summary.not_started += 1;
                continue;
            }
            Err(e) => {
                // A panicked probe is a bug; say so and go on with the others.
                eprintln!("ews-probe: internal error in one probe: {e}");
                summary.raise(crate::diagnose::Status::Unknown);
                continue;
            }
        };
        summary.add_report(&report);
        bar.inc(1);
        match format {
            Format::Json => {
                if let Some(s) = sink.as_mut() {
                    // Straight to text: no `serde_json::Value` tree per mailbox.
                    s.line(&serde_json::to_string(&report).unwrap_or_default())?;
                }
            }
            Format::Text => {
                if let Some(s) = sink.as_mut() {
                    s.line(&format!(
                        "{:<8} {}  {}",
                        report.status.label(),
                        report.mailbox,
                        crate::util::truncate_for_display(&report.headline(), 140)
                    ))?;
                }
            }
            Format::Prometheus => reports.push(report),
            Format::Nagios => {}
        }
    }
    bar.finish_and_clear();

    let text = summary.render_text(started.elapsed());
    match format {
        Format::Prometheus => {
            let prom = crate::report::prometheus::render(&reports);
            match &p.out.output {
                Some(path) => output::write_atomic(path, &prom)?,
                None => print!("{prom}"),
            }
            eprint!("{text}");
        }
        Format::Nagios => {
            let n = summary.render_nagios();
            match &p.out.output {
                Some(path) => output::write_atomic(path, &n)?,
                None => print!("{n}"),
            }
            eprint!("{text}");
        }
        Format::Text if p.out.output.is_none() => print!("\n{text}"),
        _ => eprint!("{text}"),
    }
    Ok(summary.status().exit_code() as u8)
}
