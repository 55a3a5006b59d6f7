//! Gaussian mixtures in high dimension: p = Σₖ wₖ N(μₖ, Σₖ) with
//!
//!   Σₖ = cₖ (I − WᵀW) + Wᵀ Bₖ W,
//!
//! W (r × d) a basis with orthonormal rows shared by every component, cₖ > 0 the variance
//! outside span W and Bₖ (r × r) the covariance inside it. Identity covariances are r = 0; a
//! dense covariance in low dimension is W = I (r = d); the posterior of identity-covariance
//! components under a rank-d_y observation y = A x + σ ε is r = d_y. Everything costs O(d·r)
//! per point and component instead of O(d²), by the Woodbury identity with orthonormal W
//! (the capacitance matrix is r × r):
//!
//! * Σₖ⁻¹ = (1/cₖ)(I − WᵀW) + Wᵀ Bₖ⁻¹ W,   log det Σₖ = (d − r) log cₖ + log det Bₖ,
//! * gₖ(x) = −Σₖ⁻¹(x − μₖ) = −(x − μₖ)/cₖ + Wᵀ hₖ with hₖ = pₖ/cₖ − Bₖ⁻¹ pₖ, pₖ = W(x − μₖ),
//! * (x − μₖ)ᵀ Σₖ⁻¹ (x − μₖ) = (‖x − μₖ‖² − ‖pₖ‖²)/cₖ + pₖᵀ Bₖ⁻¹ pₖ.
//!
//! Batches are evaluated with matrix products (X Mᵀ, X Wᵀ, R M: the `gemm` kernels), so the
//! exact score of a 25-component mixture in d = 800 for 2,000 points is a few GEMMs.
//!
//! **Conditioning** ([`LowRankMixture::condition`]): for y = A x + σ ε, ε ~ N(0, I_{d_y}), each
//! component's posterior is Gaussian and the posterior is again a mixture (Bayes on each
//! component, re-weighted by its evidence):
//!
//!   Gₖ = A Σₖ Aᵀ + σ² I,  Kₖ = Σₖ Aᵀ,
//!   μₖ' = μₖ + Kₖ Gₖ⁻¹ (y − A μₖ),  Σₖ' = Σₖ − Kₖ Gₖ⁻¹ Kₖᵀ,
//!   wₖ' ∝ wₖ N(y; A μₖ, Gₖ),
//!
//! (the covariance form of the update, valid for σ = 0 too), with every matrix expressed in an
//! orthonormal basis W' of span(W, rows of A): outside it Σₖ' = Σₖ = cₖ I.

// Index loops over small dimensions are the clearest way to write this linear algebra.
#![allow(clippy::needless_range_loop)]

use rand_distr::{Distribution, StandardNormal};

use super::{check_selection, pick, GaussianMixture, MixtureLaw, LN_2PI};
use crate::data::Points;
use crate::error::{Error, Result};
use crate::linalg::{
    cholesky_lower, cholesky_solve, dot, log_sum_exp, matmul, orthonormal_rows, symmetric_eigen,
};
use crate::tensor::Rng;

/// Relative tolerance below which a row of A adds no new direction to the basis.
const DEPENDENT: f64 = 1e-10;

/// One component N(μ, c(I − WᵀW) + Wᵀ B W) with its derived quantities.
#[derive(Debug, Clone, PartialEq)]
struct Component {
    mean: Vec<f64>,
    /// Variance outside span W.
    c: f64,
    /// Covariance inside span W (r × r, symmetric positive semi-definite).
    b: Vec<f64>,
    /// W μ.
    mean_coords: Vec<f64>,
    /// ‖μ‖².
    mean_sq: f64,
    /// B⁻¹ (NaN when B is singular).
    b_inv: Vec<f64>,
    /// R with R Rᵀ = B (Q diag √max(λ, 0)), for sampling.
    b_root: Vec<f64>,
    /// log det Σ (NaN when singular).
    log_det: f64,
    /// tr Σ⁻¹.
    tr_prec: f64,
}

impl Component {
    fn new(mean: Vec<f64>, c: f64, b: Vec<f64>, basis: &[f64], d: usize) -> Result<Self> {
        let r = basis.len().checked_div(d).unwrap_or(0);
        if !(c.is_finite() && c >= 0.0) || b.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "low-rank Gaussian: variance {c} or its in-subspace covariance is not finite and non-negative"
            )));
        }
        if mean.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(
                "low-rank Gaussian: the mean has non-finite entries".into(),
            ));
        }
        let mut mean_coords = vec![0.0; r];
        for (j, w) in basis.chunks_exact(d).enumerate() {
            mean_coords[j] = dot(w, &mean);
        }
        let (lam, q) = symmetric_eigen(&b, r);
        let scale = lam
            .iter()
            .fold(c, |m, v| m.max(v.abs()))
            .max(f64::MIN_POSITIVE);
        if lam.first().is_some_and(|&l| l < -1e-9 * scale) {
            return Err(Error::InvalidInput(format!(
                "low-rank Gaussian: the in-subspace covariance has a negative eigenvalue {}",
                lam[0]
            )));
        }
        let mut b_root = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                b_root[i * r + j] = q[i * r + j] * lam[j].max(0.0).sqrt();
            }
        }
        let regular = (r == d || c > 0.0) && lam.iter().all(|&l| l > 1e-300);
        let (b_inv, log_det, tr_prec) = if regular {
            let mut inv = vec![0.0; r * r];
            for i in 0..r {
                for j in 0..r {
                    inv[i * r + j] = (0..r).map(|k| q[i * r + k] * q[j * r + k] / lam[k]).sum();
                }
            }
            let outside = (d - r) as f64;
            let log_det = if d > r { outside * c.ln() } else { 0.0 }
                + lam.iter().map(|l| l.ln()).sum::<f64>();
            let tr =
                if d > r { outside / c } else { 0.0 } + lam.iter().map(|l| 1.0 / l).sum::<f64>();
            (inv, log_det, tr)
        } else {
            (vec![f64::NAN; r * r], f64::NAN, f64::NAN)
        };
        let mean_sq = dot(&mean, &mean);
        Ok(Self {
            mean,
            c,
            b,
            mean_coords,
            mean_sq,
            b_inv,
            b_root,
            log_det,
            tr_prec,
        })
    }
}

