//! One connection: handshake, a writer task, and a loop that reads frames,
//! hands session envelopes to the connection's [`SessionHost`], and
//! watches the timers.
//!
//! - **Sessions.** Each connection has one [`SessionHost`] keyed by
//!   channel: at most one session per channel at a time, with the host's
//!   ids, in-order window, tie-break, aborts, timeouts and backoff — the
//!   same host the simulator tests drive. The dialer starts one session per
//!   channel as soon as the handshake is done (anti-entropy on every
//!   reconnect), and either side starts one every
//!   [`NodeConfig::ae_interval`] (jittered), or within
//!   [`NodeConfig::ae_soon`] after a delta to the peer was dropped, unless
//!   the host is backing off after a failure (it then says when to retry).
//! - **Timers.** A keepalive every `ping_interval`; the host's session
//!   deadlines are checked every tick. When nothing has come for one and a
//!   half keepalive intervals, deltas wait in their queue until bytes come
//!   again (a partition would otherwise hold them, and replay them all at
//!   once when it heals, ahead of the session that repairs the same
//!   writes).
//! - **Quiet, then resumed or closed.** Nothing received for
//!   `idle_timeout` (a partition, a dead peer) counts as a lost link at
//!   once: the peer is reported [`Disconnected`](super::NodeEvent::Disconnected),
//!   its slot (deltas, lag) is released, its queued deltas dropped, its
//!   sessions are aborted (the
//!   aborts wait in the socket behind what the peer has not read) and a
//!   dialer starts dialing again. The socket itself stays open, quiet, for
//!   [`NodeConfig::quiet_linger`], still sending keepalives: a partition
//!   holds bytes and resets nothing, so when it heals the peer's held
//!   keepalives arrive half a round trip later. The first bytes on a quiet
//!   connection *resume* it without a new handshake (TLS state and all):
//!   it takes its slot back, reports
//!   [`Connected`](super::NodeEvent::Connected) with `resumed`, and the
//!   dialer starts a session per channel at once. Make before break: if a
//!   new connection to the peer is established first (a real network's
//!   retransmission backoff may delay the old socket's bytes by seconds,
//!   while a fresh connect gets through at once), the quiet one closes;
//!   and it closes when the linger passes. Session messages the peer sent
//!   before it went quiet may still arrive (each followed by its abort):
//!   the dialer's sessions on resuming take the lowest tie-break
//!   ([`SessionHost::initiate_first`]), so a stale opening crossing them
//!   is ignored instead of taking their slot.
//! - **Faults.** A frame or envelope that does not parse closes the
//!   connection (nothing of it was applied); a session that fails through
//!   the peer's fault ([`SyncError::is_peer_fault`]) is counted in
//!   [`NodeStats::peer_faults`](super::NodeStats::peer_faults) and
//!   logged with the peer and the reason.
//!
//! [`NodeConfig::ae_interval`]: super::NodeConfig::ae_interval
//! [`NodeConfig::quiet_linger`]: super::NodeConfig::quiet_linger
//! [`NodeConfig::ae_soon`]: super::NodeConfig::ae_soon

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

use super::channel::{ErasedChannel, ErasedSession};
use super::error::NetError;
use super::handshake::handshake;
use super::lag::LagTracker;
use super::metrics::{refusal_reason, Kind, PeerMetrics, SessionOutcome};
use super::rate::TokenBucket;
use super::shared::{lock, BufferCharge, NodeEvent, PeerSlot, PendingSlot, Shared};
use super::wire::Frame;
use super::writer::{write_loop, DeltaGate};
use crate::error::SyncError;
use crate::host::{HostConfig, HostEvent, Outcome, SessionEnd, SessionHost};
use crate::message::Bytes;
use crate::peer::PeerId;
use crate::rng::SplitMix64;
use crate::wire::{varint_len, FrameReader};

mod frames;
mod quiet;
mod sessions;

