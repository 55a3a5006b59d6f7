//! The twisted diffusion sampler (Wu, Trippe, Naesseth, Blei & Cunningham 2023, "Practical and
//! asymptotically exact conditional sampling in diffusion models"): sequential Monte Carlo
//! over the reverse diffusion with the approximate likelihood p̃_t(y | x_t) of a [`Posterior`]
//! field (Π-GDM or TMPD) as the twisting function. Each particle moves by the guided reverse
//! step (the prior step with score s + ℓ) and is re-weighted by
//!
//!   w ← w · p(x' | x) p̃_{t'}(y | x') / ( q(x' | x) p̃_t(y | x) ),
//!
//! p the prior's reverse kernel and q the guided proposal (Gaussians with one variance, so
//! log p/q = (‖x' − μ_q‖² − ‖x' − μ_p‖²)/2σ²); the population is resampled (systematic) when
//! its effective sample size drops below a fraction of n, and once at the end. The particles
//! are the samples. Unlike guidance alone it corrects the approximation's errors in the mode
//! weights, and it is exact as n → ∞; the cost per step is the twisting's (NFE 2 for Π-GDM).

use std::sync::Arc;

use rand::Rng as _;

use super::{Approximation, Observation, Posterior, ScoreParam};
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::sde::Sde;
use crate::solve::sampler::{check_dim, check_t_end, time_grid, Sample, Sampler};
use crate::solve::Predictor;
use crate::tensor::{matrix_like, randn_like, times_like, to_vec, Rng, Tensor};

/// Twisted SMC posterior sampling over a score model of an SDE (see the module documentation).
#[derive(Debug, Clone)]
pub struct Tds {
    /// The forward SDE of the prior score.
    pub sde: Arc<dyn Sde>,
    /// The observation.
    pub obs: Arc<Observation>,
    /// The twisting function's approximation (Π-GDM or TMPD).
    pub approx: Approximation,
    /// Reverse steps N.
    pub steps: usize,
    /// The reverse kernel and proposal (DDPM's ancestral step).
    pub predictor: Predictor,
    /// Resample when ESS < this fraction of n (0.5).
    pub ess_threshold: f64,
    /// End time ε.
    pub t_end: f64,
}

impl Tds {
    /// TDS with `steps` ancestral steps to the SDE's sampling ε, resampling at ESS < n/2.
    pub fn new(
        sde: Arc<dyn Sde>,
        obs: Arc<Observation>,
        approx: Approximation,
        steps: usize,
    ) -> Self {
        let t_end = sde.sampling_eps();
        Self {
            sde,
            obs,
            approx,
            steps,
            predictor: Predictor::Ancestral,
            ess_threshold: 0.5,
            t_end,
        }
    }
}

/// Normalised weights from log-weights, and their effective sample size (Σw)²/Σw².
fn normalise(logw: &[f64]) -> (Vec<f64>, f64) {
    let top = logw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logw.iter().map(|l| (l - top).exp()).collect();
    let total: f64 = w.iter().sum();
    let w: Vec<f64> = w.iter().map(|v| v / total).collect();
    let ess = 1.0 / w.iter().map(|v| v * v).sum::<f64>();
    (w, ess)
}

/// Systematic resampling: n ancestor indices for normalised weights `w`, one uniform draw.
fn systematic(w: &[f64], rng: &mut Rng) -> Vec<usize> {
    let n = w.len();
    let u0: f64 = rng.random::<f64>() / n as f64;
    let mut out = Vec::with_capacity(n);
    let (mut acc, mut j) = (w[0], 0);
    for i in 0..n {
        let u = u0 + i as f64 / n as f64;
        while u > acc && j + 1 < n {
            j += 1;
            acc += w[j];
        }
        out.push(j);
    }
    out
}

