//! Variance-preserving SDEs: VP dx = −½β(τ) x dτ + √β(τ) dw (DDPM's continuous limit) and
//! sub-VP dx = −½β x dτ + √(β(1 − e^{−2B(τ)})) dw, B(τ) = ∫₀^τ β, with linear or cosine β.

use super::{check_t_min, Sde};
use crate::error::{Error, Result};
use crate::path::PerturbationKernel;

/// A noise schedule β(τ) on τ ∈ [0, 1] with its integral B(τ) = ∫₀^τ β in closed form.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BetaSchedule {
    /// β(τ) = β_min + τ (β_max − β_min) (Song et al.; DDPM's linear βᵢ in the limit).
    Linear {
        /// β(0).
        beta_min: f64,
        /// β(1).
        beta_max: f64,
    },
    /// Nichol & Dhariwal's ᾱ(τ) = cos²(θ(τ))/cos²(θ(0)), θ = (τ + s)/(1 + s)·π/2, so
    /// β(τ) = π tan θ(τ)/(1 + s), clipped at `max_beta` (β → ∞ at τ = 1 otherwise; after the
    /// clip β is constant, and ᾱ(1) ≈ 1.3/max_beta²).
    Cosine {
        /// Offset s (0.008 in the paper).
        s: f64,
        /// Clip of β; 200 makes ᾱ(1) ≈ 3e-5, near the linear schedule's 4.3e-5.
        max_beta: f64,
    },
}

impl Default for BetaSchedule {
    /// Linear β from 0.1 to 20.
    fn default() -> Self {
        BetaSchedule::Linear {
            beta_min: 0.1,
            beta_max: 20.0,
        }
    }
}

impl BetaSchedule {
    /// The cosine schedule with s = 0.008 and β clipped at 200.
    pub fn cosine() -> Self {
        BetaSchedule::Cosine {
            s: 0.008,
            max_beta: 200.0,
        }
    }

    /// Errors unless 0 < β_min ≤ β_max (linear) or s > 0 and max_beta > 0 (cosine).
    pub fn validate(&self) -> Result<()> {
        match *self {
            BetaSchedule::Linear { beta_min, beta_max } => {
                if beta_min > 0.0 && beta_max >= beta_min && beta_max.is_finite() {
                    Ok(())
                } else {
                    Err(Error::InvalidInput(format!(
                        "linear β schedule needs 0 < beta_min <= beta_max (got {beta_min}, {beta_max})"
                    )))
                }
            }
            BetaSchedule::Cosine { s, max_beta } => {
                if s > 0.0 && s.is_finite() && max_beta > 0.0 && max_beta.is_finite() {
                    Ok(())
                } else {
                    Err(Error::InvalidInput(format!(
                        "cosine schedule needs s > 0 and max_beta > 0 (got {s}, {max_beta})"
                    )))
                }
            }
        }
    }

