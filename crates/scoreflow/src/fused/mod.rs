//! A fused CPU engine for MLP fields, in the spirit of tiny-cuda-nn's fully fused MLPs: the same
//! network as [`Mlp`] (v_θ(x, t) = W_L act(… act(W₁[x, φ(t)] + b₁) …) + b_L), held as one
//! contiguous f32 buffer and evaluated with the `gemm` crate's kernels (the ones burn's Flex
//! backend uses) on preallocated workspaces, bias and activation fused into one pass.
//!
//! * Sampling: [`FusedMlp`] implements [`VectorField`]; the batch is cut into row tiles (about
//!   1 MiB of activations, e.g. 512 rows at width 512) that pass through every layer on one
//!   thread — large enough to amortise the GEMM's packing of W, small enough to spread over the
//!   workers — and the tiles run in parallel on the current rayon pool (size it with
//!   `ThreadPool::install` or `RAYON_NUM_THREADS`). Each tile costs one GEMM per hidden layer;
//!   nothing is allocated per call once the pooled workspaces have grown.
//! * Exact tangents: with z_l = W_l h_{l−1} + b_l, ḣ_l = act′(z_l) ⊙ (W_l ḣ_{l−1}); the primal rows
//!   and the k tangent blocks are stacked `[H; Ḣ₁; …; Ḣ_k]` so each layer is a single GEMM of
//!   (k + 1)·rows rows ([`FusedMlp::jvp_host`], [`FusedMlp::divergence_host`] with k = d).
//! * Training: [`FusedTrainer`] (forward with saved activations, backward, Adam/AdamW with burn's
//!   semantics, clipping, EMA).
//!
//! * Class conditions: a conditional network's input carries the one-hot e(y) of K + 1 labels,
//!   but W₁ e(y) is row y of W₁'s label block, so the first layer runs its GEMM on the dense
//!   part [x, φ(t)] only and adds one gathered row per point (no GEMM over zeros); in training
//!   the label block's gradient is a scatter-add of the rows of ∂L/∂z₁.
//!
//! The burn [`Mlp`] stays the reference: conversions go both ways ([`FusedMlp::from_mlp`],
//! [`FusedMlp::to_mlp`]) and the tests check outputs, tangents and gradients against it. All
//! arithmetic is f32; f64 tensors given to the [`VectorField`] methods are rounded to f32.

pub mod kernels;
pub mod train;

use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::field::mlp::{linear_from, Mlp, MlpConfig, TimeEmbedding};
use crate::field::VectorField;
use crate::tensor::{matrix, vector, DType, Device, Rng, Tensor, TensorData};
use kernels::MatRef;

pub use train::{FusedTrainer, Optimizer, StepStats, TrainOptions};

/// Layers with at most this many inputs (outputs) use the thin kernels instead of a GEMM.
const THIN: usize = 8;
/// Target size, in floats, of one stacked activation tile (1 MiB: 512 rows of width 512). Larger
/// tiles amortise the GEMM's packing of W over more rows; measured flat from 128 K floats up.
const TILE_FLOATS: usize = 256 * 1024;

/// How a layer is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Few inputs: out = Σⱼ xⱼ W[j, :] row by row.
    SmallIn,
    /// Few outputs: out[o] = h · Wᵀ[o, :] row by row.
    SmallOut,
    /// A GEMM.
    Gemm,
}

/// One affine layer's place in the flat parameter buffer: W `[d_in, d_out]` at `w`, b at `b`.
#[derive(Debug, Clone, Copy)]
struct Layer {
    d_in: usize,
    d_out: usize,
    w: usize,
    b: usize,
}

impl Layer {
    fn kind(&self) -> Kind {
        if self.d_in <= THIN {
            Kind::SmallIn
        } else if self.d_out <= THIN {
            Kind::SmallOut
        } else {
            Kind::Gemm
        }
    }
    fn w_len(&self) -> usize {
        self.d_in * self.d_out
    }
}

/// Reusable per-task buffers (grown on demand, never shrunk).
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    drow: Vec<f32>,
}

/// `buf[..len]`, growing `buf` first if needed.
fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Tangent directions fed with the primal input.
#[derive(Clone, Copy)]
enum Dirs<'a> {
    /// No tangents (plain forward).
    None,
    /// One direction per row, `(rows, d)`.
    Given(&'a [f32]),
    /// The d basis directions e₁ … e_d for every row.
    Basis,
}

/// Where a conditional network's label rows live: W₁ rows `off / d_out ..` of `count` = K + 1
/// labels (the null label last), right after W₁'s dense rows.
#[derive(Debug, Clone, Copy)]
struct LabelBlock {
    off: usize,
    count: usize,
}

/// The MLP field v_θ(x, t | y) of an [`MlpConfig`] with weights in one f32 buffer (layer after
/// layer: W `[d_in, d_out]` row-major, then b), evaluated by fused CPU kernels. Layer 0's
/// [`Layer`] describes its dense rows only; a conditional network's label rows follow them.
pub struct FusedMlp {
    config: MlpConfig,
    layers: Vec<Layer>,
    labels: Option<LabelBlock>,
    params: Vec<f32>,
    /// Wᵀ `[d_out, d_in]` of every layer at the same offsets as in `params` (bias slots unused).
    wt: Vec<f32>,
    /// 2π·fₖ of the Fourier time features (empty for raw time).
    freqs: Vec<f32>,
    pool: Mutex<Vec<Scratch>>,
}

impl Clone for FusedMlp {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            layers: self.layers.clone(),
            labels: self.labels,
            params: self.params.clone(),
            wt: self.wt.clone(),
            freqs: self.freqs.clone(),
            pool: Mutex::new(Vec::new()),
        }
    }
}

impl std::fmt::Debug for FusedMlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedMlp")
            .field("config", &self.config)
            .field("num_params", &self.params.len())
            .finish()
    }
}

