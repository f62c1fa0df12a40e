//! The live service's moving parts, wired together: scheduler (starts sessions), closer
//! (closes windows on time), dispatcher (posts alarms), janitor (housekeeping), watchdog
//! (notices when any of them has gone quiet), and the intake
//! the queue consumer and the HTTP ingest feed.
//!
//! Every task runs until the shared cancellation token fires; [`Tasks::shutdown`] then waits
//! for them to finish what they are doing, so that nothing is left half-done (each transition
//! is one database transaction anyway).

mod closer;
mod consumer;
mod context;
mod dispatcher;
mod error;
mod handoff;
mod intake;
mod janitor;
mod messages;
mod retries;
mod scheduler;
pub mod setup_check;
mod together;
pub mod watchdog;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use consumer::SqsHandler;
pub use context::{Context, RuntimeSettings};
pub use error::RuntimeError;
pub use intake::{IntakeOutcome, WatchedEvent};
pub use janitor::pass as housekeeping_pass;
pub use messages::{MessageOutcome, MissingEvent, Rejection, TakeError};

/// The running background tasks.
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Tasks {
    /// Starts the scheduler, closer, dispatcher and janitor on `ctx`.
    pub fn start(ctx: &Context, shutdown: CancellationToken) -> Tasks {
        let tracker = TaskTracker::new();
        tracker.spawn(scheduler::run(ctx.clone(), shutdown.clone()));
        tracker.spawn(closer::run(ctx.clone(), shutdown.clone()));
        tracker.spawn(dispatcher::run(ctx.clone(), shutdown.clone()));
        tracker.spawn(janitor::run(ctx.clone(), shutdown.clone()));
        tracker.spawn(watchdog::run(ctx.clone(), shutdown.clone()));
        Tasks { tracker, shutdown }
    }

    /// Adds another task that stops on the same token (the queue consumer, the HTTP server).
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// The token every task watches.
    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Asks every task to stop and waits until they have.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
