//! The U-Net vector field v_θ(x, t | c) for images (Ho et al. 2020, after Ronneberger et al.
//! 2015; the layout of DDPM's and guided-diffusion's `UNetModel`).
//!
//! An image of C channels and H × W pixels is a point of R^d, d = C·H·W, flattened row-major
//! from (C, H, W) as PyTorch's `x.flatten(1)`; the network reshapes, computes and flattens
//! back, so it is a network on R^d like any other (`field::networks` implements the trait for it).
//!
//! ```text
//! e = W₂ SiLU(W₁ φ(s·t) + b₁) + b₂ (+ E[c])              φ: sinusoidal features, E: class table
//! h₀ = conv_in(x)
//! level ℓ = 0 … L−1 (channels base·mult[ℓ]): res_blocks × ResBlock(h, e), then a stride-2
//!     conv (not after the last level); every block output is kept as a skip
//! middle: ResBlock, self-attention (optional), ResBlock at the lowest resolution
//! level ℓ = L−1 … 0: (res_blocks + 1) × ResBlock([h, skip], e), then nearest ×2 + conv
//! v = conv_out(SiLU(GroupNorm(h)))
//! ResBlock(h, e) = skip(h) + conv₂(SiLU(GN₂(conv₁(SiLU(GN₁(h))) + W_e SiLU(e))))
//! ```
//!
//! **Tangents.** Besides the forward pass the network propagates input tangents ḣ exactly
//! (forward mode, no double backward): convolutions and the skip concatenation are linear,
//! SiLU multiplies by SiLU′(z), GroupNorm's tangent is (ḣ − mean ḣ − x̂·mean(x̂ ḣ))·γ/σ over each
//! group, and attention's softmax A gives Ȧ = A ⊙ (Ṡ − Σⱼ A Ṡ). The time and class embeddings
//! do not depend on x, so their tangent is zero. k tangent directions travel stacked as k·batch
//! rows (one convolution per layer for all of them), which makes the exact divergence d
//! directions in ⌈d/chunk⌉ passes. Every tangent is made of ordinary tensor operations, so it
//! can itself be differentiated in the weights.
//!
//! **VJP.** Jᵀw = ∇ₓ⟨w, v⟩ by one reverse pass of burn's autodiff.
//!
//! **Weights.** PyTorch's default initialisation (weights and biases U(−k, k), k = 1/√fan_in;
//! GroupNorm γ = 1, β = 0; the class table N(0, 1)), drawn from the crate's seeded RNG so the
//! same seed gives the same network on every backend. Parameter names follow the struct fields
//! (`down.0.blocks.1.conv1.weight`, …) with PyTorch's layouts (dense weights `(out, in)`,
//! convolutions `(out, in, kh, kw)`, GroupNorm `weight`/`bias`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::activation::{sigmoid, silu, softmax};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::{HostTensor, StateDict, StoredDType};
use crate::tensor::{matrix_like, DType, Device, Rng, Tensor, TensorData};

/// Architecture of a [`Unet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnetConfig {
    /// Image channels C.
    pub channels: usize,
    /// Image height H.
    pub height: usize,
    /// Image width W.
    pub width: usize,
    /// Base number of feature channels (level ℓ has base·mult\[ℓ\]); even.
    pub base: usize,
    /// Channel multiplier per resolution level; one level per entry, halving H and W between
    /// levels, so H and W must be divisible by 2^(levels − 1).
    pub mults: Vec<usize>,
    /// Residual blocks per level on the way down (one more on the way up).
    pub res_blocks: usize,
    /// Self-attention between the two middle blocks (lowest resolution).
    pub attention: bool,
    /// GroupNorm groups; must divide every channel count.
    pub groups: usize,
    /// Number of classes K the network is conditioned on (0 = unconditional). Row K of the
    /// class table is the null label (no condition: classifier-free guidance's unconditional
    /// branch).
    #[serde(default)]
    pub classes: usize,
    /// The time input is embedded at s·t (s = 1000 spreads flow time t ∈ \[0, 1\] over the
    /// sinusoid's periods as DDPM's integer steps do).
    #[serde(default = "default_time_scale")]
    pub time_scale: f64,
}

fn default_time_scale() -> f64 {
    1000.0
}

/// One residual block's channels (in, out).
type BlockDims = (usize, usize);

/// Channel plan of a U-Net: what every block takes and gives.
struct Plan {
    /// Per level: the residual blocks, and whether a downsampling conv follows.
    down: Vec<(Vec<BlockDims>, bool)>,
    /// Channels at the lowest resolution.
    mid: usize,
    /// Per level, lowest first: the residual blocks, and whether an upsampling conv follows.
    up: Vec<(Vec<BlockDims>, bool)>,
}

impl UnetConfig {
    /// A U-Net for C × H × W images with `base` channels, multipliers `mults`, two residual
    /// blocks per level, middle attention, 8 groups, unconditional, time scale 1000.
    pub fn new(channels: usize, height: usize, width: usize, base: usize, mults: &[usize]) -> Self {
        Self {
            channels,
            height,
            width,
            base,
            mults: mults.to_vec(),
            res_blocks: 2,
            attention: true,
            groups: 8,
            classes: 0,
            time_scale: default_time_scale(),
        }
    }

