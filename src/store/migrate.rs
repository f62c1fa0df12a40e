//! The two migration sets, each with its own bookkeeping table so they never collide:
//! the service's own tables (always applied) and the bootstrap of the shared `status_check*`
//! tables (SQLite always; MySQL only when asked, since production tables belong to `typ-e`).

use sqlx::migrate::Migrator;

use super::sql::Dialect;

/// The bookkeeping table of the service's own migrations.
pub const SERVICE_TABLE: &str = "status_job_migrations";
/// The bookkeeping table of the shared-schema bootstrap.
pub const SHARED_TABLE: &str = "status_job_shared_migrations";

/// Which set of migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationSet {
    /// `status_job_*` tables.
    Service,
    /// The shared `status_check*` tables.
    SharedBootstrap,
}

impl MigrationSet {
    /// The bookkeeping table of the set.
    pub fn table(self) -> &'static str {
        match self {
            MigrationSet::Service => SERVICE_TABLE,
            MigrationSet::SharedBootstrap => SHARED_TABLE,
        }
    }
}

/// The embedded migrator of `set` for `dialect`.
pub fn migrator(dialect: Dialect, set: MigrationSet) -> Migrator {
    let mut m = match (dialect, set) {
        (Dialect::Mysql, MigrationSet::Service) => sqlx::migrate!("migrations/mysql"),
        (Dialect::Sqlite, MigrationSet::Service) => sqlx::migrate!("migrations/sqlite"),
        (Dialect::Mysql, MigrationSet::SharedBootstrap) => {
            sqlx::migrate!("migrations/shared-mysql")
        }
        (Dialect::Sqlite, MigrationSet::SharedBootstrap) => {
            sqlx::migrate!("migrations/shared-sqlite")
        }
    };
    m.dangerous_set_table_name(set.table());
    m
}

/// A migration not yet applied: version, description and its SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMigration {
    /// Which set it belongs to.
    pub set: MigrationSet,
    /// The version number.
    pub version: i64,
    /// The description (from the file name).
    pub description: String,
    /// The statements it runs.
    pub sql: String,
}
