//! Acceptance experiments for sample quality and likelihood (issues 2, 4, 5; numbers in
//! `docs/RESULTS.md`). Every subcommand prints JSON lines; all randomness is seeded.
//!
//! ```text
//! cargo run --release --example quality -- floors [--n 10000]
//! cargo run --release --example quality -- fm  --data 8gaussians --recipe reference|default
//!     [--steps 5000] [--dir /tmp/accept] [--n 10000]
//! cargo run --release --example quality -- dsm --data moons --recipe default [--steps 3000]
//!     [--samplers em,pc,ode] [--snr 0.05] [--lr 1e-3] [--train-seed 0] [--dir /tmp/accept] [--n 10000]
//! cargo run --release --example quality -- nll --run /tmp/accept/fm-8gaussians-reference
//!     --data 8gaussians [--n 5000] [--seed 987654321] [--points held_out.csv] [--chunk 2500]
//! cargo run --release --example quality -- score --points samples.csv --data 8gaussians
//! ```
//!
//! `score` scores samples written by another program (e.g. the PyTorch reference on our weights)
//! exactly as `fm` / `dsm` score ours. `fm` / `dsm` train the reference MLP (batch 1024, seed 0, fused engine) into the run directory
//! `DIR/{fm,dsm}-DATA-RECIPE` unless it already holds a finished run, then sample n points and
//! score them against an n-point reference set (seed [`REFERENCE_SEED`]) next to the data-vs-data
//! floor (n fresh points, seed [`FLOOR_SEED`]). SW₂ directions come from [`METRIC_SEED`] for every
//! evaluation, so rows are comparable.
use std::path::{Path, PathBuf};
use std::time::Instant;

use scoreflow::checkpoint;
use scoreflow::data::{load_points, Dataset, Points};
use scoreflow::field::convert::NoiseInput;
use scoreflow::likelihood::{Divergence, LikelihoodOptions};
use scoreflow::metrics::{self, evaluate, noise_floor, MetricOptions, MetricReport, Modes};
use scoreflow::model::{Model, Plan, TrainMethod, TrainSettings, TrainingRun};
use scoreflow::solve::{LangevinCorrector, OdeOptions, SamplerName, SamplerSpec};
use scoreflow::tensor::rng;
use scoreflow::train::{Control, EngineKind, ScheduleKind};
use serde_json::{json, Value};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Seed of the n-point reference set every sample set is scored against.
const REFERENCE_SEED: u64 = 10_000;
/// Seed of the n fresh data points that make the noise floor.
const FLOOR_SEED: u64 = 20_000;
/// Seed of the SW₂ directions (the same for every evaluation).
const METRIC_SEED: u64 = 30_000;
/// Seed of the prior draws / sampler noise.
const SAMPLE_SEED: u64 = 1;
/// Training run seed (network init, minibatches, objective noise).
const TRAIN_SEED: u64 = 0;
/// Batch size of every run.
const BATCH: usize = 1024;

struct Args {
    cmd: String,
    data: Dataset,
    recipe: String,
    steps: Option<usize>,
    dir: PathBuf,
    n: Option<usize>,
    samplers: Vec<String>,
    run: Option<PathBuf>,
    seed: u64,
    points: Option<PathBuf>,
    chunk: Option<usize>,
    snr: Option<f64>,
    lr: Option<f64>,
    train_seed: u64,
}

