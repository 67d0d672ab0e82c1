//! Admission for the fleet: at most `--concurrency` mailboxes in flight overall and at most
//! `--per-endpoint` per EWS endpoint (its origin, scheme://host:port), and a per-endpoint pause
//! when that endpoint says it is busy (ErrorServerBusy's BackOffMilliseconds, or 503/429 with
//! Retry-After). A pause holds back new mailboxes of that endpoint only; the rest of the run
//! goes on, and probes already in flight keep their own retry policy (transport/retry.rs).
//!
//! A mailbox first takes its endpoint's permit, waits out a pause, and only then takes a
//! global permit, so mailboxes queued behind a slow or paused endpoint never hold global
//! slots that other endpoints could use. Tokio's semaphores are fair (FIFO).
//!
//! A mailbox without an EWS URL is first admitted for its discovery under its domain's key
//! ([`discovery_key`], the same per-endpoint cap), then trades that permit for the discovered
//! endpoint's ([`Limits::trade`]) and runs its checks under that endpoint's cap and pause.
//! No mailbox ever waits for an endpoint permit while it holds a global one (a trade that
//! cannot take the endpoint's permit at once gives its global permit back and queues as a new
//! mailbox would): mailboxes queued endpoint-first and traded ones cannot deadlock.

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

/// The key a mailbox's discovery is limited by: its domain (Autodiscover asks the domain's
/// hosts, and realm discovery is per domain too).
pub fn discovery_key(domain: &str) -> String {
    format!("discover:{}", domain.to_ascii_lowercase())
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

    /// After discovery: gives back the slot's endpoint (domain) permit and takes `ep`'s, the
    /// discovered endpoint's, waiting out its pause. The global permit is kept when `ep` has a
    /// free permit and no pause; otherwise it is given back too and the mailbox is admitted
    /// anew ([`Limits::admit`]'s order), so no one waits for an endpoint holding a global permit.
    pub async fn trade(&self, slot: Slot, ep: &Endpoint) -> Option<Slot> {
        let Slot { _endpoint, _global } = slot;
        drop(_endpoint);
        if ep.paused_until().is_none()
            && let Ok(e) = ep.permits.clone().try_acquire_owned()
        {
            return Some(Slot {
                _endpoint: e,
                _global,
            });
        }
        drop(_global);
        self.admit(ep).await
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
    async fn discovery_runs_under_the_domain_key_then_checks_under_the_discovered_endpoint() {
        let l = Arc::new(Limits::new(3, 1));
        let dom = l.endpoint(&discovery_key("Contoso.Example"));
        assert!(Arc::ptr_eq(&dom, &l.endpoint("discover:contoso.example")));
        let found = l.endpoint("https://outlook.office365.com");
        // Mailbox 1 discovers under the domain key (cap 1): mailbox 2 of the domain waits.
        let s1 = l.admit(&dom).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), l.admit(&dom))
                .await
                .is_err()
        );
        // Mailbox 1 trades for the discovered endpoint: the domain is free again, the global
        // permit is kept (2 of 3 left), and the endpoint's one permit is taken.
        let s1 = l.trade(s1, &found).await.unwrap();
        assert_eq!(l.global.available_permits(), 2);
        let s2 = l.admit(&dom).await.unwrap();
        assert_eq!(l.global.available_permits(), 1);
        // Mailbox 2 found the same endpoint: its cap (1) holds, so it waits for mailbox 1,
        // without a global permit meanwhile.
        let t = tokio::spawn({
            let (l, found) = (l.clone(), found.clone());
            async move { l.trade(s2, &found).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!t.is_finished(), "the discovered endpoint's cap holds");
        assert_eq!(
            l.global.available_permits(),
            2,
            "waits without a global permit"
        );
        drop(s1);
        let s2 = tokio::time::timeout(Duration::from_secs(1), t)
            .await
            .expect("admitted once mailbox 1 is done")
            .unwrap();
        assert_eq!(l.global.available_permits(), 2);
        drop(s2);
        // A paused discovered endpoint is waited out after discovery.
        let s3 = l.admit(&dom).await.unwrap();
        found.pause(Duration::from_millis(150));
        let t0 = Instant::now();
        let _s3 = l.trade(s3, &found).await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn a_trade_never_waits_for_an_endpoint_while_holding_a_global_permit() {
        // One global permit, one per endpoint: mailbox A (URL to E) holds E's permit and
        // waits for the global one; mailbox B (discovered E) holds the global permit. B's
        // trade must give the global permit back, or both wait forever.
        let l = Arc::new(Limits::new(1, 1));
        let dom = l.endpoint(&discovery_key("fabrikam.example"));
        let e = l.endpoint("https://mail.fabrikam.example");
        let b = l.admit(&dom).await.unwrap();
        let a = tokio::spawn({
            let (l, e) = (l.clone(), e.clone());
            async move { l.admit(&e).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let b = tokio::time::timeout(Duration::from_secs(2), async {
            let s = l.trade(b, &e).await;
            a.await.unwrap();
            s
        })
        .await
        .expect("no deadlock");
        assert!(b.is_some());
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
