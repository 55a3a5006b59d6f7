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
#[derive(Debug, Clone)]
pub struct FlowMatching<S, Q = StandardNormal> {
    /// The probability path.
    pub path: GaussianPath<S>,
    /// The source distribution.
    pub source: Q,
    /// Label dropout p of class-conditional training (see [`super`]); used only with labels.
    pub label_dropout: f64,
}

impl<S: Scheduler> FlowMatching<S, StandardNormal> {
    /// CFM on `path` from N(0, I), label dropout 0.1.
    pub fn new(path: GaussianPath<S>) -> Self {
        Self {
            path,
            source: StandardNormal,
            label_dropout: super::DEFAULT_LABEL_DROPOUT,
        }
    }
}

impl<S, Q> FlowMatching<S, Q> {
    /// The same objective with label dropout p ∈ [0, 1].
    pub fn with_label_dropout(mut self, p: f64) -> crate::error::Result<Self> {
        self.label_dropout = super::check_label_dropout(p)?;
        Ok(self)
    }
}

impl<S: Scheduler, Q: SourceSampler> Objective for FlowMatching<S, Q> {
    fn name(&self) -> &'static str {
        "cfm"
    }
    fn label_dropout(&self) -> f64 {
        self.label_dropout
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
