//! The Gaussian-mixture inverse-problem benchmark of Cardoso et al. 2023 (MCGdiff; see
//! `scoreflow::inverse::mcgdiff`): per (d_x, d_y), random problems with the exact prior score;
//! each posterior sampler draws 2,000 samples at the same NFE budget and is scored by SW₁
//! (100 random directions) against 2,000 draws of the exact posterior. Prints a table and
//! writes one JSON line per (problem, sampler).
//!
//! Run: `cargo run --release --example mcgdiff -- --dims 8,80,800 --dys 1,2,4 --problems 20
//!       --nfe 1000 --out bench/mcgdiff-results.jsonl`
//! Options: --samples N (2000), --seed S (0), --zeta a,b,… (DPS step sizes, 1.0),
//! --v a,b,… (the Π-GDM / TDS data variance; `data`, the default, is the prior's own),
//! --methods exact,dps,pigdm,tmpd,tds,tds-tmpd,ald (default all but tds-tmpd), --verbose
//! (one line per run), --problems-json DIR (each problem's prior weights, A, y, σ and
//! reference samples, for the PyTorch comparison in `bench/`).

use std::collections::BTreeMap;
use std::io::Write as _;

use scoreflow::inverse::mcgdiff::{run, Method, Problem};
use scoreflow::tensor::rng;

fn arg<T: std::str::FromStr>(args: &[String], key: &str, default: T) -> T {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn list<T: std::str::FromStr>(args: &[String], key: &str, default: &str) -> Vec<T> {
    let s: String = arg(args, key, default.to_string());
    s.split(',').filter_map(|v| v.trim().parse().ok()).collect()
}

/// SW₁, NFE and seconds of one run.
type Score = (f64, usize, f64);

fn main() -> scoreflow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dims: Vec<usize> = list(&args, "--dims", "8,80,800");
    let dys: Vec<usize> = list(&args, "--dys", "1,2,4");
    let problems: usize = arg(&args, "--problems", 20);
    let nfe: usize = arg(&args, "--nfe", 1000);
    let n: usize = arg(&args, "--samples", 2000);
    let seed: u64 = arg(&args, "--seed", 0);
    let zetas: Vec<f64> = list(&args, "--zeta", "1.0");
    // "data": the prior's own per-coordinate variance.
    let pigdm_v: Vec<Option<f64>> = list::<String>(&args, "--v", "data")
        .iter()
        .map(|v| v.parse().ok())
        .collect();
    let verbose = args.iter().any(|a| a == "--verbose");
    let names: Vec<String> = list(&args, "--methods", "exact,dps,pigdm,tmpd,tds,ald");
    let out: String = arg(&args, "--out", String::new());
    let dump: String = arg(&args, "--problems-json", String::new());
    let mut methods = Vec::new();
    for name in &names {
        match name.as_str() {
            "exact" => methods.push(Method::Exact),
            "dps" => methods.extend(zetas.iter().map(|&zeta| Method::Dps { zeta })),
            "pigdm" => methods.extend(
                pigdm_v
                    .iter()
                    .map(|&data_variance| Method::PiGdm { data_variance }),
            ),
            "ald" => methods.push(Method::AnnealedNoisy),
            "tmpd" => methods.push(Method::Tmpd),
            "tds" => methods.extend(
                pigdm_v
                    .iter()
                    .map(|&data_variance| Method::Tds { data_variance }),
            ),
            "tds-tmpd" => methods.push(Method::TdsTmpd),
            other => eprintln!("unknown method {other} (exact, dps, pigdm, ald)"),
        }
    }
    let mut sink = if out.is_empty() {
        None
    } else {
        Some(std::fs::File::create(&out).map_err(|e| scoreflow::Error::io(&out, e))?)
    };
    // (d, d_y, method) → SW₁, NFE and seconds of every problem.
    let mut table: BTreeMap<(usize, usize, String), Vec<Score>> = BTreeMap::new();
    println!("MCGdiff GMM benchmark: {problems} problems per pair, NFE {nfe}, {n} samples, SW₁ over 100 directions");
    for &d in &dims {
        for &dy in &dys {
            for p in 0..problems {
                let key = seed ^ ((d as u64) << 32) ^ ((dy as u64) << 16) ^ p as u64;
                let problem = Problem::generate(d, dy, &mut rng(key))?;
                let reference = problem.posterior_samples(n, &mut rng(key ^ 0xBEEF));
                if !dump.is_empty() {
                    let path = format!("{dump}/problem-d{d}-dy{dy}-p{p}.json");
                    let json = serde_json::json!({
                        "d": d, "dy": dy, "problem": p,
                        "weights": problem.prior.weights(),
                        "obs": serde_json::from_str::<serde_json::Value>(&problem.obs.to_json()).unwrap(),
                        "reference": reference.as_slice(),
                    });
                    std::fs::write(&path, json.to_string())
                        .map_err(|e| scoreflow::Error::io(&path, e))?;
                }
                let prior_sw = Problem::score(
                    &problem.prior_samples(n, &mut rng(key ^ 0xF00D)),
                    &reference,
                    &mut rng(key ^ 0xD1),
                )?;
                table
                    .entry((d, dy, "prior".into()))
                    .or_default()
                    .push((prior_sw, 0, 0.0));
                for &m in &methods {
                    let r = run(&problem, m, nfe, n, &mut rng(key ^ 0x5A))?;
                    let sw = Problem::score(&r.samples, &reference, &mut rng(key ^ 0xD1))?;
                    if verbose {
                        println!("  d {d} d_y {dy} problem {p}: {:<14} SW₁ {sw:.3} (prior {prior_sw:.3})", m.name());
                    }
                    table
                        .entry((d, dy, m.name()))
                        .or_default()
                        .push((sw, r.nfe, r.seconds));
                    if let Some(f) = sink.as_mut() {
                        let line = serde_json::json!({
                            "d": d, "dy": dy, "problem": p, "method": m.name(),
                            "sw1": sw, "nfe": r.nfe, "seconds": r.seconds, "prior_sw1": prior_sw,
                        });
                        writeln!(f, "{line}").map_err(|e| scoreflow::Error::io(&out, e))?;
                    }
                }
            }
            println!("\nd_x = {d}, d_y = {dy}");
            println!(
                "{:<14} {:>10} {:>10} {:>8} {:>10}",
                "sampler", "SW₁ mean", "± SE", "NFE", "s/run"
            );
            for ((dd, yy, name), v) in table.range((d, dy, String::new())..) {
                if (*dd, *yy) != (d, dy) {
                    break;
                }
                let k = v.len() as f64;
                let mean = v.iter().map(|r| r.0).sum::<f64>() / k;
                let sd = (v.iter().map(|r| (r.0 - mean).powi(2)).sum::<f64>() / (k - 1.0).max(1.0))
                    .sqrt();
                let nfe = v.iter().map(|r| r.1).sum::<usize>() / v.len();
                let secs = v.iter().map(|r| r.2).sum::<f64>() / k;
                println!(
                    "{name:<14} {mean:>10.3} {:>10.3} {nfe:>8} {secs:>10.2}",
                    sd / k.sqrt()
                );
            }
        }
    }
    Ok(())
}
