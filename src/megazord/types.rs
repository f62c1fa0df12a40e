//! What goes over the wire to and from Megazord (contracts §1.1–§1.6), and the values the client
//! hands back.
//!
//! Request bodies carry only the fields the Megazord DTOs declare (contracts §1.0: whether
//! undeclared fields are stripped or rejected is unknown). Responses are read tolerantly: only
//! the fields this service uses are required, everything else is optional or ignored.

use crate::domain::RobotId;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::error::MegazordError;

/// The header carrying the call reference on every request (contracts §1.0).
pub const CALL_REF_HEADER: &str = "Call-Ref";

/// The SQS message attribute carrying the call reference (contracts §2.2, §6 item 25).
pub const CALL_REF_ATTRIBUTE: &str = "callRef";

/// A call reference longer than this is not reused but replaced.
const CALL_REF_MAX_LEN: usize = 128;

/// The reference that ties the calls caused by one message or one run together in every
/// service's logs; sent as the `Call-Ref` header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallRef(String);

impl CallRef {
    /// A fresh reference: a UUID v7, so references sort by creation time.
    pub fn new() -> Self {
        CallRef(uuid::Uuid::now_v7().to_string())
    }

    /// Reuses a reference received elsewhere (a queue message attribute, an inbound header),
    /// or makes a fresh one when there is none or it cannot be sent as a header value.
    pub fn from_attribute(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v)
                if !v.is_empty()
                    && v.len() <= CALL_REF_MAX_LEN
                    && v.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                CallRef(v.to_string())
            }
            _ => CallRef::new(),
        }
    }

    /// Reuses the `callRef` string attribute of an SQS message (contracts §6 item 25), or makes
    /// a fresh reference when the message has none.
    pub fn from_message(message: &aws_sdk_sqs::types::Message) -> Self {
        let attribute = message
            .message_attributes()
            .and_then(|attributes| attributes.get(CALL_REF_ATTRIBUTE))
            .and_then(|value| value.string_value());
        CallRef::from_attribute(attribute)
    }

    /// The reference as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CallRef {
    fn default() -> Self {
        CallRef::new()
    }
}

impl fmt::Display for CallRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Body of `POST …/incomings` (`CreateIncomingEventBodyDto`, contracts §1.1, §6 item 7): no
/// `level` (the schema's applies) and no payload (Megazord cannot store one).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostIncomingBody<'a> {
    pub provider_name: &'a str,
    pub event_name: &'a str,
    pub reference_id: &'a str,
}

/// Body of `POST …/subscriptions` (`CreateSubscriptionDto`, contracts §1.3).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateSubscriptionBody<'a> {
    pub event_names: &'a [String],
    /// ISO 8601 with milliseconds, as JavaScript writes dates; Megazord does not persist it.
    pub until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<&'a str>,
}

