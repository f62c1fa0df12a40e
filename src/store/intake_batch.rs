//! A group commit's events taken in with statements per batch instead of per event, in three
//! round trips on MySQL: (1) its robots' rules, each with the ids of the sessions their events
//! may fall in (by the `(robot_id, local_date)` index, without locks); (2) those sessions by id,
//! read under their row locks in id order, each with its pending events and the batch's events
//! it has already, in one statement; then the core decides every event in memory, in arrival
//! order; (3) multi-row inserts of the events and records and one update of the session rows,
//! sent with the `COMMIT`. Per event there used to be some six round trips.
//!
//! Round trip (1) is mostly saved: the store keeps what it last read of each robot
//! ([`super::robot_copies`]), and a batch whose every robot and date it holds locks the
//! sessions by those ids at once, reading the rules and ids again in the same round trip. When
//! what it reads differs from what it guessed (a rule changed, a session was started), it
//! decides on what it read and locks the sessions again by that: two round trips, as before.
//!
//! Round trip (2) is saved too when every session the batch's events fall in has a copy of its
//! row ([`super::session_copies`]) with no events pending: the batch is decided on the copies
//! and on the event ids this instance knows the sessions have, and its writes and `COMMIT` are
//! its one round trip ([`Batch::on_copies`]). The session rows go first, each with its version
//! checked; a copy that turns out stale (or an event the session had unknown to this instance)
//! fails the transaction before its `COMMIT`, and it runs again from locked reads.
//!
//! The sessions are locked by id, not by `(robot_id, local_date)`: MariaDB answered the latter,
//! with `ORDER BY status_check_id`, by walking the primary key through every session, which
//! cost 60 % of its time at 200 robots (the slow query log's `Rows_examined`) and grows with
//! the table. A session made by another instance between (1) and (2) is found as any session
//! not yet started is: its start finds it made and locks it.
//!
//! Every event ends exactly as it would have if the events had been applied one after the
//! other with [`super::transitions::apply_event`], each reading what those before it wrote:
//! the same classes, duplicates within the batch included, the same rows and the same session
//! versions. What the database would have given back between two events is kept in memory
//! in the form the database gives it back: instants in whole milliseconds (a session row as
//! [`SessionRow::as_stored`] makes it), pending events in `(occurred_at_ms,
//! incoming_event_id)` order.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;

use super::error::StoreError;
use super::group_commit::{EventIdSource, IntakeFound, IntakeRecord, IntakeRequest, SessionStep};
use super::lookups::event_id;
use super::robot_copies::{Lookups, RobotCopies};
use super::rules;
use super::session_row::{COLUMNS, SessionRow, ms_to_ts, ts_to_ms, ts_to_sql};
use super::sql::{Arg, Row, Tx, qualified};
use super::transitions::{self, event_state, lock_session, record_result};
use super::types::{ApplyOutcome, EventInput, StartOutcome, StatusCheckId, StoredRule};
use crate::domain::{EventClass, RobotId, Session};

/// Rows (or keys) per multi-row statement: well below SQLite's limit on bound values (32,766).
const ROWS_PER_STATEMENT: usize = 200;
/// Event ids per `IN` list.
const IDS_PER_STATEMENT: usize = 1000;

/// A `status_job_event` row's columns under the names [`Batch::add_event_read`] reads (those
/// the sessions' read gives its joined events).
const EVENT_AS_READ: &str = "status_check_id, incoming_event_id AS event_id, \
     outgoing_event_id AS event_outgoing_id, occurred_at_ms AS event_occurred_at_ms, \
     state AS event_state";

/// What a statement of [`Batch::read_sessions`] reads.
enum Read {
    /// Rules with their sessions' ids, to check a guess from copies.
    Lookup,
    /// Session rows under their locks, each with its pending events and those of the batch's
    /// first thousand it has.
    Sessions,
    /// The batch's events beyond the first thousand that the sessions have.
    Events,
}