    /// The default network for `channels × height × width` images: base 32, multipliers (1, 2)
    /// for images up to 16 pixels a side, (1, 2, 2) beyond, one residual block per level,
    /// middle attention (651,041 parameters on 1 × 8 × 8).
    ///
    /// Sized to the 15-minute budget of the 8 × 8 digits on 2 CPU cores: one training step at
    /// batch 128 (forward + backward on burn's Flex backend) measured 0.51–0.59 CPU-seconds, so
    /// 2,000 steps take about 10 minutes of wall time on two idle cores and leave room for
    /// sampling and bits/dim; base 64 costs 4× (2.6 M parameters), two blocks per level 1.4×.
    pub fn default_for(channels: usize, height: usize, width: usize) -> Self {
        let mults: &[usize] = if height.max(width) <= 16 {
            &[1, 2]
        } else {
            &[1, 2, 2]
        };
        Self {
            res_blocks: 1,
            ..Self::new(channels, height, width, 32, mults)
        }
    }

    /// Data dimension d = C·H·W.
    pub fn dim(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Width of the time embedding e (4·base).
    pub fn embed_dim(&self) -> usize {
        4 * self.base
    }

    /// Checks the configuration: positive sizes, even base, H and W divisible by
    /// 2^(levels − 1), the groups dividing every channel count, a finite positive time scale.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("U-Net: {m}")));
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            return bad(format!(
                "image shape {}×{}×{} has a zero side",
                self.channels, self.height, self.width
            ));
        }
        if self.base == 0 || !self.base.is_multiple_of(2) {
            return bad(format!(
                "base channels {} must be even and positive",
                self.base
            ));
        }
        if self.mults.is_empty() || self.mults.contains(&0) {
            return bad(format!(
                "channel multipliers {:?} must be a non-empty list of positive numbers",
                self.mults
            ));
        }
        let f = 1usize << (self.mults.len() - 1);
        if !self.height.is_multiple_of(f) || !self.width.is_multiple_of(f) {
            return bad(format!(
                "{} levels halve the image {} times: {}×{} is not divisible by {f}",
                self.mults.len(),
                self.mults.len() - 1,
                self.height,
                self.width
            ));
        }
        if self.groups == 0 {
            return bad("GroupNorm needs at least one group".into());
        }
        for m in &self.mults {
            let c = self.base * m;
            if !c.is_multiple_of(self.groups) {
                return bad(format!(
                    "{} GroupNorm groups do not divide {c} channels (base {} × multiplier {m})",
                    self.groups, self.base
                ));
            }
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return bad(format!(
                "time scale {} must be positive and finite",
                self.time_scale
            ));
        }
        Ok(())
    }

    /// The channel plan (DDPM's bookkeeping of skip channels).
    fn plan(&self) -> Plan {
        let mut ch = self.base;
        let mut skips = vec![ch];
        let mut down = Vec::new();
        let last = self.mults.len() - 1;
        for (l, m) in self.mults.iter().enumerate() {
            let out = self.base * m;
            let mut blocks = Vec::new();
            for _ in 0..self.res_blocks {
                blocks.push((ch, out));
                ch = out;
                skips.push(ch);
            }
            if l != last {
                skips.push(ch);
            }
            down.push((blocks, l != last));
        }
        let mid = ch;
        let mut up = Vec::new();
        for (l, m) in self.mults.iter().enumerate().rev() {
            let out = self.base * m;
            let mut blocks = Vec::new();
            for _ in 0..=self.res_blocks {
                let skip = skips.pop().expect("one skip per block");
                blocks.push((ch + skip, out));
                ch = out;
            }
            up.push((blocks, l != 0));
        }
        Plan { down, mid, up }
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        let e = self.embed_dim();
        let conv = |i: usize, o: usize, k: usize| i * o * k * k + o;
        let gn = |c: usize| 2 * c;
        let res = |(i, o): BlockDims| {
            gn(i)
                + conv(i, o, 3)
                + (e * o + o)
                + gn(o)
                + conv(o, o, 3)
                + if i != o { conv(i, o, 1) } else { 0 }
        };
        let plan = self.plan();
        let mut n = (self.base * e + e) + (e * e + e) + conv(self.channels, self.base, 3);
        if self.classes > 0 {
            n += (self.classes + 1) * e;
        }
        for (blocks, down) in &plan.down {
            n += blocks.iter().map(|b| res(*b)).sum::<usize>();
            if *down {
                let c = blocks.last().map_or(self.base, |b| b.1);
                n += conv(c, c, 3);
            }
        }
        n += 2 * res((plan.mid, plan.mid));
        if self.attention {
            n += gn(plan.mid) + conv(plan.mid, 3 * plan.mid, 1) + conv(plan.mid, plan.mid, 1);
        }
        for (blocks, upc) in &plan.up {
            n += blocks.iter().map(|b| res(*b)).sum::<usize>();
            if *upc {
                let c = blocks.last().expect("≥ 1 block").1;
                n += conv(c, c, 3);
            }
        }
        n + gn(self.base) + conv(self.base, self.channels, 3)
    }

    /// A one-line description, e.g. `U-Net 1×8×8, base 32 × (1, 2), 1 block/level, attention`.
    pub fn describe(&self) -> String {
        let mults: Vec<String> = self.mults.iter().map(|m| m.to_string()).collect();
        format!(
            "U-Net {}×{}×{}, base {} × ({}), {} block{}/level{}{}",
            self.channels,
            self.height,
            self.width,
            self.base,
            mults.join(", "),
            self.res_blocks,
            if self.res_blocks == 1 { "" } else { "s" },
            if self.attention { ", attention" } else { "" },
            if self.classes > 0 {
                format!(", {} classes", self.classes)
            } else {
                String::new()
            }
        )
    }

    /// A network with PyTorch's default initialisation drawn from `rng` (see the module doc),
    /// on `device` in `dtype`. Errors when the configuration is invalid.
    pub fn init(&self, device: &Device, dtype: DType, rng: &mut Rng) -> Result<Unet> {
        self.validate()?;
        let mut init = Init { device, dtype, rng };
        let e = self.embed_dim();
        let plan = self.plan();
        let time1 = init.dense(self.base, e);
        let time2 = init.dense(e, e);
        let class_table = (self.classes > 0).then(|| {
            let data: Vec<f64> = (0..(self.classes + 1) * e)
                .map(|_| StandardNormal.sample(&mut *init.rng))
                .collect();
            Param::from_tensor(init.tensor(data, [self.classes + 1, e]))
        });
        let conv_in = init.conv(self.channels, self.base, 3, 1);
        let mut down = Vec::new();
        for (blocks, has_down) in &plan.down {
            let res: Vec<ResBlock> = blocks
                .iter()
                .map(|&b| init.res_block(b, e, self.groups))
                .collect();
            let c = blocks.last().map_or(self.base, |b| b.1);
            let sample = has_down.then(|| init.conv(c, c, 3, 2));
            down.push(Level {
                blocks: res,
                sample,
            });
        }
        let mid1 = init.res_block((plan.mid, plan.mid), e, self.groups);
        let attention = self.attention.then(|| Attention {
            norm: init.group_norm(plan.mid, self.groups),
            qkv: init.conv(plan.mid, 3 * plan.mid, 1, 1),
            proj: init.conv(plan.mid, plan.mid, 1, 1),
        });
        let mid2 = init.res_block((plan.mid, plan.mid), e, self.groups);
        let mut up = Vec::new();
        for (blocks, has_up) in &plan.up {
            let res: Vec<ResBlock> = blocks
                .iter()
                .map(|&b| init.res_block(b, e, self.groups))
                .collect();
            let c = blocks.last().expect("≥ 1 block").1;
            let sample = has_up.then(|| init.conv(c, c, 3, 1));
            up.push(Level {
                blocks: res,
                sample,
            });
        }
        let norm_out = init.group_norm(self.base, self.groups);
        let conv_out = init.conv(self.base, self.channels, 3, 1);
        Ok(Unet {
            time1,
            time2,
            class_table,
            conv_in,
            down,
            mid1,
            attention,
            mid2,
            up,
            norm_out,
            conv_out,
            config: self.clone(),
        })
    }
}

