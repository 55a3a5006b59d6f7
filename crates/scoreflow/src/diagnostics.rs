//! Diagnostics of a vector field v(x, t) at given points: is it a gradient field, how stiff is
//! it, which explicit-Euler step is stable, how far is it from a reference field.
//!
//! At each point the Jacobian J = ∂v/∂x is computed by d Jacobian–vector products
//! ([`VectorField::jacobian`]: exact for fields with exact tangents, e.g. the MLP and analytic
//! scores; central differences otherwise). From J:
//! * **antisymmetric share** ‖J_A‖_F / ‖J‖_F with J_A = (J − Jᵀ)/2. A score s = ∇log p has a
//!   symmetric Jacobian (the Hessian of log p), so its share is 0; a pure rotation
//!   v = (−y, x) has J = J_A and share 1. (Without the ½, ‖J − Jᵀ‖/‖J‖ would be 2 for a rotation;
//!   with it the share lies in \[0, 1\] for every J, since ‖J‖² = ‖J_S‖² + ‖J_A‖².)
//! * **eigenvalues** of J (complex in general) and of its symmetric part J_S = (J + Jᵀ)/2 (real;
//!   for a score J_S = J is the Hessian of log p);
//! * **stiffness ratio** max|λ| / min|λ| over the eigenvalues of J (`None` when min|λ| = 0);
//! * **largest stable explicit-Euler step** of the linearised flow ẋ = J x: Euler multiplies the
//!   mode of λ by 1 + hλ per step, and |1 + hλ| ≤ 1 ⇔ h ≤ −2 Re λ / |λ|² when Re λ < 0, so
//!   h_max = min over eigenvalues with Re λ < 0 of −2 Re λ / |λ|² (`None` when there are none).
//!   The other eigenvalues impose no step-size limit and are counted instead: Re λ > 0
//!   (`expanding_modes`) are modes the exact flow itself amplifies; Re λ = 0, λ ≠ 0
//!   (`oscillatory_modes`) are rotations, which Euler amplifies by √(1 + h²|λ|²) per step for
//!   every h > 0;
//! * **curl** in 2-D, ∂v₂/∂x₁ − ∂v₁/∂x₂ (= 2 for v = (−y, x));
//! * **divergence** tr J;
//! * with a reference field s_ref: ‖v − s_ref‖ and ‖v − s_ref‖ / ‖s_ref‖.
//!
//! Eigenvalues of the small dense d×d matrices are computed on the host: the closed form for
//! d ≤ 2, otherwise reduction to Hessenberg form by stabilised elimination followed by the
//! shifted double-step QR iteration (Francis; EISPACK `elmhes` + `hqr`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::tensor::{matrix, to_vec, vector, DType, Device, Tensor};

/// Diagnostics at one point (x, t).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointDiagnostics {
    /// The point x.
    pub x: Vec<f64>,
    /// The time t.
    pub t: f64,
    /// J\[i·d + j\] = ∂vᵢ/∂xⱼ, row-major.
    pub jacobian: Vec<f64>,
    /// ‖(J − Jᵀ)/2‖_F / ‖J‖_F ∈ \[0, 1\] (0 when J = 0).
    pub antisymmetric_share: f64,
    /// Eigenvalues (Re λ, Im λ) of J, sorted by real part.
    pub eigenvalues: Vec<[f64; 2]>,
    /// Eigenvalues of (J + Jᵀ)/2, ascending (the Hessian spectrum for a score).
    pub symmetric_eigenvalues: Vec<f64>,
    /// max|λ| / min|λ| over eigenvalues of J; `None` when min|λ| = 0.
    pub stiffness_ratio: Option<f64>,
    /// min over Re λ < 0 of −2 Re λ / |λ|²; `None` when no eigenvalue has Re λ < 0.
    pub h_max: Option<f64>,
    /// Number of eigenvalues with Re λ > 0.
    pub expanding_modes: usize,
    /// Number of eigenvalues with Re λ = 0 and Im λ ≠ 0.
    pub oscillatory_modes: usize,
    /// ∇·v = tr J.
    pub divergence: f64,
    /// ∂v₂/∂x₁ − ∂v₁/∂x₂ (d = 2 only).
    pub curl: Option<f64>,
    /// ‖v − s_ref‖ (with a reference field).
    pub error: Option<f64>,
    /// ‖v − s_ref‖ / ‖s_ref‖ (with a reference field; `None` where s_ref = 0).
    pub relative_error: Option<f64>,
}

