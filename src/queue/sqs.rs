//! The consumer of the SQS status queue Megazord fans watched events out to.
//!
//! Delivery is at-least-once and unordered, so the consumer's job is narrow: long-poll the queue,
//! hand each message to a [`MessageHandler`] with at most `max_in_flight` handled at once, keep a
//! message invisible while its handler works, and delete it only once the handler says it is
//! finished with it ([`Disposition::Done`], or [`Disposition::DeadLetter`] after the handler
//! stored the dead letter). A message the handler wants again ([`Disposition::Retry`]), or whose
//! handler panicked, stays on the queue and comes back: nothing is ever dropped here.
//!
//! Megazord sends a subscription's events to `${STATUS_QUEUE_ADDRESS}-${queue}` (contracts §2.1);
//! queues are created at deploy time, so [`SqsConsumer::connect`] refuses a queue that does not
//! exist.
//!
//! Metrics: `queue_messages_total{outcome}` (`done`, `retry`, `dead_letter`),
//! `queue_receive_duration_seconds`, `queue_errors_total{operation}` (`receive`, `delete`,
//! `change_visibility`, `handle`). Every message is handled in a span carrying `messageId` and
//! `callRef`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::error::QueueError;
use super::settings::{SQS_MAX_BATCH, SqsSettings, non_empty};
use crate::numeric::millis;
use crate::redact::redact_url;
use crate::telemetry::names;

/// The message attribute carrying the sender's call reference (contracts §2.2, §6 item 25).
pub const CALL_REF_ATTRIBUTE: &str = "callRef";

/// How long a call other than a receive may take before it counts as failed. The SDK sets no
/// operation timeout of its own, and a hung delete would hold a concurrency slot forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than its wait time a long poll may take before it counts as failed.
const RECEIVE_GRACE: Duration = Duration::from_secs(30);

/// One message as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The body, unparsed (see [`crate::queue::parse_status_message`]).
    pub body: String,
    /// The SQS message id: stable across redeliveries.
    pub message_id: String,
    /// How many times SQS has handed this message out, this time included (1 on first delivery).
    pub receive_count: u32,
    /// The `callRef` message attribute, when the sender set one.
    pub call_ref: Option<String>,
}

impl ReceivedMessage {
    fn from_sqs(message: &Message) -> Self {
        let receive_count = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let call_ref = message
            .message_attributes()
            .and_then(|a| a.get(CALL_REF_ATTRIBUTE))
            .and_then(|value| value.string_value())
            .map(str::to_string);
        ReceivedMessage {
            body: message.body().unwrap_or_default().to_string(),
            message_id: message.message_id().unwrap_or_default().to_string(),
            receive_count,
            call_ref,
        }
    }
}

/// What became of a message once its handler returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled and durably recorded (or irrelevant): delete it.
    Done,
    /// Not handled for a passing reason: leave it for redelivery after a short backoff.
    Retry,
    /// Unusable; the handler has durably stored it as a dead letter: delete it.
    DeadLetter {
        /// Why it is unusable (logged).
        reason: String,
    },
}

impl Disposition {
    /// The `outcome` label of `queue_messages_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Disposition::Done => "done",
            Disposition::Retry => "retry",
            Disposition::DeadLetter { .. } => "dead_letter",
        }
    }
}

/// What is done with each message.
///
/// Implementations may be written as `async fn handle(&self, message: ReceivedMessage) ->
/// Disposition`, as long as the future is `Send`. The same message can arrive more than once
/// (also concurrently, from another instance), so handling must be idempotent.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one message; the consumer deletes it, or not, according to the answer.
    fn handle(&self, message: ReceivedMessage) -> impl Future<Output = Disposition> + Send;
}

/// A connected consumer of one queue. Cloning is cheap and shares the client (for a readiness
/// probe next to [`SqsConsumer::run`]).
#[derive(Debug, Clone)]
pub struct SqsConsumer {
    client: Client,
    queue_url: String,
    settings: SqsSettings,
}

impl SqsConsumer {
    /// Builds a client from the settings (endpoint and region when given, otherwise the AWS
    /// environment; credentials from the usual AWS chain) and checks that the queue exists.
    pub async fn connect(settings: &SqsSettings) -> Result<SqsConsumer, QueueError> {
        settings.validate()?;
        let client = client_from_environment(settings).await;
        Self::with_client(client, settings).await
    }

