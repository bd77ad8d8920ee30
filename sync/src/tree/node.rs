//! [`NodeId`]: a node of the implicit radix tree over the 64-bit key-hash
//! space, and the arithmetic on it (children, ancestors, key ranges), all
//! built on [`BITS_PER_LEVEL`] and [`FANOUT`], so that no caller needs to
//! know how many bits a level takes.
//!
//! ```
//! use accordant_sync::digest::KeyHash;
//! use accordant_sync::tree::{NodeId, BITS_PER_LEVEL};
//! let key = KeyHash(0xabcd_0000_0000_0000);
//! let node = NodeId::containing(key, 2);
//! assert_eq!(node.index(), 0xab);
//! assert_eq!(node.parent(), Some(NodeId::containing(key, 1)));
//! assert_eq!(*node.key_range().start(), 0xab << (64 - 2 * BITS_PER_LEVEL));
//! assert!(NodeId::ROOT.covers(&node) && node.contains(key));
//! ```

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Deserializer, Serialize};

use super::{BITS_PER_LEVEL, FANOUT, MAX_LEVEL};
use crate::digest::KeyHash;

/// The index, at `level`, of the node that covers `key`.
pub(super) fn index_at(key: u64, level: u8) -> u64 {
    // `level == 0` would shift by 64: every key is under the root, index 0.
    key.checked_shr(64 - BITS_PER_LEVEL * u32::from(level))
        .unwrap_or(0)
}

/// `16^level` as a `u64`; `level <= 15`.
pub(super) fn nodes_at(level: u8) -> u64 {
    1u64 << (BITS_PER_LEVEL * u32::from(level))
}

/// A node of the implicit radix tree: the key hashes whose top
/// `4 * level` bits equal `index`.
///
/// The fields are private so that every `NodeId` is valid (`level <= 16`,
/// `index < 16^level`); decoding checks the same, so a node id from a peer
/// can be used without further validation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NodeId {
    pub(super) level: u8,
    pub(super) index: u64,
}

impl NodeId {
    /// The root: level 0, covering the whole key space.
    pub const ROOT: Self = Self { level: 0, index: 0 };

    /// The node `(level, index)`, or `None` unless `level <= 16` and
    /// `index < 16^level`.
    #[must_use]
    pub fn new(level: u8, index: u64) -> Option<Self> {
        let valid = level == MAX_LEVEL || (level < MAX_LEVEL && index < nodes_at(level));
        valid.then_some(Self { level, index })
    }

    /// The node at `level` that covers `key`.
    ///
    /// # Panics
    ///
    /// If `level > 16`.
    #[must_use]
    pub fn containing(key: KeyHash, level: u8) -> Self {
        assert!(
            level <= MAX_LEVEL,
            "level {level} is deeper than {MAX_LEVEL}"
        );
        Self {
            level,
            index: index_at(key.0, level),
        }
    }

    /// The level: 0 for the root.
    #[must_use]
    pub const fn level(&self) -> u8 {
        self.level
    }

    /// The index within the level: the top `4 * level` bits of the key
    /// hashes it covers.
    #[must_use]
    pub const fn index(&self) -> u64 {
        self.index
    }

    /// The key hashes under this node.
    #[must_use]
    pub fn key_range(&self) -> RangeInclusive<u64> {
        let low_bits = 64 - BITS_PER_LEVEL * u32::from(self.level);
        // Level 0 shifts by 64: the root starts at 0 and covers every bit.
        let start = self.index.checked_shl(low_bits).unwrap_or(0);
        let low_mask = u64::MAX.checked_shr(64 - low_bits).unwrap_or(0);
        start..=start | low_mask
    }

    /// Whether `key` is under this node.
    #[must_use]
    pub fn contains(&self, key: KeyHash) -> bool {
        index_at(key.0, self.level) == self.index
    }

