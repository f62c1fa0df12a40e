//! The status-queue message Megazord sends for a subscription, read tolerantly.
//!
//! Megazord's `notify()` sends `{from, to, link, payload}` where `payload` is the outgoing event
//! hydrated with its `sourceEvent`. Older paths wrap that in an SNS notification
//! (`{"Type": "Notification", "Message": "<json>"}`) or send it flat, and field names vary
//! (`robotId|robot_id`, `eventName|eventType|event_name`, `createdAt|timestamp|created_at`). This
//! parser accepts all of them; anything else is an error that names the field and the value, so
//! the message can be kept as a dead letter with its reason.
//!
//! ```
//! use azi3_status_jobs::queue::parse_status_message;
//!
//! let body = r#"{"to":{"robotId":"789"},
//!   "link":{"link":"/internal/v1/events/robots/789/subscriptions/123/outgoings/9001","rel":""},
//!   "payload":{"id":9001,"sourceEventId":456,"subscriptionId":123,
//!     "sourceEvent":{"id":456,"robotId":789,"eventName":"TOILET_ACTIVITY",
//!                    "createdAt":"2025-11-20T09:30:00.000Z"}}}"#;
//! let message = parse_status_message(body).unwrap();
//! assert_eq!(message.subscription_id, Some(123));
//! assert_eq!(message.outgoing_event_id, Some(9001));
//! let event = message.source_event.unwrap();
//! assert_eq!((event.id, event.robot_id), (456, Some(789)));
//! assert_eq!(event.created_at.to_string(), "2025-11-20T09:30:00Z");
//! ```

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::domain::{ROBOT_ID_RANGE, RobotId, check_instant, parse_instant, shorten_value};

/// What the service needs from one status-queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessage {
    /// The Megazord subscription that matched (`payload.subscriptionId`).
    pub subscription_id: Option<u64>,
    /// The outgoing event id (`payload.id`), when the payload is an outgoing event.
    pub outgoing_event_id: Option<u64>,
    /// The incoming event, when the message carries it.
    pub source_event: Option<SourceEvent>,
    /// The incoming event id when only `sourceEventId` is given.
    pub source_event_id: Option<u64>,
    /// `link.link`: where the outgoing event can be read when `sourceEvent` is missing.
    pub link: Option<String>,
    /// The robot named in `to.robotId`.
    pub to_robot_id: Option<RobotId>,
}

/// The incoming event a message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEvent {
    /// `incoming_event.id` at Megazord: the dedupe key.
    pub id: u64,
    /// The robot, when given.
    pub robot_id: Option<RobotId>,
    /// The event name, when given; when missing, the subscription's single event applies.
    pub event_name: Option<String>,
    /// When Megazord received the event.
    pub created_at: Timestamp,
}

/// A message that cannot be read: the field at fault, the value found and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value}: {reason}")]
pub struct MessageError {
    /// Dotted path of the field (`payload.sourceEvent.createdAt`), or `body`.
    pub field: String,
    /// The value found (JSON), shortened.
    pub value: String,
    /// Why it cannot be used.
    pub reason: String,
}

impl MessageError {
    fn new(field: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        MessageError {
            field: field.into(),
            value: shorten_value(value),
            reason: reason.into(),
        }
    }
}

