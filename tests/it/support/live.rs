//! The live service end to end: a throw-away MariaDB database, a fresh moto SQS queue, the
//! Megazord stand-in fanning out to it, and the real binary on a simulated clock that the
//! stand-in shares, so that Megazord's `createdAt` and service time agree.
//!
//! A test plays sensor events at their service instants, then compares what the service did
//! (alarm posts counted by the stand-in, sessions and records from
//! `GET /v1/robots/{id}/sessions`) with what the core computes over the events the stand-in
//! actually stored.

use azi3_status_jobs::domain::RobotId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use azi3_status_jobs::clock::SimulatedClock;
use azi3_status_jobs::domain::{Rule, RuleInput, Session, evaluate};
use azi3_status_jobs::numeric::count_f64;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, Executor};

use super::megazord::{
    MegazordOptions, MegazordServer, SqsFanOut, create_named_queue, following_clock, sqs_client,
    test_sqs_endpoint,
};
use super::service::{Service, ServiceOptions};
use super::{mysql_base_url, unique_name};

/// The watched event.
pub const ACTIVITY: &str = "TOILET_ACTIVITY";
/// The queue suffix the service subscribes with.
const SUFFIX: &str = "azi-3-status-jobs";

/// One monitored robot.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    /// The robot.
    pub robot_id: RobotId,
    /// IANA zone.
    pub timezone: &'static str,
    /// A, local.
    pub start: &'static str,
    /// B, local.
    pub end: &'static str,
    /// G, e.g. `45m`.
    pub gap: &'static str,
}

impl RuleSpec {
    /// The validated rule.
    pub fn rule(&self) -> Rule {
        RuleInput {
            robot_id: self.robot_id,
            timezone: self.timezone.into(),
            start: self.start.into(),
            end: self.end.into(),
            gap: self.gap.into(),
            ..RuleInput::default()
        }
        .validate()
        .expect("a valid rule")
    }

    fn toml(&self) -> String {
        format!(
            "[[rules]]\nrobot_id = {}\ntimezone = \"{}\"\nstart = \"{}\"\nend = \"{}\"\ngap = \"{}\"\n",
            self.robot_id, self.timezone, self.start, self.end, self.gap
        )
    }
}

/// How the simulated day runs.
#[derive(Debug, Clone)]
pub struct DayPlan {
    /// Service time at start.
    pub clock_start: Timestamp,
    /// Service seconds per wall-clock second.
    pub speed: f64,
    /// `[service] grace_seconds`.
    pub grace_seconds: u32,
    /// The robots.
    pub rules: Vec<RuleSpec>,
}

/// Everything one end-to-end test runs against.
pub struct Rig {
    /// The plan.
    pub plan: DayPlan,
    /// The Megazord stand-in.
    pub server: MegazordServer,
    /// The consumed queue's URL (at moto).
    pub queue_url: String,
    /// The database URL the service uses.
    pub database_url: String,
    database: String,
    dropped: std::sync::atomic::AtomicBool,
    dir: tempfile::TempDir,
    clock: Arc<OnceLock<SimulatedClock>>,
}

/// Per-instance start options.
#[derive(Debug, Clone, Default)]
pub struct InstanceOptions {
    /// `[service] instance_id`.
    pub instance_id: String,
    /// The SQS endpoint the service uses instead of moto's (a proxy).
    pub sqs_endpoint: Option<String>,
    /// The Megazord URL the service uses instead of the stand-in's own (a proxy).
    pub megazord_url: Option<String>,
    /// TOML appended to the config file (after the rules: start it with a section header).
    pub extra_config: String,
}