/// p = Σₖ wₖ N(μₖ, cₖ(I − WᵀW) + Wᵀ Bₖ W) with one shared orthonormal basis W (see the module
/// documentation). Components may be degenerate (a singular Bₖ: the posterior under a
/// noiseless observation); then densities and scores are NaN but sampling works, and any
/// perturbation with s > 0 is regular again.
#[derive(Debug, Clone, PartialEq)]
pub struct LowRankMixture {
    dim: usize,
    rank: usize,
    /// W, r × d row-major, orthonormal rows.
    basis: Vec<f64>,
    weights: Vec<f64>,
    log_weights: Vec<f64>,
    comps: Vec<Component>,
    /// The means stacked, K × d.
    means: Vec<f64>,
}

impl LowRankMixture {
    /// Σₖ wₖ N(μₖ, vₖ I): r = 0. Weights ≥ 0 with a positive sum (normalised here), K means of
    /// one length d ≥ 1 and K variances > 0.
    pub fn isotropic(weights: Vec<f64>, means: Vec<Vec<f64>>, variances: &[f64]) -> Result<Self> {
        let k = means.len();
        if variances.len() != k {
            return Err(Error::Shape(format!(
                "{k} means but {} variances",
                variances.len()
            )));
        }
        if let Some(v) = variances.iter().find(|v| !(**v > 0.0 && v.is_finite())) {
            return Err(Error::InvalidInput(format!(
                "component variances must be positive and finite, got {v}"
            )));
        }
        let covs = vec![Vec::new(); k];
        Self::new(weights, means, variances.to_vec(), Vec::new(), covs)
    }

