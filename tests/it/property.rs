//! `Session::on` and `evaluate` checked against a deliberately naive reference that shares no
//! code with the domain core: sessions are found by scanning instants minute by minute and
//! reading their local wall-clock time; windows by walking the session minute by minute.
//!
//! Every instant here is a whole minute, and every zone used has whole-minute offsets, so a
//! minute walk visits every instant that matters. Instants are handled as unix minutes (`i64`).

use azi3_status_jobs::domain::RobotId;
use std::collections::BTreeSet;
use std::sync::LazyLock;

use azi3_status_jobs::domain::{Rule, RuleInput, Session, SessionResult, evaluate};
use jiff::civil::{Date, DateTime, Time, date};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

const ZONES: [&str; 7] = [
    "Europe/Amsterdam",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Asia/Kolkata",
    "UTC",
];

/// Days from 2010-01-01 up to and including 2030-12-31.
const DAYS: i64 = 7669;

/// A date next to a clock change, with the local minute of day at which the change happens.
#[derive(Debug, Clone, Copy)]
struct Special {
    date: Date,
    minute_of_day: u32,
}

struct Zone {
    name: &'static str,
    tz: TimeZone,
    /// The local dates of every clock change 2010–2030 (before and after it), and the day on
    /// either side of each; a date may appear more than once.
    specials: Vec<Special>,
}

static ZONE_TABLE: LazyLock<Vec<Zone>> = LazyLock::new(|| {
    ZONES
        .iter()
        .map(|&name| {
            let tz = TimeZone::get(name).unwrap();
            let from: Timestamp = "2010-01-01T00:00:00Z".parse().unwrap();
            let to: Timestamp = "2031-01-01T00:00:00Z".parse().unwrap();
            let mut specials = Vec::new();
            for transition in tz.following(from) {
                let at = transition.timestamp();
                if at >= to {
                    break;
                }
                let before = tz.to_datetime(at - SignedDuration::from_secs(1));
                let after = tz.to_datetime(at);
                let minute_of_day = (u32::from(before.hour().unsigned_abs()) * 60
                    + u32::from(before.minute().unsigned_abs())
                    + 1)
                    % 1440;
                // The day of the change itself twice as often as the days on either side.
                for (local, shift) in [
                    (before.date(), 0),
                    (before.date(), 0),
                    (after.date(), 0),
                    (after.date(), 0),
                    (before.date(), -1),
                    (after.date(), 1),
                ] {
                    specials.push(Special {
                        date: local.checked_add(Span::new().days(shift)).unwrap(),
                        minute_of_day,
                    });
                }
            }
            Zone { name, tz, specials }
        })
        .collect()
});

// ---------------------------------------------------------------------------------------------
// The naive reference
// ---------------------------------------------------------------------------------------------

fn minute_ts(m: i64) -> Timestamp {
    Timestamp::from_second(m * 60).unwrap()
}

fn ts_minute(t: Timestamp) -> i64 {
    assert_eq!(t.subsec_nanosecond(), 0, "{t} is not a whole minute");
    assert_eq!(t.as_second().rem_euclid(60), 0, "{t} is not a whole minute");
    t.as_second().div_euclid(60)
}

/// A wall-clock date-time read as if it were UTC, in minutes: lets wall-clock times be
/// compared and subtracted as plain numbers.
fn civil_minute(dt: DateTime) -> i64 {
    ts_minute(Offset::UTC.to_timestamp(dt).unwrap())
}

/// The local wall-clock time of instant `m`, as a civil minute.
fn local_minute(tz: &TimeZone, m: i64) -> i64 {
    civil_minute(tz.to_datetime(minute_ts(m)))
}

/// Largest distance between an instant and its wall-clock reading in any zone used here
/// (offsets lie within −12h..+14h), with room to spare.
const SCAN: i64 = 15 * 60;

