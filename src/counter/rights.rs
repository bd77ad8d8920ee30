//! `RightsPolicy`: when a replica gives bounded-counter rights to a peer that
//! runs low.
//!
//! A [`BoundedCounter`] replica can only spend rights it holds, and only the
//! holder can give rights away. So a region that runs low cannot *take*
//! rights; its row, synchronised to its peers, is the request, and a peer
//! with a surplus gives. Balegas et al. (SRDS 2015, §4) move rights on
//! demand or proactively; this is the proactive rule, a pure function of the
//! state so every replica can evaluate it after each merge, deterministically,
//! with no extra message.
//!
//! [`BoundedCounter::rebalance`] decides, at replica `me`:
//! 1. if `me` holds no more than the low watermark, nothing (it has no surplus);
//! 2. otherwise the *neediest peer*: among the given peers other than `me`,
//!    the one holding the fewest rights (the smallest id on ties);
//! 3. if that peer holds at least the low watermark, nothing;
//! 4. otherwise transfer `min((mine - theirs) / 2, mine - low_watermark)`:
//!    at most half the gap (the donor never ends below the receiver) and
//!    never below the watermark itself (a donor never makes itself low);
//!    nothing if that is 0.
//!
//! Rights only move, so the total is unchanged; each decision strictly raises
//! the neediest peer. Several donors may answer the same low peer
//! concurrently before seeing each other's transfers; each gives at most half
//! its own gap, so the peer ends with more than it needed, and rights are
//! never lost or duplicated.
//!
//! ```
//! use accordant::{BoundedCounter, ReplicaId, RightsPolicy};
//! let (eu, us, ap) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2), ReplicaId::from_u128(3));
//! let mut stock = BoundedCounter::new();
//! let _ = stock.increment(eu, 100).unwrap();
//! let policy = RightsPolicy::new(10);
//! // EU holds 100, US and AP nothing: EU gives US (the smaller id) half the gap.
//! assert_eq!(stock.rebalance(eu, [us, ap], &policy), Some((us, 50)));
//! let _ = stock.apply_rebalance(eu, [us, ap], &policy).unwrap();
//! // Then AP, the neediest now, gets half of the gap between EU (50) and it.
//! assert_eq!(stock.rebalance(eu, [us, ap], &policy), Some((ap, 25)));
//! ```

use crate::counter::BoundedCounter;
use crate::error::BoundedError;
use crate::replica::ReplicaId;

/// The automatic rights-transfer rule of a [`BoundedCounter`]: a replica
/// with a surplus above the low watermark gives to the neediest peer below
/// it ([`BoundedCounter::rebalance`] says exactly what it decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RightsPolicy {
    /// A replica holding fewer rights than this is low and gets topped up; a
    /// donor never gives itself below it.
    pub low_watermark: u64,
}

impl RightsPolicy {
    /// The policy with this low watermark.
    pub const fn new(low_watermark: u64) -> Self {
        RightsPolicy { low_watermark }
    }
}

impl BoundedCounter {
    /// The transfer `me` should make under `policy`, as `(to, amount)`, or
    /// `None`. `peers` is the membership (replicas that never wrote hold 0
    /// rights and count as low); `me` among them is ignored.
    ///
    /// 1. If `me` holds no more than the low watermark: `None`.
    /// 2. The neediest peer is the one holding the fewest rights (the
    ///    smallest id on ties); if it holds at least the watermark: `None`.
    /// 3. Otherwise `min((mine - theirs) / 2, mine - low_watermark)` to it:
    ///    at most half the gap, and never below the watermark for `me`
    ///    (`None` if that is 0).
    ///
    /// A pure function of the state: every replica can run it after each
    /// merge and after its own writes; a replica that runs low is topped up
    /// by whichever peers see it low.
    pub fn rebalance(
        &self,
        me: ReplicaId,
        peers: impl IntoIterator<Item = ReplicaId>,
        policy: &RightsPolicy,
    ) -> Option<(ReplicaId, u64)> {
        let mine = self.rights(me);
        if mine <= policy.low_watermark {
            return None;
        }
        let (peer, theirs) = peers
            .into_iter()
            .filter(|p| *p != me)
            .map(|p| (p, self.rights(p)))
            .min_by_key(|(p, rights)| (*rights, *p))?;
        if theirs >= policy.low_watermark {
            return None;
        }
        // mine > low_watermark > theirs, so both differences are positive.
        let amount = ((mine - theirs) / 2).min(mine - policy.low_watermark);
        (amount > 0).then_some((peer, amount))
    }

