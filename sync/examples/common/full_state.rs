//! `full_state`: each side sends every `(key, value)` it holds as one item
//! list (see [`super::wire`]), and the other side decodes and joins it: two
//! messages, one round trip (two legs: the responder's state leaves once the
//! initiator's arrives). CPU per side is encoding its own store plus
//! decoding and joining the peer's.

use std::time::Instant;

use accordant_sync::store::StoreValue;

use super::model::Keyed;
use super::wire::{encode_all, join_all};
use super::Outcome;

/// Full-state exchange: each side sends everything, the other joins it.
pub(crate) fn run<V: StoreValue>(a: &mut Keyed<V>, b: &mut Keyed<V>) -> Outcome {
    let mut out = Outcome {
        messages: 2,
        round_trips: 1,
        legs: 2,
        ..Outcome::default()
    };
    // Both sides send at once, so neither echoes what it just received.
    let t = Instant::now();
    let to_b = encode_all(a);
    out.cpu_a += t.elapsed();
    let t = Instant::now();
    let to_a = encode_all(b);
    let rb = join_all(b, &to_b);
    out.cpu_b += t.elapsed();
    let t = Instant::now();
    let ra = join_all(a, &to_a);
    out.cpu_a += t.elapsed();
    out.bytes_a_to_b = to_b.len() as u64;
    out.bytes_b_to_a = to_a.len() as u64;
    out.error = rb
        .map_err(|e| format!("B: {e}"))
        .and(ra.map_err(|e| format!("A: {e}")))
        .err();
    out
}
