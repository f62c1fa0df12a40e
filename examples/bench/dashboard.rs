//! The dashboard scenario: a year of history for 1,000 robots (every day a finished session
//! of the rule 08:00–20:00 UTC, gap 2 h, with events at 09:00, 10:30 and 12:00, the 4 alarms
//! that follow, sent, and their 7 records), then the day view of random robots on
//! random days and the list of robots, timed from this process on loopback; baseline: `GET
//! /health` of the same service in the same loop. The history is written with `INSERT …
//! SELECT` over small number tables, so that a year for 1,000 robots (some 7 million rows)
//! takes seconds, not the hours the service's own transactions would.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, Executor};

use super::{
    ACTIVITY, ALARM, Backend, Bench, Database, Service, emit, insert_rules, migrate, progress,
    round3, summary,
};

/// Events, alarms and records per session day.
const EVENTS_PER_DAY: i64 = 3;
const ALARMS_PER_DAY: i64 = 4;

/// The dashboard scenario on `backend` with `robots` robots and `days` days of history each.
pub async fn dashboard_case(
    bench: &Bench,
    backend: Backend,
    robots: usize,
    days: i64,
    requests: usize,
) -> Result<()> {
    progress(format!(
        "dashboard: {days} days of history for {robots} robots on {}",
        backend.name()
    ));
    let db = bench.create_database(backend, "dashboard").await?;
    let result = run(bench, &db, robots, days, requests).await;
    bench.drop_database(&db).await;
    result
}

async fn run(
    bench: &Bench,
    db: &Database,
    robots: usize,
    days: i64,
    requests: usize,
) -> Result<()> {
    let label = bench.next_label("dashboard");
    let config = bench.args.work_dir.join(format!("{label}.toml"));
    let log = bench.args.work_dir.join(format!("{label}.log"));
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\nbootstrap_shared_schema = true\n\n[service]\ninstance_id = \"bench\"\n",
            db.url
        ),
    )?;
    migrate(bench, &config)?;
    let today = TimeZone::UTC.to_datetime(Timestamp::now()).date();
    insert_rules(db, robots, 120, Timestamp::now()).await?;
    let written = Instant::now();
    let rows = write_history(bench, db, &config, robots, today, days).await?;
    let seeding = written.elapsed().as_secs_f64();
    progress(format!(
        "  {rows} rows of history written in {seeding:.1} s"
    ));
    let mut service = Service::spawn(bench, &config, &log, &[])?;
    service
        .wait_ready(&bench.http, Duration::from_secs(60))
        .await?;
    let base = service.base_url.clone();
    // The same robots and days for every backend and run: a fixed walk over them.
    let mut pick = 7_u64;
    let mut next = |n: u64| {
        pick = pick
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (pick >> 33) % n
    };
    let mut day_view = Vec::with_capacity(requests);
    let mut health = Vec::with_capacity(requests);
    for _ in 0..requests {
        let robot = next(robots as u64) + 1;
        let back = i64::try_from(next(u64::try_from(days)?))? + 1;
        let date = today.checked_sub(Span::new().days(back))?;
        let started = Instant::now();
        let answer = bench
            .http
            .get(format!("{base}/robots/{robot}?date={date}"))
            .send()
            .await?;
        let status = answer.status().as_u16();
        let page = answer.text().await?;
        day_view.push(started.elapsed().as_secs_f64() * 1000.0);
        if status != 200
            || page.matches("data-kind=\"alarm\"").count() != usize::try_from(ALARMS_PER_DAY)?
        {
            bail!(
                "/robots/{robot}?date={date} answered {status} without its {ALARMS_PER_DAY} alarms"
            );
        }
        let started = Instant::now();
        bench
            .http
            .get(format!("{base}/health"))
            .send()
            .await?
            .bytes()
            .await?;
        health.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut list = Vec::new();
    for _ in 0..(requests / 10).max(3) {
        let started = Instant::now();
        let answer = bench.http.get(format!("{base}/")).send().await?;
        let page = answer.text().await?;
        list.push(started.elapsed().as_secs_f64() * 1000.0);
        if page.matches("<tr data-robot=").count() != robots {
            bail!("/ did not list {robots} robots");
        }
    }
    service.kill().await;
    let day = summary(day_view);
    let base_line = summary(health);
    let p99 = day["p99"].as_f64().unwrap_or(f64::MAX);
    let ratio = p99 / base_line["p99"].as_f64().unwrap_or(1.0).max(1e-9);
    emit(
        "dashboard",
        json!({"backend": db.backend.name(), "robots": robots, "days_of_history": days,
               "history_rows": rows, "requests": requests}),
        json!({"day_view_ms": day, "robot_list_ms": summary(list), "seeding_seconds": round3(seeding)}),
        json!({"health_ms": base_line}),
        json!(round3(ratio)),
        "day view p99 < 200 ms with a year of history",
        p99 < 200.0,
    );
    Ok(())
}

