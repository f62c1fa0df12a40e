//! Closing windows on time: read Megazord's history for each window whose end `u` has passed
//! (so that a delayed queue message never causes a false alarm), then close it no earlier than
//! `u + grace` in one transaction that writes the alarm into the outbox (semantics §4, §6).
//!
//! # When a window's history is read
//!
//! The rule (semantics §4) allows the read as soon as `u` has passed, and asks for the close no
//! earlier than `u + grace`. The read is made as late as it can be while the reads of everything
//! due finish by `u + grace`: the later the read, the more of the window's late-recorded events
//! it sees.
//!
//! - While no more windows are waiting than `close_concurrency` reads at once can take in one
//!   go, each is read at `u + grace` and closed right after, as a single window always was.
//! - When more are waiting (thousands of sessions whose windows end in the same second), the
//!   reads would take longer than the grace: the first window's read starts early enough that
//!   the rounds of `close_concurrency` reads ahead of the last round end by `u + grace`,
//!   estimated from how long reads have been taking (with a margin), and never before `u`.
//!   When more windows are due than one look at the store fetches, reads start at once.
//! - The windows that end within a second are looked for and claimed a second before they do
//!   ([`LOOK_AHEAD`]), so that a burst's first reads start at `u`, not after a look that
//!   starts there; a window's read never starts before its `u`.
//! - A window read early waits for `u + grace` and is closed then, never before. An event that
//!   reaches the session between its read and its close (from the queue or the ingest API)
//!   moves the window as always: the close finds the deadline changed and does nothing
//!   ([`CloseOutcome::Stale`]).
//!
//! Reads run up to `close_concurrency` at once, each on a task of its own; a window that has
//! been read no longer holds a slot while it waits for its close. Up to as many tasks again
//! wait for a slot ([`WAITING_PER_SLOT`]), so that a read that ends hands its slot straight
//! to the next window's task rather than through the closer's loop. On SQLite (one writer, an
//! fsync per commit) the closes that are ready together are committed together by one task;
//! on MySQL by a few such tasks side by side on the pool ([`Closes`]), each session's close
//! still all or nothing.
//!
//! A window that cannot be closed (Megazord refuses its robot, its history read times out,
//! its transaction fails) puts its session on a back-off of its own ([`SessionRetries`]) and
//! every other window goes on being closed on time. A session that keeps failing for
//! `failing_session_limit` is ended as `FAILED` with the reason (semantics §8) once the failure is
//! clearly its own: Megazord refused it for good, or other windows were closed meanwhile.
//! While Megazord fails for everyone, windows wait for it instead, and the watchdog reports
//! them overdue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::context::Context;
use super::dispatcher::give_back;
use super::error::RuntimeError;
use super::retries::SessionRetries;
use super::scheduler::replay_history;
use super::together::Pool;
use crate::domain::{RobotId, Session};
use crate::megazord::CallRef;
use crate::numeric::count_f64;
use crate::store::{
    CloseOutcome, Dialect, DueWindow, EndOutcome, StatusCheckId, StoreError, StoredRule,
};
use crate::telemetry::names;

/// How many due windows one look at the store fetches, besides those already being closed
/// and those waiting out a back-off.
const FETCH: u32 = 2000;
/// While more windows are due than one look fetches, the next look starts when this few are
/// left queued, so that the reads never wait for a look (on SQLite a look waits for the single
/// writer, which the closes keep busy).
const REFILL_AT: usize = FETCH as usize / 2;
/// The longest the closer sleeps without looking, in wall-clock time: a session another
/// instance started after this closer's last look, with a deadline before the one this closer
/// waits for, is closed by that instance, unless it stops; then this closer finds it within
/// this much.
const MAX_SLEEP: Duration = Duration::from_secs(10);
/// The same bound in service time, for a simulated clock that runs faster than the wall clock.
const MAX_SLEEP_SERVICE: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
/// The pause after a look the store failed (the database unreachable).
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long before a deadline the closer looks for the windows that end then, in wall-clock
/// time: a look of 2,000 windows takes about a tenth of a second under load, and while it
/// ran at the deadline, the reads of 10,000 windows ending together started a tenth of a
/// second late (performance.md, 2026-12-05 evening).
const LOOK_AHEAD: Duration = Duration::from_secs(1);
/// The same bound in service time, for a simulated clock that runs faster than the wall clock:
/// windows are not claimed long before they end.
const LOOK_AHEAD_SERVICE: SignedDuration = SignedDuration::from_secs(15);

