//! Group commit: events that arrive together are applied in one transaction, so that many
//! events share one `COMMIT` (one fsync) instead of paying one each.
//!
//! A caller submits its work (a function of the open transaction, the same one it would run
//! alone) with a key and waits for the answer. A committer task takes whatever is waiting, up
//! to [`GroupCommitSettings::max_batch`], runs every piece in arrival order inside one
//! transaction and answers each caller once that transaction committed, never before. Each
//! piece sees the writes of those before it, exactly as if they had committed one after the
//! other, so every outcome is the one it would have been alone.
//!
//! A batch that fails for a reason that may lie with one of its pieces (a constraint, a
//! corrupt row, a fault) is rolled back and every piece then runs in a transaction of its
//! own, so that one bad event never fails its neighbours. A batch that fails because the
//! database cannot be reached answers every piece with that failure at once.
//!
//! The committer owns the transaction: a caller that stops waiting (an HTTP client hung up)
//! changes nothing for the batch, whose other pieces commit as they would have.
//!
//! On SQLite one committer runs (one writer). On MySQL several run side by side, each on its
//! own connection; pieces are spread over them by key (the robot), so that the events of one
//! robot, and with them those of one session, are always applied by the same committer, in
//! arrival order. A committer begins its next batch while the last one waits for its `COMMIT`
//! when the two share no key (see [`commit_loop`]), so that the wait for the disk overlaps the
//! next batch's work.

use std::any::Any;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use jiff::{SignedDuration, Timestamp};

use super::lookups::event_id;
use super::sql::CommitSignal;
use super::types::{ApplyOutcome, EventInput, StartOutcome, StatusCheckId, StatusCheckRefs};
use super::{BoxFuture, Dialect, Store, StoreError, Tx, intake_batch, rules, transitions};
use crate::domain::{RobotId, Session};
use crate::telemetry::names;

/// How the group commit stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// The most pieces applied in one transaction.
    pub max_batch: usize,
    /// Committers running side by side on MySQL (SQLite always has one).
    pub mysql_committers: usize,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        GroupCommitSettings {
            max_batch: 256,
            mysql_committers: 1,
        }
    }
}

/// A piece of work with its output erased, so that one batch can hold pieces of any kind.
trait Work: Send + Sync {
    fn run<'a>(&'a self, tx: &'a mut Tx) -> BoxFuture<'a, Result<Box<dyn Any + Send>, StoreError>>;
}

impl<R, F> Work for F
where
    R: Send + 'static,
    F: for<'a> Fn(&'a mut Tx) -> BoxFuture<'a, Result<R, StoreError>> + Send + Sync,
{
    fn run<'a>(&'a self, tx: &'a mut Tx) -> BoxFuture<'a, Result<Box<dyn Any + Send>, StoreError>> {
        Box::pin(async move {
            let output = self(tx).await?;
            Ok(Box::new(output) as Box<dyn Any + Send>)
        })
    }
}

type Reply = Box<dyn FnOnce(Result<Box<dyn Any + Send>, StoreError>) + Send>;

/// One caller's piece and where its answer goes.
struct Submission {
    /// What the piece reads and writes lies with this key alone (the robot).
    key: u64,
    work: Arc<dyn Work>,
    /// The event, when the piece takes one in: a batch of such pieces is taken in with
    /// statements per batch ([`super::intake_batch`]), `work` being what each runs alone.
    intake: Option<Arc<IntakeRequest>>,
    reply: Reply,
}

/// The committers of one store, started on first use.
#[derive(Default)]
pub(crate) struct GroupCommit {
    settings: OnceLock<GroupCommitSettings>,
    queues: OnceLock<Vec<mpsc::Sender<Submission>>>,
}

impl Store {
    /// Sets how the group commit stage runs; only before its first use (later calls change
    /// nothing and say so with `false`).
    pub fn set_group_commit(&self, settings: GroupCommitSettings) -> bool {
        self.group.queues.get().is_none() && self.group.settings.set(settings).is_ok()
    }

