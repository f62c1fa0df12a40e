//! The window state machine of one session (semantics §3, §4, §6).
//!
//! A [`SessionState`] holds the current window `[s, u]`. Every change is a method that takes the
//! input (an event instant, a rule change) and returns what it decided; nothing here reads a
//! clock. The live service persists the state between calls; `replay` drives it in one go
//! through [`crate::domain::evaluate`].
//!
//! ```
//! use azi3_status_jobs::domain::{EventClass, Gap, PartialFinalWindow, RuleInput, Session, SessionState};
//! use jiff::civil::date;
//!
//! let rule = RuleInput {
//!     timezone: "UTC".into(),
//!     start: "08:00".into(),
//!     end: "12:00".into(),
//!     ..RuleInput::default()
//! }
//! .validate()
//! .unwrap();
//! let session = Session::on(&rule, date(2025, 1, 1)).unwrap();
//! let mut state = SessionState::begin(session, rule.gap, rule.partial_final_window);
//! assert_eq!(state.window.end.to_string(), "2025-01-01T10:00:00Z");
//!
//! // An event at 09:00 restarts the window.
//! let nine = "2025-01-01T09:00:00Z".parse().unwrap();
//! assert_eq!(state.observe(nine), EventClass::Observed);
//! assert_eq!(state.window.end.to_string(), "2025-01-01T11:00:00Z");
//!
//! // Nothing by 11:00: the window closes with an alarm and the next one starts at 11:00.
//! let closed = state.close().unwrap();
//! assert!(closed.alarm.is_some());
//! assert_eq!(state.window.start.to_string(), "2025-01-01T11:00:00Z");
//! assert_eq!(state.window.end.to_string(), "2025-01-01T12:00:00Z");
//! ```

use std::fmt;

use jiff::{SignedDuration, Timestamp};

use super::alarm::{Alarm, AlarmIdentity};
use super::rule::{Gap, PartialFinalWindow};
use super::session::Session;

/// A span `[start, end]` in which one watched event is expected; both ends are included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// `s`: when the window opened.
    pub start: Timestamp,
    /// `u`: the deadline.
    pub end: Timestamp,
}

impl Window {
    /// Whether `t` satisfies the window: `s ≤ t ≤ u`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t <= self.end
    }

    /// `u − s`.
    pub fn length(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }
}

/// How a session ended, or that it is still running; the words of the `status_check.result`
/// column (semantics §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionResult {
    /// Still running.
    Pending,
    /// Ended without any alarm.
    Success,
    /// Ended with at least one alarm.
    AlarmRaised,
    /// The rule was disabled while the session ran.
    Disabled,
    /// The service could not monitor the session.
    Failed,
}

impl SessionResult {
    /// The column value: `PENDING`, `SUCCESS`, `ALARM_RAISED`, `DISABLED` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionResult::Pending => "PENDING",
            SessionResult::Success => "SUCCESS",
            SessionResult::AlarmRaised => "ALARM_RAISED",
            SessionResult::Disabled => "DISABLED",
            SessionResult::Failed => "FAILED",
        }
    }

    /// Reads a column value back; `None` for an unknown word.
    pub fn parse(s: &str) -> Option<SessionResult> {
        Some(match s {
            "PENDING" => SessionResult::Pending,
            "SUCCESS" => SessionResult::Success,
            "ALARM_RAISED" => SessionResult::AlarmRaised,
            "DISABLED" => SessionResult::Disabled,
            "FAILED" => SessionResult::Failed,
            _ => return None,
        })
    }
}

impl fmt::Display for SessionResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event instant falls relative to a session and its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// Outside `[S, E]`: not this session's event.
    Outside,
    /// In the session but before the current window (`t < s`), or after the session ended:
    /// recorded as late, never moves the window.
    Late,
    /// Inside the current window: the window restarts at `t`.
    Observed,
    /// After the current deadline (`u < t ≤ E`): the current window has to be closed first.
    Ahead,
}

