//! Group commit of ingested events, on SQLite and on MariaDB: events taken in together give
//! exactly the outcomes and rows they give one at a time; an event that fails its batch fails
//! alone; a caller that stops waiting changes nothing for its batch.

use super::support::{
    ALL_TABLES, DATABASE_CLOCK_COLUMNS, TestDb, refs, rule, snapshot_masked, started, ts,
};
use azi3_status_jobs::domain::{RobotId, Rule};
use azi3_status_jobs::store::{
    ApplyOutcome, EventIdSource, GroupCommitSettings, IntakeFound, IntakeRecord, IntakeRequest,
    StatusCheckRefs, Store, StoreError, named_event_id,
};
use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Robots whose sessions run before the events arrive.
const RUNNING: [RobotId; 3] = [RobotId::new(7), RobotId::new(8), RobotId::new(11)];
/// A robot with a rule whose session the events start.
const NOT_STARTED: RobotId = RobotId::new(12);
/// A robot without a rule.
const NO_RULE: RobotId = RobotId::new(99);

/// The service time the events are taken in at (the session runs 06:00Z–20:00Z).
fn now() -> Timestamp {
    ts("2025-06-10T19:30:00Z")
}

fn rule_of(robot_id: RobotId) -> Rule {
    let mut rule = rule("08:00", "22:00", "60");
    rule.robot_id = robot_id;
    rule
}

fn request(
    refs: StatusCheckRefs,
    robot_id: RobotId,
    id: u64,
    name: &str,
    at: Timestamp,
) -> IntakeRequest {
    IntakeRequest {
        robot_id,
        event_id: EventIdSource::Known(id),
        outgoing_event_id: Some(id + 10_000),
        event_name: Some(name.to_string()),
        occurred_at: at,
        now: now(),
        grace: SignedDuration::from_secs(30),
        owner: "azi3-status-jobs:test".to_string(),
        refs,
    }
}

/// The watched event `id` of `robot` at `hms` (UTC) on the day the sessions run.
fn watched(refs: StatusCheckRefs, robot_id: RobotId, id: u64, hms: &str) -> IntakeRequest {
    request(
        refs,
        robot_id,
        id,
        "TOILET_ACTIVITY",
        ts(&format!("2025-06-10T{hms}Z")),
    )
}

/// Rules for every robot but [`NO_RULE`], and the sessions of [`RUNNING`] started.
async fn prepare(store: &Store) -> StatusCheckRefs {
    for robot in RUNNING {
        started(store, &rule_of(robot), date(2025, 6, 10)).await;
    }
    store
        .set_rule(&rule_of(NOT_STARTED), ts("2025-01-01T00:00:00Z"))
        .await
        .unwrap();
    refs(store).await
}

/// A stream of events over the robots: distinct ids at spread instants, some delivered twice,
/// some of another name, some for a robot without a rule.
fn stream(refs: StatusCheckRefs) -> Vec<IntakeRequest> {
    let robots = [RUNNING[0], RUNNING[1], RUNNING[2], NOT_STARTED, NO_RULE];
    let start = ts("2025-06-10T06:05:00Z");
    let mut events: Vec<IntakeRequest> = (0..30u64)
        .map(|i| {
            let robot = robots[usize::try_from(i).expect("i is below 30") % robots.len()];
            let at =
                start + SignedDuration::from_mins(i64::try_from(i * 37 % 780).expect("below 780"));
            let name = if i % 11 == 5 {
                "DOOR_OPENED"
            } else {
                "TOILET_ACTIVITY"
            };
            request(refs, robot, 1000 + i, name, at)
        })
        .collect();
    // 10 % delivered twice.
    let again: Vec<IntakeRequest> = events.iter().step_by(10).cloned().collect();
    events.extend(again);
    events
}

/// Takes every request in at once (they share batches), in the given order.
async fn together(store: &Store, requests: &[IntakeRequest]) -> Vec<Result<IntakeRecord, String>> {
    let handles: Vec<_> = requests
        .iter()
        .cloned()
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move { store.take_in(r).await.map_err(|e| e.to_string()) })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Takes every request in alone, in a transaction of its own with the statements of one
/// event, each answered before the next is submitted.
async fn one_at_a_time(
    store: &Store,
    requests: &[IntakeRequest],
) -> Vec<Result<IntakeRecord, String>> {
    let mut out = Vec::new();
    for r in requests {
        out.push(
            store
                .take_in_alone(r.clone())
                .await
                .map_err(|e| e.to_string()),
        );
    }
    out
}

