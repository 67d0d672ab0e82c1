//! The commands: each turns parsed flags into a pipeline run (target → endpoint → auth →
//! checks → evidence → diagnosis → report) and returns the report. `probe` runs it live over
//! HTTP; `replay` and `demo` run the very same pipeline over a recorded bundle.

use crate::auth::secret::{SecretError, SecretSource};
use crate::auth::{AuthMode, Credentials};
use crate::cli::{DemoArgs, ProbeArgs, ReplayArgs};
use crate::diagnose;
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
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
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
            let user = a
                .user
                .clone()
                .unwrap_or_else(|| mailbox.address().to_string());
            if user.contains(':') {
                return Err(AppError::Usage(
                    "a Basic user name cannot contain ':'".into(),
                ));
            }
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
        AuthMode::Ntlm | AuthMode::DeviceCode | AuthMode::ClientCredentials => {
            Err(AppError::Usage(format!(
                "--auth {} is not available in this version yet; use --auth basic, bearer (a token you obtained) or none",
                a.auth.as_str()
            )))
        }
    }
}

/// `ews-probe probe`: one live run.
pub async fn probe(a: &ProbeArgs) -> Result<Report, AppError> {
    let mailbox = Mailbox::parse(&a.mailbox)?;
    let endpoint = a
        .ews_url
        .as_deref()
        .map(|u| endpoint(u, &a.resolve))
        .transpose()?;
    let creds = credentials(a, &mailbox)?;
    let mut redactor = Redactor::default();
    creds.register_secrets(&mut redactor);
    let redactor = Arc::new(redactor);
    let opts = HttpOptions {
        pins: a.resolve.clone(),
        ca_file: a.ca_file.clone(),
        proxy: a.proxy.clone(),
        connect_timeout: Duration::from_secs_f64(a.timeout.min(10.0)),
        read_timeout: Duration::from_secs_f64(a.timeout.min(20.0)),
        ..HttpOptions::default()
    };
    let client = Arc::new(HttpClient::new(&opts)?);
    let mut transport =
        Transport::http(client, redactor.clone(), Duration::from_secs_f64(a.timeout));
    if let Some(dir) = &a.record {
        transport
            .record_to(dir.clone())
            .map_err(|e| AppError::Write(dir.display().to_string(), e))?;
    }
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let cfg = ProbeConfig {
        mailbox: mailbox.clone(),
        endpoint,
        credentials: creds,
        context: RequestContext {
            version: a.server_version,
            impersonate: a.impersonate.then(|| mailbox.address().to_string()),
        },
        write: a.write,
        now,
    };
    let evidence = probe::run(&cfg, &transport).await;
    let verdict = diagnose::diagnose(&mailbox, &evidence);
    let report = Report::new(&evidence, verdict);
    if let Some(dir) = &a.record {
        let meta = SessionMeta {
            schema: session::SCHEMA.into(),
            mailbox: mailbox.address().to_string(),
            endpoint: evidence.endpoint.clone(),
            auth: cfg.credentials.mode(),
            impersonate: cfg.context.impersonate.clone(),
            write: cfg.write,
            server_version: cfg.context.version.to_string(),
            started_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
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
    let cfg = ProbeConfig {
        mailbox: mailbox.clone(),
        endpoint,
        credentials: Credentials::Replayed(meta.auth),
        context: RequestContext {
            version,
            impersonate: meta.impersonate.clone(),
        },
        write: meta.write,
        now,
    };
    let evidence = probe::run(&cfg, &transport).await;
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

fn scenario_bundle(name: &str) -> Result<Bundle, AppError> {
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
