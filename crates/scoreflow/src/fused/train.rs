//! Training a [`FusedMlp`] on weighted regressions L(θ) = (1/(n·d)) Σ_b w_b ‖v_θ(x_b, t_b) − y_b‖²
//! (an [`objective::RegressionBatch`](crate::objective::RegressionBatch): flow matching, DSM) with
//! the Adam/AdamW semantics of burn-optim, global-norm clipping and an EMA of the weights.
//!
//! One step: the batch is split into one contiguous row range per worker; each worker runs the
//! forward pass keeping h_l = act(z_l) and act′(z_l), then the backward pass
//! ∂L/∂z_l = act′(z_l) ⊙ (∂L/∂z_{l+1} W_{l+1}ᵀ), ∂L/∂W_l = h_{l−1}ᵀ ∂L/∂z_l, ∂L/∂b_l = Σ_rows ∂L/∂z_l
//! into its own gradient buffer (three GEMMs per hidden layer, all on the worker's thread); the
//! buffers are then summed, the global norm ‖g‖₂ taken, and the optimiser applied — in parallel
//! over parameter blocks. One fork–join per phase, no allocation once the buffers have grown.

use rayon::prelude::*;

use super::kernels::{self, AdamScalars, MatRef};
use super::{grown, host_f32, FusedMlp, Kind, Layer, THIN};
use crate::error::{Error, Result};
use crate::objective::RegressionBatch;

/// The optimiser, with burn-optim's formulas (`AdamConfig`, `AdamWConfig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Adam: θ ← θ − lr·m̂/(√v̂ + ε) with g ← g + λθ when `weight_decay` = Some(λ) (L2 penalty,
    /// burn's `WeightDecayConfig`).
    Adam {
        /// L2 penalty λ.
        weight_decay: Option<f64>,
    },
    /// AdamW: θ ← (1 − lr·λ)θ − lr·m̂/(√v̂ + ε) (decoupled weight decay).
    AdamW {
        /// Decoupled weight decay λ.
        weight_decay: f64,
    },
}

/// Options of a [`FusedTrainer`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Adam or AdamW.
    pub optimizer: Optimizer,
    /// β₁ (first-moment decay).
    pub beta1: f64,
    /// β₂ (second-moment decay).
    pub beta2: f64,
    /// ε (PyTorch's default 1e-8; burn's default is 1e-5).
    pub epsilon: f64,
    /// Clip to this global L2 norm: g ← g·min(1, c/(‖g‖₂ + 1e-6)) (PyTorch's `clip_grad_norm_`).
    pub grad_clip: Option<f64>,
    /// EMA decay γ: θ_ema ← γ·θ_ema + (1 − γ)·θ after every step, θ_ema starting at θ₀.
    pub ema_decay: Option<f64>,
    /// EMA warm-up: the n-th update (n = 0, 1, …) uses γ_n = min(γ, (1 + n)/(10 + n)).
    pub ema_warmup: bool,
}

impl Default for TrainOptions {
    /// Adam, β = (0.9, 0.999), ε = 1e-8, no clipping, no EMA.
    fn default() -> Self {
        Self {
            optimizer: Optimizer::Adam { weight_decay: None },
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            grad_clip: None,
            ema_decay: None,
            ema_warmup: false,
        }
    }
}

impl TrainOptions {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad(format!(
                "Adam betas must lie in [0, 1) (got {}, {})",
                self.beta1, self.beta2
            ));
        }
        if self.epsilon.is_nan() || self.epsilon <= 0.0 {
            return bad(format!("Adam epsilon must be > 0 (got {})", self.epsilon));
        }
        if let Some(c) = self.grad_clip {
            if c.is_nan() || c <= 0.0 {
                return bad(format!("gradient clipping norm must be > 0 (got {c})"));
            }
        }
        if let Some(g) = self.ema_decay {
            if !(0.0..=1.0).contains(&g) {
                return bad(format!("EMA decay must lie in [0, 1] (got {g})"));
            }
        }
        let wd = match self.optimizer {
            Optimizer::Adam { weight_decay } => weight_decay.unwrap_or(0.0),
            Optimizer::AdamW { weight_decay } => weight_decay,
        };
        if wd.is_nan() || wd < 0.0 {
            return bad(format!("weight decay must be >= 0 (got {wd})"));
        }
        Ok(())
    }
}

/// What one optimiser step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The loss before the update.
    pub loss: f64,
    /// ‖∇L‖₂ over all parameters, before clipping.
    pub grad_norm: f64,
}

