//! Conditional flow matching (Lipman et al. 2023; Tong et al. 2024) from any source to any
//! target:
//!
//! (x₀, x₁) ~ π (a [`Coupling`] of the source and target minibatches), t ~ 𝒯, z ~ N(0, I),
//! x_t = α(t) x₁ + σ(t) x₀ + s(t) z,   loss ‖v_θ(x_t, t) − (α̇ x₁ + σ̇ x₀ + ṡ z)‖².
//!
//! * **Source.** Points supplied with the data ([`Minibatch::source`]: another data set, a file,
//!   a reflow pair set — each side with its own normaliser, applied by whoever draws them), or
//!   else drawn by the objective's [`SourceSampler`] (default N(0, I)) from the noise stream.
//! * **Coupling** π: independent (default), exact minibatch OT, Sinkhorn, Schrödinger bridge —
//!   see [`crate::coupling`]; labels follow their targets through the [`Pairing`].
//! * **Path noise** s(t): 0 by default; a constant σ ([`FlowMatching::sigma`], TorchCFM's
//!   σ_min: x_t ~ N(t x₁ + (1 − t) x₀, σ²), target still x₁ − x₀ since ṡ = 0); or, with the
//!   `sb` coupling, the Brownian bridge s(t) = σ√(t(1 − t)), ṡ(t) = σ(1 − 2t)/(2√(t(1 − t)))
//!   — TorchCFM's `SchrodingerBridgeConditionalFlowMatcher`, whose target
//!   (1 − 2t)/(2t(1 − t))·(x_t − μ_t) + x₁ − x₀ is the same expression written through
//!   x_t − μ_t = s(t) z. (At t ∈ {0, 1} exactly, where the bridge has no noise, ṡ z is taken
//!   as 0, as TorchCFM's +1e-8 does; uniform t hits them with probability ~2⁻⁵³.)
//! * **Times** 𝒯: uniform on [0, 1], or a fixed grid ([`TimeSampler::Grid`]) for few-step
//!   samplers that only ever evaluate the field there.
//!
//! Draw order (fixed, for reproducibility): x₀ (unless given), the coupling's draws, t, z (only
//! when s ≢ 0), then the label dropout (only with labels and p > 0). With the defaults and no
//! labels this is x₀ then t, the draws of plain CFM.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::{Minibatch, Objective, RegressionBatch};
use crate::coupling::{Coupling, Pairing};
use crate::data::Points;
use crate::error::{Error, Result};
use crate::path::{GaussianPath, Scheduler};
use crate::tensor::{col, randn_like, to_vec, uniform, vector_like, Rng, Tensor};

/// Draws `n` source points shaped like the data batch (same device and dtype).
pub trait SourceSampler {
    /// `like.dims()[0]` source points x₀.
    fn sample_like(&self, like: &Tensor<2>, rng: &mut Rng) -> Tensor<2>;
}

/// The standard normal source N(0, I).
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardNormal;

impl SourceSampler for StandardNormal {
    fn sample_like(&self, like: &Tensor<2>, rng: &mut Rng) -> Tensor<2> {
        randn_like(like, rng)
    }
}

/// Where training times t come from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TimeSampler {
    /// t ~ U[0, 1).
    #[default]
    Uniform,
    /// t uniform on a finite set of times in [0, 1].
    Grid {
        /// The grid points.
        points: Vec<f64>,
    },
}

