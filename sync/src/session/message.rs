//! The wire format of the anti-entropy session, protocol version 3.
//!
//! A message is one version byte ([`VERSION`]) followed by the postcard
//! encoding of a [`Message`] ([`wire::encode_versioned`]); on a byte stream
//! each message is preceded by its length ([`wire::frame`]). Decoding
//! ([`decode`]) goes through [`wire::decode_versioned`]: the length is
//! checked against [`SyncLimits::max_message_bytes`] before anything is
//! read, sequences never preallocate from a claimed length, byte strings
//! are taken only once their length is known to be there, and trailing
//! bytes are an error. Keys, values, summaries and coded symbols travel as
//! byte strings and are decoded (keys and values with
//! [`SyncLimits::value`]) before anything of the message is applied, so a
//! message is accepted or rejected whole. A peer speaking version 2 gets
//! [`SyncError::Version`]`(2)` on its first message.
//!
//! The messages, in the order a session uses them ([`crate::session`]
//! explains the protocol):
//!
//! | message | from | carries |
//! |---|---|---|
//! | [`Hello`] | initiator | root digest, key count, difference estimator (61 bytes at 10^6 keys) |
//! | [`Message::InSync`] | responder | its root: the roots are equal, the session is over |
//! | [`Symbols`] | responder | coded symbols of its items (11 bytes each), and their count and sum |
//! | [`Items`] | responder | the ids of all its items (8 bytes each), when cheaper than symbols |
//! | [`More`] | initiator | the symbols did not peel: more of them, or the item list |
//! | [`Offer`] | initiator | values the responder lacks, full values or summaries of keys both hold, keys wanted |
//! | [`Answer`] | responder | values wanted, and one answer per full value and per summary, in order |
//! | [`Close`] | initiator | one delta per answer that asked for one, in order |
//!
//! `Symbols`, `Items`, `Offer`, `Answer` and `Close` are *turns* that may
//! span several messages (chunks, `more` set on all but the last) to stay
//! under the message limit; the last message of a session carries a
//! [`Finish`].

use accordant::codec::{Limits, SeqVec};
use serde::{Deserialize, Serialize};

use crate::error::SyncError;
use crate::sketch::ESTIMATOR_BYTES;
use crate::wire;

/// The protocol version this crate speaks.
pub const VERSION: u8 = 3;

/// Bounds on what a peer may send, and on what a session holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncLimits {
    /// Largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Limits for each key, value or summary inside a message.
    pub value: Limits,
    /// Turns (logical messages, however many chunks) received in one
    /// session before it gives up. An honest session receives at most 5.
    pub max_turns: u32,
    /// Messages (chunks of turns) received in one session before it gives
    /// up.
    pub max_messages: u32,
    /// Coded symbols a session sends or accepts in all (each takes 16
    /// bytes of memory on both sides); beyond, the responder sends its item
    /// list instead.
    pub max_symbols: u64,
    /// Item ids accepted in a responder's item list (8 bytes of memory
    /// each).
    pub max_list_items: u64,
}

impl Default for SyncLimits {
    fn default() -> Self {
        SyncLimits {
            max_message_bytes: 16 << 20,
            value: Limits::new(16 << 20),
            max_turns: 16,
            max_messages: 1 << 16,
            max_symbols: 1 << 22,
            max_list_items: 1 << 25,
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

/// A byte string, serialised as one (postcard: its length, then the bytes
/// in one copy; decoding borrows the length from the input and never
/// allocates beyond it). The same type as [`accordant::Bytes`].
pub use accordant::Bytes;

/// A full 32-byte root digest.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Root(pub [u8; 32]);

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Opens a session.
    Hello(Hello),
    /// The responder's root equals the initiator's: the session is over.
    InSync(Root),
    /// Coded symbols of the responder's items.
    Symbols(Symbols),
    /// The ids of all the responder's items.
    Items(Items),
    /// The initiator could not peel the symbols: send more.
    More(More),
    /// Values, full values, summaries and keys wanted.
    Offer(Offer),
    /// Values wanted and the answers to an offer.
    Answer(Answer),
    /// The deltas the answers asked for.
    Close(Close),
}

/// The opening message: everything the responder needs to size its coded
/// symbols, in under 64 bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The initiator's full root digest.
    pub root: Root,
    /// The initiator's number of keys.
    pub count: u64,
    /// The initiator's difference estimator ([`crate::sketch::Estimator`]).
    pub estimator: [u8; ESTIMATOR_BYTES],
}

/// The count and the low [`crate::sketch::FP_BITS`] bits of the sum of
/// the item hashes of the items the sender coded: with the difference
/// peeled, the receiver checks that both sides agree on everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Coded {
    /// Items coded.
    pub count: u64,
    /// Their item hashes' sum, modulo `2^FP_BITS`.
    pub sum: u64,
}