impl FusedMlp {
    /// The network of `config` with the given flat parameters (layout in the type's doc).
    pub fn new(config: &MlpConfig, params: Vec<f32>) -> Result<Self> {
        if config.dim == 0 || config.width == 0 {
            return Err(Error::InvalidInput(format!(
                "MLP needs dim >= 1 and width >= 1 (got dim {}, width {})",
                config.dim, config.width
            )));
        }
        if config.out_dim() != config.dim {
            return Err(Error::InvalidInput(format!(
                "the fused engine evaluates fields of R^{} (outputs = d); this network has {} outputs (a classifier: use the burn MLP)",
                config.dim,
                config.out_dim()
            )));
        }
        let mut layers = Vec::new();
        let mut labels = None;
        let mut off = 0;
        for (k, (d_in, d_out)) in config.layer_dims().into_iter().enumerate() {
            // Layer 0 of a conditional network: the dense rows are the layer, the label rows
            // follow them before the bias.
            let dense = if k == 0 && config.classes > 0 {
                labels = Some(LabelBlock {
                    off: off + config.dense_input_dim() * d_out,
                    count: config.label_features(),
                });
                config.dense_input_dim()
            } else {
                d_in
            };
            layers.push(Layer {
                d_in: dense,
                d_out,
                w: off,
                b: off + d_in * d_out,
            });
            off += d_in * d_out + d_out;
        }
        if params.len() != off {
            return Err(Error::Shape(format!(
                "{} parameters given, the architecture {}→{}^{}→{} has {off}",
                params.len(),
                config.input_dim(),
                config.width,
                config.depth,
                config.dim
            )));
        }
        let freqs = match &config.time {
            TimeEmbedding::Raw => Vec::new(),
            TimeEmbedding::Fourier { frequencies } => frequencies
                .iter()
                .map(|f| (2.0 * std::f64::consts::PI * f) as f32)
                .collect(),
        };
        let mut me = Self {
            config: config.clone(),
            layers,
            labels,
            wt: vec![0.0; params.len()],
            params,
            freqs,
            pool: Mutex::new(Vec::new()),
        };
        me.refresh_transposes();
        Ok(me)
    }

    /// A freshly initialised network: exactly the weights [`MlpConfig::init`] draws from `rng`.
    pub fn init(config: &MlpConfig, rng: &mut Rng) -> Self {
        Self::from_mlp(&config.init(&crate::tensor::cpu(), DType::F32, rng))
    }

    /// Copies the weights of a burn [`Mlp`] (any device and dtype; rounded to f32).
    pub fn from_mlp(mlp: &Mlp) -> Self {
        let mut params = Vec::with_capacity(mlp.config.num_params());
        for layer in &mlp.layers {
            params.extend(host_f32(&layer.weight.val()));
            match &layer.bias {
                Some(b) => params.extend(host_f32(&b.val())),
                None => params.extend(std::iter::repeat_n(0.0, layer.weight.val().dims()[1])),
            }
        }
        Self::new(&mlp.config, params).expect("an Mlp's weights match its config")
    }

