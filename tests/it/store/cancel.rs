//! Dropping the future of a store operation at any of its awaits leaves nothing behind: no
//! transaction open, no connection wedged, no lock held, and the database holds either the
//! whole effect of the operation or none of it. The cancellation counterpart of
//! `store::faults`, as an HTTP client that hangs up or a task that is aborted does it.
//!
//! For every operation the service uses, on SQLite and on MariaDB: the operation's future is
//! polled once, then again each time it is woken, and dropped right after its `n`-th poll
//! (while what it awaits is in flight), for `n` = 1, 2, 3 … until it finishes on its own.
//! After every drop, the next operations on the same store (an event for another session, a
//! write) must succeed within [`PATIENCE`], MariaDB must show no transaction left open on
//! the database, and the database must equal either what it held before or what the same
//! operation run to completion gives on a second database that ran the same steps.

use azi3_status_jobs::domain::RobotId;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::support::{
    ALL_TABLES, DATABASE_CLOCK_COLUMNS, TestDb, admin_mysql, refs, rule, snapshot_masked, ts,
};
use azi3_status_jobs::domain::{RuleInput, Session, SessionResult};
use azi3_status_jobs::megazord::MegazordEventId;
use azi3_status_jobs::store::{ApplyOutcome, Dialect, EventInput, Store, StoreError};
use jiff::SignedDuration;
use jiff::civil::{Date, date};
use sqlx::AssertSqlSafe;
use tokio::sync::Notify;

/// How long an operation may take to wake up again, and the next ones to succeed, before
/// the store counts as wedged.
const PATIENCE: Duration = Duration::from_secs(10);

/// The robot of the session the probes use.
const PROBE_ROBOT: RobotId = RobotId::new(8);
/// The `status_job_meta` key the probes write (left out of the comparison).
const PROBE_KEY: &str = "cancel-probe";

const DAY: Date = date(2025, 3, 30);

fn event(id: u64, at: &str) -> EventInput {
    EventInput {
        incoming_event_id: id,
        outgoing_event_id: None,
        occurred_at: ts(at),
    }
}

/// The probes' event: applied once while setting up, a duplicate ever after.
fn probe_event() -> EventInput {
    event(9_000, "2025-03-30T06:15:00Z")
}

/// Wakes the test when the polled operation is woken.
struct Woken(Notify);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.notify_one();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify_one();
    }
}

/// How an attempt ended.
enum Cut<T> {
    /// Dropped after its last poll, unfinished.
    Dropped,
    /// Finished on its own within the polls it was given.
    Finished(Result<T, StoreError>),
}

/// Polls `operation` once, then again each time it is woken, at most `polls` times; drops it
/// right after the last poll if it has not finished.
async fn poll_then_drop<T>(
    operation: impl Future<Output = Result<T, StoreError>>,
    polls: u32,
) -> Cut<T> {
    let woken = Arc::new(Woken(Notify::new()));
    let waker = Waker::from(Arc::clone(&woken));
    let mut operation = pin!(operation);
    for n in 1..=polls {
        if let Poll::Ready(result) = operation.as_mut().poll(&mut Context::from_waker(&waker)) {
            return Cut::Finished(result);
        }
        if n < polls {
            tokio::time::timeout(PATIENCE, woken.0.notified())
                .await
                .unwrap_or_else(|_| {
                    panic!("the operation was not woken within {PATIENCE:?} after poll {n}")
                });
        }
    }
    Cut::Dropped
}

/// One database under test and one that runs every operation to completion, each with the
/// same steps behind it.
struct Pair {
    subject: TestDb,
    reference: TestDb,
}

impl Pair {
    fn name(&self) -> &'static str {
        self.subject.name
    }
}

/// The database as two runs of the same steps show it: the columns the database stamps
/// with its own clock and the probes' own row left out.
async fn comparable(store: &Store) -> Vec<String> {
    snapshot_masked(store, ALL_TABLES, DATABASE_CLOCK_COLUMNS)
        .await
        .into_iter()
        .filter(|row| !row.starts_with(&format!("status_job_meta: {PROBE_KEY}|")))
        .collect()
}

