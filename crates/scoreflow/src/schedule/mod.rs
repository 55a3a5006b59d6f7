//! Noise schedules as the few-step diffusion samplers see them: x_t = α_t·x₀ + σ_t·z with the
//! log signal-to-noise ratio λ_t = ln(α_t/σ_t), on the schedule's own time axis.
//!
//! A [`NoiseSchedule`] is any Gaussian perturbation kernel (α_t, σ_t) that runs from a noisy
//! start `t_noise` (where sampling begins) towards the data, with λ strictly increasing on the
//! way and an inverse t(λ). Every [`Sde`] is one (blanket implementation: VP linear/cosine,
//! sub-VP, VE, EDM; time τ, α = m(τ), σ = s(τ)), and so is diffusers' discrete ᾱ table
//! ([`DiscreteSchedule`], time = the integer training timestep, interpolated as diffusers
//! does), and so is a Gaussian probability path x_t = α(t)·x₁ + σ(t)·x₀ from an N(0, I) source
//! ([`PathSchedule`], flow time t from near 0 towards 1). The "EDM view" of any schedule is σ̃ = σ/α = e^{−λ} with x̃ = x/α (Karras et al. 2022,
//! eq. 4–5), in which the deterministic samplers of every schedule are the same ODE
//! dx̃/dσ̃ = (x̃ − x̂₀)/σ̃.
//!
//! A sampler walks a list of [`Level`]s ([`spacing`] builds them: uniform in t, uniform in λ,
//! Karras ρ, or diffusers' `leading`/`trailing`/`linspace` timesteps); the last level may be the
//! clean data itself (σ = 0, [`Level::clean`]), where the field is never evaluated.

pub mod discrete;
pub mod flow;
pub mod spacing;

pub use discrete::{BetaTable, DiscreteSchedule};
pub use flow::PathSchedule;
pub use spacing::{FinalStep, Grid, Spacing, TimestepFamily};

use std::fmt::Debug;

use crate::path::PerturbationKernel;
use crate::sde::Sde;

/// What the field a sampler follows on a schedule outputs at time t, and so how the denoiser
/// view of the few-step samplers (`solve::diffusion::Denoiser`) reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampledField {
    /// The score s = ∇ₓ log p_t(x) (SDEs, diffusers' tables): x̂₀ = (x + σ²s)/α, ε̂ = −σs.
    Score,
    /// The velocity u = α̇·x̂₀ + σ̇·ε̂ of a Gaussian path (flow matching), with the path's
    /// (α̇_t, σ̇_t): x̂₀ and ε̂ solve x = α·x̂₀ + σ·ε̂, u = α̇·x̂₀ + σ̇·ε̂
    /// ([`crate::path::velocity_prediction_coefficients`]).
    Velocity {
        /// α̇_t = dα/dt.
        d_alpha: f64,
        /// σ̇_t = dσ/dt.
        d_sigma: f64,
    },
}

/// A noise schedule (α_t, σ_t) = `mean_std(t)` (the supertrait) on a time axis running from the
/// noise end `t_noise` towards the data (downwards for SDEs and tables, upwards for a flow
/// path), with λ_t = ln(α_t/σ_t) strictly increasing along the way.
pub trait NoiseSchedule: PerturbationKernel + Debug + Send + Sync {
    /// Short name ("vp", "ve", "edm", "ddpm", …).
    fn schedule_name(&self) -> &'static str;

    /// Where sampling starts (T for SDEs, the last training timestep for a discrete table).
    fn t_noise(&self) -> f64;

    /// The default end of sampling near the data (an SDE's sampling ε; timestep 0).
    fn t_end(&self) -> f64;

    /// The data end of the time axis: the bracket of [`NoiseSchedule::time_of_lambda`] is
    /// [`NoiseSchedule::t_data`], [`NoiseSchedule::t_noise`].
    fn t_data(&self) -> f64;

    /// Standard deviation s of the prior N(0, s² I) at `t_noise` that samplers start from.
    fn start_std(&self) -> f64;

    /// The number of training timesteps of a discrete schedule (diffusers' 1000), whose
    /// `leading` / `trailing` / `linspace` timestep spacings need it; `None` when continuous.
    fn train_timesteps(&self) -> Option<usize> {
        None
    }

    /// What the sampled field outputs at time t: the score (the default) or a path's velocity.
    fn sampled_field(&self, _t: f64) -> SampledField {
        SampledField::Score
    }

    /// λ_t = ln α_t − ln σ_t (+∞ where σ_t = 0).
    fn lambda(&self, t: f64) -> f64 {
        let (a, s) = self.mean_std(t);
        a.ln() - s.ln()
    }

