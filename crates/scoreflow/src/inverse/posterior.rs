//! Posterior fields for inverse problems: the prior's score (or velocity) plus an approximation
//! of the likelihood score ∇ₓ log p(y | x_t = x) that sees only the prior field and the
//! observation (Bayes' rule in score form, notes §8), so every sampler draws from the
//! approximate posterior unchanged.
//!
//! With the field's denoiser x̂₀(x) = E[x₀ | x_t = x] (Tweedie: (x + s²·score)/m for a score
//! under the kernel (m, s); (σ·u − σ̇·x)/(σα̇ − σ̇α) for a flow velocity u) and A, y, σ_y:
//!
//! * [`Approximation::PiGdm`] (Song et al. 2023, "Pseudoinverse-guided diffusion models";
//!   the Gaussian approximation of DPS's Theorem): p(y | x_t) ≈ N(A x̂₀, σ_y² I + r_t² A Aᵀ),
//!   r_t² = v s²/(m² v + s²) the variance of x₀ given x_t for data of per-coordinate variance
//!   v, so ℓ = J_x̂₀ᵀ Aᵀ (σ_y² I + r_t² A Aᵀ)⁻¹ (y − A x̂₀) — one forward and one backward pass
//!   of the prior (NFE 2), whatever d is. Exact when the prior is N(μ, v I) (x̂₀ is then linear
//!   and x₀ | x_t Gaussian); v = 0 gives the plain Gaussian-likelihood form with covariance
//!   σ_y² I (singular for σ_y = 0).
//! * [`Approximation::Tmpd`] (Boys et al. 2023, "Tweedie moment projected diffusions"): the
//!   covariance of x₀ given x_t is Tweedie's second moment, Cov = (s²/m)·∂x̂₀/∂x_t, instead of
//!   r_t² I: p(y | x_t) ≈ N(A x̂₀, σ_y² I + A Cov Aᵀ), with A Cov Aᵀ from d_y Jacobian–vector
//!   products of the prior along the rows of A. It sees the spread *between* modes that r_t² I
//!   misses (a mixture prior at large t), at NFE 2 + 2·d_y per call. Exact for a Gaussian
//!   prior of any covariance.
//! * [`Approximation::Noisy`] ("prior + likelihood score", Jalal et al. 2021): x_t/m is taken
//!   for a noisy x₀, p(y | x_t) ≈ N(A x/m, σ_y² I + (s/m)² A Aᵀ), so
//!   ℓ = (1/m) Aᵀ (σ_y² I + (s/m)² A Aᵀ)⁻¹ (y − A x/m) — no network gradient (NFE 1); with
//!   annealed Langevin (`solve::AnnealedLangevin`) this is the classic annealed posterior
//!   sampler, exact at the last noise level as s → 0.
//!
//! DPS proper (Chung et al. 2023: the step ζ/‖y − A x̂₀‖ on ‖y − A x̂₀‖, not a score) and
//! replacement are samplers: [`super::dps`], [`super::replacement`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::observation::invert_spd;
use super::Observation;

/// (M, log det M⁻¹) of a likelihood covariance.
type Precision = (Vec<f64>, f64);
use crate::error::{Error, Result};
use crate::field::convert::per_row;
use crate::field::VectorField;
use crate::path::{GaussianPath, PerturbationKernel, Scheduler};
use crate::tensor::{matrix_like, to_vec, Tensor};

/// How a prior field relates to the clean point and to a score term, in its own time.
pub trait Parametrization {
    /// (m(t), s(t)) of x_t = m·x₀ + s·z.
    fn mean_std(&self, t: f64) -> (f64, f64);
    /// (p, q) with x̂₀ = p·x + q·f(x, t), f the prior field.
    fn denoiser(&self, t: f64) -> (f64, f64);
    /// c(t): the field changes by c·δs when the score changes by δs (1 for a score).
    fn score_factor(&self, t: f64) -> f64;
}

/// A score field under a perturbation kernel (an SDE marginal in diffusion time, or a path):
/// x̂₀ = (x + s²·score)/m, c = 1.
#[derive(Debug, Clone)]
pub struct ScoreParam<K>(pub K);

impl<K: PerturbationKernel> Parametrization for ScoreParam<K> {
    fn mean_std(&self, t: f64) -> (f64, f64) {
        self.0.mean_std(t)
    }
    fn denoiser(&self, t: f64) -> (f64, f64) {
        let (m, s) = self.0.mean_std(t);
        (1.0 / m, s * s / m)
    }
    fn score_factor(&self, _t: f64) -> f64 {
        1.0
    }
}

