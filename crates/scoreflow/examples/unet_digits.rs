//! Flow matching on the built-in 8 × 8 digits with the U-Net, end to end: train, sample a grid,
//! nearest training neighbours of the samples, bits/dim of held-out digits through the flow ODE
//! — on the CPU or a GPU (`--device vulkan`), optionally checked against the CPU.
//!
//! ```text
//! cargo run --release -p scoreflow --example unet_digits -- --out /tmp/digits
//! cargo run --release -p scoreflow --features vulkan --example unet_digits -- \
//!     --device vulkan --steps 200 --compare-cpu --out /tmp/gpu
//! ```
//!
//! Flags (defaults): `--device cpu`, `--steps 2000`, `--batch 128`, `--lr 1e-3` (one-cycle,
//! EMA 0.999 with warm-up, clip 1), `--base 32`, `--seed 0`, `--samples 100`, `--euler 100`,
//! `--nll 180` held-out digits (all), `--probes 4`, `--out DIR`, `--compare-cpu`.
//! Writes `DIR/{samples.png, neighbours.png, samples.csv, train.csv, test.csv, summary.json}`
//! and prints the summary as one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use scoreflow::data::images::Tiles;
use scoreflow::data::{Images, Points};
use scoreflow::device::DeviceChoice;
use scoreflow::field::network::{Conditioned, Network};
use scoreflow::field::unet::{Unet, UnetConfig};
use scoreflow::likelihood::{
    log_likelihood_discrete, Dequantization, Divergence, IsotropicGaussian, LikelihoodOptions,
    ProbeNoise,
};
use scoreflow::objective::cfm::FlowMatching;
use scoreflow::path::{CondOt, GaussianPath};
use scoreflow::solve::{odeint, Method, OdeOptions};
use scoreflow::tensor::{cpu, randn, rng, to_vec, DType, Device, Tensor};
use scoreflow::train::{Control, Dequantized, EmaConfig, TrainConfig, Trainer};
use scoreflow::{Error, Result};

struct Args {
    device: DeviceChoice,
    steps: usize,
    batch: usize,
    lr: f64,
    base: usize,
    seed: u64,
    samples: usize,
    euler: usize,
    nll: usize,
    probes: usize,
    out: PathBuf,
    compare_cpu: bool,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        device: DeviceChoice::Cpu,
        steps: 2000,
        batch: 128,
        lr: 1e-3,
        base: 32,
        seed: 0,
        samples: 100,
        euler: 100,
        nll: 180,
        probes: 4,
        out: std::env::temp_dir().join("unet_digits"),
        compare_cpu: false,
    };
    let mut it = std::env::args().skip(1);
    let bad = |f: &str, v: &str| Error::InvalidInput(format!("{f}: cannot parse '{v}'"));
    while let Some(flag) = it.next() {
        if flag == "--compare-cpu" {
            a.compare_cpu = true;
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| Error::InvalidInput(format!("{flag} needs a value")))?;
        let num = |v: &str| v.parse::<usize>().map_err(|_| bad(&flag, v));
        match flag.as_str() {
            "--device" => a.device = v.parse()?,
            "--steps" => a.steps = num(&v)?,
            "--batch" => a.batch = num(&v)?,
            "--lr" => a.lr = v.parse().map_err(|_| bad(&flag, &v))?,
            "--base" => a.base = num(&v)?,
            "--seed" => a.seed = num(&v)? as u64,
            "--samples" => a.samples = num(&v)?,
            "--euler" => a.euler = num(&v)?,
            "--nll" => a.nll = num(&v)?,
            "--probes" => a.probes = num(&v)?,
            "--out" => a.out = v.into(),
            other => return Err(Error::InvalidInput(format!("unknown flag {other}"))),
        }
    }
    Ok(a)
}

