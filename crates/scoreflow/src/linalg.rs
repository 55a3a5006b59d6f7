//! Small dense linear algebra on row-major `f64` slices, for the low dimensions of analytic
//! fields, diagnostics and metrics: Cholesky factorisation and inverse, the symmetric
//! eigenproblem (cyclic Jacobi, with eigenvectors), eigenvalues of a general real matrix
//! (Hessenberg + shifted QR), a general linear solve (Gaussian elimination), Gram–Schmidt
//! orthonormalisation, an f64 matrix product and a stable log-sum-exp. A leaf module: it
//! depends on nothing else in the crate.

// Index loops over d are the clearest way to write small dense linear algebra.
#![allow(clippy::needless_range_loop)]

/// Lower Cholesky factor L (row-major d × d) with A = L Lᵀ, or `None` unless A is symmetric
/// positive definite (relative symmetry tolerance 1e-10).
pub fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    if a.len() != d * d || a.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let scale = a
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    for i in 0..d {
        for j in 0..i {
            if (a[i * d + j] - a[j * d + i]).abs() > 1e-10 * scale {
                return None;
            }
        }
    }
    cholesky_lower(a, d)
}

/// A = L Lᵀ: the lower Cholesky factor L (row-major d × d) read from the lower triangle of A
/// only (no symmetry check), or `None` when a pivot is not positive and finite.
pub fn cholesky_lower(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if !(v > 0.0 && v.is_finite()) {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// A⁻¹ (row-major) from the Cholesky factor L of A, by solving L Lᵀ X = I column by column.
pub fn cholesky_inverse(l: &[f64], d: usize) -> Vec<f64> {
    let mut inv = vec![0.0; d * d];
    let mut y = vec![0.0; d];
    for c in 0..d {
        for i in 0..d {
            let b = if i == c { 1.0 } else { 0.0 };
            let s: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
            y[i] = (b - s) / l[i * d + i];
        }
        for i in (0..d).rev() {
            let s: f64 = (i + 1..d).map(|k| l[k * d + i] * inv[k * d + c]).sum();
            inv[i * d + c] = (y[i] - s) / l[i * d + i];
        }
    }
    inv
}

/// x with A x = b for a row-major d × d matrix, by Gaussian elimination with partial pivoting,
/// or `None` when A is singular to working precision (a pivot below 1e-14 of A's largest
/// entry) or the sizes disagree.
pub fn solve(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let d = b.len();
    if a.len() != d * d {
        return None;
    }
    let mut m = a.to_vec();
    let mut x = b.to_vec();
    let scale = m.iter().fold(0.0f64, |acc, v| acc.max(v.abs()));
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| m[i * d + c].abs().total_cmp(&m[j * d + c].abs()))?;
        if m[p * d + c].abs() <= 1e-14 * scale || m[p * d + c].is_nan() {
            return None;
        }
        if p != c {
            for k in 0..d {
                m.swap(p * d + k, c * d + k);
            }
            x.swap(p, c);
        }
        for r in c + 1..d {
            let f = m[r * d + c] / m[c * d + c];
            for k in c..d {
                m[r * d + k] -= f * m[c * d + k];
            }
            x[r] -= f * x[c];
        }
    }
    for r in (0..d).rev() {
        let s: f64 = (r + 1..d).map(|k| m[r * d + k] * x[k]).sum();
        x[r] = (x[r] - s) / m[r * d + r];
    }
    Some(x)
}

