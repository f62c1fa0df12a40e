//! Closing windows on time: sleep until the earliest deadline plus the grace, read Megazord's
//! history for the window (so that a delayed queue message never causes a false alarm), then
//! close it in one transaction that writes the alarm into the outbox (semantics §4, §6).
//!
//! Windows that are due together are closed together, up to `close_concurrency` at once, each
//! on a task of its own. A window that cannot be closed (Megazord refuses its robot, its history
//! read times out, its transaction fails) puts its session on a back-off of its own
//! ([`SessionRetries`]) and every other window goes on being closed on time. A session that
//! keeps failing for `failing_session_limit` is ended as `FAILED` with the reason (semantics §8)
//! once the failure is clearly its own: Megazord refused it for good, or other windows were
//! closed meanwhile. While Megazord fails for everyone, windows wait for it instead, and the
//! watchdog reports them overdue.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::error::RuntimeError;
use super::retries::SessionRetries;
use super::scheduler::replay_history;
use super::together::Together;
use crate::domain::RobotId;
use crate::megazord::CallRef;
use crate::store::{CloseOutcome, Dialect, DueWindow, EndOutcome, StoreError, StoredRule};
use crate::telemetry::names;

/// How many due windows are fetched at once (besides those waiting out a back-off).
const BATCH: u32 = 100;
/// The longest the closer sleeps without looking (in case a wake-up was missed).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// The pause after a pass the store failed (the database unreachable).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The most windows committed in one transaction.
const MAX_CLOSE_BATCH: usize = 64;

/// Where a window's close transaction runs. On SQLite, one writer runs one transaction at a
/// time and every commit is an fsync: closes whose history reads finished meanwhile are
/// committed together by one task ([`Together`]), each session's close still all or
/// nothing. On MySQL each close runs in its own transaction, concurrently on the pool.
#[derive(Clone, Debug, Default)]
struct Closes {
    together: Option<Together<(u64, Timestamp), Result<CloseOutcome, StoreError>>>,
}

impl Closes {
    /// Starts the committing task where the store gains from it; it ends with the last
    /// clone of the returned value.
    fn start(ctx: &Context) -> Closes {
        if ctx.store().dialect() != Dialect::Sqlite {
            return Closes::default();
        }
        let ctx = ctx.clone();
        let together = Together::start(MAX_CLOSE_BATCH, move |windows: Vec<(u64, Timestamp)>| {
            let ctx = ctx.clone();
            async move { ctx.store().close_windows(&windows, ctx.now()).await }
        });
        Closes {
            together: Some(together),
        }
    }

    /// Closes the session's window if its deadline is still `deadline`.
    async fn close(
        &self,
        ctx: &Context,
        status_check_id: u64,
        deadline: Timestamp,
    ) -> Result<CloseOutcome, RuntimeError> {
        let Some(together) = &self.together else {
            return Ok(ctx
                .store()
                .close_window(status_check_id, deadline, ctx.now())
                .await?);
        };
        Ok(together
            .ask((status_check_id, deadline))
            .await
            .ok_or(RuntimeError::Panicked("committing closes has stopped"))??)
    }
}

/// What the closer remembers between passes.
#[derive(Debug, Default)]
struct Closer {
    /// Sessions whose last close failed, each waiting out its own back-off.
    retries: SessionRetries,
    /// Service time of the last window closed without error.
    last_closed: Option<Timestamp>,
    /// Where close transactions run.
    closes: Closes,
}

