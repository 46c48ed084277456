//! The live state's clock: the one place [`Service`](super::Service) reads
//! the time.
//!
//! Rules run on audio time (the events' milliseconds); the service needs
//! the time only for what no event says: when a call went idle, when its
//! stream's grace is over, how long an ended call id stays refused, when a
//! call started (business hours) and an alert was raised, and which
//! repeat-caller records are past the window. With every read here, a test
//! drives a [`ManualClock`] and steps past an idle timeout or a grace in
//! one call instead of sleeping through it, and fixes the hour of day that
//! `out_of_hours` depends on. The system clock reads `Instant::now()` and
//! `Timestamp::now()`, exactly as the service did before.
//!
//! Not tokio's paused time: the service is synchronous (called from the
//! runtime's workers, the sweeper and the console's runtime alike) and its
//! commit thread is a plain thread, so a clock of its own is simpler than
//! making every caller run under one paused runtime.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Monotonic time (timeouts) and wall time (timestamps), from the system
/// or from a [`ManualClock`].
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Manual>>);

/// A clock that moves only when told: for tests.
#[derive(Clone)]
pub struct ManualClock(Arc<Manual>);

struct Manual {
    /// Where its monotonic time starts (a real instant, so that its
    /// `Instant`s compare like any other).
    origin: Instant,
    /// Its wall time when it was made.
    wall: jiff::Timestamp,
    /// How far it has been moved.
    advanced: Mutex<Duration>,
}

impl Clock {
    /// The system's clocks.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// Now, for timeouts: never goes back.
    pub fn now(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(manual) => manual.origin + manual.advanced(),
        }
    }

    /// Now, on the calendar: a call's start, an alert's `raised_at`.
    pub fn wall(&self) -> jiff::Timestamp {
        match &self.0 {
            None => jiff::Timestamp::now(),
            Some(manual) => manual.wall + manual.advanced(),
        }
    }

    /// Time since `earlier` (an `Instant` this clock gave), zero if it is
    /// somehow in the future.
    pub fn since(&self, earlier: Instant) -> Duration {
        self.now().saturating_duration_since(earlier)
    }
}

impl ManualClock {
    /// A clock standing at `wall` on the calendar.
    pub fn at(wall: jiff::Timestamp) -> ManualClock {
        ManualClock(Arc::new(Manual {
            origin: Instant::now(),
            wall,
            advanced: Mutex::new(Duration::ZERO),
        }))
    }

    /// The clock to hand to the service; it follows this one.
    pub fn clock(&self) -> Clock {
        Clock(Some(self.0.clone()))
    }

    /// Moves both times forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut advanced = self.0.advanced.lock().unwrap_or_else(|p| p.into_inner());
        *advanced += by;
    }
}

impl Manual {
    fn advanced(&self) -> Duration {
        *self.advanced.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_both_times_together() {
        let noon: jiff::Timestamp = "2026-03-02T12:00:00Z".parse().unwrap();
        let hand = ManualClock::at(noon);
        let clock = hand.clock();
        let (then, wall) = (clock.now(), clock.wall());
        assert_eq!(wall, noon);
        assert_eq!(clock.now(), then, "it stands still");
        hand.advance(Duration::from_secs(90));
        assert_eq!(clock.since(then), Duration::from_secs(90));
        assert_eq!(clock.wall(), noon + Duration::from_secs(90));
        // A copy follows the same hand.
        assert_eq!(clock.clone().now(), clock.now());
    }

    #[test]
    fn since_a_later_instant_is_zero() {
        let hand = ManualClock::at(jiff::Timestamp::UNIX_EPOCH);
        let clock = hand.clock();
        hand.advance(Duration::from_secs(5));
        let later = clock.now() + Duration::from_secs(1);
        assert_eq!(clock.since(later), Duration::ZERO);
    }
}
