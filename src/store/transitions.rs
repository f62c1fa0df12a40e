//! The state transitions, each run inside one transaction by [`super::Store`]. Every decision
//! about windows is the core's ([`SessionState`]); this module only loads the state under a
//! row lock, calls the core, and writes down what it decided. After each write a transition
//! passes a [`Tx::checkpoint`] where a test can kill the connection.

use std::collections::HashMap;

use jiff::Timestamp;

use super::error::StoreError;
use super::rules::{self, StoredColumns};
use super::session_row::{COLUMNS, STATE_COLUMNS, SessionRow, ts_to_ms, ts_to_sql};
use super::sql::{Arg, Tx};
use super::types::{
    ApplyOutcome, CloseOutcome, EndOutcome, EventInput, RuleChange, StartOutcome, StatusCheckId,
    StatusCheckRefs,
};
use crate::domain::{Alarm, EventClass, RobotId, Rule, Session, SessionResult, SessionState};

/// `status_check_record.result` words (semantics §8).
pub const RECORD_SUBSCRIBED: &str = "SUBSCRIBED";
/// An event moved the window.
pub const RECORD_EVENT_OBSERVED: &str = "EVENT_OBSERVED";
/// An event of the session with `t < s`.
pub const RECORD_EVENT_LATE: &str = "EVENT_LATE";
/// An alarm was posted.
pub const RECORD_ALARM_SENT: &str = "ALARM_SENT";

/// `status_job_event.state` words.
const EVENT_OBSERVED: &str = "observed";
const EVENT_LATE: &str = "late";
const EVENT_OUTSIDE: &str = "outside";
const EVENT_PENDING: &str = "pending";

/// Creates the session's `status_check`, poller and key rows, or finds the existing ones. A
/// rule watching only since an instant after S starts the session's first window there.
#[allow(clippy::too_many_arguments)]
pub async fn start_session(
    tx: &mut Tx,
    rule: &Rule,
    rule_version: u64,
    watching_since: Option<Timestamp>,
    session: Session,
    owner: &str,
    refs: StatusCheckRefs,
    now: Timestamp,
) -> Result<StartOutcome, StoreError> {
    let date = session.date.to_string();
    if let Some(id) = find_session(tx, session.robot_id, &date).await? {
        return Ok(StartOutcome::Existing(id));
    }
    let state = match watching_since {
        Some(t) => SessionState::begin_from(session, rule.gap, rule.partial_final_window, t),
        None => SessionState::begin(session, rule.gap, rule.partial_final_window),
    };
    let id = StatusCheckId::new(
        tx.insert(
            "INSERT INTO status_check (robot_id, status_check_template_id, phase, result, \
             step_id, script_version_id, scheduled_id, planned_at, created_at, updated_at) \
             VALUES (?, ?, 'FUTURE', 'PENDING', ?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            &[
                session.robot_id.into(),
                refs.template_id.into(),
                refs.step_id.into(),
                refs.script_version_id.into(),
                refs.scheduled_id.into(),
                ts_to_sql(session.start).into(),
            ],
        )
        .await?,
    );
    tx.checkpoint().await?;
    tx.execute(
        "INSERT INTO status_check_poller (status_check_id, since, `until`, lock_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        &[
            id.into(),
            ts_to_sql(state.window.start).into(),
            ts_to_sql(state.window.end).into(),
            owner.into(),
        ],
    )
    .await?;
    tx.checkpoint().await?;
    let row = SessionRow {
        status_check_id: id,
        state,
        watched_event: rule.watched_event.clone(),
        alarm_event: rule.alarm_event.clone(),
        rule_version,
        owner: owner.to_string(),
        pending_events: 0,
        records: 0,
        version: 1,
    };
    let mut args: Vec<Arg> = vec![
        id.into(),
        session.robot_id.into(),
        date.clone().into(),
        ts_to_ms(session.start).into(),
        row.watched_event.clone().into(),
        row.alarm_event.clone().into(),
        owner.into(),
        ts_to_ms(now).into(),
        ts_to_ms(now).into(),
    ];
    args.extend(row.state_args());
    let sql = format!(
        "{} INTO status_job_session (status_check_id, robot_id, local_date, session_start_ms, \
         watched_event, alarm_event, owner, created_at_ms, updated_at_ms, session_end_ms, \
         window_start_ms, window_end_ms, window_gap_minutes, gap_minutes, partial_final_window, \
         alarms, result, rule_version, pending_events, records) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tx.dialect().insert_ignore()
    );
    if tx.execute(&sql, &args).await? == 0 {
        // Another instance created the session since the lookup above: give up this attempt
        // (rolling back the rows made so far) and find its session on the retry.
        return Err(StoreError::Raced);
    }
    tx.checkpoint().await?;
    Ok(StartOutcome::Created(id))
}

