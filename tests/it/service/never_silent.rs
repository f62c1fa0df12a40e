//! The service never goes quiet: not when clients drop their connections by the thousand in
//! the middle of an ingest (on the embedded default and on MariaDB), and not when Megazord
//! refuses every call about one robot (the other robots' alarms still go out on time).
//!
//! Needs `scripts/services.sh` (MariaDB on `AZI3_TEST_MYSQL_URL`, moto on
//! `AZI3_TEST_SQS_ENDPOINT`).

use azi3_status_jobs::domain::RobotId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::live::{
    ACTIVITY, DayPlan, InstanceOptions, Rig, RuleSpec, ThrowAwayDatabase, plan_events, tail,
};
use crate::support::service::{Service, ServiceOptions};
use azi3_status_jobs::domain::{RuleInput, Session, evaluate};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Connections opened at once by the flood.
const FLOOD_CONNECTIONS: usize = 8;
/// Posts per connection-opening task.
const FLOOD_POSTS: usize = 300;
/// How long the service may take to answer normally once the flood is over, and to finish
/// the day's work once its last window is due.
const PATIENCE: Duration = Duration::from_secs(30);

/// Robot 7 is checked against the reference algorithm; robot 8 takes the flood.
const CHECKED_ROBOT: RobotId = RobotId::new(7);
const FLOODED_ROBOT: RobotId = RobotId::new(8);
const FLOOD_DAY: &str = "2025-06-01";
/// Service seconds per real second for the flood runs: the checked session (3 h) lasts 18 s.
const FLOOD_SPEED: f64 = 600.0;
/// Five simulated minutes: half a second of wall time at [`FLOOD_SPEED`], so that an event
/// posted the moment it happens is never late for its window however loaded the machine is.
const FLOOD_GRACE_SECONDS: u32 = 300;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn checked_rule() -> azi3_status_jobs::domain::Rule {
    RuleInput {
        robot_id: CHECKED_ROBOT,
        timezone: "UTC".into(),
        start: "08:00".into(),
        end: "11:00".into(),
        gap: "60m".into(),
        ..RuleInput::default()
    }
    .validate()
    .unwrap()
}

/// Robot 7 on 08:00–11:00 UTC with a 60-minute gap; robot 8 watched all day with a gap no
/// test run reaches, so that every flood event is applied to its session.
fn flood_config(database: &str) -> String {
    format!(
        "{database}\
         [service]\ngrace_seconds = {FLOOD_GRACE_SECONDS}\n\n\
         [[rules]]\nrobot_id = {CHECKED_ROBOT}\ntimezone = \"UTC\"\nstart = \"08:00\"\nend = \"11:00\"\ngap = \"60m\"\n\n\
         [[rules]]\nrobot_id = {FLOODED_ROBOT}\ntimezone = \"UTC\"\nstart = \"00:00\"\nend = \"00:00\"\ngap = \"12h\"\n"
    )
}

