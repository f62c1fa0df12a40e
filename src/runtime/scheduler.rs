//! Starting sessions: at S of every enabled rule (or at boot for sessions whose S has passed),
//! subscribing at Megazord and replaying the history since S, so that nothing that happened
//! while the service was down is missed (semantics §2, §6; contracts §6 item 18).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use tokio_util::sync::CancellationToken;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::context::Context;
use super::error::RuntimeError;
use super::intake::WatchedEvent;
use super::retries::SessionRetries;
use crate::domain::{RobotId, Session};
use crate::megazord::CallRef;
use crate::store::{
    PollerLock, RulesFingerprint, StartOutcome, StartedSession, StatusCheckId, StoredRule,
};

/// How often the scheduler looks when nothing else wakes it: rules edited with the `rules`
/// command take effect within this time. A look that finds the rule set's fingerprint
/// unchanged reads no rule.
const RULES_REREAD: Duration = Duration::from_secs(10);

/// How many sessions are looked up (one query) and started (one transaction) together.
const START_BATCH: usize = 64;
/// How many batches are looked up and started at once, each on a connection of its own: the
/// first preparations need not wait for one long transaction.
const STARTS_AT_ONCE: usize = 4;

/// Runs until `shutdown`: starts due sessions and prepares them (subscription, history).
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let mut scheduler = Scheduler::default();
    loop {
        let next = match scheduler.pass(&ctx).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, kind = e.kind(), "scheduler pass failed; trying again");
                None
            }
        };
        let mut wait = next
            .map(|t| ctx.clock().wait_until(t))
            .unwrap_or(RULES_REREAD)
            .min(RULES_REREAD);
        if let Some(retry) = scheduler.retries.next_retry() {
            wait = wait.min(retry.saturating_duration_since(Instant::now()));
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = ctx.scheduler_woken() => {}
        }
    }
}

/// What the scheduler remembers between passes.
#[derive(Debug, Default)]
struct Scheduler {
    /// Sessions this process has started or found, and prepared or left to the instance that
    /// keeps them; after a restart, the sessions this instance keeps are prepared again, which
    /// replays their history.
    known: HashMap<(RobotId, Date), StatusCheckId>,
    /// Sessions whose start or preparation failed, each waiting out its own back-off.
    retries: SessionRetries<RetryKey>,
    /// The rules as last read, with the fingerprint they were read at: an unchanged rule set
    /// costs one small query per pass instead of reading every rule.
    rules: Option<(RulesFingerprint, Arc<Vec<StoredRule>>)>,
    /// Sessions another instance started and is preparing, each left to it until the service
    /// time given ([`left_to_starter`]); looked at again then.
    elsewhere: HashMap<(RobotId, Date), Timestamp>,
    /// Sessions found not to be started at all (ended before they could be, or of an older
    /// rule), under the rules as last read: not looked up again until the rules change.
    /// Yesterday's session of every rule is one of these all day, and looking them up again
    /// at every pass was 1,500 lookups a pass with 100,000 rules.
    skipped: HashSet<(RobotId, Date)>,
}

/// What a failed session is retried under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RetryKey {
    /// A session that exists, by its `status_check.id`.
    Session(StatusCheckId),
    /// A session that could not be started, and so has no id yet, by its robot.
    Start(RobotId),
}

/// A session the pass starts or prepares.
struct Job {
    /// The rules as the pass read them, shared by every job: one copy of 100,000 rules, not
    /// two.
    rules: Arc<Vec<StoredRule>>,
    /// Which of them is this session's.
    index: usize,
    session: Session,
    today: Date,
    /// Whether it was left to the instance that started it, whose time is up now.
    was_left: bool,
}

impl Job {
    /// The session's rule.
    fn stored(&self) -> &StoredRule {
        &self.rules[self.index]
    }
}

