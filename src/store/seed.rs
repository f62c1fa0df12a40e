//! The toilet-monitoring status-check template (contracts §6 item 13): seeded idempotently and
//! looked up by description name and version.

use super::error::StoreError;
use super::sql::{Dialect, Tx};

/// `status_check_description.name` of the template.
pub const DESCRIPTION_NAME: &str = "TOILET_ACTIVITY_MONITORING";
/// `status_check_template.version` of the template.
pub const TEMPLATE_VERSION: u32 = 1;

/// The MySQL seed: the very file shipped for the `typ-e` migrations.
pub const MYSQL_SEED: &str =
    include_str!("../../contrib/typ-e/seed_toilet_activity_monitoring_template.sql");

/// The same seed in SQLite's upsert syntax.
pub const SQLITE_SEED: &str = r#"
INSERT INTO status_check_description (name, description)
VALUES (
    'TOILET_ACTIVITY_MONITORING',
    'Toilet activity monitoring by azi3-status-jobs: an alarm for every gap without TOILET_ACTIVITY during the daily window'
)
ON CONFLICT (name) DO UPDATE SET description = excluded.description;

INSERT INTO status_check_template
    (template_description_id, past_event_dependencies, future_event_dependencies, version, is_active, poll_until_end)
SELECT d.id, '[]', '[{"eventName":"TOILET_ACTIVITY"}]', 1, 1, 1
FROM status_check_description d
WHERE d.name = 'TOILET_ACTIVITY_MONITORING'
ON CONFLICT (template_description_id, version) DO UPDATE SET
    past_event_dependencies = excluded.past_event_dependencies,
    future_event_dependencies = excluded.future_event_dependencies,
    poll_until_end = excluded.poll_until_end;

INSERT INTO status_check_template_detail (template_id, phase, raw_expression, output)
SELECT t.id, 'FUTURE', '<no-op: evaluated by azi-3-status-jobs>', o.output
FROM status_check_template t
JOIN status_check_description d ON d.id = t.template_description_id
JOIN (SELECT 'SUCCESS' AS output UNION ALL SELECT 'ALARM_RAISED') o
WHERE d.name = 'TOILET_ACTIVITY_MONITORING' AND t.version = 1
ON CONFLICT (template_id, phase, output) DO UPDATE SET raw_expression = excluded.raw_expression;
"#;

/// The seeded template as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// `status_check_template.id`.
    pub id: u32,
    /// `is_active`; an inactive template still works but someone turned it off.
    pub is_active: bool,
}

/// Runs the seed for the transaction's dialect and reads the template back.
pub async fn seed(tx: &mut Tx) -> Result<Template, StoreError> {
    let script = match tx.dialect() {
        Dialect::Mysql => MYSQL_SEED,
        Dialect::Sqlite => SQLITE_SEED,
    };
    tx.execute_script(script).await?;
    find(tx)
        .await?
        .ok_or_else(|| StoreError::corrupt("the template seed ran but the template is not there"))
}

/// The template, whether or not it is active (contracts §6 item 13: never filter on it).
pub async fn find(tx: &mut Tx) -> Result<Option<Template>, StoreError> {
    let row = tx
        .fetch_optional(
            "SELECT t.id, t.is_active FROM status_check_template t \
             JOIN status_check_description d ON d.id = t.template_description_id \
             WHERE d.name = ? AND t.version = ?",
            &[DESCRIPTION_NAME.into(), TEMPLATE_VERSION.into()],
        )
        .await?;
    row.map(|r| {
        Ok(Template {
            id: u32::try_from(r.id("id")?)
                .map_err(|_| StoreError::corrupt("template id out of range"))?,
            is_active: r.int("is_active")? != 0,
        })
    })
    .transpose()
}
