//! The service under load, measured next to the raw speed of the parts it runs on.
//!
//! Run through `scripts/bench`, which builds in release mode, starts MariaDB and moto and passes
//! the binary's path. Every scenario prints one JSON object on standard output
//! (`scenario`, `params`, `figures`, `baseline`, `ratio`, `bound`, `ok`); progress goes to
//! standard error. Everything this program starts (service processes, databases, queues, the
//! Megazord stand-in in this process) is stopped or dropped before it exits, also on Ctrl-C.
//!
//! Time: the service runs on a simulated clock (`serve --clock-start … --clock-speed …`); every
//! rule is 08:00–20:00 UTC, so every session starts at S = 08:00 and every first window ends at
//! S + G. Instants are taken from what was recorded (the stand-in's `createdAt` of each alarm,
//! the outbox's `created_at_ms`) and turned into wall-clock time with the service's anchor.

#[path = "bench/dashboard.rs"]
mod dashboard;
#[path = "../tests/it/support/megazord.rs"]
#[allow(dead_code)]
mod megazord;
#[path = "bench/soak.rs"]
mod soak;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use azi3_status_jobs::clock::SimulatedClock;
use azi3_status_jobs::domain::RobotId;
use azi3_status_jobs::numeric::count_f64;
use clap::Parser;
use jiff::{SignedDuration, Timestamp};
use megazord::{CreatedAtResolution, MegazordOptions, MegazordRoute, MegazordServer};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// Every session starts here (rules 08:00–20:00 UTC).
const SESSION_START: &str = "2026-03-02T08:00:00Z";
/// Service seconds per wall-clock second.
const SPEED: f64 = 60.0;
/// `[service] grace_seconds`.
const GRACE_SECONDS: i64 = 30;
/// What the stand-in takes per call while windows close.
const MEGAZORD_LATENCY: Duration = Duration::from_millis(5);
/// `[service] close_concurrency` (the default): the baseline's concurrency too.
const CLOSE_CONCURRENCY: usize = 32;
/// HTTP ingest connections, and the baseline's database connections.
const INGEST_CONNECTIONS: usize = 32;
/// wrk's threads (one per core of the development machine).
const WRK_THREADS: usize = 2;
/// What wrk posts in the ingest scenario.
const INGEST_SCRIPT: &str = include_str!("../scripts/ingest.lua");
const ACTIVITY: &str = "TOILET_ACTIVITY";
const ALARM: &str = "NO_TOILET_ACTIVITY_ALARM";
const QUEUE_SUFFIX: &str = "azi-3-status-jobs";
/// Batches sent to SQS at once.
const SQS_SENDERS: usize = 1;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks the service; see scripts/bench")]
struct Args {
    /// Small sizes: every scenario in well under a minute.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (deadlines, memory, recovery, ingest, queue, soak,
    /// dashboard); all by default.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// The service binary (release build).
    #[arg(long)]
    binary: PathBuf,
    /// MariaDB server, without a database name.
    #[arg(
        long,
        env = "AZI3_TEST_MYSQL_URL",
        default_value = "mysql://azi3:azi3@127.0.0.1:3306"
    )]
    mysql_url: String,
    /// Where service configs, logs and SQLite files go.
    #[arg(long)]
    work_dir: PathBuf,
    /// Largest N of the deadlines and memory scenarios in a full run (on MariaDB; SQLite
    /// stops at 10,000).
    #[arg(long, default_value_t = 100_000)]
    max_sessions: usize,
    /// Smallest N of the deadlines and memory scenarios in a full run (to repeat only the
    /// larger sizes).
    #[arg(long, default_value_t = 0)]
    min_sessions: usize,
    /// Run the deadlines, memory and ingest scenarios only on these backends (mariadb,
    /// sqlite); both by default.
    #[arg(long = "backend", value_name = "NAME", value_parser = ["mariadb", "sqlite"])]
    backends: Vec<String>,
    /// N of the recovery scenario in a full run.
    #[arg(long, default_value_t = 100_000)]
    recovery_sessions: usize,
    /// The soak's seed, to repeat a run (its `params.seed`); by default taken from the time.
    #[arg(long)]
    soak_seed: Option<u64>,
    /// Wall seconds one session start takes, to choose the gap G of the first run on each
    /// backend (later runs use the rate measured before them); a guess from earlier runs by
    /// default.
    #[arg(long, value_name = "SECONDS")]
    seconds_per_start: Option<f64>,
    /// Messages of the queue scenario in a full run (for 2,000 robots). moto walks every message
    /// it holds on each call, so its rate falls as its queue grows.
    #[arg(long, default_value_t = 2_000)]
    queue_messages: usize,
    /// wrk, the ingest scenario's load generator (scripts/bench installs it when missing).
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
}

impl Args {
    /// Whether `--backend` leaves `backend` in (every backend when none is named).
    fn backend_wanted(&self, backend: Backend) -> bool {
        self.backends.is_empty() || self.backends.iter().any(|b| b == backend.name())
    }
}

const SCENARIOS: [&str; 7] = [
    "deadlines",
    "memory",
    "recovery",
    "ingest",
    "queue",
    "soak",
    "dashboard",
];

static STARTED: OnceLock<Instant> = OnceLock::new();

fn progress(message: impl AsRef<str>) {
    let at = STARTED.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[bench {at:6.1}s] {}", message.as_ref());
}

