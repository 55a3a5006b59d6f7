//! The multilayer-perceptron field v_θ(x, t) with exact forward-mode tangents.
//!
//! Layout: input [x, φ(t), e(y)] → Linear → act → … (`depth` hidden layers of `width`) →
//! Linear → d (or K logits for a classifier, [`MlpConfig::outputs`]). φ(t) is either t itself
//! (`Raw`, the reference MLP (x, y, t) → 512⁴ → 2) or Gaussian Fourier features
//! [sin 2πf t, cos 2πf t]. A class-conditional network ([`MlpConfig::classes`] = K > 0) also
//! takes the one-hot e(y) of K + 1 entries: class y ∈ {0, …, K − 1}, or the null label K that
//! label dropout trains and classifier-free guidance's unconditional branch uses (as in Ho &
//! Salimans 2022). e(y) enters the first layer only, where W₁ e(y) is row y of W₁'s label
//! block. Layer k is burn's `Linear` with weight stored `[d_in, d_out]`; PyTorch's
//! `nn.Sequential` stores the same layer as `(2k).weight` of shape `(d_out, d_in)`.
//!
//! Labels are given per row as indices into the one-hot, `0..=K` (K = null); `None` means the
//! null label for every row (and is the only choice for an unconditional network).
//!
//! Tangents (Jacobian–vector products in x, no double backward): with z_l = W_l h_{l−1} + b_l,
//! ṫ_l = act'(z_l) ⊙ (W_l ṫ_{l−1}); all are ordinary tensor ops, so they can themselves be
//! differentiated with respect to the weights (Hyvärinen score matching needs this).

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{relu, sigmoid, silu, softplus, tanh};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::state::{HostTensor, StateDict, StoredDType};
use crate::tensor::{col, matrix, matrix_like, vector, DType, Device, Rng, Tensor};

/// Hidden-layer nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// SiLU z·σ(z) (default).
    #[default]
    Silu,
    /// max(z, 0).
    Relu,
    /// tanh z.
    Tanh,
    /// log(1 + eᶻ).
    Softplus,
}

impl Activation {
    /// The lower-case name (as serialised).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Softplus => "softplus",
        }
    }

    /// act(z).
    pub fn apply<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Silu => silu(z),
            Activation::Relu => relu(z),
            Activation::Tanh => tanh(z),
            Activation::Softplus => softplus(z, 1.0),
        }
    }

    /// act'(z): SiLU σ(z)(1 + z(1 − σ(z))), ReLU 𝟙(z > 0), tanh 1 − tanh²z, softplus σ(z).
    pub fn derivative<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Silu => {
                let s = sigmoid(z.clone());
                s.clone() * (z * (s.neg() + 1.0) + 1.0)
            }
            Activation::Relu => {
                let dt = z.dtype();
                z.greater_elem(0.0).float().cast(dt)
            }
            Activation::Tanh => {
                let th = tanh(z);
                th.clone().mul(th).neg() + 1.0
            }
            Activation::Softplus => sigmoid(z),
        }
    }
}

/// How time enters the network.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TimeEmbedding {
    /// φ(t) = t (one extra input).
    #[default]
    Raw,
    /// φ(t) = [sin 2πfₖt, cos 2πfₖt]ₖ with fixed frequencies fₖ ~ N(0, scale²).
    Fourier {
        /// The frequencies fₖ.
        frequencies: Vec<f64>,
    },
}