async fn find_session(
    tx: &mut Tx,
    robot_id: RobotId,
    date: &str,
) -> Result<Option<StatusCheckId>, StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT status_check_id FROM status_job_session WHERE robot_id = ? AND local_date = ?",
            &[robot_id.into(), date.into()],
        )
        .await?;
    row.map(|r| r.id("status_check_id").map(StatusCheckId::new))
        .transpose()
}

/// Locks the session row for the rest of the transaction and reads it.
pub async fn lock_session(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
) -> Result<Option<SessionRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM status_job_session WHERE status_check_id = ?{}",
        tx.dialect().for_update()
    );
    let row = tx.fetch_optional(&sql, &[status_check_id.into()]).await?;
    row.as_ref().map(SessionRow::from_row).transpose()
}

/// Locks the session row and reads it, with whether the event was already taken into it, in
/// one statement. Every transition that takes an event holds this lock, so the answer holds
/// until commit; and the event row is then written with a plain INSERT, so that even an
/// answer read too early could only make the transaction fail, never take the event twice.
async fn lock_session_for_event(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
    incoming_event_id: u64,
) -> Result<Option<(SessionRow, bool)>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, (SELECT COUNT(*) FROM status_job_event e \
         WHERE e.status_check_id = s.status_check_id AND e.incoming_event_id = ?) AS event_taken \
         FROM status_job_session s WHERE s.status_check_id = ?{}",
        tx.dialect().for_update()
    );
    let Some(row) = tx
        .fetch_optional(&sql, &[incoming_event_id.into(), status_check_id.into()])
        .await?
    else {
        return Ok(None);
    };
    let known = row.int("event_taken")? > 0;
    Ok(Some((SessionRow::from_row(&row)?, known)))
}

/// Where a transition's session row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Read under the row lock in this transaction: current until it ends.
    Locked,
    /// This instance's copy from the session's last transition ([`super::session_copies`]):
    /// current only if the row's version still matches, which [`save`] checks.
    Copy,
}

/// Dedupes, classifies and applies one event.
///
/// With a copy of the session row and no events waiting, the event is decided on the copy
/// and nothing is read: the event row's primary key refuses an event taken already, and the
/// session row's version a copy gone stale, and either failure runs the transition again
/// from a locked read.
pub async fn apply_event(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
    event: EventInput,
    now: Timestamp,
) -> Result<ApplyOutcome, StoreError> {
    Ok(apply_event_reporting(tx, status_check_id, event, now)
        .await?
        .0)
}

