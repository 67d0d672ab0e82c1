//! `ews-probe switch FROM TO`: reproduces the logout-on-switch symptom as a timeline. Within
//! one session (one HTTP client, one connection pool) it signs in to FROM and probes it, then
//! switches to TO with TO's own credentials, as an integration does when the user picks another
//! mailbox. Each step has its time and result; when EWS refuses TO's connectivity check with
//! 401/403, that is the moment an integration drops its session and "logs the user out". Then
//! TO's diagnosis says why.
//!
//! Both sides are ordinary probe runs (`probe::run` → `diagnose` → `Report`). Live runs can be
//! recorded (`--record DIR` writes DIR/from and DIR/to, each a normal bundle, plus a
//! `session.json` of kind `switch`), replayed (`--replay DIR`), and built-in demo scenarios can
//! be switch bundles.

use crate::app::AppError;
use crate::auth::secret::SecretSource;
use crate::auth::{AuthMode, Credentials};
use crate::cli::{SideCreds, SwitchArgs};
use crate::diagnose::{self, Status};
use crate::evidence::Outcome;
use crate::ews::RequestContext;
use crate::probe::{self, ProbeConfig};
use crate::report::{Format, Report};
use crate::session::{self, SessionMeta, SwitchMeta};
use crate::target::Mailbox;
use crate::transport::Transport;
use crate::transport::bundle::{Bundle, META_FILE};
use crate::transport::http::HttpClient;
use crate::transport::redact::Redactor;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SCHEMA: &str = "ews-probe.switch.v1";

/// What the integration does when EWS refuses the mailbox it switched to.
pub const LOGOUT: &str = "an integration logs the user out here";

/// One step of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Milliseconds since the session started.
    pub at_ms: f64,
    pub duration_ms: f64,
    pub mailbox: String,
    /// `sign_in`, `features`, `switch`, `connectivity`, `diagnosis`.
    pub step: &'static str,
    pub title: String,
    /// `accepted`, `refused`, `failed`, `not_sent`, `ok`, `warning`, `critical`, `unknown`, `done`.
    pub result: String,
    pub detail: String,
    /// Set on the step where an integration would end the user's session.
    pub logout: bool,
}

/// The whole switch run (`--format json`).
#[derive(Debug, Clone, Serialize)]
pub struct SwitchReport {
    pub schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub from: Report,
    pub to: Report,
    pub timeline: Vec<Event>,
    /// EWS refused TO's connectivity with 401/403 after FROM was accepted.
    pub logout_reproduced: bool,
    pub status: Status,
    pub exit_code: i32,
    #[serde(skip)]
    expect: Option<session::SwitchExpectation>,
}

fn ms(d: Duration) -> f64 {
    crate::util::millis(d)
}

/// The connectivity step's result word and whether it was a 401/403 refusal.
fn connectivity(r: &Report) -> (String, String, f64, bool) {
    // The first EWS step: authentication steps (the challenge, a sign-in) come before it.
    match r
        .steps
        .iter()
        .find(|s| s.kind == crate::evidence::StepKind::Ews)
    {
        None => (
            "not_sent".into(),
            "no EWS request was sent (no EWS URL)".into(),
            0.0,
            false,
        ),
        Some(s) => {
            let refused = matches!(s.http_status, Some(401 | 403));
            let word = match s.outcome {
                Outcome::Pass => "accepted",
                _ if refused => "refused",
                Outcome::Skip => "not_sent",
                Outcome::Fail => "failed",
            };
            (word.into(), s.detail.clone(), s.duration_ms, refused)
        }
    }
}

fn ews_steps(r: &Report) -> impl Iterator<Item = &crate::report::StepReport> {
    r.steps
        .iter()
        .filter(|s| s.kind == crate::evidence::StepKind::Ews)
}

fn features_line(r: &Report) -> String {
    let ok = r
        .features
        .iter()
        .filter(|f| {
            matches!(
                f.status,
                diagnose::FeatureStatus::Available | diagnose::FeatureStatus::Degraded
            )
        })
        .count();
    format!("{ok} of {} features available", r.features.len())
}

fn status_word(s: Status) -> String {
    s.label().to_ascii_lowercase()
}

