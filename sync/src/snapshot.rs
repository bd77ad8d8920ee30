//! Durable snapshots of stores: atomic, checksummed, versioned files.
//!
//! A region that crashes restarts from its last snapshot and catches up on
//! everything else by anti-entropy. A snapshot file holds one or more named
//! *sections* (one per [`Store`], so a node with several stores writes them
//! all in one file) and is laid out as:
//!
//! ```text
//! offset  size  field
//!      0     8  magic            b"ACCORDSN"
//!      8     2  format version   big-endian, currently 1
//!     10     2  flags            0
//!     12     8  payload length   big-endian
//!     20    32  blake3 checksum  of bytes 0..20 followed by the payload
//!     52     n  payload          postcard: [(section name, section bytes)]
//! ```
//!
//! A store's section is the sequence of its `(key, value)` pairs in their
//! canonical encodings (key: postcard; value: [`accordant::codec`]), in the
//! store's key-hash order, so two equal stores give byte-identical sections.
//!
//! **Writing** ([`SnapshotWriter::write`], [`write_atomic`]) goes to a
//! temporary file in the same directory, which is `fsync`ed, renamed over the
//! target, and the directory `fsync`ed: a crash at any moment leaves either
//! the old snapshot or the new one, never a mix.
//!
//! **Reading** ([`Snapshot::read`]) checks the magic, the version, that the
//! file is exactly as long as the header says (a torn write is
//! [`SnapshotError::Truncated`]), the checksum, and then decodes every
//! section with the same bounded, validating decoders as the wire protocol
//! (non-canonical keys, invalid CRDT states and trailing bytes are errors).
//! A snapshot is loaded whole or not at all: nothing is returned before all
//! of it has been verified.
//!
//! # Snapshots are backups
//!
//! A durable node's data lives in its database (see
//! [`crate::store::db`]); a snapshot is a backup of it. Every write
//! acknowledged before [`SnapshotWriter::write`] *returned* is in the file.
//! A node's backup ([`SnapshotWriter::backup`], written by
//! `Node::snapshot`) records the cluster, the node and each store's key and
//! value types in a reserved section ([`BACKUP_SECTION`]); importing it
//! (`NodeBuilder::restore`) checks them and refuses a foreign backup, a
//! store of another type, or a missing section, with typed errors.
//!
//! **A restored backup takes a new replica id.** Causal CRDTs name every
//! write by a dot `(replica, counter)`. A backup may be older than what the
//! node acknowledged since, and other regions may hold the dots it issued
//! after it: writing again under the same [`ReplicaId`] would reissue them
//! for different writes. The import moves the node to a new replica id
//! (its generation + 1); the old id's entries stay valid. An in-memory
//! node ([`new_incarnation_id`]) writes under a fresh id every process.
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::snapshot::{Snapshot, SnapshotWriter};
//! use accordant_sync::store::Store;
//!
//! let dir = std::env::temp_dir().join(format!("accordant-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("eu.snap");
//!
//! let mut views: Store<String, GCounter> = Store::new();
//! let _ = views.update("home".into(), |c| c.increment(ReplicaId::from_u128(1), 3)).unwrap();
//! SnapshotWriter::new().store("views", &views).write(&path).unwrap();
//!
//! let snap = Snapshot::read(&path, &Default::default()).unwrap();
//! let back: Store<String, GCounter> = snap.store("views").unwrap();
//! assert_eq!(back.root_digest(), views.root_digest());
//!
//! // A torn write (the file cut short) is detected, never loaded half.
//! let bytes = std::fs::read(&path).unwrap();
//! std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
//! assert!(Snapshot::read(&path, &Default::default()).is_err());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use accordant::codec::{self, Limits, SeqVec};
use accordant::{DecodeError, ReplicaId};
use thiserror::Error;

use crate::key::{decode_key, key_bytes};
use crate::message::Bytes;
use crate::store::{Store, StoreKey, StoreValue};

/// The first eight bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"ACCORDSN";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the payload.
pub const HEADER_BYTES: usize = 52;

