//! What the host counted: [`HostStats`].

/// What the host did with messages and sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStats {
    /// Envelopes handed to the host.
    pub messages_received: u64,
    /// Envelopes the host queued.
    pub messages_sent: u64,
    /// Envelopes dropped before reaching a session: malformed, for an
    /// unknown or stale session.
    pub messages_ignored: u64,
    /// Envelopes dropped as duplicates or beyond the reorder window.
    pub messages_deduped: u64,
    /// Envelopes that arrived early and were held.
    pub messages_held: u64,
    /// Sessions started here.
    pub sessions_initiated: u64,
    /// Peers' sessions accepted here.
    pub sessions_accepted: u64,
    /// Sessions (either role) that completed here.
    pub sessions_completed: u64,
    /// Of those, the ones initiated here.
    pub sessions_completed_initiated: u64,
    /// Sessions that failed with an error here.
    pub sessions_failed: u64,
    /// Of those, failures that were the peer's fault
    /// ([`SyncError::is_peer_fault`](super::SyncError::is_peer_fault)).
    pub sessions_failed_peer_fault: u64,
    /// Of those, sessions whose stores kept changing through every pass
    /// ([`SyncError::NotConverged`](super::SyncError::NotConverged)).
    pub sessions_not_converged: u64,
    /// Sessions the peer aborted.
    pub sessions_aborted_by_peer: u64,
    /// Sessions abandoned after the timeout.
    pub sessions_timed_out: u64,
    /// Sessions replaced by the peer's.
    pub sessions_superseded: u64,
    /// Sessions dropped through [`SessionHost::abort`](super::SessionHost::abort).
    pub sessions_aborted: u64,
    /// Peers' sessions refused at the cap.
    pub sessions_refused: u64,
    /// Round trips of the completed sessions initiated here.
    pub round_trips: u64,
    /// The most round trips one completed session initiated here took.
    pub max_round_trips: u64,
    /// Keys whose state the ended sessions sent.
    pub keys_sent: u64,
}