/// An instant as JavaScript's `Date.toISOString()` writes it: `2025-11-20T09:30:00.000Z`.
pub(crate) fn iso_millis(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The id Megazord gives an event it stores (`incoming_event.id`): a sensor's event, or an alarm
/// this service posted. A type of its own so that it cannot be passed where one of this
/// service's row ids is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MegazordEventId(u64);

impl MegazordEventId {
    /// The event Megazord numbers `id`.
    pub const fn new(id: u64) -> Self {
        MegazordEventId(id)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MegazordEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A service subscription Megazord created (`SubscriptionDomain`, contracts §1.6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `event_subscription.id`: what queue messages name as `payload.subscriptionId`.
    pub id: u64,
    /// The robot, when the answer says.
    #[serde(default)]
    pub robot_id: Option<RobotId>,
    /// Whether it is active, when the answer says.
    #[serde(default)]
    pub is_active: Option<bool>,
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Megazord deactivated the subscription now (or had already: deletes are idempotent).
    Deleted,
    /// Megazord does not know it (404): it never existed for this robot, or is gone.
    AlreadyGone,
}

/// An incoming event (`IncomingEventDomain`, contracts §1.6): an answer of `POST …/incomings`,
/// an element of the history, or an outgoing event's `sourceEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingEvent {
    /// `incoming_event.id`.
    pub id: MegazordEventId,
    /// The robot, when the answer says.
    #[serde(default)]
    pub robot_id: Option<RobotId>,
    /// The event name, when the answer says.
    #[serde(default)]
    pub event_name: Option<String>,
    /// Who posted it, when the answer says.
    #[serde(default)]
    pub provider_name: Option<String>,
    /// The poster's reference (an alarm's `nta-…` identity); Megazord does not enforce it unique.
    #[serde(default)]
    pub reference_id: Option<String>,
    /// The level Megazord stored.
    #[serde(default)]
    pub level: Option<i64>,
    /// When Megazord stored it (whole seconds at Megazord: `TIMESTAMP(0)`).
    pub created_at: Timestamp,
}

/// An outgoing event (`OutgoingEventDomain`, contracts §1.5, §1.6), hydrated with its source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingEvent {
    /// `outgoing_event.id`.
    pub id: u64,
    /// The incoming event it was made from.
    #[serde(default)]
    pub source_event_id: Option<MegazordEventId>,
    /// The subscription it was made for.
    #[serde(default)]
    pub subscription_id: Option<u64>,
    /// `CREATED` and so on.
    #[serde(default)]
    pub status: Option<String>,
    /// When Megazord made it.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// The incoming event, when Megazord hydrated it.
    #[serde(default)]
    pub source_event: Option<IncomingEvent>,
}

/// Which outgoing event to read: the ids in a queue message's `link.link`
/// (`/internal/v1/events/robots/789/subscriptions/123/outgoings/9001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutgoingLink {
    /// The robot.
    pub robot_id: RobotId,
    /// The subscription.
    pub subscription_id: u64,
    /// The outgoing event.
    pub outgoing_id: u64,
}

impl OutgoingLink {
    /// Names an outgoing event by its ids.
    pub fn new(robot_id: RobotId, subscription_id: u64, outgoing_id: u64) -> Self {
        OutgoingLink {
            robot_id,
            subscription_id,
            outgoing_id,
        }
    }

    /// Reads a `link.link`: the path, or a whole URL whose path is the route (the host is
    /// ignored: the call always goes to the configured Megazord).
    pub fn parse(link: &str) -> Result<Self, MegazordError> {
        let invalid = |reason: &str| MegazordError::InvalidLink {
            link: link.to_string(),
            reason: reason.to_string(),
        };
        let path = match link.find("://") {
            Some(scheme_end) => {
                let rest = &link[scheme_end + 3..];
                rest.find('/').map_or("", |slash| &rest[slash..])
            }
            None => link,
        };
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let [
            "internal",
            "v1",
            "events",
            "robots",
            robot,
            "subscriptions",
            subscription,
            "outgoings",
            outgoing,
        ] = segments.as_slice()
        else {
            return Err(invalid(
                "expected /internal/v1/events/robots/:robotId/subscriptions/:subscriptionId/outgoings/:outgoingEventId",
            ));
        };
        Ok(OutgoingLink {
            robot_id: robot
                .parse()
                .map_err(|_| invalid("robotId is not a number"))?,
            subscription_id: subscription
                .parse()
                .map_err(|_| invalid("subscriptionId is not a number"))?,
            outgoing_id: outgoing
                .parse()
                .map_err(|_| invalid("outgoingEventId is not a number"))?,
        })
    }
}

impl From<(RobotId, u64, u64)> for OutgoingLink {
    fn from((robot_id, subscription_id, outgoing_id): (RobotId, u64, u64)) -> Self {
        OutgoingLink::new(robot_id, subscription_id, outgoing_id)
    }
}

