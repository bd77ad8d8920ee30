//! `BoundedCounter`: a non-negative counter that never oversells, even
//! through a partition.
//!
//! A [`PNCounter`](crate::PNCounter) of stock oversells during a split
//! brain: each region sees 1 unit left and sells it. The bounded counter
//! (Balegas et al., "Extending Eventually Consistent Cloud Databases for
//! Enforcing Numeric Invariants", SRDS 2015; AntidoteDB's `bcounter`) makes
//! the invariant `value >= 0` local: every unit of the value is a *right*
//! held by exactly one replica, and a replica decrements only the rights it
//! holds. Increments create rights at the incrementing replica; a replica may
//! *transfer* rights it holds to another. No coordination is needed to
//! decrement within one's rights, so a partitioned region keeps selling what
//! it holds and no more; rights move between regions over the ordinary sync
//! paths, by explicit [`BoundedCounter::transfer`] or by the deterministic
//! [`RightsPolicy`](crate::RightsPolicy) ([`BoundedCounter::rebalance`]).
//!
//! **State.** Balegas et al. keep a matrix `R[i][j]` (rights `i` transferred
//! to `j`; `R[i][i]` = increments of `i`) and a vector `U[i]` (decrements of
//! `i`), joined entry by entry. Here everything replica `i` writes is one
//! *row*: its increments `R[i][i]`, its decrements `U[i]`, its outgoing
//! transfers `R[i][j]`, plus its *backing* `B[i]`, the total it had received
//! from others when it last changed its row. The rights of `i` are
//!
//! ```text
//! rights(i) = R[i][i] + max(Σ_j R[j][i], B[i]) - U[i] - Σ_j R[i][j]
//! ```
//!
//! and the value is `Σ_i R[i][i] - Σ_i U[i]`, which equals `Σ_i rights(i)`
//! once every transfer's source row is known.
//!
//! **Why rows.** Two choices depart from the entry-wise matrix, and both
//! serve untrusted input:
//! - Each row is *self-certifying*: `U[i] + Σ_j R[i][j] <= R[i][i] + B[i]`
//!   (the replica spent at most what it held when it spent) can be checked
//!   on the row alone. A decrement's delta, a join-irreducible, a state
//!   shipped without the rows it depends on: every one of them is validated
//!   on decode, and a state where a replica spent rights it never held is
//!   [`DecodeError::Invalid`]. With entry-wise irreducibles a lone `U[i]`
//!   entry would look like an overdraft and could not be told from one.
//! - The rows of one replica form a *chain*: the join keeps the larger row
//!   (by the sum of its counts, then by content), never a mix of two rows.
//!   An honest replica's rows only grow, so this is the entry-wise maximum
//!   for honest histories; and because a join only ever keeps whole rows it
//!   received, **every state built by joins of valid states is valid**:
//!   `rights(i) >= 0` for every replica, always, by construction.
//!
//! A row costs one varint more than the matrix entries (the backing), and a
//! decrement's delta is the replica's whole row (a few varints) rather than
//! one entry. Join decomposition (Enes et al., ICDE 2019) is by row.
//!
//! The bounded counter is not a causal type: it lives in a
//! `Store` as a value of its own, not inside an [`OrMap`](crate::OrMap),
//! where an observed remove would have to take rights back from replicas
//! that may be spending them.
//!
//! **Reads under non-causal delivery.** A replica that receives `i`'s
//! decrement before the transfer that funded it sees `U[i]` without the
//! funding increment elsewhere; [`BoundedCounter::value`] then reads low
//! (saturating at 0) until the missing row arrives. The sync paths (full
//! states, minimal deltas, causal delta replication) never produce that.
//!
//! ```
//! use accordant::{BoundedCounter, BoundedError, Lattice, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut stock = BoundedCounter::new();
//! let _ = stock.increment(eu, 10).unwrap(); // EU holds 10 rights
//! let _ = stock.transfer(eu, us, 4).unwrap(); // and gives 4 to US
//! let mut us_view = stock.clone();
//! // Partition: each region sells what it holds, and no more.
//! let _ = stock.decrement(eu, 6).unwrap();
//! let _ = us_view.decrement(us, 4).unwrap();
//! assert_eq!(
//!     us_view.decrement(us, 1),
//!     Err(BoundedError::InsufficientRights { available: 0, requested: 1 })
//! );
//! stock.join(&us_view);
//! assert_eq!(stock.value(), 0); // sold out, never oversold
//! ```

use core::cmp::Ordering;

