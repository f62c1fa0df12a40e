//! The service as an operator runs it, on its embedded default (a SQLite file, the HTTP
//! ingest, no Megazord, no queue): in this process on port 0 ([`crate::support::app`]), and as the
//! real binary where a test reads its log, restarts it or signals it.

use std::collections::BTreeMap;

use crate::support::app::{AppOptions, TestApp, spawn_app};
use crate::support::service::{Service, ServiceOptions, run_binary};
use serde_json::json;

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
    let service = spawn_app(AppOptions {
        config: rule_config(""),
        ..AppOptions::default()
    })
    .await;
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
    let service = spawn_app(AppOptions {
        config: rule_config(""),
        ..AppOptions::default()
    })
    .await;
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
    // Stopped as `serve` stops on SIGTERM: in-flight work finished, the database closed.
    service.stop().await;
}

#[tokio::test]
async fn a_token_guards_v1_and_internal_but_not_health() {
    let service = spawn_app(AppOptions {
        config: rule_config("[http]\ntoken = \"s3cret-0123456789\"\n"),
        ..AppOptions::default()
    })
    .await;
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

/// A POST as `reqwest` sends it, with the headers given; answers status, headers and JSON.
async fn raw_post(
    service: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", service.base_url))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let json = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

async fn events_today(service: &TestApp) -> u64 {
    let (status, report) = service.get("/v1/robots/7/sessions").await;
    assert_eq!(status, 200, "{report}");
    report["totals"]["events"].as_u64().unwrap()
}

#[tokio::test]
async fn a_web_page_can_neither_post_an_event_nor_read_an_answer() {
    let service = spawn_app(AppOptions {
        config: rule_config(""),
        ..AppOptions::default()
    })
    .await;
    let event = r#"{"eventName":"TOILET_ACTIVITY"}"#;
    // What a page's `<form enctype="text/plain">` or `fetch` without preflight can send.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|v| ("content-type", v))
            .into_iter()
            .collect();
        let (status, _, answer) = raw_post(&service, EVENTS, &headers, event).await;
        assert_eq!(status, 415, "{content_type:?}: {answer}");
        assert_eq!(answer["error"]["field"], "Content-Type", "{answer}");
        assert_eq!(
            answer["error"]["value"],
            content_type.map_or(serde_json::Value::Null, |v| json!(v)),
            "{answer}"
        );
    }
    let (status, _, answer) = raw_post(
        &service,
        "/internal/v1/status-jobs/messages",
        &[("content-type", "text/plain")],
        "{}",
    )
    .await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(events_today(&service).await, 0, "nothing was taken in");

    // A page of another origin, even with the right content type (after a preflight).
    for origin in [
        "http://evil.example",
        "null",
        "https://127.0.0.1",
        "http://localhost:1",
    ] {
        let (status, _, answer) = raw_post(
            &service,
            EVENTS,
            &[("content-type", "application/json"), ("origin", origin)],
            event,
        )
        .await;
        assert_eq!(status, 403, "{origin}: {answer}");
        assert_eq!(answer["error"]["field"], "Origin", "{answer}");
        let read = reqwest::Client::new()
            .get(format!("{}/v1/robots/7/sessions", service.base_url))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status().as_u16(), 403, "{origin}");
    }
    assert_eq!(events_today(&service).await, 0, "nothing was taken in");

    // The service's own origin is no forgery; JSON with parameters is JSON.
    let (status, _, answer) = raw_post(
        &service,
        EVENTS,
        &[
            ("content-type", "Application/JSON; charset=utf-8"),
            ("origin", &service.base_url),
        ],
        event,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(events_today(&service).await, 1);

    // Over the limit: the JSON error, naming the body and the limit.
    let big = format!(r#"{{"eventName":"{}"}}"#, "x".repeat(1 << 20));
    let (status, _, answer) = raw_post(
        &service,
        EVENTS,
        &[("content-type", "application/json")],
        big,
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["field"], "body", "{answer}");
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("1048576 bytes"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case_and_a_401_names_it() {
    let token = "a-token-of-some-length-42";
    let service = spawn_app(AppOptions {
        config: rule_config(&format!("[http]\ntoken = \"{token}\"\n")),
        ..AppOptions::default()
    })
    .await;
    let url = format!("{}/v1/robots/7/sessions", service.base_url);
    for (authorization, expected) in [
        (None, 401),
        (Some(format!("Bearer {token}x")), 401),
        (Some(format!("Basic {token}")), 401),
        (Some(format!("Bearer {}", token.to_uppercase())), 401),
        (Some(format!("Bearer {token}")), 200),
        (Some(format!("bearer {token}")), 200),
        (Some(format!("BEARER {token}")), 200),
    ] {
        let mut request = reqwest::Client::new().get(&url);
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status().as_u16(), expected, "{authorization:?}");
        if expected == 401 {
            assert_eq!(
                answer.headers()["www-authenticate"],
                "Bearer",
                "{authorization:?}"
            );
        }
    }
}

#[tokio::test]
async fn event_ids_are_taken_byte_for_byte_and_bad_values_are_quoted_short() {
    let service = spawn_app(AppOptions {
        config: rule_config(""),
        ..AppOptions::default()
    })
    .await;
    let post_id = |id: serde_json::Value| {
        let body = json!({"id": id, "eventName": "TOILET_ACTIVITY"}).to_string();
        let service = &service;
        async move { service.post(EVENTS, &body).await }
    };
    for (id, duplicate) in [
        (json!("ok-1"), false),
        (json!(" ok-1"), false),
        (json!("ok-1 "), false),
        (json!("OK-1"), false),
        (json!("ok-1"), true),
        (json!(" ok-1"), true),
        (json!("é".repeat(128)), false),
    ] {
        let (status, answer) = post_id(id.clone()).await;
        assert_eq!(status, 202, "{id}: {answer}");
        assert_eq!(answer["duplicate"], json!(duplicate), "{id}: {answer}");
    }
    // 129 characters but 258 bytes: the limit is in bytes, and the message says so.
    let (status, answer) = post_id(json!("é".repeat(129))).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "id");
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("at most 256 bytes"),
        "{answer}"
    );
    let (status, answer) = post_id(json!("")).await;
    assert_eq!((status, &answer["error"]["field"]), (400, &json!("id")));

    let (status, answer) = service
        .post(
            "/internal/v1/status-jobs/robots/4294967296/events",
            r#"{"eventName":"TOILET_ACTIVITY"}"#,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "robotId");
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("0 to 4294967295"),
        "{answer}"
    );

    for (occurred_at, accepted) in [
        ("2025-06-01T10:00:00+23:59", true),
        ("2025-06-01T10:00:00-23:59", true),
        ("2025-06-01T10:00:00+24:00", false),
        ("2025-06-01T10:00:00-25:59", false),
        ("2025-06-01T10:00:00", false),
        ("9999-12-31T23:59:59Z", false),
        ("9999-12-30T21:00:00Z", false),
        ("-009999-01-01T00:00:00Z", false),
    ] {
        let body = json!({"eventName": "TOILET_ACTIVITY", "occurredAt": occurred_at}).to_string();
        let (status, answer) = service.post(EVENTS, &body).await;
        if accepted {
            assert_eq!(status, 202, "{occurred_at}: {answer}");
        } else {
            assert_eq!(status, 400, "{occurred_at}: {answer}");
            assert_eq!(answer["error"]["field"], "occurredAt", "{answer}");
            assert_eq!(answer["error"]["value"], occurred_at, "{answer}");
        }
    }

    // A long bad value is quoted to 200 characters, wherever it is refused.
    let long = "x".repeat(100_000);
    let cases = [
        (EVENTS, long.clone(), "body"),
        (
            EVENTS,
            json!({"eventName": "TOILET_ACTIVITY", "id": [long]}).to_string(),
            "id",
        ),
        (
            EVENTS,
            json!({"eventName": "TOILET_ACTIVITY", "occurredAt": long}).to_string(),
            "occurredAt",
        ),
        ("/internal/v1/status-jobs/messages", long.clone(), "body"),
        (
            "/internal/v1/status-jobs/messages",
            json!({"payload": {"subscriptionId": 1, "sourceEvent": {"id": 1, "createdAt": long}}})
                .to_string(),
            "payload.sourceEvent.createdAt",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = service.post(path, &body).await;
        assert_eq!(status, 400, "{path} {field}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
        let value = answer["error"]["value"].as_str().unwrap();
        assert!(
            value.chars().count() <= 201,
            "{field}: {} chars",
            value.len()
        );
        let text = answer.to_string();
        assert!(
            text.len() < 1200,
            "{field}: an answer of {} bytes",
            text.len()
        );
    }
}

#[tokio::test]
async fn a_dead_letter_keeps_64_kib_of_its_body_with_length_and_hash_and_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: rule_config(""),
            ..ServiceOptions::default()
        },
    );
    // Valid JSON with no usable event, 300 KB long.
    let body =
        json!({"payload": {"subscriptionId": 1, "padding": "y".repeat(300_000)}}).to_string();
    let (status, answer) = service
        .post("/internal/v1/status-jobs/messages", &body)
        .await;
    assert_eq!(status, 400, "{answer}");
    let store = azi3_status_jobs::store::Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("azi3-status-jobs.db").display()
    ))
    .await
    .unwrap();
    let letters = store.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.body.len(), 64 * 1024);
    assert!(body.starts_with(&letter.body));
    assert_eq!(letter.body_length, body.len() as u64);
    let expected_hash = {
        use sha2::Digest;
        sha2::Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(letter.body_sha256.as_deref(), Some(expected_hash.as_str()));
    let logged = service
        .logs()
        .iter()
        .filter(|line| line.contains("dead letter"))
        .count();
    assert_eq!(logged, 1, "{:#?}", service.logs());
}