/// A window that closed at its deadline without an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Closed {
    /// The window that closed.
    pub window: Window,
    /// The alarm it made due, if any.
    pub alarm: Option<Alarm>,
    /// The window that follows, or `None` when the session ended with it.
    pub next: Option<Window>,
}

/// The state of one session: its bounds, the current window and the alarms so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// The session; `end` may move when the rule's end changes mid-session.
    pub session: Session,
    /// The gap for windows opened from now on.
    pub gap: Gap,
    /// How a window cut short by the session end is treated.
    pub partial_final_window: PartialFinalWindow,
    /// The current window (the last one, once the session ended).
    pub window: Window,
    /// The gap the current window was opened with.
    pub window_gap: Gap,
    /// How many alarms were due so far.
    pub alarms: u32,
    /// `Pending` while running.
    pub result: SessionResult,
}

impl SessionState {
    /// The state at S: the first window is `[S, min(S + G, E)]`.
    pub fn begin(session: Session, gap: Gap, partial_final_window: PartialFinalWindow) -> Self {
        let window = window_from(session.start, gap, session.end);
        SessionState {
            session,
            gap,
            partial_final_window,
            window,
            window_gap: gap,
            alarms: 0,
            result: SessionResult::Pending,
        }
    }

    /// The state of a session watched only from `from` (a rule created or enabled after S,
    /// semantics §6): the first window is `[t, min(t + G, E)]` with `t` = `from` held within
    /// `[S, E]`, and nothing before `t` is evaluated.
    ///
    /// ```
    /// use azi3_status_jobs::domain::{Gap, PartialFinalWindow, RobotId, RuleInput, Session, SessionState};
    /// # let rule = RuleInput { robot_id: RobotId::new(7), timezone: "UTC".into(), start: "08:00".into(),
    /// #     end: "20:00".into(), gap: "2h".into(), watched_event: "TOILET_ACTIVITY".into(),
    /// #     alarm_event: "NO_TOILET_ACTIVITY_ALARM".into(), partial_final_window: "ignore".into(),
    /// #     enabled: true }.validate().unwrap();
    /// let session = Session::on(&rule, "2025-03-30".parse().unwrap()).unwrap();
    /// let t: jiff::Timestamp = "2025-03-30T10:15:00Z".parse().unwrap();
    /// let state = SessionState::begin_from(session, rule.gap, rule.partial_final_window, t);
    /// assert_eq!(state.window.start, t);
    /// assert_eq!(state.window.end.to_string(), "2025-03-30T12:15:00Z");
    /// // Before S it is the ordinary start.
    /// let early: jiff::Timestamp = "2025-03-30T07:00:00Z".parse().unwrap();
    /// assert_eq!(
    ///     SessionState::begin_from(session, rule.gap, rule.partial_final_window, early),
    ///     SessionState::begin(session, rule.gap, rule.partial_final_window),
    /// );
    /// ```
    pub fn begin_from(
        session: Session,
        gap: Gap,
        partial_final_window: PartialFinalWindow,
        from: Timestamp,
    ) -> Self {
        let mut state = SessionState::begin(session, gap, partial_final_window);
        let t = from.clamp(session.start, session.end);
        state.window = window_from(t, gap, session.end);
        state
    }

    /// Whether the session still runs.
    pub fn is_running(&self) -> bool {
        self.result == SessionResult::Pending
    }