/// Builds the timeline from the two runs; `to_start` is when the switch happened.
pub fn build(
    from: Report,
    from_auth: AuthMode,
    to: Report,
    to_auth: AuthMode,
    to_start: f64,
    title: Option<String>,
) -> SwitchReport {
    let mut t = Vec::new();
    let (word, detail, conn_ms, _) = connectivity(&from);
    let from_ok = word == "accepted";
    t.push(Event {
        at_ms: 0.0,
        duration_ms: conn_ms,
        mailbox: from.mailbox.clone(),
        step: "sign_in",
        title: format!(
            "sign in to {} ({}): EWS connectivity (GetFolder msgfolderroot)",
            from.mailbox,
            to_auth_str(from_auth)
        ),
        result: word,
        detail,
        logout: false,
    });
    if ews_steps(&from).count() > 1 {
        t.push(Event {
            at_ms: conn_ms,
            duration_ms: (from.duration_ms - conn_ms).max(0.0),
            mailbox: from.mailbox.clone(),
            step: "features",
            title: format!("{}: feature checks", from.mailbox),
            result: status_word(from.status),
            detail: features_line(&from),
            logout: false,
        });
    }
    t.push(Event {
        at_ms: to_start,
        duration_ms: 0.0,
        mailbox: to.mailbox.clone(),
        step: "switch",
        title: format!(
            "switch to {}: the integration presents its credentials ({})",
            to.mailbox,
            to_auth_str(to_auth)
        ),
        result: "done".into(),
        detail: String::new(),
        logout: false,
    });
    let (word, mut detail, to_conn, refused) = connectivity(&to);
    let logout = refused && from_ok;
    if refused {
        detail = format!("{detail} → {LOGOUT}");
    }
    t.push(Event {
        at_ms: to_start,
        duration_ms: to_conn,
        mailbox: to.mailbox.clone(),
        step: "connectivity",
        title: format!("EWS connectivity for {}", to.mailbox),
        result: word,
        detail,
        logout: refused,
    });
    if ews_steps(&to).count() > 1 && ews_steps(&to).skip(1).any(|s| s.outcome != Outcome::Skip) {
        t.push(Event {
            at_ms: to_start + to_conn,
            duration_ms: (to.duration_ms - to_conn).max(0.0),
            mailbox: to.mailbox.clone(),
            step: "features",
            title: format!("{}: feature checks", to.mailbox),
            result: status_word(to.status),
            detail: features_line(&to),
            logout: false,
        });
    }
    let remedy = to
        .diagnoses
        .first()
        .map(|d| format!(" — remedy: {}", d.remedy))
        .unwrap_or_default();
    t.push(Event {
        at_ms: to_start + to.duration_ms,
        duration_ms: 0.0,
        mailbox: to.mailbox.clone(),
        step: "diagnosis",
        title: format!("diagnosis for {}", to.mailbox),
        result: status_word(to.status),
        detail: format!("{}{remedy}", to.headline()),
        logout: false,
    });
    let status = from.status.max(to.status);
    SwitchReport {
        schema: SCHEMA,
        title,
        from,
        to,
        timeline: t,
        logout_reproduced: logout,
        status,
        exit_code: status.exit_code(),
        expect: None,
    }
}

fn to_auth_str(m: AuthMode) -> &'static str {
    m.as_str()
}

impl SwitchReport {
    /// `-w/-c` on both sides' step latencies; the status is again the worse side's.
    pub fn apply_thresholds(&mut self, th: &crate::report::range::Thresholds) {
        th.apply(&mut self.from);
        th.apply(&mut self.to);
        self.status = self.from.status.max(self.to.status);
        self.exit_code = self.status.exit_code();
    }

