//! [`TrainSettings`]: the complete, resolved recipe of a training run — data, method, path or
//! SDE, network, optimiser and schedule — as written to a run's `config.toml` (keys in
//! kebab-case, the names of `scoreflow train`'s flags), and what follows from it: the data source
//! and its normaliser, the network architecture, the [`ModelKind`], the [`TrainConfig`].
//!
//! [`TrainSettings::default`] is the one source of every default.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::kind::{ModelKind, Process, ProcessKind, TrainMethod};
use super::source::FlowSource;
use crate::coupling::{Coupling, CouplingKind};
use crate::data::{
    self, DataSource, Dataset, ImageFormat, Images, NormalizeMode, Normalizer, Points,
};
use crate::error::{Error, Result};
use crate::field::convert::{NoiseInput, Prediction};
use crate::field::mlp::{Activation, MlpConfig, TimeEmbeddingKind};
use crate::field::unet::UnetConfig;
use crate::objective::cfm::{FlowMatching, TimeSampler};
use crate::objective::dsm::{DsmConfig, NoiseLevels, Weighting};
use crate::objective::edm::EdmConfig;
use crate::objective::sm::ScoreMatching;
use crate::objective::Objective;
use crate::path::{GaussianPath, PathKind, Scheduler};
use crate::sde::{BetaSchedule, EdmSde, SdeConfig, SdeKind, VeSde};
use crate::tensor;
use crate::train::{
    EmaConfig, EngineKind, OptimizerConfig, OptimizerKind, ScheduleKind, TrainConfig,
};

/// Runs written before `source` existed started from N(0, I).
fn gaussian_source() -> String {
    super::source::GAUSSIAN.into()
}

/// Runs written before `noise-input` existed fed the network τ.
fn time_input() -> NoiseInput {
    NoiseInput::Time
}

fn label_dropout() -> f64 {
    crate::objective::DEFAULT_LABEL_DROPOUT
}

/// The network of a run: `auto` is the U-Net for image data and the MLP otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ArchKind {
    /// The U-Net for images, the MLP for points.
    #[default]
    Auto,
    /// The MLP [x, φ(t)] → width^depth → d.
    Mlp,
    /// The image U-Net (image data only).
    Unet,
}

impl ArchKind {
    /// "auto", "mlp" or "unet".
    pub fn name(self) -> &'static str {
        match self {
            ArchKind::Auto => "auto",
            ArchKind::Mlp => "mlp",
            ArchKind::Unet => "unet",
        }
    }
}

fn default_base() -> usize {
    32
}

fn default_res_blocks() -> usize {
    1
}

fn default_attention() -> bool {
    true
}

/// Every training setting of a run (see the module documentation). Fields are documented by
/// the help texts of the CLI flags of the same names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainSettings {
    /// A built-in data set name or a .csv/.npy file.
    pub data: String,
    /// Objective.
    pub method: TrainMethod,
    /// Probability path of flow matching (runs written before it existed used the straight one).
    #[serde(default)]
    pub path: PathKind,
    /// Forward SDE of DSM.
    pub sde: SdeKind,
    /// Network target of DSM.
    pub target: Prediction,
    /// DSM loss weighting λ(τ).
    pub weighting: Weighting,
    /// DSM noise levels: 0 = continuous τ ~ U(ε, T); L ≥ 2 = NCSN's ladder of L levels.
    pub noise_levels: usize,
    /// DSM network time input (runs written before it existed fed τ).
    #[serde(default = "time_input")]
    pub noise_input: NoiseInput,
    /// VP/sub-VP β_min.
    pub beta_min: f64,
    /// VP/sub-VP β_max.
    pub beta_max: f64,
    /// VE σ_min.
    pub sigma_min: f64,
    /// VE σ_max; `None` = from the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma_max: Option<f64>,
    /// Hidden width of the MLP.
    pub width: usize,
    /// Hidden layers of the MLP.
    pub depth: usize,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Time input of the network.
    pub time_embedding: TimeEmbeddingKind,
    /// Optimiser steps.
    pub steps: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: ScheduleKind,
    /// Warm-up length as a fraction of the steps.
    pub warmup: f64,
    /// EMA decay of the sampling weights; 0 disables EMA.
    pub ema: f64,
    /// Global gradient-norm clip; 0 disables clipping.
    pub clip: f64,
    /// Random seed (initial weights, batches, noise).
    pub seed: u64,
    /// Checkpoint every N steps (and at the end).
    pub checkpoint_every: usize,
    /// Fraction of a file data set held out for evaluation.
    pub holdout: f64,
    /// Standardise each data dimension.
    pub normalize: NormalizeMode,
    /// Training engine.
    pub engine: EngineKind,
    /// Source p₀ of a flow: `gaussian` (N(0, I)), a built-in set or a .csv/.npy file.
    #[serde(default = "gaussian_source")]
    pub source: String,
    /// How flow matching pairs source and target minibatches.
    #[serde(default)]
    pub coupling: CouplingKind,
    /// ε of the sinkhorn coupling; `None` = [`crate::coupling::DEFAULT_EPSILON`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinkhorn_epsilon: Option<f64>,
    /// σ of the sb coupling; `None` = [`crate::coupling::DEFAULT_SB_SIGMA`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sb_sigma: Option<f64>,
    /// Constant path noise σ of flow matching (TorchCFM's σ_min).
    #[serde(default)]
    pub cfm_sigma: f64,
    /// Train flow matching on the Euler grid {k/N}: N ≥ 1 steps; 0 = t ~ U[0, 1).
    #[serde(default)]
    pub time_grid: usize,
    /// EDM σ_data; `None` = the data's per-coordinate standard deviation √(tr Σ / d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma_data: Option<f64>,
    /// EDM P_mean (mean of ln σ in training); `None` = −1.2 + ln(σ_data/0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_mean: Option<f64>,
    /// EDM P_std (standard deviation of ln σ in training); `None` = 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_std: Option<f64>,
    /// Train a class-conditional network on the data's labels (runs written before it existed
    /// are unconditional).
    #[serde(default)]
    pub conditional: bool,
    /// The CSV column of class labels, for --conditional on a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// Label dropout p of conditional training (classifier-free guidance's null label).
    #[serde(default = "label_dropout")]
    pub label_dropout: f64,
    /// The noising process of a classifier (`--method classifier`): `sde` (--sde) or `path`
    /// (--path).
    #[serde(default)]
    pub process: ProcessKind,
    /// Network (runs written before it existed were MLPs on points: `auto` reads as that).
    #[serde(default)]
    pub arch: ArchKind,
    /// U-Net base channels.
    #[serde(default = "default_base")]
    pub base: usize,
    /// U-Net channel multiplier per resolution level; `None` = by image size
    /// ([`UnetConfig::default_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mults: Option<Vec<usize>>,
    /// U-Net residual blocks per level.
    #[serde(default = "default_res_blocks")]
    pub res_blocks: usize,
    /// U-Net self-attention at the lowest resolution.
    #[serde(default = "default_attention")]
    pub attention: bool,
}

