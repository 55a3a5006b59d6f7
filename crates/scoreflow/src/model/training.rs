//! Starting and resuming the training run of a [`TrainSettings`] recipe in a run directory:
//! the data and its normaliser, the [`ModelKind`] and objective, the network initialised from the
//! seed (the MLP for points, the U-Net for images: [`super::settings::ArchKind`]), the engine
//! that trains it on the chosen device, and the files a new run writes before its first step
//! (`config.toml`, the held-out split of file data, `images.json` for images). The loop itself
//! is [`Trainer::run`] ([`RunTrainer::run`]); a caller (the CLI) drives it with its own progress
//! and checkpoint policy.

use std::path::Path;

use super::kind::ModelKind;
use super::settings::{ArchKind, TrainSettings};
use super::source::{FlowSource, SourceDraws, SOURCE_FILE};
use super::{image_dequantization, read_image_format, CONFIG_FILE, HELDOUT_FILE, IMAGES_FILE};
use crate::checkpoint::{self, RunMeta};
use crate::data::{self, DataSource, ImageFormat, Normalizer, Points};
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::field::network::Architecture;
use crate::field::unet::Unet;
use crate::objective::Objective;
use crate::tensor::{self, DType, Device};
use crate::train::{
    Batch, Control, Dequantized, EngineKind, Minibatches, StepInfo, TrainOutcome, Trainer,
};

/// The trainer of a run, by network: the MLP (burn or fused engine) or the U-Net (burn).
pub enum RunTrainer {
    /// An MLP run.
    Mlp(Trainer),
    /// A U-Net run.
    Unet(Trainer<Unet>),
}

macro_rules! each {
    ($self:expr, $t:ident => $e:expr) => {
        match $self {
            RunTrainer::Mlp($t) => $e,
            RunTrainer::Unet($t) => $e,
        }
    };
}

impl RunTrainer {
    /// [`Trainer::run`]: trains from the current step to N.
    pub fn run(
        &mut self,
        objective: &dyn Objective,
        data: &mut dyn Minibatches,
        on_step: &mut dyn FnMut(&StepInfo) -> Control,
    ) -> Result<TrainOutcome> {
        each!(self, t => t.run(objective, data, on_step))
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        each!(self, t => t.step())
    }

    /// The run's metadata as of now.
    pub fn meta(&self) -> RunMeta {
        each!(self, t => t.meta())
    }

    /// Writes a checkpoint into the run directory.
    pub fn save_checkpoint(&self) -> Result<()> {
        each!(self, t => t.save_checkpoint())
    }

    /// Changes the total number of steps.
    pub fn set_total_steps(&mut self, steps: usize) -> Result<()> {
        each!(self, t => t.set_total_steps(steps))
    }

    /// The configuration.
    pub fn config(&self) -> &crate::train::TrainConfig {
        each!(self, t => t.config())
    }

    /// The step engine's name ("burn" or "fused").
    pub fn engine_name(&self) -> &'static str {
        each!(self, t => t.engine().name())
    }

    /// Trainable parameters of the network.
    pub fn num_params(&self) -> usize {
        self.meta().model.num_params()
    }
}

/// A run ready to train: the trainer (positioned at its step) and what its batches need.
pub struct TrainingRun {
    /// The trainer, checkpointing into the run directory.
    pub trainer: RunTrainer,
    /// The source of minibatches (data units).
    pub source: DataSource,
    /// The normaliser (model units = normalised units).
    pub normalizer: Normalizer,
    /// What the network computes.
    pub kind: ModelKind,
    /// The objective of `kind`.
    pub objective: Box<dyn Objective>,
    /// The engine the settings resolve to for the objective.
    pub engine: EngineKind,
    /// Where a flow's source points come from (N(0, I): the objective draws its own).
    pub source_draws: SourceDraws,
    /// The image format, for image data (trained dequantised: [`TrainingRun::minibatches`]).
    pub image: Option<ImageFormat>,
    /// Where the steps are computed.
    pub device: DeviceChoice,
}