fn emit(
    scenario: &str,
    params: Value,
    figures: Value,
    baseline: Value,
    ratio: Value,
    bound: &str,
    ok: bool,
) {
    let line = json!({
        "scenario": scenario,
        "params": params,
        "figures": figures,
        "baseline": baseline,
        "ratio": ratio,
        "bound": bound,
        "ok": ok,
    });
    println!("{line}");
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `d` taken `n` times, saturating at `Duration::MAX`.
fn times(d: Duration, n: usize) -> Duration {
    d.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

fn mib(kib: u64) -> f64 {
    round3(count_f64(kib) / 1024.0)
}

/// Nearest-rank percentile of sorted values.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "with p in [0, 100] the rank is between 0 and the length; `as` saturates"
)]
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * count_f64(sorted.len())).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut values: Vec<f64>) -> Value {
    values.sort_by(f64::total_cmp);
    json!({
        "count": values.len(),
        "p50": round3(percentile(&values, 50.0)),
        "p99": round3(percentile(&values, 99.0)),
        "max": round3(values.last().copied().unwrap_or(f64::NAN)),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Mysql,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Mysql => "mariadb",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// The pids of running service processes, for the wrapper script to stop should this program
/// itself be killed.
struct Processes {
    file: PathBuf,
    pids: Mutex<Vec<u32>>,
}

impl Processes {
    fn add(&self, pid: u32) {
        let mut pids = self.pids.lock().unwrap();
        pids.push(pid);
        self.write(&pids);
    }

    fn remove(&self, pid: u32) {
        let mut pids = self.pids.lock().unwrap();
        pids.retain(|p| *p != pid);
        self.write(&pids);
    }

    fn write(&self, pids: &[u32]) {
        let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
        let _ = std::fs::write(&self.file, text);
    }
}

struct Bench {
    args: Args,
    http: reqwest::Client,
    processes: Arc<Processes>,
    sequence: AtomicUsize,
}

/// A database made for one run and dropped after it.
struct Database {
    backend: Backend,
    /// What the service is configured with.
    url: String,
    mysql_name: Option<String>,
}

impl Bench {
    /// How long (wall) to wait for N alarms after they are due: bounded, so that a slow service
    /// is measured as such and the run still ends.
    fn posts_patience(&self, sessions: usize) -> Duration {
        if self.args.quick {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(60) + times(MEGAZORD_LATENCY * 3, sessions)
        }
    }

    fn next_label(&self, what: &str) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!("{what}_{}_{n}", std::process::id())
    }

    async fn create_database(&self, backend: Backend, what: &str) -> Result<Database> {
        let label = self.next_label(what);
        match backend {
            Backend::Mysql => {
                let name = format!("azi3_bench_{label}");
                let mut admin = sqlx::MySqlConnection::connect(&self.args.mysql_url)
                    .await
                    .context("MariaDB does not answer; run scripts/services.sh")?;
                admin
                    .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await?;
                admin.close().await.ok();
                Ok(Database {
                    backend,
                    url: format!("{}/{name}", self.args.mysql_url),
                    mysql_name: Some(name),
                })
            }
            Backend::Sqlite => {
                let path = self.args.work_dir.join(format!("{label}.db"));
                Ok(Database {
                    backend,
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    mysql_name: None,
                })
            }
        }
    }

    async fn drop_database(&self, db: &Database) {
        if let Some(name) = &db.mysql_name
            && let Ok(mut admin) = sqlx::MySqlConnection::connect(&self.args.mysql_url).await
        {
            let _ = admin
                .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                .await;
            admin.close().await.ok();
        }
        if db.backend == Backend::Sqlite {
            let path = db
                .url
                .trim_start_matches("sqlite://")
                .trim_end_matches("?mode=rwc")
                .to_string();
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

/// A running `azi3-status-jobs serve`.
struct Service {
    child: std::process::Child,
    pid: u32,
    base_url: String,
    config: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    processes: Arc<Processes>,
}

impl Service {
    fn spawn(bench: &Bench, config: &Path, log: &Path, args: &[String]) -> Result<Service> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = std::process::Command::new(&bench.args.binary)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(args)
            .current_dir(&bench.args.work_dir)
            .env("AZI3_HTTP__PORT", port.to_string())
            .env("AZI3_LOG", service_log_filter())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("start the service binary")?;
        let pid = child.id();
        bench.processes.add(pid);
        Ok(Service {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            args: args.to_vec(),
            processes: Arc::clone(&bench.processes),
        })
    }

    /// SIGKILL, and waits for the process to be gone.
    async fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.processes.remove(self.pid);
    }

    /// SIGKILL, then the same command again.
    async fn restart(&mut self, bench: &Bench) -> Result<()> {
        self.kill().await;
        let port = self.base_url.rsplit(':').next().unwrap_or("0").to_string();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        self.child = std::process::Command::new(&bench.args.binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(&self.args)
            .current_dir(&bench.args.work_dir)
            .env("AZI3_HTTP__PORT", port)
            .env("AZI3_LOG", service_log_filter())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()?;
        self.pid = self.child.id();
        self.processes.add(self.pid);
        Ok(())
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Peak resident set (`VmHWM`) in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        status_field(self.pid, "VmHWM:")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Waits for `/health` and returns the service's simulated clock.
    async fn wait_health(
        &mut self,
        http: &reqwest::Client,
        patience: Duration,
    ) -> Result<SimulatedClock> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.exited() {
                bail!("the service exited ({status}): {}", self.log_tail());
            }
            if let Ok(response) = http.get(format!("{}/health", self.base_url)).send().await
                && response.status().is_success()
            {
                let health: Value = response.json().await?;
                let clock = &health["clock"];
                return Ok(SimulatedClock {
                    real_anchor: clock["realAnchor"].as_str().unwrap_or_default().parse()?,
                    service_anchor: clock["serviceAnchor"]
                        .as_str()
                        .unwrap_or_default()
                        .parse()?,
                    speed: clock["speed"].as_f64().unwrap_or(SPEED),
                });
            }
            if Instant::now() > deadline {
                bail!(
                    "the service did not answer /health within {patience:?}: {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `/ready` answers 200.
    async fn wait_ready(&mut self, http: &reqwest::Client, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.exited() {
                bail!("the service exited ({status}): {}", self.log_tail());
            }
            if let Ok(response) = http.get(format!("{}/ready", self.base_url)).send().await
                && response.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("/ready did not answer 200 within {patience:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metrics(&self, http: &reqwest::Client) -> Result<String> {
        Ok(http
            .get(format!("{}/metrics", self.base_url))
            .send()
            .await?
            .text()
            .await?)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.processes.remove(self.pid);
    }
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Queue messages finished with (deleted: `done` or `dead_letter`), not those left to retry.
fn queue_finished(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("queue_messages_total{")
                && (l.contains("outcome=\"done\"") || l.contains("outcome=\"dead_letter\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The sum of every series of the counter `name`.
fn counter_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One run of the service with N rules whose sessions all start at S.
struct Run {
    db: Database,
    server: MegazordServer,
    service: Service,
    sim: SimulatedClock,
    sessions: usize,
    gap_minutes: i64,
    session_start: Timestamp,
    /// Wall-clock time from spawning the service to `/ready` 200, before S.
    first_ready: Duration,
    /// Peak RSS before S, KiB.
    idle_rss_kib: u64,
    queue_url: Option<String>,
}

impl Run {
    fn deadline(&self) -> Timestamp {
        self.session_start + SignedDuration::from_mins(self.gap_minutes)
    }

    fn wall_of(&self, at: Timestamp) -> Timestamp {
        self.sim.real_time_of(at)
    }

    /// Wall time from now until two minutes past service instant `at`: how long to wait for
    /// what must be done by then.
    fn until_past(&self, at: Timestamp) -> Duration {
        self.wall_of(at)
            .duration_since(Timestamp::now())
            .unsigned_abs()
            + Duration::from_secs(120)
    }

    /// Wall seconds from service instant `from` to service instant `to`.
    fn wall_seconds(&self, from: Timestamp, to: Timestamp) -> f64 {
        to.duration_since(from).as_secs_f64() / self.sim.speed
    }

    async fn sleep_until_service(&self, at: Timestamp) {
        let wait = self.wall_of(at).duration_since(Timestamp::now());
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
    }

    /// Waits until every session was prepared (subscribed, history read) since `before` history
    /// reads; returns the wall time it took from S, or an error at `patience`.
    async fn wait_prepared(&mut self, before: u64, patience: Duration) -> Result<f64> {
        let deadline = Instant::now() + patience;
        let mut last_report = Instant::now();
        loop {
            let reads = self.server.request_count(MegazordRoute::GetIncomings) - before;
            if reads >= self.sessions as u64 {
                let since_start = Timestamp::now()
                    .duration_since(self.wall_of(self.session_start))
                    .as_secs_f64();
                return Ok(since_start);
            }
            if let Some(status) = self.service.exited() {
                bail!("the service exited ({status}): {}", self.service.log_tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {reads} of {} sessions prepared within {patience:?}",
                    self.sessions
                );
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                progress(format!("  {reads}/{} sessions prepared", self.sessions));
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_posts(&mut self, target: u64, patience: Duration) -> Result<u64> {
        let deadline = Instant::now() + patience;
        let mut last_report = Instant::now();
        loop {
            // Stored, not merely received: a post received is answered (and stored) only once
            // the stand-in's latency has passed.
            let posts = self.server.alarms_stored();
            if posts >= target {
                return Ok(posts);
            }
            if self.service.exited().is_some() || Instant::now() > deadline {
                return Ok(posts);
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                progress(format!("  {posts}/{target} alarms posted"));
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Service instants of every alarm outbox row (`created_at_ms`).
    /// The alarm outbox rows of the windows that ended at `window_end`: reference id and
    /// commit instant (`created_at_ms`). Later windows alarm too while the run goes on; they
    /// are not counted.
    async fn outbox_of(&self, window_end: Timestamp) -> Result<Vec<(String, Timestamp)>> {
        let sql = format!(
            "SELECT reference_id, created_at_ms FROM status_job_alarm WHERE window_end_ms = {}",
            window_end.as_millisecond()
        );
        let rows: Vec<(String, i64)> = match self.db.backend {
            Backend::Mysql => {
                let mut conn = sqlx::MySqlConnection::connect(&self.db.url).await?;
                let rows = sqlx::query_as(AssertSqlSafe(sql.clone()))
                    .fetch_all(&mut conn)
                    .await?;
                conn.close().await.ok();
                rows
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.db.url).await?;
                let rows = sqlx::query_as(AssertSqlSafe(sql.clone()))
                    .fetch_all(&mut conn)
                    .await?;
                conn.close().await.ok();
                rows
            }
        };
        rows.into_iter()
            .map(|(reference, ms)| Ok((reference, Timestamp::from_millisecond(ms)?)))
            .collect()
    }

    async fn finish(mut self, bench: &Bench) {
        self.service.kill().await;
        bench.drop_database(&self.db).await;
        if let Some(url) = &self.queue_url {
            let client = megazord::sqs_client().await;
            let _ = client.delete_queue().queue_url(url).send().await;
        }
    }
}

/// How the run's service is set up.
struct RunPlan {
    backend: Backend,
    sessions: usize,
    gap_minutes: i64,
    with_queue: bool,
}

/// Runs the binary's `migrate` with `config`, as an operator does before the first start.
fn migrate(bench: &Bench, config: &std::path::Path) -> Result<()> {
    let migrate = std::process::Command::new(&bench.args.binary)
        .arg("migrate")
        .arg("--config")
        .arg(config)
        .current_dir(&bench.args.work_dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()?;
    if !migrate.status.success() {
        bail!(
            "migrate failed: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
    }
    Ok(())
}

/// The log filter the service runs with: `warn` unless `BENCH_SERVICE_LOG` says otherwise
/// (`info` is the service's own default, one line per alarm and more).
fn service_log_filter() -> String {
    std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".to_string())
}

/// Starts the stand-in, a database with `sessions` rules, and the service before S.
async fn start_run(bench: &Bench, plan: RunPlan, what: &str) -> Result<Run> {
    let session_start: Timestamp = SESSION_START.parse()?;
    let clock_start = session_start - SignedDuration::from_secs(90);
    let (stand_in_clock, shared) = megazord::following_clock(clock_start);
    let server = MegazordServer::start(MegazordOptions {
        created_at_resolution: CreatedAtResolution::Millisecond,
        ..MegazordOptions::default().with_clock(stand_in_clock)
    })
    .await;
    let db = bench.create_database(plan.backend, what).await?;
    let queue_url = if plan.with_queue {
        let client = megazord::sqs_client().await;
        let name = format!(
            "bench-{}-{QUEUE_SUFFIX}",
            bench.next_label(what).replace('_', "-")
        );
        Some(megazord::create_named_queue(&client, &name).await)
    } else {
        None
    };
    let label = bench.next_label(what);
    let config = bench.args.work_dir.join(format!("{label}.toml"));
    let log = bench.args.work_dir.join(format!("{label}.log"));
    let mut text = format!(
        "[database]\nurl = \"{db}\"\nbootstrap_shared_schema = true\n\n\
         [service]\ngrace_seconds = {GRACE_SECONDS}\ninstance_id = \"bench\"\n\n\
         [megazord]\nbase_url = \"{megazord}\"\n\n",
        db = db.url,
        megazord = server.base_url(),
    );
    if let Some(url) = &queue_url {
        text.push_str(&format!(
            "[queue]\nconsumer_queue_url = \"{url}\"\nqueue_suffix = \"{QUEUE_SUFFIX}\"\n\
             endpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\nwait_time_seconds = 1\n",
            endpoint = megazord::test_sqs_endpoint(),
        ));
    }
    std::fs::write(&config, text)?;
    migrate(bench, &config)?;
    let written = Instant::now();
    insert_rules(&db, plan.sessions, plan.gap_minutes, clock_start).await?;
    progress(format!(
        "  {} rules written in {:.1} s",
        plan.sessions,
        written.elapsed().as_secs_f64()
    ));
    let args = vec![
        "--clock-start".to_string(),
        clock_start.to_string(),
        "--clock-speed".to_string(),
        SPEED.to_string(),
    ];
    let spawned = Instant::now();
    let mut service = Service::spawn(bench, &config, &log, &args)?;
    let sim = service
        .wait_health(&bench.http, Duration::from_secs(60))
        .await?;
    let _ = shared.set(sim);
    service
        .wait_ready(&bench.http, Duration::from_secs(60))
        .await?;
    let first_ready = spawned.elapsed();
    let idle_rss_kib = service.peak_rss_kib().unwrap_or(0);
    if sim.service_time_at(Timestamp::now()) >= session_start {
        progress("  warning: the service was ready only after S");
    }
    Ok(Run {
        db,
        server,
        service,
        sim,
        sessions: plan.sessions,
        gap_minutes: plan.gap_minutes,
        session_start,
        first_ready,
        idle_rss_kib,
        queue_url,
    })
}

/// Rules for robots 1..=n, 08:00–20:00 UTC, gap G, written with multi-row INSERTs; watched
/// from S (`watching_since_ms` NULL).
async fn insert_rules(db: &Database, n: usize, gap_minutes: i64, updated: Timestamp) -> Result<()> {
    let updated_ms = updated.as_millisecond() - 86_400_000;
    let mut statements = Vec::new();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|robot| {
                format!(
                    "({robot}, 'UTC', '08:00:00', '20:00:00', {gap_minutes}, '{ACTIVITY}', \
                     '{ALARM}', 'ignore', 1, 1, {updated_ms}, NULL)"
                )
            })
            .collect();
        statements.push(format!(
            "INSERT INTO status_job_rule (robot_id, timezone, start_time, end_time, gap_minutes, \
             watched_event, alarm_event, partial_final_window, enabled, version, updated_at_ms, \
             watching_since_ms) VALUES {}",
            values.join(", ")
        ));
    }
    match db.backend {
        Backend::Mysql => {
            let mut conn = sqlx::MySqlConnection::connect(&db.url).await?;
            for sql in statements {
                conn.execute(AssertSqlSafe(sql)).await?;
            }
            conn.close().await.ok();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
            let mut tx = conn.begin().await?;
            for sql in statements {
                tx.execute(AssertSqlSafe(sql)).await?;
            }
            tx.commit().await?;
            conn.close().await.ok();
        }
    }
    Ok(())
}

/// Wall seconds per session start on each backend, as measured by earlier runs (a guess
/// before the first).
struct StartRate {
    seconds_per_session: Mutex<BTreeMap<&'static str, f64>>,
    /// `--seconds-per-start`, when given.
    guess: Option<f64>,
}

impl StartRate {
    /// A gap long enough (in service minutes) that every session is prepared before S + G.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a few hours of minutes at most, clamped below; `as` saturates"
    )]
    fn gap_minutes(&self, backend: Backend, sessions: usize) -> i64 {
        // Measured at 10,000 and 100,000 sessions, with other builds running.
        let guess = self.guess.unwrap_or(match backend {
            Backend::Mysql => 0.003,
            Backend::Sqlite => 0.003,
        });
        let per = self
            .seconds_per_session
            .lock()
            .unwrap()
            .get(backend.name())
            .copied()
            .unwrap_or(guess);
        let wall = 2.0 + 1.5 * per * count_f64(sessions);
        ((wall * SPEED / 60.0).ceil() as i64).clamp(1, 11 * 60)
    }

    fn observe(&self, backend: Backend, sessions: usize, seconds: f64) {
        if sessions >= 500 {
            self.seconds_per_session
                .lock()
                .unwrap()
                .insert(backend.name(), seconds / count_f64(sessions));
        }
    }
}

/// N bare history reads against the stand-in, `CLOSE_CONCURRENCY` at a time.
async fn bare_history_reads(
    bench: &Bench,
    server: &MegazordServer,
    n: usize,
    since: Timestamp,
) -> Result<f64> {
    let next = Arc::new(AtomicUsize::new(1));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLOSE_CONCURRENCY {
        let next = Arc::clone(&next);
        let http = bench.http.clone();
        let base = server.base_url();
        tasks.spawn(async move {
            loop {
                let robot = next.fetch_add(1, Ordering::Relaxed);
                if robot > n {
                    return Ok::<(), anyhow::Error>(());
                }
                let response = http
                    .get(format!(
                        "{base}/internal/v1/events/robots/{robot}/incomings?event_name={ACTIVITY}&created_since={}",
                        since.as_second()
                    ))
                    .send()
                    .await?;
                let _: Value = response.error_for_status()?.json().await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// What one deadlines run measured, for the memory scenario too.
struct DeadlineOutcome {
    backend: Backend,
    sessions: usize,
    idle_rss_kib: u64,
    running_rss_kib: u64,
    peak_rss_kib: u64,
}

async fn deadlines_case(
    bench: &Bench,
    rate: &StartRate,
    backend: Backend,
    n: usize,
) -> Result<DeadlineOutcome> {
    progress(format!("deadlines: {n} sessions on {}", backend.name()));
    let gap_minutes = rate.gap_minutes(backend, n);
    let mut run = start_run(
        bench,
        RunPlan {
            backend,
            sessions: n,
            gap_minutes,
            with_queue: false,
        },
        &format!("deadlines_{}", backend.name()),
    )
    .await?;
    let deadline = run.deadline();
    let grace = SignedDuration::from_secs(GRACE_SECONDS);
    let prepared_after = run.wait_prepared(0, run.until_past(deadline)).await?;
    rate.observe(backend, n, prepared_after);
    let prepared_before_deadline = Timestamp::now() < run.wall_of(deadline);
    progress(format!(
        "  {n} sessions prepared {prepared_after:.1} s after S (first deadline {:.1} s after S)",
        run.wall_seconds(run.session_start, deadline)
    ));
    run.server.set_latency(MEGAZORD_LATENCY);
    let running_rss_kib = run.service.peak_rss_kib().unwrap_or(0);
    run.sleep_until_service(deadline + grace).await;
    let posted = run.wait_posts(n as u64, bench.posts_patience(n)).await?;
    let peak_rss_kib = run.service.peak_rss_kib().unwrap_or(0);
    let first_windows = run.outbox_of(deadline).await?;
    let references: std::collections::HashSet<&str> =
        first_windows.iter().map(|(r, _)| r.as_str()).collect();
    let alarms: Vec<Timestamp> = run
        .server
        .incoming_events()
        .into_iter()
        .filter(|e| {
            e.event_name == ALARM
                && e.reference_id
                    .as_deref()
                    .is_some_and(|r| references.contains(r))
        })
        .map(|e| e.created_at)
        .collect();
    let outbox: Vec<Timestamp> = first_windows.iter().map(|(_, at)| *at).collect();
    let to_post: Vec<f64> = alarms
        .iter()
        .map(|at| run.wall_seconds(deadline, *at))
        .collect();
    let to_outbox: Vec<f64> = outbox
        .iter()
        .map(|at| run.wall_seconds(deadline, *at))
        .collect();
    let reads: Vec<f64> = run
        .server
        .requests_to(MegazordRoute::GetIncomings)
        .iter()
        .filter(|r| r.received_at >= deadline)
        .map(|r| run.wall_seconds(deadline, r.received_at))
        .collect();
    progress(timeline(&[
        ("history reads", &reads),
        ("outbox commits", &to_outbox),
        ("alarms posted", &to_post),
    ]));
    let close_all = outbox
        .iter()
        .max()
        .map(|last| run.wall_seconds(deadline + grace, *last))
        .unwrap_or(f64::NAN);
    let post_all = alarms
        .iter()
        .max()
        .map(|last| run.wall_seconds(deadline + grace, *last))
        .unwrap_or(f64::NAN);
    progress(format!(
        "  {posted} alarms posted; baseline: {n} bare history reads"
    ));
    let baseline_seconds = bare_history_reads(bench, &run.server, n, run.session_start).await?;
    let grace_wall = SignedDuration::from_secs(GRACE_SECONDS).as_secs_f64() / SPEED;
    let post_summary = summary(to_post.clone());
    let p99 = post_summary["p99"].as_f64().unwrap_or(f64::INFINITY);
    let ratio = close_all / baseline_seconds;
    let all_posted = alarms.len() == n;
    let (bound, ok) = if n > 10_000 {
        (
            format!(
                "closing every window <= 1.25 x bare history reads, p99 deadline->post <= grace + 30 s ({:.2} s wall)",
                grace_wall + 30.0
            ),
            all_posted && ratio <= 1.25 && p99 <= grace_wall + 30.0,
        )
    } else {
        (
            format!(
                "p99 deadline->post <= grace + 2 s ({:.2} s wall)",
                grace_wall + 2.0
            ),
            all_posted && p99 <= grace_wall + 2.0,
        )
    };
    emit(
        "deadlines",
        json!({
            "backend": backend.name(), "sessions": n, "megazord_latency_ms": MEGAZORD_LATENCY.as_millis(),
            "grace_seconds": GRACE_SECONDS, "clock_speed": SPEED, "grace_wall_seconds": round3(grace_wall),
            "gap_minutes": gap_minutes, "close_concurrency": CLOSE_CONCURRENCY,
        }),
        json!({
            "alarms_posted": alarms.len(), "outbox_rows": outbox.len(),
            "sessions_prepared_after_s_seconds": round3(prepared_after),
            "sessions_prepared_before_deadline": prepared_before_deadline,
            "deadline_to_post_wall_seconds": post_summary,
            "deadline_to_outbox_commit_wall_seconds": summary(to_outbox),
            "close_all_after_grace_wall_seconds": round3(close_all),
            "post_all_after_grace_wall_seconds": round3(post_all),
        }),
        json!({"bare_history_reads": n, "concurrency": CLOSE_CONCURRENCY, "seconds": round3(baseline_seconds)}),
        json!(round3(ratio)),
        &bound,
        ok,
    );
    let idle_rss_kib = run.idle_rss_kib;
    run.finish(bench).await;
    Ok(DeadlineOutcome {
        backend,
        sessions: n,
        idle_rss_kib,
        running_rss_kib,
        peak_rss_kib,
    })
}

fn emit_memory(outcome: &DeadlineOutcome) {
    let peak = outcome.peak_rss_kib;
    let bound_kib = 256 * 1024;
    emit(
        "memory",
        json!({"backend": outcome.backend.name(), "sessions": outcome.sessions}),
        json!({
            "peak_rss_mib": mib(peak),
            "rss_with_sessions_prepared_mib": mib(outcome.running_rss_kib),
        }),
        json!({"peak_rss_before_sessions_start_mib": mib(outcome.idle_rss_kib)}),
        json!(round3(
            count_f64(peak) / count_f64(outcome.idle_rss_kib.max(1))
        )),
        "peak RSS (VmHWM) <= 256 MiB (acceptance at 100,000 sessions)",
        peak > 0 && peak <= bound_kib,
    );
}

async fn recovery_case(bench: &Bench, rate: &StartRate, n: usize) -> Result<()> {
    progress(format!("recovery: {n} sessions on mariadb"));
    let gap_minutes = rate.gap_minutes(Backend::Mysql, n);
    let mut run = start_run(
        bench,
        RunPlan {
            backend: Backend::Mysql,
            sessions: n,
            gap_minutes,
            with_queue: false,
        },
        "recovery",
    )
    .await?;
    let deadline = run.deadline();
    let grace = SignedDuration::from_secs(GRACE_SECONDS);
    let prepared_after = run.wait_prepared(0, run.until_past(deadline)).await?;
    rate.observe(Backend::Mysql, n, prepared_after);
    progress(format!(
        "  {n} sessions prepared {prepared_after:.1} s after S (first deadline {:.1} s after S)",
        run.wall_seconds(run.session_start, deadline)
    ));
    run.server.set_latency(MEGAZORD_LATENCY);
    // Killed the moment every first window is due: everything is left to the next process.
    run.sleep_until_service(deadline + grace).await;
    let posts_before = run.server.request_count(MegazordRoute::PostIncoming);
    let restarted = Instant::now();
    run.service.restart(bench).await?;
    // Both watched at once: an alarm may well be posted before /ready says 200.
    let mut to_ready = None;
    let mut to_first_alarm = None;
    let give_up = restarted + Duration::from_secs(60);
    while (to_ready.is_none() || to_first_alarm.is_none()) && Instant::now() < give_up {
        if to_first_alarm.is_none()
            && run.server.request_count(MegazordRoute::PostIncoming) > posts_before
        {
            to_first_alarm = Some(restarted.elapsed().as_secs_f64());
        }
        if to_ready.is_none()
            && let Ok(response) = bench
                .http
                .get(format!("{}/ready", run.service.base_url))
                .timeout(Duration::from_millis(500))
                .send()
                .await
            && response.status().as_u16() == 200
        {
            to_ready = Some(restarted.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress(format!(
        "  after the restart: /ready 200 at {}, first alarm posted at {}",
        to_ready.map_or("never".to_string(), |t| format!("{t:.3} s")),
        to_first_alarm.map_or("never".to_string(), |t| format!("{t:.3} s")),
    ));
    let all = if bench.args.quick {
        run.server.request_count(MegazordRoute::PostIncoming)
    } else {
        run.wait_posts(n as u64, bench.posts_patience(n)).await?
    };
    let to_all = restarted.elapsed().as_secs_f64();
    let baseline = run.first_ready.as_secs_f64();
    emit(
        "recovery",
        json!({"backend": "mariadb", "sessions": n, "killed_at": "first deadline + grace (every window due)",
               "megazord_latency_ms": MEGAZORD_LATENCY.as_millis()}),
        json!({
            "restart_to_ready_seconds": to_ready.map(round3),
            "restart_to_first_alarm_posted_seconds": to_first_alarm.map(round3),
            "alarms_posted": all, "restart_to_all_alarms_posted_seconds": round3(to_all),
            "alarms_posted_before_kill": posts_before,
            "sessions_prepared_after_s_seconds": round3(prepared_after),
        }),
        json!({"fresh_start_to_ready_seconds_no_sessions": round3(baseline)}),
        json!(to_ready.map(|t| round3(t / baseline))),
        "/ready within 10 s of the restart",
        to_ready.is_some_and(|t| t <= 10.0),
    );
    run.finish(bench).await;
    Ok(())
}

/// Runs `total` jobs numbered 0.. on `workers` tasks; returns the wall seconds.
async fn drive<F, Fut>(workers: usize, total: usize, job: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let job = Arc::clone(&job);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                job(i).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn ingest_case(
    bench: &Bench,
    rate: &StartRate,
    backend: Backend,
    robots: usize,
    baseline_rows: usize,
) -> Result<()> {
    progress(format!(
        "ingest: wrk for {} s on {robots} robots on {}",
        budget_of(bench).as_secs(),
        backend.name()
    ));
    let mut run = start_run(
        bench,
        RunPlan {
            backend,
            sessions: robots,
            gap_minutes: 11 * 60,
            with_queue: false,
        },
        &format!("ingest_{}", backend.name()),
    )
    .await?;
    run.sleep_until_service(run.session_start).await;
    let prepared_after = run.wait_prepared(0, Duration::from_secs(600)).await?;
    rate.observe(backend, robots, prepared_after);
    // Every tenth event repeats the one before it (same robot, same id): see scripts/ingest.lua.
    let load = run_wrk(bench, &run.service.base_url, robots, budget_of(bench)).await;
    // Events per group commit: the mean batch, which is what makes ingest cheaper than a
    // commit per event.
    let per_commit = match run.service.metrics(&bench.http).await {
        Ok(m) => {
            counter_sum(&m, "store_group_commit_pieces_total")
                / counter_sum(&m, "store_group_commits_total").max(1.0)
        }
        Err(_) => 0.0,
    };
    run.service.kill().await;
    let load = match load {
        Ok(load) => load,
        Err(e) => {
            run.finish(bench).await;
            return Err(e);
        }
    };
    let count = |name: &str| load[name].as_u64().unwrap_or(0);
    let seconds = load["duration_us"].as_f64().unwrap_or(0.0) / 1e6;
    let accepted = count("accepted_202");
    let errors = &load["errors"];
    let failed = ["connect", "read", "write", "timeout"]
        .iter()
        .map(|k| errors[k].as_u64().unwrap_or(0))
        .sum::<u64>();
    let refused = count("refused_503") + errors["timeout"].as_u64().unwrap_or(0);
    if count("other_status") > 0 || failed > errors["timeout"].as_u64().unwrap_or(0) {
        run.finish(bench).await;
        bail!("ingest answered other than 202 or 503, or connections failed: {load}");
    }
    let events_per_second = count_f64(accepted) / seconds.max(1e-9);
    progress(format!(
        "  {events_per_second:.0} events/s ({accepted} in {seconds:.1} s); baseline: single-row \
         INSERT+COMMIT from {INGEST_CONNECTIONS} connections"
    ));
    let baseline = single_row_commits(&run.db, baseline_rows).await?;
    let ratio = events_per_second / baseline;
    emit(
        "ingest",
        json!({"backend": backend.name(), "robots_with_running_sessions": robots,
               "connections": INGEST_CONNECTIONS, "duplicates_percent": 10,
               "load_generator": format!("wrk -t{WRK_THREADS} -c{INGEST_CONNECTIONS} -d{}s, scripts/ingest.lua", budget_of(bench).as_secs())}),
        json!({"events_per_second": round3(events_per_second), "seconds": round3(seconds),
               "accepted_202": accepted, "answered_duplicate": count("answered_duplicate"),
               "refused_503_or_timed_out": refused, "latency_us": load["latency_us"],
               "events_per_group_commit": round3(per_commit)}),
        json!({"single_row_insert_commit_per_second": round3(baseline), "connections": INGEST_CONNECTIONS, "rows": baseline_rows}),
        json!(round3(ratio)),
        "ingest events/s >= 1.0 x single-row INSERT+COMMIT/s",
        ratio >= 1.0 && refused == 0,
    );
    run.finish(bench).await;
    Ok(())
}

/// How long wrk posts events.
fn budget_of(bench: &Bench) -> Duration {
    Duration::from_secs(if bench.args.quick { 3 } else { 30 })
}

/// Runs wrk with scripts/ingest.lua against the service for `budget`; returns the script's
/// summary (answers by status, wrk's errors, the run's length).
async fn run_wrk(bench: &Bench, base_url: &str, robots: usize, budget: Duration) -> Result<Value> {
    let script = bench.args.work_dir.join("ingest.lua");
    std::fs::write(&script, INGEST_SCRIPT)?;
    let child = std::process::Command::new(&bench.args.wrk)
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{INGEST_CONNECTIONS}"))
        .arg(format!("-d{}s", budget.as_secs()))
        .arg("--timeout")
        .arg("30s")
        .arg("-s")
        .arg(&script)
        .arg(base_url)
        .env("INGEST_ROBOTS", robots.to_string())
        .env("INGEST_THREADS", WRK_THREADS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "start {} (the ingest load generator: apt-get install -y wrk)",
                bench.args.wrk.display()
            )
        })?;
    let pid = child.id();
    bench.processes.add(pid);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    bench.processes.remove(pid);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("wrk printed no summary: {stdout}"))?;
    Ok(serde_json::from_str(summary)?)
}

/// Single-row `INSERT` + `COMMIT`s per second on the database, from `INGEST_CONNECTIONS`.
async fn single_row_commits(db: &Database, rows: usize) -> Result<f64> {
    let create_mysql = "CREATE TABLE bench_single_row (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
        robot_id INT NOT NULL, external_id VARCHAR(64) NOT NULL, created_at_ms BIGINT NOT NULL) ENGINE=InnoDB";
    let create_sqlite = "CREATE TABLE bench_single_row (id INTEGER PRIMARY KEY AUTOINCREMENT, \
        robot_id INTEGER NOT NULL, external_id TEXT NOT NULL, created_at_ms INTEGER NOT NULL)";
    let insert =
        "INSERT INTO bench_single_row (robot_id, external_id, created_at_ms) VALUES (?, ?, ?)";
    match db.backend {
        Backend::Mysql => {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(u32::try_from(INGEST_CONNECTIONS)?)
                .connect(&db.url)
                .await?;
            pool.execute(create_mysql).await?;
            let seconds = drive(INGEST_CONNECTIONS, rows, move |i| {
                let pool = pool.clone();
                async move {
                    let mut tx = pool.begin().await?;
                    sqlx::query(insert)
                        .bind(i64::try_from(i)?)
                        .bind(format!("bench-{i}"))
                        .bind(i64::try_from(i)?)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }
            })
            .await?;
            Ok(count_f64(rows) / seconds)
        }
        Backend::Sqlite => {
            // As the service opens its file: WAL, synchronous FULL.
            let options: sqlx::sqlite::SqliteConnectOptions = db.url.parse()?;
            let options = options
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(60));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(u32::try_from(INGEST_CONNECTIONS)?)
                .connect_with(options)
                .await?;
            pool.execute(create_sqlite).await?;
            let seconds = drive(INGEST_CONNECTIONS, rows, move |i| {
                let pool = pool.clone();
                async move {
                    let mut conn = pool.acquire().await?;
                    conn.execute("BEGIN IMMEDIATE").await?;
                    sqlx::query(insert)
                        .bind(i64::try_from(i)?)
                        .bind(format!("bench-{i}"))
                        .bind(i64::try_from(i)?)
                        .execute(&mut *conn)
                        .await?;
                    conn.execute("COMMIT").await?;
                    Ok(())
                }
            })
            .await?;
            Ok(count_f64(rows) / seconds)
        }
    }
}

/// How many of each series fell into each quarter second after the deadline (wall clock),
/// one line per series: where the time of a deadlines run went.
fn timeline(series: &[(&str, &[f64])]) -> String {
    // The quarter second a time falls in (negative and NaN times in the first, as `f64::max`
    // makes them 0).
    let quarter = |seconds: f64| {
        Duration::try_from_secs_f64(seconds.max(0.0)).map_or(usize::MAX, |d| {
            usize::try_from(d.as_millis() / 250).unwrap_or(usize::MAX)
        })
    };
    let last = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .fold(0.0_f64, f64::max);
    let buckets = quarter(last).saturating_add(1).min(400);
    let mut text = String::from("  per 0.25 s after the deadline:");
    for (name, values) in series {
        let mut counts = vec![0usize; buckets];
        for value in values.iter() {
            counts[quarter(*value).min(buckets - 1)] += 1;
        }
        let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
        text.push_str(&format!("\n    {name:>15}: {}", counts.join(" ")));
    }
    text
}

/// Status-queue messages as Megazord's `notify()` sends them (contracts §2.2), one per event,
/// for the robots' own subscriptions.
fn queue_bodies(
    subscriptions: &BTreeMap<RobotId, u64>,
    robots: usize,
    count: usize,
    first_id: u64,
    at: Timestamp,
) -> Vec<String> {
    let created = at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    (0..count)
        .map(|i| {
            let robot = RobotId::new(u32::try_from(i % robots + 1).expect("robot ids are u32s"));
            let subscription = subscriptions.get(&robot).copied().unwrap_or(0);
            let incoming = first_id + i as u64;
            let outgoing = first_id + 10_000_000 + i as u64;
            json!({
                "from": {"serviceName": "megazord-events"},
                "to": {"robotId": robot.to_string()},
                "link": {"link": format!("/internal/v1/events/robots/{robot}/subscriptions/{subscription}/outgoings/{outgoing}"), "rel": ""},
                "payload": {
                    "id": outgoing, "sourceEventId": incoming, "subscriptionId": subscription,
                    "status": "CREATED", "createdAt": created, "updatedAt": created,
                    "sourceEvent": {
                        "id": incoming, "robotId": robot, "eventTypeId": 1, "eventName": ACTIVITY,
                        "level": 10, "referenceId": format!("bench-{incoming}"), "providerId": 1,
                        "providerName": "Sensara", "createdAt": created, "updatedAt": created,
                    },
                },
            })
            .to_string()
        })
        .collect()
}

/// Sends the bodies in batches of ten, `SQS_SENDERS` batches at a time.
async fn send_bodies(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    bodies: Vec<String>,
) -> Result<()> {
    let batches: Vec<Vec<String>> = bodies.chunks(10).map(<[String]>::to_vec).collect();
    let batches = Arc::new(Mutex::new(batches));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SQS_SENDERS {
        let batches = Arc::clone(&batches);
        let client = client.clone();
        let queue_url = queue_url.to_string();
        tasks.spawn(async move {
            loop {
                let Some(batch) = batches.lock().unwrap().pop() else {
                    return Ok::<(), anyhow::Error>(());
                };
                let mut request = client.send_message_batch().queue_url(&queue_url);
                for (i, body) in batch.into_iter().enumerate() {
                    request = request.entries(
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(body)
                            .build()?,
                    );
                }
                let output = request.send().await?;
                if !output.failed().is_empty() {
                    bail!("SQS refused {} messages", output.failed().len());
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// The longest one queue run may take, from its service's start to the baseline's last
/// message: every step has a patience of its own, and this bounds their sum.
fn queue_limit(bench: &Bench, messages: usize) -> Duration {
    if bench.args.quick {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(300) + times(Duration::from_millis(400), messages)
    }
}

async fn queue_case(bench: &Bench, rate: &StartRate, robots: usize, messages: usize) -> Result<()> {
    progress(format!(
        "queue: {messages} messages for {robots} robots on mariadb"
    ));
    let mut run = start_run(
        bench,
        RunPlan {
            backend: Backend::Mysql,
            sessions: robots,
            gap_minutes: 11 * 60,
            with_queue: true,
        },
        "queue",
    )
    .await?;
    let limit = queue_limit(bench, messages);
    let measured = tokio::time::timeout(
        limit,
        measure_queue(bench, rate, &mut run, robots, messages),
    )
    .await;
    run.finish(bench).await;
    match measured {
        Ok(result) => result,
        Err(_) => bail!(
            "the queue run did not end within its limit of {} s",
            limit.as_secs()
        ),
    }
}

/// The queue scenario on a started run: the service's figure, then the baseline's.
async fn measure_queue(
    bench: &Bench,
    rate: &StartRate,
    run: &mut Run,
    robots: usize,
    messages: usize,
) -> Result<()> {
    run.sleep_until_service(run.session_start).await;
    let prepared_after = run.wait_prepared(0, Duration::from_secs(600)).await?;
    rate.observe(Backend::Mysql, robots, prepared_after);
    let queue_url = run.queue_url.clone().expect("a queue");
    let client = megazord::sqs_client().await;
    let subscriptions: BTreeMap<RobotId, u64> = run
        .server
        .subscriptions()
        .into_iter()
        .filter(|s| s.is_active)
        .map(|s| (s.robot_id, s.id))
        .collect();
    let now = run.sim.service_time_at(Timestamp::now());
    let before = queue_finished(&run.service.metrics(&bench.http).await?);
    let started = Instant::now();
    send_bodies(
        &client,
        &queue_url,
        queue_bodies(&subscriptions, robots, messages, 1_000_000, now),
    )
    .await?;
    let sent_after = started.elapsed().as_secs_f64();
    let deadline = Instant::now()
        + if bench.args.quick {
            Duration::from_secs(8)
        } else {
            Duration::from_secs(120) + times(Duration::from_millis(150), messages)
        };
    let handled = loop {
        let handled = queue_finished(&run.service.metrics(&bench.http).await?) - before;
        if handled >= count_f64(messages) || Instant::now() > deadline {
            break handled;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let metrics = run.service.metrics(&bench.http).await?;
    let retried = metrics
        .lines()
        .filter(|l| l.starts_with("queue_messages_total") && l.contains("outcome=\"retry\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // Not `sum`, which gives -0 for no line.
        .fold(0.0, |total, value| total + value);
    run.service.kill().await;
    let events_per_second = handled / seconds;
    progress(format!(
        "  {events_per_second:.0} messages/s; baseline: bare receive+delete on the same queue"
    ));
    // The same number of messages again, sent the same way while a bare loop takes them:
    // receive ten, delete each. Timed the same way too, from the first send to the last delete,
    // so that both face the same queue (moto's every call walks all the messages it holds, so a
    // queue filled first would make the baseline the slower). The killed service's last long
    // poll (1 s) is still open at moto and would take the first messages out of sight for the
    // visibility timeout: let it end first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    // Aborted if the loop below fails: nothing keeps sending to a queue the run drops.
    let sender = tokio_util::task::AbortOnDropHandle::new(tokio::spawn({
        let client = client.clone();
        let queue_url = queue_url.clone();
        let bodies = queue_bodies(&subscriptions, robots, messages, 5_000_000, now);
        async move { send_bodies(&client, &queue_url, bodies).await }
    }));
    let mut received = 0usize;
    let mut receive_calls = 0usize;
    let deadline =
        Instant::now() + Duration::from_secs(120) + times(Duration::from_millis(150), messages);
    while received < messages && Instant::now() < deadline {
        let output = client
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        receive_calls += 1;
        let mut deletes = tokio::task::JoinSet::new();
        for message in output.messages.unwrap_or_default() {
            received += 1;
            if let Some(handle) = message.receipt_handle {
                let request = client
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(handle);
                deletes.spawn(async move { request.send().await });
            }
        }
        while let Some(done) = deletes.join_next().await {
            done??;
        }
    }
    sender.await??;
    let baseline = count_f64(received) / started.elapsed().as_secs_f64();
    let ratio = events_per_second / baseline;
    emit(
        "queue",
        json!({"backend": "mariadb", "robots_with_running_sessions": robots, "messages": messages,
               "sender": "send_message_batch of 10, one at a time, while the service (the baseline's loop) consumes"}),
        json!({"events_per_second": round3(events_per_second), "finished_done_or_dead_letter": handled, "left_to_retry": retried,
               "seconds": round3(seconds), "sending_took_seconds": round3(sent_after)}),
        json!({"bare_receive_delete_per_second": round3(baseline), "received": received, "receive_calls": receive_calls}),
        json!(round3(ratio)),
        "consumer events/s >= 0.8 x bare receive+delete",
        handled >= count_f64(messages) && ratio >= 0.8,
    );
    Ok(())
}

async fn run_all(bench: &Bench) -> Result<usize> {
    let wanted = |name: &str| {
        bench.args.scenarios.is_empty() || bench.args.scenarios.iter().any(|s| s == name)
    };
    for name in &bench.args.scenarios {
        if !SCENARIOS.contains(&name.as_str()) {
            bail!(
                "--scenario {name}: unknown; known: {}",
                SCENARIOS.join(", ")
            );
        }
    }
    let quick = bench.args.quick;
    let rate = StartRate {
        seconds_per_session: Mutex::new(BTreeMap::new()),
        guess: bench.args.seconds_per_start.filter(|s| *s > 0.0),
    };
    let mut failures = 0usize;
    let mut report = |scenario: &str, result: Result<()>| {
        if let Err(e) = result {
            failures += 1;
            progress(format!("{scenario} failed: {e:#}"));
            emit(
                scenario,
                json!({}),
                json!({"error": format!("{e:#}")}),
                Value::Null,
                Value::Null,
                "the scenario runs to its end",
                false,
            );
        }
    };
    if wanted("deadlines") || wanted("memory") {
        let sizes: Vec<(Backend, usize)> = if quick {
            vec![(Backend::Mysql, 200), (Backend::Sqlite, 200)]
        } else {
            let mut sizes = vec![
                (Backend::Mysql, 1_000),
                (Backend::Sqlite, 1_000),
                (Backend::Mysql, 10_000),
                (Backend::Sqlite, 10_000),
            ];
            if bench.args.max_sessions > 10_000 {
                sizes.push((Backend::Mysql, bench.args.max_sessions));
            }
            sizes.retain(|&(_, n)| n >= bench.args.min_sessions);
            sizes
        };
        let sizes = sizes
            .into_iter()
            .filter(|&(backend, _)| bench.args.backend_wanted(backend));
        for (backend, n) in sizes {
            let result = deadlines_case(bench, &rate, backend, n)
                .await
                .map(|outcome| {
                    if wanted("memory") {
                        emit_memory(&outcome);
                    }
                });
            report("deadlines", result);
        }
    }
    if wanted("recovery") {
        let n = if quick {
            200
        } else {
            bench.args.recovery_sessions
        };
        report("recovery", recovery_case(bench, &rate, n).await);
    }
    if wanted("ingest") {
        let (robots, baseline_rows) = if quick {
            (200, 2_000)
        } else {
            (10_000, 30_000)
        };
        for backend in [Backend::Mysql, Backend::Sqlite] {
            if !bench.args.backend_wanted(backend) {
                continue;
            }
            report(
                "ingest",
                ingest_case(bench, &rate, backend, robots, baseline_rows).await,
            );
        }
    }
    if wanted("queue") {
        let (robots, messages) = if quick {
            (100, 100)
        } else {
            (2_000, bench.args.queue_messages)
        };
        report("queue", queue_case(bench, &rate, robots, messages).await);
    }
    if wanted("dashboard") {
        let (robots, days, requests) = if quick {
            (50, 30, 50)
        } else {
            (1_000, 365, 300)
        };
        for backend in [Backend::Mysql, Backend::Sqlite] {
            report(
                "dashboard",
                dashboard::dashboard_case(bench, backend, robots, days, requests).await,
            );
        }
    }
    if wanted("soak") {
        let seed = bench
            .args
            .soak_seed
            .unwrap_or_else(|| u64::from(Timestamp::now().subsec_nanosecond().unsigned_abs()));
        let plan = if quick {
            soak::SoakPlan::quick(seed)
        } else {
            soak::SoakPlan::full(seed)
        };
        report("soak", soak::soak_case(bench, plan).await);
    }
    Ok(failures)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = std::fs::create_dir_all(&args.work_dir) {
        progress(format!("cannot create {}: {e}", args.work_dir.display()));
        return std::process::ExitCode::from(2);
    }
    let processes = Arc::new(Processes {
        file: args.work_dir.join("service.pids"),
        pids: Mutex::new(Vec::new()),
    });
    let bench = Bench {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .expect("an HTTP client"),
        args,
        processes,
        sequence: AtomicUsize::new(0),
    };
    let started = *STARTED.get_or_init(Instant::now);
    // Ctrl-C ends the run; dropping what runs kills the service processes it started.
    let outcome = tokio::select! {
        outcome = run_all(&bench) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    progress(format!("done in {:.0} s", started.elapsed().as_secs_f64()));
    match outcome {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::from(1),
        Err(e) => {
            progress(format!("{e:#}"));
            std::process::ExitCode::from(2)
        }
    }
}
