//! Windows that end together are read ahead of their close: when more windows are due than
//! `close_concurrency` reads can take in one go, their history reads start from the deadline
//! `u` on, while each close still waits for `u + grace` (semantics §6). An event that reaches a
//! session after its window's history was read, but before `u + grace`, still moves the
//! window: that window is not alarmed, and every other one is, once.
//!
//! Needs nothing but the embedded database and the Megazord stand-in.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::live::{ACTIVITY, tail};
use crate::support::megazord::{MegazordOptions, MegazordRoute, MegazordServer, following_clock};
use crate::support::service::{Service, ServiceOptions};
use azi3_status_jobs::domain::RobotId;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

const ROBOTS: u32 = 40;
/// Service seconds per wall second: the hour from S to the deadline lasts six seconds.
const SPEED: f64 = 600.0;
/// An hour: six seconds of wall time, far more than 40 reads take.
const GRACE_SECONDS: i64 = 3600;
const ALARM: &str = "NO_TOILET_ACTIVITY_ALARM";
const PATIENCE: Duration = Duration::from_secs(60);

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// One read at a time, so that 40 windows due together are more than one round of reads.
fn config(megazord_url: &str) -> String {
    let mut config = format!(
        "[service]\ngrace_seconds = {GRACE_SECONDS}\nclose_concurrency = 1\ninstance_id = \"ahead\"\n\n\
         [megazord]\nbase_url = \"{megazord_url}\"\nrequest_timeout_ms = 10000\nmax_attempts = 3\n\
         initial_backoff_ms = 20\nmax_backoff_ms = 200\n\n"
    );
    for robot_id in 1..=ROBOTS {
        config.push_str(&format!(
            "[[rules]]\nrobot_id = {robot_id}\ntimezone = \"UTC\"\nstart = \"08:00\"\n\
             end = \"20:00\"\ngap = \"60m\"\n"
        ));
    }
    config
}

/// The robot a `GET …/robots/{id}/incomings` path is about.
fn robot_of(path: &str) -> Option<RobotId> {
    path.split('/')
        .skip_while(|part| *part != "robots")
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_between_an_early_read_and_the_close_still_moves_the_window() {
    let clock_start = ts("2025-06-01T07:59:00Z");
    let deadline = ts("2025-06-01T09:00:00Z");
    let close_at = deadline + SignedDuration::from_secs(GRACE_SECONDS);

    let (stand_in_clock, clock) = following_clock(clock_start);
    let server = MegazordServer::start(MegazordOptions::default().with_clock(stand_in_clock)).await;
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: config(&server.base_url()),
            args: vec![
                "--clock-start".into(),
                clock_start.to_string(),
                "--clock-speed".into(),
                SPEED.to_string(),
            ],
            ..ServiceOptions::default()
        },
    );
    let sim = service.simulated_clock().await;
    clock.set(sim).unwrap();
    assert!(
        server
            .wait_for(PATIENCE, |s| s.subscriptions().len() >= ROBOTS as usize)
            .await,
        "sessions not started\n{}",
        tail(&service)
    );

    // Halfway through the grace, every robot whose window was read already gets an event
    // inside that window.
    let halfway = deadline + SignedDuration::from_secs(GRACE_SECONDS / 2);
    tokio::time::sleep(
        sim.real_time_of(halfway)
            .duration_since(Timestamp::now())
            .unsigned_abs(),
    )
    .await;
    let read_early: BTreeSet<RobotId> = server
        .requests_to(MegazordRoute::GetIncomings)
        .iter()
        .filter(|r| r.received_at >= deadline)
        .filter_map(|r| robot_of(&r.path))
        .collect();
    assert!(
        server.alarm_post_counts().is_empty(),
        "alarms posted before u + grace\n{}",
        tail(&service)
    );
    assert!(
        !read_early.is_empty(),
        "no window was read before u + grace\n{}",
        tail(&service)
    );
    let mut posts = tokio::task::JoinSet::new();
    for &robot_id in &read_early {
        let base_url = service.base_url.clone();
        posts.spawn(async move {
            let response = reqwest::Client::new()
                .post(format!(
                    "{base_url}/internal/v1/status-jobs/robots/{robot_id}/events"
                ))
                .header("content-type", "application/json")
                .body(
                    json!({"id": format!("late-{robot_id}"), "eventName": ACTIVITY,
                            "occurredAt": "2025-06-01T08:30:00Z"})
                    .to_string(),
                )
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
        });
    }
    while let Some(posted) = posts.join_next().await {
        posted.unwrap();
    }
    assert!(
        Timestamp::now() < sim.real_time_of(close_at),
        "the events came after u + grace: the machine is too slow for this test"
    );

    let expected = ROBOTS as usize - read_early.len();
    let alarmed = server
        .wait_for(PATIENCE, |s| s.alarm_post_counts().len() >= expected)
        .await;
    // Anything posted wrongly shows up within moments of the others.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alarmed, "{}", tail(&service));
    let alarms: Vec<_> = server
        .incoming_events()
        .into_iter()
        // The moved windows end at 09:30 and alarm from 10:30 on: not this test's.
        .filter(|e| e.event_name == ALARM && e.created_at < ts("2025-06-01T10:30:00Z"))
        .collect();
    for alarm in &alarms {
        assert!(
            !read_early.contains(&alarm.robot_id),
            "robot {} was alarmed although an event moved its window before u + grace",
            alarm.robot_id
        );
        // The stand-in keeps whole seconds.
        assert!(
            alarm.created_at >= close_at - SignedDuration::from_secs(1),
            "alarm before u + grace"
        );
    }
    assert_eq!(alarms.len(), expected, "one alarm for every other robot");
    assert!(
        server.alarm_post_counts().values().all(|n| *n == 1),
        "posted twice"
    );
}
