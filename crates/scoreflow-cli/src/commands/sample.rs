//! `scoreflow sample`: draw samples from a trained run, optionally one shard of a larger job.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::data::images::Tiles;
use scoreflow::data::PointWriter;
use scoreflow::model::sampling::{parse_shard, trajectories_csv};
use scoreflow::model::{Model, Plan};
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
    /// Grid of the first samples (PNG), for image runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid: Option<PathBuf>,
    /// Device sampled on.
    pub device: String,
}

/// Images in a sample grid: the first 100 samples, 10 per row.
pub const GRID_IMAGES: usize = 100;

/// The grid layout of sample pictures: 10 per row, 2 background pixels apart, 4× magnified.
pub const GRID_TILES: Tiles = Tiles {
    columns: 10,
    padding: 2,
    scale: 4,
};

/// `<out>.png` beside the sample file.
fn grid_path(out: &Path) -> PathBuf {
    out.with_extension("png")
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
    let model = Model::load_on(&args.run, args.device)?;
    let spec = sampler_spec(&args, &model)?;
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let dir = model.dir.clone().unwrap_or_default();
    let out = args.out.clone().unwrap_or_else(|| match shard {
        Some((k, n)) => dir.join(format!("samples-{k}-of-{n}.csv")),
        None => dir.join("samples.csv"),
    });
    check_output_path(&out)?;
    let plan = Plan::new(args.n, shard);
    let range = plan.points();
    let pb = mode.progress(range.len() as u64, "sample");
    let started = Instant::now();
    let mut writer = PointWriter::create(&out, range.len(), model.dim())?;
    let mut trajectories = Vec::new();
    let mut first: Vec<f64> = Vec::new();
    let want = if model.image.is_some() {
        GRID_IMAGES
    } else {
        0
    };
    let stats = model.sample_each(&plan, args.seed, &spec, |block| {
        writer.write(&block.points)?;
        let room = (want * model.dim()).saturating_sub(first.len());
        first.extend(block.points.as_slice().iter().take(room));
        if !block.trajectory.is_empty() {
            trajectories.push((block.start, block.trajectory));
        }
        pb.set_position((block.start + block.points.len() - range.start) as u64);
        Ok(())
    })?;
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
    let grid = match model.image {
        Some(f) if !first.is_empty() => {
            let p = grid_path(&out);
            let rows: Vec<&[f64]> = first.chunks(model.dim()).collect();
            GRID_TILES.write(&p, &rows, f.shape(), f.levels)?;
            Some(p)
        }
        _ => None,
    };
    let summary = SampleSummary {
        out: out.clone(),
        n: stats.points,
        first_index: range.start,
        n_total: args.n,
        sampler: spec.sampler.name().into(),
        nfe: stats.nfe_per_path(),
        wall_s: wall,
        trajectories: traj.clone(),
        grid: grid.clone(),
        device: args.device.to_string(),
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
        stats.points,
        spec.sampler.name(),
        human_secs(wall),
        summary.nfe,
        out.display(),
        traj.map(|p| format!(" and {}", p.display()))
            .unwrap_or_default()
    ));
    if let Some(g) = grid {
        mode.say(format!(
            "wrote {} (the first samples as images)",
            g.display()
        ));
    }
    Ok(())
}
