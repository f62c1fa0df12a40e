//! The status-queue consumer against a real SQS-compatible server (moto, started by
//! `scripts/services.sh`; `AZI3_TEST_SQS_ENDPOINT` points elsewhere). Every test uses its own
//! queue, a 1 s long poll and a 2 s visibility timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use azi3_status_jobs::queue::{
    CALL_REF_ATTRIBUTE, Disposition, MessageHandler, QueueError, ReceivedMessage, SqsConsumer,
    SqsSettings,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::exclusive::{Shared, shared};

/// Long enough for anything here to happen on a loaded machine; reaching it fails the test.
const PATIENCE: Duration = Duration::from_secs(20);

fn endpoint() -> String {
    std::env::var("AZI3_TEST_SQS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4566".to_string())
}

/// A client with fixed test credentials, so nothing consults the AWS environment.
fn client_for(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::v2026_01_12())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// A fresh queue on the test server and consumer settings for it.
struct TestQueue {
    client: Client,
    url: String,
    name: String,
    _turn: Shared,
}

impl TestQueue {
    async fn new(purpose: &str) -> TestQueue {
        Self::named(format!("{purpose}-{}", uuid::Uuid::now_v7().simple())).await
    }

    async fn named(name: String) -> TestQueue {
        let turn = shared();
        let client = client_for(&endpoint());
        let url = client
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a queue on {} (is moto running? scripts/services.sh starts it): {}",
                    endpoint(),
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })
            .queue_url
            .expect("CreateQueue returns the URL");
        TestQueue {
            client,
            url,
            name,
            _turn: turn,
        }
    }

    fn settings(&self, max_in_flight: usize) -> SqsSettings {
        SqsSettings {
            consumer_queue_url: Some(self.url.clone()),
            endpoint_url: Some(endpoint()),
            region: Some("us-east-1".into()),
            wait_time_seconds: 1,
            max_messages: 10,
            max_in_flight,
            visibility_timeout_seconds: 2,
            ..SqsSettings::default()
        }
    }

    async fn consumer(&self, max_in_flight: usize) -> SqsConsumer {
        SqsConsumer::with_client(self.client.clone(), &self.settings(max_in_flight))
            .await
            .expect("the queue exists")
    }

    async fn send(&self, body: &str, call_ref: Option<&str>) -> String {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        if let Some(call_ref) = call_ref {
            send = send.message_attributes(
                CALL_REF_ATTRIBUTE,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(call_ref)
                    .build()
                    .unwrap(),
            );
        }
        send.send().await.unwrap().message_id.unwrap()
    }

    /// Messages still on the queue, visible or not.
    async fn remaining(&self) -> usize {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|name| {
            attributes
                .get(name)
                .map_or(0, |n| n.parse::<usize>().unwrap())
        })
        .sum()
    }

    async fn wait_until_empty(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.remaining().await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} still holds {} messages",
                self.name,
                self.remaining().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The consumer running in the background, stopped by [`Running::stop`].
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

fn start<H: MessageHandler>(consumer: SqsConsumer, handler: Arc<H>) -> Running {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer.run(handler, shutdown.clone()));
    Running { shutdown, task }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the consumer stops after shutdown")
            .expect("the consumer does not panic");
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records every delivery and answers with a fixed disposition.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<ReceivedMessage>>,
}

impl Recorder {
    fn seen(&self) -> Vec<ReceivedMessage> {
        self.seen.lock().unwrap().clone()
    }
}