/// Rows `idx` of a `(n, d)` tensor.
fn gather(x: &Tensor<2>, idx: &[usize]) -> Tensor<2> {
    let [_, d] = x.dims();
    let v = to_vec(x);
    let out: Vec<f64> = idx
        .iter()
        .flat_map(|&i| v[i * d..(i + 1) * d].iter().copied())
        .collect();
    matrix_like(out, idx.len(), d, x)
}

impl Sampler for Tds {
    fn name(&self) -> &'static str {
        "tds"
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        check_t_end(&*self.sde, self.t_end)?;
        if self.steps == 0 || !(0.0..=1.0).contains(&self.ess_threshold) {
            return Err(Error::InvalidInput(format!(
                "TDS needs steps >= 1 and an ESS threshold in [0, 1] (got {}, {})",
                self.steps, self.ess_threshold
            )));
        }
        if self.approx == Approximation::Noisy {
            return Err(Error::InvalidInput(
                "TDS twists with a denoiser-based likelihood (Π-GDM or TMPD), not the noisy one"
                    .into(),
            ));
        }
        let sde = &*self.sde;
        let post = Posterior::new(score, ScoreParam(sde), self.obs.clone(), self.approx)?;
        let per_eval = self.approx.nfe(self.obs.obs_dim());
        let n = x.dims()[0];
        let grid = time_grid(sde.t_max(), self.t_end, self.steps);
        let (mut f, mut l, mut logp) = post.terms_with_log_likelihood(&x, &times_like(&x, grid[0]));
        let mut nfe = per_eval;
        // Particles start as draws of p_T, so the first target p_T·p̃_T weighs them by p̃_T.
        let mut logw = logp.clone();
        let (mut x, mut x_mean) = (x.clone(), x);
        for w in grid.windows(2) {
            let (wts, ess) = normalise(&logw);
            if ess < self.ess_threshold * n as f64 {
                let idx = systematic(&wts, rng);
                x = gather(&x, &idx);
                f = gather(&f, &idx);
                l = gather(&l, &idx);
                logp = idx.iter().map(|&i| logp[i]).collect();
                logw = vec![0.0; n];
            }
            let (a, c, std) = self.predictor.coefficients(sde, w[0], w[1]);
            let mean_p = x.clone() * a + f.clone() * c;
            let mean_q = mean_p.clone() + l.clone() * c;
            let xn = mean_q.clone() + randn_like(&x, rng) * std;
            let dp = to_vec(&(xn.clone() - mean_p).powi_scalar(2).sum_dim(1));
            let dq = to_vec(&(xn.clone() - mean_q.clone()).powi_scalar(2).sum_dim(1));
            let (fn_, ln_, logp_n) = post.terms_with_log_likelihood(&xn, &times_like(&xn, w[1]));
            nfe += per_eval;
            let inv2v = 0.5 / (std * std).max(f64::MIN_POSITIVE);
            for i in 0..n {
                logw[i] += logp_n[i] - logp[i] + (dq[i] - dp[i]) * inv2v;
            }
            (x, x_mean, f, l, logp) = (xn, mean_q, fn_, ln_, logp_n);
        }
        let (wts, _) = normalise(&logw);
        if wts.iter().any(|v| !v.is_finite()) {
            return Err(Error::Solver(
                "TDS weights are not finite (NaN likelihood or score)".into(),
            ));
        }
        let idx = systematic(&wts, rng);
        let out = gather(&x_mean, &idx);
        if !crate::tensor::all_finite(&out) {
            return Err(Error::Solver("TDS produced non-finite samples".into()));
        }
        Ok(Sample {
            x: out,
            nfe,
            accept_rate: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::field::analytic::{GaussianMixture, MixtureScore};
    use crate::gaussian::{LowRankMixture, MixtureLaw};
    use crate::sde::VpSde;
    use crate::solve::PredictorCorrector;
    use crate::tensor::{cpu, randn, rng, DType};

    /// Systematic resampling keeps particle i ⌊n wᵢ⌋ or ⌈n wᵢ⌉ times (n = 1,000 particles of
    /// weights ∝ 1, 2, 3, 0.5 repeating).
    #[test]
    fn systematic_resampling_counts() {
        let raw: Vec<f64> = (0..1000).map(|i| [1.0, 2.0, 3.0, 0.5][i % 4]).collect();
        let total: f64 = raw.iter().sum();
        let w: Vec<f64> = raw.iter().map(|v| v / total).collect();
        for seed in 0..5 {
            let idx = systematic(&w, &mut rng(seed));
            assert_eq!(idx.len(), 1000);
            let mut c = vec![0usize; 1000];
            idx.iter().for_each(|&i| c[i] += 1);
            for (i, wi) in w.iter().enumerate() {
                let e = 1000.0 * wi;
                assert!(
                    c[i] == e.floor() as usize || c[i] == e.ceil() as usize,
                    "{i}: {} vs {e}",
                    c[i]
                );
            }
        }
        let (wn, ess) = normalise(&[0.0, 0.0, f64::ln(2.0)]);
        assert!(
            (wn[2] - 0.5).abs() < 1e-15 && (ess - 1.0 / (0.25 * 2.0 / 4.0 + 0.25)).abs() < 1e-12
        );
    }

    /// The SMC correction: on the bimodal 8gaussians posterior (y = (1, 0.3)·x + 0.5 ε at
    /// y = 0.5), guidance with a deliberately mis-scaled Π-GDM likelihood (data variance 0.05,
    /// far below the data's ≈ 4) gets the mode weights wrong, while TDS with the same twisting
    /// gets them right: the total-variation distance between the samples' mean responsibilities
    /// and the exact posterior weights is below 0.05 for TDS (n = 3,000 particles; the Monte
    /// Carlo error of a weight is ≈ √(w(1 − w)/ESS) ≈ 0.02 with the ESS after resampling) and
    /// at least twice as large for plain guidance.
    #[test]
    fn twisted_smc_corrects_the_mode_weights() {
        let spec = Dataset::EightGaussians.mixture().unwrap();
        let g = GaussianMixture::from(&spec);
        let prior = LowRankMixture::isotropic(
            g.weights().to_vec(),
            g.components().iter().map(|c| c.mean().to_vec()).collect(),
            &[spec.covs()[0][0]; 8],
        )
        .unwrap();
        let obs = Arc::new(Observation::new(vec![vec![1.0, 0.3]], vec![0.5], 0.5).unwrap());
        let post = obs.posterior(&prior).unwrap();
        let sde: Arc<dyn Sde> = Arc::new(VpSde::default());
        let score = MixtureScore::new(prior.clone(), sde.clone());
        let approx = Approximation::PiGdm {
            data_variance: 0.05,
        };
        let n = 3000;
        let x0 = randn(n, 2, &cpu(), DType::F64, &mut rng(1));
        let tv = |x: &Tensor<2>| {
            let r = post.responsibilities_batch(&to_vec(x));
            (0..8)
                .map(|k| {
                    let m = (0..n).map(|i| r[i * 8 + k]).sum::<f64>() / n as f64;
                    (m - post.weights()[k]).abs()
                })
                .sum::<f64>()
                / 2.0
        };
        let tds = Tds::new(sde.clone(), obs.clone(), approx, 200);
        let s = tds.sample(&score, x0.clone(), &mut rng(2)).unwrap();
        assert_eq!(s.nfe, 2 * 201);
        let guided = Posterior::new(&score, ScoreParam(sde.clone()), obs, approx).unwrap();
        let p = PredictorCorrector::new(sde, Predictor::Ancestral, 200)
            .sample(&guided, x0, &mut rng(2))
            .unwrap();
        let (t_tds, t_guided) = (tv(&s.x), tv(&p.x));
        assert!(t_tds < 0.05, "TDS weights off by TV {t_tds}");
        assert!(
            t_guided > 2.0 * t_tds,
            "guidance TV {t_guided} vs TDS {t_tds}"
        );
    }
}
