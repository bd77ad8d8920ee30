//! The replicator's wire format: a version byte, a kind byte, a fixed
//! header per kind, then (for deltas, states and sessions) the payload.
//!
//! ```text
//! delta   : 1 | 1 | from_inc u32le | start varint | end varint | flags u8
//!           | [base_inc u32le | base varint]   (flags bit 0)
//!           | delta-group: canonical encoding  (flags bit 1: the whole state)
//! ack     : 1 | 2 | from_inc u32le | to_inc u32le | have varint
//! state   : 1 | 3 | from_inc u32le | state: canonical encoding
//! session : 1 | 4 | from_inc u32le | to_inc u32le
//!           | the session host's envelope (crate::host) around a session message
//! ```
//!
//! Varints are LEB128, at most ten bytes, and must be minimal (an overlong
//! varint is malformed, so accepted bytes re-encode to themselves); the
//! header is read with the crate's one bounded [`Reader`] and parsed whole
//! before anything is decoded or applied.

use crate::error::SyncError;
use crate::wire::{put_varint, Reader};

/// The version byte every message starts with.
pub(super) const VERSION: u8 = 1;

const KIND_DELTA: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_STATE: u8 = 3;
const KIND_SESSION: u8 = 4;

const FLAG_BASE: u8 = 1;
const FLAG_FULL: u8 = 2;

/// A parsed message; payloads borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Msg<'a> {
    /// A delta-interval `[start, end)` of the sender's buffer, joined.
    Delta {
        from_inc: u32,
        start: u64,
        end: u64,
        /// `(receiver's incarnation, seq)`: the receiver is known (by an
        /// anti-entropy session) to hold every entry of the sender below
        /// `seq`.
        base: Option<(u32, u64)>,
        /// The payload is the sender's whole state (a state transfer).
        full: bool,
        payload: &'a [u8],
    },
    /// "I hold every entry of yours below `have`."
    Ack {
        from_inc: u32,
        to_inc: u32,
        have: u64,
    },
    /// The sender's whole state (state-based sync; no ack).
    State { from_inc: u32, payload: &'a [u8] },
    /// A message of a fall-back anti-entropy session, in the session
    /// host's envelope.
    Session {
        from_inc: u32,
        to_inc: u32,
        envelope: &'a [u8],
    },
}

/// The encoded header of a message; the payload is appended by the caller.
fn header(kind: u8, from_inc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&from_inc.to_le_bytes());
    out
}

/// A delta message: header, then `payload` (a canonical encoding).
pub(super) fn delta(
    from_inc: u32,
    start: u64,
    end: u64,
    base: Option<(u32, u64)>,
    full: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = header(KIND_DELTA, from_inc);
    put_varint(&mut out, start);
    put_varint(&mut out, end);
    let flags = if base.is_some() { FLAG_BASE } else { 0 } | if full { FLAG_FULL } else { 0 };
    out.push(flags);
    if let Some((inc, seq)) = base {
        out.extend_from_slice(&inc.to_le_bytes());
        put_varint(&mut out, seq);
    }
    out.extend_from_slice(payload);
    out
}

/// An ack message.
pub(super) fn ack(from_inc: u32, to_inc: u32, have: u64) -> Vec<u8> {
    let mut out = header(KIND_ACK, from_inc);
    out.extend_from_slice(&to_inc.to_le_bytes());
    put_varint(&mut out, have);
    out
}

/// A state message.
pub(super) fn state(from_inc: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = header(KIND_STATE, from_inc);
    out.extend_from_slice(payload);
    out
}

/// A session message: the host's envelope, addressed by incarnations.
pub(super) fn session(from_inc: u32, to_inc: u32, envelope: &[u8]) -> Vec<u8> {
    let mut out = header(KIND_SESSION, from_inc);
    out.extend_from_slice(&to_inc.to_le_bytes());
    out.extend_from_slice(envelope);
    out
}

