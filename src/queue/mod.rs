//! Where events come from: the SQS status queue and the HTTP ingest share one message reader.

mod message;
mod sqs;

pub use message::{MessageError, SourceEvent, StatusMessage, parse_status_message};
pub use sqs::{
    CALL_REF_ATTRIBUTE, DEFAULT_QUEUE_SUFFIX, Disposition, MessageHandler, QueueError,
    ReceivedMessage, SqsConsumer, SqsSettings, client_from_environment,
};
