//! The node protocol's frames: what travels on one connection.
//!
//! A connection carries a stream of frames, each framed by
//! [`wire::frame`] (a varint length) and split by [`FrameReader`], whose
//! length check runs before anything is buffered. A frame is one version
//! byte ([`NET_VERSION`]) and the postcard encoding of a [`Frame`]:
//!
//! ```text
//! Handshake { magic "ACNP", node id, name, channel names }   first frame, both ways
//! Session   { channel, envelope }                             anti-entropy: the session host's envelope
//!                                                             (crate::host) around a session message
//! Delta     { channel, payload }                              delta replication (the replicator's bytes)
//! Pull      { channel, payload }                              one key's summary: "send what I lack"
//!                                                             (session tokens, `net::pull`)
//! Value     { channel, payload }                              the answer: the key and a minimal delta
//! Ping                                                        keepalive
//! Bye                                                         graceful close
//! Received  { deltas }                                        delta frames read on this connection so
//!                                                             far (replication lag, crate::net::LagTracker)
//! Probe     { channel, estimator, keys, mean item size }      divergence monitor (crate::net::divergence)
//! ```
//!
//! A *channel* is one store of the node, by its index in the handshake's
//! list; both sides must list the same channels. Session ids, ordering,
//! aborts and timeouts are the session host's, inside its envelope.

use serde::{Deserialize, Serialize};

use accordant::codec::SeqVec;

use super::divergence::DivergenceProbe;
use crate::error::SyncError;
use crate::message::Bytes;
use crate::wire::{self, FrameReader};

/// The node protocol version (independent of the session's
/// [`crate::message::VERSION`], which the session checks in its own messages).
pub const NET_VERSION: u8 = 3;
/// The handshake's magic bytes.
pub const MAGIC: [u8; 4] = *b"ACNP";

/// The first frame each side sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// The sender's node id.
    pub node: u64,
    /// The sender's name, for logs.
    pub name: String,
    /// The sender's channel names, in index order.
    pub channels: SeqVec<String>,
}

/// One frame of the node protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Opens the connection.
    Handshake(Handshake),
    /// A message of an anti-entropy session, or an abort.
    Session {
        /// Channel index.
        channel: u16,
        /// The session host's envelope, as [`crate::host::SessionHost`]
        /// produced it.
        envelope: Bytes,
    },
    /// Delta replication payload, opaque to the connection.
    Delta {
        /// Channel index.
        channel: u16,
        /// What the channel's replicator sent.
        payload: Bytes,
    },
    /// Keepalive.
    Ping,
    /// A request for one key: the length-prefixed key bytes, then the
    /// canonical encoding of the requester's summary of its value.
    Pull {
        /// Channel index.
        channel: u16,
        /// Key and summary.
        payload: Bytes,
    },
    /// The answer to a [`Frame::Pull`]: a delta-path payload (key, then
    /// the minimal delta the requester lacks).
    Value {
        /// Channel index.
        channel: u16,
        /// Key and delta.
        payload: Bytes,
    },
    /// The sender closes the connection on purpose.
    Bye,
    /// The sender has read this many delta frames on this connection so
    /// far (sent when the count moved, at most once per tick).
    Received {
        /// Delta frames read.
        deltas: u64,
    },
    /// The sender's divergence probe of one channel.
    Probe {
        /// Channel index.
        channel: u16,
        /// Its estimator, key count and mean item size.
        probe: DivergenceProbe,
    },
}

impl Frame {
    /// The frame's bytes, length prefix included, ready to write.
    pub fn to_wire(&self) -> Vec<u8> {
        wire::frame(&wire::encode_versioned(NET_VERSION, self))
    }

    /// Decodes one frame's body (without the length prefix).
    pub fn decode(body: &[u8]) -> Result<Frame, SyncError> {
        wire::decode_versioned(body, NET_VERSION, usize::MAX, "undecodable frame")
    }

    /// The next complete frame buffered in `reader`, if any.
    pub fn next(reader: &mut FrameReader, max_len: usize) -> Result<Option<Frame>, SyncError> {
        match reader.next_frame(max_len)? {
            Some(body) => Frame::decode(&body).map(Some),
            None => Ok(None),
        }
    }
}

