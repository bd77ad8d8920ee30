//! Hybrid logical clocks, with time passed in.
//!
//! An [`Hlc`] timestamp is `(physical milliseconds, logical counter)`
//! (Kulkarni, Demirbas et al., "Logical Physical Clocks", OPODIS 2014): it
//! stays close to wall-clock time, yet never goes backwards and always moves
//! past every timestamp the replica has seen, so causally later writes get
//! larger timestamps even when clocks disagree.
//!
//! Time is an input: an [`HlcClock`] reads milliseconds from a [`Clock`] you
//! pass (the system clock, or a [`ManualClock`] in tests), so every test is
//! deterministic.
//!
//! One replica with a clock far in the future would otherwise win every
//! last-writer-wins write forever. [`HlcClock::observe`] refuses a remote
//! timestamp more than `max_offset` ahead of local time with
//! [`ClockError::TooFarAhead`].
//!
//! ```
//! use accordant::{Clock, HlcClock, ManualClock};
//! let wall = ManualClock::new(1_000);
//! let mut hlc = HlcClock::new(500); // 500 ms maximum offset
//! let a = hlc.now(&wall).unwrap();
//! let b = hlc.now(&wall).unwrap(); // same millisecond: the logical part moves
//! assert!(b > a);
//! let far = accordant::Hlc::new(10_000, 0);
//! assert!(hlc.observe(far, &wall).is_err());
//! ```

use core::cell::Cell;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ClockError;

/// A source of physical time in milliseconds since an epoch of your choice.
pub trait Clock {
    /// Current physical time, in milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system clock (milliseconds since the Unix epoch).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that shows what you set: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock(Cell<u64>);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn new(ms: u64) -> Self {
        ManualClock(Cell::new(ms))
    }

    /// Sets the time.
    pub fn set(&self, ms: u64) {
        self.0.set(ms);
    }

    /// Moves time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get().saturating_add(ms));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// A hybrid-logical-clock timestamp; ordered by physical then logical part.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hlc {
    physical_ms: u64,
    logical: u32,
}

impl Hlc {
    /// A timestamp.
    pub const fn new(physical_ms: u64, logical: u32) -> Self {
        Hlc {
            physical_ms,
            logical,
        }
    }

    /// The physical part, in milliseconds.
    pub const fn physical_ms(&self) -> u64 {
        self.physical_ms
    }

    /// The logical part.
    pub const fn logical(&self) -> u32 {
        self.logical
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Hlc {
    /// Timestamps from a small range, so fuzzed writes tie and reorder.
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Hlc::new(
            u64::from(u.int_in_range(0u8..=31)?),
            u.int_in_range(0u32..=3)?,
        ))
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms, self.logical)
    }
}

/// The clock state of one replica: the last timestamp issued or observed.
#[derive(Debug, Clone)]
pub struct HlcClock {
    last: Hlc,
    max_offset_ms: u64,
}

impl HlcClock {
    /// A clock that refuses remote timestamps more than `max_offset_ms` ahead.
    pub fn new(max_offset_ms: u64) -> Self {
        HlcClock {
            last: Hlc::default(),
            max_offset_ms,
        }
    }

    /// The configured maximum offset.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// Issues a timestamp for a local event: larger than every timestamp
    /// issued or observed so far.
    pub fn now(&mut self, clock: &dyn Clock) -> Result<Hlc, ClockError> {
        let pt = clock.now_ms();
        let next = if pt > self.last.physical_ms {
            Hlc::new(pt, 0)
        } else {
            let logical = self
                .last
                .logical
                .checked_add(1)
                .ok_or(ClockError::LogicalOverflow)?;
            Hlc::new(self.last.physical_ms, logical)
        };
        self.last = next;
        Ok(next)
    }

    /// Checks a remote timestamp against the maximum offset, without
    /// changing the clock.
    pub fn check(&self, remote: Hlc, clock: &dyn Clock) -> Result<(), ClockError> {
        let pt = clock.now_ms();
        let ahead = remote.physical_ms.saturating_sub(pt);
        if ahead > self.max_offset_ms {
            return Err(ClockError::TooFarAhead {
                ahead_ms: ahead,
                max_offset_ms: self.max_offset_ms,
            });
        }
        Ok(())
    }

    /// Takes a remote timestamp into account so that later local timestamps
    /// exceed it; refuses it (changing nothing) if it is too far ahead.
    pub fn observe(&mut self, remote: Hlc, clock: &dyn Clock) -> Result<(), ClockError> {
        self.check(remote, clock)?;
        if remote > self.last {
            self.last = remote;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_monotonic_even_when_the_clock_goes_back() {
        let wall = ManualClock::new(100);
        let mut c = HlcClock::new(1000);
        let a = c.now(&wall).unwrap();
        wall.set(50);
        let b = c.now(&wall).unwrap();
        assert!(b > a);
        assert_eq!(b, Hlc::new(100, 1));
        wall.set(200);
        assert_eq!(c.now(&wall).unwrap(), Hlc::new(200, 0));
    }

    #[test]
    fn observed_timestamps_push_the_clock_forward() {
        let wall = ManualClock::new(100);
        let mut c = HlcClock::new(1000);
        c.observe(Hlc::new(900, 7), &wall).unwrap();
        assert_eq!(c.now(&wall).unwrap(), Hlc::new(900, 8));
    }

    #[test]
    fn remote_beyond_max_offset_is_refused_and_ignored() {
        let wall = ManualClock::new(100);
        let mut c = HlcClock::new(1000);
        let err = c.observe(Hlc::new(1101, 0), &wall).unwrap_err();
        assert_eq!(
            err,
            ClockError::TooFarAhead {
                ahead_ms: 1001,
                max_offset_ms: 1000
            }
        );
        assert_eq!(c.last(), Hlc::default());
        assert!(c.observe(Hlc::new(1100, 0), &wall).is_ok());
    }

    #[test]
    fn logical_overflow_is_an_error() {
        let wall = ManualClock::new(5);
        let mut c = HlcClock::new(0);
        c.observe(Hlc::new(5, u32::MAX), &wall).unwrap();
        assert_eq!(c.now(&wall), Err(ClockError::LogicalOverflow));
    }
}
