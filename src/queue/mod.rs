//! Where events come from: the SQS status queue and the HTTP ingest share one message reader.

mod message;

pub use message::{MessageError, SourceEvent, StatusMessage, parse_status_message};
