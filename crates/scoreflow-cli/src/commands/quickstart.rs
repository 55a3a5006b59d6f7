//! `scoreflow quickstart`: train the default model on a built-in data set, sample, evaluate
//! against held-out data, draw pictures and say where everything is.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::data::{self, Dataset};
use scoreflow::model::evaluate::{evaluate, EvalJob, EvalReport};
use scoreflow::model::{load_points_or_explain, Model, Plan, TrainSettings};
use scoreflow::solve::SamplerSpec;
use serde::Serialize;

use crate::cli::QuickstartArgs;
use crate::commands::plot::{draw_run, PlotJob};
use crate::commands::train::{train, TrainSummary};
use crate::output::{default_run_dir, human_secs, Mode};

/// Samples drawn and held-out points compared against.
const N_EVAL: usize = 10_000;

/// What quickstart reports (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct QuickstartSummary {
    /// Training.
    pub train: TrainSummary,
    /// Sample file.
    pub samples: PathBuf,
    /// NFE per sample.
    pub nfe: usize,
    /// Metrics against held-out data.
    pub eval: EvalReport,
    /// Pictures.
    pub pictures: Vec<PathBuf>,
    /// Wall time of the whole quickstart, seconds.
    pub wall_s: f64,
}

/// Runs `scoreflow quickstart`.
pub fn run(args: QuickstartArgs, mode: Mode) -> Result<()> {
    let started = Instant::now();
    if args.data.parse::<Dataset>().is_err() {
        // Quickstart is for the built-in sets; the error lists them.
        load_points_or_explain(&args.data, None).map(|_| ())?;
        bail!(
            "quickstart uses a built-in data set; to train on {} run `scoreflow train --data {}`",
            args.data,
            args.data
        );
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir(&args.data, "quickstart"));
    let settings = TrainSettings {
        data: args.data.clone(),
        steps: args.steps,
        seed: args.seed,
        ..TrainSettings::default()
    };
    settings.validate()?;
    let train_summary = train(&settings, Some(dir.clone()), false, mode, "quickstart")?;
    if train_summary.stopped {
        mode.say(format!(
            "interrupted: the checkpoint is in {}; continue with `scoreflow train --resume {}`",
            dir.display(),
            dir.display()
        ));
        return Ok(());
    }

    let run = Model::load(&dir)?;
    let t = Instant::now();
    let spec = SamplerSpec::new(run.default_sampler());
    let out = run.sample(&Plan::new(N_EVAL, None), args.seed, &spec)?;
    let samples_path = dir.join("samples.csv");
    data::write_points(&samples_path, &out.points)?;
    let sample_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let report = evaluate(&EvalJob {
        model: &run,
        samples: &out.points,
        samples_from: format!(
            "{} points, sampler {} (NFE {})",
            out.points.len(),
            spec.sampler.name(),
            out.stats.nfe_per_path()
        ),
        reference: None,
        n: N_EVAL,
        seed: args.seed,
        nll: 0,
    })?;
    crate::output::write_json(&dir.join("metrics.json"), &report)?;
    let eval_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let held = run.held_out(5000, args.seed)?;
    let pictures = draw_run(&PlotJob {
        run: &run,
        samples: &out.points,
        data: &held,
        times: &[0.0, 0.5, 0.9, 1.0],
        grid: 20,
        gif: true,
        density: false,
        diagnose: false,
        seed: args.seed,
        out_dir: &dir,
    })?;
    let plot_s = t.elapsed().as_secs_f64();

    let summary = QuickstartSummary {
        train: train_summary.clone(),
        samples: samples_path.clone(),
        nfe: out.stats.nfe_per_path(),
        eval: report.clone(),
        pictures: pictures.clone(),
        wall_s: started.elapsed().as_secs_f64(),
    };
    mode.json(&summary)?;
    if mode == Mode::Normal {
        crate::outln!(
            "trained {} steps in {} ({:.0} steps/s), final loss {:.4}",
            train_summary.step,
            human_secs(train_summary.wall_s),
            train_summary.steps_per_s,
            train_summary.final_loss
        );
        crate::outln!(
            "sampled {} points with {} ({} NFE) in {}",
            out.points.len(),
            spec.sampler.name(),
            summary.nfe,
            human_secs(sample_s)
        );
        crate::outln!(
            "evaluated in {}:\n{}",
            human_secs(eval_s),
            crate::commands::eval::table(&report)
        );
        crate::outln!("drew {} pictures in {}", pictures.len(), human_secs(plot_s));
        crate::outln!(
            "\nrun directory {} ({} in all):",
            dir.display(),
            human_secs(summary.wall_s)
        );
        crate::outln!("  config.toml        the settings (rerun with `scoreflow train --config {}/config.toml --out NEW_DIR`)", dir.display());
        crate::outln!("  model.safetensors  EMA weights (PyTorch nn.Sequential names); meta.json: architecture, normalisation");
        crate::outln!("  train_log.csv      step, loss, lr, grad_norm, steps_per_s");
        crate::outln!(
            "  samples.csv        {} samples; metrics.json: the table above",
            out.points.len()
        );
        for p in &pictures {
            crate::outln!(
                "  {:<18} {}",
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                picture_note(p)
            );
        }
        crate::outln!("next: scoreflow sample {0} --sampler dopri5 | scoreflow eval {0} --nll 2000 | scoreflow plot {0} --density", dir.display());
    }
    Ok(())
}

fn picture_note(p: &std::path::Path) -> &'static str {
    match p.file_name().and_then(|f| f.to_str()) {
        Some("samples.png") => "data vs samples",
        Some("field.png") => "the learned velocity at t = 0, 0.5, 0.9, 1",
        Some("trajectories.png") => "sample paths from noise to data",
        Some("loss.png") => "training loss and learning rate",
        Some("flow.gif") => "samples flowing from noise to data",
        _ => "",
    }
}