/// What every connection of a node shares: the node-wide state, the
/// channels, and the stop signal.
pub(crate) struct ConnEnv {
    pub(crate) shared: Arc<Shared>,
    pub(crate) channels: Vec<Arc<dyn ErasedChannel>>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// How a connection ended.
pub(crate) struct ConnEnd {
    /// Whether the handshake completed.
    pub(crate) established: bool,
    /// `Ok` for a graceful end (`Bye`, shutdown, replaced).
    pub(crate) result: Result<(), NetError>,
}

/// The largest frame accepted: a session message plus its envelope and the
/// frame's own header.
pub(crate) fn frame_limit(env: &ConnEnv) -> usize {
    env.shared
        .config
        .session
        .limits
        .max_message_bytes
        .saturating_add(64)
}

/// Where a dialer's connection stands, as [`run`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkPhase {
    /// Before the handshake completed.
    Opening,
    /// Established (or resumed): the peer's slot is this connection's.
    Up,
    /// Quiet past the idle timeout, kept open in case the peer speaks.
    Quiet,
}

/// Which side of a connection this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// It accepted the connection: the peer may be any member.
    Accept,
    /// It dialed: the peer must be node `expected`.
    Dial {
        /// The node dialed.
        expected: u64,
    },
}

/// Runs one connection to its end: TLS (unless the node is in insecure
/// plaintext), the handshake frame, then the established connection. The
/// TLS handshake and the handshake frame share one deadline,
/// [`NodeConfig::handshake_timeout`](super::NodeConfig::handshake_timeout).
/// `pending` is the connection's pending-handshake slot, released once the
/// handshake ends. `link`, when given, follows the connection's
/// [`LinkPhase`].
pub(crate) async fn run<S>(
    env: Arc<ConnEnv>,
    io: S,
    role: Role,
    remote: Option<SocketAddr>,
    pending: Option<PendingSlot>,
    link: Option<watch::Sender<LinkPhase>>,
) -> ConnEnd
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let io = Box::pin(io);
    let deadline = Instant::now() + env.shared.config.handshake_timeout;
    let mut stop = env.stop.clone();
    if *stop.borrow() {
        return ConnEnd {
            established: false,
            result: Err(NetError::Local("shutting down")),
        };
    }
    let Some(tls) = env.shared.tls() else {
        return secured(env, io, role, None, deadline, remote, pending, link).await;
    };
    match role {
        Role::Accept => {
            let r = tokio::select! {
                r = timeout_at(deadline, tls.accept(io)) => {
                    r.unwrap_or(Err(NetError::Timeout("TLS handshake")))
                }
                _ = stop.changed() => Err(NetError::Local("shutting down")),
            };
            match r {
                Ok((io, id)) => {
                    secured(env, io, role, Some(id), deadline, remote, pending, link).await
                }
                Err(e) => failed(&env, remote, e),
            }
        }
        Role::Dial { expected } => {
            let r = tokio::select! {
                r = timeout_at(deadline, tls.connect(io, expected)) => {
                    r.unwrap_or(Err(NetError::Timeout("TLS handshake")))
                }
                _ = stop.changed() => Err(NetError::Local("shutting down")),
            };
            match r {
                Ok(io) => {
                    secured(
                        env,
                        io,
                        role,
                        Some(expected),
                        deadline,
                        remote,
                        pending,
                        link,
                    )
                    .await
                }
                Err(e) => failed(&env, remote, e),
            }
        }
    }
}

