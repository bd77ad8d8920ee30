//! `GMap<K, V>`: a grow-only map of lattices, joined key by key.

use std::collections::BTreeMap;

use accordant::codec::{Budget, Canonical, SeqVec};
use accordant::{DecodeError, Decompose, Lattice};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A grow-only map from keys to lattice values.
///
/// It is the delta-group type of a [`Store`](crate::store::Store) under the
/// replicator (a batch of per-key deltas), and a CRDT in its own right: the
/// grow-only map of the ICDE 2019 micro-benchmarks. Keys are never removed
/// and the value of a key only grows; a key holding bottom is absent, so
/// equal maps have one representation and one encoding.
///
/// ```
/// use accordant::{Decompose, GCounter, Lattice, ReplicaId};
/// use accordant_sync::delta::GMap;
/// let r = ReplicaId::from_u128(1);
/// let mut m: GMap<u32, GCounter> = GMap::new();
/// let d = m.update(7, |c| c.increment(r, 2)).unwrap();
/// assert_eq!(d.len(), 1);
/// let mut other = GMap::new();
/// other.join(&d);
/// assert_eq!(other, m);
/// assert!(m.delta(&other).is_bottom());
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GMap<K, V>(BTreeMap<K, V>);

impl<K, V> Default for GMap<K, V> {
    fn default() -> Self {
        GMap(BTreeMap::new())
    }
}

impl<K: Ord + Clone, V: Lattice> GMap<K, V> {
    /// The empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of one key (empty if `value` is bottom).
    pub fn single(key: K, value: V) -> Self {
        let mut m = Self::new();
        if !value.is_bottom() {
            m.0.insert(key, value);
        }
        m
    }

    /// Applies a delta mutator to the value under `key` (bottom if absent)
    /// and returns the map's delta: `key` with the mutator's delta.
    pub fn update<E>(&mut self, key: K, f: impl FnOnce(&mut V) -> Result<V, E>) -> Result<Self, E> {
        let slot = self.0.entry(key.clone()).or_default();
        let result = f(slot);
        if slot.is_bottom() {
            self.0.remove(&key);
        }
        result.map(|d| Self::single(key, d))
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.0.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map has no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every `(key, value)`, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter()
    }

    /// Joins `value` into the value under `key`.
    pub fn join_key(&mut self, key: K, value: &V) {
        if value.is_bottom() {
            return;
        }
        match self.0.get_mut(&key) {
            Some(v) => v.join(value),
            None => {
                self.0.insert(key, value.clone());
            }
        }
    }
}

impl<K: Ord + Clone, V: Lattice> FromIterator<(K, V)> for GMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Self::new();
        for (k, v) in iter {
            m.join_key(k, &v);
        }
        m
    }
}

impl<K: Ord + Clone, V: Lattice> Lattice for GMap<K, V> {
    fn join(&mut self, other: &Self) {
        for (k, v) in &other.0 {
            self.join_key(k.clone(), v);
        }
    }

    fn join_owned(&mut self, other: Self) {
        if self.0.is_empty() {
            *self = other;
            return;
        }
        for (k, v) in other.0 {
            match self.0.get_mut(&k) {
                Some(mine) => mine.join_owned(v),
                None => {
                    self.0.insert(k, v);
                }
            }
        }
    }

    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Ord + Clone, V: Decompose> Decompose for GMap<K, V> {
    /// One irreducible per key and irreducible of its value.
    fn decompose(&self) -> Vec<Self> {
        self.0
            .iter()
            .flat_map(|(k, v)| {
                v.decompose()
                    .into_iter()
                    .map(|x| Self::single(k.clone(), x))
            })
            .collect()
    }

    /// Per key, the minimal delta of the value against `other`'s.
    fn delta(&self, other: &Self) -> Self {
        let mut out = BTreeMap::new();
        for (k, v) in &self.0 {
            let d = match other.0.get(k) {
                Some(theirs) => v.delta(theirs),
                None => v.clone(),
            };
            if !d.is_bottom() {
                out.insert(k.clone(), d);
            }
        }
        GMap(out)
    }
}

impl<K, V> Canonical for GMap<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    V: Lattice + Canonical,
{
    /// `(key, value)` pairs sorted by key, no value bottom.
    type Wire = SeqVec<(K, V::Wire)>;

    fn to_wire(&self) -> Self::Wire {
        SeqVec(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_wire()))
                .collect(),
        )
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        budget.take(wire.0.len())?;
        if !wire.0.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(DecodeError::NonCanonical("map keys not sorted"));
        }
        let mut out = BTreeMap::new();
        for (k, w) in wire.0 {
            let v = V::from_wire(w, budget)?;
            if v.is_bottom() {
                return Err(DecodeError::NonCanonical("bottom value in a map"));
            }
            out.insert(k, v);
        }
        Ok(GMap(out))
    }
}

#[cfg(test)]
mod tests {
    use accordant::codec::{decode, encode, Limits};
    use accordant::{GCounter, ReplicaId};

    use super::*;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn laws_on_a_small_history() {
        let mut a: GMap<u8, GCounter> = GMap::new();
        let mut b: GMap<u8, GCounter> = GMap::new();
        for k in 0..10u8 {
            let _ = a
                .update(k, |c| c.increment(r(1), u64::from(k) + 1))
                .unwrap();
            let _ = b.update(k / 2, |c| c.increment(r(2), 1)).unwrap();
        }
        let ab = a.clone().joined(&b);
        assert_eq!(ab, b.clone().joined(&a));
        assert_eq!(ab.clone().joined(&a), ab);
        assert_eq!(a.delta(&b).joined(&b), ab);
        assert!(a.delta(&ab).is_bottom());
        let parts = ab.decompose();
        assert_eq!(parts.len(), 10 + 5);
        assert_eq!(parts.into_iter().fold(GMap::new(), |m, p| m.joined(&p)), ab);
        let bytes = encode(&ab);
        assert_eq!(
            decode::<GMap<u8, GCounter>>(&bytes, &Limits::default()),
            Ok(ab)
        );
    }

    #[test]
    fn decode_rejects_unsorted_keys_and_bottom_values() {
        let one = GCounter::new().joined(&GCounter::new().increment(r(1), 1).unwrap());
        let unsorted = SeqVec(vec![(2u8, one.to_wire()), (1u8, one.to_wire())]);
        let bottom = SeqVec(vec![(1u8, GCounter::new().to_wire())]);
        for wire in [unsorted, bottom] {
            let bytes = postcard::to_allocvec(&wire).unwrap();
            assert!(matches!(
                decode::<GMap<u8, GCounter>>(&bytes, &Limits::default()),
                Err(DecodeError::NonCanonical(_))
            ));
        }
    }
}