/// Why a snapshot could not be written or loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot i/o error: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with [`MAGIC`]: not a snapshot at all.
    #[error("not an accordant snapshot (bad magic bytes)")]
    NotASnapshot,
    /// The file was written by a format version this crate cannot read.
    #[error("unsupported snapshot format version {0} (this build reads {VERSION})")]
    UnsupportedVersion(u16),
    /// The file is shorter than its header says: a torn or interrupted
    /// write.
    #[error("torn snapshot: {found} bytes where the header announces {expected}")]
    Truncated {
        /// Length the header announces (header included).
        expected: u64,
        /// Length found.
        found: u64,
    },
    /// The file is longer than its header says.
    #[error("snapshot has {found} bytes where the header announces {expected}")]
    TrailingBytes {
        /// Length the header announces (header included).
        expected: u64,
        /// Length found.
        found: u64,
    },
    /// The checksum does not match the contents: the file is corrupted.
    #[error("snapshot checksum mismatch: the file is corrupted")]
    ChecksumMismatch,
    /// The file exceeds [`SnapshotLimits::max_file_bytes`].
    #[error("snapshot of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Length of the file.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The checksum matched but the payload is not well formed (written by
    /// a buggy or hostile writer).
    #[error("malformed snapshot: {0}")]
    Malformed(&'static str),
    /// A key or value of a section failed to decode.
    #[error("invalid {what} in snapshot section {section:?}: {source}")]
    Invalid {
        /// The section.
        section: String,
        /// Key or value.
        what: &'static str,
        /// Why.
        source: DecodeError,
    },
    /// The snapshot has no section of that name.
    #[error("snapshot has no section {0:?}")]
    MissingSection(String),
}

/// Bounds applied while loading a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotLimits {
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Limits for each key and value.
    pub value: Limits,
}

impl Default for SnapshotLimits {
    /// 4 GiB files; 64 MiB per value.
    fn default() -> Self {
        SnapshotLimits {
            max_file_bytes: 4 << 30,
            value: Limits::default(),
        }
    }
}

/// What a written snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// Bytes of the file.
    pub bytes: u64,
    /// Keys over all sections (for sections added with
    /// [`SnapshotWriter::store`]).
    pub keys: u64,
    /// Sections.
    pub sections: u32,
}

/// The reserved section that makes a snapshot a node's backup: whose it
/// is and what each section holds.
pub const BACKUP_SECTION: &str = "\u{0}accordant-backup";

/// Whose a backup is: the cluster, the node, and each store's key and value
/// types (see [`SnapshotWriter::backup`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct BackupHeader {
    /// The cluster id.
    pub cluster: String,
    /// The node id.
    pub node: u64,
    /// `(store name, "K => V" type names)`, one per section.
    pub stores: Vec<(String, String)>,
}

/// The type names a store records: `"K => V"`.
pub fn store_types<K, V>() -> String {
    format!(
        "{} => {}",
        core::any::type_name::<K>(),
        core::any::type_name::<V>()
    )
}

/// Builds a snapshot from stores, then writes it atomically.
#[derive(Debug, Default, Clone)]
pub struct SnapshotWriter {
    sections: Vec<(String, Vec<u8>)>,
    keys: u64,
    header: Option<BackupHeader>,
}

