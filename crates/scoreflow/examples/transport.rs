//! Transport experiments (issue 13). Every run prints one JSON line; all randomness is seeded.
//!
//! ```text
//! # Few-step flows on 8gaussians: independent CFM vs time-grid training vs OT coupling vs
//! # reflow, each sampled with 1, 2, 4, 8 Euler steps; SW₂ against the data noise floor.
//! cargo run --release -p scoreflow --example transport -- fewstep [--steps 4000] [--n 10000]
//!
//! # scoreflow's side of bench/torchcfm_compare.py, on the CSVs that script writes.
//! cargo run --release -p scoreflow --example transport -- compare --dir /tmp/tcfm/n8g \
//!     --task n8g --coupling ot --seed 0 [--steps 20000]
//! ```
//!
//! `fewstep`: MLP 2→128×3→2 (SiLU), batch 256, the default recipe (Adam, one-cycle, EMA 0.999),
//! fused engine, built-in `8gaussians` in its own units, N(0, I) source. Rows:
//! * `independent`: plain CFM, N steps (and `independent-2N`: 2N steps, reflow's total budget);
//! * `grid-s`: t drawn from {k/s : k = 0…s} (seed 002's T for s = 4), sampled with s Euler steps;
//! * `ot`: exact minibatch-OT coupling, N steps;
//! * `reflow`: 50,000 pairs (x₀, Φ(x₀)) of the `independent` model (dopri5, rtol = atol = 1e-5),
//!   then N more steps on those fixed pairs starting from its weights.
//!
//! SW₂: 256 fixed directions (seed 30,000), 10,000 samples (noise seed 1) against 10,000 held-out
//! points; the floor is SW₂ between two independent 10,000-point data sets. Path statistics
//! (normalised path energy, straightness) from 2,000 points with dopri5.
//!
//! `compare`: MLP 2→64×3→2 (SiLU: the MLP has no SELU yet), batch 512, AdamW(1e-3, weight decay
//! 1e-5), constant rate, σ = 0.1, fused engine; targets (and moons sources) drawn with
//! replacement from the CSVs, N(0, I) sources drawn fresh; evaluation as the Python side: 100
//! Euler steps from `source_test.csv` with the path energy integrated alongside, exact W₂ to
//! `target_test.csv`, normalised path energy against the exact W₂² between start and end points.
use std::path::PathBuf;
use std::time::Instant;

use scoreflow::coupling::reflow::PairSet;
use scoreflow::coupling::Coupling;
use scoreflow::data::{load_points, DataSource, Dataset, Points};
use scoreflow::field::mlp::{Mlp, MlpConfig};
use scoreflow::metrics::{random_directions, sliced_wasserstein2_along};
use scoreflow::objective::cfm::{FlowMatching, TimeSampler};
use scoreflow::objective::Objective;
use scoreflow::path::{CondOt, GaussianPath};
use scoreflow::solve::{odeint, Method, OdeOptions};
use scoreflow::tensor::{cpu, randn, rng, DType};
use scoreflow::train::{
    Control, EngineKind, Minibatches, OptimizerConfig, TrainConfig, Trainer, WithSource,
};
use scoreflow::transport::{path_statistics, wasserstein2};
use serde_json::json;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> Res<T>
where
    T::Err: std::fmt::Display,
{
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
            v.parse::<T>().map_err(|e| format!("{name}: {e}").into())
        }
        None => default.ok_or_else(|| format!("missing {name}").into()),
    }
}

fn cfm() -> FlowMatching<CondOt> {
    FlowMatching::new(GaussianPath::new(CondOt))
}

/// Trains `model` with `objective` on `data` under `config` (fused engine); returns the
/// sampling network and the wall time.
fn train(
    model: &Mlp,
    config: TrainConfig,
    objective: &dyn Objective,
    data: &mut dyn Minibatches,
    label: &str,
) -> Res<(Mlp, f64)> {
    let mut trainer = Trainer::new_on(EngineKind::Fused, model, config)?;
    let started = Instant::now();
    trainer.run(objective, data, &mut |i| {
        if i.step % 2000 == 0 {
            eprintln!("{label}: step {}/{} loss {:.4}", i.step, i.total, i.loss);
        }
        Control::Continue
    })?;
    Ok((trainer.sampling_model(), started.elapsed().as_secs_f64()))
}

