//! The edge cases of `docs/semantics.md`, one test each, with every expected instant
//! and reference id worked out by hand from it (the working is in the comment above the
//! assertions). Instants are written as RFC 3339 UTC strings; `Z` times in comments are UTC,
//! everything else is local wall-clock time in the rule's zone.

use azi3_status_jobs::domain::{
    EventClass, Gap, PartialFinalWindow, RobotId, Rule, RuleInput, Session, SessionOutcome,
    SessionResult, SessionState, Step, evaluate, evaluate_steps, resolve,
};
use jiff::Timestamp;
use jiff::civil::{Date, date, time};

const ROBOT: RobotId = RobotId::new(7);

fn rule(tz: &str, start: &str, end: &str, gap: &str, partial: &str) -> Rule {
    RuleInput {
        robot_id: ROBOT,
        timezone: tz.into(),
        start: start.into(),
        end: end.into(),
        gap: gap.into(),
        partial_final_window: partial.into(),
        ..RuleInput::default()
    }
    .validate()
    .unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn session(rule: &Rule, d: Date) -> Session {
    Session::on(rule, d).unwrap_or_else(|| panic!("expected a session on {d}"))
}

/// `(S, E)` as strings.
fn bounds(s: &Session) -> (String, String) {
    (s.start.to_string(), s.end.to_string())
}

fn bounds_on(rule: &Rule, d: Date) -> (String, String) {
    bounds(&session(rule, d))
}

fn run(rule: &Rule, d: Date, events: &[&str]) -> SessionOutcome {
    let events: Vec<Timestamp> = events.iter().map(|e| ts(e)).collect();
    evaluate(rule, session(rule, d), &events)
}

/// `(s, u, reference id)` of every alarm.
fn alarms(outcome: &SessionOutcome) -> Vec<(String, String, String)> {
    outcome
        .alarms
        .iter()
        .map(|a| {
            (
                a.window.start.to_string(),
                a.window.end.to_string(),
                a.reference_id(),
            )
        })
        .collect()
}

fn alarm(s: &str, u: &str, reference: &str) -> (String, String, String) {
    (s.to_string(), u.to_string(), reference.to_string())
}

fn pair(s: &str, e: &str) -> (String, String) {
    (s.to_string(), e.to_string())
}

fn dates(sessions: impl Iterator<Item = Session>) -> Vec<Date> {
    sessions.map(|s| s.date).collect()
}

// ---------------------------------------------------------------------------------------------
// §2 resolve
// ---------------------------------------------------------------------------------------------

#[test]
fn resolve_follows_the_two_examples_of_section_2() {
    // 02:30 does not exist on 2025-03-30 (02:00 CET -> 03:00 CEST at 01:00Z): it moves forward
    // by the jump to 03:30 CEST = 01:30Z. 02:30 happens twice on 2025-10-26 (03:00 CEST ->
    // 02:00 CET at 01:00Z): the earlier one, 02:30 CEST = 00:30Z.
    let ams = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
    assert_eq!(
        resolve(&ams, date(2025, 3, 30), time(2, 30, 0, 0)).unwrap(),
        ts("2025-03-30T01:30:00Z")
    );
    assert_eq!(
        resolve(&ams, date(2025, 10, 26), time(2, 30, 0, 0)).unwrap(),
        ts("2025-10-26T00:30:00Z")
    );
}

// ---------------------------------------------------------------------------------------------
// §7 worked example
// ---------------------------------------------------------------------------------------------

const EXAMPLE_EVENTS: [&str; 3] = [
    "2025-03-30T07:10:00Z",
    "2025-03-30T07:40:00Z",
    "2025-03-30T11:00:00Z",
];

#[test]
fn worked_example_of_section_7_raises_four_alarms() {
    // Jump at 01:00Z is before S. S = 08:00 CEST = 06:00Z, E = 20:00 CEST = 18:00Z.
    // Events 09:10, 09:40, 13:00 CEST = 07:10Z, 07:40Z, 11:00Z.
    // Alarm windows (UTC): [07:40,09:40] [11:00,13:00] [13:00,15:00] [15:00,17:00];
    // [17:00,18:00] is partial. 2025-03-30T00:00Z = 1743292800, so
    // 07:40Z = +27600 = 1743320400, 11:00Z = +39600 = 1743332400,
    // 13:00Z = +46800 = 1743339600, 15:00Z = +54000 = 1743346800.
    let r = rule("Europe/Amsterdam", "08:00", "20:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 3, 30)),
        pair("2025-03-30T06:00:00Z", "2025-03-30T18:00:00Z")
    );
    let outcome = run(&r, date(2025, 3, 30), &EXAMPLE_EVENTS);
    assert_eq!(outcome.events, 3);
    assert_eq!(
        alarms(&outcome),
        vec![
            alarm(
                "2025-03-30T07:40:00Z",
                "2025-03-30T09:40:00Z",
                "nta-7-2025-03-30-1743320400"
            ),
            alarm(
                "2025-03-30T11:00:00Z",
                "2025-03-30T13:00:00Z",
                "nta-7-2025-03-30-1743332400"
            ),
            alarm(
                "2025-03-30T13:00:00Z",
                "2025-03-30T15:00:00Z",
                "nta-7-2025-03-30-1743339600"
            ),
            alarm(
                "2025-03-30T15:00:00Z",
                "2025-03-30T17:00:00Z",
                "nta-7-2025-03-30-1743346800"
            ),
        ]
    );
    assert_eq!(outcome.result, SessionResult::AlarmRaised);
    assert_eq!(outcome.result.as_str(), "ALARM_RAISED");
}

#[test]
fn worked_example_steps_match_the_table_of_section_7() {
    // The table, row by row, in UTC (CEST = UTC+2):
    // 08:00–10:00 event 09:10 | 09:10–11:10 event 09:40 | 09:40–11:40 alarm |
    // 11:40–13:40 event 13:00 | 13:00–15:00 alarm | 15:00–17:00 alarm | 17:00–19:00 alarm |
    // 19:00–20:00 partial, no alarm.
    let r = rule("Europe/Amsterdam", "08:00", "20:00", "2h", "ignore");
    let events: Vec<Timestamp> = EXAMPLE_EVENTS.iter().map(|e| ts(e)).collect();
    let mut rows = Vec::new();
    evaluate_steps(&r, session(&r, date(2025, 3, 30)), &events, |step| {
        rows.push(match step {
            Step::Observed { at, replaced, .. } => (
                replaced.start.to_string(),
                replaced.end.to_string(),
                format!("event {at}"),
            ),
            Step::Closed(c) => (
                c.window.start.to_string(),
                c.window.end.to_string(),
                if c.alarm.is_some() {
                    "alarm"
                } else {
                    "no alarm"
                }
                .to_string(),
            ),
        })
    });
    let row = |s: &str, u: &str, what: &str| (s.to_string(), u.to_string(), what.to_string());
    assert_eq!(
        rows,
        vec![
            row(
                "2025-03-30T06:00:00Z",
                "2025-03-30T08:00:00Z",
                "event 2025-03-30T07:10:00Z"
            ),
            row(
                "2025-03-30T07:10:00Z",
                "2025-03-30T09:10:00Z",
                "event 2025-03-30T07:40:00Z"
            ),
            row("2025-03-30T07:40:00Z", "2025-03-30T09:40:00Z", "alarm"),
            row(
                "2025-03-30T09:40:00Z",
                "2025-03-30T11:40:00Z",
                "event 2025-03-30T11:00:00Z"
            ),
            row("2025-03-30T11:00:00Z", "2025-03-30T13:00:00Z", "alarm"),
            row("2025-03-30T13:00:00Z", "2025-03-30T15:00:00Z", "alarm"),
            row("2025-03-30T15:00:00Z", "2025-03-30T17:00:00Z", "alarm"),
            row("2025-03-30T17:00:00Z", "2025-03-30T18:00:00Z", "no alarm"),
        ]
    );
}

#[test]
fn worked_example_with_partial_alarm_adds_the_19_to_20_window() {
    // Same as above; the partial window [19:00, 20:00] CEST = [17:00Z, 18:00Z] has length
    // 1h > 0, so `alarm` makes it due: 17:00Z = 1743292800 + 61200 = 1743354000.
    let r = rule("Europe/Amsterdam", "08:00", "20:00", "2h", "alarm");
    let outcome = run(&r, date(2025, 3, 30), &EXAMPLE_EVENTS);
    let got = alarms(&outcome);
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[4],
        alarm(
            "2025-03-30T17:00:00Z",
            "2025-03-30T18:00:00Z",
            "nta-7-2025-03-30-1743354000"
        )
    );
    assert_eq!(outcome.result, SessionResult::AlarmRaised);
}

