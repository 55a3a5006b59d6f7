//! Sample-quality metrics between model samples X (n × d) and reference data Y (m × d), on the
//! host ([`Points`]): sliced Wasserstein-2, MMD² with a multi-bandwidth Gaussian kernel, energy
//! distance, mean and covariance errors, and per-mode weights for mixtures; a [`MetricReport`]
//! bundles them, and [`noise_floor`] scores fresh data the same way ("as good as the data").
//!
//! Pairwise statistics (MMD², energy) are exact U-statistics over all pairs, computed in f64 by
//! a blocked loop over row pairs, parallel over rows with rayon and summed in a fixed order, so
//! results do not depend on the thread count. 10,000 × 10,000 points take seconds.

use crate::data::{MixtureSpec, Points};
use crate::error::{Error, Result};
use crate::tensor::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// The default MMD bandwidths h ∈ {0.05, 0.1, 0.2, 0.5, 1, 2} of k = Σ_h exp(−‖x−y‖²/(2h²)).
pub const DEFAULT_BANDWIDTHS: [f64; 6] = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0];

/// The default number L of random directions for [`sliced_wasserstein2`].
pub const DEFAULT_PROJECTIONS: usize = 256;

/// Row-pair block length of the pairwise loops (fits the L1 cache with d columns).
const BLOCK: usize = 256;

/// Independent accumulators per row, so that sums over a block vectorise (fixed order).
const LANES: usize = 4;

/// exp(−e) for e ≥ 0 without branches, so that loops over it vectorise: e^x = 2^k e^r with
/// k = round(x / ln 2), r = x − k ln 2 (Cody–Waite split, |r| ≤ ln2/2) and the degree-12 Taylor
/// polynomial of e^r (truncation < 2·10⁻¹⁶ relative). Arguments beyond 708 are clamped there:
/// exp(−708) < 3.4·10⁻³⁰⁸, far below anything a kernel sum resolves.
#[inline(always)]
fn exp_neg(e: f64) -> f64 {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000); // fdlibm's ln 2 split: hi has
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76); // 32 significant bits, so k·hi is exact
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2⁵²: adding it rounds to an integer
    let x = (-e).max(-708.0);
    let t = x * LOG2_E + MAGIC;
    let k = t - MAGIC;
    let ki = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 479_001_600.0; // 1/12!
    for f in [
        39_916_800.0,
        3_628_800.0,
        362_880.0,
        40_320.0,
        5_040.0,
        720.0,
        120.0,
        24.0,
        6.0,
        2.0,
        1.0,
        1.0,
    ] {
        p = p * r + 1.0 / f;
    }
    p * f64::from_bits(((ki + 1023) as u64) << 52)
}

fn check_points(name: &str, x: &Points, min_len: usize) -> Result<()> {
    if x.len() < min_len {
        return Err(Error::InvalidInput(format!(
            "{name} has {} points; this metric needs at least {min_len}",
            x.len()
        )));
    }
    if let Some(i) = x.as_slice().iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "{name} has a non-finite value in row {} (NaN or inf)",
            i / x.dim()
        )));
    }
    Ok(())
}

fn check_pair(x: &Points, y: &Points, min_len: usize) -> Result<()> {
    if x.dim() != y.dim() {
        return Err(Error::Shape(format!(
            "samples have dimension {}, reference has {}",
            x.dim(),
            y.dim()
        )));
    }
    check_points("samples", x, min_len)?;
    check_points("reference", y, min_len)
}

/// W₂² = ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du between the empirical distributions of two **sorted**
/// samples (sizes may differ: the step quantile functions are matched on the merged grid).
///
/// # Panics
/// If either slice is empty (a programming error; callers validate sizes).
pub fn wasserstein2_sq_sorted(a: &[f64], b: &[f64]) -> f64 {
    quantile_cost(a, b, |d| d * d)
}

/// W₁ = ∫₀¹ |F⁻¹(u) − G⁻¹(u)| du between the empirical distributions of two **sorted** samples
/// (the 1-D optimal transport cost; sizes may differ as for [`wasserstein2_sq_sorted`]).
///
/// # Panics
/// If either slice is empty (a programming error; callers validate sizes).
pub fn wasserstein1_sorted(a: &[f64], b: &[f64]) -> f64 {
    quantile_cost(a, b, f64::abs)
}

/// ∫₀¹ c(F⁻¹(u) − G⁻¹(u)) du for sorted samples, the step quantile functions matched on the
/// merged grid of levels.
fn quantile_cost(a: &[f64], b: &[f64], cost: impl Fn(f64) -> f64) -> f64 {
    assert!(
        !a.is_empty() && !b.is_empty(),
        "Wasserstein of an empty sample"
    );
    let (n, m) = (a.len() as u64, b.len() as u64);
    if n == m {
        return a.iter().zip(b).map(|(x, y)| cost(x - y)).sum::<f64>() / n as f64;
    }
    // Quantile levels as integers over n·m: a[i] covers (i·m, (i+1)·m], b[j] covers (j·n, (j+1)·n].
    let (mut i, mut j) = (0usize, 0usize);
    let mut u = 0u64;
    let mut acc = 0.0;
    while (i as u64) < n && (j as u64) < m {
        let (ua, ub) = ((i as u64 + 1) * m, (j as u64 + 1) * n);
        let next = ua.min(ub);
        acc += (next - u) as f64 * cost(a[i] - b[j]);
        u = next;
        if ua == next {
            i += 1;
        }
        if ub == next {
            j += 1;
        }
    }
    acc / (n * m) as f64
}

/// L directions θ uniform on the unit sphere S^{d−1} (normalised N(0, I) draws), one per row.
pub fn random_directions(dim: usize, count: usize, rng: &mut Rng) -> Points {
    let mut data = Vec::with_capacity(dim * count);
    while data.len() < dim * count {
        let v: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(rng)).collect();
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-12 {
            data.extend(v.into_iter().map(|a| a / norm));
        }
    }
    Points::new(data, dim.max(1)).expect("rows of length dim")
}

/// SW₂(X, Y) = sqrt(mean over L random unit directions θ of W₂²(θᵀX, θᵀY)), θ from
/// [`random_directions`] with `rng`; 1-D W₂ by sorted (quantile) matching.
pub fn sliced_wasserstein2(
    x: &Points,
    y: &Points,
    projections: usize,
    rng: &mut Rng,
) -> Result<f64> {
    check_pair(x, y, 1)?;
    if projections == 0 {
        return Err(Error::InvalidInput(
            "sliced Wasserstein needs at least one projection".into(),
        ));
    }
    sliced_wasserstein2_along(x, y, &random_directions(x.dim(), projections, rng))
}

/// sqrt(mean over the given unit directions θ (rows of `dirs`) of W₂²(θᵀX, θᵀY)), e.g. with
/// evenly spaced angles in 2-D for a deterministic SW₂.
pub fn sliced_wasserstein2_along(x: &Points, y: &Points, dirs: &Points) -> Result<f64> {
    Ok(mean_over_directions(x, y, dirs, wasserstein2_sq_sorted)?.sqrt())
}

