//! Langevin dynamics with a score field: the unadjusted chain (ULA)
//! x ← x + ε·s(x) + √(2ε)·ξ, its Metropolis-adjusted version (MALA) when a log-density is
//! known, NCSN's annealed Langevin over a noise ladder, and the snr-controlled Langevin
//! corrector of predictor–corrector sampling.
//!
//! ULA's bias: on N(0, σ²) the chain is x' = (1 − ε/σ²)x + √(2ε)ξ, an AR(1) process with
//! stationary variance 2ε/(1 − (1 − ε/σ²)²) = σ²/(1 − ε/(2σ²)) > σ² (and unstable for
//! ε ≥ 2σ²). MALA's accept/reject step removes the bias at any ε.

use std::sync::Arc;

use rand::Rng as _;

use super::sampler::{check_dim, check_t_end, finish, Denoise, Sample, Sampler};
use crate::error::{Error, Result};
use crate::field::analytic::LogDensity;
use crate::field::VectorField;
use crate::sde::Sde;
use crate::tensor::{all_finite, matrix_like, randn_like, times_like, to_vec, Rng, Tensor};

fn check_step(name: &str, step: f64, steps: usize) -> Result<()> {
    if !(step > 0.0 && step.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "{name}: step size must be > 0, got {step}"
        )));
    }
    if steps == 0 {
        return Err(Error::InvalidInput(format!("{name}: needs steps >= 1")));
    }
    Ok(())
}

/// One Langevin update x_mean = x + ε·s, x' = x_mean + √(2ε)·ξ given the score `s` at x.
fn langevin_update(
    x: &Tensor<2>,
    s: Tensor<2>,
    step: f64,
    rng: &mut Rng,
) -> (Tensor<2>, Tensor<2>) {
    let mean = x.clone() + s * step;
    let noisy = mean.clone() + randn_like(x, rng) * (2.0 * step).sqrt();
    (noisy, mean)
}

/// The unadjusted Langevin algorithm x ← x + ε·s(x, τ) + √(2ε)·ξ on the field at one fixed
/// time τ, for `steps` steps (NFE = steps). Returns the last noisy state.
#[derive(Debug, Clone, PartialEq)]
pub struct Ula {
    /// Step size ε.
    pub step: f64,
    /// Number of steps.
    pub steps: usize,
    /// The time τ the score is evaluated at.
    pub tau: f64,
}

impl Sampler for Ula {
    fn name(&self) -> &'static str {
        "ula"
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        check_step("ULA", self.step, self.steps)?;
        let mut x = x;
        for _ in 0..self.steps {
            let s = score.eval_at(&x, self.tau);
            x = langevin_update(&x, s, self.step, rng).0;
        }
        if !all_finite(&x) {
            return Err(Error::Solver(format!(
                "ULA diverged (non-finite samples); step {} is too large",
                self.step
            )));
        }
        Ok(Sample {
            x,
            nfe: self.steps,
            accept_rate: None,
        })
    }
}

/// The Metropolis-adjusted Langevin algorithm: propose y = x + ε s(x) + √(2ε) ξ, accept with
/// probability min(1, p(y) q(x|y) / (p(x) q(y|x))), q(y|x) ∝ exp(−‖y − x − ε s(x)‖²/(4ε)).
///
/// Its stationary law is exactly exp(`target`) at time τ, whatever the drift field passed to
/// [`Sampler::sample`] (the accept ratio uses the same field for both proposals); with the
/// target's own score the proposal is the efficient one. NFE = steps + 1 score evaluations.
#[derive(Clone)]
pub struct Mala {
    /// Step size ε.
    pub step: f64,
    /// Number of steps.
    pub steps: usize,
    /// The time τ the score and log-density are evaluated at.
    pub tau: f64,
    /// log p(x, τ) of the target.
    pub target: Arc<dyn LogDensity + Send + Sync>,
}

impl std::fmt::Debug for Mala {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mala")
            .field("step", &self.step)
            .field("steps", &self.steps)
            .field("tau", &self.tau)
            .finish_non_exhaustive()
    }
}

