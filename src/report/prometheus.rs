//! `--format prometheus`: Prometheus text exposition (format 0.0.4) for the node_exporter
//! textfile collector, which rejects sample timestamps. One or many reports in one file; every
//! metric has one HELP and TYPE line, and every series a distinct label set.

use super::Report;
use crate::diagnose::FeatureStatus;
use crate::evidence::Outcome;

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A report with an optional extra label (`scenario` in the demo) that keeps series apart
/// when one mailbox appears more than once.
pub type Labeled<'a> = (&'a Report, Option<(&'a str, &'a str)>);

pub fn render(reports: &[Report]) -> String {
    let items: Vec<Labeled> = reports.iter().map(|r| (r, None)).collect();
    render_labeled(&items)
}

fn base_labels(item: &Labeled) -> String {
    let mut l = format!("mailbox=\"{}\"", esc(&item.0.mailbox));
    if let Some((k, v)) = item.1 {
        l.push_str(&format!(",{k}=\"{}\"", esc(v)));
    }
    l
}

pub fn render_labeled(items: &[Labeled]) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, v) in samples {
            out.push_str(&format!("{name}{{{labels}}} {}\n", num(v)));
        }
    };
    metric(
        "ews_probe_status",
        "Probe status as a Nagios code: 0 ok, 1 warning, 2 critical, 3 unknown.",
        items
            .iter()
            .map(|i| (base_labels(i), i.0.exit_code as f64))
            .collect(),
    );
    let mut samples = Vec::new();
    for i in items {
        for f in &i.0.features {
            let up = matches!(f.status, FeatureStatus::Available | FeatureStatus::Degraded);
            samples.push((
                format!("{},feature=\"{}\"", base_labels(i), f.name),
                f64::from(u8::from(up)),
            ));
        }
    }
    metric(
        "ews_probe_feature_available",
        "1 when the feature is available over EWS (degraded counts as available), else 0.",
        samples,
    );
    let mut samples = Vec::new();
    for i in items {
        for s in i.0.steps.iter().filter(|s| s.outcome != Outcome::Skip) {
            samples.push((
                format!("{},step=\"{}\"", base_labels(i), esc(&s.id)),
                s.duration_ms / 1000.0,
            ));
        }
    }
    metric(
        "ews_probe_step_duration_seconds",
        "Duration of each probe step that ran.",
        samples,
    );
    let mut samples = Vec::new();
    for i in items {
        for d in &i.0.diagnoses {
            samples.push((
                format!("{},code=\"{}\"", base_labels(i), d.code.as_str()),
                1.0,
            ));
        }
    }
    metric(
        "ews_probe_diagnosis",
        "1 for each diagnosis code the probe reached.",
        samples,
    );
    metric(
        "ews_probe_last_run_timestamp_seconds",
        "When the probe of this mailbox finished (Unix time).",
        items
            .iter()
            .map(|i| {
                (
                    base_labels(i),
                    (i.0.finished_unix * 1000.0).round() / 1000.0,
                )
            })
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_numbers() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.0415), "0.0415");
    }
}
