//! Host kernels of the fused engine: the GEMM call, fused bias + activation passes, thin-layer
//! kernels (input and output layers with a handful of features) and the optimiser update.
//!
//! Every element-wise kernel is written once as plain loops over `f32` slices and compiled three
//! times — AVX-512, AVX2 + FMA, and the baseline target — by [`multiversion!`]; the variant is
//! chosen once per process from CPU feature detection ([`isa`]). The transcendental functions
//! (eˣ, eˣ − 1, tanh, log1p, and the normal CDF Φ of exact GELU through a minimax fit of erfcx)
//! are branch-free polynomial approximations (Cephes, `bench/erfcx_fit.py`) accurate to a few
//! ulp, so the compiler can vectorise them; they agree with f64 references to ~1e-7 relative.

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
/// dispatches on [`isa`] at run time. Helpers the body calls must be `#[inline(always)]`. The
/// body sees `const FMA: bool`: true where fused multiply–add is an instruction (use [`madd`]).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp<const FMA: bool>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { imp::<true>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { imp::<true>($($arg),*) }
                match isa() {
                    // SAFETY: `isa()` detected these target features on the running CPU.
                    Isa::Avx512 => unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    Isa::Avx2 => unsafe { v3($($arg),*) },
                    Isa::Baseline => imp::<false>($($arg),*),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                imp::<{ cfg!(target_arch = "aarch64") }>($($arg),*)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Transcendentals (branch-free, vectorisable)
// ---------------------------------------------------------------------------------------------

/// a·b + c, as one fused multiply–add when `FMA` (the caller runs with the `fma` feature).
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// eˣ = 2ᵏ·(1 + q), k = round(x / ln 2), r = x − k·ln 2 (Cody–Waite), eʳ = 1 + q with
/// q = r + r²·P(r) by Cephes' degree-7 minimax polynomial; returns (2ᵏ, q). x is clamped to
/// [−87.3, 88.3] so 2ᵏ stays a normal number (no inf, no NaN from finite input; NaN stays NaN).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
fn exp_parts<const FMA: bool>(x: f32) -> (f32, f32) {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the low bits
    let x = x.clamp(-87.3, 88.3);
    let kf = madd::<FMA>(x, std::f32::consts::LOG2_E, MAGIC);
    let k = kf.to_bits() as i32 - MAGIC.to_bits() as i32;
    let kf = kf - MAGIC;
    let r = madd::<FMA>(kf, 2.121_944_4e-4, madd::<FMA>(kf, -0.693_359_4, x));
    let mut p = madd::<FMA>(1.987_569_1e-4, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 5.000_000_1e-1);
    let q = madd::<FMA>(p, r * r, r);
    (f32::from_bits((k.wrapping_add(127) << 23) as u32), q)
}

/// eˣ = 2ᵏ·(1 + q) from `exp_parts`.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    let (scale, q) = exp_parts::<FMA>(x);
    (q + 1.0) * scale
}

/// (eˣ, eˣ − 1) from one `exp_parts`: eˣ − 1 = 2ᵏq + (2ᵏ − 1), where 2ᵏ − 1 is exact and is 0
/// for |x| < ln 2 / 2, so eˣ − 1 keeps its relative accuracy as x → 0 (no cancellation).
#[inline(always)]
pub fn exp_expm1<const FMA: bool>(x: f32) -> (f32, f32) {
    let (scale, q) = exp_parts::<FMA>(x);
    ((q + 1.0) * scale, madd::<FMA>(scale, q, scale - 1.0))
}

/// σ(z) = 1 / (1 + e⁻ᶻ).
#[inline(always)]
pub fn sigmoid<const FMA: bool>(z: f32) -> f32 {
    1.0 / (1.0 + exp::<FMA>(-z))
}

/// (σ(z), σ′(z)) with σ′ = σ(z)(1 − σ(z)): with e = e⁻ᶻ and σ = 1/(1 + e) (bit for bit
/// [`sigmoid`]), 1 − σ is formed as e·σ for z ≥ 0, free of the cancellation of 1 − σ when
/// σ ≈ 1, and directly for z < 0 where σ < ½ (no cancellation).
#[inline(always)]
pub fn sigmoid_and_slope<const FMA: bool>(z: f32) -> (f32, f32) {
    let e = exp::<FMA>(-z);
    let s = 1.0 / (1.0 + e);
    let one_minus = if z < 0.0 { 1.0 - s } else { e * s };
    (s, s * one_minus)
}

