//! Ingest throughput against a running `serve`, next to the database's own single-row commit
//! rate from as many connections.
//!
//! ```text
//! cargo run --release --example ingest_load -- setup    DB_URL ROBOTS
//! cargo run --release --example ingest_load -- http     BASE_URL ROBOTS CONNECTIONS SECONDS
//! cargo run --release --example ingest_load -- baseline DB_URL CONNECTIONS SECONDS
//! ```
//!
//! `setup` stores a rule running all day (UTC) for robots 1..=ROBOTS. `http` first posts one
//! event per robot (so that every robot has a running session), then for SECONDS posts events
//! to random robots from CONNECTIONS connections, one request at a time each, every tenth a
//! repeat of an earlier id (10 % duplicates), and prints events/s and latency. `baseline`
//! runs `BEGIN; INSERT one row; COMMIT` in a loop on CONNECTIONS connections of the same
//! database (SQLite: WAL, synchronous FULL, as the service opens it) and prints commits/s.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azi3_status_jobs::domain::{RobotId, RuleInput};
use azi3_status_jobs::numeric::count_f64;
use azi3_status_jobs::store::Store;
use jiff::Timestamp;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> anyhow::Result<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("missing argument {i}; see the example's documentation"))
    };
    match arg(0)? {
        "setup" => setup(arg(1)?, arg(2)?.parse()?).await,
        "http" => {
            http(
                arg(1)?,
                arg(2)?.parse()?,
                arg(3)?.parse()?,
                arg(4)?.parse()?,
            )
            .await
        }
        "baseline" => baseline(arg(1)?, arg(2)?.parse()?, arg(3)?.parse()?).await,
        "queue-fill" => queue_fill(arg(1)?, arg(2)?, arg(3)?.parse()?, arg(4)?.parse()?).await,
        "queue-bare" => queue_bare(arg(1)?, arg(2)?).await,
        "queue-wait" => queue_wait(arg(1)?, arg(2)?, arg(3)?.parse()?).await,
        other => anyhow::bail!("unknown mode {other:?}: setup, http or baseline"),
    }
}

async fn setup(url: &str, robots: u32) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate(true).await?;
    store.seed_template().await?;
    let now = Timestamp::now();
    for robot_id in 1..=robots {
        let rule = RuleInput {
            robot_id: RobotId::new(robot_id),
            timezone: "UTC".into(),
            start: "00:00".into(),
            end: "23:59".into(),
            gap: "60".into(),
            ..RuleInput::default()
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        store.set_rule(&rule, now).await?;
    }
    store.close().await;
    eprintln!("{robots} rules stored");
    Ok(())
}

/// Robot `1..=robots` for the number `n`.
fn robot_of(n: u64, robots: u32) -> u32 {
    u32::try_from(n % u64::from(robots)).expect("below robots, a u32") + 1
}

async fn http(base: &str, robots: u32, connections: usize, seconds: u64) -> anyhow::Result<()> {
    let base = Arc::new(base.trim_end_matches('/').to_string());
    // Warm-up: every robot's session started by its first event.
    let started = Instant::now();
    run_clients(&base, connections, move |conn, seq| {
        // Past the last robot (or past any u32) the connection is done.
        let robot = u32::try_from(seq * connections as u64 + conn as u64)
            .ok()?
            .checked_add(1)?;
        (robot <= robots).then(|| (robot, format!("w-{robot}")))
    })
    .await?;
    eprintln!(
        "warm-up: {robots} robots in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let (count, duplicates, mut latencies) = run_clients(&base, connections, move |conn, seq| {
        if Instant::now() >= deadline {
            return None;
        }
        let robot = robot_of(seq.wrapping_mul(7919) + conn as u64 * 104_729, robots);
        // Every tenth post repeats the id this connection posted five before.
        let n = if seq % 10 == 9 { seq - 5 } else { seq };
        let robot = if seq % 10 == 9 {
            robot_of(n.wrapping_mul(7919) + conn as u64 * 104_729, robots)
        } else {
            robot
        };
        Some((robot, format!("e-{conn}-{n}")))
    })
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "with p in [0, 1] the rank is between 0 and the length; `as` saturates"
    )]
    let pct =
        |p: f64| latencies[((count_f64(latencies.len()) * p) as usize).min(latencies.len() - 1)];
    println!(
        "{{\"mode\":\"http\",\"connections\":{connections},\"robots\":{robots},\"events\":{count},\
         \"duplicates\":{duplicates},\"seconds\":{elapsed:.2},\"events_per_second\":{:.0},\
         \"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        count_f64(count) / elapsed,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
    Ok(())
}

