//! Killing the connection in the middle of any transition leaves nothing half-written: for each
//! transition, the connection dies after its 1st, 2nd, 3rd … write in turn (MariaDB: `KILL` from
//! a second connection; SQLite: the transaction is abandoned), and every time the database
//! holds exactly what it held before. Then the transition runs to completion.

use azi3_status_jobs::domain::RobotId;
use std::future::Future;

use super::support::{TestDb, refs, rule, snapshot, ts};
use azi3_status_jobs::domain::SessionResult;
use azi3_status_jobs::megazord::MegazordEventId;
use azi3_status_jobs::store::{ApplyOutcome, EventInput, Store, StoreError};
use jiff::SignedDuration;
use jiff::civil::date;
use sqlx::AssertSqlSafe;

fn event(id: u64, at: &str) -> EventInput {
    EventInput {
        incoming_event_id: id,
        outgoing_event_id: None,
        occurred_at: ts(at),
    }
}

/// Kills `transition` after each of its writes in turn, checking the database is unchanged
/// each time; finally runs it without a fault. Returns how many kill points there were.
async fn kill_everywhere<F, Fut, T>(db: &TestDb, what: &str, transition: F) -> u32
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    kill_everywhere_after(db, what, async || {}, transition).await
}

/// [`kill_everywhere`], running `prepare` (which must change nothing) before every attempt.
async fn kill_everywhere_after<P, F, Fut, T>(
    db: &TestDb,
    what: &str,
    prepare: P,
    transition: F,
) -> u32
where
    P: AsyncFn(),
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let store: &Store = &db.store;
    let before = snapshot(store).await;
    let mut n = 1;
    loop {
        prepare().await;
        store.fault_plan().arm(n);
        let outcome = transition().await;
        let fired = !store.fault_plan().is_armed();
        store.fault_plan().arm(0);
        if !fired {
            outcome.unwrap_or_else(|e| panic!("{}: {what} failed without a fault: {e}", db.name));
            assert_ne!(
                snapshot(store).await,
                before,
                "{}: {what} wrote nothing",
                db.name
            );
            eprintln!("{}: {what}: killed at each of {} writes", db.name, n - 1);
            return n - 1;
        }
        let Err(error) = outcome else {
            panic!(
                "{}: {what} succeeded although its connection died at write {n}",
                db.name
            );
        };
        if n == 1 {
            eprintln!("{}: {what}: first kill gives: {error}", db.name);
        }
        assert_eq!(
            snapshot(store).await,
            before,
            "{}: {what} killed after write {n} left rows behind",
            db.name
        );
        n += 1;
    }
}

#[tokio::test]
async fn every_transition_is_all_or_nothing() {
    for db in TestDb::both().await {
        let s = &db.store;
        let now = ts("2025-03-30T06:00:00Z");
        let r = rule("08:00", "20:00", "2h");
        s.set_rule(&r, now).await.unwrap();
        let stored = s.rule(RobotId::new(7)).await.unwrap().unwrap();
        let session = azi3_status_jobs::domain::Session::on(&r, date(2025, 3, 30)).unwrap();
        let refs = refs(s).await;

        let points = kill_everywhere(&db, "start_session", || {
            s.start_session(&stored, session, "owner", refs, now)
        })
        .await;
        assert!(
            points >= 3,
            "{}: start_session has {points} kill points",
            db.name
        );
        let id = s
            .sessions(RobotId::new(7), date(2025, 3, 30), date(2025, 3, 30))
            .await
            .unwrap()[0]
            .status_check_id;

        kill_everywhere(&db, "record_subscribed", || {
            s.record_subscribed(id, 99, now)
        })
        .await;

        // An event far ahead waits; an observed event then drains it (two records, window moves).
        s.apply_event(id, event(2, "2025-03-30T08:30:00Z"), now)
            .await
            .unwrap();
        let points = kill_everywhere(
            &db,
            "apply_event (observed, drains a waiting event)",
            || s.apply_event(id, event(1, "2025-03-30T07:00:00Z"), now),
        )
        .await;
        assert!(
            points >= 5,
            "{}: apply_event has {points} kill points",
            db.name
        );
        kill_everywhere(&db, "apply_event (late)", || {
            s.apply_event(id, event(3, "2025-03-30T06:30:00Z"), now)
        })
        .await;

        // A window closes with an alarm, and a waiting event is applied in the next window.
        s.apply_event(id, event(4, "2025-03-30T11:00:00Z"), now)
            .await
            .unwrap();
        let deadline = ts("2025-03-30T10:30:00Z");
        let points = kill_everywhere(&db, "close_window (alarm, drains)", || {
            s.close_window(id, deadline, deadline)
        })
        .await;
        assert!(
            points >= 4,
            "{}: close_window has {points} kill points",
            db.name
        );

        let lease = SignedDuration::from_mins(5);
        kill_everywhere(&db, "claim_alarms", || {
            s.claim_alarms("dispatcher", 10, deadline, lease)
        })
        .await;
        let alarm = s.alarms_of(id).await.unwrap()[0].id;
        kill_everywhere(&db, "mark_alarm_failed", || {
            s.mark_alarm_failed("dispatcher", alarm, "HTTP 502", deadline)
        })
        .await;
        kill_everywhere(&db, "mark_alarm_sent", || {
            s.mark_alarm_sent(alarm, MegazordEventId::new(777), deadline)
        })
        .await;

        let shorter = rule("08:00", "12:30", "1h");
        kill_everywhere(&db, "set_rule (re-clamps a running session)", || {
            s.set_rule(&shorter, deadline)
        })
        .await;

        // The last window closes at the new end: the session completes and its poller goes.
        let view = s.session(id).await.unwrap().unwrap();
        let last = view.state.window.end;
        kill_everywhere(&db, "close_window (ends the session)", || {
            s.close_window(id, last, last)
        })
        .await;
        let view = s.session(id).await.unwrap().unwrap();
        if view.state.is_running() {
            let last = view.state.window.end;
            kill_everywhere(&db, "close_window (final)", || {
                s.close_window(id, last, last)
            })
            .await;
        }
        assert_eq!(s.session(id).await.unwrap().unwrap().phase, "COMPLETED");

        // A second session, ended as FAILED.
        let next_day = azi3_status_jobs::domain::Session::on(&shorter, date(2025, 3, 31)).unwrap();
        let stored = s.rule(RobotId::new(7)).await.unwrap().unwrap();
        let id2 = s
            .start_session(&stored, next_day, "owner", refs, now)
            .await
            .unwrap()
            .status_check_id();
        kill_everywhere(&db, "end_session", || {
            s.end_session(id2, SessionResult::Failed, now)
        })
        .await;
        kill_everywhere(&db, "disable_rule", || s.disable_rule(RobotId::new(7), now)).await;
        kill_everywhere(&db, "record_dead_letter", || {
            s.record_dead_letter("{", "not JSON", now)
        })
        .await;
        kill_everywhere(&db, "set_meta", || s.set_meta("k", "v", now)).await;
        db.finish().await;
    }
}