    /// The general form: weights, K means of length d, outside-variances cₖ, the shared basis W
    /// (r × d row-major with orthonormal rows, checked to 1e-8) and the in-subspace covariances
    /// Bₖ (r × r, symmetric PSD).
    pub fn new(
        weights: Vec<f64>,
        means: Vec<Vec<f64>>,
        outside: Vec<f64>,
        basis: Vec<f64>,
        inside: Vec<Vec<f64>>,
    ) -> Result<Self> {
        let k = weights.len();
        if k == 0 || means.len() != k || outside.len() != k || inside.len() != k {
            return Err(Error::Shape(format!(
                "low-rank mixture: {k} weights, {} means, {} variances, {} covariances",
                means.len(),
                outside.len(),
                inside.len()
            )));
        }
        let d = means[0].len();
        if d == 0 || means.iter().any(|m| m.len() != d) {
            return Err(Error::Shape(
                "low-rank mixture: means must share one dimension d >= 1".into(),
            ));
        }
        if !basis.len().is_multiple_of(d) {
            return Err(Error::Shape(format!(
                "low-rank mixture: basis of {} values is not r rows of length {d}",
                basis.len()
            )));
        }
        let r = basis.len() / d;
        for (i, wi) in basis.chunks_exact(d).enumerate() {
            for (j, wj) in basis.chunks_exact(d).enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                if (dot(wi, wj) - want).abs() > 1e-8 {
                    return Err(Error::InvalidInput(
                        "low-rank mixture: the basis rows are not orthonormal".into(),
                    ));
                }
            }
        }
        if let Some(b) = inside.iter().find(|b| b.len() != r * r) {
            return Err(Error::Shape(format!(
                "low-rank mixture: an in-subspace covariance has {} entries, expected {r}×{r}",
                b.len()
            )));
        }
        if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(Error::InvalidInput(format!(
                "mixture weights must be finite and >= 0, got {weights:?}"
            )));
        }
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return Err(Error::InvalidInput("mixture weights sum to zero".into()));
        }
        let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let log_weights = weights.iter().map(|w| w.ln()).collect();
        let comps = means
            .into_iter()
            .zip(outside)
            .zip(inside)
            .map(|((m, c), b)| Component::new(m, c, symmetrised(b, r), &basis, d))
            .collect::<Result<Vec<_>>>()?;
        let means = comps.iter().flat_map(|c| c.mean.iter().copied()).collect();
        Ok(Self {
            dim: d,
            rank: r,
            basis,
            weights,
            log_weights,
            comps,
            means,
        })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// r, the dimension of the shared subspace.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of components K.
    pub fn num_components(&self) -> usize {
        self.comps.len()
    }

    /// Normalised weights wₖ.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// μₖ.
    pub fn mean_of(&self, k: usize) -> &[f64] {
        &self.comps[k].mean
    }

    /// Σₖ as a dense d × d matrix (for tests and small d).
    pub fn covariance_of(&self, k: usize) -> Vec<f64> {
        let (d, r) = (self.dim, self.rank);
        let c = &self.comps[k];
        let mut cov = vec![0.0; d * d];
        for i in 0..d {
            cov[i * d + i] = c.c;
        }
        // + Wᵀ (B − c I) W
        for a in 0..r {
            for b in 0..r {
                let coef = c.b[a * r + b] - if a == b { c.c } else { 0.0 };
                if coef == 0.0 {
                    continue;
                }
                let (wa, wb) = (
                    &self.basis[a * d..(a + 1) * d],
                    &self.basis[b * d..(b + 1) * d],
                );
                for i in 0..d {
                    for j in 0..d {
                        cov[i * d + j] += coef * wa[i] * wb[j];
                    }
                }
            }
        }
        cov
    }

    /// The mixture mean Σₖ wₖ μₖ.
    pub fn mean(&self) -> Vec<f64> {
        let mut mu = vec![0.0; self.dim];
        for (w, c) in self.weights.iter().zip(&self.comps) {
            mu.iter_mut().zip(&c.mean).for_each(|(a, b)| *a += w * b);
        }
        mu
    }

    /// The law of m·x + s·z: means m μₖ, cₖ' = m² cₖ + s², Bₖ' = m² Bₖ + s² I.
    pub fn perturbed(&self, m: f64, s: f64) -> Result<Self> {
        if !(m.is_finite() && s.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "perturbation (m, s) = ({m}, {s}) is not finite"
            )));
        }
        let r = self.rank;
        let comps = self
            .comps
            .iter()
            .map(|c| {
                let mut b: Vec<f64> = c.b.iter().map(|v| m * m * v).collect();
                for i in 0..r {
                    b[i * r + i] += s * s;
                }
                let mean = c.mean.iter().map(|v| m * v).collect();
                Component::new(mean, m * m * c.c + s * s, b, &self.basis, self.dim)
            })
            .collect::<Result<Vec<_>>>()?;
        let means = comps.iter().flat_map(|c| c.mean.iter().copied()).collect();
        Ok(Self {
            comps,
            means,
            ..self.clone()
        })
    }

    /// The posterior of x given y = A x + σ ε, ε ~ N(0, I): again a mixture, in the basis
    /// span(W, rows of A) (see the module documentation), with each component's log evidence
    /// log N(y; A μₖ, A Σₖ Aᵀ + σ² I). `a` is d_y × d row-major, `noise_var` = σ² ≥ 0.
    /// Errors on shapes, non-finite values, σ² < 0, or a singular A Σₖ Aᵀ + σ² I (σ = 0 with a
    /// rank-deficient A).
    pub fn condition(&self, a: &[f64], y: &[f64], noise_var: f64) -> Result<(Self, Vec<f64>)> {
        let d = self.dim;
        let dy = y.len();
        if dy == 0 || a.len() != dy * d {
            return Err(Error::Shape(format!(
                "observation: A has {} entries, expected {dy} × {d}",
                a.len()
            )));
        }
        if a.iter().chain(y).any(|v| !v.is_finite()) || !(noise_var >= 0.0 && noise_var.is_finite())
        {
            return Err(Error::InvalidInput(
                "observation: A, y and σ² must be finite, σ² >= 0".into(),
            ));
        }
        let r = self.rank;
        // W' = orthonormal basis of span(W, rows of A).
        let mut rows = self.basis.clone();
        rows.extend_from_slice(a);
        let w2 = orthonormal_rows(&rows, d, DEPENDENT);
        let r2 = w2.len() / d;
        // T = W' Wᵀ (r2 × r): coordinates of the old basis in the new one.
        let mut t = vec![0.0; r2 * r];
        matmul(r2, r, d, (&w2, d, 1), (&self.basis, 1, d), &mut t);
        // Ã = A W'ᵀ (dy × r2).
        let mut at = vec![0.0; dy * r2];
        matmul(dy, r2, d, (a, d, 1), (&w2, 1, d), &mut at);
        let mut comps = Vec::with_capacity(self.comps.len());
        let mut log_evidence = Vec::with_capacity(self.comps.len());
        for (k, c) in self.comps.iter().enumerate() {
            // S = c I + T (B − c I) Tᵀ: Σ in the new coordinates.
            let mut s = vec![0.0; r2 * r2];
            for i in 0..r2 {
                s[i * r2 + i] = c.c;
            }
            for i in 0..r2 {
                for j in 0..r2 {
                    let mut acc = 0.0;
                    for p in 0..r {
                        for q in 0..r {
                            let bc = c.b[p * r + q] - if p == q { c.c } else { 0.0 };
                            acc += t[i * r + p] * bc * t[j * r + q];
                        }
                    }
                    s[i * r2 + j] += acc;
                }
            }
            // K = S Ãᵀ (r2 × dy), G = Ã K + σ² I.
            let mut kmat = vec![0.0; r2 * dy];
            for i in 0..r2 {
                for j in 0..dy {
                    kmat[i * dy + j] = (0..r2).map(|p| s[i * r2 + p] * at[j * r2 + p]).sum();
                }
            }
            let mut g = vec![0.0; dy * dy];
            for i in 0..dy {
                for j in 0..dy {
                    g[i * dy + j] = (0..r2).map(|p| at[i * r2 + p] * kmat[p * dy + j]).sum();
                }
                g[i * dy + i] += noise_var;
            }
            let gs = symmetrised(g, dy);
            let l = cholesky_lower(&gs, dy).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "observation: A Σ Aᵀ + σ² I is singular for component {k} (σ = 0 with a rank-deficient A?)"
                ))
            })?;
            let resid: Vec<f64> = a
                .chunks_exact(d)
                .zip(y)
                .map(|(row, yi)| yi - dot(row, &c.mean))
                .collect();
            let v = cholesky_solve(&l, &resid);
            let log_det_g = 2.0 * (0..dy).map(|i| l[i * dy + i].ln()).sum::<f64>();
            log_evidence.push(-0.5 * (dy as f64 * LN_2PI + log_det_g + dot(&resid, &v)));
            // μ' = μ + W'ᵀ (K v).
            let shift: Vec<f64> = (0..r2)
                .map(|i| (0..dy).map(|j| kmat[i * dy + j] * v[j]).sum())
                .collect();
            let mut mean = c.mean.clone();
            for (i, wi) in w2.chunks_exact(d).enumerate() {
                mean.iter_mut()
                    .zip(wi)
                    .for_each(|(m, w)| *m += shift[i] * w);
            }
            // S' = S − K G⁻¹ Kᵀ, column by column of Kᵀ.
            let mut s2 = s;
            let ginv_kt: Vec<Vec<f64>> = (0..r2)
                .map(|i| cholesky_solve(&l, &kmat[i * dy..(i + 1) * dy]))
                .collect();
            for i in 0..r2 {
                for j in 0..r2 {
                    s2[i * r2 + j] -= dot(&kmat[i * dy..(i + 1) * dy], &ginv_kt[j]);
                }
            }
            comps.push(Component::new(mean, c.c, symmetrised(s2, r2), &w2, d)?);
        }
        let logits: Vec<f64> = self
            .log_weights
            .iter()
            .zip(&log_evidence)
            .map(|(a, b)| a + b)
            .collect();
        let z = log_sum_exp(&logits);
        if !z.is_finite() {
            return Err(Error::InvalidInput(
                "observation: the evidence underflows for every component".into(),
            ));
        }
        let weights: Vec<f64> = logits.iter().map(|l| (l - z).exp()).collect();
        let log_weights = logits.iter().map(|l| l - z).collect();
        let means = comps.iter().flat_map(|c| c.mean.iter().copied()).collect();
        Ok((
            Self {
                dim: d,
                rank: r2,
                basis: w2,
                weights,
                log_weights,
                comps,
                means,
            },
            log_evidence,
        ))
    }

    /// Per-row evaluation: (log wₖ + log Nₖ(xᵢ)) (n × K), hₖ(xᵢ) (n × K × r) and
    /// ‖x − μₖ‖² (n × K).
    fn evaluate(&self, x: &[f64]) -> Eval {
        use rayon::prelude::*;
        let (d, r, kk) = (self.dim, self.rank, self.comps.len());
        let n = x.len() / d;
        let mut xm = vec![0.0; n * kk];
        matmul(n, kk, d, (x, d, 1), (&self.means, 1, d), &mut xm);
        let mut px = vec![0.0; n * r];
        matmul(n, r, d, (x, d, 1), (&self.basis, 1, d), &mut px);
        let mut logits = vec![0.0; n * kk];
        // One chunk per row even when r = 0 (then h is never read).
        let hw = (kk * r).max(1);
        let mut h = vec![0.0; n * hw];
        let mut dsq = vec![0.0; n * kk];
        logits
            .par_chunks_mut(kk)
            .zip(h.par_chunks_mut(hw))
            .zip(dsq.par_chunks_mut(kk))
            .enumerate()
            .with_min_len(32)
            .for_each(|(i, ((lg, hi), dq))| {
                let xi = &x[i * d..(i + 1) * d];
                let xsq = dot(xi, xi);
                let mut p = vec![0.0; r];
                for (k, c) in self.comps.iter().enumerate() {
                    for j in 0..r {
                        p[j] = px[i * r + j] - c.mean_coords[j];
                    }
                    let dist = (xsq - 2.0 * xm[i * kk + k] + c.mean_sq).max(0.0);
                    dq[k] = dist;
                    let psq = dot(&p, &p);
                    let mut quad = if d > r {
                        (dist - psq).max(0.0) / c.c
                    } else {
                        0.0
                    };
                    // With no outside part (r = d) the p/c terms of h and of −(x − μ)/c cancel
                    // exactly; both are left out (h = −B⁻¹p).
                    let outside = if d > r { 1.0 / c.c } else { 0.0 };
                    for a in 0..r {
                        let bp: f64 = (0..r).map(|b| c.b_inv[a * r + b] * p[b]).sum();
                        quad += p[a] * bp;
                        hi[k * r + a] = p[a] * outside - bp;
                    }
                    lg[k] = self.log_weights[k] - 0.5 * (d as f64 * LN_2PI + c.log_det + quad);
                }
            });
        Eval { logits, h, dsq, px }
    }

    /// Σₖ cᵢₖ gₖ(xᵢ) from an evaluation: −xᵢ Σₖ cᵢₖ/cₖ + Σₖ (cᵢₖ/cₖ) μₖ + Wᵀ Σₖ cᵢₖ hᵢₖ.
    fn combine(&self, x: &[f64], ev: &Eval, coef: &[f64]) -> Vec<f64> {
        let (d, r, kk) = (self.dim, self.rank, self.comps.len());
        let n = x.len() / d;
        let mut scaled = vec![0.0; n * kk];
        let mut hsum = vec![0.0; n * r];
        let mut diag = vec![0.0; n];
        for i in 0..n {
            for (k, c) in self.comps.iter().enumerate() {
                let ck = coef[i * kk + k];
                if d > r {
                    scaled[i * kk + k] = ck / c.c;
                    diag[i] += ck / c.c;
                }
                for a in 0..r {
                    hsum[i * r + a] += ck * ev.h[(i * kk + k) * r + a];
                }
            }
        }
        let mut out = vec![0.0; n * d];
        matmul(n, d, kk, (&scaled, kk, 1), (&self.means, d, 1), &mut out);
        let mut inside = vec![0.0; n * d];
        matmul(n, d, r, (&hsum, r, 1), (&self.basis, d, 1), &mut inside);
        for i in 0..n {
            for j in 0..d {
                out[i * d + j] += inside[i * d + j] - diag[i] * x[i * d + j];
            }
        }
        out
    }

    /// Normalised responsibilities from logits (n × K), in place; returns log p per row.
    fn normalise(logits: &mut [f64], kk: usize) -> Vec<f64> {
        logits
            .chunks_exact_mut(kk)
            .map(|row| {
                let z = log_sum_exp(row);
                row.iter_mut().for_each(|l| *l = (*l - z).exp());
                z
            })
            .collect()
    }
}

