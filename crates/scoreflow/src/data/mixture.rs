//! Gaussian mixtures as *data*: p(x) = Σₖ wₖ N(x; μₖ, Σₖ) with full covariances, validated,
//! (de)serialisable, and exact ground truth (log-density, score, sampling) for the built-in data
//! sets. The maths lives in one place, [`GaussianMixture`] (the analytic score field, perturbed
//! by any kernel): a [`MixtureSpec`] holds its parameters as given plus that mixture, and
//! `GaussianMixture::from(&spec)` hands it out.

use serde::{Deserialize, Serialize};

use super::Points;
use crate::error::{Error, Result};
use crate::gaussian::{Gaussian, GaussianMixture};
use crate::linalg::cholesky_lower;
use crate::tensor::Rng;

/// p(x) = Σₖ wₖ N(x; μₖ, Σₖ): a validated Gaussian mixture in R^d (weights normalised to sum 1,
/// every Σₖ symmetric positive definite, factored once as Σₖ = Lₖ Lₖᵀ).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MixtureParams", into = "MixtureParams")]
pub struct MixtureSpec {
    means: Vec<Vec<f64>>,
    covs: Vec<Vec<f64>>,
    /// The same law as an analytic mixture (normalised weights, Cholesky factors, precisions).
    mixture: GaussianMixture,
}

/// The plain parameters (wₖ, μₖ, Σₖ) of a [`MixtureSpec`], as (de)serialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixtureParams {
    /// Weights wₖ ≥ 0 (normalised on construction).
    pub weights: Vec<f64>,
    /// Means μₖ, each of length d.
    pub means: Vec<Vec<f64>>,
    /// Covariances Σₖ, each row-major d×d.
    pub covs: Vec<Vec<f64>>,
}

impl TryFrom<MixtureParams> for MixtureSpec {
    type Error = Error;
    fn try_from(p: MixtureParams) -> Result<Self> {
        MixtureSpec::new(p.weights, p.means, p.covs)
    }
}

impl From<MixtureSpec> for MixtureParams {
    fn from(m: MixtureSpec) -> Self {
        MixtureParams {
            weights: m.weights().to_vec(),
            means: m.means,
            covs: m.covs,
        }
    }
}

fn invalid(msg: String) -> Error {
    Error::InvalidInput(format!("Gaussian mixture: {msg}"))
}

