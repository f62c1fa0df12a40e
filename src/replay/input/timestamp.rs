//! Reading an instant: the fast path for the layouts event exports use, jiff's parsers for the
//! rest.

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// Reads `occurred_at` text: RFC 3339 with offset, or naive local time in `tz`.
///
/// ```
/// use azi3_status_jobs::replay::parse_occurred_at;
/// use jiff::tz::TimeZone;
///
/// let madrid = TimeZone::get("Europe/Madrid").unwrap();
/// assert_eq!(parse_occurred_at("2011-11-28 10:21:24", &madrid).unwrap().to_string(), "2011-11-28T09:21:24Z");
/// assert_eq!(parse_occurred_at("2011-11-28T10:21", &madrid).unwrap().to_string(), "2011-11-28T09:21:00Z");
/// assert_eq!(parse_occurred_at("2011-11-28T10:21:24+01:00", &madrid).unwrap().to_string(), "2011-11-28T09:21:24Z");
/// assert!(parse_occurred_at("2011-11-28", &madrid).is_err());
/// ```
pub fn parse_occurred_at(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Some(ts) = parse_fixed_layout(text.trim().as_bytes(), tz) {
        return Ok(ts);
    }
    parse_any_layout(text, tz)
}

/// The general path: jiff's parsers, for every layout the fast path does not take.
pub(super) fn parse_any_layout(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    const EXPECTED: &str = "not a date-time (write RFC 3339 such as 2025-03-30T09:10:00Z or \
                            2025-03-30T09:10:00+02:00, or local YYYY-MM-DD HH:MM[:SS])";
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    // A naive value must carry a time of day: `YYYY-MM-DD HH:MM` is 16 characters.
    if text.len() < 16 {
        return Err(EXPECTED.to_string());
    }
    let local = text.parse::<DateTime>().map_err(|_| EXPECTED.to_string())?;
    tz.to_ambiguous_timestamp(local)
        .compatible()
        .map_err(|e| format!("cannot place {local} in the time zone: {e}"))
}

/// The layouts event exports use, read without the general parser because reading the
/// instant is most of the cost of a replay: `YYYY-MM-DD(T| )HH:MM[:SS[.fraction]]` followed by
/// `Z`, `±HH:MM` or nothing (local time in `tz`). Only the digits are read here; calendar and
/// zone arithmetic is jiff's. `None` sends the text to the general path (which also words the
/// error).
fn parse_fixed_layout(b: &[u8], tz: &TimeZone) -> Option<Timestamp> {
    parse_fixed_layout_with(b, tz, &mut DayStart::default())
}

/// The instant at which the last date seen began, at the last fixed offset seen: rows of one
/// export mostly share both, and so the calendar arithmetic is done once per day.
#[derive(Debug, Default)]
pub(super) struct DayStart {
    date: [u8; 10],
    offset: i32,
    start: Option<Timestamp>,
}

