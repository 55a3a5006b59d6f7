//! Inline SVG line charts of a training log. A long, noisy series is cut into buckets of
//! consecutive points; the chart draws each bucket's range [min, max] as a light band and its
//! mean as the line, so a 20,000-step log costs a few hundred path points yet keeps its spikes.
//! Colours come from the page's CSS (`currentColor`, `--accent`), so charts follow light and
//! dark mode.

use std::fmt::Write as _;

use maud::{html, Markup};

use super::format::number;

/// One bucket of consecutive points, in axis coordinates (log₁₀ y on a log axis).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Mean x of the bucket.
    pub x: f64,
    /// Smallest y.
    pub lo: f64,
    /// Mean y (on a log axis: mean of log₁₀ y, i.e. the geometric mean of the values).
    pub mid: f64,
    /// Largest y.
    pub hi: f64,
}

/// Cuts the points (xᵢ, yᵢ) into at most `n` buckets of consecutive points — bucket k holds
/// the indices [⌊k·m/n⌋, ⌊(k+1)·m/n⌋) of the m usable points — and summarises each by
/// [`Bucket`]. Usable points have finite x and y, and y > 0 on a log axis (`log`), where y is
/// replaced by log₁₀ y. With m ≤ n every point is its own bucket.
pub fn buckets(xs: &[f64], ys: &[f64], n: usize, log: bool) -> Vec<Bucket> {
    let pts: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log || **y > 0.0))
        .map(|(&x, &y)| (x, if log { y.log10() } else { y }))
        .collect();
    let m = pts.len();
    let n = n.max(1).min(m);
    (0..n)
        .map(|k| {
            let part = &pts[k * m / n..(k + 1) * m / n];
            let len = part.len() as f64;
            Bucket {
                x: part.iter().map(|p| p.0).sum::<f64>() / len,
                lo: part.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
                mid: part.iter().map(|p| p.1).sum::<f64>() / len,
                hi: part.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
            }
        })
        .collect()
}

/// Heckbert's "nice number" (Graphics Gems, 1990): 1, 2 or 5 × 10ᵏ nearest to x > 0.
fn nice_step(x: f64) -> f64 {
    let e = x.log10().floor();
    let f = x / 10f64.powf(e);
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * 10f64.powf(e)
}

/// Tick values inside [lo, hi] at a "nice" step (1, 2 or 5 × 10ᵏ) near (hi − lo)/(target − 1),
/// each rounded to the step's decimal so that 0.1 + 0.2 prints as 0.3.
pub fn linear_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return vec![lo];
    }
    let step = nice_step((hi - lo) / (target.max(2) - 1) as f64);
    let decimals = (-step.log10().floor()).max(0.0) as i32;
    let round = |v: f64| {
        let s = 10f64.powi(decimals);
        (v * s).round() / s
    };
    // A tick within 10⁻⁹ steps of an end counts as inside (0.3 / 0.1 = 2.9999999999999996).
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| round(k as f64 * step)).collect()
}

/// Ticks of a log axis, in log₁₀ units, inside [lo, hi] (also log₁₀ units): every decade (or
/// every k-th, k chosen for at most 7 ticks) over two decades or more; 1, 2 and 5 × 10ᵏ over
/// one to two decades; under one decade, the linear ticks of the values [10^lo, 10^hi].
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return vec![lo];
    }
    let span = hi - lo;
    if span < 1.0 {
        return linear_ticks(10f64.powf(lo), 10f64.powf(hi), 4)
            .into_iter()
            .filter(|v| *v > 0.0)
            .map(f64::log10)
            .collect();
    }
    let (d0, d1) = (lo.floor() as i64, hi.ceil() as i64);
    if span < 2.0 {
        return (d0..=d1)
            .flat_map(|d| [1f64, 2.0, 5.0].map(|m| d as f64 + m.log10()))
            .filter(|v| (lo..=hi).contains(v))
            .collect();
    }
    let stride = ((d1 - d0) as usize).div_ceil(6).max(1) as i64;
    (d0..=d1)
        .filter(|d| d.rem_euclid(stride) == 0)
        .map(|d| d as f64)
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// x rounded to 12 significant digits (10^−3 computed as 0.0010000000000000002 prints as 0.001).
fn tidy(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

/// The affine map of [d₀, d₁] onto [r₀, r₁] (r₀ > r₁ flips the axis, as SVG's y does).
fn map(v: f64, (d0, d1): (f64, f64), (r0, r1): (f64, f64)) -> f64 {
    r0 + (v - d0) / (d1 - d0) * (r1 - r0)
}

/// [lo, hi] widened by 4 % each side; a single value gets ±0.5 around it.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let pad = 0.04 * (hi - lo);
        (lo - pad, hi + pad)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

/// Chart size in SVG user units (the chart scales to its container's width).
const W: f64 = 420.0;
const H: f64 = 230.0;
/// Plot-area margins: left (y tick labels), right, top (y label), bottom (x labels).
const ML: f64 = 62.0;
const MR: f64 = 12.0;
const MT: f64 = 26.0;
const MB: f64 = 38.0;
/// Buckets of a chart: about one per horizontal unit of the plot area.
const BUCKETS: usize = 360;

/// A line chart of y against x.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    /// What the chart shows, for screen readers (the SVG's `<title>`).
    pub title: &'a str,
    /// Label of the x axis (under it).
    pub x_label: &'a str,
    /// Label of the y axis (above it).
    pub y_label: &'a str,
    /// Log₁₀ y axis.
    pub log_y: bool,
    /// x values, ascending.
    pub xs: &'a [f64],
    /// y values.
    pub ys: &'a [f64],
}

