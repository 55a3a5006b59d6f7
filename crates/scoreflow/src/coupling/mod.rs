//! Couplings: how conditional flow matching pairs a source minibatch x₀ with a target minibatch
//! x₁ before drawing points on the paths between them (Tong et al. 2024, "Improving and
//! generalizing flow-based generative models with minibatch optimal transport"; Pooladian et
//! al. 2023). A coupling is a joint distribution q(x₀, x₁) with the two marginals; on a
//! minibatch it is a [`Pairing`] of row indices.
//!
//! | name | q(x₀, x₁) on a minibatch of n pairs | TorchCFM |
//! |---|---|---|
//! | `independent` | q₀ ⊗ q₁: rows paired as drawn | `ConditionalFlowMatcher` (I-CFM) |
//! | `ot` | the exact OT plan for ‖x₀ − x₁‖²: a permutation ([`assignment`]) | `ExactOptimalTransportConditionalFlowMatcher` (OT-CFM) |
//! | `sinkhorn` | n pairs drawn from the entropic plan π_ε ([`sinkhorn`]) | `OTPlanSampler("sinkhorn", reg=ε)` |
//! | `sb` | n pairs from π_ε with ε = 2σ², plus a Brownian-bridge path of width σ (the objective's part) | `SchrodingerBridgeConditionalFlowMatcher(σ, ot_method="sinkhorn")` |
//!
//! Exact OT returns every pair once (targets keep their order, sources are permuted), where
//! TorchCFM draws n pairs from the plan with replacement, repeating some and dropping others;
//! both have the plan's law, ours without the resampling noise. The entropic couplings sample
//! with replacement, as TorchCFM does. ε is absolute, in squared units of the points as given
//! (see [`sinkhorn`]). [`reflow`] builds the deterministic coupling (x₀, Φ(x₀)) of a trained
//! flow (rectified flow).

pub mod assignment;
pub mod pairing;
pub mod reflow;
pub mod sinkhorn;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use assignment::linear_sum_assignment;
pub use pairing::{sample_plan, Pairing};
pub use sinkhorn::{sinkhorn, EntropicPlan, SinkhornOptions};

use crate::data::Points;
use crate::error::{Error, Result};
use crate::tensor::Rng;

/// ε of `sinkhorn` when none is given: TorchCFM's `OTPlanSampler` default `reg = 0.05`.
pub const DEFAULT_EPSILON: f64 = 0.05;

/// σ of `sb` when none is given (ε = 2σ² = 0.5 in squared model units; TorchCFM's class default
/// is σ = 1, its 2-D runner uses σ = 0.1): a middle value, not tuned.
pub const DEFAULT_SB_SIGMA: f64 = 0.5;

/// A coupling of source and target minibatches (serialised as `{"kind": "ot"}`,
/// `{"kind": "sinkhorn", "epsilon": 0.05}`, `{"kind": "sb", "sigma": 0.5}`, …; parsed from the
/// bare names `independent | ot | sinkhorn | sb` with the default ε and σ).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Coupling {
    /// q₀ ⊗ q₁: pairs as drawn.
    #[default]
    Independent,
    /// Exact minibatch OT for the squared Euclidean cost.
    Ot,
    /// n pairs from the entropic OT plan with regularisation ε (absolute).
    Sinkhorn {
        /// ε > 0.
        epsilon: f64,
    },
    /// Schrödinger-bridge CFM: pairs from the entropic plan with ε = 2σ², and (in the
    /// objective) the Brownian-bridge path x_t = t x₁ + (1 − t) x₀ + σ√(t(1 − t)) z.
    Sb {
        /// σ > 0, the bridge's diffusion scale.
        sigma: f64,
    },
}

impl Coupling {
    /// Every name, in the order they are listed to users.
    pub const NAMES: [&'static str; 4] = ["independent", "ot", "sinkhorn", "sb"];

    /// `independent`, `ot`, `sinkhorn` or `sb`.
    pub fn name(&self) -> &'static str {
        match self {
            Coupling::Independent => "independent",
            Coupling::Ot => "ot",
            Coupling::Sinkhorn { .. } => "sinkhorn",
            Coupling::Sb { .. } => "sb",
        }
    }

