//! A node's database: one redb file holding every store of the node and
//! the node's identity (feature `redb`).
//!
//! redb is an ACID embedded B-tree (copy-on-write pages, a commit is one
//! atomic switch of the root; a crash at any point leaves the last commit).
//! [`StoreDb`] opens the file and checks it is this node's before anything
//! is read: the file records
//!
//! - its **format version**,
//! - the **cluster id** and **node id** it belongs to (opening another
//!   node's or another cluster's file is [`StorageError::ForeignFile`]),
//! - the **replica id** the node writes under and its **generation**, and
//! - for each store, its **name** and its **key and value types** (opening
//!   it as another type is [`StorageError::TypeMismatch`]).
//!
//! # Stable replica identity
//!
//! A node keeps its replica id across restarts: the dots and counters it
//! issued are in its committed values, and a write is acknowledged only
//! once committed, so after a crash it continues from where its committed
//! state ends and never reissues a dot. Its causal contexts gain no entry per
//! restart. What can make it reissue one is state older than what it
//! acknowledged — a restored backup, a lost file: [`StoreDb::new_replica`]
//! then moves to a new replica id (generation + 1), and the old id's dots
//! stay valid everywhere. Importing a backup does this
//! ([`crate::snapshot`]).
//!
//! # Durability
//!
//! A store's writes are staged in memory ([`RedbStorage`]) and made durable
//! by [`Store::commit`](super::Store::commit): one write transaction with
//! redb's [`Durability::Immediate`] (an fsync) under [`Fsync::EveryWrite`]
//! and [`Fsync::Window`], or [`Durability::None`] under [`Fsync::Off`]
//! (visible, not crash safe: for tests). The node's committer decides when
//! to commit (see `net::NodeConfig::fsync`).
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::store::db::{DbOptions, NodeIdentity, StoreDb};
//! use accordant_sync::store::{Store, StorageError};
//!
//! let dir = std::env::temp_dir().join(format!("accordant-db-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("node.redb");
//! let me = NodeIdentity::new("prod", 1);
//! let replica;
//! {
//!     let db = StoreDb::open(&path, &me, DbOptions::default()).unwrap();
//!     replica = db.replica();
//!     let mut views: Store<String, GCounter> = db.store("views").unwrap();
//!     let _ = views.update("home".into(), |c| c.increment(replica, 3)).unwrap();
//!     views.commit().unwrap();
//! }
//! let db = StoreDb::open(&path, &me, DbOptions::default()).unwrap();
//! assert_eq!(db.replica(), replica, "the replica id survives a restart");
//! let views: Store<String, GCounter> = db.store("views").unwrap();
//! assert_eq!(views.get("home").unwrap().value(), 3);
//! // Another node's file, or another type, is refused.
//! drop(views);
//! drop(db);
//! let other = NodeIdentity::new("prod", 2);
//! assert!(matches!(StoreDb::open(&path, &other, DbOptions::default()), Err(StorageError::ForeignFile { .. })));
//! let db = StoreDb::open(&path, &me, DbOptions::default()).unwrap();
//! assert!(matches!(db.store::<String, accordant::PNCounter>("views"), Err(StorageError::TypeMismatch { .. })));
//! # drop(db);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use accordant::ReplicaId;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::degraded::CopyOnWrite;
use super::error::StorageError;
use super::redb::RedbStorage;
use super::{Store, StoreKey, StoreValue};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// The identity table: text keys, byte values.
pub(crate) const META: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("accordant-meta");

/// When a node makes its writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fsync {
    /// Every write commits (and fsyncs) on its own before it is
    /// acknowledged: the lowest latency at one writer, the lowest
    /// throughput under many.
    EveryWrite,
    /// Writes arriving within the window share one commit and one fsync;
    /// each is acknowledged once its commit returns. Same guarantee as
    /// `EveryWrite` (nothing acknowledged is lost to a crash of the process
    /// or of the machine), at up to the window's extra latency.
    Window(Duration),
    /// Commits without fsync ([`Durability::None`]): acknowledged writes
    /// survive nothing, not even a process crash. For tests.
    Off,
}

