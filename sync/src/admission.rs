//! Admission: what a replica checks in a value from a peer before joining
//! any of it.
//!
//! Joins only grow, so a lie that is joined is never undone. Decoding
//! (bounded by [`Limits`](accordant::codec::Limits)) proves a value is
//! well formed; [`Admission`] proves it is *believable*, from the
//! [`Claims`] the value makes about the replicas that wrote it
//! (see [`accordant::claims`]):
//!
//! 1. **Own replica.** No claim of a sequence (dots, increments,
//!    decrements) for the receiver's own replica above what the receiver
//!    itself issued on that key. Only the receiver writes under its
//!    replica id, and it applies every write locally before sending it, so
//!    its local value holds the truth: a larger claim is forged, and
//!    joining it would make the receiver reuse dots or lose its next
//!    increments.
//! 2. **Ceiling.** No count above [`Admission::ceiling`] (2^48 by default,
//!    about 2.8 × 10^14 writes or units of one replica on one key). A
//!    claim near `u64::MAX` would make the next write on that key fail with
//!    an overflow (or "dot counter exhausted") on every replica it
//!    reaches: a permanent, cluster-wide denial of writes.
//!
//! 3. **Clock.** No last-writer-wins stamp more than
//!    [`Admission::max_ahead_ms`] (one minute by default) ahead of this
//!    replica's wall clock. A register stamped in the future beats every
//!    write made before that time, on every replica it reaches, and nothing
//!    can undo it: one node with a clock set a year ahead would freeze its
//!    keys for a year. The bound is the one an [`accordant::HlcClock`]
//!    applies to remote stamps.
//!
//! A refused value is a typed [`Refusal`], carried as
//! [`SyncError::Refused`](crate::error::SyncError::Refused): the whole message it came in is dropped,
//! nothing of it is joined, and the transport counts the peer
//! ([`NodeStats::refusals`](crate::net::NodeStats)) and closes the
//! connection.
//!
//! The delta paths ([`NaivePush`](crate::delta::NaivePush),
//! [`AckedDeltas`](crate::delta::AckedDeltas)) check every value of a
//! message before joining any ([`Admit`]). An anti-entropy session given a
//! policy ([`Session::with_admission`](crate::session::Session::with_admission))
//! checks every value of a validated turn before joining any of it; the
//! node gives its sessions the node's [`Admission`].
//!
//! What admission does not catch: a member that forges *other* members'
//! writes below the ceiling, or stamps within the clock bound
//! (see SECURITY.md).
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::admission::{Admission, Admit, Refusal};
//! use accordant_sync::store::Store;
//!
//! let (me, peer) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut store: Store<String, GCounter> = Store::new();
//! let key = "views".to_string();
//! let _ = store.update(key.clone(), |c| c.increment(me, 3)).unwrap();
//! let admission = Admission::new(Some(me));
//!
//! // The peer's own count, and ours as we issued it: admitted.
//! let mut ok = GCounter::new();
//! let _ = ok.increment(peer, 10).unwrap();
//! let _ = ok.increment(me, 3).unwrap();
//! assert!(admission.admit(&store, &key, &ok).is_ok());
//!
//! // Four increments of ours when we made three: refused.
//! let mut forged = GCounter::new();
//! let _ = forged.increment(me, 4).unwrap();
//! assert!(matches!(
//!     admission.admit(&store, &key, &forged),
//!     Err(Refusal::OwnReplica { claimed: 4, issued: 3, .. })
//! ));
//!
//! // A count at u64::MAX would block every later increment: refused.
//! let mut huge = GCounter::new();
//! let _ = huge.increment(peer, u64::MAX).unwrap();
//! assert!(matches!(admission.admit(&store, &key, &huge), Err(Refusal::AboveCeiling { .. })));
//! ```

use core::fmt;
use std::sync::Arc;

use accordant::{ClaimKind, Claims, Clock, ReplicaId, SystemClock};
use thiserror::Error;

use crate::store::{Store, StoreKey, StoreValue};

/// Why a value from a peer was refused. Nothing of the message it came in
/// was applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The value claims more of this replica's own writes than it issued.
    #[error("claims {claimed} {kind} of this replica, which issued {issued}")]
    OwnReplica {
        /// Which sequence.
        kind: KindName,
        /// What the value claims.
        claimed: u64,
        /// What this replica issued on that key.
        issued: u64,
    },
    /// A last-writer-wins stamp lies further ahead of this replica's clock
    /// than [`Admission::max_ahead_ms`] allows.
    #[error("a stamp of replica {replica} at {stamp_ms} ms is {ahead_ms} ms ahead of this replica's clock (at most {max_ahead_ms} allowed)")]
    StampAhead {
        /// The replica the stamp is claimed for.
        replica: ReplicaId,
        /// The stamp's physical time, in ms since the Unix epoch.
        stamp_ms: u64,
        /// How far ahead of the local clock it was.
        ahead_ms: u64,
        /// [`Admission::max_ahead_ms`].
        max_ahead_ms: u64,
    },
    /// The value claims a number above the ceiling.
    #[error("claims {claimed} {kind} of replica {replica}, above the ceiling {ceiling}")]
    AboveCeiling {
        /// Which number.
        kind: KindName,
        /// For which replica.
        replica: ReplicaId,
        /// What the value claims.
        claimed: u64,
        /// [`Admission::ceiling`].
        ceiling: u64,
    },
}