impl Scheduler {
    /// The stored rules, read again only when their fingerprint changed.
    async fn rules(&mut self, ctx: &Context) -> Result<Arc<Vec<StoredRule>>, RuntimeError> {
        let fingerprint = ctx.store().rules_fingerprint().await?;
        if let Some((seen, rules)) = &self.rules
            && *seen == fingerprint
        {
            return Ok(Arc::clone(rules));
        }
        let rules = Arc::new(ctx.store().rules().await?);
        self.rules = Some((fingerprint, Arc::clone(&rules)));
        // A changed rule may make a skipped session one to start.
        self.skipped.clear();
        Ok(rules)
    }

    /// One pass: starts and prepares every session that is due and still runs, up to
    /// `prepare_concurrency` at once; returns the next session start. A rule or session that
    /// fails is retried on its own back-off and holds up no other.
    ///
    /// A session is started late (at boot mid-day, or after downtime) from S with its history
    /// replayed, but only while it still runs: one that ended before it could be started is
    /// not evaluated after the fact, since alarms about a finished day help nobody. Nor is a
    /// session of an earlier date whose S lies before the rule's last change (semantics §6: a
    /// change applies to sessions that have not started).
    async fn pass(&mut self, ctx: &Context) -> Result<Option<Timestamp>, RuntimeError> {
        let now = ctx.now();
        // Sessions this instance took over since the last pass: looked up again, and prepared
        // here, however they were known (left to the instance that kept them, or to their
        // starter). One looked up between the take-over's commit and this pass was prepared
        // here already, and is prepared once more: a second history read, which changes
        // nothing.
        let taken = ctx.taken_over();
        if !taken.is_empty() {
            self.known.retain(|_, id| !taken.contains(id));
        }
        let mut next_start: Option<Timestamp> = None;
        let mut wanted = HashSet::new();
        let mut jobs = Vec::new();
        let rules = self.rules(ctx).await?;
        for (index, stored) in rules.iter().enumerate() {
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
                let key = (rule.robot_id, date);
                // Skipped under these rules: its start is still past, nothing else to know.
                if self.skipped.contains(&key) {
                    wanted.insert(key);
                    continue;
                }
                let Some(session) = Session::on(rule, date) else {
                    continue;
                };
                if session.start > now {
                    next_start = Some(next_start.map_or(session.start, |n| n.min(session.start)));
                    continue;
                }
                wanted.insert(key);
                // Left to its starter: not looked at before its time is up (the pass wakes
                // then, below), and once more after.
                let was_left = match self.elsewhere.get(&key) {
                    Some(&until) if until > now => continue,
                    Some(_) => {
                        self.elsewhere.remove(&key);
                        true
                    }
                    None => false,
                };
                if self.known.contains_key(&key)
                    || self
                        .retries
                        .waiting(RetryKey::Start(rule.robot_id), Instant::now())
                {
                    continue;
                }
                jobs.push(Job {
                    rules: Arc::clone(&rules),
                    index,
                    session,
                    today,
                    was_left,
                });
            }
        }
        self.run_jobs(ctx, jobs).await;
        // Forget sessions of dates that are no longer looked at (and of disabled rules).
        self.known.retain(|key, _| wanted.contains(key));
        self.elsewhere.retain(|key, _| wanted.contains(key));
        self.skipped.retain(|key| wanted.contains(key));
        if let Some(&until) = self.elsewhere.values().min() {
            next_start = Some(next_start.map_or(until, |n| n.min(until)));
        }
        let known_ids: HashSet<StatusCheckId> = self.known.values().copied().collect();
        let wanted_robots: HashSet<RobotId> = wanted.iter().map(|(robot, _)| *robot).collect();
        self.retries.retain(|key, f| {
            !matches!(key, RetryKey::Session(id) if known_ids.contains(&id))
                && wanted_robots.contains(&f.robot_id)
        });
        Ok(next_start)
    }

    /// Starts and prepares `jobs`: thousands of robots share the same S, and a restart
    /// prepares every running session again. Sessions are looked up and started
    /// [`START_BATCH`] at a time (one query, one transaction; [`STARTS_AT_ONCE`] batches at
    /// once), and prepared (subscription, history) up to `prepare_concurrency` at once; the
    /// next batches are looked up while the last ones' preparations run.
    async fn run_jobs(&mut self, ctx: &Context, jobs: Vec<Job>) {
        let concurrency = ctx.settings().prepare_concurrency.max(1);
        let at = Instant::now();
        let waiting: Arc<HashSet<RetryKey>> = Arc::new(
            self.retries
                .iter()
                .map(|(id, _)| id)
                .filter(|id| self.retries.waiting(*id, at))
                .collect(),
        );
        let mut running = JoinSet::new();
        let mut by_task = HashMap::new();
        let mut batches = jobs.into_iter().peekable();
        let mut ready: VecDeque<Preparation> = VecDeque::new();
        let mut starting = JoinSet::new();
        loop {
            while starting.len() < STARTS_AT_ONCE
                && ready.len() < 2 * concurrency
                && batches.peek().is_some()
            {
                let batch: Vec<Job> = batches.by_ref().take(START_BATCH).collect();
                starting.spawn(start_batch(ctx.clone(), batch, Arc::clone(&waiting)));
            }
            while running.len() < concurrency {
                let Some(preparation) = ready.pop_front() else {
                    break;
                };
                let (robot_id, date) = (preparation.stored.rule.robot_id, preparation.session.date);
                let task_ctx = ctx.clone();
                let handle = running.spawn(async move { preparation.run(&task_ctx).await });
                by_task.insert(handle.id(), (robot_id, date));
            }
            if running.is_empty() && starting.is_empty() {
                if ready.is_empty() && batches.peek().is_none() {
                    return;
                }
                continue;
            }
            tokio::select! {
                Some(batch) = starting.join_next(), if !starting.is_empty() => {
                    // A batch that panicked is started again by the next pass: none of its
                    // sessions is known yet.
                    let steps = batch.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "starting a batch of sessions failed");
                        Vec::new()
                    });
                    for (robot_id, date, step) in steps {
                        match step {
                            Step::Prepare(preparation) => ready.push_back(*preparation),
                            Step::Done(result) => self.settle(ctx, robot_id, date, result),
                        }
                    }
                }
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    let (id, result) = match joined {
                        Ok((id, result)) => (id, result),
                        Err(e) => {
                            let reason = if e.is_panic() {
                                "panicked"
                            } else {
                                "was cancelled"
                            };
                            tracing::error!(task = %e.id(), "preparing a session {reason}");
                            match by_task.get(&e.id()) {
                                Some((robot_id, _)) => (
                                    e.id(),
                                    Err((RetryKey::Start(*robot_id), RuntimeError::Panicked(reason))),
                                ),
                                None => continue,
                            }
                        }
                    };
                    if let Some((robot_id, date)) = by_task.remove(&id) {
                        self.settle(ctx, robot_id, date, result);
                    }
                }
            }
        }
    }

    /// Takes note of what became of one session: prepared, waiting, or failed (retried on a
    /// back-off of its own).
    fn settle(
        &mut self,
        ctx: &Context,
        robot_id: RobotId,
        date: Date,
        result: Result<Started, (RetryKey, RuntimeError)>,
    ) {
        match result {
            Ok(Started::Skipped) => {
                self.skipped.insert((robot_id, date));
            }
            Ok(Started::Elsewhere(until)) => {
                self.retries.forget(RetryKey::Start(robot_id));
                self.elsewhere.insert((robot_id, date), until);
            }
            Ok(Started::Waiting) => {
                self.retries.forget(RetryKey::Start(robot_id));
            }
            Ok(Started::Prepared(session_id)) => {
                self.retries.forget(RetryKey::Start(robot_id));
                if let Some(failing) = self.retries.forget(RetryKey::Session(session_id)) {
                    tracing::info!(
                        statusCheckId = session_id.get(),
                        robotId = robot_id.get(),
                        attempts = failing.attempts,
                        "session prepared after failing before"
                    );
                }
                self.known.insert((robot_id, date), session_id);
            }
            Ok(Started::KeptElsewhere(session_id)) => {
                self.retries.forget(RetryKey::Start(robot_id));
                self.known.insert((robot_id, date), session_id);
            }
            Err((retry_key, e)) => {
                if retry_key != RetryKey::Start(robot_id) {
                    self.retries.forget(RetryKey::Start(robot_id));
                }
                let failing = self.retries.failed(retry_key, robot_id, &e, ctx.now());
                tracing::warn!(robotId = robot_id.get(), date = %date,
                    attempts = failing.attempts, error = %e, kind = e.kind(),
                    "could not start or prepare the session yet; retrying it on its own");
            }
        }
    }
}

