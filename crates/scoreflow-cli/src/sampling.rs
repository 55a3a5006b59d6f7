//! Reproducible, shardable sampling jobs.
//!
//! A job of n points is cut into fixed blocks of [`BLOCK`] points (the last may be shorter).
//! Block b draws all its randomness — initial noise and any sampler noise — from ChaCha8 seeded
//! with `seed` on stream b, and is integrated on its own. So a point's value depends only on
//! (seed, its global index, the sampler settings), never on how the job is split: shard K of N
//! runs the blocks ⌊(K−1)·B/N⌋ … ⌊K·B/N⌋ − 1 (B = number of blocks), the shards are disjoint,
//! and their concatenation is bit-for-bit the unsharded run. (Adaptive solvers choose their
//! steps per block, which is why blocks, not the shard, are the unit of integration.)

use std::ops::Range;

use anyhow::{bail, Result};
use scoreflow::data::Points;
use scoreflow::tensor::{self, DType, Device, Rng, Tensor};

/// Points per block.
pub const BLOCK: usize = 4096;

/// Which part of an n-point job to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Points in the whole job.
    pub n_total: usize,
    /// Blocks this run computes.
    pub blocks: Range<usize>,
}

impl Plan {
    /// The plan for shard `(k, n_shards)` (1-based k) of an `n`-point job, or the whole job.
    pub fn new(n: usize, shard: Option<(usize, usize)>) -> Plan {
        let nb = n.div_ceil(BLOCK);
        let blocks = match shard {
            None => 0..nb,
            Some((k, s)) => (k - 1) * nb / s..k * nb / s,
        };
        Plan { n_total: n, blocks }
    }

    /// Global point indices of block b.
    pub fn block_range(&self, b: usize) -> Range<usize> {
        b * BLOCK..((b + 1) * BLOCK).min(self.n_total)
    }

    /// Global point indices this run produces.
    pub fn points(&self) -> Range<usize> {
        if self.blocks.is_empty() {
            return 0..0;
        }
        self.block_range(self.blocks.start).start..self.block_range(self.blocks.end - 1).end
    }
}

/// Parses `K/N` with 1 ≤ K ≤ N.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--shard '{s}': expected K/N with 1 <= K <= N, e.g. 2/4");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// The generator of block b: ChaCha8 seeded with `seed`, stream b.
pub fn block_rng(seed: u64, b: usize) -> Rng {
    let mut r = tensor::rng(seed);
    r.set_stream(b as u64);
    r
}

/// What a sampler returns for one block.
pub struct BlockResult {
    /// Final states, `(len, d)`.
    pub x: Tensor<2>,
    /// Field evaluations spent on the block.
    pub nfe: usize,
    /// Intermediate (t, state) pairs, if requested.
    pub trajectory: Vec<(f64, Tensor<2>)>,
}

/// All blocks of a run, concatenated.
pub struct SampleOutput {
    /// Samples in global-index order (the plan's [`Plan::points`]).
    pub points: Points,
    /// Field evaluations per block (one entry per block).
    pub nfe: Vec<usize>,
    /// Per block: the global index of its first point and its trajectory (model units).
    pub trajectories: Vec<(usize, Vec<(f64, Points)>)>,
}

impl SampleOutput {
    /// Mean NFE per block (the cost of one sample path), rounded.
    pub fn nfe_per_path(&self) -> usize {
        if self.nfe.is_empty() {
            0
        } else {
            (self.nfe.iter().sum::<usize>() as f64 / self.nfe.len() as f64).round() as usize
        }
    }
}

