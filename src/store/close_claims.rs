//! Claims on due windows: which instance reads and closes a session's due window, and until
//! when. Without them every instance read the history of every due window and tried to close
//! it, and all but one close found the window closed already: with three instances, three times
//! the history reads, and the close transactions waiting on each other's session row locks.

use std::collections::HashSet;

use jiff::Timestamp;

use super::error::StoreError;
use super::session_row::{ms_to_ts, ts_to_ms};
use super::sql::{Arg, Tx};
use super::types::{DueWindow, StatusCheckId};
use super::{BoxFuture, Store};

/// What a claim of due windows gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedWindows {
    /// The due windows `owner` holds among those looked at, earliest deadline first.
    pub windows: Vec<DueWindow>,
    /// Whether as many windows were looked at as asked for: more may be due. (Fewer may be
    /// held than were looked at: some closed, or moved on, meanwhile.)
    pub more_due: bool,
}

impl Store {
    /// Claims for `owner`, until `until` (service time), the running sessions whose deadline
    /// is at or before `now` and that no other instance holds a live claim on: at most
    /// `limit`, earliest deadline first, those `owner` holds already among them.
    ///
    /// `owner`'s own claims are written again (until `until`) once less than half of them is
    /// left, so that a window queued behind a burst stays with its closer; except those of
    /// `busy`, the windows `owner` is reading or closing right now, which are never written: a
    /// batch of their closes may hold their rows' locks, and the look would wait for it (and
    /// the batch for the look). A window is held by whoever its `closer` names, also after the
    /// claim ended, until another instance takes it.
    ///
    /// A claim is not released by the close: the session's next window, when it is due before
    /// the claim ends, is this instance's again, and anybody's after. An instance that dies
    /// leaves its windows to the others once its claims end.
    pub async fn claim_due_windows(
        &self,
        now: Timestamp,
        limit: u32,
        owner: &str,
        until: Timestamp,
        busy: &HashSet<StatusCheckId>,
    ) -> Result<ClaimedWindows, StoreError> {
        self.run(|tx| -> BoxFuture<'_, Result<ClaimedWindows, StoreError>> {
            let (owner, busy) = (owner.to_string(), busy.clone());
            Box::pin(async move { claim(tx, now, limit, &owner, until, &busy).await })
        })
        .await
    }
}

/// Who may claim a session: nobody holds it, its claim ended, or `owner` holds it. Binds the
/// service time and the owner.
const CLAIMABLE: &str = "(closer_until_ms IS NULL OR closer_until_ms <= ? OR closer = ?)";

async fn claim(
    tx: &mut Tx,
    now: Timestamp,
    limit: u32,
    owner: &str,
    until: Timestamp,
    busy: &HashSet<StatusCheckId>,
) -> Result<ClaimedWindows, StoreError> {
    let now_ms = ts_to_ms(now);
    let candidates = tx
        .fetch_all(
            &format!(
                "SELECT status_check_id FROM status_job_session \
                 WHERE result = 'PENDING' AND window_end_ms <= ? AND {CLAIMABLE} \
                 ORDER BY window_end_ms, status_check_id LIMIT ?"
            ),
            &[now_ms.into(), now_ms.into(), owner.into(), limit.into()],
        )
        .await?;
    let more_due = candidates.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
    if candidates.is_empty() {
        return Ok(ClaimedWindows {
            windows: Vec::new(),
            more_due,
        });
    }
    let ids: Vec<StatusCheckId> = candidates
        .iter()
        .map(|r| r.id("status_check_id").map(StatusCheckId::new))
        .collect::<Result<_, _>>()?;
    let free: Vec<Arg> = ids
        .iter()
        .filter(|id| !busy.contains(id))
        .map(|&id| id.into())
        .collect();
    if !free.is_empty() {
        // The conditions again, under the rows' locks: another instance may have claimed some
        // of them, or an event moved their deadline, since the read above.
        let renew_before = now
            .checked_add(until.duration_since(now) / 2)
            .unwrap_or(until);
        let marks = vec!["?"; free.len()].join(", ");
        let mut args: Vec<Arg> = vec![owner.into(), ts_to_ms(until).into()];
        args.extend(free);
        args.extend([
            now_ms.into(),
            now_ms.into(),
            owner.into(),
            ts_to_ms(renew_before).into(),
        ]);
        tx.write(
            &format!(
                "UPDATE status_job_session SET closer = ?, closer_until_ms = ? \
                 WHERE status_check_id IN ({marks}) AND result = 'PENDING' \
                 AND window_end_ms <= ? AND (closer_until_ms IS NULL OR closer_until_ms <= ? \
                 OR (closer = ? AND closer_until_ms < ?))"
            ),
            &args,
        )
        .await?;
        tx.checkpoint().await?;
    }
    // What `owner` holds now: claimed above, or held already.
    let marks = vec!["?"; ids.len()].join(", ");
    let mut args: Vec<Arg> = ids.iter().map(|&id| id.into()).collect();
    args.extend([owner.into(), now_ms.into()]);
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT status_check_id, window_end_ms, robot_id, window_start_ms \
                 FROM status_job_session WHERE status_check_id IN ({marks}) \
                 AND closer = ? AND result = 'PENDING' AND window_end_ms <= ? \
                 ORDER BY window_end_ms, status_check_id"
            ),
            &args,
        )
        .await?;
    let windows = rows
        .iter()
        .map(|r| {
            Ok(DueWindow {
                status_check_id: StatusCheckId::new(r.id("status_check_id")?),
                deadline: ms_to_ts(r.int("window_end_ms")?)?,
                robot_id: r.robot_id("robot_id")?,
                window_start: ms_to_ts(r.int("window_start_ms")?)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(ClaimedWindows { windows, more_due })
}
