//! The time-dependent classifier p_φ(y | x_t, t) of classifier guidance (Song et al. 2021,
//! §I.4; Dhariwal & Nichol 2021): a network with K logits f_φ(x_t, c(t)) trained by
//! cross-entropy on *noised* inputs x_t = m(t)·x + s(t)·z from the same kernel (SDE marginal or
//! flow path) as the generative model:
//!
//!   L(φ) = −E_{t, (x, y), z} log softmax(f_φ(x_t, c(t)))_y,
//!
//! t ~ U(t_lo, t_hi) and c(t) the network's time input (the score model's [`NoiseInput`]).
//! Its minimiser is the exact p(y | x_t) of the noised data at every t; guidance then adds
//! ∇ₓ log p_φ(y | x_t, t) = Jᵀ(e_y − softmax f) (one backward pass) to the score.
//!
//! Not a regression: it overrides [`Objective::loss_batch`], so the burn engine trains it
//! (the network is an MLP with `outputs = K`, `MlpConfig::with_outputs`).

use burn::tensor::activation::log_softmax;

use super::{Minibatch, Objective};
use crate::error::{Error, Result};
use crate::field::convert::{per_row, NoiseInput};
use crate::field::network::{Condition, Network};
use crate::path::PerturbationKernel;
use crate::tensor::{matrix_like, randn_like, to_vec, uniform, Rng, Tensor};

/// Cross-entropy training of a time-dependent classifier under a perturbation kernel (see the
/// module documentation).
#[derive(Debug, Clone)]
pub struct Classifier<K> {
    /// The kernel (m(t), s(t)) the generative model is trained on, in its time.
    pub kernel: K,
    /// Times are drawn from U(t_lo, t_hi) (an SDE's [ε, T]; a flow's [0, 1]).
    pub t_range: (f64, f64),
    /// The classifier's time input c(t).
    pub input: NoiseInput,
}

impl<K: PerturbationKernel> Classifier<K> {
    /// A classifier on `kernel` with t ~ U(t_lo, t_hi) and time input `input`; errors unless
    /// t_lo < t_hi are finite.
    pub fn new(kernel: K, t_range: (f64, f64), input: NoiseInput) -> Result<Self> {
        let (lo, hi) = t_range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(Error::InvalidInput(format!(
                "classifier times need t_lo < t_hi (got {lo}, {hi})"
            )));
        }
        Ok(Self {
            kernel,
            t_range,
            input,
        })
    }

    /// x_t and the network's time input for a batch (draw order: t, then z).
    fn noised(&self, data: &Tensor<2>, rng: &mut Rng) -> (Tensor<2>, Tensor<1>) {
        let n = data.dims()[0];
        let (lo, hi) = self.t_range;
        let t = uniform(n, lo, hi, &data.device(), data.dtype(), rng);
        let z = randn_like(data, rng);
        let m = per_row(&t, |t| self.kernel.mean_std(t).0);
        let s = per_row(&t, |t| self.kernel.mean_std(t).1);
        (data.clone() * m + z * s, self.input.map(&self.kernel, &t))
    }

    /// −mean_b log softmax(logits_b)_{y_b} as a one-element tensor.
    pub fn cross_entropy(logits: Tensor<2>, labels: &[usize]) -> Tensor<1> {
        let [n, k] = logits.dims();
        let mut onehot = vec![0.0; n * k];
        for (r, &y) in labels.iter().enumerate() {
            onehot[r * k + y] = 1.0;
        }
        let mask = matrix_like(onehot, n, k, &logits);
        (log_softmax(logits, 1) * mask).sum().neg() / n as f64
    }

    /// The fraction of a labelled batch the classifier gets right at noised inputs (the same
    /// draws as a training step): a diagnostic.
    pub fn accuracy(
        &self,
        model: &dyn Network,
        data: &Tensor<2>,
        labels: &[usize],
        rng: &mut Rng,
    ) -> f64 {
        let (x, t) = self.noised(data, rng);
        let logits = to_vec(&model.forward(&x, &t, &Condition::None));
        let k = logits.len() / labels.len().max(1);
        let hits = logits
            .chunks_exact(k)
            .zip(labels)
            .filter(|(row, &y)| {
                let best = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b]));
                best == Some(y)
            })
            .count();
        hits as f64 / labels.len().max(1) as f64
    }
}