/// Coded symbols `first..first + n` of the sender's items, `n` =
/// `symbols.len() / SYMBOL_BYTES` ([`crate::sketch::Symbol`]'s wire form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symbols {
    /// Index of the first symbol.
    pub first: u64,
    /// Symbols the sender keeps for extensions, from 0: a [`More`] may ask
    /// for any up to this.
    pub reserve: u64,
    /// What the sender coded.
    pub coded: Coded,
    /// The symbols.
    pub symbols: Bytes,
    /// More symbols of this batch follow.
    pub more: bool,
}

/// The ids ([`crate::sketch::ItemId`]) of the sender's items, 8 bytes each,
/// big-endian, in non-decreasing order across the chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Items {
    /// What the list holds.
    pub coded: Coded,
    /// The ids.
    pub ids: Bytes,
    /// More ids follow.
    pub more: bool,
}

/// What the initiator asks for when the symbols did not peel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum More {
    /// The symbols from the last one received up to (not including) this
    /// index, at most the sender's reserve.
    Symbols(u64),
    /// The whole item list.
    Items,
}

/// A key and a state (a value or a delta), both in canonical encodings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key's canonical bytes.
    pub key: Bytes,
    /// The state's canonical encoding.
    pub value: Bytes,
}

/// A key and the summary of the sender's value under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySummary {
    /// The key's canonical bytes.
    pub key: Bytes,
    /// The summary's canonical encoding.
    pub summary: Bytes,
}

/// The answer to one summary of an [`Offer`].
///
/// `delta` is what the summary's sender lacks (empty when nothing). With a
/// `summary`, the receiver answers `delta_for(summary)`; without one, it
/// answers the minimal delta `Δ(its value, delta)`, taking `delta` as the
/// answerer's whole value: exact when it is, and the receiver's whole value
/// when `delta` is empty (the answerer judged its own summary not worth
/// sending: an LWW stamp is as large as a small register's difference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// What the offer's sender lacks; empty for nothing.
    pub delta: Bytes,
    /// The answerer's summary, when the delta back should be computed
    /// from it.
    pub summary: Option<Bytes>,
}

/// The last message of a session carries the sender's root as it ends the
/// session, and whether it saw writes other than the session's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finish {
    /// The sender's full root digest, after everything it applied.
    pub root: Root,
    /// No write other than the session's changed the sender's store
    /// between its messages: if the receiver saw none either, the roots
    /// must be equal.
    pub quiet: bool,
}

/// The initiator's turn once it knows the difference.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Offer {
    /// Values of keys the responder lacks: join them.
    pub joins: SeqVec<KeyValue>,
    /// Full values of keys both hold: join, and answer in
    /// [`Answer::deltas`] with `Δ(your value, this value)`, in order.
    pub fulls: SeqVec<KeyValue>,
    /// Summaries of keys both hold: answer in [`Answer::replies`], in order.
    pub summaries: SeqVec<KeySummary>,
    /// Ids of items the initiator lacks, 8 bytes each: send their keys'
    /// values.
    pub wants: Bytes,
    /// Set on the last chunk when nothing is asked back.
    pub finish: Option<Finish>,
    /// More chunks follow.
    pub more: bool,
}

/// The responder's turn: what the offer asked for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Answer {
    /// Values of keys the initiator lacks.
    pub joins: SeqVec<KeyValue>,
    /// One delta per full value offered, in order (empty for nothing).
    pub deltas: SeqVec<Bytes>,
    /// One reply per summary offered, in order.
    pub replies: SeqVec<Reply>,
    /// Set on the last chunk when no reply asks for a delta back.
    pub finish: Option<Finish>,
    /// More chunks follow.
    pub more: bool,
}

/// The initiator's last turn: one delta per reply, in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Close {
    /// One delta per reply (empty for nothing).
    pub deltas: SeqVec<Bytes>,
    /// Set on the last chunk.
    pub finish: Option<Finish>,
    /// More chunks follow.
    pub more: bool,
}

impl Message {
    /// Whether more chunks of the same turn follow this message.
    pub fn more(&self) -> bool {
        match self {
            Message::Symbols(s) => s.more,
            Message::Items(i) => i.more,
            Message::Offer(o) => o.more,
            Message::Answer(a) => a.more,
            Message::Close(c) => c.more,
            Message::Hello(_) | Message::InSync(_) | Message::More(_) => false,
        }
    }

