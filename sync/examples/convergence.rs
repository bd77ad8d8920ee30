//! What convergence costs: bytes, messages, round trips and CPU of the
//! accordant anti-entropy session against baselines run in the same
//! process on the same data, next to the information-theoretic lower bound.
//!
//! ```text
//! cargo run --release -p accordant-sync --example convergence -- \
//!     --keys N --changed D [--value-bytes S] [--two-sided] [--seed X] \
//!     [--value-kind lww|lww32|counter|orset] [--set-elems E] \
//!     [--protocols accordant,full_state,merkle_fixed,negentropy] \
//!     [--no-header] [--verbose]
//! ```
//!
//! Builds two stores `A` and `B` of `N` keys (`u64`, `0..N`) holding equal
//! values, diverges `D` of them, then runs every protocol on its own copy of
//! the pair and prints one CSV row per protocol on stdout:
//!
//! ```text
//! protocol,keys,changed,value_bytes,bytes_a_to_b,bytes_b_to_a,messages,round_trips,legs,lower_bound_bytes,cpu_ms,converged
//! ```
//!
//! The `report` example runs a matrix of these cells and draws them.
//!
//! # Protocols
//!
//! Each is one module of `examples/common/`, whose documentation says
//! exactly what it models and how it was tuned:
//!
//! - `accordant`: the `Session` of `accordant-sync` (protocol 3), `A`
//!   initiating, every queued message delivered at once (as `sync_pair`
//!   does). `legs` is the initiator's `SessionStats::legs` (turns in both
//!   directions; a turn sent in several messages is one leg).
//! - `full_state`: each side sends every `(key, value)` it holds, the other
//!   decodes and joins: two messages, one round trip.
//! - `merkle_fixed`: Cassandra-style repair: a fixed binary Merkle tree of
//!   depth 15 (32 768 leaves of 32-byte hashes) sent whole, then every
//!   `(key, value)` of every mismatching leaf streamed both ways: two round
//!   trips.
//! - `negentropy`: the `negentropy` crate (0.5.3) reconciling one item per
//!   `(key, value)` (a changed value is a delete plus an insert), then one
//!   more round trip that ships the values of the keys it found.
//!
//! A protocol is one function of type `Protocol`; list it in
//! `common::protocols` and its name in `common::PROTOCOL_NAMES` and it
//! gets a row.
//!
//! # Columns
//!
//! - `value_bytes`: `S` for `lww`; for `counter` and `orset` (where `S` does
//!   not apply) the mean encoded size of a value of `B` after divergence.
//! - `bytes_a_to_b`, `bytes_b_to_a`: every byte of every message each side
//!   sent (a transport's own length prefixes excluded, alike for all).
//! - `messages`: messages in both directions.
//! - `legs`: one-way trips of the protocol's turns; `round_trips` is them
//!   halved, rounded up (so `merkle_fixed`'s three messages are 3 legs, 2
//!   round trips started; accordant's 5 legs are two round trips and a
//!   last message one way). Modelled times count half a round trip per
//!   leg.
//! - `lower_bound_bytes`: `log2 C(N, D)` bits (rounded up to bytes) to name
//!   the changed keys, plus for each changed key its canonical key bytes once
//!   and the encoded minimal deltas `Δ(a, b)` (what `B` lacks) and
//!   `Δ(b, a)` (what `A` lacks), an empty delta counting 0.
//! - `cpu_ms`: wall time spent inside the protocol's own work, both sides
//!   together (the `report` example shows each side's share); message
//!   delivery, store building and
//!   checking are excluded. What counts as a protocol's own work is in its
//!   module's documentation.
//! - `converged`: both stores' root digests are equal afterwards and equal
//!   to the root of a store built by joining `B`'s state into `A`'s
//!   directly, and the protocol reported no error.
//!
//! # Divergence model
//!
//! Side `A` writes as replica 1, side `B` as replica 2. One-sided (the
//! default), `D` distinct random keys change on `A` only. `--two-sided`: the
//! *same* `D` keys change on both sides, concurrently, the split-brain case
//! of hot keys written in both regions during a partition. What a change is
//! depends on `--value-kind`:
//!
//! - `lww` (default): an `LwwRegister<Vec<u8>>` holding `S` pseudo-random
//!   bytes, written at HLC 1000 ms by replica 1. A change writes `S` new
//!   random bytes at a stamp drawn uniformly from 2000..3000 ms (logical 0).
//!   Two-sided, each side draws its own stamp, so the winner is random per
//!   key (a tie goes to replica 2 by the LWW rule): about half the winners
//!   are on each side, each key's minimal delta is non-empty in exactly one
//!   direction, and the protocol cannot know the direction in advance.
//!   (Equal stamps on both sides would make `B` win every key, a one-way
//!   transfer in disguise; `D/2` disjoint keys per side would make naming
//!   the keys cheaper than the issue's `log2 C(N, D)` floor assumes.) The
//!   lower bound is thus `D` registers plus naming, in both modes. `lww32`
//!   is the same with `S` = 32 (a kind of its own in the report).
//! - `counter`: a `GCounter` with two replicas (1 and 2) at random counts;
//!   a change increments the side's own replica by 1..=100. Two-sided, both
//!   directions of every changed key carry a one-entry delta (counters keep
//!   every increment). Each entry carries a 16-byte replica id, so a value
//!   is about 40 bytes.
//! - `orset`: an `OrSet<u32>` of `E` (`--set-elems`, default 1000) random
//!   elements added by replica 1, the same elements under every key (only
//!   sizes matter here); a change adds one new element at the side's
//!   replica. Two-sided, each side adds its own element, a one-element
//!   delta in each direction. At 1000 elements a value takes about 50 KB of
//!   memory, so `N * E` is capped at 2·10^7.
//!
//! Everything is deterministic from `--seed` (default 1, a `ChaCha8Rng`).
//! `--verbose` prints build times and, for each protocol, notes on stderr:
//! for `accordant` the legs, symbols, extensions and verification, and
//! where the bytes went (control, coded symbols, item lists, wants, keys,
//! values, summaries, framing).
//! Bad arguments exit with status 2 and a message on stderr; a protocol that
//! fails or does not converge still gets its row (`converged` false) and
//! makes the exit status 1.

