//! Periodic anti-entropy between replicas in the [simulator](crate::sim).
//!
//! [`AntiEntropyNode`] is a [`Process`] that holds one [`Store`] and runs
//! anti-entropy [`Session`]s with the other processes through the crate's
//! one [`SessionHost`] — the same host the TCP node's connections and the
//! delta replicator drive, so what is tested here (ids, dedupe, the
//! tie-break, aborts, timeouts, backoff) is what runs on the wire. What
//! this module adds is only the simulator glue and a policy:
//!
//! - **Periodic anti-entropy.** Every [`AntiEntropyConfig::interval`] (plus
//!   a seeded jitter, so processes do not tick in lock step) the process
//!   initiates a session with one peer it has no session with: each peer in
//!   turn ([`PeerChoice::RoundRobin`]) or a random one
//!   ([`PeerChoice::Random`]). Anti-entropy is idempotent (a session only
//!   ever *joins* states), so starting one more session, or restarting one,
//!   is always safe.
//! - **Retries.** When the host says a failed session may be retried
//!   ([`HostEvent::RetryDue`]), the process initiates it again; until then
//!   the periodic tick leaves that peer alone (a peer at its cap is not
//!   asked again every tick).
//! - **Time.** The host's deadlines become simulator timers.
//!
//! Messages are the host's envelopes, carried whole by the simulator.
//!
//! # Statistics
//!
//! [`AntiEntropyNode::stats`] counts what the process sent and received
//! (envelopes included) and carries the host's [`HostStats`]: sessions
//! initiated, accepted, completed, failed (and how many of those only
//! because the stores kept changing), timed out, superseded or refused,
//! and the round trips of the completed sessions it initiated (so a sum of
//! those over all processes counts each session once).
//!
//! # Example
//!
//! Two regions 100 ms apart, on a lossy link, each with writes of its own:
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::sim::{AntiEntropyConfig, AntiEntropyNode, LinkConfig, RunOutcome, SimTime, Simulator};
//! use accordant_sync::store::Store;
//!
//! let mut sim = Simulator::new(7);
//! sim.set_default_link(LinkConfig::wan(SimTime::from_millis(100)).with_loss(0.1));
//! let config = AntiEntropyConfig::default()
//!     .with_interval(SimTime::from_millis(300))
//!     .with_timeout(SimTime::from_millis(500));
//! let eu = sim.add_node(AntiEntropyNode::<String, GCounter>::new(Store::new(), config));
//! let us = sim.add_node(AntiEntropyNode::new(Store::new(), config));
//! for (node, replica) in [(eu, 1), (us, 2)] {
//!     sim.poke(node, |n, _ctx| {
//!         let _ = n.store_mut().update("views".to_string(), |c| {
//!             c.increment(ReplicaId::from_u128(replica), 5)
//!         });
//!     });
//! }
//! let outcome = sim.run_until(SimTime::from_secs(30), |s| {
//!     s.nodes().all(|(_, n)| n.store().get(&"views".to_string()).map(|c| c.value()) == Some(10))
//! });
//! assert_eq!(outcome, RunOutcome::Condition);
//! ```

use std::time::Duration;

use super::{Ctx, Process, ProcessId, SimTime};
use crate::error::SyncError;
use crate::host::{HostConfig, HostEvent, HostStats, Outcome, SessionHost};
use crate::session::{Session, SessionConfig};
use crate::store::{Store, StoreKey, StoreValue};

/// Timer token of the periodic tick.
const TOKEN_TICK: u64 = 0;
/// Timer token of the host's next deadline.
const TOKEN_HOST: u64 = 1;

/// How a process picks the peer of its next periodic session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PeerChoice {
    /// Each other process in turn, skipping peers already in a session.
    #[default]
    RoundRobin,
    /// A random other process; the tick is skipped if a session with it is
    /// running.
    Random,
}

/// Settings of an [`AntiEntropyNode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AntiEntropyConfig {
    /// Settings of every session.
    pub session: SessionConfig,
    /// Settings of the session host (timeout, backoff, cap, dedupe).
    pub host: HostConfig,
    /// Time between periodic sessions; [`SimTime::ZERO`] disables them (the
    /// process still responds, and [`AntiEntropyNode::initiate`] still
    /// works).
    pub interval: SimTime,
    /// Extra delay drawn uniformly from `[0, interval_jitter]` per tick.
    pub interval_jitter: SimTime,
    /// How the periodic session picks its peer.
    pub peer_choice: PeerChoice,
}

impl Default for AntiEntropyConfig {
    /// Sessions every second (up to 100 ms of jitter), the host's defaults
    /// (a 2 s timeout, retries from 200 ms), round robin.
    fn default() -> Self {
        AntiEntropyConfig {
            session: SessionConfig::default(),
            host: HostConfig::default()
                .with_retry(Duration::from_millis(200), Duration::from_secs(1)),
            interval: SimTime::from_secs(1),
            interval_jitter: SimTime::from_millis(100),
            peer_choice: PeerChoice::RoundRobin,
        }
    }
}

