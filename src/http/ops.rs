//! `GET /health`, `GET /ready`, `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::HttpState;
#[allow(unused_imports)]
use super::openapi::ErrorBody;
use crate::runtime::watchdog::{self, STORE_TIMEOUT, WatchFacts};

/// The process is alive; says what service time it is (and how a simulated clock runs), and
/// what the watchdog last found (so that a liveness probe shows going quiet too, without
/// failing on it: a restart would not mend a database or Megazord that is down).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive: service time, clock and what the watchdog last found", body = Object),
              (status = 403, description = "From a web page of another origin", body = ErrorBody)))]
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
    let facts = state.ctx.liveness().facts();
    let not_ready = facts.as_ref().and_then(|f| not_ready_reason(&state, f));
    Json(json!({
        "status": "ok",
        "now": state.ctx.now(),
        "clock": clock,
        "watchdog": facts,
        "notReady": not_ready,
    }))
}

/// Ready when the store runs a transaction within a few seconds, no window is overdue by more
/// than the configured bound, and every configured probe (the queue) answers. A 503 names each
/// failing check with the kind of failure, never a driver's message.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Ready: every check passed", body = Object),
              (status = 503, description = "Not ready: `checks` names each failing check", body = Object),
              (status = 403, description = "From a web page of another origin", body = ErrorBody)))]
pub async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let database = match tokio::time::timeout(STORE_TIMEOUT, state.ctx.store().ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot run a transaction ({})", e.kind())),
        Err(_) => Err(format!(
            "cannot run a transaction (no answer within {} s)",
            STORE_TIMEOUT.as_secs()
        )),
    };
    ready &= database.is_ok();
    checks.insert("database".into(), check_json(&database));
    let windows = match state.ctx.liveness().facts() {
        Some(facts) => match not_ready_reason(&state, &facts) {
            // The store's own state is the check above, answered just now.
            Some(reason) if facts.store_ok => Err(reason),
            _ => Ok(()),
        },
        None => Ok(()),
    };
    ready &= windows.is_ok();
    checks.insert("windows".into(), check_json(&windows));
    if state.ctx.megazord().is_some() {
        // A missing provider or schema is looked for again at once: the fix shows right away.
        let megazord = match state.ctx.liveness().setup_problem() {
            Some(_) => watchdog::run_setup_check(&state.ctx).await,
            None => None,
        };
        let megazord = megazord.map_or(Ok(()), Err);
        ready &= megazord.is_ok();
        checks.insert("megazord".into(), check_json(&megazord));
    }
    for (name, probe) in state.probes.iter() {
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

fn not_ready_reason(state: &HttpState, facts: &WatchFacts) -> Option<String> {
    watchdog::not_ready_reason(
        facts,
        state.ctx.settings().ready_overdue_bound,
        state.ctx.clock().speed(),
    )
}

fn check_json(result: &Result<(), String>) -> serde_json::Value {
    match result {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String,
               content_type = "text/plain"),
              (status = 403, description = "From a web page of another origin", body = ErrorBody)))]
pub async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
