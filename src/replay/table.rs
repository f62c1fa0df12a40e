//! A per-day summary of a replay for a terminal, in the resident's local time.

use std::io::{self, Write};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::report::{ReplayReport, RuleReport, SessionReport, Totals};

/// Renders `report` as a plain-text table; times are local to `tz`.
pub fn render_table(report: &ReplayReport, tz: &TimeZone) -> String {
    let mut out = Vec::new();
    write_table(
        &mut out,
        &report.rule,
        tz,
        report.sessions.iter().cloned(),
        report.totals.events,
    )
    .expect("writing to memory does not fail");
    String::from_utf8(out).expect("the table is UTF-8")
}

/// Writes the table a line per session as `sessions` yields them; `events` is
/// [`Totals::events`]. Returns the totals.
pub fn write_table(
    out: &mut impl Write,
    rule: &RuleReport,
    tz: &TimeZone,
    sessions: impl Iterator<Item = SessionReport>,
    events: usize,
) -> io::Result<Totals> {
    let local = |t: Timestamp| tz.to_datetime(t).strftime("%H:%M").to_string();
    writeln!(
        out,
        "Rule: robot {}, {} {}–{}, gap {} min, partial final window: {}, event {}",
        rule.robot_id,
        rule.timezone,
        rule.start.strftime("%H:%M:%S"),
        rule.end.strftime("%H:%M:%S"),
        rule.gap_minutes,
        rule.partial_final_window,
        rule.event_name,
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<10}  {:<5}  {:<5}  {:>6}  {:>6}  {:<12}  alarm windows (local)",
        "date", "start", "end", "events", "alarms", "result"
    )?;
    let mut totals = Totals {
        events,
        ..Totals::default()
    };
    for s in sessions {
        totals.sessions += 1;
        totals.alarms += s.alarms.len();
        let windows = s
            .alarms
            .iter()
            .map(|a| format!("{}–{}", local(a.window_start), local(a.window_end)))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "{:<10}  {:<5}  {:<5}  {:>6}  {:>6}  {:<12}  {}",
            s.date.to_string(),
            local(s.start),
            local(s.end),
            s.events,
            s.alarms.len(),
            s.result,
            windows,
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{} sessions, {} alarms, {} events",
        totals.sessions, totals.alarms, totals.events
    )?;
    Ok(totals)
}
