//! Training flags: flags and TOML config keys are the same set ([`TrainOpts`]); flags override
//! the file, the file overrides the defaults (the library's [`TrainSettings::default`], the one
//! source of every default). Unknown keys are rejected with the key and line named.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use scoreflow::coupling::CouplingKind;
use scoreflow::data::NormalizeMode;
use scoreflow::field::convert::{NoiseInput, Prediction};
use scoreflow::field::mlp::{Activation, TimeEmbeddingKind};
use scoreflow::model::settings::parse_toml;
use scoreflow::model::{ArchKind, ProcessKind, TrainMethod, TrainSettings};
use scoreflow::objective::dsm::Weighting;
use scoreflow::path::PathKind;
use scoreflow::sde::SdeKind;
use scoreflow::train::{EngineKind, OptimizerKind, ScheduleKind};
use serde::{Deserialize, Serialize};

/// Training steps of `scoreflow quickstart`.
pub const QUICKSTART_STEPS: usize = 5000;

/// Training steps of each leg of `scoreflow chain`.
pub const CHAIN_STEPS: usize = 8000;

/// The defaults of `scoreflow chain`'s legs (flags override them; everything else is
/// [`TrainSettings::default`], the 3→128×4→2 MLP with the independent coupling):
/// [`CHAIN_STEPS`] steps. (Measured on star → bullseye, 2 cores: 64×3 MLPs do not resolve the
/// thin rings even in 10,000 steps, and the exact-OT coupling costs ~9 ms of assignment per
/// batch of 256, 5–8× the step itself, without sharper shapes at 3,000 steps.)
pub fn chain_defaults() -> TrainOpts {
    TrainOpts {
        steps: Some(CHAIN_STEPS),
        ..TrainOpts::default()
    }
}