async fn rows(store: &Store) -> Vec<String> {
    // Auto-increment ids of rows written by different committers may come in another order.
    let mut masked = DATABASE_CLOCK_COLUMNS.to_vec();
    masked.push("id");
    snapshot_masked(store, ALL_TABLES, &masked).await
}

#[tokio::test]
async fn a_shuffled_stream_with_duplicates_has_the_outcomes_of_one_at_a_time() {
    let mut runner = TestRunner::deterministic();
    for case in 0..3 {
        let batched = TestDb::both().await;
        let alone = TestDb::both().await;
        for (b, a) in batched.into_iter().zip(alone) {
            let refs_b = prepare(&b.store).await;
            let refs_a = prepare(&a.store).await;
            assert_eq!(refs_a, refs_b);
            let order = Just(stream(refs_b))
                .prop_shuffle()
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let got = together(&b.store, &order).await;
            let want = one_at_a_time(&a.store, &order).await;
            for ((r, g), w) in order.iter().zip(&got).zip(&want) {
                assert_eq!(
                    g, w,
                    "{} case {case}: robot {} event {:?}",
                    b.name, r.robot_id, r.event_id
                );
            }
            assert!(got.iter().all(Result::is_ok), "{}: {got:?}", b.name);
            assert!(
                got.iter().any(|r| matches!(&r.as_ref().unwrap().found,
                    IntakeFound::Sessions(s) if s.iter().any(|s| s.applied == ApplyOutcome::Duplicate))),
                "the stream has duplicates"
            );
            assert_eq!(
                rows(&b.store).await,
                rows(&a.store).await,
                "{} case {case}",
                b.name
            );
            b.finish().await;
            a.finish().await;
        }
    }
}

