//! The first coded symbols of a replica's own items and its estimator,
//! kept up to date as items come and go, so that a session copies them
//! instead of coding every item.
//!
//! An item is added to about `2 ln(m)` of the first `m` symbols (see the
//! [parent module](super)), so keeping `m` symbols costs that many XORs per
//! insert or removal, plus sixteen counter updates; a changed value is a
//! removal and an insert. The digest tree owns one and feeds it every
//! item it adds or removes; its length follows the tree's depth
//! ([`Maintained::len_for_depth`]): a store of a million keys keeps 16,384
//! symbols (256 KiB, enough to name about 11,000 items of difference at
//! once), a store of a hundred thousand 8,192, and a small one a handful
//! (coding its few items on demand costs little).
//!
//! ```
//! use accordant_sync::sketch::{code, ItemId, Maintained};
//! let mut m = Maintained::with_len(64);
//! let items: Vec<ItemId> = (1..=100u64).map(|i| ItemId(i << 20 | i)).collect();
//! for &id in &items {
//!     m.add(id);
//! }
//! m.remove(items[3]);
//! let rest: Vec<ItemId> = items.iter().copied().filter(|&id| id != items[3]).collect();
//! assert_eq!(m.symbols(), &code(rest, 0..64)[..]);
//! ```

use super::{Estimator, ItemId, Symbol};

/// The most symbols kept, whatever the depth.
pub const MAX_KEPT: usize = 16_384;

/// A replica's first coded symbols and its estimator, maintained per item
/// so that a session copies them instead of coding every item.
///
/// An item is added to about `2 ln(m)` of the first `m` symbols, so keeping
/// `m` symbols costs that many XORs per insert or removal, plus sixteen
/// counter updates; a changed value is a removal and an insert. The digest
/// tree owns one and feeds it every item it adds or removes; its length
/// follows the tree's depth ([`len_for_depth`](Self::len_for_depth)).
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Maintained {
    symbols: Vec<Symbol>,
    estimator: Estimator,
}

impl Maintained {
    /// Nothing kept yet, for `len` symbols.
    #[must_use]
    pub fn with_len(len: usize) -> Self {
        Maintained {
            symbols: vec![Symbol::default(); len],
            estimator: Estimator::default(),
        }
    }

    /// Symbols worth keeping for a digest tree of depth `depth` (16 bytes
    /// each in memory): none for a root alone (at most 128 items), 128 at
    /// depth 1 (up to 2,048 items), 2,048 at depth 2 (up to 32,768 items:
    /// 32 KiB), 8,192 at depth 3 (up to 524,288 items: 128 KiB, 1.3 bytes
    /// per item at 10^5) and [`MAX_KEPT`] beyond (256 KiB, a quarter of a
    /// byte per item at 10^6). With the session's margin these name about
    /// 40, 500, 2,000 and 4,000 changed keys without coding any item
    /// during the session: a hundredth of the keys and more.
    #[must_use]
    pub fn len_for_depth(depth: u8) -> usize {
        match depth {
            0 => 0,
            1 => 128,
            2 => 2048,
            3 => MAX_KEPT / 2,
            _ => MAX_KEPT,
        }
    }

    /// Adds an item.
    pub fn add(&mut self, id: ItemId) {
        self.estimator.add(id);
        self.toggle(id, 1);
    }

    /// Removes an item added before.
    pub fn remove(&mut self, id: ItemId) {
        self.estimator.remove(id);
        self.toggle(id, u8::MAX);
    }

    /// Replaces `old`, added before, with `new` (a key whose value
    /// changed): the same symbols and estimator as `remove(old)` then
    /// `add(new)`, with one pass over the estimator.
    pub fn replace(&mut self, old: ItemId, new: ItemId) {
        self.estimator.replace(old, new);
        self.toggle(old, u8::MAX);
        self.toggle(new, 1);
    }

    /// Adds (`sign` 1) or removes (`sign` 255) `id` in every kept symbol
    /// it belongs to: its check hash drawn once, its indices stepped in
    /// line and not past the last kept symbol.
    fn toggle(&mut self, id: ItemId, sign: u8) {
        let n = self.symbols.len() as u64;
        if n == 0 {
            return;
        }
        let check = id.check();
        let mut at = id.indices();
        while at.next < n {
            // Below n, the length: in bounds, and it fits a usize.
            if let Some(s) = self.symbols.get_mut(at.next as usize) {
                s.toggle(id, check, sign);
            }
            at.advance_below(n);
        }
    }

