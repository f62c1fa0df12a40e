//! Claims on due windows: which instance reads and closes a session's due window, and until
//! when. Without them every instance read the history of every due window and tried to close
//! it, and all but one close found the window closed already: with three instances, three times
//! the history reads, and the close transactions waiting on each other's session row locks.

use jiff::Timestamp;

use super::error::StoreError;
use super::session_row::ts_to_ms;
use super::sql::{Arg, Tx};
use super::types::{DueWindow, StatusCheckId};
use super::views::due_window;
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
    /// `owner`'s own claims are never written again: a window is held by whoever its `closer`
    /// names, also after the claim ended, until another instance takes it. So a look never
    /// waits for the locks of a batch of its own closes (nor the batch for the look), and an
    /// instance that falls behind has the windows it has not got to taken by the others once
    /// their claims end.
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
    ) -> Result<ClaimedWindows, StoreError> {
        self.claim_windows_due_by(now, now, limit, owner, until)
            .await
    }

    /// [`Store::claim_due_windows`] for the windows whose deadline is at or before `due_by`,
    /// which may lie after `now`: the closer claims the windows about to end a moment before
    /// they do, so that their history reads start at their deadlines rather than after a look
    /// that starts there. Another instance's claim counts as ended at `now`, not `due_by`.
    pub async fn claim_windows_due_by(
        &self,
        now: Timestamp,
        due_by: Timestamp,
        limit: u32,
        owner: &str,
        until: Timestamp,
    ) -> Result<ClaimedWindows, StoreError> {
        self.run(|tx| -> BoxFuture<'_, Result<ClaimedWindows, StoreError>> {
            let owner = owner.to_string();
            Box::pin(async move { claim(tx, now, due_by.max(now), limit, &owner, until).await })
        })
        .await
    }
}

/// The most ids one statement names: MariaDB turns an `IN` list of 1,000 values or more
/// (`in_predicate_conversion_threshold`) into a join with a table of them, which an `UPDATE`
/// of a 2,000-window look paid for (100,000 windows ending together closed in 1.57x the bare
/// reads, against 1.40x without claims).
const IDS_PER_STATEMENT: usize = 500;

/// Who may claim a session: nobody holds it, its claim ended, or `owner` holds it. Binds the
/// service time and the owner.
const CLAIMABLE: &str = "(closer_until_ms IS NULL OR closer_until_ms <= ? OR closer = ?)";

async fn claim(
    tx: &mut Tx,
    now: Timestamp,
    due_by: Timestamp,
    limit: u32,
    owner: &str,
    until: Timestamp,
) -> Result<ClaimedWindows, StoreError> {
    let now_ms = ts_to_ms(now);
    let due_by_ms = ts_to_ms(due_by);
    let candidates = tx
        .fetch_all(
            &format!(
                "SELECT status_check_id, closer FROM status_job_session \
                 WHERE result = 'PENDING' AND window_end_ms <= ? AND {CLAIMABLE} \
                 ORDER BY window_end_ms, status_check_id LIMIT ?"
            ),
            &[due_by_ms.into(), now_ms.into(), owner.into(), limit.into()],
        )
        .await?;
    let more_due = candidates.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
    if candidates.is_empty() {
        return Ok(ClaimedWindows {
            windows: Vec::new(),
            more_due,
        });
    }
    // Rows `owner` holds are left alone: they may be in a batch of its closes right now, whose
    // locks the look would wait for (and the batch for the look's).
    let mut ids = Vec::with_capacity(candidates.len());
    let mut unheld = Vec::new();
    for r in &candidates {
        let id = StatusCheckId::new(r.id("status_check_id")?);
        ids.push(id);
        if r.opt_text("closer")?.as_deref() != Some(owner) {
            unheld.push(Arg::from(id));
        }
    }
    for chunk in unheld.chunks(IDS_PER_STATEMENT) {
        // The conditions again, under the rows' locks: another instance may have claimed some
        // of them, or an event moved their deadline, since the read above.
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut args: Vec<Arg> = vec![owner.into(), ts_to_ms(until).into()];
        args.extend(chunk.iter().cloned());
        args.extend([due_by_ms.into(), now_ms.into(), owner.into()]);
        tx.write(
            &format!(
                "UPDATE status_job_session SET closer = ?, closer_until_ms = ? \
                 WHERE status_check_id IN ({marks}) AND result = 'PENDING' \
                 AND window_end_ms <= ? \
                 AND (closer IS NULL OR (closer_until_ms <= ? AND closer <> ?))"
            ),
            &args,
        )
        .await?;
        tx.checkpoint().await?;
    }
    // What `owner` holds now: claimed above, or held already.
    let mut windows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut args: Vec<Arg> = chunk.iter().map(|&id| id.into()).collect();
        args.extend([owner.into(), due_by_ms.into()]);
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT status_check_id, window_end_ms, robot_id, window_start_ms \
                     FROM status_job_session WHERE status_check_id IN ({marks}) \
                     AND closer = ? AND result = 'PENDING' AND window_end_ms <= ?"
                ),
                &args,
            )
            .await?;
        for r in &rows {
            windows.push(due_window(r)?);
        }
    }
    windows.sort_by_key(|w| (w.deadline, w.status_check_id));
    Ok(ClaimedWindows { windows, more_due })
}
