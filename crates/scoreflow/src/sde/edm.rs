//! The EDM SDE of Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based
//! Generative Models": x_σ = y + σ n, with diffusion time equal to the noise level itself,
//! σ(τ) = τ, s(τ) = 1 (no scaling). As an SDE: dx = √(2τ) dw, τ ∈ [σ_min, σ_max].

use super::Sde;
use crate::error::{Error, Result};
use crate::path::PerturbationKernel;

/// EDM's variance-exploding SDE: m(τ) = 1, s(τ) = τ, f = 0, g(τ) = √(dτ²/dτ) = √(2τ); prior
/// N(0, σ_max² I); T = σ_max.
///
/// The ODE dx/dτ = −τ·∇log p_τ(x) = (x − D(x; τ))/τ is Karras et al.'s eq. 3 with σ(t) = t,
/// the schedule their samplers (Euler, Heun on the ρ-grid) integrate.
#[derive(Debug, Clone, PartialEq)]
pub struct EdmSde {
    /// σ_min: the training floor and the default end of sampling (0.002).
    pub sigma_min: f64,
    /// σ_max = T: where sampling starts (80).
    pub sigma_max: f64,
}

impl Default for EdmSde {
    /// EDM's σ_min = 0.002, σ_max = 80.
    fn default() -> Self {
        Self {
            sigma_min: Self::DEFAULT_SIGMA_MIN,
            sigma_max: Self::DEFAULT_SIGMA_MAX,
        }
    }
}

impl EdmSde {
    /// EDM's σ_min.
    pub const DEFAULT_SIGMA_MIN: f64 = 0.002;
    /// EDM's σ_max.
    pub const DEFAULT_SIGMA_MAX: f64 = 80.0;

    /// An EDM SDE; errors unless 0 < σ_min < σ_max < ∞.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "EDM SDE needs 0 < sigma_min < sigma_max (got {sigma_min}, {sigma_max})"
            )));
        }
        Ok(Self {
            sigma_min,
            sigma_max,
        })
    }
}

impl PerturbationKernel for EdmSde {
    /// (1, τ).
    fn mean_std(&self, tau: f64) -> (f64, f64) {
        (1.0, tau)
    }
}

impl Sde for EdmSde {
    fn name(&self) -> &'static str {
        "edm"
    }
    /// T = σ_max.
    fn t_max(&self) -> f64 {
        self.sigma_max
    }
    fn t_min(&self) -> f64 {
        self.sigma_min
    }
    fn sampling_eps(&self) -> f64 {
        self.sigma_min
    }
    fn drift_coef(&self, _tau: f64) -> f64 {
        0.0
    }
    /// g(τ) = √(2τ).
    fn diffusion(&self, tau: f64) -> f64 {
        (2.0 * tau).sqrt()
    }
    fn prior_std(&self) -> f64 {
        self.sigma_max
    }
}
