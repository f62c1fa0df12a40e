//! Housekeeping: keep this instance's poller locks fresh (so a foreign teardown job never takes
//! them, contracts §6 item 10), delete Megazord subscriptions of ended sessions (404 counts as
//! gone), and end sessions abandoned for a day as `FAILED`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::error::RuntimeError;
use crate::megazord::{CallRef, Deletion};
use crate::numeric::count_f64;
use crate::telemetry::names;

/// How often the janitor runs (wall-clock time).
const EVERY: Duration = Duration::from_secs(60);

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    loop {
        if let Err(e) = pass(&ctx).await {
            tracing::warn!(error = %e, "housekeeping failed; trying again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
            () = ctx.janitor_woken() => {}
        }
    }
}

/// One round of housekeeping.
pub async fn pass(ctx: &Context) -> Result<(), RuntimeError> {
    let store = ctx.store();
    let now = ctx.now();
    store.refresh_poller_locks(&ctx.settings().owner).await?;
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
