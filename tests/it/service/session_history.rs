//! The window that ends a session reads the whole session's history: an event Megazord stored
//! whose queue message never came, in a window a later event restarted before it closed, is
//! still recorded (as late), so the session's record equals replay over what Megazord stored.
//!
//! Needs nothing but the embedded database and the Megazord stand-in.

use std::time::Duration;

use crate::support::live::{ACTIVITY, tail};
use crate::support::megazord::{MegazordOptions, MegazordServer, following_clock};
use crate::support::service::{Service, ServiceOptions};
use azi3_status_jobs::clock::SimulatedClock;
use azi3_status_jobs::domain::RobotId;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// Service seconds per wall second: the session's hour lasts six seconds.
const SPEED: f64 = 600.0;
const PATIENCE: Duration = Duration::from_secs(60);

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

async fn until(sim: &SimulatedClock, t: Timestamp) {
    let wait = sim.real_time_of(t).duration_since(Timestamp::now());
    if wait.is_positive() {
        tokio::time::sleep(wait.unsigned_abs()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_never_delivered_before_a_later_one_is_recorded_at_the_session_end() {
    let clock_start = ts("2025-06-01T07:59:00Z");
    let robot = RobotId::new(7);
    let (stand_in_clock, clock) = following_clock(clock_start);
    let server = MegazordServer::start(MegazordOptions::default().with_clock(stand_in_clock)).await;
    let dir = tempfile::tempdir().unwrap();
    // One session, 08:00–09:00, gap 45 minutes: an event at 08:20 restarts the first window,
    // which then ends at E and is the session's last.
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: format!(
                "[service]\ngrace_seconds = 60\ninstance_id = \"history\"\n\n\
                 [megazord]\nbase_url = \"{}\"\nrequest_timeout_ms = 10000\n\n\
                 [[rules]]\nrobot_id = 7\ntimezone = \"UTC\"\nstart = \"08:00\"\n\
                 end = \"09:00\"\ngap = \"45m\"\n",
                server.base_url()
            ),
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
            .wait_for(PATIENCE, |s| !s.subscriptions().is_empty())
            .await,
        "session not started\n{}",
        tail(&service)
    );

    // Stored at Megazord at about 08:10; no queue carries it to the service.
    until(&sim, ts("2025-06-01T08:10:00Z")).await;
    let unseen = server.post_sensor_event(robot, ACTIVITY);
    // Posted to the service directly at 08:20: it restarts the window from 08:20.
    until(&sim, ts("2025-06-01T08:20:00Z")).await;
    let (status, answer) = service
        .post(
            "/internal/v1/status-jobs/robots/7/events",
            &json!({"id": "later", "eventName": ACTIVITY, "occurredAt": "2025-06-01T08:20:00Z"})
                .to_string(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");

    let mut session = Value::Null;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let (status, report) = service
            .get("/v1/robots/7/sessions?from=2025-06-01&to=2025-06-01")
            .await;
        assert_eq!(status, 200, "{report}");
        session = report["sessions"][0].clone();
        if session["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        session["status"],
        "COMPLETED",
        "{session}\n{}",
        tail(&service)
    );
    let unseen_record = session["records"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["incomingEventId"].as_u64() == Some(unseen.id))
        .cloned();
    assert_eq!(
        unseen_record.as_ref().map(|r| r["result"].clone()),
        Some(json!("EVENT_LATE")),
        "the event Megazord stored at {} is missing from the session\n{session}\n{}",
        unseen.created_at,
        tail(&service)
    );
    // Its window was restarted at 08:20 and ended at E without an alarm (the partial final
    // window is ignored), as replay over both events has it.
    assert!(server.alarm_post_counts().is_empty(), "{session}");
    assert!(
        unseen.created_at < ts("2025-06-01T08:20:00Z") + SignedDuration::from_secs(1),
        "the stand-in stored the event late: {}",
        unseen.created_at
    );
}