/// SW₁(X, Y) = mean over L random unit directions θ of W₁(θᵀX, θᵀY): the sliced Wasserstein
/// distance of the MCGdiff benchmark (Cardoso et al. 2023, L = 100; POT's
/// `sliced_wasserstein_distance(X, Y, n_projections=L, p=1)` with uniform weights).
pub fn sliced_wasserstein1(
    x: &Points,
    y: &Points,
    projections: usize,
    rng: &mut Rng,
) -> Result<f64> {
    check_pair(x, y, 1)?;
    if projections == 0 {
        return Err(Error::InvalidInput(
            "sliced Wasserstein needs at least one projection".into(),
        ));
    }
    let dirs = random_directions(x.dim(), projections, rng);
    mean_over_directions(x, y, &dirs, wasserstein1_sorted)
}

/// mean over the unit directions θ (rows of `dirs`) of cost(sorted θᵀX, sorted θᵀY).
fn mean_over_directions(
    x: &Points,
    y: &Points,
    dirs: &Points,
    cost: impl Fn(&[f64], &[f64]) -> f64 + Sync,
) -> Result<f64> {
    check_pair(x, y, 1)?;
    if dirs.is_empty() || dirs.dim() != x.dim() {
        return Err(Error::Shape(format!(
            "{} directions of dimension {} for points of dimension {}",
            dirs.len(),
            dirs.dim(),
            x.dim()
        )));
    }
    if let Some(l) = dirs
        .rows()
        .position(|th| (th.iter().map(|a| a * a).sum::<f64>() - 1.0).abs() > 1e-9)
    {
        return Err(Error::InvalidInput(format!(
            "direction {l} is not a unit vector"
        )));
    }
    let project = |p: &Points, th: &[f64]| -> Vec<f64> {
        let mut v: Vec<f64> = p
            .rows()
            .map(|r| r.iter().zip(th).map(|(a, b)| a * b).sum())
            .collect();
        v.sort_unstable_by(f64::total_cmp);
        v
    };
    let per_dir: Vec<f64> = (0..dirs.len())
        .into_par_iter()
        .map(|l| cost(&project(x, dirs.row(l)), &project(y, dirs.row(l))))
        .collect();
    Ok(per_dir.iter().sum::<f64>() / dirs.len() as f64)
}

/// How one kernel term exp(−cₖ r) of a block is computed: directly, or as (exp(−cⱼ r))^q when
/// cₖ = q·cⱼ for an integer q (the default bandwidths need one exp and 14 products per pair:
/// c = 0.125, 0.5 = 4·0.125, 2 = 4·0.5, 12.5 = 25·0.5, 50 = 4·12.5, 200 = 4·50). Powers amplify
/// the base's relative error by cₖ/c_min (≤ 1600 for the defaults: < 10⁻¹² relative).
#[derive(Debug, Clone, Copy, PartialEq)]
enum KernelTerm {
    Exp(f64),
    Pow { from: usize, q: u32 },
}

/// The plan for coefficients c (taken in ascending order): each term from the earlier one with
/// the smallest integer ratio q ∈ [2, 4096], else by exp.
fn kernel_plan(coeffs: &[f64]) -> Vec<KernelTerm> {
    let mut c = coeffs.to_vec();
    c.sort_by(f64::total_cmp);
    (0..c.len())
        .map(|k| {
            (0..k)
                .filter_map(|j| {
                    let q = c[k] / c[j];
                    let qr = q.round();
                    ((2.0..=4096.0).contains(&qr) && (q - qr).abs() <= 1e-12 * qr)
                        .then_some((j, qr as u32))
                })
                .min_by_key(|&(_, q)| q)
                .map_or(KernelTerm::Exp(c[k]), |(from, q)| KernelTerm::Pow {
                    from,
                    q,
                })
        })
        .collect()
}

/// out = base^q by square-and-multiply, elementwise (vectorisable: the loop over bits is outside).
fn pow_into(out: &mut [f64], base: &[f64], q: u32, scratch: &mut [f64]) {
    out.fill(1.0);
    scratch.copy_from_slice(base);
    let mut q = q;
    while q > 0 {
        if q & 1 == 1 {
            out.iter_mut()
                .zip(scratch.iter())
                .for_each(|(o, b)| *o *= b);
        }
        q >>= 1;
        if q > 0 {
            scratch.iter_mut().for_each(|b| *b *= *b);
        }
    }
}

/// Sums over row pairs (i, j) of A × B (i < j when `same`, A = B) of
/// (Σₖ exp(−cₖ·rᵢⱼ), √rᵢⱼ) with rᵢⱼ = ‖aᵢ − bⱼ‖² and the kernel terms of `plan`.
fn pair_sums(
    a: &Points,
    b: &Points,
    same: bool,
    plan: &[KernelTerm],
    want_dist: bool,
) -> (f64, f64) {
    let d = a.dim();
    let m = b.len();
    let t = plan.len();
    // Columns of B (structure of arrays) so that the inner loops over j vectorise.
    let cols: Vec<Vec<f64>> = (0..d).map(|k| b.rows().map(|r| r[k]).collect()).collect();
    let per_row: Vec<(f64, f64)> = (0..a.len())
        .into_par_iter()
        .map_init(
            || vec![0.0f64; BLOCK * (t + 2)],
            |buf, i| {
                let ai = a.row(i);
                let (r_buf, rest) = buf.split_at_mut(BLOCK);
                let (scratch, terms) = rest.split_at_mut(BLOCK);
                let (mut ks, mut ds) = (0.0, 0.0);
                let mut j0 = if same { i + 1 } else { 0 };
                while j0 < m {
                    let len = BLOCK.min(m - j0);
                    let r = &mut r_buf[..len];
                    r.fill(0.0);
                    for (k, col) in cols.iter().enumerate() {
                        let ak = ai[k];
                        for (rj, bj) in r.iter_mut().zip(&col[j0..j0 + len]) {
                            let diff = ak - bj;
                            *rj += diff * diff;
                        }
                    }
                    for (k, term) in plan.iter().enumerate() {
                        let (done, cur) = terms.split_at_mut(k * BLOCK);
                        let cur = &mut cur[..len];
                        match *term {
                            KernelTerm::Exp(c) => cur
                                .iter_mut()
                                .zip(r.iter())
                                .for_each(|(o, &rj)| *o = exp_neg(c * rj)),
                            KernelTerm::Pow { from, q } => {
                                let base = &done[from * BLOCK..from * BLOCK + len];
                                pow_into(cur, base, q, &mut scratch[..len]);
                            }
                        }
                        ks += lane_sum(cur, |v| v);
                    }
                    if want_dist {
                        ds += lane_sum(r, f64::sqrt);
                    }
                    j0 += len;
                }
                (ks, ds)
            },
        )
        .collect();
    per_row
        .iter()
        .fold((0.0, 0.0), |(k, s), (a, b)| (k + a, s + b))
}

