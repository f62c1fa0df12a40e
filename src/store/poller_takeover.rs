//! Sessions whose instance went quiet, taken over through their poller rows.
//!
//! Every running session's `status_check_poller` row holds the `lock_id` of the instance that
//! keeps it, and that instance's janitor refreshes the row's `updated_at` at least every
//! minute (contracts §6 item 10). An instance that stops for good (scaled down, or restarted
//! under another `instance_id`) leaves its rows to go stale: the legacy stale-lock cleanup
//! would then release them, and the legacy teardown take the sessions. Any other instance
//! takes such a row over by setting its own `lock_id` only where the row is still stale under
//! the row's lock: two instances that look at once take each row once. The taker prepares the
//! session again (subscription, history), as a restart did before.
//!
//! Finding the rows ([`Store::quiet_sessions`]) and taking them ([`Store::take_over_sessions`])
//! are two calls, so that a caller whose take-over failed still knows which sessions it may
//! have taken: when the `COMMIT`'s answer is lost, the rows may be the caller's all the same.

use std::collections::HashSet;
use std::time::Duration;

use super::error::StoreError;
use super::sql::{Arg, Dialect, Tx, to_i64};
use super::types::StatusCheckId;
use super::{BoxFuture, Store};
use crate::domain::RobotId;

/// A running session whose poller row no instance keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietSession {
    /// `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// Its robot.
    pub robot_id: RobotId,
    /// The `lock_id` its poller row holds; `None` when it holds no lock (the legacy cleanup
    /// released it).
    pub held_by: Option<String>,
}

impl Store {
    /// Up to `limit` running sessions of this service with ids above `after`, in id order,
    /// whose poller row no instance keeps and that is not `owner`'s: its `lock_id` is unset, or
    /// is another instance's and its `updated_at` lies more than `quiet_for` (whole seconds) in
    /// the past by the database's clock. Read without locks.
    pub async fn quiet_sessions(
        &self,
        owner: &str,
        quiet_for: Duration,
        after: u64,
        limit: usize,
    ) -> Result<Vec<QuietSession>, StoreError> {
        let limit = limit.max(1);
        let quiet_for_seconds = quiet_for.as_secs();
        self.run(move |tx| -> BoxFuture<'_, Result<_, StoreError>> {
            let owner = owner.to_string();
            Box::pin(async move {
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT p.status_check_id, p.lock_id, s.robot_id \
                             FROM status_check_poller p \
                             JOIN status_job_session s ON s.status_check_id = p.status_check_id \
                             WHERE p.status_check_id > ? AND s.result = 'PENDING' AND {} \
                             ORDER BY p.status_check_id LIMIT {limit}",
                            quiet(tx.dialect(), quiet_for_seconds)
                        ),
                        &[to_i64(after).into(), owner.into()],
                    )
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(QuietSession {
                            status_check_id: StatusCheckId::new(row.id("status_check_id")?),
                            robot_id: row.robot_id("robot_id")?,
                            held_by: row.opt_text("lock_id")?,
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    /// Takes over, for `owner`, those of `sessions` whose poller row is still as
    /// [`Store::quiet_sessions`] found it (checked again under each row's lock), in one
    /// transaction; returns those it took. Another instance may have taken some first, or
    /// their instance refreshed them.
    pub async fn take_over_sessions(
        &self,
        owner: &str,
        quiet_for: Duration,
        sessions: &[StatusCheckId],
    ) -> Result<Vec<StatusCheckId>, StoreError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let quiet_for_seconds = quiet_for.as_secs();
        self.run(move |tx| -> BoxFuture<'_, Result<_, StoreError>> {
            let owner = owner.to_string();
            let sessions = sessions.to_vec();
            Box::pin(async move { take_over(tx, &owner, quiet_for_seconds, &sessions).await })
        })
        .await
    }
}

/// `WHERE` condition on `status_check_poller p` of a row that no instance keeps and that is
/// not the owner's (the one `?`): no lock, or another's not refreshed for the time given.
/// The first of its two conditions names only indexed columns: MariaDB reads the few unlocked
/// or unrefreshed rows by those two indexes (`sort_union` in `EXPLAIN`, with 100,000 rows),
/// not every row.
fn quiet(dialect: Dialect, quiet_for_seconds: u64) -> String {
    let before = match dialect {
        Dialect::Mysql => format!("CURRENT_TIMESTAMP - INTERVAL {quiet_for_seconds} SECOND"),
        Dialect::Sqlite => format!("datetime('now', '-{quiet_for_seconds} seconds')"),
    };
    format!(
        "(p.lock_id IS NULL OR p.updated_at IS NULL OR p.updated_at < {before}) \
         AND (p.lock_id IS NULL OR p.lock_id <> ?)"
    )
}

/// [`Store::take_over_sessions`] in its transaction.
async fn take_over(
    tx: &mut Tx,
    owner: &str,
    quiet_for_seconds: u64,
    sessions: &[StatusCheckId],
) -> Result<Vec<StatusCheckId>, StoreError> {
    let marks = vec!["?"; sessions.len()].join(", ");
    let ids = sessions.iter().map(|id| Arg::from(*id));
    let mut args: Vec<Arg> = vec![owner.into()];
    args.extend(ids.clone());
    args.push(owner.into());
    // `quiet` is written for `p`: the table is named so here too.
    tx.execute(
        &format!(
            "UPDATE status_check_poller AS p SET lock_id = ?, updated_at = CURRENT_TIMESTAMP \
             WHERE p.status_check_id IN ({marks}) AND {}",
            quiet(tx.dialect(), quiet_for_seconds)
        ),
        &args,
    )
    .await?;
    // Which of them are this owner's now: another instance may have taken some first.
    let mut args: Vec<Arg> = vec![owner.into()];
    args.extend(ids);
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT status_check_id FROM status_check_poller \
                 WHERE lock_id = ? AND status_check_id IN ({marks})"
            ),
            &args,
        )
        .await?;
    let taken: HashSet<u64> = rows
        .iter()
        .map(|r| r.id("status_check_id"))
        .collect::<Result<_, _>>()?;
    tx.checkpoint().await?;
    Ok(sessions
        .iter()
        .copied()
        .filter(|id| taken.contains(&id.get()))
        .collect())
}