impl MixtureSpec {
    /// p(x) = Σₖ wₖ N(x; μₖ, Σₖ) from weights (≥ 0, finite, sum > 0; normalised here), means
    /// (K vectors of length d ≥ 1) and row-major d×d covariances (symmetric positive definite,
    /// checked by Cholesky); anything else is an `Error::InvalidInput` naming the component.
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, covs: Vec<Vec<f64>>) -> Result<Self> {
        let k = weights.len();
        if k == 0 {
            return Err(invalid("no components".into()));
        }
        if means.len() != k || covs.len() != k {
            return Err(invalid(format!(
                "{k} weights but {} means and {} covariances",
                means.len(),
                covs.len()
            )));
        }
        let d = means[0].len();
        if d == 0 {
            return Err(invalid("means have dimension 0".into()));
        }
        if let Some((i, w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(invalid(format!(
                "weight {i} is {w}; weights must be finite and ≥ 0"
            )));
        }
        let total: f64 = weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(invalid(format!(
                "weights sum to {total}; they must sum to a positive number"
            )));
        }
        let mut components = Vec::with_capacity(k);
        for (i, (mu, cov)) in means.iter().zip(&covs).enumerate() {
            if mu.len() != d {
                return Err(invalid(format!(
                    "mean {i} has length {}, mean 0 has {d}",
                    mu.len()
                )));
            }
            if let Some(v) = mu.iter().find(|v| !v.is_finite()) {
                return Err(invalid(format!("mean {i} has a non-finite entry {v}")));
            }
            if cov.len() != d * d {
                return Err(invalid(format!(
                    "covariance {i} has {} entries, expected {d}×{d} = {}",
                    cov.len(),
                    d * d
                )));
            }
            for r in 0..d {
                for c in 0..r {
                    let (a, b) = (cov[r * d + c], cov[c * d + r]);
                    let asym = (a - b).abs();
                    if asym.is_nan() || asym > 1e-9 * (a.abs() + b.abs()) {
                        return Err(invalid(format!(
                            "covariance {i} is not symmetric: entry ({r}, {c}) = {a} but ({c}, {r}) = {b}"
                        )));
                    }
                }
            }
            let l = cholesky_lower(cov, d).ok_or_else(|| {
                invalid(format!(
                    "covariance {i} is not positive definite (Cholesky failed)"
                ))
            })?;
            // The factor reads the lower triangle; the analytic component keeps Σₖ symmetrised.
            let sym = (0..d * d)
                .map(|j| 0.5 * (cov[j] + cov[(j % d) * d + j / d]))
                .collect();
            components.push(Gaussian::from_factor(mu.clone(), sym, l));
        }
        let mixture = GaussianMixture::from_components(weights, components)?;
        Ok(Self {
            means,
            covs,
            mixture,
        })
    }

    /// p(x) = Σₖ wₖ N(x; μₖ, vₖ I): isotropic components with variances vₖ > 0.
    pub fn isotropic(weights: Vec<f64>, means: Vec<Vec<f64>>, variances: &[f64]) -> Result<Self> {
        let d = means.first().map_or(0, Vec::len);
        let covs = variances
            .iter()
            .map(|&v| {
                (0..d * d)
                    .map(|j| if j % (d + 1) == 0 { v } else { 0.0 })
                    .collect()
            })
            .collect();
        Self::new(weights, means, covs)
    }

    /// The same law as an analytic [`GaussianMixture`] (where all the maths lives).
    pub fn mixture(&self) -> &GaussianMixture {
        &self.mixture
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.means[0].len()
    }

    /// Number of components K.
    pub fn num_components(&self) -> usize {
        self.means.len()
    }

    /// Normalised weights wₖ (Σₖ wₖ = 1).
    pub fn weights(&self) -> &[f64] {
        self.mixture.weights()
    }

    /// Means μₖ.
    pub fn means(&self) -> &[Vec<f64>] {
        &self.means
    }

    /// Covariances Σₖ, row-major d×d.
    pub fn covs(&self) -> &[Vec<f64>] {
        &self.covs
    }

    /// Lower Cholesky factors Lₖ (Σₖ = Lₖ Lₖᵀ), row-major d×d, one per component.
    pub fn cholesky_factors(&self) -> impl ExactSizeIterator<Item = &[f64]> + '_ {
        self.mixture.components().iter().map(Gaussian::cholesky)
    }

    /// E x = Σₖ wₖ μₖ.
    pub fn mean(&self) -> Vec<f64> {
        self.mixture.mean()
    }

    /// Cov x = Σₖ wₖ (Σₖ + μₖ μₖᵀ) − m mᵀ with m = E x, row-major d×d.
    pub fn covariance(&self) -> Vec<f64> {
        self.mixture.covariance()
    }

    /// The law of a·x + b·z with x ~ p, z ~ N(0, I) independent: Σₖ wₖ N(a μₖ, a² Σₖ + b² I)
    /// (a diffusion marginal with mean coefficient a and noise scale b).
    pub fn perturbed(&self, a: f64, b: f64) -> Result<Self> {
        let mixture = self.mixture.perturbed(a, b)?;
        let (means, covs) = mixture
            .components()
            .iter()
            .map(|c| (c.mean().to_vec(), c.cov().to_vec()))
            .unzip();
        Ok(Self {
            means,
            covs,
            mixture,
        })
    }

    /// n i.i.d. draws x = μₖ + Lₖ z, k ~ Categorical(w), z ~ N(0, I), all from `rng`.
    pub fn sample(&self, n: usize, rng: &mut Rng) -> Points {
        self.mixture.sample(n, rng)
    }

    /// [`Self::sample`] keeping each point's component k (its class label); the same draws.
    pub fn sample_labelled(&self, n: usize, rng: &mut Rng) -> (Points, Vec<usize>) {
        self.mixture.sample_labelled(n, rng)
    }

    /// log p(x) = log Σₖ wₖ N(x; μₖ, Σₖ) at one point (log-sum-exp, so far tails give finite
    /// values).
    ///
    /// # Panics
    /// If `x.len() != self.dim()` (a programming error; [`Self::log_density`] checks).
    pub fn log_density_at(&self, x: &[f64]) -> f64 {
        assert_eq!(
            x.len(),
            self.dim(),
            "MixtureSpec::log_density_at: wrong dimension"
        );
        self.mixture.log_density(x)
    }

    /// ∇ₓ log p(x) = Σₖ rₖ(x) Σₖ⁻¹(μₖ − x), with responsibilities rₖ = wₖNₖ(x) / p(x), at one point.
    ///
    /// # Panics
    /// If `x.len() != self.dim()` (a programming error; [`Self::score`] checks).
    pub fn score_at(&self, x: &[f64]) -> Vec<f64> {
        assert_eq!(
            x.len(),
            self.dim(),
            "MixtureSpec::score_at: wrong dimension"
        );
        self.mixture.score(x)
    }

    fn check_dim(&self, x: &Points) -> Result<()> {
        if x.dim() != self.dim() {
            return Err(Error::Shape(format!(
                "points have dimension {}, the mixture has dimension {}",
                x.dim(),
                self.dim()
            )));
        }
        Ok(())
    }

    /// log p(xᵢ) for every row (see [`Self::log_density_at`]); `Error::Shape` on a dimension
    /// mismatch.
    pub fn log_density(&self, x: &Points) -> Result<Vec<f64>> {
        self.check_dim(x)?;
        Ok(x.rows().map(|r| self.log_density_at(r)).collect())
    }

    /// ∇ log p(xᵢ) for every row (see [`Self::score_at`]); `Error::Shape` on a dimension
    /// mismatch.
    pub fn score(&self, x: &Points) -> Result<Points> {
        self.check_dim(x)?;
        let data = x.rows().flat_map(|r| self.score_at(r)).collect();
        Ok(Points {
            data,
            dim: self.dim(),
        })
    }
}

