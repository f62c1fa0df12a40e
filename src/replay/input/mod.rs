//! Reading historical events: CSV with a header, or JSON Lines, one row at a time.
//!
//! CSV columns (by header name): `occurred_at` (required), `event_name`, `id`, `robot_id`.
//! JSON Lines fields: `occurredAt` (required), `eventName`, `id`, `robotId`.
//!
//! `occurred_at` is RFC 3339 with an offset or `Z`, or a naive `YYYY-MM-DD HH:MM[:SS]` /
//! `YYYY-MM-DDTHH:MM[:SS]` read as local time in the rule's zone (compatible disambiguation).

mod csv;
mod jsonl;
mod timestamp;

use std::fmt;

use jiff::Timestamp;

use crate::domain::RobotId;

pub use self::csv::{CsvEvents, csv_reader};
pub use jsonl::JsonlEvents;
pub use timestamp::parse_occurred_at;

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
    pub event_name: Option<&'a [u8]>,
    /// The event id, when the file gives one; rows with the same id are one event.
    pub id: Option<&'a [u8]>,
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
        /// The column (or the JSON field's path).
        column: String,
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

fn parse_robot_id_bytes(bytes: &[u8]) -> Option<RobotId> {
    if bytes.is_empty() || bytes.len() > 10 {
        return None;
    }
    let n = bytes.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
    })?;
    RobotId::try_from(n).ok()
}