/// tanh z: Cephes' odd polynomial for |z| < 0.625, else sign(z)·(1 − 2/(e^{2|z|} + 1)).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients as published
pub fn tanh<const FMA: bool>(z: f32) -> f32 {
    let a = z.abs();
    let s = z * z;
    let mut p = madd::<FMA>(-5.704_988_7e-3, s, 2.063_908_9e-2);
    p = madd::<FMA>(p, s, -5.373_971_6e-2);
    p = madd::<FMA>(p, s, 1.333_144_2e-1);
    p = madd::<FMA>(p, s, -3.333_328_2e-1);
    let small = madd::<FMA>(p * s, z, z);
    let big = 1.0 - 2.0 / (exp::<FMA>(2.0 * a) + 1.0);
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
pub fn log1p_unit<const FMA: bool>(y: f32) -> f32 {
    let u = 1.0 + y;
    let big = u > std::f32::consts::SQRT_2;
    let m = if big { 0.5 * u } else { u };
    let e = if big { 1.0 } else { 0.0 };
    let x = m - 1.0;
    let z = x * x;
    let mut p = madd::<FMA>(7.037_683_6e-2, x, -1.151_461e-1);
    for c in [
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_5e-1,
        -2.499_999_4e-1,
        3.333_333_1e-1,
    ] {
        p = madd::<FMA>(p, x, c);
    }
    let mut r = p * x * z;
    r = madd::<FMA>(e, -2.121_944_4e-4, r);
    r = madd::<FMA>(-0.5, z, r);
    let lnu = madd::<FMA>(e, 0.693_359_4, x + r);
    lnu - ((u - 1.0) - y) / u
}

/// softplus z = max(z, 0) + ln(1 + e^{−|z|}).
#[inline(always)]
pub fn softplus<const FMA: bool>(z: f32) -> f32 {
    z.max(0.0) + log1p_unit::<FMA>(exp::<FMA>(-z.abs()))
}

/// (s, e) with s = fl(a²) and s + e = a² exactly (Dekker): one fused multiply–add, or
/// Veltkamp's split of a into 12-bit halves without one. Needs |a| ≤ 2⁶⁰ (no overflow).
#[inline(always)]
fn two_square<const FMA: bool>(a: f32) -> (f32, f32) {
    let s = a * a;
    if FMA {
        (s, a.mul_add(a, -s))
    } else {
        let c = 4097.0 * a;
        let hi = c - (c - a);
        let lo = a - hi;
        (s, ((hi * hi - s) + 2.0 * hi * lo) + lo * lo)
    }
}

/// Minimax coefficients (highest degree first) of p(q) = (1 + 2x)·erfcx(x) − 1 in
/// q = (x − 2)/(x + 2) on x ∈ [0, 11.33], erfcx(x) = e^{x²} erfc(x) (Shepherd & Laframboise's
/// variable); error 1.4e-8 before rounding to f32, derived by `bench/erfcx_fit.py`.
#[allow(clippy::excessive_precision)] // printed by the fit script with f32 round-trip digits
const ERFCX_P: [f32; 11] = [
    4.235_513_2e-5,
    -3.350_238_8e-4,
    -1.254_640_4e-3,
    1.246_491_8e-3,
    8.631_498e-3,
    -8.036_522e-3,
    -5.420_267_2e-2,
    1.640_522_6e-1,
    -1.660_315_8e-1,
    -9.276_387e-2,
    2.769_784e-1,
];

/// (Φ(z), φ(z)): the standard normal CDF and density. With a = min(|z|, 16), x = a/√2:
/// Φ(−a) = ½ e^{−a²/2}·erfcx(x), erfcx(x) = (1 + p(q))/(1 + 2x) (`ERFCX_P`), and
/// φ = e^{−a²/2}/√(2π); Φ(z) = Φ(−a) for z < 0, 1 − Φ(−a) otherwise. No 1 + erf cancellation:
/// Φ keeps its relative accuracy deep in the left tail (down to f32's smallest normal). e^{−a²/2}
/// is formed from the exact square a² = s + e as e^{−s/2}(1 − e/2), so the rounding of a² —
/// a relative error of a²·2⁻²⁴ in e^{−a²/2} — does not enter; rounding x only moves erfcx, whose
/// condition number is below 1. A NaN z gives a NaN pair only through the caller's z·(…).
#[inline(always)]
pub fn normal_cdf_pdf<const FMA: bool>(z: f32) -> (f32, f32) {
    let a = z.abs().min(16.0);
    let (s, e) = two_square::<FMA>(a);
    let g = exp::<FMA>(-0.5 * s) * madd::<FMA>(-0.5, e, 1.0);
    let x = a * std::f32::consts::FRAC_1_SQRT_2;
    let q = (x - 2.0) / (x + 2.0);
    let mut p = ERFCX_P[0];
    for c in &ERFCX_P[1..] {
        p = madd::<FMA>(p, q, *c);
    }
    let tail = 0.5 * g * ((1.0 + p) / madd::<FMA>(2.0, x, 1.0));
    #[allow(clippy::excessive_precision)]
    const INV_SQRT_2PI: f32 = 0.398_942_280_401_432_7;
    let cdf = if z < 0.0 { tail } else { 1.0 - tail };
    (cdf, g * INV_SQRT_2PI)
}

/// An activation as a pair (act, act′) for the inner loops.
trait Act {
    fn f<const FMA: bool>(z: f32) -> f32;
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32);
}

