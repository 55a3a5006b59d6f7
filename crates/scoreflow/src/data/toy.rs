//! The built-in 2-D toy densities of FFJORD / TorchCFM, following
//! `bench/datasets.py` (the PyTorch reference) exactly in distribution: same constants,
//! scalings and noise. Our draws come from ChaCha8 ([`Rng`]), so the *streams* differ from
//! numpy's; the *distributions* are the same.
//!
//! Scalings (all in the units the reference trains in; no standardisation is applied):
//!
//! | name | distribution |
//! |---|---|
//! | `8gaussians` | 8 equal-weight N(μₖ, (0.5/1.414)² I), μₖ = 4·(unit vector at k·45°)/1.414 (FFJORD's 1.414, not √2): mode radius ≈ 2.829 |
//! | `25gaussians` | 25 equal-weight N(μ, 0.1² I), μ ∈ {−4, −2, 0, 2, 4}² |
//! | `gmm_aniso` | 3 full-covariance components, weights 0.5 / 0.3 / 0.2 (see [`Dataset::mixture`]) |
//! | `checkerboard` | uniform on the 8 black squares ((⌊x/2⌋ + ⌊y/2⌋) even) of the 4×4 board of side-2 squares on [−4, 4)²: p = 1/32 there |
//! | `moons` | sklearn two moons (uniform angle, noise 0.1), then ·2 + (−1, −0.2): noise std 0.2 |
//! | `circles` | sklearn circles (radii 1 and 0.5, uniform angle, noise 0.08), then ·3 |
//! | `rings` | 4 circles of radii 3·{0.25, 0.5, 0.75, 1} (uniform angle), + N(0, 0.08² I) |
//! | `2spirals` | two opposite arms t ↦ (−t cos t + U/2, t sin t + U/2), t = 3π√U, ÷3, + N(0, 0.1² I) |
//! | `pinwheel` | 5 arms: f ~ N((1, 0), diag(0.3², 0.1²)) rotated by 2πk/5 + 0.25·e^{f₁}, then ·2 |
//! | `swissroll` | sklearn swiss roll (x, z) with t = 1.5π(1 + 2U), noise N(0, 1), then ÷5 |
//!
//!
//! Eight more sets share one mean (0) and one covariance (I) exactly and differ in everything
//! else — `star`, `bullseye`, `x_shape`, `h_lines`, `v_lines`, `dots`, `slant_up`, `circle`
//! (Datasaurus names); `data::shapes` documents how each is generated.
//!
//! Where the reference splits n points into groups (two moons, two circles, four rings, two
//! spirals), the group sizes are the same deterministic function of n, and the rows are then
//! shuffled, as in the reference.
//!
//! **Class labels** ([`Dataset::sample_labelled`], for class-conditional models): a mixture's
//! component index, the moon (outer 0, inner 1), the circle and ring (outer first), the spiral
//! arm and the pinwheel arm, taken from the very draws [`Dataset::sample`] makes.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use rand::seq::SliceRandom;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::mixture::MixtureSpec;
use super::shapes::{self, Shape};
use super::Points;
use crate::error::{Error, Result};
use crate::linalg::log_sum_exp;
use crate::tensor::Rng;

/// A built-in 2-D data set; `sample(n, rng)` draws n i.i.d. points (see the module table for
/// each distribution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Dataset {
    /// 8 Gaussians on a circle of radius 4/1.414, std 0.5/1.414.
    EightGaussians,
    /// 5×5 grid of Gaussians at {−4, −2, 0, 2, 4}², std 0.1.
    TwentyFiveGaussians,
    /// 3 anisotropic Gaussians with full covariances and unequal weights.
    GmmAniso,
    /// Uniform on the black squares of a checkerboard on [−4, 4)².
    Checkerboard,
    /// Two interleaved half circles.
    Moons,
    /// Two concentric circles.
    Circles,
    /// Four concentric circles.
    Rings,
    /// Two interleaved spirals.
    TwoSpirals,
    /// Five curved arms.
    Pinwheel,
    /// A 2-D swiss roll.
    Swissroll,
    /// Outline of a five-pointed star (mean 0, covariance I).
    Star,
    /// Two concentric circles (mean 0, covariance I).
    Bullseye,
    /// The two diagonals of a square (mean 0, covariance I).
    XShape,
    /// Four horizontal lines (mean 0, covariance I).
    HLines,
    /// Four vertical lines (mean 0, covariance I).
    VLines,
    /// A 3 × 3 grid of dots (mean 0, covariance I).
    Dots,
    /// Five parallel rising lines (mean 0, covariance I).
    SlantUp,
    /// One circle (mean 0, covariance I).
    Circle,
}

impl Dataset {
    /// Every built-in data set, in the order they are listed to users.
    pub const ALL: [Dataset; 18] = [
        Dataset::EightGaussians,
        Dataset::TwentyFiveGaussians,
        Dataset::GmmAniso,
        Dataset::Checkerboard,
        Dataset::Moons,
        Dataset::Circles,
        Dataset::Rings,
        Dataset::TwoSpirals,
        Dataset::Pinwheel,
        Dataset::Swissroll,
        Dataset::Star,
        Dataset::Bullseye,
        Dataset::XShape,
        Dataset::HLines,
        Dataset::VLines,
        Dataset::Dots,
        Dataset::SlantUp,
        Dataset::Circle,
    ];

    /// The sets with mean 0 and covariance I exactly ([`crate::data::shapes`]), in listing
    /// order.
    pub const SHAPES: [Dataset; 8] = [
        Dataset::Star,
        Dataset::Bullseye,
        Dataset::XShape,
        Dataset::HLines,
        Dataset::VLines,
        Dataset::Dots,
        Dataset::SlantUp,
        Dataset::Circle,
    ];

