//! Gaussians N(μ, Σ) and Gaussian mixtures Σₖ wₖ N(μₖ, Σₖ) on the host, in f64: densities,
//! scores, Hessian–vector products, Laplacians, sampling, and the closed form of a mixture
//! perturbed by a Gaussian kernel x_t = m·x + s·z, z ~ N(0, I):
//! p_t = Σₖ wₖ N(m μₖ, m² Σₖ + s² I).
//!
//! With per-component precision Pₖ = Cₖ⁻¹, residual gₖ = −Pₖ(x − μₖ) and responsibilities
//! rₖ(x) ∝ wₖ N(x; μₖ, Cₖ):
//! * score s(x) = Σₖ rₖ gₖ,
//! * Hessian H(x) = Σₖ rₖ (gₖ gₖᵀ − Pₖ) − s sᵀ,
//! * Laplacian tr H = Σₖ rₖ (‖gₖ‖² − tr Pₖ) − ‖s‖².
//!
//! The one place where the mathematics of Gaussian mixtures is written: the data sets' exact
//! densities (`data::MixtureSpec`) and the analytic score fields (`field::analytic`) both use
//! it. Depends only on [`crate::linalg`] and [`Points`].
//!
//! In high dimension dense d × d algebra per component is out of reach; [`LowRankMixture`]
//! holds covariances that are isotropic outside one shared low-dimensional subspace (identity
//! covariances, and their posteriors under rank-d_y linear observations), with the Woodbury
//! forms of their inverses, and conditions mixtures on linear-Gaussian observations exactly.
//! [`MixtureLaw`] is what both kinds of mixture offer the analytic fields.

// Index loops over d are the clearest way to write the small dense linear algebra here.
#![allow(clippy::needless_range_loop)]

use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

use crate::data::Points;
use crate::error::{Error, Result};
use crate::linalg::{cholesky, cholesky_inverse, dot, matvec};
use crate::tensor::Rng;

mod low_rank;
pub use low_rank::LowRankMixture;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The Gaussian N(μ, Σ): log N(x) = −½(d log 2π + log det Σ + (x − μ)ᵀ Σ⁻¹ (x − μ)),
/// score −Σ⁻¹(x − μ).
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    mean: Vec<f64>,
    cov: Vec<f64>,
    chol: Vec<f64>,
    prec: Vec<f64>,
    log_det: f64,
}