impl Rig {
    /// Creates the database, the queue and the stand-in (on the shared clock, set once the
    /// service tells its anchor).
    pub async fn new(test: &str, plan: DayPlan) -> Rig {
        let database = unique_name(&format!("azi3_e2e_{test}"));
        let base = mysql_base_url();
        let mut admin = sqlx::MySqlConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("MariaDB at {base} does not answer ({e}); run scripts/services.sh")
            });
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let sqs = sqs_client().await;
        let name = format!(
            "e2e-{test}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        let queue_url = create_named_queue(&sqs, &format!("{name}-{SUFFIX}")).await;
        let status_queue_base = queue_url
            .strip_suffix(&format!("-{SUFFIX}"))
            .expect("the queue URL ends in its name")
            .to_string();
        let (stand_in_clock, clock) = following_clock(plan.clock_start);
        let server = MegazordServer::start(
            MegazordOptions::default()
                .with_clock(stand_in_clock)
                .with_fan_out(SqsFanOut::local(&status_queue_base)),
        )
        .await;
        Rig {
            plan,
            server,
            queue_url,
            database_url: format!("{base}/{database}"),
            database,
            dropped: std::sync::atomic::AtomicBool::new(false),
            dir: tempfile::tempdir().expect("temp dir"),
            clock,
        }
    }

    /// The config file of one instance.
    pub fn config(&self, options: &InstanceOptions) -> String {
        let rules: String = self.plan.rules.iter().map(RuleSpec::toml).collect();
        format!(
            "[database]\nurl = \"{db}\"\nbootstrap_shared_schema = true\n\n\
             [service]\ngrace_seconds = {grace}\ninstance_id = \"{instance}\"\n\n\
             [megazord]\nbase_url = \"{megazord}\"\nrequest_timeout_ms = 1000\nmax_attempts = 3\n\
             initial_backoff_ms = 20\nmax_backoff_ms = 200\n\n\
             [queue]\nconsumer_queue_url = \"{queue}\"\nqueue_suffix = \"{SUFFIX}\"\n\
             endpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\nwait_time_seconds = 1\n\
             visibility_timeout_seconds = 5\n\n{rules}\n{extra}",
            db = self.database_url,
            grace = self.plan.grace_seconds,
            instance = options.instance_id,
            megazord = options
                .megazord_url
                .clone()
                .unwrap_or_else(|| self.server.base_url()),
            queue = self.queue_url,
            endpoint = options
                .sqs_endpoint
                .clone()
                .unwrap_or_else(test_sqs_endpoint),
            extra = options.extra_config,
        )
    }

    /// The command-line arguments of every start.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--clock-start".into(),
            self.plan.clock_start.to_string(),
            "--clock-speed".into(),
            self.plan.speed.to_string(),
        ]
    }

    /// Starts one instance in its own directory and adopts (or checks) its clock.
    pub async fn start_service(&self, options: InstanceOptions) -> Service {
        let dir: PathBuf = self
            .dir
            .path()
            .join(format!("instance-{}", options.instance_id));
        std::fs::create_dir_all(&dir).unwrap();
        let env = [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let service = Service::start(
            &dir,
            ServiceOptions {
                config: self.config(&options),
                env,
                args: self.args(),
            },
        );
        self.adopt_clock(&service).await;
        service
    }

    /// Reads the service's simulated clock from `/health`; the first one is shared with the
    /// stand-in, every later one must be the same (the anchor is kept in the database).
    pub async fn adopt_clock(&self, service: &Service) {
        let sim = service.simulated_clock().await;
        let adopted = self.clock.get_or_init(|| sim);
        assert_eq!(
            *adopted, sim,
            "a restarted service must continue the same simulated clock"
        );
    }

    /// The shared simulated clock.
    pub fn sim(&self) -> SimulatedClock {
        *self.clock.get().expect("a service was started")
    }

    /// Service time now.
    pub fn now(&self) -> Timestamp {
        self.sim().service_time_at(Timestamp::now())
    }

    /// Waits (wall time) until service time reaches `at`.
    pub async fn sleep_until(&self, at: Timestamp) {
        let real = self.sim().real_time_of(at);
        let wait = real.duration_since(Timestamp::now());
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
        }
    }

    /// A wall-clock duration for a service-time span.
    pub fn wall(&self, service: SignedDuration) -> Duration {
        Duration::from_secs_f64(service.as_secs_f64().max(0.0) / self.plan.speed)
    }

    /// Every session the service creates in this run, per the core: the sessions (of the
    /// local dates around the run) that have not ended when the run begins and start before
    /// `until`.
    pub fn sessions(&self, until: Timestamp) -> Vec<(Rule, Session)> {
        let mut out = Vec::new();
        for spec in &self.plan.rules {
            let rule = spec.rule();
            let first = rule.timezone.to_datetime(self.plan.clock_start).date();
            let mut date = first.yesterday().unwrap();
            while date <= first.checked_add(jiff::Span::new().days(2)).unwrap() {
                // The service starts a session only while it runs.
                if let Some(session) = Session::on(&rule, date)
                    && session.start <= until
                    && session.end > self.plan.clock_start
                {
                    out.push((rule.clone(), session));
                }
                date = date.tomorrow().unwrap();
            }
        }
        out
    }

    /// What the core computes over the events the stand-in stored, for every session that
    /// starts before `until`.
    pub fn expected(&self, until: Timestamp) -> Vec<Expected> {
        let incoming = self.server.incoming_events();
        self.sessions(until)
            .into_iter()
            .map(|(rule, session)| {
                let mut events: Vec<(Timestamp, u64)> = incoming
                    .iter()
                    .filter(|e| e.robot_id == rule.robot_id && e.event_name == ACTIVITY)
                    .filter(|e| session.contains(e.created_at))
                    .map(|e| (e.created_at, e.id))
                    .collect();
                events.sort();
                let times: Vec<Timestamp> = events.iter().map(|(t, _)| *t).collect();
                let outcome = evaluate(&rule, session, &times);
                Expected {
                    session,
                    result: outcome.result.as_str().to_string(),
                    alarms: outcome.alarms.iter().map(|a| a.reference_id()).collect(),
                    alarm_deadlines: outcome.alarms.iter().map(|a| a.window.end).collect(),
                    event_ids: events.iter().map(|(_, id)| *id).collect(),
                }
            })
            .collect()
    }

    /// Waits until every session that starts before `until` is completed at the service and
    /// every alarm the core expects has been posted; then checks that the service did exactly
    /// what the core computes: the same alarms, each posted once, no other alarm, every event
    /// recorded once. Returns the expectation.
    pub async fn settle_and_check(
        &self,
        service: &Service,
        until: Timestamp,
        patience: Duration,
    ) -> Vec<Expected> {
        let robots: Vec<RobotId> = self.plan.rules.iter().map(|r| r.robot_id).collect();
        self.settle_and_check_robots(service, until, patience, &robots)
            .await
    }

    /// [`Rig::settle_and_check`] for the sessions and alarms of `robots` only.
    pub async fn settle_and_check_robots(
        &self,
        service: &Service,
        until: Timestamp,
        patience: Duration,
        robots: &[RobotId],
    ) -> Vec<Expected> {
        let expected: Vec<Expected> = self
            .expected(until)
            .into_iter()
            .filter(|e| robots.contains(&e.session.robot_id))
            .collect();
        let wanted: BTreeSet<String> = expected.iter().flat_map(|e| e.alarms.clone()).collect();
        let deadline = tokio::time::Instant::now() + patience;
        let posted = self
            .server
            .wait_for(patience, |server| {
                let counts = alarm_post_counts_of(server, robots);
                wanted.iter().all(|r| counts.contains_key(r))
            })
            .await;
        let counts = alarm_post_counts_of(&self.server, robots);
        assert!(
            posted,
            "alarms never posted: {:?}\nposted: {counts:?}\n{}",
            wanted
                .iter()
                .filter(|r| !counts.contains_key(*r))
                .collect::<Vec<_>>(),
            tail(service)
        );
        let reports = loop {
            let reports = self.reports(service, &expected).await;
            if reports.iter().all(|(_, r)| settled(r)) {
                break reports;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sessions not completed: {}\n{}",
                serde_json::to_string_pretty(
                    &reports.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()
                )
                .unwrap(),
                tail(service)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Exactly the expected alarms were posted, each once.
        let counts = alarm_post_counts_of(&self.server, robots);
        let posted: BTreeSet<String> = counts.keys().cloned().collect();
        assert_eq!(posted, wanted, "posted alarms differ from the core's");
        let duplicates: BTreeMap<&String, &usize> =
            counts.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            duplicates.is_empty(),
            "alarms posted more than once: {duplicates:?}"
        );
        // The service's sessions say the same.
        let alarm_ids: BTreeMap<String, u64> = self
            .server
            .incoming_events()
            .iter()
            .filter(|e| e.event_name == "NO_TOILET_ACTIVITY_ALARM")
            .map(|e| (e.reference_id.clone().unwrap_or_default(), e.id))
            .collect();
        for (expected, session) in &reports {
            let what = format!(
                "robot {} on {}",
                expected.session.robot_id, expected.session.date
            );
            assert_eq!(
                session["result"],
                expected.result.as_str(),
                "{what}: {session}"
            );
            let alarms: Vec<String> = session["alarms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["referenceId"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(alarms, expected.alarms, "{what}: {session}");
            let records = session["records"].as_array().unwrap();
            // Records are in the order alarms were sent, which a restart can change.
            let mut sent: Vec<u64> = records
                .iter()
                .filter(|r| r["result"] == "ALARM_SENT")
                .map(|r| r["incomingEventId"].as_u64().unwrap())
                .collect();
            sent.sort_unstable();
            let mut megazord: Vec<u64> = expected.alarms.iter().map(|r| alarm_ids[r]).collect();
            megazord.sort_unstable();
            assert_eq!(
                sent, megazord,
                "{what}: ALARM_SENT records vs Megazord ids: {session}"
            );
            let mut seen: Vec<u64> = records
                .iter()
                .filter(|r| r["result"] == "EVENT_OBSERVED" || r["result"] == "EVENT_LATE")
                .map(|r| r["incomingEventId"].as_u64().unwrap())
                .collect();
            seen.sort_unstable();
            let mut events = expected.event_ids.clone();
            events.sort_unstable();
            assert_eq!(seen, events, "{what}: every event recorded once: {session}");
        }
        expected
    }

    /// Each expected session with the service's report of it.
    async fn reports(&self, service: &Service, expected: &[Expected]) -> Vec<(Expected, Value)> {
        let mut out = Vec::new();
        for e in expected {
            let (status, report) = service
                .get(&format!(
                    "/v1/robots/{}/sessions?from={}&to={}",
                    e.session.robot_id, e.session.date, e.session.date
                ))
                .await;
            assert_eq!(status, 200, "{report}");
            let session = report["sessions"]
                .as_array()
                .and_then(|s| s.first())
                .cloned()
                .unwrap_or(Value::Null);
            out.push((e.clone(), session));
        }
        out
    }

    /// Drops the database (also done when the rig is dropped, e.g. by a failing test).
    pub async fn finish(&self) {
        if self.dropped.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        drop_database(&self.database).await;
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if self.dropped.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let database = self.database.clone();
        // Drop runs inside the test's runtime: drop the database from a thread of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(drop_database(&database));
        })
        .join();
    }
}

