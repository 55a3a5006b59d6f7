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
#[derive(Debug, Clone)]
pub struct Guide {
    /// The class k to sample (a conditional network's label, or an exact mixture's component).
    pub class: Option<usize>,
    /// Classifier-free guidance scale G (diffusers' convention, 1 = conditional).
    pub guidance: f64,
    /// Classifier guidance scale γ (diffusers' convention: 1 = Bayes' rule, the exact
    /// conditional with the exact classifier, 0 = off): adds γ·∇ₓ log p(class | x_t, t) of
    /// [`Guide::classifier`], or of an exact model's own mixture classifier. With a classifier
    /// and no scale, γ = 1.
    pub classifier_scale: Option<f64>,
    /// A trained time-dependent classifier (a `--method classifier` run,
    /// [`super::ModelKind::Classifier`]) on the model's process and data units.
    pub classifier: Option<Arc<super::Model>>,
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
            classifier_scale: None,
            classifier: None,
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

    /// The classifier guidance scale in force: [`Guide::classifier_scale`], or 1 when a
    /// trained classifier is given without one.
    pub fn classifier_gamma(&self) -> Option<f64> {
        self.classifier_scale
            .or(self.classifier.as_ref().map(|_| 1.0))
    }

    /// Errors for a non-finite G or ζ < 0, a G ≠ 1 without a class, and a class outside
    /// 0..`classes` (`classes` = 0: the model is unconditional). With a trained classifier of K
    /// classes: a class is required and must be < K; an unconditional model takes G ∈ {0, 1}
    /// only (its one field), a conditional one must know the same K classes.
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
        if let Some(g) = self.classifier_scale {
            if !g.is_finite() {
                return Err(Error::InvalidInput(format!(
                    "--classifier-scale must be a finite number (got {g})"
                )));
            }
            if self.class.is_none() {
                return Err(Error::InvalidInput(
                    "--classifier-scale needs --class K (the class whose log-probability is followed)"
                        .into(),
                ));
            }
        }
        if let Some(c) = &self.classifier {
            if !c.kind.is_classifier() {
                return Err(Error::InvalidInput(format!(
                    "--classifier {}: a {}, not a classifier (train one with `scoreflow train --method classifier`)",
                    c.dir.as_ref().map_or(String::new(), |d| d.display().to_string()),
                    c.kind
                )));
            }
            let k = c.classifier_classes();
            let Some(class) = self.class else {
                return Err(Error::InvalidInput(
                    "--classifier needs --class K (the class whose log-probability is followed)"
                        .into(),
                ));
            };
            if classes == 0 && self.guidance != 1.0 && self.guidance != 0.0 {
                return Err(Error::InvalidInput(format!(
                    "--guidance {} mixes a --conditional model's fields; this model is unconditional, so --classifier-scale sets the strength",
                    self.guidance
                )));
            }
            if classes > 0 && classes != k {
                return Err(Error::InvalidInput(format!(
                    "the model knows {classes} classes but the classifier {k}"
                )));
            }
            if class >= k {
                return Err(Error::InvalidInput(format!(
                    "--class {class} is out of range: the classifier knows classes 0..{}",
                    k.saturating_sub(1)
                )));
            }
            return Ok(());
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
    use crate::data::{Dataset, Points};
    use crate::model::{Model, TrainMethod};
    use crate::tensor::rng;

    /// On an exact 8gaussians model, the unconditional field plus the exact classifier's
    /// gradient at γ = 1 (G = 0, γ = 1) is the exact class-k field (G = 1), to float precision
    /// (relative 1e-4 of f32 evaluation): for the VP score at τ ∈ {0.05, 0.3, 0.9} and for the
    /// straight-path velocity at t ∈ {0.2, 0.5, 0.9} (above the t_min clamp, where the flow's
    /// score factor is exact).
    #[test]
    fn exact_classifier_guidance_is_the_exact_conditional_field() {
        let x = Dataset::EightGaussians.sample(64, &mut rng(4));
        let x = Points::new(x.as_slice().iter().map(|v| v * 1.3).collect(), 2).unwrap();
        for (method, times) in [
            (TrainMethod::Dsm, [0.05, 0.3, 0.9]),
            (TrainMethod::Cfm, [0.2, 0.5, 0.9]),
        ] {
            let m = Model::exact_default(Dataset::EightGaussians, method).unwrap();
            for t in times {
                let cond = m.guided_field_at(&Guide::class(6, 1.0), &x, t).unwrap();
                let via_classifier = Guide {
                    classifier_scale: Some(1.0),
                    ..Guide::class(6, 0.0)
                };
                let cg = m.guided_field_at(&via_classifier, &x, t).unwrap();
                let scale = cond.as_slice().iter().fold(1.0f64, |a, v| a.max(v.abs()));
                for (a, b) in cond.as_slice().iter().zip(cg.as_slice()) {
                    assert!(
                        (a - b).abs() <= 1e-4 * scale,
                        "{method:?} t = {t}: conditional {a} vs classifier-guided {b}"
                    );
                }
            }
        }
    }

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