/// Reads a status-queue message body (direct, SNS-wrapped or flat).
pub fn parse_status_message(body: &str) -> Result<StatusMessage, MessageError> {
    let outer: Value = serde_json::from_str(body)
        .map_err(|e| MessageError::new("body", body, format!("not JSON: {e}")))?;
    let (root, prefix) = match outer.get("Message") {
        Some(Value::String(inner)) => {
            let inner: Value = serde_json::from_str(inner).map_err(|e| {
                MessageError::new("Message", inner, format!("SNS Message is not JSON: {e}"))
            })?;
            (inner, "Message.")
        }
        _ => (outer, ""),
    };
    let Value::Object(root) = root else {
        return Err(MessageError::new(
            "body",
            &root.to_string(),
            "not a JSON object",
        ));
    };
    let (payload, payload_path) = match root.get("payload") {
        Some(Value::Object(p))
            if p.contains_key("sourceEvent")
                || p.contains_key("subscriptionId")
                || p.contains_key("subscription_id") =>
        {
            (p, format!("{prefix}payload."))
        }
        _ => (&root, prefix.to_string()),
    };
    let field = |name: &str| format!("{payload_path}{name}");
    let subscription_id = id_field(payload, &["subscriptionId", "subscription_id"], &field)?;
    let outgoing_event_id = if std::ptr::eq(payload, &root) {
        None
    } else {
        id_field(payload, &["id"], &field)?
    };
    let source_event_id = id_field(payload, &["sourceEventId", "source_event_id"], &field)?;
    let source_event = match first(payload, &["sourceEvent", "source_event"]) {
        None | Some((_, Value::Null)) => None,
        Some((name, Value::Object(event))) => {
            Some(source_event(event, &format!("{payload_path}{name}."))?)
        }
        Some((name, other)) => {
            return Err(MessageError::new(
                field(name),
                &other.to_string(),
                "must be an object",
            ));
        }
    };
    let link = match root.get("link") {
        Some(Value::Object(link)) => match link.get("link") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let to_robot_id = match root.get("to") {
        Some(Value::Object(to)) => {
            robot_field(to, &["robotId", "robot_id"], &|n| format!("{prefix}to.{n}"))?
        }
        _ => None,
    };
    if source_event.is_none() && link.is_none() {
        return Err(MessageError::new(
            field("sourceEvent"),
            "null",
            "missing, and no link.link to read the event from",
        ));
    }
    Ok(StatusMessage {
        subscription_id,
        outgoing_event_id,
        source_event,
        source_event_id,
        link,
        to_robot_id,
    })
}

fn source_event(event: &Map<String, Value>, path: &str) -> Result<SourceEvent, MessageError> {
    let field = |name: &str| format!("{path}{name}");
    let id = id_field(event, &["id"], &field)?
        .ok_or_else(|| MessageError::new(field("id"), "null", "missing"))?;
    let robot_id = robot_field(event, &["robotId", "robot_id"], &field)?;
    let event_name = match first(event, &["eventName", "eventType", "event_name"]) {
        None | Some((_, Value::Null)) => None,
        Some((_, Value::String(s))) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some((name, other)) => {
            return Err(MessageError::new(
                field(name),
                &other.to_string(),
                "must be a non-empty string",
            ));
        }
    };
    let created_at = match first(event, &["createdAt", "timestamp", "created_at"]) {
        None | Some((_, Value::Null)) => {
            return Err(MessageError::new(field("createdAt"), "null", "missing"));
        }
        Some((name, value)) => instant(value)
            .map_err(|reason| MessageError::new(field(name), &value.to_string(), reason))?,
    };
    Ok(SourceEvent {
        id,
        robot_id,
        event_name,
        created_at,
    })
}

fn first<'a>(
    object: &'a Map<String, Value>,
    names: &[&'static str],
) -> Option<(&'static str, &'a Value)> {
    names
        .iter()
        .find_map(|name| object.get(*name).map(|v| (*name, v)))
}

/// An id given as a JSON number or a string of digits.
fn id_field(
    object: &Map<String, Value>,
    names: &[&'static str],
    field: &dyn Fn(&str) -> String,
) -> Result<Option<u64>, MessageError> {
    match first(object, names) {
        None | Some((_, Value::Null)) => Ok(None),
        Some((_, Value::Number(n))) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some((_, Value::String(s))) if s.trim().parse::<u64>().is_ok() => {
            Ok(s.trim().parse::<u64>().ok())
        }
        Some((name, other)) => Err(MessageError::new(
            field(name),
            &other.to_string(),
            "not an id (a whole number)",
        )),
    }
}

fn robot_field(
    object: &Map<String, Value>,
    names: &[&'static str],
    field: &dyn Fn(&str) -> String,
) -> Result<Option<RobotId>, MessageError> {
    let Some(id) = id_field(object, names, field)? else {
        return Ok(None);
    };
    RobotId::try_from(id).map(Some).map_err(|_| {
        let (name, value) = first(object, names).expect("the id was found");
        MessageError::new(
            field(name),
            &value.to_string(),
            format!("not a robot id ({ROBOT_ID_RANGE})"),
        )
    })
}

/// An instant as an RFC 3339 string or a Unix time number: milliseconds when larger than
/// 10^11 (which as seconds would lie past the year 5000), seconds otherwise.
fn instant(value: &Value) -> Result<Timestamp, String> {
    match value {
        Value::String(s) => parse_instant(s.trim()),
        Value::Number(n) => {
            let n = n
                .as_i64()
                .ok_or_else(|| "not a whole Unix time".to_string())?;
            let result = if n.abs() > 100_000_000_000 {
                Timestamp::from_millisecond(n)
            } else {
                Timestamp::from_second(n)
            };
            let instant = result.map_err(|e| format!("not a Unix time: {e}"))?;
            check_instant(instant)?;
            Ok(instant)
        }
        _ => Err("must be an RFC 3339 string or a Unix time".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECT: &str = r#"{
      "from": { "serviceName": "megazord-events" },
      "to": { "robotId": "789" },
      "link": { "link": "/internal/v1/events/robots/789/subscriptions/123/outgoings/9001", "rel": "" },
      "payload": {
        "id": 9001, "sourceEventId": 456, "subscriptionId": 123, "status": "CREATED",
        "createdAt": "2025-11-20T09:30:01.000Z", "updatedAt": "2025-11-20T09:30:01.000Z",
        "sourceEvent": {
          "id": 456, "robotId": 789, "eventTypeId": 31, "eventName": "TOILET_ACTIVITY", "level": 10,
          "referenceId": "sensara-sse-event-id", "providerId": 2, "providerName": "Sensara",
          "createdAt": "2025-11-20T09:30:00.000Z", "updatedAt": "2025-11-20T09:30:00.000Z"
        }
      }
    }"#;

    fn expected() -> StatusMessage {
        StatusMessage {
            subscription_id: Some(123),
            outgoing_event_id: Some(9001),
            source_event: Some(SourceEvent {
                id: 456,
                robot_id: Some(789),
                event_name: Some("TOILET_ACTIVITY".into()),
                created_at: "2025-11-20T09:30:00Z".parse().unwrap(),
            }),
            source_event_id: Some(456),
            link: Some("/internal/v1/events/robots/789/subscriptions/123/outgoings/9001".into()),
            to_robot_id: Some(789),
        }
    }

    #[test]
    fn the_contract_example_reads_completely() {
        assert_eq!(parse_status_message(DIRECT).unwrap(), expected());
    }

    #[test]
    fn an_sns_wrapped_message_reads_the_same() {
        let sns = serde_json::json!({
            "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:x",
            "Message": DIRECT, "Timestamp": "2025-11-20T09:30:02.000Z"
        })
        .to_string();
        assert_eq!(parse_status_message(&sns).unwrap(), expected());
    }

    #[test]
    fn the_flat_shape_with_snake_case_names_and_epoch_millis() {
        let flat = r#"{"subscription_id": "123",
            "sourceEvent": {"id": "456", "robot_id": 789, "eventType": "TOILET_ACTIVITY",
                            "timestamp": 1763631000000}}"#;
        let message = parse_status_message(flat).unwrap();
        assert_eq!(message.subscription_id, Some(123));
        assert_eq!(message.outgoing_event_id, None);
        let event = message.source_event.unwrap();
        assert_eq!(event.id, 456);
        assert_eq!(event.robot_id, Some(789));
        assert_eq!(event.event_name.as_deref(), Some("TOILET_ACTIVITY"));
        assert_eq!(event.created_at.to_string(), "2025-11-20T09:30:00Z");
    }

    #[test]
    fn a_missing_source_event_with_a_link_is_accepted_for_a_lookup() {
        let body = r#"{"link":{"link":"/internal/v1/events/robots/1/subscriptions/2/outgoings/3"},
                       "payload":{"id":3,"subscriptionId":2,"sourceEventId":77}}"#;
        let message = parse_status_message(body).unwrap();
        assert_eq!(message.source_event, None);
        assert_eq!(message.source_event_id, Some(77));
        assert!(message.link.is_some());
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let cases = [
            ("not json", "body"),
            ("[1,2]", "body"),
            (
                r#"{"payload":{"subscriptionId":1,"sourceEvent":{"id":1,"createdAt":"yesterday"}}}"#,
                "payload.sourceEvent.createdAt",
            ),
            (
                r#"{"payload":{"subscriptionId":1,"sourceEvent":{"createdAt":"2025-01-01T00:00:00Z"}}}"#,
                "payload.sourceEvent.id",
            ),
            (
                r#"{"payload":{"subscriptionId":-4,"sourceEvent":{"id":1,"createdAt":"2025-01-01T00:00:00Z"}}}"#,
                "payload.subscriptionId",
            ),
            (r#"{"payload":{"subscriptionId":1}}"#, "payload.sourceEvent"),
            (r#"{"Type":"Notification","Message":"{oops"}"#, "Message"),
        ];
        for (body, field) in cases {
            let err = parse_status_message(body).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
        let err = parse_status_message(
            r#"{"payload":{"subscriptionId":1,"sourceEvent":{"id":1,"createdAt":"yesterday"}}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "payload.sourceEvent.createdAt: \"yesterday\": not an RFC 3339 instant"
            ),
            "{err}"
        );
    }

    #[test]
    fn instants_beyond_the_offsets_or_the_calendar_are_refused_and_long_values_quoted_short() {
        let with_created_at = |created_at: serde_json::Value| {
            serde_json::json!({"payload": {"subscriptionId": 1,
                "sourceEvent": {"id": 1, "createdAt": created_at}}})
            .to_string()
        };
        for created_at in [
            serde_json::json!("2025-06-01T10:00:00+24:00"),
            serde_json::json!("9999-12-31T23:59:59Z"),
            serde_json::json!(253_402_207_200_000_i64),
        ] {
            let err = parse_status_message(&with_created_at(created_at.clone())).unwrap_err();
            assert_eq!(
                err.field, "payload.sourceEvent.createdAt",
                "{created_at}: {err}"
            );
        }
        assert!(parse_status_message(&with_created_at("2025-06-01T10:00:00-23:59".into())).is_ok());
        let err = parse_status_message(&with_created_at("x".repeat(10_000).into())).unwrap_err();
        assert!(err.value.chars().count() <= 201, "{}", err.value.len());
        assert!(err.to_string().len() < 400, "{err}");
        let err = parse_status_message(
            r#"{"payload":{"subscriptionId":1,"sourceEvent":{"id":1,"robotId":4294967296,"createdAt":"2025-01-01T00:00:00Z"}}}"#,
        )
        .unwrap_err();
        assert!(err.reason.contains("0 to 4294967295"), "{err}");
    }
}
