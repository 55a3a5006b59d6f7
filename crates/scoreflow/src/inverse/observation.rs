//! A linear-Gaussian observation y = A x + σ_y ε, ε ~ N(0, I_{d_y}), of a point x ∈ R^d — a
//! general matrix A, or a mask (A = the rows of I at the observed coordinates: inpainting,
//! imputation of known coordinates) — with its `OBS.json` form:
//!
//! ```json
//! {"A": [[1.0, 0.5], [0.0, 2.0]], "y": [0.3, -1.2], "sigma": 0.1}
//! {"mask": [1, 0, 1], "values": [0.4, 0.0, 2.5], "sigma": 0.0}
//! ```
//!
//! `values` holds either one value per coordinate (unobserved ones ignored) or one per observed
//! coordinate. Malformed files (shapes, non-finite values, σ < 0, unknown keys) are one-line
//! errors naming what is wrong.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::gaussian::LowRankMixture;
use crate::linalg::{cholesky_inverse, cholesky_lower};
use crate::tensor::{matrix_like, Tensor};

/// y = A x + σ_y ε (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    dim: usize,
    /// A, d_y × d row-major.
    a: Vec<f64>,
    y: Vec<f64>,
    sigma: f64,
    /// The observed coordinates, for a mask observation.
    mask: Option<Vec<usize>>,
}

/// (G⁻¹, log det G) of a symmetric positive definite d × d matrix, or `None`.
pub(crate) fn invert_spd(g: &[f64], d: usize) -> Option<(Vec<f64>, f64)> {
    let l = cholesky_lower(g, d)?;
    let log_det = 2.0 * (0..d).map(|i| l[i * d + i].ln()).sum::<f64>();
    Some((cholesky_inverse(&l, d), log_det))
}

fn bad(msg: String) -> Error {
    Error::InvalidInput(format!("observation: {msg}"))
}

impl Observation {
    /// y = A x + σ ε from the rows of A (each of length d ≥ 1), y (one entry per row) and σ ≥ 0.
    pub fn new(a: Vec<Vec<f64>>, y: Vec<f64>, sigma: f64) -> Result<Self> {
        if a.is_empty() {
            return Err(bad("A has no rows".into()));
        }
        let d = a[0].len();
        if d == 0 {
            return Err(bad("A has no columns".into()));
        }
        if let Some((i, r)) = a.iter().enumerate().find(|(_, r)| r.len() != d) {
            return Err(bad(format!(
                "row {i} of A has {} entries, row 0 has {d}",
                r.len()
            )));
        }
        if y.len() != a.len() {
            return Err(bad(format!(
                "y has {} entries but A has {} rows",
                y.len(),
                a.len()
            )));
        }
        if let Some((i, _)) = a
            .iter()
            .enumerate()
            .find(|(_, r)| r.iter().any(|v| !v.is_finite()))
        {
            return Err(bad(format!("row {i} of A has a non-finite entry")));
        }
        Self::finish(d, a.concat(), y, sigma, None)
    }

    /// A mask observation: coordinates i with `mask[i]` observed with values `values` (one per
    /// coordinate, or one per observed coordinate) and noise σ ≥ 0.
    pub fn masked(mask: &[bool], values: &[f64], sigma: f64) -> Result<Self> {
        let d = mask.len();
        let observed: Vec<usize> = (0..d).filter(|&i| mask[i]).collect();
        if observed.is_empty() {
            return Err(bad("the mask observes no coordinate".into()));
        }
        let y: Vec<f64> = if values.len() == d {
            observed.iter().map(|&i| values[i]).collect()
        } else if values.len() == observed.len() {
            values.to_vec()
        } else {
            return Err(bad(format!(
                "{} values for a mask of {d} coordinates with {} observed (give {d} or {})",
                values.len(),
                observed.len(),
                observed.len()
            )));
        };
        let mut a = vec![0.0; observed.len() * d];
        for (r, &i) in observed.iter().enumerate() {
            a[r * d + i] = 1.0;
        }
        Self::finish(d, a, y, sigma, Some(observed))
    }

