//! Training settings: flags and TOML config keys are the same set ([`TrainOpts`]); flags
//! override the file, the file overrides the defaults ([`TrainSettings::default`]). Unknown keys
//! are rejected with the key named.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// Training steps of `scoreflow quickstart`.
pub const QUICKSTART_STEPS: usize = 5000;

/// Training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    /// Conditional flow matching on the straight (CondOT) path; samples with ODE solvers.
    Cfm,
    /// Denoising score matching under an SDE (--sde); samples with em/pc/ald/ode.
    Dsm,
    /// Hyvärinen (exact) score matching on the clean data.
    Sm,
    /// Sliced score matching on the clean data.
    Ssm,
}

impl MethodName {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cfm => "cfm",
            Self::Dsm => "dsm",
            Self::Sm => "sm",
            Self::Ssm => "ssm",
        }
    }
}

/// Forward SDE of a denoising-score-matching model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdeName {
    /// Variance preserving, linear β from --beta-min to --beta-max (DDPM's continuous limit).
    Vp,
    /// Variance preserving with Nichol & Dhariwal's cosine schedule.
    #[value(name = "vp-cosine")]
    #[serde(rename = "vp-cosine")]
    VpCosine,
    /// Sub-variance-preserving.
    Subvp,
    /// Variance exploding, geometric σ from σ_min to σ_max (NCSN's continuous limit).
    Ve,
}

/// What the network predicts under DSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetName {
    /// The noise ε (score = −ε/σ).
    Eps,
    /// The score ∇log p_τ directly.
    Score,
    /// The clean data x̂₀.
    X0,
}

/// DSM loss weighting λ(τ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightingName {
    /// λ = σ(τ)² (Song et al.'s default).
    Sigma2,
    /// λ = g(τ)² (likelihood weighting).
    Likelihood,
    /// λ = 1.
    Uniform,
}

/// The DSM network's time input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseInputName {
    /// The diffusion time τ itself (score_sde, the PyTorch reference).
    Time,
    /// ¼ ln σ(τ) (Karras et al.'s c_noise): resolves the small noise levels.
    Logsigma,
}

/// Runs written before `noise_input` existed fed the network τ.
fn time_input() -> NoiseInputName {
    NoiseInputName::Time
}

/// Hidden nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationName {
    /// z·σ(z).
    Silu,
    /// max(z, 0).
    Relu,
    /// tanh z.
    Tanh,
    /// log(1 + eᶻ).
    Softplus,
}

/// How time enters the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeName {
    /// t as one extra input (the reference MLP).
    Raw,
    /// Gaussian Fourier features of t.
    Fourier,
}

/// Optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerName {
    /// Adam (L2 weight decay if any).
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleName {
    /// lr throughout.
    Constant,
    /// Linear warm-up over the first --warmup fraction, then constant.
    Warmup,
    /// Linear warm-up, then cosine decay to 0.
    Cosine,
    /// One-cycle (PyTorch OneCycleLR): cosine rise from lr/25 to lr over the --warmup fraction, then cosine decay to lr/2.5e5.
    Onecycle,
}

/// Whether to standardise the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizeMode {
    /// Standardise file data; leave built-in sets as they are.
    Auto,
    /// Always standardise.
    Yes,
    /// Never standardise.
    No,
}

/// Training engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainEngine {
    /// The fused CPU MLP engine when it supports the model, else burn.
    Auto,
    /// burn Flex with autodiff (the reference).
    Burn,
    /// The fused CPU MLP engine.
    Fused,
}

