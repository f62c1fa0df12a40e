//! Claims on due windows: several instances on one database share the due windows, each
//! window claimed by one of them at a time; a claim that ended is anybody's to take.

use std::collections::BTreeSet;

use super::support::{TestDb, rule, started, ts};
use azi3_status_jobs::domain::RobotId;
use azi3_status_jobs::store::{CloseOutcome, StatusCheckId, Store};
use jiff::civil::date;

/// Robots 1..=`robots`, each with a running session on 2025-06-01 (08:00–20:00 in Amsterdam,
/// gap 2 h): every first window ends at 08:00Z.
async fn sessions(store: &Store, robots: u32) -> Vec<StatusCheckId> {
    let mut ids = Vec::new();
    for robot in 1..=robots {
        let mut each = rule("08:00", "20:00", "2h");
        each.robot_id = RobotId::new(robot);
        ids.push(started(store, &each, date(2025, 6, 1)).await.0);
    }
    ids
}

fn ids_of(windows: &[azi3_status_jobs::store::DueWindow]) -> BTreeSet<StatusCheckId> {
    windows.iter().map(|w| w.status_check_id).collect()
}

#[tokio::test]
async fn a_due_window_is_one_instances_until_its_claim_ends() {
    for db in TestDb::both().await {
        let all: BTreeSet<StatusCheckId> = sessions(&db.store, 4).await.into_iter().collect();
        let (deadline, until) = (ts("2025-06-01T08:00:00Z"), ts("2025-06-01T08:05:00Z"));

        assert!(
            db.store
                .claim_due_windows(ts("2025-06-01T07:59:59Z"), 10, "a", until)
                .await
                .unwrap()
                .windows
                .is_empty(),
            "{}: claimed before the deadline",
            db.name
        );
        let a = db
            .store
            .claim_due_windows(deadline, 10, "a", until)
            .await
            .unwrap()
            .windows;
        assert_eq!(ids_of(&a), all, "{}", db.name);
        assert!(a.iter().all(|w| w.deadline == deadline), "{}", db.name);
        assert!(
            db.store
                .claim_due_windows(deadline, 10, "b", until)
                .await
                .unwrap()
                .windows
                .is_empty(),
            "{}: b took windows a holds",
            db.name
        );
        // a holds its windows after its claim ended, until somebody takes them.
        let later = ts("2025-06-01T08:10:00Z");
        let again = db
            .store
            .claim_due_windows(later, 10, "a", ts("2025-06-01T08:30:00Z"))
            .await
            .unwrap()
            .windows;
        assert_eq!(ids_of(&again), all, "{}", db.name);
        // The claim ended: b takes them, the earliest first when it asks for fewer, and hears
        // that more may be due; a no longer holds what b took.
        let first = *all.first().unwrap();
        let claimed = db
            .store
            .claim_due_windows(later, 1, "b", ts("2025-06-01T08:30:00Z"))
            .await
            .unwrap();
        assert!(claimed.more_due, "{}", db.name);
        assert_eq!(
            ids_of(&claimed.windows),
            BTreeSet::from([first]),
            "{}",
            db.name
        );
        let a = db
            .store
            .claim_due_windows(later, 10, "a", ts("2025-06-01T08:30:00Z"))
            .await
            .unwrap();
        assert!(!a.more_due, "{}", db.name);
        assert_eq!(
            ids_of(&a.windows),
            all.iter().copied().filter(|id| *id != first).collect(),
            "{}",
            db.name
        );
        // Another instance takes what a still holds after its claims ended (a has fallen
        // behind), but not what b claimed just now.
        let c = db
            .store
            .claim_due_windows(later, 10, "c", ts("2025-06-01T08:30:00Z"))
            .await
            .unwrap()
            .windows;
        assert_eq!(ids_of(&c), ids_of(&a.windows), "{}", db.name);
        assert!(
            db.store
                .claim_due_windows(later, 10, "a", ts("2025-06-01T08:30:00Z"))
                .await
                .unwrap()
                .windows
                .is_empty(),
            "{}: a still holds windows c took",
            db.name
        );

        // A closed window's session is claimed again when its next window is due.
        let closing = first;
        let closed = db
            .store
            .close_window(closing, deadline, later)
            .await
            .unwrap();
        let CloseOutcome::Closed {
            next: Some(next), ..
        } = closed
        else {
            panic!("{}: {closed:?}", db.name);
        };
        let next_due = db
            .store
            .claim_due_windows(next.end, 10, "c", ts("2025-06-01T10:05:00Z"))
            .await
            .unwrap()
            .windows;
        assert!(
            next_due.iter().any(|w| w.status_check_id == closing
                && w.deadline == next.end
                && w.window_start == deadline),
            "{}: {next_due:?}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn two_instances_claiming_at_once_share_the_due_windows_without_overlap() {
    for db in TestDb::both().await {
        let all: BTreeSet<StatusCheckId> = sessions(&db.store, 60).await.into_iter().collect();
        let other = db.another_instance().await;
        let now = ts("2025-06-01T08:00:30Z");
        let until = ts("2025-06-01T08:05:00Z");
        let (a, b) = tokio::join!(
            db.store.claim_due_windows(now, 100, "a", until),
            other.claim_due_windows(now, 100, "b", until)
        );
        let (a, b) = (ids_of(&a.unwrap().windows), ids_of(&b.unwrap().windows));
        assert!(
            a.is_disjoint(&b),
            "{}: both claimed {:?}",
            db.name,
            a.intersection(&b).collect::<Vec<_>>()
        );
        let union: BTreeSet<StatusCheckId> = a.union(&b).copied().collect();
        assert_eq!(union, all, "{}: a {} and b {}", db.name, a.len(), b.len());
        other.close().await;
        db.finish().await;
    }
}

/// The closer claims the windows about to end a moment before they do: those due by the
/// horizon are claimed, none after it, and another instance's claim still counts until it
/// ends by the clock (`now`), not by the horizon.
#[tokio::test]
async fn windows_about_to_end_are_claimed_before_their_deadline_by_the_clock_of_now() {
    for db in TestDb::both().await {
        let all: BTreeSet<StatusCheckId> = sessions(&db.store, 4).await.into_iter().collect();
        let deadline = ts("2025-06-01T08:00:00Z");
        let before = ts("2025-06-01T07:59:45Z");
        let not_yet = db
            .store
            .claim_windows_due_by(before, ts("2025-06-01T07:59:59Z"), 10, "a", deadline)
            .await
            .unwrap();
        assert!(not_yet.windows.is_empty(), "{}: {not_yet:?}", db.name);

        // `b` holds every window until 07:59:50, five seconds after `a` looks ahead.
        let b = db
            .store
            .claim_windows_due_by(before, deadline, 10, "b", ts("2025-06-01T07:59:50Z"))
            .await
            .unwrap()
            .windows;
        assert_eq!(ids_of(&b), all, "{}: b looking ahead", db.name);
        assert!(b.iter().all(|w| w.deadline == deadline), "{}", db.name);
        let while_held = db
            .store
            .claim_windows_due_by(before, deadline, 10, "a", ts("2025-06-01T08:05:00Z"))
            .await
            .unwrap();
        assert!(
            while_held.windows.is_empty(),
            "{}: a took windows b holds until after now: {while_held:?}",
            db.name
        );
        let after_b = db
            .store
            .claim_windows_due_by(
                ts("2025-06-01T07:59:50Z"),
                deadline,
                10,
                "a",
                ts("2025-06-01T08:05:00Z"),
            )
            .await
            .unwrap()
            .windows;
        assert_eq!(ids_of(&after_b), all, "{}: a once b's claim ended", db.name);
        db.finish().await;
    }
}
