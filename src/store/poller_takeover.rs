//! Sessions whose instance went quiet, taken over through their poller rows.
//!
//! Every running session's `status_check_poller` row holds the `lock_id` of the instance that
//! keeps it, and that instance's janitor refreshes the row's `updated_at` at least every
//! minute (contracts §6 item 10). An instance that stops for good (scaled down, or restarted
//! under another `instance_id`) leaves its rows to go stale: the legacy stale-lock cleanup
//! would then release them, and the legacy teardown take the sessions. Any other instance
//! takes such a row over, one row at a time, by setting its own `lock_id` only where the row
//! is still stale under the row's lock: two instances that look at once take each row once.
//! The taker prepares the session again (subscription, history), as a restart did before.

use super::error::StoreError;
use super::sql::{Arg, Dialect, Tx, to_i64};
use super::types::StatusCheckId;
use super::{BoxFuture, Store};
use crate::domain::RobotId;

/// A session taken over from the instance that kept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenOver {
    /// `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// Its robot.
    pub robot_id: RobotId,
    /// The `lock_id` its poller row held before; `None` when the row held no lock (the
    /// legacy cleanup released it).
    pub from: Option<String>,
}

/// One round of [`Store::take_over_quiet_sessions`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TakeOverRound {
    /// The sessions taken, in id order.
    pub taken: Vec<TakenOver>,
    /// Where the next round begins (its `after`) when there may be more; `None` when none
    /// is left.
    pub next: Option<u64>,
}

impl Store {
    /// Takes over, for `owner`, up to `limit` running sessions of this service with ids above
    /// `after` whose poller row no instance keeps: its `lock_id` is unset, or is another
    /// instance's and its `updated_at` lies more than `quiet_for_seconds` in the past by the
    /// database's clock. One transaction; call again from [`TakeOverRound::next`] while it is
    /// set, so that a failure loses no round already taken.
    pub async fn take_over_quiet_sessions(
        &self,
        owner: &str,
        quiet_for_seconds: u32,
        after: u64,
        limit: usize,
    ) -> Result<TakeOverRound, StoreError> {
        let limit = limit.max(1);
        self.run(move |tx| -> BoxFuture<'_, Result<_, StoreError>> {
            let owner = owner.to_string();
            Box::pin(async move { take_over(tx, &owner, quiet_for_seconds, after, limit).await })
        })
        .await
    }
}

/// `WHERE` condition on `status_check_poller p` of a row that no instance keeps and that is
/// not the owner's (the one `?`): no lock, or another's not refreshed for the time given.
/// The first of its two conditions names only indexed columns: MariaDB reads the few unlocked
/// or unrefreshed rows by those two indexes (`sort_union` in `EXPLAIN`, with 100,000 rows),
/// not every row.
fn quiet(dialect: Dialect, quiet_for_seconds: u32) -> String {
    let before = match dialect {
        Dialect::Mysql => format!("CURRENT_TIMESTAMP - INTERVAL {quiet_for_seconds} SECOND"),
        Dialect::Sqlite => format!("datetime('now', '-{quiet_for_seconds} seconds')"),
    };
    format!(
        "(p.lock_id IS NULL OR p.updated_at IS NULL OR p.updated_at < {before}) \
         AND (p.lock_id IS NULL OR p.lock_id <> ?)"
    )
}

/// [`Store::take_over_quiet_sessions`] in its transaction.
async fn take_over(
    tx: &mut Tx,
    owner: &str,
    quiet_for_seconds: u32,
    after: u64,
    limit: usize,
) -> Result<TakeOverRound, StoreError> {
    let quiet = quiet(tx.dialect(), quiet_for_seconds);
    // Read without locks: most rows are kept, and the update below checks each again under
    // its lock.
    let candidates = tx
        .fetch_all(
            &format!(
                "SELECT p.status_check_id, p.lock_id, s.robot_id FROM status_check_poller p \
                 JOIN status_job_session s ON s.status_check_id = p.status_check_id \
                 WHERE p.status_check_id > ? AND s.result = 'PENDING' AND {quiet} \
                 ORDER BY p.status_check_id LIMIT {limit}"
            ),
            &[to_i64(after).into(), owner.into()],
        )
        .await?;
    let Some(last) = found_last(&candidates)? else {
        return Ok(TakeOverRound::default());
    };
    let mut found = Vec::with_capacity(candidates.len());
    for row in &candidates {
        found.push(TakenOver {
            status_check_id: StatusCheckId::new(row.id("status_check_id")?),
            robot_id: row.robot_id("robot_id")?,
            from: row.opt_text("lock_id")?,
        });
    }
    let marks = vec!["?"; found.len()].join(", ");
    let ids = found
        .iter()
        .map(|t| Arg::from(to_i64(t.status_check_id.get())));
    let mut args: Vec<Arg> = vec![owner.into()];
    args.extend(ids.clone());
    args.push(owner.into());
    // `quiet` is written for `p`: the table is named so here too.
    tx.execute(
        &format!(
            "UPDATE status_check_poller AS p SET lock_id = ?, updated_at = CURRENT_TIMESTAMP \
             WHERE p.status_check_id IN ({marks}) AND {quiet}"
        ),
        &args,
    )
    .await?;
    // Which of them are this owner's now: another instance may have taken some first.
    let mut args: Vec<Arg> = vec![owner.into()];
    args.extend(ids);
    let taken = tx
        .fetch_all(
            &format!(
                "SELECT status_check_id FROM status_check_poller \
                 WHERE lock_id = ? AND status_check_id IN ({marks})"
            ),
            &args,
        )
        .await?;
    let taken: std::collections::HashSet<u64> = taken
        .iter()
        .map(|r| r.id("status_check_id"))
        .collect::<Result<_, _>>()?;
    tx.checkpoint().await?;
    let next = (found.len() == limit).then_some(last);
    found.retain(|t| taken.contains(&t.status_check_id.get()));
    Ok(TakeOverRound { taken: found, next })
}

/// The id of the last row read, if any.
fn found_last(rows: &[super::sql::Row]) -> Result<Option<u64>, StoreError> {
    rows.last().map(|r| r.id("status_check_id")).transpose()
}