impl Default for TrainSettings {
    /// The default recipe: conditional flow matching on the straight path with a 3→128×4→2 SiLU
    /// MLP, 5,000 Adam steps of batch 256, one-cycle learning rate peaking at 2e-3 with 5 %
    /// warm-up, EMA 0.999, on 8gaussians; DSM: VP (β 0.1 → 20), ε target, σ² weighting,
    /// ¼ ln σ noise input.
    fn default() -> Self {
        Self {
            data: "8gaussians".into(),
            method: TrainMethod::Cfm,
            path: PathKind::Condot,
            sde: SdeKind::Vp,
            target: Prediction::Epsilon,
            weighting: Weighting::Sigma2,
            noise_levels: 0,
            noise_input: NoiseInput::LogSigma,
            beta_min: 0.1,
            beta_max: 20.0,
            sigma_min: 0.01,
            sigma_max: None,
            width: 128,
            depth: 4,
            activation: Activation::Silu,
            time_embedding: TimeEmbeddingKind::Raw,
            steps: 5000,
            batch: 256,
            optimizer: OptimizerKind::Adam,
            lr: 2e-3,
            weight_decay: 0.0,
            schedule: ScheduleKind::Onecycle,
            warmup: 0.05,
            ema: 0.999,
            clip: 0.0,
            seed: 0,
            checkpoint_every: 500,
            holdout: 0.1,
            normalize: NormalizeMode::Auto,
            engine: EngineKind::Auto,
            source: gaussian_source(),
            coupling: CouplingKind::Independent,
            sinkhorn_epsilon: None,
            sb_sigma: None,
            cfm_sigma: 0.0,
            time_grid: 0,
            sigma_data: None,
            p_mean: None,
            p_std: None,
            conditional: false,
            label_column: None,
            label_dropout: label_dropout(),
            process: ProcessKind::Sde,
            arch: ArchKind::Auto,
            base: default_base(),
            mults: None,
            res_blocks: default_res_blocks(),
            attention: default_attention(),
        }
    }
}

/// Parses TOML text into `T`; the error is one line: `line N: key `k`: message`.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    toml::from_str::<T>(text).map_err(|e| {
        let msg = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or("");
                let key = line
                    .split('=')
                    .next()
                    .map(str::trim)
                    .filter(|k| !k.is_empty() && line.contains('='));
                match key {
                    Some(k) if !msg.contains(&format!("`{k}`")) => {
                        format!("line {line_no}: key `{k}`: {msg}")
                    }
                    _ => format!("line {line_no}: {msg}"),
                }
            }
            None => msg,
        }
    })
}

fn invalid(msg: String) -> Error {
    Error::InvalidInput(msg)
}

/// An input error with the flag that caused it in front.
fn prefixed(flag: &str, e: Error) -> Error {
    match e {
        Error::InvalidInput(m) => invalid(format!("{flag}: {m}")),
        e => e,
    }
}

impl TrainSettings {
    /// The defaults for training on `data`: [`TrainSettings::default`], except for image data
    /// ([`Images::is_source`]), sized to the 15-minute budget of the 8 × 8 digits on 2 CPU cores
    /// (one U-Net step at batch 128 ≈ 0.5 CPU-s, BENCHMARKS.md): 2,000 steps of batch 128, peak
    /// learning rate 1e-3, gradient clip 1 — the recipe of `examples/unet_digits.rs`.
    pub fn defaults_for(data: &str) -> TrainSettings {
        let d = TrainSettings {
            data: data.to_string(),
            ..TrainSettings::default()
        };
        if d.dataset().is_none() && Images::is_source(data) {
            TrainSettings {
                steps: 2000,
                batch: 128,
                lr: 1e-3,
                clip: 1.0,
                ..d
            }
        } else {
            d
        }
    }

