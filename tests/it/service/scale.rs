//! Many windows ending in the same second (issue 10): hundreds of robots with the same rule
//! whose first windows all end at 09:00 on the simulated clock, Megazord answering every call
//! after a small delay. Every alarm is posted exactly once, and the 99th percentile of (post
//! time − deadline − grace), in wall time, stays within a bound a loaded machine keeps.
//!
//! `SCALE_TEST_ROBOTS` runs it with another number of robots (300 by default), and
//! `SCALE_TEST_SPEED` at another clock speed (600 by default), to measure;
//! the figures are printed on stderr.
//!
//! Needs `scripts/services.sh` (MariaDB on `AZI3_TEST_MYSQL_URL`).

use std::time::{Duration, Instant};

use crate::support::live::{ThrowAwayDatabase, tail};
use crate::support::megazord::{
    CreatedAtResolution, MegazordOptions, MegazordRoute, MegazordServer, following_clock,
};
use crate::support::service::{Service, ServiceOptions};
use crate::support::tcp_proxy::TcpProxy;
use azi3_status_jobs::numeric::count_f64;
use jiff::{SignedDuration, Timestamp};

/// Robots monitored by default.
const ROBOTS: usize = 300;
/// Service seconds per wall second: the hour from S to the first deadline lasts six seconds.
const SPEED: f64 = 600.0;
const GRACE_SECONDS: i64 = 30;
/// What Megazord takes to answer each call.
const MEGAZORD_DELAY: Duration = Duration::from_millis(5);
/// The bound on the 99th percentile of wall time from deadline + grace to the post.
const P99_BOUND: Duration = Duration::from_secs(2);
/// How long, after deadline + grace, every alarm may take to arrive before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn speed() -> f64 {
    std::env::var("SCALE_TEST_SPEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SPEED)
}

