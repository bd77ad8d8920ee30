//! One anti-entropy session over any byte stream, without a node.
//!
//! [`sync_stream`] drives a [`Session`] over an `AsyncRead + AsyncWrite`
//! (a TCP stream, a Unix socket, an in-memory duplex): each session message
//! is framed by [`wire::frame`](crate::wire::frame), read back by
//! [`FrameReader`] (length checked before buffering), and every wait is
//! bounded by a timeout. It is the smallest way to carry the protocol over
//! a real transport; a [`Node`](super::Node) adds channels, deltas,
//! reconnection and periodic sessions on top.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::net::sync_stream;
//! use accordant_sync::store::Store;
//!
//! let mut eu: Store<u32, GCounter> = Store::new();
//! let mut us: Store<u32, GCounter> = Store::new();
//! let _ = eu.update(1, |c| c.increment(ReplicaId::from_u128(1), 5)).unwrap();
//! let _ = us.update(2, |c| c.increment(ReplicaId::from_u128(2), 7)).unwrap();
//!
//! let (mut a, mut b) = tokio::io::duplex(4096);
//! let t = Duration::from_secs(5);
//! let (ra, rb) = tokio::join!(
//!     sync_stream(&mut a, &mut eu, true, Default::default(), t),
//!     sync_stream(&mut b, &mut us, false, Default::default(), t),
//! );
//! assert!(ra.unwrap().round_trips() <= 3);
//! rb.unwrap();
//! assert_eq!(eu.root_digest(), us.root_digest());
//! # });
//! ```

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::session::{Session, SessionConfig, SessionStats};
use crate::store::{Store, StoreKey, StoreValue};
use crate::wire::{frame, FrameReader};

use super::error::NetError;

/// Runs one session over `io` as the initiator or the responder, until both
/// roots are verified equal. Each read waits at most `wait`. On error the
/// store keeps what earlier messages joined (joins only add information).
pub async fn sync_stream<S, K, V>(
    io: &mut S,
    store: &mut Store<K, V>,
    initiator: bool,
    config: SessionConfig,
    wait: Duration,
) -> Result<SessionStats, NetError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: StoreKey,
    V: StoreValue,
{
    let mut session = if initiator {
        Session::initiate(store, config)
    } else {
        Session::respond(config)
    };
    let mut reader = FrameReader::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let mut out = Vec::new();
        while let Some(m) = session.poll_transmit() {
            out.extend(frame(&m));
        }
        if !out.is_empty() {
            timeout(wait, async {
                io.write_all(&out).await?;
                io.flush().await
            })
            .await
            .map_err(|_| NetError::Timeout("write"))??;
        }
        if session.is_done() {
            return Ok(*session.stats());
        }
        let msg = timeout(wait, async {
            loop {
                if let Some(m) = reader.next_frame(config.limits.max_message_bytes)? {
                    return Ok::<Vec<u8>, NetError>(m);
                }
                let n = io.read(&mut buf).await?;
                if n == 0 {
                    return Err(NetError::Closed);
                }
                reader.push(&buf[..n]);
            }
        })
        .await
        .map_err(|_| NetError::Timeout("the peer's next session message"))??;
        session.handle(store, &msg)?;
    }
}
