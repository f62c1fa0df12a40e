//! Eight workers feeding the same 1,000 deliveries (duplicates, late and early ones included)
//! and the same deadlines into one session at once end with exactly the records and alarms one
//! worker alone gets.

use azi3_status_jobs::domain::RobotId;
use std::sync::Arc;

use super::support::{TestDb, rule, started};
use azi3_status_jobs::store::{
    ApplyOutcome, CloseOutcome, EventInput, OutboxAlarm, RecordView, StatusCheckId, Store,
};
use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};

const DELIVERIES: usize = 1_000;
const WORKERS: usize = 8;

#[derive(Debug, Clone, Copy)]
enum Op {
    Event(EventInput),
    Close(Timestamp),
}

/// A small deterministic generator, so that every run feeds the same deliveries.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }

    /// [`Lcg::next`] as an offset in seconds or minutes.
    fn next_i64(&mut self, below: u64) -> i64 {
        i64::try_from(self.next(below)).expect("below is a few thousand at most")
    }
}

/// Deliveries `(delivered_at, event)`, in delivery order: events come in bursts with quiet
/// stretches between them (so windows alarm), most are delivered at once, some twice, some
/// late (after their window closed), a few lie outside the session.
fn deliveries(start: Timestamp, end: Timestamp) -> Vec<(Timestamp, EventInput)> {
    let mut rng = Lcg(42);
    // Busy hours (seconds after S); the rest of the 12-hour session is quiet. The first one
    // starts before S and the last one ends after E, so some events lie outside the session.
    let clusters: [i64; 6] = [-600, 7_200, 16_200, 25_200, 32_400, 42_600];
    assert_eq!(end.duration_since(start).as_secs(), 43_200);
    let mut out = Vec::new();
    let mut id = 1;
    while out.len() < DELIVERIES {
        let cluster = usize::try_from(rng.next(6)).expect("below 6");
        let burst_at = clusters[cluster] + rng.next_i64(2_400);
        for _ in 0..(1 + rng.next(6)) {
            let t = start + SignedDuration::from_secs(burst_at + rng.next_i64(900));
            let e = EventInput {
                incoming_event_id: id,
                outgoing_event_id: (id % 3 != 0).then_some(id + 1_000_000),
                occurred_at: t,
            };
            id += 1;
            let delay = match rng.next(20) {
                0 => SignedDuration::from_mins(150 + rng.next_i64(120)),
                _ => SignedDuration::from_secs(rng.next_i64(20)),
            };
            out.push((t + delay, e));
            if rng.next(3) == 0 {
                out.push((
                    t + delay + SignedDuration::from_secs(1 + rng.next_i64(600)),
                    e,
                ));
            }
        }
    }
    out.truncate(DELIVERIES);
    out.sort_by_key(|(at, e)| (*at, e.incoming_event_id));
    out
}

/// One worker alone: before each delivery, closes the windows whose deadline plus the grace
/// has passed; records every operation it performed.
async fn run_alone(store: &Store, id: StatusCheckId, input: &[(Timestamp, EventInput)]) -> Vec<Op> {
    let grace = SignedDuration::from_secs(30);
    let mut ops = Vec::new();
    let close_due = async |ops: &mut Vec<Op>, until: Option<Timestamp>| loop {
        let view = store.session(id).await.unwrap().unwrap();
        let Some(deadline) = view.state.deadline() else {
            return;
        };
        if until.is_some_and(|now| deadline + grace > now) {
            return;
        }
        assert!(matches!(
            store
                .close_window(id, deadline, deadline + grace)
                .await
                .unwrap(),
            CloseOutcome::Closed { .. }
        ));
        ops.push(Op::Close(deadline));
    };
    for (at, e) in input {
        close_due(&mut ops, Some(*at)).await;
        store.apply_event(id, *e, *at).await.unwrap();
        ops.push(Op::Event(*e));
    }
    close_due(&mut ops, None).await;
    ops
}

async fn run_ops(store: &Store, id: StatusCheckId, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Event(e) => {
                store.apply_event(id, *e, e.occurred_at).await.unwrap();
            }
            Op::Close(u) => {
                store.close_window(id, *u, *u).await.unwrap();
            }
        }
    }
}

/// Records, alarms, phase and result of a session.
type Outcome = (Vec<RecordView>, Vec<OutboxAlarm>, String, String);

async fn outcome(store: &Store, id: StatusCheckId) -> Outcome {
    let view = store.session(id).await.unwrap().unwrap();
    (
        view.records,
        store.alarms_of(id).await.unwrap(),
        view.phase,
        view.result,
    )
}

/// A migrated, seeded database of `kind` ("sqlite" or "mariadb").
async fn fresh(kind: &str) -> TestDb {
    let db = if kind == "sqlite" {
        TestDb::sqlite().await
    } else {
        TestDb::mysql().await
    };
    db.store.migrate(true).await.unwrap();
    db.store.seed_template().await.unwrap();
    db
}

fn session_rule() -> azi3_status_jobs::domain::Rule {
    rule("08:00", "20:00", "30m")
}