/// The most windows committed in one transaction on SQLite. 256, not 64: with 10,000 windows
/// ending together, batches of 64 committed some 2,500 closes/s while the reads brought
/// 3,900/s, and the closes fell a second behind the reads; with 256 they keep pace
/// (performance.md, 2026-12-03 afternoon).
const SQLITE_MAX_CLOSE_BATCH: usize = 256;
/// The same on MySQL, where two committers share the closes and each batch's writes are
/// grouped (design 2.18). 256 made no difference there: 100,000 windows took 1.99× the bare
/// reads with 256 and 1.93× with 64 on the same machine (performance.md, 2026-12-03 afternoon).
const MYSQL_MAX_CLOSE_BATCH: usize = 64;
/// How many tasks commit closes side by side on MySQL. Two, not four: with 10,000 windows
/// ending together, four committers made batches so small that MariaDB's cost per statement
/// slowed the history reads beside them to 1.5 times the bare reads; with two, closing keeps
/// pace with the reads (performance.md, 2026-12-02, late).
const MYSQL_COMMITTERS: usize = 2;

/// How many windows' tasks may wait for a read slot, per slot, besides those reading: a slot
/// freed goes straight to a waiting task (the semaphore wakes it), where it went through the
/// closer's loop, which then started the next task: two hand-overs between tasks per read,
/// each a wait for a busy core while thousands of windows close.
const WAITING_PER_SLOT: usize = 1;

/// How many windows may be reading or waiting to read at once, for `concurrency` reads.
fn admissions(concurrency: usize) -> usize {
    concurrency.saturating_mul(1 + WAITING_PER_SLOT)
}

/// The wall-clock time a history read is assumed to take before one has been timed: generous,
/// so that a burst's first reads start early rather than late.
const FIRST_READ_ESTIMATE: Duration = Duration::from_millis(100);
/// How much longer than the estimate the reads of a burst are given to finish by `u + grace`.
const READ_MARGIN: f64 = 1.5;

/// What a window's task gave, or why it did not finish.
type Joined =
    Result<(tokio::task::Id, Result<Option<Timestamp>, RuntimeError>), tokio::task::JoinError>;

/// Where closes are committed: by tasks that each take whatever closes have queued up
/// meanwhile and commit them in one transaction ([`Pool`]), each session's close still all
/// or nothing ([`crate::store::Store::close_windows`]). One task on SQLite, whose single
/// writer runs one transaction at a time with an fsync per commit; several on MySQL, side by
/// side on the pool. A lone close is committed by itself, as before.
#[derive(Clone, Debug)]
struct Closes {
    /// Each request is a session and the deadline it expects.
    committers: Pool<(StatusCheckId, Timestamp), Result<CloseOutcome, StoreError>>,
}

impl Closes {
    /// Starts the committing tasks; they end with the last clone of the returned value.
    fn start(ctx: &Context) -> Closes {
        let (count, batch) = match ctx.store().dialect() {
            Dialect::Sqlite => (1, SQLITE_MAX_CLOSE_BATCH),
            Dialect::Mysql => (MYSQL_COMMITTERS, MYSQL_MAX_CLOSE_BATCH),
        };
        let committers = Pool::start(count, batch, || {
            let ctx = ctx.clone();
            move |windows: Vec<(StatusCheckId, Timestamp)>| {
                let ctx = ctx.clone();
                async move { commit_closes(&ctx, &windows).await }
            }
        });
        Closes { committers }
    }

    /// Closes the session's window if its deadline is still `deadline`.
    async fn close(
        &self,
        status_check_id: StatusCheckId,
        deadline: Timestamp,
    ) -> Result<CloseOutcome, RuntimeError> {
        Ok(self
            .committers
            .ask((status_check_id, deadline))
            .await
            .ok_or(RuntimeError::Panicked("committing closes has stopped"))??)
    }
}

