//! Exact log-likelihoods of flow and score models by the instantaneous change of variables
//! (Chen et al. 2018; FFJORD, Grathwohl et al. 2019; Song et al. 2021, App. D).
//!
//! **The formula and its sign.** Let x(t) follow dx/dt = v(x, t) and let p_t be the density
//! transported by the flow. The continuity equation ∂ₜp + ∇·(p v) = 0 gives, along a
//! trajectory, d/dt log p_t(x(t)) = −∇·v(x(t), t). Integrate the augmented state [x, Δ] with
//!
//! ```text
//!     dx/dt = v(x, t),    dΔ/dt = ∇·v(x, t),    x(t_data) = x,  Δ(t_data) = 0
//! ```
//!
//! from the data time to the prior time. Then log p_{t_prior}(x(t_prior)) − log p_{t_data}(x) =
//! −Δ(t_prior), i.e.
//!
//! ```text
//!     log p(x) = log p_prior(x(t_prior)) + Δ(t_prior),   Δ(t_prior) = ∫_{t_data}^{t_prior} ∇·v dt.
//! ```
//!
//! The integral is signed, so the one formula serves both directions:
//! * flow matching (flow time): data at t = 1, N(0, I) source at t = 0, so Δ = −∫₀¹ ∇·v dt;
//! * score models through the probability-flow ODE dx/dτ = f − ½g²s (diffusion time): data at
//!   τ = ε, prior at τ = T, so Δ = +∫_ε^T ∇·v dτ, with the SDE's prior log-density.
//!
//! The augmented field is itself a [`VectorField`] on R^{d+k} (k = 1 for the exact divergence,
//! k = number of probes for Hutchinson), so every [`odeint`] method is reused unchanged.
//!
//! **Divergence.** Exact (∇·v = tr J by d tangent passes, [`VectorField::divergence`]; the default
//! for d ≤ 16) or the Hutchinson–Skilling estimator ∇·v ≈ εᵀ J ε with E\[εεᵀ\] = I (Rademacher or
//! Gaussian ε). The k probes are drawn once per integration and held fixed along the trajectory
//! (as in FFJORD), so each probe gives one unbiased estimate of log p(x); the k estimates give
//! the per-point standard error.
//!
//! **Discrete data.** [`Dequantization`] evaluates the density at dequantised points
//! y = (x + u)/L, u ~ U\[0, 1)^D (never at x itself: a continuous density can put unbounded mass
//! on the grid points) and reports bits per dimension.

use std::time::Instant;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::data::Points;
use crate::error::{Error, Result};
pub use crate::field::divergence::{
    hutchinson_divergence, hutchinson_probes, Divergence, ProbeNoise,
};
use crate::field::VectorField;
use crate::sde::{ReverseDrift, Sde};
use crate::solve::ode::{odeint, OdeOptions};
use crate::tensor::{matrix_like, to_vec, Rng, Tensor};

/// A prior log-density log p_prior(x), evaluated row-wise on a `(batch, d)` tensor.
pub trait Prior {
    /// log p_prior(x) for every row of `x`, shape `(batch,)`.
    fn log_prob(&self, x: &Tensor<2>) -> Tensor<1>;
}

/// Any closure `x ↦ log p(x)` is a prior (e.g. an SDE's prior log-density).
impl<F: Fn(&Tensor<2>) -> Tensor<1>> Prior for F {
    fn log_prob(&self, x: &Tensor<2>) -> Tensor<1> {
        self(x)
    }
}

/// N(0, s²I): log p(x) = −‖x‖²/(2s²) − (d/2)·log(2πs²). The flow-matching source (s = 1), the
/// VP and sub-VP priors (s = 1) and the VE prior (s = σ_max).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IsotropicGaussian {
    /// Standard deviation s.
    pub std: f64,
}

impl IsotropicGaussian {
    /// N(0, I).
    pub fn standard() -> Self {
        Self { std: 1.0 }
    }
}

impl Prior for IsotropicGaussian {
    fn log_prob(&self, x: &Tensor<2>) -> Tensor<1> {
        let [n, d] = x.dims();
        let s2 = self.std * self.std;
        let c = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s2).ln();
        (x.clone().square().sum_dim(1).reshape([n]) * (-0.5 / s2)) + c
    }
}

/// The augmented field z = [x, Δ₁ … Δ_k] ↦ [v(x, t), ∇·v estimates] on R^{d+k}.
struct Augmented<'a> {
    field: &'a dyn VectorField,
    /// Fixed Hutchinson probes `(k·n, d)`, or `None` for the exact divergence (k = 1).
    probes: Option<Tensor<2>>,
    k: usize,
}

impl VectorField for Augmented<'_> {
    fn dim(&self) -> usize {
        self.field.dim() + self.k
    }

    fn eval(&self, z: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let [n, _] = z.dims();
        let d = self.field.dim();
        let x = z.clone().narrow(1, 0, d);
        let (v, div) = match &self.probes {
            None => {
                let (v, div) = self.field.divergence(&x, t);
                (v, div.reshape([n, 1]))
            }
            Some(p) => hutchinson_divergence(self.field, &x, t, p),
        };
        Tensor::cat(vec![v, div], 1)
    }
}