impl TimeEmbedding {
    /// Gaussian Fourier features with `n` frequencies drawn N(0, scale²) from `rng`.
    pub fn fourier(n: usize, scale: f64, rng: &mut Rng) -> Self {
        use rand_distr::{Distribution, StandardNormal};
        let frequencies = (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                scale * z
            })
            .collect();
        TimeEmbedding::Fourier { frequencies }
    }

    /// Number of input features φ(t) contributes.
    pub fn features(&self) -> usize {
        match self {
            TimeEmbedding::Raw => 1,
            TimeEmbedding::Fourier { frequencies } => 2 * frequencies.len(),
        }
    }

    /// φ(t) as a `(batch, features)` tensor.
    pub fn embed(&self, t: &Tensor<1>) -> Tensor<2> {
        match self {
            TimeEmbedding::Raw => col(t),
            TimeEmbedding::Fourier { frequencies } => {
                let f = vector(
                    frequencies
                        .iter()
                        .map(|f| 2.0 * std::f64::consts::PI * f)
                        .collect(),
                    &t.device(),
                    t.dtype(),
                )
                .unsqueeze_dim(0);
                let arg = col(t).matmul(f);
                Tensor::cat(vec![arg.clone().sin(), arg.cos()], 1)
            }
        }
    }
}

/// Architecture of an [`Mlp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Data dimension d (input and output).
    pub dim: usize,
    /// Hidden width.
    pub width: usize,
    /// Number of hidden layers (the reference MLP has 4).
    pub depth: usize,
    /// Hidden nonlinearity.
    #[serde(default)]
    pub activation: Activation,
    /// Time input.
    #[serde(default)]
    pub time: TimeEmbedding,
    /// Number of classes K of a class-conditional network (0: unconditional). The input gains
    /// a one-hot of K + 1 entries (the last is the null label).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub classes: usize,
    /// Output width when it is not d: a time-dependent classifier's K logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<usize>,
}

fn is_zero(k: &usize) -> bool {
    *k == 0
}

impl MlpConfig {
    /// d → width^depth → d with SiLU and raw time input.
    pub fn new(dim: usize, width: usize, depth: usize) -> Self {
        Self {
            dim,
            width,
            depth,
            activation: Activation::Silu,
            time: TimeEmbedding::Raw,
            classes: 0,
            outputs: None,
        }
    }

    /// The same architecture conditioned on K classes (one-hot of K + 1 with the null label).
    pub fn with_classes(mut self, classes: usize) -> Self {
        self.classes = classes;
        self
    }

    /// The same architecture with `outputs` outputs (a classifier's K logits) instead of d.
    pub fn with_outputs(mut self, outputs: usize) -> Self {
        self.outputs = Some(outputs);
        self
    }

    /// Output width: d, or [`MlpConfig::outputs`].
    pub fn out_dim(&self) -> usize {
        self.outputs.unwrap_or(self.dim)
    }

    /// Width of the label one-hot: K + 1 for a conditional network, 0 otherwise.
    pub fn label_features(&self) -> usize {
        if self.classes > 0 {
            self.classes + 1
        } else {
            0
        }
    }

    /// Width d + |φ(t)| of the dense part of the input (everything but the label one-hot).
    pub fn dense_input_dim(&self) -> usize {
        self.dim + self.time.features()
    }

    /// The one-hot index of the null label: K.
    pub fn null_label(&self) -> usize {
        self.classes
    }

    /// The reference configuration: (x, y, t) → 512 → 512 → 512 → 512 → 2, SiLU.
    pub fn reference() -> Self {
        Self::new(2, 512, 4)
    }

    /// Input width d + |φ(t)| (+ K + 1 for a conditional network).
    pub fn input_dim(&self) -> usize {
        self.dense_input_dim() + self.label_features()
    }

    /// (d_in, d_out) of every Linear layer.
    pub fn layer_dims(&self) -> Vec<(usize, usize)> {
        let mut dims = vec![self.input_dim()];
        dims.extend(std::iter::repeat_n(self.width, self.depth));
        dims.push(self.out_dim());
        dims.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.layer_dims().iter().map(|(i, o)| i * o + o).sum()
    }

    /// Names of the tensors [`Mlp::write_state`] writes under `prefix`.
    pub fn state_names(&self, prefix: &str) -> Vec<String> {
        (0..self.layer_dims().len())
            .flat_map(|k| {
                [
                    format!("{prefix}{}.weight", 2 * k),
                    format!("{prefix}{}.bias", 2 * k),
                ]
            })
            .collect()
    }