    /// Queues a piece with the committer of `key` and waits for its answer.
    async fn submit<R: Send + 'static>(
        &self,
        key: u64,
        work: Arc<dyn Work>,
        intake: Option<Arc<IntakeRequest>>,
    ) -> Result<R, StoreError> {
        let queues = self.committers();
        // The remainder is below the number of queues, a usize.
        let index = usize::try_from(key % queues.len() as u64).expect("below queues.len()");
        let queue = &queues[index];
        let (sender, answer) = oneshot::channel::<Result<R, StoreError>>();
        let reply: Reply = Box::new(move |result| {
            let result = result.map(|output| {
                *output
                    .downcast::<R>()
                    .expect("a piece's output has the type it was submitted with")
            });
            // The caller may have stopped waiting; its piece is committed all the same.
            let _ = sender.send(result);
        });
        queue
            .send(Submission {
                key,
                work,
                intake,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    fn committers(&self) -> &[mpsc::Sender<Submission>] {
        self.group.queues.get_or_init(|| {
            let settings = self.group.settings.get().copied().unwrap_or_default();
            let count = match self.dialect() {
                Dialect::Sqlite => 1,
                Dialect::Mysql => settings.mysql_committers.max(1),
            };
            let max_batch = settings.max_batch.max(1);
            (0..count)
                .map(|_| {
                    let (sender, receiver) = mpsc::channel(max_batch * 4);
                    // The committer's own store has no committers: it must not keep the
                    // queues it reads open, or it would never stop.
                    let store = Store {
                        group: Arc::default(),
                        ..self.clone()
                    };
                    tokio::spawn(commit_loop(store, receiver, max_batch));
                    sender
                })
                .collect()
        })
    }
}

fn stopped() -> StoreError {
    StoreError::Invalid("the group commit stage stopped".into())
}

/// Batches of one committer in flight at once: the one reading and deciding, and the one
/// before it waiting for its `COMMIT` (1: one after the other). A third (measured on MariaDB
/// with 32 clients) found the queue empty more often and made the batches smaller, for no more
/// events a second.
const IN_FLIGHT: usize = 2;

/// Takes whatever is waiting and applies it, batch after batch, until every store that could
/// submit is gone.
///
/// A batch begins once the batch before it has sent its `COMMIT` ([`CommitSignal`]), not once
/// that `COMMIT` has come back: the wait for the log to reach the disk (about a millisecond on
/// the machines measured, as long as the rest of a batch) overlaps the next batch's work. So
/// that this changes no outcome, a batch shares no key (robot) with a batch in flight:
/// everything a piece reads and writes lies with its key, so they touch no row in common,
/// whatever becomes of the earlier batch (on MySQL its writes travel with its `COMMIT` and may
/// still fail, and then its pieces run alone, or it runs again after a lost lock race, while
/// the later one goes on). A piece whose key a batch in flight has, and every piece of that key
/// after it, waits for a batch after that one is done, its pieces run alone included: the
/// pieces of one key are applied in arrival order, those of different keys in any. On SQLite
/// the later batch waits for the one writer connection, so only the order of the two matters
/// there: the pieces of a failed batch, run alone, come after it. At most [`IN_FLIGHT`]
/// batches are in flight.
async fn commit_loop(store: Store, mut queue: mpsc::Receiver<Submission>, max_batch: usize) {
    // In arrival order, not yet in a batch.
    let mut waiting: Vec<Submission> = Vec::with_capacity(max_batch);
    // Oldest first, each with its keys.
    let mut in_flight: VecDeque<(tokio::task::JoinHandle<()>, HashSet<u64>)> = VecDeque::new();
    loop {
        // The oldest are done before the next batch begins.
        while in_flight.len() >= IN_FLIGHT
            && let Some((earlier, _)) = in_flight.pop_front()
        {
            report_panic(earlier.await);
        }
        if waiting.is_empty() {
            if queue.recv_many(&mut waiting, max_batch).await == 0 {
                break;
            }
        } else {
            while waiting.len() < max_batch
                && let Ok(submission) = queue.try_recv()
            {
                waiting.push(submission);
            }
        }
        let busy: HashSet<u64> = in_flight
            .iter()
            .flat_map(|(_, keys)| keys.iter().copied())
            .collect();
        let (batch, held) = next_batch(std::mem::take(&mut waiting), busy, max_batch);
        waiting = held;
        if batch.is_empty() {
            // Every waiting piece has a key of a batch in flight.
            if let Some((earlier, _)) = in_flight.pop_front() {
                report_panic(earlier.await);
            }
            continue;
        }
        let keys: HashSet<u64> = batch.iter().map(|s| s.key).collect();
        let (signal, sent) = CommitSignal::new();
        // In a task of its own: a piece that panics loses its batch's answers (its callers
        // see the stage stopped), not the committer.
        let store = store.clone();
        let running = tokio::spawn(async move { commit_batch(&store, batch, signal).await });
        // Sent, or the batch ended (its signal dropped) without sending one.
        let _ = sent.await;
        in_flight.push_back((running, keys));
    }
    for (last, _) in in_flight {
        report_panic(last.await);
    }
}

/// Splits `waiting` (in arrival order) into the next batch, at most `max_batch` pieces none of
/// whose keys is `busy`, and the pieces held back, in their order: those beyond the batch, and
/// those of a busy key with every piece of their key after them.
fn next_batch(
    waiting: Vec<Submission>,
    busy: HashSet<u64>,
    max_batch: usize,
) -> (Vec<Submission>, Vec<Submission>) {
    // The busy keys, and those of every piece held back so far.
    let mut blocked = busy;
    let mut batch = Vec::with_capacity(waiting.len().min(max_batch));
    let mut held = Vec::new();
    for submission in waiting {
        if batch.len() < max_batch && !blocked.contains(&submission.key) {
            batch.push(submission);
        } else {
            blocked.insert(submission.key);
            held.push(submission);
        }
    }
    (batch, held)
}

fn report_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        tracing::error!(error = %e, "a group commit batch panicked; its callers got an error");
    }
}

