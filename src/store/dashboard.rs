//! Read-only queries behind the dashboard: the sessions of many robots on their own dates in
//! a few statements (the list of robots), and one robot's day in full (the day view).
//!
//! Every query goes by an index whatever the history holds: sessions by `(robot_id,
//! local_date)`, events and alarms by `status_check_id`, so a year of history costs the day
//! view nothing.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;

use super::error::StoreError;
use super::outbox;
use super::session_row::{COLUMNS, SessionRow, ms_to_ts};
use super::sql::{Arg, Tx};
use super::types::{OutboxAlarm, StatusCheckId};
use super::{Store, views};
use crate::domain::{RobotId, SessionState};

/// Robots per statement of [`Store::sessions_on`].
const ROBOTS_PER_STATEMENT: usize = 500;

/// A session as the list of robots shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    /// `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// Its window, alarms and result as stored.
    pub state: SessionState,
    /// The version of the rule it runs under.
    pub rule_version: u64,
    /// The last event it took in (observed or late).
    pub last_event: Option<Timestamp>,
    /// Events that came after their window had closed.
    pub late_events: u32,
}

/// One event a session took in, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Megazord's `incoming_event.id`, or for an event posted over HTTP the number its id hashes
    /// to (a local id when it had none).
    pub incoming_event_id: u64,
    /// When it happened (as taken: an instant too far in the future is taken as its arrival).
    pub occurred_at: Timestamp,
    /// `observed`, `late`, `outside` or `pending` (ahead of the session's running window).
    pub state: String,
}

/// Everything the dashboard shows of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct DayView {
    /// `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// Its window, alarms and result as stored.
    pub state: SessionState,
    /// The version of the rule it ran under.
    pub rule_version: u64,
    /// The event it watches.
    pub watched_event: String,
    /// `status_check.phase`: `FUTURE` while running, `COMPLETED` after.
    pub phase: String,
    /// Why the session ended as `FAILED`, when it did.
    pub failure_reason: Option<String>,
    /// Its events in time order.
    pub events: Vec<StoredEvent>,
    /// Its alarms in window order, with their Megazord ids once posted.
    pub alarms: Vec<OutboxAlarm>,
}

impl Store {
    /// The sessions of the robots of `keys`, each on its own date (today in its zone), with
    /// their last event and late events: three statements per 500 robots.
    pub async fn sessions_on(
        &self,
        keys: Vec<(RobotId, Date)>,
    ) -> Result<HashMap<RobotId, SessionSummary>, StoreError> {
        self.run(move |tx| {
            let keys = keys.clone();
            Box::pin(async move { sessions_on(tx, &keys).await })
        })
        .await
    }

    /// The session of `robot_id` on `date`, with its events and alarms; `None` when it has
    /// none (no rule then, or a day before the robot was watched).
    pub async fn day_view(
        &self,
        robot_id: RobotId,
        date: Date,
    ) -> Result<Option<DayView>, StoreError> {
        self.run(move |tx| Box::pin(day_view(tx, robot_id, date)))
            .await
    }
}