    /// The message's name, for errors and statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "Hello",
            Message::InSync(_) => "InSync",
            Message::Symbols(_) => "Symbols",
            Message::Items(_) => "Items",
            Message::More(_) => "More",
            Message::Offer(_) => "Offer",
            Message::Answer(_) => "Answer",
            Message::Close(_) => "Close",
        }
    }
}

/// Encodes a message: the version byte, then postcard.
pub fn encode(msg: &Message) -> Vec<u8> {
    wire::encode_versioned(VERSION, msg)
}

/// The encoded size of a message part (without the version byte).
pub(crate) fn size_of<T: Serialize>(x: &T) -> usize {
    postcard::experimental::serialized_size(x).unwrap_or(usize::MAX)
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

    fn hello() -> Message {
        Message::Hello(Hello {
            root: Root([7; 32]),
            count: 1_000_000,
            estimator: [0xab; ESTIMATOR_BYTES],
        })
    }

    #[test]
    fn hello_and_in_sync_stay_under_64_bytes() {
        let b = encode(&hello());
        assert_eq!(b.len(), 61);
        assert_eq!(decode(&b, &SyncLimits::default()).unwrap(), hello());
        let big = Message::Hello(Hello {
            root: Root([7; 32]),
            count: 1 << 27,
            estimator: [0; ESTIMATOR_BYTES],
        });
        assert!(encode(&big).len() < 64);
        assert_eq!(encode(&Message::InSync(Root([1; 32]))).len(), 34);
    }

    #[test]
    fn round_trip_trailing_bytes_and_versions() {
        let b = encode(&hello());
        let mut longer = b.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer, &SyncLimits::default()),
            Err(SyncError::Malformed(_))
        ));
        for v in [2u8, 4, 99] {
            let mut wrong = b.clone();
            wrong[0] = v;
            assert_eq!(
                decode(&wrong, &SyncLimits::default()),
                Err(SyncError::Version(v))
            );
        }
    }

    #[test]
    fn a_version_2_hello_is_refused_by_its_version() {
        // Version 2's Hello: tag 0, pass, 32-byte root, count.
        let mut v2 = vec![2u8, 0, 0];
        v2.extend_from_slice(&[9; 32]);
        v2.push(5);
        assert_eq!(
            decode(&v2, &SyncLimits::default()),
            Err(SyncError::Version(2))
        );
    }

    #[test]
    fn huge_claimed_lengths_fail_fast() {
        // An Offer whose first list claims 2^60 entries, in a few bytes.
        let bytes = [
            VERSION, 5, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10,
        ];
        assert!(decode(&bytes, &SyncLimits::default()).is_err());
        // Symbols claiming 2^60 bytes of symbols.
        let bytes = [
            VERSION, 2, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10,
        ];
        assert!(decode(&bytes, &SyncLimits::default()).is_err());
    }

    #[test]
    fn every_turn_round_trips() {
        let kv = KeyValue {
            key: Bytes::from(vec![1]),
            value: Bytes::from(vec![2, 3]),
        };
        let finish = Some(Finish {
            root: Root([3; 32]),
            quiet: true,
        });
        let msgs = [
            Message::Symbols(Symbols {
                first: 8,
                reserve: 64,
                coded: Coded { count: 5, sum: 77 },
                symbols: Bytes::from(vec![0; 22]),
                more: true,
            }),
            Message::Items(Items {
                coded: Coded::default(),
                ids: Bytes::from(vec![1; 16]),
                more: false,
            }),
            Message::More(More::Symbols(128)),
            Message::More(More::Items),
            Message::Offer(Offer {
                joins: SeqVec(vec![kv.clone()]),
                fulls: SeqVec(vec![kv.clone()]),
                summaries: SeqVec(vec![KeySummary {
                    key: Bytes::from(vec![4]),
                    summary: Bytes::from(vec![5]),
                }]),
                wants: Bytes::from(vec![0; 8]),
                finish,
                more: false,
            }),
            Message::Answer(Answer {
                joins: SeqVec(vec![kv]),
                deltas: SeqVec(vec![Bytes::from(vec![]), Bytes::from(vec![9])]),
                replies: SeqVec(vec![Reply {
                    delta: Bytes::from(vec![1]),
                    summary: None,
                }]),
                finish: None,
                more: true,
            }),
            Message::Close(Close {
                deltas: SeqVec(vec![Bytes::from(vec![6])]),
                finish,
                more: false,
            }),
        ];
        for m in msgs {
            let b = encode(&m);
            assert_eq!(
                decode(&b, &SyncLimits::default()).unwrap(),
                m,
                "{}",
                m.name()
            );
        }
    }
}
