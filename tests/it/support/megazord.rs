//! A Megazord Events stand-in: a real HTTP server on 127.0.0.1 that implements the routes of
//! contracts §1 with Megazord's validation and answers, and fans stored events out to the SQS
//! status queue exactly as Megazord's `notify()` does (contracts §2.2).
//!
//! Its state is in memory and can be read and steered from the test through the
//! [`MegazordServer`] handle: faults per route (an error status or a stall, before or after the
//! request took effect) or per robot (every request about it refused), pausing, duplicating and shuffling the fan-out, events posted as
//! Sensara would, and a record of every request with its `Call-Ref`. `createdAt` comes from an
//! injectable clock, so a test can run on simulated time.
//!
//! ```ignore
//! let base = sqs_queue(&sqs_client().await, "status-queue").await;
//! let server = MegazordServer::start(
//!     MegazordOptions::default()
//!         .with_clock(Arc::new(move || simulated.now()))
//!         .with_fan_out(SqsFanOut::local(&base)),
//! )
//! .await;
//! let client = MegazordClient::new(MegazordSettings { base_url: server.base_url(), ..Default::default() });
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::types::MessageAttributeValue;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use azi3_status_jobs::clock::SimulatedClock;
use azi3_status_jobs::domain::RobotId;
use jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// Where the test clock comes from: any function giving "now".
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The SQS endpoint the tests use: `AZI3_TEST_SQS_ENDPOINT`, else a local moto server.
pub fn test_sqs_endpoint() -> String {
    std::env::var("AZI3_TEST_SQS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4566".to_string())
}

/// An SQS client for [`test_sqs_endpoint`], with the region and credentials set in code so
/// nothing reads the environment's AWS settings or probes instance metadata.
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    SqsFanOut::local("unused").client().await
}

/// Creates a queue with a name unique to this test run (`<prefix>-<pid>-<uuid>`) and returns
/// its URL.
pub async fn sqs_queue(client: &aws_sdk_sqs::Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    );
    create_named_queue(client, &name).await
}

/// Creates (or finds) the queue with exactly this name and returns its URL.
pub async fn create_named_queue(client: &aws_sdk_sqs::Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot create SQS queue {name} at {} (is moto running?): {e:?}",
                test_sqs_endpoint()
            )
        })
        .queue_url()
        .expect("create_queue returns the URL")
        .to_string()
}

/// Receives from `queue_url` until `count` messages arrived or `patience` passed (long polls,
/// no sleeps), deleting what it receives. Message attributes are included.
pub async fn receive_messages(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    count: usize,
    patience: Duration,
) -> Vec<aws_sdk_sqs::types::Message> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut received = Vec::new();
    while received.len() < count && tokio::time::Instant::now() < deadline {
        let output = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive_message");
        for message in output.messages.unwrap_or_default() {
            if let Some(handle) = message.receipt_handle() {
                client
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete_message");
            }
            received.push(message);
        }
    }
    received
}

/// Where and how the server sends fan-out messages.
#[derive(Debug, Clone)]
pub struct SqsFanOut {
    /// Megazord's `STATUS_QUEUE_ADDRESS`: a subscription with queue suffix `x` sends to
    /// `${status_queue_base_url}-x`, one without a suffix to this URL itself.
    pub status_queue_base_url: String,
    /// The SQS endpoint.
    pub endpoint_url: String,
    /// The signing region.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl SqsFanOut {
    /// Fan-out to the test SQS endpoint ([`test_sqs_endpoint`]), region `us-east-1`,
    /// credentials `test`/`test`.
    pub fn local(status_queue_base_url: &str) -> Self {
        SqsFanOut {
            status_queue_base_url: status_queue_base_url.to_string(),
            endpoint_url: test_sqs_endpoint(),
            region: "us-east-1".to_string(),
            access_key_id: "test".to_string(),
            secret_access_key: "test".to_string(),
        }
    }

    /// A client for these settings; everything comes from here, nothing from the environment
    /// or instance metadata.
    pub async fn client(&self) -> aws_sdk_sqs::Client {
        let config = aws_config::defaults(BehaviorVersion::v2026_01_12())
            .endpoint_url(&self.endpoint_url)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "megazord-test-server",
            ))
            .load()
            .await;
        aws_sdk_sqs::Client::new(&config)
    }

    /// The queue a subscription's messages go to (contracts §2.1).
    pub fn queue_url(&self, suffix: Option<&str>) -> String {
        match suffix {
            Some(suffix) => format!("{}-{suffix}", self.status_queue_base_url),
            None => self.status_queue_base_url.clone(),
        }
    }
}

/// How `createdAt` is cut to Megazord's `TIMESTAMP(0)` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedAtResolution {
    /// Rounded to the nearest second, half up, as MySQL stores fractional seconds into
    /// `TIMESTAMP(0)`.
    RoundToSecond,
    /// Cut to the second.
    TruncateToSecond,
    /// Kept to the millisecond (not what Megazord does; for tests that want exact instants).
    Millisecond,
}

/// How the server starts.
#[derive(Clone)]
pub struct MegazordOptions {
    /// Known `event_provider.name`s; posting as any other gives 404.
    pub providers: Vec<String>,
    /// Known `event_schema.name`s; any other gives 404.
    pub event_schemas: Vec<String>,
    /// The event counted by [`MegazordServer::alarm_posts`].
    pub alarm_event: String,
    /// Where `createdAt` comes from.
    pub clock: Clock,
    /// How `createdAt` is cut.
    pub created_at_resolution: CreatedAtResolution,
    /// Where fan-out messages go; `None` records them without sending.
    pub fan_out: Option<SqsFanOut>,
    /// How long every request waits before it is handled, as a remote Megazord's round trip
    /// and work would take; zero by default. Changeable later with
    /// [`MegazordServer::set_latency`].
    pub latency: Duration,
}

impl Default for MegazordOptions {
    fn default() -> Self {
        MegazordOptions {
            providers: vec!["Sensara".to_string(), "azi-3-status-jobs".to_string()],
            event_schemas: vec![
                "TOILET_ACTIVITY".to_string(),
                "NO_TOILET_ACTIVITY_ALARM".to_string(),
            ],
            alarm_event: "NO_TOILET_ACTIVITY_ALARM".to_string(),
            clock: Arc::new(Timestamp::now),
            created_at_resolution: CreatedAtResolution::RoundToSecond,
            fan_out: None,
            latency: Duration::ZERO,
        }
    }
}