/// The minibatches of a run ([`TrainingRun::batches`]): n normalised targets, then, for a flow
/// with a source other than N(0, I), n normalised source points from the same stream (each side
/// with its own normaliser). With the Gaussian source the draws are those of a plain run.
#[derive(Debug, Clone)]
pub struct RunBatches {
    target: DataSource,
    normalizer: Normalizer,
    source: SourceDraws,
}

impl Minibatches for RunBatches {
    fn batch(&mut self, n: usize, rng: &mut tensor::Rng) -> Batch {
        let (points, labels) = self.target.batch_labelled(n, rng);
        let target = self
            .normalizer
            .apply(&points)
            .expect("data and normaliser share a dimension");
        Batch {
            target,
            source: self.source.batch(n, rng),
            labels,
        }
    }
}

/// The engine for a network on a device: the U-Net and any GPU run train on burn; `fused`
/// there is an error.
fn engine_for(
    settings: &TrainSettings,
    objective: &dyn Objective,
    arch: ArchKind,
    device: DeviceChoice,
) -> Result<EngineKind> {
    let fused = settings.engine == EngineKind::Fused;
    if arch == ArchKind::Unet || device.is_gpu() {
        if fused {
            return Err(Error::InvalidInput(if arch == ArchKind::Unet {
                "--engine fused trains MLPs only; the U-Net trains on --engine burn (or auto)"
                    .into()
            } else {
                format!("--engine fused runs on the CPU; on --device {device} use --engine burn (or auto)")
            }));
        }
        // Check the objective against the burn engine too (always trainable there).
        EngineKind::Burn.resolve(objective)
    } else {
        settings.engine.resolve(objective)
    }
}

impl TrainingRun {
    /// A normalised minibatch of n points (not dequantised; [`TrainingRun::minibatches`] is what
    /// training draws).
    pub fn batch(&self, n: usize, rng: &mut tensor::Rng) -> Points {
        self.normalizer
            .apply(&self.source.batch(n, rng))
            .expect("data and normaliser share a dimension")
    }

    /// The run's minibatches (targets and, for a flow from another source, source points).
    pub fn batches(&self) -> RunBatches {
        RunBatches {
            target: self.source.clone(),
            normalizer: self.normalizer.clone(),
            source: self.source_draws.clone(),
        }
    }

    /// The minibatches training draws, in model units: normalised points, or for images the
    /// dequantised training images z = 2(x + u)/L − 1 ([`Dequantized`]).
    pub fn minibatches(&self) -> Result<Box<dyn Minibatches>> {
        if let Some(f) = self.image {
            let train = self
                .source
                .train()
                .ok_or_else(|| Error::InvalidInput("image data without a training split".into()))?;
            return Ok(Box::new(Dequantized::new(
                train.clone(),
                image_dequantization(f),
            )?));
        }
        Ok(Box::new(self.batches()))
    }

    /// Starts a new run of `settings` in `dir` (which must exist) on the CPU
    /// ([`TrainingRun::start_on`]).
    pub fn start(settings: &TrainSettings, dir: &Path) -> Result<TrainingRun> {
        Self::start_on(settings, dir, DeviceChoice::Cpu)
    }