/// Draws initial weights from the crate's RNG.
struct Init<'a> {
    device: &'a Device,
    dtype: DType,
    rng: &'a mut Rng,
}

impl Init<'_> {
    fn tensor<const D: usize>(&self, data: Vec<f64>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(data, shape), (self.device, self.dtype))
    }

    fn uniform<const D: usize>(&mut self, k: f64, shape: [usize; D]) -> Param<Tensor<D>> {
        let n = shape.iter().product();
        let data: Vec<f64> = (0..n).map(|_| self.rng.random_range(-k..k)).collect();
        Param::from_tensor(self.tensor(data, shape))
    }

    fn dense(&mut self, d_in: usize, d_out: usize) -> Dense {
        let k = 1.0 / (d_in as f64).sqrt();
        Dense {
            weight: self.uniform(k, [d_out, d_in]),
            bias: self.uniform(k, [d_out]),
        }
    }

    fn conv(&mut self, c_in: usize, c_out: usize, kernel: usize, stride: usize) -> Conv {
        let k = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        Conv {
            weight: self.uniform(k, [c_out, c_in, kernel, kernel]),
            bias: self.uniform(k, [c_out]),
            stride,
            padding: kernel / 2,
        }
    }

    fn group_norm(&mut self, channels: usize, groups: usize) -> GroupNorm {
        GroupNorm {
            weight: Param::from_tensor(self.tensor(vec![1.0; channels], [channels])),
            bias: Param::from_tensor(self.tensor(vec![0.0; channels], [channels])),
            groups,
        }
    }

    fn res_block(&mut self, (c_in, c_out): BlockDims, embed: usize, groups: usize) -> ResBlock {
        ResBlock {
            norm1: self.group_norm(c_in, groups),
            conv1: self.conv(c_in, c_out, 3, 1),
            embed: self.dense(embed, c_out),
            norm2: self.group_norm(c_out, groups),
            conv2: self.conv(c_out, c_out, 3, 1),
            skip: (c_in != c_out).then(|| self.conv(c_in, c_out, 1, 1)),
        }
    }
}

