//! Copies of what the intake last read of each robot: its rule and the ids of its sessions on
//! the dates it looked at, so that a group commit of events can lock its sessions in its first
//! round trip instead of its second (design §2.5).
//!
//! A copy is only ever a guess. The batch that uses one reads the rules and session ids again
//! in the same round trip as it locks the sessions, and compares: when anything differs (a
//! rule changed, a session was started or removed), it keeps what it read and locks the
//! sessions again by that, so every outcome is the one a batch without copies gives. Nothing
//! here is needed for correctness, only for speed: an empty set of copies gives the same
//! outcomes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::civil::Date;

use super::types::{StatusCheckId, StoredRule};
use crate::domain::RobotId;

/// How many robots keep a copy (about 460 bytes each: 45 MiB for 100,000 robots, measured by
/// filling the set): room for a 100,000-resident installation. When full, the set starts again
/// empty.
const CAPACITY: usize = 131_072;

/// Dates a robot keeps (the intake looks at four around each event's UTC date); the earliest
/// go first.
const DATES_PER_ROBOT: usize = 8;

/// What the intake's read of rules and sessions gives for a batch's robots and dates.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Lookups {
    /// The rules of the robots that have one.
    pub rules: HashMap<RobotId, StoredRule>,
    /// The ids of the sessions that exist, by `(robot_id, local_date)`.
    pub sessions: HashMap<(RobotId, String), StatusCheckId>,
}

/// One robot as last read.
struct RobotCopy {
    rule: Option<StoredRule>,
    /// Each date looked at, with its session's id when it had one, in date order (a few: kept
    /// as dates, not text, as a copy is kept for every robot).
    dates: Vec<(Date, Option<StatusCheckId>)>,
}

impl RobotCopy {
    /// `None` for a date not looked at; `Some(None)` for one looked at without a session.
    fn session_on(&self, date: Date) -> Option<Option<StatusCheckId>> {
        self.dates
            .binary_search_by_key(&date, |(d, _)| *d)
            .ok()
            .map(|at| self.dates[at].1)
    }

    fn set(&mut self, date: Date, id: Option<StatusCheckId>) {
        match self.dates.binary_search_by_key(&date, |(d, _)| *d) {
            Ok(at) => self.dates[at].1 = id,
            Err(at) => self.dates.insert(at, (date, id)),
        }
    }
}

/// `dates` as dates; `None` when one is not a date (they are the intake's own).
fn parsed(dates: &[String]) -> Option<Vec<Date>> {
    dates.iter().map(|d| d.parse().ok()).collect()
}

/// Robots by id, shared by the clones of a [`super::Store`].
#[derive(Clone, Default)]
pub struct RobotCopies {
    robots: Arc<Mutex<HashMap<RobotId, RobotCopy>>>,
}

impl RobotCopies {
    /// What a read of `robots` on `dates` gave when last made, when every robot was read on
    /// every one of those dates.
    pub(crate) fn guess(&self, robots: &[RobotId], dates: &[String]) -> Option<Lookups> {
        let parsed = parsed(dates)?;
        let copies = self.lock();
        let mut lookups = Lookups::default();
        for robot in robots {
            let copy = copies.get(robot)?;
            if let Some(rule) = &copy.rule {
                lookups.rules.insert(*robot, rule.clone());
            }
            for (date, text) in parsed.iter().zip(dates) {
                if let Some(id) = copy.session_on(*date)? {
                    lookups.sessions.insert((*robot, text.clone()), id);
                }
            }
        }
        Some(lookups)
    }

    /// Keeps what a read of `robots` on `dates` gave.
    pub(crate) fn keep(&self, robots: &[RobotId], dates: &[String], read: &Lookups) {
        let Some(parsed) = parsed(dates) else {
            return;
        };
        let mut copies = self.lock();
        for robot in robots {
            if copies.len() >= CAPACITY && !copies.contains_key(robot) {
                copies.clear();
            }
            let copy = copies.entry(*robot).or_insert_with(|| RobotCopy {
                rule: None,
                dates: Vec::new(),
            });
            copy.rule = read.rules.get(robot).cloned();
            for (date, text) in parsed.iter().zip(dates) {
                copy.set(*date, read.sessions.get(&(*robot, text.clone())).copied());
            }
            if copy.dates.len() > DATES_PER_ROBOT {
                let over = copy.dates.len() - DATES_PER_ROBOT;
                copy.dates.drain(..over);
            }
        }
    }

    /// Drops every copy.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RobotId, RobotCopy>> {
        // The map stays valid whatever a panicking holder did.
        self.robots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for RobotCopies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RobotCopies({})", self.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(days: &[u32]) -> Vec<String> {
        days.iter().map(|d| format!("2025-06-{d:02}")).collect()
    }

    #[test]
    fn a_robot_is_guessed_only_on_dates_it_was_read_on() {
        let copies = RobotCopies::default();
        let robot = RobotId::new(7);
        let mut read = Lookups::default();
        read.sessions
            .insert((robot, "2025-06-10".into()), StatusCheckId::new(3));
        copies.keep(&[robot], &dates(&[9, 10]), &read);
        assert_eq!(copies.guess(&[robot], &dates(&[9, 10])), Some(read.clone()));
        assert_eq!(copies.guess(&[robot], &dates(&[10])), Some(read));
        assert_eq!(copies.guess(&[robot], &dates(&[10, 11])), None);
        assert_eq!(copies.guess(&[robot, RobotId::new(8)], &dates(&[10])), None);
    }

    #[test]
    fn a_robot_keeps_its_latest_dates() {
        let copies = RobotCopies::default();
        let robot = RobotId::new(7);
        let all: Vec<u32> = (1..=10).collect();
        copies.keep(&[robot], &dates(&all), &Lookups::default());
        assert_eq!(copies.guess(&[robot], &dates(&[1])), None);
        assert_eq!(copies.guess(&[robot], &dates(&[2])), None);
        assert!(copies.guess(&[robot], &dates(&[3, 10])).is_some());
    }

    #[test]
    fn a_date_read_again_takes_what_was_read_last() {
        let copies = RobotCopies::default();
        let robot = RobotId::new(7);
        copies.keep(&[robot], &dates(&[11, 10]), &Lookups::default());
        let mut started = Lookups::default();
        started
            .sessions
            .insert((robot, "2025-06-10".into()), StatusCheckId::new(3));
        copies.keep(&[robot], &dates(&[10]), &started);
        assert_eq!(copies.guess(&[robot], &dates(&[10, 11])), Some(started));
    }
}
