//! The store's batched work on both backends: several sessions' windows closed in one call
//! with each outcome what it would be alone (and their alarms claimed by the closing instance),
//! several alarms marked sent at once, and the rule
//! set's fingerprint that tells the scheduler whether to read the rules again.
//!
//! Needs MariaDB on `AZI3_TEST_MYSQL_URL` (`scripts/services.sh`).

use super::support::{TestDb, admin_mysql, rule, started, ts};
use azi3_status_jobs::domain::RobotId;
use azi3_status_jobs::domain::Rule;
use azi3_status_jobs::megazord::MegazordEventId;
use azi3_status_jobs::store::{AlarmId, CloseOutcome, StatusCheckId};
use jiff::{SignedDuration, Timestamp};
use sqlx::AssertSqlSafe;

fn robot(robot_id: u32) -> Rule {
    let mut rule = rule("08:00", "20:00", "60m");
    rule.robot_id = RobotId::new(robot_id);
    rule
}

#[tokio::test]
async fn windows_closed_together_each_get_the_outcome_they_would_alone() {
    for db in TestDb::both().await {
        let date = "2025-06-02".parse().unwrap();
        let (first, session) = started(&db.store, &robot(7), date).await;
        let (second, _) = started(&db.store, &robot(8), date).await;
        let deadline = session.start + SignedDuration::from_mins(60);
        let now = deadline + SignedDuration::from_secs(30);

        let outcomes = db
            .store
            .close_windows(
                &[
                    (first, deadline),
                    (StatusCheckId::new(u64::MAX >> 8), deadline),
                    (second, deadline - SignedDuration::from_secs(1)),
                ],
                now,
            )
            .await;
        let outcomes: Vec<CloseOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
        assert!(
            matches!(outcomes[0], CloseOutcome::Closed { alarm: Some(_), .. }),
            "{}: {outcomes:?}",
            db.name
        );
        assert_eq!(outcomes[1], CloseOutcome::NotRunning, "{}", db.name);
        assert_eq!(
            outcomes[2],
            CloseOutcome::Stale { deadline },
            "{}: a window asked for with another deadline is left alone",
            db.name
        );

        // The same again: the first is closed already, the second closes now.
        let again = db
            .store
            .close_windows(&[(first, deadline), (second, deadline)], now)
            .await;
        assert!(
            matches!(again[0], Ok(CloseOutcome::Stale { .. })),
            "{}: {again:?}",
            db.name
        );
        assert!(
            matches!(again[1], Ok(CloseOutcome::Closed { alarm: Some(_), .. })),
            "{}: {again:?}",
            db.name
        );

        // Both alarms are claimed and marked sent together; marking again changes nothing.
        let claimed = db
            .store
            .claim_alarms("test", 10, now, SignedDuration::from_mins(5))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2, "{}", db.name);
        let marks: Vec<(AlarmId, MegazordEventId)> = claimed
            .iter()
            .map(|a| (a.id, MegazordEventId::new(1000 + a.id.get())))
            .collect();
        let sent = db.store.mark_alarms_sent(&marks, now).await;
        assert!(sent.iter().all(|s| matches!(s, Ok(true))), "{sent:?}");
        let sent = db.store.mark_alarms_sent(&marks, now).await;
        assert!(sent.iter().all(|s| matches!(s, Ok(false))), "{sent:?}");
        for (id, session_id) in [(first, 7), (second, 8)] {
            let alarms = db.store.alarms_of(id).await.unwrap();
            assert_eq!(alarms.len(), 1, "{}: robot {session_id}", db.name);
            assert_eq!(alarms[0].state, "sent", "{}: robot {session_id}", db.name);
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn two_alarms_of_one_session_marked_in_one_batch_are_both_sent_once() {
    for db in TestDb::both().await {
        let date = "2025-06-02".parse().unwrap();
        let (id, session) = started(&db.store, &robot(31), date).await;
        let first = session.start + SignedDuration::from_mins(60);
        let second = first + SignedDuration::from_mins(60);
        let now = second + SignedDuration::from_secs(30);
        for deadline in [first, second] {
            let closed = db.store.close_window(id, deadline, now).await.unwrap();
            assert!(
                matches!(closed, CloseOutcome::Closed { alarm: Some(_), .. }),
                "{}: {closed:?}",
                db.name
            );
        }
        let claimed = db
            .store
            .claim_alarms("test", 10, now, SignedDuration::from_mins(5))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2, "{}", db.name);
        let mut marks: Vec<(AlarmId, MegazordEventId)> = claimed
            .iter()
            .map(|a| (a.id, MegazordEventId::new(2000 + a.id.get())))
            .collect();
        // The same alarm twice in a batch: marked once.
        marks.push(marks[0]);
        let sent = db.store.mark_alarms_sent(&marks, now).await;
        assert!(
            matches!(sent[..], [Ok(true), Ok(true), Ok(false)]),
            "{}: {sent:?}",
            db.name
        );
        let view = db.store.session(id).await.unwrap().unwrap();
        let alarm_records = view
            .records
            .iter()
            .filter(|r| r.result == "ALARM_SENT")
            .count();
        assert_eq!(alarm_records, 2, "{}: {:?}", db.name, view.records);
        db.finish().await;
    }
}

#[tokio::test]
async fn alarms_claimed_as_their_windows_close_are_this_instances_until_given_back() {
    for db in TestDb::both().await {
        let date = "2025-06-02".parse().unwrap();
        let (first, session) = started(&db.store, &robot(21), date).await;
        let (second, _) = started(&db.store, &robot(22), date).await;
        let (third, _) = started(&db.store, &robot(23), date).await;
        let deadline = session.start + SignedDuration::from_mins(60);
        let now = deadline + SignedDuration::from_secs(30);
        let lease = SignedDuration::from_mins(5);

        let (outcomes, claimed) = db
            .store
            .close_windows_claiming(
                &[
                    (first, deadline),
                    (second, deadline),
                    (third, deadline - SignedDuration::from_secs(1)),
                ],
                now,
                "closer-a",
            )
            .await;
        assert!(
            matches!(outcomes[0], Ok(CloseOutcome::Closed { alarm: Some(_), .. })),
            "{}: {outcomes:?}",
            db.name
        );
        assert!(
            matches!(outcomes[2], Ok(CloseOutcome::Stale { .. })),
            "{}: {outcomes:?}",
            db.name
        );
        let mut sessions: Vec<StatusCheckId> = claimed.iter().map(|a| a.status_check_id).collect();
        sessions.sort_unstable();
        assert_eq!(
            sessions,
            [first, second],
            "{}: the two alarms made due",
            db.name
        );
        for alarm in &claimed {
            assert_eq!(alarm.state, "sending", "{}", db.name);
            assert_eq!(alarm.attempts, 1, "{}: its first attempt", db.name);
        }

        // Nobody else claims them while the lease runs.
        let others = db
            .store
            .claim_alarms("dispatcher-b", 10, now, lease)
            .await
            .unwrap();
        assert!(others.is_empty(), "{}: {others:?}", db.name);

        // Given back by another owner: nothing happens; by their claimer: pending, attempt undone.
        let ids: Vec<AlarmId> = claimed.iter().map(|a| a.id).collect();
        assert_eq!(
            db.store
                .release_alarms("dispatcher-b", &ids, now)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            db.store
                .release_alarms("closer-a", &ids[..1], now)
                .await
                .unwrap(),
            1
        );
        let others = db
            .store
            .claim_alarms("dispatcher-b", 10, now, lease)
            .await
            .unwrap();
        assert_eq!(others.len(), 1, "{}: {others:?}", db.name);
        assert_eq!(others[0].id, ids[0], "{}", db.name);
        assert_eq!(others[0].attempts, 1, "{}: a first attempt again", db.name);

        let sent = db
            .store
            .mark_alarms_sent(&[(ids[0], MegazordEventId::new(501))], now)
            .await;
        assert!(matches!(sent[..], [Ok(true)]), "{}: {sent:?}", db.name);

        // Once the lease has run out, the one never given back is claimable too.
        let later = db
            .store
            .claim_alarms(
                "dispatcher-b",
                10,
                now + lease + SignedDuration::from_secs(1),
                lease,
            )
            .await
            .unwrap();
        assert_eq!(later.len(), 1, "{}: {later:?}", db.name);
        assert_eq!(later[0].id, ids[1], "{}", db.name);
        assert_eq!(
            later[0].attempts, 2,
            "{}: looked up before it is posted",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn a_session_that_cannot_be_closed_fails_alone_and_the_rest_of_its_batch_closes() {
    let db = TestDb::mysql().await;
    db.store.migrate(true).await.unwrap();
    db.store.seed_template().await.unwrap();
    let date = "2025-06-02".parse().unwrap();
    let mut ids = Vec::new();
    let mut deadline = None;
    for robot_id in 11..=14 {
        let (id, session) = started(&db.store, &robot(robot_id), date).await;
        ids.push(id);
        deadline = Some(session.start + SignedDuration::from_mins(60));
    }
    let deadline = deadline.unwrap();
    let now = deadline + SignedDuration::from_secs(30);
    // The third session's row is unreadable: its close fails whatever is tried.
    let admin = admin_mysql().await;
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE `{}`.status_job_session SET partial_final_window = 'bogus' WHERE status_check_id = {}",
        db.database_name(),
        ids[2]
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;

    let windows: Vec<(StatusCheckId, Timestamp)> = ids.iter().map(|&id| (id, deadline)).collect();
    let outcomes = db.store.close_windows(&windows, now).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 2 {
            assert!(outcome.is_err(), "the broken session fails: {outcome:?}");
        } else {
            assert!(
                matches!(outcome, Ok(CloseOutcome::Closed { alarm: Some(_), .. })),
                "session {i} closes although another of its batch failed: {outcome:?}"
            );
            assert_eq!(db.store.alarms_of(ids[i]).await.unwrap().len(), 1);
        }
    }
    assert!(db.store.alarms_of(ids[2]).await.unwrap().is_empty());
    db.finish().await;
}

#[tokio::test]
async fn the_rules_fingerprint_changes_with_every_rule_change_only() {
    for db in TestDb::both().await {
        let now: Timestamp = ts("2025-01-01T00:00:00Z");
        let empty = db.store.rules_fingerprint().await.unwrap();
        db.store.set_rule(&robot(7), now).await.unwrap();
        let one = db.store.rules_fingerprint().await.unwrap();
        assert_ne!(one, empty, "{}", db.name);
        assert_eq!(
            db.store.rules_fingerprint().await.unwrap(),
            one,
            "{}",
            db.name
        );
        let changed = rule("08:00", "20:00", "90m");
        db.store.set_rule(&changed, now).await.unwrap();
        let edited = db.store.rules_fingerprint().await.unwrap();
        assert_ne!(edited, one, "{}: an edited rule", db.name);
        db.store.disable_rule(RobotId::new(7), now).await.unwrap();
        assert_ne!(
            db.store.rules_fingerprint().await.unwrap(),
            edited,
            "{}: a disabled rule",
            db.name
        );
        db.finish().await;
    }
}
