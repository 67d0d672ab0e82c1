//! The check runner: builds each check's request, sends it through the transport, and turns
//! what came back into a [`Step`] of evidence. It judges nothing beyond pass/fail of a step;
//! meaning is [`crate::diagnose`]'s job.

pub mod plan;

use crate::auth::Credentials;
use crate::evidence::{Evidence, Failure, HttpFacts, Outcome, Step, StepKind};
use crate::ews::ops::{
    create_item::CreateDraft, delete_item::HardDelete, find_item, get_folder::GetFolder,
    get_user_availability::GetUserAvailability, sync_folder_items::SyncFolderItems,
};
use crate::ews::response::{self, BodyError, SoapResponse};
use crate::ews::{Envelope, RequestContext};
use crate::target::Mailbox;
use crate::transport::retry::{self, Verdict};
use crate::transport::{Header, HttpRequest, HttpResponse, Method, Transport, TransportError};
use plan::{Check, CheckOp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// What one probe run needs.
#[derive(Debug)]
pub struct ProbeConfig {
    pub mailbox: Mailbox,
    /// `None` when no EWS URL is known: no EWS request is made.
    pub endpoint: Option<url::Url>,
    pub credentials: Credentials,
    pub context: RequestContext,
    pub write: bool,
    /// The instant the calendar and availability windows start from.
    pub now: OffsetDateTime,
    /// A fleet's one challenge step for this endpoint URL: the first probe to need it sends
    /// the GET, the others of the run reuse what it observed. `None`: this probe sends its own.
    pub challenge: Option<std::sync::Arc<tokio::sync::OnceCell<Step>>>,
}

/// The challenge step: this probe's own, or the run's one for the endpoint. Only an answer
/// from the server is shared; a failed attempt is this probe's alone (the next one tries).
async fn challenge_step(cfg: &ProbeConfig, t: &Transport, endpoint: &url::Url) -> Step {
    let Some(cell) = &cfg.challenge else {
        return crate::auth::challenge::run(t, endpoint).await;
    };
    let mut mine: Option<Step> = None;
    let slot = &mut mine;
    let shared = cell
        .get_or_try_init(move || async move {
            let st = crate::auth::challenge::run(t, endpoint).await;
            *slot = Some(st.clone());
            if st.http.is_some() { Ok(st) } else { Err(()) }
        })
        .await
        .ok()
        .cloned();
    match (mine, shared) {
        (Some(st), _) => st,
        (None, Some(mut st)) => {
            st.duration_ms = 0.0;
            st.detail = format!(
                "observed once for this endpoint in this run (no request for this mailbox): {}",
                st.detail
            );
            st
        }
        (None, None) => crate::auth::challenge::run(t, endpoint).await,
    }
}

/// EWS codes that mean "the server is busy, come back later".
const TRANSIENT_CODES: &[&str] = &[
    "ErrorServerBusy",
    "ErrorInternalServerTransientError",
    "ErrorExceededConnectionCount",
    "ErrorTooManyObjectsOpened",
];

/// The outcome of one attempt, with the body read once.
struct Observed {
    outcome: Result<HttpResponse, TransportError>,
    parsed: Option<Result<SoapResponse, BodyError>>,
}

fn observe(outcome: Result<HttpResponse, TransportError>) -> (Observed, Verdict) {
    let parsed = outcome
        .as_ref()
        .ok()
        .map(|r| response::parse(r.header("content-type"), &r.body));
    let verdict = match (&outcome, &parsed) {
        (Ok(r), _) if r.status == 503 || r.status == 429 => Verdict::Transient {
            hint: retry::retry_after(r),
        },
        (Ok(_), Some(Ok(soap))) if soap.codes().any(|c| TRANSIENT_CODES.contains(&c)) => {
            Verdict::Transient {
                hint: soap.back_off_ms().map(Duration::from_millis),
            }
        }
        (Err(e), _)
            if e.kind == crate::transport::FailureKind::Connect
                && (e.message.contains("reset") || e.message.contains("closed")) =>
        {
            Verdict::Transient { hint: None }
        }
        _ => Verdict::Final,
    };
    (Observed { outcome, parsed }, verdict)
}

fn envelope_for(cfg: &ProbeConfig, op: CheckOp) -> Option<Envelope> {
    let ctx = &cfg.context;
    let env = match op {
        CheckOp::GetFolder(f) => Envelope::new(ctx, &GetFolder::distinguished(f)),
        CheckOp::FindItemIndexed(f) => Envelope::new(
            ctx,
            &find_item::FindItem {
                folder: f,
                mailbox: None,
                view: find_item::View::IndexedPage { max: 1 },
            },
        ),
        CheckOp::FindItemCalendarView => Envelope::new(
            ctx,
            &find_item::FindItem {
                folder: "calendar",
                mailbox: None,
                view: find_item::View::Calendar {
                    start: cfg.now,
                    end: cfg.now + time::Duration::days(7),
                    max: 1,
                },
            },
        ),
        CheckOp::GetUserAvailability => {
            // Whole hours: the availability service works on 30-minute merged intervals.
            let start = cfg
                .now
                .replace_minute(0)
                .and_then(|t| t.replace_second(0))
                .and_then(|t| t.replace_nanosecond(0))
                .unwrap_or(cfg.now);
            Envelope::new(
                ctx,
                &GetUserAvailability {
                    mailbox: cfg.mailbox.address().to_string(),
                    start,
                    end: start + time::Duration::hours(24),
                },
            )
        }
        CheckOp::SyncFolderItems(f) => Envelope::new(
            ctx,
            &SyncFolderItems {
                folder: f,
                mailbox: None,
                max_changes: 1,
            },
        ),
        CheckOp::WriteDraft { deferred_send } => Envelope::new(
            ctx,
            &CreateDraft {
                mailbox: cfg.mailbox.address().to_string(),
                // Far in the future: even if cleanup failed and someone sent the draft,
                // the server would hold it.
                deferred_send: deferred_send.then(|| cfg.now + time::Duration::days(365)),
            },
        ),
    };
    Some(env)
}

/// The request headers of every EWS call.
fn headers(cfg: &ProbeConfig) -> Vec<Header> {
    let mut h = vec![
        Header {
            name: "Content-Type".into(),
            value: "text/xml; charset=utf-8".into(),
            sensitive: false,
        },
        Header {
            name: "Accept".into(),
            value: "text/xml".into(),
            sensitive: false,
        },
        Header {
            name: "client-request-id".into(),
            value: uuid::Uuid::new_v4().to_string(),
            sensitive: false,
        },
        Header {
            name: "return-client-request-id".into(),
            value: "true".into(),
            sensitive: false,
        },
    ];
    // Exchange Online routes OAuth and impersonated requests by this header; without it
    // impersonated calls can fail with 500/503 or take twice as long (Microsoft docs).
    if cfg.context.impersonate.is_some() || cfg.credentials.mode().is_token() {
        h.push(Header {
            name: "X-AnchorMailbox".into(),
            value: cfg
                .context
                .impersonate
                .clone()
                .unwrap_or_else(|| cfg.mailbox.address().to_string()),
            sensitive: false,
        });
    }
    if let Some(a) = cfg.credentials.authorization() {
        h.push(a);
    }
    h
}

/// Sends one EWS request (with the retry policy) and records it as a step.
async fn ews_step(
    cfg: &ProbeConfig,
    t: &Transport,
    endpoint: &url::Url,
    id: &str,
    env: &Envelope,
) -> Step {
    let req = HttpRequest {
        key: id.to_string(),
        method: Method::Post,
        url: endpoint.clone(),
        headers: headers(cfg),
        body: Some(env.to_xml()),
        retryable: env.read_only,
    };
    let spent_us = AtomicU64::new(0);
    // NTLM: one request at a time on the authenticated connection.
    let _serial = match &cfg.credentials {
        crate::auth::Credentials::Ntlm(n) => Some(n.serial().await),
        _ => None,
    };
    let started = Instant::now();
    let classify = |outcome: Result<HttpResponse, TransportError>| {
        let elapsed = match &outcome {
            Ok(r) => r.elapsed,
            Err(e) => e.elapsed,
        };
        spent_us.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        observe(outcome)
    };
    let (mut obs, mut attempts) = retry::send(t, &req, classify).await;
    if let crate::auth::Credentials::Ntlm(n) = &cfg.credentials {
        // A 401 after the handshake succeeded: the server closed the authenticated connection
        // and the request went out on a new one. Authenticate that one (the password is known
        // good) and send once more.
        let offered = match &obs.outcome {
            Ok(r) if r.status == 401 => Some(crate::diagnose::offered_schemes(
                &r.header_all("www-authenticate").unwrap_or_default(),
            )),
            _ => None,
        };
        if let Some(offered) = offered.filter(|_| !t.is_replay()) {
            let again = n.handshake(t, endpoint, &offered).await;
            if again.outcome == Outcome::Pass {
                let count = attempts.count;
                (obs, attempts) = retry::send(t, &req, classify).await;
                attempts.count += count;
            }
        }
    }
    drop(_serial);
    // Live: the wall time including back-off waits. Replay: the recorded times and waits.
    let duration = if t.is_replay() {
        Duration::from_micros(spent_us.load(Ordering::Relaxed))
            + Duration::from_millis(attempts.waits_ms.iter().sum())
    } else {
        started.elapsed()
    };
    let redactor = t.redactor();
    let mut step = Step {
        id: id.to_string(),
        kind: StepKind::Ews,
        operation: Some(env.operation),
        outcome: Outcome::Fail,
        duration_ms: crate::util::millis(duration),
        http: None,
        soap: None,
        body_error: None,
        failure: None,
        attempts,
        skipped: None,
        detail: String::new(),
        auth: None,
    };
    match (obs.outcome, obs.parsed) {
        (Err(e), _) => {
            step.detail = redactor.text(&e.to_string());
            let mut f = Failure::from(&e);
            f.message = redactor.text(&f.message);
            step.failure = Some(f);
        }
        (Ok(resp), parsed) => {
            let http = HttpFacts::from_response(&resp);
            let mut detail = format!("HTTP {} {}", http.status, http.reason);
            match parsed {
                Some(Ok(soap)) => {
                    let ok = http.status == 200
                        && soap.fault.is_none()
                        && soap.first_error().is_none()
                        && !soap.messages.is_empty();
                    if let Some(f) = &soap.fault {
                        detail.push_str(&format!(", SOAP fault {}: {}", f.code(), f.faultstring));
                    } else if let Some(m) = soap.first_error() {
                        detail.push_str(&format!(
                            ", {}: {}",
                            m.code.as_deref().unwrap_or("no ResponseCode"),
                            m.text.as_deref().unwrap_or("")
                        ));
                    } else if let Some(m) = soap.messages.first() {
                        detail.push_str(&format!(", {}", m.code.as_deref().unwrap_or("?")));
                    } else {
                        detail.push_str(", SOAP response without a response message");
                    }
                    if ok {
                        step.outcome = Outcome::Pass;
                    }
                    step.soap = Some(soap);
                }
                Some(Err(be)) => {
                    if be == BodyError::Empty {
                        detail.push_str(", empty body");
                    } else {
                        detail.push_str(&format!(", body: {be}"));
                    }
                    step.body_error = Some(be);
                }
                None => {}
            }
            step.detail = redactor.text(detail.trim_end_matches([',', ' ', ':']));
            step.http = Some(http);
        }
    }
    step
}

/// Runs one check: one step, or two for a write check (create, then cleanup).
async fn run_check(
    cfg: &ProbeConfig,
    t: &Transport,
    endpoint: &url::Url,
    check: Check,
) -> Vec<Step> {
    let Some(env) = envelope_for(cfg, check.op) else {
        return Vec::new();
    };
    let step = ews_step(cfg, t, endpoint, check.id, &env).await;
    if !matches!(check.op, CheckOp::WriteDraft { .. }) {
        return vec![step];
    }
    let cleanup = plan::cleanup_id(check.id);
    let created = step
        .soap
        .as_ref()
        .and_then(|s| s.messages.first())
        .and_then(|m| m.item_ids.first())
        .cloned();
    let second = match (step.outcome, created) {
        (Outcome::Pass, Some(item)) => {
            let del = Envelope::new(
                &cfg.context,
                &HardDelete {
                    item_id: item.id,
                    change_key: item.change_key,
                },
            );
            ews_step(cfg, t, endpoint, &cleanup, &del).await
        }
        (Outcome::Pass, None) => {
            let mut s = Step::skipped(
                &cleanup,
                StepKind::Ews,
                Some("DeleteItem"),
                "CreateItem returned no ItemId; the test draft may remain in Drafts".into(),
            );
            s.outcome = Outcome::Fail;
            s
        }
        _ => Step::skipped(
            &cleanup,
            StepKind::Ews,
            Some("DeleteItem"),
            "nothing was created".into(),
        ),
    };
    vec![step, second]
}

/// Whether the feature checks can tell anything after the connectivity check: it passed,
/// or it reached EWS and failed only on that one folder.
fn connectivity_allows_more(s: &Step) -> bool {
    s.outcome == Outcome::Pass
        || (s.status() == Some(200)
            && s.soap
                .as_ref()
                .is_some_and(|x| x.fault.is_none() && !x.messages.is_empty()))
}

/// Runs the plan and returns the evidence.
pub async fn run(cfg: &ProbeConfig, t: &Transport) -> Evidence {
    let started = Instant::now();
    let mut steps = Vec::new();
    let mut challenge_parallel = false;
    if let Some(endpoint) = &cfg.endpoint {
        let all = plan::checks(cfg.write);
        let (first, rest) = all
            .split_first()
            .expect("the plan starts with connectivity");
        // What the server offers before any credential is sent (issue 4).
        // The challenge: what the server offers before any credential is sent (issue 4). NTLM
        // needs its answer to choose the scheme, so it goes first there; otherwise it runs
        // alongside the sign-in and the connectivity check and adds no round trip.
        let ntlm = matches!(cfg.credentials, crate::auth::Credentials::Ntlm(_));
        let mut challenge = None;
        if ntlm {
            challenge = Some(challenge_step(cfg, t, endpoint).await);
        }
        let offered: Vec<String> = match challenge.as_ref().and_then(|s| s.auth.as_ref()) {
            Some(crate::auth::facts::AuthFacts::Challenge(c)) => c.schemes.clone(),
            _ => Vec::new(),
        };
        let main_path = async {
            let mut auth_steps = Vec::new();
            // OAuth: the token first; its errors and claims are judged before any EWS request.
            let mut signed_in = true;
            match &cfg.credentials {
                crate::auth::Credentials::OAuth(o) => {
                    let got = o.acquire(t, cfg.now.unix_timestamp()).await;
                    signed_in = got.usable;
                    auth_steps.extend(got.steps);
                }
                crate::auth::Credentials::Ntlm(n) => {
                    let hs = n.handshake(t, endpoint, &offered).await;
                    signed_in = hs.outcome == Outcome::Pass;
                    auth_steps.push(hs);
                }
                _ => {}
            }
            let (conn, go_on, why) = if signed_in {
                let conn = run_check(cfg, t, endpoint, *first).await;
                let go_on = conn.first().is_some_and(connectivity_allows_more);
                let why = conn
                    .first()
                    .map(|s| format!("connectivity check failed ({})", s.detail))
                    .unwrap_or_default();
                (conn, go_on, why)
            } else {
                let why = "sign-in failed, no EWS request was sent".to_string();
                let op = envelope_for(cfg, first.op).map(|e| e.operation);
                (
                    vec![Step::skipped(first.id, StepKind::Ews, op, why.clone())],
                    false,
                    why,
                )
            };
            (auth_steps, conn, go_on, why)
        };
        let ((auth_steps, conn, go_on, why), challenge) = match challenge {
            Some(c) => (main_path.await, c),
            None => {
                let (m, c) =
                    futures_util::future::join(main_path, challenge_step(cfg, t, endpoint)).await;
                challenge_parallel = true;
                (m, c)
            }
        };
        steps.push(challenge);
        steps.extend(auth_steps);
        steps.extend(conn);
        if go_on {
            let futs = rest.iter().map(|c| run_check(cfg, t, endpoint, *c));
            for group in futures_util::future::join_all(futs).await {
                steps.extend(group);
            }
        } else {
            for c in rest {
                let op = envelope_for(cfg, c.op).map(|e| e.operation);
                steps.push(Step::skipped(c.id, StepKind::Ews, op, why.clone()));
                if matches!(c.op, CheckOp::WriteDraft { .. }) {
                    steps.push(Step::skipped(
                        &plan::cleanup_id(c.id),
                        StepKind::Ews,
                        Some("DeleteItem"),
                        "nothing was created".into(),
                    ));
                }
            }
        }
    }
    let total = if t.is_replay() {
        // Sequential: the authentication steps and the connectivity check; then concurrent.
        let seq = steps
            .iter()
            .position(|s| s.kind == StepKind::Ews)
            .map(|i| i + 1)
            .unwrap_or(steps.len());
        let sequential: f64 = if challenge_parallel {
            // The challenge ran alongside the rest of the sequential part.
            let first = steps.first().map(|s| s.duration_ms).unwrap_or(0.0);
            let others: f64 = steps.iter().take(seq).skip(1).map(|s| s.duration_ms).sum();
            first.max(others)
        } else {
            steps.iter().take(seq).map(|s| s.duration_ms).sum()
        };
        sequential
            + steps
                .iter()
                .skip(seq)
                .map(|s| s.duration_ms)
                .fold(0.0, f64::max)
    } else {
        crate::util::millis(started.elapsed())
    };
    Evidence {
        mailbox: cfg.mailbox.address().to_string(),
        endpoint: cfg.endpoint.as_ref().map(|u| t.redactor().text(u.as_str())),
        auth: cfg.credentials.mode(),
        impersonating: cfg.context.impersonate.is_some(),
        write: cfg.write,
        steps,
        duration_ms: total,
        discovery: None,
    }
}