    /// One line, e.g. `sinkhorn (ε = 0.05)`.
    pub fn describe(&self) -> String {
        match self {
            Coupling::Independent => "independent".into(),
            Coupling::Ot => "ot (exact minibatch OT)".into(),
            Coupling::Sinkhorn { epsilon } => format!("sinkhorn (ε = {epsilon})"),
            Coupling::Sb { sigma } => {
                format!("sb (σ = {sigma}, ε = 2σ² = {})", 2.0 * sigma * sigma)
            }
        }
    }

    /// Errors unless ε (or σ) is a finite number > 0.
    pub fn validate(&self) -> Result<()> {
        let (what, v) = match *self {
            Coupling::Sinkhorn { epsilon } => ("sinkhorn's ε", epsilon),
            Coupling::Sb { sigma } => ("sb's σ", sigma),
            _ => return Ok(()),
        };
        if v > 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "{what} must be a finite number > 0 (got {v})"
            )))
        }
    }

    /// The entropic regularisation of the plan: ε for `sinkhorn`, 2σ² for `sb`.
    pub fn plan_epsilon(&self) -> Option<f64> {
        match *self {
            Coupling::Sinkhorn { epsilon } => Some(epsilon),
            Coupling::Sb { sigma } => Some(2.0 * sigma * sigma),
            _ => None,
        }
    }

    /// σ of the Brownian-bridge path (`sb` only).
    pub fn bridge_sigma(&self) -> Option<f64> {
        match *self {
            Coupling::Sb { sigma } => Some(sigma),
            _ => None,
        }
    }

    /// Pairs the n source rows `x0` with the n target rows `x1` (all randomness from `rng`;
    /// `independent` and `ot` draw nothing). `Error::Shape` unless both have the same number of
    /// rows and dimension.
    pub fn pair(&self, x0: &Points, x1: &Points, rng: &mut Rng) -> Result<Pairing> {
        self.validate()?;
        if x0.len() != x1.len() || x0.dim() != x1.dim() {
            return Err(Error::Shape(format!(
                "a coupling pairs equal batches: {} source points of dimension {} vs {} targets of dimension {}",
                x0.len(),
                x0.dim(),
                x1.len(),
                x1.dim()
            )));
        }
        let n = x0.len();
        match self {
            Coupling::Independent => Ok(Pairing::identity(n)),
            Coupling::Ot => {
                let col4row = linear_sum_assignment(&squared_distances(x0, x1), n)?;
                let mut row4col = vec![0; n];
                for (i, &j) in col4row.iter().enumerate() {
                    row4col[j] = i;
                }
                Ok(Pairing::permuted_sources(row4col))
            }
            Coupling::Sinkhorn { .. } | Coupling::Sb { .. } => {
                if n == 0 {
                    return Ok(Pairing::identity(0));
                }
                let eps = self.plan_epsilon().expect("entropic couplings have an ε");
                let w = vec![1.0 / n as f64; n];
                let plan = sinkhorn(
                    &squared_distances(x0, x1),
                    &w,
                    &w,
                    &SinkhornOptions::new(eps),
                )?;
                sample_plan(&plan.plan, n, n, n, rng)
            }
        }
    }
}

impl fmt::Display for Coupling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl FromStr for Coupling {
    type Err = Error;

    /// `independent`, `ot`, `sinkhorn` (ε = [`DEFAULT_EPSILON`]) or `sb`
    /// (σ = [`DEFAULT_SB_SIGMA`]); anything else is a one-line error listing the names.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "independent" => Ok(Coupling::Independent),
            "ot" => Ok(Coupling::Ot),
            "sinkhorn" => Ok(Coupling::Sinkhorn {
                epsilon: DEFAULT_EPSILON,
            }),
            "sb" => Ok(Coupling::Sb {
                sigma: DEFAULT_SB_SIGMA,
            }),
            _ => Err(Error::InvalidInput(format!(
                "unknown coupling '{s}'; choose one of {}",
                Coupling::NAMES.join(", ")
            ))),
        }
    }
}

