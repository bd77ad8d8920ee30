//! Causal session tokens: read-your-writes and monotonic reads across
//! regions.
//!
//! A client that writes in one region and reads in another must not read
//! its old data (the seed article's "write in A, read in B"). A
//! [`SessionToken`] is what the client carries between its requests (an
//! HTTP header, a cookie): for each key it wrote or read, the
//! [`Frontier`] of the value it saw, i.e. a version vector over the
//! replicas that wrote the key, with the removes it saw (see
//! [`frontier`] for what *covers* means per type). A region answers a
//! read only once its value covers the token's entry for that key, and
//! hands back the token with the entry replaced by its own value's
//! frontier; a write first waits for coverage in the same way, so the
//! write follows what the client read. From that one rule come the four
//! session guarantees of Terry et al. (PDIS 1994) per key:
//! read-your-writes, monotonic reads, monotonic writes (a replica's own
//! writes are ordered) and writes-follow-reads.
//!
//! The node's side (waiting, pulling the key from a peer, the typed "not
//! yet visible") is `Channel::read_after` and `Channel::update_after` in
//! the `net` module; the simulator's history checker drives the same
//! frontiers.
//!
//! **Encoding.** Version byte, then the replica ids once (16 bytes each),
//! then per key: the channel, a 16-byte key digest, and its entries
//! (replica index, mark, a count or sorted ranges as varint gaps), and an
//! optional LWW stamp. A token of one key written in one region is about
//! 30 bytes; [`SessionToken::to_text`] is its base64url form (no padding),
//! ready for a header. Decoding is for untrusted input: the byte length is
//! checked before anything is read, every count is bounded
//! ([`SessionToken::MAX_KEYS`], [`MAX_REPLICAS`], [`MAX_ENTRIES`],
//! [`MAX_RANGES`]), every list must be strictly sorted, nothing is
//! allocated from a length the input gives, and every failure is a
//! [`TokenError`].
//!
//! ```
//! use accordant::{OrSet, ReplicaId};
//! use accordant_sync::token::{KeyId, SessionToken, Versioned};
//!
//! let eu = ReplicaId::from_u128(1);
//! let mut cart = OrSet::new();
//! let _ = cart.add(eu, "book").unwrap();
//! let key = KeyId::of(0, &"alice");
//! let mut token = SessionToken::new();
//! token.record(key, cart.frontier()).unwrap();
//! let header = token.to_text();
//! assert!(header.len() < 60, "{header}");
//! let back: SessionToken = header.parse().unwrap();
//! assert_eq!(back, token);
//! // An empty value in another region does not cover it.
//! assert!(!back.lag(key, &OrSet::<&str>::new().frontier()).is_zero());
//! assert!(SessionToken::from_text("not a token!").is_err());
//! ```

pub mod frontier;
pub mod spans;
mod text;

pub use frontier::{Frontier, Lag, Mark, Stamp, Versioned};
pub use spans::Spans;

use std::collections::BTreeMap;

use accordant::ReplicaId;
use serde::Serialize;

use crate::digest::Digest;
use crate::key::key_bytes;
use crate::wire::{put_varint, Reader};

/// The encoding's version byte.
pub const TOKEN_VERSION: u8 = 1;
/// The most replicas one token may name.
pub const MAX_REPLICAS: usize = 64;
/// The most entries (replica, mark) one key may carry.
pub const MAX_ENTRIES: usize = 256;
/// The most ranges one entry may carry.
pub const MAX_RANGES: usize = 64;
/// The mark code of a `Seen` entry whose dots are all `Live` too.
const ALL_LIVE: u8 = 0x80;
/// The longest encoded token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// A key of a node's channel, as a token names it: the channel index and
/// the first 16 bytes of the blake3 digest of the key's canonical bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId {
    /// The channel's index on the node (the same on every node of a
    /// cluster: the handshake checks the channel lists agree).
    pub channel: u16,
    /// The key's digest prefix.
    pub digest: u128,
}

impl KeyId {
    /// The id of `key` in channel `channel`.
    pub fn of<K: Serialize + ?Sized>(channel: u16, key: &K) -> Self {
        KeyId {
            channel,
            digest: Digest::of(&key_bytes(key)).prefix_u128(),
        }
    }
}

