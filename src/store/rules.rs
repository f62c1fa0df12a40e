//! The `status_job_rule` table: rules as columns, and back to validated [`Rule`]s.

use jiff::Timestamp;

use super::error::StoreError;
use super::session_row::{ms_to_ts, ts_to_ms};
use super::sql::{Row, Tx};
use super::types::StoredRule;
use crate::domain::{RobotId, Rule, RuleInput};

const COLUMNS: &str = "robot_id, timezone, start_time, end_time, gap_minutes, watched_event, \
     alarm_event, partial_final_window, enabled, version, updated_at_ms, watching_since_ms";

/// A rule in the form it is stored; two rules are the same rule when these are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredColumns {
    robot_id: RobotId,
    timezone: String,
    start_time: String,
    end_time: String,
    gap_minutes: u32,
    watched_event: String,
    alarm_event: String,
    partial_final_window: String,
    enabled: bool,
}

impl StoredColumns {
    /// The columns of `rule`.
    pub fn of(rule: &Rule) -> StoredColumns {
        StoredColumns {
            robot_id: rule.robot_id,
            timezone: rule.timezone_name().to_string(),
            start_time: rule.start.strftime("%H:%M:%S").to_string(),
            end_time: rule.end.strftime("%H:%M:%S").to_string(),
            gap_minutes: rule.gap.minutes(),
            watched_event: rule.watched_event.clone(),
            alarm_event: rule.alarm_event.clone(),
            partial_final_window: rule.partial_final_window.as_str().to_string(),
            enabled: rule.enabled,
        }
    }

    fn from_row(row: &Row) -> Result<StoredColumns, StoreError> {
        Ok(StoredColumns {
            robot_id: row.robot_id("robot_id")?,
            timezone: row.text("timezone")?,
            start_time: row.text("start_time")?,
            end_time: row.text("end_time")?,
            gap_minutes: u32::try_from(row.int("gap_minutes")?)
                .map_err(|_| StoreError::corrupt("gap out of range"))?,
            watched_event: row.text("watched_event")?,
            alarm_event: row.text("alarm_event")?,
            partial_final_window: row.text("partial_final_window")?,
            enabled: row.int("enabled")? != 0,
        })
    }

    fn to_rule(&self) -> Result<Rule, StoreError> {
        RuleInput {
            robot_id: self.robot_id,
            timezone: self.timezone.clone(),
            start: self.start_time.clone(),
            end: self.end_time.clone(),
            gap: self.gap_minutes.to_string(),
            watched_event: self.watched_event.clone(),
            alarm_event: self.alarm_event.clone(),
            partial_final_window: self.partial_final_window.clone(),
            enabled: self.enabled,
        }
        .validate()
        .map_err(|e| StoreError::corrupt(format!("rule of robot {}: {e}", self.robot_id)))
    }
}

/// A rule read with the columns of [`select_by_robots`].
pub fn stored_rule(row: &Row) -> Result<StoredRule, StoreError> {
    let columns = StoredColumns::from_row(row)?;
    Ok(StoredRule {
        rule: columns.to_rule()?,
        version: row.id("version")?,
        updated_at: ms_to_ts(row.int("updated_at_ms")?)?,
        watching_since: row
            .opt_int("watching_since_ms")?
            .map(ms_to_ts)
            .transpose()?,
    })
}

/// A rule as [`lock`] finds it.
#[derive(Debug, Clone)]
pub struct Locked {
    /// Its columns.
    pub columns: StoredColumns,
    /// Its version.
    pub version: u64,
    /// When it was created or last enabled.
    pub watching_since: Option<Timestamp>,
}

/// Locks and reads the rule of `robot_id`, if there is one.
pub async fn lock(tx: &mut Tx, robot_id: RobotId) -> Result<Option<Locked>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM status_job_rule WHERE robot_id = ?{}",
        tx.dialect().for_update()
    );
    match tx.fetch_optional(&sql, &[robot_id.into()]).await? {
        Some(row) => Ok(Some(Locked {
            columns: StoredColumns::from_row(&row)?,
            version: row.id("version")?,
            watching_since: row
                .opt_int("watching_since_ms")?
                .map(ms_to_ts)
                .transpose()?,
        })),
        None => Ok(None),
    }
}

