//! Few-step samplers on exact fields, side by side with diffusers (issue 14). The diffusers side
//! is `bench/diffusers_compare.py`, which calls this program; run that script for the full
//! comparison (one command). Every subcommand prints JSON lines; all randomness is seeded.
//!
//! ```text
//! cargo run --release -p scoreflow --example samplers -- mixture --data 8gaussians
//! cargo run --release -p scoreflow --example samplers -- compare --data 8gaussians \
//!     --dir /tmp/diffusers_compare/8gaussians [--n 10000] [--seeds 5] [--nfe 5,10,20,50]
//! cargo run --release -p scoreflow --example samplers -- spacing --data 8gaussians \
//!     [--sde vp] [--n 10000] [--seeds 3] [--nfe 5,10,20]
//! cargo run --release -p scoreflow --example samplers -- ends --data 8gaussians \
//!     [--sde vp|condot|…] [--samplers ddim,dpmpp-2m,…] [--n 10000] [--seeds 5] [--nfe 5,10,20,50]
//! ```
//!
//! `ends` compares where a grid with a final step to σ = 0 ends (the sampling ε, T/N as
//! diffusers' `linspace`, fixed λ) for each spacing and deterministic sampler, on an SDE or a
//! flow path (`--sde condot|cosine`: the exact velocity).
//!
//! `spacing` runs every few-step sampler with every continuous spacing (time, logsnr, karras)
//! on the exact field under one SDE (`--sde`, any `SdeConfig` name), median SW₂ over seeds: the
//! evidence for each sampler's default spacing.
//!
//! `mixture` prints the data set's Gaussian-mixture parameters (the single source of the exact
//! field both sides use). `compare` scores diffusers' samples (`DIR/*.npy`, timings in
//! `DIR/timings.jsonl`) and ours — the same five samplers driven by diffusers' own discrete
//! schedule (1000-step linear ᾱ table, each scheduler's default spacing and final σ = 0), then
//! on the continuous VP SDE (β 0.1 → 20) — by SW₂ against one n-point reference set (seed
//! 10000; 256 directions, seed 30000; floor = n fresh points, seed 20000), median over
//! `--seeds` sampling seeds, with wall times (total and inside the field).
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use scoreflow::data::{load_points, Dataset, Points};
use scoreflow::field::analytic::{GaussianMixture, MixtureScore, MixtureVelocity};
use scoreflow::metrics::sliced_wasserstein2;
use scoreflow::path::{GaussianPath, PathKind};
use scoreflow::schedule::{DiscreteSchedule, NoiseSchedule, PathSchedule, Spacing};
use scoreflow::sde::{Sde, SdeConfig, VpSde};
use scoreflow::solve::diffusion::{DiffusionSamplerConfig, DiffusionSamplerKind};
use scoreflow::tensor::{cpu, randn, rng, DType, Tensor};
use scoreflow::VectorField;
use serde_json::{json, Value};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const REFERENCE_SEED: u64 = 10_000;
const FLOOR_SEED: u64 = 20_000;
const METRIC_SEED: u64 = 30_000;
const DIRECTIONS: usize = 256;

/// Our sampler and the diffusers scheduler it is compared with.
const PAIRS: [(DiffusionSamplerKind, &str); 5] = [
    (DiffusionSamplerKind::Ddim, "DDIMScheduler"),
    (DiffusionSamplerKind::Dpmpp2m, "DPMSolverMultistepScheduler"),
    (DiffusionSamplerKind::EdmEuler, "EulerDiscreteScheduler"),
    (DiffusionSamplerKind::EdmHeun, "HeunDiscreteScheduler"),
    (DiffusionSamplerKind::UniPc, "UniPCMultistepScheduler"),
];

/// Sampler steps within an NFE budget: Heun takes 2N − 1 evaluations (its last step to σ = 0 is
/// Euler), so N = ⌊(budget + 1)/2⌋; the others one per step.
fn steps_for(kind: DiffusionSamplerKind, nfe: usize) -> usize {
    if kind == DiffusionSamplerKind::EdmHeun {
        nfe.div_ceil(2)
    } else {
        nfe
    }
}

