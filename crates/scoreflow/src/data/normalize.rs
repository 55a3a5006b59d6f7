//! Per-dimension standardisation z = (x − μ) / σ. A model is trained on z; the fitted
//! [`Normalizer`] is stored with the model (it is serde-serialisable) and its
//! [`invert`](Normalizer::invert) maps generated samples back to data units, x = μ + σ z.

use serde::{Deserialize, Serialize};

use super::{MixtureSpec, Points};
use crate::error::{Error, Result};
use crate::tensor::{matrix_like, Tensor};

/// Whether a run standardises its data (`--normalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NormalizeMode {
    /// Standardise file data; leave built-in sets as they are (they are already at the scale
    /// of the reference scripts).
    #[default]
    Auto,
    /// Always standardise.
    Yes,
    /// Never standardise.
    No,
}

/// z = (x − μ) / σ per dimension, with μ the data mean and σ the (population) standard deviation
/// floored at [`Normalizer::STD_FLOOR_REL`]·max(1, |μ|) so constant columns never divide by 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Per-dimension mean μ.
    pub mean: Vec<f64>,
    /// Per-dimension scale σ > 0.
    pub std: Vec<f64>,
}

impl Normalizer {
    /// Relative floor ε of σ: σⱼ ≥ ε·max(1, |μⱼ|), far above rounding noise of a constant column
    /// (~1e-16·|μ|) and far below any real spread.
    pub const STD_FLOOR_REL: f64 = 1e-12;