/// Takes in `requests` in one open transaction, in their order; see the module documentation.
/// `copies` may save the first round trip.
pub(super) async fn take_in_batch(
    tx: &mut Tx,
    requests: &[&IntakeRequest],
    copies: &RobotCopies,
) -> Result<Vec<IntakeRecord>, StoreError> {
    let event_ids = event_ids(tx, requests).await?;
    let robots: Vec<RobotId> = distinct(requests.iter().map(|r| r.robot_id));
    let dates: Vec<String> = candidate_dates(requests);
    let guess = copies.guess(&robots, &dates);
    // The plans on the guess serve the batch on copies, or else the locked reads, which
    // decide on the guess too until it proves stale.
    let guessed_plans = match &guess {
        Some(guess) => {
            let plans = plans_of(requests, &event_ids, guess);
            if let Some(batch) = Batch::on_copies(tx, &plans, guess) {
                return batch.take_in_all(tx, plans, requests).await;
            }
            Some(plans)
        }
        None => None,
    };
    let lookup: Vec<(String, Vec<Arg>)> = robots
        .chunks(ROWS_PER_STATEMENT)
        .map(|chunk| rules::select_with_sessions(chunk, &dates))
        .collect();
    // A guess is read again with the sessions' locks, and checked.
    let (mut lookups, check): (Lookups, &[(String, Vec<Arg>)]) = match guess {
        Some(guess) => (guess, &lookup),
        None => {
            let read = lookups_of(&tx.fetch_each(&lookup).await?)?;
            copies.keep(&robots, &dates, &read);
            (read, &[])
        }
    };
    let mut batch = Batch::default();
    let mut plans = guessed_plans.unwrap_or_else(|| plans_of(requests, &event_ids, &lookups));
    if let Some(read) = batch
        .read_sessions(tx, &plans, &lookups.sessions, check)
        .await?
        && read != lookups
    {
        // The guess was stale: decide on what was read, with every session it names locked.
        copies.keep(&robots, &dates, &read);
        lookups = read;
        plans = plans_of(requests, &event_ids, &lookups);
        batch = Batch::default();
        batch
            .read_sessions(tx, &plans, &lookups.sessions, &[])
            .await?;
    }
    batch.take_in_all(tx, plans, requests).await
}

fn plans_of(requests: &[&IntakeRequest], event_ids: &[u64], lookups: &Lookups) -> Vec<Plan> {
    requests
        .iter()
        .zip(event_ids)
        .map(|(request, id)| Plan::of(request, *id, lookups.rules.get(&request.robot_id)))
        .collect()
}

/// The values in their first order, each once.
fn distinct<T: Clone + Eq + std::hash::Hash>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    values.filter(|v| seen.insert(v.clone())).collect()
}

fn key(session: &Session) -> (RobotId, String) {
    (session.robot_id, session.date.to_string())
}

/// `n` copies of `item`, comma-separated.
fn repeat(item: &str, n: usize) -> String {
    vec![item; n].join(", ")
}

/// The numeric id of every request's event, as [`super::lookups::event_id`] gives it: only an
/// event without any id needs a statement, for a fresh local id.
async fn event_ids(tx: &mut Tx, requests: &[&IntakeRequest]) -> Result<Vec<u64>, StoreError> {
    let mut ids = Vec::with_capacity(requests.len());
    for request in requests {
        let id = match &request.event_id {
            EventIdSource::Known(id) => *id,
            EventIdSource::External(external) => event_id(tx, external.as_deref()).await?,
        };
        ids.push(id);
    }
    Ok(ids)
}

/// The rules and session ids the rows of [`rules::select_with_sessions`] give.
fn lookups_of(sets: &[Vec<Row>]) -> Result<Lookups, StoreError> {
    let mut lookups = Lookups::default();
    for row in sets.iter().flatten() {
        let robot = row.robot_id("robot_id")?;
        if let std::collections::hash_map::Entry::Vacant(e) = lookups.rules.entry(robot) {
            e.insert(rules::stored_rule(row)?);
        }
        if row.opt_int("status_check_id")?.is_some() {
            lookups.sessions.insert(
                (robot, row.text("local_date")?),
                StatusCheckId::new(row.id("status_check_id")?),
            );
        }
    }
    Ok(lookups)
}

