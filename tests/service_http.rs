//! The service as an operator runs it, on its embedded default (a SQLite file, the HTTP
//! ingest, no Megazord, no queue): the real binary on a random port.

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use support::service::{Service, ServiceOptions, run_binary};

const EVENTS: &str = "/internal/v1/status-jobs/robots/7/events";

fn rule_config(extra: &str) -> String {
    format!(
        "[[rules]]\nrobot_id = 7\ntimezone = \"Europe/Amsterdam\"\nstart = \"00:00\"\nend = \"00:00\"\ngap = \"2h\"\n{extra}"
    )
}

#[tokio::test]
async fn ingest_records_events_once_and_shows_the_session() {
    let dir = tempfile::tempdir().unwrap();
    // Service time starts a minute into the session, so the event lands in its first window.
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: rule_config(""),
            args: [
                "--clock-start",
                "2025-05-31T22:01:00Z",
                "--clock-speed",
                "1",
            ]
            .map(String::from)
            .to_vec(),
            ..ServiceOptions::default()
        },
    );
    let body = json!({"id": "sensor-1", "eventName": "TOILET_ACTIVITY"}).to_string();
    let (status, answer) = service.post(EVENTS, &body).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (202, &json!(false)),
        "{answer}"
    );
    let (status, answer) = service.post(EVENTS, &body).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (202, &json!(true)),
        "{answer}"
    );
    let (status, other) = service
        .post(
            EVENTS,
            &json!({"eventName": "BATHROOM_ACTIVITY"}).to_string(),
        )
        .await;
    assert_eq!((status, &other["outcome"]), (202, &json!("other_event")));

    let (status, report) = service
        .get("/v1/robots/7/sessions?from=2025-06-01&to=2025-06-01")
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["rule"]["timezone"], "Europe/Amsterdam");
    let session = &report["sessions"][0];
    assert_eq!(session["result"], "PENDING");
    assert_eq!(session["status"], "FUTURE");
    assert_eq!(session["events"], 1);
    let observed: Vec<_> = session["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "EVENT_OBSERVED")
        .collect();
    assert_eq!(observed.len(), 1, "{session}");
    assert!(dir.path().join("azi3-status-jobs.db").exists());
}

#[tokio::test]
async fn bad_bodies_get_400_naming_the_field_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: rule_config(""),
            ..ServiceOptions::default()
        },
    );
    let cases = [
        (EVENTS, "not json", "body"),
        (EVENTS, r#"{"id": "x"}"#, "eventName"),
        (EVENTS, r#"{"eventName": 5}"#, "eventName"),
        (
            EVENTS,
            r#"{"eventName": "TOILET_ACTIVITY", "occurredAt": "yesterday"}"#,
            "occurredAt",
        ),
        (
            "/internal/v1/status-jobs/robots/seven/events",
            r#"{"eventName": "TOILET_ACTIVITY"}"#,
            "robotId",
        ),
        ("/internal/v1/status-jobs/messages", "{oops", "body"),
        (
            "/internal/v1/status-jobs/messages",
            r#"{"payload":{"subscriptionId":77,"sourceEvent":{"id":1,"createdAt":"2025-01-01T00:00:00Z"}}}"#,
            "payload.subscriptionId",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = service.post(path, body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{path} {body}: {answer}");
        assert!(answer["error"]["reason"].is_string());
    }
    let (status, _) = service.get("/v1/robots/7/sessions?from=2025-13-01").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: rule_config(""),
            ..ServiceOptions::default()
        },
    );
    let (status, health) = service.get("/health").await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")));
    let (status, ready) = service.get("/ready").await;
    assert_eq!(
        (status, &ready["checks"]["database"]["ok"]),
        (200, &json!(true))
    );
    service
        .post(EVENTS, &json!({"eventName": "TOILET_ACTIVITY"}).to_string())
        .await;
    let text = reqwest::get(format!("{}/metrics", service.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("events_total"), "{text}");
}

#[tokio::test]
async fn a_token_guards_v1_and_internal_but_not_health() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: rule_config("[http]\ntoken = \"s3cret-0123456789\"\n"),
            ..ServiceOptions::default()
        },
    );
    let (status, _) = service.get("/v1/robots/7/sessions").await;
    assert_eq!(status, 401);
    let (status, _) = service
        .post(EVENTS, r#"{"eventName":"TOILET_ACTIVITY"}"#)
        .await;
    assert_eq!(status, 401);
    let (status, _) = service.get("/health").await;
    assert_eq!(status, 200);
    let answer = reqwest::Client::new()
        .get(format!("{}/v1/robots/7/sessions", service.base_url))
        .bearer_auth("s3cret-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}

#[test]
fn a_bad_configuration_stops_the_start_naming_the_key_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "[service]\ngrace_seconds = \"soon\"\n",
            &[],
            "service.grace_seconds",
        ),
        (
            "",
            &[("AZI3_HTTP__HOST", "0.0.0.0")],
            "http.host = \"0.0.0.0\"",
        ),
        (
            &rule_config("").replace("2h", "20s"),
            &[],
            "rules[0].gap = \"20s\"",
        ),
        (
            "",
            &[("MEGAZORD_EVENTS_ADDRESS", "not a url")],
            "megazord.base_url",
        ),
    ];
    for (config, env, expected) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, config).unwrap();
        let out = run_binary(
            dir.path(),
            &["serve", "--config", path.to_str().unwrap()],
            env,
        );
        assert_eq!(out.status.code(), Some(2), "{config} {env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{expected} not in: {stderr}");
    }
}

