//! Invertible Bloom lookup tables over a node's items: the set difference
//! of two replicas' items under a node in one message, with no round trip
//! spent descending the tree.
//!
//! An IBLT (Goodrich and Mitzenmacher, "Invertible Bloom Lookup Tables",
//! 2011) is an array of cells; every item is added to [`HASHES`] cells, one
//! in each quarter of the array, and a cell keeps the count of its items and
//! the XOR of their fields. Eppstein, Goodrich, Uyeda and Varghese ("What's
//! the Difference? Efficient Set Reconciliation without Prior Context",
//! SIGCOMM 2011) use it for reconciliation: one side sends its table, the
//! other removes its own items from it, and what is left is the symmetric
//! difference alone, whatever the sizes of the sets. It is read back by
//! *peeling*: a cell that holds exactly one item (count ±1 and a check field
//! that matches the item) gives that item; removing it from its other cells
//! may make them pure in turn. With about 1.5 cells per item of difference
//! (more for very small differences) peeling succeeds with high
//! probability; when it does not, the session falls back to descending the
//! tree under that node, so a failure costs round trips, never correctness.
//!
//! The items are the ones of the session's key lists: the 32 bits of key
//! hash below the node's prefix, and an item fingerprint (24 bits here). A
//! cell is 10 bytes on the wire: a wrapping 8-bit count, the XOR of the key
//! bits (4 bytes), of the fingerprints (3 bytes) and of a 16-bit check hash
//! of each item.
//!
//! ```
//! use accordant_sync::sketch::Sketch;
//! let mut mine = Sketch::with_cells(12);
//! for k in 0..1000u32 {
//!     mine.insert(k, k.wrapping_mul(7) & 0xff_ffff);
//! }
//! mine.insert(5000, 1); // only here
//! // The peer removes its own items: 0..1000, plus one we lack.
//! let mut diff = Sketch::from_bytes(&mine.to_bytes()).unwrap();
//! for k in 0..1000u32 {
//!     diff.remove(k, k.wrapping_mul(7) & 0xff_ffff);
//! }
//! diff.remove(6000, 2);
//! let d = diff.decode().unwrap();
//! assert_eq!(d.senders, vec![(5000, 1)]);
//! assert_eq!(d.receivers, vec![(6000, 2)]);
//! ```

use crate::error::SyncError;

/// Cells each item is added to (one per quarter of the table).
pub const HASHES: usize = 4;

/// Bytes of one cell on the wire.
pub const CELL_BYTES: usize = 10;

/// Fingerprint bits kept per item.
pub const FP_BITS: u32 = 24;

/// Largest table accepted from a peer, in cells.
pub const MAX_CELLS: usize = 4 << 16;

const FP_MASK: u32 = (1 << FP_BITS) - 1;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cell {
    count: i8,
    key: u32,
    fp: u32,
    check: u16,
}

impl Cell {
    fn is_zero(&self) -> bool {
        *self == Cell::default()
    }
}

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash of a 64-bit word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn word(key: u32, fp: u32) -> u64 {
    (u64::from(key) << 32) | u64::from(fp & FP_MASK)
}

fn check_of(key: u32, fp: u32) -> u16 {
    (mix(word(key, fp) ^ 0x5bd1_e995_c0ff_ee00) >> 48) as u16
}

/// The symmetric difference read back from a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Difference {
    /// Items only the table's sender holds: `(key bits, fingerprint)`,
    /// sorted.
    pub senders: Vec<(u32, u32)>,
    /// Items only the receiver (who removed its own) holds, sorted.
    pub receivers: Vec<(u32, u32)>,
}

/// An invertible Bloom lookup table of `(key bits, item fingerprint)`
/// items. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch {
    cells: Vec<Cell>,
}

impl Sketch {
    /// An empty table of `cells` cells, rounded up to a multiple of
    /// [`HASHES`] and clamped to `HASHES..=MAX_CELLS`.
    pub fn with_cells(cells: usize) -> Self {
        let n = cells.clamp(HASHES, MAX_CELLS).div_ceil(HASHES) * HASHES;
        Sketch {
            cells: vec![Cell::default(); n],
        }
    }

