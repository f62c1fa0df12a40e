//! Taking in one status-queue message (from SQS or `POST /internal/v1/status-jobs/messages`):
//! read it tolerantly, find its session by subscription (or, for a subscription not written
//! down yet, by its robot), and take its event in. A message that
//! cannot be used is kept as a dead letter with the reason and its body (the first 64 KiB, with
//! the whole length and SHA-256).

use super::context::Context;
use super::intake::{IntakeOutcome, WatchedEvent};
use crate::domain::shorten_value;
use crate::megazord::{CallRef, MegazordError, OutgoingLink};
use crate::queue::{MessageError, SourceEvent, parse_status_message};
use crate::redact::redact_url;
use crate::store::StoreError;
use crate::telemetry::names;

/// Why a message was not used; it has been stored as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The body cannot be read; the error names the field and the value.
    #[error("{0}")]
    Unreadable(MessageError),
    /// The subscription is not one of this service's, and its robot is not watched here.
    #[error("payload.subscriptionId: {0}: not a subscription of this service")]
    UnknownSubscription(u64),
    /// The event cannot be found (no `sourceEvent`, and its link could not be read).
    #[error("payload.sourceEvent: {0}")]
    NoEvent(#[source] MissingEvent),
}

/// Why a message's event cannot be had. Links are quoted shortened, like any value from
/// outside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingEvent {
    /// No `sourceEvent` and no `link.link`.
    #[error("missing, and the message has no link")]
    NoLink,
    /// No `sourceEvent`, and the service runs without Megazord.
    #[error("missing, and there is no Megazord to read {link}")]
    NoMegazord {
        /// The link, quoted shortened.
        link: String,
    },
    /// No `sourceEvent`, and `link.link` is not an outgoing event's route.
    #[error("missing, and link.link {link} is unusable: {reason}")]
    UnusableLink {
        /// The link, quoted shortened.
        link: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No `sourceEvent`, and Megazord refused to give the linked outgoing event.
    #[error("missing, and reading {link} failed: {error}")]
    ReadFailed {
        /// The link, quoted shortened.
        link: String,
        /// Megazord's refusal.
        #[source]
        error: MegazordError,
    },
    /// No `sourceEvent` in the message nor in the outgoing event it links to.
    #[error("missing at {link} too")]
    NotAtLink {
        /// The link, quoted shortened.
        link: String,
    },
    /// The event names no robot, and neither does its subscription or the message.
    #[error("no robot: neither a known subscription nor sourceEvent.robotId nor to.robotId")]
    NoRobot,
}

impl Rejection {
    /// The field at fault, the value found and the reason, for an API answer.
    pub fn parts(&self) -> (String, String, String) {
        match self {
            Rejection::Unreadable(e) => (e.field.clone(), e.value.clone(), e.reason.clone()),
            Rejection::UnknownSubscription(id) => (
                "payload.subscriptionId".into(),
                id.to_string(),
                "not a subscription of this service".into(),
            ),
            Rejection::NoEvent(missing) => (
                "payload.sourceEvent".into(),
                "null".into(),
                missing.to_string(),
            ),
        }
    }
}

/// Why a message could not be handled now; it must be delivered again.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Megazord could not be asked for the message's event.
    #[error("megazord: {0}")]
    Megazord(#[source] MegazordError),
}

/// What became of a message.
#[derive(Debug)]
pub enum MessageOutcome {
    /// Taken in.
    Taken(IntakeOutcome),
    /// Kept as a dead letter.
    Rejected(Rejection),
}

impl Context {
    /// Takes in one queue message body; `Err` only when the database failed (the message
    /// must then be retried, not acknowledged). A rejected message is stored as a dead letter
    /// but not logged here: the caller logs it, once.
    pub async fn take_message(
        &self,
        body: &str,
        call_ref: Option<&str>,
    ) -> Result<MessageOutcome, TakeError> {
        match self.read_message(body, call_ref).await? {
            Ok(event) => Ok(MessageOutcome::Taken(self.take_event(event).await?)),
            Err(rejection) => {
                // Logged once, by the caller: the queue consumer with the message id, the
                // HTTP route with the request.
                let reason = rejection.to_string();
                metrics::counter!(names::DEAD_LETTERS, "reason" => reason_label(&rejection))
                    .increment(1);
                self.store()
                    .record_dead_letter(body, &reason, self.now())
                    .await?;
                Ok(MessageOutcome::Rejected(rejection))
            }
        }
    }

