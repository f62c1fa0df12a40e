//! The store on both backends (a SQLite file and a MariaDB database per test): every
//! transition, batched and group-committed work, concurrency, faults and cancellation, the
//! seed, start-up, and the limits on dead letters.

mod bulk;
mod cancel;
mod close_claims;
mod concurrency;
mod dead_letters;
mod faults;
mod group_commit;
mod poller_takeover;
mod seed;
mod session_starts;
mod startup;
mod support;
mod transitions;
