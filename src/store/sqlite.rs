//! The SQLite backend: one writer connection (SQLite serialises writers anyway, and several
//! writer connections only add busy-handler back-off; design §2.10), WAL, `BEGIN IMMEDIATE`
//! so that a write transaction holds the database from its first statement, and a busy timeout.
//! Reads go through the same connection: the service's reads are few and short.

mod transaction;

pub(crate) use transaction::SqliteTxConn;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::error::StoreError;
use super::outbox::{self, CLAIMABLE};
use super::session_copies::SessionCopies;
use super::session_row::ts_to_ms;
use super::sql::{Inner, Tx};
use super::types::OutboxAlarm;

/// The one connection, held by whoever runs a transaction. Not a pool: a pool's hand-over
/// costs about as much as a statement, and there is only ever one connection to hand over.
#[derive(Debug, Clone)]
pub struct Writer {
    state: Arc<Mutex<WriterState>>,
}

/// The connection, and whether a transaction was left open on it (its holder dropped it
/// without committing); the next holder rolls that back first.
#[derive(Debug)]
pub struct WriterState {
    conn: Option<SqliteConnection>,
    in_transaction: bool,
}

impl WriterState {
    /// The connection, with any transaction a previous holder abandoned rolled back.
    pub async fn connection(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Invalid("the store is closed".into()))?;
        if self.in_transaction {
            match sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
                Ok(_) => {}
                // SQLite ended it already: it rolls back by itself after some errors (a full
                // disk, an I/O error), and a `COMMIT` sent with other statements may have run
                // although its holder never saw the answer.
                Err(sqlx::Error::Database(e))
                    if e.message().contains("no transaction is active") => {}
                Err(e) => return Err(e.into()),
            }
            self.in_transaction = false;
        }
        Ok(conn)
    }

    /// The connection inside the open transaction.
    pub fn open(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a transaction runs on an open store")
    }

    /// Records that the open transaction was committed (its `COMMIT` went with other
    /// statements).
    pub fn committed(&mut self) {
        self.in_transaction = false;
    }
}

impl Writer {
    /// Holds the connection until the guard is dropped.
    pub async fn lock(&self) -> OwnedMutexGuard<WriterState> {
        Arc::clone(&self.state).lock_owned().await
    }

    /// Closes the connection; later calls fail with "the store is closed".
    pub async fn close(&self) {
        let mut state = self.lock().await;
        if let Some(conn) = state.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// Opens the database file named by `url` (`sqlite://path?mode=rwc`), creating it if needed.
pub async fn connect(url: &str) -> Result<Writer, StoreError> {
    let conn = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed transition survives a power loss, not only a process crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        .connect()
        .await?;
    Ok(Writer {
        state: Arc::new(Mutex::new(WriterState {
            conn: Some(conn),
            in_transaction: false,
        })),
    })
}

/// Begins a write transaction on the single writer connection.
pub async fn begin(writer: &Writer, copies: &SessionCopies) -> Result<Tx, StoreError> {
    let mut state = writer.lock().await;
    state.connection().await?;
    // Marked before the statement is sent: sqlx runs a statement on the connection's own
    // thread, so a `BEGIN` whose future is dropped (a client hung up, a task was cancelled)
    // still opens the transaction, and the next holder must know to roll it back.
    state.in_transaction = true;
    let conn = state.open();
    match sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await {
        Ok(_) => {}
        // A transaction nobody knows of: whatever left it, it can never be committed by its
        // owner, and every later transaction would fail on it, so the store would go quiet.
        Err(sqlx::Error::Database(e)) if e.message().contains("within a transaction") => {
            tracing::warn!("an abandoned SQLite transaction was found open: rolled back");
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Tx::new(Inner::Sqlite(SqliteTxConn::new(state)), copies))
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
    // A lease too long for i64 milliseconds saturates: its claims never run out.
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let expired = ts_to_ms(now).saturating_sub(lease_ms);
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