/// Why a token was refused or could not be extended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The input is longer than [`MAX_TOKEN_BYTES`].
    #[error("token of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Not base64url.
    #[error("token is not base64url")]
    NotBase64,
    /// An encoding version this code does not know.
    #[error("unsupported token version {0}")]
    Version(u8),
    /// A count above its bound.
    #[error("token has too many {0}")]
    TooMany(&'static str),
    /// Malformed: truncated, unsorted, out of range, trailing bytes.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token already tracks [`SessionToken::MAX_KEYS`] keys and the
    /// operation would add another: start a new token for it (nothing was
    /// done).
    #[error("token already tracks its maximum number of keys")]
    Full,
}

/// What a client has seen, per key (see the [module docs](self)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionToken {
    keys: BTreeMap<KeyId, Frontier>,
}

impl SessionToken {
    /// The most keys a token tracks.
    pub const MAX_KEYS: usize = 16;

    /// A token that has seen nothing (a new session).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether it has seen nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys it tracks.
    pub fn keys(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.keys().copied()
    }

    /// What it saw of `key` (`None`: nothing, every value covers it).
    pub fn frontier(&self, key: KeyId) -> Option<&Frontier> {
        self.keys.get(&key)
    }

    /// Whether recording `key` would fit.
    pub fn has_room_for(&self, key: KeyId) -> bool {
        self.keys.contains_key(&key) || self.keys.len() < Self::MAX_KEYS
    }

    /// Records that the client saw `frontier` for `key` (a value that
    /// covered the previous entry, so it replaces it). [`TokenError::Full`]
    /// if that would track more than [`Self::MAX_KEYS`] keys.
    pub fn record(&mut self, key: KeyId, frontier: Frontier) -> Result<(), TokenError> {
        if !self.has_room_for(key) {
            return Err(TokenError::Full);
        }
        if frontier.is_empty() {
            self.keys.remove(&key);
        } else {
            self.keys.insert(key, frontier);
        }
        Ok(())
    }

    /// How far a value with frontier `local` is behind what the token saw
    /// of `key` (zero: it covers it).
    pub fn lag(&self, key: KeyId, local: &Frontier) -> Lag {
        self.keys
            .get(&key)
            .map_or_else(Lag::default, |f| f.lag(local))
    }

