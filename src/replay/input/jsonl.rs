//! JSON Lines events: one object per line.

use std::io::BufRead;

use jiff::tz::TimeZone;
use serde::Deserialize;

use super::timestamp::parse_occurred_at;
use super::{EventRow, InputError, Position, parse_robot_id};
use crate::domain::RobotId;

/// Reads JSON Lines: one object per line, blank lines skipped.
pub struct JsonlEvents<R: BufRead> {
    input: R,
    file: String,
    line: u64,
    buffer: String,
    row: JsonRow,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonRow {
    occurred_at: Option<serde_json::Value>,
    event_name: Option<serde_json::Value>,
    id: Option<serde_json::Value>,
    robot_id: Option<serde_json::Value>,
    #[serde(skip)]
    id_text: String,
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
        self.row = serde_json::from_str(self.buffer.trim()).map_err(|e| InputError::Malformed {
            at: at.clone(),
            message: format!("not a JSON object: {e}"),
        })?;
        let invalid = |column: &'static str, value: &serde_json::Value, reason: &str| {
            InputError::InvalidValue {
                at: at.clone(),
                column,
                value: value.to_string(),
                reason: reason.to_string(),
            }
        };
        let occurred_at = match &self.row.occurred_at {
            Some(serde_json::Value::String(s)) => {
                parse_occurred_at(s, tz).map_err(|reason| InputError::InvalidValue {
                    at: at.clone(),
                    column: "occurredAt",
                    value: s.clone(),
                    reason,
                })?
            }
            Some(other) => return Err(invalid("occurredAt", other, "must be a string")),
            None => {
                return Err(InputError::InvalidValue {
                    at,
                    column: "occurredAt",
                    value: String::new(),
                    reason: "is missing".to_string(),
                });
            }
        };
        let robot_id = match &self.row.robot_id {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => Some(
                n.as_u64()
                    .and_then(|n| RobotId::try_from(n).ok())
                    .ok_or_else(|| {
                        invalid(
                            "robotId",
                            &serde_json::Value::Number(n.clone()),
                            "not a robot id",
                        )
                    })?,
            ),
            Some(serde_json::Value::String(s)) => Some(parse_robot_id(s).map_err(|reason| {
                invalid("robotId", &serde_json::Value::String(s.clone()), &reason)
            })?),
            Some(other) => return Err(invalid("robotId", other, "must be a number")),
        };
        self.row.id_text = match &self.row.id {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.trim().to_string(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) => return Err(invalid("id", other, "must be a string or a number")),
        };
        let event_name = match &self.row.event_name {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => {
                Some(s.trim().as_bytes()).filter(|s| !s.is_empty())
            }
            Some(other) => return Err(invalid("eventName", other, "must be a string")),
        };
        Ok(Some(EventRow {
            occurred_at,
            event_name,
            id: Some(self.row.id_text.as_bytes()).filter(|s| !s.is_empty()),
            robot_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn madrid() -> TimeZone {
        TimeZone::get("Europe/Madrid").unwrap()
    }

    #[test]
    fn jsonl_accepts_numeric_and_string_ids() {
        let data = "{\"occurredAt\":\"2011-11-28T10:00:00Z\",\"id\":12,\"robotId\":\"3\"}\n\n{\"occurredAt\":\"2011-11-28T10:00:00Z\",\"eventName\":\"X\",\"id\":\"b\"}\n";
        let mut rows = JsonlEvents::new(data.as_bytes(), "e.jsonl");
        let tz = madrid();
        let first = rows.next_row(&tz).unwrap().unwrap();
        assert_eq!((first.id, first.robot_id), (Some(&b"12"[..]), Some(3)));
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
