//! Tables, plots and the markdown of the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::common::model::Kind;
use crate::common::svg::{self, Axis, Chart, Scale, Series};
use crate::common::{HEADER, PROTOCOL_NAMES};
use crate::{changed, medians, targets, Args, Cell, CellKey, DigestCosts, Run, LINKS};

/// Colours of the protocols, in [`PROTOCOL_NAMES`] order.
const COLORS: [&str; 4] = ["#1f63b4", "#8c8c8c", "#e07b00", "#2a9d3a"];

// ---------------------------------------------------------------------------
// Formatting

/// `1e3`, `1e6`, or the number as is.
pub(crate) fn fmt_n(n: u64) -> String {
    let mut e = 0;
    let mut m = n;
    while m >= 10 && m.is_multiple_of(10) {
        m /= 10;
        e += 1;
    }
    if m == 1 && e >= 3 {
        format!("1e{e}")
    } else {
        group(n)
    }
}

/// `1,234,567`.
pub(crate) fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio such as `1e-3`, `0` or `1`.
pub(crate) fn fmt_ratio(r: f64) -> String {
    if r == 0.0 || r == 1.0 {
        format!("{r}")
    } else {
        let e = r.log10().round() as i32;
        if (10f64.powi(e) - r).abs() < 1e-12 {
            format!("1e{e}")
        } else {
            format!("{r}")
        }
    }
}

/// A ratio: `1.22`, `65.9`, `2,011`.
pub(crate) fn fmt_x(x: f64) -> String {
    if x >= 1000.0 {
        group(x.round() as u64)
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Bytes with three significant digits: `72 B`, `7.27 kB`, `568 MB`.
pub(crate) fn human(b: u64) -> String {
    let (div, unit) = match b {
        0..=999 => return format!("{b} B"),
        1_000..=999_999 => (1e3, "kB"),
        1_000_000..=999_999_999 => (1e6, "MB"),
        _ => (1e9, "GB"),
    };
    let x = b as f64 / div;
    if x >= 99.95 {
        format!("{x:.0} {unit}")
    } else if x >= 9.995 {
        format!("{x:.1} {unit}")
    } else {
        format!("{x:.2} {unit}")
    }
}

pub(crate) fn fmt_time(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

pub(crate) fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.0}")
    }
}

pub(crate) fn sides_name(two: bool) -> &'static str {
    if two {
        "two-sided"
    } else {
        "one-sided"
    }
}

pub(crate) fn kind_title(kind: Kind) -> &'static str {
    match kind {
        Kind::Lww => "256-byte LWW registers",
        Kind::Lww32 => "32-byte LWW registers",
        Kind::Counter => "GCounters (two replicas)",
        Kind::OrSet => "1000-element OR-Sets, one element changed",
    }
}

/// The `(N, D)` cells of a kind and sidedness, in order.
pub(crate) fn cells_of(m: &BTreeMap<CellKey, Cell>, kind: Kind, two: bool) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = m
        .keys()
        .filter(|k| k.0 == kind && k.1 == two)
        .map(|k| (k.2, k.3))
        .collect();
    v.dedup();
    v
}

pub(crate) fn get<'a>(
    m: &'a BTreeMap<CellKey, Cell>,
    kind: Kind,
    two: bool,
    n: u64,
    d: u64,
    protocol: &str,
) -> Option<&'a Cell> {
    let p = PROTOCOL_NAMES.iter().position(|x| *x == protocol)?;
    m.get(&(kind, two, n, d, p))
}

/// Round trips from legs: `2`, or `2½` when the last leg is one way.
pub(crate) fn fmt_rt(legs: u64) -> String {
    if legs.is_multiple_of(2) {
        format!("{}", legs / 2)
    } else {
        format!("{}½", legs / 2)
    }
}