    /// Like [`SqsConsumer::connect`], with a client built by the caller (own credentials, say).
    pub async fn with_client(
        client: Client,
        settings: &SqsSettings,
    ) -> Result<SqsConsumer, QueueError> {
        settings.validate()?;
        let queue_url = settings
            .consumer_queue_url()
            .ok_or(QueueError::NotConfigured)?;
        let consumer = SqsConsumer {
            client,
            queue_url,
            settings: settings.clone(),
        };
        consumer.check_queue().await?;
        Ok(consumer)
    }

    /// The URL of the consumed queue.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Whether the queue exists and answers (GetQueueAttributes).
    pub async fn check_queue(&self) -> Result<(), QueueError> {
        let call = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send();
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => {
                let missing = error
                    .as_service_error()
                    .is_some_and(|e| e.is_queue_does_not_exist())
                    || matches!(
                        error.code(),
                        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")
                    );
                if missing {
                    let name = self
                        .queue_url
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    Err(QueueError::QueueMissing {
                        url: self.queue_url.clone(),
                        name,
                    })
                } else {
                    Err(self.sqs_error("GetQueueAttributes", &error))
                }
            }
            Err(_) => Err(QueueError::Sqs {
                url: self.queue_url.clone(),
                operation: "GetQueueAttributes",
                message: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Consumes the queue until `shutdown` is cancelled, then stops receiving, waits for the
    /// messages in flight to be handled and settled, and returns.
    ///
    /// Errors never end the loop: a failed receive is logged, counted and tried again with
    /// exponential backoff; a failed delete leaves the message to come back.
    pub async fn run<H: MessageHandler>(self, handler: Arc<H>, shutdown: CancellationToken) {
        let consumer = Arc::new(self);
        let slots = Arc::new(Semaphore::new(consumer.settings.max_in_flight));
        let mut in_flight = JoinSet::new();
        let mut backoff = receive_backoff();
        tracing::info!(queueUrl = %redact_url(&consumer.queue_url), "consuming the status queue");
        loop {
            while let Some(finished) = in_flight.try_join_next() {
                log_task_failure(finished);
            }
            // Receive only as many messages as can be handled at once: a message's visibility
            // timeout runs from the moment it is received, so none may wait for a free slot.
            let first = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            };
            let mut batch = vec![first];
            while batch.len() < consumer.settings.max_messages as usize {
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => batch.push(slot),
                    Err(_) => break,
                }
            }
            let started = Instant::now();
            // Abandoning a long poll on shutdown may abandon messages SQS was returning; they
            // come back after the visibility timeout.
            let received = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                received = consumer.receive(batch.len()) => received,
            };
            metrics::histogram!(names::QUEUE_RECEIVE_DURATION)
                .record(started.elapsed().as_secs_f64());
            match received {
                Ok(messages) => {
                    backoff = receive_backoff();
                    let mut received = Vec::with_capacity(messages.len());
                    for message in messages {
                        let slot = match batch.pop() {
                            Some(slot) => slot,
                            // SQS never returns more than asked for; should it, wait for room.
                            None => slots
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("the semaphore is never closed"),
                        };
                        received.push((message, slot));
                    }
                    if !received.is_empty() {
                        in_flight.spawn(
                            Arc::clone(&consumer).process_received(Arc::clone(&handler), received),
                        );
                    }
                }
                Err(error) => {
                    drop(batch);
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    metrics::counter!(names::QUEUE_ERRORS, "operation" => "receive").increment(1);
                    tracing::warn!(
                        queueUrl = %redact_url(&consumer.queue_url),
                        error = %error,
                        retryInMs = millis(delay),
                        "receiving from the status queue failed"
                    );
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::info!(
            inFlight = in_flight.len(),
            "stopped receiving from the status queue; finishing the messages in flight"
        );
        while let Some(finished) = in_flight.join_next().await {
            log_task_failure(finished);
        }
        tracing::info!("status queue consumer stopped");
    }

    async fn receive(&self, max: usize) -> Result<Vec<Message>, String> {
        let call = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(sqs_int(max))
            .wait_time_seconds(sqs_int(self.settings.wait_time_seconds))
            .visibility_timeout(sqs_int(self.settings.visibility_timeout_seconds))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names(CALL_REF_ATTRIBUTE)
            .send();
        let limit = Duration::from_secs(self.settings.wait_time_seconds.into()) + RECEIVE_GRACE;
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(output)) => Ok(output.messages.unwrap_or_default()),
            Ok(Err(error)) => Err(describe(&error)),
            Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
        }
    }

    /// Handles the messages of one receive call together, each in its own task (so that the
    /// events among them share the store's group commits), then deletes together those that
    /// are finished with. Each message holds one of the `max_in_flight` slots until settled.
    async fn process_received<H: MessageHandler>(
        self: Arc<Self>,
        handler: Arc<H>,
        messages: Vec<(Message, OwnedSemaphorePermit)>,
    ) {
        let mut handling = JoinSet::new();
        for (message, slot) in messages {
            handling.spawn(Arc::clone(&self).process(Arc::clone(&handler), message, slot));
        }
        let mut finished: Vec<Finished> = Vec::new();
        while let Some(done) = handling.join_next().await {
            match done {
                Ok(Some(settled)) => finished.push(settled),
                Ok(None) => {}
                Err(error) => log_task_failure(Err(error)),
            }
        }
        // The slots go back together, once the deletes are done: released one by one, the
        // receive loop would wake at the first and ask SQS for fewer messages than it could.
        let mut slots = finished.iter_mut().filter_map(|f| f.slot.take());
        let all = slots.next().map(|mut first| {
            slots.for_each(|slot| first.merge(slot));
            first
        });
        self.delete_finished(finished).await;
        drop(all);
    }

    /// Handles one message; returns it when it is to be deleted (a message to be retried has
    /// its visibility shortened here, one whose handler failed is left to come back).
    async fn process<H: MessageHandler>(
        self: Arc<Self>,
        handler: Arc<H>,
        message: Message,
        slot: OwnedSemaphorePermit,
    ) -> Option<Finished> {
        let received = ReceivedMessage::from_sqs(&message);
        let span = tracing::info_span!(
            "queue_message",
            messageId = %received.message_id,
            callRef = received.call_ref.as_deref().unwrap_or(""),
            receiveCount = received.receive_count,
        );
        let Some(receipt) = message.receipt_handle else {
            // Cannot happen with SQS; without a receipt the message can only come back.
            metrics::counter!(names::QUEUE_ERRORS, "operation" => "receive").increment(1);
            tracing::error!(parent: &span, "received a message without a receipt handle");
            return None;
        };
        let settle_span = span.clone();
        async move {
            let receive_count = received.receive_count;
            // The handler runs in its own task so that a panic is caught here, with the
            // message id at hand, rather than taking the visibility extension down with it.
            let handling = AbortOnDropHandle::new(tokio::spawn(
                async move { handler.handle(received).await }.in_current_span(),
            ));
            let disposition = tokio::select! {
                disposition = handling => disposition,
                never = self.keep_invisible(&receipt) => match never {},
            };
            let disposition = match disposition {
                Ok(disposition) => disposition,
                Err(error) => {
                    metrics::counter!(names::QUEUE_ERRORS, "operation" => "handle").increment(1);
                    tracing::error!(
                        error = %error,
                        "the message handler failed; the message comes back after the visibility timeout"
                    );
                    return None;
                }
            };
            metrics::counter!(names::QUEUE_MESSAGES, "outcome" => disposition.outcome())
                .increment(1);
            match disposition {
                Disposition::Done => {
                    tracing::debug!("message handled");
                }
                Disposition::DeadLetter { reason } => {
                    tracing::warn!(reason = %reason, "message stored as a dead letter");
                }
                Disposition::Retry => {
                    let delay = self.redelivery_delay(receive_count);
                    tracing::info!(retryInSeconds = delay, "message left for redelivery");
                    if let Err(error) = self.change_visibility(&receipt, delay).await {
                        // It still comes back, after the full visibility timeout.
                        metrics::counter!(names::QUEUE_ERRORS, "operation" => "change_visibility")
                            .increment(1);
                        tracing::warn!(error = %error, "could not shorten the message's visibility");
                    }
                    return None;
                }
            }
            Some(Finished {
                receipt,
                span: settle_span,
                slot: Some(slot),
            })
        }
        .instrument(span)
        .await
    }

    /// Deletes the finished messages of one receive in one call; a message the call did not
    /// delete is deleted on its own (with retries), and if that fails too it comes back.
    async fn delete_finished(&self, finished: Vec<Finished>) {
        if finished.len() == 1 {
            let only = &finished[0];
            self.delete(&only.receipt)
                .instrument(only.span.clone())
                .await;
            return;
        }
        for chunk in finished.chunks(SQS_MAX_BATCH as usize) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&f.receipt)
                        .build()
                        .ok()
                })
                .collect();
            let call = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send();
            let undeleted: Vec<&Finished> = match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(output)) => output
                    .failed()
                    .iter()
                    .filter_map(|failure| failure.id().parse::<usize>().ok())
                    .filter_map(|i| chunk.get(i))
                    .collect(),
                Ok(Err(error)) => {
                    tracing::warn!(error = %describe(&error), "deleting messages together failed; deleting each");
                    chunk.iter().collect()
                }
                Err(_) => {
                    tracing::warn!("deleting messages together got no answer; deleting each");
                    chunk.iter().collect()
                }
            };
            for f in undeleted {
                self.delete(&f.receipt).instrument(f.span.clone()).await;
            }
        }
    }

    /// Extends the message's visibility every half visibility timeout; never returns, and is
    /// dropped when the handler finishes.
    async fn keep_invisible(&self, receipt: &str) -> Infallible {
        let timeout = self.settings.visibility_timeout_seconds;
        let period = Duration::from_millis(u64::from(timeout) * 500);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.change_visibility(receipt, timeout).await {
                Ok(()) => tracing::debug!(visibilitySeconds = timeout, "visibility extended"),
                Err(error) => {
                    metrics::counter!(names::QUEUE_ERRORS, "operation" => "change_visibility")
                        .increment(1);
                    tracing::warn!(
                        error = %error,
                        "could not extend the message's visibility; another consumer may receive it"
                    );
                }
            }
        }
    }

    /// Deletes a settled message, trying a few times; if that fails the message comes back and
    /// is handled again, which handlers tolerate.
    async fn delete(&self, receipt: &str) {
        let attempt = || async {
            let call = self
                .client
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .send();
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(describe(&error)),
                Err(_) => Err(format!("no answer within {} s", CALL_TIMEOUT.as_secs())),
            }
        };
        let result = attempt
            .retry(settle_backoff())
            .notify(|error, delay| {
                tracing::warn!(error = %error, retryInMs = millis(delay), "deleting the message failed");
            })
            .await;
        if let Err(error) = result {
            metrics::counter!(names::QUEUE_ERRORS, "operation" => "delete").increment(1);
            tracing::error!(
                error = %error,
                "could not delete the settled message; it will be delivered again"
            );
        }
    }

    async fn change_visibility(&self, receipt: &str, seconds: u32) -> Result<(), String> {
        let call = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(sqs_int(seconds))
            .send();
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(describe(&error)),
            Err(_) => Err(format!("no answer within {} s", CALL_TIMEOUT.as_secs())),
        }
    }

    /// 1 s after the first delivery, doubling with every further one, never more than the
    /// visibility timeout the message would have had anyway.
    fn redelivery_delay(&self, receive_count: u32) -> u32 {
        let doublings = receive_count.saturating_sub(1).min(16);
        (1u32 << doublings).min(self.settings.visibility_timeout_seconds)
    }

    fn sqs_error<E>(&self, operation: &'static str, error: &SdkError<E>) -> QueueError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        QueueError::Sqs {
            url: self.queue_url.clone(),
            operation,
            message: describe(error),
        }
    }
}