/// A clock for the stand-in that follows the service's simulated clock, and stands at `start`
/// until the test sets that clock (once the service has said what it is) in the returned cell.
pub fn following_clock(start: Timestamp) -> (Clock, Arc<OnceLock<SimulatedClock>>) {
    let cell: Arc<OnceLock<SimulatedClock>> = Arc::new(OnceLock::new());
    let shared = Arc::clone(&cell);
    let clock: Clock = Arc::new(move || {
        shared
            .get()
            .map_or(start, |sim| sim.service_time_at(Timestamp::now()))
    });
    (clock, cell)
}

impl MegazordOptions {
    /// The same options with another clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same options, sending fan-out messages to SQS.
    pub fn with_fan_out(mut self, fan_out: SqsFanOut) -> Self {
        self.fan_out = Some(fan_out);
        self
    }
}

/// One Megazord route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MegazordRoute {
    /// `POST /internal/v1/events/robots/:robotId/incomings`.
    PostIncoming,
    /// `GET /internal/v1/events/robots/:robotId/incomings`.
    GetIncomings,
    /// `POST /internal/v1/events/robots/:robotId/subscriptions`.
    CreateSubscription,
    /// `DELETE /internal/v1/events/robots/:robotId/subscriptions/:subscriptionId`.
    DeleteSubscription,
    /// `GET …/subscriptions/:subscriptionId/outgoings/:outgoingEventId`.
    GetOutgoing,
}

impl MegazordRoute {
    /// Which route a method and path are, if any.
    pub fn of(method: &Method, path: &str) -> Option<MegazordRoute> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let ["internal", "v1", "events", "robots", _robot, rest @ ..] = segments.as_slice() else {
            return None;
        };
        match (method.as_str(), rest) {
            ("POST", ["incomings"]) => Some(MegazordRoute::PostIncoming),
            ("GET", ["incomings"]) => Some(MegazordRoute::GetIncomings),
            ("POST", ["subscriptions"]) => Some(MegazordRoute::CreateSubscription),
            ("DELETE", ["subscriptions", _]) => Some(MegazordRoute::DeleteSubscription),
            ("GET", ["subscriptions", _, "outgoings", _]) => Some(MegazordRoute::GetOutgoing),
            _ => None,
        }
    }
}

/// What an injected fault does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status without handling the request.
    Status(u16),
    /// Wait this long, then answer 503 without having handled the request; longer than the
    /// client's timeout, it is a timeout.
    Stall(Duration),
    /// Handle the request (store, fan out), then answer this status: it took effect but the
    /// client sees a failure.
    StatusAfterHandling(u16),
    /// Handle the request, then wait this long before answering: it took effect but the
    /// client times out.
    StallAfterHandling(Duration),
}

/// For how long an injected fault applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSpan {
    /// The next this many matching requests.
    Next(u32),
    /// Every matching request while the server clock is before this instant.
    Until(Timestamp),
    /// Every matching request until [`MegazordServer::clear_faults`].
    Always,
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// 1, 2, 3 … in arrival order.
    pub seq: u64,
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The route, when the path is one.
    pub route: Option<MegazordRoute>,
    /// The `Call-Ref` header.
    pub call_ref: Option<String>,
    /// The server clock when it arrived.
    pub received_at: Timestamp,
    /// The fault injected into it, if any.
    pub fault: Option<Fault>,
    /// The status answered; `None` while it runs or when the client went away first.
    pub status: Option<u16>,
}

/// An incoming event as stored (`incoming_event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingEvent {
    /// Auto-incremented id.
    pub id: u64,
    /// The robot.
    pub robot_id: RobotId,
    /// `event_schema.id`.
    pub event_type_id: u64,
    /// `event_schema.name`.
    pub event_name: String,
    /// The level (the schema's, 10, unless posted).
    pub level: i64,
    /// The poster's reference.
    pub reference_id: Option<String>,
    /// `event_provider.id`.
    pub provider_id: u64,
    /// `event_provider.name`.
    pub provider_name: String,
    /// The server clock at storing, cut to the configured resolution.
    pub created_at: Timestamp,
    /// The `Call-Ref` of the request that stored it.
    pub call_ref: String,
}

/// A service subscription as stored (`event_subscription` with its details).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Auto-incremented id.
    pub id: u64,
    /// The robot.
    pub robot_id: RobotId,
    /// The subscribed event names.
    pub event_names: Vec<String>,
    /// The queue suffix.
    pub queue: Option<String>,
    /// `until` as sent (Megazord does not persist it; kept here for tests to inspect).
    pub until: Option<String>,
    /// False once deleted.
    pub is_active: bool,
    /// The server clock at creation.
    pub created_at: Timestamp,
}

/// An outgoing event as stored (`outgoing_event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEvent {
    /// Auto-incremented id.
    pub id: u64,
    /// The incoming event it carries.
    pub source_event_id: u64,
    /// The subscription it was made for.
    pub subscription_id: u64,
    /// The server clock at creation.
    pub created_at: Timestamp,
}

/// What happened to one fan-out message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanOutOutcome {
    /// Waiting to be sent (fan-out paused, or the sender is behind).
    Pending,
    /// Sent; SQS gave this message id.
    Sent(String),
    /// SQS refused; Megazord swallows such errors, the server keeps the reason here.
    Failed(String),
    /// No SQS configured: recorded only.
    NotSent,
}

/// One message Megazord's `notify()` would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutMessage {
    /// The queue it goes to, when SQS is configured.
    pub queue_url: Option<String>,
    /// The JSON body (contracts §2.2).
    pub body: String,
    /// The `callRef` message attribute.
    pub call_ref: String,
    /// The subscription.
    pub subscription_id: u64,
    /// The outgoing event.
    pub outgoing_id: u64,
    /// What happened to it.
    pub outcome: FanOutOutcome,
}

/// Answers for `GET …/incomings` that a real Megazord might give, to test a reader's
/// tolerance: the sort order and duplicates are not documented (contracts §1.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryQuirks {
    /// Newest first instead of by id.
    pub newest_first: bool,
    /// Every event twice.
    pub duplicated: bool,
    /// Compare `created_since` with `>` instead of `>=`.
    pub exclusive_since: bool,
}

