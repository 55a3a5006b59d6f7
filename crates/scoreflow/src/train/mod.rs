//! The training loop: for n = 0 … N − 1, draw a minibatch, take one optimiser step at lr(n)
//! ([`LrSchedule`]) with Adam/AdamW, global gradient-norm clipping and an EMA of the weights,
//! stop with [`Error::Diverged`] on a non-finite loss or gradient (the last checkpoint on disk
//! stays as it was), checkpoint periodically, and report each step to a callback.
//!
//! Determinism: every random draw comes from two ChaCha8 streams of the run seed — stream 1
//! for data minibatches, stream 2 for the objective's noise — whose exact positions are saved
//! in each checkpoint, so [`Trainer::resume`] continues with the very losses an uninterrupted
//! run would produce (on the same machine and backend). The step itself sits behind
//! [`StepEngine`]; [`BurnEngine`] is the reference.

pub mod config;
pub mod engine;
pub mod fused;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use config::TrainConfig;
pub use engine::{
    Batch, BurnEngine, BurnNetwork, EmaConfig, OptimizerConfig, OptimizerKind, StepEngine,
    StepStats,
};
pub use fused::FusedEngine;
pub use schedule::{LrSchedule, ScheduleKind};

use crate::checkpoint::{self, RunMeta, FORMAT, FORMAT_VERSION};
use crate::coupling::reflow::PairSet;
use crate::data::{DataSource, Points};
use crate::error::{Error, Result};
use crate::field::mlp::Mlp;
use crate::field::network::{Architecture, Network};
use crate::likelihood::Dequantization;
use crate::objective::Objective;
use crate::state::{RngState, StoredDType};
use crate::tensor::{rng, Device, Rng};

/// Stream of the run seed that draws data minibatches.
pub const DATA_STREAM: u64 = 1;
/// Stream of the run seed that draws the objective's noise.
pub const NOISE_STREAM: u64 = 2;

/// A source of minibatches: `batch(n, rng)` returns n data points drawn with `rng` (and their
/// paired source points, for transport between data sets).
pub trait Minibatches {
    /// n rows in the model's dimension.
    fn batch(&mut self, n: usize, rng: &mut Rng) -> Batch;
}

impl<F: FnMut(usize, &mut Rng) -> Points> Minibatches for F {
    fn batch(&mut self, n: usize, rng: &mut Rng) -> Batch {
        self(n, rng).into()
    }
}

impl Minibatches for DataSource {
    /// The points and, for a labelled source, their labels (the same draws either way).
    fn batch(&mut self, n: usize, rng: &mut Rng) -> Batch {
        let (target, labels) = DataSource::batch_labelled(self, n, rng);
        Batch {
            target,
            source: None,
            labels,
        }
    }
}

/// Transport between two data sets: n targets from `target`, then n sources from `source`,
/// drawn independently from the same stream (each side already in model units: apply each
/// side's own normaliser inside the closures or sources given here).
#[derive(Debug, Clone)]
pub struct WithSource<S, T> {
    /// Where source points x₀ come from (its batches' targets are used).
    pub source: S,
    /// Where target points x₁ come from.
    pub target: T,
}

impl<S: Minibatches, T: Minibatches> Minibatches for WithSource<S, T> {
    /// The targets keep their labels; the sources' are not used.
    fn batch(&mut self, n: usize, rng: &mut Rng) -> Batch {
        let Batch { target, labels, .. } = self.target.batch(n, rng);
        let source = self.source.batch(n, rng).target;
        Batch {
            target,
            source: Some(source),
            labels,
        }
    }
}

/// A fixed pair set (reflow): n pairs drawn with replacement, each kept together.
impl Minibatches for PairSet {
    fn batch(&mut self, n: usize, rng: &mut Rng) -> Batch {
        let (source, target) = PairSet::batch(self, n, rng);
        Batch {
            target,
            source: Some(source),
            labels: None,
        }
    }
}

/// Minibatches of dequantised discrete data (images): rows drawn uniformly with replacement
/// from the integer-valued training set (as [`DataSource::batch`]), then
/// z = a·(x + u)/L + b with fresh u ~ U\[0, 1)^d ([`Dequantization`]), so the model sees a
/// continuous density whose likelihood bounds the discrete one.
#[derive(Debug, Clone)]
pub struct Dequantized {
    source: DataSource,
    dequantization: Dequantization,
}