use crate::codec::{serde_via_wire, strictly_sorted, Budget, Canonical, SeqVec};
use crate::error::{BoundedError, DecodeError, OverflowError};
use crate::lattice::{Decompose, Lattice};
use crate::replica::ReplicaId;
use crate::summary::Summarize;

/// Everything one replica wrote: increments, decrements, transfers out, and
/// the inflow it had seen at its latest change.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
struct Row {
    increments: u64,
    decrements: u64,
    backing: u64,
    /// Cumulative transfers to each other replica: sorted by target, never
    /// zero, never to the row's owner.
    transfers: Vec<(ReplicaId, u64)>,
}

impl Row {
    fn transferred(&self) -> u128 {
        self.transfers.iter().map(|(_, n)| u128::from(*n)).sum()
    }

    fn sent_to(&self, to: &ReplicaId) -> u64 {
        self.transfers
            .binary_search_by(|(r, _)| r.cmp(to))
            .map_or(0, |i| self.transfers[i].1)
    }

    /// What the owner has given away: decrements and transfers.
    fn spent(&self) -> u128 {
        u128::from(self.decrements) + self.transferred()
    }

    /// What the owner held when it last changed the row, minus what it spent.
    fn available(&self) -> u128 {
        (u128::from(self.increments) + u128::from(self.backing)).saturating_sub(self.spent())
    }

    /// The row's invariant: it never spent more than it held.
    fn is_funded(&self) -> bool {
        self.spent() <= u128::from(self.increments) + u128::from(self.backing)
    }

    /// Strictly grows with every change an honest owner makes.
    fn weight(&self) -> u128 {
        u128::from(self.increments)
            + u128::from(self.decrements)
            + u128::from(self.backing)
            + self.transferred()
    }

    /// The chain order of one replica's rows: by weight, then by content
    /// (only rows forked by a misbehaving replica ever tie on weight).
    fn order(&self, other: &Row) -> Ordering {
        self.weight()
            .cmp(&other.weight())
            .then_with(|| {
                (self.increments, self.decrements, self.backing).cmp(&(
                    other.increments,
                    other.decrements,
                    other.backing,
                ))
            })
            .then_with(|| self.transfers.cmp(&other.transfers))
    }
}

/// A counter that never goes below zero: decrements spend rights held per
/// replica (Balegas et al., SRDS 2015).
///
/// Increments create rights at the incrementing replica; a replica
/// decrements or [transfers](BoundedCounter::transfer) only the rights it
/// holds ([`BoundedCounter::rights`]), and is refused with
/// [`BoundedError::InsufficientRights`] beyond them, so no interleaving of
/// partitioned regions can take the value below zero. Every replica's part
/// of the state is one row that proves it never spent more than it held;
/// decoding checks that proof for every row, so a state in which a replica
/// overdrew its rights is refused.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct BoundedCounter {
    /// One row per replica that wrote, sorted by replica; no row is empty.
    rows: Vec<(ReplicaId, Row)>,
}