    /// Range checks with one clear message per problem (flag names as on the command line).
    pub fn validate(&self) -> Result<()> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        if self.steps == 0 {
            return Err(invalid("--steps must be at least 1".into()));
        }
        if self.batch == 0 {
            return Err(invalid("--batch must be at least 1".into()));
        }
        if self.width == 0 || self.depth == 0 {
            return Err(invalid(format!(
                "--width and --depth must be at least 1 (got {} and {})",
                self.width, self.depth
            )));
        }
        if !pos(self.lr) {
            return Err(invalid(format!(
                "--lr must be a positive number (got {})",
                self.lr
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid(format!(
                "--weight-decay must be >= 0 (got {})",
                self.weight_decay
            )));
        }
        if !(0.0..1.0).contains(&self.warmup) {
            return Err(invalid(format!(
                "--warmup is a fraction of the steps in [0, 1) (got {})",
                self.warmup
            )));
        }
        if !(0.0..1.0).contains(&self.ema) {
            return Err(invalid(format!(
                "--ema is a decay in [0, 1), 0 = off (got {})",
                self.ema
            )));
        }
        if !(self.clip.is_finite() && self.clip >= 0.0) {
            return Err(invalid(format!(
                "--clip must be >= 0, 0 = off (got {})",
                self.clip
            )));
        }
        if self.checkpoint_every == 0 {
            return Err(invalid("--checkpoint-every must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.holdout) {
            return Err(invalid(format!(
                "--holdout is a fraction in [0, 1) (got {})",
                self.holdout
            )));
        }
        if !(pos(self.beta_min) && pos(self.beta_max) && self.beta_min < self.beta_max) {
            return Err(invalid(format!(
                "need 0 < --beta-min < --beta-max (got {}, {})",
                self.beta_min, self.beta_max
            )));
        }
        if !pos(self.sigma_min) {
            return Err(invalid(format!(
                "--sigma-min must be positive (got {})",
                self.sigma_min
            )));
        }
        if let Some(m) = self.sigma_max {
            if !(pos(m) && m > self.sigma_min) {
                return Err(invalid(format!(
                    "need --sigma-max > --sigma-min (got {m}, {})",
                    self.sigma_min
                )));
            }
        }
        if self.schedule == ScheduleKind::Onecycle && self.warmup == 0.0 {
            return Err(invalid(
                "--schedule onecycle needs a rising phase: --warmup > 0 (e.g. 0.05)".into(),
            ));
        }
        if self.noise_levels == 1 {
            return Err(invalid(
                "--noise-levels is 0 (continuous) or at least 2 (got 1)".into(),
            ));
        }
        if self.data.trim().is_empty() {
            return Err(invalid("--data is empty".into()));
        }
        if self.source.trim().is_empty() {
            return Err(invalid("--source is empty".into()));
        }
        if self.method != TrainMethod::Cfm {
            let flow_only = [
                (!self.has_gaussian_source(), "--source"),
                (self.coupling != CouplingKind::Independent, "--coupling"),
                (self.cfm_sigma != 0.0, "--cfm-sigma"),
                (self.time_grid != 0, "--time-grid"),
            ];
            if let Some((_, flag)) = flow_only.iter().find(|(set, _)| *set) {
                return Err(invalid(format!(
                    "{flag} is for flow matching (--method cfm), not --method {}",
                    self.method.name()
                )));
            }
        }
        self.flow_matching(PathKind::Condot)?;
        let edm_keys = [
            ("--sigma-data", self.sigma_data),
            ("--p-mean", self.p_mean),
            ("--p-std", self.p_std),
        ];
        for (flag, v) in edm_keys {
            match v {
                Some(_) if self.method != TrainMethod::Edm => {
                    return Err(invalid(format!(
                        "{flag} is a setting of --method edm, not of --method {}",
                        self.method.name()
                    )))
                }
                Some(x) if flag != "--p-mean" && !pos(x) => {
                    return Err(invalid(format!("{flag} must be positive (got {x})")))
                }
                Some(x) if !x.is_finite() => {
                    return Err(invalid(format!("{flag} must be finite (got {x})")))
                }
                _ => {}
            }
        }
        if !(0.0..=1.0).contains(&self.label_dropout) {
            return Err(invalid(format!(
                "--label-dropout is a probability in [0, 1] (got {})",
                self.label_dropout
            )));
        }
        if self.conditional && !self.method.is_regression() {
            return Err(invalid(format!(
                "--conditional trains cfm and dsm models, not --method {}",
                self.method.name()
            )));
        }
        if self.label_column.is_some() && !self.labelled() {
            return Err(invalid(
                "--label-column names the labels of --conditional training (or of --method classifier); add --conditional"
                    .into(),
            ));
        }
        if self.process != ProcessKind::Sde && self.method != TrainMethod::Classifier {
            return Err(invalid(format!(
                "--process chooses a classifier's noising process (--method classifier), not one of --method {}",
                self.method.name()
            )));
        }
        if self.method == TrainMethod::Classifier
            && self.process == ProcessKind::Sde
            && self.sde == SdeKind::Edm
        {
            return Err(invalid(
                "--method classifier trains under --sde vp, vp-cosine, subvp or ve (or --process path); it guides EDM models through the matching noise level".into(),
            ));
        }
        if self.base == 0 || !self.base.is_multiple_of(2) {
            return Err(invalid(format!(
                "--base (U-Net channels) must be even and positive (got {})",
                self.base
            )));
        }
        if let Some(m) = &self.mults {
            if m.is_empty() || m.contains(&0) {
                return Err(invalid(format!(
                    "--mults is a comma-separated list of positive multipliers (got {m:?})"
                )));
            }
        }
        if self.res_blocks == 0 {
            return Err(invalid("--res-blocks must be at least 1".into()));
        }
        self.check_applicable(|_| false)?;
        if self.arch == ArchKind::Unet && self.engine == EngineKind::Fused {
            return Err(invalid(
                "--engine fused trains MLPs only; the U-Net trains on --engine burn (or auto)"
                    .into(),
            ));
        }
        if self.engine == EngineKind::Fused && !self.method.is_regression() {
            return Err(invalid(format!(
                "--engine fused trains regression objectives only (cfm, dsm); use --engine burn or auto for --method {}",
                self.method.name()
            )));
        }
        Ok(())
    }

    /// Refuses, with the flag's name, a setting that does not apply to this run's data and
    /// network — never silently ignored: for image data `normalize` (images are always scaled
    /// from their L levels, z = 2(x + u)/L − 1) and `label-column` (image labels come with the
    /// images); for the U-Net the MLP's `width`, `depth`, `activation` and `time-embedding`;
    /// for the MLP (points, or `--arch mlp`) the U-Net's `base`, `mults`, `res-blocks` and
    /// `attention`. A setting counts as set when it differs from [`TrainSettings::default`] or
    /// when `given(key)` says it was given explicitly (keys as the flags, without `--`).
    pub fn check_applicable(&self, given: impl Fn(&str) -> bool) -> Result<()> {
        let d = TrainSettings::default();
        let images = self.dataset().is_none() && Images::is_source(&self.data);
        let unet = images && self.arch != ArchKind::Mlp;
        let set = |key: &str, differs: bool| differs || given(key);
        if images {
            if set("normalize", self.normalize != d.normalize) {
                return Err(invalid(format!(
                    "--normalize does not apply to image data: {} is always scaled from its levels to [-1, 1) (z = 2(x + u)/L - 1); leave --normalize at auto",
                    self.data
                )));
            }
            if set("label-column", self.label_column.is_some()) {
                return Err(invalid(format!(
                    "--label-column names a CSV column; the labels of the images {} come with them",
                    self.data
                )));
            }
        }
        let mlp_keys = [
            ("width", self.width != d.width),
            ("depth", self.depth != d.depth),
            ("activation", self.activation != d.activation),
            ("time-embedding", self.time_embedding != d.time_embedding),
        ];
        let unet_keys = [
            ("base", self.base != d.base),
            ("mults", self.mults.is_some()),
            ("res-blocks", self.res_blocks != d.res_blocks),
            ("attention", self.attention != d.attention),
        ];
        if unet {
            if let Some((key, _)) = mlp_keys.iter().find(|(k, differs)| set(k, *differs)) {
                return Err(invalid(format!(
                    "--{key} is a setting of the MLP; the U-Net of image data is sized by --base, --mults, --res-blocks and --attention (or train an MLP with --arch mlp)"
                )));
            }
        } else if let Some((key, _)) = unet_keys.iter().find(|(k, differs)| set(k, *differs)) {
            return Err(invalid(format!(
                "--{key} is a U-Net setting, but this run's network is the MLP ({}); the U-Net trains on image data (--data digits, an IDX file or a folder of PNGs)",
                if images { "--arch mlp" } else { "point data" }
            )));
        }
        Ok(())
    }

    /// True when training needs the data's class labels: a conditional network, or a
    /// classifier.
    pub fn labelled(&self) -> bool {
        self.conditional || self.method == TrainMethod::Classifier
    }

    /// The `config.toml` text: every setting, with a header comment.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string(self)
            .map_err(|e| invalid(format!("cannot serialise the settings: {e}")))?;
        Ok(format!(
            "# scoreflow training settings (keys = `scoreflow train` flags)\n{body}"
        ))
    }

    /// Parses and validates `config.toml` text (`source` names it in errors). Keys missing from
    /// runs written before they existed take the value those runs used (`noise-input = time`,
    /// `path = condot`), not today's default.
    pub fn from_toml(text: &str, source: &Path) -> Result<TrainSettings> {
        let s: TrainSettings = parse_toml(text).map_err(|e| Error::Data {
            path: source.display().to_string(),
            location: String::new(),
            msg: e,
        })?;
        s.validate().map_err(|e| Error::Data {
            path: source.display().to_string(),
            location: String::new(),
            msg: e.to_string(),
        })?;
        Ok(s)
    }

    /// Reads a run's `config.toml`.
    pub fn from_file(path: &Path) -> Result<TrainSettings> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, path)
    }