/// Applies `batch` in one transaction, or each piece alone when the batch failed; `signal` is
/// told when the batch's transaction sends its `COMMIT`.
async fn commit_batch(store: &Store, batch: Vec<Submission>, signal: Arc<CommitSignal>) {
    let intakes: Option<Vec<Arc<IntakeRequest>>> = batch.iter().map(|s| s.intake.clone()).collect();
    let together = match intakes {
        Some(requests) => take_in_together(store, requests, signal).await,
        None => {
            run_together(
                store,
                batch.iter().map(|s| Arc::clone(&s.work)).collect(),
                signal,
            )
            .await
        }
    };
    let pieces = batch.len() as u64;
    let error = match together {
        Ok(outputs) => {
            count_batch("together", pieces);
            for (submission, output) in batch.into_iter().zip(outputs) {
                (submission.reply)(Ok(output));
            }
            return;
        }
        Err(e) => e,
    };
    answer_failed(store, batch, error).await;
}

/// Takes every event of a batch in, with statements per batch.
async fn take_in_together(
    store: &Store,
    requests: Vec<Arc<IntakeRequest>>,
    signal: Arc<CommitSignal>,
) -> Result<Vec<Box<dyn Any + Send>>, StoreError> {
    let requests = Arc::new(requests);
    let copies = store.robots.clone();
    store
        .run(move |tx| {
            let requests = Arc::clone(&requests);
            let copies = copies.clone();
            tx.commit_signal = Some(Arc::clone(&signal));
            Box::pin(async move {
                let each: Vec<&IntakeRequest> = requests.iter().map(|r| &**r).collect();
                let records = intake_batch::take_in_batch(tx, &each, &copies).await?;
                Ok(records
                    .into_iter()
                    .map(|r| Box::new(r) as Box<dyn Any + Send>)
                    .collect())
            })
        })
        .await
}