/// Every local date whose session may hold one of the requests' events, whatever the rule:
/// an instant's local date is its UTC date or a day either side (zones lie within ±14 h), and
/// a session that crosses midnight holds instants of the next date too. An event taken as
/// `now` (in the future beyond the grace) is covered by `now`'s dates.
fn candidate_dates(requests: &[&IntakeRequest]) -> Vec<String> {
    let mut dates = std::collections::BTreeSet::new();
    for request in requests {
        for t in [request.occurred_at, request.now] {
            let day = jiff::tz::TimeZone::UTC.to_datetime(t).date();
            for offset in -2..=1 {
                if let Ok(date) = day.checked_add(jiff::Span::new().days(offset)) {
                    dates.insert(date.to_string());
                }
            }
        }
    }
    dates.into_iter().collect()
}

/// What one request needs, decided before any session is read: its record so far and the
/// sessions containing its event.
struct Plan {
    record: IntakeRecord,
    /// The rule, when the event is its robot's watched event.
    rule: Option<StoredRule>,
    sessions: Vec<Session>,
}

impl Plan {
    fn of(request: &IntakeRequest, incoming_event_id: u64, rule: Option<&StoredRule>) -> Plan {
        let mut plan = Plan {
            record: IntakeRecord {
                incoming_event_id,
                occurred_at: request.occurred_at,
                clamped: false,
                found: IntakeFound::NoRule,
            },
            rule: None,
            sessions: Vec::new(),
        };
        let Some(stored) = rule.filter(|s| s.rule.enabled) else {
            return plan;
        };
        if request
            .event_name
            .as_deref()
            .is_some_and(|name| name != stored.rule.watched_event)
        {
            plan.record.found = IntakeFound::OtherEvent;
            return plan;
        }
        if let Ok(limit) = request.now.checked_add(request.grace)
            && plan.record.occurred_at > limit
        {
            plan.record.occurred_at = request.now;
            plan.record.clamped = true;
        }
        plan.sessions = Session::containing(&stored.rule, plan.record.occurred_at).collect();
        plan.record.found = IntakeFound::Sessions(Vec::new());
        plan.rule = Some(stored.clone());
        plan
    }
}

/// One session as the batch has it.
struct SessionInBatch {
    /// As read under the lock.
    read: SessionRow,
    /// As the database would give it back after the batch's events so far.
    current: SessionRow,
    /// Service time of the last event that changed the row.
    changed_at: Option<Timestamp>,
    /// Its pending events, as `drain_pending` would read them; `None` until read.
    pending: Option<BTreeMap<(i64, u64), Pending>>,
    /// Whether the events of the batch it had before the batch are known.
    known_loaded: bool,
}

/// A pending event of a session.
#[derive(Clone, Copy)]
struct Pending {
    event: EventInput,
    /// Its place in [`Batch::new_events`] when this batch inserts it.
    new: Option<usize>,
}

/// A `status_job_event` row to insert.
struct NewEvent {
    status_check_id: StatusCheckId,
    event: EventInput,
    state: &'static str,
    created_at_ms: i64,
}

/// A `status_check_record` row to insert.
struct NewRecord {
    status_check_id: StatusCheckId,
    event: EventInput,
    event_name: String,
    order: u32,
    result: &'static str,
}

