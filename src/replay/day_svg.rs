//! One day drawn as an inline SVG timeline from S to E: the windows (met by an event, ended
//! without one and so an alarm, or short and final), the events, and for a live session the
//! late events and the window still running. The replay report and the dashboard draw their
//! days with it, so a replayed day and a live one look the same.
//!
//! Each mark carries a `<title>` (the browser's tooltip) and a `data-kind` (`window-met`,
//! `alarm`, `window-short`, `window-running`, `event`, `late-event`), so that a page's reader
//! and its tests find them without depending on colours.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use maud::{Markup, html};

use super::page::tenths;
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

/// A window that ended, as drawn: where, in which colour, of which kind, and its tooltip.
struct WindowMark {
    from: Timestamp,
    to: Timestamp,
    fill: &'static str,
    kind: &'static str,
    title: String,
}

/// `drawing` as an `<svg>` element.
pub fn draw_day(drawing: &DayDrawing<'_>) -> Markup {
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
    let width = |from: Timestamp, to: Timestamp| (x(to) - x(from)).max(0.5);
    let windows = drawing.steps.iter().map(|step| match step {
        Step::Observed { at, replaced, .. } => WindowMark {
            from: replaced.start,
            to: *at,
            fill: "#8fd19e",
            kind: "window-met",
            title: format!("met {}–{}", local(replaced.start), local(*at)),
        },
        Step::Closed(closed) if closed.alarm.is_some() => {
            let w = closed.window;
            let mut title = format!("alarm {}–{}", local(w.start), local(w.end));
            if let Some(note) = (drawing.alarm_note)(w.start) {
                title.push('\n');
                title.push_str(&note);
            }
            WindowMark {
                from: w.start,
                to: w.end,
                fill: "#f28b82",
                kind: "alarm",
                title,
            }
        }
        Step::Closed(closed) => WindowMark {
            from: closed.window.start,
            to: closed.window.end,
            fill: "#c9ced8",
            kind: "window-short",
            title: format!(
                "short {}–{}",
                local(closed.window.start),
                local(closed.window.end)
            ),
        },
    });
    let ticks = std::iter::successors(Some(drawing.start), |tick| {
        tick.checked_add(SignedDuration::from_hours(2)).ok()
    })
    .take_while(|tick| *tick <= drawing.end);
    // SVG elements are closed explicitly (`{}`): in an HTML page an unclosed one would hold
    // the elements after it.
    html! {
        svg width=(WIDTH) height="56" viewBox={ "0 0 " (WIDTH) " 56" } role="img" aria-label=(drawing.label) {
            rect x="0" y=(BAR_Y) width=(WIDTH) height=(BAR_H) fill="#eef0f4" data-kind="day" {}
            @for w in windows {
                rect x=(tenths(x(w.from))) y=(BAR_Y) width=(tenths(width(w.from, w.to))) height=(BAR_H)
                    fill=(w.fill) stroke="#fff" stroke-width="0.5" data-kind=(w.kind) {
                    title { (w.title) }
                }
            }
            @if let Some(w) = drawing.running {
                rect x=(tenths(x(w.start))) y=(BAR_Y) width=(tenths(width(w.start, w.end))) height=(BAR_H)
                    fill="#d6e4ff" stroke="#3b6fd8" stroke-width="1" stroke-dasharray="4 2" data-kind="window-running" {
                    title { "running " (local(w.start)) "–" (local(w.end)) " (deadline " (local(w.end)) ")" }
                }
            }
            @for (times, colour, kind, word) in [
                (drawing.events, "#1d2330", "event", "event"),
                (drawing.late, "#b45309", "late-event", "late event"),
            ] {
                @for &t in times {
                    line x1=(tenths(x(t))) x2=(tenths(x(t))) y1=(BAR_Y - 4.0) y2=(BAR_Y + BAR_H + 4.0)
                        stroke=(colour) stroke-width="2" data-kind=(kind) {
                        title { (word) " " (local(t)) }
                    }
                }
            }
            @for tick in ticks {
                text x=(tenths(x(tick).min(WIDTH - 30.0))) y="12" { (local(tick)) }
            }
        }
    }
}
