//! The divergence monitor: how many keys differ between this node and a
//! peer right now, and roughly how many bytes converging would move, from
//! one small message and no values.
//!
//! Every [`NodeConfig::divergence_interval`](super::NodeConfig::divergence_interval)
//! each side of a connection sends, per channel, a [`DivergenceProbe`]
//! ([`Frame::Probe`](super::wire::Frame::Probe), 33 bytes at 10^6 keys): the
//! 24-byte difference [`Estimator`] its digest tree already keeps per write
//! (the one the session's `Hello` carries: sixteen tug-of-war counters,
//! Alon, Matias and Szegedy, STOC 1996), its key count and the mean encoded
//! size of an item (key and value), measured on a sample of
//! [`SAMPLE_ITEMS`] items from a position that moves at every probe. The
//! receiver keeps it and, at its own interval, compares it with its own
//! estimator ([`compare`]); nothing is read but those sampled items, and
//! nothing is sent back (a peer flooding probes costs a map insert each).
//! Because the node compares with each peer's last probe at every
//! interval, while a peer is unreachable (a partition) the estimate goes on
//! rising with this side's writes: it then counts what changed here since the peer's last
//! probe, plus what differed then, and not what changed there, which the
//! peer's own gauge counts (an operator adds the two sides' gauges;
//! [`DivergenceEstimate::probe_age`] says how old the comparison is).
//!
//! What the estimator counts is *items*, `(key, value)` pairs: the
//! symmetric difference `d` of the two sides' items. A key one side lacks
//! is one item of it; a key whose values differ is two. With the key counts
//! `n_a`, `n_b`, the keys that differ lie between `d / 2` and `d`, and
//! [`DivergenceEstimate::keys`] reads `(d + |n_a - n_b|) / 2`: right when
//! missing keys are all on one side (new keys written in one region,
//! changes anywhere), and low by up to half when both sides wrote distinct
//! new keys. Bytes: each item of the difference travels once, so
//! `d × mean item size` ([`DivergenceEstimate::bytes`]), without the
//! session's own fingerprints (a few bytes a key). The estimator's spread
//! is about 35% (relative standard deviation of `d`; one reading lies
//! within 0.22 to 2.6 times `d` with probability 99.9%: sixteen squares,
//! a chi-square of 16 degrees of freedom), and it is exact at 0: two equal
//! stores read 0.
//!
//! ```
//! use accordant_sync::net::{compare, DivergenceProbe};
//! use accordant_sync::sketch::{Estimator, ItemId};
//!
//! let (mut a, mut b) = (Estimator::default(), Estimator::default());
//! for i in 0..1000u64 {
//!     let id = ItemId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
//!     a.add(id);
//!     b.add(id);
//! }
//! let probe = DivergenceProbe { estimator: b.to_bytes(), keys: 1000, mean_item_bytes: 100 };
//! let same = compare(&a, 1000, 100, &probe);
//! assert_eq!((same.items, same.keys, same.bytes), (0.0, 0.0, 0.0));
//! for i in 0..200u64 {
//!     a.add(ItemId(!i)); // 200 new keys here
//! }
//! let e = compare(&a, 1200, 100, &probe);
//! assert!((100.0..400.0).contains(&e.keys), "{e:?}");
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::conn::ConnEnv;
use super::shared::lock;

use crate::sketch::{Estimator, ESTIMATOR_BYTES};
use crate::store::{Store, StoreKey, StoreValue};

/// Items sampled to measure the mean item size.
pub const SAMPLE_ITEMS: usize = 32;

/// What a node sends a peer so the peer can estimate their divergence: its
/// difference estimator, key count and mean item size (no values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivergenceProbe {
    /// The sender's difference estimator
    /// ([`Estimator::to_bytes`]).
    pub estimator: [u8; ESTIMATOR_BYTES],
    /// The sender's key count.
    pub keys: u64,
    /// The sender's mean encoded item size (key and value), bytes.
    pub mean_item_bytes: u32,
}

/// An estimate of how far this node and a peer are apart on one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct DivergenceEstimate {
    /// Items (`(key, value)` pairs) in the symmetric difference.
    pub items: f64,
    /// Keys that differ (see the [module docs](self) for the reading).
    pub keys: f64,
    /// Bytes of items converging would move (keys and values).
    pub bytes: f64,
    /// This node's key count when it compared.
    pub local_keys: u64,
    /// The peer's key count, as its probe said.
    pub peer_keys: u64,
    /// How old the peer's probe was (it is the last one received: while
    /// the peer is unreachable the estimate compares with what it had
    /// then).
    pub probe_age: Duration,
}

/// Compares this node's estimator, key count and mean item size with a
/// peer's probe. Any probe is valid input: the result is only an estimate.
pub fn compare(
    own: &Estimator,
    own_keys: u64,
    own_mean_item_bytes: u32,
    probe: &DivergenceProbe,
) -> DivergenceEstimate {
    // At least |n_a - n_b| items differ, whatever the estimator's noise.
    let gap = own_keys.abs_diff(probe.keys) as f64;
    let items = own.estimate(&probe.estimator).max(gap);
    let keys = ((items + gap) / 2.0).min(items);
    let mean = (f64::from(own_mean_item_bytes) + f64::from(probe.mean_item_bytes)) / 2.0;
    DivergenceEstimate {
        items,
        keys,
        bytes: items * mean,
        local_keys: own_keys,
        peer_keys: probe.keys,
        probe_age: Duration::ZERO,
    }
}

