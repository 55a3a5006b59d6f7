//! NFE accounting: [`Counted`] wraps any field and tallies network evaluations as the
//! posterior-sampling literature counts them — a plain evaluation 1, one that also carries a
//! Jacobian–vector or vector–Jacobian product (an input gradient) 2.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::VectorField;
use crate::tensor::Tensor;

/// A field that counts its evaluations (see the module documentation).
#[derive(Debug, Default)]
pub struct Counted<F> {
    /// The field.
    pub field: F,
    nfe: AtomicUsize,
}

impl<F> Counted<F> {
    /// Wraps `field` with the count at 0.
    pub fn new(field: F) -> Self {
        Self {
            field,
            nfe: AtomicUsize::new(0),
        }
    }

    /// Evaluations so far (an input gradient counts 2).
    pub fn nfe(&self) -> usize {
        self.nfe.load(Ordering::Relaxed)
    }

    /// Sets the count back to 0.
    pub fn reset(&self) {
        self.nfe.store(0, Ordering::Relaxed);
    }

    fn add(&self, k: usize) {
        self.nfe.fetch_add(k, Ordering::Relaxed);
    }
}

impl<F: VectorField> VectorField for Counted<F> {
    fn dim(&self) -> usize {
        self.field.dim()
    }
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        self.add(1);
        self.field.eval(x, t)
    }
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.add(2);
        self.field.jvp(x, t, u)
    }
    fn exact_jvp(&self) -> bool {
        self.field.exact_jvp()
    }
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.add(2);
        self.field.vjp(x, t, w)
    }
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.add(2);
        self.field.vjp_with(x, t, w)
    }
}
