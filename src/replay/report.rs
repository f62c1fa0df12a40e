//! The JSON shape of a replay (and of a live day, so the two compare directly).
//!
//! Instants are UTC, RFC 3339 with `Z`, fractional seconds only when non-zero.

use std::io::{self, Write};

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use serde::Serialize;

use crate::domain::{Alarm, RobotId, Rule, SessionOutcome, SessionResult, Step};

/// A whole replay: the rule, one entry per session, and totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// The rule evaluated.
    pub rule: RuleReport,
    /// The sessions, in date order.
    pub sessions: Vec<SessionReport>,
    /// Sums over the sessions.
    pub totals: Totals,
}

/// The rule as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleReport {
    /// The robot.
    pub robot_id: RobotId,
    /// IANA zone name.
    pub timezone: String,
    /// Local start time A.
    pub start: Time,
    /// Local end time B.
    pub end: Time,
    /// G in minutes.
    pub gap_minutes: u32,
    /// `ignore` or `alarm`.
    pub partial_final_window: &'static str,
    /// The watched event.
    pub event_name: String,
}

/// One session's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReport {
    /// The robot.
    pub robot_id: RobotId,
    /// The local date D.
    pub date: Date,
    /// S.
    pub start: Timestamp,
    /// E.
    pub end: Timestamp,
    /// `SUCCESS`, `ALARM_RAISED`, …
    pub result: &'static str,
    /// Distinct events in `[S, E]`.
    pub events: usize,
    /// Alarms due, in time order.
    pub alarms: Vec<AlarmReport>,
    /// Windows and events, for drawing; not part of the JSON.
    #[serde(skip)]
    pub timeline: Option<Timeline>,
}

/// One alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmReport {
    /// s.
    pub window_start: Timestamp,
    /// u.
    pub window_end: Timestamp,
    /// `nta-<robot>-<date>-<s unix>`.
    pub reference_id: String,
}

/// Counts over the whole replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Sessions evaluated.
    pub sessions: usize,
    /// Alarms due over all sessions.
    pub alarms: usize,
    /// Distinct events of the rule whose local date lies in the evaluated range.
    pub events: usize,
}

/// What happened in a session, in time order, for a timeline drawing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Event instants in `[S, E]`.
    pub events: Vec<Timestamp>,
    /// Observations and closed windows.
    pub steps: Vec<Step>,
}

impl ReplayReport {
    /// An empty report for `rule`.
    pub fn new(rule: &Rule) -> Self {
        ReplayReport {
            rule: RuleReport::from(rule),
            sessions: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// Adds a session and its alarms to the totals.
    pub fn push(&mut self, session: SessionReport) {
        self.totals.sessions += 1;
        self.totals.alarms += session.alarms.len();
        self.sessions.push(session);
    }
}

impl From<&Rule> for RuleReport {
    fn from(rule: &Rule) -> Self {
        RuleReport {
            robot_id: rule.robot_id,
            timezone: rule.timezone_name().to_string(),
            start: rule.start,
            end: rule.end,
            gap_minutes: rule.gap.minutes(),
            partial_final_window: rule.partial_final_window.as_str(),
            event_name: rule.watched_event.clone(),
        }
    }
}

impl From<&Alarm> for AlarmReport {
    fn from(alarm: &Alarm) -> Self {
        AlarmReport {
            window_start: alarm.window.start,
            window_end: alarm.window.end,
            reference_id: alarm.reference_id(),
        }
    }
}

impl SessionReport {
    /// The report of an evaluated session.
    pub fn from_outcome(outcome: &SessionOutcome, timeline: Option<Timeline>) -> Self {
        SessionReport {
            robot_id: outcome.session.robot_id,
            date: outcome.session.date,
            start: outcome.session.start,
            end: outcome.session.end,
            result: outcome.result.as_str(),
            events: outcome.events,
            alarms: outcome.alarms.iter().map(AlarmReport::from).collect(),
            timeline,
        }
    }

    /// The result as a value.
    pub fn result(&self) -> Option<SessionResult> {
        SessionResult::parse(self.result)
    }
}

/// Writes a report as `serde_json::to_string_pretty` of a [`ReplayReport`] would, but session
/// by session as `sessions` yields them, so that memory does not grow with the number of
/// sessions. `events` is [`Totals::events`]; the totals are returned.
pub fn write_json(
    out: &mut impl Write,
    rule: &RuleReport,
    sessions: impl Iterator<Item = SessionReport>,
    events: usize,
) -> io::Result<Totals> {
    let mut totals = Totals {
        events,
        ..Totals::default()
    };
    out.write_all(b"{\n  \"rule\": ")?;
    write_nested(out, rule)?;
    out.write_all(b",\n  \"sessions\": [")?;
    for session in sessions {
        out.write_all(if totals.sessions == 0 {
            b"\n    "
        } else {
            b",\n    "
        })?;
        totals.sessions += 1;
        totals.alarms += session.alarms.len();
        write_nested_at(out, &session, "    ")?;
    }
    if totals.sessions > 0 {
        out.write_all(b"\n  ")?;
    }
    out.write_all(b"],\n  \"totals\": ")?;
    write_nested(out, &totals)?;
    out.write_all(b"\n}\n")?;
    Ok(totals)
}

/// `value` pretty-printed as a member of the top-level object.
fn write_nested(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    write_nested_at(out, value, "  ")
}

/// `value` pretty-printed with every line after the first indented by `indent`. (Pretty JSON
/// has no line breaks inside strings: they are escaped.)
fn write_nested_at(out: &mut impl Write, value: &impl Serialize, indent: &str) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    let mut lines = text.split('\n');
    if let Some(first) = lines.next() {
        out.write_all(first.as_bytes())?;
    }
    for line in lines {
        out.write_all(b"\n")?;
        out.write_all(indent.as_bytes())?;
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RuleInput;
    use crate::replay::{DateRange, EventSet, replay, replay_sessions};
    use jiff::civil::date;

    fn rule() -> Rule {
        RuleInput {
            timezone: "Europe/Amsterdam".into(),
            start: "08:00".into(),
            end: "20:00".into(),
            ..RuleInput::default()
        }
        .validate()
        .unwrap()
    }

    fn streamed(events: &EventSet, from: Date, to: Date) -> String {
        let rule = rule();
        let mut out = Vec::new();
        let count = crate::replay::events_between(&rule, events, from, to);
        write_json(
            &mut out,
            &RuleReport::from(&rule),
            replay_sessions(&rule, events, from, to, false),
            count,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_streamed_json_is_the_pretty_report_byte_for_byte() {
        let events = EventSet {
            instants: vec![
                "2025-03-30T07:10:00Z".parse().unwrap(),
                "2025-03-31T12:00:00Z".parse().unwrap(),
            ],
            ..EventSet::default()
        };
        for (from, to) in [
            (date(2025, 3, 30), date(2025, 4, 2)),
            (date(2025, 3, 30), date(2025, 3, 30)),
            (date(2025, 4, 2), date(2025, 4, 1)),
        ] {
            let range = DateRange {
                from: Some(from),
                to: Some(to),
            };
            let whole = serde_json::to_string_pretty(&replay(&rule(), &events, range, false))
                .unwrap()
                + "\n";
            assert_eq!(streamed(&events, from, to), whole, "{from}..{to}");
        }
    }
}