    /// The time t with λ_t = `lambda`, clamped to the interval between t_data and t_noise
    /// (either orientation): bisection on the monotone λ (to the last representable bit;
    /// ≤ 1,100 halvings, in practice ~60).
    fn time_of_lambda(&self, lambda: f64) -> f64 {
        let (mut lo, mut hi) = (self.t_data(), self.t_noise());
        if lambda >= self.lambda(lo) {
            return lo;
        }
        if lambda <= self.lambda(hi) {
            return hi;
        }
        // Invariant: λ(lo) > lambda > λ(hi).
        loop {
            let mid = 0.5 * (lo + hi);
            if mid == lo || mid == hi {
                return if (self.lambda(lo) - lambda).abs() < (self.lambda(hi) - lambda).abs() {
                    lo
                } else {
                    hi
                };
            }
            if self.lambda(mid) > lambda {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
}

/// Every SDE is a noise schedule in its diffusion time τ: (α, σ) = (m(τ), s(τ)), from T down to
/// its sampling ε, bracket [0, T].
impl<S: Sde + ?Sized> NoiseSchedule for S {
    fn schedule_name(&self) -> &'static str {
        self.name()
    }
    fn t_noise(&self) -> f64 {
        self.t_max()
    }
    fn t_end(&self) -> f64 {
        self.sampling_eps()
    }
    fn t_data(&self) -> f64 {
        0.0
    }
    fn start_std(&self) -> f64 {
        self.prior_std()
    }
}

/// One noise level of a sampler's grid: time t and (α_t, σ_t). The clean level σ = 0, α = 1
/// ([`Level::clean`]) is the data itself; its t is NaN and the field is never evaluated there.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    /// Time on the schedule's axis (the field's time input); NaN for the clean level.
    pub t: f64,
    /// α_t.
    pub alpha: f64,
    /// σ_t (0 only for the clean level).
    pub sigma: f64,
}

impl Level {
    /// The level of `schedule` at time t.
    pub fn at<N: NoiseSchedule + ?Sized>(schedule: &N, t: f64) -> Self {
        let (alpha, sigma) = schedule.mean_std(t);
        Self { t, alpha, sigma }
    }

    /// The level of `schedule` with log-SNR λ (time from [`NoiseSchedule::time_of_lambda`]).
    pub fn at_lambda<N: NoiseSchedule + ?Sized>(schedule: &N, lambda: f64) -> Self {
        Self::at(schedule, schedule.time_of_lambda(lambda))
    }

    /// The clean data: α = 1, σ = 0, λ = +∞.
    pub fn clean() -> Self {
        Self {
            t: f64::NAN,
            alpha: 1.0,
            sigma: 0.0,
        }
    }

    /// True for the clean level (σ = 0).
    pub fn is_clean(&self) -> bool {
        self.sigma == 0.0
    }

    /// λ = ln(α/σ) (+∞ for the clean level).
    pub fn lambda(&self) -> f64 {
        self.alpha.ln() - self.sigma.ln()
    }

    /// σ̃ = σ/α = e^{−λ}: the level's noise in Karras et al.'s (VE-scaled) coordinates x̃ = x/α.
    pub fn sigma_ve(&self) -> f64 {
        self.sigma / self.alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::SdeConfig;

    /// For every SDE, t(λ(t)) = t to 1e-10 relative across the sampling range (the cosine
    /// schedule's B(τ) = 2(ln cos θ₀ − ln cos θ(τ)) loses ~5 digits to cancellation near τ = 0,
    /// so its λ is only that accurate; the others invert to 1e-14), λ is strictly decreasing in
    /// t, and out-of-range λ clamps to the ends.
    #[test]
    fn time_of_lambda_inverts_lambda() {
        for name in SdeConfig::NAMES {
            let sde = name.parse::<SdeConfig>().unwrap().build().unwrap();
            let (t0, t1) = (sde.t_end(), sde.t_noise());
            let mut last = f64::INFINITY;
            for k in 0..=50 {
                let t = t0 + (t1 - t0) * k as f64 / 50.0;
                let l = sde.lambda(t);
                assert!(l < last, "{name}: λ not decreasing at t = {t}");
                last = l;
                let back = sde.time_of_lambda(l);
                assert!(
                    (back - t).abs() <= 1e-10 * t.abs().max(1e-3),
                    "{name}: t {t} → λ {l} → {back}"
                );
            }
            assert!(sde.time_of_lambda(1e9) < 1e-12);
            assert_eq!(sde.time_of_lambda(-1e9), t1);
        }
    }

    #[test]
    fn levels_know_their_lambda_and_edm_sigma() {
        let sde = "vp".parse::<SdeConfig>().unwrap().build().unwrap();
        let l = Level::at(&*sde, 0.3);
        let (a, s) = sde.mean_std(0.3);
        assert_eq!((l.alpha, l.sigma), (a, s));
        assert!((l.lambda() - (a / s).ln()).abs() < 1e-14);
        assert!((l.sigma_ve() - (-l.lambda()).exp()).abs() < 1e-14 * l.sigma_ve());
        let c = Level::clean();
        assert!(c.is_clean() && c.lambda() == f64::INFINITY && c.sigma_ve() == 0.0);
        let back = Level::at_lambda(&*sde, l.lambda());
        assert!((back.t - 0.3).abs() < 1e-12);
    }
}
