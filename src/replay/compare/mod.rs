//! "What would this setting have done?": one resident's events evaluated under several
//! settings (gap, start, end) side by side, so that a care team sees before going live how many
//! alarms each would have raised.
//!
//! Every setting is evaluated exactly as [`replay`](super::replay) evaluates it alone, over the
//! same dates: a column's alarm count is the count a separate `replay` with that setting gives.

use jiff::civil::{Date, Time};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::{DateRange, EventSet, events_between, replay_sessions};

mod html;
mod table;

use crate::domain::{RobotId, Rule, RuleError, RuleInput};
use crate::numeric::count_f64;
pub use html::{render_compare_html, render_compare_html_with};
pub use table::write_compare_table;

/// The report of a comparison: what is common to every setting, then one summary per setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The robot.
    pub robot_id: RobotId,
    /// IANA zone name.
    pub timezone: String,
    /// The watched event.
    pub event_name: String,
    /// `ignore` or `alarm`.
    pub partial_final_window: &'static str,
    /// First local date evaluated (none without events or dates).
    pub from: Option<Date>,
    /// Last local date evaluated, inclusive.
    pub to: Option<Date>,
    /// Distinct events whose local date lies in `[from, to]`.
    pub events: usize,
    /// One summary per setting, in the order given.
    pub settings: Vec<SettingSummary>,
}

/// What one setting would have done over the compared dates.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingSummary {
    /// A short name: `08:00–22:00, gap 2h`.
    pub label: String,
    /// Local start time A.
    pub start: Time,
    /// Local end time B.
    pub end: Time,
    /// G in minutes.
    pub gap_minutes: u32,
    /// Sessions (days) evaluated.
    pub days: usize,
    /// Alarms over all days.
    pub alarms: usize,
    /// Alarms per day, mean over the days (0 without days).
    pub alarms_per_day_mean: f64,
    /// Alarms on the worst day.
    pub alarms_per_day_max: usize,
    /// Days on which no alarm would have been raised.
    pub days_without_alarm: usize,
    /// The longest stretch without an event in each day's session (from S, between events, to
    /// E), in minutes: mean over the days.
    pub longest_silence_minutes_mean: f64,
    /// The longest of those stretches, in minutes, and its date.
    pub longest_silence_minutes_max: u32,
    /// The date of the longest silence.
    pub longest_silence_date: Option<Date>,
    /// Alarms per day, in date order: the data of the chart.
    pub per_day: Vec<DayAlarms>,
}

/// The alarms of one day under one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayAlarms {
    /// The local date D of the session.
    pub date: Date,
    /// Alarms due in that session.
    pub alarms: usize,
}

/// Evaluates every rule of `settings` over `events` on the same dates: `range` resolved with the
/// first rule (the rules differ only in start, end and gap; they share the zone, robot and
/// event). Empty `settings` gives an empty comparison.
///
/// ```
/// use azi3_status_jobs::domain::RuleInput;
/// use azi3_status_jobs::replay::{DateRange, EventSet, compare};
///
/// let rule = |gap: &str| RuleInput {
///     timezone: "Europe/Amsterdam".into(),
///     start: "08:00".into(),
///     end: "20:00".into(),
///     gap: gap.into(),
///     ..RuleInput::default()
/// }
/// .validate()
/// .unwrap();
/// let events = EventSet {
///     instants: vec!["2025-06-02T09:30:00Z".parse().unwrap()],
///     ..EventSet::default()
/// };
/// let report = compare(&[rule("2h"), rule("4h")], &events, DateRange::default());
/// // 08:00–20:00 local is 06:00–18:00 UTC; one event at 09:30 UTC.
/// assert_eq!(report.settings[0].alarms, 5);
/// assert_eq!(report.settings[1].alarms, 2);
/// ```
pub fn compare(settings: &[Rule], events: &EventSet, range: DateRange) -> Comparison {
    let dates = settings
        .first()
        .and_then(|rule| range.resolve(rule, events));
    let first = settings.first();
    Comparison {
        robot_id: first.map_or(RobotId::new(0), |r| r.robot_id),
        timezone: first.map_or_else(String::new, |r| r.timezone_name().to_string()),
        event_name: first.map_or_else(String::new, |r| r.watched_event.clone()),
        partial_final_window: first.map_or("ignore", |r| r.partial_final_window.as_str()),
        from: dates.map(|(from, _)| from),
        to: dates.map(|(_, to)| to),
        events: match (first, dates) {
            (Some(rule), Some((from, to))) => events_between(rule, events, from, to),
            _ => 0,
        },
        settings: settings
            .iter()
            .map(|rule| summarise(rule, events, dates))
            .collect(),
    }
}

