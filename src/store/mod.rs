//! The durable store: every piece of monitoring state lives in the database, in the service's
//! own `status_job_*` tables and in the shared `status_check*` tables that robot scripts read
//! (semantics §8). Two backends behind one [`Store`]: MySQL/MariaDB for production, an embedded
//! SQLite file for a laptop or a demo, with the same behaviour.
//!
//! Each transition is one transaction that first locks the session row (`SELECT … FOR UPDATE`
//! on MySQL; SQLite's single writer holds the whole database), asks the core
//! ([`crate::domain::SessionState`]) what happens, and writes that down. An event or a window
//! close may instead be decided on this instance's copy of the row from the session's last
//! transition, when the row's version proves it current as it is written
//! (`src/store/session_copies.rs`, design §2.2). Transactions that lose a lock wait or a
//! deadlock (MySQL 1205/1213), find SQLite busy, lose a unique-key race, or were decided on a
//! stale copy run again from the start.
//!
//! Instants are passed in by the caller; the store reads no clock for any decision.

mod bulk;
mod catalogue;
mod close_claims;
mod dashboard;
mod error;
#[cfg(feature = "testing")]
mod fault;
mod group_commit;
mod health;
mod intake_batch;
mod lookups;
mod migrate;
mod mysql;
mod outbox;
mod poller_takeover;
mod robot_copies;
mod rules;
mod seed;
mod service_data;
mod session_copies;
mod session_row;
mod session_starts;
mod sql;
mod sqlite;
mod startup;
#[cfg(feature = "testing")]
mod testing;
mod transitions;
mod types;
mod views;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

pub use bulk::RulesFingerprint;
pub use catalogue::{CatalogueGaps, ZoneDifference};
pub use close_claims::ClaimedWindows;
pub use dashboard::{DayView, SessionSummary, StoredEvent};
pub use error::StoreError;
#[cfg(feature = "testing")]
pub use fault::FaultPlan;
pub use group_commit::{
    EventIdSource, GroupCommitSettings, IntakeFound, IntakeRecord, IntakeRequest, SessionStep,
};
pub use health::Backlog;
pub use lookups::{
    LOCAL_EVENT_ID_BASE, LeftoverSubscription, NAMED_EVENT_ID_BASE, SessionKey, named_event_id,
};
pub use migrate::{MigrationSet, PendingMigration, SERVICE_TABLE, SHARED_TABLE};
pub use poller_takeover::QuietSession;
pub use seed::{DESCRIPTION_NAME, MYSQL_SEED, SQLITE_SEED, TEMPLATE_VERSION, Template};
pub use service_data::{DEAD_LETTER_BODY_LIMIT, DeadLetter, DeadLetterRetention};
pub use session_starts::{PollerLock, StartedSession};
#[cfg(feature = "testing")]
pub use sql::Arg;
pub use sql::Dialect;
use sql::Tx;
pub use startup::{Prepared, StartupError, apply_rules, prepare};
#[cfg(feature = "testing")]
pub use testing::TextRows;
pub use transitions::{
    RECORD_ALARM_SENT, RECORD_EVENT_LATE, RECORD_EVENT_OBSERVED, RECORD_SUBSCRIBED,
};
pub use types::{
    AlarmId, ApplyOutcome, CloseOutcome, DueWindow, EndOutcome, EventInput, OutboxAlarm,
    RecordView, RuleChange, SessionView, StartOutcome, StatusCheckId, StatusCheckRefs, StoredRule,
};

use crate::domain::{RobotId, Rule, Session, SessionResult};
use crate::megazord::MegazordEventId;
use crate::telemetry::names;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Transaction connections to MySQL unless configured otherwise: as many as the closer, the
/// dispatcher and the scheduler each run at once by default, so that none waits for a
/// connection another holds while it talks to Megazord.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 32;

/// How many times a transaction that lost a lock race is run again before giving up.
const MAX_ATTEMPTS: u32 = 20;

#[derive(Clone)]
enum Backend {
    Mysql(mysql::Pools),
    Sqlite(sqlite::Writer),
}

/// The durable store. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    #[cfg(feature = "testing")]
    fault: Arc<FaultPlan>,
    copies: session_copies::SessionCopies,
    robots: robot_copies::RobotCopies,
    group: Arc<group_commit::GroupCommit>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect())
            .finish()
    }
}

