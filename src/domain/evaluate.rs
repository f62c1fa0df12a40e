//! The reference algorithm of semantics §5: one session with perfect knowledge of its events.
//!
//! ```
//! use azi3_status_jobs::domain::{evaluate, RuleInput, Session, SessionResult};
//! use jiff::civil::date;
//! use jiff::Timestamp;
//!
//! // The worked example of semantics §7.
//! let rule = RuleInput {
//!     timezone: "Europe/Amsterdam".into(),
//!     start: "08:00".into(),
//!     end: "20:00".into(),
//!     ..RuleInput::default()
//! }
//! .validate()
//! .unwrap();
//! let session = Session::on(&rule, date(2025, 3, 30)).unwrap();
//! let events: Vec<Timestamp> = ["2025-03-30T07:10:00Z", "2025-03-30T07:40:00Z", "2025-03-30T11:00:00Z"]
//!     .iter()
//!     .map(|t| t.parse().unwrap())
//!     .collect();
//! let outcome = evaluate(&rule, session, &events);
//! assert_eq!(outcome.result, SessionResult::AlarmRaised);
//! assert_eq!(outcome.alarms.len(), 4);
//! assert_eq!(outcome.alarms[0].reference_id(), "nta-1-2025-03-30-1743320400");
//! ```

use jiff::Timestamp;

use super::alarm::Alarm;
use super::rule::Rule;
use super::session::Session;
use super::window::{Closed, EventClass, SessionResult, SessionState, Window};

/// One thing that happened while evaluating a session, in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// An event at `at` ended `replaced` early and opened `window`.
    Observed {
        /// The event instant.
        at: Timestamp,
        /// The window the event satisfied.
        replaced: Window,
        /// The window it opened.
        window: Window,
    },
    /// A window reached its deadline without an event.
    Closed(Closed),
}

/// What a session came to with perfect knowledge of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOutcome {
    /// The session.
    pub session: Session,
    /// How many of the given events lie in `[S, E]`.
    pub events: usize,
    /// The alarms that were due, in time order.
    pub alarms: Vec<Alarm>,
    /// `SUCCESS` or `ALARM_RAISED`.
    pub result: SessionResult,
}

/// Evaluates `session` of `rule` over `events`: instants in ascending order, each a distinct
/// event; events outside `[S, E]` are passed over.
pub fn evaluate(rule: &Rule, session: Session, events: &[Timestamp]) -> SessionOutcome {
    evaluate_steps(rule, session, events, |_| {})
}

/// As [`evaluate`], calling `on_step` for every observation and every closed window, so that a
/// caller can draw the session's timeline.
pub fn evaluate_steps(
    rule: &Rule,
    session: Session,
    events: &[Timestamp],
    on_step: impl FnMut(Step),
) -> SessionOutcome {
    evaluate_from(
        SessionState::begin(session, rule.gap, rule.partial_final_window),
        events,
        on_step,
    )
}

/// As [`evaluate_steps`], from `state` as the session began (its first window): a session
/// that began when its rule was created or enabled mid-session is watched from that instant
/// ([`SessionState::begin_from`]), not from S.
pub fn evaluate_from(
    mut state: SessionState,
    events: &[Timestamp],
    mut on_step: impl FnMut(Step),
) -> SessionOutcome {
    let session = state.session;
    let mut alarms = Vec::new();
    let mut counted = 0;
    for &t in events {
        loop {
            match state.classify(t) {
                EventClass::Ahead => close(&mut state, &mut alarms, &mut on_step),
                EventClass::Observed => {
                    counted += 1;
                    let replaced = state.window;
                    state.restart_at(t);
                    on_step(Step::Observed {
                        at: t,
                        replaced,
                        window: state.window,
                    });
                    break;
                }
                EventClass::Late => {
                    // Sorted input cannot be late for a running session; count it all the same.
                    counted += 1;
                    break;
                }
                EventClass::Outside => break,
            }
        }
    }
    while state.is_running() {
        close(&mut state, &mut alarms, &mut on_step);
    }
    SessionOutcome {
        session,
        events: counted,
        alarms,
        result: state.result,
    }
}

/// Closes the current window of a running session, keeping its alarm.
fn close(state: &mut SessionState, alarms: &mut Vec<Alarm>, on_step: &mut impl FnMut(Step)) {
    let closed = state
        .close()
        .expect("a running session always has a window to close");
    if let Some(alarm) = closed.alarm {
        alarms.push(alarm);
    }
    on_step(Step::Closed(closed));
}
