//! `replay`: evaluates one rule over historical events, exactly as the live service decides.
//!
//! Reading is streamed: a row is parsed, filtered and reduced to its instant before the next is
//! read, so memory grows with the number of kept events (an instant each, plus the id of events
//! that carry one), never with the size of the file.

mod compare;
pub mod day_svg;
mod html;
mod input;
pub(crate) mod page;
mod report;
mod seen_ids;
mod table;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::domain::{Rule, Session, Step, evaluate_steps};

pub use compare::{
    Comparison, DayAlarms, SettingError, SettingSummary, compare, label, longest_silence,
    render_compare_html, render_compare_html_with, setting_count, settings, write_compare_table,
};
pub use html::render_html;
pub use input::{
    CsvEvents, EventRow, InputError, InputFormat, JsonlEvents, Position, csv_reader,
    parse_occurred_at,
};
pub use report::{
    AlarmReport, ReplayReport, RuleReport, SessionReport, Timeline, Totals, write_json,
};
pub use seen_ids::SeenIds;
pub use table::{render_table, write_table};

/// A reader of event rows, CSV or JSON Lines.
pub trait EventSource {
    /// The next row, `Ok(None)` at the end; after a row error, reading may go on.
    fn next_row(&mut self, tz: &jiff::tz::TimeZone) -> Result<Option<EventRow<'_>>, InputError>;
}

impl<R: std::io::Read> EventSource for CsvEvents<R> {
    fn next_row(&mut self, tz: &jiff::tz::TimeZone) -> Result<Option<EventRow<'_>>, InputError> {
        CsvEvents::next_row(self, tz)
    }
}

impl<R: std::io::BufRead> EventSource for JsonlEvents<R> {
    fn next_row(&mut self, tz: &jiff::tz::TimeZone) -> Result<Option<EventRow<'_>>, InputError> {
        JsonlEvents::next_row(self, tz)
    }
}

/// The distinct events of the rule found in a file, in time order, with counts of the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSet {
    /// Instants of the kept events, ascending.
    pub instants: Vec<Timestamp>,
    /// Rows read.
    pub rows: u64,
    /// Rows of another event name or robot.
    pub other: u64,
    /// Rows whose id had been seen before.
    pub duplicates: u64,
    /// Rows refused as invalid (only with `skip_invalid`).
    pub invalid: u64,
}

/// How [`collect_events`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectOptions {
    /// Count bad rows and go on instead of stopping at the first.
    pub skip_invalid: bool,
    /// An upper bound on the number of rows, when known (see [`expected_rows`]); memory for
    /// that many is reserved at once.
    pub expected_rows: usize,
}

/// An upper bound on the rows of an events file of `bytes` bytes, for
/// [`CollectOptions::expected_rows`]: no row is shorter than 16 bytes
/// (`YYYY-MM-DD HH:MM` and a line end). Capped at 64 million rows.
pub fn expected_rows(bytes: u64) -> usize {
    usize::try_from(bytes / 16)
        .unwrap_or(usize::MAX)
        .min(64 << 20)
}

/// Reads every row of `source`, keeping the rule's events once each.
///
/// Rows of another event name or robot are passed over; a row whose `id` was seen before is a
/// duplicate (the first wins); rows without an `id` are all distinct. A bad row stops the read
/// with its error unless `options.skip_invalid`, in which case `on_invalid` is told and it is
/// counted.
pub fn collect_events(
    source: &mut impl EventSource,
    rule: &Rule,
    options: CollectOptions,
    mut on_invalid: impl FnMut(&InputError),
) -> Result<EventSet, InputError> {
    let mut set = EventSet::default();
    let mut seen_ids = SeenIds::default();
    // Reserving up front spares the copies and page faults of growing one row at a time;
    // pages that are never written cost nothing.
    set.instants.reserve(options.expected_rows);
    seen_ids.reserve(options.expected_rows);
    let skip_invalid = options.skip_invalid;
    let mut sorted = true;
    loop {
        let row = match source.next_row(&rule.timezone) {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) if skip_invalid && e.is_row_error() => {
                set.rows += 1;
                set.invalid += 1;
                on_invalid(&e);
                continue;
            }
            Err(e) => return Err(e),
        };
        set.rows += 1;
        let other_name = row
            .event_name
            .is_some_and(|n| n != rule.watched_event.as_bytes());
        let other_robot = row.robot_id.is_some_and(|r| r != rule.robot_id);
        if other_name || other_robot {
            set.other += 1;
            continue;
        }
        if let Some(id) = row.id
            && !seen_ids.insert(id)
        {
            set.duplicates += 1;
            continue;
        }
        sorted &= set
            .instants
            .last()
            .is_none_or(|last| *last <= row.occurred_at);
        set.instants.push(row.occurred_at);
    }
    // Exports are usually in time order already; then there is nothing to sort.
    if !sorted {
        set.instants.sort_unstable();
    }
    Ok(set)
}