impl Dequantized {
    /// Batches of `train` (integer levels 0 … L−1) under `dequantization`; errors when a value
    /// is not such a level.
    pub fn new(train: Points, dequantization: Dequantization) -> Result<Self> {
        dequantization.dequantize_points(&train, &mut rng(0))?;
        Ok(Self {
            source: DataSource::finite("images", train, None)?,
            dequantization,
        })
    }
}

impl Minibatches for Dequantized {
    fn batch(&mut self, n: usize, rng: &mut Rng) -> Batch {
        let x = self.source.batch(n, rng);
        self.dequantization
            .dequantize_points(&x, rng)
            .expect("the rows were checked to be integer levels in Dequantized::new")
            .into()
    }
}

/// Which [`StepEngine`] computes the steps: the burn reference or the fused CPU kernels (f32,
/// regression objectives). Both read and write the same checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EngineKind {
    /// The fastest engine that trains the objective: fused for regression objectives (flow
    /// matching, DSM), burn otherwise ([`EngineKind::resolve`]).
    Auto,
    /// [`BurnEngine`]: burn autodiff + burn Adam/AdamW, any objective, f32 or f64.
    #[default]
    Burn,
    /// [`FusedEngine`]: fused CPU forward/backward/Adam, f32, regression objectives only.
    Fused,
}

impl EngineKind {
    /// "burn" or "fused".
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Burn => "burn",
            EngineKind::Fused => "fused",
        }
    }

    /// The concrete engine for an objective: `Auto` is fused for regression objectives and
    /// burn otherwise; `Fused` for a non-regression objective is an error.
    pub fn resolve(self, objective: &dyn Objective) -> Result<EngineKind> {
        match (self, objective.is_regression()) {
            (EngineKind::Auto, true) | (EngineKind::Fused, true) => Ok(EngineKind::Fused),
            (EngineKind::Auto, false) | (EngineKind::Burn, _) => Ok(EngineKind::Burn),
            (EngineKind::Fused, false) => Err(Error::InvalidInput(format!(
                "the fused engine trains regression objectives only (cfm, dsm); use burn or auto for {}",
                objective.name()
            ))),
        }
    }

    /// A new engine of this kind training `model` under `config` (`Auto` = fused; resolve it
    /// for the objective first with [`EngineKind::resolve`]).
    pub fn build(
        self,
        model: &Mlp,
        config: &TrainConfig,
    ) -> Result<Box<dyn StepEngine<Net = Mlp>>> {
        Ok(match self {
            EngineKind::Burn => Box::new(BurnEngine::new(model, &config.optimizer, config.ema)?),
            EngineKind::Fused | EngineKind::Auto => {
                Box::new(FusedEngine::new(model, &config.optimizer, config.ema)?)
            }
        })
    }

    /// An engine of this kind restored from a saved training state (burn on `device`).
    pub fn restore(
        self,
        meta: &RunMeta,
        state: &checkpoint::StateDict,
        device: &Device,
    ) -> Result<Box<dyn StepEngine<Net = Mlp>>> {
        let config = meta
            .train
            .as_ref()
            .ok_or_else(|| state.error("no training configuration: nothing to resume"))?;
        let arch = meta.model.as_mlp().ok_or_else(|| {
            state.error(format!(
                "the {} engine trains MLPs; this run's network is {}",
                self.name(),
                meta.model.describe()
            ))
        })?;
        Ok(match self {
            EngineKind::Burn => Box::new(BurnEngine::from_state_dict(
                arch,
                state,
                device,
                &config.optimizer,
                config.ema,
            )?),
            EngineKind::Fused | EngineKind::Auto => Box::new(FusedEngine::from_state_dict(
                arch,
                state,
                &config.optimizer,
                config.ema,
            )?),
        })
    }
}

impl std::str::FromStr for EngineKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(EngineKind::Auto),
            "burn" => Ok(EngineKind::Burn),
            "fused" => Ok(EngineKind::Fused),
            other => Err(Error::InvalidInput(format!(
                "unknown engine '{other}' (choose burn or fused)"
            ))),
        }
    }
}

