//! Peers: the nodes of a cluster, by id.
//!
//! A [`PeerId`] names a node among those that replicate with each other.
//! Transports learn it when a connection is established (the TCP node from
//! the peer's handshake); the delta path and the session host key their
//! per-peer state by it.
//!
//! ```
//! use accordant_sync::peer::PeerId;
//! assert_eq!(PeerId(7).to_string(), "node 7");
//! ```

/// A node id, as a peer of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

impl core::fmt::Display for PeerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "node {}", self.0)
    }
}
