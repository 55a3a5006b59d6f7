//! Training objectives. Most are weighted regressions of the network output onto a target
//! (flow matching, denoising score matching, EDM): they produce a [`RegressionBatch`], which any
//! training engine can minimise. Others (Hyvärinen, sliced score matching, the time-dependent
//! classifier's cross-entropy) override [`Objective::loss`] / [`Objective::loss_batch`].
//!
//! The engines hand an objective a [`Minibatch`]: target points x₁ and, when the data supplies
//! them, source points x₀ paired with them row by row (transport between two data sets, or a
//! reflow pair set) plus the rows' condition. Objectives that draw their own noise (DSM, score
//! matching) only implement the target-only [`Objective::regression`] / [`Objective::loss`];
//! the batch-level [`Objective::regression_batch`] / [`Objective::loss_batch`] forward to them
//! and refuse a paired source. Conditional flow matching overrides the batch level.
//!
//! **Class-conditional training** (for classifier-free guidance, Ho & Salimans 2022): with
//! labelled data a regression batch's condition is the labels, each replaced by the null label
//! with probability p = [`Objective::label_dropout`] (one uniform draw per row from the
//! objective's noise stream, after its own draws), so one network learns both v(x, t | y) and
//! v(x, t | ∅).

pub mod cfm;
pub mod classifier;
pub mod dsm;
pub mod edm;
pub mod sm;

use rand::Rng as _;

use crate::error::{Error, Result};
use crate::field::network::{Condition, Network};
use crate::tensor::{col, Rng, Tensor};

/// The default label-dropout probability of conditional training (Ho & Salimans use 0.1–0.2).
pub const DEFAULT_LABEL_DROPOUT: f64 = 0.1;

/// Errors unless p ∈ [0, 1].
pub fn check_label_dropout(p: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(Error::InvalidInput(format!(
            "label dropout must lie in [0, 1] (got {p})"
        )))
    }
}

/// A labelled batch's condition after label dropout: each per-row label kept, or with
/// probability p replaced by the null label (one U(0, 1) draw per row from `rng`; none when
/// p = 0 or the condition is not per-row labels, which are returned unchanged).
pub fn drop_condition(condition: &Condition, p: f64, rng: &mut Rng) -> Condition {
    match condition {
        Condition::Labels(labels) if p > 0.0 => Condition::Labels(
            labels
                .iter()
                .map(|&y| y.filter(|_| rng.random::<f64>() >= p))
                .collect(),
        ),
        other => other.clone(),
    }
}

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

    /// Probability p that a label is replaced by the null label in conditional training
    /// (0 unless the objective sets one).
    fn label_dropout(&self) -> f64 {
        0.0
    }

    /// True when the objective cannot train without labels (a classifier).
    fn needs_labels(&self) -> bool {
        false
    }

    /// The regression batch for a whole [`Minibatch`] (`Ok(None)`: not a regression).
    /// Default: [`Objective::regression`] on the targets, then the batch's condition after
    /// label dropout ([`drop_condition`] with [`Objective::label_dropout`], drawn after the
    /// regression's own draws); `Error::InvalidInput` when the batch carries source points,
    /// which only objectives that transport a source (flow matching) can use.
    fn regression_batch(
        &self,
        batch: &Minibatch,
        rng: &mut Rng,
    ) -> Result<Option<RegressionBatch>> {
        refuse_source(self.name(), batch)?;
        Ok(self.regression(&batch.target, rng).map(|mut rb| {
            if rb.condition == Condition::None {
                rb.condition = drop_condition(&batch.condition, self.label_dropout(), rng);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::cfm::FlowMatching;
    use crate::path::{CondOt, GaussianPath};
    use crate::tensor::{cpu, randn, rng, to_vec, DType};

    /// Label dropout: the regression part of a labelled batch is the unlabelled batch (same
    /// draws, dropout drawn after), the dropped share of 20,000 labels is p within 4 standard
    /// errors (SE = √(p(1 − p)/n) = 0.0032 at p = 0.3), kept labels are unchanged, and p = 0
    /// draws nothing (the generator is left where the plain batch leaves it).
    #[test]
    fn label_dropout_replaces_labels_with_the_null_label() {
        let n = 20_000;
        let data = randn(n, 2, &cpu(), DType::F64, &mut rng(1));
        let labels: Vec<usize> = (0..n).map(|i| i % 8).collect();
        let labelled = Minibatch {
            target: data.clone(),
            source: None,
            condition: Condition::labels(labels.iter().copied()),
        };
        let cfm = FlowMatching::new(GaussianPath::new(CondOt))
            .with_label_dropout(0.3)
            .unwrap();
        let plain = cfm.regression(&data, &mut rng(2)).unwrap();
        let b = cfm
            .regression_batch(&labelled, &mut rng(2))
            .unwrap()
            .unwrap();
        assert_eq!(to_vec(&plain.x), to_vec(&b.x));
        assert_eq!(to_vec(&plain.target), to_vec(&b.target));
        let dropped = (0..n)
            .filter(|&i| match b.condition.label(i) {
                None => true,
                Some(y) => {
                    assert_eq!(y, labels[i]);
                    false
                }
            })
            .count();
        let share = dropped as f64 / n as f64;
        assert!(
            (share - 0.3).abs() < 4.0 * (0.3 * 0.7 / n as f64).sqrt(),
            "{share}"
        );
        let keep = cfm.clone().with_label_dropout(0.0).unwrap();
        let (mut r1, mut r2) = (rng(3), rng(3));
        let b = keep.regression_batch(&labelled, &mut r1).unwrap().unwrap();
        keep.regression(&data, &mut r2).unwrap();
        assert_eq!(r1.get_word_pos(), r2.get_word_pos());
        assert_eq!(b.condition, Condition::labels(labels.iter().copied()));
        assert!(cfm.with_label_dropout(1.5).is_err());
    }
}