fn parse() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let cmd = it
        .next()
        .ok_or("usage: quality floors|fm|dsm|nll [flags]")?;
    let mut a = Args {
        cmd,
        data: Dataset::EightGaussians,
        recipe: "default".into(),
        steps: None,
        dir: PathBuf::from("/tmp/accept"),
        n: None,
        samplers: vec!["em".into(), "pc".into(), "ode".into()],
        run: None,
        seed: 987_654_321,
        points: None,
        chunk: None,
        snr: None,
        lr: None,
        train_seed: TRAIN_SEED,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = value()?.parse()?,
            "--recipe" => a.recipe = value()?,
            "--steps" => a.steps = Some(value()?.parse()?),
            "--dir" => a.dir = value()?.into(),
            "--n" => a.n = Some(value()?.parse()?),
            "--samplers" => a.samplers = value()?.split(',').map(String::from).collect(),
            "--run" => a.run = Some(value()?.into()),
            "--seed" => a.seed = value()?.parse()?,
            "--points" => a.points = Some(value()?.into()),
            "--chunk" => a.chunk = Some(value()?.parse()?),
            "--snr" => a.snr = Some(value()?.parse()?),
            "--lr" => a.lr = Some(value()?.parse()?),
            "--train-seed" => a.train_seed = value()?.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

fn main() -> Res<()> {
    let a = parse()?;
    match a.cmd.as_str() {
        "floors" => floors(a.n.unwrap_or(10_000)),
        "fm" => fm(&a),
        "dsm" => dsm(&a),
        "nll" => nll(&a),
        "score" => score(&a),
        other => Err(format!("unknown command {other} (floors, fm, dsm, nll, score)").into()),
    }
}

/// Metric options: defaults (256 directions, h ∈ {.05 … 2}), mixture modes where known.
fn options(data: Dataset) -> MetricOptions {
    MetricOptions {
        modes: data.mixture().map(|m| Modes::from_mixture(&m, 3.0)),
        ..MetricOptions::default()
    }
}

/// The reference set and the data-vs-data floor report for `data` at size n.
fn reference_and_floor(data: Dataset, n: usize) -> Res<(Points, MetricReport)> {
    let reference = data.sample(n, &mut rng(REFERENCE_SEED));
    let fresh = data.sample(n, &mut rng(FLOOR_SEED));
    let floor = noise_floor(
        &reference,
        n,
        |_, _| Ok(fresh.clone()),
        &options(data),
        &mut rng(METRIC_SEED),
    )?;
    Ok((reference, floor))
}

/// Scores the samples `x` of `data` against the reference set (next to its floor) and prints
/// `row` with the metrics merged in, as one JSON line.
fn print_scored(
    x: &Points,
    data: Dataset,
    (reference, floor): (&Points, &MetricReport),
    mut row: Value,
) -> Res<()> {
    let r = evaluate(x, reference, &options(data), &mut rng(METRIC_SEED))?;
    merge(&mut row, report_json(&r, floor));
    println!("{row}");
    Ok(())
}

fn report_json(r: &MetricReport, floor: &MetricReport) -> Value {
    let ratio = r.ratio_to(floor);
    json!({
        "sw2": r.sw2, "mmd2": r.mmd2, "energy": r.energy,
        "sw2_ratio": ratio.sw2, "mmd2_ratio": ratio.mmd2, "energy_ratio": ratio.energy,
        "floor_sw2": floor.sw2, "floor_mmd2": floor.mmd2, "floor_energy": floor.energy,
        "mean_error": r.mean_error, "cov_error": r.cov_error,
        "off_modes": r.modes.as_ref().map(|m| m.off_modes),
        "mode_tv": r.modes.as_ref().and_then(|m| {
            let k = m.weights.len();
            m.total_variation(&vec![1.0 / k as f64; k]).ok()
        }),
    })
}

/// Step 1: our floors, and SW₂ under other conventions (number of directions, SW₂² vs SW₂,
/// fixed evenly spaced angles) to compare with the reference's figures.
fn floors(n: usize) -> Res<()> {
    for data in [
        Dataset::EightGaussians,
        Dataset::Checkerboard,
        Dataset::Moons,
    ] {
        let started = Instant::now();
        let (reference, floor) = reference_and_floor(data, n)?;
        let fresh = data.sample(n, &mut rng(FLOOR_SEED));
        let mut sw = serde_json::Map::new();
        for l in [16, 64, 256, 1024] {
            let s = metrics::sliced_wasserstein2(&fresh, &reference, l, &mut rng(METRIC_SEED))?;
            sw.insert(format!("sw2_L{l}"), json!(s));
            sw.insert(format!("sw2_squared_L{l}"), json!(s * s));
        }
        let angles: Vec<f64> = (0..180)
            .flat_map(|k| {
                let a = std::f64::consts::PI * k as f64 / 180.0;
                [a.cos(), a.sin()]
            })
            .collect();
        let even =
            metrics::sliced_wasserstein2_along(&fresh, &reference, &Points::new(angles, 2)?)?;
        sw.insert("sw2_even180".into(), json!(even));
        // A second independent floor pair, to show the floor's own spread.
        let other = data.sample(n, &mut rng(FLOOR_SEED + 1));
        let floor2 = evaluate(&other, &reference, &options(data), &mut rng(METRIC_SEED))?;
        println!(
            "{}",
            json!({
                "kind": "floor", "data": data.name(), "n": n,
                "sw2": floor.sw2, "mmd2": floor.mmd2, "energy": floor.energy,
                "mean_error": floor.mean_error, "cov_error": floor.cov_error,
                "second_pair": {"sw2": floor2.sw2, "mmd2": floor2.mmd2, "energy": floor2.energy},
                "sw2_variants": sw,
                "wall_s": started.elapsed().as_secs_f64(),
            })
        );
    }
    Ok(())
}

/// The run's settings: the reference MLP (3→512×4→2 SiLU) at batch 1024 on `data`, with the
/// recipe "reference" (Adam 1e-3 constant, no EMA, τ input for DSM) or "default" (one-cycle
/// peaking at 1e-3 with 5 % warm-up, EMA 0.999, ¼ ln σ input for DSM), `--lr` and
/// `--train-seed` applied; trained by the fused engine.
fn settings(a: &Args, method: TrainMethod, steps: usize) -> Res<TrainSettings> {
    let base = TrainSettings {
        data: a.data.name().into(),
        method,
        width: 512,
        depth: 4,
        batch: BATCH,
        steps,
        seed: a.train_seed,
        engine: EngineKind::Fused,
        checkpoint_every: steps,
        ..TrainSettings::default()
    };
    let s = match a.recipe.as_str() {
        "reference" => TrainSettings {
            lr: 1e-3,
            schedule: ScheduleKind::Constant,
            ema: 0.0,
            noise_input: NoiseInput::Time,
            ..base
        },
        "default" => TrainSettings { lr: 1e-3, ..base },
        other => return Err(format!("unknown recipe {other} (reference, default)").into()),
    };
    Ok(TrainSettings {
        lr: a.lr.unwrap_or(s.lr),
        ..s
    })
}

/// Trains `settings` into `dir` unless `dir` already holds the finished run, then loads it as a
/// [`Model`] — the same library path as `scoreflow train` / `scoreflow sample`.
fn train_or_load(dir: &Path, settings: &TrainSettings) -> Res<Model> {
    if dir.join(checkpoint::META_FILE).exists() {
        let model = Model::load(dir)?;
        if model.meta.as_ref().map(|m| m.step) == Some(settings.steps)
            && &model.settings == settings
        {
            eprintln!("reusing {}", dir.display());
            return Ok(model);
        }
        return Err(format!(
            "{} holds another run; remove it or choose --dir",
            dir.display()
        )
        .into());
    }
    std::fs::create_dir_all(dir)?;
    let run = TrainingRun::start(settings, dir)?;
    let (mut trainer, objective) = (run.trainer, run.objective);
    let (source, normalizer) = (run.source, run.normalizer);
    let mut batches = |n: usize, r: &mut scoreflow::tensor::Rng| {
        normalizer.apply(&source.batch(n, r)).expect("2-D")
    };
    let started = Instant::now();
    let outcome = trainer.run(objective.as_ref(), &mut batches, &mut |info| {
        if info.step % 1000 == 0 {
            eprintln!(
                "{} step {}/{} loss {:.4} lr {:.2e} {:.1} steps/s",
                dir.display(),
                info.step,
                info.total,
                info.loss,
                info.lr,
                info.steps_per_sec
            );
        }
        Control::Continue
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"kind": "train", "run": dir, "steps": settings.steps, "final_loss": outcome.last_loss,
               "wall_s": secs, "steps_per_s": settings.steps as f64 / secs})
    );
    Ok(Model::load(dir)?)
}