    /// True when the flow starts from N(0, I) (`--source gaussian`, the default).
    pub fn has_gaussian_source(&self) -> bool {
        self.source
            .trim()
            .eq_ignore_ascii_case(super::source::GAUSSIAN)
    }

    /// The coupling of `coupling` with its ε or σ (validated; a parameter of another coupling
    /// is an error).
    pub fn coupling(&self) -> Result<Coupling> {
        self.coupling.with(
            self.sinkhorn_epsilon,
            self.sb_sigma,
            "--sinkhorn-epsilon",
            "--sb-sigma",
        )
    }

    /// The flow-matching objective on `path` with the run's coupling, path noise and times.
    pub fn flow_matching<S: Scheduler>(&self, path: S) -> Result<FlowMatching<S>> {
        let time = match self.time_grid {
            0 => TimeSampler::Uniform,
            n => TimeSampler::euler_grid(n)?,
        };
        FlowMatching::new(GaussianPath::new(path))
            .with_coupling(self.coupling()?)?
            .with_sigma(self.cfm_sigma)
            .map_err(|e| prefixed("--cfm-sigma", e))?
            .with_time(time)
    }

    /// The training objective of `kind` (a model of these settings): for flow matching, on the
    /// kind's path with the run's coupling, path noise and times; otherwise the kind's own.
    pub fn objective(&self, kind: &ModelKind) -> Result<Box<dyn Objective>> {
        match kind {
            ModelKind::Cfm { path, .. } => {
                let fm = self.flow_matching(*path)?;
                Ok(if self.conditional {
                    Box::new(fm.with_label_dropout(self.label_dropout)?)
                } else {
                    Box::new(fm)
                })
            }
            _ if self.conditional => kind.conditional_objective(self.label_dropout),
            _ => kind.objective(),
        }
    }