impl AntiEntropyConfig {
    /// Sets the session settings.
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets the host settings.
    pub fn with_host(mut self, host: HostConfig) -> Self {
        self.host = host;
        self
    }

    /// Sets the tick interval (and caps the retry delay to it).
    pub fn with_interval(mut self, interval: SimTime) -> Self {
        self.interval = interval;
        if interval != SimTime::ZERO {
            self.host.retry_max = Duration::from(interval);
        }
        self
    }

    /// Sets the tick jitter.
    pub fn with_interval_jitter(mut self, jitter: SimTime) -> Self {
        self.interval_jitter = jitter;
        self
    }

    /// Sets the session timeout (the host's).
    pub fn with_timeout(mut self, timeout: SimTime) -> Self {
        self.host.session_timeout = timeout.into();
        self
    }

    /// Sets the first retry delay (the host's).
    pub fn with_retry_after(mut self, retry_after: SimTime) -> Self {
        self.host.retry_after = retry_after.into();
        self
    }

    /// Sets how peers are chosen.
    pub fn with_peer_choice(mut self, choice: PeerChoice) -> Self {
        self.peer_choice = choice;
        self
    }

    /// Sets the limit of sessions at once (the host's).
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.host.max_sessions = n;
        self
    }

    /// Turns the host's deduplication on or off.
    pub fn with_dedupe(mut self, dedupe: bool) -> Self {
        self.host.dedupe = dedupe;
        self
    }
}

/// What a process sent, received and ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AntiEntropyStats {
    /// Messages sent (session messages and aborts, in envelopes).
    pub messages_sent: u64,
    /// Bytes sent, envelopes included.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes received, envelopes included.
    pub bytes_received: u64,
    /// The host's counts: sessions by outcome, messages held or dropped,
    /// round trips.
    pub host: HostStats,
    /// The last error that failed a session here.
    pub last_error: Option<SyncError>,
}

/// A replica that runs anti-entropy with every other process of the
/// simulator. See the [module docs](self).
#[derive(Debug)]
pub struct AntiEntropyNode<K, V> {
    store: Store<K, V>,
    config: AntiEntropyConfig,
    host: Option<SessionHost<ProcessId, Session<K, V>>>,
    /// When the host timer is armed for.
    armed: Option<SimTime>,
    /// Next peer for round robin.
    rr_next: u32,
    stats: AntiEntropyStats,
}