pub(super) fn parse_fixed_layout_with(
    b: &[u8],
    tz: &TimeZone,
    day: &mut DayStart,
) -> Option<Timestamp> {
    fn digits(b: &[u8]) -> Option<i32> {
        b.iter().try_fold(0i32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0'))
        })
    }
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
    {
        return None;
    }
    let (year, month, day_of_month) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute) = (digits(&b[11..13])?, digits(&b[14..16])?);
    let mut rest = &b[16..];
    let (mut second, mut nanos) = (0, 0);
    if let [b':', s1, s2, tail @ ..] = rest {
        second = digits(&[*s1, *s2])?;
        rest = tail;
        if let [b'.' | b',', tail @ ..] = rest {
            let len = tail.iter().take_while(|c| c.is_ascii_digit()).count();
            if len == 0 || len > 9 {
                return None;
            }
            nanos = digits(&tail[..len])? * 10i32.pow(u32::try_from(9 - len).ok()?);
            rest = &tail[len..];
        }
    }
    let offset = match rest {
        [] => {
            // Four digits of year and two of the rest fit i16 and i8 always.
            let local = DateTime::new(
                i16::try_from(year).ok()?,
                i8::try_from(month).ok()?,
                i8::try_from(day_of_month).ok()?,
                i8::try_from(hour).ok()?,
                i8::try_from(minute).ok()?,
                i8::try_from(second).ok()?,
                nanos,
            )
            .ok()?;
            return tz.to_ambiguous_timestamp(local).compatible().ok();
        }
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let seconds = digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    // Leap seconds and out-of-range fields go to the general path.
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date: [u8; 10] = b[0..10].try_into().ok()?;
    let start = match day.start {
        Some(start) if day.date == date && day.offset == offset => start,
        _ => {
            let midnight = DateTime::new(
                i16::try_from(year).ok()?,
                i8::try_from(month).ok()?,
                i8::try_from(day_of_month).ok()?,
                0,
                0,
                0,
                0,
            )
            .ok()?;
            let start = Offset::from_seconds(offset)
                .ok()?
                .to_timestamp(midnight)
                .ok()?;
            *day = DayStart {
                date,
                offset,
                start: Some(start),
            };
            start
        }
    };
    let since_midnight = SignedDuration::new(i64::from(hour * 3600 + minute * 60 + second), nanos);
    start.checked_add(since_midnight).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The fast path reads every layout it takes exactly as jiff's general parsers do.
        #[test]
        fn fixed_layout_agrees_with_the_general_parsers(
            seconds in 0i64..4_102_444_800,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
            digits in 1usize..=9,
            separator in prop_oneof![Just('T'), Just(' '), Just('t')],
            with_seconds in any::<bool>(),
            suffix in prop_oneof![Just(String::new()), Just("Z".to_string()),
                (-14i32..=14, prop_oneof![Just(0), Just(30), Just(45)])
                    .prop_map(|(h, m)| format!("{}{:02}:{:02}", if h < 0 { '-' } else { '+' }, h.abs(), m))],
            zone in prop_oneof![Just("Europe/Amsterdam"), Just("America/New_York"), Just("Australia/Lord_Howe")],
        ) {
            let tz = TimeZone::get(zone).unwrap();
            let local = tz.to_datetime(Timestamp::from_second(seconds).unwrap());
            let mut text = local.strftime("%Y-%m-%d").to_string();
            text.push(separator);
            text.push_str(&local.strftime("%H:%M").to_string());
            if with_seconds {
                text.push_str(&local.strftime(":%S").to_string());
                if nanos > 0 {
                    let fraction = format!("{nanos:09}");
                    text.push('.');
                    text.push_str(&fraction[..digits]);
                }
            }
            text.push_str(&suffix);
            let fast = parse_fixed_layout(text.as_bytes(), &tz);
            let general = parse_any_layout(&text, &tz).ok();
            prop_assert!(fast.is_some(), "{text} not taken by the fast path");
            prop_assert_eq!(fast, general, "{}", text);
        }
    }

    proptest! {
        /// Rows that share a date (and an offset) reuse the start of that day; rows that do
        /// not, do not.
        #[test]
        fn the_day_start_kept_between_rows_changes_nothing(
            rows in proptest::collection::vec(
                (1_700_000_000i64..1_700_400_000, prop_oneof![Just("Z"), Just("+02:00"), Just("-05:30")]),
                1..40,
            ),
        ) {
            let utc = TimeZone::UTC;
            let mut day = DayStart::default();
            for (seconds, suffix) in rows {
                let text = format!("{}{suffix}", utc.to_datetime(Timestamp::from_second(seconds).unwrap()));
                let kept = parse_fixed_layout_with(text.as_bytes(), &utc, &mut day);
                prop_assert_eq!(kept, parse_any_layout(&text, &utc).ok(), "{}", text);
            }
        }
    }

    #[test]
    fn fixed_layout_leaves_odd_text_to_the_general_parser() {
        let tz = TimeZone::get("UTC").unwrap();
        for text in [
            "2025-03-30T09:10:00+0200",
            "2025-03-30T09:10:00.Z",
            "2025-03-30T09:10:00.1234567890Z",
            "2025-03-30T24:10:00Z",
            "2025-02-30T09:10:00Z",
            "2025-03-30T09:10:60Z",
            "2025-03-30",
            "20250330T091000Z",
            "2025-03-30T09:10:00Z[Europe/Amsterdam]",
        ] {
            assert_eq!(parse_fixed_layout(text.as_bytes(), &tz), None, "{text}");
        }
    }
}