/// Options of [`log_likelihood`].
#[derive(Debug, Clone)]
pub struct LikelihoodOptions {
    /// ODE solver (default Dopri5, rtol = atol = 1e-5).
    pub ode: OdeOptions,
    /// Divergence computation (default [`Divergence::Auto`]).
    pub divergence: Divergence,
    /// Also decode x(t_prior) back to the data time and report the reconstruction error.
    pub round_trip: bool,
    /// Solve in chunks of this many points (each its own adaptive solve; NFE, steps and times
    /// are summed, as torchdiffeq-based references count them). `None`: one solve for all.
    pub chunk: Option<usize>,
}

impl Default for LikelihoodOptions {
    fn default() -> Self {
        Self {
            ode: OdeOptions::default(),
            divergence: Divergence::Auto,
            round_trip: true,
            chunk: None,
        }
    }
}

/// Encode → decode consistency: x̂ = decode(encode(x)) by integrating v back from the prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundTrip {
    /// mean over points of ‖x̂ − x‖₂.
    pub mean_error: f64,
    /// max over points of ‖x̂ − x‖₂.
    pub max_error: f64,
    /// mean ‖x̂ − x‖₂ / mean ‖x‖₂.
    pub relative_error: f64,
    /// Field evaluations of the decode pass (summed over chunks).
    pub nfe: usize,
    /// Wall time of the decode pass in seconds.
    pub wall_time_s: f64,
}

/// Result of [`log_likelihood`]: per-point log p(x), aggregates and solver cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Likelihood {
    /// log p(x) per point (mean over probes for Hutchinson).
    pub log_prob: Vec<f64>,
    /// Per-point standard error of the Hutchinson estimate, sd over probes / √k (k ≥ 2 only).
    pub log_prob_se: Option<Vec<f64>>,
    /// log p_prior(x(t_prior)) per point.
    pub prior_log_prob: Vec<f64>,
    /// mean of `log_prob`.
    pub mean_log_prob: f64,
    /// Standard error of the mean over points, sd(log p)/√n (sampling error of the data set).
    pub se: f64,
    /// Negative log-likelihood −mean log p (nats).
    pub nll: f64,
    /// Standard error of the mean caused by the Hutchinson estimator, √(Σ seᵢ²)/n (k ≥ 2 only).
    pub estimator_se: Option<f64>,
    /// Bits per dimension (discrete data, see [`Dequantization`]); JSON key `bits_per_dim`.
    #[serde(rename = "bits_per_dim", alias = "bpd")]
    pub bpd: Option<f64>,
    /// Data dimension d.
    pub dim: usize,
    /// Number of points.
    pub n: usize,
    /// The divergence computation used (never `Auto`).
    pub divergence: Divergence,
    /// ODE method name.
    pub method: String,
    /// Time of the data end.
    pub t_data: f64,
    /// Time of the prior end.
    pub t_prior: f64,
    /// Field evaluations of the encode (likelihood) pass (summed over chunks).
    pub nfe: usize,
    /// Accepted steps of the encode pass.
    pub accepted: usize,
    /// Rejected steps of the encode pass.
    pub rejected: usize,
    /// Wall time of the encode pass in seconds.
    pub wall_time_s: f64,
    /// Encode → decode reconstruction error, when requested.
    pub round_trip: Option<RoundTrip>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (n − 1 denominator); 0 for fewer than two values.
