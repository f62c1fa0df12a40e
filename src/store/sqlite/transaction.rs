//! A SQLite transaction's connection: its statements, the writes it queues to send with the
//! next statement that needs an answer, and the rows it reads back.

use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::{AssertSqlSafe, Column, Row as _, TypeInfo, ValueRef};
use tokio::sync::OwnedMutexGuard;

use super::WriterState;
use crate::store::error::StoreError;
use crate::store::sql::{Arg, ResultSets, Row, Value};

/// The SQLite connection inside an open transaction. Writes whose outcome the transaction
/// does not read ([`Tx::write`]) wait in `queued` and go to the connection in one statement
/// text with whatever needs an answer next, usually `COMMIT`: each statement sent on its own
/// is one more hand-over to the connection's thread and back. The text is prepared once and
/// kept in the connection's statement cache, as a transition's writes have a few shapes only.
///
/// [`Tx::write`]: crate::store::sql::Tx::write
pub struct SqliteTxConn {
    state: OwnedMutexGuard<WriterState>,
    /// `;`-terminated statements not yet sent.
    queued: String,
    /// Their arguments, in order.
    queued_args: Vec<Arg>,
}

impl SqliteTxConn {
    pub(crate) fn new(state: OwnedMutexGuard<WriterState>) -> Self {
        SqliteTxConn {
            state,
            queued: String::new(),
            queued_args: Vec::new(),
        }
    }

    /// Runs a statement after the queued writes; returns the number of rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        Ok(bind_sqlite(sql, args)
            .execute(self.flushed().await?)
            .await?
            .rows_affected())
    }

    /// Runs an `INSERT` after the queued writes; returns the new rowid.
    pub(crate) async fn insert(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        let rowid = bind_sqlite(sql, args)
            .execute(self.flushed().await?)
            .await?
            .last_insert_rowid();
        u64::try_from(rowid).map_err(|_| StoreError::corrupt(format!("negative rowid {rowid}")))
    }

    /// Runs a query after the queued writes; returns every row.
    pub(crate) async fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<Row>, StoreError> {
        let rows = bind_sqlite(sql, args)
            .fetch_all(self.flushed().await?)
            .await?;
        let mut read = ResultSets::of(sql);
        for row in &rows {
            push_row(&mut read, row)?;
        }
        Ok(read.into_rows())
    }

    /// Runs the queued writes and `statements` (written as `tagged`) as one text, one
    /// hand-over to the connection's thread, and adds their rows to `read`.
    pub(crate) async fn fetch_each(
        &mut self,
        statements: &[(String, Vec<Arg>)],
        tagged: &[String],
        read: &mut ResultSets<'_>,
    ) -> Result<(), StoreError> {
        let mut sql = std::mem::take(&mut self.queued);
        let mut args = std::mem::take(&mut self.queued_args);
        for (statement, (_, a)) in tagged.iter().zip(statements) {
            sql.push_str(statement);
            sql.push(';');
            args.extend_from_slice(a);
        }
        let rows = bind_sqlite(&sql, &args)
            .fetch_all(self.state.open())
            .await?;
        for row in &rows {
            push_row(read, row)?;
        }
        Ok(())
    }

    /// Runs a batch of statements given as one text, without arguments, after the queued
    /// writes.
    pub(crate) async fn execute_script(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql).execute(self.flushed().await?).await?;
        Ok(())
    }

    pub(crate) fn queue(&mut self, sql: &str, args: &[Arg]) {
        self.queued.push_str(sql);
        self.queued.push(';');
        self.queued_args.extend_from_slice(args);
    }

    /// The connection, with the queued writes sent.
    pub(crate) async fn flushed(&mut self) -> Result<&mut sqlx::SqliteConnection, sqlx::Error> {
        if !self.queued.is_empty() {
            let sql = std::mem::take(&mut self.queued);
            let args = std::mem::take(&mut self.queued_args);
            bind_sqlite(&sql, &args).execute(self.state.open()).await?;
        }
        Ok(self.state.open())
    }

    /// Sends the queued writes and `COMMIT` together. On an error the server runs nothing
    /// after the failing statement, and the transaction stays open to be rolled back.
    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        self.queue("COMMIT", &[]);
        self.flushed().await?;
        self.state.committed();
        Ok(())
    }

    /// Rolls the transaction back now.
    pub(crate) async fn roll_back(mut self) {
        // If this fails the connection stays marked, and the next holder tries again.
        let _ = self.state.connection().await;
    }
}

fn bind_sqlite<'q>(sql: &str, args: &[Arg]) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(t) => q.bind(t.clone()),
            Arg::Null => q.bind(Option::<i64>::None),
        };
    }
    q
}

/// Adds a row to `read`.
fn push_row(read: &mut ResultSets<'_>, row: &SqliteRow) -> Result<(), StoreError> {
    let mut values = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let value = match raw.type_info().name() {
            "INTEGER" | "BOOLEAN" => Value::Int(row.try_get::<i64, _>(i)?),
            _ => Value::Text(row.try_get_unchecked::<String, _>(i)?),
        };
        values.push(value);
    }
    read.push(row.columns().iter().map(Column::name), values)
}
