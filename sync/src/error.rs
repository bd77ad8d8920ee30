//! Errors of the sync protocol.

use accordant::DecodeError;
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
}
