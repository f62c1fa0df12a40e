//! Sessions whose step keeps failing, each on a back-off of its own, so that one robot Megazord
//! no longer knows (or one session the database cannot move on) is retried apart from all the
//! others and never holds up another resident's window.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use backon::BackoffBuilder;
use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use super::error::RuntimeError;
use crate::domain::RobotId;
use crate::store::StatusCheckId;

/// The first pause after a failure, in wall-clock time.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between two tries of one session (half of it back-off, up to as much
/// again of jitter).
const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// One session that failed, and when to try it again.
#[derive(Debug, Clone)]
pub struct Failing {
    /// The session's robot.
    pub robot_id: RobotId,
    /// Service time of the first failure in a row.
    pub since: Timestamp,
    /// Failures in a row.
    pub attempts: u32,
    /// Not to be tried before this (wall clock).
    pub retry_at: Instant,
    /// What the last failure was.
    pub last_error: String,
    /// Whether the last failure was a definite refusal ([`RuntimeError::is_definite`]).
    pub definite: bool,
}

impl Failing {
    /// How long (service time) the session has been failing at `now`.
    pub fn failing_for(&self, now: Timestamp) -> SignedDuration {
        now.duration_since(self.since)
    }
}

/// The sessions of one task that are waiting out a back-off, by `K`: the session's
/// `status_check.id`, or whatever else the task knows a session by before it has one (the
/// scheduler: the robot of a session it could not start).
#[derive(Debug)]
pub struct SessionRetries<K = StatusCheckId> {
    failing: HashMap<K, Failing>,
}

impl<K> Default for SessionRetries<K> {
    fn default() -> Self {
        SessionRetries {
            failing: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> SessionRetries<K> {
    /// Whether the session is waiting out its back-off at `at`.
    pub fn waiting(&self, key: K, at: Instant) -> bool {
        self.failing.get(&key).is_some_and(|f| f.retry_at > at)
    }

    /// Records a failure of the session at service time `now`; returns the session's state.
    pub fn failed(
        &mut self,
        key: K,
        robot_id: RobotId,
        error: &RuntimeError,
        now: Timestamp,
    ) -> &Failing {
        let entry = self.failing.entry(key).or_insert(Failing {
            robot_id,
            since: now,
            attempts: 0,
            retry_at: Instant::now(),
            last_error: String::new(),
            definite: false,
        });
        entry.attempts += 1;
        entry.retry_at = Instant::now() + pause(entry.attempts);
        entry.last_error = error.to_string();
        entry.definite = error.is_definite();
        entry
    }

    /// Tries the session again no later than `at` (when something is to be decided then).
    pub fn retry_no_later_than(&mut self, key: K, at: Instant) {
        if let Some(f) = self.failing.get_mut(&key) {
            f.retry_at = f.retry_at.min(at);
        }
    }

    /// Forgets the session (it succeeded, or it ended).
    pub fn forget(&mut self, key: K) -> Option<Failing> {
        self.failing.remove(&key)
    }

    /// The earliest instant a waiting session may be tried again.
    pub fn next_retry(&self) -> Option<Instant> {
        self.failing.values().map(|f| f.retry_at).min()
    }

    /// The failing sessions.
    pub fn iter(&self) -> impl Iterator<Item = (K, &Failing)> {
        self.failing.iter().map(|(id, f)| (*id, f))
    }

    /// How many sessions are failing.
    pub fn len(&self) -> usize {
        self.failing.len()
    }

    /// Keeps only the sessions `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(K, &Failing) -> bool) {
        self.failing.retain(|id, f| keep(*id, f));
    }
}

/// The pause after the `attempts`-th failure in a row: exponential from 1 s to half a minute,
/// plus up to as much again of jitter, so that a robot Megazord keeps refusing is asked about rarely.
fn pause(attempts: u32) -> Duration {
    backon::ExponentialBuilder::default()
        .with_min_delay(FIRST_PAUSE)
        .with_max_delay(LONGEST_PAUSE / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .unwrap_or(LONGEST_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn error() -> RuntimeError {
        RuntimeError::Store(StoreError::Invalid("refused".into()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_session_waits_and_others_do_not() {
        let mut retries: SessionRetries = SessionRetries::default();
        let now = Timestamp::UNIX_EPOCH;
        let failing = retries
            .failed(StatusCheckId::new(1), RobotId::new(8), &error(), now)
            .clone();
        assert_eq!(failing.attempts, 1);
        assert!(retries.waiting(StatusCheckId::new(1), Instant::now()));
        assert!(!retries.waiting(StatusCheckId::new(2), Instant::now()));
        tokio::time::advance(LONGEST_PAUSE * 2).await;
        assert!(!retries.waiting(StatusCheckId::new(1), Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_and_are_bounded_and_the_first_failure_is_kept() {
        let mut retries: SessionRetries = SessionRetries::default();
        let first = Timestamp::UNIX_EPOCH;
        let mut last_pause = Duration::ZERO;
        for attempt in 1..=20u32 {
            let now = first + SignedDuration::from_secs(i64::from(attempt));
            let f = retries
                .failed(StatusCheckId::new(1), RobotId::new(8), &error(), now)
                .clone();
            let wait = f.retry_at - Instant::now();
            assert!(wait <= LONGEST_PAUSE, "attempt {attempt}: {wait:?}");
            if attempt > 10 {
                assert!(wait >= LONGEST_PAUSE / 2, "attempt {attempt}: {wait:?}");
            }
            last_pause = wait;
            assert_eq!(f.since, first + SignedDuration::from_secs(1));
            assert_eq!(
                f.failing_for(now),
                SignedDuration::from_secs(i64::from(attempt) - 1)
            );
        }
        assert!(last_pause > FIRST_PAUSE);
        assert!(retries.forget(StatusCheckId::new(1)).is_some());
        assert_eq!(retries.len(), 0);
    }
}
