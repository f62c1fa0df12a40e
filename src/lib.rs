//! azi3-status-jobs: watches care-robot residents for missing toilet activity.
//!
//! - [`domain`]: the pure monitoring core (rule, session, window, alarms).
//! - [`replay`]: evaluates a rule over historical events.
//! - [`queue`]: reading status-queue messages.
//! - [`store`]: the durable state in MySQL/MariaDB or SQLite.
//! - [`config`]: the configuration file and environment.
//! - [`megazord`]: the Megazord event service client.
//! - [`runtime`]: the live service's tasks (scheduler, closer, dispatcher, janitor, intake).
//! - [`http`]: ingest, operations endpoints and the sessions view.
//! - [`clock`]: service time, real or simulated.
//! - [`startup`]: `serve`, wiring everything from the configuration.
//! - [`telemetry`]: logs and metrics.
//! - [`redact`]: URLs and secrets as they may be printed.
//! - [`cli`]: the command line.

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod megazord;
pub mod queue;
pub mod redact;
pub mod replay;
pub mod runtime;
pub mod startup;
pub mod store;
pub mod telemetry;