/// Every training setting, each optional: as flags (`--width 256`) and as TOML keys
/// (`width = 256`). Defaults are filled in by [`TrainOpts::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainOpts {
    /// Data: a built-in set (8gaussians, 25gaussians, gmm_aniso, checkerboard, moons, circles, rings, 2spirals, pinwheel, swissroll) or a .csv/.npy file [default: 8gaussians]
    #[arg(long, value_name = "NAME|FILE")]
    pub data: Option<String>,
    /// Objective [default: cfm]
    #[arg(long, value_enum)]
    pub method: Option<MethodName>,
    /// Forward SDE for --method dsm [default: vp]
    #[arg(long, value_enum)]
    pub sde: Option<SdeName>,
    /// Network target for --method dsm [default: eps]
    #[arg(long, value_enum)]
    pub target: Option<TargetName>,
    /// DSM loss weighting λ(τ) [default: sigma2]
    #[arg(long, value_enum)]
    pub weighting: Option<WeightingName>,
    /// DSM noise levels: 0 = continuous τ ~ U(ε, T); L ≥ 2 = NCSN's ladder of L levels [default: 0]
    #[arg(long, value_name = "L")]
    pub noise_levels: Option<usize>,
    /// DSM network time input: logsigma (¼ ln σ(τ); better reverse-SDE samples on moons and checkerboard) or time (τ, as score_sde; better probability-flow ODE samples on 8gaussians and moons) [default: logsigma]
    #[arg(long, value_enum)]
    pub noise_input: Option<NoiseInputName>,
    /// VP/sub-VP β_min [default: 0.1]
    #[arg(long, value_name = "X")]
    pub beta_min: Option<f64>,
    /// VP/sub-VP β_max [default: 20]
    #[arg(long, value_name = "X")]
    pub beta_max: Option<f64>,
    /// VE σ_min [default: 0.01]
    #[arg(long, value_name = "X")]
    pub sigma_min: Option<f64>,
    /// VE σ_max [default: the largest pairwise distance in a data sample (Song & Ermon 2020)]
    #[arg(long, value_name = "X")]
    pub sigma_max: Option<f64>,
    /// Hidden width of the MLP [default: 128]
    #[arg(long, value_name = "W")]
    pub width: Option<usize>,
    /// Hidden layers of the MLP [default: 4]
    #[arg(long, value_name = "D")]
    pub depth: Option<usize>,
    /// Hidden nonlinearity [default: silu]
    #[arg(long, value_enum)]
    pub activation: Option<ActivationName>,
    /// Time input of the network [default: raw]
    #[arg(long, value_enum)]
    pub time_embedding: Option<TimeName>,
    /// Optimiser steps [default: 5000]
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Minibatch size [default: 256]
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Optimiser [default: adam]
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerName>,
    /// Peak learning rate [default: 0.002]
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Weight decay [default: 0]
    #[arg(long, value_name = "X")]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule [default: onecycle]
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleName>,
    /// Warm-up length as a fraction of --steps [default: 0.05]
    #[arg(long, value_name = "FRAC")]
    pub warmup: Option<f64>,
    /// EMA decay of the weights used for sampling; 0 disables EMA [default: 0.999]
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// Clip the global gradient norm to this value; 0 disables clipping [default: 0]
    #[arg(long, value_name = "NORM")]
    pub clip: Option<f64>,
    /// Random seed (initial weights, batches, noise) [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Save a checkpoint every N steps (and at the end) [default: 500]
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Fraction of a file data set held out for evaluation [default: 0.1]
    #[arg(long, value_name = "FRAC")]
    pub holdout: Option<f64>,
    /// Standardise each data dimension (mean 0, std 1) for training; samples come back in data units. auto: files yes, built-in sets no (they are already at the scale of the reference scripts) [default: auto]
    #[arg(long, value_enum)]
    pub normalize: Option<NormalizeMode>,
    /// Training engine [default: auto]
    #[arg(long, value_enum)]
    pub engine: Option<TrainEngine>,
    /// Run directory [default: runs/<data>-<method>-<time>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Resolved training settings: what a run used, written to its `config.toml` (every key, so
