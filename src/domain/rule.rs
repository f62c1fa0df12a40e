//! The monitoring rule: who is watched, when, and for how long a silence is tolerated.
//!
//! A [`Rule`] is always valid: it is built from raw text with [`RuleInput::validate`], which
//! names the offending field and value in its [`RuleError`].
//!
//! ```
//! use azi3_status_jobs::domain::{PartialFinalWindow, RobotId, RuleInput};
//!
//! let rule = RuleInput {
//!     robot_id: RobotId::new(7),
//!     timezone: "Europe/Amsterdam".into(),
//!     start: "08:00".into(),
//!     end: "20:00".into(),
//!     gap: "2h".into(),
//!     ..RuleInput::default()
//! }
//! .validate()
//! .unwrap();
//! assert_eq!(rule.gap.minutes(), 120);
//! assert_eq!(rule.partial_final_window, PartialFinalWindow::Ignore);
//! assert_eq!(rule.timezone_name(), "Europe/Amsterdam");
//! ```

use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;
use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::RobotId;

/// The event a rule watches for unless told otherwise.
pub const DEFAULT_WATCHED_EVENT: &str = "TOILET_ACTIVITY";
/// The event a rule raises unless told otherwise.
pub const DEFAULT_ALARM_EVENT: &str = "NO_TOILET_ACTIVITY_ALARM";
/// The gap a rule tolerates unless told otherwise.
pub const DEFAULT_GAP_MINUTES: u32 = 120;

/// A rule field that could not be accepted: which field, the value given, and why.
///
/// ```
/// use azi3_status_jobs::domain::Gap;
///
/// let err = "30s".parse::<Gap>().unwrap_err();
/// assert_eq!(err.field, "gap");
/// assert_eq!(err.to_string(), r#"gap = "30s": must be at least 1 minute"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {value:?}: {reason}")]
pub struct RuleError {
    /// The name of the field as a user writes it (`timezone`, `start`, `gap`, …).
    pub field: &'static str,
    /// The value that was given.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl RuleError {
    fn new(field: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        RuleError {
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// What happens to the last window of a session when the session end cuts it short.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PartialFinalWindow {
    /// A cut-short window never alarms (the default).
    #[default]
    Ignore,
    /// A cut-short window alarms like a full one, unless it has zero length.
    Alarm,
}

impl PartialFinalWindow {
    /// The word used in config, CLI flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PartialFinalWindow::Ignore => "ignore",
            PartialFinalWindow::Alarm => "alarm",
        }
    }
}

impl fmt::Display for PartialFinalWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PartialFinalWindow {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ignore" => Ok(PartialFinalWindow::Ignore),
            "alarm" => Ok(PartialFinalWindow::Alarm),
            _ => Err(RuleError::new(
                "partial_final_window",
                s,
                "must be `ignore` or `alarm`",
            )),
        }
    }
}

/// The longest silence tolerated: a whole number of minutes, at least one.
///
/// Parsed from `120`, `120m`, `2h`, `1h30m` or ISO 8601 `PT2H`; a bare number means minutes.
///
/// ```
/// use azi3_status_jobs::domain::Gap;
///
/// assert_eq!("2h".parse::<Gap>().unwrap().minutes(), 120);
/// assert_eq!("90m".parse::<Gap>().unwrap().minutes(), 90);
/// assert_eq!("1h30m".parse::<Gap>().unwrap().minutes(), 90);
/// assert_eq!("45".parse::<Gap>().unwrap().minutes(), 45);
/// assert!("0m".parse::<Gap>().is_err());
/// assert!("90s".parse::<Gap>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gap {
    minutes: u32,
}

impl Gap {
    /// The default gap of 120 minutes.
    pub const DEFAULT: Gap = Gap {
        minutes: DEFAULT_GAP_MINUTES,
    };

    /// A gap of `minutes` minutes; refuses zero.
    pub fn from_minutes(minutes: u32) -> Result<Gap, RuleError> {
        if minutes == 0 {
            return Err(RuleError::new(
                "gap",
                format!("{minutes}m"),
                "must be at least 1 minute",
            ));
        }
        Ok(Gap { minutes })
    }

    /// The gap in minutes.
    pub fn minutes(self) -> u32 {
        self.minutes
    }