/// y = A x for a row-major d × d matrix.
pub fn matvec(a: &[f64], x: &[f64], y: &mut [f64]) {
    let d = x.len();
    for i in 0..d {
        y[i] = (0..d).map(|j| a[i * d + j] * x[j]).sum();
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// log Σₖ exp(aₖ), robust to overflow; −∞ when every term is −∞.
pub fn log_sum_exp(a: &[f64]) -> f64 {
    let m = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    m + a.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Eigenvalues of a symmetric row-major d × d matrix, ascending (the values of
/// [`symmetric_eigen`]).
///
/// # Panics
/// If `a.len() != d²` (a programming error).
pub fn symmetric_eigenvalues(a: &[f64], d: usize) -> Vec<f64> {
    symmetric_eigen(a, d).0
}

/// A = Q Λ Qᵀ for a symmetric row-major d × d matrix, by the cyclic Jacobi method: rotations
/// Jᵀ A J that zero one off-diagonal pair at a time until the off-diagonal mass is below 1e-15
/// of the total (quadratic convergence; exact to rounding for the small matrices used here),
/// accumulating Q = J₁ J₂ …. Returns (λ ascending, Q row-major with column i the unit
/// eigenvector of λᵢ). Only the upper triangle is read, as symmetric.
///
/// # Panics
/// If `a.len() != d²` (a programming error).
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(
        a.len(),
        d * d,
        "symmetric_eigen: {} entries for {d}×{d}",
        a.len()
    );
    let mut m = vec![0.0; d * d];
    let mut q = vec![0.0; d * d];
    for i in 0..d {
        q[i * d + i] = 1.0;
        for j in i..d {
            m[i * d + j] = a[i * d + j];
            m[j * d + i] = a[i * d + j];
        }
    }
    let total: f64 = m.iter().map(|v| v * v).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j] * m[i * d + j])
            .sum();
        if off <= 1e-30 * total.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..d {
            for r in p + 1..d {
                let apq = m[p * d + r];
                if apq == 0.0 {
                    continue;
                }
                // Rotation angle θ with tan 2θ = 2a_pq / (a_qq − a_pp), the smaller root.
                let theta = (m[r * d + r] - m[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (mkp, mkq) = (m[k * d + p], m[k * d + r]);
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + r] = s * mkp + c * mkq;
                    let (qkp, qkq) = (q[k * d + p], q[k * d + r]);
                    q[k * d + p] = c * qkp - s * qkq;
                    q[k * d + r] = s * qkp + c * qkq;
                }
                for k in 0..d {
                    let (mpk, mqk) = (m[p * d + k], m[r * d + k]);
                    m[p * d + k] = c * mpk - s * mqk;
                    m[r * d + k] = s * mpk + c * mqk;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&x, &y| m[x * d + x].total_cmp(&m[y * d + y]));
    let values = order.iter().map(|&i| m[i * d + i]).collect();
    let mut vectors = vec![0.0; d * d];
    for (col, &i) in order.iter().enumerate() {
        for k in 0..d {
            vectors[k * d + col] = q[k * d + i];
        }
    }
    (values, vectors)
}

/// An orthonormal basis (rows, row-major k × d) of the span of the `rows.len() / d` row vectors
/// of `rows`, by modified Gram–Schmidt applied twice ("twice is enough", Giraud et al. 2005);
/// a vector whose residual after projection is below `rel_tol` of its own norm (or exactly 0)
/// is dependent on the earlier ones and dropped. The basis spans the rows in their order.
///
/// # Panics
/// If `rows.len()` is not a multiple of `d` (a programming error).
pub fn orthonormal_rows(rows: &[f64], d: usize, rel_tol: f64) -> Vec<f64> {
    assert!(
        d > 0 && rows.len().is_multiple_of(d),
        "orthonormal_rows: bad shape"
    );
    let mut basis: Vec<f64> = Vec::with_capacity(rows.len());
    for v in rows.chunks_exact(d) {
        let norm0 = dot(v, v).sqrt();
        if norm0 == 0.0 || !norm0.is_finite() {
            continue;
        }
        let mut w = v.to_vec();
        for _pass in 0..2 {
            for b in basis.chunks_exact(d) {
                let c = dot(&w, b);
                w.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
            }
        }
        let norm = dot(&w, &w).sqrt();
        if norm > rel_tol * norm0 {
            basis.extend(w.iter().map(|x| x / norm));
        }
    }
    basis
}

/// x = A⁻¹ b from the lower Cholesky factor L of A (A = L Lᵀ, row-major d × d): forward then
/// back substitution.
pub fn cholesky_solve(l: &[f64], b: &[f64]) -> Vec<f64> {
    let d = b.len();
    let mut y = vec![0.0; d];
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * d + i];
    }
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[k * d + i] * y[k]).sum();
        y[i] = (y[i] - s) / l[i * d + i];
    }
    y
}

