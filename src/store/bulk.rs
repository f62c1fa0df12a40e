//! Store reads and writes that serve many sessions at once: what lets thousands of windows
//! ending in the same second, and thousands of rules, cost few round trips.

use std::collections::HashMap;

use jiff::Timestamp;

use super::error::StoreError;
use super::outbox;
use super::rules;
use super::sql::Tx;
use super::transitions::{self, Basis};
use super::types::{AlarmId, CloseOutcome, OutboxAlarm, StatusCheckId, StoredRule};
use super::{BoxFuture, Dialect, Store};
use crate::domain::{AlarmIdentity, RobotId};
use crate::megazord::MegazordEventId;

/// What identifies the stored rule set: how many rules there are and the sum of their
/// versions. Rules are only ever inserted or updated, and every update bumps the rule's
/// version, so any change to any rule changes this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesFingerprint {
    /// How many rules are stored.
    pub count: i64,
    /// The sum of their versions.
    pub versions: i64,
}

impl Store {
    /// The rule set's [`RulesFingerprint`], in one small query: the scheduler reads every rule
    /// again only when it changed.
    pub async fn rules_fingerprint(&self) -> Result<RulesFingerprint, StoreError> {
        self.run(
            |tx| -> BoxFuture<'_, Result<RulesFingerprint, StoreError>> {
                Box::pin(async move {
                    // MySQL sums into a DECIMAL: cast back to an integer.
                    let sum = match tx.dialect() {
                        Dialect::Mysql => "CAST(COALESCE(SUM(version), 0) AS SIGNED)",
                        Dialect::Sqlite => "COALESCE(SUM(version), 0)",
                    };
                    let row = tx
                        .fetch_optional(
                            &format!(
                                "SELECT COUNT(*) AS rules, {sum} AS versions FROM status_job_rule"
                            ),
                            &[],
                        )
                        .await?
                        .ok_or_else(|| StoreError::corrupt("no answer to COUNT(*)"))?;
                    Ok(RulesFingerprint {
                        count: row.int("rules")?,
                        versions: row.int("versions")?,
                    })
                })
            },
        )
        .await
    }
}

impl Store {
    /// Closes several sessions' current windows (each `(status_check_id, expected_deadline)`)
    /// in one transaction, their session rows locked and read in one statement and every write
    /// sent with the `COMMIT`: on SQLite, where one writer serialises every transaction and
    /// each commit is an fsync, and on MySQL, where each statement is a round trip and each
    /// commit a log flush, this is what lets thousands of windows ending together close on
    /// time. Each session's close stays all-or-nothing and fails alone: when any close in the
    /// batch fails, or the batch cannot be committed, nothing of the batch is kept and every
    /// window is closed again in a transaction of its own (with [`Store::close_window`]'s
    /// retries), so that one session's failure is that session's only. Outcomes are in the
    /// order of `windows`.
    pub async fn close_windows(
        &self,
        windows: &[(StatusCheckId, Timestamp)],
        now: Timestamp,
    ) -> Vec<Result<CloseOutcome, StoreError>> {
        if windows.len() > 1
            && let Some((outcomes, _)) = self.close_windows_together(windows, now, None).await
        {
            return outcomes.into_iter().map(Ok).collect();
        }
        self.close_windows_alone(windows, now).await
    }

    /// [`Store::close_windows`], with every alarm the batch makes due written already claimed
    /// by `owner` (at `now`, its first attempt) and returned, so that its post can start the
    /// moment the batch commits instead of after a claim of its own. The alarms of a batch
    /// that had to be closed window by window are left pending, for
    /// [`Store::claim_alarms`] to take.
    pub async fn close_windows_claiming(
        &self,
        windows: &[(StatusCheckId, Timestamp)],
        now: Timestamp,
        owner: &str,
    ) -> (Vec<Result<CloseOutcome, StoreError>>, Vec<OutboxAlarm>) {
        if !windows.is_empty()
            && let Some((outcomes, claimed)) =
                self.close_windows_together(windows, now, Some(owner)).await
        {
            return (outcomes.into_iter().map(Ok).collect(), claimed);
        }
        (self.close_windows_alone(windows, now).await, Vec::new())
    }

