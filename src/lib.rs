//! azi3-status-jobs: watches care-robot residents for missing toilet activity.
//!
//! - [`domain`]: the pure monitoring core (rule, session, window, alarms).
//! - [`replay`]: evaluates a rule over historical events.
//! - [`queue`]: reading status-queue messages.
//! - [`store`]: the durable state in MySQL/MariaDB or SQLite.
//! - [`config`]: the configuration file and environment.
//! - [`megazord`]: the Megazord event service client.
//! - [`cli`]: the command line.

pub mod cli;
pub mod config;
pub mod domain;
pub mod megazord;
pub mod queue;
pub mod replay;
pub mod store;
