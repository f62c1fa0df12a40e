//! Posting alarms from the outbox: exactly one `NO_TOILET_ACTIVITY_ALARM` per alarm identity.
//!
//! An alarm is claimed (one instance at a time), then posted, then marked sent with the id
//! Megazord gave it. A crash between posting and marking leaves the claim to expire; whoever
//! claims it next first looks the reference id up in Megazord's history and only posts when it
//! is not there (contracts §6 item 8).

use std::time::Duration;

use jiff::SignedDuration;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use crate::megazord::CallRef;
use crate::store::OutboxAlarm;
use crate::telemetry::names;

/// How many alarms are claimed at once: one, so that a claim's lease has to cover the lookup
/// and post of a single alarm only. With several claimed together, the later ones wait behind
/// the earlier posts; once their lease ran out another instance could claim them, find them
/// not yet at Megazord and post them too, and then this instance posted them again.
const BATCH: u32 = 1;
/// The longest the dispatcher sleeps without looking.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// The pause after a failed post.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let http = reqwest::Client::new();
    loop {
        let passed = pass(&ctx, &http).await;
        if passed.is_ok() {
            ctx.liveness().dispatcher_passed();
        }
        let wait = match passed {
            Ok(0) => MAX_SLEEP,
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::warn!(error = %e, "posting alarms failed; trying again");
                RETRY_PAUSE
            }
        };
        if wait.is_zero() && !shutdown.is_cancelled() {
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = ctx.dispatcher_woken() => {}
        }
    }
}

/// Claims and posts a batch; returns how many were posted.
async fn pass(ctx: &Context, http: &reqwest::Client) -> Result<usize, String> {
    let now = ctx.now();
    let alarms = ctx
        .store()
        .claim_alarms(
            &ctx.settings().owner,
            BATCH,
            now,
            ctx.settings().alarm_lease,
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut posted = 0;
    let mut failure = None;
    for alarm in alarms {
        match post(ctx, http, &alarm).await {
            Ok(megazord_id) => {
                let now = ctx.now();
                ctx.store()
                    .mark_alarm_sent(alarm.id, megazord_id, now)
                    .await
                    .map_err(|e| e.to_string())?;
                let late = now.duration_since(alarm.window_end);
                metrics::histogram!(names::DEADLINE_TO_ALARM).record(late.as_secs_f64());
                metrics::histogram!(names::DEADLINE_TO_ALARM_WALL)
                    .record(late.as_secs_f64() / ctx.clock().speed());
                metrics::counter!(names::ALARMS, "outcome" => "sent").increment(1);
                tracing::info!(
                    statusCheckId = alarm.status_check_id,
                    robotId = alarm.identity.robot_id,
                    referenceId = %alarm.reference_id,
                    windowStart = %alarm.identity.window_start,
                    windowEnd = %alarm.window_end,
                    megazordId = megazord_id,
                    "alarm sent"
                );
                posted += 1;
            }
            Err(e) => {
                // One alarm that cannot be posted must not hold up the others of the batch.
                metrics::counter!(names::ALARMS, "outcome" => "failed").increment(1);
                tracing::warn!(referenceId = %alarm.reference_id, error = %e, "alarm not sent yet");
                let now = ctx.now();
                let retry_at = now
                    .checked_add(retry_delay(alarm.attempts, ctx))
                    .unwrap_or(now);
                ctx.store()
                    .mark_alarm_failed_until(alarm.id, &e, retry_at, now)
                    .await
                    .map_err(|e| e.to_string())?;
                failure = Some(e);
            }
        }
    }
    match failure {
        Some(e) if posted == 0 => Err(e),
        _ => Ok(posted),
    }
}

/// Posts one alarm and returns the id it has at Megazord (or the outbox id when there is no
/// Megazord).
async fn post(ctx: &Context, http: &reqwest::Client, alarm: &OutboxAlarm) -> Result<u64, String> {
    let robot_id = alarm.identity.robot_id;
    let Some(megazord) = ctx.megazord() else {
        if let Some(url) = &ctx.settings().alarm_webhook {
            let body = serde_json::json!({
                "robotId": robot_id,
                "eventName": alarm.alarm_event,
                "referenceId": alarm.reference_id,
                "windowStart": alarm.identity.window_start,
                "windowEnd": alarm.window_end,
            });
            http.post(url)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| {
                    let url = crate::redact::redact_url(url);
                    format!("webhook {url}: {}", e.without_url())
                })?;
        }
        tracing::warn!(
            robotId = robot_id,
            referenceId = %alarm.reference_id,
            windowStart = %alarm.identity.window_start,
            windowEnd = %alarm.window_end,
            "NO_TOILET_ACTIVITY_ALARM (no Megazord configured: recorded here only)"
        );
        return Ok(alarm.id);
    };
    let call_ref = CallRef::new();
    if alarm.attempts > 1 {
        // An earlier claim may have posted it and crashed before marking it.
        let since = alarm
            .window_end
            .checked_sub(SignedDuration::from_secs(1))
            .unwrap_or(alarm.window_end);
        let history = megazord
            .incomings(robot_id, &alarm.alarm_event, since, &call_ref)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(found) = history
            .iter()
            .find(|e| e.reference_id.as_deref() == Some(alarm.reference_id.as_str()))
        {
            tracing::info!(referenceId = %alarm.reference_id, megazordId = found.id,
                "alarm was already posted: not posting again");
            return Ok(found.id);
        }
    }
    let poster = ctx.alarm_poster().unwrap_or(megazord);
    let event = poster
        .post_event(robot_id, &alarm.alarm_event, &alarm.reference_id, &call_ref)
        .await
        .map_err(|e| e.to_string())?;
    ctx.liveness().megazord_answered(ctx.now());
    Ok(event.id)
}

/// How long (service time) an alarm whose post failed for the `attempts`-th time waits before
/// it is claimed again: exponential from 1 s to 5 minutes of wall time, with jitter, so a post
/// Megazord keeps refusing neither hammers it nor holds up later alarms.
fn retry_delay(attempts: u32, ctx: &Context) -> SignedDuration {
    use backon::BackoffBuilder;
    let wall = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(300))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(300));
    SignedDuration::from_secs_f64(wall.as_secs_f64() * ctx.clock().speed())
}