impl SnapshotWriter {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `store` as the section `name` (encoded now: later writes to the
    /// store are not included).
    pub fn store<K: StoreKey, V: StoreValue>(
        &mut self,
        name: &str,
        store: &Store<K, V>,
    ) -> &mut Self {
        self.keys += store.len() as u64;
        self.typed(name, store_types::<K, V>(), encode_store(store))
    }

    /// Adds an already encoded section (see [`encode_store`]).
    pub fn raw(&mut self, name: &str, section: Vec<u8>) -> &mut Self {
        self.sections.push((name.to_string(), section));
        self
    }

    /// Makes this snapshot a backup of node `node` of `cluster`: the file
    /// records them, and the types of the stores added with
    /// [`SnapshotWriter::typed`] or [`SnapshotWriter::store`].
    pub fn backup(&mut self, cluster: &str, node: u64) -> &mut Self {
        let stores = self.header.take().map(|h| h.stores).unwrap_or_default();
        self.header = Some(BackupHeader {
            cluster: cluster.to_string(),
            node,
            stores,
        });
        self
    }

    /// Adds an encoded section with its store's type names
    /// ([`store_types`]).
    pub fn typed(&mut self, name: &str, types: String, section: Vec<u8>) -> &mut Self {
        let h = self.header.get_or_insert_with(|| BackupHeader {
            cluster: String::new(),
            node: 0,
            stores: Vec::new(),
        });
        h.stores.push((name.to_string(), types));
        self.raw(name, section)
    }

    /// The file's bytes: header, checksum, payload.
    pub fn encode(&self) -> Vec<u8> {
        let header = self
            .header
            .as_ref()
            .filter(|h| !h.cluster.is_empty())
            .map(|h| {
                (
                    BACKUP_SECTION.to_string(),
                    Bytes::from(postcard::to_allocvec(h).unwrap_or_default()),
                )
            });
        let payload = SeqVec(
            header
                .into_iter()
                .chain(
                    self.sections
                        .iter()
                        .map(|(n, b)| (n.clone(), Bytes::from(b.clone()))),
                )
                .collect(),
        );
        let payload = postcard::to_allocvec(&payload).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        let sum = checksum(&out, &payload);
        out.extend_from_slice(&sum);
        out.extend_from_slice(&payload);
        out
    }

    /// Writes the snapshot to `path` atomically (see [`write_atomic`]).
    /// When this returns `Ok`, the snapshot is on disk.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<SnapshotInfo, SnapshotError> {
        let bytes = self.encode();
        write_atomic(path.as_ref(), &bytes)?;
        Ok(SnapshotInfo {
            bytes: bytes.len() as u64,
            keys: self.keys,
            sections: self.sections.len() as u32,
        })
    }
}

/// A verified snapshot: every section, checksummed and well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    sections: Vec<(String, Vec<u8>)>,
    limits: SnapshotLimits,
}

impl Snapshot {
    /// Reads and verifies the snapshot at `path`.
    pub fn read(path: impl AsRef<Path>, limits: &SnapshotLimits) -> Result<Self, SnapshotError> {
        let path = path.as_ref();
        let len = fs::metadata(path)?.len();
        if len > limits.max_file_bytes {
            return Err(SnapshotError::TooLarge {
                len,
                limit: limits.max_file_bytes,
            });
        }
        let bytes = fs::read(path)?;
        Self::decode(&bytes, limits)
    }

    /// Verifies and decodes a snapshot file's bytes.
    pub fn decode(bytes: &[u8], limits: &SnapshotLimits) -> Result<Self, SnapshotError> {
        let found = bytes.len() as u64;
        if found > limits.max_file_bytes {
            return Err(SnapshotError::TooLarge {
                len: found,
                limit: limits.max_file_bytes,
            });
        }
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            // A file cut inside the magic is torn, not foreign.
            return if !bytes.is_empty() && MAGIC.starts_with(bytes) {
                Err(SnapshotError::Truncated {
                    expected: HEADER_BYTES as u64,
                    found,
                })
            } else {
                Err(SnapshotError::NotASnapshot)
            };
        }
        if bytes.len() < HEADER_BYTES {
            return Err(SnapshotError::Truncated {
                expected: HEADER_BYTES as u64,
                found,
            });
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[12..20]);
        let expected = u64::from_be_bytes(len).saturating_add(HEADER_BYTES as u64);
        if found < expected {
            return Err(SnapshotError::Truncated { expected, found });
        }
        if found > expected {
            return Err(SnapshotError::TrailingBytes { expected, found });
        }
        let payload = &bytes[HEADER_BYTES..];
        if checksum(&bytes[..20], payload)[..] != bytes[20..HEADER_BYTES] {
            return Err(SnapshotError::ChecksumMismatch);
        }
        if bytes[10..12] != [0, 0] {
            return Err(SnapshotError::Malformed("unknown flags"));
        }
        let (sections, rest) = postcard::take_from_bytes::<SeqVec<(String, Bytes)>>(payload)
            .map_err(|_| SnapshotError::Malformed("undecodable section list"))?;
        if !rest.is_empty() {
            return Err(SnapshotError::Malformed(
                "trailing bytes after the sections",
            ));
        }
        let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(sections.0.len());
        for (name, body) in sections.0 {
            if out.iter().any(|(n, _)| *n == name) {
                return Err(SnapshotError::Malformed("duplicate section name"));
            }
            out.push((name, body.into_vec()));
        }
        Ok(Snapshot {
            sections: out,
            limits: *limits,
        })
    }

    /// Section names, in file order (the backup header excluded).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sections
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| *n != BACKUP_SECTION)
    }

    /// The backup header, if the file is a node's backup (`None` for a
    /// plain snapshot; an undecodable one is an error).
    pub fn backup_header(&self) -> Result<Option<BackupHeader>, SnapshotError> {
        match self.section(BACKUP_SECTION) {
            None => Ok(None),
            Some(b) => postcard::from_bytes(b)
                .map(Some)
                .map_err(|_| SnapshotError::Malformed("undecodable backup header")),
        }
    }

    /// The raw bytes of a section.
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }

    /// Decodes the section `name` as a store; every key and value is
    /// validated before the store is returned.
    pub fn store<K: StoreKey, V: StoreValue>(
        &self,
        name: &str,
    ) -> Result<Store<K, V>, SnapshotError> {
        let body = self
            .section(name)
            .ok_or_else(|| SnapshotError::MissingSection(name.to_string()))?;
        decode_store(name, body, &self.limits.value)
    }
}

