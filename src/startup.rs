//! `serve`: builds the live service from its configuration and runs it until SIGTERM/SIGINT.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SimulatedClock};
use crate::config::{ClockConfig, Config, ConfigError};
use crate::http::{self, HttpState, ReadinessProbe};
use crate::megazord::MegazordClient;
use crate::queue::SqsConsumer;
use crate::redact::redact_url;
use crate::runtime::{Context, RuntimeSettings, SqsHandler, Tasks};
use crate::store::StoreError;
use crate::store::{StartupError, apply_rules, prepare};
use crate::telemetry;

/// The metadata key under which a simulated clock's anchor is kept.
const CLOCK_ANCHOR_KEY: &str = "clock.anchor";

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Start-up failed (configuration, database).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue cannot be used.
    #[error("queue: {0}")]
    Queue(String),
    /// Megazord cannot be used.
    #[error("megazord: {0}")]
    Megazord(String),
    /// The HTTP listener could not be opened.
    #[error("http: cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the service as `config` says until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    Application::build(config)
        .await?
        .run_until_stopped(wait_for_signal())
        .await
}

/// The live service, built from its configuration and listening, not yet running: what
/// `serve` runs, and what the tests start in their own process on port 0.
///
/// ```no_run
/// # async fn example(config: azi3_status_jobs::config::Config) -> Result<(), azi3_status_jobs::startup::ServeError> {
/// use azi3_status_jobs::startup::Application;
/// let app = Application::build(config).await?;
/// println!("listening on port {}", app.port());
/// app.run_until_stopped(std::future::pending()).await
/// # }
/// ```
pub struct Application {
    ctx: Context,
    store: crate::store::Store,
    consumer: Option<SqsConsumer>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    token: Option<Arc<str>>,
    listener: tokio::net::TcpListener,
    address: SocketAddr,
}