/// Reads a connection's first frame, the peer's [`Handshake`], as a node
/// does: a frame whose length prefix says more than `max` bytes is refused
/// as soon as the prefix has arrived, before its body is buffered; any
/// other first frame is refused. `Ok(None)`: not complete yet.
pub fn read_handshake(
    reader: &mut FrameReader,
    max: usize,
) -> Result<Option<Handshake>, SyncError> {
    if let Some(len) = reader.pending_len()? {
        if len > max {
            return Err(SyncError::TooLarge { len, limit: max });
        }
    }
    match Frame::next(reader, max)? {
        None => Ok(None),
        Some(Frame::Handshake(h)) => Ok(Some(h)),
        Some(_) => Err(SyncError::Unexpected("the first frame is not a handshake")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SyncLimits;

    #[test]
    fn frames_round_trip_through_a_stream() {
        let frames = vec![
            Frame::Handshake(Handshake {
                magic: MAGIC,
                node: 7,
                name: "EU".into(),
                channels: SeqVec(vec!["carts".into(), "views".into()]),
            }),
            Frame::Session {
                channel: 1,
                envelope: Bytes::from(vec![1, 2, 3]),
            },
            Frame::Delta {
                channel: 0,
                payload: Bytes::from(vec![9; 300]),
            },
            Frame::Ping,
            Frame::Bye,
            Frame::Received { deltas: 1 << 40 },
            Frame::Probe {
                channel: 3,
                probe: DivergenceProbe {
                    estimator: [0x5a; crate::sketch::ESTIMATOR_BYTES],
                    keys: 1_000_000,
                    mean_item_bytes: 120,
                },
            },
        ];
        let stream: Vec<u8> = frames.iter().flat_map(Frame::to_wire).collect();
        let mut r = FrameReader::new();
        let lim = SyncLimits::default().max_message_bytes;
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            r.push(chunk);
            while let Some(f) = Frame::next(&mut r, lim).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(Frame::Ping.to_wire().len(), 3, "a ping is three bytes");
        // The monitor's cost: a probe of a million keys is 33 bytes on the
        // wire, an ack of a billion deltas 8.
        let probe = Frame::Probe {
            channel: 0,
            probe: DivergenceProbe {
                estimator: [0xff; crate::sketch::ESTIMATOR_BYTES],
                keys: 1_000_000,
                mean_item_bytes: 300,
            },
        };
        assert_eq!(probe.to_wire().len(), 33);
        assert_eq!(Frame::Received { deltas: 1 << 30 }.to_wire().len(), 8);
    }

    #[test]
    fn a_handshake_is_refused_from_its_length_prefix() {
        let hs = Frame::Handshake(Handshake {
            magic: MAGIC,
            node: 2,
            name: "b".into(),
            channels: SeqVec(vec!["c".into()]),
        })
        .to_wire();
        let mut r = FrameReader::new();
        r.push(&hs[..3]);
        assert_eq!(read_handshake(&mut r, 4096), Ok(None));
        r.push(&hs[3..]);
        assert!(matches!(read_handshake(&mut r, 4096), Ok(Some(h)) if h.node == 2));
        // A prefix claiming 1 MiB: refused with two bytes of it buffered.
        let mut r = FrameReader::new();
        r.push(&[0x80, 0x80, 0x40]);
        assert_eq!(
            read_handshake(&mut r, 4096),
            Err(SyncError::TooLarge {
                len: 1 << 20,
                limit: 4096
            })
        );
        let mut r = FrameReader::new();
        r.push(&Frame::Ping.to_wire());
        assert!(matches!(
            read_handshake(&mut r, 4096),
            Err(SyncError::Unexpected(_))
        ));
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        assert_eq!(
            Frame::decode(&[]),
            Err(SyncError::Malformed("empty message"))
        );
        assert_eq!(Frame::decode(&[9, 4]), Err(SyncError::Version(9)));
        assert!(Frame::decode(&[NET_VERSION, 200]).is_err());
        let mut b = Frame::Ping.to_wire();
        b.push(0);
        assert!(Frame::decode(&b[1..]).is_err());
    }
}
