//! The choke point: every request and response of a probe passes through [`Transport`], so
//! deadlines, the size cap, retries, redaction, tracing and recording happen here once.
//!
//! Two back ends: [`http::HttpClient`] (reqwest, rustls with the OS trust store) and
//! [`replay::Replay`], which serves a recorded bundle so `replay` and `demo` run the very same
//! pipeline offline.

pub mod bundle;
pub mod http;
pub mod httpfile;
pub mod pinned;
pub mod redact;
pub mod replay;
pub mod resolve;
pub mod retry;

use redact::Redactor;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Largest body read from an EWS endpoint; a probe response is a few KB.
pub const DEFAULT_BODY_CAP: usize = 8 * 1024 * 1024;

/// One HTTP request as the probe means it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The step it serves, e.g. `ews.get_folder.drafts`: the replay match key.
    pub key: String,
    pub method: Method,
    pub url: url::Url,
    /// Headers to send; values marked sensitive are never shown unredacted.
    pub headers: Vec<Header>,
    pub body: Option<String>,
    /// Safe to send again (read-only EWS operations).
    pub retryable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

#[derive(Clone)]
pub struct Header {
    pub name: String,
    pub value: String,
    pub sensitive: bool,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sensitive {
            write!(f, "{}: {}", self.name, redact::MASK)
        } else {
            write!(f, "{}: {}", self.name, self.value)
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header that may repeat (`WWW-Authenticate`), joined as the wire allows.
    pub fn header_all(&self, name: &str) -> Option<String> {
        let vals: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!vals.is_empty()).then(|| vals.join(", "))
    }
}