/// Writes `days` finished sessions before `today` for robots 1..=robots, with their events,
/// alarms and records, and the `status_check` rows they belong to; returns the rows written.
async fn write_history(
    bench: &Bench,
    db: &Database,
    config: &std::path::Path,
    robots: usize,
    today: Date,
    days: i64,
) -> Result<u64> {
    // The status-check template the shared rows point at.
    let seeded = std::process::Command::new(&bench.args.binary)
        .args(["seed-template", "--config"])
        .arg(config)
        .current_dir(&bench.args.work_dir)
        .output()?;
    if !seeded.status.success() {
        bail!(
            "seed-template failed: {}",
            String::from_utf8_lossy(&seeded.stderr)
        );
    }
    let div = |a: &str, b: &str| match db.backend {
        Backend::Mysql => format!("({a}) DIV {b}"),
        Backend::Sqlite => format!("({a}) / {b}"),
    };
    let concat = |parts: &[&str]| match db.backend {
        Backend::Mysql => format!("CONCAT({})", parts.join(", ")),
        Backend::Sqlite => parts.join(" || "),
    };
    let mut day_rows = Vec::new();
    for d in 0..days {
        let date = today.checked_sub(Span::new().days(d + 1))?;
        let midnight = TimeZone::UTC
            .to_timestamp(date.to_datetime(Time::midnight()))?
            .as_millisecond();
        day_rows.push(format!("({d}, '{date}', {midnight})"));
    }
    let robot_rows: Vec<String> = (1..=robots).map(|r| format!("({r})")).collect();
    let k_rows: Vec<String> = (0..EVENTS_PER_DAY.max(9))
        .map(|k| format!("({k})"))
        .collect();
    // A session's id: room for 400 days per robot.
    let id = "((r - 1) * 400 + d + 1)";
    let hour = 3_600_000_i64;
    let s = 8 * hour;
    let mut statements = vec![
        "CREATE TABLE bench_robot (r INTEGER NOT NULL PRIMARY KEY)".to_string(),
        "CREATE TABLE bench_day (d INTEGER NOT NULL PRIMARY KEY, day VARCHAR(10) NOT NULL, ms BIGINT NOT NULL)".to_string(),
        "CREATE TABLE bench_k (k INTEGER NOT NULL PRIMARY KEY)".to_string(),
    ];
    for chunk in robot_rows.chunks(1000) {
        statements.push(format!(
            "INSERT INTO bench_robot (r) VALUES {}",
            chunk.join(", ")
        ));
    }
    statements.push(format!(
        "INSERT INTO bench_day (d, day, ms) VALUES {}",
        day_rows.join(", ")
    ));
    statements.push(format!(
        "INSERT INTO bench_k (k) VALUES {}",
        k_rows.join(", ")
    ));
    statements.push(format!(
        "INSERT INTO status_check (id, robot_id, status_check_template_id, phase, result, step_id, \
         script_version_id, scheduled_id, planned_at) \
         SELECT {id}, r, (SELECT MAX(id) FROM status_check_template), 'COMPLETED', 'ALARM_RAISED', \
         1, 1, 1, {planned} FROM bench_robot, bench_day",
        planned = concat(&["day", "' 08:00:00'"]),
    ));
    // Events at 09:00, 10:30 and 12:00 met the first windows; the windows from 12:00 on,
    // two hours each, passed without one: 4 alarms, the last window [18:00, 20:00].
    statements.push(format!(
        "INSERT INTO status_job_session (status_check_id, robot_id, local_date, session_start_ms, \
         session_end_ms, window_start_ms, window_end_ms, window_gap_minutes, gap_minutes, \
         partial_final_window, alarms, result, watched_event, alarm_event, rule_version, owner, \
         created_at_ms, updated_at_ms, pending_events, records, version) \
         SELECT {id}, r, day, ms + {s}, ms + {e}, ms + {ws}, ms + {e}, 120, 120, 'ignore', \
         {ALARMS_PER_DAY}, 'ALARM_RAISED', '{ACTIVITY}', '{ALARM}', 1, 'bench', ms, ms + {e}, 0, \
         {records}, 20 FROM bench_robot, bench_day",
        e = 20 * hour,
        ws = 18 * hour,
        records = EVENTS_PER_DAY + ALARMS_PER_DAY,
    ));
    statements.push(format!(
        "INSERT INTO status_job_event (status_check_id, incoming_event_id, outgoing_event_id, \
         occurred_at_ms, state, created_at_ms) \
         SELECT {id}, {id} * 10 + k, NULL, ms + {first} + k * {step}, 'observed', \
         ms + {first} + k * {step} FROM bench_robot, bench_day, bench_k WHERE k < {EVENTS_PER_DAY}",
        first = 9 * hour,
        step = 3 * hour / 2,
    ));
    statements.push(format!(
        "INSERT INTO status_job_alarm (status_check_id, robot_id, local_date, window_start_ms, \
         window_end_ms, reference_id, alarm_event, state, attempts, megazord_incoming_id, \
         created_at_ms, updated_at_ms, sent_at_ms) \
         SELECT {id}, r, day, ms + {noon} + k * {gap}, ms + {noon} + (k + 1) * {gap}, {reference}, \
         '{ALARM}', 'sent', 1, {id} * 10 + k, ms, ms, ms FROM bench_robot, bench_day, bench_k \
         WHERE k < {ALARMS_PER_DAY}",
        noon = 12 * hour,
        gap = 2 * hour,
        reference = concat(&[
            "'nta-'",
            "r",
            "'-'",
            "day",
            "'-'",
            &div("ms + 43200000 + k * 7200000", "1000"),
        ]),
    ));
    statements.push(format!(
        "INSERT INTO status_check_record (status_check_id, incoming_event_id, outgoing_event_id, \
         event_name, {order}, phase, result, created_at) \
         SELECT {id}, {id} * 10 + k, NULL, \
         CASE WHEN k < {EVENTS_PER_DAY} THEN '{ACTIVITY}' ELSE '{ALARM}' END, k + 1, 'FUTURE', \
         CASE WHEN k < {EVENTS_PER_DAY} THEN 'EVENT_OBSERVED' ELSE 'ALARM_SENT' END, {at} \
         FROM bench_robot, bench_day, bench_k WHERE k < {records}",
        order = match db.backend {
            Backend::Mysql => "`order`",
            Backend::Sqlite => "\"order\"",
        },
        records = EVENTS_PER_DAY + ALARMS_PER_DAY,
        at = concat(&["day", "' 09:00:00'"]),
    ));
    for table in ["bench_robot", "bench_day", "bench_k"] {
        statements.push(format!("DROP TABLE {table}"));
    }
    let mut rows = 0;
    match db.backend {
        Backend::Mysql => {
            let mut conn = sqlx::MySqlConnection::connect(&db.url).await?;
            for sql in statements {
                let history = sql.starts_with("INSERT INTO status");
                let done = conn.execute(AssertSqlSafe(sql)).await?.rows_affected();
                rows += if history { done } else { 0 };
            }
            conn.close().await.ok();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
            let mut tx = conn.begin().await?;
            for sql in statements {
                let history = sql.starts_with("INSERT INTO status");
                let done = tx.execute(AssertSqlSafe(sql)).await?.rows_affected();
                rows += if history { done } else { 0 };
            }
            tx.commit().await?;
            conn.close().await.ok();
        }
    }
    Ok(rows)
}
