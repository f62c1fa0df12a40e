//! Where events come from: the SQS status queue and the HTTP ingest share one message reader.

mod error;
mod message;
mod settings;
mod sqs;

pub use error::QueueError;
pub use message::{MessageError, SourceEvent, StatusMessage, parse_status_message};
pub use settings::{DEFAULT_QUEUE_SUFFIX, SqsSettings};
pub use sqs::{
    CALL_REF_ATTRIBUTE, Disposition, MessageHandler, ReceivedMessage, SqsConsumer,
    client_from_environment,
};
