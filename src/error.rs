//! Typed errors.
//!
//! Every failure has its own documented variant, and every enum is
//! `#[non_exhaustive]` so that new failure modes can be added without breaking
//! callers. Context is carried as `&'static str` rather than formatted strings:
//! errors are cheap to build on hostile input.

use thiserror::Error;

/// Why bytes could not be decoded into a CRDT state.
///
/// Decoding never panics and never allocates more than a bound proportional
/// to the input length; any failure is reported as one of these variants.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than [`Limits::max_bytes`](crate::codec::Limits).
    #[error("input of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The input holds more items than [`Limits::max_items`](crate::codec::Limits).
    #[error("input holds more than {limit} items")]
    TooManyItems {
        /// The configured limit.
        limit: usize,
    },
    /// The bytes are not a well-formed encoding (truncated, bad varint, bad UTF-8...).
    #[error("malformed encoding: {0}")]
    Malformed(&'static str),
    /// Bytes remain after a complete value was read.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The encoding is well formed but not the canonical one (unsorted, duplicated, ...).
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
    /// The decoded state breaks an invariant of its type.
    #[error("invalid state: {0}")]
    Invalid(&'static str),
}

/// An arithmetic result that does not fit its type.
///
/// Counters use checked arithmetic: an increment that would overflow is
/// refused and leaves the counter unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OverflowError {
    /// The counter would exceed its maximum value.
    #[error("counter overflow")]
    Counter,
    /// The replica ran out of dot sequence numbers (more than 2^64 - 1 events).
    #[error("dot counter exhausted")]
    Dots,
}

/// A remote hybrid-logical-clock timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The remote timestamp is further ahead of the local clock than the
    /// configured maximum offset: accepting it would let one replica with a
    /// bad clock win every later write.
    #[error(
        "remote timestamp is {ahead_ms} ms ahead of local time (max offset {max_offset_ms} ms)"
    )]
    TooFarAhead {
        /// How far ahead of local physical time the remote timestamp is.
        ahead_ms: u64,
        /// The configured maximum offset.
        max_offset_ms: u64,
    },
    /// The logical component of the clock would overflow.
    #[error("logical clock overflow")]
    LogicalOverflow,
}

/// A bounded-counter operation was refused; the counter is unchanged.
///
/// See [`BoundedCounter`](crate::BoundedCounter): a replica spends (decrements
/// or transfers) only the rights it holds, so the counter can never go below
/// zero, whatever the partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BoundedError {
    /// The replica holds fewer rights than the operation spends.
    #[error("insufficient rights: {available} available, {requested} requested")]
    InsufficientRights {
        /// Rights the replica holds, as far as this state knows.
        available: u64,
        /// Rights the operation needs.
        requested: u64,
    },
    /// A transfer named the same replica as source and destination.
    #[error("a replica cannot transfer rights to itself")]
    SelfTransfer,
    /// A count would exceed `u64::MAX`.
    #[error(transparent)]
    Overflow(#[from] OverflowError),
}

/// Tombstone collection was refused; the state is unchanged.
///
/// See [`RwSet::compact`](crate::RwSet::compact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CompactError {
    /// Report number `report` holds dots this replica has not delivered yet:
    /// among them may be an add concurrent with a remove, which a collected
    /// tombstone would no longer defeat.
    #[error("report {report} holds dots this replica has not delivered")]
    NotDelivered {
        /// Index of the offending report.
        report: usize,
    },
}