    pub fn render(&self, format: Format, color: bool) -> String {
        match format {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
                s.push('\n');
                s
            }
            Format::Text => self.render_text(color),
            Format::Nagios => {
                let what = if self.logout_reproduced {
                    format!(
                        "logout reproduced: EWS refused {} after {} was accepted",
                        self.to.mailbox, self.from.mailbox
                    )
                } else {
                    format!("switch {} -> {}", self.from.mailbox, self.to.mailbox)
                };
                format!(
                    "EWS {} - {}: {} | {}\n",
                    self.status.label(),
                    what.replace('|', "/"),
                    crate::util::truncate_for_display(&self.to.headline().replace('|', "/"), 200),
                    crate::report::nagios::perfdata(&self.to)
                )
            }
            Format::Prometheus => crate::report::prometheus::render_labeled(&[
                (&self.from, Some(("role", "from"))),
                (&self.to, Some(("role", "to"))),
            ]),
        }
    }

    fn render_text(&self, color: bool) -> String {
        let paint = |code: &str, s: &str| {
            if color {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let mut out = format!(
            "Switch {} → {} (logout-on-switch, one session)\n",
            self.from.mailbox, self.to.mailbox
        );
        if let Some(t) = &self.title {
            out.push_str(&format!("{t}\n"));
        }
        out.push('\n');
        for e in &self.timeline {
            let result = e.result.to_ascii_uppercase();
            let shown = match e.result.as_str() {
                "accepted" | "ok" | "done" => paint("32", &result),
                "warning" => paint("33", &result),
                _ => paint("31", &result),
            };
            out.push_str(&format!(
                "  +{:>8.1} ms  {:<9} {}\n",
                e.at_ms, shown, e.title
            ));
            let (main, logout) = match e.detail.split_once(" → ") {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (e.detail.clone(), None),
            };
            if !main.is_empty() {
                let took = if e.duration_ms > 0.0 {
                    format!(" ({:.1} ms)", e.duration_ms)
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "               {:<9} {}{took}\n",
                    "",
                    crate::util::truncate_for_display(&main, 300)
                ));
            }
            if let Some(l) = logout {
                out.push_str(&format!(
                    "               {:<9} {}\n",
                    "",
                    paint("1;31", &format!("→ {l}"))
                ));
            }
        }
        out.push_str(&format!(
            "\nLogout reproduced: {}\nStatus: {} (exit {})\n",
            if self.logout_reproduced { "yes" } else { "no" },
            self.status.label(),
            self.exit_code
        ));
        out
    }

    /// Whether a demo scenario reached its expected verdict.
    pub fn check(&self) -> Result<(), String> {
        let Some(e) = &self.expect else {
            return Err("the scenario has no expected verdict".into());
        };
        if self.exit_code != e.exit_code {
            return Err(format!(
                "exit {} instead of {}",
                self.exit_code, e.exit_code
            ));
        }
        if self.logout_reproduced != e.logout {
            return Err(format!(
                "logout reproduced {} instead of {}",
                self.logout_reproduced, e.logout
            ));
        }
        let codes: Vec<&str> = self.to.diagnoses.iter().map(|d| d.code.as_str()).collect();
        if codes != e.to_codes {
            return Err(format!("TO codes {codes:?} instead of {:?}", e.to_codes));
        }
        Ok(())
    }
}

/// A side's settings kept in a file (`--from-profile`, `--to-profile`): where and how to
/// authenticate, and where the secret lives, never the secret itself (unknown keys such as
/// `password` or `token` are refused).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    ews_url: Option<String>,
    auth: Option<AuthMode>,
    user: Option<String>,
    password_env: Option<String>,
    password_file: Option<std::path::PathBuf>,
    token_env: Option<String>,
    token_file: Option<std::path::PathBuf>,
}