/// Σⱼ f(rⱼ) with LANES independent partial sums (vectorisable, deterministic order).
#[inline(always)]
fn lane_sum(r: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = r.chunks_exact(LANES);
    let rest: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for ch in chunks {
        for l in 0..LANES {
            acc[l] += f(ch[l]);
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// Pairwise means of the kernel and the distance within X, within Y and across (U-statistics).
struct PairMeans {
    kxx: f64,
    kyy: f64,
    kxy: f64,
    dxx: f64,
    dyy: f64,
    dxy: f64,
}

fn pair_means(x: &Points, y: &Points, bandwidths: &[f64], want_dist: bool) -> PairMeans {
    let coeffs: Vec<f64> = bandwidths.iter().map(|h| 1.0 / (2.0 * h * h)).collect();
    let plan = kernel_plan(&coeffs);
    let (n, m) = (x.len() as f64, y.len() as f64);
    let (kxx, dxx) = pair_sums(x, x, true, &plan, want_dist);
    let (kyy, dyy) = pair_sums(y, y, true, &plan, want_dist);
    let (kxy, dxy) = pair_sums(x, y, false, &plan, want_dist);
    // Σ_{i<j} over n(n−1)/2 pairs = the mean over ordered pairs i ≠ j.
    let (wx, wy, wxy) = (2.0 / (n * (n - 1.0)), 2.0 / (m * (m - 1.0)), 1.0 / (n * m));
    PairMeans {
        kxx: kxx * wx,
        kyy: kyy * wy,
        kxy: kxy * wxy,
        dxx: dxx * wx,
        dyy: dyy * wy,
        dxy: dxy * wxy,
    }
}

fn check_bandwidths(bandwidths: &[f64]) -> Result<()> {
    if bandwidths.is_empty() || bandwidths.iter().any(|h| !(h.is_finite() && *h > 0.0)) {
        return Err(Error::InvalidInput(format!(
            "MMD bandwidths must be a non-empty list of finite values > 0 (got {bandwidths:?})"
        )));
    }
    Ok(())
}

/// Unbiased MMD² = mean_{i≠j} k(xᵢ, xⱼ) + mean_{i≠j} k(yᵢ, yⱼ) − 2 mean_{i,j} k(xᵢ, yⱼ) with
/// k = Σ_h exp(−‖x−y‖²/(2h²)) (U-statistic: can be slightly negative; ≈ 0 ± noise for X ~ Y).
pub fn mmd2(x: &Points, y: &Points, bandwidths: &[f64]) -> Result<f64> {
    check_pair(x, y, 2)?;
    check_bandwidths(bandwidths)?;
    let p = pair_means(x, y, bandwidths, false);
    Ok(p.kxx + p.kyy - 2.0 * p.kxy)
}

/// Energy distance 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ with unbiased U-statistics (≈ 0 ± noise for X ~ Y).
pub fn energy_distance(x: &Points, y: &Points) -> Result<f64> {
    check_pair(x, y, 2)?;
    let p = pair_means(x, y, &[], true);
    Ok(2.0 * p.dxy - p.dxx - p.dyy)
}

/// The sample mean μ = (1/n) Σ xᵢ.
pub fn mean(x: &Points) -> Vec<f64> {
    let d = x.dim();
    let mut mu = vec![0.0; d];
    for r in x.rows() {
        for (m, v) in mu.iter_mut().zip(r) {
            *m += v;
        }
    }
    mu.iter_mut().for_each(|m| *m /= x.len().max(1) as f64);
    mu
}

/// The unbiased sample covariance Σ = (1/(n−1)) Σ (xᵢ − μ)(xᵢ − μ)ᵀ, row-major d × d.
pub fn covariance(x: &Points) -> Vec<f64> {
    let d = x.dim();
    let mu = mean(x);
    let mut c = vec![0.0; d * d];
    for r in x.rows() {
        for a in 0..d {
            let da = r[a] - mu[a];
            for b in 0..d {
                c[a * d + b] += da * (r[b] - mu[b]);
            }
        }
    }
    let denom = (x.len() as f64 - 1.0).max(1.0);
    c.iter_mut().for_each(|v| *v /= denom);
    c
}

/// Mean error ‖μ_X − μ_Y‖₂.
pub fn mean_error(x: &Points, y: &Points) -> Result<f64> {
    check_pair(x, y, 1)?;
    Ok(mean(x)
        .iter()
        .zip(mean(y))
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt())
}

/// Covariance error ‖Σ_X − Σ_Y‖_F (unbiased sample covariances).
pub fn covariance_error(x: &Points, y: &Points) -> Result<f64> {
    check_pair(x, y, 2)?;
    let (cx, cy) = (covariance(x), covariance(y));
    Ok(cx
        .iter()
        .zip(&cy)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt())
}

/// The modes of a mixture for coverage checks: means μⱼ, isotropic standard deviations σⱼ and
/// the radius factor k beyond which a point belongs to no mode (‖x − μⱼ‖ > k σⱼ for every j).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Modes {
    /// Mode means μⱼ (one row each).
    pub means: Points,
    /// Standard deviation σⱼ of each mode (one per mean).
    pub stds: Vec<f64>,
    /// Radius factor k (e.g. 3).
    pub k: f64,
}

impl Modes {
    /// Modes with means `means`, one shared σ, and radius factor `k`.
    pub fn isotropic(means: Points, std: f64, k: f64) -> Self {
        let stds = vec![std; means.len()];
        Self { means, stds, k }
    }

    /// The modes of a Gaussian mixture: its means, σⱼ = sqrt(λ_max(Σⱼ)) (the widest axis, so
    /// "off every mode" is conservative for anisotropic components), radius factor `k`.
    pub fn from_mixture(spec: &MixtureSpec, k: f64) -> Self {
        let d = spec.dim();
        let means = Points::new(spec.means().concat(), d).expect("mixture means have length d");
        let stds = spec
            .covs()
            .iter()
            .map(|c| crate::linalg::largest_eigenvalue(c, d).sqrt())
            .collect();
        Self { means, stds, k }
    }

    fn validate(&self, dim: usize) -> Result<()> {
        if self.means.is_empty() || self.means.dim() != dim {
            return Err(Error::Shape(format!(
                "modes: {} means of dimension {} for points of dimension {dim}",
                self.means.len(),
                self.means.dim()
            )));
        }
        if self.stds.len() != self.means.len() {
            return Err(Error::InvalidInput(format!(
                "modes: {} standard deviations for {} means",
                self.stds.len(),
                self.means.len()
            )));
        }
        if self
            .stds
            .iter()
            .chain([&self.k])
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(Error::InvalidInput(
                "modes: standard deviations and k must be finite and > 0".into(),
            ));
        }
        Ok(())
    }
}

/// Mode proportions wⱼ = #{x : μⱼ is the nearest mean} / n, and the share of points farther
/// than k σⱼ from every mean μⱼ ("off every mode"; those points still count in w).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModeWeights {
    /// wⱼ, summing to 1.
    pub weights: Vec<f64>,
    /// Share of points off every mode.
    pub off_modes: f64,
}

