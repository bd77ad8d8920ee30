//! What convergence costs in money: the report's measured bytes priced per
//! GB of cross-region transfer (the seed article's $0.02 by default).
//!
//! ```text
//! cargo run --release -p accordant-sync --example report -- \
//!     --cost-only docs/convergence/medians.csv [--price-per-gb 0.02] [--out docs/convergence]
//! ```
//!
//! Reads the medians of an earlier report (`medians.csv`: bytes both ways
//! per cell and protocol) and writes `cost.md` and `cost-per-month.svg`
//! into `--out` (default: the CSV's folder). It runs nothing.
//!
//! - **Per session, per heal**: one session that converges `D` differing
//!   keys (a heal after a partition in which `D` keys changed) costs its
//!   bytes times the price; the table takes 256-byte LWW registers,
//!   two-sided, at the largest `N` every protocol ran.
//! - **Per month**: writes at `W` per second, replicated by a session
//!   every [`INTERVAL_SECS`] (the node's default anti-entropy interval),
//!   each converging the `D = W · interval` keys written since (at most
//!   `N`): `sessions per month × bytes(N, D) × price`, between one pair of
//!   regions. `bytes(N, D)` is interpolated on the measured `D`
//!   (log-log between measured points, linear from `D = 0` to the first,
//!   proportional to `D` beyond the last). Every protocol is priced under
//!   the same model, so they compare; accordant's delta path, which ships
//!   each write once while linked, is priced separately by the demo.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::common::svg::{self, Axis, Chart, Scale, Series};

/// The seed article's price of cross-region transfer, dollars per GB.
pub(crate) const DEFAULT_PRICE_PER_GB: f64 = 0.02;
/// Seconds between replication sessions in the monthly model.
pub(crate) const INTERVAL_SECS: f64 = 5.0;
/// Seconds in a 30-day month.
const MONTH_SECS: f64 = 30.0 * 24.0 * 3600.0;
/// Write rates of the monthly table and plot, per second.
const RATES: [f64; 7] = [0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];
/// The value kind and sidedness priced.
const KIND: &str = "lww";
const TWO_SIDED: &str = "true";

/// One median: protocol → D → bytes, at one N.
type Medians = BTreeMap<String, BTreeMap<u64, f64>>;

/// Runs `--cost-only` if it is the first argument: `Some(exit code)`.
pub(crate) fn main_if_asked() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("--cost-only") {
        return None;
    }
    Some(match run(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("report --cost-only: {e}");
            ExitCode::from(2)
        }
    })
}

fn run(args: &[String]) -> Result<(), String> {
    let mut it = args.iter();
    let csv = PathBuf::from(it.next().ok_or("--cost-only MEDIANS_CSV")?);
    let mut price = DEFAULT_PRICE_PER_GB;
    let mut out = csv.parent().map_or(PathBuf::from("."), Path::to_path_buf);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--price-per-gb" => {
                price = value
                    .parse()
                    .ok()
                    .filter(|p: &f64| *p >= 0.0)
                    .ok_or("--price-per-gb: a price in dollars")?
            }
            "--out" => out = PathBuf::from(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let text = std::fs::read_to_string(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let (n, value_bytes, medians) = read_medians(&text)?;
    let md = markdown(n, value_bytes, &medians, price, &csv);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let md_path = out.join("cost.md");
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    let svg_path = out.join("cost-per-month.svg");
    std::fs::write(&svg_path, chart(n, &medians, price).to_svg())
        .map_err(|e| format!("{}: {e}", svg_path.display()))?;
    println!("wrote {} and {}", md_path.display(), svg_path.display());
    Ok(())
}

/// The largest N that every protocol ran for the priced kind, its value
/// size, and the medians there.
fn read_medians(text: &str) -> Result<(u64, u64, Medians), String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name}"))
    };
    let (kind, two, keys, changed, protocol, vb, bytes) = (
        col("kind")?,
        col("two_sided")?,
        col("keys")?,
        col("changed")?,
        col("protocol")?,
        col("value_bytes")?,
        col("bytes")?,
    );
    let mut by_n: BTreeMap<u64, (u64, Medians)> = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != header.len() || f[kind] != KIND || f[two] != TWO_SIDED {
            continue;
        }
        let num = |i: usize| f[i].parse::<u64>().map_err(|e| format!("{line}: {e}"));
        let entry = by_n.entry(num(keys)?).or_insert((num(vb)?, Medians::new()));
        entry
            .1
            .entry(f[protocol].to_string())
            .or_default()
            .insert(num(changed)?, num(bytes)? as f64);
    }
    let protocols = by_n.values().map(|(_, m)| m.len()).max().unwrap_or(0);
    by_n.into_iter()
        .rev()
        .find(|(_, (_, m))| m.len() == protocols && m.values().all(|d| d.len() >= 2))
        .map(|(n, (vb, m))| (n, vb, m))
        .ok_or(format!(
            "no {KIND} two-sided cells with two D values or more"
        ))
}

/// Bytes of one session converging `d` keys, from the measured points.
fn bytes_at(points: &BTreeMap<u64, f64>, d: f64) -> f64 {
    let pts: Vec<(f64, f64)> = points.iter().map(|(&k, &b)| (k as f64, b)).collect();
    if let Some(&(_, b)) = pts.iter().find(|(k, _)| *k == d) {
        return b;
    }
    let below = pts.iter().rev().find(|(k, _)| *k < d).copied();
    let above = pts.iter().find(|(k, _)| *k > d).copied();
    match (below, above) {
        (Some((k0, b0)), Some((k1, b1))) if k0 > 0.0 => {
            // Log-log between two measured points.
            let t = (d.ln() - k0.ln()) / (k1.ln() - k0.ln());
            (b0.ln() + t * (b1.ln() - b0.ln())).exp()
        }
        (Some((k0, b0)), Some((k1, b1))) => b0 + (b1 - b0) * (d - k0) / (k1 - k0),
        (Some((k0, b0)), None) if k0 > 0.0 => b0 * d / k0,
        (Some((_, b0)), None) => b0,
        (None, Some((_, b1))) => b1,
        (None, None) => 0.0,
    }
}

