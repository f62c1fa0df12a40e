//! One self-contained HTML page: a timeline per day (events, windows, alarms) that a care-ops
//! analyst can open in any browser, with no scripts and nothing fetched.

use std::fmt::Write;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::report::{ReplayReport, SessionReport};
use crate::domain::Step;

const WIDTH: f64 = 960.0;
const BAR_Y: f64 = 18.0;
const BAR_H: f64 = 22.0;

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
        let span = session
            .end
            .duration_since(session.start)
            .as_secs_f64()
            .max(1.0);
        let x = |t: Timestamp| t.duration_since(session.start).as_secs_f64() / span * WIDTH;
        let _ = write!(
            out,
            r##"<svg width="{w}" height="56" viewBox="0 0 {w} 56" role="img" aria-label="timeline of {date}"><rect x="0" y="{y}" width="{w}" height="{h}" fill="#eef0f4"/>"##,
            w = WIDTH,
            y = BAR_Y,
            h = BAR_H,
            date = session.date,
        );
        for step in &timeline.steps {
            let (from, to, fill, label) = match step {
                Step::Observed { at, replaced, .. } => (replaced.start, *at, "#8fd19e", "met"),
                Step::Closed(closed) if closed.alarm.is_some() => {
                    (closed.window.start, closed.window.end, "#f28b82", "alarm")
                }
                Step::Closed(closed) => {
                    (closed.window.start, closed.window.end, "#c9ced8", "short")
                }
            };
            let _ = write!(
                out,
                r##"<rect x="{:.1}" y="{}" width="{:.1}" height="{}" fill="{}" stroke="#fff" stroke-width="0.5"><title>{} {}–{}</title></rect>"##,
                x(from),
                BAR_Y,
                (x(to) - x(from)).max(0.5),
                BAR_H,
                fill,
                label,
                local(from),
                local(to)
            );
        }
        for &t in &timeline.events {
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y1}" y2="{y2}" stroke="#1d2330" stroke-width="2"><title>event {t}</title></line>"##,
                x = x(t),
                y1 = BAR_Y - 4.0,
                y2 = BAR_Y + BAR_H + 4.0,
                t = local(t),
            );
        }
        let mut tick = session.start;
        while tick <= session.end {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="12">{}</text>"#,
                x(tick).min(WIDTH - 30.0),
                local(tick)
            );
            tick = match tick.checked_add(SignedDuration::from_hours(2)) {
                Ok(next) => next,
                Err(_) => break,
            };
        }
        out.push_str("</svg>");
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