impl ModeWeights {
    /// Total variation ½ Σⱼ |wⱼ − pⱼ| to target proportions p (e.g. the mixture weights).
    pub fn total_variation(&self, target: &[f64]) -> Result<f64> {
        if target.len() != self.weights.len() {
            return Err(Error::Shape(format!(
                "{} target proportions for {} modes",
                target.len(),
                self.weights.len()
            )));
        }
        Ok(0.5
            * self
                .weights
                .iter()
                .zip(target)
                .map(|(w, p)| (w - p).abs())
                .sum::<f64>())
    }
}

/// Nearest-mean mode proportions of `x` and the share of points off every mode (see [`ModeWeights`]).
pub fn mode_weights(x: &Points, modes: &Modes) -> Result<ModeWeights> {
    check_points("samples", x, 1)?;
    modes.validate(x.dim())?;
    let mut counts = vec![0usize; modes.means.len()];
    let mut off = 0usize;
    for r in x.rows() {
        let mut best = (f64::INFINITY, 0);
        let mut on_some = false;
        for (j, mu) in modes.means.rows().enumerate() {
            let d2: f64 = r.iter().zip(mu).map(|(a, b)| (a - b) * (a - b)).sum();
            if d2 < best.0 {
                best = (d2, j);
            }
            let radius = modes.k * modes.stds[j];
            on_some |= d2 <= radius * radius;
        }
        counts[best.1] += 1;
        off += usize::from(!on_some);
    }
    let n = x.len() as f64;
    Ok(ModeWeights {
        weights: counts.iter().map(|&c| c as f64 / n).collect(),
        off_modes: off as f64 / n,
    })
}

/// What [`evaluate`] computes: L projections and bandwidths h, and optional mixture modes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricOptions {
    /// Number L of random directions for SW₂.
    pub projections: usize,
    /// MMD bandwidths h.
    pub bandwidths: Vec<f64>,
    /// Mixture modes for the per-mode weights, if the data is a mixture.
    pub modes: Option<Modes>,
}

impl Default for MetricOptions {
    fn default() -> Self {
        Self {
            projections: DEFAULT_PROJECTIONS,
            bandwidths: DEFAULT_BANDWIDTHS.to_vec(),
            modes: None,
        }
    }
}

/// Every metric of samples X against reference Y (see the functions of this module).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricReport {
    /// n, the number of samples.
    pub n_samples: usize,
    /// m, the number of reference points.
    pub n_reference: usize,
    /// SW₂ ([`sliced_wasserstein2`]).
    pub sw2: f64,
    /// Unbiased MMD² ([`mmd2`]).
    pub mmd2: f64,
    /// Energy distance ([`energy_distance`]).
    pub energy: f64,
    /// ‖μ_X − μ_Y‖.
    pub mean_error: f64,
    /// ‖Σ_X − Σ_Y‖_F.
    pub cov_error: f64,
    /// Per-mode weights of the samples, when modes were given.
    pub modes: Option<ModeWeights>,
}

/// The report of `samples` against `reference`; directions for SW₂ come from `rng`. MMD² and
/// the energy distance share one pass over all pairs.
pub fn evaluate(
    samples: &Points,
    reference: &Points,
    opts: &MetricOptions,
    rng: &mut Rng,
) -> Result<MetricReport> {
    check_pair(samples, reference, 2)?;
    check_bandwidths(&opts.bandwidths)?;
    let sw2 = sliced_wasserstein2(samples, reference, opts.projections, rng)?;
    let p = pair_means(samples, reference, &opts.bandwidths, true);
    let modes = match &opts.modes {
        Some(m) => Some(mode_weights(samples, m)?),
        None => None,
    };
    Ok(MetricReport {
        n_samples: samples.len(),
        n_reference: reference.len(),
        sw2,
        mmd2: p.kxx + p.kyy - 2.0 * p.kxy,
        energy: 2.0 * p.dxy - p.dxx - p.dyy,
        mean_error: mean_error(samples, reference)?,
        cov_error: covariance_error(samples, reference)?,
        modes,
    })
}

/// The noise floor: the report of n fresh data points, drawn by `draw(n, rng)` from the data
/// distribution, against `reference` — what a perfect model scores at sample size n.
pub fn noise_floor<F>(
    reference: &Points,
    n: usize,
    mut draw: F,
    opts: &MetricOptions,
    rng: &mut Rng,
) -> Result<MetricReport>
where
    F: FnMut(usize, &mut Rng) -> Result<Points>,
{
    let fresh = draw(n, rng)?;
    if fresh.len() != n {
        return Err(Error::InvalidInput(format!(
            "noise floor: asked the sampler for {n} points, got {}",
            fresh.len()
        )));
    }
    evaluate(&fresh, reference, opts, rng)
}

/// A report divided by its noise floor, metric by metric: ≈ 1 is "as good as the data".
/// `None` where the floor is not > 0 (unbiased MMD² and energy can have a floor ≤ 0).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FloorRatios {
    /// sw2 / floor.sw2.
    pub sw2: Option<f64>,
    /// mmd2 / floor.mmd2.
    pub mmd2: Option<f64>,
    /// energy / floor.energy.
    pub energy: Option<f64>,
    /// mean_error / floor.mean_error.
    pub mean_error: Option<f64>,
    /// cov_error / floor.cov_error.
    pub cov_error: Option<f64>,
}

impl MetricReport {
    /// Ratios metric / floor metric (see [`FloorRatios`]).
    pub fn ratio_to(&self, floor: &MetricReport) -> FloorRatios {
        let r = |a: f64, f: f64| (f > 0.0 && f.is_finite()).then(|| a / f);
        FloorRatios {
            sw2: r(self.sw2, floor.sw2),
            mmd2: r(self.mmd2, floor.mmd2),
            energy: r(self.energy, floor.energy),
            mean_error: r(self.mean_error, floor.mean_error),
            cov_error: r(self.cov_error, floor.cov_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::rng;
    use std::f64::consts::PI;

    /// A mode's radius uses its widest axis: for Σ = [[1, −0.9], [−0.9, 1]] that is
    /// √λ_max = √1.9 (a power iteration started at (1, 1)/√2 found √0.1 and counted most of
    /// the mode as "off every mode").
    #[test]
    fn mode_radius_is_the_widest_axis() {
        let spec = MixtureSpec::new(
            vec![1.0],
            vec![vec![0.0, 0.0]],
            vec![vec![1.0, -0.9, -0.9, 1.0]],
        )
        .unwrap();
        let modes = Modes::from_mixture(&spec, 3.0);
        assert!(
            (modes.stds[0] - 1.9f64.sqrt()).abs() < 1e-12,
            "{:?}",
            modes.stds
        );
        // A point 2 units out along the wide axis is inside the 3σ mode.
        let x = Points::new(vec![2.0 / 2f64.sqrt(), -2.0 / 2f64.sqrt()], 2).unwrap();
        let w = mode_weights(&x, &modes).unwrap();
        assert_eq!(w.off_modes, 0.0, "{w:?}");
    }

    type Mat2 = [[f64; 2]; 2];

    /// n draws of N(μ, Σ) in 2-D through the Cholesky factor of Σ.
    fn gaussian(n: usize, mu: [f64; 2], cov: Mat2, rng: &mut Rng) -> Points {
        let l11 = cov[0][0].sqrt();
        let l21 = cov[1][0] / l11;
        let l22 = (cov[1][1] - l21 * l21).sqrt();
        let mut data = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let (z1, z2): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
            data.push(mu[0] + l11 * z1);
            data.push(mu[1] + l21 * z1 + l22 * z2);
        }
        Points::new(data, 2).unwrap()
    }

    fn gaussian_1d(n: usize, mu: f64, sd: f64, rng: &mut Rng) -> Points {
        let data = (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                mu + sd * z
            })
            .collect();
        Points::new(data, 1).unwrap()
    }

    fn uniform_points(n: usize, d: usize, rng: &mut Rng) -> Points {
        use rand::Rng as _;
        Points::new((0..n * d).map(|_| rng.random_range(-2.0..2.0)).collect(), d).unwrap()
    }

    /// Mean and standard deviation of replicate estimates.
    fn mean_sd(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, var.sqrt())
    }