/// Mean, extremes and quantiles (linear interpolation) of the finite values of a quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of finite values summarised (points where the quantity is undefined are skipped).
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// 5% quantile.
    pub q05: f64,
    /// Median.
    pub q50: f64,
    /// 95% quantile.
    pub q95: f64,
    /// Maximum.
    pub max: f64,
}

impl Stats {
    /// Summary of the finite entries of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| {
            let pos = p * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Some(Stats {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v[0],
            q05: q(0.05),
            q50: q(0.5),
            q95: q(0.95),
            max: v[v.len() - 1],
        })
    }
}

/// Aggregates of the per-point diagnostics over all points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Aggregate of the antisymmetric share ‖(J − Jᵀ)/2‖_F / ‖J‖_F.
    pub antisymmetric_share: Option<Stats>,
    /// Aggregate of the stiffness ratio max|λ| / min|λ| (points with a defined ratio).
    pub stiffness_ratio: Option<Stats>,
    /// Aggregate of h_max (points with a defined bound); its `min` is the step stable everywhere.
    pub h_max: Option<Stats>,
    /// Aggregate of the divergence ∇·v.
    pub divergence: Option<Stats>,
    /// Aggregate of the curl ∂v₂/∂x₁ − ∂v₁/∂x₂ (2-D).
    pub curl: Option<Stats>,
    /// Aggregate of ‖v − s_ref‖ (mean and max are the error numbers).
    pub error: Option<Stats>,
    /// Relative RMS error √(Σ‖v − s_ref‖² / Σ‖s_ref‖²) over all points.
    pub relative_error: Option<f64>,
}

/// Per-point diagnostics and their aggregates over all points (serialised flat: `dim`,
/// `points` and the [`Summary`] fields side by side).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Dimension d.
    pub dim: usize,
    /// Per-point values, in input order.
    pub points: Vec<PointDiagnostics>,
    /// The aggregates.
    #[serde(flatten)]
    pub summary: Summary,
}

/// Diagnostics of `field` at the rows of `x` (times `t`, one per row), optionally against a
/// reference field (e.g. the true score). Errors on shape mismatch or non-finite values.
pub fn diagnose(
    field: &dyn VectorField,
    x: &Tensor<2>,
    t: &Tensor<1>,
    reference: Option<&dyn VectorField>,
) -> Result<Diagnostics> {
    let [n, d] = x.dims();
    if d != field.dim() {
        return Err(Error::Shape(format!(
            "points have dimension {d}, the field expects {}",
            field.dim()
        )));
    }
    if t.dims()[0] != n {
        return Err(Error::Shape(format!(
            "{n} points but {} times",
            t.dims()[0]
        )));
    }
    if let Some(r) = reference {
        if r.dim() != d {
            return Err(Error::Shape(format!(
                "reference field has dimension {}, the field {d}",
                r.dim()
            )));
        }
    }
    if n == 0 {
        return Err(Error::InvalidInput("no points to diagnose".into()));
    }
    let (v, jac) = field.jacobian(x, t);
    let (xs, ts, vs, js) = (to_vec(x), to_vec(t), to_vec(&v), to_vec(&jac));
    if js.iter().chain(&vs).any(|v| !v.is_finite()) {
        return Err(Error::InvalidInput(
            "the field or its Jacobian is not finite at some point".into(),
        ));
    }
    let refs = reference.map(|r| to_vec(&r.eval(x, t)));
    let mut points = Vec::with_capacity(n);
    let (mut sq_err, mut sq_ref) = (0.0, 0.0);
    for r in 0..n {
        let j = &js[r * d * d..(r + 1) * d * d];
        let mut p = analyse_jacobian(j, d);
        p.x = xs[r * d..(r + 1) * d].to_vec();
        p.t = ts[r];
        if let Some(rv) = &refs {
            let (vr, sr) = (&vs[r * d..(r + 1) * d], &rv[r * d..(r + 1) * d]);
            let e2: f64 = vr.iter().zip(sr).map(|(a, b)| (a - b) * (a - b)).sum();
            let s2: f64 = sr.iter().map(|b| b * b).sum();
            sq_err += e2;
            sq_ref += s2;
            p.error = Some(e2.sqrt());
            p.relative_error = (s2 > 0.0).then(|| (e2 / s2).sqrt());
        }
        points.push(p);
    }
    let stat =
        |f: &dyn Fn(&PointDiagnostics) -> Option<f64>| Stats::of(points.iter().filter_map(f));
    let summary = Summary {
        antisymmetric_share: stat(&|p| Some(p.antisymmetric_share)),
        stiffness_ratio: stat(&|p| p.stiffness_ratio),
        h_max: stat(&|p| p.h_max),
        divergence: stat(&|p| Some(p.divergence)),
        curl: stat(&|p| p.curl),
        error: stat(&|p| p.error),
        relative_error: (reference.is_some() && sq_ref > 0.0).then(|| (sq_err / sq_ref).sqrt()),
    };
    Ok(Diagnostics {
        dim: d,
        points,
        summary,
    })
}

