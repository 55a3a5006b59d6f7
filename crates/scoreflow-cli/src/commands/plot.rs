//! `scoreflow plot`: pictures of a run (see [`crate::plot`] for the drawing itself).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use scoreflow::data::{self, Points};
use serde::Serialize;

use crate::cli::{PlotArgs, SamplerName};
use crate::output::{Mode, TrainLog};
use crate::plot::{self, Bounds, QuiverPanel, ScatterPanel, DATA_COLOR, P2, SAMPLE_COLOR};
use crate::run::{ModelSpec, Run, SamplerSpec, LOG_FILE};
use crate::sampling::Plan;

/// Host points as 2-D pairs (the first two coordinates).
pub fn pairs(p: &Points) -> Vec<P2> {
    p.rows()
        .map(|r| [r[0], r.get(1).copied().unwrap_or(0.0)])
        .collect()
}

/// What `scoreflow plot` wrote (`--json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlotSummary {
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// The pictures to draw and their inputs.
pub struct PlotJob<'a> {
    /// The run.
    pub run: &'a Run,
    /// Samples (data units).
    pub samples: &'a Points,
    /// Data points to compare with (data units).
    pub data: &'a Points,
    /// Flow times of the quiver panels.
    pub times: &'a [f64],
    /// Arrows per side.
    pub grid: usize,
    /// Also the GIF.
    pub gif: bool,
    /// Seed for trajectories.
    pub seed: u64,
    /// Output directory.
    pub out_dir: &'a Path,
}

/// The trajectory sampler: the run's ODE (Euler/RK4 for flow matching, the probability-flow
/// ODE for score models) with every step kept.
fn trajectory_spec(run: &Run, steps: usize) -> SamplerSpec {
    let mut spec = match run.spec {
        ModelSpec::Cfm { .. } => SamplerSpec::new(SamplerName::Euler),
        ModelSpec::Dsm { .. } => SamplerSpec {
            solver: "rk4".into(),
            ..SamplerSpec::new(SamplerName::Ode)
        },
    };
    spec.steps = Some(steps);
    spec.trajectories = true;
    spec
}

/// Trajectories (one `Vec` of states per point) of `n` points, in data units.
fn trajectories(run: &Run, n: usize, steps: usize, seed: u64) -> Result<(Vec<f64>, Vec<Vec<P2>>)> {
    let out = run.sample(
        &Plan::new(n, None),
        seed,
        &trajectory_spec(run, steps),
        |_| {},
    )?;
    let mut times = Vec::new();
    let mut paths: Vec<Vec<P2>> = Vec::new();
    for (_, traj) in &out.trajectories {
        let base = paths.len();
        for (k, (t, pts)) in traj.iter().enumerate() {
            if base == 0 {
                times.push(*t);
            }
            for (i, row) in pts.rows().enumerate() {
                if k == 0 {
                    paths.push(Vec::with_capacity(traj.len()));
                }
                paths[base + i].push([row[0], row[1]]);
            }
        }
    }
    Ok((times, paths))
}