    /// The branch-free exp matches f64::exp to a few ulp over the whole range used.
    #[test]
    fn exp_neg_matches_std_exp() {
        let mut worst: f64 = 0.0;
        for i in 0..=200_000 {
            let e = 708.0 * i as f64 / 200_000.0;
            let (got, want) = (exp_neg(e), (-e).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 1e-15, "worst relative error {worst:.3e}");
        assert!(exp_neg(1e6) < 1e-307 && exp_neg(1e6) >= 0.0);
    }

    /// The default bandwidths need a single exp; powers are applied to the right bases.
    #[test]
    fn default_kernel_plan_uses_one_exp() {
        let coeffs: Vec<f64> = DEFAULT_BANDWIDTHS
            .iter()
            .map(|h| 1.0 / (2.0 * h * h))
            .collect();
        let plan = kernel_plan(&coeffs);
        let exps = plan
            .iter()
            .filter(|t| matches!(t, KernelTerm::Exp(_)))
            .count();
        assert_eq!(exps, 1, "{plan:?}");
        // Irrational ratios fall back to exp.
        let plan = kernel_plan(&[1.0, 2.0f64.sqrt(), PI]);
        assert!(
            plan.iter().all(|t| matches!(t, KernelTerm::Exp(_))),
            "{plan:?}"
        );
    }

    /// W₂² of sorted samples equals ∫₀¹ (F⁻¹ − G⁻¹)² du computed on a fine midpoint grid
    /// (10⁶ cells; the integrand is piecewise constant with jumps at i/n, j/m, so the grid
    /// error is ≤ (jumps)·(cell)·max(diff²) ≈ 10·10⁻⁶·16); equal sizes reduce to the mean of
    /// squared order-statistic differences.
    #[test]
    fn wasserstein_1d_matches_quantile_integral() {
        let mut r = rng(3);
        for (n, m) in [(7, 5), (3, 11), (6, 6), (1, 4)] {
            let mut a: Vec<f64> = uniform_points(n, 1, &mut r).into_vec();
            let mut b: Vec<f64> = uniform_points(m, 1, &mut r).into_vec();
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let cells = 1_000_000;
            let q = |s: &[f64], u: f64| s[((u * s.len() as f64) as usize).min(s.len() - 1)];
            let brute = (0..cells)
                .map(|k| {
                    let u = (k as f64 + 0.5) / cells as f64;
                    (q(&a, u) - q(&b, u)).powi(2)
                })
                .sum::<f64>()
                / cells as f64;
            let got = wasserstein2_sq_sorted(&a, &b);
            assert!((got - brute).abs() < 2e-4, "n={n}, m={m}: {got} vs {brute}");
            if n == m {
                let direct = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / n as f64;
                assert!((got - direct).abs() < 1e-15);
            }
        }
    }

    /// In 1-D every direction is ±1, so SW₂ is W₂ exactly.
    #[test]
    fn sliced_wasserstein_in_1d_is_w2() {
        let mut r = rng(4);
        let (x, y) = (
            gaussian_1d(300, 0.0, 1.0, &mut r),
            gaussian_1d(200, 0.7, 2.0, &mut r),
        );
        let (mut a, mut b) = (x.as_slice().to_vec(), y.as_slice().to_vec());
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let w2 = wasserstein2_sq_sorted(&a, &b).sqrt();
        let sw2 = sliced_wasserstein2(&x, &y, 5, &mut r).unwrap();
        assert!((sw2 - w2).abs() < 1e-12, "{sw2} vs {w2}");
    }

    /// n Gaussian-shaped points whose empirical mean and covariance (1/n) are exactly μ and Σ:
    /// standard normal draws, whitened by their own moments, then mapped by μ + L·w (Σ = LLᵀ).
    fn moment_matched(n: usize, mu: [f64; 2], cov: Mat2, rng: &mut Rng) -> Points {
        let z = gaussian(n, [0.0; 2], [[1.0, 0.0], [0.0, 1.0]], rng);
        let m = mean(&z);
        let c = covariance(&z)
            .iter()
            .map(|v| v * (n as f64 - 1.0) / n as f64)
            .collect::<Vec<_>>();
        let (a11, a21) = (c[0].sqrt(), c[2] / c[0].sqrt());
        let a22 = (c[3] - a21 * a21).sqrt();
        let l11 = cov[0][0].sqrt();
        let l21 = cov[1][0] / l11;
        let l22 = (cov[1][1] - l21 * l21).sqrt();
        let data = z
            .rows()
            .flat_map(|p| {
                let w1 = (p[0] - m[0]) / a11;
                let w2 = (p[1] - m[1] - a21 * w1) / a22;
                [mu[0] + l11 * w1, mu[1] + l21 * w1 + l22 * w2]
            })
            .collect();
        Points::new(data, 2).unwrap()
    }

    /// W₂² between N(θᵀμ₁, θᵀΣ₁θ) and N(θᵀμ₂, θᵀΣ₂θ): (θᵀΔμ)² + (√(θᵀΣ₁θ) − √(θᵀΣ₂θ))².
    fn projected_gaussian_w2(th: &[f64], dm: [f64; 2], s1: &Mat2, s2: &Mat2) -> f64 {
        let q = |m: &Mat2| {
            th[0] * th[0] * m[0][0] + 2.0 * th[0] * th[1] * m[0][1] + th[1] * th[1] * m[1][1]
        };
        (th[0] * dm[0] + th[1] * dm[1]).powi(2) + (q(s1).sqrt() - q(s2).sqrt()).powi(2)
    }

    /// Two 2-D Gaussians, SW₂ along given directions: with samples whose empirical means and
    /// covariances are exactly the Gaussians' ([`moment_matched`]), each projection has the
    /// exact means mᵢ and sds sᵢ, and W₂²(θ) = (m₁−m₂)² + (s₁−s₂)² + 2s₁s₂(1 − ρ_θ) with ρ_θ the
    /// correlation of the standardised quantile functions. So SW₂² − mean_θ[closed form] lies in
    /// [0, max_θ 2s₁s₂·(1 − ρ)], and for two normal samples of size n, 2(1 − ρ) is the W₂² of
    /// two standardised samples ≈ 2(log log n + O(1))/n; we bound 1 − ρ ≤ 6/n (measured:
    /// excess 2.4·10⁻⁴ here, i.e. 1 − ρ ≈ 2.4/n, against the bound 6.6·10⁻⁴).
    #[test]
    fn sliced_wasserstein_matches_gaussian_closed_form() {
        let (mu1, mu2) = ([0.0, 0.0], [1.0, 0.5]);
        let s1: Mat2 = [[1.0, 0.5], [0.5, 0.8]];
        let s2: Mat2 = [[0.3, -0.1], [-0.1, 0.6]];
        let n = 10_000;
        let mut r = rng(5);
        let dirs = random_directions(2, 256, &mut r);
        let dm = [mu2[0] - mu1[0], mu2[1] - mu1[1]];
        let truth = dirs
            .rows()
            .map(|th| projected_gaussian_w2(th, dm, &s1, &s2))
            .sum::<f64>()
            / dirs.len() as f64;
        let (x, y) = (
            moment_matched(n, mu1, s1, &mut r),
            moment_matched(n, mu2, s2, &mut r),
        );
        let sw2 = sliced_wasserstein2_along(&x, &y, &dirs).unwrap();
        let q = |m: &Mat2, th: &[f64]| {
            th[0] * th[0] * m[0][0] + 2.0 * th[0] * th[1] * m[0][1] + th[1] * th[1] * m[1][1]
        };
        let cross = dirs
            .rows()
            .map(|th| 2.0 * (q(&s1, th) * q(&s2, th)).sqrt())
            .fold(0.0, f64::max);
        let excess = sw2 * sw2 - truth;
        let bound = cross * 6.0 / n as f64;
        assert!(
            excess > -1e-12 && excess < bound,
            "SW2² {:.6} vs closed form {truth:.6} (bound {bound:.2e})",
            sw2 * sw2
        );
        // Identical distributions: only the shape term 2v₁(1 − ρ) ≤ 2·max_θ v₁·6/n remains.
        let x2 = moment_matched(n, mu1, s1, &mut r);
        let same = sliced_wasserstein2_along(&x, &x2, &dirs).unwrap();
        let v1max = dirs.rows().map(|th| q(&s1, th)).fold(0.0, f64::max);
        assert!(
            same * same < 2.0 * v1max * 6.0 / n as f64,
            "SW2 of identical distributions {same:.4}"
        );
    }

    /// Random directions are uniform on the circle: E[θθᵀ] = I/2 (each entry of θθᵀ has sd
    /// ≤ 1/√8 = 0.354, so with L = 4096 the mean is within 4·0.354/64 = 0.022), and the mean
    /// of the Gaussian SW₂² integrand over them converges to (1/π)∫₀^π g(φ)dφ (midpoint rule,
    /// 4096 nodes; within 4·sd_φ(g)/√L).
    #[test]
    fn random_directions_are_uniform() {
        let mut r = rng(13);
        let l = 4096;
        let dirs = random_directions(2, l, &mut r);
        let mut m = [0.0; 3];
        for th in dirs.rows() {
            assert!((th[0].hypot(th[1]) - 1.0).abs() < 1e-12);
            m[0] += th[0] * th[0] / l as f64;
            m[1] += th[0] * th[1] / l as f64;
            m[2] += th[1] * th[1] / l as f64;
        }
        assert!(
            (m[0] - 0.5).abs() < 0.022 && m[1].abs() < 0.022 && (m[2] - 0.5).abs() < 0.022,
            "{m:?}"
        );
        let (dm, s1, s2) = (
            [1.0, 0.5],
            [[1.0, 0.5], [0.5, 0.8]],
            [[0.3, -0.1], [-0.1, 0.6]],
        );
        let g: Vec<f64> = (0..4096)
            .map(|k| {
                let phi = PI * (k as f64 + 0.5) / 4096.0;
                projected_gaussian_w2(&[phi.cos(), phi.sin()], dm, &s1, &s2)
            })
            .collect();
        let (integral, sd) = mean_sd(&g);
        let mc = dirs
            .rows()
            .map(|th| projected_gaussian_w2(th, dm, &s1, &s2))
            .sum::<f64>()
            / l as f64;
        assert!(
            (mc - integral).abs() < 4.0 * sd / (l as f64).sqrt(),
            "{mc} vs {integral}"
        );
        assert!(matches!(
            sliced_wasserstein2_along(&dirs, &dirs, &Points::new(vec![1.0, 1.0], 2).unwrap()),
            Err(Error::InvalidInput(_))
        ));
    }

    /// mean_{i≠j} and mean_{i,j} by a plain double loop, for the blocked/parallel code.
    fn brute_pairs(x: &Points, y: &Points, hs: &[f64]) -> (f64, f64) {
        let k = |a: &[f64], b: &[f64]| {
            let r: f64 = a.iter().zip(b).map(|(u, v)| (u - v).powi(2)).sum();
            (
                hs.iter().map(|h| (-r / (2.0 * h * h)).exp()).sum::<f64>(),
                r.sqrt(),
            )
        };
        let within = |p: &Points| {
            let (mut ks, mut ds) = (0.0, 0.0);
            for i in 0..p.len() {
                for j in 0..p.len() {
                    if i != j {
                        let (a, b) = k(p.row(i), p.row(j));
                        ks += a;
                        ds += b;
                    }
                }
            }
            let w = (p.len() * (p.len() - 1)) as f64;
            (ks / w, ds / w)
        };
        let (mut kxy, mut dxy) = (0.0, 0.0);
        for a in x.rows() {
            for b in y.rows() {
                let (u, v) = k(a, b);
                kxy += u;
                dxy += v;
            }
        }
        let w = (x.len() * y.len()) as f64;
        let ((kxx, dxx), (kyy, dyy)) = (within(x), within(y));
        (kxx + kyy - 2.0 * kxy / w, 2.0 * dxy / w - dxx - dyy)
    }

    /// The blocked, parallel U-statistics equal the plain double loop (sizes not multiples of
    /// the block or lane widths, d = 3, bandwidths with and without integer ratios).
    #[test]
    fn pairwise_statistics_match_double_loop() {
        let mut r = rng(6);
        let (x, y) = (
            uniform_points(37, 3, &mut r),
            uniform_points(301, 3, &mut r),
        );
        for hs in [&DEFAULT_BANDWIDTHS[..], &[0.3, 0.77, 1.9][..]] {
            let (mmd_b, energy_b) = brute_pairs(&x, &y, hs);
            let mmd = mmd2(&x, &y, hs).unwrap();
            assert!(
                (mmd - mmd_b).abs() < 1e-12 * (1.0 + mmd_b.abs()),
                "{mmd} vs {mmd_b}"
            );
            let e = energy_distance(&x, &y).unwrap();
            assert!(
                (e - energy_b).abs() < 1e-12 * (1.0 + energy_b.abs()),
                "{e} vs {energy_b}"
            );
        }
    }

    /// E k_h(U, V) for U ~ N(μ_U, Σ_U), V ~ N(μ_V, Σ_V) in 2-D:
    /// h² det(h²I + Σ_U + Σ_V)^(−1/2) exp(−½ Δᵀ(h²I + Σ_U + Σ_V)⁻¹ Δ), Δ = μ_U − μ_V.
    fn gauss_kernel_mean(h: f64, d_mu: [f64; 2], s: Mat2) -> f64 {
        let m = [[h * h + s[0][0], s[0][1]], [s[1][0], h * h + s[1][1]]];
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        let quad = (m[1][1] * d_mu[0] * d_mu[0] - 2.0 * m[0][1] * d_mu[0] * d_mu[1]
            + m[0][0] * d_mu[1] * d_mu[1])
            / det;
        h * h / det.sqrt() * (-0.5 * quad).exp()
    }

    fn add(a: Mat2, b: Mat2) -> Mat2 {
        [
            [a[0][0] + b[0][0], a[0][1] + b[0][1]],
            [a[1][0] + b[1][0], a[1][1] + b[1][1]],
        ]
    }

    /// MMD² of two Gaussians against the closed form Σ_h [E k_h(X,X') + E k_h(Y,Y') − 2E k_h(X,Y)],
    /// and of identical distributions against 0. The U-statistic is unbiased, so the mean of
    /// R = 8 independent replicates (n = m = 1000) lies within 4 standard errors (sd/√R from the
    /// replicates; |t₇| > 4 has probability 0.5%) of the truth.
    #[test]
    fn mmd2_matches_gaussian_closed_form() {
        let (mu1, mu2) = ([0.0, 0.0], [0.4, -0.2]);
        let s1: Mat2 = [[0.5, 0.1], [0.1, 0.3]];
        let s2: Mat2 = [[0.2, 0.0], [0.0, 0.4]];
        let dm = [mu1[0] - mu2[0], mu1[1] - mu2[1]];
        let truth: f64 = DEFAULT_BANDWIDTHS
            .iter()
            .map(|&h| {
                gauss_kernel_mean(h, [0.0; 2], add(s1, s1))
                    + gauss_kernel_mean(h, [0.0; 2], add(s2, s2))
                    - 2.0 * gauss_kernel_mean(h, dm, add(s1, s2))
            })
            .sum();
        let mut r = rng(7);
        let (mut diff, mut same) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            let (x, y, x2) = (
                gaussian(1000, mu1, s1, &mut r),
                gaussian(1000, mu2, s2, &mut r),
                gaussian(1000, mu1, s1, &mut r),
            );
            diff.push(mmd2(&x, &y, &DEFAULT_BANDWIDTHS).unwrap());
            same.push(mmd2(&x, &x2, &DEFAULT_BANDWIDTHS).unwrap());
        }
        let (m, sd) = mean_sd(&diff);
        assert!(
            (m - truth).abs() < 4.0 * sd / 8f64.sqrt(),
            "MMD² {m:.5} ± {sd:.5} vs closed form {truth:.5}"
        );
        assert!(
            truth > 20.0 * sd / 8f64.sqrt(),
            "the test must resolve the distance"
        );
        let (m0, sd0) = mean_sd(&same);
        assert!(
            m0.abs() < 4.0 * sd0 / 8f64.sqrt(),
            "identical distributions: MMD² {m0:.2e} ± {sd0:.2e}"
        );
    }

