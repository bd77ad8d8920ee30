//! `accordant`: the [`Session`] of `accordant-sync`, driven by a loop like
//! `sync_pair` that delivers every queued message at once; `A` initiates.
//! `messages` counts both directions, `round_trips` is the initiator's
//! [`SessionStats::round_trips`](accordant_sync::session::SessionStats::round_trips)
//! (turns in both directions, two per round trip). CPU is the time spent
//! inside `Session::initiate`, `Session::respond` and `Session::handle`,
//! per side.

use std::time::Instant;

use accordant_sync::message::{self, Message, SyncLimits};
use accordant_sync::session::{Session, SessionConfig};
use accordant_sync::store::StoreValue;

use super::model::Keyed;
use super::Outcome;

/// Bytes of one direction of an `accordant` session, by what they carry.
#[derive(Debug, Default, Clone, Copy)]
struct Breakdown {
    /// Hello, Done and Verified messages.
    control: u64,
    /// Fingerprint blocks (node ids and 2- to 4-byte fingerprints).
    fingerprints: u64,
    /// IBLTs of the items under differing nodes (node, bitmap, cells).
    sketches: u64,
    /// Key lists (key bits and item fingerprint per key).
    lists: u64,
    /// Key hashes asked for.
    want: u64,
    /// Key bytes of values, deltas and summaries.
    keys: u64,
    /// Values and deltas to join (`joins`, `fulls`, the deltas of `replies`).
    values: u64,
    /// Summaries (of `summaries` and `replies`).
    summaries: u64,
    /// Number of keys that travelled with a value, delta or summary.
    items: u64,
    /// Everything else: version byte, tags, length prefixes, roots in turns.
    framing: u64,
}

impl Breakdown {
    fn add(&mut self, bytes: &[u8]) {
        let Ok(msg) = message::decode(bytes, &SyncLimits::default()) else {
            self.framing += bytes.len() as u64;
            return;
        };
        let total = bytes.len() as u64;
        let Message::Turn(t) = msg else {
            self.control += total;
            return;
        };
        let fps = size(&t.fps);
        let lists = size(&t.lists);
        let sketches = size(&t.sketches);
        let want = size(&t.want);
        let (mut keys, mut values, mut sums) = (0, 0, 0);
        for (k, v) in t.joins.0.iter().chain(&t.fulls.0) {
            keys += k.0.len() as u64;
            values += v.0.len() as u64;
        }
        for (k, s) in &t.summaries.0 {
            keys += k.0.len() as u64;
            sums += s.0.len() as u64;
        }
        for (k, d, s) in &t.replies.0 {
            keys += k.0.len() as u64;
            values += d.0.len() as u64;
            sums += s.0.len() as u64;
        }
        self.items +=
            (t.joins.0.len() + t.fulls.0.len() + t.summaries.0.len() + t.replies.0.len()) as u64;
        self.fingerprints += fps;
        self.sketches += sketches;
        self.lists += lists;
        self.want += want;
        self.keys += keys;
        self.values += values;
        self.summaries += sums;
        self.framing += total.saturating_sub(fps + sketches + lists + want + keys + values + sums);
    }

    fn line(&self, dir: &str) -> String {
        format!(
            "  {dir}: control {} fingerprints {} sketches {} key-lists {} want {} keys {} values {} \
             summaries {} framing {} ({} keys with state)",
            self.control,
            self.fingerprints,
            self.sketches,
            self.lists,
            self.want,
            self.keys,
            self.values,
            self.summaries,
            self.framing,
            self.items
        )
    }
}

/// The postcard size of a message part, for the breakdown.
fn size<T: serde::Serialize>(x: &T) -> u64 {
    postcard::experimental::serialized_size(x).unwrap_or(0) as u64
}

/// The accordant session, `a` initiating, every queued message delivered at
/// once (as `sync_pair` does), timing each session call.
pub(crate) fn run<V: StoreValue>(a: &mut Keyed<V>, b: &mut Keyed<V>) -> Outcome {
    let config = SessionConfig::default();
    let mut out = Outcome::default();
    let (mut down, mut up) = (Breakdown::default(), Breakdown::default());
    let t = Instant::now();
    let mut sa = Session::initiate(a, config);
    out.cpu_a += t.elapsed();
    let t = Instant::now();
    let mut sb = Session::respond(config);
    out.cpu_b += t.elapsed();
    let mut turns = 0u32;
    let error = loop {
        let mut progressed = false;
        let mut failed = None;
        while let Some(m) = sa.poll_transmit() {
            down.add(&m);
            let t = Instant::now();
            let r = sb.handle(b, &m);
            out.cpu_b += t.elapsed();
            progressed = true;
            if let Err(e) = r {
                failed = Some(format!("B failed: {e}"));
                break;
            }
        }
        if failed.is_none() {
            while let Some(m) = sb.poll_transmit() {
                up.add(&m);
                let t = Instant::now();
                let r = sa.handle(a, &m);
                out.cpu_a += t.elapsed();
                progressed = true;
                if let Err(e) = r {
                    failed = Some(format!("A failed: {e}"));
                    break;
                }
            }
        }
        turns += 1;
        if failed.is_some() {
            break failed;
        }
        if sa.is_done() && sb.is_done() {
            break None;
        }
        if !progressed {
            break Some("the session stalled".to_string());
        }
        if turns > 10_000 {
            break Some("the session did not finish in 10 000 exchanges".to_string());
        }
    };
    let (sa, sb) = (sa.stats(), sb.stats());
    out.bytes_a_to_b = sa.bytes_sent;
    out.bytes_b_to_a = sb.bytes_sent;
    out.messages = sa.messages_sent + sb.messages_sent;
    out.round_trips = sa.round_trips();
    out.error = error;
    out.notes.push(format!(
        "  passes {} (A) {} (B); keys with state sent: A {} B {}",
        sa.passes, sb.passes, sa.keys_sent, sb.keys_sent
    ));
    out.notes.push(down.line("A->B"));
    out.notes.push(up.line("B->A"));
    out
}
