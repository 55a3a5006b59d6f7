//! Reflow (Liu et al. 2023, "Flow straight and fast: rectified flow"): a trained flow Φ (the
//! solution map of dx/dt = v(x, t) from t = 0 to 1) defines the deterministic coupling
//! (x₀, Φ(x₀)), x₀ ~ q₀. Its marginals are q₀ and the flow's model of q₁, and its pairs cross
//! less than independent ones, so conditional flow matching on the *fixed* pairs (a
//! [`PairSet`]) learns a straighter flow with the same end marginals; repeating the step
//! ("k-rectified flow") straightens further. Liu et al. sample the pairs with an adaptive
//! solver and retrain starting from the previous weights; the procedure in
//! `examples/transport.rs` does the same.

use rand::Rng as _;

use crate::data::Points;
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::solve::{odeint, OdeOptions};
use crate::tensor::{DType, Device, Rng};

/// A fixed coupling of n pairs (x₀ᵢ, x₁ᵢ): minibatches draw pairs uniformly with replacement
/// and keep each pair together.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSet {
    source: Points,
    target: Points,
}

impl PairSet {
    /// Pairs row by row; `Error::Shape` unless both sets have the same, non-zero number of
    /// rows and the same dimension.
    pub fn new(source: Points, target: Points) -> Result<Self> {
        if source.len() != target.len() || source.dim() != target.dim() || source.is_empty() {
            return Err(Error::Shape(format!(
                "a pair set needs equal, non-empty sets: {} source points of dimension {} vs {} targets of dimension {}",
                source.len(),
                source.dim(),
                target.len(),
                target.dim()
            )));
        }
        Ok(Self { source, target })
    }

    /// The reflow coupling of `flow`: pairs (x₀, Φ(x₀)) with Φ integrated from t = 0 to 1 by
    /// `opts`, computed on `device` in `dtype` in blocks of 4,096 rows.
    pub fn reflow(
        flow: &dyn VectorField,
        source: Points,
        opts: &OdeOptions,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        const BLOCK: usize = 4096;
        let mut target = Vec::with_capacity(source.len() * source.dim());
        let mut start = 0;
        while start < source.len() {
            let end = (start + BLOCK).min(source.len());
            let x0 = source.slice(start, end).to_tensor(device, dtype);
            let x1 = odeint(flow, x0, 0.0, 1.0, opts)?.x;
            target.extend(Points::from_tensor(&x1).into_vec());
            start = end;
        }
        let target = Points::new(target, source.dim())?;
        Self::new(source, target)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// Always false (a pair set is never empty).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The source points x₀.
    pub fn source(&self) -> &Points {
        &self.source
    }

    /// The target points x₁.
    pub fn target(&self) -> &Points {
        &self.target
    }

    /// n pairs drawn uniformly with replacement: (sources, targets), row k of each from the same
    /// pair.
    pub fn batch(&self, n: usize, rng: &mut Rng) -> (Points, Points) {
        let d = self.source.dim();
        let (mut s, mut t) = (Vec::with_capacity(n * d), Vec::with_capacity(n * d));
        for _ in 0..n {
            let i = rng.random_range(0..self.len());
            s.extend_from_slice(self.source.row(i));
            t.extend_from_slice(self.target.row(i));
        }
        (
            Points::new(s, d).expect("rows of dimension d"),
            Points::new(t, d).expect("rows of dimension d"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solve::Method;
    use crate::tensor::{cpu, rng, Tensor};

    /// v(x, t) = a − x₀-independent constant drift: Φ(x) = x + a exactly, for any solver.
    struct Drift(Vec<f64>);
    impl VectorField for Drift {
        fn eval(&self, x: &Tensor<2>, _t: &Tensor<1>) -> Tensor<2> {
            let n = x.dims()[0];
            let data = (0..n).flat_map(|_| self.0.iter().copied()).collect();
            crate::tensor::matrix_like(data, n, self.0.len(), x)
        }
        fn dim(&self) -> usize {
            self.0.len()
        }
    }

    #[test]
    fn reflow_pairs_follow_the_flow_and_batches_keep_pairs() {
        let src = Points::new((0..5000 * 2).map(|i| i as f64 * 1e-3).collect(), 2).unwrap();
        let set = PairSet::reflow(
            &Drift(vec![1.0, -2.0]),
            src.clone(),
            &OdeOptions::fixed(Method::Euler, 3),
            &cpu(),
            DType::F64,
        )
        .unwrap();
        assert_eq!(set.len(), 5000);
        for (a, b) in set.source().rows().zip(set.target().rows()) {
            assert!((b[0] - a[0] - 1.0).abs() < 1e-12 && (b[1] - a[1] + 2.0).abs() < 1e-12);
        }
        let (s, t) = set.batch(100, &mut rng(3));
        for (a, b) in s.rows().zip(t.rows()) {
            assert!((b[0] - a[0] - 1.0).abs() < 1e-12);
        }
        assert!(PairSet::new(src.slice(0, 3), src.slice(0, 2)).is_err());
    }
}
