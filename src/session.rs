//! The description of a recorded run (`session.json` in a bundle): what was probed and how,
//! so `replay` rebuilds the same probe; demo bundles add their expected verdict, which makes
//! `demo` a self-check.

use crate::auth::AuthMode;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "ews-probe.session.v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionMeta {
    pub schema: String,
    pub mailbox: String,
    pub endpoint: Option<String>,
    pub auth: AuthMode,
    #[serde(default)]
    pub impersonate: Option<String>,
    #[serde(default)]
    pub write: bool,
    pub server_version: String,
    /// The probe's clock at the start (RFC 3339); replay uses it for the same requests.
    pub started_at: String,
    /// Set when the run discovered its endpoint: replay runs the same discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expectation>,
}

/// How a recorded run discovered (so replay asks the same questions in the same order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscoveryMeta {
    /// Realm discovery ran.
    pub realm: bool,
    /// Autodiscover ran (the endpoint was not given).
    pub autodiscover: bool,
    #[serde(default)]
    pub trust_hosts: Vec<String>,
}

/// What a demo scenario must reach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Expectation {
    pub exit_code: i32,
    /// Diagnosis codes, in report order.
    pub codes: Vec<String>,
    /// Feature statuses in report order, e.g. ["available", "available", "available", "unavailable"].
    #[serde(default)]
    pub features: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{origin}: session.json: {message}")]
pub struct SessionError {
    pub origin: String,
    pub message: String,
}

impl SessionMeta {
    pub fn parse(origin: &str, text: &str) -> Result<Self, SessionError> {
        let m: SessionMeta = serde_json::from_str(text).map_err(|e| SessionError {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        if m.schema != SCHEMA {
            return Err(SessionError {
                origin: origin.to_string(),
                message: format!("schema '{}' is not {SCHEMA}", m.schema),
            });
        }
        Ok(m)
    }

    pub fn started(&self) -> Result<time::OffsetDateTime, String> {
        time::OffsetDateTime::parse(
            &self.started_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| format!("started_at '{}': {e}", self.started_at))
    }
}

/// `kind` of a switch bundle's `session.json`; a bundle without `kind` is one probe.
pub const KIND_SWITCH: &str = "switch";

/// Whether a `session.json` text describes a switch bundle (`"kind": "switch"`).
pub fn is_switch(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    serde_json::from_str::<Kind>(text).is_ok_and(|k| k.kind.as_deref() == Some(KIND_SWITCH))
}

/// `session.json` of a switch bundle: the two sides are ordinary bundles in `from/` and `to/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchMeta {
    pub schema: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// When the switch happened, in ms after the session started (live recordings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_start_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<SwitchExpectation>,
}

/// What a switch demo scenario must reach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchExpectation {
    pub exit_code: i32,
    /// EWS refused TO with 401/403 after FROM was accepted.
    pub logout: bool,
    /// TO's diagnosis codes, in report order.
    pub to_codes: Vec<String>,
}

impl SwitchMeta {
    pub fn parse(origin: &str, text: &str) -> Result<Self, SessionError> {
        let err = |message: String| SessionError {
            origin: origin.to_string(),
            message,
        };
        let m: SwitchMeta = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        if m.schema != SCHEMA {
            return Err(err(format!("schema '{}' is not {SCHEMA}", m.schema)));
        }
        if m.kind != KIND_SWITCH {
            return Err(err(format!("kind '{}' is not {KIND_SWITCH}", m.kind)));
        }
        Ok(m)
    }
}