    async fn read_message(
        &self,
        body: &str,
        call_ref: Option<&str>,
    ) -> Result<Result<WatchedEvent, Rejection>, TakeError> {
        let message = match parse_status_message(body) {
            Ok(message) => message,
            Err(e) => return Ok(Err(Rejection::Unreadable(e))),
        };
        let mut unrecorded = None;
        let session = match message.subscription_id {
            Some(id) => match self.store().session_by_subscription(id).await? {
                Some(session) => Some(session),
                None => {
                    unrecorded = Some(id);
                    None
                }
            },
            None => None,
        };
        let source = match message.source_event {
            Some(source) => source,
            None => match self
                .fetch_source_event(message.link.as_deref(), call_ref)
                .await?
            {
                Ok(source) => source,
                Err(reason) => return Ok(Err(Rejection::NoEvent(reason))),
            },
        };
        let robot_id = session
            .map(|s| s.robot_id)
            .or(source.robot_id)
            .or(message.to_robot_id);
        let Some(robot_id) = robot_id else {
            if let Some(id) = unrecorded {
                return Ok(Err(Rejection::UnknownSubscription(id)));
            }
            return Ok(Err(Rejection::NoEvent(MissingEvent::NoRobot)));
        };
        if let Some(id) = unrecorded {
            // Megazord fans an event out as soon as a subscription exists: the instance that
            // made it may not have written it down yet (or never heard Megazord's answer). The
            // event is the resident's all the same, so a robot this service watches takes it;
            // an id for a robot it does not watch is another consumer's.
            if self.store().rule(robot_id).await?.is_none() {
                return Ok(Err(Rejection::UnknownSubscription(id)));
            }
            metrics::counter!(names::UNRECORDED_SUBSCRIPTION_MESSAGES).increment(1);
            tracing::debug!(
                subscriptionId = id,
                robotId = robot_id.get(),
                "a message of a subscription not written down (yet): taken by its robot"
            );
        }
        Ok(Ok(WatchedEvent {
            robot_id,
            incoming_event_id: source.id,
            outgoing_event_id: message.outgoing_event_id,
            event_name: source.event_name,
            occurred_at: source.created_at,
        }))
    }

    /// Reads the outgoing event behind a message's link (contracts §1.5); `Err` when Megazord
    /// could not be asked (try again later), `Ok(Err)` when the event cannot be had.
    async fn fetch_source_event(
        &self,
        link: Option<&str>,
        call_ref: Option<&str>,
    ) -> Result<Result<SourceEvent, MissingEvent>, TakeError> {
        let Some(link) = link else {
            return Ok(Err(MissingEvent::NoLink));
        };
        let quoted = quote_link(link);
        let Some(megazord) = self.megazord() else {
            return Ok(Err(MissingEvent::NoMegazord { link: quoted }));
        };
        let parsed = match OutgoingLink::parse(link) {
            Ok(parsed) => parsed,
            Err(e) => {
                let reason = match e {
                    MegazordError::InvalidLink { reason, .. } => reason,
                    other => other.to_string(),
                };
                return Ok(Err(MissingEvent::UnusableLink {
                    link: quoted,
                    reason,
                }));
            }
        };
        let call_ref = CallRef::from_attribute(call_ref);
        let outgoing = match megazord.outgoing(&parsed, &call_ref).await {
            Ok(outgoing) => outgoing,
            Err(e) if e.is_transient() => return Err(TakeError::Megazord(e)),
            Err(error) => {
                return Ok(Err(MissingEvent::ReadFailed {
                    link: quoted,
                    error,
                }));
            }
        };
        let Some(event) = outgoing.source_event else {
            return Ok(Err(MissingEvent::NotAtLink { link: quoted }));
        };
        Ok(Ok(SourceEvent {
            id: event.id.get(),
            robot_id: event.robot_id,
            event_name: event.event_name,
            created_at: event.created_at,
        }))
    }
}

fn reason_label(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::Unreadable(_) => "unreadable",
        Rejection::UnknownSubscription(_) => "unknown_subscription",
        Rejection::NoEvent(_) => "no_event",
    }
}

/// A message's link as a dead letter's reason or a log line quotes it: shortened, like any value
/// from outside, and without a password or query value should the link be a whole URL.
fn quote_link(link: &str) -> String {
    shorten_value(&redact_url(link))
}

#[cfg(test)]
mod tests {
    use super::quote_link;

    #[test]
    fn a_link_is_quoted_without_its_credentials() {
        assert_eq!(
            quote_link("/internal/v1/events/robots/1/subscriptions/2/outgoings/3"),
            "/internal/v1/events/robots/1/subscriptions/2/outgoings/3"
        );
        let quoted = quote_link("https://svc:hunter2@megazord.internal/x?token=abc");
        assert!(
            !quoted.contains("hunter2") && !quoted.contains("abc"),
            "{quoted}"
        );
        assert!(quoted.contains("megazord.internal"), "{quoted}");
        let quoted = quote_link("/outgoings/3?signature=s3cr3t");
        assert!(!quoted.contains("s3cr3t"), "{quoted}");
    }
}
