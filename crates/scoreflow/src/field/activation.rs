//! Hidden-layer nonlinearities act(z) and their derivatives act′(z) on burn tensors, as PyTorch
//! defines them (`torch.nn.SiLU`, `ReLU`, `Tanh`, `Softplus`, `GELU`, `GELU(approximate='tanh')`,
//! `SELU`, `ELU` with their default arguments).
//!
//! Both act and act′ are ordinary tensor operations, so forward-mode tangents
//! ṫ = act′(z) ⊙ ż can themselves be differentiated with respect to the weights (Hyvärinen score
//! matching trains through them). The fused CPU engine has its own f32 kernels of the same
//! functions (`fused::kernels`), tested against these.
//!
//! Exact GELU is composed from `erf` rather than burn's `activation::gelu`: burn 0.22.1's
//! default `gelu_backward` (used by backends that do not override it; Flex does) differentiates
//! the *tanh approximation* with rounded constants, while `erf`'s backward is exact everywhere.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};

use burn::tensor::activation::{relu, sigmoid, silu, softplus, tanh};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// λ of SELU (Klambauer et al. 2017; PyTorch's `scale`).
pub const SELU_LAMBDA: f64 = 1.050_700_987_355_480_5;
/// α of SELU (Klambauer et al. 2017; PyTorch's `alpha`).
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// The cubic coefficient c of the tanh approximation of GELU, u = √(2/π)(z + c z³).
pub const GELU_TANH_C: f64 = 0.044_715;

/// Hidden-layer nonlinearity. The serde / command-line names are [`Activation::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
    /// Exact GELU z·Φ(z), Φ(z) = ½(1 + erf(z/√2)) the standard normal CDF (PyTorch's default
    /// `nn.GELU()`).
    Gelu,
    /// GELU by the tanh approximation ½z(1 + tanh u) = z·σ(2u), u = √(2/π)(z + 0.044715 z³)
    /// (`nn.GELU(approximate='tanh')`).
    #[serde(rename = "gelu-tanh")]
    GeluTanh,
    /// SELU λ·z for z > 0, λα(eᶻ − 1) for z ≤ 0 ([`SELU_LAMBDA`], [`SELU_ALPHA`]).
    Selu,
    /// ELU z for z > 0, eᶻ − 1 for z ≤ 0 (α = 1).
    Elu,
}

impl Activation {
    /// Every activation, in the order of the documentation.
    pub const ALL: [Activation; 8] = [
        Activation::Silu,
        Activation::Relu,
        Activation::Tanh,
        Activation::Softplus,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Selu,
        Activation::Elu,
    ];

    /// The name (as serialised and as the command line spells it).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Softplus => "softplus",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu-tanh",
            Activation::Selu => "selu",
            Activation::Elu => "elu",
        }
    }

    /// act(z).
    pub fn apply<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Silu => silu(z),
            Activation::Relu => relu(z),
            Activation::Tanh => tanh(z),
            Activation::Softplus => softplus(z, 1.0),
            Activation::Gelu => normal_cdf(z.clone()) * z,
            Activation::GeluTanh => sigmoid(gelu_tanh_u(z.clone()) * 2.0) * z,
            Activation::Selu => exponential_linear(z, SELU_ALPHA) * SELU_LAMBDA,
            Activation::Elu => exponential_linear(z, 1.0),
        }
    }

    /// act′(z): SiLU σ(z)(1 + z(1 − σ(z))); ReLU 𝟙(z > 0); tanh 1 − tanh²z; softplus σ(z);
    /// GELU Φ(z) + z φ(z), φ(z) = e^{−z²/2}/√(2π); GELU-tanh s + 2z u′(z) s(1 − s) with
    /// s = σ(2u), u′ = √(2/π)(1 + 3·0.044715 z²); SELU λ for z > 0, λα eᶻ for z ≤ 0; ELU 1 for
    /// z > 0, eᶻ for z ≤ 0. At z = 0 the one-sided choices are PyTorch's (the z ≤ 0 branch for
    /// SELU and ELU, 0 for ReLU).
    pub fn derivative<const D: usize>(self, z: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Silu => {
                let s = sigmoid(z.clone());
                s.clone() * (z * (s.neg() + 1.0) + 1.0)
            }
            Activation::Relu => positive(z),
            Activation::Tanh => {
                let th = tanh(z);
                th.clone().mul(th).neg() + 1.0
            }
            Activation::Softplus => sigmoid(z),
            Activation::Gelu => {
                let pdf = (z.clone().square() * -0.5).exp() * (1.0 / (2.0 * PI).sqrt());
                normal_cdf(z.clone()) + z * pdf
            }
            Activation::GeluTanh => {
                let c = (2.0 / PI).sqrt();
                let s = sigmoid(gelu_tanh_u(z.clone()) * 2.0);
                let du = (z.clone().square() * (3.0 * GELU_TANH_C * c)) + c;
                let ds = s.clone() * (s.clone().neg() + 1.0);
                s + z * du * ds * 2.0
            }
            Activation::Selu => exponential_linear_derivative(z, SELU_ALPHA) * SELU_LAMBDA,
            Activation::Elu => exponential_linear_derivative(z, 1.0),
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Activation {
    type Err = Error;

    /// The activation named `s` ([`Activation::name`]); anything else is a one-line error
    /// listing the names.
    fn from_str(s: &str) -> Result<Self> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown activation '{s}' (expected one of {})",
                    Activation::ALL.map(Activation::name).join(", ")
                ))
            })
    }
}

/// 𝟙(z > 0) as a float tensor of z's dtype (no gradient).
fn positive<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    let dt = z.dtype();
    z.greater_elem(0.0).float().cast(dt)
}