/// The same for an event and a window close decided on the instance's copy of the session row
/// instead of a locked read: before every attempt, a duplicate delivery (which writes nothing)
/// leaves a fresh copy behind.
#[tokio::test]
async fn a_transition_decided_on_a_copy_is_all_or_nothing() {
    for db in TestDb::both().await {
        let s = &db.store;
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = super::support::started(s, &r, date(2025, 3, 30)).await;
        // 08:00–20:00 in Amsterdam (UTC+2 from this morning): the first window ends 08:00Z.
        let first = event(1, "2025-03-30T06:30:00Z");
        s.apply_event(id, first, first.occurred_at).await.unwrap();
        let keep_a_copy = async || {
            assert_eq!(
                s.apply_event(id, first, first.occurred_at).await.unwrap(),
                ApplyOutcome::Duplicate
            );
            assert!(s.holds_copy_of(id), "{}: no copy kept", db.name);
        };

        let observed = event(2, "2025-03-30T07:00:00Z");
        let points = kill_everywhere_after(&db, "apply_event from a copy", keep_a_copy, || {
            s.apply_event(id, observed, observed.occurred_at)
        })
        .await;
        assert!(points >= 4, "{}: {points} kill points", db.name);

        let deadline = ts("2025-03-30T09:00:00Z");
        let points = kill_everywhere_after(&db, "close_window from a copy", keep_a_copy, || {
            s.close_window(id, deadline, deadline)
        })
        .await;
        assert!(points >= 3, "{}: {points} kill points", db.name);
        assert_eq!(s.alarms_of(id).await.unwrap().len(), 1);
        db.finish().await;
    }
}

/// A MySQL server that does not enforce the session row's version check (MySQL before 8.0.16
/// parses `CHECK` and ignores it; here the check is dropped) never has a transition decided on
/// a copy: nothing could refuse a stale one.
#[tokio::test]
async fn without_an_enforced_version_check_no_transition_is_decided_on_a_copy() {
    let db = TestDb::mysql().await;
    db.store.migrate(true).await.unwrap();
    db.store.seed_template().await.unwrap();
    let r = rule("08:00", "20:00", "2h");
    let (id, _) = super::support::started(&db.store, &r, date(2025, 3, 30)).await;
    let e = event(1, "2025-03-30T06:30:00Z");
    db.store.apply_event(id, e, e.occurred_at).await.unwrap();
    assert!(db.store.holds_copy_of(id), "MariaDB enforces the check");

    let admin = super::support::admin_mysql().await;
    sqlx::query(AssertSqlSafe(format!(
        "ALTER TABLE `{}`.status_job_session DROP CONSTRAINT ck_status_job_session_version",
        db.database_name()
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    db.store.migrate(true).await.unwrap();
    assert!(!db.store.holds_copy_of(id));
    let e = event(2, "2025-03-30T07:00:00Z");
    assert_eq!(
        db.store.apply_event(id, e, e.occurred_at).await.unwrap(),
        ApplyOutcome::Applied(azi3_status_jobs::domain::EventClass::Observed)
    );
    assert!(!db.store.holds_copy_of(id));
    db.finish().await;
}

#[tokio::test]
async fn a_pooled_connection_killed_while_idle_costs_nothing() {
    let db = TestDb::mysql().await;
    db.store.migrate(true).await.unwrap();
    db.store.seed_template().await.unwrap();
    let r = rule("08:00", "20:00", "2h");
    let (id, _) = super::support::started(&db.store, &r, date(2025, 3, 30)).await;
    // The server drops every connection the store holds, as after a restart or a timeout.
    let admin = super::support::admin_mysql().await;
    let killed = super::support::kill_connections_to(&admin, db.database_name()).await;
    assert!(killed > 0);
    let e = event(1, "2025-03-30T07:00:00Z");
    assert_eq!(
        db.store.apply_event(id, e, e.occurred_at).await.unwrap(),
        azi3_status_jobs::store::ApplyOutcome::Applied(
            azi3_status_jobs::domain::EventClass::Observed
        )
    );
    admin.close().await;
    db.finish().await;
}
