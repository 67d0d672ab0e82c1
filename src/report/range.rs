//! Nagios/Icinga threshold ranges (Monitoring Plugins development guidelines, "Threshold and
//! Ranges"): `[@]start:end`, where `start` may be `~` (negative infinity), an omitted `end` is
//! positive infinity, and a bare `N` means `0:N`. Ends are inclusive. Without `@` a value
//! alerts when it is *outside* the range; with `@`, when it is *inside*.
//!
//! | range | alerts when |
//! |---|---|
//! | `10` | < 0 or > 10 |
//! | `10:` | < 10 |
//! | `~:10` | > 10 |
//! | `10:20` | < 10 or > 20 |
//! | `@10:20` | ≥ 10 and ≤ 20 |
//!
//! Applied by [`Thresholds`] to each step's latency in milliseconds (the unit of the perfdata
//! the thresholds are printed into).

use super::Report;
use crate::diagnose::Status;
use crate::evidence::Outcome;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    start: f64,
    end: f64,
    inside: bool,
    /// As given, for perfdata.
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a threshold range ([@]start:end, start may be ~, e.g. 500, 100:800, @0:50): {1}"
)]
pub struct RangeError(String, &'static str);

fn number(s: &str, whole: &str) -> Result<f64, RangeError> {
    let v: f64 = s
        .parse()
        .map_err(|_| RangeError(whole.into(), "not a number"))?;
    if !v.is_finite() {
        return Err(RangeError(whole.into(), "not a finite number"));
    }
    Ok(v)
}

impl FromStr for Range {
    type Err = RangeError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(RangeError(raw.into(), "empty"));
        }
        let (inside, body) = match text.strip_prefix('@') {
            Some(b) => (true, b),
            None => (false, text),
        };
        let (start, end) = match body.split_once(':') {
            Some((s, e)) => {
                let start = match s {
                    "~" => f64::NEG_INFINITY,
                    "" => 0.0,
                    s => number(s, raw)?,
                };
                let end = if e.is_empty() {
                    f64::INFINITY
                } else {
                    number(e, raw)?
                };
                (start, end)
            }
            None => (0.0, number(body, raw)?),
        };
        if start > end {
            return Err(RangeError(raw.into(), "start is greater than end"));
        }
        Ok(Range {
            start,
            end,
            inside,
            text: text.to_string(),
        })
    }
}

impl Range {
    /// Whether `v` raises the alert this range stands for.
    pub fn alerts(&self, v: f64) -> bool {
        let within = v >= self.start && v <= self.end;
        if self.inside { within } else { !within }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `-w/--warning` and `-c/--critical` on step latency (ms).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    pub warning: Option<Range>,
    pub critical: Option<Range>,
}

impl Thresholds {
    pub fn is_empty(&self) -> bool {
        self.warning.is_none() && self.critical.is_none()
    }

    /// The status a latency reaches: critical, warning, or ok.
    pub fn judge(&self, ms: f64) -> Status {
        if self.critical.as_ref().is_some_and(|r| r.alerts(ms)) {
            Status::Critical
        } else if self.warning.as_ref().is_some_and(|r| r.alerts(ms)) {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    /// Judges every step that ran, records the breaches in the report, and raises its status
    /// and exit code to the worst breach (never lowers them).
    pub fn apply(&self, report: &mut Report) {
        if self.is_empty() {
            return;
        }
        report.thresholds = Some(self.clone());
        // Authentication steps are not judged: a device code sign-in waits for a person.
        for s in report
            .steps
            .iter()
            .filter(|s| s.outcome != Outcome::Skip && s.kind != crate::evidence::StepKind::Auth)
        {
            let st = self.judge(s.duration_ms);
            if st == Status::Ok {
                continue;
            }
            let range = match st {
                Status::Critical => self.critical.as_ref(),
                _ => self.warning.as_ref(),
            }
            .map(Range::as_str)
            .unwrap_or_default();
            report.latency_breaches.push(format!(
                "{}: {} took {} ms, outside the {} range {range}",
                st.label(),
                s.id,
                super::nagios::perf_value(s.duration_ms),
                if st == Status::Critical {
                    "critical"
                } else {
                    "warning"
                },
            ));
            if st > report.status {
                report.status = st;
                report.exit_code = st.exit_code();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Range {
        s.parse().unwrap()
    }

    #[test]
    fn plugin_guideline_table() {
        // 10: alert < 0 or > 10
        assert!(r("10").alerts(-1.0) && r("10").alerts(10.5));
        assert!(!r("10").alerts(0.0) && !r("10").alerts(10.0));
        // 10: alert < 10
        assert!(r("10:").alerts(9.9) && !r("10:").alerts(10.0) && !r("10:").alerts(1e9));
        // ~:10 alert > 10
        assert!(r("~:10").alerts(10.1) && !r("~:10").alerts(-1e9) && !r("~:10").alerts(10.0));
        // 10:20 alert < 10 or > 20 (inclusive ends)
        assert!(r("10:20").alerts(9.0) && r("10:20").alerts(21.0));
        assert!(!r("10:20").alerts(10.0) && !r("10:20").alerts(20.0));
        // @10:20 alert 10 <= x <= 20
        assert!(r("@10:20").alerts(10.0) && r("@10:20").alerts(20.0) && r("@10:20").alerts(15.0));
        assert!(!r("@10:20").alerts(9.99) && !r("@10:20").alerts(20.01));
        assert_eq!(r(" 500 ").as_str(), "500");
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in ["", "abc", "20:10", "1:x", "@", "~", "NaN", "inf"] {
            assert!(bad.parse::<Range>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn critical_wins_over_warning() {
        let t = Thresholds {
            warning: Some(r("100")),
            critical: Some(r("500")),
        };
        assert_eq!(t.judge(50.0), Status::Ok);
        assert_eq!(t.judge(100.0), Status::Ok);
        assert_eq!(t.judge(100.1), Status::Warning);
        assert_eq!(t.judge(501.0), Status::Critical);
        assert_eq!(Thresholds::default().judge(1e9), Status::Ok);
    }
}
