//! A robot, as Megazord numbers it.

use std::fmt;
use std::str::FromStr;

/// What a robot id is, as error messages say it.
pub const ROBOT_ID_RANGE: &str = "a whole number from 0 to 4294967295";

/// A robot (and so a resident) as Megazord numbers it: a whole number from 0 to 4294967295.
///
/// Its own type so that a robot id cannot be passed where a session, alarm or event id is
/// meant. It is written as its number everywhere: in JSON, SQL, logs and URLs.
///
/// ```
/// use azi3_status_jobs::domain::RobotId;
///
/// let robot: RobotId = "7".parse().unwrap();
/// assert_eq!(robot, RobotId::new(7));
/// assert_eq!(robot.get(), 7);
/// assert_eq!(robot.to_string(), "7");
/// assert_eq!(serde_json::to_string(&robot).unwrap(), "7");
/// assert!("-1".parse::<RobotId>().is_err());
/// assert!("4294967296".parse::<RobotId>().is_err());
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct RobotId(u32);

impl RobotId {
    /// The robot Megazord numbers `id`.
    pub const fn new(id: u32) -> Self {
        RobotId(id)
    }

    /// Its number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for RobotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Text or a number that is not a robot id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a robot id ({ROBOT_ID_RANGE})")]
pub struct NotARobotId;

impl FromStr for RobotId {
    type Err = NotARobotId;

    /// Decimal digits only: no sign, no spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NotARobotId);
        }
        s.parse().map(RobotId).map_err(|_| NotARobotId)
    }
}

impl From<RobotId> for u64 {
    fn from(robot: RobotId) -> u64 {
        u64::from(robot.0)
    }
}

impl From<RobotId> for i64 {
    fn from(robot: RobotId) -> i64 {
        i64::from(robot.0)
    }
}

impl TryFrom<u64> for RobotId {
    type Error = NotARobotId;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        u32::try_from(n).map(RobotId).map_err(|_| NotARobotId)
    }
}

impl TryFrom<i64> for RobotId {
    type Error = NotARobotId;

    fn try_from(n: i64) -> Result<Self, Self::Error> {
        u32::try_from(n).map(RobotId).map_err(|_| NotARobotId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_decimal_digits_in_range_are_robot_ids() {
        assert_eq!("0".parse(), Ok(RobotId::new(0)));
        assert_eq!("4294967295".parse(), Ok(RobotId::new(u32::MAX)));
        assert_eq!("007".parse(), Ok(RobotId::new(7)));
        for bad in ["", " 7", "7 ", "+7", "-7", "7.0", "4294967296", "seven"] {
            assert_eq!(bad.parse::<RobotId>(), Err(NotARobotId), "{bad:?}");
        }
    }

    #[test]
    fn numbers_outside_u32_are_refused() {
        assert_eq!(
            RobotId::try_from(u64::from(u32::MAX)),
            Ok(RobotId::new(u32::MAX))
        );
        assert_eq!(RobotId::try_from(u64::from(u32::MAX) + 1), Err(NotARobotId));
        assert_eq!(RobotId::try_from(-1_i64), Err(NotARobotId));
    }
}
