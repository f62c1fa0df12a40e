//! A small dialect-neutral layer over one open transaction, so that every transition is written
//! once: arguments and row values are the three kinds the store needs (integer, text, NULL),
//! and the few statements that differ between MySQL and SQLite ask [`Dialect`] for their words.
//! How each database runs a transaction's statements is its own (`mysql/transaction.rs`,
//! `sqlite/transaction.rs`).

use std::sync::Arc;

#[cfg(feature = "testing")]
use sqlx::mysql::MySqlPool;

use super::error::StoreError;
#[cfg(feature = "testing")]
use super::fault::FaultPlan;
use super::mysql::MysqlTxConn;
use super::session_copies::SessionCopies;
use super::session_row::SessionRow;
use super::sqlite::SqliteTxConn;
use super::types::{AlarmId, StatusCheckId};
use crate::domain::RobotId;
use crate::megazord::MegazordEventId;

/// Which SQL the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL 8 or MariaDB 10.6+.
    Mysql,
    /// SQLite 3.35+.
    Sqlite,
}

impl Dialect {
    /// The locking clause of a read that the transaction is about to change.
    /// SQLite needs none: its single writer already holds the database.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Mysql => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// `INSERT` that leaves an existing row with the same key alone.
    pub fn insert_ignore(self) -> &'static str {
        match self {
            Dialect::Mysql => "INSERT IGNORE",
            Dialect::Sqlite => "INSERT OR IGNORE",
        }
    }

    /// The tail of an upsert on `key` that overwrites `columns` with the new values.
    pub fn upsert(self, key: &str, columns: &[&str]) -> String {
        match self {
            Dialect::Mysql => {
                let sets: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect();
                format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
            Dialect::Sqlite => {
                let sets: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect();
                format!(" ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", "))
            }
        }
    }

    /// An expression giving the unix seconds of a TIMESTAMP/DATETIME column.
    pub fn epoch_seconds(self, column: &str) -> String {
        match self {
            Dialect::Mysql => format!("CAST(UNIX_TIMESTAMP({column}) AS SIGNED)"),
            Dialect::Sqlite => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
        }
    }
}

/// A statement argument. Outside the store only with the `testing` feature, for the statements
/// tests run themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An integer (ids are stored below 2^63).
    Int(i64),
    /// Text.
    Text(String),
    /// NULL.
    Null,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<u32> for Arg {
    fn from(v: u32) -> Self {
        Arg::Int(i64::from(v))
    }
}

impl From<u64> for Arg {
    fn from(v: u64) -> Self {
        Arg::Int(to_i64(v))
    }
}

impl From<RobotId> for Arg {
    fn from(v: RobotId) -> Self {
        Arg::Int(i64::from(v))
    }
}

impl From<StatusCheckId> for Arg {
    fn from(v: StatusCheckId) -> Self {
        Arg::from(v.get())
    }
}

impl From<AlarmId> for Arg {
    fn from(v: AlarmId) -> Self {
        Arg::from(v.get())
    }
}

impl From<MegazordEventId> for Arg {
    fn from(v: MegazordEventId) -> Self {
        Arg::from(v.get())
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Int(i64::from(v))
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

/// `columns` (a list as `"a, b, c"`) each qualified with `alias`, for a statement that joins
/// tables: `qualified("a, b", "s")` is `"s.a, s.b"`.
pub(crate) fn qualified(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An id as the databases store it. Ids never reach 2^63; one that did would be a corrupt
/// input, and saturating keeps it from aliasing a real row.
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// NULL.
    Null,
    /// Any integer column.
    Int(i64),
    /// Any other column, as text.
    Text(String),
}

/// The column names of one statement's rows, shared by them, with the statement, which an
/// error names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Columns {
    statement: String,
    names: Vec<String>,
}

/// One result row, read by column name: a query that selects an expression names it with
/// `AS`. A name is found by a scan over the row's few names, which allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    columns: Arc<Columns>,
    values: Vec<Value>,
}

impl Row {
    /// Column `name` as an integer.
    pub fn int(&self, name: &str) -> Result<i64, StoreError> {
        match self.value(name)? {
            Value::Int(v) => Ok(*v),
            Value::Text(t) => t
                .parse()
                .map_err(|_| self.unreadable(name, format_args!("{t:?} is not an integer"))),
            Value::Null => {
                Err(self.unreadable(name, format_args!("expected an integer, found NULL")))
            }
        }
    }

    /// Column `name` as an unsigned id.
    pub fn id(&self, name: &str) -> Result<u64, StoreError> {
        let v = self.int(name)?;
        u64::try_from(v).map_err(|_| self.unreadable(name, format_args!("negative id {v}")))
    }

    /// Column `name` as a robot id.
    pub fn robot_id(&self, name: &str) -> Result<RobotId, StoreError> {
        let v = self.int(name)?;
        RobotId::try_from(v).map_err(|_| self.unreadable(name, format_args!("robot id {v}")))
    }

    /// Column `name` as an integer, or `None` when NULL.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.value(name)? {
            Value::Null => Ok(None),
            _ => self.int(name).map(Some),
        }
    }

    /// Column `name` as text.
    pub fn text(&self, name: &str) -> Result<String, StoreError> {
        match self.value(name)? {
            Value::Text(t) => Ok(t.clone()),
            Value::Int(v) => Ok(v.to_string()),
            Value::Null => Err(self.unreadable(name, format_args!("expected text, found NULL"))),
        }
    }

    /// Column `name` as text, or `None` when NULL.
    pub fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.value(name)? {
            Value::Null => Ok(None),
            _ => self.text(name).map(Some),
        }
    }

    /// The values in the order of the statement's columns.
    #[cfg(feature = "testing")]
    pub(crate) fn into_values(self) -> Vec<Value> {
        self.values
    }

    fn value(&self, name: &str) -> Result<&Value, StoreError> {
        self.columns
            .names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| {
                StoreError::corrupt(format!(
                    "no column {name} in the rows of {:?}",
                    self.columns.statement
                ))
            })
    }

    fn unreadable(&self, name: &str, why: std::fmt::Arguments<'_>) -> StoreError {
        StoreError::corrupt(format!(
            "column {name} of {:?}: {why}",
            self.columns.statement
        ))
    }
}

