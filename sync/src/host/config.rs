//! The host's settings: timeouts, backoff, the cap on sessions, the
//! in-order window.

use std::time::Duration;

/// Settings of a [`SessionHost`](super::SessionHost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostConfig {
    /// A session that accepts no message for this long is abandoned (it
    /// must exceed a round trip plus the time to send the largest turn).
    pub session_timeout: Duration,
    /// First delay before a failed session this side initiated is retried;
    /// doubles per consecutive failure with that peer.
    pub retry_after: Duration,
    /// The longest retry delay (before jitter: up to half again is added).
    pub retry_max: Duration,
    /// Sessions at once, all peers together; a peer's new session beyond
    /// it is refused with an abort (the peer retries later), so a replica
    /// far behind is not sent the same values by every peer at once.
    pub max_sessions: usize,
    /// Drop duplicates and hold early messages (by their index) instead of
    /// passing them to the session as they come. Off only to test what a
    /// session does with a raw, unordered stream.
    pub dedupe: bool,
    /// How far ahead of the next expected message one may arrive and be
    /// held.
    pub reorder_window: u32,
    /// Bytes of early messages held per session.
    pub reorder_bytes: usize,
}

impl Default for HostConfig {
    /// A 2 s session timeout, retries from 200 ms up to 5 s, no cap on
    /// sessions, dedupe with a window of 64 messages and 16 MiB.
    fn default() -> Self {
        HostConfig {
            session_timeout: Duration::from_secs(2),
            retry_after: Duration::from_millis(200),
            retry_max: Duration::from_secs(5),
            max_sessions: usize::MAX,
            dedupe: true,
            reorder_window: 64,
            reorder_bytes: 16 << 20,
        }
    }
}

impl HostConfig {
    /// Sets the session timeout.
    pub fn with_session_timeout(mut self, t: Duration) -> Self {
        self.session_timeout = t;
        self
    }

    /// Sets the first retry delay and the cap.
    pub fn with_retry(mut self, after: Duration, max: Duration) -> Self {
        self.retry_after = after;
        self.retry_max = max;
        self
    }

    /// Sets the cap on sessions at once.
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// Turns deduplication on or off.
    pub fn with_dedupe(mut self, dedupe: bool) -> Self {
        self.dedupe = dedupe;
        self
    }
}
