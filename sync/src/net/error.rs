//! Errors of the transport.

use std::io;

use thiserror::Error;

use super::identity::TlsError;
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
    /// The TLS handshake failed: no certificate, one of another CA, one
    /// naming no member, a plaintext peer, a protocol error.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The peer authenticated, but not as a node it may be here: not a
    /// member, not the node dialed, or a handshake frame naming another
    /// node than its certificate.
    #[error("identity refused: {0}")]
    Identity(&'static str),
    /// A limit of [`NetLimits`](super::NetLimits) closed the connection
    /// (too many connections or pending handshakes, a frame too slow, the
    /// node's frame buffer budget spent).
    #[error("over a limit: {0}")]
    Limit(&'static str),
    /// The node cannot start: missing or invalid TLS material, or an
    /// invalid configuration.
    #[error("cannot start the node: {0}")]
    Config(#[from] TlsError),
}