    /// The source of a flow and its normaliser (the `normalize` rule applied to the source:
    /// `auto` standardises files, not built-in sets); `None` for N(0, I). `dim` is the data's
    /// dimension, which the source must share.
    pub fn source_data(&self, dim: usize) -> Result<Option<(DataSource, Normalizer)>> {
        if self.has_gaussian_source() {
            return Ok(None);
        }
        let source = match self.source.parse::<Dataset>() {
            Ok(ds) => DataSource::generator(ds),
            Err(_) => {
                let p = Path::new(&self.source);
                if p.extension().is_none() && !p.exists() {
                    let names: Vec<&str> = Dataset::ALL.iter().map(|d| d.name()).collect();
                    return Err(invalid(format!(
                        "unknown --source '{}'; choose gaussian, a built-in set ({}) or a .csv/.npy file",
                        self.source,
                        names.join(", ")
                    )));
                }
                let pts = load_points_or_explain(&self.source, None)
                    .map_err(|e| prefixed("--source", e))?;
                let name = Path::new(&self.source)
                    .file_name()
                    .map_or(self.source.clone(), |f| f.to_string_lossy().into_owned());
                DataSource::finite(name, pts, None)?
            }
        };
        if source.dim() != dim {
            return Err(invalid(format!(
                "--source {} is {}-D but the data are {dim}-D",
                self.source,
                source.dim()
            )));
        }
        let norm = self.normalizer_for(&source)?;
        Ok(Some((source, norm)))
    }

    /// The normaliser of a data source under `normalize`: fitted on 100,000 draws of a fixed
    /// stream for built-in sets, on the training points for files; the identity when off.
    fn normalizer_for(&self, source: &DataSource) -> Result<Normalizer> {
        let standardise = match self.normalize {
            NormalizeMode::Yes => true,
            NormalizeMode::No => false,
            NormalizeMode::Auto => source.dataset().is_none(),
        };
        if !standardise {
            return Ok(Normalizer::identity(source.dim()));
        }
        let fit_on = match (source.dataset(), source.train()) {
            (Some(ds), _) => {
                let mut r = tensor::rng(0x4e4f_524d); // "NORM"
                ds.sample(100_000, &mut r)
            }
            (None, Some(train)) => train.clone(),
            (None, None) => {
                return Err(invalid(
                    "data source has neither a generator nor points".into(),
                ))
            }
        };
        Normalizer::fit(&fit_on)
    }

    /// The built-in data set named by `data`, if it is one.
    pub fn dataset(&self) -> Option<Dataset> {
        self.data.parse::<Dataset>().ok()
    }

    /// The image data named by `data` (`digits`, an IDX file, a folder of PNGs), or `None` for
    /// points ([`Images::open`]).
    pub fn images(&self) -> Result<Option<Images>> {
        if self.dataset().is_some() {
            return Ok(None);
        }
        Images::open(&self.data)
    }

    /// The training and held-out images of image data (the split of [`TrainSettings::training_data`]).
    pub fn image_split(&self) -> Result<Option<(Images, Images)>> {
        self.images()?
            .map(|im| im.split(self.holdout, self.seed))
            .transpose()
    }

    /// The network kind for the data: `auto` → the U-Net for images, the MLP for points;
    /// `unet` on points is an error.
    pub fn architecture(&self, image: Option<ImageFormat>) -> Result<ArchKind> {
        match (self.arch, image) {
            (ArchKind::Auto, Some(_)) | (ArchKind::Unet, Some(_)) => Ok(ArchKind::Unet),
            (ArchKind::Auto, None) | (ArchKind::Mlp, _) => Ok(ArchKind::Mlp),
            (ArchKind::Unet, None) => Err(invalid(format!(
                "--arch unet needs image data (--data digits, an IDX file or a folder of PNGs); {} is a set of points",
                self.data
            ))),
        }
    }

    /// The U-Net for images of `format`: [`UnetConfig::default_for`] with `--base`, `--mults`,
    /// `--res-blocks` and `--attention`, GroupNorm groups min(8, base).
    pub fn unet_config(&self, format: ImageFormat) -> UnetConfig {
        let (c, h, w) = format.shape();
        let d = UnetConfig::default_for(c, h, w);
        UnetConfig {
            base: self.base,
            mults: self.mults.clone().unwrap_or(d.mults.clone()),
            res_blocks: self.res_blocks,
            attention: self.attention,
            groups: d.groups.min(self.base),
            ..d
        }
    }