    /// The name used on the command line and in `datasets.py` (`"8gaussians"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dataset::EightGaussians => "8gaussians",
            Dataset::TwentyFiveGaussians => "25gaussians",
            Dataset::GmmAniso => "gmm_aniso",
            Dataset::Checkerboard => "checkerboard",
            Dataset::Moons => "moons",
            Dataset::Circles => "circles",
            Dataset::Rings => "rings",
            Dataset::TwoSpirals => "2spirals",
            Dataset::Pinwheel => "pinwheel",
            Dataset::Swissroll => "swissroll",
            Dataset::Star => "star",
            Dataset::Bullseye => "bullseye",
            Dataset::XShape => "x_shape",
            Dataset::HLines => "h_lines",
            Dataset::VLines => "v_lines",
            Dataset::Dots => "dots",
            Dataset::SlantUp => "slant_up",
            Dataset::Circle => "circle",
        }
    }

    /// Dimension d = 2 of every built-in set.
    pub fn dim(self) -> usize {
        2
    }

    /// n i.i.d. points (n, 2) of this density, all randomness from `rng`.
    pub fn sample(self, n: usize, rng: &mut Rng) -> Points {
        self.sample_labelled(n, rng).0
    }

    /// Number of classes of [`Dataset::sample_labelled`]: mixture components (8, 25, 3),
    /// moons 2, circles 2, rings 4, 2spirals 2, pinwheel 5; 0 for checkerboard, swissroll and
    /// the [`Dataset::SHAPES`].
    pub fn classes(self) -> usize {
        match self {
            Dataset::EightGaussians => 8,
            Dataset::TwentyFiveGaussians => 25,
            Dataset::GmmAniso => 3,
            Dataset::Moons | Dataset::Circles | Dataset::TwoSpirals => 2,
            Dataset::Rings => 4,
            Dataset::Pinwheel => 5,
            Dataset::Checkerboard
            | Dataset::Swissroll
            | Dataset::Star
            | Dataset::Bullseye
            | Dataset::XShape
            | Dataset::HLines
            | Dataset::VLines
            | Dataset::Dots
            | Dataset::SlantUp
            | Dataset::Circle => 0,
        }
    }

    /// [`Dataset::sample`] with each point's class (see the module documentation), `None` for
    /// the sets without classes; the points are exactly those `sample` draws from `rng`.
    pub fn sample_labelled(self, n: usize, rng: &mut Rng) -> (Points, Option<Vec<usize>>) {
        let mixture = |m: &MixtureSpec, rng: &mut Rng| {
            let (p, l) = m.sample_labelled(n, rng);
            (p, Some(l))
        };
        let (data, labels) = match self {
            Dataset::EightGaussians => return mixture(eight_gaussians(), rng),
            Dataset::TwentyFiveGaussians => return mixture(twenty_five_gaussians(), rng),
            Dataset::GmmAniso => return mixture(aniso(), rng),
            Dataset::Checkerboard => (checkerboard(n, rng), None),
            Dataset::Moons => labelled(moons(n, rng)),
            Dataset::Circles => labelled(circles(n, rng)),
            Dataset::Rings => labelled(rings(n, rng)),
            Dataset::TwoSpirals => labelled(two_spirals(n, rng)),
            Dataset::Pinwheel => labelled(pinwheel(n, rng)),
            Dataset::Swissroll => (swissroll(n, rng), None),
            Dataset::Star => (shapes::sample(Shape::Star, n, rng), None),
            Dataset::Bullseye => (shapes::sample(Shape::Bullseye, n, rng), None),
            Dataset::XShape => (shapes::sample(Shape::XShape, n, rng), None),
            Dataset::HLines => (shapes::sample(Shape::HLines, n, rng), None),
            Dataset::VLines => (shapes::sample(Shape::VLines, n, rng), None),
            Dataset::Dots => (shapes::sample(Shape::Dots, n, rng), None),
            Dataset::SlantUp => (shapes::sample(Shape::SlantUp, n, rng), None),
            Dataset::Circle => (shapes::sample(Shape::Circle, n, rng), None),
        };
        (Points { data, dim: 2 }, labels)
    }

    /// The exact mixture p = Σₖ wₖ N(μₖ, Σₖ) for `8gaussians`, `25gaussians`, `gmm_aniso`;
    /// `None` for the other sets.
    pub fn mixture(self) -> Option<MixtureSpec> {
        self.mixture_ref().cloned()
    }

    fn mixture_ref(self) -> Option<&'static MixtureSpec> {
        match self {
            Dataset::EightGaussians => Some(eight_gaussians()),
            Dataset::TwentyFiveGaussians => Some(twenty_five_gaussians()),
            Dataset::GmmAniso => Some(aniso()),
            _ => None,
        }
    }

    /// True when [`Self::log_density`] returns values (the mixtures, checkerboard, moons).
    pub fn has_log_density(self) -> bool {
        self.mixture_ref().is_some() || matches!(self, Dataset::Checkerboard | Dataset::Moons)
    }

    /// log p(xᵢ) per row: exact for the mixtures; −ln 32 on the black squares of checkerboard
    /// and −∞ elsewhere; for moons a 4000-node midpoint quadrature over the arc angle of the
    /// noise convolution (as `datasets.py`, ~1e-6 relative); `Ok(None)` for the other sets.
    /// `Error::Shape` unless the points are 2-D.
    pub fn log_density(self, x: &Points) -> Result<Option<Vec<f64>>> {
        if x.dim() != 2 {
            return Err(Error::Shape(format!(
                "{} is 2-D, the points have dimension {}",
                self.name(),
                x.dim()
            )));
        }
        if let Some(m) = self.mixture_ref() {
            return m.log_density(x).map(Some);
        }
        Ok(match self {
            Dataset::Checkerboard => Some(x.rows().map(checkerboard_log_density).collect()),
            Dataset::Moons => Some(moons_log_density(x)),
            _ => None,
        })
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = Error;

    /// Parses a name of [`Dataset::ALL`] (ASCII case-insensitive); an unknown name is an
    /// `Error::InvalidInput` listing every valid one.
    fn from_str(s: &str) -> Result<Self> {
        let key = s.trim().to_ascii_lowercase();
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == key)
            .ok_or_else(|| {
                let names: Vec<&str> = Dataset::ALL.iter().map(|d| d.name()).collect();
                Error::InvalidInput(format!(
                    "unknown dataset '{s}'; choose one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl TryFrom<String> for Dataset {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Dataset> for String {
    fn from(d: Dataset) -> String {
        d.name().to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Mixtures
// ---------------------------------------------------------------------------------------------

fn eight_gaussians() -> &'static MixtureSpec {
    static M: OnceLock<MixtureSpec> = OnceLock::new();
    M.get_or_init(|| {
        let s2 = 1.0 / 2f64.sqrt();
        let centers = [
            (1.0, 0.0),
            (-1.0, 0.0),
            (0.0, 1.0),
            (0.0, -1.0),
            (s2, s2),
            (s2, -s2),
            (-s2, s2),
            (-s2, -s2),
        ];
        let means = centers
            .iter()
            .map(|&(a, b)| vec![4.0 * a / 1.414, 4.0 * b / 1.414])
            .collect();
        let std = 0.5 / 1.414;
        MixtureSpec::isotropic(vec![1.0; 8], means, &[std * std; 8])
            .expect("8gaussians is a valid mixture")
    })
}

fn twenty_five_gaussians() -> &'static MixtureSpec {
    static M: OnceLock<MixtureSpec> = OnceLock::new();
    M.get_or_init(|| {
        let g = [-4.0, -2.0, 0.0, 2.0, 4.0];
        let means = g
            .iter()
            .flat_map(|&a| g.iter().map(move |&b| vec![a, b]))
            .collect();
        MixtureSpec::isotropic(vec![1.0; 25], means, &[0.1 * 0.1; 25])
            .expect("25gaussians is a valid mixture")
    })
}

fn aniso() -> &'static MixtureSpec {
    static M: OnceLock<MixtureSpec> = OnceLock::new();
    M.get_or_init(|| {
        MixtureSpec::new(
            vec![0.5, 0.3, 0.2],
            vec![vec![-2.0, -1.0], vec![2.0, -1.0], vec![0.0, 2.0]],
            vec![
                vec![0.60, 0.45, 0.45, 0.60],
                vec![0.30, -0.20, -0.20, 0.40],
                vec![1.00, 0.00, 0.00, 0.05],
            ],
        )
        .expect("gmm_aniso is a valid mixture")
    })
}

// ---------------------------------------------------------------------------------------------
// Other generators (row-major (n, 2) data, and the class of each row where there are classes)
// ---------------------------------------------------------------------------------------------

fn labelled((data, labels): (Vec<f64>, Vec<usize>)) -> (Vec<f64>, Option<Vec<usize>>) {
    (data, Some(labels))
}

fn normal(rng: &mut Rng) -> f64 {
    StandardNormal.sample(rng)
}

fn uniform(rng: &mut Rng) -> f64 {
    rng.random::<f64>()
}

/// Shuffles the rows of row-major (n, 2) data and their labels in place (one uniform
/// permutation applied to both).
fn shuffle_rows(data: &mut [f64], labels: &mut [usize], rng: &mut Rng) {
    let n = data.len() / 2;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(rng);
    let src = data.to_vec();
    let src_labels = labels.to_vec();
    for (i, &j) in idx.iter().enumerate() {
        data[2 * i] = src[2 * j];
        data[2 * i + 1] = src[2 * j + 1];
        labels[i] = src_labels[j];
    }
}

/// Adds N(0, s² I) noise to every coordinate.
fn add_noise(data: &mut [f64], s: f64, rng: &mut Rng) {
    data.iter_mut().for_each(|v| *v += s * normal(rng));
}

/// FFJORD: x₁ ~ U[−2, 2), x₂ = U[0, 1) − 2·B + (⌊x₁⌋ mod 2), B ~ Bernoulli(½); then ·2.
fn checkerboard(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut data = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let x1 = uniform(rng) * 4.0 - 2.0;
        let x2 = uniform(rng) - 2.0 * rng.random_range(0..2u32) as f64 + x1.floor().rem_euclid(2.0);
        data.extend([2.0 * x1, 2.0 * x2]);
    }
    data
}

/// log p = −ln 32 on the black squares ((⌊x₁/2⌋ + ⌊x₂/2⌋) even, inside [−4, 4)²), else −∞.
fn checkerboard_log_density(x: &[f64]) -> f64 {
    let (u, v) = (x[0] / 2.0, x[1] / 2.0);
    let inside = (-2.0..2.0).contains(&u) && (-2.0..2.0).contains(&v);
    if inside && (u.floor() + v.floor()).rem_euclid(2.0) == 0.0 {
        -(32f64.ln())
    } else {
        f64::NEG_INFINITY
    }
}

/// sklearn `make_moons(noise=0.1)` with uniform angles (outer: n/2 rounded down), shuffled,
/// then ·2 + (−1, −0.2).
fn moons(n: usize, rng: &mut Rng) -> (Vec<f64>, Vec<usize>) {
    let n_out = n / 2;
    let mut data = Vec::with_capacity(2 * n);
    let mut labels: Vec<usize> = (0..n).map(|i| usize::from(i >= n_out)).collect();
    for i in 0..n {
        let a = uniform(rng) * PI;
        data.extend(if i < n_out {
            [a.cos(), a.sin()]
        } else {
            [1.0 - a.cos(), 1.0 - a.sin() - 0.5]
        });
    }
    shuffle_rows(&mut data, &mut labels, rng);
    add_noise(&mut data, 0.1, rng);
    for r in data.chunks_exact_mut(2) {
        r[0] = 2.0 * r[0] - 1.0;
        r[1] = 2.0 * r[1] - 0.2;
    }
    (data, labels)
}

/// Number of angle nodes of the moons quadrature (as `datasets.py`).
const MOONS_QUADRATURE: usize = 4000;

/// The 2Q centres 2·c_m(a_q) + (−1, −0.2) of the moons quadrature, a_q = (q + ½)π/Q.
fn moons_centers() -> &'static [[f64; 2]] {
    static CENTERS: OnceLock<Vec<[f64; 2]>> = OnceLock::new();
    CENTERS.get_or_init(|| {
        let q = MOONS_QUADRATURE;
        let angles = (0..q).map(|i| (i as f64 + 0.5) / q as f64 * PI);
        let outer = angles
            .clone()
            .map(|a| [2.0 * a.cos() - 1.0, 2.0 * a.sin() - 0.2]);
        let inner = angles.map(|a| [2.0 * (1.0 - a.cos()) - 1.0, 2.0 * (0.5 - a.sin()) - 0.2]);
        outer.chain(inner).collect()
    })
}

/// p(x) = ½ Σ_moon (1/π) ∫₀^π N(x; 2 c_moon(a) + (−1, −0.2), 0.2² I) da by the midpoint rule in
/// a: log of the mean of 2Q isotropic Gaussians (rows in parallel).
fn moons_log_density(x: &Points) -> Vec<f64> {
    let centers = moons_centers();
    let s2 = 0.2f64 * 0.2;
    let log_norm = -(2.0 * PI * s2).ln() - (centers.len() as f64).ln();
    let rows: Vec<&[f64]> = x.rows().collect();
    rows.par_iter()
        .map_init(
            || vec![0.0; centers.len()],
            |lp, r| {
                for (l, c) in lp.iter_mut().zip(centers) {
                    let (dx, dy) = (r[0] - c[0], r[1] - c[1]);
                    *l = -0.5 * (dx * dx + dy * dy) / s2;
                }
                log_sum_exp(lp) + log_norm
            },
        )
        .collect()
}

/// sklearn `make_circles(factor=0.5, noise=0.08)` with uniform angles (outer: n/2 rounded
/// down), shuffled, then ·3.
fn circles(n: usize, rng: &mut Rng) -> (Vec<f64>, Vec<usize>) {
    let n_out = n / 2;
    let mut data = Vec::with_capacity(2 * n);
    let mut labels: Vec<usize> = (0..n).map(|i| usize::from(i >= n_out)).collect();
    for i in 0..n {
        let a = uniform(rng) * 2.0 * PI;
        let r = if i < n_out { 1.0 } else { 0.5 };
        data.extend([r * a.cos(), r * a.sin()]);
    }
    shuffle_rows(&mut data, &mut labels, rng);
    add_noise(&mut data, 0.08, rng);
    data.iter_mut().for_each(|v| *v *= 3.0);
    (data, labels)
}

/// FFJORD rings: radii 3·{0.25, 0.5, 0.75, 1} with n − 3⌊n/4⌋, ⌊n/4⌋, ⌊n/4⌋, ⌊n/4⌋ points,
/// uniform angles, shuffled, + N(0, 0.08² I).
fn rings(n: usize, rng: &mut Rng) -> (Vec<f64>, Vec<usize>) {
    let k = n / 4;
    let sizes = [n - 3 * k, k, k, k];
    let radii = [0.25, 0.5, 0.75, 1.0];
    let mut data = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    // Outer ring first: class 0 is radius 3, class 3 radius 0.75.
    for (c, (&m, &r)) in sizes.iter().zip(&radii).enumerate() {
        labels.extend(std::iter::repeat_n(3 - c, m));
        for _ in 0..m {
            let a = uniform(rng) * 2.0 * PI;
            data.extend([3.0 * r * a.cos(), 3.0 * r * a.sin()]);
        }
    }
    shuffle_rows(&mut data, &mut labels, rng);
    add_noise(&mut data, 0.08, rng);
    (data, labels)
}

/// FFJORD 2spirals: arm t ↦ (−t cos t + U/2, t sin t + U/2) with t = √U · 540° (in radians),
/// the second arm (n − n/2 points) negated; ÷3, + N(0, 0.1² I), shuffled.
fn two_spirals(n: usize, rng: &mut Rng) -> (Vec<f64>, Vec<usize>) {
    let n1 = n / 2;
    let mut data = Vec::with_capacity(2 * n);
    let mut labels: Vec<usize> = (0..n).map(|i| usize::from(i >= n1)).collect();
    for i in 0..n {
        let t = uniform(rng).sqrt() * 540.0 * (2.0 * PI) / 360.0;
        let dx = -t.cos() * t + uniform(rng) * 0.5;
        let dy = t.sin() * t + uniform(rng) * 0.5;
        let sign = if i < n1 { 1.0 } else { -1.0 };
        data.extend([sign * dx / 3.0, sign * dy / 3.0]);
    }
    add_noise(&mut data, 0.1, rng);
    shuffle_rows(&mut data, &mut labels, rng);
    (data, labels)
}

/// FFJORD pinwheel: f = (1 + 0.3 z₁, 0.1 z₂), arm k ~ U{0..4}, angle θ = 2πk/5 + 0.25·e^{f₁},
/// x = 2·(f₁ cos θ + f₂ sin θ, −f₁ sin θ + f₂ cos θ) (row vector f times [[c, −s], [s, c]]).
fn pinwheel(n: usize, rng: &mut Rng) -> (Vec<f64>, Vec<usize>) {
    let (radial_std, tangential_std, num_classes, rate) = (0.3, 0.1, 5u32, 0.25);
    let mut data = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let f1 = 1.0 + radial_std * normal(rng);
        let f2 = tangential_std * normal(rng);
        let k = rng.random_range(0..num_classes);
        let angle = 2.0 * PI * k as f64 / num_classes as f64 + rate * f1.exp();
        let (s, c) = angle.sin_cos();
        data.extend([2.0 * (f1 * c + f2 * s), 2.0 * (-f1 * s + f2 * c)]);
        labels.push(k as usize);
    }
    (data, labels)
}