/// A batch of activations with an optional stacked tangent: `value` is `(n, …)` and `tangent`
/// `(k·n, …)`, k directions for the whole batch.
type Dual<const D: usize> = (Tensor<D>, Option<Tensor<D>>);

/// `x` repeated k times along the batch axis (to multiply a stacked tangent).
fn stack<const D: usize>(x: Tensor<D>, k: usize) -> Tensor<D> {
    if k == 1 {
        return x;
    }
    let mut reps = [1usize; D];
    reps[0] = k;
    x.repeat(&reps)
}

/// (SiLU(z), SiLU′(z)·ż) with SiLU′(z) = σ(z)(1 + z(1 − σ(z))).
fn silu_dual<const D: usize>((z, dz): Dual<D>, k: usize) -> Dual<D> {
    let dz = dz.map(|dz| {
        let s = sigmoid(z.clone());
        let deriv = s.clone() * (z.clone() * (s.neg() + 1.0) + 1.0);
        dz * stack(deriv, k)
    });
    (silu(z), dz)
}

/// The affine layer y = x Wᵀ + b with W stored `(out, in)` as PyTorch's `nn.Linear`.
#[derive(Module, Debug)]
pub struct Dense {
    /// W, `(out, in)`.
    pub weight: Param<Tensor<2>>,
    /// b, `(out,)`.
    pub bias: Param<Tensor<1>>,
}

impl Dense {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose()) + self.bias.val().unsqueeze_dim(0)
    }
}

/// A square 2-D convolution with bias, "same" padding k/2.
#[derive(Module, Debug)]
pub struct Conv {
    /// Kernel, `(out, in, k, k)`.
    pub weight: Param<Tensor<4>>,
    /// Bias, `(out,)`.
    pub bias: Param<Tensor<1>>,
    /// Stride.
    #[module(skip)]
    pub stride: usize,
    /// Zero padding on every side.
    #[module(skip)]
    pub padding: usize,
}

impl Conv {
    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new(
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(x, self.weight.val(), Some(self.bias.val()), self.options())
    }

    /// (conv(x), conv without bias applied to the tangent).
    fn dual(&self, (x, dx): Dual<4>) -> Dual<4> {
        let dx = dx.map(|dx| conv2d(dx, self.weight.val(), None, self.options()));
        (self.forward(x), dx)
    }
}

/// GroupNorm (Wu & He 2018): y = γ·(x − μ_g)/√(σ²_g + 10⁻⁵) + β over each group of channels.
#[derive(Module, Debug)]
pub struct GroupNorm {
    /// γ, `(channels,)`.
    pub weight: Param<Tensor<1>>,
    /// β, `(channels,)`.
    pub bias: Param<Tensor<1>>,
    /// Number of groups.
    #[module(skip)]
    pub groups: usize,
}

impl GroupNorm {
    const EPS: f64 = 1e-5;

    /// (y, ẏ) with ẏ = γ·(ẋ − mean ẋ − x̂·mean(x̂ ẋ))/σ per group, x̂ = (x − μ)/σ.
    fn dual(&self, (x, dx): Dual<4>, k: usize) -> Dual<4> {
        let [n, c, h, w] = x.dims();
        let g = self.groups;
        let m = c / g * h * w;
        let xg = x.reshape([n, g, m]);
        let centred = xg.clone() - xg.mean_dim(2);
        let rstd = (centred.clone().square().mean_dim(2) + Self::EPS)
            .sqrt()
            .recip();
        let xhat = centred * rstd.clone();
        let gamma = self.weight.val().reshape([1, c, 1, 1]);
        let beta = self.bias.val().reshape([1, c, 1, 1]);
        let dy = dx.map(|dx| {
            let dg = dx.reshape([k * n, g, m]);
            let xh = stack(xhat.clone(), k);
            let proj = (xh.clone() * dg.clone()).mean_dim(2);
            let dxhat = (dg.clone() - dg.mean_dim(2) - xh * proj) * stack(rstd, k);
            dxhat.reshape([k * n, c, h, w]) * gamma.clone()
        });
        (xhat.reshape([n, c, h, w]) * gamma + beta, dy)
    }
}

/// ResBlock(h, e) = skip(h) + conv₂(SiLU(GN₂(conv₁(SiLU(GN₁(h))) + W_e SiLU(e)))).
#[derive(Module, Debug)]
pub struct ResBlock {
    /// GN₁.
    pub norm1: GroupNorm,
    /// conv₁ (3 × 3).
    pub conv1: Conv,
    /// W_e: the time (and class) embedding's projection to the block's channels.
    pub embed: Dense,
    /// GN₂.
    pub norm2: GroupNorm,
    /// conv₂ (3 × 3).
    pub conv2: Conv,
    /// 1 × 1 convolution when the channel count changes.
    pub skip: Option<Conv>,
}

