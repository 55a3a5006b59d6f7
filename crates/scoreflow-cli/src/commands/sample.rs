//! `scoreflow sample`: draw samples from a trained run, optionally one shard of a larger job.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::data;
use serde::Serialize;

use crate::cli::SampleArgs;
use crate::output::{atomic_write, human_secs, Mode};
use crate::run::{Run, SamplerSpec};
use crate::sampling::{parse_shard, trajectories_csv, Plan, SampleOutput};

/// What `scoreflow sample` reports (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct SampleSummary {
    /// Output file.
    pub out: PathBuf,
    /// Points written.
    pub n: usize,
    /// Global index of the first point written.
    pub first_index: usize,
    /// Points in the whole job.
    pub n_total: usize,
    /// Sampler.
    pub sampler: String,
    /// Field evaluations per sample path (mean over blocks).
    pub nfe: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Trajectory file, if written.
    pub trajectories: Option<PathBuf>,
}

/// The sampler settings of `args` for `run`.
pub fn sampler_spec(args: &SampleArgs, run: &Run) -> Result<SamplerSpec> {
    let spec = SamplerSpec {
        sampler: args.sampler.unwrap_or_else(|| run.default_sampler()),
        solver: args.solver.clone(),
        steps: args.steps,
        rtol: args.rtol,
        atol: args.atol,
        snr: args.snr,
        predictor: args.predictor.parse()?,
        corrector_steps: args.corrector_steps,
        denoise: args.denoise.as_deref().map(str::parse).transpose()?,
        step: args.step,
        trajectories: args.trajectories,
    };
    spec.validate()?;
    Ok(spec)
}

/// `<out>.trajectories.csv` beside the sample file.
fn trajectory_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "samples".into());
    out.with_file_name(format!("{stem}.trajectories.csv"))
}

/// Checks that an output path is a .csv or .npy file in an existing directory.
pub fn check_output_path(out: &Path) -> Result<()> {
    match out.extension().and_then(|e| e.to_str()) {
        Some("csv") | Some("npy") => {}
        _ => bail!("{}: the output must end in .csv or .npy", out.display()),
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!(
            "{}: directory {} does not exist",
            out.display(),
            parent.display()
        );
    }
    Ok(())
}

/// Runs `scoreflow sample`.
pub fn run(args: SampleArgs, mode: Mode) -> Result<()> {
    let run = Run::load(&args.run)?;
    let spec = sampler_spec(&args, &run)?;
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let out = args.out.clone().unwrap_or_else(|| match shard {
        Some((k, n)) => run.dir.join(format!("samples-{k}-of-{n}.csv")),
        None => run.dir.join("samples.csv"),
    });
    check_output_path(&out)?;
    let plan = Plan::new(args.n, shard);
    let range = plan.points();
    let pb = mode.progress(range.len() as u64, "sample");
    let started = Instant::now();
    let res: SampleOutput =
        run.sample(&plan, args.seed, &spec, |done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    if res.points.is_empty() {
        mode.say(format!(
            "shard {} holds no points of a {}-point job (more shards than blocks of 4096)",
            args.shard.unwrap_or_default(),
            args.n
        ));
    }
    data::write_points(&out, &res.points)?;
    let traj = if args.trajectories {
        let p = trajectory_path(&out);
        atomic_write(
            &p,
            trajectories_csv(&res.trajectories, run.dim()).as_bytes(),
        )?;
        Some(p)
    } else {
        None
    };
    let summary = SampleSummary {
        out: out.clone(),
        n: res.points.len(),
        first_index: range.start,
        n_total: args.n,
        sampler: spec.sampler.name().into(),
        nfe: res.nfe_per_path(),
        wall_s: wall,
        trajectories: traj.clone(),
    };
    mode.json(&summary)?;
    let what = match shard {
        Some((k, n)) => format!(
            " (shard {k}/{n}: points {}..{} of {})",
            range.start, range.end, args.n
        ),
        None => String::new(),
    };
    mode.say(format!(
        "sampled {} points{what} with {} in {}: NFE {} per sample\nwrote {}{}",
        res.points.len(),
        spec.sampler.name(),
        human_secs(wall),
        summary.nfe,
        out.display(),
        traj.map(|p| format!(" and {}", p.display()))
            .unwrap_or_default()
    ));
    Ok(())
}
