//! The toilet-monitoring template seed is idempotent: `seed-template` twice, and the SQL shipped
//! for `typ-e` twice, leave the same rows.

use super::support::{TestDb, snapshot_tables};
use azi3_status_jobs::store::{MYSQL_SEED, Store};

const TEMPLATE_TABLES: &[&str] = &[
    "status_check_description",
    "status_check_template",
    "status_check_template_detail",
];

async fn template_rows(store: &Store) -> Vec<String> {
    // `created_at` defaults to the insert time; the rows are the same when it is.
    snapshot_tables(store, TEMPLATE_TABLES).await
}

#[tokio::test]
async fn seed_template_twice_leaves_the_same_rows() {
    for db in [TestDb::sqlite().await, TestDb::mysql().await] {
        db.store.migrate(true).await.unwrap();
        let first = db.store.seed_template().await.unwrap();
        let rows = template_rows(&db.store).await;
        let second = db.store.seed_template().await.unwrap();
        assert_eq!(first, second, "{}", db.name);
        assert!(first.is_active);
        assert_eq!(template_rows(&db.store).await, rows, "{}", db.name);
        // One description, one template, the two detail rows.
        assert_eq!(rows.len(), 4, "{}: {rows:#?}", db.name);
        assert!(
            rows.iter()
                .any(|r| r.contains("TOILET_ACTIVITY_MONITORING"))
        );
        assert!(
            rows.iter()
                .any(|r| r.contains(r#"[{"eventName":"TOILET_ACTIVITY"}]"#))
        );
        assert!(
            rows.iter()
                .any(|r| r.ends_with("|FUTURE|<no-op: evaluated by azi-3-status-jobs>|SUCCESS"))
        );
        assert!(
            rows.iter().any(
                |r| r.ends_with("|FUTURE|<no-op: evaluated by azi-3-status-jobs>|ALARM_RAISED")
            )
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn typ_e_seed_sql_applied_twice_leaves_the_same_rows() {
    let db = TestDb::mysql().await;
    db.store.migrate(true).await.unwrap();
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/typ-e/seed_toilet_activity_monitoring_template.sql"
    ))
    .unwrap();
    assert_eq!(sql, MYSQL_SEED, "seed-template runs the shipped file");
    let apply = || async {
        db.store.execute_sql_script(MYSQL_SEED).await.unwrap();
    };
    apply().await;
    let once = template_rows(&db.store).await;
    apply().await;
    assert_eq!(template_rows(&db.store).await, once);
    assert_eq!(once.len(), 4);
    // The service finds the template the SQL made, and seeding again changes nothing.
    let template = db.store.template().await.unwrap().unwrap();
    assert_eq!(db.store.seed_template().await.unwrap(), template);
    assert_eq!(template_rows(&db.store).await, once);
    db.finish().await;
}