/// One worker's slice of the batch: inputs, saved activations and its partial gradient.
#[derive(Default)]
struct Tape {
    inp: Vec<f32>,
    /// act′(z_l) of every hidden layer.
    deriv: Vec<Vec<f32>>,
    /// h_l = act(z_l) of every hidden layer.
    h: Vec<Vec<f32>>,
    out: Vec<f32>,
    g: Vec<f32>,
    g_prev: Vec<f32>,
    tmp: Vec<f32>,
    grads: Vec<f32>,
    loss_sum: f64,
}

/// Batch rows per worker below which the step is not split further.
const MIN_ROWS_PER_WORKER: usize = 32;
/// Parameter block handled by one task in the reduction and the optimiser update.
const PARAM_BLOCK: usize = 1 << 13;

/// Trains a [`FusedMlp`]: forward, backward, Adam/AdamW, clipping and EMA on host buffers.
pub struct FusedTrainer {
    model: FusedMlp,
    opts: TrainOptions,
    m: Vec<f32>,
    v: Vec<f32>,
    ema: Vec<f32>,
    grads: Vec<f32>,
    steps: usize,
    tapes: Vec<Tape>,
}

impl std::fmt::Debug for FusedTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedTrainer")
            .field("model", &self.model)
            .field("opts", &self.opts)
            .field("steps", &self.steps)
            .finish()
    }
}

