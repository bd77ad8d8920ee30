//! The node: stores, listeners, dialers with backoff, statistics, events,
//! snapshots and shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::channel::{Channel, ChannelShared, ChannelState, ErasedChannel};
use super::commit::Commits;
use super::config::NodeConfig;
use super::conn::{self, ConnEnv};
use super::conn::{LinkPhase, Role};
use super::error::NetError;
use super::identity::{TlsError, TlsIdentity};
use super::metrics::PeerStats;
use super::shared::{lock, NodeEvent, NodeStats, Shared};
use super::tls::TlsContext;
use crate::admission::Admit;
use crate::delta::{DeltaReplicator, NaivePush};
use crate::peer::PeerId;
use crate::rng::SplitMix64;
use crate::snapshot::{
    store_types, Snapshot, SnapshotError, SnapshotInfo, SnapshotLimits, SnapshotWriter,
};
use crate::store::db::{DbOptions, NodeIdentity, StoreDb};
use crate::store::{StorageError, Store, StoreKey, StoreValue};
use accordant::{Claims, ReplicaId};

mod dial;
use dial::*;

/// The database's file name in the data directory.
pub const DB_FILE: &str = "accordant.redb";

/// Everything a running node's tasks share.
pub(crate) struct NodeInner {
    env: Arc<ConnEnv>,
    tasks: Mutex<JoinSet<()>>,
}

impl NodeInner {
    pub(crate) fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(f);
    }
}

/// Builds a [`Node`]: its channels first, then [`NodeBuilder::start`].
pub struct NodeBuilder {
    shared: Arc<Shared>,
    channels: Vec<Arc<dyn ErasedChannel>>,
    restored: Option<Snapshot>,
    db: Option<StoreDb>,
    /// The replica id of an in-memory node (fresh per process).
    volatile_replica: ReplicaId,
}

impl NodeBuilder {
    /// A node with no channel yet.
    pub fn new(config: NodeConfig) -> Self {
        let volatile_replica = config
            .admission
            .own
            .unwrap_or_else(|| crate::snapshot::new_incarnation_id("in-memory node"));
        NodeBuilder {
            shared: Arc::new(Shared::new(config, None)),
            channels: Vec::new(),
            restored: None,
            db: None,
            volatile_replica,
        }
    }

