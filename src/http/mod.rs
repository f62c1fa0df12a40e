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
mod openapi;
mod ops;
mod sessions;
mod sign_in;

use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    pub probes: Arc<[(&'static str, ReadinessProbe)]>,
}

/// Reads the `{robotId}` of a path; a bad one is a 400 naming it.
fn parse_robot_id(raw: &str) -> Result<crate::domain::RobotId, ApiError> {
    raw.parse().map_err(|e: crate::domain::NotARobotId| {
        ApiError::bad_request("robotId", raw, e.to_string())
    })
}

/// The routes with their descriptions, in three groups: open, behind the bearer token, and
/// the dashboard (token or sign-in cookie). Each is registered through `routes!`, which takes
/// the handler's `#[utoipa::path]` (method, path, parameters, answers) for both the router and
/// the document, so that no route is served undescribed.
struct Routes {
    open: OpenApiRouter<HttpState>,
    protected: OpenApiRouter<HttpState>,
    dashboard: OpenApiRouter<HttpState>,
}

fn routes() -> Routes {
    Routes {
        open: OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
            .routes(routes!(ops::health))
            .routes(routes!(ops::ready))
            .routes(routes!(ops::metrics))
            .routes(routes!(openapi::openapi_json))
            .routes(routes!(sign_in::form, sign_in::sign_in))
            .routes(routes!(sign_in::sign_out)),
        protected: OpenApiRouter::new()
            .routes(routes!(ingest::event))
            .routes(routes!(ingest::message))
            .routes(routes!(sessions::list)),
        dashboard: OpenApiRouter::new()
            .routes(routes!(dashboard::robots))
            .routes(routes!(dashboard::day))
            .routes(routes!(dashboard::compare_settings)),
    }
}

/// The API description of every route: what `GET /openapi.json` serves.
pub fn document() -> utoipa::openapi::OpenApi {
    let Routes {
        open,
        protected,
        dashboard,
    } = routes();
    open.merge(protected).merge(dashboard).into_openapi()
}

/// The whole router.
pub fn router(state: HttpState) -> Router {
    let Routes {
        open,
        protected,
        dashboard,
    } = routes();
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    let dashboard = dashboard.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        sign_in::require_sign_in,
    ));
    let (router, _) = open.merge(protected).merge(dashboard).split_for_parts();
    router
        .fallback(not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            guard::BODY_LIMIT,
        ))
        .layer(axum::middleware::map_response(guard::json_body_too_large))
        .layer(axum::middleware::from_fn(guard::refuse_browsers))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Any other path: the API's JSON error, naming it.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("path", uri.path(), "no such route (see /openapi.json)")
}