    /// Appends the architecture to a missing/mis-shaped tensor error.
    fn explain(&self, e: Error) -> Error {
        match e {
            Error::Checkpoint { path, msg } => Error::Checkpoint {
                path,
                msg: format!(
                    "{msg} (the architecture is {} → {} × {} → {}: layers {:?} as (d_in, d_out))",
                    self.input_dim(),
                    self.width,
                    self.depth,
                    self.out_dim(),
                    self.layer_dims()
                ),
            },
            other => other,
        }
    }

    /// A network with PyTorch's `nn.Linear` default initialisation, W, b ~ U(−k, k), k = 1/√d_in,
    /// drawn from `rng` (so the same seed gives the same weights on every backend).
    pub fn init(&self, device: &Device, dtype: DType, rng: &mut Rng) -> Mlp {
        let layers = self
            .layer_dims()
            .into_iter()
            .map(|(i, o)| {
                let k = 1.0 / (i as f64).sqrt();
                let w: Vec<f64> = (0..i * o).map(|_| rng.random_range(-k..k)).collect();
                let b: Vec<f64> = (0..o).map(|_| rng.random_range(-k..k)).collect();
                linear_from(matrix(w, i, o, device, dtype), vector(b, device, dtype))
            })
            .collect();
        Mlp {
            layers,
            config: self.clone(),
        }
    }
}

