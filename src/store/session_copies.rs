//! Copies of session rows as this instance last committed them, so that the next transition of
//! a session can be decided without first reading its row under a lock: one statement and one
//! round trip fewer on MySQL, where they are a good part of a transition's cost.
//!
//! A copy is only ever a guess. The transition that uses one writes the session row with
//! `version = CASE WHEN version = <the copy's> THEN <next> ELSE 0 END`, which the
//! `ck_status_job_session_version` check refuses when another transaction (on this instance
//! or another) moved the row on meanwhile: the transaction then fails before its `COMMIT`
//! and runs again from a locked read ([`super::StoreError::is_retryable`]). Nothing here is
//! needed for correctness, only for speed: an empty set of copies gives the same outcomes.
//!
//! Beside each copy, the ids of events its session is known to have (those this instance
//! committed into it or read in it), so that a group commit decided on copies knows a repeated
//! event without reading ([`super::intake_batch`]). Events are never deleted, so these ids are
//! always some of the session's events, never one it lacks; an event the session has that is
//! not among them is taken for new, and its row's primary key refuses it
//! ([`super::StoreError::is_retryable`]): the transaction runs again from a locked read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::session_row::SessionRow;
use super::types::StatusCheckId;

/// A session row with version 0, inserted (and rolled back) to see the version check refuse
/// it. Only a database that does decides transitions on copies: MySQL before 8.0.16 parses
/// `CHECK` and ignores it, a MySQL check can be altered to `NOT ENFORCED`, MariaDB's
/// `check_constraint_checks` and SQLite's `ignore_check_constraints` turn checks off.
pub const VERSION_CHECK_PROBE: &str = "INSERT INTO status_job_session (status_check_id, robot_id, \
     local_date, session_start_ms, session_end_ms, window_start_ms, window_end_ms, \
     window_gap_minutes, gap_minutes, partial_final_window, alarms, result, watched_event, \
     alarm_event, rule_version, owner, created_at_ms, updated_at_ms, version) \
     VALUES (0, 0, 'probe', 0, 0, 0, 0, 0, 0, '', 0, '', '', '', 0, '', 0, 0, 0)";

/// How many sessions keep a copy (a few hundred bytes each): room for every running session of
/// a 100,000-resident installation, some 40 MB, so that a close or event of any of them is
/// decided without the locked read, also when all their windows end at once. When full, the
/// set starts again empty.
const CAPACITY: usize = 131_072;

/// Event ids kept for one session: a session takes in a few events a day, and a robot that
/// sends many more only has its later repeats found by reading (the earliest ids go first).
const SEEN_PER_SESSION: usize = 32;

/// The copies and the event ids known of their sessions.
#[derive(Default)]
struct Kept {
    rows: HashMap<StatusCheckId, SessionRow>,
    /// Ids of events each session has, the latest last (some of them, never one it lacks).
    seen: HashMap<StatusCheckId, Vec<u64>>,
}

/// Session rows by `status_check_id`, shared by the clones of a [`super::Store`].
#[derive(Clone)]
pub struct SessionCopies {
    kept: Arc<Mutex<Kept>>,
    /// False: nothing is kept, and every transition reads its session row under the lock.
    /// Only a database known to enforce the version check may use copies.
    enabled: Arc<AtomicBool>,
    /// Group commits of events decided on copies, for tests to see that they were.
    #[cfg(feature = "testing")]
    batches_on_copies: Arc<std::sync::atomic::AtomicU64>,
}

impl SessionCopies {
    /// An empty set, keeping copies from now on or not.
    pub fn new(enabled: bool) -> Self {
        SessionCopies {
            kept: Arc::default(),
            enabled: Arc::new(AtomicBool::new(enabled)),
            #[cfg(feature = "testing")]
            batches_on_copies: Arc::default(),
        }
    }