impl Gaussian {
    /// N(μ, Σ) from the mean (length d) and the row-major d × d covariance; errors unless Σ is
    /// symmetric positive definite and everything is finite.
    pub fn new(mean: Vec<f64>, cov: Vec<f64>) -> Result<Self> {
        let d = mean.len();
        if d == 0 {
            return Err(Error::InvalidInput(
                "Gaussian needs dimension d >= 1".into(),
            ));
        }
        if mean.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "Gaussian mean has non-finite entries: {mean:?}"
            )));
        }
        if cov.len() != d * d {
            return Err(Error::Shape(format!(
                "covariance has {} entries, a {d}-dimensional Gaussian needs {d}x{d} = {}",
                cov.len(),
                d * d
            )));
        }
        let chol = cholesky(&cov, d).ok_or_else(|| {
            Error::InvalidInput(format!(
                "covariance {cov:?} is not symmetric positive definite"
            ))
        })?;
        let prec = cholesky_inverse(&chol, d);
        let log_det = 2.0 * (0..d).map(|i| chol[i * d + i].ln()).sum::<f64>();
        Ok(Self {
            mean,
            cov,
            chol,
            prec,
            log_det,
        })
    }

    /// N(μ, v·I).
    pub fn isotropic(mean: Vec<f64>, var: f64) -> Result<Self> {
        let d = mean.len();
        let mut cov = vec![0.0; d * d];
        for i in 0..d {
            cov[i * d + i] = var;
        }
        Self::new(mean, cov)
    }

    /// The standard normal N(0, I_d).
    pub fn standard(d: usize) -> Result<Self> {
        Self::isotropic(vec![0.0; d], 1.0)
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// μ.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Σ, row-major.
    pub fn cov(&self) -> &[f64] {
        &self.cov
    }

    /// L with Σ = L Lᵀ (lower, row-major).
    pub fn cholesky(&self) -> &[f64] {
        &self.chol
    }

    /// Σ⁻¹, row-major.
    pub fn precision(&self) -> &[f64] {
        &self.prec
    }

    /// log det Σ.
    pub fn log_det(&self) -> f64 {
        self.log_det
    }

    /// log N(x; μ, Σ) = −½(d log 2π + log det Σ + (x − μ)ᵀ Σ⁻¹ (x − μ)).
    pub fn log_density(&self, x: &[f64]) -> f64 {
        let d = self.dim();
        let diff: Vec<f64> = x.iter().zip(&self.mean).map(|(a, b)| a - b).collect();
        let mut pd = vec![0.0; d];
        matvec(&self.prec, &diff, &mut pd);
        -0.5 * (d as f64 * LN_2PI + self.log_det + dot(&diff, &pd))
    }

    /// ∇ log N(x; μ, Σ) = −Σ⁻¹(x − μ).
    pub fn score(&self, x: &[f64]) -> Vec<f64> {
        let diff: Vec<f64> = x.iter().zip(&self.mean).map(|(a, b)| b - a).collect();
        let mut g = vec![0.0; self.dim()];
        matvec(&self.prec, &diff, &mut g);
        g
    }

    /// The law of m·x + s·z for x ~ N(μ, Σ), z ~ N(0, I): N(m μ, m² Σ + s² I). Errors when the
    /// result is degenerate (m = s = 0) or a coefficient is not finite.
    pub fn perturbed(&self, m: f64, s: f64) -> Result<Self> {
        if !m.is_finite() || !s.is_finite() {
            return Err(Error::InvalidInput(format!(
                "perturbation (m, s) = ({m}, {s}) is not finite"
            )));
        }
        let d = self.dim();
        let mean = self.mean.iter().map(|v| m * v).collect();
        let mut cov: Vec<f64> = self.cov.iter().map(|v| m * m * v).collect();
        for i in 0..d {
            cov[i * d + i] += s * s;
        }
        Self::new(mean, cov).map_err(|_| {
            Error::InvalidInput(format!(
                "perturbation (m, s) = ({m}, {s}) leaves a degenerate Gaussian"
            ))
        })
    }

    /// Writes one draw μ + L z (Σ = L Lᵀ, z ~ N(0, I) from `rng`) into `out`.
    pub fn sample_into(&self, rng: &mut Rng, out: &mut [f64]) {
        let d = self.dim();
        let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        for i in 0..d {
            out[i] = self.mean[i] + (0..=i).map(|k| self.chol[i * d + k] * z[k]).sum::<f64>();
        }
    }
}

impl Gaussian {
    /// N(μ, Σ) from parts already validated elsewhere, with Σ = L Lᵀ (L lower, row-major).
    pub(crate) fn from_factor(mean: Vec<f64>, cov: Vec<f64>, chol: Vec<f64>) -> Self {
        let d = mean.len();
        let prec = cholesky_inverse(&chol, d);
        let log_det = 2.0 * (0..d).map(|i| chol[i * d + i].ln()).sum::<f64>();
        Self {
            mean,
            cov,
            chol,
            prec,
            log_det,
        }
    }
}

/// The Gaussian mixture p(x) = Σₖ wₖ N(x; μₖ, Σₖ), weights normalised to sum to one.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    weights: Vec<f64>,
    log_weights: Vec<f64>,
    components: Vec<Gaussian>,
}

/// Per-row quantities of a mixture at x: responsibilities rₖ, residuals gₖ = −Pₖ(x − μₖ)
/// (row k of `g`, K × d), score s = Σ rₖ gₖ and log p(x).
struct RowEval {
    resp: Vec<f64>,
    g: Vec<f64>,
    score: Vec<f64>,
    log_p: f64,
}