impl FusedTrainer {
    /// A trainer starting from `model` (moments zero, EMA = the initial weights).
    pub fn new(model: FusedMlp, opts: TrainOptions) -> Result<Self> {
        opts.validate()?;
        let n = model.num_params();
        let ema = if opts.ema_decay.is_some() {
            model.params().to_vec()
        } else {
            Vec::new()
        };
        Ok(Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            ema,
            grads: vec![0.0; n],
            steps: 0,
            tapes: Vec::new(),
            model,
            opts,
        })
    }

    /// The current weights.
    pub fn model(&self) -> &FusedMlp {
        &self.model
    }

    /// The options.
    pub fn options(&self) -> &TrainOptions {
        &self.opts
    }

    /// The EMA weights as a network (None without EMA).
    pub fn ema_model(&self) -> Option<FusedMlp> {
        if self.ema.is_empty() {
            return None;
        }
        let mut m = self.model.clone();
        m.set_params(&self.ema).expect("EMA has the model's size");
        Some(m)
    }

    /// The EMA parameters (empty without EMA).
    pub fn ema_params(&self) -> &[f32] {
        &self.ema
    }

    /// Optimiser steps taken (t in the bias corrections 1 − βᵗ).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Adam's moments (m, v), in the parameter layout.
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }

    /// ∇L of the last [`FusedTrainer::loss_and_grad_host`] or step, before clipping.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// Restores a saved state: the step count, Adam's moments and (with EMA) the EMA weights.
    pub fn restore(
        &mut self,
        steps: usize,
        m: &[f32],
        v: &[f32],
        ema: Option<&[f32]>,
    ) -> Result<()> {
        let n = self.model.num_params();
        if m.len() != n || v.len() != n || ema.is_some_and(|e| e.len() != n) {
            return Err(Error::Shape(format!(
                "optimiser state does not match the network's {n} parameters"
            )));
        }
        self.steps = steps;
        self.m.copy_from_slice(m);
        self.v.copy_from_slice(v);
        match (ema, self.opts.ema_decay.is_some()) {
            (Some(e), true) => self.ema.copy_from_slice(e),
            (None, false) => {}
            (Some(_), false) => {
                return Err(Error::InvalidInput(
                    "EMA weights given but EMA is off".into(),
                ))
            }
            (None, true) => {
                return Err(Error::InvalidInput(
                    "EMA is on but no EMA weights were given".into(),
                ))
            }
        }
        Ok(())
    }

    /// Replaces the current weights (e.g. loaded from a checkpoint).
    pub fn set_params(&mut self, params: &[f32]) -> Result<()> {
        self.model.set_params(params)
    }

    /// One optimiser step on a regression batch at learning rate `lr` (its condition becomes
    /// per-row labels of a conditional network; an error for an unconditional one).
    pub fn step(&mut self, batch: &RegressionBatch, lr: f64) -> Result<StepStats> {
        let x = host_f32(&batch.x);
        let t = host_f32(&batch.t);
        let y = host_f32(&batch.target);
        let w = batch.weight.as_ref().map(host_f32);
        let n = t.len();
        let classes = self.model.config.classes;
        batch.condition.validate(classes, Some(n))?;
        let labels = batch.condition.label_rows(classes, n);
        self.step_host(&x, &t, labels.as_deref(), &y, w.as_deref(), lr)
    }

    /// One optimiser step on host data: `x`, `target` `(n, d)` row-major, `t` and `weight` `(n,)`,
    /// labels per row in `0..=K` for a conditional network (`None`: the null label).
    ///
    /// A non-finite loss or gradient returns [`Error::Diverged`] and leaves the weights unchanged.
    #[allow(clippy::too_many_arguments)]
    pub fn step_host(
        &mut self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        target: &[f32],
        weight: Option<&[f32]>,
        lr: f64,
    ) -> Result<StepStats> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "learning rate must be finite and >= 0 (got {lr})"
            )));
        }
        let stats = self.loss_and_grad_host(x, t, labels, target, weight)?;
        if !stats.loss.is_finite() || !stats.grad_norm.is_finite() {
            return Err(Error::Diverged {
                step: self.steps + 1,
                msg: format!("loss {}, gradient norm {}", stats.loss, stats.grad_norm),
            });
        }
        self.apply(stats.grad_norm, lr);
        Ok(stats)
    }

    /// L(θ) and ‖∇L‖₂ on host data, the gradient left in [`FusedTrainer::grads`]; no update.
    pub fn loss_and_grad_host(
        &mut self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        target: &[f32],
        weight: Option<&[f32]>,
    ) -> Result<StepStats> {
        let loss = self.forward_backward(x, t, labels, target, weight)?;
        let grad_norm = self.reduce_grads().sqrt();
        Ok(StepStats { loss, grad_norm })
    }

    /// Runs every worker's forward and backward pass; returns L(θ). The partial gradients stay
    /// in the tapes until [`FusedTrainer::reduce_grads`].
    fn forward_backward(
        &mut self,
        x: &[f32],
        t: &[f32],
        labels: Option<&[usize]>,
        target: &[f32],
        weight: Option<&[f32]>,
    ) -> Result<f64> {
        let n = t.len();
        let d = self.model.config.dim;
        self.model.check(n, x, t, labels)?;
        if target.len() != n * d {
            return Err(Error::Shape(format!(
                "target has {} values, expected {n} × {d}",
                target.len()
            )));
        }
        if let Some(w) = weight {
            if w.len() != n {
                return Err(Error::Shape(format!(
                    "weight has {} values, expected {n}",
                    w.len()
                )));
            }
        }
        if n == 0 {
            return Err(Error::InvalidInput("empty training batch".into()));
        }
        let workers = rayon::current_num_threads()
            .min(n.div_ceil(MIN_ROWS_PER_WORKER))
            .max(1);
        self.tapes.resize_with(workers, Tape::default);
        let per = n.div_ceil(workers);
        let scale = 2.0 / (n * d) as f32;
        let model = &self.model;
        let job = |(i, tape): (usize, &mut Tape)| {
            let r0 = (i * per).min(n);
            let r1 = ((i + 1) * per).min(n);
            let w = weight.map(|w| &w[r0..r1]);
            tape_step(
                model,
                tape,
                &x[r0 * d..r1 * d],
                &t[r0..r1],
                labels.map(|l| &l[r0..r1]),
                &target[r0 * d..r1 * d],
                w,
                scale,
            );
        };
        if workers == 1 {
            self.tapes.iter_mut().enumerate().for_each(job);
        } else {
            self.tapes.par_iter_mut().enumerate().for_each(job);
        }
        Ok(self.tapes.iter().map(|t| t.loss_sum).sum::<f64>() / (n * d) as f64)
    }

    /// grads = Σ_workers partial gradients (in parallel over parameter blocks); returns ‖grads‖².
    fn reduce_grads(&mut self) -> f64 {
        if let [only] = self.tapes.as_mut_slice() {
            std::mem::swap(&mut self.grads, &mut only.grads);
            return kernels::sum_sq(&self.grads);
        }
        let tapes = &self.tapes;
        self.grads
            .par_chunks_mut(PARAM_BLOCK)
            .enumerate()
            .map(|(i, dst)| {
                let lo = i * PARAM_BLOCK;
                let srcs: Vec<&[f32]> =
                    tapes.iter().map(|t| &t.grads[lo..lo + dst.len()]).collect();
                kernels::sum_into(dst, &srcs);
                kernels::sum_sq(dst)
            })
            .sum()
    }

    /// Applies the optimiser with the (already summed) gradient of norm `grad_norm`.
    fn apply(&mut self, grad_norm: f64, lr: f64) {
        self.steps += 1;
        let o = &self.opts;
        let time = self.steps as i32;
        let (b1, b2, eps) = (o.beta1 as f32, o.beta2 as f32, o.epsilon as f32);
        let grad_scale = match o.grad_clip {
            Some(c) => (c / (grad_norm + 1e-6)).min(1.0) as f32,
            None => 1.0,
        };
        let ema = o.ema_decay.map_or(0.0, |g| {
            let n = (self.steps - 1) as f64;
            if o.ema_warmup {
                g.min((1.0 + n) / (10.0 + n))
            } else {
                g
            }
        }) as f32;
        let bc1 = 1.0 - b1.powi(time);
        let bc2 = 1.0 - b2.powi(time);
        let s = match o.optimizer {
            Optimizer::Adam { weight_decay } => {
                let bc2s = bc2.sqrt();
                AdamScalars {
                    grad_scale,
                    l2: weight_decay.unwrap_or(0.0) as f32,
                    beta1: b1,
                    beta2: b2,
                    lr: lr as f32,
                    c1: bc2s / bc1,
                    c2: 1.0,
                    eps: eps * bc2s,
                    decay: 1.0,
                    decoupled: false,
                    ema,
                }
            }
            Optimizer::AdamW { weight_decay } => AdamScalars {
                grad_scale,
                l2: 0.0,
                beta1: b1,
                beta2: b2,
                lr: lr as f32,
                c1: bc1,
                c2: bc2,
                eps,
                decay: (1.0 - lr * (weight_decay as f32) as f64) as f32,
                decoupled: true,
                ema,
            },
        };
        let p = &mut self.model.params;
        let (g, m, v, ema) = (&self.grads, &mut self.m, &mut self.v, &mut self.ema);
        if p.len() <= PARAM_BLOCK {
            kernels::adam_update(p, g, m, v, ema, &s);
        } else {
            let ema_blocks: Vec<&mut [f32]> = if ema.is_empty() {
                (0..p.len().div_ceil(PARAM_BLOCK))
                    .map(|_| <&mut [f32]>::default())
                    .collect()
            } else {
                ema.chunks_mut(PARAM_BLOCK).collect()
            };
            p.par_chunks_mut(PARAM_BLOCK)
                .zip(g.par_chunks(PARAM_BLOCK))
                .zip(m.par_chunks_mut(PARAM_BLOCK))
                .zip(v.par_chunks_mut(PARAM_BLOCK))
                .zip(ema_blocks)
                .for_each(|((((p, g), m), v), e)| kernels::adam_update(p, g, m, v, e, &s));
        }
        self.model.refresh_transposes();
    }
}

