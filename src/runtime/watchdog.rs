//! The watchdog for the watchdog: tells when the service has gone quiet. Every few seconds it
//! asks the store how many windows are past their deadline plus the grace and still open, and
//! how old the oldest unsent alarm is; it also knows when the closer and the dispatcher last
//! finished a pass. `/ready`, `/health` and `/metrics` report what it found.
//!
//! When the store cannot answer, the backlog it last reported is carried forward with the
//! clock: a window that was about to come due is counted overdue once it has, since nothing
//! can close it without the store.

use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::setup_check;
use crate::numeric::count_f64;
use crate::store::Backlog;
use crate::telemetry::names;

/// How often the watchdog looks (wall clock).
const EVERY: Duration = Duration::from_secs(1);
/// How long one look may wait for the store before the store counts as unable to transact:
/// with [`EVERY`], a store gone quiet shows within 4 s.
const LOOK_TIMEOUT: Duration = Duration::from_secs(3);
/// The most windows and alarms a look counts: it asks every second, and 100,000 windows ending
/// together made its two counts read 4.7 million rows while those windows were being closed
/// (performance.md, 2026-12-03 evening). Up to this many a count is exact; at it, it means at
/// least this many.
pub const COUNT_CAP: u64 = 10_000;
/// How long `/ready` and the start-up checks wait for the store.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the runtime's tasks report about themselves, and what the watchdog last found.
#[derive(Debug, Default)]
pub struct Liveness {
    closer_pass: Mutex<Option<Instant>>,
    dispatcher_pass: Mutex<Option<Instant>>,
    last: Mutex<Option<Seen>>,
    facts: Mutex<Option<WatchFacts>>,
    megazord_answered: Mutex<Option<Timestamp>>,
    setup_problem: Mutex<Option<String>>,
}

/// The backlog as the store last reported it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    backlog: Backlog,
}

/// What `/ready`, `/health` and `/metrics` say about going quiet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchFacts {
    /// Service time of the look.
    pub at: Timestamp,
    /// Whether the store ran the look's transaction.
    pub store_ok: bool,
    /// The kind of store failure, when it did not (`timeout` when it did not answer in time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<&'static str>,
    /// Running windows past their deadline plus the grace and not yet closed.
    pub overdue_windows: u64,
    /// Service seconds the oldest of them is past its deadline plus the grace.
    pub oldest_overdue_window_seconds: f64,
    /// Alarms not yet posted.
    pub unsent_alarms: u64,
    /// Service seconds since the window end of the oldest unsent alarm.
    pub oldest_unsent_alarm_seconds: f64,
    /// Wall-clock seconds since the closer last finished a pass (none yet: null).
    pub closer_last_pass_age_seconds: Option<f64>,
    /// Wall-clock seconds since the dispatcher last finished a pass (none yet: null).
    pub dispatcher_last_pass_age_seconds: Option<f64>,
}

impl Liveness {
    /// The closer finished a pass.
    pub fn closer_passed(&self) {
        *lock(&self.closer_pass) = Some(Instant::now());
    }

    /// The dispatcher finished a pass.
    pub fn dispatcher_passed(&self) {
        *lock(&self.dispatcher_pass) = Some(Instant::now());
    }

    /// Megazord answered a call or delivered a status message at service time `at`.
    pub fn megazord_answered(&self, at: Timestamp) {
        let mut last = lock(&self.megazord_answered);
        *last = Some(last.map_or(at, |t| t.max(at)));
    }

    /// The service time Megazord last answered a call or delivered a status message.
    pub fn megazord_answered_at(&self) -> Option<Timestamp> {
        *lock(&self.megazord_answered)
    }

    /// What the last start-up check found missing (see [`super::setup_check`]).
    pub fn setup_problem(&self) -> Option<String> {
        lock(&self.setup_problem).clone()
    }

    /// Records what a start-up check found.
    pub fn set_setup_problem(&self, problem: Option<String>) {
        *lock(&self.setup_problem) = problem;
    }

    /// What the watchdog found last, if it has looked yet.
    pub fn facts(&self) -> Option<WatchFacts> {
        lock(&self.facts).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    // The first catalogue check ran at start (see `startup`), before anything was served;
    // the zones are first checked now that the service runs.
    let mut next_setup_check = Instant::now() + setup_check::EVERY;
    run_zone_check(&ctx).await;
    loop {
        if Instant::now() >= next_setup_check {
            run_setup_check(&ctx).await;
            run_zone_check(&ctx).await;
            next_setup_check = Instant::now() + setup_check::EVERY;
        }
        look(&ctx).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Runs the start-up checks and keeps what they found; a check the store could not answer
/// keeps the last finding.
pub async fn run_setup_check(ctx: &Context) -> Option<String> {
    match tokio::time::timeout(STORE_TIMEOUT, setup_check::check(ctx)).await {
        Ok(Ok(problem)) => {
            ctx.liveness().set_setup_problem(problem.clone());
            problem
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, kind = e.kind(), "start-up checks could not run; trying again later");
            ctx.liveness().setup_problem()
        }
        Err(_) => ctx.liveness().setup_problem(),
    }
}

/// Logs the rules whose zone differs from their robot's; a check the store could not answer
/// is tried again at the next hour.
async fn run_zone_check(ctx: &Context) {
    match tokio::time::timeout(STORE_TIMEOUT, setup_check::check_zones(ctx)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, kind = e.kind(), "the time-zone check could not run; trying again later");
        }
        Err(_) => {
            tracing::warn!("the time-zone check did not finish in time; trying again later");
        }
    }
}