/// A [`ClaimKind`] in a [`Refusal`], displayed in words.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KindName(pub ClaimKind);

impl fmt::Debug for KindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for KindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            ClaimKind::Dots => "dots",
            ClaimKind::Increments => "increments",
            ClaimKind::Decrements => "decrements",
            ClaimKind::Transfers => "rights transferred",
            ClaimKind::Magnitude => "units in one dot",
            ClaimKind::Stamp => "stamp milliseconds",
            _ => "claims",
        })
    }
}

/// The admission policy of a replica: its own id, the ceiling and the
/// bound on stamps. See the
/// [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Admission {
    /// The replica id this node writes under. `None` skips the own-replica
    /// check (only the ceiling applies): a node that writes must set it.
    pub own: Option<ReplicaId>,
    /// The largest number any claim may carry.
    pub ceiling: u64,
    /// How far ahead of the local wall clock a last-writer-wins stamp may
    /// be, in milliseconds (`None`: unbounded).
    pub max_ahead_ms: Option<u64>,
}

impl Admission {
    /// The default ceiling: 2^48.
    pub const DEFAULT_CEILING: u64 = 1 << 48;

    /// The default bound on how far a stamp may lie ahead: one minute,
    /// well above the offsets of NTP-synchronised clocks (milliseconds) and
    /// far below the damage a stamp from the future does (it wins every
    /// write on its key until the clocks catch up with it).
    pub const DEFAULT_MAX_AHEAD_MS: u64 = 60_000;

    /// The policy of a replica writing under `own`, with the default
    /// ceiling and bound on stamps.
    pub fn new(own: Option<ReplicaId>) -> Self {
        Admission {
            own,
            ceiling: Self::DEFAULT_CEILING,
            max_ahead_ms: Some(Self::DEFAULT_MAX_AHEAD_MS),
        }
    }

    /// Returns this policy with `ceiling` replaced.
    pub fn with_ceiling(mut self, ceiling: u64) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// Returns this policy with the bound on stamps replaced (`None`:
    /// stamps are not checked against the clock).
    pub fn with_max_ahead_ms(mut self, max_ahead_ms: Option<u64>) -> Self {
        self.max_ahead_ms = max_ahead_ms;
        self
    }

    /// Checks `value`, received for `key`, against what this replica holds
    /// there (`current`; `None` for a key it never saw), with stamps
    /// compared to the system clock.
    pub fn admit_value<V: Claims>(&self, current: Option<&V>, value: &V) -> Result<(), Refusal> {
        self.admit_value_at(current, value, &SystemClock)
    }

    /// [`admit_value`](Self::admit_value) with stamps compared to `clock`.
    pub fn admit_value_at<V: Claims>(
        &self,
        current: Option<&V>,
        value: &V,
        clock: &dyn Clock,
    ) -> Result<(), Refusal> {
        let mut refusal = None;
        let mut now_ms = None;
        value.for_each_claim(&mut |c| {
            if refusal.is_some() {
                return;
            }
            if c.kind == ClaimKind::Stamp {
                if let Some(max_ahead_ms) = self.max_ahead_ms {
                    let now = *now_ms.get_or_insert_with(|| clock.now_ms());
                    let ahead_ms = c.value.saturating_sub(now);
                    if ahead_ms > max_ahead_ms {
                        refusal = Some(Refusal::StampAhead {
                            replica: c.replica,
                            stamp_ms: c.value,
                            ahead_ms,
                            max_ahead_ms,
                        });
                    }
                }
            } else if c.value > self.ceiling {
                refusal = Some(Refusal::AboveCeiling {
                    kind: KindName(c.kind),
                    replica: c.replica,
                    claimed: c.value,
                    ceiling: self.ceiling,
                });
            } else if c.kind.is_sequence() && Some(c.replica) == self.own {
                let issued = current.map_or(0, |v| v.max_claim(c.kind, &c.replica));
                if c.value > issued {
                    refusal = Some(Refusal::OwnReplica {
                        kind: KindName(c.kind),
                        claimed: c.value,
                        issued,
                    });
                }
            }
        });
        refusal.map_or(Ok(()), Err)
    }
}

impl Default for Admission {
    /// No own replica (only the ceiling applies), the default ceiling.
    fn default() -> Self {
        Admission::new(None)
    }
}

/// The check a store's receiver runs on every value a peer sends, before
/// joining anything of the message. [`Admission`] is the one the node
/// uses; a session or a delta path calls it with the store it is about to
/// join into.
pub trait Admit<K, V> {
    /// Whether `value`, received for `key`, may be joined into `store`.
    fn admit(&self, store: &Store<K, V>, key: &K, value: &V) -> Result<(), Refusal>;
}

