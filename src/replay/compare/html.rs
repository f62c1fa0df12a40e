//! A comparison as one self-contained HTML page: the figures side by side and a chart of alarms
//! per day for each setting; no scripts, nothing fetched, so it opens offline.

use maud::{Markup, html};

use super::{Comparison, SettingSummary, hours_minutes, whole_minutes};
use crate::numeric::count_f64;
use crate::replay::page::{page, tenths};

/// Colours of the settings' bars, in order (repeated past the eighth).
const COLOURS: [&str; 8] = [
    "#3b6fd8", "#e0892b", "#3a9b5c", "#b44bb0", "#c9463d", "#4aa3b5", "#8a6d3b", "#5b6475",
];
const CHART_H: f64 = 160.0;
const LEFT: f64 = 28.0;

const STYLE: &str = "
table{border-collapse:collapse;background:#fff;border:1px solid #e1e4ea}
th,td{padding:6px 12px;border-bottom:1px solid #eef0f4;text-align:right} th:first-child,td:first-child{text-align:left}
thead th{background:#f3f5f8} .sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:6px}
svg{display:block;margin-top:16px;background:#fff;border:1px solid #e1e4ea} text{font-size:10px;fill:#5b6475}
";

/// Renders `report` as an HTML page.
pub fn render_compare_html(report: &Comparison) -> String {
    render_compare_html_with(report, html! {})
}

/// Renders `report` as an HTML page with `preamble` (the dashboard's navigation and settings
/// form) at the top of its body.
pub fn render_compare_html_with(report: &Comparison, preamble: Markup) -> String {
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
    let settings = &report.settings;
    let per_setting = |figure: fn(&SettingSummary) -> String| -> Vec<String> {
        settings.iter().map(figure).collect()
    };
    let rows = [
        ("alarms", per_setting(|s| s.alarms.to_string())),
        (
            "alarms per day, mean",
            per_setting(|s| format!("{:.1}", s.alarms_per_day_mean)),
        ),
        (
            "alarms per day, max",
            per_setting(|s| s.alarms_per_day_max.to_string()),
        ),
        (
            "days without alarm",
            per_setting(|s| format!("{} of {}", s.days_without_alarm, s.days)),
        ),
        (
            "longest silence per day, mean",
            per_setting(|s| hours_minutes(whole_minutes(s.longest_silence_minutes_mean))),
        ),
        (
            "longest silence, max",
            per_setting(|s| match s.longest_silence_date {
                Some(date) => format!("{} on {date}", hours_minutes(s.longest_silence_minutes_max)),
                None => "–".to_string(),
            }),
        ),
    ];
    let body = html! {
        (preamble)
        h1 { (title) }
        div.sub {
            "Event " code { (report.event_name) } ", partial final window: "
            (report.partial_final_window) ". " (dates) "."
        }
        table #comparison {
            thead {
                tr {
                    th { "setting" }
                    @for (i, s) in settings.iter().enumerate() {
                        th data-gap-minutes=(s.gap_minutes) {
                            i.sw style={ "background:" (colour(i)) } {}
                            (s.label)
                        }
                    }
                }
            }
            tbody {
                @for (name, cells) in &rows {
                    tr {
                        th scope="row" { (name) }
                        @for cell in cells {
                            td { (cell) }
                        }
                    }
                }
            }
        }
        h2 { "Alarms per day" }
        (chart(report))
    };
    page(&title, STYLE, None, body).into_string()
}

/// The colour of the `i`-th setting.
fn colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

/// Alarms per day: for each date a group of bars, one per setting.
fn chart(report: &Comparison) -> Markup {
    let settings = &report.settings;
    let days = settings.first().map_or(0, |s| s.per_day.len());
    if days == 0 || settings.is_empty() {
        return html! {};
    }
    let max = count_f64(
        settings
            .iter()
            .map(|s| s.alarms_per_day_max)
            .max()
            .unwrap_or(0)
            .max(1),
    );
    let bar = (6.0_f64).max(24.0 / count_f64(settings.len())).min(14.0);
    let group = bar * count_f64(settings.len()) + 6.0;
    let width = format!("{:.0}", LEFT + group * count_f64(days) + 8.0);
    let height = format!("{:.0}", CHART_H + 52.0);
    let y = |v: f64| 10.0 + CHART_H - v / max * CHART_H;
    // Gridlines at whole numbers of alarms only: a line at 2.5 labelled "2" would misread.
    let middle = (max / 2.0).round();
    let mut lines = vec![0.0, max];
    if middle > 0.0 && middle < max {
        lines.insert(1, middle);
    }
    html! {
        svg #alarms-per-day width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) }
            role="img" aria-label="alarms per day for each setting" {
            @for v in lines {
                line x1=(LEFT) x2=(width) y1=(tenths(y(v))) y2=(tenths(y(v))) stroke="#eef0f4" {}
                text x="2" y=(tenths(y(v) + 3.0)) { (format!("{v:.0}")) }
            }
            @for day in 0..days {
                @let x0 = LEFT + group * count_f64(day) + 3.0;
                @let date = settings[0].per_day[day].date;
                @for (i, s) in settings.iter().enumerate() {
                    @let alarms = s.per_day.get(day).map_or(0, |d| d.alarms);
                    @let top = y(count_f64(alarms));
                    rect.bar data-setting=(i) data-date=(date) data-alarms=(alarms)
                        x=(tenths(x0 + bar * count_f64(i))) y=(tenths(top)) width=(tenths(bar - 1.0))
                        height=(tenths((10.0 + CHART_H - top).max(0.0))) fill=(colour(i)) {
                        title { (s.label) ": " (alarms) " alarms on " (date) }
                    }
                }
                @if days <= 31 || day % 7 == 0 {
                    @let ty = tenths(CHART_H + 22.0);
                    text x=(tenths(x0)) y=(ty) transform={ "rotate(45 " (tenths(x0)) " " (ty) ")" } {
                        (date.strftime("%m-%d"))
                    }
                }
            }
        }
    }
}