    /// Each window closed in a transaction of its own.
    async fn close_windows_alone(
        &self,
        windows: &[(StatusCheckId, Timestamp)],
        now: Timestamp,
    ) -> Vec<Result<CloseOutcome, StoreError>> {
        let mut outcomes = Vec::with_capacity(windows.len());
        for &(status_check_id, deadline) in windows {
            outcomes.push(self.close_window(status_check_id, deadline, now).await);
        }
        outcomes
    }

    /// The batch of [`Store::close_windows`] in one transaction, with the alarms claimed by
    /// `claimant` when there is one; `None` when any close failed or the commit did (nothing
    /// of it is kept then).
    async fn close_windows_together(
        &self,
        windows: &[(StatusCheckId, Timestamp)],
        now: Timestamp,
        claimant: Option<&str>,
    ) -> Option<(Vec<CloseOutcome>, Vec<OutboxAlarm>)> {
        let mut tx = self.begin().await.ok()?;
        // Every row is read under the writer's lock: a stale copy would fail the whole batch.
        tx.may_decide_on_copies = false;
        // Every session row of the batch locked and read in one statement; a batch naming a
        // session twice (which the closer never sends) takes them one by one.
        let mut ids: Vec<StatusCheckId> = windows.iter().map(|&(id, _)| id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut locked = if ids.len() == windows.len() {
            match transitions::lock_sessions(&mut tx, &ids).await {
                Ok(rows) => {
                    // Each session once, each close's writes its own: sent grouped.
                    tx.group_writes();
                    Some(rows)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "locking a batch of sessions failed: closing each alone");
                    tx.rollback().await;
                    return None;
                }
            }
        } else {
            None
        };
        let mut outcomes = Vec::with_capacity(windows.len());
        for &(status_check_id, deadline) in windows {
            let closed = match &mut locked {
                Some(rows) => match rows.remove(&status_check_id) {
                    Some(row) => {
                        transitions::close_row(&mut tx, row, Basis::Locked, deadline, now, claimant)
                            .await
                    }
                    None => Ok(CloseOutcome::NotRunning),
                },
                None => transitions::close_window(&mut tx, status_check_id, deadline, now).await,
            };
            match closed {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    tracing::debug!(statusCheckId = status_check_id.get(), error = %e,
                        "a close failed in a batch: closing each window of it alone");
                    tx.rollback().await;
                    return None;
                }
            }
        }
        let due: Vec<(StatusCheckId, AlarmIdentity)> = windows
            .iter()
            .zip(&outcomes)
            .filter_map(|(&(status_check_id, _), outcome)| match outcome {
                CloseOutcome::Closed {
                    alarm: Some(alarm), ..
                } => Some((status_check_id, *alarm)),
                _ => None,
            })
            .collect();
        let claimed = match claimant {
            Some(owner) if !due.is_empty() => {
                match outbox::claimed_on_close(&mut tx, owner, now, &due).await {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::debug!(error = %e, "reading a batch's claimed alarms failed: closing each window alone");
                        tx.rollback().await;
                        return None;
                    }
                }
            }
            _ => Vec::new(),
        };
        match tx.commit().await {
            Ok(()) => Some((outcomes, claimed)),
            Err(e) => {
                tracing::debug!(error = %e, "a batch of closes did not commit: closing each alone");
                None
            }
        }
    }
}

impl Store {
    /// Marks several posted alarms sent (each `(alarm_id, megazord_incoming_id)`) in one
    /// transaction, with [`Store::mark_alarm_sent`]'s outcome for each, in order. When any of
    /// them fails or the batch cannot be committed, nothing of it is kept and each alarm is
    /// marked in a transaction of its own.
    pub async fn mark_alarms_sent(
        &self,
        alarms: &[(AlarmId, MegazordEventId)],
        now: Timestamp,
    ) -> Vec<Result<bool, StoreError>> {
        if alarms.len() > 1
            && let Some(outcomes) = self.mark_alarms_sent_together(alarms, now).await
        {
            return outcomes.into_iter().map(Ok).collect();
        }
        let mut outcomes = Vec::with_capacity(alarms.len());
        for &(alarm_id, megazord_id) in alarms {
            outcomes.push(self.mark_alarm_sent(alarm_id, megazord_id, now).await);
        }
        outcomes
    }

