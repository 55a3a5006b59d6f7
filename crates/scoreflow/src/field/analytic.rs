//! Analytic score fields: the exact score of a Gaussian or Gaussian mixture, also *perturbed*
//! by a Gaussian kernel x_t = m(t)·x + s(t)·z, z ~ N(0, I) ([`PerturbationKernel`]), and the
//! exact class posterior of a labelled mixture.
//!
//! A mixture convolved with isotropic Gaussian noise stays a mixture:
//! p_t = Σₖ wₖ N(m μₖ, m² Σₖ + s² I). So every sampler can be tested against the *exact* score
//! ∇ₓ log p_t of any SDE marginal or flow path at any time, and every score target checked.
//! The mixture mathematics itself lives in [`crate::gaussian`] (dense [`GaussianMixture`]s for
//! small d, [`LowRankMixture`]s for any d); this module makes fields of it.
//!
//! Everything is computed on the host in f64 (rayon over rows, matrix products for low-rank
//! mixtures). Rows that share a time share one perturbed mixture.

use std::collections::HashMap;

use rayon::prelude::*;

use super::VectorField;
use crate::data::{Dataset, MixtureSpec};
use crate::error::{Error, Result};
pub use crate::gaussian::{Gaussian, GaussianMixture, LowRankMixture, MixtureLaw};
pub use crate::path::{FnKernel, PerturbationKernel, Unperturbed};
use crate::path::{GaussianPath, Scheduler};
use crate::tensor::{matrix_like, to_vec, vector_like, Tensor};

/// log p(x, t) of a batch: `(batch, d)` × `(batch,)` → `(batch,)`, for fields whose density is
/// known (analytic targets); MALA's accept/reject step needs it.
pub trait LogDensity {
    /// log p(x, t) per row.
    fn log_density(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<1>;
}

/// The exact score field s(x, t) = ∇ₓ log p_t(x) of a Gaussian mixture p perturbed by a kernel:
/// p_t = Σₖ wₖ N(m(t) μₖ, m(t)² Σₖ + s(t)² I). With [`Unperturbed`] it is the score of p itself.
/// `M` is the mixture's representation: dense ([`GaussianMixture`], the default) or
/// [`LowRankMixture`] (high dimension).
///
/// Rows whose perturbed law is degenerate (m = s = 0 with a singular Σₖ) or whose kernel is not
/// finite evaluate to NaN, which every solver reports as an error.
#[derive(Debug, Clone)]
pub struct MixtureScore<K = Unperturbed, M = GaussianMixture> {
    /// The clean distribution p.
    pub mixture: M,
    /// The perturbation kernel (m(t), s(t)).
    pub kernel: K,
}

impl<M: MixtureLaw> MixtureScore<Unperturbed, M> {
    /// The time-independent score ∇ log p of the mixture itself.
    pub fn fixed(mixture: M) -> Self {
        Self {
            mixture,
            kernel: Unperturbed,
        }
    }
}

impl<K: PerturbationKernel> MixtureScore<K, GaussianMixture> {
    /// The exact perturbed score of a built-in mixture data set (`8gaussians`, `25gaussians`,
    /// `gmm_aniso`) under `kernel`: sampling with it draws the data set's exact law, so a
    /// sampler's error can be told apart from a network's. An error for the other data sets.
    pub fn for_dataset(dataset: Dataset, kernel: K) -> Result<Self> {
        Ok(Self::new(
            GaussianMixture::from(&mixture_of(dataset)?),
            kernel,
        ))
    }
}

/// The mixture of a built-in data set, or an error naming the mixtures there are.
fn mixture_of(dataset: Dataset) -> Result<MixtureSpec> {
    dataset.mixture().ok_or_else(|| {
        Error::InvalidInput(format!(
            "{dataset} is not a Gaussian mixture (the exact prior exists for 8gaussians, 25gaussians, gmm_aniso)"
        ))
    })
}

impl<K: PerturbationKernel, M: MixtureLaw> MixtureScore<K, M> {
    /// The score of p perturbed by `kernel`.
    pub fn new(mixture: M, kernel: K) -> Self {
        Self { mixture, kernel }
    }

    /// The perturbed mixture p_t = Σₖ wₖ N(m μₖ, m² Σₖ + s² I) at time t.
    pub fn at(&self, t: f64) -> Result<M> {
        let (m, s) = self.kernel.mean_std(t);
        self.mixture.perturbed(m, s)
    }

