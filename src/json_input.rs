//! JSON from outside (a posted body, a queue message, a line of an events file) read into a
//! type that derives `Deserialize`, so that a refusal names the field at fault by its path
//! (`payload.sourceEvent.createdAt`) and quotes the value found there.
//!
//! The types of fields that several inputs share live here too: a robot id and an event name.
//!
//! ```
//! use azi3_status_jobs::json_input::{JsonInputError, read_json_object};
//!
//! #[derive(Debug, serde::Deserialize)]
//! struct Event {
//!     id: Option<u64>,
//! }
//!
//! let Err(JsonInputError::Field(e)) = read_json_object::<Event>(br#"{"id": "seven"}"#) else {
//!     panic!("refused")
//! };
//! assert_eq!((e.path.as_str(), e.value_text().as_str()), ("id", "seven"));
//! assert_eq!(e.reason, r#"invalid type: string "seven", expected u64"#);
//! ```

use std::fmt::{self, Write};
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::domain::{NotARobotId, ROBOT_ID_RANGE, RobotId, shorten_value};

/// Why a JSON document could not be read.
#[derive(Debug)]
pub enum JsonInputError {
    /// The text is not JSON (or not one JSON value).
    NotJson(serde_json::Error),
    /// The JSON is not what was expected: the field at fault, its value and why.
    Field(FieldError),
}

/// A field of a JSON document that cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Where the field is, as `sourceEvent.id` or `items[2]`; empty for the document itself.
    pub path: String,
    /// The value found there.
    pub value: Value,
    /// Why it cannot be used, shortened like a quoted value (a reason may quote the value).
    pub reason: String,
}

impl FieldError {
    /// The value as a person reads it: a string as it is, anything else as JSON.
    pub fn value_text(&self) -> String {
        match &self.value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

/// Reads `json`, one JSON object and nothing after it but white space, as a `T`.
pub fn read_json_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, JsonInputError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(Object(read)) => {
            deserializer.end().map_err(JsonInputError::NotJson)?;
            Ok(read)
        }
        Err(error) if error.inner().is_data() => field_error(json, error),
        Err(error) => Err(JsonInputError::NotJson(error.into_inner())),
    }
}

/// The field `error` is about, its value read from the document again: errors are rare, and
/// this way reading the fields costs no copy of the document.
fn field_error<T>(
    json: &[u8],
    error: serde_path_to_error::Error<serde_json::Error>,
) -> Result<T, JsonInputError> {
    // The type refused a value before the end of the text, which may still not be JSON.
    let document: Value = serde_json::from_slice(json).map_err(JsonInputError::NotJson)?;
    let mut value = &document;
    let mut path = String::new();
    for segment in error.path() {
        let inner = match segment {
            Segment::Map { key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                value.get(key)
            }
            Segment::Seq { index } => {
                let _ = write!(path, "[{index}]");
                value.get(index)
            }
            // Not in the document's own terms: the enclosing field is named instead.
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        match inner {
            Some(inner) => value = inner,
            None => break,
        }
    }
    Err(JsonInputError::Field(FieldError {
        path,
        value: value.clone(),
        reason: shorten_value(&without_position(error.inner())),
    }))
}

/// The message of `error` without the line and column that serde_json appends: the path
/// names the place.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(bare) => bare.to_string(),
        None => message,
    }
}

/// A JSON object read as `T`. A derived `Deserialize` also reads a struct from an array, its
/// items taken as the fields in order; what comes from outside names its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// A robot id written as a JSON number or as a string of digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RobotIdField(pub RobotId);

impl<'de> Deserialize<'de> for RobotIdField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RobotIdVisitor;

        impl RobotIdVisitor {
            fn robot_id<E: de::Error>(n: Option<u64>) -> Result<RobotIdField, E> {
                n.and_then(|n| RobotId::try_from(n).ok())
                    .map(RobotIdField)
                    .ok_or_else(|| E::custom(NotARobotId))
            }
        }

        impl Visitor<'_> for RobotIdVisitor {
            type Value = RobotIdField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a robot id ({ROBOT_ID_RANGE})")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RobotIdField, E> {
                Self::robot_id(Some(n))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RobotIdField, E> {
                Self::robot_id(u64::try_from(n).ok())
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RobotIdField, E> {
                Self::robot_id(None)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RobotIdField, E> {
                // Digits only: `u64`'s parser would also take a sign ("+7").
                let text = text.trim();
                let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
                Self::robot_id(digits.then(|| text.parse().ok()).flatten())
            }
        }

        deserializer.deserialize_any(RobotIdVisitor)
    }
}

/// An event name: a string, taken without the white space around it, that is not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNameField(pub String);

impl<'de> Deserialize<'de> for EventNameField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EventNameVisitor;

        impl Visitor<'_> for EventNameVisitor {
            type Value = EventNameField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-empty string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<EventNameField, E> {
                match text.trim() {
                    "" => Err(E::custom("must be a non-empty string")),
                    name => Ok(EventNameField(name.to_string())),
                }
            }
        }

        deserializer.deserialize_str(EventNameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        robot_id: Option<RobotIdField>,
        event_name: Option<EventNameField>,
        items: Option<Vec<u8>>,
    }

    fn field_error(json: &str) -> FieldError {
        match read_json_object::<Row>(json.as_bytes()) {
            Err(JsonInputError::Field(e)) => e,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn a_refused_field_is_named_by_its_path_with_its_value() {
        let e = field_error(r#"{"items": [1, 300]}"#);
        assert_eq!(
            (e.path.as_str(), e.value_text()),
            ("items[1]", "300".into())
        );
        assert!(
            e.reason.starts_with("invalid value: integer `300`"),
            "{e:?}"
        );
        let e = field_error(r#"{"robotId": "4294967296"}"#);
        assert_eq!(
            (e.path.as_str(), e.value_text(), e.reason.as_str()),
            (
                "robotId",
                "4294967296".into(),
                "not a robot id (a whole number from 0 to 4294967295)"
            )
        );
        for signed in ["+7", "-0", "7e0", ""] {
            let e = field_error(&format!(r#"{{"robotId": "{signed}"}}"#));
            assert_eq!(e.path, "robotId", "{signed:?}");
        }
        let e = field_error(r#"{"eventName": "  "}"#);
        assert_eq!(
            (e.path.as_str(), e.value, e.reason.as_str()),
            ("eventName", Value::from("  "), "must be a non-empty string")
        );
        let e = field_error("[7]");
        assert_eq!((e.path.as_str(), e.value_text()), ("", "[7]".into()));
        assert_eq!(e.reason, "invalid type: sequence, expected a JSON object");
    }

    #[test]
    fn text_that_is_not_one_json_value_is_not_json() {
        for text in ["{oops", r#"{"robotId": true, oops"#, "{} {}", ""] {
            assert!(
                matches!(
                    read_json_object::<Row>(text.as_bytes()),
                    Err(JsonInputError::NotJson(_))
                ),
                "{text}"
            );
        }
        let read = read_json_object::<Row>(br#" {"robotId": " 7 ", "eventName": " X "} "#).unwrap();
        assert_eq!(read.robot_id, Some(RobotIdField(RobotId::new(7))));
        assert_eq!(read.event_name, Some(EventNameField("X".into())));
        assert_eq!(read.items, None);
    }

    #[test]
    fn a_reason_quoting_a_long_value_is_shortened() {
        let long = format!(r#""{}""#, "x".repeat(10_000));
        let e = field_error(&long);
        assert!(e.reason.chars().count() <= 201, "{}", e.reason.len());
    }
}