    /// The deadline `u` of the current window while the session runs.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.is_running().then_some(self.window.end)
    }

    /// Whether the current window may be closed at `now` (`now ≥ u`). The live service passes
    /// its clock minus the grace period.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.deadline().is_some_and(|u| now >= u)
    }

    /// Where `t` falls; changes nothing.
    pub fn classify(&self, t: Timestamp) -> EventClass {
        if !self.session.contains(t) {
            EventClass::Outside
        } else if !self.is_running() || t < self.window.start {
            EventClass::Late
        } else if t <= self.window.end {
            EventClass::Observed
        } else {
            EventClass::Ahead
        }
    }

    /// Takes an event at `t`. When it is [`EventClass::Observed`] the window becomes
    /// `[t, min(t + G, E)]`; in every other case nothing changes and the class says why.
    pub fn observe(&mut self, t: Timestamp) -> EventClass {
        let class = self.classify(t);
        if class == EventClass::Observed {
            self.restart_at(t);
        }
        class
    }

    /// Opens the window `[t, min(t + G, E)]`; `t` has been classified as observed.
    pub(crate) fn restart_at(&mut self, t: Timestamp) {
        self.window = window_from(t, self.gap, self.session.end);
        self.window_gap = self.gap;
    }

    /// Closes the current window at its deadline (the caller has established that no event
    /// with `s ≤ t ≤ u` exists). Returns `None` when the session has already ended.
    ///
    /// A full window makes an alarm due. A window cut short by E does so only with
    /// [`PartialFinalWindow::Alarm`], and never when it has zero length. When `u = E` the
    /// session ends with `ALARM_RAISED` or `SUCCESS`; otherwise the next window is
    /// `[u, min(u + G, E)]`.
    pub fn close(&mut self) -> Option<Closed> {
        if !self.is_running() {
            return None;
        }
        let window = self.window;
        let length = window.length();
        let full = length >= self.window_gap.duration();
        let due = full
            || (self.partial_final_window == PartialFinalWindow::Alarm && length.is_positive());
        let alarm = due.then_some(Alarm {
            identity: AlarmIdentity {
                robot_id: self.session.robot_id,
                date: self.session.date,
                window_start: window.start,
            },
            window,
        });
        if due {
            self.alarms += 1;
        }
        let next = if window.end >= self.session.end {
            self.result = if self.alarms > 0 {
                SessionResult::AlarmRaised
            } else {
                SessionResult::Success
            };
            None
        } else {
            self.window = window_from(window.end, self.gap, self.session.end);
            self.window_gap = self.gap;
            Some(self.window)
        };
        Some(Closed {
            window,
            alarm,
            next,
        })
    }

    /// The rule's gap changed: it applies from the next window on (semantics §6).
    pub fn change_gap(&mut self, gap: Gap) {
        self.gap = gap;
    }

    /// The rule's end changed mid-session (semantics §6): the session end becomes `end` (never
    /// before the current window's start) and the current window is clamped to it again.
    pub fn change_end(&mut self, end: Timestamp) {
        if !self.is_running() {
            return;
        }
        self.session.end = end.max(self.window.start);
        self.window = window_from(self.window.start, self.window_gap, self.session.end);
    }

    /// The rule was disabled mid-session: the session ends with `DISABLED`.
    pub fn disable(&mut self) {
        if self.is_running() {
            self.result = SessionResult::Disabled;
        }
    }

    /// The session could not be monitored: it ends with `FAILED`.
    pub fn fail(&mut self) {
        if self.is_running() {
            self.result = SessionResult::Failed;
        }
    }
}