    /// Binds the admission policy to the replica id this node writes under
    /// (its database's, or the in-memory node's), so that values claiming
    /// writes of it that it never made are refused. Done when the database
    /// opens, before any channel shares the node's state.
    fn bind_replica(&mut self, replica: ReplicaId) {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            let own = &mut shared.config.admission.own;
            if own.is_some_and(|r| r != replica) {
                warn!(
                    node = shared.config.id,
                    configured = ?own, %replica,
                    "the configured replica id differs from the database's: the database's is used"
                );
            }
            *own = Some(replica);
        }
    }

    fn identity(&self) -> NodeIdentity {
        NodeIdentity::new(self.shared.config.cluster.clone(), self.shared.config.id)
    }

    /// Opens the node's database (once): refuses without a data directory
    /// unless the node is explicitly in memory, cleans up temporary files a
    /// crash left, and refuses a foreign, corrupt or unreadable file —
    /// unless [`NodeConfig::resync_from_peers`] is set, in which case a
    /// corrupt or unreadable file is moved aside and the node starts empty
    /// under a new replica id.
    fn open_db(&mut self) -> Result<Option<StoreDb>, StorageError> {
        if let Some(db) = &self.db {
            return Ok(Some(db.clone()));
        }
        let cfg = &self.shared.config;
        let Some(dir) = cfg.data_dir.clone() else {
            return if cfg.in_memory {
                let replica = self.volatile_replica;
                self.bind_replica(replica);
                Ok(None)
            } else {
                Err(StorageError::NoDataDir)
            };
        };
        std::fs::create_dir_all(&dir).map_err(StorageError::from_io)?;
        remove_stale_temporaries(&dir);
        let path = dir.join(DB_FILE);
        let me = self.identity();
        let options = DbOptions::default()
            .with_cache_bytes(cfg.cache_bytes)
            .with_fsync(cfg.fsync);
        let db = match StoreDb::open(&path, &me, options) {
            Ok(db) => db,
            Err(
                e @ (StorageError::Corrupt(_)
                | StorageError::UnsupportedVersion(_)
                | StorageError::Io(_)),
            ) if cfg.resync_from_peers => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let aside = dir.join(format!("{DB_FILE}.damaged-{nanos}"));
                warn!(node = cfg.id, error = %e, aside = %aside.display(), "damaged database moved aside: resyncing from peers under a new replica id");
                std::fs::rename(&path, &aside).map_err(StorageError::from_io)?;
                StoreDb::open(&path, &me, options)?
            }
            Err(e) => return Err(e),
        };
        info!(node = cfg.id, path = %path.display(), replica = %db.replica(), "database open");
        self.bind_replica(db.replica());
        self.db = Some(db.clone());
        Ok(Some(db))
    }

    /// Uses `db` as the node's database (opened by you, e.g. over a redb
    /// backend of your own with [`StoreDb::open_with_backend`]) instead of
    /// the data directory's file.
    pub fn with_database(mut self, db: StoreDb) -> Self {
        self.bind_replica(db.replica());
        self.db = Some(db);
        self
    }

    /// Opens the node's database now (it is otherwise opened by the first
    /// [`NodeBuilder::channel`]), so that errors show before any channel.
    pub fn open(mut self) -> Result<Self, StorageError> {
        self.open_db()?;
        Ok(self)
    }

    /// The replica id this node writes under: kept in its database across
    /// restarts (a new one after a backup import or a resync), fresh per
    /// process for an in-memory node.
    pub fn replica(&mut self) -> Result<ReplicaId, StorageError> {
        Ok(match self.open_db()? {
            Some(db) => db.replica(),
            None => self.volatile_replica,
        })
    }

    /// Imports the backup at `path` (verified whole first; see
    /// [`crate::snapshot`]) into the channels added next. The backup must
    /// be this node's and this cluster's, and hold a section of the right
    /// type for every channel ([`StorageError::MissingSection`] otherwise).
    /// A backup may be older than what the node acknowledged since, so a
    /// durable node moves to a new replica id: it never reissues a dot.
    pub fn restore(mut self, path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let snap = Snapshot::read(path, &SnapshotLimits::default())?;
        let header = snap
            .backup_header()?
            .ok_or_else(|| StorageError::Corrupt("not a node backup (no backup header)".into()))?;
        let me = self.identity();
        if header.cluster != me.cluster {
            return Err(StorageError::ForeignFile {
                field: "cluster",
                expected: me.cluster,
                found: header.cluster,
            });
        }
        if header.node != me.node {
            return Err(StorageError::ForeignFile {
                field: "node",
                expected: me.node.to_string(),
                found: header.node.to_string(),
            });
        }
        if let Some(db) = self.open_db()? {
            let replica = db.new_replica(&me)?;
            info!(node = me.node, %replica, "backup imported: new replica id");
        }
        self.restored = Some(snap);
        Ok(self)
    }

    /// The store `name` of the node's database (an empty in-memory store on
    /// an in-memory node), for [`NodeBuilder::channel_with`] with a delta
    /// path of your choice.
    pub fn store<K: StoreKey, V: StoreValue>(
        &mut self,
        name: &str,
    ) -> Result<Store<K, V>, StorageError> {
        Ok(match self.open_db()? {
            Some(db) => db.store::<K, V>(name)?,
            None => Store::new(),
        })
    }

    /// Adds a channel with the default delta path ([`NaivePush`]): the
    /// store `name` of the node's database (or an empty in-memory store),
    /// joined with the imported backup's section `name` if
    /// [`NodeBuilder::restore`] was called.
    ///
    /// # Panics
    ///
    /// If a channel of that name exists, or there are 65,536 channels.
    pub fn channel<K, V>(&mut self, name: &str) -> Result<Channel<K, V>, StorageError>
    where
        K: StoreKey + Send + 'static,
        V: StoreValue + Claims + Send + 'static,
    {
        let mut store = self.store::<K, V>(name)?;
        if let Some(snap) = &self.restored {
            let header = snap
                .backup_header()?
                .unwrap_or_else(|| crate::snapshot::BackupHeader {
                    cluster: String::new(),
                    node: 0,
                    stores: Vec::new(),
                });
            let types = store_types::<K, V>();
            match header.stores.iter().find(|(n, _)| n == name) {
                Some((_, t)) if *t == types => {}
                Some((_, t)) => {
                    return Err(StorageError::TypeMismatch {
                        store: name.to_string(),
                        expected: types,
                        found: t.clone(),
                    })
                }
                None => return Err(StorageError::MissingSection(name.to_string())),
            }
            let backup: Store<K, V> = snap.store(name).map_err(|e| match e {
                SnapshotError::MissingSection(n) => StorageError::MissingSection(n),
                e => StorageError::Backup(e),
            })?;
            for (k, v) in backup.iter() {
                store.join(k, &v);
            }
            if let Some(e) = store.take_fault() {
                return Err(e);
            }
            store.commit()?;
        }
        let push = NaivePush {
            limits: self.shared.config.session.limits.value,
        };
        Ok(self.channel_with(name, store, Box::new(push)))
    }

    /// Adds a channel holding `store`, with the delta path `replicator`.
    ///
    /// # Panics
    ///
    /// If a channel of that name exists, or there are 65,536 channels.
    pub fn channel_with<K, V>(
        &mut self,
        name: &str,
        store: Store<K, V>,
        replicator: Box<dyn DeltaReplicator<K, V>>,
    ) -> Channel<K, V>
    where
        K: StoreKey + Send + 'static,
        V: StoreValue + Claims + Send + 'static,
    {
        assert!(
            self.channels.iter().all(|c| c.name() != name),
            "channel {name:?} added twice"
        );
        let index = u16::try_from(self.channels.len()).expect("at most 65,536 channels");
        let durable = store.is_durable();
        // Sessions (the node's and a delta path's fall-back) check what
        // they join with the same policy as deltas.
        let admit: Arc<dyn Admit<K, V> + Send + Sync> = Arc::new(self.shared.config.admission);
        let mut replicator = replicator;
        replicator.set_session_admission(admit.clone());
        let inner = Arc::new(ChannelShared {
            name: name.to_string(),
            index,
            node: Arc::clone(&self.shared),
            state: Mutex::new(ChannelState::new(store, replicator)),
            session: self.shared.config.session,
            commits: Commits::new(self.shared.config.fsync, durable)
                .with_latency(self.shared.metrics.commit_seconds.clone()),
            admit,
        });
        self.channels.push(inner.clone());
        Channel { inner }
    }

    /// Starts the node's timers (the replicators' tick, periodic snapshots).
    /// Must be called inside a tokio runtime. The node then accepts
    /// connections through [`Node::listen`] or [`Node::accept_stream`] and
    /// makes them through [`Node::dial`] or [`Node::dial_with`].
    ///
    /// Refuses to start ([`NetError::Config`]) without TLS material unless
    /// [`NodeConfig::insecure_plaintext`] was chosen, with both, or with
    /// material whose certificate does not name this node in its cluster.
    pub fn start(self) -> Result<Node, NetError> {
        let cfg = &self.shared.config;
        let tls = match (&cfg.tls, cfg.insecure_plaintext) {
            (None, false) => return Err(TlsError::NoMaterial.into()),
            (Some(_), true) => return Err(TlsError::Ambiguous.into()),
            (Some(identity), false) => Some(Arc::new(TlsContext::new(cfg, identity)?)),
            (None, true) => {
                warn!(
                    node = cfg.id,
                    "INSECURE: plaintext connections, no authentication"
                );
                None
            }
        };
        *self.shared.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
        let (stop_tx, stop) = watch::channel(false);
        let inner = Arc::new(NodeInner {
            env: Arc::new(ConnEnv {
                shared: self.shared,
                channels: self.channels,
                stop,
            }),
            tasks: Mutex::new(JoinSet::new()),
        });
        let node = Node {
            inner,
            stop_tx,
            db: self.db,
            replica: self.volatile_replica,
        };
        node.inner.spawn(tick_loop(Arc::clone(&node.inner)));
        for c in &node.inner.env.channels {
            if let Some(f) = Arc::clone(c).committer(node.inner.env.stop.clone()) {
                node.inner.spawn(f);
            }
        }
        if let (Some(_), Some(every)) = (
            &node.inner.env.shared.config.snapshot_path,
            node.inner.env.shared.config.snapshot_interval,
        ) {
            node.inner
                .spawn(snapshot_loop(Arc::clone(&node.inner), every));
        }
        Ok(node)
    }
}

