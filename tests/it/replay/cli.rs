//! `azi3-status-jobs replay` run as a user runs it: the real binary, files on disk.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn replay(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_azi3-status-jobs"))
        .arg("replay")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().unwrap();
    // A run that refuses its arguments exits without reading its input.
    match input.write_all(stdin.unwrap_or("").as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        result => result.unwrap(),
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

const AMSTERDAM_8_TO_20: [&str; 6] = [
    "--timezone",
    "Europe/Amsterdam",
    "--start",
    "08:00",
    "--end",
    "20:00",
];

#[test]
fn worked_example_prints_exactly_its_four_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let events = file(
        &dir,
        "events.csv",
        "occurred_at,event_name,id\n\
         2025-03-30 09:10,TOILET_ACTIVITY,a\n\
         2025-03-30 09:40,TOILET_ACTIVITY,b\n\
         2025-03-30 13:00,TOILET_ACTIVITY,c\n",
    );
    let mut args = vec!["--events", &events, "--output", "json", "--robot-id", "7"];
    args.extend(AMSTERDAM_8_TO_20);
    let out = replay(&args, None);
    let expected = json!({
        "rule": {"robotId": 7, "timezone": "Europe/Amsterdam", "start": "08:00:00", "end": "20:00:00",
                 "gapMinutes": 120, "partialFinalWindow": "ignore", "eventName": "TOILET_ACTIVITY"},
        "sessions": [{
            "robotId": 7, "date": "2025-03-30",
            "start": "2025-03-30T06:00:00Z", "end": "2025-03-30T18:00:00Z",
            "result": "ALARM_RAISED", "events": 3,
            "alarms": [
                {"windowStart": "2025-03-30T07:40:00Z", "windowEnd": "2025-03-30T09:40:00Z",
                 "referenceId": "nta-7-2025-03-30-1743320400"},
                {"windowStart": "2025-03-30T11:00:00Z", "windowEnd": "2025-03-30T13:00:00Z",
                 "referenceId": "nta-7-2025-03-30-1743332400"},
                {"windowStart": "2025-03-30T13:00:00Z", "windowEnd": "2025-03-30T15:00:00Z",
                 "referenceId": "nta-7-2025-03-30-1743339600"},
                {"windowStart": "2025-03-30T15:00:00Z", "windowEnd": "2025-03-30T17:00:00Z",
                 "referenceId": "nta-7-2025-03-30-1743346800"}
            ]
        }],
        "totals": {"sessions": 1, "alarms": 4, "events": 3}
    });
    assert_eq!(stdout_json(&out), expected);
}

#[test]
fn partial_final_window_alarm_adds_the_short_last_window() {
    let events = "occurred_at\n2025-03-30T07:10:00Z\n2025-03-30T07:40:00Z\n2025-03-30T11:00:00Z\n";
    let mut args = vec![
        "--events",
        "-",
        "--output",
        "json",
        "--partial-final-window",
        "alarm",
    ];
    args.extend(AMSTERDAM_8_TO_20);
    let report = stdout_json(&replay(&args, Some(events)));
    let alarms = report["sessions"][0]["alarms"].as_array().unwrap();
    assert_eq!(alarms.len(), 5);
    assert_eq!(alarms[4]["windowStart"], "2025-03-30T17:00:00Z");
    assert_eq!(alarms[4]["windowEnd"], "2025-03-30T18:00:00Z");
}

#[test]
fn jsonl_duplicates_other_robots_and_other_events_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let events = file(
        &dir,
        "events.jsonl",
        r#"{"occurredAt":"2025-03-30T07:10:00Z","id":"a","robotId":1}
{"occurredAt":"2025-03-30T09:00:00Z","id":"a","robotId":1}
{"occurredAt":"2025-03-30T08:00:00Z","id":"x","robotId":2}
{"occurredAt":"2025-03-30T08:30:00Z","eventName":"BATHROOM_ACTIVITY"}
{"occurredAt":"2025-03-30T08:45:00Z"}
{"occurredAt":"2025-03-30T08:45:00Z"}
"#,
    );
    let mut args = vec!["--events", &events, "--output", "json"];
    args.extend(AMSTERDAM_8_TO_20);
    let report = stdout_json(&replay(&args, None));
    // a (07:10, the first of the two rows with id a) and the two id-less rows at 08:45.
    assert_eq!(report["totals"]["events"], 3);
    assert_eq!(report["sessions"][0]["events"], 3);
    let first = &report["sessions"][0]["alarms"][0];
    assert_eq!(first["windowStart"], "2025-03-30T08:45:00Z");
}