/// Which local dates to evaluate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    /// First date; by default the local date of the first event.
    pub from: Option<Date>,
    /// Last date, inclusive; by default the local date of the last event.
    pub to: Option<Date>,
}

impl DateRange {
    /// The first and last date to evaluate: as given, or the local dates of the first and last
    /// event; `None` when a date is neither given nor found (no events).
    pub fn resolve(self, rule: &Rule, events: &EventSet) -> Option<(Date, Date)> {
        let local_date = |t: &Timestamp| rule.timezone.to_datetime(*t).date();
        let from = self
            .from
            .or_else(|| events.instants.first().map(local_date))?;
        let to = self.to.or_else(|| events.instants.last().map(local_date))?;
        Some((from, to))
    }
}

/// The number of local dates from `from` to `to`, both included (0 when `to` is before `from`).
pub fn dates_between(from: Date, to: Date) -> i64 {
    if to < from {
        return 0;
    }
    from.until((jiff::Unit::Day, to))
        .map_or(i64::MAX, |span| i64::from(span.get_days()) + 1)
}

/// How many of `events` have a local date in `[from, to]`: from the first instant of `from`
/// to the first instant of the day after `to`.
pub fn events_between(rule: &Rule, events: &EventSet, from: Date, to: Date) -> usize {
    let instants = &events.instants;
    let day_start = |d: Date| {
        let zoned = d.to_zoned_datetime(rule.timezone.clone()).ok()?;
        zoned.start_of_day().ok()
    };
    let lo = day_start(from).map_or(0, |s| instants.partition_point(|t| *t < s.timestamp()));
    let hi = to
        .tomorrow()
        .ok()
        .and_then(day_start)
        .map_or(instants.len(), |e| {
            instants.partition_point(|t| *t < e.timestamp())
        });
    hi.saturating_sub(lo)
}

/// Evaluates `rule` on each session from `from` to `to` over `events`, one session at a time,
/// so that a report can be written as it goes. With `timeline`, each session report also
/// carries its windows and events (for the HTML page).
pub fn replay_sessions<'a>(
    rule: &'a Rule,
    events: &'a EventSet,
    from: Date,
    to: Date,
    timeline: bool,
) -> impl Iterator<Item = SessionReport> + 'a {
    let instants = &events.instants;
    Session::between(rule, from, to).map(move |session| {
        let lo = instants.partition_point(|t| *t < session.start);
        let hi = instants.partition_point(|t| *t <= session.end);
        let in_session = &instants[lo..hi];
        let mut steps = Vec::new();
        let outcome = evaluate_steps(rule, session, in_session, |step: Step| {
            if timeline {
                steps.push(step);
            }
        });
        let timeline = timeline.then(|| Timeline {
            events: in_session.to_vec(),
            steps,
        });
        SessionReport::from_outcome(&outcome, timeline)
    })
}

/// Evaluates `rule` on every session of `range` over `events`, the whole report at once. With
/// `timeline`, each session report also carries its windows and events (for the HTML page).
pub fn replay(rule: &Rule, events: &EventSet, range: DateRange, timeline: bool) -> ReplayReport {
    let mut report = ReplayReport::new(rule);
    let Some((from, to)) = range.resolve(rule, events) else {
        return report;
    };
    report.totals.events = events_between(rule, events, from, to);
    for session in replay_sessions(rule, events, from, to, timeline) {
        report.push(session);
    }
    report
}