    /// The same network as a burn [`Mlp`] on `device` in `dtype`.
    pub fn to_mlp(&self, device: &Device, dtype: DType) -> Mlp {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                // Layer 0 of a conditional network: dense and label rows, all of W.
                let d_in = (l.b - l.w) / l.d_out;
                let w = self.params[l.w..l.b].iter().map(|&v| v as f64).collect();
                let b = self.params[l.b..l.b + l.d_out]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                linear_from(
                    matrix(w, d_in, l.d_out, device, dtype),
                    vector(b, device, dtype),
                )
            })
            .collect();
        Mlp {
            layers,
            config: self.config.clone(),
        }
    }

    /// The architecture.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// All parameters, layer after layer: W `[d_in, d_out]` row-major, then b.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// Replaces every parameter (same layout as [`FusedMlp::params`]).
    pub fn set_params(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.params.len() {
            return Err(Error::Shape(format!(
                "{} parameters given, the network has {}",
                params.len(),
                self.params.len()
            )));
        }
        self.params.copy_from_slice(params);
        self.refresh_transposes();
        Ok(())
    }

    /// Recomputes the Wᵀ copies after the parameters changed.
    fn refresh_transposes(&mut self) {
        /// Wᵀ rows per task: small enough to balance the threads, large enough to be worth one.
        const ROWS_PER_JOB: usize = 64;
        let params = &self.params;
        // Layers are contiguous (W then b), so split the copy layer by layer, then into blocks
        // of Wᵀ rows (columns of W).
        let mut jobs: Vec<(Layer, usize, &mut [f32])> = Vec::new();
        let mut rest = self.wt.as_mut_slice();
        for l in &self.layers {
            // W (with any label rows after the dense ones) then b.
            let (block, tail) = std::mem::take(&mut rest).split_at_mut(l.b + l.d_out - l.w);
            for (i, rows) in block[..l.w_len()]
                .chunks_mut(ROWS_PER_JOB * l.d_in)
                .enumerate()
            {
                jobs.push((*l, i * ROWS_PER_JOB, rows));
            }
            rest = tail;
        }
        let work = |(l, c0, dst): (Layer, usize, &mut [f32])| {
            kernels::transpose_cols(&params[l.w..l.w + l.w_len()], l.d_in, l.d_out, c0, dst)
        };
        if params.len() > 1 << 14 {
            jobs.into_par_iter().for_each(work);
        } else {
            jobs.into_iter().for_each(work);
        }
    }

    fn check(&self, n: usize, x: &[f32], t: &[f32], labels: Option<&[usize]>) -> Result<()> {
        let d = self.config.dim;
        if x.len() != n * d {
            return Err(Error::Shape(format!(
                "x has {} values, expected batch {n} × dim {d}",
                x.len()
            )));
        }
        if t.len() != n {
            return Err(Error::Shape(format!(
                "t has {} values, expected one per point ({n})",
                t.len()
            )));
        }
        if let Some(l) = labels {
            let count = self.labels.map_or(0, |b| b.count);
            if l.len() != n {
                return Err(Error::Shape(format!(
                    "{} labels for a batch of {n}",
                    l.len()
                )));
            }
            if let Some(y) = l.iter().find(|&&y| y >= count) {
                return Err(Error::InvalidInput(if count == 0 {
                    format!("label {y} given to an unconditional network")
                } else {
                    format!("label {y} is out of range 0..={}", count - 1)
                }));
            }
        }
        Ok(())
    }

    /// Adds row y of W₁'s label block to the first `rows` rows of `z` (the primal block), y the
    /// row's label (the null label when `labels` is `None`); nothing for an unconditional net.
    fn add_label_rows(&self, z: &mut [f32], rows: usize, labels: Option<&[usize]>) {
        let Some(block) = self.labels else {
            return;
        };
        let w = self.layers[0].d_out;
        for (r, zr) in z[..rows * w].chunks_exact_mut(w).enumerate() {
            let y = labels.map_or(block.count - 1, |l| l[r]);
            let row = &self.params[block.off + y * w..block.off + (y + 1) * w];
            zr.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
    }

    /// v = v_θ(x, t | y) for `x` of shape `(n, d)` row-major, `t` of length n and per-row
    /// labels in `0..=K` (`None`: the null label); writes `v` `(n, d)`.
    pub fn forward_host(
        &self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        v: &mut [f32],
    ) -> Result<()> {
        let n = t.len();
        self.check(n, x, t, labels)?;
        check_out("v", v.len(), n * self.config.dim)?;
        self.run(x, t, labels, Dirs::None, v, &mut [], 0);
        Ok(())
    }

    /// (v, J·u) exactly by stacked forward-mode tangents; `u`, `v`, `jv` are `(n, d)`.
    pub fn jvp_host(
        &self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        u: &[f32],
        v: &mut [f32],
        jv: &mut [f32],
    ) -> Result<()> {
        let n = t.len();
        let d = self.config.dim;
        self.check(n, x, t, labels)?;
        check_out("u", u.len(), n * d)?;
        check_out("v", v.len(), n * d)?;
        check_out("jv", jv.len(), n * d)?;
        self.run(x, t, labels, Dirs::Given(u), v, jv, d);
        Ok(())
    }

    /// (v, ∇·v) exactly: ∇·v = Σᵢ (J eᵢ)ᵢ with the d directions stacked into one GEMM per layer.
    pub fn divergence_host(
        &self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        v: &mut [f32],
        div: &mut [f32],
    ) -> Result<()> {
        let n = t.len();
        self.check(n, x, t, labels)?;
        check_out("v", v.len(), n * self.config.dim)?;
        check_out("div", div.len(), n)?;
        self.run(x, t, labels, Dirs::Basis, v, div, 1);
        Ok(())
    }

    /// (v, J) with J\[b, i, j\] = ∂vᵢ/∂xⱼ, `jac` of length n·d·d (row-major `(n, d, d)`).
    pub fn jacobian_host(
        &self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        v: &mut [f32],
        jac: &mut [f32],
    ) -> Result<()> {
        let n = t.len();
        let d = self.config.dim;
        self.check(n, x, t, labels)?;
        check_out("v", v.len(), n * d)?;
        check_out("jac", jac.len(), n * d * d)?;
        self.run(x, t, labels, Dirs::Basis, v, jac, d * d);
        Ok(())
    }

    /// (v, Jᵀ·w) exactly by one forward pass that keeps act′(z_l) and one reverse pass
    /// gₗ₋₁ = (gₗ ⊙ act′(zₗ)) Wₗᵀ from g = w (the time and label features' share of the input
    /// gradient is dropped); `w`, `v`, `g` are `(n, d)`. Rows are processed in parallel tiles.
    pub fn vjp_host(
        &self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        w: &[f32],
        v: &mut [f32],
        g: &mut [f32],
    ) -> Result<()> {
        check_out("w", w.len(), t.len() * self.config.dim)?;
        self.vjp_host_with(x, t, labels, &mut |_, wo| wo.copy_from_slice(w), v, g)
    }

    /// (v, Jᵀ·w(v)) for a cotangent computed from the whole output: a parallel forward pass
    /// over tiles keeping act′(z_l), then `w(v, w_out)` on all n rows, then the parallel reverse
    /// pass — one forward and one backward pass, as [`FusedMlp::vjp_host`].
    pub fn vjp_host_with(
        &self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        w: &mut dyn FnMut(&[f32], &mut [f32]),
        v: &mut [f32],
        g: &mut [f32],
    ) -> Result<()> {
        let n = t.len();
        let d = self.config.dim;
        self.check(n, x, t, labels)?;
        check_out("v", v.len(), n * d)?;
        check_out("g", g.len(), n * d)?;
        if n == 0 {
            return Ok(());
        }
        let rows = self.tile_rows(n, 1, rayon::current_num_threads());
        let tiles = n.div_ceil(rows);
        let parallel = |f: &(dyn Fn(usize) -> Vec<Vec<f32>> + Sync)| -> Vec<Vec<Vec<f32>>> {
            if tiles == 1 {
                vec![f(0)]
            } else {
                (0..tiles).into_par_iter().map(f).collect()
            }
        };
        // Forward: per tile, act′(zₗ) of every hidden layer and (last) the output rows.
        let tapes = parallel(&|i| {
            let (r0, r1) = (i * rows, ((i + 1) * rows).min(n));
            self.vjp_forward(&x[r0 * d..r1 * d], &t[r0..r1], labels.map(|l| &l[r0..r1]))
        });
        for (i, tape) in tapes.iter().enumerate() {
            let r0 = i * rows;
            let out = tape.last().expect("the output rows");
            v[r0 * d..r0 * d + out.len()].copy_from_slice(out);
        }
        let mut wv = vec![0.0f32; n * d];
        w(v, &mut wv);
        // Reverse: g ← (g ⊙ act′(zₗ)) Wₗᵀ, layer by layer, per tile.
        let grads = parallel(&|i| {
            let (r0, r1) = (i * rows, ((i + 1) * rows).min(n));
            vec![self.vjp_backward(&tapes[i], &wv[r0 * d..r1 * d], r1 - r0)]
        });
        for (i, gt) in grads.into_iter().enumerate() {
            let r0 = i * rows;
            g[r0 * d..r0 * d + gt[0].len()].copy_from_slice(&gt[0]);
        }
        Ok(())
    }

    /// The forward half of a VJP on one tile: act′(zₗ) of every hidden layer, then the output.
    fn vjp_forward(&self, x: &[f32], t: &[f32], labels: Option<&[usize]>) -> Vec<Vec<f32>> {
        let rows = t.len();
        let act = self.config.activation;
        let last = self.layers.len() - 1;
        let mut h = vec![0.0f32; rows * self.layers[0].d_in];
        self.write_input(x, t, &mut h);
        let mut tape: Vec<Vec<f32>> = Vec::with_capacity(last + 1);
        for (li, l) in self.layers.iter().enumerate() {
            let mut z = vec![0.0f32; rows * l.d_out];
            self.affine(l, &h, rows, &mut z);
            if li == 0 {
                self.add_label_rows(&mut z, rows, labels);
            }
            let bias = &self.params[l.b..l.b + l.d_out];
            if li < last {
                let mut next = vec![0.0f32; rows * l.d_out];
                kernels::bias_act_deriv(&mut z, &mut next, bias, act);
                tape.push(z);
                h = next;
            } else {
                kernels::add_bias(&mut z, rows, bias);
                tape.push(z);
            }
        }
        tape
    }

    /// The reverse half of a VJP on one tile: Jᵀw from the tape of [`FusedMlp::vjp_forward`].
    fn vjp_backward(&self, tape: &[Vec<f32>], w: &[f32], rows: usize) -> Vec<f32> {
        let d = self.config.dim;
        let last = self.layers.len() - 1;
        let mut grad = w.to_vec();
        for (li, l) in self.layers.iter().enumerate().rev() {
            if li < last {
                for (a, b) in grad.iter_mut().zip(&tape[li]) {
                    *a *= b;
                }
            }
            let mut below = vec![0.0f32; rows * l.d_in];
            kernels::matmul(
                rows,
                l.d_in,
                l.d_out,
                MatRef::row_major(&grad, l.d_out),
                MatRef::row_major(&self.wt[l.w..l.w + l.w_len()], l.d_in),
                &mut below,
                false,
            );
            grad = below;
        }
        let din = self.layers[0].d_in;
        let mut g = vec![0.0f32; rows * d];
        for (r, out) in g.chunks_exact_mut(d).enumerate() {
            out.copy_from_slice(&grad[r * din..r * din + d]);
        }
        g
    }

    /// Rows per tile for `kb` stacked tangent blocks and `threads` workers: about
    /// `TILE_FLOATS` activations per tile, the tile count rounded up to a multiple of the
    /// thread count so every worker gets the same number of equal tiles.
    fn tile_rows(&self, n: usize, kb: usize, threads: usize) -> usize {
        let widest = self
            .layers
            .iter()
            .map(|l| l.d_in.max(l.d_out))
            .max()
            .unwrap_or(1);
        let by_cache = (TILE_FLOATS / (widest * (kb + 1))).max(16);
        let threads = threads.max(1);
        let tiles = n.div_ceil(by_cache).div_ceil(threads) * threads;
        n.div_ceil(tiles).max(1)
    }

    /// Runs the tiles of a batch (in parallel when there are several) and writes v and, per
    /// row, `tan_width` tangent outputs (jv: d, divergence: 1, Jacobian: d²).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        dirs: Dirs,
        v: &mut [f32],
        tan: &mut [f32],
        tan_width: usize,
    ) {
        let n = t.len();
        if n == 0 {
            return;
        }
        let d = self.config.dim;
        let kb = match dirs {
            Dirs::None => 0,
            Dirs::Given(_) => 1,
            Dirs::Basis => d,
        };
        let rows = self.tile_rows(n, kb, rayon::current_num_threads());
        let tiles = n.div_ceil(rows);
        let v_parts: Vec<&mut [f32]> = v.chunks_mut(rows * d).collect();
        let tan_parts: Vec<&mut [f32]> = if tan_width == 0 {
            (0..tiles).map(|_| <&mut [f32]>::default()).collect()
        } else {
            tan.chunks_mut(rows * tan_width).collect()
        };
        let job = |(i, (vp, tp)): (usize, (&mut [f32], &mut [f32]))| {
            let r0 = i * rows;
            let r = vp.len() / d;
            let mut s = self
                .pool
                .lock()
                .map(|mut p| p.pop())
                .ok()
                .flatten()
                .unwrap_or_default();
            let tile_dirs = match dirs {
                Dirs::Given(u) => Dirs::Given(&u[r0 * d..(r0 + r) * d]),
                other => other,
            };
            let out = self.tile(
                &mut s,
                &x[r0 * d..(r0 + r) * d],
                &t[r0..r0 + r],
                labels.map(|l| &l[r0..r0 + r]),
                tile_dirs,
            );
            vp.copy_from_slice(&out[..r * d]);
            match dirs {
                Dirs::None => {}
                Dirs::Given(_) => tp.copy_from_slice(&out[r * d..2 * r * d]),
                Dirs::Basis => {
                    // Block i holds J eᵢ (column i of J) for every row.
                    for b in 0..r {
                        if tan_width == 1 {
                            tp[b] = (0..d).map(|i| out[(1 + i) * r * d + b * d + i]).sum();
                        } else {
                            for i in 0..d {
                                for j in 0..d {
                                    tp[b * d * d + i * d + j] = out[(1 + j) * r * d + b * d + i];
                                }
                            }
                        }
                    }
                }
            }
            if let Ok(mut p) = self.pool.lock() {
                p.push(s);
            }
        };
        if tiles == 1 {
            v_parts.into_iter().zip(tan_parts).enumerate().for_each(job);
        } else {
            v_parts
                .into_par_iter()
                .zip(tan_parts)
                .enumerate()
                .for_each(job);
        }
    }

    /// Writes the network input [x, φ(t)] of `rows` points into `inp` (`rows × d_in`).
    fn write_input(&self, x: &[f32], t: &[f32], inp: &mut [f32]) {
        let d = self.config.dim;
        let din = self.layers[0].d_in;
        let k = self.freqs.len();
        for (r, row) in inp.chunks_exact_mut(din).enumerate() {
            row[..d].copy_from_slice(&x[r * d..(r + 1) * d]);
            if k == 0 {
                row[d] = t[r];
            } else {
                for (j, f) in self.freqs.iter().enumerate() {
                    let a = t[r] * f;
                    row[d + j] = a.sin();
                    row[d + k + j] = a.cos();
                }
            }
        }
    }

    /// y = x·W (no bias) for `rows` rows of layer `l`, by the layer's kernel.
    fn affine(&self, l: &Layer, inp: &[f32], rows: usize, out: &mut [f32]) {
        let (inp, out) = (&inp[..rows * l.d_in], &mut out[..rows * l.d_out]);
        match l.kind() {
            Kind::SmallIn => {
                kernels::affine_small_k(inp, l.d_in, &self.params[l.w..l.w + l.w_len()], None, out)
            }
            Kind::SmallOut => {
                kernels::rows_dot(inp, l.d_in, &self.wt[l.w..l.w + l.w_len()], None, out)
            }
            Kind::Gemm => kernels::matmul(
                rows,
                l.d_out,
                l.d_in,
                MatRef::row_major(inp, l.d_in),
                MatRef::row_major(&self.params[l.w..l.w + l.w_len()], l.d_out),
                out,
                false,
            ),
        }
    }

    /// One tile: the stacked rows `[x; u₁; …; u_k]` through every layer. Returns the stacked
    /// output ((k + 1)·rows × d) in the scratch.
    fn tile<'s>(
        &self,
        s: &'s mut Scratch,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        dirs: Dirs,
    ) -> &'s [f32] {
        let d = self.config.dim;
        let rows = t.len();
        let kb = match dirs {
            Dirs::None => 0,
            Dirs::Given(_) => 1,
            Dirs::Basis => d,
        };
        let stacked = (kb + 1) * rows;
        let din = self.layers[0].d_in;
        {
            let inp = grown(&mut s.a, stacked * din);
            let (primal, tangents) = inp.split_at_mut(rows * din);
            self.write_input(x, t, primal);
            tangents.fill(0.0);
            for (blk, block) in tangents.chunks_exact_mut(rows * din).enumerate() {
                for (r, row) in block.chunks_exact_mut(din).enumerate() {
                    match dirs {
                        Dirs::Given(u) => row[..d].copy_from_slice(&u[r * d..(r + 1) * d]),
                        Dirs::Basis => row[blk] = 1.0,
                        Dirs::None => {}
                    }
                }
            }
        }
        let last = self.layers.len() - 1;
        let act = self.config.activation;
        for (li, l) in self.layers.iter().enumerate() {
            let out = grown(&mut s.b, stacked * l.d_out);
            self.affine(l, &s.a, stacked, out);
            if li == 0 {
                // Labels do not move with x: the tangent rows get nothing.
                self.add_label_rows(out, rows, labels);
            }
            let bias = &self.params[l.b..l.b + l.d_out];
            if li < last {
                if kb == 0 {
                    kernels::bias_act(out, bias, act);
                } else {
                    let drow = grown(&mut s.drow, l.d_out);
                    kernels::bias_act_tangents(out, rows, bias, act, drow);
                }
            } else {
                kernels::add_bias(out, rows, bias);
            }
            std::mem::swap(&mut s.a, &mut s.b);
        }
        &s.a[..stacked * d]
    }
}