/// Forward with saved activations, loss, and backward into `tape.grads` for one row range.
#[allow(clippy::too_many_arguments)]
fn tape_step(
    model: &FusedMlp,
    tape: &mut Tape,
    x: &[f32],
    t: &[f32],
    labels: Option<&[usize]>,
    target: &[f32],
    weight: Option<&[f32]>,
    scale: f32,
) {
    let rows = t.len();
    let d = model.config.dim;
    let layers = &model.layers;
    let last = layers.len() - 1;
    let act = model.config.activation;
    tape.deriv.resize_with(last, Vec::new);
    tape.h.resize_with(last, Vec::new);
    if tape.grads.len() != model.params.len() {
        tape.grads = vec![0.0; model.params.len()];
    }
    // Forward.
    let inp = grown(&mut tape.inp, rows * layers[0].d_in);
    model.write_input(x, t, inp);
    for (li, l) in layers.iter().enumerate() {
        let bias = &model.params[l.b..l.b + l.d_out];
        let (before, after) = tape.h.split_at_mut(li);
        let input: &[f32] = if li == 0 { &tape.inp } else { &before[li - 1] };
        if li < last {
            let z = grown(&mut tape.deriv[li], rows * l.d_out);
            model.affine(l, input, rows, z);
            if li == 0 {
                model.add_label_rows(z, rows, labels);
            }
            let h = grown(&mut after[0], rows * l.d_out);
            kernels::bias_act_deriv(z, h, bias, act);
        } else {
            let out = grown(&mut tape.out, rows * d);
            model.affine(l, input, rows, out);
            if li == 0 {
                model.add_label_rows(out, rows, labels);
            }
            kernels::add_bias(out, rows, bias);
        }
    }
    // Loss and ∂L/∂v = (2/(n·d))·w_b·(v − y).
    let g = grown(&mut tape.g, rows * d);
    let mut loss = 0.0f64;
    for r in 0..rows {
        let w = weight.map_or(1.0, |w| w[r]);
        let mut row = 0.0f64;
        for i in 0..d {
            let e = tape.out[r * d + i] - target[r * d + i];
            row += (e as f64) * (e as f64);
            g[r * d + i] = scale * w * e;
        }
        loss += w as f64 * row;
    }
    tape.loss_sum = loss;
    // Backward.
    for li in (0..=last).rev() {
        let l = layers[li];
        let (w_off, b_off) = (l.w, l.b);
        let g = &mut tape.g[..rows * l.d_out];
        {
            let (head, tail) = tape.grads.split_at_mut(b_off);
            let db = &mut tail[..l.d_out];
            db.fill(0.0);
            if li < last {
                kernels::mul_deriv_colsum(g, &tape.deriv[li][..rows * l.d_out], db);
            } else {
                kernels::colsum(g, db);
            }
            let input: &[f32] = if li == 0 { &tape.inp } else { &tape.h[li - 1] };
            weight_grad(
                &input[..rows * l.d_in],
                l.d_in,
                g,
                l.d_out,
                &mut head[w_off..w_off + l.w_len()],
                &mut tape.tmp,
            );
            if li == 0 {
                // The label rows: ∂L/∂W₁[y, :] = Σ_{rows with label y} ∂L/∂z₁ (a scatter-add).
                if let Some(block) = model.labels {
                    let w = l.d_out;
                    let dl = &mut head[block.off..block.off + block.count * w];
                    dl.fill(0.0);
                    for (r, gr) in g.chunks_exact(w).enumerate() {
                        let y = labels.map_or(block.count - 1, |lb| lb[r]);
                        dl[y * w..(y + 1) * w]
                            .iter_mut()
                            .zip(gr)
                            .for_each(|(a, b)| *a += b);
                    }
                }
            }
        }
        if li > 0 {
            let gp = grown(&mut tape.g_prev, rows * l.d_in);
            backprop_input(model, &l, g, rows, gp);
            std::mem::swap(&mut tape.g, &mut tape.g_prev);
        }
    }
}

