//! The one retry policy (research/security.md RE-1..RE-3, ews-throttling doc): only requests
//! marked retryable (read-only EWS operations), only transient answers (`ErrorServerBusy`,
//! `ErrorInternalServerTransientError`, HTTP 503, a reset connection), at most 3 attempts,
//! exponential back-off with jitter from `backon`, and the server's hint wins: we wait
//! `max(BackOffMilliseconds or Retry-After, own back-off)`. A hint that would pass the run's
//! deadline is not slept: the request stops there and the evidence says `throttled`.

use super::{HttpRequest, HttpResponse, Transport, TransportError};
use backon::{ExponentialBuilder, Retryable};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a response means for retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it: success or a failure that retrying cannot change.
    Final,
    /// Transient; the server may have said how long to wait.
    Transient { hint: Option<Duration> },
}

/// How a request went across its attempts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Attempts {
    pub count: u32,
    /// The back-off waits between attempts, in ms.
    pub waits_ms: Vec<u64>,
    /// Set when a server hint was larger than the time left, so no retry was made.
    pub hint_past_deadline_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    Real,
    Virtual,
}

struct Pending<T>(T, Option<Duration>);

/// Sends a request, retrying transient answers per the policy. `observe` reads each attempt's
/// outcome once (e.g. parses the body) and says whether it is transient; the last observation
/// is returned.
pub async fn send<T, F>(t: &Transport, req: &HttpRequest, observe: F) -> (T, Attempts)
where
    F: Fn(Result<HttpResponse, TransportError>) -> (T, Verdict),
{
    let attempts = Arc::new(Mutex::new(Attempts::default()));
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(if req.retryable { 2 } else { 0 });
    if !t.is_replay() {
        backoff = backoff.with_jitter();
    }
    let clock = t.clock();
    let a1 = attempts.clone();
    let a2 = attempts.clone();
    let op = || async {
        a1.lock().map(|mut a| a.count += 1).ok();
        let (seen, verdict) = observe(t.send(req).await);
        match verdict {
            Verdict::Final => Ok(seen),
            Verdict::Transient { hint } => Err(Pending(seen, hint)),
        }
    };
    let result = op
        .retry(backoff)
        .sleep(move |d: Duration| async move {
            match clock {
                Clock::Real => tokio::time::sleep(d).await,
                Clock::Virtual => tokio::task::yield_now().await,
            }
        })
        .adjust(|p: &Pending<T>, own: Option<Duration>| {
            let own = own?;
            let wait = p.1.map_or(own, |h| h.max(own));
            if wait >= t.remaining() {
                if let Ok(mut a) = a2.lock() {
                    a.hint_past_deadline_ms = Some(wait.as_millis() as u64);
                }
                return None;
            }
            if let Ok(mut a) = a2.lock() {
                a.waits_ms.push(wait.as_millis() as u64);
            }
            Some(wait)
        })
        .await;
    let out = match result {
        Ok(out) => out,
        Err(Pending(out, _)) => out,
    };
    let a = attempts.lock().map(|a| a.clone()).unwrap_or_default();
    (out, a)
}

/// Parses `Retry-After` in seconds (HTTP-dates are rare on EWS and treated as absent).
pub fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    resp.header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
