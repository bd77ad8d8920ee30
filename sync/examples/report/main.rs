//! The convergence report: runs the `convergence` example's cells over a
//! matrix, takes the median over seeds, and writes a markdown report with
//! tables, plots and a check of the session's targets.
//!
//! ```text
//! cargo run --release -p accordant-sync --example report            # small matrix, a few minutes
//! cargo run --release -p accordant-sync --example report -- --full  # everything (about an hour)
//! ```
//!
//! Writes `target/accordant-report/` (or `$CARGO_TARGET_DIR/accordant-report`,
//! or `--out DIR`):
//!
//! - `report.md`: the headline table (256-byte LWW registers, two-sided, at
//!   the largest `N`), the targets and where they miss, the digest
//!   maintenance costs, then for every value kind and sidedness a table of
//!   every cell (bytes and their ratio to the lower bound, round trips,
//!   modelled times, CPU per side) and its plots;
//! - `headline.md`: the headline table alone, as the README shows it;
//! - `results.csv`: every run (one row per seed and protocol: the
//!   `convergence` columns after `kind,two_sided,seed`, then each side's
//!   CPU, `cpu_a_ms` and `cpu_b_ms`, then `model_ms` and `model_fast_ms`),
//!   which `--from-csv` reads back;
//! - `medians.csv`: the medians per cell and protocol;
//! - `bytes-KIND-SIDES-nN.svg`: total bytes against `D`, one line per
//!   protocol and the lower bound dashed, for each `N`;
//! - `time-KIND-SIDES-nN.svg` and `time-fast-KIND-SIDES-nN.svg`: modelled
//!   time to converge against `D` at the largest `N`, on each link;
//! - `round-trips-KIND-SIDES.svg`: round trips against `N` at `D/N = 10^-3`
//!   (or the nearest ratio run).
//!
//! # The matrix
//!
//! `--full`: `N` in 10^3, 10^4, 10^5, 10^6; `D/N` in 0, 10^-5, 10^-4,
//! 10^-3, 10^-2, 10^-1, 1; value kinds `lww` (256-byte registers), `lww32`
//! (32-byte registers), `counter` (a `GCounter` of two replicas) and
//! `orset` (1000 elements, one element changed); one- and two-sided; seeds
//! 1, 2, 3. By default: `N` in 10^3, 10^4 (`orset` at 10^3 only), `D/N` in
//! 0, 10^-3, 10^-2, 10^-1, 1, seed 1. A cell whose `D = round(N · D/N)` is
//! 0 for a non-zero ratio is skipped (it repeats `D = 0`). `orset` stores
//! are capped at `N · E <= 2 · 10^7` set elements (`N <= 10^4` at 1000
//! elements): a 1000-element OR-Set takes about 50 KB of memory, and two
//! stores, the reference join and one protocol's copies of 10^6 of them
//! would not fit in 24 GB. `--keys`, `--ratios`, `--kinds`, `--sides`,
//! `--seeds` and `--protocols` override parts of either matrix.
//!
//! # Modelled time
//!
//! Time to converge over a link, one way at a time: each leg (a turn from
//! one side to the other, however many messages it takes) costs half the
//! round-trip time, the bytes cost their time on the wire, and each side's
//! CPU is spent in turn, so `legs · RTT / 2 + total bytes / bandwidth + CPU
//! of both sides`. Two links: 100 ms RTT at 100 Mbit/s (between regions)
//! and 20 ms at 1 Gbit/s (nearby regions). A protocol whose last message
//! is one way (`merkle_fixed`'s third message, accordant's closing deltas)
//! is charged half a round trip for it.
//!
//! # Digest maintenance
//!
//! Unless `--no-digest`, the report also builds a store of 10^6 `GCounter`s
//! and measures the time of a local update (`Store::update`: re-encoding
//! the value, hashing the item, updating one root-to-leaf path of the tree
//! and the coded symbols the tree keeps), of the tree update alone
//! (`DigestTree::replace`), and the digest memory per key
//! (`Store::digest_bytes`).
//!
//! # Redrawing and combining runs
//!
//! `--from-csv FILE` runs nothing and renders the runs recorded in an
//! earlier `results.csv`; given several times, it renders the runs of every
//! file, a later file's run replacing an earlier one of the same kind,
//! sidedness, `N`, `D`, seed and protocol (so a matrix run in parts, or
//! cells run again, make one report). `--note FILE` adds the markdown of
//! `FILE` under the report's first paragraph: how the runs were made, on
//! what machine, under what load.

