//! JSON Lines events: one object per line.

use std::fmt;
use std::io::BufRead;

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::timestamp::parse_occurred_at;
use super::{EventRow, InputError, Position};
use crate::json_input::{JsonInputError, RobotIdField, read_json_object};

/// Reads JSON Lines: one object per line, blank lines skipped.
pub struct JsonlEvents<R: BufRead> {
    input: R,
    file: String,
    line: u64,
    buffer: String,
    row: JsonRow,
}

/// One line. `occurredAt` is read as text: it is read as an instant in the rule's zone.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonRow {
    occurred_at: Option<String>,
    event_name: Option<String>,
    id: Option<IdText>,
    robot_id: Option<RobotIdField>,
}

/// An event id given as a string (taken trimmed) or a number (taken as written in JSON).
#[derive(Debug)]
struct IdText(String);

impl<'de> Deserialize<'de> for IdText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdTextVisitor;

        impl Visitor<'_> for IdTextVisitor {
            type Value = IdText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<IdText, E> {
                Ok(IdText(text.trim().to_string()))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<IdText, E> {
                Ok(IdText(n.to_string()))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<IdText, E> {
                Ok(IdText(n.to_string()))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<IdText, E> {
                // As JSON writes it (`1e20`, not Rust's `100000000000000000000`).
                Ok(IdText(serde_json::Value::from(n).to_string()))
            }
        }

        deserializer.deserialize_any(IdTextVisitor)
    }
}

impl<R: BufRead> JsonlEvents<R> {
    /// Reads JSON Lines from `input`.
    pub fn new(input: R, file: &str) -> Self {
        JsonlEvents {
            input,
            file: file.to_string(),
            line: 0,
            buffer: String::new(),
            row: JsonRow::default(),
        }
    }

    /// Reads the next row; `Ok(None)` at the end of the input.
    pub fn next_row(&mut self, tz: &TimeZone) -> Result<Option<EventRow<'_>>, InputError> {
        loop {
            self.buffer.clear();
            let n = self
                .input
                .read_line(&mut self.buffer)
                .map_err(|source| InputError::Io {
                    file: self.file.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if !self.buffer.trim().is_empty() {
                break;
            }
        }
        let at = Position {
            file: self.file.clone(),
            line: self.line,
        };
        self.row = read_json_object(self.buffer.as_bytes()).map_err(|error| match error {
            JsonInputError::NotJson(e) => InputError::Malformed {
                at: at.clone(),
                message: format!("not a JSON object: {e}"),
            },
            JsonInputError::Field(e) if e.path.is_empty() => InputError::Malformed {
                at: at.clone(),
                message: e.reason,
            },
            JsonInputError::Field(e) => InputError::InvalidValue {
                at: at.clone(),
                value: e.value_text(),
                column: e.path,
                reason: e.reason,
            },
        })?;
        let occurred_at = match &self.row.occurred_at {
            Some(text) => {
                parse_occurred_at(text, tz).map_err(|reason| InputError::InvalidValue {
                    at,
                    column: "occurredAt".into(),
                    value: text.clone(),
                    reason,
                })?
            }
            None => {
                return Err(InputError::InvalidValue {
                    at,
                    column: "occurredAt".into(),
                    value: String::new(),
                    reason: "is missing".to_string(),
                });
            }
        };
        let row = &self.row;
        Ok(Some(EventRow {
            occurred_at,
            event_name: row
                .event_name
                .as_deref()
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::as_bytes),
            id: row
                .id
                .as_ref()
                .map(|id| id.0.as_bytes())
                .filter(|id| !id.is_empty()),
            robot_id: row.robot_id.map(|id| id.0),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RobotId;

    fn madrid() -> TimeZone {
        TimeZone::get("Europe/Madrid").unwrap()
    }

    #[test]
    fn jsonl_accepts_numeric_and_string_ids() {
        let data = "{\"occurredAt\":\"2011-11-28T10:00:00Z\",\"id\":12,\"robotId\":\"3\"}\n\n{\"occurredAt\":\"2011-11-28T10:00:00Z\",\"eventName\":\"X\",\"id\":\"b\"}\n";
        let mut rows = JsonlEvents::new(data.as_bytes(), "e.jsonl");
        let tz = madrid();
        let first = rows.next_row(&tz).unwrap().unwrap();
        assert_eq!(
            (first.id, first.robot_id),
            (Some(&b"12"[..]), Some(RobotId::new(3)))
        );
        let second = rows.next_row(&tz).unwrap().unwrap();
        assert_eq!(
            (second.id, second.event_name),
            (Some(&b"b"[..]), Some(&b"X"[..]))
        );
        assert!(rows.next_row(&tz).unwrap().is_none());
    }

    #[test]
    fn jsonl_errors_name_the_line_and_field() {
        let data = "{\"occurredAt\":\"yesterday\"}\n";
        let mut rows = JsonlEvents::new(data.as_bytes(), "e.jsonl");
        let err = rows.next_row(&madrid()).unwrap_err().to_string();
        assert!(
            err.starts_with("e.jsonl:1: column `occurredAt`: \"yesterday\""),
            "{err}"
        );
        let mut rows = JsonlEvents::new("{not json\n".as_bytes(), "e.jsonl");
        let err = rows.next_row(&madrid()).unwrap_err().to_string();
        assert!(err.starts_with("e.jsonl:1: not a JSON object"), "{err}");
    }
}