struct Silu;
impl Act for Silu {
    #[inline(always)]
    fn f<const FMA: bool>(z: f32) -> f32 {
        z * sigmoid::<FMA>(z)
    }
    /// act′ = σ(z) + z σ(z)σ(−z) ([`sigmoid_and_slope`]).
    #[inline(always)]
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32) {
        let (s, ds) = sigmoid_and_slope::<FMA>(z);
        (z * s, madd::<FMA>(z, ds, s))
    }
}

struct Relu;
impl Act for Relu {
    #[inline(always)]
    fn f<const FMA: bool>(z: f32) -> f32 {
        // NaN stays NaN (it is not <= 0), as in burn.
        if z <= 0.0 {
            0.0
        } else {
            z
        }
    }
    #[inline(always)]
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32) {
        (Self::f::<FMA>(z), if z > 0.0 { 1.0 } else { 0.0 })
    }
}

struct Tanh;
impl Act for Tanh {
    #[inline(always)]
    fn f<const FMA: bool>(z: f32) -> f32 {
        tanh::<FMA>(z)
    }
    #[inline(always)]
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32) {
        let th = tanh::<FMA>(z);
        (th, madd::<FMA>(-th, th, 1.0))
    }
}

struct Softplus;
impl Act for Softplus {
    #[inline(always)]
    fn f<const FMA: bool>(z: f32) -> f32 {
        softplus::<FMA>(z)
    }
    #[inline(always)]
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32) {
        (softplus::<FMA>(z), sigmoid::<FMA>(z))
    }
}

/// Exact GELU z·Φ(z); act′ = Φ(z) + z·φ(z) ([`normal_cdf_pdf`]).
struct Gelu;
impl Act for Gelu {
    #[inline(always)]
    fn f<const FMA: bool>(z: f32) -> f32 {
        z * normal_cdf_pdf::<FMA>(z).0
    }
    #[inline(always)]
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32) {
        let (cdf, pdf) = normal_cdf_pdf::<FMA>(z);
        (z * cdf, madd::<FMA>(z, pdf, cdf))
    }
}

