//! Training objectives. Most are weighted regressions of the network output onto a target
//! (flow matching, denoising score matching): they produce a [`RegressionBatch`], which any
//! training engine can minimise. Others (Hyvärinen, sliced score matching, the time-dependent
//! classifier's cross-entropy) override [`Objective::loss`] / [`Objective::labelled_loss`].
//!
//! **Class-conditional training** (for classifier-free guidance, Ho & Salimans 2022): with
//! labelled data a regression batch's condition is the labels, each replaced by the null label
//! with probability p = [`Objective::label_dropout`] (one uniform draw per row from the
//! objective's noise stream, after its own draws), so one network learns both v(x, t | y) and
//! v(x, t | ∅).

pub mod cfm;
pub mod classifier;
pub mod dsm;
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

/// The condition of a labelled batch: each label kept, or with probability p replaced by the
/// null label (one U(0, 1) draw per row from `rng`, none when p = 0).
pub fn drop_labels(labels: &[usize], p: f64, rng: &mut Rng) -> Condition {
    if p <= 0.0 {
        return Condition::labels(labels.iter().copied());
    }
    Condition::Labels(
        labels
            .iter()
            .map(|&y| (rng.random::<f64>() >= p).then_some(y))
            .collect(),
    )
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

    /// The regression batch of labelled data: [`Objective::regression`] (same draws), its
    /// condition the labels after dropout ([`drop_labels`] with [`Objective::label_dropout`]).
    fn labelled_regression(
        &self,
        data: &Tensor<2>,
        labels: Option<&[usize]>,
        rng: &mut Rng,
    ) -> Option<RegressionBatch> {
        let mut batch = self.regression(data, rng)?;
        if let Some(l) = labels {
            batch.condition = drop_labels(l, self.label_dropout(), rng);
        }
        Some(batch)
    }

    /// The loss of labelled data: the [`Objective::labelled_regression`]'s for a regression,
    /// else [`Objective::loss`] (which ignores labels) unless overridden.
    fn labelled_loss(
        &self,
        model: &dyn Network,
        data: &Tensor<2>,
        labels: Option<&[usize]>,
        rng: &mut Rng,
    ) -> Tensor<1> {
        match self.labelled_regression(data, labels, rng) {
            Some(batch) => batch.loss(model),
            None => self.loss(model, data, rng),
        }
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
        let cfm = FlowMatching::new(GaussianPath::new(CondOt))
            .with_label_dropout(0.3)
            .unwrap();
        let plain = cfm.regression(&data, &mut rng(2)).unwrap();
        let b = cfm
            .labelled_regression(&data, Some(&labels), &mut rng(2))
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
        let b = keep
            .labelled_regression(&data, Some(&labels), &mut r1)
            .unwrap();
        keep.regression(&data, &mut r2).unwrap();
        assert_eq!(r1.get_word_pos(), r2.get_word_pos());
        assert_eq!(b.condition, Condition::labels(labels.iter().copied()));
        assert!(cfm.with_label_dropout(1.5).is_err());
    }
}
