//! Store reads and writes of the scheduler that serve many sessions at once: thousands of
//! robots share the same S, and a restart prepares every running session again, so the
//! lookups are one query per few hundred sessions and the creations share transactions.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::civil::Date;

use super::error::StoreError;
use super::session_row::ms_to_ts;
use super::sql::Arg;
use super::transitions;
use super::types::{StartOutcome, StatusCheckId, StatusCheckRefs, StoredRule};
use super::{BoxFuture, Store};
use crate::domain::{RobotId, Session, SessionResult};

/// How many robots one lookup names (`robot_id IN (…)`): well below every backend's limit on
/// bound parameters.
const LOOKUP_CHUNK: usize = 500;

/// What preparing a started session needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedSession {
    /// `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// Whether it still runs.
    pub running: bool,
    /// Its end E.
    pub end: Timestamp,
    /// `status_check.subscription_id`.
    pub subscription_id: Option<u64>,
    /// The instance that started it, and when (service time): see [`StartedSession::starter`].
    pub started_by: Option<(String, Timestamp)>,
    /// Who keeps it: see [`StartedSession::kept_elsewhere`].
    pub poller: PollerLock,
}

/// A session's `status_check_poller` row as far as who keeps the session goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollerLock {
    /// There is no poller row (the session ended, or was just started here).
    Absent,
    /// The row holds no lock: the legacy stale-lock cleanup released it.
    Released,
    /// The row's `lock_id`: the owner id of the instance that keeps the session.
    Held(String),
}

impl PollerLock {
    /// From whether the session has a poller row and the row's `lock_id`.
    pub fn of(row: bool, lock_id: Option<String>) -> PollerLock {
        match (row, lock_id) {
            (false, _) => PollerLock::Absent,
            (true, None) => PollerLock::Released,
            (true, Some(holder)) => PollerLock::Held(holder),
        }
    }

    /// Whether the row holds `owner`'s lock.
    pub fn is_held_by(&self, owner: &str) -> bool {
        matches!(self, PollerLock::Held(holder) if holder == owner)
    }
}

impl StartedSession {
    /// The instance that started the session and when, if another than `owner`: that instance
    /// prepares it (subscription, history), and the others leave it to it.
    pub fn starter(&self, owner: &str) -> Option<(&str, Timestamp)> {
        self.started_by
            .as_ref()
            .filter(|(starter, _)| starter != owner)
            .map(|(starter, at)| (starter.as_str(), *at))
    }

    /// Whether the session runs and its poller row is not `owner`'s: another instance keeps
    /// it (it prepared it), or none does and one will take it over
    /// ([`Store::take_over_sessions`]), preparing it then.
    pub fn kept_elsewhere(&self, owner: &str) -> bool {
        self.running && self.poller != PollerLock::Absent && !self.poller.is_held_by(owner)
    }
}

