//! Shared set-up of the store tests: a throw-away database on each backend (a SQLite file in a
//! temporary directory and a fresh MariaDB database), fixtures, and a dump of every table.

use azi3_status_jobs::domain::RobotId;
use std::sync::atomic::{AtomicBool, Ordering};

use azi3_status_jobs::domain::{Rule, RuleInput, Session};
use azi3_status_jobs::store::{
    Dialect, StatusCheckId, StatusCheckRefs, Store, StoredRule, TextRows,
};
use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::{AssertSqlSafe, Connection, Executor};

use crate::support::exclusive::{Shared, shared};
use crate::support::{mysql_base_url, unique_name};

/// One throw-away database.
pub struct TestDb {
    pub store: Store,
    pub name: &'static str,
    url: String,
    cleanup: Cleanup,
    _turn: Shared,
}

enum Cleanup {
    Sqlite(tempfile::TempDir),
    Mysql(String),
}

static STALE_DROPPED: AtomicBool = AtomicBool::new(false);

/// Drops the test databases of test processes that are gone (a failed test leaves its
/// database behind). Once per process: the databases of this process are its own tests'.
async fn drop_stale_databases(admin: &mut sqlx::MySqlConnection) {
    let names: Vec<String> = sqlx::query_scalar("SHOW DATABASES LIKE 'azi3\\_test\\_%'")
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let gone = pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists());
        if gone {
            let _ = admin
                .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
                .await;
        }
    }
}

impl TestDb {
    /// A fresh, empty SQLite file.
    pub async fn sqlite() -> TestDb {
        let turn = shared();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("store.db").display()
        );
        TestDb {
            store: Store::connect(&url).await.expect("open sqlite"),
            name: "sqlite",
            url,
            cleanup: Cleanup::Sqlite(dir),
            _turn: turn,
        }
    }

    /// A fresh MariaDB database with a unique name.
    pub async fn mysql() -> TestDb {
        let turn = shared();
        let base = mysql_base_url();
        let db = unique_name("azi3_test");
        let mut admin = sqlx::MySqlConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "MariaDB at {base} is not answering ({e}); start it with scripts/services.sh"
                )
            });
        if !STALE_DROPPED.swap(true, Ordering::SeqCst) {
            drop_stale_databases(&mut admin).await;
        }
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = format!("{base}/{db}");
        TestDb {
            store: Store::connect(&url).await.expect("open mysql"),
            name: "mariadb",
            url,
            cleanup: Cleanup::Mysql(db),
            _turn: turn,
        }
    }

    /// Both backends, each migrated with the shared tables and the template seeded.
    pub async fn both() -> Vec<TestDb> {
        let mut out = Vec::new();
        for db in [TestDb::sqlite().await, TestDb::mysql().await] {
            db.store.migrate(true).await.expect("migrate");
            db.store.seed_template().await.expect("seed template");
            out.push(db);
        }
        out
    }

    /// A second store on the same database, as another instance of the service has: its own
    /// connections and its own copies of session rows. Close it before [`TestDb::finish`].
    pub async fn another_instance(&self) -> Store {
        Store::connect(&self.url)
            .await
            .expect("open another instance")
    }

    /// The MariaDB database name (empty for SQLite).
    pub fn database_name(&self) -> &str {
        match &self.cleanup {
            Cleanup::Mysql(db) => db,
            Cleanup::Sqlite(_) => "",
        }
    }

    /// Drops the database (a MariaDB database is dropped; a SQLite directory removed).
    pub async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::Sqlite(dir) => drop(dir),
            Cleanup::Mysql(db) => {
                let mut admin = sqlx::MySqlConnection::connect(&mysql_base_url())
                    .await
                    .expect("connect");
                admin
                    .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                    .await
                    .expect("drop test database");
                admin.close().await.ok();
            }
        }
    }
}

/// `2025-03-30T07:10:00Z`-style text to an instant.
pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A rule of robot 7 in Europe/Amsterdam with the given times and gap.
pub fn rule(start: &str, end: &str, gap: &str) -> Rule {
    RuleInput {
        robot_id: RobotId::new(7),
        timezone: "Europe/Amsterdam".into(),
        start: start.into(),
        end: end.into(),
        gap: gap.into(),
        ..RuleInput::default()
    }
    .validate()
    .unwrap()
}

/// The script columns the tests use.
pub async fn refs(store: &Store) -> StatusCheckRefs {
    StatusCheckRefs {
        template_id: store.template().await.unwrap().expect("template seeded").id,
        step_id: 901,
        script_version_id: 77,
        scheduled_id: 0,
    }
}