/// Rows read back, gathered by the statement that selected them; each statement's column
/// names are taken once, from its first row, and shared by its rows.
pub(crate) struct ResultSets<'s> {
    statements: Vec<&'s str>,
    /// Whether each row's first value is the place of its statement ([`Tx::fetch_each`]).
    tagged: bool,
    columns: Vec<Option<Arc<Columns>>>,
    sets: Vec<Vec<Row>>,
}

impl<'s> ResultSets<'s> {
    /// For the rows of one statement.
    pub(crate) fn of(sql: &'s str) -> Self {
        ResultSets {
            statements: vec![sql],
            tagged: false,
            columns: vec![None],
            sets: vec![Vec::new()],
        }
    }

    /// For the rows of several statements run together, each row tagged with its statement's
    /// place as its first value.
    pub(crate) fn of_each(statements: &'s [(String, Vec<Arg>)]) -> Self {
        ResultSets {
            statements: statements.iter().map(|(sql, _)| sql.as_str()).collect(),
            tagged: true,
            columns: vec![None; statements.len()],
            sets: vec![Vec::new(); statements.len()],
        }
    }

    /// Adds a row with its column names and values.
    pub(crate) fn push<'n>(
        &mut self,
        names: impl Iterator<Item = &'n str>,
        mut values: Vec<Value>,
    ) -> Result<(), StoreError> {
        let place = if self.tagged {
            let place = match values.first() {
                Some(Value::Int(i)) => usize::try_from(*i).ok(),
                _ => None,
            }
            .filter(|&i| i < self.sets.len())
            .ok_or_else(|| {
                StoreError::corrupt("a row of several statements came without its place")
            })?;
            values.remove(0);
            place
        } else {
            0
        };
        let statement = self.statements[place];
        let skip = usize::from(self.tagged);
        let columns = self.columns[place].get_or_insert_with(|| {
            Arc::new(Columns {
                statement: statement.to_string(),
                names: names.skip(skip).map(str::to_string).collect(),
            })
        });
        self.sets[place].push(Row {
            columns: Arc::clone(columns),
            values,
        });
        Ok(())
    }

    /// The rows of each statement, in the statements' order.
    pub(crate) fn into_sets(self) -> Vec<Vec<Row>> {
        self.sets
    }

    /// The rows of the one statement.
    pub(crate) fn into_rows(self) -> Vec<Row> {
        self.sets.into_iter().next().unwrap_or_default()
    }
}

/// The open transaction of one backend.
pub(crate) enum Inner {
    Mysql {
        tx: MysqlTxConn,
        /// A second way in, used only by the fault hook to kill this transaction's connection.
        #[cfg(feature = "testing")]
        pool: MySqlPool,
    },
    Sqlite(SqliteTxConn),
}