#[derive(Default)]
struct Batch {
    /// Whether its sessions are this instance's copies of them, not rows read under their
    /// locks: each is then written, if only to check its version.
    on_copies: bool,
    /// By `(robot_id, local_date)`.
    ids: HashMap<(RobotId, String), StatusCheckId>,
    /// By `status_check_id`.
    sessions: BTreeMap<StatusCheckId, SessionInBatch>,
    /// `(status_check_id, incoming_event_id)` of the events the sessions have.
    known: HashSet<(StatusCheckId, u64)>,
    /// Every incoming event id of the batch.
    event_ids: Vec<u64>,
    new_events: Vec<NewEvent>,
    /// Events stored as pending before the batch that it applied: `(status_check_id,
    /// incoming_event_id, state)`.
    drained: Vec<(StatusCheckId, u64, &'static str)>,
    new_records: Vec<NewRecord>,
}

impl Batch {
    /// A batch decided on this instance's copies, without a read: when every event is its
    /// robot's watched event under the rule guessed from [`RobotCopies`], lies in sessions
    /// that all exist in that guess, and each of those sessions has a copy of that rule's
    /// version with no pending events. Which of the batch's events they have is what this
    /// instance knows of them ([`super::session_copies`]). Writing each session row checks its
    /// version ([`super::session_copies`]): a copy moved on since, a rule changed since (which
    /// moves every running session of its robot on) or an event taken in unseen fails the
    /// transaction before its `COMMIT`, and it runs again from locked reads. `None` (and no
    /// copy taken) when any of this does not hold.
    fn on_copies(tx: &mut Tx, plans: &[Plan], lookups: &Lookups) -> Option<Batch> {
        // The rule version each session's copy must have.
        let mut rule_versions: BTreeMap<StatusCheckId, u64> = BTreeMap::new();
        for plan in plans {
            let stored = plan.rule.as_ref()?;
            if plan.sessions.is_empty() {
                return None;
            }
            for session in &plan.sessions {
                let id = *lookups.sessions.get(&key(session))?;
                rule_versions.insert(id, stored.version);
            }
        }
        let ids: Vec<StatusCheckId> = rule_versions.keys().copied().collect();
        let rows = tx.take_copies(&ids, |row| {
            row.pending_events == 0
                && row.state.is_running()
                && rule_versions.get(&row.status_check_id) == Some(&row.rule_version)
        })?;
        tx.copies.count_batch_on_copies();
        let mut batch = Batch {
            on_copies: true,
            event_ids: distinct(plans.iter().map(|p| p.record.incoming_event_id)),
            ..Batch::default()
        };
        for row in rows {
            let id = row.status_check_id;
            batch.add_session(row);
            if let Some(s) = batch.sessions.get_mut(&id) {
                s.known_loaded = true;
                s.pending = Some(BTreeMap::new());
            }
        }
        let batch_events: HashSet<u64> = batch.event_ids.iter().copied().collect();
        batch.known.extend(
            tx.copies
                .seen_of(&ids)
                .into_iter()
                .filter(|(_, event)| batch_events.contains(event)),
        );
        Some(batch)
    }

    /// Takes in every request, in order, and queues the writes.
    async fn take_in_all(
        mut self,
        tx: &mut Tx,
        plans: Vec<Plan>,
        requests: &[&IntakeRequest],
    ) -> Result<Vec<IntakeRecord>, StoreError> {
        let mut records = Vec::with_capacity(plans.len());
        for (plan, request) in plans.into_iter().zip(requests) {
            records.push(self.take_in(tx, plan, request).await?);
        }
        self.write(tx).await?;
        Ok(records)
    }

    fn add_session(&mut self, row: SessionRow) {
        let id = row.status_check_id;
        self.ids.insert(key(&row.state.session), id);
        self.sessions.insert(
            id,
            SessionInBatch {
                current: row.clone(),
                read: row,
                changed_at: None,
                pending: None,
                known_loaded: false,
            },
        );
    }

