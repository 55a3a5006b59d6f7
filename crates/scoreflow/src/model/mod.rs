//! A trained model as a library value: everything a run directory *means*.
//!
//! A [`Model`] is a network ([`Network`]) plus what it computes ([`ModelKind`]: a flow velocity
//! on a probability path, a score under a forward SDE, or a noise-free score), the data
//! normalisation it was trained in ([`Normalizer`]: model units z = (x − μ)/σ), the recipe that
//! made it ([`TrainSettings`]) and its checkpoint metadata. From it come
//! * the field a sampler follows, in model units ([`Model::field`]) or data units
//!   ([`Model::field_in_data_units`]), at the model's own time for a flow time
//!   ([`ModelKind::model_time`]);
//! * samples by any sampler that applies, chosen by name with its options ([`SamplerSpec`]),
//!   in reproducible, shardable, streamed blocks ([`Model::sample_each`], [`sampling`]);
//! * exact log-likelihoods in data units, with the normaliser's log-determinant
//!   ([`Model::log_likelihood`]);
//! * held-out data and, for Gaussian-mixture data, the exact field it should have learned.
//!
//! A run directory holds [`CONFIG_FILE`] (the [`TrainSettings`]), `meta.json` +
//! `model.safetensors` + `train_state.safetensors` (the checkpoint: [`crate::checkpoint`];
//! `meta.json`'s `objective` is the [`ModelKind`], its `normalization` the [`Normalizer`]),
//! [`LOG_FILE`], and for file data the held-out split [`HELDOUT_FILE`]; an image run also holds
//! [`IMAGES_FILE`] (its [`ImageFormat`]): it trains on dequantised pixels, samples come back in
//! the data's units clamped to \[0, L − 1\] and likelihoods come with bits per dimension.
//!
//! A model computes on a [`DeviceChoice`] ([`Model::load_on`]); weights are read from the
//! host, so a run trained on one device samples on any other.

pub mod conditional;
#[cfg(test)]
mod dispatch_tests;
pub mod evaluate;
pub mod guide;
pub mod import;
pub mod kind;
pub mod sampling;
pub mod settings;
pub mod source;
pub mod training;
pub mod units;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use guide::{Guide, PosteriorMethod};
pub use kind::{ModelKind, Process, ProcessKind, TrainMethod};
pub use sampling::{Block, JobStats, Plan, BLOCK};
pub use settings::{load_points_or_explain, ArchKind, TrainSettings};
pub use source::{FlowSource, SourceDraws, SOURCE_FILE};
pub use training::{RunBatches, RunTrainer, TrainingRun};
pub use units::DataUnits;

use crate::checkpoint::{self, RunMeta};
use crate::coupling::CouplingKind;
use crate::data::{self, DataSource, Dataset, ImageFormat, Normalizer, Points};
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::field::analytic::{LabelledMixture, MixtureScore, MixtureVelocity};
use crate::field::mlp::Mlp;
use crate::field::network::{Architecture, Conditioned, Network};
use crate::field::VectorField;
use crate::fused::FusedMlp;
use crate::gaussian::GaussianMixture;
use crate::guidance::{
    BayesScore, ClassifierFree, ClassifierGradient, GuidedVelocity, NoiseLevelMatched,
};
use crate::inverse::{Approximation, Dps, Posterior, Replacement, ScoreParam, VelocityParam};
use crate::likelihood::{log_likelihood, Dequantization, Likelihood, LikelihoodOptions};
use crate::path::GaussianPath;
use crate::schedule::{NoiseSchedule, PathSchedule};
use crate::sde::ReverseDrift;
use crate::solve::langevin::Ula;
use crate::solve::{odeint, Method, Sampler, SamplerName, SamplerSpec};
use crate::tensor::{self, DType, Device, Rng, Tensor};
use sampling::{run_blocks, BlockResult};

/// The few-step samplers' names, for messages.
const FEW_STEP_NAMES: &str =
    "ddim, dpm-solver, dpmpp-2m, dpmpp-3m, dpmpp-2s, unipc, edm-euler, edm-heun";

/// File of the held-out split of a file data set.
pub const HELDOUT_FILE: &str = "heldout.npy";
/// File of the training settings.
pub const CONFIG_FILE: &str = "config.toml";
/// File of the training log.
pub const LOG_FILE: &str = "train_log.csv";
/// File of an image run's [`ImageFormat`].
pub const IMAGES_FILE: &str = "images.json";

/// The dequantisation of images of `format` in model units: z = 2(x + u)/L − 1, u ~ U\[0, 1)
/// ([`Dequantization::symmetric`]; its cell centres are [`ImageFormat::normalizer`]).
pub fn image_dequantization(format: ImageFormat) -> Dequantization {
    Dequantization::symmetric(format.levels)
}

/// The [`ImageFormat`] of the run in `dir` (`None` for a run on points).
pub fn read_image_format(dir: &Path) -> Result<Option<ImageFormat>> {
    let p = dir.join(IMAGES_FILE);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| run_error(&p, format!("malformed image format: {e}")))
}

/// A trained model (see the module documentation), or an exact one: a built-in Gaussian-mixture
/// data set whose field is computed in closed form ([`Model::exact`]) — the same samplers and
/// evaluations with no learning error.
#[derive(Clone)]
pub struct Model {
    /// The run directory it was loaded from or saved to, if any.
    pub dir: Option<PathBuf>,
    /// The recipe.
    pub settings: TrainSettings,
    /// The checkpoint metadata (`None` for an exact model).
    pub meta: Option<RunMeta>,
    /// What the network computes.
    pub kind: ModelKind,
    /// The data normalisation (model units = normalised units).
    pub normalizer: Normalizer,
    /// The image format of an image run (`None` for points).
    pub image: Option<ImageFormat>,
    source: Source,
    /// Where a flow's samples start (N(0, I) unless the run has another source).
    draws: SourceDraws,
    device: Device,
}

/// Where a model's field comes from.
#[derive(Clone)]
enum Source {
    /// A trained network (model units, model time).
    Network(Arc<dyn Network>),
    /// The closed form of a Gaussian mixture (in model units).
    Exact(GaussianMixture),
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("dir", &self.dir)
            .field("kind", &self.kind)
            .field("architecture", &self.meta.as_ref().map(|m| &m.model))
            .finish()
    }
}

fn run_error(dir: &Path, msg: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{}: {msg}", dir.display()))
}

