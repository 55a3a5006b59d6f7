//! Pictures, as functions over plain data (points, grids of values, curves): scatter of data
//! vs samples, quiver plots of a vector field, sample trajectories, the training-loss curve,
//! heat maps (density, curl, stiffness) and an animated GIF of samples flowing from noise to
//! data. Every file is rendered to a temporary name in its directory and renamed into place.
//!
//! Text uses DejaVu Sans, embedded in the binary (no system fonts needed).

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::output::temp_path_for;

/// The embedded font (DejaVu Sans; licence in `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const SANS: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is compiled in; failing to parse it is a build defect, not user input.
            if plotters::style::register_font(SANS, style, FONT).is_err() {
                panic!("embedded DejaVu Sans font failed to parse");
            }
        }
    });
}

/// A 2-D point.
pub type P2 = [f64; 2];

/// An axis-aligned plotting window [x₀, x₁] × [y₀, y₁].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// (x₀, x₁).
    pub x: (f64, f64),
    /// (y₀, y₁).
    pub y: (f64, f64),
}

impl Bounds {
    /// A square window around the 0.5%–99.5% quantiles of all points, padded by 10%, so a few
    /// outlying samples do not shrink the picture.
    pub fn around(sets: &[&[P2]]) -> Bounds {
        let mut xs: Vec<f64> = Vec::new();
        let mut ys: Vec<f64> = Vec::new();
        for s in sets {
            for p in s.iter().filter(|p| p[0].is_finite() && p[1].is_finite()) {
                xs.push(p[0]);
                ys.push(p[1]);
            }
        }
        if xs.is_empty() {
            return Bounds {
                x: (-1.0, 1.0),
                y: (-1.0, 1.0),
            };
        }
        let q = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let lo = v[((v.len() - 1) as f64 * 0.005) as usize];
            let hi = v[((v.len() - 1) as f64 * 0.995).ceil() as usize];
            (lo, hi)
        };
        let (x0, x1) = q(&mut xs);
        let (y0, y1) = q(&mut ys);
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let half = ((x1 - x0).max(y1 - y0) / 2.0 * 1.1).max(1e-3);
        Bounds {
            x: (cx - half, cx + half),
            y: (cy - half, cy + half),
        }
    }

    /// `n × n` grid-cell centres covering the window, row-major from the bottom-left.
    pub fn grid(&self, n: usize) -> Vec<P2> {
        let (dx, dy) = (
            (self.x.1 - self.x.0) / n as f64,
            (self.y.1 - self.y.0) / n as f64,
        );
        let mut g = Vec::with_capacity(n * n);
        for j in 0..n {
            for i in 0..n {
                g.push([
                    self.x.0 + (i as f64 + 0.5) * dx,
                    self.y.0 + (j as f64 + 0.5) * dy,
                ]);
            }
        }
        g
    }
}

/// Colour map for heat maps and magnitudes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMap {
    /// Perceptually uniform sequential map (viridis), low → high.
    Viridis,
    /// Diverging blue–white–red map, symmetric about 0 (for signed quantities such as curl).
    Diverging,
}

impl ColorMap {
    /// The colour of u ∈ [0, 1] (clamped).
    pub fn at(self, u: f64) -> RGBColor {
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let stops: &[(f64, [f64; 3])] = match self {
            ColorMap::Viridis => &[
                (0.0, [68.0, 1.0, 84.0]),
                (0.125, [71.0, 44.0, 122.0]),
                (0.25, [59.0, 81.0, 139.0]),
                (0.375, [44.0, 113.0, 142.0]),
                (0.5, [33.0, 144.0, 141.0]),
                (0.625, [39.0, 173.0, 129.0]),
                (0.75, [92.0, 200.0, 99.0]),
                (0.875, [170.0, 220.0, 50.0]),
                (1.0, [253.0, 231.0, 37.0]),
            ],
            ColorMap::Diverging => &[
                (0.0, [5.0, 48.0, 97.0]),
                (0.25, [67.0, 147.0, 195.0]),
                (0.5, [247.0, 247.0, 247.0]),
                (0.75, [214.0, 96.0, 77.0]),
                (1.0, [103.0, 0.0, 31.0]),
            ],
        };
        let k = stops
            .windows(2)
            .position(|w| u <= w[1].0)
            .unwrap_or(stops.len() - 2);
        let (a, b) = (stops[k], stops[k + 1]);
        let s = (u - a.0) / (b.0 - a.0);
        let c = |i: usize| (a.1[i] + s * (b.1[i] - a.1[i])).round() as u8;
        RGBColor(c(0), c(1), c(2))
    }
}

/// Data colour (blue) and sample colour (orange), used consistently across pictures.
pub const DATA_COLOR: RGBColor = RGBColor(31, 119, 180);
/// Sample colour.
pub const SAMPLE_COLOR: RGBColor = RGBColor(230, 110, 20);