fn flood_args() -> Vec<String> {
    [
        "--clock-start",
        "2025-06-01T07:58:00Z",
        "--clock-speed",
        &FLOOD_SPEED.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn events_path(robot_id: RobotId) -> String {
    format!("/internal/v1/status-jobs/robots/{robot_id}/events")
}

/// `FLOOD_CONNECTIONS` tasks each post `FLOOD_POSTS` complete events (distinct ids) to the
/// flooded robot, each on a connection of its own that is reset (`SO_LINGER 0`) right after
/// the request is written, without reading the answer: most requests are dropped while the
/// service works on them. Returns how many were written.
async fn flood(base_url: &str) -> usize {
    let address = base_url
        .strip_prefix("http://")
        .expect("an http:// URL")
        .to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..FLOOD_CONNECTIONS {
        let address = address.clone();
        tasks.spawn(async move {
            let mut written = 0;
            for n in 0..FLOOD_POSTS {
                let body =
                    json!({"id": format!("flood-{task}-{n}"), "eventName": ACTIVITY}).to_string();
                let request = format!(
                    "POST {} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\n\r\n{body}",
                    events_path(FLOODED_ROBOT),
                    body.len()
                );
                let Ok(mut stream) = TcpStream::connect(&address).await else {
                    continue;
                };
                stream.set_zero_linger().expect("SO_LINGER 0");
                if stream.write_all(request.as_bytes()).await.is_ok() {
                    written += 1;
                }
                // Reset at different moments of the service's work on the request.
                match n % 3 {
                    0 => {}
                    1 => tokio::task::yield_now().await,
                    _ => tokio::time::sleep(Duration::from_micros(500)).await,
                }
                drop(stream);
            }
            written
        });
    }
    tasks.join_all().await.into_iter().sum()
}

/// Service time now, from `/health`.
async fn service_now(service: &Service) -> Timestamp {
    let (status, health) = service.get("/health").await;
    assert_eq!(status, 200, "{health}");
    health["now"].as_str().unwrap().parse().unwrap()
}

/// Posts events with fresh ids until one answers 202 `applied`, for at most [`PATIENCE`];
/// panics with every answer otherwise.
async fn post_until_applied(service: &Service, robot_id: RobotId, occurred_at: Option<Timestamp>) {
    let deadline = Instant::now() + PATIENCE;
    let mut answers = BTreeMap::new();
    for attempt in 0.. {
        let mut body =
            json!({"id": format!("after-flood-{robot_id}-{attempt}"), "eventName": ACTIVITY});
        if let Some(at) = occurred_at {
            body["occurredAt"] = json!(at.to_string());
        }
        let (status, answer) = service
            .post(&events_path(robot_id), &body.to_string())
            .await;
        if status == 202 && answer["outcome"] == "applied" {
            return;
        }
        *answers.entry(format!("{status} {answer}")).or_insert(0) += 1;
        assert!(
            Instant::now() < deadline,
            "no event of robot {robot_id} was applied within {PATIENCE:?} after the flood; \
             answers (with counts): {answers:#?}\n{}",
            tail(service)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `GET path` until it answers 200, for at most [`PATIENCE`]; returns the body.
async fn get_until_ok(service: &Service, path: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = service.get(path).await;
        if status == 200 {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {status} after the flood: {body}\n{}",
            tail(service)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The flood, then: a new event is applied, `/ready` is 200, the sessions view answers, and
/// robot 7's session ends with exactly the reference algorithm's alarms.
async fn flood_leaves_the_service_serving(service: &Service) {
    let wall = Instant::now();
    let written = flood(&service.base_url).await;
    assert!(
        written >= FLOOD_CONNECTIONS * FLOOD_POSTS * 9 / 10,
        "only {written} flood requests were written"
    );
    let flood_wall = wall.elapsed();

    post_until_applied(service, FLOODED_ROBOT, None).await;
    let ready = get_until_ok(service, "/ready").await;
    assert_eq!(ready["checks"]["database"]["ok"], json!(true), "{ready}");
    let report = get_until_ok(
        service,
        &format!("/v1/robots/{FLOODED_ROBOT}/sessions?from={FLOOD_DAY}&to={FLOOD_DAY}"),
    )
    .await;
    let flooded = &report["sessions"][0];
    assert!(
        flooded["events"].as_u64().unwrap_or(0) >= 1,
        "the flooded robot's session shows no event: {flooded}"
    );

    // One event of the checked robot at a known instant, if its session still runs.
    let rule = checked_rule();
    let session = Session::on(&rule, FLOOD_DAY.parse::<Date>().unwrap()).unwrap();
    let now = service_now(service).await;
    let mut events = Vec::new();
    if now >= session.start && now < session.end - SignedDuration::from_mins(10) {
        let at = now.round(jiff::Unit::Second).unwrap();
        post_until_applied(service, CHECKED_ROBOT, Some(at)).await;
        events.push(at);
    }

    let expected = evaluate(&rule, session, &events);
    let grace = SignedDuration::from_secs(i64::from(FLOOD_GRACE_SECONDS));
    let done = session.end + grace;
    let left = done
        .duration_since(service_now(service).await)
        .as_secs_f64()
        .max(0.0);
    let deadline = Instant::now() + Duration::from_secs_f64(left / FLOOD_SPEED) + PATIENCE;
    let path = format!("/v1/robots/{CHECKED_ROBOT}/sessions?from={FLOOD_DAY}&to={FLOOD_DAY}");
    let session_report = loop {
        let (status, report) = service.get(&path).await;
        let checked = report["sessions"][0].clone();
        let sent = records(&checked, "ALARM_SENT");
        if status == 200
            && checked["status"] == "COMPLETED"
            && sent == checked["alarms"].as_array().map_or(0, Vec::len)
        {
            break checked;
        }
        assert!(
            Instant::now() < deadline,
            "robot {CHECKED_ROBOT}'s session never completed after the flood ({status}): {report}\n{}",
            tail(service)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let alarms: Vec<&str> = session_report["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["referenceId"].as_str().unwrap())
        .collect();
    let oracle: Vec<String> = expected.alarms.iter().map(|a| a.reference_id()).collect();
    assert_eq!(alarms, oracle, "{session_report}");
    assert_eq!(
        session_report["result"],
        expected.result.as_str(),
        "{session_report}"
    );
    assert_eq!(
        records(&session_report, "EVENT_OBSERVED"),
        events.len(),
        "{session_report}"
    );
    eprintln!(
        "flood: {written} requests reset in {:.1} s, then {} alarms as the reference; wall {:.1} s",
        flood_wall.as_secs_f64(),
        oracle.len(),
        wall.elapsed().as_secs_f64()
    );
}

fn records(session: &Value, result: &str) -> usize {
    session["records"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["result"] == result).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_flood_leaves_the_embedded_default_serving() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: flood_config(""),
            args: flood_args(),
            ..ServiceOptions::default()
        },
    );
    flood_leaves_the_service_serving(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_flood_leaves_mariadb_serving() {
    let database = ThrowAwayDatabase::create("flood").await;
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: flood_config(&format!(
                "[database]\nurl = \"{}\"\nbootstrap_shared_schema = true\n\n",
                database.url
            )),
            args: flood_args(),
            ..ServiceOptions::default()
        },
    );
    flood_leaves_the_service_serving(&service).await;
    drop(service);
    drop(database);
}

// ---- one robot refused by Megazord ----------------------------------------------------------

/// The robots Megazord serves, and the one it refuses.
const GOOD_ROBOTS: [RobotId; 2] = [RobotId::new(101), RobotId::new(102)];
const REFUSED_ROBOT: RobotId = RobotId::new(103);
/// Service seconds per real second.
const REFUSAL_SPEED: f64 = 600.0;
const REFUSAL_GRACE_SECONDS: u32 = 30;
/// The usual latency: every alarm of a served robot reaches Megazord within this much wall
/// time after its deadline plus the grace.
const ALARM_LATENCY: Duration = Duration::from_secs(2);
/// How long (service time after the session's start) the service may try the refused robot
/// before its session must be ended as `FAILED`: its first window's deadline (1 h) and grace,
/// the failing-session limit (`failing_session_limit_seconds`, 10 min by default), and until
/// Megazord has since been seen serving another robot (a status message or a call: at most one
/// gap), with room for the wall-clock retry pace at 600×.
const REFUSED_ROBOT_FAILED_WITHIN: SignedDuration = SignedDuration::from_mins(150);
/// Settings for the refused robot's retries and give-up, appended to the config file.
const REFUSED_ROBOT_SETTINGS: &str = "";

/// Polls the refused robot's session (`sessions_url`) until it is `FAILED` or service time
/// passes `give_up`; returns when it was first seen `FAILED`, and the session.
async fn watch_until_failed(
    rig: Arc<Rig>,
    sessions_url: String,
    give_up: Timestamp,
) -> (Option<Timestamp>, Value) {
    let client = reqwest::Client::new();
    loop {
        let now = rig.now();
        let report: Value = match client.get(&sessions_url).send().await {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let session = report["sessions"][0].clone();
        if session["result"] == "FAILED" {
            return (Some(now), session);
        }
        if now > give_up {
            return (None, report);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a JSON log line is an `error` naming `robot_id` (in a field or in its message).
fn error_about_robot(line: &str, robot_id: RobotId) -> bool {
    let Ok(entry) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    if !entry["level"]
        .as_str()
        .is_some_and(|l| l.eq_ignore_ascii_case("error"))
    {
        return false;
    }
    fn names(value: &Value, robot_id: RobotId) -> bool {
        match value {
            Value::Number(n) => n.as_u64() == Some(u64::from(robot_id)),
            Value::String(s) => s
                .split(|c: char| !c.is_ascii_digit())
                .any(|word| word == robot_id.to_string()),
            Value::Array(items) => items.iter().any(|v| names(v, robot_id)),
            Value::Object(fields) => fields
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "timestamp" | "threadId"))
                .any(|(_, v)| names(v, robot_id)),
            _ => false,
        }
    }
    names(&entry, robot_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_robot_refused_by_megazord_silences_no_other_robot() {
    let wall = Instant::now();
    let rule = |robot_id| RuleSpec {
        robot_id,
        timezone: "UTC",
        start: "08:00",
        end: "12:00",
        gap: "60m",
    };
    let run_end = ts("2025-06-01T12:00:00Z");
    let rig = Arc::new(
        Rig::new(
            "refused",
            DayPlan {
                clock_start: ts("2025-06-01T07:58:00Z"),
                speed: REFUSAL_SPEED,
                grace_seconds: REFUSAL_GRACE_SECONDS,
                rules: vec![
                    rule(GOOD_ROBOTS[0]),
                    rule(GOOD_ROBOTS[1]),
                    rule(REFUSED_ROBOT),
                ],
            },
        )
        .await,
    );
    // A robot Megazord does not know: 404 to everything about it, later 500.
    rig.server.refuse_robot(REFUSED_ROBOT, 404);
    let service = rig
        .start_service(InstanceOptions {
            instance_id: "a".into(),
            extra_config: REFUSED_ROBOT_SETTINGS.into(),
            ..InstanceOptions::default()
        })
        .await;
    // Sensor events of the served robots only, so that their deadlines differ from the
    // refused robot's.
    let events: Vec<(Timestamp, RobotId)> = plan_events(&rig, run_end, 0x5eed_0103)
        .into_iter()
        .filter(|(_, robot)| GOOD_ROBOTS.contains(robot))
        .collect();
    let driver = tokio::spawn({
        let rig = Arc::clone(&rig);
        async move {
            let mut refusal = Some(ts("2025-06-01T08:30:00Z"));
            for &(at, robot) in &events {
                if let Some(switch) = refusal.filter(|switch| at >= *switch) {
                    rig.sleep_until(switch).await;
                    rig.server.refuse_robot(REFUSED_ROBOT, 500);
                    refusal = None;
                }
                rig.sleep_until(at).await;
                rig.server.post_sensor_event(robot, ACTIVITY);
            }
        }
    });

    // The refused robot's session is watched for its end meanwhile.
    let session = Session::on(&rule(REFUSED_ROBOT).rule(), "2025-06-01".parse().unwrap()).unwrap();
    let give_up = session.start + REFUSED_ROBOT_FAILED_WITHIN;
    let watcher = tokio::spawn(watch_until_failed(
        Arc::clone(&rig),
        format!(
            "{}/v1/robots/{REFUSED_ROBOT}/sessions?from={}&to={}",
            service.base_url, session.date, session.date
        ),
        give_up,
    ));
    driver.await.unwrap();

    // The served robots: exactly the reference algorithm's alarms, each posted once …
    let expected = rig
        .settle_and_check_robots(&service, run_end, PATIENCE, &GOOD_ROBOTS)
        .await;
    let alarms: usize = expected.iter().map(|e| e.alarms.len()).sum();
    assert!(alarms >= 2, "the day should alarm: {expected:#?}");
    // … each within the usual latency of its deadline plus the grace.
    let grace = SignedDuration::from_secs(i64::from(REFUSAL_GRACE_SECONDS));
    let latency = SignedDuration::from_secs_f64(ALARM_LATENCY.as_secs_f64() * REFUSAL_SPEED);
    let stored = rig.server.incoming_events();
    let mut late = BTreeMap::new();
    for e in &expected {
        for (reference, deadline) in e.alarms.iter().zip(&e.alarm_deadlines) {
            let posted = stored
                .iter()
                .find(|s| s.reference_id.as_deref() == Some(reference.as_str()))
                .expect("checked as posted above");
            let after = posted.created_at.duration_since(*deadline + grace);
            if after > latency {
                late.insert(
                    reference.clone(),
                    format!(
                        "{:.2} s wall after deadline + grace",
                        after.as_secs_f64() / REFUSAL_SPEED
                    ),
                );
            }
        }
    }
    assert!(
        late.is_empty(),
        "alarms later than {ALARM_LATENCY:?} after deadline + grace: {late:#?}"
    );

    // The refused robot: its session ended FAILED within the bound, and an error names it.
    let (failed_at, report) = watcher.await.unwrap();
    let Some(failed_at) = failed_at else {
        panic!(
            "robot {REFUSED_ROBOT}'s session is not FAILED {REFUSED_ROBOT_FAILED_WITHIN:#} \
             (service time) after its start: {report}\n{}",
            tail(&service)
        );
    };
    assert_eq!(report["status"], "COMPLETED", "{report}");
    assert!(
        service
            .logs()
            .iter()
            .any(|line| error_about_robot(line, REFUSED_ROBOT) && line.contains("FAILED")),
        "no error-level log line names robot {REFUSED_ROBOT} and its FAILED session:\n{}",
        tail(&service)
    );
    eprintln!(
        "refused robot: FAILED {:.0} min after its start; {alarms} alarms of the served robots \
         on time; wall {:.1} s",
        failed_at.duration_since(session.start).as_secs_f64() / 60.0,
        wall.elapsed().as_secs_f64()
    );
    rig.finish().await;
}

// ---- what Megazord must have, and the robot's own zone -------------------------------------

#[tokio::test]
async fn a_provider_missing_at_megazord_makes_the_service_not_ready_until_it_is_there() {
    use sqlx::{Connection, Executor};
    let rig = Rig::new(
        "catalogue",
        DayPlan {
            clock_start: ts("2025-06-01T07:00:00Z"),
            speed: 1.0,
            grace_seconds: 30,
            rules: vec![RuleSpec {
                robot_id: RobotId::new(7),
                timezone: "Europe/Amsterdam",
                start: "08:00",
                end: "20:00",
                gap: "2h",
            }],
        },
    )
    .await;
    // Megazord's tables and the robot settings in the shared schema: the provider is missing,
    // and robot 7 lives in London by its settings.
    let mut db = sqlx::MySqlConnection::connect(&rig.database_url)
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE event_provider (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(128) NOT NULL UNIQUE)",
        "CREATE TABLE event_schema (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(256) NULL UNIQUE, level TINYINT UNSIGNED NOT NULL, is_active TINYINT(1) NOT NULL DEFAULT 1)",
        "INSERT INTO event_schema (name, level) VALUES ('TOILET_ACTIVITY', 1), ('NO_TOILET_ACTIVITY_ALARM', 10)",
        "CREATE TABLE time_zone (id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL)",
        "CREATE TABLE robot_settings (robot_id INT UNSIGNED NOT NULL UNIQUE, time_zone_id SMALLINT UNSIGNED NOT NULL)",
        "INSERT INTO time_zone (id, name) VALUES (427, 'Europe/Amsterdam'), (12, 'Europe/London')",
        "INSERT INTO robot_settings (robot_id, time_zone_id) VALUES (7, 12)",
    ] {
        db.execute(sql).await.unwrap();
    }
    let service = rig
        .start_service(InstanceOptions {
            instance_id: "a".into(),
            ..InstanceOptions::default()
        })
        .await;
    let (status, ready) = service.get("/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        ready["checks"]["megazord"]["error"],
        json!("megazord has no event provider \"azi-3-status-jobs\""),
        "{ready}"
    );
    let zone_warning = service.logs().into_iter().find(|l| {
        l.contains("\"level\":\"WARN\"")
            && l.contains("Europe/London")
            && l.contains("Europe/Amsterdam")
    });
    assert!(
        zone_warning.is_some_and(|l| l.contains("\"robotId\":7")),
        "{}",
        tail(&service)
    );

    // The provider is created: the next /ready looks again and is satisfied.
    db.execute("INSERT INTO event_provider (name) VALUES ('azi-3-status-jobs')")
        .await
        .unwrap();
    let (status, ready) = service.get("/ready").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["megazord"]["ok"], json!(true), "{ready}");
}