impl GaussianMixture {
    /// Σₖ wₖ N(μₖ, Σₖ) from raw vectors: K weights (non-negative, positive sum; normalised
    /// here), K means of length d and K row-major d × d covariances.
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, covs: Vec<Vec<f64>>) -> Result<Self> {
        if means.len() != weights.len() || covs.len() != weights.len() {
            return Err(Error::Shape(format!(
                "mixture has {} weights, {} means and {} covariances",
                weights.len(),
                means.len(),
                covs.len()
            )));
        }
        let components = means
            .into_iter()
            .zip(covs)
            .enumerate()
            .map(|(k, (m, c))| {
                Gaussian::new(m, c)
                    .map_err(|e| Error::InvalidInput(format!("mixture component {k}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_components(weights, components)
    }

    /// Σₖ wₖ Nₖ from weights and components of one common dimension.
    pub fn from_components(weights: Vec<f64>, components: Vec<Gaussian>) -> Result<Self> {
        if components.is_empty() || weights.len() != components.len() {
            return Err(Error::Shape(format!(
                "mixture needs K >= 1 components and K weights (got {} components, {} weights)",
                components.len(),
                weights.len()
            )));
        }
        let d = components[0].dim();
        if let Some(k) = components.iter().position(|c| c.dim() != d) {
            return Err(Error::Shape(format!(
                "mixture component {k} has dimension {}, component 0 has {d}",
                components[k].dim()
            )));
        }
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::InvalidInput(format!(
                "mixture weights must be finite and >= 0, got {weights:?}"
            )));
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(Error::InvalidInput("mixture weights sum to zero".into()));
        }
        let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let log_weights = weights.iter().map(|w| w.ln()).collect();
        Ok(Self {
            weights,
            log_weights,
            components,
        })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.components[0].dim()
    }

    /// Normalised weights wₖ.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The components N(μₖ, Σₖ).
    pub fn components(&self) -> &[Gaussian] {
        &self.components
    }

    /// Mixture mean E x = Σₖ wₖ μₖ.
    pub fn mean(&self) -> Vec<f64> {
        let d = self.dim();
        let mut mu = vec![0.0; d];
        for (w, c) in self.weights.iter().zip(&self.components) {
            for i in 0..d {
                mu[i] += w * c.mean[i];
            }
        }
        mu
    }

    /// Mixture covariance Σₖ wₖ (Σₖ + μₖ μₖᵀ) − μ μᵀ, row-major.
    pub fn covariance(&self) -> Vec<f64> {
        let d = self.dim();
        let mu = self.mean();
        let mut cov = vec![0.0; d * d];
        for (w, c) in self.weights.iter().zip(&self.components) {
            for i in 0..d {
                for j in 0..d {
                    cov[i * d + j] += w * (c.cov[i * d + j] + c.mean[i] * c.mean[j]);
                }
            }
        }
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] -= mu[i] * mu[j];
            }
        }
        cov
    }

    fn eval_row(&self, x: &[f64]) -> RowEval {
        let d = self.dim();
        let k = self.components.len();
        let mut resp = Vec::with_capacity(k);
        let mut g = vec![0.0; k * d];
        let mut diff = vec![0.0; d];
        for ((lw, c), gk) in self
            .log_weights
            .iter()
            .zip(&self.components)
            .zip(g.chunks_exact_mut(d))
        {
            for i in 0..d {
                diff[i] = c.mean[i] - x[i];
            }
            matvec(&c.prec, &diff, gk);
            // (x − μ)ᵀ P (x − μ) = diffᵀ P diff with diff = μ − x; log-weights first, as logits.
            resp.push(lw - 0.5 * (d as f64 * LN_2PI + c.log_det + dot(&diff, gk)));
        }
        let top = resp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        resp.iter_mut().for_each(|r| *r = (*r - top).exp());
        let z: f64 = resp.iter().sum();
        resp.iter_mut().for_each(|r| *r /= z);
        // Reuse `diff` as the score accumulator.
        diff.iter_mut().for_each(|v| *v = 0.0);
        for (r, gk) in resp.iter().zip(g.chunks_exact(d)) {
            for i in 0..d {
                diff[i] += r * gk[i];
            }
        }
        RowEval {
            resp,
            g,
            score: diff,
            log_p: top + z.ln(),
        }
    }

    /// The marginal velocity at `x` of the Gaussian path x_t = α x₁ + σ x₀ from x₀ ~ N(0, I)
    /// to x₁ ~ this mixture, given the path's `perturbed` mixture p_t = Σₖ wₖ N(αμₖ, Cₖ),
    /// Cₖ = α²Σₖ + σ²I (from [`GaussianMixture::perturbed`]) and (α, σ, α̇, σ̇):
    /// u = Σₖ rₖ(x) (α̇ x̂₁ₖ + σ̇ x̂₀ₖ) with the per-component posterior means
    /// x̂₁ₖ = E[x₁ | x_t = x, k] = μₖ + αΣₖCₖ⁻¹(x − αμₖ) and x̂₀ₖ = E[x₀ | x_t = x, k] =
    /// σCₖ⁻¹(x − αμₖ). Finite at both ends of the path (Cₖ = I at t = 0, Σₖ at t = 1), where the
    /// score form u = (α̇/α)x − (σ̇ − α̇σ/α)σ∇log p_t divides by zero.
    ///
    /// # Panics
    /// If `perturbed` has another number of components or dimension than `self`.
    pub fn path_velocity(
        &self,
        perturbed: &GaussianMixture,
        x: &[f64],
        (alpha, sigma, d_alpha, d_sigma): (f64, f64, f64, f64),
    ) -> Vec<f64> {
        let d = self.dim();
        assert_eq!(perturbed.components.len(), self.components.len());
        let e = perturbed.eval_row(x);
        let mut u = vec![0.0; d];
        let mut sg = vec![0.0; d];
        for ((r, gk), c) in e.resp.iter().zip(e.g.chunks_exact(d)).zip(&self.components) {
            // gₖ = −Cₖ⁻¹(x − αμₖ): x̂₁ₖ = μₖ − αΣₖgₖ, x̂₀ₖ = −σgₖ.
            matvec(&c.cov, gk, &mut sg);
            for i in 0..d {
                let x1 = c.mean[i] - alpha * sg[i];
                let x0 = -sigma * gk[i];
                u[i] += r * (d_alpha * x1 + d_sigma * x0);
            }
        }
        u
    }

    /// log p(x) = log Σₖ wₖ N(x; μₖ, Σₖ) (log-sum-exp).
    pub fn log_density(&self, x: &[f64]) -> f64 {
        self.eval_row(x).log_p
    }

    /// Posterior component probabilities rₖ(x) = wₖ Nₖ(x) / p(x).
    pub fn responsibilities(&self, x: &[f64]) -> Vec<f64> {
        self.eval_row(x).resp
    }

    /// ∇ log p(x) = Σₖ rₖ(x) (−Σₖ⁻¹ (x − μₖ)).
    pub fn score(&self, x: &[f64]) -> Vec<f64> {
        self.eval_row(x).score
    }

    /// Writes ∇ log p(x) into `out` without heap allocation (d ≤ 16 and K ≤ 64; larger
    /// mixtures fall back to [`GaussianMixture::score`]).
    pub fn score_into(&self, x: &[f64], out: &mut [f64]) {
        const D: usize = 16;
        const K: usize = 64;
        let (d, k) = (self.dim(), self.components.len());
        if d > D || k > K {
            out.copy_from_slice(&self.score(x));
            return;
        }
        let (mut logits, mut diff, mut g) = ([0.0; K], [0.0; D], [0.0; D]);
        let mut top = f64::NEG_INFINITY;
        for (j, (lw, c)) in self.log_weights.iter().zip(&self.components).enumerate() {
            for i in 0..d {
                diff[i] = c.mean[i] - x[i];
            }
            matvec(&c.prec, &diff[..d], &mut g[..d]);
            logits[j] = lw - 0.5 * (c.log_det + dot(&diff[..d], &g[..d]));
            top = top.max(logits[j]);
        }
        let z: f64 = logits[..k]
            .iter_mut()
            .map(|l| {
                *l = (*l - top).exp();
                *l
            })
            .sum();
        out.iter_mut().for_each(|v| *v = 0.0);
        for (j, c) in self.components.iter().enumerate() {
            let r = logits[j] / z;
            if r == 0.0 {
                continue;
            }
            for i in 0..d {
                diff[i] = c.mean[i] - x[i];
            }
            matvec(&c.prec, &diff[..d], &mut g[..d]);
            for i in 0..d {
                out[i] += r * g[i];
            }
        }
    }

    /// (s(x), H(x)·u) with H = ∇² log p = Σₖ rₖ (gₖ gₖᵀ − Pₖ) − s sᵀ, exactly.
    pub fn score_hvp(&self, x: &[f64], u: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let e = self.eval_row(x);
        let d = self.dim();
        let mut hu = vec![0.0; d];
        let mut pu = vec![0.0; d];
        for ((r, gk), c) in e.resp.iter().zip(e.g.chunks_exact(d)).zip(&self.components) {
            matvec(&c.prec, u, &mut pu);
            let gu = dot(gk, u);
            for i in 0..d {
                hu[i] += r * (gk[i] * gu - pu[i]);
            }
        }
        let su = dot(&e.score, u);
        for i in 0..d {
            hu[i] -= e.score[i] * su;
        }
        (e.score, hu)
    }

    /// (s(x), Δ log p(x)) with the Laplacian tr H = Σₖ rₖ (‖gₖ‖² − tr Pₖ) − ‖s‖².
    pub fn score_laplacian(&self, x: &[f64]) -> (Vec<f64>, f64) {
        let e = self.eval_row(x);
        let d = self.dim();
        let mut lap = -dot(&e.score, &e.score);
        for ((r, gk), c) in e.resp.iter().zip(e.g.chunks_exact(d)).zip(&self.components) {
            let tr: f64 = (0..d).map(|i| c.prec[i * d + i]).sum();
            lap += r * (dot(gk, gk) - tr);
        }
        (e.score, lap)
    }

    /// The law of m·x + s·z for x ~ p, z ~ N(0, I): Σₖ wₖ N(m μₖ, m² Σₖ + s² I).
    pub fn perturbed(&self, m: f64, s: f64) -> Result<Self> {
        let components = self
            .components
            .iter()
            .map(|c| c.perturbed(m, s))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            weights: self.weights.clone(),
            log_weights: self.log_weights.clone(),
            components,
        })
    }

    /// `n` i.i.d. draws: per point, a component k ~ Categorical(w) (one uniform draw), then
    /// μₖ + Lₖ z (d normal draws), all from `rng`.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Points {
        self.sample_labelled(n, rng).0
    }

    /// [`GaussianMixture::sample`] keeping each point's component index k (the same draws).
    pub fn sample_labelled(&self, n: usize, rng: &mut Rng) -> (Points, Vec<usize>) {
        let d = self.dim();
        let mut data = vec![0.0; n * d];
        let mut labels = Vec::with_capacity(n);
        for row in data.chunks_exact_mut(d) {
            let k = pick(&self.weights, rng.random::<f64>());
            self.components[k].sample_into(rng, row);
            labels.push(k);
        }
        (
            Points::new(data, d).expect("n·d values with d >= 1"),
            labels,
        )
    }
}