/// A titled set of points for [`scatter`].
pub struct ScatterPanel<'a> {
    /// Panel title, e.g. "data (10000)".
    pub title: String,
    /// The points.
    pub points: &'a [P2],
    /// Their colour.
    pub color: RGBColor,
}

/// One panel of a quiver plot: arrows `vectors[i]` drawn at `origins[i]` at time t.
pub struct QuiverPanel {
    /// Panel title, e.g. "t = 0.50".
    pub title: String,
    /// Arrow tails.
    pub origins: Vec<P2>,
    /// Field values v(origin, t).
    pub vectors: Vec<P2>,
}

/// A scalar field on a regular `nx × ny` grid for [`heatmap`].
pub struct HeatPanel<'a> {
    /// Panel title.
    pub title: String,
    /// Cell values, row-major from the bottom-left (as [`Bounds::grid`]); NaN cells are left blank.
    pub values: Vec<f64>,
    /// Cells per row (and per column: grids are square).
    pub n: usize,
    /// Colour map.
    pub cmap: ColorMap,
    /// Colour-bar label.
    pub label: String,
    /// Points drawn on top (e.g. data), if any.
    pub overlay: Option<&'a [P2]>,
    /// Colour limits (lo, hi); `None` picks them from the values (see [`heatmap`]).
    pub range: Option<(f64, f64)>,
}

/// Maps any plotters error into anyhow with context.
fn pe<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// Renders with `draw` into a temporary PNG beside `path`, then renames it into place.
fn render_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let tmp = temp_path_for(path, "png");
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        let res = draw(&root).and_then(|_| root.present().map_err(pe));
        if let Err(e) = res {
            drop(root);
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("{}", path.display()));
        }
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot move picture into place", path.display()))
}

/// A scatter chart of `panel` in `area`.
fn scatter_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &ScatterPanel,
    b: Bounds,
    radius: u32,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    layered_panel(
        area,
        &panel.title,
        &[(panel.points, panel.color, 0.35, radius)],
        b,
    )
}

/// One layer of a [`layered_scatter`] panel: points, colour, opacity, radius in pixels.
pub type Layer<'a> = (&'a [P2], RGBColor, f64, u32);

/// A scatter chart of point layers drawn in order (later on top) in `area`.
fn layered_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    layers: &[Layer],
    b: Bounds,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, (SANS, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(b.x.0..b.x.1, b.y.0..b.y.1)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc("x₁")
        .y_desc("x₂")
        .label_style((SANS, 14))
        .axis_desc_style((SANS, 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(pe)?;
    for &(points, color, alpha, radius) in layers {
        let style = color.mix(alpha).filled();
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| inside(b, p))
                    .map(|p| Circle::new((p[0], p[1]), radius, style)),
            )
            .map_err(pe)?;
    }
    Ok(())
}

/// Side-by-side panels of point layers on shared axes `b`, `(title, layers)` each.
pub fn layered_scatter(path: &Path, panels: &[(String, Vec<Layer>)], b: Bounds) -> Result<()> {
    let k = panels.len().max(1) as u32;
    render_png(path, (420 * k, 440), |root| {
        let areas = root.split_evenly((1, k as usize));
        for (area, (title, layers)) in areas.iter().zip(panels) {
            layered_panel(area, title, layers, b)?;
        }
        Ok(())
    })
}

fn inside(b: Bounds, p: &P2) -> bool {
    p[0] >= b.x.0 && p[0] <= b.x.1 && p[1] >= b.y.0 && p[1] <= b.y.1
}

/// Point radius in pixels: smaller for denser clouds.
fn radius_for(n: usize) -> u32 {
    if n > 20_000 {
        1
    } else {
        2
    }
}

/// Side-by-side scatter panels on shared axes (data vs samples).
pub fn scatter(path: &Path, panels: &[ScatterPanel]) -> Result<()> {
    let sets: Vec<&[P2]> = panels.iter().map(|p| p.points).collect();
    let b = Bounds::around(&sets);
    let k = panels.len().max(1) as u32;
    render_png(path, (520 * k, 540), |root| {
        let areas = root.split_evenly((1, k as usize));
        for (area, panel) in areas.iter().zip(panels) {
            scatter_panel(area, panel, b, radius_for(panel.points.len()))?;
        }
        Ok(())
    })
}

