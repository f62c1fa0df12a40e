//! Reading historical events: CSV with a header, or JSON Lines, one row at a time.
//!
//! CSV columns (by header name): `occurred_at` (required), `event_name`, `id`, `robot_id`.
//! JSON Lines fields: `occurredAt` (required), `eventName`, `id`, `robotId`.
//!
//! `occurred_at` is RFC 3339 with an offset or `Z`, or a naive `YYYY-MM-DD HH:MM[:SS]` /
//! `YYYY-MM-DDTHH:MM[:SS]` read as local time in the rule's zone (compatible disambiguation).

use std::fmt;
use std::io::{BufRead, Read};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::domain::RobotId;

/// The two file formats `replay` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// One event as the file states it, before any filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow<'a> {
    /// The event instant.
    pub occurred_at: Timestamp,
    /// The event name, when the file gives one.
    pub event_name: Option<&'a str>,
    /// The event id, when the file gives one; rows with the same id are one event.
    pub id: Option<&'a str>,
    /// The robot, when the file gives one.
    pub robot_id: Option<RobotId>,
}

/// Where a bad value sits: the file, 1-based line, and column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file as named on the command line (`-` for standard input).
    pub file: String,
    /// 1-based line number.
    pub line: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A file that could not be read as events.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The CSV header lacks a required column.
    #[error("{file}:1: the header has no `{column}` column (found: {found})")]
    MissingColumn {
        /// The file.
        file: String,
        /// The missing column.
        column: &'static str,
        /// The columns the header has.
        found: String,
    },
    /// A row is not well-formed CSV or JSON.
    #[error("{at}: {message}")]
    Malformed {
        /// Where.
        at: Position,
        /// What the parser said.
        message: String,
    },
    /// A value in a row cannot be accepted.
    #[error("{at}: column `{column}`: {value:?}: {reason}")]
    InvalidValue {
        /// Where.
        at: Position,
        /// The column (or JSON field).
        column: &'static str,
        /// The value found.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

impl InputError {
    /// Whether the error concerns one row (and so may be skipped with `--skip-invalid`).
    pub fn is_row_error(&self) -> bool {
        matches!(
            self,
            InputError::Malformed { .. } | InputError::InvalidValue { .. }
        )
    }
}

/// Reads `occurred_at` text: RFC 3339 with offset, or naive local time in `tz`.
///
/// ```
/// use azi3_status_jobs::replay::parse_occurred_at;
/// use jiff::tz::TimeZone;
///
/// let madrid = TimeZone::get("Europe/Madrid").unwrap();
/// assert_eq!(parse_occurred_at("2011-11-28 10:21:24", &madrid).unwrap().to_string(), "2011-11-28T09:21:24Z");
/// assert_eq!(parse_occurred_at("2011-11-28T10:21", &madrid).unwrap().to_string(), "2011-11-28T09:21:00Z");
/// assert_eq!(parse_occurred_at("2011-11-28T10:21:24+01:00", &madrid).unwrap().to_string(), "2011-11-28T09:21:24Z");
/// assert!(parse_occurred_at("2011-11-28", &madrid).is_err());
/// ```
pub fn parse_occurred_at(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    const EXPECTED: &str = "not a date-time (write RFC 3339 such as 2025-03-30T09:10:00Z or \
                            2025-03-30T09:10:00+02:00, or local YYYY-MM-DD HH:MM[:SS])";
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    // A naive value must carry a time of day: `YYYY-MM-DD HH:MM` is 16 characters.
    if text.len() < 16 {
        return Err(EXPECTED.to_string());
    }
    let local = text.parse::<DateTime>().map_err(|_| EXPECTED.to_string())?;
    tz.to_ambiguous_timestamp(local)
        .compatible()
        .map_err(|e| format!("cannot place {local} in the time zone: {e}"))
}

fn parse_robot_id(text: &str) -> Result<RobotId, String> {
    text.trim()
        .parse::<RobotId>()
        .map_err(|_| "not a robot id (a whole number from 0 to 4294967295)".to_string())
}

/// Reads CSV rows and hands each to `on_row`; stops at the first error `on_error` returns.
pub struct CsvEvents<R: Read> {
    reader: csv::Reader<R>,
    file: String,
    occurred_at: usize,
    event_name: Option<usize>,
    id: Option<usize>,
    robot_id: Option<usize>,
    record: csv::ByteRecord,
}

impl<R: Read> CsvEvents<R> {
    /// Reads the header of `input` and finds the columns.
    pub fn new(input: R, file: &str) -> Result<Self, InputError> {
        let mut reader = csv_reader(input);
        let headers = reader
            .byte_headers()
            .map_err(|e| csv_error(file, e))?
            .clone();
        let find = |name: &str| {
            headers
                .iter()
                .position(|h| std::str::from_utf8(h).is_ok_and(|h| h.trim() == name))
        };
        let occurred_at = find("occurred_at").ok_or_else(|| InputError::MissingColumn {
            file: file.to_string(),
            column: "occurred_at",
            found: headers
                .iter()
                .map(|h| String::from_utf8_lossy(h).into_owned())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        Ok(CsvEvents {
            event_name: find("event_name"),
            id: find("id"),
            robot_id: find("robot_id"),
            occurred_at,
            reader,
            file: file.to_string(),
            record: csv::ByteRecord::new(),
        })
    }

    /// Reads the next row; `Ok(None)` at the end of the file. On a bad row the error is
    /// returned and reading may go on with the next call.
    pub fn next_row(&mut self, tz: &TimeZone) -> Result<Option<EventRow<'_>>, InputError> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => return Err(csv_error(&self.file, e)),
        }
        let line = self.record.position().map_or(0, |p| p.line());
        let at = || Position {
            file: self.file.clone(),
            line,
        };
        let text = |index: usize, column: &'static str| -> Result<&str, InputError> {
            let bytes = self.record.get(index).unwrap_or_default();
            std::str::from_utf8(bytes).map_err(|_| InputError::InvalidValue {
                at: at(),
                column,
                value: String::from_utf8_lossy(bytes).into_owned(),
                reason: "not UTF-8 text".to_string(),
            })
        };
        let optional =
            |index: Option<usize>, column: &'static str| -> Result<Option<&str>, InputError> {
                match index {
                    None => Ok(None),
                    Some(i) => text(i, column).map(|v| Some(v.trim()).filter(|v| !v.is_empty())),
                }
            };
        let raw_time = text(self.occurred_at, "occurred_at")?;
        let occurred_at =
            parse_occurred_at(raw_time, tz).map_err(|reason| InputError::InvalidValue {
                at: at(),
                column: "occurred_at",
                value: raw_time.to_string(),
                reason,
            })?;
        let robot_id = match optional(self.robot_id, "robot_id")? {
            None => None,
            Some(v) => Some(
                parse_robot_id(v).map_err(|reason| InputError::InvalidValue {
                    at: at(),
                    column: "robot_id",
                    value: v.to_string(),
                    reason,
                })?,
            ),
        };
        Ok(Some(EventRow {
            occurred_at,
            event_name: optional(self.event_name, "event_name")?,
            id: optional(self.id, "id")?,
            robot_id,
        }))
    }

    /// How many bytes have been read so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }
}

