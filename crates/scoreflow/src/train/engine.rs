//! The seam between the training loop and whatever computes a step: a [`StepEngine`] takes a
//! minibatch, does one optimiser step and reports (loss, gradient norm); it exposes its raw and
//! EMA weights as [`Mlp`]s and its full state as a [`StateDict`].
//!
//! [`BurnEngine`] is the reference: burn autodiff for the gradient and burn's own `Adam`/`AdamW`
//! (`burn::optim`) for the update, applied per parameter so that the moments stay in our hands
//! (checkpointed by layer name, in the training dtype, for an exact resume). Another engine (a
//! fused CPU kernel for [`RegressionBatch`](crate::objective::RegressionBatch) objectives) plugs
//! in by implementing the same trait and must reproduce this one.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, Optimizer,
};
use serde::{Deserialize, Serialize};

use crate::data::Points;
use crate::error::{Error, Result};
use crate::field::mlp::{linear_from, Mlp, MlpConfig};
use crate::field::network::Condition;
use crate::objective::{Minibatch, Objective};
use crate::state::{HostTensor, StateDict, StoredDType};
use crate::tensor::{matrix, to_vec, vector, DType, Device, Rng, Tensor};

/// Which Adam variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba) with optional L2 penalty λθ added to the gradient (PyTorch `Adam`).
    #[default]
    Adam,
    /// AdamW (Loshchilov & Hutter): decoupled decay θ ← θ(1 − lr·λ) − lr·m̂/(√v̂ + ε).
    #[cfg_attr(feature = "clap", value(name = "adamw"))]
    AdamW,
}

/// Optimiser hyper-parameters: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr·m̂/(√v̂ + ε)
/// with m̂ = m/(1−β₁ⁿ), v̂ = v/(1−β₂ⁿ); gradients are first clipped to global L2 norm ≤ c.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Adam or AdamW.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Base (peak) learning rate lr₀; the schedule scales it.
    pub lr: f64,
    /// β₁.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// β₂.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// ε (1e-8 as in PyTorch; burn's own default is 1e-5).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// λ: L2 penalty (Adam) or decoupled decay (AdamW).
    #[serde(default)]
    pub weight_decay: f64,
    /// Clip the gradient to global L2 norm ≤ c first (PyTorch `clip_grad_norm_`); `None` = off.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

impl OptimizerConfig {
    /// Adam(lr) with PyTorch's defaults β = (0.9, 0.999), ε = 1e-8, no decay, no clipping.
    pub fn adam(lr: f64) -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
            clip_grad_norm: None,
        }
    }

    /// AdamW(lr, λ) with PyTorch's defaults otherwise.
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        Self {
            kind: OptimizerKind::AdamW,
            weight_decay,
            ..Self::adam(lr)
        }
    }

    /// Checks every value's domain.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("optimiser: {m}")));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "learning rate {} must be positive and finite",
                self.lr
            ));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("{name} = {b} is outside [0, 1)"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(format!("eps {} must be positive", self.eps));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("weight decay {} must be ≥ 0", self.weight_decay));
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return bad(format!("gradient clipping norm {c} must be positive"));
            }
        }
        Ok(())
    }
}

/// Exponential moving average of the weights: θ̄ ← β θ̄ + (1 − β) θ after every step, θ̄₀ = θ₀;
/// with `warmup`, β_n = min(β, (1 + n)/(10 + n)) for the n-th update (as in TF's
/// `ExponentialMovingAverage` with `num_updates`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmaConfig {
    /// β ∈ [0, 1), e.g. 0.999.
    pub decay: f64,
    /// Use β_n = min(β, (1 + n)/(10 + n)).
    #[serde(default)]
    pub warmup: bool,
}

impl EmaConfig {
    /// Plain EMA with decay β.
    pub fn new(decay: f64) -> Self {
        Self {
            decay,
            warmup: false,
        }
    }

    /// β_n for the n-th update (n = 0, 1, …).
    pub fn decay_at(&self, n: usize) -> f64 {
        if self.warmup {
            self.decay.min((1.0 + n as f64) / (10.0 + n as f64))
        } else {
            self.decay
        }
    }

    /// Checks β ∈ [0, 1).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.decay) {
            return Err(Error::InvalidInput(format!(
                "EMA decay {} is outside [0, 1)",
                self.decay
            )));
        }
        Ok(())
    }
}