fn sample_sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// log p(x) = log p_prior(x(t_prior)) + ∫_{t_data}^{t_prior} ∇·v(x(t), t) dt for every row of
/// `x` (see the module doc for the derivation), integrating [x, Δ] with `opts.ode`.
///
/// `rng` draws the Hutchinson probes (unused for the exact divergence). Errors: shape
/// mismatch, empty or non-finite input, t_data = t_prior, zero probes, solver failure.
pub fn log_likelihood(
    field: &dyn VectorField,
    prior: &dyn Prior,
    x: &Tensor<2>,
    t_data: f64,
    t_prior: f64,
    opts: &LikelihoodOptions,
    rng: &mut Rng,
) -> Result<Likelihood> {
    let [n, d] = x.dims();
    if d != field.dim() {
        return Err(Error::Shape(format!(
            "data has dimension {d}, the field expects {}",
            field.dim()
        )));
    }
    if n == 0 {
        return Err(Error::InvalidInput(
            "likelihood of an empty data set".into(),
        ));
    }
    if !(t_data.is_finite() && t_prior.is_finite()) || t_data == t_prior {
        return Err(Error::InvalidInput(format!(
            "need finite, distinct data and prior times (got {t_data}, {t_prior})"
        )));
    }
    if !crate::tensor::all_finite(x) {
        return Err(Error::InvalidInput(
            "data contain NaN or infinite values".into(),
        ));
    }
    let divergence = opts.divergence.resolve(d);
    let k = match divergence {
        Divergence::Hutchinson { probes: 0, .. } => {
            return Err(Error::InvalidInput(
                "Hutchinson divergence needs at least one probe".into(),
            ))
        }
        Divergence::Hutchinson { probes, .. } => probes,
        _ => 1,
    };
    let chunk = match opts.chunk {
        Some(0) => return Err(Error::InvalidInput("chunk size must be at least 1".into())),
        Some(c) => c.min(n),
        None => n,
    };

    let mut log_prob = Vec::with_capacity(n);
    let mut point_se = Vec::with_capacity(n);
    let mut prior_lp = Vec::with_capacity(n);
    let (mut nfe, mut accepted, mut rejected, mut wall_time_s) = (0, 0, 0, 0.0);
    let mut rt_err = Vec::new();
    let (mut rt_nfe, mut rt_wall) = (0, 0.0);
    for lo in (0..n).step_by(chunk) {
        let m = chunk.min(n - lo);
        let xc = x.clone().narrow(0, lo, m);
        let probes = match divergence {
            Divergence::Hutchinson { probes, noise } => {
                Some(hutchinson_probes(&xc, probes, noise, rng))
            }
            _ => None,
        };
        let aug = Augmented { field, probes, k };
        let z0 = Tensor::cat(
            vec![xc.clone(), matrix_like(vec![0.0; m * k], m, k, &xc)],
            1,
        );

        let start = Instant::now();
        let sol = odeint(&aug, z0, t_data, t_prior, &opts.ode)?;
        let x_prior = sol.x.clone().narrow(1, 0, d);
        let delta = to_vec(&sol.x.narrow(1, d, k));
        let lp0 = to_vec(&prior.log_prob(&x_prior));
        wall_time_s += start.elapsed().as_secs_f64();
        (nfe, accepted, rejected) = (
            nfe + sol.nfe,
            accepted + sol.accepted,
            rejected + sol.rejected,
        );

        for (i, lp) in lp0.iter().enumerate() {
            let est: Vec<f64> = delta[i * k..(i + 1) * k].iter().map(|dl| lp + dl).collect();
            log_prob.push(mean(&est));
            point_se.push(sample_sd(&est) / (k as f64).sqrt());
        }
        prior_lp.extend(lp0);

        if opts.round_trip {
            let start = Instant::now();
            let back = odeint(field, x_prior, t_prior, t_data, &opts.ode)?;
            rt_wall += start.elapsed().as_secs_f64();
            rt_nfe += back.nfe;
            rt_err.extend(to_vec(&(back.x - xc).square().sum_dim(1).sqrt()));
        }
    }
    if log_prob.iter().any(|v| !v.is_finite()) {
        return Err(Error::Solver(
            "log-likelihood is not finite (the prior density underflowed or the flow diverged)"
                .into(),
        ));
    }
    let mean_log_prob = mean(&log_prob);
    let (log_prob_se, estimator_se) = if k >= 2 {
        let e = point_se.iter().map(|s| s * s).sum::<f64>().sqrt() / n as f64;
        (Some(point_se), Some(e))
    } else {
        (None, None)
    };
    let round_trip = opts.round_trip.then(|| {
        let norms = to_vec(&x.clone().square().sum_dim(1).sqrt());
        let mean_err = mean(&rt_err);
        RoundTrip {
            mean_error: mean_err,
            max_error: rt_err.iter().copied().fold(0.0, f64::max),
            relative_error: mean_err / mean(&norms).max(f64::MIN_POSITIVE),
            nfe: rt_nfe,
            wall_time_s: rt_wall,
        }
    });

    Ok(Likelihood {
        se: sample_sd(&log_prob) / (n as f64).sqrt(),
        nll: -mean_log_prob,
        mean_log_prob,
        log_prob,
        log_prob_se,
        prior_log_prob: prior_lp,
        estimator_se,
        bpd: None,
        dim: d,
        n,
        divergence,
        method: opts.ode.method.name().to_string(),
        t_data,
        t_prior,
        nfe,
        accepted,
        rejected,
        wall_time_s,
        round_trip,
    })
}

/// log p(x) of a flow-matching velocity field (flow time): data at t = 1, the N(0, I) source at
/// t = 0, so log p(x) = log N(x(0); 0, I) − ∫₀¹ ∇·v dt. See [`log_likelihood`].
pub fn flow_log_likelihood(
    velocity: &dyn VectorField,
    x: &Tensor<2>,
    opts: &LikelihoodOptions,
    rng: &mut Rng,
) -> Result<Likelihood> {
    log_likelihood(
        velocity,
        &IsotropicGaussian::standard(),
        x,
        1.0,
        0.0,
        opts,
        rng,
    )
}

/// log p(x) of a score model s(x, τ) (diffusion time) through the probability-flow ODE
/// dx/dτ = f(x, τ) − ½g(τ)²s(x, τ) of `sde`, from the data at τ = ε ([`Sde::t_min`]) to the
/// prior at τ = T, with the SDE's prior N(0, s_prior² I):
/// log p(x) = log p_T(x(T)) + ∫_ε^T ∇·(f − ½g²s) dτ. See [`log_likelihood`].
pub fn score_log_likelihood(
    sde: &dyn Sde,
    score: &dyn VectorField,
    x: &Tensor<2>,
    opts: &LikelihoodOptions,
    rng: &mut Rng,
) -> Result<Likelihood> {
    let pf = ReverseDrift::probability_flow(sde, score);
    let prior = |z: &Tensor<2>| sde.prior_log_density(z);
    log_likelihood(&pf, &prior, x, sde.t_min(), sde.t_max(), opts, rng)
}

/// Uniform dequantisation of integer data x ∈ {0, …, L−1}^D into the model's space
/// z = a·(x + u)/L + b, u ~ U\[0, 1)^D.
///
/// For 8-bit data (L = 256, a = 1, b = 0) z = y = (x + u)/256 ∈ \[0, 1)^D and
/// bpd = (−log p(y) + D·log 256) / (D·ln 2): the discrete probability of the cell of x is
/// P(x) = ∫ p over a cube of side 1/256, and E_u log p(y) − D log 256 ≤ log P(x) (Jensen), so
/// the reported bpd is an upper bound on the discrete model's code length. A model trained on
/// z = 2y − 1 ∈ \[−1, 1) has a = 2, b = −1 and gains D·log 2 nats of density, which the formula
/// removes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dequantization {
    /// Number of levels L (256 for 8-bit data).
    pub levels: u32,
    /// Scale a of the model-space map.
    pub scale: f64,
    /// Offset b of the model-space map.
    pub offset: f64,
}