    fn finish(
        dim: usize,
        a: Vec<f64>,
        y: Vec<f64>,
        sigma: f64,
        mask: Option<Vec<usize>>,
    ) -> Result<Self> {
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!("observed value {i} is not finite")));
        }
        if !(sigma.is_finite() && sigma >= 0.0) {
            return Err(bad(format!("sigma must be finite and >= 0 (got {sigma})")));
        }
        Ok(Self {
            dim,
            a,
            y,
            sigma,
            mask,
        })
    }

    /// Parses the `OBS.json` text (see the module documentation); `name` prefixes errors.
    pub fn from_json(text: &str, name: &str) -> Result<Self> {
        let err = |m: String| Error::Data {
            path: name.to_string(),
            location: String::new(),
            msg: m,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| err(format!("not JSON ({e})")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| err("expected a JSON object".into()))?;
        for k in obj.keys() {
            if !["A", "y", "sigma", "mask", "values"].contains(&k.as_str()) {
                return Err(err(format!(
                    "unknown key '{k}' (expected A, y, sigma or mask, values, sigma)"
                )));
            }
        }
        let numbers = |key: &str, v: &Value| -> Result<Vec<f64>> {
            let arr = v
                .as_array()
                .ok_or_else(|| err(format!("'{key}' must be an array of numbers")))?;
            arr.iter()
                .enumerate()
                .map(|(i, x)| {
                    x.as_f64()
                        .ok_or_else(|| err(format!("'{key}'[{i}] is not a number")))
                })
                .collect()
        };
        let sigma = obj
            .get("sigma")
            .ok_or_else(|| err("missing 'sigma'".into()))?
            .as_f64()
            .ok_or_else(|| err("'sigma' must be a number".into()))?;
        let wrap = |e: Error| match e {
            Error::InvalidInput(m) => err(m.trim_start_matches("observation: ").to_string()),
            other => other,
        };
        match (
            obj.get("A"),
            obj.get("y"),
            obj.get("mask"),
            obj.get("values"),
        ) {
            (Some(a), Some(y), None, None) => {
                let rows = a
                    .as_array()
                    .ok_or_else(|| err("'A' must be an array of rows".into()))?;
                let a = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| numbers(&format!("A[{i}]"), r))
                    .collect::<Result<Vec<_>>>()?;
                Self::new(a, numbers("y", y)?, sigma).map_err(wrap)
            }
            (None, None, Some(m), Some(vals)) => {
                let m = numbers("mask", m)?;
                if let Some(i) = m.iter().position(|&b| b != 0.0 && b != 1.0) {
                    return Err(err(format!("'mask'[{i}] must be 0 or 1")));
                }
                let mask: Vec<bool> = m.iter().map(|&b| b == 1.0).collect();
                Self::masked(&mask, &numbers("values", vals)?, sigma).map_err(wrap)
            }
            _ => Err(err(
                "give either 'A' and 'y', or 'mask' and 'values' (with 'sigma')".into(),
            )),
        }
    }

    /// Reads an `OBS.json` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// The `OBS.json` text of this observation (the `A` form, or the mask form for masks).
    pub fn to_json(&self) -> String {
        let v = match &self.mask {
            Some(m) => {
                let mut mask = vec![0u8; self.dim];
                m.iter().for_each(|&i| mask[i] = 1);
                serde_json::json!({"mask": mask, "values": self.y, "sigma": self.sigma})
            }
            None => serde_json::json!({
                "A": self.a.chunks_exact(self.dim).collect::<Vec<_>>(),
                "y": self.y,
                "sigma": self.sigma
            }),
        };
        v.to_string()
    }

    /// The same observation of z = (x − μ)/σ (a model's standardised units, x = μ + σ ⊙ z):
    /// y − Aμ = A diag(σ) z + σ_y ε. A mask stays a mask when the observed coordinates share
    /// one σ = s (then (yᵢ − μᵢ)/s = zᵢ + (σ_y/s) ε); otherwise it becomes the matrix form.
    /// `Error::Shape` unless μ and σ have d entries; σ must be positive.
    pub fn standardized(&self, mean: &[f64], std: &[f64]) -> Result<Self> {
        self.check_dim(mean.len())?;
        self.check_dim(std.len())?;
        if let Some(i) = std.iter().position(|&s| !(s.is_finite() && s > 0.0)) {
            return Err(bad(format!("scale {i} of the normaliser is not positive")));
        }
        let d = self.dim;
        if let Some(m) = &self.mask {
            let s0 = std[m[0]];
            if m.iter().all(|&i| std[i] == s0) {
                let y = m
                    .iter()
                    .zip(&self.y)
                    .map(|(&i, v)| (v - mean[i]) / s0)
                    .collect();
                return Self::finish(d, self.a.clone(), y, self.sigma / s0, Some(m.clone()));
            }
        }
        let a: Vec<f64> = self
            .a
            .chunks_exact(d)
            .flat_map(|row| row.iter().zip(std).map(|(a, s)| a * s))
            .collect();
        let y = self
            .a
            .chunks_exact(d)
            .zip(&self.y)
            .map(|(row, v)| v - row.iter().zip(mean).map(|(a, m)| a * m).sum::<f64>())
            .collect();
        Self::finish(d, a, y, self.sigma, None)
    }

    /// Errors unless the observation is of points in R^`d`.
    pub fn check_dim(&self, d: usize) -> Result<()> {
        if d == self.dim {
            Ok(())
        } else {
            Err(Error::Shape(format!(
                "the observation is of points in R^{}, the model's are in R^{d}",
                self.dim
            )))
        }
    }

    /// d, the dimension of x.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// d_y, the number of observed values.
    pub fn obs_dim(&self) -> usize {
        self.y.len()
    }

    /// A, d_y × d row-major.
    pub fn matrix(&self) -> &[f64] {
        &self.a
    }

    /// y.
    pub fn values(&self) -> &[f64] {
        &self.y
    }

    /// σ_y.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The observed coordinates of a mask observation.
    pub fn mask(&self) -> Option<&[usize]> {
        self.mask.as_deref()
    }

    /// A as a `(d_y, d)` tensor like `like`.
    fn a_tensor(&self, like: &Tensor<2>) -> Tensor<2> {
        matrix_like(self.a.clone(), self.y.len(), self.dim, like)
    }

    /// A xᵢ for every row of x: `(n, d)` → `(n, d_y)`.
    pub fn apply(&self, x: &Tensor<2>) -> Tensor<2> {
        x.clone().matmul(self.a_tensor(x).transpose())
    }

    /// Aᵀ rᵢ for every row of r: `(n, d_y)` → `(n, d)`.
    pub fn adjoint(&self, r: &Tensor<2>) -> Tensor<2> {
        r.clone().matmul(self.a_tensor(r))
    }

    /// y − A xᵢ for every row: `(n, d_y)`.
    pub fn residual(&self, x: &Tensor<2>) -> Tensor<2> {
        let n = x.dims()[0];
        let y = matrix_like(self.y.repeat(n), n, self.y.len(), x);
        y - self.apply(x)
    }

    /// (σ_y² I + r² A Aᵀ)⁻¹ (d_y × d_y, row-major) and log det(σ_y² I + r² A Aᵀ): the precision
    /// of y given x̂ when x has covariance r² I around x̂. An error when the matrix is singular
    /// (σ_y = r = 0, or σ_y = 0 with a rank-deficient A).
    pub fn precision(&self, r2: f64) -> Result<(Vec<f64>, f64)> {
        let (dy, d) = (self.y.len(), self.dim);
        let mut g = vec![0.0; dy * dy];
        for i in 0..dy {
            for j in 0..dy {
                let aa: f64 = (0..d).map(|k| self.a[i * d + k] * self.a[j * d + k]).sum();
                g[i * dy + j] = r2 * aa + if i == j { self.sigma * self.sigma } else { 0.0 };
            }
        }
        invert_spd(&g, dy).ok_or_else(|| {
            bad(format!(
                "σ_y² I + r² A Aᵀ is singular (σ_y = {}, r² = {r2}): the likelihood is degenerate",
                self.sigma
            ))
        })
    }

    /// The exact posterior of a Gaussian-mixture prior: the mixture of each component's Gaussian
    /// posterior, re-weighted by its evidence ([`LowRankMixture::condition`]).
    pub fn posterior(&self, prior: &LowRankMixture) -> Result<LowRankMixture> {
        self.check_dim(prior.dim())?;
        Ok(prior
            .condition(&self.a, &self.y, self.sigma * self.sigma)?
            .0)
    }

    /// This observation shared (the posterior fields hold an `Arc`).
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }

    /// y = A x + σ ε for one point x (`rng` draws ε): a synthetic observation for benchmarks.
    pub fn observe(
        a: Vec<Vec<f64>>,
        x: &[f64],
        sigma: f64,
        rng: &mut crate::tensor::Rng,
    ) -> Result<Self> {
        use rand_distr::{Distribution, StandardNormal};
        let y = a
            .iter()
            .map(|row| {
                let e: f64 = StandardNormal.sample(rng);
                row.iter().zip(x).map(|(p, q)| p * q).sum::<f64>() + sigma * e
            })
            .collect();
        Self::new(a, y, sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{cpu, matrix, to_vec, DType};

    fn parse(s: &str) -> Result<Observation> {
        Observation::from_json(s, "OBS.json")
    }

    /// In standardised units the residual is the same: y − A x = y' − A' z for x = μ + σ ⊙ z
    /// (to rounding), σ_y is kept; a mask with equal scales stays a mask with σ_y/s, unequal
    /// scales give the matrix form (whose residual is s times the mask form's).
    #[test]
    fn standardized_observations_have_the_same_residual() {
        let (mu, sd) = ([0.5, -1.0, 2.0], [2.0, 0.5, 4.0]);
        let x = [1.5, -0.25, 3.0];
        let z: Vec<f64> = (0..3).map(|i| (x[i] - mu[i]) / sd[i]).collect();
        let xt = matrix(x.to_vec(), 1, 3, &cpu(), DType::F64);
        let zt = matrix(z.clone(), 1, 3, &cpu(), DType::F64);
        let o = parse(r#"{"A": [[1, 2, 0], [0, -1, 3]], "y": [0.5, 1.5], "sigma": 0.1}"#).unwrap();
        let s = o.standardized(&mu, &sd).unwrap();
        assert_eq!(s.sigma(), 0.1);
        for (a, b) in to_vec(&o.residual(&xt))
            .iter()
            .zip(to_vec(&s.residual(&zt)))
        {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        let m = parse(r#"{"mask": [1, 0, 1], "values": [0.4, 2.5], "sigma": 0.2}"#).unwrap();
        let eq = m.standardized(&mu, &[2.0, 1.0, 2.0]).unwrap();
        assert_eq!(eq.mask(), Some(&[0, 2][..]));
        assert_eq!(eq.values(), &[(0.4 - 0.5) / 2.0, (2.5 - 2.0) / 2.0]);
        assert_eq!(eq.sigma(), 0.1);
        let uneq = m.standardized(&mu, &sd).unwrap();
        assert!(uneq.mask().is_none());
        for (a, b) in to_vec(&m.residual(&xt))
            .iter()
            .zip(to_vec(&uneq.residual(&zt)))
        {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert!(o.standardized(&mu[..2], &sd[..2]).is_err());
        assert!(o.standardized(&mu, &[1.0, 0.0, 1.0]).is_err());
    }

    /// Both `OBS.json` forms parse (a mask's values per coordinate or per observed one), A x
    /// and Aᵀ r are the matrix products, and `to_json` round-trips.
    #[test]
    fn obs_json_forms_and_products() {
        let o = parse(r#"{"A": [[1, 2, 0], [0, -1, 3]], "y": [0.5, 1.5], "sigma": 0.1}"#).unwrap();
        assert_eq!((o.dim(), o.obs_dim(), o.sigma()), (3, 2, 0.1));
        assert_eq!(o.matrix(), &[1.0, 2.0, 0.0, 0.0, -1.0, 3.0]);
        let x = matrix(
            vec![1.0, 1.0, 1.0, 2.0, 0.0, -1.0],
            2,
            3,
            &cpu(),
            DType::F64,
        );
        assert_eq!(to_vec(&o.apply(&x)), vec![3.0, 2.0, 2.0, -3.0]);
        let r = matrix(vec![1.0, -1.0], 1, 2, &cpu(), DType::F64);
        assert_eq!(to_vec(&o.adjoint(&r)), vec![1.0, 3.0, -3.0]);
        assert_eq!(to_vec(&o.residual(&x)), vec![-2.5, -0.5, -1.5, 4.5]);
        assert_eq!(parse(&o.to_json()).unwrap(), o);
        let m = parse(r#"{"mask": [1, 0, 1], "values": [0.4, 9.0, 2.5], "sigma": 0}"#).unwrap();
        assert_eq!(m.values(), &[0.4, 2.5]);
        assert_eq!(m.mask(), Some(&[0usize, 2][..]));
        assert_eq!(m.matrix(), &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let m2 = parse(r#"{"mask": [1, 0, 1], "values": [0.4, 2.5], "sigma": 0}"#).unwrap();
        assert_eq!(m, m2);
        assert_eq!(parse(&m.to_json()).unwrap(), m);
        let (p, log_det) = o.precision(0.5).unwrap();
        // G = 0.01 I + 0.5 A Aᵀ = [[2.51, -1], [-1, 5.01]]: G⁻¹ and log det G by hand.
        let det = 2.51 * 5.01 - 1.0;
        let want = [5.01 / det, 1.0 / det, 1.0 / det, 2.51 / det];
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!((log_det - det.ln()).abs() < 1e-12);
    }

    /// Malformed files are one-line errors naming the problem.
    #[test]
    fn malformed_obs_json_is_a_one_line_error() {
        let cases = [
            ("not json", "not JSON"),
            ("[1, 2]", "JSON object"),
            (
                r#"{"A": [[1, 2], [3]], "y": [1, 2], "sigma": 1}"#,
                "row 1 of A has 1 entries",
            ),
            (
                r#"{"A": [[1, 2]], "y": [1, 2], "sigma": 1}"#,
                "y has 2 entries but A has 1 rows",
            ),
            (
                r#"{"A": [[1, "x"]], "y": [1], "sigma": 1}"#,
                "'A[0]'[1] is not a number",
            ),
            (
                r#"{"A": [[1, 2]], "y": [1], "sigma": -0.5}"#,
                "sigma must be finite and >= 0",
            ),
            (r#"{"A": [[1, 2]], "y": [1]}"#, "missing 'sigma'"),
            (
                r#"{"A": [[1, 2]], "y": [1], "sigma": 1, "noise": 2}"#,
                "unknown key 'noise'",
            ),
            (
                r#"{"A": [[1, 2]], "values": [1], "sigma": 1}"#,
                "either 'A' and 'y'",
            ),
            (
                r#"{"mask": [1, 2], "values": [1, 1], "sigma": 1}"#,
                "'mask'[1] must be 0 or 1",
            ),
            (
                r#"{"mask": [0, 0], "values": [1, 1], "sigma": 1}"#,
                "observes no coordinate",
            ),
            (
                r#"{"mask": [1, 0, 1], "values": [1], "sigma": 1}"#,
                "1 values for a mask",
            ),
            (r#"{"A": [], "y": [], "sigma": 1}"#, "A has no rows"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: '{e}' lacks '{want}'");
            assert!(e.starts_with("OBS.json") && !e.contains('\n'), "{e}");
        }
        assert!(Observation::new(vec![vec![f64::NAN]], vec![1.0], 0.0).is_err());
        assert!(Observation::new(vec![vec![1.0]], vec![f64::INFINITY], 0.0).is_err());
        let o = parse(r#"{"A": [[1, 0]], "y": [1], "sigma": 0}"#).unwrap();
        assert!(o.precision(0.0).is_err());
        assert!(o.check_dim(3).is_err());
    }
}