fn check_out(name: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{name} has {got} values, expected {want}"
        )))
    }
}

/// A float tensor's values as host f32 (row-major).
pub(crate) fn host_f32<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data()
        .try_into_vec_as::<f32>()
        .expect("float tensor converts to f32")
}

/// A `(rows, cols)` tensor from host f32 values, on `like`'s device and dtype.
fn tensor_like<const D: usize, const E: usize>(
    data: Vec<f32>,
    shape: [usize; E],
    like: &Tensor<D>,
) -> Tensor<E> {
    Tensor::from_data(TensorData::new(data, shape), (&like.device(), like.dtype()))
}

/// # Panics
/// The trait returns tensors, not `Result`s: a batch whose width is not the field's dimension, or
/// whose time vector has another length, is a programming error and panics (as burn does).
impl VectorField for FusedMlp {
    fn dim(&self) -> usize {
        self.config.dim
    }

    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let [n, d] = x.dims();
        let mut v = vec![0.0; n * d];
        self.forward_host(&host_f32(x), &host_f32(t), None, &mut v)
            .unwrap_or_else(|e| panic!("FusedMlp::eval: {e}"));
        tensor_like(v, [n, d], x)
    }

    fn eval_at(&self, x: &Tensor<2>, t: f64) -> Tensor<2> {
        let [n, d] = x.dims();
        let mut v = vec![0.0; n * d];
        self.forward_host(&host_f32(x), &vec![t as f32; n], None, &mut v)
            .unwrap_or_else(|e| panic!("FusedMlp::eval_at: {e}"));
        tensor_like(v, [n, d], x)
    }

    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.jvp_given(x, t, None, u)
    }

    fn exact_jvp(&self) -> bool {
        true
    }

    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        self.divergence_given(x, t, None)
    }

    fn jacobian(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<3>) {
        let [n, d] = x.dims();
        let (mut v, mut jac) = (vec![0.0; n * d], vec![0.0; n * d * d]);
        self.jacobian_host(&host_f32(x), &host_f32(t), None, &mut v, &mut jac)
            .unwrap_or_else(|e| panic!("FusedMlp::jacobian: {e}"));
        (tensor_like(v, [n, d], x), tensor_like(jac, [n, d, d], x))
    }

    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.vjp_given(x, t, None, &|_| w.clone())
    }

    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.vjp_given(x, t, None, w)
    }
}

