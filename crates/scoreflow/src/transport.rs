//! Measuring transport: how far a flow moves mass and how straight it moves it.
//!
//! * [`wasserstein2`]: W₂(X, Y) between two samples — exact OT (an assignment, see
//!   [`crate::coupling::assignment`]) for equal sizes n ≤ [`EXACT_W2_MAX`]; above that the
//!   sliced W₂ with [`SLICED_PROJECTIONS`] random directions, which is a *different* (smaller)
//!   distance, reported as such in [`W2::method`].
//! * [`path_statistics`]: for x₀ ~ source pushed through the flow, the path energy
//!   E ∫₀¹ ‖v(x_t, t)‖² dt (integrated with the trajectory by the same solver, on the
//!   augmented state [x, e] with ė = ‖v‖², as TorchCFM's runner does), the normalised path
//!   energy |E∫‖v‖² − W₂²(x₀, x₁)| / W₂²(x₀, x₁) of Tong et al. 2024 (0 exactly when the flow is
//!   the OT map travelled at constant speed: E∫‖v‖² ≥ E‖x₁ − x₀‖² ≥ W₂²), Liu et al.'s
//!   straightness E∫‖(x₁ − x₀) − v(x_t, t)‖² dt = E∫‖v‖² − E‖x₁ − x₀‖² (0 iff every path is a
//!   straight line at constant speed), and the mean over paths of the largest distance of x_t
//!   from its chord (1 − t) x₀ + t x₁ at the solver's nodes.
//! * [`nfe_curve`]: quality against the number of field evaluations for a list of solvers.

use crate::coupling::assignment::linear_sum_assignment;
use crate::coupling::squared_distances;
use crate::data::Points;
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::metrics::sliced_wasserstein2;
use crate::solve::{odeint, OdeOptions};
use crate::tensor::{rng, to_vec, Tensor};

/// Largest n for which [`wasserstein2`] solves the exact assignment (≈ 1 s at n = 2,000).
pub const EXACT_W2_MAX: usize = 2000;

/// Directions of the sliced fallback of [`wasserstein2`].
pub const SLICED_PROJECTIONS: usize = 1024;

/// How a [`W2`] was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum W2Method {
    /// Exact OT between the two empirical distributions.
    Exact,
    /// Sliced W₂ (mean over random directions of the 1-D W₂², square-rooted).
    Sliced,
}

/// A Wasserstein-2 distance with the method that produced it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct W2 {
    /// The distance.
    pub value: f64,
    /// How it was computed.
    pub method: W2Method,
}

/// W₂(X, Y) = (min_σ (1/n) Σᵢ ‖xᵢ − y_σ(i)‖²)^{1/2} for equal sizes n ≤ [`EXACT_W2_MAX`]
/// (exact: uniform-weight OT between equal-size samples is an assignment); otherwise the
/// sliced W₂ with [`SLICED_PROJECTIONS`] directions drawn from seed 0. Errors on shapes,
/// empty or non-finite samples.
pub fn wasserstein2(x: &Points, y: &Points) -> Result<W2> {
    if x.dim() != y.dim() || x.is_empty() || y.is_empty() {
        return Err(Error::Shape(format!(
            "W₂ needs two non-empty samples of one dimension ({} points of dimension {} vs {} of dimension {})",
            x.len(),
            x.dim(),
            y.len(),
            y.dim()
        )));
    }
    if x.len() == y.len() && x.len() <= EXACT_W2_MAX {
        let n = x.len();
        let c = squared_distances(x, y);
        let sigma = linear_sum_assignment(&c, n)?;
        let total: f64 = sigma.iter().enumerate().map(|(i, &j)| c[i * n + j]).sum();
        return Ok(W2 {
            value: (total / n as f64).sqrt(),
            method: W2Method::Exact,
        });
    }
    Ok(W2 {
        value: sliced_wasserstein2(x, y, SLICED_PROJECTIONS, &mut rng(0))?,
        method: W2Method::Sliced,
    })
}