#[test]
fn a_malformed_row_names_file_line_column_and_value_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let events = file(
        &dir,
        "bad.csv",
        "occurred_at,id\n2025-03-30T07:10:00Z,a\n2025-03-30T25:10:00Z,b\n",
    );
    let mut args = vec!["--events", &events, "--output", "json"];
    args.extend(AMSTERDAM_8_TO_20);
    let out = replay(&args, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{events}:3: column `occurred_at`: \"2025-03-30T25:10:00Z\""
        )),
        "{stderr}"
    );
}

#[test]
fn skip_invalid_turns_bad_rows_into_a_warning_count() {
    let events =
        "occurred_at,robot_id\n2025-03-30T07:10:00Z,1\nnot a time,1\n2025-03-30T08:00:00Z,one\n";
    let mut args = vec!["--events", "-", "--output", "json", "--skip-invalid"];
    args.extend(AMSTERDAM_8_TO_20);
    let out = replay(&args, Some(events));
    let report = stdout_json(&out);
    assert_eq!(report["totals"]["events"], 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 invalid rows skipped (of 3 read)"),
        "{stderr}"
    );
    assert!(stderr.contains("-:3: column `occurred_at`"), "{stderr}");
    assert!(
        stderr.contains("-:4: column `robot_id`: \"one\""),
        "{stderr}"
    );
}

#[test]
fn a_bad_rule_flag_names_the_flag_and_value() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--timezone",
                "Europe/Atlantis",
                "--start",
                "08:00",
                "--end",
                "20:00",
            ],
            "invalid --timezone: timezone = \"Europe/Atlantis\"",
        ),
        (
            &["--timezone", "UTC", "--start", "8h", "--end", "20:00"],
            "invalid --start: start = \"8h\"",
        ),
        (
            &[
                "--timezone",
                "UTC",
                "--start",
                "08:00",
                "--end",
                "20:00",
                "--gap",
                "30s",
            ],
            "invalid --gap: gap = \"30s\": must be at least 1 minute",
        ),
        (
            &[
                "--timezone",
                "UTC",
                "--start",
                "08:00",
                "--end",
                "20:00",
                "--event-name",
                "",
            ],
            "invalid --event-name: event_name = \"\"",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["--events", "-"];
        args.extend(flags);
        let out = replay(&args, Some("occurred_at\n"));
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}

#[test]
fn from_and_to_choose_the_dates_even_without_events() {
    let mut args = vec![
        "--events",
        "-",
        "--output",
        "json",
        "--from",
        "2025-03-29",
        "--to",
        "2025-03-31",
    ];
    args.extend(AMSTERDAM_8_TO_20);
    let report = stdout_json(&replay(&args, Some("occurred_at\n")));
    let dates: Vec<&str> = report["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["2025-03-29", "2025-03-30", "2025-03-31"]);
    // Six full windows from 08:00 to 20:00 every day.
    assert_eq!(report["totals"]["alarms"], 18);
    assert_eq!(report["totals"]["events"], 0);
}

#[test]
fn table_and_html_show_each_day() {
    let events = "occurred_at\n2025-03-30 09:10\n2025-03-31 09:10\n";
    let mut args = vec!["--events", "-"];
    args.extend(AMSTERDAM_8_TO_20);
    let out = replay(&args, Some(events));
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("2025-03-30  08:00  20:00"), "{table}");
    assert!(table.contains("2 sessions, 10 alarms, 2 events"), "{table}");

    args.extend(["--output", "html"]);
    let out = replay(&args, Some(events));
    let html = String::from_utf8(out.stdout).unwrap();
    // The doctype is case-insensitive.
    assert!(html.to_ascii_lowercase().starts_with("<!doctype html>"));
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("event 09:10"));
    assert!(!html.contains("<script"), "self-contained, no scripts");
}

