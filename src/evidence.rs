//! Evidence: facts only. What each step sent and what came back (status, the headers that
//! matter, the SOAP fault or per-message codes, the transport failure, timings, retries). No
//! judgement lives here; [`crate::diagnose`] reads it.

use crate::ews::response::{BodyError, SoapResponse};
use crate::transport::retry::Attempts;
use crate::transport::{FailureKind, HttpResponse, TransportError};
use serde::Serialize;
use std::collections::BTreeMap;

/// Response headers kept as evidence (lower-case). Everything else is dropped: the report
/// must hold what a support engineer needs and nothing that could carry a session.
pub const KEPT_HEADERS: &[&str] = &[
    "www-authenticate",
    "x-ms-diagnostics",
    "request-id",
    "client-request-id",
    "x-feserver",
    "x-beserver",
    "x-backendhttpstatus",
    "x-calculatedbetarget",
    "x-diaginfo",
    "retry-after",
    "x-oauth-enabled",
    "location",
    "content-type",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepKind {
    Dns,
    Tcp,
    Tls,
    Autodiscover,
    Auth,
    Ews,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpFacts {
    pub status: u16,
    pub reason: String,
    /// The kept headers; repeated ones joined with ", ".
    pub headers: BTreeMap<String, String>,
    pub body_bytes: usize,
}

impl HttpFacts {
    pub fn from_response(r: &HttpResponse) -> Self {
        let mut headers = BTreeMap::new();
        for name in KEPT_HEADERS {
            if let Some(v) = r.header_all(name) {
                headers.insert(name.to_string(), v);
            }
        }
        HttpFacts {
            status: r.status,
            reason: r.reason.clone(),
            headers,
            body_bytes: r.body.len(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl From<&TransportError> for Failure {
    fn from(e: &TransportError) -> Self {
        Failure {
            kind: e.kind,
            message: e.message.clone(),
        }
    }
}

/// One step of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    /// The EWS operation, for EWS steps.
    pub operation: Option<&'static str>,
    pub outcome: Outcome,
    pub duration_ms: f64,
    pub http: Option<HttpFacts>,
    pub soap: Option<SoapResponse>,
    /// Why the body could not be read as SOAP, when it could not.
    pub body_error: Option<BodyError>,
    pub failure: Option<Failure>,
    pub attempts: Attempts,
    /// Why the step did not run, for skipped steps.
    pub skipped: Option<String>,
    /// A short factual line for people ("NoError", "HTTP 401 Unauthorized", …).
    pub detail: String,
    /// Authentication facts (challenge, token endpoint answer, token claims).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<crate::auth::facts::AuthFacts>,
}

impl Step {
    /// A step that ran, passed or failed, with no HTTP exchange of its own (a DNS answer, an
    /// SRV lookup, a refusal); callers add `http`/`failure` where they have them.
    pub fn ran(id: String, kind: StepKind, pass: bool, duration_ms: f64, detail: String) -> Self {
        Step {
            id,
            kind,
            operation: None,
            outcome: if pass { Outcome::Pass } else { Outcome::Fail },
            duration_ms,
            http: None,
            soap: None,
            body_error: None,
            failure: None,
            attempts: Attempts::default(),
            skipped: None,
            detail,
            auth: None,
        }
    }

    pub fn skipped(id: &str, kind: StepKind, operation: Option<&'static str>, why: String) -> Self {
        Step {
            id: id.to_string(),
            kind,
            operation,
            outcome: Outcome::Skip,
            duration_ms: 0.0,
            http: None,
            soap: None,
            body_error: None,
            failure: None,
            attempts: Attempts::default(),
            detail: format!("skipped: {why}"),
            skipped: Some(why),
            auth: None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.http.as_ref().map(|h| h.status)
    }

    /// The first EWS code that is not `NoError`: the fault's, else the first error message's.
    pub fn error_code(&self) -> Option<&str> {
        let soap = self.soap.as_ref()?;
        if let Some(f) = &soap.fault {
            return Some(f.code());
        }
        soap.first_error().and_then(|m| m.code.as_deref())
    }

    /// The response code shown in the report: the error code, or the first message's code.
    pub fn response_code(&self) -> Option<&str> {
        self.error_code().or_else(|| {
            self.soap
                .as_ref()
                .and_then(|s| s.messages.first())
                .and_then(|m| m.code.as_deref())
        })
    }

    /// Whether it succeeded only after the server asked us to back off.
    pub fn was_throttled(&self) -> bool {
        self.attempts.count > 1 || self.attempts.hint_past_deadline_ms.is_some()
    }
}

/// Everything one run observed.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub mailbox: String,
    pub endpoint: Option<String>,
    pub auth: crate::auth::AuthMode,
    pub impersonating: bool,
    pub write: bool,
    pub steps: Vec<Step>,
    pub duration_ms: f64,
    /// Realm discovery and Autodiscover facts, when they ran (their steps are in `steps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<crate::discover::Discovery>,
}

impl Evidence {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}
