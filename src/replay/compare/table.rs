//! A comparison for a terminal: one column per setting, one row per figure, then a row of
//! alarms per day for each date.

use std::io::{self, Write};

use super::{Comparison, hours_minutes, whole_minutes};

/// Bars of a sparkline, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Writes `report` as a plain-text table.
pub fn write_compare_table(out: &mut impl Write, report: &Comparison) -> io::Result<()> {
    writeln!(
        out,
        "Robot {}, {}, event {}, partial final window: {}",
        report.robot_id, report.timezone, report.event_name, report.partial_final_window
    )?;
    match (report.from, report.to) {
        (Some(from), Some(to)) => writeln!(
            out,
            "Dates {from} to {to}: {} days, {} events",
            report.settings.first().map_or(0, |s| s.days),
            report.events
        )?,
        _ => writeln!(out, "No dates to compare: no events and no --from/--to")?,
    }
    writeln!(out)?;
    let width = report
        .settings
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0)
        .max(10);
    let row = |out: &mut dyn Write, name: &str, cells: Vec<String>| -> io::Result<()> {
        write!(out, "{name:<28}")?;
        for cell in cells {
            write!(out, "  {cell:>width$}")?;
        }
        writeln!(out)
    };
    let settings = &report.settings;
    row(out, "", settings.iter().map(|s| s.label.clone()).collect())?;
    row(
        out,
        "alarms",
        settings.iter().map(|s| s.alarms.to_string()).collect(),
    )?;
    row(
        out,
        "alarms per day, mean",
        settings
            .iter()
            .map(|s| format!("{:.1}", s.alarms_per_day_mean))
            .collect(),
    )?;
    row(
        out,
        "alarms per day, max",
        settings
            .iter()
            .map(|s| s.alarms_per_day_max.to_string())
            .collect(),
    )?;
    row(
        out,
        "days without alarm",
        settings
            .iter()
            .map(|s| format!("{} of {}", s.days_without_alarm, s.days))
            .collect(),
    )?;
    row(
        out,
        "longest silence, mean/day",
        settings
            .iter()
            .map(|s| hours_minutes(whole_minutes(s.longest_silence_minutes_mean)))
            .collect(),
    )?;
    row(
        out,
        "longest silence, max",
        settings
            .iter()
            .map(|s| match s.longest_silence_date {
                Some(date) => format!("{} ({date})", hours_minutes(s.longest_silence_minutes_max)),
                None => "-".to_string(),
            })
            .collect(),
    )?;
    writeln!(out)?;
    for s in settings {
        writeln!(
            out,
            "{:<28}  {}",
            s.label,
            sparkline(s.per_day.iter().map(|d| d.alarms))
        )?;
    }
    writeln!(out)?;
    writeln!(out, "alarms per day")?;
    let days = settings.first().map_or(0, |s| s.per_day.len());
    for i in 0..days {
        let date = settings[0].per_day[i].date;
        row(
            out,
            &date.to_string(),
            settings
                .iter()
                .map(|s| s.per_day.get(i).map_or(0, |d| d.alarms).to_string())
                .collect(),
        )?;
    }
    Ok(())
}

/// One bar per value, scaled to the largest (an empty line when every value is 0).
fn sparkline(values: impl Iterator<Item = usize> + Clone) -> String {
    let max = values.clone().max().unwrap_or(0);
    values
        .map(|v| {
            if max == 0 {
                BARS[0]
            } else {
                BARS[(v * (BARS.len() - 1)).div_ceil(max).min(BARS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_scales_to_its_largest_value() {
        assert_eq!(sparkline([0usize, 7, 3].into_iter()), "▁█▄");
        assert_eq!(sparkline([0usize, 0].into_iter()), "▁▁");
        assert_eq!(hours_minutes(245), "4h05m");
    }
}