/// A flow velocity under a path (flow time): x̂₁ = (σ·u − σ̇·x)/(σα̇ − σ̇α) (finite at both ends:
/// CondOT gives x̂₁ = x + (1 − t)·u), c = b(max(t, t_min)) (see `guidance::flow`).
#[derive(Debug, Clone)]
pub struct VelocityParam<S> {
    /// The path.
    pub path: GaussianPath<S>,
    /// Clamp of the score factor near t = 0.
    pub t_min: f64,
}

impl<S: Scheduler> VelocityParam<S> {
    /// The velocity parametrisation of `path`, clamped at `guidance::flow::DEFAULT_T_MIN`.
    pub fn new(path: GaussianPath<S>) -> Self {
        Self {
            path,
            t_min: crate::guidance::flow::DEFAULT_T_MIN,
        }
    }
}

impl<S: Scheduler> Parametrization for VelocityParam<S> {
    fn mean_std(&self, t: f64) -> (f64, f64) {
        let s = &self.path.scheduler;
        (s.alpha(t), s.sigma(t))
    }
    fn denoiser(&self, t: f64) -> (f64, f64) {
        let s = &self.path.scheduler;
        let (a, sg, da, ds) = (s.alpha(t), s.sigma(t), s.d_alpha(t), s.d_sigma(t));
        let w = sg * da - ds * a;
        (-ds / w, sg / w)
    }
    fn score_factor(&self, t: f64) -> f64 {
        self.path.score_velocity_coefficients(t.max(self.t_min)).1
    }
}

/// How p(y | x_t) is approximated (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Approximation {
    /// N(A x̂₀, σ_y² I + r_t² A Aᵀ) with r_t² = v s²/(m² v + s²), v the data variance.
    PiGdm {
        /// Per-coordinate variance v of the data (1 for standardised data).
        data_variance: f64,
    },
    /// N(A x̂₀, σ_y² I + A Cov Aᵀ), Cov = (s²/m)·∂x̂₀/∂x_t (Tweedie's second moment).
    Tmpd,
    /// N(A x/m, σ_y² I + (s/m)² A Aᵀ): no network gradient.
    Noisy,
}

impl Approximation {
    /// Network evaluations per call of a posterior field with d_y observations (an input
    /// gradient counts 2).
    pub fn nfe(self, d_y: usize) -> usize {
        match self {
            Approximation::PiGdm { .. } => 2,
            Approximation::Tmpd => 2 + 2 * d_y,
            Approximation::Noisy => 1,
        }
    }
}

/// The posterior field f + c(t)·ℓ of a prior field f under an observation (see the module
/// documentation): a score (with [`ScoreParam`]) or a velocity (with [`VelocityParam`]).
#[derive(Debug, Clone)]
pub struct Posterior<F, P> {
    /// The prior field (score or velocity).
    pub prior: F,
    /// Its parametrisation.
    pub param: P,
    /// The observation.
    pub obs: Arc<Observation>,
    /// The likelihood approximation.
    pub approx: Approximation,
}

impl<F: VectorField, P: Parametrization> Posterior<F, P> {
    /// The posterior field; errors when the observation is of another dimension, or when the
    /// approximation is degenerate (v < 0, or σ_y = 0 with v = 0).
    pub fn new(prior: F, param: P, obs: Arc<Observation>, approx: Approximation) -> Result<Self> {
        obs.check_dim(prior.dim())?;
        if let Approximation::PiGdm { data_variance } = approx {
            if !(data_variance >= 0.0 && data_variance.is_finite()) {
                return Err(Error::InvalidInput(format!(
                    "data variance must be finite and >= 0 (got {data_variance})"
                )));
            }
            if data_variance == 0.0 {
                obs.precision(0.0)?;
            }
        }
        Ok(Self {
            prior,
            param,
            obs,
            approx,
        })
    }

    /// (M_t, log det M_t⁻¹) with M_t = (σ_y² I + r_t² A Aᵀ)⁻¹ for every row's time (one
    /// inversion per distinct time).
    fn precisions(&self, t: &[f64]) -> Vec<Arc<Precision>> {
        let mut cache: HashMap<u64, Arc<Precision>> = HashMap::new();
        t.iter()
            .map(|&tt| {
                cache
                    .entry(tt.to_bits())
                    .or_insert_with(|| {
                        let (m, s) = self.param.mean_std(tt);
                        let r2 = match self.approx {
                            Approximation::PiGdm { data_variance: v } => {
                                v * s * s / (m * m * v + s * s)
                            }
                            // (Tmpd's per-row covariance is built in `tmpd_precisions`.)
                            Approximation::Noisy | Approximation::Tmpd => (s / m).powi(2),
                        };
                        let dy = self.obs.obs_dim();
                        Arc::new(
                            self.obs
                                .precision(r2)
                                .unwrap_or_else(|_| (vec![f64::NAN; dy * dy], f64::NAN)),
                        )
                    })
                    .clone()
            })
            .collect()
    }

