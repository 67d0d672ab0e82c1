//! `--format json`: the report exactly as DESIGN §4 defines it, pretty-printed.

use super::Report;

pub fn render(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report)
        .unwrap_or_else(|e| format!("{{\"schema\":\"{}\",\"error\":\"{e}\"}}", super::SCHEMA));
    s.push('\n');
    s
}