    /// The token's bytes (see the [module docs](self)).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut replicas: Vec<ReplicaId> = Vec::new();
        for f in self.keys.values() {
            replicas.extend(f.entries.keys().map(|(r, _)| *r));
            replicas.extend(f.stamp.map(|s| s.replica));
        }
        replicas.sort_unstable();
        replicas.dedup();
        let index = |r: &ReplicaId| replicas.binary_search(r).unwrap_or(0) as u64;
        let mut out = vec![TOKEN_VERSION];
        put_varint(&mut out, replicas.len() as u64);
        for r in &replicas {
            out.extend_from_slice(r.as_bytes());
        }
        put_varint(&mut out, self.keys.len() as u64);
        for (k, f) in &self.keys {
            put_varint(&mut out, u64::from(k.channel));
            out.extend_from_slice(&k.digest.to_be_bytes());
            // A replica whose seen dots are all alive (nothing of it
            // removed: the common case) is one entry, `ALL_LIVE`.
            let all_live =
                |r: &ReplicaId, spans: &Spans| f.entries.get(&(*r, Mark::Live)) == Some(spans);
            let entries: Vec<_> = f
                .entries
                .iter()
                .filter(|((r, mark), _)| {
                    *mark != Mark::Live
                        || f.entries.get(&(*r, Mark::Seen)) != f.entries.get(&(*r, Mark::Live))
                })
                .collect();
            put_varint(&mut out, entries.len() as u64);
            for ((r, mark), spans) in entries {
                put_varint(&mut out, index(r));
                if *mark == Mark::Seen && all_live(r, spans) {
                    out.push(ALL_LIVE);
                } else {
                    out.push(mark.code());
                }
                if matches!(mark, Mark::Seen | Mark::Live) {
                    put_varint(&mut out, spans.ranges().len() as u64);
                    let mut prev = 0u64;
                    for &(a, b) in spans.ranges() {
                        put_varint(&mut out, a - prev);
                        put_varint(&mut out, b - a);
                        prev = b;
                    }
                } else {
                    put_varint(&mut out, spans.max());
                }
            }
            match f.stamp {
                None => out.push(0),
                Some(s) => {
                    out.push(1);
                    put_varint(&mut out, s.physical_ms);
                    put_varint(&mut out, u64::from(s.logical));
                    put_varint(&mut out, index(&s.replica));
                }
            }
        }
        out
    }

    /// Decodes untrusted bytes (see the [module docs](self)).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let bad = |_| TokenError::Malformed("truncated");
        let version = r.u8().map_err(bad)?;
        if version != TOKEN_VERSION {
            return Err(TokenError::Version(version));
        }
        let n = bounded(&mut r, MAX_REPLICAS, "replicas")?;
        let mut replicas: Vec<ReplicaId> = Vec::new();
        for _ in 0..n {
            let id = ReplicaId::from_bytes(r.array::<16>().map_err(bad)?);
            if replicas.last().is_some_and(|l| *l >= id) {
                return Err(TokenError::Malformed("replicas not sorted"));
            }
            replicas.push(id);
        }
        let replica = |r: &mut Reader<'_>| -> Result<ReplicaId, TokenError> {
            let i = r.varint().map_err(bad)?;
            usize::try_from(i)
                .ok()
                .and_then(|i| replicas.get(i).copied())
                .ok_or(TokenError::Malformed("replica index out of range"))
        };
        let n_keys = bounded(&mut r, Self::MAX_KEYS, "keys")?;
        let mut keys = BTreeMap::new();
        let mut last_key: Option<KeyId> = None;
        for _ in 0..n_keys {
            let channel = u16::try_from(r.varint().map_err(bad)?)
                .map_err(|_| TokenError::Malformed("channel out of range"))?;
            let digest = u128::from_be_bytes(r.array::<16>().map_err(bad)?);
            let key = KeyId { channel, digest };
            if last_key.is_some_and(|l| l >= key) {
                return Err(TokenError::Malformed("keys not sorted"));
            }
            last_key = Some(key);
            let mut f = Frontier::new();
            let n_entries = bounded(&mut r, MAX_ENTRIES, "entries")?;
            let mut last: Option<(ReplicaId, Mark)> = None;
            for _ in 0..n_entries {
                let who = replica(&mut r)?;
                let code = r.u8().map_err(bad)?;
                let mark = if code == ALL_LIVE {
                    Mark::Seen
                } else {
                    Mark::from_code(code).ok_or(TokenError::Malformed("unknown mark"))?
                };
                if last.is_some_and(|l| l >= (who, mark)) {
                    return Err(TokenError::Malformed("entries not sorted"));
                }
                last = Some((who, mark));
                let spans = if matches!(mark, Mark::Seen | Mark::Live) {
                    let n_ranges = bounded(&mut r, MAX_RANGES, "ranges")?;
                    let mut spans = Spans::new();
                    let mut prev = 0u64;
                    for i in 0..n_ranges {
                        let gap = r.varint().map_err(bad)?;
                        let len = r.varint().map_err(bad)?;
                        // Ranges start at 1 and never touch: gaps of at
                        // least 1 first, then at least 2.
                        if gap < if i == 0 { 1 } else { 2 } {
                            return Err(TokenError::Malformed("ranges overlap or touch"));
                        }
                        let a = prev
                            .checked_add(gap)
                            .ok_or(TokenError::Malformed("range overflows"))?;
                        let b = a
                            .checked_add(len)
                            .ok_or(TokenError::Malformed("range overflows"))?;
                        spans.insert(a, b);
                        prev = b;
                    }
                    spans
                } else {
                    Spans::up_to(r.varint().map_err(bad)?)
                };
                if spans.is_empty() {
                    return Err(TokenError::Malformed("empty entry"));
                }
                if code == ALL_LIVE {
                    f.entries.insert((who, Mark::Live), spans.clone());
                }
                if f.entries.insert((who, mark), spans).is_some() {
                    return Err(TokenError::Malformed("entry given twice"));
                }
            }
            f.stamp = match r.u8().map_err(bad)? {
                0 => None,
                1 => {
                    let physical_ms = r.varint().map_err(bad)?;
                    let logical = u32::try_from(r.varint().map_err(bad)?)
                        .map_err(|_| TokenError::Malformed("logical clock out of range"))?;
                    Some(Stamp {
                        physical_ms,
                        logical,
                        replica: replica(&mut r)?,
                    })
                }
                _ => return Err(TokenError::Malformed("stamp flag")),
            };
            if f.is_empty() {
                return Err(TokenError::Malformed("empty key"));
            }
            keys.insert(key, f);
        }
        if !r.is_empty() {
            return Err(TokenError::Malformed("trailing bytes"));
        }
        Ok(SessionToken { keys })
    }

    /// The token as base64url without padding (for an HTTP header).
    pub fn to_text(&self) -> String {
        text::encode(&self.to_bytes())
    }

    /// Decodes a token from its text form (untrusted input).
    pub fn from_text(s: &str) -> Result<Self, TokenError> {
        if s.len() > text::encoded_len(MAX_TOKEN_BYTES) {
            return Err(TokenError::TooLong(s.len()));
        }
        Self::from_bytes(&text::decode(s)?)
    }
}