/// When to look again: the next deadline not waiting out a back-off, and the earliest retry.
#[derive(Debug, Default, Clone, Copy)]
struct Wake {
    deadline: Option<Timestamp>,
    retry: Option<Instant>,
}

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let mut closer = Closer {
        closes: Closes::start(&ctx),
        ..Closer::default()
    };
    loop {
        let wait = match closer.pass(&ctx, &shutdown).await {
            Ok(wake) => {
                ctx.liveness().closer_passed();
                let until_deadline = wake.deadline.map(|deadline| {
                    let close_at = deadline
                        .checked_add(ctx.settings().grace)
                        .unwrap_or(deadline);
                    ctx.clock().wait_until(close_at)
                });
                let until_retry = wake
                    .retry
                    .map(|at| at.saturating_duration_since(Instant::now()));
                [until_deadline, until_retry]
                    .into_iter()
                    .flatten()
                    .fold(MAX_SLEEP, Duration::min)
            }
            Err(e) => {
                tracing::warn!(error = %e, kind = e.kind(), "closing windows failed; trying again");
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

impl Closer {
    /// Closes every window whose deadline plus grace has passed, except those waiting out a
    /// back-off; says when to look again.
    async fn pass(
        &mut self,
        ctx: &Context,
        shutdown: &CancellationToken,
    ) -> Result<Wake, RuntimeError> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(Wake::default());
            }
            let now = ctx.now();
            let cutoff = now.checked_sub(ctx.settings().grace).unwrap_or(now);
            let waiting = u32::try_from(self.retries.len()).unwrap_or(u32::MAX);
            let limit = BATCH.saturating_add(waiting);
            let due = ctx.store().due_windows(cutoff, limit).await?;
            self.expedite(ctx);
            let at = Instant::now();
            let ready: Vec<DueWindow> = due
                .iter()
                .filter(|w| !self.retries.waiting(w.status_check_id, at))
                .copied()
                .collect();
            if ready.is_empty() {
                if due.len() < limit as usize {
                    // Every due window was seen: a session that is no longer among them was
                    // closed elsewhere, moved on by an event, or ended.
                    self.retries
                        .retain(|id, _| due.iter().any(|w| w.status_check_id == id));
                }
                metrics::gauge!(names::RETRYING_SESSIONS).set(self.retries.len() as f64);
                let upcoming = ctx
                    .store()
                    .due_windows(Timestamp::MAX, waiting.saturating_add(1))
                    .await?;
                let deadline = upcoming
                    .iter()
                    .find(|w| !self.retries.waiting(w.status_check_id, at))
                    .map(|w| w.deadline);
                return Ok(Wake {
                    deadline,
                    retry: self.retries.next_retry(),
                });
            }
            // Every window's rule (its watched event) in one read, not one read each.
            let rules = if ctx.megazord().is_some() {
                let robots: Vec<_> = ready.iter().map(|w| w.robot_id).collect();
                ctx.store().rules_of(&robots).await?
            } else {
                HashMap::new()
            };
            self.close_all(ctx, ready, &rules).await;
        }
    }

    /// Closes `windows`, up to `close_concurrency` at once; a failure stays with its session.
    async fn close_all(
        &mut self,
        ctx: &Context,
        windows: Vec<DueWindow>,
        rules: &HashMap<RobotId, StoredRule>,
    ) {
        let concurrency = ctx.settings().close_concurrency.max(1);
        let mut running = JoinSet::new();
        let mut by_task = HashMap::new();
        let mut waiting = windows.into_iter();
        loop {
            while running.len() < concurrency {
                let Some(window) = waiting.next() else { break };
                let (task_ctx, closes) = (ctx.clone(), self.closes.clone());
                let rule = rules.get(&window.robot_id).cloned();
                let handle =
                    running.spawn(async move { close(&task_ctx, &closes, window, rule).await });
                by_task.insert(handle.id(), window);
            }
            let Some(joined) = running.join_next_with_id().await else {
                return;
            };
            let (id, result) = match joined {
                Ok((id, result)) => (id, result),
                Err(e) => {
                    let id = e.id();
                    let reason = if e.is_panic() {
                        "panicked"
                    } else {
                        "was cancelled"
                    };
                    tracing::error!(task = %id, "closing a window {reason}");
                    (id, Err(RuntimeError::Panicked(reason)))
                }
            };
            let Some(window) = by_task.remove(&id) else {
                continue;
            };
            match result {
                Ok(()) => {
                    self.last_closed = Some(ctx.now());
                    if let Some(failing) = self.retries.forget(window.status_check_id) {
                        tracing::info!(
                            statusCheckId = window.status_check_id,
                            robotId = window.robot_id,
                            attempts = failing.attempts,
                            "window closed after failing before"
                        );
                    }
                }
                Err(e) => self.failed(ctx, window, e).await,
            }
        }
    }

    /// Whether the service did its work for others after `since`: a window was closed, or
    /// Megazord answered a call or delivered a status message.
    fn others_served_since(&self, ctx: &Context, since: Timestamp) -> bool {
        self.last_closed.is_some_and(|t| t > since)
            || ctx
                .liveness()
                .megazord_answered_at()
                .is_some_and(|t| t > since)
    }

    /// Sessions past their limit whose failure has since been shown to be their own are tried
    /// once more now, and ended as `FAILED` if that fails too.
    fn expedite(&mut self, ctx: &Context) {
        let now = ctx.now();
        let limit = ctx.settings().failing_session_limit;
        let due: Vec<u64> = self
            .retries
            .iter()
            .filter(|(_, f)| f.failing_for(now) >= limit && self.others_served_since(ctx, f.since))
            .map(|(id, _)| id)
            .collect();
        let at = Instant::now();
        for id in due {
            self.retries.retry_no_later_than(id, at);
        }
    }

    /// Puts the session of `window` on its back-off, or ends it as `FAILED` once it has failed
    /// for longer than the limit and the failure is clearly its own.
    async fn failed(&mut self, ctx: &Context, window: DueWindow, error: RuntimeError) {
        let now = ctx.now();
        let limit = ctx.settings().failing_session_limit;
        let failing = self
            .retries
            .failed(window.status_check_id, window.robot_id, &error, now)
            .clone();
        // However long the back-off has grown, the session is looked at again when its limit
        // is reached (a simulated clock runs the limit faster than the wall-clock back-off).
        let left = limit - failing.failing_for(now);
        if left.is_positive() {
            let wall = left.as_secs_f64() / ctx.clock().speed().max(f64::MIN_POSITIVE);
            let wall = Duration::try_from_secs_f64(wall).unwrap_or(Duration::MAX);
            if let Some(at) = Instant::now().checked_add(wall) {
                self.retries.retry_no_later_than(window.status_check_id, at);
            }
        }
        metrics::gauge!(names::RETRYING_SESSIONS).set(self.retries.len() as f64);
        let own_failure = failing.definite || self.others_served_since(ctx, failing.since);
        if failing.failing_for(now) < limit || !own_failure {
            tracing::warn!(
                statusCheckId = window.status_check_id,
                robotId = window.robot_id,
                windowEnd = %window.deadline,
                attempts = failing.attempts,
                error = %error,
                kind = error.kind(),
                "could not close the window; retrying this session on its own"
            );
            return;
        }
        let reason = format!(
            "windows could not be closed for {:#}: {}",
            jiff::SignedDuration::from_secs(failing.failing_for(now).as_secs()),
            failing.last_error
        );
        match ctx
            .store()
            .fail_session(window.status_check_id, &reason, now)
            .await
        {
            Ok(outcome) => {
                self.retries.forget(window.status_check_id);
                if outcome == EndOutcome::Ended {
                    metrics::counter!(names::SESSIONS_FAILED).increment(1);
                    tracing::error!(
                        statusCheckId = window.status_check_id,
                        robotId = window.robot_id,
                        reason = %reason,
                        "session ended as FAILED: this resident is not monitored until the next session"
                    );
                    ctx.wake_janitor();
                }
            }
            Err(e) => {
                tracing::error!(statusCheckId = window.status_check_id,
                    robotId = window.robot_id, error = %e, kind = e.kind(),
                    "could not end the session as FAILED; trying again");
            }
        }
    }
}

/// Reads the window's history, then closes it if no event has moved it meanwhile.
async fn close(
    ctx: &Context,
    closes: &Closes,
    due: DueWindow,
    rule: Option<StoredRule>,
) -> Result<(), RuntimeError> {
    if ctx.megazord().is_some() {
        let stored = rule.ok_or(RuntimeError::NoRule(due.robot_id))?;
        let call_ref = CallRef::new();
        replay_history(ctx, &stored, due.window_start, &call_ref).await?;
    }
    match closes.close(ctx, due.status_check_id, due.deadline).await? {
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
                ctx.wake_janitor();
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
