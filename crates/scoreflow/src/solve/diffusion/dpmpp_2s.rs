//! Singlestep DPM-Solver++(2S) (Lu et al. 2022b, Algorithm 1 with r = ½), optionally ancestral
//! (η > 0: k-diffusion's `sample_dpmpp_2s_ancestral`), in Karras et al.'s coordinates
//! x̃ = x/α, σ̃ = σ/α = e^{−λ}, D = x̂₀:
//!
//! from σ̃_s towards σ̃_t, with the ancestral split σ_up = min(σ̃_t, η·√(σ̃_t²(σ̃_s² − σ̃_t²)/σ̃_s²)),
//! σ_down = √(σ̃_t² − σ_up²), h = ln(σ̃_s/σ_down), the midpoint level λ_m = λ_s + h/2:
//! * u = (σ̃_m/σ̃_s)·x̃ + (1 − σ̃_m/σ̃_s)·D(x̃, σ̃_s)   (a DDIM step to the midpoint),
//! * x̃' = (σ_down/σ̃_s)·x̃ + (1 − σ_down/σ̃_s)·D(u, σ̃_m),
//! * x̃' += σ_up·z (when σ̃_t > 0).
//!
//! Two field evaluations per step; a step to σ = 0 is the Euler step x̃' = D(x̃, σ̃_s) (one
//! evaluation), as k-diffusion. Second order in h for η = 0.

use std::sync::Arc;

use super::denoiser::Denoiser;
use super::{check_dim, finish};
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::schedule::{Grid, Level, NoiseSchedule, TimestepFamily};
use crate::solve::sampler::{Sample, Sampler};
use crate::tensor::{randn_like, Rng, Tensor};

/// DPM-Solver++(2S), deterministic (η = 0) or ancestral (η > 0).
#[derive(Debug, Clone)]
pub struct DpmSolverPp2s {
    /// The noise schedule (and the field's time axis).
    pub schedule: Arc<dyn NoiseSchedule>,
    /// The time-step grid.
    pub grid: Grid,
    /// η: 0 deterministic, 1 k-diffusion's ancestral default.
    pub eta: f64,
    /// Scale of the fresh noise (k-diffusion's `s_noise`, 1).
    pub s_noise: f64,
}

/// k-diffusion's `get_ancestral_step`: (σ_down, σ_up) for a step σ_from → σ_to with
/// stochasticity η.
pub(crate) fn ancestral_step(sigma_from: f64, sigma_to: f64, eta: f64) -> (f64, f64) {
    if eta == 0.0 {
        return (sigma_to, 0.0);
    }
    let up = (eta
        * (sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to)
            / (sigma_from * sigma_from))
            .max(0.0)
            .sqrt())
    .min(sigma_to);
    ((sigma_to * sigma_to - up * up).max(0.0).sqrt(), up)
}

impl Sampler for DpmSolverPp2s {
    fn name(&self) -> &'static str {
        "dpmpp-2s"
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        if !(self.eta >= 0.0 && self.eta.is_finite() && self.s_noise >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "DPM-Solver++(2S) needs η >= 0 and s_noise >= 0 (got {}, {})",
                self.eta, self.s_noise
            )));
        }
        let sched = &*self.schedule;
        let levels = self.grid.levels(sched, TimestepFamily::Euler)?;
        let den = Denoiser::new(score, &*self.schedule);
        let mut xt = x / levels[0].alpha;
        for w in levels.windows(2) {
            let (s, t) = (&w[0], &w[1]);
            let d = den.at(&(xt.clone() * s.alpha), s).x0;
            let (down, up) = ancestral_step(s.sigma_ve(), t.sigma_ve(), self.eta);
            if down == 0.0 {
                xt = d;
            } else {
                let h = (s.sigma_ve() / down).ln();
                let mid = Level::at_lambda(sched, s.lambda() + 0.5 * h);
                let rm = mid.sigma_ve() / s.sigma_ve();
                let u = xt.clone() * rm + d * (1.0 - rm);
                let d2 = den.at(&(u * mid.alpha), &mid).x0;
                let rd = down / s.sigma_ve();
                xt = xt * rd + d2 * (1.0 - rd);
            }
            if up > 0.0 && !t.is_clean() {
                xt = xt.clone() + randn_like(&xt, rng) * (up * self.s_noise);
            }
        }
        let last = levels[levels.len() - 1];
        finish(self.name(), &den, &self.grid, &levels, xt * last.alpha)
    }
}
