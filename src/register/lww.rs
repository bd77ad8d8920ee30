//! `LwwRegister`: a last-writer-wins register on hybrid logical clocks.
//!
//! The state is `(timestamp, replica, value)` or empty; the join keeps the
//! larger by `(timestamp, replica)` (Shapiro et al., INRIA RR-7506, 2011,
//! §3.2.1), with the value itself as a last tie break so the join stays a
//! semilattice even if one replica reuses a timestamp. Timestamps come from
//! an [`HlcClock`], so a write that *saw* another write always wins over it,
//! whatever the wall clocks say.
//!
//! Of two *concurrent* writes, one is dropped, by design: this is the seed
//! article's "loses data silently" (DynamoDB global tables). Use an
//! [`MvRegister`](crate::MvRegister) when both must survive.
//!
//! A remote state whose timestamp is further ahead of local time than the
//! clock's maximum offset is refused by [`LwwRegister::merge_remote`], so a
//! replica with a clock in the future cannot win every write.
//!
//! ```
//! use accordant::{HlcClock, Lattice, LwwRegister, ManualClock, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let wall = ManualClock::new(1_000);
//! let (mut ceu, mut cus) = (HlcClock::new(500), HlcClock::new(500));
//! let mut a = LwwRegister::new();
//! let mut b = LwwRegister::new();
//! let _ = a.write(eu, "Berlin", &mut ceu, &wall).unwrap();
//! let _ = b.write(us, "Boston", &mut cus, &wall).unwrap(); // same ms: replica id breaks the tie
//! a.join(&b);
//! assert_eq!(a.get(), Some(&"Boston"));
//! ```

use crate::clock::{Clock, Hlc, HlcClock};
use crate::codec::{serde_via_wire, Budget, Canonical, WireValue, WireValueRef};
use crate::error::{ClockError, DecodeError};
use crate::lattice::{Decompose, Lattice};
use crate::replica::ReplicaId;

/// A last-writer-wins register.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LwwRegister<V> {
    entry: Option<(Hlc, ReplicaId, V)>,
}

impl<V> Default for LwwRegister<V> {
    fn default() -> Self {
        LwwRegister { entry: None }
    }
}

impl<V: Clone + Ord> LwwRegister<V> {
    /// The empty register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at `replica` with a fresh timestamp; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn write(
        &mut self,
        replica: ReplicaId,
        value: V,
        hlc: &mut HlcClock,
        clock: &dyn Clock,
    ) -> Result<Self, ClockError> {
        if let Some((t, _, _)) = &self.entry {
            // Make sure the new timestamp exceeds the one we hold, even if it
            // came from a join that bypassed `merge_remote`.
            if *t > hlc.last() {
                hlc.observe(*t, clock)?;
            }
        }
        let stamp = hlc.now(clock)?;
        Ok(self.write_at(stamp, replica, value))
    }

    /// Writes with an explicit timestamp (no clock); the write only takes
    /// effect if it is larger than the current one. Returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn write_at(&mut self, stamp: Hlc, replica: ReplicaId, value: V) -> Self {
        let d = LwwRegister {
            entry: Some((stamp, replica, value)),
        };
        self.join(&d);
        d
    }

    /// Joins a state received from another replica, refusing it (and
    /// changing nothing) if its timestamp is too far ahead of local time.
    pub fn merge_remote(
        &mut self,
        other: &Self,
        hlc: &mut HlcClock,
        clock: &dyn Clock,
    ) -> Result<(), ClockError> {
        if let Some((t, _, _)) = &other.entry {
            hlc.observe(*t, clock)?;
        }
        self.join(other);
        Ok(())
    }

    /// The value, if any write happened.
    pub fn get(&self) -> Option<&V> {
        self.entry.as_ref().map(|(_, _, v)| v)
    }

    /// The timestamp and replica of the winning write.
    pub fn stamp(&self) -> Option<(Hlc, ReplicaId)> {
        self.entry.as_ref().map(|(t, r, _)| (*t, *r))
    }
}

impl<V: Clone + Ord> Lattice for LwwRegister<V> {
    fn join(&mut self, other: &Self) {
        if other.entry > self.entry {
            self.entry.clone_from(&other.entry);
        }
    }

    fn join_owned(&mut self, other: Self) {
        if other.entry > self.entry {
            self.entry = other.entry;
        }
    }
}

impl<V: Clone + Ord> Decompose for LwwRegister<V> {
    /// A register is a chain: any non-empty state is its own irreducible.
    fn decompose(&self) -> Vec<Self> {
        self.entry.iter().map(|_| self.clone()).collect()
    }

    fn delta(&self, other: &Self) -> Self {
        if self.entry > other.entry {
            self.clone()
        } else {
            Self::default()
        }
    }
}

/// The value goes through [`WireValue`]: a `Vec<u8>` is written and read as
/// a byte string (the same bytes, copied in one go).
impl<V> Canonical for LwwRegister<V>
where
    V: Clone + Ord + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    type Wire = Option<(Hlc, ReplicaId, WireValue<V>)>;

    fn to_wire(&self) -> Self::Wire {
        self.entry.clone().map(|(t, r, v)| (t, r, WireValue(v)))
    }

    fn serialize_wire<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let entry = self.entry.as_ref().map(|(t, r, v)| (t, r, WireValueRef(v)));
        serde::Serialize::serialize(&entry, s)
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        budget.take(1)?;
        Ok(LwwRegister {
            entry: wire.map(|(t, r, v)| (t, r, v.0)),
        })
    }
}

