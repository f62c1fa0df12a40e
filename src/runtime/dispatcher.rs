//! Posting alarms from the outbox: exactly one `NO_TOILET_ACTIVITY_ALARM` per alarm identity.
//!
//! An alarm is claimed (one instance at a time), then posted, then marked sent with the id
//! Megazord gave it. A crash between posting and marking leaves the claim to expire; whoever
//! claims it next first looks the reference id up in Megazord's history and only posts when it
//! is not there (contracts §6 item 8).
//!
//! Up to `dispatch_concurrency` alarms are in flight at once, so that thousands of windows
//! closing in the same second are not posted one after the other. Most alarms arrive already
//! claimed: the closer claims them in the transaction that closes their windows and hands them
//! over ([`super::handoff`]); the dispatcher claims from the store only what is left (alarms
//! whose post failed, alarms of a closer whose hand-off queue was full, alarms of an instance
//! that died). Marking a posted alarm sent happens beside the posts, in batches.

use std::time::Duration;

use jiff::SignedDuration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::error::RuntimeError;
use super::together::Pool;
use crate::megazord::{CallRef, MegazordError, MegazordEventId};
use crate::store::{AlarmId, Dialect, OutboxAlarm, StoreError};
use crate::telemetry::names;

// Why alarms are claimed no earlier than they can be posted: a claim's lease has to cover
// the lookup and post of that one alarm only. Had several been claimed and posted one after
// the other, the later ones would wait behind the earlier posts; once their lease ran out
// another instance could claim them, find them not yet at Megazord and post them too, and
// then this instance posted them again. So the dispatcher claims only as many alarms as it
// has free posting slots (`dispatch_concurrency`), and each claimed alarm's post starts at
// once on a task of its own. The alarms the closer claims for it wait for a slot in memory,
// but never for longer than half their lease: then they are given back to the store.

/// The longest the dispatcher sleeps without looking.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// The pause after a failed claim (the store unreachable).
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// While posts keep finishing, the store is looked at again no more often than this: alarms
/// whose claim ran out (an instance died), whose retry instant came under a clock that jumped,
/// or whose mark failed are found within it. After every finished post, as before, 10,000
/// windows closing together made some 200 claims that found nothing; with no claim after posts
/// at all, the soak's alarms of a killed instance waited for the 30 s look.
const CLAIM_BESIDE_POSTS_EVERY: Duration = Duration::from_secs(1);

/// The most alarms marked sent in one transaction.
const MAX_MARK_BATCH: usize = 64;
/// How many tasks mark alarms sent side by side on MySQL. Two, not four: with 10,000 windows
/// ending together, fewer and larger mark batches leave MariaDB more of the machine for the
/// closes (performance.md, 2026-12-02, late).
const MYSQL_MARKERS: usize = 2;
/// How many posted alarms may wait to be marked sent, per posting slot, before no new post
/// starts: marks that cannot keep up slow the posts down instead of piling up without bound.
/// Generous, because a mark only records what Megazord already has (an alarm posted but not
/// marked is looked up before it is posted again): at 4 per slot the MariaDB marks held the
/// posts of 10,000 windows 1.1–1.4 s behind their closes, at 64 by 0.05 s; on SQLite, where
/// the marks wait for the closes' writer, 64 per slot stopped the posts for a second once
/// some 4,000 alarms were waiting to be marked (performance.md, 2026-12-03 afternoon).
const MARKS_PER_SLOT: usize = 256;
/// How many posted alarms may wait to be marked sent while windows are being closed, before
/// the oldest are marked all the same: room for the marks of more than 100,000 windows ending
/// together, at 32 bytes a mark (4 MiB). At 65,536, the marks of the last third of such a burst
/// were made while its windows were still being closed.
const MAX_DEFERRED_MARKS: usize = 131_072;
/// The longest a posted alarm waits to be marked sent while windows are being closed (wall
/// clock), and never more than a quarter of its lease: an alarm whose claim ran out unmarked
/// is looked up at Megazord before anyone posts it again, a lookup this spares.
const MAX_MARK_DEFERRAL: Duration = Duration::from_secs(60);