/// Tensor-level evaluation with per-row labels in `0..=K` (`None`: the null label), for the
/// [`Network`](crate::field::network::Network) impl.
///
/// # Panics
/// As the [`VectorField`] methods: on shapes or labels out of range (programming errors).
impl FusedMlp {
    /// v_θ(x, t | y).
    pub fn eval_given(&self, x: &Tensor<2>, t: &Tensor<1>, labels: Option<&[usize]>) -> Tensor<2> {
        let [n, d] = x.dims();
        let mut v = vec![0.0; n * d];
        self.forward_host(&host_f32(x), &host_f32(t), labels, &mut v)
            .unwrap_or_else(|e| panic!("FusedMlp::eval: {e}"));
        tensor_like(v, [n, d], x)
    }

    /// (v, J·u) given labels.
    pub fn jvp_given(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let [n, d] = x.dims();
        let (mut v, mut jv) = (vec![0.0; n * d], vec![0.0; n * d]);
        self.jvp_host(
            &host_f32(x),
            &host_f32(t),
            labels,
            &host_f32(u),
            &mut v,
            &mut jv,
        )
        .unwrap_or_else(|e| panic!("FusedMlp::jvp: {e}"));
        (tensor_like(v, [n, d], x), tensor_like(jv, [n, d], x))
    }

