//! Entropic optimal transport by Sinkhorn's algorithm in the log domain:
//!
//! π_ε = argmin_{π ∈ Π(a, b)} ⟨C, π⟩ − ε H(π),   H(π) = −Σ πᵢⱼ (ln πᵢⱼ − 1),
//!
//! whose solution is πᵢⱼ = exp((fᵢ + gⱼ − Cᵢⱼ)/ε) for dual potentials (f, g) that the
//! alternating updates
//!
//! fᵢ ← ε ln aᵢ − ε LSEⱼ((gⱼ − Cᵢⱼ)/ε),   gⱼ ← ε ln bⱼ − ε LSEᵢ((fᵢ − Cᵢⱼ)/ε)
//!
//! converge to (Cuturi 2013; Peyré & Cuturi 2019, §4.4 for the log-domain form). Working with
//! potentials and log-sum-exp never forms exp(−C/ε), which underflows to 0 as soon as
//! C/ε ≳ 745: POT's default `ot.sinkhorn` (used by TorchCFM's `OTPlanSampler(method="sinkhorn")`)
//! then returns a zero or NaN plan, which TorchCFM replaces by the uniform (independent) plan.
//!
//! **ε is absolute**, in the units of the cost (squared distances of the points as given — for a
//! scoreflow model, the normalised data units): this is what TorchCFM does (`reg` passed
//! straight to POT, `normalize_cost=False`), e.g. its default reg = 0.05 and its runner's
//! ε = 2σ² for Schrödinger-bridge CFM. As ε → 0 the plan tends to the exact OT plan and
//! 0 ≤ ⟨C, π_ε⟩ − OT ≤ ε ln n for uniform weights on n points (the test checks both).
//!
//! Stopping: after each g-update the column marginals are exact; every [`CHECK_EVERY`]
//! iterations the row-marginal error ‖π1 − a‖₁ is computed and the loop stops below `tol`
//! (POT's criterion, same default 1e-9) or after `max_iters` (POT: 1000) iterations in all.
//! The iterations run with ε-scaling (ε halved from max C down to ε, warm-starting the
//! potentials), which reaches the same fixed point in far fewer iterations when C/ε is large.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::linalg::log_sum_exp;

/// How often (in iterations) the marginal error is evaluated.
pub const CHECK_EVERY: usize = 10;

/// Marginal error at which an intermediate ε-scaling stage hands over to the next.
const SCALING_TOL: f64 = 1e-3;

/// Options of [`sinkhorn`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkhornOptions {
    /// Entropic regularisation ε > 0 (absolute, in cost units).
    pub epsilon: f64,
    /// Most iterations (one iteration = an f- and a g-update).
    pub max_iters: usize,
    /// Stop when ‖π1 − a‖₁ < tol.
    pub tol: f64,
}

impl SinkhornOptions {
    /// ε with POT's defaults: 1000 iterations, tolerance 1e-9.
    pub fn new(epsilon: f64) -> Self {
        Self {
            epsilon,
            max_iters: 1000,
            tol: 1e-9,
        }
    }

    /// Errors unless ε > 0 is finite, `max_iters` ≥ 1 and `tol` ≥ 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "Sinkhorn's ε must be a finite number > 0 (got {})",
                self.epsilon
            )));
        }
        if self.max_iters == 0 || self.tol.is_nan() || self.tol < 0.0 {
            return Err(Error::InvalidInput(format!(
                "Sinkhorn needs max_iters ≥ 1 and tol ≥ 0 (got {} and {})",
                self.max_iters, self.tol
            )));
        }
        Ok(())
    }
}

/// An entropic plan π (n × m, row-major, entries summing to 1) with its convergence record.
#[derive(Debug, Clone, PartialEq)]
pub struct EntropicPlan {
    /// πᵢⱼ, row-major.
    pub plan: Vec<f64>,
    /// Rows n.
    pub rows: usize,
    /// Columns m.
    pub cols: usize,
    /// Iterations run.
    pub iterations: usize,
    /// ‖π1 − a‖₁ at the end (the column marginals are exact).
    pub marginal_error: f64,
    /// True when `marginal_error < tol` was reached within `max_iters`.
    pub converged: bool,
}