/// A field that accumulates the wall time spent in its evaluations.
struct Timed<F> {
    inner: F,
    secs: Cell<f64>,
}

impl<F: VectorField> VectorField for Timed<F> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let t0 = Instant::now();
        let v = self.inner.eval(x, t);
        self.secs.set(self.secs.get() + t0.elapsed().as_secs_f64());
        v
    }
}

struct Args {
    cmd: String,
    data: Dataset,
    dir: Option<PathBuf>,
    n: usize,
    seeds: u64,
    nfe: Vec<usize>,
    sde: String,
    samplers: Option<Vec<DiffusionSamplerKind>>,
}

fn parse() -> Res<Args> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or("usage: samplers mixture|compare [flags]")?;
    let mut a = Args {
        cmd,
        data: Dataset::EightGaussians,
        dir: None,
        n: 10_000,
        seeds: 5,
        nfe: vec![5, 10, 20, 50],
        sde: "vp".into(),
        samplers: None,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = value()?.parse()?,
            "--dir" => a.dir = Some(value()?.into()),
            "--sde" => a.sde = value()?,
            "--samplers" => {
                a.samplers = Some(
                    value()?
                        .split(',')
                        .map(|v| v.parse())
                        .collect::<std::result::Result<_, _>>()?,
                )
            }
            "--n" => a.n = value()?.parse()?,
            "--seeds" => a.seeds = value()?.parse()?,
            "--nfe" => {
                a.nfe = value()?
                    .split(',')
                    .map(|v| v.parse())
                    .collect::<std::result::Result<_, _>>()?
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

fn main() -> Res<()> {
    let a = parse()?;
    match a.cmd.as_str() {
        "mixture" => mixture(&a),
        "compare" => compare(&a),
        "spacing" => spacing(&a),
        "ends" => ends(&a),
        other => Err(format!("unknown command {other} (mixture, compare, spacing)").into()),
    }
}

fn mixture(a: &Args) -> Res<()> {
    let spec = a
        .data
        .mixture()
        .ok_or_else(|| format!("{} is not a Gaussian mixture", a.data.name()))?;
    println!(
        "{}",
        json!({"data": a.data.name(), "weights": spec.weights(), "means": spec.means(),
               "covs": spec.covs()})
    );
    Ok(())
}

/// One scored run.
struct Cell_ {
    sw2: f64,
    wall: f64,
    field: f64,
    nfe: usize,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Runs our `kind` on `schedule` for every NFE budget and seed.
fn ours(
    a: &Args,
    mix: &GaussianMixture,
    schedule: Arc<dyn NoiseSchedule>,
    reference: &Points,
    kind: DiffusionSamplerKind,
) -> Res<BTreeMap<usize, Vec<Cell_>>> {
    ours_with(a, mix, schedule, reference, kind, None)
}

/// [`ours`] with an explicit spacing (`None`: the sampler's default).
fn ours_with(
    a: &Args,
    mix: &GaussianMixture,
    schedule: Arc<dyn NoiseSchedule>,
    reference: &Points,
    kind: DiffusionSamplerKind,
    spacing: Option<Spacing>,
) -> Res<BTreeMap<usize, Vec<Cell_>>> {
    ours_grid(a, mix, schedule, reference, kind, &|cfg| {
        cfg.spacing = spacing
    })
}

/// [`ours`] with the configuration adjusted by `grid` (spacing, end time) for each budget.
fn ours_grid(
    a: &Args,
    mix: &GaussianMixture,
    schedule: Arc<dyn NoiseSchedule>,
    reference: &Points,
    kind: DiffusionSamplerKind,
    grid: &dyn Fn(&mut DiffusionSamplerConfig),
) -> Res<BTreeMap<usize, Vec<Cell_>>> {
    // The exact field the schedule's samplers follow: the perturbed score, or a path's velocity.
    let inner: Box<dyn VectorField> = match schedule.schedule_name() {
        "condot" => Box::new(MixtureVelocity::new(
            mix.clone(),
            GaussianPath::new(PathKind::Condot),
        )),
        "cosine" => Box::new(MixtureVelocity::new(
            mix.clone(),
            GaussianPath::new(PathKind::Cosine),
        )),
        _ => Box::new(MixtureScore::new(mix.clone(), schedule.clone())),
    };
    let field = Timed {
        inner,
        secs: Cell::new(0.0),
    };
    let mut out: BTreeMap<usize, Vec<Cell_>> = BTreeMap::new();
    for &nfe in &a.nfe {
        let mut cfg = DiffusionSamplerConfig::new(kind, steps_for(kind, nfe));
        grid(&mut cfg);
        let sampler = cfg.build(schedule.clone())?;
        for seed in 0..a.seeds {
            let x = randn(a.n, 2, &cpu(), DType::F32, &mut rng(seed)) * schedule.start_std();
            field.secs.set(0.0);
            let t0 = Instant::now();
            let s = sampler.sample(&field, x, &mut rng(1000 + seed))?;
            let wall = t0.elapsed().as_secs_f64();
            let sw2 = sliced_wasserstein2(
                &Points::from_tensor(&s.x),
                reference,
                DIRECTIONS,
                &mut rng(METRIC_SEED),
            )?;
            out.entry(nfe).or_default().push(Cell_ {
                sw2,
                wall,
                field: field.secs.get(),
                nfe: s.nfe,
            });
        }
    }
    Ok(out)
}

/// Median, min and max SW₂, median wall and field seconds, NFE of a cell.
fn summary(cells: &mut [Cell_]) -> Value {
    let mut sw: Vec<f64> = cells.iter().map(|c| c.sw2).collect();
    let (lo, hi) = (
        sw.iter().cloned().fold(f64::INFINITY, f64::min),
        sw.iter().cloned().fold(0.0, f64::max),
    );
    let mut wall: Vec<f64> = cells.iter().map(|c| c.wall).collect();
    let mut field: Vec<f64> = cells.iter().map(|c| c.field).collect();
    json!({"sw2": median(&mut sw), "sw2_min": lo, "sw2_max": hi,
           "wall_s": median(&mut wall), "field_s": median(&mut field),
           "nfe": cells[0].nfe, "seeds": cells.len()})
}

fn compare(a: &Args) -> Res<()> {
    let dir = a
        .dir
        .clone()
        .ok_or("compare needs --dir (written by bench/diffusers_compare.py)")?;
    let spec = a
        .data
        .mixture()
        .ok_or_else(|| format!("{} is not a Gaussian mixture", a.data.name()))?;
    let mix = GaussianMixture::from(&spec);
    let reference = a.data.sample(a.n, &mut rng(REFERENCE_SEED));
    let fresh = a.data.sample(a.n, &mut rng(FLOOR_SEED));
    let floor = sliced_wasserstein2(&fresh, &reference, DIRECTIONS, &mut rng(METRIC_SEED))?;
    println!(
        "{}",
        json!({"kind": "floor", "data": a.data.name(), "n": a.n, "sw2": floor})
    );

    // diffusers: one JSON line per run in timings.jsonl.
    let mut theirs: BTreeMap<(String, usize), Vec<Cell_>> = BTreeMap::new();
    let text = std::fs::read_to_string(dir.join("timings.jsonl"))?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        let sched = v["scheduler"]
            .as_str()
            .ok_or("timings: no scheduler")?
            .to_string();
        let budget = v["budget"].as_u64().ok_or("timings: no budget")? as usize;
        let file = dir.join(v["file"].as_str().ok_or("timings: no file")?);
        let x = load_points(&file, Some(2))?;
        let sw2 = sliced_wasserstein2(&x, &reference, DIRECTIONS, &mut rng(METRIC_SEED))?;
        theirs.entry((sched, budget)).or_default().push(Cell_ {
            sw2,
            wall: v["wall_s"].as_f64().unwrap_or(f64::NAN),
            field: v["field_s"].as_f64().unwrap_or(f64::NAN),
            nfe: v["nfe"].as_u64().unwrap_or(0) as usize,
        });
    }

    let discrete: Arc<dyn NoiseSchedule> = Arc::new(DiscreteSchedule::default());
    let vp: Arc<dyn Sde> = Arc::new(VpSde::default());
    let vp: Arc<dyn NoiseSchedule> = Arc::new(vp);
    let mut rows = Vec::new();
    for (kind, sched) in PAIRS {
        let mut same = ours(a, &mix, discrete.clone(), &reference, kind)?;
        let mut cont = ours(a, &mix, vp.clone(), &reference, kind)?;
        for &nfe in &a.nfe {
            let d = theirs
                .get_mut(&(sched.to_string(), nfe))
                .map(|c| summary(c))
                .unwrap_or(Value::Null);
            let o = summary(same.get_mut(&nfe).ok_or("missing cell")?);
            let c = summary(cont.get_mut(&nfe).ok_or("missing cell")?);
            let row = json!({"kind": "cell", "data": a.data.name(), "sampler": kind.name(),
                "diffusers": sched, "budget": nfe, "floor": floor,
                "theirs": d, "ours": o, "ours_continuous_vp": c});
            println!("{row}");
            rows.push(row);
        }
    }
    // A markdown table for BENCHMARKS.md.
    println!(
        "\n{} (n = {}, SW₂ floor {:.4}; median [min–max] over {} seeds; ms = median wall per run, field share in parentheses)\n",
        a.data.name(),
        a.n,
        floor,
        a.seeds
    );
    println!("| sampler | NFE (theirs / ours) | diffusers SW₂ | ours SW₂ (same schedule) | ours SW₂ (VP β 0.1→20) | diffusers ms | ours ms | speed-up |");
    println!("|---|---|---|---|---|---|---|---|");
    let fmt = |v: &Value| {
        if v.is_null() {
            "–".to_string()
        } else {
            format!(
                "{:.4} [{:.4}–{:.4}]",
                v["sw2"].as_f64().unwrap_or(f64::NAN),
                v["sw2_min"].as_f64().unwrap_or(f64::NAN),
                v["sw2_max"].as_f64().unwrap_or(f64::NAN)
            )
        }
    };
    let ms = |v: &Value| {
        if v.is_null() {
            "–".to_string()
        } else {
            format!(
                "{:.1} ({:.0} %)",
                1e3 * v["wall_s"].as_f64().unwrap_or(f64::NAN),
                100.0 * v["field_s"].as_f64().unwrap_or(f64::NAN)
                    / v["wall_s"].as_f64().unwrap_or(f64::NAN)
            )
        }
    };
    for r in &rows {
        let (t, o) = (&r["theirs"], &r["ours"]);
        let speed =
            t["wall_s"].as_f64().unwrap_or(f64::NAN) / o["wall_s"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {} / {} | {} | {} | {} | {} | {} | {:.2}× |",
            r["sampler"].as_str().unwrap_or(""),
            t["nfe"].as_u64().map_or("–".into(), |v| v.to_string()),
            o["nfe"],
            fmt(t),
            fmt(o),
            fmt(&r["ours_continuous_vp"]),
            ms(t),
            ms(o),
            speed
        );
    }
    Ok(())
}

/// Every sampler × continuous spacing on the exact field under `--sde`.
/// The end of a continuous grid that a final step to σ = 0 leaves from, as `ends` tries it.
#[derive(Clone, Copy)]
enum End {
    /// The schedule's sampling ε (10⁻³ for VP): today's default.
    Eps,
    /// T/N for N evaluated levels: a grid of N + 1 points from T to 0 with the last (the data)
    /// not evaluated, as diffusers' `linspace` timesteps on its table.
    OverN,
    /// A fixed log-SNR λ.
    Lambda(f64),
}

/// Grid candidates for the final step to σ = 0 on one SDE (`--sde`): every deterministic
/// few-step sampler × spacing × [`End`], median SW₂ ratio over seeds at each NFE budget.
fn ends(a: &Args) -> Res<()> {
    let spec = a
        .data
        .mixture()
        .ok_or_else(|| format!("{} is not a Gaussian mixture", a.data.name()))?;
    let mix = GaussianMixture::from(&spec);
    let reference = a.data.sample(a.n, &mut rng(REFERENCE_SEED));
    let fresh = a.data.sample(a.n, &mut rng(FLOOR_SEED));
    let floor = sliced_wasserstein2(&fresh, &reference, DIRECTIONS, &mut rng(METRIC_SEED))?;
    let schedule: Arc<dyn NoiseSchedule> = match a.sde.as_str() {
        "condot" => Arc::new(PathSchedule::new(PathKind::Condot)),
        "cosine" => Arc::new(PathSchedule::new(PathKind::Cosine)),
        name => Arc::new(name.parse::<SdeConfig>()?.build()?),
    };
    use DiffusionSamplerKind as K;
    let candidates = [
        (Spacing::LogSnr, End::Eps),
        (Spacing::LogSnr, End::OverN),
        (Spacing::LogSnr, End::Lambda(2.0)),
        (Spacing::Time, End::OverN),
        (Spacing::Karras, End::Eps),
        (Spacing::Karras, End::OverN),
    ];
    let kinds = a.samplers.clone().unwrap_or_else(|| {
        vec![
            K::Ddim,
            K::DpmSolver,
            K::Dpmpp2m,
            K::Dpmpp3m,
            K::UniPc,
            K::EdmHeun,
            K::Dpmpp2s,
        ]
    });
    for kind in kinds {
        for (sp, end) in candidates {
            let sched = schedule.clone();
            let grid = move |cfg: &mut DiffusionSamplerConfig| {
                cfg.spacing = Some(sp);
                let n = cfg.steps;
                cfg.t_end = match end {
                    End::Eps => None,
                    // N + 1 points uniform in t from t_noise to the data end, last dropped.
                    End::OverN => Some(
                        sched.t_noise()
                            + (sched.t_data() - sched.t_noise()) * (n - 1) as f64 / n as f64,
                    ),
                    End::Lambda(l) => Some(sched.time_of_lambda(l)),
                };
            };
            let end_name = match end {
                End::Eps => "eps".to_string(),
                End::OverN => "T/N".to_string(),
                End::Lambda(l) => format!("lambda={l}"),
            };
            let mut cells = ours_grid(a, &mix, schedule.clone(), &reference, kind, &grid)?;
            for (nfe, c) in cells.iter_mut() {
                let sm = summary(c);
                println!(
                    "{}",
                    json!({"kind": "ends", "data": a.data.name(), "sde": a.sde,
                           "sampler": kind.name(), "spacing": sp.name(), "end": end_name,
                           "budget": nfe, "nfe": sm["nfe"], "sw2": sm["sw2"],
                           "sw2_min": sm["sw2_min"], "sw2_max": sm["sw2_max"],
                           "ratio": sm["sw2"].as_f64().unwrap_or(f64::NAN) / floor,
                           "ratio_min": sm["sw2_min"].as_f64().unwrap_or(f64::NAN) / floor,
                           "ratio_max": sm["sw2_max"].as_f64().unwrap_or(f64::NAN) / floor})
                );
            }
        }
    }
    Ok(())
}

fn spacing(a: &Args) -> Res<()> {
    let spec = a
        .data
        .mixture()
        .ok_or_else(|| format!("{} is not a Gaussian mixture", a.data.name()))?;
    let mix = GaussianMixture::from(&spec);
    let reference = a.data.sample(a.n, &mut rng(REFERENCE_SEED));
    let fresh = a.data.sample(a.n, &mut rng(FLOOR_SEED));
    let floor = sliced_wasserstein2(&fresh, &reference, DIRECTIONS, &mut rng(METRIC_SEED))?;
    let sde: Arc<dyn Sde> = a.sde.parse::<SdeConfig>()?.build()?;
    let schedule: Arc<dyn NoiseSchedule> = Arc::new(sde);
    for kind in DiffusionSamplerKind::ALL {
        for sp in [Spacing::Time, Spacing::LogSnr, Spacing::Karras] {
            let mut cells = ours_with(a, &mix, schedule.clone(), &reference, kind, Some(sp))?;
            for (nfe, c) in cells.iter_mut() {
                let sm = summary(c);
                println!(
                    "{}",
                    json!({"kind": "spacing", "data": a.data.name(), "sde": a.sde,
                           "sampler": kind.name(), "spacing": sp.name(), "budget": nfe,
                           "nfe": sm["nfe"], "sw2": sm["sw2"], "sw2_min": sm["sw2_min"],
                           "sw2_max": sm["sw2_max"], "ratio": sm["sw2"].as_f64().unwrap_or(f64::NAN) / floor})
                );
            }
        }
    }
    Ok(())
}