    /// The batch of [`Store::mark_alarms_sent`] in one transaction; `None` when any mark
    /// failed or the commit did (nothing of it is kept then). The alarms and their sessions are
    /// read in three statements for the whole batch (the alarms, then their session rows
    /// locked in `status_check_id` order, then the alarms locked: the order every transition
    /// takes its locks in), and every write goes with the `COMMIT`. A batch with two alarms of
    /// one session, or naming an alarm twice, is marked alarm by alarm instead, so that each
    /// session's versions stay what one mark at a time gives.
    async fn mark_alarms_sent_together(
        &self,
        alarms: &[(AlarmId, MegazordEventId)],
        now: Timestamp,
    ) -> Option<Vec<bool>> {
        let mut tx = self.begin().await.ok()?;
        tx.may_decide_on_copies = false;
        match mark_sent_batch(&mut tx, alarms, now).await {
            Ok(Some(outcomes)) => match tx.commit().await {
                Ok(()) => Some(outcomes),
                Err(e) => {
                    tracing::debug!(error = %e, "a batch of sent alarms did not commit: marking each alone");
                    None
                }
            },
            Ok(None) => {
                tx.rollback().await;
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "marking a batch of alarms sent failed: marking each alone");
                tx.rollback().await;
                None
            }
        }
    }
}

/// The writes of [`Store::mark_alarms_sent`] for a batch, in an open transaction; `Ok(None)`
/// when the batch has to be marked alarm by alarm (see `mark_alarms_sent_together`).
async fn mark_sent_batch(
    tx: &mut Tx,
    alarms: &[(AlarmId, MegazordEventId)],
    now: Timestamp,
) -> Result<Option<Vec<bool>>, StoreError> {
    let ids: Vec<AlarmId> = alarms.iter().map(|&(id, _)| id).collect();
    if has_repeats(ids.clone()) {
        return Ok(None);
    }
    let read = outbox::read_many(tx, &ids, false).await?;
    let mut session_ids: Vec<StatusCheckId> = read.values().map(|a| a.status_check_id).collect();
    session_ids.sort_unstable();
    if has_repeats(session_ids.clone()) {
        return Ok(None);
    }
    let mut sessions = transitions::lock_sessions(tx, &session_ids).await?;
    let locked = outbox::read_many(tx, &ids, true).await?;
    // Each alarm and each session once, each mark's writes its own: sent grouped.
    tx.group_writes();
    let mut outcomes = Vec::with_capacity(alarms.len());
    for &(alarm_id, megazord_id) in alarms {
        let Some(alarm) = locked.get(&alarm_id) else {
            return Err(StoreError::Invalid(format!("no alarm with id {alarm_id}")));
        };
        if alarm.state == "sent" {
            outcomes.push(false);
            continue;
        }
        let Some(session) = sessions.remove(&alarm.status_check_id) else {
            return Err(StoreError::corrupt(format!(
                "alarm {alarm_id} has no session"
            )));
        };
        outbox::write_sent(tx, session, alarm, megazord_id, now).await?;
        outcomes.push(true);
    }
    Ok(Some(outcomes))
}

/// Whether any value occurs more than once.
fn has_repeats<T: Ord>(mut values: Vec<T>) -> bool {
    values.sort_unstable();
    values.windows(2).any(|pair| pair[0] == pair[1])
}

impl Store {
    /// The rules of `robots` (those that have one), read in one statement per thousand robots:
    /// the closer needs the rule of every window it closes, and a read per window would cost
    /// as much as the close itself.
    pub async fn rules_of(
        &self,
        robots: &[RobotId],
    ) -> Result<HashMap<RobotId, StoredRule>, StoreError> {
        self.run(
            move |tx| -> BoxFuture<'_, Result<HashMap<RobotId, StoredRule>, StoreError>> {
                let robots = robots.to_vec();
                Box::pin(async move {
                    let mut robots = robots;
                    robots.sort_unstable();
                    robots.dedup();
                    let mut found = HashMap::with_capacity(robots.len());
                    // One statement per thousand robots, not one per robot.
                    for chunk in robots.chunks(1000) {
                        for stored in rules::get_many(tx, chunk).await? {
                            found.insert(stored.rule.robot_id, stored);
                        }
                    }
                    Ok(found)
                })
            },
        )
        .await
    }
}