/// A vertical colour bar for values in [lo, hi] in `area`.
fn colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cmap: ColorMap,
    lo: f64,
    hi: f64,
    label: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    };
    let mut chart = ChartBuilder::on(area)
        .margin_top(46)
        .margin_bottom(52)
        .margin_left(4)
        .margin_right(4)
        // Labels right of the bar: text that runs long spills into the margin, not the bar.
        .set_label_area_size(LabelAreaPosition::Right, 62)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc(label)
        .y_labels(6)
        .y_label_formatter(&|v| fmt_tick(if v.abs() < 1e-9 * (hi - lo) { 0.0 } else { *v }))
        .label_style((SANS, 13))
        .axis_desc_style((SANS, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(pe)?;
    let steps = 100;
    chart
        .draw_series((0..steps).map(|i| {
            let a = lo + (hi - lo) * i as f64 / steps as f64;
            let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                cmap.at((i as f64 + 0.5) / steps as f64).filled(),
            )
        }))
        .map_err(pe)?;
    Ok(())
}

/// Compact tick labels: 3 significant digits, scientific outside [1e-3, 1e4).
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// The q-quantile of finite values (0 if none).
fn quantile(vals: impl Iterator<Item = f64>, q: f64) -> f64 {
    let mut v: Vec<f64> = vals.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Quiver plots of a vector field, one panel per time, on the window `b`, with faint
/// `background` points (e.g. the data). Arrows are coloured by |v| (one colour bar for all
/// panels) and, within each panel, scaled so its 98th-percentile magnitude spans 0.9 grid cells
/// (longer ones are clipped to that): lengths show directions and relative speeds within a
/// panel, colours compare speeds across panels.
pub fn quiver(
    path: &Path,
    panels: &[QuiverPanel],
    b: Bounds,
    background: Option<&[P2]>,
) -> Result<()> {
    let mags: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.vectors.iter().map(|v| v[0].hypot(v[1])))
        .collect();
    let vmax_all = mags
        .iter()
        .copied()
        .filter(|m| m.is_finite())
        .fold(0.0, f64::max)
        .max(1e-12);
    let cells = (panels.first().map_or(1, |p| p.origins.len()) as f64)
        .sqrt()
        .max(1.0);
    let cell = (b.x.1 - b.x.0) / cells;
    let k = panels.len().max(1);
    render_png(path, (470 * k as u32 + 110, 500), |root| {
        let (main, bar) = root.split_horizontally(470 * k as u32);
        for (area, panel) in main.split_evenly((1, k)).iter().zip(panels) {
            let vmax = quantile(panel.vectors.iter().map(|v| v[0].hypot(v[1])), 0.98).max(1e-12);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (SANS, 22))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(46)
                .build_cartesian_2d(b.x.0..b.x.1, b.y.0..b.y.1)
                .map_err(pe)?;
            chart
                .configure_mesh()
                .x_desc("x₁")
                .y_desc("x₂")
                .label_style((SANS, 14))
                .axis_desc_style((SANS, 16))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(pe)?;
            if let Some(bg) = background {
                chart
                    .draw_series(
                        bg.iter()
                            .filter(|p| inside(b, p))
                            .map(|p| Circle::new((p[0], p[1]), 1, BLACK.mix(0.08).filled())),
                    )
                    .map_err(pe)?;
            }
            for (o, v) in panel.origins.iter().zip(&panel.vectors) {
                let m = v[0].hypot(v[1]);
                if !m.is_finite() || m == 0.0 {
                    continue;
                }
                let len = 0.9 * cell * (m / vmax).min(1.0);
                let (ux, uy) = (v[0] / m, v[1] / m);
                let tip = (o[0] + ux * len, o[1] + uy * len);
                let color = ColorMap::Viridis.at(m / vmax_all);
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(o[0], o[1]), tip],
                        color.stroke_width(2),
                    )))
                    .map_err(pe)?;
                let head = 0.3 * len;
                let (px, py) = (-uy, ux);
                let left = (
                    tip.0 - ux * head + px * head * 0.5,
                    tip.1 - uy * head + py * head * 0.5,
                );
                let right = (
                    tip.0 - ux * head - px * head * 0.5,
                    tip.1 - uy * head - py * head * 0.5,
                );
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        vec![tip, left, right],
                        color.filled(),
                    )))
                    .map_err(pe)?;
            }
        }
        colorbar(&bar, ColorMap::Viridis, 0.0, vmax_all, "|v|")
    })
}