    /// Cells to give a table expected to hold a difference of about
    /// `items` items (a Poisson-like count): enough that peeling fails
    /// rarely (about 1% or less; see the tests).
    pub fn cells_for(items: f64) -> usize {
        let e = if items.is_finite() {
            items.max(0.0)
        } else {
            0.0
        };
        let hi = e + 2.5 * e.sqrt() + 4.0;
        (hi * 1.5 + 8.0).ceil() as usize
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the table has no cell (never: at least [`HASHES`]).
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Bytes of the table on the wire.
    pub fn wire_len(&self) -> usize {
        self.cells.len() * CELL_BYTES
    }

    fn positions(&self, key: u32, fp: u32) -> [usize; HASHES] {
        let part = (self.cells.len() / HASHES) as u64;
        let w = word(key, fp);
        let mut out = [0; HASHES];
        for (i, p) in out.iter_mut().enumerate() {
            let h = mix(w.wrapping_add((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            // Multiply-shift maps h uniformly onto 0..part without division.
            let r = ((u128::from(h) * u128::from(part)) >> 64) as usize;
            *p = i * part as usize + r;
        }
        out
    }

    fn toggle(&mut self, key: u32, fp: u32, delta: i8) {
        let fp = fp & FP_MASK;
        let check = check_of(key, fp);
        for p in self.positions(key, fp) {
            let c = &mut self.cells[p];
            c.count = c.count.wrapping_add(delta);
            c.key ^= key;
            c.fp ^= fp;
            c.check ^= check;
        }
    }

    /// Adds an item (the fingerprint is truncated to [`FP_BITS`]).
    pub fn insert(&mut self, key: u32, fp: u32) {
        self.toggle(key, fp, 1);
    }

    /// Removes an item (one this table may not hold: that is how a receiver
    /// subtracts its own set).
    pub fn remove(&mut self, key: u32, fp: u32) {
        self.toggle(key, fp, -1);
    }

    /// The wire form: [`CELL_BYTES`] per cell.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        for c in &self.cells {
            out.push(c.count as u8);
            out.extend_from_slice(&c.key.to_be_bytes());
            out.extend_from_slice(&c.fp.to_be_bytes()[1..]);
            out.extend_from_slice(&c.check.to_be_bytes());
        }
        out
    }

    /// Reads a table from untrusted bytes: a whole number of cells, a
    /// multiple of [`HASHES`] of them, at most [`MAX_CELLS`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SyncError> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(CELL_BYTES) {
            return Err(SyncError::Malformed("sketch length"));
        }
        let n = bytes.len() / CELL_BYTES;
        if !n.is_multiple_of(HASHES) || n > MAX_CELLS {
            return Err(SyncError::Malformed("sketch cell count"));
        }
        let cells = bytes
            .chunks_exact(CELL_BYTES)
            .map(|b| Cell {
                count: b[0] as i8,
                key: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
                fp: u32::from_be_bytes([0, b[5], b[6], b[7]]),
                check: u16::from_be_bytes([b[8], b[9]]),
            })
            .collect();
        Ok(Sketch { cells })
    }

