//! Conditional flow matching (Lipman et al. 2023): x₁ ~ data, x₀ ~ source, t ~ U(0, 1),
//! x_t = α x₁ + σ x₀, loss ‖v_θ(x_t, t) − (α̇ x₁ + σ̇ x₀)‖². Independent coupling; the source is
//! N(0, I) or any sampler of source points.

use super::{Objective, RegressionBatch};
use crate::path::{GaussianPath, Scheduler};
use crate::tensor::{randn_like, uniform, Rng, Tensor};

/// Draws `n` source points shaped like the data batch (same device and dtype).
pub trait SourceSampler {
    /// `like.dims()[0]` source points x₀.
    fn sample_like(&self, like: &Tensor<2>, rng: &mut Rng) -> Tensor<2>;
}

/// The standard normal source N(0, I).
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardNormal;

impl SourceSampler for StandardNormal {
    fn sample_like(&self, like: &Tensor<2>, rng: &mut Rng) -> Tensor<2> {
        randn_like(like, rng)
    }
}

/// Conditional flow matching on a Gaussian path with a source sampler.
#[derive(Debug, Clone, Default)]
pub struct FlowMatching<S, Q = StandardNormal> {
    /// The probability path.
    pub path: GaussianPath<S>,
    /// The source distribution.
    pub source: Q,
}

impl<S: Scheduler> FlowMatching<S, StandardNormal> {
    /// CFM on `path` from N(0, I).
    pub fn new(path: GaussianPath<S>) -> Self {
        Self {
            path,
            source: StandardNormal,
        }
    }
}

impl<S: Scheduler, Q: SourceSampler> Objective for FlowMatching<S, Q> {
    fn name(&self) -> &'static str {
        "cfm"
    }
    /// Draw order (fixed, for reproducibility): x₀ then t.
    fn regression(&self, data: &Tensor<2>, rng: &mut Rng) -> Option<RegressionBatch> {
        let n = data.dims()[0];
        let x0 = self.source.sample_like(data, rng);
        let t = uniform(n, 0.0, 1.0, &data.device(), data.dtype(), rng);
        let s = self.path.sample(x0, data.clone(), t);
        Some(RegressionBatch {
            x: s.x_t,
            t: s.t,
            target: s.dx_t,
            weight: None,
            condition: Default::default(),
        })
    }
}
