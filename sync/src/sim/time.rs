//! Virtual time: microseconds since the start of a simulation.

use core::fmt;
use core::ops::{Add, AddAssign, Mul, Sub, SubAssign};
use core::time::Duration;

/// A point in virtual time, or a span of it, in whole microseconds.
///
/// One type serves for instants (`sim.now()`) and durations (`latency`,
/// `run_for(..)`), as a `u64` does. Arithmetic saturates at `0` and
/// [`SimTime::MAX`] instead of panicking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

impl SimTime {
    /// Time zero, when every simulation starts.
    pub const ZERO: SimTime = SimTime(0);
    /// The largest representable time.
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// `n` microseconds.
    pub const fn from_micros(n: u64) -> Self {
        SimTime(n)
    }

    /// `n` milliseconds (saturating).
    pub const fn from_millis(n: u64) -> Self {
        SimTime(n.saturating_mul(1_000))
    }

    /// `n` seconds (saturating).
    pub const fn from_secs(n: u64) -> Self {
        SimTime(n.saturating_mul(1_000_000))
    }

    /// Whole microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds (truncated).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// Seconds as a float, for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// `self + rhs`, saturating at [`SimTime::MAX`].
    pub const fn saturating_add(self, rhs: SimTime) -> SimTime {
        SimTime(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, saturating at [`SimTime::ZERO`].
    pub const fn saturating_sub(self, rhs: SimTime) -> SimTime {
        SimTime(self.0.saturating_sub(rhs.0))
    }

    /// `self + rhs`, or `None` on overflow.
    pub const fn checked_add(self, rhs: SimTime) -> Option<SimTime> {
        match self.0.checked_add(rhs.0) {
            Some(t) => Some(SimTime(t)),
            None => None,
        }
    }

    /// `self - rhs`, or `None` if `rhs > self`.
    pub const fn checked_sub(self, rhs: SimTime) -> Option<SimTime> {
        match self.0.checked_sub(rhs.0) {
            Some(t) => Some(SimTime(t)),
            None => None,
        }
    }
}

impl Add for SimTime {
    type Output = SimTime;
    /// Saturating addition.
    fn add(self, rhs: SimTime) -> SimTime {
        self.saturating_add(rhs)
    }
}

impl AddAssign for SimTime {
    fn add_assign(&mut self, rhs: SimTime) {
        *self = *self + rhs;
    }
}

impl Sub for SimTime {
    type Output = SimTime;
    /// Saturating subtraction.
    fn sub(self, rhs: SimTime) -> SimTime {
        self.saturating_sub(rhs)
    }
}

impl SubAssign for SimTime {
    fn sub_assign(&mut self, rhs: SimTime) {
        *self = *self - rhs;
    }
}

impl Mul<u64> for SimTime {
    type Output = SimTime;
    /// Saturating multiplication.
    fn mul(self, rhs: u64) -> SimTime {
        SimTime(self.0.saturating_mul(rhs))
    }
}

impl From<Duration> for SimTime {
    /// Truncates to whole microseconds, saturating at [`SimTime::MAX`].
    fn from(d: Duration) -> Self {
        SimTime(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

impl From<SimTime> for Duration {
    fn from(t: SimTime) -> Self {
        Duration::from_micros(t.0)
    }
}

impl fmt::Display for SimTime {
    /// Seconds with six decimals, e.g. `1.250000s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}