/// The sampling network of an architecture's weights on the CPU: the fused engine for MLPs.
fn cpu_network(mlp: &Mlp) -> Arc<dyn Network> {
    Arc::new(FusedMlp::from_mlp(mlp))
}

impl Model {
    /// A model from its parts (e.g. imported weights); `meta.model` is set from the network.
    pub fn new(
        network: Arc<dyn Network>,
        kind: ModelKind,
        normalizer: Normalizer,
        settings: TrainSettings,
        mut meta: RunMeta,
    ) -> Result<Model> {
        kind.validate()?;
        normalizer.validate()?;
        if normalizer.dim() != network.dim() {
            return Err(Error::Shape(format!(
                "normalization is {}-D but the network is {}-D",
                normalizer.dim(),
                network.dim()
            )));
        }
        meta.model = network.architecture();
        meta.objective = serde_json::to_value(&kind)
            .map_err(|e| Error::InvalidInput(format!("cannot encode the model kind: {e}")))?;
        meta.normalization = serde_json::to_value(&normalizer)
            .map_err(|e| Error::InvalidInput(format!("cannot encode the normaliser: {e}")))?;
        Ok(Model {
            dir: None,
            settings,
            meta: Some(meta),
            draws: SourceDraws::new(&kind.flow_source(), normalizer.dim(), None)?,
            kind,
            normalizer,
            image: None,
            source: Source::Network(network),
            device: tensor::cpu(),
        })
    }

    /// The exact model of a built-in Gaussian-mixture data set under `kind`: the score of the
    /// data perturbed by the SDE (DSM kinds), the marginal velocity of the path from N(0, I)
    /// (flow kinds, [`crate::field::analytic::MixtureVelocity`]) or the score of the data
    /// (noise-free kinds), in data units (identity normaliser). Every sampler and evaluation that
    /// takes a model takes it, so sampler error can be told from learning error.
    pub fn exact(dataset: Dataset, kind: ModelKind) -> Result<Model> {
        let spec = dataset.mixture().ok_or_else(|| {
            let names: Vec<&str> = Dataset::ALL
                .iter()
                .filter(|d| d.mixture().is_some())
                .map(|d| d.name())
                .collect();
            Error::InvalidInput(format!(
                "{dataset} has no closed-form density; exact fields exist for the Gaussian mixtures: {}",
                names.join(", ")
            ))
        })?;
        kind.validate()?;
        let settings = TrainSettings {
            data: dataset.name().into(),
            method: kind.method(),
            ..TrainSettings::default()
        };
        Ok(Model {
            dir: None,
            settings,
            meta: None,
            normalizer: Normalizer::identity(spec.dim()),
            source: Source::Exact(GaussianMixture::from(&spec)),
            draws: SourceDraws::gaussian(),
            kind,
            image: None,
            device: tensor::cpu(),
        })
    }

    /// The exact score model of a built-in Gaussian mixture under the forward SDE `sde` with
    /// the training defaults' parameters: [`Model::exact_for`] of a DSM recipe.
    pub fn exact_score(dataset: Dataset, sde: crate::sde::SdeKind) -> Result<Model> {
        Model::exact_for(
            dataset,
            &TrainSettings {
                method: TrainMethod::Dsm,
                sde,
                ..TrainSettings::default()
            },
        )
    }

    /// [`Model::exact`] with the path (cfm), SDE (dsm) or objective (sm, ssm) that
    /// [`TrainSettings::default`] gives `method`.
    pub fn exact_default(dataset: Dataset, method: TrainMethod) -> Result<Model> {
        Model::exact_for(
            dataset,
            &TrainSettings {
                method,
                ..TrainSettings::default()
            },
        )
    }

    /// The exact model of a built-in Gaussian mixture under the recipe `settings` (its method,
    /// path, SDE and their parameters; [`TrainSettings::model_kind`], VE's σ_max from 2,000
    /// draws of a fixed stream): what `scoreflow sample --exact NAME` samples, for sampler
    /// studies without learning error.
    pub fn exact_for(dataset: Dataset, settings: &TrainSettings) -> Result<Model> {
        let settings = TrainSettings {
            data: dataset.name().into(),
            ..settings.clone()
        };
        let kind = settings.model_kind(|| dataset.sample(2000, &mut tensor::rng(0x4558_4354)))?; // "EXCT"
        Model::exact(dataset, kind)
    }

    /// True for an exact (closed-form) model.
    pub fn is_exact(&self) -> bool {
        matches!(self.source, Source::Exact(_))
    }

    /// Loads a run directory for the CPU ([`Model::load_on`]).
    pub fn load(dir: &Path) -> Result<Model> {
        Self::load_on(dir, DeviceChoice::Cpu)
    }

    /// Loads a run directory to compute on `device` (an MLP samples on the fused CPU kernels on
    /// the CPU, on burn elsewhere), with errors that say what is wrong with it.
    pub fn load_on(dir: &Path, device: DeviceChoice) -> Result<Model> {
        if !dir.is_dir() {
            return Err(run_error(dir, "no such run directory"));
        }
        let meta_path = dir.join(checkpoint::META_FILE);
        if !meta_path.exists() {
            return Err(run_error(
                dir,
                "not a scoreflow run directory (no meta.json; train one with `scoreflow train --out DIR`)",
            ));
        }
        let settings = TrainSettings::from_file(&dir.join(CONFIG_FILE))?;
        let meta = checkpoint::read_meta(&meta_path)?;
        let kind: ModelKind = serde_json::from_value(meta.objective.clone()).map_err(|e| {
            run_error(
                &meta_path,
                format!("the run's objective is not one this scoreflow knows: {e}"),
            )
        })?;
        if kind.method() != settings.method {
            return Err(run_error(
                dir,
                format!(
                    "config.toml says method {} but meta.json holds a {} model; the files come from different runs",
                    settings.method.name(),
                    kind.method().name()
                ),
            ));
        }
        let normalizer: Normalizer = serde_json::from_value(meta.normalization.clone())
            .map_err(|e| run_error(&meta_path, format!("malformed normalization: {e}")))?;
        normalizer.validate()?;
        if normalizer.dim() != meta.model.dim() {
            return Err(run_error(
                &meta_path,
                format!(
                    "normalization is {}-D but the model is {}-D",
                    normalizer.dim(),
                    meta.model.dim()
                ),
            ));
        }
        let flow_source = kind.flow_source();
        if flow_source.normalizer(normalizer.dim()).dim() != normalizer.dim() {
            return Err(run_error(
                &meta_path,
                format!(
                    "the source {} and the data differ in dimension",
                    flow_source.name()
                ),
            ));
        }
        let draws = SourceDraws::new(&flow_source, normalizer.dim(), Some(dir))?;
        let image = read_image_format(dir)?;
        if let Some(f) = image {
            if f.dim() != meta.model.dim() {
                return Err(run_error(
                    &dir.join(IMAGES_FILE),
                    format!(
                        "images of {} pixels but the model is {}-D",
                        f.dim(),
                        meta.model.dim()
                    ),
                ));
            }
        }
        let dev = device.open()?;
        let network: Arc<dyn Network> = match &meta.model {
            Architecture::Mlp(config) => {
                let mlp = Mlp::load_safetensors(
                    &dir.join(checkpoint::MODEL_FILE),
                    config,
                    &dev,
                    DType::F32,
                )?;
                // The fused kernels evaluate fields (outputs = d); a classifier's K logits and
                // their input gradient run on burn.
                if device.is_gpu() || kind.is_classifier() {
                    Arc::new(mlp)
                } else {
                    cpu_network(&mlp)
                }
            }
            Architecture::Unet(config) => {
                let sd = crate::state::StateDict::read(&dir.join(checkpoint::MODEL_FILE))?;
                Arc::new(crate::field::unet::Unet::from_state(
                    &sd,
                    "",
                    config,
                    &dev,
                    DType::F32,
                )?)
            }
        };
        Ok(Model {
            dir: Some(dir.to_path_buf()),
            settings,
            meta: Some(meta),
            kind,
            normalizer,
            image,
            source: Source::Network(network),
            draws,
            device: dev,
        })
    }