/// Fills what the flags left open from the profile, if any.
fn with_profile(
    mut side: SideCreds,
    path: Option<&Path>,
    role: &str,
) -> Result<SideCreds, AppError> {
    let Some(path) = path else {
        return Ok(side);
    };
    let bad = |e: String| AppError::Usage(format!("--{role}-profile {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let p: Profile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let flags_give_secret = side.password_env.is_some()
        || side.password_file.is_some()
        || side.token_env.is_some()
        || side.token_file.is_some();
    side.ews_url = side.ews_url.or(p.ews_url);
    side.auth = side.auth.or(p.auth);
    side.user = side.user.or(p.user);
    if !flags_give_secret {
        side.password_env = p.password_env;
        side.password_file = p.password_file;
        side.token_env = p.token_env;
        side.token_file = p.token_file;
    }
    Ok(side)
}

/// One side's credentials from its --from-* / --to-* flags. The mode defaults to what the
/// flags imply: a token source means bearer, a password source basic, nothing means none.
fn side_credentials(
    side: &SideCreds,
    mailbox: &Mailbox,
    role: &str,
) -> Result<Credentials, AppError> {
    let has_token = side.token_env.is_some() || side.token_file.is_some();
    let has_password = side.password_env.is_some() || side.password_file.is_some();
    let mode = side.auth.unwrap_or(if has_token {
        AuthMode::Bearer
    } else if has_password {
        AuthMode::Basic
    } else {
        AuthMode::None
    });
    if has_token && mode != AuthMode::Bearer || has_password && mode != AuthMode::Basic {
        return Err(AppError::Usage(format!(
            "--{role}-auth {} does not go with the secret source given for {role}",
            mode.as_str()
        )));
    }
    match mode {
        AuthMode::None => Ok(Credentials::None),
        AuthMode::Basic => {
            let user = crate::app::basic_user(side.user.as_deref(), mailbox)?;
            let src = match (&side.password_env, &side.password_file) {
                (Some(v), _) => SecretSource::Env(v.clone()),
                (_, Some(p)) => SecretSource::File(p.clone()),
                _ => SecretSource::Prompt(format!("Password for {user} ({role}): ")),
            };
            Ok(Credentials::Basic {
                user,
                password: src.read()?,
            })
        }
        AuthMode::Bearer => {
            let src = match (&side.token_env, &side.token_file) {
                (Some(v), _) => SecretSource::Env(v.clone()),
                (_, Some(p)) => SecretSource::File(p.clone()),
                _ => SecretSource::Prompt(format!(
                    "Access token for {} ({role}): ",
                    mailbox.address()
                )),
            };
            Ok(Credentials::Bearer { token: src.read()? })
        }
        other => Err(AppError::Usage(format!(
            "--{role}-auth {} is not available for switch in this version; use basic, bearer or none",
            other.as_str()
        ))),
    }
}

fn now_utc() -> time::OffsetDateTime {
    let n = time::OffsetDateTime::now_utc();
    n.replace_nanosecond(0).unwrap_or(n)
}

/// One live side of the switch; records it when asked.
async fn live_side(
    client: Arc<HttpClient>,
    redactor: Arc<Redactor>,
    mailbox: Mailbox,
    endpoint: Option<url::Url>,
    credentials: Credentials,
    timeout: f64,
    record: Option<&Path>,
) -> Result<Report, AppError> {
    let mut transport = Transport::http(client, redactor.clone(), Duration::from_secs_f64(timeout));
    if let Some(dir) = record {
        transport
            .record_to(dir.to_path_buf())
            .map_err(|e| AppError::Write(dir.display().to_string(), e))?;
    }
    let now = now_utc();
    let cfg = ProbeConfig {
        mailbox: mailbox.clone(),
        endpoint,
        credentials,
        context: RequestContext {
            version: crate::ews::ServerVersion::default(),
            impersonate: None,
        },
        write: false,
        now,
        challenge: None,
    };
    let evidence = probe::run(&cfg, &transport).await;
    let verdict = diagnose::diagnose(&mailbox, &evidence);
    let report = Report::new(&evidence, verdict);
    if let Some(dir) = record {
        let meta = SessionMeta {
            schema: session::SCHEMA.into(),
            mailbox: mailbox.address().to_string(),
            endpoint: evidence.endpoint.clone(),
            auth: cfg.credentials.mode(),
            impersonate: None,
            write: false,
            server_version: cfg.context.version.to_string(),
            started_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            discovery: None,
            title: None,
            expect: None,
        };
        let path = dir.join(META_FILE);
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        std::fs::write(&path, redactor.text(&text))
            .map_err(|e| AppError::Write(path.display().to_string(), e))?;
    }
    Ok(report)
}

/// `ews-probe switch`.
pub async fn run(a: &SwitchArgs) -> Result<SwitchReport, AppError> {
    let mut r = match &a.replay {
        Some(dir) => replay(dir).await?,
        None => live(a).await?,
    };
    r.apply_thresholds(&a.out.thresholds());
    Ok(r)
}

async fn live(a: &SwitchArgs) -> Result<SwitchReport, AppError> {
    let (Some(from), Some(to)) = (&a.from, &a.to) else {
        return Err(AppError::Usage(
            "switch needs FROM and TO (or --replay DIR)".into(),
        ));
    };
    let from = Mailbox::parse(from)?;
    let to = Mailbox::parse(to)?;
    let fs = with_profile(a.side(false), a.from_profile.as_deref(), "from")?;
    let ts = with_profile(a.side(true), a.to_profile.as_deref(), "to")?;
    let ep = |s: &SideCreds| {
        s.ews_url
            .as_deref()
            .map(|u| crate::app::endpoint(u, &a.net.resolve))
            .transpose()
    };
    let (from_ep, to_ep) = (ep(&fs)?, ep(&ts)?);
    let from_creds = side_credentials(&fs, &from, "from")?;
    let to_creds = side_credentials(&ts, &to, "to")?;
    let (from_auth, to_auth) = (from_creds.mode(), to_creds.mode());
    let mut redactor = Redactor::default();
    from_creds.register_secrets(&mut redactor);
    to_creds.register_secrets(&mut redactor);
    let redactor = Arc::new(redactor);
    let opts = crate::app::http_options(&a.net);
    // One client: one session, as the integration keeps its connections across the switch.
    let client = Arc::new(HttpClient::new(&opts)?);
    let rec = |side: &str| a.record.as_ref().map(|d| d.join(side));
    let t0 = Instant::now();
    let from_r = live_side(
        client.clone(),
        redactor.clone(),
        from,
        from_ep,
        from_creds,
        a.net.timeout,
        rec("from").as_deref(),
    )
    .await?;
    let to_start = ms(t0.elapsed());
    let to_r = live_side(
        client,
        redactor,
        to,
        to_ep,
        to_creds,
        a.net.timeout,
        rec("to").as_deref(),
    )
    .await?;
    if let Some(dir) = &a.record {
        let meta = SwitchMeta {
            schema: session::SCHEMA.into(),
            kind: session::KIND_SWITCH.into(),
            title: None,
            to_start_ms: Some(to_start),
            expect: None,
        };
        let path = dir.join(META_FILE);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&meta).unwrap_or_default(),
        )
        .map_err(|e| AppError::Write(path.display().to_string(), e))?;
    }
    Ok(build(from_r, from_auth, to_r, to_auth, to_start, None))
}

