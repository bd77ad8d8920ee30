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
//! - **Timers.** A keepalive every `ping_interval`; nothing received for
//!   `idle_timeout` closes the connection (a partition, a dead peer); the
//!   host's session deadlines are checked every tick.
//! - **Faults.** A frame or envelope that does not parse closes the
//!   connection (nothing of it was applied); a session that fails through
//!   the peer's fault ([`SyncError::is_peer_fault`]) is counted in
//!   [`NodeStats::peer_faults`](super::NodeStats::peer_faults) and
//!   logged with the peer and the reason.
//!
//! [`NodeConfig::ae_interval`]: super::NodeConfig::ae_interval
//! [`NodeConfig::ae_soon`]: super::NodeConfig::ae_soon

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

use super::channel::{ErasedChannel, ErasedSession};
use super::error::NetError;
use super::handshake::handshake;
use super::shared::{lock, NodeEvent, PeerSlot, Shared};
use super::wire::Frame;
use super::writer::write_loop;
use crate::error::SyncError;
use crate::host::{HostConfig, HostEvent, Outcome, SessionEnd, SessionHost};
use crate::message::Bytes;
use crate::peer::PeerId;
use crate::rng::SplitMix64;
use crate::wire::FrameReader;

/// What every connection of a node shares: the node-wide state, the
/// channels, and the stop signal.
pub(crate) struct ConnEnv {
    pub(crate) shared: Arc<Shared>,
    pub(crate) channels: Vec<Arc<dyn ErasedChannel>>,
    pub(crate) stop: watch::Receiver<bool>,
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

/// A connection whose handshake completed, ready to [`serve`].
pub(crate) struct Handshaken<S> {
    rd: ReadHalf<S>,
    wr: WriteHalf<S>,
    reader: FrameReader,
    peer: PeerId,
    name: String,
}

impl<S> Handshaken<S> {
    /// The peer it reached.
    pub(crate) fn peer(&self) -> PeerId {
        self.peer
    }
}

/// Runs the handshake on a new stream.
pub(crate) async fn handshaken<S>(env: &ConnEnv, io: S) -> Result<Handshaken<S>, NetError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut reader = FrameReader::new();
    let mut stop = env.stop.clone();
    if *stop.borrow() {
        return Err(NetError::Local("shutting down"));
    }
    let hs = tokio::select! {
        r = handshake(env, &mut rd, &mut wr, &mut reader) => r,
        _ = stop.changed() => Err(NetError::Local("shutting down")),
    };
    match hs {
        Ok((peer, name)) => Ok(Handshaken {
            rd,
            wr,
            reader,
            peer,
            name,
        }),
        Err(e) => {
            debug!(error = %e, "handshake failed");
            Err(e)
        }
    }
}

/// Runs an established connection to its end.
pub(crate) async fn serve<S>(
    env: Arc<ConnEnv>,
    h: Handshaken<S>,
    dialed: bool,
) -> Result<(), NetError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    // Every event of the connection, the host's included (whose "peer" is
    // then a channel index), carries the node and the peer.
    let span =
        info_span!("connection", node = env.shared.config.id, peer = %h.peer, peer_name = %h.name);
    established(env, h.rd, h.wr, h.reader, dialed, h.peer, h.name)
        .instrument(span)
        .await
}

/// Runs one connection to its end: handshake, then [`serve`]. `Ok` for a
/// graceful end (`Bye`, shutdown, replaced).
pub(crate) async fn run<S>(env: Arc<ConnEnv>, io: S, dialed: bool) -> Result<(), NetError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let h = handshaken(&env, io).await?;
    serve(env, h, dialed).await
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
}

enum Flow {
    Continue,
    Bye,
}