impl ResBlock {
    fn dual(&self, x: Dual<4>, e: &Tensor<2>, k: usize) -> Dual<4> {
        let h = silu_dual(self.norm1.dual(x.clone(), k), k);
        let (h, dh) = self.conv1.dual(h);
        let [n, c, _, _] = h.dims();
        let h = h + self.embed.forward(silu(e.clone())).reshape([n, c, 1, 1]);
        let h = silu_dual(self.norm2.dual((h, dh), k), k);
        let (h, dh) = self.conv2.dual(h);
        let (s, ds) = match &self.skip {
            Some(conv) => conv.dual(x),
            None => x,
        };
        (s + h, add_tangents(ds, dh))
    }
}

fn add_tangents<const D: usize>(a: Option<Tensor<D>>, b: Option<Tensor<D>>) -> Option<Tensor<D>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Single-head self-attention over the H·W positions: x + proj(V softmax(QᵀK/√c)ᵀ).
#[derive(Module, Debug)]
pub struct Attention {
    /// GroupNorm before the projections.
    pub norm: GroupNorm,
    /// Q, K, V as one 1 × 1 convolution to 3c channels.
    pub qkv: Conv,
    /// Output 1 × 1 convolution.
    pub proj: Conv,
}

impl Attention {
    fn dual(&self, x: Dual<4>, k: usize) -> Dual<4> {
        let [n, c, h, w] = x.0.dims();
        let p = h * w;
        let scale = 1.0 / (c as f64).sqrt();
        let (qkv, dqkv) = self.qkv.dual(self.norm.dual(x.clone(), k));
        let split = |t: Tensor<4>, rows: usize| {
            let t = t.reshape([rows, 3 * c, p]);
            (
                t.clone().narrow(1, 0, c),
                t.clone().narrow(1, c, c),
                t.narrow(1, 2 * c, c),
            )
        };
        let (q, kk, v) = split(qkv, n);
        let qt = q.swap_dims(1, 2); // (n, p, c)
        let a = softmax(qt.clone().matmul(kk.clone()) * scale, 2); // (n, p, p)
        let at = a.clone().swap_dims(1, 2);
        let o = v.clone().matmul(at.clone()); // (n, c, p)
        let do_ = dqkv.map(|d| {
            let (dq, dk, dv) = split(d, k * n);
            let ds = (dq.swap_dims(1, 2).matmul(stack(kk, k)) + stack(qt, k).matmul(dk)) * scale;
            let ak = stack(a, k);
            let da = ak.clone() * (ds.clone() - (ak * ds).sum_dim(2));
            (dv.matmul(stack(at, k)) + stack(v, k).matmul(da.swap_dims(1, 2))).reshape([
                k * n,
                c,
                h,
                w,
            ])
        });
        let (o, do_) = self.proj.dual((o.reshape([n, c, h, w]), do_));
        (x.0 + o, add_tangents(x.1, do_))
    }
}

/// One resolution level: residual blocks and an optional resampling convolution.
#[derive(Module, Debug)]
pub struct Level {
    /// The residual blocks.
    pub blocks: Vec<ResBlock>,
    /// Stride-2 convolution (down) or the convolution after nearest ×2 upsampling (up).
    pub sample: Option<Conv>,
}