/// Reads a varint count and checks it against `max`.
fn bounded(r: &mut Reader<'_>, max: usize, what: &'static str) -> Result<usize, TokenError> {
    let n = r.varint().map_err(|_| TokenError::Malformed("truncated"))?;
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(TokenError::TooMany(what)),
    }
}

impl core::fmt::Display for SessionToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl core::str::FromStr for SessionToken {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        Self::from_text(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use accordant::{BoundedCounter, Hlc, LwwRegister, OrSet};

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    fn sample() -> SessionToken {
        let mut t = SessionToken::new();
        let mut s = OrSet::new();
        for i in 0..6u8 {
            let _ = s.add(r(1 + u128::from(i % 3)), i).unwrap();
        }
        let _ = s.remove(&2);
        t.record(KeyId::of(0, "cart"), s.frontier()).unwrap();
        let mut b = BoundedCounter::new();
        let _ = b.increment(r(1), 100).unwrap();
        let _ = b.transfer(r(1), r(2), 30).unwrap();
        let _ = b.decrement(r(1), 5).unwrap();
        t.record(KeyId::of(1, "sku-1"), b.frontier()).unwrap();
        let mut l = LwwRegister::new();
        let _ = l.write_at(Hlc::new(1_700_000_000_000, 3), r(2), "12 Rue X");
        t.record(KeyId::of(2, "alice"), l.frontier()).unwrap();
        t
    }

    #[test]
    fn round_trips_through_bytes_and_text() {
        let t = sample();
        assert_eq!(SessionToken::from_bytes(&t.to_bytes()).unwrap(), t);
        assert_eq!(t.to_text().parse::<SessionToken>().unwrap(), t);
        assert_eq!(
            SessionToken::from_text("").unwrap_err(),
            TokenError::Malformed("truncated")
        );
        let empty = SessionToken::new();
        assert_eq!(SessionToken::from_bytes(&empty.to_bytes()).unwrap(), empty);
    }

    #[test]
    fn every_truncation_and_corruption_is_a_typed_error() {
        let bytes = sample().to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                SessionToken::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            SessionToken::from_bytes(&long),
            Err(TokenError::Malformed("trailing bytes"))
        );
        // Single-byte corruptions decode to an error or to another valid
        // token, never panic.
        for i in 0..bytes.len() {
            for x in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = x;
                if let Ok(t) = SessionToken::from_bytes(&b) {
                    // Whatever decodes re-encodes canonically.
                    assert_eq!(SessionToken::from_bytes(&t.to_bytes()).unwrap(), t);
                }
            }
        }
        assert_eq!(
            SessionToken::from_bytes(&vec![1; MAX_TOKEN_BYTES + 1]),
            Err(TokenError::TooLong(MAX_TOKEN_BYTES + 1))
        );
        // A count far above the bound is refused before any work.
        let mut huge = vec![TOKEN_VERSION];
        put_varint(&mut huge, u64::MAX);
        assert_eq!(
            SessionToken::from_bytes(&huge),
            Err(TokenError::TooMany("replicas"))
        );
        assert_eq!(SessionToken::from_bytes(&[9]), Err(TokenError::Version(9)));
    }

    #[test]
    fn a_full_token_refuses_a_new_key_and_keeps_the_others() {
        let mut t = SessionToken::new();
        let mut c = accordant::GCounter::new();
        let _ = c.increment(r(1), 1).unwrap();
        for i in 0..SessionToken::MAX_KEYS {
            t.record(KeyId::of(0, &i), c.frontier()).unwrap();
        }
        assert_eq!(
            t.record(KeyId::of(0, "one more"), c.frontier()),
            Err(TokenError::Full)
        );
        // An existing key is replaced.
        t.record(KeyId::of(0, &0usize), c.frontier()).unwrap();
        assert_eq!(t.keys().count(), SessionToken::MAX_KEYS);
    }

    #[test]
    fn sizes_stay_a_few_bytes_per_region() {
        // One key written in three regions (one dot each, nothing removed).
        let mut s = OrSet::new();
        for i in 1..=3 {
            let _ = s.add(r(i), i as u8).unwrap();
        }
        let mut t = SessionToken::new();
        t.record(KeyId::of(0, "k"), s.frontier()).unwrap();
        let n = t.to_bytes().len();
        // 3 ids (48 bytes) + key (17) + 3 entries of 5 bytes + framing.
        assert!(n <= 48 + 17 + 3 * 5 + 6, "{n}");
    }
}