/// A `Linear` layer from its weight `[d_in, d_out]` and bias `[d_out]`.
pub fn linear_from(weight: Tensor<2>, bias: Tensor<1>) -> Linear {
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

/// The MLP vector field v_θ(x, t). A burn `Module`: train it on an autodiff device, sample with
/// `.valid()` (no graph).
#[derive(Module, Debug)]
pub struct Mlp {
    /// The `depth + 1` affine layers.
    pub layers: Vec<Linear>,
    /// The architecture.
    #[module(skip)]
    pub config: MlpConfig,
}

impl Mlp {
    /// Network input [x, φ(t), e(y)] (the one-hot only for a conditional network; `labels`
    /// per row in `0..=K`, `None` = the null label K everywhere).
    ///
    /// # Panics
    /// If a label exceeds K or their count is not the batch size (programming errors: the
    /// `Network` impl validates user input first).
    fn input(&self, x: &Tensor<2>, t: &Tensor<1>, labels: Option<&[usize]>) -> Tensor<2> {
        let mut parts = vec![x.clone(), self.config.time.embed(t)];
        let lf = self.config.label_features();
        if lf > 0 {
            let n = x.dims()[0];
            let mut onehot = vec![0.0; n * lf];
            for r in 0..n {
                let y = labels.map_or(self.config.null_label(), |l| l[r]);
                assert!(y < lf, "label {y} out of range 0..={}", lf - 1);
                onehot[r * lf + y] = 1.0;
            }
            if let Some(l) = labels {
                assert_eq!(l.len(), n, "{} labels for {n} rows", l.len());
            }
            parts.push(matrix_like(onehot, n, lf, x));
        }
        Tensor::cat(parts, 1)
    }

    /// v_θ(x, t) (the null label for a conditional network).
    pub fn forward(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        self.forward_given(x, t, None)
    }

    /// v_θ(x, t | y) with per-row labels in `0..=K` (`None`: the null label).
    pub fn forward_given(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
    ) -> Tensor<2> {
        let act = self.config.activation;
        let last = self.layers.len() - 1;
        let mut h = self.input(x, t, labels);
        for (l, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if l < last {
                h = act.apply(h);
            }
        }
        h
    }

    /// Propagates input tangents `tan` of shape `(k·batch, d_in)` (k stacked blocks, each a
    /// direction for the whole batch) alongside the forward pass; returns (v, ṫ_out).
    fn tangents(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        tan: Tensor<2>,
        k: usize,
    ) -> (Tensor<2>, Tensor<2>) {
        let act = self.config.activation;
        let last = self.layers.len() - 1;
        let mut h = self.input(x, t, labels);
        let mut dt = tan;
        for (l, layer) in self.layers.iter().enumerate() {
            let z = layer.forward(h);
            dt = dt.matmul(layer.weight.val());
            if l < last {
                let dz = act.derivative(z.clone());
                dt = dt * if k == 1 { dz } else { dz.repeat(&[k, 1]) };
                h = act.apply(z);
            } else {
                h = z;
            }
        }
        (h, dt)
    }

    /// Pads an x-tangent `(n, d)` with zeros for the time and label features (neither moves
    /// with x).
    fn pad_tangent(&self, u: Tensor<2>) -> Tensor<2> {
        let [n, _] = u.dims();
        let tf = self.config.input_dim() - self.config.dim;
        let zeros = matrix_like(vec![0.0; n * tf], n, tf, &u);
        Tensor::cat(vec![u, zeros], 1)
    }

    /// (v, J·u) exactly by forward-mode tangents; differentiable in the weights.
    pub fn forward_jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.tangents(x, t, labels, self.pad_tangent(u.clone()), 1)
    }

    /// (v, Jᵀ·w) exactly: one forward pass keeping act′(zₗ), then gₗ₋₁ = (gₗ ⊙ act′(zₗ)) Wₗᵀ
    /// from g = w; the time and label features' share of the input gradient is dropped.
    pub fn forward_vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.forward_vjp_with(x, t, labels, &|_| w.clone())
    }

    /// (v, Jᵀ·w(v)) for a cotangent computed from the output v: one forward pass, w(v), one
    /// backward pass.
    pub fn forward_vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let act = self.config.activation;
        let last = self.layers.len() - 1;
        let mut h = self.input(x, t, labels);
        let mut derivs = Vec::with_capacity(last);
        for (l, layer) in self.layers.iter().enumerate() {
            let z = layer.forward(h);
            if l < last {
                derivs.push(act.derivative(z.clone()));
                h = act.apply(z);
            } else {
                h = z;
            }
        }
        let mut g = w(&h);
        for (l, layer) in self.layers.iter().enumerate().rev() {
            if l < last {
                g = g * derivs[l].clone();
            }
            g = g.matmul(layer.weight.val().transpose());
        }
        (h, g.narrow(1, 0, self.config.dim))
    }

    /// (v, ∇·v) exactly: the d tangent directions e₁…e_d stacked into one batch of d·n rows,
    /// so each layer costs one matmul; differentiable in the weights.
    pub fn forward_divergence(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
    ) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = x.dims();
        let mut e = vec![0.0; d * n * d];
        for i in 0..d {
            for r in 0..n {
                e[(i * n + r) * d + i] = 1.0;
            }
        }
        let tan = self.pad_tangent(matrix_like(e, d * n, d, x));
        let (v, jt) = self.tangents(x, t, labels, tan, d);
        let mut div: Option<Tensor<1>> = None;
        for i in 0..d {
            let c = jt.clone().narrow(0, i * n, n).narrow(1, i, 1).reshape([n]);
            div = Some(match div {
                None => c,
                Some(a) => a + c,
            });
        }
        (v, div.expect("d >= 1"))
    }
}

