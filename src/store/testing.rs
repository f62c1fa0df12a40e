//! What the integration tests and benchmarks reach into the store for, compiled only with the
//! `testing` feature (release builds leave it out): the fault plan, the session copies, and
//! SQL run directly, to set up rows and tables the store itself never writes, to read what it
//! wrote, or to measure its transaction path on its own.

use super::fault::FaultPlan;
use super::session_copies::SessionCopies;
use super::sql::{Arg, Row, Value};
use super::{StatusCheckId, Store, StoreError};

impl Store {
    /// The fault hook tests use to kill a transition's connection (see [`FaultPlan`]).
    pub fn fault_plan(&self) -> &FaultPlan {
        &self.fault
    }

    /// Whether this instance holds a copy of the session's row (`src/store/session_copies.rs`).
    pub fn holds_copy_of(&self, status_check_id: StatusCheckId) -> bool {
        self.copies.holds(status_check_id)
    }

    /// How many group commits of events this store decided on its copies, without a read
    /// (`src/store/intake_batch.rs`), whether they then committed or ran again.
    pub fn intake_batches_on_copies(&self) -> u64 {
        self.copies.batches_on_copies()
    }

    /// This store with every transition reading its session row under the lock, as when every
    /// copy is stale; for comparing the two in a benchmark.
    pub fn without_session_copies(&self) -> Store {
        Store {
            copies: SessionCopies::new(false),
            group: Default::default(),
            ..self.clone()
        }
    }

    /// Runs one statement with `args` in a transaction of its own and commits it; returns how
    /// many rows it changed.
    pub async fn execute_sql(&self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx.execute(sql, args).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Runs statements separated by `;`, without arguments, in one transaction and commits it.
    pub async fn execute_sql_script(&self, sql: &'static str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.execute_script(sql).await?;
        tx.commit().await
    }

    /// Runs one statement with `args` in a transaction and drops the transaction without
    /// committing it, as a caller that fails half-way leaves one.
    pub async fn execute_sql_uncommitted(&self, sql: &str, args: &[Arg]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.execute(sql, args).await?;
        drop(tx);
        Ok(())
    }

    /// The rows each of `queries` selects, all read in one transaction (one state of the
    /// database), each column as text (`None` for NULL).
    pub async fn select_sql(&self, queries: &[&str]) -> Result<Vec<TextRows>, StoreError> {
        let mut tx = self.begin().await?;
        let mut selected = Vec::with_capacity(queries.len());
        for sql in queries {
            let rows = tx.fetch_all(sql, &[]).await?;
            selected.push(rows.into_iter().map(as_text).collect());
        }
        tx.rollback().await;
        Ok(selected)
    }
}

/// The rows of one query, each column as text (`None` for NULL).
pub type TextRows = Vec<Vec<Option<String>>>;

fn as_text(row: Row) -> Vec<Option<String>> {
    row.into_values()
        .into_iter()
        .map(|value| match value {
            Value::Null => None,
            Value::Int(v) => Some(v.to_string()),
            Value::Text(t) => Some(t),
        })
        .collect()
}