/// What [`LowRankMixture::evaluate`] returns.
struct Eval {
    logits: Vec<f64>,
    h: Vec<f64>,
    dsq: Vec<f64>,
    px: Vec<f64>,
}

/// ½(B + Bᵀ) of an r × r matrix.
fn symmetrised(mut b: Vec<f64>, r: usize) -> Vec<f64> {
    for i in 0..r {
        for j in 0..i {
            let v = 0.5 * (b[i * r + j] + b[j * r + i]);
            b[i * r + j] = v;
            b[j * r + i] = v;
        }
    }
    b
}

impl From<&GaussianMixture> for LowRankMixture {
    /// The same law with W = I (r = d, Bₖ = Σₖ, cₖ unused = 1): exact, for small d.
    fn from(g: &GaussianMixture) -> Self {
        let d = g.dim();
        let mut basis = vec![0.0; d * d];
        for i in 0..d {
            basis[i * d + i] = 1.0;
        }
        let comps = g.components();
        Self::new(
            g.weights().to_vec(),
            comps.iter().map(|c| c.mean().to_vec()).collect(),
            vec![1.0; comps.len()],
            basis,
            comps.iter().map(|c| c.cov().to_vec()).collect(),
        )
        .expect("a valid dense mixture is a valid low-rank one")
    }
}