/// The headline table of one kind and sidedness at `n` keys: per protocol,
/// bytes (× the lower bound) · round trips · modelled time on each link.
pub(crate) fn headline_table(m: &BTreeMap<CellKey, Cell>, kind: Kind, two: bool, n: u64) -> String {
    let mut s = String::new();
    let present: Vec<&str> = PROTOCOL_NAMES
        .iter()
        .copied()
        .filter(|p| {
            cells_of(m, kind, two)
                .iter()
                .any(|&(k, d)| k == n && get(m, kind, two, k, d, p).is_some())
        })
        .collect();
    let _ = write!(s, "| D | lower bound |");
    for p in &present {
        let _ = write!(s, " {p} |");
    }
    let _ = writeln!(s, " accordant CPU A / B (ms) |");
    let _ = write!(s, "|---:|---:|");
    for _ in &present {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s, "---:|");
    for (k, d) in cells_of(m, kind, two) {
        if k != n {
            continue;
        }
        let Some(any) = present.iter().find_map(|p| get(m, kind, two, k, d, p)) else {
            continue;
        };
        let _ = write!(s, "| {} | {} |", group(d), human(any.lower_bound));
        for p in &present {
            match get(m, kind, two, k, d, p) {
                Some(c) => {
                    let ratio = if c.lower_bound > 0 {
                        format!(" ({}×)", fmt_x(c.bytes as f64 / c.lower_bound as f64))
                    } else {
                        String::new()
                    };
                    let flag = if c.converged {
                        ""
                    } else {
                        " **not converged**"
                    };
                    let _ = write!(
                        s,
                        " {}{ratio} · {} RT · **{}** / {}{flag} |",
                        human(c.bytes),
                        fmt_rt(c.legs),
                        fmt_time(c.model[0]),
                        fmt_time(c.model[1])
                    );
                }
                None => {
                    let _ = write!(s, " — |");
                }
            }
        }
        match get(m, kind, two, k, d, "accordant") {
            Some(c) => {
                let _ = writeln!(s, " {} / {} |", fmt_ms(c.cpu_a), fmt_ms(c.cpu_b));
            }
            None => {
                let _ = writeln!(s, " — |");
            }
        }
    }
    s
}

