//! What can go wrong in the store.

/// The check on `status_job_session.version` (migration 0004).
const SESSION_VERSION_CHECK: &str = "ck_status_job_session_version";

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or the connection broke.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration set could not be applied.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds something the service never writes.
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    /// The caller asked for something the store cannot do.
    #[error("{0}")]
    Invalid(String),
    /// Another transaction raced this one to a unique key; running it again resolves it.
    #[error("lost a race for a unique key; retry")]
    Raced,
    /// A test armed the fault hook and this transaction hit it.
    #[cfg(feature = "testing")]
    #[error("fault injected by a test")]
    FaultInjected,
}

impl StoreError {
    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        StoreError::Corrupt(msg.into())
    }

    /// Whether running the whole transaction again may succeed: a lock wait timeout, a
    /// deadlock or a duplicate key on MySQL (1205, 1213, 1062), a busy database on SQLite, a
    /// lost unique-key race, or a session row moved on since the copy the transaction was
    /// decided on (see `src/store/session_copies.rs`).
    pub fn is_retryable(&self) -> bool {
        if self.is_stale_copy() {
            return true;
        }
        match self {
            StoreError::Raced => true,
            StoreError::Database(sqlx::Error::Database(db)) => {
                // A unique key that is already there (MySQL 1062, SQLite's primary key 1555 and
                // unique 2067): written by a transaction that committed meanwhile, or an event
                // taken already into a session whose transition was decided on a copy; running
                // again from a locked read sees it (see `transitions::apply_event`).
                if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                    return matches!(my.number(), 1062 | 1205 | 1213);
                }
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
                db.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6) || matches!(c, 1555 | 2067))
            }
            _ => false,
        }
    }

    /// Whether the session row's version check refused a write: the row moved on since the
    /// copy the transaction was decided on. MariaDB, MySQL and SQLite all name the constraint
    /// in the message.
    pub fn is_stale_copy(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                db.message().contains(SESSION_VERSION_CHECK)
            }
            _ => false,
        }
    }

    /// Whether the connection was lost (closed, reset, killed, server gone): a transaction
    /// that had not been committed when this happened did nothing and can run again.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed) => true,
            StoreError::Database(sqlx::Error::Database(db)) => db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                // Server shutdown, connection killed, server gone away, lost during query.
                .is_some_and(|my| matches!(my.number(), 1053 | 1927 | 2006 | 2013)),
            _ => false,
        }
    }
}