/// A connection that ended before it was established: counted, logged
/// and reported when the peer failed to authenticate.
fn failed(env: &ConnEnv, remote: Option<SocketAddr>, e: NetError) -> ConnEnd {
    let shared = &env.shared;
    let addr = remote.map(|a| a.to_string());
    match &e {
        NetError::Tls(_) | NetError::Identity(_) | NetError::Handshake(_) => {
            shared.counters.auth_failures.add(1);
            warn!(node = shared.config.id, addr = ?addr, reason = %e, "connection refused");
            shared.emit(NodeEvent::Refused {
                addr,
                peer: None,
                reason: e.to_string(),
            });
        }
        NetError::Limit(_) => {
            shared.counters.frame_limit_closes.add(1);
            warn!(node = shared.config.id, addr = ?addr, reason = %e, "connection closed before its handshake");
        }
        _ => debug!(node = shared.config.id, addr = ?addr, error = %e, "handshake failed"),
    }
    ConnEnd {
        established: false,
        result: Err(e),
    }
}

/// The connection after TLS (or in plaintext): the handshake frame, then
/// the established connection.
#[allow(clippy::too_many_arguments)]
async fn secured<S>(
    env: Arc<ConnEnv>,
    io: S,
    role: Role,
    cert_id: Option<u64>,
    deadline: Instant,
    remote: Option<SocketAddr>,
    pending: Option<PendingSlot>,
    link: Option<watch::Sender<LinkPhase>>,
) -> ConnEnd
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut reader = FrameReader::new();
    let mut charge = BufferCharge::new(&env.shared);
    let mut stop = env.stop.clone();
    let hs = tokio::select! {
        r = handshake(&env, &mut rd, &mut wr, &mut reader, &mut charge, role, cert_id, deadline) => r,
        _ = stop.changed() => Err(NetError::Local("shutting down")),
    };
    drop(pending);
    let (peer, name) = match hs {
        Ok(p) => p,
        Err(e) => return failed(&env, remote, e),
    };
    if let (Some(addr), Some(_), Role::Accept) = (remote, cert_id, role) {
        env.shared.member_seen(addr.ip());
    }
    let dialed = matches!(role, Role::Dial { .. });
    // Every event of the connection, the host's included (whose "peer" is
    // then a channel index), carries the node and the peer.
    let span = info_span!("connection", node = env.shared.config.id, %peer, peer_name = %name);
    let result = established(env, rd, wr, reader, charge, dialed, peer, name, link)
        .instrument(span)
        .await;
    ConnEnd {
        established: true,
        result,
    }
}

/// The state of one established connection.
struct Conn {
    env: Arc<ConnEnv>,
    peer: PeerId,
    ctrl: Option<mpsc::Sender<Vec<u8>>>,
    /// Sessions with the peer, one slot per channel index.
    host: SessionHost<u16, Box<dyn ErasedSession>>,
    /// The host's epoch.
    epoch: Instant,
    /// When each channel's next periodic session is due.
    next_ae: Vec<Instant>,
    rng: SplitMix64,
    last_rx: Instant,
    last_ping: Instant,
    ae_soon: Arc<AtomicBool>,
    /// What the node counts about this peer.
    metrics: Arc<PeerMetrics>,
    /// This connection's replication lag (shared with its peer slot).
    lag: Arc<Mutex<LagTracker>>,
    /// Delta frames read on this connection, and the count last reported
    /// to the peer ([`Frame::Received`]).
    deltas_read: u64,
    deltas_reported: u64,
    /// When the next divergence probes are due.
    next_probe: Option<Instant>,
    /// This connection's number (its peer slot's `conn`).
    conn_id: u64,
    /// Whether this node dialed.
    dialed: bool,
    /// The peer's name.
    name: String,
    /// Since when the connection has been quiet (past the idle timeout),
    /// and the peer slot it gave up meanwhile.
    quiet: Option<(Instant, PeerSlot)>,
    /// Reports the link's phase to the dial loop.
    link: Option<watch::Sender<LinkPhase>>,
    /// Tells the writer what to do with queued deltas.
    gate: watch::Sender<DeltaGate>,
    /// Per channel, after resuming: delta frames are skipped until the
    /// peer's first session frame there (see [`Conn::resume`]).
    skip_deltas: Vec<bool>,
    /// Meters the peer's token pulls.
    pulls: TokenBucket,
}

enum Flow {
    Continue,
    Bye,
}

