//! Times one U-Net training step (forward + backward of the flow-matching regression loss) on
//! burn's Flex CPU backend for a few sizes.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p scoreflow --example unet_step -- [batch] [reps]`

use std::time::Instant;

use scoreflow::field::unet::UnetConfig;
use scoreflow::tensor::{cpu, randn, rng, uniform, DType};

/// CPU seconds (user + system) this process has used, from /proc/self/stat (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> scoreflow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let batch = args.first().copied().unwrap_or(128);
    let reps = args.get(1).copied().unwrap_or(5);
    let dev = cpu().autodiff();
    let mut r = rng(0);
    let sizes: Vec<(usize, Vec<usize>, usize, bool)> = match std::env::var("SIZES") {
        Ok(s) => s
            .split_whitespace()
            .map(|u| {
                // base:m1,m2:blocks:attn
                let p: Vec<&str> = u.split(':').collect();
                (
                    p[0].parse().unwrap(),
                    p[1].split(',').map(|m| m.parse().unwrap()).collect(),
                    p[2].parse().unwrap(),
                    p[3] == "1",
                )
            })
            .collect(),
        Err(_) => vec![(32, vec![1, 2], 1, true)],
    };
    for (base, mults, blocks, attn) in sizes {
        let cfg = UnetConfig {
            res_blocks: blocks,
            attention: attn,
            ..UnetConfig::new(1, 8, 8, base, &mults)
        };
        let net = cfg.init(&dev, DType::F32, &mut r)?;
        let mut times = Vec::new();
        let mut cpu = 0.0;
        for _ in 0..reps + 1 {
            let x = randn(batch, 64, &dev, DType::F32, &mut r);
            let y = randn(batch, 64, &dev, DType::F32, &mut r);
            let t = uniform(batch, 0.0, 1.0, &dev, DType::F32, &mut r);
            let start = Instant::now();
            let c0 = cpu_seconds();
            let v = net.forward(&x, &t, None);
            let loss = (v - y).square().mean();
            let grads = loss.backward();
            let g = net.conv_in.weight.val().grad(&grads).unwrap();
            let _ = g.into_data();
            times.push(start.elapsed().as_secs_f64());
            if times.len() > 1 {
                cpu += cpu_seconds() - c0;
            }
        }
        times.remove(0);
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{}: {} params, batch {batch}: median step {:.1} ms (min {:.1}), CPU {:.1} ms/step",
            cfg.describe(),
            cfg.num_params(),
            1e3 * times[times.len() / 2],
            1e3 * times[0],
            1e3 * cpu / reps as f64
        );
    }
    Ok(())
}
