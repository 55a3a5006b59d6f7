//! Acceptance experiments for sample quality and likelihood (issues 2, 4, 5; numbers in
//! `docs/RESULTS.md`). Every subcommand prints JSON lines; all randomness is seeded.
//!
//! ```text
//! cargo run --release --example quality -- floors [--n 10000]
//! cargo run --release --example quality -- fm  --data 8gaussians --recipe reference|default
//!     [--steps 5000] [--dir /tmp/accept] [--n 10000]
//! cargo run --release --example quality -- dsm --data moons --recipe default [--steps 3000]
//!     [--samplers em,pc,ode] [--snr 0.05] [--lr 1e-3] [--train-seed 0] [--dir /tmp/accept] [--n 10000]
//!     [--noise-input time|logsigma]
//! cargo run --release --example quality -- edm --data moons [--steps 3000] [--samplers ...]
//!     (EDM preconditioning, σ_d = the data's standard deviation, default recipe)
//! cargo run --release --example quality -- nll --run /tmp/accept/fm-8gaussians-reference
//!     --data 8gaussians [--n 5000] [--seed 987654321] [--points held_out.csv] [--chunk 2500]
//! cargo run --release --example quality -- score --points samples.csv --data 8gaussians
//! ```
//!
//! `--samplers` takes a comma list of `em`, `pc`, `ode` (PF-ODE Dopri5 1e-5), `ode:TOL` (Dopri5
//! with rtol = atol = TOL: the probability-flow ceiling at a tight tolerance) and the few-step
//! samplers as `NAME:STEPS[:SPACING]` (`ddim:10`, `dpmpp-2m:10:karras`, `edm-heun:10`, … —
//! `solve::diffusion`; the spacing defaults to the sampler's).
//!
//! `score` scores samples written by another program (e.g. the PyTorch reference on our weights)
//! exactly as `fm` / `dsm` score ours. `fm` / `dsm` train the reference MLP (batch 1024, seed 0, fused engine) into the run directory
//! `DIR/{fm,dsm}-DATA-RECIPE` unless it already holds a finished run, then sample n points and
//! score them against an n-point reference set (seed [`REFERENCE_SEED`]) next to the data-vs-data
//! floor (n fresh points, seed [`FLOOR_SEED`]). SW₂ directions come from [`METRIC_SEED`] for every
//! evaluation, so rows are comparable.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use scoreflow::checkpoint::{self, MODEL_FILE};
use scoreflow::data::{load_points, DataSource, Dataset, Points};
use scoreflow::field::convert::NoiseInput;
use scoreflow::field::mlp::{Mlp, MlpConfig};
use scoreflow::fused::FusedMlp;
use scoreflow::likelihood::{log_likelihood, Divergence, IsotropicGaussian, LikelihoodOptions};
use scoreflow::metrics::{self, evaluate, noise_floor, MetricOptions, MetricReport, Modes};
use scoreflow::objective::cfm::FlowMatching;
use scoreflow::objective::dsm::Dsm;
use scoreflow::objective::edm::{Edm, EdmConfig};
use scoreflow::objective::Objective;
use scoreflow::path::{CondOt, GaussianPath};
use scoreflow::sde::{EdmSde, Sde, SdeConfig};
use scoreflow::solve::diffusion::{DiffusionSamplerConfig, DiffusionSamplerKind};
use scoreflow::solve::{odeint, Method, OdeOptions, Sampler, SamplerConfig, SamplerKind};
use scoreflow::tensor::{cpu, randn, rng, DType};
use scoreflow::train::{Control, EngineKind, TrainConfig, Trainer};
use scoreflow::VectorField;
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
    noise_input: Option<NoiseInput>,
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
        noise_input: None,
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
            "--noise-input" => a.noise_input = Some(value()?.parse()?),
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
        "edm" => edm(&a),
        "nll" => nll(&a),
        "score" => score(&a),
        other => Err(format!("unknown command {other} (floors, fm, dsm, edm, nll, score)").into()),
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

/// The training configuration named by `recipe`: "reference" (Adam 1e-3 constant, no EMA) or
/// "default" ([`TrainConfig::recipe`]: one-cycle, EMA 0.999).
fn train_config(recipe: &str, steps: usize) -> Res<TrainConfig> {
    Ok(match recipe {
        "reference" => TrainConfig::new(steps, BATCH, 1e-3, TRAIN_SEED),
        "default" => TrainConfig::recipe(steps, BATCH, TRAIN_SEED),
        other => return Err(format!("unknown recipe {other} (reference, default)").into()),
    })
}

