//! What can make a runtime task's step fail, keeping the cause.

use crate::megazord::MegazordError;
use crate::store::StoreError;

/// A failed step of the scheduler, the closer, the dispatcher or the janitor.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A Megazord call failed (after the client's own retries).
    #[error("megazord: {0}")]
    Megazord(#[from] MegazordError),
    /// The database failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A session that was just looked up is no longer there.
    #[error("status check {0} vanished")]
    SessionVanished(crate::store::StatusCheckId),
    /// A running session's robot has no rule any more.
    #[error("robot {0} has no rule")]
    NoRule(crate::domain::RobotId),
    /// The task doing the step panicked or was cancelled.
    #[error("the task {0}")]
    Panicked(&'static str),
    /// A task this step hands work to has stopped (the service is shutting down).
    #[error("{0} has stopped")]
    Stopped(&'static str),
    /// The alarm webhook (used when there is no Megazord) failed.
    #[error("webhook {url}: {source}")]
    Webhook {
        /// The webhook's address, with any credentials in it redacted.
        url: String,
        /// What failed, without the address.
        source: reqwest::Error,
    },
}

impl RuntimeError {
    /// Whether trying again cannot change the answer: Megazord refused the call for good (a
    /// robot it does not know, a route it does not have), as opposed to being unreachable,
    /// slow, refusing this service's token or failing for everyone.
    pub fn is_definite(&self) -> bool {
        match self {
            RuntimeError::Megazord(e) => e.is_refusal_of_the_call(),
            RuntimeError::NoRule(_) | RuntimeError::SessionVanished(_) => true,
            RuntimeError::Store(_)
            | RuntimeError::Panicked(_)
            | RuntimeError::Stopped(_)
            | RuntimeError::Webhook { .. } => false,
        }
    }

    /// A short, stable name for the kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeError::Megazord(e) if e.is_transient() => "megazord_unavailable",
            RuntimeError::Megazord(_) => "megazord_rejected",
            RuntimeError::Store(e) => e.kind(),
            RuntimeError::SessionVanished(_) => "session_vanished",
            RuntimeError::NoRule(_) => "no_rule",
            RuntimeError::Panicked(_) => "panic",
            RuntimeError::Stopped(_) => "stopped",
            RuntimeError::Webhook { .. } => "webhook_failed",
        }
    }
}
