//! A coupled minibatch as indices: row k pairs source row `source[k]` with target row
//! `target[k]`. Every coupling returns a [`Pairing`] rather than moved points, so that anything
//! else carried per row — class labels of the targets, weights, ids — follows its row with the
//! same indices ([`Pairing::condition`]), as TorchCFM's `sample_plan_with_labels` does.
//!
//! [`sample_plan`] draws pairs (i, j) ~ π from a plan with replacement (TorchCFM's
//! `OTPlanSampler.sample_map`).

use std::sync::Arc;

use rand::Rng as _;

use crate::data::Points;
use crate::error::{Error, Result};
use crate::field::network::Condition;
use crate::tensor::{Rng, Tensor};

/// Row k of the coupled batch is (x₀[source[k]], x₁[target[k]]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    source: Vec<usize>,
    target: Vec<usize>,
}

impl Pairing {
    /// Index pairs; `Error::Shape` unless both lists have the same length.
    pub fn new(source: Vec<usize>, target: Vec<usize>) -> Result<Self> {
        if source.len() != target.len() {
            return Err(Error::Shape(format!(
                "a pairing needs as many source as target indices ({} vs {})",
                source.len(),
                target.len()
            )));
        }
        Ok(Self { source, target })
    }

    /// (x₀[k], x₁[k]) for k < n: the pairs as given.
    pub fn identity(n: usize) -> Self {
        Self {
            source: (0..n).collect(),
            target: (0..n).collect(),
        }
    }