    /// Starts again empty with `len` symbols (before re-adding every item).
    pub fn reset(&mut self, len: usize) {
        self.symbols.clear();
        self.symbols.resize(len, Symbol::default());
        self.estimator = Estimator::default();
    }

    /// The symbols kept: the first `len` of the coded sequence.
    #[must_use]
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The estimator of every item.
    #[must_use]
    pub fn estimator(&self) -> &Estimator {
        &self.estimator
    }

    /// The bytes this owns on the heap.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.symbols.capacity() * core::mem::size_of::<Symbol>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ids;
    use super::super::{code, Symbol};
    use super::*;

    #[test]
    fn kept_symbols_equal_a_fresh_coding() {
        let items = ids(3, 3000);
        let mut m = Maintained::with_len(256);
        for &id in &items {
            m.add(id);
        }
        for &id in &items[..1000] {
            m.remove(id);
        }
        assert_eq!(
            m.symbols(),
            &code(items[1000..].iter().copied(), 0..256)[..]
        );
        let mut fresh = Estimator::default();
        items[1000..].iter().for_each(|&id| fresh.add(id));
        assert_eq!(m.estimator(), &fresh);
    }

    /// The straightforward computation: every live item coded afresh.
    fn fresh(live: &[ItemId], len: usize) -> (Vec<Symbol>, Estimator) {
        let mut e = Estimator::default();
        live.iter().for_each(|&id| e.add(id));
        (code(live.iter().copied(), 0..len as u64), e)
    }

    #[test]
    fn random_histories_keep_what_a_fresh_coding_gives() {
        // Lengths at, around and between the segment ends, and the
        // lengths the tree keeps.
        let lens = [
            0usize, 1, 2, 127, 128, 129, 300, 2047, 2048, 2049, 8192, 9000, MAX_KEPT,
        ];
        for (seed, &len) in (1u64..).zip(lens.iter()) {
            let pool = ids(seed, 600);
            let mut state = seed;
            let mut draw = |n: usize| {
                state = super::super::mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
                (state % n as u64) as usize
            };
            let (mut m, mut live) = (Maintained::with_len(len), Vec::new());
            let mut next = 0;
            for step in 0..1500 {
                match draw(4) {
                    0 | 1 if next < pool.len() => {
                        m.add(pool[next]);
                        live.push(pool[next]);
                        next += 1;
                    }
                    2 if !live.is_empty() => {
                        let gone = live.swap_remove(draw(live.len()));
                        m.remove(gone);
                    }
                    _ if !live.is_empty() && next < pool.len() => {
                        let at = draw(live.len());
                        m.replace(live[at], pool[next]);
                        live[at] = pool[next];
                        next += 1;
                    }
                    _ => {}
                }
                if step % 250 == 0 || step == 1499 {
                    let (symbols, estimator) = fresh(&live, len);
                    assert_eq!(m.symbols(), &symbols[..], "len {len}, step {step}");
                    assert_eq!(m.estimator(), &estimator, "len {len}, step {step}");
                }
            }
        }
    }

    #[test]
    fn bounded_steps_give_the_indices_below_the_end() {
        for (k, id) in ids(9, 2000).into_iter().enumerate() {
            let end = [1u64, 5, 128, 129, 2048, 5000, 8192, 16_384, 70_000][k % 9];
            let want: Vec<u64> = id.indices().take_while(|&i| i < end).collect();
            let mut got = Vec::new();
            let mut at = id.indices();
            while at.next < end {
                got.push(at.next);
                at.advance_below(end);
            }
            assert_eq!(got, want, "end {end}");
        }
    }

    #[test]
    fn lengths_follow_depth() {
        assert_eq!(Maintained::len_for_depth(0), 0);
        assert_eq!(Maintained::len_for_depth(1), 128);
        assert_eq!(Maintained::len_for_depth(2), 2048);
        assert_eq!(Maintained::len_for_depth(3), MAX_KEPT / 2);
        assert_eq!(Maintained::len_for_depth(4), MAX_KEPT);
        assert_eq!(Maintained::len_for_depth(8), MAX_KEPT);
        assert_eq!(Maintained::with_len(8192).heap_bytes(), 8192 * 16);
    }
}
