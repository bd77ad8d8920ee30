//! The host's envelope: the few bytes in front of every session message
//! that say which session it belongs to and where it falls in it.
//!
//! ```text
//! head     : u8      high nibble: envelope version (1); low nibble: kind
//!                    1 = to the responder (sent by the session's initiator)
//!                    2 = to the initiator (sent by the responder)
//!                    3 = abort, sent by the initiator
//!                    4 = abort, sent by the responder
//! sid      : varint  the initiator's session number; with the kind's
//!                    direction it names the session uniquely in the pair
//! seq      : varint  (u32) index of the message in its direction, from 0
//! tiebreak : u32 le  only in a session's first message (kind 1, seq 0)
//! payload  : rest    the session message, unchanged (empty in an abort)
//! ```
//!
//! Read through the crate's bounded [`Reader`]: canonical varints, nothing
//! allocated, an unknown version or kind is an error.

use crate::error::SyncError;
use crate::wire::{put_varint, Reader};

/// The envelope format's version (the high nibble of the first byte).
pub(crate) const ENVELOPE_VERSION: u8 = 1;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message from the initiator to the responder.
    ToResponder,
    /// A message from the responder to the initiator.
    ToInitiator,
    /// The initiator dropped the session.
    AbortByInitiator,
    /// The responder dropped (or refused) the session.
    AbortByResponder,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::ToResponder => 1,
            Kind::ToInitiator => 2,
            Kind::AbortByInitiator => 3,
            Kind::AbortByResponder => 4,
        }
    }

    fn from_code(c: u8) -> Option<Kind> {
        Some(match c {
            1 => Kind::ToResponder,
            2 => Kind::ToInitiator,
            3 => Kind::AbortByInitiator,
            4 => Kind::AbortByResponder,
            _ => return None,
        })
    }

    /// The kind of a message sent by a side in this role.
    pub(crate) fn message_from(initiator: bool) -> Kind {
        if initiator {
            Kind::ToResponder
        } else {
            Kind::ToInitiator
        }
    }

    /// The kind of an abort sent by a side in this role.
    pub(crate) fn abort_from(initiator: bool) -> Kind {
        if initiator {
            Kind::AbortByInitiator
        } else {
            Kind::AbortByResponder
        }
    }
}

/// A parsed envelope; the payload borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) kind: Kind,
    pub(crate) sid: u64,
    pub(crate) seq: u32,
    /// Present exactly in a session's first message.
    pub(crate) tiebreak: Option<u32>,
    pub(crate) payload: &'a [u8],
}

impl Envelope<'_> {
    /// Whether this opens a session.
    pub(crate) fn is_open(&self) -> bool {
        self.kind == Kind::ToResponder && self.seq == 0
    }
}

/// Encodes an envelope around `payload`.
pub(crate) fn encode(kind: Kind, sid: u64, seq: u32, tiebreak: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.push(ENVELOPE_VERSION << 4 | kind.code());
    put_varint(&mut out, sid);
    put_varint(&mut out, u64::from(seq));
    if kind == Kind::ToResponder && seq == 0 {
        out.extend_from_slice(&tiebreak.to_le_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Parses an envelope from untrusted bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope<'_>, SyncError> {
    let mut r = Reader::new(bytes);
    let head = r.u8()?;
    if head >> 4 != ENVELOPE_VERSION {
        return Err(SyncError::Version(head >> 4));
    }
    let kind = Kind::from_code(head & 0x0f).ok_or(SyncError::Malformed("unknown envelope kind"))?;
    let sid = r.varint()?;
    let seq = r.varint_u32()?;
    let tiebreak = if kind == Kind::ToResponder && seq == 0 {
        Some(r.u32_le()?)
    } else {
        None
    };
    let payload = r.rest();
    if matches!(kind, Kind::AbortByInitiator | Kind::AbortByResponder) && !payload.is_empty() {
        return Err(SyncError::Malformed("an abort carries no payload"));
    }
    Ok(Envelope {
        kind,
        sid,
        seq,
        tiebreak,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        for (kind, sid, seq) in [
            (Kind::ToResponder, 1, 0),
            (Kind::ToResponder, 7, 3),
            (Kind::ToInitiator, u64::MAX, u32::MAX),
            (Kind::AbortByInitiator, 300, 2),
            (Kind::AbortByResponder, 0, 0),
        ] {
            let payload: &[u8] = if matches!(kind, Kind::ToResponder | Kind::ToInitiator) {
                b"xyz"
            } else {
                b""
            };
            let bytes = encode(kind, sid, seq, 0xdead_beef, payload);
            let e = decode(&bytes).unwrap();
            assert_eq!((e.kind, e.sid, e.seq, e.payload), (kind, sid, seq, payload));
            assert_eq!(e.tiebreak.is_some(), e.is_open());
            if e.is_open() {
                assert_eq!(e.tiebreak, Some(0xdead_beef));
            }
        }
    }

    #[test]
    fn malformed_envelopes_are_typed_errors() {
        assert!(decode(&[]).is_err());
        assert_eq!(decode(&[0x21, 1, 1]), Err(SyncError::Version(2)));
        assert!(matches!(
            decode(&[0x15, 1, 1]),
            Err(SyncError::Malformed(_))
        ));
        assert!(decode(&[0x11, 0x80]).is_err(), "truncated sid");
        assert!(decode(&[0x11, 1, 0, 1, 2]).is_err(), "truncated tiebreak");
        assert!(
            decode(&[0x12, 1, 0x80, 0x80, 0x80, 0x80, 0x10]).is_err(),
            "seq > u32"
        );
        assert!(decode(&[0x13, 1, 0, 9]).is_err(), "abort with a payload");
        assert!(decode(&[0x12, 0x81, 0x00, 0]).is_err(), "overlong sid");
    }
}