/// Runs every piece of a batch, in order, in one transaction.
async fn run_together(
    store: &Store,
    works: Vec<Arc<dyn Work>>,
    signal: Arc<CommitSignal>,
) -> Result<Vec<Box<dyn Any + Send>>, StoreError> {
    let works = Arc::new(works);
    {
        let works = Arc::clone(&works);
        store
            .run(move |tx| {
                let works = Arc::clone(&works);
                tx.commit_signal = Some(Arc::clone(&signal));
                Box::pin(async move {
                    let mut outputs = Vec::with_capacity(works.len());
                    for work in works.iter() {
                        outputs.push(work.run(tx).await?);
                    }
                    Ok(outputs)
                })
            })
            .await
    }
}

/// Counts a batch of `pieces` and what became of it.
fn count_batch(outcome: &'static str, pieces: u64) {
    metrics::counter!(names::GROUP_COMMITS, "outcome" => outcome).increment(1);
    metrics::counter!(names::GROUP_COMMIT_PIECES, "outcome" => outcome).increment(pieces);
}

/// Answers the pieces of a batch that failed: all with the same failure when no piece caused
/// it, otherwise each with its own outcome alone.
async fn answer_failed(store: &Store, batch: Vec<Submission>, error: StoreError) {
    if batch.len() > 1 && shared_failure(&error).is_some() {
        count_batch("failed", batch.len() as u64);
        tracing::warn!(error = %error, events = batch.len(),
            "a group commit could not reach the database; every piece of it failed");
        for submission in batch {
            (submission.reply)(Err(shared_failure(&error).unwrap_or_else(stopped)));
        }
        return;
    }
    if batch.len() > 1 {
        tracing::debug!(error = %error, events = batch.len(),
            "a group commit failed; its pieces run one transaction each");
    }
    count_batch("alone", batch.len() as u64);
    // Each piece alone, as it would have run without a group: its own error is its own.
    for submission in batch {
        let work = submission.work;
        let result = store
            .run(move |tx| {
                let work = Arc::clone(&work);
                Box::pin(async move { work.run(tx).await })
            })
            .await;
        (submission.reply)(result);
    }
}

/// The same failure again, for every piece of a batch, when it is one no piece caused and
/// that running each piece alone could only repeat: the database cannot be reached, the pool
/// has no connection to give, or the store is closed.
fn shared_failure(error: &StoreError) -> Option<StoreError> {
    match error {
        StoreError::Database(sqlx::Error::Io(e)) => Some(StoreError::Database(sqlx::Error::Io(
            std::io::Error::new(e.kind(), e.to_string()),
        ))),
        StoreError::Database(sqlx::Error::PoolTimedOut) => {
            Some(StoreError::Database(sqlx::Error::PoolTimedOut))
        }
        StoreError::Database(sqlx::Error::PoolClosed) => {
            Some(StoreError::Database(sqlx::Error::PoolClosed))
        }
        StoreError::Database(sqlx::Error::WorkerCrashed) => {
            Some(StoreError::Database(sqlx::Error::WorkerCrashed))
        }
        StoreError::Invalid(reason) if reason.contains("closed") => {
            Some(StoreError::Invalid(reason.clone()))
        }
        _ => None,
    }
}

// ---- taking an event in ---------------------------------------------------------------------

/// Where an event's numeric id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventIdSource {
    /// Known already (a Megazord incoming id).
    Known(u64),
    /// Given over HTTP: resolved as [`Store::event_id`] does, in the event's own transaction.
    External(Option<String>),
}

/// One watched event to take in, with what deciding about it needs.
#[derive(Debug, Clone)]
pub struct IntakeRequest {
    /// The robot.
    pub robot_id: RobotId,
    /// Its id.
    pub event_id: EventIdSource,
    /// Megazord's `outgoing_event.id`, when it came through a subscription.
    pub outgoing_event_id: Option<u64>,
    /// The event name; `None` means the rule's watched event.
    pub event_name: Option<String>,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// Service time when it was taken in.
    pub now: Timestamp,
    /// An instant later than `now` by more than this is taken as `now` (semantics §6).
    pub grace: SignedDuration,
    /// This instance's owner id, for a session the event starts.
    pub owner: String,
    /// The script columns of a session the event starts.
    pub refs: StatusCheckRefs,
}