/// the file documents the run and `train --config` on it repeats it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainSettings {
    /// See [`TrainOpts::data`].
    pub data: String,
    /// See [`TrainOpts::method`].
    pub method: MethodName,
    /// See [`TrainOpts::sde`].
    pub sde: SdeName,
    /// See [`TrainOpts::target`].
    pub target: TargetName,
    /// See [`TrainOpts::weighting`].
    pub weighting: WeightingName,
    /// See [`TrainOpts::noise_levels`].
    pub noise_levels: usize,
    /// See [`TrainOpts::noise_input`].
    #[serde(default = "time_input")]
    pub noise_input: NoiseInputName,
    /// See [`TrainOpts::beta_min`].
    pub beta_min: f64,
    /// See [`TrainOpts::beta_max`].
    pub beta_max: f64,
    /// See [`TrainOpts::sigma_min`].
    pub sigma_min: f64,
    /// See [`TrainOpts::sigma_max`]; `None` = from the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma_max: Option<f64>,
    /// See [`TrainOpts::width`].
    pub width: usize,
    /// See [`TrainOpts::depth`].
    pub depth: usize,
    /// See [`TrainOpts::activation`].
    pub activation: ActivationName,
    /// See [`TrainOpts::time_embedding`].
    pub time_embedding: TimeName,
    /// See [`TrainOpts::steps`].
    pub steps: usize,
    /// See [`TrainOpts::batch`].
    pub batch: usize,
    /// See [`TrainOpts::optimizer`].
    pub optimizer: OptimizerName,
    /// See [`TrainOpts::lr`].
    pub lr: f64,
    /// See [`TrainOpts::weight_decay`].
    pub weight_decay: f64,
    /// See [`TrainOpts::schedule`].
    pub schedule: ScheduleName,
    /// See [`TrainOpts::warmup`].
    pub warmup: f64,
    /// See [`TrainOpts::ema`].
    pub ema: f64,
    /// See [`TrainOpts::clip`].
    pub clip: f64,
    /// See [`TrainOpts::seed`].
    pub seed: u64,
    /// See [`TrainOpts::checkpoint_every`].
    pub checkpoint_every: usize,
    /// See [`TrainOpts::holdout`].
    pub holdout: f64,
    /// See [`TrainOpts::normalize`].
    pub normalize: NormalizeMode,
    /// See [`TrainOpts::engine`].
    pub engine: TrainEngine,
    /// See [`TrainOpts::out`] (not written to `config.toml`).
    #[serde(default, skip)]
    pub out: Option<PathBuf>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            data: "8gaussians".into(),
            method: MethodName::Cfm,
            sde: SdeName::Vp,
            target: TargetName::Eps,
            weighting: WeightingName::Sigma2,
            noise_levels: 0,
            noise_input: NoiseInputName::Logsigma,
            beta_min: 0.1,
            beta_max: 20.0,
            sigma_min: 0.01,
            sigma_max: None,
            width: 128,
            depth: 4,
            activation: ActivationName::Silu,
            time_embedding: TimeName::Raw,
            steps: 5000,
            batch: 256,
            optimizer: OptimizerName::Adam,
            lr: 2e-3,
            weight_decay: 0.0,
            schedule: ScheduleName::Onecycle,
            warmup: 0.05,
            ema: 0.999,
            clip: 0.0,
            seed: 0,
            checkpoint_every: 500,
            holdout: 0.1,
            normalize: NormalizeMode::Auto,
            engine: TrainEngine::Auto,
            out: None,
        }
    }
}

impl TrainOpts {
    /// Reads a TOML config file; errors name the file, the line and the offending key.
    pub fn from_file(path: &Path) -> Result<TrainOpts> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        parse_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// `self` (flags) over `file` over the defaults, validated.
    pub fn resolve(self, file: TrainOpts) -> Result<TrainSettings> {
        let d = TrainSettings::default();
        macro_rules! pick {
            ($($f:ident),*) => { TrainSettings { $($f: self.$f.or(file.$f).unwrap_or(d.$f),)* sigma_max: self.sigma_max.or(file.sigma_max).or(d.sigma_max), out: self.out.or(file.out) } };
        }
        let s = pick!(
            data,
            method,
            sde,
            target,
            weighting,
            noise_levels,
            noise_input,
            beta_min,
            beta_max,
            sigma_min,
            width,
            depth,
            activation,
            time_embedding,
            steps,
            batch,
            optimizer,
            lr,
            weight_decay,
            schedule,
            warmup,
            ema,
            clip,
            seed,
            checkpoint_every,
            holdout,
            normalize,
            engine
        );
        s.validate()?;
        Ok(s)
    }
}

