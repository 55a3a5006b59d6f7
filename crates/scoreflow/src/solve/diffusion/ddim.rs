//! DDIM (Song, Meng & Ermon 2021, eq. 12), for any schedule: from level s to t,
//!
//! x_t = α_t·x̂₀ + √(σ_t² − c²)·ε̂ + c·z,  c = η·σ_t·√(1 − e^{−2(λ_t − λ_s)}),
//!
//! with x̂₀, ε̂ the denoiser's predictions at x_s. c is η times the standard deviation of the
//! DDPM posterior q(x_t | x_s, x₀) (for VP: η·√((1 − ᾱ_t)/(1 − ᾱ_s))·√(1 − ᾱ_s/ᾱ_t), diffusers'
//! `_get_variance`). η = 0 is the deterministic DDIM, the first-order solver of the
//! probability-flow ODE (= DPM-Solver-1); η = 1 is DDPM's ancestral sampler. Landing on the
//! clean level returns x̂₀. One field evaluation per step.
//!
//! diffusers' `DDIMScheduler` steps from timestep t to t − T//N whatever the spacing; with its
//! default `leading` spacing that is the next grid level, as here (with `trailing` or
//! `linspace` we step to the next grid level, diffusers does not).

use std::sync::Arc;

use super::denoiser::Denoiser;
use super::{check_dim, finish};
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::schedule::{Grid, NoiseSchedule, TimestepFamily};
use crate::solve::sampler::{Sample, Sampler};
use crate::tensor::{randn_like, Rng, Tensor};

/// The DDIM sampler with stochasticity η ≥ 0 on a [`Grid`].
#[derive(Debug, Clone)]
pub struct Ddim {
    /// The noise schedule (and the field's time axis).
    pub schedule: Arc<dyn NoiseSchedule>,
    /// The time-step grid.
    pub grid: Grid,
    /// η: 0 deterministic, 1 DDPM-like.
    pub eta: f64,
}

impl Sampler for Ddim {
    fn name(&self) -> &'static str {
        "ddim"
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        if !(self.eta >= 0.0 && self.eta.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "DDIM η must be >= 0, got {}",
                self.eta
            )));
        }
        let levels = self.grid.levels(&*self.schedule, TimestepFamily::Ddim)?;
        let den = Denoiser::new(score, &*self.schedule);
        let mut x = x;
        for w in levels.windows(2) {
            let (s, t) = (&w[0], &w[1]);
            let d = den.at(&x, s);
            if t.is_clean() {
                x = d.x0 * t.alpha;
                continue;
            }
            let c = self.eta * t.sigma * (-(-2.0 * (t.lambda() - s.lambda())).exp_m1()).sqrt();
            let dir = (t.sigma * t.sigma - c * c).max(0.0).sqrt();
            x = d.x0 * t.alpha + d.eps * dir;
            if c > 0.0 {
                x = x.clone() + randn_like(&x, rng) * c;
            }
        }
        finish("ddim", &den, &self.grid, &levels, x)
    }
}