impl<K: StoreKey, V: StoreValue + Claims> Admit<K, V> for Admission {
    fn admit(&self, store: &Store<K, V>, key: &K, value: &V) -> Result<(), Refusal> {
        self.admit_value(store.get(key).as_ref(), value)
    }
}

/// An admission policy shared by the sessions of a node: what
/// [`Session::with_admission`](crate::session::Session::with_admission)
/// keeps.
#[derive(Clone)]
pub struct SharedAdmit<K, V>(pub Arc<dyn Admit<K, V> + Send + Sync>);

impl<K, V> fmt::Debug for SharedAdmit<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedAdmit(..)")
    }
}

/// Admits everything: for states that make no claims, and for tests of
/// what a missing check would let through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmitAll;

impl<K, V> Admit<K, V> for AdmitAll {
    fn admit(&self, _: &Store<K, V>, _: &K, _: &V) -> Result<(), Refusal> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use accordant::{OrSet, PNCounter, ShoppingCart};

    use super::*;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn stamps_from_the_future_are_refused_and_the_bound_is_configurable() {
        use accordant::{Hlc, LwwRegister, ManualClock};
        let clock = ManualClock::new(1_700_000_000_000);
        let adm = Admission::new(Some(r(1)));
        let at = |ms: u64| {
            let mut v = LwwRegister::new();
            let _ = v.write_at(Hlc::new(ms, 0), r(2), 5u8);
            v
        };
        // Past, present and just within the minute: admitted.
        for ms in [1, 1_700_000_000_000, 1_700_000_060_000] {
            assert_eq!(adm.admit_value_at(None, &at(ms), &clock), Ok(()), "{ms}");
        }
        // One millisecond beyond the bound, and a year ahead: refused.
        assert_eq!(
            adm.admit_value_at(None, &at(1_700_000_060_001), &clock),
            Err(Refusal::StampAhead {
                replica: r(2),
                stamp_ms: 1_700_000_060_001,
                ahead_ms: 60_001,
                max_ahead_ms: 60_000
            })
        );
        let year = at(1_700_000_000_000 + 365 * 86_400_000);
        assert!(matches!(
            adm.admit_value_at(None, &year, &clock),
            Err(Refusal::StampAhead { .. })
        ));
        // Without the bound, only the ceiling applies to other claims.
        let open = adm.with_max_ahead_ms(None);
        assert_eq!(open.admit_value_at(None, &year, &clock), Ok(()));
        // The clock moves on: the same stamp becomes admissible.
        clock.set(1_700_000_000_000 + 365 * 86_400_000);
        assert_eq!(adm.admit_value_at(None, &year, &clock), Ok(()));
    }

    #[test]
    fn own_dots_beyond_what_was_issued_are_refused() {
        let me = r(1);
        let adm = Admission::new(Some(me));
        let mut mine: OrSet<u8> = OrSet::new();
        let _ = mine.add(me, 1).unwrap();
        let _ = mine.add(me, 2).unwrap();
        // A peer's copy of our two adds, plus its own: fine.
        let mut theirs = mine.clone();
        let _ = theirs.add(r(2), 3).unwrap();
        assert_eq!(adm.admit_value(Some(&mine), &theirs), Ok(()));
        // A third add "by us" that we never made.
        let mut forged = mine.clone();
        let _ = forged.add(me, 9).unwrap();
        assert_eq!(
            adm.admit_value(Some(&mine), &forged),
            Err(Refusal::OwnReplica {
                kind: KindName(ClaimKind::Dots),
                claimed: 3,
                issued: 2
            })
        );
        // On a key we never wrote, any claim of ours is forged.
        assert!(adm.admit_value(None, &mine).is_err());
        // Without an own replica only the ceiling applies.
        assert_eq!(Admission::default().admit_value(None, &forged), Ok(()));
    }

    #[test]
    fn each_pn_sequence_is_checked_on_its_own() {
        let me = r(1);
        let adm = Admission::new(Some(me));
        let mut mine = PNCounter::new();
        let _ = mine.increment(me, 10).unwrap();
        let mut forged = PNCounter::new();
        // Decrements we never made, though below our increments.
        let _ = forged.decrement(me, 5).unwrap();
        assert!(matches!(
            adm.admit_value(Some(&mine), &forged),
            Err(Refusal::OwnReplica { issued: 0, .. })
        ));
    }

    #[test]
    fn claims_above_the_ceiling_are_refused_whoever_they_name() {
        let adm = Admission::new(Some(r(1))).with_ceiling(1000);
        let mut s: OrSet<u8> = OrSet::new();
        let _ = s.add(r(7), 1).unwrap();
        assert_eq!(adm.admit_value(None, &s), Ok(()));
        let mut cart: ShoppingCart<u8> = ShoppingCart::new();
        let _ = cart.add(r(7), 1, 1001).unwrap();
        assert!(matches!(
            adm.admit_value(None, &cart),
            Err(Refusal::AboveCeiling {
                claimed: 1001,
                ceiling: 1000,
                ..
            })
        ));
    }
}