/// The MLP as a PyTorch `nn.Sequential` state dict: Linear layer k is `"{prefix}{2k}.weight"`
/// of shape `(d_out, d_in)` and `"{prefix}{2k}.bias"` (the activations sit at the odd indices),
/// so `torch.nn.Sequential(Linear, SiLU, …).load_state_dict(…)` reads it as is.
impl Mlp {
    /// Adds the layers under `prefix`, stored as `dtype` (default: the model's).
    pub fn write_state(&self, sd: &mut StateDict, prefix: &str, dtype: Option<StoredDType>) {
        for (k, layer) in self.layers.iter().enumerate() {
            let mut w = HostTensor::from_tensor(&layer.weight.val()).transposed();
            let mut b = match &layer.bias {
                Some(b) => HostTensor::from_tensor(&b.val()),
                None => HostTensor {
                    shape: vec![w.shape[0]],
                    data: vec![0.0; w.shape[0]],
                    dtype: w.dtype,
                },
            };
            if let Some(dt) = dtype {
                w.dtype = dt;
                b.dtype = dt;
            }
            sd.insert(format!("{prefix}{}.weight", 2 * k), w);
            sd.insert(format!("{prefix}{}.bias", 2 * k), b);
        }
    }

    /// Rebuilds an MLP of architecture `config` from the tensors of `sd` under `prefix`, on
    /// `device` in `dtype`; errors name the missing or mis-shaped tensor and any non-finite value.
    pub fn from_state(
        sd: &StateDict,
        prefix: &str,
        config: &MlpConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<Mlp> {
        let mut layers = Vec::new();
        for (k, (d_in, d_out)) in config.layer_dims().into_iter().enumerate() {
            let wname = format!("{prefix}{}.weight", 2 * k);
            let bname = format!("{prefix}{}.bias", 2 * k);
            let w = sd
                .get_shaped(&wname, &[d_out, d_in])
                .map_err(|e| config.explain(e))?;
            let b = sd
                .get_shaped(&bname, &[d_out])
                .map_err(|e| config.explain(e))?;
            for (name, t) in [(&wname, w), (&bname, b)] {
                if let Some(v) = t.data.iter().find(|v| !v.is_finite()) {
                    return Err(sd.error(format!("tensor '{name}' holds a non-finite value ({v})")));
                }
            }
            let w = w.transposed();
            layers.push(linear_from(
                matrix(w.data, d_in, d_out, device, dtype),
                vector(b.data.clone(), device, dtype),
            ));
        }
        Ok(Mlp {
            layers,
            config: config.clone(),
        })
    }

    /// Writes the MLP to `path` (atomically) as f32 under the names of [`Mlp::write_state`]
    /// with no prefix; the header metadata carries the [`MlpConfig`] as JSON under
    /// `scoreflow.config`.
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let mut sd = StateDict::new();
        self.write_state(&mut sd, "", Some(StoredDType::F32));
        sd.metadata.insert("format".into(), "pt".into());
        sd.metadata.insert(
            "scoreflow.config".into(),
            serde_json::to_string(&self.config).map_err(|e| Error::InvalidInput(e.to_string()))?,
        );
        sd.write(path)
    }