/// What taking an event in did, for the caller to count and log once it committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeRecord {
    /// The event's numeric id.
    pub incoming_event_id: u64,
    /// The instant it was taken as happening at.
    pub occurred_at: Timestamp,
    /// Whether `occurred_at` lay too far in the future and was taken as `now`.
    pub clamped: bool,
    /// What became of it.
    pub found: IntakeFound,
}

/// Where an event went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeFound {
    /// The robot has no enabled rule.
    NoRule,
    /// Not the rule's watched event.
    OtherEvent,
    /// The sessions containing it, each with what applying it did (none: it lies in no
    /// session that is running or still to run).
    Sessions(Vec<SessionStep>),
}

/// An event applied to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStep {
    /// The session.
    pub session: Session,
    /// Its `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// Whether the event started it.
    pub started: bool,
    /// Whether it was not found started and the event had it started (by this event or, at
    /// the same moment, by another instance).
    pub start_attempted: bool,
    /// What applying the event did.
    pub applied: ApplyOutcome,
    /// Whether the event moved the session's deadline earlier, which only a window restarted
    /// with a gap shorter than its own does (the rule's gap shrank mid-window): the closer
    /// must look again.
    pub deadline_earlier: bool,
}

impl Store {
    /// Takes one event in, in a transaction shared with the events submitted at about the
    /// same time (see the module documentation): finds the robot's rule, starts a session
    /// that is due and not yet started, and applies the event to every session containing it.
    pub async fn take_in(&self, request: IntakeRequest) -> Result<IntakeRecord, StoreError> {
        let key = u64::from(request.robot_id);
        let request = Arc::new(request);
        let alone = take_in_alone(Arc::clone(&request));
        self.submit(key, Arc::new(alone), Some(request)).await
    }

    /// Takes one event in, in a transaction of its own, with a statement or more per step:
    /// what a batch does for each event when it failed as a whole, and what every batch's
    /// outcome must equal, event by event. For the tests that hold batches to that.
    #[cfg(feature = "testing")]
    pub async fn take_in_alone(&self, request: IntakeRequest) -> Result<IntakeRecord, StoreError> {
        self.run(take_in_alone(Arc::new(request))).await
    }

    /// Takes `requests` in, in this order, as one batch in one transaction (no retry of each
    /// alone when it fails), as the committer does when they arrive together. For the tests
    /// that hold batches to [`Store::take_in_alone`].
    #[cfg(feature = "testing")]
    pub async fn take_in_as_one_batch(
        &self,
        requests: Vec<IntakeRequest>,
    ) -> Result<Vec<IntakeRecord>, StoreError> {
        let requests = Arc::new(requests);
        let copies = self.robots.clone();
        self.run(move |tx| {
            let requests = Arc::clone(&requests);
            let copies = copies.clone();
            Box::pin(async move {
                let each: Vec<&IntakeRequest> = requests.iter().collect();
                intake_batch::take_in_batch(tx, &each, &copies).await
            })
        })
        .await
    }
}

/// [`take_in`] as a piece that runs on its own.
fn take_in_alone(
    request: Arc<IntakeRequest>,
) -> impl for<'a> Fn(&'a mut Tx) -> BoxFuture<'a, Result<IntakeRecord, StoreError>> + Send + Sync {
    move |tx| {
        let request = Arc::clone(&request);
        Box::pin(async move { take_in(tx, &request).await })
    }
}