    /// erf by its Taylor series (|z| ≤ 3: terms below 10⁻¹⁷ after 60 terms, cancellation ≲ 10⁻¹³).
    fn erf(z: f64) -> f64 {
        let (mut term, mut sum) = (z, z);
        for n in 1..80 {
            term *= -z * z / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        2.0 / PI.sqrt() * sum
    }

    /// 1-D Gaussians X ~ N(0, 1), Y ~ N(1, 1.5²): X − Y ~ N(−Δ, s²) with s² = σ₁² + σ₂², so
    /// E|X−Y| = s√(2/π) e^{−Δ²/(2s²)} + Δ erf(Δ/(s√2)) and E|X−X'| = 2σ/√π; the energy distance
    /// is 2E|X−Y| − E|X−X'| − E|Y−Y'|. Replicates as for MMD² (unbiased U-statistics).
    #[test]
    fn energy_distance_matches_gaussian_closed_form() {
        let (s1, s2, delta) = (1.0f64, 1.5f64, 1.0f64);
        let s = (s1 * s1 + s2 * s2).sqrt();
        let exy = s * (2.0 / PI).sqrt() * (-delta * delta / (2.0 * s * s)).exp()
            + delta * erf(delta / (s * 2f64.sqrt()));
        let truth = 2.0 * exy - 2.0 * s1 / PI.sqrt() - 2.0 * s2 / PI.sqrt();
        let mut r = rng(8);
        let (mut diff, mut same) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            let (x, y, x2) = (
                gaussian_1d(1000, 0.0, s1, &mut r),
                gaussian_1d(1000, delta, s2, &mut r),
                gaussian_1d(1000, 0.0, s1, &mut r),
            );
            diff.push(energy_distance(&x, &y).unwrap());
            same.push(energy_distance(&x, &x2).unwrap());
        }
        let (m, sd) = mean_sd(&diff);
        assert!(
            (m - truth).abs() < 4.0 * sd / 8f64.sqrt(),
            "energy {m:.5} ± {sd:.5} vs closed form {truth:.5}"
        );
        assert!(
            truth > 20.0 * sd / 8f64.sqrt(),
            "the test must resolve the distance"
        );
        let (m0, sd0) = mean_sd(&same);
        assert!(
            m0.abs() < 4.0 * sd0 / 8f64.sqrt(),
            "identical distributions: energy {m0:.2e} ± {sd0:.2e}"
        );
    }

