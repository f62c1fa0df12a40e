//! Starting sessions: at S of every enabled rule (or at boot for sessions whose S has passed),
//! subscribing at Megazord and replaying the history since S, so that nothing that happened
//! while the service was down is missed (spec §2, §6; contracts §6 item 18).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use tokio_util::sync::CancellationToken;

use tokio::time::Instant;

use super::context::Context;
use super::error::RuntimeError;
use super::intake::WatchedEvent;
use super::retries::SessionRetries;
use crate::domain::{RobotId, Session};
use crate::megazord::CallRef;
use crate::store::StoredRule;

/// How often rules are read again when nothing else wakes the scheduler (rules edited with
/// the `rules` command take effect within this time).
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
}

/// The retry key of a session that has no `status_check.id` yet: it could not be started.
fn start_key(robot_id: RobotId) -> u64 {
    u64::MAX - u64::from(robot_id)
}

impl Scheduler {
    /// One pass: starts and prepares every session that is due and still runs; returns the
    /// next session start. A rule or session that fails is retried on its own back-off and
    /// holds up no other.
    ///
    /// A session is started late (at boot mid-day, or after downtime) from S with its history
    /// replayed, but only while it still runs: one that ended before it could be started is
    /// not evaluated after the fact, since alarms about a finished day help nobody. Nor is a
    /// session of an earlier date whose S lies before the rule's last change (spec §6: a
    /// change applies to sessions that have not started).
    async fn pass(&mut self, ctx: &Context) -> Result<Option<Timestamp>, RuntimeError> {
        let now = ctx.now();
        let mut next_start: Option<Timestamp> = None;
        let mut wanted = HashSet::new();
        for stored in ctx.store().rules().await? {
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
                if self.known.contains_key(&key) {
                    continue;
                }
                if let Err((retry_key, e)) =
                    self.start_and_prepare(ctx, &stored, session, today).await
                {
                    let failing = self.retries.failed(retry_key, rule.robot_id, &e, ctx.now());
                    tracing::warn!(robotId = rule.robot_id, date = %date,
                        attempts = failing.attempts, error = %e, kind = e.kind(),
                        "could not start or prepare the session yet; retrying it on its own");
                }
            }
        }
        // Forget sessions of dates that are no longer looked at (and of disabled rules).
        self.known.retain(|key, _| wanted.contains(key));
        let known_ids: HashSet<u64> = self.known.values().copied().collect();
        self.retries.retain(|id, f| {
            !known_ids.contains(&id) && wanted.iter().any(|(robot, _)| *robot == f.robot_id)
        });
        Ok(next_start)
    }

    /// Starts the session when nobody has yet and prepares it, unless it is waiting out a
    /// back-off; on failure says under which key to retry it.
    async fn start_and_prepare(
        &mut self,
        ctx: &Context,
        stored: &StoredRule,
        session: Session,
        today: Date,
    ) -> Result<(), (u64, RuntimeError)> {
        let rule = &stored.rule;
        let now = ctx.now();
        let robot_key = start_key(rule.robot_id);
        if self.retries.waiting(robot_key, Instant::now()) {
            return Ok(());
        }
        let found = ctx
            .store()
            .session_id(rule.robot_id, session.date)
            .await
            .map_err(|e| (robot_key, e.into()))?;
        let id = match found {
            Some(id) => id,
            None if session.end <= now => return Ok(()),
            None if session.date < today && stored.updated_at > session.start => return Ok(()),
            None => ctx
                .start_session(stored, session, now)
                .await
                .map_err(|e| (robot_key, e.into()))?,
        };
        self.retries.forget(robot_key);
        if self.retries.waiting(id, Instant::now()) {
            return Ok(());
        }
        prepare(ctx, stored, session, id)
            .await
            .map_err(|e| (id, e))?;
        if let Some(failing) = self.retries.forget(id) {
            tracing::info!(
                statusCheckId = id,
                robotId = rule.robot_id,
                attempts = failing.attempts,
                "session prepared after failing before"
            );
        }
        self.known.insert((rule.robot_id, session.date), id);
        Ok(())
    }
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
    // A rule created or enabled after S watches from then on only (spec §6).
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
