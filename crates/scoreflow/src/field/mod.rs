//! Vector fields v(x, t): the one abstraction everything else builds on.
//!
//! A score s(x, t) = ∇ₓ log p_t(x), a noise prediction ε(x, t) and a flow velocity u(x, t) are
//! all [`VectorField`]s. Samplers follow them, likelihoods integrate their divergence, and
//! diagnostics inspect their Jacobian.

pub mod activation;
pub mod analytic;
pub mod convert;
pub mod counted;
pub mod divergence;
pub mod mlp;
pub mod network;
pub mod networks;
pub mod unet;

use crate::tensor::{matrix_like, to_vec, vector_like, Tensor};

/// A time-dependent vector field v: R^d × R → R^d, evaluated on batches.
///
/// `x` has shape `(batch, d)`, `t` shape `(batch,)`; the result has shape `(batch, d)`.
/// Implementations that can give exact Jacobian–vector products (analytic fields, the MLP by
/// forward-mode tangents) override [`VectorField::jvp`] and report it in
/// [`VectorField::exact_jvp`]; the default is a central finite difference.
pub trait VectorField {
    /// Dimension d of the space the field acts on.
    fn dim(&self) -> usize;

    /// v(x, t).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2>;

    /// v(x, t) at one time t for the whole batch.
    fn eval_at(&self, x: &Tensor<2>, t: f64) -> Tensor<2> {
        self.eval(x, &crate::tensor::times_like(x, t))
    }

    /// (v(x, t), J(x, t)·u) with J = ∂v/∂x, u of shape `(batch, d)`.
    ///
    /// Default: central difference (v(x + h u) − v(x − h u)) / 2h with h = ε^{1/3}·max(1, ‖x‖∞),
    /// ε the dtype's machine epsilon — O(h²) accurate; exact fields override it.
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        fd_jvp(|y| self.eval(y, t), x, u)
    }

    /// True when [`VectorField::jvp`] is exact rather than a finite difference.
    fn exact_jvp(&self) -> bool {
        false
    }

    /// (v(x, t), ∇·v(x, t)) with ∇·v = tr J = Σᵢ eᵢᵀ J eᵢ, by d Jacobian–vector products.
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        divergence_by_jvp(x, |u| self.jvp(x, t, u))
    }

    /// (v(x, t), Jᵀ·w): the input gradient ∇ₓ⟨w, v(x, t)⟩ of each row, w of shape `(batch, d)`.
    ///
    /// Default: (Jᵀw)ⱼ = wᵀ J eⱼ by d Jacobian–vector products; networks override it with one
    /// reverse pass (the cost of posterior sampling must not grow with d).
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        vjp_by_jvp(x, w, |u| self.jvp(x, t, u))
    }

    /// (v(x, t), Jᵀ·w(v)): the input gradient of ⟨w, v⟩ for a cotangent that depends on the
    /// output itself (DPS's w = Aᵀ(y − A x̂₀(v)), a classifier's w = e_c − softmax(v)).
    ///
    /// Default: v = eval, then [`VectorField::vjp`] (two forward passes); networks override it
    /// with one forward pass that keeps its activations and one backward pass.
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let v = self.eval(x, t);
        let (_, g) = self.vjp(x, t, &w(&v));
        (v, g)
    }

    /// (v(x, t), J) with J\[b, i, j\] = ∂vᵢ/∂xⱼ of shape `(batch, d, d)`, by d products J·eⱼ.
    fn jacobian(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<3>) {
        let [n, d] = x.dims();
        let mut v_out = None;
        let mut cols = Vec::with_capacity(d);
        for j in 0..d {
            let (v, ju) = self.jvp(x, t, &basis_like(x, j));
            cols.push(ju.reshape([n, d, 1]));
            v_out.get_or_insert(v);
        }
        let v = v_out.unwrap_or_else(|| self.eval(x, t));
        (v, Tensor::cat(cols, 2))
    }
}

/// Central-difference Jacobian–vector product of `f` at `x` along `u`:
/// (f(x), (f(x + h u) − f(x − h u)) / 2h) with h = ε^{1/3}·max(1, ‖x‖∞), ε the dtype's machine
/// epsilon (error O(h²)).
pub fn fd_jvp(
    f: impl Fn(&Tensor<2>) -> Tensor<2>,
    x: &Tensor<2>,
    u: &Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let eps = if x.dtype() == burn::tensor::DType::F64 {
        f64::EPSILON
    } else {
        f32::EPSILON as f64
    };
    let scale = to_vec(&x.clone().abs().max())
        .first()
        .copied()
        .unwrap_or(1.0)
        .max(1.0);
    let h = eps.cbrt() * scale;
    let v = f(x);
    let fp = f(&(x.clone() + u.clone() * h));
    let fm = f(&(x.clone() - u.clone() * h));
    (v, (fp - fm) / (2.0 * h))
}

