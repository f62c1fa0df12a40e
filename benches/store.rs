//! Store throughput: transitions per second on MariaDB and on SQLite, next to the rate of a
//! plain single-row `BEGIN` + `INSERT` + `COMMIT` on its own ordinary connection to the same
//! database with the same durability settings, measured in the same run. A transition should
//! cost at most about two plain commits (ratio ≥ 0.5). The ratio comes from blocks of each
//! kind run alternately, so that whatever else the machine does weighs on all of them alike;
//! criterion's own figures per operation come first.
//!
//! Transitions run as one instance runs them: each decided on the instance's copy of the
//! session row from the previous one. The same transitions reading the row under its lock
//! (as when another instance moved the session on, or after a restart) are measured too.
//!
//! MariaDB comes from `AZI3_TEST_MYSQL_URL` (default `mysql://azi3:azi3@127.0.0.1:3306`); a
//! throw-away database is created and dropped. Run with `cargo bench --bench store`.

use std::time::{Duration, Instant};

use azi3_status_jobs::domain::{RobotId, RuleInput, Session};
use azi3_status_jobs::store::{
    CloseOutcome, EventInput, StatusCheckId, StatusCheckRefs, Store, StoredRule,
};
use criterion::{Criterion, Throughput};
use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};
use std::str::FromStr;

use sqlx::mysql::MySqlConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};
use tokio::runtime::Runtime;

/// A session that keeps taking events or closing windows, starting a new date when it ends.
struct Driver {
    store: Store,
    stored: StoredRule,
    refs: StatusCheckRefs,
    day: Date,
    id: StatusCheckId,
    deadline: Timestamp,
    next_event: u64,
    last_event_at: Timestamp,
}

impl Driver {
    async fn new(store: Store, gap: &str, first_day: Date, robot_id: u32) -> Driver {
        let rule = RuleInput {
            robot_id: RobotId::new(robot_id),
            timezone: "UTC".into(),
            start: "00:00".into(),
            end: "00:00".into(),
            gap: gap.into(),
            ..RuleInput::default()
        }
        .validate()
        .unwrap();
        let now = Timestamp::now();
        store.set_rule(&rule, now).await.unwrap();
        let stored = store.rule(RobotId::new(robot_id)).await.unwrap().unwrap();
        let refs = StatusCheckRefs {
            template_id: store.seed_template().await.unwrap().id,
            step_id: 1,
            script_version_id: 1,
            scheduled_id: 0,
        };
        let mut d = Driver {
            store,
            stored,
            refs,
            day: first_day,
            id: StatusCheckId::new(0),
            deadline: Timestamp::UNIX_EPOCH,
            next_event: u64::from(robot_id) * 1_000_000_000,
            last_event_at: Timestamp::UNIX_EPOCH,
        };
        d.start_day().await;
        d
    }

    async fn start_day(&mut self) {
        let session = Session::on(&self.stored.rule, self.day).unwrap();
        self.id = self
            .store
            .start_session(&self.stored, session, "bench", self.refs, session.start)
            .await
            .unwrap()
            .status_check_id();
        let view = self.store.session(self.id).await.unwrap().unwrap();
        self.deadline = view.state.window.end;
        self.last_event_at = session.start;
    }

    /// One `apply_event` that moves the window (1 ms after the previous event).
    async fn observe(&mut self) {
        self.next_event += 1;
        self.last_event_at += SignedDuration::from_millis(1);
        let e = EventInput {
            incoming_event_id: self.next_event,
            outgoing_event_id: Some(self.next_event),
            occurred_at: self.last_event_at,
        };
        self.store
            .apply_event(self.id, e, e.occurred_at)
            .await
            .unwrap();
    }