/// Sets up one database: the rules of robot 7 and the probe robot, and a running probe
/// session that has seen the probe event.
async fn prepared(db: TestDb) -> TestDb {
    let s = &db.store;
    let now = ts("2025-03-30T06:00:00Z");
    let probe_rule = RuleInput {
        robot_id: PROBE_ROBOT,
        timezone: "Europe/Amsterdam".into(),
        start: "08:00".into(),
        end: "20:00".into(),
        gap: "2h".into(),
        ..RuleInput::default()
    }
    .validate()
    .unwrap();
    s.set_rule(&probe_rule, now).await.unwrap();
    let stored = s.rule(PROBE_ROBOT).await.unwrap().unwrap();
    let session = Session::on(&probe_rule, DAY).unwrap();
    let probe_id = s
        .start_session(&stored, session, "owner", refs(s).await, now)
        .await
        .unwrap()
        .status_check_id();
    s.apply_event(probe_id, probe_event(), now).await.unwrap();
    db
}

/// After a drop: the next operations on the store succeed, promptly, and (MariaDB) no
/// transaction stays open on the database.
async fn next_operations_succeed(db: &TestDb, what: &str, polls: u32) {
    let s = &db.store;
    let context = format!("{}: {what}, dropped after poll {polls}", db.name);
    let probe = async {
        let id = s
            .session_id(PROBE_ROBOT, DAY)
            .await
            .unwrap_or_else(|e| panic!("{context}: the next read fails: {e}"))
            .expect("the probe session exists");
        let outcome = s
            .apply_event(id, probe_event(), ts("2025-03-30T06:00:00Z"))
            .await
            .unwrap_or_else(|e| panic!("{context}: the next event fails: {e}"));
        assert_eq!(outcome, ApplyOutcome::Duplicate, "{context}");
        s.set_meta(PROBE_KEY, &polls.to_string(), ts("2025-03-30T06:00:00Z"))
            .await
            .unwrap_or_else(|e| panic!("{context}: the next write fails: {e}"));
    };
    tokio::time::timeout(PATIENCE, probe)
        .await
        .unwrap_or_else(|_| panic!("{context}: the next operations hang"));
    if s.dialect() == Dialect::Mysql {
        no_transaction_left_open(db, &context).await;
    }
}

/// Waits until no connection to the test database has a transaction open.
async fn no_transaction_left_open(db: &TestDb, context: &str) {
    let admin = admin_mysql().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let open: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT CAST(t.trx_mysql_thread_id AS SIGNED), t.trx_state, p.info \
             FROM information_schema.innodb_trx t \
             JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id \
             WHERE p.db = ?",
        )
        .bind(db.database_name())
        .fetch_all(&admin)
        .await
        .unwrap();
        if open.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{context}: transactions still open after {PATIENCE:?}: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.close().await;
}