/// dW = aᵀ g for `a` rows × p and `g` rows × q (overwrites `dw`, p × q).
fn weight_grad(a: &[f32], p: usize, g: &[f32], q: usize, dw: &mut [f32], tmp: &mut Vec<f32>) {
    let rows = a.len() / p;
    if p > THIN && q > THIN {
        kernels::matmul(
            p,
            q,
            rows,
            MatRef::transposed(a, p),
            MatRef::row_major(g, q),
            dw,
            false,
        );
    } else if p <= q {
        dw.fill(0.0);
        kernels::acc_at_b(a, p, g, dw);
    } else {
        let tq = grown(tmp, q * p);
        tq.fill(0.0);
        kernels::acc_at_b(g, q, a, tq);
        kernels::transpose(tq, q, p, dw);
    }
}

/// ∂L/∂h_{l−1} = g·W_lᵀ (`g` rows × d_out → `out` rows × d_in).
fn backprop_input(model: &FusedMlp, l: &Layer, g: &[f32], rows: usize, out: &mut [f32]) {
    let w = &model.params[l.w..l.w + l.w_len()];
    let wt = &model.wt[l.w..l.w + l.w_len()];
    match l.kind() {
        // Few outputs: out[r, :] = Σ_o g[r, o]·Wᵀ[o, :].
        Kind::SmallOut => kernels::affine_small_k(g, l.d_out, wt, None, out),
        // Few inputs: out[r, j] = g[r, :]·W[j, :].
        Kind::SmallIn => kernels::rows_dot(g, l.d_out, w, None, out),
        Kind::Gemm => kernels::matmul(
            rows,
            l.d_in,
            l.d_out,
            MatRef::row_major(g, l.d_out),
            MatRef::row_major(wt, l.d_in),
            out,
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::mlp::{Activation, Mlp, MlpConfig};
    use crate::fused::tests::{configs, rel_err};
    use crate::objective::cfm::FlowMatching;
    use crate::objective::Objective;
    use crate::path::{CondOt, GaussianPath};
    use crate::tensor::{cpu, matrix, rng, to_vec, DType, Device, Rng, Tensor};
    use burn::optim::{decay::WeightDecayConfig, AdamConfig, AdamWConfig, GradientsParams};
    use rand::Rng as _;
    use rand_distr::{Distribution, StandardNormal};

    /// n points of an 8-component Gaussian mixture on the circle of radius 2 (σ = 0.2), padded
    /// with N(0, 1) coordinates beyond the first two.
    fn mixture(n: usize, dim: usize, r: &mut Rng, device: &Device, dtype: DType) -> Tensor<2> {
        let mut v = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let a = std::f64::consts::FRAC_PI_4 * r.random_range(0..8) as f64;
            for i in 0..dim {
                let z: f64 = StandardNormal.sample(r);
                v.push(match i {
                    0 => 2.0 * a.cos() + 0.2 * z,
                    1 => 2.0 * a.sin() + 0.2 * z,
                    _ => z,
                });
            }
        }
        matrix(v, n, dim, device, dtype)
    }

    fn cfm() -> FlowMatching<CondOt> {
        FlowMatching::new(GaussianPath::new(CondOt))
    }

    /// ∂L/∂θ agrees with burn's autodiff (f64) for every architecture of the forward tests, with
    /// and without per-sample weights, to 1e-5 of each layer's gradient scale (f32 backward
    /// sums over the batch of 50: ~√50·2⁻²⁴ ≈ 4e-7 relative, so the margin is wide).
    #[test]
    fn gradients_match_burn_autodiff() {
        let dev = cpu().autodiff();
        for cfg in configs() {
            for weighted in [false, true] {
                let mut r = rng(21);
                let mlp = FusedMlp::from_mlp(&cfg.init(&cpu(), DType::F32, &mut r))
                    .to_mlp(&dev, DType::F64);
                let data = mixture(50, cfg.dim, &mut r, &dev, DType::F64);
                let mut batch = cfm().regression(&data, &mut r).expect("regression");
                if weighted {
                    batch.weight = Some(crate::tensor::uniform(
                        50,
                        0.2,
                        2.0,
                        &dev,
                        DType::F64,
                        &mut r,
                    ));
                }
                let loss = batch.loss(&mlp);
                let want_loss = to_vec(&loss)[0];
                let grads = loss.backward();
                let mut tr = FusedTrainer::new(FusedMlp::from_mlp(&mlp), TrainOptions::default())
                    .expect("trainer");
                let got_loss = in_pool(2, || {
                    tr.loss_and_grad_host(
                        &host_f32(&batch.x),
                        &host_f32(&batch.t),
                        None,
                        &host_f32(&batch.target),
                        batch.weight.as_ref().map(host_f32).as_deref(),
                    )
                })
                .expect("loss")
                .loss;
                assert!(
                    (got_loss - want_loss).abs() < 1e-5 * want_loss,
                    "{cfg:?}: loss {got_loss} vs {want_loss}"
                );
                for (k, (layer, l)) in mlp.layers.iter().zip(&tr.model.layers).enumerate() {
                    let gw = to_vec(&layer.weight.val().grad(&grads).expect("weight grad"));
                    let gb = to_vec(
                        &layer
                            .bias
                            .as_ref()
                            .unwrap()
                            .val()
                            .grad(&grads)
                            .expect("bias grad"),
                    );
                    let fw: Vec<f64> = tr.grads()[l.w..l.w + l.w_len()]
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    let fb: Vec<f64> = tr.grads()[l.b..l.b + l.d_out]
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    let (ew, eb) = (rel_err(&fw, &gw), rel_err(&fb, &gb));
                    assert!(
                        ew < 1e-5 && eb < 1e-5,
                        "{cfg:?} weighted={weighted} layer {k}: dW {ew:e}, db {eb:e}"
                    );
                }
            }
        }
    }

    /// For class-conditional networks the label block's gradient (a scatter-add of ∂L/∂z₁ by
    /// label) and every other gradient agree with burn's autodiff through the explicit one-hot
    /// input, with per-row labels including dropped (null) ones; same tolerance as above.
    #[test]
    fn conditional_gradients_match_burn_autodiff() {
        use crate::field::network::Condition;
        let dev = cpu().autodiff();
        for cfg in crate::fused::tests::conditional_configs() {
            let mut r = rng(23);
            let mlp =
                FusedMlp::from_mlp(&cfg.init(&cpu(), DType::F32, &mut r)).to_mlp(&dev, DType::F64);
            let data = mixture(60, cfg.dim, &mut r, &dev, DType::F64);
            let mut batch = cfm().regression(&data, &mut r).expect("regression");
            let k = cfg.classes;
            batch.condition =
                Condition::Labels((0..60).map(|i| (i % 4 != 3).then_some(i % k)).collect());
            let loss = batch.loss(&mlp);
            let grads = loss.backward();
            let mut tr = FusedTrainer::new(FusedMlp::from_mlp(&mlp), TrainOptions::default())
                .expect("trainer");
            let labels = batch.condition.label_rows(k, 60);
            in_pool(2, || {
                tr.loss_and_grad_host(
                    &host_f32(&batch.x),
                    &host_f32(&batch.t),
                    labels.as_deref(),
                    &host_f32(&batch.target),
                    None,
                )
            })
            .expect("loss");
            let mut off = 0;
            for (j, layer) in mlp.layers.iter().enumerate() {
                let gw = to_vec(&layer.weight.val().grad(&grads).expect("weight grad"));
                let gb = to_vec(
                    &layer
                        .bias
                        .as_ref()
                        .unwrap()
                        .val()
                        .grad(&grads)
                        .expect("bias"),
                );
                let fw: Vec<f64> = tr.grads()[off..off + gw.len()]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                off += gw.len();
                let fb: Vec<f64> = tr.grads()[off..off + gb.len()]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                off += gb.len();
                let (ew, eb) = (rel_err(&fw, &gw), rel_err(&fb, &gb));
                assert!(
                    ew < 1e-5 && eb < 1e-5,
                    "{cfg:?} layer {j}: dW {ew:e}, db {eb:e}"
                );
            }
        }
    }

    fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(f)
    }

    /// Trains the same f32 network with burn (autodiff + `optim`) and with the fused trainer on
    /// the same batches; returns the largest relative loss difference over the run and the
    /// final weights' difference relative to their scale.
    fn race(
        steps: usize,
        mut optim: burn::optim::ModuleOptimizer,
        opts: TrainOptions,
        activation: Activation,
    ) -> (f64, f64) {
        let dev = cpu().autodiff();
        let cfg = MlpConfig {
            activation,
            ..MlpConfig::new(2, 32, 3)
        };
        let mut r = rng(5);
        let mut model: Mlp = cfg.init(&dev, DType::F32, &mut r);
        let mut fused = FusedTrainer::new(FusedMlp::from_mlp(&model), opts).expect("trainer");
        let lr = 3e-3;
        let mut worst = 0.0f64;
        for _ in 0..steps {
            let data = mixture(64, 2, &mut r, &dev, DType::F32);
            let batch = cfm().regression(&data, &mut r).expect("regression");
            let loss = batch.loss(&model);
            let lb = to_vec(&loss)[0];
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            let lf = in_pool(2, || fused.step(&batch, lr))
                .expect("fused step")
                .loss;
            worst = worst.max((lf - lb).abs() / lb);
        }
        let want: Vec<f64> = FusedMlp::from_mlp(&model)
            .params()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let got: Vec<f64> = fused.model().params().iter().map(|&v| v as f64).collect();
        (worst, rel_err(&got, &want))
    }

    /// 50 Adam steps (lr 3e-3, ε = 1e-8) follow burn's loss curve. Batch noise moves the loss by
    /// ~10% from step to step; float rounding (different summation orders) moves it by ~1e-6
    /// and grows slowly through Adam's normalisation, so we require 1e-4 relative at every step
    /// and weights within 1e-4 of their scale at the end — a wrong bias correction, ε placement
    /// or moment update shows up at the 1e-3 level within a few steps.
    #[test]
    fn adam_follows_burn_loss_curve() {
        let (loss, w) = race(
            50,
            AdamConfig::new().with_epsilon(1e-8).init(),
            TrainOptions::default(),
            Activation::Silu,
        );
        assert!(
            loss < 1e-4 && w < 1e-4,
            "Adam: loss gap {loss:e}, weight gap {w:e}"
        );
    }

    /// 30 Adam steps follow burn's loss curve for every other activation too (same tolerances
    /// and reasoning as the SiLU race): act′ off by 0.1% in the fused backward fails it.
    #[test]
    fn adam_follows_burn_for_every_activation() {
        for act in Activation::ALL
            .into_iter()
            .filter(|a| *a != Activation::Silu)
        {
            let (loss, w) = race(
                30,
                AdamConfig::new().with_epsilon(1e-8).init(),
                TrainOptions::default(),
                act,
            );
            assert!(
                loss < 1e-4 && w < 1e-4,
                "{act}: loss gap {loss:e}, weight gap {w:e}"
            );
        }
    }

    /// Adam with an L2 penalty and AdamW (decoupled decay) follow burn's for 20 steps (same
    /// tolerances as the plain Adam race).
    #[test]
    fn weight_decay_variants_follow_burn() {
        let adam_l2 = AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(Some(WeightDecayConfig::new(0.05)))
            .init();
        let opts = TrainOptions {
            optimizer: Optimizer::Adam {
                weight_decay: Some(0.05),
            },
            ..TrainOptions::default()
        };
        let (loss, w) = race(20, adam_l2, opts, Activation::Silu);
        assert!(
            loss < 1e-4 && w < 1e-4,
            "Adam+L2: loss gap {loss:e}, weight gap {w:e}"
        );
        let adamw = AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(0.05)
            .init();
        let opts = TrainOptions {
            optimizer: Optimizer::AdamW { weight_decay: 0.05 },
            ..TrainOptions::default()
        };
        let (loss, w) = race(20, adamw, opts, Activation::Silu);
        assert!(
            loss < 1e-4 && w < 1e-4,
            "AdamW: loss gap {loss:e}, weight gap {w:e}"
        );
    }

    fn toy_batch(n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut r = rng(3);
        let b = cfm()
            .regression(&mixture(n, 2, &mut r, &cpu(), DType::F32), &mut r)
            .expect("regression");
        (host_f32(&b.x), host_f32(&b.t), host_f32(&b.target))
    }

    /// With clipping to c = ‖g‖/2 the first moment after one step is (1 − β₁)·g·c/(‖g‖ + 1e-6),
    /// and the reported norm is the unclipped one.
    #[test]
    fn clipping_scales_the_gradient_to_the_global_norm() {
        let (x, t, y) = toy_batch(40);
        let model = FusedMlp::init(&MlpConfig::new(2, 16, 2), &mut rng(2));
        let mut probe = FusedTrainer::new(model.clone(), TrainOptions::default()).expect("trainer");
        let norm = probe
            .loss_and_grad_host(&x, &t, None, &y, None)
            .expect("grad")
            .grad_norm;
        let c = 0.5 * norm;
        let mut tr = FusedTrainer::new(
            model,
            TrainOptions {
                grad_clip: Some(c),
                ..TrainOptions::default()
            },
        )
        .expect("trainer");
        let st = tr.step_host(&x, &t, None, &y, None, 1e-3).expect("step");
        assert!(
            (st.grad_norm - norm).abs() < 1e-6 * norm,
            "reported norm {} vs {norm}",
            st.grad_norm
        );
        let s = c / (norm + 1e-6);
        let want: Vec<f64> = probe.grads().iter().map(|&g| 0.1 * s * g as f64).collect();
        let got: Vec<f64> = tr.moments().0.iter().map(|&m| m as f64).collect();
        let e = rel_err(&got, &want);
        assert!(e < 1e-6, "clipped first moment error {e:e}");
    }

    /// θ_ema ← γθ_ema + (1 − γ)θ after every step, from θ_ema = θ₀ (γ = 0.9, 3 steps; with
    /// warm-up γ_n = min(γ, (1 + n)/(10 + n))), checked in f64 against the f32 kernel: 1e-6.
    #[test]
    fn ema_follows_its_recursion() {
        let (x, t, y) = toy_batch(40);
        for warmup in [false, true] {
            let model = FusedMlp::init(&MlpConfig::new(2, 16, 2), &mut rng(2));
            let mut ema: Vec<f64> = model.params().iter().map(|&v| v as f64).collect();
            let opts = TrainOptions {
                ema_decay: Some(0.9),
                ema_warmup: warmup,
                ..TrainOptions::default()
            };
            let mut tr = FusedTrainer::new(model, opts).expect("trainer");
            for n in 0..3 {
                tr.step_host(&x, &t, None, &y, None, 1e-2).expect("step");
                let g = if warmup {
                    0.9f64.min((1.0 + n as f64) / (10.0 + n as f64))
                } else {
                    0.9
                };
                for (e, &p) in ema.iter_mut().zip(tr.model().params()) {
                    *e = g * *e + (1.0 - g) * p as f64;
                }
            }
            let got: Vec<f64> = tr.ema_params().iter().map(|&v| v as f64).collect();
            let e = rel_err(&got, &ema);
            assert!(e < 1e-6, "warmup={warmup}: EMA error {e:e}");
            assert_eq!(tr.ema_model().expect("ema").params(), tr.ema_params());
            assert_eq!(tr.steps(), 3);
        }
    }

    /// A NaN target stops with `Error::Diverged` and leaves the weights untouched; bad options,
    /// learning rates and shapes are `Err`, never panics.
    #[test]
    fn divergence_and_bad_input_are_errors() {
        let (x, t, mut y) = toy_batch(40);
        let model = FusedMlp::init(&MlpConfig::new(2, 16, 2), &mut rng(2));
        let before = model.params().to_vec();
        let mut tr = FusedTrainer::new(model, TrainOptions::default()).expect("trainer");
        y[7] = f32::NAN;
        assert!(matches!(
            tr.step_host(&x, &t, None, &y, None, 1e-3),
            Err(Error::Diverged { step: 1, .. })
        ));
        assert_eq!(tr.model().params(), &before[..]);
        assert_eq!(tr.steps(), 0);
        assert!(matches!(
            tr.step_host(&x, &t, None, &y, None, f64::NAN),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            tr.step_host(&x, &t, None, &y[..10], None, 1e-3),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            tr.step_host(&x, &t, None, &y, Some(&[1.0; 3]), 1e-3),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            tr.step_host(&[], &[], None, &[], None, 1e-3),
            Err(Error::InvalidInput(_))
        ));
        let m = tr.model().clone();
        let bad = TrainOptions {
            beta1: 1.0,
            ..TrainOptions::default()
        };
        assert!(matches!(
            FusedTrainer::new(m.clone(), bad),
            Err(Error::InvalidInput(_))
        ));
        let bad = TrainOptions {
            grad_clip: Some(0.0),
            ..TrainOptions::default()
        };
        assert!(matches!(
            FusedTrainer::new(m.clone(), bad),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            tr.restore(1, &[0.0; 2], &[0.0; 2], None),
            Err(Error::Shape(_))
        ));
    }
}
