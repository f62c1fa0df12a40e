//! Posting alarms from the outbox: exactly one `NO_TOILET_ACTIVITY_ALARM` per alarm identity.
//!
//! An alarm is claimed (one instance at a time), then posted, then marked sent with the id
//! Megazord gave it. A crash between posting and marking leaves the claim to expire; whoever
//! claims it next first looks the reference id up in Megazord's history and only posts when it
//! is not there (contracts §6 item 8).
//!
//! Up to `dispatch_concurrency` alarms are in flight at once, so that thousands of windows
//! closing in the same second are not posted one after the other.

use std::time::Duration;

use jiff::SignedDuration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::together::Together;
use crate::megazord::CallRef;
use crate::store::{Dialect, OutboxAlarm, StoreError};
use crate::telemetry::names;

// Why alarms are claimed no earlier than they can be posted: a claim's lease has to cover
// the lookup and post of that one alarm only. Had several been claimed and posted one after
// the other, the later ones would wait behind the earlier posts; once their lease ran out
// another instance could claim them, find them not yet at Megazord and post them too, and
// then this instance posted them again. So the dispatcher claims only as many alarms as it
// has free posting slots (`dispatch_concurrency`), and each claimed alarm's post starts at
// once on a task of its own.

/// The longest the dispatcher sleeps without looking.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// The pause after a failed post.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The most alarms marked sent in one transaction.
const MAX_MARK_BATCH: usize = 64;

/// Where a posted alarm is marked sent. On SQLite (one writer, an fsync per commit) the alarms
/// posted meanwhile are marked together by one task ([`Together`]); on MySQL each in a
/// transaction of its own, concurrently on the pool: a mark reads and locks rows one after the
/// other, so a batch of them on one connection would take longer than the same marks side by
/// side.
#[derive(Clone, Default)]
struct Marks {
    together: Option<Together<(u64, u64), Result<bool, StoreError>>>,
}

impl Marks {
    /// Starts the marking task where the store gains from it; it ends with the last clone.
    fn start(ctx: &Context) -> Marks {
        if ctx.store().dialect() != Dialect::Sqlite {
            return Marks::default();
        }
        let ctx = ctx.clone();
        let together = Together::start(MAX_MARK_BATCH, move |alarms: Vec<(u64, u64)>| {
            let ctx = ctx.clone();
            async move { ctx.store().mark_alarms_sent(&alarms, ctx.now()).await }
        });
        Marks {
            together: Some(together),
        }
    }

    /// Marks the alarm sent with the id Megazord gave it.
    async fn sent(&self, ctx: &Context, alarm_id: u64, megazord_id: u64) -> Result<bool, String> {
        let Some(together) = &self.together else {
            return ctx
                .store()
                .mark_alarm_sent(alarm_id, megazord_id, ctx.now())
                .await
                .map_err(|e| e.to_string());
        };
        together
            .ask((alarm_id, megazord_id))
            .await
            .ok_or_else(|| "marking alarms sent has stopped".to_string())?
            .map_err(|e| e.to_string())
    }
}

/// Runs until `shutdown`: keeps up to `dispatch_concurrency` alarms in flight, claiming more
/// as posts finish.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let http = reqwest::Client::new();
    let marks = Marks::start(&ctx);
    let concurrency = ctx.settings().dispatch_concurrency.max(1);
    let mut in_flight: JoinSet<Result<Option<Duration>, String>> = JoinSet::new();
    // When the earliest alarm whose post failed may be claimed again: the dispatcher looks
    // then, not only after its longest sleep.
    let mut next_retry: Option<tokio::time::Instant> = None;
    // Set when the last claim found nothing to claim (or failed): no new claim is made until
    // something changes (a post finished, a wake-up, a pause).
    let mut idle = false;
    let mut pause = MAX_SLEEP;
    loop {
        if shutdown.is_cancelled() {
            // Posts already started finish and are marked: nothing is left half-done.
            while in_flight.join_next().await.is_some() {}
            return;
        }
        // Claims go in chunks while a backlog is being worked through (one claim per finished
        // post would be a transaction per alarm).
        let chunk = (concurrency / 4).max(1);
        let free = concurrency.saturating_sub(in_flight.len());
        if !idle && (free >= chunk || (in_flight.is_empty() && free > 0)) {
            let room = u32::try_from(concurrency - in_flight.len()).unwrap_or(u32::MAX);
            match claim(&ctx, room).await {
                Ok(alarms) => {
                    ctx.liveness().dispatcher_passed();
                    let claimed = alarms.len();
                    for alarm in alarms {
                        let (ctx, http, marks) = (ctx.clone(), http.clone(), marks.clone());
                        in_flight.spawn(async move { handle(&ctx, &http, &marks, alarm).await });
                    }
                    if claimed < room as usize {
                        idle = true;
                        pause = MAX_SLEEP;
                    }
                    if claimed > 0 {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming alarms failed; trying again");
                    idle = true;
                    pause = RETRY_PAUSE;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            joined = in_flight.join_next(), if !in_flight.is_empty() => {
                match joined {
                    Some(Ok(Ok(None))) => {}
                    Some(Ok(Ok(Some(wait)))) => {
                        // A little after the retry instant, which the claim compares to the
                        // service clock to the millisecond.
                        let at = tokio::time::Instant::now() + wait + Duration::from_millis(20);
                        next_retry = Some(next_retry.map_or(at, |t| t.min(at)));
                    }
                    Some(Ok(Err(e))) => {
                        tracing::warn!(error = %e, "posting an alarm failed; trying again");
                    }
                    Some(Err(e)) => tracing::error!(error = %e, "posting an alarm panicked"),
                    None => {}
                }
                idle = false;
            }
            () = tokio::time::sleep(pause), if in_flight.is_empty() || idle => {
                idle = false;
            }
            () = sleep_until_retry(next_retry), if next_retry.is_some() => {
                next_retry = None;
                idle = false;
            }
            () = ctx.dispatcher_woken() => idle = false,
        }
    }
}

/// Sleeps until `at` (forever without one; the caller only polls this with one).
async fn sleep_until_retry(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Claims up to `limit` alarms for this instance.
async fn claim(ctx: &Context, limit: u32) -> Result<Vec<OutboxAlarm>, String> {
    ctx.store()
        .claim_alarms(
            &ctx.settings().owner,
            limit,
            ctx.now(),
            ctx.settings().alarm_lease,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Posts one claimed alarm and marks it sent, or failed with a back-off of its own: one alarm
/// that cannot be posted holds up no other. Says, for a failed post, after how long (wall
/// clock) the alarm may be claimed again.
async fn handle(
    ctx: &Context,
    http: &reqwest::Client,
    marks: &Marks,
    alarm: OutboxAlarm,
) -> Result<Option<Duration>, String> {
    match post(ctx, http, &alarm).await {
        Ok(megazord_id) => {
            marks.sent(ctx, alarm.id, megazord_id).await?;
            let now = ctx.now();
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
            Ok(None)
        }
        Err(e) => {
            metrics::counter!(names::ALARMS, "outcome" => "failed").increment(1);
            tracing::warn!(referenceId = %alarm.reference_id, error = %e, "alarm not sent yet");
            let now = ctx.now();
            let wall = retry_delay(alarm.attempts);
            let service = SignedDuration::from_secs_f64(wall.as_secs_f64() * ctx.clock().speed());
            let retry_at = now.checked_add(service).unwrap_or(now);
            ctx.store()
                .mark_alarm_failed_until(alarm.id, &e, retry_at, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some(wall))
        }
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
fn retry_delay(attempts: u32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(300))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(300))
}