    /// The gap as elapsed time.
    pub fn duration(self) -> SignedDuration {
        SignedDuration::from_mins(i64::from(self.minutes))
    }
}

impl Default for Gap {
    fn default() -> Self {
        Gap::DEFAULT
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}m", self.minutes)
    }
}

impl FromStr for Gap {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let duration = match text.parse::<u64>() {
            Ok(minutes) => SignedDuration::from_mins(i64::try_from(minutes).unwrap_or(i64::MAX)),
            Err(_) => text.parse::<SignedDuration>().map_err(|e| {
                RuleError::new(
                    "gap",
                    s,
                    format!("not a duration (write e.g. 120m, 2h or 1h30m): {e}"),
                )
            })?,
        };
        if duration < SignedDuration::from_mins(1) {
            return Err(RuleError::new("gap", s, "must be at least 1 minute"));
        }
        if duration.subsec_nanos() != 0 || duration.as_secs() % 60 != 0 {
            return Err(RuleError::new(
                "gap",
                s,
                "must be a whole number of minutes",
            ));
        }
        let minutes = u32::try_from(duration.as_mins())
            .map_err(|_| RuleError::new("gap", s, "is too long"))?;
        Ok(Gap { minutes })
    }
}

/// Parses a local time of day written `HH:MM` or `HH:MM:SS`.
///
/// ```
/// use azi3_status_jobs::domain::parse_time_of_day;
/// use jiff::civil::time;
///
/// assert_eq!(parse_time_of_day("start", "08:00").unwrap(), time(8, 0, 0, 0));
/// assert_eq!(parse_time_of_day("end", "21:59:30").unwrap(), time(21, 59, 30, 0));
/// assert_eq!(
///     parse_time_of_day("end", "25:00").unwrap_err().to_string(),
///     r#"end = "25:00": not a time of day (write HH:MM or HH:MM:SS, 00:00 to 23:59:59)"#
/// );
/// ```
pub fn parse_time_of_day(field: &'static str, s: &str) -> Result<Time, RuleError> {
    let text = s.trim();
    let parsed = match text.len() {
        5 => Time::strptime("%H:%M", text),
        // The parser takes a leap second `:60` as `:59`; a rule has no use for either reading.
        8 if text.ends_with(":60") => return Err(time_error(field, s)),
        8 => Time::strptime("%H:%M:%S", text),
        _ => return Err(time_error(field, s)),
    };
    parsed.map_err(|_| time_error(field, s))
}

fn time_error(field: &'static str, s: &str) -> RuleError {
    RuleError::new(
        field,
        s,
        "not a time of day (write HH:MM or HH:MM:SS, 00:00 to 23:59:59)",
    )
}

/// Looks up an IANA time zone by name.
///
/// ```
/// use azi3_status_jobs::domain::parse_timezone;
///
/// assert!(parse_timezone("Europe/Madrid").is_ok());
/// assert_eq!(parse_timezone("Mars/Olympus").unwrap_err().field, "timezone");
/// ```
pub fn parse_timezone(s: &str) -> Result<TimeZone, RuleError> {
    let name = s.trim();
    if name.is_empty() {
        return Err(RuleError::new("timezone", s, "must not be empty"));
    }
    TimeZone::get(name)
        .map_err(|_| RuleError::new("timezone", s, "not a known IANA time zone name"))
}

/// One monitored resident: a validated rule. Build it with [`RuleInput::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The robot whose events are watched.
    pub robot_id: RobotId,
    /// The event that satisfies a window (`TOILET_ACTIVITY`).
    pub watched_event: String,
    /// The event raised when a window passes without one (`NO_TOILET_ACTIVITY_ALARM`).
    pub alarm_event: String,
    /// The longest silence tolerated.
    pub gap: Gap,
    /// Daily local start time A.
    pub start: Time,
    /// Daily local end time B; at or before A means the session crosses midnight.
    pub end: Time,
    /// The resident's time zone.
    pub timezone: TimeZone,
    /// How a window cut short by the session end is treated.
    pub partial_final_window: PartialFinalWindow,
    /// Whether sessions are created for this rule.
    pub enabled: bool,
    timezone_name: String,
}

impl Rule {
    /// The IANA name of the rule's time zone, spelled as the time zone database does.
    pub fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    /// The length of a session on a day without a clock change: from A to B, or to B the next
    /// day when B is at or before A.
    pub fn nominal_session_length(&self) -> SignedDuration {
        let length = self.end.duration_since(self.start);
        if length > SignedDuration::ZERO {
            length
        } else {
            length + SignedDuration::from_hours(24)
        }
    }