    /// Y = X + c: mean error ‖c‖, covariance error 0; Y = μ + s(X − μ): covariance error
    /// |s² − 1|·‖Σ_X‖_F exactly (both up to round-off).
    #[test]
    fn moment_errors_are_exact_on_transformed_copies() {
        let mut r = rng(9);
        let x = gaussian(500, [0.3, -1.0], [[1.0, 0.4], [0.4, 0.7]], &mut r);
        let shifted =
            Points::new(x.rows().flat_map(|p| [p[0] + 3.0, p[1] - 4.0]).collect(), 2).unwrap();
        assert!((mean_error(&x, &shifted).unwrap() - 5.0).abs() < 1e-12);
        assert!(covariance_error(&x, &shifted).unwrap() < 1e-12);
        let mu = mean(&x);
        let scaled = Points::new(
            x.rows()
                .flat_map(|p| [mu[0] + 2.0 * (p[0] - mu[0]), mu[1] + 2.0 * (p[1] - mu[1])])
                .collect(),
            2,
        )
        .unwrap();
        let frob = covariance(&x).iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((covariance_error(&x, &scaled).unwrap() - 3.0 * frob).abs() < 1e-12);
        assert!(mean_error(&x, &scaled).unwrap() < 1e-12);
        // The sample covariance is the unbiased one: for {0, 2} in 1-D it is 2.
        let two = Points::new(vec![0.0, 2.0], 1).unwrap();
        assert_eq!(covariance(&two), vec![2.0]);
    }

