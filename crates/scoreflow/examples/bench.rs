//! Runs `scoreflow::bench::run` and prints its JSON line (what `scoreflow bench` does).
//!
//! cargo run --release --example bench -- [--engine fused|burn] [--threads 2] [--width 512]
//!     [--depth 4] [--batch 1024] [--steps 200] [--warmup 20] [--points 10000] [--nfe 100]
//!     [--dopri5] [--nll N] [--seed 0]
use scoreflow::bench::{run, BenchConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = BenchConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--engine" => cfg.engine = value()?.parse()?,
            "--threads" => cfg.threads = value()?.parse()?,
            "--width" => cfg.width = value()?.parse()?,
            "--depth" => cfg.depth = value()?.parse()?,
            "--batch" => cfg.batch = value()?.parse()?,
            "--steps" => cfg.train_steps = value()?.parse()?,
            "--warmup" => cfg.warmup_steps = value()?.parse()?,
            "--points" => cfg.sample_points = value()?.parse()?,
            "--nfe" => cfg.sample_steps = value()?.parse()?,
            "--dopri5" => cfg.dopri5 = true,
            "--nll" => cfg.nll_points = value()?.parse()?,
            "--seed" => cfg.seed = value()?.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    println!("{}", serde_json::to_string(&run(&cfg)?)?);
    Ok(())
}
