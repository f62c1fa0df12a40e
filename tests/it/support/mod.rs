//! Shared test support: stand-ins for the services this one talks to, and what every group of
//! tests needs to share one process.

use std::sync::atomic::{AtomicU32, Ordering};

use jiff::Timestamp;

pub mod app;
pub mod browser;
pub mod exclusive;
pub mod live;
pub mod megazord;
pub mod service;
pub mod tcp_proxy;

/// The MariaDB server the tests use, without a database name.
pub fn mysql_base_url() -> String {
    std::env::var("AZI3_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://azi3:azi3@127.0.0.1:3306".to_string())
}

/// A name that no other test of this process, nor of another test process, uses:
/// `<prefix>_<pid>_<n>_<millis>`, with `n` counting the names this process made. The process
/// id comes right after the prefix, so that a later run can tell whether the process that
/// made a name is gone.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        Timestamp::now().as_millisecond() % 1_000_000
    )
}
