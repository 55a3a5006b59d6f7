//! Sampling with a score field s(x, τ) ≈ ∇ log p_τ(x) in diffusion time: the reverse-time SDE
//! (Euler–Maruyama, reverse-diffusion and ancestral predictors, optionally followed by Langevin
//! correctors), and the probability-flow ODE with any [`odeint`] method.
//!
//! Every sampler is a small type behind [`Sampler`], with one signature: a score field, initial
//! points (usually prior draws, [`Sde::prior_sample`]) and a seeded generator in, points and the
//! number of score evaluations (NFE) out. Langevin samplers live in [`super::langevin`].
//!
//! **Time grid.** Reverse samplers take `steps` uniform steps τ₀ = T > τ₁ > … > τ_N = ε (ε =
//! `t_end`, default [`Sde::sampling_eps`]); a predictor moves τᵢ → τᵢ₊₁ evaluating the score at
//! τᵢ, as in `reference_dsm.py`'s `sample_em`.
//!
//! **Predictor → corrector order** (Song et al. 2021, Algorithm 1): at every step the predictor
//! first moves the samples from p_{τᵢ} to p_{τᵢ₊₁} by one discretised reverse-SDE step, then
//! the corrector runs M Langevin MCMC steps targeting p_{τᵢ₊₁} at the new time, correcting the
//! predictor's discretisation error. (score_sde's loop applies the corrector at τᵢ *before* the
//! predictor; that is the same chain with one extra correction at T and none at ε.)
//!
//! **Final step** ([`Denoise`]): score_sde returns the noise-free mean of the last update
//! (`Mean`, the default); `Tweedie` instead applies x̂₀ = (x + s(ε)²·s(x, ε))/m(ε) to the last
//! state (one more NFE).

use std::str::FromStr;
use std::sync::Arc;

use super::langevin::LangevinCorrector;
use super::ode::{odeint, OdeOptions};
use super::sampler::{check_dim, check_t_end, finish, time_grid};
pub use super::sampler::{Denoise, Sample, Sampler};
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::sde::{ReverseDrift, Sde};
use crate::tensor::{randn_like, Rng, Tensor};

/// A predictor: one discretised reverse-SDE step τ → τ' < τ with the score at τ. Each returns
/// (x', x'_mean), the mean being the update without its fresh noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Predictor {
    /// Euler–Maruyama, Δ = τ − τ': x' = x + (g² s − f)Δ + g√Δ z.
    EulerMaruyama,
    /// Reverse diffusion (Song et al. 2021, eq. 46) with the exact forward transition
    /// x_τ = r x_τ' + G w (r = m(τ)/m(τ'), G² = s(τ)² − r² s(τ')²):
    /// x' = x − (r − 1)x + G² s + G z.
    #[default]
    ReverseDiffusion,
    /// Ancestral sampling (DDPM / SMLD): x' = (x + G² s)/r + √(G² s(τ')²/s(τ)²) z; the mean is
    /// the exact E[x_τ' | x_τ] (Tweedie on the transition), the variance the posterior one
    /// given x₀ (DDPM's β̃; SMLD's choice; score_sde uses β for VP).
    Ancestral,
}

