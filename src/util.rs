//! Small helpers shared by several modules.

/// Cuts a string to at most `max` characters for display, marking the cut.
pub fn truncate_for_display(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Milliseconds of a duration as f64 rounded to 0.1 ms (the report's unit).
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}
