//! Host kernels of the fused engine: the GEMM call, fused bias + activation passes, thin-layer
//! kernels (input and output layers with a handful of features) and the optimiser update.
//!
//! Every element-wise kernel is written once as plain loops over `f32` slices and compiled three
//! times — AVX-512, AVX2 + FMA, and the baseline target — by [`multiversion!`]; the variant is
//! chosen once per process from CPU feature detection ([`isa`]). The transcendental functions
//! (eˣ, tanh, log1p) are branch-free polynomial approximations (Cephes) accurate to ~2 ulp, so the
//! compiler can vectorise them; they agree with the standard library to ~1e-7 relative.

use std::sync::OnceLock;

use crate::field::mlp::Activation;

/// The instruction-set level the kernels run with on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// x86-64-v4: AVX-512 F/VL/DQ/BW + AVX2 + FMA.
    Avx512,
    /// x86-64-v3: AVX2 + FMA.
    Avx2,
    /// The compilation target's baseline (SSE2 on x86-64).
    Baseline,
}

/// Isa = the widest of {AVX-512, AVX2+FMA, baseline} this CPU supports (detected once).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    })
}

/// Defines `fn name(args)` whose body is compiled for AVX-512, AVX2 + FMA and the baseline, and
/// dispatches on [`isa`] at run time. Helpers the body calls must be `#[inline(always)]`.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                match isa() {
                    // SAFETY: `isa()` detected these target features on the running CPU.
                    Isa::Avx512 => unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    Isa::Avx2 => unsafe { v3($($arg),*) },
                    Isa::Baseline => imp($($arg),*),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                imp($($arg),*)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Transcendentals (branch-free, vectorisable)
// ---------------------------------------------------------------------------------------------

/// eˣ = 2ᵏ·eʳ, k = round(x / ln 2), r = x − k·ln 2 (Cody–Waite), eʳ by Cephes' degree-7 minimax
/// polynomial; x is clamped to [−87.3, 88.3] so 2ᵏ stays a normal number (no inf, no NaN from
/// finite input).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the low bits
    let x = x.clamp(-87.3, 88.3);
    let kf = x * std::f32::consts::LOG2_E + MAGIC;
    let k = kf.to_bits() as i32 - MAGIC.to_bits() as i32;
    let kf = kf - MAGIC;
    let r = x - kf * 0.693_359_4 - kf * -2.121_944_4e-4;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let er = p * r2 + r + 1.0;
    er * f32::from_bits((k.wrapping_add(127) << 23) as u32)
}

/// σ(z) = 1 / (1 + e⁻ᶻ).
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// tanh z: Cephes' odd polynomial for |z| < 0.625, else sign(z)·(1 − 2/(e^{2|z|} + 1)).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
pub fn tanh(z: f32) -> f32 {
    let a = z.abs();
    let s = z * z;
    let small =
        ((((-5.704_988_7e-3 * s + 2.063_908_9e-2) * s - 5.373_971_6e-2) * s + 1.333_144_2e-1) * s
            - 3.333_328_2e-1)
            * s
            * z
            + z;
    let big = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    let big = if z < 0.0 { -big } else { big };
    if a < 0.625 {
        small
    } else {
        big
    }
}

/// ln(1 + y) for y ∈ [0, 1]: u = 1 + y, ln u by Cephes' logf polynomial on the mantissa, plus the
/// correction −((u − 1) − y)/u for the rounding of u.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
pub fn log1p_unit(y: f32) -> f32 {
    let u = 1.0 + y;
    let big = u > std::f32::consts::SQRT_2;
    let m = if big { 0.5 * u } else { u };
    let e = if big { 1.0 } else { 0.0 };
    let x = m - 1.0;
    let z = x * x;
    let mut p = 7.037_683_6e-2 * x - 1.151_461e-1;
    p = p * x + 1.167_699_9e-1;
    p = p * x - 1.242_014_1e-1;
    p = p * x + 1.424_932_3e-1;
    p = p * x - 1.666_805_8e-1;
    p = p * x + 2.000_071_5e-1;
    p = p * x - 2.499_999_4e-1;
    p = p * x + 3.333_333_1e-1;
    let mut r = p * x * z;
    r += e * -2.121_944_4e-4;
    r -= 0.5 * z;
    let lnu = x + r + e * 0.693_359_4;
    lnu - ((u - 1.0) - y) / u
}