impl BoundedCounter {
    /// The zero counter: no rights anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` at `replica`, creating as many rights there; returns the
    /// delta (the replica's row).
    ///
    /// Fails with [`OverflowError::Counter`] if the increments known here
    /// would exceed `u64::MAX` in total.
    #[must_use = "the delta is what other replicas need"]
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) -> Result<Self, BoundedError> {
        if self.total_increments() + u128::from(amount) > u128::from(u64::MAX) {
            return Err(OverflowError::Counter.into());
        }
        self.change_row(replica, amount, |row, _| {
            // Fits: bounded by the total checked above.
            row.increments += amount;
            Ok(())
        })
    }

    /// Subtracts `amount` at `replica`, spending as many of its rights;
    /// returns the delta.
    ///
    /// Fails with [`BoundedError::InsufficientRights`] if `replica` holds
    /// fewer than `amount` rights as far as this state knows: that refusal is
    /// what keeps the value from going negative anywhere.
    #[must_use = "the delta is what other replicas need"]
    pub fn decrement(&mut self, replica: ReplicaId, amount: u64) -> Result<Self, BoundedError> {
        self.change_row(replica, amount, |row, available| {
            check_available(available, amount)?;
            row.decrements = row
                .decrements
                .checked_add(amount)
                .ok_or(OverflowError::Counter)?;
            Ok(())
        })
    }

    /// Moves `amount` rights from `from` to `to`; returns the delta.
    ///
    /// Only the holder can give its rights away: call this at replica `from`
    /// (as every mutator, it writes `from`'s row, which no other replica may
    /// write). Fails with [`BoundedError::InsufficientRights`] if `from`
    /// holds fewer than `amount`, and [`BoundedError::SelfTransfer`] if
    /// `from == to`.
    #[must_use = "the delta is what other replicas need"]
    pub fn transfer(
        &mut self,
        from: ReplicaId,
        to: ReplicaId,
        amount: u64,
    ) -> Result<Self, BoundedError> {
        if from == to {
            return Err(BoundedError::SelfTransfer);
        }
        self.change_row(from, amount, |row, available| {
            check_available(available, amount)?;
            let sent = row.sent_to(&to);
            let total = sent.checked_add(amount).ok_or(OverflowError::Counter)?;
            match row.transfers.binary_search_by(|(r, _)| r.cmp(&to)) {
                Ok(i) => row.transfers[i].1 = total,
                Err(i) => row.transfers.insert(i, (to, total)),
            }
            Ok(())
        })
    }

    /// Applies `change` to a copy of `replica`'s row (with its backing raised
    /// to the inflow known here), and commits it only if `change` succeeds.
    fn change_row(
        &mut self,
        replica: ReplicaId,
        amount: u64,
        change: impl FnOnce(&mut Row, u128) -> Result<(), BoundedError>,
    ) -> Result<Self, BoundedError> {
        if amount == 0 {
            return Ok(Self::new());
        }
        let inflow = u64::try_from(self.inflow(&replica)).unwrap_or(u64::MAX);
        let mut row = self.row(&replica).cloned().unwrap_or_default();
        row.backing = row.backing.max(inflow);
        let available = row.available();
        change(&mut row, available)?;
        debug_assert!(row.is_funded());
        match self.rows.binary_search_by(|(r, _)| r.cmp(&replica)) {
            Ok(i) => self.rows[i].1 = row.clone(),
            Err(i) => self.rows.insert(i, (replica, row.clone())),
        }
        Ok(BoundedCounter {
            rows: vec![(replica, row)],
        })
    }

    /// Every row's numbers, for [`Claims`](crate::Claims): the replica, its
    /// increments, decrements, cumulative transfers out (saturated to
    /// `u64`) and backing.
    pub(crate) fn row_numbers(&self) -> impl Iterator<Item = (ReplicaId, u64, u64, u64, u64)> + '_ {
        self.rows.iter().map(|(r, row)| {
            let out = u64::try_from(row.transferred()).unwrap_or(u64::MAX);
            (*r, row.increments, row.decrements, out, row.backing)
        })
    }

    fn row(&self, replica: &ReplicaId) -> Option<&Row> {
        self.rows
            .binary_search_by(|(r, _)| r.cmp(replica))
            .ok()
            .map(|i| &self.rows[i].1)
    }

    /// Rights transferred to `replica` by the others, as far as known here.
    fn inflow(&self, replica: &ReplicaId) -> u128 {
        self.rows
            .iter()
            .filter(|(r, _)| r != replica)
            .map(|(_, row)| u128::from(row.sent_to(replica)))
            .sum()
    }

    fn rights_u128(&self, replica: &ReplicaId) -> u128 {
        let inflow = self.inflow(replica);
        match self.row(replica) {
            None => inflow,
            Some(row) => (u128::from(row.increments) + inflow.max(u128::from(row.backing)))
                .saturating_sub(row.spent()),
        }
    }

    /// The rights `replica` holds: what it may still decrement or transfer.
    ///
    /// Never negative: every row of a valid state is funded, and the join
    /// keeps whole rows. Saturates at `u64::MAX` (only a merge of
    /// increments made independently past `u64::MAX` in total can reach it).
    pub fn rights(&self, replica: ReplicaId) -> u64 {
        u64::try_from(self.rights_u128(&replica)).unwrap_or(u64::MAX)
    }

    /// The value: increments minus decrements, saturating to `0..=u64::MAX`.
    ///
    /// Never below zero in a state built by the sync paths (every decrement
    /// arrives with the rows that funded it); a state missing those rows
    /// reads low, at 0 at worst, until they arrive.
    pub fn value(&self) -> u64 {
        let v = self
            .total_increments()
            .saturating_sub(self.total_decrements());
        u64::try_from(v).unwrap_or(u64::MAX)
    }

    /// Every increment known here, summed.
    pub fn total_increments(&self) -> u128 {
        self.rows
            .iter()
            .map(|(_, r)| u128::from(r.increments))
            .sum()
    }

    /// Every decrement known here, summed.
    pub fn total_decrements(&self) -> u128 {
        self.rows
            .iter()
            .map(|(_, r)| u128::from(r.decrements))
            .sum()
    }

    /// The rights `from` has transferred to `to` so far, in total.
    pub fn transferred(&self, from: ReplicaId, to: ReplicaId) -> u64 {
        self.row(&from).map_or(0, |row| row.sent_to(&to))
    }

    /// Every replica this state mentions (that wrote, or received rights),
    /// in order.
    pub fn replicas(&self) -> Vec<ReplicaId> {
        let mut out: Vec<ReplicaId> = self
            .rows
            .iter()
            .flat_map(|(r, row)| core::iter::once(*r).chain(row.transfers.iter().map(|t| t.0)))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn check_available(available: u128, requested: u64) -> Result<(), BoundedError> {
    if available < u128::from(requested) {
        return Err(BoundedError::InsufficientRights {
            available: u64::try_from(available).unwrap_or(u64::MAX),
            requested,
        });
    }
    Ok(())
}

impl Lattice for BoundedCounter {
    /// Per replica, the larger row.
    fn join(&mut self, other: &Self) {
        if self.rows == other.rows || other.rows.is_empty() {
            return;
        }
        let mine = core::mem::take(&mut self.rows);
        let mut out = Vec::with_capacity(mine.len().max(other.rows.len()));
        let mut a = mine.into_iter().peekable();
        let mut b = other.rows.iter().peekable();
        loop {
            let ord = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((ra, _)), Some((rb, _))) => ra.cmp(rb),
            };
            let next = match ord {
                Ordering::Less => a.next(),
                Ordering::Greater => b.next().cloned(),
                Ordering::Equal => match (a.next(), b.next()) {
                    (Some((r, x)), Some((_, y))) => Some(if y.order(&x) == Ordering::Greater {
                        (r, y.clone())
                    } else {
                        (r, x)
                    }),
                    _ => None,
                },
            };
            out.extend(next);
        }
        self.rows = out;
    }
}

