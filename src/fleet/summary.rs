//! The end-of-run summary: counts per status, per diagnosis code, per feature and status,
//! and the worst status (the fleet's exit code, DESIGN §5). Built from the JSON reports, so a
//! resumed run counts what the earlier run wrote the same way.

use crate::diagnose::Status;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Summary {
    pub reports: u64,
    /// Of those, read from the output of an earlier run (`--resume`).
    pub resumed: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_code: BTreeMap<String, u64>,
    /// feature → status → count.
    pub by_feature: BTreeMap<String, BTreeMap<String, u64>>,
    pub invalid: u64,
    pub duplicates: u64,
    /// Mailboxes not started because the run was interrupted.
    pub not_started: u64,
    worst: Option<Status>,
}

fn status_of(s: &str) -> Status {
    match s {
        "ok" => Status::Ok,
        "warning" => Status::Warning,
        "critical" => Status::Critical,
        _ => Status::Unknown,
    }
}

impl Summary {
    /// Counts one report as read back from an output (DESIGN §4 JSON; `--resume`).
    pub fn add(&mut self, r: &serde_json::Value) {
        fn str_of<'a>(v: &'a serde_json::Value, k: &str) -> Option<&'a str> {
            v.get(k).and_then(|s| s.as_str())
        }
        let list = |k: &str| r.get(k).and_then(|d| d.as_array()).into_iter().flatten();
        self.tally(
            str_of(r, "status").unwrap_or("unknown"),
            list("diagnoses").filter_map(|d| str_of(d, "code")),
            list("features").filter_map(|f| Some((str_of(f, "name")?, str_of(f, "status")?))),
        );
    }

    /// Counts one report of this run, without going through JSON (the same names as its
    /// serialization: a test holds the two paths equal on every demo scenario).
    pub fn add_report(&mut self, r: &crate::report::Report) {
        self.tally(
            r.status.as_str(),
            r.diagnoses.iter().map(|d| d.code.as_str()),
            r.features.iter().map(|f| (f.name, f.status.as_str())),
        );
    }

    fn tally<'a>(
        &mut self,
        status: &str,
        codes: impl Iterator<Item = &'a str>,
        features: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        self.reports += 1;
        *self.by_status.entry(status.to_string()).or_default() += 1;
        self.raise(status_of(status));
        for c in codes {
            *self.by_code.entry(c.to_string()).or_default() += 1;
        }
        for (n, s) in features {
            *self
                .by_feature
                .entry(n.to_string())
                .or_default()
                .entry(s.to_string())
                .or_default() += 1;
        }
    }

    pub fn raise(&mut self, s: Status) {
        self.worst = Some(self.worst.map_or(s, |w| w.max(s)));
    }

    /// The fleet's status: the worst report; an invalid input line or an interrupted run is
    /// at least unknown (critical > warning > unknown > ok); nothing probed at all is unknown.
    pub fn status(&self) -> Status {
        let mut s = self.worst.unwrap_or(Status::Unknown);
        if self.invalid > 0 || self.not_started > 0 {
            s = s.max(Status::Unknown);
        }
        s
    }

    pub fn count(&self, status: &str) -> u64 {
        self.by_status.get(status).copied().unwrap_or(0)
    }

    /// For people (stderr, or stdout with `--format text`).
    pub fn render_text(&self, elapsed: std::time::Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let new = self.reports - self.resumed;
        let mut s = format!(
            "fleet: {} reports ({new} probed in {secs:.2} s, {:.1}/s{}); not probed: {} invalid, {} duplicate{}\n",
            self.reports,
            if secs > 0.0 { new as f64 / secs } else { 0.0 },
            if self.resumed > 0 {
                format!("; {} from the earlier output", self.resumed)
            } else {
                String::new()
            },
            self.invalid,
            self.duplicates,
            if self.not_started > 0 {
                format!(
                    ", {} not started (interrupted; run again with --resume)",
                    self.not_started
                )
            } else {
                String::new()
            }
        );
        let join = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let statuses: Vec<String> = ["ok", "warning", "critical", "unknown"]
            .iter()
            .map(|k| format!("{k} {}", self.count(k)))
            .collect();
        s.push_str(&format!("  status     {}\n", statuses.join(", ")));
        if !self.by_code.is_empty() {
            let mut codes: Vec<_> = self.by_code.iter().collect();
            codes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let codes: Vec<String> = codes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s.push_str(&format!("  diagnoses  {}\n", codes.join(", ")));
        }
        // Features in report order (DESIGN §2), then any others.
        let order = [
            "email_tracking",
            "send_later",
            "insert_availability",
            "calendar_sync",
        ];
        let mut features: Vec<_> = self.by_feature.iter().collect();
        features.sort_by_key(|(f, _)| order.iter().position(|o| o == f).unwrap_or(order.len()));
        for (f, m) in features {
            s.push_str(&format!("  {f:<20} {}\n", join(m)));
        }
        let st = self.status();
        s.push_str(&format!("  exit {} ({})\n", st.exit_code(), st.label()));
        s
    }

    /// `--format nagios`: one status line with counts as perfdata.
    pub fn render_nagios(&self) -> String {
        let st = self.status();
        let mut s = format!(
            "EWS {} - fleet of {}: {} ok, {} warning, {} critical, {} unknown; {} invalid, {} duplicate |",
            st.label(),
            self.reports,
            self.count("ok"),
            self.count("warning"),
            self.count("critical"),
            self.count("unknown"),
            self.invalid,
            self.duplicates
        );
        for k in ["ok", "warning", "critical", "unknown"] {
            s.push_str(&format!(" '{k}'={};;;0", self.count(k)));
        }
        s.push_str(&format!(" 'invalid'={};;;0\n", self.invalid));
        for (k, v) in &self.by_code {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The live path (`add_report`) and the resume path (`add` on the JSON) count the same
    /// names, on every demo scenario's report.
    #[tokio::test]
    async fn a_report_counts_as_its_json_does() {
        let (mut live, mut read) = (Summary::default(), Summary::default());
        for name in crate::app::scenarios() {
            let bundle = crate::app::scenario_bundle(name).unwrap();
            // The switch scenario is a pair of sessions, not one probe: not a fleet line.
            let Ok((report, _)) = crate::app::run_bundle(&bundle).await else {
                assert!(name.starts_with("switch"), "{name}");
                continue;
            };
            live.add_report(&report);
            read.add(&serde_json::to_value(&report).unwrap());
        }
        assert!(live.reports >= 10 && !live.by_code.is_empty());
        assert_eq!(format!("{live:?}"), format!("{read:?}"));
    }

    #[test]
    fn counts_and_worst_status() {
        let mut s = Summary::default();
        assert_eq!(s.status(), Status::Unknown);
        s.add(&json!({"status":"ok","diagnoses":[],"features":[{"name":"send_later","status":"available"}]}));
        assert_eq!(s.status(), Status::Ok);
        s.add(
            &json!({"status":"critical","diagnoses":[{"code":"consumer_account_no_ews"}],
                      "features":[{"name":"send_later","status":"unavailable"}]}),
        );
        s.add(&json!({"status":"warning","diagnoses":[{"code":"throttled"}],"features":[]}));
        assert_eq!(s.status(), Status::Critical);
        assert_eq!(s.by_code["consumer_account_no_ews"], 1);
        assert_eq!(s.by_feature["send_later"]["available"], 1);
        assert_eq!(s.by_feature["send_later"]["unavailable"], 1);
        let mut t = Summary::default();
        t.add(&json!({"status":"ok"}));
        t.invalid = 1;
        assert_eq!(t.status(), Status::Unknown);
        t.add(&json!({"status":"warning"}));
        assert_eq!(t.status(), Status::Warning);
        assert!(
            t.render_nagios()
                .starts_with("EWS WARNING - fleet of 2: 1 ok, 1 warning")
        );
    }
}