/// "M x y L x y …" through the points, one decimal.
fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut d = String::new();
    for (i, (x, y)) in points.enumerate() {
        let _ = write!(d, "{}{x:.1} {y:.1}", if i == 0 { "M" } else { " L" });
    }
    d
}

impl Chart<'_> {
    /// The chart as inline SVG, or `None` when no point is usable (see [`buckets`]).
    pub fn svg(&self) -> Option<Markup> {
        let b = buckets(self.xs, self.ys, BUCKETS, self.log_y);
        if b.is_empty() {
            return None;
        }
        let xr = padded(b[0].x, b[b.len() - 1].x);
        let yr = padded(
            b.iter().map(|k| k.lo).fold(f64::INFINITY, f64::min),
            b.iter().map(|k| k.hi).fold(f64::NEG_INFINITY, f64::max),
        );
        let (px, py) = ((ML, W - MR), (H - MB, MT));
        let sx = |x: f64| map(x, xr, px);
        let sy = |y: f64| map(y, yr, py);
        let band = format!(
            "{} Z",
            polyline(
                b.iter()
                    .map(|k| (sx(k.x), sy(k.hi)))
                    .chain(b.iter().rev().map(|k| (sx(k.x), sy(k.lo))))
            )
        );
        let line = polyline(b.iter().map(|k| (sx(k.x), sy(k.mid))));
        let yticks = if self.log_y {
            log_ticks(yr.0, yr.1)
        } else {
            linear_ticks(yr.0, yr.1, 5)
        };
        let ylabel = |v: f64| number(if self.log_y { tidy(10f64.powf(v)) } else { v });
        let xticks = linear_ticks(xr.0, xr.1, 6);
        Some(html! {
            svg.chart viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(self.title) {
                title { (self.title) }
                g.grid {
                    @for t in &yticks {
                        line x1=(ML) x2=(W - MR) y1=(format!("{:.1}", sy(*t))) y2=(format!("{:.1}", sy(*t))) {}
                    }
                }
                path.band d=(band) {}
                path.line d=(line) {}
                path.axis d=(format!("M{ML} {MT} V{:.1} H{:.1}", H - MB, W - MR)) {}
                g.ticks text-anchor="end" {
                    @for t in &yticks {
                        text x=(ML - 6.0) y=(format!("{:.1}", sy(*t) + 4.0)) { (ylabel(*t)) }
                    }
                }
                g.ticks text-anchor="middle" {
                    @for t in &xticks {
                        text x=(format!("{:.1}", sx(*t))) y=(H - MB + 16.0) { (number(*t)) }
                    }
                }
                text.label x=(ML) y="14" { (self.y_label) }
                text.label x=(format!("{:.1}", (ML + W - MR) / 2.0)) y=(H - 6.0) text-anchor="middle" { (self.x_label) }
            }
        })
    }
}