    /// θ(τ) = (τ + s)/(1 + s)·π/2 and the clip time τ_c where π tan θ/(1 + s) = max_beta.
    fn cosine_parts(s: f64, max_beta: f64) -> (impl Fn(f64) -> f64, f64) {
        let theta = move |tau: f64| (tau + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2;
        let theta_c = (max_beta * (1.0 + s) / std::f64::consts::PI).atan();
        let tau_c = theta_c / std::f64::consts::FRAC_PI_2 * (1.0 + s) - s;
        (theta, tau_c)
    }

    /// β(τ).
    pub fn beta(&self, tau: f64) -> f64 {
        match *self {
            BetaSchedule::Linear { beta_min, beta_max } => beta_min + tau * (beta_max - beta_min),
            BetaSchedule::Cosine { s, max_beta } => {
                let (theta, tau_c) = Self::cosine_parts(s, max_beta);
                if tau >= tau_c {
                    max_beta
                } else {
                    std::f64::consts::PI * theta(tau).tan() / (1.0 + s)
                }
            }
        }
    }

    /// B(τ) = ∫₀^τ β = −log ᾱ(τ).
    pub fn integral(&self, tau: f64) -> f64 {
        match *self {
            BetaSchedule::Linear { beta_min, beta_max } => {
                beta_min * tau + 0.5 * (beta_max - beta_min) * tau * tau
            }
            BetaSchedule::Cosine { s, max_beta } => {
                let (theta, tau_c) = Self::cosine_parts(s, max_beta);
                let b = |t: f64| 2.0 * (theta(0.0).cos().ln() - theta(t).cos().ln());
                if tau <= tau_c {
                    b(tau)
                } else {
                    b(tau_c) + max_beta * (tau - tau_c)
                }
            }
        }
    }
}

/// The VP SDE dx = −½β(τ) x dτ + √β(τ) dw: m = e^{−B/2}, s² = 1 − e^{−B}, prior N(0, I).
#[derive(Debug, Clone, PartialEq)]
pub struct VpSde {
    /// β(τ).
    pub schedule: BetaSchedule,
    /// Training floor ε.
    pub t_min: f64,
}

impl Default for VpSde {
    /// Linear β 0.1 → 20, ε = 1e-5 (reference_dsm.py).
    fn default() -> Self {
        Self {
            schedule: BetaSchedule::default(),
            t_min: 1e-5,
        }
    }
}

impl VpSde {
    /// A VP SDE; errors on an invalid schedule or ε ∉ (0, 1).
    pub fn new(schedule: BetaSchedule, t_min: f64) -> Result<Self> {
        schedule.validate()?;
        check_t_min(t_min)?;
        Ok(Self { schedule, t_min })
    }
}

impl PerturbationKernel for VpSde {
    /// (e^{−B/2}, √(1 − e^{−B})), the latter as √(−expm1(−B)) for accuracy at small τ.
    fn mean_std(&self, tau: f64) -> (f64, f64) {
        let b = self.schedule.integral(tau);
        ((-0.5 * b).exp(), (-(-b).exp_m1()).sqrt())
    }
}

impl Sde for VpSde {
    fn name(&self) -> &'static str {
        "vp"
    }
    fn t_min(&self) -> f64 {
        self.t_min
    }
    fn sampling_eps(&self) -> f64 {
        1e-3
    }
    fn drift_coef(&self, tau: f64) -> f64 {
        -0.5 * self.schedule.beta(tau)
    }
    fn diffusion(&self, tau: f64) -> f64 {
        self.schedule.beta(tau).sqrt()
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
}

/// The sub-VP SDE dx = −½β x dτ + √(β(1 − e^{−2B})) dw: m = e^{−B/2}, s = 1 − e^{−B} (below
/// VP's √(1 − e^{−B})), prior N(0, I).
#[derive(Debug, Clone, PartialEq)]
pub struct SubVpSde {
    /// β(τ).
    pub schedule: BetaSchedule,
    /// Training floor ε.
    pub t_min: f64,
}

impl Default for SubVpSde {
    /// Linear β 0.1 → 20, ε = 1e-5.
    fn default() -> Self {
        Self {
            schedule: BetaSchedule::default(),
            t_min: 1e-5,
        }
    }
}

impl SubVpSde {
    /// A sub-VP SDE; errors on an invalid schedule or ε ∉ (0, 1).
    pub fn new(schedule: BetaSchedule, t_min: f64) -> Result<Self> {
        schedule.validate()?;
        check_t_min(t_min)?;
        Ok(Self { schedule, t_min })
    }
}

impl PerturbationKernel for SubVpSde {
    /// (e^{−B/2}, 1 − e^{−B}).
    fn mean_std(&self, tau: f64) -> (f64, f64) {
        let b = self.schedule.integral(tau);
        ((-0.5 * b).exp(), -(-b).exp_m1())
    }
}

impl Sde for SubVpSde {
    fn name(&self) -> &'static str {
        "subvp"
    }
    fn t_min(&self) -> f64 {
        self.t_min
    }
    fn sampling_eps(&self) -> f64 {
        1e-3
    }
    fn drift_coef(&self, tau: f64) -> f64 {
        -0.5 * self.schedule.beta(tau)
    }
    fn diffusion(&self, tau: f64) -> f64 {
        let b = self.schedule.integral(tau);
        (self.schedule.beta(tau) * -(-2.0 * b).exp_m1()).sqrt()
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B(τ) is the integral of β: Simpson's rule with 2,000 panels (error ≪ 1e-8 for these
    /// smooth schedules; the cosine clip point is a kink, so panels straddling it are bounded
    /// by h²·Δβ' ≈ 1e-6) reproduces B(1); the cosine ᾱ(1) ≈ 1.3/max_beta².
    #[test]
    fn integral_is_the_integral_of_beta() {
        for sched in [BetaSchedule::default(), BetaSchedule::cosine()] {
            let n = 2000;
            let h = 1.0 / n as f64;
            let mut acc = sched.beta(0.0) + sched.beta(1.0);
            for i in 1..n {
                acc += if i % 2 == 1 { 4.0 } else { 2.0 } * sched.beta(i as f64 * h);
            }
            let simpson = acc * h / 3.0;
            assert!(
                (simpson - sched.integral(1.0)).abs() < 1e-4 * sched.integral(1.0),
                "{sched:?}"
            );
        }
        let abar = (-BetaSchedule::cosine().integral(1.0)).exp();
        assert!(
            (abar * 200.0f64.powi(2) / 1.3 - 1.0).abs() < 0.1,
            "ᾱ(1) = {abar}"
        );
        // Linear schedule at the reference's end point: B(1) = 0.1 + 9.95.
        assert!((BetaSchedule::default().integral(1.0) - 10.05).abs() < 1e-12);
    }
}