fn run_dir(a: &Args, model: &str) -> PathBuf {
    let lr = a.lr.map(|lr| format!("-lr{lr}")).unwrap_or_default();
    let seed = if a.train_seed == TRAIN_SEED {
        String::new()
    } else {
        format!("-seed{}", a.train_seed)
    };
    a.dir
        .join(format!("{model}-{}-{}{lr}{seed}", a.data.name(), a.recipe))
}

/// Samples n points of `model` with each spec (block-seeded by [`SAMPLE_SEED`]) and prints
/// each scored row.
fn sample_and_score(
    model: &Model,
    a: &Args,
    n: usize,
    specs: &[SamplerSpec],
    row: Value,
) -> Res<()> {
    let (reference, floor) = reference_and_floor(a.data, n)?;
    for spec in specs {
        let started = Instant::now();
        let s = model.sample(&Plan::new(n, None), SAMPLE_SEED, spec)?;
        let wall = started.elapsed().as_secs_f64();
        let mut r = row.clone();
        merge(
            &mut r,
            json!({"sampler": spec.sampler.name(), "nfe": s.stats.nfe_per_path(), "wall_s": wall,
                   "snr": (spec.sampler == SamplerName::Pc).then(|| spec.snr.unwrap_or(LangevinCorrector::default().snr))}),
        );
        print_scored(&s.points, a.data, (&reference, &floor), r)?;
    }
    Ok(())
}

