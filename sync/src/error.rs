//! Errors of the sync protocol.

use accordant::DecodeError;

use crate::admission::Refusal;
use thiserror::Error;

/// Why a session failed. A failed session has applied nothing of the
/// message that failed it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A message exceeds [`SyncLimits::max_message_bytes`](crate::message::SyncLimits).
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length of the message.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The message is not well formed.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A key, value or summary inside a message failed to decode.
    #[error("invalid {what} in message: {source}")]
    Value {
        /// Which payload failed.
        what: &'static str,
        /// Why.
        source: DecodeError,
    },
    /// The message is valid but not expected now.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// The session exceeded its turn or message budget without finishing.
    #[error("no convergence within {0} messages")]
    TooManyTurns(u32),
    /// The session's last message found the two roots different although
    /// neither side took another write during the session (a 40-bit
    /// fingerprint coincidence, or a peer that lies); the count is the
    /// number of passes run.
    #[error("roots differ after {0} pass(es) though neither side took another write")]
    NotConverged(u8),
    /// The session is over; it accepts no more messages.
    #[error("the session is already finished")]
    Finished,
    /// A value in the message failed admission
    /// ([`Admission`](crate::admission::Admission)): it claims writes of
    /// this replica that it never made, or a number above the ceiling.
    #[error("refused data: {0}")]
    Refused(Refusal),
    /// The local store could not read or write its data (see
    /// [`Store::take_fault`](crate::store::Store::take_fault)): the session
    /// stops rather than trust a partial view. Nothing of the peer's fault.
    #[error("local storage failed: {0}")]
    LocalStorage(String),
}

impl SyncError {
    /// Whether the error shows the peer broke the protocol: a message that
    /// is malformed, oversized, of another version, carries a value that
    /// does not decode or fails admission, or arrives where the protocol
    /// allows none. A
    /// transport counts such peers and may drop them. The other errors
    /// (a session that ran out of turns or passes while the stores kept
    /// changing, a local misuse) are no one's fault and are only retried.
    pub fn is_peer_fault(&self) -> bool {
        match self {
            SyncError::TooLarge { .. }
            | SyncError::Version(_)
            | SyncError::Malformed(_)
            | SyncError::Value { .. }
            | SyncError::Unexpected(_)
            | SyncError::Refused(_) => true,
            SyncError::TooManyTurns(_)
            | SyncError::NotConverged(_)
            | SyncError::Finished
            | SyncError::LocalStorage(_) => false,
        }
    }
}

impl From<Refusal> for SyncError {
    fn from(r: Refusal) -> Self {
        SyncError::Refused(r)
    }
}