/// A store's section: its `(key, value)` pairs in canonical encodings.
pub fn encode_store<K: StoreKey, V: StoreValue>(store: &Store<K, V>) -> Vec<u8> {
    let items = SeqVec(
        store
            .iter()
            .map(|(k, v)| (Bytes::from(key_bytes(&k)), Bytes::from(codec::encode(&v))))
            .collect(),
    );
    postcard::to_allocvec(&items).unwrap_or_default()
}

/// Decodes a store's section (`name` is for error messages).
pub fn decode_store<K: StoreKey, V: StoreValue>(
    name: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<Store<K, V>, SnapshotError> {
    let invalid = |what, source| SnapshotError::Invalid {
        section: name.to_string(),
        what,
        source,
    };
    let (items, rest) = postcard::take_from_bytes::<SeqVec<(Bytes, Bytes)>>(body)
        .map_err(|_| SnapshotError::Malformed("undecodable store section"))?;
    if !rest.is_empty() {
        return Err(SnapshotError::Malformed(
            "trailing bytes in a store section",
        ));
    }
    let mut store = Store::new();
    for (k, v) in items.0 {
        let key: K = decode_key(&k[..], limits).map_err(|e| invalid("key", e))?;
        let value: V = codec::decode(&v[..], limits).map_err(|e| invalid("value", e))?;
        if store.get(&key).is_some() {
            return Err(SnapshotError::Malformed("duplicate key in a store section"));
        }
        store.join(key, &value);
    }
    Ok(store)
}

/// Writes a single store as the section `"store"`.
pub fn save_store<K: StoreKey, V: StoreValue>(
    path: impl AsRef<Path>,
    store: &Store<K, V>,
) -> Result<SnapshotInfo, SnapshotError> {
    SnapshotWriter::new().store("store", store).write(path)
}

/// Loads a store written by [`save_store`].
pub fn load_store<K: StoreKey, V: StoreValue>(
    path: impl AsRef<Path>,
) -> Result<Store<K, V>, SnapshotError> {
    Snapshot::read(path, &SnapshotLimits::default())?.store("store")
}

fn checksum(header: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(payload);
    *h.finalize().as_bytes()
}

/// Replaces `path` with `bytes` atomically: write a temporary file in the
/// same directory, `fsync` it, rename it over `path`, `fsync` the directory.
/// On error the old file (if any) is untouched and the temporary removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "snapshot path has no file name",
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened for fsync on every platform; the rename
    // itself is still atomic.
    Ok(())
}

