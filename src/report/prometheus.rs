//! `--format prometheus`: Prometheus text exposition (format 0.0.4) for the node_exporter
//! textfile collector, which rejects sample timestamps. One or many reports (fleet) in one
//! file; every metric has one HELP and TYPE line.

use super::Report;
use crate::diagnose::FeatureStatus;
use crate::evidence::Outcome;

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

pub fn render(reports: &[Report]) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            out.push_str(&format!("{name}{{{labels}}} {}\n", num(v)));
        }
    };
    let mb = |r: &Report| format!("mailbox=\"{}\"", esc(&r.mailbox));
    metric(
        "ews_probe_status",
        "Probe status as a Nagios code: 0 ok, 1 warning, 2 critical, 3 unknown.",
        "gauge",
        reports.iter().map(|r| (mb(r), r.exit_code as f64)).collect(),
    );
    metric(
        "ews_probe_feature_available",
        "1 when the feature is available over EWS (degraded counts as available), else 0.",
        "gauge",
        reports
            .iter()
            .flat_map(|r| {
                r.features.iter().map(move |f| {
                    (
                        format!("{},feature=\"{}\"", mb(r), f.name),
                        matches!(f.status, FeatureStatus::Available | FeatureStatus::Degraded) as u8 as f64,
                    )
                })
            })
            .collect(),
    );
    metric(
        "ews_probe_step_duration_seconds",
        "Duration of each probe step that ran.",
        "gauge",
        reports
            .iter()
            .flat_map(|r| {
                r.steps.iter().filter(|s| s.outcome != Outcome::Skip).map(move |s| {
                    (
                        format!("{},step=\"{}\"", mb(r), esc(&s.id)),
                        s.duration_ms / 1000.0,
                    )
                })
            })
            .collect(),
    );
    metric(
        "ews_probe_diagnosis",
        "1 for each diagnosis code the probe reached.",
        "gauge",
        reports
            .iter()
            .flat_map(|r| {
                r.diagnoses
                    .iter()
                    .map(move |d| (format!("{},code=\"{}\"", mb(r), d.code.as_str()), 1.0))
            })
            .collect(),
    );
    metric(
        "ews_probe_last_run_timestamp_seconds",
        "When the probe of this mailbox finished (Unix time).",
        "gauge",
        reports.iter().map(|r| (mb(r), (r.finished_unix * 1000.0).round() / 1000.0)).collect(),
    );
    out
}
