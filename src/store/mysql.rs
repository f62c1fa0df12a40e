//! The MySQL/MariaDB backend: connection set-up, the outbox claim with `SKIP LOCKED`, and the
//! start-up check of the script rows that `status_check` refers to.
//!
//! Every connection runs at READ COMMITTED (gap locks of REPEATABLE READ block concurrent
//! claims; design §2.11) with the session time zone `+00:00`, so TIMESTAMP columns hold UTC.
//! Transitions run on connections with `autocommit = 0`, so that they need no `BEGIN`: a
//! transition is a handful of short statements, and round trips are much of its cost. For the
//! same reason its writes go together with its `COMMIT` ([`Tx::write`]), and a connection that
//! committed goes straight to the next transaction ([`IdleConnections`]).

mod grouped;
mod transaction;

pub(crate) use transaction::MysqlTxConn;

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use sqlx::Executor;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use tokio::sync::Notify;

use super::error::StoreError;
use super::outbox;
use super::session_copies::SessionCopies;
use super::session_row::ts_to_ms;
use super::sql::{Arg, Inner, Tx};
use super::types::{OutboxAlarm, StatusCheckRefs};

/// The two pools of a MySQL store, on the same server and database.
#[derive(Debug, Clone)]
pub struct Pools {
    /// Connections with `autocommit = 0`, used only through [`Tx`], which always ends with
    /// `COMMIT` or by closing the connection: none goes back to the pool inside a transaction.
    pub tx: MySqlPool,
    /// Connections of `tx` that ended their transaction with `COMMIT`, for the next one.
    pub idle: IdleConnections,
    /// Ordinary connections for migrations, start-up checks and the test fault hook.
    pub plain: MySqlPool,
}

/// Transaction connections that committed, handed straight to the next transaction instead of
/// going back to the pool: the pool pings every connection it takes back, one more round trip
/// per transition, and a transition is only a few. They still count against the pool's size;
/// one that died meanwhile fails its next transaction's first statement, which then runs
/// again on a fresh connection.
#[derive(Clone, Default)]
pub struct IdleConnections(Arc<Mutex<Vec<PoolConnection<MySql>>>>, Arc<Notify>);

impl IdleConnections {
    fn take(&self) -> Option<PoolConnection<MySql>> {
        self.lock().pop()
    }

    pub(crate) fn put(&self, conn: PoolConnection<MySql>) {
        self.lock().push(conn);
        // A transaction waiting for the pool would otherwise never see this one: it does not
        // go back to the pool.
        self.1.notify_one();
    }

