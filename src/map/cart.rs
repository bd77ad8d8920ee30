//! `ShoppingCart`: the seed article's "merge means union of items", done right.
//!
//! A cart is an [`OrMap`] from item to [`CausalCounter`] (the quantity).
//! - Concurrent additions in two regions merge: items from both carts are
//!   present and quantities of the same item add up.
//! - An item removed in one region while the other region adds to it comes
//!   back with **only** the concurrent addition.
//! - An item removed with no concurrent addition never comes back: the
//!   resurrection anomaly of Amazon's Dynamo cart (DeCandia et al., SOSP
//!   2007, §4.4: "deleted items can resurface") cannot happen, because the
//!   remove carries the dots it removed and the causal context remembers them.
//!
//! ```
//! use accordant::{Lattice, ReplicaId, ShoppingCart};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut eu_cart = ShoppingCart::new();
//! let _ = eu_cart.add(eu, "book", 1).unwrap();
//! let mut us_cart = eu_cart.clone();
//! // Split brain: EU removes the book, US adds two more and a pen.
//! let _ = eu_cart.remove_item(&"book");
//! let _ = us_cart.add(us, "book", 2).unwrap();
//! let _ = us_cart.add(us, "pen", 1).unwrap();
//! eu_cart.join(&us_cart);
//! assert_eq!(eu_cart.quantity(&"book"), 2); // only the concurrent addition
//! assert_eq!(eu_cart.quantity(&"pen"), 1);
//! ```

use core::fmt::Debug;
use std::borrow::Borrow;

use crate::causal_state::{Causal, CausalCrdt};
use crate::codec::{serde_via_wire, Budget, Canonical};
use crate::counter::causal_counter::store_value;
use crate::counter::CausalCounter;
use crate::error::{DecodeError, OverflowError};
use crate::lattice::{Decompose, Lattice};
use crate::map::OrMap;
use crate::replica::ReplicaId;

/// A shopping cart: item → quantity, with add-wins, no-resurrection merges.
pub struct ShoppingCart<Item>(OrMap<Item, CausalCounter>);

impl<Item: Clone> Clone for ShoppingCart<Item> {
    fn clone(&self) -> Self {
        ShoppingCart(self.0.clone())
    }
}

impl<Item: PartialEq> PartialEq for ShoppingCart<Item> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<Item: Debug> Debug for ShoppingCart<Item> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ShoppingCart").field(&self.0).finish()
    }
}

impl<Item: Eq> Eq for ShoppingCart<Item> {}

impl<Item> Default for ShoppingCart<Item> {
    fn default() -> Self {
        ShoppingCart(OrMap::default())
    }
}

impl<Item> ShoppingCart<Item>
where
    Item: Clone + Ord + Debug,
{
    /// The empty cart.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `qty` of `item` at `replica`; returns the delta.
    ///
    /// Fails with [`OverflowError::Counter`] (changing nothing) if the
    /// quantity would exceed `i64::MAX`.
    #[must_use = "the delta is what other replicas need"]
    pub fn add(&mut self, replica: ReplicaId, item: Item, qty: u64) -> Result<Self, OverflowError> {
        let qty = i64::try_from(qty).map_err(|_| OverflowError::Counter)?;
        self.0
            .try_update(item, |c| c.add(replica, qty))
            .map(ShoppingCart)
    }

    /// Sets the quantity of `item` (0 removes it); returns the delta.
    /// Additions made concurrently elsewhere still add to it.
    #[must_use = "the delta is what other replicas need"]
    pub fn set_quantity(
        &mut self,
        replica: ReplicaId,
        item: Item,
        qty: u64,
    ) -> Result<Self, OverflowError> {
        if qty == 0 {
            return Ok(self.remove_item(&item));
        }
        let qty = i64::try_from(qty).map_err(|_| OverflowError::Counter)?;
        self.0
            .try_update(item, |c| c.set(replica, qty))
            .map(ShoppingCart)
    }

    /// Removes `item` (any borrowed form of it); returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn remove_item<Q>(&mut self, item: &Q) -> Self
    where
        Item: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        ShoppingCart(self.0.remove(item))
    }

    /// Empties the cart; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn clear(&mut self) -> Self {
        ShoppingCart(self.0.clear())
    }

    /// The quantity of `item` (0 if absent), looked up by any borrowed
    /// form of it.
    ///
    /// ```
    /// use accordant::{ReplicaId, ShoppingCart};
    /// let mut cart: ShoppingCart<String> = ShoppingCart::new();
    /// let _ = cart.add(ReplicaId::from_u128(1), "apple".to_string(), 3).unwrap();
    /// assert_eq!(cart.quantity("apple"), 3);
    /// assert_eq!(cart.quantity("pear"), 0);
    /// ```
    pub fn quantity<Q>(&self, item: &Q) -> u64
    where
        Item: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0
            .get(item)
            .map_or(0, |s| u64::try_from(store_value(s)).unwrap_or(0))
    }

    /// `(item, quantity)` in item order, for items with a positive quantity.
    pub fn items(&self) -> impl Iterator<Item = (&Item, u64)> {
        self.0
            .iter()
            .map(|(i, s)| (i, u64::try_from(store_value(s)).unwrap_or(0)))
            .filter(|(_, q)| *q > 0)
    }

    /// Number of distinct items.
    pub fn len(&self) -> usize {
        self.items().count()
    }

    /// Whether the cart is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The underlying map.
    pub fn as_map(&self) -> &OrMap<Item, CausalCounter> {
        &self.0
    }
}