impl Sampler for Mala {
    fn name(&self) -> &'static str {
        "mala"
    }

    /// Draw order per step: ξ (n·d normals), then n uniforms for the accept tests.
    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        check_step("MALA", self.step, self.steps)?;
        let [n, d] = x.dims();
        let eps = self.step;
        let t = times_like(&x, self.tau);
        let mut xs = to_vec(&x);
        let mut ss = to_vec(&score.eval(&x, &t));
        let mut lp = to_vec(&self.target.log_density(&x, &t));
        let mut accepted = 0usize;
        // log q(b | a) up to a constant, rows of width d: −‖b − a − ε s(a)‖²/(4ε).
        let log_q = |b: &[f64], a: &[f64], sa: &[f64]| -> f64 {
            b.iter()
                .zip(a)
                .zip(sa)
                .map(|((b, a), s)| (b - a - eps * s).powi(2))
                .sum::<f64>()
                / (-4.0 * eps)
        };
        for _ in 0..self.steps {
            let xt = matrix_like(xs.clone(), n, d, &x);
            let (y, _) = langevin_update(&xt, matrix_like(ss.clone(), n, d, &x), eps, rng);
            let sy = to_vec(&score.eval(&y, &t));
            let lpy = to_vec(&self.target.log_density(&y, &t));
            let ys = to_vec(&y);
            for r in 0..n {
                let (a, b) = (r * d, (r + 1) * d);
                let log_alpha = lpy[r] - lp[r] + log_q(&xs[a..b], &ys[a..b], &sy[a..b])
                    - log_q(&ys[a..b], &xs[a..b], &ss[a..b]);
                let u: f64 = rng.random();
                if log_alpha.is_finite() && u.ln() < log_alpha {
                    xs[a..b].copy_from_slice(&ys[a..b]);
                    ss[a..b].copy_from_slice(&sy[a..b]);
                    lp[r] = lpy[r];
                    accepted += 1;
                }
            }
        }
        let out = matrix_like(xs, n, d, &x);
        if !all_finite(&out) {
            return Err(Error::Solver("MALA produced non-finite samples".into()));
        }
        let rate = accepted as f64 / (n * self.steps) as f64;
        Ok(Sample {
            x: out,
            nfe: self.steps + 1,
            accept_rate: Some(rate),
        })
    }
}

/// The Langevin corrector of predictor–corrector sampling (Song et al. 2021, Algorithm 4):
/// M steps x ← x + ε s(x, τ) + √(2ε) z at the current τ with
/// ε = 2α·(r·‖z‖/‖s‖)², norms averaged over the batch, α = m(τᵢ)²/m(τᵢ₊₁)² (1 − βᵢ for VP,
/// 1 for VE).
///
/// The signal-to-noise ratio r = ‖ε s‖/‖√(2ε) z‖ compares the deterministic step with the
/// injected noise: it fixes the step relative to the local scale of p_τ (for N(0, σ²) in d
/// dimensions ε ≈ 2r²σ²). score_sde uses r = 0.16 (VE, CIFAR-10); larger r moves further per
/// step but adds more Langevin bias. Our default is r = 0.05: with learned scores on 2-D data,
/// r = 0.16 over-concentrates the modes (checkerboard SW2 0.135 vs 0.072 at r = 0.1 and 0.051 at
/// r = 0.05, EM 0.043; `docs/RESULTS.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LangevinCorrector {
    /// Signal-to-noise ratio r.
    pub snr: f64,
    /// Steps M per predictor step.
    pub steps: usize,
}

impl Default for LangevinCorrector {
    /// r = 0.05, M = 1 (score_sde uses r = 0.16 for images).
    fn default() -> Self {
        Self {
            snr: 0.05,
            steps: 1,
        }
    }
}