/// MariaDB keeps the auto-increment values a rolled-back insert took; sets them back, so
/// that ids stay comparable with the reference database.
async fn give_back_taken_ids(db: &TestDb) {
    if db.store.dialect() != Dialect::Mysql {
        return;
    }
    let admin = admin_mysql().await;
    let mut conn = admin.acquire().await.unwrap();
    // A lock left behind shows as an error here rather than as a hang.
    sqlx::query("SET SESSION lock_wait_timeout = 10")
        .execute(&mut *conn)
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = ? AND auto_increment IS NOT NULL",
    )
    .bind(db.database_name())
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for table in tables {
        // InnoDB raises a value below the largest id to the next free one.
        sqlx::query(AssertSqlSafe(format!(
            "ALTER TABLE `{}`.`{table}` AUTO_INCREMENT = 1",
            db.database_name()
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    drop(conn);
    admin.close().await;
}

/// Runs `operation` to completion on the reference database, then on the subject drops it
/// after its 1st, 2nd, 3rd … poll in turn, checking after each drop that the store serves
/// and that the database holds all or nothing of it; returns how many drops left nothing.
async fn cancel_everywhere<T, F>(pair: &Pair, what: &str, operation: F) -> u32
where
    F: AsyncFn(&Store) -> Result<T, StoreError>,
{
    let name = pair.name();
    operation(&pair.reference.store)
        .await
        .unwrap_or_else(|e| panic!("{name}: {what} fails on the reference database: {e}"));
    let whole = comparable(&pair.reference.store).await;
    let before = comparable(&pair.subject.store).await;
    let mut polls = 1;
    loop {
        let cut = poll_then_drop(operation(&pair.subject.store), polls).await;
        next_operations_succeed(&pair.subject, what, polls).await;
        let now = comparable(&pair.subject.store).await;
        match cut {
            Cut::Finished(result) => {
                result.unwrap_or_else(|e| panic!("{name}: {what} failed when left alone: {e}"));
                assert_eq!(
                    now, whole,
                    "{name}: {what} finished on its own but differs from the reference run"
                );
                eprintln!("{name}: {what}: dropped at each of {} polls", polls - 1);
                return polls - 1;
            }
            Cut::Dropped if now == before => give_back_taken_ids(&pair.subject).await,
            Cut::Dropped => {
                assert_eq!(
                    now, whole,
                    "{name}: {what} dropped after poll {polls} left part of its effect"
                );
                eprintln!(
                    "{name}: {what}: dropped at each of {polls} polls, took effect at the last"
                );
                return polls;
            }
        }
        polls += 1;
    }
}

async fn pair(subject: TestDb, reference: TestDb) -> Pair {
    for db in [&subject, &reference] {
        db.store.migrate(true).await.expect("migrate");
        db.store.seed_template().await.expect("seed template");
    }
    Pair {
        subject: prepared(subject).await,
        reference: prepared(reference).await,
    }
}

#[tokio::test]
async fn sqlite_every_operation_dropped_at_any_await_leaves_all_or_nothing() {
    every_operation(pair(TestDb::sqlite().await, TestDb::sqlite().await).await).await;
}

#[tokio::test]
async fn mariadb_every_operation_dropped_at_any_await_leaves_all_or_nothing() {
    every_operation(pair(TestDb::mysql().await, TestDb::mysql().await).await).await;
}

/// Every operation the service uses, in the order of a session's life.
async fn every_operation(pair: Pair) {
    {
        let name = pair.name();
        let now = ts("2025-03-30T06:00:00Z");
        let r = rule("08:00", "20:00", "2h");
        cancel_everywhere(&pair, "set_rule", async |s: &Store| {
            s.set_rule(&r, now).await
        })
        .await;
        let stored = pair
            .subject
            .store
            .rule(RobotId::new(7))
            .await
            .unwrap()
            .unwrap();
        let session = Session::on(&r, DAY).unwrap();
        let script = refs(&pair.subject.store).await;
        let drops = cancel_everywhere(&pair, "start_session", async |s: &Store| {
            s.start_session(&stored, session, "owner", script, now)
                .await
        })
        .await;
        assert!(drops >= 1, "{name}: start_session was never dropped");
        let id = pair
            .subject
            .store
            .session_id(RobotId::new(7), DAY)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            pair.reference
                .store
                .session_id(RobotId::new(7), DAY)
                .await
                .unwrap(),
            Some(id),
            "{name}: the two databases gave the session different ids"
        );

        cancel_everywhere(&pair, "record_subscribed", async |s: &Store| {
            s.record_subscribed(id, 99, now).await
        })
        .await;
        cancel_everywhere(&pair, "event_id", async |s: &Store| {
            s.event_id(Some("sensor-abc")).await
        })
        .await;
        // An event far ahead waits; an observed event then drains it.
        cancel_everywhere(&pair, "apply_event (ahead)", async |s: &Store| {
            s.apply_event(id, event(2, "2025-03-30T08:30:00Z"), now)
                .await
        })
        .await;
        cancel_everywhere(
            &pair,
            "apply_event (observed, drains)",
            async |s: &Store| {
                s.apply_event(id, event(1, "2025-03-30T07:00:00Z"), now)
                    .await
            },
        )
        .await;
        cancel_everywhere(&pair, "apply_event (late)", async |s: &Store| {
            s.apply_event(id, event(3, "2025-03-30T06:30:00Z"), now)
                .await
        })
        .await;
        cancel_everywhere(&pair, "apply_event (duplicate)", async |s: &Store| {
            s.apply_event(id, event(3, "2025-03-30T06:30:00Z"), now)
                .await
        })
        .await;
        cancel_everywhere(&pair, "apply_event (waits)", async |s: &Store| {
            s.apply_event(id, event(4, "2025-03-30T11:00:00Z"), now)
                .await
        })
        .await;

        let deadline = ts("2025-03-30T10:30:00Z");
        cancel_everywhere(&pair, "due_windows", async |s: &Store| {
            s.due_windows(deadline, 100).await
        })
        .await;
        cancel_everywhere(&pair, "claim_due_windows", async |s: &Store| {
            s.claim_due_windows(
                deadline,
                100,
                "owner",
                deadline + SignedDuration::from_mins(5),
            )
            .await
        })
        .await;
        cancel_everywhere(&pair, "rule", async |s: &Store| {
            s.rule(RobotId::new(7)).await
        })
        .await;
        cancel_everywhere(&pair, "close_window (alarm, drains)", async |s: &Store| {
            s.close_window(id, deadline, deadline).await
        })
        .await;
        let lease = SignedDuration::from_mins(5);
        cancel_everywhere(&pair, "claim_alarms", async |s: &Store| {
            s.claim_alarms("dispatcher", 10, deadline, lease).await
        })
        .await;
        cancel_everywhere(&pair, "end_earlier_claims", async |s: &Store| {
            s.end_earlier_claims("dispatcher", deadline).await
        })
        .await;
        let alarm = pair.subject.store.alarms_of(id).await.unwrap()[0].id;
        cancel_everywhere(&pair, "mark_alarm_failed_until", async |s: &Store| {
            s.mark_alarm_failed_until("dispatcher", alarm, "HTTP 502", deadline + lease, deadline)
                .await
        })
        .await;
        cancel_everywhere(&pair, "mark_alarm_sent", async |s: &Store| {
            s.mark_alarm_sent(alarm, MegazordEventId::new(777), deadline)
                .await
        })
        .await;
        cancel_everywhere(&pair, "sessions", async |s: &Store| {
            s.sessions(RobotId::new(7), DAY, DAY).await
        })
        .await;
        cancel_everywhere(&pair, "refresh_poller_locks", async |s: &Store| {
            s.refresh_poller_locks("owner", std::time::Duration::ZERO, 500)
                .await
        })
        .await;

        let shorter = rule("08:00", "12:30", "1h");
        cancel_everywhere(
            &pair,
            "set_rule (re-clamps a running session)",
            async |s: &Store| s.set_rule(&shorter, deadline).await,
        )
        .await;
        // Close windows until the session ends (at the new end).
        loop {
            let view = pair.subject.store.session(id).await.unwrap().unwrap();
            let Some(deadline) = view.state.deadline() else {
                break;
            };
            cancel_everywhere(&pair, "close_window", async |s: &Store| {
                s.close_window(id, deadline, deadline).await
            })
            .await;
        }
        cancel_everywhere(&pair, "running_sessions", async |s: &Store| {
            s.running_sessions().await
        })
        .await;
        cancel_everywhere(&pair, "ended_subscriptions", async |s: &Store| {
            s.ended_subscriptions(100).await
        })
        .await;
        cancel_everywhere(&pair, "forget_subscription", async |s: &Store| {
            s.forget_subscription(99, deadline).await
        })
        .await;

        // The next day's session, ended as FAILED.
        let stored = pair
            .subject
            .store
            .rule(RobotId::new(7))
            .await
            .unwrap()
            .unwrap();
        let next_day = Session::on(&shorter, date(2025, 3, 31)).unwrap();
        cancel_everywhere(&pair, "start_session (next day)", async |s: &Store| {
            s.start_session(&stored, next_day, "owner", script, now)
                .await
        })
        .await;
        let id2 = pair
            .subject
            .store
            .session_id(RobotId::new(7), date(2025, 3, 31))
            .await
            .unwrap()
            .unwrap();
        cancel_everywhere(&pair, "end_session", async |s: &Store| {
            s.end_session(id2, SessionResult::Failed, now).await
        })
        .await;
        cancel_everywhere(&pair, "disable_rule", async |s: &Store| {
            s.disable_rule(RobotId::new(7), now).await
        })
        .await;
        cancel_everywhere(&pair, "record_dead_letter", async |s: &Store| {
            s.record_dead_letter("{", "not JSON", now).await
        })
        .await;
        cancel_everywhere(&pair, "set_meta", async |s: &Store| {
            s.set_meta("k", "v", now).await
        })
        .await;
        cancel_everywhere(&pair, "ping", async |s: &Store| s.ping().await).await;
        pair.subject.finish().await;
        pair.reference.finish().await;
    }
}