/// One setting's summary over `dates`.
fn summarise(rule: &Rule, events: &EventSet, dates: Option<(Date, Date)>) -> SettingSummary {
    let mut summary = SettingSummary {
        label: label(rule),
        start: rule.start,
        end: rule.end,
        gap_minutes: rule.gap.minutes(),
        days: 0,
        alarms: 0,
        alarms_per_day_mean: 0.0,
        alarms_per_day_max: 0,
        days_without_alarm: 0,
        longest_silence_minutes_mean: 0.0,
        longest_silence_minutes_max: 0,
        longest_silence_date: None,
        per_day: Vec::new(),
    };
    let Some((from, to)) = dates else {
        return summary;
    };
    let mut silence_sum = 0.0;
    for session in replay_sessions(rule, events, from, to, false) {
        let alarms = session.alarms.len();
        summary.days += 1;
        summary.alarms += alarms;
        summary.alarms_per_day_max = summary.alarms_per_day_max.max(alarms);
        if alarms == 0 {
            summary.days_without_alarm += 1;
        }
        summary.per_day.push(DayAlarms {
            date: session.date,
            alarms,
        });
        let silence = longest_silence(events, session.start, session.end);
        let minutes = u32::try_from(silence.as_secs() / 60).unwrap_or(u32::MAX);
        silence_sum += silence.as_secs_f64() / 60.0;
        if summary.longest_silence_date.is_none() || minutes > summary.longest_silence_minutes_max {
            summary.longest_silence_minutes_max = minutes;
            summary.longest_silence_date = Some(session.date);
        }
    }
    if summary.days > 0 {
        let days = count_f64(summary.days);
        summary.alarms_per_day_mean = count_f64(summary.alarms) / days;
        summary.longest_silence_minutes_mean = silence_sum / days;
    }
    summary
}

/// The longest stretch of `[start, end]` without an event: from `start` to the first event,
/// between two events, or from the last event to `end`.
pub fn longest_silence(events: &EventSet, start: Timestamp, end: Timestamp) -> SignedDuration {
    let instants = &events.instants;
    let lo = instants.partition_point(|t| *t < start);
    let hi = instants.partition_point(|t| *t <= end);
    let mut longest = SignedDuration::ZERO;
    let mut last = start;
    for &t in instants[lo..hi].iter().chain(std::iter::once(&end)) {
        longest = longest.max(t.duration_since(last));
        last = t;
    }
    longest
}

/// A setting of a comparison that does not make a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The list (`start`, `end` or `gap`) and the value of it at fault, when the value came
    /// from a list; `None` when it was the base rule's own.
    pub listed: Option<(&'static str, String)>,
    /// Why the rule was refused.
    pub error: RuleError,
}

/// The settings to compare: `base` with every combination of `starts`, `ends` and `gaps`
/// (values trimmed), in that nesting order, each empty list standing for `base`'s own value.
/// An invalid value is named with the list it came from.
pub fn settings(
    base: &RuleInput,
    starts: &[String],
    ends: &[String],
    gaps: &[String],
) -> Result<Vec<Rule>, SettingError> {
    let or_base = |list: &[String], own: &str| -> Vec<(bool, String)> {
        if list.is_empty() {
            vec![(false, own.to_string())]
        } else {
            list.iter().map(|v| (true, v.trim().to_string())).collect()
        }
    };
    let starts = or_base(starts, &base.start);
    let ends = or_base(ends, &base.end);
    let gaps = or_base(gaps, &base.gap);
    let mut settings = Vec::with_capacity(starts.len() * ends.len() * gaps.len());
    for (start_listed, start) in &starts {
        for (end_listed, end) in &ends {
            for (gap_listed, gap) in &gaps {
                let input = RuleInput {
                    start: start.clone(),
                    end: end.clone(),
                    gap: gap.clone(),
                    ..base.clone()
                };
                let rule = input.validate().map_err(|error| {
                    let listed = match error.field {
                        "start" if *start_listed => Some(("start", start.clone())),
                        "end" if *end_listed => Some(("end", end.clone())),
                        "gap" if *gap_listed => Some(("gap", gap.clone())),
                        _ => None,
                    };
                    SettingError { listed, error }
                })?;
                settings.push(rule);
            }
        }
    }
    Ok(settings)
}

/// How many settings [`settings`] makes of lists this long.
pub fn setting_count(starts: usize, ends: usize, gaps: usize) -> usize {
    starts.max(1) * ends.max(1) * gaps.max(1)
}

/// `08:00–22:00, gap 2h`: the setting as a care team names it.
pub fn label(rule: &Rule) -> String {
    format!(
        "{}–{}, gap {}",
        rule.start.strftime("%H:%M"),
        rule.end.strftime("%H:%M"),
        gap_text(rule.gap.minutes())
    )
}

/// A mean of minutes rounded to whole ones, for [`hours_minutes`].
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a mean of silences within sessions, between 0 and a day's minutes; `as` saturates"
)]
pub(crate) fn whole_minutes(mean: f64) -> u32 {
    mean.round() as u32
}

/// `4h05m`: a duration in whole minutes as hours and minutes.
pub(crate) fn hours_minutes(minutes: u32) -> String {
    format!("{}h{:02}m", minutes / 60, minutes % 60)
}