/// Diagnostics on a regular 2-D grid, for maps: points are row-major with y outer
/// (`points[iy·nx + ix]` is at (xs\[ix\], ys\[iy\])).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridDiagnostics {
    /// Grid abscissae (nx).
    pub xs: Vec<f64>,
    /// Grid ordinates (ny).
    pub ys: Vec<f64>,
    /// Diagnostics at the grid points.
    pub diagnostics: Diagnostics,
}

/// [`diagnose`] on the nx × ny grid of \[x_lo, x_hi\] × \[y_lo, y_hi\] at time t, in `dtype` on
/// `device`. Errors for a field that is not 2-D or a grid with fewer than 2 nodes per axis.
pub fn diagnose_grid(
    field: &dyn VectorField,
    t: f64,
    x_range: (f64, f64),
    y_range: (f64, f64),
    (nx, ny): (usize, usize),
    reference: Option<&dyn VectorField>,
    (device, dtype): (&Device, DType),
) -> Result<GridDiagnostics> {
    if field.dim() != 2 {
        return Err(Error::Shape(format!(
            "grid maps need a 2-D field, got dimension {}",
            field.dim()
        )));
    }
    let valid = |(lo, hi): (f64, f64)| lo.is_finite() && hi.is_finite() && lo < hi;
    if nx < 2 || ny < 2 || !valid(x_range) || !valid(y_range) {
        return Err(Error::InvalidInput(format!(
            "invalid grid {nx}×{ny} over {x_range:?} × {y_range:?}"
        )));
    }
    let (xs, ys, pts) = grid_2d(x_range, y_range, (nx, ny));
    let x = matrix(pts, nx * ny, 2, device, dtype);
    let tv = vector(vec![t; nx * ny], device, dtype);
    Ok(GridDiagnostics {
        diagnostics: diagnose(field, &x, &tv, reference)?,
        xs,
        ys,
    })
}

/// The nx × ny grid of \[x_lo, x_hi\] × \[y_lo, y_hi\] (nodes on the edges, nx, ny ≥ 2): its
/// abscissae, ordinates and the row-major points (y outer), flattened as (x, y) pairs.
pub(crate) fn grid_2d(
    x_range: (f64, f64),
    y_range: (f64, f64),
    (nx, ny): (usize, usize),
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let lin = |(lo, hi): (f64, f64), k: usize| {
        (0..k)
            .map(|i| lo + (hi - lo) * i as f64 / (k - 1) as f64)
            .collect::<Vec<_>>()
    };
    let (xs, ys) = (lin(x_range, nx), lin(y_range, ny));
    let pts = ys
        .iter()
        .flat_map(|y| xs.iter().flat_map(move |x| [*x, *y]))
        .collect();
    (xs, ys, pts)
}