impl<Item> Lattice for ShoppingCart<Item>
where
    Item: Clone + Ord + Debug,
{
    fn join(&mut self, other: &Self) {
        self.0.join(&other.0);
    }

    fn is_bottom(&self) -> bool {
        self.0.is_bottom()
    }
}

impl<Item> Decompose for ShoppingCart<Item>
where
    Item: Clone + Ord + Debug,
{
    fn decompose(&self) -> Vec<Self> {
        self.0.decompose().into_iter().map(ShoppingCart).collect()
    }

    fn delta(&self, other: &Self) -> Self {
        ShoppingCart(self.0.delta(&other.0))
    }
}

impl<Item> Canonical for ShoppingCart<Item>
where
    Item: Clone + Ord + Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    type Wire = <OrMap<Item, CausalCounter> as Canonical>::Wire;

    fn to_wire(&self) -> Self::Wire {
        self.0.to_wire()
    }

    fn serialize_wire<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_wire(s)
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        OrMap::from_wire(wire, budget).map(ShoppingCart)
    }
}

serde_via_wire!([Item] ShoppingCart<Item>);

impl<'a, Item> IntoIterator for &'a ShoppingCart<Item>
where
    Item: Clone + Ord + Debug,
{
    type Item = (&'a Item, u64);
    type IntoIter = Box<dyn Iterator<Item = (&'a Item, u64)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.items())
    }
}

impl<Item> CausalCrdt for ShoppingCart<Item>
where
    Item: Clone + Ord + Debug,
{
    type Store = <OrMap<Item, CausalCounter> as CausalCrdt>::Store;

    fn from_causal(state: Causal<Self::Store>) -> Self {
        ShoppingCart(OrMap::from_causal(state))
    }

    fn as_causal(&self) -> &Causal<Self::Store> {
        self.0.as_causal()
    }

    fn into_causal(self) -> Causal<Self::Store> {
        self.0.into_causal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn removed_item_without_concurrent_add_never_returns() {
        let mut eu = ShoppingCart::new();
        let add = eu.add(r(1), "book", 3).unwrap();
        let mut us = ShoppingCart::new();
        us.join(&add);
        let rm = us.remove_item(&"book");
        // EU hears about the removal, then an old copy of the add arrives again.
        eu.join(&rm);
        eu.join(&add);
        us.join(&add);
        assert_eq!(eu.quantity(&"book"), 0);
        assert_eq!(us.quantity(&"book"), 0);
        assert!(eu.is_empty());
    }

    #[test]
    fn set_quantity_with_concurrent_add() {
        let mut a = ShoppingCart::new();
        let _ = a.add(r(1), 7u32, 1).unwrap();
        let _ = a.add(r(1), 7u32, 1).unwrap();
        let mut b = a.clone();
        let ds = a.set_quantity(r(1), 7, 5).unwrap();
        let db = b.add(r(2), 7, 1).unwrap();
        a.join(&db);
        b.join(&ds);
        assert_eq!(a, b);
        assert_eq!(a.quantity(&7), 6);
        assert_eq!(a.items().collect::<Vec<_>>(), vec![(&7, 6)]);
    }

    #[test]
    fn quantity_overflow_is_refused() {
        let mut a = ShoppingCart::new();
        assert_eq!(a.add(r(1), 1u8, u64::MAX), Err(OverflowError::Counter));
        let _ = a.add(r(1), 1u8, i64::MAX as u64).unwrap();
        let before = a.clone();
        assert_eq!(a.add(r(1), 1u8, 1), Err(OverflowError::Counter));
        assert_eq!(a, before);
    }
}
