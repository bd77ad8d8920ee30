//! The node: stores, listeners, dialers with backoff, statistics, events,
//! snapshots and shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
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
use super::shared::{lock, Counters, NodeEvent, NodeStats, Shared};
use crate::delta::{DeltaReplicator, NaivePush};
use crate::peer::PeerId;
use crate::rng::SplitMix64;
use crate::snapshot::{
    store_types, Snapshot, SnapshotError, SnapshotInfo, SnapshotLimits, SnapshotWriter,
};
use crate::store::db::{DbOptions, NodeIdentity, StoreDb};
use crate::store::{StorageError, Store, StoreKey, StoreValue};
use accordant::ReplicaId;

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
        let (events, _) = broadcast::channel(4096);
        NodeBuilder {
            shared: Arc::new(Shared {
                config,
                peers: Mutex::new(BTreeMap::new()),
                counters: Counters::default(),
                events,
                next_conn: AtomicU64::new(1),
            }),
            channels: Vec::new(),
            restored: None,
            db: None,
            volatile_replica: crate::snapshot::new_incarnation_id("in-memory node"),
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
        self.db = Some(db.clone());
        Ok(Some(db))
    }

    /// Uses `db` as the node's database (opened by you, e.g. over a redb
    /// backend of your own with [`StoreDb::open_with_backend`]) instead of
    /// the data directory's file.
    pub fn with_database(mut self, db: StoreDb) -> Self {
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
        V: StoreValue + Send + 'static,
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
        V: StoreValue + Send + 'static,
    {
        assert!(
            self.channels.iter().all(|c| c.name() != name),
            "channel {name:?} added twice"
        );
        let index = u16::try_from(self.channels.len()).expect("at most 65,536 channels");
        let durable = store.is_durable();
        let inner = Arc::new(ChannelShared {
            name: name.to_string(),
            index,
            node: Arc::clone(&self.shared),
            state: Mutex::new(ChannelState::new(store, replicator)),
            session: self.shared.config.session,
            commits: Commits::new(self.shared.config.fsync, durable),
        });
        self.channels.push(inner.clone());
        Channel { inner }
    }

    /// Starts the node's timers (the replicators' tick, periodic snapshots).
    /// Must be called inside a tokio runtime. The node then accepts
    /// connections through [`Node::listen`] or [`Node::accept_stream`] and
    /// makes them through [`Node::dial`] or [`Node::dial_with`].
    pub fn start(self) -> Node {
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
        node
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
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let i = Arc::clone(&inner.env);
                            inner.spawn(async move {
                                let _ = conn::run(i, stream, false).await;
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

    /// Keeps a connection to the peer at `addr`: connects, and reconnects
    /// with exponential backoff (capped, jittered) whenever it fails or
    /// ends, until shutdown. Dial each pair of nodes from one side only.
    pub fn dial(&self, addr: SocketAddr) {
        self.dial_with(addr.to_string(), move || async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(s)
        });
    }

    /// Like [`Node::dial`] over any stream: `connect` is called for every
    /// attempt.
    pub fn dial_with<F, Fut, S>(&self, label: String, connect: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        self.inner.spawn(dial_loop(inner, label, connect));
    }

    /// Runs one connection over an already accepted stream (this node is
    /// the acceptor). Returns when the connection ends.
    pub async fn accept_stream<S>(&self, io: S) -> Result<(), super::NetError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        conn::run(Arc::clone(&self.inner.env), io, false)
            .await
            .result
    }

    /// Runs one connection over an already connected stream (this node is
    /// the dialer), without reconnecting. Returns when it ends.
    pub async fn connect_stream<S>(&self, io: S) -> Result<(), super::NetError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        conn::run(Arc::clone(&self.inner.env), io, true)
            .await
            .result
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
    loop {
        tokio::select! {
            _ = t.tick() => {
                for c in &inner.env.channels {
                    c.tick();
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

/// Exponential backoff with full jitter from a seeded generator: the n-th
/// delay is uniform in `[d/2, d]` with `d = min(initial * 2^n, max)`.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: SplitMix64,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
            rng: SplitMix64::new(seed),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self
            .initial
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        d.mul_f64(0.5 + 0.5 * self.rng.unit())
    }
}

async fn dial_loop<F, Fut, S>(inner: Arc<NodeInner>, label: String, mut connect: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let cfg = &inner.env.shared.config;
    let seed = cfg.seed ^ blake3::hash(label.as_bytes()).as_bytes()[0] as u64;
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max, seed);
    let mut stop = inner.env.stop.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let attempt = tokio::select! {
            r = tokio::time::timeout(cfg.connect_timeout, connect()) => r,
            _ = stop.changed() => return,
        };
        let error = match attempt {
            Ok(Ok(io)) => {
                let end = conn::run(Arc::clone(&inner.env), io, true).await;
                if end.established {
                    backoff.reset();
                }
                if *stop.borrow() {
                    return;
                }
                match end.result {
                    Ok(()) => None,
                    Err(e) if !end.established => Some(e.to_string()),
                    Err(_) => None,
                }
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("connect timed out".to_string()),
        };
        let delay = backoff.next_delay();
        if let Some(error) = error {
            debug!(node = cfg.id, addr = %label, %error, retry_in_ms = delay.as_millis() as u64, "dial failed");
            inner.env.shared.counters.connect_failures.add(1);
            inner.env.shared.emit(NodeEvent::ConnectFailed {
                addr: label.clone(),
                error,
                retry_in: delay,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        let ds: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (i, d) in ds.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(2));
            assert!(*d >= full / 2 && *d <= full, "{i}: {d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // Seeded: the same seed gives the same delays.
        let mut c = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        assert_eq!((0..8).map(|_| c.next_delay()).collect::<Vec<_>>(), ds);
    }
}
