//! One connection: handshake, a writer task fed by two bounded queues, and a
//! loop that reads frames, drives the anti-entropy sessions and watches the
//! timers.
//!
//! - **Writer.** Session and control frames go through a bounded queue the
//!   loop waits on (with [`NodeConfig::write_timeout`]); delta frames go
//!   through the peer's bounded delta queue, which local writes only ever
//!   *offer* to (dropping when full). The writer takes control frames first,
//!   batches what is queued into one write, and fails the connection when a
//!   write makes no progress for `write_timeout`.
//! - **Sessions.** At most one session per channel at a time. The dialer
//!   starts one per channel as soon as the handshake is done (anti-entropy
//!   on every reconnect), and either side starts one every
//!   [`NodeConfig::ae_interval`] (jittered), or within
//!   [`NodeConfig::ae_soon`] after a delta to the peer was dropped. When both
//!   sides start one at the same moment the dialer's wins: the acceptor
//!   drops its own and answers. Stale messages of an aborted session are
//!   recognised by their id and ignored.
//! - **Timers.** A keepalive every `ping_interval`; nothing received for
//!   `idle_timeout` closes the connection (a partition, a dead peer); a
//!   session silent for `session_timeout` is aborted.
//!
//! [`NodeConfig::write_timeout`]: super::NodeConfig::write_timeout
//! [`NodeConfig::ae_interval`]: super::NodeConfig::ae_interval
//! [`NodeConfig::ae_soon`]: super::NodeConfig::ae_soon

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accordant::codec::SeqVec;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};

use crate::error::SyncError;
use crate::message::{self, Bytes, Message, SyncLimits};
use crate::wire::FrameReader;

use super::channel::{lock, ErasedSession};
use super::error::NetError;
use super::node::{Counters, NodeEvent, NodeInner, PeerSlot};
use super::replicate::PeerId;
use super::wire::{Frame, Handshake, DIALER_BIT, MAGIC};

/// How a connection ended.
pub(crate) struct ConnEnd {
    /// Whether the handshake completed.
    pub(crate) established: bool,
    /// `Ok` for a graceful end (`Bye`, shutdown, replaced).
    pub(crate) result: Result<(), NetError>,
}

/// Runs one connection to its end.
pub(crate) async fn run<S>(node: Arc<NodeInner>, io: S, dialed: bool) -> ConnEnd
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut reader = FrameReader::new();
    let mut stop = node.stop.clone();
    if *stop.borrow() {
        return ConnEnd {
            established: false,
            result: Err(NetError::Local("shutting down")),
        };
    }
    let hs = tokio::select! {
        r = handshake(&node, &mut rd, &mut wr, &mut reader) => r,
        _ = stop.changed() => Err(NetError::Local("shutting down")),
    };
    let (peer, name) = match hs {
        Ok(p) => p,
        Err(e) => {
            return ConnEnd {
                established: false,
                result: Err(e),
            }
        }
    };
    let result = established(node, rd, wr, reader, dialed, peer, name).await;
    ConnEnd {
        established: true,
        result,
    }
}

fn limits(node: &NodeInner) -> SyncLimits {
    let l = node.shared.config.session.limits;
    l.with_max_message_bytes(l.max_message_bytes.saturating_add(64))
}

async fn handshake<R, W>(
    node: &NodeInner,
    rd: &mut R,
    wr: &mut W,
    reader: &mut FrameReader,
) -> Result<(PeerId, String), NetError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cfg = &node.shared.config;
    let names: Vec<String> = node.channels.iter().map(|c| c.name().to_string()).collect();
    let mine = Frame::Handshake(Handshake {
        magic: MAGIC,
        node: cfg.id,
        name: cfg.name.clone(),
        channels: SeqVec(names.clone()),
    })
    .to_wire();
    let limits = limits(node);
    let exchange = async {
        wr.write_all(&mine).await?;
        wr.flush().await?;
        node.shared.counters.bytes_sent.add(mine.len() as u64);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = Frame::next(reader, &limits)? {
                return Ok::<Frame, NetError>(f);
            }
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Err(NetError::Closed);
            }
            node.shared.counters.bytes_received.add(n as u64);
            reader.push(&buf[..n]);
        }
    };
    let frame = timeout(cfg.handshake_timeout, exchange)
        .await
        .map_err(|_| NetError::Timeout("handshake"))??;
    let Frame::Handshake(h) = frame else {
        return Err(NetError::Handshake("the first frame is not a handshake"));
    };
    if h.magic != MAGIC {
        return Err(NetError::Handshake("bad magic"));
    }
    if h.node == cfg.id {
        return Err(NetError::Handshake("connected to itself"));
    }
    if h.channels.0 != names {
        return Err(NetError::Handshake("the peer's channels differ from ours"));
    }
    if h.name.len() > 256 {
        return Err(NetError::Handshake("name too long"));
    }
    Ok((PeerId(h.node), h.name))
}

