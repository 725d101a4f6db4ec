//! Wall-clock instants as plain data: the planner is handed `now`, it never reads a clock.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time, in whole seconds since the Unix epoch.
///
/// Seconds are enough for grace periods of minutes, and the value is what the
/// controller persists in its ownership records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `secs` seconds after the Unix epoch.
    pub const fn from_unix_secs(secs: i64) -> Self {
        Self(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix_secs(self) -> i64 {
        self.0
    }

    /// This instant plus `d`, rounded up to whole seconds (a grace period is
    /// never cut short), saturating instead of overflowing.
    pub fn plus(self, d: Duration) -> Self {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        Self(
            self.0
                .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
        )
    }

    /// How long after `earlier` this instant is (zero if it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_secs(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_fraction_of_a_second_rounds_up() {
        let t = Timestamp::from_unix_secs(10);
        assert_eq!(
            t.plus(Duration::from_millis(1)),
            Timestamp::from_unix_secs(11)
        );
        assert_eq!(
            t.plus(Duration::from_secs(5)),
            Timestamp::from_unix_secs(15)
        );
    }

    #[test]
    fn huge_durations_saturate() {
        let t = Timestamp::from_unix_secs(i64::MAX - 1);
        assert_eq!(t.plus(Duration::from_secs(u64::MAX)).unix_secs(), i64::MAX);
    }

    #[test]
    fn since_is_never_negative() {
        let (a, b) = (Timestamp::from_unix_secs(5), Timestamp::from_unix_secs(9));
        assert_eq!(b.since(a), Duration::from_secs(4));
        assert_eq!(a.since(b), Duration::ZERO);
    }
}