impl Decompose for BoundedCounter {
    /// One irreducible per replica: its row alone.
    fn decompose(&self) -> Vec<Self> {
        self.rows
            .iter()
            .map(|e| BoundedCounter {
                rows: vec![e.clone()],
            })
            .collect()
    }

    /// The rows of `self` larger than `other`'s.
    fn delta(&self, other: &Self) -> Self {
        BoundedCounter {
            rows: self
                .rows
                .iter()
                .filter(|(r, row)| {
                    other
                        .row(r)
                        .is_none_or(|theirs| row.order(theirs) == Ordering::Greater)
                })
                .cloned()
                .collect(),
        }
    }
}

/// A row on the wire: owner index, increments, decrements, backing, and
/// transfers as (target index, cumulative amount).
type WireRow = (u32, u64, u64, u64, SeqVec<(u32, u64)>);

impl Canonical for BoundedCounter {
    /// The replica table (sorted, every id used), then the rows sorted by
    /// owner, replicas referred to by their index in the table.
    type Wire = (SeqVec<ReplicaId>, SeqVec<WireRow>);

    fn to_wire(&self) -> Self::Wire {
        let table = self.replicas();
        let index = |r: &ReplicaId| -> u32 {
            // Every id of a row is in the table by construction; u32::MAX
            // would be rejected on decode if that were ever broken.
            table
                .binary_search(r)
                .map_or(u32::MAX, |i| u32::try_from(i).unwrap_or(u32::MAX))
        };
        let rows = self
            .rows
            .iter()
            .map(|(r, row)| {
                (
                    index(r),
                    row.increments,
                    row.decrements,
                    row.backing,
                    SeqVec(row.transfers.iter().map(|(t, n)| (index(t), *n)).collect()),
                )
            })
            .collect();
        (SeqVec(table.clone()), SeqVec(rows))
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        let (SeqVec(table), SeqVec(wire_rows)) = wire;
        budget.take(table.len())?;
        if !strictly_sorted(&table, |a, b| a < b) {
            return Err(DecodeError::NonCanonical("replica table not sorted"));
        }
        if !strictly_sorted(&wire_rows, |a, b| a.0 < b.0) {
            return Err(DecodeError::NonCanonical("counter rows not sorted"));
        }
        let lookup = |i: u32| -> Result<ReplicaId, DecodeError> {
            table
                .get(i as usize)
                .copied()
                .ok_or(DecodeError::Invalid("replica index out of range"))
        };
        let mut used = vec![false; table.len()];
        let mut rows = Vec::new();
        for (owner, increments, decrements, backing, SeqVec(transfers)) in wire_rows {
            budget.take(1 + transfers.len())?;
            let replica = lookup(owner)?;
            used[owner as usize] = true;
            if !strictly_sorted(&transfers, |a, b| a.0 < b.0) {
                return Err(DecodeError::NonCanonical("transfers not sorted"));
            }
            let mut out = Vec::new();
            for (to, n) in transfers {
                if to == owner {
                    return Err(DecodeError::Invalid("a replica transferred to itself"));
                }
                if n == 0 {
                    return Err(DecodeError::NonCanonical("zero transfer"));
                }
                out.push((lookup(to)?, n));
                used[to as usize] = true;
            }
            let row = Row {
                increments,
                decrements,
                backing,
                transfers: out,
            };
            if row.weight() == 0 {
                return Err(DecodeError::NonCanonical("empty counter row"));
            }
            if !row.is_funded() {
                return Err(DecodeError::Invalid(
                    "a replica spent more rights than it held",
                ));
            }
            rows.push((replica, row));
        }
        if used.iter().any(|u| !u) {
            return Err(DecodeError::NonCanonical("unused replica id"));
        }
        Ok(BoundedCounter { rows })
    }
}