/// Everything that depends on J alone (x, t and the reference errors are filled by the caller).
fn analyse_jacobian(j: &[f64], d: usize) -> PointDiagnostics {
    let (mut norm2, mut anti2, mut tr) = (0.0, 0.0, 0.0);
    let mut sym = vec![0.0; d * d];
    for a in 0..d {
        tr += j[a * d + a];
        for b in 0..d {
            let (jab, jba) = (j[a * d + b], j[b * d + a]);
            norm2 += jab * jab;
            anti2 += 0.25 * (jab - jba) * (jab - jba);
            sym[a * d + b] = 0.5 * (jab + jba);
        }
    }
    let eig = eigenvalues(j, d);
    let mut sym_eig: Vec<f64> = eigenvalues(&sym, d).into_iter().map(|[re, _]| re).collect();
    sym_eig.sort_by(|a, b| a.total_cmp(b));
    let moduli: Vec<f64> = eig.iter().map(|[re, im]| re.hypot(*im)).collect();
    let (max_mod, min_mod) = moduli.iter().fold((0.0f64, f64::INFINITY), |(hi, lo), m| {
        (hi.max(*m), lo.min(*m))
    });
    // Re λ counts as 0 below a relative rounding tolerance.
    let tol = 1e-10 * max_mod;
    let mut h_max: Option<f64> = None;
    let (mut expanding, mut oscillatory) = (0, 0);
    for ([re, im], m) in eig.iter().zip(&moduli) {
        if *re < -tol {
            let h = -2.0 * re / (m * m);
            h_max = Some(h_max.map_or(h, |b| b.min(h)));
        } else if *re > tol {
            expanding += 1;
        } else if im.abs() > tol {
            oscillatory += 1;
        }
    }
    PointDiagnostics {
        x: Vec::new(),
        t: 0.0,
        jacobian: j.to_vec(),
        antisymmetric_share: if norm2 > 0.0 {
            (anti2 / norm2).sqrt()
        } else {
            0.0
        },
        eigenvalues: eig,
        symmetric_eigenvalues: sym_eig,
        stiffness_ratio: (min_mod > 0.0).then(|| max_mod / min_mod),
        h_max,
        expanding_modes: expanding,
        oscillatory_modes: oscillatory,
        divergence: tr,
        curl: (d == 2).then(|| j[2] - j[1]),
        error: None,
        relative_error: None,
    }
}