impl Dequantization {
    /// 8-bit data to \[0, 1): L = 256, a = 1, b = 0.
    pub fn eight_bit() -> Self {
        Self {
            levels: 256,
            scale: 1.0,
            offset: 0.0,
        }
    }

    /// Images in \[−1, 1): L levels, a = 2, b = −1, so z = 2(x + u)/L − 1 (DDPM's scaling).
    pub fn symmetric(levels: u32) -> Self {
        Self {
            levels,
            scale: 2.0,
            offset: -1.0,
        }
    }

    fn check(&self) -> Result<()> {
        if self.levels == 0
            || self.scale == 0.0
            || !self.scale.is_finite()
            || !self.offset.is_finite()
        {
            return Err(Error::InvalidInput(format!(
                "invalid dequantisation {self:?}"
            )));
        }
        Ok(())
    }

    /// z = a·(x + u)/L + b with u ~ U\[0, 1) per coordinate from `rng`.
    ///
    /// Errors when an entry of `x` is not an integer in {0, …, L−1}, or a = 0.
    pub fn dequantize(&self, x: &Tensor<2>, rng: &mut Rng) -> Result<Tensor<2>> {
        let [n, d] = x.dims();
        let z = self.dequantize_points(&Points::new(to_vec(x), d)?, rng)?;
        Ok(matrix_like(z.into_vec(), n, d, x))
    }

    /// [`Dequantization::dequantize`] on host points (u drawn row-major, in the same order).
    pub fn dequantize_points(&self, x: &Points, rng: &mut Rng) -> Result<Points> {
        self.check()?;
        let d = x.dim();
        let l = self.levels as f64;
        let mut z = Vec::with_capacity(x.as_slice().len());
        for (i, v) in x.as_slice().iter().enumerate() {
            if !(v.fract() == 0.0 && *v >= 0.0 && *v < l) {
                return Err(Error::InvalidInput(format!(
                    "row {}, column {}: {v} is not an integer level in 0..{}",
                    i / d,
                    i % d,
                    self.levels
                )));
            }
            let u: f64 = rng.random();
            z.push(self.scale * (v + u) / l + self.offset);
        }
        Points::new(z, d)
    }

    /// Model space back to data units: x = clamp(L·(z − b)/a − ½, 0, L − 1), the centre of the
    /// cell z falls in (E u = ½), so rounding x gives the level. Samples come back this way.
    pub fn to_data_units(&self, z: &Points) -> Result<Points> {
        self.check()?;
        let l = self.levels as f64;
        let x = z
            .as_slice()
            .iter()
            .map(|v| (l * (v - self.offset) / self.scale - 0.5).clamp(0.0, l - 1.0))
            .collect();
        Points::new(x, z.dim())
    }

    /// bpd = (−log p_z(z) − D·log|a| + D·log L) / (D·ln 2) for one point of dimension D.
    pub fn bits_per_dim(&self, log_p_z: f64, dim: usize) -> f64 {
        let dd = dim as f64;
        (-log_p_z - dd * self.scale.abs().ln() + dd * (self.levels as f64).ln())
            / (dd * std::f64::consts::LN_2)
    }
}