    /// Applies `f(p_t, rows)` to each group of rows sharing a time t (one perturbed mixture per
    /// group); `f` returns `width` values per row of the group, written back in row order.
    /// Rows whose p_t is degenerate get NaN.
    ///
    /// # Panics
    /// If `x` does not have `dim()` columns or `t` not one time per row (programming errors).
    fn by_time<F>(&self, x: &Tensor<2>, t: &Tensor<1>, width: usize, f: F) -> Vec<f64>
    where
        F: Fn(&M, &[usize]) -> Vec<f64>,
    {
        let [n, d] = x.dims();
        let dm = self.mixture.dim();
        assert_eq!(
            d, dm,
            "MixtureScore: x has {d} columns, the mixture dimension is {dm}"
        );
        let ts = to_vec(t);
        assert_eq!(ts.len(), n, "MixtureScore: {} times for {n} rows", ts.len());
        let mut groups: Vec<(f64, Vec<usize>)> = Vec::new();
        let mut index: HashMap<u64, usize> = HashMap::new();
        for (r, &tr) in ts.iter().enumerate() {
            let g = *index.entry(tr.to_bits()).or_insert_with(|| {
                groups.push((tr, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(r);
        }
        let mut out = vec![0.0; n * width];
        for (tg, rows) in groups {
            let vals = match self.at(tg) {
                Ok(mix) => f(&mix, &rows),
                Err(_) => vec![f64::NAN; rows.len() * width],
            };
            for (j, &r) in rows.iter().enumerate() {
                out[r * width..(r + 1) * width].copy_from_slice(&vals[j * width..(j + 1) * width]);
            }
        }
        out
    }
}

/// Rows `rows` of the row-major `(n, d)` host data `x`.
fn gather(x: &[f64], d: usize, rows: &[usize]) -> Vec<f64> {
    if rows.len() * d == x.len() && rows.iter().enumerate().all(|(i, &r)| i == r) {
        return x.to_vec();
    }
    rows.iter()
        .flat_map(|&r| x[r * d..(r + 1) * d].iter().copied())
        .collect()
}

impl<K: PerturbationKernel + Sync, M: MixtureLaw> VectorField for MixtureScore<K, M> {
    fn dim(&self) -> usize {
        self.mixture.dim()
    }

    /// s(x, t) = ∇ₓ log p_t(x).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let [n, d] = x.dims();
        let xs = to_vec(x);
        let out = self.by_time(x, t, d, |mix, rows| mix.scores(&gather(&xs, d, rows)));
        matrix_like(out, n, d, x)
    }

    /// (s, H·u) with the exact Hessian of log p_t.
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let [n, d] = x.dims();
        let (xs, us) = (to_vec(x), to_vec(u));
        assert_eq!(
            us.len(),
            n * d,
            "MixtureScore::jvp: tangent shape differs from x"
        );
        // Each output row holds [s, H u].
        let out = self.by_time(x, t, 2 * d, |mix, rows| {
            let (s, hu) = mix.score_hvps(&gather(&xs, d, rows), &gather(&us, d, rows));
            interleave(&s, &hu, d)
        });
        split_pairs(out, n, d, x)
    }

    fn exact_jvp(&self) -> bool {
        true
    }

    /// The Hessian of log p_t is symmetric, so Jᵀw = H w: one exact Hessian–vector product.
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.jvp(x, t, w)
    }

    /// (s, H w(s)) sharing one evaluation of the mixture when every row has the same time (the
    /// samplers' case); otherwise eval, then [`VectorField::vjp`].
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let [n, d] = x.dims();
        let ts = to_vec(t);
        let shared = ts.windows(2).all(|p| p[0] == p[1]);
        let mix = match ts.first().map(|&t0| self.at(t0)) {
            Some(Ok(m)) if shared => m,
            _ => {
                let s = self.eval(x, t);
                let (_, g) = self.vjp(x, t, &w(&s));
                return (s, g);
            }
        };
        let (s, hw) = mix.score_hvp_with(&to_vec(x), &mut |s| {
            to_vec(&w(&matrix_like(s.to_vec(), n, d, x)))
        });
        (matrix_like(s, n, d, x), matrix_like(hw, n, d, x))
    }

    /// (s, Δ log p_t) in one pass (exact).
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = x.dims();
        let xs = to_vec(x);
        let out = self.by_time(x, t, d + 1, |mix, rows| {
            let (s, lap) = mix.score_laplacians(&gather(&xs, d, rows));
            s.chunks_exact(d)
                .zip(&lap)
                .flat_map(|(r, l)| r.iter().copied().chain([*l]))
                .collect()
        });
        let mut v = Vec::with_capacity(n * d);
        let mut div = Vec::with_capacity(n);
        for row in out.chunks_exact(d + 1) {
            v.extend_from_slice(&row[..d]);
            div.push(row[d]);
        }
        (matrix_like(v, n, d, x), vector_like(div, x))
    }
}

