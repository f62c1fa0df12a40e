//! Starting sessions: at S of every enabled rule (or at boot for sessions whose S has passed),
//! subscribing at Megazord and replaying the history since S, so that nothing that happened
//! while the service was down is missed (semantics §2, §6; contracts §6 item 18).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use tokio_util::sync::CancellationToken;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::context::Context;
use super::error::RuntimeError;
use super::intake::WatchedEvent;
use super::retries::SessionRetries;
use crate::domain::{RobotId, Session};
use crate::megazord::CallRef;
use crate::store::{RulesFingerprint, StoredRule};

/// How often the scheduler looks when nothing else wakes it: rules edited with the `rules`
/// command take effect within this time. A look that finds the rule set's fingerprint
/// unchanged reads no rule.
const RULES_REREAD: Duration = Duration::from_secs(10);

/// Runs until `shutdown`: starts due sessions and prepares them (subscription, history).
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let mut scheduler = Scheduler::default();
    loop {
        let next = match scheduler.pass(&ctx).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, kind = e.kind(), "scheduler pass failed; trying again");
                None
            }
        };
        let mut wait = next
            .map(|t| ctx.clock().wait_until(t))
            .unwrap_or(RULES_REREAD)
            .min(RULES_REREAD);
        if let Some(retry) = scheduler.retries.next_retry() {
            wait = wait.min(retry.saturating_duration_since(Instant::now()));
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = ctx.scheduler_woken() => {}
        }
    }
}

/// What the scheduler remembers between passes.
#[derive(Debug, Default)]
struct Scheduler {
    /// Sessions this process has started or found, and prepared; after a restart every
    /// running session is prepared again, which replays its history.
    known: HashMap<(RobotId, Date), u64>,
    /// Sessions whose start or preparation failed, each waiting out its own back-off, keyed
    /// by `status_check.id` (0 for a session that could not even be started, which is keyed
    /// by robot instead: see [`start_key`]).
    retries: SessionRetries,
    /// The rules as last read, with the fingerprint they were read at: an unchanged rule set
    /// costs one small query per pass instead of reading every rule.
    rules: Option<(RulesFingerprint, Arc<Vec<StoredRule>>)>,
}

/// The retry key of a session that has no `status_check.id` yet: it could not be started.
fn start_key(robot_id: RobotId) -> u64 {
    u64::MAX - u64::from(robot_id)
}

/// A session the pass starts or prepares.
struct Job {
    stored: StoredRule,
    session: Session,
    today: Date,
}

impl Scheduler {
    /// The stored rules, read again only when their fingerprint changed.
    async fn rules(&mut self, ctx: &Context) -> Result<Arc<Vec<StoredRule>>, RuntimeError> {
        let fingerprint = ctx.store().rules_fingerprint().await?;
        if let Some((seen, rules)) = &self.rules
            && *seen == fingerprint
        {
            return Ok(Arc::clone(rules));
        }
        let rules = Arc::new(ctx.store().rules().await?);
        self.rules = Some((fingerprint, Arc::clone(&rules)));
        Ok(rules)
    }

    /// One pass: starts and prepares every session that is due and still runs, up to
    /// `prepare_concurrency` at once; returns the next session start. A rule or session that
    /// fails is retried on its own back-off and holds up no other.
    ///
    /// A session is started late (at boot mid-day, or after downtime) from S with its history
    /// replayed, but only while it still runs: one that ended before it could be started is
    /// not evaluated after the fact, since alarms about a finished day help nobody. Nor is a
    /// session of an earlier date whose S lies before the rule's last change (semantics §6: a
    /// change applies to sessions that have not started).
    async fn pass(&mut self, ctx: &Context) -> Result<Option<Timestamp>, RuntimeError> {
        let now = ctx.now();
        let mut next_start: Option<Timestamp> = None;
        let mut wanted = HashSet::new();
        let mut jobs = Vec::new();
        for stored in self.rules(ctx).await?.iter() {
            if !stored.rule.enabled {
                continue;
            }
            let rule = &stored.rule;
            let today = rule.timezone.to_datetime(now).date();
            // Yesterday's session may still run (it crosses midnight).
            for date in [today.yesterday().ok(), Some(today), today.tomorrow().ok()]
                .into_iter()
                .flatten()
            {
                let Some(session) = Session::on(rule, date) else {
                    continue;
                };
                if session.start > now {
                    next_start = Some(next_start.map_or(session.start, |n| n.min(session.start)));
                    continue;
                }
                let key = (rule.robot_id, date);
                wanted.insert(key);
                if self.known.contains_key(&key)
                    || self
                        .retries
                        .waiting(start_key(rule.robot_id), Instant::now())
                {
                    continue;
                }
                jobs.push(Job {
                    stored: stored.clone(),
                    session,
                    today,
                });
            }
        }
        self.run_jobs(ctx, jobs).await;
        // Forget sessions of dates that are no longer looked at (and of disabled rules).
        self.known.retain(|key, _| wanted.contains(key));
        let known_ids: HashSet<u64> = self.known.values().copied().collect();
        self.retries.retain(|id, f| {
            !known_ids.contains(&id) && wanted.iter().any(|(robot, _)| *robot == f.robot_id)
        });
        Ok(next_start)
    }

