//! One day drawn as an inline SVG timeline from S to E: the windows (met by an event, ended
//! without one and so an alarm, or short and final), the events, and for a live session the
//! late events and the window still running. The replay report and the dashboard draw their
//! days with it, so a replayed day and a live one look the same.
//!
//! Each mark carries a `<title>` (the browser's tooltip) and a `data-kind` (`window-met`,
//! `alarm`, `window-short`, `window-running`, `event`, `late-event`), so that a page's reader
//! and its tests find them without depending on colours.

use std::fmt::Write;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::html::escape;
use crate::domain::{Step, Window};

/// Drawing width in user units; the SVG scales to its container.
pub const WIDTH: f64 = 960.0;
const BAR_Y: f64 = 18.0;
const BAR_H: f64 = 22.0;

/// What to draw of one day.
pub struct DayDrawing<'a> {
    /// S.
    pub start: Timestamp,
    /// E.
    pub end: Timestamp,
    /// Times are written local to this zone.
    pub tz: &'a TimeZone,
    /// The windows as the core decided them, in time order.
    pub steps: &'a [Step],
    /// The events that counted, in time order.
    pub events: &'a [Timestamp],
    /// Events that came after their window had closed (live sessions only).
    pub late: &'a [Timestamp],
    /// The window running now (live sessions only).
    pub running: Option<Window>,
    /// More tooltip text for the alarm of the window starting at the given instant (its
    /// reference id and Megazord id on the dashboard).
    pub alarm_note: &'a dyn Fn(Timestamp) -> Option<String>,
    /// Names the drawing for screen readers.
    pub label: &'a str,
}

/// Appends `drawing` to `out` as an `<svg>` element.
pub fn draw_day(out: &mut String, drawing: &DayDrawing<'_>) {
    let tz = drawing.tz;
    let local = |t: Timestamp| tz.to_datetime(t).strftime("%H:%M").to_string();
    let span = drawing
        .end
        .duration_since(drawing.start)
        .as_secs_f64()
        .max(1.0);
    let x = |t: Timestamp| {
        (t.duration_since(drawing.start).as_secs_f64() / span * WIDTH).clamp(0.0, WIDTH)
    };
    let _ = write!(
        out,
        r##"<svg width="{w}" height="56" viewBox="0 0 {w} 56" role="img" aria-label="{label}"><rect x="0" y="{y}" width="{w}" height="{h}" fill="#eef0f4" data-kind="day"/>"##,
        w = WIDTH,
        y = BAR_Y,
        h = BAR_H,
        label = escape(drawing.label),
    );
    let rect = |out: &mut String,
                from: Timestamp,
                to: Timestamp,
                fill: &str,
                kind: &str,
                title: &str| {
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{}" width="{:.1}" height="{}" fill="{}" stroke="#fff" stroke-width="0.5" data-kind="{}"><title>{}</title></rect>"##,
            x(from),
            BAR_Y,
            (x(to) - x(from)).max(0.5),
            BAR_H,
            fill,
            kind,
            escape(title),
        );
    };
    for step in drawing.steps {
        match step {
            Step::Observed { at, replaced, .. } => rect(
                out,
                replaced.start,
                *at,
                "#8fd19e",
                "window-met",
                &format!("met {}–{}", local(replaced.start), local(*at)),
            ),
            Step::Closed(closed) if closed.alarm.is_some() => {
                let w = closed.window;
                let mut title = format!("alarm {}–{}", local(w.start), local(w.end));
                if let Some(note) = (drawing.alarm_note)(w.start) {
                    title.push('\n');
                    title.push_str(&note);
                }
                rect(out, w.start, w.end, "#f28b82", "alarm", &title);
            }
            Step::Closed(closed) => {
                let w = closed.window;
                rect(
                    out,
                    w.start,
                    w.end,
                    "#c9ced8",
                    "window-short",
                    &format!("short {}–{}", local(w.start), local(w.end)),
                );
            }
        }
    }
    if let Some(w) = drawing.running {
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{}" width="{:.1}" height="{}" fill="#d6e4ff" stroke="#3b6fd8" stroke-width="1" stroke-dasharray="4 2" data-kind="window-running"><title>{}</title></rect>"##,
            x(w.start),
            BAR_Y,
            (x(w.end) - x(w.start)).max(0.5),
            BAR_H,
            escape(&format!(
                "running {}–{} (deadline {})",
                local(w.start),
                local(w.end),
                local(w.end)
            )),
        );
    }
    for (times, colour, kind, word) in [
        (drawing.events, "#1d2330", "event", "event"),
        (drawing.late, "#b45309", "late-event", "late event"),
    ] {
        for &t in times {
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y1}" y2="{y2}" stroke="{colour}" stroke-width="2" data-kind="{kind}"><title>{word} {t}</title></line>"##,
                x = x(t),
                y1 = BAR_Y - 4.0,
                y2 = BAR_Y + BAR_H + 4.0,
                t = local(t),
            );
        }
    }
    let mut tick = drawing.start;
    while tick <= drawing.end {
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