/// (v, ∇·v) = (v, Σᵢ eᵢᵀ J eᵢ) from d Jacobian–vector products `jvp(eᵢ) = (v, J eᵢ)`.
pub fn divergence_by_jvp(
    x: &Tensor<2>,
    jvp: impl Fn(&Tensor<2>) -> (Tensor<2>, Tensor<2>),
) -> (Tensor<2>, Tensor<1>) {
    let [n, d] = x.dims();
    let mut v_out = None;
    let mut div: Option<Tensor<1>> = None;
    for i in 0..d {
        let (v, ju) = jvp(&basis_like(x, i));
        let col = ju.narrow(1, i, 1).reshape([n]);
        div = Some(match div {
            None => col,
            Some(acc) => acc + col,
        });
        v_out.get_or_insert(v);
    }
    let v = v_out.unwrap_or_else(|| x.clone());
    (v, div.unwrap_or_else(|| vector_like(vec![0.0; n], x)))
}

/// (v, Jᵀ w) from d Jacobian–vector products: (Jᵀw)ⱼ = ⟨w, J eⱼ⟩ row by row.
pub fn vjp_by_jvp(
    x: &Tensor<2>,
    w: &Tensor<2>,
    jvp: impl Fn(&Tensor<2>) -> (Tensor<2>, Tensor<2>),
) -> (Tensor<2>, Tensor<2>) {
    let [n, d] = x.dims();
    let mut v_out = None;
    let mut cols = Vec::with_capacity(d);
    for j in 0..d {
        let (v, je) = jvp(&basis_like(x, j));
        cols.push((je * w.clone()).sum_dim(1).reshape([n, 1]));
        v_out.get_or_insert(v);
    }
    let v = v_out.unwrap_or_else(|| x.clone());
    (v, Tensor::cat(cols, 1))
}

/// The batch of unit vectors e_i shaped like `x`: every row is e_i.
pub fn basis_like(x: &Tensor<2>, i: usize) -> Tensor<2> {
    let [n, d] = x.dims();
    let mut data = vec![0.0; n * d];
    for r in 0..n {
        data[r * d + i] = 1.0;
    }
    matrix_like(data, n, d, x)
}

macro_rules! forward_field {
    ($($ptr:ty),*) => {$(
        impl<F: VectorField + ?Sized> VectorField for $ptr {
            fn dim(&self) -> usize { (**self).dim() }
            fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> { (**self).eval(x, t) }
            fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
                (**self).jvp(x, t, u)
            }
            fn exact_jvp(&self) -> bool { (**self).exact_jvp() }
            fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
                (**self).divergence(x, t)
            }
            fn jacobian(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<3>) {
                (**self).jacobian(x, t)
            }
            fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
                (**self).vjp(x, t, w)
            }
            fn vjp_with(
                &self,
                x: &Tensor<2>,
                t: &Tensor<1>,
                w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
            ) -> (Tensor<2>, Tensor<2>) {
                (**self).vjp_with(x, t, w)
            }
        }
    )*};
}
forward_field!(&F, Box<F>, std::sync::Arc<F>);

/// A field given by a closure `(x, t) ↦ v`, e.g. a linear test ODE dx/dt = A x.
pub struct FnField<F> {
    dim: usize,
    f: F,
}

impl<F: Fn(&Tensor<2>, &Tensor<1>) -> Tensor<2>> FnField<F> {
    /// Wraps `f` as a field on R^`dim`.
    pub fn new(dim: usize, f: F) -> Self {
        Self { dim, f }
    }
}

impl<F: Fn(&Tensor<2>, &Tensor<1>) -> Tensor<2>> VectorField for FnField<F> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        (self.f)(x, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{cpu, matrix, times_like, DType};

    /// v(x) = (x0² + x1, sin x0 · x1): divergence 2x0 + sin x0, checked against the formula.
    #[test]
    fn finite_difference_divergence_matches_closed_form() {
        let f = FnField::new(2, |x: &Tensor<2>, _t: &Tensor<1>| {
            let x0 = x.clone().narrow(1, 0, 1);
            let x1 = x.clone().narrow(1, 1, 1);
            Tensor::cat(vec![x0.clone() * x0.clone() + x1.clone(), x0.sin() * x1], 1)
        });
        let pts = vec![0.3, -1.2, 1.5, 0.7, -2.0, 2.5];
        let x = matrix(pts.clone(), 3, 2, &cpu(), DType::F64);
        let (_, div) = f.divergence(&x, &times_like(&x, 0.0));
        let div = to_vec(&div);
        for r in 0..3 {
            let x0 = pts[2 * r];
            let expect = 2.0 * x0 + x0.sin();
            assert!(
                (div[r] - expect).abs() < 1e-8,
                "row {r}: {} vs {expect}",
                div[r]
            );
        }
        let (_, jac) = f.jacobian(&x, &times_like(&x, 0.0));
        let j = to_vec(&jac);
        // row 0: J = [[2x0, 1], [cos x0 · x1, sin x0]]
        let (x0, x1) = (pts[0], pts[1]);
        let expect = [2.0 * x0, 1.0, x0.cos() * x1, x0.sin()];
        for k in 0..4 {
            assert!(
                (j[k] - expect[k]).abs() < 1e-8,
                "J[{k}] {} vs {}",
                j[k],
                expect[k]
            );
        }
    }
}