    /// Peels the table. `Some` when every cell emptied: the difference, in
    /// full. `None` when peeling stalled (too small a table for the
    /// difference, or a table that is not a sum of items). Work is bounded
    /// by the number of cells whatever the table holds.
    pub fn decode(mut self) -> Option<Difference> {
        let mut out = Difference::default();
        let mut queue: Vec<usize> = (0..self.cells.len()).collect();
        // Every peel empties at least the cell it came from; a table of n
        // cells cannot hold more than n items of difference that peel.
        let mut budget = self.cells.len();
        while let Some(i) = queue.pop() {
            let c = self.cells[i];
            if !(c.count == 1 || c.count == -1) || c.check != check_of(c.key, c.fp) {
                continue;
            }
            let at = self.positions(c.key, c.fp);
            if !at.contains(&i) {
                continue;
            }
            if budget == 0 {
                return None;
            }
            budget -= 1;
            if c.count == 1 {
                out.senders.push((c.key, c.fp));
            } else {
                out.receivers.push((c.key, c.fp));
            }
            self.toggle(c.key, c.fp, -c.count);
            queue.extend(at);
        }
        if !self.cells.iter().all(Cell::is_zero) {
            return None;
        }
        out.senders.sort_unstable();
        out.receivers.sort_unstable();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(seed: u64, n: usize) -> Vec<(u32, u32)> {
        (0..n as u64)
            .map(|i| {
                let h = mix(seed.wrapping_mul(1_000_003).wrapping_add(i));
                ((h >> 32) as u32, h as u32 & FP_MASK)
            })
            .collect()
    }

    #[test]
    fn recovers_both_sides_of_a_difference() {
        let common = items(1, 5000);
        let only_a = items(2, 7);
        let only_b = items(3, 5);
        let mut s = Sketch::with_cells(Sketch::cells_for(12.0));
        for &(k, f) in common.iter().chain(&only_a) {
            s.insert(k, f);
        }
        let mut r = Sketch::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(r, s, "the wire form round-trips");
        for &(k, f) in common.iter().chain(&only_b) {
            r.remove(k, f);
        }
        let d = r.decode().expect("decodes");
        let mut a = only_a.clone();
        a.sort_unstable();
        let mut b = only_b.clone();
        b.sort_unstable();
        assert_eq!(d.senders, a);
        assert_eq!(d.receivers, b);
    }

    #[test]
    fn same_key_different_value_shows_on_both_sides() {
        let mut s = Sketch::with_cells(9);
        s.insert(42, 0xaaaaaa);
        s.remove(42, 0xbbbbbb);
        let d = s.decode().unwrap();
        assert_eq!(d.senders, vec![(42, 0xaaaaaa)]);
        assert_eq!(d.receivers, vec![(42, 0xbbbbbb)]);
    }

    #[test]
    fn sized_tables_rarely_fail() {
        // For each expected difference size, draw Poisson-like sizes around
        // it and count peeling failures: the session's fall-back cost.
        for &e in &[1.0f64, 2.0, 4.0, 16.0, 100.0] {
            let trials = 2000u64;
            let mut failed = 0;
            for t in 0..trials {
                // Sizes within two standard deviations of a Poisson count.
                let spread = (4.0 * e.sqrt()).ceil() as u64 + 1;
                let n = ((e - 2.0 * e.sqrt()).max(1.0) as u64 + mix(t) % spread) as usize;
                let mut s = Sketch::with_cells(Sketch::cells_for(e));
                for (k, f) in items(t * 31 + e as u64, n) {
                    s.insert(k, f);
                }
                if s.decode().is_none() {
                    failed += 1;
                }
            }
            eprintln!(
                "e = {e}: {failed} of {trials} failed ({} cells)",
                Sketch::cells_for(e)
            );
            assert!(
                failed * 100 <= trials * 2,
                "e = {e}: {failed} of {trials} failed"
            );
        }
    }

    #[test]
    fn an_overfull_table_fails_cleanly() {
        let mut s = Sketch::with_cells(9);
        for (k, f) in items(9, 200) {
            s.insert(k, f);
        }
        assert_eq!(s.decode(), None);
    }

    #[test]
    fn garbage_is_refused_or_decodes_without_panicking() {
        assert!(Sketch::from_bytes(&[]).is_err());
        assert!(Sketch::from_bytes(&[0; 11]).is_err());
        assert!(
            Sketch::from_bytes(&[0; 30]).is_err(),
            "three cells: not a multiple of 4"
        );
        assert!(Sketch::from_bytes(&vec![0; (MAX_CELLS + 4) * CELL_BYTES]).is_err());
        for seed in 0..200u64 {
            let bytes: Vec<u8> = (0..32 * CELL_BYTES as u64)
                .map(|i| mix(seed * 977 + i) as u8)
                .collect();
            let s = Sketch::from_bytes(&bytes).unwrap();
            let _ = s.decode();
        }
        assert_eq!(Sketch::with_cells(12).decode(), Some(Difference::default()));
    }
}
