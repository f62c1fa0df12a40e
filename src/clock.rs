//! Service time: the wall clock, or a simulated clock for demos and tests.
//!
//! Everything the service decides takes "now" from a [`Clock`]; this module is the only place
//! that reads the system time. A simulated clock runs service time from an anchor instant at
//! N× speed, so a whole day can be played in minutes; its anchor is kept in the database, so a
//! restarted service continues the same simulated day.
//!
//! ```
//! use azi3_status_jobs::clock::{Clock, SimulatedClock};
//! use jiff::Timestamp;
//!
//! let real: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
//! let service: Timestamp = "2025-03-30T06:00:00Z".parse().unwrap();
//! let sim = SimulatedClock { real_anchor: real, service_anchor: service, speed: 60.0 };
//! // Ten real seconds later, ten service minutes have passed.
//! let later: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
//! assert_eq!(sim.service_time_at(later).to_string(), "2025-03-30T06:10:00Z");
//! assert_eq!(sim.real_time_of(service.checked_add(jiff::SignedDuration::from_mins(10)).unwrap()), later);
//! # let _ = Clock::System;
//! ```

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Where service time comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// Simulated time: see [`SimulatedClock`].
    Simulated(SimulatedClock),
}

/// Service time that started at `service_anchor` when the wall clock read `real_anchor`, and
/// runs `speed` times as fast as the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedClock {
    /// The wall-clock instant the simulation was anchored at.
    pub real_anchor: Timestamp,
    /// The service instant at that moment.
    pub service_anchor: Timestamp,
    /// How many service seconds pass per wall-clock second (> 0).
    pub speed: f64,
}

impl SimulatedClock {
    /// Service time when the wall clock reads `real`.
    pub fn service_time_at(&self, real: Timestamp) -> Timestamp {
        let elapsed = real.duration_since(self.real_anchor).as_secs_f64() * self.speed;
        self.service_anchor
            .checked_add(SignedDuration::from_secs_f64(elapsed))
            .unwrap_or(self.service_anchor)
    }

    /// The wall-clock instant at which service time reaches `service`.
    pub fn real_time_of(&self, service: Timestamp) -> Timestamp {
        let ahead = service.duration_since(self.service_anchor).as_secs_f64() / self.speed;
        self.real_anchor
            .checked_add(SignedDuration::from_secs_f64(ahead))
            .unwrap_or(self.real_anchor)
    }
}

impl Clock {
    /// The current service time.
    pub fn now(&self) -> Timestamp {
        let real = Timestamp::now();
        match self {
            Clock::System => real,
            Clock::Simulated(sim) => sim.service_time_at(real),
        }
    }

    /// How many service seconds pass per wall-clock second.
    pub fn speed(&self) -> f64 {
        match self {
            Clock::System => 1.0,
            Clock::Simulated(sim) => sim.speed,
        }
    }

    /// The wall-clock time to wait until service time reaches `t` (zero when it has).
    pub fn wait_until(&self, t: Timestamp) -> Duration {
        let ahead = t.duration_since(self.now());
        if ahead.is_negative() || ahead.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(ahead.as_secs_f64() / self.speed())
    }

    /// A service-time duration in wall-clock time.
    pub fn real_duration(&self, service: SignedDuration) -> Duration {
        Duration::from_secs_f64(service.as_secs_f64().max(0.0) / self.speed())
    }

    /// Sleeps until service time reaches `t`.
    pub async fn sleep_until(&self, t: Timestamp) {
        let wait = self.wait_until(t);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_time_and_wall_time_convert_both_ways() {
        let sim = SimulatedClock {
            real_anchor: "2026-01-01T00:00:00Z".parse().unwrap(),
            service_anchor: "2025-03-30T00:00:00Z".parse().unwrap(),
            speed: 3600.0,
        };
        let real: Timestamp = "2026-01-01T00:00:14Z".parse().unwrap();
        let service = sim.service_time_at(real);
        assert_eq!(service.to_string(), "2025-03-30T14:00:00Z");
        assert_eq!(sim.real_time_of(service), real);
    }

    #[test]
    fn waiting_for_the_past_is_no_wait() {
        let clock = Clock::Simulated(SimulatedClock {
            real_anchor: Timestamp::now(),
            service_anchor: "2025-03-30T00:00:00Z".parse().unwrap(),
            speed: 10.0,
        });
        assert_eq!(
            clock.wait_until("2025-03-29T00:00:00Z".parse().unwrap()),
            Duration::ZERO
        );
        let an_hour_on = "2025-03-30T01:00:00Z".parse().unwrap();
        let wait = clock.wait_until(an_hour_on);
        assert!(wait <= Duration::from_secs(360) && wait > Duration::from_secs(350));
    }
}
