//! Inverse problems y = A x + σ_y ε with a generative prior: the observation
//! ([`Observation`], `OBS.json`), posterior samplers that see only the prior's score (or
//! velocity) and the observation, and the exact posterior of a Gaussian-mixture prior to score
//! them against.
//!
//! | method | how | NFE per step |
//! |---|---|---|
//! | [`Dps`] (Chung et al. 2023) | reverse step + ζ·∇‖y − A x̂₀‖ | 2 |
//! | [`Posterior`] + [`Approximation::PiGdm`] (Song et al. 2023) | score + J_x̂₀ᵀAᵀ(σ²I + r_t²AAᵀ)⁻¹(y − A x̂₀), any sampler | 2 |
//! | [`Posterior`] + [`Approximation::Noisy`] with annealed Langevin (Jalal et al. 2021) | score + Aᵀ(σ²I + (s/m)²AAᵀ)⁻¹(y − Ax/m)/m | 1 |
//! | [`Posterior`] + [`Approximation::Tmpd`] (Boys et al. 2023) | as Π-GDM with Tweedie's covariance (s²/m)∂x̂₀/∂x | 2 + 2 d_y |
//! | [`Tds`] (Wu et al. 2023) | twisted SMC: guided proposal + weights p·p̃'/(q·p̃), resampling | the twisting's |
//! | [`Replacement`] (score_sde inpainting, masks) | overwrite observed coordinates with m·y + s·z | 1 |
//!
//! NFE counts network evaluations; one that also carries an input gradient counts 2
//! ([`crate::field::counted::Counted`] tallies them for any field).
//!
//! **The oracle.** A Gaussian-mixture prior under a linear-Gaussian observation has a mixture
//! posterior ([`Observation::posterior`]), and x_t | y is again a mixture, so the exact
//! posterior score at every t is `MixtureScore::new(posterior, kernel)`; in high dimension the
//! algebra is Woodbury's (`gaussian::LowRankMixture`).

pub mod dps;
pub mod mcgdiff;
pub mod observation;
pub mod posterior;
pub mod replacement;
pub mod tds;

pub use dps::Dps;
pub use observation::Observation;
pub use posterior::{Approximation, Parametrization, Posterior, ScoreParam, VelocityParam};
pub use replacement::Replacement;
pub use tds::Tds;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::field::analytic::MixtureScore;
    use crate::gaussian::{GaussianMixture, LowRankMixture, MixtureLaw};
    use crate::sde::{Sde, VpSde};
    use crate::solve::{PredictorCorrector, ProbabilityFlowSampler, Sampler};
    use crate::tensor::{cpu, randn, rng, to_vec, DType};

    /// Samplers fed the exact posterior score reproduce the exact mixture posterior. The prior
    /// is 8gaussians (identity-type covariances, so the posterior is the rank-1 Woodbury form),
    /// y = (1, 0.3)·x + 0.5 ε observed at y = 0.5: a bimodal posterior with unequal weights.
    /// With n = 4,000 samples, for Euler–Maruyama (1,000 steps) and the probability-flow ODE
    /// (Dopri5): (i) weights — under the posterior E[rₖ(x)] = wₖ, so the mean responsibility of
    /// the samples estimates wₖ with SE sd(rₖ)/√n; (ii) the mean, SE √(Σᵢᵢ/n); (iii) the
    /// covariance entries, SE √(Var[(xᵢ − μᵢ)(xⱼ − μⱼ)]/n) from the samples' fourth moments. All
    /// within 4 SE (plus 2e-3 absolute for the discretisation and the ε = 10⁻³ end time, whose
    /// variance inflation s(ε)² ≈ 1e-4 is far below the SEs here).
    #[test]
    fn exact_posterior_score_samplers_reproduce_the_posterior() {
        let spec = Dataset::EightGaussians.mixture().unwrap();
        let prior = LowRankMixture::from(&GaussianMixture::from(&spec));
        let prior = LowRankMixture::isotropic(
            prior.weights().to_vec(),
            (0..8).map(|k| prior.mean_of(k).to_vec()).collect(),
            &[spec.covs()[0][0]; 8],
        )
        .unwrap();
        let obs = Observation::new(vec![vec![1.0, 0.3]], vec![0.5], 0.5).unwrap();
        let post = obs.posterior(&prior).unwrap();
        assert_eq!(post.rank(), 1);
        let big: Vec<f64> = post
            .weights()
            .iter()
            .copied()
            .filter(|w| *w > 0.05)
            .collect();
        assert!(
            big.len() >= 2,
            "the test wants a multimodal posterior: {:?}",
            post.weights()
        );
        let sde: std::sync::Arc<dyn Sde> = std::sync::Arc::new(VpSde::default());
        let score = MixtureScore::new(post.clone(), sde.clone());
        let n = 4000;
        let x0 = randn(n, 2, &cpu(), DType::F64, &mut rng(1));
        let samplers: Vec<Box<dyn Sampler>> = vec![
            Box::new(PredictorCorrector::euler_maruyama(sde.clone(), 1000)),
            Box::new(ProbabilityFlowSampler::new(sde.clone())),
        ];
        let mu = post.mean();
        let cov: Vec<f64> = {
            let mut c = vec![0.0; 4];
            for (k, w) in post.weights().iter().enumerate() {
                let (m, s) = (post.mean_of(k), post.covariance_of(k));
                for i in 0..2 {
                    for j in 0..2 {
                        c[i * 2 + j] += w * (s[i * 2 + j] + (m[i] - mu[i]) * (m[j] - mu[j]));
                    }
                }
            }
            c
        };
        for sampler in samplers {
            let s = sampler.sample(&score, x0.clone(), &mut rng(2)).unwrap();
            let x = to_vec(&s.x);
            let name = sampler.name();
            let resp = post.responsibilities_batch(&x);
            for (k, w) in post.weights().iter().enumerate() {
                let r: Vec<f64> = (0..n).map(|i| resp[i * 8 + k]).collect();
                let m = r.iter().sum::<f64>() / n as f64;
                let sd = (r.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n as f64).sqrt();
                let tol = 4.0 * sd / (n as f64).sqrt() + 2e-3;
                assert!(
                    (m - w).abs() < tol,
                    "{name}: weight {k} {m} vs {w} (tol {tol})"
                );
            }
            for i in 0..2 {
                let m = (0..n).map(|r| x[r * 2 + i]).sum::<f64>() / n as f64;
                let tol = 4.0 * (cov[i * 3] / n as f64).sqrt() + 2e-3;
                assert!((m - mu[i]).abs() < tol, "{name}: mean {i} {m} vs {}", mu[i]);
            }
            for (i, j) in [(0, 0), (0, 1), (1, 1)] {
                let p: Vec<f64> = (0..n)
                    .map(|r| (x[r * 2 + i] - mu[i]) * (x[r * 2 + j] - mu[j]))
                    .collect();
                let c = p.iter().sum::<f64>() / n as f64;
                let v = p.iter().map(|q| (q - c).powi(2)).sum::<f64>() / n as f64;
                let tol = 4.0 * (v / n as f64).sqrt() + 2e-3;
                assert!(
                    (c - cov[i * 2 + j]).abs() < tol,
                    "{name}: cov {i}{j} {c} vs {}",
                    cov[i * 2 + j]
                );
            }
        }
    }
}