    /// Reads an MLP of architecture `config` from a safetensors file with PyTorch
    /// `nn.Sequential` names (written by PyTorch or [`Mlp::save_safetensors`]), on `device` in
    /// `dtype`. The names must be exactly those of `config` and every shape must match.
    pub fn load_safetensors(
        path: &Path,
        config: &MlpConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<Mlp> {
        let sd = StateDict::read(path)?;
        sd.expect_names(&config.state_names(""))?;
        Mlp::from_state(&sd, "", config, device, dtype)
    }
}

impl VectorField for Mlp {
    fn dim(&self) -> usize {
        self.config.dim
    }
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        self.forward(x, t)
    }
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.forward_jvp(x, t, None, u)
    }
    fn exact_jvp(&self) -> bool {
        true
    }
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        self.forward_divergence(x, t, None)
    }
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.forward_vjp(x, t, None, w)
    }
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.forward_vjp_with(x, t, None, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{cpu, randn, rng, to_vec, vector};

    fn setup(time: TimeEmbedding, act: Activation) -> (Mlp, Tensor<2>, Tensor<1>) {
        let mut r = rng(7);
        let cfg = MlpConfig {
            time,
            activation: act,
            ..MlpConfig::new(3, 16, 3)
        };
        let dev = cpu();
        let m = cfg.init(&dev, DType::F64, &mut r);
        let x = randn(5, 3, &dev, DType::F64, &mut r);
        let t = vector(vec![0.1, 0.3, 0.5, 0.7, 0.9], &dev, DType::F64);
        (m, x, t)
    }

    /// Exact tangents agree with central finite differences (f64, error O(h²) ≈ 1e-10).
    #[test]
    fn jvp_and_divergence_match_finite_differences() {
        for act in [Activation::Silu, Activation::Tanh, Activation::Softplus] {
            let mut r = rng(1);
            for time in [TimeEmbedding::Raw, TimeEmbedding::fourier(4, 1.0, &mut r)] {
                let (m, x, t) = setup(time, act);
                let u = randn(5, 3, &cpu(), DType::F64, &mut r);
                let (_, jv) = m.forward_jvp(&x, &t, None, &u);
                let h = 1e-5;
                let fd = (m.forward(&(x.clone() + u.clone() * h), &t)
                    - m.forward(&(x.clone() - u.clone() * h), &t))
                    / (2.0 * h);
                for (a, b) in to_vec(&jv).iter().zip(to_vec(&fd)) {
                    assert!(
                        (a - b).abs() < 1e-7 * (1.0 + b.abs()),
                        "{act:?}: jvp {a} vs fd {b}"
                    );
                }
                let (_, div) = m.forward_divergence(&x, &t, None);
                let mut fd_div = vec![0.0; 5];
                for i in 0..3 {
                    let e = crate::field::basis_like(&x, i);
                    let d = (m.forward(&(x.clone() + e.clone() * h), &t)
                        - m.forward(&(x.clone() - e * h), &t))
                        / (2.0 * h);
                    for (r, v) in to_vec(&d.narrow(1, i, 1)).iter().enumerate() {
                        fd_div[r] += v;
                    }
                }
                for (a, b) in to_vec(&div).iter().zip(&fd_div) {
                    assert!(
                        (a - b).abs() < 1e-7 * (1.0 + b.abs()),
                        "{act:?}: div {a} vs fd {b}"
                    );
                }
            }
        }
    }

    /// The exact VJP is the transpose of the exact JVP: ⟨w, J u⟩ = ⟨Jᵀ w, u⟩ for random u, w
    /// (f64, every activation, both time inputs), and its v is the forward pass.
    #[test]
    fn vjp_is_the_adjoint_of_jvp() {
        for act in [
            Activation::Silu,
            Activation::Relu,
            Activation::Tanh,
            Activation::Softplus,
        ] {
            let mut r = rng(2);
            for time in [TimeEmbedding::Raw, TimeEmbedding::fourier(4, 1.0, &mut r)] {
                let (m, x, t) = setup(time, act);
                let u = randn(5, 3, &cpu(), DType::F64, &mut r);
                let w = randn(5, 3, &cpu(), DType::F64, &mut r);
                let (v1, ju) = m.forward_jvp(&x, &t, None, &u);
                let (v2, jtw) = m.forward_vjp(&x, &t, None, &w);
                let lhs = to_vec(&(ju * w.clone()).sum_dim(1));
                let rhs = to_vec(&(jtw * u.clone()).sum_dim(1));
                for (a, b) in lhs.iter().zip(&rhs) {
                    assert!(
                        (a - b).abs() < 1e-10 * (1.0 + a.abs()),
                        "{act:?}: {a} vs {b}"
                    );
                }
                assert_eq!(to_vec(&v1), to_vec(&v2));
            }
        }
    }

    #[test]
    fn reference_config_has_pytorch_shape() {
        let c = MlpConfig::reference();
        assert_eq!(
            c.layer_dims(),
            vec![(3, 512), (512, 512), (512, 512), (512, 512), (512, 2)]
        );
        assert_eq!(
            c.num_params(),
            3 * 512 + 512 + 3 * (512 * 512 + 512) + 512 * 2 + 2
        );
    }
}