impl Predictor {
    /// Lower-case name: "euler-maruyama", "reverse-diffusion", "ancestral".
    pub fn name(self) -> &'static str {
        match self {
            Predictor::EulerMaruyama => "euler-maruyama",
            Predictor::ReverseDiffusion => "reverse-diffusion",
            Predictor::Ancestral => "ancestral",
        }
    }

    /// One step τ → τ_next of x with the score field (1 NFE): (x', x'_mean).
    pub fn step(
        self,
        sde: &dyn Sde,
        score: &dyn VectorField,
        x: &Tensor<2>,
        tau: f64,
        tau_next: f64,
        rng: &mut Rng,
    ) -> (Tensor<2>, Tensor<2>) {
        self.step_with(sde, score.eval_at(x, tau), x, tau, tau_next, rng)
    }

    /// (a, c, std): the step's mean is a·x + c·s(x, τ) and its noise N(0, std² I).
    /// Euler–Maruyama: (1 − a(τ)Δ, g²Δ, g√Δ); reverse diffusion: (2 − r, G², G); ancestral:
    /// (1/r, G²/r, G·s(τ')/s(τ)), with (r, G²) the exact transition τ' → τ.
    pub fn coefficients(self, sde: &dyn Sde, tau: f64, tau_next: f64) -> (f64, f64, f64) {
        match self {
            Predictor::EulerMaruyama => {
                let dt = tau - tau_next;
                let (a, g2) = (sde.drift_coef(tau), sde.diffusion(tau).powi(2));
                (1.0 - a * dt, g2 * dt, (g2 * dt).sqrt())
            }
            Predictor::ReverseDiffusion => {
                let (r, g2) = sde.transition(tau_next, tau);
                (2.0 - r, g2, g2.sqrt())
            }
            Predictor::Ancestral => {
                let (r, g2) = sde.transition(tau_next, tau);
                let (s_next, s_now) = (sde.mean_std(tau_next).1, sde.mean_std(tau).1);
                (
                    1.0 / r,
                    g2 / r,
                    (g2 * s_next * s_next / (s_now * s_now)).sqrt(),
                )
            }
        }
    }

    /// [`Predictor::step`] with the score s(x, τ) already evaluated (posterior samplers that
    /// get it together with an input gradient).
    pub fn step_with(
        self,
        sde: &dyn Sde,
        s: Tensor<2>,
        x: &Tensor<2>,
        tau: f64,
        tau_next: f64,
        rng: &mut Rng,
    ) -> (Tensor<2>, Tensor<2>) {
        let (a, c, std) = self.coefficients(sde, tau, tau_next);
        let mean = x.clone() * a + s * c;
        let noisy = mean.clone() + randn_like(x, rng) * std;
        (noisy, mean)
    }
}

impl FromStr for Predictor {
    type Err = Error;
    /// "euler-maruyama" (or "em"), "reverse-diffusion" (or "rd"), "ancestral".
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "euler-maruyama" | "em" => Ok(Predictor::EulerMaruyama),
            "reverse-diffusion" | "rd" => Ok(Predictor::ReverseDiffusion),
            "ancestral" => Ok(Predictor::Ancestral),
            other => Err(Error::InvalidInput(format!(
                "unknown predictor '{other}' (choose one of euler-maruyama, reverse-diffusion, ancestral)"
            ))),
        }
    }
}

/// Predictor–corrector sampling of the reverse SDE (Song et al. 2021): `steps` predictor steps
/// T → ε, each followed by the corrector's Langevin steps at the new time (if any). With
/// `Predictor::EulerMaruyama`, no corrector and `Denoise::Mean` this is `reference_dsm.py`'s
/// `sample_em`. NFE = steps·(1 + M) (+1 for Tweedie).
#[derive(Debug, Clone)]
pub struct PredictorCorrector {
    /// The forward SDE.
    pub sde: Arc<dyn Sde>,
    /// The predictor.
    pub predictor: Predictor,
    /// The corrector, or `None` for predictor-only sampling.
    pub corrector: Option<LangevinCorrector>,
    /// Number of predictor steps N.
    pub steps: usize,
    /// End time ε.
    pub t_end: f64,
    /// Final step.
    pub denoise: Denoise,
}

impl PredictorCorrector {
    /// Predictor-only sampling with `steps` steps to the SDE's sampling ε, returning the mean.
    pub fn new(sde: Arc<dyn Sde>, predictor: Predictor, steps: usize) -> Self {
        let t_end = sde.sampling_eps();
        Self {
            sde,
            predictor,
            corrector: None,
            steps,
            t_end,
            denoise: Denoise::Mean,
        }
    }