/// Runs `sampler(x0, rng)` on every block of `plan`, where x0 is the block's `(len, dim)`
/// N(0, I) noise drawn first from the block's generator and `rng` continues that generator.
/// `progress(done_points)` is called after each block.
pub fn run_blocks(
    plan: &Plan,
    seed: u64,
    dim: usize,
    device: &Device,
    mut sampler: impl FnMut(Tensor<2>, &mut Rng) -> scoreflow::Result<BlockResult>,
    mut progress: impl FnMut(usize),
) -> Result<SampleOutput> {
    let mut data = Vec::with_capacity(plan.points().len() * dim);
    let mut nfe = Vec::new();
    let mut trajectories = Vec::new();
    let mut done = 0;
    for b in plan.blocks.clone() {
        let r = plan.block_range(b);
        let mut rng = block_rng(seed, b);
        let x0 = tensor::randn(r.len(), dim, device, DType::F32, &mut rng);
        let out = sampler(x0, &mut rng)?;
        let pts = Points::from_tensor(&out.x);
        if pts.as_slice().iter().any(|v| !v.is_finite()) {
            bail!("sampling produced non-finite values (NaN or inf) in block {b}; try more --steps or a smaller step size");
        }
        data.extend_from_slice(pts.as_slice());
        nfe.push(out.nfe);
        if !out.trajectory.is_empty() {
            trajectories.push((
                r.start,
                out.trajectory
                    .iter()
                    .map(|(t, x)| (*t, Points::from_tensor(x)))
                    .collect(),
            ));
        }
        done += r.len();
        progress(done);
    }
    Ok(SampleOutput {
        points: Points::new(data, dim)?,
        nfe,
        trajectories,
    })
}

/// Trajectories as long-format CSV text: `t,index,x1,…,xd`, one row per (time, point).
pub fn trajectories_csv(trajs: &[(usize, Vec<(f64, Points)>)], dim: usize) -> String {
    let mut s = String::from("t,index");
    for i in 1..=dim {
        s.push_str(&format!(",x{i}"));
    }
    s.push('\n');
    for (start, traj) in trajs {
        for (t, pts) in traj {
            for (i, row) in pts.rows().enumerate() {
                s.push_str(&format!("{t},{}", start + i));
                for v in row {
                    s.push_str(&format!(",{v}"));
                }
                s.push('\n');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_job() {
        for n in [1, 4095, 4096, 4097, 10_000, 50_000] {
            for s in 1..=7 {
                let mut covered = Vec::new();
                for k in 1..=s {
                    let p = Plan::new(n, Some((k, s)));
                    covered.extend(p.points());
                }
                // Disjoint, in order, and together exactly 0..n.
                assert_eq!(covered, (0..n).collect::<Vec<_>>(), "n={n} shards={s}");
            }
        }
    }

    #[test]
    fn shard_strings_are_validated() {
        assert_eq!(parse_shard("2/4").unwrap(), (2, 4));
        for bad in ["0/4", "5/4", "2", "a/b", "1/0", ""] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    /// The union of shards equals the single run bit for bit, with a sampler that also uses
    /// its generator (as SDE samplers do).
    #[test]
    fn sharded_runs_reproduce_the_single_run() {
        let dev = tensor::cpu();
        let noisy = |x0: Tensor<2>, rng: &mut Rng| -> scoreflow::Result<BlockResult> {
            let z = tensor::randn_like(&x0, rng);
            Ok(BlockResult {
                x: x0 * 2.0 + z,
                nfe: 3,
                trajectory: vec![],
            })
        };
        let n = 2 * BLOCK + 123;
        let whole = run_blocks(&Plan::new(n, None), 7, 2, &dev, noisy, |_| {}).unwrap();
        let mut parts = Vec::new();
        for k in 1..=3 {
            let out = run_blocks(&Plan::new(n, Some((k, 3))), 7, 2, &dev, noisy, |_| {}).unwrap();
            parts.extend_from_slice(out.points.as_slice());
        }
        assert_eq!(parts, whole.points.as_slice());
        assert_eq!(whole.nfe_per_path(), 3);
        // A different seed gives different points.
        let other = run_blocks(&Plan::new(n, None), 8, 2, &dev, noisy, |_| {}).unwrap();
        assert_ne!(other.points.as_slice()[..4], whole.points.as_slice()[..4]);
    }
}
