//! What the shared MySQL schema says about things other services own: Megazord's provider and
//! event schemas (contracts §4.5, §6 item 19) and a robot's time zone (§4.6, §6 item 17). Read
//! only, and only where those tables exist (a database of this service's own, or SQLite, has
//! none of them: the checks then have nothing to say).

use super::Store;
use super::error::StoreError;
use super::sql::{Dialect, Tx};
use crate::domain::RobotId;

/// What is missing at Megazord for the service to post and subscribe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogueGaps {
    /// The provider, when `event_provider` has no row of that name.
    pub provider: Option<String>,
    /// Event names without an active `event_schema` row.
    pub events: Vec<String>,
}

impl CatalogueGaps {
    /// Whether nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.provider.is_none() && self.events.is_empty()
    }
}

impl std::fmt::Display for CatalogueGaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(provider) = &self.provider {
            parts.push(format!("no event provider {provider:?}"));
        }
        if !self.events.is_empty() {
            parts.push(format!("no active event schema {:?}", self.events));
        }
        write!(f, "megazord has {}", parts.join(" and "))
    }
}

impl Store {
    /// Which of `provider` and `events` Megazord's tables lack; `None` when the database has
    /// no such tables to ask.
    pub async fn megazord_catalogue_gaps(
        &self,
        provider: &str,
        events: &[String],
    ) -> Result<Option<CatalogueGaps>, StoreError> {
        let provider = provider.to_string();
        let events = events.to_vec();
        self.run(move |tx| {
            let provider = provider.clone();
            let events = events.clone();
            Box::pin(async move {
                if !has_tables(tx, &["event_provider", "event_schema"]).await? {
                    return Ok(None);
                }
                let mut gaps = CatalogueGaps::default();
                let found = count(
                    tx,
                    "SELECT COUNT(*) AS found FROM event_provider WHERE name = ?",
                    &provider,
                )
                .await?;
                if found == 0 {
                    gaps.provider = Some(provider);
                }
                for event in events {
                    let found = count(
                        tx,
                        "SELECT COUNT(*) AS found FROM event_schema WHERE name = ? AND is_active = 1",
                        &event,
                    )
                    .await?;
                    if found == 0 {
                        gaps.events.push(event);
                    }
                }
                Ok(Some(gaps))
            })
        })
        .await
    }

    /// The time zone `robot_settings` gives the robot, where the database has that table and a
    /// row for it.
    pub async fn robot_zone(&self, robot_id: RobotId) -> Result<Option<String>, StoreError> {
        self.run(move |tx| {
            Box::pin(async move {
                if !has_tables(tx, &["robot_settings", "time_zone"]).await? {
                    return Ok(None);
                }
                tx.fetch_optional(
                    "SELECT tz.name AS zone FROM robot_settings rs JOIN time_zone tz ON tz.id = rs.time_zone_id \
                     WHERE rs.robot_id = ?",
                    &[robot_id.into()],
                )
                .await?
                .map(|r| r.text("zone"))
                .transpose()
            })
        })
        .await
    }
}

/// A rule whose time zone differs from the one `robot_settings` gives its robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneDifference {
    /// The robot.
    pub robot_id: RobotId,
    /// The rule's zone (the one used).
    pub rule_zone: String,
    /// The zone in `robot_settings`.
    pub robot_zone: String,
}

impl Store {
    /// Every event name the enabled rules watch or raise, each once, in one query: what the
    /// catalogue check asks Megazord's tables about, without reading every rule.
    pub async fn enabled_rule_events(&self) -> Result<Vec<String>, StoreError> {
        self.run(|tx| {
            Box::pin(async move {
                let rows = tx
                    .fetch_all(
                        "SELECT watched_event AS event_name FROM status_job_rule WHERE enabled = 1 \
                         UNION SELECT alarm_event FROM status_job_rule WHERE enabled = 1",
                        &[],
                    )
                    .await?;
                let mut events = rows
                    .iter()
                    .map(|r| r.text("event_name"))
                    .collect::<Result<Vec<_>, _>>()?;
                events.sort();
                events.dedup();
                Ok(events)
            })
        })
        .await
    }

    /// The enabled rules whose zone differs from the one `robot_settings` gives their robot, in
    /// one query, where the database has those tables (else none).
    pub async fn rule_zone_differences(&self) -> Result<Vec<ZoneDifference>, StoreError> {
        self.run(|tx| {
            Box::pin(async move {
                if !has_tables(tx, &["robot_settings", "time_zone"]).await? {
                    return Ok(Vec::new());
                }
                let rows = tx
                    .fetch_all(
                        "SELECT r.robot_id, r.timezone AS rule_zone, tz.name AS robot_zone FROM status_job_rule r \
                         JOIN robot_settings rs ON rs.robot_id = r.robot_id \
                         JOIN time_zone tz ON tz.id = rs.time_zone_id \
                         WHERE r.enabled = 1 AND tz.name <> r.timezone ORDER BY r.robot_id",
                        &[],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ZoneDifference {
                            robot_id: r.robot_id("robot_id")?,
                            rule_zone: r.text("rule_zone")?,
                            robot_zone: r.text("robot_zone")?,
                        })
                    })
                    .collect()
            })
        })
        .await
    }
}

/// Whether every one of `tables` exists in the current MySQL database (never on SQLite).
async fn has_tables(tx: &mut Tx, tables: &[&str]) -> Result<bool, StoreError> {
    if tx.dialect() != Dialect::Mysql {
        return Ok(false);
    }
    for table in tables {
        let n = count(
            tx,
            "SELECT COUNT(*) AS found FROM information_schema.tables WHERE table_schema = DATABASE() \
             AND table_name = ?",
            table,
        )
        .await?;
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The count `found` of `sql` with its one parameter `name`.
async fn count(tx: &mut Tx, sql: &str, name: &str) -> Result<i64, StoreError> {
    Ok(tx
        .fetch_optional(sql, &[name.to_string().into()])
        .await?
        .map(|r| r.int("found"))
        .transpose()?
        .unwrap_or(0))
}
