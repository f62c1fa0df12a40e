//! One self-contained HTML page: a timeline per day (events, windows, alarms) that a care-ops
//! analyst can open in any browser, with no scripts and nothing fetched.

use std::fmt::Write;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::day_svg::{DayDrawing, draw_day};
use super::report::{ReplayReport, SessionReport};

/// Renders `report` as an HTML page; times are shown local to `tz`. Sessions without a
/// timeline are listed without a drawing.
pub fn render_html(report: &ReplayReport, tz: &TimeZone) -> String {
    let rule = &report.rule;
    let mut out = String::with_capacity(64 * 1024);
    let title = format!(
        "Replay — robot {} — {} {}–{}, gap {} min",
        rule.robot_id,
        rule.timezone,
        rule.start.strftime("%H:%M"),
        rule.end.strftime("%H:%M"),
        rule.gap_minutes
    );
    let _ = write!(
        out,
        r#"{head}.totals span{{display:inline-block;margin-right:20px;font-size:16px}} .totals b{{font-size:22px}}
.legend span{{margin-right:16px}} .sw{{display:inline-block;width:14px;height:10px;vertical-align:middle;margin-right:4px}}
.day{{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:8px 12px;margin:10px 0}}
.day header{{display:flex;gap:16px;align-items:baseline}} .date{{font-weight:600;min-width:110px}}
.badge{{padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}}
.SUCCESS{{background:#dff3e4;color:#1e6b34}} .ALARM_RAISED{{background:#fde2e1;color:#9b1c1c}}
.muted{{color:#5b6475}} svg{{display:block;margin-top:6px;width:100%;height:auto}} text{{font-size:10px;fill:#5b6475}}
</style></head><body>
<h1>{title}</h1>
<div class="sub">Event <code>{event}</code>, partial final window: {partial}. Times are local ({zone}).</div>
<div class="totals"><span><b>{sessions}</b> sessions</span><span><b>{alarms}</b> alarms</span><span><b>{events}</b> events</span></div>
<p class="legend"><span><i class="sw" style="background:#8fd19e"></i>window met by an event</span><span><i class="sw" style="background:#f28b82"></i>window without event: alarm</span><span><i class="sw" style="background:#c9ced8"></i>short final window, no alarm</span><span><i class="sw" style="background:#1d2330;width:3px"></i>event</span></p>
"#,
        head = page_head(&title),
        title = escape(&title),
        event = escape(&rule.event_name),
        partial = rule.partial_final_window,
        zone = escape(&rule.timezone),
        sessions = report.totals.sessions,
        alarms = report.totals.alarms,
        events = report.totals.events,
    );
    for session in &report.sessions {
        render_session(&mut out, session, tz);
    }
    out.push_str("</body></html>\n");
    out
}

fn render_session(out: &mut String, session: &SessionReport, tz: &TimeZone) {
    let local = |t: Timestamp| tz.to_datetime(t).strftime("%H:%M").to_string();
    let _ = write!(
        out,
        r#"<section class="day"><header><span class="date">{date}</span><span class="badge {result}">{result}</span><span class="muted">{start}–{end} · {events} events · {alarms} alarms</span></header>"#,
        date = session.date,
        result = session.result,
        start = local(session.start),
        end = local(session.end),
        events = session.events,
        alarms = session.alarms.len(),
    );
    if let Some(timeline) = &session.timeline {
        draw_day(
            out,
            &DayDrawing {
                start: session.start,
                end: session.end,
                tz,
                steps: &timeline.steps,
                events: &timeline.events,
                late: &[],
                running: None,
                alarm_note: &|_| None,
                label: &format!("timeline of {}", session.date),
            },
        );
    }
    out.push_str("</section>\n");
}

/// The start of a self-contained page of the project's reports, up to its own style rules:
/// the document head with `title` and the look every page shares. The caller adds its rules
/// and closes the `<style>` element.
pub(crate) fn page_head(title: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}}
h1{{font-size:20px;margin:0 0 4px}} h2{{font-size:16px;margin:20px 0 0}} .sub{{color:#5b6475;margin-bottom:16px}}
"#,
        title = escape(title)
    )
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
