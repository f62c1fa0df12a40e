//! Sessions whose instance went quiet are taken over through their poller rows: only running
//! sessions of this service, only rows that are unlocked or not refreshed for the time given,
//! each row by one instance when several look at once.
//!
//! Needs MariaDB on `AZI3_TEST_MYSQL_URL` (`scripts/services.sh`).

use std::collections::BTreeSet;
use std::time::Duration;

use super::support::{TestDb, rule, started};
use azi3_status_jobs::domain::RobotId;
use azi3_status_jobs::store::{QuietSession, StatusCheckId, Store};
use jiff::civil::date;

/// Every round of finding quiet sessions and taking them over for `owner`, `limit` rows each,
/// as the janitor goes: what each round took.
async fn take_over_all(store: &Store, owner: &str, limit: usize) -> Vec<Vec<QuietSession>> {
    let mut rounds = Vec::new();
    let mut after = 0;
    loop {
        let quiet = store
            .quiet_sessions(owner, QUIET_FOR, after, limit)
            .await
            .unwrap();
        let ids: Vec<StatusCheckId> = quiet.iter().map(|q| q.status_check_id).collect();
        let taken = store
            .take_over_sessions(owner, QUIET_FOR, &ids)
            .await
            .unwrap();
        let more = quiet.len() == limit;
        if let Some(last) = quiet.last() {
            after = last.status_check_id.get();
        }
        rounds.push(
            quiet
                .into_iter()
                .filter(|q| taken.contains(&q.status_check_id))
                .collect(),
        );
        if !more {
            return rounds;
        }
    }
}

/// The owner `started` gives every session.
const STARTER: &str = "azi3-status-jobs:test";
const TAKER: &str = "azi3-status-jobs:b";
const QUIET_FOR: Duration = Duration::from_secs(120);

async fn started_robots(store: &Store, robots: u32) -> Vec<StatusCheckId> {
    let mut ids = Vec::new();
    for robot in 1..=robots {
        let mut r = rule("08:00", "20:00", "2h");
        r.robot_id = RobotId::new(robot);
        ids.push(started(store, &r, date(2025, 3, 30)).await.0);
    }
    ids
}

fn list(ids: &[StatusCheckId]) -> String {
    ids.iter()
        .map(|id| id.get().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes the poller rows of `ids` look unrefreshed for years.
async fn quiet(store: &Store, ids: &[StatusCheckId]) {
    store
        .execute_sql(
            &format!(
                "UPDATE status_check_poller SET updated_at = '2000-01-01 00:00:00' \
                 WHERE status_check_id IN ({})",
                list(ids)
            ),
            &[],
        )
        .await
        .unwrap();
}

/// Each session's poller `lock_id`, in id order.
async fn holders(store: &Store, ids: &[StatusCheckId]) -> Vec<Option<String>> {
    store
        .select_sql(&[&format!(
            "SELECT lock_id FROM status_check_poller WHERE status_check_id IN ({}) \
             ORDER BY status_check_id",
            list(ids)
        )])
        .await
        .unwrap()
        .remove(0)
        .into_iter()
        .map(|mut row| row.remove(0))
        .collect()
}

#[tokio::test]
async fn only_running_sessions_whose_poller_nobody_keeps_are_taken_over() {
    for db in TestDb::both().await {
        let ids = started_robots(&db.store, 7).await;
        // 0–2: the starter went quiet. 3: the starter keeps it. 4: the legacy cleanup released
        // its lock (just now). 5: quiet, but the session is over. 6: quiet, but the taker's own.
        quiet(&db.store, &[ids[0], ids[1], ids[2], ids[5], ids[6]]).await;
        let taker_holds = format!("UPDATE status_check_poller SET lock_id = '{TAKER}'");
        for (sql, id) in [
            ("UPDATE status_check_poller SET lock_id = NULL", ids[4]),
            ("UPDATE status_job_session SET result = 'SUCCESS'", ids[5]),
            (taker_holds.as_str(), ids[6]),
        ] {
            let sql = format!("{sql} WHERE status_check_id = {}", id.get());
            db.store.execute_sql(&sql, &[]).await.unwrap();
        }

        // Two rows to a transaction: two full rounds, and a last one that finds none.
        let rounds = take_over_all(&db.store, TAKER, 2).await;
        assert_eq!(
            rounds.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 0],
            "{}",
            db.name
        );
        let taken: Vec<QuietSession> = rounds.concat();
        let expected: Vec<QuietSession> = [
            (0, Some(STARTER)),
            (1, Some(STARTER)),
            (2, Some(STARTER)),
            (4, None),
        ]
        .into_iter()
        .map(|(i, held_by)| QuietSession {
            status_check_id: ids[i],
            robot_id: RobotId::new(u32::try_from(i).unwrap() + 1),
            held_by: held_by.map(str::to_string),
        })
        .collect();
        assert_eq!(taken, expected, "{}", db.name);

        let taker = Some(TAKER.to_string());
        let starter = Some(STARTER.to_string());
        assert_eq!(
            holders(&db.store, &ids).await,
            vec![
                taker.clone(),
                taker.clone(),
                taker.clone(),
                starter.clone(),
                taker.clone(),
                starter,
                taker,
            ],
            "{}",
            db.name
        );
        // Refreshed as they were taken: nothing is left to take.
        assert_eq!(
            take_over_all(&db.store, TAKER, 2).await,
            vec![Vec::new()],
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn two_instances_looking_at_once_take_each_session_once() {
    for db in TestDb::both().await {
        let ids = started_robots(&db.store, 40).await;
        quiet(&db.store, &ids).await;
        let (b, c) = tokio::join!(
            take_over_all(&db.store, TAKER, 3),
            take_over_all(&db.store, "azi3-status-jobs:c", 3),
        );
        let (b, c) = (b.concat(), c.concat());
        let by_b: BTreeSet<StatusCheckId> = b.iter().map(|t| t.status_check_id).collect();
        let by_c: BTreeSet<StatusCheckId> = c.iter().map(|t| t.status_check_id).collect();
        assert!(
            by_b.is_disjoint(&by_c),
            "{}: taken by both: {:?}",
            db.name,
            by_b.intersection(&by_c).collect::<Vec<_>>()
        );
        let all: BTreeSet<StatusCheckId> = ids.iter().copied().collect();
        assert_eq!(
            by_b.union(&by_c).copied().collect::<BTreeSet<_>>(),
            all,
            "{}",
            db.name
        );
        // What each was told it took is what the rows say.
        for (id, holder) in ids.iter().zip(holders(&db.store, &ids).await) {
            let expected = if by_b.contains(id) {
                TAKER
            } else {
                "azi3-status-jobs:c"
            };
            assert_eq!(holder.as_deref(), Some(expected), "{}: {id:?}", db.name);
        }
        db.finish().await;
    }
}