serde_via_wire!([] BoundedCounter);

/// A bounded counter is its own summary, like the other counters: one row
/// per replica that wrote, a few varints each.
impl Summarize for BoundedCounter {
    type Summary = BoundedCounter;

    fn summary(&self) -> Self {
        self.clone()
    }

    fn delta_for(&self, seen: &Self) -> Self {
        self.delta(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode, Limits};

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn decrements_stop_at_the_rights_held() {
        let mut c = BoundedCounter::new();
        let _ = c.increment(r(1), 5).unwrap();
        let _ = c.decrement(r(1), 3).unwrap();
        assert_eq!(c.rights(r(1)), 2);
        let before = c.clone();
        assert_eq!(
            c.decrement(r(1), 3),
            Err(BoundedError::InsufficientRights {
                available: 2,
                requested: 3
            })
        );
        assert_eq!(c, before, "a refused decrement changes nothing");
        // Another replica holds nothing until rights are transferred to it.
        assert_eq!(
            c.decrement(r(2), 1),
            Err(BoundedError::InsufficientRights {
                available: 0,
                requested: 1
            })
        );
        assert_eq!(c.value(), 2);
    }

    #[test]
    fn transferred_rights_move_and_are_spent_once() {
        let mut eu = BoundedCounter::new();
        let _ = eu.increment(r(1), 10).unwrap();
        let t = eu.transfer(r(1), r(2), 4).unwrap();
        assert_eq!((eu.rights(r(1)), eu.rights(r(2))), (6, 4));
        assert_eq!(eu.transferred(r(1), r(2)), 4);
        // US only learns of its rights through the transfer's delta, which
        // is EU's whole row (it carries the increment that funds it).
        let mut us = BoundedCounter::new();
        assert!(us.decrement(r(2), 1).is_err());
        us.join(&t);
        assert_eq!(us.rights(r(2)), 4);
        let d = us.decrement(r(2), 4).unwrap();
        assert!(us.decrement(r(2), 1).is_err());
        eu.join(&d);
        assert_eq!(eu.value(), 6);
        assert_eq!(eu.rights(r(2)), 0);
        assert_eq!(eu.rights(r(1)) + eu.rights(r(2)), 6);
    }

    #[test]
    fn no_self_transfer_and_no_transfer_beyond_rights() {
        let mut c = BoundedCounter::new();
        let _ = c.increment(r(1), 3).unwrap();
        assert_eq!(c.transfer(r(1), r(1), 1), Err(BoundedError::SelfTransfer));
        assert_eq!(
            c.transfer(r(1), r(2), 4),
            Err(BoundedError::InsufficientRights {
                available: 3,
                requested: 4
            })
        );
        // Rights received can be passed on.
        let _ = c.transfer(r(1), r(2), 3).unwrap();
        let _ = c.transfer(r(2), r(3), 2).unwrap();
        assert_eq!((c.rights(r(1)), c.rights(r(2)), c.rights(r(3))), (0, 1, 2));
    }

    #[test]
    fn zero_amounts_change_nothing() {
        let mut c = BoundedCounter::new();
        assert!(c.increment(r(1), 0).unwrap().is_bottom());
        assert!(c.decrement(r(1), 0).unwrap().is_bottom());
        assert!(c.transfer(r(1), r(2), 0).unwrap().is_bottom());
        assert!(c.is_bottom());
    }

    #[test]
    fn increments_are_checked_against_the_known_total() {
        let mut c = BoundedCounter::new();
        let _ = c.increment(r(1), u64::MAX - 1).unwrap();
        let before = c.clone();
        assert_eq!(
            c.increment(r(2), 2),
            Err(BoundedError::Overflow(OverflowError::Counter))
        );
        assert_eq!(c, before);
        let _ = c.increment(r(2), 1).unwrap();
        assert_eq!(c.value(), u64::MAX);
    }

    #[test]
    fn a_decrement_delta_decodes_alone() {
        // The delta of a decrement funded by a transfer is the spender's row:
        // valid on its own, thanks to the backing.
        let mut c = BoundedCounter::new();
        let _ = c.increment(r(1), 5).unwrap();
        let _ = c.transfer(r(1), r(2), 5).unwrap();
        let d = c.decrement(r(2), 5).unwrap();
        assert_eq!(d.rights(r(2)), 0);
        let back: BoundedCounter = decode(&encode(&d), &Limits::default()).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            d.value(),
            0,
            "reads low (never negative) without its funding"
        );
    }