/// `90m`, `2h`, `2h30m`.
fn gap_text(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RuleInput;

    fn rule(start: &str, end: &str, gap: &str) -> Rule {
        RuleInput {
            timezone: "Europe/Madrid".into(),
            start: start.into(),
            end: end.into(),
            gap: gap.into(),
            ..RuleInput::default()
        }
        .validate()
        .unwrap()
    }

    fn events(times: &[&str]) -> EventSet {
        EventSet {
            instants: times.iter().map(|t| t.parse().unwrap()).collect(),
            ..EventSet::default()
        }
    }

    #[test]
    fn gaps_are_named_as_people_write_them() {
        assert_eq!(gap_text(90), "1h30m");
        assert_eq!(gap_text(45), "45m");
        assert_eq!(gap_text(120), "2h");
        assert_eq!(label(&rule("08:00", "22:00", "3h")), "08:00–22:00, gap 3h");
    }

    #[test]
    fn the_longest_silence_counts_from_the_start_and_to_the_end() {
        let start: Timestamp = "2025-06-02T06:00:00Z".parse().unwrap();
        let end: Timestamp = "2025-06-02T18:00:00Z".parse().unwrap();
        let none = events(&[]);
        assert_eq!(
            longest_silence(&none, start, end),
            SignedDuration::from_hours(12)
        );
        let some = events(&[
            "2025-06-01T23:00:00Z",
            "2025-06-02T07:00:00Z",
            "2025-06-02T13:00:00Z",
            "2025-06-02T14:00:00Z",
            "2025-06-02T19:00:00Z",
        ]);
        // 07:00 → 13:00 is longer than 06:00 → 07:00 and 14:00 → 18:00.
        assert_eq!(
            longest_silence(&some, start, end),
            SignedDuration::from_hours(6)
        );
    }

    #[test]
    fn days_without_events_are_each_a_silence_of_the_whole_session() {
        let report = compare(
            &[rule("08:00", "20:00", "2h")],
            &events(&[]),
            DateRange {
                from: Some(jiff::civil::date(2025, 6, 2)),
                to: Some(jiff::civil::date(2025, 6, 3)),
            },
        );
        let s = &report.settings[0];
        assert_eq!((s.days, s.alarms, s.alarms_per_day_max), (2, 12, 6));
        assert_eq!(s.days_without_alarm, 0);
        assert_eq!(s.longest_silence_minutes_max, 12 * 60);
        assert!((s.longest_silence_minutes_mean - 720.0).abs() < 1e-9);
        assert_eq!(s.longest_silence_date, Some(jiff::civil::date(2025, 6, 2)));
    }

    #[test]
    fn no_settings_and_no_dates_give_an_empty_report() {
        let empty = compare(&[], &events(&[]), DateRange::default());
        assert!(empty.settings.is_empty());
        let undated = compare(
            &[rule("08:00", "20:00", "2h")],
            &events(&[]),
            DateRange::default(),
        );
        assert_eq!(undated.from, None);
        assert_eq!(undated.settings[0].days, 0);
        assert_eq!(undated.settings[0].alarms_per_day_mean, 0.0);
    }

    proptest::proptest! {
        /// Every column is what a replay of that setting alone gives, day by day.
        #[test]
        fn each_setting_counts_what_its_own_replay_counts(
            minutes in proptest::collection::vec(0u32..(10 * 24 * 60), 0..120),
            gaps in proptest::collection::vec(prop_gap(), 1..5),
            start in 0u32..24,
            end in 0u32..24,
        ) {
            let origin: Timestamp = "2025-03-25T00:00:00Z".parse().unwrap();
            let mut instants: Vec<Timestamp> = minutes
                .iter()
                .map(|m| origin + SignedDuration::from_mins(i64::from(*m)))
                .collect();
            instants.sort();
            let events = EventSet { instants, ..EventSet::default() };
            let hhmm = |h: u32| format!("{h:02}:00");
            let rules: Vec<Rule> = gaps
                .iter()
                .map(|g| rule(&hhmm(start), &hhmm(end), &format!("{g}m")))
                .collect();
            let range = DateRange::default();
            let report = compare(&rules, &events, range);
            for (rule, column) in rules.iter().zip(&report.settings) {
                let alone = crate::replay::replay(rule, &events, range, false);
                proptest::prop_assert_eq!(column.alarms, alone.totals.alarms);
                proptest::prop_assert_eq!(column.days, alone.totals.sessions);
                let per_day: Vec<usize> = alone.sessions.iter().map(|s| s.alarms.len()).collect();
                let column_days: Vec<usize> = column.per_day.iter().map(|d| d.alarms).collect();
                proptest::prop_assert_eq!(column_days, per_day);
                proptest::prop_assert_eq!(
                    column.days_without_alarm,
                    alone.sessions.iter().filter(|s| s.alarms.is_empty()).count()
                );
            }
        }
    }

    fn prop_gap() -> impl proptest::strategy::Strategy<Value = u32> {
        proptest::prop_oneof![
            proptest::strategy::Just(90u32),
            proptest::strategy::Just(120),
            proptest::strategy::Just(180),
            1u32..600
        ]
    }
}
