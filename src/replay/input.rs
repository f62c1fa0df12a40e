//! Reading historical events: CSV with a header, or JSON Lines, one row at a time.
//!
//! CSV columns (by header name): `occurred_at` (required), `event_name`, `id`, `robot_id`.
//! JSON Lines fields: `occurredAt` (required), `eventName`, `id`, `robotId`.
//!
//! `occurred_at` is RFC 3339 with an offset or `Z`, or a naive `YYYY-MM-DD HH:MM[:SS]` /
//! `YYYY-MM-DDTHH:MM[:SS]` read as local time in the rule's zone (compatible disambiguation).

use std::fmt;
use std::io::{BufRead, Read};

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
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
    if let Some(ts) = parse_fixed_layout(text.trim().as_bytes(), tz) {
        return Ok(ts);
    }
    parse_any_layout(text, tz)
}

/// The general path: jiff's parsers, for every layout the fast path does not take.
fn parse_any_layout(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
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

/// The layouts event exports use, read without the general parser because reading the
/// instant is most of the cost of a replay: `YYYY-MM-DD(T| )HH:MM[:SS[.fraction]]` followed by
/// `Z`, `±HH:MM` or nothing (local time in `tz`). Only the digits are read here; calendar and
/// zone arithmetic is jiff's. `None` sends the text to the general path (which also words the
/// error).
fn parse_fixed_layout(b: &[u8], tz: &TimeZone) -> Option<Timestamp> {
    parse_fixed_layout_with(b, tz, &mut DayStart::default())
}

/// The instant at which the last date seen began, at the last fixed offset seen: rows of one
/// export mostly share both, and so the calendar arithmetic is done once per day.
#[derive(Debug, Default)]
struct DayStart {
    date: [u8; 10],
    offset: i32,
    start: Option<Timestamp>,
}

fn parse_fixed_layout_with(b: &[u8], tz: &TimeZone, day: &mut DayStart) -> Option<Timestamp> {
    fn digits(b: &[u8]) -> Option<i32> {
        b.iter().try_fold(0i32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0'))
        })
    }
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
    {
        return None;
    }
    let (year, month, day_of_month) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute) = (digits(&b[11..13])?, digits(&b[14..16])?);
    let mut rest = &b[16..];
    let (mut second, mut nanos) = (0, 0);
    if let [b':', s1, s2, tail @ ..] = rest {
        second = digits(&[*s1, *s2])?;
        rest = tail;
        if let [b'.' | b',', tail @ ..] = rest {
            let len = tail.iter().take_while(|c| c.is_ascii_digit()).count();
            if len == 0 || len > 9 {
                return None;
            }
            nanos = digits(&tail[..len])? * 10i32.pow(9 - len as u32);
            rest = &tail[len..];
        }
    }
    let offset = match rest {
        [] => {
            let local = DateTime::new(
                year as i16,
                month as i8,
                day_of_month as i8,
                hour as i8,
                minute as i8,
                second as i8,
                nanos,
            )
            .ok()?;
            return tz.to_ambiguous_timestamp(local).compatible().ok();
        }
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let seconds = digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    // Leap seconds and out-of-range fields go to the general path.
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date: [u8; 10] = b[0..10].try_into().ok()?;
    let start = match day.start {
        Some(start) if day.date == date && day.offset == offset => start,
        _ => {
            let midnight =
                DateTime::new(year as i16, month as i8, day_of_month as i8, 0, 0, 0, 0).ok()?;
            let start = Offset::from_seconds(offset)
                .ok()?
                .to_timestamp(midnight)
                .ok()?;
            *day = DayStart {
                date,
                offset,
                start: Some(start),
            };
            start
        }
    };
    let since_midnight = SignedDuration::new(i64::from(hour * 3600 + minute * 60 + second), nanos);
    start.checked_add(since_midnight).ok()
}

