//! The scheduler's batched store work on both backends: sessions looked up many at a time,
//! started together with each outcome what it would be alone, and the start-up checks' reads
//! that cost one query whatever the number of rules.
//!
//! Needs MariaDB on `AZI3_TEST_MYSQL_URL` (`scripts/services.sh`).

use super::support::{TestDb, refs, rule, started, ts};
use azi3_status_jobs::domain::RobotId;
use azi3_status_jobs::domain::{Rule, Session};
use azi3_status_jobs::store::{StartOutcome, StoredRule, ZoneDifference};

const OWNER: &str = "azi3-status-jobs:test";

fn robot(robot_id: u32) -> Rule {
    let mut rule = rule("08:00", "20:00", "60m");
    rule.robot_id = RobotId::new(robot_id);
    rule
}

#[tokio::test]
async fn sessions_started_together_each_get_the_outcome_they_would_alone() {
    for db in TestDb::both().await {
        let date = "2025-06-02".parse().unwrap();
        let now = ts("2025-06-02T06:00:00Z");
        // Robot 7's session exists already; 8 and 9 have none.
        let (existing, _) = started(&db.store, &robot(7), date).await;
        let mut starts: Vec<(StoredRule, Session)> = Vec::new();
        for robot_id in [7, 8, 9] {
            db.store.set_rule(&robot(robot_id), now).await.unwrap();
            let stored = db
                .store
                .rule(RobotId::new(robot_id))
                .await
                .unwrap()
                .unwrap();
            let session = Session::on(&stored.rule, date).unwrap();
            starts.push((stored, session));
        }

        let outcomes = db
            .store
            .start_sessions(&starts, OWNER, refs(&db.store).await, now)
            .await;
        let outcomes: Vec<StartOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes[0], StartOutcome::Existing(existing), "{}", db.name);
        assert!(
            matches!(outcomes[1], StartOutcome::Created(_)),
            "{}: {outcomes:?}",
            db.name
        );
        assert!(
            matches!(outcomes[2], StartOutcome::Created(_)),
            "{}: {outcomes:?}",
            db.name
        );

        // Looked up in one call: every one, running, none subscribed, with its end.
        let keys: Vec<_> = starts
            .iter()
            .map(|(stored, session)| (stored.rule.robot_id, session.date))
            .chain([(RobotId::new(10), date)])
            .collect();
        let found = db.store.started_sessions(&keys).await.unwrap();
        assert_eq!(found.len(), 3, "{}: robot 10 has no session", db.name);
        for ((stored, session), outcome) in starts.iter().zip(&outcomes) {
            let one = &found[&(stored.rule.robot_id, date)];
            assert_eq!(
                one.status_check_id,
                outcome.status_check_id(),
                "{}",
                db.name
            );
            assert!(one.running, "{}", db.name);
            assert_eq!(one.end, session.end, "{}", db.name);
            assert_eq!(one.subscription_id, None, "{}", db.name);
            let view = db
                .store
                .session(one.status_check_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(view.state.session, *session, "{}", db.name);
        }

        // Starting them all again creates nothing.
        let again = db
            .store
            .start_sessions(&starts, OWNER, refs(&db.store).await, now)
            .await;
        for (outcome, first) in again.into_iter().zip(&outcomes) {
            assert_eq!(
                outcome.unwrap(),
                StartOutcome::Existing(first.status_check_id()),
                "{}",
                db.name
            );
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn a_start_that_fails_in_a_batch_fails_alone() {
    for db in TestDb::both().await {
        let date = "2025-06-02".parse().unwrap();
        let now = ts("2025-06-02T06:00:00Z");
        db.store.set_rule(&robot(8), now).await.unwrap();
        let good = db.store.rule(RobotId::new(8)).await.unwrap().unwrap();
        let good_session = Session::on(&good.rule, date).unwrap();
        // A disabled rule starts no session.
        let mut disabled = good.clone();
        disabled.rule.robot_id = RobotId::new(9);
        disabled.rule.enabled = false;
        let mut disabled_session = good_session;
        disabled_session.robot_id = RobotId::new(9);

        let outcomes = db
            .store
            .start_sessions(
                &[(disabled, disabled_session), (good, good_session)],
                OWNER,
                refs(&db.store).await,
                now,
            )
            .await;
        assert!(outcomes[0].is_err(), "{}: {outcomes:?}", db.name);
        assert!(
            matches!(outcomes[1], Ok(StartOutcome::Created(_))),
            "{}: {outcomes:?}",
            db.name
        );
        let found = db
            .store
            .started_sessions(&[(RobotId::new(8), date), (RobotId::new(9), date)])
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn the_start_up_checks_read_the_rules_events_and_zone_differences_in_one_query() {
    for db in TestDb::both().await {
        let now = ts("2025-06-02T06:00:00Z");
        let mut seven = robot(7);
        seven.alarm_event = "OTHER_ALARM".into();
        db.store.set_rule(&seven, now).await.unwrap();
        db.store.set_rule(&robot(8), now).await.unwrap();
        assert_eq!(
            db.store.enabled_rule_events().await.unwrap(),
            vec![
                "NO_TOILET_ACTIVITY_ALARM".to_string(),
                "OTHER_ALARM".to_string(),
                "TOILET_ACTIVITY".to_string(),
            ],
            "{}",
            db.name
        );
        db.store.disable_rule(RobotId::new(7), now).await.unwrap();
        assert_eq!(
            db.store.enabled_rule_events().await.unwrap(),
            vec![
                "NO_TOILET_ACTIVITY_ALARM".to_string(),
                "TOILET_ACTIVITY".to_string(),
            ],
            "{}: a disabled rule's events are not asked about",
            db.name
        );
        assert_eq!(
            db.store.rule_zone_differences().await.unwrap(),
            vec![],
            "{}: no robot_settings, nothing to say",
            db.name
        );
        if db.name == "mysql" {
            db.store.set_rule(&robot(7), now).await.unwrap();
            for sql in [
                "CREATE TABLE time_zone (id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL)",
                "CREATE TABLE robot_settings (robot_id INT UNSIGNED NOT NULL UNIQUE, time_zone_id SMALLINT UNSIGNED NOT NULL)",
                "INSERT INTO time_zone (id, name) VALUES (427, 'Europe/Amsterdam'), (12, 'Europe/London')",
                "INSERT INTO robot_settings (robot_id, time_zone_id) VALUES (7, 12), (8, 427), (9, 12)",
            ] {
                db.store.execute_sql(sql, &[]).await.unwrap();
            }
            assert_eq!(
                db.store.rule_zone_differences().await.unwrap(),
                vec![ZoneDifference {
                    robot_id: RobotId::new(7),
                    rule_zone: "Europe/Amsterdam".into(),
                    robot_zone: "Europe/London".into(),
                }],
                "robot 8 agrees, robot 9 has no rule"
            );
        }
        db.finish().await;
    }
}