/// A small line (120 × 28 units, no axes) of the bucket means, for the index page; `None`
/// when no point is usable.
pub fn sparkline(xs: &[f64], ys: &[f64], log_y: bool, label: &str) -> Option<Markup> {
    const SW: f64 = 120.0;
    const SH: f64 = 28.0;
    let b = buckets(xs, ys, 60, log_y);
    if b.is_empty() {
        return None;
    }
    let xr = padded(b[0].x, b[b.len() - 1].x);
    let yr = padded(
        b.iter().map(|k| k.mid).fold(f64::INFINITY, f64::min),
        b.iter().map(|k| k.mid).fold(f64::NEG_INFINITY, f64::max),
    );
    let d = polyline(b.iter().map(|k| {
        (
            map(k.x, xr, (1.0, SW - 1.0)),
            map(k.mid, yr, (SH - 1.0, 1.0)),
        )
    }));
    Some(html! {
        svg.spark viewBox={ "0 0 " (SW) " " (SH) } role="img" aria-label=(label) {
            title { (label) }
            path.line d=(d) {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn buckets_summarise_consecutive_points() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let ys = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        let b = buckets(&xs, &ys, 4, false);
        // m = 10, n = 4: index ranges [0,2) [2,5) [5,7) [7,10).
        assert_eq!(b.len(), 4);
        assert_eq!(
            b[0],
            Bucket {
                x: 0.5,
                lo: 1.0,
                mid: 2.0,
                hi: 3.0
            }
        );
        assert_eq!(
            b[1],
            Bucket {
                x: 3.0,
                lo: 1.0,
                mid: 10.0 / 3.0,
                hi: 5.0
            }
        );
        assert_eq!(b[3].x, 8.0);
        assert_eq!((b[3].lo, b[3].hi), (3.0, 6.0));
        // Fewer points than buckets: one bucket per point, band of zero width.
        let one = buckets(&xs[..3], &ys[..3], 100, false);
        assert_eq!(one.len(), 3);
        assert!(one.iter().all(|k| k.lo == k.mid && k.mid == k.hi));
    }

    #[test]
    fn log_buckets_use_geometric_means_and_drop_non_positive_values() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let ys = [1e-2, 1.0, -1.0, f64::NAN, 100.0];
        let b = buckets(&xs, &ys, 1, true);
        assert_eq!(b.len(), 1);
        // Usable: (1, −2), (2, 0), (5, 2) in log₁₀ units; geometric mean of 0.01, 1, 100 is 1.
        assert!((b[0].mid - 0.0).abs() < 1e-12 && b[0].lo == -2.0 && b[0].hi == 2.0);
        assert!((b[0].x - 8.0 / 3.0).abs() < 1e-12);
        assert!(buckets(&xs, &[0.0; 5], 10, true).is_empty());
    }

    #[test]
    fn linear_ticks_are_nice_and_inside() {
        assert!(close(
            &linear_ticks(0.0, 1.0, 5),
            &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        ));
        assert!(close(
            &linear_ticks(-0.04, 30.04, 6),
            &[0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
        ));
        assert!(close(
            &linear_ticks(0.13, 0.61, 5),
            &[0.2, 0.3, 0.4, 0.5, 0.6]
        ));
        assert!(close(
            &linear_ticks(-120.0, 10_080.0, 6),
            &[0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0]
        ));
        assert_eq!(linear_ticks(1.0, 1.0, 5), vec![1.0]);
    }

    #[test]
    fn log_ticks_pick_decades_or_1_2_5() {
        assert!(close(&log_ticks(-3.1, 0.2), &[-3.0, -2.0, -1.0, 0.0]));
        let t = log_ticks(-1.2, -0.1);
        let want: Vec<f64> = [0.1f64, 0.2, 0.5].iter().map(|v| v.log10()).collect();
        assert!(close(&t, &want), "{t:?}");
        // Under a decade: linear ticks of the values, 0.3 … 0.6.
        let t = log_ticks(0.3f64.log10(), 0.62f64.log10());
        let want: Vec<f64> = [0.3f64, 0.4, 0.5, 0.6].iter().map(|v| v.log10()).collect();
        assert!(close(&t, &want), "{t:?}");
        // Twelve decades: every second one, at most seven ticks.
        let t = log_ticks(-8.0, 4.0);
        assert!(
            t.len() <= 7 && t.contains(&-8.0) && t.contains(&4.0),
            "{t:?}"
        );
    }

    #[test]
    fn the_map_sends_the_domain_onto_the_range_and_flips_y() {
        assert_eq!(map(2.0, (2.0, 4.0), (10.0, 110.0)), 10.0);
        assert_eq!(map(4.0, (2.0, 4.0), (10.0, 110.0)), 110.0);
        assert_eq!(map(3.0, (2.0, 4.0), (200.0, 0.0)), 100.0);
    }

    #[test]
    fn charts_render_every_bucket_and_nothing_for_no_data() {
        let xs: Vec<f64> = (1..=1000).map(f64::from).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 1.0 / x).collect();
        let c = Chart {
            title: "loss <b>",
            x_label: "step",
            y_label: "loss",
            log_y: true,
            xs: &xs,
            ys: &ys,
        };
        let svg = c.svg().unwrap().into_string();
        assert!(svg.starts_with("<svg class=\"chart\""), "{svg}");
        // The title is escaped; the line has one point per bucket.
        assert!(svg.contains("<title>loss &lt;b&gt;</title>"));
        let line = svg.split("class=\"line\" d=\"").nth(1).unwrap();
        let line = &line[..line.find('"').unwrap()];
        assert_eq!(line.matches('L').count() + 1, BUCKETS);
        // Ticks of 1/x over 1 … 1000 on a log axis: 0.001, 0.01, 0.1, 1.
        for t in [">0.001<", ">0.01<", ">0.1<", ">1<"] {
            assert!(svg.contains(t), "{t} missing");
        }
        let none = Chart {
            ys: &[0.0; 1000],
            ..c
        };
        assert!(none.svg().is_none());
        assert!(sparkline(&xs, &ys, true, "loss").is_some());
    }
}
