//! A connection's writer task, fed by two bounded queues.
//!
//! Session and control frames go through a bounded queue the connection
//! waits on (with [`NodeConfig::write_timeout`](super::NodeConfig::write_timeout));
//! delta frames go through the peer's bounded delta queue, which local
//! writes only ever *offer* to (dropping when full). The writer takes
//! control frames first, batches what is queued into one write, and fails
//! the connection when a write makes no progress for `write_timeout`.
//!
//! The connection can gate the deltas ([`DeltaGate`]): while the peer has
//! been silent for a while they wait in their queue instead of piling up
//! in a socket that may lead into a partition (where, replayed all at once
//! when it heals, they would hold up the session that repairs the same
//! writes); once the connection has gone quiet they are discarded, since
//! the anti-entropy session run when it resumes carries them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

use super::error::NetError;
use super::lag::LagTracker;
use super::metrics::{Kind, PeerMetrics};
use super::shared::{lock, Counters, Shared};

/// What the writer does with the delta queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeltaGate {
    /// Deltas are written.
    Open,
    /// Deltas wait in their queue (the peer has been silent a while).
    Hold,
    /// Deltas are taken from the queue and dropped (the connection is
    /// quiet; the session on resuming carries them).
    Discard,
}

/// Writes queued frames: control frames first, then deltas (as `gate`
/// says), batched into one write of up to 64 KiB.
///
/// Deltas a discarding gate drops are reported to the lag tracker (with the
/// peer's metrics, the pair passed in): the peer never counts them, and
/// would otherwise leave the lag reading their age forever.
pub(crate) async fn write_loop<W>(
    mut wr: W,
    mut ctrl: mpsc::Receiver<Vec<u8>>,
    mut deltas: mpsc::Receiver<Arc<[u8]>>,
    mut gate: watch::Receiver<DeltaGate>,
    shared: Arc<Shared>,
    (peer, lag): (Arc<PeerMetrics>, Arc<Mutex<LagTracker>>),
    write_timeout: Duration,
) -> Result<(), NetError>
where
    W: AsyncWrite + Unpin,
{
    const BATCH: usize = 64 << 10;
    let counters: &Counters = &shared.counters;
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH);
    let mut deltas_open = true;
    let mut gate_open = true;
    // Delta frames written on this connection (what the peer counts).
    let mut written: u64 = 0;
    loop {
        buf.clear();
        let mut closing = false;
        let state = *gate.borrow_and_update();
        if state == DeltaGate::Discard {
            let mut dropped = 0;
            while deltas.try_recv().is_ok() {
                dropped += 1;
            }
            // Never sent, never counted by the peer: settle them in the lag.
            lock(&lag).dropped_unsent(written, dropped);
        }
        let send_deltas = state == DeltaGate::Open;
        tokio::select! {
            biased;
            m = ctrl.recv() => match m {
                Some(f) => buf.extend_from_slice(&f),
                None => closing = true,
            },
            changed = gate.changed(), if gate_open => {
                if changed.is_err() {
                    gate_open = false;
                }
                continue;
            }
            d = deltas.recv(), if deltas_open && send_deltas => match d {
                Some(f) => {
                    written += 1;
                    counters.deltas_sent.add(1);
                    counters.delta_bytes_sent.add(f.len() as u64);
                    peer.sent(Kind::Delta, f.len());
                    buf.extend_from_slice(&f);
                }
                None => deltas_open = false,
            },
        }
        while !closing && buf.len() < BATCH {
            if let Ok(f) = ctrl.try_recv() {
                buf.extend_from_slice(&f);
            } else if let Some(f) = send_deltas.then(|| deltas.try_recv().ok()).flatten() {
                written += 1;
                counters.deltas_sent.add(1);
                counters.delta_bytes_sent.add(f.len() as u64);
                peer.sent(Kind::Delta, f.len());
                buf.extend_from_slice(&f);
            } else {
                break;
            }
        }
        if !buf.is_empty() {
            timeout(write_timeout, wr.write_all(&buf))
                .await
                .map_err(|_| NetError::Timeout("write made no progress"))??;
            counters.bytes_sent.add(buf.len() as u64);
        }
        if closing {
            let _ = timeout(write_timeout, wr.flush()).await;
            let _ = timeout(write_timeout, wr.shutdown()).await;
            return Ok(());
        }
    }
}
