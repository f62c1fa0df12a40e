//! The SQLite backend: one writer connection (SQLite serialises writers anyway, and several
//! writer connections only add busy-handler back-off; stack notes §7), WAL, `BEGIN IMMEDIATE`
//! so that a write transaction holds the database from its first statement, and a busy timeout.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::error::StoreError;
use super::fault::FaultPlan;
use super::outbox::{self, CLAIMABLE};
use super::session_row::ts_to_ms;
use super::sql::{Inner, Tx};
use super::types::OutboxAlarm;

/// Opens the database file named by `url` (`sqlite://path?mode=rwc`), creating it if needed.
pub async fn connect(url: &str) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed transition survives a power loss, not only a process crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        // A local file connection does not go stale; a check per transaction would only cost.
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Begins a write transaction on the single writer connection.
pub async fn begin(pool: &SqlitePool, fault: &Arc<FaultPlan>) -> Result<Tx, StoreError> {
    Ok(Tx {
        inner: Inner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        fault: Arc::clone(fault),
        fault_fired: false,
    })
}

/// Claims up to `limit` alarms for `owner` in one `UPDATE … RETURNING`; the writer lock makes
/// it exclusive.
pub async fn claim(
    tx: &mut Tx,
    owner: &str,
    limit: u32,
    now: Timestamp,
    lease: SignedDuration,
) -> Result<Vec<OutboxAlarm>, StoreError> {
    let expired = ts_to_ms(now) - lease.as_millis() as i64;
    let rows = tx
        .fetch_all(
            &format!(
                "UPDATE status_job_alarm SET state = 'sending', claimed_by = ?, claimed_at_ms = ?, \
                 updated_at_ms = ?, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM status_job_alarm WHERE {CLAIMABLE} ORDER BY id LIMIT ?) \
                 RETURNING {}",
                outbox::COLUMNS
            ),
            &[
                owner.into(),
                ts_to_ms(now).into(),
                ts_to_ms(now).into(),
                ts_to_ms(now).into(),
                expired.into(),
                limit.into(),
            ],
        )
        .await?;
    tx.checkpoint().await?;
    let mut alarms: Vec<OutboxAlarm> = rows
        .iter()
        .map(outbox::from_row)
        .collect::<Result<_, _>>()?;
    alarms.sort_by_key(|a| a.id);
    Ok(alarms)
}