mod common;

use std::process::ExitCode;
use std::time::Instant;

use common::model::{build_base, diverge, with_model, Kind, Model, ValueSpec, WithModel};
use common::{run_cell, HEADER, PROTOCOL_NAMES};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const USAGE: &str = "\
usage: convergence --keys N --changed D [--value-bytes S] [--two-sided] [--seed X]
                   [--value-kind lww|counter|orset] [--set-elems E]
                   [--protocols NAME[,NAME...]] [--no-header] [--verbose]

  --keys N          keys in each store (N <= 10^8; 1e6 and 1_000_000 work)
  --changed D       keys diverged (D <= N)
  --value-bytes S   bytes of each LWW register's value (lww only; default 256)
  --two-sided       change the same D keys on both sides, concurrently
  --seed X          seed of the ChaCha8 generator (default 1)
  --value-kind K    lww (default), lww32 (32-byte lww), counter (GCounter)
                    or orset (OrSet<u32>)
  --set-elems E     elements of each OR-Set (orset only; default 1000)
  --protocols P     comma-separated subset of: accordant, full_state,
                    merkle_fixed, negentropy
  --no-header       omit the CSV header
  --verbose         build times and per-protocol notes on stderr";

// ---------------------------------------------------------------------------
// Arguments

/// Parsed command line.
#[derive(Debug, Clone)]
struct Args {
    keys: u64,
    changed: u64,
    two_sided: bool,
    seed: u64,
    spec: ValueSpec,
    protocols: Vec<String>,
    header: bool,
    verbose: bool,
}

/// A count: digits with optional `_` separators, or `MeE` such as `1e6`.
pub(crate) fn parse_count(flag: &str, s: &str) -> Result<u64, String> {
    let bad = || format!("{flag}: expected a non-negative integer such as 1000 or 1e6, got {s:?}");
    let t: String = s.chars().filter(|&c| c != '_').collect();
    if t.is_empty() {
        return Err(bad());
    }
    if let Some((m, e)) = t.split_once(['e', 'E']) {
        let m: u64 = m.parse().map_err(|_| bad())?;
        let e: u32 = e.parse().map_err(|_| bad())?;
        10u64
            .checked_pow(e)
            .and_then(|p| m.checked_mul(p))
            .ok_or_else(|| format!("{flag}: {s:?} is too large"))
    } else if t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().map_err(|_| format!("{flag}: {s:?} is too large"))
    } else {
        Err(bad())
    }
}

