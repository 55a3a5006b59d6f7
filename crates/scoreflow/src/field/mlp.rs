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

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::field::activation::Activation;
use crate::field::VectorField;
use crate::state::{HostTensor, StateDict, StoredDType};
use crate::tensor::{col, matrix, matrix_like, vector, DType, Device, Rng, Tensor};

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

/// How time enters the network, by name (`--time-embedding`); [`TimeEmbeddingKind::embedding`]
/// makes the concrete [`TimeEmbedding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TimeEmbeddingKind {
    /// t as one extra input (the reference MLP).
    #[default]
    Raw,
    /// Gaussian Fourier features of t (16 frequencies ~ N(0, 1)).
    Fourier,
}

impl TimeEmbeddingKind {
    /// The embedding: raw t, or 16 Gaussian Fourier frequencies fₖ ~ N(0, 1) drawn from `rng`.
    pub fn embedding(self, rng: &mut Rng) -> TimeEmbedding {
        match self {
            TimeEmbeddingKind::Raw => TimeEmbedding::Raw,
            TimeEmbeddingKind::Fourier => TimeEmbedding::fourier(16, 1.0, rng),
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

/// Where the time input sits among the inputs of a PyTorch MLP (it cannot be read from the
/// weights). scoreflow's own layout is [x, t].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TimeColumn {
    /// Input [x, t]: TorchCFM (`torch_wrapper` concatenates `[x, t]`), Meta flow_matching's
    /// `2d_flow_matching` example, the reference scripts of `../shared/bench` (default).
    #[default]
    Last,
    /// Input [t, x]: Meta flow_matching's `2d_cnf_maximum_likelihood` example
    /// (`torch.cat((t, x_t), -1)`). Imported exactly, by moving the first layer's t column last.
    First,
}

/// The layout of a PyTorch `nn.Sequential` MLP state dict: keys `"{prefix}{i}.weight"` of shape
/// `(d_out, d_in)` and `"{prefix}{i}.bias"` of shape `(d_out,)` for the Linear layers at
/// Sequential indices i₀ = 0 < i₁ < …, the parameter-free activations in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequentialLayout {
    /// The wrapper prefix every key carries: `"net."` (TorchCFM's `MLP`), `"main."` (Meta
    /// flow_matching's 2-D example), `"model.main."`, `""` (a bare `nn.Sequential`)…
    pub prefix: String,
    /// Sequential indices of the Linear layers, e.g. `[0, 2, 4, 6]`.
    pub indices: Vec<usize>,
    /// `(d_in, d_out)` of each Linear layer.
    pub dims: Vec<(usize, usize)>,
    /// Whether each Linear layer has a bias (`bias=False` layers import with b = 0).
    pub has_bias: Vec<bool>,
}

impl SequentialLayout {
    /// Reads the layout from the names and shapes of `sd`. Errors (one line, naming the tensor):
    /// a name that is not `{prefix}{index}.weight|bias`, two prefixes, a parameter other than
    /// weight/bias (normalisation layers, buffers), a weight that is not 2-D (PReLU), a bias
    /// without its weight or of the wrong length, layers whose widths do not chain, two Linear
    /// layers with no module between them, modules before the first Linear layer.
    pub fn of(sd: &StateDict) -> Result<Self> {
        if sd.tensors.is_empty() {
            return Err(sd.error("holds no tensors (expected an nn.Sequential MLP state dict)"));
        }
        let mut prefix: Option<&str> = None;
        let mut layers: BTreeMap<usize, (Option<&HostTensor>, Option<&HostTensor>)> =
            BTreeMap::new();
        for (name, t) in &sd.tensors {
            let (p, index, param) = split_sequential_key(name).ok_or_else(|| {
                sd.error(format!(
                    "tensor '{name}' is not named like an nn.Sequential layer \
                     ('<prefix><index>.weight' or '.bias', e.g. 'net.0.weight')"
                ))
            })?;
            match prefix {
                None => prefix = Some(p),
                Some(q) if q != p => {
                    return Err(sd.error(format!(
                        "tensors under two prefixes, '{q}' and '{p}' (tensor '{name}'): \
                         expected one nn.Sequential"
                    )))
                }
                Some(_) => {}
            }
            let slot = layers.entry(index).or_default();
            match param {
                "weight" => slot.0 = Some(t),
                "bias" => slot.1 = Some(t),
                other => {
                    return Err(sd.error(format!(
                        "tensor '{name}': a Linear layer has only weight and bias, not '{other}' \
                         (normalisation layers and buffers are not imported)"
                    )))
                }
            }
        }
        let prefix = prefix.unwrap_or_default().to_string();
        let mut out = SequentialLayout {
            prefix,
            indices: Vec::new(),
            dims: Vec::new(),
            has_bias: Vec::new(),
        };
        for (&i, &(w, b)) in &layers {
            let name = |p: &str| format!("{}{i}.{p}", out.prefix);
            let w = w.ok_or_else(|| {
                sd.error(format!(
                    "tensor '{}' has no '{}'",
                    name("bias"),
                    name("weight")
                ))
            })?;
            let &[d_out, d_in] = w.shape.as_slice() else {
                return Err(sd.error(format!(
                    "tensor '{}' has shape {:?}, not (out, in): only Linear layers are imported \
                     (a learnable activation such as PReLU, or a normalisation layer, is not)",
                    name("weight"),
                    w.shape
                )));
            };
            if d_out == 0 || d_in == 0 {
                return Err(sd.error(format!(
                    "tensor '{}' has an empty shape {:?}",
                    name("weight"),
                    w.shape
                )));
            }
            if let Some(b) = b {
                if b.shape != [d_out] {
                    return Err(sd.error(format!(
                        "tensor '{}' has shape {:?}, expected [{d_out}] (the rows of '{}')",
                        name("bias"),
                        b.shape,
                        name("weight")
                    )));
                }
            }
            match (out.indices.last(), out.dims.last()) {
                (None, _) if i != 0 => {
                    return Err(sd.error(format!(
                        "the first Linear layer is '{}', not index 0: modules before it \
                         would not be imported",
                        name("weight")
                    )))
                }
                (Some(&j), _) if i == j + 1 => {
                    return Err(sd.error(format!(
                        "Linear layers '{}{j}' and '{}{i}' are adjacent: an activation must \
                         sit between them",
                        out.prefix, out.prefix
                    )))
                }
                (_, Some(&(_, prev_out))) if prev_out != d_in => {
                    return Err(sd.error(format!(
                        "tensor '{}' has shape {:?}: it takes {d_in} inputs, but the layer \
                         before gives {prev_out}",
                        name("weight"),
                        w.shape
                    )))
                }
                _ => {}
            }
            out.indices.push(i);
            out.dims.push((d_in, d_out));
            out.has_bias.push(b.is_some());
        }
        Ok(out)
    }