    /// Makes the transfer [`BoundedCounter::rebalance`] decides, if any, and
    /// returns its delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn apply_rebalance(
        &mut self,
        me: ReplicaId,
        peers: impl IntoIterator<Item = ReplicaId>,
        policy: &RightsPolicy,
    ) -> Result<Option<Self>, BoundedError> {
        match self.rebalance(me, peers, policy) {
            Some((to, amount)) => self.transfer(me, to, amount).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::Lattice;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    fn holding(amounts: &[(u128, u64)]) -> BoundedCounter {
        let mut c = BoundedCounter::new();
        for &(who, n) in amounts {
            let _ = c.increment(r(who), n).unwrap();
        }
        c
    }

    #[test]
    fn gives_half_the_gap_to_the_neediest_peer() {
        let c = holding(&[(1, 100), (2, 3), (3, 1)]);
        let p = RightsPolicy::new(10);
        assert_eq!(c.rebalance(r(1), [r(1), r(2), r(3)], &p), Some((r(3), 49)));
        // Ties go to the smaller id.
        let c = holding(&[(1, 100), (2, 1), (3, 1)]);
        assert_eq!(c.rebalance(r(1), [r(3), r(2)], &p), Some((r(2), 49)));
    }

    #[test]
    fn never_gives_below_the_watermark_nor_to_a_peer_above_it() {
        let p = RightsPolicy::new(10);
        // Surplus of 2 above the watermark: gives 2, not half the gap.
        let c = holding(&[(1, 12)]);
        assert_eq!(c.rebalance(r(1), [r(2)], &p), Some((r(2), 2)));
        // At the watermark: no surplus.
        let c = holding(&[(1, 10)]);
        assert_eq!(c.rebalance(r(1), [r(2)], &p), None);
        // Nobody is low.
        let c = holding(&[(1, 100), (2, 10)]);
        assert_eq!(c.rebalance(r(1), [r(2)], &p), None);
        // Only me in the membership.
        assert_eq!(c.rebalance(r(1), [r(1)], &p), None);
        // A gap of 1: half of it is 0, nothing moves.
        let c = holding(&[(1, 11), (2, 10)]);
        assert_eq!(c.rebalance(r(1), [r(2)], &RightsPolicy::new(11)), None);
    }

    #[test]
    fn repeated_rebalancing_settles_and_conserves_rights() {
        let members = [r(1), r(2), r(3), r(4)];
        let p = RightsPolicy::new(20);
        let mut c = holding(&[(1, 200), (2, 7)]);
        let total = |c: &BoundedCounter| members.iter().map(|m| c.rights(*m)).sum::<u64>();
        let before = total(&c);
        let mut moves = 0;
        loop {
            let mut moved = false;
            for me in members {
                let low_before = members
                    .iter()
                    .filter(|m| **m != me)
                    .map(|m| c.rights(*m))
                    .min()
                    .unwrap();
                if let Some(d) = c.apply_rebalance(me, members, &p).unwrap() {
                    assert!(!d.is_bottom());
                    assert!(c.rights(me) >= p.low_watermark, "a donor went low");
                    let low_after = members
                        .iter()
                        .filter(|m| **m != me)
                        .map(|m| c.rights(*m))
                        .min()
                        .unwrap();
                    assert!(low_after >= low_before);
                    moved = true;
                    moves += 1;
                }
            }
            assert_eq!(total(&c), before, "rights are conserved");
            if !moved {
                break;
            }
            assert!(moves < 100, "rebalancing does not settle");
        }
        assert!(members.iter().all(|m| c.rights(*m) >= p.low_watermark));
    }
}