/// Dollars a month at `rate` writes per second, N keys.
fn monthly(points: &BTreeMap<u64, f64>, n: u64, rate: f64, price: f64) -> f64 {
    let d = (rate * INTERVAL_SECS).min(n as f64);
    MONTH_SECS / INTERVAL_SECS * bytes_at(points, d) / 1e9 * price
}

fn usd(d: f64) -> String {
    if d == 0.0 {
        "$0".into()
    } else if d < 1e-4 {
        format!("{:.2} µ$", d * 1e6)
    } else if d < 1.0 {
        format!("${d:.4}")
    } else if d < 1000.0 {
        format!("${d:.2}")
    } else {
        format!("${}", crate::render::group(d.round() as u64))
    }
}

fn markdown(n: u64, value_bytes: u64, m: &Medians, price: f64, csv: &Path) -> String {
    let protocols: Vec<&String> = m.keys().collect();
    let mut md = String::new();
    let _ = writeln!(md, "# What convergence costs\n");
    let _ = writeln!(
        md,
        "Cross-region transfer priced at **${price}/GB** (the seed article's figure; \
         `--price-per-gb` changes it), applied to the bytes of the convergence report's \
         medians (`{}`): {}-byte LWW registers, two-sided, N = {} keys. \
         Made by `cargo run --release -p accordant-sync --example report -- --cost-only {}{}`.\n",
        csv.display(),
        value_bytes,
        crate::render::fmt_n(n),
        csv.display(),
        if price == DEFAULT_PRICE_PER_GB {
            String::new()
        } else {
            format!(" --price-per-gb {price}")
        }
    );
    let _ = writeln!(
        md,
        "## Per session (a heal after D keys changed)\n\nOne session between two regions, both directions.\n"
    );
    let _ = write!(md, "| D |");
    for p in &protocols {
        let _ = write!(md, " {p} |");
    }
    let _ = write!(md, "\n|---:|");
    for _ in &protocols {
        let _ = write!(md, "---:|");
    }
    md.push('\n');
    let ds: std::collections::BTreeSet<u64> = m.values().flat_map(|d| d.keys().copied()).collect();
    for d in ds {
        let _ = write!(md, "| {} |", crate::render::group(d));
        for p in &protocols {
            let cell = m[*p]
                .get(&d)
                .map_or("—".to_string(), |b| usd(b / 1e9 * price));
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\n## Per month, against the write rate\n\n\
         Writes at W per second replicated by one session every {INTERVAL_SECS} s, each \
         converging the W × {INTERVAL_SECS} keys written since (at most N), between one pair \
         of regions; bytes interpolated on the measured D (see `sync/examples/report/cost.rs`). \
         The same model for every protocol. Accordant's delta path, which ships each write \
         once while the regions are linked, is priced by the demo \
         (`cargo run --release -p accordant-demo`).\n"
    );
    let _ = write!(md, "| writes/s |");
    for p in &protocols {
        let _ = write!(md, " {p} |");
    }
    let _ = write!(md, "\n|---:|");
    for _ in &protocols {
        let _ = write!(md, "---:|");
    }
    md.push('\n');
    for rate in RATES {
        let _ = write!(md, "| {} |", svg::si(rate));
        for p in &protocols {
            let _ = write!(md, " {} |", usd(monthly(&m[*p], n, rate, price)));
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\n![cost per month against the write rate](cost-per-month.svg)"
    );
    md
}

fn chart(n: u64, m: &Medians, price: f64) -> Chart {
    let colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"];
    let series = m
        .iter()
        .zip(colors.iter().cycle())
        .map(|((p, points), color)| Series {
            name: p.clone(),
            color,
            dashed: false,
            points: RATES
                .iter()
                .map(|&r| (r, monthly(points, n, r, price)))
                .collect(),
        })
        .collect();
    Chart {
        title: format!("Cross-region cost per month at ${price}/GB"),
        subtitle: format!(
            "one session every {INTERVAL_SECS} s, 256-byte LWW registers, N = {} (log axes)",
            crate::render::fmt_n(n)
        ),
        x: Axis {
            label: "writes per second".into(),
            scale: Scale::Log,
            format: svg::si,
        },
        y: Axis {
            label: "dollars per month".into(),
            scale: Scale::Log,
            format: svg::plain,
        },
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_follows_the_measured_points() {
        let pts: BTreeMap<u64, f64> = [(0, 70.0), (10, 1_000.0), (1_000, 100_000.0)].into();
        assert_eq!(bytes_at(&pts, 10.0), 1_000.0);
        assert!((bytes_at(&pts, 5.0) - 535.0).abs() < 1e-9);
        assert!((bytes_at(&pts, 100.0) - 10_000.0).abs() < 1e-6);
        assert!((bytes_at(&pts, 2_000.0) - 200_000.0).abs() < 1e-6);
        // $0.02/GB, one 1 GB session every 5 s: 518,400 sessions a month.
        let gb: BTreeMap<u64, f64> = [(0, 1e9), (1, 1e9)].into();
        assert!((monthly(&gb, 10, 0.0, 0.02) - 10_368.0).abs() < 1e-6);
    }
}