    /// One `close_window` (with its alarm); a new date when the session ended.
    async fn close(&mut self) {
        match self
            .store
            .close_window(self.id, self.deadline, self.deadline)
            .await
            .unwrap()
        {
            CloseOutcome::Closed { next: Some(w), .. } => self.deadline = w.end,
            CloseOutcome::Closed { next: None, .. } => {
                self.day = self.day.tomorrow().unwrap();
                self.start_day().await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A single-row `INSERT` + `COMMIT` through the store's own transaction path (on MySQL that
/// path has no `BEGIN`: two round trips).
async fn store_commit(store: &Store, n: i64) {
    store
        .execute_sql(
            "INSERT INTO bench_plain (id, payload) VALUES (?, ?)",
            &[n.into(), PAYLOAD.into()],
        )
        .await
        .unwrap();
}

/// The plain baseline: an ordinary sqlx connection of its own running `BEGIN`, a single-row
/// `INSERT`, `COMMIT`, with the same durability settings as the store.
enum Plain {
    Mysql(MySqlConnection),
    Sqlite(SqliteConnection),
}

impl Plain {
    async fn open(url: &str) -> Plain {
        if url.starts_with("mysql:") {
            Plain::Mysql(MySqlConnection::connect(url).await.unwrap())
        } else {
            let options = SqliteConnectOptions::from_str(url)
                .unwrap()
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30));
            Plain::Sqlite(options.connect().await.unwrap())
        }
    }

    async fn commit(&mut self, n: i64) {
        match self {
            Plain::Mysql(c) => {
                let mut tx = c.begin().await.unwrap();
                sqlx::query("INSERT INTO bench_plain (id, payload) VALUES (?, ?)")
                    .bind(n)
                    .bind(PAYLOAD)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            Plain::Sqlite(c) => {
                let mut tx = c.begin().await.unwrap();
                sqlx::query("INSERT INTO bench_plain (id, payload) VALUES (?, ?)")
                    .bind(n)
                    .bind(PAYLOAD)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
    }
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, backend: &str, url: &str) -> Rates {
    let store = rt.block_on(Store::connect(url)).unwrap();
    rt.block_on(async {
        store.migrate(true).await.unwrap();
        store
            .execute_sql(
                "CREATE TABLE bench_plain (id BIGINT PRIMARY KEY, payload VARCHAR(100) NOT NULL)",
                &[],
            )
            .await
            .unwrap();
    });
    let mut plain = rt.block_on(Plain::open(url));
    let mut observer = rt.block_on(Driver::new(store.clone(), "120m", date(2030, 1, 1), 1));
    let mut closer = rt.block_on(Driver::new(store.clone(), "1m", date(2030, 1, 1), 2));
    let locked = store.without_session_copies();
    let mut locked_observer = rt.block_on(Driver::new(locked.clone(), "120m", date(2030, 1, 1), 3));
    let mut locked_closer = rt.block_on(Driver::new(locked, "1m", date(2030, 1, 1), 4));
    let mut group = c.benchmark_group(format!("store/{backend}"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    let mut plain_id = 0_i64;
    group.bench_function("insert_commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    plain_id += 1;
                    plain.commit(plain_id).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("insert_commit_store_path", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    plain_id += 1;
                    store_commit(&store, plain_id).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("apply_event", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    observer.observe().await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("close_window", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    closer.close().await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    let rates = rt.block_on(interleaved(
        &store,
        &mut plain,
        [
            &mut observer,
            &mut closer,
            &mut locked_observer,
            &mut locked_closer,
        ],
        &mut plain_id,
    ));
    rt.block_on(store.close());
    rates
}

/// The rates compared: transitions and plain commits measured in alternating blocks, so that
/// whatever else the machine does at the time weighs on both alike.
struct Rates {
    plain: f64,
    store_path: f64,
    /// `apply_event`, `close_window`, then the same reading the session row under its lock.
    transitions: [f64; 4],
}

async fn interleaved(
    store: &Store,
    plain: &mut Plain,
    drivers: [&mut Driver; 4],
    plain_id: &mut i64,
) -> Rates {
    const ROUNDS: u32 = 120;
    const BLOCK: u32 = 25;
    let [observer, closer, locked_observer, locked_closer] = drivers;
    let mut spent = [Duration::ZERO; 6];
    // Adds the time of BLOCK runs of `$op` to `spent[$slot]`.
    macro_rules! timed {
        ($slot:expr, $op:expr) => {{
            let t = Instant::now();
            for _ in 0..BLOCK {
                $op;
            }
            spent[$slot] += t.elapsed();
        }};
    }
    for _ in 0..ROUNDS {
        timed!(0, {
            *plain_id += 1;
            plain.commit(*plain_id).await
        });
        timed!(1, {
            *plain_id += 1;
            store_commit(store, *plain_id).await
        });
        timed!(2, observer.observe().await);
        timed!(3, closer.close().await);
        timed!(4, locked_observer.observe().await);
        timed!(5, locked_closer.close().await);
    }
    let rate = |d: Duration| f64::from(ROUNDS * BLOCK) / d.as_secs_f64();
    Rates {
        plain: rate(spent[0]),
        store_path: rate(spent[1]),
        transitions: [
            rate(spent[2]),
            rate(spent[3]),
            rate(spent[4]),
            rate(spent[5]),
        ],
    }
}

fn report(results: &[(&str, Rates)]) {
    println!(
        "\nbackend   transition                  transitions/s   BEGIN+INSERT+COMMIT/s   ratio   (INSERT+COMMIT on the store path/s)"
    );
    const NAMES: [&str; 4] = [
        "apply_event",
        "close_window",
        "apply_event, locked read",
        "close_window, locked read",
    ];
    for (backend, r) in results {
        for (name, tps) in NAMES.iter().zip(r.transitions) {
            println!(
                "{backend:<9} {name:<27} {tps:>13.0}   {:>21.0}   {:>5.2}   ({:.0})",
                r.plain,
                tps / r.plain,
                r.store_path
            );
        }
    }
}

fn main() {
    let rt = Runtime::new().unwrap();
    let mut c = Criterion::default().configure_from_args();

    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let mut results = vec![("sqlite", bench_backend(&mut c, &rt, "sqlite", &url))];

    let base = std::env::var("AZI3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://azi3:azi3@127.0.0.1:3306".into());
    let db = format!("azi3_bench_{}", std::process::id());
    let admin = rt.block_on(async {
        let mut conn = sqlx::MySqlConnection::connect(&base).await.ok()?;
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .await
            .ok()?;
        Some(conn)
    });
    match admin {
        Some(mut conn) => {
            let url = format!("{base}/{db}");
            results.push(("mariadb", bench_backend(&mut c, &rt, "mariadb", &url)));
            rt.block_on(conn.execute(AssertSqlSafe(format!("DROP DATABASE {db}"))))
                .unwrap();
        }
        None => eprintln!(
            "MariaDB at {base} is not answering: its benchmarks are skipped (scripts/services.sh starts it)"
        ),
    }

    c.final_summary();
    report(&results);
}
