//! Starting sessions: at S of every enabled rule (or at boot for sessions whose S has passed),
//! subscribing at Megazord and replaying the history since S, so that nothing that happened
//! while the service was down is missed (spec §2, §6; contracts §6 item 18).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::intake::WatchedEvent;
use crate::domain::{RobotId, Session};
use crate::megazord::CallRef;
use crate::store::{StoreError, StoredRule};

/// How often rules are read again when nothing else wakes the scheduler (rules edited with
/// the `rules` command take effect within this time).
const RULES_REREAD: Duration = Duration::from_secs(10);

/// Runs until `shutdown`: starts due sessions and prepares them (subscription, history).
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    // Sessions this process has started or found, and prepared; after a restart every running
    // session is prepared again, which replays its history.
    let mut known: HashMap<(RobotId, Date), u64> = HashMap::new();
    loop {
        let next = match pass(&ctx, &mut known).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "scheduler pass failed; trying again");
                None
            }
        };
        let wait = next
            .map(|t| ctx.clock().wait_until(t))
            .unwrap_or(RULES_REREAD)
            .min(RULES_REREAD);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = ctx.scheduler_woken() => {}
        }
    }
}

/// One pass: starts and prepares every session that is due and still runs; returns the next
/// session start.
///
/// A session is started late (at boot mid-day, or after downtime) from S with its history
/// replayed, but only while it still runs: one that ended before it could be started is not
/// evaluated after the fact, since alarms about a finished day help nobody. Nor is a session
/// of an earlier date whose S lies before the rule's last change (spec §6: a change applies to
/// sessions that have not started).
async fn pass(
    ctx: &Context,
    known: &mut HashMap<(RobotId, Date), u64>,
) -> Result<Option<Timestamp>, StoreError> {
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
            if known.contains_key(&key) {
                continue;
            }
            let id = match ctx.store().session_id(rule.robot_id, date).await? {
                Some(id) => id,
                None if session.end <= now => continue,
                None if date < today && stored.updated_at > session.start => continue,
                None => ctx.start_session(&stored, session, now).await?,
            };
            match prepare(ctx, &stored, session, id).await {
                Ok(()) => {
                    known.insert(key, id);
                }
                Err(e) => {
                    // Left out of `known`, so that the next pass tries again.
                    tracing::warn!(statusCheckId = id, robotId = rule.robot_id, error = %e,
                        "could not prepare the session yet");
                }
            }
        }
    }
    // Forget sessions of dates that are no longer looked at (and of disabled rules).
    known.retain(|key, _| wanted.contains(key));
    Ok(next_start)
}

/// Subscribes the session at Megazord (when it runs on and has no subscription) and replays
/// its history since S.
async fn prepare(
    ctx: &Context,
    stored: &StoredRule,
    session: Session,
    id: u64,
) -> Result<(), String> {
    let Some(megazord) = ctx.megazord() else {
        return Ok(());
    };
    let rule = &stored.rule;
    let call_ref = CallRef::new();
    let view = ctx
        .store()
        .session(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the session vanished")?;
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
            .await
            .map_err(|e| e.to_string())?;
        let stored_it = ctx
            .store()
            .record_subscribed(id, subscription.id, now)
            .await
            .map_err(|e| e.to_string())?;
        if stored_it {
            tracing::info!(statusCheckId = id, robotId = rule.robot_id,
                subscriptionId = subscription.id, callRef = %call_ref, "subscribed");
        } else {
            // Another instance subscribed first: do not leave a second subscription behind.
            let _ = megazord
                .delete_subscription(rule.robot_id, subscription.id, &call_ref)
                .await;
        }
    }
    replay_history(ctx, stored, session.start, &call_ref).await
}

/// Applies every watched event of the rule's robot that Megazord has since `since`.
pub(crate) async fn replay_history(
    ctx: &Context,
    stored: &StoredRule,
    since: Timestamp,
    call_ref: &CallRef,
) -> Result<(), String> {
    let Some(megazord) = ctx.megazord() else {
        return Ok(());
    };
    let rule = &stored.rule;
    let events = megazord
        .incomings(rule.robot_id, &rule.watched_event, since, call_ref)
        .await
        .map_err(|e| e.to_string())?;
    for event in events {
        ctx.take_event(WatchedEvent {
            robot_id: rule.robot_id,
            incoming_event_id: event.id,
            outgoing_event_id: None,
            event_name: event.event_name.clone(),
            occurred_at: event.created_at,
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
