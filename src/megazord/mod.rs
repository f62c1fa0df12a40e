//! The Megazord Events client (contracts §1): service subscriptions, the alarm post, the event
//! history and the outgoing-event lookup. Every call carries a `Call-Ref`, has a timeout and
//! retries with exponential backoff and jitter what retrying can fix (contracts §6 item 20).
//!
//! ```no_run
//! # async fn example() -> Result<(), azi3_status_jobs::megazord::MegazordError> {
//! use azi3_status_jobs::domain::RobotId;
//! use azi3_status_jobs::megazord::{CallRef, MegazordClient, MegazordSettings};
//!
//! let client = MegazordClient::new(MegazordSettings {
//!     base_url: "http://megazord-events:8080".into(),
//!     ..MegazordSettings::default()
//! })?;
//! let call_ref = CallRef::new();
//! let alarm = client
//!     .post_event(RobotId::new(789), "NO_TOILET_ACTIVITY_ALARM", "nta-789-2025-11-20-1763629200", &call_ref)
//!     .await?;
//! println!("alarm stored as incoming event {}", alarm.id);
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod types;

pub use client::{MegazordClient, MegazordSettings, QUERY_CREATED_SINCE, QUERY_EVENT_NAME};
pub use error::{MegazordError, Route};
pub use types::{
    CALL_REF_ATTRIBUTE, CALL_REF_HEADER, CallRef, Deletion, IncomingEvent, MegazordEventId,
    OutgoingEvent, OutgoingLink, Subscription,
};