    /// Starts a new run of `settings` in `dir` (which must exist) on `device`: initialises the
    /// network from the seed and writes `config.toml`, for file data the held-out split and for
    /// images `images.json`. The first checkpoint is written by the trainer.
    pub fn start_on(
        settings: &TrainSettings,
        dir: &Path,
        device: DeviceChoice,
    ) -> Result<TrainingRun> {
        settings.validate()?;
        let image = settings.images()?.map(|im| im.format());
        let arch = settings.architecture(image)?;
        let (source, normalizer) = settings.training_data()?;
        let dim = source.dim();
        let mut kind = settings.model_kind(|| {
            let mut r = tensor::rng(settings.seed);
            normalizer
                .apply(&source.batch(2000, &mut r))
                .expect("same dimension")
        })?;
        let flow_source = match settings.source_data(dim)? {
            None => FlowSource::Gaussian,
            Some((data, normalizer)) => match data.dataset() {
                Some(name) => FlowSource::Dataset { name, normalizer },
                None => {
                    if let Some(points) = data.train() {
                        data::write_npy(dir.join(SOURCE_FILE), points)?;
                    }
                    FlowSource::File {
                        name: Path::new(&settings.source)
                            .file_name()
                            .map_or(settings.source.clone(), |f| {
                                f.to_string_lossy().into_owned()
                            }),
                        normalizer,
                    }
                }
            },
        };
        if let ModelKind::Cfm { source, .. } = &mut kind {
            *source = flow_source;
        }
        let source_draws = SourceDraws::new(&kind.flow_source(), dim, Some(dir))?;
        let objective = settings.objective(&kind)?;
        let engine = engine_for(settings, objective.as_ref(), arch, device)?;
        let dev: Device = device.open()?;
        let cfg = settings.train_config();
        let classes = if settings.conditional {
            source.classes()
        } else {
            0
        };
        let trainer = match (arch, image) {
            (ArchKind::Unet, Some(f)) => {
                let mut unet = settings.unet_config(f);
                unet.classes = classes;
                let net = unet.init(&dev, DType::F32, &mut tensor::rng(settings.seed))?;
                RunTrainer::Unet(Trainer::<Unet>::burn(&net, cfg)?.checkpoint_to(
                    dir,
                    to_json(&kind)?,
                    to_json(&normalizer)?,
                ))
            }
            _ => {
                let mut mlp = settings.mlp_config(dim);
                if classes > 0 {
                    mlp = mlp.with_classes(classes);
                }
                if kind.is_classifier() {
                    // K logits, one per class of the data.
                    if source.classes() < 2 {
                        return Err(Error::InvalidInput(format!(
                            "--method classifier needs at least 2 classes; the data have {}",
                            source.classes()
                        )));
                    }
                    mlp = mlp.with_outputs(source.classes());
                }
                let model = cfg.init_model(&mlp, &dev, DType::F32);
                RunTrainer::Mlp(Trainer::new_on(engine, &model, cfg)?.checkpoint_to(
                    dir,
                    to_json(&kind)?,
                    to_json(&normalizer)?,
                ))
            }
        };
        if let Some(test) = source.test() {
            data::write_npy(dir.join(HELDOUT_FILE), test)?;
        }
        if let Some(f) = image {
            let text = serde_json::to_string_pretty(&f)
                .map_err(|e| Error::InvalidInput(format!("cannot encode: {e}")))?;
            crate::fsutil::write_atomic(&dir.join(IMAGES_FILE), text.as_bytes())?;
        }
        crate::fsutil::write_atomic(&dir.join(CONFIG_FILE), settings.to_toml()?.as_bytes())?;
        Ok(TrainingRun {
            trainer,
            source,
            normalizer,
            kind,
            objective,
            engine,
            source_draws,
            image,
            device,
        })
    }

    /// Resumes the run in `dir` on the CPU ([`TrainingRun::resume_on`]).
    pub fn resume(settings: &TrainSettings, dir: &Path) -> Result<TrainingRun> {
        Self::resume_on(settings, dir, DeviceChoice::Cpu)
    }