impl fmt::Display for OutgoingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/internal/v1/events/robots/{}/subscriptions/{}/outgoings/{}",
            self.robot_id, self.subscription_id, self.outgoing_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_call_ref_must_be_a_sendable_header_value() {
        assert_eq!(CallRef::from_attribute(Some(" abc-1 ")).as_str(), "abc-1");
        for bad in [None, Some(""), Some("has space"), Some("naïve")] {
            let fresh = CallRef::from_attribute(bad);
            assert_eq!(fresh.as_str().len(), 36, "{bad:?} gives a fresh uuid");
        }
        assert_ne!(CallRef::new(), CallRef::new());
    }

    #[test]
    fn the_call_ref_attribute_of_a_queue_message_is_reused() {
        use aws_sdk_sqs::types::{Message, MessageAttributeValue};
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("from-megazord")
            .build()
            .unwrap();
        let message = Message::builder()
            .message_attributes(CALL_REF_ATTRIBUTE, attribute)
            .build();
        assert_eq!(CallRef::from_message(&message).as_str(), "from-megazord");
        let bare = Message::builder().build();
        assert_ne!(CallRef::from_message(&bare).as_str(), "");
    }

    #[test]
    fn request_bodies_carry_only_the_declared_fields() {
        let body = PostIncomingBody {
            provider_name: "azi-3-status-jobs",
            event_name: "NO_TOILET_ACTIVITY_ALARM",
            reference_id: "nta-789-2025-11-20-1763629200",
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"providerName":"azi-3-status-jobs","eventName":"NO_TOILET_ACTIVITY_ALARM","referenceId":"nta-789-2025-11-20-1763629200"}"#
        );
        let names = vec!["TOILET_ACTIVITY".to_string()];
        let until = "2025-11-20T21:00:00Z".parse().unwrap();
        let without_queue = CreateSubscriptionBody {
            event_names: &names,
            until: iso_millis(until),
            queue: None,
        };
        assert_eq!(
            serde_json::to_string(&without_queue).unwrap(),
            r#"{"eventNames":["TOILET_ACTIVITY"],"until":"2025-11-20T21:00:00.000Z"}"#
        );
        let with_queue = CreateSubscriptionBody {
            queue: Some("azi-3-status-jobs"),
            ..without_queue
        };
        assert!(
            serde_json::to_string(&with_queue)
                .unwrap()
                .ends_with(r#","queue":"azi-3-status-jobs"}"#)
        );
    }

    #[test]
    fn the_contract_example_outgoing_event_reads() {
        let body = r#"{"id":9001,"sourceEventId":456,"subscriptionId":123,"status":"CREATED",
          "createdAt":"2025-11-20T09:30:01.000Z","updatedAt":"2025-11-20T09:30:01.000Z",
          "sourceEvent":{"id":456,"robotId":789,"eventTypeId":31,"eventName":"TOILET_ACTIVITY",
            "level":10,"referenceId":"sensara-sse-event-id","providerId":2,"providerName":"Sensara",
            "createdAt":"2025-11-20T09:30:00.000Z","updatedAt":"2025-11-20T09:30:00.000Z"}}"#;
        let outgoing: OutgoingEvent = serde_json::from_str(body).unwrap();
        assert_eq!(outgoing.subscription_id, Some(123));
        let source = outgoing.source_event.unwrap();
        assert_eq!(
            (source.id, source.robot_id),
            (MegazordEventId::new(456), Some(RobotId::new(789)))
        );
        assert_eq!(source.created_at.to_string(), "2025-11-20T09:30:00Z");
    }

    #[test]
    fn links_read_as_paths_or_urls_and_name_their_fault() {
        let expected = OutgoingLink::new(RobotId::new(789), 123, 9001);
        for link in [
            "/internal/v1/events/robots/789/subscriptions/123/outgoings/9001",
            "internal/v1/events/robots/789/subscriptions/123/outgoings/9001/",
            "http://megazord-events:8080/internal/v1/events/robots/789/subscriptions/123/outgoings/9001",
        ] {
            assert_eq!(OutgoingLink::parse(link).unwrap(), expected, "{link}");
        }
        assert_eq!(
            OutgoingLink::parse(&expected.to_string()).unwrap(),
            expected
        );
        let error = OutgoingLink::parse("/internal/v1/events/robots/x/subscriptions/1/outgoings/2")
            .unwrap_err();
        assert!(
            error.to_string().contains("robotId is not a number"),
            "{error}"
        );
        assert!(OutgoingLink::parse("/internal/v1/events/robots/1/subscriptions/1").is_err());
    }
}