/// Parses config text into [`TrainOpts`]; the error is one line: `line N: key `k`: message`.
pub fn parse_toml(text: &str) -> std::result::Result<TrainOpts, String> {
    toml::from_str::<TrainOpts>(text).map_err(|e| {
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

impl TrainSettings {
    /// Range checks with one clear message per problem.
    pub fn validate(&self) -> Result<()> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        if self.steps == 0 {
            bail!("--steps must be at least 1");
        }
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        if self.width == 0 || self.depth == 0 {
            bail!(
                "--width and --depth must be at least 1 (got {} and {})",
                self.width,
                self.depth
            );
        }
        if !pos(self.lr) {
            bail!("--lr must be a positive number (got {})", self.lr);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay must be >= 0 (got {})", self.weight_decay);
        }
        if !(0.0..1.0).contains(&self.warmup) {
            bail!(
                "--warmup is a fraction of the steps in [0, 1) (got {})",
                self.warmup
            );
        }
        if !(0.0..1.0).contains(&self.ema) {
            bail!("--ema is a decay in [0, 1), 0 = off (got {})", self.ema);
        }
        if !(self.clip.is_finite() && self.clip >= 0.0) {
            bail!("--clip must be >= 0, 0 = off (got {})", self.clip);
        }
        if self.checkpoint_every == 0 {
            bail!("--checkpoint-every must be at least 1");
        }
        if !(0.0..1.0).contains(&self.holdout) {
            bail!("--holdout is a fraction in [0, 1) (got {})", self.holdout);
        }
        if !(pos(self.beta_min) && pos(self.beta_max) && self.beta_min < self.beta_max) {
            bail!(
                "need 0 < --beta-min < --beta-max (got {}, {})",
                self.beta_min,
                self.beta_max
            );
        }
        if !pos(self.sigma_min) {
            bail!("--sigma-min must be positive (got {})", self.sigma_min);
        }
        if let Some(m) = self.sigma_max {
            if !(pos(m) && m > self.sigma_min) {
                bail!(
                    "need --sigma-max > --sigma-min (got {m}, {})",
                    self.sigma_min
                );
            }
        }
        if self.schedule == ScheduleName::Onecycle && self.warmup == 0.0 {
            bail!("--schedule onecycle needs a rising phase: --warmup > 0 (e.g. 0.05)");
        }
        if self.noise_levels == 1 {
            bail!("--noise-levels is 0 (continuous) or at least 2 (got 1)");
        }
        if self.data.trim().is_empty() {
            bail!("--data is empty");
        }
        Ok(())
    }

    /// The `config.toml` text: every setting, with a header comment.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string(self).context("serialising config")?;
        Ok(format!(
            "# scoreflow training settings (keys = `scoreflow train` flags)\n{body}"
        ))
    }

    /// Reads a run's `config.toml`.
    pub fn from_file(path: &Path) -> Result<TrainSettings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let mut opts = parse_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // A run's file lacks `noise-input` only if it predates the key: it fed the network τ.
        opts.noise_input = opts.noise_input.or(Some(time_input()));
        opts.resolve(TrainOpts::default())
            .with_context(|| path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(clap::Parser, Debug)]
    struct Wrap {
        #[command(flatten)]
        opts: TrainOpts,
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let file = parse_toml("width = 64\nlr = 0.01\nmethod = \"dsm\"\nsde = \"ve\"\n").unwrap();
        let flags = TrainOpts {
            width: Some(32),
            ..Default::default()
        };
        let s = flags.resolve(file).unwrap();
        assert_eq!(s.width, 32); // flag wins
        assert_eq!(s.lr, 0.01); // file wins over default
        assert_eq!((s.method, s.sde), (MethodName::Dsm, SdeName::Ve));
        assert_eq!(s.depth, TrainSettings::default().depth); // default
    }

    #[test]
    fn unknown_and_malformed_keys_are_named_with_their_line() {
        let e = parse_toml("width = 64\nwidht = 3\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("widht"), "{e}");
        let e = parse_toml("steps = \"many\"\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("steps"), "{e}");
        let e = parse_toml("method = \"gan\"\n").unwrap_err();
        assert!(e.contains("gan") && e.contains("cfm"), "{e}");
        assert!(!e.contains('\n'));
    }

    /// A run's config.toml written before `noise-input` existed reads as `time` (what those runs
    /// fed the network), while a new run defaults to `logsigma`.
    #[test]
    fn old_run_configs_read_as_time_input() {
        let dir = tempfile::tempdir().unwrap();
        let text = TrainSettings::default().to_toml().unwrap();
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("noise-input"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(old, text);
        let path = dir.path().join("config.toml");
        std::fs::write(&path, old).unwrap();
        let s = TrainSettings::from_file(&path).unwrap();
        assert_eq!(s.noise_input, NoiseInputName::Time);
        std::fs::write(&path, text).unwrap();
        let s = TrainSettings::from_file(&path).unwrap();
        assert_eq!(s.noise_input, NoiseInputName::Logsigma);
    }

    #[test]
    fn resolved_config_round_trips_through_toml() {
        let s = TrainSettings {
            sigma_max: Some(5.0),
            ..TrainSettings::default()
        };
        let text = s.to_toml().unwrap();
        let back = parse_toml(&text)
            .unwrap()
            .resolve(TrainOpts::default())
            .unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        for (k, v) in [
            ("ema", "1.5"),
            ("lr", "-1.0"),
            ("warmup", "1.0"),
            ("steps", "0"),
            ("holdout", "1.0"),
        ] {
            let opts = parse_toml(&format!("{k} = {v}\n")).unwrap();
            let e = opts.resolve(TrainOpts::default()).unwrap_err().to_string();
            assert!(e.contains(&k.replace('_', "-")), "{k}: {e}");
        }
    }

    /// Every help line states the real default: each key of the serialised defaults appears in
    /// its flag's help text as `[default: value]`.
    #[test]
    fn help_texts_state_the_actual_defaults() {
        let cmd = Wrap::command();
        let defaults: toml::Table =
            toml::from_str(&TrainSettings::default().to_toml().unwrap()).unwrap();
        for (key, value) in &defaults {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()))
                .unwrap_or_else(|| panic!("no flag --{key}"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let shown = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Float(f) => format!("{f}"),
                v => v.to_string(),
            };
            assert!(
                help.contains(&format!("[default: {shown}]")),
                "--{key}: help '{help}' does not say default {shown}"
            );
        }
    }
}
