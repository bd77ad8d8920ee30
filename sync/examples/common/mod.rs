//! Shared by the `convergence` and `report` examples: the value and
//! divergence models, the lower bound, and the protocols measured side by
//! side, each run in this process on its own copy of the same pair of
//! stores.
//!
//! - [`model`]: what the keys hold, how the two sides diverge, the lower
//!   bound.
//! - [`accordant`], [`full_state`], [`merkle_fixed`], [`negentropy`]: the
//!   protocols, one function each of type [`Protocol`]. Adding one: write
//!   the function, list it in [`protocols`] and its name in
//!   [`PROTOCOL_NAMES`].
//! - [`wire`]: the length-prefixed encodings the baselines ship.
//! - [`svg`]: the chart writer of the report.

// Each example uses its own part of this module.
#![allow(dead_code)]

pub(crate) mod accordant;
pub(crate) mod full_state;
pub(crate) mod merkle_fixed;
pub(crate) mod model;
pub(crate) mod negentropy;
pub(crate) mod svg;
pub(crate) mod wire;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use accordant_sync::store::StoreValue;

use model::{lower_bound, reference_root, Keyed, Pair};

/// What one protocol run cost.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) bytes_a_to_b: u64,
    pub(crate) bytes_b_to_a: u64,
    pub(crate) messages: u64,
    /// Round trips started: `legs` halved, rounded up.
    pub(crate) round_trips: u64,
    /// One-way trips of the protocol's turns (a turn sent in several
    /// messages is one leg): the modelled time counts half a round trip per
    /// leg.
    pub(crate) legs: u64,
    /// Time spent in the protocol's own work on side `A`.
    pub(crate) cpu_a: Duration,
    /// The same on side `B`.
    pub(crate) cpu_b: Duration,
    /// Why the protocol failed, if it did.
    pub(crate) error: Option<String>,
    /// Lines for `--verbose`.
    pub(crate) notes: Vec<String>,
}

/// A protocol: reconciles `a` (the initiator) with `b` in place.
pub(crate) type Protocol<V> = fn(&mut Keyed<V>, &mut Keyed<V>) -> Outcome;

/// Names of the protocols, in row order.
pub(crate) const PROTOCOL_NAMES: &[&str] =
    &["accordant", "full_state", "merkle_fixed", "negentropy"];

/// Every protocol, by name, in the order of [`PROTOCOL_NAMES`].
pub(crate) fn protocols<V: StoreValue>() -> [(&'static str, Protocol<V>); 4] {
    [
        ("accordant", accordant::run::<V>),
        ("full_state", full_state::run::<V>),
        ("merkle_fixed", merkle_fixed::run::<V>),
        ("negentropy", negentropy::run::<V>),
    ]
}

/// The CSV header; one [`Row`] per protocol follows.
pub(crate) const HEADER: &str = "protocol,keys,changed,value_bytes,bytes_a_to_b,bytes_b_to_a,\
                                 messages,round_trips,legs,lower_bound_bytes,cpu_ms,converged";

/// One protocol's result on one cell.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) protocol: &'static str,
    pub(crate) keys: u64,
    pub(crate) changed: u64,
    pub(crate) value_bytes: u64,
    pub(crate) bytes_a_to_b: u64,
    pub(crate) bytes_b_to_a: u64,
    pub(crate) messages: u64,
    pub(crate) round_trips: u64,
    pub(crate) legs: u64,
    pub(crate) lower_bound_bytes: u64,
    pub(crate) cpu_a: Duration,
    pub(crate) cpu_b: Duration,
    pub(crate) converged: bool,
    pub(crate) error: Option<String>,
    pub(crate) notes: Vec<String>,
}

impl Row {
    /// Bytes in both directions.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes_a_to_b + self.bytes_b_to_a
    }

    /// The row as CSV, in the order of [`HEADER`].
    pub(crate) fn csv(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut s = String::new();
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{:.3},{}",
            self.protocol,
            self.keys,
            self.changed,
            self.value_bytes,
            self.bytes_a_to_b,
            self.bytes_b_to_a,
            self.messages,
            self.round_trips,
            self.legs,
            self.lower_bound_bytes,
            ms(self.cpu_a + self.cpu_b),
            self.converged,
        );
        s
    }
}

/// Timings of a cell's setup, for `--verbose`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CellTimes {
    /// Computing the reference root and the lower bound.
    pub(crate) reference: Duration,
}

/// Runs the protocols named in `names` (in [`PROTOCOL_NAMES`] order) on
/// copies of `pair` and checks that each converged to the join of both
/// stores. `value_bytes` goes into the rows as is, or, when `None`, the
/// mean encoded size of `B`'s values.
pub(crate) fn run_cell<V: StoreValue>(
    pair: Pair<V>,
    keys: u64,
    value_bytes: Option<u64>,
    names: &[String],
) -> (Vec<Row>, CellTimes) {
    let Pair { a, b, changed } = pair;
    let value_bytes = value_bytes.unwrap_or_else(|| model::mean_value_bytes(&b));
    let t = Instant::now();
    let want_root = reference_root(&a, &b);
    let bound = lower_bound(&a, &b, keys, &changed);
    let times = CellTimes {
        reference: t.elapsed(),
    };
    let chosen: Vec<_> = protocols::<V>()
        .into_iter()
        .filter(|(name, _)| names.iter().any(|p| p == name))
        .collect();
    let mut rows = Vec::new();
    let mut base = Some((a, b));
    for (i, (name, protocol)) in chosen.iter().enumerate() {
        // The last protocol takes the originals; the others work on copies.
        let (mut a, mut b) = if i + 1 == chosen.len() {
            base.take().unwrap_or_default()
        } else {
            base.clone().unwrap_or_default()
        };
        let out = protocol(&mut a, &mut b);
        let ra = *a.root_digest().as_bytes();
        let rb = *b.root_digest().as_bytes();
        let converged = out.error.is_none() && ra == rb && ra == want_root;
        let error = out
            .error
            .or_else(|| (!converged).then(|| "roots differ after the protocol".to_string()));
        rows.push(Row {
            protocol: name,
            keys,
            changed: changed.len() as u64,
            value_bytes,
            bytes_a_to_b: out.bytes_a_to_b,
            bytes_b_to_a: out.bytes_b_to_a,
            messages: out.messages,
            round_trips: out.round_trips,
            legs: out.legs,
            lower_bound_bytes: bound,
            cpu_a: out.cpu_a,
            cpu_b: out.cpu_b,
            converged,
            error,
            notes: out.notes,
        });
    }
    (rows, times)
}
