//! Alarms handed from the closer to the dispatcher: claimed by this instance in the very
//! transaction that closed their windows, so that their posts start the moment it commits,
//! without a claim transaction of their own (design §2.15).
//!
//! The queue is bounded: while it is full the closer writes alarms unclaimed, for the
//! dispatcher to claim from the store as before. An alarm that waited here for longer than
//! half its lease is given back to the store rather than posted late under a claim that may
//! be running out ([`Handoff::take`] says which). Once the dispatcher has stopped the queue is
//! closed ([`Handoff::close`]): a close committing after that gets its alarms back to give
//! them back to the store, instead of leaving them claimed until their lease ends.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};

use crate::store::OutboxAlarm;

/// How many claimed alarms may wait for a posting slot: enough for every window of 65,536
/// sessions ending at once (some 20 MB), beyond which the alarms are claimed from the store.
pub const CAPACITY: usize = 65_536;

/// An alarm claimed at `claimed_at` (service time), waiting for a posting slot.
#[derive(Debug, Clone)]
pub struct Handed {
    /// The outbox row, as the close wrote it.
    pub alarm: OutboxAlarm,
    /// When the claim was made (the close's service time).
    pub claimed_at: Timestamp,
}

/// The queue between the closer and the dispatcher.
#[derive(Debug, Default)]
pub struct Handoff {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Handed>,
    /// Set once the dispatcher stopped taking from the queue.
    closed: bool,
}

/// What [`Handoff::take`] found.
#[derive(Debug, Default)]
pub struct Taken {
    /// Alarms whose claim is fresh enough to post under.
    pub fresh: Vec<OutboxAlarm>,
    /// Alarms that waited too long: to be given back to the store.
    pub stale: Vec<OutboxAlarm>,
}

impl Handoff {
    /// Whether the closer may claim more alarms for this queue: it is open and not full.
    pub fn has_room(&self) -> bool {
        let queue = self.lock();
        !queue.closed && queue.waiting.len() < CAPACITY
    }

    /// How many alarms wait.
    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues alarms claimed at `claimed_at`; gives them back when the queue is closed (the
    /// dispatcher has stopped: nobody would post them).
    pub fn push(
        &self,
        alarms: Vec<OutboxAlarm>,
        claimed_at: Timestamp,
    ) -> Result<(), Vec<OutboxAlarm>> {
        let mut queue = self.lock();
        if queue.closed {
            return Err(alarms);
        }
        queue
            .waiting
            .extend(alarms.into_iter().map(|alarm| Handed { alarm, claimed_at }));
        Ok(())
    }

    /// Takes up to `limit` fresh alarms, oldest first, and every stale one met on the way: an
    /// alarm is stale once it has waited for half the `lease` (at `now`).
    pub fn take(&self, limit: usize, now: Timestamp, lease: SignedDuration) -> Taken {
        let mut taken = Taken::default();
        let mut queue = self.lock();
        while taken.fresh.len() < limit {
            let Some(handed) = queue.waiting.pop_front() else {
                break;
            };
            if now.duration_since(handed.claimed_at) > lease / 2 {
                taken.stale.push(handed.alarm);
            } else {
                taken.fresh.push(handed.alarm);
            }
        }
        taken
    }

    /// Closes the queue (the dispatcher is stopping) and takes every waiting alarm.
    pub fn close(&self) -> Vec<OutboxAlarm> {
        let mut queue = self.lock();
        queue.closed = true;
        queue.waiting.drain(..).map(|handed| handed.alarm).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AlarmIdentity;
    use crate::domain::RobotId;
    use crate::store::{AlarmId, StatusCheckId};

    fn alarm(id: u64) -> OutboxAlarm {
        OutboxAlarm {
            id: AlarmId::new(id),
            status_check_id: StatusCheckId::new(id),
            identity: AlarmIdentity {
                robot_id: RobotId::new(1),
                date: "2026-03-01".parse().unwrap(),
                window_start: "2026-03-01T08:00:00Z".parse().unwrap(),
            },
            window_end: "2026-03-01T10:00:00Z".parse().unwrap(),
            reference_id: format!("nta-{id}"),
            alarm_event: "NO_TOILET_ACTIVITY_ALARM".into(),
            state: "sending".into(),
            attempts: 1,
            last_error: None,
            megazord_incoming_id: None,
        }
    }

    #[test]
    fn takes_oldest_first_up_to_the_limit() {
        let handoff = Handoff::default();
        let at: Timestamp = "2026-03-01T10:00:30Z".parse().unwrap();
        handoff
            .push(vec![alarm(1), alarm(2), alarm(3)], at)
            .unwrap();
        let taken = handoff.take(2, at, SignedDuration::from_secs(60));
        let ids: Vec<u64> = taken.fresh.iter().map(|a| a.id.get()).collect();
        assert_eq!(ids, [1, 2]);
        assert!(taken.stale.is_empty());
        assert_eq!(handoff.len(), 1);
    }

    #[test]
    fn an_alarm_that_waited_half_its_lease_is_stale() {
        let handoff = Handoff::default();
        let at: Timestamp = "2026-03-01T10:00:30Z".parse().unwrap();
        handoff.push(vec![alarm(1)], at).unwrap();
        handoff
            .push(vec![alarm(2)], at + SignedDuration::from_secs(20))
            .unwrap();
        let now = at + SignedDuration::from_secs(31);
        let taken = handoff.take(8, now, SignedDuration::from_secs(60));
        assert_eq!(
            taken.stale.iter().map(|a| a.id.get()).collect::<Vec<_>>(),
            [1]
        );
        assert_eq!(
            taken.fresh.iter().map(|a| a.id.get()).collect::<Vec<_>>(),
            [2]
        );
        assert!(handoff.is_empty());
    }

    #[test]
    fn the_queue_has_room_until_it_is_full_or_closed() {
        let handoff = Handoff::default();
        let at: Timestamp = "2026-03-01T10:00:30Z".parse().unwrap();
        handoff
            .push((0..CAPACITY as u64 - 1).map(alarm).collect(), at)
            .unwrap();
        assert!(handoff.has_room());
        handoff.push(vec![alarm(0)], at).unwrap();
        assert!(!handoff.has_room());
        assert_eq!(handoff.close().len(), CAPACITY);
        assert!(!handoff.has_room(), "a closed queue takes no more");
        let refused = handoff.push(vec![alarm(7)], at).unwrap_err();
        assert_eq!(refused.iter().map(|a| a.id.get()).collect::<Vec<_>>(), [7]);
        assert!(handoff.is_empty());
    }
}