    /// Resumes the run in `dir` from its last checkpoint with `settings` (the run's own, with
    /// at most the total steps and checkpoint interval changed), exactly where it stopped, on
    /// `device` (whatever device it was trained on: the state is stored on the host).
    pub fn resume_on(
        settings: &TrainSettings,
        dir: &Path,
        device: DeviceChoice,
    ) -> Result<TrainingRun> {
        settings.validate()?;
        let (source, _) = settings.training_data()?;
        let bad = |msg: String| Error::InvalidInput(format!("{}: {msg}", dir.display()));
        let meta = checkpoint::read_meta(&dir.join(checkpoint::META_FILE))?;
        // The run's own model kind (its saved path, SDE, target…), not one rebuilt from defaults.
        let kind: ModelKind = serde_json::from_value(meta.objective.clone())
            .map_err(|e| bad(format!("unknown objective in meta.json: {e}")))?;
        let normalizer: Normalizer = serde_json::from_value(meta.normalization.clone())
            .map_err(|e| bad(format!("malformed normalization in meta.json: {e}")))?;
        let image = read_image_format(dir)?;
        let objective = settings.objective(&kind)?;
        let source_draws = SourceDraws::new(&kind.flow_source(), source.dim(), Some(dir))?;
        let arch = match meta.model {
            Architecture::Unet(_) => ArchKind::Unet,
            Architecture::Mlp(_) => ArchKind::Mlp,
        };
        let engine = engine_for(settings, objective.as_ref(), arch, device)?;
        let dev = device.open()?;
        let mut trainer = match arch {
            ArchKind::Unet => RunTrainer::Unet(Trainer::<Unet>::resume_burn(dir, &dev)?),
            _ => RunTrainer::Mlp(Trainer::resume_on(engine, dir, &dev)?),
        };
        if meta.model.dim() != source.dim() {
            return Err(bad(format!(
                "the checkpoint is {}-D but the data are {}-D",
                meta.model.dim(),
                source.dim()
            )));
        }
        if trainer.step() >= settings.steps {
            return Err(bad(format!(
                "already trained {} of {} steps; pass a larger --steps to continue",
                trainer.step(),
                settings.steps
            )));
        }
        if trainer.config().steps != settings.steps {
            trainer.set_total_steps(settings.steps)?;
        }
        crate::fsutil::write_atomic(&dir.join(CONFIG_FILE), settings.to_toml()?.as_bytes())?;
        Ok(TrainingRun {
            trainer,
            source,
            normalizer,
            kind,
            objective,
            engine,
            source_draws,
            image,
            device,
        })
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::InvalidInput(format!("cannot encode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, TrainMethod};
    use crate::path::PathKind;
    use crate::train::Control;

    fn losses(run: &mut TrainingRun, stop_at: usize) -> Vec<f64> {
        let mut out = Vec::new();
        let (source, normalizer) = (run.source.clone(), run.normalizer.clone());
        let mut batches =
            |n: usize, r: &mut tensor::Rng| normalizer.apply(&source.batch(n, r)).unwrap();
        run.trainer
            .run(run.objective.as_ref(), &mut batches, &mut |i| {
                out.push(i.loss);
                if i.step == stop_at {
                    Control::Stop
                } else {
                    Control::Continue
                }
            })
            .unwrap();
        out
    }

    /// A run trained on the cosine path resumes on the cosine path: 20 + 20 steps give the
    /// losses of 40 uninterrupted ones. (Loading used to rebuild every flow objective on the
    /// straight path, so the resumed half trained another objective and its losses differed.)
    /// The loaded model reports the saved path too.
    #[test]
    fn a_saved_path_is_used_on_resume_and_load() {
        let settings = TrainSettings {
            method: TrainMethod::Cfm,
            path: PathKind::Cosine,
            width: 16,
            depth: 2,
            batch: 64,
            steps: 40,
            checkpoint_every: 20,
            ema: 0.0,
            schedule: crate::train::ScheduleKind::Constant,
            ..TrainSettings::default()
        };
        let whole_dir = tempfile::tempdir().unwrap();
        let whole = losses(
            &mut TrainingRun::start(&settings, whole_dir.path()).unwrap(),
            40,
        );
        let dir = tempfile::tempdir().unwrap();
        let mut first = TrainingRun::start(&settings, dir.path()).unwrap();
        let mut split = losses(&mut first, 20);
        first.trainer.save_checkpoint().unwrap();
        let mut resumed = TrainingRun::resume(&settings, dir.path()).unwrap();
        assert_eq!(
            resumed.kind,
            ModelKind::Cfm {
                path: PathKind::Cosine,
                source: FlowSource::Gaussian,
            }
        );
        split.extend(losses(&mut resumed, 40));
        assert_eq!(split, whole);
        resumed.trainer.save_checkpoint().unwrap();
        let model = Model::load(dir.path()).unwrap();
        assert_eq!(
            model.kind,
            ModelKind::Cfm {
                path: PathKind::Cosine,
                source: FlowSource::Gaussian,
            }
        );
        // The straight path would have trained a different objective.
        let straight = TrainSettings {
            path: PathKind::Condot,
            ..settings
        };
        let other_dir = tempfile::tempdir().unwrap();
        let other = losses(
            &mut TrainingRun::start(&straight, other_dir.path()).unwrap(),
            40,
        );
        assert_ne!(other, whole);
    }
}