    /// Reads the sessions of the plans that exist (`found`) under their row locks, in id
    /// order, which of the batch's events they have, and their pending events, in one round
    /// trip, after `lookup` (statements of [`rules::select_with_sessions`], none when the
    /// rules and ids were just read), whose read it gives back.
    async fn read_sessions(
        &mut self,
        tx: &mut Tx,
        plans: &[Plan],
        found: &HashMap<(RobotId, String), StatusCheckId>,
        lookup: &[(String, Vec<Arg>)],
    ) -> Result<Option<Lookups>, StoreError> {
        self.event_ids = distinct(plans.iter().map(|p| p.record.incoming_event_id));
        let mut ids: Vec<StatusCheckId> =
            distinct(plans.iter().flat_map(|p| p.sessions.iter()).map(key))
                .iter()
                .filter_map(|k| found.get(k).copied())
                .collect();
        ids.sort_unstable();
        let session_columns = qualified(COLUMNS, "s");
        let mut event_chunks = self.event_ids.chunks(IDS_PER_STATEMENT);
        let first_events = event_chunks.next().unwrap_or(&[]);
        let mut statements: Vec<(String, Vec<Arg>)> = lookup.to_vec();
        let mut kinds: Vec<Read> = lookup.iter().map(|_| Read::Lookup).collect();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let of_ids: Vec<Arg> = chunk.iter().map(|&id| Arg::from(id)).collect();
            let marks = repeat("?", chunk.len());
            // Each session under its lock with its pending events and those of the batch's
            // (the first thousand) it has, in one statement: a statement costs MariaDB more
            // than the rows it reads. The events' rows are locked with their session's.
            let mut args: Vec<Arg> = first_events.iter().map(|&id| Arg::from(id)).collect();
            args.extend(of_ids.iter().cloned());
            let batch_events = if first_events.is_empty() {
                String::new()
            } else {
                format!(
                    " OR e.incoming_event_id IN ({})",
                    repeat("?", first_events.len())
                )
            };
            statements.push((
                format!(
                    "SELECT {session_columns}, e.incoming_event_id AS event_id, \
                     e.outgoing_event_id AS event_outgoing_id, \
                     e.occurred_at_ms AS event_occurred_at_ms, e.state AS event_state \
                     FROM status_job_session s LEFT JOIN status_job_event e \
                     ON e.status_check_id = s.status_check_id \
                     AND (e.state = 'pending'{batch_events}) \
                     WHERE s.status_check_id IN ({marks}) ORDER BY s.status_check_id{}",
                    tx.dialect().for_update()
                ),
                args,
            ));
            kinds.push(Read::Sessions);
            for events in event_chunks.clone() {
                let mut args = of_ids.clone();
                args.extend(events.iter().map(|&id| Arg::from(id)));
                statements.push((
                    format!(
                        "SELECT {EVENT_AS_READ} FROM status_job_event \
                         WHERE status_check_id IN ({marks}) AND incoming_event_id IN ({})",
                        repeat("?", events.len())
                    ),
                    args,
                ));
                kinds.push(Read::Events);
            }
        }
        if statements.is_empty() {
            return Ok(None);
        }
        let sets = tx.fetch_each(&statements).await?;
        let looked_up = (!lookup.is_empty())
            .then(|| lookups_of(&sets[..lookup.len()]))
            .transpose()?;
        let batch_events: HashSet<u64> = self.event_ids.iter().copied().collect();
        for (kind, rows) in kinds.into_iter().zip(sets) {
            if let Read::Lookup = kind {
                continue;
            }
            for row in &rows {
                if let Read::Sessions = kind {
                    let id = StatusCheckId::new(row.id("status_check_id")?);
                    if !self.sessions.contains_key(&id) {
                        self.add_session(SessionRow::from_row(row)?);
                        // Everything the session had before the batch is read here.
                        if let Some(s) = self.sessions.get_mut(&id) {
                            s.known_loaded = true;
                            s.pending = Some(BTreeMap::new());
                        }
                    }
                }
                self.add_event_read(row, &batch_events)?;
            }
        }
        Ok(looked_up)
    }