/// What the callback sees after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Steps completed, 1 … N.
    pub step: usize,
    /// N.
    pub total: usize,
    /// Minibatch loss of this step (before the update).
    pub loss: f64,
    /// Learning rate this step used.
    pub lr: f64,
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f64,
    /// Steps per second since this call to [`Trainer::run`] began.
    pub steps_per_sec: f64,
    /// True when a checkpoint was written after this step.
    pub checkpointed: bool,
}

/// The callback's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Save a checkpoint (when a run directory is set) and return.
    Stop,
}

/// How [`Trainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOutcome {
    /// Steps completed in total.
    pub step: usize,
    /// True when the callback stopped the run before N steps.
    pub stopped: bool,
    /// Loss of the last step taken in this call (NaN if none).
    pub last_loss: f64,
}

/// Where and with what description checkpoints are written.
#[derive(Debug, Clone)]
struct RunDir {
    path: PathBuf,
    objective: serde_json::Value,
    normalization: serde_json::Value,
}

/// A training run in progress: engine, configuration, step counter and RNG streams, for a
/// network of type `N` (the [`Mlp`] by default; any [`BurnNetwork`] on the [`BurnEngine`]).
pub struct Trainer<N: Network = Mlp> {
    engine: Box<dyn StepEngine<Net = N>>,
    config: TrainConfig,
    step: usize,
    data_rng: Rng,
    noise_rng: Rng,
    run_dir: Option<RunDir>,
}

/// Stream `stream` of the run seed.
fn stream_rng(seed: u64, stream: u64) -> Rng {
    let mut r = rng(seed);
    r.set_stream(stream);
    r
}

impl Trainer {
    /// A run starting from `model` (its device and dtype are used) on the reference
    /// [`BurnEngine`].
    pub fn new(model: &Mlp, config: TrainConfig) -> Result<Self> {
        Self::new_on(EngineKind::Burn, model, config)
    }

    /// A run starting from `model` on the engine `kind`.
    pub fn new_on(kind: EngineKind, model: &Mlp, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        let engine = kind.build(model, &config)?;
        Self::with_engine(engine, config)
    }

    /// Continues the run saved in `dir` on the [`BurnEngine`] on `device` (dtype as saved),
    /// checkpointing back into `dir`.
    pub fn resume(dir: &Path, device: &Device) -> Result<Self> {
        Self::resume_on(EngineKind::Burn, dir, device)
    }

    /// Continues the run saved in `dir` (by either engine) on the engine `kind`.
    pub fn resume_on(kind: EngineKind, dir: &Path, device: &Device) -> Result<Self> {
        Self::resume_with(dir, |meta, state| kind.restore(meta, state, device))
    }
}

impl<M: BurnNetwork> Trainer<M> {
    /// A run starting from `model` (its device and dtype are used; autodiff is added) on the
    /// [`BurnEngine`].
    pub fn burn(model: &M, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        let engine = BurnEngine::new(model, &config.optimizer, config.ema)?;
        Self::with_engine(Box::new(engine), config)
    }

    /// Continues the run saved in `dir` on the [`BurnEngine`] on `device`, whatever device it
    /// was trained on (the training state is stored on the host).
    pub fn resume_burn(dir: &Path, device: &Device) -> Result<Self> {
        Self::resume_with(dir, |meta, state| {
            let config = meta
                .train
                .as_ref()
                .ok_or_else(|| state.error("no training configuration: nothing to resume"))?;
            let arch = M::config_of(&meta.model).ok_or_else(|| {
                state.error(format!(
                    "this run's network is {}, not the kind asked for",
                    meta.model.describe()
                ))
            })?;
            Ok(Box::new(BurnEngine::<M>::from_state_dict(
                arch,
                state,
                device,
                &config.optimizer,
                config.ema,
            )?) as Box<dyn StepEngine<Net = M>>)
        })
    }
}

