//! The HTTP interface: event ingest, operations endpoints and the sessions view.
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | the process is alive |
//! | `GET /ready` | the database (and the queue, when configured) answer |
//! | `GET /metrics` | Prometheus text |
//! | `POST /internal/v1/status-jobs/robots/{robotId}/events` | take in one watched event |
//! | `POST /internal/v1/status-jobs/messages` | take in one status-queue message body |
//! | `GET /v1/robots/{robotId}/sessions?from=…&to=…` | sessions as `replay --output json` shows them, plus status and records |
//! | `GET /`, `GET /robots/{robotId}`, `GET /robots/{robotId}/compare` | the dashboard (HTML, see `src/http/dashboard.rs`) |
//! | `GET /sign-in`, `POST /sign-in`, `POST /sign-out` | signing in to the dashboard with the token |
//!
//! Everything under `/v1` and `/internal` needs `Authorization: Bearer <token>` when a token is
//! configured; the dashboard needs the same token, given once in its sign-in form (a cookie)
//! or as that header. Requests from web pages of another origin are refused (403), and every
//! `POST` but the sign-in forms' must be `Content-Type: application/json` (415): see
//! `src/http/guard.rs`.

mod auth;
mod dashboard;
mod error;
mod guard;
mod ingest;
mod ops;
mod sessions;
mod sign_in;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::runtime::Context;

pub use error::ApiError;

/// A check `/ready` runs besides the database: a name and an async probe.
pub type ReadinessProbe = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// What the routes share.
#[derive(Clone)]
pub struct HttpState {
    /// The runtime.
    pub ctx: Context,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The bearer token `/v1` and `/internal` require, if any.
    pub token: Option<Arc<str>>,
    /// Extra readiness checks (the queue).
    pub probes: Vec<(&'static str, ReadinessProbe)>,
}

/// Reads the `{robotId}` of a path; a bad one is a 400 naming it.
fn parse_robot_id(raw: &str) -> Result<crate::domain::RobotId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "robotId",
            raw,
            format!("not a robot id ({})", crate::domain::ROBOT_ID_RANGE),
        )
    })
}

/// The whole router.
pub fn router(state: HttpState) -> Router {
    let protected = Router::new()
        .route(
            "/internal/v1/status-jobs/robots/{robot_id}/events",
            post(ingest::event),
        )
        .route("/internal/v1/status-jobs/messages", post(ingest::message))
        .route("/v1/robots/{robot_id}/sessions", get(sessions::list))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let dashboard = Router::new()
        .route("/", get(dashboard::robots))
        .route("/robots/{robot_id}", get(dashboard::day))
        .route(
            "/robots/{robot_id}/compare",
            get(dashboard::compare_settings),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            sign_in::require_sign_in,
        ));
    Router::new()
        .route("/health", get(ops::health))
        .route("/sign-in", get(sign_in::form).post(sign_in::sign_in))
        .route("/sign-out", post(sign_in::sign_out))
        .merge(dashboard)
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .merge(protected)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            guard::BODY_LIMIT,
        ))
        .layer(axum::middleware::map_response(guard::json_body_too_large))
        .layer(axum::middleware::from_fn(guard::refuse_browsers))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
