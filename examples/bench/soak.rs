//! The soak scenario: three instances of the service on one MariaDB database and one SQS queue
//! for a simulated week, with every fault the service is built to survive at once, and then a
//! comparison of what it did with what `replay` computes over the events Megazord stored.
//!
//! Faults: every queue delivery sent twice and the deliveries held and shuffled; instances
//! SIGKILLed at random moments and started again; Megazord (the stand-in) failing a share of
//! its calls (alarm posts stored first, then answered 500) and stalling every call for
//! stretches; the queue server restarted once, losing its queues and messages (the queue is
//! made again with the same name, as the deployment does: the service itself never creates
//! it); a few malformed messages put on the queue on purpose, which must be exactly the dead
//! letters. The queue server is a moto of this run's own, on a port of its own, so that its
//! restart touches nothing else.
//!
//! Every random choice comes from one seed, printed in `params`, so a run can be repeated
//! (`--soak-seed`); the timing of processes is not repeatable, the plan is.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use azi3_status_jobs::domain::{RobotId, Rule, RuleInput, Session, evaluate};
use azi3_status_jobs::numeric::{count_f64, millis};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor};

use super::megazord::{
    CreatedAtResolution, Fault, FaultSpan, MegazordOptions, MegazordRoute, MegazordServer,
    SqsFanOut,
};
use super::{ACTIVITY, ALARM, Backend, Bench, GRACE_SECONDS, QUEUE_SUFFIX, Service, emit};

/// Zones and daily hours of the robots, in turn: together they cover 23:00Z to 18:00Z, so no
/// session runs at 21:00Z, when the clock starts, and New York's spring-forward day
/// (2026-03-08) falls in the week.
const ZONES: [(&str, &str, &str); 4] = [
    ("Asia/Tokyo", "08:00", "14:00"),
    ("Europe/Amsterdam", "08:00", "16:00"),
    ("UTC", "09:00", "15:00"),
    ("America/New_York", "07:00", "13:00"),
];
/// Gaps G in minutes, in turn (robots 1, 5, 9, … share a zone and differ in gap).
const GAPS: [i64; 4] = [60, 90, 120, 180];
/// The clock starts here, a Sunday evening with no session running.
const CLOCK_START: &str = "2026-03-01T21:00:00Z";
/// Megazord calls failed per million.
const MEGAZORD_FAILURES_PER_MILLION: u64 = 50_000;
/// A stalled call's wait: longer than the service's request timeout (1 s).
const STALL: Duration = Duration::from_millis(1_500);
/// How long the fan-out is held before its messages are shuffled and let out.
const HOLD: Duration = Duration::from_millis(300);

/// How big the soak is.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub robots: u32,
    /// Simulated days from [`CLOCK_START`]; the run ends at 18:00Z of the last.
    pub days: i64,
    /// Service seconds per wall-clock second.
    pub speed: f64,
    pub kills: usize,
    pub stalls: usize,
    /// Service hours each stall lasts.
    pub stall_hours: i64,
    pub malformed: usize,
    pub seed: u64,
    /// Everything, from the database's creation to the last check, ends within this.
    pub time_limit: Duration,
}

impl SoakPlan {
    /// The full run: 1,000 robots for a week.
    pub fn full(seed: u64) -> SoakPlan {
        SoakPlan {
            robots: 1_000,
            days: 7,
            speed: 3_600.0,
            kills: 6,
            stalls: 3,
            stall_hours: 3,
            malformed: 5,
            seed,
            time_limit: Duration::from_secs(360),
        }
    }

    /// `--quick`: 50 robots for a day, one SIGKILL.
    pub fn quick(seed: u64) -> SoakPlan {
        SoakPlan {
            robots: 50,
            days: 1,
            speed: 9_000.0,
            kills: 1,
            stalls: 1,
            stall_hours: 2,
            malformed: 3,
            seed,
            time_limit: Duration::from_secs(60),
        }
    }

    fn clock_start(&self) -> Timestamp {
        CLOCK_START.parse().expect("a valid instant")
    }

    /// 18:00Z of the last day: every session of the week has ended, none of the next began.
    fn run_end(&self) -> Timestamp {
        self.clock_start() + SignedDuration::from_hours(24 * (self.days - 1) + 21)
    }