impl Store {
    /// Connects to `url`: `mysql://…` (or `mariadb://…`) or `sqlite://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Like [`Store::connect`], with at most `max_connections` transaction connections on
    /// MySQL (SQLite has its one writer whatever this says).
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let backend = if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let url = url.replacen("mariadb:", "mysql:", 1);
            Backend::Mysql(mysql::connect(&url, max_connections.max(1)).await?)
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect(url).await?)
        } else {
            return Err(StoreError::Invalid(format!(
                "database.url = {:?}: must start with mysql://, mariadb:// or sqlite://",
                crate::redact::redact_url(url)
            )));
        };
        Ok(Store {
            backend,
            #[cfg(feature = "testing")]
            fault: Arc::default(),
            // Until `migrate` finds the version check enforced.
            copies: session_copies::SessionCopies::new(false),
            robots: robot_copies::RobotCopies::default(),
            group: Arc::default(),
        })
    }

    /// Which SQL the database speaks.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Mysql(_) => Dialect::Mysql,
            Backend::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.copies.clear();
        self.robots.clear();
        match &self.backend {
            Backend::Mysql(p) => {
                p.idle.clear();
                p.tx.close().await;
                p.plain.close().await;
            }
            Backend::Sqlite(p) => p.close().await,
        }
    }

    /// Begins a transaction (a write transaction on SQLite).
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        let tx = match &self.backend {
            Backend::Mysql(p) => mysql::begin(p, &self.copies).await?,
            Backend::Sqlite(p) => sqlite::begin(p, &self.copies).await?,
        };
        #[cfg(feature = "testing")]
        let tx = tx.with_fault_plan(&self.fault);
        Ok(tx)
    }

    /// Runs `f` in one transaction and commits; runs it again from the start when it lost a
    /// lock race, after a short pause, or at once and reading every session row under its lock
    /// when it was decided on a copy that proved stale (or that had taken its event already).
    /// Dropping the transaction on an error rolls everything back. A failure that is given up
    /// on is counted in `store_errors_total` by its kind.
    async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: for<'a> Fn(&'a mut Tx) -> BoxFuture<'a, Result<R, StoreError>>,
    {
        let result = self.run_attempts(f).await;
        if let Err(e) = &result {
            metrics::counter!(names::STORE_ERRORS, "kind" => e.kind()).increment(1);
        }
        result
    }

    async fn run_attempts<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: for<'a> Fn(&'a mut Tx) -> BoxFuture<'a, Result<R, StoreError>>,
    {
        // Short, growing, jittered pauses let the winner of a lock race finish first.
        let mut pauses = backon::BackoffBuilder::build(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(1))
                .with_max_delay(Duration::from_millis(50))
                .with_jitter()
                .with_max_times(MAX_ATTEMPTS as usize - 1),
        );
        let mut read_under_lock = false;
        loop {
            let mut tx = self.begin().await?;
            tx.may_decide_on_copies = !read_under_lock;
            let outcome = f(&mut tx).await;
            let faulted = tx.fault_fired();
            let decided_on_copy = tx.decided_on_copy;
            // A connection lost before COMMIT was sent lost an uncommitted transaction, which
            // can simply run again; one lost during COMMIT leaves the outcome unknown.
            let (result, before_commit) = match outcome {
                Ok(r) => (tx.commit().await.map(|()| r), false),
                Err(e) => {
                    tx.rollback().await;
                    (Err(e), !faulted)
                }
            };
            if let (Err(e), Backend::Mysql(p)) = (&result, &self.backend)
                && e.is_connection_lost()
            {
                // The server may have restarted: the kept connections are likely gone too.
                p.idle.clear();
            }
            match result {
                // A stale copy or an event taken already: the next attempt reads under the
                // lock, and has no lock race to wait out first.
                Err(e) if decided_on_copy && e.is_retryable() => {
                    metrics::counter!(names::SESSION_COPIES, "outcome" => "stale").increment(1);
                    read_under_lock = true;
                }
                Ok(r) if decided_on_copy => {
                    metrics::counter!(names::SESSION_COPIES, "outcome" => "current").increment(1);
                    return Ok(r);
                }
                Err(e) if e.is_retryable() || (before_commit && e.is_connection_lost()) => {
                    match pauses.next() {
                        Some(pause) => tokio::time::sleep(pause).await,
                        None => return Err(e),
                    }
                }
                other => return other,
            }
        }
    }

    // ---- schema -------------------------------------------------------------------------

    /// Whether the shared-schema bootstrap applies: always on SQLite, on MySQL only when asked.
    fn bootstraps_shared(&self, bootstrap_shared_schema: bool) -> bool {
        bootstrap_shared_schema || self.dialect() == Dialect::Sqlite
    }

    /// Applies the service migrations, and the shared-schema bootstrap where it applies.
    pub async fn migrate(&self, bootstrap_shared_schema: bool) -> Result<(), StoreError> {
        let mut sets = Vec::new();
        if self.bootstraps_shared(bootstrap_shared_schema) {
            sets.push(MigrationSet::SharedBootstrap);
        }
        sets.push(MigrationSet::Service);
        for set in sets {
            let migrator = migrate::migrator(self.dialect(), set);
            match &self.backend {
                Backend::Mysql(p) => migrator.run(&p.plain).await?,
                Backend::Sqlite(w) => {
                    let mut state = w.lock().await;
                    migrator.run(state.connection().await?).await?
                }
            }
        }
        let enforced = self.enforces_session_version_check().await;
        if !enforced {
            tracing::warn!(
                "the database does not enforce the CHECK on status_job_session.version (MySQL \
                 before 8.0.16, or checks turned off): every transition reads its session row \
                 under the lock, none is decided on a copy"
            );
        }
        self.copies.set_enabled(enforced);
        Ok(())
    }

    /// Whether the database refuses a session row with version 0, in a transaction that is
    /// rolled back (see [`session_copies::VERSION_CHECK_PROBE`]).
    async fn enforces_session_version_check(&self) -> bool {
        let Ok(mut tx) = self.begin().await else {
            return false;
        };
        let refused = tx
            .execute(session_copies::VERSION_CHECK_PROBE, &[])
            .await
            .is_err_and(|e| e.is_stale_copy());
        tx.rollback().await;
        refused
    }

    /// The migrations [`Store::migrate`] would apply, with their SQL; changes nothing.
    pub async fn pending_migrations(
        &self,
        bootstrap_shared_schema: bool,
    ) -> Result<Vec<PendingMigration>, StoreError> {
        let mut sets = Vec::new();
        if self.bootstraps_shared(bootstrap_shared_schema) {
            sets.push(MigrationSet::SharedBootstrap);
        }
        sets.push(MigrationSet::Service);
        let mut pending = Vec::new();
        for set in sets {
            let applied = self.applied_versions(set.table()).await?;
            for m in migrate::migrator(self.dialect(), set).iter() {
                if m.migration_type.is_down_migration() || applied.contains(&m.version) {
                    continue;
                }
                pending.push(PendingMigration {
                    set,
                    version: m.version,
                    description: m.description.to_string(),
                    sql: m.sql.as_str().to_string(),
                });
            }
        }
        Ok(pending)
    }

    async fn applied_versions(&self, table: &'static str) -> Result<Vec<i64>, StoreError> {
        let exists_sql = match self.dialect() {
            Dialect::Mysql => {
                "SELECT COUNT(*) AS found FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
            }
            Dialect::Sqlite => {
                "SELECT COUNT(*) AS found FROM sqlite_master WHERE type = 'table' AND name = ?"
            }
        };
        self.run(move |tx| {
            Box::pin(async move {
                let n = tx
                    .fetch_optional(exists_sql, &[table.into()])
                    .await?
                    .map(|r| r.int("found"))
                    .transpose()?
                    .unwrap_or(0);
                if n == 0 {
                    return Ok(Vec::new());
                }
                let rows = tx
                    .fetch_all(
                        &format!("SELECT version FROM {table} WHERE success = 1 ORDER BY version"),
                        &[],
                    )
                    .await?;
                rows.iter().map(|r| r.int("version")).collect()
            })
        })
        .await
    }

    /// Upserts the toilet-monitoring template (idempotent) and returns it.
    pub async fn seed_template(&self) -> Result<Template, StoreError> {
        self.run(|tx| Box::pin(seed::seed(tx))).await
    }

    /// The toilet-monitoring template, if seeded.
    pub async fn template(&self) -> Result<Option<Template>, StoreError> {
        self.run(|tx| Box::pin(seed::find(tx))).await
    }

    /// On MySQL, checks that the rows the script columns point at exist; the error says what to
    /// create. Nothing to check on SQLite, which has no script tables.
    pub async fn check_script_refs(&self, refs: StatusCheckRefs) -> Result<(), String> {
        match &self.backend {
            Backend::Mysql(p) => mysql::check_script_refs(&p.plain, refs).await,
            Backend::Sqlite(_) => Ok(()),
        }
    }

    // ---- sessions -----------------------------------------------------------------------

    /// Creates the session of `rule` (its `status_check`, poller and key rows) or returns the
    /// existing one; safe to call from several instances at once.
    pub async fn start_session(
        &self,
        rule: &StoredRule,
        session: Session,
        owner: &str,
        refs: StatusCheckRefs,
        now: Timestamp,
    ) -> Result<StartOutcome, StoreError> {
        if !rule.rule.enabled {
            return Err(StoreError::Invalid(format!(
                "the rule of robot {} is disabled: no session starts for it",
                rule.rule.robot_id
            )));
        }
        if session.robot_id != rule.rule.robot_id {
            return Err(StoreError::Invalid(format!(
                "session of robot {} does not belong to the rule of robot {}",
                session.robot_id, rule.rule.robot_id
            )));
        }
        self.run(move |tx| {
            let rule = rule.clone();
            let owner = owner.to_string();
            Box::pin(async move {
                transitions::start_session(
                    tx,
                    &rule.rule,
                    rule.version,
                    rule.watching_since,
                    session,
                    &owner,
                    refs,
                    now,
                )
                .await
            })
        })
        .await
    }

    /// Applies one watched event to a session: a duplicate writes nothing; otherwise the core
    /// classifies it (observed, late, outside, or ahead: kept until the windows before it close).
    pub async fn apply_event(
        &self,
        status_check_id: StatusCheckId,
        event: EventInput,
        now: Timestamp,
    ) -> Result<ApplyOutcome, StoreError> {
        self.run(move |tx| Box::pin(transitions::apply_event(tx, status_check_id, event, now)))
            .await
    }

    /// Closes the session's current window if its deadline is still `expected_deadline`.
    pub async fn close_window(
        &self,
        status_check_id: StatusCheckId,
        expected_deadline: Timestamp,
        now: Timestamp,
    ) -> Result<CloseOutcome, StoreError> {
        self.run(move |tx| {
            Box::pin(transitions::close_window(
                tx,
                status_check_id,
                expected_deadline,
                now,
            ))
        })
        .await
    }

    /// Ends a running session as `DISABLED` or `FAILED`.
    pub async fn end_session(
        &self,
        status_check_id: StatusCheckId,
        result: SessionResult,
        now: Timestamp,
    ) -> Result<EndOutcome, StoreError> {
        self.run(move |tx| Box::pin(transitions::end_session(tx, status_check_id, result, now)))
            .await
    }

    /// Ends a running session as `FAILED` (the service could not monitor it, semantics §8) and
    /// keeps `reason` with it (at most 500 characters).
    pub async fn fail_session(
        &self,
        status_check_id: StatusCheckId,
        reason: &str,
        now: Timestamp,
    ) -> Result<EndOutcome, StoreError> {
        let reason: String = reason.chars().take(500).collect();
        self.run(move |tx| {
            let reason = reason.clone();
            Box::pin(async move {
                let outcome =
                    transitions::end_session(tx, status_check_id, SessionResult::Failed, now)
                        .await?;
                if outcome == EndOutcome::Ended {
                    tx.write(
                        "UPDATE status_job_session SET failure_reason = ? WHERE status_check_id = ?",
                        &[reason.into(), status_check_id.into()],
                    )
                    .await?;
                }
                Ok(outcome)
            })
        })
        .await
    }

    /// Stores the Megazord subscription of a session and writes its `SUBSCRIBED` record.
    pub async fn record_subscribed(
        &self,
        status_check_id: StatusCheckId,
        subscription_id: u64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(move |tx| {
            Box::pin(transitions::record_subscribed(
                tx,
                status_check_id,
                subscription_id,
                at,
            ))
        })
        .await
    }

    /// Refreshes `status_check_poller.updated_at` of the rows `owner` holds that were not
    /// written within `fresh_for` (by the database's clock), `chunk` rows to a transaction;
    /// returns how many it refreshed.
    ///
    /// A row is written whenever its window moves, so while windows close few rows need it.
    /// One statement over every row held (100,000 with as many sessions) used to hold their
    /// locks for seconds, while the closes of those same sessions waited for them.
    pub async fn refresh_poller_locks(
        &self,
        owner: &str,
        fresh_for: std::time::Duration,
        chunk: usize,
    ) -> Result<u64, StoreError> {
        let fresh_for_seconds = i64::try_from(fresh_for.as_secs()).unwrap_or(i64::MAX);
        let chunk = chunk.max(1);
        let mut after = 0;
        let mut refreshed = 0;
        loop {
            // One short transaction per chunk: the stale rows read (no lock), then refreshed.
            let (found, last, touched) = self
                .run(move |tx| {
                    let owner = owner.to_string();
                    Box::pin(async move {
                        let ids = service_data::stale_poller_locks(
                            tx,
                            &owner,
                            after,
                            fresh_for_seconds,
                            chunk,
                        )
                        .await?;
                        let touched = service_data::refresh_poller_locks(tx, &owner, &ids).await?;
                        Ok((ids.len(), ids.last().copied(), touched))
                    })
                })
                .await?;
            refreshed += touched;
            match last {
                Some(last) if found == chunk => after = last,
                _ => return Ok(refreshed),
            }
        }
    }

    /// The sessions of a robot with local dates `from..=to`, with their records.
    pub async fn sessions(
        &self,
        robot_id: RobotId,
        from: Date,
        to: Date,
    ) -> Result<Vec<SessionView>, StoreError> {
        self.run(move |tx| Box::pin(views::sessions(tx, robot_id, from, to)))
            .await
    }

    /// One session with its records.
    pub async fn session(
        &self,
        status_check_id: StatusCheckId,
    ) -> Result<Option<SessionView>, StoreError> {
        self.run(move |tx| Box::pin(views::session(tx, status_check_id)))
            .await
    }

    /// Running sessions whose deadline is at or before `now`.
    pub async fn due_windows(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueWindow>, StoreError> {
        self.run(move |tx| Box::pin(views::due_windows(tx, now, limit)))
            .await
    }

    /// The earliest deadline of a running session after `after`: when the closer looks next.
    pub async fn next_deadline_after(
        &self,
        after: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.run(move |tx| Box::pin(views::next_deadline_after(tx, after)))
            .await
    }

    // ---- rules --------------------------------------------------------------------------

    /// Saves a rule; a change bumps its version and applies to running sessions (semantics §6).
    pub async fn set_rule(&self, rule: &Rule, now: Timestamp) -> Result<RuleChange, StoreError> {
        self.run(move |tx| {
            let rule = rule.clone();
            Box::pin(async move { transitions::set_rule(tx, &rule, now).await })
        })
        .await
    }

    /// Disables the rule of a robot and ends its running sessions as `DISABLED`;
    /// `None` when the robot has no rule.
    pub async fn disable_rule(
        &self,
        robot_id: RobotId,
        now: Timestamp,
    ) -> Result<Option<RuleChange>, StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                let Some(stored) = rules::get(tx, robot_id).await? else {
                    return Ok(None);
                };
                let mut rule = stored.rule;
                rule.enabled = false;
                transitions::set_rule(tx, &rule, now).await.map(Some)
            })
        })
        .await
    }

    /// Every stored rule.
    pub async fn rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        self.run(|tx| Box::pin(rules::list(tx))).await
    }

    /// The rule of one robot.
    pub async fn rule(&self, robot_id: RobotId) -> Result<Option<StoredRule>, StoreError> {
        self.run(move |tx| Box::pin(rules::get(tx, robot_id))).await
    }

    // ---- alarm outbox -------------------------------------------------------------------

    /// Claims up to `limit` alarms to post: pending, failed, or claimed longer than `lease` ago.
    pub async fn claim_alarms(
        &self,
        owner: &str,
        limit: u32,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Vec<OutboxAlarm>, StoreError> {
        let dialect = self.dialect();
        self.run(move |tx| {
            let owner = owner.to_string();
            Box::pin(async move {
                match dialect {
                    Dialect::Mysql => mysql::claim(tx, &owner, limit, now, lease).await,
                    Dialect::Sqlite => sqlite::claim(tx, &owner, limit, now, lease).await,
                }
            })
        })
        .await
    }

    /// Ends the alarm claims `owner` took before `before` (an earlier process under the same
    /// `instance_id`): claimable at once instead of after their lease, each looked up at
    /// Megazord before it is posted again. Run at start, before anything of this process
    /// claims. Returns how many.
    pub async fn end_earlier_claims(
        &self,
        owner: &str,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        self.run(move |tx| {
            let owner = owner.to_string();
            Box::pin(async move { outbox::end_earlier_claims(tx, &owner, before).await })
        })
        .await
    }

    /// Gives back alarms `owner` claimed and has not posted (it is stopping, or they waited
    /// too long for a posting slot): pending again, for any dispatcher to claim at once.
    pub async fn release_alarms(
        &self,
        owner: &str,
        alarm_ids: &[AlarmId],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.run(move |tx| {
            let owner = owner.to_string();
            let alarm_ids = alarm_ids.to_vec();
            Box::pin(async move { outbox::release(tx, &owner, &alarm_ids, now).await })
        })
        .await
    }

    /// Marks an alarm posted (Megazord gave it `megazord_incoming_id`) and writes the
    /// `ALARM_SENT` record; false when it was already marked.
    pub async fn mark_alarm_sent(
        &self,
        alarm_id: AlarmId,
        megazord_incoming_id: MegazordEventId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(move |tx| Box::pin(outbox::mark_sent(tx, alarm_id, megazord_incoming_id, now)))
            .await
    }

    /// Marks `owner`'s posting attempt failed with `error`.
    pub async fn mark_alarm_failed(
        &self,
        owner: &str,
        alarm_id: AlarmId,
        error: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.mark_alarm_failed_until(owner, alarm_id, error, now, now)
            .await
    }

    /// Marks `owner`'s posting attempt failed with `error`; the alarm is not claimed again
    /// before `retry_at`. False when the alarm is no longer claimed by `owner` (its lease ran
    /// out and another dispatcher took it, or it was sent): that claim is left alone.
    pub async fn mark_alarm_failed_until(
        &self,
        owner: &str,
        alarm_id: AlarmId,
        error: &str,
        retry_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(move |tx| {
            let (owner, error) = (owner.to_string(), error.to_string());
            Box::pin(async move {
                outbox::mark_failed(tx, &owner, alarm_id, &error, retry_at, now).await
            })
        })
        .await
    }

    /// The outbox rows of a session.
    pub async fn alarms_of(
        &self,
        status_check_id: StatusCheckId,
    ) -> Result<Vec<OutboxAlarm>, StoreError> {
        self.run(move |tx| Box::pin(outbox::of_session(tx, status_check_id)))
            .await
    }

    // ---- dead letters and metadata ------------------------------------------------------

    /// Keeps a queue message that could not be used.
    pub async fn record_dead_letter(
        &self,
        body: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.run(move |tx| {
            let (body, reason) = (body.to_string(), reason.to_string());
            Box::pin(async move { service_data::record_dead_letter(tx, &body, &reason, now).await })
        })
        .await
    }

    /// Deletes dead letters beyond `retention`; returns how many.
    pub async fn prune_dead_letters(
        &self,
        retention: DeadLetterRetention,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.run(move |tx| Box::pin(service_data::prune_dead_letters(tx, retention, now)))
            .await
    }

    /// Every dead letter.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.run(|tx| Box::pin(service_data::dead_letters(tx)))
            .await
    }

    /// A service metadata value.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.run(move |tx| {
            let key = key.to_string();
            Box::pin(async move { service_data::get_meta(tx, &key).await })
        })
        .await
    }

    /// Sets a service metadata value.
    pub async fn set_meta(&self, key: &str, value: &str, now: Timestamp) -> Result<(), StoreError> {
        self.run(move |tx| {
            let (key, value) = (key.to_string(), value.to_string());
            Box::pin(async move { service_data::set_meta(tx, &key, &value, now).await })
        })
        .await
    }
}