#[tokio::test]
async fn an_event_that_fails_its_batch_fails_alone() {
    for db in TestDb::both().await {
        // One committer, so that every event lands in the same batch.
        assert!(db.store.set_group_commit(GroupCommitSettings {
            max_batch: 256,
            mysql_committers: 1,
        }));
        let refs = prepare(&db.store).await;
        // A rule no instance would write: reading it fails, for that robot's events only.
        db.store
            .execute_sql(
                "UPDATE status_job_rule SET timezone = 'Mars/Olympus_Mons' WHERE robot_id = ?",
                &[RUNNING[1].into()],
            )
            .await
            .unwrap();
        let at = ts("2025-06-10T06:30:00Z");
        let requests = vec![
            request(refs, RUNNING[0], 1, "TOILET_ACTIVITY", at),
            request(refs, RUNNING[1], 2, "TOILET_ACTIVITY", at),
            request(refs, RUNNING[2], 3, "TOILET_ACTIVITY", at),
        ];
        let got = together(&db.store, &requests).await;
        assert!(got[1].is_err(), "{}: {got:?}", db.name);
        for i in [0, 2] {
            let record = got[i].as_ref().unwrap();
            assert!(
                matches!(&record.found, IntakeFound::Sessions(s)
                    if s.len() == 1 && matches!(s[0].applied, ApplyOutcome::Applied(_))),
                "{}: {record:?}",
                db.name
            );
        }
        // Committed: taken in again, they are duplicates.
        let again = one_at_a_time(&db.store, &[requests[0].clone(), requests[2].clone()]).await;
        for record in again {
            assert!(
                matches!(&record.unwrap().found, IntakeFound::Sessions(s)
                    if s[0].applied == ApplyOutcome::Duplicate),
                "{}",
                db.name
            );
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn a_caller_that_stops_waiting_does_not_break_its_batch() {
    for db in TestDb::both().await {
        assert!(db.store.set_group_commit(GroupCommitSettings {
            max_batch: 256,
            mysql_committers: 1,
        }));
        let refs = prepare(&db.store).await;
        let at = ts("2025-06-10T06:30:00Z");
        let requests: Vec<IntakeRequest> = RUNNING
            .iter()
            .enumerate()
            .map(|(i, robot)| request(refs, *robot, 10 + i as u64, "TOILET_ACTIVITY", at))
            .collect();
        let handles: Vec<_> = requests
            .iter()
            .cloned()
            .map(|r| {
                let store = db.store.clone();
                tokio::spawn(async move { store.take_in(r).await })
            })
            .collect();
        // Every caller has submitted; the second one goes away (its request was dropped).
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        handles[1].abort();
        let mut answers: Vec<Result<Result<IntakeRecord, StoreError>, _>> = Vec::new();
        for h in handles {
            answers.push(h.await);
        }
        for i in [0, 2] {
            let record = answers[i].as_ref().unwrap().as_ref().unwrap();
            assert!(
                matches!(&record.found, IntakeFound::Sessions(s)
                    if matches!(s[0].applied, ApplyOutcome::Applied(_))),
                "{}: {record:?}",
                db.name
            );
        }
        // Every event of the batch was committed, the abandoned one too.
        let again = one_at_a_time(&db.store, &requests).await;
        for record in again {
            assert!(
                matches!(&record.unwrap().found, IntakeFound::Sessions(s)
                    if s[0].applied == ApplyOutcome::Duplicate),
                "{}",
                db.name
            );
        }
        db.finish().await;
    }
}

/// One batch of every kind of event, over one session and several: observed events that move
/// the window and apply the pending ones they reach (waiting since before the batch or from
/// within it, two at the same millisecond), two events within one millisecond (the database
/// keeps whole milliseconds), late, ahead and clamped events, duplicates of
/// events taken before the batch and within it, an event that starts its robot's session,
/// and events of no rule, of another name and of no session.
fn mixed_batch(refs: StatusCheckRefs) -> Vec<IntakeRequest> {
    let at = |t: &str| ts(&format!("2025-06-10T{t}Z"));
    let [a, b, c] = RUNNING;
    let r = |robot, id, t: Timestamp| request(refs, robot, id, "TOILET_ACTIVITY", t);
    vec![
        r(a, 1, at("06:30:00")),
        r(b, 2, at("09:00:00")),
        r(a, 3, at("08:00:00")),
        r(a, 4, at("06:10:00")),
        r(a, 1, at("06:30:00")),
        r(b, 501, at("06:20:00")),
        r(NOT_STARTED, 5, at("07:00:00")),
        r(a, 6, at("07:15:00")),
        r(c, 8, at("10:00:00.000900")),
        r(c, 7, at("10:00:00.000100")),
        r(NOT_STARTED, 9, at("06:59:00")),
        r(a, 10, at("08:30:00.250")),
        r(a, 11, at("09:20:00")),
        r(a, 12, at("12:00:00")),
        r(a, 13, at("10:45:00")),
        r(c, 14, at("06:40:00")),
        r(c, 15, at("07:30:00")),
        r(c, 16, at("08:25:00")),
        r(c, 17, at("09:10:00.999999")),
        r(NO_RULE, 18, at("07:00:00")),
        request(refs, b, 19, "DOOR_OPENED", at("07:00:00")),
        r(b, 20, at("21:00:00")),
        r(b, 21, at("19:45:00")),
        r(b, 2, at("09:00:00")),
        r(NOT_STARTED, 5, at("07:00:00")),
        r(a, 500, at("11:30:00")),
        // Stored in whole milliseconds: the window starts at 06:50:00.000 for the next event.
        r(b, 22, at("06:50:00.000900")),
        r(b, 23, at("06:50:00.000500")),
    ]
}

/// Events taken in and committed before the batch: one waiting (pending), one observed.
fn before_batch(refs: StatusCheckRefs) -> Vec<IntakeRequest> {
    vec![
        request(
            refs,
            RUNNING[0],
            500,
            "TOILET_ACTIVITY",
            ts("2025-06-10T11:30:00Z"),
        ),
        request(
            refs,
            RUNNING[1],
            501,
            "TOILET_ACTIVITY",
            ts("2025-06-10T06:20:00Z"),
        ),
    ]
}

#[tokio::test]
async fn a_batch_of_every_kind_of_event_ends_as_the_events_one_by_one() {
    let mut runner = TestRunner::deterministic();
    for case in 0..3 {
        let batched = TestDb::both().await;
        let alone = TestDb::both().await;
        for (b, a) in batched.into_iter().zip(alone) {
            let refs = prepare(&b.store).await;
            assert_eq!(prepare(&a.store).await, refs);
            for r in before_batch(refs) {
                b.store.take_in_alone(r.clone()).await.unwrap();
                a.store.take_in_alone(r).await.unwrap();
            }
            // The first case in the order written; the others shuffled.
            let order = if case == 0 {
                mixed_batch(refs)
            } else {
                Just(mixed_batch(refs))
                    .prop_shuffle()
                    .new_tree(&mut runner)
                    .unwrap()
                    .current()
            };
            let got = b.store.take_in_as_one_batch(order.clone()).await.unwrap();
            let want = one_at_a_time(&a.store, &order).await;
            for ((r, g), w) in order.iter().zip(&got).zip(&want) {
                assert_eq!(
                    Ok(g),
                    w.as_ref(),
                    "{} case {case}: robot {} event {:?} at {}",
                    b.name,
                    r.robot_id,
                    r.event_id,
                    r.occurred_at
                );
            }
            assert_eq!(
                rows(&b.store).await,
                rows(&a.store).await,
                "{} case {case}",
                b.name
            );
            if case == 0 {
                let classes = |want: &[ApplyOutcome]| {
                    want.iter().all(|w| {
                        got.iter().any(|r| {
                            matches!(&r.found, IntakeFound::Sessions(s) if s.iter().any(|s| s.applied == *w))
                        })
                    })
                };
                use azi3_status_jobs::domain::EventClass::{Ahead, Late, Observed};
                assert!(
                    classes(&[
                        ApplyOutcome::Duplicate,
                        ApplyOutcome::Applied(Observed),
                        ApplyOutcome::Applied(Late),
                        ApplyOutcome::Applied(Ahead),
                    ]),
                    "{}: {got:#?}",
                    b.name
                );
                assert!(got.iter().any(|r| r.clamped), "{}", b.name);
                assert!(
                    got.iter()
                        .any(|r| matches!(&r.found, IntakeFound::Sessions(s)
                        if s.iter().any(|s| s.started))),
                    "{}",
                    b.name
                );
            }
            b.finish().await;
            a.finish().await;
        }
    }
}

#[tokio::test]
async fn event_ids_in_a_batch_are_those_the_events_get_alone() {
    for db in TestDb::both().await {
        let refs = prepare(&db.store).await;
        let at = ts("2025-06-10T06:30:00Z");
        let posted = |robot, id: Option<&str>| IntakeRequest {
            event_id: EventIdSource::External(id.map(str::to_string)),
            outgoing_event_id: None,
            ..request(refs, robot, 0, "TOILET_ACTIVITY", at)
        };
        let first = db
            .store
            .take_in_alone(posted(RUNNING[0], Some("sensor-a")))
            .await
            .unwrap();
        // Ids are compared byte for byte, on both databases: another case is another event.
        let other_case = db.store.event_id(Some("SENSOR-A")).await.unwrap();
        assert_ne!(other_case, first.incoming_event_id, "{}", db.name);
        assert_eq!(
            first.incoming_event_id,
            named_event_id("sensor-a"),
            "{}",
            db.name
        );
        let got = db
            .store
            .take_in_as_one_batch(vec![
                posted(RUNNING[1], Some("sensor-b")),
                posted(RUNNING[0], Some("sensor-a")),
                posted(RUNNING[1], Some("sensor-b")),
                posted(RUNNING[2], None),
                posted(RUNNING[2], None),
                posted(RUNNING[2], Some("4711")),
                posted(RUNNING[2], Some("SENSOR-A")),
            ])
            .await
            .unwrap();
        assert_eq!(got[6].incoming_event_id, other_case, "{}", db.name);
        let ids: Vec<u64> = got.iter().map(|r| r.incoming_event_id).collect();
        assert_eq!(ids[1], first.incoming_event_id, "{}", db.name);
        assert_eq!(ids[0], ids[2], "{}", db.name);
        assert_eq!(ids[5], 4711, "{}", db.name);
        let distinct: std::collections::BTreeSet<u64> =
            [ids[0], ids[1], ids[3], ids[4], ids[5]].into();
        assert_eq!(distinct.len(), 5, "{}: {ids:?}", db.name);
        // SENSOR-A is not a duplicate of sensor-a.
        let applied: Vec<ApplyOutcome> = got
            .iter()
            .map(|r| match &r.found {
                IntakeFound::Sessions(s) => s[0].applied,
                other => panic!("{}: {other:?}", db.name),
            })
            .collect();
        use azi3_status_jobs::domain::EventClass::Observed;
        assert_eq!(
            applied,
            [
                ApplyOutcome::Applied(Observed),
                ApplyOutcome::Duplicate,
                ApplyOutcome::Duplicate,
                ApplyOutcome::Applied(Observed),
                ApplyOutcome::Applied(Observed),
                ApplyOutcome::Applied(Observed),
                ApplyOutcome::Applied(Observed),
            ],
            "{}",
            db.name
        );
        db.finish().await;
    }
}

/// Whether taking `event` in reported the deadline of its one session moved earlier.
fn deadline_earlier(record: &IntakeRecord) -> bool {
    match &record.found {
        IntakeFound::Sessions(steps) => {
            assert!(
                matches!(steps[0].applied, ApplyOutcome::Applied(_)),
                "{record:?}"
            );
            steps[0].deadline_earlier
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_event_reports_a_deadline_moved_earlier_only_after_the_gap_shrank() {
    for db in TestDb::both().await {
        let refs = prepare(&db.store).await;
        // The first windows are 06:00Z–07:00Z. An event at 06:10Z moves one to 07:10Z: later.
        let at = ts("2025-06-10T06:10:00Z");
        let later = db
            .store
            .take_in(request(refs, RUNNING[0], 1, "TOILET_ACTIVITY", at))
            .await
            .unwrap();
        assert!(!deadline_earlier(&later), "{}", db.name);
        // The gap shrinks to 20 minutes: from the next window on, so the current ones still
        // end at 07:00Z, and an event at 06:10Z restarts them as 06:10Z–06:30Z: earlier.
        for (i, robot) in RUNNING[1..].iter().enumerate() {
            let mut shorter = rule_of(*robot);
            shorter.gap = "20m".parse().unwrap();
            db.store
                .set_rule(&shorter, ts("2025-06-10T06:05:00Z"))
                .await
                .unwrap();
            let request = request(refs, *robot, 2 + i as u64, "TOILET_ACTIVITY", at);
            let record = if i == 0 {
                db.store.take_in(request).await.unwrap()
            } else {
                db.store.take_in_alone(request).await.unwrap()
            };
            assert!(deadline_earlier(&record), "{} robot {robot}", db.name);
        }
        db.finish().await;
    }
}

/// A batch holding more events than one read looks up at once (1,000) finds its duplicates
/// among all of them: those of events taken in before it and those within it.
#[tokio::test]
async fn a_batch_of_more_than_a_thousand_events_finds_every_duplicate() {
    for db in TestDb::both().await {
        let refs = prepare(&db.store).await;
        let at = |i: u64| ts("2025-06-10T08:00:00Z") + SignedDuration::from_secs(i.cast_signed());
        let event = |i: u64| {
            request(
                refs,
                RUNNING[(i % 3) as usize],
                100 + i,
                "TOILET_ACTIVITY",
                at(i),
            )
        };
        // Taken in before the batch: the 1,200th and the 3rd event.
        db.store.take_in_alone(event(1_199)).await.unwrap();
        db.store.take_in_alone(event(2)).await.unwrap();
        let mut batch: Vec<IntakeRequest> = (0..1_200).map(event).collect();
        // Within the batch: the 1,101st again.
        batch.push(event(1_100));
        let got = db.store.take_in_as_one_batch(batch).await.unwrap();
        let duplicates: Vec<usize> = got
            .iter()
            .enumerate()
            .filter(|(_, r)| match &r.found {
                IntakeFound::Sessions(s) => s[0].applied == ApplyOutcome::Duplicate,
                other => panic!("{}: {other:?}", db.name),
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(duplicates, [2, 1_199, 1_200], "{}", db.name);
        db.finish().await;
    }
}

/// Events of [`POISONED`] and above fail when their row is written: on MySQL a batch's writes
/// go with its `COMMIT`, so the batch fails there, after the next batch may have begun.
const POISONED: u64 = 5000;

async fn poison(db: &TestDb) {
    let trigger = if db.name == "sqlite" {
        "CREATE TRIGGER poisoned_event BEFORE INSERT ON status_job_event \
         WHEN NEW.incoming_event_id >= 5000 BEGIN SELECT RAISE(ABORT, 'poisoned event'); END"
    } else {
        "CREATE TRIGGER poisoned_event BEFORE INSERT ON status_job_event FOR EACH ROW \
         IF NEW.incoming_event_id >= 5000 THEN \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned event'; END IF"
    };
    db.store.execute_sql_script(trigger).await.unwrap();
}

#[tokio::test]
async fn a_robots_events_keep_their_order_when_a_batch_fails_at_its_commit() {
    // Six robots, small batches: one batch often shares no robot with the one before it, and
    // may begin while that one commits; one that shares a robot must wait for it.
    let extra = [RobotId::new(21), RobotId::new(22), RobotId::new(23)];
    let robots = [
        RUNNING[0], RUNNING[1], RUNNING[2], extra[0], extra[1], extra[2],
    ];
    let settings = GroupCommitSettings {
        max_batch: 3,
        mysql_committers: 1,
    };
    for case in 0..4u64 {
        let batched = TestDb::both().await;
        let alone = TestDb::both().await;
        for (b, a) in batched.into_iter().zip(alone) {
            assert!(b.store.set_group_commit(settings));
            for db in [&b, &a] {
                prepare(&db.store).await;
                for robot in extra {
                    started(&db.store, &rule_of(robot), date(2025, 6, 10)).await;
                }
                poison(db).await;
            }
            let refs = refs(&b.store).await;
            let start = ts("2025-06-10T06:05:00Z");
            // Each robot's events out of order, so that applying two of them the other way
            // round gives other classes; every seventh event fails; each is delivered again
            // two events later, mostly in the next batch: whichever of the two is applied
            // first is the one taken, the other a duplicate.
            let event = |i: u64| {
                let robot = robots[usize::try_from((i * (case + 5)) % 11 % 6).expect("below 6")];
                let minutes = i64::try_from(i * 53 % 700).expect("below 700");
                let id = if i % 7 == 3 { POISONED + i } else { 3000 + i };
                request(
                    refs,
                    robot,
                    id,
                    "TOILET_ACTIVITY",
                    start + SignedDuration::from_mins(minutes),
                )
            };
            let mut order = Vec::new();
            for i in 0..40u64 {
                order.push(event(i));
                if i >= 2 {
                    order.push(event(i - 2));
                }
            }
            let got = together(&b.store, &order).await;
            let want = one_at_a_time(&a.store, &order).await;
            for ((r, g), w) in order.iter().zip(&got).zip(&want) {
                if matches!(r.event_id, EventIdSource::Known(id) if id >= POISONED) {
                    assert!(g.is_err() && w.is_err(), "{}: {g:?} {w:?}", b.name);
                } else {
                    assert_eq!(
                        g, w,
                        "{} case {case}: robot {} event {:?}",
                        b.name, r.robot_id, r.event_id
                    );
                }
            }
            assert_eq!(
                rows(&b.store).await,
                rows(&a.store).await,
                "{} case {case}",
                b.name
            );
            b.finish().await;
            a.finish().await;
        }
    }
}

/// The one session step of `record`.
fn only_step(record: &IntakeRecord) -> &azi3_status_jobs::store::SessionStep {
    match &record.found {
        IntakeFound::Sessions(steps) if steps.len() == 1 => &steps[0],
        other => panic!("not one session: {other:?}"),
    }
}

#[tokio::test]
async fn a_rule_another_instance_changed_is_the_one_the_next_batch_applies() {
    for db in TestDb::both().await {
        let refs = prepare(&db.store).await;
        let other = db.another_instance().await;
        let robot = RUNNING[0];
        let event = |id: u64, minute: u32| watched(refs, robot, id, &format!("07:{minute:02}:00"));
        // This instance has read the robot's rule and session.
        let first = db.store.take_in(event(1, 0)).await.unwrap();
        assert!(matches!(
            only_step(&first).applied,
            ApplyOutcome::Applied(_)
        ));
        // Another instance watches another event for it, then stops watching it.
        let mut changed = rule_of(robot);
        changed.watched_event = "DOOR_OPENED".to_string();
        other.set_rule(&changed, now()).await.unwrap();
        let second = db.store.take_in(event(2, 10)).await.unwrap();
        assert_eq!(second.found, IntakeFound::OtherEvent, "{}", db.name);
        changed.enabled = false;
        other.set_rule(&changed, now()).await.unwrap();
        let third = db.store.take_in(event(3, 20)).await.unwrap();
        assert_eq!(third.found, IntakeFound::NoRule, "{}", db.name);
        other.close().await;
        db.finish().await;
    }
}

#[tokio::test]
async fn a_session_another_instance_started_is_found_by_the_next_batch() {
    for db in TestDb::both().await {
        let refs = prepare(&db.store).await;
        let other = db.another_instance().await;
        let at = ts("2025-06-10T07:00:00Z");
        // This instance reads the robot without a session: the event is not its watched one.
        let first = db
            .store
            .take_in(request(refs, NOT_STARTED, 1, "DOOR_OPENED", at))
            .await
            .unwrap();
        assert_eq!(first.found, IntakeFound::OtherEvent);
        // Another instance starts the session.
        let stored = other.rule(NOT_STARTED).await.unwrap().unwrap();
        let session = azi3_status_jobs::domain::Session::on(&stored.rule, date(2025, 6, 10))
            .expect("a session that day");
        other
            .start_session(&stored, session, "azi3-status-jobs:other", refs, now())
            .await
            .unwrap();
        // The next event finds it started, as one taken in alone does.
        let second = db
            .store
            .take_in(request(refs, NOT_STARTED, 2, "TOILET_ACTIVITY", at))
            .await
            .unwrap();
        let step = only_step(&second);
        assert!(
            !step.start_attempted && !step.started,
            "{}: {step:?}",
            db.name
        );
        assert!(
            matches!(step.applied, ApplyOutcome::Applied(_)),
            "{}",
            db.name
        );
        other.close().await;
        db.finish().await;
    }
}

/// Batches after the first, whose robots and sessions this instance has read and kept, are
/// decided on its copies without a read: with duplicates of events taken in batches before
/// and within the batch, events that wait (the batch after them reads again, as the copy has
/// events pending) and events that apply those waiting, they end as the events one by one.
#[tokio::test]
async fn batches_decided_on_copies_end_as_the_events_one_by_one() {
    let batched = TestDb::both().await;
    let alone = TestDb::both().await;
    for (b, a) in batched.into_iter().zip(alone) {
        let refs = prepare(&b.store).await;
        assert_eq!(prepare(&a.store).await, refs);
        // The first batch reads the robots and their sessions.
        let first: Vec<IntakeRequest> = RUNNING
            .iter()
            .zip(900..)
            .map(|(robot, id)| watched(refs, *robot, id, "06:05:00"))
            .collect();
        b.store.take_in_as_one_batch(first.clone()).await.unwrap();
        one_at_a_time(&a.store, &first).await;
        let [ra, rb, rc] = RUNNING;
        let e = |robot, id, t: &str| watched(refs, robot, id, t);
        let waves: Vec<Vec<IntakeRequest>> = vec![
            vec![
                e(ra, 11, "06:10:00"),
                e(rb, 21, "06:15:00"),
                e(rc, 31, "06:20:00"),
                e(ra, 12, "06:30:00"),
            ],
            // A repeat of the batch before, a late event, and a repeat within the batch.
            vec![
                e(ra, 12, "06:30:00"),
                e(rb, 22, "06:50:00"),
                e(ra, 13, "06:08:00"),
                e(rb, 22, "06:50:00"),
            ],
            vec![
                e(rb, 23, "07:30:00"),
                e(rc, 32, "06:55:00"),
                e(ra, 14, "07:20:00"),
                e(rb, 21, "06:15:00"),
            ],
            // Robot c's event waits (its window ends at 07:55): the batches after read its
            // session under the lock until one reaches it.
            vec![e(rc, 34, "09:30:00"), e(ra, 15, "08:00:00")],
            vec![e(rc, 35, "07:50:00"), e(rb, 24, "08:20:00")],
            vec![e(rc, 36, "08:40:00"), e(ra, 16, "08:50:00")],
            // Applied: c's copy has no event pending any more.
            vec![
                e(ra, 17, "09:40:00"),
                e(rb, 25, "09:10:00"),
                e(rc, 37, "10:20:00"),
            ],
            vec![
                first[0].clone(),
                e(rc, 34, "09:30:00"),
                e(rb, 23, "07:30:00"),
            ],
        ];
        let before = b.store.intake_batches_on_copies();
        for (n, wave) in waves.iter().enumerate() {
            let got = b.store.take_in_as_one_batch(wave.clone()).await.unwrap();
            let want = one_at_a_time(&a.store, wave).await;
            for ((r, g), w) in wave.iter().zip(&got).zip(&want) {
                assert_eq!(
                    Ok(g),
                    w.as_ref(),
                    "{} wave {n}: robot {} event {:?} at {}",
                    b.name,
                    r.robot_id,
                    r.event_id,
                    r.occurred_at
                );
            }
            assert_eq!(
                rows(&b.store).await,
                rows(&a.store).await,
                "{} wave {n}",
                b.name
            );
        }
        let on_copies = b.store.intake_batches_on_copies() - before;
        assert!(
            on_copies >= 5,
            "{}: {on_copies} of {} batches decided on copies",
            b.name,
            waves.len()
        );
        b.finish().await;
        a.finish().await;
    }
}

/// A copy that another instance moved on, and an event that instance took in, which this one
/// never saw: the batch decided on the copy fails its version check (or the event's key) before
/// its `COMMIT` and runs again from locked reads, so the events end as they would alone.
#[tokio::test]
async fn a_batch_on_a_copy_another_instance_moved_on_runs_again_from_locked_reads() {
    for db in TestDb::both().await {
        let refs = prepare(&db.store).await;
        let other = db.another_instance().await;
        let robot = RUNNING[0];
        let event = |id: u64, t: &str| watched(refs, robot, id, t);
        // This instance reads the robot and keeps its session's copy.
        db.store
            .take_in_as_one_batch(vec![event(1, "06:10:00")])
            .await
            .unwrap();
        // The other instance takes in an event: the session row moves on.
        let taken = other.take_in(event(2, "06:20:00")).await.unwrap();
        assert_eq!(
            only_step(&taken).applied,
            ApplyOutcome::Applied(azi3_status_jobs::domain::EventClass::Observed)
        );
        let before = db.store.intake_batches_on_copies();
        let got = db
            .store
            .take_in_as_one_batch(vec![event(3, "06:30:00"), event(2, "06:20:00")])
            .await
            .unwrap();
        assert_eq!(
            db.store.intake_batches_on_copies() - before,
            1,
            "{}: decided on the copy first",
            db.name
        );
        assert_eq!(
            (only_step(&got[0]).applied, only_step(&got[1]).applied),
            (
                ApplyOutcome::Applied(azi3_status_jobs::domain::EventClass::Observed),
                ApplyOutcome::Duplicate
            ),
            "{}",
            db.name
        );
        // Another event the other instance takes in, and one this instance takes in after it
        // (on the copy, which fails, then from locked reads): the copy is current again, but
        // the other instance's event is not among those this one knows. Taken for new on the
        // copy, its key refuses it.
        other.take_in(event(4, "06:40:00")).await.unwrap();
        db.store
            .take_in_as_one_batch(vec![event(5, "06:50:00")])
            .await
            .unwrap();
        let before = db.store.intake_batches_on_copies();
        let again = db
            .store
            .take_in_as_one_batch(vec![event(4, "06:40:00")])
            .await
            .unwrap();
        assert_eq!(
            db.store.intake_batches_on_copies() - before,
            1,
            "{}",
            db.name
        );
        assert_eq!(
            only_step(&again[0]).applied,
            ApplyOutcome::Duplicate,
            "{}",
            db.name
        );
        let records = db
            .store
            .select_sql(&[&format!(
                "SELECT incoming_event_id, `order` FROM status_check_record \
                 WHERE status_check_id = {} ORDER BY `order`",
                only_step(&got[0]).status_check_id
            )])
            .await
            .unwrap();
        let pairs: Vec<(String, String)> = records[0]
            .iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect();
        let want: Vec<(String, String)> = [1, 2, 3, 4, 5]
            .iter()
            .map(|n| (n.to_string(), n.to_string()))
            .collect();
        assert_eq!(pairs, want, "{}", db.name);
        other.close().await;
        db.finish().await;
    }
}