/// A replica id for a new incarnation of a node: blake3 of the node's name,
/// the process id and the current time. Use it after every restart from a
/// snapshot (see the [module docs](self)); it is not deterministic, on
/// purpose.
pub fn new_incarnation_id(node: &str) -> ReplicaId {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = blake3::Hasher::new();
    h.update(b"accordant incarnation");
    h.update(node.as_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&nanos.to_le_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    ReplicaId::from_bytes(id)
}

#[cfg(test)]
mod tests {
    use accordant::{GCounter, OrSet};

    use super::*;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    fn sample() -> (Store<u32, GCounter>, Store<String, OrSet<String>>) {
        let mut a: Store<u32, GCounter> = Store::new();
        let mut b: Store<String, OrSet<String>> = Store::new();
        for k in 0..300u32 {
            let _ = a
                .update(k, |c| c.increment(r(u128::from(k % 3)), u64::from(k) + 1))
                .unwrap();
        }
        for k in 0..40 {
            let _ = b
                .update(format!("cart-{k}"), |s| {
                    s.add(r(1), format!("item-{}", k % 7))
                })
                .unwrap();
        }
        (a, b)
    }

    fn file() -> Vec<u8> {
        let (a, b) = sample();
        SnapshotWriter::new()
            .store("counters", &a)
            .store("sets", &b)
            .encode()
    }

    #[test]
    fn round_trips_every_section() {
        let (a, b) = sample();
        let bytes = file();
        let snap = Snapshot::decode(&bytes, &SnapshotLimits::default()).unwrap();
        assert_eq!(snap.names().collect::<Vec<_>>(), ["counters", "sets"]);
        let a2: Store<u32, GCounter> = snap.store("counters").unwrap();
        let b2: Store<String, OrSet<String>> = snap.store("sets").unwrap();
        assert_eq!(a2, a);
        assert_eq!(b2, b);
        assert!(matches!(
            snap.store::<u32, GCounter>("nope"),
            Err(SnapshotError::MissingSection(_))
        ));
        // Equal stores, equal bytes.
        assert_eq!(file(), bytes);
    }

    #[test]
    fn every_torn_prefix_is_refused() {
        let bytes = file();
        for n in 0..bytes.len() {
            let r = Snapshot::decode(&bytes[..n], &SnapshotLimits::default());
            match r {
                Err(SnapshotError::Truncated { .. }) => {}
                Err(SnapshotError::NotASnapshot) if n == 0 => {}
                other => panic!("prefix of {n} bytes: {other:?}"),
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Snapshot::decode(&longer, &SnapshotLimits::default()),
            Err(SnapshotError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = file();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            let r = Snapshot::decode(&b, &SnapshotLimits::default());
            assert!(r.is_err(), "flip at {i} went unnoticed");
        }
        let mut b = bytes.clone();
        b[9] = 2;
        assert!(matches!(
            Snapshot::decode(&b, &SnapshotLimits::default()),
            Err(SnapshotError::UnsupportedVersion(2))
        ));
        let mut b = bytes;
        b[60] ^= 1;
        assert!(matches!(
            Snapshot::decode(&b, &SnapshotLimits::default()),
            Err(SnapshotError::ChecksumMismatch)
        ));
        assert!(matches!(
            Snapshot::decode(
                b"not a snapshot at all, not at all, no no no no no!!",
                &SnapshotLimits::default()
            ),
            Err(SnapshotError::NotASnapshot)
        ));
    }

    #[test]
    fn a_valid_checksum_over_an_invalid_state_is_still_refused() {
        // A writer that checksums garbage: a value that is not a GCounter.
        let body = postcard::to_allocvec(&SeqVec(vec![(
            Bytes::from(key_bytes(&1u32)),
            Bytes::from(vec![0xff; 5]),
        )]))
        .unwrap();
        let bytes = SnapshotWriter::new().raw("counters", body).encode();
        let snap = Snapshot::decode(&bytes, &SnapshotLimits::default()).unwrap();
        assert!(matches!(
            snap.store::<u32, GCounter>("counters"),
            Err(SnapshotError::Invalid { what: "value", .. })
        ));
    }

    #[test]
    fn atomic_replace_keeps_the_old_file_until_the_new_one_is_whole() {
        let dir =
            std::env::temp_dir().join(format!("accordant-snap-{}-atomic", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.snap");
        let (a, _) = sample();
        let info = save_store(&path, &a).unwrap();
        assert_eq!(info.keys, 300);
        let mut a2 = a.clone();
        let _ = a2.update(1000, |c| c.increment(r(9), 1)).unwrap();
        save_store(&path, &a2).unwrap();
        let back: Store<u32, GCounter> = load_store(&path).unwrap();
        assert_eq!(back, a2);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // Writing into a missing directory fails and leaves nothing.
        assert!(save_store(dir.join("missing/x.snap"), &a).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