/// Faults drawn at random for a share of all requests (see [`MegazordServer::fail_randomly`]).
struct RandomFaults {
    /// Requests failed per million.
    per_million: u64,
    /// xorshift64 state: the same seed fails the same requests in arrival order.
    state: u64,
    /// What a drawn request gets, per route (`None`: every route not listed).
    faults: Vec<(Option<MegazordRoute>, Fault)>,
}

impl RandomFaults {
    fn draw(&mut self, route: Option<MegazordRoute>) -> Option<Fault> {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        if self.state % 1_000_000 >= self.per_million {
            return None;
        }
        self.faults
            .iter()
            .find(|(r, _)| r.is_some() && *r == route)
            .or_else(|| self.faults.iter().find(|(r, _)| r.is_none()))
            .map(|(_, fault)| *fault)
    }
}

struct FaultRule {
    route: Option<MegazordRoute>,
    fault: Fault,
    remaining: Option<u32>,
    until: Option<Timestamp>,
}

#[derive(Default)]
struct Data {
    providers: Vec<String>,
    /// Event schemas by id - 1; a removed one keeps its slot so the others keep their ids.
    schemas: Vec<(String, bool)>,
    incoming: Vec<IncomingEvent>,
    /// Indexes into `incoming` per robot, so that a history read costs what that robot has.
    incoming_by_robot: HashMap<RobotId, Vec<usize>>,
    subscriptions: Vec<Subscription>,
    /// Indexes into `subscriptions` per robot, so that fan-out costs what that robot has.
    subscriptions_by_robot: HashMap<RobotId, Vec<usize>>,
    /// Requests received per route.
    requests_per_route: BTreeMap<MegazordRoute, u64>,
    /// `alarm_event` events stored (a post is counted as received before its latency has
    /// passed, and stored after).
    alarms_stored: u64,
    outgoing: Vec<OutgoingEvent>,
    requests: Vec<RecordedRequest>,
    faults: Vec<FaultRule>,
    random_faults: Option<RandomFaults>,
    /// Robots every request about which is answered with this status, unhandled.
    refused_robots: BTreeMap<RobotId, u16>,
    history_quirks: HistoryQuirks,
    /// Every fan-out message, in creation order.
    fan_out_log: Vec<FanOutMessage>,
    /// Indexes into `fan_out_log` still to send, in sending order.
    fan_out_pending: VecDeque<usize>,
    fan_out_paused: bool,
    /// How many times each message is sent.
    fan_out_copies: u32,
    fan_out_in_flight: bool,
}

struct Shared {
    data: Mutex<Data>,
    clock: Clock,
    resolution: CreatedAtResolution,
    /// Microseconds every request waits before it is handled.
    latency_micros: AtomicU64,
    alarm_event: String,
    fan_out: Option<SqsFanOut>,
    /// Wakes the sender.
    wake_sender: Notify,
    /// Signalled whenever the sender finishes a message or has nothing left to do.
    sender_progress: Notify,
    /// Signalled whenever anything a test may wait for changed: a request arrived or was
    /// answered, an event was stored, a fan-out message was sent.
    changed: Notify,
}

impl Shared {
    fn data(&self) -> MutexGuard<'_, Data> {
        // A panicking test thread must not hide the state from the others.
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn stamp(&self) -> Timestamp {
        let now = self.now();
        let round = |mode| {
            now.round(TimestampRound::new().smallest(Unit::Second).mode(mode))
                .expect("rounding to a second stays in range")
        };
        match self.resolution {
            CreatedAtResolution::RoundToSecond => round(RoundMode::HalfExpand),
            CreatedAtResolution::TruncateToSecond => round(RoundMode::Floor),
            CreatedAtResolution::Millisecond => now
                .round(Unit::Millisecond)
                .expect("rounding to a millisecond stays in range"),
        }
    }

    /// Stores an incoming event and fans it out, as Megazord's create-incoming service does.
    fn store_incoming(
        &self,
        robot_id: RobotId,
        provider_name: &str,
        event_name: &str,
        level: Option<i64>,
        reference_id: Option<String>,
        call_ref: &str,
    ) -> Result<IncomingEvent, (StatusCode, String)> {
        let created_at = self.stamp();
        let mut data = self.data();
        let provider_id = data
            .providers
            .iter()
            .position(|p| p == provider_name)
            .ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("Event provider {provider_name} not found"),
                )
            })? as u64
            + 1;
        let event_type_id = schema_id(&data, event_name)?;
        let event = IncomingEvent {
            id: data.incoming.len() as u64 + 1,
            robot_id,
            event_type_id,
            event_name: event_name.to_string(),
            level: level.unwrap_or(10),
            reference_id,
            provider_id,
            provider_name: provider_name.to_string(),
            created_at,
            call_ref: call_ref.to_string(),
        };
        let index = data.incoming.len();
        if event.event_name == self.alarm_event {
            data.alarms_stored += 1;
        }
        data.incoming.push(event.clone());
        data.incoming_by_robot
            .entry(robot_id)
            .or_default()
            .push(index);
        // Fan-out runs after the write (contracts §1.1): an outgoing event per active
        // subscription of this robot to this event, then one queue message each.
        let matching: Vec<Subscription> = data
            .subscriptions_by_robot
            .get(&robot_id)
            .into_iter()
            .flatten()
            .map(|&i| &data.subscriptions[i])
            .filter(|s| {
                s.is_active
                    && s.robot_id == robot_id
                    && s.event_names.iter().any(|n| n == event_name)
            })
            .cloned()
            .collect();
        for subscription in matching {
            let outgoing = OutgoingEvent {
                id: data.outgoing.len() as u64 + 1,
                source_event_id: event.id,
                subscription_id: subscription.id,
                created_at,
            };
            data.outgoing.push(outgoing.clone());
            let body = json!({
                "from": {"serviceName": "megazord-events"},
                "to": {"robotId": robot_id.to_string()},
                "link": {"link": outgoing_link(robot_id, &outgoing), "rel": ""},
                "payload": outgoing_json(&outgoing, &event),
            });
            let configured = self.fan_out.is_some();
            let index = data.fan_out_log.len();
            data.fan_out_log.push(FanOutMessage {
                queue_url: self
                    .fan_out
                    .as_ref()
                    .map(|f| f.queue_url(subscription.queue.as_deref())),
                body: body.to_string(),
                call_ref: call_ref.to_string(),
                subscription_id: subscription.id,
                outgoing_id: outgoing.id,
                outcome: if configured {
                    FanOutOutcome::Pending
                } else {
                    FanOutOutcome::NotSent
                },
            });
            if configured {
                data.fan_out_pending.push_back(index);
            }
        }
        drop(data);
        self.wake_sender.notify_one();
        self.changed.notify_waiters();
        Ok(event)
    }

    /// The fault for a request to `route` about `robot` now, if one applies; uses it up.
    /// A refused robot comes first.
    fn take_fault(&self, route: Option<MegazordRoute>, robot: Option<RobotId>) -> Option<Fault> {
        let now = self.now();
        let mut data = self.data();
        if let Some(status) = robot.and_then(|r| data.refused_robots.get(&r)) {
            return Some(Fault::Status(*status));
        }
        data.faults
            .retain(|rule| rule.remaining != Some(0) && rule.until.is_none_or(|until| now < until));
        let drawn = data.random_faults.as_mut().and_then(|r| r.draw(route));
        let Some(rule) = data
            .faults
            .iter_mut()
            .find(|rule| rule.route.is_none() || rule.route == route)
        else {
            return drawn;
        };
        if let Some(remaining) = rule.remaining.as_mut() {
            *remaining -= 1;
        }
        Some(rule.fault)
    }
}