/// What became of one session the pass looked at.
enum Started {
    /// Nothing to do: it ended before it could be started, or belongs to an older rule.
    Skipped,
    /// It exists and is waiting out a back-off of its own.
    Waiting,
    /// Another instance started it and is preparing it; it is left to that instance until
    /// this service time.
    Elsewhere(Timestamp),
    /// It runs and is prepared.
    Prepared(StatusCheckId),
    /// It runs and another instance keeps it (holds its poller row), which prepared it; or
    /// none does, and the instance that takes it over prepares it. Prepared here only once
    /// this instance takes it over ([`Context::prepare_again`]).
    KeptElsewhere(StatusCheckId),
}

/// A session of a batch and what is left to do for it.
type BatchStep = (RobotId, Date, Step);

/// What is left to do for one session of a batch once it is looked up and started.
enum Step {
    /// Subscribe it and replay its history.
    Prepare(Box<Preparation>),
    /// Nothing more: skipped, waiting, or failed.
    Done(Result<Started, (RetryKey, RuntimeError)>),
}

/// A session that exists and is to be prepared.
struct Preparation {
    stored: StoredRule,
    session: Session,
    /// Its `status_check.id`.
    id: StatusCheckId,
    /// What the batch's lookup found of it; `None` when it was found only by its start (another
    /// instance started it meanwhile): then it is read again.
    found: Option<StartedSession>,
}