/// An SQS client configured from the settings and the AWS environment, with the behaviour
/// version pinned so that an SDK upgrade does not change retries or timeouts unnoticed.
pub async fn client_from_environment(settings: &SqsSettings) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::v2026_01_12());
    if let Some(region) = non_empty(&settings.region) {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(endpoint) = non_empty(&settings.endpoint_url) {
        loader = loader.endpoint_url(endpoint);
    }
    Client::new(&loader.load().await)
}

/// Between failed receives: 200 ms doubling to 30 s, with jitter so that instances restarted
/// together do not poll in step; never gives up.
fn receive_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// A count or a number of seconds as SQS's API takes it, an `i32`. The settings keep each far
/// below `i32::MAX` (10 messages, 20 s of waiting, 12 h of visibility); a larger one saturates,
/// for SQS to refuse, rather than wrapping to a negative number.
fn sqs_int(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}

/// Between attempts to delete a settled message: three more tries within about a second.
fn settle_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter()
        .with_max_times(3)
}

/// An SDK error in one line: the service's code and message, or the chain of causes of a
/// failure to get an answer at all (the SDK's own rendering adds a debug dump of the response).
fn describe<E>(error: &SdkError<E>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    if let Some(service) = error.as_service_error() {
        return format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("no message")
        );
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// A message its handler is finished with, to be deleted; it keeps its slot until then.
struct Finished {
    receipt: String,
    span: tracing::Span,
    /// Held until the message is deleted; taken by [`SqsConsumer::process_received`] to give
    /// back with the others of its receive.
    slot: Option<OwnedSemaphorePermit>,
}

fn log_task_failure(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        metrics::counter!(names::QUEUE_ERRORS, "operation" => "handle").increment(1);
        tracing::error!(error = %error, "a status queue message task failed");
    }
}