/// `images` as CSV rows: pixels, then the label.
fn write_labelled_csv(path: &std::path::Path, images: &Images) -> Result<()> {
    let mut s = String::new();
    let labels = images.labels.clone().unwrap_or_default();
    for (i, row) in images.pixels.rows().enumerate() {
        let px: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        s.push_str(&px.join(","));
        s.push_str(&format!(",{}\n", labels.get(i).copied().unwrap_or(0)));
    }
    std::fs::write(path, s).map_err(|e| Error::io(path, e))
}

/// Euler samples of the flow from the given noise (flow time 0 → 1).
fn euler(net: &Unet, noise: Tensor<2>, steps: usize) -> Result<Tensor<2>> {
    let field = Conditioned::unconditional(net);
    Ok(odeint(
        &field,
        noise,
        0.0,
        1.0,
        &OdeOptions::fixed(Method::Euler, steps),
    )?
    .x)
}

/// bits/dim of `test` (integer levels) through the flow ODE (dopri5 1e-5, Hutchinson probes).
fn bits_per_dim(
    net: &Unet,
    test: &Images,
    dq: &Dequantization,
    probes: usize,
    device: &Device,
    seed: u64,
) -> Result<scoreflow::likelihood::Likelihood> {
    let field = Conditioned::unconditional(net);
    let x = test.pixels.to_tensor(device, DType::F32);
    let opts = LikelihoodOptions {
        ode: OdeOptions::dopri5(1e-5, 1e-5),
        divergence: Divergence::Hutchinson {
            probes,
            noise: ProbeNoise::Rademacher,
        },
        round_trip: false,
        chunk: Some(60),
    };
    log_likelihood_discrete(
        &field,
        &IsotropicGaussian::standard(),
        &x,
        dq,
        1.0,
        0.0,
        &opts,
        &mut rng(seed),
    )
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let a = parse()?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let device = a.device.open()?;
    let digits = Images::digits()?;
    let (train, test) = digits.split(0.1, 0)?;
    write_labelled_csv(&a.out.join("train.csv"), &train)?;
    write_labelled_csv(&a.out.join("test.csv"), &test)?;
    let dq = Dequantization::symmetric(digits.levels);
    let shape = (digits.channels, digits.height, digits.width);

    let cfg = UnetConfig {
        base: a.base,
        ..UnetConfig::default_for(shape.0, shape.1, shape.2)
    };
    let net = cfg.init(&device, DType::F32, &mut rng(a.seed))?;
    let mut tc = TrainConfig::recipe(a.steps, a.batch, a.seed);
    tc.optimizer.lr = a.lr;
    tc.optimizer.clip_grad_norm = Some(1.0);
    tc.ema = Some(EmaConfig {
        decay: 0.999,
        warmup: true,
    });
    let mut trainer = Trainer::<Unet>::burn(&net, tc)?;
    let fm = FlowMatching::new(GaussianPath::new(CondOt));
    let mut data = Dequantized::new(train.pixels.clone(), dq)?;
    let start = Instant::now();
    let mut losses = Vec::new();
    trainer.run(&fm, &mut data, &mut |i| {
        losses.push(i.loss);
        if i.step % 100 == 0 || i.step == i.total {
            let n = losses.len().min(100);
            let mean = losses[losses.len() - n..].iter().sum::<f64>() / n as f64;
            eprintln!(
                "step {}/{}: loss {mean:.4} (mean of last {n}), {:.2} steps/s",
                i.step, i.total, i.steps_per_sec
            );
        }
        Control::Continue
    })?;
    let train_s = start.elapsed().as_secs_f64();
    let ema = trainer.sampling_model();

    // Samples (data units), grid and nearest training neighbours.
    let start = Instant::now();
    let noise = randn(
        a.samples,
        cfg.dim(),
        &device,
        DType::F32,
        &mut rng(a.seed + 1),
    );
    let z = euler(&ema, noise.clone(), a.euler)?;
    let sample_s = start.elapsed().as_secs_f64();
    let samples = dq.to_data_units(&Points::from_tensor(&z))?;
    scoreflow::data::write_csv(a.out.join("samples.csv"), &samples)?;
    let rows: Vec<&[f64]> = samples.rows().collect();
    let tiles = Tiles {
        columns: 10,
        padding: 2,
        scale: 4,
    };
    tiles.write(&a.out.join("samples.png"), &rows, shape, digits.levels)?;
    let mut pairs: Vec<&[f64]> = Vec::new();
    let mut nn_dist = Vec::new();
    for s in rows.iter().take(20) {
        let (best, d2) = train
            .pixels
            .rows()
            .map(|t| {
                t.iter()
                    .zip(s.iter())
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
            })
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |acc, (i, d)| if d < acc.1 { (i, d) } else { acc },
            );
        pairs.push(s);
        pairs.push(train.pixels.row(best));
        nn_dist.push(d2.sqrt());
    }
    tiles.write(&a.out.join("neighbours.png"), &pairs, shape, digits.levels)?;
    // Typical distance between two held-out digits, to read the neighbour distances against.
    let mut test_nn = Vec::new();
    for i in 0..test.len().min(20) {
        let d = (0..train.len())
            .map(|j| {
                let (x, y) = (test.pixels.row(i), train.pixels.row(j));
                x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>()
            })
            .fold(f64::INFINITY, f64::min);
        test_nn.push(d.sqrt());
    }

    // bits/dim on held-out digits.
    let held = test.select(&(0..a.nll.min(test.len())).collect::<Vec<_>>());
    let start = Instant::now();
    let lik = bits_per_dim(&ema, &held, &dq, a.probes, &device, a.seed + 2)?;
    let nll_s = start.elapsed().as_secs_f64();

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut summary = serde_json::json!({
        "impl": "scoreflow",
        "device": a.device.to_string(),
        "network": cfg.describe(),
        "params": cfg.num_params(),
        "steps": a.steps,
        "batch": a.batch,
        "train_s": train_s,
        "steps_per_s": a.steps as f64 / train_s,
        "final_loss_mean100": mean(&losses[losses.len().saturating_sub(100)..]),
        "samples": a.samples,
        "euler_steps": a.euler,
        "sample_s": sample_s,
        "samples_per_s": a.samples as f64 / sample_s,
        "nn_dist_samples_mean": mean(&nn_dist),
        "nn_dist_heldout_mean": mean(&test_nn),
        "held_out": held.len(),
        "probes": a.probes,
        "bits_per_dim": lik.bpd,
        "nll_estimator_se_nats": lik.estimator_se,
        "nll_se_nats": lik.se,
        "nll_nfe": lik.nfe,
        "likelihood_s": nll_s,
    });

    if a.compare_cpu {
        // The same EMA weights on the CPU (through the host state dict), the same noise.
        let sd = ema.state_dict();
        let host = Unet::from_state(&sd, "", &cfg, &cpu(), DType::F32)?;
        let z_cpu = euler(&host, noise.to_device(&cpu()), a.euler)?;
        let diff = to_vec(&z_cpu)
            .iter()
            .zip(to_vec(&z))
            .map(|(c, g)| (c - g).abs())
            .fold(0.0, f64::max);
        let n_cmp = held.len().min(20);
        let few = held.select(&(0..n_cmp).collect::<Vec<_>>());
        let l_gpu = bits_per_dim(&ema, &few, &dq, a.probes, &device, a.seed + 3)?;
        let l_cpu = bits_per_dim(&host, &few, &dq, a.probes, &cpu(), a.seed + 3)?;
        summary["cpu_compare"] = serde_json::json!({
            "sample_max_abs_diff_model_units": diff,
            "bpd_gpu_20": l_gpu.bpd,
            "bpd_cpu_20": l_cpu.bpd,
        });
    }
    let line = summary.to_string();
    std::fs::write(a.out.join("summary.json"), &line).map_err(|e| Error::io(&a.out, e))?;
    println!("{line}");
    Ok(())
}