/// Tanh-approximate GELU ½z(1 + tanh u) = z·s, s = σ(2u), u = √(2/π)(z + 0.044715 z³);
/// act′ = s + 2z·u′·s(1 − s), u′ = √(2/π)(1 + 3·0.044715 z²), s(1 − s) by
/// [`sigmoid_and_slope`] (1 − s itself would cost ~1e-6 of act′ where s ≈ 1). u is formed from
/// z clamped to ±20,
/// where s is already 0 or 1 to f32 precision, so z³ never overflows.
struct GeluTanh;
impl GeluTanh {
    #[allow(clippy::excessive_precision)]
    const C: f32 = 0.797_884_560_802_865_4; // √(2/π)
    const K: f32 = 0.044_715;
    /// (s, s(1 − s), z²) at z clamped to ±20.
    #[inline(always)]
    fn s<const FMA: bool>(z: f32) -> (f32, f32, f32) {
        let zc = z.clamp(-20.0, 20.0);
        let z2 = zc * zc;
        let two_u = 2.0 * Self::C * zc * madd::<FMA>(Self::K, z2, 1.0);
        let (s, ds) = sigmoid_and_slope::<FMA>(two_u);
        (s, ds, z2)
    }
}
impl Act for GeluTanh {
    #[inline(always)]
    fn f<const FMA: bool>(z: f32) -> f32 {
        z * Self::s::<FMA>(z).0
    }
    #[inline(always)]
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32) {
        let (s, s1s, z2) = Self::s::<FMA>(z);
        let du2 = 2.0 * Self::C * madd::<FMA>(3.0 * Self::K, z2, 1.0);
        (z * s, madd::<FMA>(z * du2, s1s, s))
    }
}

/// The exponential-linear family λ·(z for z > 0, α(eᶻ − 1) for z ≤ 0) and its derivative
/// λ·(1, α eᶻ), given λ and λα, with eᶻ − 1 by [`exp_expm1`] (accurate as z → 0⁻, like PyTorch's expm1).
/// The exponential sees z only where z ≤ 0 (and NaN stays NaN).
#[inline(always)]
fn exp_linear<const FMA: bool>(z: f32, lambda: f32, la: f32) -> (f32, f32) {
    let zn = if z > 0.0 { 0.0 } else { z };
    let (e, em1) = exp_expm1::<FMA>(zn);
    if z > 0.0 {
        (lambda * z, lambda)
    } else {
        (la * em1, la * e)
    }
}

/// SELU: [`exp_linear`] with PyTorch's λ and α.
struct Selu;
impl Act for Selu {
    #[inline(always)]
    fn f<const FMA: bool>(z: f32) -> f32 {
        Self::f_df::<FMA>(z).0
    }
    #[inline(always)]
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32) {
        use crate::field::activation::{SELU_ALPHA, SELU_LAMBDA};
        exp_linear::<FMA>(z, SELU_LAMBDA as f32, (SELU_LAMBDA * SELU_ALPHA) as f32)
    }
}

/// ELU (α = 1): [`exp_linear`] with λ = α = 1.
struct Elu;
impl Act for Elu {
    #[inline(always)]
    fn f<const FMA: bool>(z: f32) -> f32 {
        Self::f_df::<FMA>(z).0
    }
    #[inline(always)]
    fn f_df<const FMA: bool>(z: f32) -> (f32, f32) {
        exp_linear::<FMA>(z, 1.0, 1.0)
    }
}