/// [`apply_event`], also saying whether the event moved the session's deadline earlier.
pub async fn apply_event_reporting(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
    event: EventInput,
    now: Timestamp,
) -> Result<(ApplyOutcome, bool), StoreError> {
    let copy = tx.take_copy(status_check_id, |c| c.pending_events == 0);
    let (mut row, basis) = match copy {
        Some(copy) => (copy, Basis::Copy),
        None => {
            let Some((row, known)) =
                lock_session_for_event(tx, status_check_id, event.incoming_event_id).await?
            else {
                return Ok((ApplyOutcome::NoSession, false));
            };
            if known {
                tx.keep_copy(row);
                return Ok((ApplyOutcome::Duplicate, false));
            }
            (row, Basis::Locked)
        }
    };
    let before = row.clone();
    let class = row.state.classify(event.occurred_at);
    tx.write(
        "INSERT INTO status_job_event (status_check_id, incoming_event_id, outgoing_event_id, \
         occurred_at_ms, state, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        &[
            status_check_id.into(),
            event.incoming_event_id.into(),
            event.outgoing_event_id.into(),
            ts_to_ms(event.occurred_at).into(),
            event_state(class).into(),
            ts_to_ms(now).into(),
        ],
    )
    .await?;
    tx.checkpoint().await?;
    let applied = row.state.observe(event.occurred_at);
    debug_assert_eq!(applied, class);
    if class == EventClass::Ahead {
        row.pending_events += 1;
    }
    if let Some(result) = record_result(class) {
        append_record(tx, &mut row, event, result).await?;
    }
    if class == EventClass::Observed {
        drain_pending(tx, &mut row).await?;
    }
    let earlier = row.state.window.end < before.state.window.end;
    save(tx, &before, &mut row, now, basis).await?;
    Ok((ApplyOutcome::Applied(class), earlier))
}

/// Closes the window whose deadline is `expected_deadline`, if it is still the current one.
/// A copy of the session row with that deadline and no events waiting is closed without a
/// read, as in [`apply_event`].
pub async fn close_window(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
    expected_deadline: Timestamp,
    now: Timestamp,
) -> Result<CloseOutcome, StoreError> {
    let copy = tx.take_copy(status_check_id, |c| {
        c.pending_events == 0 && c.state.deadline() == Some(expected_deadline)
    });
    let (row, basis) = match copy {
        Some(copy) => (copy, Basis::Copy),
        None => match lock_session(tx, status_check_id).await? {
            Some(row) => (row, Basis::Locked),
            None => return Ok(CloseOutcome::NotRunning),
        },
    };
    close_row(tx, row, basis, expected_deadline, now, None).await
}

/// Locks the rows of several sessions for the rest of the transaction and reads them, in one
/// statement and in `status_check_id` order (the order any transaction locking several
/// sessions takes them in, so that two never wait for each other).
pub async fn lock_sessions(
    tx: &mut Tx,
    status_check_ids: &[StatusCheckId],
) -> Result<HashMap<StatusCheckId, SessionRow>, StoreError> {
    if status_check_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let marks = vec!["?"; status_check_ids.len()].join(", ");
    let sql = format!(
        "SELECT {COLUMNS} FROM status_job_session WHERE status_check_id IN ({marks}) \
         ORDER BY status_check_id{}",
        tx.dialect().for_update()
    );
    let args: Vec<Arg> = status_check_ids.iter().map(|&id| id.into()).collect();
    let rows = tx.fetch_all(&sql, &args).await?;
    rows.iter()
        .map(|r| SessionRow::from_row(r).map(|row| (row.status_check_id, row)))
        .collect()
}

/// [`close_window`] on a session row already read: locked by this transaction, or a copy.
/// With a `claimant`, the alarm the close makes due is written already claimed by it (as
/// [`crate::store::Store::claim_alarms`] would claim it at `now`), so that its post can start
/// the moment this transaction commits.
pub async fn close_row(
    tx: &mut Tx,
    mut row: SessionRow,
    basis: Basis,
    expected_deadline: Timestamp,
    now: Timestamp,
    claimant: Option<&str>,
) -> Result<CloseOutcome, StoreError> {
    let Some(deadline) = row.state.deadline() else {
        return Ok(CloseOutcome::NotRunning);
    };
    if deadline != expected_deadline {
        return Ok(CloseOutcome::Stale { deadline });
    }
    let before = row.clone();
    let closed = row
        .state
        .close()
        .ok_or_else(|| StoreError::corrupt("a running session had no window to close"))?;
    if let Some(alarm) = closed.alarm {
        insert_alarm(tx, &row, &alarm, now, claimant).await?;
    }
    drain_pending(tx, &mut row).await?;
    save(tx, &before, &mut row, now, basis).await?;
    Ok(CloseOutcome::Closed {
        alarm: closed.alarm.map(|a| a.identity),
        next: row.state.is_running().then_some(row.state.window),
        result: row.state.result,
    })
}

