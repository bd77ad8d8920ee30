//! What a link does to the messages it carries, and the simulator's
//! settings.

use core::num::NonZeroU64;

use super::time::SimTime;

/// How a directed link behaves; see the [module docs](super) for the exact
/// model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// Fixed propagation delay.
    pub latency: SimTime,
    /// Extra delay drawn uniformly from `[0, jitter]` per message.
    pub jitter: SimTime,
    /// Serialisation rate; `None` is unlimited.
    pub bandwidth_bytes_per_sec: Option<NonZeroU64>,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a delivered message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is delayed out of FIFO order.
    pub reorder: f64,
    /// Upper bound of the extra delay of a reordered message.
    pub reorder_delay: SimTime,
}

impl LinkConfig {
    /// Instant, unlimited and faultless.
    pub const fn ideal() -> Self {
        LinkConfig {
            latency: SimTime::ZERO,
            jitter: SimTime::ZERO,
            bandwidth_bytes_per_sec: None,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: SimTime::ZERO,
        }
    }

    /// A data-centre LAN: 250 µs one way, 50 µs jitter, 1 Gbit/s, no faults.
    pub const fn lan() -> Self {
        LinkConfig {
            latency: SimTime::from_micros(250),
            jitter: SimTime::from_micros(50),
            bandwidth_bytes_per_sec: NonZeroU64::new(125_000_000),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: SimTime::from_micros(500),
        }
    }

    /// A wide-area link with round-trip time `rtt`: one-way latency `rtt/2`,
    /// jitter `rtt/20`, 100 Mbit/s, no faults (add them with the `with_*`
    /// methods).
    pub const fn wan(rtt: SimTime) -> Self {
        LinkConfig {
            latency: SimTime(rtt.0 / 2),
            jitter: SimTime(rtt.0 / 20),
            bandwidth_bytes_per_sec: NonZeroU64::new(12_500_000),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: SimTime(rtt.0 / 2),
        }
    }

    /// Sets the one-way latency.
    pub const fn with_latency(mut self, latency: SimTime) -> Self {
        self.latency = latency;
        self
    }

    /// Sets the jitter bound.
    pub const fn with_jitter(mut self, jitter: SimTime) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the bandwidth in bytes per second; `0` means unlimited.
    pub const fn with_bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.bandwidth_bytes_per_sec = NonZeroU64::new(bytes_per_sec);
        self
    }

    /// Sets the loss probability.
    pub const fn with_loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Sets the duplication probability.
    pub const fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the reordering probability and the maximum extra delay of a
    /// reordered message.
    pub const fn with_reorder(mut self, p: f64, max_delay: SimTime) -> Self {
        self.reorder = p;
        self.reorder_delay = max_delay;
        self
    }

    /// Serialisation time of `len` bytes, rounded up to whole microseconds.
    pub(super) fn transmit_time(&self, len: usize) -> SimTime {
        match self.bandwidth_bytes_per_sec {
            None => SimTime::ZERO,
            Some(bw) => {
                let micros = (len as u128 * 1_000_000).div_ceil(u128::from(bw.get()));
                SimTime(u64::try_from(micros).unwrap_or(u64::MAX))
            }
        }
    }
}

impl Default for LinkConfig {
    /// [`LinkConfig::lan`].
    fn default() -> Self {
        LinkConfig::lan()
    }
}

/// Simulator-wide settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Configuration of every link not set with [`Simulator::set_link`](super::Simulator::set_link).
    pub default_link: LinkConfig,
    /// Messages in flight at once; more are dropped as `overflow`.
    pub max_in_flight: usize,
    /// Bytes in flight at once; more are dropped as `overflow`.
    pub max_in_flight_bytes: usize,
    /// Pending timers at once; more are dropped (see [`Stats::timers_dropped`](super::Stats::timers_dropped)).
    pub max_timers: usize,
    /// Events one `run_*` call may process before it returns
    /// [`RunOutcome::EventLimit`](super::RunOutcome::EventLimit).
    pub max_events_per_run: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            default_link: LinkConfig::lan(),
            max_in_flight: 1 << 20,
            max_in_flight_bytes: 1 << 30,
            max_timers: 1 << 20,
            max_events_per_run: 100_000_000,
        }
    }
}