    fn params(&self) -> Value {
        json!({
            "backend": "mariadb", "instances": 3, "robots": self.robots,
            "simulated_days": self.days, "clock_start": CLOCK_START,
            "run_end": self.run_end().to_string(), "clock_speed": self.speed,
            "seed": self.seed, "zones": ZONES.iter().map(|(z, a, b)| format!("{z} {a}-{b}")).collect::<Vec<_>>(),
            "gaps_minutes": GAPS, "grace_seconds": GRACE_SECONDS,
            "queue_copies": 2, "queue_hold_then_shuffle_ms": millis(HOLD),
            "sigkills": self.kills, "megazord_failures_per_million": MEGAZORD_FAILURES_PER_MILLION,
            "megazord_stalls": self.stalls, "stall_service_hours": self.stall_hours,
            "stall_ms": millis(STALL), "moto_restarts": 1,
            "malformed_messages": self.malformed,
            "time_limit_seconds": self.time_limit.as_secs(),
        })
    }
}

/// A small deterministic generator (xorshift64*), so a run can be repeated.
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Dice {
        Dice(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from((hi - lo).max(1)).expect("at least 1");
        lo + i64::try_from(self.next() % span).expect("below hi - lo, an i64")
    }
}

fn rule_of(robot: u32) -> Rule {
    let (zone, start, end) = ZONES[robot as usize % ZONES.len()];
    let gap = GAPS[(robot as usize / ZONES.len()) % GAPS.len()];
    RuleInput {
        robot_id: RobotId::new(robot),
        timezone: zone.into(),
        start: start.into(),
        end: end.into(),
        gap: format!("{gap}m"),
        ..RuleInput::default()
    }
    .validate()
    .expect("a valid rule")
}

/// Every session of the run: those that start between the clock's start and the run's end.
fn sessions_of(plan: &SoakPlan, rules: &[Rule]) -> Vec<(Rule, Session)> {
    let first = jiff::tz::TimeZone::UTC
        .to_datetime(plan.clock_start())
        .date();
    let mut out = Vec::new();
    for rule in rules {
        let mut date = first.yesterday().expect("a date");
        while date <= first + jiff::Span::new().days(plan.days + 1) {
            if let Some(session) = Session::on(rule, date)
                && session.start >= plan.clock_start()
                && session.start < plan.run_end()
            {
                out.push((rule.clone(), session));
            }
            date = date.tomorrow().expect("a date");
        }
    }
    out
}

/// Sensor events: per session zero to four at random instants from ten minutes before S to ten
/// after E (some outside the session), sorted by instant.
fn plan_events(sessions: &[(Rule, Session)], dice: &mut Dice) -> Vec<(Timestamp, u32)> {
    let mut out = Vec::new();
    for (rule, session) in sessions {
        let from = session.start.as_second() - 600;
        let to = session.end.as_second() + 600;
        for _ in 0..dice.range(0, 5) {
            let at = Timestamp::from_second(dice.range(from, to)).expect("in range")
                + SignedDuration::from_millis(dice.range(0, 1000));
            out.push((at, rule.robot_id.get()));
        }
    }
    out.sort();
    out
}

/// What happens when, besides the events.
#[derive(Debug, Clone)]
enum Action {
    Kill { instance: usize, down: Duration },
    Stall { until: Timestamp },
    RestartMoto,
    Malformed { index: usize },
}