/// Ends a running session with `DISABLED` or `FAILED`.
pub async fn end_session(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
    result: SessionResult,
    now: Timestamp,
) -> Result<EndOutcome, StoreError> {
    let Some(mut row) = lock_session(tx, status_check_id).await? else {
        return Ok(EndOutcome::NotRunning);
    };
    if !row.state.is_running() {
        return Ok(EndOutcome::NotRunning);
    }
    let before = row.clone();
    match result {
        SessionResult::Disabled => row.state.disable(),
        SessionResult::Failed => row.state.fail(),
        other => {
            return Err(StoreError::Invalid(format!(
                "a session can only be ended as DISABLED or FAILED, not {other}"
            )));
        }
    }
    save(tx, &before, &mut row, now, Basis::Locked).await?;
    Ok(EndOutcome::Ended)
}

/// Stores the subscription of a session and writes its `SUBSCRIBED` record; false (and
/// nothing written) when the session has one already or does not exist.
pub async fn record_subscribed(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
    subscription_id: u64,
    at: Timestamp,
) -> Result<bool, StoreError> {
    let Some(mut row) = lock_session(tx, status_check_id).await? else {
        return Ok(false);
    };
    // Another instance may have subscribed the session first: one subscription per session.
    let existing = tx
        .fetch_optional(
            "SELECT subscription_id FROM status_check WHERE id = ?",
            &[status_check_id.into()],
        )
        .await?;
    // Recorded either way: a spare too, so that the janitor deletes it at Megazord should the
    // caller's own delete fail, rather than leave it delivering to the queue for good.
    keep_subscription(
        tx,
        subscription_id,
        status_check_id,
        row.state.session.robot_id,
        at,
    )
    .await?;
    if existing.is_some_and(|r| r.opt_int("subscription_id").ok().flatten().is_some()) {
        return Ok(false);
    }
    let before = row.clone();
    tx.write(
        "UPDATE status_check SET subscription_id = ?, updated_at = CURRENT_TIMESTAMP WHERE id = ?",
        &[subscription_id.into(), status_check_id.into()],
    )
    .await?;
    tx.checkpoint().await?;
    let event_name = row.watched_event.clone();
    insert_record(tx, &mut row, None, None, &event_name, RECORD_SUBSCRIBED, at).await?;
    save(tx, &before, &mut row, at, Basis::Locked).await?;
    Ok(true)
}

/// Writes down a subscription made for a session, whether it became the session's or a spare.
async fn keep_subscription(
    tx: &mut Tx,
    subscription_id: u64,
    status_check_id: StatusCheckId,
    robot_id: RobotId,
    at: Timestamp,
) -> Result<(), StoreError> {
    tx.write(
        &format!(
            "{} INTO status_job_subscription (subscription_id, status_check_id, robot_id, created_at_ms) \
             VALUES (?, ?, ?, ?)",
            tx.dialect().insert_ignore()
        ),
        &[
            subscription_id.into(),
            status_check_id.into(),
            robot_id.into(),
            super::session_row::ts_to_ms(at).into(),
        ],
    )
    .await
}