async fn drop_database(database: &str) {
    let Ok(mut admin) = sqlx::MySqlConnection::connect(&mysql_base_url()).await else {
        return;
    };
    let _ = admin
        .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {database}")))
        .await;
    admin.close().await.ok();
}

/// One session as the core computes it.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The session.
    pub session: Session,
    /// `SUCCESS` or `ALARM_RAISED`.
    pub result: String,
    /// Reference ids of the due alarms, in time order.
    pub alarms: Vec<String>,
    /// The deadlines `u` of those alarms.
    pub alarm_deadlines: Vec<Timestamp>,
    /// Megazord ids of the session's events.
    pub event_ids: Vec<u64>,
}

/// How many alarms were posted per `referenceId`, for the alarms of `robots`.
pub fn alarm_post_counts_of(
    server: &MegazordServer,
    robots: &[RobotId],
) -> BTreeMap<String, usize> {
    let alarm_event = RuleInput::default().alarm_event;
    let mut counts = BTreeMap::new();
    for event in server.incoming_events() {
        if event.event_name == alarm_event && robots.contains(&event.robot_id) {
            *counts
                .entry(event.reference_id.clone().unwrap_or_default())
                .or_insert(0) += 1;
        }
    }
    counts
}

/// A throw-away MariaDB database, dropped with the value.
pub struct ThrowAwayDatabase {
    /// Its URL, with the database name.
    pub url: String,
    name: String,
}