#[allow(clippy::too_many_arguments)]
async fn established<S>(
    env: Arc<ConnEnv>,
    mut rd: ReadHalf<S>,
    wr: WriteHalf<S>,
    mut reader: FrameReader,
    mut charge: BufferCharge,
    dialed: bool,
    peer: PeerId,
    name: String,
    link: Option<watch::Sender<LinkPhase>>,
) -> Result<(), NetError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let shared = Arc::clone(&env.shared);
    let cfg = &shared.config;
    let conn_id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (delta_tx, delta_rx) = mpsc::channel(cfg.delta_queue);
    let (ctrl_tx, ctrl_rx) = mpsc::channel(cfg.ctrl_queue);
    let (kill_tx, mut kill) = watch::channel(false);
    let ae_soon = Arc::new(AtomicBool::new(false));
    let peer_metrics = shared.metrics.peer(peer, &name);
    let lag = Arc::new(Mutex::new(LagTracker::default()));
    let slot = PeerSlot {
        conn: conn_id,
        name: name.clone(),
        deltas: delta_tx,
        ae_soon: Arc::clone(&ae_soon),
        kill: kill_tx,
        metrics: Arc::clone(&peer_metrics),
        lag: Arc::clone(&lag),
    };
    let registered = {
        let mut peers = lock(&shared.peers);
        if !peers.contains_key(&peer) && peers.len() >= cfg.limits.max_connections {
            Err(())
        } else {
            Ok(peers.insert(peer, slot))
        }
    };
    let Ok(old) = registered else {
        shared.counters.limit_refusals.add(1);
        warn!(node = cfg.id, %peer, "connection refused: too many connections");
        return Err(NetError::Limit("too many connections"));
    };
    if let Some(old) = old {
        // A newer connection to the same peer replaces the old one.
        let _ = old.kill.send(true);
    }
    if let Some(link) = &link {
        link.send_replace(LinkPhase::Up);
    }
    shared.counters.connections.add(1);
    peer_metrics.links.fetch_add(1, Ordering::Relaxed);
    info!(node = cfg.id, %peer, peer_name = %name, dialed, "connected");
    shared.emit(NodeEvent::Connected {
        peer,
        name: name.clone(),
        dialed,
        resumed: false,
    });
    for c in &env.channels {
        c.connected(peer);
    }

    let (gate_tx, gate_rx) = watch::channel(DeltaGate::Open);
    let mut writer = tokio::spawn(write_loop(
        wr,
        ctrl_rx,
        delta_rx,
        gate_rx,
        Arc::clone(&shared),
        (Arc::clone(&peer_metrics), Arc::clone(&lag)),
        cfg.write_timeout,
    ));
    let now = Instant::now();
    // The peer's id is mixed in, not XORed: with the default seeds (the
    // node ids), `id ^ peer` is the same number on both ends of a
    // connection, and so were both hosts' tie-breaks.
    let seed = cfg.seed ^ conn_id.rotate_left(32) ^ peer.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let host_config = HostConfig::default()
        .with_session_timeout(cfg.session_timeout)
        .with_retry(cfg.ae_soon * 4, cfg.ae_interval);
    let mut conn = Conn {
        env: Arc::clone(&env),
        peer,
        ctrl: Some(ctrl_tx),
        host: SessionHost::new(host_config, seed),
        epoch: now,
        next_ae: Vec::new(),
        rng: SplitMix64::new(seed),
        last_rx: now,
        last_ping: now,
        ae_soon,
        metrics: Arc::clone(&peer_metrics),
        lag,
        deltas_read: 0,
        deltas_reported: 0,
        next_probe: cfg.divergence_interval.map(|_| now),
        conn_id,
        dialed,
        name: name.clone(),
        quiet: None,
        link,
        gate: gate_tx,
        skip_deltas: vec![false; env.channels.len()],
        pulls: TokenBucket::new(
            env.shared.config.limits.pull_burst,
            env.shared.config.limits.pulls_per_second,
            std::time::Instant::now(),
        ),
    };
    for _ in 0..env.channels.len() {
        let next = now + conn.jittered(cfg.ae_interval);
        conn.next_ae.push(next);
    }

    let max = frame_limit(&env);
    let limits = cfg.limits;
    // When the first byte of the frame now in progress arrived.
    let mut frame_start: Option<Instant> = None;
    let mut stop = env.stop.clone();
    let mut tick = tokio::time::interval(cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 16 << 10];

    let result: Result<(), NetError> = async {
        if dialed {
            for c in 0..env.channels.len() {
                conn.start_session(c as u16);
            }
            conn.pump().await?;
        }
        // Frames that came in the same reads as the peer's handshake frame.
        if conn.drain(&mut reader, max).await?.is_none() {
            return Ok(());
        }
        charge.set(reader.buffered())?;
        if reader.buffered() > 0 {
            frame_start = Some(Instant::now());
        }
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => {
                    let n = r?;
                    if n == 0 {
                        return Err(NetError::Closed);
                    }
                    conn.last_rx = Instant::now();
                    conn.set_gate(DeltaGate::Open);
                    if conn.quiet.is_some() {
                        conn.resume()?;
                        conn.pump().await?;
                        // A frame cut in half by the partition gets its
                        // grace again from now.
                        frame_start = frame_start.map(|_| Instant::now());
                    }
                    shared.counters.bytes_received.add(n as u64);
                    reader.push(&buf[..n]);
                    let Some(completed) = conn.drain(&mut reader, max).await? else {
                        return Ok(());
                    };
                    charge.set(reader.buffered())?;
                    if reader.buffered() == 0 {
                        frame_start = None;
                    } else if completed || frame_start.is_none() {
                        frame_start = Some(Instant::now());
                    }
                }
                _ = tick.tick() => {
                    // The frame in progress gets its grace plus its length
                    // at the minimum rate, from its first byte (not counting
                    // a quiet spell: the link is silent, not trickling).
                    if let (Some(start), None) = (frame_start, &conn.quiet) {
                        let len = reader.pending_len()?.unwrap_or(0);
                        if start.elapsed() > limits.frame_deadline(len) {
                            return Err(NetError::Limit("a frame did not complete in time"));
                        }
                    }
                    conn.on_tick().await?
                }
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
    // the writer flush what is queued (Bye included), or stop it. A quiet
    // connection was reported lost already.
    let was_quiet = conn.quiet.take().is_some();
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
    if let Err(NetError::Limit(_)) = &result {
        shared.counters.frame_limit_closes.add(1);
    }
    let reason = match &result {
        Ok(()) => "closed".to_string(),
        Err(e) => e.to_string(),
    };
    if was_quiet {
        shared.counters.quiet_connections.sub(1);
        debug!(node = cfg.id, %peer, peer_name = %name, %reason, "quiet connection closed");
        return result;
    }
    for c in &env.channels {
        c.disconnected(peer);
    }
    shared.counters.disconnects.add(1);
    peer_metrics.links.fetch_sub(1, Ordering::Relaxed);
    info!(node = cfg.id, %peer, peer_name = %name, %reason, "disconnected");
    shared.emit(NodeEvent::Disconnected { peer, name, reason });
    result
}

