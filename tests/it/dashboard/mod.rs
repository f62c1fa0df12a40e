//! What people see: the dashboard and the API description, on the service built in this
//! process. [`browser`] drives them in headless Chromium; [`http`] checks the sign-in, the
//! OpenAPI document against the router, and runs schemathesis against the running service.

mod browser;
mod http;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::support::app::{AppOptions, TestApp, spawn_app};

/// The token of the services these tests start.
const TOKEN: &str = "dashboard-test-token-0123";

/// The worked example of `docs/semantics.md` §7: robot 7, 08:00–20:00 Europe/Amsterdam, gap
/// 2 h, on 2025-03-30 (the day clocks go forward), events at 09:10, 09:40 and 13:00 local.
const EXAMPLE_EVENTS: [&str; 3] = [
    "2025-03-30T07:10:00Z",
    "2025-03-30T07:40:00Z",
    "2025-03-30T11:00:00Z",
];

fn config(token: Option<&str>) -> String {
    let http = token.map_or_else(String::new, |t| format!("[http]\ntoken = \"{t}\"\n"));
    format!(
        "{http}[[rules]]\nrobot_id = 7\ntimezone = \"Europe/Amsterdam\"\nstart = \"08:00\"\n\
         end = \"20:00\"\ngap = \"2h\"\n"
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Service time as `/health` tells it.
async fn service_now(app: &TestApp) -> Timestamp {
    let (_, health) = app.get("/health").await;
    health["now"].as_str().unwrap().parse().unwrap()
}

/// Waits (in real time, while the simulated clock runs fast) until service time reaches `t`.
async fn wait_until(app: &TestApp, t: Timestamp) {
    while service_now(app).await < t {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A service with the worked example's rule and a token, run on a simulated clock through
/// the worked example's day: each event posted as its instant passes, then the day's end and
/// its alarms awaited.
async fn worked_example_day() -> TestApp {
    let start: Timestamp = "2025-03-30T05:55:00Z".parse().unwrap();
    let app = spawn_app(AppOptions {
        config: config(Some(TOKEN)),
        clock: Some((start, 10_000.0)),
    })
    .await;
    let http = client();
    for (i, at) in EXAMPLE_EVENTS.iter().enumerate() {
        wait_until(&app, at.parse().unwrap()).await;
        let answer = http
            .post(format!(
                "{}/internal/v1/status-jobs/robots/7/events",
                app.base_url
            ))
            .bearer_auth(TOKEN)
            .json(&json!({"id": format!("example-{i}"), "eventName": "TOILET_ACTIVITY", "occurredAt": at}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
    }
    // E is 18:00Z; the session ends once its last window is closed, and the alarms are
    // posted (to the embedded sink) soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let sessions: Value = http
            .get(format!(
                "{}/v1/robots/7/sessions?from=2025-03-30&to=2025-03-30",
                app.base_url
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = &sessions["sessions"][0];
        let sent = session["records"].as_array().map_or(0, |r| {
            r.iter().filter(|r| r["result"] == "ALARM_SENT").count()
        });
        if session["status"] == "COMPLETED" && sent == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worked example's day did not end with 4 alarms sent: {sessions}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app
}
