//! `scoreflow sample`: draw samples from a trained run, optionally one shard of a larger job.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::data::images::Tiles;
use scoreflow::data::{load_points, PointWriter, Points};
use scoreflow::inverse::Observation;
use scoreflow::model::sampling::{parse_shard, trajectories_csv};
use scoreflow::model::{Block, Guide, Model, Plan, TrainMethod, TrainSettings};
use scoreflow::solve::SamplerSpec;
use serde::Serialize;

use crate::cli::SampleArgs;
use crate::output::{atomic_write, human_secs, Mode};
use crate::plot::{self, Bounds, QuiverPanel};

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

/// The condition of `args`: class and guidance scale, observation and posterior method.
pub fn guide(args: &SampleArgs) -> Result<Guide> {
    let d = Guide::default();
    Ok(Guide {
        class: args.class,
        guidance: args.guidance,
        classifier_scale: args.classifier_scale,
        classifier: match &args.classifier {
            Some(p) => Some(Arc::new(Model::load_on(p, args.device)?)),
            None => None,
        },
        observation: match &args.observe {
            Some(p) => Some(Arc::new(Observation::load(p)?)),
            None => None,
        },
        posterior: args.posterior.unwrap_or(d.posterior),
        zeta: args.zeta.unwrap_or(d.zeta),
    })
}

/// The prior | condition term | posterior quiver panels at flow time 0.7 (model time by
/// [`scoreflow::model::ModelKind::model_time`]) on a 20 × 20 grid around the samples.
fn condition_plot(model: &Model, guide: &Guide, samples: &[[f64; 2]], path: &Path) -> Result<()> {
    let t = model.kind.model_time(0.7)?;
    let held = crate::commands::plot::pairs(&model.held_out(2000, 0)?);
    let bounds = Bounds::around(&[samples, &held]);
    let origins = bounds.grid(20);
    let at = Points::new(origins.iter().flatten().copied().collect(), 2)?;
    let prior = model.guided_field_at(&Guide::default(), &at, t)?;
    let post = model.guided_field_at(guide, &at, t)?;
    let term: Vec<[f64; 2]> = prior
        .rows()
        .zip(post.rows())
        .map(|(a, b)| [b[0] - a[0], b[1] - a[1]])
        .collect();
    let what = if guide.observation.is_some() {
        ("likelihood term", "posterior")
    } else {
        ("guidance term G·(c − u)", "guided")
    };
    let panel = |title: String, vectors: Vec<[f64; 2]>| QuiverPanel {
        title,
        origins: origins.clone(),
        vectors,
    };
    plot::quiver(
        path,
        &[
            panel(
                "prior (flow t = 0.7)".to_string(),
                crate::commands::plot::pairs(&prior),
            ),
            panel(what.0.to_string(), term),
            panel(what.1.to_string(), crate::commands::plot::pairs(&post)),
        ],
        bounds,
        Some(samples),
    )
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
    let (model, exact_out) = match (&args.run, args.exact) {
        (Some(run), None) => (Model::load_on(run, args.device)?, None),
        (None, Some(dataset)) => {
            let settings = TrainSettings {
                method: args.method.unwrap_or(TrainMethod::Dsm),
                sde: args.sde.unwrap_or_default(),
                ..TrainSettings::default()
            };
            let model = Model::exact_for(dataset, &settings)?;
            let what = match settings.method {
                TrainMethod::Dsm => settings.sde.name(),
                m => m.name(),
            };
            (model, Some(format!("exact-{}-{what}", dataset.name())))
        }
        _ => bail!("give a run directory or --exact NAME (not both)"),
    };
    let spec = sampler_spec(&args, &model)?;
    let guide = guide(&args)?;
    guide.validate(model.classes())?;
    let from = match &args.from {
        Some(p) => Some(load_points(p, Some(model.dim()))?),
        None => None,
    };
    if from.is_some() && !guide.is_none() {
        bail!("--from carries given points along the flow; it does not combine with --class or --observe");
    }
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
    if let Some(p) = &args.plot {
        if guide.is_none() || model.dim() != 2 {
            bail!(
                "{}: --plot draws a 2-D model's fields under --class or --observe",
                p.display()
            );
        }
    }
    let mut shown: Vec<[f64; 2]> = Vec::new();
    let mut first: Vec<f64> = Vec::new();
    let want = if model.image.is_some() {
        GRID_IMAGES
    } else {
        0
    };
    let sink = |block: Block| {
        writer.write(&block.points)?;
        let room = (want * model.dim()).saturating_sub(first.len());
        first.extend(block.points.as_slice().iter().take(room));
        if args.plot.is_some() && shown.len() < 3000 {
            shown.extend(block.points.rows().take(3000).map(|r| [r[0], r[1]]));
        }
        if !block.trajectory.is_empty() {
            trajectories.push((block.start, block.trajectory));
        }
        pb.set_position((block.start + block.points.len() - range.start) as u64);
        Ok(())
    };
    let stats = match &from {
        Some(x0) => model.transport_each(x0, &spec, sink)?,
        None => model.sample_guided_each(&plan, args.seed, &spec, &guide, sink)?,
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
    if let Some(p) = &args.plot {
        condition_plot(&model, &guide, &shown, p)?;
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
        n_total: plan.n_total,
        sampler: spec.sampler.name().into(),
        nfe: stats.nfe_per_path(),
        wall_s: wall,
        trajectories: traj.clone(),
        grid: grid.clone(),
        device: args.device.to_string(),
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
    let by = match (&args.classifier, guide.classifier_gamma()) {
        (Some(p), Some(s)) => format!(", classifier {} at scale {s}", p.display()),
        (None, Some(s)) => format!(", exact classifier at scale {s}"),
        _ => String::new(),
    };
    let given = match (&guide.class, &guide.observation) {
        (Some(k), None) => format!(" of class {k} (guidance {}{by})", guide.guidance),
        (None, Some(_)) => format!(" given the observation ({})", guide.posterior.name()),
        (Some(k), Some(_)) => format!(
            " of class {k} (guidance {}) given the observation ({})",
            guide.guidance,
            guide.posterior.name()
        ),
        (None, None) => String::new(),
    };
    mode.say(format!(
        "sampled {} points{given}{what} with {} in {}: NFE {} per sample\nwrote {}{}",
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
