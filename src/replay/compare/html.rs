//! A comparison as one self-contained HTML page: the figures side by side and a chart of alarms
//! per day for each setting; no scripts, nothing fetched, so it opens offline.

use std::fmt::Write;

use super::{Comparison, hours_minutes};
use crate::replay::html::{escape, page_head};

/// Colours of the settings' bars, in order (repeated past the eighth).
const COLOURS: [&str; 8] = [
    "#3b6fd8", "#e0892b", "#3a9b5c", "#b44bb0", "#c9463d", "#4aa3b5", "#8a6d3b", "#5b6475",
];
const CHART_H: f64 = 160.0;
const LEFT: f64 = 28.0;

/// Renders `report` as an HTML page.
pub fn render_compare_html(report: &Comparison) -> String {
    render_compare_html_with(report, "")
}

/// Renders `report` as an HTML page with `preamble` (HTML: the dashboard's navigation and
/// settings form) at the top of its body.
pub fn render_compare_html_with(report: &Comparison, preamble: &str) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let title = format!(
        "What each setting would have done — robot {}, {}",
        report.robot_id, report.timezone
    );
    let dates = match (report.from, report.to) {
        (Some(from), Some(to)) => format!(
            "{from} to {to}: {} days, {} events",
            report.settings.first().map_or(0, |s| s.days),
            report.events
        ),
        _ => "no dates to compare (no events and no --from/--to)".to_string(),
    };
    let _ = write!(
        out,
        r#"{head}table{{border-collapse:collapse;background:#fff;border:1px solid #e1e4ea}}
th,td{{padding:6px 12px;border-bottom:1px solid #eef0f4;text-align:right}} th:first-child,td:first-child{{text-align:left}}
thead th{{background:#f3f5f8}} .sw{{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:6px}}
svg{{display:block;margin-top:16px;background:#fff;border:1px solid #e1e4ea}} text{{font-size:10px;fill:#5b6475}}
</style></head><body>
{preamble}<h1>{title}</h1>
<div class="sub">Event <code>{event}</code>, partial final window: {partial}. {dates}.</div>
<table id="comparison"><thead><tr><th>setting</th>"#,
        head = page_head(&title),
        title = escape(&title),
        event = escape(&report.event_name),
        partial = report.partial_final_window,
        dates = escape(&dates),
    );
    for (i, s) in report.settings.iter().enumerate() {
        let _ = write!(
            out,
            r#"<th data-gap-minutes="{}"><i class="sw" style="background:{}"></i>{}</th>"#,
            s.gap_minutes,
            COLOURS[i % COLOURS.len()],
            escape(&s.label)
        );
    }
    out.push_str("</tr></thead><tbody>\n");
    let settings = &report.settings;
    let mut row = |name: &str, cells: Vec<String>| {
        let _ = write!(out, "<tr><th scope=\"row\">{name}</th>");
        for cell in cells {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    };
    row(
        "alarms",
        settings.iter().map(|s| s.alarms.to_string()).collect(),
    );
    row(
        "alarms per day, mean",
        settings
            .iter()
            .map(|s| format!("{:.1}", s.alarms_per_day_mean))
            .collect(),
    );
    row(
        "alarms per day, max",
        settings
            .iter()
            .map(|s| s.alarms_per_day_max.to_string())
            .collect(),
    );
    row(
        "days without alarm",
        settings
            .iter()
            .map(|s| format!("{} of {}", s.days_without_alarm, s.days))
            .collect(),
    );
    row(
        "longest silence per day, mean",
        settings
            .iter()
            .map(|s| hours_minutes(s.longest_silence_minutes_mean.round() as u32))
            .collect(),
    );
    row(
        "longest silence, max",
        settings
            .iter()
            .map(|s| match s.longest_silence_date {
                Some(date) => format!("{} on {date}", hours_minutes(s.longest_silence_minutes_max)),
                None => "–".to_string(),
            })
            .collect(),
    );
    out.push_str("</tbody></table>\n<h2>Alarms per day</h2>\n");
    chart(&mut out, report);
    out.push_str("</body></html>\n");
    out
}

/// Alarms per day: for each date a group of bars, one per setting.
fn chart(out: &mut String, report: &Comparison) {
    let settings = &report.settings;
    let days = settings.first().map_or(0, |s| s.per_day.len());
    if days == 0 || settings.is_empty() {
        return;
    }
    let max = settings
        .iter()
        .map(|s| s.alarms_per_day_max)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar = (6.0_f64).max(24.0 / settings.len() as f64).min(14.0);
    let group = bar * settings.len() as f64 + 6.0;
    let width = LEFT + group * days as f64 + 8.0;
    let height = CHART_H + 52.0;
    let _ = write!(
        out,
        r#"<svg id="alarms-per-day" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="alarms per day for each setting">"#
    );
    let y = |v: f64| 10.0 + CHART_H - v / max * CHART_H;
    // Gridlines at whole numbers of alarms only: a line at 2.5 labelled "2" would misread.
    let middle = (max / 2.0).round();
    let mut lines = vec![0.0, max];
    if middle > 0.0 && middle < max {
        lines.insert(1, middle);
    }
    for v in lines {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{width:.0}" y1="{y:.1}" y2="{y:.1}" stroke="#eef0f4"/><text x="2" y="{ty:.1}">{v:.0}</text>"##,
            y = y(v),
            ty = y(v) + 3.0,
        );
    }
    for day in 0..days {
        let x0 = LEFT + group * day as f64 + 3.0;
        let date = settings[0].per_day[day].date;
        for (i, s) in settings.iter().enumerate() {
            let alarms = s.per_day.get(day).map_or(0, |d| d.alarms);
            let top = y(alarms as f64);
            let _ = write!(
                out,
                r#"<rect class="bar" data-setting="{i}" data-date="{date}" data-alarms="{alarms}" x="{x:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"><title>{label}: {alarms} alarms on {date}</title></rect>"#,
                x = x0 + bar * i as f64,
                w = bar - 1.0,
                h = (10.0 + CHART_H - top).max(0.0),
                fill = COLOURS[i % COLOURS.len()],
                label = escape(&s.label),
            );
        }
        if days <= 31 || day % 7 == 0 {
            let _ = write!(
                out,
                r#"<text x="{x:.1}" y="{ty:.1}" transform="rotate(45 {x:.1} {ty:.1})">{md}</text>"#,
                x = x0,
                ty = CHART_H + 22.0,
                md = date.strftime("%m-%d"),
            );
        }
    }
    out.push_str("</svg>\n");
}