/// Stores `rule` and starts its session on `date`; returns the status check id.
pub async fn started(store: &Store, rule: &Rule, date: Date) -> (StatusCheckId, Session) {
    let now = ts("2025-01-01T00:00:00Z");
    store.set_rule(rule, now).await.unwrap();
    let stored: StoredRule = store.rule(rule.robot_id).await.unwrap().unwrap();
    let session = Session::on(rule, date).unwrap();
    let id = store
        .start_session(
            &stored,
            session,
            "azi3-status-jobs:test",
            refs(store).await,
            now,
        )
        .await
        .unwrap()
        .status_check_id();
    (id, session)
}

const TABLES: &[&str] = &[
    "status_check_description",
    "status_check_template",
    "status_check_template_detail",
    "status_check",
    "status_check_poller",
    "status_check_record",
    "status_job_rule",
    "status_job_session",
    "status_job_event",
    "status_job_alarm",
    "status_job_dead_letter",
    "status_job_meta",
];

/// [`TABLES`] and the service tables of subscriptions and local event ids.
pub const ALL_TABLES: &[&str] = &[
    "status_check_description",
    "status_check_template",
    "status_check_template_detail",
    "status_check",
    "status_check_poller",
    "status_check_record",
    "status_job_rule",
    "status_job_session",
    "status_job_event",
    "status_job_alarm",
    "status_job_dead_letter",
    "status_job_meta",
    "status_job_subscription",
    "status_job_event_id",
];

/// The columns the database stamps with its own clock (`CURRENT_TIMESTAMP`): two databases
/// that ran the same transitions at different moments differ only in them.
pub const DATABASE_CLOCK_COLUMNS: &[&str] = &["created_at", "updated_at"];

/// Every row of every table, as text, in a stable order: two equal snapshots mean nothing
/// changed.
pub async fn snapshot(store: &Store) -> Vec<String> {
    snapshot_tables(store, TABLES).await
}

/// As [`snapshot`], for the given tables.
pub async fn snapshot_tables(store: &Store, tables: &[&str]) -> Vec<String> {
    snapshot_masked(store, tables, &[]).await
}

/// As [`snapshot_tables`], with the columns named in `masked` shown as `<masked>`.
pub async fn snapshot_masked(store: &Store, tables: &[&str], masked: &[&str]) -> Vec<String> {
    let columns_of: Vec<String> = tables
        .iter()
        .map(|table| match store.dialect() {
            Dialect::Mysql => format!(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() \
                 AND table_name = '{table}' ORDER BY ordinal_position"
            ),
            Dialect::Sqlite => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
        })
        .collect();
    let columns = select(store, &columns_of).await;
    let rows_of: Vec<String> = tables
        .iter()
        .zip(columns)
        .map(|(table, columns)| {
            assert!(!columns.is_empty(), "table {table} has no columns");
            let exprs: Vec<String> = columns
                .iter()
                .map(|column| {
                    let c = column[0].as_deref().unwrap();
                    if masked.contains(&c) {
                        "'<masked>'".to_string()
                    } else {
                        format!("COALESCE(CAST(`{c}` AS CHAR), '<null>')")
                    }
                })
                .collect();
            let concat = match store.dialect() {
                Dialect::Mysql => format!("CONCAT_WS('|', {})", exprs.join(", ")),
                Dialect::Sqlite => exprs.join(" || '|' || "),
            };
            format!("SELECT {concat} AS r FROM {table} ORDER BY r")
        })
        .collect();
    // Every table read in one transaction: one state of the database.
    let mut out = Vec::new();
    for (table, rows) in tables.iter().zip(select(store, &rows_of).await) {
        for row in rows {
            out.push(format!("{table}: {}", row[0].as_deref().unwrap()));
        }
    }
    out
}

async fn select(store: &Store, queries: &[String]) -> Vec<TextRows> {
    let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
    store.select_sql(&queries).await.unwrap()
}

/// A pool on the MariaDB server without a database, for administration.
pub async fn admin_mysql() -> sqlx::MySqlPool {
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&mysql_base_url())
        .await
        .expect("connect to MariaDB")
}

/// Kills every connection using database `db`; returns how many.
pub async fn kill_connections_to(admin: &sqlx::MySqlPool, db: &str) -> usize {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM information_schema.processlist WHERE db = ?")
            .bind(db)
            .fetch_all(admin)
            .await
            .unwrap();
    for id in &ids {
        // A connection may have gone on its own meanwhile.
        let _ = admin.execute(AssertSqlSafe(format!("KILL {id}"))).await;
    }
    ids.len()
}