fn parse_robot_id(text: &str) -> Result<RobotId, String> {
    text.trim()
        .parse::<RobotId>()
        .map_err(|_| "not a robot id (a whole number from 0 to 4294967295)".to_string())
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

/// Reads CSV rows and hands each to `on_row`; stops at the first error `on_error` returns.
pub struct CsvEvents<R: Read> {
    records: Records<R>,
    file: String,
    occurred_at: usize,
    event_name: Option<usize>,
    id: Option<usize>,
    robot_id: Option<usize>,
    record: csv::ByteRecord,
    day: DayStart,
    last_robot: (RobotId, Vec<u8>),
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
            records: Records::Direct(reader),
            file: file.to_string(),
            record: csv::ByteRecord::new(),
            day: DayStart::default(),
            last_robot: (0, b"0".to_vec()),
        })
    }

    /// Reads the next row; `Ok(None)` at the end of the file. On a bad row the error is
    /// returned and reading may go on with the next call.
    pub fn next_row(&mut self, tz: &TimeZone) -> Result<Option<EventRow<'_>>, InputError> {
        if !self.records.next_into(&mut self.record, &self.file)? {
            return Ok(None);
        }
        let record = &self.record;
        let field = |index: Option<usize>| {
            index
                .and_then(|i| record.get(i))
                .map(<[u8]>::trim_ascii)
                .filter(|v| !v.is_empty())
        };
        let invalid =
            |column: &'static str, value: &[u8], reason: String| InputError::InvalidValue {
                at: Position {
                    file: self.file.clone(),
                    line: record.position().map_or(0, |p| p.line()),
                },
                column,
                value: String::from_utf8_lossy(value).into_owned(),
                reason,
            };
        let raw_time = record.get(self.occurred_at).unwrap_or_default();
        let occurred_at = match parse_fixed_layout_with(raw_time.trim_ascii(), tz, &mut self.day) {
            Some(ts) => ts,
            None => {
                let text = std::str::from_utf8(raw_time)
                    .map_err(|_| invalid("occurred_at", raw_time, "not UTF-8 text".into()))?;
                parse_any_layout(text, tz)
                    .map_err(|reason| invalid("occurred_at", raw_time, reason))?
            }
        };
        let robot_id = match field(self.robot_id) {
            None => None,
            // Most rows name the robot last seen: no need to read the digits again.
            Some(v) if v == self.last_robot.1.as_slice() => Some(self.last_robot.0),
            Some(v) => Some(parse_robot_id_bytes(v).ok_or_else(|| {
                invalid(
                    "robot_id",
                    v,
                    "not a robot id (a whole number from 0 to 4294967295)".into(),
                )
            })?),
        };
        if let Some(id) = robot_id
            && id != self.last_robot.0
        {
            self.last_robot = (id, id.to_string().into_bytes());
        }
        let record = &self.record;
        let field = |index: Option<usize>| {
            index
                .and_then(|i| record.get(i))
                .map(<[u8]>::trim_ascii)
                .filter(|v| !v.is_empty())
        };
        Ok(Some(EventRow {
            occurred_at,
            event_name: field(self.event_name),
            id: field(self.id),
            robot_id,
        }))
    }
}

impl<R: Read + Send + 'static> CsvEvents<R> {
    /// Like [`CsvEvents::new`], with the CSV reading done ahead on a thread of its own, in
    /// batches, while the caller interprets the rows already read: on two cores a replay then
    /// takes little longer than reading the file.
    pub fn read_ahead(input: R, file: &str) -> Result<Self, InputError> {
        let mut events = Self::new(input, file)?;
        let Records::Direct(reader) = std::mem::replace(&mut events.records, Records::Done) else {
            unreachable!("a new reader reads directly");
        };
        events.records = Records::spawn(reader, file.to_string());
        Ok(events)
    }
}

/// How many records the read-ahead thread hands over at once.
const BATCH: usize = 1024;

/// Where CSV records come from: the reader itself, or a thread that reads ahead.
enum Records<R: Read> {
    Direct(csv::Reader<R>),
    Ahead {
        batches: std::sync::mpsc::Receiver<Result<Vec<csv::ByteRecord>, csv::Error>>,
        recycle: std::sync::mpsc::SyncSender<Vec<csv::ByteRecord>>,
        batch: Vec<csv::ByteRecord>,
        next: usize,
    },
    Done,
}

