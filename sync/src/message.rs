//! The wire format of the anti-entropy session.
//!
//! A message is one version byte ([`VERSION`]) followed by the postcard
//! encoding of a [`Message`]. On a byte stream each message is preceded by
//! its length as a varint ([`wire::frame`], [`wire::FrameReader`]); the
//! simulator carries messages whole. Decoding is bounded the way `accordant::codec` is:
//! the length is checked against [`SyncLimits::max_message_bytes`] before
//! anything is allocated, sequences never preallocate from a claimed length,
//! byte strings are taken from the input only once their length is known to
//! be there, and trailing bytes are an error. Keys, values and summaries
//! travel as byte strings in their canonical encodings and are decoded (with
//! the same limits) before anything of the message is applied, so a message
//! is accepted or rejected whole.
//!
//! Fingerprints are truncated to 2 to 4 bytes on the wire (IBLT items to
//! 24 bits of item hash): a collision can only make the session believe two
//! ranges agree when they do not, and the session always ends by comparing
//! the full 32-byte root digests, so a collision costs one more pass, never
//! a silent divergence.

use core::fmt;

use accordant::codec::{Limits, SeqVec};
use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::SyncError;
use crate::tree::NodeId;
use crate::wire;

/// The protocol version this crate speaks.
pub const VERSION: u8 = 2;

/// Bounds on what a peer may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncLimits {
    /// Largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Limits for each key, value or summary inside a message.
    pub value: Limits,
    /// Turns received in one pass before the session gives up.
    pub max_turns: u32,
    /// Messages (chunks of turns) received in one pass before the session
    /// gives up.
    pub max_messages: u32,
    /// Passes (full protocol runs) before the session gives up.
    pub max_passes: u8,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            max_message_bytes: 16 << 20,
            value: Limits::new(16 << 20),
            max_turns: 48,
            max_messages: 1 << 16,
            max_passes: 3,
        }
    }
}

impl SyncLimits {
    /// Returns these limits with `max_message_bytes` replaced.
    pub fn with_max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n;
        self
    }
}

/// A byte string that borrows its length from the input before allocating.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({})", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A 32-byte root digest.
pub type RootBytes = [u8; 32];

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Opens a pass: the sender's root digest and key count.
    Hello {
        /// Pass number, from 0.
        pass: u8,
        /// The sender's full root digest.
        root: RootBytes,
        /// The sender's number of keys.
        count: u64,
    },
    /// Work: fingerprints, key lists, values, summaries, deltas.
    Turn(Turn),
    /// The sender has nothing more to send; its root digest now.
    Done {
        /// The sender's full root digest.
        root: RootBytes,
    },
    /// The sender compared roots and they agree: the pass is over.
    Verified {
        /// The sender's full root digest.
        root: RootBytes,
    },
}

/// The work carried by one turn. Every list may be empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Turn {
    /// The sender's turn number in this pass, from 0 (all chunks of a turn
    /// share it): a replayed or reordered turn is refused, not answered.
    pub seq: u32,
    /// Fingerprints of every descendant of a node at a deeper level.
    pub fps: SeqVec<Fingerprints>,
    /// The sender's items under a node: "here is what I have there".
    pub lists: SeqVec<ItemList>,
    /// The sender's items under a node as an invertible Bloom lookup
    /// table ([`crate::sketch`]): subtract yours and read the difference.
    pub sketches: SeqVec<NodeSketch>,
    /// Keys whose values the sender lacks and asks for: a node and the 32
    /// bits of key hash below the node's prefix, as in [`ItemList`].
    pub want: SeqVec<(NodeId, u32)>,
    /// Keys and states to join (values the receiver lacks, or deltas).
    pub joins: SeqVec<(Bytes, Bytes)>,
    /// Keys and full values to join, answering with the exact delta the
    /// sender lacks (`Δ(receiver, value)`).
    pub fulls: SeqVec<(Bytes, Bytes)>,
    /// Keys and summaries: answer with `delta_for(summary)` and your summary.
    pub summaries: SeqVec<(Bytes, Bytes)>,
    /// Keys, deltas and summaries: join the delta, answer with
    /// `delta_for(summary)`.
    pub replies: SeqVec<(Bytes, Bytes, Bytes)>,
    /// Set when the turn asks for nothing back (joins only): the sender's
    /// root digest, so a receiver that then has nothing to send can verify
    /// at once instead of sending `Done`.
    pub root: Option<RootBytes>,
    /// More chunks of this turn follow: apply, but answer after the last.
    pub more: bool,
}