    /// Reverse-SDE Euler–Maruyama (`reference_dsm.py --sampler em`).
    pub fn euler_maruyama(sde: Arc<dyn Sde>, steps: usize) -> Self {
        Self::new(sde, Predictor::EulerMaruyama, steps)
    }

    /// Adds a Langevin corrector.
    pub fn with_corrector(mut self, corrector: LangevinCorrector) -> Self {
        self.corrector = Some(corrector);
        self
    }
}

impl Sampler for PredictorCorrector {
    fn name(&self) -> &'static str {
        match (self.corrector.is_some(), self.predictor) {
            (true, _) => "pc",
            (false, Predictor::EulerMaruyama) => "em",
            (false, Predictor::ReverseDiffusion) => "reverse-diffusion",
            (false, Predictor::Ancestral) => "ancestral",
        }
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        check_t_end(&*self.sde, self.t_end)?;
        if self.steps == 0 {
            return Err(Error::InvalidInput(
                "reverse-SDE sampler needs steps >= 1".into(),
            ));
        }
        if let Some(c) = &self.corrector {
            c.validate()?;
        }
        let sde = &*self.sde;
        let grid = time_grid(sde.t_max(), self.t_end, self.steps);
        let (mut x, mut x_mean) = (x.clone(), x);
        let mut nfe = 0;
        for w in grid.windows(2) {
            (x, x_mean) = self.predictor.step(sde, score, &x, w[0], w[1], rng);
            nfe += 1;
            if let Some(c) = &self.corrector {
                let alpha = sde.transition(w[1], w[0]).0.powi(2);
                (x, x_mean) = c.correct(score, &x, w[1], alpha, rng);
                nfe += c.steps;
            }
        }
        finish(
            self.name(),
            sde,
            score,
            self.denoise,
            self.t_end,
            (x, x_mean),
            nfe,
        )
    }
}

/// The probability-flow ODE dx/dτ = f − ½g²·s integrated T → ε with [`odeint`] (Dopri5,
/// rtol = atol = 1e-5 by default, as reference_dsm.py). Deterministic: the noise generator
/// is untouched. `Denoise::Mean` is the identity here; `Tweedie` adds one NFE.
#[derive(Debug, Clone)]
pub struct ProbabilityFlowSampler {
    /// The forward SDE.
    pub sde: Arc<dyn Sde>,
    /// ODE method and tolerances / steps.
    pub options: OdeOptions,
    /// End time ε.
    pub t_end: f64,
    /// Final step.
    pub denoise: Denoise,
}

impl ProbabilityFlowSampler {
    /// Dopri5 (rtol = atol = 1e-5) to the SDE's sampling ε, no denoising.
    pub fn new(sde: Arc<dyn Sde>) -> Self {
        let t_end = sde.sampling_eps();
        Self {
            sde,
            options: OdeOptions::default(),
            t_end,
            denoise: Denoise::None,
        }
    }

    /// Integrates the PF-ODE from τ = `from` to τ = `to` (either direction): `from = ε`,
    /// `to = T` encodes data into the prior; the reverse decodes. Returns the end points and NFE.
    pub fn integrate(
        &self,
        score: &dyn VectorField,
        x: Tensor<2>,
        from: f64,
        to: f64,
    ) -> Result<Sample> {
        check_dim(score, &x)?;
        let field = ReverseDrift::probability_flow(&*self.sde, score);
        let sol = odeint(&field, x, from, to, &self.options)?;
        Ok(Sample {
            x: sol.x,
            nfe: sol.nfe,
            accept_rate: None,
        })
    }
}