/// Local date `d` at local time `t`, found by scanning instants minute by minute: the earliest
/// instant whose wall-clock reading is `d t`; if no instant has it (a forward jump), the wall
/// time taken with the offset in force just before the jump.
fn naive_resolve(tz: &TimeZone, d: Date, t: Time) -> i64 {
    let target = civil_minute(d.to_datetime(t));
    let mut jump_before: Option<(i64, i64)> = None;
    let mut previous: Option<(i64, i64)> = None;
    for m in target - SCAN..=target + SCAN {
        let local = local_minute(tz, m);
        assert!((local - m).abs() < SCAN, "offset out of the scanned range");
        if local == target {
            return m;
        }
        if let Some((pm, plocal)) = previous
            && plocal < target
            && target < local
            && jump_before.is_none()
        {
            jump_before = Some((pm, plocal));
        }
        previous = Some((m, local));
    }
    let (m, local) = jump_before.expect("a wall time that neither exists nor is skipped");
    let offset_before = local - m;
    target - offset_before
}

/// `(S, E)` in minutes, or `None` when semantics §2 says there is no session.
fn naive_session(tz: &TimeZone, a: Time, b: Time, d: Date) -> Option<(i64, i64)> {
    let s = naive_resolve(tz, d, a);
    if tz.to_datetime(minute_ts(s)).date() != d {
        return None;
    }
    let end_date = if b > a { d } else { d.tomorrow().unwrap() };
    let e = naive_resolve(tz, end_date, b);
    if e <= s {
        return None;
    }
    Some((s, e))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NaiveOutcome {
    /// `(s, u, reference id)`.
    alarms: Vec<(Timestamp, Timestamp, String)>,
    alarm_raised: bool,
    events_in_session: usize,
}

/// Walks `[S, E]` minute by minute with the current window `[s, u]`.
fn naive_evaluate(
    robot: u32,
    d: Date,
    (start, end): (i64, i64),
    gap: i64,
    partial_alarm: bool,
    events: &[i64],
) -> NaiveOutcome {
    let at: BTreeSet<i64> = events.iter().copied().collect();
    let mut alarms = Vec::new();
    let (mut s, mut u) = (start, (start + gap).min(end));
    let mut m = start;
    loop {
        if at.contains(&m) && s <= m && m <= u {
            s = m;
            u = (m + gap).min(end);
        }
        if m == u {
            if u - s == gap || (partial_alarm && u > s) {
                let reference = format!(
                    "nta-{robot}-{:04}-{:02}-{:02}-{}",
                    d.year(),
                    d.month(),
                    d.day(),
                    s * 60
                );
                alarms.push((minute_ts(s), minute_ts(u), reference));
            }
            if u == end {
                break;
            }
            s = u;
            u = (u + gap).min(end);
        }
        m += 1;
    }
    NaiveOutcome {
        alarm_raised: !alarms.is_empty(),
        alarms,
        events_in_session: events.iter().filter(|&&t| start <= t && t <= end).count(),
    }
}

// ---------------------------------------------------------------------------------------------
// Random cases
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Case {
    zone: usize,
    /// Pick a date next to a clock change (when the zone has any).
    special: bool,
    pick: Index,
    day: i64,
    /// Put A (and maybe B) near the local time of that clock change.
    near: bool,
    near_a: i64,
    near_b: i64,
    a: u32,
    b: u32,
    b_mode: u8,
    gap: u32,
    partial_alarm: bool,
    robot: u32,
    events: Vec<(u8, u32)>,
}

fn minute_of_day() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => 0u32..1440,
        1 => 0u32..300,
        1 => 1320u32..1440,
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            0..ZONES.len(),
            prop::bool::weighted(0.75),
            any::<Index>(),
            0..=DAYS,
            prop::bool::weighted(0.7),
            -75i64..=75,
            -75i64..=75,
        ),
        (
            minute_of_day(),
            minute_of_day(),
            0u8..8,
            prop_oneof![1u32..=300, 1u32..=10],
            any::<bool>(),
            any::<u32>(),
            prop::collection::vec((0u8..12, any::<u32>()), 0..20),
        ),
    )
        .prop_map(
            |(
                (zone, special, pick, day, near, near_a, near_b),
                (a, b, b_mode, gap, partial_alarm, robot, events),
            )| Case {
                zone,
                special,
                pick,
                day,
                near,
                near_a,
                near_b,
                a,
                b,
                b_mode,
                gap,
                partial_alarm,
                robot,
                events,
            },
        )
}