impl LangevinCorrector {
    /// Errors unless r > 0 and M ≥ 1.
    pub fn validate(&self) -> Result<()> {
        if self.snr > 0.0 && self.snr.is_finite() && self.steps >= 1 {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "Langevin corrector needs snr > 0 and steps >= 1 (got {}, {})",
                self.snr, self.steps
            )))
        }
    }

    /// M corrector steps at τ: returns (x, x_mean) of the last step (M NFE).
    pub fn correct(
        &self,
        score: &dyn VectorField,
        x: &Tensor<2>,
        tau: f64,
        alpha: f64,
        rng: &mut Rng,
    ) -> (Tensor<2>, Tensor<2>) {
        let (mut x, mut mean) = (x.clone(), x.clone());
        for _ in 0..self.steps {
            let g = score.eval_at(&x, tau);
            let z = randn_like(&x, rng);
            let ratio = mean_row_norm(&z) / mean_row_norm(&g).max(f64::MIN_POSITIVE);
            let step = 2.0 * alpha * (self.snr * ratio).powi(2);
            mean = x.clone() + g * step;
            x = mean.clone() + z * (2.0 * step).sqrt();
        }
        (x, mean)
    }
}

/// Batch mean of the rows' Euclidean norms.
fn mean_row_norm(v: &Tensor<2>) -> f64 {
    let [n, _] = v.dims();
    let norms = v.clone().powi_scalar(2).sum_dim(1).sqrt();
    to_vec(&norms).iter().sum::<f64>() / n.max(1) as f64
}

/// Annealed Langevin dynamics (Song & Ermon 2019, NCSN): for noise levels σ₁ > … > σ_L
/// (geometric from s(T) to s(ε), τᵢ with s(τᵢ) = σᵢ), run `steps_per_level` ULA steps with
/// step εᵢ = ρ·σᵢ² on the score at τᵢ. (NCSN writes αᵢ = ε σᵢ²/σ_L² with update
/// x + αᵢ/2·s + √αᵢ·z: ρ = ε/(2σ_L²); their ε = 2e-5 at σ_L = 0.01 is ρ = 0.1.)
/// NFE = L·steps_per_level (+1 for Tweedie).
#[derive(Debug, Clone)]
pub struct AnnealedLangevin {
    /// The SDE whose marginal std s(τ) defines the noise levels.
    pub sde: Arc<dyn Sde>,
    /// Number of levels L ≥ 2.
    pub levels: usize,
    /// ULA steps per level.
    pub steps_per_level: usize,
    /// Step ratio ρ: εᵢ = ρ·σᵢ².
    pub step_ratio: f64,
    /// The last level's time ε.
    pub t_end: f64,
    /// Final step.
    pub denoise: Denoise,
}

impl AnnealedLangevin {
    /// ALD with L levels down to the SDE's sampling ε, returning the last step's mean.
    pub fn new(
        sde: Arc<dyn Sde>,
        levels: usize,
        steps_per_level: usize,
        step_ratio: f64,
    ) -> Result<Self> {
        if levels < 2 {
            return Err(Error::InvalidInput(format!(
                "annealed Langevin needs at least 2 noise levels, got {levels}"
            )));
        }
        check_step("annealed Langevin", step_ratio, steps_per_level)?;
        let t_end = sde.sampling_eps();
        Ok(Self {
            sde,
            levels,
            steps_per_level,
            step_ratio,
            t_end,
            denoise: Denoise::Mean,
        })
    }

    /// The ladder (τᵢ, σᵢ): σ geometric from s(T) down to s(ε), τᵢ = s⁻¹(σᵢ) by bisection
    /// (s is increasing in τ for every SDE here).
    pub fn ladder(&self) -> Vec<(f64, f64)> {
        let sde = &*self.sde;
        let (lo, hi) = (self.t_end, sde.t_max());
        let (s_lo, s_hi) = (sde.mean_std(lo).1, sde.mean_std(hi).1);
        (0..self.levels)
            .map(|i| {
                let frac = i as f64 / (self.levels - 1) as f64;
                let sigma = s_hi * (s_lo / s_hi).powf(frac);
                let tau = if i == 0 {
                    hi
                } else if i + 1 == self.levels {
                    lo
                } else {
                    let (mut a, mut b) = (lo, hi);
                    for _ in 0..80 {
                        let mid = 0.5 * (a + b);
                        if sde.mean_std(mid).1 < sigma {
                            a = mid;
                        } else {
                            b = mid;
                        }
                    }
                    0.5 * (a + b)
                };
                (tau, sigma)
            })
            .collect()
    }
}

