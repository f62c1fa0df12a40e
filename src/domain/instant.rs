//! Instants as sources write them: RFC 3339 with an offset, within the calendar the service
//! can evaluate.

use jiff::fmt::temporal::{Pieces, PiecesOffset};
use jiff::{SignedDuration, Timestamp};

/// The margin kept from either end of the representable calendar: a session and its
/// neighbours (up to two local dates before, one after) must be computable around an instant.
const CALENDAR_MARGIN: SignedDuration = SignedDuration::from_hours(4 * 24);

/// Reads an RFC 3339 instant with an offset (`Z` or `±HH:MM`, at most ±23:59 as RFC 3339
/// allows) that the service can evaluate (see [`check_instant`]). The error says why, without
/// quoting the text.
///
/// ```
/// use azi3_status_jobs::domain::parse_instant;
///
/// assert_eq!(parse_instant("2025-06-01T10:00:00+02:00").unwrap().to_string(), "2025-06-01T08:00:00Z");
/// assert!(parse_instant("2025-06-01T10:00:00+24:00").unwrap_err().contains("±23:59"));
/// assert!(parse_instant("2025-06-01T10:00:00").is_err());
/// assert!(parse_instant("9999-12-30T12:00:00Z").is_err());
/// assert!(parse_instant("9999-12-31T23:59:59Z").unwrap_err().contains("outside"));
/// ```
pub fn parse_instant(text: &str) -> Result<Timestamp, String> {
    // Room for nanoseconds and a time zone annotation; a longer text is not parsed, so that
    // no parser message can echo it whole.
    const MAX_LEN: usize = 80;
    if text.len() > MAX_LEN {
        return Err(format!(
            "not an RFC 3339 instant: longer than {MAX_LEN} bytes"
        ));
    }
    let pieces =
        Pieces::parse(text).map_err(|e| format!("not an RFC 3339 instant with an offset: {e}"))?;
    match pieces.offset() {
        None => return Err("not an RFC 3339 instant: the offset (Z or ±HH:MM) is missing".into()),
        Some(PiecesOffset::Numeric(offset)) if offset.offset().seconds().abs() >= 24 * 3600 => {
            return Err(format!("the offset {} lies beyond ±23:59", offset.offset()));
        }
        Some(_) => {}
    }
    // Written correctly but beyond the calendar (`9999-12-31T23:59:59Z`).
    let instant = text.parse::<Timestamp>().map_err(|_| outside_message())?;
    check_instant(instant)?;
    Ok(instant)
}

/// Refuses an instant within a few days of either end of the calendar, where the sessions
/// around it cannot be computed.
pub fn check_instant(instant: Timestamp) -> Result<(), String> {
    let (lowest, highest) = bounds();
    if instant < lowest || instant > highest {
        return Err(outside_message());
    }
    Ok(())
}

fn outside_message() -> String {
    let (lowest, highest) = bounds();
    format!(
        "lies outside the instants the service evaluates ({} to {})",
        lowest.round(jiff::Unit::Second).unwrap_or(lowest),
        highest.round(jiff::Unit::Second).unwrap_or(highest)
    )
}

/// The first and the last instant the service evaluates.
fn bounds() -> (Timestamp, Timestamp) {
    let lowest = Timestamp::MIN
        .checked_add(CALENDAR_MARGIN)
        .expect("the calendar spans more than the margin");
    let highest = Timestamp::MAX
        .checked_sub(CALENDAR_MARGIN)
        .expect("the calendar spans more than the margin");
    (lowest, highest)
}