/// The concrete rule and date of a case.
struct Setup {
    zone: &'static Zone,
    date: Date,
    a: Time,
    b: Time,
    rule: Rule,
}

fn time_of(minute: u32) -> Time {
    // A minute of the day: its hour (below 24) and minute (below 60) fit i8.
    let hour = i8::try_from(minute / 60).unwrap();
    Time::new(hour, i8::try_from(minute % 60).unwrap(), 0, 0).unwrap()
}

fn setup(c: &Case) -> Setup {
    let zone = &ZONE_TABLE[c.zone];
    let special = (c.special && !zone.specials.is_empty())
        .then(|| zone.specials[c.pick.index(zone.specials.len())]);
    let date = match special {
        Some(s) => s.date,
        None => date(2010, 1, 1)
            .checked_add(Span::new().days(c.day))
            .unwrap(),
    };
    let near = |offset: i64| {
        special.map(|s| {
            let minute = (i64::from(s.minute_of_day) + offset).rem_euclid(1440);
            u32::try_from(minute).expect("a minute of the day")
        })
    };
    let a = match (c.near, near(c.near_a)) {
        (true, Some(m)) => m,
        _ => c.a,
    };
    let b = match c.b_mode {
        0 => a,
        1..=3 => near(c.near_b).unwrap_or(c.b),
        // A short session just after A: with A in a forward jump, E may come out at or before S.
        4 => (a + 1 + u32::try_from(c.near_b.unsigned_abs() % 60).expect("below 60")) % 1440,
        _ => c.b,
    };
    let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
    let rule = RuleInput {
        robot_id: RobotId::new(c.robot),
        timezone: zone.name.to_string(),
        start: hhmm(a),
        end: hhmm(b),
        gap: format!("{}m", c.gap),
        partial_final_window: if c.partial_alarm { "alarm" } else { "ignore" }.to_string(),
        ..RuleInput::default()
    }
    .validate()
    .unwrap();
    Setup {
        zone,
        date,
        a: time_of(a),
        b: time_of(b),
        rule,
    }
}

/// Event instants (minutes) in and around `[S, E]`: anywhere within three hours of it, exactly
/// at S or E, one minute either side of them, at a deadline of the windows that start at S,
/// at the deadline of an earlier event, or well after the session. Sorted, duplicates kept.
fn events_of(c: &Case, (s, e): (i64, i64)) -> Vec<i64> {
    let gap = i64::from(c.gap);
    let mut out: Vec<i64> = Vec::new();
    for &(kind, x) in &c.events {
        let x = i64::from(x);
        let t = match kind {
            0..=3 => s - 180 + x % (e - s + 361),
            4 => s,
            5 => e,
            6 => s + (x % 13) * gap,
            7 => match out.len() {
                0 => s + gap,
                n => out[usize::try_from(x).expect("x is a u32") % n] + gap,
            },
            8 => [s - 1, s + 1, e - 1, e + 1][usize::try_from(x % 4).expect("x is a u32")],
            9 => e + 1 + x % 3000,
            10 => s - 1 - x % 3000,
            _ => e - (x % 13) * gap,
        };
        out.push(t);
    }
    out.sort_unstable();
    out
}

fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

