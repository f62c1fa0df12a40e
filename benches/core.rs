//! Throughput of the monitoring core: 1,000,000 events over 10,000 robots and 30 days.
//!
//! Per robot: resolve its 30 sessions in its zone, cut its sorted events into them and run the
//! window state machine — everything `replay` and the live service decide, without I/O.

use std::hint::black_box;

use azi3_status_jobs::domain::{RobotId, Rule, RuleInput, Session, evaluate};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use jiff::civil::date;

const ROBOTS: u32 = 10_000;
const EVENTS: usize = 1_000_000;
const DAYS: i64 = 30;
const ZONES: [&str; 5] = [
    "Europe/Amsterdam",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Sao_Paulo",
];

/// A small deterministic generator (SplitMix64), so every run measures the same data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

struct Robot {
    rule: Rule,
    events: Vec<Timestamp>,
}

fn robots() -> Vec<Robot> {
    let mut rng = SplitMix(7);
    // 2025-03-15 .. 2025-04-14 spans the spring-forward days of the northern zones.
    let base = Timestamp::from_second(1_742_000_000).unwrap().as_second();
    let per_robot = EVENTS / ROBOTS as usize;
    (0..ROBOTS)
        .map(|robot_id| {
            let rule = RuleInput {
                robot_id: RobotId::new(robot_id),
                timezone: ZONES[robot_id as usize % ZONES.len()].into(),
                start: "08:00".into(),
                end: if robot_id % 7 == 0 { "06:00" } else { "22:00" }.into(),
                gap: "120m".into(),
                ..RuleInput::default()
            }
            .validate()
            .unwrap();
            let mut events: Vec<Timestamp> = (0..per_robot)
                .map(|_| {
                    let offset = i64::try_from(rng.next() % (DAYS as u64 * 86_400))
                        .expect("below DAYS days of seconds");
                    Timestamp::from_second(base + offset).unwrap()
                })
                .collect();
            events.sort_unstable();
            Robot { rule, events }
        })
        .collect()
}

fn evaluate_all(robots: &[Robot]) -> usize {
    let first = date(2025, 3, 15);
    let last = first.checked_add(jiff::Span::new().days(DAYS - 1)).unwrap();
    let mut alarms = 0;
    for robot in robots {
        for session in Session::between(&robot.rule, first, last) {
            let lo = robot.events.partition_point(|t| *t < session.start);
            let hi = robot.events.partition_point(|t| *t <= session.end);
            alarms += evaluate(&robot.rule, session, &robot.events[lo..hi])
                .alarms
                .len();
        }
    }
    alarms
}

fn core(c: &mut Criterion) {
    let robots = robots();
    let mut group = c.benchmark_group("core");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("evaluate_1m_events_10k_robots_30_days", |b| {
        b.iter(|| black_box(evaluate_all(black_box(&robots))))
    });
    group.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
