//! `scoreflow plot`: pictures of a run (see [`crate::plot`] for the drawing itself).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use scoreflow::data::{self, Points};
use scoreflow::diagnostics::diagnose;
use scoreflow::likelihood::LikelihoodOptions;
use std::sync::Arc;

use plotters::style::RGBColor;
use scoreflow::model::conditional::{guidance_sweep, ClassRule, GuidanceSweep, SweepJob, Swept};
use scoreflow::model::{Guide, Model, ModelKind, Plan, LOG_FILE};
use scoreflow::sde::SdeKind;
use scoreflow::solve::{Method, SamplerName, SamplerSpec};
use scoreflow::tensor::{self, DType};
use serde::Serialize;

use crate::cli::PlotArgs;
use crate::commands::sample::{GRID_IMAGES, GRID_TILES};
use crate::output::{Mode, TrainLog};
use crate::plot::{
    self, Bounds, ColorMap, HeatPanel, LinePanel, QuiverPanel, ScatterPanel, Series, DATA_COLOR,
    P2, SAMPLE_COLOR,
};
use scoreflow::data::images::{Memorisation, Tiles};

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
    /// Image runs: the memorisation check of neighbours.png.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memorisation: Option<Memorisation>,
}

/// Samples drawn in neighbours.png (each beside its nearest training image).
const NEIGHBOUR_PAIRS: usize = 20;
/// Samples animated in flow.gif.
const GIF_IMAGES: usize = 20;

/// Image runs: samples.png (a grid of the first samples), flow.gif (noise → images along the
/// run's ODE, for flow and DSM runs), neighbours.png (samples beside their nearest training
/// images) and loss.png. Returns the files and the memorisation check.
fn draw_images(
    run: &Model,
    samples: &Points,
    seed: u64,
    out_dir: &Path,
) -> Result<(Vec<PathBuf>, Memorisation)> {
    let f = run.image.expect("an image run");
    let (shape, levels) = (f.shape(), f.levels);
    let rows: Vec<&[f64]> = samples.rows().take(GRID_IMAGES).collect();
    if rows.is_empty() {
        bail!("no samples to draw");
    }
    let mut files = Vec::new();
    let p = out_dir.join("samples.png");
    GRID_TILES.write(&p, &rows, shape, levels)?;
    files.push(p);

    if let Some(spec) = trajectory_spec(run, 100) {
        let out = run.sample(&Plan::new(GIF_IMAGES, None), seed, &spec)?;
        let traj = &out
            .trajectories
            .first()
            .expect("one block of trajectories")
            .1;
        // ~40 frames along the path, then the final state held for 10 frames.
        let every = (traj.len() / 40).max(1);
        let ks: Vec<usize> = (0..traj.len())
            .step_by(every)
            .chain(std::iter::repeat_n(traj.len() - 1, 10))
            .collect();
        let tiles = Tiles {
            columns: 5,
            ..GRID_TILES
        };
        let mut frames = Vec::with_capacity(ks.len());
        for k in ks {
            let imgs: Vec<&[f64]> = traj[k].1.rows().collect();
            frames.push(tiles.render(&imgs, shape, levels)?);
        }
        let p = out_dir.join("flow.gif");
        plot::image_gif(&p, &frames, shape.0, 80)?;
        files.push(p);
    }

    let (train, test) = run.settings.image_split()?.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: the run's training images are not available for the neighbour panel",
            run.settings.data
        )
    })?;
    let mut pairs: Vec<&[f64]> = Vec::new();
    for s in samples.rows().take(NEIGHBOUR_PAIRS) {
        let (i, _) = train.nearest(s);
        pairs.push(s);
        pairs.push(train.pixels.row(i));
    }
    let p = out_dir.join("neighbours.png");
    GRID_TILES.write(&p, &pairs, shape, levels)?;
    files.push(p);
    let first =
        |x: &Points, n: usize| Points::new(x.rows().take(n).flatten().copied().collect(), x.dim());
    let memo = train.memorisation(
        &first(samples, NEIGHBOUR_PAIRS)?,
        &first(&test.pixels, NEIGHBOUR_PAIRS)?,
    )?;
    files.extend(draw_loss(run)?);
    Ok((files, memo))
}

