//! `scoreflow chain A B C … --out DIR`: one flow per consecutive pair (A → B, B → C, …), each a
//! run directory under DIR trained by `scoreflow train --source A --data B`, then one animation
//! of the whole chain: n fresh draws of A carried by each flow in turn (the end points of one
//! leg are the start points of the next, `scoreflow sample --from`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::data::Points;
use scoreflow::metrics::{energy_distance, sliced_wasserstein2};
use scoreflow::model::{Model, Plan, Samples, TrainSettings};
use scoreflow::solve::{SamplerName, SamplerSpec};
use scoreflow::tensor;
use serde::Serialize;

use crate::cli::ChainArgs;
use crate::config::{chain_defaults, TrainOpts};
use crate::output::{atomic_write, default_run_dir, human_secs, Mode};
use crate::plot::{self, P2};

/// Random projections of the SW2 each leg reports.
const PROJECTIONS: usize = 256;

/// One leg of a chain (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct LegSummary {
    /// Source set or file.
    pub source: String,
    /// Target set or file.
    pub target: String,
    /// Its run directory.
    pub run_dir: PathBuf,
    /// Training wall time, seconds.
    pub train_s: f64,
    /// Mean loss of the last steps.
    pub final_loss: f64,
    /// SW2 between the animated points at the end of the leg and as many held-out targets.
    pub sw2: f64,
    /// SW2 between two held-out target sets of that size (the noise floor).
    pub sw2_floor: f64,
    /// Energy distance between the carried points and the held-out targets (unlike SW2, it
    /// tells the moment-matched shapes apart: every 1-D projection of two of them has the same
    /// mean and variance).
    pub energy: f64,
    /// Energy distance between the two held-out target sets (≈ 0 ± noise: the floor).
    pub energy_floor: f64,
}

/// What `scoreflow chain` reports (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    /// The chain's directory.
    pub out: PathBuf,
    /// The animation.
    pub gif: PathBuf,
    /// Points animated.
    pub n: usize,
    /// Euler steps per leg.
    pub euler_steps: usize,
    /// The legs in order.
    pub legs: Vec<LegSummary>,
    /// Wall time of the whole command, seconds.
    pub wall_s: f64,
}

/// The per-leg settings: the flags over the chain's small defaults over the library's, with
/// `source` and `data` set by the leg.
fn base_settings(args: &ChainArgs) -> Result<(TrainSettings, Option<PathBuf>)> {
    if args.opts.data.is_some() || args.opts.source.is_some() {
        bail!("chain sets each leg's --source and --data from its SHAPES; give them as positional arguments");
    }
    let opts = TrainOpts {
        data: Some(args.shapes[1].clone()),
        source: Some(args.shapes[0].clone()),
        ..args.opts.clone()
    };
    opts.resolve(chain_defaults())
}

/// Frames (flow time shifted by the leg index, points) of the collected trajectories of a job.
fn frames(samples: &Samples, leg: usize) -> Vec<(f64, Vec<P2>)> {
    let Some((_, first)) = samples.trajectories.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|k| {
            let t = leg as f64 + first[k].0;
            let pts = samples
                .trajectories
                .iter()
                .flat_map(|(_, traj)| traj[k].1.rows().map(|r| [r[0], r[1]]))
                .collect();
            (t, pts)
        })
        .collect()
}

/// Runs `scoreflow chain`.
pub fn run(args: ChainArgs, mode: Mode) -> Result<()> {
    let started = Instant::now();
    if args.shapes.len() < 2 {
        bail!("chain needs at least two shapes (A B: one flow A → B)");
    }
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    if args.euler_steps == 0 {
        bail!("--euler-steps must be at least 1");
    }
    let (base, out) = base_settings(&args)?;
    let out = out.unwrap_or_else(|| default_run_dir("chain", "flow"));
    let legs: Vec<(String, String)> = args
        .shapes
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect();
    // Validate every leg before training any (a bad name fails at once).
    let settings: Vec<TrainSettings> = legs
        .iter()
        .map(|(a, b)| {
            let s = TrainSettings {
                source: a.clone(),
                data: b.clone(),
                ..base.clone()
            };
            s.validate()?;
            s.training_data()?;
            s.source_data(2)?;
            Ok(s)
        })
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(&out)?;
    let spec = SamplerSpec {
        steps: Some(args.euler_steps),
        trajectories: true,
        ..SamplerSpec::new(SamplerName::Euler)
    };
    let mut all_frames: Vec<(f64, Vec<P2>)> = Vec::new();
    let mut summaries = Vec::new();
    let mut points: Option<Points> = None;
    for (i, ((a, b), s)) in legs.iter().zip(&settings).enumerate() {
        let stem = |name: &str| {
            std::path::Path::new(name)
                .file_stem()
                .map_or(name.to_string(), |f| f.to_string_lossy().into_owned())
        };
        let dir = out.join(format!("{}-{}-to-{}", i + 1, stem(a), stem(b)));
        let label = format!("leg {}/{} {a} → {b}", i + 1, legs.len());
        let trained = super::train::train(s, Some(dir.clone()), false, mode, &label)?;
        if trained.stopped {
            bail!(
                "interrupted while training {}; finish it with `scoreflow train --resume {}`",
                label,
                dir.display()
            );
        }
        let model = Model::load(&dir)?;
        let samples = match &points {
            None => model.sample(&Plan::new(args.n, None), base.seed, &spec)?,
            Some(x0) => model.transport(x0, &spec)?,
        };
        let mut leg_frames = frames(&samples, i);
        if i > 0 && !leg_frames.is_empty() {
            leg_frames.remove(0); // the previous leg's last frame
        }
        // Hold each shape for a few frames.
        if let Some(last) = leg_frames.last().cloned() {
            leg_frames.extend(std::iter::repeat_n(last, 6));
        }
        all_frames.extend(leg_frames);
        let held = model.held_out(args.n, base.seed)?;
        let floor_set = model.held_out(args.n, base.seed + 1)?;
        let mut r = tensor::rng(base.seed);
        let sw2 = sliced_wasserstein2(&samples.points, &held, PROJECTIONS, &mut r.clone())?;
        let sw2_floor = sliced_wasserstein2(&floor_set, &held, PROJECTIONS, &mut r)?;
        let energy = energy_distance(&samples.points, &held)?;
        let energy_floor = energy_distance(&floor_set, &held)?;
        mode.say(format!(
            "{label}: trained in {}; to held-out {b}: SW2 {sw2:.4} (noise floor {sw2_floor:.4}), energy distance {energy:.4} (floor {energy_floor:.4})",
            human_secs(trained.wall_s)
        ));
        summaries.push(LegSummary {
            source: a.clone(),
            target: b.clone(),
            run_dir: dir,
            train_s: trained.wall_s,
            final_loss: trained.final_loss,
            sw2,
            sw2_floor,
            energy,
            energy_floor,
        });
        points = Some(samples.points);
    }
    let gif = out.join("chain.gif");
    plot::flow_gif(&gif, &all_frames, None, 60)?;
    let summary = ChainSummary {
        out: out.clone(),
        gif: gif.clone(),
        n: args.n,
        euler_steps: args.euler_steps,
        legs: summaries,
        wall_s: started.elapsed().as_secs_f64(),
    };
    atomic_write(
        &out.join("chain.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    mode.json(&summary)?;
    mode.say(format!(
        "chain of {} flows in {}: wrote {} and {}",
        summary.legs.len(),
        human_secs(summary.wall_s),
        gif.display(),
        out.join("chain.json").display()
    ));
    Ok(())
}