/// The CSV reader `replay` uses; the baseline of the replay benchmark uses it too.
pub fn csv_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(1 << 16)
        .from_reader(input)
}

fn csv_error(file: &str, e: csv::Error) -> InputError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(source) => InputError::Io {
            file: file.to_string(),
            source,
        },
        kind => InputError::Malformed {
            at: Position {
                file: file.to_string(),
                line,
            },
            message: csv_kind_message(kind),
        },
    }
}

fn csv_kind_message(kind: csv::ErrorKind) -> String {
    match kind {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields where the header has {expected_len}"),
        kind => format!("not valid CSV: {kind:?}"),
    }
}

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
            Some(serde_json::Value::String(s)) => Some(s.trim()).filter(|s| !s.is_empty()),
            Some(other) => return Err(invalid("eventName", other, "must be a string")),
        };
        Ok(Some(EventRow {
            occurred_at,
            event_name,
            id: Some(self.row.id_text.as_str()).filter(|s| !s.is_empty()),
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
    fn csv_reads_columns_by_name_in_any_order() {
        let data = "robot_id,id,occurred_at,event_name\n7,a,2011-11-28T10:00:00Z,TOILET_ACTIVITY\n,,2011-11-28 12:00,\n";
        let mut rows = CsvEvents::new(data.as_bytes(), "e.csv").unwrap();
        let tz = madrid();
        let first = rows.next_row(&tz).unwrap().unwrap();
        assert_eq!(first.robot_id, Some(7));
        assert_eq!(first.id, Some("a"));
        assert_eq!(first.event_name, Some("TOILET_ACTIVITY"));
        let second = rows.next_row(&tz).unwrap().unwrap();
        assert_eq!(second.occurred_at.to_string(), "2011-11-28T11:00:00Z");
        assert_eq!(
            (second.id, second.event_name, second.robot_id),
            (None, None, None)
        );
        assert!(rows.next_row(&tz).unwrap().is_none());
    }

    #[test]
    fn csv_errors_name_file_line_column_and_value() {
        let data = "occurred_at,robot_id\n2011-11-28T10:00:00Z,1\n2011-13-28T10:00:00Z,1\n2011-11-28T10:00:00Z,x\n";
        let mut rows = CsvEvents::new(data.as_bytes(), "e.csv").unwrap();
        let tz = madrid();
        rows.next_row(&tz).unwrap().unwrap();
        let err = rows.next_row(&tz).unwrap_err().to_string();
        assert!(
            err.starts_with("e.csv:3: column `occurred_at`: \"2011-13-28T10:00:00Z\""),
            "{err}"
        );
        let err = rows.next_row(&tz).unwrap_err().to_string();
        assert!(
            err.starts_with("e.csv:4: column `robot_id`: \"x\""),
            "{err}"
        );
    }

    #[test]
    fn csv_without_occurred_at_is_refused() {
        let err = CsvEvents::new("time,id\n".as_bytes(), "e.csv")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "e.csv:1: the header has no `occurred_at` column (found: time, id)"
        );
    }

    #[test]
    fn jsonl_accepts_numeric_and_string_ids() {
        let data = "{\"occurredAt\":\"2011-11-28T10:00:00Z\",\"id\":12,\"robotId\":\"3\"}\n\n{\"occurredAt\":\"2011-11-28T10:00:00Z\",\"eventName\":\"X\",\"id\":\"b\"}\n";
        let mut rows = JsonlEvents::new(data.as_bytes(), "e.jsonl");
        let tz = madrid();
        let first = rows.next_row(&tz).unwrap().unwrap();
        assert_eq!((first.id, first.robot_id), (Some("12"), Some(3)));
        let second = rows.next_row(&tz).unwrap().unwrap();
        assert_eq!((second.id, second.event_name), (Some("b"), Some("X")));
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
