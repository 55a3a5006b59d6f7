//! Training objectives. Most are weighted regressions of the network output onto a target
//! (flow matching, denoising score matching, EDM): they produce a [`RegressionBatch`], which any
//! training engine can minimise. Others (Hyvärinen, sliced score matching) override
//! [`Objective::loss`] directly.
//!
//! The engines hand an objective a [`Minibatch`]: target points x₁ and, when the data supplies
//! them, source points x₀ paired with them row by row (transport between two data sets, or a
//! reflow pair set) plus the rows' condition. Objectives that draw their own noise (DSM, score
//! matching) only implement the target-only [`Objective::regression`] / [`Objective::loss`];
//! the batch-level [`Objective::regression_batch`] / [`Objective::loss_batch`] forward to them
//! and refuse a paired source. Conditional flow matching overrides the batch level.

pub mod cfm;
pub mod dsm;
pub mod edm;
pub mod sm;

use crate::error::{Error, Result};
use crate::field::network::{Condition, Network};
use crate::tensor::{col, Rng, Tensor};

/// A training minibatch on the device: target points x₁ `(n, d)`, optionally the source points
/// x₀ `(n, d)` that the data pairs with them (row k with row k), and the rows' condition.
#[derive(Debug, Clone)]
pub struct Minibatch {
    /// Target (data) points x₁.
    pub target: Tensor<2>,
    /// Source points x₀ supplied with the data, or `None` when the objective draws its own.
    pub source: Option<Tensor<2>>,
    /// The condition of each row (class labels), or [`Condition::None`].
    pub condition: Condition,
}

impl From<Tensor<2>> for Minibatch {
    /// Target points only, no condition.
    fn from(target: Tensor<2>) -> Self {
        Self {
            target,
            source: None,
            condition: Condition::None,
        }
    }
}

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

    /// True when the objective is a [`RegressionBatch`] (so the fused engine can train it);
    /// objectives that override [`Objective::loss`] instead return false.
    fn is_regression(&self) -> bool {
        true
    }

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

    /// The regression batch for a whole [`Minibatch`] (`Ok(None)`: not a regression).
    /// Default: [`Objective::regression`] on the targets, with the batch's condition attached;
    /// `Error::InvalidInput` when the batch carries source points, which only objectives that
    /// transport a source (flow matching) can use.
    fn regression_batch(
        &self,
        batch: &Minibatch,
        rng: &mut Rng,
    ) -> Result<Option<RegressionBatch>> {
        refuse_source(self.name(), batch)?;
        Ok(self.regression(&batch.target, rng).map(|mut rb| {
            if rb.condition == Condition::None {
                rb.condition = batch.condition.clone();
            }
            rb
        }))
    }

    /// Scalar loss of `model` on a whole [`Minibatch`]: the loss of
    /// [`Objective::regression_batch`] when there is one, else [`Objective::loss`] on the
    /// targets (same errors).
    fn loss_batch(
        &self,
        model: &dyn Network,
        batch: &Minibatch,
        rng: &mut Rng,
    ) -> Result<Tensor<1>> {
        match self.regression_batch(batch, rng)? {
            Some(rb) => Ok(rb.loss(model)),
            None => Ok(self.loss(model, &batch.target, rng)),
        }
    }
}

/// `Error::InvalidInput` when `batch` carries source points that objective `name` cannot use.
fn refuse_source(name: &str, batch: &Minibatch) -> Result<()> {
    match batch.source {
        Some(_) => Err(Error::InvalidInput(format!(
            "the {name} objective draws its own noise and cannot train on given source points (use flow matching)"
        ))),
        None => Ok(()),
    }
}
