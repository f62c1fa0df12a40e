//! What can go wrong talking to Megazord, and which of it is worth trying again.

use crate::domain::RobotId;
use std::fmt;

/// One Megazord route this client calls; names the route in errors, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /internal/v1/events/robots/:robotId/incomings` (contracts §1.1).
    PostIncoming,
    /// `GET /internal/v1/events/robots/:robotId/incomings` (contracts §1.2).
    GetIncomings,
    /// `POST /internal/v1/events/robots/:robotId/subscriptions` (contracts §1.3).
    CreateSubscription,
    /// `DELETE /internal/v1/events/robots/:robotId/subscriptions/:subscriptionId` (contracts §1.4).
    DeleteSubscription,
    /// `GET …/subscriptions/:subscriptionId/outgoings/:outgoingEventId` (contracts §1.5).
    GetOutgoing,
}

impl Route {
    /// Every route, in the order of contracts §1.
    pub const ALL: [Route; 5] = [
        Route::PostIncoming,
        Route::GetIncomings,
        Route::CreateSubscription,
        Route::DeleteSubscription,
        Route::GetOutgoing,
    ];

    /// The short label used for the `route` metric label and the `route` log field.
    pub fn label(self) -> &'static str {
        match self {
            Route::PostIncoming => "post_incoming",
            Route::GetIncomings => "get_incomings",
            Route::CreateSubscription => "create_subscription",
            Route::DeleteSubscription => "delete_subscription",
            Route::GetOutgoing => "get_outgoing",
        }
    }

    /// The method and path template, as the contracts name the route.
    pub fn template(self) -> &'static str {
        match self {
            Route::PostIncoming => "POST /internal/v1/events/robots/:robotId/incomings",
            Route::GetIncomings => "GET /internal/v1/events/robots/:robotId/incomings",
            Route::CreateSubscription => "POST /internal/v1/events/robots/:robotId/subscriptions",
            Route::DeleteSubscription => {
                "DELETE /internal/v1/events/robots/:robotId/subscriptions/:subscriptionId"
            }
            Route::GetOutgoing => {
                "GET /internal/v1/events/robots/:robotId/subscriptions/:subscriptionId/outgoings/:outgoingEventId"
            }
        }
    }

    /// Whether a 404 here means a provider or an event schema is missing at Megazord, which an
    /// operator can fix while the call waits (contracts §6 item 20), rather than a final answer.
    pub(crate) fn retries_not_found(self) -> bool {
        matches!(self, Route::PostIncoming | Route::CreateSubscription)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.template())
    }
}