/// Trains the reference MLP on `data` with `objective` into `dir`, unless `dir` already holds a
/// finished run; returns the sampling network (EMA weights when the recipe has EMA).
fn train_or_load(
    dir: &Path,
    data: Dataset,
    objective: &dyn Objective,
    objective_json: Value,
    config: TrainConfig,
) -> Res<Mlp> {
    let device = cpu();
    if dir.join(MODEL_FILE).exists() {
        let (meta, mlp) = checkpoint::load_run(dir, &device, DType::F32)?;
        if meta.step == config.steps {
            eprintln!("reusing {}", dir.display());
            return Ok(mlp);
        }
    }
    let steps = config.steps;
    let model = config.init_model(&MlpConfig::reference(), &device, DType::F32);
    let mut trainer = Trainer::new_on(EngineKind::Fused, &model, config)?.checkpoint_to(
        dir,
        objective_json,
        json!({"kind": "none"}),
    );
    let started = Instant::now();
    let mut source = DataSource::generator(data);
    let outcome = trainer.run(objective, &mut source, &mut |info| {
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
        json!({"kind": "train", "run": dir, "steps": steps, "final_loss": outcome.last_loss,
               "wall_s": secs, "steps_per_s": steps as f64 / secs})
    );
    Ok(trainer.sampling_model())
}

/// `recipe`'s training configuration with the peak learning rate `--lr` if given.
fn train_config_for(a: &Args, steps: usize) -> Res<TrainConfig> {
    let mut c = train_config(&a.recipe, steps)?;
    if let Some(lr) = a.lr {
        c.optimizer.lr = lr;
    }
    c.seed = a.train_seed;
    Ok(c)
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

/// Issue 2: flow matching, Euler 100 and Dopri5 1e-5.
fn fm(a: &Args) -> Res<()> {
    let n = a.n.unwrap_or(10_000);
    let steps = a.steps.unwrap_or(5000);
    let dir = run_dir(a, "fm");
    let objective = FlowMatching::new(GaussianPath::new(CondOt));
    let mlp = train_or_load(
        &dir,
        a.data,
        &objective,
        json!({"objective": "cfm", "path": "condot", "coupling": "independent"}),
        train_config_for(a, steps)?,
    )?;
    let field = FusedMlp::from_mlp(&mlp);
    let (reference, floor) = reference_and_floor(a.data, n)?;
    let x0 = randn(n, 2, &cpu(), DType::F32, &mut rng(SAMPLE_SEED));
    for (name, opts) in [
        ("euler100", OdeOptions::fixed(Method::Euler, 100)),
        ("dopri5", OdeOptions::dopri5(1e-5, 1e-5)),
    ] {
        let started = Instant::now();
        let sol = odeint(&field, x0.clone(), 0.0, 1.0, &opts)?;
        let wall = started.elapsed().as_secs_f64();
        let row = json!({"kind": "sample", "model": "fm", "data": a.data.name(),
            "recipe": a.recipe, "steps": steps, "sampler": name, "nfe": sol.nfe, "wall_s": wall});
        print_scored(
            &Points::from_tensor(&sol.x),
            a.data,
            (&reference, &floor),
            row,
        )?;
    }
    Ok(())
}

/// Issue 4: DSM under the VP-SDE (ε prediction), reverse EM / PC / PF-ODE Dopri5.
fn dsm(a: &Args) -> Res<()> {
    let n = a.n.unwrap_or(10_000);
    let default_steps = if a.data == Dataset::Moons { 3000 } else { 5000 };
    let steps = a.steps.unwrap_or(default_steps);
    // The reference feeds the network τ; our default recipe feeds ¼ ln σ(τ) (the CLI's default)
    // and trains into a separate directory, never confused with τ-input runs; `--noise-input`
    // overrides the recipe's choice.
    let log_sigma = a
        .noise_input
        .map_or(a.recipe == "default", |i| i == NoiseInput::LogSigma);
    let dir = run_dir(a, if log_sigma { "dsm-ls" } else { "dsm" });
    let sde_config = SdeConfig::default();
    let sde: Arc<dyn Sde> = sde_config.build()?;
    let mut objective = Dsm::default_for(sde.clone());
    if log_sigma {
        objective.config.noise_input = NoiseInput::LogSigma;
    }
    let mlp = train_or_load(
        &dir,
        a.data,
        &objective,
        json!({"objective": "dsm", "sde": sde_config, "config": objective.config}),
        train_config_for(a, steps)?,
    )?;
    let score = objective.score_field(FusedMlp::from_mlp(&mlp));
    let model = if log_sigma {
        "dsm-vp-logsigma"
    } else {
        "dsm-vp-time"
    };
    sample_all(a, model, steps, sde, &score, n)
}

/// Issue 14: EDM preconditioning (σ_d = the data's standard deviation, EDM's log-normal σ
/// shifted by ln(σ_d/0.5)), sampled on EDM's SDE (σ 0.002 → 80).
fn edm(a: &Args) -> Res<()> {
    let n = a.n.unwrap_or(10_000);
    let default_steps = if a.data == Dataset::Moons { 3000 } else { 5000 };
    let steps = a.steps.unwrap_or(default_steps);
    let probe = a.data.sample(100_000, &mut rng(FLOOR_SEED + 7));
    // σ_d = √(tr Σ / d): the per-coordinate standard deviation, from 100,000 fresh points.
    let trace: f64 = metrics::covariance(&probe)
        .iter()
        .step_by(probe.dim() + 1)
        .sum();
    let sigma_data = (trace / probe.dim() as f64).sqrt();
    let config = EdmConfig::for_data_std(sigma_data);
    let objective = Edm::new(config)?;
    let dir = run_dir(a, "edm");
    let mlp = train_or_load(
        &dir,
        a.data,
        &objective,
        json!({"objective": "edm", "config": config}),
        train_config_for(a, steps)?,
    )?;
    let sde = EdmSde::default();
    let score = objective.score_field(FusedMlp::from_mlp(&mlp), sde.clone());
    eprintln!(
        "edm: sigma_data {sigma_data:.4}, P_mean {:.4}",
        config.p_mean
    );
    sample_all(a, "edm", steps, Arc::new(sde), &score, n)
}

/// A sampler named on the command line (see the module docs), built for `sde`.
fn build_sampler(spec: &str, sde: &Arc<dyn Sde>, snr: Option<f64>) -> Res<Box<dyn Sampler>> {
    if let Some((name, arg)) = spec.split_once(':') {
        if name == "ode" {
            let tol: f64 = arg.parse()?;
            let mut sc = SamplerConfig::new(SamplerKind::Ode);
            sc.rtol = tol;
            sc.atol = tol;
            return Ok(sc.build(sde.clone())?);
        }
        let kind: DiffusionSamplerKind = name.parse()?;
        let (steps, spacing) = match arg.split_once(':') {
            Some((n, sp)) => (n.parse()?, Some(sp.parse()?)),
            None => (arg.parse()?, None),
        };
        let mut cfg = DiffusionSamplerConfig::new(kind, steps);
        cfg.spacing = spacing;
        return Ok(cfg.build_for_sde(sde.clone())?);
    }
    let kind: SamplerKind = spec.parse()?;
    let mut sc = SamplerConfig::new(kind);
    if let Some(snr) = snr {
        sc.snr = snr;
    }
    Ok(sc.build(sde.clone())?)
}

/// Samples n points with every `--samplers` entry and prints one scored JSON line each.
fn sample_all(
    a: &Args,
    model: &str,
    steps: usize,
    sde: Arc<dyn Sde>,
    score: &dyn VectorField,
    n: usize,
) -> Res<()> {
    let (reference, floor) = reference_and_floor(a.data, n)?;
    for name in &a.samplers {
        let sampler = build_sampler(name, &sde, a.snr)?;
        let mut r = rng(SAMPLE_SEED);
        let x = sde.prior_sample(n, score.dim(), &cpu(), DType::F32, &mut r);
        let started = Instant::now();
        let s = sampler.sample(score, x, &mut r)?;
        let wall = started.elapsed().as_secs_f64();
        let row = json!({"kind": "sample", "model": model, "data": a.data.name(),
            "recipe": a.recipe, "steps": steps, "sampler": name, "nfe": s.nfe, "wall_s": wall,
            "snr": (name == "pc").then_some(a.snr)});
        print_scored(
            &Points::from_tensor(&s.x),
            a.data,
            (&reference, &floor),
            row,
        )?;
    }
    Ok(())
}

/// Issue 5: held-out NLL with the exact divergence and Dopri5 1e-5, next to the true NLL.
fn nll(a: &Args) -> Res<()> {
    let n = a.n.unwrap_or(5000);
    let dir = a.run.clone().ok_or("nll needs --run DIR")?;
    let (_, mlp) = checkpoint::load_run(&dir, &cpu(), DType::F32)?;
    let field = FusedMlp::from_mlp(&mlp);
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
    let lik = log_likelihood(
        &field,
        &IsotropicGaussian::standard(),
        &x.to_tensor(&cpu(), DType::F32),
        1.0,
        0.0,
        &opts,
        &mut rng(0),
    )?;
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
