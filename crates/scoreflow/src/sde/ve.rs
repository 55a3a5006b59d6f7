//! The variance-exploding SDE dx = √(dσ²/dτ) dw with σ(τ) = σ_min (σ_max/σ_min)^τ: the
//! continuous limit of SMLD / NCSN's geometric noise ladder.

use super::{check_t_min, Sde};
use crate::data::Points;
use crate::error::{Error, Result};
use crate::path::PerturbationKernel;

/// VE SDE: m = 1, s = σ(τ) = σ_min (σ_max/σ_min)^τ, g = σ(τ)·√(2 log(σ_max/σ_min)), prior
/// N(0, σ_max² I).
///
/// Choosing σ_max (Song & Ermon 2020, "Improved techniques", technique 1): take σ_max about the
/// largest pairwise Euclidean distance in the training data ([`VeSde::sigma_max_for`]), so that
/// p_{σ_max} covers the whole data set and Langevin / the reverse SDE can move mass between any
/// two modes; σ_min should be below the data's finest scale (0.01 for data of unit scale).
#[derive(Debug, Clone, PartialEq)]
pub struct VeSde {
    /// σ_min = σ(0).
    pub sigma_min: f64,
    /// σ_max = σ(1).
    pub sigma_max: f64,
    /// Training floor ε.
    pub t_min: f64,
}

impl Default for VeSde {
    /// σ 0.01 → 10 (the 2-D toy data span ≈ [−4, 4]²), ε = 1e-5.
    fn default() -> Self {
        Self {
            sigma_min: Self::DEFAULT_SIGMA_MIN,
            sigma_max: Self::DEFAULT_SIGMA_MAX,
            t_min: 1e-5,
        }
    }
}

impl VeSde {
    /// Default σ_min.
    pub const DEFAULT_SIGMA_MIN: f64 = 0.01;
    /// Default σ_max, sized for 2-D toy data of diameter ≈ 10.
    pub const DEFAULT_SIGMA_MAX: f64 = 10.0;

    /// A VE SDE; errors unless 0 < σ_min < σ_max (finite) and ε ∈ (0, 1).
    pub fn new(sigma_min: f64, sigma_max: f64, t_min: f64) -> Result<Self> {
        if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "VE SDE needs 0 < sigma_min < sigma_max (got {sigma_min}, {sigma_max})"
            )));
        }
        check_t_min(t_min)?;
        Ok(Self {
            sigma_min,
            sigma_max,
            t_min,
        })
    }

    /// σ(τ) = σ_min (σ_max/σ_min)^τ.
    pub fn sigma(&self, tau: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(tau)
    }

    /// The inverse of [`VeSde::sigma`]: τ(σ) = ln(σ/σ_min) / ln(σ_max/σ_min).
    pub fn tau(&self, sigma: f64) -> f64 {
        (sigma / self.sigma_min).ln() / (self.sigma_max / self.sigma_min).ln()
    }

    /// max_{i<j} ‖xᵢ − xⱼ‖: Song & Ermon's σ_max for a data set (O(n²); pass a subsample of a
    /// few thousand points for big data). Zero for fewer than two points.
    pub fn sigma_max_for(points: &Points) -> f64 {
        let mut best = 0.0f64;
        for i in 0..points.len() {
            let a = points.row(i);
            for j in i + 1..points.len() {
                let d2: f64 = a
                    .iter()
                    .zip(points.row(j))
                    .map(|(p, q)| (p - q) * (p - q))
                    .sum();
                best = best.max(d2);
            }
        }
        best.sqrt()
    }
}

impl PerturbationKernel for VeSde {
    /// (1, σ(τ)).
    fn mean_std(&self, tau: f64) -> (f64, f64) {
        (1.0, self.sigma(tau))
    }
}

impl Sde for VeSde {
    fn name(&self) -> &'static str {
        "ve"
    }
    fn t_min(&self) -> f64 {
        self.t_min
    }
    fn sampling_eps(&self) -> f64 {
        1e-5
    }
    fn drift_coef(&self, _tau: f64) -> f64 {
        0.0
    }
    fn diffusion(&self, tau: f64) -> f64 {
        self.sigma(tau) * (2.0 * (self.sigma_max / self.sigma_min).ln()).sqrt()
    }
    fn prior_std(&self) -> f64 {
        self.sigma_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// τ(σ(τ)) = τ across the range, with σ(0) = σ_min and σ(1) = σ_max at the ends.
    #[test]
    fn tau_inverts_sigma() {
        let ve = VeSde::new(0.05, 10.0, 1e-5).unwrap();
        for tau in [0.0, 1e-5, 0.3, 0.77, 1.0] {
            assert!((ve.tau(ve.sigma(tau)) - tau).abs() < 1e-12, "τ {tau}");
        }
        assert!((ve.tau(0.05)).abs() < 1e-15 && (ve.tau(10.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sigma_max_is_the_data_diameter() {
        let pts = Points::new(vec![0.0, 0.0, 3.0, 4.0, 1.0, 1.0, -0.5, 0.5], 2).unwrap();
        assert_eq!(VeSde::sigma_max_for(&pts), 5.0);
        assert_eq!(VeSde::sigma_max_for(&pts.slice(0, 1)), 0.0);
    }
}