impl Default for Fsync {
    /// A 2 ms window.
    fn default() -> Self {
        Fsync::Window(Duration::from_millis(2))
    }
}

/// Who a database belongs to: checked against what the file records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The cluster's id.
    pub cluster: String,
    /// The node's id in the cluster.
    pub node: u64,
}

impl NodeIdentity {
    /// Node `node` of `cluster`.
    pub fn new(cluster: impl Into<String>, node: u64) -> Self {
        NodeIdentity {
            cluster: cluster.into(),
            node,
        }
    }
}

/// How a database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbOptions {
    /// redb's page cache, in bytes: the memory the file may use beyond the
    /// digest trees and the staged writes.
    pub cache_bytes: usize,
    /// When commits fsync.
    pub fsync: Fsync,
}

impl Default for DbOptions {
    /// A 64 MiB cache, [`Fsync::default`].
    fn default() -> Self {
        DbOptions {
            cache_bytes: 64 << 20,
            fsync: Fsync::default(),
        }
    }
}

impl DbOptions {
    /// Sets [`cache_bytes`](Self::cache_bytes).
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`fsync`](Self::fsync).
    pub fn with_fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }
}

/// A node's database file (see the [module docs](self)). Cheap to clone:
/// every clone is the same open file.
#[derive(Clone)]
pub struct StoreDb {
    inner: Arc<DbInner>,
}

/// Where the database lives, to open it again after an I/O failure.
enum Source {
    File(PathBuf),
    Backend(Arc<dyn redb::StorageBackend>),
}

impl Source {
    /// Opens the database for reading and writing.
    fn open(&self, o: &DbOptions) -> Result<Database, StorageError> {
        match self {
            Source::File(p) => open_file(p, o),
            Source::Backend(b) => {
                let mut builder = Database::builder();
                builder.set_cache_size(o.cache_bytes);
                builder
                    .create_with_backend(Backend::shared(b))
                    .map_err(from_redb)
            }
        }
    }

    /// Opens the database for reading while its disk refuses writes (see
    /// [`super::degraded`]).
    fn open_degraded(&self, o: &DbOptions) -> Result<Database, StorageError> {
        let raw = match self {
            Source::File(p) => {
                let f = std::fs::OpenOptions::new().read(true).open(p)?;
                Backend::owned(redb::backends::FileBackend::new(f).map_err(from_redb)?)
            }
            Source::Backend(b) => Backend::shared(b),
        };
        let mut builder = Database::builder();
        builder.set_cache_size(o.cache_bytes);
        builder
            .create_with_backend(CopyOnWrite::new(raw)?)
            .map_err(from_redb)
    }
}

struct DbInner {
    path: PathBuf,
    /// `None` once closed.
    source: Mutex<Option<Source>>,
    options: DbOptions,
    /// `None` while reopening after an I/O error.
    db: RwLock<Option<Database>>,
    record: Mutex<(ReplicaId, u64)>,
    /// Set by an I/O failure: reopen before the next write.
    poisoned: AtomicBool,
    /// Open over [`CopyOnWrite`] for reads while writes fail.
    degraded: AtomicBool,
    /// Set by [`StoreDb::close`]: never reopen.
    closed: AtomicBool,
}

impl core::fmt::Debug for StoreDb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoreDb")
            .field("path", &self.inner.path)
            .field("replica", &self.replica())
            .finish_non_exhaustive()
    }
}

/// Maps redb's errors to [`StorageError`].
pub(crate) fn from_redb(e: impl Into<redb::Error>) -> StorageError {
    match e.into() {
        // redb reports a file it cannot parse (bad magic, short header) as
        // invalid data: the file is damaged, not the disk.
        redb::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            StorageError::Corrupt(io.to_string())
        }
        redb::Error::Io(io) => StorageError::from_io(io),
        redb::Error::Corrupted(m) => StorageError::Corrupt(m),
        redb::Error::DatabaseAlreadyOpen => StorageError::Locked,
        redb::Error::UpgradeRequired(v) => StorageError::UnsupportedVersion(v.into()),
        redb::Error::DatabaseClosed => StorageError::Closed,
        // redb refuses every transaction after an I/O failure until the
        // file is reopened ([`StoreDb::with_db`] does).
        redb::Error::PreviousIo => StorageError::Io(std::io::Error::other("an earlier i/o error")),
        other => StorageError::Corrupt(other.to_string()),
    }
}