#[path = "../common/mod.rs"]
mod common;
mod cost;
mod render;
mod targets;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use accordant::{GCounter, ReplicaId};
use accordant_sync::digest::{Digest, ItemHash, KeyHash};
use accordant_sync::key::key_bytes;
use common::model::{
    build_base, diverge, with_model, CounterModel, Kind, Model, ValueSpec, WithModel,
};
use common::{run_cell, Row, PROTOCOL_NAMES};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use render::{fmt_n, sides_name, write_outputs, Header};

const USAGE: &str = "\
usage: report [--full] [--keys LIST] [--ratios LIST] [--kinds LIST] [--sides LIST]
              [--seeds K] [--protocols LIST] [--out DIR] [--no-digest]
              [--from-csv FILE]... [--note FILE]

  --full            the whole matrix (N up to 1e6, 7 ratios, 3 seeds; long)
  --keys LIST       N values, e.g. 1e3,1e4
  --ratios LIST     D/N values, e.g. 0,1e-3,1e-2,1
  --kinds LIST      value kinds among lww,lww32,counter,orset
  --sides LIST      one, two or one,two
  --seeds K         seeds 1..=K (median over them)
  --protocols LIST  subset of accordant,full_state,merkle_fixed,negentropy
  --out DIR         output folder (default target/accordant-report)
  --no-digest       skip the digest maintenance measurement
  --from-csv FILE   run nothing: render the runs of an earlier results.csv
                    (repeatable: later files replace the same runs of earlier ones)
  --note FILE       markdown added under the report's first paragraph

usage: report --cost-only MEDIANS_CSV [--price-per-gb USD] [--out DIR]
  prices an earlier report's bytes (cost.md, cost-per-month.svg; see cost.rs)";

/// A modelled link.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// How the report names it.
    name: &'static str,
    /// Round-trip time, seconds.
    rtt: f64,
    /// Bytes per second.
    bandwidth: f64,
}

/// The two links of the modelled times: between regions, and nearby.
const LINKS: [Link; 2] = [
    Link {
        name: "100 ms RTT, 100 Mbit/s",
        rtt: 0.100,
        bandwidth: 100e6 / 8.0,
    },
    Link {
        name: "20 ms RTT, 1 Gbit/s",
        rtt: 0.020,
        bandwidth: 1e9 / 8.0,
    },
];
/// Bytes of each LWW register.
const LWW_BYTES: usize = 256;
/// Elements of each OR-Set.
const SET_ELEMS: usize = 1000;
/// The most OR-Set elements per store.
const ORSET_ELEMS_CAP: u64 = 20_000_000;
/// Keys of the digest maintenance measurement.
const DIGEST_KEYS: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// Arguments

#[derive(Debug, Clone)]
struct Args {
    full: bool,
    keys: Vec<u64>,
    ratios: Vec<f64>,
    kinds: Vec<Kind>,
    sides: Vec<bool>,
    seeds: u64,
    protocols: Vec<String>,
    out: PathBuf,
    digest: bool,
    /// Earlier `results.csv` files to render, in order.
    from_csv: Vec<PathBuf>,
    /// Markdown added under the report's first paragraph.
    note: Option<PathBuf>,
}