impl<R: Read> Records<R> {
    /// Puts the next record into `record`; `false` at the end.
    fn next_into(&mut self, record: &mut csv::ByteRecord, file: &str) -> Result<bool, InputError> {
        match self {
            Records::Direct(reader) => reader
                .read_byte_record(record)
                .map_err(|e| csv_error(file, e)),
            Records::Ahead {
                batches,
                recycle,
                batch,
                next,
            } => loop {
                if let Some(ahead) = batch.get_mut(*next) {
                    std::mem::swap(record, ahead);
                    *next += 1;
                    return Ok(true);
                }
                // Hand the spent batch back for reuse; the reader may have finished already.
                let _ = recycle.try_send(std::mem::take(batch));
                match batches.recv() {
                    Ok(Ok(full)) => {
                        *batch = full;
                        *next = 0;
                    }
                    Ok(Err(e)) => return Err(csv_error(file, e)),
                    Err(_) => return Ok(false),
                }
            },
            Records::Done => Ok(false),
        }
    }
}

impl<R: Read + Send + 'static> Records<R> {
    fn spawn(mut reader: csv::Reader<R>, file: String) -> Self {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel(4);
        let (recycle_tx, recycle_rx) = std::sync::mpsc::sync_channel::<Vec<csv::ByteRecord>>(8);
        std::thread::Builder::new()
            .name(format!("read {file}"))
            .spawn(move || {
                loop {
                    let mut batch = recycle_rx.try_recv().unwrap_or_default();
                    batch.resize_with(BATCH, csv::ByteRecord::new);
                    let mut filled = 0;
                    let mut failure = None;
                    while filled < BATCH {
                        match reader.read_byte_record(&mut batch[filled]) {
                            Ok(true) => filled += 1,
                            Ok(false) => break,
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                    batch.truncate(filled);
                    // A malformed row is the consumer's to report (and maybe skip); reading
                    // goes on after it, as the reader itself would. An I/O error ends it.
                    let last = match &failure {
                        Some(e) => e.is_io_error(),
                        None => filled < BATCH,
                    };
                    // The consumer hung up (it stopped at an error): nothing more to do.
                    if !batch.is_empty() && full_tx.send(Ok(batch)).is_err() {
                        return;
                    }
                    if let Some(e) = failure
                        && full_tx.send(Err(e)).is_err()
                    {
                        return;
                    }
                    if last {
                        return;
                    }
                }
            })
            .expect("a thread can be started");
        Records::Ahead {
            batches: full_rx,
            recycle: recycle_tx,
            batch: Vec::new(),
            next: 0,
        }
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
    use proptest::prelude::*;

    proptest! {
        /// The fast path reads every layout it takes exactly as jiff's general parsers do.
        #[test]
        fn fixed_layout_agrees_with_the_general_parsers(
            seconds in 0i64..4_102_444_800,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
            digits in 1usize..=9,
            separator in prop_oneof![Just('T'), Just(' '), Just('t')],
            with_seconds in any::<bool>(),
            suffix in prop_oneof![Just(String::new()), Just("Z".to_string()),
                (-14i32..=14, prop_oneof![Just(0), Just(30), Just(45)])
                    .prop_map(|(h, m)| format!("{}{:02}:{:02}", if h < 0 { '-' } else { '+' }, h.abs(), m))],
            zone in prop_oneof![Just("Europe/Amsterdam"), Just("America/New_York"), Just("Australia/Lord_Howe")],
        ) {
            let tz = TimeZone::get(zone).unwrap();
            let local = tz.to_datetime(Timestamp::from_second(seconds).unwrap());
            let mut text = local.strftime("%Y-%m-%d").to_string();
            text.push(separator);
            text.push_str(&local.strftime("%H:%M").to_string());
            if with_seconds {
                text.push_str(&local.strftime(":%S").to_string());
                if nanos > 0 {
                    let fraction = format!("{nanos:09}");
                    text.push('.');
                    text.push_str(&fraction[..digits]);
                }
            }
            text.push_str(&suffix);
            let fast = parse_fixed_layout(text.as_bytes(), &tz);
            let general = parse_any_layout(&text, &tz).ok();
            prop_assert!(fast.is_some(), "{text} not taken by the fast path");
            prop_assert_eq!(fast, general, "{}", text);
        }
    }

    proptest! {
        /// Rows that share a date (and an offset) reuse the start of that day; rows that do
        /// not, do not.
        #[test]
        fn the_day_start_kept_between_rows_changes_nothing(
            rows in proptest::collection::vec(
                (1_700_000_000i64..1_700_400_000, prop_oneof![Just("Z"), Just("+02:00"), Just("-05:30")]),
                1..40,
            ),
        ) {
            let utc = TimeZone::UTC;
            let mut day = DayStart::default();
            for (seconds, suffix) in rows {
                let text = format!("{}{suffix}", utc.to_datetime(Timestamp::from_second(seconds).unwrap()));
                let kept = parse_fixed_layout_with(text.as_bytes(), &utc, &mut day);
                prop_assert_eq!(kept, parse_any_layout(&text, &utc).ok(), "{}", text);
            }
        }
    }

    #[test]
    fn fixed_layout_leaves_odd_text_to_the_general_parser() {
        let tz = TimeZone::get("UTC").unwrap();
        for text in [
            "2025-03-30T09:10:00+0200",
            "2025-03-30T09:10:00.Z",
            "2025-03-30T09:10:00.1234567890Z",
            "2025-03-30T24:10:00Z",
            "2025-02-30T09:10:00Z",
            "2025-03-30T09:10:60Z",
            "2025-03-30",
            "20250330T091000Z",
            "2025-03-30T09:10:00Z[Europe/Amsterdam]",
        ] {
            assert_eq!(parse_fixed_layout(text.as_bytes(), &tz), None, "{text}");
        }
    }

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
        assert_eq!(first.id, Some(&b"a"[..]));
        assert_eq!(first.event_name, Some(&b"TOILET_ACTIVITY"[..]));
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
    fn csv_robot_ids_are_read_row_by_row() {
        let data = "occurred_at,robot_id\n2011-11-28T10:00:00Z,7\n2011-11-28T10:00:00Z,7\n\
                    2011-11-28T10:00:00Z,8\n2011-11-28T10:00:00Z, 7 \n2011-11-28T10:00:00Z,0\n\
                    2011-11-28T10:00:00Z,4294967296\n";
        let mut rows = CsvEvents::new(data.as_bytes(), "e.csv").unwrap();
        let tz = madrid();
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(rows.next_row(&tz).unwrap().unwrap().robot_id);
        }
        assert_eq!(ids, [Some(7), Some(7), Some(8), Some(7), Some(0)]);
        let err = rows.next_row(&tz).unwrap_err().to_string();
        assert!(
            err.starts_with("e.csv:7: column `robot_id`: \"4294967296\""),
            "{err}"
        );
    }

    #[test]
    fn reading_ahead_gives_the_same_rows_and_errors_as_reading_directly() {
        let mut data = String::from("occurred_at,id\n");
        for i in 0..3000 {
            if i % 700 == 5 {
                data.push_str("not a time,x\n");
            } else if i % 900 == 7 {
                data.push_str("2011-11-28T10:00:00Z,1,extra\n");
            } else {
                data.push_str(&format!("2011-11-28T10:{:02}:00Z,{i}\n", i % 60));
            }
        }
        let tz = madrid();
        let read = |mut rows: CsvEvents<std::io::Cursor<Vec<u8>>>| {
            let mut seen = Vec::new();
            loop {
                match rows.next_row(&tz) {
                    Ok(Some(row)) => seen.push(Ok((row.occurred_at, row.id.map(<[u8]>::to_vec)))),
                    Ok(None) => return seen,
                    Err(e) => seen.push(Err(e.to_string())),
                }
            }
        };
        let bytes = data.into_bytes();
        let direct = read(CsvEvents::new(std::io::Cursor::new(bytes.clone()), "e.csv").unwrap());
        let ahead = read(CsvEvents::read_ahead(std::io::Cursor::new(bytes), "e.csv").unwrap());
        assert_eq!(direct.len(), 3000);
        assert!(direct.iter().filter(|r| r.is_err()).count() >= 8);
        assert_eq!(direct, ahead);
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