fn open_file(path: &Path, options: &DbOptions) -> Result<Database, StorageError> {
    let mut b = Database::builder();
    b.set_cache_size(options.cache_bytes);
    if path.exists() {
        // Opening an existing file never creates one: a file that vanished
        // between the check and the open is an error, not a new database.
        b.open(path).map_err(from_redb)
    } else {
        b.create(path).map_err(from_redb)
    }
}

impl StoreDb {
    /// Opens the database at `path` for `me`, creating it (with a new
    /// replica id) if the file does not exist. An existing file must be
    /// this build's format and `me`'s; a damaged one is
    /// [`StorageError::Corrupt`], never an empty database.
    pub fn open(
        path: impl AsRef<Path>,
        me: &NodeIdentity,
        options: DbOptions,
    ) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        let existed = path.exists();
        let source = Source::File(path.clone());
        Self::open_with(path, source, existed, me, options)
    }

    /// Opens a database kept by a redb [`StorageBackend`](redb::StorageBackend)
    /// of your own (an instrumented file, memory, a block device): created
    /// if the backend is empty, checked like a file otherwise. After an I/O
    /// failure the database is reopened over the same backend.
    pub fn open_with_backend<B: redb::StorageBackend>(
        backend: B,
        me: &NodeIdentity,
        options: DbOptions,
    ) -> Result<Self, StorageError> {
        let existed = backend.len().map_err(StorageError::from_io)? > 0;
        let source = Source::Backend(Arc::new(backend));
        Self::open_with(PathBuf::from("<backend>"), source, existed, me, options)
    }

    fn open_with(
        path: PathBuf,
        source: Source,
        existed: bool,
        me: &NodeIdentity,
        options: DbOptions,
    ) -> Result<Self, StorageError> {
        let db = source.open(&options)?;
        let record = if existed {
            Self::check(&db, me)?
        } else {
            let replica = new_replica_id(me);
            Self::write_identity(&db, me, replica, 0)?;
            (replica, 0)
        };
        Ok(StoreDb {
            inner: Arc::new(DbInner {
                path,
                source: Mutex::new(Some(source)),
                options,
                db: RwLock::new(Some(db)),
                record: Mutex::new(record),
                poisoned: AtomicBool::new(false),
                degraded: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        })
    }

    fn check(db: &Database, me: &NodeIdentity) -> Result<(ReplicaId, u64), StorageError> {
        let tx = db.begin_read().map_err(from_redb)?;
        let meta = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(StorageError::Corrupt(
                    "no identity record: not an accordant database".into(),
                ))
            }
            Err(e) => return Err(from_redb(e)),
        };
        let get = |k: &str| -> Result<Vec<u8>, StorageError> {
            meta.get(k)
                .map_err(from_redb)?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| StorageError::Corrupt(format!("identity record lacks {k:?}")))
        };
        let u64_of = |b: Vec<u8>, what: &str| -> Result<u64, StorageError> {
            <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    StorageError::Corrupt(format!("malformed {what} in the identity record"))
                })
        };
        let version = u64_of(get("format")?, "format")?;
        if version != FORMAT_VERSION {
            return Err(StorageError::UnsupportedVersion(version));
        }
        let cluster = String::from_utf8(get("cluster")?)
            .map_err(|_| StorageError::Corrupt("malformed cluster id".into()))?;
        if cluster != me.cluster {
            return Err(StorageError::ForeignFile {
                field: "cluster",
                expected: me.cluster.clone(),
                found: cluster,
            });
        }
        let node = u64_of(get("node")?, "node")?;
        if node != me.node {
            return Err(StorageError::ForeignFile {
                field: "node",
                expected: me.node.to_string(),
                found: node.to_string(),
            });
        }
        let replica = <[u8; 16]>::try_from(get("replica")?.as_slice())
            .map(ReplicaId::from_bytes)
            .map_err(|_| StorageError::Corrupt("malformed replica id".into()))?;
        let generation = u64_of(get("generation")?, "generation")?;
        Ok((replica, generation))
    }

    fn write_identity(
        db: &Database,
        me: &NodeIdentity,
        replica: ReplicaId,
        generation: u64,
    ) -> Result<(), StorageError> {
        let tx = db.begin_write().map_err(from_redb)?;
        {
            let mut meta = tx.open_table(META).map_err(from_redb)?;
            let mut put = |k: &str, v: &[u8]| meta.insert(k, v).map(|_| ()).map_err(from_redb);
            put("format", &FORMAT_VERSION.to_be_bytes())?;
            put("cluster", me.cluster.as_bytes())?;
            put("node", &me.node.to_be_bytes())?;
            put("replica", replica.as_bytes())?;
            put("generation", &generation.to_be_bytes())?;
        }
        tx.commit().map_err(from_redb)
    }

    /// The replica id this node writes under.
    pub fn replica(&self) -> ReplicaId {
        self.inner
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    /// How many times the node moved to a new replica id.
    pub fn generation(&self) -> u64 {
        self.inner
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> DbOptions {
        self.inner.options
    }

    /// Moves the node to a new replica id (generation + 1), durably: for
    /// state that may be older than what the node acknowledged (a restored
    /// backup, a resync after losing the file).
    pub fn new_replica(&self, me: &NodeIdentity) -> Result<ReplicaId, StorageError> {
        let mut rec = self.inner.record.lock().unwrap_or_else(|p| p.into_inner());
        let replica = new_replica_id(me);
        let generation = rec.1 + 1;
        self.with_db(true, |db| Self::write_identity(db, me, replica, generation))?;
        *rec = (replica, generation);
        Ok(replica)
    }

    /// The store `name` of this database, checked to hold `K` and `V`
    /// (recorded on first use). Its tree is rebuilt from the stored item
    /// hashes, without decoding a value.
    pub fn store<K: StoreKey, V: StoreValue>(
        &self,
        name: &str,
    ) -> Result<Store<K, V>, StorageError> {
        let types = format!(
            "{} => {}",
            core::any::type_name::<K>(),
            core::any::type_name::<V>()
        );
        let key = format!("type:{name}");
        let found = self.with_db(false, |db| {
            let tx = db.begin_read().map_err(from_redb)?;
            let meta = tx.open_table(META).map_err(from_redb)?;
            let v = meta.get(key.as_str()).map_err(from_redb)?;
            Ok(v.map(|v| v.value().to_vec()))
        })?;
        match found {
            Some(t) if t == types.as_bytes() => {}
            Some(t) => {
                return Err(StorageError::TypeMismatch {
                    store: name.to_string(),
                    expected: types,
                    found: String::from_utf8_lossy(&t).into_owned(),
                })
            }
            None => self.with_db(true, |db| {
                let tx = db.begin_write().map_err(from_redb)?;
                tx.open_table(META)
                    .map_err(from_redb)?
                    .insert(key.as_str(), types.as_bytes())
                    .map_err(from_redb)?;
                tx.commit().map_err(from_redb)
            })?,
        }
        let storage = RedbStorage::open(self.clone(), name)?;
        Store::with_storage(Box::new(storage))
    }

    /// The names of the stores this file records.
    pub fn store_names(&self) -> Result<Vec<String>, StorageError> {
        self.with_db(false, |db| {
            let tx = db.begin_read().map_err(from_redb)?;
            let meta = tx.open_table(META).map_err(from_redb)?;
            let mut names = Vec::new();
            for e in meta.range::<&str>("type:"..).map_err(from_redb)? {
                let (k, _) = e.map_err(from_redb)?;
                match k.value().strip_prefix("type:") {
                    Some(n) => names.push(n.to_string()),
                    None => break,
                }
            }
            Ok(names)
        })
    }

    /// Runs `f` on the open database (`write`: `f` writes).
    ///
    /// After an I/O failure redb refuses every transaction until the file
    /// is reopened. The failure marks the database; the next call reopens
    /// it, so a disk that was full or read-only heals without restarting
    /// the node. While that reopen fails (the disk still refuses writes),
    /// the file is opened read-only through [`super::degraded`] and reads
    /// go on; each write retries the real reopen first and is refused while
    /// it fails.
    pub(crate) fn with_db<T>(
        &self,
        write: bool,
        f: impl FnOnce(&Database) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let degraded = self.inner.degraded.load(Ordering::Acquire);
        if self.inner.poisoned.load(Ordering::Acquire) && (write || !degraded) {
            match self.reopen() {
                Ok(()) => {
                    self.inner.poisoned.store(false, Ordering::Release);
                    self.inner.degraded.store(false, Ordering::Release);
                }
                Err(e) => {
                    let mut g = self.inner.db.write().unwrap_or_else(|p| p.into_inner());
                    let source = self.inner.source.lock().unwrap_or_else(|p| p.into_inner());
                    let degraded = source
                        .as_ref()
                        .map(|s| s.open_degraded(&self.inner.options));
                    if let Some(Ok(db)) = degraded {
                        *g = Some(db);
                        self.inner.degraded.store(true, Ordering::Release);
                    }
                    if write || g.is_none() {
                        return Err(e);
                    }
                }
            }
        }
        let r = {
            let g = self.inner.db.read().unwrap_or_else(|p| p.into_inner());
            match g.as_ref() {
                Some(db) => f(db),
                None => Err(StorageError::Closed),
            }
        };
        if let Err(e) = &r {
            if e.is_transient() || matches!(e, StorageError::Closed) {
                self.inner.poisoned.store(true, Ordering::Release);
            }
        }
        r
    }

    /// Compacts the file: moves pages to its start and truncates the free
    /// space at its end. Needs no transaction in progress (the stores'
    /// commits wait). Returns whether anything was compacted.
    pub fn compact(&self) -> Result<bool, StorageError> {
        let mut g = self.inner.db.write().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(db) => db.compact().map_err(from_redb),
            None => Err(StorageError::Closed),
        }
    }

    /// Closes the file (releasing its lock) for every clone and every
    /// store of it: later reads and writes fail with
    /// [`StorageError::Closed`]. What was staged and not committed is lost.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        *self.inner.db.write().unwrap_or_else(|p| p.into_inner()) = None;
        *self.inner.source.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn reopen(&self) -> Result<(), StorageError> {
        let mut g = self.inner.db.write().unwrap_or_else(|p| p.into_inner());
        // The old handle holds the file lock: drop it before reopening.
        *g = None;
        let source = self.inner.source.lock().unwrap_or_else(|p| p.into_inner());
        let source = source.as_ref().ok_or(StorageError::Closed)?;
        *g = Some(source.open(&self.inner.options)?);
        Ok(())
    }

    /// The durability commits use.
    pub(crate) fn durability(&self) -> Durability {
        match self.inner.options.fsync {
            Fsync::Off => Durability::None,
            Fsync::EveryWrite | Fsync::Window(_) => Durability::Immediate,
        }
    }
}

/// A backend as redb takes it: shared between the successive openings of
/// one database (closing an opening leaves it open), or owned by a single
/// opening (closed with it).
#[derive(Debug)]
struct Backend {
    inner: Arc<dyn redb::StorageBackend>,
    owned: bool,
}

impl Backend {
    fn shared(b: &Arc<dyn redb::StorageBackend>) -> Self {
        Backend {
            inner: Arc::clone(b),
            owned: false,
        }
    }

    fn owned(b: impl redb::StorageBackend + 'static) -> Self {
        Backend {
            inner: Arc::new(b),
            owned: true,
        }
    }
}

impl redb::StorageBackend for Backend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        if self.owned {
            self.inner.close()
        } else {
            Ok(())
        }
    }
}

/// A fresh replica id: blake3 of the cluster, the node, the process and the
/// time (not deterministic, on purpose: two incarnations never share one).
fn new_replica_id(me: &NodeIdentity) -> ReplicaId {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = blake3::Hasher::new();
    h.update(b"accordant replica");
    h.update(me.cluster.as_bytes());
    h.update(&me.node.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&nanos.to_le_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    ReplicaId::from_bytes(id)
}
