//! The `status_job_session` row and its conversion to and from the core's [`SessionState`].

use jiff::Timestamp;
use jiff::civil::Date;

use super::error::StoreError;
use super::sql::{Arg, Row};
use super::types::StatusCheckId;
use crate::domain::{Gap, PartialFinalWindow, Session, SessionResult, SessionState, Window};

/// The columns [`SessionRow::from_row`] reads.
pub const COLUMNS: &str = "status_check_id, robot_id, local_date, session_start_ms, session_end_ms, \
     window_start_ms, window_end_ms, window_gap_minutes, gap_minutes, partial_final_window, \
     alarms, result, watched_event, alarm_event, rule_version, owner, pending_events, records, version";

/// One session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub status_check_id: StatusCheckId,
    pub state: SessionState,
    pub watched_event: String,
    pub alarm_event: String,
    pub rule_version: u64,
    pub owner: String,
    /// How many of the session's events wait for an earlier window to close.
    pub pending_events: u32,
    /// The highest `status_check_record.order` written for the session.
    pub records: u32,
    /// Moved on by every transition that changes the row (see [`super::session_copies`]).
    pub version: u64,
}

impl SessionRow {
    /// Reads a row selected with [`COLUMNS`].
    pub fn from_row(row: &Row) -> Result<SessionRow, StoreError> {
        let robot_id = row.robot_id("robot_id")?;
        let date_text = row.text("local_date")?;
        let date: Date = date_text
            .parse()
            .map_err(|e| StoreError::corrupt(format!("local_date {date_text:?}: {e}")))?;
        let session = Session {
            robot_id,
            date,
            start: ms_to_ts(row.int("session_start_ms")?)?,
            end: ms_to_ts(row.int("session_end_ms")?)?,
        };
        let window = Window {
            start: ms_to_ts(row.int("window_start_ms")?)?,
            end: ms_to_ts(row.int("window_end_ms")?)?,
        };
        let result_text = row.text("result")?;
        let state = SessionState {
            session,
            gap: gap(row.int("gap_minutes")?)?,
            partial_final_window: row
                .text("partial_final_window")?
                .parse::<PartialFinalWindow>()
                .map_err(|e| StoreError::corrupt(e.to_string()))?,
            window,
            window_gap: gap(row.int("window_gap_minutes")?)?,
            alarms: u32::try_from(row.int("alarms")?)
                .map_err(|_| StoreError::corrupt("alarms out of range"))?,
            result: SessionResult::parse(&result_text)
                .ok_or_else(|| StoreError::corrupt(format!("result {result_text:?}")))?,
        };
        Ok(SessionRow {
            status_check_id: StatusCheckId::new(row.id("status_check_id")?),
            state,
            watched_event: row.text("watched_event")?,
            alarm_event: row.text("alarm_event")?,
            rule_version: row.id("rule_version")?,
            owner: row.text("owner")?,
            pending_events: u32::try_from(row.int("pending_events")?)
                .map_err(|_| StoreError::corrupt("pending_events out of range"))?,
            records: u32::try_from(row.int("records")?)
                .map_err(|_| StoreError::corrupt("records out of range"))?,
            version: row.id("version")?,
        })
    }

    /// The row as the database holds it once written: instants are stored in whole
    /// milliseconds, while the core may have moved a window to an event's finer instant. A
    /// copy kept for later decisions must be this, or it would decide on bounds the database
    /// does not have.
    pub fn as_stored(&self) -> SessionRow {
        let ms = |t: Timestamp| ms_to_ts(ts_to_ms(t)).unwrap_or(t);
        let mut row = self.clone();
        let s = &mut row.state;
        s.session.start = ms(s.session.start);
        s.session.end = ms(s.session.end);
        s.window.start = ms(s.window.start);
        s.window.end = ms(s.window.end);
        row
    }

    /// The values of the state columns, in the order of [`STATE_COLUMNS`].
    pub fn state_args(&self) -> Vec<Arg> {
        let s = &self.state;
        vec![
            ts_to_ms(s.session.end).into(),
            ts_to_ms(s.window.start).into(),
            ts_to_ms(s.window.end).into(),
            s.window_gap.minutes().into(),
            s.gap.minutes().into(),
            s.partial_final_window.as_str().into(),
            s.alarms.into(),
            s.result.as_str().into(),
            self.rule_version.into(),
            self.pending_events.into(),
            self.records.into(),
        ]
    }

    /// The `SET` items (each followed by `, `) and their values for the state columns that
    /// differ from `before`: a transition usually changes three or four of them, and on MySQL
    /// writing only those is measurably cheaper.
    pub fn changed_assignments(&self, before: &SessionRow) -> (String, Vec<Arg>) {
        let mut sets = String::new();
        let mut args = Vec::new();
        for ((column, new), old) in STATE_COLUMNS
            .iter()
            .zip(self.state_args())
            .zip(before.state_args())
        {
            if new != old {
                sets.push_str(column);
                sets.push_str(" = ?, ");
                args.push(new);
            }
        }
        (sets, args)
    }
}

/// The session columns that follow its state, in the order of [`SessionRow::state_args`].
pub const STATE_COLUMNS: [&str; 11] = [
    "session_end_ms",
    "window_start_ms",
    "window_end_ms",
    "window_gap_minutes",
    "gap_minutes",
    "partial_final_window",
    "alarms",
    "result",
    "rule_version",
    "pending_events",
    "records",
];

fn gap(minutes: i64) -> Result<Gap, StoreError> {
    u32::try_from(minutes)
        .ok()
        .and_then(|m| Gap::from_minutes(m).ok())
        .ok_or_else(|| StoreError::corrupt(format!("gap of {minutes} minutes")))
}

/// An instant as stored in the service tables.
pub fn ts_to_ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// A stored instant read back.
pub fn ms_to_ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::corrupt(format!("instant {ms}: {e}")))
}

/// An instant as a shared-table TIMESTAMP value (UTC, whole seconds; the connection zone is
/// `+00:00` on MySQL, and SQLite's CURRENT_TIMESTAMP uses the same text).
pub fn ts_to_sql(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}