fn plan_actions(plan: &SoakPlan, dice: &mut Dice) -> Vec<(Timestamp, Action)> {
    let start = plan.clock_start().as_second() + 3 * 3600;
    let end = plan.run_end().as_second() - 3 * 3600;
    let at = |dice: &mut Dice| Timestamp::from_second(dice.range(start, end)).expect("in range");
    let mut out = Vec::new();
    for _ in 0..plan.kills {
        out.push((
            at(dice),
            Action::Kill {
                instance: usize::try_from(dice.range(0, 3)).expect("0, 1 or 2"),
                down: Duration::from_millis(
                    u64::try_from(dice.range(100, 1_500)).expect("positive"),
                ),
            },
        ));
    }
    for _ in 0..plan.stalls {
        let from = at(dice);
        out.push((
            from,
            Action::Stall {
                until: from + SignedDuration::from_hours(plan.stall_hours),
            },
        ));
    }
    // The queue server goes down once, in the first half; the malformed messages come after
    // it, so that its restart cannot take them away.
    let middle = (start + end) / 2;
    let moto_at = Timestamp::from_second(dice.range(start, middle)).expect("in range");
    out.push((moto_at, Action::RestartMoto));
    for index in 0..plan.malformed {
        let t = Timestamp::from_second(dice.range(middle, end)).expect("in range");
        out.push((t, Action::Malformed { index }));
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// A malformed status-queue message; each one different, so each is its own dead letter.
fn malformed_body(index: usize, seed: u64) -> String {
    match index % 3 {
        0 => format!("soak {seed} message {index}: not JSON"),
        1 => json!({"from": {"serviceName": "megazord-events"}, "payload": {"id": format!("soak-{seed}-{index}")}})
            .to_string(),
        // Of a subscription the service never made.
        _ => json!({
            "from": {"serviceName": "megazord-events"},
            "to": {"robotId": "1"},
            "payload": {"id": 900_000 + index, "sourceEventId": 900_000 + index,
                        "subscriptionId": 990_000_000u64 + seed % 1_000_000 + index as u64,
                        "status": "CREATED"},
        })
        .to_string(),
    }
}

/// A moto server of the soak's own; killed when dropped.
struct Moto {
    child: Option<std::process::Child>,
    port: u16,
    log: std::path::PathBuf,
    processes: Arc<super::Processes>,
}

impl Moto {
    async fn start(bench: &Bench) -> Result<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut moto = Moto {
            child: None,
            port,
            log: bench.args.work_dir.join(format!("moto-{port}.log")),
            processes: Arc::clone(&bench.processes),
        };
        moto.spawn(bench).await?;
        Ok(moto)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self, bench: &Bench) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = if which("moto_server") {
            std::process::Command::new("moto_server")
        } else {
            let mut c = std::process::Command::new("python3");
            c.args(["-m", "moto.server"]);
            c
        };
        let child = command
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start moto_server (scripts/services.sh installs it)")?;
        self.processes.add(child.id());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = bench
                .http
                .get(format!("{}/moto-api/", self.url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("moto on port {} did not answer within 30 s", self.port);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.processes.remove(child.id());
        }
    }

    async fn restart(&mut self, bench: &Bench) -> Result<()> {
        self.kill();
        self.spawn(bench).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

async fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    SqsFanOut {
        endpoint_url: endpoint.to_string(),
        ..SqsFanOut::local("unused")
    }
    .client()
    .await
}

async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    Ok(client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("create the queue {name}"))?
        .queue_url()
        .context("create_queue returns the URL")?
        .to_string())
}

/// What the run is doing, for the error of a run that overran its limit.
#[derive(Default)]
struct Stage(Mutex<String>);

impl Stage {
    fn set(&self, what: impl Into<String>) {
        let what = what.into();
        super::progress(format!("  soak: {what}"));
        *self.0.lock().unwrap() = what;
    }

    fn get(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// Runs the soak within its time limit; the database is dropped and every process stopped
/// whatever happens.
pub async fn soak_case(bench: &Bench, plan: SoakPlan) -> Result<()> {
    super::progress(format!(
        "soak: {} robots, {} simulated days, 3 instances, seed {}",
        plan.robots, plan.days, plan.seed
    ));
    let db = bench.create_database(Backend::Mysql, "soak").await?;
    let stage = Stage::default();
    let limit_at = Instant::now() + plan.time_limit;
    let outcome = tokio::time::timeout_at(
        limit_at.into(),
        run(bench, &plan, &db.url, &stage, limit_at),
    )
    .await;
    bench.drop_database(&db).await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.context(format!("soak, seed {}", plan.seed))),
        Err(_) => Err(anyhow!(
            "soak, seed {}: did not finish within its limit of {} s; it was at: {}",
            plan.seed,
            plan.time_limit.as_secs(),
            stage.get()
        )),
    }
}

