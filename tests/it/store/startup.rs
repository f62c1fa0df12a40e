//! Start-up: migrations, template, `[[rules]]` from the configuration, and the check of the
//! script rows on a shared MySQL schema.

use super::support::{TestDb, ts};
use azi3_status_jobs::config::{Config, RuleConfig};
use azi3_status_jobs::domain::RobotId;
use azi3_status_jobs::store::{Prepared, StartupError, apply_rules, prepare};
use jiff::Timestamp;

fn rule_config(robot_id: u32, end: &str) -> RuleConfig {
    RuleConfig {
        robot_id: RobotId::new(robot_id),
        timezone: "Europe/Amsterdam".into(),
        start: "08:00".into(),
        end: end.into(),
        gap: Some("90m".into()),
        partial_final_window: None,
        watched_event: None,
        alarm_event: None,
        enabled: None,
    }
}

/// The store as the service starts it: prepared, then the configuration's rules applied.
async fn started(config: &Config, now: Timestamp) -> Prepared {
    let prepared = prepare(&config.database, &config.status_check)
        .await
        .unwrap();
    apply_rules(&prepared.store, &config.rules().unwrap(), now)
        .await
        .unwrap();
    prepared
}

#[tokio::test]
async fn rules_from_the_config_are_created_or_updated_and_others_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    config.rules = vec![rule_config(1, "20:00"), rule_config(2, "20:00")];
    let now = ts("2025-01-01T00:00:00Z");
    let prepared = started(&config, now).await;
    prepared
        .store
        .set_rule(&rule_config(3, "21:00").to_rule(0).unwrap(), now)
        .await
        .unwrap();
    prepared.store.close().await;

    config.rules = vec![rule_config(1, "21:00")];
    let prepared = started(&config, now).await;
    let rules = prepared.store.rules().await.unwrap();
    let summary: Vec<_> = rules
        .iter()
        .map(|r| (r.rule.robot_id, r.rule.end.to_string(), r.version))
        .collect();
    assert_eq!(
        summary,
        vec![
            (RobotId::new(1), "21:00:00".to_string(), 2),
            (RobotId::new(2), "20:00:00".to_string(), 1),
            (RobotId::new(3), "21:00:00".to_string(), 1)
        ]
    );
    assert_eq!(
        prepared.refs.template_id,
        prepared.store.template().await.unwrap().unwrap().id
    );
    prepared.store.close().await;
}

#[tokio::test]
async fn on_a_shared_mysql_schema_missing_script_rows_are_named() {
    let db = TestDb::mysql().await;
    // The shared tables exist (as typ-e would have made them), the script rows do not.
    db.store.migrate(true).await.unwrap();
    let mut config = Config::default();
    config.database.url = format!(
        "{}/{}",
        crate::support::mysql_base_url(),
        db.database_name()
    );
    config.status_check.step_id = 901;
    config.status_check.script_version_id = 77;
    let err = prepare(&config.database, &config.status_check)
        .await
        .unwrap_err();
    assert!(matches!(err, StartupError::MissingRows(_)), "{err}");
    for sql in [
        "CREATE TABLE script_version (id BIGINT UNSIGNED PRIMARY KEY)",
        "CREATE TABLE script_step (id BIGINT UNSIGNED PRIMARY KEY)",
        "INSERT INTO script_version (id) VALUES (77)",
    ] {
        db.store.execute_sql(sql, &[]).await.unwrap();
    }
    let msg = prepare(&config.database, &config.status_check)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("status_check.step_id = 901") && msg.contains("script_step"),
        "{msg}"
    );
    assert!(!msg.contains("script_version_id"), "{msg}");
    db.store
        .execute_sql("INSERT INTO script_step (id) VALUES (901)", &[])
        .await
        .unwrap();
    let prepared = prepare(&config.database, &config.status_check)
        .await
        .unwrap();
    assert_eq!(
        (prepared.refs.step_id, prepared.refs.script_version_id),
        (901, 77)
    );
    prepared.store.close().await;
    db.finish().await;
}