fn core_alarms(
    outcome: &azi3_status_jobs::domain::SessionOutcome,
) -> Vec<(Timestamp, Timestamp, String)> {
    outcome
        .alarms
        .iter()
        .map(|a| (a.window.start, a.window.end, a.reference_id()))
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn session_on_matches_a_minute_scan(c in case()) {
        let set = setup(&c);
        let naive = naive_session(&set.zone.tz, set.a, set.b, set.date);
        let core = Session::on(&set.rule, set.date);
        prop_assert_eq!(
            core.map(|s| (ts_minute(s.start), ts_minute(s.end))),
            naive,
            "{} {} A={} B={}", set.zone.name, set.date, set.a, set.b
        );
        if let Some(s) = core {
            prop_assert_eq!(s.date, set.date);
            prop_assert_eq!(s.robot_id, RobotId::new(c.robot));
        }
    }

    #[test]
    fn evaluate_matches_a_minute_walk(c in case()) {
        let set = setup(&c);
        let core_session = Session::on(&set.rule, set.date);
        let Some(bounds) = naive_session(&set.zone.tz, set.a, set.b, set.date) else {
            prop_assert_eq!(core_session, None);
            return Ok(());
        };
        let session = core_session.expect("the naive reference found a session");
        prop_assert_eq!((ts_minute(session.start), ts_minute(session.end)), bounds);

        let events = events_of(&c, bounds);
        let instants: Vec<Timestamp> = events.iter().map(|&m| minute_ts(m)).collect();
        let outcome = evaluate(&set.rule, session, &instants);
        let naive = naive_evaluate(
            c.robot,
            set.date,
            bounds,
            i64::from(c.gap),
            c.partial_alarm,
            &events,
        );
        let context = format!(
            "{} {} A={} B={} G={}m partial={} S={} E={} events={:?}",
            set.zone.name,
            set.date,
            set.a,
            set.b,
            c.gap,
            set.rule.partial_final_window,
            session.start,
            session.end,
            instants.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        );
        prop_assert_eq!(core_alarms(&outcome), naive.alarms, "{}", context);
        let expected = if naive.alarm_raised {
            SessionResult::AlarmRaised
        } else {
            SessionResult::Success
        };
        prop_assert_eq!(outcome.result, expected, "{}", context);
        prop_assert_eq!(outcome.events, naive.events_in_session, "{}", context);

        // The same instants without duplicates give the same alarms and result.
        let mut distinct = instants.clone();
        distinct.dedup();
        let once = evaluate(&set.rule, session, &distinct);
        prop_assert_eq!(core_alarms(&once), core_alarms(&outcome), "{}", context);
        prop_assert_eq!(once.result, outcome.result, "{}", context);
    }
}

// ---------------------------------------------------------------------------------------------
// Session::containing, around every clock change
// ---------------------------------------------------------------------------------------------

/// For every zone, every date next to a clock change 2010–2030 and a set of rules (across
/// midnight, full days, around the change), `Session::containing(t)` for instants at and
/// around S and E is exactly the set of dates whose session has `S ≤ t ≤ E` (semantics §3),
/// found by trying every date from three days before the local date of `t` to two after.
#[test]
fn containing_matches_every_session_that_holds_the_instant() {
    let shapes = [
        ("22:00", "06:00"),
        ("08:00", "08:00"),
        ("00:00", "00:00"),
        ("23:30", "00:30"),
        ("02:30", "03:15"),
        ("01:45", "01:15"),
        ("12:00", "20:00"),
    ];
    let mut failures = Vec::new();
    for zone in ZONE_TABLE.iter() {
        let rules: Vec<Rule> = shapes
            .iter()
            .map(|(a, b)| {
                RuleInput {
                    timezone: zone.name.to_string(),
                    start: a.to_string(),
                    end: b.to_string(),
                    ..RuleInput::default()
                }
                .validate()
                .unwrap()
            })
            .collect();
        let dates: BTreeSet<Date> = zone.specials.iter().map(|s| s.date).collect();
        for rule in &rules {
            for &d in &dates {
                let Some(session) = Session::on(rule, d) else {
                    continue;
                };
                let minute = SignedDuration::from_mins(1);
                for t in [
                    session.start - minute,
                    session.start,
                    session.start + minute,
                    session.end - minute,
                    session.end,
                    session.end + minute,
                ] {
                    let local = rule.timezone.to_datetime(t).date();
                    let expected: Vec<Date> = (-3..=2)
                        .map(|k| local.checked_add(Span::new().days(k)).unwrap())
                        .filter(|&day| Session::on(rule, day).is_some_and(|s| s.contains(t)))
                        .collect();
                    let got: Vec<Date> = Session::containing(rule, t).map(|s| s.date).collect();
                    if got != expected {
                        failures.push(format!(
                            "{} A={} B={} t={t} (local {}): containing {got:?}, sessions {expected:?}",
                            zone.name,
                            rule.start,
                            rule.end,
                            rule.timezone.to_datetime(t),
                        ));
                    }
                }
            }
        }
    }
    let failures: BTreeSet<String> = failures.into_iter().collect();
    assert!(
        failures.is_empty(),
        "{}",
        failures.into_iter().collect::<Vec<_>>().join("\n")
    );
}