impl Preparation {
    async fn run(self, ctx: &Context) -> Result<Started, (RetryKey, RuntimeError)> {
        let id = self.id;
        prepare(ctx, &self.stored, self.session, id, self.found)
            .await
            .map_err(|e| (RetryKey::Session(id), e))?;
        Ok(Started::Prepared(id))
    }
}

/// Looks up the sessions of `jobs` in one query and starts those nobody has started yet in
/// shared transactions, unless they ended before they could be started or belong to an older
/// rule; says for each what is left to do. A failed lookup or start is each session's failure,
/// retried under its robot's key.
async fn start_batch(
    ctx: Context,
    jobs: Vec<Job>,
    waiting: Arc<HashSet<RetryKey>>,
) -> Vec<BatchStep> {
    let waiting = &*waiting;
    let now = ctx.now();
    let keys: Vec<(RobotId, Date)> = jobs
        .iter()
        .map(|job| (job.stored().rule.robot_id, job.session.date))
        .collect();
    let found = match ctx.store().started_sessions(&keys).await {
        Ok(found) => found,
        Err(e) => {
            let e: RuntimeError = e.into();
            return keys
                .into_iter()
                .map(|(robot_id, date)| {
                    let failure = RuntimeError::Store(crate::store::StoreError::Invalid(format!(
                        "looking up the sessions to start failed: {e}"
                    )));
                    (
                        robot_id,
                        date,
                        Step::Done(Err((RetryKey::Start(robot_id), failure))),
                    )
                })
                .collect();
        }
    };
    let mut steps = Vec::with_capacity(jobs.len());
    let mut to_start = Vec::new();
    for job in jobs {
        let (stored, session, today, was_left) =
            (job.stored().clone(), job.session, job.today, job.was_left);
        let (robot_id, date) = (stored.rule.robot_id, session.date);
        match found.get(&(robot_id, date)) {
            Some(started) => {
                let step = match left_to_starter(&ctx, started, now, was_left) {
                    Some(started) => Step::Done(Ok(started)),
                    None => prepare_step(
                        stored,
                        session,
                        started.status_check_id,
                        Some(started.clone()),
                        waiting,
                    ),
                };
                steps.push((robot_id, date, step));
            }
            None if session.end <= now => {
                steps.push((robot_id, date, Step::Done(Ok(Started::Skipped))));
            }
            None if session.date < today && stored.updated_at > session.start => {
                steps.push((robot_id, date, Step::Done(Ok(Started::Skipped))));
            }
            None => to_start.push((stored, session)),
        }
    }
    let outcomes = ctx.start_sessions(&to_start, now).await;
    // Sessions another instance started since the lookup (at S, instances start the same
    // sessions at the same moment): looked up again, to know whether to leave them to it.
    let raced: Vec<(RobotId, Date)> = to_start
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| matches!(outcome, Ok(StartOutcome::Existing(_))))
        .map(|((stored, session), _)| (stored.rule.robot_id, session.date))
        .collect();
    let raced = if raced.is_empty() {
        HashMap::new()
    } else {
        // Not found again, such a session is prepared here, as before the lookup.
        ctx.store()
            .started_sessions(&raced)
            .await
            .unwrap_or_default()
    };
    for ((stored, session), outcome) in to_start.into_iter().zip(outcomes) {
        let (robot_id, date) = (stored.rule.robot_id, session.date);
        let step = match outcome {
            Ok(StartOutcome::Created(id)) => {
                let found = StartedSession {
                    status_check_id: id,
                    running: true,
                    end: session.end,
                    subscription_id: None,
                    started_by: None,
                    poller: PollerLock::Held(ctx.settings().owner.clone()),
                };
                prepare_step(stored, session, id, Some(found), waiting)
            }
            Ok(StartOutcome::Existing(id)) => match raced.get(&(robot_id, date)) {
                Some(started) => match left_to_starter(&ctx, started, now, false) {
                    Some(started) => Step::Done(Ok(started)),
                    None => prepare_step(stored, session, id, Some(started.clone()), waiting),
                },
                None => prepare_step(stored, session, id, None, waiting),
            },
            Err(e) => Step::Done(Err((RetryKey::Start(robot_id), e.into()))),
        };
        steps.push((robot_id, date, step));
    }
    steps
}