impl<N: Network + 'static> Trainer<N> {
    /// A run on any [`StepEngine`], starting at step 0.
    pub fn with_engine(engine: Box<dyn StepEngine<Net = N>>, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            engine,
            step: 0,
            data_rng: stream_rng(config.seed, DATA_STREAM),
            noise_rng: stream_rng(config.seed, NOISE_STREAM),
            config,
            run_dir: None,
        })
    }

    /// Checkpoint into run directory `dir`, describing the objective/path and the data
    /// normalisation with the given JSON values (stored in `meta.json` as is).
    pub fn checkpoint_to(
        mut self,
        dir: impl Into<PathBuf>,
        objective: serde_json::Value,
        normalization: serde_json::Value,
    ) -> Self {
        self.run_dir = Some(RunDir {
            path: dir.into(),
            objective,
            normalization,
        });
        self
    }

    /// Continues the run saved in `dir` on the engine `make` builds from the saved metadata and
    /// training state.
    pub fn resume_with(
        dir: &Path,
        make: impl FnOnce(&RunMeta, &checkpoint::StateDict) -> Result<Box<dyn StepEngine<Net = N>>>,
    ) -> Result<Self> {
        let (meta, state) = checkpoint::load_train_state(dir)?;
        let path = dir.join(checkpoint::STATE_FILE);
        let err = |msg: String| Error::Checkpoint {
            path: path.clone(),
            msg,
        };
        let config = meta
            .train
            .clone()
            .ok_or_else(|| err("no training configuration: nothing to resume".into()))?;
        let rng_of = |role: &str| -> Result<Rng> {
            meta.rng
                .get(role)
                .ok_or_else(|| err(format!("no '{role}' RNG state")))?
                .restore()
                .map_err(|e| err(e.to_string()))
        };
        let (data_rng, noise_rng) = (rng_of("data")?, rng_of("noise")?);
        let engine = make(&meta, &state)?;
        if engine.architecture() != meta.model {
            return Err(err(
                "the engine's architecture differs from the checkpoint's".into(),
            ));
        }
        Ok(Self {
            engine,
            config,
            step: meta.step,
            data_rng,
            noise_rng,
            run_dir: Some(RunDir {
                path: dir.to_path_buf(),
                objective: meta.objective,
                normalization: meta.normalization,
            }),
        })
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Changes the total number of steps (e.g. to extend a finished run). The schedule is a
    /// function of N, so the learning rates of the remaining steps change with it.
    pub fn set_total_steps(&mut self, steps: usize) -> Result<()> {
        let mut c = self.config.clone();
        c.steps = steps;
        c.validate()?;
        self.config = c;
        Ok(())
    }

    /// The engine.
    pub fn engine(&self) -> &dyn StepEngine<Net = N> {
        self.engine.as_ref()
    }

    /// The raw (current) weights.
    pub fn model(&self) -> N {
        self.engine.model()
    }

    /// The weights to sample with: the EMA weights when EMA is on, else the raw ones.
    pub fn sampling_model(&self) -> N {
        self.engine
            .ema_model()
            .unwrap_or_else(|| self.engine.model())
    }

    /// The run's metadata as of now.
    pub fn meta(&self) -> RunMeta {
        let (objective, normalization) = match &self.run_dir {
            Some(r) => (r.objective.clone(), r.normalization.clone()),
            None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        RunMeta {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            model: self.engine.architecture(),
            objective,
            normalization,
            step: self.step,
            seed: self.config.seed,
            ema: self.config.ema.is_some(),
            dtype: StoredDType::of(self.engine.dtype()),
            engine: self.engine.name().into(),
            rng: [("data", &self.data_rng), ("noise", &self.noise_rng)]
                .into_iter()
                .map(|(k, r)| (k.to_string(), RngState::capture(r)))
                .collect(),
            train: Some(self.config.clone()),
        }
    }

    /// Writes a checkpoint (training state, sampling weights, `meta.json`) into the run
    /// directory; an error if none was set.
    pub fn save_checkpoint(&self) -> Result<()> {
        let dir = self.run_dir.as_ref().ok_or_else(|| {
            Error::InvalidInput("no run directory set (Trainer::checkpoint_to)".into())
        })?;
        checkpoint::save_run(
            &dir.path,
            &self.meta(),
            &self.sampling_model(),
            Some(&self.engine.state_dict()),
        )
    }

    /// Trains from the current step to N, calling `on_step` after every step; see the module
    /// documentation. On divergence returns [`Error::Diverged`] without writing anything, so
    /// the run directory keeps the last good checkpoint.
    pub fn run(
        &mut self,
        objective: &dyn Objective,
        data: &mut dyn Minibatches,
        on_step: &mut dyn FnMut(&StepInfo) -> Control,
    ) -> Result<TrainOutcome> {
        self.config.validate()?;
        let started = Instant::now();
        let first = self.step;
        let total = self.config.steps;
        let mut last_loss = f64::NAN;
        // Labels: a conditional network learns from them (K = its classes), a classifier
        // predicts them (K = its outputs).
        let net = self.engine.model();
        let label_classes = if net.classes() > 0 {
            Some(net.classes())
        } else if objective.needs_labels() {
            Some(match net.architecture() {
                Architecture::Mlp(c) => c.out_dim(),
                a => a.dim(),
            })
        } else {
            None
        };
        while self.step < total {
            let n = self.step;
            let lr = self.config.schedule.lr(self.config.optimizer.lr, n, total);
            let mut batch = data.batch(self.config.batch_size, &mut self.data_rng);
            match label_classes {
                // An unconditional network ignores the labels a data set may carry.
                None => batch.labels = None,
                Some(k) => {
                    let l = batch.labels.as_deref().ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "the {} objective on a network of {k} classes needs class labels, and the data carry none",
                            objective.name()
                        ))
                    })?;
                    if let Some(y) = l.iter().find(|&&y| y >= k) {
                        return Err(Error::InvalidInput(format!(
                            "data label {y} is out of range for the network's {k} classes"
                        )));
                    }
                }
            }
            // An engine may report divergence itself; the loop's step count is authoritative.
            let stats = self
                .engine
                .step(objective, &batch, &mut self.noise_rng, lr)
                .map_err(|e| match e {
                    Error::Diverged { msg, .. } => Error::Diverged { step: n + 1, msg },
                    other => other,
                })?;
            if !stats.loss.is_finite() {
                return Err(Error::Diverged {
                    step: n + 1,
                    msg: format!("the loss is {} (learning rate {lr:e})", stats.loss),
                });
            }
            if !stats.grad_norm.is_finite() {
                return Err(Error::Diverged {
                    step: n + 1,
                    msg: format!(
                        "the gradient norm is {} (loss {}, learning rate {lr:e})",
                        stats.grad_norm, stats.loss
                    ),
                });
            }
            self.step = n + 1;
            last_loss = stats.loss;
            let due = self.step == total
                || self
                    .config
                    .checkpoint_every
                    .is_some_and(|k| self.step.checked_rem(k) == Some(0));
            let checkpointed = due && self.run_dir.is_some();
            if checkpointed {
                self.save_checkpoint()?;
            }
            let info = StepInfo {
                step: self.step,
                total,
                loss: stats.loss,
                lr,
                grad_norm: stats.grad_norm,
                steps_per_sec: (self.step - first) as f64
                    / started.elapsed().as_secs_f64().max(1e-9),
                checkpointed,
            };
            if on_step(&info) == Control::Stop {
                if !checkpointed && self.run_dir.is_some() {
                    self.save_checkpoint()?;
                }
                return Ok(TrainOutcome {
                    step: self.step,
                    stopped: self.step < total,
                    last_loss,
                });
            }
        }
        Ok(TrainOutcome {
            step: self.step,
            stopped: false,
            last_loss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::mlp::MlpConfig;
    use crate::objective::cfm::FlowMatching;
    use crate::path::{CondOt, GaussianPath};
    use crate::tensor::DType;
    use crate::tensor::{cpu, to_vec, Tensor};
    use rand_distr::{Distribution, StandardNormal};

    /// 8 Gaussians of std 0.1 on the circle of radius 2 (FFJORD's 8gaussians shape).
    fn eight_gaussians(n: usize, r: &mut Rng) -> Points {
        use rand::Rng as _;
        let mut v = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let k = r.random_range(0..8) as f64;
            let a = k * std::f64::consts::FRAC_PI_4;
            let (zx, zy): (f64, f64) = (StandardNormal.sample(r), StandardNormal.sample(r));
            v.push(2.0 * a.cos() + 0.1 * zx);
            v.push(2.0 * a.sin() + 0.1 * zy);
        }
        Points::new(v, 2).unwrap()
    }

    fn cfm() -> FlowMatching<CondOt> {
        FlowMatching::new(GaussianPath::new(CondOt))
    }

    fn small_config(steps: usize) -> TrainConfig {
        TrainConfig {
            schedule: LrSchedule::Cosine {
                warmup: 3,
                final_ratio: 0.1,
            },
            ema: Some(EmaConfig {
                decay: 0.9,
                warmup: true,
            }),
            optimizer: OptimizerConfig {
                clip_grad_norm: Some(1.0),
                ..OptimizerConfig::adam(5e-3)
            },
            ..TrainConfig::new(steps, 64, 1e-3, 11)
        }
    }

    /// Runs `trainer` to its end (or until `stop_at`), returning the losses seen.
    fn losses(trainer: &mut Trainer, stop_at: Option<usize>) -> Vec<f64> {
        let mut out = Vec::new();
        let mut data = eight_gaussians;
        trainer
            .run(&cfm(), &mut data, &mut |i: &StepInfo| {
                out.push(i.loss);
                if Some(i.step) == stop_at {
                    Control::Stop
                } else {
                    Control::Continue
                }
            })
            .unwrap();
        out
    }

    fn flat(m: &Mlp) -> Vec<f64> {
        m.layers
            .iter()
            .flat_map(|l| {
                [
                    to_vec(&l.weight.val()),
                    to_vec(&l.bias.as_ref().unwrap().val()),
                ]
            })
            .flatten()
            .collect()
    }

    /// Same seed → the same losses bit for bit; another seed → different ones.
    #[test]
    fn same_seed_same_losses() {
        let cfg = small_config(8);
        let model = cfg.init_model(&MlpConfig::new(2, 32, 2), &cpu(), DType::F32);
        let a = losses(&mut Trainer::new(&model, cfg.clone()).unwrap(), None);
        let b = losses(&mut Trainer::new(&model, cfg.clone()).unwrap(), None);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let other = TrainConfig { seed: 12, ..cfg };
        let c = losses(&mut Trainer::new(&model, other).unwrap(), None);
        assert_ne!(a, c);
    }

    /// 20 steps uninterrupted vs 10 steps + checkpoint + resume + 10 steps: identical losses
    /// and final raw and EMA weights, bit for bit (cosine schedule, EMA with warm-up, clipping
    /// all active so their state must round-trip too) — in f32 and f64.
    #[test]
    fn resume_continues_exactly() {
        for dtype in [DType::F32, DType::F64] {
            let cfg = TrainConfig {
                checkpoint_every: Some(5),
                ..small_config(20)
            };
            let model = cfg.init_model(&MlpConfig::new(2, 32, 2), &cpu(), dtype);
            let mut full = Trainer::new(&model, cfg.clone()).unwrap();
            let straight = losses(&mut full, None);

            let dir = tempfile::tempdir().unwrap();
            let objective = serde_json::json!({"name": "cfm", "path": "cond-ot"});
            let mut first = Trainer::new(&model, cfg.clone()).unwrap().checkpoint_to(
                dir.path(),
                objective.clone(),
                serde_json::Value::Null,
            );
            let mut got = losses(&mut first, Some(10));
            assert_eq!(first.step(), 10);
            drop(first);
            let mut second = Trainer::resume(dir.path(), &cpu()).unwrap();
            assert_eq!(second.step(), 10);
            assert_eq!(second.meta().objective, objective);
            got.extend(losses(&mut second, None));
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                straight.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{dtype:?}"
            );
            assert_eq!(flat(&second.model()), flat(&full.model()));
            assert_eq!(flat(&second.sampling_model()), flat(&full.sampling_model()));
            // The run directory's sampling weights are the EMA weights (in f32).
            let (meta, m) = checkpoint::load_run(dir.path(), &cpu(), DType::F64).unwrap();
            assert_eq!(meta.step, 20);
            assert!(meta.ema);
            let ema32: Vec<f64> = flat(&full.sampling_model())
                .iter()
                .map(|v| *v as f32 as f64)
                .collect();
            assert_eq!(flat(&m), ema32);
        }
    }

    /// Resuming from a truncated, foreign or inconsistent training state is a clear
    /// `Error::Checkpoint`, never a panic.
    #[test]
    fn resume_refuses_bad_state() {
        let cfg = small_config(6);
        let model = cfg.init_model(&MlpConfig::new(2, 16, 1), &cpu(), DType::F32);
        let dir = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(&model, cfg).unwrap().checkpoint_to(
            dir.path(),
            serde_json::Value::Null,
            serde_json::Value::Null,
        );
        losses(&mut t, Some(3));
        let state = dir.path().join(checkpoint::STATE_FILE);
        let good = std::fs::read(&state).unwrap();
        let expect = |needle: &str| match Trainer::resume(dir.path(), &cpu()) {
            Err(Error::Checkpoint { msg, .. }) => {
                assert!(msg.contains(needle), "'{msg}' lacks '{needle}'")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("resume succeeded; expected '{needle}'"),
        };
        std::fs::write(&state, &good[..good.len() - 100]).unwrap();
        expect("not a readable safetensors");
        // Sampling weights are not a training state.
        std::fs::copy(dir.path().join(checkpoint::MODEL_FILE), &state).unwrap();
        expect("not a scoreflow training state");
        // Moments of the wrong shape.
        let mut sd = checkpoint::StateDict::from_bytes(&good, &state).unwrap();
        sd.tensors.get_mut("adam.0.weight.exp_avg").unwrap().shape = vec![3, 16];
        std::fs::write(&state, sd.to_bytes().unwrap()).unwrap();
        expect("has shape [3, 16], expected [16, 3]");
        // Missing EMA weights while the config asks for EMA.
        let mut sd = checkpoint::StateDict::from_bytes(&good, &state).unwrap();
        sd.tensors.retain(|k, _| !k.starts_with("ema."));
        std::fs::write(&state, sd.to_bytes().unwrap()).unwrap();
        expect("no EMA weights");
        std::fs::write(&state, &good).unwrap();
        assert_eq!(Trainer::resume(dir.path(), &cpu()).unwrap().step(), 3);
    }

    /// An objective whose loss turns NaN at a given call.
    struct NanAt {
        call: std::cell::Cell<usize>,
        at: usize,
    }
    impl Objective for NanAt {
        fn name(&self) -> &'static str {
            "nan-at"
        }
        fn loss(
            &self,
            model: &dyn crate::field::network::Network,
            data: &Tensor<2>,
            rng: &mut Rng,
        ) -> Tensor<1> {
            let l = cfm().loss(model, data, rng);
            let c = self.call.get() + 1;
            self.call.set(c);
            if c == self.at {
                l * f64::NAN
            } else {
                l
            }
        }
    }

    /// A NaN loss at step 13 stops with `Error::Diverged { step: 13 }`, and the run directory
    /// still holds the step-10 checkpoint byte for byte; a huge learning rate (1e30: after one
    /// Adam step the weights are ~±1e30, so the next f32 forward overflows) also diverges.
    #[test]
    fn divergence_stops_and_keeps_last_checkpoint() {
        let cfg = TrainConfig {
            checkpoint_every: Some(5),
            ..small_config(20)
        };
        let model = cfg.init_model(&MlpConfig::new(2, 32, 2), &cpu(), DType::F32);
        let dir = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(&model, cfg.clone()).unwrap().checkpoint_to(
            dir.path(),
            serde_json::Value::Null,
            serde_json::Value::Null,
        );
        let files = [
            checkpoint::STATE_FILE,
            checkpoint::MODEL_FILE,
            checkpoint::META_FILE,
        ];
        let mut at10 = Vec::new();
        let obj = NanAt {
            call: 0.into(),
            at: 13,
        };
        let mut data = eight_gaussians;
        let r = t.run(&obj, &mut data, &mut |i: &StepInfo| {
            if i.step == 10 {
                at10 = files
                    .iter()
                    .map(|f| std::fs::read(dir.path().join(f)).unwrap())
                    .collect();
            }
            Control::Continue
        });
        match r {
            Err(Error::Diverged { step, msg }) => {
                assert_eq!(step, 13);
                assert!(msg.contains("loss is NaN"), "{msg}");
            }
            other => panic!("expected divergence, got {other:?}"),
        }
        assert_eq!(t.step(), 12, "the failed step is not counted");
        let now: Vec<Vec<u8>> = files
            .iter()
            .map(|f| std::fs::read(dir.path().join(f)).unwrap())
            .collect();
        assert!(now == at10, "checkpoint files changed after divergence");
        assert_eq!(
            checkpoint::read_meta(&dir.path().join(checkpoint::META_FILE))
                .unwrap()
                .step,
            10
        );
        // The weights in memory are those after step 12, all finite.
        assert!(flat(&t.model()).iter().all(|v| v.is_finite()));

        let huge = TrainConfig {
            optimizer: OptimizerConfig::adam(1e30),
            ..TrainConfig::new(50, 64, 1e30, 3)
        };
        let mut t = Trainer::new(&model, huge).unwrap();
        let mut data = eight_gaussians;
        match t.run(&cfm(), &mut data, &mut |_: &StepInfo| Control::Continue) {
            Err(Error::Diverged { step, .. }) => assert!(step <= 5, "diverged only at step {step}"),
            other => panic!("expected divergence, got {other:?}"),
        }
    }

    /// Flow matching on 8 Gaussians (width 32, 200 steps, batch 256) learns more than any
    /// Gaussian fit could. Per coordinate, x₁ has variance a = 2.01 (radius 2, σ = 0.1) and
    /// x₀ variance b = 1. At initialisation v ≈ 0, so the loss is ≈ E‖x₁ − x₀‖²/2 = 3.01. The
    /// best predictor of x₁ − x₀ that is linear in x_t — all a model can learn from data with
    /// this covariance but Gaussian — has loss ∫₀¹ [a + b − (ta − (1−t)b)²/(t²a + (1−t)²b)] dt
    /// = 2.227 (midpoint rule, 2·10⁵ nodes). A working loop must go clearly below it: the mean
    /// of the last 40 losses (its minibatch noise ≈ 0.03) under 2.15. A broken one (no update,
    /// wrong sign, noise and data mixed up) stays at ≥ 2.23.
    #[test]
    fn flow_matching_beats_the_best_linear_field() {
        let cfg = TrainConfig {
            schedule: LrSchedule::Warmup { warmup: 10 },
            ema: Some(EmaConfig::new(0.99)),
            ..TrainConfig::new(200, 256, 5e-3, 0)
        };
        let model = cfg.init_model(&MlpConfig::new(2, 32, 2), &cpu(), DType::F32);
        let mut t = Trainer::new(&model, cfg).unwrap();
        let l = losses(&mut t, None);
        let head = l[..10].iter().sum::<f64>() / 10.0;
        let tail = l[l.len() - 40..].iter().sum::<f64>() / 40.0;
        assert!(
            (2.6..3.4).contains(&head),
            "initial loss {head} (expected ≈ 3.01)"
        );
        assert!(
            tail < 2.15,
            "loss {head} → {tail}: not below the linear floor 2.227"
        );
    }

    #[test]
    fn bad_configs_and_data_are_errors() {
        let model = MlpConfig::new(2, 8, 1).init(&cpu(), DType::F32, &mut rng(0));
        for cfg in [
            TrainConfig::new(0, 8, 1e-3, 0),
            TrainConfig::new(5, 0, 1e-3, 0),
            TrainConfig {
                optimizer: OptimizerConfig::adam(-1.0),
                ..TrainConfig::new(5, 8, 1e-3, 0)
            },
            TrainConfig {
                checkpoint_every: Some(0),
                ..TrainConfig::new(5, 8, 1e-3, 0)
            },
            TrainConfig {
                ema: Some(EmaConfig::new(1.0)),
                ..TrainConfig::new(5, 8, 1e-3, 0)
            },
        ] {
            assert!(matches!(
                Trainer::new(&model, cfg),
                Err(Error::InvalidInput(_))
            ));
        }
        let mut t = Trainer::new(&model, TrainConfig::new(5, 8, 1e-3, 0)).unwrap();
        let mut three_d = |n: usize, _: &mut Rng| Points::new(vec![0.0; 3 * n], 3).unwrap();
        assert!(matches!(
            t.run(&cfm(), &mut three_d, &mut |_: &StepInfo| Control::Continue),
            Err(Error::Shape(_))
        ));
        assert!(matches!(t.save_checkpoint(), Err(Error::InvalidInput(_))));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Trainer::resume(dir.path(), &cpu()),
            Err(Error::Io { .. })
        ));
    }
}
