//! `POST /internal/v1/status-jobs/robots/{robotId}/events` and
//! `POST /internal/v1/status-jobs/messages`.

use std::fmt;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Value, json};

use super::openapi::{ErrorBody, IngestAnswer};
use super::{ApiError, HttpState, parse_robot_id};
use crate::json_input::{EventNameField, JsonInputError, read_json_object};
use crate::runtime::{IntakeOutcome, MessageOutcome};

/// The body of an event.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBody {
    /// The event's id at its source: a whole number or a string of at most 256 bytes; the
    /// same id again is a duplicate. Without one, every post is a new event.
    #[schema(value_type = Option<String>)]
    id: Option<ExternalId>,
    /// The event's name (`TOILET_ACTIVITY`).
    // Read as optional so that a missing name is refused by its own name, not the body's.
    #[schema(value_type = String, required = true)]
    event_name: Option<EventNameField>,
    /// RFC 3339; now when absent.
    #[schema(value_type = Option<String>)]
    occurred_at: Option<PostedInstant>,
}

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
    let EventBody {
        id,
        event_name,
        occurred_at,
    } = read_json_object(&body).map_err(|error| refused_body(&body, error))?;
    let Some(EventNameField(event_name)) = event_name else {
        return Err(ApiError::bad_request("eventName", "", "is required"));
    };
    let ctx = &state.ctx;
    let occurred_at = occurred_at.map_or_else(|| ctx.now(), |at| at.0);
    let external_id = id.map(|id| id.0);
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

/// The answer to a body that cannot be read: the field at fault, by its path, and its value.
fn refused_body(body: &[u8], error: JsonInputError) -> ApiError {
    match error {
        JsonInputError::NotJson(e) => ApiError::bad_request(
            "body",
            String::from_utf8_lossy(body),
            format!("not JSON: {e}"),
        ),
        JsonInputError::Field(e) if e.path.is_empty() => {
            ApiError::bad_request("body", e.value_text(), e.reason)
        }
        JsonInputError::Field(e) => ApiError::bad_request(&e.path, e.value_text(), e.reason),
    }
}

/// The longest event `id` taken, in bytes of UTF-8 (the column holds that many).
const MAX_ID_BYTES: usize = 256;

/// What an event `id` may be, as a refusal says it.
fn what_an_id_is() -> String {
    format!("a whole number or a non-empty string of at most {MAX_ID_BYTES} bytes (UTF-8)")
}

/// An event's id at its source: a whole number, or a string taken exactly as sent (`" ok-1"`
/// and `"ok-1"` are two events) of 1 to [`MAX_ID_BYTES`] bytes.
#[derive(Debug)]
struct ExternalId(String);

impl<'de> serde::Deserialize<'de> for ExternalId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExternalIdVisitor;

        impl Visitor<'_> for ExternalIdVisitor {
            type Value = ExternalId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&what_an_id_is())
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ExternalId, E> {
                Ok(ExternalId(n.to_string()))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ExternalId, E> {
                if text.is_empty() || text.len() > MAX_ID_BYTES {
                    return Err(E::custom(format_args!("must be {}", what_an_id_is())));
                }
                Ok(ExternalId(text.to_string()))
            }
        }

        deserializer.deserialize_any(ExternalIdVisitor)
    }
}

/// When an event happened, as an RFC 3339 string.
#[derive(Debug)]
struct PostedInstant(jiff::Timestamp);

impl<'de> serde::Deserialize<'de> for PostedInstant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PostedInstantVisitor;

        impl Visitor<'_> for PostedInstantVisitor {
            type Value = PostedInstant;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<PostedInstant, E> {
                crate::domain::parse_instant(text)
                    .map(PostedInstant)
                    .map_err(E::custom)
            }
        }

        deserializer.deserialize_str(PostedInstantVisitor)
    }
}

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
