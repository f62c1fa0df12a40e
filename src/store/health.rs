//! What the watchdog asks the store: how far behind the service has fallen, and what kind of
//! failure a store error is (for metrics and readiness, which must never carry driver text).

use jiff::Timestamp;

use super::Store;
use super::error::StoreError;
use super::session_row::{ms_to_ts, ts_to_ms};

/// Running windows past their closing time and alarms not yet posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Running windows whose deadline is at or before the cutoff asked about, counted up to
    /// the cap asked for.
    pub overdue_windows: u64,
    /// The earliest deadline among them.
    pub oldest_overdue_deadline: Option<Timestamp>,
    /// The earliest deadline among all running windows, due or not.
    pub next_deadline: Option<Timestamp>,
    /// Alarms in the outbox that are not yet sent, counted up to the cap asked for.
    pub unsent_alarms: u64,
    /// The window end of the oldest of them (beyond the cap, of the first that many in the
    /// order they were written).
    pub oldest_unsent_alarm: Option<Timestamp>,
}

impl Store {
    /// Counts the running windows whose deadline is at or before `cutoff` and the alarms not
    /// yet sent, each up to `cap` (a count at the cap says at least that many). The queries run
    /// on the indexes the closer and the dispatcher use, and read at most `cap` rows each.
    pub async fn backlog(&self, cutoff: Timestamp, cap: u64) -> Result<Backlog, StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                let windows = tx
                    .fetch_optional(
                        &format!(
                            "SELECT COUNT(*) AS backlog, MIN(window_end_ms) AS oldest FROM \
                             (SELECT window_end_ms FROM status_job_session \
                              WHERE result = 'PENDING' AND window_end_ms <= ? \
                              ORDER BY window_end_ms LIMIT {cap}) overdue"
                        ),
                        &[ts_to_ms(cutoff).into()],
                    )
                    .await?;
                let next = tx
                    .fetch_optional(
                        "SELECT MIN(window_end_ms) AS oldest FROM status_job_session WHERE result = 'PENDING'",
                        &[],
                    )
                    .await?;
                let alarms = tx
                    .fetch_optional(
                        &format!(
                            "SELECT COUNT(*) AS backlog, MIN(window_end_ms) AS oldest FROM \
                             (SELECT window_end_ms FROM status_job_alarm \
                              WHERE state IN ('pending', 'sending', 'failed') \
                              LIMIT {cap}) unsent"
                        ),
                        &[],
                    )
                    .await?;
                let count = |row: &Option<super::sql::Row>| -> Result<u64, StoreError> {
                    Ok(match row {
                        // A count is never negative; one that were reads as none.
                        Some(r) => u64::try_from(r.opt_int("backlog")?.unwrap_or(0)).unwrap_or(0),
                        None => 0,
                    })
                };
                let oldest = |row: &Option<super::sql::Row>| -> Result<Option<Timestamp>, StoreError> {
                    match row {
                        Some(r) => r.opt_int("oldest")?.map(ms_to_ts).transpose(),
                        None => Ok(None),
                    }
                };
                Ok(Backlog {
                    overdue_windows: count(&windows)?,
                    oldest_overdue_deadline: oldest(&windows)?,
                    next_deadline: oldest(&next)?,
                    unsent_alarms: count(&alarms)?,
                    oldest_unsent_alarm: oldest(&alarms)?,
                })
            })
        })
        .await
    }
}

impl StoreError {
    /// A short, stable name for the kind of failure, fit for a metric label or a readiness
    /// answer: `connection`, `pool_timeout`, `busy`, `constraint`, `corrupt`, `migration`,
    /// `invalid`, `database`, `fault`.
    pub fn kind(&self) -> &'static str {
        match self {
            _ if self.is_connection_lost() => "connection",
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
                "pool_timeout"
            }
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_),
            ) => "connection",
            StoreError::Raced => "busy",
            _ if self.is_retryable() => "busy",
            StoreError::Database(sqlx::Error::Database(db)) if db.constraint().is_some() => {
                "constraint"
            }
            StoreError::Database(_) => "database",
            StoreError::Migrate(_) => "migration",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Invalid(_) => "invalid",
            #[cfg(feature = "testing")]
            StoreError::FaultInjected => "fault",
        }
    }
}