/// Parses a message's header; the payload is left undecoded.
pub(super) fn decode(bytes: &[u8]) -> Result<Msg<'_>, SyncError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != VERSION {
        return Err(SyncError::Version(version));
    }
    let kind = r.u8()?;
    let from_inc = r.u32_le()?;
    match kind {
        KIND_DELTA => {
            let start = r.varint()?;
            let end = r.varint()?;
            if end < start {
                return Err(SyncError::Malformed("delta-interval ends before it starts"));
            }
            let flags = r.u8()?;
            if flags & !(FLAG_BASE | FLAG_FULL) != 0 {
                return Err(SyncError::Malformed("unknown delta flags"));
            }
            let full = flags & FLAG_FULL != 0;
            if full && start != 0 {
                return Err(SyncError::Malformed("a state transfer must start at 0"));
            }
            let base = if flags & FLAG_BASE != 0 {
                Some((r.u32_le()?, r.varint()?))
            } else {
                None
            };
            Ok(Msg::Delta {
                from_inc,
                start,
                end,
                base,
                full,
                payload: r.rest(),
            })
        }
        KIND_ACK => {
            let to_inc = r.u32_le()?;
            let have = r.varint()?;
            r.finish()?;
            Ok(Msg::Ack {
                from_inc,
                to_inc,
                have,
            })
        }
        KIND_STATE => Ok(Msg::State {
            from_inc,
            payload: r.rest(),
        }),
        KIND_SESSION => {
            let to_inc = r.u32_le()?;
            Ok(Msg::Session {
                from_inc,
                to_inc,
                envelope: r.rest(),
            })
        }
        _ => Err(SyncError::Malformed("unknown message kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let d = delta(7, 3, 9, Some((5, 2)), false, b"xyz");
        assert_eq!(
            decode(&d),
            Ok(Msg::Delta {
                from_inc: 7,
                start: 3,
                end: 9,
                base: Some((5, 2)),
                full: false,
                payload: b"xyz"
            })
        );
        let a = ack(1, 2, 300);
        assert_eq!(
            decode(&a),
            Ok(Msg::Ack {
                from_inc: 1,
                to_inc: 2,
                have: 300
            })
        );
        assert_eq!(a.len(), 1 + 1 + 4 + 4 + 2);
        let s = state(4, b"st");
        assert_eq!(
            decode(&s),
            Ok(Msg::State {
                from_inc: 4,
                payload: b"st"
            })
        );
        let x = session(1, 0, b"envelope");
        assert_eq!(
            decode(&x),
            Ok(Msg::Session {
                from_inc: 1,
                to_inc: 0,
                envelope: b"envelope"
            })
        );
    }

    #[test]
    fn malformed_headers_are_rejected() {
        assert_eq!(decode(&[]), Err(SyncError::Malformed("truncated")));
        assert_eq!(decode(&[2, 1, 0, 0, 0, 0]), Err(SyncError::Version(2)));
        assert!(decode(&[VERSION, 9, 0, 0, 0, 0]).is_err());
        // Overlong varint for `start`.
        assert_eq!(
            decode(&[VERSION, KIND_DELTA, 0, 0, 0, 0, 0x80, 0x00, 0, 0]),
            Err(SyncError::Malformed("overlong varint"))
        );
        // end < start.
        assert!(decode(&[VERSION, KIND_DELTA, 0, 0, 0, 0, 5, 4, 0]).is_err());
        // Unknown flags, and a full state that does not start at 0.
        assert!(decode(&[VERSION, KIND_DELTA, 0, 0, 0, 0, 0, 4, 0x80]).is_err());
        assert!(decode(&delta(0, 1, 4, None, true, b"")).is_err());
        // Trailing bytes after an ack.
        let mut a = ack(1, 2, 3);
        a.push(0);
        assert!(decode(&a).is_err());
        // An eleven-byte varint.
        let mut long = vec![VERSION, KIND_ACK, 0, 0, 0, 0, 0, 0, 0, 0];
        long.extend([0xff; 10]);
        long.push(1);
        assert!(decode(&long).is_err());
        // u64::MAX itself is fine.
        assert!(decode(&ack(0, 0, u64::MAX)).is_ok());
    }
}