/// Cᵢⱼ = ‖xᵢ − yⱼ‖², row-major n × m (f64, computed directly rather than by the expansion
/// ‖x‖² + ‖y‖² − 2⟨x, y⟩, which loses digits for nearby points).
pub fn squared_distances(x: &Points, y: &Points) -> Vec<f64> {
    let mut c = Vec::with_capacity(x.len() * y.len());
    for a in x.rows() {
        c.extend(
            y.rows()
                .map(|b| a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum::<f64>()),
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupling::assignment::assignment_cost;
    use crate::tensor::rng;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian(n: usize, shift: f64, seed: u64) -> Points {
        let mut r = rng(seed);
        let data = (0..2 * n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut r);
                shift + z
            })
            .collect();
        Points::new(data, 2).unwrap()
    }

    fn paired_cost(p: &Pairing, x0: &Points, x1: &Points) -> f64 {
        let (a, b) = p.apply_points(x0, x1);
        a.rows()
            .zip(b.rows())
            .map(|(u, v)| u.iter().zip(v).map(|(s, t)| (s - t) * (s - t)).sum::<f64>())
            .sum::<f64>()
            / p.len() as f64
    }

    /// `ot` is a permutation of the sources with the assignment's cost, the targets in order;
    /// every coupling keeps the batch size; `sb` uses ε = 2σ².
    #[test]
    fn couplings_pair_whole_batches() {
        let (x0, x1) = (gaussian(64, 0.0, 1), gaussian(64, 3.0, 2));
        let ot = Coupling::Ot.pair(&x0, &x1, &mut rng(0)).unwrap();
        assert_eq!(ot.target(), (0..64).collect::<Vec<_>>().as_slice());
        let mut s = ot.source().to_vec();
        s.sort_unstable();
        assert_eq!(s, (0..64).collect::<Vec<_>>());
        let c = squared_distances(&x0, &x1);
        let best = assignment_cost(&c, 64, &linear_sum_assignment(&c, 64).unwrap()) / 64.0;
        assert!((paired_cost(&ot, &x0, &x1) - best).abs() < 1e-12);
        let ind = Coupling::Independent.pair(&x0, &x1, &mut rng(0)).unwrap();
        assert!(ind.is_identity());
        // The entropic plan costs between the OT cost and the independent one (pairs drawn
        // with replacement need not: a draw may repeat cheap pairs).
        let w = vec![1.0 / 64.0; 64];
        let plan = sinkhorn(&c, &w, &w, &SinkhornOptions::new(0.1)).unwrap();
        let (c_ot, c_plan, c_ind) = (
            paired_cost(&ot, &x0, &x1),
            plan.cost(&c),
            paired_cost(&ind, &x0, &x1),
        );
        assert!(c_ot <= c_plan && c_plan < c_ind, "{c_ot} {c_plan} {c_ind}");
        let sk = Coupling::Sinkhorn { epsilon: 0.1 }
            .pair(&x0, &x1, &mut rng(5))
            .unwrap();
        assert_eq!(sk.len(), 64);
        assert!(paired_cost(&sk, &x0, &x1) < c_ind);
        assert_eq!(Coupling::Sb { sigma: 0.5 }.plan_epsilon(), Some(0.5));
        assert!(Coupling::Ot
            .pair(&x0, &gaussian(63, 0.0, 3), &mut rng(0))
            .is_err());
    }

    #[test]
    fn names_parse_serialise_and_validate() {
        for name in Coupling::NAMES {
            let c: Coupling = name.parse().unwrap();
            assert_eq!(c.name(), name);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Coupling>(&json).unwrap(), c);
        }
        assert_eq!(
            serde_json::to_string(&Coupling::Sinkhorn { epsilon: 0.05 }).unwrap(),
            r#"{"kind":"sinkhorn","epsilon":0.05}"#
        );
        let e = "exact".parse::<Coupling>().unwrap_err().to_string();
        assert!(
            e.contains("'exact'") && e.contains("independent, ot, sinkhorn, sb"),
            "{e}"
        );
        assert!(Coupling::Sinkhorn { epsilon: 0.0 }.validate().is_err());
        assert!(Coupling::Sb { sigma: f64::NAN }.validate().is_err());
        assert!(Coupling::Ot.validate().is_ok());
    }
}
