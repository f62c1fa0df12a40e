//! The bridge from the SQS consumer to the intake.

use super::context::Context;
use super::messages::MessageOutcome;
use crate::queue::{Disposition, MessageHandler, ReceivedMessage};

/// Hands every queue message to [`Context::take_message`].
pub struct SqsHandler {
    ctx: Context,
}

impl SqsHandler {
    /// A handler over `ctx`.
    pub fn new(ctx: Context) -> Self {
        SqsHandler { ctx }
    }
}

impl MessageHandler for SqsHandler {
    async fn handle(&self, message: ReceivedMessage) -> Disposition {
        match self
            .ctx
            .take_message(&message.body, message.call_ref.as_deref())
            .await
        {
            // A status message is not Megazord's API answering: messages may still flow from
            // its fan-out (or a backlog) while its HTTP routes are down, and a session failing
            // then fails with everyone's, so it waits rather than end as FAILED (see the closer).
            Ok(MessageOutcome::Taken(_)) => Disposition::Done,
            Ok(MessageOutcome::Rejected(rejection)) => Disposition::DeadLetter {
                reason: rejection.to_string(),
            },
            Err(e) => {
                tracing::warn!(messageId = %message.message_id, error = %e,
                    "message not handled; it will be delivered again");
                Disposition::Retry
            }
        }
    }
}
