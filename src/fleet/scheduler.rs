//! Admission for the fleet: at most `--concurrency` mailboxes in flight overall and at most
//! `--per-endpoint` per EWS endpoint (its origin, scheme://host:port), and a per-endpoint pause
//! when that endpoint says it is busy (ErrorServerBusy's BackOffMilliseconds, or 503/429 with
//! Retry-After). A pause holds back new mailboxes of that endpoint only; the rest of the run
//! goes on, and probes already in flight keep their own retry policy (transport/retry.rs).
//!
//! A mailbox first takes its endpoint's permit, waits out a pause, and only then takes a
//! global permit, so mailboxes queued behind a slow or paused endpoint never hold global
//! slots that other endpoints could use. Tokio's semaphores are fair (FIFO).

use crate::ews::response;
use crate::transport::HttpResponse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Pause after a 503/429 without Retry-After, or ErrorServerBusy without BackOffMilliseconds.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause honoured from one answer (a bad hint must not stall the run).
pub const MAX_PAUSE: Duration = Duration::from_secs(300);

pub struct Endpoint {
    permits: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
    /// The challenge step (`auth.challenge`) observed once per EWS URL of this origin: what an
    /// endpoint offers before any credential is the same for all its mailboxes.
    challenges: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<crate::evidence::Step>>>>,
}

impl Endpoint {
    /// Holds back new mailboxes of this endpoint for `d` (extends, never shortens, a pause).
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d.min(MAX_PAUSE);
        if let Ok(mut p) = self.paused_until.lock()
            && p.is_none_or(|t| t < until)
        {
            *p = Some(until);
        }
    }

    /// The run's one challenge step for `url` (an EWS URL of this endpoint).
    pub fn challenge(&self, url: &url::Url) -> Arc<tokio::sync::OnceCell<crate::evidence::Step>> {
        let mut m = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(url.as_str().to_string()).or_default().clone()
    }

    fn paused_until(&self) -> Option<Instant> {
        self.paused_until
            .lock()
            .ok()
            .and_then(|p| *p)
            .filter(|t| *t > Instant::now())
    }
}

/// The permits a running mailbox holds; dropped when it is done.
pub struct Slot {
    _endpoint: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

pub struct Limits {
    global: Arc<Semaphore>,
    per_endpoint: usize,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
}

/// The key an endpoint is limited by: its origin.
pub fn endpoint_key(url: Option<&url::Url>) -> String {
    url.map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|| "(no endpoint)".into())
}

impl Limits {
    pub fn new(global: usize, per_endpoint: usize) -> Self {
        Limits {
            global: Arc::new(Semaphore::new(global.max(1))),
            per_endpoint: per_endpoint.max(1),
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    pub fn endpoint(&self, key: &str) -> Arc<Endpoint> {
        let mut m = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Endpoint {
                    permits: Arc::new(Semaphore::new(self.per_endpoint)),
                    paused_until: Mutex::new(None),
                    challenges: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// Waits until a mailbox of `ep` may start.
    pub async fn admit(&self, ep: &Endpoint) -> Option<Slot> {
        let e = ep.permits.clone().acquire_owned().await.ok()?;
        while let Some(t) = ep.paused_until() {
            tokio::time::sleep_until(t).await;
        }
        let g = self.global.clone().acquire_owned().await.ok()?;
        Some(Slot {
            _endpoint: e,
            _global: g,
        })
    }
}

/// How long an answer asks its endpoint to be left alone, if it does.
pub fn busy_pause(resp: &HttpResponse) -> Option<Duration> {
    match resp.status {
        503 | 429 => Some(crate::transport::retry::retry_after(resp).unwrap_or(DEFAULT_PAUSE)),
        // ErrorServerBusy comes as a SOAP fault (HTTP 500) or, rarely, a 200 response message.
        500 | 200 => {
            // Cheap test first: most answers are not busy and need no second parse.
            memchr::memmem::find(&resp.body, b"ErrorServerBusy")?;
            let soap = response::parse(resp.header("content-type"), &resp.body).ok()?;
            soap.codes().any(|c| c == "ErrorServerBusy").then(|| {
                soap.back_off_ms()
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_PAUSE)
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status,
            reason: String::new(),
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn busy_answers_give_their_pause() {
        let fault = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/ews/soap_fault/server_busy_short_backoff.xml"
        ))
        .unwrap();
        let ct = [("content-type", "text/xml; charset=utf-8")];
        let p = busy_pause(&resp(500, &ct, &fault)).expect("busy");
        assert!(p > Duration::ZERO && p < Duration::from_secs(5), "{p:?}");
        assert_eq!(
            busy_pause(&resp(503, &[("retry-after", "7")], "")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(busy_pause(&resp(503, &[], "")), Some(DEFAULT_PAUSE));
        assert_eq!(busy_pause(&resp(200, &ct, "<ok/>")), None);
        assert_eq!(busy_pause(&resp(401, &[], "")), None);
    }

    #[tokio::test]
    async fn a_paused_endpoint_holds_back_only_its_own_mailboxes() {
        let l = Limits::new(4, 2);
        let a = l.endpoint("https://a");
        let b = l.endpoint("https://b");
        a.pause(Duration::from_millis(200));
        let t0 = Instant::now();
        let sb = l.admit(&b).await.unwrap();
        assert!(t0.elapsed() < Duration::from_millis(100));
        let sa = l.admit(&a).await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(200));
        drop((sa, sb));
    }

    #[tokio::test]
    async fn caps_hold() {
        let l = Limits::new(3, 2);
        let a = l.endpoint("https://a");
        let s1 = l.admit(&a).await.unwrap();
        let _s2 = l.admit(&a).await.unwrap();
        // The endpoint is full: a third mailbox of it waits.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), l.admit(&a))
                .await
                .is_err()
        );
        let b = l.endpoint("https://b");
        let _s3 = l.admit(&b).await.unwrap();
        // The run is full: another endpoint waits too.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), l.admit(&b))
                .await
                .is_err()
        );
        drop(s1);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), l.admit(&b))
                .await
                .is_ok()
        );
    }
}
