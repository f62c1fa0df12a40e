//! Alarm identity and reference id (semantics §4).

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;

use super::RobotId;
use super::window::Window;

/// What makes an alarm unique: robot, session date and window start. One alarm is ever posted
/// per identity.
///
/// ```
/// use azi3_status_jobs::domain::{AlarmIdentity, RobotId};
/// use jiff::civil::date;
///
/// let id = AlarmIdentity {
///     robot_id: RobotId::new(1),
///     date: date(2025, 3, 30),
///     window_start: "2025-03-30T07:40:00Z".parse().unwrap(),
/// };
/// assert_eq!(id.reference_id(), "nta-1-2025-03-30-1743320400");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlarmIdentity {
    /// The robot of the session.
    pub robot_id: RobotId,
    /// The local date of the session.
    pub date: Date,
    /// The start `s` of the window that passed without an event.
    pub window_start: Timestamp,
}

impl AlarmIdentity {
    /// The reference id posted with the alarm: `nta-<robot_id>-<YYYY-MM-DD>-<s as unix seconds>`.
    pub fn reference_id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for AlarmIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nta-{}-{}-{}",
            self.robot_id,
            self.date,
            self.window_start.as_second()
        )
    }
}

/// An alarm that is due: its identity and the window that passed without an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alarm {
    /// Robot, date and window start.
    pub identity: AlarmIdentity,
    /// The window `[s, u]` that closed without an event.
    pub window: Window,
}

impl Alarm {
    /// The reference id posted with the alarm; see [`AlarmIdentity::reference_id`].
    pub fn reference_id(&self) -> String {
        self.identity.reference_id()
    }
}
