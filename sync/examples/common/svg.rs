//! A small line-chart writer for the report: one SVG file per chart, linear
//! or base-10 logarithmic axes with gridlines at the ticks, one polyline with
//! point markers per series (dashed for reference lines such as the lower
//! bound), and a legend to the right of the plot. No dependency, plain SVG
//! 1.1 that browsers and `rsvg-convert` render alike.

use std::fmt::Write as _;

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// From 0 (or the smallest value, if negative) to a round maximum.
    Linear,
    /// Powers of ten; values `<= 0` are left out.
    Log,
}

/// One axis.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub(crate) label: String,
    pub(crate) scale: Scale,
    /// Formats a tick value.
    pub(crate) format: fn(f64) -> String,
}

/// One line.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) color: &'static str,
    pub(crate) dashed: bool,
    pub(crate) points: Vec<(f64, f64)>,
}

/// A chart: a title, two axes and its series.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) subtitle: String,
    pub(crate) x: Axis,
    pub(crate) y: Axis,
    pub(crate) series: Vec<Series>,
}

const WIDTH: f64 = 780.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 62.0;
const BOTTOM: f64 = 58.0;

/// The range and ticks of an axis over `values`.
struct Ticks {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    log: bool,
}

impl Ticks {
    fn new(scale: Scale, values: &[f64]) -> Ticks {
        match scale {
            Scale::Log => {
                let pos: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
                let min = pos.iter().copied().fold(f64::INFINITY, f64::min);
                let max = pos.iter().copied().fold(0.0, f64::max);
                let (lo, hi) = if pos.is_empty() {
                    (0, 1)
                } else {
                    let lo = min.log10().floor() as i32;
                    let hi = (max.log10().ceil() as i32).max(lo + 1);
                    (lo, hi)
                };
                // At most about 9 labelled decades; 1-2-5 steps when
                // there are only one or two.
                let step = ((hi - lo) as usize).div_ceil(9).max(1);
                let mults: &[f64] = if hi - lo <= 2 {
                    &[1.0, 2.0, 5.0]
                } else {
                    &[1.0]
                };
                let ticks = (lo..=hi)
                    .step_by(step)
                    .flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)))
                    .filter(|t| t.log10() <= f64::from(hi) + 1e-9)
                    .collect();
                Ticks {
                    lo: f64::from(lo),
                    hi: f64::from(hi),
                    ticks,
                    log: true,
                }
            }
            Scale::Linear => {
                let max = values.iter().copied().fold(0.0, f64::max);
                let min = values.iter().copied().fold(0.0, f64::min);
                let span = (max - min).max(1.0);
                let raw = span / 5.0;
                let mag = 10f64.powf(raw.log10().floor());
                let step = [1.0, 2.0, 2.5, 5.0, 10.0]
                    .iter()
                    .map(|m| m * mag)
                    .find(|s| *s >= raw)
                    .unwrap_or(10.0 * mag);
                let lo = (min / step).floor() * step;
                let hi = ((max / step).ceil() * step).max(lo + step);
                let n = ((hi - lo) / step).round() as usize;
                let ticks = (0..=n).map(|i| lo + step * i as f64).collect();
                Ticks {
                    lo,
                    hi,
                    ticks,
                    log: false,
                }
            }
        }
    }

    /// Where `v` falls, from 0 (low end) to 1 (high end).
    fn frac(&self, v: f64) -> f64 {
        let v = if self.log { v.log10() } else { v };
        (v - self.lo) / (self.hi - self.lo)
    }
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart {
    /// The chart as an SVG document.
    pub(crate) fn to_svg(&self) -> String {
        let keep = |scale: Scale, v: f64| scale == Scale::Linear || v > 0.0;
        let series: Vec<Series> = self
            .series
            .iter()
            .map(|s| Series {
                points: s
                    .points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| keep(self.x.scale, x) && keep(self.y.scale, y))
                    .collect(),
                ..s.clone()
            })
            .collect();
        let xs: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        let ys: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .collect();
        let tx = Ticks::new(self.x.scale, &xs);
        let ty = Ticks::new(self.y.scale, &ys);
        let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let px = |v: f64| LEFT + tx.frac(v) * pw;
        let py = |v: f64| TOP + (1.0 - ty.frac(v)) * ph;

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="44" fill="#555">{}</text>"##,
            esc(&self.subtitle)
        );
        // Gridlines and tick labels.
        for &t in &tx.ticks {
            let x = px(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e4e4e4"/>"##,
                TOP + ph
            );
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + ph + 18.0,
                esc(&(self.x.format)(t))
            );
        }
        for &t in &ty.ticks {
            let y = py(t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/>"##,
                LEFT + pw
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 8.0,
                y + 4.0,
                esc(&(self.y.format)(t))
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        // Axis labels.
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 14.0,
            esc(&self.x.label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            esc(&self.y.label)
        );
        // Series.
        for se in &series {
            let dash = if se.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            if se.points.len() > 1 {
                let pts: Vec<String> = se
                    .points
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                    pts.join(" "),
                    se.color
                );
            }
            if !se.dashed {
                for &(x, y) in &se.points {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3.2" fill="{}"/>"#,
                        px(x),
                        py(y),
                        se.color
                    );
                }
            }
        }
        // Legend.
        let lx = LEFT + pw + 16.0;
        for (i, se) in series.iter().enumerate() {
            let y = TOP + 10.0 + 22.0 * i as f64;
            let dash = if se.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2"{dash}/>"#,
                lx + 26.0,
                se.color
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 32.0,
                y + 4.0,
                esc(&se.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// `1`, `10`, `100`, `1k`, `10k`, `1M`, `1G`... for counts.
pub(crate) fn si(v: f64) -> String {
    let (div, unit) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / div;
    if (x - x.round()).abs() < 1e-9 {
        format!("{}{unit}", x.round())
    } else {
        format!("{x:.1}{unit}")
    }
}

/// Bytes: `1 B`, `1 kB`, `1 MB`, `1 GB` (powers of 1000).
pub(crate) fn bytes(v: f64) -> String {
    format!("{}B", {
        let s = si(v);
        if s.ends_with(|c: char| c.is_ascii_digit()) {
            format!("{s} ")
        } else {
            let (n, u) = s.split_at(s.len() - 1);
            format!("{n} {u}")
        }
    })
}

/// Seconds: `1 ms`, `100 ms`, `1 s`, `10 s`.
pub(crate) fn seconds(v: f64) -> String {
    if v < 1e-3 {
        format!("{} µs", si(v * 1e6))
    } else if v < 1.0 {
        format!("{} ms", si(v * 1e3))
    } else {
        format!("{} s", si(v))
    }
}

/// A plain number.
pub(crate) fn plain(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v}")
    }
}
