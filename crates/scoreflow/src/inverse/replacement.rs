//! Replacement (score_sde's `get_pc_inpainter`; the "replacement" baseline of Song et al. 2021
//! and Chung et al. 2022) for mask observations: run the reverse SDE, and after every predictor
//! and corrector update overwrite the observed coordinates with a draw of the forward marginal
//! of the observed values, x_obs ← m(τ)·y + s(τ)·z. Only the prior score is used (NFE 1 per
//! update). The observed values are taken as exact (σ_y is ignored), and the method is exact
//! only when the observed and unobserved coordinates are independent under the prior; it is the
//! classic baseline the likelihood-based samplers improve on. The final points carry y exactly
//! in the observed coordinates.

use std::sync::Arc;

use super::Observation;
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::sde::Sde;
use crate::solve::sampler::{check_dim, check_t_end, finish, time_grid, Denoise, Sample, Sampler};
use crate::solve::{LangevinCorrector, Predictor};
use crate::tensor::{matrix_like, randn_like, to_vec, Rng, Tensor};

/// Replacement sampling for a mask observation (see the module documentation).
#[derive(Debug, Clone)]
pub struct Replacement {
    /// The forward SDE.
    pub sde: Arc<dyn Sde>,
    /// The mask observation.
    pub obs: Arc<Observation>,
    /// The predictor.
    pub predictor: Predictor,
    /// An optional Langevin corrector (score_sde's inpainter runs one).
    pub corrector: Option<LangevinCorrector>,
    /// Predictor steps N.
    pub steps: usize,
    /// End time ε.
    pub t_end: f64,
    /// Final step.
    pub denoise: Denoise,
}

impl Replacement {
    /// Reverse-diffusion replacement with `steps` steps; an error unless the observation is a
    /// mask.
    pub fn new(sde: Arc<dyn Sde>, obs: Arc<Observation>, steps: usize) -> Result<Self> {
        if obs.mask().is_none() {
            return Err(Error::InvalidInput(
                "replacement needs a mask observation ('mask' and 'values'), not a general A"
                    .into(),
            ));
        }
        let t_end = sde.sampling_eps();
        Ok(Self {
            sde,
            obs,
            predictor: Predictor::ReverseDiffusion,
            corrector: None,
            steps,
            t_end,
            denoise: Denoise::Mean,
        })
    }

    /// x with the observed coordinates set to m·y + s·z (z fresh from `rng` when s > 0).
    fn replace(&self, x: &Tensor<2>, m: f64, s: f64, rng: &mut Rng) -> Tensor<2> {
        let [n, d] = x.dims();
        let mask = self.obs.mask().expect("checked in new");
        let noise = if s > 0.0 {
            to_vec(&randn_like(x, rng))
        } else {
            vec![0.0; n * d]
        };
        let mut v = to_vec(x);
        for r in 0..n {
            for (&i, &y) in mask.iter().zip(self.obs.values()) {
                v[r * d + i] = m * y + s * noise[r * d + i];
            }
        }
        matrix_like(v, n, d, x)
    }
}

impl Sampler for Replacement {
    fn name(&self) -> &'static str {
        "replacement"
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        self.obs.check_dim(score.dim())?;
        check_t_end(&*self.sde, self.t_end)?;
        if self.steps == 0 {
            return Err(Error::InvalidInput("replacement needs steps >= 1".into()));
        }
        if let Some(c) = &self.corrector {
            c.validate()?;
        }
        let sde = &*self.sde;
        let grid = time_grid(sde.t_max(), self.t_end, self.steps);
        let (m0, s0) = sde.mean_std(grid[0]);
        let mut x = self.replace(&x, m0, s0, rng);
        let mut x_mean = x.clone();
        let mut nfe = 0;
        for w in grid.windows(2) {
            let (m, s) = sde.mean_std(w[1]);
            let (xn, mn) = self.predictor.step(sde, score, &x, w[0], w[1], rng);
            nfe += 1;
            x = self.replace(&xn, m, s, rng);
            x_mean = self.replace(&mn, m, 0.0, rng);
            if let Some(c) = &self.corrector {
                let alpha = sde.transition(w[1], w[0]).0.powi(2);
                let (xc, mc) = c.correct(score, &x, w[1], alpha, rng);
                nfe += c.steps;
                x = self.replace(&xc, m, s, rng);
                x_mean = self.replace(&mc, m, 0.0, rng);
            }
        }
        let out = finish(
            self.name(),
            sde,
            score,
            self.denoise,
            self.t_end,
            (x, x_mean),
            nfe,
        )?;
        Ok(Sample {
            x: self.replace(&out.x, 1.0, 0.0, rng),
            ..out
        })
    }
}
