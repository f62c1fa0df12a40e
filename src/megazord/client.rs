//! The HTTP client for the Megazord routes of contracts §1, with the error handling of contracts
//! §6 item 20: a timeout on every request, exponential backoff with jitter for 5xx, timeouts,
//! broken connections and a 404 on the POST routes (a provider or schema missing, which an
//! operator can fix), no retry for other 4xx, and 404 on DELETE meaning "already gone".

use crate::domain::RobotId;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use jiff::Timestamp;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::error::{MegazordError, Route, body_excerpt};
use super::types::{
    CALL_REF_HEADER, CallRef, CreateSubscriptionBody, Deletion, IncomingEvent, OutgoingEvent,
    OutgoingLink, PostIncomingBody, Subscription, iso_millis,
};
use crate::redact::redact_url;
use crate::telemetry::names;

/// The history query parameter naming the event (contracts §1.2, §6 item 2).
pub const QUERY_EVENT_NAME: &str = "event_name";

/// The history query parameter giving the lower bound, in Unix seconds (contracts §6 item 1).
pub const QUERY_CREATED_SINCE: &str = "created_since";

/// How to reach Megazord and how hard to try; the `[megazord]` section of the config file.
/// Unknown keys are refused. `base_url` is printed only redacted (it may carry credentials).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MegazordSettings {
    /// Where Megazord listens, e.g. `http://megazord-events:8080` (env `MEGAZORD_EVENTS_ADDRESS`).
    pub base_url: String,
    /// The `providerName` of the alarms this service posts; must exist at Megazord.
    pub provider_name: String,
    /// The longest one request may take, connection and body included.
    pub request_timeout_ms: u64,
    /// How many requests one call may make, the first included.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles per retry, plus up to as much again of jitter.
    pub initial_backoff_ms: u64,
    /// The longest wait between two attempts.
    pub max_backoff_ms: u64,
}

impl Default for MegazordSettings {
    fn default() -> Self {
        MegazordSettings {
            base_url: "http://megazord-events:8080".to_string(),
            provider_name: "azi-3-status-jobs".to_string(),
            request_timeout_ms: 10_000,
            max_attempts: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 10_000,
        }
    }
}

impl std::fmt::Debug for MegazordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegazordSettings")
            .field("base_url", &redact_url(&self.base_url))
            .field("provider_name", &self.provider_name)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .field("max_backoff_ms", &self.max_backoff_ms)
            .finish()
    }
}

impl MegazordSettings {
    /// Checks the settings; the error names the key and the value (a URL redacted).
    pub fn validate(&self) -> Result<(), MegazordError> {
        let invalid = |key, reason: String| Err(MegazordError::InvalidSettings { key, reason });
        match Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {}
            Ok(_) => {
                return invalid(
                    "base_url",
                    format!(
                        "{:?} must be an http(s) URL without a query",
                        redact_url(&self.base_url)
                    ),
                );
            }
            Err(e) => {
                return invalid(
                    "base_url",
                    format!("{:?} is not a URL: {e}", redact_url(&self.base_url)),
                );
            }
        }
        if self.provider_name.trim().is_empty() {
            return invalid("provider_name", "must not be empty".to_string());
        }
        if self.request_timeout_ms == 0 {
            return invalid("request_timeout_ms", "0 must be at least 1".to_string());
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "0 must be at least 1".to_string());
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return invalid(
                "initial_backoff_ms",
                format!(
                    "{} is more than max_backoff_ms ({})",
                    self.initial_backoff_ms, self.max_backoff_ms
                ),
            );
        }
        Ok(())
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// A Megazord client; cheap to clone (clones share the connection pool).
#[derive(Clone)]
pub struct MegazordClient {
    http: reqwest::Client,
    /// `base_url`, parsed once: a request's URL is this with the route's path segments
    /// appended, not a string parsed again on every call (parsing, with its host's IDNA
    /// check, was about 2 % of the service's CPU while 10,000 windows closed).
    base: Url,
    settings: MegazordSettings,
}