/// The path statistics of a flow from given start points (see the module documentation).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PathStats {
    /// E ∫₀¹ ‖v(x_t, t)‖² dt.
    pub path_energy: f64,
    /// E ‖x₁ − x₀‖² along the flow's own pairs.
    pub displacement_sq: f64,
    /// W₂²(x₀, x₁) between the start points and the end points as samples.
    pub w2_sq: f64,
    /// How `w2_sq` was computed.
    pub w2_method: W2Method,
    /// |path_energy − w2_sq| / w2_sq.
    pub normalized_path_energy: f64,
    /// E ∫ ‖(x₁ − x₀) − v‖² dt = path_energy − displacement_sq.
    pub straightness: f64,
    /// Mean over paths of max over the solver's nodes of ‖x_t − ((1 − t) x₀ + t x₁)‖.
    pub chord_deviation: f64,
    /// Field evaluations of the solve.
    pub nfe: usize,
    /// The end points x₁.
    #[serde(skip)]
    pub end: Option<Points>,
}

/// The field z = [x, e] ↦ [v(x, t), ‖v(x, t)‖²] on R^{d+1}.
struct WithEnergy<'a>(&'a dyn VectorField);

impl VectorField for WithEnergy<'_> {
    fn dim(&self) -> usize {
        self.0.dim() + 1
    }

    fn eval(&self, z: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let d = self.0.dim();
        let v = self.0.eval(&z.clone().narrow(1, 0, d), t);
        let e = v.clone().powi_scalar(2).sum_dim(1);
        Tensor::cat(vec![v, e], 1)
    }
}

/// Path statistics of `flow` integrated from t = 0 to 1 from the rows of `x0` (any device and
/// dtype) with `opts` (the trajectory is kept whatever `opts` says).
pub fn path_statistics(
    flow: &dyn VectorField,
    x0: &Tensor<2>,
    opts: &OdeOptions,
) -> Result<PathStats> {
    let [n, d] = x0.dims();
    if d != flow.dim() || n == 0 {
        return Err(Error::Shape(format!(
            "{n} start points of dimension {d} for a field of dimension {}",
            flow.dim()
        )));
    }
    let z0 = Tensor::cat(vec![x0.clone(), x0.zeros_like().narrow(1, 0, 1)], 1);
    let sol = odeint(
        &WithEnergy(flow),
        z0,
        0.0,
        1.0,
        &opts.clone().with_trajectory(),
    )?;
    let z1 = to_vec(&sol.x);
    let (start, end): (Vec<f64>, Vec<f64>) = (
        to_vec(x0),
        z1.chunks_exact(d + 1)
            .flat_map(|r| r[..d].iter().copied())
            .collect(),
    );
    let path_energy = z1.chunks_exact(d + 1).map(|r| r[d]).sum::<f64>() / n as f64;
    let displacement_sq = start
        .chunks_exact(d)
        .zip(end.chunks_exact(d))
        .map(|(a, b)| a.iter().zip(b).map(|(u, v)| (v - u) * (v - u)).sum::<f64>())
        .sum::<f64>()
        / n as f64;
    let mut worst = vec![0.0f64; n];
    for (t, z) in &sol.trajectory {
        let z = to_vec(z);
        for (k, w) in worst.iter_mut().enumerate() {
            let dev2: f64 = (0..d)
                .map(|i| {
                    let chord = (1.0 - t) * start[k * d + i] + t * end[k * d + i];
                    (z[k * (d + 1) + i] - chord).powi(2)
                })
                .sum();
            *w = w.max(dev2.sqrt());
        }
    }
    let (sp, ep) = (Points::new(start, d)?, Points::new(end, d)?);
    let w2 = wasserstein2(&sp, &ep)?;
    let w2_sq = w2.value * w2.value;
    Ok(PathStats {
        path_energy,
        displacement_sq,
        w2_sq,
        w2_method: w2.method,
        normalized_path_energy: (path_energy - w2_sq).abs() / w2_sq,
        straightness: path_energy - displacement_sq,
        chord_deviation: worst.iter().sum::<f64>() / n as f64,
        nfe: sol.nfe,
        end: Some(ep),
    })
}