fn schema_id(data: &Data, event_name: &str) -> Result<u64, (StatusCode, String)> {
    data.schemas
        .iter()
        .position(|(name, active)| *active && name == event_name)
        .map(|i| i as u64 + 1)
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("Event schema {event_name} not found"),
            )
        })
}

/// JavaScript's `Date.toISOString()`: `2025-11-20T09:30:00.000Z`.
fn iso(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn incoming_json(event: &IncomingEvent) -> Value {
    json!({
        "id": event.id,
        "robotId": event.robot_id,
        "eventTypeId": event.event_type_id,
        "eventName": event.event_name,
        "level": event.level,
        "referenceId": event.reference_id,
        "providerId": event.provider_id,
        "providerName": event.provider_name,
        "createdAt": iso(event.created_at),
        "updatedAt": iso(event.created_at),
    })
}

fn outgoing_json(outgoing: &OutgoingEvent, source: &IncomingEvent) -> Value {
    json!({
        "id": outgoing.id,
        "sourceEventId": outgoing.source_event_id,
        "subscriptionId": outgoing.subscription_id,
        "status": "CREATED",
        "createdAt": iso(outgoing.created_at),
        "updatedAt": iso(outgoing.created_at),
        "sourceEvent": incoming_json(source),
    })
}

fn outgoing_link(robot_id: RobotId, outgoing: &OutgoingEvent) -> String {
    format!(
        "/internal/v1/events/robots/{robot_id}/subscriptions/{}/outgoings/{}",
        outgoing.subscription_id, outgoing.id
    )
}

fn subscription_json(subscription: &Subscription, data: &Data) -> Value {
    // `queue` is hidden in responses (`@Exclude({ toPlainOnly: true })`, contracts §1.6).
    let details: Vec<Value> = subscription
        .event_names
        .iter()
        .map(|name| {
            json!({
                "subscriptionId": subscription.id,
                "eventTypeId": schema_id(data, name).unwrap_or(0),
                "eventName": name,
            })
        })
        .collect();
    json!({
        "id": subscription.id,
        "robotId": subscription.robot_id,
        "subscriptionDetails": details,
        "isActive": subscription.is_active,
        "subscriptionType": 1,
        "createdAt": iso(subscription.created_at),
        "updatedAt": iso(subscription.created_at),
    })
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    answer(
        status,
        json!({"statusCode": status.as_u16(), "message": message}),
    )
}

/// A running Megazord stand-in; stops when dropped.
pub struct MegazordServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<AbortHandle>,
}

impl Drop for MegazordServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl MegazordServer {
    /// Starts the server on 127.0.0.1 at a free port.
    pub async fn start(options: MegazordOptions) -> MegazordServer {
        let shared = Arc::new(Shared {
            data: Mutex::new(Data {
                providers: options.providers,
                schemas: options
                    .event_schemas
                    .into_iter()
                    .map(|name| (name, true))
                    .collect(),
                fan_out_copies: 1,
                ..Data::default()
            }),
            clock: options.clock,
            resolution: options.created_at_resolution,
            latency_micros: AtomicU64::new(micros(options.latency)),
            alarm_event: options.alarm_event,
            fan_out: options.fan_out,
            wake_sender: Notify::new(),
            sender_progress: Notify::new(),
            changed: Notify::new(),
        });
        let robot = "/internal/v1/events/robots/{robot_id}";
        let router = Router::new()
            .route(
                &format!("{robot}/incomings"),
                axum::routing::post(post_incoming).get(get_incomings),
            )
            .route(
                &format!("{robot}/subscriptions"),
                axum::routing::post(create_subscription),
            )
            .route(
                &format!("{robot}/subscriptions/{{subscription_id}}"),
                axum::routing::delete(delete_subscription),
            )
            .route(
                &format!("{robot}/subscriptions/{{subscription_id}}/outgoings/{{outgoing_id}}"),
                axum::routing::get(get_outgoing),
            )
            .fallback(|| async { failure(StatusCode::NOT_FOUND, "Cannot find route") })
            .layer(middleware::from_fn_with_state(
                shared.clone(),
                record_and_fault,
            ))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        let mut tasks = vec![server.abort_handle()];
        if let Some(fan_out) = shared.fan_out.clone() {
            let client = fan_out.client().await;
            let sender = tokio::spawn(send_fan_out(shared.clone(), client));
            tasks.push(sender.abort_handle());
        }
        MegazordServer {
            shared,
            addr,
            tasks,
        }
    }