    /// `"{prefix}{i}.weight"` of Linear layer k.
    fn weight_name(&self, k: usize) -> String {
        format!("{}{}.weight", self.prefix, self.indices[k])
    }

    /// `"{prefix}{i}.bias"` of Linear layer k.
    fn bias_name(&self, k: usize) -> String {
        format!("{}{}.bias", self.prefix, self.indices[k])
    }
}

/// `"{prefix}{index}.{param}"` → (prefix, index, param), the prefix empty or ending in '.'.
fn split_sequential_key(name: &str) -> Option<(&str, usize, &str)> {
    let (rest, param) = name.rsplit_once('.')?;
    let (prefix, index) = match rest.rfind('.') {
        Some(k) => (&rest[..=k], &rest[k + 1..]),
        None => ("", rest),
    };
    if index.is_empty() || !index.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((prefix, index.parse().ok()?, param))
}

impl MlpConfig {
    /// The architecture of a PyTorch `nn.Sequential` MLP state dict
    /// `Linear(d + 1, w), act, Linear(w, w), act, …, Linear(w, d)` ([`SequentialLayout`]): d from
    /// the last layer's outputs, the width w from the hidden layers (all equal), depth = number
    /// of Linear layers − 1, raw time input (the first layer takes d + 1 inputs: x and t), with
    /// the given `activation` (the weights do not record it). Errors (one line): everything
    /// [`SequentialLayout::of`] refuses, a single Linear layer, unequal hidden widths, and a
    /// first layer that takes d inputs (no time: TorchCFM's `time_varying=False`), fewer, or
    /// more than d + 1 (a time embedding or a condition input).
    pub fn infer_from_state(
        sd: &StateDict,
        activation: Activation,
    ) -> Result<(MlpConfig, SequentialLayout)> {
        let layout = SequentialLayout::of(sd)?;
        let dims = &layout.dims;
        if dims.len() < 2 {
            return Err(sd.error(format!(
                "one Linear layer ('{}'): an MLP has at least one hidden layer",
                layout.weight_name(0)
            )));
        }
        let (d_in, width) = dims[0];
        let dim = dims[dims.len() - 1].1;
        if let Some(k) = (1..dims.len() - 1).find(|&k| dims[k].1 != width) {
            let widths: Vec<usize> = dims[..dims.len() - 1].iter().map(|d| d.1).collect();
            return Err(sd.error(format!(
                "hidden widths {widths:?} differ (at '{}'): scoreflow's MLP has one width",
                layout.weight_name(k)
            )));
        }
        let extra = d_in as isize - dim as isize;
        if extra != 1 {
            let why = match extra {
                0 => "the network takes no time input (TorchCFM's time_varying=False?)".to_string(),
                e if e < 0 => "fewer inputs than outputs: not a vector field".to_string(),
                e => format!(
                    "{e} inputs besides x: a time embedding or a condition input is not \
                     supported"
                ),
            };
            return Err(sd.error(format!(
                "'{}' takes {d_in} inputs for {dim} outputs: {why}; scoreflow imports fields \
                 whose input is x and one raw time column t",
                layout.weight_name(0)
            )));
        }
        let config = MlpConfig {
            dim,
            width,
            depth: dims.len() - 1,
            activation,
            time: TimeEmbedding::Raw,
            classes: 0,
            outputs: None,
        };
        Ok((config, layout))
    }
}

impl Mlp {
    /// Imports a PyTorch `nn.Sequential` MLP v(x, t) = W_L act(… act(W₁[x, t] + b₁) …) + b_L from
    /// its `state_dict()` (read with [`StateDict::read`]; f32 or f64): the architecture by
    /// [`MlpConfig::infer_from_state`], the time input at `time` (weights cannot tell; the
    /// first layer's t column is moved last for [`TimeColumn::First`], an exact
    /// re-parametrisation), bias-free layers with b = 0, on `device` in `dtype`. Returns the
    /// network and the layout found. Errors: those of [`MlpConfig::infer_from_state`] and any
    /// non-finite value (naming the tensor).
    ///
    /// What the weights cannot show is assumed: exactly one `activation` between consecutive
    /// Linear layers (other modules in the gaps, such as Dropout, must be identities at
    /// inference) and nothing after the last Linear layer.
    pub fn from_pytorch(
        sd: &StateDict,
        activation: Activation,
        time: TimeColumn,
        device: &Device,
        dtype: DType,
    ) -> Result<(Mlp, SequentialLayout)> {
        let (config, layout) = MlpConfig::infer_from_state(sd, activation)?;
        let mut ours = StateDict {
            source: sd.source.clone(),
            ..StateDict::default()
        };
        for (k, &(d_in, d_out)) in layout.dims.iter().enumerate() {
            let mut w = sd.get(&layout.weight_name(k))?.clone();
            let b = match layout.has_bias[k] {
                true => sd.get(&layout.bias_name(k))?.clone(),
                false => HostTensor {
                    shape: vec![d_out],
                    data: vec![0.0; d_out],
                    dtype: w.dtype,
                },
            };
            for (name, t) in [(layout.weight_name(k), &w), (layout.bias_name(k), &b)] {
                if let Some(v) = t.data.iter().find(|v| !v.is_finite()) {
                    return Err(sd.error(format!("tensor '{name}' holds a non-finite value ({v})")));
                }
            }
            if k == 0 && time == TimeColumn::First {
                // Row r of W is (w_t, w_x1, …, w_xd) → (w_x1, …, w_xd, w_t).
                for row in w.data.chunks_exact_mut(d_in) {
                    row.rotate_left(1);
                }
            }
            ours.insert(format!("{}.weight", 2 * k), w);
            ours.insert(format!("{}.bias", 2 * k), b);
        }
        let mlp = Mlp::from_state(&ours, "", &config, device, dtype)?;
        Ok((mlp, layout))
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
    use crate::tensor::{cpu, matrix, randn, rng, to_vec, vector};

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
        // ReLU is left out: its kink at 0 breaks the O(h²) difference (SELU and ELU have a kink
        // only in act′, which the first-order tangent does not see at these points).
        for act in Activation::ALL
            .into_iter()
            .filter(|a| *a != Activation::Relu)
        {
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

    /// The exact divergence is differentiable in the weights with the right gradient (what
    /// Hyvärinen score matching trains through, so act″ enters via burn's autodiff of act′):
    /// ⟨∇_θ L, δ⟩ for L = Σ ∇·v + Σ v against the central difference along a random direction
    /// δ with ε = 1e-6 (f64: truncation ε²·|L‴| ≲ 1e-10, rounding 1e-16·|L|/ε ≲ 1e-9), to
    /// 1e-6·(1 + |⟨∇L, δ⟩|). Every activation (ReLU's act″ = 0 is checked too).
    #[test]
    fn divergence_gradient_in_the_weights_matches_finite_differences() {
        let dev = cpu().autodiff();
        for act in Activation::ALL {
            let cfg = MlpConfig {
                activation: act,
                ..MlpConfig::new(2, 12, 2)
            };
            let mut r = rng(31);
            let m = cfg.init(&dev, DType::F64, &mut r);
            let x = randn(9, 2, &dev, DType::F64, &mut r);
            let t = crate::tensor::uniform(9, 0.0, 1.0, &dev, DType::F64, &mut r);
            let loss = |m: &Mlp, x: &Tensor<2>, t: &Tensor<1>| {
                let (v, div) = m.forward_divergence(x, t, None);
                div.sum() + v.sum()
            };
            let grads = loss(&m, &x, &t).backward();
            let dirs: Vec<(Tensor<2>, Tensor<1>)> = m
                .layers
                .iter()
                .map(|l| {
                    let [i, o] = l.weight.val().dims();
                    let db = randn(1, o, &cpu(), DType::F64, &mut r).reshape([o]);
                    (randn(i, o, &cpu(), DType::F64, &mut r), db)
                })
                .collect();
            let mut analytic = 0.0;
            for (l, (dw, db)) in m.layers.iter().zip(&dirs) {
                let gw = l.weight.val().grad(&grads).expect("weight gradient");
                let gb = l
                    .bias
                    .as_ref()
                    .unwrap()
                    .val()
                    .grad(&grads)
                    .expect("bias gradient");
                analytic +=
                    to_vec(&(gw * dw.clone()).sum())[0] + to_vec(&(gb * db.clone()).sum())[0];
            }
            let eps = 1e-6;
            let shifted = |sign: f64| Mlp {
                layers: m
                    .layers
                    .iter()
                    .zip(&dirs)
                    .map(|(l, (dw, db))| {
                        linear_from(
                            l.weight.val().inner() + dw.clone() * (sign * eps),
                            l.bias.as_ref().unwrap().val().inner() + db.clone() * (sign * eps),
                        )
                    })
                    .collect(),
                config: cfg.clone(),
            };
            let (xi, ti) = (x.clone().inner(), t.clone().inner());
            let fd = (to_vec(&loss(&shifted(1.0), &xi, &ti))[0]
                - to_vec(&loss(&shifted(-1.0), &xi, &ti))[0])
                / (2.0 * eps);
            assert!(
                (analytic - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                "{act}: ⟨∇L, δ⟩ = {analytic}, finite difference {fd}"
            );
        }
    }

    /// The exact VJP is the transpose of the exact JVP: ⟨w, J u⟩ = ⟨Jᵀ w, u⟩ for random u, w
    /// (f64, every activation, both time inputs), and its v is the forward pass.
    #[test]
    fn vjp_is_the_adjoint_of_jvp() {
        for act in Activation::ALL {
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

    /// A 3 → 8 × 2 → 2 SELU network written as PyTorch would under `prefix`, with the Linear
    /// layers at Sequential indices `indices` (f32 weights, as `state_dict()` of a float model).
    fn torch_state(prefix: &str, indices: [usize; 3]) -> (Mlp, StateDict) {
        let cfg = MlpConfig {
            activation: Activation::Selu,
            ..MlpConfig::new(2, 8, 2)
        };
        let m = cfg.init(&cpu(), DType::F32, &mut rng(3));
        let mut ours = StateDict::new();
        m.write_state(&mut ours, "", None);
        let mut sd = StateDict::new();
        for (k, i) in indices.iter().enumerate() {
            for p in ["weight", "bias"] {
                let t = ours.tensors[&format!("{}.{p}", 2 * k)].clone();
                sd.insert(format!("{prefix}{i}.{p}"), t);
            }
        }
        (m, sd)
    }

    /// v of two networks at the same random points (f64).
    fn same_field(a: &Mlp, b: &Mlp) {
        let mut r = rng(5);
        let x = randn(7, 2, &cpu(), DType::F64, &mut r);
        let t = vector(vec![0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0], &cpu(), DType::F64);
        assert_eq!(to_vec(&a.forward(&x, &t)), to_vec(&b.forward(&x, &t)));
    }

    /// Every wrapper prefix and index pattern imports to the same network: the configuration is
    /// inferred (d = 2, width 8, depth 2, raw time), the layout reported, and the imported field
    /// equals the original bit for bit (the f32 weights are copied exactly).
    #[test]
    fn pytorch_import_reads_any_prefix_and_index_gaps() {
        for (prefix, indices) in [
            ("", [0, 2, 4]),
            ("net.", [0, 2, 4]),
            ("main.", [0, 2, 4]),
            ("model.main.", [0, 2, 4]),
            ("net.", [0, 3, 6]),
        ] {
            let (m, sd) = torch_state(prefix, indices);
            let (cfg, layout) = MlpConfig::infer_from_state(&sd, Activation::Selu).unwrap();
            assert_eq!(cfg, m.config);
            assert_eq!(layout.prefix, prefix);
            assert_eq!(layout.indices, indices);
            assert_eq!(layout.dims, vec![(3, 8), (8, 8), (8, 2)]);
            let (back, _) =
                Mlp::from_pytorch(&sd, Activation::Selu, TimeColumn::Last, &cpu(), DType::F64)
                    .unwrap();
            let mut ours = StateDict::new();
            m.write_state(&mut ours, "", Some(StoredDType::F64));
            let orig = Mlp::from_state(&ours, "", &m.config, &cpu(), DType::F64).unwrap();
            same_field(&back, &orig);
        }
    }

    /// The reference scripts' own PyTorch file (`tests/data/mlp_w16.safetensors`, a bare
    /// `nn.Sequential`, keys `0.weight` … `8.bias`) imports to the network the exact-names
    /// loader reads.
    #[test]
    fn pytorch_import_reads_the_reference_fixture() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mlp_w16.safetensors");
        let sd = StateDict::read(&path).unwrap();
        let (m, layout) =
            Mlp::from_pytorch(&sd, Activation::Silu, TimeColumn::Last, &cpu(), DType::F64).unwrap();
        assert_eq!(
            (layout.prefix.as_str(), layout.indices),
            ("", vec![0, 2, 4, 6, 8])
        );
        let cfg = MlpConfig::new(2, 16, 4);
        assert_eq!(m.config, cfg);
        same_field(
            &m,
            &Mlp::load_safetensors(&path, &cfg, &cpu(), DType::F64).unwrap(),
        );
    }

    /// [t, x] inputs (flow_matching's CNF example) import exactly: moving the first layer's t
    /// column last gives the network of the [x, t] layout; a bias-free layer imports with b = 0.
    #[test]
    fn pytorch_import_time_first_and_bias_free_layers() {
        let (m, mut sd) = torch_state("net.", [0, 2, 4]);
        let w = sd.tensors.get_mut("net.0.weight").unwrap();
        for row in w.data.chunks_exact_mut(3) {
            row.rotate_right(1); // (w_x1, w_x2, w_t) → (w_t, w_x1, w_x2)
        }
        let (first, _) =
            Mlp::from_pytorch(&sd, Activation::Selu, TimeColumn::First, &cpu(), DType::F64)
                .unwrap();
        let mut ours = StateDict::new();
        m.write_state(&mut ours, "", Some(StoredDType::F64));
        let orig = Mlp::from_state(&ours, "", &m.config, &cpu(), DType::F64).unwrap();
        same_field(&first, &orig);

        let (_, mut sd) = torch_state("", [0, 2, 4]);
        sd.tensors.remove("2.bias");
        let (m, layout) =
            Mlp::from_pytorch(&sd, Activation::Selu, TimeColumn::Last, &cpu(), DType::F64).unwrap();
        assert_eq!(layout.has_bias, vec![true, false, true]);
        let b = to_vec(&m.layers[1].bias.as_ref().unwrap().val());
        assert!(b.iter().all(|v| *v == 0.0));
    }

    /// Everything that is not an nn.Sequential of Linear layers around one raw time column is a
    /// one-line error naming the tensor or the problem.
    #[test]
    fn pytorch_import_refuses_other_networks() {
        let zeros = |shape: &[usize]| HostTensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
            dtype: StoredDType::F32,
        };
        type Edit = Box<dyn Fn(&mut StateDict)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            ("empty", Box::new(|sd| sd.tensors.clear()), "no tensors"),
            (
                "foreign name",
                Box::new(move |sd| sd.insert("net.time_embed", zeros(&[4]))),
                "'net.time_embed' is not named like",
            ),
            (
                "two prefixes",
                Box::new(move |sd| sd.insert("head.6.weight", zeros(&[2, 8]))),
                "two prefixes",
            ),
            (
                "buffer",
                Box::new(move |sd| sd.insert("net.1.running_mean", zeros(&[8]))),
                "not 'running_mean'",
            ),
            (
                "PReLU",
                Box::new(move |sd| sd.insert("net.1.weight", zeros(&[1]))),
                "'net.1.weight' has shape [1], not (out, in)",
            ),
            (
                "bias alone",
                Box::new(move |sd| sd.insert("net.6.bias", zeros(&[2]))),
                "'net.6.bias' has no 'net.6.weight'",
            ),
            (
                "bias length",
                Box::new(move |sd| sd.insert("net.2.bias", zeros(&[7]))),
                "'net.2.bias' has shape [7], expected [8]",
            ),
            (
                "widths do not chain",
                Box::new(move |sd| sd.insert("net.4.weight", zeros(&[2, 9]))),
                "takes 9 inputs, but the layer before gives 8",
            ),
            (
                "adjacent",
                Box::new(move |sd| {
                    sd.insert("net.5.weight", zeros(&[2, 2]));
                    sd.insert("net.5.bias", zeros(&[2]));
                }),
                "'net.4' and 'net.5' are adjacent",
            ),
            (
                "leading module",
                Box::new(|sd| {
                    for p in ["weight", "bias"] {
                        let t = sd.tensors.remove(&format!("net.0.{p}")).unwrap();
                        sd.insert(format!("net.1.{p}"), t);
                    }
                }),
                "first Linear layer is 'net.1.weight', not index 0",
            ),
            (
                "single layer",
                Box::new(move |sd| {
                    sd.tensors.clear();
                    sd.insert("net.0.weight", zeros(&[2, 3]));
                }),
                "one Linear layer",
            ),
            (
                "uneven widths",
                Box::new(move |sd| {
                    sd.insert("net.2.weight", zeros(&[9, 8]));
                    sd.insert("net.2.bias", zeros(&[9]));
                    sd.insert("net.4.weight", zeros(&[2, 9]));
                }),
                "hidden widths [8, 9] differ (at 'net.2.weight')",
            ),
            (
                "no time",
                Box::new(move |sd| sd.insert("net.0.weight", zeros(&[8, 2]))),
                "no time input",
            ),
            (
                "time embedding",
                Box::new(move |sd| sd.insert("net.0.weight", zeros(&[8, 18]))),
                "16 inputs besides x",
            ),
            (
                "not finite",
                Box::new(|sd| sd.tensors.get_mut("net.2.weight").unwrap().data[5] = f64::NAN),
                "'net.2.weight' holds a non-finite value",
            ),
        ];
        for (what, edit, want) in cases {
            let (_, mut sd) = torch_state("net.", [0, 2, 4]);
            edit(&mut sd);
            let e = Mlp::from_pytorch(&sd, Activation::Selu, TimeColumn::Last, &cpu(), DType::F32)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{what}: {e}");
        }
    }

    /// `tests/data/torchcfm/<name>`: a CSV with a header row, as rows of numbers.
    fn torchcfm_csv(name: &str) -> Vec<Vec<f64>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/torchcfm")
            .join(name);
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect()
    }

    /// TorchCFM's `MLP(dim=2, w=64, time_varying=True)` trained by TorchCFM
    /// (`bench/torchcfm_import.py`), imported in `dtype`.
    fn torchcfm_model(dtype: DType) -> Mlp {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/torchcfm/model.safetensors");
        let sd = StateDict::read(&path).unwrap();
        let (m, layout) =
            Mlp::from_pytorch(&sd, Activation::Selu, TimeColumn::Last, &cpu(), dtype).unwrap();
        assert_eq!(layout.prefix, "net.");
        assert_eq!(layout.indices, vec![0, 2, 4, 6]);
        assert_eq!(
            m.config,
            MlpConfig {
                activation: Activation::Selu,
                ..MlpConfig::new(2, 64, 3)
            }
        );
        m
    }

    /// The imported TorchCFM model follows PyTorch's float64 Euler trajectory: 100 steps from
    /// the same 64 N(0, I) points, compared at every 10th step. In f64 both sides round each
    /// forward pass at ~1e-16 relative and 100 steps with a Lipschitz factor e^{L} ≲ e^{10}
    /// amplify that to ≲ 1e-11·|x| (|x| ≤ 9): we require 1e-10 absolute (measured 5.3e-15; the
    /// acceptance is 1e-5). In f32 (the burn MLP and the fused engine, with the same f32
    /// weights) each pass rounds at ~1e-7 relative: we require 1e-5 of the trajectory's scale
    /// (measured 5.0e-7 burn, 4.5e-7 fused).
    #[test]
    fn torchcfm_euler_trajectory_is_reproduced() {
        use crate::fused::FusedMlp;
        use crate::solve::{odeint, Method, OdeOptions};
        let rows = torchcfm_csv("euler.csv");
        let n = rows.iter().filter(|r| r[0] == 0.0).count();
        let opts = OdeOptions::fixed(Method::Euler, 100).with_trajectory();
        for dtype in [DType::F64, DType::F32] {
            let m = torchcfm_model(dtype);
            let fused = FusedMlp::from_mlp(&m);
            let noise: Vec<f64> = rows[..n].iter().flat_map(|r| [r[2], r[3]]).collect();
            let x0 = matrix(noise, n, 2, &cpu(), dtype);
            let fields: Vec<(&str, &dyn VectorField, f64)> = if dtype == DType::F64 {
                vec![("burn f64", &m, 1e-10)]
            } else {
                vec![("burn f32", &m, 1e-5), ("fused f32", &fused, 1e-5)]
            };
            for (what, field, tol) in fields {
                let sol = odeint(field, x0.clone(), 0.0, 1.0, &opts).unwrap();
                let (mut worst, mut scale) = (0.0f64, 0.0f64);
                for chunk in rows.chunks(n) {
                    let step = chunk[0][0] as usize;
                    let got = to_vec(&sol.trajectory[step].1);
                    for (i, r) in chunk.iter().enumerate() {
                        for j in 0..2 {
                            worst = worst.max((got[2 * i + j] - r[2 + j]).abs());
                            scale = scale.max(r[2 + j].abs());
                        }
                    }
                }
                let err = if dtype == DType::F64 {
                    worst
                } else {
                    worst / scale
                };
                assert!(
                    err < tol,
                    "{what}: trajectory error {err:e} (tolerance {tol:e})"
                );
            }
        }
    }

    /// The imported TorchCFM model's log-likelihoods equal torchdiffeq's (dopri5,
    /// rtol = atol = 1e-8, exact divergence, float64, t = 1 → 0, N(0, I) prior) to 1e-3 nats
    /// per point (the acceptance), solved here the same way in one batch of 32. SELU's
    /// derivative jumps (λα → λ) at 0, so the divergence is discontinuous along every path and
    /// dopri5's error control is only first-order reliable across the crossings: at tolerance
    /// 1e-8 the two solvers differ by 1.0e-4 nats (measured; per-point solves at 1e-9 still
    /// differ by 8e-5, so most of it is torchdiffeq's own error), a 10× margin. The paths
    /// themselves (continuous right-hand side) agree far better: the prior term log N(x(0))
    /// to 1e-8 (measured), required to 1e-6.
    #[test]
    fn torchcfm_log_likelihood_is_reproduced() {
        use crate::likelihood::{flow_log_likelihood, Divergence, LikelihoodOptions};
        use crate::solve::OdeOptions;
        let rows = torchcfm_csv("loglik.csv");
        let m = torchcfm_model(DType::F64);
        let x = matrix(
            rows.iter().flat_map(|r| [r[0], r[1]]).collect(),
            rows.len(),
            2,
            &cpu(),
            DType::F64,
        );
        let opts = LikelihoodOptions {
            ode: OdeOptions::dopri5(1e-8, 1e-8),
            divergence: Divergence::Exact,
            round_trip: false,
            chunk: None,
        };
        let lik = flow_log_likelihood(&m, &x, &opts, &mut rng(0)).unwrap();
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        for (i, r) in rows.iter().enumerate() {
            let (ours, torch) = (lik.log_prob[i], r[2]);
            assert!(
                (ours - torch).abs() < 1e-3,
                "point {i} ({}, {}): log p {ours} vs torchdiffeq {torch}",
                r[0],
                r[1]
            );
            let torch_prior = -0.5 * (r[3] * r[3] + r[4] * r[4]) - log_2pi;
            let d = (lik.prior_log_prob[i] - torch_prior).abs();
            assert!(
                d < 1e-6,
                "point {i}: log N(x(0)) {} vs {torch_prior}",
                lik.prior_log_prob[i]
            );
        }
    }
}