/// Issue 2: flow matching, Euler 100 and Dopri5 1e-5.
fn fm(a: &Args) -> Res<()> {
    let n = a.n.unwrap_or(10_000);
    let steps = a.steps.unwrap_or(5000);
    let model = train_or_load(&run_dir(a, "fm"), &settings(a, TrainMethod::Cfm, steps)?)?;
    let specs = [
        SamplerSpec::new(SamplerName::Euler),
        SamplerSpec::new(SamplerName::Dopri5),
    ];
    let row = json!({"kind": "sample", "model": "fm", "data": a.data.name(), "recipe": a.recipe, "steps": steps});
    sample_and_score(&model, a, n, &specs, row)
}

/// Issue 4: DSM under the VP-SDE (ε prediction), reverse EM / PC / PF-ODE Dopri5.
fn dsm(a: &Args) -> Res<()> {
    let n = a.n.unwrap_or(10_000);
    let default_steps = if a.data == Dataset::Moons { 3000 } else { 5000 };
    let steps = a.steps.unwrap_or(default_steps);
    // The reference feeds the network τ; our default recipe feeds ¼ ln σ(τ) (the CLI's default)
    // and trains into a separate directory, never confused with τ-input runs.
    let name = if a.recipe == "default" {
        "dsm-ls"
    } else {
        "dsm"
    };
    let model = train_or_load(&run_dir(a, name), &settings(a, TrainMethod::Dsm, steps)?)?;
    let specs = a
        .samplers
        .iter()
        .map(|s| {
            let sampler: SamplerName = s.parse()?;
            Ok(SamplerSpec {
                snr: if sampler == SamplerName::Pc {
                    a.snr
                } else {
                    None
                },
                ..SamplerSpec::new(sampler)
            })
        })
        .collect::<Res<Vec<_>>>()?;
    let row = json!({"kind": "sample", "model": "dsm-vp", "data": a.data.name(), "recipe": a.recipe, "steps": steps});
    sample_and_score(&model, a, n, &specs, row)
}

/// Issue 5: held-out NLL with the exact divergence and Dopri5 1e-5, next to the true NLL.
fn nll(a: &Args) -> Res<()> {
    let n = a.n.unwrap_or(5000);
    let dir = a.run.clone().ok_or("nll needs --run DIR")?;
    let model = Model::load(&dir)?;
    let x = match &a.points {
        Some(path) => load_points(path, Some(2))?,
        None => a.data.sample(n, &mut rng(a.seed)),
    };
    let n = x.len();
    let truth = a
        .data
        .log_density(&x)?
        .map(|lp| -lp.iter().sum::<f64>() / lp.len() as f64);
    let opts = LikelihoodOptions {
        ode: OdeOptions::dopri5(1e-5, 1e-5),
        divergence: Divergence::Exact,
        round_trip: false,
        chunk: a.chunk,
    };
    let started = Instant::now();
    let lik = model.log_likelihood(&x, &opts, &mut rng(0))?;
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"kind": "nll", "run": dir, "data": a.data.name(), "n": n, "seed": a.seed,
               "points": a.points, "chunk": a.chunk,
               "nll": lik.nll, "se": lik.se, "true_nll": truth, "nfe": lik.nfe,
               "accepted": lik.accepted, "rejected": lik.rejected, "wall_s": wall,
               "likelihood_wall_s": lik.wall_time_s})
    );
    Ok(())
}

/// Scores a CSV/NPY of samples against the reference set of `--data`, next to the floor.
fn score(a: &Args) -> Res<()> {
    let path = a.points.clone().ok_or("score needs --points FILE")?;
    let x = load_points(&path, Some(2))?;
    let (reference, floor) = reference_and_floor(a.data, x.len())?;
    let row = json!({"kind": "score", "points": path, "data": a.data.name()});
    print_scored(&x, a.data, (&reference, &floor), row)
}

fn merge(row: &mut Value, extra: Value) {
    if let (Value::Object(r), Value::Object(e)) = (row, extra) {
        r.extend(e);
    }
}