impl<K: PerturbationKernel + Sync, M: MixtureLaw> LogDensity for MixtureScore<K, M> {
    /// log p_t(x) = log Σₖ wₖ N(x; m μₖ, m² Σₖ + s² I).
    fn log_density(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<1> {
        let d = x.dims()[1];
        let xs = to_vec(x);
        let out = self.by_time(x, t, 1, |mix, rows| {
            mix.log_densities(&gather(&xs, d, rows))
        });
        vector_like(out, x)
    }
}

/// Rows `[a (d), b (d)]` from row-major a and b.
fn interleave(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    a.chunks_exact(d)
        .zip(b.chunks_exact(d))
        .flat_map(|(x, y)| x.iter().chain(y).copied())
        .collect()
}

/// The exact marginal velocity of a Gaussian path from N(0, I) (t = 0) to a Gaussian mixture
/// (t = 1), u(x, t) = E[α̇ x₁ + σ̇ x₀ | x_t = x] ([`GaussianMixture::path_velocity`]): finite on
/// the whole of [0, 1], so flow samplers can be tested and driven with no learning error.
/// Jacobian–vector products are central differences in f64.
#[derive(Debug, Clone)]
pub struct MixtureVelocity<S> {
    /// The score of the path's marginal p_t (its mixture and the path as the kernel).
    score: MixtureScore<GaussianPath<S>>,
}

impl<S: Scheduler> MixtureVelocity<S> {
    /// The velocity of `path` towards `mixture`.
    pub fn new(mixture: GaussianMixture, path: GaussianPath<S>) -> Self {
        Self {
            score: MixtureScore::new(mixture, path),
        }
    }
}

impl<S: Scheduler + Sync> VectorField for MixtureVelocity<S> {
    fn dim(&self) -> usize {
        self.score.mixture.dim()
    }

    /// u(x, t).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let [n, d] = x.dims();
        let (xs, ts) = (to_vec(x), to_vec(t));
        let sched = &self.score.kernel.scheduler;
        let out = self.score.by_time(x, t, d, |pt, rows| {
            let t = ts[rows[0]];
            let coef = (
                sched.alpha(t),
                sched.sigma(t),
                sched.d_alpha(t),
                sched.d_sigma(t),
            );
            rows.par_iter()
                .flat_map_iter(|&r| {
                    self.score
                        .mixture
                        .path_velocity(pt, &xs[r * d..(r + 1) * d], coef)
                })
                .collect()
        });
        matrix_like(out, n, d, x)
    }
}

/// Splits rows `[a (d), b (d)]` into two `(n, d)` tensors like `like`.
fn split_pairs(out: Vec<f64>, n: usize, d: usize, like: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let mut a = Vec::with_capacity(n * d);
    let mut b = Vec::with_capacity(n * d);
    for row in out.chunks_exact(2 * d) {
        a.extend_from_slice(&row[..d]);
        b.extend_from_slice(&row[d..]);
    }
    (matrix_like(a, n, d, like), matrix_like(b, n, d, like))
}

/// A mixture whose components carry class labels, perturbed by a kernel: the exact
/// time-dependent classifier of a labelled mixture,
///
///   p(c | x_t, t) = Σ_{k: yₖ = c} rₖ(x_t),   rₖ the responsibilities of p_t,
///
/// and its input gradient ∇ₓ log p(c | x_t, t) = Σₖ (rₖ⁽ᶜ⁾ − rₖ) gₖ with rₖ⁽ᶜ⁾ = rₖ 𝟙[yₖ = c] /
/// p(c | x_t) ([`ClassLogGradient`]). The class-conditional law is the sub-mixture of class c
/// ([`LabelledMixture::class_score`]), so s + ∇ log p(c | ·) is its score: classifier
/// guidance at scale 1 with this classifier is exact conditional sampling.
#[derive(Debug, Clone)]
pub struct LabelledMixture<K = Unperturbed, M = GaussianMixture> {
    /// The (unconditional) mixture and kernel.
    pub score: MixtureScore<K, M>,
    /// The class yₖ of every component.
    pub labels: Vec<usize>,
    /// The number of classes C (every yₖ < C).
    pub classes: usize,
}

impl<K: PerturbationKernel + Clone + Sync> LabelledMixture<K, GaussianMixture> {
    /// A built-in mixture data set with each component its own class (the labels a
    /// conditional model is trained with, `data`'s component ids).
    pub fn for_dataset(dataset: Dataset, kernel: K) -> Result<Self> {
        let score = MixtureScore::for_dataset(dataset, kernel)?;
        let k = score.mixture.weights().len();
        Self::new(score, (0..k).collect(), k)
    }
}

