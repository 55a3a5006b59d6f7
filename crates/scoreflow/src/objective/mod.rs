//! Training objectives. Most are weighted regressions of the network output onto a target
//! (flow matching, denoising score matching, EDM): they produce a [`RegressionBatch`], which any
//! training engine can minimise. Others (Hyvärinen, sliced score matching) override
//! [`Objective::loss`] directly.

pub mod cfm;
pub mod dsm;
pub mod edm;
pub mod sm;

use crate::field::network::{Condition, Network};
use crate::tensor::{col, Rng, Tensor};

/// A weighted regression problem: minimise mean_b w_b · mean_i (v_θ(x_b, t_b)ᵢ − y_bᵢ)².
/// With w ≡ 1 this is PyTorch's `nn.MSELoss()` on the network output.
#[derive(Debug, Clone)]
pub struct RegressionBatch {
    /// Network input points, `(batch, d)`.
    pub x: Tensor<2>,
    /// Network input times, `(batch,)`.
    pub t: Tensor<1>,
    /// Targets, `(batch, d)`.
    pub target: Tensor<2>,
    /// Per-sample weights, `(batch,)`; `None` means 1.
    pub weight: Option<Tensor<1>>,
    /// The network's condition per row (class labels), or [`Condition::None`].
    pub condition: Condition,
}

impl RegressionBatch {
    /// The loss mean_b w_b · mean_i (v_θ − y)² as a one-element tensor.
    pub fn loss(&self, model: &dyn Network) -> Tensor<1> {
        let sq =
            (model.forward(&self.x, &self.t, &self.condition) - self.target.clone()).powi_scalar(2);
        match &self.weight {
            None => sq.mean(),
            Some(w) => (sq * col(w)).mean(),
        }
    }
}

/// A training objective for a [`Network`] (evaluated on the training device, with autodiff).
pub trait Objective {
    /// Short name ("cfm", "dsm", "sm", "ssm", …).
    fn name(&self) -> &'static str;

    /// The regression batch for a minibatch `data` of data points (all noise from `rng`), or
    /// `None` when the objective is not a plain regression.
    fn regression(&self, data: &Tensor<2>, rng: &mut Rng) -> Option<RegressionBatch> {
        let _ = (data, rng);
        None
    }

    /// Scalar loss of `model` on the minibatch `data`, drawing all noise from `rng`. Tensors are
    /// created on `data`'s device, which must be the model's (autodiff while training).
    fn loss(&self, model: &dyn Network, data: &Tensor<2>, rng: &mut Rng) -> Tensor<1> {
        self.regression(data, rng)
            .expect("an Objective must implement `regression` or override `loss`")
            .loss(model)
    }
}