impl MixtureLaw for LowRankMixture {
    fn dim(&self) -> usize {
        self.dim
    }
    fn weights(&self) -> &[f64] {
        &self.weights
    }
    fn perturbed(&self, m: f64, s: f64) -> Result<Self> {
        LowRankMixture::perturbed(self, m, s)
    }
    fn select(&self, components: &[usize]) -> Result<Self> {
        check_selection(components, self.comps.len())?;
        let w: Vec<f64> = components.iter().map(|&k| self.weights[k]).collect();
        let total: f64 = w.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return Err(Error::InvalidInput(
                "the selected components have zero weight".into(),
            ));
        }
        let weights: Vec<f64> = w.iter().map(|v| v / total).collect();
        let comps: Vec<Component> = components.iter().map(|&k| self.comps[k].clone()).collect();
        Ok(Self {
            dim: self.dim,
            rank: self.rank,
            basis: self.basis.clone(),
            log_weights: weights.iter().map(|v| v.ln()).collect(),
            weights,
            means: comps.iter().flat_map(|c| c.mean.iter().copied()).collect(),
            comps,
        })
    }
    fn log_densities(&self, x: &[f64]) -> Vec<f64> {
        let mut ev = self.evaluate(x);
        Self::normalise(&mut ev.logits, self.comps.len())
    }
    fn responsibilities_batch(&self, x: &[f64]) -> Vec<f64> {
        let mut ev = self.evaluate(x);
        Self::normalise(&mut ev.logits, self.comps.len());
        ev.logits
    }
    fn weighted_residuals(&self, x: &[f64], coef: &[f64]) -> Vec<f64> {
        let ev = self.evaluate(x);
        self.combine(x, &ev, coef)
    }
    fn scores(&self, x: &[f64]) -> Vec<f64> {
        let mut ev = self.evaluate(x);
        Self::normalise(&mut ev.logits, self.comps.len());
        let resp = std::mem::take(&mut ev.logits);
        self.combine(x, &ev, &resp)
    }
    /// H u = Σₖ rₖ (gₖᵀu) gₖ − Σₖ rₖ Σₖ⁻¹ u − s (sᵀu), with gₖᵀu = −(xᵀu − μₖᵀu)/cₖ + hₖᵀ(W u)
    /// and Σₖ⁻¹ u = u/cₖ + Wᵀ(Bₖ⁻¹ − I/cₖ) W u.
    fn score_hvps(&self, x: &[f64], u: &[f64]) -> (Vec<f64>, Vec<f64>) {
        self.score_hvp_with(x, &mut |_| u.to_vec())
    }
    /// One evaluation for both s and H w(s).
    fn score_hvp_with(
        &self,
        x: &[f64],
        w: &mut dyn FnMut(&[f64]) -> Vec<f64>,
    ) -> (Vec<f64>, Vec<f64>) {
        let (d, r, kk) = (self.dim, self.rank, self.comps.len());
        let n = x.len() / d;
        let mut ev = self.evaluate(x);
        Self::normalise(&mut ev.logits, kk);
        let resp = std::mem::take(&mut ev.logits);
        let s = self.combine(x, &ev, &resp);
        let u = w(&s);
        let u = u.as_slice();
        let mut um = vec![0.0; n * kk];
        matmul(n, kk, d, (u, d, 1), (&self.means, 1, d), &mut um);
        let mut pu = vec![0.0; n * r];
        matmul(n, r, d, (u, d, 1), (&self.basis, 1, d), &mut pu);
        let mut coef = vec![0.0; n * kk];
        let mut diag = vec![0.0; n];
        let mut inside = vec![0.0; n * r];
        for i in 0..n {
            let xu = dot(&x[i * d..(i + 1) * d], &u[i * d..(i + 1) * d]);
            for (k, c) in self.comps.iter().enumerate() {
                let rk = resp[i * kk + k];
                let hk = &ev.h[(i * kk + k) * r..(i * kk + k + 1) * r];
                let pui = &pu[i * r..(i + 1) * r];
                let outside = if d > r {
                    -(xu - um[i * kk + k]) / c.c
                } else {
                    0.0
                };
                coef[i * kk + k] = rk * (outside + dot(hk, pui));
                if d > r {
                    diag[i] += rk / c.c;
                }
                for a in 0..r {
                    let bp: f64 = (0..r).map(|b| c.b_inv[a * r + b] * pui[b]).sum();
                    let cinv = if d > r { pui[a] / c.c } else { 0.0 };
                    inside[i * r + a] += rk * (bp - cinv);
                }
            }
        }
        let mut hu = self.combine(x, &ev, &coef);
        let mut proj = vec![0.0; n * d];
        matmul(n, d, r, (&inside, r, 1), (&self.basis, d, 1), &mut proj);
        for i in 0..n {
            let si = &s[i * d..(i + 1) * d];
            let su = dot(si, &u[i * d..(i + 1) * d]);
            for j in 0..d {
                hu[i * d + j] -= diag[i] * u[i * d + j] + proj[i * d + j] + si[j] * su;
            }
        }
        (s, hu)
    }
    /// tr H = Σₖ rₖ(‖gₖ‖² − tr Σₖ⁻¹) − ‖s‖², ‖gₖ‖² = ‖x − μₖ‖²/cₖ² − 2 pₖᵀhₖ/cₖ + ‖hₖ‖².
    fn score_laplacians(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (d, r, kk) = (self.dim, self.rank, self.comps.len());
        let n = x.len() / d;
        let mut ev = self.evaluate(x);
        Self::normalise(&mut ev.logits, kk);
        let resp = std::mem::take(&mut ev.logits);
        let s = self.combine(x, &ev, &resp);
        let lap = (0..n)
            .map(|i| {
                let mut acc = 0.0;
                for (k, c) in self.comps.iter().enumerate() {
                    let hk = &ev.h[(i * kk + k) * r..(i * kk + k + 1) * r];
                    let gsq = if d > r {
                        let p: Vec<f64> = (0..r)
                            .map(|a| ev.px[i * r + a] - c.mean_coords[a])
                            .collect();
                        ev.dsq[i * kk + k] / (c.c * c.c) - 2.0 * dot(&p, hk) / c.c + dot(hk, hk)
                    } else {
                        dot(hk, hk)
                    };
                    acc += resp[i * kk + k] * (gsq - c.tr_prec);
                }
                let si = &s[i * d..(i + 1) * d];
                acc - dot(si, si)
            })
            .collect();
        (s, lap)
    }
    /// Per point: k ~ Categorical(w) (one uniform), z ~ N(0, I_d) (d normals), then
    /// x = μₖ + √cₖ (z − WᵀWz) + Wᵀ Rₖ W z with Rₖ Rₖᵀ = Bₖ.
    fn sample_labelled(&self, n: usize, rng: &mut Rng) -> (Points, Vec<usize>) {
        use rand::Rng as _;
        let (d, r) = (self.dim, self.rank);
        let mut data = vec![0.0; n * d];
        let mut labels = Vec::with_capacity(n);
        for row in data.chunks_exact_mut(d) {
            let k = pick(&self.weights, rng.random::<f64>());
            let c = &self.comps[k];
            let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
            let zc: Vec<f64> = self.basis.chunks_exact(d).map(|w| dot(w, &z)).collect();
            let sc = c.c.sqrt();
            for j in 0..d {
                row[j] = c.mean[j] + sc * z[j];
            }
            for a in 0..r {
                let coef: f64 =
                    (0..r).map(|b| c.b_root[a * r + b] * zc[b]).sum::<f64>() - sc * zc[a];
                let w = &self.basis[a * d..(a + 1) * d];
                row.iter_mut().zip(w).for_each(|(x, wv)| *x += coef * wv);
            }
            labels.push(k);
        }
        (
            Points::new(data, d).expect("n·d values with d >= 1"),
            labels,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gaussian::Gaussian;
    use crate::linalg::{cholesky, cholesky_inverse};
    use crate::tensor::rng;

    /// A 3-D mixture with full, unequal covariances.
    fn dense3() -> GaussianMixture {
        GaussianMixture::new(
            vec![0.2, 0.5, 0.3],
            vec![
                vec![0.5, -1.0, 0.0],
                vec![-0.5, 1.0, 0.3],
                vec![2.0, 0.0, -1.0],
            ],
            vec![
                vec![1.0, 0.3, 0.1, 0.3, 0.8, -0.2, 0.1, -0.2, 0.5],
                vec![0.5, 0.0, 0.1, 0.0, 0.7, 0.0, 0.1, 0.0, 0.9],
                vec![0.3, 0.1, 0.0, 0.1, 0.4, 0.1, 0.0, 0.1, 0.6],
            ],
        )
        .unwrap()
    }

    /// An isotropic mixture in d = 6 with unequal variances and weights.
    fn iso6() -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>) {
        let means = vec![
            vec![1.0, -2.0, 0.5, 0.0, 3.0, -1.0],
            vec![-1.5, 0.5, 2.0, 1.0, -0.5, 0.0],
            vec![0.0, 0.0, -2.0, 2.5, 1.0, 1.5],
        ];
        (vec![0.5, 0.3, 0.2], means, vec![1.0, 0.6, 1.4])
    }

    fn points(n: usize, d: usize, seed: u64) -> Vec<f64> {
        use rand::Rng as _;
        let mut r = rng(seed);
        (0..n * d).map(|_| r.random_range(-3.0..3.0)).collect()
    }

    fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// The same law in both representations (W = I for the dense one, r = 0 for the isotropic
    /// one) gives the same log-densities, responsibilities, scores, Hessian products and
    /// Laplacians (all exact formulas: agreement to 1e-10 relative).
    #[test]
    fn low_rank_forms_agree_with_dense() {
        let dense = dense3();
        let (w, m, v) = iso6();
        let iso_dense = GaussianMixture::new(
            w.clone(),
            m.clone(),
            v.iter()
                .map(|&vk| {
                    let mut c = vec![0.0; 36];
                    (0..6).for_each(|i| c[i * 7] = vk);
                    c
                })
                .collect(),
        )
        .unwrap();
        let cases = [
            (dense.clone(), LowRankMixture::from(&dense)),
            (iso_dense, LowRankMixture::isotropic(w, m, &v).unwrap()),
        ];
        for (g, lr) in cases {
            let d = g.dim();
            let x = points(7, d, 3);
            let u = points(7, d, 4);
            close(&lr.log_densities(&x), &g.log_densities(&x), 1e-10, "log p");
            close(
                &lr.responsibilities_batch(&x),
                &g.responsibilities_batch(&x),
                1e-10,
                "r",
            );
            close(&lr.scores(&x), &g.scores(&x), 1e-10, "score");
            let (s1, h1) = lr.score_hvps(&x, &u);
            let (s2, h2) = g.score_hvps(&x, &u);
            close(&s1, &s2, 1e-10, "hvp score");
            close(&h1, &h2, 1e-10, "H u");
            let (_, l1) = lr.score_laplacians(&x);
            let (_, l2) = g.score_laplacians(&x);
            close(&l1, &l2, 1e-10, "laplacian");
            let (pl, pg) = (
                lr.perturbed(0.7, 0.4).unwrap(),
                g.perturbed(0.7, 0.4).unwrap(),
            );
            close(&pl.scores(&x), &pg.scores(&x), 1e-10, "perturbed score");
            let sel = [2, 0];
            close(
                &lr.select(&sel).unwrap().scores(&x),
                &g.select(&sel).unwrap().scores(&x),
                1e-10,
                "selected score",
            );
        }
    }

    /// Bayes' rule by dense textbook formulas: Σ' = (Σ⁻¹ + AᵀA/σ²)⁻¹, μ' = Σ'(Σ⁻¹μ + Aᵀy/σ²),
    /// wₖ' ∝ wₖ N(y; Aμₖ, AΣₖAᵀ + σ²I).
    fn dense_posterior(g: &GaussianMixture, a: &[f64], y: &[f64], s2: f64) -> GaussianMixture {
        let d = g.dim();
        let dy = y.len();
        let mut logw = Vec::new();
        let mut comps = Vec::new();
        for (w, c) in g.weights().iter().zip(g.components()) {
            let p = c.precision();
            let mut prec = p.to_vec();
            for i in 0..d {
                for j in 0..d {
                    prec[i * d + j] +=
                        (0..dy).map(|k| a[k * d + i] * a[k * d + j]).sum::<f64>() / s2;
                }
            }
            let cov = cholesky_inverse(&cholesky(&prec, d).unwrap(), d);
            let rhs: Vec<f64> = (0..d)
                .map(|i| {
                    (0..d).map(|j| p[i * d + j] * c.mean()[j]).sum::<f64>()
                        + (0..dy).map(|k| a[k * d + i] * y[k]).sum::<f64>() / s2
                })
                .collect();
            let mean: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| cov[i * d + j] * rhs[j]).sum())
                .collect();
            let mut gm = vec![0.0; dy * dy];
            for i in 0..dy {
                for j in 0..dy {
                    gm[i * dy + j] = (0..d)
                        .map(|p_| {
                            (0..d)
                                .map(|q| a[i * d + p_] * c.cov()[p_ * d + q] * a[j * d + q])
                                .sum::<f64>()
                        })
                        .sum::<f64>();
                }
                gm[i * dy + i] += s2;
            }
            let am: Vec<f64> = (0..dy)
                .map(|i| (0..d).map(|j| a[i * d + j] * c.mean()[j]).sum())
                .collect();
            let ev = Gaussian::new(am, gm).unwrap().log_density(y);
            logw.push(w.ln() + ev);
            let sym: Vec<f64> = (0..d * d)
                .map(|k| 0.5 * (cov[k] + cov[(k % d) * d + k / d]))
                .collect();
            comps.push(Gaussian::new(mean, sym).unwrap());
        }
        let z = log_sum_exp(&logw);
        GaussianMixture::from_components(logw.iter().map(|l| (l - z).exp()).collect(), comps)
            .unwrap()
    }

    /// The Woodbury posterior equals the dense one: weights, means and covariances to 1e-9,
    /// for a dense anisotropic prior (r = d) and an isotropic prior in d = 6 under a rank-2
    /// observation (r = 2 < d); its perturbed scores equal the dense posterior's too.
    #[test]
    fn woodbury_posterior_equals_dense() {
        let dense = dense3();
        let (w, m, v) = iso6();
        let iso = LowRankMixture::isotropic(w.clone(), m.clone(), &v).unwrap();
        let iso_dense = GaussianMixture::new(
            w,
            m,
            v.iter()
                .map(|&vk| {
                    let mut c = vec![0.0; 36];
                    (0..6).for_each(|i| c[i * 7] = vk);
                    c
                })
                .collect(),
        )
        .unwrap();
        let a3 = vec![0.8, -0.3, 0.5];
        let a6 = vec![
            1.0, 0.5, -0.2, 0.0, 0.3, 0.1, //
            -0.4, 0.0, 0.9, 0.7, 0.0, -0.6,
        ];
        let cases = [
            (LowRankMixture::from(&dense), dense, a3, vec![0.9], 0.25),
            (iso, iso_dense, a6, vec![1.5, -0.7], 0.09),
        ];
        for (lr, g, a, y, s2) in cases {
            let d = g.dim();
            let (post, _) = lr.condition(&a, &y, s2).unwrap();
            let want = dense_posterior(&g, &a, &y, s2);
            assert!(post.rank() <= d);
            close(post.weights(), want.weights(), 1e-9, "weights");
            for (k, c) in want.components().iter().enumerate() {
                close(post.mean_of(k), c.mean(), 1e-9, "mean");
                close(&post.covariance_of(k), c.cov(), 1e-9, "cov");
            }
            let x = points(5, d, 8);
            for (mm, ss) in [(1.0, 0.0), (0.6, 0.5)] {
                let (pl, pd) = (
                    post.perturbed(mm, ss).unwrap(),
                    want.perturbed(mm, ss).unwrap(),
                );
                close(&pl.scores(&x), &pd.scores(&x), 1e-8, "posterior score");
                close(
                    &pl.log_densities(&x),
                    &pd.log_densities(&x),
                    1e-9,
                    "posterior log p",
                );
            }
        }
    }

    /// A noiseless mask observation pins the observed coordinates: the posterior means equal
    /// y there and the covariance vanishes in those rows and columns; 20,000 samples reproduce
    /// the posterior mean within 4 standard errors per coordinate (SE = √(Var/n)).
    #[test]
    fn noiseless_mask_and_sampling() {
        let (w, m, v) = iso6();
        let prior = LowRankMixture::isotropic(w, m, &v).unwrap();
        let mut a = vec![0.0; 2 * 6];
        a[1] = 1.0; // observe coordinate 1
        a[6 + 4] = 1.0; // and coordinate 4
        let y = [0.3, -0.8];
        let (post, _) = prior.condition(&a, &y, 0.0).unwrap();
        for k in 0..3 {
            assert!((post.mean_of(k)[1] - 0.3).abs() < 1e-12);
            assert!((post.mean_of(k)[4] + 0.8).abs() < 1e-12);
            let c = post.covariance_of(k);
            for j in 0..6 {
                assert!(c[6 + j].abs() < 1e-12 && c[4 * 6 + j].abs() < 1e-12);
            }
        }
        let n = 20_000;
        let (pts, labels) = post.sample_labelled(n, &mut rng(4));
        assert_eq!(labels.len(), n);
        let mu = post.mean();
        for j in 0..6 {
            let col: Vec<f64> = pts.rows().map(|r| r[j]).collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let se = (var / n as f64).sqrt().max(1e-12);
            assert!(
                (mean - mu[j]).abs() < 4.0 * se + 1e-12,
                "coord {j}: {mean} vs {}",
                mu[j]
            );
        }
        // Densities of a degenerate posterior are NaN, never a panic; a perturbed one is fine.
        assert!(post.log_densities(&points(1, 6, 1))[0].is_nan());
        assert!(post
            .perturbed(1.0, 0.1)
            .unwrap()
            .log_densities(&points(1, 6, 1))[0]
            .is_finite());
        // A noiseless observation through a rank-deficient A is an error, not a panic.
        let dup = [a[..6].to_vec(), a[..6].to_vec()].concat();
        assert!(prior.condition(&dup, &[0.3, 0.3], 0.0).is_err());
        assert!(prior.condition(&a, &[0.3], 0.1).is_err());
        assert!(prior.condition(&a, &y, -1.0).is_err());
    }
}
