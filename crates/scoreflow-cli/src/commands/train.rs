//! `scoreflow train`.

use anyhow::{bail, Result};

use crate::cli::TrainArgs;
use crate::config::{TrainOpts, TrainSettings};
use crate::output::Mode;

/// The settings of a new run (flags over `--config` over defaults), or of a resumed run (its
/// `config.toml`, where only `--steps` and `--checkpoint-every` may be changed).
pub fn settings_for(args: &TrainArgs) -> Result<TrainSettings> {
    if let Some(run) = &args.resume {
        let cfg = run.join("config.toml");
        if !cfg.exists() {
            bail!(
                "{}: not a scoreflow run directory (no config.toml)",
                run.display()
            );
        }
        let mut s = TrainSettings::from_file(&cfg)?;
        let TrainOpts {
            steps,
            checkpoint_every,
            ..
        } = args.opts.clone();
        let others = TrainOpts {
            steps: None,
            checkpoint_every: None,
            ..args.opts.clone()
        };
        if others != TrainOpts::default() {
            bail!("--resume continues a run with its own settings; only --steps and --checkpoint-every may be given");
        }
        s.steps = steps.unwrap_or(s.steps);
        s.checkpoint_every = checkpoint_every.unwrap_or(s.checkpoint_every);
        s.out = Some(run.clone());
        s.validate()?;
        return Ok(s);
    }
    let file = match &args.config {
        Some(p) => TrainOpts::from_file(p)?,
        None => TrainOpts::default(),
    };
    args.opts.clone().resolve(file)
}

/// Runs `scoreflow train`.
pub fn run(args: TrainArgs, mode: Mode) -> Result<()> {
    let settings = settings_for(&args)?;
    let _ = (settings, mode);
    bail!("'scoreflow train' is not available yet")
}
