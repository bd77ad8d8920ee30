//! Why a store could not read or write its data: [`StorageError`].
//!
//! With values on disk, reads and writes can fail. Every failure is one
//! typed variant, so a caller can tell a full disk (free space and retry)
//! from a corrupt file (restore or resync) from someone else's file (a
//! configuration mistake), and none of them is ever turned into an empty
//! store. I/O errors are classified by [`StorageError::from_io`]:
//!
//! ```
//! use std::io;
//! use accordant_sync::store::StorageError;
//! let e = StorageError::from_io(io::Error::from_raw_os_error(28)); // ENOSPC
//! assert!(matches!(e, StorageError::DiskFull));
//! assert!(e.is_transient());
//! ```

use std::io;

use thiserror::Error;

/// Why a store could not read or write its data.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No space left on the device (or the quota is exhausted): the write
    /// was not stored. Retrying after space is freed succeeds.
    #[error("no space left on the device")]
    DiskFull,
    /// The file system is mounted read-only: the write was not stored.
    #[error("the file system is read-only")]
    ReadOnly,
    /// The process may not read or write the file or its directory.
    #[error("permission denied")]
    PermissionDenied,
    /// Another I/O error.
    #[error("storage i/o error: {0}")]
    Io(io::Error),
    /// The file is damaged: a checksum, a page or a record does not verify,
    /// or a stored value does not decode. Nothing of it is served.
    #[error("corrupt storage: {0}")]
    Corrupt(String),
    /// The file belongs to another cluster or another node.
    #[error("foreign file: its {field} is {found:?}, this node's is {expected:?}")]
    ForeignFile {
        /// Which identity field differs (`"cluster"`, `"node"`).
        field: &'static str,
        /// The value this node expected.
        expected: String,
        /// The value the file records.
        found: String,
    },
    /// The file holds the store under another key or value type.
    #[error("store {store:?} holds {found}, not {expected}")]
    TypeMismatch {
        /// The store's name.
        store: String,
        /// The types asked for.
        expected: String,
        /// The types the file records.
        found: String,
    },
    /// A backup lacks the section of a store the node has.
    #[error("the backup has no section for store {0:?}")]
    MissingSection(String),
    /// The file was written by a format version this build cannot read.
    #[error("unsupported storage format version {0}")]
    UnsupportedVersion(u64),
    /// Another process holds the database open.
    #[error("the database is already open in another process")]
    Locked,
    /// A durable node was started with no data directory, and without the
    /// explicit in-memory option.
    #[error("no data directory configured (set one, or choose in-memory explicitly)")]
    NoDataDir,
    /// A backup file could not be read or written.
    #[error("backup: {0}")]
    Backup(#[from] crate::snapshot::SnapshotError),
    /// The storage is closed (its node shut down).
    #[error("the storage is closed")]
    Closed,
}

impl StorageError {
    /// Classifies an I/O error: disk full, read-only file system and
    /// permission denied get their own variants.
    pub fn from_io(e: io::Error) -> Self {
        match e.raw_os_error() {
            // ENOSPC, EDQUOT
            Some(28) | Some(122) => return StorageError::DiskFull,
            // EROFS
            Some(30) => return StorageError::ReadOnly,
            // EPERM, EACCES
            Some(1) | Some(13) => return StorageError::PermissionDenied,
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StorageError::DiskFull,
            io::ErrorKind::ReadOnlyFilesystem => StorageError::ReadOnly,
            io::ErrorKind::PermissionDenied => StorageError::PermissionDenied,
            _ => StorageError::Io(e),
        }
    }

    /// Whether the condition can pass without touching the file: a full
    /// disk, a read-only or unwritable file system, an I/O error. A write
    /// refused for one of these succeeds once the condition is gone;
    /// corrupt or foreign files do not heal by themselves.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::DiskFull
                | StorageError::ReadOnly
                | StorageError::PermissionDenied
                | StorageError::Io(_)
        )
    }
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        StorageError::from_io(e)
    }
}

/// Why [`Store::update`](super::Store::update) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpdateError<E> {
    /// The mutator refused the operation (its own error); nothing changed.
    #[error("operation refused: {0}")]
    Rejected(E),
    /// The current value could not be read; nothing changed.
    #[error(transparent)]
    Storage(StorageError),
}

impl<E> UpdateError<E> {
    /// The mutator's error, if that is why the update failed.
    pub fn rejected(self) -> Option<E> {
        match self {
            UpdateError::Rejected(e) => Some(e),
            UpdateError::Storage(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified() {
        let kind = |n| StorageError::from_io(io::Error::from_raw_os_error(n));
        assert!(matches!(kind(28), StorageError::DiskFull));
        assert!(matches!(kind(122), StorageError::DiskFull));
        assert!(matches!(kind(30), StorageError::ReadOnly));
        assert!(matches!(kind(13), StorageError::PermissionDenied));
        assert!(matches!(kind(5), StorageError::Io(_)));
        assert!(kind(5).is_transient());
        assert!(!StorageError::Corrupt("x".into()).is_transient());
    }
}