/// Sample trajectories x(t) from noise (grey dots) to samples (orange dots) over the faint
/// `background` points.
pub fn trajectories(path: &Path, trajs: &[Vec<P2>], background: Option<&[P2]>) -> Result<()> {
    let ends: Vec<P2> = trajs.iter().filter_map(|t| t.last().copied()).collect();
    let starts: Vec<P2> = trajs.iter().filter_map(|t| t.first().copied()).collect();
    let mut sets: Vec<&[P2]> = vec![&ends, &starts];
    if let Some(bg) = background {
        sets.push(bg);
    }
    let b = Bounds::around(&sets);
    render_png(path, (640, 640), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{} trajectories, noise (grey) → samples (orange)",
                    trajs.len()
                ),
                (SANS, 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(b.x.0..b.x.1, b.y.0..b.y.1)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("x₁")
            .y_desc("x₂")
            .label_style((SANS, 14))
            .axis_desc_style((SANS, 16))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(pe)?;
        if let Some(bg) = background {
            chart
                .draw_series(
                    bg.iter()
                        .filter(|p| inside(b, p))
                        .map(|p| Circle::new((p[0], p[1]), 1, DATA_COLOR.mix(0.12).filled())),
                )
                .map_err(pe)?;
        }
        for t in trajs {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    t.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>(),
                    BLACK.mix(0.25),
                )))
                .map_err(pe)?;
        }
        chart
            .draw_series(
                starts
                    .iter()
                    .map(|p| Circle::new((p[0], p[1]), 2, RGBColor(120, 120, 120).filled())),
            )
            .map_err(pe)?;
        chart
            .draw_series(
                ends.iter()
                    .map(|p| Circle::new((p[0], p[1]), 3, SAMPLE_COLOR.filled())),
            )
            .map_err(pe)?;
        Ok(())
    })
}

/// Training-loss curve: the raw loss (faint) and its moving average over ~2% of the steps
/// (bold), on a log y axis when every loss is positive (regression losses) and a linear one
/// otherwise (score-matching objectives go negative); the learning rate on a second panel when
/// given.
pub fn loss_curve(path: &Path, steps: &[f64], loss: &[f64], lr: Option<&[f64]>) -> Result<()> {
    let pts: Vec<(f64, f64)> = steps
        .iter()
        .zip(loss)
        .filter(|(_, l)| l.is_finite())
        .map(|(s, l)| (*s, *l))
        .collect();
    if pts.is_empty() {
        return Err(anyhow!("{}: no finite loss values to plot", path.display()));
    }
    let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    // A log axis only when the loss spans more than a decade: inside one decade plotters
    // places no log ticks and the axis would be unlabelled.
    let log_y = lo > 0.0 && hi / lo > 10.0;
    let window = (pts.len() / 50).max(1);
    // Moving average (geometric on a log axis, arithmetic on a linear one).
    type Map = fn(f64) -> f64;
    let (fwd, inv): (Map, Map) = if log_y {
        (f64::ln, f64::exp)
    } else {
        (|v| v, |v| v)
    };
    let mut smooth = Vec::with_capacity(pts.len());
    let mut acc = 0.0;
    for (i, (s, l)) in pts.iter().enumerate() {
        acc += fwd(*l);
        if i >= window {
            acc -= fwd(pts[i - window].1);
        }
        smooth.push((*s, inv(acc / (i + 1).min(window) as f64)));
    }
    let (x0, x1) = (pts[0].0, pts[pts.len() - 1].0.max(pts[0].0 + 1.0));
    let x_labels = ((x1 - x0) as usize + 1).min(10);
    let h = if lr.is_some() { 700 } else { 480 };
    render_png(path, (760, h), |root| {
        let (top, bottom) = if lr.is_some() {
            root.split_vertically(470)
        } else {
            (root.clone(), root.clone())
        };
        // The two axis types are different Rust types: one macro body serves both.
        macro_rules! loss_panel {
            ($y:expr, $desc:expr) => {{
                let mut chart = ChartBuilder::on(&top)
                    .caption("training loss", (SANS, 22))
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(70)
                    .build_cartesian_2d(x0..x1, $y)
                    .map_err(pe)?;
                chart
                    .configure_mesh()
                    .x_desc("step")
                    .y_desc($desc)
                    .x_labels(x_labels)
                    .x_label_formatter(&|v| format!("{v:.0}"))
                    .y_label_formatter(&|v| fmt_tick(*v))
                    .light_line_style(WHITE.mix(0.0))
                    .label_style((SANS, 14))
                    .axis_desc_style((SANS, 16))
                    .draw()
                    .map_err(pe)?;
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), DATA_COLOR.mix(0.3)))
                    .map_err(pe)?;
                chart
                    .draw_series(LineSeries::new(
                        smooth.iter().copied(),
                        DATA_COLOR.stroke_width(2),
                    ))
                    .map_err(pe)?
                    .label(format!("moving average ({window} steps)"))
                    .legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], DATA_COLOR.stroke_width(2))
                    });
                chart
                    .configure_series_labels()
                    .label_font((SANS, 14))
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK.mix(0.3))
                    .draw()
                    .map_err(pe)?;
            }};
        }
        if log_y {
            loss_panel!((lo / 1.2..hi * 1.2).log_scale(), "loss (log scale)");
        } else {
            let pad = 0.05 * (hi - lo).max(1e-12);
            loss_panel!(lo - pad..hi + pad, "loss");
        }
        if let Some(lr) = lr {
            let lp: Vec<(f64, f64)> = steps
                .iter()
                .zip(lr)
                .filter(|(_, v)| v.is_finite())
                .map(|(s, v)| (*s, *v))
                .collect();
            let top_lr = lp.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-12) * 1.1;
            let mut c2 = ChartBuilder::on(&bottom)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(x0..x1, 0.0..top_lr)
                .map_err(pe)?;
            c2.configure_mesh()
                .x_desc("step")
                .y_desc("learning rate")
                .x_labels(x_labels)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .light_line_style(WHITE.mix(0.0))
                .y_labels(4)
                .y_label_formatter(&|v| fmt_tick(*v))
                .label_style((SANS, 14))
                .axis_desc_style((SANS, 16))
                .draw()
                .map_err(pe)?;
            c2.draw_series(LineSeries::new(lp, SAMPLE_COLOR.stroke_width(2)))
                .map_err(pe)?;
        }
        Ok(())
    })
}