    /// Why the rule can never raise an alarm, if it cannot: its gap is longer than its
    /// session, and a window cut short by the session end does not alarm.
    ///
    /// ```
    /// use azi3_status_jobs::domain::RuleInput;
    ///
    /// let rule = RuleInput {
    ///     timezone: "UTC".into(),
    ///     start: "08:00".into(),
    ///     end: "10:00".into(),
    ///     gap: "3h".into(),
    ///     ..RuleInput::default()
    /// }
    /// .validate()
    /// .unwrap();
    /// assert!(rule.never_alarms().unwrap().contains("180 min"));
    /// ```
    pub fn never_alarms(&self) -> Option<String> {
        let session = self.nominal_session_length();
        (self.partial_final_window == PartialFinalWindow::Ignore && self.gap.duration() > session)
            .then(|| {
                format!(
                    "robot {}: the gap of {} min is longer than the session of {} min ({}–{}), \
                     and partial_final_window = ignore: this rule can never raise an alarm",
                    self.robot_id,
                    self.gap.minutes(),
                    session.as_mins(),
                    self.start.strftime("%H:%M:%S"),
                    self.end.strftime("%H:%M:%S"),
                )
            })
    }
}

/// A rule as written by a person: text fields, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInput {
    /// The robot whose events are watched.
    pub robot_id: RobotId,
    /// An IANA time zone name.
    pub timezone: String,
    /// `HH:MM` or `HH:MM:SS`.
    pub start: String,
    /// `HH:MM` or `HH:MM:SS`.
    pub end: String,
    /// `120m`, `2h`, …; see [`Gap`].
    pub gap: String,
    /// The watched event name; must not be empty.
    pub watched_event: String,
    /// The alarm event name; must not be empty.
    pub alarm_event: String,
    /// `ignore` or `alarm`.
    pub partial_final_window: String,
    /// Whether sessions are created for this rule.
    pub enabled: bool,
}

impl Default for RuleInput {
    fn default() -> Self {
        RuleInput {
            robot_id: RobotId::new(1),
            timezone: String::new(),
            start: String::new(),
            end: String::new(),
            gap: Gap::DEFAULT.to_string(),
            watched_event: DEFAULT_WATCHED_EVENT.to_string(),
            alarm_event: DEFAULT_ALARM_EVENT.to_string(),
            partial_final_window: PartialFinalWindow::Ignore.to_string(),
            enabled: true,
        }
    }
}

impl RuleInput {
    /// Checks every field and builds the [`Rule`]; the first bad field is reported.
    pub fn validate(&self) -> Result<Rule, RuleError> {
        let timezone = parse_timezone(&self.timezone)?;
        let start = parse_time_of_day("start", &self.start)?;
        let end = parse_time_of_day("end", &self.end)?;
        let gap = self.gap.parse::<Gap>()?;
        let watched_event = event_name("watched_event", &self.watched_event)?;
        let alarm_event = event_name("alarm_event", &self.alarm_event)?;
        let partial_final_window = self.partial_final_window.parse()?;
        Ok(Rule {
            robot_id: self.robot_id,
            watched_event,
            alarm_event,
            gap,
            start,
            end,
            partial_final_window,
            enabled: self.enabled,
            // The database's spelling (`europe/amsterdam` is stored as `Europe/Amsterdam`).
            timezone_name: timezone
                .iana_name()
                .map_or_else(|| self.timezone.trim().to_string(), str::to_string),
            timezone,
        })
    }
}

