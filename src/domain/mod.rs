//! The monitoring core: rule, session, window state machine, alarms and the reference
//! algorithm. Pure: no I/O, no async, no clock reads; every decision is a function of the
//! state, the input and, where time matters, an instant passed in by the caller.
//!
//! The contract it implements is `docs/semantics.md`; section numbers in the docs
//! below refer to it.

mod alarm;
mod evaluate;
mod instant;
mod robot;
mod rule;
mod session;
mod window;

pub use alarm::{Alarm, AlarmIdentity};
pub use evaluate::{SessionOutcome, Step, evaluate, evaluate_from, evaluate_steps};
pub use instant::{check_instant, parse_instant};
pub use robot::{NotARobotId, ROBOT_ID_RANGE, RobotId};
pub use rule::{
    DEFAULT_ALARM_EVENT, DEFAULT_GAP_MINUTES, DEFAULT_WATCHED_EVENT, Gap, PartialFinalWindow, Rule,
    RuleError, RuleInput, parse_time_of_day, parse_timezone,
};
pub use session::{Session, resolve};
pub use window::{Closed, EventClass, SessionResult, SessionState, Window};

/// How many characters of a refused value an error message quotes.
pub const QUOTED_VALUE_LIMIT: usize = 200;

/// `value` as an error message quotes it: at most [`QUOTED_VALUE_LIMIT`] characters, and `…`
/// when cut, so that a message never grows with the input it refuses.
///
/// ```
/// use azi3_status_jobs::domain::shorten_value;
///
/// assert_eq!(shorten_value("short"), "short");
/// let long = "é".repeat(300);
/// let quoted = shorten_value(&long);
/// assert_eq!(quoted.chars().count(), 201);
/// assert!(quoted.ends_with('…'));
/// ```
pub fn shorten_value(value: &str) -> String {
    match value.char_indices().nth(QUOTED_VALUE_LIMIT) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}…", &value[..cut]),
    }
}