/// Heat maps of scalar fields on the window `b`, side by side, each with its own colour bar.
/// Sequential maps span the 1st–99th percentile of finite values; diverging maps are symmetric
/// about 0 with half-range the 99th percentile of |value|.
pub fn heatmap(path: &Path, panels: &[HeatPanel], b: Bounds) -> Result<()> {
    let k = panels.len().max(1);
    render_png(path, (560 * k as u32, 500), |root| {
        for (area, panel) in root.split_evenly((1, k)).iter().zip(panels) {
            let (lo, hi) = match (panel.range, panel.cmap) {
                (Some(r), _) => r,
                (None, ColorMap::Viridis) => (
                    quantile(panel.values.iter().copied(), 0.01),
                    quantile(panel.values.iter().copied(), 0.99),
                ),
                (None, ColorMap::Diverging) => {
                    let a = quantile(panel.values.iter().map(|v| v.abs()), 0.99).max(1e-12);
                    (-a, a)
                }
            };
            let span = if hi > lo { hi - lo } else { 1.0 };
            let (plot, bar) = area.split_horizontally(460);
            let mut chart = ChartBuilder::on(&plot)
                .caption(&panel.title, (SANS, 20))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(46)
                .build_cartesian_2d(b.x.0..b.x.1, b.y.0..b.y.1)
                .map_err(pe)?;
            chart
                .configure_mesh()
                .x_desc("x₁")
                .y_desc("x₂")
                .label_style((SANS, 14))
                .axis_desc_style((SANS, 16))
                .disable_mesh()
                .draw()
                .map_err(pe)?;
            let n = panel.n.max(1);
            let (dx, dy) = ((b.x.1 - b.x.0) / n as f64, (b.y.1 - b.y.0) / n as f64);
            chart
                .draw_series(
                    panel
                        .values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(idx, v)| {
                            let (i, j) = (idx % n, idx / n);
                            let (x, y) = (b.x.0 + i as f64 * dx, b.y.0 + j as f64 * dy);
                            Rectangle::new(
                                [(x, y), (x + dx, y + dy)],
                                panel.cmap.at((v - lo) / span).filled(),
                            )
                        }),
                )
                .map_err(pe)?;
            if let Some(ov) = panel.overlay {
                chart
                    .draw_series(
                        ov.iter()
                            .filter(|p| inside(b, p))
                            .map(|p| Circle::new((p[0], p[1]), 1, WHITE.mix(0.5).filled())),
                    )
                    .map_err(pe)?;
            }
            colorbar(&bar, panel.cmap, lo, hi, &panel.label)?;
        }
        Ok(())
    })
}

/// An animated GIF of point clouds over time (e.g. samples flowing from noise at t = 0 to data
/// at t = 1), one frame per `(t, points)`, `delay_ms` between frames, on fixed axes, with the
/// faint `background` points in every frame.
pub fn flow_gif(
    path: &Path,
    frames: &[(f64, Vec<P2>)],
    background: Option<&[P2]>,
    delay_ms: u32,
) -> Result<()> {
    register_font();
    if frames.is_empty() {
        return Err(anyhow!("{}: no frames to animate", path.display()));
    }
    let mut sets: Vec<&[P2]> = frames.iter().map(|f| f.1.as_slice()).collect();
    if let Some(bg) = background {
        sets.push(bg);
    }
    let b = Bounds::around(&sets);
    let tmp = temp_path_for(path, "gif");
    let res = (|| -> Result<()> {
        let root = BitMapBackend::gif(&tmp, (480, 480), delay_ms)
            .map_err(pe)?
            .into_drawing_area();
        for (t, pts) in frames {
            root.fill(&WHITE).map_err(pe)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("t = {t:.2}"), (SANS, 20))
                .margin(10)
                .x_label_area_size(34)
                .y_label_area_size(44)
                .build_cartesian_2d(b.x.0..b.x.1, b.y.0..b.y.1)
                .map_err(pe)?;
            chart
                .configure_mesh()
                .x_desc("x₁")
                .y_desc("x₂")
                .label_style((SANS, 12))
                .axis_desc_style((SANS, 14))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(pe)?;
            if let Some(bg) = background {
                chart
                    .draw_series(
                        bg.iter()
                            .filter(|p| inside(b, p))
                            .map(|p| Circle::new((p[0], p[1]), 1, DATA_COLOR.mix(0.1).filled())),
                    )
                    .map_err(pe)?;
            }
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| inside(b, p))
                        .map(|p| Circle::new((p[0], p[1]), 1, SAMPLE_COLOR.mix(0.6).filled())),
                )
                .map_err(pe)?;
            root.present().map_err(pe)?;
        }
        Ok(())
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("{}", path.display()));
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot move animation into place", path.display()))
}

