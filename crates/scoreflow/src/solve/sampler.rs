//! The one signature every sampler shares ([`Sampler`]: a field, start points and a seeded
//! generator in; points and the number of field evaluations out), the final-step options
//! ([`Denoise`]) and the small checks and time grids the samplers have in common.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::field::convert::tweedie_denoise;
use crate::field::VectorField;
use crate::sde::Sde;
use crate::tensor::{all_finite, times_like, Rng, Tensor};

/// The output of a sampler: final points and the number of score-field evaluations.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Final points, `(batch, d)`.
    pub x: Tensor<2>,
    /// Score-field evaluations (whole-batch calls).
    pub nfe: usize,
    /// Mean Metropolis acceptance rate (MALA only).
    pub accept_rate: Option<f64>,
}

/// A sampler: follows a score field from initial points, drawing all noise from `rng`.
pub trait Sampler {
    /// Short name ("em", "pc", "ald", "ode", …).
    fn name(&self) -> &'static str;

    /// Runs the sampler from `x` (usually prior draws). Errors on a dimension mismatch, invalid
    /// settings or non-finite samples.
    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, rng: &mut Rng) -> Result<Sample>;
}

/// What the last step returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Denoise {
    /// The last update's noisy state.
    None,
    /// The last update's noise-free mean (score_sde's `denoise=True`; reference_dsm.py).
    #[default]
    Mean,
    /// Tweedie's x̂₀ = (x + s(ε)²·score(x, ε))/m(ε) applied to the last noisy state (+1 NFE).
    Tweedie,
}

impl FromStr for Denoise {
    type Err = Error;
    /// "none", "mean", "tweedie".
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Denoise::None),
            "mean" => Ok(Denoise::Mean),
            "tweedie" => Ok(Denoise::Tweedie),
            other => Err(Error::InvalidInput(format!(
                "unknown final denoising '{other}' (choose one of none, mean, tweedie)"
            ))),
        }
    }
}

/// Uniform grid τ₀ = T > … > τ_N = ε with N = `steps`.
pub(crate) fn time_grid(t_max: f64, t_end: f64, steps: usize) -> Vec<f64> {
    (0..=steps)
        .map(|i| {
            if i == steps {
                t_end
            } else {
                t_max + (t_end - t_max) * i as f64 / steps as f64
            }
        })
        .collect()
}

/// Errors unless `x` has the field's dimension.
pub(crate) fn check_dim(score: &dyn VectorField, x: &Tensor<2>) -> Result<()> {
    let d = x.dims()[1];
    if d == score.dim() {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "initial points have dimension {d}, the score field expects {}",
            score.dim()
        )))
    }
}

/// Errors unless 0 < ε < T.
pub(crate) fn check_t_end(sde: &dyn Sde, t_end: f64) -> Result<()> {
    if t_end > 0.0 && t_end < sde.t_max() {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "sampler end time ε must lie in (0, {}), got {t_end}",
            sde.t_max()
        )))
    }
}

/// Applies the final step and checks the result is finite.
pub(crate) fn finish(
    name: &str,
    sde: &dyn Sde,
    score: &dyn VectorField,
    denoise: Denoise,
    t_end: f64,
    (x, x_mean): (Tensor<2>, Tensor<2>),
    mut nfe: usize,
) -> Result<Sample> {
    let x = match denoise {
        Denoise::None => x,
        Denoise::Mean => x_mean,
        Denoise::Tweedie => {
            let t = times_like(&x, t_end);
            nfe += 1;
            tweedie_denoise(sde, &x, &score.eval(&x, &t), &t)
        }
    };
    if !all_finite(&x) {
        return Err(Error::Solver(format!(
            "{name} sampler produced non-finite samples (NaN or inf)"
        )));
    }
    Ok(Sample {
        x,
        nfe,
        accept_rate: None,
    })
}