    /// (u, log p̃) per row: u = Aᵀ M_t (y − A x̂) and log N(y; A x̂, M_t⁻¹).
    fn pull_back(&self, xhat: &Tensor<2>, mats: &[Arc<Precision>]) -> (Tensor<2>, Vec<f64>) {
        let dy = self.obs.obs_dim();
        let r = to_vec(&self.obs.residual(xhat));
        let n = mats.len();
        let mut v = vec![0.0; n * dy];
        let mut logp = vec![0.0; n];
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        for i in 0..n {
            let (m, log_det) = (&mats[i].0, mats[i].1);
            for a in 0..dy {
                v[i * dy + a] = (0..dy).map(|b| m[a * dy + b] * r[i * dy + b]).sum();
            }
            let quad: f64 = (0..dy).map(|a| r[i * dy + a] * v[i * dy + a]).sum();
            logp[i] = -0.5 * (dy as f64 * ln2pi + log_det + quad);
        }
        (self.obs.adjoint(&matrix_like(v, n, dy, xhat)), logp)
    }

    /// Per row, (σ_y² I + A Cov Aᵀ)⁻¹ with Cov = (s²/m)(p I + q J_f) from one JVP of the
    /// prior per row of A (symmetrised: a learned J_f need not be symmetric). A row whose matrix
    /// is not positive definite (a learned field) falls back to the Noisy form's.
    fn tmpd_precisions(&self, x: &Tensor<2>, t: &Tensor<1>, ts: &[f64]) -> Vec<Arc<Precision>> {
        let (n, d, dy) = (ts.len(), self.obs.dim(), self.obs.obs_dim());
        let a = self.obs.matrix();
        // A J_f aₖ for every k: column k of A J_f Aᵀ, per row.
        let mut ajat = vec![0.0; n * dy * dy];
        for k in 0..dy {
            let dir = matrix_like(a[k * d..(k + 1) * d].repeat(n), n, d, x);
            let (_, jv) = self.prior.jvp(x, t, &dir);
            let col = to_vec(&self.obs.apply(&jv));
            for i in 0..n {
                for j in 0..dy {
                    ajat[i * dy * dy + j * dy + k] = col[i * dy + j];
                }
            }
        }
        let mut aat = vec![0.0; dy * dy];
        for j in 0..dy {
            for k in 0..dy {
                aat[j * dy + k] = (0..d).map(|c| a[j * d + c] * a[k * d + c]).sum();
            }
        }
        let fallback = self.precisions(ts);
        let sigma2 = self.obs.sigma().powi(2);
        (0..n)
            .map(|i| {
                let (m, s) = self.param.mean_std(ts[i]);
                let (p, q) = self.param.denoiser(ts[i]);
                let c = s * s / m;
                let mut g = vec![0.0; dy * dy];
                for j in 0..dy {
                    for k in 0..dy {
                        let sym =
                            0.5 * (ajat[i * dy * dy + j * dy + k] + ajat[i * dy * dy + k * dy + j]);
                        g[j * dy + k] =
                            c * (p * aat[j * dy + k] + q * sym) + if j == k { sigma2 } else { 0.0 };
                    }
                }
                match invert_spd(&g, dy) {
                    Some(p) => Arc::new(p),
                    None => fallback[i].clone(),
                }
            })
            .collect()
    }

    /// (f, ℓ): the prior field and the likelihood term at x.
    pub fn terms(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<2>) {
        let (f, l, _) = self.terms_with_log_likelihood(x, t);
        (f, l)
    }

    /// (f, ℓ, log p̃(y | x_t = x)) per row: the approximate likelihood's value as well (what
    /// twisted SMC weights with, [`super::tds`]).
    pub fn terms_with_log_likelihood(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
    ) -> (Tensor<2>, Tensor<2>, Vec<f64>) {
        let ts = to_vec(t);
        let mats = match self.approx {
            Approximation::Tmpd => self.tmpd_precisions(x, t, &ts),
            _ => self.precisions(&ts),
        };
        match self.approx {
            Approximation::Noisy => {
                let f = self.prior.eval(x, t);
                let inv_m = per_row(t, |tt| 1.0 / self.param.mean_std(tt).0);
                let (u, logp) = self.pull_back(&(x.clone() * inv_m.clone()), &mats);
                (f, u * inv_m, logp)
            }
            Approximation::PiGdm { .. } | Approximation::Tmpd => {
                let p = per_row(t, |tt| self.param.denoiser(tt).0);
                let q = per_row(t, |tt| self.param.denoiser(tt).1);
                let seen = RefCell::new(None);
                let (f, g) = self.prior.vjp_with(x, t, &|f| {
                    let xhat = x.clone() * p.clone() + f.clone() * q.clone();
                    let (u, logp) = self.pull_back(&xhat, &mats);
                    *seen.borrow_mut() = Some((u.clone(), logp));
                    u * q.clone()
                });
                let (u, logp) = seen.into_inner().expect("vjp_with calls its cotangent");
                (f, u * p + g, logp)
            }
        }
    }
}