impl ThrowAwayDatabase {
    /// Creates an empty database with a unique name.
    pub async fn create(purpose: &str) -> ThrowAwayDatabase {
        let name = unique_name(&format!("azi3_e2e_{purpose}"));
        let base = mysql_base_url();
        let mut admin = sqlx::MySqlConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("MariaDB at {base} does not answer ({e}); run scripts/services.sh")
            });
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        ThrowAwayDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for ThrowAwayDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime: drop the database from a thread of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(drop_database(&name));
        })
        .join();
    }
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

/// The last log lines of a service, for failure messages.
pub fn tail(service: &Service) -> String {
    let logs = service.logs();
    let from = logs.len().saturating_sub(40);
    logs[from..].join("\n")
}

/// A small deterministic generator (xorshift64*), so a failing run can be repeated.
pub struct Dice(u64);

impl Dice {
    /// Seeded.
    pub fn new(seed: u64) -> Dice {
        Dice(seed.max(1))
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let span = u64::try_from(hi - lo).expect("lo is below hi");
        lo + i64::try_from(x % span).expect("below hi - lo, an i64")
    }
}

/// Sensor event instants for one session: one a few minutes before S (outside it), then
/// steps of a sixth of the gap up to 1.6 gaps (some windows are met, some alarm), and one
/// shortly after E.
pub fn sensor_times(session: &Session, gap_minutes: i64, dice: &mut Dice) -> Vec<Timestamp> {
    let mut out = vec![session.start - SignedDuration::from_mins(7)];
    let mut t = session.start;
    loop {
        // Seconds: a sixth of the gap to 1.6 gaps.
        t += SignedDuration::from_secs(dice.range(gap_minutes * 10, gap_minutes * 96));
        if t >= session.end {
            break;
        }
        out.push(t);
    }
    out.push(session.end + SignedDuration::from_mins(3));
    out
}