/// One event's intake inside an open transaction: the same transitions, in the same order,
/// as when each step was a transaction of its own.
async fn take_in(tx: &mut Tx, request: &IntakeRequest) -> Result<IntakeRecord, StoreError> {
    let incoming_event_id = match &request.event_id {
        EventIdSource::Known(id) => *id,
        EventIdSource::External(external) => event_id(tx, external.as_deref()).await?,
    };
    let mut record = IntakeRecord {
        incoming_event_id,
        occurred_at: request.occurred_at,
        clamped: false,
        found: IntakeFound::NoRule,
    };
    let Some(stored) = rules::get(tx, request.robot_id).await? else {
        return Ok(record);
    };
    if !stored.rule.enabled {
        return Ok(record);
    }
    if request
        .event_name
        .as_deref()
        .is_some_and(|name| name != stored.rule.watched_event)
    {
        record.found = IntakeFound::OtherEvent;
        return Ok(record);
    }
    let now = request.now;
    if let Ok(limit) = now.checked_add(request.grace)
        && record.occurred_at > limit
    {
        record.occurred_at = now;
        record.clamped = true;
    }
    let input = EventInput {
        incoming_event_id,
        outgoing_event_id: request.outgoing_event_id,
        occurred_at: record.occurred_at,
    };
    let mut steps = Vec::new();
    for session in Session::containing(&stored.rule, record.occurred_at) {
        let date = session.date.to_string();
        let existing = tx
            .fetch_optional(
                "SELECT status_check_id FROM status_job_session WHERE robot_id = ? AND local_date = ?",
                &[session.robot_id.into(), date.into()],
            )
            .await?
            .map(|r| r.id("status_check_id").map(StatusCheckId::new))
            .transpose()?;
        let start_attempted = existing.is_none();
        let (status_check_id, started) = match existing {
            Some(id) => (id, false),
            // A session that ended without being started is not evaluated after the fact.
            None if session.end <= now => continue,
            None => match transitions::start_session(
                tx,
                &stored.rule,
                stored.version,
                stored.watching_since,
                session,
                &request.owner,
                request.refs,
                now,
            )
            .await?
            {
                StartOutcome::Created(id) => (id, true),
                StartOutcome::Existing(id) => (id, false),
            },
        };
        let (applied, deadline_earlier) =
            transitions::apply_event_reporting(tx, status_check_id, input, now).await?;
        steps.push(SessionStep {
            session,
            status_check_id,
            started,
            start_attempted,
            applied,
            deadline_earlier,
        });
    }
    record.found = IntakeFound::Sessions(steps);
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: &mut Tx) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn piece(key: u64) -> Submission {
        Submission {
            key,
            work: Arc::new(nothing),
            intake: None,
            reply: Box::new(|_| {}),
        }
    }

    fn keys(pieces: &[Submission]) -> Vec<u64> {
        pieces.iter().map(|s| s.key).collect()
    }

    #[test]
    fn without_a_batch_committing_the_next_batch_is_the_first_pieces() {
        let waiting = [1, 2, 1, 3].map(piece).into_iter().collect();
        let (batch, held) = next_batch(waiting, HashSet::new(), 3);
        assert_eq!((keys(&batch), keys(&held)), (vec![1, 2, 1], vec![3]));
    }

    #[test]
    fn a_key_of_the_batch_committing_is_held_with_every_later_piece_of_it() {
        let busy = HashSet::from([2]);
        let waiting = [1, 2, 3, 2, 4].map(piece).into_iter().collect();
        let (batch, held) = next_batch(waiting, busy, 256);
        assert_eq!((keys(&batch), keys(&held)), (vec![1, 3, 4], vec![2, 2]));
    }

    #[test]
    fn pieces_beyond_a_full_batch_wait_in_their_order() {
        let waiting = [1, 2, 5, 3, 5].map(piece).into_iter().collect();
        let (batch, held) = next_batch(waiting, HashSet::new(), 2);
        assert_eq!((keys(&batch), keys(&held)), (vec![1, 2], vec![5, 3, 5]));
    }

    #[test]
    fn every_piece_of_a_busy_key_waits_and_none_is_lost() {
        let busy = HashSet::from([1, 2]);
        let waiting = [1, 2, 1].map(piece).into_iter().collect();
        let (batch, held) = next_batch(waiting, busy, 256);
        assert!(batch.is_empty());
        assert_eq!(keys(&held), vec![1, 2, 1]);
    }
}