/// sklearn `make_swiss_roll(noise=1.0)[:, [0, 2]] / 5`: t = 1.5π(1 + 2U),
/// x = (t cos t + z₁, t sin t + z₂)/5 (the dropped height coordinate is not drawn).
fn swissroll(n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut data = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let t = 1.5 * PI * (1.0 + 2.0 * uniform(rng));
        let x = t * t.cos() + normal(rng);
        let z = t * t.sin() + normal(rng);
        data.extend([x / 5.0, z / 5.0]);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::rng;

    const N: usize = 20_000;

    type Feature = Box<dyn Fn(&[f64]) -> f64>;

    /// Asserts the sample mean of `f` over the rows equals `expect` within 5 standard errors
    /// (SE = sample sd / √n): a fixed-seed test that a correct generator fails with
    /// probability < 1e-6.
    fn assert_moment(label: &str, x: &Points, f: impl Fn(&[f64]) -> f64, expect: f64) {
        let v: Vec<f64> = x.rows().map(f).collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
        let tol = 5.0 * sd / n.sqrt() + 1e-12;
        assert!(
            (mean - expect).abs() < tol,
            "{label}: sample mean {mean}, expected {expect} ± {tol}"
        );
    }

    /// Counts of each row's nearest centre.
    fn nearest_counts(x: &Points, centres: &[Vec<f64>]) -> Vec<usize> {
        let mut counts = vec![0; centres.len()];
        for r in x.rows() {
            let d2 = |c: &Vec<f64>| (r[0] - c[0]).powi(2) + (r[1] - c[1]).powi(2);
            let k = (0..centres.len())
                .min_by(|&a, &b| d2(&centres[a]).total_cmp(&d2(&centres[b])))
                .unwrap();
            counts[k] += 1;
        }
        counts
    }

    /// Asserts each count is n·p within 4 binomial standard deviations √(n p (1 − p)).
    fn assert_binomial(label: &str, counts: &[usize], p: f64) {
        let n: usize = counts.iter().sum();
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        for (k, &c) in counts.iter().enumerate() {
            assert!(
                (c as f64 - n as f64 * p).abs() < 4.0 * sd,
                "{label} cell {k}: {c} of {n}, p = {p}"
            );
        }
    }

    #[test]
    fn names_parse_display_and_list() {
        for ds in Dataset::ALL {
            assert_eq!(ds.name().parse::<Dataset>().unwrap(), ds);
            assert_eq!(ds.to_string(), ds.name());
            assert_eq!(
                serde_json::from_str::<Dataset>(&serde_json::to_string(&ds).unwrap()).unwrap(),
                ds
            );
        }
        assert_eq!(" Moons ".parse::<Dataset>().unwrap(), Dataset::Moons);
        let e = "spiral".parse::<Dataset>().unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)));
        let msg = e.to_string();
        assert!(msg.contains("'spiral'"), "{msg}");
        for ds in Dataset::ALL {
            assert!(msg.contains(ds.name()), "{msg} lacks {ds}");
        }
        assert!(serde_json::from_str::<Dataset>("\"nope\"").is_err());
    }

    #[test]
    fn shapes_and_seeding() {
        for ds in Dataset::ALL {
            for n in [0, 1, 7] {
                let x = ds.sample(n, &mut rng(1));
                assert_eq!((x.len(), x.dim()), (n, 2), "{ds}");
                assert!(x.as_slice().iter().all(|v| v.is_finite()), "{ds}");
            }
            assert_eq!(
                ds.sample(50, &mut rng(2)),
                ds.sample(50, &mut rng(2)),
                "{ds}"
            );
            assert_ne!(
                ds.sample(50, &mut rng(2)),
                ds.sample(50, &mut rng(3)),
                "{ds}"
            );
            assert_eq!(
                ds.mixture().is_some(),
                ds.name().contains("gaussians") || ds == Dataset::GmmAniso
            );
            let lp = ds.log_density(&ds.sample(5, &mut rng(4))).unwrap();
            assert_eq!(lp.is_some(), ds.has_log_density(), "{ds}");
            let bad = Points::new(vec![0.0; 3], 3).unwrap();
            assert!(matches!(ds.log_density(&bad), Err(Error::Shape(_))));
        }
    }

    #[test]
    fn eight_gaussians_modes_and_radius() {
        let ds = Dataset::EightGaussians;
        let x = ds.sample(N, &mut rng(10));
        let m = ds.mixture().unwrap();
        // Modes at radius 4/1.414 ≈ 2.8289, std 0.5/1.414 ≈ 0.3536, weights 1/8.
        for mu in m.means() {
            assert!(((mu[0].powi(2) + mu[1].powi(2)).sqrt() - 4.0 / 1.414).abs() < 1e-12);
        }
        assert!(m
            .covs()
            .iter()
            .all(|c| (c[0] - (0.5f64 / 1.414).powi(2)).abs() < 1e-15 && c[1] == 0.0));
        assert_moment("E x", &x, |r| r[0], 0.0);
        assert_moment("E y", &x, |r| r[1], 0.0);
        // E|x|² = R² + 2σ² exactly.
        assert_moment(
            "E|x|²",
            &x,
            |r| r[0] * r[0] + r[1] * r[1],
            (4.0f64 / 1.414).powi(2) + 2.0 * (0.5f64 / 1.414).powi(2),
        );
        // Nearest-mode shares are 1/8 by symmetry (misassignment is symmetric too).
        assert_binomial("8gaussians", &nearest_counts(&x, m.means()), 1.0 / 8.0);
    }

    #[test]
    fn twenty_five_gaussians_grid() {
        let ds = Dataset::TwentyFiveGaussians;
        let x = ds.sample(N, &mut rng(11));
        let m = ds.mixture().unwrap();
        assert_binomial("25gaussians", &nearest_counts(&x, m.means()), 1.0 / 25.0);
        // E|x|² = 2·mean{16, 4, 0, 4, 16} + 2·0.1² = 16.02; E[x] = 0.
        assert_moment("E|x|²", &x, |r| r[0] * r[0] + r[1] * r[1], 16.02);
        assert_moment("E x", &x, |r| r[0], 0.0);
        // Every point within 6σ = 0.6 of a grid node (P(‖z‖ > 6) = e^{-18} per point).
        assert!(x.rows().all(|r| r
            .iter()
            .all(|v| (v / 2.0 - (v / 2.0).round()).abs() * 2.0 < 0.6)));
    }

    #[test]
    fn gmm_aniso_moments() {
        let ds = Dataset::GmmAniso;
        let m = ds.mixture().unwrap();
        assert_eq!(m.weights(), &[0.5, 0.3, 0.2]);
        let x = ds.sample(N, &mut rng(12));
        let (mu, c) = (m.mean(), m.covariance());
        // E x = 0.5·(−2) + 0.3·2 + 0 = −0.4, E y = −0.5 − 0.3 + 0.4 = −0.4.
        assert!((mu[0] + 0.4).abs() < 1e-15 && (mu[1] + 0.4).abs() < 1e-15);
        assert_moment("E x", &x, |r| r[0], mu[0]);
        assert_moment("E y", &x, |r| r[1], mu[1]);
        assert_moment("E xx", &x, |r| r[0] * r[0], c[0] + mu[0] * mu[0]);
        assert_moment("E xy", &x, |r| r[0] * r[1], c[1] + mu[0] * mu[1]);
        assert_moment("E yy", &x, |r| r[1] * r[1], c[3] + mu[1] * mu[1]);
    }

    #[test]
    fn checkerboard_support_squares_and_density() {
        let ds = Dataset::Checkerboard;
        let x = ds.sample(N, &mut rng(13));
        let lp = ds.log_density(&x).unwrap().unwrap();
        assert!(
            lp.iter().all(|&l| l == -(32f64.ln())),
            "a point outside the black squares"
        );
        // The 8 black squares of side 2 in [−4, 4)² each hold 1/8 of the mass.
        let squares: Vec<Vec<f64>> = (0..4)
            .flat_map(|i| (0..4).map(move |j| (i, j)))
            .filter(|(i, j)| (i + j) % 2 == 0)
            .map(|(i, j)| vec![-3.0 + 2.0 * i as f64, -3.0 + 2.0 * j as f64])
            .collect();
        assert_eq!(squares.len(), 8);
        assert_binomial("checkerboard", &nearest_counts(&x, &squares), 1.0 / 8.0);
        // ∫ p over [−5, 5]² on a midpoint grid, h = 0.05 (nodes never on square edges): exact.
        let h = 0.05;
        let grid: Vec<f64> = (0..200)
            .flat_map(|i| {
                (0..200)
                    .flat_map(move |j| [-5.0 + (i as f64 + 0.5) * h, -5.0 + (j as f64 + 0.5) * h])
            })
            .collect();
        let lp = ds
            .log_density(&Points::new(grid, 2).unwrap())
            .unwrap()
            .unwrap();
        let total: f64 = lp.iter().map(|l| l.exp() * h * h).sum();
        assert!((total - 1.0).abs() < 1e-9, "∫p = {total}");
        assert_eq!(checkerboard_log_density(&[-4.0, -4.0]), -(32f64.ln()));
        assert_eq!(checkerboard_log_density(&[4.0, 0.5]), f64::NEG_INFINITY);
        assert_eq!(checkerboard_log_density(&[-1.0, 1.0]), f64::NEG_INFINITY);
        assert_eq!(
            checkerboard_log_density(&[f64::NAN, 1.0]),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn moons_density_integrates_to_one_and_matches_samples() {
        let ds = Dataset::Moons;
        // Grid h = 0.1 on [−4.5, 4.5] × [−2.5, 3]: the density is a sum of Gaussians of std
        // 0.2 = 2h, for which the midpoint rule is spectrally accurate (error ~ e^{−2π²·4});
        // the box leaves ≥ 7σ margins around the arcs. So ∫ p and ∫ f p (f smooth) are exact
        // to rounding, and E_p f must match sample means within 5 SE.
        let h = 0.1;
        let (nx, ny) = (90, 55);
        let grid: Vec<f64> = (0..nx)
            .flat_map(|i| {
                (0..ny)
                    .flat_map(move |j| [-4.5 + (i as f64 + 0.5) * h, -2.5 + (j as f64 + 0.5) * h])
            })
            .collect();
        let g = Points::new(grid, 2).unwrap();
        let p: Vec<f64> = ds
            .log_density(&g)
            .unwrap()
            .unwrap()
            .iter()
            .map(|l| l.exp() * h * h)
            .collect();
        let integral =
            |f: &dyn Fn(&[f64]) -> f64| g.rows().zip(&p).map(|(r, w)| f(r) * w).sum::<f64>();
        let total = integral(&|_| 1.0);
        assert!((total - 1.0).abs() < 1e-9, "∫p = {total}");
        let x = ds.sample(N, &mut rng(14));
        // Closed form: E x = ½(0 + 1)·2 − 1 = 0, E y = ½(2/π + ½ − 2/π)·2 − 0.2 = 0.3.
        assert!(integral(&|r| r[0]).abs() < 1e-9 && (integral(&|r| r[1]) - 0.3).abs() < 1e-9);
        let tests: Vec<(&str, Feature)> = vec![
            ("x", Box::new(|r| r[0])),
            ("y", Box::new(|r| r[1])),
            ("x²", Box::new(|r| r[0] * r[0])),
            ("y²", Box::new(|r| r[1] * r[1])),
            ("xy", Box::new(|r| r[0] * r[1])),
            (
                "bump(−1, 0.8)",
                Box::new(|r| (-((r[0] + 1.0).powi(2) + (r[1] - 0.8).powi(2))).exp()),
            ),
            (
                "bump(1, −0.2)",
                Box::new(|r| (-((r[0] - 1.0).powi(2) + (r[1] + 0.2).powi(2))).exp()),
            ),
        ];
        for (label, f) in &tests {
            assert_moment(label, &x, f, integral(f.as_ref()));
        }
    }

    #[test]
    fn circles_radii_and_moments() {
        let x = Dataset::Circles.sample(N, &mut rng(15));
        assert_moment("E x", &x, |r| r[0], 0.0);
        assert_moment("E y", &x, |r| r[1], 0.0);
        // E|x|² = 9·(½(1 + 0.25) + 2·0.08²) = 5.7402.
        assert_moment(
            "E|x|²",
            &x,
            |r| r[0] * r[0] + r[1] * r[1],
            9.0 * (0.625 + 2.0 * 0.0064),
        );
        // Exactly n/2 on the inner circle (radius 1.5); noise std 0.24 vs the 0.75 half-gap
        // misclassifies ~0.1% per side: the share inside radius 2.25 is ½ ± 0.01.
        let inner = x.rows().filter(|r| r[0].hypot(r[1]) < 2.25).count() as f64 / N as f64;
        assert!((inner - 0.5).abs() < 0.01, "{inner}");
    }

    #[test]
    fn rings_radii_and_moments() {
        let x = Dataset::Rings.sample(N, &mut rng(16));
        // n/4 points on each radius 3·{¼, ½, ¾, 1}; noise 0.08 vs half-gap 0.375 (4.7σ).
        let centres: Vec<f64> = vec![0.75, 1.5, 2.25, 3.0];
        let mut counts = [0usize; 4];
        for r in x.rows() {
            let rad = r[0].hypot(r[1]);
            let k = (0..4)
                .min_by(|&a, &b| {
                    (rad - centres[a])
                        .abs()
                        .total_cmp(&(rad - centres[b]).abs())
                })
                .unwrap();
            counts[k] += 1;
        }
        assert!(
            counts
                .iter()
                .all(|&c| (c as f64 - N as f64 / 4.0).abs() < 0.01 * N as f64),
            "{counts:?}"
        );
        // E|x|² = 9·mean{1/16, 1/4, 9/16, 1} + 2·0.08².
        assert_moment(
            "E|x|²",
            &x,
            |r| r[0] * r[0] + r[1] * r[1],
            9.0 * 0.46875 + 2.0 * 0.0064,
        );
        assert_moment("E x", &x, |r| r[0], 0.0);
    }

    #[test]
    fn two_spirals_moments() {
        let x = Dataset::TwoSpirals.sample(N, &mut rng(17));
        // One arm: (−t cos t + u₁/2, t sin t + u₂/2), t = T√U with density 2s/T² on [0, T], T = 3π.
        // E|arm|² = E t² + ½(E[t sin t] − E[t cos t]) + 1/6, with E t² = T²/2,
        // E[t cos t] = (2/T²)[s² sin s + 2s cos s − 2 sin s]₀ᵀ = −4/(3π),
        // E[t sin t] = (2/T²)[−s² cos s + 2s sin s + 2 cos s]₀ᵀ = 2(9π² − 4)/(9π²).
        // Arms are ±, so E x = 0; after ÷3 and noise 0.1: E|x|² = E|arm|²/9 + 0.02.
        let pi2 = PI * PI;
        let arm2 = 4.5 * pi2
            + 0.5 * (2.0 * (9.0 * pi2 - 4.0) / (9.0 * pi2) + 4.0 / (3.0 * PI))
            + 1.0 / 6.0;
        assert_moment(
            "E|x|²",
            &x,
            |r| r[0] * r[0] + r[1] * r[1],
            arm2 / 9.0 + 0.02,
        );
        assert_moment("E x", &x, |r| r[0], 0.0);
        assert_moment("E y", &x, |r| r[1], 0.0);
    }

    #[test]
    fn pinwheel_moments_and_symmetry() {
        let x = Dataset::Pinwheel.sample(N, &mut rng(18));
        // Rotations keep norms: E|x|² = 4·E[f₁² + f₂²] = 4·(1 + 0.3² + 0.1²) = 4.4.
        assert_moment("E|x|²", &x, |r| r[0] * r[0] + r[1] * r[1], 4.4);
        // Five equally likely arms related by 72° rotations: E[zᵏ] = 0 for k = 1, 2 (z = x + iy).
        assert_moment("Re z", &x, |r| r[0], 0.0);
        assert_moment("Im z", &x, |r| r[1], 0.0);
        assert_moment("Re z²", &x, |r| r[0] * r[0] - r[1] * r[1], 0.0);
        assert_moment("Im z²", &x, |r| 2.0 * r[0] * r[1], 0.0);
    }

    #[test]
    fn swissroll_moments() {
        let x = Dataset::Swissroll.sample(N, &mut rng(19));
        // t ~ U[1.5π, 4.5π]: E t² = (1.5π)²·E(1 + 2U)² = 9.75π², so E|x|² = (9.75π² + 2)/25;
        // E[t cos t] = [t sin t + cos t]/(3π) = 2, E[t sin t] = [−t cos t + sin t]/(3π) = 2/(3π).
        assert_moment(
            "E|x|²",
            &x,
            |r| r[0] * r[0] + r[1] * r[1],
            (9.75 * PI * PI + 2.0) / 25.0,
        );
        assert_moment("E x", &x, |r| r[0], 2.0 / 5.0);
        assert_moment("E y", &x, |r| r[1], 2.0 / (15.0 * PI));
    }

    #[test]
    fn mixture_log_densities_integrate_to_one() {
        // Midpoint grid h = 0.05 on [−7, 7]²; the narrowest std is σ = 0.1 = 2h (25gaussians):
        // the rule's relative error for a Gaussian is ~2·exp(−2π²σ²/h²) = 2e^{−8π²} ≈ 1e-34, and
        // the margins are ≥ 3 (≥ 8σ) around all means, so ∫p = 1 to rounding.
        let h = 0.05;
        let m = 280;
        let grid: Vec<f64> = (0..m)
            .flat_map(|i| {
                (0..m).flat_map(move |j| [-7.0 + (i as f64 + 0.5) * h, -7.0 + (j as f64 + 0.5) * h])
            })
            .collect();
        let g = Points::new(grid, 2).unwrap();
        for ds in [
            Dataset::EightGaussians,
            Dataset::TwentyFiveGaussians,
            Dataset::GmmAniso,
        ] {
            let lp = ds.log_density(&g).unwrap().unwrap();
            let total: f64 = lp.iter().map(|l| l.exp() * h * h).sum();
            assert!((total - 1.0).abs() < 1e-8, "{ds}: ∫p = {total}");
        }
    }

    #[test]
    fn log_densities_match_the_reference_implementation() {
        // log p written by bench/datasets.py (numpy) at its own samples and at uniform points in
        // [−5, 5]²: same constants ⇒ agreement to rounding (mixtures are closed forms; moons uses
        // the same 4000 quadrature nodes; checkerboard is exact, −∞ included).
        let text = include_str!("../../tests/data/datasets_log_density.csv");
        let mut checked = 0;
        for ds in Dataset::ALL.into_iter().filter(|d| d.has_log_density()) {
            let rows: Vec<Vec<f64>> = text
                .lines()
                .filter_map(|l| l.strip_prefix(ds.name()).and_then(|r| r.strip_prefix(',')))
                .map(|r| r.split(',').map(|v| v.parse().unwrap()).collect())
                .collect();
            assert_eq!(rows.len(), 16, "{ds}");
            let x = Points::new(rows.iter().flat_map(|r| [r[0], r[1]]).collect(), 2).unwrap();
            let ours = ds.log_density(&x).unwrap().unwrap();
            for (r, l) in rows.iter().zip(ours) {
                let ok = if r[2].is_finite() {
                    (l - r[2]).abs() < 1e-12 * (1.0 + r[2].abs())
                } else {
                    l == r[2]
                };
                assert!(
                    ok,
                    "{ds} at ({}, {}): ours {l}, reference {}",
                    r[0], r[1], r[2]
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 80);
    }
    /// Every shape has mean 0 and covariance I: the five sample moments E x, E y, E x², E xy,
    /// E y² of 20,000 points lie within 5 standard errors (from the sample's own spread) of
    /// 0, 0, 1, 0, 1. And the shapes differ: MMD² with a Gaussian kernel of bandwidth 0.1 (an
    /// unbiased U-statistic, mean 0 between two samples of one law; the bandwidth resolves
    /// the thin outlines) between any two of them (1,000 points each) is ≥ 10× the noise
    /// floor, the largest |MMD²| between a shape and a fresh draw of itself; N(0, I), with the
    /// same moments, differs from every shape too. (Sliced W₂ and the energy distance barely
    /// show it: with equal covariances every 1-D projection has the same mean and variance;
    /// and the plug-in W₂ of 2-D samples has a large positive floor at this n.)
    #[test]
    fn shapes_share_moments_and_differ() {
        let mmd = |a: &Points, b: &Points| crate::metrics::mmd2(a, b, &[0.1]).unwrap();
        let m = 1000;
        let mut sets = Vec::new();
        let mut floor: f64 = 0.0;
        for (i, ds) in Dataset::SHAPES.into_iter().enumerate() {
            let x = ds.sample(N, &mut rng(40 + i as u64));
            assert_moment(&format!("{ds} E x"), &x, |r| r[0], 0.0);
            assert_moment(&format!("{ds} E y"), &x, |r| r[1], 0.0);
            assert_moment(&format!("{ds} E x²"), &x, |r| r[0] * r[0], 1.0);
            assert_moment(&format!("{ds} E xy"), &x, |r| r[0] * r[1], 0.0);
            assert_moment(&format!("{ds} E y²"), &x, |r| r[1] * r[1], 1.0);
            let a = ds.sample(m, &mut rng(60 + i as u64));
            let b = ds.sample(m, &mut rng(80 + i as u64));
            floor = floor.max(mmd(&a, &b).abs());
            sets.push((ds.to_string(), a));
        }
        let mut g = rng(7);
        let gauss = Points::new((0..2 * m).map(|_| normal(&mut g)).collect(), 2).unwrap();
        sets.push(("N(0, I)".to_string(), gauss));
        for i in 0..sets.len() {
            for j in 0..i {
                let d = mmd(&sets[i].1, &sets[j].1);
                assert!(
                    d > 10.0 * floor,
                    "{} vs {}: MMD² {d}, floor {floor}",
                    sets[i].0,
                    sets[j].0
                );
            }
        }
    }
}
