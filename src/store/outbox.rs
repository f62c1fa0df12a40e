//! The alarm outbox: rows written by `close_window`, claimed by the dispatcher, marked sent
//! (with the `ALARM_SENT` record) or failed.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use jiff::civil::Date;

use super::error::StoreError;
use super::session_row::{SessionRow, ms_to_ts, ts_to_ms};
use super::sql::{Arg, Row, Tx};
use super::transitions::{Basis, RECORD_ALARM_SENT, insert_record, lock_session, save};
use super::types::{AlarmId, OutboxAlarm, StatusCheckId};
use crate::domain::AlarmIdentity;
use crate::megazord::MegazordEventId;

/// The columns [`from_row`] reads.
pub const COLUMNS: &str = "id, status_check_id, robot_id, local_date, window_start_ms, window_end_ms, \
     reference_id, alarm_event, state, attempts, last_error, megazord_incoming_id";

/// The condition of a claimable alarm: never tried, failed, or claimed by a dispatcher whose
/// claim is older than the lease (it may have died mid-post; the next one reconciles first).
pub const CLAIMABLE: &str = "(state = 'pending' OR (state = 'failed' AND retry_at_ms <= ?) \
     OR (state = 'sending' AND claimed_at_ms < ?))";

/// Reads a row selected with [`COLUMNS`].
pub fn from_row(row: &Row) -> Result<OutboxAlarm, StoreError> {
    let date_text = row.text("local_date")?;
    let date: Date = date_text
        .parse()
        .map_err(|e| StoreError::corrupt(format!("local_date {date_text:?}: {e}")))?;
    Ok(OutboxAlarm {
        id: AlarmId::new(row.id("id")?),
        status_check_id: StatusCheckId::new(row.id("status_check_id")?),
        identity: AlarmIdentity {
            robot_id: row.robot_id("robot_id")?,
            date,
            window_start: ms_to_ts(row.int("window_start_ms")?)?,
        },
        window_end: ms_to_ts(row.int("window_end_ms")?)?,
        reference_id: row.text("reference_id")?,
        alarm_event: row.text("alarm_event")?,
        state: row.text("state")?,
        attempts: u32::try_from(row.int("attempts")?)
            .map_err(|_| StoreError::corrupt("attempts out of range"))?,
        last_error: row.opt_text("last_error")?,
        megazord_incoming_id: row
            .opt_int("megazord_incoming_id")?
            .map(|_| row.id("megazord_incoming_id").map(MegazordEventId::new))
            .transpose()?,
    })
}

/// Marks an alarm posted and writes its `ALARM_SENT` record (created at the window end).
/// Returns false when it was already marked sent (nothing is written twice).
pub async fn mark_sent(
    tx: &mut Tx,
    alarm_id: AlarmId,
    megazord_incoming_id: MegazordEventId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let Some(alarm) = read(tx, alarm_id, false).await? else {
        return Err(StoreError::Invalid(format!("no alarm with id {alarm_id}")));
    };
    // Lock order everywhere: the session first, then its alarm.
    let Some(session) = lock_session(tx, alarm.status_check_id).await? else {
        return Err(StoreError::corrupt(format!(
            "alarm {alarm_id} has no session"
        )));
    };
    let Some(alarm) = read(tx, alarm_id, true).await? else {
        return Err(StoreError::Invalid(format!("no alarm with id {alarm_id}")));
    };
    if alarm.state == "sent" {
        return Ok(false);
    }
    write_sent(tx, session, &alarm, megazord_incoming_id, now).await?;
    Ok(true)
}

/// The writes that mark `alarm` sent, under the lock of its `session` (read locked in this
/// transaction) and its own: the outbox row, the `ALARM_SENT` record (created at the window
/// end) and the session row with its mirrors.
pub async fn write_sent(
    tx: &mut Tx,
    mut session: SessionRow,
    alarm: &OutboxAlarm,
    megazord_incoming_id: MegazordEventId,
    now: Timestamp,
) -> Result<(), StoreError> {
    let before = session.clone();
    tx.write(
        "UPDATE status_job_alarm SET state = 'sent', megazord_incoming_id = ?, sent_at_ms = ?, \
         updated_at_ms = ?, claimed_by = NULL WHERE id = ?",
        &[
            megazord_incoming_id.into(),
            ts_to_ms(now).into(),
            ts_to_ms(now).into(),
            alarm.id.into(),
        ],
    )
    .await?;
    tx.checkpoint().await?;
    insert_record(
        tx,
        &mut session,
        Some(megazord_incoming_id.get()),
        None,
        &alarm.alarm_event,
        RECORD_ALARM_SENT,
        alarm.window_end,
    )
    .await?;
    save(tx, &before, &mut session, now, Basis::Locked).await
}

/// Marks `owner`'s posting attempt failed; the alarm is claimable again from `retry_at`. An
/// alarm `owner` no longer holds (sent, or claimed by another dispatcher after the lease) is
/// left alone: a late failure must not undo someone else's claim.
pub async fn mark_failed(
    tx: &mut Tx,
    owner: &str,
    alarm_id: AlarmId,
    error: &str,
    retry_at: Timestamp,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let changed = tx
        .execute(
            "UPDATE status_job_alarm SET state = 'failed', last_error = ?, updated_at_ms = ?, \
             retry_at_ms = ?, claimed_by = NULL WHERE id = ? AND state = 'sending' \
             AND claimed_by = ?",
            &[
                error.into(),
                ts_to_ms(now).into(),
                ts_to_ms(retry_at).into(),
                alarm_id.into(),
                owner.into(),
            ],
        )
        .await?;
    tx.checkpoint().await?;
    Ok(changed > 0)
}

