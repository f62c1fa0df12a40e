//! `POST /internal/v1/status-jobs/robots/{robotId}/events` and
//! `POST /internal/v1/status-jobs/messages`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{ApiError, HttpState, parse_robot_id};
use crate::runtime::{IntakeOutcome, MessageOutcome};

/// Takes in one event: `{"id"?: "…", "eventName": "TOILET_ACTIVITY", "occurredAt"?: "RFC 3339"}`.
/// `occurredAt` defaults to now; an `id` seen before makes it a duplicate; without an `id`
/// every post is a new event. Answers 202 with `{"duplicate": bool, "outcome": "…"}`.
pub async fn event(
    State(state): State<HttpState>,
    Path(robot_id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
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