/// An animated GIF of image grids (e.g. samples going from noise to images), one frame per
/// `(width, height, bytes)` of `channels` (1 grey or 3 RGB) 8-bit values per pixel, all of one
/// size, `delay_ms` between frames, written atomically.
pub fn image_gif(
    path: &Path,
    frames: &[(usize, usize, Vec<u8>)],
    channels: usize,
    delay_ms: u32,
) -> Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame, RgbaImage};
    if frames.is_empty() {
        return Err(anyhow!("{}: no frames to animate", path.display()));
    }
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.set_repeat(Repeat::Infinite)
            .with_context(|| format!("{}", path.display()))?;
        for (w, h, bytes) in frames {
            let rgba: Vec<u8> = bytes
                .chunks(channels)
                .flat_map(|px| match px {
                    [g] => [*g, *g, *g, 255],
                    [r, g, b] => [*r, *g, *b, 255],
                    _ => [0, 0, 0, 255],
                })
                .collect();
            let img = RgbaImage::from_raw(*w as u32, *h as u32, rgba)
                .ok_or_else(|| anyhow!("{}: a frame of the wrong size", path.display()))?;
            let delay = Delay::from_numer_denom_ms(delay_ms, 1);
            enc.encode_frame(Frame::from_parts(img, 0, 0, delay))
                .with_context(|| format!("{}", path.display()))?;
        }
    }
    crate::output::atomic_write(path, &out)
}

// ---------------------------------------------------------------------------------------------
// Line charts (the lessons' curves: errors against dimension, variances along a run, score
// slices, decay rates), added for `scoreflow lesson`.
// ---------------------------------------------------------------------------------------------

/// One curve of a [`LinePanel`]: points (x, y) joined in order.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// The points; non-finite ones (and, on log axes, non-positive ones) are skipped.
    pub points: Vec<P2>,
    /// Colour.
    pub color: RGBColor,
    /// Dashed (references: the truth, a floor, a prediction) instead of solid.
    pub dashed: bool,
    /// Dots at the points (for sparse measurements).
    pub markers: bool,
}

/// One panel of [`lines`].
pub struct LinePanel {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// The curves.
    pub series: Vec<Series>,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
}

/// A categorical palette for curves (matplotlib's tab10 order, data blue and sample orange
/// first).
pub const PALETTE: [RGBColor; 8] = [
    DATA_COLOR,
    SAMPLE_COLOR,
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Most points a dashed series is drawn with.
const DASHED_POINTS: usize = 40;

/// The range of `v` padded by 5% (by a factor on a log axis); a unit range when empty.
fn padded_range(v: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return if log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo / 2.0, hi * 2.0)
        };
        (lo / 1.3, hi * 1.3)
    } else {
        let pad = if hi > lo {
            0.05 * (hi - lo)
        } else {
            0.5_f64.max(0.05 * hi.abs())
        };
        (lo - pad, hi + pad)
    }
}

