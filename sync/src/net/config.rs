//! How a node behaves on the network: [`NodeConfig`].

use std::path::PathBuf;
use std::time::Duration;

use crate::session::SessionConfig;
use crate::store::db::Fsync;

/// How a node behaves on the network. The defaults suit regions a few
/// hundred milliseconds apart; every field has a `with_` setter.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// This node's id: unique among the nodes that talk to each other.
    pub id: u64,
    /// A name for logs and events.
    pub name: String,
    /// Anti-entropy with each connected peer at least this often (jittered
    /// ±20%), on top of one at every (re)connect.
    pub ae_interval: Duration,
    /// After a delta to a peer was dropped (queue full), anti-entropy with
    /// that peer starts within this delay.
    pub ae_soon: Duration,
    /// A keepalive is sent this often.
    pub ping_interval: Duration,
    /// A connection that receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The peer's handshake must arrive within this delay.
    pub handshake_timeout: Duration,
    /// A connection attempt (TCP connect) must succeed within this delay.
    pub connect_timeout: Duration,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
    /// A session that receives nothing for this long is aborted.
    pub session_timeout: Duration,
    /// First delay before reconnecting; doubles per failure.
    pub backoff_initial: Duration,
    /// Largest delay between reconnection attempts.
    pub backoff_max: Duration,
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
    /// The cluster this node belongs to: recorded in its database and its
    /// backups, which another cluster's node refuses to open.
    pub cluster: String,
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
}

impl NodeConfig {
    /// Defaults for node `id`.
    pub fn new(id: u64, name: impl Into<String>) -> Self {
        NodeConfig {
            id,
            name: name.into(),
            ae_interval: Duration::from_secs(5),
            ae_soon: Duration::from_millis(250),
            ping_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            delta_queue: 1024,
            ctrl_queue: 256,
            tick: Duration::from_millis(25),
            session: SessionConfig::default(),
            seed: id,
            snapshot_path: None,
            snapshot_interval: None,
            cluster: "accordant".to_string(),
            data_dir: None,
            in_memory: false,
            fsync: Fsync::default(),
            cache_bytes: 64 << 20,
            resync_from_peers: false,
        }
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

    /// Sets [`cluster`](Self::cluster).
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = cluster.into();
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
}