/// Saves a rule (a new version when anything changed) and applies the change to the robot's
/// running sessions as semantics §6 says: a new end re-clamps, a new gap applies from the next
/// window, disabling ends the session with `DISABLED`.
pub async fn set_rule(tx: &mut Tx, rule: &Rule, now: Timestamp) -> Result<RuleChange, StoreError> {
    let wanted = StoredColumns::of(rule);
    let current = rules::lock(tx, rule.robot_id).await?;
    let version = match &current {
        Some(locked) if locked.columns == wanted => {
            return Ok(RuleChange {
                version: locked.version,
                changed: false,
                sessions: Vec::new(),
            });
        }
        Some(locked) => locked.version + 1,
        None => 1,
    };
    // A rule created or enabled now watches from now: nobody was watching before (semantics §6).
    let watching_since = match &current {
        Some(locked) if locked.columns.enabled() => locked.watching_since,
        _ if rule.enabled => Some(now),
        Some(locked) => locked.watching_since,
        None => None,
    };
    rules::write(tx, &wanted, version, watching_since, now).await?;
    tx.checkpoint().await?;
    let running = tx
        .fetch_all(
            "SELECT status_check_id FROM status_job_session WHERE robot_id = ? AND result = 'PENDING' \
             ORDER BY status_check_id",
            &[rule.robot_id.into()],
        )
        .await?;
    let mut sessions = Vec::new();
    for r in running {
        let id = StatusCheckId::new(r.id("status_check_id")?);
        let Some(mut row) = lock_session(tx, id).await? else {
            continue;
        };
        if !row.state.is_running() {
            continue;
        }
        let before = row.clone();
        if rule.enabled {
            row.state.change_gap(rule.gap);
            row.state.partial_final_window = rule.partial_final_window;
            if let Some(new) = Session::on(rule, row.state.session.date)
                && new.end != row.state.session.end
            {
                row.state.change_end(new.end);
            }
            row.rule_version = version;
            drain_pending(tx, &mut row).await?;
        } else {
            row.state.disable();
            row.rule_version = version;
        }
        save(tx, &before, &mut row, now, Basis::Locked).await?;
        sessions.push(id);
    }
    Ok(RuleChange {
        version,
        changed: true,
        sessions,
    })
}

/// Applies the waiting (`pending`) events that the current window now reaches, in time order,
/// so that a session fed an event early ends exactly as one fed it on time.
async fn drain_pending(tx: &mut Tx, row: &mut SessionRow) -> Result<(), StoreError> {
    if row.pending_events == 0 {
        return Ok(());
    }
    let pending = tx
        .fetch_all(
            "SELECT incoming_event_id, outgoing_event_id, occurred_at_ms FROM status_job_event \
             WHERE status_check_id = ? AND state = 'pending' ORDER BY occurred_at_ms, incoming_event_id",
            &[row.status_check_id.into()],
        )
        .await?;
    for p in pending {
        let event = EventInput {
            incoming_event_id: p.id("incoming_event_id")?,
            outgoing_event_id: p
                .opt_int("outgoing_event_id")?
                .map(|_| p.id("outgoing_event_id"))
                .transpose()?,
            occurred_at: super::session_row::ms_to_ts(p.int("occurred_at_ms")?)?,
        };
        let class = row.state.observe(event.occurred_at);
        if class == EventClass::Ahead {
            break;
        }
        row.pending_events = row.pending_events.saturating_sub(1);
        tx.write(
            "UPDATE status_job_event SET state = ? WHERE status_check_id = ? AND incoming_event_id = ?",
            &[event_state(class).into(), row.status_check_id.into(), event.incoming_event_id.into()],
        )
        .await?;
        tx.checkpoint().await?;
        if let Some(result) = record_result(class) {
            append_record(tx, row, event, result).await?;
        }
    }
    Ok(())
}

/// Writes the session row (only the columns that changed, and the next version) and the shared
/// rows that mirror it: the poller's window while the session runs; `COMPLETED` and the
/// result, without a poller, once it ended. A row decided on a copy is always written, as that
/// write is what proves the copy current; one read under the lock only when it changed.
pub async fn save(
    tx: &mut Tx,
    before: &SessionRow,
    row: &mut SessionRow,
    now: Timestamp,
    basis: Basis,
) -> Result<(), StoreError> {
    if basis == Basis::Locked && *before == *row {
        tx.keep_copy(row.clone());
        return Ok(());
    }
    let id = row.status_check_id;
    row.version = before.version + 1;
    let (assignments, mut args) = row.changed_assignments(before);
    args.extend([
        ts_to_ms(now).into(),
        before.version.into(),
        row.version.into(),
        id.into(),
    ]);
    // A version other than the expected one becomes 0, which `ck_status_job_session_version`
    // refuses: the statement fails and the transaction with it (never under the lock). Decided
    // on a copy, the transition has locked nothing yet: this write goes first, so that it
    // takes the session row's lock before any other, as every transition does.
    let sql = format!(
        "UPDATE status_job_session SET {assignments}updated_at_ms = ?, \
         version = CASE WHEN version = ? THEN ? ELSE 0 END WHERE status_check_id = ?"
    );
    match basis {
        Basis::Copy => tx.write_first(&sql, &args).await?,
        Basis::Locked => tx.write(&sql, &args).await?,
    }
    tx.keep_copy(row.clone());
    tx.checkpoint().await?;
    mirror(tx, &before.state, row).await
}