impl StoredColumns {
    /// Whether the rule is enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

/// Writes `columns` as version `version`.
pub async fn write(
    tx: &mut Tx,
    columns: &StoredColumns,
    version: u64,
    watching_since: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO status_job_rule ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){}",
        tx.dialect().upsert(
            "robot_id",
            &[
                "timezone",
                "start_time",
                "end_time",
                "gap_minutes",
                "watched_event",
                "alarm_event",
                "partial_final_window",
                "enabled",
                "version",
                "updated_at_ms",
                "watching_since_ms",
            ],
        )
    );
    tx.execute(
        &sql,
        &[
            columns.robot_id.into(),
            columns.timezone.clone().into(),
            columns.start_time.clone().into(),
            columns.end_time.clone().into(),
            columns.gap_minutes.into(),
            columns.watched_event.clone().into(),
            columns.alarm_event.clone().into(),
            columns.partial_final_window.clone().into(),
            columns.enabled.into(),
            version.into(),
            ts_to_ms(now).into(),
            match watching_since {
                Some(t) => ts_to_ms(t).into(),
                None => super::sql::Arg::Null,
            },
        ],
    )
    .await?;
    Ok(())
}

/// How many rules one read of [`list`] takes: the rows of a page are turned into rules before
/// the next page is read, so that 100,000 rules never sit in memory as rows all at once (they
/// would take several times the rules' own size, kept by the allocator afterwards).
const LIST_PAGE: u32 = 2_000;

/// Every stored rule, by robot.
pub async fn list(tx: &mut Tx) -> Result<Vec<StoredRule>, StoreError> {
    let mut rules: Vec<StoredRule> = Vec::new();
    loop {
        let after = rules.last().map_or(0, |r| i64::from(r.rule.robot_id) + 1);
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT {COLUMNS} FROM status_job_rule WHERE robot_id >= ? \
                     ORDER BY robot_id LIMIT {LIST_PAGE}"
                ),
                &[after.into()],
            )
            .await?;
        let full = rows.len() == LIST_PAGE as usize;
        for row in &rows {
            rules.push(stored_rule(row)?);
        }
        if !full {
            return Ok(rules);
        }
    }
}

/// The rule of one robot.
pub async fn get(tx: &mut Tx, robot_id: RobotId) -> Result<Option<StoredRule>, StoreError> {
    let row = tx
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM status_job_rule WHERE robot_id = ?"),
            &[robot_id.into()],
        )
        .await?;
    row.as_ref().map(stored_rule).transpose()
}

/// The statement that reads the rules of `robots` (those that have one), for [`stored_rule`].
pub fn select_by_robots(robots: &[RobotId]) -> (String, Vec<super::sql::Arg>) {
    let marks = vec!["?"; robots.len()].join(", ");
    (
        format!("SELECT {COLUMNS} FROM status_job_rule WHERE robot_id IN ({marks})"),
        robots.iter().map(|&r| r.into()).collect(),
    )
}

/// The rules of `robots` (those that have one), each with the `status_check_id` and
/// `local_date` of its robot's sessions on `dates` (a row per session; `NULL` for a rule
/// without any), in one statement; [`stored_rule`] reads a row's rule.
pub fn select_with_sessions(
    robots: &[RobotId],
    dates: &[String],
) -> (String, Vec<super::sql::Arg>) {
    let mut args: Vec<super::sql::Arg> = dates.iter().map(|d| d.clone().into()).collect();
    args.extend(robots.iter().map(|&r| super::sql::Arg::from(r)));
    (
        format!(
            "SELECT {}, s.status_check_id, s.local_date FROM status_job_rule r \
             LEFT JOIN status_job_session s ON s.robot_id = r.robot_id AND s.local_date IN ({}) \
             WHERE r.robot_id IN ({})",
            super::sql::qualified(COLUMNS, "r"),
            vec!["?"; dates.len()].join(", "),
            vec!["?"; robots.len()].join(", ")
        ),
        args,
    )
}

/// The rules of `robots` (those that have one), in one statement.
pub async fn get_many(tx: &mut Tx, robots: &[RobotId]) -> Result<Vec<StoredRule>, StoreError> {
    if robots.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, args) = select_by_robots(robots);
    let rows = tx.fetch_all(&sql, &args).await?;
    rows.iter().map(stored_rule).collect()
}
