//! `scoreflow train`: settings → data, model, objective → the library's training loop, with a
//! progress bar, `train_log.csv`, periodic checkpoints and Ctrl-C handling.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::device::DeviceChoice;
use scoreflow::model::{TrainSettings, TrainingRun, CONFIG_FILE, LOG_FILE};
use scoreflow::train::{Control, StepInfo};
use serde::Serialize;

use crate::cli::TrainArgs;
use crate::config::TrainOpts;
use crate::output::{create_run_dir, default_run_dir, human_secs, LogRow, Mode, TrainLog};

/// The settings of a new run (flags over `--config` over defaults) and its directory, or of a
/// resumed run (its `config.toml`, where only `--steps` and `--checkpoint-every` may be
/// changed) and that directory.
pub fn settings_for(args: &TrainArgs) -> Result<(TrainSettings, Option<PathBuf>)> {
    if let Some(run) = &args.resume {
        let cfg = run.join(CONFIG_FILE);
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
        s.validate()?;
        return Ok((s, Some(run.clone())));
    }
    let file = match &args.config {
        Some(p) => TrainOpts::from_file(p)?,
        None => TrainOpts::default(),
    };
    args.opts.clone().resolve(file)
}

/// Runs `scoreflow train`.
pub fn run(args: TrainArgs, mode: Mode) -> Result<()> {
    let (settings, out) = settings_for(&args)?;
    let summary = train_on(
        &settings,
        out,
        args.resume.is_some(),
        mode,
        "train",
        args.device,
    )?;
    mode.json(&summary)?;
    if summary.stopped {
        mode.say(format!(
            "interrupted at step {}/{}: checkpoint saved; continue with `scoreflow train --resume {}`",
            summary.step,
            summary.total_steps,
            summary.run_dir.display()
        ));
    } else {
        mode.say(format!(
            "trained {} steps in {} ({:.1} steps/s), final loss {:.4} (mean of the last {} steps)\nrun directory: {}",
            summary.step,
            human_secs(summary.wall_s),
            summary.steps_per_s,
            summary.final_loss,
            summary.final_loss_window,
            summary.run_dir.display()
        ));
    }
    Ok(())
}

/// What a training run reports (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Data set or file.
    pub data: String,
    /// Objective.
    pub method: String,
    /// Steps completed.
    pub step: usize,
    /// Steps asked for.
    pub total_steps: usize,
    /// True when stopped early by Ctrl-C.
    pub stopped: bool,
    /// Mean loss of the last `final_loss_window` steps.
    pub final_loss: f64,
    /// Steps averaged in `final_loss`.
    pub final_loss_window: usize,
    /// Wall time of this invocation's training, seconds.
    pub wall_s: f64,
    /// Steps per second in this invocation.
    pub steps_per_s: f64,
    /// Trainable parameters.
    pub params: usize,
    /// Step engine.
    pub engine: String,
    /// Device the steps ran on.
    pub device: String,
}

/// Installs the Ctrl-C handler once; the flag it sets asks the training loop to checkpoint and stop.
fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // If a handler cannot be installed, Ctrl-C simply kills the process; the last periodic
        // checkpoint stays valid because every file is written atomically.
        let _ = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C: give up waiting for the checkpoint.
                std::process::exit(130);
            }
        });
        flag
    })
    .clone()
}

/// Trains (or resumes) the run described by `settings` in `out` (default
/// `runs/<data>-<method>-<time>`) on the CPU, writing its run directory.
pub fn train(
    settings: &TrainSettings,
    out: Option<PathBuf>,
    resume: bool,
    mode: Mode,
    label: &str,
) -> Result<TrainSummary> {
    train_on(settings, out, resume, mode, label, DeviceChoice::Cpu)
}