impl From<&MixtureSpec> for GaussianMixture {
    /// The analytic mixture of a validated data-side [`MixtureSpec`] (the mixture it holds).
    fn from(spec: &MixtureSpec) -> Self {
        spec.mixture().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use rand_distr::{Distribution, StandardNormal};

    use super::*;
    use crate::tensor::rng;

    type Feature = Box<dyn Fn(&[f64]) -> f64>;

    fn aniso() -> MixtureSpec {
        MixtureSpec::new(
            vec![0.5, 0.3, 0.2],
            vec![vec![-2.0, -1.0], vec![2.0, -1.0], vec![0.0, 2.0]],
            vec![
                vec![0.6, 0.45, 0.45, 0.6],
                vec![0.3, -0.2, -0.2, 0.4],
                vec![1.0, 0.0, 0.0, 0.05],
            ],
        )
        .unwrap()
    }

    /// Brute force in 2-D: explicit 2×2 inverse and determinant, plain sum of densities.
    fn brute_density(m: &MixtureSpec, x: &[f64]) -> f64 {
        let mut p = 0.0;
        for k in 0..m.num_components() {
            let c = &m.covs()[k];
            let det = c[0] * c[3] - c[1] * c[2];
            let (dx, dy) = (x[0] - m.means()[k][0], x[1] - m.means()[k][1]);
            let q = (c[3] * dx * dx - (c[1] + c[2]) * dx * dy + c[0] * dy * dy) / det;
            p += m.weights()[k] * (-0.5 * q).exp() / (2.0 * PI * det.sqrt());
        }
        p
    }

    #[test]
    fn log_density_matches_brute_force() {
        let m = aniso();
        let mut r = rng(1);
        let x = Points::new(
            (0..400)
                .map(|_| {
                    3.0 * {
                        let z: f64 = StandardNormal.sample(&mut r);
                        z
                    }
                })
                .collect(),
            2,
        )
        .unwrap();
        let lp = m.log_density(&x).unwrap();
        for (row, l) in x.rows().zip(lp) {
            let b = brute_density(&m, row).ln();
            // Both are exact up to rounding: relative 1e-12 on p, i.e. 1e-12 absolute on log p.
            assert!(
                (l - b).abs() < 1e-10 * (1.0 + b.abs()),
                "{row:?}: {l} vs {b}"
            );
        }
    }

    #[test]
    fn density_integrates_to_one() {
        // Midpoint rule on [-8, 8]² with h = 0.05: for a Gaussian of std σ the rule's relative
        // error is ~2·exp(−2π²σ²/h²); the smallest std is √0.05 ≈ 0.22 = 4.5h, giving ~e^{−395}.
        // The tails beyond the box are < 1e-12, so ∫p = 1 to rounding.
        let m = aniso();
        let h = 0.05;
        let n = (16.0 / h) as usize;
        let mut total = 0.0;
        for i in 0..n {
            for j in 0..n {
                let x = [-8.0 + (i as f64 + 0.5) * h, -8.0 + (j as f64 + 0.5) * h];
                total += m.log_density_at(&x).exp() * h * h;
            }
        }
        assert!((total - 1.0).abs() < 1e-8, "∫p = {total}");
    }

    #[test]
    fn score_matches_finite_differences() {
        let m = aniso();
        let mut r = rng(2);
        let h = 1e-5;
        for _ in 0..200 {
            let x: Vec<f64> = (0..2)
                .map(|_| {
                    2.5 * {
                        let z: f64 = StandardNormal.sample(&mut r);
                        z
                    }
                })
                .collect();
            let s = m.score_at(&x);
            for j in 0..2 {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[j] += h;
                xm[j] -= h;
                let fd = (m.log_density_at(&xp) - m.log_density_at(&xm)) / (2.0 * h);
                // Central difference: truncation O(h² ∂³log p) ~ 1e-10·|∂³| with |∂³| ≲ 1e3 here,
                // rounding ~ 1e-16·|log p| / h ~ 1e-10: tolerance 1e-6 (relative to 1 + |s|).
                assert!(
                    (s[j] - fd).abs() < 1e-6 * (1.0 + s[j].abs()),
                    "{x:?}[{j}]: {} vs {fd}",
                    s[j]
                );
            }
        }
    }

    #[test]
    fn samples_match_component_moments() {
        // n = 40,000 draws. Checks the mixture mean and covariance against the closed form;
        // tolerance 5 standard errors, with SE of a sample mean of f = sd(f)/√n (sd estimated).
        let m = aniso();
        let n = 40_000;
        let x = m.sample(n, &mut rng(3));
        let mean = m.mean();
        let cov = m.covariance();
        let feats: Vec<(Feature, f64)> = vec![
            (Box::new(|r: &[f64]| r[0]), mean[0]),
            (Box::new(|r: &[f64]| r[1]), mean[1]),
            (
                Box::new(|r: &[f64]| r[0] * r[0]),
                cov[0] + mean[0] * mean[0],
            ),
            (
                Box::new(|r: &[f64]| r[1] * r[1]),
                cov[3] + mean[1] * mean[1],
            ),
            (
                Box::new(|r: &[f64]| r[0] * r[1]),
                cov[1] + mean[0] * mean[1],
            ),
        ];
        for (i, (f, expect)) in feats.iter().enumerate() {
            let v: Vec<f64> = x.rows().map(f).collect();
            let mu = v.iter().sum::<f64>() / n as f64;
            let sd = (v.iter().map(|a| (a - mu).powi(2)).sum::<f64>() / n as f64).sqrt();
            assert!(
                (mu - expect).abs() < 5.0 * sd / (n as f64).sqrt(),
                "feature {i}: {mu} vs {expect}"
            );
        }
    }

    #[test]
    fn mixture_moments_closed_form() {
        // Two 1-D components: mean 0.25·(−1) + 0.75·3 = 2, E[x²] = 0.25·(2+1) + 0.75·(1+9) = 8.25.
        let m = MixtureSpec::new(
            vec![1.0, 3.0],
            vec![vec![-1.0], vec![3.0]],
            vec![vec![2.0], vec![1.0]],
        )
        .unwrap();
        assert_eq!(m.weights(), &[0.25, 0.75]);
        assert!((m.mean()[0] - 2.0).abs() < 1e-15);
        assert!((m.covariance()[0] - (8.25 - 4.0)).abs() < 1e-14);
    }

    #[test]
    fn perturbed_is_the_convolution() {
        // For one component N(μ, Σ): a x + b z ~ N(a μ, a² Σ + b² I).
        let m = aniso().perturbed(0.5, 2.0).unwrap();
        assert_eq!(m.means()[0], vec![-1.0, -0.5]);
        assert_eq!(m.covs()[2], vec![0.25 + 4.0, 0.0, 0.0, 0.0125 + 4.0]);
        assert_eq!(m.weights(), aniso().weights());
    }

    #[test]
    fn zero_weight_components_are_ignored() {
        let a = MixtureSpec::isotropic(vec![1.0, 0.0], vec![vec![0.0], vec![5.0]], &[1.0, 1.0])
            .unwrap();
        let b = MixtureSpec::isotropic(vec![1.0], vec![vec![0.0]], &[1.0]).unwrap();
        for x in [-3.0, 0.0, 4.0, 5.0] {
            assert!((a.log_density_at(&[x]) - b.log_density_at(&[x])).abs() < 1e-15);
            assert!((a.score_at(&[x])[0] + x).abs() < 1e-15);
        }
        assert!(a
            .sample(1000, &mut rng(4))
            .as_slice()
            .iter()
            .all(|v| v.abs() < 5.0));
    }

    #[test]
    fn far_tails_stay_finite() {
        let m = aniso();
        let lp = m.log_density_at(&[1e4, -1e4]);
        assert!(lp.is_finite() && lp < -1e6);
        let s = m.score_at(&[1e4, -1e4]);
        assert!(s.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn invalid_specs_are_errors() {
        let i2 = vec![1.0, 0.0, 0.0, 1.0];
        let cases: Vec<(MixtureParams, &str)> = vec![
            (
                MixtureParams {
                    weights: vec![],
                    means: vec![],
                    covs: vec![],
                },
                "no components",
            ),
            (
                MixtureParams {
                    weights: vec![-1.0],
                    means: vec![vec![0.0, 0.0]],
                    covs: vec![i2.clone()],
                },
                "weight 0",
            ),
            (
                MixtureParams {
                    weights: vec![0.0],
                    means: vec![vec![0.0, 0.0]],
                    covs: vec![i2.clone()],
                },
                "sum",
            ),
            (
                MixtureParams {
                    weights: vec![f64::NAN],
                    means: vec![vec![0.0, 0.0]],
                    covs: vec![i2.clone()],
                },
                "weight 0",
            ),
            (
                MixtureParams {
                    weights: vec![1.0],
                    means: vec![vec![0.0, 0.0]],
                    covs: vec![vec![1.0, 2.0, 2.0, 1.0]],
                },
                "positive definite",
            ),
            (
                MixtureParams {
                    weights: vec![1.0],
                    means: vec![vec![0.0, 0.0]],
                    covs: vec![vec![1.0, 0.5, 0.0, 1.0]],
                },
                "symmetric",
            ),
            (
                MixtureParams {
                    weights: vec![1.0],
                    means: vec![vec![0.0, 0.0]],
                    covs: vec![vec![1.0]],
                },
                "entries",
            ),
            (
                MixtureParams {
                    weights: vec![1.0, 1.0],
                    means: vec![vec![0.0, 0.0], vec![0.0]],
                    covs: vec![i2.clone(), i2.clone()],
                },
                "mean 1",
            ),
            (
                MixtureParams {
                    weights: vec![1.0],
                    means: vec![vec![f64::INFINITY, 0.0]],
                    covs: vec![i2.clone()],
                },
                "non-finite",
            ),
            (
                MixtureParams {
                    weights: vec![1.0, 1.0],
                    means: vec![vec![0.0, 0.0]],
                    covs: vec![i2.clone()],
                },
                "2 weights",
            ),
        ];
        for (p, needle) in cases {
            let e = MixtureSpec::try_from(p.clone()).unwrap_err().to_string();
            assert!(e.contains(needle), "{p:?}: {e}");
        }
        let m = aniso();
        assert!(matches!(
            m.log_density(&Points::new(vec![0.0; 3], 3).unwrap()),
            Err(Error::Shape(_))
        ));
    }

    #[test]
    fn serde_round_trip_validates() {
        let m = aniso();
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<MixtureSpec>(&s).unwrap(), m);
        let bad = r#"{"weights":[1.0],"means":[[0.0]],"covs":[[-1.0]]}"#;
        assert!(serde_json::from_str::<MixtureSpec>(bad).is_err());
    }
}