/// Runs `connections` clients, each posting the events `next(connection, seq)` names one after
/// the other until it says `None`; returns how many were accepted, how many of them were
/// duplicates, and every latency.
async fn run_clients(
    base: &Arc<String>,
    connections: usize,
    next: impl Fn(usize, u64) -> Option<(u32, String)> + Send + Sync + Clone + 'static,
) -> anyhow::Result<(u64, u64, Vec<Duration>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0..connections {
        let base = Arc::clone(base);
        let next = next.clone();
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let (mut count, mut duplicates, mut latencies) = (0u64, 0u64, Vec::new());
            let mut seq = 0u64;
            while let Some((robot, id)) = next(conn, seq) {
                seq += 1;
                let sent = Instant::now();
                let response = client
                    .post(format!(
                        "{base}/internal/v1/status-jobs/robots/{robot}/events"
                    ))
                    .json(&serde_json::json!({"id": id, "eventName": "TOILET_ACTIVITY"}))
                    .send()
                    .await?;
                let status = response.status();
                let body: serde_json::Value = response.json().await?;
                anyhow::ensure!(status.as_u16() == 202, "answer {status}: {body}");
                latencies.push(sent.elapsed());
                count += 1;
                if body["duplicate"] == true {
                    duplicates += 1;
                }
            }
            anyhow::Ok((count, duplicates, latencies))
        });
    }
    let (mut count, mut duplicates, mut latencies) = (0, 0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (c, d, l) = done??;
        count += c;
        duplicates += d;
        latencies.extend(l);
    }
    Ok((count, duplicates, latencies))
}

async fn baseline(url: &str, connections: usize, seconds: u64) -> anyhow::Result<()> {
    let mysql = url.starts_with("mysql:");
    let create = if mysql {
        "CREATE TABLE IF NOT EXISTS ingest_baseline (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         payload VARCHAR(100) NOT NULL) ENGINE=InnoDB"
    } else {
        "CREATE TABLE IF NOT EXISTS ingest_baseline (id INTEGER PRIMARY KEY AUTOINCREMENT, \
         payload TEXT NOT NULL)"
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for conn in 0..connections {
        let url = url.to_string();
        tasks.spawn(async move {
            let payload = format!("{conn:0>100}");
            let mut commits = 0u64;
            if mysql {
                let mut c = sqlx::MySqlConnection::connect(&url).await?;
                c.execute(create).await?;
                while Instant::now() < deadline {
                    c.execute("BEGIN").await?;
                    sqlx::query("INSERT INTO ingest_baseline (payload) VALUES (?)")
                        .bind(&payload)
                        .execute(&mut c)
                        .await?;
                    c.execute("COMMIT").await?;
                    commits += 1;
                }
            } else {
                let mut c = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(30))
                    .connect()
                    .await?;
                c.execute(create).await?;
                while Instant::now() < deadline {
                    c.execute("BEGIN IMMEDIATE").await?;
                    sqlx::query(AssertSqlSafe(
                        "INSERT INTO ingest_baseline (payload) VALUES (?)",
                    ))
                    .bind(&payload)
                    .execute(&mut c)
                    .await?;
                    c.execute("COMMIT").await?;
                    commits += 1;
                }
            }
            anyhow::Ok(commits)
        });
    }
    let mut commits = 0;
    while let Some(done) = tasks.join_next().await {
        commits += done??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"baseline\",\"connections\":{connections},\"commits\":{commits},\
         \"seconds\":{elapsed:.2},\"commits_per_second\":{:.0}}}",
        count_f64(commits) / elapsed
    );
    Ok(())
}

async fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::v2026_01_12())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

async fn queue_url(client: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    let created = client.create_queue().queue_name(name).send().await?;
    Ok(created.queue_url().unwrap_or_default().to_string())
}

async fn queue_fill(endpoint: &str, name: &str, count: u64, robots: u32) -> anyhow::Result<()> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let client = sqs(endpoint).await;
    let url = queue_url(&client, name).await?;
    let now = Timestamp::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(10) {
        let entries = chunk
            .iter()
            .map(|n| {
                let robot = robot_of(*n, robots);
                let event = 5_000_000 + n;
                let body = serde_json::json!({
                    "to": {"robotId": robot.to_string()},
                    "payload": {"id": event + 1_000_000, "sourceEventId": event,
                        "sourceEvent": {"id": event, "robotId": robot,
                            "eventName": "TOILET_ACTIVITY", "createdAt": now.to_string()}}
                });
                SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(body.to_string())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    eprintln!("{count} messages sent to {url}");
    Ok(())
}

async fn queue_bare(endpoint: &str, name: &str) -> anyhow::Result<()> {
    use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
    let client = sqs(endpoint).await;
    let url = queue_url(&client, name).await?;
    let started = Instant::now();
    let mut handled = 0u64;
    loop {
        let received = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        client
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await?;
        handled += messages.len() as u64;
    }
    // The last, empty receive waited 1 s for nothing.
    let elapsed = started.elapsed().as_secs_f64() - 1.0;
    println!(
        "{{\"mode\":\"queue-bare\",\"messages\":{handled},\"seconds\":{elapsed:.2},\
         \"messages_per_second\":{:.0}}}",
        count_f64(handled) / elapsed
    );
    Ok(())
}

async fn queue_wait(endpoint: &str, name: &str, count: u64) -> anyhow::Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let client = sqs(endpoint).await;
    let url = queue_url(&client, name).await?;
    let started = Instant::now();
    loop {
        let attributes = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let left: u64 = attributes
            .attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"queue-serve\",\"messages\":{count},\"seconds\":{elapsed:.2},\
         \"messages_per_second\":{:.0}}}",
        count_f64(count) / elapsed
    );
    Ok(())
}