    /// Starts and prepares `jobs`, up to `prepare_concurrency` at once (thousands of robots
    /// share the same S, and a restart prepares every running session again).
    async fn run_jobs(&mut self, ctx: &Context, jobs: Vec<Job>) {
        let concurrency = ctx.settings().prepare_concurrency.max(1);
        let at = Instant::now();
        let waiting: Arc<HashSet<u64>> = Arc::new(
            self.retries
                .iter()
                .map(|(id, _)| id)
                .filter(|id| self.retries.waiting(*id, at))
                .collect(),
        );
        let mut running = JoinSet::new();
        let mut by_task = HashMap::new();
        let mut queued = jobs.into_iter();
        loop {
            while running.len() < concurrency {
                let Some(job) = queued.next() else { break };
                let (robot_id, date) = (job.stored.rule.robot_id, job.session.date);
                let (task_ctx, waiting) = (ctx.clone(), Arc::clone(&waiting));
                let handle =
                    running.spawn(async move { start_and_prepare(&task_ctx, job, &waiting).await });
                by_task.insert(handle.id(), (robot_id, date));
            }
            let Some(joined) = running.join_next_with_id().await else {
                return;
            };
            let (id, result) = match joined {
                Ok((id, result)) => (id, result),
                Err(e) => {
                    let reason = if e.is_panic() {
                        "panicked"
                    } else {
                        "was cancelled"
                    };
                    tracing::error!(task = %e.id(), "starting a session {reason}");
                    match by_task.get(&e.id()) {
                        Some((robot_id, _)) => (
                            e.id(),
                            Err((start_key(*robot_id), RuntimeError::Panicked(reason))),
                        ),
                        None => continue,
                    }
                }
            };
            let Some((robot_id, date)) = by_task.remove(&id) else {
                continue;
            };
            match result {
                Ok(Started::Skipped) => {}
                Ok(Started::Waiting) => {
                    self.retries.forget(start_key(robot_id));
                }
                Ok(Started::Prepared(session_id)) => {
                    self.retries.forget(start_key(robot_id));
                    if let Some(failing) = self.retries.forget(session_id) {
                        tracing::info!(
                            statusCheckId = session_id,
                            robotId = robot_id,
                            attempts = failing.attempts,
                            "session prepared after failing before"
                        );
                    }
                    self.known.insert((robot_id, date), session_id);
                }
                Err((retry_key, e)) => {
                    if retry_key != start_key(robot_id) {
                        self.retries.forget(start_key(robot_id));
                    }
                    let failing = self.retries.failed(retry_key, robot_id, &e, ctx.now());
                    tracing::warn!(robotId = robot_id, date = %date,
                        attempts = failing.attempts, error = %e, kind = e.kind(),
                        "could not start or prepare the session yet; retrying it on its own");
                }
            }
        }
    }
}

/// What became of one session the pass looked at.
enum Started {
    /// Nothing to do: it ended before it could be started, or belongs to an older rule.
    Skipped,
    /// It exists and is waiting out a back-off of its own.
    Waiting,
    /// It runs and is prepared.
    Prepared(u64),
}