/// Every training setting, each optional: as flags (`--width 256`) and as TOML keys
/// (`width = 256`). Defaults are filled in by [`TrainOpts::resolve`]; each help line states the
/// library's default (a test checks them).
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainOpts {
    /// Data: a built-in set (8gaussians, 25gaussians, gmm_aniso, checkerboard, moons, circles, rings, 2spirals, pinwheel, swissroll; the moment-matched shapes star, bullseye, x_shape, h_lines, v_lines, dots, slant_up, circle), a .csv/.npy file, or images: digits (the built-in 8×8 digits), an IDX file (MNIST format) or a folder of PNGs [default: 8gaussians]
    #[arg(long, value_name = "NAME|FILE")]
    pub data: Option<String>,
    /// Objective: cfm (alias velocity), dsm (alias score), sm, ssm, edm, or classifier (a time-dependent classifier p(y | x_t, t) of the data's labels for classifier guidance, under --process) [default: cfm]
    #[arg(long, value_enum, alias = "kind")]
    pub method: Option<TrainMethod>,
    /// Probability path of flow matching: condot (straight, α = t, σ = 1 − t) or cosine (α = sin πt/2, σ = cos πt/2) [default: condot]
    #[arg(long, value_enum)]
    pub path: Option<PathKind>,
    /// Forward SDE for --method dsm (--method edm always runs on edm: σ 0.002 → 80) [default: vp]
    #[arg(long, value_enum)]
    pub sde: Option<SdeKind>,
    /// Network target for --method dsm [default: eps]
    #[arg(long, value_enum)]
    pub target: Option<Prediction>,
    /// DSM loss weighting λ(τ) [default: sigma2]
    #[arg(long, value_enum)]
    pub weighting: Option<Weighting>,
    /// DSM noise levels: 0 = continuous τ ~ U(ε, T); L ≥ 2 = NCSN's ladder of L levels [default: 0]
    #[arg(long, value_name = "L")]
    pub noise_levels: Option<usize>,
    /// DSM network time input: logsigma (¼ ln σ(τ); better reverse-SDE samples on moons and checkerboard) or time (τ, as score_sde; better probability-flow ODE samples on 8gaussians and moons) [default: logsigma]
    #[arg(long, value_enum)]
    pub noise_input: Option<NoiseInput>,
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
    pub activation: Option<Activation>,
    /// Time input of the network [default: raw]
    #[arg(long, value_enum)]
    pub time_embedding: Option<TimeEmbeddingKind>,
    /// Optimiser steps [default: 5000] (image data: 2000)
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Minibatch size [default: 256] (image data: 128)
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Optimiser [default: adam]
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Peak learning rate [default: 0.002] (image data: 0.001)
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Weight decay [default: 0]
    #[arg(long, value_name = "X")]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule [default: onecycle]
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Warm-up length as a fraction of --steps [default: 0.05]
    #[arg(long, value_name = "FRAC")]
    pub warmup: Option<f64>,
    /// EMA decay of the weights used for sampling; 0 disables EMA [default: 0.999]
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// Clip the global gradient norm to this value; 0 disables clipping [default: 0] (image data: 1)
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
    /// Training engine: auto (fused for cfm/dsm, burn for sm/ssm), fused (the fused CPU MLP engine) or burn (burn autodiff, the reference) [default: auto]
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
    /// Source of the flow (t = 0): gaussian (N(0, I)), a built-in set or a .csv/.npy file (copied into the run directory; standardised by its own normaliser under --normalize); --method cfm only [default: gaussian]
    #[arg(long, value_name = "NAME|FILE")]
    pub source: Option<String>,
    /// How flow matching pairs source and target minibatches: independent (I-CFM), ot (exact minibatch OT), sinkhorn (entropic OT, --sinkhorn-epsilon) or sb (Schrödinger bridge, --sb-sigma) [default: independent]
    #[arg(long, value_enum)]
    pub coupling: Option<CouplingKind>,
    /// ε of --coupling sinkhorn, absolute, in squared model units [default: 0.05]
    #[arg(long, value_name = "EPS")]
    pub sinkhorn_epsilon: Option<f64>,
    /// σ of --coupling sb: Brownian-bridge width, plan ε = 2σ² [default: 0.5]
    #[arg(long, value_name = "SIGMA")]
    pub sb_sigma: Option<f64>,
    /// Constant path noise σ of flow matching, x_t ~ N(t x₁ + (1 − t) x₀, σ²) (TorchCFM's sigma); not with --coupling sb [default: 0]
    #[arg(long, value_name = "SIGMA")]
    pub cfm_sigma: Option<f64>,
    /// Train flow matching only at the times {k/N : k = 0..N} (sample with --sampler euler --steps N); 0 = t uniform on [0, 1) [default: 0]
    #[arg(long, value_name = "N")]
    pub time_grid: Option<usize>,
    /// EDM (--method edm) σ_data of the preconditioning [default: the per-coordinate standard deviation of the (normalised) data, √(tr Σ / d)]
    #[arg(long, value_name = "X")]
    pub sigma_data: Option<f64>,
    /// EDM (--method edm) mean of ln σ in training [default: −1.2 + ln(σ_data/0.5), EDM's recipe carried to the data's scale]
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub p_mean: Option<f64>,
    /// EDM (--method edm) standard deviation of ln σ in training [default: 1.2]
    #[arg(long, value_name = "X")]
    pub p_std: Option<f64>,
    /// Train a class-conditional network (cfm, dsm) on the data's labels: a built-in set's classes (mixture components, moons, circles, rings, 2spirals and pinwheel arms) or a CSV column (--label-column); sample with `scoreflow sample --class K --guidance G` [default: false]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub conditional: Option<bool>,
    /// The CSV column (by header name) holding integer class labels, for --conditional on a file
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
    /// Label dropout of --conditional training: the probability that a label is replaced by the null label, so one network also learns the unconditional field (classifier-free guidance) [default: 0.1]
    #[arg(long, value_name = "P")]
    pub label_dropout: Option<f64>,
    /// The noising process of --method classifier: sde (the forward SDE of --sde, for dsm models) or path (the probability path of --path, for cfm models); it must be the process of the models it guides (a classifier on an SDE also guides other processes through the matching noise level) [default: sde]
    #[arg(long, value_enum)]
    pub process: Option<ProcessKind>,
    /// Network: auto (the U-Net for image data, the MLP for points), mlp or unet [default: auto]
    #[arg(long, value_enum)]
    pub arch: Option<ArchKind>,
    /// U-Net base channels (even; level ℓ has base × mults[ℓ]) [default: 32]
    #[arg(long, value_name = "C")]
    pub base: Option<usize>,
    /// U-Net channel multipliers, one resolution level each, e.g. 1,2 [default: 1,2 up to 16 pixels a side, 1,2,2 beyond]
    #[arg(long, value_delimiter = ',', value_name = "M,..")]
    pub mults: Option<Vec<usize>>,
    /// U-Net residual blocks per level [default: 1]
    #[arg(long, value_name = "N")]
    pub res_blocks: Option<usize>,
    /// U-Net self-attention at the lowest resolution [default: true]
    #[arg(long, value_name = "BOOL")]
    pub attention: Option<bool>,
    /// Run directory [default: runs/<data>-<method>-<time>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl TrainOpts {
    /// Reads a TOML config file; errors name the file, the line and the offending key.
    pub fn from_file(path: &Path) -> Result<TrainOpts> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        parse_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The flags that only concern training, by name, with whether each was given: an imported
    /// network refuses them (nothing is trained; width and depth come from the weights).
    pub fn training_only(&self) -> Vec<&'static str> {
        let given = [
            ("width", self.width.is_some()),
            ("depth", self.depth.is_some()),
            ("time-embedding", self.time_embedding.is_some()),
            ("steps", self.steps.is_some()),
            ("batch", self.batch.is_some()),
            ("optimizer", self.optimizer.is_some()),
            ("lr", self.lr.is_some()),
            ("weight-decay", self.weight_decay.is_some()),
            ("schedule", self.schedule.is_some()),
            ("warmup", self.warmup.is_some()),
            ("ema", self.ema.is_some()),
            ("clip", self.clip.is_some()),
            ("checkpoint-every", self.checkpoint_every.is_some()),
            ("holdout", self.holdout.is_some()),
            ("engine", self.engine.is_some()),
            ("weighting", self.weighting.is_some()),
            ("noise-levels", self.noise_levels.is_some()),
        ];
        given.into_iter().filter(|g| g.1).map(|g| g.0).collect()
    }

    /// Whether the setting `key` (a flag name without `--`) was given, for the keys that
    /// [`TrainSettings::check_applicable`] asks about.
    fn given(&self, key: &str) -> bool {
        match key {
            "normalize" => self.normalize.is_some(),
            "label-column" => self.label_column.is_some(),
            "width" => self.width.is_some(),
            "depth" => self.depth.is_some(),
            "activation" => self.activation.is_some(),
            "time-embedding" => self.time_embedding.is_some(),
            "base" => self.base.is_some(),
            "mults" => self.mults.is_some(),
            "res-blocks" => self.res_blocks.is_some(),
            "attention" => self.attention.is_some(),
            _ => false,
        }
    }

    /// `self` (flags) over `file` over the defaults, validated; and the run directory, if
    /// given.
    pub fn resolve(self, file: TrainOpts) -> Result<(TrainSettings, Option<PathBuf>)> {
        // The flags given on the command line, before the settings take them over.
        let keys = [
            "normalize",
            "label-column",
            "width",
            "depth",
            "activation",
            "time-embedding",
            "base",
            "mults",
            "res-blocks",
            "attention",
        ];
        let given: Vec<&str> = keys.into_iter().filter(|k| self.given(k)).collect();
        // Image data have their own defaults (the library's `defaults_for`).
        let data = self.data.clone().or(file.data.clone());
        let d = TrainSettings::defaults_for(&data.unwrap_or(TrainSettings::default().data));
        macro_rules! pick {
            ($($f:ident),*) => { TrainSettings {
                $($f: self.$f.or(file.$f).unwrap_or(d.$f),)*
                sigma_max: self.sigma_max.or(file.sigma_max).or(d.sigma_max),
                sinkhorn_epsilon: self.sinkhorn_epsilon.or(file.sinkhorn_epsilon).or(d.sinkhorn_epsilon),
                sb_sigma: self.sb_sigma.or(file.sb_sigma).or(d.sb_sigma),
                sigma_data: self.sigma_data.or(file.sigma_data).or(d.sigma_data),
                p_mean: self.p_mean.or(file.p_mean).or(d.p_mean),
                p_std: self.p_std.or(file.p_std).or(d.p_std),
                label_column: self.label_column.or(file.label_column).or(d.label_column),
                mults: self.mults.or(file.mults).or(d.mults),
            } };
        }
        let s = pick!(
            data,
            method,
            path,
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
            engine,
            source,
            coupling,
            cfm_sigma,
            time_grid,
            conditional,
            label_dropout,
            process,
            arch,
            base,
            res_blocks,
            attention
        );
        s.validate()?;
        // A flag given on the command line is refused where it does not apply, even at its
        // default value (a config file may hold every key: `train --config RUN/config.toml`).
        s.check_applicable(|key| given.contains(&key))?;
        Ok((s, self.out.or(file.out)))
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
        let file: TrainOpts =
            parse_toml("width = 64\nlr = 0.01\nmethod = \"dsm\"\nsde = \"ve\"\nout = \"x\"\n")
                .unwrap();
        let flags = TrainOpts {
            width: Some(32),
            ..Default::default()
        };
        let (s, out) = flags.resolve(file).unwrap();
        assert_eq!(s.width, 32); // flag wins
        assert_eq!(s.lr, 0.01); // file wins over default
        assert_eq!((s.method, s.sde), (TrainMethod::Dsm, SdeKind::Ve));
        assert_eq!(s.depth, TrainSettings::default().depth); // default
        assert_eq!(out, Some(PathBuf::from("x")));
    }

    /// A file of flags names an unknown choice with the choices (the line-numbered key errors
    /// are the library's `parse_toml`, tested there).
    #[test]
    fn unknown_choices_list_the_names() {
        let e = parse_toml::<TrainOpts>("method = \"gan\"\nwidht = 3\n").unwrap_err();
        assert!(
            e.contains("gan") && e.contains("cfm") && e.contains("line 1"),
            "{e}"
        );
        assert!(!e.contains('\n'));
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
            let opts: TrainOpts = parse_toml(&format!("{k} = {v}\n")).unwrap();
            let e = opts.resolve(TrainOpts::default()).unwrap_err().to_string();
            assert!(e.contains(&k.replace('_', "-")), "{k}: {e}");
        }
    }

    /// Every help line states the real default: each key of the serialised defaults appears in
    /// its flag's help text as `[default: value]`, and every setting has a flag.
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
