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

    /// 404: `field` had `value`, which names nothing the service knows, because of `reason`.
    pub fn not_found(
        field: impl Into<String>,
        value: impl AsRef<str>,
        reason: impl Into<String>,
    ) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
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
            reason: "requests from web pages of another origin are refused".into(),
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

    /// 503: a dependency (the database, Megazord) failed; try again. The answer names the kind
    /// of failure only: a driver's message may carry addresses or names that are not the
    /// client's business. The whole error goes to the log.
    pub fn unavailable<E: FailureKind + std::fmt::Display>(error: E) -> Self {
        let kind = error.kind();
        tracing::warn!(error = %error, kind, "request not served: a dependency failed");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            field: None,
            value: None,
            reason: format!("temporarily unavailable ({kind}); try again"),
        }
    }
}

/// A path parameter that could not be read (not UTF-8 once decoded).
impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            field: Some("path".into()),
            value: None,
            reason: rejection.body_text(),
        }
    }
}

/// A query string that could not be read.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            field: Some("query".into()),
            value: None,
            reason: rejection.body_text(),
        }
    }
}

/// A form body that could not be read: 415 when it is no form, 400 otherwise.
impl From<axum::extract::rejection::FormRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::FormRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            field: Some("body".into()),
            value: None,
            reason: rejection.body_text(),
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

/// A failure that can say what kind it is in a word, for a 503 answer.
pub trait FailureKind {
    /// The kind, e.g. `connection` or `megazord_unavailable`.
    fn kind(&self) -> &'static str;
}

impl FailureKind for crate::store::StoreError {
    fn kind(&self) -> &'static str {
        crate::store::StoreError::kind(self)
    }
}

impl FailureKind for crate::runtime::TakeError {
    fn kind(&self) -> &'static str {
        match self {
            crate::runtime::TakeError::Store(e) => e.kind(),
            crate::runtime::TakeError::Megazord(_) => "megazord_unavailable",
        }
    }
}