/// A session in progress on one channel.
struct Active {
    id: u64,
    mine: bool,
    session: Box<dyn ErasedSession>,
    started: Instant,
    last_progress: Instant,
}

/// Per-channel state of a connection.
struct Slot {
    active: Option<Active>,
    next_ae: Instant,
    /// The largest session id the peer has started (ids only grow).
    peer_latest: Option<u64>,
    /// The last session that ended here verified, and whether we started
    /// it: the peer may still open a new pass of it (see `on_session`).
    finished: Option<(u64, bool)>,
}

struct Conn {
    node: Arc<NodeInner>,
    peer: PeerId,
    dialed: bool,
    ctrl: Option<mpsc::Sender<Vec<u8>>>,
    slots: Vec<Slot>,
    counter: u64,
    rng: ChaCha8Rng,
    last_rx: Instant,
    last_ping: Instant,
    ae_soon: Arc<AtomicBool>,
}

enum Flow {
    Continue,
    Bye,
}

async fn established<S>(
    node: Arc<NodeInner>,
    mut rd: ReadHalf<S>,
    wr: WriteHalf<S>,
    mut reader: FrameReader,
    dialed: bool,
    peer: PeerId,
    name: String,
) -> Result<(), NetError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let shared = Arc::clone(&node.shared);
    let cfg = &shared.config;
    let conn_id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (delta_tx, delta_rx) = mpsc::channel(cfg.delta_queue);
    let (ctrl_tx, ctrl_rx) = mpsc::channel(cfg.ctrl_queue);
    let (kill_tx, mut kill) = watch::channel(false);
    let ae_soon = Arc::new(AtomicBool::new(false));
    let old = lock(&shared.peers).insert(
        peer,
        PeerSlot {
            conn: conn_id,
            name: name.clone(),
            deltas: delta_tx,
            ae_soon: Arc::clone(&ae_soon),
            kill: kill_tx,
        },
    );
    if let Some(old) = old {
        // A newer connection to the same peer replaces the old one.
        let _ = old.kill.send(true);
    }
    shared.counters.connections.add(1);
    shared.emit(NodeEvent::Connected {
        peer,
        name: name.clone(),
        dialed,
    });
    for c in &node.channels {
        c.connected(peer);
    }

    let mut writer = tokio::spawn(write_loop(
        wr,
        ctrl_rx,
        delta_rx,
        Arc::clone(&shared),
        cfg.write_timeout,
    ));
    let now = Instant::now();
    let seed = cfg.seed ^ conn_id.rotate_left(32) ^ peer.0;
    let mut conn = Conn {
        node: Arc::clone(&node),
        peer,
        dialed,
        ctrl: Some(ctrl_tx),
        slots: Vec::new(),
        counter: 0,
        rng: ChaCha8Rng::seed_from_u64(seed),
        last_rx: now,
        last_ping: now,
        ae_soon,
    };
    for _ in 0..node.channels.len() {
        let next_ae = now + conn.jittered(cfg.ae_interval);
        conn.slots.push(Slot {
            active: None,
            next_ae,
            peer_latest: None,
            finished: None,
        });
    }

    let limits = limits(&node);
    let mut stop = node.stop.clone();
    let mut tick = tokio::time::interval(cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 16 << 10];

    let result: Result<(), NetError> = async {
        if dialed {
            for c in 0..conn.slots.len() {
                conn.start_session(c).await?;
            }
        }
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => {
                    let n = r?;
                    if n == 0 {
                        return Err(NetError::Closed);
                    }
                    conn.last_rx = Instant::now();
                    shared.counters.bytes_received.add(n as u64);
                    reader.push(&buf[..n]);
                    while let Some(frame) = Frame::next(&mut reader, &limits)? {
                        if let Flow::Bye = conn.on_frame(frame).await? {
                            return Ok(());
                        }
                    }
                }
                _ = tick.tick() => conn.on_tick().await?,
                w = &mut writer => {
                    return Err(match w {
                        Ok(Err(e)) => e,
                        _ => NetError::Closed,
                    });
                }
                _ = stop.changed() => {
                    conn.bye();
                    return Ok(());
                }
                _ = kill.changed() => {
                    conn.bye();
                    return Err(NetError::Local("replaced by a newer connection"));
                }
            }
        }
    }
    .await;

    // Tear down: unregister (unless a newer connection took the slot), let
    // the writer flush what is queued (Bye included), or stop it.
    {
        let mut peers = lock(&shared.peers);
        if peers.get(&peer).is_some_and(|s| s.conn == conn_id) {
            peers.remove(&peer);
        }
    }
    conn.ctrl = None;
    if result.is_ok() {
        if timeout(cfg.write_timeout, &mut writer).await.is_err() {
            writer.abort();
        }
    } else {
        writer.abort();
    }
    for c in &node.channels {
        c.disconnected(peer);
    }
    shared.counters.disconnects.add(1);
    shared.emit(NodeEvent::Disconnected {
        peer,
        name,
        reason: match &result {
            Ok(()) => "closed".to_string(),
            Err(e) => e.to_string(),
        },
    });
    result
}