/// What one optimiser step reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The minibatch loss before the update.
    pub loss: f64,
    /// Global L2 norm of the gradient before clipping, √(Σ_p ‖∂L/∂p‖²).
    pub grad_norm: f64,
}

/// A training minibatch on the host: n target points, when the data supplies them n source
/// points paired with them row by row (see [`crate::objective::Minibatch`]), and the targets'
/// class labels (a labelled data set; a coupling re-pairs sources, labels stay with their
/// targets).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Target (data) points x₁.
    pub target: Points,
    /// Source points x₀, or `None` when the objective draws its own.
    pub source: Option<Points>,
    /// The class label of each target row, or `None` for unlabelled data.
    pub labels: Option<Vec<usize>>,
}

impl From<Points> for Batch {
    /// Target points only.
    fn from(target: Points) -> Self {
        Self {
            target,
            source: None,
            labels: None,
        }
    }
}

impl Batch {
    /// The device minibatch; its condition is the labels ([`Condition::None`] without).
    pub fn to_minibatch(&self, device: &Device, dtype: DType) -> Minibatch {
        Minibatch {
            target: self.target.to_tensor(device, dtype),
            source: self.source.as_ref().map(|s| s.to_tensor(device, dtype)),
            condition: self
                .labels
                .as_ref()
                .map_or(Condition::None, |l| Condition::labels(l.iter().copied())),
        }
    }

    /// `Error::Shape` unless the points have dimension `dim` (a source also as many rows as
    /// the target, labels one per target), `Error::InvalidInput` for an empty batch.
    pub fn check(&self, dim: usize) -> Result<()> {
        if self.target.is_empty() {
            return Err(Error::InvalidInput("empty minibatch".into()));
        }
        if self.target.dim() != dim {
            return Err(Error::Shape(format!(
                "minibatch has dimension {}, the model {dim}",
                self.target.dim()
            )));
        }
        if let Some(s) = &self.source {
            if s.dim() != dim || s.len() != self.target.len() {
                return Err(Error::Shape(format!(
                    "source minibatch has {} points of dimension {}, the targets {} of dimension {dim}",
                    s.len(),
                    s.dim(),
                    self.target.len()
                )));
            }
        }
        if let Some(l) = &self.labels {
            if l.len() != self.target.len() {
                return Err(Error::Shape(format!(
                    "{} labels for a minibatch of {} points",
                    l.len(),
                    self.target.len()
                )));
            }
        }
        Ok(())
    }
}

/// One optimiser step at a time, behind which the computation can change.
///
/// Contract: [`StepEngine::step`] leaves weights, optimiser state and EMA unchanged when the
/// loss or the gradient norm is not finite, and either returns them in [`StepStats`] or
/// returns [`Error::Diverged`] (the loop stops in both cases, stamping its own step number);
/// all randomness comes from the `rng` it is given. Engines are `Send`, so a `Trainer`
/// can run on a worker thread.
pub trait StepEngine: Send {
    /// Short name recorded in checkpoints ("burn", …).
    fn name(&self) -> &'static str;
    /// The architecture.
    fn config(&self) -> &MlpConfig;
    /// The training dtype.
    fn dtype(&self) -> DType;
    /// One step on the minibatch `batch` (with its class labels for a conditional network or
    /// a classifier) at learning rate `lr`: loss (via
    /// [`Objective::loss_batch`], noise from `rng`), gradient, clipping, optimiser, EMA.
    fn step(
        &mut self,
        objective: &dyn Objective,
        batch: &Batch,
        rng: &mut Rng,
        lr: f64,
    ) -> Result<StepStats>;
    /// The current (raw) weights as an [`Mlp`] without autodiff.
    fn model(&self) -> Mlp;
    /// The EMA weights, when EMA is on.
    fn ema_model(&self) -> Option<Mlp>;
    /// Everything needed to continue exactly: `model.*` (raw weights), `ema.*`, optimiser
    /// moments `adam.{name}.exp_avg` / `.exp_avg_sq` (PyTorch's names and layout) and
    /// metadata `adam.step`, `ema.updates`.
    fn state_dict(&self) -> StateDict;
    /// Restores what [`StepEngine::state_dict`] wrote.
    fn load_state_dict(&mut self, state: &StateDict) -> Result<()>;
}

/// burn's Adam or AdamW, applied per tensor.
#[derive(Clone)]
enum AdamVariant {
    Adam(Adam),
    AdamW(AdamW),
}