impl std::fmt::Debug for MegazordClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegazordClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A final answer: 2xx, or 404 where the route takes it as an answer.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

/// Why one attempt did not give a final answer, when another attempt may.
enum Failure {
    Status { status: u16, body: String },
    Timeout,
    Connection(String),
}

impl Failure {
    fn outcome(&self) -> &'static str {
        match self {
            Failure::Status { status: 404, .. } => "not_found",
            Failure::Status { .. } => "server_error",
            Failure::Timeout => "timeout",
            Failure::Connection(_) => "connection_error",
        }
    }
}

/// One call: a route, its robot, the request, and the reference it goes under.
struct Call<'a> {
    route: Route,
    robot_id: RobotId,
    method: Method,
    url: Url,
    body: Option<String>,
    call_ref: &'a CallRef,
}

impl MegazordClient {
    /// Makes a client; fails when the settings are invalid.
    pub fn new(settings: MegazordSettings) -> Result<Self, MegazordError> {
        settings.validate()?;
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout())
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| MegazordError::InvalidSettings {
                key: "base_url",
                reason: format!("cannot make an HTTP client: {}", error_chain(e)),
            })?;
        let base = Url::parse(settings.base_url.trim_end_matches('/')).map_err(|e| {
            MegazordError::InvalidSettings {
                key: "base_url",
                reason: format!("{:?} is not a URL: {e}", redact_url(&settings.base_url)),
            }
        })?;
        Ok(MegazordClient {
            http,
            base,
            settings,
        })
    }

    /// The settings the client was made with.
    pub fn settings(&self) -> &MegazordSettings {
        &self.settings
    }

    /// Subscribes the robot's `event_names` to the status queue `${base}-${queue_suffix}` (or
    /// the base queue without a suffix). `until` documents the session end; Megazord does not
    /// persist it, so the subscription must be deleted (contracts §1.3).
    pub async fn create_subscription(
        &self,
        robot_id: RobotId,
        event_names: &[String],
        until: Timestamp,
        queue_suffix: Option<&str>,
        call_ref: &CallRef,
    ) -> Result<Subscription, MegazordError> {
        let body = CreateSubscriptionBody {
            event_names,
            until: iso_millis(until),
            queue: queue_suffix,
        };
        let call = Call {
            route: Route::CreateSubscription,
            robot_id,
            method: Method::POST,
            url: self.url(robot_id, &["subscriptions"]),
            body: Some(to_json(&body)),
            call_ref,
        };
        let answer = self.execute(&call).await?;
        let subscription: Subscription = decode(&call, &answer)?;
        tracing::info!(
            callRef = %call_ref,
            robotId = robot_id.get(),
            subscriptionId = subscription.id,
            "megazord subscription created"
        );
        Ok(subscription)
    }

    /// Deletes (deactivates) a subscription; a 404 means it is already gone (contracts §1.4).
    pub async fn delete_subscription(
        &self,
        robot_id: RobotId,
        subscription_id: u64,
        call_ref: &CallRef,
    ) -> Result<Deletion, MegazordError> {
        let call = Call {
            route: Route::DeleteSubscription,
            robot_id,
            method: Method::DELETE,
            url: self.url(robot_id, &["subscriptions", &subscription_id.to_string()]),
            body: None,
            call_ref,
        };
        let answer = self.execute(&call).await?;
        Ok(if answer.status == StatusCode::NOT_FOUND {
            Deletion::AlreadyGone
        } else {
            Deletion::Deleted
        })
    }

    /// Posts an event as this service's provider (contracts §1.1, §6 item 7): `providerName`,
    /// `eventName` and `referenceId`, no level, no payload. Megazord does not deduplicate on
    /// `referenceId`; a retried post after a lost answer can store the event twice, so callers
    /// that need exactly once look the reference up with [`MegazordClient::incomings`] first.
    pub async fn post_event(
        &self,
        robot_id: RobotId,
        event_name: &str,
        reference_id: &str,
        call_ref: &CallRef,
    ) -> Result<IncomingEvent, MegazordError> {
        let body = PostIncomingBody {
            provider_name: &self.settings.provider_name,
            event_name,
            reference_id,
        };
        let call = Call {
            route: Route::PostIncoming,
            robot_id,
            method: Method::POST,
            url: self.url(robot_id, &["incomings"]),
            body: Some(to_json(&body)),
            call_ref,
        };
        let answer = self.execute(&call).await?;
        let event: IncomingEvent = decode(&call, &answer)?;
        // At debug: the caller says what the post was for (an alarm logs "alarm sent" with its
        // reference and Megazord's id), and a line per post at info costs a burst of 100,000
        // alarms a tenth of its time.
        tracing::debug!(
            callRef = %call_ref,
            robotId = robot_id.get(),
            eventName = event_name,
            referenceId = reference_id,
            incomingEventId = event.id.get(),
            "megazord event posted"
        );
        Ok(event)
    }

    /// The robot's `event_name` events created at or after `created_since` (to the whole
    /// second: Megazord stores seconds), without duplicates, by `(createdAt, id)`.
    ///
    /// Neither the unit nor the inclusivity of Megazord's `created_since` is documented
    /// (contracts §6 item 1): this asks for one second earlier in Unix seconds and filters
    /// locally, so the answer is the same whether Megazord compares with `>` or `>=`.
    pub async fn incomings(
        &self,
        robot_id: RobotId,
        event_name: &str,
        created_since: Timestamp,
        call_ref: &CallRef,
    ) -> Result<Vec<IncomingEvent>, MegazordError> {
        let since_second =
            created_since.as_second() - i64::from(created_since.subsec_nanosecond() < 0);
        let mut url = self.url(robot_id, &["incomings"]);
        url.query_pairs_mut()
            .append_pair(QUERY_EVENT_NAME, event_name)
            .append_pair(QUERY_CREATED_SINCE, &(since_second - 1).to_string());
        let call = Call {
            route: Route::GetIncomings,
            robot_id,
            method: Method::GET,
            url,
            body: None,
            call_ref,
        };
        let answer = self.execute(&call).await?;
        let events: Vec<IncomingEvent> = decode(&call, &answer)?;
        let received = events.len();
        let mut seen = std::collections::HashSet::with_capacity(received);
        let mut events: Vec<IncomingEvent> = events
            .into_iter()
            .filter(|event| seen.insert(event.id))
            .filter(|event| event.created_at.as_second() >= since_second)
            .collect();
        events.sort_by_key(|event| (event.created_at, event.id));
        tracing::debug!(
            callRef = %call_ref,
            robotId = robot_id.get(),
            eventName = event_name,
            received,
            kept = events.len(),
            "megazord history read"
        );
        Ok(events)
    }

    /// Reads one outgoing event with its `sourceEvent` (contracts §1.5): the fallback for a
    /// queue message without `sourceEvent`. Takes the ids of the message's `link.link`
    /// ([`OutgoingLink::parse`]); the request always goes to the configured Megazord.
    pub async fn outgoing(
        &self,
        link: &OutgoingLink,
        call_ref: &CallRef,
    ) -> Result<OutgoingEvent, MegazordError> {
        let call = Call {
            route: Route::GetOutgoing,
            robot_id: link.robot_id,
            method: Method::GET,
            url: self.url(
                link.robot_id,
                &[
                    "subscriptions",
                    &link.subscription_id.to_string(),
                    "outgoings",
                    &link.outgoing_id.to_string(),
                ],
            ),
            body: None,
            call_ref,
        };
        let answer = self.execute(&call).await?;
        decode(&call, &answer)
    }

    /// `{base_url}/internal/v1/events/robots/{robot_id}/{route…}`.
    fn url(&self, robot_id: RobotId, route: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            // An http(s) URL (checked in `new`) always has path segments.
            let mut segments = url.path_segments_mut().expect("an http(s) URL");
            segments
                .pop_if_empty()
                .extend(["internal", "v1", "events", "robots", &robot_id.to_string()])
                .extend(route);
        }
        url
    }

    /// Runs a call with retries; returns the final answer or the error of the last attempt.
    async fn execute(&self, call: &Call<'_>) -> Result<Answer, MegazordError> {
        let span = tracing::info_span!(
            "megazord",
            callRef = %call.call_ref,
            robotId = call.robot_id.get(),
            route = call.route.label(),
        );
        self.execute_attempts(call).instrument(span).await
    }

    async fn execute_attempts(&self, call: &Call<'_>) -> Result<Answer, MegazordError> {
        let route = call.route;
        let max_backoff = Duration::from_millis(self.settings.max_backoff_ms);
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(self.settings.initial_backoff_ms))
            .with_max_delay(max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_jitter_seed(RandomState::new().build_hasher().finish())
            .with_max_times(self.settings.max_attempts.saturating_sub(1) as usize)
            .build();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let started = Instant::now();
            let result = self.attempt(call).await;
            metrics::histogram!(names::MEGAZORD_REQUEST_DURATION, "route" => route.label())
                .record(started.elapsed().as_secs_f64());
            let failure = match result {
                Ok(answer) => {
                    let code = answer.status.as_u16();
                    let not_found = answer.status == StatusCode::NOT_FOUND;
                    if answer.status.is_success()
                        || (not_found && route == Route::DeleteSubscription)
                    {
                        let outcome = if not_found { "not_found" } else { "success" };
                        count(route, outcome);
                        return Ok(answer);
                    }
                    let body = body_excerpt(&answer.body);
                    // 408 and 429 are Megazord (or a proxy) asking to be called again later.
                    let later = matches!(code, 408 | 429);
                    if answer.status.is_server_error()
                        || later
                        || (not_found && route.retries_not_found())
                    {
                        if not_found {
                            // A provider or schema is missing at Megazord: someone must act.
                            tracing::error!(
                                status = code,
                                body = %body,
                                attempt = attempts,
                                "megazord does not know the provider or an event name; retrying"
                            );
                        }
                        Failure::Status { status: code, body }
                    } else {
                        count(route, "rejected");
                        tracing::error!(
                            status = code,
                            body = %body,
                            "megazord rejected the request; not retrying"
                        );
                        return Err(MegazordError::Rejected {
                            route,
                            robot_id: call.robot_id,
                            status: code,
                            body,
                        });
                    }
                }
                Err(error) if error.is_timeout() => Failure::Timeout,
                Err(error) if error.is_builder() => {
                    count(route, "invalid_request");
                    return Err(MegazordError::Connection {
                        route,
                        robot_id: call.robot_id,
                        reason: error_chain(error),
                        attempts,
                    });
                }
                Err(error) => Failure::Connection(error_chain(error)),
            };
            count(route, failure.outcome());
            let Some(delay) = backoff.next() else {
                tracing::warn!(attempts, "megazord call failed; no attempts left");
                return Err(self.give_up(call, failure, attempts));
            };
            let delay = delay.min(max_backoff);
            tracing::warn!(
                attempt = attempts,
                outcome = failure.outcome(),
                retry_in_ms = crate::numeric::millis(delay),
                "megazord call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One request: sends it and reads the whole body.
    async fn attempt(&self, call: &Call<'_>) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header(CALL_REF_HEADER, call.call_ref.as_str())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?.to_vec();
        Ok(Answer { status, body })
    }

    fn give_up(&self, call: &Call<'_>, failure: Failure, attempts: u32) -> MegazordError {
        let (route, robot_id) = (call.route, call.robot_id);
        match failure {
            Failure::Status { status, body } => MegazordError::Unavailable {
                route,
                robot_id,
                status,
                body,
                attempts,
            },
            Failure::Timeout => MegazordError::Timeout {
                route,
                robot_id,
                timeout_ms: self.settings.request_timeout_ms,
                attempts,
            },
            Failure::Connection(reason) => MegazordError::Connection {
                route,
                robot_id,
                reason,
                attempts,
            },
        }
    }
}

fn count(route: Route, outcome: &'static str) {
    metrics::counter!(names::MEGAZORD_REQUESTS, "route" => route.label(), "outcome" => outcome)
        .increment(1);
}

fn to_json<T: Serialize>(body: &T) -> String {
    serde_json::to_string(body).expect("request bodies are plain structs of strings")
}

/// Reads a 2xx body as the contract's JSON shape.
fn decode<T: DeserializeOwned>(call: &Call<'_>, answer: &Answer) -> Result<T, MegazordError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        count(call.route, "invalid_response");
        MegazordError::InvalidResponse {
            route: call.route,
            robot_id: call.robot_id,
            status: answer.status.as_u16(),
            reason: e.to_string(),
            body: body_excerpt(&answer.body),
        }
    })
}