/// k ~ Categorical(w) by inversion: the component whose cumulative weight interval holds
/// `u ∈ [0, 1)` (the last one with positive weight when u lies above the rounded sum).
pub(crate) fn pick(weights: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    for (k, w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return k;
        }
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

/// A Gaussian mixture p = Σₖ wₖ N(μₖ, Σₖ) whose perturbed law, score and Hessian are known in
/// closed form, evaluated on row-major batches x of n points in R^d — what the analytic fields
/// (`field::analytic`) need. With gₖ(x) = ∇ log N(x; μₖ, Σₖ) = −Σₖ⁻¹(x − μₖ) and
/// responsibilities rₖ(x) = wₖ Nₖ(x)/p(x), the score is s = Σₖ rₖ gₖ.
///
/// Implemented by the dense [`GaussianMixture`] (any covariances, small d) and by
/// [`LowRankMixture`] (covariances isotropic outside a shared low-dimensional subspace: any d).
pub trait MixtureLaw: Clone + Send + Sync + std::fmt::Debug {
    /// Dimension d.
    fn dim(&self) -> usize;
    /// Normalised weights wₖ.
    fn weights(&self) -> &[f64];
    /// The law of m·x + s·z, x ~ p, z ~ N(0, I): Σₖ wₖ N(m μₖ, m² Σₖ + s² I); an error when
    /// degenerate or not finite.
    fn perturbed(&self, m: f64, s: f64) -> Result<Self>;
    /// The sub-mixture of the given components, weights renormalised (a class-conditional
    /// law); an error when the list is empty, out of range or of zero weight.
    fn select(&self, components: &[usize]) -> Result<Self>;
    /// log p(xᵢ) per row.
    fn log_densities(&self, x: &[f64]) -> Vec<f64>;
    /// rₖ(xᵢ), n × K row-major.
    fn responsibilities_batch(&self, x: &[f64]) -> Vec<f64>;
    /// Σₖ cᵢₖ gₖ(xᵢ) per row for coefficients c (n × K): the score for c = r, the gradient of a
    /// log class probability for c = r⁽ᶜ⁾ − r.
    fn weighted_residuals(&self, x: &[f64], coef: &[f64]) -> Vec<f64>;
    /// s(xᵢ) = Σₖ rₖ gₖ per row (n × d).
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        self.weighted_residuals(x, &self.responsibilities_batch(x))
    }
    /// (s, H u) per row with H = ∇² log p = Σₖ rₖ (gₖ gₖᵀ − Σₖ⁻¹) − s sᵀ.
    fn score_hvps(&self, x: &[f64], u: &[f64]) -> (Vec<f64>, Vec<f64>);
    /// (s, H w(s)) per row for a direction computed from the scores themselves (a VJP whose
    /// cotangent depends on the output: H is symmetric). Default: scores, then
    /// [`MixtureLaw::score_hvps`]; [`LowRankMixture`] shares one evaluation between them.
    fn score_hvp_with(
        &self,
        x: &[f64],
        w: &mut dyn FnMut(&[f64]) -> Vec<f64>,
    ) -> (Vec<f64>, Vec<f64>) {
        let s = self.scores(x);
        let u = w(&s);
        let (_, hu) = self.score_hvps(x, &u);
        (s, hu)
    }
    /// (s, tr H) per row with tr H = Σₖ rₖ (‖gₖ‖² − tr Σₖ⁻¹) − ‖s‖².
    fn score_laplacians(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>);
    /// n draws with their component indices: k ~ Categorical(w), then N(μₖ, Σₖ).
    fn sample_labelled(&self, n: usize, rng: &mut Rng) -> (Points, Vec<usize>);
}