/// One look: asks the store (or carries its last answer forward), publishes the facts.
pub async fn look(ctx: &Context) -> WatchFacts {
    let liveness = ctx.liveness();
    let now = ctx.now();
    let cutoff = now.checked_sub(ctx.settings().grace).unwrap_or(now);
    let asked = tokio::time::timeout(LOOK_TIMEOUT, ctx.store().backlog(cutoff, COUNT_CAP)).await;
    let (backlog, store_error) = match asked {
        Ok(Ok(backlog)) => {
            *lock(&liveness.last) = Some(Seen { backlog });
            (backlog, None)
        }
        Ok(Err(e)) => (carried_forward(liveness, cutoff), Some(e.kind())),
        Err(_) => (carried_forward(liveness, cutoff), Some("timeout")),
    };
    let seconds_since = |t: Option<Timestamp>, to: Timestamp| {
        t.map_or(0.0, |t| to.duration_since(t).as_secs_f64().max(0.0))
    };
    let age = |m: &Mutex<Option<Instant>>| lock(m).map(|t| t.elapsed().as_secs_f64());
    let facts = WatchFacts {
        at: now,
        store_ok: store_error.is_none(),
        store_error,
        overdue_windows: backlog.overdue_windows,
        oldest_overdue_window_seconds: seconds_since(backlog.oldest_overdue_deadline, cutoff),
        unsent_alarms: backlog.unsent_alarms,
        oldest_unsent_alarm_seconds: seconds_since(backlog.oldest_unsent_alarm, now),
        closer_last_pass_age_seconds: age(&liveness.closer_pass),
        dispatcher_last_pass_age_seconds: age(&liveness.dispatcher_pass),
    };
    metrics::gauge!(names::STORE_UP).set(if facts.store_ok { 1.0 } else { 0.0 });
    metrics::gauge!(names::OVERDUE_WINDOWS).set(count_f64(facts.overdue_windows));
    metrics::gauge!(names::OLDEST_OVERDUE_WINDOW).set(facts.oldest_overdue_window_seconds);
    metrics::gauge!(names::UNSENT_ALARMS).set(count_f64(facts.unsent_alarms));
    metrics::gauge!(names::OLDEST_UNSENT_ALARM).set(facts.oldest_unsent_alarm_seconds);
    if let Some(age) = facts.closer_last_pass_age_seconds {
        metrics::gauge!(names::CLOSER_PASS_AGE).set(age);
    }
    if let Some(age) = facts.dispatcher_last_pass_age_seconds {
        metrics::gauge!(names::DISPATCHER_PASS_AGE).set(age);
    }
    *lock(&liveness.facts) = Some(facts.clone());
    facts
}

/// The last backlog the store reported, with the next deadline counted overdue once it is at
/// or before `cutoff` (nothing can close a window while the store cannot transact).
fn carried_forward(liveness: &Liveness, cutoff: Timestamp) -> Backlog {
    let Some(Seen { mut backlog }) = *lock(&liveness.last) else {
        return Backlog::default();
    };
    if let Some(next) = backlog.next_deadline
        && next <= cutoff
    {
        backlog.overdue_windows = backlog.overdue_windows.max(1);
        backlog.oldest_overdue_deadline = Some(
            backlog
                .oldest_overdue_deadline
                .map_or(next, |oldest| oldest.min(next)),
        );
    }
    backlog
}

/// Why the service is not ready, judged on `facts`: the store cannot transact, or a window is
/// overdue by more than `bound` of wall-clock time (at the clock's `speed`).
pub fn not_ready_reason(facts: &WatchFacts, bound: Duration, speed: f64) -> Option<String> {
    if let Some(kind) = facts.store_error {
        return Some(format!("store: cannot run a transaction ({kind})"));
    }
    let overdue_wall = facts.oldest_overdue_window_seconds / speed.max(f64::MIN_POSITIVE);
    if facts.overdue_windows > 0 && overdue_wall > bound.as_secs_f64() {
        return Some(format!(
            "windows: {} overdue, the oldest by {:.0} s (bound {} s)",
            facts.overdue_windows,
            facts.oldest_overdue_window_seconds,
            bound.as_secs()
        ));
    }
    None
}