/// Parses the arguments; `Ok(None)` means `--help`.
fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut keys = None;
    let mut changed = None;
    let mut value_bytes = None;
    let mut set_elems = None;
    let mut two_sided = false;
    let mut seed = 1;
    let mut kind = Kind::Lww;
    let mut protocols: Option<Vec<String>> = None;
    let mut header = true;
    let mut verbose = false;
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            flag.as_str(),
            "--keys"
                | "--changed"
                | "--value-bytes"
                | "--seed"
                | "--value-kind"
                | "--set-elems"
                | "--protocols"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| format!("{flag} needs a value"))?,
            }
        } else if inline.is_some() {
            return Err(format!("{flag} takes no value"));
        } else {
            String::new()
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--keys" => keys = Some(parse_count(&flag, &value)?),
            "--changed" => changed = Some(parse_count(&flag, &value)?),
            "--value-bytes" => value_bytes = Some(parse_count(&flag, &value)?),
            "--set-elems" => set_elems = Some(parse_count(&flag, &value)?),
            "--seed" => seed = parse_count(&flag, &value)?,
            "--two-sided" => two_sided = true,
            "--no-header" => header = false,
            "--verbose" => verbose = true,
            "--value-kind" => {
                kind = Kind::parse(&value).ok_or_else(|| {
                    format!("--value-kind: expected lww, lww32, counter or orset, got {value:?}")
                })?
            }
            "--protocols" => {
                let mut list = Vec::new();
                for name in value.split(',').map(str::trim) {
                    if !PROTOCOL_NAMES.contains(&name) {
                        return Err(format!(
                            "--protocols: unknown protocol {name:?} (known: {})",
                            PROTOCOL_NAMES.join(", ")
                        ));
                    }
                    if !list.iter().any(|n| n == name) {
                        list.push(name.to_string());
                    }
                }
                protocols = Some(list);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let keys = keys.ok_or("--keys is required")?;
    let changed = changed.ok_or("--changed is required")?;
    if keys > 100_000_000 {
        return Err(format!(
            "--keys: {keys} is more than this example handles (10^8)"
        ));
    }
    if changed > keys {
        return Err(format!(
            "--changed: {changed} keys cannot change out of {keys}"
        ));
    }
    if kind != Kind::Lww && value_bytes.is_some() {
        return Err("--value-bytes applies to --value-kind lww only".into());
    }
    if kind != Kind::OrSet && set_elems.is_some() {
        return Err("--set-elems applies to --value-kind orset only".into());
    }
    let value_bytes = value_bytes.unwrap_or(256);
    if value_bytes > 1 << 20 {
        return Err(format!("--value-bytes: {value_bytes} is over 1 MiB"));
    }
    if keys.saturating_mul(value_bytes.max(64)) > 4 << 30 {
        return Err(format!(
            "--keys {keys} with --value-bytes {value_bytes} would need over 4 GiB per store"
        ));
    }
    let set_elems = set_elems.unwrap_or(1000);
    if kind == Kind::OrSet && keys.saturating_mul(set_elems.max(1)) > 20_000_000 {
        return Err(format!(
            "--keys {keys} with --set-elems {set_elems}: over 2*10^7 set elements \
             per store (about 1 GB each); lower one of them"
        ));
    }
    if kind == Kind::OrSet && set_elems > u64::from(u32::MAX / 2) {
        return Err("--set-elems: too many elements for OrSet<u32>".into());
    }
    Ok(Some(Args {
        keys,
        changed,
        two_sided,
        seed,
        spec: ValueSpec {
            kind,
            value_bytes: value_bytes as usize,
            set_elems: set_elems as usize,
        },
        protocols: protocols
            .unwrap_or_else(|| PROTOCOL_NAMES.iter().map(|s| s.to_string()).collect()),
        header,
        verbose,
    }))
}

// ---------------------------------------------------------------------------
// Driver

/// Builds the pair, runs the cell and prints its rows.
struct Cell<'a>(&'a Args);

impl WithModel for Cell<'_> {
    type Out = ExitCode;

    fn run<M: Model>(self, m: &M, rng: &mut ChaCha8Rng) -> ExitCode {
        let args = self.0;
        let t = Instant::now();
        let base = build_base(m, args.keys, rng);
        let pair = diverge(m, &base, args.changed, args.two_sided, rng);
        drop(base);
        let built = t.elapsed();
        let value_bytes = match args.spec.kind {
            Kind::Lww => Some(args.spec.value_bytes as u64),
            Kind::Lww32 => Some(32),
            Kind::Counter | Kind::OrSet => None,
        };
        let (rows, times) = run_cell(pair, args.keys, value_bytes, &args.protocols);
        if args.verbose {
            eprintln!(
                "built {} keys in {built:.2?}; reference root and lower bound in {:.2?}",
                args.keys, times.reference
            );
        }
        if args.header {
            println!("{HEADER}");
        }
        let mut all_converged = true;
        for row in &rows {
            println!("{}", row.csv());
            all_converged &= row.converged;
            if let Some(e) = &row.error {
                eprintln!("{}: {e}", row.protocol);
            }
            if args.verbose {
                let bound = row.lower_bound_bytes;
                eprintln!(
                    "{}: {} bytes, {:.2}x the lower bound of {bound}",
                    row.protocol,
                    row.bytes(),
                    row.bytes() as f64 / bound.max(1) as f64
                );
                for n in &row.notes {
                    eprintln!("{n}");
                }
            }
        }
        if all_converged {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("convergence: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    with_model(&args.spec, &mut rng, Cell(&args))
}