serde_via_wire!([V] LwwRegister<V>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::codec::encode;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn concurrent_writes_keep_the_larger_timestamp_then_replica() {
        let mut a = LwwRegister::new();
        let mut b = LwwRegister::new();
        let da = a.write_at(Hlc::new(10, 0), r(1), "a");
        let db = b.write_at(Hlc::new(10, 0), r(2), "b");
        a.join(&db);
        b.join(&da);
        assert_eq!(a, b);
        assert_eq!(a.get(), Some(&"b"), "equal timestamps: larger replica wins");
        let dc = a.write_at(Hlc::new(11, 0), r(1), "c");
        b.join(&dc);
        assert_eq!(b.get(), Some(&"c"));
        // An older write arriving late changes nothing.
        b.join(&da);
        assert_eq!(b.get(), Some(&"c"));
    }

    #[test]
    fn a_write_that_saw_another_wins_despite_a_slow_clock() {
        let fast = ManualClock::new(5_000);
        let slow = ManualClock::new(1_000);
        let (mut cf, mut cs) = (HlcClock::new(10_000), HlcClock::new(10_000));
        let mut a = LwwRegister::new();
        let d = a.write(r(2), 1u8, &mut cf, &fast).unwrap();
        let mut b = LwwRegister::new();
        b.merge_remote(&d, &mut cs, &slow).unwrap();
        let _ = b.write(r(1), 2u8, &mut cs, &slow).unwrap();
        a.join(&b);
        assert_eq!(a.get(), Some(&2));
    }

    #[test]
    fn skewed_remote_clock_is_refused() {
        let wall = ManualClock::new(1_000);
        let mut hlc = HlcClock::new(500);
        let mut mine = LwwRegister::new();
        let _ = mine.write(r(1), 1u8, &mut hlc, &wall).unwrap();
        let mut skewed = LwwRegister::new();
        let _ = skewed.write_at(Hlc::new(1_000 + 501, 0), r(9), 9u8);
        let before = mine.clone();
        assert!(matches!(
            mine.merge_remote(&skewed, &mut hlc, &wall),
            Err(ClockError::TooFarAhead { ahead_ms: 501, .. })
        ));
        assert_eq!(mine, before);
        // Within the offset it is accepted.
        let mut ok = LwwRegister::new();
        let _ = ok.write_at(Hlc::new(1_500, 0), r(9), 9u8);
        mine.merge_remote(&ok, &mut hlc, &wall).unwrap();
        assert_eq!(mine.get(), Some(&9));
    }

    #[test]
    fn byte_vectors_encode_as_before_and_decode_back() {
        use crate::codec::{decode, Limits};
        for len in [0usize, 1, 127, 128, 300, 20_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut reg = LwwRegister::new();
            let _ = reg.write_at(Hlc::new(1_700_000_000_000, 3), r(5), bytes.clone());
            // The bytes of version 2: the value as a sequence of `u8`s.
            let as_seq = postcard::to_allocvec(&reg.entry).unwrap();
            let enc = encode(&reg);
            assert_eq!(enc, as_seq, "len {len}");
            assert_eq!(crate::codec::encoded_len(&reg), enc.len());
            let back: LwwRegister<Vec<u8>> = decode(&enc, &Limits::default()).unwrap();
            assert_eq!(back, reg);
            // Every strict prefix is refused (a length beyond the input).
            for cut in [enc.len() - 1, enc.len() / 2, 1] {
                assert!(decode::<LwwRegister<Vec<u8>>>(&enc[..cut], &Limits::default()).is_err());
            }
            // Through serde (the register embedded in a postcard message).
            let embedded = postcard::to_allocvec(&reg).unwrap();
            assert_eq!(embedded, enc);
            assert_eq!(
                postcard::from_bytes::<LwwRegister<Vec<u8>>>(&embedded).unwrap(),
                reg
            );
        }
    }

    #[test]
    fn a_byte_vector_with_an_overlong_length_is_not_canonical() {
        use crate::codec::{decode, Limits};
        let mut reg = LwwRegister::new();
        let _ = reg.write_at(Hlc::new(9, 0), r(1), vec![1u8, 2]);
        let enc = encode(&reg);
        // The value's length (2) is the byte before the last two.
        let at = enc.len() - 3;
        assert_eq!(enc[at], 2);
        let mut overlong = enc[..at].to_vec();
        overlong.extend_from_slice(&[0x82, 0x00, 1, 2]);
        assert_eq!(
            decode::<LwwRegister<Vec<u8>>>(&overlong, &Limits::default()),
            Err(DecodeError::NonCanonical("overlong varint"))
        );
    }

    #[test]
    fn sixteen_byte_value_encoding() {
        let mut reg = LwwRegister::new();
        let _ = reg.write_at(Hlc::new(1_700_000_000_000, 0), r(1), [7u8; 16]);
        // option tag + varint ms (6 bytes) + logical + id + 16 raw bytes
        assert_eq!(encode(&reg).len(), 1 + 6 + 1 + 16 + 16);
    }
}