impl EntropicPlan {
    /// ⟨C, π⟩.
    pub fn cost(&self, cost: &[f64]) -> f64 {
        cost.iter().zip(&self.plan).map(|(c, p)| c * p).sum()
    }
}

/// The entropic plan between weights `a` (n) and `b` (m), each summing to 1, for the cost
/// matrix `cost` (n × m, row-major); see the module documentation. Errors on shapes, weights
/// that are not positive or do not sum to 1 (±1e-9), non-finite costs or bad options.
pub fn sinkhorn(
    cost: &[f64],
    a: &[f64],
    b: &[f64],
    opts: &SinkhornOptions,
) -> Result<EntropicPlan> {
    opts.validate()?;
    let (n, m) = (a.len(), b.len());
    if cost.len() != n * m || n == 0 || m == 0 {
        return Err(Error::Shape(format!(
            "Sinkhorn needs a non-empty {n} × {m} cost matrix, got {} entries",
            cost.len()
        )));
    }
    for (name, w) in [("a", a), ("b", b)] {
        let total: f64 = w.iter().sum();
        if w.iter().any(|&x| !(x > 0.0 && x.is_finite())) || (total - 1.0).abs() > 1e-9 {
            return Err(Error::InvalidInput(format!(
                "Sinkhorn weights {name} must be positive and sum to 1 (sum {total})"
            )));
        }
    }
    if cost.iter().any(|c| !c.is_finite()) {
        return Err(Error::InvalidInput("Sinkhorn cost is not finite".into()));
    }
    let eps = opts.epsilon;
    let (ln_a, ln_b): (Vec<f64>, Vec<f64>) = (
        a.iter().map(|x| x.ln()).collect(),
        b.iter().map(|x| x.ln()).collect(),
    );
    // Cᵀ, so that both half-steps read contiguous rows.
    let cost_t: Vec<f64> = (0..m)
        .flat_map(|j| (0..n).map(move |i| cost[i * m + j]))
        .collect();
    let mut f = vec![0.0; n];
    let mut g = vec![0.0; m];
    let mut iterations = 0;
    let mut err = f64::INFINITY;
    // ε-scaling: solve at ε_k = max(ε, C_max/2ᵏ) for k = 0, 1, … with the potentials carried
    // over, each stage until its marginal error is below SCALING_TOL, the last to `tol`. The
    // fixed point is the same; the warm starts cut the iterations at small ε by orders of
    // magnitude (Schmitzer 2019, §3.2).
    let c_max = cost.iter().fold(0.0f64, |m, c| m.max(c.abs()));
    let mut stage_eps = c_max.max(eps);
    loop {
        let last = stage_eps <= eps;
        let e = if last { eps } else { stage_eps };
        let tol = if last { opts.tol } else { SCALING_TOL };
        while iterations < opts.max_iters {
            half_step(&mut f, &g, cost, &ln_a, e);
            half_step(&mut g, &f, &cost_t, &ln_b, e);
            iterations += 1;
            if iterations % CHECK_EVERY == 0 || iterations == opts.max_iters {
                err = row_marginal_error(&f, &g, cost, a, e);
                if err < tol {
                    break;
                }
            }
        }
        if last || iterations >= opts.max_iters {
            if !last {
                err = row_marginal_error(&f, &g, cost, a, eps);
            }
            break;
        }
        stage_eps *= 0.5;
    }
    let plan: Vec<f64> = (0..n * m)
        .map(|k| ((f[k / m] + g[k % m] - cost[k]) / eps).exp())
        .collect();
    Ok(EntropicPlan {
        plan,
        rows: n,
        cols: m,
        iterations,
        marginal_error: err,
        converged: err < opts.tol,
    })
}

/// Below this many matrix entries the half-steps run on one thread (rayon's overhead would
/// dominate).
const PARALLEL_MIN: usize = 1 << 14;

