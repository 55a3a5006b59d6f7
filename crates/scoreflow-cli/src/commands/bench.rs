//! `scoreflow bench`: the reference_fm.py `--bench-only` workload (MLP), or with `--arch unet`
//! the `bench/unet_torch.py --bench` workload (U-Net on the 8×8 digits), as one JSON line.

use anyhow::{bail, Result};
use scoreflow::bench::{self, BenchConfig, BenchOutcome, BenchReport, UnetBenchReport};
use scoreflow::model::{ArchKind, TrainSettings};

use crate::cli::BenchArgs;
use crate::output::Mode;

/// The configuration the flags describe; a flag of the other workload is an error.
fn config(args: &BenchArgs, threads: Option<usize>) -> Result<BenchConfig> {
    let unet = args.arch == Some(ArchKind::Unet);
    let mlp_flags = [
        ("--width", args.width.is_some()),
        ("--depth", args.depth.is_some()),
        ("--dopri5", args.dopri5),
        ("--nll", args.nll > 0),
    ];
    let unet_flags = [
        ("--base", args.base.is_some()),
        ("--mults", args.mults.is_some()),
        ("--res-blocks", args.res_blocks.is_some()),
        ("--attention", args.attention.is_some()),
    ];
    let mut cfg = if unet {
        if let Some((flag, _)) = mlp_flags.iter().find(|f| f.1) {
            bail!("{flag} is a setting of the MLP workload, not of --arch unet");
        }
        // The network and batch of `train --data digits` with the U-Net flags applied.
        let d = TrainSettings::defaults_for("digits");
        let settings = TrainSettings {
            base: args.base.unwrap_or(d.base),
            mults: args.mults.clone().or(d.mults.clone()),
            res_blocks: args.res_blocks.unwrap_or(d.res_blocks),
            attention: args.attention.unwrap_or(d.attention),
            seed: args.seed,
            ..d
        };
        BenchConfig::unet(&settings)?
    } else {
        if let Some((flag, _)) = unet_flags.iter().find(|f| f.1) {
            bail!("{flag} is a U-Net setting: add --arch unet");
        }
        let d = BenchConfig::default();
        BenchConfig {
            width: args.width.unwrap_or(d.width),
            depth: args.depth.unwrap_or(d.depth),
            dopri5: args.dopri5,
            nll_points: args.nll,
            seed: args.seed,
            ..d
        }
    };
    cfg.threads = threads.unwrap_or(0);
    cfg.engine = args.engine;
    cfg.device = args.device;
    cfg.batch = args.batch.unwrap_or(cfg.batch);
    cfg.sample_points = args.samples.unwrap_or(cfg.sample_points);
    cfg.sample_steps = args.euler_steps.unwrap_or(cfg.sample_steps);
    Ok(cfg)
}

/// Runs `scoreflow bench`. `threads` is the global `--threads` (the pool is already sized).
pub fn run(args: BenchArgs, mode: Mode, threads: Option<usize>) -> Result<()> {
    let cfg = config(&args, threads)?;
    // A missing device is an error before anything is printed.
    cfg.device.open()?;
    if mode == Mode::Normal {
        let net = match &cfg.unet {
            Some(u) => format!("{} ({} parameters)", u.describe(), u.num_params()),
            None => format!("MLP 3→{}×{}→2", cfg.width, cfg.depth),
        };
        eprintln!(
            "bench: {} engine on {}, {net}, batch {}, {} threads: {} warm-up + {} timed training steps, then {} {} × {} Euler steps",
            if cfg.unet.is_some() { "burn" } else { cfg.resolved_engine().name() },
            cfg.device,
            cfg.batch,
            if cfg.threads == 0 { rayon::current_num_threads() } else { cfg.threads },
            cfg.warmup_steps,
            cfg.train_steps,
            cfg.sample_points,
            if cfg.unet.is_some() { "images" } else { "points" },
            cfg.sample_steps
        );
    }
    match bench::run(&cfg)? {
        BenchOutcome::Mlp(r) => {
            mode.json(&r)?;
            mode.say(mlp_text(&r));
        }
        BenchOutcome::Unet(r) => {
            mode.json(&r)?;
            mode.say(unet_text(&r));
        }
    }
    Ok(())
}

fn unet_text(r: &UnetBenchReport) -> String {
    format!(
        "training: {:.1} ms/step median (fastest {:.1}), {:.2} steps/s at batch {}\nEuler sampling: {} images × {} steps in {:.2} s ({:.1} images/s)",
        r.step_ms, r.step_ms_min, r.steps_per_s, r.batch, r.samples, r.euler_steps, r.sample_s, r.samples_per_s
    )
}

fn mlp_text(r: &BenchReport) -> String {
    format!(
        "training: {:.2} steps/s ({:.0} samples/s, {:.1} GFLOP/s)\nEuler sampling: {:.0} point-steps/s ({:.1} GFLOP/s, {:.2} s)\nGEMM peak on this machine: {:.1} GFLOP/s{}{}",
        r.train_steps_per_s,
        r.train_samples_per_s,
        r.train_gflops,
        r.sample_point_steps_per_s,
        r.sample_gflops,
        r.sample_time_s,
        r.gemm_peak_gflops,
        r.dopri5.as_ref().map(|d| format!("\ndopri5: {} NFE in {:.2} s ({:.2} ms/NFE)", d.nfe, d.time_s, d.ms_per_nfe)).unwrap_or_default(),
        r.nll.as_ref().map(|d| format!("\nlikelihood: {} points, {} NFE in {:.2} s", d.points, d.nfe, d.time_s)).unwrap_or_default(),
    )
}