    /// Whether `other` is this node or a descendant of it.
    #[must_use]
    pub fn covers(&self, other: &Self) -> bool {
        other.level >= self.level
            && other
                .index
                .checked_shr(BITS_PER_LEVEL * u32::from(other.level - self.level))
                .unwrap_or(0)
                == self.index
    }

    /// The parent, or `None` for the root.
    #[must_use]
    pub fn parent(&self) -> Option<Self> {
        self.ancestor_at(self.level.checked_sub(1)?)
    }

    /// The ancestor at `level` (the node itself at its own level), or `None`
    /// if `level` is deeper than this node.
    #[must_use]
    pub fn ancestor_at(&self, level: u8) -> Option<Self> {
        let up = self.level.checked_sub(level)?;
        Some(Self {
            level,
            // Up 16 levels (to the root) would shift by 64.
            index: self
                .index
                .checked_shr(BITS_PER_LEVEL * u32::from(up))
                .unwrap_or(0),
        })
    }

    /// The `i`-th child (`i < 16`), in key order, or `None` if `i >= 16`
    /// or this node is at level 16.
    #[must_use]
    pub fn child(&self, i: u8) -> Option<Self> {
        (usize::from(i) < FANOUT && self.level < MAX_LEVEL).then(|| Self {
            level: self.level + 1,
            index: (self.index << BITS_PER_LEVEL) | u64::from(i),
        })
    }

    /// Whether this node is a leaf of a tree of depth `depth` (or below
    /// one: a tree of that depth stores no aggregate for it).
    #[must_use]
    pub const fn is_leaf(&self, depth: u8) -> bool {
        self.level >= depth
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.level == 0 {
            f.write_str("NodeId(root)")
        } else {
            let digits = usize::from(self.level);
            write!(f, "NodeId({}:{:0digits$x})", self.level, self.index)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "NodeId")]
        struct Raw {
            level: u8,
            index: u64,
        }
        let raw = Raw::deserialize(deserializer)?;
        Self::new(raw.level, raw.index).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "invalid node id: level {} index {}",
                raw.level, raw.index
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_validated() {
        assert_eq!(NodeId::new(0, 0), Some(NodeId::ROOT));
        assert_eq!(NodeId::new(0, 1), None);
        assert!(NodeId::new(1, 15).is_some());
        assert_eq!(NodeId::new(1, 16), None);
        assert!(NodeId::new(15, (1 << 60) - 1).is_some());
        assert_eq!(NodeId::new(15, 1 << 60), None);
        assert!(NodeId::new(16, u64::MAX).is_some());
        assert_eq!(NodeId::new(17, 0), None);
        assert_eq!(NodeId::ROOT.parent(), None);
        assert_eq!(NodeId::ROOT.child(16), None);
        assert_eq!(NodeId::new(16, 7).unwrap().child(0), None);
        assert_eq!(
            NodeId::new(2, 0xab).unwrap().key_range(),
            0xab << 56..=(0xab << 56) | ((1 << 56) - 1)
        );
        assert_eq!(
            format!("{:?}", NodeId::new(2, 0xa).unwrap()),
            "NodeId(2:0a)"
        );
        assert_eq!(format!("{:?}", NodeId::ROOT), "NodeId(root)");
    }

    #[test]
    fn node_ids_from_the_wire_are_validated() {
        #[derive(Serialize)]
        struct Raw {
            level: u8,
            index: u64,
        }
        let id = NodeId::new(3, 0xfff).unwrap();
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(
            bytes,
            postcard::to_allocvec(&Raw {
                level: 3,
                index: 0xfff
            })
            .unwrap()
        );
        assert_eq!(postcard::from_bytes::<NodeId>(&bytes).unwrap(), id);
        for (level, index) in [(3, 0x1000), (17, 0), (255, u64::MAX), (0, 1)] {
            let bytes = postcard::to_allocvec(&Raw { level, index }).unwrap();
            assert!(
                postcard::from_bytes::<NodeId>(&bytes).is_err(),
                "{level} {index}"
            );
        }
    }
}