fn event_name(field: &'static str, value: &str) -> Result<String, RuleError> {
    let name = value.trim();
    if name.is_empty() {
        return Err(RuleError::new(field, value, "must not be empty"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> RuleInput {
        RuleInput {
            timezone: "Europe/Amsterdam".into(),
            start: "08:00".into(),
            end: "20:00".into(),
            ..RuleInput::default()
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        let rule = input().validate().unwrap();
        assert_eq!(rule.gap.minutes(), 120);
        assert_eq!(rule.watched_event, "TOILET_ACTIVITY");
        assert_eq!(rule.alarm_event, "NO_TOILET_ACTIVITY_ALARM");
        assert_eq!(rule.partial_final_window, PartialFinalWindow::Ignore);
        assert!(rule.enabled);
    }

    #[test]
    fn each_bad_field_is_named_with_its_value() {
        let cases: Vec<(RuleInput, &str, &str)> = vec![
            (
                RuleInput {
                    timezone: "Europe/Atlantis".into(),
                    ..input()
                },
                "timezone",
                "Europe/Atlantis",
            ),
            (
                RuleInput {
                    start: "8am".into(),
                    ..input()
                },
                "start",
                "8am",
            ),
            (
                RuleInput {
                    end: "24:00".into(),
                    ..input()
                },
                "end",
                "24:00",
            ),
            (
                RuleInput {
                    gap: "59s".into(),
                    ..input()
                },
                "gap",
                "59s",
            ),
            (
                RuleInput {
                    gap: "two hours".into(),
                    ..input()
                },
                "gap",
                "two hours",
            ),
            (
                RuleInput {
                    watched_event: " ".into(),
                    ..input()
                },
                "watched_event",
                " ",
            ),
            (
                RuleInput {
                    alarm_event: "".into(),
                    ..input()
                },
                "alarm_event",
                "",
            ),
            (
                RuleInput {
                    partial_final_window: "sometimes".into(),
                    ..input()
                },
                "partial_final_window",
                "sometimes",
            ),
        ];
        for (bad, field, value) in cases {
            let err = bad.validate().unwrap_err();
            assert_eq!((err.field, err.value.as_str()), (field, value), "{err}");
            assert!(err.to_string().starts_with(&format!("{field} = ")), "{err}");
        }
    }

    #[test]
    fn gap_accepts_the_usual_spellings() {
        for (text, minutes) in [
            ("120m", 120),
            ("2h", 120),
            ("90m", 90),
            ("PT2H", 120),
            ("1", 1),
        ] {
            assert_eq!(text.parse::<Gap>().unwrap().minutes(), minutes, "{text}");
        }
        assert!("1m30s".parse::<Gap>().is_err());
        assert!("-5m".parse::<Gap>().is_err());
    }

    #[test]
    fn times_accept_seconds_and_refuse_fractions() {
        assert!(parse_time_of_day("start", "00:00").is_ok());
        assert!(parse_time_of_day("start", "23:59:59").is_ok());
        assert_eq!(
            parse_time_of_day("start", "08:00:60").unwrap_err().value,
            "08:00:60"
        );
        assert!(parse_time_of_day("start", "23:59:60").is_err());
        assert!(parse_time_of_day("start", "08:60").is_err());
        assert!(parse_time_of_day("start", "08:00:00.5").is_err());
        assert!(parse_time_of_day("start", "8:00").is_err());
    }

    #[test]
    fn time_zones_are_named_as_the_database_spells_them() {
        for (given, canonical) in [
            ("europe/amsterdam", "Europe/Amsterdam"),
            (" EUROPE/MADRID ", "Europe/Madrid"),
            ("Europe/Amsterdam", "Europe/Amsterdam"),
            ("UTC", "UTC"),
        ] {
            let rule = RuleInput {
                timezone: given.into(),
                ..input()
            }
            .validate()
            .unwrap();
            assert_eq!(rule.timezone_name(), canonical, "{given}");
        }
    }

    #[test]
    fn a_gap_longer_than_the_session_is_told_to_never_alarm() {
        let with = |start: &str, end: &str, gap: &str, partial: &str| {
            RuleInput {
                start: start.into(),
                end: end.into(),
                gap: gap.into(),
                partial_final_window: partial.into(),
                ..input()
            }
            .validate()
            .unwrap()
            .never_alarms()
        };
        assert!(with("08:00", "10:00", "121m", "ignore").is_some());
        assert!(with("08:00", "10:00", "120m", "ignore").is_none());
        assert!(with("08:00", "10:00", "3h", "alarm").is_none());
        // Across midnight: 22:00 to 06:00 is 8 hours.
        assert!(with("22:00", "06:00", "7h", "ignore").is_none());
        assert!(with("22:00", "06:00", "9h", "ignore").is_some());
        // A whole day.
        assert!(with("08:00", "08:00", "24h", "ignore").is_none());
        assert!(with("08:00", "08:00", "25h", "ignore").is_some());
    }
}