// ---------------------------------------------------------------------------------------------
// DST: Europe/Amsterdam 2025
// ---------------------------------------------------------------------------------------------

#[test]
fn amsterdam_spring_forward_start_in_skipped_hour() {
    // 2025-03-30: 02:00 CET (+1) -> 03:00 CEST (+2) at 01:00Z.
    // A = 02:30 does not exist -> 03:30 CEST = 01:30Z. B = 08:00 CEST = 06:00Z.
    let r = rule("Europe/Amsterdam", "02:30", "08:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 3, 30)),
        pair("2025-03-30T01:30:00Z", "2025-03-30T06:00:00Z")
    );
}

#[test]
fn amsterdam_spring_forward_end_in_skipped_hour() {
    // A = 00:00 CET = 2025-03-29T23:00Z; B = 02:30 does not exist -> 03:30 CEST = 01:30Z.
    let r = rule("Europe/Amsterdam", "00:00", "02:30", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 3, 30)),
        pair("2025-03-29T23:00:00Z", "2025-03-30T01:30:00Z")
    );
}

#[test]
fn amsterdam_spring_forward_start_and_end_around_the_jump_give_no_session() {
    // A = 02:30 -> 03:30 CEST = 01:30Z; B = 03:15 CEST = 01:15Z. E <= S: no session (§2).
    // The days around it are normal: 2025-03-29 (CET): 01:30Z–02:15Z;
    // 2025-03-31 (CEST): 00:30Z–01:15Z.
    let r = rule("Europe/Amsterdam", "02:30", "03:15", "2h", "ignore");
    assert_eq!(Session::on(&r, date(2025, 3, 30)), None);
    assert_eq!(
        dates(Session::between(&r, date(2025, 3, 29), date(2025, 3, 31))),
        vec![date(2025, 3, 29), date(2025, 3, 31)]
    );
    assert_eq!(
        bounds_on(&r, date(2025, 3, 29)),
        pair("2025-03-29T01:30:00Z", "2025-03-29T02:15:00Z")
    );
    assert_eq!(
        bounds_on(&r, date(2025, 3, 31)),
        pair("2025-03-31T00:30:00Z", "2025-03-31T01:15:00Z")
    );
}

#[test]
fn amsterdam_spring_forward_windows_are_elapsed_time() {
    // A = 00:00 CET = 03-29T23:00Z, B = 06:00 CEST = 04:00Z: 5h elapsed (6h of wall clock).
    // G = 2h, no events: [23:00Z, 01:00Z] (wall 00:00 -> 03:00, only 2h elapsed),
    // [01:00Z, 03:00Z], then [03:00Z, 04:00Z] partial.
    // 2025-03-29T23:00Z = 1743289200, 01:00Z = +7200 = 1743296400, 03:00Z = 1743303600.
    let ignore = rule("Europe/Amsterdam", "00:00", "06:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&ignore, date(2025, 3, 30)),
        pair("2025-03-29T23:00:00Z", "2025-03-30T04:00:00Z")
    );
    let full = vec![
        alarm(
            "2025-03-29T23:00:00Z",
            "2025-03-30T01:00:00Z",
            "nta-7-2025-03-30-1743289200",
        ),
        alarm(
            "2025-03-30T01:00:00Z",
            "2025-03-30T03:00:00Z",
            "nta-7-2025-03-30-1743296400",
        ),
    ];
    assert_eq!(alarms(&run(&ignore, date(2025, 3, 30), &[])), full);

    let alarm_rule = rule("Europe/Amsterdam", "00:00", "06:00", "2h", "alarm");
    let mut with_partial = full.clone();
    with_partial.push(alarm(
        "2025-03-30T03:00:00Z",
        "2025-03-30T04:00:00Z",
        "nta-7-2025-03-30-1743303600",
    ));
    assert_eq!(
        alarms(&run(&alarm_rule, date(2025, 3, 30), &[])),
        with_partial
    );
}

#[test]
fn amsterdam_fall_back_start_in_repeated_hour() {
    // 2025-10-26: 03:00 CEST (+2) -> 02:00 CET (+1) at 01:00Z; 02:00–02:59 happens twice.
    // A = 02:30 -> the earlier, 02:30 CEST = 00:30Z. B = 08:00 CET = 07:00Z.
    let r = rule("Europe/Amsterdam", "02:30", "08:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 10, 26)),
        pair("2025-10-26T00:30:00Z", "2025-10-26T07:00:00Z")
    );
}

#[test]
fn amsterdam_fall_back_end_in_repeated_hour() {
    // A = 00:00 CEST = 10-25T22:00Z; B = 02:30 -> the earlier, 02:30 CEST = 00:30Z.
    let r = rule("Europe/Amsterdam", "00:00", "02:30", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 10, 26)),
        pair("2025-10-25T22:00:00Z", "2025-10-26T00:30:00Z")
    );
    // Both in the repeated hour: A = 02:15 CEST = 00:15Z, B = 02:45 CEST = 00:45Z.
    let r = rule("Europe/Amsterdam", "02:15", "02:45", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 10, 26)),
        pair("2025-10-26T00:15:00Z", "2025-10-26T00:45:00Z")
    );
}

#[test]
fn amsterdam_fall_back_windows_are_elapsed_time() {
    // A = 00:00 CEST = 10-25T22:00Z, B = 06:00 CET = 05:00Z: 7h elapsed (6h of wall clock).
    // G = 2h, no events: [22:00Z, 00:00Z], [00:00Z, 02:00Z] (02:00 CEST -> 02:00 CET: the
    // same wall time, 2h elapsed), [02:00Z, 04:00Z], then [04:00Z, 05:00Z] partial.
    // 10-25T22:00Z = 1761429600, 10-26T00:00Z = 1761436800, 02:00Z = 1761444000.
    let r = rule("Europe/Amsterdam", "00:00", "06:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 10, 26)),
        pair("2025-10-25T22:00:00Z", "2025-10-26T05:00:00Z")
    );
    assert_eq!(
        alarms(&run(&r, date(2025, 10, 26), &[])),
        vec![
            alarm(
                "2025-10-25T22:00:00Z",
                "2025-10-26T00:00:00Z",
                "nta-7-2025-10-26-1761429600"
            ),
            alarm(
                "2025-10-26T00:00:00Z",
                "2025-10-26T02:00:00Z",
                "nta-7-2025-10-26-1761436800"
            ),
            alarm(
                "2025-10-26T02:00:00Z",
                "2025-10-26T04:00:00Z",
                "nta-7-2025-10-26-1761444000"
            ),
        ]
    );
}