    /// (x₀[σ(k)], x₁[k]): targets keep their order (so do their labels), sources are permuted.
    pub fn permuted_sources(sigma: Vec<usize>) -> Self {
        let n = sigma.len();
        Self {
            source: sigma,
            target: (0..n).collect(),
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Source row of each pair.
    pub fn source(&self) -> &[usize] {
        &self.source
    }

    /// Target row of each pair.
    pub fn target(&self) -> &[usize] {
        &self.target
    }

    /// True when pair k is (x₀[k], x₁[k]) for every k.
    pub fn is_identity(&self) -> bool {
        self.source.iter().enumerate().all(|(k, &i)| i == k)
            && self.target.iter().enumerate().all(|(k, &j)| j == k)
    }

    /// The source rows in pair order, `(len, d)`.
    pub fn sources(&self, x0: &Tensor<2>) -> Tensor<2> {
        select(x0, &self.source)
    }

    /// The target rows in pair order, `(len, d)`.
    pub fn targets(&self, x1: &Tensor<2>) -> Tensor<2> {
        select(x1, &self.target)
    }

    /// The targets' condition in pair order: per-row labels follow their target rows; a
    /// batch-wide class or no condition is unchanged.
    pub fn condition(&self, c: &Condition) -> Condition {
        match c {
            Condition::Labels(l) => Condition::Labels(
                self.target
                    .iter()
                    .map(|&j| l[j])
                    .collect::<Arc<[Option<usize>]>>(),
            ),
            other => other.clone(),
        }
    }

    /// Host rows in pair order: (x₀[source[k]])ₖ and (x₁[target[k]])ₖ.
    pub fn apply_points(&self, x0: &Points, x1: &Points) -> (Points, Points) {
        let take = |p: &Points, idx: &[usize]| {
            let data = idx.iter().flat_map(|&i| p.row(i).iter().copied()).collect();
            Points::new(data, p.dim()).expect("rows of the same dimension")
        };
        (take(x0, &self.source), take(x1, &self.target))
    }
}

/// Rows `idx` of `x` (no copy when `idx` is 0..n).
fn select(x: &Tensor<2>, idx: &[usize]) -> Tensor<2> {
    if idx.len() == x.dims()[0] && idx.iter().enumerate().all(|(k, &i)| k == i) {
        return x.clone();
    }
    let ints: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    let index = Tensor::<1, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(ints, [idx.len()]),
        &x.device(),
    );
    x.clone().select(0, index)
}

/// `draws` pairs (i, j) drawn independently with probability πᵢⱼ / Σπ from an n × m plan
/// (row-major, non-negative): inverse-CDF sampling on the flattened plan, one uniform per draw.
/// `Error::InvalidInput` for a negative or non-finite entry or a plan of zero mass.
pub fn sample_plan(
    plan: &[f64],
    rows: usize,
    cols: usize,
    draws: usize,
    rng: &mut Rng,
) -> Result<Pairing> {
    if plan.len() != rows * cols {
        return Err(Error::Shape(format!(
            "a {rows} × {cols} plan has {} entries",
            plan.len()
        )));
    }
    let mut cdf = Vec::with_capacity(plan.len());
    let mut total = 0.0;
    for &p in plan {
        if !(p >= 0.0 && p.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "transport plan entry {p} is not a finite non-negative mass"
            )));
        }
        total += p;
        cdf.push(total);
    }
    if total <= 0.0 {
        return Err(Error::InvalidInput("transport plan has zero mass".into()));
    }
    let (mut source, mut target) = (Vec::with_capacity(draws), Vec::with_capacity(draws));
    for _ in 0..draws {
        let u = rng.random::<f64>() * total;
        // First k with cdf[k] > u; skips zero-mass cells, and u < total keeps k in range.
        let k = cdf.partition_point(|&c| c <= u).min(plan.len() - 1);
        source.push(k / cols);
        target.push(k % cols);
    }
    Ok(Pairing { source, target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{cpu, matrix, rng, to_vec, DType};

    /// Pair frequencies match π: each count ~ Binomial(N, πᵢⱼ), within 5 sd; zero cells never
    /// drawn.
    #[test]
    fn sampled_pairs_follow_the_plan() {
        let plan = [0.1, 0.0, 0.2, 0.3, 0.15, 0.25];
        let n = 200_000;
        let p = sample_plan(&plan, 2, 3, n, &mut rng(4)).unwrap();
        let mut counts = [0usize; 6];
        for (&i, &j) in p.source().iter().zip(p.target()) {
            counts[i * 3 + j] += 1;
        }
        for (c, pi) in counts.iter().zip(plan) {
            let sd = (n as f64 * pi * (1.0 - pi)).sqrt();
            assert!((*c as f64 - n as f64 * pi).abs() <= 5.0 * sd, "{counts:?}");
        }
        assert_eq!(counts[1], 0);
        assert!(sample_plan(&[0.0; 4], 2, 2, 1, &mut rng(1)).is_err());
        assert!(sample_plan(&[-0.1, 1.1], 1, 2, 1, &mut rng(1)).is_err());
        assert!(sample_plan(&[1.0], 2, 2, 1, &mut rng(1)).is_err());
    }

    #[test]
    fn rows_and_labels_follow_their_indices() {
        let x = matrix(
            vec![0.0, 0.0, 1.0, 10.0, 2.0, 20.0],
            3,
            2,
            &cpu(),
            DType::F64,
        );
        let p = Pairing::new(vec![2, 0, 0], vec![1, 2, 0]).unwrap();
        assert_eq!(to_vec(&p.sources(&x)), vec![2.0, 20.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(to_vec(&p.targets(&x)), vec![1.0, 10.0, 2.0, 20.0, 0.0, 0.0]);
        let labels = Condition::labels([7, 8, 9]);
        assert_eq!(p.condition(&labels), Condition::labels([8, 9, 7]));
        assert_eq!(p.condition(&Condition::Class(3)), Condition::Class(3));
        let pts = Points::from_tensor(&x);
        let (a, b) = p.apply_points(&pts, &pts);
        assert_eq!(a.as_slice(), &[2.0, 20.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(b.as_slice(), &[1.0, 10.0, 2.0, 20.0, 0.0, 0.0]);
        assert!(Pairing::identity(3).is_identity() && !p.is_identity());
        assert!(Pairing::new(vec![0], vec![]).is_err());
    }
}
