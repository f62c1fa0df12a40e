//! A MySQL transaction's connection: its statements, the writes it queues to send with the
//! next statement that needs an answer, the text those go in, and the rows it reads back.

#[cfg(feature = "testing")]
use sqlx::mysql::MySqlPool;
use sqlx::mysql::{MySql, MySqlArguments, MySqlConnection, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Column, Row as _, TypeInfo, ValueRef};

use super::IdleConnections;
use crate::store::error::StoreError;
use crate::store::sql::{Arg, ResultSets, Row, Value};

/// A MySQL connection running with `autocommit = 0`: its first statement opens the
/// transaction, so a transition costs no `BEGIN` round trip. Dropped before
/// [`MysqlTxConn::commit`], the connection is closed rather than returned to the pool, and
/// the server rolls the transaction back; after it, the connection waits in
/// [`IdleConnections`] for the next transaction.
///
/// Writes whose outcome the transaction does not read ([`Tx::write`]) wait in `queued` and go
/// to the server in one text with whatever needs an answer next, usually `COMMIT`: every
/// statement sent on its own is one more round trip.
///
/// [`Tx::write`]: crate::store::sql::Tx::write
pub struct MysqlTxConn {
    /// Taken only when the transaction ends.
    conn: Option<PoolConnection<MySql>>,
    /// Where the connection goes after `COMMIT`.
    idle: IdleConnections,
    open: bool,
    /// `;`-terminated statements with their values written in, not yet sent.
    queued: String,
    /// Writes held back to be sent grouped ([`super::grouped`]), when the transaction asked
    /// for that: they go into `queued` before anything is sent.
    grouped: Option<Vec<(String, Vec<Arg>)>>,
}

impl MysqlTxConn {
    pub(crate) fn new(conn: PoolConnection<MySql>, idle: IdleConnections) -> Self {
        MysqlTxConn {
            conn: Some(conn),
            idle,
            open: true,
            queued: String::new(),
            grouped: None,
        }
    }

    fn conn(&mut self) -> &mut MySqlConnection {
        self.conn
            .as_deref_mut()
            .expect("the connection is taken only when the transaction ends")
    }

    /// From now on, holds the writes back and sends them grouped by statement, each group as
    /// one statement ([`super::grouped`]): only for a transaction none of whose writes depends
    /// on another being made first.
    pub(crate) fn group_writes(&mut self) {
        self.grouped.get_or_insert_with(Vec::new);
    }

    pub(crate) fn queue(&mut self, sql: &str, args: &[Arg]) -> Result<(), StoreError> {
        if let Some(held) = &mut self.grouped {
            held.push((sql.to_string(), args.to_vec()));
            return Ok(());
        }
        inline_mysql(&mut self.queued, sql, args)?;
        self.queued.push(';');
        Ok(())
    }

    /// Moves the writes held back into `queued`, grouped.
    fn release_grouped(&mut self) -> Result<(), StoreError> {
        if let Some(held) = &mut self.grouped
            && !held.is_empty()
        {
            let held = std::mem::take(held);
            super::grouped::render(&mut self.queued, &held)?;
        }
        Ok(())
    }

    pub(crate) fn queue_first(&mut self, sql: &str, args: &[Arg]) -> Result<(), StoreError> {
        self.release_grouped()?;
        let mut first = String::new();
        inline_mysql(&mut first, sql, args)?;
        first.push(';');
        self.queued.insert_str(0, &first);
        Ok(())
    }

    /// Runs a statement after the queued writes; returns the number of rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        self.flush().await?;
        Ok(bind_mysql(sql, args)
            .execute(&mut **self)
            .await?
            .rows_affected())
    }

    /// Runs an `INSERT` after the queued writes; returns the new auto-increment id.
    pub(crate) async fn insert(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        self.flush().await?;
        Ok(bind_mysql(sql, args)
            .execute(&mut **self)
            .await?
            .last_insert_id())
    }

    /// Runs a query after the queued writes; returns every row.
    pub(crate) async fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<Row>, StoreError> {
        self.flush().await?;
        let rows = bind_mysql(sql, args).fetch_all(&mut **self).await?;
        let mut read = ResultSets::of(sql);
        for row in &rows {
            push_row(&mut read, row)?;
        }
        Ok(read.into_rows())
    }

    /// Runs the queued writes and `statements` (written as `tagged`) in one text, one round
    /// trip, and adds their rows to `read`.
    pub(crate) async fn fetch_each(
        &mut self,
        statements: &[(String, Vec<Arg>)],
        tagged: &[String],
        read: &mut ResultSets<'_>,
    ) -> Result<(), StoreError> {
        self.release_grouped()?;
        let mut sql = std::mem::take(&mut self.queued);
        for (statement, (_, args)) in tagged.iter().zip(statements) {
            inline_mysql(&mut sql, statement, args)?;
            sql.push(';');
        }
        let rows = sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_all(self.conn())
            .await?;
        for row in &rows {
            push_row(read, row)?;
        }
        Ok(())
    }

    /// Runs a batch of statements given as one text, without arguments, after the queued
    /// writes.
    pub(crate) async fn execute_script(&mut self, sql: &'static str) -> Result<(), StoreError> {
        self.flush().await?;
        sqlx::raw_sql(sql).execute(&mut **self).await?;
        Ok(())
    }

    /// Sends the queued writes, if any.
    async fn flush(&mut self) -> Result<(), StoreError> {
        self.release_grouped()?;
        if self.queued.is_empty() {
            return Ok(());
        }
        let sql = std::mem::take(&mut self.queued);
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Sends the queued writes and `COMMIT`, in one round trip.
    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        self.release_grouped()?;
        let mut sql = std::mem::take(&mut self.queued);
        sql.push_str("COMMIT");
        let sent = sqlx::raw_sql(AssertSqlSafe(sql)).execute(self.conn()).await;
        if let Err(sqlx::Error::Database(_)) = &sent {
            // The server refused a statement and ran none after it, `COMMIT` included: roll
            // back here, so that the connection can serve the next transaction.
            if sqlx::raw_sql("ROLLBACK")
                .execute(self.conn())
                .await
                .is_err()
            {
                return Ok(sent.map(drop)?);
            }
        }
        self.open = false;
        Ok(sent.map(drop)?)
    }

    /// Kills this connection, as the fault hook does at a checkpoint, through `pool`.
    #[cfg(feature = "testing")]
    pub(crate) async fn kill_connection(&mut self, pool: &MySqlPool) -> Result<(), StoreError> {
        // The writes so far reach the server first, so that the kill lands after them.
        self.flush().await?;
        let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(&mut **self)
            .await?;
        sqlx::query(AssertSqlSafe(format!("KILL {id}")))
            .execute(pool)
            .await?;
        // The next statement on the killed connection fails, as it would after a crash.
        Ok(())
    }
}