/// Why no response came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The name did not resolve.
    Dns,
    /// TCP connect refused, unreachable, or reset before a response.
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The deadline (`--timeout`) passed.
    Timeout,
    /// The body was larger than the cap.
    TooLarge,
    /// Refused by policy before sending (plain HTTP off loopback …).
    Refused,
    /// A replayed bundle has no exchange for this request.
    NotRecorded,
    /// Anything else the HTTP stack reported.
    Other,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::TooLarge => "too_large",
            FailureKind::Refused => "refused",
            FailureKind::NotRecorded => "not_recorded",
            FailureKind::Other => "other",
        }
    }
    pub fn from_name(s: &str) -> Option<Self> {
        [
            FailureKind::Dns,
            FailureKind::Connect,
            FailureKind::Tls,
            FailureKind::Timeout,
            FailureKind::TooLarge,
            FailureKind::Refused,
            FailureKind::NotRecorded,
            FailureKind::Other,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", kind.name())]
pub struct TransportError {
    pub kind: FailureKind,
    pub message: String,
    pub elapsed: Duration,
}

enum Backend {
    /// Shared: one client (one connection pool) can serve many transports, e.g. a fleet.
    Http(Arc<http::HttpClient>),
    Replay(replay::Replay),
}

/// Writes each exchange of a live run into a bundle directory, redacted.
struct Recorder {
    dir: PathBuf,
    seq: AtomicU32,
}

/// Sees every response as it arrives (the fleet's per-endpoint back-off listens here).
pub type ResponseObserver = Arc<dyn Fn(&HttpResponse) + Send + Sync>;

/// The transport of one run. Cloning is cheap and shares everything (an `Arc` inside), so a
/// helper such as the OAuth client can hold the run's transport without borrowing it.
#[derive(Clone)]
pub struct Transport(Arc<Inner>);

struct Inner {
    backend: Backend,
    redactor: Arc<Redactor>,
    recorder: Option<Recorder>,
    /// Moved only while a person signs in (device code), which `--timeout` does not count.
    deadline: std::sync::Mutex<Instant>,
    observer: Option<ResponseObserver>,
}

/// A response's headers as kept in an [`HttpResponse`]: name, value (a non-UTF-8 value lossily).
pub(crate) fn header_pairs(h: &::http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl Transport {
    /// A transport over a (shared) client whose deadline starts now.
    pub fn http(client: Arc<http::HttpClient>, redactor: Arc<Redactor>, timeout: Duration) -> Self {
        Transport(Arc::new(Inner {
            backend: Backend::Http(client),
            redactor,
            recorder: None,
            deadline: std::sync::Mutex::new(Instant::now() + timeout),
            observer: None,
        }))
    }

    pub fn replay(replay: replay::Replay, redactor: Arc<Redactor>) -> Self {
        Transport(Arc::new(Inner {
            backend: Backend::Replay(replay),
            redactor,
            recorder: None,
            // Replayed time is virtual: no deadline can pass.
            deadline: std::sync::Mutex::new(Instant::now() + Duration::from_secs(86_400)),
            observer: None,
        }))
    }

    /// The transport's own settings, while nothing else holds it yet.
    fn setup(&mut self) -> std::io::Result<&mut Inner> {
        Arc::get_mut(&mut self.0).ok_or_else(|| {
            std::io::Error::other("the transport is already shared; set it up before cloning it")
        })
    }

    /// Records every exchange into `dir` (created if needed). Call before cloning.
    pub fn record_to(&mut self, dir: PathBuf) -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        self.setup()?.recorder = Some(Recorder {
            dir,
            seq: AtomicU32::new(0),
        });
        Ok(())
    }

    /// Calls `f` with every response (before retry decisions are made on it). Call before
    /// cloning.
    pub fn observe_responses(&mut self, f: ResponseObserver) -> std::io::Result<()> {
        self.setup()?.observer = Some(f);
        Ok(())
    }

    pub fn redactor(&self) -> &Redactor {
        &self.0.redactor
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.0.backend, Backend::Replay(_))
    }

    /// Time left before the run's deadline.
    pub fn remaining(&self) -> Duration {
        self.0
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .saturating_duration_since(Instant::now())
    }

    /// Moves the deadline to `left` from now (the device code flow: the wait for a person
    /// is not the probe's time).
    pub fn set_remaining(&self, left: Duration) {
        *self.0.deadline.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now() + left;
    }

    /// Waits for a back-off; a replay only pretends (the wait is still reported).
    pub fn clock(&self) -> retry::Clock {
        if self.is_replay() {
            retry::Clock::Virtual
        } else {
            retry::Clock::Real
        }
    }

    /// Sends one request, once.
    pub async fn send(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let r = &self.0.redactor;
        tracing::info!(target: "ews_probe::http", key = %req.key, "{} {}", req.method.as_str(), r.text(req.url.as_str()));
        if tracing::enabled!(target: "ews_probe::http", tracing::Level::DEBUG) {
            for h in &req.headers {
                let shown = if h.sensitive {
                    r.header("authorization", &h.value)
                } else {
                    r.header(&h.name, &h.value)
                };
                tracing::debug!(target: "ews_probe::http", "> {}: {}", h.name, shown);
            }
            if let Some(b) = &req.body {
                tracing::debug!(target: "ews_probe::http", "> body: {}", r.text(b));
            }
        }
        let outcome = match &self.0.backend {
            Backend::Http(c) => c.send(req, self.remaining(), r).await,
            Backend::Replay(p) => p.next(&req.key),
        };
        match &outcome {
            Ok(resp) => {
                tracing::info!(target: "ews_probe::http", key = %req.key, "<- {} {} in {:.1} ms ({} bytes)", resp.status, resp.reason, crate::util::millis(resp.elapsed), resp.body.len());
                if tracing::enabled!(target: "ews_probe::http", tracing::Level::DEBUG) {
                    for (n, v) in &resp.headers {
                        tracing::debug!(target: "ews_probe::http", "< {}: {}", n, r.header(n, v));
                    }
                    tracing::debug!(target: "ews_probe::http", "< body: {}", r.text(&String::from_utf8_lossy(&resp.body)));
                }
            }
            Err(e) => {
                tracing::info!(target: "ews_probe::http", key = %req.key, "<- failed: {}", r.text(&e.to_string()));
            }
        }
        if let (Some(obs), Ok(resp)) = (&self.0.observer, &outcome) {
            obs(resp);
        }
        if let Some(rec) = &self.0.recorder {
            self.record(rec, req, &outcome);
        }
        outcome
    }

    fn record(
        &self,
        rec: &Recorder,
        req: &HttpRequest,
        outcome: &Result<HttpResponse, TransportError>,
    ) {
        let r = &self.0.redactor;
        let n = rec.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let redacted = outcome.clone().map(|mut resp| {
            resp.headers = resp
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), r.header(k, v)))
                .collect();
            resp.body = r.text(&String::from_utf8_lossy(&resp.body)).into_bytes();
            resp
        });
        let redacted = redacted.map_err(|mut e| {
            e.message = r.text(&e.message);
            e
        });
        let line = format!("{} {}", req.method.as_str(), r.text(req.url.as_str()));
        let text = httpfile::render(&req.key, &line, &redacted);
        let base = rec.dir.join(format!("{n:03}-{}", req.key));
        let mut files = vec![(base.with_extension("http"), text)];
        if let Some(body) = &req.body {
            files.push((
                PathBuf::from(format!("{}.request.xml", base.display())),
                r.text(body),
            ));
        }
        for (path, content) in files {
            if let Err(e) = std::fs::write(&path, content) {
                tracing::warn!("could not record {}: {e}", path.display());
            }
        }
    }
}