impl<K: PerturbationKernel + Clone + Sync, M: MixtureLaw> LabelledMixture<K, M> {
    /// Labels `labels` (one per component, each < `classes`) for the mixture of `score`.
    pub fn new(score: MixtureScore<K, M>, labels: Vec<usize>, classes: usize) -> Result<Self> {
        let k = score.mixture.weights().len();
        if labels.len() != k {
            return Err(Error::Shape(format!(
                "{} labels for a mixture of {k} components",
                labels.len()
            )));
        }
        if let Some(l) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::InvalidInput(format!(
                "component label {l} is out of range for {classes} classes"
            )));
        }
        Ok(Self {
            score,
            labels,
            classes,
        })
    }

    fn check_class(&self, class: usize) -> Result<Vec<usize>> {
        let members: Vec<usize> = (0..self.labels.len())
            .filter(|&k| self.labels[k] == class)
            .collect();
        if class >= self.classes || members.is_empty() {
            return Err(Error::InvalidInput(format!(
                "class {class} has no component (classes 0..{})",
                self.classes.saturating_sub(1)
            )));
        }
        Ok(members)
    }

    /// log p(c | x_t, t) for every class c, `(batch, C)`.
    pub fn log_probs(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let [n, d] = x.dims();
        let xs = to_vec(x);
        let classes = self.classes;
        let out = self.score.by_time(x, t, classes, |mix, rows| {
            let resp = mix.responsibilities_batch(&gather(&xs, d, rows));
            let kk = self.labels.len();
            resp.chunks_exact(kk)
                .flat_map(|r| {
                    let mut p = vec![0.0; classes];
                    for (k, rk) in r.iter().enumerate() {
                        p[self.labels[k]] += rk;
                    }
                    p.into_iter().map(f64::ln)
                })
                .collect()
        });
        matrix_like(out, n, classes, x)
    }

    /// The exact class-conditional score: the sub-mixture of class c (weights renormalised),
    /// under the same kernel.
    pub fn class_score(&self, class: usize) -> Result<MixtureScore<K, M>> {
        let members = self.check_class(class)?;
        Ok(MixtureScore::new(
            self.score.mixture.select(&members)?,
            self.score.kernel.clone(),
        ))
    }

    /// The field ∇ₓ log p(c | x_t, t).
    pub fn class_gradient(&self, class: usize) -> Result<ClassLogGradient<'_, K, M>> {
        self.check_class(class)?;
        Ok(ClassLogGradient { of: self, class })
    }
}

/// ∇ₓ log p(c | x_t, t) = Σₖ (rₖ⁽ᶜ⁾ − rₖ) gₖ of a [`LabelledMixture`] (see there), as a field
/// (the exact classifier's input gradient, in the kernel's time).
#[derive(Debug, Clone, Copy)]
pub struct ClassLogGradient<'a, K, M> {
    of: &'a LabelledMixture<K, M>,
    class: usize,
}