#[test]
fn amsterdam_fall_back_event_in_repeated_hour_counts_by_instant() {
    // Same session, 22:00Z–05:00Z, G = 2h. The wall time 02:15 happens at 00:15Z (CEST) and
    // at 01:15Z (CET).
    // Event at 01:15Z: [22:00Z, 00:00Z] alarm; [00:00Z, 02:00Z] <- 01:15Z;
    // [01:15Z, 03:15Z] alarm (01:15Z = 1761436800 + 4500 = 1761441300); [03:15Z, 05:00Z]
    // partial.
    // Event at 00:15Z: [22:00Z, 00:00Z] alarm; [00:00Z, 02:00Z] <- 00:15Z;
    // [00:15Z, 02:15Z] alarm (1761436800 + 900 = 1761437700); [02:15Z, 04:15Z] alarm
    // (1761437700 + 7200 = 1761444900); [04:15Z, 05:00Z] partial.
    let r = rule("Europe/Amsterdam", "00:00", "06:00", "2h", "ignore");
    let first = alarm(
        "2025-10-25T22:00:00Z",
        "2025-10-26T00:00:00Z",
        "nta-7-2025-10-26-1761429600",
    );
    assert_eq!(
        alarms(&run(&r, date(2025, 10, 26), &["2025-10-26T01:15:00Z"])),
        vec![
            first.clone(),
            alarm(
                "2025-10-26T01:15:00Z",
                "2025-10-26T03:15:00Z",
                "nta-7-2025-10-26-1761441300"
            ),
        ]
    );
    assert_eq!(
        alarms(&run(&r, date(2025, 10, 26), &["2025-10-26T00:15:00Z"])),
        vec![
            first,
            alarm(
                "2025-10-26T00:15:00Z",
                "2025-10-26T02:15:00Z",
                "nta-7-2025-10-26-1761437700"
            ),
            alarm(
                "2025-10-26T02:15:00Z",
                "2025-10-26T04:15:00Z",
                "nta-7-2025-10-26-1761444900"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// DST: America/New_York 2025
// ---------------------------------------------------------------------------------------------

#[test]
fn new_york_spring_forward_start_and_end_in_skipped_hour() {
    // 2025-03-09: 02:00 EST (-5) -> 03:00 EDT (-4) at 07:00Z.
    // A = 02:30 -> 03:30 EDT = 07:30Z; B = 08:00 EDT = 12:00Z.
    let r = rule("America/New_York", "02:30", "08:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 3, 9)),
        pair("2025-03-09T07:30:00Z", "2025-03-09T12:00:00Z")
    );
    // A = 00:00 EST = 05:00Z; B = 02:30 -> 03:30 EDT = 07:30Z.
    let r = rule("America/New_York", "00:00", "02:30", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 3, 9)),
        pair("2025-03-09T05:00:00Z", "2025-03-09T07:30:00Z")
    );
    // A = 02:30 -> 07:30Z; B = 03:15 EDT = 07:15Z: E <= S, no session.
    let r = rule("America/New_York", "02:30", "03:15", "2h", "ignore");
    assert_eq!(Session::on(&r, date(2025, 3, 9)), None);
    assert!(Session::on(&r, date(2025, 3, 8)).is_some());
    assert!(Session::on(&r, date(2025, 3, 10)).is_some());
}

#[test]
fn new_york_spring_forward_windows_are_elapsed_time() {
    // A = 00:00 EST = 05:00Z, B = 06:00 EDT = 10:00Z (5h). G = 2h, no events:
    // [05:00Z, 07:00Z] (wall 00:00 -> 03:00), [07:00Z, 09:00Z], [09:00Z, 10:00Z] partial.
    // 05:00Z = 1741496400, 07:00Z = 1741503600.
    let r = rule("America/New_York", "00:00", "06:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 3, 9)),
        pair("2025-03-09T05:00:00Z", "2025-03-09T10:00:00Z")
    );
    assert_eq!(
        alarms(&run(&r, date(2025, 3, 9), &[])),
        vec![
            alarm(
                "2025-03-09T05:00:00Z",
                "2025-03-09T07:00:00Z",
                "nta-7-2025-03-09-1741496400"
            ),
            alarm(
                "2025-03-09T07:00:00Z",
                "2025-03-09T09:00:00Z",
                "nta-7-2025-03-09-1741503600"
            ),
        ]
    );
}

#[test]
fn new_york_fall_back_start_and_end_in_repeated_hour() {
    // 2025-11-02: 02:00 EDT (-4) -> 01:00 EST (-5) at 06:00Z; 01:00–01:59 happens twice.
    // A = 01:30 -> the earlier, 01:30 EDT = 05:30Z; B = 08:00 EST = 13:00Z.
    let r = rule("America/New_York", "01:30", "08:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 11, 2)),
        pair("2025-11-02T05:30:00Z", "2025-11-02T13:00:00Z")
    );
    // A = 00:00 EDT = 04:00Z; B = 01:30 -> 01:30 EDT = 05:30Z.
    let r = rule("America/New_York", "00:00", "01:30", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 11, 2)),
        pair("2025-11-02T04:00:00Z", "2025-11-02T05:30:00Z")
    );
    // Across midnight into the repeated hour: A = 22:00 EDT on 11-01 = 11-02T02:00Z;
    // B = 01:30 on 11-02 -> 01:30 EDT = 05:30Z.
    let r = rule("America/New_York", "22:00", "01:30", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 11, 1)),
        pair("2025-11-02T02:00:00Z", "2025-11-02T05:30:00Z")
    );
}

