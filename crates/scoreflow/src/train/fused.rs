//! [`FusedEngine`]: the [`StepEngine`] on the fused CPU kernels of [`crate::fused`] (f32,
//! regression objectives only), checkpoint-compatible with [`BurnEngine`](super::BurnEngine):
//! the same `model.*`, `ema.*`, `adam.*.exp_avg(_sq)` tensors, so a run can be resumed on
//! either engine.

use super::engine::{Batch, EmaConfig, OptimizerConfig, OptimizerKind, StepEngine, StepStats};
use crate::error::{Error, Result};
use crate::field::mlp::{Mlp, MlpConfig};
use crate::field::network::Architecture;
use crate::fused::train::{FusedTrainer, Optimizer, TrainOptions};
use crate::fused::FusedMlp;
use crate::objective::Objective;
use crate::state::{HostTensor, StateDict, StoredDType};
use crate::tensor::{cpu, DType, Rng};

/// The fused engine: [`FusedTrainer`] (forward, backward, burn-exact Adam/AdamW, clipping and
/// EMA on host f32 buffers) behind [`StepEngine`].
pub struct FusedEngine {
    trainer: FusedTrainer,
}

/// The fused trainer's options for an [`OptimizerConfig`] and EMA.
fn options(opt: &OptimizerConfig, ema: Option<EmaConfig>) -> Result<TrainOptions> {
    opt.validate()?;
    if let Some(e) = ema {
        e.validate()?;
    }
    Ok(TrainOptions {
        optimizer: match opt.kind {
            OptimizerKind::Adam => Optimizer::Adam {
                weight_decay: (opt.weight_decay > 0.0).then_some(opt.weight_decay),
            },
            OptimizerKind::AdamW => Optimizer::AdamW {
                weight_decay: opt.weight_decay,
            },
        },
        beta1: opt.beta1,
        beta2: opt.beta2,
        epsilon: opt.eps,
        grad_clip: opt.clip_grad_norm,
        ema_decay: ema.map(|e| e.decay),
        ema_warmup: ema.is_some_and(|e| e.warmup),
    })
}

/// Adds a flat parameter-layout buffer (per layer W `[d_in, d_out]` row-major, then b) as
/// `"{prefix}{2k}.weight{suffix}"` `(d_out, d_in)` and `"{prefix}{2k}.bias{suffix}"`.
fn insert_flat(sd: &mut StateDict, prefix: &str, suffix: &str, config: &MlpConfig, flat: &[f32]) {
    let mut off = 0;
    for (k, (d_in, d_out)) in config.layer_dims().into_iter().enumerate() {
        let host = |a: usize, n: usize| flat[a..a + n].iter().map(|&v| v as f64).collect();
        let w = HostTensor {
            shape: vec![d_in, d_out],
            data: host(off, d_in * d_out),
            dtype: StoredDType::F32,
        };
        off += d_in * d_out;
        let b = HostTensor {
            shape: vec![d_out],
            data: host(off, d_out),
            dtype: StoredDType::F32,
        };
        off += d_out;
        sd.insert(format!("{prefix}{}.weight{suffix}", 2 * k), w.transposed());
        sd.insert(format!("{prefix}{}.bias{suffix}", 2 * k), b);
    }
}

/// The inverse of [`insert_flat`], checking names and shapes.
fn read_flat(sd: &StateDict, prefix: &str, suffix: &str, config: &MlpConfig) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(config.num_params());
    for (k, (d_in, d_out)) in config.layer_dims().into_iter().enumerate() {
        let w = sd.get_shaped(&format!("{prefix}{}.weight{suffix}", 2 * k), &[d_out, d_in])?;
        out.extend(w.transposed().data.iter().map(|&v| v as f32));
        let b = sd.get_shaped(&format!("{prefix}{}.bias{suffix}", 2 * k), &[d_out])?;
        out.extend(b.data.iter().map(|&v| v as f32));
    }
    Ok(out)
}

impl FusedEngine {
    /// An engine training `model` (rounded to f32) with the given optimiser and optional EMA.
    pub fn new(model: &Mlp, optimizer: &OptimizerConfig, ema: Option<EmaConfig>) -> Result<Self> {
        if model.config.out_dim() != model.config.dim {
            return Err(Error::InvalidInput(
                "the fused engine trains fields (outputs = d); a classifier trains on the burn engine"
                    .into(),
            ));
        }
        let trainer = FusedTrainer::new(FusedMlp::from_mlp(model), options(optimizer, ema)?)?;
        Ok(Self { trainer })
    }