impl MessageHandler for Recorder {
    async fn handle(&self, message: ReceivedMessage) -> Disposition {
        self.seen.lock().unwrap().push(message);
        Disposition::Done
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_message_is_handled_once_and_deleted() {
    let queue = TestQueue::new("done").await;
    let with_ref = queue.send(r#"{"n":1}"#, Some("call-ref-1")).await;
    let without_ref = queue.send(r#"{"n":2}"#, None).await;
    let handler = Arc::new(Recorder::default());
    let running = start(queue.consumer(10).await, Arc::clone(&handler));

    wait_for("both messages", || handler.seen().len() == 2).await;
    queue.wait_until_empty().await;
    running.stop().await;

    let seen: HashMap<String, ReceivedMessage> = handler
        .seen()
        .into_iter()
        .map(|m| (m.message_id.clone(), m))
        .collect();
    assert_eq!(seen.len(), 2, "each message handled once: {seen:?}");
    assert_eq!(seen[&with_ref].body, r#"{"n":1}"#);
    assert_eq!(seen[&with_ref].call_ref.as_deref(), Some("call-ref-1"));
    assert_eq!(seen[&with_ref].receive_count, 1);
    assert_eq!(seen[&without_ref].body, r#"{"n":2}"#);
    assert_eq!(seen[&without_ref].call_ref, None);
}

/// Asks for the message again twice, then takes it.
#[derive(Default)]
struct RetriesTwice {
    seen: Mutex<Vec<ReceivedMessage>>,
}

impl MessageHandler for RetriesTwice {
    async fn handle(&self, message: ReceivedMessage) -> Disposition {
        let mut seen = self.seen.lock().unwrap();
        seen.push(message);
        if seen.len() < 3 {
            Disposition::Retry
        } else {
            Disposition::Done
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_comes_back_until_it_is_done() {
    let queue = TestQueue::new("retry").await;
    let id = queue.send("again", None).await;
    let handler = Arc::new(RetriesTwice::default());
    let running = start(queue.consumer(10).await, Arc::clone(&handler));

    wait_for("the third delivery", || {
        handler.seen.lock().unwrap().len() == 3
    })
    .await;
    queue.wait_until_empty().await;
    running.stop().await;

    let seen = handler.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|m| m.message_id == id && m.body == "again"));
    let counts: Vec<u32> = seen.iter().map(|m| m.receive_count).collect();
    assert_eq!(counts, [1, 2, 3]);
}

/// Keeps unusable messages as dead letters, as the real handler does in its database.
#[derive(Default)]
struct DeadLetterStore {
    stored: Mutex<Vec<(String, String, String)>>,
}

impl MessageHandler for DeadLetterStore {
    async fn handle(&self, message: ReceivedMessage) -> Disposition {
        let reason = "body: not JSON".to_string();
        self.stored
            .lock()
            .unwrap()
            .push((message.message_id, message.body, reason.clone()));
        Disposition::DeadLetter { reason }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_deleted_once_the_handler_stored_it() {
    let queue = TestQueue::new("dead-letter").await;
    let id = queue.send("not json", None).await;
    let handler = Arc::new(DeadLetterStore::default());
    let running = start(queue.consumer(10).await, Arc::clone(&handler));

    wait_for("the dead letter", || {
        !handler.stored.lock().unwrap().is_empty()
    })
    .await;
    queue.wait_until_empty().await;
    running.stop().await;

    assert_eq!(
        *handler.stored.lock().unwrap(),
        [(id, "not json".to_string(), "body: not JSON".to_string())]
    );
}

/// Takes far longer than the visibility timeout.
#[derive(Default)]
struct Slow {
    calls: AtomicUsize,
    finished: AtomicBool,
}

impl MessageHandler for Slow {
    async fn handle(&self, _message: ReceivedMessage) -> Disposition {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(7)).await;
        self.finished.store(true, Ordering::SeqCst);
        Disposition::Done
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_message_stays_invisible_and_is_handled_exactly_once() {
    let queue = TestQueue::new("slow").await;
    queue.send("slow", None).await;
    let handler = Arc::new(Slow::default());
    // 3 s rather than the usual 2 s: each extension then has a 1.5 s margin, which a loaded
    // machine's scheduling delays do not eat.
    let settings = SqsSettings {
        visibility_timeout_seconds: 3,
        ..queue.settings(10)
    };
    let consumer = SqsConsumer::with_client(queue.client.clone(), &settings)
        .await
        .expect("the queue exists");
    let running = start(consumer, Arc::clone(&handler));

    wait_for("the handler to start", || {
        handler.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    // Another consumer polling meanwhile never gets the message, although the handler outlasts
    // the 3 s visibility timeout twice over.
    while !handler.finished.load(Ordering::SeqCst) {
        let other = queue
            .client
            .receive_message()
            .queue_url(&queue.url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        assert!(
            other.messages.unwrap_or_default().is_empty(),
            "the message became visible while its handler was working"
        );
    }
    queue.wait_until_empty().await;
    running.stop().await;

    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
}

/// Panics on the first delivery, takes the second.
#[derive(Default)]
struct PanicsOnce {
    deliveries: Mutex<Vec<u32>>,
}

impl MessageHandler for PanicsOnce {
    async fn handle(&self, message: ReceivedMessage) -> Disposition {
        let first = {
            let mut deliveries = self.deliveries.lock().unwrap();
            deliveries.push(message.receive_count);
            deliveries.len() == 1
        };
        if first {
            panic!("handler bug (expected by the test)");
        }
        Disposition::Done
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_handler_panicked_comes_back() {
    let queue = TestQueue::new("panic").await;
    queue.send("fragile", None).await;
    let handler = Arc::new(PanicsOnce::default());
    let running = start(queue.consumer(10).await, Arc::clone(&handler));

    wait_for("the second delivery", || {
        handler.deliveries.lock().unwrap().len() == 2
    })
    .await;
    queue.wait_until_empty().await;
    running.stop().await;

    assert_eq!(*handler.deliveries.lock().unwrap(), [1, 2]);
}

/// Counts how many deliveries are handled at the same time.
#[derive(Default)]
struct ConcurrencyProbe {
    now: AtomicUsize,
    most: AtomicUsize,
    ids: Mutex<Vec<String>>,
}

impl MessageHandler for ConcurrencyProbe {
    async fn handle(&self, message: ReceivedMessage) -> Disposition {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.ids.lock().unwrap().push(message.message_id);
        Disposition::Done
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_messages_than_max_in_flight_are_handled_at_once() {
    let queue = TestQueue::new("bounded").await;
    let mut sent = Vec::new();
    for n in 0..12 {
        sent.push(queue.send(&format!("{n}"), None).await);
    }
    let handler = Arc::new(ConcurrencyProbe::default());
    let running = start(queue.consumer(3).await, Arc::clone(&handler));

    wait_for("all twelve", || handler.ids.lock().unwrap().len() == 12).await;
    queue.wait_until_empty().await;
    running.stop().await;

    let most = handler.most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} handled at once with max_in_flight = 3");
    assert!(most >= 2, "messages were handled one by one");
    let mut handled = handler.ids.lock().unwrap().clone();
    handled.sort();
    sent.sort();
    assert_eq!(handled, sent, "every message handled exactly once");
}

/// Signals when it starts, then takes a while.
#[derive(Default)]
struct Lingering {
    started: Notify,
    finished: AtomicBool,
}

impl MessageHandler for Lingering {
    async fn handle(&self, _message: ReceivedMessage) -> Disposition {
        self.started.notify_one();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.finished.store(true, Ordering::SeqCst);
        Disposition::Done
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_messages_in_flight() {
    let queue = TestQueue::new("shutdown").await;
    queue.send("in flight", None).await;
    let handler = Arc::new(Lingering::default());
    let running = start(queue.consumer(10).await, Arc::clone(&handler));

    tokio::time::timeout(PATIENCE, handler.started.notified())
        .await
        .expect("the handler starts");
    running.stop().await;

    assert!(
        handler.finished.load(Ordering::SeqCst),
        "run returned before the handler finished"
    );
    assert_eq!(
        queue.remaining().await,
        0,
        "the finished message was deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_errors_do_not_stop_the_consumer() {
    capture_logs();
    let queue = TestQueue::new("outage").await;
    let handler = Arc::new(Recorder::default());
    let running = start(queue.consumer(10).await, Arc::clone(&handler));

    // The queue disappears until a receive failed and the consumer retried it (every
    // receive fails), then comes back under its name.
    queue
        .client
        .delete_queue()
        .queue_url(&queue.url)
        .send()
        .await
        .unwrap();
    wait_for("two failed receives in a row", || {
        failed_receives(&queue.url) >= 2
    })
    .await;
    queue
        .client
        .create_queue()
        .queue_name(&queue.name)
        .send()
        .await
        .unwrap();
    let id = queue.send("after the outage", None).await;

    wait_for("the message sent after the outage", || {
        handler.seen().iter().any(|m| m.message_id == id)
    })
    .await;
    queue.wait_until_empty().await;
    running.stop().await;
    let failed = failed_receives(&queue.url);
    assert!(failed >= 2, "{failed} failed receives logged");
}

/// Log lines of the queue consumer, of every test in this process, as JSON.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects the queue consumer's logs from now on. The subscriber is the process's one, so it
/// takes only the consumer's events, not those of the other tests' stores and services.
fn capture_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("azi3_status_jobs::queue=info")
            .with_writer(|| LogWriter)
            .init();
    });
}

/// How many times the consumer logged that receiving from `queue_url` failed and that it
/// will try again.
fn failed_receives(queue_url: &str) -> usize {
    capture_logs();
    let logs = LOGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    String::from_utf8_lossy(&logs)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| {
            entry["message"] == "receiving from the status queue failed"
                && entry["queueUrl"] == queue_url
                && entry["retryInMs"].is_u64()
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_is_an_error_naming_it() {
    let name = format!("never-created-{}", uuid::Uuid::now_v7().simple());
    let url = format!("{}/123456789012/{name}", endpoint());
    let settings = SqsSettings {
        consumer_queue_url: Some(url.clone()),
        ..SqsSettings::default()
    };

    let error = SqsConsumer::with_client(client_for(&endpoint()), &settings)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        QueueError::QueueMissing {
            url: url.clone(),
            name: name.clone()
        }
    );
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(
        message.contains(&format!("create the SQS queue `{name}`")),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_and_the_suffix_name_the_queue_consumed() {
    let address_name = format!("status-queue-{}", uuid::Uuid::now_v7().simple());
    let queue = TestQueue::named(format!("{address_name}-azi-3-status-jobs")).await;
    let address = queue.url.strip_suffix("-azi-3-status-jobs").unwrap();
    let settings = SqsSettings {
        status_queue_address: Some(address.to_string()),
        consumer_queue_url: None,
        ..queue.settings(1)
    };

    let consumer = SqsConsumer::with_client(queue.client.clone(), &settings)
        .await
        .unwrap();

    assert_eq!(consumer.queue_url(), queue.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_an_error_naming_the_queue() {
    // Port 9 (discard) has no listener here.
    let url = "http://127.0.0.1:9/123456789012/status-queue-azi-3-status-jobs";
    let settings = SqsSettings {
        consumer_queue_url: Some(url.into()),
        ..SqsSettings::default()
    };

    let error = SqsConsumer::with_client(client_for("http://127.0.0.1:9"), &settings)
        .await
        .unwrap_err();

    match &error {
        QueueError::Sqs {
            url: named,
            operation,
            message,
        } => {
            assert_eq!((named.as_str(), *operation), (url, "GetQueueAttributes"));
            assert!(message.contains("onnect"), "the cause is named: {message}");
        }
        other => panic!("expected an SQS error, got {other:?}"),
    }
}
