//! The hold-back queue of causal delivery: delta-intervals that arrived
//! ahead of a gap, per neighbour, within a [`CausalDelivery`] budget,
//! released in order once the gap is filled (Birman, Schiper and
//! Stephenson, TOCS 1991). Nothing held is acknowledged, so dropping it
//! loses nothing: the sender sends it again. See the
//! [module docs](super#causal-delivery).

use std::collections::BTreeMap;

use super::{CausalDelivery, Stats};

/// A held interval.
pub(super) struct HeldGroup<D> {
    pub(super) end: u64,
    /// The sender's incarnation when it sent it.
    pub(super) inc: u32,
    pub(super) group: D,
    /// Its encoded size, counted against the budget.
    bytes: usize,
}

/// The intervals held for one neighbour, by start.
struct Held<D> {
    groups: BTreeMap<u64, HeldGroup<D>>,
    bytes: usize,
    /// The sync step at which the oldest of them was held.
    since: u64,
}

/// The held intervals of every neighbour.
pub(super) struct HoldBack<P, D> {
    peers: BTreeMap<P, Held<D>>,
}

impl<P: Ord + Copy, D> HoldBack<P, D> {
    pub(super) fn new() -> Self {
        HoldBack {
            peers: BTreeMap::new(),
        }
    }

    /// Intervals held, over all neighbours.
    pub(super) fn len(&self) -> usize {
        self.peers.values().map(|h| h.groups.len()).sum()
    }

    /// Bytes held, over all neighbours.
    pub(super) fn bytes(&self) -> usize {
        self.peers.values().map(|h| h.bytes).sum()
    }

    /// Drops everything held for `p`.
    pub(super) fn drop_peer(&mut self, p: P, stats: &mut Stats) {
        if let Some(h) = self.peers.remove(&p) {
            stats.held_dropped += h.groups.len() as u64;
        }
    }

    /// The neighbours whose oldest held interval waited more than
    /// `max_wait` steps at step `now`.
    pub(super) fn late(&self, now: u64, max_wait: u32) -> Vec<P> {
        self.peers
            .iter()
            .filter(|(_, h)| now.saturating_sub(h.since) > u64::from(max_wait))
            .map(|(p, _)| *p)
            .collect()
    }

    /// Holds the interval `[start, end)` of `p` (sent by incarnation
    /// `inc`, `bytes` long) at step `now`. Returns `false`, and drops
    /// everything held for `p`, when the budget would be exceeded.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold(
        &mut self,
        budget: &CausalDelivery,
        p: P,
        (start, end, inc, bytes): (u64, u64, u32, usize),
        group: D,
        now: u64,
        stats: &mut Stats,
    ) -> bool {
        let h = self.peers.entry(p).or_insert_with(|| Held {
            groups: BTreeMap::new(),
            bytes: 0,
            since: now,
        });
        if let Some(old) = h.groups.get(&start) {
            if old.end >= end && old.inc == inc {
                // A duplicate (or a shorter copy): already held.
                return true;
            }
        }
        if let Some(old) = h.groups.remove(&start) {
            h.bytes -= old.bytes;
            stats.held_dropped += 1;
        }
        if h.groups.len() >= budget.max_held
            || h.bytes.saturating_add(bytes) > budget.max_held_bytes
        {
            self.drop_peer(p, stats);
            return false;
        }
        if h.groups.is_empty() {
            h.since = now;
        }
        h.groups.insert(
            start,
            HeldGroup {
                end,
                inc,
                group,
                bytes,
            },
        );
        h.bytes += bytes;
        stats.groups_held += 1;
        stats.held_max_entries = stats.held_max_entries.max(h.groups.len() as u64);
        stats.held_max_bytes = stats.held_max_bytes.max(h.bytes as u64);
        true
    }

    /// Takes the first interval held for `p` if it starts at or below
    /// `recv` (it then follows without a gap).
    pub(super) fn take_ready(&mut self, p: P, recv: u64) -> Option<HeldGroup<D>> {
        let h = self.peers.get_mut(&p)?;
        let Some(entry) = h.groups.first_entry() else {
            self.peers.remove(&p);
            return None;
        };
        if *entry.key() > recv {
            return None;
        }
        let g = entry.remove();
        h.bytes -= g.bytes;
        if h.groups.is_empty() {
            self.peers.remove(&p);
        }
        Some(g)
    }
}