/// Eigenvalues of a real square matrix (moved to [`crate::linalg`], re-exported here).
pub use crate::linalg::eigenvalues;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::FnField;
    use crate::solve::ode::{odeint, Method, OdeOptions};
    use crate::tensor::{cpu, matrix_like, randn, rng, times_like};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    /// Eigenvalues against closed forms: a companion matrix with roots 1, −2, 3 ± 4i, 0.5
    /// (d = 5, complex pair), a symmetric tridiagonal matrix (2 − 2cos(kπ/(d+1))), a 2×2 rotation
    /// (±i) and a random 7×7 matrix checked through tr A = Σλ and tr A² = Σλ².
    #[test]
    fn eigenvalues_match_closed_forms() {
        // Companion matrix of Π(z − rᵢ) = z⁵ + c₄z⁴ + … + c₀.
        let roots: [[f64; 2]; 5] = [[1.0, 0.0], [-2.0, 0.0], [3.0, 4.0], [3.0, -4.0], [0.5, 0.0]];
        let mut poly = vec![[1.0, 0.0]]; // complex coefficients, highest degree first
        for r in roots {
            let mut next = vec![[0.0, 0.0]; poly.len() + 1];
            for (i, c) in poly.iter().enumerate() {
                next[i][0] += c[0];
                next[i][1] += c[1];
                next[i + 1][0] -= c[0] * r[0] - c[1] * r[1];
                next[i + 1][1] -= c[0] * r[1] + c[1] * r[0];
            }
            poly = next;
        }
        let d = 5;
        let mut a = vec![0.0; d * d];
        for j in 0..d {
            a[j] = -poly[j + 1][0];
        }
        for i in 1..d {
            a[i * d + i - 1] = 1.0;
        }
        let got = eigenvalues(&a, d);
        let mut want = roots.to_vec();
        want.sort_by(|x, y| x[0].total_cmp(&y[0]).then(x[1].total_cmp(&y[1])));
        for (g, w) in got.iter().zip(&want) {
            assert!(
                close(g[0], w[0], 1e-9) && close(g[1], w[1], 1e-9),
                "companion: {got:?} vs {want:?}"
            );
        }

        let d = 6;
        let mut tri = vec![0.0; d * d];
        for i in 0..d {
            tri[i * d + i] = 2.0;
            if i + 1 < d {
                tri[i * d + i + 1] = -1.0;
                tri[(i + 1) * d + i] = -1.0;
            }
        }
        let got = eigenvalues(&tri, d);
        for (k, g) in got.iter().enumerate() {
            let w = 2.0 - 2.0 * ((k + 1) as f64 * std::f64::consts::PI / (d + 1) as f64).cos();
            assert!(
                close(g[0], w, 1e-12) && g[1].abs() < 1e-12,
                "tridiagonal {k}: {g:?} vs {w}"
            );
        }

        assert_eq!(
            eigenvalues(&[0.0, -1.0, 1.0, 0.0], 2),
            vec![[0.0, -1.0], [0.0, 1.0]]
        );

        // The cyclic permutation of 4 (eigenvalues ±1, ±i) defeats unshifted QR: it needs the
        // exceptional shifts.
        let perm = [
            0., 0., 0., 1., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0.,
        ];
        let got = eigenvalues(&perm, 4);
        let want = [[-1.0, 0.0], [0.0, -1.0], [0.0, 1.0], [1.0, 0.0]];
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g[0] - w[0]).abs() < 1e-12 && (g[1] - w[1]).abs() < 1e-12,
                "permutation: {got:?}"
            );
        }

        // Random matrices: Σλᵏ = tr Aᵏ for k = 1, 2, 3 (the power sums fix a cubic's roots).
        for d in 3..=9 {
            let a = to_vec(&randn(d, d, &cpu(), DType::F64, &mut rng(9 + d as u64)));
            let ev = eigenvalues(&a, d);
            let mut ak = a.clone();
            for k in 1..=3 {
                let tr: f64 = (0..d).map(|i| ak[i * d + i]).sum();
                let (mut re, mut im) = (0.0, 0.0);
                for e in &ev {
                    let (mut pr, mut pi) = (1.0, 0.0);
                    for _ in 0..k {
                        (pr, pi) = (pr * e[0] - pi * e[1], pr * e[1] + pi * e[0]);
                    }
                    re += pr;
                    im += pi;
                }
                assert!(
                    close(re, tr, 1e-9) && im.abs() < 1e-9,
                    "random {d}x{d}, k = {k}: {re} + {im}i vs {tr}"
                );
                let mut next = vec![0.0; d * d];
                for i in 0..d {
                    for l in 0..d {
                        for j in 0..d {
                            next[i * d + j] += ak[i * d + l] * a[l * d + j];
                        }
                    }
                }
                ak = next;
            }
        }
    }

    /// v = (−y, x): J = [[0, −1], [1, 0]] is antisymmetric, so share 1, curl 2, eigenvalues ±i
    /// (two oscillatory modes, no Euler step bound), divergence 0. The default finite-difference
    /// Jacobian of this linear field is exact to rounding.
    #[test]
    fn rotation_has_share_one_and_curl_two() {
        let rot = FnField::new(2, |x: &Tensor<2>, _t: &Tensor<1>| {
            Tensor::cat(
                vec![x.clone().narrow(1, 1, 1).neg(), x.clone().narrow(1, 0, 1)],
                1,
            )
        });
        let x = randn(10, 2, &cpu(), DType::F64, &mut rng(0));
        let diag = diagnose(&rot, &x, &times_like(&x, 0.3), None).unwrap();
        for p in &diag.points {
            assert!(
                (p.antisymmetric_share - 1.0).abs() < 1e-9,
                "share {}",
                p.antisymmetric_share
            );
            assert!((p.curl.unwrap() - 2.0).abs() < 1e-9);
            assert!(p.h_max.is_none() && p.oscillatory_modes == 2 && p.expanding_modes == 0);
            assert!(p.divergence.abs() < 1e-9);
            assert!((p.eigenvalues[1][1] - 1.0).abs() < 1e-9 && p.eigenvalues[0][0].abs() < 1e-9);
            assert_eq!(
                p.stiffness_ratio.map(|s| (s - 1.0).abs() < 1e-9),
                Some(true)
            );
        }
        assert!((diag.summary.curl.unwrap().mean - 2.0).abs() < 1e-9);
    }

    /// The score of the mixture p = ½N(−a, I) + ½N(a, I) in 2-D, written in closed form as a
    /// tensor expression: s(x) = −x + tanh(a·x)·a. Its Jacobian −I + (1 − tanh²(a·x)) a aᵀ is
    /// symmetric, so the share is 0 up to the finite-difference error (~1e-9 in f64, asserted
    /// < 1e-6); a score minus a small rotation ε(−y, x) has share ≈ ε‖R‖/‖J‖ > 0.
    #[test]
    fn gradient_field_has_zero_share_and_rotation_is_detected() {
        let a = [1.5, -0.5];
        let score = move |x: &Tensor<2>| {
            let av = matrix_like(vec![a[0], a[1]], 2, 1, x);
            let proj = x.clone().matmul(av.clone()).tanh();
            x.clone().neg() + proj.matmul(av.transpose())
        };
        let f = FnField::new(2, move |x: &Tensor<2>, _t: &Tensor<1>| score(x));
        let x = randn(50, 2, &cpu(), DType::F64, &mut rng(1)) * 2.0;
        let diag = diagnose(&f, &x, &times_like(&x, 0.0), Some(&f)).unwrap();
        assert!(diag.summary.antisymmetric_share.as_ref().unwrap().max < 1e-6);
        assert!(diag.summary.curl.as_ref().unwrap().max.abs() < 1e-6);
        assert_eq!(diag.summary.error.as_ref().unwrap().max, 0.0);
        // Hessian eigenvalues: −1 (⊥ a) and −1 + (1 − tanh²)‖a‖² (along a).
        let xs = to_vec(&x);
        for (r, p) in diag.points.iter().enumerate() {
            let th = (a[0] * xs[2 * r] + a[1] * xs[2 * r + 1]).tanh();
            let along = -1.0 + (1.0 - th * th) * (a[0] * a[0] + a[1] * a[1]);
            let mut want = [-1.0, along];
            want.sort_by(|x, y| x.total_cmp(y));
            assert!(
                close(p.symmetric_eigenvalues[0], want[0], 1e-6)
                    && close(p.symmetric_eigenvalues[1], want[1], 1e-6)
            );
        }
        let eps = 0.1;
        let g = FnField::new(2, move |x: &Tensor<2>, _t: &Tensor<1>| {
            score(x)
                + Tensor::cat(
                    vec![x.clone().narrow(1, 1, 1).neg(), x.clone().narrow(1, 0, 1)],
                    1,
                ) * eps
        });
        let dg = diagnose(&g, &x, &times_like(&x, 0.0), Some(&f)).unwrap();
        for (p, q) in dg.points.iter().zip(&diag.points) {
            // ‖J_A‖ = ε√2 exactly; ‖J‖² = ‖J_score‖² + 2ε².
            let jn2: f64 = q.jacobian.iter().map(|v| v * v).sum::<f64>() + 2.0 * eps * eps;
            assert!(close(
                p.antisymmetric_share,
                eps * 2f64.sqrt() / jn2.sqrt(),
                1e-6
            ));
            assert!(close(p.curl.unwrap(), 2.0 * eps, 1e-6));
        }
        // ‖g − f‖ = ε‖x‖.
        for (p, r) in dg.points.iter().zip(0..) {
            assert!(close(
                p.error.unwrap(),
                eps * xs[2 * r].hypot(xs[2 * r + 1]),
                1e-9
            ));
        }
    }

    /// Analytic scores (exact Hessian–vector products): the Gaussian-mixture score, clean and
    /// perturbed under VP at several τ, has a symmetric Jacobian, so share ≤ 1e-12 (rounding) and
    /// curl ≈ 0; against itself as reference the error is 0 (to rounding: the Jacobian pass and eval are different code paths), and against the clean score the
    /// perturbed one at τ = 1e-3 differs by O(τ) relative.
    #[test]
    fn analytic_scores_are_conservative() {
        use crate::field::analytic::{GaussianMixture, MixtureScore};
        use crate::sde::VpSde;
        let mix = GaussianMixture::new(
            vec![0.5, 0.3, 0.2],
            vec![
                vec![-2.0, 0.0, 1.0],
                vec![2.0, 0.5, 0.0],
                vec![0.0, 2.5, -1.0],
            ],
            vec![
                vec![0.4, 0.15, 0.0, 0.15, 0.3, 0.05, 0.0, 0.05, 0.5],
                vec![0.25, -0.1, 0.0, -0.1, 0.5, 0.0, 0.0, 0.0, 0.3],
                vec![0.6, 0.0, 0.1, 0.0, 0.2, 0.0, 0.1, 0.0, 0.4],
            ],
        )
        .unwrap();
        let x = mix.sample(40, &mut rng(4)).to_tensor(&cpu(), DType::F64);
        let clean = MixtureScore::fixed(mix.clone());
        let vp = MixtureScore::new(mix, VpSde::default());
        for tau in [0.0, 1e-3, 0.3, 0.9] {
            let d = diagnose(&vp, &x, &times_like(&x, tau), Some(&vp)).unwrap();
            assert!(
                d.summary.antisymmetric_share.as_ref().unwrap().max < 1e-12,
                "τ = {tau}: {:?}",
                d.summary.antisymmetric_share
            );
            assert!(d.summary.error.as_ref().unwrap().max < 1e-12);
            for p in &d.points {
                // Real spectrum: the Jacobian of a score is a Hessian.
                assert!(p.eigenvalues.iter().all(|e| e[1].abs() < 1e-9));
            }
        }
        let d = diagnose(&vp, &x, &times_like(&x, 1e-3), Some(&clean)).unwrap();
        let rel = d.summary.relative_error.unwrap();
        assert!(rel > 0.0 && rel < 0.05, "relative error at τ = 1e-3: {rel}");
        let d2 = diagnose(
            &MixtureScore::fixed(
                GaussianMixture::new(
                    vec![1.0],
                    vec![vec![0.0, 0.0]],
                    vec![vec![2.0, 0.5, 0.5, 1.0]],
                )
                .unwrap(),
            ),
            &x.clone().narrow(1, 0, 2),
            &times_like(&x, 0.0),
            None,
        )
        .unwrap();
        // Gaussian score −Σ⁻¹(x − μ): h_max = 2/λ_max(Σ⁻¹) = 2·λ_min(Σ), λ_min(Σ) = (3 − √2)/2.
        let want = 3.0 - 2f64.sqrt();
        assert!(
            close(d2.summary.h_max.as_ref().unwrap().max, want, 1e-10)
                && close(d2.summary.h_max.as_ref().unwrap().min, want, 1e-10)
        );
    }

    /// v = −Σ⁻¹x: J = −Σ⁻¹ with eigenvalues −1/σᵢ², so h_max = 2/λ_max(Σ⁻¹) and the stiffness
    /// ratio is λ_max/λ_min of Σ⁻¹. Explicit Euler with h = 1.05·h_max multiplies the stiff mode
    /// by |1 − 1.05·2| = 1.1 per step (diverges: ×1.1³⁰⁰ ≈ 3e12 over 300 steps) and with
    /// h = 0.95·h_max by 0.9 (converges: the slow mode shrinks by 1 − 0.95·2·λ_min/λ_max per step).
    #[test]
    fn linear_field_h_max_separates_stable_and_unstable_euler() {
        // Σ⁻¹ = R diag(4, 0.5, 1.5) Rᵀ with R a rotation in the (0, 1) plane.
        let (c, s) = (0.6f64, 0.8f64);
        let lam = [4.0, 0.5, 1.5];
        let r = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
        let mut prec = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                prec[i * 3 + j] = (0..3).map(|k| r[i * 3 + k] * lam[k] * r[j * 3 + k]).sum();
            }
        }
        let p2 = prec.clone();
        let f = FnField::new(3, move |x: &Tensor<2>, _t: &Tensor<1>| {
            x.clone().matmul(matrix_like(p2.clone(), 3, 3, x)).neg()
        });
        let x = randn(4, 3, &cpu(), DType::F64, &mut rng(2));
        let diag = diagnose(&f, &x, &times_like(&x, 0.0), None).unwrap();
        let h_max = 2.0 / 4.0;
        for p in &diag.points {
            assert!(close(p.h_max.unwrap(), h_max, 1e-8), "h_max {:?}", p.h_max);
            assert!(close(p.stiffness_ratio.unwrap(), 8.0, 1e-8));
            assert!(p.antisymmetric_share < 1e-8);
            for (e, w) in p.eigenvalues.iter().zip([-4.0, -1.5, -0.5]) {
                assert!(close(e[0], w, 1e-8) && e[1].abs() < 1e-8);
            }
        }
        let steps = 300;
        let run = |h: f64| {
            let sol = odeint(
                &f,
                x.clone(),
                0.0,
                h * steps as f64,
                &OdeOptions::fixed(Method::Euler, steps),
            )
            .unwrap();
            to_vec(&sol.x.square().sum()).iter().sum::<f64>().sqrt()
                / to_vec(&x.clone().square().sum())[0].sqrt()
        };
        let (above, below) = (run(1.05 * h_max), run(0.95 * h_max));
        assert!(above > 1e6, "h above h_max: growth {above:e}");
        assert!(below < 1e-6, "h below h_max: growth {below:e}");
    }

    #[test]
    fn stats_and_grid() {
        let st = Stats::of([3.0, f64::NAN, 1.0, 2.0, 4.0, 5.0]).unwrap();
        assert_eq!(
            (st.count, st.min, st.q50, st.max, st.mean),
            (5, 1.0, 3.0, 5.0, 3.0)
        );
        assert!((st.q05 - 1.2).abs() < 1e-12 && (st.q95 - 4.8).abs() < 1e-12);
        assert!(Stats::of([f64::INFINITY]).is_none());

        let lin = FnField::new(2, |x: &Tensor<2>, _t: &Tensor<1>| x.clone() * -2.0);
        let g = diagnose_grid(
            &lin,
            0.5,
            (-1.0, 1.0),
            (0.0, 2.0),
            (3, 4),
            None,
            (&cpu(), DType::F64),
        )
        .unwrap();
        assert_eq!(g.diagnostics.points.len(), 12);
        assert_eq!(g.diagnostics.points[5].x, vec![1.0, 2.0 / 3.0]);
        assert!((g.diagnostics.summary.h_max.as_ref().unwrap().min - 1.0).abs() < 1e-9);
        let json = serde_json::to_string(&g).unwrap();
        let back: GridDiagnostics = serde_json::from_str(&json).unwrap();
        assert_eq!(back.xs, g.xs);
        assert!(diagnose_grid(
            &lin,
            0.5,
            (1.0, -1.0),
            (0.0, 2.0),
            (3, 4),
            None,
            (&cpu(), DType::F64)
        )
        .is_err());
        let x3 = randn(2, 3, &cpu(), DType::F64, &mut rng(0));
        assert!(diagnose(&lin, &x3, &times_like(&x3, 0.0), None).is_err());
    }
}