/// Commits a batch of closes. While the dispatcher's hand-off queue has room, the alarms the
/// closes make due are claimed for this instance in the same transaction and handed over as
/// soon as it commits: their posts start without a claim transaction each (design §2.15).
async fn commit_closes(
    ctx: &Context,
    windows: &[(StatusCheckId, Timestamp)],
) -> Vec<Result<CloseOutcome, StoreError>> {
    let now = ctx.now();
    let (outcomes, claimed) = if ctx.handoff().has_room() {
        ctx.store()
            .close_windows_claiming(windows, now, &ctx.settings().owner)
            .await
    } else {
        (ctx.store().close_windows(windows, now).await, Vec::new())
    };
    let alarms = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(CloseOutcome::Closed { alarm: Some(_), .. })))
        .count();
    let handed = claimed.len();
    if handed > 0 {
        match ctx.handoff().push(claimed, now) {
            Ok(()) => ctx.hand_over(),
            // The dispatcher stopped while these closes committed.
            Err(unposted) => give_back(ctx, unposted).await,
        }
    }
    if alarms > handed {
        // Written unclaimed (the hand-off queue was full, or the batch was closed window by
        // window): for the dispatcher to claim from the store.
        ctx.wake_dispatcher();
    }
    outcomes
}

/// How long a history read takes (wall clock), as an exponentially weighted mean of the reads
/// timed so far: what the closer plans a burst's reads with.
#[derive(Debug)]
struct ReadPace {
    seconds: Mutex<f64>,
}

impl Default for ReadPace {
    fn default() -> Self {
        ReadPace {
            seconds: Mutex::new(FIRST_READ_ESTIMATE.as_secs_f64()),
        }
    }
}

impl ReadPace {
    fn timed(&self, took: Duration) {
        let mut mean = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        *mean = 0.9 * *mean + 0.1 * took.as_secs_f64();
    }