/// Writes the shared rows that mirror a session row changed from `before`: the poller's window
/// while the session runs; `COMPLETED` and the result, without a poller, once it ended.
async fn mirror(tx: &mut Tx, before: &SessionState, row: &SessionRow) -> Result<(), StoreError> {
    let id = row.status_check_id;
    if row.state.is_running() {
        if before.window != row.state.window {
            tx.write(
                "UPDATE status_check_poller SET since = ?, `until` = ?, updated_at = CURRENT_TIMESTAMP \
                 WHERE status_check_id = ?",
                &[
                    ts_to_sql(row.state.window.start).into(),
                    ts_to_sql(row.state.window.end).into(),
                    id.into(),
                ],
            )
            .await?;
            tx.checkpoint().await?;
        }
    } else if before.is_running() {
        tx.write(
            "UPDATE status_check SET phase = 'COMPLETED', result = ?, updated_at = CURRENT_TIMESTAMP \
             WHERE id = ?",
            &[row.state.result.as_str().into(), id.into()],
        )
        .await?;
        tx.checkpoint().await?;
        tx.write(
            "DELETE FROM status_check_poller WHERE status_check_id = ?",
            &[id.into()],
        )
        .await?;
        tx.checkpoint().await?;
    }
    Ok(())
}

/// Writes a session row that events changed since it was read under the lock in this
/// transaction, or since the copy it was decided on (`row` carries its next version, one more
/// per event that changed it), and the shared rows that mirror it, as [`save`] does after each
/// of those events; `now` is the service time of the last of them. `None`: no event changed
/// it, and only its version is checked, as what proves a copy current.
pub(super) async fn save_applied(
    tx: &mut Tx,
    read: &SessionRow,
    row: &SessionRow,
    now: Option<Timestamp>,
) -> Result<(), StoreError> {
    let id = row.status_check_id;
    let (assignments, mut args) = row.changed_assignments(read);
    let touched = match now {
        Some(now) => {
            args.push(ts_to_ms(now).into());
            "updated_at_ms = ?, "
        }
        None => "",
    };
    args.extend([read.version.into(), row.version.into(), id.into()]);
    tx.write(
        &format!(
            "UPDATE status_job_session SET {assignments}{touched}\
             version = CASE WHEN version = ? THEN ? ELSE 0 END WHERE status_check_id = ?"
        ),
        &args,
    )
    .await?;
    tx.checkpoint().await?;
    mirror(tx, &read.state, row).await
}

/// [`save_applied`] for several sessions at once: one `UPDATE` of their session rows and one of
/// the pollers of those whose window moved, instead of one or two per session. Each row's
/// version check stays its own (a mismatch fails the statement, and the transaction with it);
/// a session that ended is mirrored alone, as [`mirror`] does (events never end one, so this is
/// the exception). `changed` is `(as read under the lock or copied, as written, service time
/// of its last change)`, in `status_check_id` order.
pub(super) async fn save_applied_many(
    tx: &mut Tx,
    changed: &[(&SessionRow, &SessionRow, Option<Timestamp>)],
) -> Result<(), StoreError> {
    if let [(read, row, at)] = changed {
        return save_applied(tx, read, row, *at).await;
    }
    for chunk in changed.chunks(ROWS_PER_UPDATE) {
        let (sql, args) = sessions_update(chunk);
        tx.write(&sql, &args).await?;
        tx.checkpoint().await?;
        let moved: Vec<&SessionRow> = chunk
            .iter()
            .filter(|(read, row, _)| {
                row.state.is_running() && read.state.window != row.state.window
            })
            .map(|(_, row, _)| *row)
            .collect();
        if !moved.is_empty() {
            let (sql, args) = pollers_update(&moved);
            tx.write(&sql, &args).await?;
            tx.checkpoint().await?;
        }
        for (read, row, _) in chunk {
            if !row.state.is_running() && read.state.is_running() {
                mirror(tx, &read.state, row).await?;
            }
        }
    }
    Ok(())
}