/// Whether a found session is left to another instance, and how.
///
/// Several instances find the same sessions at S, and each session is prepared (subscribed,
/// its history replayed) by the one that started it, not by every instance. Within an alarm
/// lease of its start by another instance:
/// - subscribed already: prepared there (or being), nothing to do here ([`Started::Prepared`]);
/// - not subscribed yet: left to its starter until the lease is up ([`Started::Elsewhere`]),
///   then looked at again (`was_left`): prepared there if subscribed by then, here if not
///   (its starter may have stopped).
///
/// Later, and after a restart, a session is prepared by the instance that keeps it (holds its
/// poller row): another instance keeps it, or none does and the instance that takes it over
/// prepares it ([`Started::KeptElsewhere`]). A restarted instance so replays the history of
/// its own sessions only, not of every running session.
///
/// `None` when this instance prepares it.
fn left_to_starter(
    ctx: &Context,
    started: &StartedSession,
    now: Timestamp,
    was_left: bool,
) -> Option<Started> {
    let owner = &ctx.settings().owner;
    // Taken over from its starter: this instance keeps it now.
    if started.running && started.poller.is_held_by(owner) {
        return None;
    }
    if let Some((starter, at)) = started.starter(owner) {
        if was_left {
            return started
                .subscription_id
                .is_some()
                .then_some(Started::Prepared(started.status_check_id));
        }
        if let Ok(until) = at.checked_add(ctx.settings().alarm_lease)
            && until > now
        {
            if started.subscription_id.is_some() {
                tracing::debug!(
                    statusCheckId = started.status_check_id.get(),
                    starter,
                    "session subscribed by the instance that started it: left to it"
                );
                return Some(Started::Prepared(started.status_check_id));
            }
            return Some(Started::Elsewhere(until));
        }
    }
    started
        .kept_elsewhere(owner)
        .then_some(Started::KeptElsewhere(started.status_check_id))
}