/// The operations one worker alone performs on the deliveries of one session, and what the
/// session holds after them.
async fn alone(kind: &str) -> (Vec<Op>, Outcome) {
    let alone = fresh(kind).await;
    let (id, session) = started(&alone.store, &session_rule(), date(2025, 6, 2)).await;
    let input = deliveries(session.start, session.end);
    let ops = run_alone(&alone.store, id, &input).await;
    let expected = outcome(&alone.store, id).await;
    alone.finish().await;
    (ops, expected)
}

/// The same records, alarms (by identity and state), phase and result.
fn assert_same_outcome(kind: &str, got: &Outcome, expected: &Outcome) {
    assert_eq!(got.0, expected.0, "{kind}: records differ");
    let ids = |a: &[OutboxAlarm]| {
        a.iter()
            .map(|x| (x.reference_id.clone(), x.window_end, x.state.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&got.1), ids(&expected.1), "{kind}: alarms differ");
    assert_eq!((&got.2, &got.3), (&expected.2, &expected.3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_workers_get_what_one_worker_gets() {
    for kind in ["sqlite", "mariadb"] {
        let (ops, expected) = alone(kind).await;

        let crowd = fresh(kind).await;
        let (id, _) = started(&crowd.store, &session_rule(), date(2025, 6, 2)).await;
        let ops = Arc::new(ops);
        let mut tasks = Vec::new();
        for _ in 0..WORKERS {
            let (store, ops) = (crowd.store.clone(), Arc::clone(&ops));
            tasks.push(tokio::spawn(async move { run_ops(&store, id, &ops).await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let got = outcome(&crowd.store, id).await;
        crowd.finish().await;

        let (records, alarms, phase, result) = &expected;
        let late = records.iter().filter(|r| r.result == "EVENT_LATE").count();
        let observed = records
            .iter()
            .filter(|r| r.result == "EVENT_OBSERVED")
            .count();
        assert!(
            alarms.len() >= 3,
            "{kind}: the input should make alarms, made {}",
            alarms.len()
        );
        assert!(
            late >= 3 && observed >= 100,
            "{kind}: {observed} observed, {late} late"
        );
        assert_eq!(
            (phase.as_str(), result.as_str()),
            ("COMPLETED", "ALARM_RAISED")
        );
        eprintln!(
            "{kind}: {} operations, {observed} observed, {late} late, {} alarms",
            ops.len(),
            alarms.len()
        );
        assert_same_outcome(kind, &got, &expected);
    }
}

/// Two instances taking turns on one session, each event delivered to one and then again to
/// the other: every instance decides on a copy of the session row that the other has moved on
/// since, and on a copy that already took the event; the outcome is still what one instance
/// alone gets, and every second delivery is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_taking_turns_on_one_session_get_what_one_instance_gets() {
    for kind in ["sqlite", "mariadb"] {
        let (ops, expected) = alone(kind).await;

        let shared = fresh(kind).await;
        let (id, _) = started(&shared.store, &session_rule(), date(2025, 6, 2)).await;
        let other = shared.another_instance().await;
        let instances = [&shared.store, &other];
        let mut duplicates = 0;
        let mut first_deliveries = 0;
        for (i, op) in ops.iter().enumerate() {
            let (this, next) = (instances[i % 2], instances[(i + 1) % 2]);
            match op {
                Op::Event(e) => {
                    let first = this.apply_event(id, *e, e.occurred_at).await.unwrap();
                    let again = next.apply_event(id, *e, e.occurred_at).await.unwrap();
                    first_deliveries += usize::from(first != ApplyOutcome::Duplicate);
                    assert_eq!(again, ApplyOutcome::Duplicate, "{kind}: {e:?}");
                    duplicates += 1;
                }
                Op::Close(u) => {
                    this.close_window(id, *u, *u).await.unwrap();
                }
            }
        }
        assert!(first_deliveries > 100 && duplicates >= first_deliveries);
        let got = outcome(&shared.store, id).await;
        other.close().await;
        shared.finish().await;
        assert_same_outcome(kind, &got, &expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_the_same_session_at_once_make_one() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "30m");
        let now = jiff::Timestamp::UNIX_EPOCH;
        db.store.set_rule(&r, now).await.unwrap();
        let stored = db.store.rule(RobotId::new(7)).await.unwrap().unwrap();
        let session = azi3_status_jobs::domain::Session::on(&r, date(2025, 6, 2)).unwrap();
        let refs = super::support::refs(&db.store).await;
        let mut tasks = Vec::new();
        for i in 0..WORKERS {
            let (store, stored) = (db.store.clone(), stored.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .start_session(&stored, session, &format!("instance-{i}"), refs, now)
                    .await
                    .unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let created = outcomes
            .iter()
            .filter(|o| matches!(o, azi3_status_jobs::store::StartOutcome::Created(_)))
            .count();
        assert_eq!(created, 1, "{}: {outcomes:?}", db.name);
        let id = outcomes[0].status_check_id();
        assert!(outcomes.iter().all(|o| o.status_check_id() == id));
        let rows =
            super::support::snapshot_tables(&db.store, &["status_check", "status_check_poller"])
                .await;
        assert_eq!(
            rows.len(),
            2,
            "{}: one status_check and one poller: {rows:#?}",
            db.name
        );
        db.finish().await;
    }
}
