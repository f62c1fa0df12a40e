//! CSV events with a header, read ahead on a second thread in batches.

use std::io::Read;

use jiff::tz::TimeZone;

use super::timestamp::{DayStart, parse_any_layout, parse_fixed_layout_with};
use super::{EventRow, InputError, Position, parse_robot_id_bytes};
use crate::domain::RobotId;

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
            last_robot: (RobotId::new(0), b"0".to_vec()),
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
                column: column.to_string(),
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
        assert_eq!(first.robot_id, Some(RobotId::new(7)));
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
        assert_eq!(ids, [7, 7, 8, 7, 0].map(|n| Some(RobotId::new(n))));
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
}
