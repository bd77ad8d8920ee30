//! The session's targets (issue 15), checked cell by cell on the medians:
//! which hold, and by how much the others miss.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::common::model::Kind;
use crate::common::PROTOCOL_NAMES;
use crate::render::{cells_of, fmt_n, fmt_rt, fmt_time, fmt_x, get, group, sides_name};
use crate::{Cell, CellKey};

/// One target's verdict: cells checked, and a line per miss.
struct Verdict {
    what: String,
    checked: usize,
    misses: Vec<String>,
}

impl Verdict {
    fn new(what: impl Into<String>) -> Self {
        Verdict {
            what: what.into(),
            checked: 0,
            misses: Vec::new(),
        }
    }

    fn check(&mut self, held: bool, miss: impl FnOnce() -> String) {
        self.checked += 1;
        if !held {
            self.misses.push(miss());
        }
    }

    fn render(&self, out: &mut String) {
        let held = self.checked - self.misses.len();
        let _ = writeln!(
            out,
            "- **{}**: held in {held} of {} cells.",
            self.what, self.checked
        );
        for m in &self.misses {
            let _ = writeln!(out, "  - misses {m}");
        }
    }
}

fn cell_name(kind: Kind, two: bool, n: u64, d: u64) -> String {
    format!(
        "{} {} N = {} D = {}",
        kind.name(),
        sides_name(two),
        fmt_n(n),
        group(d)
    )
}

/// The targets section of the report.
pub(crate) fn section(m: &BTreeMap<CellKey, Cell>) -> String {
    let kinds = [Kind::Lww, Kind::Lww32, Kind::Counter, Kind::OrSet];
    let largest = m.keys().map(|k| k.2).max().unwrap_or(0);

    // Round trips at the largest N, 256-byte LWW, counted as the issue
    // does: round trips, plus at most one last message one way.
    let mut rt = Verdict::new(format!(
        "Round trips, 256-byte LWW, N = {}: 1 at D = 0; 2 (and at most one last leg one way) \
         for D ≤ 1,000; at most 3 (and one leg) for any D",
        fmt_n(largest)
    ));
    for two in [false, true] {
        for (n, d) in cells_of(m, Kind::Lww, two) {
            let Some(c) = get(m, Kind::Lww, two, n, d, "accordant").filter(|_| n == largest) else {
                continue;
            };
            let max_legs = match d {
                0 => 2,
                1..=1000 => 5,
                _ => 7,
            };
            rt.check(c.legs <= max_legs, || {
                format!(
                    "{}: {} round trips ({} legs; allowed {})",
                    cell_name(Kind::Lww, two, n, d),
                    fmt_rt(c.legs),
                    c.legs,
                    max_legs
                )
            });
        }
    }

    // Nothing to do: one round trip, under 64 bytes each way, every kind
    // and N.
    let mut quiet =
        Verdict::new("D = 0: one round trip, under 64 bytes each way (every kind and N)");
    for kind in kinds {
        for two in [false, true] {
            for (n, d) in cells_of(m, kind, two) {
                let Some(c) = get(m, kind, two, n, d, "accordant").filter(|_| d == 0) else {
                    continue;
                };
                let held = c.legs <= 2 && c.bytes_a_to_b < 64 && c.bytes_b_to_a < 64;
                quiet.check(held, || {
                    format!(
                        "{}: {} round trips, {} B A→B, {} B B→A",
                        cell_name(kind, two, n, d),
                        fmt_rt(c.legs),
                        c.bytes_a_to_b,
                        c.bytes_b_to_a
                    )
                });
            }
        }
    }

    // Bytes against the lower bound for 10 <= D <= N/100.
    let mut bytes = Vec::new();
    for (kind, limit, name) in [
        (Kind::Lww, 1.25, "256-byte LWW"),
        (Kind::Lww32, 2.0, "32-byte LWW"),
        (Kind::Counter, 2.5, "counters"),
    ] {
        let mut v = Verdict::new(format!(
            "Bytes, {name}, 10 ≤ D ≤ N/100: at most {limit}× the lower bound"
        ));
        for two in [false, true] {
            for (n, d) in cells_of(m, kind, two) {
                if d < 10 || d > n / 100 {
                    continue;
                }
                let Some(c) = get(m, kind, two, n, d, "accordant") else {
                    continue;
                };
                let x = c.bytes as f64 / c.lower_bound.max(1) as f64;
                v.check(x <= limit, || {
                    format!("{}: {}×", cell_name(kind, two, n, d), fmt_x(x))
                });
            }
        }
        bytes.push(v);
    }

    // Modelled time on the first link: the lowest of the four protocols.
    let mut time = Verdict::new(
        "Modelled time at 100 ms RTT and 100 Mbit/s: the lowest of the four protocols",
    );
    // CPU per side at most negentropy's for 0 < D <= 1000.
    let mut cpu = Verdict::new("CPU per side at most negentropy's, 0 < D ≤ 1,000");
    for kind in kinds {
        for two in [false, true] {
            for (n, d) in cells_of(m, kind, two) {
                let Some(a) = get(m, kind, two, n, d, "accordant") else {
                    continue;
                };
                let best = PROTOCOL_NAMES
                    .iter()
                    .filter(|p| **p != "accordant")
                    .filter_map(|p| get(m, kind, two, n, d, p).map(|c| (*p, c.model[0])))
                    .min_by(|x, y| x.1.total_cmp(&y.1));
                if let Some((p, t)) = best {
                    time.check(a.model[0] <= t, || {
                        format!(
                            "{}: {} against {p}'s {} (+{}, +{:.0}%)",
                            cell_name(kind, two, n, d),
                            fmt_time(a.model[0]),
                            fmt_time(t),
                            fmt_time(a.model[0] - t),
                            100.0 * (a.model[0] / t - 1.0)
                        )
                    });
                }
                if d == 0 || d > 1000 {
                    continue;
                }
                if let Some(neg) = get(m, kind, two, n, d, "negentropy") {
                    let ms = |x: std::time::Duration| x.as_secs_f64() * 1e3;
                    cpu.check(a.cpu_a <= neg.cpu_a && a.cpu_b <= neg.cpu_b, || {
                        format!(
                            "{}: A {:.2} / B {:.2} ms against negentropy's {:.2} / {:.2} ms",
                            cell_name(kind, two, n, d),
                            ms(a.cpu_a),
                            ms(a.cpu_b),
                            ms(neg.cpu_a),
                            ms(neg.cpu_b)
                        )
                    });
                }
            }
        }
    }

    let mut out = String::from(
        "## Targets\n\nThe session's targets, checked on the medians above, cell by cell \
         (accordant against the lower bound and the other protocols).\n\n",
    );
    for v in [&rt, &quiet].into_iter().chain(&bytes).chain([&time, &cpu]) {
        if v.checked > 0 {
            v.render(&mut out);
        }
    }
    out.push('\n');
    out
}
