//! Replica identities and dots.
//!
//! A [`ReplicaId`] names one replica (one region, one process) for the whole
//! life of the data; it wraps a [`uuid::Uuid`] so ids can be made without
//! coordination. A [`Dot`] `(replica, n)` names the `n`-th event of a replica
//! (`n >= 1`); causal CRDTs tag every write with a fresh dot, and a
//! [`CausalContext`](crate::CausalContext) records which dots a state has seen.
//!
//! ```
//! use accordant::{Dot, ReplicaId};
//! let eu = ReplicaId::from_u128(1);
//! let dot = Dot::new(eu, 1).unwrap();
//! assert_eq!(dot.replica(), eu);
//! assert!(Dot::new(eu, 0).is_none(), "dot counters start at 1");
//! ```

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The identity of a replica: a UUID newtype.
///
/// Encodes as 16 raw bytes (no length prefix). Inside CRDT states replica ids
/// are interned: each appears once per encoded state, and dots refer to it by
/// index.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaId(Uuid);

impl ReplicaId {
    /// Wraps a UUID.
    pub const fn from_uuid(id: Uuid) -> Self {
        ReplicaId(id)
    }

    /// Builds an id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        ReplicaId(Uuid::from_bytes(bytes))
    }

    /// A fresh random id (a version-4 UUID from the operating system's
    /// random source): what a new replica, or one that lost its dot
    /// counters, takes as its identity.
    ///
    /// ```
    /// use accordant::ReplicaId;
    /// let (a, b) = (ReplicaId::random(), ReplicaId::random());
    /// assert_ne!(a, b);
    /// assert_eq!(a.as_uuid().get_version_num(), 4);
    /// ```
    pub fn random() -> Self {
        ReplicaId(Uuid::new_v4())
    }

    /// Builds an id from a number: handy for tests and deterministic examples.
    pub const fn from_u128(n: u128) -> Self {
        ReplicaId(Uuid::from_u128(n))
    }

    /// The wrapped UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes of the id.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The last 4 hex digits are enough to tell replicas apart in test output.
        let s = self.0.simple().to_string();
        write!(f, "R{}", &s[28..])
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<Uuid> for ReplicaId {
    fn from(id: Uuid) -> Self {
        ReplicaId(id)
    }
}

impl Serialize for ReplicaId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_bytes().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReplicaId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <[u8; 16]>::deserialize(d).map(ReplicaId::from_bytes)
    }
}

/// The `counter`-th event of `replica`; counters start at 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    replica: ReplicaId,
    counter: u64,
}

impl Dot {
    /// A dot, or `None` if `counter` is 0 (dots count from 1).
    pub const fn new(replica: ReplicaId, counter: u64) -> Option<Self> {
        if counter == 0 {
            None
        } else {
            Some(Dot { replica, counter })
        }
    }

    /// A dot from a counter known to be >= 1 (a live entry of a store).
    pub(crate) const fn from_parts(replica: ReplicaId, counter: u64) -> Self {
        debug_assert!(counter != 0);
        Dot { replica, counter }
    }

    /// The replica that made the event.
    pub const fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// The event's sequence number at its replica (>= 1).
    pub const fn counter(&self) -> u64 {
        self.counter
    }
}

/// `replica:counter`, the replica as its full UUID.
///
/// ```
/// use accordant::{Dot, ReplicaId};
/// let d = Dot::new(ReplicaId::from_u128(1), 7).unwrap();
/// assert_eq!(d.to_string(), "00000000-0000-0000-0000-000000000001:7");
/// ```
impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.replica, self.counter)
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}:{}", self.replica, self.counter)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for ReplicaId {
    /// One of 8 replicas, so fuzzed histories share replicas and dots collide.
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(ReplicaId::from_u128(u128::from(u.int_in_range(0u8..=7)?)))
    }
}