/// loss.png from the run's training log, when it has one.
fn draw_loss(run: &Model) -> Result<Option<PathBuf>> {
    let log_path = run.dir.clone().unwrap_or_default().join(LOG_FILE);
    if !log_path.exists() {
        return Ok(None);
    }
    let log = TrainLog::load(&log_path)?;
    if log.rows.is_empty() {
        return Ok(None);
    }
    let steps: Vec<f64> = log.rows.iter().map(|r| r.step as f64).collect();
    let loss: Vec<f64> = log.rows.iter().map(|r| r.loss).collect();
    let lr: Vec<f64> = log.rows.iter().map(|r| r.lr).collect();
    let p = run.dir.clone().unwrap_or_default().join("loss.png");
    plot::loss_curve(&p, &steps, &loss, Some(&lr))?;
    Ok(Some(p))
}

/// The pictures to draw and their inputs.
pub struct PlotJob<'a> {
    /// The run.
    pub run: &'a Model,
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
    /// Also density.png.
    pub density: bool,
    /// Also curl.png and stiffness.png.
    pub diagnose: bool,
    /// Seed for trajectories.
    pub seed: u64,
    /// Output directory.
    pub out_dir: &'a Path,
}

/// The trajectory sampler: the run's ODE (Euler for flow matching, RK4 on the
/// probability-flow ODE for DSM models) with every step kept; `None` for noise-free score
/// models, which are sampled by Langevin dynamics (no deterministic path).
fn trajectory_spec(run: &Model, steps: usize) -> Option<SamplerSpec> {
    let mut spec = match run.kind {
        ModelKind::Cfm { .. } => SamplerSpec::new(SamplerName::Euler),
        ModelKind::Dsm { .. } | ModelKind::Edm { .. } => SamplerSpec {
            solver: Some(Method::Rk4),
            ..SamplerSpec::new(SamplerName::Ode)
        },
        ModelKind::NoiseFree { .. } | ModelKind::Classifier { .. } => return None,
    };
    spec.steps = Some(steps);
    spec.trajectories = true;
    Some(spec)
}

