//! Helpers around burn tensors: host ↔ tensor conversion and seeded noise.
//!
//! Rule: a new tensor takes its dtype and device from an existing one (`*_like`) or from an
//! explicit `(device, dtype)`; nothing relies on the device's default dtype, so f32 and f64
//! code can share one process.

pub use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The crate's random number generator: ChaCha8, seeded explicitly, portable and serialisable
/// by (seed, stream, word position).
pub type Rng = rand_chacha::ChaCha8Rng;

/// A fresh generator from a seed.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// The default CPU device (burn Flex).
pub fn cpu() -> Device {
    Device::flex()
}

/// A `(rows, cols)` tensor from row-major host data.
///
/// # Panics
/// If `data.len() != rows * cols` (a programming error, not user input).
pub fn matrix(
    data: Vec<f64>,
    rows: usize,
    cols: usize,
    device: &Device,
    dtype: DType,
) -> Tensor<2> {
    assert_eq!(
        data.len(),
        rows * cols,
        "matrix: {} values for {rows}x{cols}",
        data.len()
    );
    Tensor::from_data(TensorData::new(data, [rows, cols]), (device, dtype))
}

/// A `(n,)` tensor from host data.
pub fn vector(data: Vec<f64>, device: &Device, dtype: DType) -> Tensor<1> {
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), (device, dtype))
}

/// A `(rows, cols)` tensor like `like` (same device and dtype).
pub fn matrix_like<const D: usize>(
    data: Vec<f64>,
    rows: usize,
    cols: usize,
    like: &Tensor<D>,
) -> Tensor<2> {
    matrix(data, rows, cols, &like.device(), like.dtype())
}

/// A `(n,)` tensor like `like` (same device and dtype).
pub fn vector_like<const D: usize>(data: Vec<f64>, like: &Tensor<D>) -> Tensor<1> {
    vector(data, &like.device(), like.dtype())
}

/// Copies any float tensor to host as row-major `f64`.
pub fn to_vec<const D: usize>(t: &Tensor<D>) -> Vec<f64> {
    t.to_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("float tensor converts to f64")
}

/// The time vector t·1 of length `batch(x)`, on x's device and dtype.
pub fn times_like(x: &Tensor<2>, t: f64) -> Tensor<1> {
    let n = x.dims()[0];
    Tensor::full([n], t, (&x.device(), x.dtype()))
}

/// `(rows, cols)` i.i.d. N(0, 1) draws from `rng`, on `device` in `dtype`.
pub fn randn(rows: usize, cols: usize, device: &Device, dtype: DType, rng: &mut Rng) -> Tensor<2> {
    let data: Vec<f64> = (0..rows * cols)
        .map(|_| StandardNormal.sample(rng))
        .collect();
    matrix(data, rows, cols, device, dtype)
}

/// N(0, I) draws shaped like `x`.
pub fn randn_like(x: &Tensor<2>, rng: &mut Rng) -> Tensor<2> {
    let [r, c] = x.dims();
    randn(r, c, &x.device(), x.dtype(), rng)
}

/// `(n,)` i.i.d. U(lo, hi) draws from `rng`.
pub fn uniform(
    n: usize,
    lo: f64,
    hi: f64,
    device: &Device,
    dtype: DType,
    rng: &mut Rng,
) -> Tensor<1> {
    use rand::Rng as _;
    let data: Vec<f64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    vector(data, device, dtype)
}

/// True when every entry is finite (no NaN, no ±∞).
pub fn all_finite<const D: usize>(x: &Tensor<D>) -> bool {
    to_vec(x).iter().all(|v| v.is_finite())
}

/// Row-wise broadcast of a per-sample scalar: `(n,)` → `(n, 1)`, ready to multiply `(n, d)`.
pub fn col(t: &Tensor<1>) -> Tensor<2> {
    t.clone().unsqueeze_dim(1)
}