impl TimeSampler {
    /// The grid {k/steps : k = 0, …, steps} (steps ≥ 1): for steps = 4, seed 002's
    /// T = {0, 0.25, 0.5, 0.75, 1}, the nodes of Euler with h = 1/steps (t = 1 is never
    /// evaluated by Euler but belongs to T as the note defines it).
    pub fn euler_grid(steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::InvalidInput(
                "a time grid needs at least one step".into(),
            ));
        }
        Ok(TimeSampler::Grid {
            points: (0..=steps).map(|k| k as f64 / steps as f64).collect(),
        })
    }

    /// Errors unless a grid is non-empty and inside [0, 1].
    pub fn validate(&self) -> Result<()> {
        match self {
            TimeSampler::Uniform => Ok(()),
            TimeSampler::Grid { points } => {
                if points.is_empty() || points.iter().any(|t| !(0.0..=1.0).contains(t)) {
                    Err(Error::InvalidInput(format!(
                        "a time grid needs at least one time, all in [0, 1] (got {points:?})"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// n times like `like` (device, dtype), from `rng`.
    pub fn sample(&self, n: usize, like: &Tensor<2>, rng: &mut Rng) -> Tensor<1> {
        match self {
            TimeSampler::Uniform => uniform(n, 0.0, 1.0, &like.device(), like.dtype(), rng),
            TimeSampler::Grid { points } => vector_like(
                (0..n)
                    .map(|_| points[rng.random_range(0..points.len())])
                    .collect(),
                like,
            ),
        }
    }
}

/// Conditional flow matching on a Gaussian path, from a source, under a coupling (see the
/// module documentation).
#[derive(Debug, Clone)]
pub struct FlowMatching<S, Q = StandardNormal> {
    /// The probability path (α, σ).
    pub path: GaussianPath<S>,
    /// The source drawn when the minibatch brings none.
    pub source: Q,
    /// How source and target minibatches are paired.
    pub coupling: Coupling,
    /// Constant path noise σ ≥ 0 (TorchCFM's σ_min); must be 0 with the `sb` coupling, whose
    /// σ is its own.
    pub sigma: f64,
    /// Where t comes from.
    pub time: TimeSampler,
    /// Label dropout p of class-conditional training (see [`super`]); used only with labels.
    pub label_dropout: f64,
}

impl<S: Scheduler> FlowMatching<S, StandardNormal> {
    /// Plain CFM on `path` from N(0, I): independent coupling, no path noise, uniform t,
    /// label dropout 0.1.
    pub fn new(path: GaussianPath<S>) -> Self {
        Self {
            path,
            source: StandardNormal,
            coupling: Coupling::Independent,
            sigma: 0.0,
            time: TimeSampler::Uniform,
            label_dropout: super::DEFAULT_LABEL_DROPOUT,
        }
    }
}

impl<S: Scheduler, Q: SourceSampler> FlowMatching<S, Q> {
    /// The same objective with another coupling (validated).
    pub fn with_coupling(mut self, coupling: Coupling) -> Result<Self> {
        self.coupling = coupling;
        self.validate()?;
        Ok(self)
    }

    /// The same objective with constant path noise σ (validated).
    pub fn with_sigma(mut self, sigma: f64) -> Result<Self> {
        self.sigma = sigma;
        self.validate()?;
        Ok(self)
    }

    /// The same objective with label dropout p ∈ [0, 1].
    pub fn with_label_dropout(mut self, p: f64) -> Result<Self> {
        self.label_dropout = super::check_label_dropout(p)?;
        Ok(self)
    }

    /// The same objective with another time sampler (validated).
    pub fn with_time(mut self, time: TimeSampler) -> Result<Self> {
        self.time = time;
        self.validate()?;
        Ok(self)
    }

    /// The same objective drawing its source from `source`.
    pub fn with_source<R: SourceSampler>(self, source: R) -> FlowMatching<S, R> {
        FlowMatching {
            path: self.path,
            source,
            coupling: self.coupling,
            sigma: self.sigma,
            time: self.time,
            label_dropout: self.label_dropout,
        }
    }

    /// Errors for an invalid coupling or time grid, σ < 0 or non-finite, or σ > 0 with `sb`.
    pub fn validate(&self) -> Result<()> {
        self.coupling.validate()?;
        self.time.validate()?;
        if !(self.sigma >= 0.0 && self.sigma.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "the path noise σ must be a finite number ≥ 0 (got {})",
                self.sigma
            )));
        }
        if self.sigma > 0.0 && self.coupling.bridge_sigma().is_some() {
            return Err(Error::InvalidInput(
                "the sb coupling sets its own path noise σ√(t(1 − t)); leave the constant σ at 0"
                    .into(),
            ));
        }
        Ok(())
    }

    /// (s(t), ṡ(t)) of the path noise, or `None` when s ≡ 0.
    fn noise(&self) -> Option<impl Fn(f64) -> (f64, f64)> {
        let (sigma, bridge) = match self.coupling.bridge_sigma() {
            Some(s) => (s, true),
            None => (self.sigma, false),
        };
        (sigma > 0.0).then_some(move |t: f64| {
            if !bridge {
                return (sigma, 0.0);
            }
            let v = t * (1.0 - t);
            if v > 0.0 {
                (sigma * v.sqrt(), sigma * (1.0 - 2.0 * t) / (2.0 * v.sqrt()))
            } else {
                (0.0, 0.0)
            }
        })
    }

    /// The coupled (x₀, x₁, condition) of a minibatch: x₀ given or drawn, then paired.
    fn coupled(
        &self,
        batch: &Minibatch,
        rng: &mut Rng,
    ) -> Result<(Tensor<2>, Tensor<2>, crate::field::network::Condition)> {
        let x1 = &batch.target;
        let x0 = match &batch.source {
            Some(s) => {
                if s.dims() != x1.dims() {
                    return Err(Error::Shape(format!(
                        "source minibatch {:?} and target minibatch {:?} differ in shape",
                        s.dims(),
                        x1.dims()
                    )));
                }
                s.clone()
            }
            None => self.source.sample_like(x1, rng),
        };
        let pairing = match self.coupling {
            Coupling::Independent => Pairing::identity(x1.dims()[0]),
            c => c.pair(&Points::from_tensor(&x0), &Points::from_tensor(x1), rng)?,
        };
        Ok((
            pairing.sources(&x0),
            pairing.targets(x1),
            pairing.condition(&batch.condition),
        ))
    }
}

impl<S: Scheduler, Q: SourceSampler> Objective for FlowMatching<S, Q> {
    fn name(&self) -> &'static str {
        "cfm"
    }
    fn label_dropout(&self) -> f64 {
        self.label_dropout
    }

    /// [`Objective::regression_batch`] on target points only (`None` if that fails; the engines
    /// call the batch level, which reports the error).
    fn regression(&self, data: &Tensor<2>, rng: &mut Rng) -> Option<RegressionBatch> {
        self.regression_batch(&Minibatch::from(data.clone()), rng)
            .ok()
            .flatten()
    }

    /// See the module documentation for the formula and the draw order.
    fn regression_batch(
        &self,
        batch: &Minibatch,
        rng: &mut Rng,
    ) -> Result<Option<RegressionBatch>> {
        self.validate()?;
        let (x0, x1, condition) = self.coupled(batch, rng)?;
        let n = x1.dims()[0];
        let t = self.time.sample(n, &x1, rng);
        let mut s = self.path.sample(x0, x1, t);
        if let Some(noise) = self.noise() {
            let z = randn_like(&s.x_t, rng);
            let (sv, dsv): (Vec<f64>, Vec<f64>) = to_vec(&s.t).into_iter().map(noise).unzip();
            s.x_t = s.x_t + z.clone() * col(&vector_like(sv, &s.t));
            s.dx_t = s.dx_t + z * col(&vector_like(dsv, &s.t));
        }
        let condition = super::drop_condition(&condition, self.label_dropout, rng);
        Ok(Some(RegressionBatch {
            x: s.x_t,
            t: s.t,
            target: s.dx_t,
            weight: None,
            condition,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::network::Condition;
    use crate::path::CondOt;
    use crate::tensor::{cpu, matrix, rng, DType};

    fn cfm() -> FlowMatching<CondOt> {
        FlowMatching::new(GaussianPath::new(CondOt))
    }

    fn pts(v: Vec<f64>) -> Tensor<2> {
        let n = v.len() / 2;
        matrix(v, n, 2, &cpu(), DType::F64)
    }

    /// With given sources and the identity pairing, x_t = t x₁ + (1 − t) x₀ and the target is
    /// x₁ − x₀ exactly; the defaults draw x₀ then t (the draws of plain CFM).
    #[test]
    fn given_sources_give_the_straight_path() {
        let x0 = pts(vec![0.0, 0.0, 1.0, 1.0, -2.0, 3.0]);
        let x1 = pts(vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.5]);
        let mb = Minibatch {
            target: x1.clone(),
            source: Some(x0.clone()),
            condition: Condition::None,
        };
        let rb = cfm().regression_batch(&mb, &mut rng(1)).unwrap().unwrap();
        let t = to_vec(&rb.t);
        let (a, b, x, y) = (to_vec(&x0), to_vec(&x1), to_vec(&rb.x), to_vec(&rb.target));
        for k in 0..6 {
            let tk = t[k / 2];
            assert!((x[k] - (tk * b[k] + (1.0 - tk) * a[k])).abs() < 1e-12);
            assert!((y[k] - (b[k] - a[k])).abs() < 1e-12);
        }
        // Plain CFM's draw order: x₀ ~ N(0, I) then t.
        let mut r = rng(2);
        let z = randn_like(&x1, &mut r);
        let t = uniform(3, 0.0, 1.0, &cpu(), DType::F64, &mut r);
        let rb = cfm().regression(&x1, &mut rng(2)).unwrap();
        assert_eq!(to_vec(&rb.t), to_vec(&t));
        let want: Vec<f64> = to_vec(&x1)
            .iter()
            .zip(to_vec(&z))
            .map(|(b, a)| b - a)
            .collect();
        assert!(to_vec(&rb.target)
            .iter()
            .zip(&want)
            .all(|(u, v)| (u - v).abs() < 1e-12));
        let bad = Minibatch {
            target: x1,
            source: Some(pts(vec![0.0; 4])),
            condition: Condition::None,
        };
        assert!(matches!(
            cfm().regression_batch(&bad, &mut rng(1)),
            Err(Error::Shape(_))
        ));
    }

    /// OT pairs each target with its assigned source and carries the target's label; the
    /// targets keep their order.
    #[test]
    fn ot_pairs_and_labels_travel_together() {
        // Sources near (±10, 0), targets near (±10, 1) given crossed: OT uncrosses them.
        let x0 = pts(vec![10.0, 0.0, -10.0, 0.0]);
        let x1 = pts(vec![-10.0, 1.0, 10.0, 1.0]);
        let mb = Minibatch {
            target: x1.clone(),
            source: Some(x0),
            condition: Condition::labels([4, 7]),
        };
        let obj = cfm()
            .with_label_dropout(0.0)
            .unwrap()
            .with_coupling(Coupling::Ot)
            .unwrap()
            .with_time(TimeSampler::Grid { points: vec![0.0] })
            .unwrap();
        let rb = obj.regression_batch(&mb, &mut rng(0)).unwrap().unwrap();
        // At t = 0, x = x₀ of each pair; the target is x₁ − x₀ = (0, 1) for both.
        assert_eq!(to_vec(&rb.x), vec![-10.0, 0.0, 10.0, 0.0]);
        assert_eq!(to_vec(&rb.target), vec![0.0, 1.0, 0.0, 1.0]);
        assert_eq!(rb.condition, Condition::labels([4, 7]));
    }

    /// Path noise: at fixed t the residual x_t − μ_t has std s(t) and the target's noise part
    /// is (ṡ/s)(x_t − μ_t); constant σ: s = σ, ṡ = 0 (target x₁ − x₀ exactly); bridge:
    /// s = σ√(t(1 − t)), ṡ = σ(1 − 2t)/(2√(t(1 − t))). With 2n = 3,000 coordinates the sample
    /// std of N(0, s²) is within 5·s/√(2·2n) = 6.5 % of s. (n stays small: the sb coupling
    /// runs Sinkhorn on the n × n cost matrix.)
    #[test]
    fn path_noise_has_the_stated_law() {
        let n = 1_500;
        let zeros = pts(vec![0.0; 2 * n]);
        let ones = pts(vec![1.0; 2 * n]);
        let mb = Minibatch {
            target: ones,
            source: Some(zeros),
            condition: Condition::None,
        };
        let t = 0.3;
        let grid = TimeSampler::Grid { points: vec![t] };
        let check = |obj: FlowMatching<CondOt>, s: f64, ds: f64| {
            let rb = obj.regression_batch(&mb, &mut rng(5)).unwrap().unwrap();
            let resid: Vec<f64> = to_vec(&rb.x).iter().map(|x| x - t).collect();
            let sd = (resid.iter().map(|r| r * r).sum::<f64>() / resid.len() as f64).sqrt();
            assert!((sd / s - 1.0).abs() < 0.065, "sd {sd} vs {s}");
            for (r, u) in resid.iter().zip(to_vec(&rb.target)) {
                assert!((u - 1.0 - ds / s * r).abs() < 1e-9);
            }
        };
        let i_cfm = cfm()
            .with_sigma(0.1)
            .unwrap()
            .with_time(grid.clone())
            .unwrap();
        check(i_cfm, 0.1, 0.0);
        let sb = cfm()
            .with_coupling(Coupling::Sb { sigma: 0.5 })
            .unwrap()
            .with_time(grid)
            .unwrap();
        let v: f64 = t * (1.0 - t);
        check(sb, 0.5 * v.sqrt(), 0.5 * (1.0 - 2.0 * t) / (2.0 * v.sqrt()));
        assert!(cfm()
            .with_coupling(Coupling::Sb { sigma: 0.5 })
            .unwrap()
            .with_sigma(0.1)
            .is_err());
        assert!(cfm().with_sigma(-1.0).is_err());
    }

    #[test]
    fn time_grids() {
        assert_eq!(
            TimeSampler::euler_grid(4).unwrap(),
            TimeSampler::Grid {
                points: vec![0.0, 0.25, 0.5, 0.75, 1.0]
            }
        );
        assert!(TimeSampler::euler_grid(0).is_err());
        assert!(TimeSampler::Grid { points: vec![1.5] }.validate().is_err());
        assert!(TimeSampler::Grid { points: vec![] }.validate().is_err());
        let g = TimeSampler::euler_grid(2).unwrap();
        let t = to_vec(&g.sample(3000, &pts(vec![0.0, 0.0]), &mut rng(1)));
        for p in [0.0, 0.5, 1.0] {
            // Each share ~ Binomial(3000, 1/3): sd ≈ 25.8, allow 5 sd.
            let c = t.iter().filter(|&&x| x == p).count() as f64;
            assert!((c - 1000.0).abs() < 130.0, "{p}: {c}");
        }
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<TimeSampler>(&json).unwrap(), g);
    }
}