impl<F: VectorField, P: Parametrization> VectorField for Posterior<F, P> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }

    /// f + c(t)·ℓ.
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let (f, l) = self.terms(x, t);
        f + l * per_row(t, |tt| self.param.score_factor(tt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::analytic::MixtureScore;
    use crate::gaussian::LowRankMixture;
    use crate::guidance::ScoreVelocity;
    use crate::path::CondOt;
    use crate::sde::VpSde;
    use crate::tensor::{cpu, randn, rng, vector, DType};

    fn close(a: &Tensor<2>, b: &Tensor<2>, tol: f64, what: &str) {
        for (x, y) in to_vec(a).iter().zip(to_vec(b)) {
            assert!((x - y).abs() < tol * (1.0 + y.abs()), "{what}: {x} vs {y}");
        }
    }

    fn problem() -> (LowRankMixture, Arc<Observation>) {
        let prior =
            LowRankMixture::isotropic(vec![1.0], vec![vec![0.5, -1.0, 0.0, 2.0, 1.0]], &[0.7])
                .unwrap();
        let obs = Observation::new(
            vec![
                vec![1.0, 0.5, 0.0, -0.3, 0.2],
                vec![0.0, 1.0, 1.0, 0.4, 0.0],
            ],
            vec![0.8, -0.4],
            0.3,
        )
        .unwrap();
        (prior, Arc::new(obs))
    }

    /// For a Gaussian prior N(μ, v I), x₀ | x_t is Gaussian with covariance r_t² I, so Π-GDM's
    /// likelihood is exact: prior score + Π-GDM term = the exact posterior score (the oracle's
    /// perturbed posterior) at every VP time, to 1e-9; TMPD (Tweedie's covariance, no v given)
    /// is exact too. The same holds for flow velocities under CondOT (t ≥ t_min).
    #[test]
    fn pigdm_and_tmpd_are_exact_for_a_gaussian_prior() {
        let (prior, obs) = problem();
        let post = obs.posterior(&prior).unwrap();
        let x = randn(30, 5, &cpu(), DType::F64, &mut rng(1)) * 2.0;
        let ts: Vec<f64> = (0..30).map(|i| 0.002 + 0.99 * i as f64 / 29.0).collect();
        let t = vector(ts, &cpu(), DType::F64);
        let sde = VpSde::default();
        let exact = MixtureScore::new(post.clone(), sde.clone());
        for approx in [
            Approximation::PiGdm { data_variance: 0.7 },
            Approximation::Tmpd,
        ] {
            let field = Posterior::new(
                MixtureScore::new(prior.clone(), sde.clone()),
                ScoreParam(sde.clone()),
                obs.clone(),
                approx,
            )
            .unwrap();
            close(&field.eval(&x, &t), &exact.eval(&x, &t), 1e-9, "vp");
        }
        let path = GaussianPath::new(CondOt);
        let tf = vector(
            (0..30).map(|i| 0.02 + 0.97 * i as f64 / 29.0).collect(),
            &cpu(),
            DType::F64,
        );
        let exact_u = ScoreVelocity::new(MixtureScore::new(post, path), path);
        for approx in [
            Approximation::PiGdm { data_variance: 0.7 },
            Approximation::Tmpd,
        ] {
            let field = Posterior::new(
                ScoreVelocity::new(MixtureScore::new(prior.clone(), path), path),
                VelocityParam::new(path),
                obs.clone(),
                approx,
            )
            .unwrap();
            close(&field.eval(&x, &tf), &exact_u.eval(&x, &tf), 1e-8, "flow");
        }
        // Its value is the exact log p(y | x_t) too, by Bayes: log p_t(x | y) + log p(y) −
        // log p_t(x), with the oracle's evidence p(y) (one component) and perturbed densities.
        let field = Posterior::new(
            MixtureScore::new(prior.clone(), sde.clone()),
            ScoreParam(sde.clone()),
            obs.clone(),
            Approximation::PiGdm { data_variance: 0.7 },
        )
        .unwrap();
        let got = field.terms_with_log_likelihood(&x, &t).2;
        let (post, evidence) = prior
            .condition(obs.matrix(), obs.values(), obs.sigma().powi(2))
            .unwrap();
        use crate::field::analytic::LogDensity;
        let lq = to_vec(&MixtureScore::new(post, sde.clone()).log_density(&x, &t));
        let lp = to_vec(&MixtureScore::new(prior, sde).log_density(&x, &t));
        for i in 0..30 {
            let want = lq[i] + evidence[0] - lp[i];
            assert!(
                (got[i] - want).abs() < 1e-8 * (1.0 + want.abs()),
                "{} vs {want}",
                got[i]
            );
        }
    }
}
