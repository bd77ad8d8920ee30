//! Replication lag: the age of the oldest delta a peer has not yet
//! acknowledged.
//!
//! Deltas to one peer travel in order on one connection (a FIFO queue, then
//! TCP), so "acknowledged" is a single number: the receiver counts the
//! delta frames it has read on the connection and sends the count back
//! ([`Frame::Received`](super::wire::Frame::Received), a few bytes, at most
//! once per tick and only when it moved). The sender numbers the frames it
//! queues and remembers *checkpoints* `(first number, time)`: the lag is the
//! age of the latest checkpoint at or below the first unacknowledged
//! number, and zero when nothing is outstanding.
//!
//! A checkpoint is taken at most once per [`LagTracker::RESOLUTION`] and at
//! most [`LagTracker::MAX_CHECKPOINTS`] are kept, so memory is bounded
//! whatever the write rate; the price is that the lag may read up to one
//! resolution high (a delta is dated by the checkpoint before it), and when
//! the ring is full (more than a thousand resolutions outstanding, which
//! means a lag of seconds anyway) later deltas are dated by the last
//! checkpoint kept. The reading is never low.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use accordant_sync::net::LagTracker;
//!
//! let t0 = Instant::now();
//! let mut lag = LagTracker::default();
//! lag.queued(t0);
//! lag.queued(t0 + Duration::from_millis(30));
//! assert_eq!(lag.lag(t0 + Duration::from_millis(100)), Duration::from_millis(100));
//! lag.acknowledged(1); // the first delta arrived: the second is the oldest
//! assert_eq!(lag.lag(t0 + Duration::from_millis(100)), Duration::from_millis(70));
//! lag.acknowledged(2);
//! assert_eq!(lag.lag(t0 + Duration::from_millis(100)), Duration::ZERO);
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The age of the oldest delta not yet acknowledged by one peer, on one
/// connection. The receiver reports how many delta frames it has read
/// ([`Frame::Received`](super::wire::Frame::Received)); the sender keeps
/// checkpoints of when it queued them, at most one per
/// [`RESOLUTION`](Self::RESOLUTION) and at most
/// [`MAX_CHECKPOINTS`](Self::MAX_CHECKPOINTS): the reading may be up to one
/// resolution high, never low.
#[derive(Debug, Default, Clone)]
pub struct LagTracker {
    /// Deltas queued so far.
    queued: u64,
    /// Deltas acknowledged so far (never above `queued`).
    acked: u64,
    /// `(number of the first delta queued at or after `time`, time)`,
    /// oldest first.
    checkpoints: VecDeque<(u64, Instant)>,
    /// Runs of deltas dropped unsent: `(deltas written before the run,
    /// length)`, oldest first, until the peer's count passes them.
    skips: VecDeque<(u64, u64)>,
    /// Deltas of runs the peer's count has passed.
    skipped: u64,
}

impl LagTracker {
    /// The finest time step between checkpoints.
    pub const RESOLUTION: Duration = Duration::from_millis(1);
    /// The most checkpoints kept.
    pub const MAX_CHECKPOINTS: usize = 1024;

    /// Records one more delta queued at `now`.
    pub fn queued(&mut self, now: Instant) {
        let n = self.queued;
        self.queued += 1;
        let due = self
            .checkpoints
            .back()
            .is_none_or(|&(_, t)| now.saturating_duration_since(t) >= Self::RESOLUTION);
        // While nothing is outstanding, the new delta always gets its own
        // checkpoint (the old ones are all acknowledged).
        if self.acked == n {
            self.checkpoints.clear();
            self.checkpoints.push_back((n, now));
        } else if due && self.checkpoints.len() < Self::MAX_CHECKPOINTS {
            self.checkpoints.push_back((n, now));
        }
    }

    /// The peer holds the first `count` deltas. A count above what was
    /// queued (a confused or lying peer) is capped; a lower count than an
    /// earlier one changes nothing.
    pub fn acknowledged(&mut self, count: u64) {
        // The peer counts the deltas it read; a run dropped unsent after
        // the first `w` written ones is behind it once it has read `w`.
        while let Some(&(w, n)) = self.skips.front() {
            if w > count {
                break;
            }
            self.skipped += n;
            self.skips.pop_front();
        }
        let count = count.saturating_add(self.skipped);
        self.acked = self.acked.max(count.min(self.queued));
        while self.checkpoints.len() > 1 && self.checkpoints[1].0 <= self.acked {
            self.checkpoints.pop_front();
        }
    }