impl<K: PerturbationKernel> Objective for Classifier<K> {
    fn name(&self) -> &'static str {
        "classifier"
    }

    fn needs_labels(&self) -> bool {
        true
    }

    /// Cross-entropy is not a regression: the burn engine trains it.
    fn is_regression(&self) -> bool {
        false
    }

    /// # Panics
    /// Always: a classifier needs labels; the engines call [`Objective::loss_batch`], which
    /// reports a missing label set as an error.
    fn loss(&self, _model: &dyn Network, _data: &Tensor<2>, _rng: &mut Rng) -> Tensor<1> {
        panic!("the classifier objective needs labelled data (Objective::loss_batch)")
    }

    /// Cross-entropy of the logits at noised inputs (draws: t, then z); errors for a batch
    /// without one label per row or with source points.
    fn loss_batch(
        &self,
        model: &dyn Network,
        batch: &Minibatch,
        rng: &mut Rng,
    ) -> Result<Tensor<1>> {
        super::refuse_source(self.name(), batch)?;
        let n = batch.target.dims()[0];
        let labels = (0..n)
            .map(|i| batch.condition.label(i))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                Error::InvalidInput(
                    "the classifier objective needs a class label for every training point".into(),
                )
            })?;
        let (x, t) = self.noised(&batch.target, rng);
        Ok(Self::cross_entropy(
            model.forward(&x, &t, &Condition::None),
            &labels,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::field::analytic::LabelledMixture;
    use crate::field::mlp::MlpConfig;
    use crate::sde::VpSde;
    use crate::tensor::{cpu, rng, DType};
    use crate::train::{Control, StepInfo, TrainConfig, Trainer};

    /// The cross-entropy of logits ℓ is −mean log(e^{ℓ_y}/Σ e^ℓ), written out by hand.
    #[test]
    fn cross_entropy_matches_hand_computation() {
        let l = vec![1.0, -0.5, 2.0, 0.3, 0.3, -1.0];
        let logits = matrix_like(
            l.clone(),
            2,
            3,
            &crate::tensor::randn(1, 1, &cpu(), DType::F64, &mut rng(0)),
        );
        let ce = to_vec(&Classifier::<VpSde>::cross_entropy(logits, &[2, 0]))[0];
        let row = |r: &[f64], y: usize| -(r[y] - r.iter().map(|v| v.exp()).sum::<f64>().ln());
        let want = 0.5 * (row(&l[..3], 2) + row(&l[3..], 0));
        assert!((ce - want).abs() < 1e-12, "{ce} vs {want}");
    }

    /// Trained on labelled 8gaussians under the VP SDE (600 steps of an MLP 3→64×2→8 on the burn
    /// engine), the classifier's cross-entropy on 4,000 fresh noised points comes within 0.05
    /// nats of the Bayes floor E[−log p(y | x_t, t)] of the *exact* classifier on the same
    /// points (the labelled mixture's perturbed responsibilities; 1.40 nats here, against
    /// log 8 = 2.08 for a classifier that learned nothing; measured gap 0.014), and cannot beat
    /// it by more than sampling noise (the SE of a mean of 4,000 per-point log-loss
    /// differences, ≈ 0.01).
    #[test]
    fn trained_classifier_approaches_the_exact_one() {
        let sde = VpSde::default();
        let obj = Classifier::new(sde.clone(), (1e-3, 1.0), NoiseInput::Time).unwrap();
        let cfg = TrainConfig::new(600, 256, 3e-3, 5);
        let arch = MlpConfig::new(2, 64, 2).with_outputs(8);
        let model = cfg.init_model(&arch, &cpu(), DType::F32);
        let mut trainer = Trainer::new(&model, cfg).unwrap();
        let mut data = crate::data::DataSource::generator(Dataset::EightGaussians);
        trainer
            .run(&obj, &mut data, &mut |_: &StepInfo| Control::Continue)
            .unwrap();
        let net = trainer.model();
        let (pts, labels) = Dataset::EightGaussians.sample_labelled(4000, &mut rng(77));
        let labels = labels.unwrap();
        let x0 = pts.to_tensor(&cpu(), DType::F64);
        let (xt, t) = obj.noised(&x0, &mut rng(78));
        let learned = to_vec(&Classifier::<VpSde>::cross_entropy(
            net.forward(&xt.clone().cast(DType::F32), &t.clone().cast(DType::F32))
                .cast(DType::F64),
            &labels,
        ))[0];
        let exact = LabelledMixture::for_dataset(Dataset::EightGaussians, sde).unwrap();
        let lp = to_vec(&exact.log_probs(&xt, &t));
        let bayes = -labels
            .iter()
            .enumerate()
            .map(|(i, &y)| lp[i * 8 + y])
            .sum::<f64>()
            / 4000.0;
        assert!(
            learned < bayes + 0.05 && learned > bayes - 0.03,
            "learned CE {learned} vs Bayes floor {bayes}"
        );
    }
}