/// Where a posted alarm is marked sent: by tasks that each take whatever marks have queued up
/// meanwhile and write them in one transaction ([`Pool`]): one on SQLite (one writer, an
/// fsync per commit), a few side by side on MySQL's pool. A mark no longer holds a posting
/// slot: the next alarm's post starts while the last one is being marked.
#[derive(Clone)]
struct Marks {
    /// Each request is an alarm and the id Megazord gave it.
    markers: Pool<(AlarmId, MegazordEventId), Result<bool, StoreError>>,
}

impl Marks {
    /// Starts the marking tasks; they end with the last clone.
    fn start(ctx: &Context) -> Marks {
        let count = match ctx.store().dialect() {
            Dialect::Sqlite => 1,
            Dialect::Mysql => MYSQL_MARKERS,
        };
        let markers = Pool::start(count, MAX_MARK_BATCH, || {
            let ctx = ctx.clone();
            move |alarms: Vec<(AlarmId, MegazordEventId)>| {
                let ctx = ctx.clone();
                async move { ctx.store().mark_alarms_sent(&alarms, ctx.now()).await }
            }
        });
        Marks { markers }
    }

    /// Marks the alarm sent with the id Megazord gave it, on a task of `marking`.
    fn spawn(
        &self,
        marking: &mut JoinSet<Result<bool, RuntimeError>>,
        alarm_id: AlarmId,
        megazord_id: MegazordEventId,
    ) {
        let markers = self.markers.clone();
        marking.spawn(async move {
            Ok(markers
                .ask((alarm_id, megazord_id))
                .await
                .ok_or(RuntimeError::Stopped("marking alarms sent"))??)
        });
    }
}

/// Posted alarms waiting to be marked sent. Marking is bookkeeping: Megazord has the alarm,
/// and one posted but not marked is looked up before anyone posts it again. While windows are
/// being closed the marks wait, so that the database works for the alarms still due; with
/// 10,000 windows ending together the marks took a third of MariaDB's statement time before
/// the last alarm was posted (performance.md, 2026-12-03 evening). They wait no longer than
/// [`MAX_MARK_DEFERRAL`] (and a quarter of the lease), and no more than
/// [`MAX_DEFERRED_MARKS`] wait.
struct Deferred {
    waiting: std::collections::VecDeque<(AlarmId, MegazordEventId, tokio::time::Instant)>,
    /// How long one may wait (wall clock).
    longest: Duration,
}

impl Deferred {
    fn new(ctx: &Context) -> Self {
        let quarter_lease = ctx.clock().real_duration(ctx.settings().alarm_lease / 4);
        Deferred::waiting_at_most(MAX_MARK_DEFERRAL.min(quarter_lease))
    }

