//! Going quiet shows: with the store unable to run a transaction, `/ready` turns 503 and
//! `overdue_windows` counts the window nobody can close, within seconds; both recover when
//! the store does.

use std::time::{Duration, Instant};

use crate::support::service::{Service, ServiceOptions};
use serde_json::json;
use sqlx::Connection;

/// How soon a store that cannot transact must show.
const WITHIN: Duration = Duration::from_secs(10);

async fn metric(service: &Service, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", service.base_url))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_store_that_cannot_transact_shows_in_ready_and_overdue_windows_within_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // One-minute windows, a minute of service time per wall second: a window comes due every
    // second or so and is closed (as missed) at once.
    let config = "[[rules]]\nrobot_id = 7\ntimezone = \"UTC\"\nstart = \"00:00\"\nend = \"00:00\"\ngap = \"1m\"\n\
                  [service]\ngrace_seconds = 1\nready_overdue_bound_seconds = 3\n";
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: config.to_string(),
            args: [
                "--clock-start",
                "2025-06-01T10:00:30Z",
                "--clock-speed",
                "60",
            ]
            .map(String::from)
            .to_vec(),
            ..ServiceOptions::default()
        },
    );
    // Healthy first: windows close, nothing is overdue, ready.
    let healthy = Instant::now();
    loop {
        let (status, ready) = service.get("/ready").await;
        let closed = metric(&service, "windows_closed_total{alarm=\"true\"}").await;
        if status == 200 && closed.is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(
            healthy.elapsed() < Duration::from_secs(30),
            "never healthy: {ready}\n{}",
            service.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another process takes the database's write lock and keeps it.
    let url = format!(
        "sqlite://{}",
        dir.path().join("azi3-status-jobs.db").display()
    );
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let locked = Instant::now();
    let mut ready_503 = None;
    let mut overdue = None;
    while (ready_503.is_none() || overdue.is_none()) && locked.elapsed() < WITHIN {
        // A locked store holds `/ready` for its 5 s timeout: once it said 503, only the metric
        // is watched.
        if ready_503.is_none() {
            let (status, ready) = service.get("/ready").await;
            if status == 503 {
                ready_503 = Some((locked.elapsed(), ready));
            }
        }
        // Overdue as the watchdog sees it with the store unable to answer (at this clock speed a
        // window is briefly overdue now and then in normal running too).
        if overdue.is_none()
            && metric(&service, "store_up").await == Some(0.0)
            && metric(&service, "overdue_windows")
                .await
                .is_some_and(|n| n >= 1.0)
        {
            overdue = Some(locked.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (after, ready) = ready_503.unwrap_or_else(|| panic!("/ready stayed 200 for {WITHIN:?}"));
    let overdue = overdue
        .unwrap_or_else(|| panic!("store_up 0 with overdue_windows ≥ 1 not seen in {WITHIN:?}"));
    eprintln!(
        "store locked: /ready 503 after {:.1} s, store_up 0 and overdue_windows ≥ 1 after {:.1} s",
        after.as_secs_f64(),
        overdue.as_secs_f64()
    );
    assert_eq!(ready["checks"]["database"]["ok"], json!(false), "{ready}");
    let reason = ready["checks"]["database"]["error"].as_str().unwrap();
    assert!(reason.starts_with("cannot run a transaction"), "{reason}");
    assert!(after <= WITHIN);
    let (status, health) = service.get("/health").await;
    assert_eq!(status, 200, "liveness stays up: {health}");
    assert_eq!(health["status"], "ok");

    // The lock goes: the store transacts again, the overdue windows are closed, ready again.
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    drop(holder);
    let released = Instant::now();
    loop {
        let (status, ready) = service.get("/ready").await;
        let overdue = metric(&service, "overdue_windows").await;
        if status == 200 && overdue == Some(0.0) {
            break;
        }
        assert!(
            released.elapsed() < Duration::from_secs(60),
            "never recovered: {ready} overdue {overdue:?}\n{}",
            service.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing was left half-open: an event is taken in at once.
    let (status, answer) = service
        .post(
            "/internal/v1/status-jobs/robots/7/events",
            r#"{"id":"after-the-lock","eventName":"TOILET_ACTIVITY"}"#,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["duplicate"], json!(false), "{answer}");
}