/// [`log_likelihood`] of integer data: dequantises x (drawing u from `rng` before the probes),
/// evaluates log p at z = a·(x + u)/L + b (not at x) and fills [`Likelihood::bpd`].
/// `log_prob` stays in nats of the model space z.
#[allow(clippy::too_many_arguments)]
pub fn log_likelihood_discrete(
    field: &dyn VectorField,
    prior: &dyn Prior,
    x: &Tensor<2>,
    dequantization: &Dequantization,
    t_data: f64,
    t_prior: f64,
    opts: &LikelihoodOptions,
    rng: &mut Rng,
) -> Result<Likelihood> {
    let z = dequantization.dequantize(x, rng)?;
    let mut lik = log_likelihood(field, prior, &z, t_data, t_prior, opts, rng)?;
    lik.bpd = Some(dequantization.bits_per_dim(lik.mean_log_prob, lik.dim));
    Ok(lik)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::analytic::{GaussianMixture, LogDensity, MixtureScore};
    use crate::field::mlp::MlpConfig;
    use crate::field::FnField;
    use crate::sde::{SubVpSde, VeSde, VpSde};
    use crate::solve::ode::Method;
    use crate::tensor::{cpu, matrix, randn, rng, times_like, vector_like, DType};

    /// 2×2 matrices on the host, row-major.
    type M2 = [f64; 4];

    fn mul(a: M2, b: M2) -> M2 {
        [
            a[0] * b[0] + a[1] * b[2],
            a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3],
        ]
    }

    fn inv(a: M2) -> M2 {
        let det = a[0] * a[3] - a[1] * a[2];
        [a[3] / det, -a[1] / det, -a[2] / det, a[0] / det]
    }

    /// log N(x; μ, Σ) in 2-D.
    fn gauss_logpdf(x: [f64; 2], mu: [f64; 2], s: M2) -> f64 {
        let p = inv(s);
        let (a, b) = (x[0] - mu[0], x[1] - mu[1]);
        let q = a * (p[0] * a + p[1] * b) + b * (p[2] * a + p[3] * b);
        let det = s[0] * s[3] - s[1] * s[2];
        -0.5 * q - 0.5 * det.ln() - (2.0 * std::f64::consts::PI).ln()
    }

    /// The marginal CondOT velocity for x₁ ~ N(μ, Σ), x₀ ~ N(0, I), x_t = t x₁ + (1 − t) x₀:
    /// (x_t, x₁ − x₀) are jointly Gaussian with x_t ~ N(tμ, Σ_t), Σ_t = t²Σ + (1 − t)²I and
    /// Cov(x₁ − x₀, x_t) = tΣ − (1 − t)I =: C_t, so
    /// u(x, t) = E[x₁ − x₀ | x_t = x] = μ + A_t (x − tμ), A_t = C_t Σ_t⁻¹ (= ½Σ̇_t Σ_t⁻¹).
    /// The flow of u carries N(0, I) at t = 0 to N(μ, Σ) at t = 1. Jacobian A_t, exact jvp.
    struct CondOtGaussian {
        mu: [f64; 2],
        sigma: M2,
    }

    impl CondOtGaussian {
        fn a(&self, t: f64) -> M2 {
            let s = self.sigma;
            let st = [
                t * t * s[0] + (1. - t).powi(2),
                t * t * s[1],
                t * t * s[2],
                t * t * s[3] + (1. - t).powi(2),
            ];
            let ct = [t * s[0] - (1. - t), t * s[1], t * s[2], t * s[3] - (1. - t)];
            mul(ct, inv(st))
        }
    }

    impl VectorField for CondOtGaussian {
        fn dim(&self) -> usize {
            2
        }
        fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
            let (xs, ts) = (to_vec(x), to_vec(t));
            let mut out = Vec::with_capacity(xs.len());
            for (r, t) in ts.iter().enumerate() {
                let a = self.a(*t);
                let (y0, y1) = (xs[2 * r] - t * self.mu[0], xs[2 * r + 1] - t * self.mu[1]);
                out.push(self.mu[0] + a[0] * y0 + a[1] * y1);
                out.push(self.mu[1] + a[2] * y0 + a[3] * y1);
            }
            matrix_like(out, ts.len(), 2, x)
        }
        fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
            let (us, ts) = (to_vec(u), to_vec(t));
            let mut out = Vec::with_capacity(us.len());
            for (r, t) in ts.iter().enumerate() {
                let a = self.a(*t);
                out.push(a[0] * us[2 * r] + a[1] * us[2 * r + 1]);
                out.push(a[2] * us[2 * r] + a[3] * us[2 * r + 1]);
            }
            (self.eval(x, t), matrix_like(out, ts.len(), 2, x))
        }
        fn exact_jvp(&self) -> bool {
            true
        }
    }

    fn gaussian_case() -> (CondOtGaussian, Tensor<2>, Vec<f64>) {
        let g = CondOtGaussian {
            mu: [1.0, -0.5],
            sigma: [2.0, 0.8, 0.8, 0.7],
        };
        // x = μ + L z with L the Cholesky factor of Σ.
        let l11 = g.sigma[0].sqrt();
        let l21 = g.sigma[2] / l11;
        let l22 = (g.sigma[3] - l21 * l21).sqrt();
        let z = to_vec(&randn(48, 2, &cpu(), DType::F64, &mut rng(5)));
        let mut xs = Vec::new();
        for r in 0..48 {
            xs.push(g.mu[0] + l11 * z[2 * r]);
            xs.push(g.mu[1] + l21 * z[2 * r] + l22 * z[2 * r + 1]);
        }
        let exact: Vec<f64> = (0..48)
            .map(|r| gauss_logpdf([xs[2 * r], xs[2 * r + 1]], g.mu, g.sigma))
            .collect();
        (g, matrix(xs, 48, 2, &cpu(), DType::F64), exact)
    }

    fn tight() -> LikelihoodOptions {
        LikelihoodOptions {
            ode: OdeOptions::dopri5(1e-8, 1e-8),
            ..Default::default()
        }
    }

    /// v ≡ 0 with a N(0, I) prior: the model density is N(0, I), so log p(x) = −‖x‖²/2 − log 2π
    /// exactly, Δ = 0, and the round trip is the identity (error 0). Checked to 1e-4 (in fact
    /// to rounding) for both divergence estimators.
    #[test]
    fn standard_normal_field_is_exact() {
        let zero = FnField::new(2, |x: &Tensor<2>, _t: &Tensor<1>| x.clone() * 0.0);
        let x = randn(32, 2, &cpu(), DType::F64, &mut rng(1));
        let xs = to_vec(&x);
        for div in [
            Divergence::Exact,
            Divergence::Hutchinson {
                probes: 3,
                noise: ProbeNoise::Gaussian,
            },
        ] {
            let opts = LikelihoodOptions {
                divergence: div,
                ..Default::default()
            };
            let lik = log_likelihood(
                &zero,
                &IsotropicGaussian::standard(),
                &x,
                1.0,
                0.0,
                &opts,
                &mut rng(2),
            )
            .unwrap();
            for (r, lp) in lik.log_prob.iter().enumerate() {
                let expect = -0.5 * (xs[2 * r].powi(2) + xs[2 * r + 1].powi(2))
                    - (2.0 * std::f64::consts::PI).ln();
                assert!(
                    (lp - expect).abs() < 1e-4,
                    "{div:?} row {r}: {lp} vs {expect}"
                );
            }
            assert!(lik.round_trip.as_ref().unwrap().max_error < 1e-10);
            assert!((lik.nll + lik.mean_log_prob).abs() < 1e-15);
        }
    }

    /// Gaussian data under CondOT (closed-form velocity, see [`CondOtGaussian`]): the flow
    /// log-likelihood equals log N(x; μ, Σ). Dopri5 at rtol = atol = 1e-8 leaves an error
    /// ~1e-7; asserted < 1e-5. The round trip returns x to < 1e-5.
    #[test]
    fn gaussian_condot_matches_closed_form() {
        let (g, x, exact) = gaussian_case();
        let lik = log_likelihood(
            &g,
            &IsotropicGaussian::standard(),
            &x,
            1.0,
            0.0,
            &tight(),
            &mut rng(0),
        )
        .unwrap();
        assert_eq!(lik.divergence, Divergence::Exact);
        let worst = lik
            .log_prob
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "max |log p − exact| = {worst:e}");
        eprintln!(
            "CondOT Gaussian: max |log p − exact| {worst:.2e}, NFE {}",
            lik.nfe
        );
        let rt = lik.round_trip.unwrap();
        assert!(rt.max_error < 1e-5, "round trip {rt:?}");
        // The loose solver is visibly worse on both counts (the reason the round trip is reported).
        let loose = LikelihoodOptions {
            ode: OdeOptions::dopri5(1e-2, 1e-2),
            ..Default::default()
        };
        let l2 = log_likelihood(
            &g,
            &IsotropicGaussian::standard(),
            &x,
            1.0,
            0.0,
            &loose,
            &mut rng(0),
        )
        .unwrap();
        assert!(l2.round_trip.unwrap().max_error > 10.0 * rt.max_error);
        assert!(l2.nfe < lik.nfe);
        // Chunks of 16 (3 independent solves): the same log p within the solver error, NFE summed.
        let chunked = LikelihoodOptions {
            chunk: Some(16),
            ..tight()
        };
        let l3 = log_likelihood(
            &g,
            &IsotropicGaussian::standard(),
            &x,
            1.0,
            0.0,
            &chunked,
            &mut rng(0),
        )
        .unwrap();
        assert_eq!(l3.log_prob.len(), 48);
        let worst3 = l3
            .log_prob
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst3 < 1e-5, "chunked: {worst3:e}");
        assert!(l3.nfe > lik.nfe && l3.round_trip.unwrap().nfe > rt.nfe);
    }

    /// The same closed form by a fixed-step RK4 run (any solver works): error O(h⁴), 200 steps.
    #[test]
    fn fixed_step_solver_converges_to_closed_form() {
        let (g, x, exact) = gaussian_case();
        let opts = LikelihoodOptions {
            ode: OdeOptions::fixed(Method::Rk4, 200),
            round_trip: false,
            ..Default::default()
        };
        let lik = log_likelihood(
            &g,
            &IsotropicGaussian::standard(),
            &x,
            1.0,
            0.0,
            &opts,
            &mut rng(0),
        )
        .unwrap();
        let worst = lik
            .log_prob
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "RK4: {worst:e}");
        assert_eq!(lik.nfe, 800);
    }

    /// Hutchinson vs exact: per point, the k = 16 probe estimates give a standard error seᵢ;
    /// |ĥᵢ − eᵢ| ≤ 3 seᵢ should hold for ~99% of points (Student t, 15 dof: P(|T| > 3) ≈ 0.009),
    /// asserted for ≥ 90%; and the mean over points within 3 estimator SEs. The error is
    /// nonzero (the estimator is actually random) because Σ has off-diagonal terms.
    #[test]
    fn hutchinson_agrees_with_exact_within_three_se() {
        let (g, x, _) = gaussian_case();
        let mlp = MlpConfig::new(2, 16, 2).init(&cpu(), DType::F64, &mut rng(3));
        let fields: [&dyn VectorField; 2] = [&g, &mlp];
        for (fi, field) in fields.into_iter().enumerate() {
            let exact = log_likelihood(
                field,
                &IsotropicGaussian::standard(),
                &x,
                1.0,
                0.0,
                &tight(),
                &mut rng(0),
            )
            .unwrap();
            for noise in [ProbeNoise::Rademacher, ProbeNoise::Gaussian] {
                let opts = LikelihoodOptions {
                    divergence: Divergence::Hutchinson { probes: 16, noise },
                    round_trip: false,
                    ..tight()
                };
                let h = log_likelihood(
                    field,
                    &IsotropicGaussian::standard(),
                    &x,
                    1.0,
                    0.0,
                    &opts,
                    &mut rng(11),
                )
                .unwrap();
                let se = h.log_prob_se.clone().unwrap();
                let inside = (0..x.dims()[0])
                    .filter(|&i| (h.log_prob[i] - exact.log_prob[i]).abs() <= 3.0 * se[i])
                    .count();
                assert!(
                    inside as f64 >= 0.9 * x.dims()[0] as f64,
                    "field {fi} {noise:?}: {inside} inside 3 SE"
                );
                assert!(
                    se.iter().all(|s| *s > 0.0),
                    "field {fi} {noise:?}: a zero SE means the probes did nothing"
                );
                let e = h.estimator_se.unwrap();
                assert!(
                    (h.mean_log_prob - exact.mean_log_prob).abs() <= 3.0 * e,
                    "field {fi} {noise:?}: mean off by more than 3 SE ({e})"
                );
                eprintln!("Hutchinson field {fi} {noise:?}: {inside}/48 within 3 SE; mean {:.5} vs exact {:.5}, estimator SE {e:.5}", h.mean_log_prob, exact.mean_log_prob);
            }
        }
    }

    /// Acceptance test of issue 5, for VP, sub-VP and VE: the probability-flow ODE of the exact
    /// perturbed-mixture score (3 modes, unequal weights, full covariances) from τ = ε = 1e-5 to
    /// T = 1, Dopri5 rtol = atol = 1e-6, f64, exact divergence (the mixture's Laplacian). The
    /// error against the closed form log p_ε is the solver error plus the prior mismatch
    /// log p_T − log p_prior (for VP first order in m(T) = e^{−5.025} ≈ 6.6e-3:
    /// ≈ m(T)·|x_Tᵀ Σₖwₖμₖ| ≲ 4e-3; for VE first order in 1/σ_max, ≈ |x_Tᵀ Σₖwₖμₖ|/σ_max², which is
    /// 0.049 nats at the default σ_max = 10, so VE runs with σ_max = 200 here); asserted
    /// < 0.01 nats on average. With the exact p_T as the
    /// prior only the solver error remains: asserted < 1e-4 on average. Measured values are
    /// printed with `--nocapture`.
    #[test]
    fn probability_flow_matches_mixture_log_density() {
        let mix = GaussianMixture::new(
            vec![0.5, 0.3, 0.2],
            vec![vec![-2.0, 0.0], vec![2.0, 1.0], vec![0.0, -2.5]],
            vec![
                vec![0.3, 0.1, 0.1, 0.2],
                vec![0.2, 0.0, 0.0, 0.4],
                vec![0.5, -0.2, -0.2, 0.3],
            ],
        )
        .unwrap();
        let n = 64;
        let x = mix.sample(n, &mut rng(12)).to_tensor(&cpu(), DType::F64);
        let opts = LikelihoodOptions {
            ode: OdeOptions::dopri5(1e-6, 1e-6),
            ..Default::default()
        };
        let sdes: Vec<Box<dyn Sde>> = vec![
            Box::new(VpSde::default()),
            Box::new(SubVpSde::default()),
            Box::new(VeSde::new(0.01, 200.0, 1e-5).unwrap()),
        ];
        let mean_abs = |a: &[f64], b: &[f64]| {
            a.iter().zip(b).map(|(a, b)| (a - b).abs()).sum::<f64>() / a.len() as f64
        };
        for sde in &sdes {
            let sde: &dyn Sde = sde.as_ref();
            let score = MixtureScore::new(mix.clone(), sde);
            let exact = to_vec(&score.log_density(&x, &times_like(&x, sde.t_min())));
            let lik = score_log_likelihood(sde, &score, &x, &opts, &mut rng(0)).unwrap();
            let err = mean_abs(&lik.log_prob, &exact);
            assert!(
                err < 0.01,
                "{}: mean |log p − exact| = {err} nats (NFE {})",
                sde.name(),
                lik.nfe
            );
            let rt = lik.round_trip.clone().unwrap();
            assert!(rt.mean_error < 1e-3, "{}: round trip {rt:?}", sde.name());

            let exact_prior = |z: &Tensor<2>| score.log_density(z, &times_like(z, sde.t_max()));
            let pf = ReverseDrift::probability_flow(sde, &score);
            let opts2 = LikelihoodOptions {
                round_trip: false,
                ..opts.clone()
            };
            let lik2 = log_likelihood(
                &pf,
                &exact_prior,
                &x,
                sde.t_min(),
                sde.t_max(),
                &opts2,
                &mut rng(0),
            )
            .unwrap();
            let err2 = mean_abs(&lik2.log_prob, &exact);
            assert!(
                err2 < 1e-4,
                "{}: exact prior, mean error {err2}",
                sde.name()
            );
            eprintln!(
                "{}: mean |Δlog p| {err:.2e} (SDE prior), {err2:.2e} (exact p_T); NFE {}; round trip {:.1e} ({} NFE)",
                sde.name(),
                lik.nfe,
                rt.mean_error,
                rt.nfe
            );
        }
    }

    /// bpd of 8-bit data: with the N(0, I) flow (v ≡ 0) log p(y) = log N(y; 0, I) at the
    /// dequantised y = (x + u)/256 — the u drawn from the same seed — and
    /// bpd = (−log p(y) + D log 256)/(D ln 2). A density equal to 1 on [0, 1)^D gives 8 bits.
    #[test]
    fn bits_per_dim_evaluates_at_dequantised_points() {
        let dq = Dequantization::eight_bit();
        assert!((dq.bits_per_dim(0.0, 5) - 8.0).abs() < 1e-12);
        // [−1, 1) scaling: density 2^−D on the cube is again 8 bits.
        let dq2 = Dequantization {
            levels: 256,
            scale: 2.0,
            offset: -1.0,
        };
        assert!((dq2.bits_per_dim(-3.0 * 2f64.ln(), 3) - 8.0).abs() < 1e-12);

        let x = matrix(
            vec![0.0, 255.0, 17.0, 128.0, 3.0, 99.0],
            3,
            2,
            &cpu(),
            DType::F64,
        );
        let zero = FnField::new(2, |x: &Tensor<2>, _t: &Tensor<1>| x.clone() * 0.0);
        let lik = log_likelihood_discrete(
            &zero,
            &IsotropicGaussian::standard(),
            &x,
            &dq,
            1.0,
            0.0,
            &Default::default(),
            &mut rng(4),
        )
        .unwrap();
        let y = to_vec(&dq.dequantize(&x, &mut rng(4)).unwrap());
        let xs = to_vec(&x);
        for i in 0..6 {
            assert!(y[i] >= xs[i] / 256.0 && y[i] < (xs[i] + 1.0) / 256.0);
        }
        let lp: Vec<f64> = (0..3)
            .map(|r| {
                -0.5 * (y[2 * r].powi(2) + y[2 * r + 1].powi(2)) - (2.0 * std::f64::consts::PI).ln()
            })
            .collect();
        for (a, b) in lik.log_prob.iter().zip(&lp) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}: not evaluated at x + u");
        }
        let bpd = (-mean(&lp) + 2.0 * 256f64.ln()) / (2.0 * std::f64::consts::LN_2);
        assert!((lik.bpd.unwrap() - bpd).abs() < 1e-10);
        // Non-integer or out-of-range levels are errors, not panics.
        let bad = matrix(vec![0.5, 3.0], 1, 2, &cpu(), DType::F64);
        assert!(dq.dequantize(&bad, &mut rng(0)).is_err());
        let bad = matrix(vec![256.0, 3.0], 1, 2, &cpu(), DType::F64);
        assert!(dq.dequantize(&bad, &mut rng(0)).is_err());
    }

    /// Images in \[−1, 1): z = 2(x + u)/L − 1 stays in \[−1, 1), and mapping back to data units
    /// lands within ½ of x (the cell centre x + ½ maps to x exactly), so rounding recovers every
    /// level; out-of-range model values clamp to 0 and L − 1.
    #[test]
    fn symmetric_dequantisation_round_trips_to_levels() {
        let dq = Dequantization::symmetric(17);
        let x = Points::new((0..17).map(f64::from).collect(), 17).unwrap();
        for seed in 0..20 {
            let z = dq.dequantize_points(&x, &mut rng(seed)).unwrap();
            assert!(z.as_slice().iter().all(|v| (-1.0..1.0).contains(v)));
            let back = dq.to_data_units(&z).unwrap();
            for (a, b) in back.as_slice().iter().zip(x.as_slice()) {
                assert!((a - b).abs() <= 0.5 + 1e-12, "{a} vs {b}");
                assert_eq!(a.round().clamp(0.0, 16.0), *b);
            }
        }
        let centre = Points::new(vec![2.0 * 3.5 / 17.0 - 1.0, -5.0, 5.0], 3).unwrap();
        let got = dq.to_data_units(&centre).unwrap();
        for (a, b) in got.as_slice().iter().zip([3.0, 0.0, 16.0]) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let zero = FnField::new(2, |x: &Tensor<2>, _t: &Tensor<1>| x.clone() * 0.0);
        let prior = IsotropicGaussian::standard();
        let x3 = randn(4, 3, &cpu(), DType::F64, &mut rng(0));
        assert!(matches!(
            log_likelihood(
                &zero,
                &prior,
                &x3,
                1.0,
                0.0,
                &Default::default(),
                &mut rng(0)
            ),
            Err(Error::Shape(_))
        ));
        let x = randn(4, 2, &cpu(), DType::F64, &mut rng(0));
        assert!(log_likelihood(
            &zero,
            &prior,
            &x,
            1.0,
            1.0,
            &Default::default(),
            &mut rng(0)
        )
        .is_err());
        let opts = LikelihoodOptions {
            divergence: Divergence::Hutchinson {
                probes: 0,
                noise: ProbeNoise::Rademacher,
            },
            ..Default::default()
        };
        assert!(log_likelihood(&zero, &prior, &x, 1.0, 0.0, &opts, &mut rng(0)).is_err());
        let nan = matrix(vec![f64::NAN, 0.0], 1, 2, &cpu(), DType::F64);
        assert!(log_likelihood(
            &zero,
            &prior,
            &nan,
            1.0,
            0.0,
            &Default::default(),
            &mut rng(0)
        )
        .is_err());
    }

    /// A closure prior and the report's JSON keys (`mean_log_prob`, `nll`) survive a round trip.
    #[test]
    fn closure_prior_and_serde() {
        let zero = FnField::new(1, |x: &Tensor<2>, _t: &Tensor<1>| x.clone() * 0.0);
        let prior = |x: &Tensor<2>| vector_like(to_vec(x).iter().map(|v| -v.abs()).collect(), x);
        let x = matrix(vec![0.5, -2.0], 2, 1, &cpu(), DType::F64);
        let lik = log_likelihood(
            &zero,
            &prior,
            &x,
            1.0,
            0.0,
            &Default::default(),
            &mut rng(0),
        )
        .unwrap();
        assert!((lik.mean_log_prob + 1.25).abs() < 1e-12);
        let json = serde_json::to_string(&lik).unwrap();
        assert!(json.contains("\"mean_log_prob\"") && json.contains("\"nll\""));
        let back: Likelihood = serde_json::from_str(&json).unwrap();
        assert_eq!(back, lik);
        assert_eq!(
            Divergence::Auto.resolve(17),
            Divergence::Hutchinson {
                probes: 1,
                noise: ProbeNoise::Rademacher
            }
        );
        let d: Divergence = serde_json::from_str(r#"{"kind":"hutchinson","probes":4}"#).unwrap();
        assert_eq!(
            d,
            Divergence::Hutchinson {
                probes: 4,
                noise: ProbeNoise::Rademacher
            }
        );
    }
}
