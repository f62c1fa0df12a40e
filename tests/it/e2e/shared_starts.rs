//! Sessions that start at the same S on several instances are prepared once: the instance
//! that started a session subscribes it and replays its history, and the others leave it to
//! that instance (before, every instance read every session's history at S, and subscribed
//! those it found unsubscribed, deleting the spare again). Later, an instance that starts
//! prepares only the sessions nobody keeps: those of an instance that went quiet, which it
//! takes over.
//!
//! Needs `scripts/services.sh` (MariaDB on `AZI3_TEST_MYSQL_URL`, moto on
//! `AZI3_TEST_SQS_ENDPOINT`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::live::{DayPlan, InstanceOptions, Rig, RuleSpec, counter, metrics_text, tail};
use crate::support::megazord::MegazordRoute;
use azi3_status_jobs::domain::RobotId;
use jiff::Timestamp;
use sqlx::Connection;

const ROBOTS: u32 = 12;

/// Calls to `route` per robot.
fn calls_per_robot(rig: &Rig, route: MegazordRoute) -> BTreeMap<u32, usize> {
    let mut calls = BTreeMap::new();
    for request in rig.server.requests_to(route) {
        let robot = robot_of(&request.path).expect("a robot route");
        *calls.entry(robot).or_insert(0) += 1;
    }
    calls
}

/// The robot a Megazord route names.
fn robot_of(path: &str) -> Option<u32> {
    path.split('/')
        .skip_while(|segment| *segment != "robots")
        .nth(1)
        .and_then(|id| id.parse::<u32>().ok())
}

/// Twelve robots watched from 08:00 in Amsterdam (06:00 UTC), three service minutes (3 s)
/// after the clock starts, at 60 times the wall clock.
async fn twelve_robots(test: &str) -> Rig {
    let start: Timestamp = "2025-06-02T05:57:00Z".parse().unwrap();
    let rules = (1..=ROBOTS)
        .map(|robot| RuleSpec {
            robot_id: RobotId::new(robot),
            timezone: "Europe/Amsterdam",
            start: "08:00",
            end: "20:00",
            gap: "2h",
        })
        .collect();
    Rig::new(
        test,
        DayPlan {
            clock_start: start,
            speed: 60.0,
            grace_seconds: 30,
            rules,
        },
    )
    .await
}

fn instance(id: &str) -> InstanceOptions {
    InstanceOptions {
        instance_id: id.into(),
        ..InstanceOptions::default()
    }
}

/// Waits until every robot's session has an active subscription at Megazord.
async fn every_robot_subscribed(rig: &Rig) -> bool {
    rig.server
        .wait_for(Duration::from_secs(30), |server| {
            let active = server.subscriptions();
            (1..=ROBOTS).all(|robot| {
                active
                    .iter()
                    .any(|s| s.robot_id == RobotId::new(robot) && s.is_active)
            })
        })
        .await
}

