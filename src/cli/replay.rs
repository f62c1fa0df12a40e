//! `azi3-status-jobs replay`: one rule over an events file.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::civil::Date;

use crate::domain::{DEFAULT_WATCHED_EVENT, RobotId, Rule, RuleError, RuleInput};
use crate::replay::{
    CollectOptions, CsvEvents, DateRange, EventSet, InputError, InputFormat, JsonlEvents,
    RuleReport, SettingError, collect_events, compare, dates_between, events_between,
    expected_rows, render_compare_html, render_html, replay, replay_sessions, setting_count,
    settings, write_compare_table, write_json, write_table,
};

/// The most dates replayed unless `--from` and `--to` both name them: ten years and then some.
/// One stray row dated decades off would otherwise make a report of hundreds of thousands of
/// days.
const MAX_UNNAMED_DAYS: i64 = 3660;

const AFTER_HELP: &str = "\
Examples:
  # How many alarms would 08:00–22:00 with a 2-hour gap have raised?
  azi3-status-jobs replay --events toilet.csv --timezone Europe/Madrid --start 08:00 --end 22:00

  # The same with a 90-minute gap, as JSON, for one week
  azi3-status-jobs replay --events toilet.csv --timezone Europe/Madrid --start 08:00 --end 22:00 \\
      --gap 90m --from 2011-11-28 --to 2011-12-04 --output json

  # What would 90 minutes, 2, 3 or 4 hours have done? One column per gap
  azi3-status-jobs replay --events toilet.csv --timezone Europe/Madrid --start 08:00 --end 22:00 \\
      --compare-gap 90m,2h,3h,4h

  # A page with a timeline per day
  azi3-status-jobs replay --events toilet.jsonl --timezone Europe/Amsterdam --start 07:30 --end 21:00 \\
      --output html > replay.html

Input: CSV with a header (occurred_at required; event_name, id, robot_id optional) or JSON Lines
(occurredAt required; eventName, id, robotId optional). occurred_at is RFC 3339 with an offset or Z
(2011-11-28T10:21:24Z), or local time in --timezone (2011-11-28 10:21:24). Rows of another event
name or robot are skipped; rows with the same id count once. Without both --from and --to, the
dates of the events may span at most 3660 days.

Comparing: --compare-gap, --compare-start and --compare-end each take a comma-separated list;
every combination is one setting (at most 24), evaluated over the same dates exactly as a replay
of that setting alone. The report gives per setting the alarms per day (mean, max), the days
without alarm, the longest silence of each day and a chart of alarms per day.

Exit codes: 0 done; 2 bad arguments, a bad row (file, line, column and value are named) or a date
span over 3660 days not named by --from and --to.";

/// Arguments of `replay`.
#[derive(Debug, Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct ReplayArgs {
    /// Events file, CSV or JSON Lines; `-` reads standard input. Example: `--events toilet.csv`
    #[arg(long, value_name = "FILE|-")]
    events: PathBuf,

    /// The resident's IANA time zone. Example: `--timezone Europe/Amsterdam`
    #[arg(long, value_name = "IANA")]
    timezone: String,

    /// Daily local start time A. Example: `--start 08:00`
    #[arg(long, value_name = "HH:MM[:SS]")]
    start: String,

    /// Daily local end time B; at or before A, the session ends the next day. Example: `--end 22:00`
    #[arg(long, value_name = "HH:MM[:SS]")]
    end: String,

    /// Longest silence tolerated, whole minutes, at least 1. Examples: `--gap 120m`, `--gap 2h`, `--gap 90m`
    #[arg(long, default_value = "120m")]
    gap: String,

    /// Robot whose events count; rows naming another robot are skipped. Example: `--robot-id 42`
    #[arg(long, value_name = "N", default_value_t = RobotId::new(1))]
    robot_id: RobotId,

    /// Event name that counts; rows naming another event are skipped. Example: `--event-name TOILET_ACTIVITY`
    #[arg(long, default_value = DEFAULT_WATCHED_EVENT)]
    event_name: String,

    /// Whether a last window cut short by the end time alarms. Example: `--partial-final-window alarm`
    #[arg(long, value_name = "ignore|alarm", default_value = "ignore")]
    partial_final_window: String,

    /// First local date to evaluate (default: the date of the first event). Example: `--from 2011-11-28`
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    from: Option<Date>,

    /// Last local date to evaluate, inclusive (default: the date of the last event). Example: `--to 2011-12-11`
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    to: Option<Date>,

    /// What to print on standard output. Example: `--output json`
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,

    /// Input format (default: jsonl for a `.jsonl` file, csv otherwise). Example: `--input-format jsonl`
    #[arg(long, value_enum)]
    input_format: Option<InputFormat>,

    /// Warn about bad rows and count them instead of stopping at the first one.
    #[arg(long)]
    skip_invalid: bool,

    /// Compare gaps: one column per gap, the other settings as given. Example: `--compare-gap 90m,2h,3h,4h`
    #[arg(long, value_name = "GAP,...", value_delimiter = ',')]
    compare_gap: Vec<String>,

    /// Compare start times A, as --compare-gap does gaps. Example: `--compare-start 07:00,08:00`
    #[arg(long, value_name = "HH:MM,...", value_delimiter = ',')]
    compare_start: Vec<String>,

    /// Compare end times B, as --compare-gap does gaps. Example: `--compare-end 20:00,22:00`
    #[arg(long, value_name = "HH:MM,...", value_delimiter = ',')]
    compare_end: Vec<String>,
}