impl<K: PerturbationKernel + Clone + Sync, M: MixtureLaw> VectorField
    for ClassLogGradient<'_, K, M>
{
    fn dim(&self) -> usize {
        self.of.score.mixture.dim()
    }

    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let [n, d] = x.dims();
        let xs = to_vec(x);
        let kk = self.of.labels.len();
        let out = self.of.score.by_time(x, t, d, |mix, rows| {
            let xr = gather(&xs, d, rows);
            let resp = mix.responsibilities_batch(&xr);
            let coef: Vec<f64> = resp
                .chunks_exact(kk)
                .flat_map(|r| {
                    let pc: f64 = (0..kk)
                        .filter(|&k| self.of.labels[k] == self.class)
                        .map(|k| r[k])
                        .sum();
                    (0..kk).map(move |k| {
                        let own = if self.of.labels[k] == self.class {
                            r[k] / pc
                        } else {
                            0.0
                        };
                        own - r[k]
                    })
                })
                .collect();
            mix.weighted_residuals(&xr, &coef)
        });
        matrix_like(out, n, d, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::MixtureSpec;
    use crate::path::{CondOt, GaussianPath};
    use crate::tensor::{cpu, matrix, rng, times_like, vector, DType};
    use rand::Rng as _;

    /// A 2-D mixture with unequal weights and full, correlated covariances.
    fn mix2() -> GaussianMixture {
        GaussianMixture::new(
            vec![0.5, 0.3, 0.2],
            vec![vec![-2.0, 0.0], vec![2.0, 0.5], vec![0.0, 2.5]],
            vec![
                vec![0.4, 0.15, 0.15, 0.3],
                vec![0.25, -0.1, -0.1, 0.5],
                vec![0.6, 0.0, 0.0, 0.2],
            ],
        )
        .unwrap()
    }

    /// A 3-D mixture, to exercise d > 2 in the linear algebra.
    fn mix3() -> GaussianMixture {
        GaussianMixture::new(
            vec![1.0, 2.0],
            vec![vec![0.5, -1.0, 0.0], vec![-0.5, 1.0, 0.3]],
            vec![
                vec![1.0, 0.3, 0.1, 0.3, 0.8, -0.2, 0.1, -0.2, 0.5],
                vec![0.5, 0.0, 0.1, 0.0, 0.7, 0.0, 0.1, 0.0, 0.9],
            ],
        )
        .unwrap()
    }

    fn grid_points(d: usize, n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut r = rng(seed);
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| 3.0 * (r.random::<f64>() - 0.5) * 2.0)
                    .collect()
            })
            .collect()
    }

    /// log N against the textbook 2-D formula with correlation ρ:
    /// log N = −log(2π σ₁σ₂√(1−ρ²)) − Q/(2(1−ρ²)), Q = z₁² − 2ρ z₁z₂ + z₂².
    #[test]
    fn gaussian_log_density_matches_bivariate_formula() {
        let (s1, s2, rho) = (0.7f64, 1.3f64, -0.4f64);
        let g = Gaussian::new(
            vec![0.5, -1.0],
            vec![s1 * s1, rho * s1 * s2, rho * s1 * s2, s2 * s2],
        )
        .unwrap();
        for x in [[0.0, 0.0], [1.2, -2.5], [-1.0, 3.0]] {
            let (z1, z2) = ((x[0] - 0.5) / s1, (x[1] + 1.0) / s2);
            let q = z1 * z1 - 2.0 * rho * z1 * z2 + z2 * z2;
            let expect = -(2.0 * std::f64::consts::PI * s1 * s2 * (1.0 - rho * rho).sqrt()).ln()
                - q / (2.0 * (1.0 - rho * rho));
            assert!(
                (g.log_density(&x) - expect).abs() < 1e-12,
                "{} vs {expect}",
                g.log_density(&x)
            );
        }
    }

    /// Central differences of log p (step h = 1e-5, error O(h²·‖∇³ log p‖) ≈ 1e-9 here)
    /// reproduce the score to 1e-6, in 2-D and 3-D.
    #[test]
    fn score_matches_finite_difference_of_log_density() {
        let h = 1e-5;
        for (mix, seed) in [(mix2(), 1), (mix3(), 2)] {
            let d = mix.dim();
            for x in grid_points(d, 20, seed) {
                let s = mix.score(&x);
                let mut s2 = vec![0.0; d];
                mix.score_into(&x, &mut s2);
                assert!(s
                    .iter()
                    .zip(&s2)
                    .all(|(a, b)| (a - b).abs() <= 1e-14 * (1.0 + a.abs())));
                for i in 0..d {
                    let (mut xp, mut xm) = (x.clone(), x.clone());
                    xp[i] += h;
                    xm[i] -= h;
                    let fd = (mix.log_density(&xp) - mix.log_density(&xm)) / (2.0 * h);
                    assert!(
                        (s[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                        "d={d} x={x:?} i={i}: {} vs {fd}",
                        s[i]
                    );
                }
            }
        }
    }

    /// The exact H·u equals the central difference of the score along u (tolerance 1e-6), and
    /// the field's divergence equals tr H from finite differences; `exact_jvp` is reported.
    #[test]
    fn exact_jvp_and_divergence_match_finite_differences() {
        let h = 1e-5;
        let mix = mix3();
        let d = 3;
        let pts = grid_points(d, 12, 3);
        let dirs = grid_points(d, 12, 4);
        for (x, u) in pts.iter().zip(&dirs) {
            let (_, hu) = mix.score_hvp(x, u);
            let xp: Vec<f64> = x.iter().zip(u).map(|(a, b)| a + h * b).collect();
            let xm: Vec<f64> = x.iter().zip(u).map(|(a, b)| a - h * b).collect();
            let (sp, sm) = (mix.score(&xp), mix.score(&xm));
            for i in 0..d {
                let fd = (sp[i] - sm[i]) / (2.0 * h);
                assert!(
                    (hu[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{} vs {fd}",
                    hu[i]
                );
            }
        }
        // Through the VectorField interface, with per-row times under a flow path.
        let field = MixtureScore::new(mix, GaussianPath::new(CondOt));
        assert!(field.exact_jvp());
        let n = pts.len();
        let x = matrix(pts.concat(), n, d, &cpu(), DType::F64);
        let t = vector(
            (0..n).map(|i| 0.3 + 0.05 * i as f64).collect(),
            &cpu(),
            DType::F64,
        );
        let (_, div) = field.divergence(&x, &t);
        let div = to_vec(&div);
        let ts = to_vec(&t);
        for r in 0..n {
            let pt = field.at(ts[r]).unwrap();
            let mut tr = 0.0;
            for i in 0..d {
                let (mut xp, mut xm) = (pts[r].clone(), pts[r].clone());
                xp[i] += h;
                xm[i] -= h;
                tr += (pt.score(&xp)[i] - pt.score(&xm)[i]) / (2.0 * h);
            }
            assert!(
                (div[r] - tr).abs() < 1e-6 * (1.0 + tr.abs()),
                "row {r}: {} vs {tr}",
                div[r]
            );
        }
        // jvp through the trait agrees with the host H·u row by row.
        let u = matrix(dirs.concat(), n, d, &cpu(), DType::F64);
        let (_, ju) = field.jvp(&x, &t, &u);
        let ju = to_vec(&ju);
        for r in 0..n {
            let (_, hu) = field.at(ts[r]).unwrap().score_hvp(&pts[r], &dirs[r]);
            for i in 0..d {
                assert!((ju[r * d + i] - hu[i]).abs() < 1e-12);
            }
        }
    }

    /// "A mixture convolved with Gaussian noise stays a mixture": in 1-D, the density of
    /// m·x + s·z is ∫ p(y) N(x; m y, s²) dy. A midpoint rule on [−12, 12] with 24,000 cells
    /// (smooth, rapidly decaying integrand: error far below 1e-9) matches log p_t to 1e-8.
    #[test]
    fn perturbed_density_is_the_convolution() {
        let mix = GaussianMixture::new(
            vec![0.7, 0.3],
            vec![vec![-1.0], vec![2.0]],
            vec![vec![0.3], vec![0.8]],
        )
        .unwrap();
        for (m, s) in [(0.8, 0.6), (0.2, 1.0), (1.0, 0.05)] {
            let pt = mix.perturbed(m, s).unwrap();
            for x in [-2.0, 0.1, 1.7, 3.0] {
                let (lo, hi, cells) = (-12.0, 12.0, 24_000);
                let dy = (hi - lo) / cells as f64;
                let mut acc = 0.0;
                for c in 0..cells {
                    let y = lo + (c as f64 + 0.5) * dy;
                    let k = (-(x - m * y) * (x - m * y) / (2.0 * s * s)).exp()
                        / (s * (2.0 * std::f64::consts::PI).sqrt());
                    acc += mix.log_density(&[y]).exp() * k * dy;
                }
                let lp = pt.log_density(&[x]);
                assert!(
                    (lp - acc.ln()).abs() < 1e-8,
                    "(m, s) = ({m}, {s}), x = {x}: {lp} vs {}",
                    acc.ln()
                );
            }
        }
    }

    /// Kernel adapters: a flow path gives (α(t), σ(t)) = (t, 1 − t) for CondOT; closures and
    /// the identity kernel pass through; the field at a time is the perturbed mixture's score.
    #[test]
    fn kernels_and_field_evaluation() {
        assert_eq!(GaussianPath::new(CondOt).mean_std(0.25), (0.25, 0.75));
        assert_eq!(FnKernel(|t: f64| (2.0 * t, t)).mean_std(0.5), (1.0, 0.5));
        assert_eq!(Unperturbed.mean_std(7.0), (1.0, 0.0));
        let field = MixtureScore::new(
            mix2(),
            FnKernel(|t: f64| ((-t).exp(), (1.0 - (-2.0 * t).exp()).sqrt())),
        );
        let pts = grid_points(2, 5, 9);
        let x = matrix(pts.concat(), 5, 2, &cpu(), DType::F64);
        let s = to_vec(&field.eval_at(&x, 0.7));
        let lp = to_vec(&field.log_density(&x, &times_like(&x, 0.7)));
        let pt = mix2()
            .perturbed((-0.7f64).exp(), (1.0 - (-1.4f64).exp()).sqrt())
            .unwrap();
        for r in 0..5 {
            assert!((s[2 * r] - pt.score(&pts[r])[0]).abs() < 1e-12);
            assert!((lp[r] - pt.log_density(&pts[r])).abs() < 1e-12);
        }
        // The f32 path keeps the input dtype.
        let x32 = matrix(pts.concat(), 5, 2, &cpu(), DType::F32);
        assert_eq!(field.eval_at(&x32, 0.7).dtype(), DType::F32);
        // A degenerate kernel (m = s = 0) gives NaN, not a panic.
        let bad = MixtureScore::new(mix2(), FnKernel(|_| (0.0, 0.0)));
        assert!(to_vec(&bad.eval_at(&x, 0.0)).iter().all(|v| v.is_nan()));
    }

    /// Sample moments of 40,000 draws match the mixture's closed-form mean and covariance within
    /// 4 standard errors (SE of a mean: √(Σᵢᵢ/n); of a covariance entry: √(Var[(xᵢ−μᵢ)(xⱼ−μⱼ)]/n),
    /// the fourth moment estimated from the same draws).
    #[test]
    fn samples_match_mixture_moments() {
        let mix = mix2();
        let n = 40_000;
        let pts = mix.sample(n, &mut rng(5));
        let (mu, cov) = (mix.mean(), mix.covariance());
        let x = pts.as_slice();
        for i in 0..2 {
            let m: f64 = x.iter().skip(i).step_by(2).sum::<f64>() / n as f64;
            let se = (cov[i * 2 + i] / n as f64).sqrt();
            assert!(
                (m - mu[i]).abs() < 4.0 * se,
                "mean {i}: {m} vs {} (SE {se})",
                mu[i]
            );
        }
        for (i, j) in [(0, 0), (0, 1), (1, 1)] {
            let prods: Vec<f64> = pts
                .rows()
                .map(|r| (r[i] - mu[i]) * (r[j] - mu[j]))
                .collect();
            let c = prods.iter().sum::<f64>() / n as f64;
            let v = prods.iter().map(|p| (p - c) * (p - c)).sum::<f64>() / n as f64;
            let se = (v / n as f64).sqrt();
            assert!(
                (c - cov[i * 2 + j]).abs() < 4.0 * se,
                "cov {i}{j}: {c} vs {} (SE {se})",
                cov[i * 2 + j]
            );
        }
    }

    /// `GaussianMixture::from(&MixtureSpec)` keeps the spec's law, and its log-density and score
    /// equal the brute-force 2-D closed forms (explicit 2×2 inverse and determinant, plain sums
    /// of densities: p = Σₖ wₖ Nₖ, s = Σₖ wₖ Nₖ (−Σₖ⁻¹(x − μₖ)) / p) to 1e-12 at random points
    /// (both sides exact up to rounding, log p is O(10) here).
    #[test]
    fn from_mixture_spec_matches_closed_forms() {
        let spec = MixtureSpec::new(
            vec![0.5, 0.3, 0.2],
            vec![vec![-2.0, 0.0], vec![2.0, 0.5], vec![0.0, 2.5]],
            vec![
                vec![0.4, 0.15, 0.15, 0.3],
                vec![0.25, -0.1, -0.1, 0.5],
                vec![0.6, 0.0, 0.0, 0.2],
            ],
        )
        .unwrap();
        let mix = GaussianMixture::from(&spec);
        let want = mix2();
        assert_eq!(mix.weights(), want.weights());
        for (a, b) in mix.components().iter().zip(want.components()) {
            assert_eq!((a.mean(), a.cov()), (b.mean(), b.cov()));
        }
        for x in grid_points(2, 10, 21) {
            let (mut p, mut num) = (0.0, [0.0; 2]);
            for (w, c) in spec.weights().iter().zip(mix.components()) {
                let (s, mu) = (c.cov(), c.mean());
                let det = s[0] * s[3] - s[1] * s[2];
                let (dx, dy) = (x[0] - mu[0], x[1] - mu[1]);
                let q = (s[3] * dx * dx - (s[1] + s[2]) * dx * dy + s[0] * dy * dy) / det;
                let wn = w * (-0.5 * q).exp() / (2.0 * std::f64::consts::PI * det.sqrt());
                p += wn;
                num[0] -= wn * (s[3] * dx - s[1] * dy) / det;
                num[1] -= wn * (s[0] * dy - s[2] * dx) / det;
            }
            assert!((mix.log_density(&x) - p.ln()).abs() < 1e-12);
            assert!((spec.log_density_at(&x) - p.ln()).abs() < 1e-12);
            for (a, b) in mix.score(&x).iter().zip(num.map(|v| v / p)) {
                assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Gaussian::new(vec![0.0, 0.0], vec![1.0, 2.0, 2.0, 1.0]).is_err()); // indefinite
        assert!(Gaussian::new(vec![0.0, 0.0], vec![1.0, 0.5, 0.0, 1.0]).is_err()); // asymmetric
        assert!(Gaussian::new(vec![0.0, 0.0], vec![1.0]).is_err());
        assert!(Gaussian::new(vec![], vec![]).is_err());
        assert!(
            GaussianMixture::new(vec![1.0, -1.0], vec![vec![0.0]; 2], vec![vec![1.0]; 2]).is_err()
        );
        assert!(GaussianMixture::new(vec![0.0], vec![vec![0.0]], vec![vec![1.0]]).is_err());
        assert!(
            GaussianMixture::new(vec![1.0], vec![vec![0.0], vec![1.0]], vec![vec![1.0]]).is_err()
        );
        assert!(GaussianMixture::new(
            vec![1.0, 1.0],
            vec![vec![0.0], vec![1.0, 2.0]],
            vec![vec![1.0], vec![1.0, 0.0, 0.0, 1.0]]
        )
        .is_err());
        let e = mix2().perturbed(f64::NAN, 1.0).unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
        // Weights are normalised.
        let m = GaussianMixture::new(
            vec![2.0, 6.0],
            vec![vec![0.0], vec![1.0]],
            vec![vec![1.0]; 2],
        )
        .unwrap();
        assert_eq!(m.weights(), &[0.25, 0.75]);
    }

    /// The exact path velocity: equals the score form u = (α̇/α)x − (σ̇ − α̇σ/α)σ∇log p_t in the
    /// interior (both paths), is E[x₁] − x at t = 0 on the straight path, stays finite at t = 1,
    /// and carries N(0, I) to the mixture: dopri5 from 4,000 noise points reproduces the mixture
    /// mean and covariance within 5 standard errors.
    #[test]
    fn mixture_velocity_is_the_path_velocity_and_transports_noise_to_the_mixture() {
        use crate::field::convert::ScoreToVelocity;
        use crate::path::PathKind;
        use crate::solve::{odeint, OdeOptions};
        let mix = mix2();
        let x = matrix(
            vec![0.3, -0.4, 1.5, 2.0, -2.0, 0.1],
            3,
            2,
            &cpu(),
            DType::F64,
        );
        for path in [PathKind::Condot, PathKind::Cosine] {
            let p = GaussianPath::new(path);
            let u = MixtureVelocity::new(mix.clone(), p);
            let via_score = ScoreToVelocity::new(MixtureScore::new(mix.clone(), p), p);
            for t in [0.2, 0.5, 0.9] {
                let a = to_vec(&u.eval(&x, &times_like(&x, t)));
                let b = to_vec(&via_score.eval(&x, &times_like(&x, t)));
                for (p, q) in a.iter().zip(&b) {
                    assert!(
                        (p - q).abs() < 1e-9 * (1.0 + q.abs()),
                        "{path:?} t={t}: {p} vs {q}"
                    );
                }
            }
            let end = to_vec(&u.eval(&x, &times_like(&x, 1.0)));
            assert!(
                end.iter().all(|v| v.is_finite()),
                "{path:?} at t = 1: {end:?}"
            );
        }
        let u0 = to_vec(
            &MixtureVelocity::new(mix.clone(), GaussianPath::new(CondOt))
                .eval(&x, &times_like(&x, 0.0)),
        );
        let m = mix.mean();
        let xs = to_vec(&x);
        for r in 0..3 {
            for i in 0..2 {
                assert!((u0[r * 2 + i] - (m[i] - xs[r * 2 + i])).abs() < 1e-12);
            }
        }
        let n = 4000;
        let noise = crate::tensor::randn(n, 2, &cpu(), DType::F64, &mut rng(3));
        let flow = MixtureVelocity::new(mix.clone(), GaussianPath::new(CondOt));
        let out = odeint(&flow, noise, 0.0, 1.0, &OdeOptions::dopri5(1e-7, 1e-7)).unwrap();
        let pts = crate::data::Points::from_tensor(&out.x);
        let (mean, cov) = (crate::metrics::mean(&pts), crate::metrics::covariance(&pts));
        let (tm, tc) = (mix.mean(), mix.covariance());
        for i in 0..2 {
            let se = (tc[i * 2 + i] / n as f64).sqrt();
            assert!(
                (mean[i] - tm[i]).abs() < 5.0 * se,
                "mean {i}: {} vs {}",
                mean[i],
                tm[i]
            );
            // Var of a sample variance ≈ 2σ⁴/n for near-Gaussian tails; mixtures have heavier
            // ones, so 5 SE of the Gaussian rate with a factor 2 margin.
            let se_v = 2.0 * tc[i * 2 + i] * (2.0 / n as f64).sqrt();
            assert!(
                (cov[i * 2 + i] - tc[i * 2 + i]).abs() < 5.0 * se_v,
                "var {i}: {} vs {}",
                cov[i * 2 + i],
                tc[i * 2 + i]
            );
        }
    }
}
