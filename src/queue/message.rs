//! The status-queue message Megazord sends for a subscription, read tolerantly.
//!
//! Megazord's `notify()` sends `{from, to, link, payload}` where `payload` is the outgoing event
//! hydrated with its `sourceEvent`. Older paths wrap that in an SNS notification
//! (`{"Type": "Notification", "Message": "<json>"}`) or send it flat, and field names vary
//! (`robotId|robot_id`, `eventName|eventType|event_name`, `createdAt|timestamp|created_at`, one
//! of them for a field). This parser accepts all of them; anything else is an error that names
//! the field by its path and quotes the value, so the message can be kept as a dead letter with
//! its reason.
//!
//! ```
//! use azi3_status_jobs::domain::RobotId;
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
//! assert_eq!((event.id, event.robot_id), (456, Some(RobotId::new(789))));
//! assert_eq!(event.created_at.to_string(), "2025-11-20T09:30:00Z");
//! ```

use std::fmt;
use std::marker::PhantomData;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::domain::{RobotId, check_instant, parse_instant, shorten_value};
use crate::json_input::{EventNameField, JsonInputError, Object, RobotIdField, read_json_object};

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
    let envelope: Envelope = Document::Body.read(body)?;
    match envelope.sns_message {
        Some(inner) => {
            let document = Document::SnsMessage;
            let envelope = document.read(&inner)?;
            status_message(envelope, &inner, document)
        }
        None => status_message(envelope, body, Document::Body),
    }
}

/// The JSON document a message's fields are read from: the body, or the message an SNS
/// notification carries in it.
#[derive(Debug, Clone, Copy)]
enum Document {
    Body,
    SnsMessage,
}

impl Document {
    /// Reads `text`, naming a refused field by its path from the body.
    fn read<T: DeserializeOwned>(self, text: &str) -> Result<T, MessageError> {
        read_json_object(text.as_bytes()).map_err(|error| match error {
            JsonInputError::NotJson(e) => {
                let reason = match self {
                    Document::Body => format!("not JSON: {e}"),
                    Document::SnsMessage => format!("SNS Message is not JSON: {e}"),
                };
                MessageError::new(self.name(), text, reason)
            }
            JsonInputError::Field(e) => {
                let field = match e.path.as_str() {
                    "" => self.name().to_string(),
                    path => self.field(path),
                };
                MessageError::new(field, &e.value.to_string(), e.reason)
            }
        })
    }

    /// How an error names the document itself.
    fn name(self) -> &'static str {
        match self {
            Document::Body => "body",
            Document::SnsMessage => "Message",
        }
    }

    /// The path from the body of the document's field at `path`.
    fn field(self, path: &str) -> String {
        match self {
            Document::Body => path.to_string(),
            Document::SnsMessage => format!("Message.{path}"),
        }
    }
}

/// The top of a message: Megazord's `{from, to, link, payload}`, the flat shape (the payload's
/// fields at the top, read as [`FlatPayload`]) or an SNS notification with the message in
/// `Message`. What is not an object under `payload`, `link` and `to` belongs to another shape
/// and is passed over.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "Message", default, deserialize_with = "text_or_ignored")]
    sns_message: Option<String>,
    #[serde(default, deserialize_with = "object_or_ignored")]
    payload: Option<OutgoingEvent>,
    #[serde(default, deserialize_with = "object_or_ignored")]
    link: Option<Link>,
    #[serde(default, deserialize_with = "object_or_ignored")]
    to: Option<Recipient>,
}

/// The fields of an outgoing event the service reads. `Id` reads its `id`: under `payload` that
/// is the outgoing event's; at the top of the flat shape it may be anything, and is not read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload<Id> {
    #[serde(default)]
    id: Id,
    #[serde(alias = "subscription_id")]
    subscription_id: Option<WholeNumber>,
    #[serde(alias = "source_event_id")]
    source_event_id: Option<WholeNumber>,
    #[serde(alias = "source_event")]
    source_event: Option<Object<SourceEventFields>>,
}