#[test]
fn new_york_fall_back_windows_are_elapsed_time() {
    // A = 00:00 EDT = 04:00Z, B = 06:00 EST = 11:00Z (7h). G = 2h, no events:
    // [04:00Z, 06:00Z] (wall 00:00 -> 01:00 EST), [06:00Z, 08:00Z], [08:00Z, 10:00Z],
    // [10:00Z, 11:00Z] partial. 04:00Z = 1762056000, 06:00Z = 1762063200, 08:00Z = 1762070400.
    let r = rule("America/New_York", "00:00", "06:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 11, 2)),
        pair("2025-11-02T04:00:00Z", "2025-11-02T11:00:00Z")
    );
    assert_eq!(
        alarms(&run(&r, date(2025, 11, 2), &[])),
        vec![
            alarm(
                "2025-11-02T04:00:00Z",
                "2025-11-02T06:00:00Z",
                "nta-7-2025-11-02-1762056000"
            ),
            alarm(
                "2025-11-02T06:00:00Z",
                "2025-11-02T08:00:00Z",
                "nta-7-2025-11-02-1762063200"
            ),
            alarm(
                "2025-11-02T08:00:00Z",
                "2025-11-02T10:00:00Z",
                "nta-7-2025-11-02-1762070400"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 30-minute DST: Australia/Lord_Howe 2025
// ---------------------------------------------------------------------------------------------

#[test]
fn lord_howe_2025_transitions_are_half_hour_jumps() {
    // 2025-04-06 02:00 LHDT (+11) -> 01:30 LHST (+10:30), at 04-05T15:00Z.
    // 2025-10-05 02:00 LHST (+10:30) -> 02:30 LHDT (+11), at 10-04T15:30Z.
    let tz = jiff::tz::TimeZone::get("Australia/Lord_Howe").unwrap();
    let offset = |t: &str| tz.to_offset(ts(t)).to_string();
    assert_eq!(offset("2025-04-05T14:59:59Z"), "+11");
    assert_eq!(offset("2025-04-05T15:00:00Z"), "+10:30");
    assert_eq!(offset("2025-10-04T15:29:59Z"), "+10:30");
    assert_eq!(offset("2025-10-04T15:30:00Z"), "+11");
}

#[test]
fn lord_howe_fall_back_half_hour() {
    // 2025-04-06: 01:30–01:59 happens twice.
    // A = 01:45 -> the earlier, 01:45 +11 = 04-05T14:45Z; B = 08:00 +10:30 = 04-05T21:30Z.
    let r = rule("Australia/Lord_Howe", "01:45", "08:00", "1h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 4, 6)),
        pair("2025-04-05T14:45:00Z", "2025-04-05T21:30:00Z")
    );
    // A = 00:00 +11 = 04-05T13:00Z; B = 01:45 -> 01:45 +11 = 14:45Z.
    let r = rule("Australia/Lord_Howe", "00:00", "01:45", "1h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 4, 6)),
        pair("2025-04-05T13:00:00Z", "2025-04-05T14:45:00Z")
    );
    // A = 00:00 +11 = 13:00Z, B = 04:00 +10:30 = 17:30Z: 4h30 elapsed. G = 1h, no events:
    // [13,14] [14,15] [15,16] [16,17] full, [17:00, 17:30] partial.
    // 04-05T13:00Z = 1743858000; then +3600 each; 17:00Z = 1743872400.
    let ignore = rule("Australia/Lord_Howe", "00:00", "04:00", "1h", "ignore");
    assert_eq!(
        bounds_on(&ignore, date(2025, 4, 6)),
        pair("2025-04-05T13:00:00Z", "2025-04-05T17:30:00Z")
    );
    let expected = vec![
        alarm(
            "2025-04-05T13:00:00Z",
            "2025-04-05T14:00:00Z",
            "nta-7-2025-04-06-1743858000",
        ),
        alarm(
            "2025-04-05T14:00:00Z",
            "2025-04-05T15:00:00Z",
            "nta-7-2025-04-06-1743861600",
        ),
        alarm(
            "2025-04-05T15:00:00Z",
            "2025-04-05T16:00:00Z",
            "nta-7-2025-04-06-1743865200",
        ),
        alarm(
            "2025-04-05T16:00:00Z",
            "2025-04-05T17:00:00Z",
            "nta-7-2025-04-06-1743868800",
        ),
    ];
    assert_eq!(alarms(&run(&ignore, date(2025, 4, 6), &[])), expected);
    let alarm_rule = rule("Australia/Lord_Howe", "00:00", "04:00", "1h", "alarm");
    let mut with_partial = expected;
    with_partial.push(alarm(
        "2025-04-05T17:00:00Z",
        "2025-04-05T17:30:00Z",
        "nta-7-2025-04-06-1743872400",
    ));
    assert_eq!(
        alarms(&run(&alarm_rule, date(2025, 4, 6), &[])),
        with_partial
    );
}

#[test]
fn lord_howe_spring_forward_half_hour() {
    // 2025-10-05: 02:00–02:29 does not exist.
    // A = 02:15 -> forward by 30 min: 02:45 +11 = 10-04T15:45Z; B = 08:00 +11 = 21:00Z.
    let r = rule("Australia/Lord_Howe", "02:15", "08:00", "1h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 10, 5)),
        pair("2025-10-04T15:45:00Z", "2025-10-04T21:00:00Z")
    );
    // A = 00:00 +10:30 = 10-04T13:30Z; B = 02:15 -> 02:45 +11 = 15:45Z.
    let r = rule("Australia/Lord_Howe", "00:00", "02:15", "1h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 10, 5)),
        pair("2025-10-04T13:30:00Z", "2025-10-04T15:45:00Z")
    );
    // A = 02:15 -> 15:45Z; B = 02:40 +11 = 15:40Z: E <= S, no session.
    let r = rule("Australia/Lord_Howe", "02:15", "02:40", "1h", "ignore");
    assert_eq!(Session::on(&r, date(2025, 10, 5)), None);
    // A = 00:00 +10:30 = 13:30Z, B = 04:00 +11 = 17:00Z: 3h30 elapsed. G = 1h, no events:
    // [13:30,14:30] [14:30,15:30] [15:30,16:30] full, [16:30,17:00] partial.
    // 10-04T13:30Z = 1759584600, +3600 each.
    let r = rule("Australia/Lord_Howe", "00:00", "04:00", "1h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 10, 5)),
        pair("2025-10-04T13:30:00Z", "2025-10-04T17:00:00Z")
    );
    assert_eq!(
        alarms(&run(&r, date(2025, 10, 5), &[])),
        vec![
            alarm(
                "2025-10-04T13:30:00Z",
                "2025-10-04T14:30:00Z",
                "nta-7-2025-10-05-1759584600"
            ),
            alarm(
                "2025-10-04T14:30:00Z",
                "2025-10-04T15:30:00Z",
                "nta-7-2025-10-05-1759588200"
            ),
            alarm(
                "2025-10-04T15:30:00Z",
                "2025-10-04T16:30:00Z",
                "nta-7-2025-10-05-1759591800"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Midnight jump: America/Sao_Paulo
// ---------------------------------------------------------------------------------------------

#[test]
fn sao_paulo_midnight_jump_moves_start_forward_on_the_same_date() {
    // 2018-11-04: 00:00 BRT (-3) -> 01:00 BRST (-2) at 03:00Z; 00:00–00:59 does not exist.
    // A = 00:00 -> 01:00 BRST = 03:00Z, still local date 2018-11-04: a session.
    // B = 08:00 BRST = 10:00Z.
    let r = rule("America/Sao_Paulo", "00:00", "08:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2018, 11, 4)),
        pair("2018-11-04T03:00:00Z", "2018-11-04T10:00:00Z")
    );
    // A = 00:30 -> 01:30 BRST = 03:30Z.
    let r = rule("America/Sao_Paulo", "00:30", "08:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2018, 11, 4)),
        pair("2018-11-04T03:30:00Z", "2018-11-04T10:00:00Z")
    );
    // The day before, across midnight: A = 22:00 BRT on 11-03 = 11-04T01:00Z;
    // B = 00:30 on 11-04 -> 01:30 BRST = 03:30Z.
    let r = rule("America/Sao_Paulo", "22:00", "00:30", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2018, 11, 3)),
        pair("2018-11-04T01:00:00Z", "2018-11-04T03:30:00Z")
    );
    // A full day from 00:00: 11-03 runs 03:00Z -> 11-04 03:00Z (24h); 11-04 runs 03:00Z ->
    // 11-05 00:00 BRST = 02:00Z (23h).
    let r = rule("America/Sao_Paulo", "00:00", "00:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2018, 11, 3)),
        pair("2018-11-03T03:00:00Z", "2018-11-04T03:00:00Z")
    );
    assert_eq!(
        bounds_on(&r, date(2018, 11, 4)),
        pair("2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z")
    );
}

#[test]
fn sao_paulo_fall_back_into_the_previous_date_takes_the_earlier_instant() {
    // 2019-02-17 00:00 BRST (-2) -> 2019-02-16 23:00 BRT (-3) at 02:00Z: 23:00–23:59 on
    // 02-16 happens twice. A = 23:30 -> the earlier, 23:30 BRST = 02-17T01:30Z;
    // B = 06:00 BRT on 02-17 = 09:00Z.
    let r = rule("America/Sao_Paulo", "23:30", "06:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2019, 2, 16)),
        pair("2019-02-17T01:30:00Z", "2019-02-17T09:00:00Z")
    );
}

// ---------------------------------------------------------------------------------------------
// A skipped date: Pacific/Apia 2011-12-30
// ---------------------------------------------------------------------------------------------

#[test]
fn apia_skipped_date_has_no_session() {
    // 2011-12-29 24:00 (-10) -> 2011-12-31 00:00 (+14) at 12-30T10:00Z: 12-30 never happened.
    // 12-29: 08:00 -10 = 18:00Z, 20:00 -10 = 12-30T06:00Z.
    // 12-30: A = 08:00 resolves to 12-31 08:00 (+14), local date not 12-30: no session.
    // 12-31: 08:00 +14 = 12-30T18:00Z, 20:00 +14 = 12-31T06:00Z.
    let r = rule("Pacific/Apia", "08:00", "20:00", "2h", "ignore");
    assert_eq!(Session::on(&r, date(2011, 12, 30)), None);
    assert_eq!(
        bounds_on(&r, date(2011, 12, 29)),
        pair("2011-12-29T18:00:00Z", "2011-12-30T06:00:00Z")
    );
    assert_eq!(
        bounds_on(&r, date(2011, 12, 31)),
        pair("2011-12-30T18:00:00Z", "2011-12-31T06:00:00Z")
    );
    assert_eq!(
        dates(Session::between(&r, date(2011, 12, 29), date(2011, 12, 31))),
        vec![date(2011, 12, 29), date(2011, 12, 31)]
    );
    // Even A = 00:00 does not exist on 12-30.
    let r = rule("Pacific/Apia", "00:00", "20:00", "2h", "ignore");
    assert_eq!(Session::on(&r, date(2011, 12, 30)), None);
}

#[test]
fn apia_overnight_session_before_the_skipped_date_ends_on_12_31() {
    // A = 22:00, B = 06:00 on 12-29: S = 22:00 -10 = 12-30T08:00Z; E = resolve(12-30, 06:00):
    // 12-30 does not exist, so it moves forward by the 24h jump to 12-31 06:00 +14 =
    // 12-30T16:00Z. 8h elapsed.
    let r = rule("Pacific/Apia", "22:00", "06:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2011, 12, 29)),
        pair("2011-12-30T08:00:00Z", "2011-12-30T16:00:00Z")
    );
    assert_eq!(Session::on(&r, date(2011, 12, 30)), None);
}

#[test]
fn apia_event_on_12_31_belongs_to_the_overnight_session_of_12_29() {
    // Same session as above, [12-30T08:00Z, 12-30T16:00Z]. An event at 12-30T15:00Z (local
    // 12-31 05:00 +14) satisfies S <= t <= E of the 12-29 session (§3), so `containing` must
    // return it. The session of 12-31 starts at 12-31 22:00 +14 = 12-31T08:00Z and does not
    // contain it.
    let r = rule("Pacific/Apia", "22:00", "06:00", "2h", "ignore");
    let t = ts("2011-12-30T15:00:00Z");
    assert!(session(&r, date(2011, 12, 29)).contains(t));
    assert_eq!(dates(Session::containing(&r, t)), vec![date(2011, 12, 29)]);
}

// ---------------------------------------------------------------------------------------------
// Sessions across midnight
// ---------------------------------------------------------------------------------------------

#[test]
fn session_across_midnight_ends_on_the_next_date() {
    // Amsterdam, summer (CEST = +2). A = 22:00, B = 06:00 (B <= A): on 2025-06-01,
    // S = 22:00 CEST = 20:00Z, E = 06-02 06:00 CEST = 06-02T04:00Z.
    let r = rule("Europe/Amsterdam", "22:00", "06:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 6, 1)),
        pair("2025-06-01T20:00:00Z", "2025-06-02T04:00:00Z")
    );
    assert_eq!(
        dates(Session::between(&r, date(2025, 6, 1), date(2025, 6, 2))),
        vec![date(2025, 6, 1), date(2025, 6, 2)]
    );
}

#[test]
fn event_after_midnight_belongs_to_the_previous_dates_session() {
    // 01:00 CEST on 06-02 = 06-01T23:00Z lies in [06-01T20:00Z, 06-02T04:00Z]: the session of
    // 2025-06-01. 22:30 CEST on 06-02 = 06-02T20:30Z is in the session of 06-02.
    // 14:00 CEST on 06-02 = 12:00Z is in none.
    let r = rule("Europe/Amsterdam", "22:00", "06:00", "2h", "ignore");
    assert_eq!(
        dates(Session::containing(&r, ts("2025-06-01T23:00:00Z"))),
        vec![date(2025, 6, 1)]
    );
    assert_eq!(
        dates(Session::containing(&r, ts("2025-06-02T20:30:00Z"))),
        vec![date(2025, 6, 2)]
    );
    assert_eq!(
        dates(Session::containing(&r, ts("2025-06-02T12:00:00Z"))),
        Vec::<Date>::new()
    );
    // The end instant E = 06-02T04:00Z is still in the session (both ends inclusive).
    assert_eq!(
        dates(Session::containing(&r, ts("2025-06-02T04:00:00Z"))),
        vec![date(2025, 6, 1)]
    );
}

#[test]
fn alarms_after_midnight_carry_the_session_date() {
    // Same session, G = 2h, no events: [20:00Z,22:00Z] [22:00Z,00:00Z] [00:00Z,02:00Z]
    // [02:00Z,04:00Z], all full. The last two start on 06-02 (local) but D = 2025-06-01.
    // 06-01T20:00Z = 1748808000, then +7200 each.
    let r = rule("Europe/Amsterdam", "22:00", "06:00", "2h", "ignore");
    let outcome = run(&r, date(2025, 6, 1), &[]);
    assert_eq!(
        alarms(&outcome),
        vec![
            alarm(
                "2025-06-01T20:00:00Z",
                "2025-06-01T22:00:00Z",
                "nta-7-2025-06-01-1748808000"
            ),
            alarm(
                "2025-06-01T22:00:00Z",
                "2025-06-02T00:00:00Z",
                "nta-7-2025-06-01-1748815200"
            ),
            alarm(
                "2025-06-02T00:00:00Z",
                "2025-06-02T02:00:00Z",
                "nta-7-2025-06-01-1748822400"
            ),
            alarm(
                "2025-06-02T02:00:00Z",
                "2025-06-02T04:00:00Z",
                "nta-7-2025-06-01-1748829600"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// A = B: a full day
// ---------------------------------------------------------------------------------------------

#[test]
fn start_equal_to_end_is_a_full_day_of_24_23_or_25_hours() {
    // A = B = 12:00 in Amsterdam.
    // 2025-06-01: 10:00Z -> 06-02 10:00Z (24h).
    // 2025-03-29: 12:00 CET = 11:00Z -> 03-30 12:00 CEST = 10:00Z (23h).
    // 2025-10-25: 12:00 CEST = 10:00Z -> 10-26 12:00 CET = 11:00Z (25h).
    let r = rule("Europe/Amsterdam", "12:00", "12:00", "2h", "ignore");
    let hours = |d: Date| {
        let s = session(&r, d);
        s.end.duration_since(s.start).as_hours()
    };
    assert_eq!(
        bounds_on(&r, date(2025, 6, 1)),
        pair("2025-06-01T10:00:00Z", "2025-06-02T10:00:00Z")
    );
    assert_eq!(
        bounds_on(&r, date(2025, 3, 29)),
        pair("2025-03-29T11:00:00Z", "2025-03-30T10:00:00Z")
    );
    assert_eq!(
        bounds_on(&r, date(2025, 10, 25)),
        pair("2025-10-25T10:00:00Z", "2025-10-26T11:00:00Z")
    );
    assert_eq!(
        (
            hours(date(2025, 6, 1)),
            hours(date(2025, 3, 29)),
            hours(date(2025, 10, 25))
        ),
        (24, 23, 25)
    );
    // A = B = 00:00 on the DST days themselves: 03-30 is 23h, 10-26 is 25h.
    let r = rule("Europe/Amsterdam", "00:00", "00:00", "2h", "ignore");
    assert_eq!(
        bounds_on(&r, date(2025, 3, 30)),
        pair("2025-03-29T23:00:00Z", "2025-03-30T22:00:00Z")
    );
    assert_eq!(
        bounds_on(&r, date(2025, 10, 26)),
        pair("2025-10-25T22:00:00Z", "2025-10-26T23:00:00Z")
    );
}

#[test]
fn full_day_alarm_counts_follow_elapsed_length() {
    // G = 2h, no events, A = B = 12:00.
    // 24h: 12 full windows, no partial -> 12 alarms with either setting.
    // 23h (03-29): 11 full windows + [03-30T09:00Z, 10:00Z] partial -> 11 / 12 alarms.
    // 25h (10-25): 12 full windows + [10-26T10:00Z, 11:00Z] partial -> 12 / 13 alarms.
    let ignore = rule("Europe/Amsterdam", "12:00", "12:00", "2h", "ignore");
    let alarm_rule = rule("Europe/Amsterdam", "12:00", "12:00", "2h", "alarm");
    let count = |r: &Rule, d: Date| run(r, d, &[]).alarms.len();
    assert_eq!(count(&ignore, date(2025, 6, 1)), 12);
    assert_eq!(count(&alarm_rule, date(2025, 6, 1)), 12);
    assert_eq!(count(&ignore, date(2025, 3, 29)), 11);
    assert_eq!(count(&alarm_rule, date(2025, 3, 29)), 12);
    assert_eq!(count(&ignore, date(2025, 10, 25)), 12);
    assert_eq!(count(&alarm_rule, date(2025, 10, 25)), 13);
    let last = |r: &Rule, d: Date| {
        let a = run(r, d, &[]).alarms.last().copied().unwrap();
        (a.window.start.to_string(), a.window.end.to_string())
    };
    assert_eq!(
        last(&alarm_rule, date(2025, 3, 29)),
        pair("2025-03-30T09:00:00Z", "2025-03-30T10:00:00Z")
    );
    assert_eq!(
        last(&alarm_rule, date(2025, 10, 25)),
        pair("2025-10-26T10:00:00Z", "2025-10-26T11:00:00Z")
    );
}

#[test]
fn full_days_touch_and_share_their_boundary_instant() {
    // A = B = 08:00 CEST: the session of 06-01 ends at 06-02T06:00Z, where the session of
    // 06-02 starts. That instant is in both.
    let r = rule("Europe/Amsterdam", "08:00", "08:00", "2h", "ignore");
    assert_eq!(
        dates(Session::containing(&r, ts("2025-06-02T06:00:00Z"))),
        vec![date(2025, 6, 1), date(2025, 6, 2)]
    );
}

// ---------------------------------------------------------------------------------------------
// Gap longer than the session
// ---------------------------------------------------------------------------------------------

#[test]
fn gap_longer_than_session_gives_one_partial_window() {
    // UTC 08:00–09:00, G = 3h: first window [08:00, min(11:00, 09:00)] = [08:00, 09:00],
    // partial. ignore: nothing, SUCCESS. alarm: one alarm, 08:00Z = 1735718400.
    let ignore = rule("UTC", "08:00", "09:00", "3h", "ignore");
    let outcome = run(&ignore, date(2025, 1, 1), &[]);
    assert!(outcome.alarms.is_empty());
    assert_eq!(outcome.result, SessionResult::Success);

    let alarm_rule = rule("UTC", "08:00", "09:00", "3h", "alarm");
    let outcome = run(&alarm_rule, date(2025, 1, 1), &[]);
    assert_eq!(
        alarms(&outcome),
        vec![alarm(
            "2025-01-01T08:00:00Z",
            "2025-01-01T09:00:00Z",
            "nta-7-2025-01-01-1735718400"
        )]
    );
    assert_eq!(outcome.result, SessionResult::AlarmRaised);
}

// ---------------------------------------------------------------------------------------------
// Events at S, at a deadline, at E
// ---------------------------------------------------------------------------------------------

#[test]
fn event_exactly_at_start_is_observed_and_restarts_the_same_window() {
    // UTC 08:00–12:00, G = 2h, event at S = 08:00: observed in [08:00, 10:00], the window
    // becomes [08:00, 10:00] again. Then [08:00,10:00] and [10:00,12:00] close with alarms.
    // 08:00Z = 1735718400, 10:00Z = 1735725600.
    let r = rule("UTC", "08:00", "12:00", "2h", "ignore");
    let events = [ts("2025-01-01T08:00:00Z")];
    let mut observed = Vec::new();
    let outcome = evaluate_steps(&r, session(&r, date(2025, 1, 1)), &events, |step| {
        if let Step::Observed { at, window, .. } = step {
            observed.push((at, window.start, window.end));
        }
    });
    assert_eq!(
        observed,
        vec![(
            ts("2025-01-01T08:00:00Z"),
            ts("2025-01-01T08:00:00Z"),
            ts("2025-01-01T10:00:00Z")
        )]
    );
    assert_eq!(outcome.events, 1);
    assert_eq!(
        alarms(&outcome),
        vec![
            alarm(
                "2025-01-01T08:00:00Z",
                "2025-01-01T10:00:00Z",
                "nta-7-2025-01-01-1735718400"
            ),
            alarm(
                "2025-01-01T10:00:00Z",
                "2025-01-01T12:00:00Z",
                "nta-7-2025-01-01-1735725600"
            ),
        ]
    );
}

#[test]
fn event_exactly_at_deadline_satisfies_the_window() {
    // UTC 08:00–12:00, G = 2h. Event at u = 10:00: s <= t <= u, so [08:00, 10:00] does not
    // alarm; the window becomes [10:00, 12:00], which closes full with an alarm
    // (10:00Z = 1735725600).
    let r = rule("UTC", "08:00", "12:00", "2h", "ignore");
    let outcome = run(&r, date(2025, 1, 1), &["2025-01-01T10:00:00Z"]);
    assert_eq!(
        alarms(&outcome),
        vec![alarm(
            "2025-01-01T10:00:00Z",
            "2025-01-01T12:00:00Z",
            "nta-7-2025-01-01-1735725600"
        )]
    );
    // One second later is too late for [08:00, 10:00]: it alarms; the next window
    // [10:00, 12:00] takes the event and becomes [10:00:01, 12:00], partial (ignored).
    let outcome = run(&r, date(2025, 1, 1), &["2025-01-01T10:00:01Z"]);
    assert_eq!(
        alarms(&outcome),
        vec![alarm(
            "2025-01-01T08:00:00Z",
            "2025-01-01T10:00:00Z",
            "nta-7-2025-01-01-1735718400"
        )]
    );
    // SessionState: the deadline itself is Observed, one second later is Ahead.
    let state = SessionState::begin(session(&r, date(2025, 1, 1)), r.gap, r.partial_final_window);
    assert_eq!(
        state.classify(ts("2025-01-01T10:00:00Z")),
        EventClass::Observed
    );
    assert_eq!(
        state.classify(ts("2025-01-01T10:00:01Z")),
        EventClass::Ahead
    );
}

#[test]
fn event_exactly_at_end_gives_a_zero_length_window_that_never_alarms() {
    // UTC 08:00–12:00, G = 2h, events 10:00 and 12:00 = E: [08,10] <- 10:00; [10,12] <- 12:00;
    // final window [12:00, 12:00], zero length: no alarm even with `alarm`. SUCCESS.
    for partial in ["ignore", "alarm"] {
        let r = rule("UTC", "08:00", "12:00", "2h", partial);
        let events = [ts("2025-01-01T10:00:00Z"), ts("2025-01-01T12:00:00Z")];
        let mut closed = Vec::new();
        let outcome = evaluate_steps(&r, session(&r, date(2025, 1, 1)), &events, |step| {
            if let Step::Closed(c) = step {
                closed.push((c.window.start, c.window.end, c.alarm.is_some(), c.next));
            }
        });
        assert_eq!(
            closed,
            vec![(
                ts("2025-01-01T12:00:00Z"),
                ts("2025-01-01T12:00:00Z"),
                false,
                None
            )],
            "{partial}"
        );
        assert!(outcome.alarms.is_empty(), "{partial}");
        assert_eq!(outcome.result, SessionResult::Success, "{partial}");
    }
    // G = 3h, event only at E = 12:00, `alarm`: [08:00, 11:00] closes full (alarm,
    // 1735718400); [11:00, 12:00] takes the event; [12:00, 12:00] does not alarm.
    let r = rule("UTC", "08:00", "12:00", "3h", "alarm");
    let outcome = run(&r, date(2025, 1, 1), &["2025-01-01T12:00:00Z"]);
    assert_eq!(
        alarms(&outcome),
        vec![alarm(
            "2025-01-01T08:00:00Z",
            "2025-01-01T11:00:00Z",
            "nta-7-2025-01-01-1735718400"
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Duplicates, events outside the session, late events
// ---------------------------------------------------------------------------------------------

#[test]
fn two_events_at_the_same_instant_count_twice_but_alarm_once() {
    // The §7 example with 09:10 CEST (07:10Z) given twice: the core sees two events (replay
    // dedupes by id before it), both observed; the second restarts [07:10Z, 09:10Z] to the
    // same window. Alarms are the same 4 as with one event.
    let r = rule("Europe/Amsterdam", "08:00", "20:00", "2h", "ignore");
    let once = run(&r, date(2025, 3, 30), &EXAMPLE_EVENTS);
    let twice = run(
        &r,
        date(2025, 3, 30),
        &[
            "2025-03-30T07:10:00Z",
            "2025-03-30T07:10:00Z",
            "2025-03-30T07:40:00Z",
            "2025-03-30T11:00:00Z",
        ],
    );
    assert_eq!(once.events, 3);
    assert_eq!(twice.events, 4);
    assert_eq!(alarms(&twice), alarms(&once));
    assert_eq!(twice.alarms.len(), 4);
    assert_eq!(twice.result, once.result);
}

#[test]
fn events_outside_the_session_are_ignored_and_classified_outside() {
    // UTC 08:00–12:00, G = 2h. 07:59:59 (before S), 12:00:01 (after E), the previous and the
    // next day: none belongs to the session; the outcome is that of no events:
    // [08,10] and [10,12] alarm (1735718400, 1735725600).
    let r = rule("UTC", "08:00", "12:00", "2h", "ignore");
    let outside = [
        "2024-12-31T09:00:00Z",
        "2025-01-01T07:59:59Z",
        "2025-01-01T12:00:01Z",
        "2025-01-02T09:00:00Z",
    ];
    let outcome = run(&r, date(2025, 1, 1), &outside);
    assert_eq!(outcome.events, 0);
    assert_eq!(alarms(&outcome), alarms(&run(&r, date(2025, 1, 1), &[])));
    assert_eq!(
        alarms(&outcome),
        vec![
            alarm(
                "2025-01-01T08:00:00Z",
                "2025-01-01T10:00:00Z",
                "nta-7-2025-01-01-1735718400"
            ),
            alarm(
                "2025-01-01T10:00:00Z",
                "2025-01-01T12:00:00Z",
                "nta-7-2025-01-01-1735725600"
            ),
        ]
    );
    let mut state =
        SessionState::begin(session(&r, date(2025, 1, 1)), r.gap, r.partial_final_window);
    for t in outside {
        assert_eq!(state.classify(ts(t)), EventClass::Outside, "{t}");
        assert_eq!(state.observe(ts(t)), EventClass::Outside, "{t}");
    }
    assert_eq!(state.window.start, ts("2025-01-01T08:00:00Z"));
    assert_eq!(state.window.end, ts("2025-01-01T10:00:00Z"));
    // S and E themselves belong to the session.
    assert_eq!(
        state.classify(ts("2025-01-01T08:00:00Z")),
        EventClass::Observed
    );
    assert_eq!(
        state.classify(ts("2025-01-01T12:00:00Z")),
        EventClass::Ahead
    );
}

#[test]
fn late_event_never_moves_the_window_back() {
    // UTC 08:00–20:00, G = 2h. Event 09:00 -> [09:00, 11:00]. Close at 11:00: alarm for
    // [09:00, 11:00] (09:00Z = 1735722000), next [11:00, 13:00]. Then an event at 10:30
    // arrives: t < s = 11:00, Late; the window stays [11:00, 13:00]. 11:00 itself is
    // Observed (s <= t).
    let r = rule("UTC", "08:00", "20:00", "2h", "ignore");
    let mut state =
        SessionState::begin(session(&r, date(2025, 1, 1)), r.gap, r.partial_final_window);
    assert_eq!(
        state.observe(ts("2025-01-01T09:00:00Z")),
        EventClass::Observed
    );
    let closed = state.close().unwrap();
    assert_eq!(
        closed.alarm.map(|a| a.reference_id()),
        Some("nta-7-2025-01-01-1735722000".to_string())
    );
    let next = closed.next.unwrap();
    assert_eq!(
        (next.start, next.end),
        (ts("2025-01-01T11:00:00Z"), ts("2025-01-01T13:00:00Z"))
    );
    for late in [
        "2025-01-01T10:30:00Z",
        "2025-01-01T08:00:00Z",
        "2025-01-01T10:59:59Z",
    ] {
        assert_eq!(state.classify(ts(late)), EventClass::Late, "{late}");
        assert_eq!(state.observe(ts(late)), EventClass::Late, "{late}");
        assert_eq!(state.window, next, "{late}");
    }
    assert_eq!(state.alarms, 1);
    assert_eq!(
        state.classify(ts("2025-01-01T11:00:00Z")),
        EventClass::Observed
    );
    // An event earlier than the current window after an observation is late, too.
    assert_eq!(
        state.observe(ts("2025-01-01T12:00:00Z")),
        EventClass::Observed
    );
    assert_eq!(state.observe(ts("2025-01-01T11:30:00Z")), EventClass::Late);
    assert_eq!(state.window.start, ts("2025-01-01T12:00:00Z"));
    assert_eq!(state.window.end, ts("2025-01-01T14:00:00Z"));
}

#[test]
fn events_after_the_session_ended_are_late() {
    // UTC 08:00–09:00, G = 2h: one partial window; after it closes the session has ended
    // (SUCCESS with ignore) and any event inside [S, E] is Late, outside it Outside.
    let r = rule("UTC", "08:00", "09:00", "2h", "ignore");
    let mut state =
        SessionState::begin(session(&r, date(2025, 1, 1)), r.gap, r.partial_final_window);
    let closed = state.close().unwrap();
    assert_eq!(closed.alarm, None);
    assert_eq!(closed.next, None);
    assert_eq!(state.result, SessionResult::Success);
    assert_eq!(state.observe(ts("2025-01-01T08:30:00Z")), EventClass::Late);
    assert_eq!(state.observe(ts("2025-01-01T09:00:00Z")), EventClass::Late);
    assert_eq!(
        state.observe(ts("2025-01-01T09:00:01Z")),
        EventClass::Outside
    );
    assert_eq!(state.close(), None);
}

// ---------------------------------------------------------------------------------------------
// §6 rule changes in a running session
// ---------------------------------------------------------------------------------------------

#[test]
fn new_gap_applies_from_the_next_window() {
    // UTC 08:00–20:00, G = 2h; the gap becomes 1h while [08:00, 10:00] runs: that window
    // keeps its 2h and alarms; the next one is [10:00, 11:00].
    let r = rule("UTC", "08:00", "20:00", "2h", "ignore");
    let mut state =
        SessionState::begin(session(&r, date(2025, 1, 1)), r.gap, r.partial_final_window);
    state.change_gap(Gap::from_minutes(60).unwrap());
    assert_eq!(state.window.end, ts("2025-01-01T10:00:00Z"));
    let closed = state.close().unwrap();
    assert!(closed.alarm.is_some());
    let next = closed.next.unwrap();
    assert_eq!(
        (next.start, next.end),
        (ts("2025-01-01T10:00:00Z"), ts("2025-01-01T11:00:00Z"))
    );
    // [10:00, 11:00] is a full window of the new gap: it alarms.
    assert!(state.close().unwrap().alarm.is_some());
}

#[test]
fn new_end_reclamps_the_current_window_and_session() {
    // UTC 08:00–20:00, G = 2h. The end moves to 09:00: [08:00, 09:00], the session ends there;
    // partial, no alarm with ignore -> SUCCESS.
    let r = rule("UTC", "08:00", "20:00", "2h", "ignore");
    let mut state =
        SessionState::begin(session(&r, date(2025, 1, 1)), r.gap, r.partial_final_window);
    state.change_end(ts("2025-01-01T09:00:00Z"));
    assert_eq!(state.session.end, ts("2025-01-01T09:00:00Z"));
    assert_eq!(state.window.end, ts("2025-01-01T09:00:00Z"));
    let closed = state.close().unwrap();
    assert_eq!((closed.alarm, closed.next), (None, None));
    assert_eq!(state.result, SessionResult::Success);
}

#[test]
fn disabling_ends_the_session_as_disabled() {
    let r = rule("UTC", "08:00", "20:00", "2h", "ignore");
    let mut state =
        SessionState::begin(session(&r, date(2025, 1, 1)), r.gap, r.partial_final_window);
    state.disable();
    assert_eq!(state.result, SessionResult::Disabled);
    assert_eq!(state.result.as_str(), "DISABLED");
    assert!(!state.is_running());
    assert_eq!(state.close(), None);
}

// ---------------------------------------------------------------------------------------------
// Rule validation
// ---------------------------------------------------------------------------------------------

#[test]
fn rule_validation_errors_name_field_and_value() {
    let good = || RuleInput {
        timezone: "Europe/Amsterdam".into(),
        start: "08:00".into(),
        end: "20:00".into(),
        ..RuleInput::default()
    };
    assert!(good().validate().is_ok());
    let cases: Vec<(RuleInput, &str, &str)> = vec![
        (
            RuleInput {
                timezone: "Europe/Atlantis".into(),
                ..good()
            },
            "timezone",
            "Europe/Atlantis",
        ),
        (
            RuleInput {
                timezone: "".into(),
                ..good()
            },
            "timezone",
            "",
        ),
        (
            RuleInput {
                start: "8am".into(),
                ..good()
            },
            "start",
            "8am",
        ),
        (
            RuleInput {
                start: "24:00".into(),
                ..good()
            },
            "start",
            "24:00",
        ),
        (
            RuleInput {
                end: "20:60".into(),
                ..good()
            },
            "end",
            "20:60",
        ),
        (
            RuleInput {
                end: "".into(),
                ..good()
            },
            "end",
            "",
        ),
        (
            RuleInput {
                gap: "30s".into(),
                ..good()
            },
            "gap",
            "30s",
        ),
        (
            RuleInput {
                gap: "0".into(),
                ..good()
            },
            "gap",
            "0",
        ),
        (
            RuleInput {
                gap: "0m".into(),
                ..good()
            },
            "gap",
            "0m",
        ),
        (
            RuleInput {
                watched_event: "".into(),
                ..good()
            },
            "watched_event",
            "",
        ),
        (
            RuleInput {
                alarm_event: "   ".into(),
                ..good()
            },
            "alarm_event",
            "   ",
        ),
        (
            RuleInput {
                partial_final_window: "maybe".into(),
                ..good()
            },
            "partial_final_window",
            "maybe",
        ),
    ];
    for (input, field, value) in cases {
        let err = input.validate().unwrap_err();
        assert_eq!((err.field, err.value.as_str()), (field, value), "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{field} = {value:?}: ")),
            "{message}"
        );
    }
    // One minute is the smallest gap; seconds are accepted only as whole minutes.
    let one = RuleInput {
        gap: "1m".into(),
        ..good()
    }
    .validate()
    .unwrap();
    assert_eq!(one.gap.minutes(), 1);
    assert_eq!(
        RuleInput {
            gap: "59s".into(),
            ..good()
        }
        .validate()
        .unwrap_err()
        .field,
        "gap"
    );
    assert_eq!(
        PartialFinalWindow::default(),
        good().validate().unwrap().partial_final_window
    );
}
