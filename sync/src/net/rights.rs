//! Bounded-counter rights over the node: explicit transfers, and a keeper
//! that runs the automatic [`RightsPolicy`] so that rights follow demand.
//!
//! A [`BoundedCounter`] (Balegas et al., SRDS 2015) lets a region sell
//! only the units it holds rights for. Rights move by a transfer, which is
//! an ordinary write of the giver's row: [`Channel::transfer_rights`]
//! makes one, and the delta path and anti-entropy carry it like any other
//! write. [`Channel::keep_rights`] spawns a keeper that, every `every`,
//! runs [`BoundedCounter::rebalance`] for this region over every key of
//! the channel: a region that sees a member below the policy's low
//! watermark gives it part of its own surplus. A region running low thus
//! *asks* by showing low rights in its state, and *peers give* as soon as
//! that state reaches them; during a partition nothing moves, and each
//! side sells what it holds, never more.
//!
//! The members are the replica ids of the regions (a region that never
//! wrote the counter holds no rights and counts as low). A pass reads
//! every key of the channel: keep bounded counters in a channel of their
//! own.

use std::time::Duration;

use accordant::{BoundedCounter, BoundedError, ReplicaId, RightsPolicy};
use tracing::debug;

use super::channel::{Channel, WriteError};
use crate::store::StoreKey;

/// The keeper spawned by [`Channel::keep_rights`]; stops when dropped.
#[derive(Debug)]
pub struct RightsKeeper {
    task: tokio::task::JoinHandle<()>,
    transfers: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RightsKeeper {
    /// Transfers the keeper made so far.
    pub fn transfers(&self) -> u64 {
        self.transfers.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RightsKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K: StoreKey + Send + Sync + 'static> Channel<K, BoundedCounter> {
    /// Moves `amount` rights of `key` from this region (`me`) to `to`.
    pub async fn transfer_rights(
        &self,
        key: K,
        me: ReplicaId,
        to: ReplicaId,
        amount: u64,
    ) -> Result<BoundedCounter, WriteError<BoundedError>> {
        self.update(key, |c| c.transfer(me, to, amount)).await
    }

    /// One pass of `policy` for region `me` over every key: the transfers
    /// made.
    pub async fn rebalance_rights(
        &self,
        me: ReplicaId,
        members: &[ReplicaId],
        policy: &RightsPolicy,
    ) -> u64 {
        let keys: Vec<K> = self.read(|s| s.iter().map(|(k, _)| k).collect());
        let mut made = 0;
        for key in keys {
            let needed = self
                .get(&key)
                .and_then(|c| c.rebalance(me, members.iter().copied(), policy));
            let Some((to, amount)) = needed else { continue };
            // Decided and made under the store's state at write time.
            let r = self
                .update(key, |c| {
                    c.apply_rebalance(me, members.iter().copied(), policy)
                        .map(Option::unwrap_or_default)
                })
                .await;
            if r.is_ok_and(|d| d != BoundedCounter::new()) {
                made += 1;
                debug!(channel = %self.name(), %to, amount, "rights transferred by the policy");
            }
        }
        made
    }

    /// Spawns a keeper that runs [`Channel::rebalance_rights`] every
    /// `every`: every region runs one, and a region running low is topped
    /// up by its peers once its state reaches them.
    pub fn keep_rights(
        &self,
        me: ReplicaId,
        members: Vec<ReplicaId>,
        policy: RightsPolicy,
        every: Duration,
    ) -> RightsKeeper {
        let channel = self.clone();
        let transfers = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = std::sync::Arc::clone(&transfers);
        let task = tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                t.tick().await;
                let n = channel.rebalance_rights(me, &members, &policy).await;
                counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        });
        RightsKeeper { task, transfers }
    }
}
