//! `--format nagios`: a Monitoring Plugins style answer. First line `EWS <STATE> - <headline> |
//! <perfdata>`, then one line per feature (long output). Perfdata is one
//! `'step'=<ms>ms;<warn>;<crit>;0` per step that ran, plus the total.

use super::Report;
use crate::diagnose::{FeatureStatus, Status};
use crate::evidence::Outcome;

/// Quotes a perfdata label (a literal quote is doubled).
fn label(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn perf_value(ms: f64) -> String {
    let v = format!("{ms:.1}");
    v.trim_end_matches(".0").to_string()
}

pub fn perfdata(report: &Report) -> String {
    // Thresholds apply to each step's latency (-w/-c), so each step carries them.
    let (warn, crit) = report
        .thresholds
        .as_ref()
        .map(|t| {
            let s = |r: &Option<super::range::Range>| {
                r.as_ref()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default()
            };
            (s(&t.warning), s(&t.critical))
        })
        .unwrap_or_default();
    let mut parts: Vec<String> = report
        .steps
        .iter()
        .filter(|s| s.outcome != Outcome::Skip)
        .map(|s| {
            // Authentication steps are not judged by the thresholds (see `range.rs`).
            let (w, c) = if s.kind == crate::evidence::StepKind::Auth {
                ("", "")
            } else {
                (warn.as_str(), crit.as_str())
            };
            format!("{}={}ms;{w};{c};0", label(&s.id), perf_value(s.duration_ms))
        })
        .collect();
    parts.push(format!(
        "{}={}ms;;;0",
        label("total"),
        perf_value(report.duration_ms)
    ));
    parts.join(" ")
}

pub fn render(report: &Report) -> String {
    // One line, no '|' (it separates perfdata).
    let headline = crate::util::truncate_for_display(&report.headline().replace('|', "/"), 200);
    let mut out = format!(
        "EWS {} - {}: {} | {}\n",
        report.status.label(),
        report.mailbox.replace('|', "/"),
        headline,
        perfdata(report)
    );
    for f in &report.features {
        let state = match f.status {
            FeatureStatus::Available => Status::Ok,
            FeatureStatus::Degraded => Status::Warning,
            FeatureStatus::Unavailable if report.status == Status::Critical => Status::Critical,
            FeatureStatus::Unavailable => Status::Warning,
            FeatureStatus::Untested => Status::Unknown,
        };
        let status = serde_json::to_value(f.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!(
            "[{}] {}: {} - {}\n",
            state.label(),
            f.name,
            status,
            crate::util::truncate_for_display(&f.reason.replace('|', "/"), 200)
        ));
    }
    for b in &report.latency_breaches {
        out.push_str(&format!("{}\n", b.replace('|', "/")));
    }
    for d in &report.diagnoses {
        out.push_str(&format!(
            "{} {}: remedy: {}\n",
            d.severity.label(),
            d.code.as_str(),
            crate::util::truncate_for_display(&d.remedy.replace('|', "/"), 300)
        ));
    }
    out
}