/// [`train`] on `device`.
pub fn train_on(
    settings: &TrainSettings,
    out: Option<PathBuf>,
    resume: bool,
    mode: Mode,
    label: &str,
    device: DeviceChoice,
) -> Result<TrainSummary> {
    let dir = out.unwrap_or_else(|| default_run_dir(&settings.data, settings.method.name()));
    let (run, mut log) = if resume {
        let run = TrainingRun::resume_on(settings, &dir, device)?;
        let mut log = if dir.join(LOG_FILE).exists() {
            TrainLog::load(&dir.join(LOG_FILE))?
        } else {
            TrainLog::default()
        };
        log.truncate_after(run.trainer.step());
        (run, log)
    } else {
        // Open the device before creating the directory: a missing GPU leaves nothing behind.
        device.open()?;
        create_run_dir(&dir)?;
        (
            TrainingRun::start_on(settings, &dir, device)?,
            TrainLog::default(),
        )
    };
    let mut batches = run.minibatches()?;
    let TrainingRun {
        mut trainer,
        source,
        kind,
        objective,
        ..
    } = run;
    let params = trainer.num_params();
    let start_step = trainer.step();
    let total = settings.steps;
    let coupling = settings.coupling()?;
    mode.say(format!(
        "{label}: {} | {}{} | {} ({} parameters) | {} steps, batch {} | {}{}",
        source.describe(),
        kind,
        if kind.is_velocity() && coupling != Default::default() {
            format!(", {coupling} coupling")
        } else {
            String::new()
        },
        trainer.meta().model.describe(),
        params,
        total,
        settings.batch,
        if device.is_gpu() {
            format!("device {device} | ")
        } else {
            String::new()
        },
        if resume {
            format!("resuming at step {start_step}")
        } else {
            format!("run directory {}", dir.display())
        }
    ));

    // Checkpoints are driven from here, not by the library's timer: at every multiple of
    // --checkpoint-every the callback first saves train_log.csv and then returns `Stop`, on
    // which the library writes the checkpoint, and training continues with another call. So
    // the log on disk always reaches at least the step of the checkpoint on disk, and resuming
    // after a crash (even kill -9) truncates it to that step: no row is lost or duplicated.
    let every = settings.checkpoint_every;
    let stop = interrupt_flag();
    let pb = mode.progress(total as u64, label);
    pb.set_position(start_step as u64);
    let log_path = dir.join(LOG_FILE);
    let mut save_error: Option<anyhow::Error> = None;
    let mut interrupted = false;
    let started = Instant::now();
    let outcome = loop {
        let result = trainer.run(objective.as_ref(), batches.as_mut(), &mut |i: &StepInfo| {
            log.rows.push(LogRow {
                step: i.step,
                loss: i.loss,
                lr: i.lr,
                grad_norm: i.grad_norm,
                steps_per_s: i.steps_per_sec,
            });
            pb.set_position(i.step as u64);
            if i.step.is_multiple_of(10) || i.step == i.total {
                pb.set_message(format!(
                    "loss {:.4} | {:.0} steps/s",
                    i.loss, i.steps_per_sec
                ));
            }
            let ctrl_c = stop.load(Ordering::SeqCst);
            if i.step < i.total && (ctrl_c || i.step.is_multiple_of(every)) {
                interrupted |= ctrl_c;
                if let Err(e) = log.save(&log_path) {
                    save_error = Some(e);
                }
                return Control::Stop;
            }
            Control::Continue
        });
        if let Some(e) = save_error.take() {
            return Err(e);
        }
        let outcome = result.map_err(|e| match e {
            scoreflow::Error::Diverged { .. } => {
                anyhow::anyhow!(
                    "{e}; the last checkpoint in {} is intact (try a lower --lr or --clip 1)",
                    dir.display()
                )
            }
            e => e.into(),
        })?;
        if interrupted || outcome.step >= total {
            break outcome;
        }
    };
    pb.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    log.save(&log_path)?;
    let window = log.rows.len().min(100);
    let final_loss = log.rows[log.rows.len() - window..]
        .iter()
        .map(|r| r.loss)
        .sum::<f64>()
        / window.max(1) as f64;
    let done = outcome.step - start_step;
    Ok(TrainSummary {
        run_dir: dir,
        data: settings.data.clone(),
        method: kind.method().name().into(),
        step: outcome.step,
        total_steps: total,
        stopped: interrupted,
        final_loss,
        final_loss_window: window,
        wall_s: wall,
        steps_per_s: done as f64 / wall.max(1e-9),
        params,
        engine: trainer.engine_name().into(),
        device: device.to_string(),
    })
}