/// Calls `$f::<A, FMA>(args)` with `A` the activation type of `$act`.
macro_rules! with_act {
    ($act:expr, $f:ident($($arg:expr),*)) => {
        match $act {
            Activation::Silu => $f::<Silu, FMA>($($arg),*),
            Activation::Relu => $f::<Relu, FMA>($($arg),*),
            Activation::Tanh => $f::<Tanh, FMA>($($arg),*),
            Activation::Softplus => $f::<Softplus, FMA>($($arg),*),
            Activation::Gelu => $f::<Gelu, FMA>($($arg),*),
            Activation::GeluTanh => $f::<GeluTanh, FMA>($($arg),*),
            Activation::Selu => $f::<Selu, FMA>($($arg),*),
            Activation::Elu => $f::<Elu, FMA>($($arg),*),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Fused bias + activation
// ---------------------------------------------------------------------------------------------

#[inline(always)]
fn bias_act_impl<A: Act, const FMA: bool>(z: &mut [f32], bias: &[f32]) {
    for row in z.chunks_exact_mut(bias.len()) {
        for (z, b) in row.iter_mut().zip(bias) {
            *z = A::f::<FMA>(*z + b);
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
fn bias_act_deriv_impl<A: Act, const FMA: bool>(z: &mut [f32], h: &mut [f32], bias: &[f32]) {
    let w = bias.len();
    for (zr, hr) in z.chunks_exact_mut(w).zip(h.chunks_exact_mut(w)) {
        for ((z, h), b) in zr.iter_mut().zip(hr.iter_mut()).zip(bias) {
            let (f, df) = A::f_df::<FMA>(*z + b);
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
fn bias_act_tangents_impl<A: Act, const FMA: bool>(
    z: &mut [f32],
    rows: usize,
    bias: &[f32],
    drow: &mut [f32],
) {
    let w = bias.len();
    let (primal, tangents) = z.split_at_mut(rows * w);
    for (r, zr) in primal.chunks_exact_mut(w).enumerate() {
        for ((z, b), d) in zr.iter_mut().zip(bias).zip(drow.iter_mut()) {
            let (f, df) = A::f_df::<FMA>(*z + b);
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
                for (o, &mv) in or.iter_mut().zip(&m[j * w..(j + 1) * w]) {
                    *o = madd::<FMA>(xj, mv, *o);
                }
            }
        }
    }
}

/// Σᵢ a[i]·b[i] with 16 independent partial sums (vectorisable without reassociation).
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..16 {
            acc[i] = madd::<FMA>(x[i], y[i], acc[i]);
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
                *ov = dot::<FMA>(hr, &mt[c * k..(c + 1) * k]) + bias.map_or(0.0, |b| b[c]);
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
                for (o, &bv) in out[i * q..(i + 1) * q].iter_mut().zip(br) {
                    *o = madd::<FMA>(ai, bv, *o);
                }
            }
        }
    }
}

/// dst = srcᵀ for `src` rows × cols row-major.
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_cols(src, rows, cols, 0, dst);
}

multiversion! {
    /// Rows c₀ … c₀ + k − 1 of srcᵀ (k = dst.len() / rows): dst[(c − c₀)·rows + r] = src[r·cols + c]
    /// for `src` rows × cols row-major. 8 × 8 blocks go through registers, the edges one by one.
    ///
    /// # Panics
    /// If the sizes do not fit (a programming error).
    pub fn transpose_cols(src: &[f32], rows: usize, cols: usize, c0: usize, dst: &mut [f32]) {
        assert_eq!(src.len(), rows * cols, "transpose: source size");
        let k = dst.len().checked_div(rows).unwrap_or(0);
        assert!(dst.len() == rows * k && c0 + k <= cols, "transpose: destination size");
        const B: usize = 8;
        let (rb, kb) = (rows / B * B, k / B * B);
        for r0 in (0..rb).step_by(B) {
            for j0 in (0..kb).step_by(B) {
                let mut tile = [[0.0f32; B]; B];
                for (i, t) in tile.iter_mut().enumerate() {
                    let at = (r0 + i) * cols + c0 + j0;
                    t.copy_from_slice(&src[at..at + B]);
                }
                for j in 0..B {
                    let out = &mut dst[(j0 + j) * rows + r0..(j0 + j) * rows + r0 + B];
                    for i in 0..B {
                        out[i] = tile[i][j];
                    }
                }
            }
        }
        for r in 0..rows {
            let j_start = if r < rb { kb } else { 0 };
            for j in j_start..k {
                dst[j * rows + r] = src[r * cols + c0 + j];
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

/// The Adam/AdamW loop with the variant fixed at compile time (no per-element branch).
#[inline(always)]
fn adam_loop<const DECOUPLED: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: &AdamScalars,
) {
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
        let step = if DECOUPLED {
            (mi / s.c1) / ((vi / s.c2).sqrt() + s.eps)
        } else {
            (mi * s.c1) / (vi.sqrt() + s.eps)
        };
        p[i] = p[i] * s.decay - step * s.lr;
    }
}

multiversion! {
    /// One Adam/AdamW step with burn-optim's operation order: g ← s·g (+ λθ for Adam-L2);
    /// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; Adam: θ ← θ − lr·(m·c₁)/(√v + ε√(1−β₂ᵗ));
    /// AdamW: θ ← (1 − lr λ)θ − lr·(m/(1−β₁ᵗ))/(√(v/(1−β₂ᵗ)) + ε); then θ_ema ← γθ_ema + (1−γ)θ.
    pub fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], ema: &mut [f32], s: &AdamScalars) {
        if s.decoupled {
            adam_loop::<true>(p, g, m, v, s);
        } else {
            adam_loop::<false>(p, g, m, v, s);
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

    /// The polynomial transcendentals agree with the standard library (f64 reference), with and
    /// without fused multiply–add: relative error ≤ 4e-7 (≈ 3 ulp in f32) over a grid covering
    /// the saturated ranges.
    #[test]
    fn transcendentals_match_std() {
        fn check<const FMA: bool>() {
            let mut worst = [0.0f64; 4];
            for i in 0..=40_000 {
                let zf = (-40.0 + i as f64 * 0.002) as f32;
                let zd = zf as f64;
                let rel = |a: f32, b: f64| ((a as f64 - b) / b.abs().max(1e-30)).abs();
                worst[0] = worst[0].max(rel(exp::<FMA>(zf), zd.exp()));
                worst[1] = worst[1].max(rel(sigmoid::<FMA>(zf), 1.0 / (1.0 + (-zd).exp())));
                if zd != 0.0 {
                    worst[2] = worst[2].max(rel(tanh::<FMA>(zf), zd.tanh()));
                }
                worst[3] = worst[3].max(rel(softplus::<FMA>(zf), zd.exp().ln_1p()));
            }
            for (name, w) in ["exp", "sigmoid", "tanh", "softplus"].iter().zip(worst) {
                assert!(w < 4e-7, "{name} (fma {FMA}): worst relative error {w:e}");
            }
            assert_eq!(exp::<FMA>(1000.0), exp::<FMA>(88.3));
            assert!(exp::<FMA>(f32::NAN).is_nan() && tanh::<FMA>(f32::NAN).is_nan());
        }
        check::<false>();
        check::<true>();
    }

    /// The new transcendentals against f64 references (libm's erfc, std's exp_m1), with and
    /// without fused multiply–add, on z ∈ [−13, 13] in steps of 1/512 (13,313 points, every one
    /// an f32): eˣ − 1 to 4e-7 relative on [−20, 20]; the normal CDF Φ(z) to 4e-7 relative
    /// (its left tail reaches 6e-39 at z = −13, the edge of f32's normal range, so this checks
    /// the erfc route, not 1 + erf) and the density φ to 4e-7 relative. 4e-7 is ~3–7 ulp: the
    /// sum of the half-ulp roundings of the few operations after each polynomial, the
    /// polynomials' own ~1 ulp, and the 1.4e-8 fit error of erfcx (measured worst: Φ 2.6e-7,
    /// φ 1.6e-7, eˣ − 1 1.0e-7; 25 of the 13,313 Φ values exceed 3 ulp = 1.8e-7).
    #[test]
    fn normal_cdf_and_expm1_match_f64() {
        fn check<const FMA: bool>() {
            let rel = |a: f32, b: f64| ((a as f64 - b) / b.abs().max(1e-300)).abs();
            let mut worst = [0.0f64; 3];
            for i in -13 * 512..=13 * 512 {
                let zf = i as f32 / 512.0;
                let z = zf as f64;
                let (cdf, pdf) = normal_cdf_pdf::<FMA>(zf);
                worst[0] = worst[0].max(rel(cdf, 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)));
                worst[1] = worst[1].max(rel(
                    pdf,
                    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt(),
                ));
                if i != 0 {
                    let x = zf * 20.0 / 13.0;
                    worst[2] = worst[2].max(rel(exp_expm1::<FMA>(x).1, (x as f64).exp_m1()));
                }
            }
            for (name, w) in ["Phi", "phi", "expm1"].iter().zip(worst) {
                assert!(w < 4e-7, "{name} (fma {FMA}): worst relative error {w:e}");
            }
            assert!(normal_cdf_pdf::<FMA>(-30.0).0 < 1e-37 && normal_cdf_pdf::<FMA>(30.0).0 == 1.0);
            assert_eq!(exp_expm1::<FMA>(-200.0).1, -1.0);
        }
        check::<false>();
        check::<true>();
    }

    /// Wᵀ assembled from column blocks (ragged sizes, 8 × 8 blocks and edges) is the transpose.
    #[test]
    fn blocked_transpose_is_the_transpose() {
        let (rows, cols) = (70, 131);
        let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let mut dst = vec![0.0; rows * cols];
        for (i, block) in dst.chunks_mut(64 * rows).enumerate() {
            transpose_cols(&src, rows, cols, 64 * i, block);
        }
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(dst[c * rows + r], src[r * cols + c], "({r}, {c})");
            }
        }
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
