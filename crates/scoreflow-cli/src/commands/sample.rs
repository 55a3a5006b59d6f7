//! `scoreflow sample`: draw samples from a trained run, optionally one shard of a larger job.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::data::{load_points, Dataset, PointWriter, Points};
use scoreflow::model::sampling::{parse_shard, trajectories_csv};
use scoreflow::model::{Block, Model, Plan};
use scoreflow::solve::SamplerSpec;
use serde::Serialize;

use crate::cli::SampleArgs;
use crate::output::{atomic_write, human_secs, Mode};

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

/// The sampler settings of `args` for `model`, validated.
pub fn sampler_spec(args: &SampleArgs, model: &Model) -> Result<SamplerSpec> {
    let spec = args.options.spec(
        args.sampler.unwrap_or_else(|| model.default_sampler()),
        args.trajectories,
    );
    spec.validate()?;
    model.check_sampler(spec.sampler)?;
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

/// Runs `scoreflow sample`: blocks stream straight into the output file (memory does not grow
/// with -n; trajectories, when asked, are kept for their own file).
pub fn run(args: SampleArgs, mode: Mode) -> Result<()> {
    let (model, exact_out) = match (&args.run, &args.exact) {
        (Some(run), None) => (Model::load(run)?, None),
        (None, Some(name)) => {
            let dataset: Dataset = name.parse()?;
            let sde = args.sde.unwrap_or_default();
            let model = Model::exact_score(dataset, sde)?;
            (
                model,
                Some(format!("exact-{}-{}", dataset.name(), sde.name())),
            )
        }
        _ => bail!("give a run directory or --exact NAME (not both)"),
    };
    let spec = sampler_spec(&args, &model)?;
    let from = match &args.from {
        Some(p) => Some(load_points(p, Some(model.dim()))?),
        None => None,
    };
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let dir = model.dir.clone().unwrap_or_default();
    let stem = exact_out.unwrap_or_else(|| "samples".into());
    let out = args.out.clone().unwrap_or_else(|| match shard {
        Some((k, n)) => dir.join(format!("{stem}-{k}-of-{n}.csv")),
        None => dir.join(format!("{stem}.csv")),
    });
    check_output_path(&out)?;
    let plan = Plan::new(from.as_ref().map_or(args.n, Points::len), shard);
    let range = plan.points();
    let pb = mode.progress(range.len() as u64, "sample");
    let started = Instant::now();
    let mut writer = PointWriter::create(&out, range.len(), model.dim())?;
    let mut trajectories = Vec::new();
    let sink = |block: Block| {
        writer.write(&block.points)?;
        if !block.trajectory.is_empty() {
            trajectories.push((block.start, block.trajectory));
        }
        pb.set_position((block.start + block.points.len() - range.start) as u64);
        Ok(())
    };
    let stats = match &from {
        Some(x0) => model.transport_each(x0, &spec, sink)?,
        None => model.sample_each(&plan, args.seed, &spec, sink)?,
    };
    writer.finish()?;
    pb.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    if stats.points == 0 {
        mode.say(format!(
            "shard {} holds no points of a {}-point job (more shards than blocks of 4096)",
            args.shard.unwrap_or_default(),
            args.n
        ));
    }
    let traj = if args.trajectories {
        let p = trajectory_path(&out);
        atomic_write(&p, trajectories_csv(&trajectories, model.dim()).as_bytes())?;
        Some(p)
    } else {
        None
    };
    let summary = SampleSummary {
        out: out.clone(),
        n: stats.points,
        first_index: range.start,
        n_total: plan.n_total,
        sampler: spec.sampler.name().into(),
        nfe: stats.nfe_per_path(),
        wall_s: wall,
        trajectories: traj.clone(),
    };
    mode.json(&summary)?;
    let what = match (shard, &args.from) {
        (_, Some(p)) => format!(" from the {} points of {}", plan.n_total, p.display()),
        (None, None) => String::new(),
        (Some((k, n)), None) => format!(
            " (shard {k}/{n}: points {}..{} of {})",
            range.start, range.end, args.n
        ),
    };
    mode.say(format!(
        "sampled {} points{what} with {} in {}: NFE {} per sample\nwrote {}{}",
        stats.points,
        spec.sampler.name(),
        human_secs(wall),
        summary.nfe,
        out.display(),
        traj.map(|p| format!(" and {}", p.display()))
            .unwrap_or_default()
    ));
    Ok(())
}