/// Starts the session when nobody has yet and prepares it, unless it is waiting out a
/// back-off (`waiting` holds the retry keys that are); on failure says under which key to
/// retry it.
async fn start_and_prepare(
    ctx: &Context,
    job: Job,
    waiting: &HashSet<u64>,
) -> Result<Started, (u64, RuntimeError)> {
    let Job {
        stored,
        session,
        today,
    } = job;
    let rule = &stored.rule;
    let now = ctx.now();
    let robot_key = start_key(rule.robot_id);
    let found = ctx
        .store()
        .session_id(rule.robot_id, session.date)
        .await
        .map_err(|e| (robot_key, e.into()))?;
    let id = match found {
        Some(id) => id,
        None if session.end <= now => return Ok(Started::Skipped),
        None if session.date < today && stored.updated_at > session.start => {
            return Ok(Started::Skipped);
        }
        None => ctx
            .start_session(&stored, session, now)
            .await
            .map_err(|e| (robot_key, e.into()))?,
    };
    if waiting.contains(&id) {
        return Ok(Started::Waiting);
    }
    prepare(ctx, &stored, session, id)
        .await
        .map_err(|e| (id, e))?;
    Ok(Started::Prepared(id))
}

/// Subscribes the session at Megazord (when it runs on and has no subscription) and replays
/// its history since S.
async fn prepare(
    ctx: &Context,
    stored: &StoredRule,
    session: Session,
    id: u64,
) -> Result<(), RuntimeError> {
    let Some(megazord) = ctx.megazord() else {
        return Ok(());
    };
    let rule = &stored.rule;
    let call_ref = CallRef::new();
    let view = ctx
        .store()
        .session(id)
        .await?
        .ok_or(RuntimeError::SessionVanished(id))?;
    if !view.state.is_running() {
        return Ok(());
    }
    let now = ctx.now();
    if view.subscription_id.is_none() && view.state.session.end > now {
        let subscription = megazord
            .create_subscription(
                rule.robot_id,
                std::slice::from_ref(&rule.watched_event),
                view.state.session.end,
                ctx.settings().queue_suffix.as_deref(),
                &call_ref,
            )
            .await?;
        ctx.liveness().megazord_answered(ctx.now());
        let stored_it = ctx
            .store()
            .record_subscribed(id, subscription.id, now)
            .await?;
        if stored_it {
            tracing::info!(statusCheckId = id, robotId = rule.robot_id,
                subscriptionId = subscription.id, callRef = %call_ref, "subscribed");
        } else {
            // Another instance subscribed first: this spare is recorded (so the janitor deletes
            // it should this delete fail) and deleted now.
            tracing::info!(statusCheckId = id, robotId = rule.robot_id,
                subscriptionId = subscription.id, callRef = %call_ref,
                "another instance subscribed the session first: deleting this spare subscription");
            match megazord
                .delete_subscription(rule.robot_id, subscription.id, &call_ref)
                .await
            {
                Ok(_) => {
                    ctx.store()
                        .forget_subscription(subscription.id, now)
                        .await?
                }
                Err(e) => {
                    tracing::warn!(statusCheckId = id, robotId = rule.robot_id,
                        subscriptionId = subscription.id, error = %e,
                        "spare subscription not deleted yet; the janitor tries again");
                }
            }
        }
    }
    // A rule created or enabled after S watches from then on only (semantics §6).
    let since = stored
        .watching_since
        .map_or(session.start, |t| t.clamp(session.start, session.end));
    replay_history(ctx, stored, since, &call_ref).await
}

/// Applies every watched event of the rule's robot that Megazord has since `since`.
pub(crate) async fn replay_history(
    ctx: &Context,
    stored: &StoredRule,
    since: Timestamp,
    call_ref: &CallRef,
) -> Result<(), RuntimeError> {
    let Some(megazord) = ctx.megazord() else {
        return Ok(());
    };
    let rule = &stored.rule;
    let events = megazord
        .incomings(rule.robot_id, &rule.watched_event, since, call_ref)
        .await?;
    ctx.liveness().megazord_answered(ctx.now());
    for event in events {
        ctx.take_event(WatchedEvent {
            robot_id: rule.robot_id,
            incoming_event_id: event.id,
            outgoing_event_id: None,
            event_name: event.event_name.clone(),
            occurred_at: event.created_at,
        })
        .await?;
    }
    Ok(())
}