/// Nearest-neighbour ×2 upsampling `(n, c, h, w)` → `(n, c, 2h, 2w)`.
fn upsample(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .repeat(&[1, 1, 1, 2, 1, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

/// The U-Net field (see the module documentation). A burn `Module`: train it on an autodiff
/// device, sample with `.valid()` (no graph).
#[derive(Module, Debug)]
pub struct Unet {
    /// First layer of the time MLP (base → 4·base).
    pub time1: Dense,
    /// Second layer of the time MLP (4·base → 4·base).
    pub time2: Dense,
    /// Class embedding table `(K + 1, 4·base)`; row K is the null label.
    pub class_table: Option<Param<Tensor<2>>>,
    /// Input convolution C → base.
    pub conv_in: Conv,
    /// Levels on the way down.
    pub down: Vec<Level>,
    /// First middle block.
    pub mid1: ResBlock,
    /// Middle self-attention.
    pub attention: Option<Attention>,
    /// Second middle block.
    pub mid2: ResBlock,
    /// Levels on the way up, lowest resolution first.
    pub up: Vec<Level>,
    /// Output GroupNorm.
    pub norm_out: GroupNorm,
    /// Output convolution base → C.
    pub conv_out: Conv,
    /// The architecture.
    #[module(skip)]
    pub config: UnetConfig,
}

/// φ(u) = [cos(u ωᵢ), sin(u ωᵢ)], ωᵢ = 10000^(−i/h), i < h = dim/2 (DDPM's timestep embedding).
pub fn sinusoidal_embedding(u: &Tensor<1>, dim: usize) -> Tensor<2> {
    let half = dim / 2;
    let freqs: Vec<f64> = (0..half)
        .map(|i| (-(10000f64.ln()) * i as f64 / half as f64).exp())
        .collect();
    let f = matrix_like(freqs, 1, half, u);
    let arg = u.clone().unsqueeze_dim::<2>(1).matmul(f);
    Tensor::cat(vec![arg.clone().cos(), arg.sin()], 1)
}

impl Unet {
    /// The time (and class) embedding e of the batch.
    fn embedding(&self, t: &Tensor<1>, labels: Option<&[usize]>) -> Tensor<2> {
        let cfg = &self.config;
        let phi = sinusoidal_embedding(&(t.clone() * cfg.time_scale), cfg.base);
        let e = self.time2.forward(silu(self.time1.forward(phi)));
        match &self.class_table {
            None => e,
            Some(table) => {
                let n = t.dims()[0];
                let k = cfg.classes;
                let mut onehot = vec![0.0; n * (k + 1)];
                for (r, row) in onehot.chunks_mut(k + 1).enumerate() {
                    row[labels.map_or(k, |l| l[r])] = 1.0;
                }
                e + matrix_like(onehot, n, k + 1, t).matmul(table.val())
            }
        }
    }

    /// (v, J·U) for k tangent directions stacked in `u` as `(k·n, d)` (or v alone).
    fn dual(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        u: Option<Tensor<2>>,
    ) -> Dual<2> {
        let cfg = &self.config;
        let [n, d] = x.dims();
        let (ch, hh, ww) = (cfg.channels, cfg.height, cfg.width);
        let k = u.as_ref().map_or(1, |u| u.dims()[0] / n);
        let e = self.embedding(t, labels);
        let img = |z: Tensor<2>, rows: usize| z.reshape([rows, ch, hh, ww]);
        let mut h = self
            .conv_in
            .dual((img(x.clone(), n), u.map(|u| img(u, k * n))));
        let mut skips = vec![h.clone()];
        for level in &self.down {
            for block in &level.blocks {
                h = block.dual(h, &e, k);
                skips.push(h.clone());
            }
            if let Some(conv) = &level.sample {
                h = conv.dual(h);
                skips.push(h.clone());
            }
        }
        h = self.mid1.dual(h, &e, k);
        if let Some(attn) = &self.attention {
            h = attn.dual(h, k);
        }
        h = self.mid2.dual(h, &e, k);
        for level in &self.up {
            for block in &level.blocks {
                let (s, ds) = skips.pop().expect("one skip per up block");
                let dh = match (h.1, ds) {
                    (Some(a), Some(b)) => Some(Tensor::cat(vec![a, b], 1)),
                    _ => None,
                };
                h = block.dual((Tensor::cat(vec![h.0, s], 1), dh), &e, k);
            }
            if let Some(conv) = &level.sample {
                h = conv.dual((upsample(h.0), h.1.map(upsample)));
            }
        }
        let h = silu_dual(self.norm_out.dual(h, k), k);
        let (v, dv) = self.conv_out.dual(h);
        (v.reshape([n, d]), dv.map(|dv| dv.reshape([k * n, d])))
    }

    /// v_θ(x, t | c) for `x` of shape `(n, C·H·W)`; `labels` holds one class per row (each
    /// below `classes`), `None` the null label (or nothing, for an unconditional network).
    pub fn forward(&self, x: &Tensor<2>, t: &Tensor<1>, labels: Option<&[usize]>) -> Tensor<2> {
        self.dual(x, t, labels, None).0
    }

    /// (v, J·u) exactly by forward-mode tangents; differentiable in the weights. `u` may hold
    /// k directions stacked as `(k·n, d)` rows (direction j in rows j·n … j·n + n − 1): one
    /// pass gives all k products, stacked the same way.
    pub fn forward_jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let (v, jv) = self.dual(x, t, labels, Some(u.clone()));
        (v, jv.expect("a tangent was given"))
    }

    /// (v, ∇·v) exactly: ∇·v = Σᵢ eᵢᵀ J eᵢ with the d basis directions pushed through in
    /// chunks of `chunk` stacked directions per pass; differentiable in the weights.
    pub fn forward_divergence(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        chunk: usize,
    ) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = x.dims();
        let chunk = chunk.clamp(1, d);
        let mut v_out = None;
        let mut div: Option<Tensor<1>> = None;
        for lo in (0..d).step_by(chunk) {
            let k = chunk.min(d - lo);
            let mut e = vec![0.0; k * n * d];
            for j in 0..k {
                for r in 0..n {
                    e[(j * n + r) * d + lo + j] = 1.0;
                }
            }
            let (v, jt) = self.forward_jvp(x, t, labels, &matrix_like(e, k * n, d, x));
            for j in 0..k {
                let col = jt
                    .clone()
                    .narrow(0, j * n, n)
                    .narrow(1, lo + j, 1)
                    .reshape([n]);
                div = Some(match div {
                    None => col,
                    Some(a) => a + col,
                });
            }
            v_out.get_or_insert(v);
        }
        (v_out.expect("d ≥ 1"), div.expect("d ≥ 1"))
    }

    /// (v, Jᵀ·w): ∇ₓ⟨w, v⟩ row by row by one backward pass of burn's autodiff (the weights are
    /// constants here unless they themselves live on an autodiff device).
    pub fn forward_vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        labels: Option<&[usize]>,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let xa = x.clone().inner().autodiff().require_grad();
        let v = self.forward(&xa, t, labels);
        let grads = (v.clone() * w.clone()).sum().backward();
        let g = xa
            .grad(&grads)
            .expect("x is a tracked leaf of the forward pass");
        (v.inner(), g)
    }
}