    /// `n` queued deltas were dropped unsent (a quiet connection discards
    /// its queue) after `written` had been written on the connection: the
    /// peer will never count them, so they are acknowledged as soon as its
    /// count reaches `written`.
    pub fn dropped_unsent(&mut self, written: u64, n: u64) {
        if n == 0 {
            return;
        }
        match self.skips.back_mut() {
            Some((w, m)) if *w == written => *m += n,
            _ => self.skips.push_back((written, n)),
        }
        // The peer may have counted `written` already.
        let acked_count = self.acked.saturating_sub(self.skipped);
        self.acknowledged(acked_count);
    }

    /// Deltas queued and not yet acknowledged.
    pub fn outstanding(&self) -> u64 {
        self.queued - self.acked
    }

    /// Deltas queued so far.
    pub fn queued_total(&self) -> u64 {
        self.queued
    }

    /// The age at `now` of the oldest delta not yet acknowledged (zero when
    /// none is outstanding).
    pub fn lag(&self, now: Instant) -> Duration {
        if self.outstanding() == 0 {
            return Duration::ZERO;
        }
        self.checkpoints
            .front()
            .map_or(Duration::ZERO, |&(_, t)| now.saturating_duration_since(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn deltas_dropped_unsent_are_settled_once_the_peer_read_what_came_before() {
        let t0 = Instant::now();
        let mut l = LagTracker::default();
        for i in 0..10 {
            l.queued(t0 + ms(i));
        }
        // 4 written, then 3 dropped unsent (the link went quiet), then 3
        // more written after it resumed.
        l.dropped_unsent(4, 3);
        l.acknowledged(3);
        assert_eq!(l.outstanding(), 7, "the 4th written is still unread");
        l.acknowledged(4);
        assert_eq!(l.outstanding(), 3, "the dropped run is behind the peer");
        l.acknowledged(7);
        assert_eq!(l.outstanding(), 0);
        assert_eq!(l.lag(t0 + ms(100)), Duration::ZERO);
        // A run dropped after the peer already counted everything written.
        l.queued(t0 + ms(200));
        l.dropped_unsent(7, 1);
        assert_eq!(l.outstanding(), 0);
        // Without the drop, the peer's count could never settle them.
        let mut stuck = LagTracker::default();
        for i in 0..3 {
            stuck.queued(t0 + ms(i));
        }
        stuck.acknowledged(2);
        assert_eq!(stuck.outstanding(), 1);
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_unacknowledged_delta() {
        let t0 = Instant::now();
        let mut l = LagTracker::default();
        assert_eq!(l.lag(t0 + ms(50)), Duration::ZERO);
        for i in 0..10 {
            l.queued(t0 + ms(10 * i));
        }
        assert_eq!(l.outstanding(), 10);
        assert_eq!(l.lag(t0 + ms(200)), ms(200));
        l.acknowledged(4);
        assert_eq!(l.lag(t0 + ms(200)), ms(160));
        // Acks only grow; an ack beyond what was queued is capped.
        l.acknowledged(2);
        assert_eq!(l.lag(t0 + ms(200)), ms(160));
        l.acknowledged(1_000);
        assert_eq!(l.outstanding(), 0);
        assert_eq!(l.lag(t0 + ms(500)), Duration::ZERO);
        // A delta after a quiet spell is dated by its own time.
        l.queued(t0 + ms(400));
        assert_eq!(l.lag(t0 + ms(500)), ms(100));
    }

    #[test]
    fn memory_is_bounded_and_the_reading_never_low() {
        let t0 = Instant::now();
        let mut l = LagTracker::default();
        for i in 0..10_000u64 {
            l.queued(t0 + Duration::from_micros(500 * i));
        }
        assert!(l.checkpoints.len() <= LagTracker::MAX_CHECKPOINTS);
        let now = t0 + Duration::from_secs(10);
        for acked in [0u64, 17, 999, 2_047, 5_000, 9_999] {
            l.acknowledged(acked);
            let oldest_queued_at = t0 + Duration::from_micros(500 * acked);
            let truth = now - oldest_queued_at;
            let got = l.lag(now);
            assert!(got >= truth, "acked {acked}: {got:?} < {truth:?}");
            if acked < 2 * LagTracker::MAX_CHECKPOINTS as u64 {
                assert!(got - truth <= LagTracker::RESOLUTION, "acked {acked}");
            }
        }
    }
}