#[tokio::test]
async fn rules_refuse_a_leap_second_store_zones_canonically_and_warn_of_a_rule_that_never_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let set = |extra: &[&str]| {
        let mut args = vec![
            "rules",
            "set",
            "--robot-id",
            "9",
            "--timezone",
            "europe/amsterdam",
            "--end",
            "10:00",
        ];
        args.extend(extra);
        run_binary(dir.path(), &args, &[])
    };
    let out = set(&["--start", "08:00:60"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"start = "08:00:60""#), "{stderr}");

    let out = set(&["--start", "08:00", "--gap", "3h"]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("warning: robot 9: the gap of 180 min is longer than the session of 120 min"),
        "{stderr}"
    );
    let out = run_binary(dir.path(), &["rules", "list"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("9\tEurope/Amsterdam\t08:00:00"), "{stdout}");

    // The same warning when the service loads such a rule from its configuration.
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: rule_config("").replace("\"00:00\"\ngap = \"2h\"", "\"01:00\"\ngap = \"2h\""),
            ..ServiceOptions::default()
        },
    );
    let warned = service.logs().iter().any(|line| {
        line.contains("robot 7: the gap of 120 min is longer than the session of 60 min")
            && line.contains("WARN")
    });
    assert!(warned, "{:#?}", service.logs());
}