/// An error with its causes, since reqwest's message alone often says only "error sending
/// request"; without the request's URL, whose user info or query may hold credentials (the
/// route and robot are named by the error that carries this text).
fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contracts() {
        let settings = MegazordSettings::default();
        assert_eq!(settings.provider_name, "azi-3-status-jobs");
        assert_eq!(settings.request_timeout(), Duration::from_secs(10));
        assert_eq!(
            (
                settings.max_attempts,
                settings.initial_backoff_ms,
                settings.max_backoff_ms
            ),
            (5, 200, 10_000)
        );
        settings.validate().unwrap();
    }

    #[test]
    fn invalid_settings_name_the_key() {
        let cases = [
            (
                MegazordSettings {
                    base_url: "megazord:8080".into(),
                    ..Default::default()
                },
                "megazord.base_url",
            ),
            (
                MegazordSettings {
                    max_attempts: 0,
                    ..Default::default()
                },
                "megazord.max_attempts",
            ),
            (
                MegazordSettings {
                    initial_backoff_ms: 20_000,
                    ..Default::default()
                },
                "megazord.initial_backoff_ms",
            ),
            (
                MegazordSettings {
                    provider_name: " ".into(),
                    ..Default::default()
                },
                "megazord.provider_name",
            ),
        ];
        for (settings, key) in cases {
            let error = MegazordClient::new(settings).unwrap_err().to_string();
            assert!(error.starts_with(key), "{error}");
        }
    }

    #[test]
    fn a_partial_config_section_keeps_the_other_defaults() {
        let settings: MegazordSettings =
            serde_json::from_str(r#"{"base_url":"http://127.0.0.1:8881/","max_attempts":2}"#)
                .unwrap();
        assert_eq!(settings.max_attempts, 2);
        assert_eq!(settings.request_timeout_ms, 10_000);
        let client = MegazordClient::new(settings).unwrap();
        assert_eq!(
            client.url(RobotId::new(7), &["incomings"]).as_str(),
            "http://127.0.0.1:8881/internal/v1/events/robots/7/incomings"
        );
    }

    #[test]
    fn route_paths_follow_the_base_urls_own_path_with_or_without_trailing_slashes() {
        let robot = RobotId::new(42);
        for (base, expected) in [
            (
                "http://megazord:8080",
                "http://megazord:8080/internal/v1/events/robots/42/subscriptions/9",
            ),
            (
                "http://megazord:8080/",
                "http://megazord:8080/internal/v1/events/robots/42/subscriptions/9",
            ),
            (
                "https://gw.example/events",
                "https://gw.example/events/internal/v1/events/robots/42/subscriptions/9",
            ),
            (
                "https://gw.example/events//",
                "https://gw.example/events/internal/v1/events/robots/42/subscriptions/9",
            ),
        ] {
            let client = MegazordClient::new(MegazordSettings {
                base_url: base.into(),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(
                client.url(robot, &["subscriptions", "9"]).as_str(),
                expected,
                "base {base}"
            );
        }
    }
}