/// Φ(z) = ½(1 + erf(z/√2)), the standard normal CDF.
fn normal_cdf<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    ((z * FRAC_1_SQRT_2).erf() + 1.0) * 0.5
}

/// u(z) = √(2/π)(z + 0.044715 z³) of the tanh-approximate GELU.
fn gelu_tanh_u<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    let c = FRAC_2_SQRT_PI * FRAC_1_SQRT_2; // √(2/π)
    (z.clone().square() * (GELU_TANH_C * c) + c) * z
}

/// max(z, 0) + α(e^{min(z, 0)} − 1): z for z > 0, α(eᶻ − 1) for z ≤ 0. The exponential only
/// sees min(z, 0), so it never overflows (no ∞·0 = NaN in a backward pass).
fn exponential_linear<const D: usize>(z: Tensor<D>, alpha: f64) -> Tensor<D> {
    z.clone().clamp_min(0.0) + (z.clamp_max(0.0).exp() - 1.0) * alpha
}

/// 1 for z > 0, α e^{min(z, 0)} for z ≤ 0: the derivative of [`exponential_linear`].
fn exponential_linear_derivative<const D: usize>(z: Tensor<D>, alpha: f64) -> Tensor<D> {
    let pos = positive(z.clone());
    let neg = z.clamp_max(0.0).exp() * alpha;
    pos.clone() + (pos.neg() + 1.0) * neg
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tensor::{cpu, to_vec, vector, DType};

    /// One activation's PyTorch values on the fixture grid: (act, act(z), act′(z)).
    pub(crate) type TorchValues = (Activation, Vec<f64>, Vec<f64>);

    /// The PyTorch fixture `tests/data/activations.csv` (written by
    /// `bench/activation_fixture.py`): z, then act(z), act′(z) per activation.
    pub(crate) fn torch_fixture() -> (Vec<f64>, Vec<TorchValues>) {
        let text = include_str!("../../tests/data/activations.csv");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        let rows: Vec<Vec<f64>> = lines
            .map(|l| l.split(',').map(|v| v.parse().expect("number")).collect())
            .collect();
        let col = |name: &str| {
            let j = header.iter().position(|h| *h == name).expect(name);
            rows.iter().map(|r| r[j]).collect::<Vec<f64>>()
        };
        let acts = Activation::ALL
            .into_iter()
            .map(|a| (a, col(a.name()), col(&format!("d_{}", a.name()))))
            .collect();
        (col("z"), acts)
    }

    /// act(z) and act′(z) in f64 agree with PyTorch's float64 modules and autograd on the
    /// fixture grid z ∈ [−10, 10]. Both sides evaluate the same formulas to a few ulp, except
    /// that PyTorch forms GELU as ½z(1 + erf) and ELU/SELU with expm1 and we may use the
    /// algebraically equal z·σ(2u) or e^z − 1: the difference is bounded by the cancellation in
    /// 1 + (…), a few ulp of 1 times |z| ≤ 10, so |ours − torch| ≤ 1e-14·(1 + |torch|).
    #[test]
    fn values_and_derivatives_match_pytorch() {
        let (z, acts) = torch_fixture();
        let zt = vector(z.clone(), &cpu(), DType::F64);
        for (act, f, df) in acts {
            let got_f = to_vec(&act.apply(zt.clone()));
            let got_df = to_vec(&act.derivative(zt.clone()));
            for i in 0..z.len() {
                for (what, a, b) in [("act", got_f[i], f[i]), ("act'", got_df[i], df[i])] {
                    assert!(
                        (a - b).abs() <= 1e-14 * (1.0 + b.abs()),
                        "{act} {what}({}) = {a:e}, PyTorch {b:e}",
                        z[i]
                    );
                }
            }
        }
    }

    /// act′ is the derivative of act: central differences in f64 with h = 1e-5 have truncation
    /// error h²/6·|act‴| ≲ 4e-11 (|act‴| ≤ 2 for these functions away from their kinks) and
    /// rounding error ε·|act|/h ≈ 2e-11·|act|, so the bound 1e-9·(1 + |act|) leaves a margin of
    /// ~50. Points within h of the kink at 0 (ReLU, SELU, ELU) are skipped.
    #[test]
    fn derivatives_match_finite_differences() {
        let z: Vec<f64> = (-400..=400)
            .map(|k| k as f64 * 0.025 + 0.0123)
            .filter(|z: &f64| z.abs() > 1e-3)
            .collect();
        let h = 1e-5;
        let dev = cpu();
        let at = |a: Activation, dz: f64| {
            to_vec(&a.apply(vector(z.iter().map(|z| z + dz).collect(), &dev, DType::F64)))
        };
        for act in Activation::ALL {
            let d = to_vec(&act.derivative(vector(z.clone(), &dev, DType::F64)));
            let (fp, fm, f0) = (at(act, h), at(act, -h), at(act, 0.0));
            for i in 0..z.len() {
                let fd = (fp[i] - fm[i]) / (2.0 * h);
                assert!(
                    (d[i] - fd).abs() <= 1e-9 * (1.0 + f0[i].abs()),
                    "{act}'({}) = {}, finite difference {fd}",
                    z[i],
                    d[i]
                );
            }
        }
    }

    /// The names round-trip through `FromStr` and serde, and a bad name is a one-line error.
    #[test]
    fn names_round_trip() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
            assert_eq!(serde_json::from_str::<Activation>(&json).unwrap(), a);
        }
        let e = "swish".parse::<Activation>().unwrap_err().to_string();
        assert!(
            e.contains("'swish'") && e.contains("gelu-tanh") && !e.contains('\n'),
            "{e}"
        );
    }
}
