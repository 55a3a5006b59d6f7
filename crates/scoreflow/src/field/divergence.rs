//! The divergence ∇·v = tr J of a field, exactly (d Jacobian–vector products,
//! [`VectorField::divergence`]) or by the Hutchinson–Skilling estimator ∇·v ≈ εᵀ J ε with
//! E\[εεᵀ\] = I: the choice ([`Divergence`]), the probes and the estimate. Used by likelihoods
//! (the instantaneous change of variables) and by score matching (the trace term).

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::VectorField;
use crate::tensor::{matrix_like, Rng, Tensor};

/// Distribution of Hutchinson probes ε with E\[εεᵀ\] = I.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeNoise {
    /// εᵢ = ±1 with probability ½ (the lower-variance choice: Var = 2Σ_{i≠j} M_ij² for
    /// symmetric M).
    #[default]
    Rademacher,
    /// ε ~ N(0, I) (Var = 2‖M‖_F² for symmetric M).
    Gaussian,
}

/// How ∇·v is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Divergence {
    /// Exact for d ≤ 16 ([`Divergence::AUTO_EXACT_MAX_DIM`]), else Hutchinson with 1 Rademacher
    /// probe (FFJORD's choice).
    #[default]
    Auto,
    /// tr J by d tangent passes ([`VectorField::divergence`]).
    Exact,
    /// (1/k) Σⱼ εⱼᵀ J εⱼ with k fixed probes.
    Hutchinson {
        /// Number of probes k ≥ 1 (k ≥ 2 gives a per-point standard error).
        probes: usize,
        /// Probe distribution.
        #[serde(default)]
        noise: ProbeNoise,
    },
}

impl Divergence {
    /// Largest dimension for which [`Divergence::Auto`] uses the exact divergence.
    pub const AUTO_EXACT_MAX_DIM: usize = 16;

    /// Replaces `Auto` by the concrete choice for dimension `d`.
    pub fn resolve(self, d: usize) -> Self {
        match self {
            Divergence::Auto if d <= Self::AUTO_EXACT_MAX_DIM => Divergence::Exact,
            Divergence::Auto => Divergence::Hutchinson {
                probes: 1,
                noise: ProbeNoise::Rademacher,
            },
            other => other,
        }
    }
}

/// k blocks of probes stacked into `(k·n, d)` (block j = rows j·n … (j+1)·n − 1), drawn from
/// `rng` row by row, on `like`'s device and dtype.
pub fn hutchinson_probes(
    like: &Tensor<2>,
    k: usize,
    noise: ProbeNoise,
    rng: &mut Rng,
) -> Tensor<2> {
    let [n, d] = like.dims();
    let data: Vec<f64> = (0..k * n * d)
        .map(|_| match noise {
            ProbeNoise::Rademacher => {
                if rng.random::<bool>() {
                    1.0
                } else {
                    -1.0
                }
            }
            ProbeNoise::Gaussian => {
                rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng)
            }
        })
        .collect();
    matrix_like(data, k * n, d, like)
}

/// (v(x, t), εᵀ J ε) for k stacked probe blocks `probes` `(k·n, d)`: one Jacobian–vector product
/// on the batch repeated k times. The estimates have shape `(n, k)`; column j uses block j.
pub fn hutchinson_divergence(
    field: &dyn VectorField,
    x: &Tensor<2>,
    t: &Tensor<1>,
    probes: &Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let [n, _] = x.dims();
    let k = probes.dims()[0] / n.max(1);
    let (v, ju) = if k == 1 {
        field.jvp(x, t, probes)
    } else {
        field.jvp(&x.clone().repeat(&[k, 1]), &t.clone().repeat(&[k]), probes)
    };
    let est = (ju * probes.clone()).sum_dim(1).reshape([k, n]).transpose();
    (v.narrow(0, 0, n), est)
}