impl Sampler for AnnealedLangevin {
    fn name(&self) -> &'static str {
        "ald"
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        check_t_end(&*self.sde, self.t_end)?;
        check_step("annealed Langevin", self.step_ratio, self.steps_per_level)?;
        let (mut x, mut mean) = (x.clone(), x);
        for (tau, sigma) in self.ladder() {
            let step = self.step_ratio * sigma * sigma;
            for _ in 0..self.steps_per_level {
                let s = score.eval_at(&x, tau);
                (x, mean) = langevin_update(&x, s, step, rng);
            }
        }
        let nfe = self.levels * self.steps_per_level;
        finish(
            "ald",
            &*self.sde,
            score,
            self.denoise,
            self.t_end,
            (x, mean),
            nfe,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::analytic::{Gaussian, GaussianMixture, MixtureScore};
    use crate::sde::VpSde;
    use crate::solve::sde::tests::{assert_reproduces, three_modes};
    use crate::tensor::{cpu, matrix, rng, DType};

    /// Per-coordinate variance of an `(n, d)` sample around the known mean 0.
    fn var0(x: &Tensor<2>) -> f64 {
        let v = to_vec(x);
        v.iter().map(|a| a * a).sum::<f64>() / v.len() as f64
    }

    fn gaussian(var: f64) -> MixtureScore {
        MixtureScore::fixed(GaussianMixture::from(
            Gaussian::isotropic(vec![0.0, 0.0], var).unwrap(),
        ))
    }

    /// ULA on N(0, σ²) (σ² = 1, d = 2) has stationary variance σ²/(1 − ε/(2σ²)): for
    /// ε = 0.1, 0.5, 1.0 that is 1.0526, 1.3333, 2.0. 20,000 chains from 0 run 150 steps (the
    /// start is forgotten as (1 − ε)^{2k} ≤ 2e-7); 40,000 independent coordinates give a variance
    /// SE of v·√(2/40,000) = 0.7 % — the bias at ε = 0.1 is 7.5 SE, tolerance 4 SE.
    #[test]
    fn ula_stationary_variance_has_the_known_bias() {
        let target = gaussian(1.0);
        for &eps in &[0.1, 0.5, 1.0] {
            let ula = Ula {
                step: eps,
                steps: 150,
                tau: 0.0,
            };
            let x0 = matrix(vec![0.0; 40_000], 20_000, 2, &cpu(), DType::F64);
            let out = ula.sample(&target, x0, &mut rng(10)).unwrap();
            assert_eq!(out.nfe, 150);
            let want = 1.0 / (1.0 - eps / 2.0);
            let got = var0(&out.x);
            let se = want * (2.0 / 40_000.0f64).sqrt();
            assert!(
                (got - want).abs() < 4.0 * se,
                "ε = {eps}: variance {got} vs {want} (SE {se})"
            );
            assert!(
                (got - 1.0).abs() > 4.0 * se,
                "ε = {eps}: the ULA bias should be visible"
            );
        }
    }

    /// MALA removes the bias: at ε = 0.5 and 1.0 (ULA variance 1.33 and 2.0) 10,000 chains from 0
    /// after 100 steps have variance 1 within 4 SE (SE √(2/20,000) = 1 %); acceptance is < 1.
    #[test]
    fn mala_is_unbiased() {
        let target = Arc::new(gaussian(1.0));
        for &eps in &[0.5, 1.0] {
            let mala = Mala {
                step: eps,
                steps: 100,
                tau: 0.0,
                target: target.clone(),
            };
            let x0 = matrix(vec![0.0; 20_000], 10_000, 2, &cpu(), DType::F64);
            let out = mala.sample(&*target, x0, &mut rng(11)).unwrap();
            let got = var0(&out.x);
            let se = (2.0 / 20_000.0f64).sqrt();
            assert!(
                (got - 1.0).abs() < 4.0 * se,
                "ε = {eps}: MALA variance {got} (SE {se})"
            );
            let rate = out.accept_rate.unwrap();
            assert!(rate > 0.3 && rate < 1.0, "acceptance {rate}");
            assert_eq!(out.nfe, 101);
        }
    }

    /// On the three-mode mixture, whose modes are too far apart for a Langevin chain to cross
    /// (the reason for annealing), ULA (small ε: bias ε/2 ≈ 2.5e-3 ≪ the 4-SE tolerance) and
    /// MALA (ε = 0.1) started from exact draws keep the mixture invariant over 200 steps.
    #[test]
    fn ula_and_mala_keep_the_mixture_invariant() {
        let mix = three_modes();
        let target = Arc::new(MixtureScore::fixed(mix.clone()));
        let start = || mix.sample(4000, &mut rng(12)).to_tensor(&cpu(), DType::F64);
        let ula = Ula {
            step: 0.005,
            steps: 200,
            tau: 0.0,
        };
        assert_reproduces(
            &mix,
            &ula.sample(&*target, start(), &mut rng(13)).unwrap().x,
            "ula",
        );
        let mala = Mala {
            step: 0.1,
            steps: 200,
            tau: 0.0,
            target: target.clone(),
        };
        assert_reproduces(
            &mix,
            &mala.sample(&*target, start(), &mut rng(14)).unwrap().x,
            "mala",
        );
    }

    /// The corrector's step realises its signal-to-noise ratio: with ε = 2α(r‖z‖/‖s‖)², the
    /// batch-mean norms satisfy ‖x_mean − x‖ / ‖x' − x_mean‖ = ‖ε s‖/‖√(2ε) z‖ = √α·r exactly.
    #[test]
    fn corrector_step_matches_its_snr() {
        let target = gaussian(0.3);
        let x = VpSde::default().prior_sample(500, 2, &cpu(), DType::F64, &mut rng(15));
        for &(snr, alpha) in &[(0.16, 1.0), (0.3, 0.81)] {
            let c = LangevinCorrector { snr, steps: 1 };
            let (x1, mean) = c.correct(&target, &x, 0.0, alpha, &mut rng(16));
            let ratio = mean_row_norm(&(mean.clone() - x.clone())) / mean_row_norm(&(x1 - mean));
            assert!(
                (ratio - alpha.sqrt() * snr).abs() < 1e-12,
                "{ratio} vs {}",
                alpha.sqrt() * snr
            );
        }
        assert!(LangevinCorrector {
            snr: -1.0,
            steps: 1
        }
        .validate()
        .is_err());
        assert!(LangevinCorrector { snr: 0.1, steps: 0 }.validate().is_err());
    }

    #[test]
    fn bad_settings_are_errors() {
        let target = gaussian(1.0);
        let x = matrix(vec![0.0; 4], 2, 2, &cpu(), DType::F64);
        assert!(Ula {
            step: 0.0,
            steps: 10,
            tau: 0.0
        }
        .sample(&target, x.clone(), &mut rng(0))
        .is_err());
        assert!(Ula {
            step: 0.1,
            steps: 0,
            tau: 0.0
        }
        .sample(&target, x.clone(), &mut rng(0))
        .is_err());
        // ε ≥ 2σ² makes ULA unstable: reported as an error, not returned as inf.
        let e = Ula {
            step: 5.0,
            steps: 2000,
            tau: 0.0,
        }
        .sample(&target, x.clone(), &mut rng(0))
        .unwrap_err();
        assert!(e.to_string().contains("diverged"), "{e}");
        assert!(AnnealedLangevin::new(Arc::new(VpSde::default()), 1, 10, 0.1).is_err());
    }
}
