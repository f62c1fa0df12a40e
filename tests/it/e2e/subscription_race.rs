//! A queue message that arrives between Megazord creating a session's subscription and the
//! service writing it down: found by the soak scenario of `scripts/bench` (three instances, a
//! stalling Megazord), here with one instance and one delayed answer.
//!
//! Megazord fans an event out as soon as the subscription exists, so the message can reach the
//! consumer while the instance that made the subscription still waits for Megazord's answer (or
//! for its own commit). Such a message is taken by its robot, not kept as a dead letter "not a
//! subscription of this service" (the sign operators read as another service consuming the
//! queue).
//!
//! Needs `scripts/services.sh` (MariaDB on `AZI3_TEST_MYSQL_URL`, moto on
//! `AZI3_TEST_SQS_ENDPOINT`).

use std::time::Duration;

use crate::support::live::{ACTIVITY, DayPlan, InstanceOptions, Rig, RuleSpec, tail};
use crate::support::megazord::{Fault, FaultSpan, MegazordRoute};
use azi3_status_jobs::domain::RobotId;
use jiff::Timestamp;
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_overtakes_its_subscription_is_not_a_dead_letter() {
    let start: Timestamp = "2025-03-29T23:59:00Z".parse().unwrap();
    let rig = Rig::new(
        "subrace",
        DayPlan {
            clock_start: start,
            speed: 60.0,
            grace_seconds: 30,
            rules: vec![RuleSpec {
                robot_id: RobotId::new(91),
                timezone: "Europe/Amsterdam",
                start: "01:00",
                end: "06:00",
                gap: "40m",
            }],
        },
    )
    .await;
    // The subscription is made at once, its answer comes 900 ms later (within the service's
    // 1 s request timeout, so it is not tried again).
    rig.server.inject_fault(
        MegazordRoute::CreateSubscription,
        Fault::StallAfterHandling(Duration::from_millis(900)),
        FaultSpan::Next(1),
    );
    let service = rig
        .start_service(InstanceOptions {
            instance_id: "a".into(),
            ..InstanceOptions::default()
        })
        .await;
    // An event while the answer is held back: its message goes to the queue at once.
    assert!(
        rig.server
            .wait_for(Duration::from_secs(20), |server| {
                server
                    .subscriptions()
                    .iter()
                    .any(|s| s.robot_id == RobotId::new(91) && s.is_active)
            })
            .await,
        "the session was never subscribed\n{}",
        tail(&service)
    );
    let event = rig.server.post_sensor_event(RobotId::new(91), ACTIVITY);
    // The event is recorded in the session (from the queue or from the history read)…
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, report) = service
            .get("/v1/robots/91/sessions?from=2025-03-30&to=2025-03-30")
            .await;
        assert_eq!(status, 200, "{report}");
        let recorded = report["sessions"][0]["records"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["incomingEventId"].as_u64() == Some(event.id));
        if recorded {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "event {} never recorded: {report}\n{}",
            event.id,
            tail(&service)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // … and every copy of its message has been handled by now (one second of long poll).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut conn = sqlx::MySqlConnection::connect(&rig.database_url)
        .await
        .unwrap();
    let dead: Vec<(String,)> = sqlx::query_as("SELECT reason FROM status_job_dead_letter")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    assert!(
        dead.is_empty(),
        "a message of the session's own subscription was kept as a dead letter: {dead:?}"
    );
    rig.finish().await;
}