    /// The training data: the source of minibatches (data units) and the normaliser (fitted on
    /// 100,000 draws of a fixed stream for built-in sets, on the training split for files; for
    /// images always [`ImageFormat::normalizer`], the \[−1, 1) scaling of their levels).
    pub fn training_data(&self) -> Result<(DataSource, Normalizer)> {
        if let Some(images) = self.images()? {
            let source = DataSource::finite_split(
                self.data.clone(),
                &images.pixels,
                self.holdout,
                self.seed,
            )?;
            return Ok((source, images.format().normalizer()));
        }
        let source = match self.dataset() {
            Some(ds) if self.labelled() && ds.classes() == 0 => {
                let labelled: Vec<&str> = Dataset::ALL
                    .iter()
                    .filter(|d| d.classes() > 0)
                    .map(|d| d.name())
                    .collect();
                let what = if self.conditional {
                    "--conditional"
                } else {
                    "--method classifier"
                };
                return Err(invalid(format!(
                    "{what}: {ds} has no classes (labelled sets: {}; or a CSV file with --label-column)",
                    labelled.join(", ")
                )));
            }
            Some(ds) => DataSource::generator(ds),
            None if self.labelled() => {
                let Some(column) = &self.label_column else {
                    return Err(invalid(format!(
                        "{} on the file {} needs --label-column NAME (the CSV column of class labels)",
                        if self.conditional {
                            "--conditional"
                        } else {
                            "--method classifier"
                        },
                        self.data
                    )));
                };
                let (pts, labels) = data::load_csv_labelled(&self.data, column, None)?;
                let name = Path::new(&self.data)
                    .file_name()
                    .map_or(self.data.clone(), |f| f.to_string_lossy().into_owned());
                DataSource::finite_split_labelled(
                    name,
                    &pts,
                    &labels.ids,
                    labels.count(),
                    self.holdout,
                    self.seed,
                )?
            }
            None => {
                let pts = load_points_or_explain(&self.data, None)?;
                if pts.len() < 2 {
                    return Err(invalid(format!(
                        "{}: need at least 2 points to train, found {}",
                        self.data,
                        pts.len()
                    )));
                }
                let name = Path::new(&self.data)
                    .file_name()
                    .map_or(self.data.clone(), |f| f.to_string_lossy().into_owned());
                DataSource::finite_split(name, &pts, self.holdout, self.seed)?
            }
        };
        let norm = self.normalizer_for(&source)?;
        Ok((source, norm))
    }

    /// The network architecture in dimension `dim` (Fourier frequencies ~ N(0, 1) drawn from a
    /// stream of the run seed, then stored in `meta.json`).
    pub fn mlp_config(&self, dim: usize) -> MlpConfig {
        let mut r = tensor::rng(self.seed);
        r.set_stream(0x5449_4d45); // "TIME"
        MlpConfig {
            dim,
            width: self.width,
            depth: self.depth,
            activation: self.activation,
            time: self.time_embedding.embedding(&mut r),
            classes: 0,
            outputs: None,
        }
    }

    /// The model description; `data` (normalised points) sets VE's σ_max and EDM's σ_data when
    /// not given ([`TrainSettings::edm_config`]).
    pub fn model_kind(&self, data: impl FnOnce() -> Points) -> Result<ModelKind> {
        Ok(match self.method {
            TrainMethod::Cfm => ModelKind::Cfm {
                path: self.path,
                source: FlowSource::Gaussian,
            },
            TrainMethod::Dsm => {
                let sde = self.sde_config(data);
                ModelKind::Dsm {
                    sde,
                    dsm: DsmConfig {
                        target: self.target,
                        weighting: self.weighting,
                        noise: match self.noise_levels {
                            0 => NoiseLevels::Continuous,
                            l => NoiseLevels::Ladder { levels: l },
                        },
                        noise_input: self.noise_input,
                    },
                }
            }
            TrainMethod::Sm | TrainMethod::Ssm => ModelKind::NoiseFree {
                objective: ScoreMatching::from_name(self.method.name())?,
            },
            TrainMethod::Edm => ModelKind::Edm {
                sde: edm_sde(),
                edm: self.edm_config(data),
            },
            // A flow path's σ(1) = 0, so its classifier takes the time itself.
            TrainMethod::Classifier => match self.process {
                ProcessKind::Path => ModelKind::Classifier {
                    process: Process::Path(self.path),
                    noise_input: NoiseInput::Time,
                },
                ProcessKind::Sde => ModelKind::Classifier {
                    process: Process::Sde(self.sde_config(data)),
                    noise_input: self.noise_input,
                },
            },
        })
    }

    /// The forward SDE of `--sde` with its parameters (VE's σ_max from `data` when not given).
    fn sde_config(&self, data: impl FnOnce() -> Points) -> SdeConfig {
        let t_min = 1e-5;
        let linear = BetaSchedule::Linear {
            beta_min: self.beta_min,
            beta_max: self.beta_max,
        };
        match self.sde {
            SdeKind::Vp => SdeConfig::Vp {
                schedule: linear,
                t_min,
            },
            SdeKind::VpCosine => SdeConfig::Vp {
                schedule: BetaSchedule::cosine(),
                t_min,
            },
            SdeKind::Subvp => SdeConfig::SubVp {
                schedule: linear,
                t_min,
            },
            SdeKind::Ve => SdeConfig::Ve {
                sigma_min: self.sigma_min,
                sigma_max: self
                    .sigma_max
                    .unwrap_or_else(|| VeSde::sigma_max_for(&data())),
                t_min,
            },
            SdeKind::Edm => edm_sde(),
        }
    }