/// Flow times and trajectories (one `Vec` of states per point, data units) of `n` points.
fn trajectories(
    run: &Model,
    spec: &SamplerSpec,
    n: usize,
    seed: u64,
) -> Result<(Vec<f64>, Vec<Vec<P2>>)> {
    let out = run.sample(&Plan::new(n, None), seed, spec)?;
    let mut times = Vec::new();
    let mut paths: Vec<Vec<P2>> = Vec::new();
    for (_, traj) in &out.trajectories {
        let base = paths.len();
        for (k, (t, pts)) in traj.iter().enumerate() {
            if base == 0 {
                // Flow time for every model: τ runs from T down to ε for SDE models.
                times.push(if run.kind.is_velocity() { *t } else { 1.0 - *t });
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

/// Quiver panel title for flow time t.
fn field_title(run: &Model, t: f64, model_t: f64) -> String {
    match &run.kind {
        ModelKind::Cfm { .. } => format!("velocity at t = {t}"),
        ModelKind::Dsm { .. } => format!("score at τ = {model_t:.3} (t = {t})"),
        ModelKind::Edm { .. } => format!("score at σ = {model_t:.3} (t = {t})"),
        ModelKind::NoiseFree { .. } => "score (time-independent)".to_string(),
        ModelKind::Classifier { .. } => format!("classifier at t = {t}"),
    }
}

/// Draws samples.png, field.png, trajectories.png, loss.png (when the log exists) and, as
/// asked, flow.gif, density.png, curl.png and stiffness.png. Returns the files written.
pub fn draw_run(job: &PlotJob) -> Result<Vec<PathBuf>> {
    let run = job.run;
    if run.dim() != 2 {
        bail!("pictures need 2-D data (this run is {}-D)", run.dim());
    }
    for &t in job.times {
        if !(0.0..=1.0).contains(&t) {
            bail!("--times: {t} is outside [0, 1] (flow time: 0 = noise, 1 = data)");
        }
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
    let times: Vec<f64> = if matches!(run.kind, ModelKind::NoiseFree { .. }) {
        vec![1.0]
    } else {
        job.times.to_vec()
    };
    for &t in &times {
        let model_t = run.kind.model_time(t)?;
        let at = Points::new(origins.iter().flatten().copied().collect(), 2)?;
        panels.push(QuiverPanel {
            title: field_title(run, t, model_t),
            vectors: pairs(&run.field_at(&at, model_t)?),
            origins: origins.clone(),
        });
    }
    let p = job.out_dir.join("field.png");
    plot::quiver(&p, &panels, bounds, Some(&data_p))?;
    files.push(p);

    let traj = match trajectory_spec(run, 100) {
        Some(spec) => Some(trajectories(
            run,
            &spec,
            if job.gif { 2000 } else { 300 },
            job.seed,
        )?),
        None => None,
    };
    if let Some((_, paths)) = &traj {
        let p = job.out_dir.join("trajectories.png");
        plot::trajectories(&p, &paths[..paths.len().min(300)], Some(&data_p))?;
        files.push(p);
    }

    let log_path = run.dir.clone().unwrap_or_default().join(LOG_FILE);
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
        match &traj {
            Some((times, paths)) => {
                // ~40 frames over the path, then the final state held for 10 frames.
                let every = (times.len() / 40).max(1);
                let mut frames: Vec<(f64, Vec<P2>)> = Vec::new();
                for k in (0..times.len())
                    .step_by(every)
                    .chain(std::iter::repeat_n(times.len() - 1, 10))
                {
                    frames.push((times[k], paths.iter().map(|p| p[k]).collect()));
                }
                let p = job.out_dir.join("flow.gif");
                plot::flow_gif(&p, &frames, Some(&data_p), 8)?;
                files.push(p);
            }
            None => bail!(
                "--gif needs a deterministic flow; this {} run is sampled by Langevin dynamics",
                run.kind.method().name()
            ),
        }
    }
    if job.density {
        files.push(draw_density(job, bounds, &data_p)?);
    }
    if job.diagnose {
        files.extend(draw_diagnostics(job, bounds, &times)?);
    }
    Ok(files)
}

/// Grid cells per side of the density and diagnostic maps.
const MAP_GRID: usize = 60;

/// density.png: the model's log-density on a grid (exact ODE likelihood, Dopri5 1e-5) next to
/// the true log-density when the data set has one, on one colour scale spanning the 10 nats
/// below the 99th percentile (lower values share the darkest colour).
fn draw_density(job: &PlotJob, b: Bounds, data_p: &[P2]) -> Result<PathBuf> {
    let run = job.run;
    let grid = b.grid(MAP_GRID);
    let pts = Points::new(grid.iter().flatten().copied().collect(), 2)?;
    let opts = LikelihoodOptions {
        round_trip: false,
        ..LikelihoodOptions::default()
    };
    let lik = run.log_likelihood(&pts, &opts, &mut tensor::rng(job.seed))?;
    let mut panels = vec![HeatPanel {
        title: "model log-density".into(),
        values: lik.log_prob.clone(),
        n: MAP_GRID,
        cmap: ColorMap::Viridis,
        label: "log p(x)".into(),
        overlay: None,
        range: None,
    }];
    if let Some(truth) = run
        .dataset()
        .map(|d| d.log_density(&pts))
        .transpose()?
        .flatten()
    {
        panels.push(HeatPanel {
            title: format!("true log-density ({})", run.settings.data),
            values: truth
                .iter()
                .map(|v| if v.is_finite() { *v } else { f64::NAN })
                .collect(),
            n: MAP_GRID,
            cmap: ColorMap::Viridis,
            label: "log p(x)".into(),
            overlay: None,
            range: None,
        });
    } else {
        panels.push(HeatPanel {
            title: "model log-density with data".into(),
            values: lik.log_prob,
            n: MAP_GRID,
            cmap: ColorMap::Viridis,
            label: "log p(x)".into(),
            overlay: Some(data_p),
            range: None,
        });
    }
    // One colour scale for both panels: the top 10 nats below the 99th percentile.
    let hi = panels
        .iter()
        .map(|p| quantile99(&p.values))
        .fold(f64::NEG_INFINITY, f64::max);
    for p in &mut panels {
        p.range = Some((hi - 10.0, hi));
    }
    let p = job.out_dir.join("density.png");
    plot::heatmap(&p, &panels, b)?;
    Ok(p)
}

/// curl.png and stiffness.png: the curl ∂v₂/∂x₁ − ∂v₁/∂x₂ and the stiffness ratio
/// max|λ|/min|λ| of the Jacobian (log₁₀) on a grid, one panel per time, in data units.
fn draw_diagnostics(job: &PlotJob, b: Bounds, times: &[f64]) -> Result<Vec<PathBuf>> {
    let run = job.run;
    let grid = b.grid(MAP_GRID);
    let x = Points::new(grid.iter().flatten().copied().collect(), 2)?
        .to_tensor(&tensor::cpu(), DType::F32);
    let field = run.field_in_data_units()?;
    let (mut curl, mut stiff) = (Vec::new(), Vec::new());
    for &t in times {
        let model_t = run.kind.model_time(t)?;
        let d = diagnose(&field, &x, &tensor::times_like(&x, model_t), None)?;
        let title = field_title(run, t, model_t);
        curl.push(HeatPanel {
            title: format!("curl of the {title}"),
            values: d
                .points
                .iter()
                .map(|p| p.curl.unwrap_or(f64::NAN))
                .collect(),
            n: MAP_GRID,
            cmap: ColorMap::Diverging,
            label: "∂v₂/∂x₁ − ∂v₁/∂x₂".into(),
            overlay: None,
            range: None,
        });
        stiff.push(HeatPanel {
            title: format!("stiffness, {title}"),
            values: d
                .points
                .iter()
                .map(|p| p.stiffness_ratio.map_or(f64::NAN, f64::log10))
                .collect(),
            n: MAP_GRID,
            cmap: ColorMap::Viridis,
            label: "log₁₀ max|λ|/min|λ|".into(),
            overlay: None,
            range: None,
        });
    }
    let (pc, ps) = (
        job.out_dir.join("curl.png"),
        job.out_dir.join("stiffness.png"),
    );
    plot::heatmap(&pc, &curl, b)?;
    plot::heatmap(&ps, &stiff, b)?;
    Ok(vec![pc, ps])
}

/// The 99th percentile of the finite values (−∞ if none).
fn quantile99(v: &[f64]) -> f64 {
    let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return f64::NEG_INFINITY;
    }
    f.sort_by(f64::total_cmp);
    f[((f.len() - 1) as f64 * 0.99).round() as usize]
}

/// Scales a guidance sweep draws by default.
const SWEEP_SCALES: [f64; 4] = [0.0, 1.0, 2.0, 4.0];

/// What `scoreflow plot --class K` wrote and measured (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct GuidanceSummary {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// The numbers of the trade-off picture.
    pub sweep: GuidanceSweep,
}

/// `scoreflow plot --class K`: guidance.png (a panel of samples per scale over the data, class
/// K's data highlighted) and guidance-tradeoff.png (in-class share and spread against the
/// scale), from the library's [`guidance_sweep`].
fn guidance_pictures(args: &PlotArgs, mode: Mode) -> Result<()> {
    let class = args.class.expect("called with --class");
    let (model, out_dir) = match (&args.run, args.exact) {
        (Some(r), None) => (
            Model::load(r)?,
            args.out_dir.clone().unwrap_or_else(|| r.clone()),
        ),
        (None, Some(ds)) => (
            Model::exact_score(ds, SdeKind::Vp)?,
            args.out_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
        ),
        _ => bail!("give a run directory or --exact NAME (not both)"),
    };
    if !out_dir.is_dir() {
        bail!("{}: no such directory", out_dir.display());
    }
    if model.dim() != 2 {
        bail!(
            "the guidance pictures are of 2-D data; this model is {}-D",
            model.dim()
        );
    }
    let classifier = args
        .classifier
        .as_deref()
        .map(Model::load)
        .transpose()?
        .map(Arc::new);
    let one = |g: &Option<Vec<f64>>, default: f64| match g.as_deref() {
        None => Ok(default),
        Some([g]) => Ok(*g),
        Some(_) => Err(anyhow::anyhow!(
            "--classifier-scale sweeps the classifier scale: give one --guidance G (or none)"
        )),
    };
    let (swept, scales, guidance) = if args.classifier_scale.is_some() || classifier.is_some() {
        let scales = args
            .classifier_scale
            .clone()
            .unwrap_or(SWEEP_SCALES.to_vec());
        // G = 0: the unconditional field, so the classifier alone does the guiding.
        (Swept::ClassifierScale, scales, one(&args.guidance, 0.0)?)
    } else {
        let scales = args.guidance.clone().unwrap_or(SWEEP_SCALES.to_vec());
        (Swept::Guidance, scales, 1.0)
    };
    let base = Guide {
        class: Some(class),
        guidance,
        classifier: classifier.clone(),
        ..Guide::default()
    };
    let spec = SamplerSpec {
        steps: args.steps,
        ..SamplerSpec::new(args.sampler.unwrap_or_else(|| model.default_sampler()))
    };
    spec.validate()?;
    model.check_sampler(spec.sampler)?;
    let rule = ClassRule::for_model(&model, classifier.as_deref())?;
    let sweep = guidance_sweep(&SweepJob {
        model: &model,
        base: &base,
        swept,
        scales: &scales,
        spec: &spec,
        n: args.n,
        seed: args.seed,
        rule: &rule,
    })?;

    // Pictures: the data (grey) with class K's points (blue) under each scale's samples.
    let (data, labels) = match (model.dataset(), &rule) {
        (Some(ds), _) => {
            let (p, l) = ds.sample_labelled(2000, &mut tensor::rng(args.seed));
            (p, l.unwrap_or_default())
        }
        (None, ClassRule::Nearest { points, labels }) => (points.clone(), labels.clone()),
        (None, ClassRule::Mixture(_)) => bail!("no labelled data to draw"),
    };
    let all = pairs(&data);
    let mine: Vec<P2> = all
        .iter()
        .zip(&labels)
        .filter(|(_, &c)| c == class)
        .map(|(p, _)| *p)
        .collect();
    let shown: Vec<Vec<P2>> = sweep
        .points
        .iter()
        .map(|p| pairs(&p.samples).into_iter().take(3000).collect())
        .collect();
    let mut sets: Vec<&[P2]> = vec![&all];
    sets.extend(shown.iter().map(|s| s.as_slice()));
    let b = Bounds::around(&sets);
    let name = match swept {
        Swept::Guidance => "G",
        Swept::ClassifierScale => "S",
    };
    let panels: Vec<(String, Vec<plot::Layer>)> = sweep
        .points
        .iter()
        .zip(&shown)
        .map(|(p, s)| {
            (
                format!(
                    "{name} = {}: {:.1} % in class {class}",
                    p.scale,
                    100.0 * p.share
                ),
                vec![
                    (all.as_slice(), RGBColor(160, 160, 160), 0.25, 2),
                    (mine.as_slice(), DATA_COLOR, 0.45, 2),
                    (s.as_slice(), SAMPLE_COLOR, 0.35, 2),
                ],
            )
        })
        .collect();
    let pictures = out_dir.join("guidance.png");
    plot::layered_scatter(&pictures, &panels, b)?;

    let xs: Vec<f64> = sweep.points.iter().map(|p| p.scale).collect();
    let series = |label: &str, ys: Vec<f64>, color, dashed| Series {
        label: label.to_string(),
        points: xs.iter().zip(ys).map(|(&x, y)| [x, y]).collect(),
        color,
        dashed,
        markers: !dashed,
    };
    let flag = swept.name();
    let tradeoff = out_dir.join("guidance-tradeoff.png");
    plot::lines(
        &tradeoff,
        &[
            LinePanel {
                title: format!("class {class}: share of samples in the class"),
                x_label: format!("--{flag}"),
                y_label: "share in class".into(),
                series: vec![series(
                    "samples",
                    sweep.points.iter().map(|p| p.share).collect(),
                    SAMPLE_COLOR,
                    false,
                )],
                log_x: false,
                log_y: false,
            },
            LinePanel {
                title: "diversity: spread of in-class samples".into(),
                x_label: format!("--{flag}"),
                y_label: "RMS distance to their mean".into(),
                series: vec![
                    series(
                        "samples",
                        sweep.points.iter().map(|p| p.spread).collect(),
                        SAMPLE_COLOR,
                        false,
                    ),
                    series(
                        "class data",
                        vec![sweep.data_spread; xs.len()],
                        DATA_COLOR,
                        true,
                    ),
                ],
                log_x: false,
                log_y: false,
            },
            LinePanel {
                title: "sliced W₂ to the class's data".into(),
                x_label: format!("--{flag}"),
                y_label: "SW₂".into(),
                series: vec![
                    series(
                        "samples",
                        sweep.points.iter().map(|p| p.sw2).collect(),
                        SAMPLE_COLOR,
                        false,
                    ),
                    series(
                        "floor (fresh class data)",
                        vec![sweep.sw2_floor; xs.len()],
                        DATA_COLOR,
                        true,
                    ),
                ],
                log_x: false,
                log_y: false,
            },
        ],
    )?;
    let files = vec![pictures, tradeoff];
    let summary = GuidanceSummary {
        files: files.clone(),
        sweep,
    };
    mode.json(&summary)?;
    let s = &summary.sweep;
    let mut text = format!(
        "class {class}, {} samples per scale, classes by {}\n{:>8}{:>10}{:>10}{:>10}{:>6}\n",
        s.n, s.rule, flag, "share", "spread", "SW2", "NFE"
    );
    for p in &s.points {
        text.push_str(&format!(
            "{:>8}{:>10.4}{:>10.4}{:>10.4}{:>6}\n",
            p.scale, p.share, p.spread, p.sw2, p.nfe
        ));
    }
    text.push_str(&format!(
        "class data: spread {:.4}, SW2 floor {:.4}",
        s.data_spread, s.sw2_floor
    ));
    mode.say(text);
    for f in files {
        mode.say(format!("wrote {}", f.display()));
    }
    Ok(())
}

/// Runs `scoreflow plot`.
pub fn run(args: PlotArgs, mode: Mode) -> Result<()> {
    if args.class.is_some() {
        return guidance_pictures(&args, mode);
    }
    if args.guidance.is_some() || args.classifier_scale.is_some() || args.classifier.is_some() {
        bail!("--guidance, --classifier and --classifier-scale draw the guidance pictures of --class K");
    }
    let Some(run_dir) = args.run.clone() else {
        bail!("give a run directory (--exact NAME draws the guidance pictures of --class K)");
    };
    let run = Model::load(&run_dir)?;
    if run.kind.is_classifier() {
        return Err(run.kind.not_generative().into());
    }
    let out_dir = args.out_dir.clone().unwrap_or_else(|| run_dir.clone());
    if !out_dir.is_dir() {
        bail!("{}: no such directory", out_dir.display());
    }
    if args.gif && matches!(run.kind, ModelKind::NoiseFree { .. }) {
        bail!(
            "--gif needs a deterministic flow; this {} run is sampled by Langevin dynamics",
            run.kind.method().name()
        );
    }
    let samples = match &args.samples {
        Some(p) => {
            if !p.exists() {
                bail!("{}: no such file", p.display());
            }
            data::load_points(p, Some(run.dim()))?
        }
        None if run_dir.join("samples.csv").exists() => {
            data::load_points(run_dir.join("samples.csv"), Some(run.dim()))?
        }
        None => {
            let spec = SamplerSpec::new(run.default_sampler());
            // Image runs draw a grid's worth.
            let n = if run.image.is_some() {
                args.n.min(GRID_IMAGES)
            } else {
                args.n
            };
            run.sample(&Plan::new(n, None), args.seed, &spec)?.points
        }
    };
    if run.image.is_some() {
        let (files, memo) = draw_images(&run, &samples, args.seed, &out_dir)?;
        mode.json(&PlotSummary {
            files: files.clone(),
            memorisation: Some(memo.clone()),
        })?;
        for f in files {
            mode.say(format!("wrote {}", f.display()));
        }
        mode.say(format!(
            "memorisation check: a sample's nearest training image is {:.2} away on average, a held-out image's {:.2} ({} and {} images)",
            memo.sample_nn_mean, memo.held_out_nn_mean, memo.samples, memo.held_out
        ));
        return Ok(());
    }
    let held = run.held_out(args.n.max(2000), args.seed)?;
    let files = draw_run(&PlotJob {
        run: &run,
        samples: &samples,
        data: &held,
        times: &args.times,
        grid: args.grid,
        gif: args.gif,
        density: args.density,
        diagnose: args.diagnose,
        seed: args.seed,
        out_dir: &out_dir,
    })?;
    mode.json(&PlotSummary {
        files: files.clone(),
        memorisation: None,
    })?;
    for f in files {
        mode.say(format!("wrote {}", f.display()));
    }
    Ok(())
}
