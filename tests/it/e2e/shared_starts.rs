//! Sessions that start at the same S on several instances are prepared once: the instance
//! that started a session subscribes it and replays its history, and the others leave it to
//! that instance (before, every instance read every session's history at S, and subscribed
//! those it found unsubscribed, deleting the spare again).
//!
//! Needs `scripts/services.sh` (MariaDB on `AZI3_TEST_MYSQL_URL`, moto on
//! `AZI3_TEST_SQS_ENDPOINT`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::live::{DayPlan, InstanceOptions, Rig, RuleSpec, tail};
use crate::support::megazord::MegazordRoute;
use azi3_status_jobs::domain::RobotId;
use jiff::Timestamp;

const ROBOTS: u32 = 12;

/// Calls to `route` per robot.
fn calls_per_robot(rig: &Rig, route: MegazordRoute) -> BTreeMap<u32, usize> {
    let mut calls = BTreeMap::new();
    for request in rig.server.requests_to(route) {
        let robot = request
            .path
            .split('/')
            .skip_while(|segment| *segment != "robots")
            .nth(1)
            .and_then(|id| id.parse::<u32>().ok())
            .expect("a robot route");
        *calls.entry(robot).or_insert(0) += 1;
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_two_instances_find_at_s_are_subscribed_and_replayed_once() {
    // S is 08:00 in Amsterdam (06:00 UTC), three service minutes (3 s) after the clock starts:
    // both instances are up before it.
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
    let rig = Rig::new(
        "sharedstarts",
        DayPlan {
            clock_start: start,
            speed: 60.0,
            grace_seconds: 30,
            rules,
        },
    )
    .await;
    let a = rig
        .start_service(InstanceOptions {
            instance_id: "a".into(),
            ..InstanceOptions::default()
        })
        .await;
    let b = rig
        .start_service(InstanceOptions {
            instance_id: "b".into(),
            ..InstanceOptions::default()
        })
        .await;
    let subscribed = rig
        .server
        .wait_for(Duration::from_secs(30), |server| {
            let active = server.subscriptions();
            (1..=ROBOTS).all(|robot| {
                active
                    .iter()
                    .any(|s| s.robot_id == RobotId::new(robot) && s.is_active)
            })
        })
        .await;
    assert!(
        subscribed,
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
