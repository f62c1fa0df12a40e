//! `POST /internal/v1/status-jobs/robots/{robotId}/events` and
//! `POST /internal/v1/status-jobs/messages`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::openapi::{ErrorBody, IngestAnswer};
use super::{ApiError, HttpState, parse_robot_id};

/// The body of an event, as documented (the handler reads it field by field, to name the
/// field at fault).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct EventBody {
    /// The event's id at its source: a whole number or a string of at most 256 bytes; the
    /// same id again is a duplicate. Without one, every post is a new event.
    #[schema(value_type = Option<String>)]
    id: Option<serde_json::Value>,
    /// The event's name (`TOILET_ACTIVITY`).
    event_name: String,
    /// RFC 3339; now when absent.
    occurred_at: Option<String>,
}
use crate::runtime::{IntakeOutcome, MessageOutcome};

/// Takes in one event: `{"id"?: "…", "eventName": "TOILET_ACTIVITY", "occurredAt"?: "RFC 3339"}`.
/// `occurredAt` defaults to now; an `id` seen before makes it a duplicate; without an `id`
/// every post is a new event. Answers 202 with `{"duplicate": bool, "outcome": "…"}`.
#[utoipa::path(post, path = "/internal/v1/status-jobs/robots/{robotId}/events", tag = "ingest",
    params(("robotId" = u32, Path, minimum = 1, example = 7, description = "The robot (1 to 4294967295)")),
    request_body(content = EventBody, content_type = "application/json"),
    responses((status = 202, description = "Taken in (committed)", body = IngestAnswer),
              (status = 400, description = "A field is wrong; the answer names it and its value", body = ErrorBody), (status = 401, description = "No or a wrong bearer token", body = ErrorBody), (status = 403, description = "From a web page of another origin", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody), (status = 503, description = "The database (or Megazord) cannot be reached now; try again", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn event(
    State(state): State<HttpState>,
    robot_id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let Path(robot_id) = robot_id?;
    let robot_id = parse_robot_id(&robot_id)?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "body",
            String::from_utf8_lossy(&body),
            format!("not JSON: {e}"),
        )
    })?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(
            "body",
            body.to_string(),
            "not a JSON object",
        ));
    };
    let event_name = match body.get("eventName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(other) => {
            return Err(ApiError::bad_request(
                "eventName",
                other.to_string(),
                "must be a non-empty string",
            ));
        }
        None => return Err(ApiError::bad_request("eventName", "", "is required")),
    };
    let ctx = &state.ctx;
    let occurred_at = match body.get("occurredAt") {
        None | Some(Value::Null) => ctx.now(),
        Some(Value::String(s)) => crate::domain::parse_instant(s)
            .map_err(|reason| ApiError::bad_request("occurredAt", s, reason))?,
        Some(other) => {
            return Err(ApiError::bad_request(
                "occurredAt",
                other.to_string(),
                "must be an RFC 3339 string",
            ));
        }
    };
    let external_id = match body.get("id") {
        None | Some(Value::Null) => None,
        // Taken exactly as sent: `" ok-1"` and `"ok-1"` are two events.
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_BYTES => Some(s.clone()),
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(
                "id",
                other.to_string(),
                format!(
                    "must be a whole number or a non-empty string of at most {MAX_ID_BYTES} bytes \
                     (UTF-8)"
                ),
            ));
        }
    };
    let outcome = ctx
        .take_posted_event(robot_id, external_id, event_name, occurred_at)
        .await
        .map_err(ApiError::unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(outcome_json(&outcome))))
}

/// Takes in exactly the body of a status-queue message. A body that cannot be used is kept as
/// a dead letter and answered with 400 naming the field and the reason.
#[utoipa::path(post, path = "/internal/v1/status-jobs/messages", tag = "ingest",
    request_body(content = Object, content_type = "application/json",
                 description = "Exactly the body of a status-queue message"),
    responses((status = 202, description = "Taken in (committed)", body = IngestAnswer),
              (status = 400, description = "Unusable: kept as a dead letter; the answer names the field", body = ErrorBody),
              (status = 401, description = "No or a wrong bearer token", body = ErrorBody), (status = 403, description = "From a web page of another origin", body = ErrorBody), (status = 413, description = "Body over 1 MiB", body = ErrorBody), (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody), (status = 503, description = "The database (or Megazord) cannot be reached now; try again", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn message(
    State(state): State<HttpState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let text = String::from_utf8_lossy(&body);
    match state
        .ctx
        .take_message(&text, None)
        .await
        .map_err(ApiError::unavailable)?
    {
        MessageOutcome::Taken(outcome) => Ok((StatusCode::ACCEPTED, Json(outcome_json(&outcome)))),
        MessageOutcome::Rejected(rejection) => {
            tracing::warn!(reason = %rejection, "posted message stored as a dead letter");
            let (field, value, reason) = rejection.parts();
            Err(ApiError::bad_request(field, value, reason))
        }
    }
}

/// The longest event `id` taken, in bytes of UTF-8 (the column holds that many).
const MAX_ID_BYTES: usize = 256;

fn outcome_json(outcome: &IntakeOutcome) -> Value {
    let label = match outcome {
        IntakeOutcome::Applied {
            duplicate: true, ..
        } => "duplicate",
        IntakeOutcome::Applied { .. } => "applied",
        IntakeOutcome::NoRule => "no_rule",
        IntakeOutcome::OtherEvent => "other_event",
        IntakeOutcome::NoSession => "no_session",
    };
    json!({"duplicate": outcome.is_duplicate(), "outcome": label})
}
