//! Every integration test of the service, in one test binary: one build and one link of the
//! database drivers and the AWS SDK instead of one per test file.
//!
//! The tests run as threads of one process, in parallel. What is process-wide is shared: the
//! metrics recorder (`telemetry::init_metrics`), the tracing subscriber that [`queue`] installs
//! (it takes the queue consumer's events only), and the counters that name databases. Every
//! test therefore names what it creates uniquely ([`support::unique_name`]) and asserts only on
//! metrics of its own (its own service process, or series that other tests can only add to).
//! A test that measures wall time has the machine to itself ([`support::exclusive`]).
//!
//! Run one group with a filter on the module path, e.g. `cargo test --test it store::` or
//! `cargo test --test it e2e::live::`.
//!
//! Most groups need `scripts/services.sh` (MariaDB on `AZI3_TEST_MYSQL_URL`, moto on
//! `AZI3_TEST_SQS_ENDPOINT`; Chromium and chromedriver for [`replay::browser`]).

mod dashboard;
mod e2e;
mod megazord;
mod property;
mod queue;
mod replay;
mod semantics;
mod service;
mod store;
mod support;