    fn waiting_at_most(longest: Duration) -> Self {
        Deferred {
            waiting: std::collections::VecDeque::new(),
            longest,
        }
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn push(&mut self, alarm_id: AlarmId, megazord_id: MegazordEventId) {
        self.waiting
            .push_back((alarm_id, megazord_id, tokio::time::Instant::now()));
    }

    /// The marks to make now, at most `room`, oldest first: all of them unless windows are
    /// being closed (`urgent`), else those that waited their longest, and the oldest beyond
    /// [`MAX_DEFERRED_MARKS`]. The others wait for the next call.
    fn take_due(&mut self, urgent: bool, room: usize) -> Vec<(AlarmId, MegazordEventId)> {
        let now = tokio::time::Instant::now();
        let mut due = Vec::new();
        while let Some(&(alarm_id, megazord_id, posted)) = self.waiting.front() {
            let overdue = self.waiting.len() > MAX_DEFERRED_MARKS || now >= posted + self.longest;
            if due.len() >= room || (urgent && !overdue) {
                break;
            }
            self.waiting.pop_front();
            due.push((alarm_id, megazord_id));
        }
        due
    }

    fn take_all(&mut self) -> Vec<(AlarmId, MegazordEventId)> {
        self.waiting.drain(..).map(|(a, m, _)| (a, m)).collect()
    }

    /// Resolves when the oldest mark has waited its longest (never while none waits).
    async fn oldest_due(&self) {
        match self.waiting.front() {
            Some(&(_, _, posted)) => tokio::time::sleep_until(posted + self.longest).await,
            None => std::future::pending().await,
        }
    }
}

/// What became of one post.
enum Posted {
    /// Megazord has the alarm: it is to be marked sent with this id.
    Sent(OutboxAlarm, MegazordEventId),
    /// The post failed; the alarm may be claimed again after this long (wall clock).
    RetryAfter(Duration),
}

/// Runs until `shutdown`: keeps up to `dispatch_concurrency` alarms in flight, taking the
/// alarms the closer handed over first and claiming more from the store as posts finish.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let http = reqwest::Client::new();
    let marks = Marks::start(&ctx);
    let concurrency = ctx.settings().dispatch_concurrency.max(1);
    // How many marks may be under way before no new post starts.
    let mark_cap = concurrency * MARKS_PER_SLOT;
    let mut in_flight: JoinSet<Result<Posted, RuntimeError>> = JoinSet::new();
    let mut marking: JoinSet<Result<bool, RuntimeError>> = JoinSet::new();
    // Posted alarms not yet handed to the markers, oldest first, each with when it was posted:
    // while the closer has windows to close, their marks wait (see `Deferred`).
    let mut deferred = Deferred::new(&ctx);
    let mut closing = ctx.closing();
    // When the earliest alarm whose post failed may be claimed again: the dispatcher looks
    // then, not only after its longest sleep.
    let mut next_retry: Option<tokio::time::Instant> = None;
    // Set when the last claim found fewer alarms than it had room for (or failed): no new
    // claim from the store is made until something may have put alarms there (a wake-up, a
    // failed post's retry instant, alarms given back) or the next timed look. Alarms the
    // closer hands over do not end it: while windows close by the thousand, a claim after
    // every hand-over found nothing, some 200 transactions for 10,000 windows beside the
    // closes (performance.md, 2026-12-03 evening).
    let mut idle = false;
    // Whether the last claim filled its room: more may wait in the store, claimed as posts
    // finish.
    let mut backlog = false;
    // When the store is looked at again even if nothing said so: alarms of an instance that
    // died are found then, however busy this one is.
    let mut look_at = tokio::time::Instant::now();
    // When the store was last looked at.
    let mut claimed_at = tokio::time::Instant::now();
    loop {
        if shutdown.is_cancelled() {
            // Posts already started finish and are marked: nothing is left half-done. Alarms
            // handed over but not started go back to the store for whoever runs next.
            for (alarm_id, megazord_id) in deferred.take_all() {
                marks.spawn(&mut marking, alarm_id, megazord_id);
            }
            while let Some(joined) = in_flight.join_next().await {
                if let Ok(Ok(Posted::Sent(alarm, megazord_id))) = joined {
                    marks.spawn(&mut marking, alarm.id, megazord_id);
                }
            }
            while marking.join_next().await.is_some() {}
            give_back(&ctx, ctx.handoff().close()).await;
            return;
        }
        if tokio::time::Instant::now() >= look_at {
            idle = false;
        }
        let urgent = *closing.borrow() || !ctx.handoff().is_empty();
        let room = mark_cap.saturating_sub(marking.len());
        for (alarm_id, megazord_id) in deferred.take_due(urgent, room) {
            marks.spawn(&mut marking, alarm_id, megazord_id);
        }
        let room_to_mark = marking.len() < mark_cap;
        let free = concurrency.saturating_sub(in_flight.len());
        if free > 0 && room_to_mark && !ctx.handoff().is_empty() {
            let taken = ctx
                .handoff()
                .take(free, ctx.now(), ctx.settings().alarm_lease);
            let gave_back = !taken.stale.is_empty();
            give_back(&ctx, taken.stale).await;
            // Taking handed-over alarms is a pass as much as a claim from the store is: the
            // watchdog must not think the dispatcher stalled while it works through them.
            ctx.liveness().dispatcher_passed();
            for alarm in taken.fresh {
                let (ctx, http) = (ctx.clone(), http.clone());
                in_flight.spawn(async move { handle(&ctx, &http, alarm).await });
            }
            if gave_back {
                // Alarms given back are claimable at once.
                idle = false;
            }
        }
        // Claims go in chunks while a backlog is being worked through (one claim per finished
        // post would be a transaction per alarm).
        let chunk = (concurrency / 4).max(1);
        let free = concurrency.saturating_sub(in_flight.len());
        if !idle
            && room_to_mark
            && ctx.handoff().is_empty()
            && (free >= chunk || (in_flight.is_empty() && free > 0))
        {
            let room = u32::try_from(free).unwrap_or(u32::MAX);
            match claim(&ctx, room).await {
                Ok(alarms) => {
                    ctx.liveness().dispatcher_passed();
                    claimed_at = tokio::time::Instant::now();
                    look_at = claimed_at + MAX_SLEEP;
                    let claimed = alarms.len();
                    for alarm in alarms {
                        let (ctx, http) = (ctx.clone(), http.clone());
                        in_flight.spawn(async move { handle(&ctx, &http, alarm).await });
                    }
                    backlog = claimed == room as usize;
                    if !backlog {
                        idle = true;
                    }
                    if claimed > 0 {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming alarms failed; trying again");
                    idle = true;
                    backlog = false;
                    look_at = tokio::time::Instant::now() + RETRY_PAUSE;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            joined = in_flight.join_next(), if !in_flight.is_empty() => {
                match joined {
                    Some(Ok(Ok(Posted::Sent(alarm, megazord_id)))) => {
                        deferred.push(alarm.id, megazord_id);
                    }
                    Some(Ok(Ok(Posted::RetryAfter(wait)))) => {
                        // A little after the retry instant, which the claim compares to the
                        // service clock to the millisecond.
                        let at = tokio::time::Instant::now() + wait + Duration::from_millis(20);
                        next_retry = Some(next_retry.map_or(at, |t| t.min(at)));
                    }
                    Some(Ok(Err(e))) => {
                        tracing::warn!(error = %e, "posting an alarm failed; trying again");
                        idle = false;
                    }
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "posting an alarm panicked");
                        idle = false;
                    }
                    None => {}
                }
                if backlog || claimed_at.elapsed() >= CLAIM_BESIDE_POSTS_EVERY {
                    idle = false;
                }
            }
            marked = marking.join_next(), if !marking.is_empty() => {
                match marked {
                    Some(Ok(Err(e))) => {
                        // Megazord has the alarm; whoever claims it after the lease finds it
                        // there and marks it then.
                        tracing::warn!(error = %e, "marking a posted alarm sent failed");
                    }
                    Some(Err(e)) => tracing::error!(error = %e, "marking an alarm sent panicked"),
                    _ => {}
                }
            }
            () = sleep_until_some(ahead(look_at)), if (in_flight.is_empty() || idle)
                && ahead(look_at).is_some() => {
                idle = false;
            }
            () = sleep_until_some(next_retry), if next_retry.is_some() => {
                next_retry = None;
                idle = false;
            }
            // Without room the next finished mark wakes the loop: waiting for an oldest mark
            // that is due already would spin.
            () = deferred.oldest_due(), if !deferred.is_empty() && room_to_mark => {}
            Ok(()) = closing.changed(), if !deferred.is_empty() => {}
            () = ctx.dispatcher_woken() => idle = false,
            () = ctx.handed_over() => {}
        }
    }
}

/// Gives alarms this instance claimed but will not post back to the store, for any
/// dispatcher to claim at once (a failure only delays them until their lease ends).
pub(super) async fn give_back(ctx: &Context, alarms: Vec<OutboxAlarm>) {
    if alarms.is_empty() {
        return;
    }
    let ids: Vec<AlarmId> = alarms.iter().map(|a| a.id).collect();
    match ctx
        .store()
        .release_alarms(&ctx.settings().owner, &ids, ctx.now())
        .await
    {
        Ok(released) => {
            tracing::info!(
                alarms = ids.len(),
                released,
                "alarms handed over but not posted given back"
            );
        }
        Err(e) => {
            tracing::warn!(alarms = ids.len(), error = %e,
                "could not give back unposted alarms: they are claimed again when their lease ends");
        }
    }
}

/// `at` while it lies ahead. A look time already passed has made the loop claim, or the loop
/// cannot claim (its marks at their cap): sleeping until it would wake the loop at once, again
/// and again, until the marks are made.
fn ahead(at: tokio::time::Instant) -> Option<tokio::time::Instant> {
    (at > tokio::time::Instant::now()).then_some(at)
}

/// Sleeps until `at` (forever without one; the caller only polls this with one).
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Claims up to `limit` alarms for this instance.
async fn claim(ctx: &Context, limit: u32) -> Result<Vec<OutboxAlarm>, RuntimeError> {
    Ok(ctx
        .store()
        .claim_alarms(
            &ctx.settings().owner,
            limit,
            ctx.now(),
            ctx.settings().alarm_lease,
        )
        .await?)
}

/// Posts one claimed alarm, or marks it failed with a back-off of its own: one alarm that
/// cannot be posted holds up no other. A posted alarm is marked sent by the caller.
async fn handle(
    ctx: &Context,
    http: &reqwest::Client,
    alarm: OutboxAlarm,
) -> Result<Posted, RuntimeError> {
    match post(ctx, http, &alarm).await {
        Ok(megazord_id) => {
            let now = ctx.now();
            let late = now.duration_since(alarm.window_end);
            metrics::histogram!(names::DEADLINE_TO_ALARM).record(late.as_secs_f64());
            metrics::histogram!(names::DEADLINE_TO_ALARM_WALL)
                .record(late.as_secs_f64() / ctx.clock().speed());
            metrics::counter!(names::ALARMS, "outcome" => "sent").increment(1);
            tracing::info!(
                statusCheckId = alarm.status_check_id.get(),
                robotId = alarm.identity.robot_id.get(),
                referenceId = %alarm.reference_id,
                windowStart = %alarm.identity.window_start,
                windowEnd = %alarm.window_end,
                megazordId = megazord_id.get(),
                "alarm sent"
            );
            Ok(Posted::Sent(alarm, megazord_id))
        }
        Err(e) => {
            metrics::counter!(names::ALARMS, "outcome" => "failed").increment(1);
            tracing::warn!(referenceId = %alarm.reference_id, error = %e, "alarm not sent yet");
            let now = ctx.now();
            let wall = retry_wait(&e, alarm.attempts);
            let service = SignedDuration::from_secs_f64(wall.as_secs_f64() * ctx.clock().speed());
            let retry_at = now.checked_add(service).unwrap_or(now);
            ctx.store()
                .mark_alarm_failed_until(
                    &ctx.settings().owner,
                    alarm.id,
                    &e.to_string(),
                    retry_at,
                    now,
                )
                .await?;
            Ok(Posted::RetryAfter(wall))
        }
    }
}

/// Posts one alarm and returns the id it has at Megazord (or the outbox id when there is no
/// Megazord).
async fn post(
    ctx: &Context,
    http: &reqwest::Client,
    alarm: &OutboxAlarm,
) -> Result<MegazordEventId, RuntimeError> {
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
                .map_err(|e| RuntimeError::Webhook {
                    url: crate::redact::redact_url(url),
                    source: e.without_url(),
                })?;
        }
        tracing::warn!(
            robotId = robot_id.get(),
            referenceId = %alarm.reference_id,
            windowStart = %alarm.identity.window_start,
            windowEnd = %alarm.window_end,
            "NO_TOILET_ACTIVITY_ALARM (no Megazord configured: recorded here only)"
        );
        // No Megazord numbers the alarm: its outbox row's id stands in for one.
        return Ok(MegazordEventId::new(alarm.id.get()));
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
            .await?;
        if let Some(found) = history
            .iter()
            .find(|e| e.reference_id.as_deref() == Some(alarm.reference_id.as_str()))
        {
            tracing::info!(referenceId = %alarm.reference_id, megazordId = found.id.get(),
                "alarm was already posted: not posting again");
            return Ok(found.id);
        }
    }
    let poster = ctx.alarm_poster().unwrap_or(megazord);
    let event = poster
        .post_event(robot_id, &alarm.alarm_event, &alarm.reference_id, &call_ref)
        .await?;
    ctx.liveness().megazord_answered(ctx.now());
    Ok(event.id)
}