impl Application {
    /// Checks the configuration, connects to the queue and the database, applies the
    /// configured rules and opens the HTTP listener: everything that can refuse the start,
    /// before any background task runs.
    pub async fn build(config: Config) -> Result<Application, ServeError> {
        let metrics = telemetry::init_metrics();
        let address = listen_address(&config)?;
        // Everything that can refuse the start is asked before anything is written to the
        // database: a start refused later would leave sessions and poller locks behind.
        let consumer = match &config.queue {
            Some(queue) => Some(
                SqsConsumer::connect(queue)
                    .await
                    .map_err(|e| ServeError::Queue(e.to_string()))?,
            ),
            None => None,
        };
        // The rules are applied once the clock is known: a rule is stamped in service time (a
        // rule new at this start watches from now on, semantics §6).
        let rules = config.rules()?;
        let prepared = prepare(&config.database, &config.status_check).await?;
        let store = prepared.store.clone();
        store.set_group_commit(crate::store::GroupCommitSettings {
            max_batch: config.service.ingest_batch_max.max(1),
            mysql_committers: config.service.ingest_committers.max(1),
        });
        let clock = clock(&config.clock, &store).await?;
        apply_rules(&store, &rules, clock.now()).await?;
        let megazord = match &config.megazord {
            Some(settings) => Some(
                MegazordClient::new(settings.clone())
                    .map_err(|e| ServeError::Megazord(e.to_string()))?,
            ),
            None => None,
        };
        let settings = RuntimeSettings {
            owner: format!("azi-3-status-jobs:{}", config.service.instance_id()),
            grace: SignedDuration::from_secs(i64::from(config.service.grace_seconds)),
            refs: prepared.refs,
            queue_suffix: config.queue.as_ref().map(|q| q.queue_suffix.clone()),
            alarm_webhook: config.service.alarm_webhook.clone(),
            alarm_lease: alarm_lease(config.megazord.as_ref(), clock.speed()),
            abandoned_after: SignedDuration::from_hours(24),
            close_concurrency: config.service.close_concurrency.max(1),
            dispatch_concurrency: config.service.dispatch_concurrency.max(1),
            prepare_concurrency: config.service.prepare_concurrency.max(1),
            failing_session_limit: SignedDuration::from_secs(i64::from(
                config.service.failing_session_limit_seconds,
            )),
            ready_overdue_bound: std::time::Duration::from_secs(u64::from(
                config.service.ready_overdue_bound_seconds,
            )),
            dead_letters: crate::store::DeadLetterRetention {
                max_age: SignedDuration::from_hours(
                    24 * i64::from(config.service.dead_letter_max_age_days),
                ),
                max_count: config.service.dead_letter_max_count,
            },
        };
        tracing::info!(
            database = ?store.dialect(),
            megazord = config.megazord.as_ref().map(|m| redact_url(&m.base_url)),
            queue = config
                .queue
                .as_ref()
                .and_then(|q| q.consumer_queue_url())
                .map(|url| redact_url(&url)),
            owner = %settings.owner,
            clock = ?clock,
            "starting"
        );
        if is_embedded_default(&config) && store.rules().await?.is_empty() {
            let rule = demonstration_rule();
            store.set_rule(&rule, clock.now()).await?;
            tracing::warn!(
                robotId = rule.robot_id.get(),
                "embedded default with no rules: created a demonstration rule for robot 1 \
                 (UTC, all day, gap 120 min); change it with `rules set` or remove it with \
                 `rules disable --robot-id 1`"
            );
        }
        let ctx = Context::new(store.clone(), clock, settings, megazord);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ServeError::Listen { address, source })?;
        let address = listener.local_addr().unwrap_or(address);
        Ok(Application {
            ctx,
            store,
            consumer,
            metrics,
            token: config.http_token().map(Arc::from),
            listener,
            address,
        })
    }

    /// The port the service listens on (the one the system chose, for port 0).
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address the service listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs every background task and the HTTP server until `shutdown` completes, then stops
    /// gracefully: in-flight work finishes, the database is closed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let Application {
            ctx,
            store,
            consumer,
            metrics,
            token,
            listener,
            address,
        } = self;
        crate::runtime::watchdog::run_setup_check(&ctx).await;
        end_earlier_claims(&ctx).await;
        let stop = CancellationToken::new();
        let tasks = Tasks::start(&ctx, stop.clone());
        let mut probes: Vec<(&'static str, ReadinessProbe)> = Vec::new();
        if let Some(consumer) = consumer {
            let probe_consumer = consumer.clone();
            let probe: ReadinessProbe = Arc::new(move || {
                let consumer = probe_consumer.clone();
                Box::pin(async move {
                    consumer.check_queue().await.map_err(|e| {
                        tracing::warn!(error = %e, "readiness: the queue does not answer");
                        "the queue does not answer (see the log)".to_string()
                    })
                })
            });
            probes.push(("queue", probe));
            let handler = Arc::new(SqsHandler::new(ctx.clone()));
            tasks.spawn(consumer.run(handler, stop.clone()));
        }
        let state = HttpState {
            ctx: ctx.clone(),
            metrics,
            token,
            probes: probes.into(),
        };
        tracing::info!(address = %address, "listening on http://{address}");
        let http_stop = stop.clone();
        tasks.spawn(async move {
            let server = axum::serve(listener, http::router(state))
                .with_graceful_shutdown(async move { http_stop.cancelled().await });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight work");
        tasks.shutdown().await;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long a claimed alarm stays with its claimer: at least a minute, and at least twice
/// the longest its lookup and post can take (in service time, which a simulated clock runs
/// faster than the wall clock the requests take). A shorter lease lets another instance claim
/// an alarm whose post is still under way, miss it at Megazord and post it a second time.
fn alarm_lease(megazord: Option<&crate::megazord::MegazordSettings>, speed: f64) -> SignedDuration {
    let minimum = SignedDuration::from_secs(60);
    let Some(m) = megazord else {
        return minimum;
    };
    // The lookup retries (with a backoff of up to twice `max_backoff_ms`, jitter included);
    // the post is one request.
    let attempts = u64::from(m.max_attempts.max(1));
    let wall_ms = attempts * m.request_timeout_ms
        + (attempts - 1) * 2 * m.max_backoff_ms
        + m.request_timeout_ms;
    let service = SignedDuration::from_secs_f64(
        2.0 * std::time::Duration::from_millis(wall_ms).as_secs_f64() * speed,
    );
    service.max(minimum)
}

/// Whether `config` is the embedded default: the SQLite file, no Megazord, no queue, no rules.
fn is_embedded_default(config: &Config) -> bool {
    config.database.url == crate::config::DEFAULT_DATABASE_URL
        && config.megazord.is_none()
        && config.queue.is_none()
        && config.rules.is_empty()
}

/// Robot 1, watched all day in UTC: so that a first `serve` and a `curl` show a session.
fn demonstration_rule() -> crate::domain::Rule {
    crate::domain::RuleInput {
        robot_id: crate::domain::RobotId::new(1),
        timezone: "UTC".into(),
        start: "00:00".into(),
        end: "00:00".into(),
        ..crate::domain::RuleInput::default()
    }
    .validate()
    .expect("the demonstration rule is valid")
}

/// The HTTP address; refuses to listen beyond loopback without a token.
fn listen_address(config: &Config) -> Result<SocketAddr, ConfigError> {
    let host: IpAddr = config.http.host.parse().map_err(|_| {
        ConfigError(format!(
            "http.host = {:?}: not an IP address",
            config.http.host
        ))
    })?;
    if !host.is_loopback() && config.http.token.is_none() {
        return Err(ConfigError(format!(
            "http.host = {:?}: listening beyond loopback needs http.token (AZI3_HTTP__TOKEN)",
            config.http.host
        )));
    }
    Ok(SocketAddr::new(host, config.http.port))
}

/// The service clock: the system clock, or a simulated one whose anchor is kept in the
/// database so that a restart continues the same simulated day.
async fn clock(config: &ClockConfig, store: &crate::store::Store) -> Result<Clock, ServeError> {
    let Some(start) = config.start else {
        // The service runs on the system clock now: forget an anchor left by a simulated run,
        // so that `rules` commands stamp rules in the time the service keeps.
        if store
            .meta(CLOCK_ANCHOR_KEY)
            .await?
            .is_some_and(|t| !t.is_empty())
        {
            store
                .set_meta(CLOCK_ANCHOR_KEY, "", Timestamp::now())
                .await?;
        }
        return Ok(Clock::System);
    };
    let speed = config.speed;
    if let Some(text) = store.meta(CLOCK_ANCHOR_KEY).await?
        && let Ok(anchor) = serde_json::from_str::<StoredAnchor>(&text)
        && anchor.start == start
        && anchor.clock.speed == speed
    {
        return Ok(Clock::Simulated(anchor.clock));
    }
    let anchor = StoredAnchor {
        start,
        clock: SimulatedClock {
            real_anchor: Timestamp::now(),
            service_anchor: start,
            speed,
        },
    };
    let text = serde_json::to_string(&anchor).expect("an anchor serializes");
    store
        .set_meta(CLOCK_ANCHOR_KEY, &text, Timestamp::now())
        .await?;
    Ok(Clock::Simulated(anchor.clock))
}

/// The time the service keeps on `store`: its simulated clock when the last `serve` on it ran
/// one, else the system clock. Commands that change rules stamp them with it.
pub async fn service_clock(store: &crate::store::Store) -> Result<Clock, StoreError> {
    Ok(store
        .meta(CLOCK_ANCHOR_KEY)
        .await?
        .and_then(|text| serde_json::from_str::<StoredAnchor>(&text).ok())
        .map_or(Clock::System, |anchor| Clock::Simulated(anchor.clock)))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAnchor {
    start: Timestamp,
    clock: SimulatedClock,
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Makes the alarms an earlier process under this `instance_id` claimed claimable at once: killed
/// after a close committed and before its alarm was posted (or marked), it would otherwise
/// leave that alarm for the length of its lease (minutes). Runs before any task of this process
/// claims; each such alarm is looked up at Megazord before it is posted again. When the store
/// does not answer, the lease still frees them.
async fn end_earlier_claims(ctx: &Context) {
    let owner = &ctx.settings().owner;
    let ended = tokio::time::timeout(
        crate::runtime::watchdog::STORE_TIMEOUT,
        ctx.store().end_earlier_claims(owner, ctx.now()),
    )
    .await;
    match ended {
        Ok(Ok(0)) => {}
        Ok(Ok(alarms)) => tracing::info!(
            alarms,
            "alarms claimed by an earlier run of this instance are claimable again; each is looked up at Megazord before it is posted"
        ),
        Ok(Err(e)) => tracing::warn!(error = %e, kind = e.kind(),
            "the claims of an earlier run of this instance were not ended; their lease frees them"),
        Err(_) => tracing::warn!(
            "the claims of an earlier run of this instance were not ended in time; their lease frees them"
        ),
    }
}