impl Sampler for ProbabilityFlowSampler {
    fn name(&self) -> &'static str {
        "ode"
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, _rng: &mut Rng) -> Result<Sample> {
        check_t_end(&*self.sde, self.t_end)?;
        let out = self.integrate(score, x, self.sde.t_max(), self.t_end)?;
        finish(
            "ode",
            &*self.sde,
            score,
            self.denoise,
            self.t_end,
            (out.x.clone(), out.x),
            out.nfe,
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::Points;
    use crate::field::analytic::{GaussianMixture, MixtureScore};
    use crate::sde::{SubVpSde, VeSde, VpSde};
    use crate::solve::langevin::AnnealedLangevin;
    use crate::tensor::{cpu, rng, to_vec, DType};

    /// Three well-separated modes (≥ 8 component std apart) with unequal weights and full
    /// covariances.
    pub(crate) fn three_modes() -> GaussianMixture {
        GaussianMixture::new(
            vec![0.5, 0.3, 0.2],
            vec![vec![-3.0, 0.0], vec![3.0, 0.0], vec![0.0, 3.5]],
            vec![
                vec![0.3, 0.1, 0.1, 0.2],
                vec![0.2, -0.08, -0.08, 0.25],
                vec![0.25, 0.0, 0.0, 0.15],
            ],
        )
        .unwrap()
    }

    /// Checks that `x` is a sample of `mix` of size n, each statistic within 4 standard errors:
    /// * per-mode weights (points assigned to their most responsible component): binomial SE
    ///   √(w(1 − w)/n);
    /// * overall mean: SE √(Σᵢᵢ/n); overall covariance entry (i, j): SE √(Var[(xᵢ−μᵢ)(xⱼ−μⱼ)]/n),
    ///   the fourth moment taken from 200,000 exact draws;
    /// * within-mode covariance (catches blur): SE √((Σᵢᵢ Σⱼⱼ + Σᵢⱼ²)/nₖ) of a normal sample.
    pub(crate) fn assert_reproduces(mix: &GaussianMixture, x: &Tensor<2>, label: &str) {
        let pts = Points::from_tensor(x);
        let n = pts.len() as f64;
        let k = mix.weights().len();
        let mut groups: Vec<Vec<&[f64]>> = vec![Vec::new(); k];
        for row in pts.rows() {
            let r = mix.responsibilities(row);
            let best = (0..k).max_by(|a, b| r[*a].total_cmp(&r[*b])).unwrap();
            groups[best].push(row);
        }
        for (j, g) in groups.iter().enumerate() {
            let w = mix.weights()[j];
            let se = (w * (1.0 - w) / n).sqrt();
            let got = g.len() as f64 / n;
            assert!(
                (got - w).abs() < 4.0 * se,
                "{label}: mode {j} weight {got:.4} vs {w} (SE {se:.4})"
            );
            let c = &mix.components()[j];
            let (mu, cov) = moments(g);
            let cs = c.cov();
            for (a, b) in [(0, 0), (0, 1), (1, 1)] {
                let se = ((cs[a * 2 + a] * cs[b * 2 + b] + cs[a * 2 + b].powi(2)) / g.len() as f64)
                    .sqrt();
                let want = cs[a * 2 + b];
                assert!(
                    (cov[a * 2 + b] - want).abs() < 4.0 * se,
                    "{label}: mode {j} cov[{a}{b}] {:.4} vs {want} (SE {se:.4})",
                    cov[a * 2 + b]
                );
            }
            let _ = mu;
        }
        let rows: Vec<&[f64]> = pts.rows().collect();
        let (mu, cov) = moments(&rows);
        let (mu_t, cov_t) = (mix.mean(), mix.covariance());
        let exact = mix.sample(200_000, &mut rng(999));
        for i in 0..2 {
            let se = (cov_t[i * 2 + i] / n).sqrt();
            assert!(
                (mu[i] - mu_t[i]).abs() < 4.0 * se,
                "{label}: mean[{i}] {:.4} vs {:.4} (SE {se:.4})",
                mu[i],
                mu_t[i]
            );
        }
        for (a, b) in [(0, 0), (0, 1), (1, 1)] {
            let p: Vec<f64> = exact
                .rows()
                .map(|r| (r[a] - mu_t[a]) * (r[b] - mu_t[b]))
                .collect();
            let m = p.iter().sum::<f64>() / p.len() as f64;
            let v = p.iter().map(|q| (q - m).powi(2)).sum::<f64>() / p.len() as f64;
            let se = (v / n).sqrt();
            let want = cov_t[a * 2 + b];
            assert!(
                (cov[a * 2 + b] - want).abs() < 4.0 * se,
                "{label}: cov[{a}{b}] {:.4} vs {want:.4} (SE {se:.4})",
                cov[a * 2 + b]
            );
        }
    }

    fn moments(rows: &[&[f64]]) -> (Vec<f64>, Vec<f64>) {
        let n = rows.len() as f64;
        let mut mu = [0.0; 2];
        for r in rows {
            mu[0] += r[0] / n;
            mu[1] += r[1] / n;
        }
        let mut cov = vec![0.0; 4];
        for r in rows {
            for a in 0..2 {
                for b in 0..2 {
                    cov[a * 2 + b] += (r[a] - mu[a]) * (r[b] - mu[b]) / (n - 1.0);
                }
            }
        }
        (mu.to_vec(), cov)
    }

    const N: usize = 4000;

    fn run(sampler: &dyn Sampler, sde: Arc<dyn Sde>, seed: u64) -> Sample {
        let score = MixtureScore::new(three_modes(), sde.clone());
        let mut r = rng(seed);
        let x = sde.prior_sample(N, 2, &cpu(), DType::F64, &mut r);
        sampler.sample(&score, x, &mut r).unwrap()
    }

    /// Reverse-SDE Euler–Maruyama (reference_dsm.py's sample_em, 1000 steps to 1e-3) with the
    /// exact perturbed-mixture score reproduces the mixture under VP; 300 steps under sub-VP.
    #[test]
    fn euler_maruyama_reproduces_the_mixture() {
        for (sde, steps) in [
            (Arc::new(VpSde::default()) as Arc<dyn Sde>, 1000),
            (Arc::new(SubVpSde::default()), 300),
        ] {
            let em = PredictorCorrector::euler_maruyama(sde.clone(), steps);
            let out = run(&em, sde.clone(), 1);
            assert_eq!(out.nfe, steps);
            assert_reproduces(&three_modes(), &out.x, &format!("em/{}", sde.name()));
        }
    }

    /// Reverse-diffusion and ancestral predictors (250 steps, VP and VE), each reproduce it.
    #[test]
    fn reverse_diffusion_and_ancestral_reproduce_the_mixture() {
        for sde in [
            Arc::new(VpSde::default()) as Arc<dyn Sde>,
            Arc::new(VeSde::default()),
        ] {
            for p in [Predictor::ReverseDiffusion, Predictor::Ancestral] {
                let s = PredictorCorrector::new(sde.clone(), p, 250);
                let out = run(&s, sde.clone(), 2);
                assert_reproduces(
                    &three_modes(),
                    &out.x,
                    &format!("{}/{}", p.name(), sde.name()),
                );
            }
        }
    }

    /// Predictor–corrector (reverse diffusion + 1 Langevin step at snr 0.05, 250 steps, VP;
    /// NFE = 500) and the same with a final Tweedie step (NFE 501).
    #[test]
    fn predictor_corrector_reproduces_the_mixture() {
        let sde: Arc<dyn Sde> = Arc::new(VpSde::default());
        let mut pc = PredictorCorrector::new(sde.clone(), Predictor::ReverseDiffusion, 250)
            .with_corrector(LangevinCorrector::default());
        let out = run(&pc, sde.clone(), 3);
        assert_eq!(out.nfe, 500);
        assert_reproduces(&three_modes(), &out.x, "pc");
        pc.denoise = Denoise::Tweedie;
        let out = run(&pc, sde.clone(), 4);
        assert_eq!(out.nfe, 501);
        assert_reproduces(&three_modes(), &out.x, "pc+tweedie");
    }

    /// The probability-flow ODE (Dopri5, 1e-5) from the prior reproduces the mixture; and maps
    /// data → prior → data: with rtol = atol = 1e-7 the round trip returns every point to
    /// within 1e-4 (global error ≈ tolerance × the ODE's error growth), and the encoded points
    /// have the prior's moments (mean 0, variance s(T)² + m(T)² Σᵢᵢ ≈ 1 within 4 SE).
    #[test]
    fn probability_flow_reproduces_and_round_trips() {
        let sde: Arc<dyn Sde> = Arc::new(VpSde::default());
        let ode = ProbabilityFlowSampler::new(sde.clone());
        let out = run(&ode, sde.clone(), 5);
        assert!(out.nfe > 20 && out.nfe < 1000, "nfe {}", out.nfe);
        assert_reproduces(&three_modes(), &out.x, "ode");

        let score = MixtureScore::new(three_modes(), sde.clone());
        let mut tight = ProbabilityFlowSampler::new(sde.clone());
        tight.options = OdeOptions::dopri5(1e-7, 1e-7);
        let n = 1000;
        let data = three_modes()
            .sample(n, &mut rng(6))
            .to_tensor(&cpu(), DType::F64);
        let eps = sde.sampling_eps();
        let z = tight.integrate(&score, data.clone(), eps, 1.0).unwrap();
        let back = tight.integrate(&score, z.x.clone(), 1.0, eps).unwrap();
        let err = to_vec(&(back.x - data))
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-4, "round-trip error {err}");
        let zs = to_vec(&z.x);
        let (m, s) = sde.mean_std(1.0);
        let cov = three_modes().covariance();
        for i in 0..2 {
            let col: Vec<f64> = zs.iter().skip(i).step_by(2).cloned().collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let want = s * s + m * m * cov[i * 2 + i];
            assert!(
                mean.abs() < 4.0 * (want / n as f64).sqrt(),
                "encoded mean {mean}"
            );
            assert!(
                (var - want).abs() < 4.0 * want * (2.0 / n as f64).sqrt(),
                "encoded var {var} vs {want}"
            );
        }
    }

    /// Annealed Langevin (NCSN) on the VE ladder σ: 10 → 0.01, 20 levels × 50 steps, ρ = 0.1.
    #[test]
    fn annealed_langevin_reproduces_the_mixture() {
        let sde: Arc<dyn Sde> = Arc::new(VeSde::default());
        let ald = AnnealedLangevin::new(sde.clone(), 20, 50, 0.1).unwrap();
        let lad = ald.ladder();
        assert!((lad[0].1 - 10.0).abs() < 1e-9 && (lad[19].1 - sde.mean_std(1e-5).1).abs() < 1e-12);
        for w in lad.windows(2) {
            assert!(
                (w[1].1 / w[0].1 - lad[1].1 / lad[0].1).abs() < 1e-9,
                "ladder is not geometric"
            );
            assert!((sde.mean_std(w[1].0).1 - w[1].1).abs() < 1e-9 * w[1].1);
        }
        let out = run(&ald, sde.clone(), 7);
        assert_eq!(out.nfe, 1000);
        assert_reproduces(&three_modes(), &out.x, "ald");
    }

    /// Dimension mismatch is an error, not a panic; names parse.
    #[test]
    fn bad_inputs_are_errors() {
        let sde: Arc<dyn Sde> = Arc::new(VpSde::default());
        let score = MixtureScore::new(three_modes(), sde.clone());
        let x = sde.prior_sample(3, 3, &cpu(), DType::F64, &mut rng(0));
        let em = PredictorCorrector::euler_maruyama(sde.clone(), 10);
        assert!(em.sample(&score, x, &mut rng(0)).is_err());
        assert_eq!("tweedie".parse::<Denoise>().unwrap(), Denoise::Tweedie);
        assert_eq!(
            "rd".parse::<Predictor>().unwrap(),
            Predictor::ReverseDiffusion
        );
    }
}