impl<K: StoreKey, V: StoreValue> AntiEntropyNode<K, V> {
    /// A process holding `store`.
    pub fn new(store: Store<K, V>, config: AntiEntropyConfig) -> Self {
        AntiEntropyNode {
            store,
            config,
            host: None,
            armed: None,
            rr_next: 0,
            stats: AntiEntropyStats::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store<K, V> {
        &self.store
    }

    /// The store, for local writes (`sim.poke(id, |n, _| n.store_mut().update(..))`).
    pub fn store_mut(&mut self) -> &mut Store<K, V> {
        &mut self.store
    }

    /// The settings.
    pub fn config(&self) -> &AntiEntropyConfig {
        &self.config
    }

    /// Traffic and session counts so far.
    pub fn stats(&self) -> AntiEntropyStats {
        let mut s = self.stats.clone();
        if let Some(h) = &self.host {
            s.host = h.stats().clone();
        }
        s
    }

    /// Number of sessions running now.
    pub fn active_sessions(&self) -> usize {
        self.host.as_ref().map_or(0, SessionHost::sessions)
    }

    /// Whether a session with `peer` is running.
    pub fn has_session(&self, peer: ProcessId) -> bool {
        self.host.as_ref().is_some_and(|h| h.has_session(peer))
    }

    fn backing_off(&self, peer: ProcessId) -> bool {
        self.host.as_ref().is_some_and(|h| h.backing_off(peer))
    }

    /// Starts a session with `peer` now. Returns `false` (and does nothing)
    /// if `peer` is this process, does not exist, a session with it runs,
    /// or the host is at its cap.
    pub fn initiate(&mut self, ctx: &mut Ctx<'_>, peer: ProcessId) -> bool {
        if peer == ctx.id() || peer.0 >= ctx.node_count() {
            return false;
        }
        let session = Session::initiate(&self.store, self.config.session);
        let now = Duration::from(ctx.now());
        let started = self.host(ctx).initiate(now, peer, session).is_ok();
        self.after_host(ctx);
        started
    }

    /// The host, made on first use with a seed from the process's stream.
    fn host(&mut self, ctx: &mut Ctx<'_>) -> &mut SessionHost<ProcessId, Session<K, V>> {
        let config = self.config.host;
        self.host
            .get_or_insert_with(|| SessionHost::new(config, ctx.random_u64()))
    }

    /// Sends what the host queued, acts on its events, arms its timer.
    fn after_host(&mut self, ctx: &mut Ctx<'_>) {
        let Some(host) = self.host.as_mut() else {
            return;
        };
        while let Some(t) = host.poll_transmit() {
            self.stats.messages_sent += 1;
            self.stats.bytes_sent += t.bytes.len() as u64;
            ctx.send(t.to, t.bytes);
        }
        let mut retry = Vec::new();
        while let Some(e) = host.poll_event() {
            match e {
                HostEvent::RetryDue { peer } => retry.push(peer),
                HostEvent::Ended(end) => {
                    if let Outcome::Failed(err) = end.outcome {
                        self.stats.last_error = Some(err);
                    }
                }
                _ => {}
            }
        }
        if let Some(at) = host.poll_timeout() {
            let at = SimTime::from(at).max(ctx.now());
            if self.armed.is_none_or(|armed| at < armed) {
                self.armed = Some(at);
                ctx.set_timer(at - ctx.now(), TOKEN_HOST);
            }
        }
        for peer in retry {
            self.initiate(ctx, peer);
        }
    }

    fn schedule_tick(&mut self, ctx: &mut Ctx<'_>) {
        if self.config.interval == SimTime::ZERO {
            return;
        }
        let jitter = ctx.random_below(self.config.interval_jitter.as_micros() + 1);
        ctx.set_timer(
            self.config.interval + SimTime::from_micros(jitter),
            TOKEN_TICK,
        );
    }

    fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let n = ctx.node_count();
        let me = ctx.id().0;
        match self.config.peer_choice {
            PeerChoice::RoundRobin => {
                for i in 0..n {
                    let p = (self.rr_next.wrapping_add(i)) % n;
                    let peer = ProcessId(p);
                    if p != me && !self.has_session(peer) && !self.backing_off(peer) {
                        self.rr_next = p.wrapping_add(1);
                        self.initiate(ctx, peer);
                        break;
                    }
                }
            }
            PeerChoice::Random => {
                if n >= 2 {
                    let mut p = ctx.random_below(u64::from(n - 1)) as u32;
                    if p >= me {
                        p += 1;
                    }
                    if !self.backing_off(ProcessId(p)) {
                        self.initiate(ctx, ProcessId(p));
                    }
                }
            }
        }
        self.schedule_tick(ctx);
    }
}

impl<K: StoreKey, V: StoreValue> Process for AntiEntropyNode<K, V> {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        let _ = self.host(ctx);
        if self.config.interval == SimTime::ZERO {
            return;
        }
        // The first tick at a random point of the first interval.
        let first = ctx.random_below(self.config.interval.as_micros() + 1);
        ctx.set_timer(SimTime::from_micros(first), TOKEN_TICK);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: ProcessId, msg: Vec<u8>) {
        self.stats.messages_received += 1;
        self.stats.bytes_received += msg.len() as u64;
        if from == ctx.id() {
            return;
        }
        let now = Duration::from(ctx.now());
        let config = self.config.session;
        let _ = self.host(ctx);
        if let Some(host) = self.host.as_mut() {
            // A malformed envelope is counted by the host and dropped.
            let _ = host.handle(now, from, &msg, &mut self.store, || {
                Some(Session::respond(config))
            });
        }
        self.after_host(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        match token {
            TOKEN_TICK => self.tick(ctx),
            TOKEN_HOST => {
                if self.armed.is_some_and(|at| at <= ctx.now()) {
                    self.armed = None;
                }
                let now = Duration::from(ctx.now());
                if let Some(host) = self.host.as_mut() {
                    host.handle_timeout(now);
                }
                self.after_host(ctx);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use accordant::{GCounter, ReplicaId};

    use super::*;
    use crate::sim::{LinkConfig, RunOutcome, Simulator};

    #[test]
    fn max_sessions_holds_and_refused_peers_retry() {
        let mut sim = Simulator::new(3);
        sim.set_default_link(LinkConfig::wan(SimTime::from_millis(100)));
        let config = AntiEntropyConfig::default()
            .with_interval(SimTime::from_millis(100))
            .with_interval_jitter(SimTime::ZERO)
            .with_max_sessions(1);
        let ids: Vec<ProcessId> = (0..4)
            .map(|_| sim.add_node(AntiEntropyNode::<u32, GCounter>::new(Store::new(), config)))
            .collect();
        for (i, &id) in ids.iter().enumerate() {
            sim.poke(id, |n, _| {
                for k in 0..50 {
                    let _ = n
                        .store_mut()
                        .update(k, |c| c.increment(ReplicaId::from_u128(i as u128), 1));
                }
            });
        }
        let total = |n: &AntiEntropyNode<u32, GCounter>| -> u64 {
            n.store().iter().map(|(_, c)| c.value()).sum()
        };
        let deadline = SimTime::from_secs(30);
        let mut outcome = RunOutcome::Deadline;
        while sim.now() < deadline {
            if sim.nodes().all(|(_, n)| total(n) == 200) {
                outcome = RunOutcome::Condition;
                break;
            }
            sim.step();
            assert!(sim.nodes().all(|(_, n)| n.active_sessions() <= 1));
        }
        assert_eq!(outcome, RunOutcome::Condition);
        let refused: u64 = sim
            .nodes()
            .map(|(_, n)| n.stats().host.sessions_refused)
            .sum();
        assert!(refused > 0, "all four tick together: some must be refused");
    }
}