/// The full table of one kind and sidedness.
fn full_table(m: &BTreeMap<CellKey, Cell>, kind: Kind, two: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| N | D | protocol | bytes A→B | bytes B→A | × lower bound | messages | round trips | \
         time ({}) | time ({}) | CPU A (ms) | CPU B (ms) | converged |",
        LINKS[0].name, LINKS[1].name
    );
    let _ = writeln!(
        s,
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for (n, d) in cells_of(m, kind, two) {
        let mut first = true;
        for p in PROTOCOL_NAMES {
            let Some(c) = get(m, kind, two, n, d, p) else {
                continue;
            };
            if first {
                let _ = writeln!(
                    s,
                    "| {} | {} | *lower bound* | | | {} | | | | | | | |",
                    fmt_n(n),
                    group(d),
                    group(c.lower_bound)
                );
                first = false;
            }
            let ratio = if c.lower_bound > 0 {
                fmt_x(c.bytes as f64 / c.lower_bound as f64)
            } else {
                "—".into()
            };
            let _ = writeln!(
                s,
                "| | | {p} | {} | {} | {ratio} | {} | {} | {} | {} | {} | {} | {} |",
                group(c.bytes_a_to_b),
                group(c.bytes_b_to_a),
                c.messages,
                fmt_rt(c.legs),
                fmt_time(c.model[0]),
                fmt_time(c.model[1]),
                fmt_ms(c.cpu_a),
                fmt_ms(c.cpu_b),
                if c.converged { "yes" } else { "**no**" }
            );
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Plots

fn color(protocol: &str) -> &'static str {
    PROTOCOL_NAMES
        .iter()
        .position(|p| *p == protocol)
        .map_or("#000", |i| COLORS[i])
}

/// Bytes against D at `n` keys.
fn bytes_chart(m: &BTreeMap<CellKey, Cell>, kind: Kind, two: bool, n: u64) -> Chart {
    let cells: Vec<u64> = cells_of(m, kind, two)
        .into_iter()
        .filter(|c| c.0 == n)
        .map(|c| c.1)
        .collect();
    let mut series = Vec::new();
    for p in PROTOCOL_NAMES {
        let points: Vec<(f64, f64)> = cells
            .iter()
            .filter_map(|&d| get(m, kind, two, n, d, p).map(|c| (d as f64, c.bytes as f64)))
            .collect();
        if !points.is_empty() {
            series.push(Series {
                name: p.to_string(),
                color: color(p),
                dashed: false,
                points,
            });
        }
    }
    let bound: Vec<(f64, f64)> = cells
        .iter()
        .filter_map(|&d| {
            PROTOCOL_NAMES
                .iter()
                .find_map(|p| get(m, kind, two, n, d, p))
                .map(|c| (d as f64, c.lower_bound as f64))
        })
        .collect();
    series.push(Series {
        name: "lower bound".into(),
        color: "#000",
        dashed: true,
        points: bound,
    });
    Chart {
        title: format!(
            "Bytes to converge: {}, {}, N = {}",
            kind_title(kind),
            sides_name(two),
            fmt_n(n)
        ),
        subtitle: "both directions, median over seeds; D = 0 is in the tables (log axes)".into(),
        x: Axis {
            label: "D, keys diverged".into(),
            scale: Scale::Log,
            format: svg::si,
        },
        y: Axis {
            label: "bytes on the wire".into(),
            scale: Scale::Log,
            format: svg::bytes,
        },
        series,
    }
}

/// Modelled time on link `link` (an index of [`LINKS`]) against D at `n`
/// keys.
fn time_chart(m: &BTreeMap<CellKey, Cell>, kind: Kind, two: bool, n: u64, link: usize) -> Chart {
    let cells: Vec<u64> = cells_of(m, kind, two)
        .into_iter()
        .filter(|c| c.0 == n)
        .map(|c| c.1)
        .collect();
    let series = PROTOCOL_NAMES
        .iter()
        .filter_map(|p| {
            let points: Vec<(f64, f64)> = cells
                .iter()
                .filter_map(|&d| get(m, kind, two, n, d, p).map(|c| (d as f64, c.model[link])))
                .collect();
            (!points.is_empty()).then(|| Series {
                name: p.to_string(),
                color: color(p),
                dashed: false,
                points,
            })
        })
        .collect();
    Chart {
        title: format!(
            "Modelled time to converge: {}, {}, N = {}",
            kind_title(kind),
            sides_name(two),
            fmt_n(n)
        ),
        subtitle: format!(
            "{}: legs × RTT/2 + bytes / bandwidth + CPU of both sides (log axes)",
            LINKS[link].name
        ),
        x: Axis {
            label: "D, keys diverged".into(),
            scale: Scale::Log,
            format: svg::si,
        },
        y: Axis {
            label: "seconds".into(),
            scale: Scale::Log,
            format: svg::seconds,
        },
        series,
    }
}

/// Round trips against N at the ratio nearest 1e-3.
fn round_trip_chart(
    m: &BTreeMap<CellKey, Cell>,
    kind: Kind,
    two: bool,
    ratio: f64,
) -> Option<Chart> {
    let cells: Vec<(u64, u64)> = cells_of(m, kind, two)
        .into_iter()
        .filter(|&(n, d)| changed(n, ratio) == Some(d))
        .collect();
    if cells.is_empty() {
        return None;
    }
    let series = PROTOCOL_NAMES
        .iter()
        .filter_map(|p| {
            let points: Vec<(f64, f64)> = cells
                .iter()
                .filter_map(|&(n, d)| {
                    get(m, kind, two, n, d, p).map(|c| (n as f64, c.legs as f64 / 2.0))
                })
                .collect();
            (!points.is_empty()).then(|| Series {
                name: p.to_string(),
                color: color(p),
                dashed: false,
                points,
            })
        })
        .collect();
    Some(Chart {
        title: format!(
            "Round trips: {}, {}, D/N = {}",
            kind_title(kind),
            sides_name(two),
            fmt_ratio(ratio)
        ),
        subtitle: "legs / 2 until both sides hold the join (median over seeds)".into(),
        x: Axis {
            label: "N, keys per store".into(),
            scale: Scale::Log,
            format: svg::si,
        },
        y: Axis {
            label: "round trips".into(),
            scale: Scale::Linear,
            format: svg::plain,
        },
        series,
    })
}

// ---------------------------------------------------------------------------
// Writing

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Where the report's numbers come from, said at its top.
pub(crate) struct Header<'a> {
    /// The command that produced the report, and on what machine.
    pub(crate) provenance: &'a str,
    /// Markdown added under the first paragraph (`--note`).
    pub(crate) note: Option<&'a str>,
}

/// Writes the CSVs, the plots and the markdown of `runs`.
pub(crate) fn write_outputs(
    args: &Args,
    runs: &[Run],
    skipped: &[String],
    failures: &[String],
    digest: Option<&DigestCosts>,
    header: &Header<'_>,
) -> Result<(), String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    let m = medians(runs);

    // CSVs.
    let mut csv =
        format!("kind,two_sided,seed,{HEADER},cpu_a_ms,cpu_b_ms,model_ms,model_fast_ms\n");
    for r in runs {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.3},{:.3},{:.1},{:.1}",
            r.kind.name(),
            r.two_sided,
            r.seed,
            r.row.csv(),
            r.row.cpu_a.as_secs_f64() * 1e3,
            r.row.cpu_b.as_secs_f64() * 1e3,
            r.model_time(LINKS[0]) * 1e3,
            r.model_time(LINKS[1]) * 1e3
        );
    }
    write(&args.out.join("results.csv"), &csv)?;
    let mut csv = String::from(
        "kind,two_sided,keys,changed,protocol,value_bytes,bytes_a_to_b,bytes_b_to_a,bytes,\
         messages,legs,lower_bound_bytes,cpu_a_ms,cpu_b_ms,model_ms,model_fast_ms,converged,seeds\n",
    );
    for c in m.values() {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{:.1},{:.1},{},{}",
            c.kind.name(),
            c.two_sided,
            c.keys,
            c.changed,
            c.protocol,
            c.value_bytes,
            c.bytes_a_to_b,
            c.bytes_b_to_a,
            c.bytes,
            c.messages,
            c.legs,
            c.lower_bound,
            c.cpu_a.as_secs_f64() * 1e3,
            c.cpu_b.as_secs_f64() * 1e3,
            c.model[0] * 1e3,
            c.model[1] * 1e3,
            c.converged,
            c.seeds
        );
    }
    write(&args.out.join("medians.csv"), &csv)?;

    // Plots.
    let mut plots: BTreeMap<(Kind, bool), Vec<String>> = BTreeMap::new();
    for &kind in &args.kinds {
        for &two in &args.sides {
            let ns: Vec<u64> = {
                let mut v: Vec<u64> = cells_of(&m, kind, two).iter().map(|c| c.0).collect();
                v.dedup();
                v
            };
            let list = plots.entry((kind, two)).or_default();
            for &n in &ns {
                let name = format!(
                    "bytes-{}-{}-n{}.svg",
                    kind.name(),
                    sides_name(two),
                    fmt_n(n)
                );
                write(
                    &args.out.join(&name),
                    &bytes_chart(&m, kind, two, n).to_svg(),
                )?;
                list.push(name);
            }
            if let Some(&n) = ns.last() {
                for (link, prefix) in [(0, "time"), (1, "time-fast")] {
                    let name = format!(
                        "{prefix}-{}-{}-n{}.svg",
                        kind.name(),
                        sides_name(two),
                        fmt_n(n)
                    );
                    write(
                        &args.out.join(&name),
                        &time_chart(&m, kind, two, n, link).to_svg(),
                    )?;
                    list.push(name);
                }
            }
            let ratio = args
                .ratios
                .iter()
                .copied()
                .filter(|r| *r > 0.0)
                .min_by(|a, b| {
                    let da = (a.log10() + 3.0).abs();
                    let db = (b.log10() + 3.0).abs();
                    da.total_cmp(&db)
                });
            if let Some(chart) = ratio.and_then(|r| round_trip_chart(&m, kind, two, r)) {
                let name = format!("round-trips-{}-{}.svg", kind.name(), sides_name(two));
                write(&args.out.join(&name), &chart.to_svg())?;
                list.push(name);
            }
        }
    }

    let md = markdown(args, &m, &plots, skipped, failures, digest, header);
    write(&args.out.join("report.md"), &md.0)?;
    write(&args.out.join("headline.md"), &md.1)?;
    Ok(())
}