/// softplus z = max(z, 0) + ln(1 + e^{−|z|}).
#[inline(always)]
pub fn softplus(z: f32) -> f32 {
    z.max(0.0) + log1p_unit(exp(-z.abs()))
}

/// An activation as a pair (act, act′) for the inner loops.
trait Act {
    fn f(z: f32) -> f32;
    fn f_df(z: f32) -> (f32, f32);
}

struct Silu;
impl Act for Silu {
    #[inline(always)]
    fn f(z: f32) -> f32 {
        z * sigmoid(z)
    }
    #[inline(always)]
    fn f_df(z: f32) -> (f32, f32) {
        let s = sigmoid(z);
        (z * s, s * (z * (1.0 - s) + 1.0))
    }
}

struct Relu;
impl Act for Relu {
    #[inline(always)]
    fn f(z: f32) -> f32 {
        // NaN stays NaN (it is not <= 0), as in burn.
        if z <= 0.0 {
            0.0
        } else {
            z
        }
    }
    #[inline(always)]
    fn f_df(z: f32) -> (f32, f32) {
        (Self::f(z), if z > 0.0 { 1.0 } else { 0.0 })
    }
}

struct Tanh;
impl Act for Tanh {
    #[inline(always)]
    fn f(z: f32) -> f32 {
        tanh(z)
    }
    #[inline(always)]
    fn f_df(z: f32) -> (f32, f32) {
        let th = tanh(z);
        (th, 1.0 - th * th)
    }
}

struct Softplus;
impl Act for Softplus {
    #[inline(always)]
    fn f(z: f32) -> f32 {
        softplus(z)
    }
    #[inline(always)]
    fn f_df(z: f32) -> (f32, f32) {
        (softplus(z), sigmoid(z))
    }
}