#[test]
fn help_explains_every_flag_with_an_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_azi3-status-jobs"))
        .args(["replay", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--events",
        "--timezone",
        "--start",
        "--end",
        "--gap",
        "--robot-id",
        "--event-name",
        "--partial-final-window",
        "--from",
        "--to",
        "--output",
        "--input-format",
        "--skip-invalid",
    ] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
    assert!(help.contains("Examples:"));
}

#[test]
fn a_stray_row_decades_off_is_refused_unless_from_and_to_name_the_dates() {
    let dir = tempfile::tempdir().unwrap();
    let events = file(
        &dir,
        "events.csv",
        "occurred_at,event_name\n\
         0001-01-01 09:00,TOILET_ACTIVITY\n\
         2025-03-30 09:10,TOILET_ACTIVITY\n",
    );
    for output in ["json", "table", "html"] {
        let mut args = vec!["--events", &events, "--output", output];
        args.extend(AMSTERDAM_8_TO_20);
        let out = replay(&args, None);
        assert_eq!(out.status.code(), Some(2), "{output}");
        assert!(out.stdout.is_empty(), "{output}: nothing partial");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("0001-01-01 to 2025-03-30")
                && stderr.contains("more than 3660")
                && stderr.contains("--from and --to"),
            "{stderr}"
        );
        // One named date is not enough: the other still comes from the stray row.
        args.extend(["--to", "2025-03-30"]);
        assert_eq!(replay(&args, None).status.code(), Some(2), "{output}");
    }
    let mut args = vec![
        "--events",
        &events,
        "--output",
        "json",
        "--from",
        "2025-03-30",
        "--to",
        "2025-03-30",
    ];
    args.extend(AMSTERDAM_8_TO_20);
    let report = stdout_json(&replay(&args, None));
    assert_eq!(report["totals"]["sessions"], 1);
    assert_eq!(report["totals"]["events"], 1);
}

#[test]
fn a_long_span_named_by_from_and_to_is_written_session_by_session() {
    // 2000-01-01 to 2011-01-01: 4019 dates, more than the unnamed limit, asked for by name.
    let mut args = vec![
        "--events",
        "-",
        "--output",
        "json",
        "--from",
        "2000-01-01",
        "--to",
        "2011-01-01",
    ];
    args.extend(AMSTERDAM_8_TO_20);
    let report = stdout_json(&replay(&args, Some("occurred_at\n2005-06-01 09:00\n")));
    let sessions = report["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 4019);
    assert_eq!(sessions[0]["date"], "2000-01-01");
    assert_eq!(sessions[4018]["date"], "2011-01-01");
    assert_eq!(report["totals"]["sessions"], 4019);
    assert_eq!(report["totals"]["events"], 1);
    // Six alarms a day, but one fewer on the day with the event (it meets the first window).
    assert_eq!(report["totals"]["alarms"], 4019 * 6 - 1);

    args[3] = "table";
    let out = replay(&args, Some("occurred_at\n"));
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("2011-01-01"), "{table}");
    assert!(
        table.ends_with("4019 sessions, 24114 alarms, 0 events\n"),
        "{table}"
    );
}

/// Three weeks of a resident's toilet visits, made up but regular enough to look like a day.
fn three_weeks_csv() -> String {
    let mut csv = String::from("occurred_at,event_name,id\n");
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for day in 1..=21 {
        let mut minute = 6 * 60 + (next() % 90) as u32;
        while minute < 23 * 60 {
            csv.push_str(&format!(
                "2011-11-{day:02} {:02}:{:02},TOILET_ACTIVITY,e{day}-{minute}\n",
                minute / 60,
                minute % 60
            ));
            minute += 60 + (next() % 240) as u32;
        }
    }
    csv
}