    /// The device the model computes on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Writes the model as a run directory `dir` (created if needed): `config.toml`,
    /// `model.safetensors` (the network's state dict, f32) and `meta.json`, each atomically.
    /// There is no training state: such a run samples and evaluates but does not resume.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        let (Source::Network(network), Some(meta)) = (&self.source, &self.meta) else {
            return Err(Error::InvalidInput(
                "an exact model has no weights to save".into(),
            ));
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::fsutil::write_atomic(&dir.join(CONFIG_FILE), self.settings.to_toml()?.as_bytes())?;
        let mut sd = network.state_dict();
        sd.metadata.insert("format".into(), "pt".into());
        sd.write(&dir.join(checkpoint::MODEL_FILE))?;
        checkpoint::write_meta(&dir.join(checkpoint::META_FILE), meta)?;
        if let Some(points) = self.draws.points() {
            data::write_npy(dir.join(SOURCE_FILE), points)?;
        }
        if let Some(f) = self.image {
            let text = serde_json::to_string_pretty(&f)
                .map_err(|e| Error::InvalidInput(format!("cannot encode: {e}")))?;
            crate::fsutil::write_atomic(&dir.join(IMAGES_FILE), text.as_bytes())?;
        }
        self.dir = Some(dir.to_path_buf());
        Ok(())
    }

    /// Data dimension d.
    pub fn dim(&self) -> usize {
        match &self.source {
            Source::Network(n) => n.dim(),
            Source::Exact(m) => m.dim(),
        }
    }

    /// The sampling network (model units, model time); `None` for an exact model.
    pub fn network(&self) -> Option<&Arc<dyn Network>> {
        match &self.source {
            Source::Network(n) => Some(n),
            Source::Exact(_) => None,
        }
    }

    /// The built-in data set the run trained on, if any.
    pub fn dataset(&self) -> Option<Dataset> {
        self.settings.dataset()
    }

    /// `n` held-out data points (data units): fresh draws of a built-in set from a dedicated
    /// stream, or the run's saved held-out split (all of it when n exceeds it).
    pub fn held_out(&self, n: usize, seed: u64) -> Result<Points> {
        match self.dataset() {
            Some(ds) => DataSource::generator(ds).held_out(n, seed),
            None => {
                let dir = self.dir.as_deref().unwrap_or(Path::new("."));
                let p = dir.join(HELDOUT_FILE);
                if !p.exists() {
                    return Err(run_error(
                        &p,
                        "missing (the held-out split of the run's data)",
                    ));
                }
                let test = data::load_points(&p, Some(self.dim()))?;
                DataSource::finite("held-out", test.clone(), Some(test))?.held_out(n, seed)
            }
        }
    }

    /// The default sampler of the model's kind: Euler for flows, reverse-SDE Euler–Maruyama for
    /// score models, Heun on the Karras σ grid for EDM models (Karras et al.'s own sampler),
    /// Langevin for noise-free score models.
    pub fn default_sampler(&self) -> SamplerName {
        match self.kind {
            ModelKind::Cfm { .. } => SamplerName::Euler,
            ModelKind::Dsm { .. } => SamplerName::Em,
            ModelKind::Edm { .. } => SamplerName::EdmHeun,
            ModelKind::NoiseFree { .. } => SamplerName::Ula,
            ModelKind::Classifier { .. } => SamplerName::Euler,
        }
    }

    /// Errors unless `sampler` applies to the model's kind, saying which ones do.
    pub fn check_sampler(&self, sampler: SamplerName) -> Result<()> {
        let name = sampler.name();
        match &self.kind {
            ModelKind::Classifier { .. } => Err(self.kind.not_generative()),
            ModelKind::Cfm { .. } if sampler.is_few_step() => self.flow_schedule(sampler).map(|_| ()),
            ModelKind::Cfm { .. } if !sampler.is_ode_solver() => Err(Error::InvalidInput(format!(
                "--sampler {name} is for score models; this run is a flow-matching model: use euler, midpoint, heun, rk4, dopri5 or a few-step sampler ({FEW_STEP_NAMES})"
            ))),
            ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } if sampler.is_ode_solver() => Err(Error::InvalidInput(format!(
                "this run is a score model ({} SDE); sample it with --sampler em, pc, ald, ode or a few-step sampler ({FEW_STEP_NAMES}){}",
                sde.build()?.name(),
                if sampler == SamplerName::Heun {
                    "; Karras et al.'s Heun is edm-heun, and --sampler ode --solver heun integrates the probability-flow ODE".to_string()
                } else {
                    format!(" (--sampler ode --solver {name} integrates the probability-flow ODE)")
                }
            ))),
            ModelKind::NoiseFree { .. } if sampler != SamplerName::Ula => Err(Error::InvalidInput(format!(
                "this run is a noise-free score model ({}); sample it with --sampler ula (Langevin dynamics)",
                self.kind.method().name()
            ))),
            _ => Ok(()),
        }
    }

    /// The noise schedule a few-step `sampler` follows a flow's velocity on: the run's
    /// Gaussian path from N(0, I) ([`PathSchedule`]). Errors, naming what applies instead, for
    /// another source (x̂₁ and ε̂ are the predictions of a Gaussian path from N(0, I)), for path
    /// noise (`--cfm-sigma` > 0 or the sb coupling's bridge: x_t = αx₁ + σx₀ + s(t)z has three
    /// unknowns, so the velocity no longer determines x̂₁ and ε̂) and for a model that is not a
    /// flow.
    pub fn flow_schedule(&self, sampler: SamplerName) -> Result<PathSchedule> {
        let ModelKind::Cfm { path, source } = &self.kind else {
            return Err(Error::InvalidInput(format!(
                "a flow's noise schedule: this run is a {}",
                self.kind
            )));
        };
        let name = sampler.name();
        let instead = "use euler, midpoint, heun, rk4 or dopri5";
        if !source.is_gaussian() {
            return Err(Error::InvalidInput(format!(
                "--sampler {name} reads a velocity as the denoiser of a Gaussian path from N(0, I); this flow starts from {} (a data-to-data transport): {instead}",
                source.name()
            )));
        }
        if self.settings.cfm_sigma > 0.0 || self.settings.coupling == CouplingKind::Sb {
            return Err(Error::InvalidInput(format!(
                "--sampler {name} needs a path without extra noise; this flow was trained with path noise ({}), whose velocity does not determine x̂₁ and ε̂: {instead}",
                if self.settings.coupling == CouplingKind::Sb {
                    "the sb coupling's bridge".to_string()
                } else {
                    format!("--cfm-sigma {}", self.settings.cfm_sigma)
                }
            )));
        }
        Ok(PathSchedule::new(*path))
    }

    /// The field the network defines, in model (normalised) units and the model's own time:
    /// the velocity (flow matching, noise-free score) or the score (DSM).
    pub fn field(&self) -> Result<Box<dyn VectorField + '_>> {
        match &self.source {
            Source::Network(net) => self
                .kind
                .field(Box::new(Conditioned::unconditional(net.clone()))),
            Source::Exact(mix) => exact_field(mix.clone(), &self.kind),
        }
    }

    /// The network's field in data units (see [`DataUnits`]).
    pub fn field_in_data_units(&self) -> Result<DataUnits<Box<dyn VectorField + '_>>> {
        Ok(DataUnits {
            field: self.field()?,
            mean: self.normalizer.mean.clone(),
            std: self.normalizer.std.clone(),
            velocity: self.kind.is_velocity(),
        })
    }

    /// The learned field (velocity or score) at `x` (data units) at the model's time `t`, in
    /// data units.
    pub fn field_at(&self, x: &Points, t: f64) -> Result<Points> {
        if x.dim() != self.dim() {
            return Err(Error::Shape(format!(
                "points are {}-D, the model is {}-D",
                x.dim(),
                self.dim()
            )));
        }
        let xt = x.to_tensor(&self.device, DType::F32);
        Ok(Points::from_tensor(
            &self.field_in_data_units()?.eval_at(&xt, t),
        ))
    }

    /// The field of p(x | condition) ([`Model::guided_field`]) at `x` (data units) at the
    /// model's time `t`, in data units: with [`Guide::default`] the model's own field, so the
    /// difference of the two is the condition's term (likelihood or guidance).
    pub fn guided_field_at(&self, guide: &Guide, x: &Points, t: f64) -> Result<Points> {
        if x.dim() != self.dim() {
            return Err(Error::Shape(format!(
                "points are {}-D, the model is {}-D",
                x.dim(),
                self.dim()
            )));
        }
        let xt = x.to_tensor(&tensor::cpu(), DType::F32);
        let field = DataUnits {
            field: self.guided_field(guide)?,
            mean: self.normalizer.mean.clone(),
            std: self.normalizer.std.clone(),
            velocity: self.kind.is_velocity(),
        };
        Ok(Points::from_tensor(&field.eval_at(&xt, t)))
    }

    /// For a Gaussian-mixture data set, the exact field the network should have learned, in
    /// data units at the model's time: the score of the data perturbed by the SDE (DSM), the
    /// score of the data (noise-free), or the marginal velocity of the path (flow matching:
    /// u = (α̇/α)x − (σ̇ − α̇σ/α)σ·∇log p_t). `None` for other data.
    pub fn exact_field(&self) -> Result<Option<(Box<dyn VectorField>, String)>> {
        let Some(spec) = self.dataset().and_then(|d| d.mixture()) else {
            return Ok(None);
        };
        if !self.kind.flow_source().is_gaussian() {
            // The closed form is the velocity from N(0, I); this flow starts elsewhere.
            return Ok(None);
        }
        let z = GaussianMixture::from(&self.normalizer.apply_mixture(&spec)?);
        let data = &self.settings.data;
        let what = match &self.kind {
            ModelKind::Dsm { .. } | ModelKind::Edm { .. } => {
                format!("exact score of {data} perturbed by the SDE")
            }
            ModelKind::NoiseFree { .. } => format!("exact score of {data}"),
            ModelKind::Cfm { path, .. } => {
                format!("exact velocity of {data} on the {} path", path.name())
            }
            ModelKind::Classifier { .. } => return Ok(None),
        };
        Ok(Some((
            Box::new(DataUnits {
                field: exact_field(z, &self.kind)?,
                mean: self.normalizer.mean.clone(),
                std: self.normalizer.std.clone(),
                velocity: self.kind.is_velocity(),
            }),
            what,
        )))
    }

    /// Samples `plan` with `spec`, handing each finished block (data units) to `sink` in order;
    /// memory does not grow with the number of points. Every sampler starts from the block's
    /// N(0, I) noise (scaled to the prior's standard deviation for SDE samplers), except a flow
    /// with another source, which starts from fresh source draws (in model units, drawn from
    /// the block's generator after that noise).
    pub fn sample_each(
        &self,
        plan: &Plan,
        seed: u64,
        spec: &SamplerSpec,
        sink: impl FnMut(Block) -> Result<()>,
    ) -> Result<JobStats> {
        self.sample_guided_each(plan, seed, spec, &Guide::default(), sink)
    }

    /// [`Model::sample_each`] of p(x | condition): the field is [`Model::guided_field`], or for
    /// DPS and replacement (score models) the posterior method is the sampler itself, with
    /// `spec.steps` steps (default [`crate::solve::choice::SDE_STEPS`]).
    pub fn sample_guided_each(
        &self,
        plan: &Plan,
        seed: u64,
        spec: &SamplerSpec,
        guide: &Guide,
        sink: impl FnMut(Block) -> Result<()>,
    ) -> Result<JobStats> {
        spec.validate()?;
        self.check_sampler(spec.sampler)?;
        let field = self.guided_field(guide)?;
        let dev = self.device.clone();
        let d = self.dim();
        // Images come back in the data's range [0, L − 1] (continuous; rounding gives levels).
        let to_data = |p: Points| {
            let mut x = self.normalizer.invert(&p)?;
            if let Some(f) = self.image {
                let d = x.dim();
                let mut v = x.into_vec();
                f.clamp(&mut v);
                x = Points::new(v, d)?;
            }
            Ok(x)
        };
        let ode = |f: &dyn VectorField, x0: Tensor<2>, t0: f64, t1: f64| -> Result<BlockResult> {
            let opts = spec.ode_options().expect("an ODE spec");
            let sol = odeint(f, x0, t0, t1, &opts)?;
            Ok(BlockResult {
                x: sol.x,
                nfe: sol.nfe,
                trajectory: sol.trajectory,
            })
        };
        let stochastic = |s: &dyn Sampler, x0: Tensor<2>, rng: &mut Rng| -> Result<BlockResult> {
            let out = s.sample(field.as_ref(), x0, rng)?;
            Ok(BlockResult {
                x: out.x,
                nfe: out.nfe,
                trajectory: Vec::new(),
            })
        };
        match &self.kind {
            ModelKind::Cfm { .. } if spec.sampler.is_few_step() => {
                let schedule = self.flow_schedule(spec.sampler)?;
                let cfg = spec.diffusion_config().expect("a few-step sampler");
                let noisy = cfg.eta > 0.0 || cfg.churn.s_churn > 0.0;
                if noisy && self.settings.coupling != CouplingKind::Independent {
                    return Err(Error::InvalidInput(format!(
                        "--eta/--churn re-noise with the kernel x_t | x₁ ~ N(α x₁, σ² I), which the {} coupling does not have; sample this flow with η = 0 and no churn",
                        self.settings.coupling.name()
                    )));
                }
                let start = schedule.start_std();
                let sampler = cfg.build(Arc::new(schedule))?;
                run_blocks(
                    plan,
                    seed,
                    d,
                    &dev,
                    |x0, rng| stochastic(sampler.as_ref(), x0 * start, rng),
                    to_data,
                    sink,
                )
            }
            ModelKind::Cfm { .. } => run_blocks(
                plan,
                seed,
                d,
                &dev,
                |x0, rng| ode(field.as_ref(), self.draws.replace(x0, rng), 0.0, 1.0),
                to_data,
                sink,
            ),
            ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } => {
                let sde = sde.build()?;
                let prior = sde.prior_std();
                if let Some(sampler) = self.posterior_sampler(guide, &sde, spec)? {
                    run_blocks(
                        plan,
                        seed,
                        d,
                        &dev,
                        |x0, rng| stochastic(sampler.as_ref(), x0 * prior, rng),
                        to_data,
                        sink,
                    )
                } else if spec.sampler == SamplerName::Ode && spec.trajectories {
                    if spec
                        .denoise
                        .is_some_and(|d| d != crate::solve::Denoise::None)
                    {
                        return Err(Error::InvalidInput(
                            "--trajectories records the probability-flow ODE itself; it does not combine with --denoise".into(),
                        ));
                    }
                    // The probability-flow ODE dx/dτ = f − ½g²s from τ = T to ε, every state kept.
                    let pf = ReverseDrift::probability_flow(sde.clone(), field.as_ref());
                    let (t0, t1) = (sde.t_max(), sde.sampling_eps());
                    run_blocks(
                        plan,
                        seed,
                        d,
                        &dev,
                        |x0, _| ode(&pf, x0 * prior, t0, t1),
                        to_data,
                        sink,
                    )
                } else {
                    let sampler = spec.build(sde)?;
                    run_blocks(
                        plan,
                        seed,
                        d,
                        &dev,
                        |x0, rng| stochastic(sampler.as_ref(), x0 * prior, rng),
                        to_data,
                        sink,
                    )
                }
            }
            ModelKind::Classifier { .. } => Err(self.kind.not_generative()),
            ModelKind::NoiseFree { .. } => {
                let ula = Ula {
                    step: spec.step.unwrap_or(crate::solve::choice::ULA_STEP),
                    steps: spec.steps.unwrap_or(crate::solve::choice::SDE_STEPS),
                    tau: self.kind.noise_free_time().unwrap_or(0.0),
                };
                run_blocks(
                    plan,
                    seed,
                    d,
                    &dev,
                    |x0, rng| stochastic(&ula, x0, rng),
                    to_data,
                    sink,
                )
            }
        }
    }

    /// The number of classes K the model can be conditioned on: a conditional network's labels,
    /// an exact mixture's components (its classes are the component ids the data set labels
    /// points with); 0 for an unconditional network.
    pub fn classes(&self) -> usize {
        match &self.source {
            Source::Network(n) => n.classes(),
            Source::Exact(m) => m.weights().len(),
        }
    }

    /// The field of p(x | condition) in model units and model time (see [`guide`]):
    /// * a class k at guidance scale G: u + G·(c − u) of the unconditional (null-label) and the
    ///   class-k network outputs, converted as [`Model::field`] converts; for an exact model the
    ///   fields of the mixture and of its component k;
    /// * an observation with Π-GDM, TMPD or the noisy-likelihood method: the prior field (the
    ///   class-guided one, if a class is given) plus the likelihood term
    ///   ([`crate::inverse::Posterior`]; a flow velocity through the path's score factor).
    ///
    /// DPS and replacement are samplers ([`Model::sample_guided_each`]); for them this is the
    /// prior field. Errors: those of [`Guide::validate`], an observation of another dimension,
    /// or a posterior on a noise-free score model.
    pub fn guided_field(&self, guide: &Guide) -> Result<Box<dyn VectorField + '_>> {
        guide.validate(self.classes())?;
        let prior: Box<dyn VectorField + '_> = match (guide.class, &self.source) {
            (None, _) => self.field()?,
            // An unconditional model under a trained classifier: its one field is the prior.
            (Some(_), Source::Network(net)) if guide.classifier.is_some() && net.classes() == 0 => {
                self.field()?
            }
            (Some(k), Source::Network(net)) => self.kind.field(Box::new(
                ClassifierFree::for_class(net.clone(), k, guide.guidance)?,
            ))?,
            (Some(k), Source::Exact(mix)) => {
                let component =
                    GaussianMixture::from_components(vec![1.0], vec![mix.components()[k].clone()])?;
                Box::new(ClassifierFree::new(
                    exact_field(mix.clone(), &self.kind)?,
                    exact_field(component, &self.kind)?,
                    guide.guidance,
                )?)
            }
        };
        let prior = match (guide.classifier_gamma(), guide.class) {
            (Some(gamma), Some(k)) => {
                self.classifier_guided(prior, guide.classifier.as_deref(), k, gamma)?
            }
            _ => prior,
        };
        let Some(obs) = &guide.observation else {
            return Ok(prior);
        };
        obs.check_dim(self.dim())?;
        let obs = Arc::new(obs.standardized(&self.normalizer.mean, &self.normalizer.std)?);
        if guide.posterior.is_sampler() && !matches!(self.kind, ModelKind::Dsm { .. }) {
            return Err(Error::InvalidInput(format!(
                "--posterior {} samples score models (--method dsm); for this {} use pigdm, tmpd or noisy",
                guide.posterior.name(),
                self.kind
            )));
        }
        let approx = match guide.posterior {
            PosteriorMethod::Pigdm => Approximation::PiGdm {
                data_variance: self.data_variance()?,
            },
            PosteriorMethod::Tmpd => Approximation::Tmpd,
            PosteriorMethod::Noisy => Approximation::Noisy,
            PosteriorMethod::Dps | PosteriorMethod::Replacement => return Ok(prior),
        };
        Ok(match &self.kind {
            ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } => Box::new(Posterior::new(
                prior,
                ScoreParam(sde.build()?),
                obs,
                approx,
            )?),
            ModelKind::Cfm { path, .. } => Box::new(Posterior::new(
                prior,
                VelocityParam::new(GaussianPath::new(*path)),
                obs,
                approx,
            )?),
            ModelKind::NoiseFree { .. } => {
                return Err(Error::InvalidInput(
                    "posterior sampling needs a noise-conditional model (--method cfm or dsm); a noise-free score has no x̂₀".into(),
                ))
            }
            ModelKind::Classifier { .. } => return Err(self.kind.not_generative()),
        })
    }

    /// `field` plus γ·∇ₓ log p(k | x_t, t): of the trained classifier run `classifier`
    /// ([`Model::classifier_term`]), or without one of an exact model's mixture classifier (its
    /// components are the classes); added in score space for score models (an ε network's score
    /// is already s = −ε/σ, [`ModelKind::field`]), through the path's score factor (clamped
    /// near t = 0, [`crate::guidance::flow`]) for flows.
    fn classifier_guided<'a>(
        &'a self,
        field: Box<dyn VectorField + 'a>,
        classifier: Option<&Model>,
        class: usize,
        gamma: f64,
    ) -> Result<Box<dyn VectorField + 'a>> {
        let grad: Box<dyn VectorField + 'a> = match (classifier, &self.source) {
            (Some(c), _) => self.classifier_term(c, class)?,
            (None, Source::Exact(mix)) => {
                let k = mix.weights().len();
                let labelled = |score| LabelledMixture::new(score, (0..k).collect(), k);
                match &self.kind {
                    ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } => {
                        Box::new(ExactClassifier {
                            mix: labelled(MixtureScore::new(mix.clone(), sde.build()?))?,
                            class,
                        })
                    }
                    ModelKind::Cfm { path, .. } => Box::new(ExactClassifier {
                        mix: LabelledMixture::new(
                            MixtureScore::new(mix.clone(), GaussianPath::new(*path)),
                            (0..k).collect(),
                            k,
                        )?,
                        class,
                    }),
                    ModelKind::NoiseFree { .. } => Box::new(ExactClassifier {
                        mix: LabelledMixture::new(
                            MixtureScore::fixed(mix.clone()),
                            (0..k).collect(),
                            k,
                        )?,
                        class,
                    }),
                    ModelKind::Classifier { .. } => return Err(self.kind.not_generative()),
                }
            }
            (None, Source::Network(_)) => {
                return Err(Error::InvalidInput(
                    "--classifier-scale on a trained model needs --classifier RUN (a run of `scoreflow train --method classifier`); the built-in exact classifier is for --exact models".into(),
                ))
            }
        };
        Ok(match &self.kind {
            ModelKind::Dsm { .. } | ModelKind::Edm { .. } | ModelKind::NoiseFree { .. } => {
                Box::new(BayesScore::new(field, grad, gamma)?)
            }
            ModelKind::Cfm { path, .. } => Box::new(GuidedVelocity::new(
                field,
                grad,
                GaussianPath::new(*path),
                gamma,
            )?),
            ModelKind::Classifier { .. } => return Err(self.kind.not_generative()),
        })
    }

    /// The number of classes K of a classifier run (its logits); 0 for other models.
    pub fn classifier_classes(&self) -> usize {
        match (&self.kind, &self.meta) {
            (ModelKind::Classifier { .. }, Some(meta)) => {
                meta.model.as_mlp().map_or(0, |c| c.out_dim())
            }
            _ => 0,
        }
    }

    /// ∇ₓ log p(k | x_t, t) of the classifier run `c` as a field of this model's units and time
    /// ([`ClassifierGradient`]: one forward and one backward pass). The two must share
    /// * the data units (equal normalisers; a built-in set's name where both have one): the
    ///   noised variable z_t = m z + s ε of one normalisation is not a function of the other's
    ///   when the scales differ, so this is an error, not a conversion;
    /// * the process: the same path or SDE (then the classifier's time is the model's), or a
    ///   classifier on an SDE, which guides a model on any other Gaussian process exactly
    ///   through the matching noise level ([`NoiseLevelMatched`]: same λ = ln m/s, x scaled by
    ///   m_B/m_A), e.g. a VP classifier guiding a straight-path flow or an EDM model. A
    ///   classifier on a flow path guides only flows on that path.
    ///
    /// A flow must have the Gaussian path's marginals (N(0, I) source, independent coupling,
    /// no path noise), which the classifier was trained on.
    pub fn classifier_term(&self, c: &Model, class: usize) -> Result<Box<dyn VectorField>> {
        let name = |m: &Model| {
            m.dir
                .as_ref()
                .map_or("the classifier".to_string(), |d| d.display().to_string())
        };
        let ModelKind::Classifier {
            process,
            noise_input,
        } = &c.kind
        else {
            return Err(Error::InvalidInput(format!(
                "--classifier {}: a {}, not a classifier (train one with `scoreflow train --method classifier`)",
                name(c),
                c.kind
            )));
        };
        let Some(net) = c.network() else {
            return Err(Error::InvalidInput("a classifier needs a network".into()));
        };
        if c.dim() != self.dim() {
            return Err(Error::Shape(format!(
                "the classifier {} is {}-D, the model {}-D",
                name(c),
                c.dim(),
                self.dim()
            )));
        }
        if let (Some(a), Some(b)) = (self.dataset(), c.dataset()) {
            if a != b {
                return Err(Error::InvalidInput(format!(
                    "the model was trained on {a} but the classifier {} on {b}",
                    name(c)
                )));
            }
        }
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())))
        };
        let (mn, cn) = (&self.normalizer, &c.normalizer);
        if !(close(&mn.mean, &cn.mean) && close(&mn.std, &cn.std)) {
            return Err(Error::InvalidInput(format!(
                "the classifier {} works in other data units than the model (normaliser mean {:?}, std {:?} vs the model's mean {:?}, std {:?}); train both on the same data with the same --normalize",
                name(c),
                cn.mean,
                cn.std,
                mn.mean,
                mn.std
            )));
        }
        let Some(mine) = self.kind.process() else {
            return Err(Error::InvalidInput(format!(
                "a {} has no noise levels for a time-dependent classifier to follow; guide a cfm, dsm or edm model",
                self.kind
            )));
        };
        if let ModelKind::Cfm { source, .. } = &self.kind {
            let s = &self.settings;
            if !source.is_gaussian()
                || s.coupling != crate::coupling::CouplingKind::Independent
                || s.cfm_sigma != 0.0
            {
                return Err(Error::InvalidInput(
                    "classifier guidance needs a flow whose marginals are the Gaussian path's (source gaussian, independent coupling, no --cfm-sigma), as the classifier was trained on".into(),
                ));
            }
        }
        let grad = ClassifierGradient::new(net.clone(), class, process.kernel()?, *noise_input)?;
        if &mine == process {
            return Ok(Box::new(grad));
        }
        match process {
            Process::Sde(sde) => Ok(Box::new(NoiseLevelMatched {
                grad,
                model: mine.kernel()?,
                classifier: sde.build()?,
            })),
            Process::Path(_) => Err(Error::InvalidInput(format!(
                "the classifier {} was trained on {process} but the model runs on {mine}; train the classifier with the model's --path or --sde (a classifier on an SDE also guides models on other processes through the matching noise level)",
                name(c)
            ))),
        }
    }

    /// DPS or replacement for a score model under `sde` (model units), or `None` when the
    /// guide's posterior is a field.
    fn posterior_sampler(
        &self,
        guide: &Guide,
        sde: &Arc<dyn crate::sde::Sde>,
        spec: &SamplerSpec,
    ) -> Result<Option<Box<dyn Sampler>>> {
        let Some(obs) = &guide.observation else {
            return Ok(None);
        };
        if !guide.posterior.is_sampler() {
            return Ok(None);
        }
        obs.check_dim(self.dim())?;
        let obs = Arc::new(obs.standardized(&self.normalizer.mean, &self.normalizer.std)?);
        let steps = spec.steps.unwrap_or(crate::solve::choice::SDE_STEPS);
        Ok(Some(match guide.posterior {
            PosteriorMethod::Dps => Box::new(Dps::new(sde.clone(), obs, steps, guide.zeta)),
            _ => Box::new(Replacement::new(sde.clone(), obs, steps)?),
        }))
    }

    /// The per-coordinate variance v of the data in model units (Π-GDM's r_t² = v s²/(m² v + s²)):
    /// the exact mixture's mean diagonal covariance, or that of 2,000 held-out points.
    fn data_variance(&self) -> Result<f64> {
        let d = self.dim();
        let var = match &self.source {
            Source::Exact(m) => {
                let c = m.covariance();
                (0..d).map(|i| c[i * d + i]).sum::<f64>() / d as f64
            }
            Source::Network(_) => {
                let z = self.normalizer.apply(&self.held_out(2000, 0)?)?;
                let n = z.len() as f64;
                let mut total = 0.0;
                for i in 0..d {
                    let col: Vec<f64> = z.rows().map(|r| r[i]).collect();
                    let mean = col.iter().sum::<f64>() / n;
                    total += col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                }
                total / d as f64
            }
        };
        Ok(var)
    }

    /// [`Model::sample_each`] collected: all points of the plan (data units) in order, the job
    /// statistics and, per block, (index of its first point, trajectory).
    pub fn sample(&self, plan: &Plan, seed: u64, spec: &SamplerSpec) -> Result<Samples> {
        self.collect(plan.points().len(), |sink| {
            self.sample_each(plan, seed, spec, sink)
        })
    }

    /// The blocks a `run` of `n` points passes to its sink, gathered into [`Samples`].
    fn collect(
        &self,
        n: usize,
        run: impl FnOnce(&mut dyn FnMut(Block) -> Result<()>) -> Result<JobStats>,
    ) -> Result<Samples> {
        let mut data = Vec::with_capacity(n * self.dim());
        let mut trajectories = Vec::new();
        let stats = run(&mut |b: Block| {
            data.extend_from_slice(b.points.as_slice());
            if !b.trajectory.is_empty() {
                trajectories.push((b.start, b.trajectory));
            }
            Ok(())
        })?;
        Ok(Samples {
            points: Points::new(data, self.dim())?,
            stats,
            trajectories,
        })
    }

    /// Carries given source points `x0` (the source's data units; model units for N(0, I)) along
    /// a flow's ODE from t = 0 to 1 with `spec` (an ODE solver), in blocks of [`BLOCK`] points
    /// handed to `sink` in order (data units of the target, trajectories when asked). Only
    /// flow-matching models transport given points; others are a one-line error.
    pub fn transport_each(
        &self,
        x0: &Points,
        spec: &SamplerSpec,
        mut sink: impl FnMut(Block) -> Result<()>,
    ) -> Result<JobStats> {
        spec.validate()?;
        self.check_sampler(spec.sampler)?;
        if spec.sampler.is_few_step() {
            return Err(Error::InvalidInput(format!(
                "--from carries given points along the flow ODE from t = 0 with an ODE solver (euler, midpoint, heun, rk4, dopri5); --sampler {} starts from N(0, I) noise",
                spec.sampler.name()
            )));
        }
        let ModelKind::Cfm { source, .. } = &self.kind else {
            return Err(Error::InvalidInput(format!(
                "only a flow carries given points to the data; this run is a {}",
                self.kind
            )));
        };
        if x0.dim() != self.dim() {
            return Err(Error::Shape(format!(
                "the start points are {}-D, the model is {}-D",
                x0.dim(),
                self.dim()
            )));
        }
        let z0 = source.normalizer(self.dim()).apply(x0)?;
        let field = self.field()?;
        let opts = spec.ode_options().expect("an ODE spec");
        let plan = Plan::new(x0.len(), None);
        let mut stats = JobStats::default();
        let to_data = |x: &Tensor<2>| self.normalizer.invert(&Points::from_tensor(x));
        for b in plan.blocks.clone() {
            let r = plan.block_range(b);
            let start = z0
                .slice(r.start, r.end)
                .to_tensor(&tensor::cpu(), DType::F32);
            let sol = odeint(field.as_ref(), start, 0.0, 1.0, &opts)?;
            let points = to_data(&sol.x)?;
            if points.as_slice().iter().any(|v| !v.is_finite()) {
                return Err(Error::Solver(format!(
                    "the flow produced non-finite values (NaN or inf) in block {b}; try more --steps"
                )));
            }
            let trajectory = sol
                .trajectory
                .iter()
                .map(|(t, x)| Ok((*t, to_data(x)?)))
                .collect::<Result<Vec<_>>>()?;
            stats.points += r.len();
            stats.blocks += 1;
            stats.nfe_total += sol.nfe;
            sink(Block {
                index: b,
                start: r.start,
                points,
                nfe: sol.nfe,
                trajectory,
            })?;
        }
        Ok(stats)
    }

    /// [`Model::transport_each`] collected, as [`Model::sample`].
    pub fn transport(&self, x0: &Points, spec: &SamplerSpec) -> Result<Samples> {
        self.collect(x0.len(), |sink| self.transport_each(x0, spec, sink))
    }

    /// log p(x) of points `x` in data units by the instantaneous change of variables along the
    /// flow ODE (flow matching: t = 1 → 0 to the source, N(0, I) or one with a density — an
    /// error otherwise, [`FlowSource::log_density`]) or the probability-flow ODE (DSM: τ = ε →
    /// T to the SDE's prior). The model works in normalised units z = (x − μ)/σ, so
    /// log p_x(x) = log p_z(z) − Σᵢ log σᵢ.
    ///
    /// For an image model, `x` are integer levels; each is dequantised first,
    /// z = 2(x + u)/L − 1 with u ~ U\[0, 1)^d from `rng` (before the probes), so log p is the
    /// density at x + u − ½ in data units (cells of width 1), a lower bound on the discrete
    /// log-likelihood in expectation, and [`Likelihood::bpd`] = −E log p / (d ln 2) is filled in
    /// ([`Dequantization::bits_per_dim`]: bits per dimension over the data's L levels).
    pub fn log_likelihood(
        &self,
        x: &Points,
        opts: &LikelihoodOptions,
        rng: &mut Rng,
    ) -> Result<Likelihood> {
        let dq = self.image.map(image_dequantization);
        let z = match &dq {
            Some(dq) => dq.dequantize_points(x, rng)?,
            None => self.normalizer.apply(x)?,
        }
        .to_tensor(&self.device, DType::F32);
        let field = self.field()?;
        let mut lik = match &self.kind {
            ModelKind::Cfm { source, .. } => log_likelihood(
                field.as_ref(),
                &source.log_density()?,
                &z,
                1.0,
                0.0,
                opts,
                rng,
            )?,
            ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } => {
                let sde = sde.build()?;
                let pf = ReverseDrift::probability_flow(sde.clone(), field.as_ref());
                let prior = |x: &Tensor<2>| sde.prior_log_density(x);
                log_likelihood(&pf, &prior, &z, sde.sampling_eps(), sde.t_max(), opts, rng)?
            }
            ModelKind::NoiseFree { .. } => {
                return Err(Error::InvalidInput(format!(
                    "a noise-free score model ({}) defines no flow to integrate, so it has no ODE likelihood; train with --method cfm or dsm",
                    self.kind.method().name()
                )))
            }
            ModelKind::Classifier { .. } => return Err(self.kind.not_generative()),
        };
        if let Some(dq) = &dq {
            lik.bpd = Some(dq.bits_per_dim(lik.mean_log_prob, lik.dim));
        }
        let c = self.normalizer.log_det();
        for v in &mut lik.log_prob {
            *v -= c;
        }
        lik.mean_log_prob -= c;
        lik.nll += c;
        Ok(lik)
    }
}

