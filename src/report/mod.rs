//! The report (DESIGN §4) and one renderer per format. Renderers only format: everything they
//! print is in [`Report`], built from the evidence and the verdict.

pub mod json;
pub mod nagios;
pub mod prometheus;
pub mod range;
pub mod text;

use crate::diagnose::{Account, Diagnosis, FeatureVerdict, Status, Verdict};
use crate::evidence::{Evidence, Outcome, StepKind};
use serde::Serialize;
use std::collections::BTreeMap;

pub const SCHEMA: &str = "ews-probe.report.v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Nagios,
    Prometheus,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub kind: StepKind,
    pub outcome: Outcome,
    pub duration_ms: f64,
    pub http_status: Option<u16>,
    pub response_code: Option<String>,
    pub detail: String,
    pub headers: BTreeMap<String, String>,
    /// Added to the v1 contract: attempts made (more than 1 after throttling).
    pub attempts: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub tool_version: &'static str,
    pub mailbox: String,
    pub account: Account,
    pub endpoint: Option<String>,
    pub status: Status,
    pub exit_code: i32,
    pub diagnoses: Vec<Diagnosis>,
    pub features: Vec<FeatureVerdict>,
    pub steps: Vec<StepReport>,
    pub duration_ms: f64,
    /// When the run finished (Unix seconds), for `ews_probe_last_run_timestamp_seconds`.
    #[serde(skip)]
    pub finished_unix: f64,
    /// Added to the v1 contract: steps whose latency breached `-w/--warning` or
    /// `-c/--critical` (they raised `status`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latency_breaches: Vec<String>,
    /// The thresholds applied, for the Nagios perfdata.
    #[serde(skip)]
    pub thresholds: Option<range::Thresholds>,
}

impl Report {
    pub fn new(ev: &Evidence, v: Verdict) -> Self {
        let steps = ev
            .steps
            .iter()
            .map(|s| StepReport {
                id: s.id.clone(),
                kind: s.kind,
                outcome: s.outcome,
                duration_ms: s.duration_ms,
                http_status: s.status(),
                response_code: s.response_code().map(str::to_string),
                detail: s.detail.clone(),
                headers: s
                    .http
                    .as_ref()
                    .map(|h| {
                        h.headers
                            .iter()
                            .filter(|(k, _)| k.as_str() != "content-type")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                attempts: s.attempts.count,
            })
            .collect();
        Report {
            schema: SCHEMA,
            tool_version: env!("CARGO_PKG_VERSION"),
            mailbox: ev.mailbox.clone(),
            account: v.account,
            endpoint: ev.endpoint.clone(),
            status: v.status,
            exit_code: v.status.exit_code(),
            diagnoses: v.diagnoses,
            features: v.features,
            steps,
            duration_ms: ev.duration_ms,
            finished_unix: time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9,
            latency_breaches: Vec::new(),
            thresholds: None,
        }
    }

    /// The first diagnosis, the one a person should read first.
    pub fn headline(&self) -> String {
        match self.diagnoses.first() {
            Some(d) => format!("{}: {}", d.code.as_str(), d.summary),
            None if !self.latency_breaches.is_empty() => {
                format!("slow: {}", self.latency_breaches[0])
            }
            None if !self.steps.iter().any(|s| s.kind == StepKind::Ews) => match &self.endpoint {
                Some(e) => format!("EWS endpoint {e} (no EWS request sent)"),
                None => "no EWS endpoint".to_string(),
            },
            None => {
                let ok = self
                    .features
                    .iter()
                    .filter(|f| f.status == crate::diagnose::FeatureStatus::Available)
                    .count();
                format!(
                    "{ok} of {} features available over EWS",
                    self.features.len()
                )
            }
        }
    }
}

/// Renders a report in a format.
pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Text => text::render(report, color),
        Format::Json => json::render(report),
        Format::Nagios => nagios::render(report),
        Format::Prometheus => prometheus::render(std::slice::from_ref(report)),
    }
}