/// How long (wall-clock time) an alarm whose post failed with `error` for the `attempts`-th
/// time waits before it is claimed again: its back-off ([`retry_delay`]), and after a post that
/// timed out at least twice the request timeout. Such a post may still reach Megazord's database
/// after the client gave up; the next attempt looks the alarm up before posting, and a lookup made
/// before that late post landed would miss it and post the alarm a second time.
fn retry_wait(error: &RuntimeError, attempts: u32) -> Duration {
    let backoff = retry_delay(attempts);
    match error {
        RuntimeError::Megazord(MegazordError::Timeout { timeout_ms, .. }) => {
            backoff.max(Duration::from_millis(timeout_ms.saturating_mul(2)))
        }
        _ => backoff,
    }
}

/// How long (wall-clock time) an alarm whose post failed for the `attempts`-th time waits
/// before it is claimed again: exponential from 1 s to 5 minutes, plus up to as much again of
/// jitter, so a post Megazord keeps refusing neither hammers it nor holds up later alarms.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RobotId;
    use crate::megazord::Route;

    #[tokio::test(start_paused = true)]
    async fn a_look_time_already_passed_is_not_slept_until() {
        let now = tokio::time::Instant::now();
        assert_eq!(ahead(now), None);
        assert_eq!(ahead(now - Duration::from_secs(1)), None);
        let later = now + Duration::from_secs(30);
        assert_eq!(ahead(later), Some(later));
    }

    #[tokio::test(start_paused = true)]
    async fn marks_wait_while_windows_close_but_no_longer_than_their_longest() {
        let mut deferred = Deferred::waiting_at_most(Duration::from_secs(10));
        deferred.push(AlarmId::new(1), MegazordEventId::new(11));
        tokio::time::advance(Duration::from_secs(4)).await;
        deferred.push(AlarmId::new(2), MegazordEventId::new(12));
        // Windows are being closed: nothing is marked yet.
        assert!(deferred.take_due(true, usize::MAX).is_empty());
        // The first has waited its longest: marked although windows are still being closed.
        deferred.oldest_due().await;
        assert_eq!(
            deferred.take_due(true, usize::MAX),
            vec![(AlarmId::new(1), MegazordEventId::new(11))]
        );
        // No window left to close: every mark is made at once.
        assert_eq!(
            deferred.take_due(false, usize::MAX),
            vec![(AlarmId::new(2), MegazordEventId::new(12))]
        );
        assert!(deferred.is_empty());
    }

    #[test]
    fn marks_are_made_no_faster_than_there_is_room_for_them() {
        let mut deferred = Deferred::waiting_at_most(Duration::from_secs(10));
        for id in 1..=3 {
            deferred.push(AlarmId::new(id), MegazordEventId::new(id));
        }
        assert_eq!(deferred.take_due(false, 2).len(), 2);
        assert_eq!(
            deferred.take_due(false, 2),
            vec![(AlarmId::new(3), MegazordEventId::new(3))]
        );
    }

    #[test]
    fn no_more_marks_wait_than_the_cap_while_windows_close() {
        let mut deferred = Deferred::waiting_at_most(Duration::from_secs(3600));
        for id in 0..=MAX_DEFERRED_MARKS {
            let id = u64::try_from(id).unwrap();
            deferred.push(AlarmId::new(id), MegazordEventId::new(id));
        }
        assert_eq!(
            deferred.take_due(true, usize::MAX),
            vec![(AlarmId::new(0), MegazordEventId::new(0))]
        );
    }

    #[test]
    fn a_timed_out_post_is_looked_up_no_sooner_than_twice_the_request_timeout() {
        let timeout = RuntimeError::Megazord(MegazordError::Timeout {
            route: Route::PostIncoming,
            robot_id: RobotId::new(7),
            timeout_ms: 10_000,
            attempts: 1,
        });
        for attempts in 1..=3 {
            assert!(retry_wait(&timeout, attempts) >= Duration::from_secs(20));
        }
        let refused = RuntimeError::Megazord(MegazordError::Rejected {
            route: Route::PostIncoming,
            robot_id: RobotId::new(7),
            status: 400,
            body: String::new(),
        });
        // Any other failure keeps its back-off: from 1 s, doubling, with up to as much jitter.
        let first = retry_wait(&refused, 1);
        assert!(
            first >= Duration::from_secs(1) && first <= Duration::from_secs(2),
            "{first:?}"
        );
    }
}
