//! `replay` of a 1,000,000-row CSV against the baseline of reading the same file with the same
//! CSV reader alone. The acceptance bound is replay ≤ 2 × baseline.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::Path;

use azi3_status_jobs::domain::{RobotId, Rule, RuleInput};
use azi3_status_jobs::replay::{
    CollectOptions, CsvEvents, DateRange, collect_events, csv_reader, expected_rows, replay,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ROWS: u64 = 1_000_000;

/// One row every 5 minutes (about 9.5 years), numeric ids with 1% repeated, like a
/// Megazord export of one robot's TOILET_ACTIVITY history.
fn write_events(path: &Path) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    writeln!(out, "occurred_at,event_name,id,robot_id").unwrap();
    let start = jiff::Timestamp::from_second(1_420_070_400).unwrap();
    for i in 0..ROWS {
        let at = start
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(i * 300 + i % 97).expect("ROWS rows of 5 minutes"),
            ))
            .unwrap();
        let id = if i % 100 == 99 { i - 1 } else { i };
        writeln!(out, "{at},TOILET_ACTIVITY,{},1", 1_000_000 + id).unwrap();
    }
    out.flush().unwrap();
}

fn rule() -> Rule {
    RuleInput {
        robot_id: RobotId::new(1),
        timezone: "Europe/Amsterdam".into(),
        start: "08:00".into(),
        end: "22:00".into(),
        ..RuleInput::default()
    }
    .validate()
    .unwrap()
}

fn csv_only(path: &Path) -> u64 {
    let mut reader = csv_reader(File::open(path).unwrap());
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while reader.read_byte_record(&mut record).unwrap() {
        rows += 1;
    }
    rows
}

fn replay_file(path: &Path, rule: &Rule) -> usize {
    let file = File::open(path).unwrap();
    let options = CollectOptions {
        skip_invalid: false,
        expected_rows: expected_rows(file.metadata().unwrap().len()),
    };
    let mut events = CsvEvents::read_ahead(file, "bench.csv").unwrap();
    let set = collect_events(&mut events, rule, options, |_| {}).unwrap();
    let report = replay(rule, &set, DateRange::default(), false);
    let json = serde_json::to_vec(&report).unwrap();
    json.len()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.csv");
    write_events(&path);
    let rule = rule();
    let mut group = c.benchmark_group("replay_1m_rows");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function("baseline_csv_reader_alone", |b| {
        b.iter(|| black_box(csv_only(&path)))
    });
    group.bench_function("replay", |b| {
        b.iter(|| black_box(replay_file(&path, &rule)))
    });
    group.finish();
    interleaved_ratio(&path, &rule);
}

/// The ratio once more, with the two measured in turn (baseline, replay, baseline, …) so that a
/// change in machine load during the run weighs on both alike; prints the median of the
/// per-pair ratios.
fn interleaved_ratio(path: &Path, rule: &Rule) {
    const PAIRS: usize = 15;
    let mut ratios: Vec<f64> = (0..PAIRS)
        .map(|_| {
            let start = std::time::Instant::now();
            black_box(csv_only(path));
            let baseline = start.elapsed();
            let start = std::time::Instant::now();
            black_box(replay_file(path, rule));
            start.elapsed().as_secs_f64() / baseline.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "replay / baseline, {PAIRS} interleaved pairs: median {:.2}x (min {:.2}x, max {:.2}x)",
        ratios[PAIRS / 2],
        ratios[0],
        ratios[PAIRS - 1]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