/// A count such as `1000`, `1e6` or `1_000`.
fn parse_count(s: &str) -> Result<u64, String> {
    let v: f64 = s
        .replace('_', "")
        .parse()
        .map_err(|_| format!("expected a count such as 1000 or 1e6, got {s:?}"))?;
    if !(1.0..=1e8).contains(&v) || v.fract() != 0.0 {
        return Err(format!("a count from 1 to 1e8, got {s:?}"));
    }
    Ok(v as u64)
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut full = false;
    let mut keys = None;
    let mut ratios = None;
    let mut kinds = None;
    let mut sides = None;
    let mut seeds = None;
    let mut protocols = None;
    let mut out = None;
    let mut digest = true;
    let mut from_csv = Vec::new();
    let mut note = None;
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--full" => full = true,
            "--no-digest" => digest = false,
            "--keys" => {
                keys = Some(
                    value("--keys")?
                        .split(',')
                        .map(parse_count)
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            "--ratios" => {
                let list = value("--ratios")?
                    .split(',')
                    .map(|s| match s.parse::<f64>() {
                        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                        _ => Err(format!("--ratios: a ratio from 0 to 1, got {s:?}")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                ratios = Some(list);
            }
            "--kinds" => {
                let list = value("--kinds")?
                    .split(',')
                    .map(|s| Kind::parse(s).ok_or(format!("--kinds: unknown kind {s:?}")))
                    .collect::<Result<Vec<_>, _>>()?;
                kinds = Some(list);
            }
            "--sides" => {
                let list = value("--sides")?
                    .split(',')
                    .map(|s| match s {
                        "one" => Ok(false),
                        "two" => Ok(true),
                        _ => Err(format!("--sides: one or two, got {s:?}")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                sides = Some(list);
            }
            "--seeds" => {
                let k = parse_count(&value("--seeds")?)?;
                seeds = Some(k.min(100));
            }
            "--protocols" => {
                let v = value("--protocols")?;
                let mut list = Vec::new();
                for name in v.split(',') {
                    if !PROTOCOL_NAMES.contains(&name) {
                        return Err(format!("--protocols: unknown protocol {name:?}"));
                    }
                    list.push(name.to_string());
                }
                protocols = Some(list);
            }
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--from-csv" => from_csv.push(PathBuf::from(value("--from-csv")?)),
            "--note" => note = Some(PathBuf::from(value("--note")?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (dk, dr, ds): (&[u64], &[f64], u64) = if full {
        (
            &[1_000, 10_000, 100_000, 1_000_000],
            &[0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
            3,
        )
    } else {
        (&[1_000, 10_000], &[0.0, 1e-3, 1e-2, 1e-1, 1.0], 1)
    };
    let mut keys = keys.unwrap_or_else(|| dk.to_vec());
    keys.sort_unstable();
    keys.dedup();
    let mut ratios = ratios.unwrap_or_else(|| dr.to_vec());
    ratios.sort_by(f64::total_cmp);
    ratios.dedup();
    let mut kinds =
        kinds.unwrap_or_else(|| vec![Kind::Lww, Kind::Lww32, Kind::Counter, Kind::OrSet]);
    kinds.sort_unstable();
    kinds.dedup();
    let mut sides = sides.unwrap_or_else(|| vec![false, true]);
    sides.sort_unstable();
    sides.dedup();
    let out = out.unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                // The workspace's target folder, beside `sync/`.
                let sync = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
                sync.parent().unwrap_or(sync).join("target")
            });
        target.join("accordant-report")
    });
    Ok(Some(Args {
        full,
        keys,
        ratios,
        kinds,
        sides,
        seeds: seeds.unwrap_or(ds),
        protocols: protocols
            .unwrap_or_else(|| PROTOCOL_NAMES.iter().map(|s| s.to_string()).collect()),
        out,
        digest,
        from_csv,
        note,
    }))
}

/// The value model of `kind` in the report.
fn spec(kind: Kind) -> ValueSpec {
    ValueSpec {
        kind,
        value_bytes: if kind == Kind::Lww32 { 32 } else { LWW_BYTES },
        set_elems: SET_ELEMS,
    }
}

/// Whether the matrix runs `kind` at `n` keys, and why not.
fn skip_reason(args: &Args, kind: Kind, n: u64) -> Option<String> {
    if kind == Kind::OrSet {
        if n.saturating_mul(SET_ELEMS as u64) > ORSET_ELEMS_CAP {
            return Some(format!(
                "orset at N = {}: over {} set elements per store (about 50 KB of memory per \
                 1000-element set; the stores and their copies would not fit in 24 GB)",
                fmt_n(n),
                fmt_n(ORSET_ELEMS_CAP)
            ));
        }
        if !args.full && n > 1_000 {
            return Some(format!(
                "orset at N = {}: left out of the default matrix for time (run --full)",
                fmt_n(n)
            ));
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Running the matrix

/// One protocol run on one cell and seed.
#[derive(Debug, Clone)]
struct Run {
    kind: Kind,
    two_sided: bool,
    seed: u64,
    row: Row,
}

impl Run {
    /// Modelled time to converge over `link`, in seconds.
    fn model_time(&self, link: Link) -> f64 {
        self.row.legs as f64 * link.rtt / 2.0
            + self.row.bytes() as f64 / link.bandwidth
            + (self.row.cpu_a + self.row.cpu_b).as_secs_f64()
    }
}

/// Every cell of one kind, `N` and seed: one base store, diverged per cell.
struct Seeded<'a> {
    args: &'a Args,
    kind: Kind,
    keys: u64,
    seed: u64,
    runs: &'a mut Vec<Run>,
    failures: &'a mut Vec<String>,
}

impl WithModel for Seeded<'_> {
    type Out = ();

    fn run<M: Model>(self, m: &M, rng: &mut ChaCha8Rng) {
        let t = Instant::now();
        let base = build_base(m, self.keys, rng);
        eprintln!(
            "  built {} {} keys (seed {}) in {:.1?}",
            fmt_n(self.keys),
            self.kind.name(),
            self.seed,
            t.elapsed()
        );
        let value_bytes = match self.kind {
            Kind::Lww => Some(LWW_BYTES as u64),
            Kind::Lww32 => Some(32),
            Kind::Counter | Kind::OrSet => None,
        };
        for &two_sided in &self.args.sides {
            for &ratio in &self.args.ratios {
                let Some(d) = changed(self.keys, ratio) else {
                    continue;
                };
                let t = Instant::now();
                // A clone of the generator as it left the base: the very
                // cell `convergence --seed X` builds.
                let pair = diverge(m, &base, d, two_sided, &mut rng.clone());
                let (rows, _) = run_cell(pair, self.keys, value_bytes, &self.args.protocols);
                let mut line = format!(
                    "  {} {}-sided N={} D={} seed {}:",
                    self.kind.name(),
                    if two_sided { "two" } else { "one" },
                    fmt_n(self.keys),
                    d,
                    self.seed
                );
                for row in rows {
                    let _ = write!(line, " {} {}", row.protocol, row.bytes());
                    if let Some(e) = &row.error {
                        self.failures.push(format!("{line}: {}: {e}", row.protocol));
                    }
                    self.runs.push(Run {
                        kind: self.kind,
                        two_sided,
                        seed: self.seed,
                        row: Row {
                            notes: Vec::new(),
                            ..row
                        },
                    });
                }
                eprintln!("{line} ({:.1?})", t.elapsed());
            }
        }
    }
}

/// `D` for `N` and a ratio, or `None` when a non-zero ratio rounds to 0.
fn changed(n: u64, ratio: f64) -> Option<u64> {
    let d = (n as f64 * ratio).round() as u64;
    (ratio == 0.0 || d > 0).then_some(d.min(n))
}

// ---------------------------------------------------------------------------
// Medians

/// Medians of one protocol on one cell over the seeds.
#[derive(Debug, Clone)]
struct Cell {
    protocol: &'static str,
    kind: Kind,
    two_sided: bool,
    keys: u64,
    changed: u64,
    value_bytes: u64,
    bytes_a_to_b: u64,
    bytes_b_to_a: u64,
    bytes: u64,
    messages: u64,
    /// Legs (one-way turns): round trips are half of them.
    legs: u64,
    lower_bound: u64,
    cpu_a: Duration,
    cpu_b: Duration,
    /// Modelled time on each of [`LINKS`], seconds.
    model: [f64; 2],
    converged: bool,
    seeds: usize,
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Cell key: kind, sidedness, N, D, protocol index.
type CellKey = (Kind, bool, u64, u64, usize);

fn medians(runs: &[Run]) -> BTreeMap<CellKey, Cell> {
    let mut groups: BTreeMap<CellKey, Vec<&Run>> = BTreeMap::new();
    for r in runs {
        let p = PROTOCOL_NAMES
            .iter()
            .position(|n| *n == r.row.protocol)
            .unwrap_or(0);
        groups
            .entry((r.kind, r.two_sided, r.row.keys, r.row.changed, p))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|(key, g)| {
            let m = |f: fn(&Run) -> u64| median(g.iter().map(|r| f(r)).collect());
            let first = g[0];
            let cell = Cell {
                protocol: first.row.protocol,
                kind: first.kind,
                two_sided: first.two_sided,
                keys: first.row.keys,
                changed: first.row.changed,
                value_bytes: m(|r| r.row.value_bytes),
                bytes_a_to_b: m(|r| r.row.bytes_a_to_b),
                bytes_b_to_a: m(|r| r.row.bytes_b_to_a),
                bytes: m(|r| r.row.bytes()),
                messages: m(|r| r.row.messages),
                legs: m(|r| r.row.legs),
                lower_bound: m(|r| r.row.lower_bound_bytes),
                cpu_a: median(g.iter().map(|r| r.row.cpu_a).collect()),
                cpu_b: median(g.iter().map(|r| r.row.cpu_b).collect()),
                model: LINKS.map(|l| median(g.iter().map(|r| r.model_time(l)).collect())),
                converged: g.iter().all(|r| r.row.converged),
                seeds: g.len(),
            };
            (key, cell)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Digest maintenance

/// What keeping the digest tree costs at `DIGEST_KEYS` keys.
struct DigestCosts {
    keys: u64,
    build_ns_per_key: f64,
    update_ns: f64,
    tree_ns: f64,
    hash_ns: f64,
    digest_bytes_per_key: f64,
    tree_bytes_per_key: f64,
    coded_bytes_per_key: f64,
    depth: u8,
}

fn digest_costs() -> DigestCosts {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let t = Instant::now();
    let mut store = build_base(&CounterModel, DIGEST_KEYS, &mut rng);
    let build = t.elapsed();
    let updates = 1_000_000u64;
    let keys: Vec<u64> = (0..updates)
        .map(|_| rng.random_range(0..DIGEST_KEYS))
        .collect();
    let eu = ReplicaId::from_u128(1);
    let t = Instant::now();
    for &k in &keys {
        let _ = store.update(k, |c: &mut GCounter| c.increment(eu, 1));
    }
    let update = t.elapsed();
    // The tree alone: replace random items on random paths.
    let mut tree = store.tree().clone();
    let paths: Vec<(KeyHash, ItemHash, ItemHash)> = (0..updates)
        .map(|_| {
            (
                KeyHash(rng.random()),
                ItemHash(rng.random()),
                ItemHash(rng.random()),
            )
        })
        .collect();
    let t = Instant::now();
    for &(h, old, new) in &paths {
        tree.replace(h, old, new);
    }
    let tree_time = t.elapsed();
    std::hint::black_box(tree.root());
    // The digest work of an update besides the tree: the key's bytes, the
    // value's canonical encoding, one hash of the key (for both the key
    // hash and the item hash) and the item hash, as `Store::update` does.
    let value = store.get(&0).unwrap_or_default();
    let t = Instant::now();
    let mut acc = 0u128;
    for &k in keys.iter().take(200_000) {
        let kb = key_bytes(&k);
        let kd = Digest::of(&kb);
        let enc = accordant::codec::encode(&value);
        acc = acc.wrapping_add(u128::from(KeyHash::from_digest(&kd).0));
        acc = acc.wrapping_add(ItemHash::of(&kd, &Digest::of(&enc)).0);
    }
    let hash = t.elapsed();
    std::hint::black_box(acc);
    let n = store.len() as f64;
    DigestCosts {
        keys: DIGEST_KEYS,
        build_ns_per_key: build.as_nanos() as f64 / n,
        update_ns: update.as_nanos() as f64 / updates as f64,
        tree_ns: tree_time.as_nanos() as f64 / updates as f64,
        hash_ns: hash.as_nanos() as f64 / 200_000.0,
        digest_bytes_per_key: store.digest_bytes() as f64 / n,
        tree_bytes_per_key: store.tree().heap_bytes() as f64 / n,
        coded_bytes_per_key: store.tree().coded().heap_bytes() as f64 / n,
        depth: store.tree().depth(),
    }
}

/// Reads the runs of earlier `results.csv` files, in order: a run of a
/// later file replaces the run of an earlier one on the same kind,
/// sidedness, `N`, `D`, seed and protocol.
fn load_all(paths: &[PathBuf]) -> Result<Vec<Run>, String> {
    let mut all: BTreeMap<(Kind, bool, u64, u64, u64, &'static str), Run> = BTreeMap::new();
    for path in paths {
        for r in load_runs(path)? {
            let key = (
                r.kind,
                r.two_sided,
                r.row.keys,
                r.row.changed,
                r.seed,
                r.row.protocol,
            );
            all.insert(key, r);
        }
    }
    Ok(all.into_values().collect())
}

/// Reads the runs of an earlier `results.csv`.
fn load_runs(path: &std::path::Path) -> Result<Vec<Run>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or(format!("{}: empty file", path.display()))?
        .split(',')
        .collect();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).ok_or(format!(
            "{}: no column {name} (files written before each side's CPU was recorded, \
             cpu_a_ms and cpu_b_ms, cannot be redrawn)",
            path.display()
        ))
    };
    let idx = [
        "kind",
        "two_sided",
        "seed",
        "protocol",
        "keys",
        "changed",
        "value_bytes",
        "bytes_a_to_b",
        "bytes_b_to_a",
        "messages",
        "round_trips",
        "lower_bound_bytes",
        "converged",
        "cpu_a_ms",
        "cpu_b_ms",
    ]
    .map(col);
    let mut cols = [0usize; 15];
    for (c, i) in cols.iter_mut().zip(idx) {
        *c = i?;
    }
    // Files from before legs were recorded: twice the round trips.
    let legs_col = col("legs").ok();
    let mut runs = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || format!("{}: line {}: malformed", path.display(), n + 2);
        let get = |i: usize| f.get(cols[i]).copied().ok_or_else(bad);
        let num = |i: usize| get(i)?.parse::<u64>().map_err(|_| bad());
        let ms = |i: usize| {
            get(i)?
                .parse::<f64>()
                .map(|v| Duration::from_secs_f64(v.max(0.0) / 1e3))
                .map_err(|_| bad())
        };
        let protocol = PROTOCOL_NAMES
            .iter()
            .copied()
            .find(|p| Ok(*p) == get(3))
            .ok_or_else(bad)?;
        let converged = get(12)? == "true";
        runs.push(Run {
            kind: Kind::parse(get(0)?).ok_or_else(bad)?,
            two_sided: get(1)? == "true",
            seed: num(2)?,
            row: Row {
                protocol,
                keys: num(4)?,
                changed: num(5)?,
                value_bytes: num(6)?,
                bytes_a_to_b: num(7)?,
                bytes_b_to_a: num(8)?,
                messages: num(9)?,
                round_trips: num(10)?,
                legs: match legs_col {
                    Some(c) => f
                        .get(c)
                        .and_then(|x| x.parse::<u64>().ok())
                        .ok_or_else(bad)?,
                    None => 2 * num(10)?,
                },
                lower_bound_bytes: num(11)?,
                cpu_a: ms(13)?,
                cpu_b: ms(14)?,
                converged,
                error: (!converged).then(|| "did not converge".to_string()),
                notes: Vec::new(),
            },
        });
    }
    Ok(runs)
}

fn main() -> ExitCode {
    if let Some(code) = cost::main_if_asked() {
        return code;
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("report: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let cmd = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let invocation = format!(
        "`cargo run --release -p accordant-sync --example report{}{cmd}`",
        if cmd.is_empty() { "" } else { " -- " }
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = args;
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    let note = match &args.note {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                eprintln!("report: reading {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    if !args.from_csv.is_empty() {
        runs = match load_all(&args.from_csv) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("report: {e}");
                return ExitCode::FAILURE;
            }
        };
        // The matrix is what the file holds.
        let set = |f: &dyn Fn(&Run) -> u64| {
            let mut v: Vec<u64> = runs.iter().map(f).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        args.keys = set(&|r| r.row.keys);
        args.seeds = set(&|r| r.seed).len() as u64;
        args.kinds = args
            .kinds
            .iter()
            .copied()
            .filter(|k| runs.iter().any(|r| r.kind == *k))
            .collect();
        args.sides = args
            .sides
            .iter()
            .copied()
            .filter(|s| runs.iter().any(|r| r.two_sided == *s))
            .collect();
        let mut ratios: Vec<f64> = runs
            .iter()
            .map(|r| r.row.changed as f64 / r.row.keys.max(1) as f64)
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs().max(1e-12));
        args.ratios = ratios;
    }
    for &kind in &args.kinds {
        for &n in &args.keys {
            if let Some(why) = skip_reason(&args, kind, n) {
                skipped.push(why);
            }
        }
    }
    if !args.from_csv.is_empty() {
        failures = runs
            .iter()
            .filter(|r| !r.row.converged)
            .map(|r| {
                format!(
                    "{} {} N={} D={} seed {}: {} did not converge",
                    r.kind.name(),
                    sides_name(r.two_sided),
                    r.row.keys,
                    r.row.changed,
                    r.seed,
                    r.row.protocol
                )
            })
            .collect();
    } else {
        for &kind in &args.kinds {
            for &n in &args.keys {
                if let Some(why) = skip_reason(&args, kind, n) {
                    eprintln!("skipping {why}");
                    continue;
                }
                for seed in 1..=args.seeds {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    with_model(
                        &spec(kind),
                        &mut rng,
                        Seeded {
                            args: &args,
                            kind,
                            keys: n,
                            seed,
                            runs: &mut runs,
                            failures: &mut failures,
                        },
                    );
                }
            }
            // Write what is done so far, so that a long --full run leaves
            // results behind even if it is stopped.
            let so_far = format!("Partial results of {invocation} (still running).");
            if let Err(e) = write_outputs(
                &args,
                &runs,
                &skipped,
                &failures,
                None,
                &Header {
                    provenance: &so_far,
                    note: note.as_deref(),
                },
            ) {
                eprintln!("report: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let digest = args.digest.then(|| {
        eprintln!(
            "measuring digest maintenance at {} keys",
            fmt_n(DIGEST_KEYS)
        );
        digest_costs()
    });
    let provenance = if args.from_csv.is_empty() {
        format!(
            "Generated by {invocation} in {:.0} s on a machine with {threads} CPU threads.",
            start.elapsed().as_secs_f64()
        )
    } else {
        format!(
            "Rendered by {invocation} from the runs recorded in {}; the digest measurement \
             (if any) ran now, on a machine with {threads} CPU threads.",
            args.from_csv
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(" and ")
        )
    };
    if let Err(e) = write_outputs(
        &args,
        &runs,
        &skipped,
        &failures,
        digest.as_ref(),
        &Header {
            provenance: &provenance,
            note: note.as_deref(),
        },
    ) {
        eprintln!("report: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "wrote {} in {:.1?}",
        args.out.join("report.md").display(),
        start.elapsed()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} runs failed or did not converge", failures.len());
        ExitCode::FAILURE
    }
}