#[test]
fn a_gap_comparison_counts_what_each_replay_alone_counts() {
    let dir = tempfile::tempdir().unwrap();
    let events = file(&dir, "events.csv", &three_weeks_csv());
    let base = [
        "--events",
        &events,
        "--timezone",
        "Europe/Madrid",
        "--start",
        "08:00",
        "--end",
        "22:00",
    ];
    let mut args = base.to_vec();
    args.extend(["--compare-gap", "2h,3h,4h", "--output", "json"]);
    let compared = stdout_json(&replay(&args, None));
    let settings = compared["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 3);
    let mut counts = Vec::new();
    for (gap, column) in ["2h", "3h", "4h"].into_iter().zip(settings) {
        let mut alone = base.to_vec();
        alone.extend(["--gap", gap, "--output", "json"]);
        let report = stdout_json(&replay(&alone, None));
        assert_eq!(column["alarms"], report["totals"]["alarms"], "gap {gap}");
        assert_eq!(column["days"], report["totals"]["sessions"], "gap {gap}");
        let per_day: Vec<u64> = column["perDay"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["alarms"].as_u64().unwrap())
            .collect();
        let alone_per_day: Vec<u64> = report["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["alarms"].as_array().unwrap().len() as u64)
            .collect();
        assert_eq!(per_day, alone_per_day, "gap {gap}");
        counts.push(column["alarms"].as_u64().unwrap());
    }
    assert!(
        counts[0] > counts[1] && counts[1] > counts[2],
        "a longer gap raises fewer alarms on these days: {counts:?}"
    );
    assert_eq!(compared["from"], "2011-11-01");
    assert_eq!(compared["to"], "2011-11-21");
    assert_eq!(settings[0]["label"], "08:00–22:00, gap 2h");

    // The table and the page carry the same counts.
    let mut table_args = base.to_vec();
    table_args.extend(["--compare-gap", "2h,3h,4h"]);
    let table = replay(&table_args, None);
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    let alarms_line = table.lines().find(|l| l.starts_with("alarms ")).unwrap();
    let cells: Vec<u64> = alarms_line
        .split_whitespace()
        .skip(1)
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(cells, counts);
    let mut html_args = table_args.clone();
    html_args.extend(["--output", "html"]);
    let html = replay(&html_args, None);
    assert!(html.status.success());
    let html = String::from_utf8(html.stdout).unwrap();
    // The doctype is case-insensitive.
    assert!(html.to_ascii_lowercase().starts_with("<!doctype html>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched"
    );
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 3 * 21);
    // Every gridline of the chart is labelled with the number of alarms it stands at.
    let gridlines: Vec<(f64, f64)> = html
        .split("<text x=\"2\" y=\"")
        .skip(1)
        .map(|rest| {
            let (y, rest) = rest.split_once('"').unwrap();
            let label = rest.split_once('>').unwrap().1.split_once('<').unwrap().0;
            (y.parse().unwrap(), label.parse().unwrap())
        })
        .collect();
    assert!(gridlines.len() >= 2, "{gridlines:?}");
    let (y_zero, zero) = gridlines[0];
    let (y_top, top) = *gridlines.last().unwrap();
    assert_eq!(zero, 0.0);
    for &(y, label) in &gridlines {
        assert_eq!(label, label.round(), "whole alarms: {gridlines:?}");
        let at = (y_zero - y) / (y_zero - y_top) * top;
        assert!(
            (at - label).abs() < 0.05,
            "label {label} drawn at {at}: {gridlines:?}"
        );
    }
}

#[test]
fn settings_to_compare_are_every_combination_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let events = file(&dir, "events.csv", &three_weeks_csv());
    let mut args = vec!["--events", &events];
    args.extend(AMSTERDAM_8_TO_20);
    let mut both = args.clone();
    both.extend([
        "--compare-start",
        "07:00,08:00",
        "--compare-gap",
        "90m,2h",
        "--output",
        "json",
    ]);
    let report = stdout_json(&replay(&both, None));
    let labels: Vec<&str> = report["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "07:00–20:00, gap 1h30m",
            "07:00–20:00, gap 2h",
            "08:00–20:00, gap 1h30m",
            "08:00–20:00, gap 2h"
        ]
    );

    for (flag, list, named) in [
        ("--compare-gap", "2h,0m", "--compare-gap value \"0m\""),
        (
            "--compare-start",
            "08:00,25:00",
            "--compare-start value \"25:00\"",
        ),
        ("--compare-end", "x", "--compare-end value \"x\""),
    ] {
        let mut bad = args.clone();
        bad.extend([flag, list]);
        let out = replay(&bad, None);
        assert_eq!(out.status.code(), Some(2), "{flag} {list}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{flag} {list}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    let mut many = args.clone();
    many.extend([
        "--compare-gap",
        "1h,2h,3h,4h,5h",
        "--compare-start",
        "06:00,07:00,08:00,09:00,10:00",
    ]);
    let out = replay(&many, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("25 settings"));
}