    /// Starts or stops keeping copies (stopping drops those kept).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
        if !enabled {
            self.clear();
        }
    }

    /// Whether copies are kept.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Takes the copy of a session out, so that two transactions of this instance never both
    /// decide on it: the second reads the row under the lock instead.
    pub fn take(&self, status_check_id: StatusCheckId) -> Option<SessionRow> {
        self.lock().rows.remove(&status_check_id)
    }

    /// Takes the copies of every session of `ids` out when each has one that `usable`
    /// accepts; otherwise takes none and leaves them all as they were.
    pub fn take_all(
        &self,
        ids: &[StatusCheckId],
        usable: impl Fn(&SessionRow) -> bool,
    ) -> Option<Vec<SessionRow>> {
        let mut kept = self.lock();
        if !ids.iter().all(|id| kept.rows.get(id).is_some_and(&usable)) {
            return None;
        }
        Some(ids.iter().filter_map(|id| kept.rows.remove(id)).collect())
    }

    /// `(status_check_id, incoming_event_id)` of the events of `ids` known to this instance.
    pub fn seen_of(&self, ids: &[StatusCheckId]) -> Vec<(StatusCheckId, u64)> {
        let kept = self.lock();
        ids.iter()
            .filter_map(|id| kept.seen.get(id).map(|events| (id, events)))
            .flat_map(|(id, events)| events.iter().map(|e| (*id, *e)))
            .collect()
    }

    /// Notes events committed into their sessions (or read there): only for sessions with a
    /// running copy, taken out or not, as the ids serve only a transition decided on one.
    pub fn keep_seen(&self, events: impl IntoIterator<Item = (StatusCheckId, u64)>) {
        if !self.enabled() {
            return;
        }
        let mut kept = self.lock();
        for (id, event) in events {
            if !kept.rows.contains_key(&id) && !kept.seen.contains_key(&id) {
                continue;
            }
            if kept.seen.len() >= CAPACITY && !kept.seen.contains_key(&id) {
                kept.seen.clear();
            }
            let ids = kept.seen.entry(id).or_default();
            if ids.contains(&event) {
                continue;
            }
            if ids.len() >= SEEN_PER_SESSION {
                ids.remove(0);
            }
            ids.push(event);
        }
    }

    /// Keeps `row` as committed, unless a newer version is kept already; an ended session
    /// keeps none, as no transition changes it any more.
    pub fn keep(&self, row: SessionRow) {
        if !self.enabled() {
            return;
        }
        let mut kept = self.lock();
        if !row.state.is_running() {
            kept.rows.remove(&row.status_check_id);
            kept.seen.remove(&row.status_check_id);
            return;
        }
        if kept
            .rows
            .get(&row.status_check_id)
            .is_some_and(|copy| copy.version >= row.version)
        {
            return;
        }
        if kept.rows.len() >= CAPACITY && !kept.rows.contains_key(&row.status_check_id) {
            kept.rows.clear();
        }
        kept.rows.insert(row.status_check_id, row);
    }

    /// Counts a group commit of events decided on copies.
    pub fn count_batch_on_copies(&self) {
        #[cfg(feature = "testing")]
        self.batches_on_copies.fetch_add(1, Ordering::Relaxed);
    }

    /// How many group commits of events were decided on copies (committed or not).
    #[cfg(feature = "testing")]
    pub fn batches_on_copies(&self) -> u64 {
        self.batches_on_copies.load(Ordering::Relaxed)
    }

    /// Whether a copy of the session is kept.
    #[cfg(feature = "testing")]
    pub fn holds(&self, status_check_id: StatusCheckId) -> bool {
        self.lock().rows.contains_key(&status_check_id)
    }

    /// Drops every copy and every event id kept.
    pub fn clear(&self) {
        let mut kept = self.lock();
        kept.rows.clear();
        kept.seen.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        // The maps stay valid whatever a panicking holder did.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for SessionCopies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionCopies({})", self.lock().rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Gap, PartialFinalWindow, RobotId, Session, SessionState};

    fn row(id: u64, version: u64) -> SessionRow {
        let start: jiff::Timestamp = "2025-06-10T06:00:00Z".parse().unwrap();
        let session = Session {
            robot_id: RobotId::new(7),
            date: jiff::civil::date(2025, 6, 10),
            start,
            end: start + jiff::SignedDuration::from_hours(12),
        };
        SessionRow {
            status_check_id: StatusCheckId::new(id),
            state: SessionState::begin(session, Gap::DEFAULT, PartialFinalWindow::Ignore),
            watched_event: "TOILET_ACTIVITY".into(),
            alarm_event: "NO_TOILET_ACTIVITY_ALARM".into(),
            rule_version: 1,
            owner: "test".into(),
            pending_events: 0,
            records: 0,
            version,
        }
    }

    #[test]
    fn copies_are_taken_all_together_or_none_is() {
        let copies = SessionCopies::new(true);
        copies.keep(row(1, 1));
        copies.keep(row(2, 3));
        let ids = [StatusCheckId::new(1), StatusCheckId::new(2)];
        // One copy refused: none is taken.
        assert_eq!(copies.take_all(&ids, |r| r.version == 1), None);
        assert_eq!(copies.take_all(&[StatusCheckId::new(3)], |_| true), None);
        let taken = copies.take_all(&ids, |_| true).unwrap();
        assert_eq!(
            taken.iter().map(|r| r.version).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(copies.take_all(&ids, |_| true), None, "taken out");
    }

    #[test]
    fn event_ids_are_kept_for_running_copies_only_and_go_when_the_session_ends() {
        let copies = SessionCopies::new(true);
        let (one, two) = (StatusCheckId::new(1), StatusCheckId::new(2));
        copies.keep(row(1, 1));
        copies.keep_seen([(one, 10), (one, 11), (one, 10), (two, 20)]);
        assert_eq!(copies.seen_of(&[one, two]), vec![(one, 10), (one, 11)]);
        // Taken out, the copy keeps its ids for when it comes back.
        copies.take(one);
        copies.keep_seen([(one, 12)]);
        assert_eq!(
            copies.seen_of(&[one]),
            vec![(one, 10), (one, 11), (one, 12)]
        );
        // A session has only its latest ids kept.
        copies.keep_seen((100..100 + SEEN_PER_SESSION as u64).map(|e| (one, e)));
        let kept = copies.seen_of(&[one]);
        assert_eq!(kept.len(), SEEN_PER_SESSION);
        assert_eq!(kept[0], (one, 100));
        let mut ended = row(1, 2);
        ended.state.disable();
        copies.keep(ended);
        assert_eq!(copies.seen_of(&[one]), vec![]);
    }
}