    #[test]
    fn decode_rejects_an_overdrawn_row() {
        let mut c = BoundedCounter::new();
        let _ = c.increment(r(1), 5).unwrap();
        let _ = c.decrement(r(1), 5).unwrap();
        let mut wire = c.to_wire();
        wire.1 .0[0].2 = 6; // decrements 6 > increments 5 + backing 0
        let bytes = postcard::to_allocvec(&wire).unwrap();
        assert_eq!(
            decode::<BoundedCounter>(&bytes, &Limits::default()),
            Err(DecodeError::Invalid(
                "a replica spent more rights than it held"
            ))
        );
    }

    #[test]
    fn decode_rejects_malformed_tables_and_rows() {
        let mut c = BoundedCounter::new();
        let _ = c.increment(r(1), 5).unwrap();
        let _ = c.transfer(r(1), r(2), 2).unwrap();
        let good = c.to_wire();
        let check = |wire: &<BoundedCounter as Canonical>::Wire, want: DecodeError| {
            let bytes = postcard::to_allocvec(wire).unwrap();
            assert_eq!(
                decode::<BoundedCounter>(&bytes, &Limits::default()),
                Err(want)
            );
        };
        let mut w = good.clone();
        w.0 .0.swap(0, 1);
        check(&w, DecodeError::NonCanonical("replica table not sorted"));
        let mut w = good.clone();
        w.0 .0.push(r(9));
        check(&w, DecodeError::NonCanonical("unused replica id"));
        let mut w = good.clone();
        w.1 .0[0].4 .0[0].0 = 0;
        check(&w, DecodeError::Invalid("a replica transferred to itself"));
        let mut w = good.clone();
        w.1 .0[0].4 .0[0].0 = 7;
        check(&w, DecodeError::Invalid("replica index out of range"));
        let mut w = good.clone();
        w.1 .0[0].4 .0[0].1 = 0;
        check(&w, DecodeError::NonCanonical("zero transfer"));
        let mut w = good.clone();
        w.1 .0[0] = (0, 0, 0, 0, SeqVec(vec![]));
        check(&w, DecodeError::NonCanonical("empty counter row"));
        let bytes = encode(&c);
        assert_eq!(decode::<BoundedCounter>(&bytes, &Limits::default()), Ok(c));
    }

    #[test]
    fn join_keeps_whole_rows_even_from_forked_replicas() {
        // Replica 1 misbehaves: two forks of its row, each funded alone, that
        // an entry-wise maximum would combine into an overdraft (decrements
        // 5 of one fork, transfer 5 of the other, increments 5).
        let mut base = BoundedCounter::new();
        let _ = base.increment(r(1), 5).unwrap();
        let mut a = base.clone();
        let mut b = base.clone();
        let _ = a.decrement(r(1), 5).unwrap();
        let _ = b.transfer(r(1), r(2), 5).unwrap();
        let ab = a.clone().joined(&b);
        assert_eq!(ab, b.clone().joined(&a));
        let total = u64::try_from(ab.total_increments()).unwrap();
        assert!(ab.rights(r(1)) + ab.rights(r(2)) <= total);
        let bytes = encode(&ab);
        assert_eq!(decode::<BoundedCounter>(&bytes, &Limits::default()), Ok(ab));
    }
}