impl AdamVariant {
    fn new(c: &OptimizerConfig) -> Self {
        match c.kind {
            OptimizerKind::Adam => {
                let decay =
                    (c.weight_decay > 0.0).then(|| WeightDecayConfig::new(c.weight_decay as f32));
                AdamVariant::Adam(
                    AdamConfig::new()
                        .with_beta_1(c.beta1 as f32)
                        .with_beta_2(c.beta2 as f32)
                        .with_epsilon(c.eps as f32)
                        .with_weight_decay(decay)
                        .build(),
                )
            }
            OptimizerKind::AdamW => AdamVariant::AdamW(
                AdamWConfig::new()
                    .with_beta_1(c.beta1 as f32)
                    .with_beta_2(c.beta2 as f32)
                    .with_epsilon(c.eps as f32)
                    .with_weight_decay(c.weight_decay as f32)
                    .build(),
            ),
        }
    }

    /// One update of parameter `p` (plain tensor) with gradient `g`.
    fn step<const D: usize>(
        &self,
        lr: f64,
        p: Tensor<D>,
        g: Tensor<D>,
        m: Option<AdaptiveMomentumState<D>>,
    ) -> (Tensor<D>, AdaptiveMomentumState<D>) {
        match self {
            AdamVariant::Adam(o) => {
                let (p, s) = o.step(lr, p, g, m.map(AdamState::new));
                (p, s.expect("Adam returns a state").momentum)
            }
            AdamVariant::AdamW(o) => {
                let (p, s) = o.step(lr, p, g, m.map(AdamWState::new));
                (p, s.expect("AdamW returns a state").momentum)
            }
        }
    }
}

/// Adam moments of one layer.
#[derive(Clone, Default)]
struct LayerMoments {
    weight: Option<AdaptiveMomentumState<2>>,
    bias: Option<AdaptiveMomentumState<1>>,
}

/// EMA weights and the number of updates folded in.
#[derive(Clone)]
struct EmaState {
    config: EmaConfig,
    model: Mlp,
    updates: usize,
}

/// The reference engine: burn autodiff + burn `Adam`/`AdamW`.
#[derive(Clone)]
pub struct BurnEngine {
    /// Weights on the autodiff device.
    model: Mlp,
    device: Device,
    dtype: DType,
    optim: AdamVariant,
    clip: Option<f64>,
    moments: Vec<LayerMoments>,
    ema: Option<EmaState>,
}

/// Layer k's (weight, bias) as plain tensors.
fn layer_params(m: &Mlp, k: usize) -> (Tensor<2>, Tensor<1>) {
    let l = &m.layers[k];
    (
        l.weight.val().inner(),
        l.bias
            .as_ref()
            .expect("Mlp layers have a bias")
            .val()
            .inner(),
    )
}

/// A copy of `m` whose parameters live on `device` (autodiff or plain) and require gradients.
fn rebuild(m: &Mlp, device: &Device) -> Mlp {
    let layers = (0..m.layers.len())
        .map(|k| {
            let (w, b) = layer_params(m, k);
            let (w, b) = if device.is_autodiff() {
                (w.autodiff(), b.autodiff())
            } else {
                (w, b)
            };
            linear_from(w, b)
        })
        .collect();
    Mlp {
        layers,
        config: m.config.clone(),
    }
}

impl BurnEngine {
    /// An engine training `model` (any device; its dtype is the training dtype) with the given
    /// optimiser and optional EMA. Gradients are taken on `model`'s device with autodiff.
    pub fn new(model: &Mlp, optimizer: &OptimizerConfig, ema: Option<EmaConfig>) -> Result<Self> {
        optimizer.validate()?;
        if let Some(e) = &ema {
            e.validate()?;
        }
        let (w0, _) = layer_params(model, 0);
        let base = w0.device().inner();
        let device = base.clone().autodiff();
        let dtype = w0.dtype();
        Ok(Self {
            model: rebuild(model, &device),
            device,
            dtype,
            optim: AdamVariant::new(optimizer),
            clip: optimizer.clip_grad_norm,
            moments: vec![LayerMoments::default(); model.layers.len()],
            ema: ema.map(|config| EmaState {
                config,
                model: rebuild(model, &base),
                updates: 0,
            }),
        })
    }