fn fewstep(args: &[String]) -> Res<()> {
    let steps: usize = arg(args, "--steps", Some(4000))?;
    let n: usize = arg(args, "--n", Some(10_000))?;
    let data = Dataset::EightGaussians;
    let arch = MlpConfig::new(2, 128, 3);
    let config = |steps| TrainConfig::recipe(steps, 256, 0);
    let init = config(steps).init_model(&arch, &cpu(), DType::F32);
    let held_out = DataSource::generator(data).held_out(n, 10_000)?;
    let dirs = random_directions(2, 256, &mut rng(30_000));
    let floor = sliced_wasserstein2_along(
        &DataSource::generator(data).held_out(n, 20_000)?,
        &held_out,
        &dirs,
    )?;
    println!("{}", json!({"kind": "floor", "sw2": floor, "n": n}));
    let x0 = randn(n, 2, &cpu(), DType::F32, &mut rng(1));
    let x0_paths = randn(2000, 2, &cpu(), DType::F32, &mut rng(2));
    let mut table: Vec<(String, Vec<Option<f64>>, f64, f64)> = Vec::new();
    let mut evaluate = |name: &str, model: &Mlp, only: Option<usize>, wall: f64| -> Res<()> {
        let mut row = Vec::new();
        for s in [1, 2, 4, 8] {
            if only.is_some_and(|o| o != s) {
                row.push(None);
                continue;
            }
            let x = odeint(
                model,
                x0.clone(),
                0.0,
                1.0,
                &OdeOptions::fixed(Method::Euler, s),
            )?
            .x;
            let sw2 = sliced_wasserstein2_along(&Points::from_tensor(&x), &held_out, &dirs)?;
            row.push(Some(sw2));
        }
        let ps = path_statistics(model, &x0_paths, &OdeOptions::dopri5(1e-5, 1e-5))?;
        println!(
            "{}",
            json!({"kind": "fewstep", "model": name, "sw2_euler_1_2_4_8": row, "floor": floor,
                   "normalized_path_energy": ps.normalized_path_energy,
                   "straightness": ps.straightness, "chord_deviation": ps.chord_deviation,
                   "train_s": wall})
        );
        table.push((
            name.to_string(),
            row,
            ps.normalized_path_energy,
            ps.straightness,
        ));
        Ok(())
    };
    let mut gen = DataSource::generator(data);

    let (indep, w) = train(&init, config(steps), &cfm(), &mut gen, "independent")?;
    evaluate("independent", &indep, None, w)?;
    let (indep2, w) = train(&init, config(2 * steps), &cfm(), &mut gen, "independent-2N")?;
    evaluate("independent-2N", &indep2, None, w)?;
    for s in [1, 2, 4, 8] {
        let obj = cfm().with_time(TimeSampler::euler_grid(s)?)?;
        let name = format!("grid-{s}");
        let (m, w) = train(&init, config(steps), &obj, &mut gen, &name)?;
        evaluate(&name, &m, Some(s), w)?;
    }
    let ot = cfm().with_coupling(Coupling::Ot)?;
    let (m, w) = train(&init, config(steps), &ot, &mut gen, "ot")?;
    evaluate("ot", &m, None, w)?;
    let started = Instant::now();
    let source = Points::from_tensor(&randn(50_000, 2, &cpu(), DType::F32, &mut rng(3)));
    let mut pairs = PairSet::reflow(
        &indep,
        source,
        &OdeOptions::dopri5(1e-5, 1e-5),
        &cpu(),
        DType::F32,
    )?;
    let pair_s = started.elapsed().as_secs_f64();
    let (m, w) = train(&indep, config(steps), &cfm(), &mut pairs, "reflow")?;
    evaluate("reflow", &m, None, w + pair_s)?;

    println!("\n| model | Euler 1 | Euler 2 | Euler 4 | Euler 8 | NPE | straightness |");
    println!("|---|---|---|---|---|---|---|");
    for (name, row, npe, st) in &table {
        let cells: Vec<String> = row
            .iter()
            .map(|v| v.map_or("—".into(), |v| format!("{v:.3} ({:.1}×)", v / floor)))
            .collect();
        println!("| {name} | {} | {npe:.3} | {st:.3} |", cells.join(" | "));
    }
    println!("\nSW₂ noise floor (data vs data, n = {n}): {floor:.4}");
    Ok(())
}

fn compare(args: &[String]) -> Res<()> {
    let dir: PathBuf = arg(args, "--dir", None)?;
    let task: String = arg(args, "--task", None)?;
    let coupling: Coupling = arg(args, "--coupling", None)?;
    let seed: u64 = arg(args, "--seed", Some(0))?;
    let steps: usize = arg(args, "--steps", Some(20_000))?;
    let load = |f: &str| load_points(dir.join(f), Some(2));
    let (target_train, source_test, target_test) = (
        load("target_train.csv")?,
        load("source_test.csv")?,
        load("target_test.csv")?,
    );
    let config = TrainConfig {
        optimizer: OptimizerConfig::adamw(1e-3, 1e-5),
        ..TrainConfig::new(steps, 512, 1e-3, seed)
    };
    let init = config.init_model(&MlpConfig::new(2, 64, 3), &cpu(), DType::F32);
    let objective = cfm().with_sigma(0.1)?.with_coupling(coupling)?;
    let target = DataSource::finite("target", target_train, None)?;
    let mut trainer = Trainer::new_on(EngineKind::Fused, &init, config)?;
    let started = Instant::now();
    let mut cb = |_: &scoreflow::train::StepInfo| Control::Continue;
    let outcome = if task == "n8g" {
        trainer.run(&objective, &mut target.clone(), &mut cb)?
    } else {
        let source = DataSource::finite("source", load("source_train.csv")?, None)?;
        let mut data = WithSource { source, target };
        trainer.run(&objective, &mut data, &mut cb)?
    };
    let train_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let model = trainer.sampling_model();
    let x0 = source_test.to_tensor(&cpu(), DType::F32);
    let ps = path_statistics(&model, &x0, &OdeOptions::fixed(Method::Euler, 100))?;
    let w2 = wasserstein2(ps.end.as_ref().expect("end points"), &target_test)?;
    let eval_s = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"program": "scoreflow", "task": task, "coupling": coupling.name(), "seed": seed,
               "steps": steps, "w2": w2.value, "w2_method": w2.method,
               "path_energy": ps.path_energy, "w2_sq_source_generated": ps.w2_sq,
               "normalized_path_energy": ps.normalized_path_energy,
               "train_s": train_s, "eval_s": eval_s, "final_loss": outcome.last_loss})
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fewstep") => fewstep(&args[1..]),
        Some("compare") => compare(&args[1..]),
        _ => Err("usage: transport fewstep [--steps N] [--n N] | compare --dir DIR --task n8g|moons8g --coupling independent|ot [--seed S] [--steps N]".into()),
    }
}