/// A failed Megazord call. Every variant names the route and the robot; those carrying an HTTP
/// answer also give the status and the start of the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MegazordError {
    /// Megazord refused the request for good (400 and other 4xx that retrying cannot change):
    /// a bug or a configuration error. Never retried.
    #[error("{route} (robot {robot_id}) rejected with {status}: {body}")]
    Rejected {
        /// The route called.
        route: Route,
        /// The robot in the path.
        robot_id: RobotId,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// Megazord kept answering with a status worth retrying (5xx, or 404 on a POST while a
    /// provider or schema is missing) until the attempts ran out.
    #[error("{route} (robot {robot_id}) answered {status} after {attempts} attempt(s): {body}")]
    Unavailable {
        /// The route called.
        route: Route,
        /// The robot in the path.
        robot_id: RobotId,
        /// The last HTTP status.
        status: u16,
        /// The start of the last response body.
        body: String,
        /// How many requests were made.
        attempts: u32,
    },
    /// The last attempt got no complete answer within the request timeout.
    #[error("{route} (robot {robot_id}) timed out after {timeout_ms} ms, {attempts} attempt(s)")]
    Timeout {
        /// The route called.
        route: Route,
        /// The robot in the path.
        robot_id: RobotId,
        /// The per-request timeout.
        timeout_ms: u64,
        /// How many requests were made.
        attempts: u32,
    },
    /// The last attempt could not connect or the connection broke.
    #[error("{route} (robot {robot_id}) connection failed after {attempts} attempt(s): {reason}")]
    Connection {
        /// The route called.
        route: Route,
        /// The robot in the path.
        robot_id: RobotId,
        /// What the HTTP library reported.
        reason: String,
        /// How many requests were made.
        attempts: u32,
    },
    /// A 2xx answer whose body is not the JSON the contract describes.
    #[error(
        "{route} (robot {robot_id}) answered {status} with an unreadable body ({reason}): {body}"
    )]
    InvalidResponse {
        /// The route called.
        route: Route,
        /// The robot in the path.
        robot_id: RobotId,
        /// The HTTP status.
        status: u16,
        /// Why the body cannot be read.
        reason: String,
        /// The start of the response body.
        body: String,
    },
    /// A `link.link` of a queue message that does not name an outgoing event.
    #[error("not an outgoing-event link: {link:?}: {reason}")]
    InvalidLink {
        /// The link as received.
        link: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings cannot make a client.
    #[error("megazord.{key}: {reason}")]
    InvalidSettings {
        /// The setting at fault.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl MegazordError {
    /// Whether a later call may succeed without anyone changing anything: Megazord was
    /// unavailable, slow or unreachable. False for rejections, unreadable answers and bad input.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MegazordError::Unavailable { .. }
                | MegazordError::Timeout { .. }
                | MegazordError::Connection { .. }
        )
    }

    /// Whether Megazord refused this call for something of the call's own (the robot, the
    /// event, the body): trying again cannot help, and nobody else's calls are affected. A
    /// refused token (401, 403, 407), an answer nobody could read (a proxy's error page with a
    /// 2xx) or a transient failure is everyone's problem, not the call's: a session failing so
    /// waits with everyone else's instead of ending as `FAILED`.
    pub fn is_refusal_of_the_call(&self) -> bool {
        match self {
            MegazordError::Rejected { status, .. } => !matches!(status, 401 | 403 | 407),
            MegazordError::InvalidLink { .. } | MegazordError::InvalidSettings { .. } => true,
            MegazordError::Unavailable { .. }
            | MegazordError::Timeout { .. }
            | MegazordError::Connection { .. }
            | MegazordError::InvalidResponse { .. } => false,
        }
    }

    /// The HTTP status of the last answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            MegazordError::Rejected { status, .. }
            | MegazordError::Unavailable { status, .. }
            | MegazordError::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The route the error is about, when it comes from a call.
    pub fn route(&self) -> Option<Route> {
        match self {
            MegazordError::Rejected { route, .. }
            | MegazordError::Unavailable { route, .. }
            | MegazordError::Timeout { route, .. }
            | MegazordError::Connection { route, .. }
            | MegazordError::InvalidResponse { route, .. } => Some(*route),
            MegazordError::InvalidLink { .. } | MegazordError::InvalidSettings { .. } => None,
        }
    }
}

/// At most this many bytes of a response body go into an error or a log line.
const BODY_EXCERPT_BYTES: usize = 300;

/// The start of a response body, cut on a character boundary, for errors and logs.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= BODY_EXCERPT_BYTES {
        return text.to_string();
    }
    let cut = (0..=BODY_EXCERPT_BYTES)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_body_is_cut_on_a_character_boundary() {
        let body = "é".repeat(400);
        let excerpt = body_excerpt(body.as_bytes());
        assert!(excerpt.ends_with('…'));
        assert!(excerpt.len() <= BODY_EXCERPT_BYTES + '…'.len_utf8());
        assert_eq!(body_excerpt(b"  short  "), "short");
    }

    #[test]
    fn errors_name_route_robot_status_and_body() {
        let error = MegazordError::Rejected {
            route: Route::PostIncoming,
            robot_id: RobotId::new(789),
            status: 400,
            body: r#"{"message":"referenceId must be a string"}"#.into(),
        };
        assert_eq!(
            error.to_string(),
            "POST /internal/v1/events/robots/:robotId/incomings (robot 789) rejected with 400: \
             {\"message\":\"referenceId must be a string\"}"
        );
        assert!(!error.is_transient());
        assert!(error.is_refusal_of_the_call());
    }

    #[test]
    fn only_a_refusal_of_the_call_itself_is_the_calls_own() {
        let rejected = |status| MegazordError::Rejected {
            route: Route::GetIncomings,
            robot_id: RobotId::new(5),
            status,
            body: String::new(),
        };
        for status in [400, 404, 409, 422] {
            assert!(rejected(status).is_refusal_of_the_call(), "{status}");
        }
        // A refused token is the service's problem with every robot, not this robot's.
        for status in [401, 403, 407] {
            assert!(!rejected(status).is_refusal_of_the_call(), "{status}");
        }
        let proxy_page = MegazordError::InvalidResponse {
            route: Route::GetIncomings,
            robot_id: RobotId::new(5),
            status: 200,
            reason: "expected value at line 1 column 1".into(),
            body: "<html>".into(),
        };
        assert!(!proxy_page.is_refusal_of_the_call());
    }
}
