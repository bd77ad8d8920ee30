//! How a node behaves on the network: [`NodeConfig`].
//!
//! Secure by default: a node needs its TLS material
//! ([`NodeConfig::with_tls`]), its cluster and member list
//! ([`NodeConfig::with_cluster`]) and the replica id it writes under
//! ([`NodeConfig::with_replica`]). Without TLS material
//! [`NodeBuilder::start`](super::NodeBuilder::start) refuses to start;
//! plaintext exists only behind [`NodeConfig::insecure_plaintext`], for
//! tests of the plaintext path and cost comparisons.
//!
//! Durable by default too: a node keeps its stores in a database in its
//! data directory ([`NodeConfig::with_data_dir`]), where its replica id
//! persists across restarts; a node with neither a data directory nor the
//! explicitly named [`NodeConfig::in_memory`] refuses to open its stores.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use accordant::ReplicaId;

use super::identity::TlsIdentity;
use super::limits::NetLimits;
use crate::admission::Admission;
use crate::session::SessionConfig;
use crate::store::db::Fsync;

/// How a node behaves on the network. The defaults suit regions a few
/// hundred milliseconds apart; every field has a `with_` setter.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// This node's id: unique among the nodes that talk to each other.
    /// With TLS, the node's certificate must name it.
    pub id: u64,
    /// A name for logs and events.
    pub name: String,
    /// The cluster's name: certificates name it next to the node id
    /// (`accordant://<cluster>/node/<id>`). Lower-case letters, digits
    /// and `-`, at most 63. Default `accordant`.
    pub cluster: String,
    /// The node ids allowed to connect: a certificate of the cluster's CA
    /// that names another id is refused. Default empty (no inbound peer).
    pub members: BTreeSet<u64>,
    /// This node's certificate, key and trusted CA certificates. `None`
    /// refuses to start unless [`insecure_plaintext`](Self::insecure_plaintext)
    /// is set.
    pub tls: Option<TlsIdentity>,
    /// Connections in plaintext, with no authentication: anyone who reaches
    /// the port is a peer and claims the node id it likes. For tests only.
    pub insecure_plaintext: bool,
    /// What values from peers must satisfy before they are joined (this
    /// node's replica id, the ceiling on dots and counts).
    pub admission: Admission,
    /// Bounds on what connections may cost (connections, pending
    /// handshakes, frame deadlines, buffered bytes).
    pub limits: NetLimits,
    /// Anti-entropy with each connected peer at least this often (jittered
    /// ±20%), on top of one at every (re)connect.
    pub ae_interval: Duration,
    /// After a delta to a peer was dropped (queue full), anti-entropy with
    /// that peer starts within this delay.
    pub ae_soon: Duration,
    /// A keepalive is sent this often.
    pub ping_interval: Duration,
    /// A connection that receives nothing for this long counts as lost: the
    /// peer is reported disconnected, its deltas stop, its sessions end and
    /// a dialer starts dialing again. (A frame in progress has its own
    /// deadline, [`NetLimits::frame_grace`](super::NetLimits::frame_grace):
    /// bytes trickled into it do not keep it alive.)
    pub idle_timeout: Duration,
    /// How long a connection lost to the idle timeout stays open, quiet, in
    /// case the peer speaks on it again (a partition that heals): if bytes
    /// arrive on it first, it resumes without a new handshake and the dialer
    /// starts anti-entropy at once; if a new connection to the peer is
    /// established first, or this delay passes, it is closed. At most one
    /// such connection per peer is kept besides the live one. Zero closes
    /// it at the idle timeout.
    pub quiet_linger: Duration,
    /// TLS and the peer's handshake frame together must complete within
    /// this delay from the connection's start (a trickle of bytes does not
    /// extend it).
    pub handshake_timeout: Duration,
    /// A connection attempt (TCP connect) must succeed within this delay.
    pub connect_timeout: Duration,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
    /// A session that receives nothing for this long is aborted.
    pub session_timeout: Duration,
    /// First delay before reconnecting; doubles per failure.
    pub backoff_initial: Duration,
    /// Largest delay between reconnection attempts that failed outright
    /// (refused, reset).
    pub backoff_max: Duration,
    /// While a peer does not answer, a new TCP connect starts this often,
    /// overlapping those still waiting: a healed partition is noticed
    /// within about this plus one round trip.
    pub dial_probe: Duration,
    /// TCP connects to one peer in flight at once.
    pub dial_parallel: usize,
    /// Delta frames queued per peer before new ones are dropped.
    pub delta_queue: usize,
    /// Session and control frames queued per connection.
    pub ctrl_queue: usize,
    /// Timer resolution of connections, and the replicators' tick.
    pub tick: Duration,
    /// The anti-entropy sessions' configuration (and the frame size limit:
    /// its `limits.max_message_bytes`).
    pub session: SessionConfig,
    /// Seed of the jitter (backoff and anti-entropy timers).
    pub seed: u64,
    /// Where [`Node::shutdown`](super::Node::shutdown) and the periodic snapshot write.
    pub snapshot_path: Option<PathBuf>,
    /// Snapshot this often (needs `snapshot_path`).
    pub snapshot_interval: Option<Duration>,
    /// Where the node keeps its database (`accordant.redb`). A node needs
    /// one, or [`in_memory`](Self::in_memory) set explicitly.
    pub data_dir: Option<PathBuf>,
    /// Runs without a data directory: every write is lost with the process.
    /// Set only through [`NodeConfig::in_memory`].
    pub in_memory: bool,
    /// When writes are made durable (see [`Fsync`]).
    pub fsync: Fsync,
    /// The database's page cache, bytes.
    pub cache_bytes: usize,
    /// Starts even when the database is corrupt or unreadable: the damaged
    /// file is moved aside, the node starts empty under a new replica id
    /// and pulls everything from its peers by anti-entropy. Without it, such
    /// a node refuses to start.
    pub resync_from_peers: bool,
    /// Each connection sends a [divergence probe](super::divergence) per
    /// channel this often (`None`: no monitor). Default 5 s.
    pub divergence_interval: Option<Duration>,
}