    /// An engine restored from a [`StepEngine::state_dict`] image (of either engine, f32).
    pub fn from_state_dict(
        config: &MlpConfig,
        state: &StateDict,
        optimizer: &OptimizerConfig,
        ema: Option<EmaConfig>,
    ) -> Result<Self> {
        let params = read_flat(state, "model.", "", config)?;
        let model = FusedMlp::new(config, params).map_err(|e| state.error(e.to_string()))?;
        let mut engine = Self {
            trainer: FusedTrainer::new(model, options(optimizer, ema)?)?,
        };
        engine.load_state_dict(state)?;
        Ok(engine)
    }

    /// The underlying trainer.
    pub fn trainer(&self) -> &FusedTrainer {
        &self.trainer
    }
}

impl StepEngine for FusedEngine {
    fn name(&self) -> &'static str {
        "fused"
    }

    type Net = Mlp;

    fn architecture(&self) -> Architecture {
        Architecture::Mlp(self.trainer.model().config().clone())
    }

    fn dtype(&self) -> DType {
        DType::F32
    }

    /// Needs an objective with a [`RegressionBatch`](crate::objective::RegressionBatch); the
    /// noise draws are those [`BurnEngine`](super::BurnEngine) makes from the same `rng`.
    fn step(
        &mut self,
        objective: &dyn Objective,
        batch: &Batch,
        rng: &mut Rng,
        lr: f64,
    ) -> Result<StepStats> {
        batch.check(self.trainer.model().config().dim)?;
        let mb = batch.to_minibatch(&cpu(), DType::F32);
        let rb = objective.regression_batch(&mb, rng)?.ok_or_else(|| {
            Error::InvalidInput(format!(
                "the fused engine needs a regression objective; '{}' is not one (use the burn engine)",
                objective.name()
            ))
        })?;
        let s = self.trainer.step(&rb, lr)?;
        Ok(StepStats {
            loss: s.loss,
            grad_norm: s.grad_norm,
        })
    }

    fn model(&self) -> Mlp {
        self.trainer.model().to_mlp(&cpu(), DType::F32)
    }

    fn ema_model(&self) -> Option<Mlp> {
        self.trainer
            .ema_model()
            .map(|m| m.to_mlp(&cpu(), DType::F32))
    }

    fn state_dict(&self) -> StateDict {
        let config = self.trainer.model().config().clone();
        let mut sd = StateDict::new();
        insert_flat(
            &mut sd,
            "model.",
            "",
            &config,
            self.trainer.model().params(),
        );
        let steps = self.trainer.steps();
        if self.trainer.options().ema_decay.is_some() {
            insert_flat(&mut sd, "ema.", "", &config, self.trainer.ema_params());
            sd.metadata.insert("ema.updates".into(), steps.to_string());
        }
        if steps > 0 {
            let (m, v) = self.trainer.moments();
            insert_flat(&mut sd, "adam.", ".exp_avg", &config, m);
            insert_flat(&mut sd, "adam.", ".exp_avg_sq", &config, v);
        }
        sd.metadata.insert("engine".into(), self.name().into());
        sd.metadata.insert("adam.step".into(), steps.to_string());
        sd
    }

    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        let config = self.trainer.model().config().clone();
        let stored = state.get("model.0.weight")?.dtype;
        if stored != StoredDType::F32 {
            return Err(state.error(format!(
                "the fused engine trains in f32 but the raw weights are stored as {stored:?}"
            )));
        }
        let count = |key: &str| -> Result<usize> {
            state.metadata.get(key).map_or(Ok(0), |v| {
                v.parse()
                    .map_err(|_| state.error(format!("metadata '{key}' = '{v}' is not a count")))
            })
        };
        let steps = count("adam.step")?;
        let params = read_flat(state, "model.", "", &config)?;
        let n = params.len();
        let (m, v) = if steps > 0 {
            (
                read_flat(state, "adam.", ".exp_avg", &config)?,
                read_flat(state, "adam.", ".exp_avg_sq", &config)?,
            )
        } else {
            (vec![0.0; n], vec![0.0; n])
        };
        let ema = if self.trainer.options().ema_decay.is_some() {
            if !state.tensors.contains_key("ema.0.weight") {
                return Err(state.error("EMA is on but the state holds no EMA weights ('ema.*')"));
            }
            if count("ema.updates")? != steps {
                return Err(state.error(
                    "EMA update count differs from the step count: the fused engine cannot continue it exactly",
                ));
            }
            Some(read_flat(state, "ema.", "", &config)?)
        } else {
            None
        };
        self.trainer
            .set_params(&params)
            .map_err(|e| state.error(e.to_string()))?;
        self.trainer
            .restore(steps, &m, &v, ema.as_deref())
            .map_err(|e| state.error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BurnEngine, Control, EngineKind, StepInfo, TrainConfig, Trainer};
    use super::*;
    use crate::data::Points;
    use crate::objective::cfm::FlowMatching;
    use crate::path::{CondOt, GaussianPath};
    use crate::tensor::rng;

    fn data(n: usize, r: &mut Rng) -> Points {
        use rand_distr::{Distribution, StandardNormal};
        let v = (0..2 * n)
            .map(|i| {
                let z: f64 = StandardNormal.sample(r);
                0.3 * z + if i % 2 == 0 { 1.5 } else { -0.5 }
            })
            .collect();
        Points::new(v, 2).unwrap()
    }

    fn config() -> TrainConfig {
        TrainConfig {
            optimizer: OptimizerConfig {
                clip_grad_norm: Some(2.0),
                ..OptimizerConfig::adam(1e-2)
            },
            ema: Some(EmaConfig {
                decay: 0.9,
                warmup: true,
            }),
            checkpoint_every: Some(4),
            ..TrainConfig::new(12, 128, 1e-2, 5)
        }
    }

    fn run(t: &mut Trainer, stop: Option<usize>) -> Vec<f64> {
        let mut out = Vec::new();
        let obj = FlowMatching::new(GaussianPath::new(CondOt));
        let mut d = data;
        t.run(&obj, &mut d, &mut |i: &StepInfo| {
            out.push(i.loss);
            if Some(i.step) == stop {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
        out
    }

    /// The fused engine follows the burn reference: same seeds give the same minibatches and
    /// noise, and the losses of 12 steps agree to 1e-5 relative (both f32; they differ only in
    /// summation order, ~1e-7 per op — measured 1.0e-7 — so 1e-5 leaves room for Adam's
    /// amplification of early differences). Its own checkpoints resume bit for bit, and
    /// checkpoints cross between the engines in both directions.
    #[test]
    fn fused_engine_matches_burn_and_resumes() {
        let cfg = config();
        let model = cfg.init_model(&MlpConfig::new(2, 32, 2), &cpu(), DType::F32);
        let burn = run(&mut Trainer::new(&model, cfg.clone()).unwrap(), None);
        let fused_engine = FusedEngine::new(&model, &cfg.optimizer, cfg.ema).unwrap();
        let mut ft = Trainer::with_engine(Box::new(fused_engine), cfg.clone()).unwrap();
        let fused = run(&mut ft, None);
        for (k, (a, b)) in burn.iter().zip(&fused).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs(),
                "step {}: burn {a} vs fused {b}",
                k + 1
            );
        }

        let resume_fused =
            |dir: &std::path::Path| Trainer::resume_on(EngineKind::Fused, dir, &cpu()).unwrap();
        // Fused → checkpoint at 4 → fused: bit for bit.
        let dir = tempfile::tempdir().unwrap();
        let mut a = Trainer::new_on(EngineKind::Fused, &model, cfg.clone())
            .unwrap()
            .checkpoint_to(dir.path(), serde_json::Value::Null, serde_json::Value::Null);
        let mut got = run(&mut a, Some(4));
        got.extend(run(&mut resume_fused(dir.path()), None));
        assert_eq!(got, fused);

        // Burn → checkpoint at 4 → fused: continues within the cross-engine tolerance.
        let dir = tempfile::tempdir().unwrap();
        let mut b = Trainer::new(&model, cfg.clone()).unwrap().checkpoint_to(
            dir.path(),
            serde_json::Value::Null,
            serde_json::Value::Null,
        );
        let mut got = run(&mut b, Some(4));
        let mut c = resume_fused(dir.path());
        assert_eq!(c.engine().name(), "fused");
        got.extend(run(&mut c, None));
        for (k, (a, b)) in burn.iter().zip(&got).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs(),
                "step {}: burn {a} vs burn→fused {b}",
                k + 1
            );
        }
        // ... and the reverse: a fused checkpoint resumes on burn.
        let dir = tempfile::tempdir().unwrap();
        let e = FusedEngine::new(&model, &cfg.optimizer, cfg.ema).unwrap();
        let mut f = Trainer::with_engine(Box::new(e), cfg.clone())
            .unwrap()
            .checkpoint_to(dir.path(), serde_json::Value::Null, serde_json::Value::Null);
        let mut got = run(&mut f, Some(4));
        let mut g = Trainer::resume(dir.path(), &cpu()).unwrap();
        assert_eq!(g.engine().name(), "burn");
        got.extend(run(&mut g, None));
        for (k, (a, b)) in burn.iter().zip(&got).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs(),
                "step {}: burn {a} vs fused→burn {b}",
                k + 1
            );
        }
    }

    /// Class-conditional training (8gaussians' component labels, label dropout 0.1) takes the
    /// same minibatches, labels and dropout draws on both engines: 12 losses agree to 1e-5 as
    /// in the unconditional race. Unlabelled data for a conditional network is a one-line error.
    #[test]
    fn conditional_training_matches_between_engines() {
        use crate::data::{DataSource, Dataset};
        let cfg = config();
        let arch = MlpConfig::new(2, 32, 2).with_classes(8);
        let model = cfg.init_model(&arch, &cpu(), DType::F32);
        let obj = FlowMatching::new(GaussianPath::new(CondOt));
        let losses = |kind: EngineKind| {
            let mut t = Trainer::new_on(kind, &model, cfg.clone()).unwrap();
            let mut data = DataSource::generator(Dataset::EightGaussians);
            let mut out = Vec::new();
            t.run(&obj, &mut data, &mut |i: &StepInfo| {
                out.push(i.loss);
                Control::Continue
            })
            .unwrap();
            out
        };
        let (b, f) = (losses(EngineKind::Burn), losses(EngineKind::Fused));
        assert_eq!(b.len(), 12);
        for (k, (a, c)) in b.iter().zip(&f).enumerate() {
            assert!(
                (a - c).abs() <= 1e-5 * a.abs(),
                "step {}: burn {a} vs fused {c}",
                k + 1
            );
        }
        let mut t = Trainer::new_on(EngineKind::Fused, &model, cfg).unwrap();
        let mut plain = DataSource::generator(Dataset::Checkerboard);
        match t.run(&obj, &mut plain, &mut |_: &StepInfo| Control::Continue) {
            Err(Error::InvalidInput(m)) => assert!(m.contains("needs class labels"), "{m}"),
            other => panic!("expected a missing-labels error, got {other:?}"),
        }
    }

    /// Objectives that are not regressions and f64 states are refused clearly.
    #[test]
    fn fused_engine_refusals() {
        let model = MlpConfig::new(2, 8, 1).init(&cpu(), DType::F32, &mut rng(0));
        struct NotRegression;
        impl Objective for NotRegression {
            fn name(&self) -> &'static str {
                "custom"
            }
            fn loss(
                &self,
                model: &dyn crate::field::network::Network,
                data: &crate::tensor::Tensor<2>,
                _rng: &mut Rng,
            ) -> crate::tensor::Tensor<1> {
                model
                    .forward(
                        data,
                        &crate::tensor::times_like(data, 0.5),
                        &Default::default(),
                    )
                    .sum()
            }
        }
        let mut e = FusedEngine::new(&model, &OptimizerConfig::adam(1e-3), None).unwrap();
        let pts = Points::new(vec![0.0; 8], 2).unwrap();
        assert!(matches!(
            e.step(&NotRegression, &pts.into(), &mut rng(1), 1e-3),
            Err(Error::InvalidInput(m)) if m.contains("regression")
        ));
        let m64 = MlpConfig::new(2, 8, 1).init(&cpu(), DType::F64, &mut rng(0));
        let sd = BurnEngine::new(&m64, &OptimizerConfig::adam(1e-3), None)
            .unwrap()
            .state_dict();
        assert!(matches!(
            FusedEngine::from_state_dict(&m64.config, &sd, &OptimizerConfig::adam(1e-3), None),
            Err(Error::Checkpoint { .. })
        ));
    }
}