    /// `http://127.0.0.1:<port>`, to use as Megazord's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes every later request wait `latency` before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_micros
            .store(micros(latency), Ordering::Relaxed);
    }

    /// How many requests to `route` arrived so far (cheaper than [`Self::requests_to`]).
    pub fn request_count(&self, route: MegazordRoute) -> u64 {
        self.shared
            .data()
            .requests_per_route
            .get(&route)
            .copied()
            .unwrap_or(0)
    }

    /// How many `alarm_event` events are stored: posts answered, where
    /// [`MegazordServer::request_count`] also counts those still waiting out the latency.
    pub fn alarms_stored(&self) -> u64 {
        self.shared.data().alarms_stored
    }

    /// Makes `name` a known event schema.
    pub fn add_event_schema(&self, name: &str) {
        let mut data = self.shared.data();
        match data.schemas.iter_mut().find(|(known, _)| known == name) {
            Some((_, active)) => *active = true,
            None => data.schemas.push((name.to_string(), true)),
        }
    }

    /// Forgets the event schema `name` (the others keep their ids), so uses of it get 404
    /// until it is added again.
    pub fn remove_event_schema(&self, name: &str) {
        let mut data = self.shared.data();
        if let Some((_, active)) = data.schemas.iter_mut().find(|(known, _)| known == name) {
            *active = false;
        }
    }

    /// Posts an event as Sensara does (`providerName: "Sensara"`, no level, the SSE event id as
    /// `referenceId`) and fans it out. Panics when the event name is unknown.
    pub fn post_sensor_event(&self, robot_id: RobotId, event_name: &str) -> IncomingEvent {
        let reference = format!("sensara-{}", uuid::Uuid::now_v7().simple());
        self.post_event_as("Sensara", robot_id, event_name, &reference)
    }

    /// Posts an event as any known provider and fans it out. Panics when the provider or
    /// event name is unknown.
    pub fn post_event_as(
        &self,
        provider_name: &str,
        robot_id: RobotId,
        event_name: &str,
        reference_id: &str,
    ) -> IncomingEvent {
        let call_ref = uuid::Uuid::now_v7().to_string();
        self.shared
            .store_incoming(
                robot_id,
                provider_name,
                event_name,
                None,
                Some(reference_id.to_string()),
                &call_ref,
            )
            .unwrap_or_else(|(_, message)| panic!("post_event_as: {message}"))
    }

    /// Every stored incoming event, in id order.
    pub fn incoming_events(&self) -> Vec<IncomingEvent> {
        self.shared.data().incoming.clone()
    }

    /// How many `alarm_event` events were posted with this `referenceId`; exactly-once means 1.
    pub fn alarm_posts(&self, reference_id: &str) -> usize {
        self.alarm_post_counts()
            .get(reference_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many `alarm_event` events were posted per `referenceId`.
    pub fn alarm_post_counts(&self) -> BTreeMap<String, usize> {
        let data = self.shared.data();
        let mut counts = BTreeMap::new();
        for event in &data.incoming {
            if event.event_name == self.shared.alarm_event {
                let key = event.reference_id.clone().unwrap_or_default();
                *counts.entry(key).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Every subscription, active or not, in id order.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.shared.data().subscriptions.clone()
    }

    /// Every outgoing event, in id order.
    pub fn outgoing_events(&self) -> Vec<OutgoingEvent> {
        self.shared.data().outgoing.clone()
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.data().requests.clone()
    }

    /// The requests to one route, in arrival order.
    pub fn requests_to(&self, route: MegazordRoute) -> Vec<RecordedRequest> {
        let data = self.shared.data();
        data.requests
            .iter()
            .filter(|r| r.route == Some(route))
            .cloned()
            .collect()
    }

    /// Makes requests to `route` fail with `fault` for `span`.
    pub fn inject_fault(&self, route: MegazordRoute, fault: Fault, span: FaultSpan) {
        self.push_fault(Some(route), fault, span);
    }

    /// Makes requests to every route fail with `fault` for `span`.
    pub fn inject_fault_everywhere(&self, fault: Fault, span: FaultSpan) {
        self.push_fault(None, fault, span);
    }

    fn push_fault(&self, route: Option<MegazordRoute>, fault: Fault, span: FaultSpan) {
        let (remaining, until) = match span {
            FaultSpan::Next(n) => (Some(n), None),
            FaultSpan::Until(at) => (None, Some(at)),
            FaultSpan::Always => (None, None),
        };
        self.shared.data().faults.push(FaultRule {
            route,
            fault,
            remaining,
            until,
        });
    }

    /// Fails `per_million` of all requests, drawn by a generator seeded with `seed` (so a run
    /// can be repeated): a drawn request to a route listed in `faults` gets that fault, any
    /// other the fault listed for `None`, or none. Injected faults come first.
    pub fn fail_randomly(
        &self,
        per_million: u64,
        seed: u64,
        faults: Vec<(Option<MegazordRoute>, Fault)>,
    ) {
        self.shared.data().random_faults = Some(RandomFaults {
            per_million,
            state: seed | 1,
            faults,
        });
    }

    /// Removes every injected fault and random failure (robot refusals stay until cleared).
    pub fn clear_faults(&self) {
        let mut data = self.shared.data();
        data.faults.clear();
        data.random_faults = None;
    }

    /// Answers every request about `robot_id` (subscriptions, history reads, event posts,
    /// outgoing reads) with `status`, without handling it, as Megazord does for a robot it
    /// does not know (404) or cannot serve (500); replaces an earlier refusal of the robot.
    pub fn refuse_robot(&self, robot_id: RobotId, status: u16) {
        status_code(status);
        self.shared.data().refused_robots.insert(robot_id, status);
    }

    /// Changes how `GET …/incomings` answers.
    pub fn set_history_quirks(&self, quirks: HistoryQuirks) {
        self.shared.data().history_quirks = quirks;
    }

    /// Holds fan-out messages back (they are still created, in order) until resumed.
    pub fn pause_fan_out(&self) {
        self.shared.data().fan_out_paused = true;
    }

    /// Sends the held messages in order, and later ones as they come.
    pub fn resume_fan_out(&self) {
        self.shared.data().fan_out_paused = false;
        self.shared.wake_sender.notify_one();
    }

    /// Shuffles the held messages (deterministically for a seed), then resumes.
    pub fn resume_fan_out_shuffled(&self, seed: u64) {
        let mut data = self.shared.data();
        let mut state = seed | 1;
        let pending = data.fan_out_pending.make_contiguous();
        for i in (1..pending.len()).rev() {
            // xorshift64: enough randomness for an order, and the same order for a seed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = state % (i as u64 + 1);
            pending.swap(i, usize::try_from(j).expect("at most i, a usize"));
        }
        drop(data);
        self.resume_fan_out();
    }

    /// Sends every fan-out message `copies` times (at-least-once delivery); 1 by default.
    pub fn set_fan_out_copies(&self, copies: u32) {
        self.shared.data().fan_out_copies = copies.max(1);
    }

    /// How many fan-out messages wait to be sent.
    pub fn pending_fan_out(&self) -> usize {
        self.shared.data().fan_out_pending.len()
    }

    /// Waits until the sender has sent everything it may send now (held messages stay held).
    pub async fn wait_fan_out(&self) {
        loop {
            let progress = self.shared.sender_progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let data = self.shared.data();
                let idle = !data.fan_out_in_flight
                    && (data.fan_out_pending.is_empty() || data.fan_out_paused);
                if idle {
                    return;
                }
            }
            progress.await;
        }
    }

    /// Waits until `condition` holds, checking it after every change (a request, a stored
    /// event, a sent message), for at most `patience`; says whether it holds. For awaiting
    /// what another process does (an alarm posted, a subscription deleted) without sleeping.
    pub async fn wait_for(
        &self,
        patience: Duration,
        condition: impl Fn(&MegazordServer) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if condition(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return condition(self);
            }
        }
    }

    /// Every fan-out message with what happened to it, in creation order.
    pub fn fan_out_log(&self) -> Vec<FanOutMessage> {
        self.shared.data().fan_out_log.clone()
    }
}

/// The most entries SQS takes in one `SendMessageBatch`.
const SQS_BATCH: usize = 10;

/// Sends fan-out messages in order while not paused, as many as one `SendMessageBatch` takes
/// at a time (every copy of a message is an entry of its own), so that a busy day's fan-out
/// keeps up with the events.
async fn send_fan_out(shared: Arc<Shared>, client: aws_sdk_sqs::Client) {
    loop {
        let batch = {
            let mut data = shared.data();
            let mut batch = Vec::new();
            if !data.fan_out_paused {
                let copies = data.fan_out_copies.max(1) as usize;
                let mut entries = 0;
                while entries + copies <= SQS_BATCH.max(copies) {
                    let Some(&index) = data.fan_out_pending.front() else {
                        break;
                    };
                    let message = data.fan_out_log[index].clone();
                    // One batch goes to one queue.
                    if batch
                        .first()
                        .is_some_and(|(_, m): &(usize, FanOutMessage)| {
                            m.queue_url != message.queue_url
                        })
                    {
                        break;
                    }
                    data.fan_out_pending.pop_front();
                    batch.push((index, message));
                    entries += copies;
                }
                data.fan_out_in_flight = !batch.is_empty();
            }
            let copies = data.fan_out_copies as usize;
            (batch, copies)
        };
        let (batch, copies) = batch;
        if batch.is_empty() {
            shared.sender_progress.notify_waiters();
            shared.wake_sender.notified().await;
            continue;
        }
        let outcomes = send_batch(&client, &batch, copies).await;
        {
            let mut data = shared.data();
            for ((index, _), outcome) in batch.iter().zip(outcomes) {
                data.fan_out_log[*index].outcome = outcome;
            }
            data.fan_out_in_flight = false;
        }
        shared.sender_progress.notify_waiters();
        shared.changed.notify_waiters();
    }
}

/// Sends `copies` of each message of `batch` (all to one queue) in one call; one outcome per
/// message: sent when its last copy was.
async fn send_batch(
    client: &aws_sdk_sqs::Client,
    batch: &[(usize, FanOutMessage)],
    copies: usize,
) -> Vec<FanOutOutcome> {
    if copies == 0 {
        return batch.iter().map(|_| FanOutOutcome::NotSent).collect();
    }
    if batch.len() * copies == 1 || batch.len() * copies > SQS_BATCH {
        let mut outcomes = Vec::with_capacity(batch.len());
        for (_, message) in batch {
            let mut outcome = FanOutOutcome::NotSent;
            for _ in 0..copies {
                outcome = send_one(client, message).await;
            }
            outcomes.push(outcome);
        }
        return outcomes;
    }
    let Some(queue_url) = batch[0].1.queue_url.clone() else {
        return batch.iter().map(|_| FanOutOutcome::NotSent).collect();
    };
    let mut request = client.send_message_batch().queue_url(queue_url);
    for (n, (_, message)) in batch.iter().enumerate() {
        for copy in 0..copies {
            let call_ref = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(&message.call_ref)
                .build()
                .expect("data type and value are set");
            request = request.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{n}c{copy}"))
                    .message_body(&message.body)
                    .message_attributes("callRef", call_ref)
                    .build()
                    .expect("id and body are set"),
            );
        }
    }
    match request.send().await {
        Ok(output) => batch
            .iter()
            .enumerate()
            .map(|(n, _)| {
                let last = format!("m{n}c{}", copies - 1);
                if let Some(failed) = output
                    .failed()
                    .iter()
                    .find(|f| f.id().starts_with(&format!("m{n}c")))
                {
                    return FanOutOutcome::Failed(format!("{failed:?}"));
                }
                output
                    .successful()
                    .iter()
                    .find(|ok| ok.id() == last)
                    .map_or(FanOutOutcome::NotSent, |ok| {
                        FanOutOutcome::Sent(ok.message_id().to_string())
                    })
            })
            .collect(),
        Err(e) => {
            let error = format!("{e:?}");
            batch
                .iter()
                .map(|_| FanOutOutcome::Failed(error.clone()))
                .collect()
        }
    }
}