/// The report and its headline table.
fn markdown(
    args: &Args,
    m: &BTreeMap<CellKey, Cell>,
    plots: &BTreeMap<(Kind, bool), Vec<String>>,
    skipped: &[String],
    failures: &[String],
    digest: Option<&DigestCosts>,
    header: &Header<'_>,
) -> (String, String) {
    let Header { provenance, note } = *header;
    let mut md = String::new();
    let _ = writeln!(md, "# accordant: convergence cost report\n");
    let _ = writeln!(
        md,
        "{provenance} Every protocol runs in one process, on its own copy of the same pair of \
         stores; numbers are medians over {} seed(s). Bytes count every message in both \
         directions. See the `convergence` example and `sync/examples/common/` for exactly what \
         each protocol and value model is.\n",
        args.seeds
    );
    if let Some(note) = note {
        let _ = writeln!(md, "{}\n", note.trim_end());
    }
    let _ = writeln!(
        md,
        "Matrix: N ∈ {{{}}}, D/N ∈ {{{}}}, kinds {{{}}}, {{{}}}.\n",
        args.keys
            .iter()
            .map(|n| fmt_n(*n))
            .collect::<Vec<_>>()
            .join(", "),
        args.ratios
            .iter()
            .map(|r| fmt_ratio(*r))
            .collect::<Vec<_>>()
            .join(", "),
        args.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", "),
        args.sides
            .iter()
            .map(|s| sides_name(*s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !failures.is_empty() {
        let _ = writeln!(md, "**Failures:**\n");
        for f in failures {
            let _ = writeln!(md, "- {f}");
        }
        let _ = writeln!(md);
    }

    // Headline: LWW two-sided at the largest N, or whatever came first.
    let head = [(Kind::Lww, true), (Kind::Lww, false)]
        .into_iter()
        .chain(
            args.kinds
                .iter()
                .flat_map(|k| args.sides.iter().map(move |s| (*k, *s))),
        )
        .find(|&(k, s)| !cells_of(m, k, s).is_empty());
    let mut headline = String::new();
    if let Some((kind, two)) = head {
        let n = cells_of(m, kind, two)
            .iter()
            .map(|c| c.0)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            headline,
            "{}, {}, N = {}: total bytes (× the lower bound) · round trips (½: a last message \
             one way) · modelled time to converge at **{}** / {} (legs × RTT/2 + bytes / \
             bandwidth + CPU).\n",
            kind_title(kind),
            sides_name(two),
            fmt_n(n),
            LINKS[0].name,
            LINKS[1].name
        );
        headline.push_str(&headline_table(m, kind, two, n));
        let _ = writeln!(md, "## Headline\n\n{headline}");
        for prefix in ["bytes", "time"] {
            let _ = writeln!(
                md,
                "![{prefix}]({prefix}-{}-{}-n{}.svg)\n",
                kind.name(),
                sides_name(two),
                fmt_n(n)
            );
        }
    }
    md.push_str(&targets::section(m));

    if let Some(dc) = digest {
        digest_table(&mut md, dc);
    }

    let _ = writeln!(md, "## Protocols\n");
    let _ = writeln!(
        md,
        "- **accordant**: the anti-entropy `Session`, protocol 3 (the initiator's root, count \
         and a 24-byte difference estimator; the responder's rateless coded symbols, copied \
         from those its tree keeps, or its item list; the initiator peels the difference and \
         offers values, full values or summaries; the responder answers; the initiator closes \
         with the deltas the answers asked for).\n\
         - **full_state**: each side ships every `(key, value)`; one round trip.\n\
         - **merkle_fixed**: Cassandra-style repair: a binary Merkle tree of depth 15 \
         (32,768 leaves × 32-byte hashes = 1 MiB) sent whole, then every item of every \
         mismatching leaf streamed both ways; three legs (1½ round trips).\n\
         - **negentropy**: the `negentropy` crate 0.5.3 reconciling one 32-byte id per \
         `(key, value)` (a changed key is a delete plus an insert), then one round trip that \
         ships the values found (`A` sends its values, `B` answers with the deltas `A` lacks \
         and the keys asked for).\n\
         - **lower bound**: log2 C(N, D) bits to name the changed keys, plus each changed \
         key's bytes and the encoded minimal deltas both ways.\n"
    );
    let _ = writeln!(
        md,
        "Modelled time = legs × RTT/2 + bytes / bandwidth + the CPU of both sides, on {} and on \
         {}; a leg is a turn one way (a turn in several messages is one leg), and the round \
         trips shown are legs / 2 (`2½`: two round trips and a last message one way). CPU is \
         the protocol's own work per side (A initiates), measured in this process.\n",
        LINKS[0].name, LINKS[1].name
    );
    if !skipped.is_empty() {
        let _ = writeln!(md, "Not run:\n");
        for s in skipped {
            let _ = writeln!(md, "- {s}");
        }
        let _ = writeln!(md);
    }

    for &kind in &args.kinds {
        for &two in &args.sides {
            if cells_of(m, kind, two).is_empty() {
                continue;
            }
            let _ = writeln!(md, "## {}, {}\n", kind_title(kind), sides_name(two));
            if let Some(c) = m.values().find(|c| c.kind == kind && c.two_sided == two) {
                let what = if matches!(kind, Kind::Lww | Kind::Lww32) {
                    "the register's payload"
                } else {
                    "mean encoded size"
                };
                let _ = writeln!(md, "Value size: {} bytes ({what}).\n", group(c.value_bytes));
            }
            md.push_str(&full_table(m, kind, two));
            md.push('\n');
            for p in plots.get(&(kind, two)).into_iter().flatten() {
                let _ = writeln!(md, "![{p}]({p})\n");
            }
        }
    }
    (md, headline)
}

fn digest_table(md: &mut String, dc: &DigestCosts) {
    let _ = writeln!(md, "## Digest maintenance at {} keys\n", fmt_n(dc.keys));
    let _ = writeln!(
        md,
        "A store of {} `GCounter`s (tree depth {}); 10^6 local updates on random keys.\n",
        fmt_n(dc.keys),
        dc.depth
    );
    let _ = writeln!(md, "| measure | value | target |\n|---|---:|---:|");
    let _ = writeln!(
        md,
        "| `Store::update`, all of it (BTreeMap lookup, the increment, digest maintenance) | {:.0} ns | |",
        dc.update_ns
    );
    let _ = writeln!(
        md,
        "| digest maintenance per update (the two rows below) | {:.0} ns | < 1 µs |",
        dc.hash_ns + dc.tree_ns
    );
    let _ = writeln!(
        md,
        "| of which key bytes, value encoding, key hash and item hash | {:.0} ns | |",
        dc.hash_ns
    );
    let _ = writeln!(
        md,
        "| of which the digest tree and its coded symbols (`DigestTree::replace`: one root-to-leaf path, the old item out of the kept symbols and the estimator, the new one in) | {:.1} ns | |",
        dc.tree_ns
    );
    let _ = writeln!(
        md,
        "| building the store, per key | {:.0} ns | |",
        dc.build_ns_per_key
    );
    let _ = writeln!(
        md,
        "| digest memory per key (`Store::digest_bytes`: tree + kept symbols + 8-byte key hash + 16-byte item hash) | {:.1} B | < 16 B |",
        dc.digest_bytes_per_key
    );
    let _ = writeln!(
        md,
        "| of which the tree's nodes and kept symbols | {:.2} B | |",
        dc.tree_bytes_per_key
    );
    let _ = writeln!(
        md,
        "| of which the kept symbols | {:.2} B | |\n",
        dc.coded_bytes_per_key
    );
}