/// Calls `$f::<A>(args)` with `A` the activation type of `$act`.
macro_rules! with_act {
    ($act:expr, $f:ident($($arg:expr),*)) => {
        match $act {
            Activation::Silu => $f::<Silu>($($arg),*),
            Activation::Relu => $f::<Relu>($($arg),*),
            Activation::Tanh => $f::<Tanh>($($arg),*),
            Activation::Softplus => $f::<Softplus>($($arg),*),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Fused bias + activation
// ---------------------------------------------------------------------------------------------

#[inline(always)]
fn bias_act_impl<A: Act>(z: &mut [f32], bias: &[f32]) {
    for row in z.chunks_exact_mut(bias.len()) {
        for (z, b) in row.iter_mut().zip(bias) {
            *z = A::f(*z + b);
        }
    }
}

multiversion! {
    /// z ← act(z + b) row by row (`z` row-major with `bias.len()` columns): the sampling pass.
    pub fn bias_act(z: &mut [f32], bias: &[f32], act: Activation) {
        with_act!(act, bias_act_impl(z, bias))
    }
}

#[inline(always)]
fn bias_act_deriv_impl<A: Act>(z: &mut [f32], h: &mut [f32], bias: &[f32]) {
    let w = bias.len();
    for (zr, hr) in z.chunks_exact_mut(w).zip(h.chunks_exact_mut(w)) {
        for ((z, h), b) in zr.iter_mut().zip(hr.iter_mut()).zip(bias) {
            let (f, df) = A::f_df(*z + b);
            *h = f;
            *z = df;
        }
    }
}

multiversion! {
    /// With y = z + b: h ← act(y) and z ← act′(y) (the training pass keeps act′ for backward).
    pub fn bias_act_deriv(z: &mut [f32], h: &mut [f32], bias: &[f32], act: Activation) {
        with_act!(act, bias_act_deriv_impl(z, h, bias))
    }
}

#[inline(always)]
fn bias_act_tangents_impl<A: Act>(z: &mut [f32], rows: usize, bias: &[f32], drow: &mut [f32]) {
    let w = bias.len();
    let (primal, tangents) = z.split_at_mut(rows * w);
    for (r, zr) in primal.chunks_exact_mut(w).enumerate() {
        for ((z, b), d) in zr.iter_mut().zip(bias).zip(drow.iter_mut()) {
            let (f, df) = A::f_df(*z + b);
            *z = f;
            *d = df;
        }
        for block in tangents.chunks_exact_mut(rows * w) {
            for (t, d) in block[r * w..(r + 1) * w].iter_mut().zip(drow.iter()) {
                *t *= d;
            }
        }
    }
}

multiversion! {
    /// Stacked primal + tangent rows `[Z; Ż₁; …; Ż_k]` (k blocks of `rows` rows): primal
    /// h = act(z + b), tangents ḣ = act′(z + b) ⊙ ż. `drow` is scratch of one row.
    pub fn bias_act_tangents(z: &mut [f32], rows: usize, bias: &[f32], act: Activation, drow: &mut [f32]) {
        with_act!(act, bias_act_tangents_impl(z, rows, bias, drow))
    }
}

multiversion! {
    /// Adds `bias` to every row of the first `rows` rows of `z` (the primal block).
    pub fn add_bias(z: &mut [f32], rows: usize, bias: &[f32]) {
        let w = bias.len();
        for row in z[..rows * w].chunks_exact_mut(w) {
            for (z, b) in row.iter_mut().zip(bias) {
                *z += b;
            }
        }
    }
}

multiversion! {
    /// Backward through act: g ← g ⊙ act′ and db += Σ_rows g (the bias gradient), in one pass.
    pub fn mul_deriv_colsum(g: &mut [f32], deriv: &[f32], db: &mut [f32]) {
        let w = db.len();
        for (gr, dr) in g.chunks_exact_mut(w).zip(deriv.chunks_exact(w)) {
            for ((g, d), acc) in gr.iter_mut().zip(dr).zip(db.iter_mut()) {
                *g *= d;
                *acc += *g;
            }
        }
    }
}

multiversion! {
    /// db += Σ_rows g.
    pub fn colsum(g: &[f32], db: &mut [f32]) {
        let w = db.len();
        for gr in g.chunks_exact(w) {
            for (g, acc) in gr.iter().zip(db.iter_mut()) {
                *acc += g;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Thin layers
// ---------------------------------------------------------------------------------------------

multiversion! {
    /// out[r, :] = b + Σⱼ inp[r, j]·m[j, :] with `inp` rows × k, `m` k × w row-major (few inputs:
    /// the input layer, or the backward of the output layer through Wᵀ). `bias` None means 0.
    pub fn affine_small_k(inp: &[f32], k: usize, m: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        let w = m.len() / k;
        for (xr, or) in inp.chunks_exact(k).zip(out.chunks_exact_mut(w)) {
            match bias {
                Some(b) => or.copy_from_slice(b),
                None => or.fill(0.0),
            }
            for (j, &xj) in xr.iter().enumerate() {
                for (o, mv) in or.iter_mut().zip(&m[j * w..(j + 1) * w]) {
                    *o += xj * mv;
                }
            }
        }
    }
}

/// Σᵢ a[i]·b[i] with 16 independent partial sums (vectorisable without reassociation).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0.0;
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

multiversion! {
    /// out[r, o] = b[o] + h[r, :]·mt[o, :] with `h` rows × k and `mt` = Wᵀ (o × k row-major): a
    /// layer with few outputs (the output layer).
    pub fn rows_dot(h: &[f32], k: usize, mt: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        let o = mt.len() / k;
        for (hr, or) in h.chunks_exact(k).zip(out.chunks_exact_mut(o)) {
            for (c, ov) in or.iter_mut().enumerate() {
                *ov = dot(hr, &mt[c * k..(c + 1) * k]) + bias.map_or(0.0, |b| b[c]);
            }
        }
    }
}

multiversion! {
    /// out[i, :] += Σ_r a[r, i]·b[r, :] (out += aᵀb) with `a` rows × p (p small), `b` rows × q.
    pub fn acc_at_b(a: &[f32], p: usize, b: &[f32], out: &mut [f32]) {
        let q = out.len() / p;
        for (ar, br) in a.chunks_exact(p).zip(b.chunks_exact(q)) {
            for (i, &ai) in ar.iter().enumerate() {
                for (o, bv) in out[i * q..(i + 1) * q].iter_mut().zip(br) {
                    *o += ai * bv;
                }
            }
        }
    }
}

multiversion! {
    /// dst = srcᵀ for `src` rows × cols row-major: 8 × 8 blocks go through registers, the
    /// ragged edges element by element.
    pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
        assert_eq!(src.len(), rows * cols, "transpose: source size");
        assert_eq!(dst.len(), rows * cols, "transpose: destination size");
        const B: usize = 8;
        let (rb, cb) = (rows / B * B, cols / B * B);
        for r0 in (0..rb).step_by(B) {
            for c0 in (0..cb).step_by(B) {
                let mut tile = [[0.0f32; B]; B];
                for (i, t) in tile.iter_mut().enumerate() {
                    t.copy_from_slice(&src[(r0 + i) * cols + c0..(r0 + i) * cols + c0 + B]);
                }
                for j in 0..B {
                    let out = &mut dst[(c0 + j) * rows + r0..(c0 + j) * rows + r0 + B];
                    for i in 0..B {
                        out[i] = tile[i][j];
                    }
                }
            }
        }
        for r in 0..rows {
            let c_start = if r < rb { cb } else { 0 };
            for c in c_start..cols {
                dst[c * rows + r] = src[r * cols + c];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reductions and the optimiser update
// ---------------------------------------------------------------------------------------------

multiversion! {
    /// Σᵢ xᵢ², accumulated in 16 f32 lanes per block of 4096 and summed in f64.
    pub fn sum_sq(x: &[f32]) -> f64 {
        let mut total = 0.0f64;
        for block in x.chunks(4096) {
            let mut acc = [0.0f32; 16];
            let c = block.chunks_exact(16);
            let rem = c.remainder();
            for v in c {
                for i in 0..16 {
                    acc[i] += v[i] * v[i];
                }
            }
            total += acc.iter().map(|&a| a as f64).sum::<f64>() + rem.iter().map(|&a| (a * a) as f64).sum::<f64>();
        }
        total
    }
}

multiversion! {
    /// dst = Σ_s srcs[s] (the reduction of per-thread gradients).
    pub fn sum_into(dst: &mut [f32], srcs: &[&[f32]]) {
        dst.copy_from_slice(srcs[0]);
        for s in &srcs[1..] {
            for (d, v) in dst.iter_mut().zip(s.iter()) {
                *d += v;
            }
        }
    }
}

/// Scalars of one Adam/AdamW update (all f32, computed once per step as burn does).
#[derive(Debug, Clone, Copy)]
pub struct AdamScalars {
    /// Gradient scale from clipping (1 when not clipped).
    pub grad_scale: f32,
    /// L2 penalty λ added to the gradient (Adam with weight decay), 0 for none.
    pub l2: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// Learning rate.
    pub lr: f32,
    /// Adam: the multiplier √(1 − β₂ᵗ)/(1 − β₁ᵗ); AdamW: the divisor 1 − β₁ᵗ.
    pub c1: f32,
    /// AdamW: the divisor 1 − β₂ᵗ (unused by Adam).
    pub c2: f32,
    /// Adam: ε·√(1 − β₂ᵗ); AdamW: ε.
    pub eps: f32,
    /// AdamW: 1 − lr·λ, multiplies θ before the step (1 for Adam).
    pub decay: f32,
    /// True for AdamW's form m̂/(√v̂ + ε); false for Adam's m·c₁/(√v + ε√(1−β₂ᵗ)).
    pub decoupled: bool,
    /// EMA decay γ for θ_ema ← γ θ_ema + (1 − γ) θ (ignored when the EMA slice is empty).
    pub ema: f32,
}

multiversion! {
    /// One Adam/AdamW step with burn-optim's operation order: g ← s·g (+ λθ for Adam-L2);
    /// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; Adam: θ ← θ − lr·(m·c₁)/(√v + ε√(1−β₂ᵗ));
    /// AdamW: θ ← (1 − lr λ)θ − lr·(m/(1−β₁ᵗ))/(√(v/(1−β₂ᵗ)) + ε); then θ_ema ← γθ_ema + (1−γ)θ.
    pub fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], ema: &mut [f32], s: &AdamScalars) {
        let (f1, f2) = (1.0 - s.beta1, 1.0 - s.beta2);
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let mut gi = g[i] * s.grad_scale;
            gi += p[i] * s.l2;
            let mi = m[i] * s.beta1 + gi * f1;
            let vi = v[i] * s.beta2 + gi * gi * f2;
            m[i] = mi;
            v[i] = vi;
            let step = if s.decoupled {
                (mi / s.c1) / ((vi / s.c2).sqrt() + s.eps)
            } else {
                (mi * s.c1) / (vi.sqrt() + s.eps)
            };
            p[i] = p[i] * s.decay - step * s.lr;
        }
        if !ema.is_empty() {
            let (gam, one_m) = (s.ema, 1.0 - s.ema);
            for (e, &pi) in ema.iter_mut().zip(p.iter()) {
                *e = *e * gam + pi * one_m;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GEMM
// ---------------------------------------------------------------------------------------------

/// A read-only matrix operand: `data[r·rs + c·cs]` is element (r, c).
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    /// Storage.
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: cols,
        }
    }
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// C = A·B (or C += A·B when `accumulate`), C row-major m × n, A m × k, B k × n, on the calling
/// thread (the engine parallelises over rows itself).
///
/// # Panics
/// If an operand is too small for its shape (a programming error).
pub fn matmul(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    assert!(a.fits(m, k), "matmul: lhs too small for {m}x{k}");
    assert!(b.fits(k, n), "matmul: rhs too small for {k}x{n}");
    assert!(c.len() >= m * n, "matmul: dst too small for {m}x{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above guarantee every index the kernel touches is in bounds; the
    // destination is a unique borrow and does not alias the shared operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polynomial transcendentals agree with the standard library (f64 reference): relative
    /// error ≤ 4e-7 (≈ 3 ulp in f32) over a grid covering the saturated ranges.
    #[test]
    fn transcendentals_match_std() {
        let mut worst = [0.0f64; 4];
        for i in 0..=40_000 {
            let z = -40.0 + i as f64 * 0.002;
            let zf = z as f32;
            let zd = zf as f64;
            let rel = |a: f32, b: f64| ((a as f64 - b) / b.abs().max(1e-30)).abs();
            worst[0] = worst[0].max(rel(exp(zf), zd.exp()));
            worst[1] = worst[1].max(rel(sigmoid(zf), 1.0 / (1.0 + (-zd).exp())));
            if zd != 0.0 {
                worst[2] = worst[2].max(rel(tanh(zf), zd.tanh()));
            }
            worst[3] = worst[3].max(rel(softplus(zf), zd.exp().ln_1p()));
        }
        for (name, w) in ["exp", "sigmoid", "tanh", "softplus"].iter().zip(worst) {
            assert!(w < 4e-7, "{name}: worst relative error {w:e}");
        }
        assert_eq!(exp(1000.0), exp(88.3));
        assert!(exp(f32::NAN).is_nan() && tanh(f32::NAN).is_nan());
    }

    /// Every kernel variant (the run-time dispatch) computes what a naive triple loop computes.
    #[test]
    fn matmul_and_thin_kernels_match_naive_loops() {
        let (m, n, k) = (7, 5, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive = |i: usize, j: usize| (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum::<f32>();
        let mut c = vec![1.0; m * n];
        matmul(
            m,
            n,
            k,
            MatRef::row_major(&a, k),
            MatRef::row_major(&b, n),
            &mut c,
            true,
        );
        let mut c2 = vec![0.0; m * n];
        affine_small_k(&a, k, &b, None, &mut c2);
        let mut bt = vec![0.0; k * n];
        transpose(&b, k, n, &mut bt);
        let mut c3 = vec![0.0; m * n];
        rows_dot(&a, k, &bt, None, &mut c3);
        let mut at = vec![0.0; m * k];
        transpose(&a, m, k, &mut at);
        let mut c4 = vec![0.0; m * n];
        acc_at_b(&at, m, &b, &mut c4); // (aᵀ)ᵀ b = a b
        for i in 0..m {
            for j in 0..n {
                let e = naive(i, j);
                for (name, got) in [
                    ("gemm", c[i * n + j] - 1.0),
                    ("small_k", c2[i * n + j]),
                    ("rows_dot", c3[i * n + j]),
                    ("acc_at_b", c4[i * n + j]),
                ] {
                    assert!((got - e).abs() < 1e-5, "{name} ({i},{j}): {got} vs {e}");
                }
            }
        }
    }
}