async fn send_one(client: &aws_sdk_sqs::Client, message: &FanOutMessage) -> FanOutOutcome {
    let Some(queue_url) = &message.queue_url else {
        return FanOutOutcome::NotSent;
    };
    let call_ref = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(&message.call_ref)
        .build()
        .expect("data type and value are set");
    match client
        .send_message()
        .queue_url(queue_url)
        .message_body(&message.body)
        .message_attributes("callRef", call_ref)
        .send()
        .await
    {
        Ok(output) => FanOutOutcome::Sent(output.message_id().unwrap_or_default().to_string()),
        Err(e) => FanOutOutcome::Failed(format!("{e:?}")),
    }
}

/// Records every request and applies injected faults.
async fn record_and_fault(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let route = MegazordRoute::of(request.method(), request.uri().path());
    let fault = shared.take_fault(route, robot_of(request.uri().path()));
    let seq = {
        let mut data = shared.data();
        let seq = data.requests.len() as u64 + 1;
        data.requests.push(RecordedRequest {
            seq,
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            query: request.uri().query().map(str::to_string),
            route,
            call_ref: request
                .headers()
                .get("call-ref")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            received_at: shared.now(),
            fault,
            status: None,
        });
        if let Some(route) = route {
            *data.requests_per_route.entry(route).or_insert(0) += 1;
        }
        seq
    };
    shared.changed.notify_waiters();
    let latency = shared.latency_micros.load(Ordering::Relaxed);
    if latency > 0 {
        wait_exactly(Duration::from_micros(latency)).await;
    }
    let response = match fault {
        None => next.run(request).await,
        Some(Fault::Status(status)) => failure(status_code(status), "injected fault"),
        Some(Fault::Stall(duration)) => {
            tokio::time::sleep(duration).await;
            failure(StatusCode::SERVICE_UNAVAILABLE, "injected stall")
        }
        Some(Fault::StatusAfterHandling(status)) => {
            let _ = next.run(request).await;
            failure(status_code(status), "injected fault after handling")
        }
        Some(Fault::StallAfterHandling(duration)) => {
            let response = next.run(request).await;
            tokio::time::sleep(duration).await;
            response
        }
    };
    if let Some(recorded) = shared
        .data()
        .requests
        .get_mut(usize::try_from(seq - 1).expect("a request's index"))
    {
        recorded.status = Some(response.status().as_u16());
    }
    shared.changed.notify_waiters();
    response
}