    /// EDM's σ_data, P_mean, P_std: the settings where given, else σ_data = √(tr Σ / d) of
    /// `data` (normalised points: the per-coordinate standard deviation, as Karras et al. set
    /// σ_data = 0.5 for images in [−1, 1]) and EDM's recipe carried to it
    /// ([`EdmConfig::for_data_std`]: P_mean = −1.2 + ln(σ_data/0.5), P_std = 1.2).
    pub fn edm_config(&self, data: impl FnOnce() -> Points) -> EdmConfig {
        let sigma_data = self.sigma_data.unwrap_or_else(|| data_std(&data()));
        let base = EdmConfig::for_data_std(sigma_data);
        EdmConfig {
            p_mean: self.p_mean.unwrap_or(base.p_mean),
            p_std: self.p_std.unwrap_or(base.p_std),
            ..base
        }
    }

    /// The library's training configuration: Adam/AdamW at the peak rate with the schedule,
    /// clipping and EMA (with warm-up β_n = min(β, (1 + n)/(10 + n)), so short runs do not keep
    /// a share of the random initial weights: 0.999³⁰⁰⁰ ≈ 5 % without it).
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            steps: self.steps,
            batch_size: self.batch,
            seed: self.seed,
            optimizer: OptimizerConfig {
                kind: self.optimizer,
                weight_decay: self.weight_decay,
                clip_grad_norm: (self.clip > 0.0).then_some(self.clip),
                ..OptimizerConfig::adam(self.lr)
            },
            schedule: self.schedule.schedule(self.steps, self.warmup),
            ema: (self.ema > 0.0).then_some(EmaConfig {
                decay: self.ema,
                warmup: true,
            }),
            checkpoint_every: None,
        }
    }
}

/// EDM's SDE with its default range σ 0.002 → 80.
fn edm_sde() -> SdeConfig {
    SdeConfig::Edm {
        sigma_min: EdmSde::DEFAULT_SIGMA_MIN,
        sigma_max: EdmSde::DEFAULT_SIGMA_MAX,
    }
}

/// √(tr Σ / d): the root-mean-square per-coordinate standard deviation of `x`.
fn data_std(x: &Points) -> f64 {
    let d = x.dim();
    let trace: f64 = crate::metrics::covariance(x).iter().step_by(d + 1).sum();
    (trace / d as f64).sqrt()
}

