//! Karras et al. (2022), Algorithm 2: Euler or Heun steps of the ODE dx̃/dσ̃ = (x̃ − D(x̃; σ̃))/σ̃
//! on a σ̃ grid (ρ = 7 by default), with optional "churn", in the coordinates x̃ = x/α,
//! σ̃ = σ/α of any schedule (for VP this is diffusers' `EulerDiscreteScheduler` /
//! `HeunDiscreteScheduler`; for EDM's SDE α = 1).
//!
//! Step i, σ̃ᵢ → σ̃ᵢ₊₁:
//! * churn: γᵢ = min(S_churn/N, √2 − 1) if S_tmin ≤ σ̃ᵢ ≤ S_tmax else 0; σ̂ = σ̃ᵢ(1 + γᵢ)
//!   (capped at the schedule's σ̃ at t_noise: the field is not defined above it);
//!   x̂ = x̃ + √(σ̂² − σ̃ᵢ²)·S_noise·z;
//! * Euler: d = (x̂ − D(x̂; σ̂))/σ̂, x̃ᵢ₊₁ = x̂ + (σ̃ᵢ₊₁ − σ̂)·d;
//! * Heun (when σ̃ᵢ₊₁ > 0): d' = (x̃ᵢ₊₁ − D(x̃ᵢ₊₁; σ̃ᵢ₊₁))/σ̃ᵢ₊₁,
//!   x̃ᵢ₊₁ = x̂ + (σ̃ᵢ₊₁ − σ̂)·(d + d')/2.
//!
//! NFE: Euler N; Heun 2N, or 2N − 1 when the last step lands on σ = 0 (an Euler step there).
//! S_churn = 0 is the deterministic sampler (order 1 / 2).

use std::sync::Arc;

use super::denoiser::Denoiser;
use super::{check_dim, finish};
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::schedule::{Grid, Level, NoiseSchedule, TimestepFamily};
use crate::solve::sampler::{Sample, Sampler};
use crate::tensor::{randn_like, Rng, Tensor};

/// EDM's stochasticity ("churn") parameters (Karras et al. 2022, Algorithm 2).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Churn {
    /// S_churn ≥ 0: total added noise; 0 is deterministic.
    pub s_churn: f64,
    /// S_tmin: churn only where σ̃ ≥ S_tmin.
    #[serde(default)]
    pub s_tmin: f64,
    /// S_tmax: churn only where σ̃ ≤ S_tmax; `None` = ∞.
    #[serde(default)]
    pub s_tmax: Option<f64>,
    /// S_noise: scale of the fresh noise (1; EDM's ImageNet setting 1.003).
    #[serde(default = "one")]
    pub s_noise: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for Churn {
    /// No churn: S_churn = 0, S_tmin = 0, S_tmax = ∞, S_noise = 1.
    fn default() -> Self {
        Self {
            s_churn: 0.0,
            s_tmin: 0.0,
            s_tmax: None,
            s_noise: 1.0,
        }
    }
}

impl Churn {
    /// Errors unless S_churn ≥ 0, S_noise ≥ 0 and S_tmin ≤ S_tmax.
    pub fn validate(&self) -> Result<()> {
        let tmax = self.s_tmax.unwrap_or(f64::INFINITY);
        if self.s_churn >= 0.0 && self.s_noise >= 0.0 && self.s_tmin >= 0.0 && self.s_tmin <= tmax {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "churn needs S_churn >= 0, S_noise >= 0 and 0 <= S_tmin <= S_tmax (got {:?})",
                self
            )))
        }
    }

    /// γᵢ of a level σ̃ on an N-step grid.
    pub fn gamma(&self, sigma_ve: f64, steps: usize) -> f64 {
        let tmax = self.s_tmax.unwrap_or(f64::INFINITY);
        if self.s_churn > 0.0 && self.s_tmin <= sigma_ve && sigma_ve <= tmax {
            (self.s_churn / steps as f64).min(std::f64::consts::SQRT_2 - 1.0)
        } else {
            0.0
        }
    }
}

/// Euler or Heun on the σ̃ grid, with churn.
#[derive(Debug, Clone)]
pub struct EdmSampler {
    /// The noise schedule (and the field's time axis).
    pub schedule: Arc<dyn NoiseSchedule>,
    /// The time-step grid (Karras ρ = 7 by default).
    pub grid: Grid,
    /// Heun's second-order correction (else Euler).
    pub heun: bool,
    /// Churn (none by default).
    pub churn: Churn,
}

impl Sampler for EdmSampler {
    fn name(&self) -> &'static str {
        if self.heun {
            "edm-heun"
        } else {
            "edm-euler"
        }
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        self.churn.validate()?;
        let sched = &*self.schedule;
        let levels = self.grid.levels(sched, TimestepFamily::Euler)?;
        let n = levels.len() - 1;
        let smax = Level::at(sched, sched.t_noise()).sigma_ve();
        let den = Denoiser::new(score, &*self.schedule);
        let mut xt = x / levels[0].alpha;
        for w in levels.windows(2) {
            let (s, t) = (&w[0], &w[1]);
            let gamma = self.churn.gamma(s.sigma_ve(), n);
            let hat = if gamma > 0.0 && s.sigma_ve() < smax {
                let target = (s.sigma_ve() * (1.0 + gamma)).min(smax);
                let hat = Level::at_lambda(sched, -target.ln());
                let add = (hat.sigma_ve().powi(2) - s.sigma_ve().powi(2))
                    .max(0.0)
                    .sqrt();
                xt = xt.clone() + randn_like(&xt, rng) * (add * self.churn.s_noise);
                hat
            } else {
                *s
            };
            let d = (xt.clone() - den.at(&(xt.clone() * hat.alpha), &hat).x0) / hat.sigma_ve();
            let dt = t.sigma_ve() - hat.sigma_ve();
            let euler = xt.clone() + d.clone() * dt;
            xt = if self.heun && !t.is_clean() {
                let d2 = (euler.clone() - den.at(&(euler * t.alpha), t).x0) / t.sigma_ve();
                xt + (d + d2) * (0.5 * dt)
            } else {
                euler
            };
        }
        let last = levels[n];
        finish(self.name(), &den, &self.grid, &levels, xt * last.alpha)
    }
}
