//! The service binary (and, for some HTTP tests, the service built in this process): its
//! start-up and configuration, its HTTP API, its watchdog, and how it keeps alarming on time
//! under load and when parts of it fail.

mod closer_read_ahead;
mod config_cli;
mod http;
mod never_silent;
mod scale;
mod session_history;
mod watchdog;
