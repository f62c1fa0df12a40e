//! Errors as the API answers them: a status and `{"error": {"field", "value", "reason"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::shorten_value;

/// An error answer. A value from the request is quoted shortened (see [`shorten_value`]), so
/// an answer never grows with what a client sent.
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
        value: impl AsRef<str>,
        reason: impl Into<String>,
    ) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            field: Some(field.into()),
            value: Some(shorten_value(value.as_ref())),
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

    /// 403: the request comes from a web page of another origin.
    pub fn foreign_origin(origin: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            field: Some("Origin".into()),
            value: Some(shorten_value(origin)),
            reason: "requests from web pages are refused; this service has no browser clients"
                .into(),
        }
    }

    /// 413: the body is longer than `limit` bytes.
    pub fn body_too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            field: Some("body".into()),
            value: None,
            reason: format!("longer than the limit of {limit} bytes"),
        }
    }

    /// 415: a `POST` whose body is not declared as JSON; `value` is the `Content-Type` given.
    pub fn not_json(value: Option<&str>) -> Self {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            field: Some("Content-Type".into()),
            value: value.map(shorten_value),
            reason: "must be `application/json`".into(),
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
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 names the scheme that would be accepted.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