type OutgoingEvent = Payload<Option<WholeNumber>>;
type FlatPayload = Payload<IgnoredAny>;

impl<Id> Payload<Id> {
    /// Whether this is the payload Megazord sends, rather than something else under that name.
    fn is_outgoing_event(&self) -> bool {
        self.source_event.is_some() || self.subscription_id.is_some()
    }
}

#[derive(Debug, Deserialize)]
struct Link {
    #[serde(default, deserialize_with = "text_or_ignored")]
    link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    #[serde(alias = "robot_id")]
    robot_id: Option<RobotIdField>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceEventFields {
    id: Option<WholeNumber>,
    #[serde(alias = "robot_id")]
    robot_id: Option<RobotIdField>,
    #[serde(alias = "eventType", alias = "event_name")]
    event_name: Option<EventNameField>,
    #[serde(alias = "timestamp", alias = "created_at")]
    created_at: Option<MessageInstant>,
}

fn status_message(
    envelope: Envelope,
    text: &str,
    document: Document,
) -> Result<StatusMessage, MessageError> {
    let (payload, payload_path) = match envelope.payload {
        Some(payload) if payload.is_outgoing_event() => (payload, "payload."),
        _ => {
            let flat: FlatPayload = document.read(text)?;
            let payload = OutgoingEvent {
                id: None,
                subscription_id: flat.subscription_id,
                source_event_id: flat.source_event_id,
                source_event: flat.source_event,
            };
            (payload, "")
        }
    };
    let field = |name: &str| document.field(&format!("{payload_path}{name}"));
    let source_event = match payload.source_event {
        Some(Object(fields)) => {
            let field = |name: &str| field(&format!("sourceEvent.{name}"));
            Some(SourceEvent {
                id: fields
                    .id
                    .ok_or_else(|| MessageError::new(field("id"), "null", "missing"))?
                    .0,
                robot_id: fields.robot_id.map(|id| id.0),
                event_name: fields.event_name.map(|name| name.0),
                created_at: fields
                    .created_at
                    .ok_or_else(|| MessageError::new(field("createdAt"), "null", "missing"))?
                    .0,
            })
        }
        None => None,
    };
    let link = envelope
        .link
        .and_then(|link| link.link)
        .filter(|link| !link.is_empty());
    if source_event.is_none() && link.is_none() {
        return Err(MessageError::new(
            field("sourceEvent"),
            "null",
            "missing, and no link.link to read the event from",
        ));
    }
    Ok(StatusMessage {
        subscription_id: payload.subscription_id.map(|id| id.0),
        outgoing_event_id: payload.id.map(|id| id.0),
        source_event,
        source_event_id: payload.source_event_id.map(|id| id.0),
        link,
        to_robot_id: envelope.to.and_then(|to| to.robot_id).map(|id| id.0),
    })
}

/// An id given as a JSON number or a string of digits.
#[derive(Debug, Clone, Copy)]
struct WholeNumber(u64);

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WholeNumberVisitor;

        impl Visitor<'_> for WholeNumberVisitor {
            type Value = WholeNumber;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id (a whole number)")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<WholeNumber, E> {
                Ok(WholeNumber(n))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<WholeNumber, E> {
                u64::try_from(n).map(WholeNumber).map_err(|_| not_an_id())
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<WholeNumber, E> {
                Err(not_an_id())
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<WholeNumber, E> {
                text.trim()
                    .parse()
                    .map(WholeNumber)
                    .map_err(|_| not_an_id())
            }
        }

        fn not_an_id<E: de::Error>() -> E {
            E::custom("not an id (a whole number)")
        }

        deserializer.deserialize_any(WholeNumberVisitor)
    }
}

/// An instant as an RFC 3339 string or a Unix time number: milliseconds when larger than
/// 10^11 (which as seconds would lie past the year 5000), seconds otherwise.
#[derive(Debug, Clone, Copy)]
struct MessageInstant(Timestamp);

