//! Conversions between number types that `From` does not cover, each saying why it loses
//! nothing that matters, so that no `as` truncates, wraps or rounds a value unnoticed.

use std::time::Duration;

/// A count (of sessions, windows, alarms, events, rows) as an `f64`, for a metric or for a
/// figure such as a mean or a rate. An `f64` holds every whole number up to 2^53 exactly, far
/// past any count the service makes; a count beyond `u64` (there is none) reads as `u64::MAX`.
#[expect(
    clippy::cast_precision_loss,
    reason = "counts stay below 2^53, where an f64 is exact"
)]
pub fn count_f64(count: impl TryInto<u64>) -> f64 {
    count.try_into().unwrap_or(u64::MAX) as f64
}

/// Whole milliseconds of `duration`, for a log field or a figure. Saturates at `u64::MAX`
/// (some 585 million years) instead of dropping the high bits of a longer duration.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_up_to_2_pow_53() {
        assert_eq!(count_f64(0_usize), 0.0);
        assert_eq!(count_f64(1_u64 << 53), 9_007_199_254_740_992.0);
        assert_eq!(count_f64(12_u32), 12.0);
    }

    #[test]
    fn millis_saturate_instead_of_truncating() {
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