    fn seconds(&self) -> f64 {
        *self.seconds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one look at the store found.
#[derive(Debug)]
struct Found {
    /// Whether the look saw as many windows as it asked for: more may be due.
    more_due: bool,
    /// The due windows this instance holds, earliest deadline first.
    due: Vec<DueWindow>,
    /// The rules of the due windows' robots that were not known when the look began.
    rules: HashMap<RobotId, StoredRule>,
    /// The earliest deadline after the look's instant.
    next_deadline: Option<Timestamp>,
}

/// Looks at the store: the due windows that no other instance has claimed (at most `limit`,
/// claimed for this one), the rules of their robots unless `known`, and the next deadline.
async fn fetch(ctx: Context, limit: u32, known: HashSet<RobotId>) -> Result<Found, RuntimeError> {
    let now = ctx.now();
    let settings = ctx.settings();
    // The windows that end within the look-ahead are claimed with those due: their reads
    // start at their deadlines, not after a look that starts there.
    let due_by = now.checked_add(look_ahead(&ctx)).unwrap_or(now);
    // Every window fetched is due by `due_by`, so closed by `due_by + grace` unless its reads
    // fail; the claim lasts as long again as an alarm's, which covers the longest a read can
    // take with its retries. A window still queued when it ends stays this instance's unless
    // another instance, less busy, takes it.
    let until = due_by
        .checked_add(settings.grace)
        .and_then(|t| t.checked_add(settings.alarm_lease))
        .unwrap_or(Timestamp::MAX);
    let claimed = ctx
        .store()
        .claim_windows_due_by(now, due_by, limit, &settings.owner, until)
        .await?;
    let due = claimed.windows;
    let mut rules = HashMap::new();
    if ctx.megazord().is_some() {
        // Every window's rule (its watched event) in one read, not one read each.
        let unknown: Vec<RobotId> = due
            .iter()
            .map(|w| w.robot_id)
            .filter(|r| !known.contains(r))
            .collect();
        if !unknown.is_empty() {
            rules = ctx.store().rules_of(&unknown).await?;
        }
    }
    let next_deadline = ctx.store().next_deadline_after(due_by).await?;
    Ok(Found {
        more_due: claimed.more_due,
        due,
        rules,
        next_deadline,
    })
}

/// How long before a deadline its windows are looked for, in service time: [`LOOK_AHEAD`] of
/// the wall clock, at most [`LOOK_AHEAD_SERVICE`].
fn look_ahead(ctx: &Context) -> SignedDuration {
    SignedDuration::try_from_secs_f64(LOOK_AHEAD.as_secs_f64() * ctx.clock().speed())
        .unwrap_or(LOOK_AHEAD_SERVICE)
        .min(LOOK_AHEAD_SERVICE)
}

/// When to look for the windows that end at `deadline` (wall clock): [`look_ahead`] before it.
fn look_time(ctx: &Context, deadline: Timestamp) -> Instant {
    let at = deadline.checked_sub(look_ahead(ctx)).unwrap_or(deadline);
    Instant::now() + ctx.clock().wait_until(at)
}

/// A window's place among those reading or waiting to read: freeing it tells the closer that
/// another window's task may start.
struct ReadSlot {
    _admitted: OwnedSemaphorePermit,
    /// One of the `close_concurrency` reads, once the task has it.
    reading: Option<OwnedSemaphorePermit>,
    reads: Arc<Semaphore>,
    freed: Arc<Notify>,
}

impl ReadSlot {
    /// Waits for one of the reads (the semaphore is fair: tasks get them in the order they
    /// asked, the order their windows were started in).
    async fn read(&mut self) {
        if self.reading.is_none() {
            // The semaphore is never closed.
            self.reading = Arc::clone(&self.reads).acquire_owned().await.ok();
        }
    }
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        // The read first: the next waiting task may read before the closer starts another.
        self.reading.take();
        self.freed.notify_one();
    }
}

/// What the closer remembers between looks at the store.
#[derive(Debug)]
struct Closer {
    /// Sessions whose last close failed, each waiting out its own back-off.
    retries: SessionRetries,
    /// Service time of the last window closed without error.
    last_closed: Option<Timestamp>,
    /// Where close transactions run.
    closes: Closes,
    /// Due windows not started yet, earliest deadline first.
    queued: VecDeque<DueWindow>,
    /// The rules of the queued windows' robots, which their history reads are made for.
    rules: HashMap<RobotId, StoredRule>,
    /// The look at the store under way, if any: it runs beside the reads, so that a burst's
    /// reads never wait for the next look.
    looking: Option<AbortOnDropHandle<Result<Found, RuntimeError>>>,
    /// Sessions whose task finished since the look under way began: that look may have seen
    /// them due before their close committed.
    finished_while_looking: HashSet<StatusCheckId>,
    /// Whether the last look fetched as many windows as it asked for: more may be due.
    more_due: bool,
    /// Sessions whose window is being read, waits for its close, or is being closed.
    started: HashSet<StatusCheckId>,
    /// The tasks of the started windows.
    /// Each gives the deadline of the window its close opened, if it opened one.
    tasks: JoinSet<Result<Option<Timestamp>, RuntimeError>>,
    by_task: HashMap<tokio::task::Id, DueWindow>,
    /// `close_concurrency` history reads at once.
    reads: Arc<Semaphore>,
    /// Windows reading or waiting to read: [`admissions`] of `close_concurrency`.
    admitted: Arc<Semaphore>,
    /// Told whenever a read's slot is freed.
    read_freed: Arc<Notify>,
    pace: Arc<ReadPace>,
}

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let concurrency = ctx.settings().close_concurrency.max(1);
    let mut closer = Closer {
        retries: SessionRetries::default(),
        last_closed: None,
        closes: Closes::start(&ctx),
        queued: VecDeque::new(),
        rules: HashMap::new(),
        looking: None,
        finished_while_looking: HashSet::new(),
        more_due: false,
        started: HashSet::new(),
        tasks: JoinSet::new(),
        by_task: HashMap::new(),
        reads: Arc::new(Semaphore::new(concurrency)),
        admitted: Arc::new(Semaphore::new(admissions(concurrency))),
        read_freed: Arc::new(Notify::new()),
        pace: Arc::default(),
    };
    // When to look at the store again (wall clock); now at first.
    let mut look_at = Instant::now();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let refill = closer.more_due && closer.queued.len() <= REFILL_AT;
        if closer.looking.is_none() && (refill || Instant::now() >= look_at) {
            closer.start_look(&ctx);
        }
        let head_at = closer.start_ready(&ctx);
        ctx.set_closing(!closer.queued.is_empty() || !closer.started.is_empty());
        let wake = wake_at(
            closer.looking.is_some(),
            look_at,
            head_at.map(|at| Instant::now() + ctx.clock().wait_until(at)),
        );
        tokio::select! {
            () = shutdown.cancelled() => return,
            found = async { closer.looking.as_mut().expect("a look is under way").await },
                if closer.looking.is_some() => {
                closer.looking = None;
                let found = found.unwrap_or_else(|e| {
                    let reason = if e.is_panic() { "panicked" } else { "was cancelled" };
                    tracing::error!("looking at the due windows {reason}");
                    Err(RuntimeError::Panicked(reason))
                });
                look_at = match found {
                    Ok(found) => {
                        ctx.liveness().closer_passed();
                        closer.take_look(&ctx, found)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, kind = e.kind(), "closing windows failed; trying again");
                        // No refill either until the pause is over.
                        closer.more_due = false;
                        Instant::now() + RETRY_PAUSE
                    }
                };
            }
            joined = closer.tasks.join_next_with_id(), if !closer.tasks.is_empty() => {
                // A close may open a window that is due already (a short final window) or soon:
                // looked at when it is, as no look has seen it yet.
                let closed_before = closer.last_closed;
                let next = closer.finished(&ctx, joined).await;
                if closer.last_closed != closed_before {
                    // The close shows Megazord serving others: a session past its failing
                    // limit is tried once more now (the retry below brings the look forward),
                    // and ended as FAILED if that fails too.
                    closer.expedite(&ctx);
                }
                if let Some(next) = next {
                    look_at = look_at.min(look_time(&ctx, next));
                }
                if let Some(retry) = closer.next_retry() {
                    look_at = look_at.min(retry);
                }
            }
            () = closer.read_freed.notified() => {}
            () = tokio::time::sleep_until(wake.unwrap_or(look_at)), if wake.is_some() => {}
            () = ctx.closer_woken() => look_at = Instant::now(),
        }
    }
}