async fn established<S>(
    env: Arc<ConnEnv>,
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
    let shared = Arc::clone(&env.shared);
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
    info!(node = cfg.id, %peer, peer_name = %name, dialed, "connected");
    shared.emit(NodeEvent::Connected {
        peer,
        name: name.clone(),
        dialed,
    });
    for c in &env.channels {
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
    };
    for _ in 0..env.channels.len() {
        let next = now + conn.jittered(cfg.ae_interval);
        conn.next_ae.push(next);
    }

    let max = frame_limit(&env);
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
                    while let Some(frame) = Frame::next(&mut reader, max)? {
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
    for c in &env.channels {
        c.disconnected(peer);
    }
    shared.counters.disconnects.add(1);
    let reason = match &result {
        Ok(()) => "closed".to_string(),
        Err(e) => e.to_string(),
    };
    info!(node = cfg.id, %peer, peer_name = %name, %reason, "disconnected");
    shared.emit(NodeEvent::Disconnected { peer, name, reason });
    result
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

    /// Starts a session on channel `c` if none runs there.
    fn start_session(&mut self, c: u16) {
        if self.host.has_session(c) {
            return;
        }
        let session = Arc::clone(&self.env.channels[usize::from(c)]).initiate();
        let now = self.now();
        if self.host.initiate(now, c, session).is_ok() {
            self.shared().counters.sessions_initiated.add(1);
        }
    }

    fn channel_name(&self, c: u16) -> &str {
        self.env.channels[usize::from(c)].name()
    }

    /// Sends what the host queued and acts on its events (retries start
    /// new sessions, whose messages go out in the same call).
    async fn pump(&mut self) -> Result<(), NetError> {
        loop {
            let mut frames = Vec::new();
            while let Some(t) = self.host.poll_transmit() {
                frames.push(
                    Frame::Session {
                        channel: t.to,
                        envelope: Bytes(t.bytes),
                    }
                    .to_wire(),
                );
            }
            let mut retries = Vec::new();
            while let Some(e) = self.host.poll_event() {
                match e {
                    HostEvent::Accepted { .. } => {
                        self.shared().counters.sessions_responded.add(1);
                    }
                    HostEvent::Ended(end) => self.on_ended(end),
                    HostEvent::RetryDue { peer: c } => retries.push(c),
                    HostEvent::Refused { .. } => {}
                }
            }
            let idle = frames.is_empty() && retries.is_empty();
            for f in frames {
                self.shared()
                    .counters
                    .session_bytes_sent
                    .add(f.len() as u64);
                self.send(f).await?;
            }
            for c in retries {
                self.start_session(c);
            }
            if idle {
                return Ok(());
            }
        }
    }

    /// Counts, reports and logs a session that ended, and schedules the
    /// channel's next periodic one.
    fn on_ended(&mut self, end: SessionEnd<u16, Box<dyn ErasedSession>>) {
        let c = end.peer;
        let stats = end.session.stats();
        let channel = self.channel_name(c).to_string();
        let initiator = end.id.initiated_here;
        let counters = &self.env.shared.counters;
        if initiator && matches!(end.outcome, Outcome::Completed | Outcome::Failed(_)) {
            counters.round_trips.add(stats.round_trips());
        }
        match &end.outcome {
            Outcome::Completed => {
                counters.sessions_completed.add(1);
                debug!(
                    peer = %self.peer, %channel, initiator,
                    bytes_sent = stats.bytes_sent, bytes_received = stats.bytes_received,
                    round_trips = stats.round_trips(), elapsed_ms = end.elapsed.as_millis() as u64,
                    "anti-entropy completed"
                );
                let next = Instant::now() + self.jittered(self.env.shared.config.ae_interval);
                self.next_ae[usize::from(c)] = next;
                self.env.shared.emit(NodeEvent::SessionCompleted {
                    peer: self.peer,
                    channel,
                    initiator,
                    stats,
                    elapsed: end.elapsed,
                });
                return;
            }
            Outcome::Failed(SyncError::NotConverged(_)) => counters.sessions_interrupted.add(1),
            Outcome::Failed(e) => {
                counters.sessions_failed.add(1);
                if e.is_peer_fault() {
                    counters.peer_faults.add(1);
                    warn!(peer = %self.peer, %channel, error = %e, "refused the peer's session message");
                }
            }
            Outcome::TimedOut => counters.sessions_timed_out.add(1),
            Outcome::AbortedByPeer => counters.sessions_failed.add(1),
            _ => {}
        }
        debug!(peer = %self.peer, %channel, initiator, outcome = ?end.outcome, "anti-entropy ended");
        self.env.shared.emit(NodeEvent::SessionEnded {
            peer: self.peer,
            channel,
            initiator,
            outcome: end.outcome,
            stats,
            elapsed: end.elapsed,
        });
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<Flow, NetError> {
        let n = self.env.channels.len();
        let channel_ok = |ch: u16| {
            if usize::from(ch) < n {
                Ok(usize::from(ch))
            } else {
                Err(NetError::Protocol(SyncError::Malformed("unknown channel")))
            }
        };
        match frame {
            Frame::Session { channel, envelope } => {
                let c = channel_ok(channel)?;
                self.shared()
                    .counters
                    .session_bytes_received
                    .add(envelope.0.len() as u64);
                let now = self.now();
                let ch = Arc::clone(&self.env.channels[c]);
                self.host
                    .handle(now, channel, &envelope.0, &mut (), || Some(ch.respond()))?;
                self.pump().await?;
            }
            Frame::Delta { channel, payload } => {
                let c = channel_ok(channel)?;
                self.shared().counters.deltas_received.add(1);
                if let Err(e) = self.env.channels[c].receive_delta(self.peer, &payload.0) {
                    self.shared().counters.peer_faults.add(1);
                    warn!(peer = %self.peer, channel = %self.channel_name(channel), error = %e, "refused a delta");
                    return Err(e.into());
                }
            }
            Frame::Ping => {}
            Frame::Bye => return Ok(Flow::Bye),
            Frame::Handshake(_) => return Err(NetError::Handshake("a second handshake")),
        }
        Ok(Flow::Continue)
    }

    async fn on_tick(&mut self) -> Result<(), NetError> {
        let now = Instant::now();
        let cfg = &self.env.shared.config;
        let (idle_timeout, ping_interval, ae_soon) =
            (cfg.idle_timeout, cfg.ping_interval, cfg.ae_soon);
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