    /// μⱼ = mean of column j, σⱼ = max(√(mean (xⱼ − μⱼ)²), ε·max(1, |μⱼ|)); `Error::InvalidInput`
    /// for no points or a non-finite value.
    pub fn fit(x: &Points) -> Result<Self> {
        if x.is_empty() {
            return Err(Error::InvalidInput(
                "cannot fit a normaliser to zero points".into(),
            ));
        }
        if let Some(i) = x.as_slice().iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "cannot fit a normaliser: row {} has a non-finite value",
                i / x.dim()
            )));
        }
        let (n, d) = (x.len() as f64, x.dim());
        let mut mean = vec![0.0; d];
        for r in x.rows() {
            mean.iter_mut().zip(r).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; d];
        for r in x.rows() {
            for j in 0..d {
                var[j] += (r[j] - mean[j]).powi(2);
            }
        }
        let std = var
            .iter()
            .zip(&mean)
            .map(|(v, m)| (v / n).sqrt().max(Self::STD_FLOOR_REL * m.abs().max(1.0)))
            .collect();
        Ok(Self { mean, std })
    }

    /// The identity map (μ = 0, σ = 1) in dimension d.
    pub fn identity(d: usize) -> Self {
        Self {
            mean: vec![0.0; d],
            std: vec![1.0; d],
        }
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Checks the invariants (equal lengths ≥ 1, finite μ, finite σ > 0), e.g. after
    /// deserialising.
    pub fn validate(&self) -> Result<()> {
        let ok = !self.mean.is_empty()
            && self.mean.len() == self.std.len()
            && self.mean.iter().all(|m| m.is_finite())
            && self.std.iter().all(|s| s.is_finite() && *s > 0.0);
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "invalid normaliser: need equal-length finite mean and positive std, got mean {:?}, std {:?}",
                self.mean, self.std
            )))
        }
    }

    fn check_dim(&self, d: usize) -> Result<()> {
        if d != self.dim() {
            return Err(Error::Shape(format!(
                "points have dimension {d}, the normaliser has dimension {}",
                self.dim()
            )));
        }
        Ok(())
    }

    fn map(&self, x: &Points, f: impl Fn(f64, f64, f64) -> f64) -> Result<Points> {
        self.check_dim(x.dim())?;
        let d = x.dim();
        let data = x
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, &v)| f(v, self.mean[i % d], self.std[i % d]))
            .collect();
        Ok(Points { data, dim: d })
    }

    /// z = (x − μ) / σ row-wise; `Error::Shape` on a dimension mismatch.
    pub fn apply(&self, x: &Points) -> Result<Points> {
        self.map(x, |v, m, s| (v - m) / s)
    }

    /// x = μ + σ z row-wise (back to data units); `Error::Shape` on a dimension mismatch.
    pub fn invert(&self, z: &Points) -> Result<Points> {
        self.map(z, |v, m, s| m + s * v)
    }

    /// log |det ∂z/∂x|⁻¹ = Σᵢ ln σᵢ: a density in model units becomes one in data units as
    /// log p_x(x) = log p_z(z) − Σᵢ ln σᵢ.
    pub fn log_det(&self) -> f64 {
        self.std.iter().map(|s| s.ln()).sum()
    }

    /// The law of z = (x − μ)/σ for x ~ Σₖ wₖ N(μₖ, Σₖ): Σₖ wₖ N((μₖ − μ)/σ, Σₖ,ᵢⱼ/(σᵢσⱼ));
    /// `Error::Shape` on a dimension mismatch.
    pub fn apply_mixture(&self, spec: &MixtureSpec) -> Result<MixtureSpec> {
        let d = spec.dim();
        self.check_dim(d)?;
        let means = spec
            .means()
            .iter()
            .map(|m| {
                m.iter()
                    .enumerate()
                    .map(|(i, v)| (v - self.mean[i]) / self.std[i])
                    .collect()
            })
            .collect();
        let covs = spec
            .covs()
            .iter()
            .map(|c| {
                (0..d * d)
                    .map(|k| c[k] / (self.std[k / d] * self.std[k % d]))
                    .collect()
            })
            .collect();
        MixtureSpec::new(spec.weights().to_vec(), means, covs)
    }

    fn rows_like(&self, x: &Tensor<2>) -> Result<(Tensor<2>, Tensor<2>)> {
        let d = x.dims()[1];
        self.check_dim(d)?;
        Ok((
            matrix_like(self.mean.clone(), 1, d, x),
            matrix_like(self.std.clone(), 1, d, x),
        ))
    }

    /// z = (x − μ) / σ on an `(n, d)` tensor (same device and dtype; differentiable).
    pub fn apply_tensor(&self, x: &Tensor<2>) -> Result<Tensor<2>> {
        let (m, s) = self.rows_like(x)?;
        Ok((x.clone() - m) / s)
    }

    /// x = μ + σ z on an `(n, d)` tensor (same device and dtype; differentiable).
    pub fn invert_tensor(&self, z: &Tensor<2>) -> Result<Tensor<2>> {
        let (m, s) = self.rows_like(z)?;
        Ok(z.clone() * s + m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{cpu, to_vec, DType};

    fn pts() -> Points {
        // Column 0: 1, 2, 3, 6 → μ = 3, σ² = (4 + 1 + 0 + 9)/4 = 3.5. Column 1 constant 5.
        Points::new(vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0, 6.0, 5.0], 2).unwrap()
    }

    #[test]
    fn fit_is_mean_and_population_std() {
        let n = Normalizer::fit(&pts()).unwrap();
        assert_eq!(n.mean, vec![3.0, 5.0]);
        assert!((n.std[0] - 3.5f64.sqrt()).abs() < 1e-15);
        // Constant column: σ floored at 1e-12·|μ| = 5e-12.
        assert_eq!(n.std[1], 5e-12);
        let z = n.apply(&pts()).unwrap();
        // Standardised: column means 0, column 0 population variance 1, constant column 0.
        let col0: Vec<f64> = z.rows().map(|r| r[0]).collect();
        assert!(col0.iter().sum::<f64>().abs() < 1e-14);
        assert!((col0.iter().map(|v| v * v).sum::<f64>() / 4.0 - 1.0).abs() < 1e-14);
        assert!(z.rows().all(|r| r[1] == 0.0));
    }

    #[test]
    fn invert_undoes_apply_on_points_and_tensors() {
        let n = Normalizer::fit(&pts()).unwrap();
        let back = n.invert(&n.apply(&pts()).unwrap()).unwrap();
        for (a, b) in back.as_slice().iter().zip(pts().as_slice()) {
            assert!((a - b).abs() < 1e-14 * (1.0 + b.abs()));
        }
        for dtype in [DType::F64, DType::F32] {
            let x = pts().to_tensor(&cpu(), dtype);
            let z = n.apply_tensor(&x).unwrap();
            assert_eq!(z.dtype(), dtype);
            let host = n.apply(&pts()).unwrap();
            // f32: relative rounding 6e-8 of values ≤ 6 divided by σ ≈ 1.87.
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            for (a, b) in to_vec(&z).iter().zip(host.as_slice()) {
                assert!((a - b).abs() < tol, "{a} vs {b}");
            }
            let xb = to_vec(&n.invert_tensor(&z).unwrap());
            for (a, b) in xb.iter().zip(pts().as_slice()) {
                assert!((a - b).abs() < tol * 10.0, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn errors() {
        let n = Normalizer::fit(&pts()).unwrap();
        let p3 = Points::new(vec![0.0; 6], 3).unwrap();
        assert!(matches!(n.apply(&p3), Err(Error::Shape(_))));
        assert!(matches!(n.invert(&p3), Err(Error::Shape(_))));
        assert!(n.apply_tensor(&p3.to_tensor(&cpu(), DType::F64)).is_err());
        assert!(Normalizer::fit(&Points::new(vec![], 2).unwrap()).is_err());
        let e =
            Normalizer::fit(&Points::new(vec![0.0, 1.0, f64::NAN, 2.0], 2).unwrap()).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        assert!(Normalizer {
            mean: vec![0.0],
            std: vec![0.0]
        }
        .validate()
        .is_err());
        assert!(Normalizer {
            mean: vec![0.0],
            std: vec![1.0, 1.0]
        }
        .validate()
        .is_err());
        assert!(n.validate().is_ok());
        // serde_json (without its `float_roundtrip` feature) may move the last bit of a float.
        let back: Normalizer = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        for (a, b) in back
            .mean
            .iter()
            .chain(&back.std)
            .zip(n.mean.iter().chain(&n.std))
        {
            assert!((a - b).abs() <= 2.0 * f64::EPSILON * b.abs());
        }
    }

    /// Change of variables: for z = (x − μ)/σ, log p_z(z) = log p_x(x) + Σᵢ log σᵢ and
    /// ∇_z log p_z(z) = σ ⊙ ∇ₓ log p_x(x); both sides are exact up to rounding (1e-12).
    #[test]
    fn apply_mixture_is_the_law_of_z() {
        let spec = MixtureSpec::new(
            vec![0.3, 0.7],
            vec![vec![1.0, -2.0], vec![-0.5, 4.0]],
            vec![vec![0.5, 0.2, 0.2, 2.0], vec![1.5, -0.4, -0.4, 0.3]],
        )
        .unwrap();
        let norm = Normalizer {
            mean: vec![0.25, 1.0],
            std: vec![0.8, 2.5],
        };
        let z = norm.apply_mixture(&spec).unwrap();
        let log_jac: f64 = norm.std.iter().map(|s| s.ln()).sum();
        let x = Points::new(vec![0.0, 0.0, 1.2, -1.5, -2.0, 5.0], 2).unwrap();
        let zs = norm.apply(&x).unwrap();
        for (xr, zr) in x.rows().zip(zs.rows()) {
            let (lx, lz) = (spec.log_density_at(xr), z.log_density_at(zr));
            assert!(
                (lz - (lx + log_jac)).abs() < 1e-12,
                "{lz} vs {lx} + {log_jac}"
            );
            let (sx, sz) = (spec.score_at(xr), z.score_at(zr));
            for i in 0..2 {
                let want = norm.std[i] * sx[i];
                assert!((sz[i] - want).abs() < 1e-12 * (1.0 + want.abs()));
            }
        }
        assert_eq!(z.weights(), spec.weights());
        assert!(matches!(
            Normalizer::identity(3).apply_mixture(&spec),
            Err(Error::Shape(_))
        ));
    }
}