    /// (v, ∇·v) given labels.
    pub fn divergence_given(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
    ) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = x.dims();
        let (mut v, mut div) = (vec![0.0; n * d], vec![0.0; n]);
        self.divergence_host(&host_f32(x), &host_f32(t), labels, &mut v, &mut div)
            .unwrap_or_else(|e| panic!("FusedMlp::divergence: {e}"));
        (tensor_like(v, [n, d], x), tensor_like(div, [n], x))
    }

    /// (v, Jᵀ·w(v)) given labels: one forward and one backward pass.
    pub fn vjp_given(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let [n, d] = x.dims();
        let (mut v, mut g) = (vec![0.0; n * d], vec![0.0; n * d]);
        let mut cot = |vv: &[f32], wo: &mut [f32]| {
            let w = host_f32(&w(&tensor_like(vv.to_vec(), [n, d], x)));
            wo.copy_from_slice(&w);
        };
        self.vjp_host_with(&host_f32(x), &host_f32(t), labels, &mut cot, &mut v, &mut g)
            .unwrap_or_else(|e| panic!("FusedMlp::vjp: {e}"));
        (tensor_like(v, [n, d], x), tensor_like(g, [n, d], x))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::field::mlp::Activation;
    use crate::tensor::{cpu, randn, rng, to_vec, uniform};

    /// Architectures that exercise every kernel path: thin input/output layers, GEMM input and
    /// output layers (dim > 8), hidden widths below and above the thin threshold, depth 0,
    /// Fourier time features and every activation (TorchCFM's 3 → 64 × 3 → 2 SELU among them).
    pub(crate) fn configs() -> Vec<MlpConfig> {
        let mut r = rng(11);
        vec![
            MlpConfig::new(2, 16, 3),
            MlpConfig {
                activation: Activation::Tanh,
                time: TimeEmbedding::fourier(4, 1.0, &mut r),
                ..MlpConfig::new(3, 72, 2)
            },
            MlpConfig {
                activation: Activation::Softplus,
                ..MlpConfig::new(2, 8, 2)
            },
            MlpConfig {
                activation: Activation::Relu,
                ..MlpConfig::new(12, 24, 1)
            },
            MlpConfig::new(2, 5, 0),
            MlpConfig {
                activation: Activation::Gelu,
                ..MlpConfig::new(2, 24, 2)
            },
            MlpConfig {
                activation: Activation::GeluTanh,
                time: TimeEmbedding::fourier(3, 1.0, &mut r),
                ..MlpConfig::new(2, 16, 2)
            },
            MlpConfig {
                activation: Activation::Selu,
                ..MlpConfig::new(2, 64, 3)
            },
            MlpConfig {
                activation: Activation::Elu,
                ..MlpConfig::new(10, 12, 2)
            },
        ]
    }

    /// The f32 activation kernels (sampling pass `bias_act` and training pass `bias_act_deriv`)
    /// agree with PyTorch's float64 modules and autograd on the fixture grid z ∈ [−10, 10]
    /// (`tests/data/activations.csv`, every z an f32): |ours − torch| ≤ 4e-7·|torch| + 2.5e-7.
    /// The relative part is the kernels' few-ulp accuracy (see the kernels' tests); the
    /// absolute part, ~4 ulp of 1, covers values that are differences of O(1) terms, e.g.
    /// GELU′ = Φ + zφ near its zero at z ≈ −0.75 and SiLU′ near z ≈ −1.28.
    #[test]
    fn activation_kernels_match_pytorch() {
        let (z, acts) = crate::field::activation::tests::torch_fixture();
        let zf: Vec<f32> = z.iter().map(|&v| v as f32).collect();
        let bias = vec![0.0f32; z.len()];
        for (act, f, df) in acts {
            let mut h = vec![0.0f32; z.len()];
            let mut d = zf.clone();
            kernels::bias_act_deriv(&mut d, &mut h, &bias, act);
            let mut h2 = zf.clone();
            kernels::bias_act(&mut h2, &bias, act);
            assert_eq!(h, h2, "{act}: sampling and training passes differ");
            for i in 0..z.len() {
                for (what, a, b) in [("act", h[i], f[i]), ("act'", d[i], df[i])] {
                    assert!(
                        (a as f64 - b).abs() <= 4e-7 * b.abs() + 2.5e-7,
                        "{act} {what}({}) = {a:e}, PyTorch {b:e}",
                        z[i]
                    );
                }
            }
        }
    }

    /// Max |a − b| / max |b|: the error relative to the scale of the reference.
    pub(crate) fn rel_err(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
            / scale
    }

    /// (burn f64 reference, fused copy, x, t) for a config, n points.
    fn setup(cfg: &MlpConfig, n: usize, seed: u64) -> (Mlp, FusedMlp, Tensor<2>, Tensor<1>) {
        let mut r = rng(seed);
        let mlp = cfg.init(&cpu(), DType::F64, &mut r);
        // Round the reference weights to f32 so both engines hold the same numbers.
        let fused = FusedMlp::from_mlp(&mlp);
        let mlp = fused.to_mlp(&cpu(), DType::F64);
        let x = randn(n, cfg.dim, &cpu(), DType::F64, &mut r) * 1.5;
        let t = uniform(n, 0.0, 1.0, &cpu(), DType::F64, &mut r);
        (mlp, fused, x, t)
    }

    fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(f)
    }

    /// Outputs agree with the burn f64 reference to 1e-5 of the output scale. f32 arithmetic with
    /// k-term dot products (k ≤ 40 here) loses ~√k·2⁻²⁴ ≈ 4e-7 per layer, so 1e-5 leaves a wide
    /// margin while catching any indexing or kernel error (those give O(1) differences). Batches
    /// of 37 and 301 points with 1 and 3 threads exercise single- and multi-tile runs.
    #[test]
    fn forward_matches_burn_reference() {
        for cfg in configs() {
            for (n, threads) in [(37, 1), (301, 3)] {
                let (mlp, fused, x, t) = setup(&cfg, n, 3);
                let want = to_vec(&mlp.forward(&x, &t));
                let got = to_vec(&in_pool(threads, || fused.eval(&x, &t)));
                let e = rel_err(&got, &want);
                assert!(e < 1e-5, "{cfg:?} n={n}: forward error {e:e}");
            }
        }
    }

    /// Jᵀ·w agrees with the burn reference's exact VJP (same tolerance and reasoning as the
    /// forward test), on single- and multi-tile batches.
    #[test]
    fn vjp_matches_burn_reference() {
        for cfg in configs() {
            for (n, threads) in [(41, 1), (700, 3)] {
                let (mlp, fused, x, t) = setup(&cfg, n, 13);
                let w = randn(n, cfg.dim, &cpu(), DType::F64, &mut rng(17));
                let (v_ref, g_ref) = mlp.forward_vjp(&x, &t, None, &w);
                let (v, g) = in_pool(threads, || VectorField::vjp(&fused, &x, &t, &w));
                assert!(
                    rel_err(&to_vec(&v), &to_vec(&v_ref)) < 1e-5,
                    "{cfg:?}: vjp primal"
                );
                let e = rel_err(&to_vec(&g), &to_vec(&g_ref));
                assert!(e < 1e-5, "{cfg:?} n={n}: vjp error {e:e}");
            }
        }
    }

    /// J·u, ∇·v and J agree with burn's forward-mode tangents (same tolerance and reasoning as
    /// the forward test).
    #[test]
    fn tangents_match_burn_reference() {
        for cfg in configs() {
            let (mlp, fused, x, t) = setup(&cfg, 53, 5);
            let u = randn(53, cfg.dim, &cpu(), DType::F64, &mut rng(9));
            let (v_ref, jv_ref) = mlp.forward_jvp(&x, &t, None, &u);
            let (v, jv) = in_pool(2, || fused.jvp(&x, &t, &u));
            assert!(
                rel_err(&to_vec(&v), &to_vec(&v_ref)) < 1e-5,
                "{cfg:?}: jvp primal"
            );
            let e = rel_err(&to_vec(&jv), &to_vec(&jv_ref));
            assert!(e < 1e-5, "{cfg:?}: jvp error {e:e}");
            let (_, div_ref) = mlp.forward_divergence(&x, &t, None);
            let (_, div) = in_pool(2, || fused.divergence(&x, &t));
            let e = rel_err(&to_vec(&div), &to_vec(&div_ref));
            assert!(e < 1e-5, "{cfg:?}: divergence error {e:e}");
            // The Jacobian against d reference JVPs along the basis (column j = J eⱼ).
            let (_, jac) = fused.jacobian(&x, &t);
            let jac = to_vec(&jac);
            let d = cfg.dim;
            for j in 0..d {
                let (_, col) = mlp.forward_jvp(&x, &t, None, &crate::field::basis_like(&x, j));
                let col = to_vec(&col);
                let got: Vec<f64> = (0..53 * d)
                    .map(|k| jac[(k / d) * d * d + (k % d) * d + j])
                    .collect();
                let e = rel_err(&got, &col);
                assert!(e < 1e-5, "{cfg:?}: Jacobian column {j} error {e:e}");
            }
        }
    }

    /// Class-conditional architectures (thin and GEMM first layers, Fourier time, depth 0).
    pub(crate) fn conditional_configs() -> Vec<MlpConfig> {
        let mut r = rng(12);
        vec![
            MlpConfig::new(2, 16, 2).with_classes(3),
            MlpConfig {
                time: TimeEmbedding::fourier(4, 1.0, &mut r),
                ..MlpConfig::new(3, 24, 1)
            }
            .with_classes(8),
            MlpConfig::new(2, 5, 0).with_classes(2),
        ]
    }

    /// A conditional network's fused evaluation (label rows gathered into the first layer)
    /// agrees with burn's, which concatenates the explicit one-hot e(y) and multiplies by all
    /// of W₁: forward, J·u, ∇·v and Jᵀw, with every label including the null one K (same
    /// tolerance and reasoning as the unconditional tests). Through the `Network` trait a
    /// dropped row (`None`) is the null label and `Condition::None` is the null label
    /// everywhere; labels change the output (the check is not vacuous).
    #[test]
    fn conditional_networks_match_burn_reference() {
        use crate::field::network::{Condition, Network};
        for cfg in conditional_configs() {
            let n = 57;
            let (mlp, fused, x, t) = setup(&cfg, n, 3);
            let k = cfg.classes;
            let labels: Vec<usize> = (0..n).map(|i| i % (k + 1)).collect();
            let l = Some(labels.as_slice());
            let want = to_vec(&mlp.forward_given(&x, &t, l));
            let got = to_vec(&in_pool(3, || fused.eval_given(&x, &t, l)));
            assert!(rel_err(&got, &want) < 1e-5, "{cfg:?}: forward");
            let other: Vec<usize> = labels.iter().map(|y| (y + 1) % (k + 1)).collect();
            let moved = to_vec(&fused.eval_given(&x, &t, Some(&other)));
            assert!(rel_err(&moved, &want) > 1e-3, "{cfg:?}: labels are ignored");
            let u = randn(n, cfg.dim, &cpu(), DType::F64, &mut rng(9));
            let (_, jv_ref) = mlp.forward_jvp(&x, &t, l, &u);
            let (_, jv) = fused.jvp_given(&x, &t, l, &u);
            assert!(
                rel_err(&to_vec(&jv), &to_vec(&jv_ref)) < 1e-5,
                "{cfg:?}: jvp"
            );
            let (_, div_ref) = mlp.forward_divergence(&x, &t, l);
            let (_, div) = fused.divergence_given(&x, &t, l);
            assert!(
                rel_err(&to_vec(&div), &to_vec(&div_ref)) < 1e-5,
                "{cfg:?}: div"
            );
            let (_, g_ref) = mlp.forward_vjp(&x, &t, l, &u);
            let (_, g) = in_pool(3, || fused.vjp_given(&x, &t, l, &|_| u.clone()));
            assert!(rel_err(&to_vec(&g), &to_vec(&g_ref)) < 1e-5, "{cfg:?}: vjp");
            // The trait: per-row Option labels, None = the null label K.
            let cond = Condition::Labels(labels.iter().map(|&y| (y < k).then_some(y)).collect());
            let via = to_vec(&Network::forward(&fused, &x, &t, &cond));
            assert!(rel_err(&via, &want) < 1e-5, "{cfg:?}: Network::forward");
            let null = to_vec(&Network::forward(&mlp, &x, &t, &Condition::None));
            let all_k = to_vec(&mlp.forward_given(&x, &t, Some(&vec![k; n])));
            assert_eq!(null, all_k, "{cfg:?}: Condition::None is the null label");
            // Out-of-range labels and wrong counts are errors of the host API.
            let (xh, th) = (host_f32(&x), host_f32(&t));
            let mut v = vec![0.0; n * cfg.dim];
            assert!(fused
                .forward_host(&xh, &th, Some(&vec![k + 1; n]), &mut v)
                .is_err());
            assert!(fused.forward_host(&xh, &th, Some(&[0]), &mut v).is_err());
        }
    }

    /// burn → fused → burn is the identity on f32 weights, and `init` draws what
    /// `MlpConfig::init` draws.
    #[test]
    fn conversion_round_trip_and_init() {
        let cfg = configs().swap_remove(1);
        let mlp = cfg.init(&cpu(), DType::F32, &mut rng(4));
        let back = FusedMlp::from_mlp(&mlp).to_mlp(&cpu(), DType::F32);
        for (a, b) in mlp.layers.iter().zip(&back.layers) {
            assert_eq!(to_vec(&a.weight.val()), to_vec(&b.weight.val()));
            assert_eq!(
                to_vec(&a.bias.as_ref().unwrap().val()),
                to_vec(&b.bias.as_ref().unwrap().val())
            );
        }
        assert_eq!(
            FusedMlp::init(&cfg, &mut rng(4)).params(),
            FusedMlp::from_mlp(&mlp).params()
        );
        assert_eq!(FusedMlp::from_mlp(&mlp).num_params(), cfg.num_params());
    }

    /// Wrong sizes are errors, not panics.
    #[test]
    fn bad_shapes_are_errors() {
        let cfg = MlpConfig::new(2, 8, 1);
        assert!(matches!(
            FusedMlp::new(&cfg, vec![0.0; 3]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            FusedMlp::new(&MlpConfig::new(0, 8, 1), vec![]),
            Err(Error::InvalidInput(_))
        ));
        let mut f = FusedMlp::init(&cfg, &mut rng(1));
        let mut v = vec![0.0; 4];
        assert!(matches!(
            f.forward_host(&[0.0; 3], &[0.0; 2], None, &mut v),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            f.forward_host(&[0.0; 4], &[0.0; 3], None, &mut v),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            f.forward_host(&[0.0; 4], &[0.0; 2], None, &mut v[..3]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            f.divergence_host(&[0.0; 4], &[0.0; 2], None, &mut v, &mut [0.0; 3]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(f.set_params(&[1.0]), Err(Error::Shape(_))));
        assert!(f.forward_host(&[], &[], None, &mut []).is_ok());
    }

    /// Euler sampling through `odeint` with the fused field reproduces the burn field's path.
    #[test]
    fn odeint_with_fused_field_matches_burn() {
        use crate::solve::{odeint, Method, OdeOptions};
        let (mlp, fused, x, _) = setup(&MlpConfig::new(2, 32, 3), 200, 8);
        let opts = OdeOptions::fixed(Method::Euler, 20);
        let a = odeint(&mlp, x.clone(), 0.0, 1.0, &opts).expect("burn solve");
        let b = odeint(&fused, x, 0.0, 1.0, &opts).expect("fused solve");
        let e = rel_err(&to_vec(&b.x), &to_vec(&a.x));
        assert!(e < 1e-5, "Euler endpoint error {e:e}");
    }
}