impl Store {
    /// The sessions that exist of `keys` (robot and local date), in one query per date and
    /// [`LOOKUP_CHUNK`] robots; keys without a session are absent from the answer.
    pub async fn started_sessions(
        &self,
        keys: &[(RobotId, Date)],
    ) -> Result<HashMap<(RobotId, Date), StartedSession>, StoreError> {
        let mut by_date: HashMap<Date, Vec<RobotId>> = HashMap::new();
        for &(robot_id, date) in keys {
            by_date.entry(date).or_default().push(robot_id);
        }
        let mut found = HashMap::with_capacity(keys.len());
        for (date, robots) in by_date {
            for chunk in robots.chunks(LOOKUP_CHUNK) {
                let rows = self
                    .run(move |tx| -> BoxFuture<'_, Result<Vec<_>, StoreError>> {
                        let chunk = chunk.to_vec();
                        Box::pin(async move {
                            let marks = vec!["?"; chunk.len()].join(", ");
                            let mut args: Vec<Arg> = Vec::with_capacity(chunk.len() + 1);
                            args.push(date.to_string().into());
                            args.extend(chunk.iter().map(|&r| Arg::from(r)));
                            let rows = tx
                                .fetch_all(
                                    &format!(
                                        "SELECT s.robot_id, s.status_check_id, s.result, \
                                         s.session_end_ms, s.owner, s.created_at_ms, \
                                         c.subscription_id, \
                                         p.status_check_id AS poller_id, p.lock_id \
                                         FROM status_job_session s \
                                         JOIN status_check c ON c.id = s.status_check_id \
                                         LEFT JOIN status_check_poller p \
                                         ON p.status_check_id = s.status_check_id \
                                         WHERE s.local_date = ? AND s.robot_id IN ({marks})"
                                    ),
                                    &args,
                                )
                                .await?;
                            rows.iter()
                                .map(|r| {
                                    let robot_id = r.robot_id("robot_id")?;
                                    let word = r.text("result")?;
                                    let result = SessionResult::parse(&word).ok_or_else(|| {
                                        StoreError::corrupt(format!(
                                            "status_job_session.result = {word:?}: not a result"
                                        ))
                                    })?;
                                    Ok((
                                        robot_id,
                                        StartedSession {
                                            status_check_id: StatusCheckId::new(
                                                r.id("status_check_id")?,
                                            ),
                                            running: result == SessionResult::Pending,
                                            end: ms_to_ts(r.int("session_end_ms")?)?,
                                            subscription_id: r
                                                .opt_int("subscription_id")?
                                                .map(|id| {
                                                    u64::try_from(id).map_err(|_| {
                                                        StoreError::corrupt(
                                                            "subscription_id out of range",
                                                        )
                                                    })
                                                })
                                                .transpose()?,
                                            started_by: Some((
                                                r.text("owner")?,
                                                ms_to_ts(r.int("created_at_ms")?)?,
                                            )),
                                            poller: PollerLock::of(
                                                r.opt_int("poller_id")?.is_some(),
                                                r.opt_text("lock_id")?,
                                            ),
                                        },
                                    ))
                                })
                                .collect()
                        })
                    })
                    .await?;
                for (robot_id, started) in rows {
                    found.insert((robot_id, date), started);
                }
            }
        }
        Ok(found)
    }

    /// Starts several sessions (each `(rule, session)`, as [`Store::start_session`] does) in
    /// one transaction: one commit for hundreds of sessions that start at the same S. When any
    /// start fails or the batch cannot be committed, nothing of it is kept and every session is
    /// started in a transaction of its own (with [`Store::start_session`]'s checks and
    /// retries), so that one session's failure is that session's only. Outcomes are in the
    /// order of `starts`.
    pub async fn start_sessions(
        &self,
        starts: &[(StoredRule, Session)],
        owner: &str,
        refs: StatusCheckRefs,
        now: Timestamp,
    ) -> Vec<Result<StartOutcome, StoreError>> {
        let checked = starts
            .iter()
            .all(|(rule, session)| rule.rule.enabled && session.robot_id == rule.rule.robot_id);
        if starts.len() > 1
            && checked
            && let Some(outcomes) = self.start_sessions_together(starts, owner, refs, now).await
        {
            return outcomes.into_iter().map(Ok).collect();
        }
        let mut outcomes = Vec::with_capacity(starts.len());
        for (rule, session) in starts {
            outcomes.push(self.start_session(rule, *session, owner, refs, now).await);
        }
        outcomes
    }

    /// The batch of [`Store::start_sessions`] in one transaction; `None` when any start failed
    /// or the commit did (nothing of it is kept then).
    async fn start_sessions_together(
        &self,
        starts: &[(StoredRule, Session)],
        owner: &str,
        refs: StatusCheckRefs,
        now: Timestamp,
    ) -> Option<Vec<StartOutcome>> {
        let mut tx = self.begin().await.ok()?;
        tx.may_decide_on_copies = false;
        let mut outcomes = Vec::with_capacity(starts.len());
        for (stored, session) in starts {
            let started = transitions::start_session(
                &mut tx,
                &stored.rule,
                stored.version,
                stored.watching_since,
                *session,
                owner,
                refs,
                now,
            )
            .await;
            match started {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    tracing::debug!(robotId = session.robot_id.get(), error = %e,
                        "a start failed in a batch: starting each session of it alone");
                    tx.rollback().await;
                    return None;
                }
            }
        }
        match tx.commit().await {
            Ok(()) => Some(outcomes),
            Err(e) => {
                tracing::debug!(error = %e, "a batch of starts did not commit: starting each alone");
                None
            }
        }
    }
}
