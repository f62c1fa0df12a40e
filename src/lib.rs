//! azi3-status-jobs: watches care-robot residents for missing toilet activity.
//!
//! Between two daily local times, every `TOILET_ACTIVITY` event restarts a window of G minutes;
//! a window that passes without one raises `NO_TOILET_ACTIVITY_ALARM` exactly once. The same
//! core runs live (`serve`) and over past events (`replay`).
//!
//! # Layout
//!
//! In the order data flows through the live service:
//!
//! 1. **Events arrive.** Sensara's sensors reach Megazord, which fans each watched event out to
//!    the SQS status queue of this service's subscription. [`queue::SqsConsumer`] long-polls that
//!    queue and [`queue::parse_status_message`] reads each message tolerantly; the HTTP ingest in
//!    [`http`] ([`http::router`]) takes events and message bodies posted directly.
//! 2. **Intake.** [`runtime`] finds the session an event belongs to, starting it when it is due
//!    ([`runtime::WatchedEvent`], [`runtime::SqsHandler`]), and hands it to the store, where
//!    events arriving together share one transaction ([`store::GroupCommitSettings`]).
//! 3. **Decision.** [`domain`] decides, without I/O or a clock of its own, what an event or a
//!    deadline does to a session: [`domain::Session`] resolves a local date into its span,
//!    [`domain::SessionState`] is the window state machine, [`domain::AlarmIdentity`] names an
//!    alarm and its reference id.
//! 4. **Transaction.** [`store::Store`] runs each transition as one transaction on MySQL/MariaDB
//!    or SQLite ([`store::Dialect`]): the service's own `status_job_*` rows, the shared
//!    `status_check*` rows robot scripts read, and an alarm that fell due into the outbox
//!    ([`store::OutboxAlarm`]).
//! 5. **On time.** The scheduler in [`runtime`] starts sessions at S, subscribes at Megazord and
//!    reads the history since S; the closer reads each window's history once its deadline plus
//!    the grace has passed, then closes it through the store.
//! 6. **Alarms out.** The dispatcher in [`runtime`] claims outbox alarms and posts them to
//!    Megazord with [`megazord::MegazordClient`], looking an alarm up by its reference id first
//!    when an earlier claim may have posted it.
//! 7. **Around it.** [`runtime::watchdog`] reports when any of this goes quiet, on `/ready` and
//!    `/metrics` ([`telemetry`]); the janitor ([`runtime::housekeeping_pass`]) keeps poller locks
//!    fresh and deletes subscriptions; [`runtime::setup_check`] checks what Megazord must know.
//!
//! Beside the live path: [`replay`] evaluates a rule over a file of past events with
//! [`domain::evaluate`]; [`startup::serve`] wires the service from [`config::Config`];
//! [`clock`] is service time, real or simulated; [`redact`] keeps secrets out of what is printed;
//! [`json_input`] reads the JSON that comes from outside, naming a refused field by its path;
//! [`numeric`] converts between number types where `From` does not; [`cli`] is the command line.
//!
//! # Citations in the documentation
//!
//! Comments and docs cite the documents in `docs/` by short forms:
//!
//! - "semantics §N": section N of `docs/semantics.md`, the monitoring rule;
//! - "contracts §N" (and "contracts §6 item N"): `docs/contracts.md`, what the service relies
//!   on from Megazord, the status queue and the shared tables;
//! - "design §N": `docs/design.md`, why the service is built as it is, with its measurements.

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod json_input;
pub mod megazord;
pub mod numeric;
pub mod queue;
pub mod redact;
pub mod replay;
pub mod runtime;
pub mod startup;
pub mod store;
pub mod telemetry;
