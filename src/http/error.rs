//! Errors as the API answers them: a status and `{"error": {"field", "value", "reason"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: Option<String>,
    value: Option<String>,
    reason: String,
}

impl ApiError {
    /// 400: `field` had `value`, refused because of `reason`.
    pub fn bad_request(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            field: Some(field.into()),
            value: Some(value.into()),
            reason: reason.into(),
        }
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            field: Some("Authorization".into()),
            value: None,
            reason: "a valid `Authorization: Bearer <token>` header is required".into(),
        }
    }

    /// 503: a dependency (the database) failed; try again.
    pub fn unavailable(reason: impl std::fmt::Display) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            field: None,
            value: None,
            reason: reason.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"field": self.field, "value": self.value, "reason": self.reason}});
        (self.status, Json(body)).into_response()
    }
}