/// The current window of robot 7's session on `date`.
async fn current_window(service: &Service, date: &str) -> (String, String, serde_json::Value) {
    let (status, report) = service
        .get(&format!("/v1/robots/7/sessions?from={date}&to={date}"))
        .await;
    assert_eq!(status, 200, "{report}");
    let session = report["sessions"][0].clone();
    let window = &session["window"];
    (
        window["start"].as_str().unwrap_or_default().to_string(),
        window["end"].as_str().unwrap_or_default().to_string(),
        session,
    )
}

async fn wait_for_session(service: &Service, date: &str) {
    for _ in 0..500 {
        let (_, report) = service
            .get(&format!("/v1/robots/7/sessions?from={date}&to={date}"))
            .await;
        if report["sessions"][0]["window"].is_object() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no session started:\n{}", service.logs().join("\n"));
}

#[tokio::test]
async fn a_rule_created_mid_session_watches_from_then_and_a_restart_replays_from_s() {
    // Created at 10:15 into a 08:00–20:00 session: nobody watched 08:00–10:15, so the first
    // window is 10:15–12:15 and nothing before it alarms (semantics §6).
    let dir = tempfile::tempdir().unwrap();
    let config = "[[rules]]\nrobot_id = 7\ntimezone = \"UTC\"\nstart = \"08:00\"\nend = \"20:00\"\ngap = \"2h\"\n";
    let service = Service::start(
        dir.path(),
        ServiceOptions {
            config: config.to_string(),
            args: [
                "--clock-start",
                "2025-06-01T10:15:00Z",
                "--clock-speed",
                "1",
            ]
            .map(String::from)
            .to_vec(),
            ..ServiceOptions::default()
        },
    );
    wait_for_session(&service, "2025-06-01").await;
    let (start, end, session) = current_window(&service, "2025-06-01").await;
    let (start, end): (jiff::Timestamp, jiff::Timestamp) =
        (start.parse().unwrap(), end.parse().unwrap());
    // Created the moment the service started at 10:15 (its clock runs on at 1×).
    let created: jiff::Timestamp = "2025-06-01T10:15:00Z".parse().unwrap();
    assert!(
        start >= created && start < created + jiff::SignedDuration::from_secs(30),
        "{session}"
    );
    assert_eq!(
        end,
        start + jiff::SignedDuration::from_hours(2),
        "{session}"
    );
    assert_eq!(session["alarms"], json!([]), "{session}");
    drop(service);

    // The rule existed before S (created at 07:00); the service was down from 07:00 to 10:15.
    // The restart starts the session late, from S, with what happened since S evaluated: the
    // 08:00–10:00 window passed without an event and alarms.
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(
        dir.path(),
        ServiceOptions {
            config: config.to_string(),
            args: [
                "--clock-start",
                "2025-06-01T07:00:00Z",
                "--clock-speed",
                "1",
            ]
            .map(String::from)
            .to_vec(),
            ..ServiceOptions::default()
        },
    );
    service.restart(
        &[
            "--clock-start",
            "2025-06-01T10:15:00Z",
            "--clock-speed",
            "1",
        ]
        .map(String::from),
    );
    wait_for_session(&service, "2025-06-01").await;
    for _ in 0..500 {
        let (start, end, session) = current_window(&service, "2025-06-01").await;
        if start == "2025-06-01T10:00:00Z" {
            assert_eq!(end, "2025-06-01T12:00:00Z", "{session}");
            let alarms = session["alarms"].as_array().unwrap();
            assert_eq!(alarms.len(), 1, "{session}");
            assert_eq!(
                alarms[0]["windowStart"], "2025-06-01T08:00:00Z",
                "{session}"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "the 08:00–10:00 window was never closed:\n{}",
        service.logs().join("\n")
    );
}