/// When the closer's loop wakes by itself: at `look_at`, unless a look is under way, and when
/// the first queued window's read is due (`head`), if it waits for that.
///
/// While a look is under way its end is what the loop waits for, not `look_at`: a `look_at`
/// already passed would wake the loop at once, again and again until the look returns (under
/// load, seconds of a core taken from the database and from Megazord's reads).
fn wake_at(looking: bool, look_at: Instant, head: Option<Instant>) -> Option<Instant> {
    let look = (!looking).then_some(look_at);
    match (look, head) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Closer {
    /// Starts a look at the store for the due windows, beside the reads under way.
    fn start_look(&mut self, ctx: &Context) {
        let known = self.started.len().saturating_add(self.retries.len());
        let limit = FETCH.saturating_add(u32::try_from(known).unwrap_or(u32::MAX));
        let rules_known = self.rules.keys().copied().collect();
        self.finished_while_looking.clear();
        self.looking = Some(AbortOnDropHandle::new(tokio::spawn(fetch(
            ctx.clone(),
            limit,
            rules_known,
        ))));
    }

    /// Queues the due windows a look found that are not started yet, except those waiting out
    /// a back-off; says when to look again.
    fn take_look(&mut self, ctx: &Context, found: Found) -> Instant {
        let Found {
            more_due,
            due,
            rules,
            next_deadline,
        } = found;
        self.expedite(ctx);
        // Counted on what the look saw, not on what it holds: windows closed between its read
        // and its claim are not held, and more may be due all the same (counted on what it
        // held, 10,000 windows ending together waited up to the next timed look, 10 s).
        self.more_due = more_due;
        let finished = std::mem::take(&mut self.finished_while_looking);
        if !self.more_due {
            // Every due window was seen: a session that is no longer among them was closed
            // elsewhere, moved on by an event, or ended.
            let seen: HashSet<StatusCheckId> = due.iter().map(|w| w.status_check_id).collect();
            self.retries
                .retain(|id, _| seen.contains(&id) || finished.contains(&id));
        }
        metrics::gauge!(names::RETRYING_SESSIONS).set(count_f64(self.retries.len()));
        let at = Instant::now();
        self.queued = due
            .into_iter()
            .filter(|w| {
                !self.started.contains(&w.status_check_id)
                    && !finished.contains(&w.status_check_id)
                    && !self.retries.waiting(w.status_check_id, at)
            })
            .collect();
        self.rules.extend(rules);
        let queued_robots: HashSet<RobotId> = self.queued.iter().map(|w| w.robot_id).collect();
        self.rules.retain(|robot, _| queued_robots.contains(robot));
        let mut next = Instant::now() + MAX_SLEEP.min(ctx.clock().real_duration(MAX_SLEEP_SERVICE));
        if let Some(deadline) = next_deadline {
            next = next.min(look_time(ctx, deadline));
        }
        if let Some(retry) = self.next_retry() {
            next = next.min(retry);
        }
        next
    }

    /// The earliest instant a session waiting out its back-off, and not being tried now, may
    /// be tried again.
    fn next_retry(&self) -> Option<Instant> {
        self.retries
            .iter()
            .filter(|(id, _)| !self.started.contains(id))
            .map(|(_, f)| f.retry_at)
            .min()
    }

    /// When the history read of a window due at `deadline`, the first of those queued, is to
    /// start (service time): see the module's documentation.
    fn start_time(&self, ctx: &Context, deadline: Timestamp) -> Timestamp {
        let close_at = deadline
            .checked_add(ctx.settings().grace)
            .unwrap_or(deadline);
        if self.more_due {
            return deadline;
        }
        let concurrency = ctx.settings().close_concurrency.max(1);
        // Started windows waiting for a read slot read before the queued ones.
        let reading = concurrency.saturating_sub(self.reads.available_permits());
        let waiting = admissions(concurrency)
            .saturating_sub(self.admitted.available_permits())
            .saturating_sub(reading);
        let rounds_ahead = (self.queued.len() + waiting)
            .div_ceil(concurrency)
            .saturating_sub(1);
        if rounds_ahead == 0 {
            return close_at;
        }
        let lead_wall = count_f64(rounds_ahead) * self.pace.seconds() * READ_MARGIN;
        let lead = SignedDuration::try_from_secs_f64(lead_wall * ctx.clock().speed())
            .unwrap_or(SignedDuration::MAX);
        close_at.checked_sub(lead).unwrap_or(deadline).max(deadline)
    }

    /// Starts the queued windows whose read is due, as long as places among those reading or
    /// waiting to read are free; returns
    /// when the next one's read is due, if it waits for that rather than for a slot.
    fn start_ready(&mut self, ctx: &Context) -> Option<Timestamp> {
        while let Some(head) = self.queued.front() {
            let at = self.start_time(ctx, head.deadline);
            if at > ctx.now() {
                return Some(at);
            }
            let Ok(admitted) = Arc::clone(&self.admitted).try_acquire_owned() else {
                return None;
            };
            let window = self.queued.pop_front()?;
            let rule = self.rules.get(&window.robot_id).cloned();
            let slot = ReadSlot {
                _admitted: admitted,
                reading: None,
                reads: Arc::clone(&self.reads),
                freed: Arc::clone(&self.read_freed),
            };
            let (task_ctx, closes, pace) =
                (ctx.clone(), self.closes.clone(), Arc::clone(&self.pace));
            let handle = self
                .tasks
                .spawn(async move { close(&task_ctx, &closes, &pace, slot, window, rule).await });
            self.by_task.insert(handle.id(), window);
            self.started.insert(window.status_check_id);
        }
        None
    }

    /// Takes the outcome of one window's task, a failure staying with its session; returns the
    /// session's deadline now, when the close opened a window or found one.
    async fn finished(&mut self, ctx: &Context, joined: Option<Joined>) -> Option<Timestamp> {
        let joined = joined?;
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
        let window = self.by_task.remove(&id)?;
        self.started.remove(&window.status_check_id);
        if self.looking.is_some() {
            self.finished_while_looking.insert(window.status_check_id);
        }
        match result {
            Ok(next) => {
                self.last_closed = Some(ctx.now());
                if let Some(failing) = self.retries.forget(window.status_check_id) {
                    tracing::info!(
                        statusCheckId = window.status_check_id.get(),
                        robotId = window.robot_id.get(),
                        attempts = failing.attempts,
                        "window closed after failing before"
                    );
                }
                next
            }
            Err(e) => {
                self.failed(ctx, window, e).await;
                None
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
        let due: Vec<StatusCheckId> = self
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
        metrics::gauge!(names::RETRYING_SESSIONS).set(count_f64(self.retries.len()));
        let own_failure = failing.definite || self.others_served_since(ctx, failing.since);
        if failing.failing_for(now) < limit || !own_failure {
            tracing::warn!(
                statusCheckId = window.status_check_id.get(),
                robotId = window.robot_id.get(),
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
                        statusCheckId = window.status_check_id.get(),
                        robotId = window.robot_id.get(),
                        reason = %reason,
                        "session ended as FAILED: this resident is not monitored until the next session"
                    );
                    ctx.wake_janitor();
                }
            }
            Err(e) => {
                tracing::error!(statusCheckId = window.status_check_id.get(),
                    robotId = window.robot_id.get(), error = %e, kind = e.kind(),
                    "could not end the session as FAILED; trying again");
            }
        }
    }
}

/// Where a window's history read starts: the window's start `s`, except for the window that
/// ends its session, whose read covers the whole session (from `S`, or from when the rule began
/// watching).
///
/// An event whose queue message never came is still found by the read of the window it fell
/// in, unless a later event restarted that window first: the later read starts at the later
/// event. Such an event cannot change an alarm (the later event restarted the window anyway),
/// but the session's record would lack it. The last read of the session finds it, and it is
/// recorded as late; one read per session, no more.
fn history_since(stored: &StoredRule, due: &DueWindow) -> Timestamp {
    Session::containing(&stored.rule, due.deadline)
        .find(|session| session.end == due.deadline)
        .map_or(due.window_start, |session| {
            stored.watching_from(&session).min(due.window_start)
        })
}

/// Reads the window's history (in a read slot), waits for `u + grace`, then closes the
/// window if no event has moved it meanwhile.
async fn close(
    ctx: &Context,
    closes: &Closes,
    pace: &ReadPace,
    mut slot: ReadSlot,
    due: DueWindow,
    rule: Option<StoredRule>,
) -> Result<Option<Timestamp>, RuntimeError> {
    slot.read().await;
    if ctx.megazord().is_some() {
        let stored = rule.ok_or(RuntimeError::NoRule(due.robot_id))?;
        let call_ref = CallRef::new();
        let began = Instant::now();
        replay_history(ctx, &stored, history_since(&stored, &due), &call_ref).await?;
        pace.timed(began.elapsed());
    }
    drop(slot);
    let close_at = due
        .deadline
        .checked_add(ctx.settings().grace)
        .unwrap_or(due.deadline);
    while ctx.now() < close_at {
        ctx.clock().sleep_until(close_at).await;
    }
    match closes.close(due.status_check_id, due.deadline).await? {
        CloseOutcome::Closed {
            alarm,
            next,
            result,
        } => {
            metrics::counter!(names::WINDOWS_CLOSED, "alarm" => if alarm.is_some() { "true" } else { "false" })
                .increment(1);
            tracing::info!(
                statusCheckId = due.status_check_id.get(),
                robotId = due.robot_id.get(),
                windowStart = %due.window_start,
                windowEnd = %due.deadline,
                referenceId = alarm.map(|a| a.reference_id()),
                nextWindowEnd = next.map(|w| w.end.to_string()),
                result = %result,
                "window closed"
            );
            if next.is_none() {
                // The session ended: the janitor removes its subscription.
                ctx.wake_janitor();
            }
            Ok(next.map(|w| w.end))
        }
        CloseOutcome::Stale { deadline } => {
            tracing::debug!(statusCheckId = due.status_check_id.get(), deadline = %deadline,
                "window moved before it closed");
            Ok(Some(deadline))
        }
        CloseOutcome::NotRunning => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_under_way_is_waited_for_not_a_look_time_already_passed() {
        let now = Instant::now();
        let passed = now - Duration::from_secs(1);
        let head = now + Duration::from_millis(5);
        assert_eq!(wake_at(true, passed, None), None);
        assert_eq!(wake_at(true, passed, Some(head)), Some(head));
        assert_eq!(wake_at(false, passed, Some(head)), Some(passed));
        assert_eq!(wake_at(false, head, None), Some(head));
    }
}
