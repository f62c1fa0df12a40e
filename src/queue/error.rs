//! Why the status queue cannot be consumed.

use crate::redact::redact_url;

/// Why the queue cannot be consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// A setting is out of range.
    #[error("queue.{key} = {value}: {reason}")]
    InvalidSetting {
        /// The field of `[queue]`.
        key: &'static str,
        /// The value found.
        value: String,
        /// What it must be.
        reason: String,
    },
    /// Neither an address nor a full queue URL is configured.
    #[error(
        "no status queue configured: set queue.status_queue_address (STATUS_QUEUE_ADDRESS) or queue.consumer_queue_url"
    )]
    NotConfigured,
    /// The queue does not exist.
    #[error(
        "status queue {} does not exist: create the SQS queue `{name}` (Megazord sends this service's events to <status queue address>-<queue suffix>), or set queue.consumer_queue_url to an existing queue",
        redact_url(.url)
    )]
    QueueMissing {
        /// The URL asked for.
        url: String,
        /// The queue name to create: the last segment of the URL.
        name: String,
    },
    /// SQS could not be reached or refused the call.
    #[error("status queue {}: {operation} failed: {message}", redact_url(.url))]
    Sqs {
        /// The URL of the queue.
        url: String,
        /// The SQS action.
        operation: &'static str,
        /// The error with its causes.
        message: String,
    },
}