    /// Adds an event read with its session (`event_id`, `event_outgoing_id`,
    /// `event_occurred_at_ms`, `event_state`; all `NULL` for none) to what the batch knows:
    /// one of the batch's events it has, or one of its pending events.
    fn add_event_read(&mut self, row: &Row, batch_events: &HashSet<u64>) -> Result<(), StoreError> {
        if row.opt_int("event_id")?.is_none() {
            return Ok(());
        }
        let status_check_id = StatusCheckId::new(row.id("status_check_id")?);
        let incoming_event_id = row.id("event_id")?;
        if batch_events.contains(&incoming_event_id) {
            self.known.insert((status_check_id, incoming_event_id));
        }
        if row.text("event_state")? != "pending" {
            return Ok(());
        }
        let occurred_at_ms = row.int("event_occurred_at_ms")?;
        let event = EventInput {
            incoming_event_id,
            outgoing_event_id: row
                .opt_int("event_outgoing_id")?
                .map(|_| row.id("event_outgoing_id"))
                .transpose()?,
            occurred_at: ms_to_ts(occurred_at_ms)?,
        };
        if let Some(list) = self
            .sessions
            .get_mut(&status_check_id)
            .and_then(|s| s.pending.as_mut())
        {
            list.insert(
                (occurred_at_ms, incoming_event_id),
                Pending { event, new: None },
            );
        }
        Ok(())
    }

    /// Reads the events of a session started (or found started) during the batch that it has
    /// of the batch's.
    async fn load_known_of(
        &mut self,
        tx: &mut Tx,
        status_check_id: StatusCheckId,
    ) -> Result<(), StoreError> {
        let Some(session) = self.sessions.get_mut(&status_check_id) else {
            return Ok(());
        };
        if session.known_loaded {
            return Ok(());
        }
        session.known_loaded = true;
        for chunk in self.event_ids.chunks(ROWS_PER_STATEMENT) {
            let mut args: Vec<Arg> = vec![status_check_id.into()];
            args.extend(chunk.iter().map(|&id| Arg::from(id)));
            let sql = format!(
                "SELECT status_check_id, incoming_event_id FROM status_job_event \
                 WHERE status_check_id = ? AND incoming_event_id IN ({})",
                repeat("?", chunk.len())
            );
            for row in tx.fetch_all(&sql, &args).await? {
                self.known.insert((
                    StatusCheckId::new(row.id("status_check_id")?),
                    row.id("incoming_event_id")?,
                ));
            }
        }
        Ok(())
    }

