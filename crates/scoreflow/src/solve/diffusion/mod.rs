//! Few-step samplers of diffusion models: DDIM, DPM-Solver, DPM-Solver++ (2M, 3M, 2S), UniPC
//! and Karras et al.'s Euler / Heun with churn — all behind the one [`Sampler`] signature
//! (score field, start points, seeded generator → points + NFE), any
//! [`NoiseSchedule`] (every SDE; diffusers' discrete ᾱ table), any [`Grid`].
//!
//! Each sampler sees the score through the [`Denoiser`] (x̂₀ and ε̂ at a level from one
//! evaluation); multistep history lives inside the sampler. The names, options and defaults
//! are [`DiffusionSamplerConfig`]: `ddim`, `dpm-solver`, `dpmpp-2m`, `dpmpp-3m`, `dpmpp-2s`,
//! `unipc`, `edm-euler`, `edm-heun`.
//!
//! Orders of the deterministic samplers (global error in the step h, tested on the exact
//! probability-flow map of a Gaussian): ddim (η = 0) 1, dpm-solver k, dpmpp-2m 2, dpmpp-3m 3,
//! dpmpp-2s 2, unipc p + 1 (p = 2 by default), edm-euler 1, edm-heun 2.

pub mod config;
pub mod ddim;
pub mod denoiser;
pub mod dpm_solver;
pub mod dpmpp_2s;
pub mod edm;
pub mod unipc;

pub use config::{DiffusionSamplerConfig, DiffusionSamplerKind};
pub use ddim::Ddim;
pub use denoiser::{Denoised, Denoiser, SolverTarget};
pub use dpm_solver::DpmSolver;
pub use dpmpp_2s::DpmSolverPp2s;
pub use edm::{Churn, EdmSampler};
pub use unipc::{UniPc, UniPcVariant};

use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::schedule::{FinalStep, Grid, Level};
use crate::solve::sampler::Sample;
use crate::tensor::{all_finite, Tensor};

#[cfg(doc)]
use crate::{schedule::NoiseSchedule, solve::sampler::Sampler};

/// Errors unless `x` has the field's dimension.
fn check_dim(score: &dyn VectorField, x: &Tensor<2>) -> Result<()> {
    crate::solve::sampler::check_dim(score, x)
}

/// Applies [`FinalStep::Tweedie`] (x̂₀ at the last level, +1 NFE) and checks the result is
/// finite.
fn finish(
    name: &str,
    den: &Denoiser,
    grid: &Grid,
    levels: &[Level],
    x: Tensor<2>,
) -> Result<Sample> {
    let last = levels[levels.len() - 1];
    let x = if grid.final_step == FinalStep::Tweedie && !last.is_clean() {
        den.at(&x, &last).x0
    } else {
        x
    };
    if !all_finite(&x) {
        return Err(Error::Solver(format!(
            "{name} sampler produced non-finite samples (NaN or inf)"
        )));
    }
    Ok(Sample {
        x,
        nfe: den.nfe(),
        accept_rate: None,
    })
}

#[cfg(test)]
mod tests;
