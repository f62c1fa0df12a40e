//! One self-contained HTML page: a timeline per day (events, windows, alarms) that a care-ops
//! analyst can open in any browser, with no scripts and nothing fetched.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use maud::{Markup, html};

use super::day_svg::{DayDrawing, draw_day};
use super::page::page;
use super::report::{ReplayReport, SessionReport};

const STYLE: &str = "
.totals span{display:inline-block;margin-right:20px;font-size:16px} .totals b{font-size:22px}
.legend span{margin-right:16px} .sw{display:inline-block;width:14px;height:10px;vertical-align:middle;margin-right:4px}
.day{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:8px 12px;margin:10px 0}
.day header{display:flex;gap:16px;align-items:baseline} .date{font-weight:600;min-width:110px}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.SUCCESS{background:#dff3e4;color:#1e6b34} .ALARM_RAISED{background:#fde2e1;color:#9b1c1c}
.muted{color:#5b6475} svg{display:block;margin-top:6px;width:100%;height:auto} text{font-size:10px;fill:#5b6475}
";

/// Renders `report` as an HTML page; times are shown local to `tz`. Sessions without a
/// timeline are listed without a drawing.
pub fn render_html(report: &ReplayReport, tz: &TimeZone) -> String {
    let rule = &report.rule;
    let title = format!(
        "Replay — robot {} — {} {}–{}, gap {} min",
        rule.robot_id,
        rule.timezone,
        rule.start.strftime("%H:%M"),
        rule.end.strftime("%H:%M"),
        rule.gap_minutes
    );
    let totals = &report.totals;
    let body = html! {
        h1 { (title) }
        div.sub {
            "Event " code { (rule.event_name) } ", partial final window: "
            (rule.partial_final_window) ". Times are local (" (rule.timezone) ")."
        }
        div.totals {
            span { b { (totals.sessions) } " sessions" }
            span { b { (totals.alarms) } " alarms" }
            span { b { (totals.events) } " events" }
        }
        p.legend {
            span { i.sw style="background:#8fd19e" {} "window met by an event" }
            span { i.sw style="background:#f28b82" {} "window without event: alarm" }
            span { i.sw style="background:#c9ced8" {} "short final window, no alarm" }
            span { i.sw style="background:#1d2330;width:3px" {} "event" }
        }
        @for session in &report.sessions {
            (session_section(session, tz))
        }
    };
    page(&title, STYLE, None, body).into_string()
}

fn session_section(session: &SessionReport, tz: &TimeZone) -> Markup {
    let local = |t: Timestamp| tz.to_datetime(t).strftime("%H:%M").to_string();
    html! {
        section.day {
            header {
                span.date { (session.date) }
                span.badge.(session.result) { (session.result) }
                span.muted {
                    (local(session.start)) "–" (local(session.end)) " · " (session.events)
                    " events · " (session.alarms.len()) " alarms"
                }
            }
            @if let Some(timeline) = &session.timeline {
                (draw_day(&DayDrawing {
                    start: session.start,
                    end: session.end,
                    tz,
                    steps: &timeline.steps,
                    events: &timeline.events,
                    late: &[],
                    running: None,
                    alarm_note: &|_| None,
                    label: &format!("timeline of {}", session.date),
                }))
            }
        }
    }
}