#[tokio::test]
async fn a_simulated_day_alarms_on_time_and_a_restart_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    // 08:00–09:00 UTC with a 20-minute gap: three full windows without an event.
    let config = "[[rules]]\nrobot_id = 7\ntimezone = \"UTC\"\nstart = \"08:00\"\nend = \"09:00\"\ngap = \"20m\"\n\
                  [service]\ngrace_seconds = 1\n";
    let args: Vec<String> = [
        "--clock-start",
        "2025-06-01T07:59:00Z",
        "--clock-speed",
        "600",
    ]
    .map(String::from)
    .to_vec();
    let mut service = Service::start(
        dir.path(),
        ServiceOptions {
            config: config.to_string(),
            env: BTreeMap::new(),
            args: args.clone(),
        },
    );
    // An event at about 08:05 service time keeps the first window from alarming.
    wait_until_service_time(&service, "2025-06-01T08:05:00Z").await;
    let (status, _) = service
        .post(
            "/internal/v1/status-jobs/robots/7/events",
            r#"{"id":"e1","eventName":"TOILET_ACTIVITY"}"#,
        )
        .await;
    assert_eq!(status, 202);
    // A restart half-way continues the same simulated day (the anchor is in the database).
    wait_until_service_time(&service, "2025-06-01T08:30:00Z").await;
    service.restart(&args);
    let (_, health) = service.get("/health").await;
    let now: jiff::Timestamp = health["now"].as_str().unwrap().parse().unwrap();
    assert!(
        now >= "2025-06-01T08:30:00Z".parse().unwrap(),
        "clock went back to {now}"
    );
    let report = wait_for_result(&service, "2025-06-01").await;
    let session = &report["sessions"][0];
    assert_eq!(session["result"], "ALARM_RAISED", "{session}");
    // Windows: 08:00–08:20 met at ~08:05; 08:05–08:25 alarm; 08:25–08:45 alarm; 08:45–09:00 short.
    let alarms = session["alarms"].as_array().unwrap();
    assert_eq!(alarms.len(), 2, "{session}");
    let sent = session["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "ALARM_SENT")
        .count();
    assert_eq!(sent, 2, "{session}");
}

async fn wait_until_service_time(service: &Service, at: &str) {
    let at: jiff::Timestamp = at.parse().unwrap();
    for _ in 0..600 {
        let (_, health) = service.get("/health").await;
        let now: jiff::Timestamp = health["now"].as_str().unwrap().parse().unwrap();
        if now >= at {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("service time never reached {at}");
}

async fn wait_for_result(service: &Service, date: &str) -> serde_json::Value {
    for _ in 0..1500 {
        let (_, report) = service
            .get(&format!("/v1/robots/7/sessions?from={date}&to={date}"))
            .await;
        let session = &report["sessions"][0];
        let sent = session["records"]
            .as_array()
            .map(|r| r.iter().filter(|r| r["result"] == "ALARM_SENT").count())
            .unwrap_or(0);
        if session["status"] == "COMPLETED"
            && sent == session["alarms"].as_array().map_or(0, Vec::len)
        {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "the session did not complete:\n{}",
        service.logs().join("\n")
    );
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(
        dir.path(),
        ServiceOptions {
            config: rule_config(""),
            ..ServiceOptions::default()
        },
    );
    let (status, _) = service
        .post(
            EVENTS,
            &json!({"id": "e-1", "eventName": "TOILET_ACTIVITY"}).to_string(),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        service.terminate(),
        Some(0),
        "{}",
        service.logs().join("\n")
    );
    let logs = service.logs().join("\n");
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(logs.contains("\"stopped\""), "{logs}");
}
