//! What the service does with its database before it monitors anything: connect, migrate,
//! seed the template, check the script rows on a shared MySQL schema; then, once the service
//! clock is known, apply the configuration's `[[rules]]`.

use jiff::Timestamp;

use super::{Dialect, StatusCheckRefs, Store, StoreError};
use crate::config::{ConfigError, DatabaseConfig, StatusCheckConfig};
use crate::domain::Rule;

/// A store ready for monitoring, and the values every new `status_check` row carries.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The store.
    pub store: Store,
    /// Template and script columns.
    pub refs: StatusCheckRefs,
}

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The shared schema lacks rows the service needs; the message says what to create.
    #[error("the shared schema is missing rows: {0}")]
    MissingRows(String),
}

/// Why `Store::connect(url)` failed, naming `database.url` with its password hidden.
fn connect_error(url: &str, error: StoreError) -> ConfigError {
    match error {
        StoreError::Invalid(msg) => ConfigError(msg),
        other => ConfigError(format!(
            "database.url = {:?}: {other}",
            crate::redact::redact_url(url)
        )),
    }
}

/// Connects to the database `database` names and prepares it; every new `status_check` row
/// will carry the script columns of `status_check`.
pub async fn prepare(
    database: &DatabaseConfig,
    status_check: &StatusCheckConfig,
) -> Result<Prepared, StartupError> {
    let url = &database.url;
    let store = Store::connect_with(url, database.max_connections)
        .await
        .map_err(|e| StartupError::Config(connect_error(url, e)))?;
    let bootstrap = database.bootstrap_shared_schema;
    store.migrate(bootstrap).await?;
    let template = store.seed_template().await?;
    if !template.is_active {
        tracing::warn!(
            template_id = template.id,
            "the status-check template TOILET_ACTIVITY_MONITORING version 1 is inactive; it is used all the same"
        );
    }
    let refs = StatusCheckRefs {
        template_id: template.id,
        step_id: status_check.step_id,
        script_version_id: status_check.script_version_id,
        scheduled_id: status_check.scheduled_id,
    };
    if store.dialect() == Dialect::Mysql && !bootstrap {
        store
            .check_script_refs(refs)
            .await
            .map_err(StartupError::MissingRows)?;
    }
    Ok(Prepared { store, refs })
}

/// Creates or updates each of `rules` (the configuration's `[[rules]]`) as of service time
/// `now`, warning of a rule that can never alarm; rules of other robots are left alone.
pub async fn apply_rules(store: &Store, rules: &[Rule], now: Timestamp) -> Result<(), StoreError> {
    for rule in rules {
        if let Some(warning) = rule.never_alarms() {
            tracing::warn!(robotId = rule.robot_id.get(), "{warning}");
        }
        store.set_rule(rule, now).await?;
    }
    Ok(())
}
