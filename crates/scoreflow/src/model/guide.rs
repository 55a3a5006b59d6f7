//! Sampling p(x | y) from a model instead of p(x) (Bayes in score form, notes §8: posterior
//! score = prior score + likelihood score): a [`Guide`] names the condition — a class with a
//! classifier-free guidance scale, or an observation y = A x + σ_y ε with a posterior method —
//! and [`crate::model::Model::guided_field`] / [`crate::model::Model::sample_guided_each`]
//! build the field and run the sampler.
//!
//! **Guidance convention (diffusers').** ũ = u + G·(c − u) on the network's own output (score,
//! ε or velocity: the combinations are affine, so they commute with the conversions): G = 1 is
//! plain conditional sampling (one evaluation), G = 0 unconditional, G > 1 guided; Ho &
//! Salimans' w is G − 1 ([`crate::guidance`]).
//!
//! **Units.** An observation is given in data units; a model samples in its standardised units
//! z = (x − μ)/σ, so the observation is rewritten there exactly
//! ([`crate::inverse::Observation::standardized`]).
//!
//! **Flow models near t = 0.** Likelihood terms are scores; a velocity takes them through the
//! path's score factor b(t) (u = a x + b s), which blows up as σ(t) → 1 at t = 0. It is clamped
//! at t_min = [`crate::guidance::flow::DEFAULT_T_MIN`] (the factor is held at b(t_min) below
//! it), where the noise dominates the likelihood anyway.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inverse::Observation;

/// How a posterior is sampled from a prior model and an observation (`--posterior`; see
/// [`crate::inverse`] for each method's formula and cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PosteriorMethod {
    /// Π-GDM: score + J_x̂₀ᵀAᵀ(σ_y²I + r_t²AAᵀ)⁻¹(y − A x̂₀); any sampler, any model (NFE 2).
    #[default]
    Pigdm,
    /// TMPD: as Π-GDM with Tweedie's covariance (s²/m)∂x̂₀/∂x (NFE 2 + 2 d_y).
    Tmpd,
    /// Prior + likelihood score of x_t/m as a noisy x₀ (Jalal et al.; NFE 1).
    Noisy,
    /// DPS (Chung et al. 2023): ancestral steps − ζ∇‖y − A x̂₀‖; score models (NFE 2 per step).
    Dps,
    /// score_sde's replacement: observed coordinates overwritten by m·y + s·z; score models and
    /// mask observations.
    Replacement,
}

impl PosteriorMethod {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PosteriorMethod::Pigdm => "pigdm",
            PosteriorMethod::Tmpd => "tmpd",
            PosteriorMethod::Noisy => "noisy",
            PosteriorMethod::Dps => "dps",
            PosteriorMethod::Replacement => "replacement",
        }
    }

    /// True for methods that are their own sampler (DPS, replacement) rather than a field
    /// any sampler follows.
    pub fn is_sampler(self) -> bool {
        matches!(self, PosteriorMethod::Dps | PosteriorMethod::Replacement)
    }
}

/// DPS's default step size ζ on ‖y − A x̂₀‖ (Chung et al. use ζ ∈ [0.1, 1]).
pub const DPS_ZETA: f64 = 1.0;

/// What a sampling job is conditioned on (see the module documentation). The default is no
/// condition: the model's own p(x).
#[derive(Debug, Clone, PartialEq)]
pub struct Guide {
    /// The class k to sample (a conditional network's label, or an exact mixture's component).
    pub class: Option<usize>,
    /// Classifier-free guidance scale G (diffusers' convention, 1 = conditional).
    pub guidance: f64,
    /// The observation y = A x + σ_y ε, in data units.
    pub observation: Option<Arc<Observation>>,
    /// How the posterior given the observation is sampled.
    pub posterior: PosteriorMethod,
    /// DPS's step size ζ.
    pub zeta: f64,
}

impl Default for Guide {
    /// No class, G = 1, no observation; Π-GDM and ζ = [`DPS_ZETA`] should one be given.
    fn default() -> Self {
        Self {
            class: None,
            guidance: 1.0,
            observation: None,
            posterior: PosteriorMethod::default(),
            zeta: DPS_ZETA,
        }
    }
}

impl Guide {
    /// Class k at guidance scale G.
    pub fn class(class: usize, guidance: f64) -> Self {
        Self {
            class: Some(class),
            guidance,
            ..Self::default()
        }
    }

    /// The posterior given `observation` by `method`.
    pub fn observe(observation: Observation, method: PosteriorMethod) -> Self {
        Self {
            observation: Some(Arc::new(observation)),
            posterior: method,
            ..Self::default()
        }
    }

    /// True when nothing is conditioned on.
    pub fn is_none(&self) -> bool {
        self.class.is_none() && self.observation.is_none()
    }

    /// Errors for a non-finite G or ζ < 0, a G ≠ 1 without a class, and a class outside
    /// 0..`classes` (`classes` = 0: the model is unconditional).
    pub fn validate(&self, classes: usize) -> Result<()> {
        if !self.guidance.is_finite() {
            return Err(Error::InvalidInput(format!(
                "--guidance must be a finite number (got {})",
                self.guidance
            )));
        }
        if !(self.zeta.is_finite() && self.zeta >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "the DPS step size must be finite and >= 0 (got {})",
                self.zeta
            )));
        }
        match self.class {
            None if self.guidance != 1.0 => Err(Error::InvalidInput(format!(
                "--guidance {} needs --class K (guidance mixes the class-conditional and unconditional fields)",
                self.guidance
            ))),
            Some(k) if classes == 0 => Err(Error::InvalidInput(format!(
                "--class {k}: this model is unconditional (train with --conditional to sample by class)"
            ))),
            Some(k) if k >= classes => Err(Error::InvalidInput(format!(
                "--class {k} is out of range: the model knows classes 0..{}",
                classes - 1
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default guide conditions on nothing; classes and scales are checked against the
    /// model's classes with one-line messages.
    #[test]
    fn guides_validate_against_the_model() {
        assert!(Guide::default().is_none());
        assert!(Guide::default().validate(0).is_ok());
        assert!(Guide::class(3, 2.0).validate(8).is_ok());
        for (g, classes, what) in [
            (Guide::class(8, 1.0), 8, "out of range"),
            (Guide::class(0, 1.0), 0, "unconditional"),
            (
                Guide {
                    guidance: 3.0,
                    ..Guide::default()
                },
                8,
                "needs --class",
            ),
            (Guide::class(1, f64::NAN), 8, "finite"),
        ] {
            let e = g.validate(classes).unwrap_err().to_string();
            assert!(e.contains(what) && !e.contains('\n'), "{e}");
        }
    }
}