    /// Gives every kept connection back to the pool (after a connection was lost, the others
    /// may be gone too; before the pool closes, which waits for all of them).
    pub fn clear(&self) {
        let kept = std::mem::take(&mut *self.lock());
        drop(kept);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PoolConnection<MySql>>> {
        // The list stays valid whatever a panicking holder did.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for IdleConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdleConnections({})", self.lock().len())
    }
}

/// Opens the pools on `url` (`mysql://user:password@host:port/database`).
pub async fn connect(url: &str, max_connections: u32) -> Result<Pools, StoreError> {
    let options = MySqlConnectOptions::from_str(url)?.timezone(Some("+00:00".to_string()));
    let tx = MySqlPoolOptions::new()
        .max_connections(max_connections.max(1))
        // No ping before each transaction: it would be one more round trip per transition. A
        // connection found dead by the first statement makes the store run the transaction
        // again on a fresh one (nothing was committed).
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                conn.execute("SET SESSION autocommit = 0").await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await?;
    let plain = MySqlPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with(options);
    Ok(Pools {
        tx,
        idle: IdleConnections::default(),
        plain,
    })
}

/// Begins a transaction: takes an `autocommit = 0` connection (one that just committed, if
/// any); its first statement opens the transaction.
pub async fn begin(pools: &Pools, copies: &SessionCopies) -> Result<Tx, StoreError> {
    let conn = loop {
        if let Some(conn) = pools.idle.take() {
            break conn;
        }
        // With more transactions wanted at once than the pool holds, the connections are
        // all kept here after their commits: wait for one of those as well as for the pool.
        let kept = pools.idle.1.notified();
        tokio::select! {
            conn = pools.tx.acquire() => break conn?,
            () = kept => {}
        }
    };
    Ok(Tx::new(
        Inner::Mysql {
            tx: MysqlTxConn::new(conn, pools.idle.clone()),
            #[cfg(feature = "testing")]
            pool: pools.plain.clone(),
        },
        copies,
    ))
}

/// Claims up to `limit` alarms for `owner`: rows another dispatcher holds locked are skipped,
/// so two dispatchers never claim the same alarm.
pub async fn claim(
    tx: &mut Tx,
    owner: &str,
    limit: u32,
    now: Timestamp,
    lease: SignedDuration,
) -> Result<Vec<OutboxAlarm>, StoreError> {
    // A lease too long for i64 milliseconds saturates: its claims never run out.
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let expired = ts_to_ms(now).saturating_sub(lease_ms);
    // One statement per state, each a range of an index: a single statement with the three
    // conditions ORed scans the table, which holds every alarm ever sent. Alarms whose claim
    // ran out and failed ones go before pending ones: they are older. Those whose claim ran
    // out are taken oldest claim first, in the order of the `(state, claimed_at_ms)` index:
    // ordered by id, MariaDB walked every alarm being posted through `(state, id)` instead.
    let kinds: [(&str, Vec<Arg>); 3] = [
        (
            "state = 'sending' AND claimed_at_ms < ? ORDER BY claimed_at_ms",
            vec![expired.into()],
        ),
        (
            "state = 'failed' AND retry_at_ms <= ? ORDER BY id",
            vec![ts_to_ms(now).into()],
        ),
        ("state = 'pending' ORDER BY id", vec![]),
    ];
    let mut ids: Vec<i64> = Vec::new();
    for (condition, mut args) in kinds {
        let wanted = u64::from(limit).saturating_sub(ids.len() as u64);
        if wanted == 0 {
            break;
        }
        args.push(wanted.into());
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT id FROM status_job_alarm WHERE {condition} LIMIT ? \
                     FOR UPDATE SKIP LOCKED"
                ),
                &args,
            )
            .await?;
        for row in &rows {
            ids.push(row.int("id")?);
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; ids.len()].join(", ");
    let mut args: Vec<Arg> = vec![owner.into(), ts_to_ms(now).into(), ts_to_ms(now).into()];
    args.extend(ids.iter().map(|id| Arg::Int(*id)));
    tx.execute(
        &format!(
            "UPDATE status_job_alarm SET state = 'sending', claimed_by = ?, claimed_at_ms = ?, \
             updated_at_ms = ?, attempts = attempts + 1 WHERE id IN ({placeholders})"
        ),
        &args,
    )
    .await?;
    tx.checkpoint().await?;
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT {} FROM status_job_alarm WHERE id IN ({placeholders}) ORDER BY id",
                outbox::COLUMNS
            ),
            &ids.iter().map(|id| Arg::Int(*id)).collect::<Vec<_>>(),
        )
        .await?;
    rows.iter().map(outbox::from_row).collect()
}

/// Checks that the rows the `status_check` script columns point at exist in the shared
/// schema; the message says what to create when they do not (contracts §4.7, §6 item 9).
pub async fn check_script_refs(pool: &MySqlPool, refs: StatusCheckRefs) -> Result<(), String> {
    let step = exists(pool, "script_step", refs.step_id).await;
    let version = exists(pool, "script_version", refs.script_version_id).await;
    let mut missing = Vec::new();
    match step {
        Ok(true) => {}
        Ok(false) => missing.push(format!(
            "status_check.step_id = {} (config key status_check.step_id) has no row in script_step: \
             create a placeholder script_step (with an existing step_type_id) for azi3-status-jobs \
             and put its id in status_check.step_id",
            refs.step_id
        )),
        Err(e) => missing.push(format!("cannot read script_step: {e}")),
    }
    match version {
        Ok(true) => {}
        Ok(false) => missing.push(format!(
            "status_check.script_version_id = {} (config key status_check.script_version_id) has no \
             row in script_version: create a placeholder script_reference and script_version named \
             'azi3-status-jobs placeholder' and put the version id in status_check.script_version_id",
            refs.script_version_id
        )),
        Err(e) => missing.push(format!("cannot read script_version: {e}")),
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}

async fn exists(pool: &MySqlPool, table: &'static str, id: u64) -> Result<bool, sqlx::Error> {
    let sql = match table {
        "script_step" => "SELECT COUNT(*) FROM script_step WHERE id = ?",
        _ => "SELECT COUNT(*) FROM script_version WHERE id = ?",
    };
    let n: i64 = sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?;
    Ok(n > 0)
}