/// One open transaction. Dropped without [`Tx::commit`], it rolls back.
pub(crate) struct Tx {
    pub(crate) inner: Inner,
    /// The fault plan of the store that began it.
    #[cfg(feature = "testing")]
    fault: Option<Arc<FaultPlan>>,
    /// Set when the fault hook fired in this transaction.
    #[cfg(feature = "testing")]
    fault_fired: bool,
    /// The store's copies of session rows.
    pub(crate) copies: SessionCopies,
    /// False for a transaction that must read every session row under its lock.
    pub(crate) may_decide_on_copies: bool,
    /// Set when a transition was decided on a copy.
    pub(crate) decided_on_copy: bool,
    /// Session rows as this transaction leaves them, to be kept as copies once it commits.
    pub(crate) kept: Vec<SessionRow>,
    /// `(status_check_id, incoming_event_id)` of events its sessions have, to be noted beside
    /// their copies once it commits.
    pub(crate) kept_seen: Vec<(StatusCheckId, u64)>,
    /// Told when the transaction sends its `COMMIT`.
    pub(crate) commit_signal: Option<Arc<CommitSignal>>,
}

/// Tells one waiter that a transaction has sent its `COMMIT` (on MySQL with the writes that go
/// with it): it reads nothing more, so the group commit may begin a batch that shares no key
/// with it. The waiter is also woken, told nothing, when the last holder of the signal drops
/// it without a `COMMIT` sent.
pub(crate) struct CommitSignal(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl CommitSignal {
    /// A signal and what waits for it.
    pub(crate) fn new() -> (Arc<CommitSignal>, tokio::sync::oneshot::Receiver<()>) {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        (
            Arc::new(CommitSignal(std::sync::Mutex::new(Some(sender)))),
            receiver,
        )
    }

    /// Tells the waiter, the first time only.
    fn fire(&self) {
        let sender = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            // The waiter may be gone: nothing waits for the next batch any more.
            let _ = sender.send(());
        }
    }
}

impl Tx {
    pub(crate) fn new(inner: Inner, copies: &SessionCopies) -> Tx {
        Tx {
            inner,
            #[cfg(feature = "testing")]
            fault: None,
            #[cfg(feature = "testing")]
            fault_fired: false,
            copies: copies.clone(),
            may_decide_on_copies: true,
            decided_on_copy: false,
            kept: Vec::new(),
            kept_seen: Vec::new(),
            commit_signal: None,
        }
    }

    /// Takes this instance's copy of a session row, if it has one and `usable` accepts it.
    pub(crate) fn take_copy(
        &mut self,
        status_check_id: StatusCheckId,
        usable: impl FnOnce(&SessionRow) -> bool,
    ) -> Option<SessionRow> {
        if !self.may_decide_on_copies {
            return None;
        }
        let copy = self.copies.take(status_check_id)?;
        if !usable(&copy) {
            return None;
        }
        self.decided_on_copy = true;
        Some(copy)
    }

    /// Takes this instance's copies of every session of `ids` when each has one that
    /// `usable` accepts, or none of them.
    pub(crate) fn take_copies(
        &mut self,
        ids: &[StatusCheckId],
        usable: impl Fn(&SessionRow) -> bool,
    ) -> Option<Vec<SessionRow>> {
        if !self.may_decide_on_copies || !self.copies.enabled() {
            return None;
        }
        let copies = self.copies.take_all(ids, usable)?;
        self.decided_on_copy = true;
        Some(copies)
    }

    /// Notes, once the transaction commits, that these sessions have these events.
    pub(crate) fn keep_seen(&mut self, events: impl IntoIterator<Item = (StatusCheckId, u64)>) {
        self.kept_seen.extend(events);
    }

    /// Keeps `row`, as the database holds it, as the session's copy if the transaction
    /// commits.
    pub(crate) fn keep_copy(&mut self, row: SessionRow) {
        self.kept.push(row.as_stored());
    }