/// Appends `sql` to `out` with each `?` replaced by its argument written as a MySQL literal:
/// statements sent together in one text cannot carry parameters. Text is written as a
/// hexadecimal literal with a character-set introducer, so that no value can end its literal
/// early whatever the server's SQL mode. The store's statements have no `?` other than
/// placeholders.
pub(super) fn inline_mysql(out: &mut String, sql: &str, args: &[Arg]) -> Result<(), StoreError> {
    let mut parts = sql.split('?');
    out.push_str(parts.next().unwrap_or_default());
    let mut args = args.iter();
    for part in parts {
        let arg = args.next().ok_or_else(|| {
            StoreError::Invalid(format!("too few arguments for the statement {sql:?}"))
        })?;
        match arg {
            Arg::Int(v) => out.push_str(itoa::Buffer::new().format(*v)),
            Arg::Null => out.push_str("NULL"),
            Arg::Text(t) if t.is_empty() => out.push_str("''"),
            Arg::Text(t) => {
                out.push_str("_utf8mb4 X'");
                // Through `hex`, not `write!` per byte: a batch's statements carry thousands
                // of text bytes, and formatting them one by one showed in its profile.
                out.push_str(&hex::encode(t));
                out.push('\'');
            }
        }
        out.push_str(part);
    }
    if args.next().is_some() {
        return Err(StoreError::Invalid(format!(
            "too many arguments for the statement {sql:?}"
        )));
    }
    Ok(())
}

impl std::ops::Deref for MysqlTxConn {
    type Target = MySqlConnection;
    fn deref(&self) -> &Self::Target {
        self.conn
            .as_deref()
            .expect("the connection is taken only when the transaction ends")
    }
}

impl std::ops::DerefMut for MysqlTxConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn()
    }
}

impl Drop for MysqlTxConn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.open {
            conn.close_on_drop();
        } else {
            self.idle.put(conn);
        }
    }
}

fn bind_mysql<'q>(sql: &str, args: &[Arg]) -> sqlx::query::Query<'q, MySql, MySqlArguments> {
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
fn push_row(read: &mut ResultSets<'_>, row: &MySqlRow) -> Result<(), StoreError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            values.push(Value::Null);
            continue;
        }
        let name = column.type_info().name();
        // Unsigned columns are read unchecked: every value the store writes is below 2^63.
        let value = if name.contains("INT") || name == "BOOLEAN" {
            Value::Int(row.try_get_unchecked::<i64, _>(i)?)
        } else if name.contains("DECIMAL") {
            let text: String = row.try_get_unchecked(i)?;
            Value::Text(text)
        } else {
            Value::Text(row.try_get_unchecked::<String, _>(i)?)
        };
        values.push(value);
    }
    read.push(row.columns().iter().map(Column::name), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(sql: &str, args: &[Arg]) -> Result<String, StoreError> {
        let mut out = String::new();
        inline_mysql(&mut out, sql, args).map(|()| out)
    }

    #[test]
    fn integers_and_null_are_written_as_they_are() {
        assert_eq!(
            inline(
                "UPDATE t SET a = ?, b = ? WHERE id = ?",
                &[(-5_i64).into(), Arg::Null, 7_u64.into()]
            )
            .unwrap(),
            "UPDATE t SET a = -5, b = NULL WHERE id = 7"
        );
    }

    #[test]
    fn text_becomes_a_hex_literal_so_no_quote_or_backslash_can_end_it() {
        assert_eq!(
            inline("INSERT INTO t VALUES (?, ?)", &["a'b\\".into(), "".into()]).unwrap(),
            "INSERT INTO t VALUES (_utf8mb4 X'6127625c', '')"
        );
        assert_eq!(
            inline("SELECT ?", &["é".into()]).unwrap(),
            "SELECT _utf8mb4 X'c3a9'"
        );
    }

    #[test]
    fn a_wrong_number_of_arguments_is_an_error_naming_the_statement() {
        let few = inline("SELECT ?, ?", &[1_i64.into()])
            .unwrap_err()
            .to_string();
        assert!(
            few.contains("too few arguments") && few.contains("SELECT ?, ?"),
            "{few}"
        );
        let many = inline("SELECT ?", &[1_i64.into(), 2_i64.into()])
            .unwrap_err()
            .to_string();
        assert!(many.contains("too many arguments"), "{many}");
    }
}