/// A robot's events over the run: every session of the run in `[from, until]`.
pub fn plan_events(rig: &Rig, until: Timestamp, seed: u64) -> Vec<(Timestamp, RobotId)> {
    let mut dice = Dice::new(seed);
    let mut out = Vec::new();
    for (rule, session) in rig.sessions(until) {
        if session.end < rig.plan.clock_start {
            continue;
        }
        let gap = i64::from(rule.gap.minutes());
        for t in sensor_times(&session, gap, &mut dice) {
            if t > rig.plan.clock_start {
                out.push((t, rule.robot_id));
            }
        }
    }
    out.sort();
    out
}

/// A metric's histogram buckets `(le, cumulative count)` from Prometheus text.
pub fn histogram(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut out: Vec<(f64, u64)> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            // The exporter writes a bucket's count as a whole number.
            Some((le, count.trim().parse::<u64>().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The median of the observations between two snapshots of one histogram, interpolated within
/// its bucket as Prometheus' `histogram_quantile` does; with the count.
pub fn median_between(before: &[(f64, u64)], after: &[(f64, u64)]) -> (f64, u64) {
    let earlier = |le: f64| before.iter().find(|(b, _)| *b == le).map_or(0, |(_, c)| *c);
    let diff: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, c)| (*le, c - earlier(*le)))
        .collect();
    let total = diff.last().map_or(0, |(_, c)| *c);
    let rank = count_f64(total) / 2.0;
    let mut lower = (0.0, 0u64);
    for &(le, count) in &diff {
        if count_f64(count) >= rank {
            if le.is_infinite() {
                return (lower.0, total);
            }
            let within = count_f64(count - lower.1);
            let fraction = if within == 0.0 {
                1.0
            } else {
                (rank - count_f64(lower.1)) / within
            };
            return (lower.0 + (le - lower.0) * fraction, total);
        }
        lower = (le, count);
    }
    (f64::NAN, total)
}

/// `GET /metrics` as text.
pub async fn metrics_text(service: &Service) -> String {
    reqwest::get(format!("{}/metrics", service.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A counter's value from Prometheus text (summed over every label set matching `labels`).
pub fn counter(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter(|line| line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        // Not `sum`, which gives -0 for no line.
        .fold(0.0, |total, value| total + value)
}