async fn sessions_on(
    tx: &mut Tx,
    keys: &[(RobotId, Date)],
) -> Result<HashMap<RobotId, SessionSummary>, StoreError> {
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(ROBOTS_PER_STATEMENT) {
        let mut by_date: BTreeMap<Date, Vec<RobotId>> = BTreeMap::new();
        for (robot, date) in chunk {
            by_date.entry(*date).or_default().push(*robot);
        }
        let mut conditions = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        for (date, robots) in &by_date {
            conditions.push(format!(
                "(local_date = ? AND robot_id IN ({}))",
                vec!["?"; robots.len()].join(", ")
            ));
            args.push(date.to_string().into());
            args.extend(robots.iter().map(|&r| Arg::from(r)));
        }
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT {COLUMNS} FROM status_job_session WHERE {}",
                    conditions.join(" OR ")
                ),
                &args,
            )
            .await?;
        let mut by_id = BTreeMap::new();
        for row in &rows {
            let row = SessionRow::from_row(row)?;
            by_id.insert(row.status_check_id, row);
        }
        if by_id.is_empty() {
            continue;
        }
        let ids: Vec<Arg> = by_id.keys().map(|&id| Arg::from(id)).collect();
        let counts = tx
            .fetch_all(
                &format!(
                    "SELECT status_check_id, \
                     MAX(CASE WHEN state IN ('observed', 'late') THEN occurred_at_ms END) AS last_event_ms, \
                     SUM(CASE WHEN state = 'late' THEN 1 ELSE 0 END) AS late_events \
                     FROM status_job_event WHERE status_check_id IN ({}) GROUP BY status_check_id",
                    vec!["?"; ids.len()].join(", ")
                ),
                &ids,
            )
            .await?;
        let mut events: HashMap<StatusCheckId, (Option<Timestamp>, u32)> = HashMap::new();
        for row in &counts {
            let last = row.opt_int("last_event_ms")?.map(ms_to_ts).transpose()?;
            let late = u32::try_from(row.opt_int("late_events")?.unwrap_or(0))
                .map_err(|_| StoreError::corrupt("late event count out of range"))?;
            events.insert(StatusCheckId::new(row.id("status_check_id")?), (last, late));
        }
        for (id, row) in by_id {
            let (last_event, late_events) = events.get(&id).copied().unwrap_or((None, 0));
            out.insert(
                row.state.session.robot_id,
                SessionSummary {
                    status_check_id: id,
                    state: row.state,
                    rule_version: row.rule_version,
                    last_event,
                    late_events,
                },
            );
        }
    }
    Ok(out)
}

async fn day_view(
    tx: &mut Tx,
    robot_id: RobotId,
    date: Date,
) -> Result<Option<DayView>, StoreError> {
    let Some(row) = tx
        .fetch_optional(
            &format!(
                "SELECT {COLUMNS} FROM status_job_session WHERE robot_id = ? AND local_date = ?"
            ),
            &[robot_id.into(), date.to_string().into()],
        )
        .await?
    else {
        return Ok(None);
    };
    let row = SessionRow::from_row(&row)?;
    let id = row.status_check_id;
    let Some(view) = views::session(tx, id).await? else {
        return Ok(None);
    };
    let events = tx
        .fetch_all(
            "SELECT incoming_event_id, occurred_at_ms, state FROM status_job_event \
             WHERE status_check_id = ? ORDER BY occurred_at_ms, incoming_event_id",
            &[id.into()],
        )
        .await?
        .iter()
        .map(|r| -> Result<StoredEvent, StoreError> {
            Ok(StoredEvent {
                incoming_event_id: r.id("incoming_event_id")?,
                occurred_at: ms_to_ts(r.int("occurred_at_ms")?)?,
                state: r.text("state")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let alarms = outbox::of_session(tx, id).await?;
    Ok(Some(DayView {
        status_check_id: id,
        state: row.state,
        rule_version: row.rule_version,
        watched_event: row.watched_event,
        phase: view.phase,
        failure_reason: view.failure_reason,
        events,
        alarms,
    }))
}

impl Store {
    /// The instants of the events the sessions of `robot_id` from `from` to `to` took in
    /// (observed, late or pending; each event once), ascending: the robot's own history, for
    /// comparing settings over it.
    pub async fn event_instants(
        &self,
        robot_id: RobotId,
        from: Date,
        to: Date,
    ) -> Result<Vec<Timestamp>, StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch_all(
                        "SELECT DISTINCT e.incoming_event_id, e.occurred_at_ms \
                         FROM status_job_session s JOIN status_job_event e \
                         ON e.status_check_id = s.status_check_id \
                         WHERE s.robot_id = ? AND s.local_date >= ? AND s.local_date <= ? \
                         AND e.state IN ('observed', 'late', 'pending') \
                         ORDER BY e.occurred_at_ms",
                        &[
                            robot_id.into(),
                            from.to_string().into(),
                            to.to_string().into(),
                        ],
                    )
                    .await?;
                rows.iter()
                    .map(|r| ms_to_ts(r.int("occurred_at_ms")?))
                    .collect()
            })
        })
        .await
    }
}