/// The `lock_id` of every poller row: the instance that keeps each session.
async fn keepers(rig: &Rig) -> BTreeMap<u64, Option<String>> {
    let mut db = sqlx::MySqlConnection::connect(&rig.database_url)
        .await
        .unwrap();
    let rows: Vec<(u64, Option<String>)> =
        sqlx::query_as("SELECT status_check_id, lock_id FROM status_check_poller")
            .fetch_all(&mut db)
            .await
            .unwrap();
    db.close().await.ok();
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_two_instances_find_at_s_are_subscribed_and_replayed_once() {
    // Both instances are up before S.
    let rig = twelve_robots("sharedstarts").await;
    let a = rig.start_service(instance("a")).await;
    let b = rig.start_service(instance("b")).await;
    assert!(
        every_robot_subscribed(&rig).await,
        "not every session was subscribed\n--- a\n{}\n--- b\n{}",
        tail(&a),
        tail(&b)
    );
    // Twenty service minutes more, long before the first window ends (10:00): room for a
    // second preparation to show, by the instance that found the session started.
    rig.sleep_until("2025-06-02T06:20:00Z".parse().unwrap())
        .await;
    let every_robot_once: BTreeMap<u32, usize> = (1..=ROBOTS).map(|robot| (robot, 1)).collect();
    assert_eq!(
        calls_per_robot(&rig, MegazordRoute::CreateSubscription),
        every_robot_once,
        "one subscription per session\n--- a\n{}\n--- b\n{}",
        tail(&a),
        tail(&b)
    );
    assert_eq!(
        calls_per_robot(&rig, MegazordRoute::GetIncomings),
        every_robot_once,
        "one history replay per session\n--- a\n{}\n--- b\n{}",
        tail(&a),
        tail(&b)
    );
    rig.finish().await;
}

/// Instances that start after the sessions leave those another instance keeps: within an
/// alarm lease of their start (left to their starter) and after it (before, an instance that
/// started then replayed the history of every running session). Once that instance has gone
/// quiet, a running one takes its sessions over, however it knew them, and prepares each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_leave_kept_sessions_and_take_over_those_of_a_quiet_one() {
    let rig = twelve_robots("takeover").await;
    let mut a = rig.start_service(instance("a")).await;
    assert!(
        every_robot_subscribed(&rig).await,
        "not every session was subscribed\n{}",
        tail(&a)
    );
    // b starts within an alarm lease (under ten service minutes here) of S, c past it; each
    // has room for its first passes.
    rig.sleep_until("2025-06-02T06:02:00Z".parse().unwrap())
        .await;
    let b = rig.start_service(instance("b")).await;
    rig.sleep_until("2025-06-02T06:12:00Z".parse().unwrap())
        .await;
    let mut c = rig.start_service(instance("c")).await;
    rig.sleep_until("2025-06-02T06:20:00Z".parse().unwrap())
        .await;
    let every_robot = |n: usize| -> BTreeMap<u32, usize> { (1..=ROBOTS).map(|r| (r, n)).collect() };
    assert_eq!(
        calls_per_robot(&rig, MegazordRoute::GetIncomings),
        every_robot(1),
        "b or c replayed sessions a keeps\n--- b\n{}\n--- c\n{}",
        tail(&b),
        tail(&c)
    );
    let kept = keepers(&rig).await;
    assert!(
        kept.values()
            .all(|k| k.as_deref() == Some("azi-3-status-jobs:a")),
        "{kept:?}"
    );

    // a and c stop, and a's poller rows go unrefreshed for long (set back by hand: the janitor
    // counts wall-clock minutes). b, which knows a's sessions as left to their starter, takes
    // them over within a round of its janitor (30 s).
    c.terminate();
    a.terminate();
    let mut db = sqlx::MySqlConnection::connect(&rig.database_url)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE status_check_poller SET updated_at = updated_at - INTERVAL 10 MINUTE \
         WHERE lock_id = 'azi-3-status-jobs:a'",
    )
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.ok();
    let replayed = rig
        .server
        .wait_for(Duration::from_secs(45), |server| {
            let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
            for request in server.requests_to(MegazordRoute::GetIncomings) {
                if let Some(robot) = robot_of(&request.path) {
                    *counts.entry(robot).or_default() += 1;
                }
            }
            counts == every_robot(2)
        })
        .await;
    assert!(
        replayed,
        "the quiet instance's sessions were not replayed once more: {:?}\n--- b\n{}",
        calls_per_robot(&rig, MegazordRoute::GetIncomings),
        tail(&b)
    );
    // Room for a second preparation to show.
    let later = rig.now() + jiff::SignedDuration::from_mins(5);
    rig.sleep_until(later).await;
    assert_eq!(
        calls_per_robot(&rig, MegazordRoute::GetIncomings),
        every_robot(2),
        "each session taken over is prepared once\n--- b\n{}",
        tail(&b)
    );
    assert_eq!(
        calls_per_robot(&rig, MegazordRoute::CreateSubscription),
        every_robot(1),
        "subscribed sessions are not subscribed again"
    );
    let kept = keepers(&rig).await;
    assert_eq!(kept.len(), ROBOTS as usize, "{kept:?}");
    assert!(
        kept.values()
            .all(|k| k.as_deref() == Some("azi-3-status-jobs:b")),
        "{kept:?}"
    );
    assert_eq!(
        counter(&metrics_text(&b).await, "sessions_taken_over_total", ""),
        f64::from(ROBOTS)
    );
    rig.finish().await;
}