/// `[s, min(s + gap, end)]`.
fn window_from(start: Timestamp, gap: Gap, end: Timestamp) -> Window {
    let nominal = start.checked_add(gap.duration()).unwrap_or(end);
    Window {
        start,
        end: nominal.min(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RobotId;
    use jiff::civil::date;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn state(start: &str, end: &str, gap: u32, partial: PartialFinalWindow) -> SessionState {
        let session = Session {
            robot_id: RobotId::new(3),
            date: date(2025, 1, 1),
            start: ts(start),
            end: ts(end),
        };
        SessionState::begin(session, Gap::from_minutes(gap).unwrap(), partial)
    }

    #[test]
    fn first_window_is_clamped_when_gap_exceeds_the_session() {
        let s = state(
            "2025-01-01T08:00:00Z",
            "2025-01-01T09:00:00Z",
            120,
            PartialFinalWindow::Ignore,
        );
        assert_eq!(s.window.end, ts("2025-01-01T09:00:00Z"));
    }

    #[test]
    fn event_at_the_deadline_satisfies_the_window() {
        let mut s = state(
            "2025-01-01T08:00:00Z",
            "2025-01-01T20:00:00Z",
            120,
            PartialFinalWindow::Ignore,
        );
        assert_eq!(s.observe(ts("2025-01-01T10:00:00Z")), EventClass::Observed);
        assert_eq!(s.window.start, ts("2025-01-01T10:00:00Z"));
    }

    #[test]
    fn classes_before_within_after_and_outside() {
        let mut s = state(
            "2025-01-01T08:00:00Z",
            "2025-01-01T20:00:00Z",
            120,
            PartialFinalWindow::Ignore,
        );
        s.observe(ts("2025-01-01T09:00:00Z"));
        assert_eq!(s.classify(ts("2025-01-01T08:30:00Z")), EventClass::Late);
        assert_eq!(s.classify(ts("2025-01-01T12:00:00Z")), EventClass::Ahead);
        assert_eq!(s.classify(ts("2025-01-01T07:59:59Z")), EventClass::Outside);
        assert_eq!(s.classify(ts("2025-01-01T20:00:01Z")), EventClass::Outside);
        assert_eq!(s.observe(ts("2025-01-01T08:30:00Z")), EventClass::Late);
        assert_eq!(s.window.start, ts("2025-01-01T09:00:00Z"));
    }

    #[test]
    fn partial_final_window_alarms_only_when_asked_and_never_at_zero_length() {
        for (partial, expected) in [
            (PartialFinalWindow::Ignore, 0),
            (PartialFinalWindow::Alarm, 1),
        ] {
            let mut s = state("2025-01-01T08:00:00Z", "2025-01-01T09:00:00Z", 120, partial);
            let closed = s.close().unwrap();
            assert_eq!(u32::from(closed.alarm.is_some()), expected);
            assert_eq!(closed.next, None);
            assert!(!s.is_running());
        }
        let mut s = state(
            "2025-01-01T08:00:00Z",
            "2025-01-01T09:00:00Z",
            60,
            PartialFinalWindow::Alarm,
        );
        assert_eq!(s.observe(ts("2025-01-01T09:00:00Z")), EventClass::Observed);
        assert_eq!(s.window.length(), SignedDuration::ZERO);
        let closed = s.close().unwrap();
        assert_eq!(closed.alarm, None);
        assert_eq!(s.result, SessionResult::Success);
    }

    #[test]
    fn a_new_gap_applies_from_the_next_window() {
        let mut s = state(
            "2025-01-01T08:00:00Z",
            "2025-01-01T20:00:00Z",
            120,
            PartialFinalWindow::Ignore,
        );
        s.change_gap(Gap::from_minutes(60).unwrap());
        assert_eq!(s.window.end, ts("2025-01-01T10:00:00Z"));
        let closed = s.close().unwrap();
        assert!(closed.alarm.is_some(), "the current window keeps its gap");
        assert_eq!(s.window.end, ts("2025-01-01T11:00:00Z"));
    }

    #[test]
    fn a_new_end_reclamps_the_current_window() {
        let mut s = state(
            "2025-01-01T08:00:00Z",
            "2025-01-01T20:00:00Z",
            120,
            PartialFinalWindow::Ignore,
        );
        s.change_end(ts("2025-01-01T09:00:00Z"));
        assert_eq!(s.window.end, ts("2025-01-01T09:00:00Z"));
        s.change_end(ts("2025-01-01T21:00:00Z"));
        assert_eq!(s.window.end, ts("2025-01-01T10:00:00Z"));
        s.change_end(ts("2025-01-01T07:00:00Z"));
        assert_eq!(s.session.end, s.window.start);
        assert_eq!(s.close().unwrap().alarm, None);
        assert_eq!(s.result, SessionResult::Success);
    }

    #[test]
    fn disabling_ends_the_session_and_late_events_stay_late() {
        let mut s = state(
            "2025-01-01T08:00:00Z",
            "2025-01-01T20:00:00Z",
            120,
            PartialFinalWindow::Ignore,
        );
        s.disable();
        assert_eq!(s.result, SessionResult::Disabled);
        assert_eq!(s.close(), None);
        assert_eq!(s.observe(ts("2025-01-01T09:00:00Z")), EventClass::Late);
        assert_eq!(s.deadline(), None);
    }
}
