//! Closing windows on time: sleep until the earliest deadline plus the grace, read Megazord's
//! history for the window (so that a delayed queue message never causes a false alarm), then
//! close it in one transaction that writes the alarm into the outbox (spec §4, §6).

use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::scheduler::replay_history;
use crate::megazord::CallRef;
use crate::store::{CloseOutcome, DueWindow, StoreError};
use crate::telemetry::names;

/// How many due windows are fetched at once.
const BATCH: u32 = 100;
/// The longest the closer sleeps without looking (in case a wake-up was missed).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// The pause after a failed pass (Megazord or the database unreachable).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    loop {
        let wait = match pass(&ctx, &shutdown).await {
            Ok(Some(next_deadline)) => {
                let close_at = next_deadline
                    .checked_add(ctx.settings().grace)
                    .unwrap_or(next_deadline);
                ctx.clock().wait_until(close_at).min(MAX_SLEEP)
            }
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::warn!(error = %e, "closing windows failed; trying again");
                RETRY_PAUSE
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = ctx.closer_woken() => {}
        }
    }
}

/// Closes every window whose deadline plus grace has passed; returns the next deadline.
async fn pass(ctx: &Context, shutdown: &CancellationToken) -> Result<Option<Timestamp>, String> {
    loop {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        let now = ctx.now();
        let cutoff = now.checked_sub(ctx.settings().grace).unwrap_or(now);
        let due = ctx
            .store()
            .due_windows(cutoff, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        if due.is_empty() {
            let next = ctx
                .store()
                .due_windows(Timestamp::MAX, 1)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(next.first().map(|w| w.deadline));
        }
        for window in due {
            if shutdown.is_cancelled() {
                return Ok(None);
            }
            close(ctx, window).await?;
        }
    }
}

/// Reads the window's history, then closes it if no event has moved it meanwhile.
async fn close(ctx: &Context, due: DueWindow) -> Result<(), String> {
    let store = ctx.store();
    if ctx.megazord().is_some() {
        let Some(stored) = store.rule(due.robot_id).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let call_ref = CallRef::new();
        replay_history(ctx, &stored, due.window_start, &call_ref).await?;
    }
    let now = ctx.now();
    match store
        .close_window(due.status_check_id, due.deadline, now)
        .await
        .map_err(|e: StoreError| e.to_string())?
    {
        CloseOutcome::Closed {
            alarm,
            next,
            result,
        } => {
            metrics::counter!(names::WINDOWS_CLOSED, "alarm" => if alarm.is_some() { "true" } else { "false" })
                .increment(1);
            tracing::info!(
                statusCheckId = due.status_check_id,
                robotId = due.robot_id,
                windowStart = %due.window_start,
                windowEnd = %due.deadline,
                referenceId = alarm.map(|a| a.reference_id()),
                nextWindowEnd = next.map(|w| w.end.to_string()),
                result = %result,
                "window closed"
            );
            if alarm.is_some() {
                ctx.wake_dispatcher();
            }
            if next.is_none() {
                // The session ended: the janitor removes its subscription.
                ctx.wake_scheduler();
            }
        }
        CloseOutcome::Stale { deadline } => {
            tracing::debug!(statusCheckId = due.status_check_id, deadline = %deadline,
                "window moved before it closed");
        }
        CloseOutcome::NotRunning => {}
    }
    Ok(())
}