/// pᵢ ← ε ln wᵢ − ε LSEⱼ((qⱼ − Kᵢⱼ)/ε) for every row i of K (rows of length q.len()).
fn half_step(p: &mut [f64], q: &[f64], k: &[f64], ln_w: &[f64], eps: f64) {
    let m = q.len();
    let update = |buf: &mut Vec<f64>, ((pi, row), lw): ((&mut f64, &[f64]), &f64)| {
        for ((z, qj), kij) in buf.iter_mut().zip(q).zip(row) {
            *z = (qj - kij) / eps;
        }
        *pi = eps * (lw - log_sum_exp(buf));
    };
    if k.len() < PARALLEL_MIN {
        let mut buf = vec![0.0; m];
        p.iter_mut()
            .zip(k.chunks_exact(m))
            .zip(ln_w)
            .for_each(|x| update(&mut buf, x));
    } else {
        p.par_iter_mut()
            .zip(k.par_chunks_exact(m))
            .zip(ln_w.par_iter())
            .for_each_init(|| vec![0.0; m], update);
    }
}

/// Σᵢ |Σⱼ exp((fᵢ + gⱼ − Cᵢⱼ)/ε) − aᵢ|.
fn row_marginal_error(f: &[f64], g: &[f64], cost: &[f64], a: &[f64], eps: f64) -> f64 {
    let m = g.len();
    let term = |((fi, row), ai): ((&f64, &[f64]), &f64)| {
        let s: f64 = row
            .iter()
            .zip(g)
            .map(|(c, gj)| ((fi + gj - c) / eps).exp())
            .sum();
        (s - ai).abs()
    };
    if cost.len() < PARALLEL_MIN {
        f.iter().zip(cost.chunks_exact(m)).zip(a).map(term).sum()
    } else {
        // Summed per row then in index order: the result does not depend on the thread count.
        let per_row: Vec<f64> = f
            .par_iter()
            .zip(cost.par_chunks_exact(m))
            .zip(a.par_iter())
            .map(term)
            .collect();
        per_row.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupling::assignment::{assignment_cost, linear_sum_assignment};
    use crate::tensor::rng;
    use rand::Rng as _;

    fn uniform(n: usize) -> Vec<f64> {
        vec![1.0 / n as f64; n]
    }

    /// Marginals: the column sums are exact after the g-update (to rounding) and the row sums
    /// within the requested tolerance; unequal sizes and non-uniform weights too.
    #[test]
    fn plan_has_the_right_marginals() {
        let (n, m) = (7, 5);
        let mut r = rng(1);
        let cost: Vec<f64> = (0..n * m).map(|_| r.random::<f64>() * 3.0).collect();
        let raw: Vec<f64> = (0..n).map(|_| 0.5 + r.random::<f64>()).collect();
        let total: f64 = raw.iter().sum();
        let a: Vec<f64> = raw.iter().map(|x| x / total).collect();
        let b = uniform(m);
        for eps in [1.0, 0.1, 0.02] {
            let opts = SinkhornOptions {
                tol: 1e-10,
                max_iters: 100_000,
                epsilon: eps,
            };
            let p = sinkhorn(&cost, &a, &b, &opts).unwrap();
            assert!(
                p.converged,
                "ε = {eps}: {} after {}",
                p.marginal_error, p.iterations
            );
            for (i, ai) in a.iter().enumerate() {
                let s: f64 = p.plan[i * m..(i + 1) * m].iter().sum();
                assert!((s - ai).abs() < 1e-10, "row {i}: {s} vs {ai}");
            }
            for (j, bj) in b.iter().enumerate() {
                let s: f64 = (0..n).map(|i| p.plan[i * m + j]).sum();
                assert!((s - bj).abs() < 1e-13, "column {j}: {s} vs {bj}");
            }
        }
    }

    /// Costs with a planted optimum: sources at least 0.3 apart in [−1, 1]², targets = the
    /// sources permuted + N(0, 0.01²) noise, so every other assignment costs ≳ 0.09 more.
    fn planted(n: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
        let mut r = rng(seed);
        let mut x: Vec<[f64; 2]> = Vec::new();
        while x.len() < n {
            let p = [r.random::<f64>() * 2.0 - 1.0, r.random::<f64>() * 2.0 - 1.0];
            if x.iter()
                .all(|q| (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) > 0.09)
            {
                x.push(p);
            }
        }
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, r.random_range(0..=i));
        }
        let y: Vec<[f64; 2]> = perm
            .iter()
            .map(|&k| {
                let (a, b): (f64, f64) = (r.random(), r.random());
                // Box–Muller, std 0.01.
                let z = (-2.0 * a.max(1e-300).ln()).sqrt() * 0.01;
                [
                    x[k][0] + z * (std::f64::consts::TAU * b).cos(),
                    x[k][1] + z * (std::f64::consts::TAU * b).sin(),
                ]
            })
            .collect();
        let cost = (0..n * n)
            .map(|k| {
                let (p, q) = (x[k / n], y[k % n]);
                (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)
            })
            .collect();
        (cost, perm)
    }

    /// ε → 0: the entropic cost decreases to the exact OT cost within the bound
    /// 0 ≤ ⟨C, π_ε⟩ − OT ≤ ε ln n (uniform weights; see the module docs), and the plan tends
    /// to the OT permutation matrix P/n: with every competing assignment ≳ 0.09 dearer, the
    /// mass off P is ~ n² e^{−0.09/ε}, so at ε = 0.003 ‖π_ε − P/n‖₁ < 10⁻⁶. Large costs
    /// (C/ε up to 2.7·10³, where exp(−C/ε) underflows) stay finite in the log domain.
    #[test]
    fn tends_to_the_exact_plan_as_epsilon_shrinks() {
        let n = 6;
        for seed in 0..5 {
            let (cost, _) = planted(n, 100 + seed);
            let sigma = linear_sum_assignment(&cost, n).unwrap();
            let ot = assignment_cost(&cost, n, &sigma) / n as f64;
            let mut last = f64::INFINITY;
            for eps in [1.0, 0.3, 0.1, 0.03, 0.01, 0.003] {
                let opts = SinkhornOptions {
                    tol: 1e-7,
                    max_iters: 2_000_000,
                    epsilon: eps,
                };
                let p = sinkhorn(&cost, &uniform(n), &uniform(n), &opts).unwrap();
                assert!(
                    p.converged && p.plan.iter().all(|x| x.is_finite()),
                    "seed {seed}, ε = {eps}: error {} after {} iterations",
                    p.marginal_error,
                    p.iterations
                );
                let c = p.cost(&cost);
                assert!(
                    c >= ot - 1e-9 && c - ot <= eps * (n as f64).ln() + 1e-9,
                    "seed {seed}, ε = {eps}: ⟨C, π⟩ = {c}, OT = {ot}"
                );
                assert!(c <= last + 1e-9, "not monotone in ε");
                last = c;
                if eps == 0.003 {
                    let dist: f64 = (0..n * n)
                        .map(|k| {
                            let exact = if sigma[k / n] == k % n {
                                1.0 / n as f64
                            } else {
                                0.0
                            };
                            (p.plan[k] - exact).abs()
                        })
                        .sum();
                    assert!(dist < 1e-6, "seed {seed}: ‖π − P/n‖₁ = {dist}");
                }
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let c = [0.0; 4];
        let u = uniform(2);
        assert!(sinkhorn(&c, &u, &u, &SinkhornOptions::new(0.0)).is_err());
        assert!(sinkhorn(&c, &u, &u, &SinkhornOptions::new(f64::NAN)).is_err());
        assert!(matches!(
            sinkhorn(&c[..3], &u, &u, &SinkhornOptions::new(1.0)),
            Err(Error::Shape(_))
        ));
        assert!(sinkhorn(&c, &[0.7, 0.7], &u, &SinkhornOptions::new(1.0)).is_err());
        assert!(sinkhorn(
            &[0.0, f64::INFINITY, 0.0, 0.0],
            &u,
            &u,
            &SinkhornOptions::new(1.0)
        )
        .is_err());
    }
}