/// Tracks the module path while visiting or mapping parameters.
#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.0.join("."))
    }
}

/// Collects every float parameter with its dotted path.
struct Collect<'a> {
    path: PathStack,
    prefix: &'a str,
    dtype: Option<StoredDType>,
    out: &'a mut StateDict,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut h = HostTensor::from_tensor(&param.val());
        if let Some(dt) = self.dtype {
            h.dtype = dt;
        }
        self.out.insert(self.path.name(self.prefix), h);
    }
}

/// Replaces every float parameter by the state-dict tensor of the same path, checking shapes.
struct Load<'a> {
    path: PathStack,
    prefix: &'a str,
    sd: &'a StateDict,
    device: &'a Device,
    dtype: DType,
    error: Option<Error>,
}

impl ModuleMapper for Load<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let name = self.path.name(self.prefix);
        let shape = param.val().dims();
        match self.sd.get_shaped(&name, &shape) {
            Err(e) => {
                self.error = Some(e);
                param
            }
            Ok(h) => {
                if let Some(v) = h.data.iter().find(|v| !v.is_finite()) {
                    self.error = Some(
                        self.sd
                            .error(format!("tensor '{name}' holds a non-finite value ({v})")),
                    );
                    return param;
                }
                Param::from_tensor(Tensor::from_data(
                    TensorData::new(h.data.clone(), shape),
                    (self.device, self.dtype),
                ))
            }
        }
    }
}

impl Unet {
    /// Adds the weights under `prefix` with their dotted paths, stored as `dtype` (default: the
    /// model's).
    pub fn write_state(&self, sd: &mut StateDict, prefix: &str, dtype: Option<StoredDType>) {
        self.visit(&mut Collect {
            path: PathStack::default(),
            prefix,
            dtype,
            out: sd,
        });
    }

    /// Names of the tensors [`Unet::write_state`] writes under `prefix`.
    pub fn state_names(&self, prefix: &str) -> Vec<String> {
        let mut sd = StateDict::new();
        self.write_state(&mut sd, prefix, None);
        sd.tensors.keys().cloned().collect()
    }

