//! Logs and metrics: structured `tracing` logs (JSON when standard error is not a terminal)
//! and the Prometheus registry behind `GET /metrics`.

use std::io::IsTerminal;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Metric names, in one place so dashboards and code agree.
pub mod names {
    /// Watched events taken in, by `outcome` (observed, late, outside, ahead, duplicate, …).
    pub const EVENTS: &str = "events_total";
    /// Windows closed, by `alarm` (true/false).
    pub const WINDOWS_CLOSED: &str = "windows_closed_total";
    /// Alarms handed to Megazord (or the embedded sink), by `outcome`.
    pub const ALARMS: &str = "alarms_total";
    /// From a window's deadline `u` to its alarm being posted, in service seconds.
    pub const DEADLINE_TO_ALARM: &str = "deadline_to_alarm_seconds";
    /// From a window's deadline `u` to its alarm being posted, in wall-clock seconds.
    pub const DEADLINE_TO_ALARM_WALL: &str = "deadline_to_alarm_wall_seconds";
    /// Sessions running now.
    pub const ACTIVE_SESSIONS: &str = "active_sessions";
    /// Queue messages kept as dead letters, by `reason`.
    pub const DEAD_LETTERS: &str = "dead_letters_total";
    /// Sessions started, by `outcome` (created, existing).
    pub const SESSIONS_STARTED: &str = "sessions_started_total";
    /// Sessions this instance took over from another that stopped keeping them (their poller
    /// rows not refreshed for two minutes), or that no instance kept.
    pub const SESSIONS_TAKEN_OVER: &str = "sessions_taken_over_total";
    /// Transitions decided on this instance's copy of a session row, by `outcome`: current
    /// (committed), stale (run again from a locked read: another transaction had moved the row
    /// on, or the event was taken already).
    pub const SESSION_COPIES: &str = "store_session_copies_total";
    /// Transactions the group commit stage committed (or gave up on), by `outcome` (together:
    /// the batch committed as one; alone: it failed and each piece ran on its own; failed: the
    /// database could not be reached).
    pub const GROUP_COMMITS: &str = "store_group_commits_total";
    /// Pieces (events taken in, mostly) the group commit stage handled; divided by
    /// [`GROUP_COMMITS`], the mean batch size.
    pub const GROUP_COMMIT_PIECES: &str = "store_group_commit_pieces_total";
    /// Store operations given up on (after their retries), by `kind` (see `StoreError::kind`).
    pub const STORE_ERRORS: &str = "store_errors_total";
    /// Running windows past their deadline plus the grace and not yet closed.
    pub const OVERDUE_WINDOWS: &str = "overdue_windows";
    /// Service seconds since the deadline plus grace of the oldest overdue window (0: none).
    pub const OLDEST_OVERDUE_WINDOW: &str = "oldest_overdue_window_seconds";
    /// Alarms in the outbox not yet posted.
    pub const UNSENT_ALARMS: &str = "unsent_alarms";
    /// Service seconds since the window end of the oldest alarm not yet posted (0: none).
    pub const OLDEST_UNSENT_ALARM: &str = "oldest_unsent_alarm_seconds";
    /// Wall-clock seconds since the closer last finished a pass without a store failure.
    pub const CLOSER_PASS_AGE: &str = "closer_last_pass_age_seconds";
    /// Wall-clock seconds since the dispatcher last finished a pass without a store failure.
    pub const DISPATCHER_PASS_AGE: &str = "dispatcher_last_pass_age_seconds";
    /// 1 when the store ran the watchdog's last transaction, 0 when it could not.
    pub const STORE_UP: &str = "store_up";
    /// Sessions whose windows could not be closed for now (a Megazord call or a transition
    /// failing for that robot), retried each on its own back-off.
    pub const RETRYING_SESSIONS: &str = "retrying_sessions";
    /// Sessions ended as FAILED because the service could not monitor them.
    pub const SESSIONS_FAILED: &str = "sessions_failed_total";
    /// Status-queue messages handled, by `outcome` (done, retry, dead_letter).
    pub const QUEUE_MESSAGES: &str = "queue_messages_total";
    /// Failed calls to the queue, by `operation` (receive, handle, delete, change_visibility).
    pub const QUEUE_ERRORS: &str = "queue_errors_total";
    /// How long one receive call took.
    pub const QUEUE_RECEIVE_DURATION: &str = "queue_receive_duration_seconds";
    /// Calls to Megazord, by `route` and `outcome`.
    pub const MEGAZORD_REQUESTS: &str = "megazord_requests_total";
    /// How long one Megazord call took, by `route`.
    pub const MEGAZORD_REQUEST_DURATION: &str = "megazord_request_duration_seconds";
    /// Queue messages of a subscription not written down (yet), taken by their robot.
    pub const UNRECORDED_SUBSCRIPTION_MESSAGES: &str =
        "queue_unrecorded_subscription_messages_total";
}

/// Modules of the AWS SDK whose debug and trace events print the access key id (the identity
/// used, the signed request): held at `info` whatever `AZI3_LOG` asks for, since a key is
/// never printed.
const CREDENTIAL_LOGGERS: [&str; 3] = [
    "aws_sigv4=info",
    "aws_smithy_runtime::client::orchestrator::auth=info",
    "aws_smithy_runtime::client::orchestrator::endpoints=info",
];

/// Installs the log subscriber: `RUST_LOG`-style filter from `AZI3_LOG` (default `info`),
/// human-readable on a terminal, JSON lines otherwise. Safe to call more than once. A filter
/// that does not parse is refused (naming `AZI3_LOG` and the value) rather than replaced by
/// the default, which would hide the logs its author asked for.
pub fn init_logging() -> Result<(), String> {
    let mut filter = match std::env::var("AZI3_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::builder()
            .parse(&value)
            .map_err(|e| format!("AZI3_LOG = {value:?}: not a log filter ({e})"))?,
        Ok(_) | Err(std::env::VarError::NotPresent) => EnvFilter::new("info"),
        Err(std::env::VarError::NotUnicode(value)) => {
            return Err(format!("AZI3_LOG = {value:?}: not UTF-8"));
        }
    };
    for directive in CREDENTIAL_LOGGERS {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
    Ok(())
}

/// Buckets for latency histograms, in seconds: from 5 ms to 10 minutes.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Installs the global metrics recorder and returns the handle that renders the Prometheus
/// text. Histograms get buckets (not summaries) so they can be aggregated across instances.
/// The recorder is the process's one: a second call (several services started in one test
/// process) returns the same handle, so that every one of them shows the shared metrics.
pub fn init_metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .expect("the bucket list is not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
