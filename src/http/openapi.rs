//! The API description, `GET /openapi.json`: OpenAPI 3.1, generated from the routes' own
//! annotations (`#[utoipa::path]` beside each handler) as the router registers them, so a route
//! cannot be served without being described.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document's parts that no route carries: its title, the error shape and how to sign in.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "azi3-status-jobs",
        description = "Watches care-robot residents for missing toilet activity and raises \
                       NO_TOILET_ACTIVITY_ALARM exactly once per missed window. Every error is \
                       `{\"error\": {\"field\", \"value\", \"reason\"}}`; `/v1` and `/internal` \
                       need `Authorization: Bearer <token>` when a token is configured, the \
                       dashboard the same token or its sign-in cookie. Requests from web pages \
                       of another origin are refused (403), and a `POST` other than the sign-in \
                       forms must be `application/json` (415).",
        license(name = "UNLICENSED")
    ),
    components(schemas(ErrorBody, ErrorDetail, IngestAnswer)),
    modifiers(&Security),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics and this document"),
        (name = "ingest", description = "Events and status-queue messages taken in over HTTP"),
        (name = "sessions", description = "What the service decided, as JSON"),
        (name = "dashboard", description = "HTML pages for people"),
    )
)]
pub struct ApiDoc;

/// Adds the two ways of proving the token: the bearer header and the dashboard's cookie.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::sign_in::COOKIE,
                "set by POST /sign-in",
            ))),
        );
    }
}

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: ErrorDetail,
}

/// What was wrong with a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The field, header or parameter at fault (`body`, `eventName`, `Authorization`, …).
    pub field: Option<String>,
    /// The value it had, shortened.
    pub value: Option<String>,
    /// Why it was refused.
    pub reason: String,
}

/// What taking an event or a message in did.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestAnswer {
    /// Every session had the event already.
    pub duplicate: bool,
    /// `applied`, `duplicate`, `no_rule`, `other_event` or `no_session`.
    pub outcome: String,
}

/// The document as JSON, made once.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::to_string_pretty(&super::document()).unwrap_or_else(|e| {
            // Only a bug in a schema can fail here; the route says so instead of panicking.
            serde_json::json!({"error": {"field": null, "value": null, "reason": e.to_string()}})
                .to_string()
        })
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description of every route",
               content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}
