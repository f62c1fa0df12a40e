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

/// Session rows by `status_check_id`, shared by the clones of a [`super::Store`].
#[derive(Clone)]
pub struct SessionCopies {
    rows: Arc<Mutex<HashMap<StatusCheckId, SessionRow>>>,
    /// False: nothing is kept, and every transition reads its session row under the lock.
    /// Only a database known to enforce the version check may use copies.
    enabled: Arc<AtomicBool>,
}

impl SessionCopies {
    /// An empty set, keeping copies from now on or not.
    pub fn new(enabled: bool) -> Self {
        SessionCopies {
            rows: Arc::default(),
            enabled: Arc::new(AtomicBool::new(enabled)),
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
        self.lock().remove(&status_check_id)
    }

    /// Keeps `row` as committed, unless a newer version is kept already; an ended session
    /// keeps none, as no transition changes it any more.
    pub fn keep(&self, row: SessionRow) {
        if !self.enabled() {
            return;
        }
        let mut copies = self.lock();
        if !row.state.is_running() {
            copies.remove(&row.status_check_id);
            return;
        }
        if copies
            .get(&row.status_check_id)
            .is_some_and(|kept| kept.version >= row.version)
        {
            return;
        }
        if copies.len() >= CAPACITY && !copies.contains_key(&row.status_check_id) {
            copies.clear();
        }
        copies.insert(row.status_check_id, row);
    }

    /// Whether a copy of the session is kept.
    #[cfg(feature = "testing")]
    pub fn holds(&self, status_check_id: StatusCheckId) -> bool {
        self.lock().contains_key(&status_check_id)
    }

    /// Drops every copy.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StatusCheckId, SessionRow>> {
        // The map stays valid whatever a panicking holder did.
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for SessionCopies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionCopies({})", self.lock().len())
    }
}