async fn run(
    bench: &Bench,
    plan: &SoakPlan,
    db_url: &str,
    stage: &Stage,
    limit_at: Instant,
) -> Result<()> {
    let wall = Instant::now();
    let mut dice = Dice::new(plan.seed);
    let rules: Vec<Rule> = (1..=plan.robots).map(rule_of).collect();
    let sessions = sessions_of(plan, &rules);
    let events = plan_events(&sessions, &mut dice);
    let actions = plan_actions(plan, &mut dice);

    stage.set("starting moto, the stand-in and the database");
    let mut moto = Moto::start(bench).await?;
    let sqs = sqs_client(&moto.url()).await;
    let queue_name = format!("soak-{}-{QUEUE_SUFFIX}", std::process::id());
    let queue_url = create_queue(&sqs, &queue_name).await?;
    let status_queue_base = queue_url
        .strip_suffix(&format!("-{QUEUE_SUFFIX}"))
        .context("the queue URL ends in its name")?
        .to_string();
    let clock_start = plan.clock_start();
    let (stand_in_clock, shared) = super::megazord::following_clock(clock_start);
    let server = Arc::new(
        MegazordServer::start(MegazordOptions {
            created_at_resolution: CreatedAtResolution::Millisecond,
            ..MegazordOptions::default()
                .with_clock(stand_in_clock)
                .with_fan_out(SqsFanOut {
                    endpoint_url: moto.url(),
                    ..SqsFanOut::local(&status_queue_base)
                })
        })
        .await,
    );
    server.set_fan_out_copies(2);

    let mut configs = Vec::new();
    for instance in ["a", "b", "c"] {
        let path = bench
            .args
            .work_dir
            .join(format!("soak-{}-{instance}.toml", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "[database]\nurl = \"{db_url}\"\nbootstrap_shared_schema = true\n\n\
                 [service]\ngrace_seconds = {GRACE_SECONDS}\ninstance_id = \"soak-{instance}\"\n\n\
                 [megazord]\nbase_url = \"{megazord}\"\nrequest_timeout_ms = 1000\nmax_attempts = 3\n\
                 initial_backoff_ms = 20\nmax_backoff_ms = 200\n\n\
                 [queue]\nconsumer_queue_url = \"{queue_url}\"\nqueue_suffix = \"{QUEUE_SUFFIX}\"\n\
                 endpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\nwait_time_seconds = 1\n\
                 visibility_timeout_seconds = 5\n",
                megazord = server.base_url(),
                endpoint = moto.url(),
            ),
        )?;
        configs.push(path);
    }
    super::migrate(bench, &configs[0])?;
    insert_rules(db_url, &rules, clock_start).await?;

    stage.set("starting three instances");
    let args = vec![
        "--clock-start".to_string(),
        clock_start.to_string(),
        "--clock-speed".to_string(),
        plan.speed.to_string(),
    ];
    let mut services = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let log = config.with_extension("log");
        let mut service = Service::spawn(bench, config, &log, &args)?;
        let sim = service
            .wait_health(&bench.http, Duration::from_secs(30))
            .await?;
        let adopted = *shared.get_or_init(|| sim);
        if adopted != sim {
            bail!("instance {i} runs another clock ({sim:?}) than the first ({adopted:?})");
        }
        services.push(service);
    }
    for service in &mut services {
        service
            .wait_ready(&bench.http, Duration::from_secs(30))
            .await?;
    }
    let sim = *shared.get().expect("a clock");
    let now = sim.service_time_at(Timestamp::now());
    if now >= sessions.iter().map(|(_, s)| s.start).min().unwrap_or(now) {
        super::progress("  soak: warning: the instances were ready only after the first S");
    }
    server.fail_randomly(
        MEGAZORD_FAILURES_PER_MILLION,
        plan.seed ^ 0x6d65_6761,
        vec![
            // Stored, then answered 500: the retry must find the alarm, not post it again.
            (
                Some(MegazordRoute::PostIncoming),
                Fault::StatusAfterHandling(500),
            ),
            (None, Fault::Status(500)),
        ],
    );

    // The sensors, and the queue's duplicating and shuffling, run beside the faults.
    let week_started = Instant::now();
    let sleep_until = move |at: Timestamp| {
        let wait = sim.real_time_of(at).duration_since(Timestamp::now());
        async move {
            if wait.is_positive() {
                tokio::time::sleep(wait.unsigned_abs()).await;
            }
        }
    };
    let sensors = tokio::spawn({
        let server = Arc::clone(&server);
        let events = events.clone();
        async move {
            for (at, robot) in events {
                sleep_until(at).await;
                server.post_sensor_event(RobotId::new(robot), ACTIVITY);
            }
        }
    });
    let shuffling = Arc::new(AtomicBool::new(true));
    let shuffler = tokio::spawn({
        let server = Arc::clone(&server);
        let shuffling = Arc::clone(&shuffling);
        let seed = plan.seed;
        async move {
            let mut round = 0u64;
            while shuffling.load(Ordering::Relaxed) {
                server.pause_fan_out();
                tokio::time::sleep(HOLD).await;
                round += 1;
                server.resume_fan_out_shuffled(seed.wrapping_add(round));
                let _ = tokio::time::timeout(Duration::from_secs(2), server.wait_fan_out()).await;
            }
            server.resume_fan_out();
        }
    });
    // Aborted when the run ends early (an error, the time limit).
    let _sensors_guard = AbortOnDrop(sensors.abort_handle());
    let _shuffler_guard = AbortOnDrop(shuffler.abort_handle());

    let mut kills = Vec::new();
    let mut malformed = BTreeSet::new();
    let mut moto_downtime = 0.0;
    for (at, action) in &actions {
        sleep_until(*at).await;
        match action {
            Action::Kill { instance, down } => {
                stage.set(format!("SIGKILL of instance {instance} at {at}"));
                let service = &mut services[*instance];
                service.kill().await;
                tokio::time::sleep(*down).await;
                service.restart(bench).await?;
                let again = service
                    .wait_health(&bench.http, Duration::from_secs(30))
                    .await?;
                if again != sim {
                    bail!("instance {instance} came back on another clock: {again:?}");
                }
                kills.push(
                    json!({"instance": instance, "at": at.to_string(), "down_ms": millis(*down)}),
                );
            }
            Action::Stall { until } => {
                stage.set(format!("Megazord stalls every call until {until}"));
                server.inject_fault_everywhere(Fault::Stall(STALL), FaultSpan::Until(*until));
            }
            Action::RestartMoto => {
                stage.set(format!("restarting moto at {at}"));
                let down = Instant::now();
                moto.restart(bench).await?;
                let again = create_queue(&sqs, &queue_name).await?;
                if again != queue_url {
                    bail!("the queue came back as {again}, not {queue_url}");
                }
                moto_downtime = down.elapsed().as_secs_f64();
            }
            Action::Malformed { index } => {
                let body = malformed_body(*index, plan.seed);
                sqs.send_message()
                    .queue_url(&queue_url)
                    .message_body(&body)
                    .send()
                    .await
                    .context("send a malformed message")?;
                malformed.insert(body);
            }
        }
    }
    stage.set("the rest of the week");
    sleep_until(plan.run_end()).await;
    sensors.await.context("the sensors")?;
    let week_seconds = week_started.elapsed().as_secs_f64();
    server.clear_faults();
    shuffling.store(false, Ordering::Relaxed);
    shuffler.await.context("the shuffler")?;
    let backlog_at_week_end = server.pending_fan_out();
    let _ = tokio::time::timeout(Duration::from_secs(30), server.wait_fan_out()).await;

    // Replay over what Megazord stored.
    stage.set("waiting for every session to complete and every alarm to be posted");
    let settle_started = Instant::now();
    let stored = server.incoming_events();
    let mut by_robot: BTreeMap<RobotId, Vec<(Timestamp, u64)>> = BTreeMap::new();
    for e in stored.iter().filter(|e| e.event_name == ACTIVITY) {
        by_robot
            .entry(e.robot_id)
            .or_default()
            .push((e.created_at, e.id));
    }
    let expected: Vec<Expected> = sessions
        .iter()
        .map(|(rule, session)| {
            let mut own: Vec<(Timestamp, u64)> = by_robot
                .get(&rule.robot_id)
                .into_iter()
                .flatten()
                .filter(|(t, _)| session.contains(*t))
                .copied()
                .collect();
            own.sort();
            let times: Vec<Timestamp> = own.iter().map(|(t, _)| *t).collect();
            let outcome = evaluate(rule, *session, &times);
            Expected {
                session: *session,
                result: outcome.result.as_str().to_string(),
                alarms: outcome.alarms.iter().map(|a| a.reference_id()).collect(),
                event_ids: own.iter().map(|(_, id)| *id).collect(),
            }
        })
        .collect();
    let wanted: BTreeSet<String> = expected.iter().flat_map(|e| e.alarms.clone()).collect();
    let dates: BTreeMap<u32, (Date, Date)> = expected.iter().fold(BTreeMap::new(), |mut m, e| {
        let entry = m
            .entry(e.session.robot_id.get())
            .or_insert((e.session.date, e.session.date));
        entry.0 = entry.0.min(e.session.date);
        entry.1 = entry.1.max(e.session.date);
        m
    });
    // Patience ends early enough to leave the comparison its time within the limit: a run that
    // does not settle is reported with what it has (`sessions_not_settled`), not cut off.
    let reserve = if bench.args.quick {
        Duration::from_secs(12)
    } else {
        Duration::from_secs(45)
    };
    let deadline = limit_at.checked_sub(reserve).unwrap_or(limit_at);
    // Polled, not awaited on every change: counting is a pass over every stored event.
    while Instant::now() < deadline {
        let posted = alarm_counts(&server);
        if wanted.iter().all(|r| posted.contains_key(r)) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut expected_per_robot: BTreeMap<u32, usize> = BTreeMap::new();
    for e in &expected {
        *expected_per_robot
            .entry(e.session.robot_id.get())
            .or_insert(0) += 1;
    }
    let mut reports: BTreeMap<u32, Value> = BTreeMap::new();
    let mut unsettled: Vec<u32> = dates.keys().copied().collect();
    loop {
        // Eight reads at a time, spread over the three instances.
        let slots = Arc::new(tokio::sync::Semaphore::new(8));
        let mut readers = tokio::task::JoinSet::new();
        for (k, robot) in unsettled.iter().copied().enumerate() {
            let http = bench.http.clone();
            let base = services[k % services.len()].base_url.clone();
            let (from, to) = dates[&robot];
            let wanted = expected_per_robot[&robot];
            let slots = Arc::clone(&slots);
            readers.spawn(async move {
                let _slot = slots.acquire_owned().await?;
                let report: Value = http
                    .get(format!(
                        "{base}/v1/robots/{robot}/sessions?from={from}&to={to}"
                    ))
                    .send()
                    .await?
                    .json()
                    .await?;
                let sessions = report["sessions"].as_array().cloned().unwrap_or_default();
                let done = sessions.len() >= wanted && sessions.iter().all(settled);
                Ok::<_, anyhow::Error>(vec![(robot, report, done)])
            });
        }
        // A pass cut short by the deadline leaves the robots it did not read unsettled.
        let mut read_now = BTreeSet::new();
        let mut still = Vec::new();
        let cut = deadline.max(Instant::now()) + reserve / 3;
        while let Ok(Some(read)) = tokio::time::timeout_at(cut.into(), readers.join_next()).await {
            for (robot, report, done) in read.context("a session reader")?? {
                if !done {
                    still.push(robot);
                }
                read_now.insert(robot);
                reports.insert(robot, report);
            }
        }
        readers.abort_all();
        still.extend(unsettled.iter().filter(|r| !read_now.contains(*r)));
        unsettled = still;
        if unsettled.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settle_seconds = settle_started.elapsed().as_secs_f64();

    stage.set("comparing with replay");
    // Alarms of the run's sessions only: the clock runs on while the run settles, and the next
    // day's first windows may alarm by then.
    let run_sessions: BTreeSet<(u32, String)> = expected
        .iter()
        .map(|e| (e.session.robot_id.get(), e.session.date.to_string()))
        .collect();
    let posted: BTreeMap<String, usize> = alarm_counts(&server)
        .into_iter()
        .filter(|(r, _)| session_of_reference(r).is_none_or(|key| run_sessions.contains(&key)))
        .collect();
    let duplicates: BTreeMap<&String, &usize> = posted.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<&String> = wanted.iter().filter(|r| !posted.contains_key(*r)).collect();
    let unexpected: Vec<&String> = posted.keys().filter(|r| !wanted.contains(*r)).collect();
    let alarm_posts: usize = posted.values().sum();
    let mut differing = Vec::new();
    let mut lost_events = 0usize;
    let mut extra_records = 0usize;
    for e in &expected {
        let session = reports
            .get(&e.session.robot_id.get())
            .and_then(|r| r["sessions"].as_array())
            .and_then(|s| {
                s.iter()
                    .find(|s| s["date"].as_str() == Some(e.session.date.to_string().as_str()))
            })
            .cloned()
            .unwrap_or(Value::Null);
        let alarms: Vec<String> = session["alarms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["referenceId"].as_str().map(str::to_string))
            .collect();
        let seen: BTreeSet<u64> = session["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["result"] == "EVENT_OBSERVED" || r["result"] == "EVENT_LATE")
            .filter_map(|r| r["incomingEventId"].as_u64())
            .collect();
        let events: BTreeSet<u64> = e.event_ids.iter().copied().collect();
        lost_events += events.difference(&seen).count();
        extra_records += seen.difference(&events).count();
        if session["status"] != "COMPLETED"
            || session["result"] != e.result.as_str()
            || alarms != e.alarms
            || seen != events
        {
            differing.push(json!({
                "robot": e.session.robot_id, "date": e.session.date.to_string(),
                "replay": {"result": e.result, "alarms": e.alarms, "events": e.event_ids},
                "service": {"status": session["status"], "result": session["result"], "alarms": alarms, "events": seen},
            }));
        }
    }
    let dead_letters = dead_letters(db_url).await?;
    let bodies: BTreeSet<String> = dead_letters.keys().cloned().collect();
    // A message of a subscription the service has recorded by now arrived before it was
    // recorded; one it never recorded was made by an instance killed before it could.
    let recorded = recorded_subscriptions(db_url).await?;
    let unexpected_dead: Vec<Value> = bodies
        .difference(&malformed)
        .map(|body| {
            let subscription = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|b| b["payload"]["subscriptionId"].as_u64());
            let made_at = subscription.and_then(|id| {
                server
                    .subscriptions()
                    .into_iter()
                    .find(|s| s.id == id)
                    .map(|s| s.created_at.to_string())
            });
            json!({
                "reason": dead_letters[body],
                "subscription": subscription,
                "subscription_made_at_megazord": made_at,
                "recorded_by_the_service_by_now": subscription.map(|id| recorded.contains(&id)),
                "body": body,
            })
        })
        .collect();
    let never_recorded = unexpected_dead
        .iter()
        .filter(|d| d["recorded_by_the_service_by_now"] == false)
        .filter_map(|d| d["subscription"].as_u64())
        .collect::<BTreeSet<u64>>();
    let missing_dead: Vec<&String> = malformed.difference(&bodies).collect();

    let requests = server.requests();
    let megazord_calls = requests.len();
    let failed_calls = requests
        .iter()
        .filter(|r| {
            matches!(
                r.fault,
                Some(Fault::Status(_) | Fault::StatusAfterHandling(_))
            )
        })
        .count();
    let stalled_calls = requests
        .iter()
        .filter(|r| matches!(r.fault, Some(Fault::Stall(_))))
        .count();
    let fan_out = server.fan_out_log();
    let fan_out_failed = fan_out
        .iter()
        .filter(|m| matches!(m.outcome, super::megazord::FanOutOutcome::Failed(_)))
        .count();
    let stored_then_failed = requests
        .iter()
        .filter(|r| {
            r.route == Some(MegazordRoute::PostIncoming)
                && matches!(r.fault, Some(Fault::StatusAfterHandling(_)))
        })
        .count();
    for service in &mut services {
        service.kill().await;
    }
    drop(moto);

    let replay_alarms = wanted.len();
    let ratio = if replay_alarms == 0 {
        1.0
    } else {
        count_f64(alarm_posts) / count_f64(replay_alarms)
    };
    let ok = differing.is_empty()
        && duplicates.is_empty()
        && missing.is_empty()
        && unexpected.is_empty()
        && lost_events == 0
        && unexpected_dead.is_empty()
        && missing_dead.is_empty();
    super::progress(format!(
        "  soak: {} sessions, {} alarms posted of {replay_alarms} replayed, {} differing, {} duplicates, {lost_events} events lost, dead letters {}/{}",
        expected.len(),
        alarm_posts,
        differing.len(),
        duplicates.len(),
        dead_letters.len(),
        malformed.len()
    ));
    let sensor_events = stored.iter().filter(|e| e.event_name == ACTIVITY).count();
    emit(
        "soak",
        plan.params(),
        json!({
            "sessions": expected.len(),
            "sessions_differing_from_replay": differing.len(),
            "differing_examples": differing.iter().take(5).collect::<Vec<_>>(),
            "sessions_not_settled": unsettled.len(),
            "sensor_events": sensor_events,
            "events_in_sessions": expected.iter().map(|e| e.event_ids.len()).sum::<usize>(),
            "events_lost": lost_events,
            "event_records_not_in_replay": extra_records,
            "alarm_posts": alarm_posts,
            "alarms_distinct": posted.len(),
            "duplicate_alarms": duplicates.len(),
            "duplicate_examples": duplicates.iter().take(5).map(|(r, n)| json!({"referenceId": r, "posts": n})).collect::<Vec<_>>(),
            "alarms_missing": missing.len(),
            "alarms_not_in_replay": unexpected.len(),
            "alarm_posts_stored_then_answered_500": stored_then_failed,
            "dead_letters": dead_letters.len(),
            "dead_letters_injected": malformed.len(),
            "dead_letters_not_injected": unexpected_dead.len(),
            "dead_letters_not_injected_examples": unexpected_dead.iter().take(5).collect::<Vec<_>>(),
            "subscriptions_never_recorded": never_recorded,
            "injected_not_dead_letters": missing_dead.len(),
            "queue_messages": fan_out.len(),
            "queue_deliveries_sent": fan_out.len() * 2,
            "queue_messages_lost_with_moto": fan_out_failed,
            "queue_messages_not_yet_sent_at_week_end": backlog_at_week_end,
            "moto_down_seconds": super::round3(moto_downtime),
            "sigkills": kills,
            "megazord_calls": megazord_calls,
            "megazord_calls_failed": failed_calls,
            "megazord_calls_stalled": stalled_calls,
            "week_wall_seconds": super::round3(week_seconds),
            "settle_wall_seconds": super::round3(settle_seconds),
            "wall_seconds": super::round3(wall.elapsed().as_secs_f64()),
        }),
        json!({"replay_alarms": replay_alarms, "replay_sessions": expected.len(),
               "what": "replay (the core's evaluate) over the events Megazord stored"}),
        json!(super::round3(ratio)),
        "every session equals replay; alarm posts / replay alarms = 1 (0 duplicate, 0 missing); 0 events lost; dead letters = the injected ones",
        ok,
    );
    Ok(())
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One session as replay computes it.
struct Expected {
    session: Session,
    result: String,
    alarms: Vec<String>,
    event_ids: Vec<u64>,
}

fn settled(session: &Value) -> bool {
    let sent = session["records"].as_array().map_or(0, |r| {
        r.iter().filter(|r| r["result"] == "ALARM_SENT").count()
    });
    session["status"] == "COMPLETED"
        && session["alarms"]
            .as_array()
            .is_some_and(|a| a.len() == sent)
}

/// Alarm posts Megazord stored, per reference id.
fn alarm_counts(server: &MegazordServer) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in server.incoming_events() {
        if event.event_name == ALARM {
            *counts
                .entry(event.reference_id.clone().unwrap_or_default())
                .or_insert(0) += 1;
        }
    }
    counts
}

/// The dead letters' bodies with their reasons.
async fn dead_letters(db_url: &str) -> Result<BTreeMap<String, String>> {
    let mut conn = sqlx::MySqlConnection::connect(db_url).await?;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT body, reason FROM status_job_dead_letter")
            .fetch_all(&mut conn)
            .await?;
    conn.close().await.ok();
    Ok(rows.into_iter().collect())
}

/// Every subscription id the service has written down (its own and spares).
async fn recorded_subscriptions(db_url: &str) -> Result<BTreeSet<u64>> {
    let mut conn = sqlx::MySqlConnection::connect(db_url).await?;
    let rows: Vec<(u64,)> = sqlx::query_as("SELECT subscription_id FROM status_job_subscription")
        .fetch_all(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The robot and local date of an alarm's reference id (`nta-<robot>-<date>-<s>`).
fn session_of_reference(reference: &str) -> Option<(u32, String)> {
    let mut parts = reference.strip_prefix("nta-")?.splitn(2, '-');
    let robot = parts.next()?.parse().ok()?;
    let date = parts.next()?.get(..10)?.to_string();
    Some((robot, date))
}

async fn insert_rules(db_url: &str, rules: &[Rule], clock_start: Timestamp) -> Result<()> {
    let updated_ms = clock_start.as_millisecond() - 86_400_000;
    let mut conn = sqlx::MySqlConnection::connect(db_url).await?;
    for chunk in rules.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|rule| {
                let (zone, start, end) = ZONES[rule.robot_id.get() as usize % ZONES.len()];
                format!(
                    "({robot}, '{zone}', '{start}:00', '{end}:00', {gap}, '{ACTIVITY}', \
                     '{ALARM}', 'ignore', 1, 1, {updated_ms}, NULL)",
                    robot = rule.robot_id,
                    gap = rule.gap.minutes(),
                )
            })
            .collect();
        conn.execute(AssertSqlSafe(format!(
            "INSERT INTO status_job_rule (robot_id, timezone, start_time, end_time, gap_minutes, \
             watched_event, alarm_event, partial_final_window, enabled, version, updated_at_ms, \
             watching_since_ms) VALUES {}",
            values.join(", ")
        )))
        .await?;
    }
    conn.close().await.ok();
    Ok(())
}