/// The closed-form field of `kind` for data distributed as `mixture` (model units, model time):
/// the perturbed score under the SDE, the path's marginal velocity, or the score itself.
fn exact_field(mixture: GaussianMixture, kind: &ModelKind) -> Result<Box<dyn VectorField>> {
    Ok(match kind {
        ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } => {
            Box::new(MixtureScore::new(mixture, sde.build()?))
        }
        ModelKind::NoiseFree { .. } => Box::new(MixtureScore::fixed(mixture)),
        ModelKind::Cfm { path, .. } => {
            Box::new(MixtureVelocity::new(mixture, GaussianPath::new(*path)))
        }
        ModelKind::Classifier { .. } => return Err(kind.not_generative()),
    })
}

/// ∇ₓ log p(class | x_t, t) of a labelled mixture, owning the mixture (the field
/// [`LabelledMixture::class_gradient`] borrows it).
struct ExactClassifier<K> {
    mix: LabelledMixture<K>,
    class: usize,
}

impl<K: crate::path::PerturbationKernel + Clone + Sync> VectorField for ExactClassifier<K> {
    fn dim(&self) -> usize {
        self.mix.score.mixture.dim()
    }

    /// ∇ₓ log p(class | x_t = x, t).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        self.mix
            .class_gradient(self.class)
            .expect("the class was validated against the mixture")
            .eval(x, t)
    }
}

/// The points of a sampling job, collected.
#[derive(Debug, Clone)]
pub struct Samples {
    /// Samples in global-index order (the plan's [`Plan::points`]), data units.
    pub points: Points,
    /// What the job cost.
    pub stats: JobStats,
    /// Per block: the global index of its first point and its trajectory (data units).
    pub trajectories: Vec<(usize, Vec<(f64, Points)>)>,
}

/// The ODE method names, for help texts and errors.
pub fn ode_methods() -> String {
    Method::ALL
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}