impl Turn {
    /// Whether the turn asks the receiver for nothing: it only carries
    /// states to join.
    pub fn is_final(&self) -> bool {
        self.fps.0.is_empty()
            && self.lists.0.is_empty()
            && self.sketches.0.is_empty()
            && self.want.0.is_empty()
            && self.fulls.0.is_empty()
            && self.summaries.0.is_empty()
            && self.replies.0.is_empty()
    }

    /// Whether the turn carries no work.
    pub fn is_empty(&self) -> bool {
        self.fps.0.is_empty()
            && self.lists.0.is_empty()
            && self.sketches.0.is_empty()
            && self.want.0.is_empty()
            && self.joins.0.is_empty()
            && self.fulls.0.is_empty()
            && self.summaries.0.is_empty()
            && self.replies.0.is_empty()
    }
}

/// Fingerprints of the descendants of `node` at `level`, 2, 3 or 4 bytes
/// each (the same width throughout; the length tells it), in index order (`16^(level - node.level)` of them); 0 means empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprints {
    /// The node whose descendants these are.
    pub node: NodeId,
    /// The level of the descendants (1 or 2 below `node`).
    pub level: u8,
    /// Concatenated big-endian fingerprints (the top bytes of each node's
    /// 4-byte fingerprint; never 0 for a node that holds items).
    pub fps: Bytes,
}

/// The sender's items under `node`, 8 bytes each, concatenated: the 32 bits
/// of the key hash just below the node's prefix (the prefix itself is known
/// from the node), then a 4-byte item fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemList {
    /// The node.
    pub node: NodeId,
    /// 8 bytes per item.
    pub items: Bytes,
}

/// The sender's items under some descendants of `node` at `level` (the
/// ones set in `children`) as one IBLT ([`crate::sketch::Sketch`]'s wire
/// form, 10 bytes per cell), each item named by the 32 bits of its key hash
/// below `node`'s prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSketch {
    /// The node.
    pub node: NodeId,
    /// The level of the descendants covered (1 or 2 below `node`).
    pub level: u8,
    /// A bitmap of the descendants covered, in index order, least
    /// significant bit first: `16^(level - node.level) / 8` bytes.
    pub children: Bytes,
    /// The cells.
    pub cells: Bytes,
}

/// Bytes per entry of an [`ItemList`].
pub const ITEM_BYTES: usize = 8;

/// Encodes a message: the version byte, then postcard.
pub fn encode(msg: &Message) -> Vec<u8> {
    wire::encode_versioned(VERSION, msg)
}

/// Decodes a message from untrusted bytes (see [`wire::decode_versioned`]).
pub fn decode(bytes: &[u8], limits: &SyncLimits) -> Result<Message, SyncError> {
    wire::decode_versioned(
        bytes,
        VERSION,
        limits.max_message_bytes,
        "undecodable message",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let m = Message::Hello {
            pass: 0,
            root: [7; 32],
            count: 1_000_000,
        };
        let b = encode(&m);
        assert!(b.len() < 40, "{}", b.len());
        assert_eq!(decode(&b, &SyncLimits::default()).unwrap(), m);
        let mut longer = b.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer, &SyncLimits::default()),
            Err(SyncError::Malformed(_))
        ));
        let mut wrong = b;
        wrong[0] = 99;
        assert_eq!(
            decode(&wrong, &SyncLimits::default()),
            Err(SyncError::Version(99))
        );
    }

    #[test]
    fn huge_claimed_lengths_fail_fast() {
        // A Turn whose first list claims 2^60 entries, in a few bytes.
        let bytes = [
            VERSION, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10,
        ];
        assert!(decode(&bytes, &SyncLimits::default()).is_err());
    }
}