/// C = A·B (C row-major m × n, overwritten) for f64 operands given by (data, row stride,
/// column stride): A is m × k, B is k × n. The `gemm` crate's kernels (those of the fused
/// engine), parallel over the rayon pool when the product is large.
///
/// # Panics
/// If an operand is too small for its shape (a programming error).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: (&[f64], usize, usize),
    b: (&[f64], usize, usize),
    c: &mut [f64],
) {
    let fits = |(data, rs, cs): (&[f64], usize, usize), r: usize, cols: usize| {
        r == 0 || cols == 0 || (r - 1) * rs + (cols - 1) * cs < data.len()
    };
    assert!(fits(a, m, k), "matmul: lhs too small for {m}x{k}");
    assert!(fits(b, k, n), "matmul: rhs too small for {k}x{n}");
    assert!(c.len() >= m * n, "matmul: dst too small for {m}x{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    let par = if m * n * k > 1 << 18 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee every index the kernel touches is in bounds; the
    // destination is a unique borrow and does not alias the shared operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.0.as_ptr(),
            a.2 as isize,
            a.1 as isize,
            b.0.as_ptr(),
            b.2 as isize,
            b.1 as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// λ_max of a symmetric row-major d × d matrix (the last of [`symmetric_eigenvalues`]); 0 for
/// d = 0.
pub fn largest_eigenvalue(a: &[f64], d: usize) -> f64 {
    symmetric_eigenvalues(a, d).last().copied().unwrap_or(0.0)
}

/// Eigenvalues (Re λ, Im λ) of the real d×d matrix `a` (row-major), sorted by real part then
/// imaginary part. d ≤ 2 in closed form (λ = tr/2 ± √(tr²/4 − det)); larger d by Hessenberg
/// reduction + shifted double-step QR.
///
/// # Panics
/// If `a.len() != d²` (a programming error).
pub fn eigenvalues(a: &[f64], d: usize) -> Vec<[f64; 2]> {
    assert_eq!(
        a.len(),
        d * d,
        "eigenvalues: {} entries for {d}×{d}",
        a.len()
    );
    let mut out = match d {
        0 => Vec::new(),
        1 => vec![[a[0], 0.0]],
        2 => {
            let (half_tr, det) = (0.5 * (a[0] + a[3]), a[0] * a[3] - a[1] * a[2]);
            // Discriminant as ((a − d)/2)² + bc: no cancellation for nearly equal roots.
            let disc = 0.25 * (a[0] - a[3]) * (a[0] - a[3]) + a[1] * a[2];
            if disc >= 0.0 {
                let s = disc.sqrt();
                // The larger-magnitude root directly, the other from det = λ₁λ₂ (stable).
                let big = half_tr + s.copysign(half_tr);
                let small = if big != 0.0 {
                    det / big
                } else {
                    half_tr - s.copysign(half_tr)
                };
                vec![[big, 0.0], [small, 0.0]]
            } else {
                let s = (-disc).sqrt();
                vec![[half_tr, s], [half_tr, -s]]
            }
        }
        _ => hqr(hessenberg(a, d), d),
    };
    out.sort_by(|x, y| x[0].total_cmp(&y[0]).then(x[1].total_cmp(&y[1])));
    out
}

/// Reduction to upper Hessenberg form by Gaussian elimination with partial pivoting (a
/// similarity transform; EISPACK `elmhes`). Returns a 1-based (d+1)×(d+1) array for [`hqr`].
fn hessenberg(a0: &[f64], n: usize) -> Vec<f64> {
    let w = n + 1;
    let mut a = vec![0.0; w * w];
    for i in 0..n {
        for j in 0..n {
            a[(i + 1) * w + j + 1] = a0[i * n + j];
        }
    }
    for m in 2..n {
        let (mut x, mut i) = (0.0f64, m);
        for j in m..=n {
            if a[j * w + m - 1].abs() > x.abs() {
                x = a[j * w + m - 1];
                i = j;
            }
        }
        if i != m {
            for j in (m - 1)..=n {
                a.swap(i * w + j, m * w + j);
            }
            for j in 1..=n {
                a.swap(j * w + i, j * w + m);
            }
        }
        if x != 0.0 {
            for i in (m + 1)..=n {
                let mut y = a[i * w + m - 1];
                if y != 0.0 {
                    y /= x;
                    a[i * w + m - 1] = y;
                    for j in m..=n {
                        a[i * w + j] -= y * a[m * w + j];
                    }
                    for j in 1..=n {
                        a[j * w + m] += y * a[j * w + i];
                    }
                }
            }
        }
    }
    // Clear the stored multipliers: only the Hessenberg part is kept.
    for i in 3..=n {
        for j in 1..i - 1 {
            a[i * w + j] = 0.0;
        }
    }
    a
}

/// Eigenvalues of an upper Hessenberg matrix (1-based (n+1)² array) by the Francis shifted
/// double-step QR iteration with deflation (EISPACK `hqr`, as in Numerical Recipes §11.6).
/// After 60 iterations without deflating an eigenvalue the remaining block's eigenvalues are
/// reported as NaN (never observed for the small matrices used here).
fn hqr(mut a: Vec<f64>, n: usize) -> Vec<[f64; 2]> {
    let w = n + 1;
    let ix = |i: usize, j: usize| i * w + j;
    let mut wr = vec![0.0; n + 1];
    let mut wi = vec![0.0; n + 1];
    let mut anorm = 0.0;
    for i in 1..=n {
        for j in (i.max(2) - 1)..=n {
            anorm += a[ix(i, j)].abs();
        }
    }
    let mut nn = n;
    let mut t = 0.0;
    'outer: while nn >= 1 {
        let mut its = 0;
        loop {
            // Look for a single small subdiagonal element.
            let mut l = nn;
            while l >= 2 {
                let mut s = a[ix(l - 1, l - 1)].abs() + a[ix(l, l)].abs();
                if s == 0.0 {
                    s = anorm;
                }
                if a[ix(l, l - 1)].abs() + s == s {
                    a[ix(l, l - 1)] = 0.0;
                    break;
                }
                l -= 1;
            }
            let mut x = a[ix(nn, nn)];
            if l == nn {
                // One root found.
                wr[nn] = x + t;
                wi[nn] = 0.0;
                nn -= 1;
                continue 'outer;
            }
            let mut y = a[ix(nn - 1, nn - 1)];
            let mut ww = a[ix(nn, nn - 1)] * a[ix(nn - 1, nn)];
            if l == nn - 1 {
                // Two roots found.
                let p = 0.5 * (y - x);
                let q = p * p + ww;
                let mut z = q.abs().sqrt();
                x += t;
                if q >= 0.0 {
                    z = p + z.copysign(p);
                    wr[nn - 1] = x + z;
                    wr[nn] = if z != 0.0 { x - ww / z } else { x + z };
                    wi[nn - 1] = 0.0;
                    wi[nn] = 0.0;
                } else {
                    wr[nn - 1] = x + p;
                    wr[nn] = x + p;
                    wi[nn - 1] = -z;
                    wi[nn] = z;
                }
                if nn < 2 {
                    break 'outer;
                }
                nn -= 2;
                continue 'outer;
            }
            if its == 60 {
                for k in 1..=nn {
                    wr[k] = f64::NAN;
                    wi[k] = f64::NAN;
                }
                break 'outer;
            }
            if its == 10 || its == 20 {
                // Exceptional shift.
                t += x;
                for i in 1..=nn {
                    a[ix(i, i)] -= x;
                }
                let s = a[ix(nn, nn - 1)].abs() + a[ix(nn - 1, nn - 2)].abs();
                x = 0.75 * s;
                y = x;
                ww = -0.4375 * s * s;
            }
            its += 1;
            // Form the shift and look for two consecutive small subdiagonal elements.
            let mut m = nn - 2;
            let (mut p, mut q, mut r);
            loop {
                let z = a[ix(m, m)];
                let rr = x - z;
                let ss = y - z;
                p = (rr * ss - ww) / a[ix(m + 1, m)] + a[ix(m, m + 1)];
                q = a[ix(m + 1, m + 1)] - z - rr - ss;
                r = a[ix(m + 2, m + 1)];
                let s = p.abs() + q.abs() + r.abs();
                p /= s;
                q /= s;
                r /= s;
                if m == l {
                    break;
                }
                let u = a[ix(m, m - 1)].abs() * (q.abs() + r.abs());
                let v = p.abs() * (a[ix(m - 1, m - 1)].abs() + z.abs() + a[ix(m + 1, m + 1)].abs());
                if u + v == v {
                    break;
                }
                m -= 1;
            }
            for i in (m + 2)..=nn {
                a[ix(i, i - 2)] = 0.0;
                if i != m + 2 {
                    a[ix(i, i - 3)] = 0.0;
                }
            }
            // Double QR step on rows l..nn and columns m..nn.
            let mut k = m;
            while k < nn {
                if k != m {
                    p = a[ix(k, k - 1)];
                    q = a[ix(k + 1, k - 1)];
                    r = if k != nn - 1 {
                        a[ix(k + 2, k - 1)]
                    } else {
                        0.0
                    };
                    x = p.abs() + q.abs() + r.abs();
                    if x != 0.0 {
                        p /= x;
                        q /= x;
                        r /= x;
                    }
                }
                let s = (p * p + q * q + r * r).sqrt().copysign(p);
                if s != 0.0 {
                    if k == m {
                        if l != m {
                            a[ix(k, k - 1)] = -a[ix(k, k - 1)];
                        }
                    } else {
                        a[ix(k, k - 1)] = -s * x;
                    }
                    p += s;
                    x = p / s;
                    y = q / s;
                    let z = r / s;
                    q /= p;
                    r /= p;
                    for j in k..=nn {
                        let mut pp = a[ix(k, j)] + q * a[ix(k + 1, j)];
                        if k != nn - 1 {
                            pp += r * a[ix(k + 2, j)];
                            a[ix(k + 2, j)] -= pp * z;
                        }
                        a[ix(k + 1, j)] -= pp * y;
                        a[ix(k, j)] -= pp * x;
                    }
                    let mmin = nn.min(k + 3);
                    for i in l..=mmin {
                        let mut pp = x * a[ix(i, k)] + y * a[ix(i, k + 1)];
                        if k != nn - 1 {
                            pp += z * a[ix(i, k + 2)];
                            a[ix(i, k + 2)] -= pp * r;
                        }
                        a[ix(i, k + 1)] -= pp * q;
                        a[ix(i, k)] -= pp;
                    }
                }
                k += 1;
            }
        }
    }
    (1..=n).map(|i| [wr[i], wi[i]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The review's counter-example: Σ = [[1, −0.9], [−0.9, 1]] has eigenvalues 0.1 and 1.9,
    /// and (1, 1)/√2 is the eigenvector of 0.1, so power iteration started there never leaves
    /// it (the old routine returned 0.1).
    #[test]
    fn largest_eigenvalue_of_anticorrelated_covariance() {
        let a = [1.0, -0.9, -0.9, 1.0];
        assert!((largest_eigenvalue(&a, 2) - 1.9).abs() < 1e-12);
        let ev = symmetric_eigenvalues(&a, 2);
        assert!(
            (ev[0] - 0.1).abs() < 1e-12 && (ev[1] - 1.9).abs() < 1e-12,
            "{ev:?}"
        );
    }

    /// Jacobi against closed forms: the tridiagonal matrix 2I − (shift + shiftᵀ) has
    /// eigenvalues 2 − 2cos(kπ/(d+1)); a random symmetric matrix keeps its trace and Frobenius
    /// norm (Σλ = tr A, Σλ² = ‖A‖²_F) and agrees with the general eigenvalue routine.
    #[test]
    fn symmetric_eigenvalues_match_closed_forms() {
        let d = 7;
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            a[i * d + i] = 2.0;
            if i + 1 < d {
                a[i * d + i + 1] = -1.0;
                a[(i + 1) * d + i] = -1.0;
            }
        }
        let got = symmetric_eigenvalues(&a, d);
        let mut want: Vec<f64> = (1..=d)
            .map(|k| 2.0 - 2.0 * (k as f64 * std::f64::consts::PI / (d as f64 + 1.0)).cos())
            .collect();
        want.sort_by(|x, y| x.total_cmp(y));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
        let d = 6;
        let mut s: u64 = 12345;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let mut b = vec![0.0; d * d];
        for i in 0..d {
            for j in i..d {
                let v = next();
                b[i * d + j] = v;
                b[j * d + i] = v;
            }
        }
        let ev = symmetric_eigenvalues(&b, d);
        let tr: f64 = (0..d).map(|i| b[i * d + i]).sum();
        let fro: f64 = b.iter().map(|v| v * v).sum();
        assert!((ev.iter().sum::<f64>() - tr).abs() < 1e-12);
        assert!((ev.iter().map(|v| v * v).sum::<f64>() - fro).abs() < 1e-12);
        let general: Vec<f64> = eigenvalues(&b, d).into_iter().map(|[re, _]| re).collect();
        for (x, y) in ev.iter().zip(&general) {
            assert!((x - y).abs() < 1e-9, "{ev:?} vs {general:?}");
        }
    }

    /// A x = b solved for a 3 × 3 system that needs pivoting (zero leading entry): A·x
    /// reproduces b to 1e-14; a singular matrix is `None`.
    #[test]
    fn solve_with_pivoting() {
        let a = [0.0, 2.0, 1.0, 1.0, -1.0, 3.0, 4.0, 0.5, -2.0];
        let b = [1.0, -2.0, 0.5];
        let x = solve(&a, &b).unwrap();
        let mut y = [0.0; 3];
        matvec(&a, &x, &mut y);
        for i in 0..3 {
            assert!((y[i] - b[i]).abs() < 1e-14, "{y:?}");
        }
        assert!(solve(&[1.0, 2.0, 2.0, 4.0], &[1.0, 1.0]).is_none());
        assert_eq!(solve(&[2.0], &[3.0]).unwrap(), vec![1.5]);
    }
}