/// Draws samples.png, field.png, trajectories.png, loss.png (when the log exists) and, with
/// `gif`, flow.gif. Returns the files written.
pub fn draw_run(job: &PlotJob) -> Result<Vec<PathBuf>> {
    let run = job.run;
    if run.dim() != 2 {
        bail!("pictures need 2-D data (this run is {}-D)", run.dim());
    }
    let mut files = Vec::new();
    let (data_p, samp_p) = (pairs(job.data), pairs(job.samples));
    let p = job.out_dir.join("samples.png");
    plot::scatter(
        &p,
        &[
            ScatterPanel {
                title: format!("data ({} held-out points)", data_p.len()),
                points: &data_p,
                color: DATA_COLOR,
            },
            ScatterPanel {
                title: format!("samples ({})", samp_p.len()),
                points: &samp_p,
                color: SAMPLE_COLOR,
            },
        ],
    )?;
    files.push(p);

    let bounds = Bounds::around(&[&data_p]);
    let origins = bounds.grid(job.grid.max(2));
    let mut panels = Vec::new();
    for &t in job.times {
        if !(0.0..=1.0).contains(&t) {
            bail!("--times: {t} is outside [0, 1] (flow time: 0 = noise, 1 = data)");
        }
        let (model_t, title) = match &run.spec {
            ModelSpec::Cfm { .. } => (t, format!("velocity at t = {t}")),
            ModelSpec::Dsm { .. } => {
                let sde = run.sde()?.expect("score model");
                let tau = (sde.t_max() * (1.0 - t)).clamp(sde.sampling_eps(), sde.t_max());
                (tau, format!("score at τ = {tau:.3} (t = {t})"))
            }
        };
        panels.push(QuiverPanel {
            title,
            vectors: run.field_at(&origins, model_t)?,
            origins: origins.clone(),
        });
    }
    let p = job.out_dir.join("field.png");
    plot::quiver(&p, &panels, bounds, Some(&data_p))?;
    files.push(p);

    let (times, paths) = trajectories(run, if job.gif { 2000 } else { 300 }, 100, job.seed)?;
    let p = job.out_dir.join("trajectories.png");
    plot::trajectories(&p, &paths[..paths.len().min(300)], Some(&data_p))?;
    files.push(p);

    let log_path = run.dir.join(LOG_FILE);
    if log_path.exists() {
        let log = TrainLog::load(&log_path)?;
        if !log.rows.is_empty() {
            let steps: Vec<f64> = log.rows.iter().map(|r| r.step as f64).collect();
            let loss: Vec<f64> = log.rows.iter().map(|r| r.loss).collect();
            let lr: Vec<f64> = log.rows.iter().map(|r| r.lr).collect();
            let p = job.out_dir.join("loss.png");
            plot::loss_curve(&p, &steps, &loss, Some(&lr))?;
            files.push(p);
        }
    }

    if job.gif {
        // ~40 frames over the path, then the final state held for a second.
        let every = (times.len() / 40).max(1);
        let mut frames: Vec<(f64, Vec<P2>)> = Vec::new();
        for k in (0..times.len())
            .step_by(every)
            .chain(std::iter::repeat_n(times.len() - 1, 10))
        {
            let t = match run.spec {
                ModelSpec::Cfm { .. } => times[k],
                // Show flow time for score models too (τ runs from T down to ε).
                ModelSpec::Dsm { .. } => 1.0 - times[k],
            };
            frames.push((t, paths.iter().map(|p| p[k]).collect()));
        }
        let p = job.out_dir.join("flow.gif");
        plot::flow_gif(&p, &frames, Some(&data_p), 8)?;
        files.push(p);
    }
    Ok(files)
}

/// Runs `scoreflow plot`.
pub fn run(args: PlotArgs, mode: Mode) -> Result<()> {
    let run = Run::load(&args.run)?;
    let out_dir = args.out_dir.clone().unwrap_or_else(|| run.dir.clone());
    if !out_dir.is_dir() {
        bail!("{}: no such directory", out_dir.display());
    }
    if args.density || args.diagnose {
        bail!("--density and --diagnose pictures are not available in this build yet");
    }
    let samples = match &args.samples {
        Some(p) => {
            if !p.exists() {
                bail!("{}: no such file", p.display());
            }
            data::load_points(p, Some(run.dim()))?
        }
        None if run.dir.join("samples.csv").exists() => {
            data::load_points(run.dir.join("samples.csv"), Some(run.dim()))?
        }
        None => {
            let spec = SamplerSpec::new(run.default_sampler());
            run.sample(&Plan::new(args.n, None), args.seed, &spec, |_| {})?
                .points
        }
    };
    let held = run.held_out(args.n.max(2000), args.seed)?;
    let files = draw_run(&PlotJob {
        run: &run,
        samples: &samples,
        data: &held,
        times: &args.times,
        grid: args.grid,
        gif: args.gif,
        seed: args.seed,
        out_dir: &out_dir,
    })?;
    mode.json(&PlotSummary {
        files: files.clone(),
    })?;
    for f in files {
        mode.say(format!("wrote {}", f.display()));
    }
    Ok(())
}
