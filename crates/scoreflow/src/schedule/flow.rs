//! A Gaussian probability path as a noise schedule: x_t = α(t)·x₁ + σ(t)·x₀ with x₀ ~ N(0, I)
//! is the schedule (α_t, σ_t) in flow time t (t = 0 noise, t = 1 data), with log-SNR
//! λ_t = ln(α_t/σ_t) (CondOT / rectified flow: α = t, σ = 1 − t, λ = logit t). The field the
//! samplers follow on it is the path's velocity u(x, t) ([`SampledField::Velocity`]), read as
//! the predictions x̂₁ and ε̂ it determines.
//!
//! The ends of the path are singular for the samplers (λ = −∞ at α = 0, +∞ at σ = 0), so the
//! schedule starts at t_start > 0 where λ = [`PathSchedule::LAMBDA_START`] = −5 (VP's λ_T =
//! −5.0, DDPM's −5.0: CondOT t_start = 0.0067, cosine 0.0043) from N(0, σ(t_start)² I), the
//! path's marginal there up to the data's O(α(t_start)) share, and ends at t_end < 1 where
//! λ = +5, from where the samplers' final step may land on the data itself
//! ([`super::FinalStep::Zero`]). In σ̃ = σ/α = e^{−λ} every schedule's deterministic samplers
//! follow the same ODE, so on a λ or Karras grid a path samples as VP over the same λ range;
//! (diffusers' flow sigmas start at σ = 0.999, λ = −6.9, on a grid uniform in t, where the
//! start barely matters: ours is [`super::Spacing::Time`] too by default).

use super::{NoiseSchedule, SampledField};
use crate::error::{Error, Result};
use crate::path::{PathKind, PerturbationKernel, Scheduler};

/// The noise schedule of a flow-matching path from N(0, I), on flow time [t_start, t_end].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathSchedule {
    /// The path (α, σ).
    pub path: PathKind,
    /// Where sampling starts (α(t_start) > 0).
    pub t_start: f64,
    /// The default end of sampling (σ(t_end) > 0).
    pub t_end: f64,
}

impl PathSchedule {
    /// λ where sampling starts by default (VP's λ_T).
    pub const LAMBDA_START: f64 = -5.0;
    /// λ where sampling ends by default.
    pub const LAMBDA_END: f64 = 5.0;

    /// `path` from λ = −5 to λ = +5 (CondOT: t ∈ [0.0067, 0.9933]).
    pub fn new(path: PathKind) -> Self {
        let mut s = Self {
            path,
            t_start: 0.0,
            t_end: 1.0,
        };
        (s.t_start, s.t_end) = (
            s.time_of_lambda(Self::LAMBDA_START),
            s.time_of_lambda(Self::LAMBDA_END),
        );
        s
    }

    /// `path` on [t_start, t_end]; errors unless 0 ≤ t_start < t_end ≤ 1 with α(t_start) > 0
    /// and σ(t_end) > 0.
    pub fn with_ends(path: PathKind, t_start: f64, t_end: f64) -> Result<Self> {
        let ok = (0.0..=1.0).contains(&t_start)
            && (0.0..=1.0).contains(&t_end)
            && t_start < t_end
            && path.alpha(t_start) > 0.0
            && path.sigma(t_end) > 0.0;
        if !ok {
            return Err(Error::InvalidInput(format!(
                "a {} path samples on 0 < t_start < t_end < 1 (α(t_start) > 0, σ(t_end) > 0), got [{t_start}, {t_end}]",
                path.name()
            )));
        }
        Ok(Self {
            path,
            t_start,
            t_end,
        })
    }
}

/// (m, s) = (α(t), σ(t)) in flow time.
impl PerturbationKernel for PathSchedule {
    fn mean_std(&self, t: f64) -> (f64, f64) {
        (self.path.alpha(t), self.path.sigma(t))
    }
}

impl NoiseSchedule for PathSchedule {
    fn schedule_name(&self) -> &'static str {
        self.path.name()
    }
    fn t_noise(&self) -> f64 {
        self.t_start
    }
    fn t_end(&self) -> f64 {
        self.t_end
    }
    /// The data end t = 1 (the axis runs upwards).
    fn t_data(&self) -> f64 {
        1.0
    }
    /// σ(t_start).
    fn start_std(&self) -> f64 {
        self.path.sigma(self.t_start)
    }
    /// The velocity, with (α̇, σ̇) of the path.
    fn sampled_field(&self, t: f64) -> SampledField {
        SampledField::Velocity {
            d_alpha: self.path.d_alpha(t),
            d_sigma: self.path.d_sigma(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Level;

    /// λ is increasing in flow time with the closed forms λ = logit t (CondOT) and
    /// λ = ln tan(πt/2) (cosine); the orientation-free bisection inverts it to 1e-12 and
    /// clamps out-of-range λ to the ends; the default ends sit at λ = ∓5; bad ends are
    /// one-line errors.
    #[test]
    fn path_schedules_invert_their_lambda() {
        for path in [PathKind::Condot, PathKind::Cosine] {
            let s = PathSchedule::new(path);
            for k in 0..=40 {
                let t = s.t_start + (s.t_end - s.t_start) * k as f64 / 40.0;
                let want = match path {
                    PathKind::Condot => (t / (1.0 - t)).ln(),
                    PathKind::Cosine => (std::f64::consts::FRAC_PI_2 * t).tan().ln(),
                };
                let l = s.lambda(t);
                assert!(
                    (l - want).abs() < 1e-12 * (1.0 + want.abs()),
                    "{path:?} {t}"
                );
                let back = Level::at_lambda(&s, l).t;
                assert!((back - t).abs() < 1e-12, "{path:?}: {t} → {l} → {back}");
            }
            assert!(s.time_of_lambda(1e9) > 1.0 - 1e-12);
            assert_eq!(s.time_of_lambda(-1e9), s.t_start);
            assert!((s.lambda(s.t_start) + 5.0).abs() < 1e-12);
            assert!((s.lambda(s.t_end) - 5.0).abs() < 1e-12);
            assert_eq!(s.start_std(), path.sigma(s.t_start));
        }
        for (a, b) in [
            (0.0, 0.5),
            (0.5, 0.4),
            (0.1, 1.0),
            (-0.1, 0.5),
            (f64::NAN, 0.5),
        ] {
            let e = PathSchedule::with_ends(PathKind::Condot, a, b).unwrap_err();
            assert!(e.to_string().contains("t_start < t_end"), "{e}");
        }
        assert!(PathSchedule::with_ends(PathKind::Cosine, 0.01, 0.99).is_ok());
    }
}
