//! Group commit: when a channel's writes become durable, and who is told.
//!
//! A local write ([`Channel::update`](super::Channel::update)) is applied
//! to the store, where it is *staged* (see [`crate::store::storage`]), and
//! takes a ticket: the channel's count of local writes so far. It is
//! acknowledged once a commit covering its ticket has returned. Under
//! [`Fsync::Window`] the channel's committer waits out the window after
//! the first staged write, then commits everything staged in one
//! transaction and one fsync; under [`Fsync::EveryWrite`] the writer
//! commits itself before releasing the store. A commit that fails (a full
//! disk, a read-only file system) is rolled back: the store returns to its
//! last commit and every write it covered is refused with the error.
//!
//! Rolling back is safe because nothing staged has left the node: a
//! write's delta goes to the peers only after its commit, and every path
//! that sends the store's state (sessions, replicator ticks and
//! connects) commits what is staged first. So a crash never
//! takes back a dot that a peer has seen, and a restart continues the
//! replica's counters from the committed state without reissuing one.
//!
//! ```text
//! writer:   lock; stage; ticket = ++staged; unlock ─┐           ┌─> send delta; Ok
//! committer:        (window) lock; commit; done = staged; unlock; notify
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::metrics::Histogram;
use super::shared::lock;
use crate::store::db::Fsync;
use crate::store::{StorageError, Store, StoreKey, StoreValue};

/// Failed commits remembered for waiters that have not looked yet.
const KEEP_FAILURES: usize = 256;

/// What the channel's waiters need to know about commits.
#[derive(Debug, Default)]
struct Log {
    /// Tickets up to this one are settled (committed or refused).
    done: u64,
    /// Refused ticket ranges `(first, last, why)`, newest last.
    failed: VecDeque<(u64, u64, Arc<StorageError>)>,
}

/// One channel's commit bookkeeping (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct Commits {
    pub(crate) policy: Fsync,
    /// Whether the store is durable at all (in-memory stores skip all this).
    pub(crate) durable: bool,
    log: Mutex<Log>,
    settled: Notify,
    /// Wakes the committer when a write is staged.
    pub(crate) kick: Notify,
    /// Seconds per commit that wrote something (the node's histogram).
    pub(crate) latency: Histogram,
}

impl Commits {
    pub(crate) fn new(policy: Fsync, durable: bool) -> Self {
        Commits {
            policy,
            durable,
            log: Mutex::new(Log::default()),
            settled: Notify::new(),
            kick: Notify::new(),
            latency: Histogram::new(Histogram::SECONDS),
        }
    }

    /// Records commit latencies in `h` (the node's histogram).
    pub(crate) fn with_latency(mut self, h: Histogram) -> Self {
        self.latency = h;
        self
    }

    /// Records the outcome of a commit that covered tickets up to `upto`.
    fn settle_upto(&self, upto: u64, result: Result<(), StorageError>) {
        let mut log = lock(&self.log);
        if upto > log.done {
            if let Err(e) = result {
                let first = log.done + 1;
                log.failed.push_back((first, upto, Arc::new(e)));
                if log.failed.len() > KEEP_FAILURES {
                    log.failed.pop_front();
                }
            }
            log.done = upto;
        }
        drop(log);
        self.settled.notify_waiters();
    }

    /// Waits until `ticket` is settled: `Ok` once committed, the error if
    /// its commit failed.
    pub(crate) async fn wait(&self, ticket: u64) -> Result<(), Arc<StorageError>> {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let log = lock(&self.log);
                if log.done >= ticket {
                    return match log
                        .failed
                        .iter()
                        .find(|(a, b, _)| (*a..=*b).contains(&ticket))
                    {
                        Some((_, _, e)) => Err(Arc::clone(e)),
                        None => Ok(()),
                    };
                }
            }
            notified.await;
        }
    }
}

/// Commits what `store` has staged (local writes up to `staged`), or rolls
/// it back if the commit fails, and tells the waiters. Called with the
/// channel's lock held: nothing else sees the store in between.
pub(crate) fn settle<K: StoreKey, V: StoreValue>(
    commits: &Commits,
    store: &mut Store<K, V>,
    staged: u64,
) -> Result<(), Arc<StorageError>> {
    if !store.is_dirty() {
        commits.settle_upto(staged, Ok(()));
        return Ok(());
    }
    let started = std::time::Instant::now();
    let committed = store.commit();
    commits.latency.observe_duration(started.elapsed());
    match committed {
        Ok(()) => {
            commits.settle_upto(staged, Ok(()));
            Ok(())
        }
        Err(e) => {
            let undone = store.rollback();
            tracing::warn!(error = %e, undone, "commit failed: staged writes rolled back");
            let e = Arc::new(e);
            let mut log = lock(&commits.log);
            if staged > log.done {
                let first = log.done + 1;
                log.failed.push_back((first, staged, Arc::clone(&e)));
                if log.failed.len() > KEEP_FAILURES {
                    log.failed.pop_front();
                }
                log.done = staged;
            }
            drop(log);
            commits.settled.notify_waiters();
            Err(e)
        }
    }
}