    /// Rebuilds a U-Net of architecture `config` from the tensors of `sd` under `prefix` on
    /// `device` in `dtype`; errors name the missing or mis-shaped tensor.
    pub fn from_state(
        sd: &StateDict,
        prefix: &str,
        config: &UnetConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<Unet> {
        let template = config.init(device, dtype, &mut crate::tensor::rng(0))?;
        let mut load = Load {
            path: PathStack::default(),
            prefix,
            sd,
            device,
            dtype,
            error: None,
        };
        let net = template.map(&mut load);
        match load.error {
            Some(Error::Checkpoint { path, msg }) => Err(Error::Checkpoint {
                path,
                msg: format!("{msg} (the architecture is {})", config.describe()),
            }),
            Some(e) => Err(e),
            None => Ok(net),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{cpu, randn, rng, to_vec, vector};

    /// A tiny U-Net on 1 × 4 × 4 images: two levels, attention, 3 classes, f64.
    fn tiny(classes: usize) -> (Unet, Tensor<2>, Tensor<1>) {
        let cfg = UnetConfig {
            res_blocks: 1,
            groups: 4,
            classes,
            ..UnetConfig::new(1, 4, 4, 8, &[1, 2])
        };
        let mut r = rng(3);
        let net = cfg.init(&cpu(), DType::F64, &mut r).unwrap();
        let x = randn(3, 16, &cpu(), DType::F64, &mut r);
        let t = vector(vec![0.1, 0.5, 0.9], &cpu(), DType::F64);
        (net, x, t)
    }

    /// Output shape (n, C·H·W); the parameter count of the formula equals the tensors written;
    /// a network rebuilt from its state dict computes the same field bit for bit.
    #[test]
    fn shapes_parameters_and_state_round_trip() {
        for classes in [0, 3] {
            let (net, x, t) = tiny(classes);
            let labels = [0usize, 2, 1];
            let l = (classes > 0).then_some(&labels[..]);
            let v = net.forward(&x, &t, l);
            assert_eq!(v.dims(), [3, 16]);
            let mut sd = StateDict::new();
            net.write_state(&mut sd, "", None);
            let count: usize = sd.tensors.values().map(|h| h.data.len()).sum();
            assert_eq!(count, net.config.num_params(), "classes {classes}");
            assert!(sd.tensors.contains_key("down.0.blocks.0.conv1.weight"));
            assert!(sd.tensors.contains_key("attention.qkv.weight"));
            let back = Unet::from_state(&sd, "", &net.config, &cpu(), DType::F64).unwrap();
            assert_eq!(to_vec(&back.forward(&x, &t, l)), to_vec(&v));
            // A missing tensor is named.
            sd.tensors.remove("mid1.conv2.bias");
            let e = Unet::from_state(&sd, "", &net.config, &cpu(), DType::F64)
                .unwrap_err()
                .to_string();
            assert!(e.contains("mid1.conv2.bias"), "{e}");
        }
    }

    /// Invalid configurations are one-line errors.
    #[test]
    fn bad_configs_are_refused() {
        let ok = UnetConfig::new(1, 8, 8, 32, &[1, 2]);
        assert!(ok.validate().is_ok());
        for bad in [
            UnetConfig::new(1, 6, 6, 32, &[1, 2, 2]),
            UnetConfig::new(1, 8, 8, 31, &[1, 2]),
            UnetConfig {
                groups: 5,
                ..ok.clone()
            },
            UnetConfig::new(1, 8, 8, 32, &[]),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(
                e.starts_with("invalid input: U-Net") || e.contains("U-Net"),
                "{e}"
            );
            assert!(!e.contains('\n'));
        }
    }

    /// The forward-mode tangents equal central finite differences (f64, h = 1e-5: truncation
    /// O(h²)·|v‴| ≈ 1e-10 and rounding ε|v|/h ≈ 1e-11, so 1e-7·(1 + |Ju|) is a wide margin),
    /// for one direction and for three directions stacked in one pass, with and without labels.
    #[test]
    fn tangents_match_finite_differences() {
        for classes in [0, 3] {
            let (net, x, t) = tiny(classes);
            let labels = [2usize, 0, 1];
            let l = (classes > 0).then_some(&labels[..]);
            let mut r = rng(5);
            let u = randn(9, 16, &cpu(), DType::F64, &mut r);
            let (v, ju) = net.forward_jvp(&x, &t, l, &u);
            assert_eq!(to_vec(&v), to_vec(&net.forward(&x, &t, l)));
            let h = 1e-5;
            for j in 0..3 {
                let uj = u.clone().narrow(0, 3 * j, 3);
                let fd = (net.forward(&(x.clone() + uj.clone() * h), &t, l)
                    - net.forward(&(x.clone() - uj * h), &t, l))
                    / (2.0 * h);
                let got = to_vec(&ju.clone().narrow(0, 3 * j, 3));
                for (a, b) in got.iter().zip(to_vec(&fd)) {
                    assert!((a - b).abs() < 1e-7 * (1.0 + b.abs()), "jvp {a} vs fd {b}");
                }
            }
        }
    }

    /// The autodiff VJP is the adjoint of the tangent JVP: ⟨w, J u⟩ = ⟨Jᵀ w, u⟩ row by row (f64,
    /// both exact, so only rounding: 1e-10).
    #[test]
    fn vjp_is_the_adjoint_of_jvp() {
        let (net, x, t) = tiny(0);
        let mut r = rng(6);
        let u = randn(3, 16, &cpu(), DType::F64, &mut r);
        let w = randn(3, 16, &cpu(), DType::F64, &mut r);
        let (_, ju) = net.forward_jvp(&x, &t, None, &u);
        let (v, jtw) = net.forward_vjp(&x, &t, None, &w);
        for (a, b) in to_vec(&v).iter().zip(to_vec(&net.forward(&x, &t, None))) {
            assert!((a - b).abs() < 1e-12, "v on the autodiff device {a} vs {b}");
        }
        let lhs = to_vec(&(ju * w).sum_dim(1));
        let rhs = to_vec(&(jtw * u).sum_dim(1));
        for (a, b) in lhs.iter().zip(&rhs) {
            assert!((a - b).abs() < 1e-10 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }

    /// The exact divergence (stacked basis tangents, any chunk size) is the trace of the
    /// Jacobian assembled column by column from single JVPs.
    #[test]
    fn divergence_is_the_jacobian_trace() {
        let (net, x, t) = tiny(0);
        let mut trace = [0.0; 3];
        for i in 0..16 {
            let e = crate::field::basis_like(&x, i);
            let (_, je) = net.forward_jvp(&x, &t, None, &e);
            for (r, v) in to_vec(&je.narrow(1, i, 1)).iter().enumerate() {
                trace[r] += v;
            }
        }
        for chunk in [1, 5, 16] {
            let (_, div) = net.forward_divergence(&x, &t, None, chunk);
            for (a, b) in to_vec(&div).iter().zip(&trace) {
                assert!(
                    (a - b).abs() < 1e-10 * (1.0 + b.abs()),
                    "chunk {chunk}: {a} vs {b}"
                );
            }
        }
    }
}