/// The mean encoded size of up to [`SAMPLE_ITEMS`] items of `store`, from
/// the key hash `start` on (wrapping): an unbiased sample, since key hashes
/// are uniform. Zero for an empty store.
pub fn mean_item_bytes<K: StoreKey, V: StoreValue>(store: &Store<K, V>, start: u64) -> u32 {
    let mut n = 0u64;
    let mut total = 0u64;
    let upper = store.items_in_hashes(start..=u64::MAX);
    let lower = store.items_in_hashes(0..=start.saturating_sub(1));
    let lower = lower.take_while(|_| start > 0);
    for (_, k, v, _) in upper.chain(lower).take(SAMPLE_ITEMS) {
        total += (crate::key::key_bytes(&k).len() + accordant::codec::encode(&v).len()) as u64;
        n += 1;
    }
    if n == 0 {
        return 0;
    }
    u32::try_from(total / n).unwrap_or(u32::MAX)
}

/// Compares every channel with the last probe of every peer that sent
/// one, connected or not, and records the estimates (the node runs it
/// every [`NodeConfig::divergence_interval`](super::NodeConfig::divergence_interval)).
pub(crate) fn refresh(env: &ConnEnv, start: u64) {
    let now = Instant::now();
    let peers: Vec<_> = lock(&env.shared.metrics.peers)
        .values()
        .map(Arc::clone)
        .collect();
    for m in peers {
        let probes: Vec<(u16, DivergenceProbe, Instant)> = lock(&m.probes)
            .iter()
            .map(|(c, (p, at))| (*c, *p, *at))
            .collect();
        for (c, probe, at) in probes {
            let Some(ch) = env.channels.get(usize::from(c)) else {
                continue;
            };
            let mut e = ch.compare(start, &probe);
            e.probe_age = now.saturating_duration_since(at);
            tracing::debug!(
                peer = %lock(&m.name), channel = %ch.name(), items = e.items,
                keys = e.keys, bytes = e.bytes, "divergence estimated"
            );
            lock(&m.divergence).insert(ch.name().to_string(), e);
        }
    }
}

/// This store's probe.
pub fn probe<K: StoreKey, V: StoreValue>(store: &Store<K, V>, start: u64) -> DivergenceProbe {
    DivergenceProbe {
        estimator: store.tree().coded().estimator().to_bytes(),
        keys: store.len() as u64,
        mean_item_bytes: mean_item_bytes(store, start),
    }
}

/// Compares `store` with a peer's probe.
pub fn compare_store<K: StoreKey, V: StoreValue>(
    store: &Store<K, V>,
    start: u64,
    probe: &DivergenceProbe,
) -> DivergenceEstimate {
    compare(
        store.tree().coded().estimator(),
        store.len() as u64,
        mean_item_bytes(store, start),
        probe,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use accordant::{GCounter, ReplicaId};

    fn store(keys: std::ops::Range<u32>, by: u128, n: u64) -> Store<String, GCounter> {
        let mut s = Store::new();
        for k in keys {
            let _ = s
                .update(format!("k{k}"), |c: &mut GCounter| {
                    c.increment(ReplicaId::from_u128(by), n)
                })
                .unwrap();
        }
        s
    }

    /// One reading lies within [0.22, 2.6] times the truth with
    /// probability 99.9% (sixteen squares: a chi-square of 16 degrees of
    /// freedom, over 16).
    fn within(got: f64, truth: f64) -> bool {
        (0.22 * truth..=2.6 * truth).contains(&got)
    }

    #[test]
    fn equal_stores_read_zero() {
        let (a, b) = (store(0..500, 1, 1), store(0..500, 1, 1));
        let e = compare_store(&a, 7, &probe(&b, 99));
        assert_eq!((e.items, e.keys, e.bytes), (0.0, 0.0, 0.0));
        assert_eq!((e.local_keys, e.peer_keys), (500, 500));
    }

    #[test]
    fn keys_missing_on_one_side_and_changed_keys_are_counted_as_keys() {
        // 300 keys only in `a`: 300 items, 300 keys.
        let (a, b) = (store(0..1300, 1, 1), store(0..1000, 1, 1));
        let e = compare_store(&a, 0, &probe(&b, 0));
        assert!(within(e.keys, 300.0), "{e:?}");
        assert!(e.keys >= 300.0, "never below the key-count gap: {e:?}");
        // 300 keys changed: 600 items, 300 keys.
        let mut c = store(0..1000, 1, 1);
        for k in 0..300 {
            let _ = c
                .update(format!("k{k}"), |v: &mut GCounter| {
                    v.increment(ReplicaId::from_u128(2), 1)
                })
                .unwrap();
        }
        let e = compare_store(&c, 0, &probe(&b, 0));
        assert!(within(e.items, 600.0), "{e:?}");
        assert!(within(e.keys, 300.0), "{e:?}");
        assert!(e.bytes > e.items, "bytes count every item's size: {e:?}");
    }

    #[test]
    fn the_mean_item_size_samples_wrapping_and_handles_an_empty_store() {
        let empty: Store<String, GCounter> = Store::new();
        assert_eq!(mean_item_bytes(&empty, 5), 0);
        let s = store(0..3, 1, 1);
        let exact: u64 = s
            .iter()
            .map(|(k, v)| {
                (crate::key::key_bytes(&k).len() + accordant::codec::encode(&v).len()) as u64
            })
            .sum::<u64>()
            / 3;
        for start in [0, 1 << 40, u64::MAX] {
            assert_eq!(
                u64::from(mean_item_bytes(&s, start)),
                exact,
                "start {start}"
            );
        }
    }

    #[test]
    fn any_probe_is_harmless() {
        let a = store(0..10, 1, 1);
        let hostile = DivergenceProbe {
            estimator: [0xff; ESTIMATOR_BYTES],
            keys: u64::MAX,
            mean_item_bytes: u32::MAX,
        };
        let e = compare_store(&a, 0, &hostile);
        assert!(e.items.is_finite() && e.bytes.is_finite() && e.keys <= e.items);
    }
}