    /// Nearest-mean proportions and off-mode share on hand-placed points.
    #[test]
    fn mode_weights_count_nearest_means() {
        let modes = Modes::isotropic(Points::new(vec![0.0, 0.0, 4.0, 0.0], 2).unwrap(), 0.5, 3.0);
        // Radius k·σ = 1.5: (0.1, 0) and (1.4, 0) on mode 0; (3, 0) on mode 1; (2.1, 0) is nearer
        // mode 1 yet 1.9 from it: off every mode; (0, −9) nearest mode 0, off.
        let x = Points::new(vec![0.1, 0.0, 1.4, 0.0, 3.0, 0.0, 2.1, 0.0, 0.0, -9.0], 2).unwrap();
        let w = mode_weights(&x, &modes).unwrap();
        assert_eq!(w.weights, vec![0.6, 0.4]);
        assert_eq!(w.off_modes, 0.4);
        assert!((w.total_variation(&[0.5, 0.5]).unwrap() - 0.1).abs() < 1e-15);
        assert!(matches!(w.total_variation(&[1.0]), Err(Error::Shape(_))));
        let bad = Modes {
            stds: vec![0.5],
            ..modes.clone()
        };
        assert!(matches!(
            mode_weights(&x, &bad),
            Err(Error::InvalidInput(_))
        ));
    }

    /// 8gaussians (σ = 0.354, neighbours 2.17 apart): nearest-mean shares are 1/8 and, with
    /// k = 2, the off-mode share is P(‖z‖ > 2) = e^{−2} for a 2-D standard normal (the 2σ balls
    /// are ≥ 4σ from the other centres: their mass is < 10⁻⁴). n = 20,000: binomial sds
    /// 0.0023 and 0.0024, so 4 sds = 0.01. An anisotropic component's σ is its widest axis.
    #[test]
    fn mode_weights_of_eight_gaussians() {
        let spec = crate::data::Dataset::EightGaussians.mixture().unwrap();
        let x = spec.sample(20_000, &mut rng(14));
        let w = mode_weights(&x, &Modes::from_mixture(&spec, 2.0)).unwrap();
        for (j, wj) in w.weights.iter().enumerate() {
            assert!((wj - 0.125).abs() < 0.01, "mode {j}: share {wj}");
        }
        assert!(
            (w.off_modes - (-2.0f64).exp()).abs() < 0.01,
            "off-mode share {}",
            w.off_modes
        );
        assert!(w.total_variation(spec.weights()).unwrap() < 0.02);
        let aniso = MixtureSpec::new(
            vec![1.0],
            vec![vec![0.0, 0.0]],
            vec![vec![2.0, 1.0, 1.0, 2.0]],
        )
        .unwrap();
        assert!((Modes::from_mixture(&aniso, 1.0).stds[0] - 3f64.sqrt()).abs() < 1e-12);
    }

    /// The report agrees with the individual metrics (same directions from the same seed),
    /// the noise floor draws n fresh points, and ratios are None where the floor is ≤ 0.
    #[test]
    fn report_noise_floor_and_ratios() {
        let mut r = rng(10);
        let draw = |n: usize, r: &mut Rng| Ok(gaussian(n, [0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], r));
        let reference = draw(800, &mut r).unwrap();
        let samples = gaussian(600, [0.5, 0.0], [[1.0, 0.0], [0.0, 1.0]], &mut r);
        let modes = Modes::isotropic(Points::new(vec![0.0, 0.0], 2).unwrap(), 1.0, 3.0);
        let opts = MetricOptions {
            projections: 64,
            modes: Some(modes),
            ..MetricOptions::default()
        };
        let rep = evaluate(&samples, &reference, &opts, &mut rng(11)).unwrap();
        assert_eq!((rep.n_samples, rep.n_reference), (600, 800));
        assert_eq!(
            rep.sw2,
            sliced_wasserstein2(&samples, &reference, 64, &mut rng(11)).unwrap()
        );
        assert!(
            (rep.mmd2 - mmd2(&samples, &reference, &DEFAULT_BANDWIDTHS).unwrap()).abs() < 1e-15
        );
        assert!((rep.energy - energy_distance(&samples, &reference).unwrap()).abs() < 1e-15);
        assert_eq!(rep.modes.as_ref().unwrap().weights, vec![1.0]);
        let floor = noise_floor(&reference, 600, draw, &opts, &mut r).unwrap();
        assert_eq!(floor.n_samples, 600);
        // A 0.5 mean shift is far above the floor of SW₂ and the mean error.
        let ratios = rep.ratio_to(&floor);
        assert!(
            ratios.sw2.unwrap() > 2.0 && ratios.mean_error.unwrap() > 2.0,
            "{ratios:?}"
        );
        let zero_floor = MetricReport {
            mmd2: -1e-6,
            energy: 0.0,
            ..floor.clone()
        };
        let ratios = rep.ratio_to(&zero_floor);
        assert_eq!((ratios.mmd2, ratios.energy), (None, None));
        let json = serde_json::to_value(&rep).unwrap();
        for key in [
            "sw2",
            "mmd2",
            "energy",
            "mean_error",
            "cov_error",
            "modes",
            "n_samples",
        ] {
            assert!(json.get(key).is_some(), "report JSON lacks {key}");
        }
        let short =
            |n: usize, r: &mut Rng| Ok(gaussian(n / 2, [0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], r));
        assert!(matches!(
            noise_floor(&reference, 10, short, &opts, &mut r),
            Err(Error::InvalidInput(_))
        ));
    }

    /// Bad inputs are errors, never panics.
    #[test]
    fn invalid_inputs_are_errors() {
        let mut r = rng(12);
        let x = uniform_points(10, 2, &mut r);
        let y3 = uniform_points(10, 3, &mut r);
        let one = uniform_points(1, 2, &mut r);
        let nan = Points::new(vec![0.0, f64::NAN, 1.0, 1.0], 2).unwrap();
        assert!(matches!(
            mmd2(&x, &y3, &DEFAULT_BANDWIDTHS),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            energy_distance(&x, &one),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            mmd2(&x, &nan, &DEFAULT_BANDWIDTHS),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(mmd2(&x, &x, &[]), Err(Error::InvalidInput(_))));
        assert!(matches!(
            mmd2(&x, &x, &[0.1, -1.0]),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            sliced_wasserstein2(&x, &x, 0, &mut r),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            covariance_error(&x, &one),
            Err(Error::InvalidInput(_))
        ));
        let empty = Points::new(vec![], 2).unwrap();
        assert!(matches!(
            sliced_wasserstein2(&x, &empty, 4, &mut r),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            evaluate(&x, &y3, &MetricOptions::default(), &mut r),
            Err(Error::Shape(_))
        ));
    }
}