impl Conn {
    fn jittered(&mut self, d: Duration) -> Duration {
        d.mul_f64(self.rng.random_range(0.8..=1.2))
    }

    fn session_id(&mut self) -> u64 {
        self.counter += 1;
        if self.dialed {
            self.counter | DIALER_BIT
        } else {
            self.counter
        }
    }

    /// Whether `id` names a session the peer initiated.
    fn peer_started(&self, id: u64) -> bool {
        (id & DIALER_BIT != 0) != self.dialed
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), NetError> {
        let Some(ctrl) = &self.ctrl else {
            return Err(NetError::Local("closing"));
        };
        let t = self.node.shared.config.write_timeout;
        match timeout(t, ctrl.send(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NetError::Closed),
            Err(_) => Err(NetError::Timeout(
                "the peer does not read (write queue full)",
            )),
        }
    }

    fn bye(&mut self) {
        if let Some(ctrl) = &self.ctrl {
            let _ = ctrl.try_send(Frame::Bye.to_wire());
        }
    }

    async fn start_session(&mut self, c: usize) -> Result<(), NetError> {
        let id = self.session_id();
        let session = Arc::clone(&self.node.channels[c]).initiate();
        let now = Instant::now();
        self.slots[c].active = Some(Active {
            id,
            mine: true,
            session,
            started: now,
            last_progress: now,
        });
        self.node.shared.counters.sessions_initiated.add(1);
        self.flush_session(c).await
    }

    /// Sends what the channel's active session has queued, and closes the
    /// session if it is done.
    async fn flush_session(&mut self, c: usize) -> Result<(), NetError> {
        let mut out = Vec::new();
        let Some(a) = self.slots[c].active.as_mut() else {
            return Ok(());
        };
        while let Some(msg) = a.session.poll_transmit() {
            out.push(
                Frame::Session {
                    channel: c as u16,
                    id: a.id,
                    msg: Bytes(msg),
                }
                .to_wire(),
            );
        }
        let done = a.session.is_done();
        for f in out {
            self.node
                .shared
                .counters
                .session_bytes_sent
                .add(f.len() as u64);
            self.send(f).await?;
        }
        if done {
            let a = self.slots[c].active.take().expect("active session");
            let stats = a.session.stats();
            let counters = &self.node.shared.counters;
            counters.sessions_completed.add(1);
            if a.mine {
                counters.round_trips.add(stats.round_trips());
            }
            self.node.shared.emit(NodeEvent::SessionCompleted {
                peer: self.peer,
                channel: self.node.channels[c].name().to_string(),
                initiator: a.mine,
                stats,
                elapsed: a.started.elapsed(),
            });
            let interval = self.node.shared.config.ae_interval;
            self.slots[c].next_ae = Instant::now() + self.jittered(interval);
            self.slots[c].finished = Some((a.id, a.mine));
        }
        Ok(())
    }

