//! Sessions: one rule on one local calendar date, the span `[S, E]` (semantics §2).
//!
//! ```
//! use azi3_status_jobs::domain::{RuleInput, Session};
//! use jiff::civil::date;
//!
//! let rule = RuleInput {
//!     timezone: "Europe/Amsterdam".into(),
//!     start: "08:00".into(),
//!     end: "20:00".into(),
//!     ..RuleInput::default()
//! }
//! .validate()
//! .unwrap();
//! let session = Session::on(&rule, date(2025, 3, 30)).unwrap();
//! assert_eq!(session.start.to_string(), "2025-03-30T06:00:00Z");
//! assert_eq!(session.end.to_string(), "2025-03-30T18:00:00Z");
//! ```

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use super::RobotId;
use super::rule::Rule;

/// Turns local date `date` and local time `time` in `tz` into an instant, the way semantics §2 says:
/// a time skipped by a forward jump moves forward by the jump, a time that happens twice takes
/// the earlier instant (`jiff`'s compatible disambiguation). `None` only outside jiff's range.
///
/// ```
/// use azi3_status_jobs::domain::resolve;
/// use jiff::civil::{date, time};
/// use jiff::tz::TimeZone;
///
/// let ams = TimeZone::get("Europe/Amsterdam").unwrap();
/// // 02:30 does not exist on 2025-03-30: it becomes 03:30 CEST.
/// assert_eq!(resolve(&ams, date(2025, 3, 30), time(2, 30, 0, 0)).unwrap().to_string(), "2025-03-30T01:30:00Z");
/// // 02:30 happens twice on 2025-10-26: the earlier one, CEST.
/// assert_eq!(resolve(&ams, date(2025, 10, 26), time(2, 30, 0, 0)).unwrap().to_string(), "2025-10-26T00:30:00Z");
/// ```
pub fn resolve(tz: &TimeZone, date: Date, time: Time) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(date.to_datetime(time))
        .compatible()
        .ok()
}

/// One rule on one local date: the instants `start` (S) and `end` (E), `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Session {
    /// The robot of the rule.
    pub robot_id: RobotId,
    /// The local calendar date D the session belongs to (the date of S).
    pub date: Date,
    /// S: the instant monitoring starts.
    pub start: Timestamp,
    /// E: the instant monitoring ends.
    pub end: Timestamp,
}

impl Session {
    /// The session of `rule` on local date `date`, or `None` when that date has none:
    /// the date does not exist in the zone, or a clock jump makes `E ≤ S`.
    ///
    /// Whether the rule is enabled is not looked at here; that is the caller's business.
    ///
    /// ```
    /// use azi3_status_jobs::domain::{RuleInput, Session};
    /// use jiff::civil::date;
    ///
    /// // Samoa skipped 2011-12-30 entirely.
    /// let rule = RuleInput {
    ///     timezone: "Pacific/Apia".into(),
    ///     start: "08:00".into(),
    ///     end: "20:00".into(),
    ///     ..RuleInput::default()
    /// }
    /// .validate()
    /// .unwrap();
    /// assert!(Session::on(&rule, date(2011, 12, 30)).is_none());
    /// assert!(Session::on(&rule, date(2011, 12, 31)).is_some());
    /// ```
    pub fn on(rule: &Rule, date: Date) -> Option<Session> {
        Session::from_parts(rule.robot_id, &rule.timezone, rule.start, rule.end, date)
    }

    /// As [`Session::on`], from the rule's parts.
    pub fn from_parts(
        robot_id: RobotId,
        tz: &TimeZone,
        start_time: Time,
        end_time: Time,
        date: Date,
    ) -> Option<Session> {
        let start = resolve(tz, date, start_time)?;
        if tz.to_datetime(start).date() != date {
            return None;
        }
        let end_date = if end_time > start_time {
            date
        } else {
            date.tomorrow().ok()?
        };
        let end = resolve(tz, end_date, end_time)?;
        if end <= start {
            return None;
        }
        Some(Session {
            robot_id,
            date,
            start,
            end,
        })
    }

    /// Whether instant `t` lies in `[S, E]` (both ends included).
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t <= self.end
    }

    /// The sessions of `rule` for every local date from `from` to `to`, inclusive, in date order.
    pub fn between(rule: &Rule, from: Date, to: Date) -> impl Iterator<Item = Session> + '_ {
        from.series(jiff::Span::new().days(1))
            .take_while(move |d| *d <= to)
            .filter_map(move |d| Session::on(rule, d))
    }

    /// The sessions of `rule` that contain instant `t`, in date order: at most two (the session
    /// of the local date of `t`, and an earlier one when sessions cross midnight or touch).
    ///
    /// The earlier one is usually of the day before, but its end can lie two local dates after
    /// its start when the date in between does not exist (Pacific/Apia skipped 2011-12-30), so
    /// the two days before are looked at.
    pub fn containing(rule: &Rule, t: Timestamp) -> impl Iterator<Item = Session> + '_ {
        let local = rule.timezone.to_datetime(t).date();
        (0..=2)
            .rev()
            .filter_map(move |back| local.checked_sub(jiff::Span::new().days(back)).ok())
            .filter_map(move |d| Session::on(rule, d))
            .filter(move |s| s.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RuleInput;
    use jiff::civil::date;

    fn rule(tz: &str, start: &str, end: &str) -> Rule {
        RuleInput {
            timezone: tz.into(),
            start: start.into(),
            end: end.into(),
            ..RuleInput::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn containing_finds_the_session_of_the_day_before_across_midnight() {
        let r = rule("Europe/Amsterdam", "22:00", "06:00");
        let t: Timestamp = "2025-06-02T01:00:00Z".parse().unwrap();
        let found: Vec<_> = Session::containing(&r, t).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].date, date(2025, 6, 1));
    }

    #[test]
    fn containing_finds_both_sessions_where_full_days_touch() {
        let r = rule("Europe/Amsterdam", "08:00", "08:00");
        let t: Timestamp = "2025-06-02T06:00:00Z".parse().unwrap();
        let dates: Vec<_> = Session::containing(&r, t).map(|s| s.date).collect();
        assert_eq!(dates, vec![date(2025, 6, 1), date(2025, 6, 2)]);
    }

    #[test]
    fn between_is_inclusive_and_skips_missing_dates() {
        let r = rule("Pacific/Apia", "08:00", "20:00");
        let dates: Vec<_> = Session::between(&r, date(2011, 12, 29), date(2011, 12, 31))
            .map(|s| s.date)
            .collect();
        assert_eq!(dates, vec![date(2011, 12, 29), date(2011, 12, 31)]);
    }
}