/// Line charts side by side, one per panel, each with its own axes (linear or logarithmic) and
/// a legend.
pub fn lines(path: &Path, panels: &[LinePanel]) -> Result<()> {
    let k = panels.len().max(1);
    render_png(path, (600 * k as u32, 480), |root| {
        for (area, panel) in root.split_evenly((1, k)).iter().zip(panels) {
            let keep = |p: &&P2| {
                p[0].is_finite()
                    && p[1].is_finite()
                    && (!panel.log_x || p[0] > 0.0)
                    && (!panel.log_y || p[1] > 0.0)
            };
            let pts = || {
                panel
                    .series
                    .iter()
                    .flat_map(|s| s.points.iter().filter(keep))
            };
            let xr = padded_range(pts().map(|p| p[0]), panel.log_x);
            let yr = padded_range(pts().map(|p| p[1]), panel.log_y);
            // The four axis combinations are four Rust types: one macro body serves them all.
            macro_rules! draw {
                ($x:expr, $y:expr) => {{
                    let mut chart = ChartBuilder::on(area)
                        .caption(&panel.title, (SANS, 20))
                        .margin(12)
                        .x_label_area_size(40)
                        .y_label_area_size(64)
                        .build_cartesian_2d($x, $y)
                        .map_err(pe)?;
                    chart
                        .configure_mesh()
                        .x_desc(panel.x_label.as_str())
                        .y_desc(panel.y_label.as_str())
                        .x_label_formatter(&|v| fmt_tick(*v))
                        .y_label_formatter(&|v| fmt_tick(*v))
                        .light_line_style(WHITE.mix(0.0))
                        .label_style((SANS, 14))
                        .axis_desc_style((SANS, 16))
                        .draw()
                        .map_err(pe)?;
                    // Solid curves first, dashed references on top of them.
                    let order = panel.series.iter().filter(|s| !s.dashed);
                    for s in order.chain(panel.series.iter().filter(|s| s.dashed)) {
                        let mut line: Vec<(f64, f64)> =
                            s.points.iter().filter(keep).map(|p| (p[0], p[1])).collect();
                        if s.dashed && line.len() > DASHED_POINTS {
                            // Dashes restart on every segment: keep segments long enough to
                            // show them (references are smooth curves).
                            let step = line.len().div_ceil(DASHED_POINTS);
                            let last = *line.last().expect("non-empty");
                            line = line.into_iter().step_by(step).collect();
                            if line.last() != Some(&last) {
                                line.push(last);
                            }
                        }
                        let style = s.color.stroke_width(2);
                        let anno = if s.dashed {
                            chart
                                .draw_series(DashedLineSeries::new(line.clone(), 8, 5, style))
                                .map_err(pe)?
                        } else {
                            chart
                                .draw_series(LineSeries::new(line.clone(), style))
                                .map_err(pe)?
                        };
                        let color = s.color;
                        anno.label(s.label.as_str()).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                        });
                        if s.markers {
                            chart
                                .draw_series(
                                    line.iter().map(|p| Circle::new(*p, 3, s.color.filled())),
                                )
                                .map_err(pe)?;
                        }
                    }
                    chart
                        .configure_series_labels()
                        .label_font((SANS, 13))
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK.mix(0.3))
                        .position(SeriesLabelPosition::UpperLeft)
                        .draw()
                        .map_err(pe)?;
                }};
            }
            match (panel.log_x, panel.log_y) {
                (false, false) => draw!(xr.0..xr.1, yr.0..yr.1),
                (true, false) => draw!((xr.0..xr.1).log_scale(), yr.0..yr.1),
                (false, true) => draw!(xr.0..xr.1, (yr.0..yr.1).log_scale()),
                (true, true) => draw!((xr.0..xr.1).log_scale(), (yr.0..yr.1).log_scale()),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colormaps_hit_their_end_stops() {
        assert_eq!(ColorMap::Viridis.at(0.0), RGBColor(68, 1, 84));
        assert_eq!(ColorMap::Viridis.at(1.0), RGBColor(253, 231, 37));
        assert_eq!(ColorMap::Diverging.at(0.5), RGBColor(247, 247, 247));
        // Out-of-range and NaN inputs are clamped, never panic.
        assert_eq!(ColorMap::Viridis.at(7.0), ColorMap::Viridis.at(1.0));
        assert_eq!(ColorMap::Viridis.at(f64::NAN), ColorMap::Viridis.at(0.0));
    }

    #[test]
    fn bounds_ignore_outliers_and_are_square() {
        let mut pts: Vec<P2> = (0..1000)
            .map(|i| [(i % 10) as f64, (i / 100) as f64 * 0.5])
            .collect();
        pts.push([1e6, -1e6]);
        let b = Bounds::around(&[&pts]);
        // The 0.5–99.5% quantiles drop the single outlier (1 of 1001 points).
        assert!(b.x.1 < 20.0 && b.y.0 > -20.0, "{b:?}");
        assert!(((b.x.1 - b.x.0) - (b.y.1 - b.y.0)).abs() < 1e-12);
        let g = b.grid(4);
        assert_eq!(g.len(), 16);
        assert!(g.iter().all(|p| inside(b, p)));
    }

    /// Renders every picture type into a temporary directory and checks each is a non-trivial
    /// image (the pictures themselves were inspected by eye when written).
    #[test]
    fn every_picture_renders() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<P2> = (0..400)
            .map(|i| {
                let a = i as f64 * 0.1;
                [2.0 * a.cos(), 2.0 * a.sin()]
            })
            .collect();
        let samples: Vec<P2> = data.iter().map(|p| [p[0] * 1.1, p[1] * 0.9]).collect();
        let p = dir.path().join("scatter.png");
        scatter(
            &p,
            &[
                ScatterPanel {
                    title: "data".into(),
                    points: &data,
                    color: DATA_COLOR,
                },
                ScatterPanel {
                    title: "samples".into(),
                    points: &samples,
                    color: SAMPLE_COLOR,
                },
            ],
        )
        .unwrap();
        let b = Bounds::around(&[&data]);
        let origins = b.grid(12);
        let panels: Vec<QuiverPanel> = [0.0, 1.0]
            .iter()
            .map(|t| QuiverPanel {
                title: format!("t = {t}"),
                vectors: origins.iter().map(|o| [-o[1] * (1.0 + t), o[0]]).collect(),
                origins: origins.clone(),
            })
            .collect();
        quiver(&dir.path().join("quiver.png"), &panels, b, Some(&data)).unwrap();
        let trajs: Vec<Vec<P2>> = data
            .iter()
            .take(30)
            .map(|p| {
                (0..=10)
                    .map(|k| [p[0] * k as f64 / 10.0, p[1] * k as f64 / 10.0])
                    .collect()
            })
            .collect();
        trajectories(&dir.path().join("traj.png"), &trajs, Some(&data)).unwrap();
        let steps: Vec<f64> = (1..=500).map(|s| s as f64).collect();
        let loss: Vec<f64> = steps.iter().map(|s| 1.0 / s.sqrt() + 0.01).collect();
        let lr: Vec<f64> = steps.iter().map(|s| 1e-3 * (s / 500.0)).collect();
        loss_curve(&dir.path().join("loss.png"), &steps, &loss, Some(&lr)).unwrap();
        // Score-matching losses go negative: a linear axis instead of an error.
        let neg: Vec<f64> = loss.iter().map(|l| l - 0.5).collect();
        loss_curve(&dir.path().join("loss_neg.png"), &steps, &neg, None).unwrap();
        let grid = b.grid(40);
        heatmap(
            &dir.path().join("heat.png"),
            &[
                HeatPanel {
                    title: "density".into(),
                    values: grid
                        .iter()
                        .map(|p| (-(p[0] * p[0] + p[1] * p[1])).exp())
                        .collect(),
                    n: 40,
                    cmap: ColorMap::Viridis,
                    label: "p(x)".into(),
                    overlay: Some(&data),
                    range: None,
                },
                HeatPanel {
                    title: "curl".into(),
                    values: grid.iter().map(|p| p[0] * p[1]).collect(),
                    n: 40,
                    cmap: ColorMap::Diverging,
                    label: "curl".into(),
                    overlay: None,
                    range: None,
                },
            ],
            b,
        )
        .unwrap();
        let frames: Vec<(f64, Vec<P2>)> = (0..=4)
            .map(|k| {
                (
                    k as f64 / 4.0,
                    samples
                        .iter()
                        .map(|p| [p[0] * k as f64 / 4.0, p[1]])
                        .collect(),
                )
            })
            .collect();
        flow_gif(&dir.path().join("flow.gif"), &frames, Some(&data), 200).unwrap();
        for f in [
            "scatter.png",
            "quiver.png",
            "traj.png",
            "loss.png",
            "heat.png",
            "flow.gif",
        ] {
            let len = std::fs::metadata(dir.path().join(f)).unwrap().len();
            assert!(len > 2000, "{f} is only {len} bytes");
        }
        // No temporary files left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty());
        if let Ok(keep) = std::env::var("SCOREFLOW_KEEP_PLOTS") {
            for f in [
                "scatter.png",
                "quiver.png",
                "traj.png",
                "loss.png",
                "heat.png",
                "flow.gif",
            ] {
                std::fs::copy(dir.path().join(f), Path::new(&keep).join(f)).unwrap();
            }
        }
    }

    /// Every axis combination renders, with dashed and marked series and a point that a log
    /// axis must skip (y = 0).
    #[test]
    fn line_charts_render_on_every_axis_kind() {
        let dir = tempfile::tempdir().unwrap();
        let series = |dashed: bool| Series {
            label: "curve".into(),
            points: vec![[1.0, 0.0], [2.0, 0.5], [4.0, 2.0], [8.0, f64::NAN]],
            color: PALETTE[2],
            dashed,
            markers: !dashed,
        };
        let panels: Vec<LinePanel> = [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .map(|(log_x, log_y)| LinePanel {
                title: format!("log x {log_x}, log y {log_y}"),
                x_label: "x".into(),
                y_label: "y".into(),
                series: vec![series(false), series(true)],
                log_x,
                log_y,
            })
            .collect();
        let path = dir.path().join("lines.png");
        lines(&path, &panels).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 2000);
    }
}
