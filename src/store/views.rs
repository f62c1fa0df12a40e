//! Read-only queries: sessions with their shared rows and records, and due windows.

use jiff::Timestamp;
use jiff::civil::Date;

use super::error::StoreError;
use super::session_row::{COLUMNS, SessionRow, ts_to_ms};
use super::sql::{Row, Tx};
use super::types::{DueWindow, RecordView, SessionView, StatusCheckId};
use crate::domain::RobotId;

/// The sessions of `robot_id` with local dates from `from` to `to` inclusive, in date order.
pub async fn sessions(
    tx: &mut Tx,
    robot_id: RobotId,
    from: Date,
    to: Date,
) -> Result<Vec<SessionView>, StoreError> {
    let rows = tx
        .fetch_all(
            "SELECT status_check_id FROM status_job_session WHERE robot_id = ? AND local_date >= ? \
             AND local_date <= ? ORDER BY local_date",
            &[
                robot_id.into(),
                from.to_string().into(),
                to.to_string().into(),
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(view) = session(tx, StatusCheckId::new(r.id("status_check_id")?)).await? {
            out.push(view);
        }
    }
    Ok(out)
}

/// One session by `status_check.id`.
pub async fn session(
    tx: &mut Tx,
    status_check_id: StatusCheckId,
) -> Result<Option<SessionView>, StoreError> {
    let d = tx.dialect();
    let Some(row) = tx
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM status_job_session WHERE status_check_id = ?"),
            &[status_check_id.into()],
        )
        .await?
    else {
        return Ok(None);
    };
    let stored = SessionRow::from_row(&row)?;
    let check = tx
        .fetch_optional(
            "SELECT phase, result, subscription_id FROM status_check WHERE id = ?",
            &[status_check_id.into()],
        )
        .await?
        .ok_or_else(|| StoreError::corrupt(format!("status_check {status_check_id} is missing")))?;
    let poller = tx
        .fetch_optional(
            &format!(
                "SELECT {} AS since_seconds, {} AS until_seconds, lock_id FROM status_check_poller WHERE status_check_id = ?",
                d.epoch_seconds("since"),
                d.epoch_seconds("`until`")
            ),
            &[status_check_id.into()],
        )
        .await?
        .map(|p| -> Result<_, StoreError> {
            Ok((
                seconds(p.int("since_seconds")?)?,
                seconds(p.int("until_seconds")?)?,
                p.opt_text("lock_id")?,
            ))
        })
        .transpose()?;
    let records = tx
        .fetch_all(
            &format!(
                "SELECT `order`, result, event_name, incoming_event_id, outgoing_event_id, {} AS created_seconds \
                 FROM status_check_record WHERE status_check_id = ? ORDER BY `order`",
                d.epoch_seconds("created_at")
            ),
            &[status_check_id.into()],
        )
        .await?
        .iter()
        .map(|r| -> Result<RecordView, StoreError> {
            Ok(RecordView {
                order: u32::try_from(r.int("order")?)
                    .map_err(|_| StoreError::corrupt("order out of range"))?,
                result: r.text("result")?,
                event_name: r.text("event_name")?,
                incoming_event_id: r
                    .opt_int("incoming_event_id")?
                    .map(|_| r.id("incoming_event_id"))
                    .transpose()?,
                outgoing_event_id: r
                    .opt_int("outgoing_event_id")?
                    .map(|_| r.id("outgoing_event_id"))
                    .transpose()?,
                created_at: seconds(r.int("created_seconds")?)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let failure_reason = tx
        .fetch_optional(
            "SELECT failure_reason FROM status_job_session WHERE status_check_id = ?",
            &[status_check_id.into()],
        )
        .await?
        .map(|r| r.opt_text("failure_reason"))
        .transpose()?
        .flatten();
    Ok(Some(SessionView {
        status_check_id,
        failure_reason,
        state: stored.state,
        phase: check.text("phase")?,
        result: check.opt_text("result")?.unwrap_or_default(),
        subscription_id: check
            .opt_int("subscription_id")?
            .map(|_| check.id("subscription_id"))
            .transpose()?,
        poller,
        records,
    }))
}

/// Running sessions whose deadline is at or before `now`, earliest first.
pub async fn due_windows(
    tx: &mut Tx,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<DueWindow>, StoreError> {
    let rows = tx
        .fetch_all(
            "SELECT status_check_id, window_end_ms, robot_id, window_start_ms FROM status_job_session \
             WHERE result = 'PENDING' AND window_end_ms <= ? ORDER BY window_end_ms, status_check_id LIMIT ?",
            &[ts_to_ms(now).into(), limit.into()],
        )
        .await?;
    rows.iter().map(due_window).collect()
}

/// The due window of a row with `status_check_id`, `window_end_ms`, `robot_id` and
/// `window_start_ms`.
pub(super) fn due_window(r: &Row) -> Result<DueWindow, StoreError> {
    Ok(DueWindow {
        status_check_id: StatusCheckId::new(r.id("status_check_id")?),
        deadline: super::session_row::ms_to_ts(r.int("window_end_ms")?)?,
        robot_id: r.robot_id("robot_id")?,
        window_start: super::session_row::ms_to_ts(r.int("window_start_ms")?)?,
    })
}

fn seconds(s: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_second(s).map_err(|e| StoreError::corrupt(format!("instant {s}: {e}")))
}

/// The earliest deadline of a running session after `after`, if any.
pub async fn next_deadline_after(
    tx: &mut Tx,
    after: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT window_end_ms FROM status_job_session \
             WHERE result = 'PENDING' AND window_end_ms > ? ORDER BY window_end_ms LIMIT 1",
            &[ts_to_ms(after).into()],
        )
        .await?;
    row.map(|r| super::session_row::ms_to_ts(r.int("window_end_ms")?))
        .transpose()
}
