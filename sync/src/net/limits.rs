//! What any connection may cost a node: [`NetLimits`].
//!
//! A node listens on a port that anyone who reaches the network can
//! connect to. Before a peer has proved it is a member (TLS with a
//! certificate of the cluster's CA, then the handshake frame), it can
//! spend only:
//!
//! - one of [`max_pending_handshakes`](NetLimits::max_pending_handshakes)
//!   slots (at most [`max_pending_per_ip`](NetLimits::max_pending_per_ip)
//!   from one address), for at most
//!   [`NodeConfig::handshake_timeout`](super::NodeConfig::handshake_timeout)
//!   (TLS and handshake frame together), then it is closed. A connection
//!   over these limits is closed at once, which also frees its file
//!   descriptor;
//! - a handshake frame of at most
//!   [`handshake_frame_max`](NetLimits::handshake_frame_max) bytes, refused
//!   as soon as its length prefix says more.
//!
//! Members keep reserved capacity: established connections (members only)
//! count against [`max_connections`](NetLimits::max_connections), never
//! against the pending pool, and addresses from which a member has
//! authenticated before get
//! [`reserved_member_handshakes`](NetLimits::reserved_member_handshakes)
//! further pending slots when the general pool is full, so a flood of
//! strangers cannot keep a known member from reconnecting.
//!
//! Even a member is bounded: every frame, once its first byte arrived,
//! must complete within [`frame_grace`](NetLimits::frame_grace) plus its
//! length at [`min_frame_rate`](NetLimits::min_frame_rate) (a frame
//! trickled a byte at a time fails, whatever the idle timer says), and the
//! bytes buffered for incomplete frames across all connections stay below
//! [`frame_buffer_budget`](NetLimits::frame_buffer_budget) (the connection
//! whose bytes would exceed it is closed). The current total is
//! [`NodeStats::frame_buffer_bytes`](super::NodeStats::frame_buffer_bytes).
//! A member's token pulls, each of which makes the node read and encode a
//! key, pass a token bucket per connection
//! ([`pulls_per_second`](NetLimits::pulls_per_second),
//! [`pull_burst`](NetLimits::pull_burst)); a pull over it is not answered.

use std::time::Duration;

/// Bounds on what connections may cost: what a stranger can spend before
/// it authenticates, and what even a member can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetLimits {
    /// Established connections at once (each is an authenticated member;
    /// the pending pool is separate). Default 64.
    pub max_connections: usize,
    /// Accepted connections that have not yet completed TLS and the
    /// handshake frame. Default 64.
    pub max_pending_handshakes: usize,
    /// Of those, from one IP address. Default 8.
    pub max_pending_per_ip: usize,
    /// Further pending slots, usable only by addresses a member has
    /// authenticated from before, when the general pool is full.
    /// Default 16.
    pub reserved_member_handshakes: usize,
    /// Largest handshake frame, in bytes. Default 4 KiB.
    pub handshake_frame_max: usize,
    /// Time every frame gets on top of its length at `min_frame_rate`.
    /// Default 5 s.
    pub frame_grace: Duration,
    /// Slowest accepted rate, in bytes per second, for a frame in
    /// progress. Default 64 KiB/s (a 16 MiB frame may take 261 s).
    pub min_frame_rate: u64,
    /// Bytes buffered for incomplete frames across all connections.
    /// Default 64 MiB.
    pub frame_buffer_budget: usize,
    /// Token pulls a member may make per second on one connection, on
    /// average (each makes the node read and encode a key). Default 200.
    pub pulls_per_second: u32,
    /// Token pulls a member may make at once. Default 400.
    pub pull_burst: u32,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            max_connections: 64,
            max_pending_handshakes: 64,
            max_pending_per_ip: 8,
            reserved_member_handshakes: 16,
            handshake_frame_max: 4 << 10,
            frame_grace: Duration::from_secs(5),
            min_frame_rate: 64 << 10,
            frame_buffer_budget: 64 << 20,
            pulls_per_second: 200,
            pull_burst: 400,
        }
    }
}

impl NetLimits {
    /// Returns these limits with the connection bounds replaced.
    pub fn with_connections(mut self, established: usize, pending: usize, per_ip: usize) -> Self {
        self.max_connections = established;
        self.max_pending_handshakes = pending;
        self.max_pending_per_ip = per_ip;
        self
    }

    /// Returns these limits with
    /// [`reserved_member_handshakes`](Self::reserved_member_handshakes)
    /// replaced.
    pub fn with_reserved_member_handshakes(mut self, n: usize) -> Self {
        self.reserved_member_handshakes = n;
        self
    }

    /// Returns these limits with the frame deadline replaced: `grace` plus
    /// the frame's length at `min_rate` bytes per second.
    pub fn with_frame_deadline(mut self, grace: Duration, min_rate: u64) -> Self {
        self.frame_grace = grace;
        self.min_frame_rate = min_rate.max(1);
        self
    }

    /// Returns these limits with
    /// [`frame_buffer_budget`](Self::frame_buffer_budget) replaced.
    pub fn with_frame_buffer_budget(mut self, bytes: usize) -> Self {
        self.frame_buffer_budget = bytes;
        self
    }

    /// Returns these limits with
    /// [`handshake_frame_max`](Self::handshake_frame_max) replaced.
    pub fn with_handshake_frame_max(mut self, bytes: usize) -> Self {
        self.handshake_frame_max = bytes;
        self
    }

    /// Returns these limits with the pull rate replaced: `per_second` on
    /// average, `burst` at once. A pull over the rate is not answered
    /// (counted in [`NodeStats::pulls_limited`](super::NodeStats::pulls_limited));
    /// the puller asks again after its retry delay.
    pub fn with_pull_rate(mut self, per_second: u32, burst: u32) -> Self {
        self.pulls_per_second = per_second;
        self.pull_burst = burst;
        self
    }

    /// How long a frame of `len` bytes may take from its first byte.
    pub fn frame_deadline(&self, len: usize) -> Duration {
        let rate = self.min_frame_rate.max(1);
        let secs = len as f64 / rate as f64;
        self.frame_grace
            .saturating_add(Duration::from_secs_f64(secs.min(1e9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_gets_its_grace_plus_its_length_at_the_minimum_rate() {
        let l = NetLimits::default().with_frame_deadline(Duration::from_secs(2), 1000);
        assert_eq!(l.frame_deadline(0), Duration::from_secs(2));
        assert_eq!(l.frame_deadline(3000), Duration::from_secs(5));
        assert_eq!(
            NetLimits::default().frame_deadline(16 << 20),
            Duration::from_secs(5 + 256)
        );
        // A rate of 0 is read as 1 byte/s, never a division by zero.
        let z = NetLimits::default().with_frame_deadline(Duration::ZERO, 0);
        assert_eq!(z.frame_deadline(10), Duration::from_secs(10));
    }
}
