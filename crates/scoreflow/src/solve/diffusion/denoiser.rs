//! The denoiser view of a field: at a noise level (α, σ), one evaluation gives both x̂₀ and ε̂,
//! as the schedule says the field reads ([`SampledField`]): a score s gives x̂₀ = (x + σ²·s)/α
//! (Tweedie) and ε̂ = −σ·s ([`Prediction::from_score_coefficients`]); a flow path's velocity u
//! gives x̂₀ = (σ̇·x − σ·u)/D, ε̂ = (α·u − α̇·x)/D, D = ασ̇ − σα̇
//! ([`velocity_prediction_coefficients`]) — the one place each algebra is written. Any ε / x̂₀
//! network reaches the samplers as a score ([`crate::field::convert::ScoreField`]) and a
//! flow-matching network as its velocity on a [`crate::schedule::PathSchedule`], so every
//! sampler runs one code path over all of them.

use std::cell::Cell;

use crate::field::convert::Prediction;
use crate::field::VectorField;
use crate::path::velocity_prediction_coefficients;
use crate::schedule::{Level, NoiseSchedule, SampledField};
use crate::tensor::Tensor;

/// Both predictions at one level, from one field evaluation.
#[derive(Debug, Clone)]
pub struct Denoised {
    /// x̂₀ = E[x₀ | x_t].
    pub x0: Tensor<2>,
    /// ε̂ = E[z | x_t].
    pub eps: Tensor<2>,
}

/// A field (the score, or a path's velocity: [`NoiseSchedule::sampled_field`]) seen as a
/// denoiser, counting its evaluations (NFE).
pub struct Denoiser<'a> {
    field: &'a dyn VectorField,
    schedule: &'a dyn NoiseSchedule,
    nfe: Cell<usize>,
}

impl<'a> Denoiser<'a> {
    /// Wraps `field`, evaluated in `schedule`'s time and read as it says.
    pub fn new(field: &'a dyn VectorField, schedule: &'a dyn NoiseSchedule) -> Self {
        Self {
            field,
            schedule,
            nfe: Cell::new(0),
        }
    }

    /// x̂₀ = a₀·x + c₀·f and ε̂ = a_ε·x + c_ε·f with f = field(x, t) at `level` (1 NFE), the
    /// coefficients of [`SampledField`]. The clean level is never evaluated by the samplers
    /// (its t is NaN, which would surface as non-finite samples).
    pub fn at(&self, x: &Tensor<2>, level: &Level) -> Denoised {
        let f = self.field.eval_at(x, level.t);
        self.nfe.set(self.nfe.get() + 1);
        let ((a0, c0), (ae, ce)) = match self.schedule.sampled_field(level.t) {
            SampledField::Score => (
                Prediction::Data.from_score_coefficients(level.alpha, level.sigma),
                Prediction::Epsilon.from_score_coefficients(level.alpha, level.sigma),
            ),
            SampledField::Velocity { d_alpha, d_sigma } => {
                velocity_prediction_coefficients(level.alpha, level.sigma, d_alpha, d_sigma)
            }
        };
        let eps = if ae == 0.0 {
            f.clone() * ce
        } else {
            x.clone() * ae + f.clone() * ce
        };
        Denoised {
            x0: x.clone() * a0 + f * c0,
            eps,
        }
    }

    /// Field evaluations so far.
    pub fn nfe(&self) -> usize {
        self.nfe.get()
    }
}

/// Which prediction an exponential integrator integrates (Lu et al. 2022a/b): the noise ε̂
/// (DPM-Solver; UniPC with `predict_x0=False`) or the data x̂₀ (DPM-Solver++, UniPC's default).
///
/// Both are one formula under the swap (α, σ, h) ↔ (σ, α, −h): a step s → t with
/// h = λ_t − λ_s reads x_t = scale·x_s − mult·(e^{ĥ} − 1)·m + …, where for data prediction
/// (scale, mult, ĥ) = (σ_t/σ_s, α_t, −h) and for noise prediction (α_t/α_s, σ_t, h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolverTarget {
    /// x̂₀ (data prediction).
    #[default]
    Data,
    /// ε̂ (noise prediction).
    Noise,
}

/// The first-order exponential-integrator coefficients of one step (see [`SolverTarget`]).
#[derive(Debug, Clone, Copy)]
pub struct ExpStep {
    /// σ_t/σ_s (data) or α_t/α_s (noise).
    pub scale: f64,
    /// α_t (data) or σ_t (noise).
    pub mult: f64,
    /// ĥ = −h (data) or h (noise), h = λ_t − λ_s.
    pub hh: f64,
    /// h = λ_t − λ_s.
    pub h: f64,
}

impl SolverTarget {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            SolverTarget::Data => "data",
            SolverTarget::Noise => "noise",
        }
    }

    /// The integrated prediction of `d`.
    pub fn of(self, d: &Denoised) -> Tensor<2> {
        match self {
            SolverTarget::Data => d.x0.clone(),
            SolverTarget::Noise => d.eps.clone(),
        }
    }

    /// The coefficients of a step `from` → `to` (both with σ > 0).
    pub fn step(self, from: &Level, to: &Level) -> ExpStep {
        let h = to.lambda() - from.lambda();
        match self {
            SolverTarget::Data => ExpStep {
                scale: to.sigma / from.sigma,
                mult: to.alpha,
                hh: -h,
                h,
            },
            SolverTarget::Noise => ExpStep {
                scale: to.alpha / from.alpha,
                mult: to.sigma,
                hh: h,
                h,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::analytic::{Gaussian, GaussianMixture, MixtureScore};
    use crate::sde::VpSde;
    use crate::tensor::{cpu, matrix, to_vec, DType};

    /// For data N(μ, v I) under x = α x₀ + σ z the posterior means are exact:
    /// E[x₀|x] = μ + αv(x − αμ)/(α²v + σ²), E[z|x] = σ(x − αμ)/(α²v + σ²); the denoiser of the
    /// exact score reproduces both to 1e-12 and counts one NFE per level.
    #[test]
    fn denoiser_gives_exact_posterior_means() {
        let (mu, v) = (0.4, 0.7);
        let sde = VpSde::default();
        let mix = GaussianMixture::from(Gaussian::isotropic(vec![mu, mu], v).unwrap());
        let score = MixtureScore::new(mix, sde.clone());
        let den = Denoiser::new(&score, &sde);
        let x = matrix(vec![0.3, -1.2, 2.0, 0.1], 2, 2, &cpu(), DType::F64);
        for t in [0.01, 0.3, 0.9] {
            let l = Level::at(&sde, t);
            let d = den.at(&x, &l);
            let var = l.alpha * l.alpha * v + l.sigma * l.sigma;
            for ((xi, x0), e) in to_vec(&x).iter().zip(to_vec(&d.x0)).zip(to_vec(&d.eps)) {
                let r = xi - l.alpha * mu;
                assert!((x0 - (mu + l.alpha * v * r / var)).abs() < 1e-12);
                assert!((e - l.sigma * r / var).abs() < 1e-12);
            }
        }
        assert_eq!(den.nfe(), 3);
    }
}