/// Applies `f(row, out_row)` to every row of `x` (width `d` in, `width` out), in parallel.
fn rows_map<F: Fn(&[f64], &mut [f64]) + Sync>(x: &[f64], d: usize, width: usize, f: F) -> Vec<f64> {
    use rayon::prelude::*;
    let n = x.len() / d.max(1);
    let mut out = vec![0.0; n * width];
    out.par_chunks_mut(width.max(1))
        .zip(x.par_chunks(d.max(1)))
        .with_min_len(64)
        .for_each(|(o, r)| f(r, o));
    out
}

impl MixtureLaw for GaussianMixture {
    fn dim(&self) -> usize {
        GaussianMixture::dim(self)
    }
    fn weights(&self) -> &[f64] {
        GaussianMixture::weights(self)
    }
    fn perturbed(&self, m: f64, s: f64) -> Result<Self> {
        GaussianMixture::perturbed(self, m, s)
    }
    fn select(&self, components: &[usize]) -> Result<Self> {
        check_selection(components, self.components.len())?;
        Self::from_components(
            components.iter().map(|&k| self.weights[k]).collect(),
            components
                .iter()
                .map(|&k| self.components[k].clone())
                .collect(),
        )
    }
    fn log_densities(&self, x: &[f64]) -> Vec<f64> {
        rows_map(x, self.dim(), 1, |r, o| o[0] = self.log_density(r))
    }
    fn responsibilities_batch(&self, x: &[f64]) -> Vec<f64> {
        let k = self.components.len();
        rows_map(x, self.dim(), k, |r, o| {
            o.copy_from_slice(&self.responsibilities(r))
        })
    }
    fn weighted_residuals(&self, x: &[f64], coef: &[f64]) -> Vec<f64> {
        let (d, k) = (self.dim(), self.components.len());
        let rows: Vec<(&[f64], &[f64])> = x.chunks_exact(d).zip(coef.chunks_exact(k)).collect();
        use rayon::prelude::*;
        let mut out = vec![0.0; rows.len() * d];
        out.par_chunks_mut(d)
            .zip(rows.par_iter())
            .with_min_len(64)
            .for_each(|(o, (r, c))| {
                let mut diff = vec![0.0; d];
                let mut g = vec![0.0; d];
                for (ck, comp) in c.iter().zip(&self.components) {
                    if *ck == 0.0 {
                        continue;
                    }
                    for i in 0..d {
                        diff[i] = comp.mean[i] - r[i];
                    }
                    matvec(&comp.prec, &diff, &mut g);
                    for i in 0..d {
                        o[i] += ck * g[i];
                    }
                }
            });
        out
    }
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim();
        rows_map(x, d, d, |r, o| self.score_into(r, o))
    }
    fn score_hvps(&self, x: &[f64], u: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let both: Vec<f64> = {
            let xu: Vec<f64> = x
                .chunks_exact(d)
                .zip(u.chunks_exact(d))
                .flat_map(|(a, b)| a.iter().chain(b).copied())
                .collect();
            rows_map(&xu, 2 * d, 2 * d, |r, o| {
                let (s, hu) = self.score_hvp(&r[..d], &r[d..]);
                o[..d].copy_from_slice(&s);
                o[d..].copy_from_slice(&hu);
            })
        };
        split_rows(&both, d)
    }
    fn score_laplacians(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let both = rows_map(x, d, d + 1, |r, o| {
            let (s, lap) = self.score_laplacian(r);
            o[..d].copy_from_slice(&s);
            o[d] = lap;
        });
        let mut s = Vec::with_capacity(both.len() / (d + 1) * d);
        let mut lap = Vec::with_capacity(both.len() / (d + 1));
        for row in both.chunks_exact(d + 1) {
            s.extend_from_slice(&row[..d]);
            lap.push(row[d]);
        }
        (s, lap)
    }
    fn sample_labelled(&self, n: usize, rng: &mut Rng) -> (Points, Vec<usize>) {
        GaussianMixture::sample_labelled(self, n, rng)
    }
}

/// Errors unless `components` is a non-empty list of indices below `k`.
fn check_selection(components: &[usize], k: usize) -> Result<()> {
    if components.is_empty() {
        return Err(Error::InvalidInput("no components selected".into()));
    }
    if let Some(c) = components.iter().find(|&&c| c >= k) {
        return Err(Error::InvalidInput(format!(
            "component {c} selected from a mixture of {k}"
        )));
    }
    Ok(())
}

/// Splits rows `[a (d), b (d)]` into (a rows, b rows).
fn split_rows(both: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = Vec::with_capacity(both.len() / 2);
    let mut b = Vec::with_capacity(both.len() / 2);
    for row in both.chunks_exact(2 * d) {
        a.extend_from_slice(&row[..d]);
        b.extend_from_slice(&row[d..]);
    }
    (a, b)
}

impl From<Gaussian> for GaussianMixture {
    /// The one-component mixture N(μ, Σ).
    fn from(g: Gaussian) -> Self {
        Self {
            weights: vec![1.0],
            log_weights: vec![0.0],
            components: vec![g],
        }
    }
}
