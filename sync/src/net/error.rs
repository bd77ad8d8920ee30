//! Errors of the transport.

use std::io;

use thiserror::Error;

use crate::error::SyncError;

/// Why a connection (or a one-off session over a stream) ended with an
/// error. Connections end; the node reconnects.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    /// Reading or writing the stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// Nothing arrived (or nothing could be written) within the configured
    /// time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The peer closed the stream.
    #[error("the peer closed the connection")]
    Closed,
    /// The peer's frame or message is malformed, oversized or out of place;
    /// what it carried was not applied.
    #[error("protocol error: {0}")]
    Protocol(#[from] SyncError),
    /// The handshake was refused: wrong magic, the node talking to itself,
    /// or channels that do not match.
    #[error("handshake refused: {0}")]
    Handshake(&'static str),
    /// The node is shutting down, or a newer connection to the same peer
    /// replaced this one.
    #[error("connection closed locally: {0}")]
    Local(&'static str),
}