/// The traffic kind of a frame.
fn kind_of(frame: &Frame) -> Kind {
    match frame {
        Frame::Delta { .. } => Kind::Delta,
        Frame::Session { .. } => Kind::Session,
        Frame::Received { .. } => Kind::Ack,
        Frame::Probe { .. } => Kind::Probe,
        Frame::Pull { .. } | Frame::Value { .. } => Kind::Pull,
        Frame::Handshake(_) | Frame::Ping | Frame::Bye => Kind::Control,
    }
}

impl Conn {
    fn jittered(&mut self, d: Duration) -> Duration {
        d.mul_f64(0.8 + 0.4 * self.rng.unit())
    }

    /// The host's clock.
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn shared(&self) -> &Shared {
        &self.env.shared
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), NetError> {
        let Some(ctrl) = &self.ctrl else {
            return Err(NetError::Local("closing"));
        };
        let t = self.env.shared.config.write_timeout;
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

    fn channel_name(&self, c: u16) -> &str {
        self.env.channels[usize::from(c)].name()
    }

    /// Tells the peer how many delta frames arrived (when the count moved),
    /// and sends the divergence probes when due. Both are small and
    /// skipped when the control queue is full (they are sent again later).
    fn report_and_probe(&mut self, now: Instant) {
        let Some(ctrl) = self.ctrl.clone() else {
            return;
        };
        if self.deltas_read != self.deltas_reported {
            let f = Frame::Received {
                deltas: self.deltas_read,
            }
            .to_wire();
            let len = f.len();
            if ctrl.try_send(f).is_ok() {
                self.deltas_reported = self.deltas_read;
                self.metrics.sent(Kind::Ack, len);
            }
        }
        let (Some(due), Some(every)) = (self.next_probe, self.shared().config.divergence_interval)
        else {
            return;
        };
        if now < due {
            return;
        }
        self.next_probe = Some(now + self.jittered(every));
        for (c, ch) in self.env.channels.iter().enumerate() {
            let probe = ch.probe(self.rng.next_u64());
            let f = Frame::Probe {
                channel: c as u16,
                probe,
            }
            .to_wire();
            let len = f.len();
            if ctrl.try_send(f).is_ok() {
                self.metrics.sent(Kind::Probe, len);
            }
        }
    }

    async fn on_tick(&mut self) -> Result<(), NetError> {
        let now = Instant::now();
        let cfg = &self.env.shared.config;
        let (idle_timeout, ping_interval, ae_soon) =
            (cfg.idle_timeout, cfg.ping_interval, cfg.ae_soon);
        let linger = cfg.quiet_linger;
        if let Some((since, _)) = &self.quiet {
            if now.duration_since(*since) > linger {
                return Err(NetError::Timeout(
                    "nothing received from the peer (idle timeout and quiet linger)",
                ));
            }
            if lock(&self.env.shared.peers).contains_key(&self.peer) {
                return Err(NetError::Local("replaced by a newer connection"));
            }
        } else if now.duration_since(self.last_rx) > idle_timeout {
            if linger.is_zero() {
                return Err(NetError::Timeout(
                    "nothing received from the peer (idle timeout)",
                ));
            }
            self.go_quiet(now)?;
        } else if now.duration_since(self.last_rx) > ping_interval.mul_f64(1.5) {
            // The peer's keepalive is late: the link may be cut. Deltas wait
            // in their queue rather than in the socket (see the writer).
            self.set_gate(DeltaGate::Hold);
        }
        if now.duration_since(self.last_ping) >= ping_interval {
            self.last_ping = now;
            if let Some(ctrl) = &self.ctrl {
                // A full queue means frames are flowing anyway.
                let ping = Frame::Ping.to_wire();
                let len = ping.len();
                if ctrl.try_send(ping).is_ok() {
                    self.metrics.sent(Kind::Control, len);
                }
            }
        }
        if self.quiet.is_some() {
            // Keepalives only: the peer hears them when the link heals.
            return self.pump().await;
        }
        self.report_and_probe(now);
        if self.ae_soon.swap(false, Ordering::Relaxed) {
            for t in &mut self.next_ae {
                *t = (*t).min(now + ae_soon);
            }
        }
        let host_now = self.now();
        self.host.handle_timeout(host_now);
        for c in 0..self.next_ae.len() {
            let c16 = c as u16;
            if now >= self.next_ae[c] && !self.host.has_session(c16) && !self.host.backing_off(c16)
            {
                self.start_session(c16);
            }
        }
        self.pump().await
    }
}