/// Runs a switch bundle: `session.json` of kind switch, and the two sides' bundles.
async fn run_switch_bundle(
    meta: SwitchMeta,
    from: Bundle,
    to: Bundle,
) -> Result<SwitchReport, AppError> {
    let (fr, fm) = crate::app::run_bundle(&from).await?;
    let (tr, tm) = crate::app::run_bundle(&to).await?;
    // Replayed time: TO starts when FROM's recorded run ended.
    let to_start = meta
        .to_start_ms
        .unwrap_or(fr.duration_ms)
        .max(fr.duration_ms);
    let mut r = build(fr, fm.auth, tr, tm.auth, to_start, meta.title);
    r.expect = meta.expect;
    Ok(r)
}

/// Whether `dir` holds a switch bundle (its `session.json` has `"kind": "switch"`).
pub fn is_switch_bundle(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(META_FILE)).is_ok_and(|t| session::is_switch(&t))
}

/// `switch --replay DIR` (and `replay DIR` on a switch bundle).
pub async fn replay(dir: &Path) -> Result<SwitchReport, AppError> {
    let path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        AppError::Usage(format!(
            "{} is not a switch bundle: cannot read {}: {e}",
            dir.display(),
            path.display()
        ))
    })?;
    let meta = SwitchMeta::parse(&dir.display().to_string(), &text)?;
    let from = Bundle::load(&dir.join("from"))?;
    let to = Bundle::load(&dir.join("to"))?;
    run_switch_bundle(meta, from, to).await
}

/// A built-in demo scenario of kind switch, run; `None` when the scenario is not a switch.
pub async fn demo(name: &str) -> Result<Option<SwitchReport>, AppError> {
    let Some(files) = crate::app::embedded_scenario(name) else {
        return Ok(None);
    };
    let Some((_, meta_text)) = files.iter().find(|(n, _)| *n == META_FILE) else {
        return Ok(None);
    };
    if !session::is_switch(meta_text) {
        return Ok(None);
    }
    let origin = format!("demo scenario {name}");
    let meta = SwitchMeta::parse(&origin, meta_text)?;
    let side = |prefix: &str| -> Result<Bundle, AppError> {
        let sub: Vec<(&str, &str)> = files
            .iter()
            .filter_map(|(n, t)| n.strip_prefix(prefix).map(|n| (n, *t)))
            .collect();
        Ok(Bundle::from_embedded(
            &format!("{origin} ({prefix})"),
            &sub,
        )?)
    };
    let (from, to) = (side("from/")?, side("to/")?);
    Ok(Some(run_switch_bundle(meta, from, to).await?))
}
