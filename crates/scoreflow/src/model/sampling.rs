//! Reproducible, shardable sampling jobs.
//!
//! A job of n points is cut into fixed blocks of [`BLOCK`] points (the last may be shorter).
//! Block b draws all its randomness — initial noise and any sampler noise — from ChaCha8 seeded
//! with `seed` on stream b, and is integrated on its own. So a point's value depends only on
//! (seed, its global index, the sampler settings), never on how the job is split: shard K of N
//! runs the blocks ⌊(K−1)·B/N⌋ … ⌊K·B/N⌋ − 1 (B = number of blocks), the shards are disjoint,
//! and their concatenation is bit-for-bit the unsharded run. (Adaptive solvers choose their
//! steps per block, which is why blocks, not the shard, are the unit of integration.)
//!
//! Blocks are handed to a sink one at a time ([`run_blocks`]), so a job's memory does not grow
//! with the number of points requested.

use std::ops::Range;

use crate::data::Points;
use crate::error::{Error, Result};
use crate::tensor::{self, DType, Device, Rng, Tensor};

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
    let bad = || {
        Error::InvalidInput(format!(
            "--shard '{s}': expected K/N with 1 <= K <= N, e.g. 2/4"
        ))
    };
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

/// What a sampler returns for one block (model units).
pub struct BlockResult {
    /// Final states, `(len, d)`.
    pub x: Tensor<2>,
    /// Field evaluations spent on the block.
    pub nfe: usize,
    /// Intermediate (t, state) pairs, if requested.
    pub trajectory: Vec<(f64, Tensor<2>)>,
}

/// One finished block of a job, as handed to the sink.
#[derive(Debug, Clone)]
pub struct Block {
    /// The block number b.
    pub index: usize,
    /// Global index of its first point.
    pub start: usize,
    /// Its points.
    pub points: Points,
    /// Field evaluations spent on it.
    pub nfe: usize,
    /// Intermediate (t, states), if requested.
    pub trajectory: Vec<(f64, Points)>,
}

/// What a whole job reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobStats {
    /// Points produced.
    pub points: usize,
    /// Blocks integrated.
    pub blocks: usize,
    /// Field evaluations summed over blocks.
    pub nfe_total: usize,
}

impl JobStats {
    /// Mean NFE per block (the cost of one sample path), rounded.
    pub fn nfe_per_path(&self) -> usize {
        if self.blocks == 0 {
            0
        } else {
            (self.nfe_total as f64 / self.blocks as f64).round() as usize
        }
    }
}

/// Runs `sampler(x0, rng)` on every block of `plan`, where x0 is the block's `(len, dim)`
/// N(0, I) noise drawn first from the block's generator and `rng` continues that generator;
/// each finished block goes through `map` (e.g. back to data units) and then to `sink`, in
/// order. A block with a non-finite value is an error naming it.
pub fn run_blocks(
    plan: &Plan,
    seed: u64,
    dim: usize,
    device: &Device,
    mut sampler: impl FnMut(Tensor<2>, &mut Rng) -> Result<BlockResult>,
    mut map: impl FnMut(Points) -> Result<Points>,
    mut sink: impl FnMut(Block) -> Result<()>,
) -> Result<JobStats> {
    let mut stats = JobStats::default();
    for b in plan.blocks.clone() {
        let r = plan.block_range(b);
        let mut rng = block_rng(seed, b);
        let x0 = tensor::randn(r.len(), dim, device, DType::F32, &mut rng);
        let out = sampler(x0, &mut rng)?;
        let pts = Points::from_tensor(&out.x);
        if pts.as_slice().iter().any(|v| !v.is_finite()) {
            return Err(Error::Solver(format!(
                "sampling produced non-finite values (NaN or inf) in block {b}; try more --steps or a smaller step size"
            )));
        }
        let trajectory = out
            .trajectory
            .iter()
            .map(|(t, x)| Ok((*t, map(Points::from_tensor(x))?)))
            .collect::<Result<Vec<_>>>()?;
        stats.points += r.len();
        stats.blocks += 1;
        stats.nfe_total += out.nfe;
        sink(Block {
            index: b,
            start: r.start,
            points: map(pts)?,
            nfe: out.nfe,
            trajectory,
        })?;
    }
    Ok(stats)
}

/// Trajectories as long-format CSV text: `t,index,x1,…,xd`, one row per (time, point); each
/// entry is (global index of the block's first point, its trajectory).
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
    /// its generator (as SDE samplers do); blocks arrive in order.
    #[test]
    fn sharded_runs_reproduce_the_single_run() {
        let dev = tensor::cpu();
        let noisy = |x0: Tensor<2>, rng: &mut Rng| -> Result<BlockResult> {
            let z = tensor::randn_like(&x0, rng);
            Ok(BlockResult {
                x: x0 * 2.0 + z,
                nfe: 3,
                trajectory: vec![],
            })
        };
        let collect = |plan: &Plan, seed: u64| {
            let mut all = Vec::new();
            let mut starts = Vec::new();
            let stats = run_blocks(plan, seed, 2, &dev, noisy, Ok, |b| {
                starts.push(b.start);
                all.extend_from_slice(b.points.as_slice());
                Ok(())
            })
            .unwrap();
            (all, starts, stats)
        };
        let n = 2 * BLOCK + 123;
        let (whole, starts, stats) = collect(&Plan::new(n, None), 7);
        assert_eq!(starts, vec![0, BLOCK, 2 * BLOCK]);
        assert_eq!(stats.nfe_per_path(), 3);
        assert_eq!(stats.points, n);
        let mut parts = Vec::new();
        for k in 1..=3 {
            parts.extend(collect(&Plan::new(n, Some((k, 3))), 7).0);
        }
        assert_eq!(parts, whole);
        // A different seed gives different points.
        let (other, _, _) = collect(&Plan::new(n, None), 8);
        assert_ne!(other[..4], whole[..4]);
    }
}
