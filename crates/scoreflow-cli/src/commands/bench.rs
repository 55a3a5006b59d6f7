//! `scoreflow bench`: the reference_fm.py `--bench-only` workload, as one JSON line.

use anyhow::Result;
use scoreflow::bench::{self, BenchConfig};

use crate::cli::BenchArgs;
use crate::output::Mode;

/// Runs `scoreflow bench`. `threads` is the global `--threads` (the pool is already sized).
pub fn run(args: BenchArgs, mode: Mode, threads: Option<usize>) -> Result<()> {
    let cfg = BenchConfig {
        threads: threads.unwrap_or(0),
        width: args.width,
        depth: args.depth,
        batch: args.batch,
        engine: args.engine,
        device: args.device,
        dopri5: args.dopri5,
        nll_points: args.nll,
        seed: args.seed,
        ..BenchConfig::default()
    };
    // A missing device is an error before anything is printed.
    cfg.device.open()?;
    if mode == Mode::Normal {
        eprintln!(
            "bench: {} engine on {}, MLP 3→{}×{}→2, batch {}, {} threads: {} warm-up + {} timed training steps, then {} points × {} Euler steps",
            cfg.resolved_engine().name(),
            cfg.device,
            cfg.width,
            cfg.depth,
            cfg.batch,
            if cfg.threads == 0 { rayon::current_num_threads() } else { cfg.threads },
            cfg.warmup_steps,
            cfg.train_steps,
            cfg.sample_points,
            cfg.sample_steps
        );
    }
    let r = bench::run(&cfg)?;
    mode.json(&r)?;
    mode.say(format!(
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
    ));
    Ok(())
}
