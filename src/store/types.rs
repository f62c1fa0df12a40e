//! The values the store takes and gives back.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;

use crate::domain::{
    AlarmIdentity, EventClass, RobotId, Rule, Session, SessionResult, SessionState, Window,
};
use crate::megazord::MegazordEventId;

/// A session, by the id of its `status_check` row. A type of its own so that a session's id
/// cannot be passed where an alarm's or a Megazord event's is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StatusCheckId(u64);

impl StatusCheckId {
    /// The session whose `status_check` row has this id.
    pub const fn new(id: u64) -> Self {
        StatusCheckId(id)
    }

    /// The row id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for StatusCheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An alarm in the outbox, by the id of its `status_job_alarm` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlarmId(u64);

impl AlarmId {
    /// The alarm whose outbox row has this id.
    pub const fn new(id: u64) -> Self {
        AlarmId(id)
    }

    /// The row id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for AlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A rule as stored: the rule, its version (grows by one on every change) and when it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    /// The rule.
    pub rule: Rule,
    /// Starts at 1; every change adds one.
    pub version: u64,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it was created or last enabled (service time); a session running at that instant
    /// is watched from it, not from S (semantics §6). None for a rule stored before this was kept.
    pub watching_since: Option<Timestamp>,
}

impl StoredRule {
    /// Where watching `session` of this rule starts: at S, or when the rule was created or
    /// enabled if that was later (within the session; semantics §6).
    pub fn watching_from(&self, session: &Session) -> Timestamp {
        self.watching_since
            .map_or(session.start, |t| t.clamp(session.start, session.end))
    }
}

/// What saving a rule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChange {
    /// The version now stored.
    pub version: u64,
    /// False when the stored rule already said the same.
    pub changed: bool,
    /// The running sessions the change was applied to (semantics §6).
    pub sessions: Vec<StatusCheckId>,
}

/// The script columns of a `status_check` row and the template it uses (contracts §4.7, §6 item 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCheckRefs {
    /// `status_check_template.id` of the toilet-monitoring template.
    pub template_id: u32,
    /// `script_step.id` of the placeholder step.
    pub step_id: u64,
    /// `script_version.id` of the placeholder script.
    pub script_version_id: u64,
    /// `scheduled_id` (no foreign key).
    pub scheduled_id: u64,
}

/// An incoming watched event, as the queue or the history delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventInput {
    /// Megazord `incoming_event.id`: the dedupe key.
    pub incoming_event_id: u64,
    /// Megazord `outgoing_event.id` when the event came through a subscription.
    pub outgoing_event_id: Option<u64>,
    /// When the event happened.
    pub occurred_at: Timestamp,
}

/// What `start_session` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// This call created the session.
    Created(StatusCheckId),
    /// The session for this robot and date already existed.
    Existing(StatusCheckId),
}

impl StartOutcome {
    /// The session.
    pub fn status_check_id(self) -> StatusCheckId {
        match self {
            StartOutcome::Created(id) | StartOutcome::Existing(id) => id,
        }
    }
}

/// What `apply_event` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The event was handled before; nothing was written.
    Duplicate,
    /// The event was handled; `Ahead` means it waits until the windows before it close.
    Applied(EventClass),
    /// There is no such session.
    NoSession,
}

/// What `close_window` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The window closed; the alarm it made due (now in the outbox) and the session result
    /// (`Pending` while it runs on).
    Closed {
        /// The alarm, if one was due.
        alarm: Option<AlarmIdentity>,
        /// The window the session is in now, `None` once it ended.
        next: Option<Window>,
        /// `Pending`, or how the session ended.
        result: SessionResult,
    },
    /// The session's deadline is no longer the one asked for: another worker closed it or an
    /// event moved it.
    Stale {
        /// The current deadline.
        deadline: Timestamp,
    },
    /// The session has ended (or does not exist).
    NotRunning,
}

/// What `end_session` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOutcome {
    /// The session ended with the given result.
    Ended,
    /// The session had already ended (or does not exist).
    NotRunning,
}

/// One alarm in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxAlarm {
    /// The outbox row.
    pub id: AlarmId,
    /// The session it belongs to.
    pub status_check_id: StatusCheckId,
    /// Robot, date and window start.
    pub identity: AlarmIdentity,
    /// The window end `u`.
    pub window_end: Timestamp,
    /// `nta-<robot>-<date>-<s>`.
    pub reference_id: String,
    /// The event name to post.
    pub alarm_event: String,
    /// `pending`, `sending`, `sent` or `failed`.
    pub state: String,
    /// How many times it was claimed for posting.
    pub attempts: u32,
    /// The last posting error.
    pub last_error: Option<String>,
    /// The alarm's `incoming_event.id` at Megazord once posted.
    pub megazord_incoming_id: Option<MegazordEventId>,
}

/// One `status_check_record` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// 1, 2, 3 … per status check.
    pub order: u32,
    /// `SUBSCRIBED`, `EVENT_OBSERVED`, `EVENT_LATE` or `ALARM_SENT`.
    pub result: String,
    /// The watched or the alarm event name.
    pub event_name: String,
    /// The incoming event (or the alarm's id at Megazord).
    pub incoming_event_id: Option<u64>,
    /// The outgoing event, when known.
    pub outgoing_event_id: Option<u64>,
    /// The event time, or the window end for an alarm (whole seconds).
    pub created_at: Timestamp,
}

/// A session as stored: the state the core drives, the shared rows and the records.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    /// `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// The persisted window state.
    pub state: SessionState,
    /// `status_check.phase`.
    pub phase: String,
    /// `status_check.result`.
    pub result: String,
    /// `status_check.subscription_id`.
    pub subscription_id: Option<u64>,
    /// The poller row `(since, until, lock_id)` while the session runs.
    pub poller: Option<(Timestamp, Timestamp, Option<String>)>,
    /// The records in order.
    pub records: Vec<RecordView>,
    /// Why the session ended as `FAILED`, when it did and the reason is known.
    pub failure_reason: Option<String>,
}

impl SessionView {
    /// The session's local date.
    pub fn date(&self) -> Date {
        self.state.session.date
    }
}

/// A running window whose deadline has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueWindow {
    /// The session.
    pub status_check_id: StatusCheckId,
    /// The session's robot.
    pub robot_id: RobotId,
    /// The current window's start `s`.
    pub window_start: Timestamp,
    /// Its current deadline `u`.
    pub deadline: Timestamp,
}
