//! What the host reports: session ids, envelopes to send, how sessions
//! ended, events, refusals.

use std::time::Duration;

use crate::error::SyncError;

/// A session as the host names it: the initiator's session number and
/// whether this side initiated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId {
    /// The initiator's session number.
    pub number: u64,
    /// This side initiated it (the initiator bit, seen from here).
    pub initiated_here: bool,
}

/// An envelope to send to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<P> {
    /// The peer.
    pub to: P,
    /// The bytes: the host's envelope around a session message.
    pub bytes: Vec<u8>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Both sides verified what the session reconciled.
    Completed,
    /// The session failed with this error (see
    /// [`SyncError::is_peer_fault`]); the peer was told.
    Failed(SyncError),
    /// Nothing accepted for [`HostConfig::session_timeout`](super::HostConfig::session_timeout); the peer was
    /// told.
    TimedOut,
    /// The peer dropped it.
    AbortedByPeer,
    /// Replaced by the peer's session: both opened at once and the peer's
    /// won the tie-break, or the peer opened a new session, which means it
    /// had dropped this one.
    Superseded,
    /// Dropped here through [`SessionHost::abort`](super::SessionHost::abort).
    Aborted,
}

/// A session that ended, given back with how it ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct SessionEnd<P, T> {
    /// The peer.
    pub peer: P,
    /// The session's id.
    pub id: SessionId,
    /// How it ended.
    pub outcome: Outcome,
    /// The session itself (its statistics, its state).
    pub session: T,
    /// Time from its start to its end.
    pub elapsed: Duration,
}

/// What happened in the host, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostEvent<P, T> {
    /// A peer opened a session and this side responds.
    Accepted {
        /// The peer.
        peer: P,
        /// The session's id.
        id: SessionId,
    },
    /// A session ended (either role).
    Ended(SessionEnd<P, T>),
    /// A peer's session was refused at [`HostConfig::max_sessions`](super::HostConfig::max_sessions).
    Refused {
        /// The peer.
        peer: P,
    },
    /// A failed session this side initiated may be retried now.
    RetryDue {
        /// The peer.
        peer: P,
    },
}

/// Why [`SessionHost::initiate`](super::SessionHost::initiate) did not start a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Busy {
    /// A session with that peer is running.
    PeerBusy,
    /// [`HostConfig::max_sessions`](super::HostConfig::max_sessions) sessions are running.
    AtCapacity,
}