/// The most settings one comparison shows: beyond that a table no longer reads.
const MAX_SETTINGS: usize = 24;

/// What `replay` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// The report as JSON.
    Json,
    /// A per-day summary for a terminal.
    Table,
    /// One self-contained HTML page with a timeline per day.
    Html,
}

fn parse_date(text: &str) -> Result<Date, String> {
    Date::strptime("%Y-%m-%d", text.trim())
        .map_err(|_| format!("{text:?} is not a date (write YYYY-MM-DD)"))
}

/// Runs `replay`; errors go to standard error, nothing partial to standard output. The JSON
/// and table reports are written as each session is evaluated.
pub fn run(args: ReplayArgs) -> ExitCode {
    let rule = match rule_from(&args) {
        Ok(rule) => rule,
        Err(e) => return fail(&format!("invalid --{}: {e}", e.field.replace('_', "-"))),
    };
    let settings = match settings_from(&args) {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
    };
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return fail(&format!("--from {from} is after --to {to}"));
    }
    let events = match read_events(&args, &rule) {
        Ok(events) => events,
        Err(e) => return fail(&e.to_string()),
    };
    if events.invalid > 0 {
        eprintln!(
            "warning: {} invalid rows skipped (of {} read)",
            events.invalid, events.rows
        );
    }
    let range = DateRange {
        from: args.from,
        to: args.to,
    };
    let dates = range.resolve(&rule, &events);
    if let Some((from, to)) = dates
        && (args.from.is_none() || args.to.is_none())
    {
        let days = dates_between(from, to);
        if days > MAX_UNNAMED_DAYS {
            return fail(&format!(
                "the dates to replay run from {from} to {to}, {days} days, more than \
                 {MAX_UNNAMED_DAYS}: name them with --from and --to (a stray row with a wrong \
                 date can cause this; --skip-invalid does not drop it)"
            ));
        }
    }
    let mut stdout = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let written = if settings.is_empty() {
        write_report(&mut stdout, &args, &rule, &events, range, dates)
    } else {
        let report = compare(&settings, &events, range);
        match args.output {
            Output::Json => serde_json::to_writer_pretty(&mut stdout, &report)
                .map_err(io::Error::from)
                .and_then(|()| stdout.write_all(b"\n")),
            Output::Table => write_compare_table(&mut stdout, &report),
            Output::Html => stdout.write_all(render_compare_html(&report).as_bytes()),
        }
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the report of one rule.
fn write_report(
    stdout: &mut impl Write,
    args: &ReplayArgs,
    rule: &Rule,
    events: &EventSet,
    range: DateRange,
    dates: Option<(Date, Date)>,
) -> io::Result<()> {
    match args.output {
        Output::Json | Output::Table => {
            // Written session by session: memory stays flat however many dates there are.
            let (sessions, count) = match dates {
                Some((from, to)) => (
                    Some(replay_sessions(rule, events, from, to, false)),
                    events_between(rule, events, from, to),
                ),
                None => (None, 0),
            };
            let sessions = sessions.into_iter().flatten();
            let report_rule = RuleReport::from(rule);
            if args.output == Output::Json {
                write_json(stdout, &report_rule, sessions, count).map(drop)
            } else {
                write_table(stdout, &report_rule, &rule.timezone, sessions, count).map(drop)
            }
        }
        Output::Html => {
            let report = replay(rule, events, range, true);
            stdout.write_all(render_html(&report, &rule.timezone).as_bytes())
        }
    }
}

/// The settings to compare: every combination of the `--compare-*` lists, each missing list
/// standing for the single value of its plain option; empty when nothing is compared. An
/// invalid value is named with the option it came from.
fn settings_from(args: &ReplayArgs) -> Result<Vec<Rule>, String> {
    if args.compare_gap.is_empty() && args.compare_start.is_empty() && args.compare_end.is_empty() {
        return Ok(Vec::new());
    }
    let (starts, ends, gaps) = (
        args.compare_start.len().max(1),
        args.compare_end.len().max(1),
        args.compare_gap.len().max(1),
    );
    let count = setting_count(starts, ends, gaps);
    if count > MAX_SETTINGS {
        return Err(format!(
            "--compare-start, --compare-end and --compare-gap make {count} settings \
             ({starts} × {ends} × {gaps}); at most {MAX_SETTINGS} are compared at once"
        ));
    }
    settings(
        &rule_input(args),
        &args.compare_start,
        &args.compare_end,
        &args.compare_gap,
    )
    .map_err(|SettingError { listed, error }| match listed {
        Some((list, value)) if !value.is_empty() => {
            format!("invalid --compare-{list} value {value:?}: {error}")
        }
        Some((list, _)) => format!("invalid --compare-{list}: {error}"),
        None => format!("invalid --{}: {error}", error.field.replace('_', "-")),
    })
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn rule_input(args: &ReplayArgs) -> RuleInput {
    RuleInput {
        robot_id: args.robot_id,
        timezone: args.timezone.clone(),
        start: args.start.clone(),
        end: args.end.clone(),
        gap: args.gap.clone(),
        watched_event: args.event_name.clone(),
        partial_final_window: args.partial_final_window.clone(),
        ..RuleInput::default()
    }
}

fn rule_from(args: &ReplayArgs) -> Result<Rule, RuleError> {
    rule_input(args).validate().map_err(|mut e| {
        if e.field == "watched_event" {
            e.field = "event_name";
        }
        e
    })
}

fn read_events(args: &ReplayArgs, rule: &Rule) -> Result<EventSet, InputError> {
    let is_stdin = args.events == Path::new("-");
    let name = args.events.display().to_string();
    let format = args.input_format.unwrap_or_else(|| {
        match args.events.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("jsonl") => InputFormat::Jsonl,
            _ => InputFormat::Csv,
        }
    });
    let mut options = CollectOptions {
        skip_invalid: args.skip_invalid,
        expected_rows: 0,
    };
    let (input, progress): (Box<dyn Read + Send>, Option<ProgressBar>) = if is_stdin {
        (Box::new(io::stdin()), None)
    } else {
        let file = File::open(&args.events).map_err(|source| InputError::Io {
            file: name.clone(),
            source,
        })?;
        if let Ok(meta) = file.metadata() {
            options.expected_rows = expected_rows(meta.len());
        }
        let progress = progress_bar(&file);
        let input: Box<dyn Read + Send> = match &progress {
            Some(bar) => Box::new(bar.wrap_read(file)),
            None => Box::new(file),
        };
        (input, progress)
    };
    let warn = |e: &InputError| {
        let line = format!("warning: skipped: {e}");
        match &progress {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    };
    let result = match format {
        InputFormat::Csv => collect_events(
            &mut CsvEvents::read_ahead(input, &name)?,
            rule,
            options,
            warn,
        ),
        InputFormat::Jsonl => collect_events(
            &mut JsonlEvents::new(BufReader::with_capacity(1 << 16, input), &name),
            rule,
            options,
            warn,
        ),
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    result
}

/// A byte-based progress bar on standard error, only when it is a terminal.
fn progress_bar(file: &File) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let len = file.metadata().ok()?.len();
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .ok()?,
    );
    Some(bar)
}