    /// The SQL dialect of this transaction.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Mysql { .. } => Dialect::Mysql,
            Inner::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        match &mut self.inner {
            Inner::Mysql { tx, .. } => tx.execute(sql, args).await,
            Inner::Sqlite(w) => w.execute(sql, args).await,
        }
    }

    /// Runs an `INSERT` into a table with an auto-increment key; returns the new id.
    pub async fn insert(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        match &mut self.inner {
            Inner::Mysql { tx, .. } => tx.insert(sql, args).await,
            Inner::Sqlite(w) => w.insert(sql, args).await,
        }
    }

    /// Runs a query; returns every row.
    pub async fn fetch_all(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, StoreError> {
        match &mut self.inner {
            Inner::Mysql { tx, .. } => tx.fetch_all(sql, args).await,
            Inner::Sqlite(w) => w.fetch_all(sql, args).await,
        }
    }

    /// Runs `statements` one after the other, with the writes still waiting before them, and
    /// returns the rows of each: on MySQL all in one text, one round trip; on SQLite one
    /// hand-over to the connection's thread. A `SELECT` among them has its place added as a
    /// first column, by which its rows are told from the others' and then dropped; any other
    /// statement returns no rows.
    pub async fn fetch_each(
        &mut self,
        statements: &[(String, Vec<Arg>)],
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        let tagged: Vec<String> = statements
            .iter()
            .enumerate()
            .map(|(i, (sql, _))| match sql.strip_prefix("SELECT ") {
                Some(rest) => format!("SELECT {i}, {rest}"),
                None => sql.clone(),
            })
            .collect();
        let mut read = ResultSets::of_each(statements);
        match &mut self.inner {
            Inner::Mysql { tx, .. } => tx.fetch_each(statements, &tagged, &mut read).await?,
            Inner::Sqlite(w) => w.fetch_each(statements, &tagged, &mut read).await?,
        }
        Ok(read.into_sets())
    }

    /// Runs a query; returns the first row, if any.
    pub async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch_all(sql, args).await?.into_iter().next())
    }

    /// Runs a statement whose outcome the transaction does not need to see: it waits and goes
    /// to the database with the next statement that needs an answer, or with `COMMIT`, so that
    /// a transition's writes cost one round trip together; an error it causes shows then.
    pub async fn write(&mut self, sql: &str, args: &[Arg]) -> Result<(), StoreError> {
        match &mut self.inner {
            Inner::Mysql { tx, .. } => tx.queue(sql, args),
            Inner::Sqlite(w) => {
                w.queue(sql, args);
                Ok(())
            }
        }
    }

    /// From now on, sends this transaction's writes grouped by statement on MySQL, each group
    /// as one multi-row statement (`store::mysql::grouped`): for a batch that writes the same
    /// kinds of rows for many sessions, each at most once, none of whose writes depends on
    /// another being made first. SQLite runs each statement in-process and keeps them as they
    /// are.
    pub fn group_writes(&mut self) {
        if let Inner::Mysql { tx, .. } = &mut self.inner {
            tx.group_writes();
        }
    }

    /// As [`Tx::write`], but on MySQL ahead of the writes still waiting: for the write that
    /// takes the lock every other transition takes first, so that no two transactions lock
    /// the same rows in opposite orders. (SQLite's single writer holds every row already.)
    pub async fn write_first(&mut self, sql: &str, args: &[Arg]) -> Result<(), StoreError> {
        match &mut self.inner {
            Inner::Mysql { tx, .. } => tx.queue_first(sql, args),
            Inner::Sqlite(_) => self.write(sql, args).await,
        }
    }

    /// Runs a batch of statements given as one text, without arguments.
    pub async fn execute_script(&mut self, sql: &'static str) -> Result<(), StoreError> {
        match &mut self.inner {
            Inner::Mysql { tx, .. } => tx.execute_script(sql).await,
            Inner::Sqlite(w) => w.execute_script(sql).await,
        }
    }

    /// A point between two statements of a transition where a test may make the connection
    /// die (see `src/store/fault.rs`); free when no fault is armed, and nothing at all without
    /// the `testing` feature.
    pub async fn checkpoint(&mut self) -> Result<(), StoreError> {
        #[cfg(feature = "testing")]
        if self.fault.as_ref().is_some_and(|plan| plan.should_fire()) {
            return self.fail_at_checkpoint().await;
        }
        Ok(())
    }

    /// Lets the store's fault plan fire at this transaction's checkpoints.
    #[cfg(feature = "testing")]
    pub(crate) fn with_fault_plan(mut self, plan: &Arc<FaultPlan>) -> Tx {
        self.fault = Some(Arc::clone(plan));
        self
    }

    /// Whether the fault hook fired in this transaction: its failure is the test's, and is not
    /// to be run again.
    #[cfg(feature = "testing")]
    pub(crate) fn fault_fired(&self) -> bool {
        self.fault_fired
    }

    /// Without the `testing` feature there is no fault hook to fire.
    #[cfg(not(feature = "testing"))]
    pub(crate) fn fault_fired(&self) -> bool {
        false
    }

    /// The fault plan's checkpoint came: the connection dies, or the transaction is abandoned.
    #[cfg(feature = "testing")]
    async fn fail_at_checkpoint(&mut self) -> Result<(), StoreError> {
        self.fault_fired = true;
        match &mut self.inner {
            Inner::Mysql { tx, pool } => tx.kill_connection(pool).await,
            Inner::Sqlite(w) => {
                // The writes so far run first, so that the transaction is abandoned after them.
                w.flushed().await?;
                Err(StoreError::FaultInjected)
            }
        }
    }

    /// Undoes everything the transaction did, now. (Merely dropping it does so too: MySQL
    /// closes the connection, SQLite rolls back when the connection is next taken.)
    pub async fn rollback(self) {
        match self.inner {
            Inner::Mysql { .. } => {}
            Inner::Sqlite(w) => w.roll_back().await,
        }
    }

    /// Makes everything the transaction did permanent.
    pub async fn commit(self) -> Result<(), StoreError> {
        if let Some(signal) = &self.commit_signal {
            signal.fire();
        }
        match self.inner {
            Inner::Mysql { mut tx, .. } => tx.commit().await?,
            Inner::Sqlite(mut w) => w.commit().await?,
        }
        for row in self.kept {
            self.copies.keep(row);
        }
        self.copies.keep_seen(self.kept_seen);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of(statement: &str, names: &[&str], values: Vec<Value>) -> Row {
        let mut read = ResultSets::of(statement);
        read.push(names.iter().copied(), values).unwrap();
        read.into_rows().remove(0)
    }

    #[test]
    fn columns_are_qualified_each_with_the_alias() {
        assert_eq!(qualified("a, b_c, `order`", "s"), "s.a, s.b_c, s.`order`");
        assert_eq!(qualified("id", "r"), "r.id");
    }

    #[test]
    fn a_row_is_read_by_column_name() {
        let row = row_of(
            "SELECT id, name, gone, total",
            &["id", "name", "gone", "total"],
            vec![
                Value::Int(7),
                Value::Text("x".into()),
                Value::Null,
                Value::Text("12".into()),
            ],
        );
        assert_eq!(row.id("id").unwrap(), 7);
        assert_eq!(row.text("name").unwrap(), "x");
        assert_eq!(row.text("id").unwrap(), "7");
        assert_eq!(row.opt_int("gone").unwrap(), None);
        assert_eq!(row.opt_text("gone").unwrap(), None);
        assert_eq!(row.int("total").unwrap(), 12);
    }

    #[test]
    fn an_unknown_or_unreadable_column_is_an_error_naming_it_and_the_statement() {
        let row = row_of(
            "SELECT id, name",
            &["id", "name"],
            vec![Value::Int(-1), Value::Text("x".into())],
        );
        let unknown = row.int("ids").unwrap_err();
        assert!(matches!(unknown, StoreError::Corrupt(_)), "{unknown:?}");
        let unknown = unknown.to_string();
        assert!(
            unknown.contains("no column ids") && unknown.contains("SELECT id, name"),
            "{unknown}"
        );
        let negative = row.id("id").unwrap_err().to_string();
        assert!(
            negative.contains("column id of \"SELECT id, name\": negative id -1"),
            "{negative}"
        );
        let not_a_number = row.int("name").unwrap_err().to_string();
        assert!(not_a_number.contains("column name"), "{not_a_number}");
    }

    #[test]
    fn rows_of_several_statements_go_to_their_statement_without_their_place() {
        let statements = vec![
            ("SELECT a FROM t".to_string(), Vec::new()),
            ("UPDATE t SET a = 1".to_string(), Vec::new()),
            ("SELECT b, c FROM u".to_string(), Vec::new()),
        ];
        let mut read = ResultSets::of_each(&statements);
        read.push(["0", "a"].into_iter(), vec![Value::Int(0), Value::Int(1)])
            .unwrap();
        read.push(
            ["2", "b", "c"].into_iter(),
            vec![Value::Int(2), Value::Int(2), Value::Int(3)],
        )
        .unwrap();
        read.push(["0", "a"].into_iter(), vec![Value::Int(0), Value::Int(4)])
            .unwrap();
        let unplaced = read.push(["9", "a"].into_iter(), vec![Value::Int(9), Value::Int(5)]);
        assert!(unplaced.is_err());
        let sets = read.into_sets();
        assert_eq!(sets.len(), 3);
        let a: Vec<i64> = sets[0].iter().map(|r| r.int("a").unwrap()).collect();
        assert_eq!(a, [1, 4]);
        assert!(sets[1].is_empty());
        assert_eq!(sets[2][0].int("c").unwrap(), 3);
        let err = sets[2][0].int("a").unwrap_err().to_string();
        assert!(err.contains("SELECT b, c FROM u"), "{err}");
    }
}