    /// Ends the channel's active session after an error: tells the peer,
    /// counts, reports.
    async fn end_session(
        &mut self,
        c: usize,
        error: SyncError,
        timed_out: bool,
    ) -> Result<(), NetError> {
        let Some(a) = self.slots[c].active.take() else {
            return Ok(());
        };
        let counters = &self.node.shared.counters;
        if timed_out {
            counters.sessions_timed_out.add(1);
        } else if matches!(error, SyncError::NotConverged(_)) {
            counters.sessions_interrupted.add(1);
        } else {
            counters.sessions_failed.add(1);
        }
        if a.mine && !timed_out {
            counters.round_trips.add(a.session.stats().round_trips());
        }
        self.node.shared.emit(NodeEvent::SessionEnded {
            peer: self.peer,
            channel: self.node.channels[c].name().to_string(),
            initiator: a.mine,
            error,
            stats: a.session.stats(),
            elapsed: a.started.elapsed(),
        });
        // Retry sooner than a full interval: the next session goes on where
        // this one stopped.
        let retry = self.node.shared.config.ae_soon * 4;
        self.slots[c].next_ae = Instant::now() + self.jittered(retry);
        self.send(
            Frame::Abort {
                channel: c as u16,
                id: a.id,
            }
            .to_wire(),
        )
        .await
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<Flow, NetError> {
        let n = self.slots.len();
        let channel_ok = |ch: u16| {
            if usize::from(ch) < n {
                Ok(usize::from(ch))
            } else {
                Err(NetError::Protocol(SyncError::Malformed("unknown channel")))
            }
        };
        match frame {
            Frame::Session { channel, id, msg } => {
                let c = channel_ok(channel)?;
                self.node
                    .shared
                    .counters
                    .session_bytes_received
                    .add(msg.0.len() as u64);
                self.on_session(c, id, &msg.0).await?;
            }
            Frame::Abort { channel, id } => {
                let c = channel_ok(channel)?;
                if self.slots[c].active.as_ref().is_some_and(|a| a.id == id) {
                    let a = self.slots[c].active.take().expect("active session");
                    let counters = &self.node.shared.counters;
                    counters.sessions_failed.add(1);
                    if a.mine {
                        counters.round_trips.add(a.session.stats().round_trips());
                    }
                    self.node.shared.emit(NodeEvent::SessionEnded {
                        peer: self.peer,
                        channel: self.node.channels[c].name().to_string(),
                        initiator: a.mine,
                        error: SyncError::Unexpected("aborted by the peer"),
                        stats: a.session.stats(),
                        elapsed: a.started.elapsed(),
                    });
                    let retry = self.node.shared.config.ae_soon * 4;
                    self.slots[c].next_ae = Instant::now() + self.jittered(retry);
                }
            }
            Frame::Delta { channel, payload } => {
                let c = channel_ok(channel)?;
                self.node.shared.counters.deltas_received.add(1);
                self.node.channels[c].receive_delta(self.peer, &payload.0)?;
            }
            Frame::Ping => {}
            Frame::Bye => return Ok(Flow::Bye),
            Frame::Handshake(_) => return Err(NetError::Handshake("a second handshake")),
        }
        Ok(Flow::Continue)
    }

    async fn on_session(&mut self, c: usize, id: u64, msg: &[u8]) -> Result<(), NetError> {
        let current = self.slots[c].active.as_ref().map(|a| a.id);
        let finished = self.slots[c].finished.filter(|(f, _)| *f == id);
        if current != Some(id) && finished.is_some() && current.is_none() && self.is_hello(msg) {
            // A session ends on each side when that side has seen equal
            // roots; if the other side's roots moved meanwhile (a local
            // write), it opens a new pass with a Hello. Answer it with a
            // fresh responder under the same id: the pass number in the
            // Hello keeps the session bounded by `max_passes`.
            let mine = finished.is_some_and(|(_, m)| m);
            self.slots[c].finished = None;
            let session = Arc::clone(&self.node.channels[c]).respond();
            self.node.shared.counters.sessions_responded.add(1);
            let now = Instant::now();
            self.slots[c].active = Some(Active {
                id,
                mine,
                session,
                started: now,
                last_progress: now,
            });
        } else if current != Some(id) {
            if !self.peer_started(id) || self.slots[c].peer_latest.is_some_and(|l| id <= l) {
                // A straggler of a session already ended here (one of ours,
                // or an older one of the peer's). If the peer is waiting on
                // it (a new pass), tell it to stop waiting.
                if self.is_hello(msg) {
                    return self
                        .send(
                            Frame::Abort {
                                channel: c as u16,
                                id,
                            }
                            .to_wire(),
                        )
                        .await;
                }
                return Ok(());
            }
            self.slots[c].peer_latest = Some(id);
            if let Some(a) = &self.slots[c].active {
                if a.mine && self.dialed {
                    // Both sides started at once: the dialer's session wins;
                    // the peer drops its own when it sees ours.
                    return Ok(());
                }
                // Ours loses (we accepted), or the peer gave up on its
                // previous session: drop it.
                self.slots[c].active = None;
            }
            let session = Arc::clone(&self.node.channels[c]).respond();
            self.node.shared.counters.sessions_responded.add(1);
            let now = Instant::now();
            self.slots[c].active = Some(Active {
                id,
                mine: false,
                session,
                started: now,
                last_progress: now,
            });
        }
        let a = self.slots[c].active.as_mut().expect("active session");
        a.last_progress = Instant::now();
        match a.session.handle(msg) {
            Ok(()) => self.flush_session(c).await,
            Err(e) => {
                // Whatever the session queued before failing is moot.
                self.end_session(c, e, false).await
            }
        }
    }

    fn is_hello(&self, msg: &[u8]) -> bool {
        matches!(
            message::decode(msg, &self.node.shared.config.session.limits),
            Ok(Message::Hello { .. })
        )
    }

    async fn on_tick(&mut self) -> Result<(), NetError> {
        let now = Instant::now();
        let cfg = &self.node.shared.config;
        let (idle_timeout, ping_interval, ae_soon, session_timeout) = (
            cfg.idle_timeout,
            cfg.ping_interval,
            cfg.ae_soon,
            cfg.session_timeout,
        );
        if now.duration_since(self.last_rx) > idle_timeout {
            return Err(NetError::Timeout(
                "nothing received from the peer (idle timeout)",
            ));
        }
        if now.duration_since(self.last_ping) >= ping_interval {
            self.last_ping = now;
            if let Some(ctrl) = &self.ctrl {
                // A full queue means frames are flowing anyway.
                let _ = ctrl.try_send(Frame::Ping.to_wire());
            }
        }
        if self.ae_soon.swap(false, Ordering::Relaxed) {
            for s in &mut self.slots {
                s.next_ae = s.next_ae.min(now + ae_soon);
            }
        }
        for c in 0..self.slots.len() {
            let stalled = self.slots[c]
                .active
                .as_ref()
                .is_some_and(|a| now.duration_since(a.last_progress) > session_timeout);
            if stalled {
                self.end_session(c, SyncError::Unexpected("session timed out"), true)
                    .await?;
            }
            if self.slots[c].active.is_none() && now >= self.slots[c].next_ae {
                self.start_session(c).await?;
            }
        }
        Ok(())
    }
}

/// Writes queued frames: control frames first, then deltas, batched into
/// one write of up to 64 KiB.
async fn write_loop<W>(
    mut wr: W,
    mut ctrl: mpsc::Receiver<Vec<u8>>,
    mut deltas: mpsc::Receiver<Arc<[u8]>>,
    shared: Arc<super::node::Shared>,
    write_timeout: Duration,
) -> Result<(), NetError>
where
    W: AsyncWrite + Unpin,
{
    const BATCH: usize = 64 << 10;
    let counters: &Counters = &shared.counters;
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH);
    let mut deltas_open = true;
    loop {
        buf.clear();
        let mut closing = false;
        tokio::select! {
            biased;
            m = ctrl.recv() => match m {
                Some(f) => buf.extend_from_slice(&f),
                None => closing = true,
            },
            d = deltas.recv(), if deltas_open => match d {
                Some(f) => {
                    counters.deltas_sent.add(1);
                    counters.delta_bytes_sent.add(f.len() as u64);
                    buf.extend_from_slice(&f);
                }
                None => deltas_open = false,
            },
        }
        while !closing && buf.len() < BATCH {
            if let Ok(f) = ctrl.try_recv() {
                buf.extend_from_slice(&f);
            } else if let Ok(f) = deltas.try_recv() {
                counters.deltas_sent.add(1);
                counters.delta_bytes_sent.add(f.len() as u64);
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