    /// Reads the pending events of a session started (or found started) during the batch.
    async fn load_pending_of(
        &mut self,
        tx: &mut Tx,
        status_check_id: StatusCheckId,
    ) -> Result<(), StoreError> {
        if let Some(s) = self.sessions.get_mut(&status_check_id) {
            s.pending.get_or_insert_with(BTreeMap::new);
        }
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT {EVENT_AS_READ} FROM status_job_event \
                     WHERE status_check_id = ? AND state = 'pending'"
                ),
                &[status_check_id.into()],
            )
            .await?;
        for row in &rows {
            self.add_event_read(row, &HashSet::new())?;
        }
        Ok(())
    }

    /// One request, as `take_in` does it alone.
    async fn take_in(
        &mut self,
        tx: &mut Tx,
        plan: Plan,
        request: &IntakeRequest,
    ) -> Result<IntakeRecord, StoreError> {
        let Plan {
            mut record,
            rule,
            sessions,
        } = plan;
        let Some(stored) = rule else {
            return Ok(record);
        };
        let now = request.now;
        let input = EventInput {
            incoming_event_id: record.incoming_event_id,
            outgoing_event_id: request.outgoing_event_id,
            occurred_at: record.occurred_at,
        };
        let mut steps = Vec::new();
        for session in sessions {
            let existing = self.ids.get(&key(&session)).copied();
            let start_attempted = existing.is_none();
            let (status_check_id, started) = match existing {
                Some(id) => (id, false),
                // A session that ended without being started is not evaluated after the fact.
                None if session.end <= now => continue,
                None => {
                    let outcome = transitions::start_session(
                        tx,
                        &stored.rule,
                        stored.version,
                        stored.watching_since,
                        session,
                        &request.owner,
                        request.refs,
                        now,
                    )
                    .await?;
                    let id = outcome.status_check_id();
                    let Some(row) = lock_session(tx, id).await? else {
                        steps.push(SessionStep {
                            session,
                            status_check_id: id,
                            started: false,
                            start_attempted,
                            applied: ApplyOutcome::NoSession,
                            deadline_earlier: false,
                        });
                        continue;
                    };
                    self.add_session(row);
                    let created = matches!(outcome, StartOutcome::Created(_));
                    if created && let Some(s) = self.sessions.get_mut(&id) {
                        // A session made now has neither events nor pending ones.
                        s.known_loaded = true;
                        s.pending = Some(BTreeMap::new());
                    }
                    (id, created)
                }
            };
            self.load_known_of(tx, status_check_id).await?;
            let (applied, deadline_earlier) = self.apply(tx, status_check_id, input, now).await?;
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

    /// [`transitions::apply_event_reporting`] on the session as the batch has it.
    async fn apply(
        &mut self,
        tx: &mut Tx,
        status_check_id: StatusCheckId,
        event: EventInput,
        now: Timestamp,
    ) -> Result<(ApplyOutcome, bool), StoreError> {
        if !self.sessions.contains_key(&status_check_id) {
            return Ok((ApplyOutcome::NoSession, false));
        }
        if !self
            .known
            .insert((status_check_id, event.incoming_event_id))
        {
            return Ok((ApplyOutcome::Duplicate, false));
        }
        let session = self
            .sessions
            .get_mut(&status_check_id)
            .expect("checked above");
        let before = session.current.clone();
        let mut row = session.current.clone();
        let class = row.state.classify(event.occurred_at);
        let occurred_at_ms = ts_to_ms(event.occurred_at);
        self.new_events.push(NewEvent {
            status_check_id,
            event,
            state: event_state(class),
            created_at_ms: ts_to_ms(now),
        });
        let applied = row.state.observe(event.occurred_at);
        debug_assert_eq!(applied, class);
        if class == EventClass::Ahead {
            row.pending_events += 1;
            let stored = EventInput {
                occurred_at: ms_to_ts(occurred_at_ms)?,
                ..event
            };
            let new = Some(self.new_events.len() - 1);
            self.pending_of(tx, status_check_id).await?.insert(
                (occurred_at_ms, event.incoming_event_id),
                Pending { event: stored, new },
            );
        }
        if let Some(result) = record_result(class) {
            self.append_record(&mut row, event, result);
        }
        if class == EventClass::Observed {
            self.drain_pending(tx, &mut row).await?;
        }
        let session = self
            .sessions
            .get_mut(&status_check_id)
            .expect("checked above");
        let earlier = row.state.window.end < before.state.window.end;
        if row != before {
            row.version = before.version + 1;
            session.changed_at = Some(now);
        }
        session.current = row.as_stored();
        Ok((ApplyOutcome::Applied(class), earlier))
    }

    /// The pending events of a session, read first if the batch has not yet.
    async fn pending_of(
        &mut self,
        tx: &mut Tx,
        status_check_id: StatusCheckId,
    ) -> Result<&mut BTreeMap<(i64, u64), Pending>, StoreError> {
        let loaded = self
            .sessions
            .get(&status_check_id)
            .is_some_and(|s| s.pending.is_some());
        if !loaded {
            self.load_pending_of(tx, status_check_id).await?;
        }
        Ok(self
            .sessions
            .get_mut(&status_check_id)
            .and_then(|s| s.pending.as_mut())
            .expect("read above"))
    }

    /// [`transitions::drain_pending`] on the batch's pending events.
    async fn drain_pending(&mut self, tx: &mut Tx, row: &mut SessionRow) -> Result<(), StoreError> {
        if row.pending_events == 0 {
            return Ok(());
        }
        let status_check_id = row.status_check_id;
        let waiting: Vec<((i64, u64), Pending)> = self
            .pending_of(tx, status_check_id)
            .await?
            .iter()
            .map(|(k, p)| (*k, *p))
            .collect();
        for (place, pending) in waiting {
            let class = row.state.observe(pending.event.occurred_at);
            if class == EventClass::Ahead {
                break;
            }
            row.pending_events = row.pending_events.saturating_sub(1);
            if let Some(s) = self.sessions.get_mut(&status_check_id)
                && let Some(list) = s.pending.as_mut()
            {
                list.remove(&place);
            }
            match pending.new {
                Some(i) => self.new_events[i].state = event_state(class),
                None => self.drained.push((
                    status_check_id,
                    pending.event.incoming_event_id,
                    event_state(class),
                )),
            }
            if let Some(result) = record_result(class) {
                self.append_record(row, pending.event, result);
            }
        }
        Ok(())
    }

    fn append_record(&mut self, row: &mut SessionRow, event: EventInput, result: &'static str) {
        row.records += 1;
        self.new_records.push(NewRecord {
            status_check_id: row.status_check_id,
            event,
            event_name: row.watched_event.clone(),
            order: row.records,
            result,
        });
    }

    /// Everything the batch decided, as writes that go to the database with the `COMMIT`: the
    /// session rows first, in id order (decided on copies, their version checks are what
    /// proves the copies current, and they take the sessions' locks before any other row's,
    /// as every transition does), then the events and records.
    async fn write(self, tx: &mut Tx) -> Result<(), StoreError> {
        let saved: Vec<(&SessionRow, &SessionRow, Option<Timestamp>)> = self
            .sessions
            .values()
            .filter(|s| self.on_copies || s.changed_at.is_some())
            .map(|s| (&s.read, &s.current, s.changed_at))
            .collect();
        transitions::save_applied_many(tx, &saved).await?;
        for chunk in self.new_events.chunks(ROWS_PER_STATEMENT) {
            let mut args = Vec::with_capacity(chunk.len() * 6);
            for e in chunk {
                args.extend([
                    e.status_check_id.into(),
                    e.event.incoming_event_id.into(),
                    e.event.outgoing_event_id.into(),
                    ts_to_ms(e.event.occurred_at).into(),
                    e.state.into(),
                    e.created_at_ms.into(),
                ]);
            }
            tx.write(
                &format!(
                    "INSERT INTO status_job_event (status_check_id, incoming_event_id, \
                     outgoing_event_id, occurred_at_ms, state, created_at_ms) VALUES {}",
                    repeat("(?, ?, ?, ?, ?, ?)", chunk.len())
                ),
                &args,
            )
            .await?;
            tx.checkpoint().await?;
        }
        for (status_check_id, incoming_event_id, state) in &self.drained {
            tx.write(
                "UPDATE status_job_event SET state = ? WHERE status_check_id = ? AND incoming_event_id = ?",
                &[(*state).into(), (*status_check_id).into(), (*incoming_event_id).into()],
            )
            .await?;
            tx.checkpoint().await?;
        }
        for chunk in self.new_records.chunks(ROWS_PER_STATEMENT) {
            let mut args = Vec::with_capacity(chunk.len() * 7);
            for r in chunk {
                args.extend([
                    r.status_check_id.into(),
                    r.event.incoming_event_id.into(),
                    r.event.outgoing_event_id.into(),
                    r.event_name.clone().into(),
                    r.order.into(),
                    r.result.into(),
                    ts_to_sql(r.event.occurred_at).into(),
                ]);
            }
            tx.write(
                &format!(
                    "INSERT INTO status_check_record (status_check_id, incoming_event_id, \
                     outgoing_event_id, event_name, `order`, phase, result, created_at) VALUES {}",
                    repeat("(?, ?, ?, ?, ?, 'FUTURE', ?, ?)", chunk.len())
                ),
                &args,
            )
            .await?;
            tx.checkpoint().await?;
        }
        for session in self.sessions.values() {
            tx.keep_copy(session.current.clone());
        }
        tx.keep_seen(self.known);
        Ok(())
    }
}