/// A running node: one or more [`Channel`]s (stores), kept in sync with
/// every connected peer. See the [module docs](super).
pub struct Node {
    inner: Arc<NodeInner>,
    stop_tx: watch::Sender<bool>,
    db: Option<StoreDb>,
    replica: ReplicaId,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.env.shared.config.id)
            .field("name", &self.inner.env.shared.config.name)
            .finish()
    }
}

impl Node {
    /// This node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.env.shared.config
    }

    /// The replica id this node writes under (see
    /// [`NodeBuilder::replica`]).
    pub fn replica(&self) -> ReplicaId {
        self.db.as_ref().map_or(self.replica, StoreDb::replica)
    }

    /// How many times this node moved to a new replica id (0 for an
    /// in-memory node).
    pub fn generation(&self) -> u64 {
        self.db.as_ref().map_or(0, StoreDb::generation)
    }

    /// Commits every channel's staged writes now.
    pub fn flush(&self) -> Result<(), Arc<StorageError>> {
        for c in &self.inner.env.channels {
            c.flush()?;
        }
        Ok(())
    }

    /// Listens for peers on `addr` (port 0 picks one); returns the bound
    /// address. Each accepted stream runs as a connection.
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        info!(node = self.inner.env.shared.config.id, %local, "listening");
        let inner = Arc::clone(&self.inner);
        self.inner.spawn(async move {
            let mut stop = inner.env.stop.clone();
            // Refusals over the limits are logged once a second at most,
            // with their count (a flood must not flood the log too).
            let mut refused_since_log = 0u64;
            let mut last_log = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((stream, remote)) => {
                            let shared = &inner.env.shared;
                            let slot = match shared.try_pending(Some(remote.ip())) {
                                Ok(slot) => slot,
                                Err(reason) => {
                                    // Closed at once: the descriptor is freed.
                                    drop(stream);
                                    shared.counters.limit_refusals.add(1);
                                    refused_since_log += 1;
                                    if last_log.elapsed() >= Duration::from_secs(1) {
                                        info!(
                                            node = shared.config.id, %remote, reason,
                                            refused = refused_since_log,
                                            "connections refused over the limits"
                                        );
                                        refused_since_log = 0;
                                        last_log = tokio::time::Instant::now();
                                    }
                                    continue;
                                }
                            };
                            let _ = stream.set_nodelay(true);
                            let i = Arc::clone(&inner.env);
                            inner.spawn(async move {
                                let _ = conn::run(i, stream, Role::Accept, Some(remote), Some(slot), None).await;
                            });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    },
                    _ = stop.changed() => return,
                }
            }
        });
        Ok(local)
    }

    /// Keeps a connection to node `expected` at `addr`: connects, and
    /// reconnects with exponential backoff (capped, jittered) whenever it
    /// fails or ends, until shutdown. The peer must authenticate as
    /// `expected` (its certificate names it). Dial each pair of nodes from
    /// one side only.
    pub fn dial(&self, addr: SocketAddr, expected: u64) {
        self.dial_with(addr.to_string(), expected, move || async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(s)
        });
    }

    /// Like [`Node::dial`] over any stream: `connect` is called for every
    /// attempt. TLS runs over the stream as over TCP.
    pub fn dial_with<F, Fut, S>(&self, label: String, expected: u64, connect: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        self.inner.spawn(dial_loop(inner, label, expected, connect));
    }

    /// Runs one connection over an already accepted stream (this node is
    /// the acceptor; TLS runs over it as over TCP). It takes a
    /// pending-handshake slot like a TCP connection (with no address).
    /// Returns when the connection ends.
    pub async fn accept_stream<S>(&self, io: S) -> Result<(), NetError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let env = Arc::clone(&self.inner.env);
        let slot = env.shared.try_pending(None).map_err(NetError::Limit)?;
        conn::run(env, io, Role::Accept, None, Some(slot), None)
            .await
            .result
    }

    /// Runs one connection to node `expected` over an already connected
    /// stream (this node is the dialer), without reconnecting. Returns when
    /// it ends.
    pub async fn connect_stream<S>(&self, io: S, expected: u64) -> Result<(), NetError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        conn::run(
            Arc::clone(&self.inner.env),
            io,
            Role::Dial { expected },
            None,
            None,
            None,
        )
        .await
        .result
    }

    /// Loads new TLS material (a new certificate and key, a new CA
    /// bundle) without a restart: connections made from now on use it;
    /// established ones keep theirs until they reconnect. Refused, and the
    /// current material kept, if the new certificate does not name this
    /// node, or the node runs in insecure plaintext.
    pub fn reload_tls(&self, identity: TlsIdentity) -> Result<(), NetError> {
        let shared = &self.inner.env.shared;
        if shared.config.insecure_plaintext {
            return Err(TlsError::Ambiguous.into());
        }
        let ctx = TlsContext::new(&shared.config, &identity)?;
        *shared.tls.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(ctx));
        info!(node = shared.config.id, "TLS material reloaded");
        Ok(())
    }

    /// The peers connected now, with their names.
    pub fn peers(&self) -> Vec<(PeerId, String)> {
        lock(&self.inner.env.shared.peers)
            .iter()
            .map(|(p, s)| (*p, s.name.clone()))
            .collect()
    }

    /// Asks every connection for an anti-entropy session now.
    pub fn sync_now(&self) {
        for slot in lock(&self.inner.env.shared.peers).values() {
            slot.ae_soon
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> NodeStats {
        self.inner.env.shared.counters.snapshot()
    }

    /// Each peer this node has been connected to: link, lag, queue,
    /// traffic and the last divergence estimates (see
    /// [`super::divergence`]).
    pub fn peer_stats(&self) -> Vec<PeerStats> {
        super::metrics::peer_stats(&self.inner.env.shared)
    }

    /// The node's metrics in the Prometheus text format, as
    /// [`Node::serve_metrics`] serves them.
    #[cfg(feature = "metrics")]
    pub fn metrics_text(&self) -> String {
        super::exposition::render(&self.inner.env)
    }

    /// Serves the node's metrics over plain HTTP at `/metrics` on `addr`
    /// (port 0 picks one) until shutdown; returns the bound address. Put
    /// it on a loopback or management address: it is not authenticated.
    #[cfg(feature = "metrics")]
    pub async fn serve_metrics(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        info!(node = self.inner.env.shared.config.id, %local, "serving metrics");
        self.inner
            .spawn(super::http::serve(listener, Arc::clone(&self.inner.env)));
        Ok(local)
    }

    /// Subscribes to the node's events (a bounded buffer: a subscriber
    /// that falls behind loses the oldest).
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.env.shared.events.subscribe()
    }

    /// The root digest of every channel, in channel order.
    pub fn roots(&self) -> Vec<crate::digest::Digest> {
        self.inner
            .env
            .channels
            .iter()
            .map(|c| c.root_digest())
            .collect()
    }

    /// Exports a backup of every channel to `path`, atomically (see
    /// [`crate::snapshot`]): it records the cluster, the node and each
    /// store's types, and [`NodeBuilder::restore`] imports it. Every write
    /// acknowledged before this call is in the file once it returns `Ok`.
    pub async fn snapshot(&self, path: impl AsRef<Path>) -> Result<SnapshotInfo, SnapshotError> {
        snapshot_to(&self.inner, path.as_ref().to_path_buf()).await
    }

    /// Graceful shutdown: stops accepting and dialing, says `Bye` on every
    /// connection and flushes it, waits for every task, commits what is
    /// staged, and writes the final backup when
    /// [`NodeConfig::snapshot_path`] is set.
    pub async fn shutdown(self) -> Result<NodeStats, StorageError> {
        info!(node = self.inner.env.shared.config.id, "shutting down");
        let _ = self.stop_tx.send(true);
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        let grace = self.inner.env.shared.config.write_timeout + Duration::from_secs(1);
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!(
                node = self.inner.env.shared.config.id,
                "tasks still running after the grace period: aborted"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        for c in &self.inner.env.channels {
            c.flush()
                .map_err(|e| StorageError::Io(io::Error::other(e.to_string())))?;
        }
        if let Some(path) = self.inner.env.shared.config.snapshot_path.clone() {
            snapshot_to(&self.inner, path).await?;
        }
        // Release the file (and its lock) even while `Channel` handles live:
        // a restart in the same process can open it again.
        if let Some(db) = &self.db {
            db.close();
        }
        Ok(self.stats())
    }

    /// Stops everything at once, as a crash would: no `Bye`, no flush, no
    /// snapshot. For tests and demos of recovery.
    pub async fn kill(self) -> NodeStats {
        let _ = self.stop_tx.send(true);
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        lock(&self.inner.env.shared.peers).clear();
        // As the process's death would: the file is closed, nothing staged
        // is committed.
        if let Some(db) = &self.db {
            db.close();
        }
        self.stats()
    }
}

async fn snapshot_to(inner: &NodeInner, path: PathBuf) -> Result<SnapshotInfo, SnapshotError> {
    let mut w = SnapshotWriter::new();
    let mut keys = 0;
    for c in &inner.env.channels {
        let (section, n) = c.encode_section();
        keys += n;
        w.typed(c.name(), c.types(), section);
    }
    w.backup(&inner.env.shared.config.cluster, inner.env.shared.config.id);
    let info = tokio::task::spawn_blocking(move || w.write(path))
        .await
        .map_err(|e| SnapshotError::Io(io::Error::other(e)))??;
    let mut info = info;
    info.keys = keys;
    inner.env.shared.counters.snapshots.add(1);
    info!(
        node = inner.env.shared.config.id,
        keys,
        bytes = info.bytes,
        "snapshot written"
    );
    inner.env.shared.emit(NodeEvent::Snapshot(info));
    Ok(info)
}

async fn tick_loop(inner: Arc<NodeInner>) {
    let mut stop = inner.env.stop.clone();
    let mut t = tokio::time::interval(inner.env.shared.config.tick);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let divergence = inner.env.shared.config.divergence_interval;
    let mut next_divergence = tokio::time::Instant::now();
    let mut rng = SplitMix64::new(inner.env.shared.config.seed ^ 0xd1fe);
    loop {
        tokio::select! {
            _ = t.tick() => {
                for c in &inner.env.channels {
                    c.tick();
                }
                let now = tokio::time::Instant::now();
                if let Some(every) = divergence.filter(|_| now >= next_divergence) {
                    next_divergence = now + every;
                    super::divergence::refresh(&inner.env, rng.next_u64());
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn snapshot_loop(inner: Arc<NodeInner>, every: Duration) {
    let mut stop = inner.env.stop.clone();
    let Some(path) = inner.env.shared.config.snapshot_path.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {
                let _ = snapshot_to(&inner, path.clone()).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// Removes the temporary files an interrupted backup left in `dir` (see
/// [`crate::snapshot::write_atomic`]: `.<name>.tmp-<pid>-<n>`).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") {
            info!(file = %name, "removing a temporary file left by a crash");
            let _ = std::fs::remove_file(e.path());
        }
    }
}
