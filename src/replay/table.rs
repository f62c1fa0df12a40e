//! A per-day summary of a replay for a terminal, in the resident's local time.

use std::fmt::Write;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::report::ReplayReport;

/// Renders `report` as a plain-text table; times are local to `tz`.
pub fn render_table(report: &ReplayReport, tz: &TimeZone) -> String {
    let local = |t: Timestamp| tz.to_datetime(t).strftime("%H:%M").to_string();
    let rule = &report.rule;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Rule: robot {}, {} {}–{}, gap {} min, partial final window: {}, event {}",
        rule.robot_id,
        rule.timezone,
        rule.start.strftime("%H:%M:%S"),
        rule.end.strftime("%H:%M:%S"),
        rule.gap_minutes,
        rule.partial_final_window,
        rule.event_name,
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<10}  {:<5}  {:<5}  {:>6}  {:>6}  {:<12}  alarm windows (local)",
        "date", "start", "end", "events", "alarms", "result"
    );
    for s in &report.sessions {
        let windows = s
            .alarms
            .iter()
            .map(|a| format!("{}–{}", local(a.window_start), local(a.window_end)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "{:<10}  {:<5}  {:<5}  {:>6}  {:>6}  {:<12}  {}",
            s.date.to_string(),
            local(s.start),
            local(s.end),
            s.events,
            s.alarms.len(),
            s.result,
            windows,
        );
    }
    let t = report.totals;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} sessions, {} alarms, {} events",
        t.sessions, t.alarms, t.events
    );
    out
}