/// Sessions per folded `UPDATE`: at most 11 state columns, the time and the version, some 30
/// values each, well below SQLite's limit on bound values.
const ROWS_PER_UPDATE: usize = 200;

/// `WHEN ? THEN <then>` for each of `ids`, as `CASE status_check_id … END`.
fn case_by_id(ids: usize, then: &str, otherwise: &str) -> String {
    let mut sql = String::from("CASE status_check_id");
    for _ in 0..ids {
        sql.push_str(" WHEN ? THEN ");
        sql.push_str(then);
    }
    sql.push_str(" ELSE ");
    sql.push_str(otherwise);
    sql.push_str(" END");
    sql
}

/// One `UPDATE` of every session row of `chunk`: each state column changed in one of them,
/// the time and the checked version, each a `CASE` on the row's id.
fn sessions_update(chunk: &[(&SessionRow, &SessionRow, Option<Timestamp>)]) -> (String, Vec<Arg>) {
    let olds: Vec<Vec<Arg>> = chunk.iter().map(|(read, _, _)| read.state_args()).collect();
    let news: Vec<Vec<Arg>> = chunk.iter().map(|(_, row, _)| row.state_args()).collect();
    let mut sets = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    for (i, column) in STATE_COLUMNS.iter().enumerate() {
        let rows: Vec<usize> = (0..chunk.len())
            .filter(|&r| news[r][i] != olds[r][i])
            .collect();
        if rows.is_empty() {
            continue;
        }
        sets.push(format!(
            "{column} = {}",
            case_by_id(rows.len(), "?", column)
        ));
        for r in rows {
            args.push(chunk[r].1.status_check_id.into());
            args.push(news[r][i].clone());
        }
    }
    let touched: Vec<(StatusCheckId, Timestamp)> = chunk
        .iter()
        .filter_map(|(_, row, at)| at.map(|at| (row.status_check_id, at)))
        .collect();
    if !touched.is_empty() {
        sets.push(format!(
            "updated_at_ms = {}",
            case_by_id(touched.len(), "?", "updated_at_ms")
        ));
        for (id, at) in touched {
            args.push(id.into());
            args.push(ts_to_ms(at).into());
        }
    }
    // A version other than the expected one becomes 0, which `ck_status_job_session_version`
    // refuses, as in [`save`].
    sets.push(format!(
        "version = {}",
        case_by_id(chunk.len(), "CASE WHEN version = ? THEN ? ELSE 0 END", "0")
    ));
    for (read, row, _) in chunk {
        args.push(row.status_check_id.into());
        args.push(read.version.into());
        args.push(row.version.into());
    }
    let marks = vec!["?"; chunk.len()].join(", ");
    args.extend(
        chunk
            .iter()
            .map(|(_, row, _)| Arg::from(row.status_check_id)),
    );
    (
        format!(
            "UPDATE status_job_session SET {} WHERE status_check_id IN ({marks})",
            sets.join(", ")
        ),
        args,
    )
}