/// Waits `latency` to within about a tenth of a millisecond, where `tokio::time::sleep` rounds
/// up to its timer's whole-millisecond ticks and then some: a request to a stand-in set to
/// 5 ms took 6.4 ms (p50, sequential) with it, so that the latency a benchmark asked for was a
/// quarter longer than it said.
///
/// One thread keeps every request's deadline and wakes each at its instant; a request that is
/// dropped while it waits (the client hung up) leaves its deadline to pass unanswered. The
/// thread is woken only by a deadline earlier than every other it holds (with one latency
/// for all, only when it holds none).
async fn wait_exactly(latency: Duration) {
    let until = std::time::Instant::now() + latency;
    let (wake, woken) = tokio::sync::oneshot::channel();
    exact_timer().add(Deadline { until, wake });
    let _ = woken.await;
}

/// A request's deadline, ordered by its instant.
struct Deadline {
    until: std::time::Instant,
    wake: tokio::sync::oneshot::Sender<()>,
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.until == other.until
    }
}

impl Eq for Deadline {}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.until.cmp(&other.until)
    }
}

/// The deadlines of [`wait_exactly`], earliest first, and the thread that wakes them.
#[derive(Default)]
struct ExactTimer {
    waiting: Mutex<std::collections::BinaryHeap<std::cmp::Reverse<Deadline>>>,
    earlier: std::sync::Condvar,
}

impl ExactTimer {
    fn add(&self, deadline: Deadline) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let first = waiting
            .peek()
            .is_none_or(|std::cmp::Reverse(next)| deadline.until < next.until);
        waiting.push(std::cmp::Reverse(deadline));
        drop(waiting);
        if first {
            self.earlier.notify_one();
        }
    }

    fn run(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = std::time::Instant::now();
            while waiting
                .peek()
                .is_some_and(|std::cmp::Reverse(next)| next.until <= now)
            {
                let std::cmp::Reverse(due) = waiting.pop().expect("peeked");
                let _ = due.wake.send(());
            }
            waiting = match waiting.peek() {
                Some(std::cmp::Reverse(next)) => {
                    let timeout = next.until - now;
                    self.earlier
                        .wait_timeout(waiting, timeout)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self
                    .earlier
                    .wait(waiting)
                    .unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

/// The one timer of [`wait_exactly`], its thread started on first use.
fn exact_timer() -> &'static ExactTimer {
    static TIMER: OnceLock<&'static ExactTimer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static ExactTimer = Box::leak(Box::default());
        std::thread::Builder::new()
            .name("stand-in-latency".into())
            .spawn(|| timer.run())
            .expect("spawn the stand-in's latency thread");
        timer
    })
}

/// Whole microseconds of a latency, saturating at `u64::MAX` rather than truncating.
fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)
}

/// The robot a request is about: `/internal/v1/events/robots/:robotId/…`.
fn robot_of(path: &str) -> Option<RobotId> {
    let mut segments = path.trim_matches('/').split('/');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some("internal"), Some("v1"), Some("events"), Some("robots")) => {
            segments.next()?.parse().ok()
        }
        _ => None,
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).expect("an injected status is a valid HTTP status")
}

fn robot_param(raw: &str) -> Result<RobotId, Box<Response>> {
    raw.parse().map_err(|_| {
        Box::new(failure(
            StatusCode::BAD_REQUEST,
            "robotId must be a number conforming to the specified constraints",
        ))
    })
}

fn json_body(body: &Bytes) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Box::new(failure(
            StatusCode::BAD_REQUEST,
            "body must be an object",
        ))),
        Err(e) => Err(Box::new(failure(
            StatusCode::BAD_REQUEST,
            format!("body is not JSON: {e}"),
        ))),
    }
}

fn call_ref_of(headers: &HeaderMap) -> String {
    // tiny-backend-tools generates one when the caller sends none.
    headers
        .get("call-ref")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// `POST …/incomings` (contracts §1.1).
async fn post_incoming(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(robot): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let robot_id = match robot_param(&robot) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    // class-validator reports every failed constraint, joined.
    let mut problems = Vec::new();
    let string = |name: &str, problems: &mut Vec<String>| match body.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => {
            problems.push(format!("{name} must be a string"));
            None
        }
    };
    let provider_name = string("providerName", &mut problems);
    let event_name = string("eventName", &mut problems);
    let reference_id = string("referenceId", &mut problems);
    let level = match body.get("level") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(_) => {
            problems.push("level must be a number conforming to the specified constraints".into());
            None
        }
    };
    if !problems.is_empty() {
        return failure(StatusCode::BAD_REQUEST, problems.join(", "));
    }
    let reference_id = reference_id.expect("checked above");
    if reference_id.chars().count() > 256 {
        // No length validator in the DTO: the VARCHAR(256) column refuses it.
        return failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Data too long for column 'reference_id'",
        );
    }
    match shared.store_incoming(
        robot_id,
        &provider_name.expect("checked above"),
        &event_name.expect("checked above"),
        level,
        Some(reference_id),
        &call_ref_of(&headers),
    ) {
        Ok(event) => answer(StatusCode::CREATED, incoming_json(&event)),
        Err((status, message)) => failure(status, message),
    }
}

