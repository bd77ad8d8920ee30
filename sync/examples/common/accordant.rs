//! `accordant`: the [`Session`] of `accordant-sync`, driven by a loop like
//! `sync_pair` that delivers every queued message at once; `A` initiates.
//! `messages` counts both directions (chunks included), `legs` is the
//! initiator's
//! [`SessionStats::legs`](accordant_sync::session::SessionStats::legs)
//! (turns in both directions) and `round_trips` those halved, rounded up.
//! CPU is the time spent
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
    /// Hello, InSync and More messages, and the final roots.
    control: u64,
    /// Coded symbols (11 bytes each).
    symbols: u64,
    /// Item lists (8 bytes per id).
    lists: u64,
    /// Ids of items wanted.
    want: u64,
    /// Key bytes of values and summaries.
    keys: u64,
    /// Values and deltas to join.
    values: u64,
    /// Summaries (offered, and in replies).
    summaries: u64,
    /// Number of keys that travelled with a value, delta or summary.
    items: u64,
    /// Everything else: version byte, tags, length prefixes, counts.
    framing: u64,
}

impl Breakdown {
    fn add(&mut self, bytes: &[u8]) {
        let Ok(msg) = message::decode(bytes, &SyncLimits::default()) else {
            self.framing += bytes.len() as u64;
            return;
        };
        let total = bytes.len() as u64;
        let (mut symbols, mut lists, mut want, mut keys, mut values, mut sums, mut control) =
            (0, 0, 0, 0, 0, 0, 0);
        let mut kv = |k: &[u8], v: &[u8], keys: &mut u64, values: &mut u64| {
            *keys += k.len() as u64;
            *values += v.len() as u64;
            self.items += 1;
        };
        let finish = |f: &Option<message::Finish>| if f.is_some() { 33 } else { 0 };
        match &msg {
            Message::Hello(_) | Message::InSync(_) | Message::More(_) => control = total,
            Message::Symbols(s) => symbols = s.symbols.len() as u64,
            Message::Items(i) => lists = i.ids.len() as u64,
            Message::Offer(o) => {
                for e in o.joins.0.iter().chain(&o.fulls.0) {
                    kv(&e.key[..], &e.value[..], &mut keys, &mut values);
                }
                for e in &o.summaries.0 {
                    kv(&e.key[..], &[], &mut keys, &mut values);
                    sums += e.summary.len() as u64;
                }
                want = o.wants.len() as u64;
                control = finish(&o.finish);
            }
            Message::Answer(a) => {
                for e in &a.joins.0 {
                    kv(&e.key[..], &e.value[..], &mut keys, &mut values);
                }
                for d in &a.deltas.0 {
                    values += d.len() as u64;
                }
                for r in &a.replies.0 {
                    values += r.delta.len() as u64;
                    sums += r.summary.as_ref().map_or(0, |s| s.len() as u64);
                }
                control = finish(&a.finish);
            }
            Message::Close(c) => {
                for d in &c.deltas.0 {
                    values += d.len() as u64;
                }
                control = finish(&c.finish);
            }
        }
        self.control += control;
        self.symbols += symbols;
        self.lists += lists;
        self.want += want;
        self.keys += keys;
        self.values += values;
        self.summaries += sums;
        self.framing +=
            total.saturating_sub(control + symbols + lists + want + keys + values + sums);
    }

    fn line(&self, dir: &str) -> String {
        format!(
            "  {dir}: control {} symbols {} lists {} want {} keys {} values {} \
             summaries {} framing {} ({} keys with state)",
            self.control,
            self.symbols,
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
    out.legs = sa.legs();
    out.round_trips = sa.legs().div_ceil(2);
    out.error = error;
    out.notes.push(format!(
        "  legs {}; symbols {}, ids listed {}, extensions {}; verified A {:?} B {:?}; \
         keys with state sent: A {} B {}",
        sa.legs(),
        sa.symbols,
        sa.items_listed,
        sa.extensions,
        sa.verified,
        sb.verified,
        sa.keys_sent,
        sb.keys_sent
    ));
    out.notes.push(down.line("A->B"));
    out.notes.push(up.line("B->A"));
    out
}
