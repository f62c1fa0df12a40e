//! The monitoring core: rule, session, window state machine, alarms and the reference
//! algorithm. Pure: no I/O, no async, no clock reads; every decision is a function of the
//! state, the input and, where time matters, an instant passed in by the caller.
//!
//! The contract it implements is `spec/monitoring-semantics.md`; section numbers in the docs
//! below refer to it.

mod alarm;
mod evaluate;
mod rule;
mod session;
mod window;

pub use alarm::{Alarm, AlarmIdentity};
pub use evaluate::{SessionOutcome, Step, evaluate, evaluate_steps};
pub use rule::{
    DEFAULT_ALARM_EVENT, DEFAULT_GAP_MINUTES, DEFAULT_WATCHED_EVENT, Gap, PartialFinalWindow,
    RobotId, Rule, RuleError, RuleInput, parse_time_of_day, parse_timezone,
};
pub use session::{Session, resolve};
pub use window::{Closed, EventClass, SessionResult, SessionState, Window};