fn robots() -> usize {
    std::env::var("SCALE_TEST_ROBOTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ROBOTS)
}

/// The same rule for every robot: 08:00–20:00 UTC, gap 60 min, so every first window ends at
/// 09:00; the service starts a minute before S, so that every session starts at S and watches
/// from then.
fn config(database: &str, megazord_url: &str, robots: usize) -> String {
    let mut config = format!(
        "{database}[service]\ngrace_seconds = {GRACE_SECONDS}\ninstance_id = \"scale\"\n\n\
         [megazord]\nbase_url = \"{megazord_url}\"\nrequest_timeout_ms = 10000\nmax_attempts = 3\n\
         initial_backoff_ms = 20\nmax_backoff_ms = 200\n\n"
    );
    for robot_id in 1..=robots {
        config.push_str(&format!(
            "[[rules]]\nrobot_id = {robot_id}\ntimezone = \"UTC\"\nstart = \"08:00\"\n\
             end = \"20:00\"\ngap = \"60m\"\n"
        ));
    }
    config
}

/// The `q`-quantile of sorted `values`.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "with q in [0, 1] the rank is between 0 and the length; `as` saturates"
)]
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (count_f64(sorted.len()) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn every_alarm_posted_once_and_on_time(backend: &str, database: &str) {
    // The machine to this run: two services closing hundreds of windows at once on two cores
    // would measure each other, and so would this run and the other tests of the binary.
    let _alone = crate::support::exclusive::alone();
    let robots = robots();
    let clock_start = ts("2025-06-01T07:59:00Z");
    let deadline = ts("2025-06-01T09:00:00Z");
    let close_at = deadline + SignedDuration::from_secs(GRACE_SECONDS);

    let (stand_in_clock, clock) = following_clock(clock_start);
    let server = MegazordServer::start(MegazordOptions {
        created_at_resolution: CreatedAtResolution::Millisecond,
        ..MegazordOptions::default().with_clock(stand_in_clock)
    })
    .await;
    let proxy = TcpProxy::for_url(&server.base_url()).await;
    proxy.set_delay(MEGAZORD_DELAY);

    let dir = tempfile::tempdir().unwrap();
    let wall = Instant::now();
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: config(database, &proxy.url(), robots),
            args: vec![
                "--clock-start".into(),
                clock_start.to_string(),
                "--clock-speed".into(),
                speed().to_string(),
            ],
            ..ServiceOptions::default()
        },
    );
    let sim = service.simulated_clock().await;
    clock.set(sim).unwrap();

    // Every session is started and subscribed (measured; the alarms' lateness shows whether
    // it was in time).
    let started = server
        .wait_for(PATIENCE, |server| server.subscriptions().len() >= robots)
        .await;
    let prepared_wall = wall.elapsed();
    if let Ok(path) = std::env::var("SCALE_TEST_LOG") {
        std::fs::write(path, service.logs().join("\n")).unwrap();
    }
    assert!(
        started,
        "only {} of {robots} sessions subscribed\n{}",
        server.subscriptions().len(),
        tail(&service)
    );

    let wait = sim.real_time_of(close_at).duration_since(Timestamp::now());
    let all_posted = server
        .wait_for(wait.unsigned_abs() + PATIENCE, |server| {
            server.alarm_post_counts().len() >= robots
        })
        .await;
    let counts = server.alarm_post_counts();
    assert!(
        all_posted,
        "{} of {robots} alarms posted\n{}",
        counts.len(),
        tail(&service)
    );
    // Anything posted twice shows up within moments of the first post.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = server.alarm_post_counts();
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        duplicates.is_empty(),
        "posted more than once: {duplicates:?}"
    );
    assert_eq!(counts.len(), robots, "one alarm per robot");

    let mut late: Vec<f64> = server
        .incoming_events()
        .iter()
        .filter(|e| e.event_name == "NO_TOILET_ACTIVITY_ALARM")
        .map(|e| e.created_at.duration_since(close_at).as_secs_f64() / speed())
        .collect();
    late.sort_by(f64::total_cmp);
    if let Ok(path) = std::env::var("SCALE_TEST_LOG") {
        std::fs::write(path, service.logs().join("\n")).unwrap();
    }
    let (p50, p99, max) = (
        quantile(&late, 0.5),
        quantile(&late, 0.99),
        late[late.len() - 1],
    );
    // Where the time went: the history reads that closed the windows, and the posts.
    let span = |route| {
        let at: Vec<f64> = server
            .requests_to(route)
            .iter()
            .map(|r| r.received_at.duration_since(close_at).as_secs_f64() / speed())
            .filter(|s| *s >= 0.0)
            .collect();
        let first = at.iter().copied().fold(f64::INFINITY, f64::min);
        let last = at.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{} from {first:.2} s to {last:.2} s", at.len())
    };
    eprintln!(
        "{backend}: after deadline + grace, history reads {}, alarm posts {}",
        span(MegazordRoute::GetIncomings),
        span(MegazordRoute::PostIncoming)
    );
    eprintln!(
        "{backend}: {robots} windows ending together; sessions prepared {:.1} s after start; \
         deadline + grace → alarm posted (wall) p50 {p50:.2} s, p99 {p99:.2} s, max {max:.2} s",
        prepared_wall.as_secs_f64()
    );
    assert!(
        p99 <= P99_BOUND.as_secs_f64(),
        "p99 {p99:.2} s (wall) after deadline + grace exceeds {P99_BOUND:?}\n{}",
        tail(&service)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_ending_together_on_the_embedded_default_are_alarmed_once_and_on_time() {
    every_alarm_posted_once_and_on_time("sqlite", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_ending_together_on_mariadb_are_alarmed_once_and_on_time() {
    let database = ThrowAwayDatabase::create("scale").await;
    every_alarm_posted_once_and_on_time(
        "mariadb",
        &format!(
            "[database]\nurl = \"{}\"\nbootstrap_shared_schema = true\n\n",
            database.url
        ),
    )
    .await;
    drop(database);
}