/// One `UPDATE` of the pollers of `rows` (running sessions whose window moved) to their windows.
fn pollers_update(rows: &[&SessionRow]) -> (String, Vec<Arg>) {
    let mut args: Vec<Arg> = Vec::new();
    for row in rows {
        args.push(row.status_check_id.into());
        args.push(ts_to_sql(row.state.window.start).into());
    }
    for row in rows {
        args.push(row.status_check_id.into());
        args.push(ts_to_sql(row.state.window.end).into());
    }
    args.extend(rows.iter().map(|row| Arg::from(row.status_check_id)));
    let marks = vec!["?"; rows.len()].join(", ");
    (
        format!(
            "UPDATE status_check_poller SET since = {}, `until` = {}, \
             updated_at = CURRENT_TIMESTAMP WHERE status_check_id IN ({marks})",
            case_by_id(rows.len(), "?", "since"),
            case_by_id(rows.len(), "?", "`until`"),
        ),
        args,
    )
}

/// Writes the alarm into the outbox: pending, or claimed by `claimant` at `now` (its first
/// attempt under way).
async fn insert_alarm(
    tx: &mut Tx,
    row: &SessionRow,
    alarm: &Alarm,
    now: Timestamp,
    claimant: Option<&str>,
) -> Result<(), StoreError> {
    let sql = format!(
        "{} INTO status_job_alarm (status_check_id, robot_id, local_date, window_start_ms, \
         window_end_ms, reference_id, alarm_event, state, attempts, claimed_by, claimed_at_ms, \
         created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tx.dialect().insert_ignore()
    );
    let (state, attempts, claimed_at) = match claimant {
        Some(_) => ("sending", 1_u32, Some(ts_to_ms(now))),
        None => ("pending", 0, None),
    };
    tx.write(
        &sql,
        &[
            row.status_check_id.into(),
            alarm.identity.robot_id.into(),
            alarm.identity.date.to_string().into(),
            ts_to_ms(alarm.identity.window_start).into(),
            ts_to_ms(alarm.window.end).into(),
            alarm.reference_id().into(),
            row.alarm_event.clone().into(),
            state.into(),
            attempts.into(),
            claimant.into(),
            claimed_at.into(),
            ts_to_ms(now).into(),
            ts_to_ms(now).into(),
        ],
    )
    .await?;
    tx.checkpoint().await
}

async fn append_record(
    tx: &mut Tx,
    row: &mut SessionRow,
    event: EventInput,
    result: &str,
) -> Result<(), StoreError> {
    let event_name = row.watched_event.clone();
    insert_record(
        tx,
        row,
        Some(event.incoming_event_id),
        event.outgoing_event_id,
        &event_name,
        result,
        event.occurred_at,
    )
    .await
}

/// Appends a `status_check_record` with `order` = 1 + MAX(order), the maximum being kept in
/// the locked session row (saved by the caller).
pub async fn insert_record(
    tx: &mut Tx,
    row: &mut SessionRow,
    incoming_event_id: Option<u64>,
    outgoing_event_id: Option<u64>,
    event_name: &str,
    result: &str,
    created_at: Timestamp,
) -> Result<(), StoreError> {
    row.records += 1;
    tx.write(
        "INSERT INTO status_check_record (status_check_id, incoming_event_id, outgoing_event_id, \
         event_name, `order`, phase, result, created_at) VALUES (?, ?, ?, ?, ?, 'FUTURE', ?, ?)",
        &[
            row.status_check_id.into(),
            incoming_event_id.into(),
            outgoing_event_id.into(),
            event_name.into(),
            row.records.into(),
            result.into(),
            ts_to_sql(created_at).into(),
        ],
    )
    .await?;
    tx.checkpoint().await
}

pub(super) fn event_state(class: EventClass) -> &'static str {
    match class {
        EventClass::Observed => EVENT_OBSERVED,
        EventClass::Late => EVENT_LATE,
        EventClass::Outside => EVENT_OUTSIDE,
        EventClass::Ahead => EVENT_PENDING,
    }
}

pub(super) fn record_result(class: EventClass) -> Option<&'static str> {
    match class {
        EventClass::Observed => Some(RECORD_EVENT_OBSERVED),
        EventClass::Late => Some(RECORD_EVENT_LATE),
        EventClass::Outside | EventClass::Ahead => None,
    }
}