    /// An engine restored from a [`StepEngine::state_dict`] image on `device`, in the dtype the
    /// raw weights were stored in.
    pub fn from_state_dict(
        config: &MlpConfig,
        state: &StateDict,
        device: &Device,
        optimizer: &OptimizerConfig,
        ema: Option<EmaConfig>,
    ) -> Result<Self> {
        let dtype = state.get("model.0.weight")?.dtype.dtype();
        let model = Mlp::from_state(state, "model.", config, device, dtype)?;
        let mut engine = Self::new(&model, optimizer, ema)?;
        engine.load_state_dict(state)?;
        Ok(engine)
    }

    /// Number of optimiser updates applied so far (Adam's n).
    pub fn adam_step(&self) -> usize {
        self.moments
            .first()
            .and_then(|m| m.weight.as_ref())
            .map_or(0, |m| m.time)
    }
}

/// Σ g² of a tensor as a one-element tensor.
fn sum_sq<const D: usize>(g: &Tensor<D>) -> Tensor<1> {
    g.clone().square().sum()
}

impl StepEngine for BurnEngine {
    fn name(&self) -> &'static str {
        "burn"
    }

    fn config(&self) -> &MlpConfig {
        &self.model.config
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn step(
        &mut self,
        objective: &dyn Objective,
        batch: &Batch,
        rng: &mut Rng,
        lr: f64,
    ) -> Result<StepStats> {
        batch.check(self.model.config.dim)?;
        let mb = batch.to_minibatch(&self.device, self.dtype);
        let loss_t = objective.loss_batch(&self.model, &mb, rng)?;
        let loss = to_vec(&loss_t).first().copied().unwrap_or(f64::NAN);
        if !loss.is_finite() {
            return Ok(StepStats {
                loss,
                grad_norm: f64::NAN,
            });
        }
        let mut grads = loss_t.backward();
        let n_layers = self.model.layers.len();
        let mut gw = Vec::with_capacity(n_layers);
        let mut gb = Vec::with_capacity(n_layers);
        let mut total: Option<Tensor<1>> = None;
        for (k, layer) in self.model.layers.iter().enumerate() {
            let missing = || {
                Error::InvalidInput(format!(
                    "the {} loss does not depend on layer {k}",
                    objective.name()
                ))
            };
            // `grad_remove` hands over the only reference, so updates can run in place.
            let w = layer
                .weight
                .val()
                .grad_remove(&mut grads)
                .ok_or_else(missing)?;
            let b = layer
                .bias
                .as_ref()
                .and_then(|b| b.val().grad_remove(&mut grads))
                .ok_or_else(missing)?;
            let s = sum_sq(&w) + sum_sq(&b);
            total = Some(match total {
                None => s,
                Some(t) => t + s,
            });
            gw.push(w);
            gb.push(b);
        }
        drop(grads);
        let grad_norm = total.map_or(0.0, |t| to_vec(&t)[0].sqrt());
        if !grad_norm.is_finite() {
            return Ok(StepStats { loss, grad_norm });
        }
        // PyTorch clip_grad_norm_: g ← g·min(1, c/(‖g‖ + 1e-6)).
        let scale = self.clip.map_or(1.0, |c| (c / (grad_norm + 1e-6)).min(1.0));
        // Consume the parameters (and EMA copies) so each tensor has a single owner.
        let old = std::mem::take(&mut self.model.layers);
        let mut ema_old = self
            .ema
            .as_mut()
            .map(|e| std::mem::take(&mut e.model.layers).into_iter());
        let mut layers = Vec::with_capacity(n_layers);
        let mut ema_layers = Vec::new();
        let beta = self
            .ema
            .as_ref()
            .map_or(0.0, |e| e.config.decay_at(e.updates));
        for (k, ((g_w, g_b), layer)) in gw.into_iter().zip(gb).zip(old).enumerate() {
            let (g_w, g_b) = if scale < 1.0 {
                (g_w.mul_scalar(scale), g_b.mul_scalar(scale))
            } else {
                (g_w, g_b)
            };
            let w = layer.weight.into_value().inner();
            let b = layer
                .bias
                .expect("Mlp layers have a bias")
                .into_value()
                .inner();
            let m = &mut self.moments[k];
            let (w, mw) = self.optim.step(lr, w, g_w, m.weight.take());
            let (b, mb) = self.optim.step(lr, b, g_b, m.bias.take());
            m.weight = Some(mw);
            m.bias = Some(mb);
            if let Some(e) = ema_old.as_mut().and_then(|it| it.next()) {
                let ew = e.weight.into_value().mul_scalar(beta) + w.clone().mul_scalar(1.0 - beta);
                let eb = e.bias.expect("bias").into_value().mul_scalar(beta)
                    + b.clone().mul_scalar(1.0 - beta);
                ema_layers.push(linear_from(ew, eb));
            }
            layers.push(linear_from(w.autodiff(), b.autodiff()));
        }
        self.model.layers = layers;
        if let Some(e) = &mut self.ema {
            e.model.layers = ema_layers;
            e.updates += 1;
        }
        Ok(StepStats { loss, grad_norm })
    }

    fn model(&self) -> Mlp {
        rebuild(&self.model, &self.device.clone().inner())
    }

    fn ema_model(&self) -> Option<Mlp> {
        self.ema.as_ref().map(|e| e.model.clone())
    }

    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        self.model.write_state(&mut sd, "model.", None);
        if let Some(ema) = &self.ema {
            ema.model.write_state(&mut sd, "ema.", None);
            sd.metadata
                .insert("ema.updates".into(), ema.updates.to_string());
        }
        sd.metadata.insert("engine".into(), self.name().into());
        sd.metadata
            .insert("adam.step".into(), self.adam_step().to_string());
        for (k, m) in self.moments.iter().enumerate() {
            if let (Some(w), Some(b)) = (&m.weight, &m.bias) {
                let p = format!("adam.{}", 2 * k);
                sd.insert(
                    format!("{p}.weight.exp_avg"),
                    HostTensor::from_tensor(&w.moment_1).transposed(),
                );
                sd.insert(
                    format!("{p}.weight.exp_avg_sq"),
                    HostTensor::from_tensor(&w.moment_2).transposed(),
                );
                sd.insert(
                    format!("{p}.bias.exp_avg"),
                    HostTensor::from_tensor(&b.moment_1),
                );
                sd.insert(
                    format!("{p}.bias.exp_avg_sq"),
                    HostTensor::from_tensor(&b.moment_2),
                );
            }
        }
        sd
    }

    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        let config = self.model.config.clone();
        let base = self.device.clone().inner();
        let stored = state.get("model.0.weight")?.dtype;
        if stored != StoredDType::of(self.dtype) {
            return Err(state.error(format!(
                "raw weights are stored as {stored:?} but this engine trains in {:?}",
                self.dtype
            )));
        }
        let model = Mlp::from_state(state, "model.", &config, &self.device, self.dtype)?;
        let parse = |key: &str| -> Result<usize> {
            match state.metadata.get(key) {
                None => Ok(0),
                Some(v) => v
                    .parse()
                    .map_err(|_| state.error(format!("metadata '{key}' = '{v}' is not a count"))),
            }
        };
        let time = parse("adam.step")?;
        let mut moments = vec![LayerMoments::default(); config.layer_dims().len()];
        if time > 0 {
            for (k, (d_in, d_out)) in config.layer_dims().into_iter().enumerate() {
                let p = format!("adam.{}", 2 * k);
                let host2 = |name: String| -> Result<Tensor<2>> {
                    let t = state.get_shaped(&name, &[d_out, d_in])?.transposed();
                    Ok(matrix(t.data, d_in, d_out, &base, self.dtype))
                };
                let host1 = |name: String| -> Result<Tensor<1>> {
                    Ok(vector(
                        state.get_shaped(&name, &[d_out])?.data.clone(),
                        &base,
                        self.dtype,
                    ))
                };
                moments[k] = LayerMoments {
                    weight: Some(AdaptiveMomentumState::new(
                        time,
                        host2(format!("{p}.weight.exp_avg"))?,
                        host2(format!("{p}.weight.exp_avg_sq"))?,
                    )),
                    bias: Some(AdaptiveMomentumState::new(
                        time,
                        host1(format!("{p}.bias.exp_avg"))?,
                        host1(format!("{p}.bias.exp_avg_sq"))?,
                    )),
                };
            }
        }
        let ema = match &self.ema {
            None => None,
            Some(e) => {
                if !state.tensors.contains_key("ema.0.weight") {
                    return Err(
                        state.error("EMA is on but the state holds no EMA weights ('ema.*')")
                    );
                }
                Some(EmaState {
                    config: e.config,
                    model: Mlp::from_state(state, "ema.", &config, &base, self.dtype)?,
                    updates: parse("ema.updates")?,
                })
            }
        };
        self.model = rebuild(&model, &self.device);
        self.moments = moments;
        self.ema = ema;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::RegressionBatch;
    use crate::tensor::{cpu, rng};

    /// Regression onto y = 1 at fixed inputs: the batch points are the inputs, t = 0.5.
    struct Fixed;
    impl Objective for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn regression(&self, data: &Tensor<2>, _rng: &mut Rng) -> Option<RegressionBatch> {
            let [n, d] = data.dims();
            let t = Tensor::full([n], 0.5, (&data.device(), data.dtype()));
            let target = Tensor::full([n, d], 1.0, (&data.device(), data.dtype()));
            Some(RegressionBatch {
                x: data.clone(),
                t,
                target,
                weight: None,
                condition: Default::default(),
            })
        }
    }

    /// Hand-computed Adam on a single affine layer v = W[x, t] + b (d = 1, depth 0):
    /// L = mean_b (v_b − 1)², ∂L/∂W = (2/B) Σ_b (v_b − 1)[x_b, t_b], ∂L/∂b = (2/B) Σ_b (v_b − 1);
    /// then m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr·m̂/(√v̂ + ε) written out for two
    /// steps. burn keeps β, ε and the bias corrections 1 − βⁿ in f32 (Adam folds them as
    /// m·√(1−β₂ⁿ)/(1−β₁ⁿ) / (√v + ε√(1−β₂ⁿ))), so the hand computation rounds those scalars to
    /// f32 the same way and then agrees to 1e-13 in f64 (pure rounding). The textbook formula
    /// in f64 (PyTorch's, with the same f32-valued β) differs through the f32 cancellation in
    /// 1 − β₂ⁿ: absolute error ~2⁻²⁴, relative 2⁻²⁴/(1 − β₂ⁿ) ≈ 3·10⁻⁵ at n = 2, so the step
    /// lr·m̂/√v̂ is off by up to ~lr·1.5·10⁻⁵ = 1.5·10⁻⁷: checked to 3·10⁻⁷.
    /// AdamW adds θ(1 − lr·λ); clipping scales g by c/(‖g‖ + 1e-6).
    #[test]
    fn adam_matches_hand_computation() {
        for (kind, wd, clip) in [
            (OptimizerKind::Adam, 0.0, None),
            (OptimizerKind::AdamW, 0.1, None),
            (OptimizerKind::Adam, 0.0, Some(0.05)),
            (OptimizerKind::Adam, 0.2, None),
        ] {
            let dev = cpu();
            let cfg = MlpConfig::new(1, 4, 0);
            let init = cfg.init(&dev, DType::F64, &mut rng(0));
            let w0 = to_vec(&init.layers[0].weight.val()); // [x-coefficient, t-coefficient]
            let b0 = to_vec(&init.layers[0].bias.as_ref().unwrap().val())[0];
            let lr = 0.01;
            let opt = OptimizerConfig {
                kind,
                weight_decay: wd,
                clip_grad_norm: clip,
                ..OptimizerConfig::adam(lr)
            };
            let mut e = BurnEngine::new(&init, &opt, None).unwrap();
            let (b1, b2, epsf, wdf) = (0.9f32, 0.999f32, 1e-8f32, wd as f32 as f64);
            // (θ, m, v) for the f32-scalar emulation and for the textbook f64 formula.
            let mut emu = ([w0[0], w0[1], b0], [0.0; 3], [0.0; 3]);
            let mut txt = emu;
            let batches = [vec![0.5, -1.0, 2.0], vec![1.5, 0.25, -0.75, 3.0]];
            for (n, xs) in batches.iter().enumerate() {
                let t = (n + 1) as i32;
                let stats = e
                    .step(
                        &Fixed,
                        &Points::new(xs.clone(), 1).unwrap().into(),
                        &mut rng(1),
                        lr,
                    )
                    .unwrap();
                for (exact, (theta, m, v)) in [(true, &mut emu), (false, &mut txt)] {
                    let bsz = xs.len() as f64;
                    let (mut g, mut loss) = ([0.0; 3], 0.0);
                    for &x in xs {
                        let r = theta[0] * x + theta[1] * 0.5 + theta[2] - 1.0;
                        loss += r * r / bsz;
                        g[0] += 2.0 * r * x / bsz;
                        g[1] += 2.0 * r * 0.5 / bsz;
                        g[2] += 2.0 * r / bsz;
                    }
                    let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
                    if exact {
                        assert!(
                            (stats.loss - loss).abs() < 1e-13 * loss,
                            "{kind:?}: loss {} vs {loss}",
                            stats.loss
                        );
                        assert!((stats.grad_norm - norm).abs() < 1e-13 * norm);
                    }
                    if let Some(c) = clip {
                        let s = (c / (norm + 1e-6)).min(1.0);
                        g.iter_mut().for_each(|x| *x *= s);
                    }
                    for i in 0..3 {
                        let gi = if kind == OptimizerKind::Adam {
                            g[i] + wdf * theta[i]
                        } else {
                            g[i]
                        };
                        m[i] = b1 as f64 * m[i] + (1.0f32 - b1) as f64 * gi;
                        v[i] = b2 as f64 * v[i] + (1.0f32 - b2) as f64 * (gi * gi);
                        let upd = match (exact, kind) {
                            (true, OptimizerKind::Adam) => {
                                let bc2s = (1.0f32 - b2.powi(t)).sqrt();
                                let comb = bc2s / (1.0f32 - b1.powi(t));
                                m[i] * comb as f64 / (v[i].sqrt() + (epsf * bc2s) as f64)
                            }
                            (true, OptimizerKind::AdamW) => {
                                let mh = m[i] / (1.0f32 - b1.powi(t)) as f64;
                                let vh = v[i] / (1.0f32 - b2.powi(t)) as f64;
                                mh / (vh.sqrt() + epsf as f64)
                            }
                            (false, _) => {
                                let mh = m[i] / (1.0 - (b1 as f64).powi(t));
                                let vh = v[i] / (1.0 - (b2 as f64).powi(t));
                                mh / (vh.sqrt() + 1e-8)
                            }
                        };
                        if kind == OptimizerKind::AdamW {
                            theta[i] *= 1.0 - lr * wdf;
                        }
                        theta[i] -= upd * lr;
                    }
                }
                let got_w = to_vec(&e.model().layers[0].weight.val());
                let got_b = to_vec(&e.model().layers[0].bias.as_ref().unwrap().val())[0];
                for (i, a) in got_w.iter().chain([&got_b]).enumerate() {
                    let (h, p) = (emu.0[i], txt.0[i]);
                    assert!((a - h).abs() < 1e-13, "{kind:?} step {t}: {a} vs hand {h}");
                    assert!(
                        (a - p).abs() < 3e-7,
                        "{kind:?} step {t}: {a} vs textbook {p}"
                    );
                }
            }
            assert_eq!(e.adam_step(), 2);
        }
    }

    /// EMA: θ̄₁ = β θ₀ + (1 − β) θ₁, θ̄₂ = β θ̄₁ + (1 − β) θ₂, and with warm-up β₀ = min(β, 1/10).
    #[test]
    fn ema_follows_its_formula() {
        for warmup in [false, true] {
            let dev = cpu();
            let cfg = MlpConfig::new(1, 3, 1);
            let init = cfg.init(&dev, DType::F64, &mut rng(4));
            let ema_cfg = EmaConfig { decay: 0.9, warmup };
            let mut e =
                BurnEngine::new(&init, &OptimizerConfig::adam(0.05), Some(ema_cfg)).unwrap();
            let flat = |m: &Mlp| -> Vec<f64> {
                m.layers
                    .iter()
                    .flat_map(|l| {
                        [
                            to_vec(&l.weight.val()),
                            to_vec(&l.bias.as_ref().unwrap().val()),
                        ]
                    })
                    .flatten()
                    .collect()
            };
            let mut expect = flat(&init);
            for n in 0..3 {
                e.step(
                    &Fixed,
                    &Points::new(vec![0.3, -0.2], 1).unwrap().into(),
                    &mut rng(1),
                    0.05,
                )
                .unwrap();
                let beta = if warmup {
                    0.9f64.min((1.0 + n as f64) / (10.0 + n as f64))
                } else {
                    0.9
                };
                let theta = flat(&e.model());
                expect = expect
                    .iter()
                    .zip(&theta)
                    .map(|(a, t)| beta * a + (1.0 - beta) * t)
                    .collect();
                let got = flat(&e.ema_model().unwrap());
                for (g, x) in got.iter().zip(&expect) {
                    assert!(
                        (g - x).abs() < 1e-14 * (1.0 + x.abs()),
                        "warmup {warmup} update {n}: {g} vs {x}"
                    );
                }
            }
        }
    }

    /// Clipping caps the applied gradient: with c far below ‖g‖, the first Adam step is still
    /// ±lr per weight (Adam is scale-invariant at n = 1), so instead check the second-moment
    /// state: v₁ = (1 − β₂)·(s g)² with s = c/(‖g‖ + 1e-6), i.e. ‖√(v₁/(1 − β₂))‖ = c.
    #[test]
    fn clipping_caps_the_global_norm() {
        let dev = cpu();
        let cfg = MlpConfig::new(2, 8, 2);
        let init = cfg.init(&dev, DType::F64, &mut rng(9));
        let clip = 1e-3;
        let opt = OptimizerConfig {
            clip_grad_norm: Some(clip),
            ..OptimizerConfig::adam(1e-3)
        };
        let mut e = BurnEngine::new(&init, &opt, None).unwrap();
        let pts = Points::new(vec![0.3, -0.2, 1.0, 2.0, -1.5, 0.7], 2).unwrap();
        let s = e
            .step(&Fixed, &pts.clone().into(), &mut rng(1), 1e-3)
            .unwrap();
        assert!(
            s.grad_norm > 100.0 * clip,
            "test needs ‖g‖ ≫ c (got {})",
            s.grad_norm
        );
        let sd = e.state_dict();
        let b2 = 0.999f32 as f64;
        let applied: f64 = sd
            .tensors
            .iter()
            .filter(|(k, _)| k.ends_with("exp_avg_sq"))
            .flat_map(|(_, t)| t.data.iter().map(|v| v / (1.0 - b2)))
            .sum::<f64>()
            .sqrt();
        let expect = clip * s.grad_norm / (s.grad_norm + 1e-6);
        assert!(
            (applied - expect).abs() < 1e-9 * expect,
            "clipped norm {applied} vs {expect}"
        );
        // Without clipping the same quantity is the raw norm.
        let mut e2 = BurnEngine::new(&init, &OptimizerConfig::adam(1e-3), None).unwrap();
        let s2 = e2
            .step(&Fixed, &pts.clone().into(), &mut rng(1), 1e-3)
            .unwrap();
        let raw: f64 = e2
            .state_dict()
            .tensors
            .iter()
            .filter(|(k, _)| k.ends_with("exp_avg_sq"))
            .flat_map(|(_, t)| t.data.iter().map(|v| v / (1.0 - b2)))
            .sum::<f64>()
            .sqrt();
        assert!((raw - s2.grad_norm).abs() < 1e-9 * raw);
    }

    /// state_dict → load_state_dict continues bit-for-bit, and a mismatched state is refused.
    #[test]
    fn state_dict_round_trip_and_mismatch() {
        let dev = cpu();
        let cfg = MlpConfig::new(2, 8, 2);
        let init = cfg.init(&dev, DType::F32, &mut rng(2));
        let opt = OptimizerConfig::adamw(1e-2, 0.01);
        let mut a = BurnEngine::new(&init, &opt, Some(EmaConfig::new(0.9))).unwrap();
        let pts = Points::new(vec![0.3, -0.2, 1.0, 2.0], 2).unwrap();
        for _ in 0..3 {
            a.step(&Fixed, &pts.clone().into(), &mut rng(1), 1e-2)
                .unwrap();
        }
        let sd = a.state_dict();
        assert_eq!(sd.metadata["adam.step"], "3");
        let mut b =
            BurnEngine::from_state_dict(&cfg, &sd, &dev, &opt, Some(EmaConfig::new(0.9))).unwrap();
        for _ in 0..2 {
            let la = a
                .step(&Fixed, &pts.clone().into(), &mut rng(1), 1e-2)
                .unwrap();
            let lb = b
                .step(&Fixed, &pts.clone().into(), &mut rng(1), 1e-2)
                .unwrap();
            assert_eq!(la.loss.to_bits(), lb.loss.to_bits());
        }
        assert_eq!(a.state_dict(), b.state_dict());
        // EMA requested but absent; wrong architecture.
        let no_ema = BurnEngine::new(&init, &opt, None).unwrap().state_dict();
        assert!(matches!(
            BurnEngine::from_state_dict(&cfg, &no_ema, &dev, &opt, Some(EmaConfig::new(0.9))),
            Err(Error::Checkpoint { .. })
        ));
        assert!(matches!(
            BurnEngine::from_state_dict(&MlpConfig::new(2, 16, 2), &sd, &dev, &opt, None),
            Err(Error::Checkpoint { .. })
        ));
    }
}