/// `GET …/incomings?event_name=…&created_since=<unix seconds>` (contracts §1.2).
async fn get_incomings(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(robot): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<BTreeMap<String, String>>,
) -> Response {
    let robot_id = match robot_param(&robot) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let since = match query.get("created_since") {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(seconds) => Some(seconds),
            Err(_) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "created_since must be a number conforming to the specified constraints",
                );
            }
        },
    };
    let data = shared.data();
    let event_name = query.get("event_name");
    if let Some(name) = event_name
        && let Err((status, message)) = schema_id(&data, name)
    {
        return failure(status, message);
    }
    let quirks = data.history_quirks;
    let mut events: Vec<Value> = data
        .incoming_by_robot
        .get(&robot_id)
        .into_iter()
        .flatten()
        .map(|&i| &data.incoming[i])
        .filter(|e| event_name.is_none_or(|name| &e.event_name == name))
        .filter(|e| {
            since.is_none_or(|since| {
                let created = e.created_at.as_second();
                if quirks.exclusive_since {
                    created > since
                } else {
                    created >= since
                }
            })
        })
        .map(incoming_json)
        .collect();
    if quirks.newest_first {
        events.reverse();
    }
    if quirks.duplicated {
        events = events.iter().flat_map(|e| [e.clone(), e.clone()]).collect();
    }
    answer(StatusCode::OK, Value::Array(events))
}

/// `POST …/subscriptions` (contracts §1.3).
async fn create_subscription(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(robot): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let robot_id = match robot_param(&robot) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let body = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let mut problems = Vec::new();
    let mut event_names = Vec::new();
    match body.get("eventNames") {
        Some(Value::Array(names)) => {
            if names.is_empty() {
                problems.push("eventNames should not be empty".to_string());
            }
            if names.iter().all(Value::is_string) {
                for name in names {
                    let name = name.as_str().expect("all are strings").to_string();
                    if event_names.contains(&name) {
                        problems.push("All eventNames's elements must be unique".to_string());
                        break;
                    }
                    event_names.push(name);
                }
            } else {
                problems.push("each value in eventNames must be a string".to_string());
            }
        }
        _ => problems.push("eventNames must be an array".to_string()),
    }
    let until = match body.get("until") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.parse::<Timestamp>().is_ok() => Some(s.clone()),
        Some(_) => {
            problems.push("until must be a Date instance".to_string());
            None
        }
    };
    let queue = match body.get("queue") {
        None | Some(Value::Null) => None,
        Some(Value::String(q)) => {
            if q.len() > 128 {
                problems.push("queue must be shorter than or equal to 128 characters".to_string());
            }
            if q.is_empty() || !q.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                problems.push("queue must match /^[a-zA-Z0-9-]+$/ regular expression".to_string());
            }
            Some(q.clone())
        }
        Some(_) => {
            problems.push("queue must be a string".to_string());
            None
        }
    };
    if let Some(trigger) = body.get("isTriggerSubscription")
        && trigger != &Value::Bool(false)
        && trigger != &Value::Null
    {
        problems
            .push("isTriggerSubscription: this stand-in serves service subscriptions only".into());
    }
    if !problems.is_empty() {
        return failure(StatusCode::BAD_REQUEST, problems.join(", "));
    }
    let created_at = shared.stamp();
    let mut data = shared.data();
    for name in &event_names {
        if let Err((status, message)) = schema_id(&data, name) {
            return failure(status, message);
        }
    }
    let subscription = Subscription {
        id: data.subscriptions.len() as u64 + 1,
        robot_id,
        event_names,
        queue,
        until,
        is_active: true,
        created_at,
    };
    let index = data.subscriptions.len();
    data.subscriptions.push(subscription.clone());
    data.subscriptions_by_robot
        .entry(robot_id)
        .or_default()
        .push(index);
    answer(StatusCode::CREATED, subscription_json(&subscription, &data))
}

/// `DELETE …/subscriptions/:subscriptionId` (contracts §1.4): 204, also when repeated; 404
/// for an unknown subscription or another robot's.
async fn delete_subscription(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path((robot, subscription)): axum::extract::Path<(String, String)>,
) -> Response {
    let robot_id = match robot_param(&robot) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let mut data = shared.data();
    // Ids are positions + 1.
    let found = subscription.parse::<u64>().ok().and_then(|id| {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        data.subscriptions
            .get_mut(index)
            .filter(|s| s.robot_id == robot_id)
    });
    match found {
        Some(subscription) => {
            subscription.is_active = false;
            StatusCode::NO_CONTENT.into_response()
        }
        None => failure(StatusCode::NOT_FOUND, "Subscription not found"),
    }
}

/// `GET …/subscriptions/:subscriptionId/outgoings/:outgoingEventId` (contracts §1.5).
async fn get_outgoing(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path((robot, subscription, outgoing)): axum::extract::Path<(
        String,
        String,
        String,
    )>,
) -> Response {
    let robot_id = match robot_param(&robot) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let data = shared.data();
    let (Ok(subscription_id), Ok(outgoing_id)) =
        (subscription.parse::<u64>(), outgoing.parse::<u64>())
    else {
        return failure(StatusCode::NOT_FOUND, "Outgoing event not found");
    };
    // Ids are positions + 1.
    let at = |id: u64| usize::try_from(id).ok().and_then(|id| id.checked_sub(1));
    let belongs = at(subscription_id)
        .and_then(|i| data.subscriptions.get(i))
        .is_some_and(|s| s.robot_id == robot_id);
    let outgoing = at(outgoing_id)
        .and_then(|i| data.outgoing.get(i))
        .filter(|o| o.subscription_id == subscription_id);
    match (belongs, outgoing) {
        (true, Some(outgoing)) => {
            let source =
                &data.incoming[at(outgoing.source_event_id).expect("the event it was made from")];
            answer(StatusCode::OK, outgoing_json(outgoing, source))
        }
        _ => failure(StatusCode::NOT_FOUND, "Outgoing event not found"),
    }
}