/// One point of an NFE–quality curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// The solver's name (`euler`, `midpoint`, `dopri5`, …).
    pub method: String,
    /// Steps of a fixed-step solver; `None` for an adaptive one.
    pub steps: Option<usize>,
    /// Field evaluations used.
    pub nfe: usize,
    /// The quality measure of the end points (lower is better, e.g. a W₂).
    pub quality: f64,
}

/// For each solver in `solvers`: integrate `flow` from t = 0 to 1 from `x0` and score the end
/// points with `quality` (e.g. `|x| wasserstein2(x, &held_out).map(|w| w.value)`).
pub fn nfe_curve(
    flow: &dyn VectorField,
    x0: &Tensor<2>,
    solvers: &[OdeOptions],
    quality: &dyn Fn(&Points) -> Result<f64>,
) -> Result<Vec<CurvePoint>> {
    solvers
        .iter()
        .map(|opts| {
            let sol = odeint(flow, x0.clone(), 0.0, 1.0, opts)?;
            Ok(CurvePoint {
                method: opts.method.name().to_string(),
                steps: (!opts.is_adaptive()).then_some(opts.steps),
                nfe: sol.nfe,
                quality: quality(&Points::from_tensor(&sol.x))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solve::Method;
    use crate::tensor::{cpu, matrix_like, randn, DType};
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian(n: usize, mean: [f64; 2], std: f64, seed: u64) -> Points {
        let mut r = rng(seed);
        let data = (0..n)
            .flat_map(|_| {
                let (a, b): (f64, f64) =
                    (StandardNormal.sample(&mut r), StandardNormal.sample(&mut r));
                [mean[0] + std * a, mean[1] + std * b]
            })
            .collect();
        Points::new(data, 2).unwrap()
    }

    /// W₂ between a sample and its translate by m is ‖m‖ exactly (the identity pairing is
    /// optimal for a translation); between a sample and a permutation of itself, 0; unequal
    /// or large samples fall back to the sliced distance and say so.
    #[test]
    fn exact_w2_of_translations_and_permutations() {
        let x = gaussian(500, [0.0, 0.0], 1.0, 1);
        let shifted =
            Points::new(x.rows().flat_map(|r| [r[0] + 3.0, r[1] - 4.0]).collect(), 2).unwrap();
        let w = wasserstein2(&x, &shifted).unwrap();
        assert_eq!(w.method, W2Method::Exact);
        assert!((w.value - 5.0).abs() < 1e-9, "{w:?}");
        let rev = Points::new(x.rows().rev().flatten().copied().collect(), 2).unwrap();
        assert!(wasserstein2(&x, &rev).unwrap().value < 1e-12);
        let other = gaussian(400, [0.0, 0.0], 1.0, 2);
        assert_eq!(wasserstein2(&x, &other).unwrap().method, W2Method::Sliced);
        assert!(wasserstein2(&x, &Points::new(vec![0.0; 3], 3).unwrap()).is_err());
    }

    /// v(x, t) = m (constant): straight paths at constant speed, x₁ = x₀ + m. Path energy
    /// ‖m‖² = W₂² = E‖x₁ − x₀‖², so the normalised path energy, the straightness and the chord
    /// deviation are 0 (to rounding), with any solver.
    struct Drift([f64; 2]);
    impl VectorField for Drift {
        fn dim(&self) -> usize {
            2
        }
        fn eval(&self, x: &Tensor<2>, _t: &Tensor<1>) -> Tensor<2> {
            let n = x.dims()[0];
            matrix_like((0..n).flat_map(|_| self.0).collect(), n, 2, x)
        }
    }

    /// v(x, t) = R x with R the rotation generator [[0, −ω], [ω, 0]]: circular arcs at speed
    /// ω‖x‖, so E∫‖v‖² = ω² E‖x₀‖² = 2ω² for x₀ ~ N(0, I), while the end points are a rotation
    /// of the start points — W₂² between the two samples is ~0 (they are the same law), and
    /// the chord deviation of an arc of angle ω on a circle of radius r is r(1 − cos(ω/2)).
    struct Rotation(f64);
    impl VectorField for Rotation {
        fn dim(&self) -> usize {
            2
        }
        fn eval(&self, x: &Tensor<2>, _t: &Tensor<1>) -> Tensor<2> {
            let v = to_vec(x);
            let n = x.dims()[0];
            let w = self.0;
            let data = v
                .chunks_exact(2)
                .flat_map(|r| [-w * r[1], w * r[0]])
                .collect();
            matrix_like(data, n, 2, x)
        }
    }

    #[test]
    fn path_statistics_of_exact_fields() {
        let x0 = randn(1000, 2, &cpu(), DType::F64, &mut rng(3));
        for opts in [
            OdeOptions::fixed(Method::Euler, 4),
            OdeOptions::fixed(Method::Midpoint, 10),
            OdeOptions::dopri5(1e-8, 1e-8),
        ] {
            let s = path_statistics(&Drift([3.0, 4.0]), &x0, &opts).unwrap();
            assert!((s.path_energy - 25.0).abs() < 1e-9, "{s:?}");
            assert!(s.normalized_path_energy < 1e-9 && s.straightness.abs() < 1e-9);
            assert!(s.chord_deviation < 1e-9 && s.w2_method == W2Method::Exact);
        }
        let omega = 1.0;
        let s =
            path_statistics(&Rotation(omega), &x0, &OdeOptions::fixed(Method::Rk4, 100)).unwrap();
        let r2 = to_vec(&x0)
            .chunks_exact(2)
            .map(|r| r[0] * r[0] + r[1] * r[1])
            .sum::<f64>()
            / 1000.0;
        let r1 = to_vec(&x0)
            .chunks_exact(2)
            .map(|r| r[0].hypot(r[1]))
            .sum::<f64>()
            / 1000.0;
        assert!((s.path_energy - omega * omega * r2).abs() < 1e-6, "{s:?}");
        // |x₁ − x₀| = 2r sin(ω/2) exactly on each arc.
        let chord2 = 4.0 * r2 * (omega / 2.0).sin().powi(2);
        assert!((s.displacement_sq - chord2).abs() < 1e-6);
        assert!((s.straightness - (s.path_energy - chord2)).abs() < 1e-6);
        // Deviation at the arc's midpoint (a node at t = 0.5): r(1 − cos(ω/2)).
        assert!((s.chord_deviation - r1 * (1.0 - (omega / 2.0).cos())).abs() < 1e-6 * r1);
        // The start and end samples are rotations of each other: W₂ small, NPE near 1.
        assert!(s.w2_sq < 0.05 * s.path_energy && s.normalized_path_energy > 0.9);
    }

    #[test]
    fn nfe_curve_counts_evaluations() {
        let x0 = randn(200, 2, &cpu(), DType::F64, &mut rng(1));
        let pts = [
            OdeOptions::fixed(Method::Euler, 3),
            OdeOptions::fixed(Method::Midpoint, 3),
            OdeOptions::dopri5(1e-5, 1e-5),
        ];
        let target = Points::from_tensor(&x0);
        let c = nfe_curve(&Drift([1.0, 0.0]), &x0, &pts, &|x| {
            Ok(wasserstein2(x, &target)?.value)
        })
        .unwrap();
        assert_eq!((c[0].nfe, c[0].steps), (3, Some(3)));
        assert_eq!((c[1].nfe, c[1].steps), (6, Some(3)));
        assert_eq!(c[2].steps, None);
        assert!(c.iter().all(|p| (p.quality - 1.0).abs() < 1e-9));
    }
}