impl NodeConfig {
    /// Defaults for node `id`.
    pub fn new(id: u64, name: impl Into<String>) -> Self {
        NodeConfig {
            id,
            name: name.into(),
            cluster: "accordant".into(),
            members: BTreeSet::new(),
            tls: None,
            insecure_plaintext: false,
            admission: Admission::default(),
            limits: NetLimits::default(),
            ae_interval: Duration::from_secs(5),
            ae_soon: Duration::from_millis(250),
            ping_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            quiet_linger: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            dial_probe: Duration::from_millis(200),
            dial_parallel: 8,
            delta_queue: 1024,
            ctrl_queue: 256,
            tick: Duration::from_millis(25),
            session: SessionConfig::default(),
            seed: id,
            snapshot_path: None,
            snapshot_interval: None,
            data_dir: None,
            in_memory: false,
            fsync: Fsync::default(),
            cache_bytes: 64 << 20,
            resync_from_peers: false,
            divergence_interval: Some(Duration::from_secs(5)),
        }
    }

    /// Sets the cluster's name and the node ids allowed to connect.
    pub fn with_cluster(
        mut self,
        cluster: impl Into<String>,
        members: impl IntoIterator<Item = u64>,
    ) -> Self {
        self.cluster = cluster.into();
        self.members = members.into_iter().collect();
        self
    }

    /// Sets this node's TLS material (its certificate and key, and the
    /// cluster's CA certificates); see [`TlsIdentity::load`].
    pub fn with_tls(mut self, identity: TlsIdentity) -> Self {
        self.tls = Some(identity);
        self
    }

    /// **Insecure**: connections in plaintext, unauthenticated. Any host
    /// that reaches the port can read and write everything. For tests of
    /// the plaintext path and cost comparisons only.
    pub fn insecure_plaintext(mut self) -> Self {
        self.insecure_plaintext = true;
        self
    }

    /// Sets the replica id this node's writes are made under: values from
    /// peers claiming writes of it that it never made are refused (see
    /// [`crate::admission`]).
    pub fn with_replica(mut self, replica: ReplicaId) -> Self {
        self.admission.own = Some(replica);
        self
    }

    /// Sets the admission policy (own replica and ceiling) at once.
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Sets the connection limits.
    pub fn with_limits(mut self, limits: NetLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`ae_interval`](Self::ae_interval).
    pub fn with_ae_interval(mut self, d: Duration) -> Self {
        self.ae_interval = d;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval) and
    /// [`idle_timeout`](Self::idle_timeout).
    pub fn with_keepalive(mut self, ping: Duration, idle_timeout: Duration) -> Self {
        self.ping_interval = ping;
        self.idle_timeout = idle_timeout;
        self
    }

    /// Sets [`quiet_linger`](Self::quiet_linger).
    pub fn with_quiet_linger(mut self, linger: Duration) -> Self {
        self.quiet_linger = linger;
        self
    }

    /// Sets the handshake, connect, write and session timeouts.
    pub fn with_timeouts(
        mut self,
        handshake: Duration,
        connect: Duration,
        write: Duration,
        session: Duration,
    ) -> Self {
        self.handshake_timeout = handshake;
        self.connect_timeout = connect;
        self.write_timeout = write;
        self.session_timeout = session;
        self
    }

    /// Sets how often overlapping connection attempts start while a peer
    /// does not answer, and how many may be in flight.
    pub fn with_dial_probe(mut self, every: Duration, parallel: usize) -> Self {
        self.dial_probe = every;
        self.dial_parallel = parallel.max(1);
        self
    }

    /// Sets the reconnection backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// Sets [`delta_queue`](Self::delta_queue).
    pub fn with_delta_queue(mut self, frames: usize) -> Self {
        self.delta_queue = frames.max(1);
        self
    }

    /// Sets the session configuration.
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets how often each connection sends its divergence probes (`None`:
    /// no monitor).
    pub fn with_divergence_interval(mut self, every: Option<Duration>) -> Self {
        self.divergence_interval = every;
        self
    }

    /// Sets the jitter seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Snapshots to `path` on shutdown and, with `every`, periodically.
    pub fn with_snapshot(mut self, path: impl Into<PathBuf>, every: Option<Duration>) -> Self {
        self.snapshot_path = Some(path.into());
        self.snapshot_interval = every;
        self
    }

    /// Keeps the node's database in `dir` (created if missing): every
    /// acknowledged write is durable, and the node keeps its replica id
    /// across restarts.
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self.in_memory = false;
        self
    }

    /// Runs in memory only, on purpose: writes are acknowledged once
    /// applied and every one of them is lost when the process ends (peers
    /// may still hold them). For tests, caches and demos of recovery; a node
    /// with neither this nor a data directory refuses to open its stores.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self.data_dir = None;
        self
    }

    /// Sets [`fsync`](Self::fsync).
    pub fn with_fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// Sets [`cache_bytes`](Self::cache_bytes).
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`resync_from_peers`](Self::resync_from_peers).
    pub fn resync_from_peers(mut self) -> Self {
        self.resync_from_peers = true;
        self
    }
}
