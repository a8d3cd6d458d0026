//! Where the file store lives, how big it may grow, and the errors of opening it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};

/// How to open a [`FileStore`](super::FileStore): the file, the size bound and the clock.
///
/// ```
/// use kinde_core::store::FileStoreConfig;
///
/// let config = FileStoreConfig::new("/var/lib/acme/kinde-webhooks.redb").capacity(2_000_000);
/// assert_eq!(config.path().to_str(), Some("/var/lib/acme/kinde-webhooks.redb"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct FileStoreConfig {
    pub(super) path: PathBuf,
    pub(super) capacity: usize,
    pub(super) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for FileStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStoreConfig")
            .field("path", &self.path)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl FileStoreConfig {
    /// The default size bound: 1 000 000 entries (events in progress, handled or parked, and
    /// entity records).
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// The store in the file at `path` (created if missing; its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            capacity: Self::DEFAULT_CAPACITY,
            clock: Arc::new(SystemClock),
        }
    }

    /// Most entries kept (raised to at least 1): events in progress, handled or parked, and
    /// (with ordering on) one record per entity seen within the done TTL. At capacity the
    /// oldest handled entry is evicted for each new claim, never a claim, a parked event or an
    /// entity record; a store full of those answers
    /// [`StoreError::Full`](crate::store::StoreError::Full).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The wall clock the deadlines are measured on (the system clock by default). Deadlines
    /// are stored in the file as wall-clock milliseconds, so they keep running while the
    /// process is down. Tests pass a manual clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why a [`FileStore`](super::FileStore) could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileStoreError {
    /// Another `FileStore` holds the file: another process, or another `FileStore` in this
    /// process that is still open. One process per file.
    #[error("{}: the store file is already open (by another process, or another FileStore in this one); one process per file", path.display())]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but is not a store this version understands (another program's file,
    /// or a newer schema).
    #[error("{}: {why}", path.display())]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The file could not be created, read, repaired or written.
    #[error("{}: cannot open the store file: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