impl<'de> Deserialize<'de> for MessageInstant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InstantVisitor;

        impl Visitor<'_> for InstantVisitor {
            type Value = MessageInstant;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or a Unix time")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<MessageInstant, E> {
                parse_instant(text.trim())
                    .map(MessageInstant)
                    .map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<MessageInstant, E> {
                let result = if n.unsigned_abs() > 100_000_000_000 {
                    Timestamp::from_millisecond(n)
                } else {
                    Timestamp::from_second(n)
                };
                let instant =
                    result.map_err(|e| E::custom(format_args!("not a Unix time: {e}")))?;
                check_instant(instant).map_err(E::custom)?;
                Ok(MessageInstant(instant))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<MessageInstant, E> {
                let n = i64::try_from(n).map_err(|_| E::custom("not a whole Unix time"))?;
                self.visit_i64(n)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MessageInstant, E> {
                Err(E::custom("not a whole Unix time"))
            }
        }

        deserializer.deserialize_any(InstantVisitor)
    }
}

/// An object read as `T`; any other value, which belongs to another shape of message, as
/// `None`.
fn object_or_ignored<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(match deserializer.deserialize_any(Tolerant(PhantomData))? {
        Found::Object(object) => Some(object),
        Found::Text(_) | Found::Other => None,
    })
}

/// A string; any other value as `None`.
fn text_or_ignored<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(
        match deserializer.deserialize_any(Tolerant::<IgnoredAny>(PhantomData))? {
            Found::Text(text) => Some(text),
            Found::Object(_) | Found::Other => None,
        },
    )
}

/// What [`Tolerant`] found: an object read as `T`, a string, or another value.
enum Found<T> {
    Object(T),
    Text(String),
    Other,
}

/// Takes any JSON value, reading an object as `T`; only an object that is not a `T` is an
/// error.
struct Tolerant<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Tolerant<T> {
    type Value = Found<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Found<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Found::Object)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Found<T>, E> {
        Ok(Found::Text(text.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Found::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Found<T>, E> {
        Ok(Found::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Found<T>, E> {
        Ok(Found::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Found<T>, E> {
        Ok(Found::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Found<T>, E> {
        Ok(Found::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Found<T>, E> {
        Ok(Found::Other)
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
                robot_id: Some(RobotId::new(789)),
                event_name: Some("TOILET_ACTIVITY".into()),
                created_at: "2025-11-20T09:30:00Z".parse().unwrap(),
            }),
            source_event_id: Some(456),
            link: Some("/internal/v1/events/robots/789/subscriptions/123/outgoings/9001".into()),
            to_robot_id: Some(RobotId::new(789)),
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
        assert_eq!(event.robot_id, Some(RobotId::new(789)));
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
    fn other_shapes_under_payload_link_and_to_are_passed_over_but_arrays_are_not_objects() {
        let flat = r#"{"payload": "something else", "link": "/x", "to": 7,
            "subscriptionId": 5, "sourceEvent": {"id": 1, "createdAt": 1763631000}}"#;
        let message = parse_status_message(flat).unwrap();
        assert_eq!(message.subscription_id, Some(5));
        assert_eq!((message.link, message.to_robot_id), (None, None));
        let cases = [
            (r#"[{"payload": {}}]"#, "body"),
            (
                r#"{"payload":{"subscriptionId":1,"sourceEvent":[1,2,"X","2025-01-01T00:00:00Z"]}}"#,
                "payload.sourceEvent",
            ),
            (
                r#"{"payload":{"subscriptionId":1,"source_event":{"id":1,"robot_id":"seven","created_at":1}}}"#,
                "payload.source_event.robot_id",
            ),
            (r#"{"Message":"[1]"}"#, "Message"),
            (
                r#"{"Message":"{\"to\":{\"robotId\":-1}}"}"#,
                "Message.to.robotId",
            ),
        ];
        for (body, field) in cases {
            let err = parse_status_message(body).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
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