/// The alarms of `due` (each a session and the identity of the alarm its close made due) that
/// this transaction wrote claimed by `owner` at `now` (the closes of
/// [`crate::store::Store::close_windows_claiming`]), in one statement over the sessions' index.
/// An identity whose alarm was in the outbox already (written unclaimed before) is not among
/// them: it stays for the dispatcher's claims.
///
/// Read by session and sorted here, not with `ORDER BY id`: MariaDB answered that order from
/// the `(state, id)` index and walked every alarm being posted (1,580 rows a statement while
/// 10,000 windows ending together were closed), where the session index finds a batch's
/// alarms directly.
pub async fn claimed_on_close(
    tx: &mut Tx,
    owner: &str,
    now: Timestamp,
    due: &[(StatusCheckId, AlarmIdentity)],
) -> Result<Vec<OutboxAlarm>, StoreError> {
    let mut sessions: Vec<StatusCheckId> = due.iter().map(|&(id, _)| id).collect();
    sessions.sort_unstable();
    sessions.dedup();
    let identities: HashSet<AlarmIdentity> = due.iter().map(|&(_, identity)| identity).collect();
    let marks = vec!["?"; sessions.len()].join(", ");
    let mut args: Vec<Arg> = sessions.iter().map(|&id| Arg::from(id)).collect();
    args.extend([owner.into(), ts_to_ms(now).into()]);
    // Read in the same round trip as the batch's writes that made them, which wait for it.
    let sets = tx
        .fetch_each(&[(
            format!(
                "SELECT {COLUMNS} FROM status_job_alarm WHERE status_check_id IN ({marks}) \
                 AND state = 'sending' AND claimed_by = ? AND claimed_at_ms = ?"
            ),
            args,
        )])
        .await?;
    let mut claimed = Vec::with_capacity(due.len());
    for row in sets.iter().flatten() {
        let alarm = from_row(row)?;
        if identities.contains(&alarm.identity) {
            claimed.push(alarm);
        }
    }
    claimed.sort_unstable_by_key(|alarm| alarm.id);
    Ok(claimed)
}

/// Ends the claims `owner` holds from before `before`: those of an earlier process under the
/// same `instance_id`, killed while it held them (posted and not yet marked, or not yet posted).
/// They become claimable at once, as claims past their lease are, and whoever claims them
/// looks each up at Megazord before posting it (its attempts count the earlier claim). Returns
/// how many.
pub async fn end_earlier_claims(
    tx: &mut Tx,
    owner: &str,
    before: Timestamp,
) -> Result<u64, StoreError> {
    tx.execute(
        "UPDATE status_job_alarm SET claimed_at_ms = 0 \
         WHERE state = 'sending' AND claimed_by = ? AND claimed_at_ms < ?",
        &[owner.into(), ts_to_ms(before).into()],
    )
    .await
}

/// Gives back alarms `owner` claimed and never posted: pending again, as if never claimed,
/// for any dispatcher to claim at once rather than after the lease. An alarm no longer claimed
/// by `owner` is left alone. Returns how many were given back.
pub async fn release(
    tx: &mut Tx,
    owner: &str,
    alarm_ids: &[AlarmId],
    now: Timestamp,
) -> Result<u64, StoreError> {
    if alarm_ids.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; alarm_ids.len()].join(", ");
    let mut args: Vec<Arg> = vec![ts_to_ms(now).into(), owner.into()];
    args.extend(alarm_ids.iter().map(|&id| Arg::from(id)));
    let released = tx
        .execute(
            &format!(
                "UPDATE status_job_alarm SET state = 'pending', claimed_by = NULL, \
                 claimed_at_ms = NULL, attempts = attempts - 1, updated_at_ms = ? \
                 WHERE state = 'sending' AND attempts > 0 AND claimed_by = ? AND id IN ({marks})"
            ),
            &args,
        )
        .await?;
    tx.checkpoint().await?;
    Ok(released)
}

/// The alarms of `alarm_ids` (those that exist), by id, locked when `lock`.
pub async fn read_many(
    tx: &mut Tx,
    alarm_ids: &[AlarmId],
    lock: bool,
) -> Result<HashMap<AlarmId, OutboxAlarm>, StoreError> {
    let mut found = HashMap::with_capacity(alarm_ids.len());
    let suffix = if lock { tx.dialect().for_update() } else { "" };
    for chunk in alarm_ids.chunks(1000) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let args: Vec<Arg> = chunk.iter().map(|&id| Arg::from(id)).collect();
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT {COLUMNS} FROM status_job_alarm WHERE id IN ({marks}) ORDER BY id{suffix}"
                ),
                &args,
            )
            .await?;
        for row in &rows {
            let alarm = from_row(row)?;
            found.insert(alarm.id, alarm);
        }
    }
    Ok(found)
}

/// One alarm, locked when `lock`.
pub async fn read(
    tx: &mut Tx,
    alarm_id: AlarmId,
    lock: bool,
) -> Result<Option<OutboxAlarm>, StoreError> {
    let suffix = if lock { tx.dialect().for_update() } else { "" };
    let row = tx
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM status_job_alarm WHERE id = ?{suffix}"),
            &[alarm_id.into()],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every alarm of a session, in window order.
pub async fn of_session(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
) -> Result<Vec<OutboxAlarm>, StoreError> {
    let rows = tx
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM status_job_alarm WHERE status_check_id = ? ORDER BY window_start_ms"),
            &[status_check_id.into()],
        )
        .await?;
    rows.iter().map(from_row).collect()
}
