//! `GET /health`, `GET /ready`, `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::HttpState;

/// The process is alive; says what service time it is (and how a simulated clock runs).
pub async fn health(State(state): State<HttpState>) -> impl IntoResponse {
    let clock = match state.ctx.clock() {
        crate::clock::Clock::System => json!({"kind": "system"}),
        crate::clock::Clock::Simulated(sim) => json!({
            "kind": "simulated",
            "realAnchor": sim.real_anchor,
            "serviceAnchor": sim.service_anchor,
            "speed": sim.speed,
        }),
    };
    Json(json!({"status": "ok", "now": state.ctx.now(), "clock": clock}))
}

/// The database answers, and so does every configured probe (the queue).
pub async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let database = state.ctx.store().ping().await.map_err(|e| e.to_string());
    ready &= database.is_ok();
    checks.insert("database".into(), check_json(&database));
    for (name, probe) in &state.probes {
        let result = probe().await;
        ready &= result.is_ok();
        checks.insert((*name).into(), check_json(&result));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ready { "ready" } else { "not ready" }, "checks": checks});
    (status, Json(body))
}

fn check_json(result: &Result<(), String>) -> serde_json::Value {
    match result {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
