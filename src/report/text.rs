//! `--format text`: the report for a person. Discovery, network and authentication steps
//! (realm, Autodiscover, the challenge, the sign-in) in order, then the connectivity check, then the feature checks
//! that ran concurrently under it (a tree), each with status and timing; then the verdict per
//! feature, the diagnoses with evidence and remedy, and the status line. Colour only when the
//! caller says so (a terminal, and `NO_COLOR` unset).

use super::{Report, StepReport};
use crate::diagnose::{FeatureStatus, Status};
use crate::evidence::{Outcome, StepKind};

struct Paint {
    on: bool,
}

impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn status(&self, st: Status) -> String {
        let code = match st {
            Status::Ok => "32",
            Status::Warning => "33",
            Status::Critical => "31;1",
            Status::Unknown => "35",
        };
        self.c(code, st.label())
    }
    fn outcome(&self, o: Outcome) -> String {
        match o {
            Outcome::Pass => self.c("32", "pass"),
            Outcome::Fail => self.c("31;1", "FAIL"),
            Outcome::Skip => self.c("2", "skip"),
        }
    }
    fn dim(&self, s: &str) -> String {
        self.c("2", s)
    }
}

/// Wraps text to `width` columns with an indent for continuation lines.
fn wrap(s: &str, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut col = indent;
    for word in s.split_whitespace() {
        let w = word.chars().count();
        if col > indent && col + 1 + w > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else if col > indent {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
    }
    out
}

fn step_line(p: &Paint, s: &StepReport, prefix: &str, id_width: usize) -> String {
    let mut line = format!("{prefix}{} {:<id_width$}", p.outcome(s.outcome), s.id,);
    if s.outcome != Outcome::Skip {
        line.push_str(&format!(" {:>9}", format!("{:.1} ms", s.duration_ms)));
    }
    line.push_str("  ");
    line.push_str(&s.detail);
    if s.attempts > 1 {
        line.push_str(&p.dim(&format!(" ({} attempts)", s.attempts)));
    }
    line.push('\n');
    if s.outcome == Outcome::Fail {
        let pad: String = prefix
            .chars()
            .map(|c| if c == '├' || c == '│' { '│' } else { ' ' })
            .collect();
        for (k, v) in &s.headers {
            line.push_str(&format!("{pad}       {}\n", p.dim(&format!("{k}: {v}"))));
        }
    }
    line
}

pub fn render(r: &Report, color: bool) -> String {
    let p = Paint { on: color };
    let mut out = String::new();
    out.push_str(&format!(
        "ews-probe {}  {}\n",
        r.tool_version,
        p.c("1", &r.mailbox)
    ));
    let kind = serde_json::to_value(r.account.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    out.push_str(&format!(
        "  account   {kind}{}\n",
        if r.account.basis.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.account.basis.join("; "))
        }
    ));
    out.push_str(&format!(
        "  endpoint  {}\n\n",
        r.endpoint.as_deref().unwrap_or("(none)")
    ));

    // Discovery and network steps come first, one after the other; then the EWS tree.
    let found: Vec<&StepReport> = r.steps.iter().filter(|s| s.kind != StepKind::Ews).collect();
    if !found.is_empty() {
        out.push_str(&p.c("1", "Discovery\n"));
        let w = found.iter().map(|s| s.id.len()).max().unwrap_or(10);
        for s in &found {
            out.push_str(&step_line(&p, s, "  ", w));
        }
        out.push('\n');
    }
    let ews: Vec<StepReport> = r
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Ews)
        .cloned()
        .collect();
    if let Some((first, rest)) = ews.split_first() {
        out.push_str(&p.c("1", "Steps\n"));
        let id_width = ews.iter().map(|s| s.id.len()).max().unwrap_or(10);
        out.push_str(&step_line(&p, first, "  ", id_width));
        let skipped: Vec<&StepReport> =
            rest.iter().filter(|s| s.outcome == Outcome::Skip).collect();
        if !rest.is_empty() && skipped.len() == rest.len() && rest.len() > 2 {
            out.push_str(&format!(
                "  └─ {} {} feature checks: {}\n",
                p.outcome(Outcome::Skip),
                rest.len(),
                rest[0].detail.trim_start_matches("skipped: ")
            ));
        } else if !rest.is_empty() {
            out.push_str(&format!("  └─ {}\n", p.dim("feature checks (concurrent)")));
            let nested_width = rest.iter().map(|s| s.id.len()).max().unwrap_or(10);
            for (i, s) in rest.iter().enumerate() {
                let branch = if i + 1 == rest.len() {
                    "     └─ "
                } else {
                    "     ├─ "
                };
                out.push_str(&step_line(&p, s, branch, nested_width));
            }
        }
        out.push('\n');
    }
    finish(r, &p, out)
}

/// Features, diagnoses and the status line.
fn finish(r: &Report, p: &Paint, mut out: String) -> String {
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(&p.c("1", "Features\n"));
    for f in &r.features {
        let (label, code) = match f.status {
            FeatureStatus::Available => ("available", "32"),
            FeatureStatus::Degraded => ("degraded", "33"),
            FeatureStatus::Unavailable => ("unavailable", "31;1"),
            FeatureStatus::Untested => ("untested", "35"),
        };
        out.push_str(&format!(
            "  {:<20} {}  {}\n",
            f.name,
            p.c(code, &format!("{label:<11}")),
            wrap(&f.reason, 37, 110)
        ));
    }
    out.push('\n');

    if !r.diagnoses.is_empty() {
        out.push_str(&p.c("1", "Diagnosis\n"));
        for d in &r.diagnoses {
            out.push_str(&format!(
                "  {} {}\n",
                p.status(d.severity),
                p.c("1", d.code.as_str())
            ));
            out.push_str(&format!("    {}\n", wrap(&d.summary, 4, 100)));
            for e in &d.evidence {
                out.push_str(&format!(
                    "    {} {}\n",
                    p.dim("evidence:"),
                    wrap(e, 14, 100)
                ));
            }
            out.push_str(&format!(
                "    {}   {}\n",
                p.c("36", "remedy:"),
                wrap(&d.remedy, 14, 100)
            ));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Status: {} (exit {}) in {:.1} ms\n",
        p.status(r.status),
        r.exit_code,
        r.duration_ms
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_on_words() {
        assert_eq!(wrap("aaa bbb ccc", 2, 9), "aaa bbb\n  ccc");
    }
}