/// Loads points from a .csv/.npy file, or explains what `name` could have been (the built-in
/// data sets) when it looks like neither a name nor a path.
pub fn load_points_or_explain(name: &str, expected_dim: Option<usize>) -> Result<Points> {
    let p = Path::new(name);
    let is_file_like =
        p.extension().is_some() || p.exists() || name.contains(std::path::MAIN_SEPARATOR);
    if !is_file_like {
        return Err(match name.parse::<Dataset>() {
            Err(Error::InvalidInput(m)) => invalid(format!("{m} (or give a .csv/.npy file)")),
            Err(e) => invalid(format!("{e} (or give a .csv/.npy file)")),
            Ok(ds) => invalid(format!("{ds} is a built-in data set, not a file")),
        });
    }
    if !p.exists() {
        return Err(invalid(format!("{name}: no such file")));
    }
    data::load_points(p, expected_dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip_through_toml() {
        let s = TrainSettings {
            sigma_max: Some(5.0),
            ..TrainSettings::default()
        };
        s.validate().unwrap();
        let text = s.to_toml().unwrap();
        let back = TrainSettings::from_toml(&text, Path::new("config.toml")).unwrap();
        assert_eq!(back, s);
    }

    /// A run's config.toml written before `noise-input` and `path` existed reads as what those
    /// runs used (τ input, straight path), while a new run defaults to ¼ ln σ.
    #[test]
    fn old_run_configs_read_as_what_they_used() {
        let text = TrainSettings::default().to_toml().unwrap();
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("noise-input") && !l.starts_with("path"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(old, text);
        let s = TrainSettings::from_toml(&old, Path::new("c")).unwrap();
        assert_eq!(s.noise_input, NoiseInput::Time);
        assert_eq!(s.path, PathKind::Condot);
        let s = TrainSettings::from_toml(&text, Path::new("c")).unwrap();
        assert_eq!(s.noise_input, NoiseInput::LogSigma);
    }

    /// A config.toml and a meta.json objective written before sources and couplings existed
    /// read as N(0, I) and the independent coupling, and a Gaussian-source kind is written
    /// without a `source` key (so such runs' files do not change).
    #[test]
    fn runs_without_a_source_read_as_gaussian_independent() {
        let text = TrainSettings::default().to_toml().unwrap();
        let new_keys = ["source", "coupling", "cfm-sigma", "time-grid"];
        let old: String = text
            .lines()
            .filter(|l| !new_keys.iter().any(|k| l.starts_with(k)))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(old, text);
        let s = TrainSettings::from_toml(&old, Path::new("c")).unwrap();
        assert_eq!(s, TrainSettings::default());
        assert!(s.has_gaussian_source());
        assert_eq!(s.coupling().unwrap(), Coupling::Independent);
        assert!(s.source_data(2).unwrap().is_none());
        let kind = s.model_kind(|| unreachable!()).unwrap();
        let v = serde_json::to_value(&kind).unwrap();
        assert_eq!(v, serde_json::json!({"method": "cfm", "path": "condot"}));
        let back: ModelKind = serde_json::from_value(v).unwrap();
        assert_eq!(back.flow_source(), FlowSource::Gaussian);
    }

    /// Flow-only settings are refused for other methods; coupling parameters only go with
    /// their coupling; σ > 0 does not combine with sb; the defaults of ε and σ are the
    /// library's.
    #[test]
    fn flow_settings_are_validated() {
        let with = |f: &dyn Fn(&mut TrainSettings)| {
            let mut s = TrainSettings::default();
            f(&mut s);
            s.validate().map(|_| s).map_err(|e| e.to_string())
        };
        type Set = fn(&mut TrainSettings);
        let flow_only: [(&str, Set); 3] = [
            ("--source", |s| s.source = "moons".into()),
            ("--coupling", |s| s.coupling = CouplingKind::Ot),
            ("--time-grid", |s| s.time_grid = 4),
        ];
        for (flag, set) in flow_only {
            let e = with(&|s: &mut TrainSettings| {
                s.method = TrainMethod::Dsm;
                set(s)
            })
            .unwrap_err();
            assert!(e.contains(flag) && e.contains("dsm"), "{e}");
        }
        let e = with(&|s| s.sinkhorn_epsilon = Some(0.1)).unwrap_err();
        assert!(
            e.contains("--sinkhorn-epsilon") && e.contains("sinkhorn"),
            "{e}"
        );
        let e = with(&|s| {
            s.coupling = CouplingKind::Sb;
            s.cfm_sigma = 0.1
        })
        .unwrap_err();
        assert!(e.contains("--cfm-sigma"), "{e}");
        let e = with(&|s| {
            s.coupling = CouplingKind::Sinkhorn;
            s.sinkhorn_epsilon = Some(0.0)
        })
        .unwrap_err();
        assert!(e.contains("ε"), "{e}");
        let s = with(&|s| s.coupling = CouplingKind::Sinkhorn).unwrap();
        assert_eq!(
            s.coupling().unwrap(),
            Coupling::Sinkhorn {
                epsilon: crate::coupling::DEFAULT_EPSILON
            }
        );
        let s = with(&|s| {
            s.coupling = CouplingKind::Sb;
            s.sb_sigma = Some(0.2)
        })
        .unwrap();
        assert_eq!(s.coupling().unwrap(), Coupling::Sb { sigma: 0.2 });
        let e = with(&|s| s.source = "spirals".into()).unwrap();
        let e = e.source_data(2).unwrap_err().to_string();
        assert!(
            e.contains("'spirals'") && e.contains("gaussian") && e.contains("moons"),
            "{e}"
        );
    }

    #[test]
    fn unknown_and_malformed_keys_are_named_with_their_line() {
        let e = parse_toml::<TrainSettings>("width = 64\nwidht = 3\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("widht"), "{e}");
        let e = parse_toml::<TrainSettings>("steps = \"many\"\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("steps"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn model_kind_round_trips_through_meta_json() {
        let s = TrainSettings {
            method: TrainMethod::Dsm,
            sde: SdeKind::Ve,
            sigma_max: Some(6.0),
            ..TrainSettings::default()
        };
        let kind = s.model_kind(|| unreachable!()).unwrap();
        let v = serde_json::to_value(&kind).unwrap();
        assert_eq!(v["method"], "dsm");
        let back: ModelKind = serde_json::from_value(v).unwrap();
        assert_eq!(back, kind);
        assert!(back.objective().is_ok());
        // A flow run records its path; one written before paths existed reads as straight.
        let cos = TrainSettings {
            path: PathKind::Cosine,
            ..TrainSettings::default()
        };
        let v = serde_json::to_value(cos.model_kind(|| unreachable!()).unwrap()).unwrap();
        assert_eq!(v["path"], "cosine");
        let legacy: ModelKind =
            serde_json::from_value(serde_json::json!({"method": "cfm", "path": "condot"})).unwrap();
        assert_eq!(
            legacy,
            ModelKind::Cfm {
                path: PathKind::Condot,
                source: FlowSource::Gaussian,
            }
        );
    }

    #[test]
    fn unknown_data_names_list_the_builtins() {
        let e = load_points_or_explain("spirals", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("8gaussians") && e.contains("moons") && e.contains(".csv"),
            "{e}"
        );
        let e = load_points_or_explain("nowhere/points.csv", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    /// A config.toml written before the U-Net keys existed reads as an MLP run with the
    /// U-Net defaults; image data get the image defaults and resolve `auto` to the U-Net, point
    /// data the MLP, and `--arch unet` on points is refused.
    #[test]
    fn image_settings_default_and_resolve() {
        let text = TrainSettings::default().to_toml().unwrap();
        let old: String = text
            .lines()
            .filter(|l| {
                !["arch", "base", "res-blocks", "attention"]
                    .iter()
                    .any(|k| l.starts_with(&format!("{k} ")))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(old, text);
        let s = TrainSettings::from_toml(&old, Path::new("c")).unwrap();
        assert_eq!(s, TrainSettings::default());
        assert_eq!(s.architecture(None).unwrap(), ArchKind::Mlp);
        let d = TrainSettings::defaults_for("digits");
        assert_eq!((d.steps, d.batch, d.lr, d.clip), (2000, 128, 1e-3, 1.0));
        assert_eq!(
            TrainSettings::defaults_for("moons"),
            TrainSettings {
                data: "moons".into(),
                ..TrainSettings::default()
            }
        );
        let f = d.images().unwrap().unwrap().format();
        assert_eq!((f.levels, f.dim()), (17, 64));
        assert_eq!(d.architecture(Some(f)).unwrap(), ArchKind::Unet);
        let unet = d.unet_config(f);
        assert_eq!((unet.base, unet.mults.clone()), (32, vec![1, 2]));
        assert_eq!(unet.num_params(), 651_041);
        let points = TrainSettings {
            arch: ArchKind::Unet,
            ..TrainSettings::default()
        };
        let e = points.architecture(None).unwrap_err().to_string();
        assert!(e.contains("--arch unet") && e.contains("image data"), "{e}");
    }
}
