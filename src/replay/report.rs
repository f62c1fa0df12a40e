//! The JSON shape of a replay (and of a live day, so the two compare directly).
//!
//! Instants are UTC, RFC 3339 with `Z`, fractional seconds only when non-zero.

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