/// A found or started session is prepared, unless it is waiting out a back-off (`waiting`
/// holds the retry keys that are).
fn prepare_step(
    stored: StoredRule,
    session: Session,
    id: StatusCheckId,
    found: Option<StartedSession>,
    waiting: &HashSet<RetryKey>,
) -> Step {
    if waiting.contains(&RetryKey::Session(id)) {
        return Step::Done(Ok(Started::Waiting));
    }
    Step::Prepare(Box::new(Preparation {
        stored,
        session,
        id,
        found,
    }))
}

/// Subscribes the session at Megazord (when it runs on and has no subscription) and replays
/// its history since S.
async fn prepare(
    ctx: &Context,
    stored: &StoredRule,
    session: Session,
    id: StatusCheckId,
    found: Option<StartedSession>,
) -> Result<(), RuntimeError> {
    let Some(megazord) = ctx.megazord() else {
        return Ok(());
    };
    let rule = &stored.rule;
    let call_ref = CallRef::new();
    let found = match found {
        Some(found) => found,
        None => {
            let view = ctx
                .store()
                .session(id)
                .await?
                .ok_or(RuntimeError::SessionVanished(id))?;
            StartedSession {
                status_check_id: id,
                running: view.state.is_running(),
                end: view.state.session.end,
                subscription_id: view.subscription_id,
                started_by: None,
                poller: match view.poller {
                    Some((_, _, lock_id)) => PollerLock::of(true, lock_id),
                    None => PollerLock::Absent,
                },
            }
        }
    };
    if !found.running {
        return Ok(());
    }
    let now = ctx.now();
    if found.subscription_id.is_none() && found.end > now {
        let subscription = megazord
            .create_subscription(
                rule.robot_id,
                std::slice::from_ref(&rule.watched_event),
                found.end,
                ctx.settings().queue_suffix.as_deref(),
                &call_ref,
            )
            .await?;
        ctx.liveness().megazord_answered(ctx.now());
        let stored_it = ctx
            .store()
            .record_subscribed(id, subscription.id, now)
            .await?;
        if stored_it {
            tracing::info!(statusCheckId = id.get(), robotId = rule.robot_id.get(),
                subscriptionId = subscription.id, callRef = %call_ref, "subscribed");
        } else {
            // Another instance subscribed first: this spare is recorded (so the janitor deletes
            // it should this delete fail) and deleted now.
            tracing::info!(statusCheckId = id.get(), robotId = rule.robot_id.get(),
                subscriptionId = subscription.id, callRef = %call_ref,
                "another instance subscribed the session first: deleting this spare subscription");
            match megazord
                .delete_subscription(rule.robot_id, subscription.id, &call_ref)
                .await
            {
                Ok(_) => {
                    ctx.store()
                        .forget_subscription(subscription.id, now)
                        .await?
                }
                Err(e) => {
                    tracing::warn!(statusCheckId = id.get(), robotId = rule.robot_id.get(),
                        subscriptionId = subscription.id, error = %e,
                        "spare subscription not deleted yet; the janitor tries again");
                }
            }
        }
    }
    // A rule created or enabled after S watches from then on only (semantics §6).
    replay_history(ctx, stored, stored.watching_from(&session), &call_ref).await
}

/// Applies every watched event of the rule's robot that Megazord has since `since`.
pub(crate) async fn replay_history(
    ctx: &Context,
    stored: &StoredRule,
    since: Timestamp,
    call_ref: &CallRef,
) -> Result<(), RuntimeError> {
    let Some(megazord) = ctx.megazord() else {
        return Ok(());
    };
    let rule = &stored.rule;
    let events = megazord
        .incomings(rule.robot_id, &rule.watched_event, since, call_ref)
        .await?;
    ctx.liveness().megazord_answered(ctx.now());
    for event in events {
        ctx.take_event(WatchedEvent {
            robot_id: rule.robot_id,
            incoming_event_id: event.id.get(),
            outgoing_event_id: None,
            event_name: event.event_name.clone(),
            occurred_at: event.created_at,
        })
        .await?;
    }
    Ok(())
}
