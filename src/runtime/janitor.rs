//! Housekeeping: keep this instance's poller locks fresh (so a foreign teardown job never takes
//! them, contracts §6 item 10), delete Megazord subscriptions of ended sessions (404 counts as
//! gone), and end sessions abandoned for a day as `FAILED`.
//!
//! Only the poller locks are kept while windows wait to be closed: the rest reads every running
//! session, and 100,000 windows ending together are closed faster without it (design 2.21).

use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::error::RuntimeError;
use crate::megazord::{CallRef, Deletion};
use crate::numeric::count_f64;
use crate::telemetry::names;

/// How often the janitor runs (wall-clock time), when no ended session wakes it sooner.
const EVERY: Duration = Duration::from_secs(60);
/// How often the poller locks are refreshed (wall-clock time); a row written within this time
/// (its window moved) is left as it is, so that none is more than a minute old when the legacy
/// cleanup looks.
const POLLER_EVERY: Duration = Duration::from_secs(30);
/// How many poller rows are refreshed in one transaction.
const POLLER_CHUNK: usize = 500;
/// How long the housekeeping beside the poller locks may be put off while windows are being
/// closed.
const PUT_OFF_AT_MOST: Duration = Duration::from_secs(600);

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let closing = ctx.closing();
    let mut last_full: Option<Instant> = None;
    let mut last_refresh: Option<Instant> = None;
    let mut woken = false;
    loop {
        let full_due = woken || last_full.is_none_or(|at| at.elapsed() >= EVERY);
        let put_off =
            *closing.borrow() && last_full.is_some_and(|at| at.elapsed() < PUT_OFF_AT_MOST);
        let done = if full_due && !put_off {
            pass(&ctx).await.map(|()| {
                woken = false;
                last_full = Some(Instant::now());
                last_refresh = last_full;
            })
        } else if last_refresh.is_none_or(|at| at.elapsed() >= POLLER_EVERY) {
            // Only the locks while windows are being closed: a wake then (a session ended)
            // waits for them, its subscription with it.
            refresh_poller_locks(&ctx)
                .await
                .map(|()| last_refresh = Some(Instant::now()))
        } else {
            Ok(())
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "housekeeping failed; trying again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(POLLER_EVERY) => {}
            () = ctx.janitor_woken() => woken = true,
        }
    }
}

/// Refreshes the poller locks this instance holds.
async fn refresh_poller_locks(ctx: &Context) -> Result<(), RuntimeError> {
    ctx.store()
        .refresh_poller_locks(&ctx.settings().owner, POLLER_EVERY, POLLER_CHUNK)
        .await?;
    Ok(())
}

/// One round of housekeeping.
pub async fn pass(ctx: &Context) -> Result<(), RuntimeError> {
    let store = ctx.store();
    let now = ctx.now();
    refresh_poller_locks(ctx).await?;
    let running = store.running_session_count().await?;
    metrics::gauge!(names::ACTIVE_SESSIONS).set(count_f64(running));
    let abandoned_before = now
        .checked_sub(ctx.settings().abandoned_after)
        .unwrap_or(now);
    let abandoned = store
        .running_sessions_ended_before(abandoned_before)
        .await?;
    for session in &abandoned {
        tracing::warn!(statusCheckId = session.status_check_id.get(), robotId = session.robot_id.get(),
            end = %session.end, "session abandoned for a day: ended as FAILED");
        store
            .fail_session(
                session.status_check_id,
                "the session was still running a day after its end",
                now,
            )
            .await?;
    }
    // A failed prune waits for the next pass; it holds up no other housekeeping.
    match store
        .prune_dead_letters(ctx.settings().dead_letters, now)
        .await
    {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "old dead letters deleted"),
        Err(e) => tracing::warn!(error = %e, "old dead letters not deleted yet"),
    }
    let Some(megazord) = ctx.megazord() else {
        return Ok(());
    };
    for leftover in store.ended_subscriptions(100).await? {
        let call_ref = CallRef::new();
        match megazord
            .delete_subscription(leftover.robot_id, leftover.subscription_id, &call_ref)
            .await
        {
            Ok(deletion) => {
                tracing::info!(statusCheckId = leftover.status_check_id.get(),
                    subscriptionId = leftover.subscription_id, gone = matches!(deletion, Deletion::AlreadyGone),
                    callRef = %call_ref, "subscription deleted");
                store
                    .forget_subscription(leftover.subscription_id, now)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(subscriptionId = leftover.subscription_id, error = %e,
                    "subscription not deleted yet");
            }
        }
    }
    Ok(())
}
