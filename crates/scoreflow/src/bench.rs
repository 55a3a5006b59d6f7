//! The speed benchmark behind `scoreflow bench`: the workload of
//! `reference_fm.py --bench-only` (conditional flow matching on 8 Gaussians with Adam 1e-3,
//! 20 warm-up + 200 timed steps; Euler sampling of 10,000 points × 100 steps) for any MLP size,
//! on either engine, plus optional Dopri5 sampling and exact-divergence likelihood timings.
//!
//! The report carries the keys of the PyTorch script's JSON line (`train_steps_per_s`,
//! `sample_point_steps_per_s`, …; `engine` instead of `torch`) and, beside them, the achieved
//! GFLOP/s and the machine's measured GEMM peak, so a run says how close to the hardware it is.
//! Timing rule (from the reference): compare ratios from one run, never absolute times.
//!
//! With [`BenchConfig::unet`] the workload is instead that of `bench/unet_torch.py --bench`:
//! the image U-Net ([`crate::field::unet`]) trained by conditional flow matching on the
//! dequantised 8 × 8 digits with Adam 1e-3 — 3 warm-up + 20 timed steps, each forward +
//! backward + Adam, the median reported as `step_ms` — then Euler sampling of 256 images × 100
//! steps; the report ([`UnetBenchReport`]) carries that script's keys (`step_ms`,
//! `steps_per_s`, `sample_s`, `samples_per_s`, `params`), so the two compare line by line.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::data::Images;
use crate::error::{Error, Result};
use crate::field::mlp::{Mlp, MlpConfig};
use crate::field::network::Conditioned;
use crate::field::unet::UnetConfig;
use crate::field::VectorField;
use crate::fused::{FusedMlp, FusedTrainer, TrainOptions};
use crate::likelihood::{flow_log_likelihood, Dequantization, LikelihoodOptions};
use crate::model::TrainSettings;
use crate::objective::cfm::FlowMatching;
use crate::objective::Objective;
use crate::path::{CondOt, GaussianPath};
use crate::solve::{odeint, Method, OdeOptions};
use crate::tensor::{cpu, matrix, randn, rng, to_vec, DType, Rng};
use crate::train::{EngineKind, Minibatches};

/// What to run. [`BenchConfig::default`] is the reference workload on the fused engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchConfig {
    /// Worker threads (a rayon pool of this size); 0 uses the current pool.
    pub threads: usize,
    /// Hidden width (reference 512).
    pub width: usize,
    /// Hidden layers (reference 4).
    pub depth: usize,
    /// Training batch (reference 1024).
    pub batch: usize,
    /// Engine: burn (the reference: burn autodiff and Adam) or fused (`Auto` = fused).
    pub engine: EngineKind,
    /// Timed training steps (reference 200).
    pub train_steps: usize,
    /// Untimed warm-up steps before them (reference 20).
    pub warmup_steps: usize,
    /// Points sampled with Euler (reference 10,000).
    pub sample_points: usize,
    /// Euler steps (reference 100).
    pub sample_steps: usize,
    /// Also time Dopri5 sampling (rtol = atol = 1e-5) of the same points.
    pub dopri5: bool,
    /// Also time the exact-divergence log-likelihood (Dopri5 1e-5, t = 1 → 0) of this many
    /// held-out points (0 = skip); `reference_fm.py --nll` works in chunks of 2,500.
    pub nll_points: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Where the burn engine computes (the fused engine is CPU only).
    #[serde(default)]
    pub device: crate::device::DeviceChoice,
    /// The network: `None` = the MLP of `width` × `depth` on 8 Gaussians (the reference_fm
    /// workload); `Some` = this U-Net on the 8 × 8 digits (see the module doc and
    /// [`BenchConfig::unet`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unet: Option<UnetConfig>,
}

impl BenchConfig {
    /// The engine that runs: `auto` is fused on the CPU and burn on a GPU.
    pub fn resolved_engine(&self) -> EngineKind {
        match (self.engine, self.device.is_gpu()) {
            (EngineKind::Auto, true) => EngineKind::Burn,
            (EngineKind::Auto, false) => EngineKind::Fused,
            (e, _) => e,
        }
    }
}

impl BenchConfig {
    /// The U-Net workload of `bench/unet_torch.py --bench` for the network and batch of
    /// `settings` (a digits run's [`TrainSettings`], e.g. [`TrainSettings::defaults_for`]
    /// `("digits")` with `--base`/`--mults`/`--res-blocks`/`--attention` applied: batch 128,
    /// base 32 × (1, 2), one block per level, attention): burn engine, 3 warm-up + 20 timed
    /// steps, 256 images × 100 Euler steps. Errors when `settings` are invalid or their data
    /// are not images.
    pub fn unet(settings: &TrainSettings) -> Result<BenchConfig> {
        settings.validate()?;
        let images = settings.images()?.ok_or_else(|| {
            Error::InvalidInput(format!(
                "bench: the U-Net workload needs image data (digits), not {}",
                settings.data
            ))
        })?;
        let unet = settings.unet_config(images.format());
        unet.validate()?;
        Ok(BenchConfig {
            batch: settings.batch,
            engine: EngineKind::Burn,
            train_steps: 20,
            warmup_steps: 3,
            sample_points: 256,
            sample_steps: 100,
            seed: settings.seed,
            unet: Some(unet),
            ..BenchConfig::default()
        })
    }
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            threads: 2,
            width: 512,
            depth: 4,
            batch: 1024,
            engine: EngineKind::Fused,
            train_steps: 200,
            warmup_steps: 20,
            sample_points: 10_000,
            sample_steps: 100,
            dopri5: false,
            device: crate::device::DeviceChoice::Cpu,
            nll_points: 0,
            seed: 0,
            unet: None,
        }
    }
}

/// Adaptive-solver timing: wall time and NFE (compare time per NFE across programs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveTiming {
    /// Points integrated.
    pub points: usize,
    /// Field evaluations.
    pub nfe: usize,
    /// Wall time, seconds.
    pub time_s: f64,
    /// Wall time per field evaluation, milliseconds.
    pub ms_per_nfe: f64,
    /// Mean negative log-likelihood (likelihood runs only), nats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nll: Option<f64>,
}

/// One benchmark run; the first keys are those of `reference_fm.py --bench-only`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Workload name, "reference_fm".
    pub bench: String,
    /// "burn" or "fused".
    pub engine: String,
    /// Device of the burn engine ("cpu", "vulkan:0", "wgpu").
    #[serde(default)]
    pub device: String,
    /// Threads used.
    pub threads: usize,
    /// Training data ("8gaussians").
    pub dataset: String,
    /// Training batch.
    pub batch: usize,
    /// Timed training steps.
    pub train_steps_timed: usize,
    /// Training steps per second.
    pub train_steps_per_s: f64,
    /// Training samples per second (steps/s × batch).
    pub train_samples_per_s: f64,
    /// Points sampled.
    pub sample_points: usize,
    /// Euler steps.
    pub sample_euler_steps: usize,
    /// Euler sampling wall time, seconds.
    pub sample_time_s: f64,
    /// Point-steps per second.
    pub sample_point_steps_per_s: f64,
    /// Every sample finite.
    pub sample_finite: bool,
    /// Hidden width.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Training GFLOP/s: 3 × 2 × (multiply-adds per point) × batch × steps/s.
    pub train_gflops: f64,
    /// Sampling GFLOP/s: 2 × (multiply-adds per point) × point-steps/s.
    pub sample_gflops: f64,
    /// This machine's f32 GEMM peak on these threads (1024³ with the `gemm` crate), GFLOP/s.
    pub gemm_peak_gflops: f64,
    /// Final training loss (mean of the last 20 steps).
    pub final_loss: f64,
    /// Dopri5 sampling, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dopri5: Option<AdaptiveTiming>,
    /// Exact-divergence likelihood, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nll: Option<AdaptiveTiming>,
}

/// One U-Net benchmark run: the keys of `bench/unet_torch.py --bench` (`impl` = "scoreflow"
/// instead of "pytorch"), so the two JSON lines compare key by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnetBenchReport {
    /// Workload name, "unet_digits".
    pub bench: String,
    /// "scoreflow".
    #[serde(rename = "impl")]
    pub implementation: String,
    /// "burn".
    pub engine: String,
    /// Device ("cpu", "vulkan:0", "wgpu").
    pub device: String,
    /// Threads used.
    pub threads: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Training batch.
    pub batch: usize,
    /// U-Net base channels.
    pub base: usize,
    /// U-Net channel multipliers.
    pub mults: Vec<usize>,
    /// Residual blocks per level.
    pub res_blocks: usize,
    /// Middle self-attention.
    pub attention: bool,
    /// Timed training steps.
    pub train_steps_timed: usize,
    /// Median wall time of one training step (forward + backward + Adam), milliseconds.
    pub step_ms: f64,
    /// Fastest training step, milliseconds.
    pub step_ms_min: f64,
    /// 1000 / `step_ms`.
    pub steps_per_s: f64,
    /// Images sampled.
    pub samples: usize,
    /// Euler steps.
    pub euler_steps: usize,
    /// Euler sampling wall time, seconds.
    pub sample_s: f64,
    /// `samples` / `sample_s`.
    pub samples_per_s: f64,
    /// Every sample finite.
    pub sample_finite: bool,
    /// Mean training loss of the timed steps.
    pub final_loss: f64,
}

/// What [`run`] measured: the MLP workload's report or the U-Net's (each serialises as its
/// own flat JSON object).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BenchOutcome {
    /// [`BenchConfig::unet`] was `None`.
    Mlp(BenchReport),
    /// The U-Net workload.
    Unet(UnetBenchReport),
}

/// Runs the benchmark described by `cfg` (see the module doc).
pub fn run(cfg: &BenchConfig) -> Result<BenchOutcome> {
    if cfg.width == 0 || cfg.batch == 0 || cfg.sample_points == 0 || cfg.sample_steps == 0 {
        return Err(Error::InvalidInput(
            "bench: width, batch, sample points and sample steps must be >= 1".into(),
        ));
    }
    if cfg.unet.is_some() && cfg.train_steps == 0 {
        return Err(Error::InvalidInput(
            "bench: the U-Net workload needs at least 1 timed step".into(),
        ));
    }
    let here = || -> Result<BenchOutcome> {
        Ok(match &cfg.unet {
            None => BenchOutcome::Mlp(run_here(cfg)?),
            Some(unet) => BenchOutcome::Unet(run_unet(cfg, unet)?),
        })
    };
    if cfg.threads == 0 {
        return here();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .build()
        .map_err(|e| {
            Error::InvalidInput(format!("bench: cannot start {} threads: {e}", cfg.threads))
        })?;
    pool.install(here)
}

/// The U-Net workload (see the module doc): `cfg.warmup_steps` untimed and `cfg.train_steps`
/// timed flow-matching steps at `cfg.batch` on the dequantised digits, each step timed alone;
/// then `cfg.sample_points` images × `cfg.sample_steps` Euler steps.
fn run_unet(cfg: &BenchConfig, unet: &UnetConfig) -> Result<UnetBenchReport> {
    if cfg.engine == EngineKind::Fused {
        return Err(Error::InvalidInput(
            "bench: --engine fused runs MLPs only; the U-Net runs on burn".into(),
        ));
    }
    let dev = cfg.device.open()?;
    let digits = Images::digits()?;
    let dq = Dequantization::symmetric(digits.levels);
    let mut data = crate::train::Dequantized::new(digits.pixels.clone(), dq)?;
    let mut r = rng(cfg.seed);
    let ad = dev.clone().autodiff();
    let mut model = Some(unet.init(&ad, DType::F32, &mut r)?);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let objective = FlowMatching::new(GaussianPath::new(CondOt));
    let d = unet.dim();
    let mut times = Vec::with_capacity(cfg.train_steps);
    let mut losses = Vec::with_capacity(cfg.train_steps);
    for i in 0..cfg.warmup_steps + cfg.train_steps {
        let x1 = data.batch(cfg.batch, &mut r).target.into_vec();
        let start = Instant::now();
        let m = model.take().expect("model present between steps");
        let x = matrix(x1, cfg.batch, d, &ad, DType::F32);
        let batch = objective
            .regression(&x, &mut r)
            .expect("CFM is a regression");
        let loss = batch.loss(&m);
        let value = to_vec(&loss)[0];
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        model = Some(optim.step(1e-3, m, grads));
        // Reading the loss above waits for the device, so the step is complete here.
        if i >= cfg.warmup_steps {
            times.push(start.elapsed().as_secs_f64());
            losses.push(value);
        }
    }
    times.sort_by(f64::total_cmp);
    let step_ms = 1e3 * times[times.len() / 2];
    let net = burn::module::Module::valid(model.as_ref().expect("model"));
    let field = Conditioned::unconditional(&net);
    let x0 = randn(cfg.sample_points, d, &dev, DType::F32, &mut r);
    let start = Instant::now();
    let sol = odeint(
        &field,
        x0,
        0.0,
        1.0,
        &OdeOptions::fixed(Method::Euler, cfg.sample_steps),
    )?;
    let finite = crate::tensor::all_finite(&sol.x);
    let sample_s = start.elapsed().as_secs_f64();
    Ok(UnetBenchReport {
        bench: "unet_digits".into(),
        implementation: "scoreflow".into(),
        engine: EngineKind::Burn.name().into(),
        device: cfg.device.to_string(),
        threads: rayon::current_num_threads(),
        params: unet.num_params(),
        batch: cfg.batch,
        base: unet.base,
        mults: unet.mults.clone(),
        res_blocks: unet.res_blocks,
        attention: unet.attention,
        train_steps_timed: cfg.train_steps,
        step_ms,
        step_ms_min: 1e3 * times[0],
        steps_per_s: 1e3 / step_ms,
        samples: cfg.sample_points,
        euler_steps: cfg.sample_steps,
        sample_s,
        samples_per_s: cfg.sample_points as f64 / sample_s,
        sample_finite: finite,
        final_loss: losses.iter().sum::<f64>() / losses.len() as f64,
    })
}

/// The two engines behind one interface: a training step and the field it currently holds.
// One runner per benchmark: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Runner {
    Burn {
        device: crate::tensor::Device,
        model: Option<Mlp>,
        optim: burn::optim::ModuleOptimizer,
    },
    Fused(Box<FusedTrainer>),
}

impl Runner {
    fn step(
        &mut self,
        objective: &FlowMatching<CondOt>,
        x1: &[f64],
        d: usize,
        lr: f64,
        r: &mut Rng,
    ) -> Result<f64> {
        let n = x1.len() / d;
        match self {
            Runner::Burn {
                model,
                optim,
                device,
            } => {
                let m = model.take().expect("model present between steps");
                let data = matrix(x1.to_vec(), n, d, device, DType::F32);
                let batch = objective.regression(&data, r).expect("CFM is a regression");
                let loss = batch.loss(&m);
                let value = to_vec(&loss)[0];
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                *model = Some(optim.step(lr, m, grads));
                Ok(value)
            }
            Runner::Fused(tr) => {
                let data = matrix(x1.to_vec(), n, d, &cpu(), DType::F32);
                let batch = objective.regression(&data, r).expect("CFM is a regression");
                Ok(tr.step(&batch, lr)?.loss)
            }
        }
    }

    fn field(&self) -> Box<dyn VectorField + '_> {
        match self {
            Runner::Burn { model, .. } => {
                Box::new(burn::module::Module::valid(model.as_ref().expect("model")))
            }
            Runner::Fused(tr) => Box::new(tr.model()),
        }
    }
}

fn run_here(cfg: &BenchConfig) -> Result<BenchReport> {
    let threads = rayon::current_num_threads();
    let engine = cfg.resolved_engine();
    if cfg.device.is_gpu() && engine == EngineKind::Fused {
        return Err(Error::InvalidInput(format!(
            "bench: the fused engine runs on the CPU; on --device {} use --engine burn",
            cfg.device
        )));
    }
    let dev = cfg.device.open()?;
    let mc = MlpConfig::new(2, cfg.width, cfg.depth);
    let macs: usize = mc.layer_dims().iter().map(|(i, o)| i * o).sum();
    let mut r = rng(cfg.seed);
    let model = mc.init(&dev.clone().autodiff(), DType::F32, &mut r);
    let mut runner = match engine {
        EngineKind::Burn => Runner::Burn {
            device: dev.clone().autodiff(),
            model: Some(model),
            optim: AdamConfig::new().with_epsilon(1e-8).init(),
        },
        EngineKind::Fused | EngineKind::Auto => Runner::Fused(Box::new(FusedTrainer::new(
            FusedMlp::from_mlp(&model),
            TrainOptions::default(),
        )?)),
    };
    let objective = FlowMatching::new(GaussianPath::new(CondOt));
    let mut losses = Vec::with_capacity(cfg.warmup_steps + cfg.train_steps);
    let mut start = Instant::now();
    for i in 0..cfg.warmup_steps + cfg.train_steps {
        if i == cfg.warmup_steps {
            start = Instant::now();
        }
        let x1 = Dataset::EightGaussians.sample(cfg.batch, &mut r).into_vec();
        losses.push(runner.step(&objective, &x1, 2, 1e-3, &mut r)?);
    }
    let train_s = start.elapsed().as_secs_f64();
    let sps = if cfg.train_steps > 0 {
        cfg.train_steps as f64 / train_s
    } else {
        f64::NAN
    };
    let tail = &losses[losses.len().saturating_sub(20)..];
    let final_loss = tail.iter().sum::<f64>() / tail.len().max(1) as f64;

    let field = runner.field();
    let x0 = randn(cfg.sample_points, 2, &dev, DType::F32, &mut r);
    let _ = field.eval_at(&x0, 0.0); // untimed warm-up of the sampling batch size
    let start = Instant::now();
    let sol = odeint(
        field.as_ref(),
        x0.clone(),
        0.0,
        1.0,
        &OdeOptions::fixed(Method::Euler, cfg.sample_steps),
    )?;
    let sample_s = start.elapsed().as_secs_f64();
    let point_steps = (cfg.sample_points * cfg.sample_steps) as f64 / sample_s;

    let dopri5 = if cfg.dopri5 {
        let start = Instant::now();
        let sol = odeint(
            field.as_ref(),
            x0,
            0.0,
            1.0,
            &OdeOptions::dopri5(1e-5, 1e-5),
        )?;
        Some(timing(
            cfg.sample_points,
            sol.nfe,
            start.elapsed().as_secs_f64(),
            None,
        ))
    } else {
        None
    };
    let nll = if cfg.nll_points > 0 {
        // Held-out points, exact divergence, Dopri5 1e-5 from t = 1 to 0 in chunks of 2,500:
        // what `reference_fm.py --nll` does.
        let mut held_out = rng(cfg.seed ^ 987_654_321);
        let pts = Dataset::EightGaussians.sample(cfg.nll_points, &mut held_out);
        let x = matrix(pts.into_vec(), cfg.nll_points, 2, &dev, DType::F32);
        let opts = LikelihoodOptions {
            round_trip: false,
            chunk: Some(2500),
            ..LikelihoodOptions::default()
        };
        let start = Instant::now();
        let lik = flow_log_likelihood(field.as_ref(), &x, &opts, &mut held_out)?;
        Some(timing(
            cfg.nll_points,
            lik.nfe,
            start.elapsed().as_secs_f64(),
            Some(lik.nll),
        ))
    } else {
        None
    };
    Ok(BenchReport {
        bench: "reference_fm".into(),
        device: cfg.device.to_string(),
        engine: engine.name().into(),
        threads,
        dataset: "8gaussians".into(),
        batch: cfg.batch,
        train_steps_timed: cfg.train_steps,
        train_steps_per_s: sps,
        train_samples_per_s: sps * cfg.batch as f64,
        sample_points: cfg.sample_points,
        sample_euler_steps: cfg.sample_steps,
        sample_time_s: sample_s,
        sample_point_steps_per_s: point_steps,
        sample_finite: crate::tensor::all_finite(&sol.x),
        width: cfg.width,
        depth: cfg.depth,
        train_gflops: 6.0 * macs as f64 * cfg.batch as f64 * sps / 1e9,
        sample_gflops: 2.0 * macs as f64 * point_steps / 1e9,
        gemm_peak_gflops: gemm_peak(threads),
        final_loss,
        dopri5,
        nll,
    })
}

fn timing(points: usize, nfe: usize, time_s: f64, nll: Option<f64>) -> AdaptiveTiming {
    AdaptiveTiming {
        points,
        nfe,
        time_s,
        ms_per_nfe: 1e3 * time_s / nfe.max(1) as f64,
        nll,
    }
}

/// GFLOP/s of a 1024³ f32 GEMM with the `gemm` crate on `threads` rayon threads (best of 5).
pub fn gemm_peak(threads: usize) -> f64 {
    let n = 1024;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        // SAFETY: all three buffers hold n×n elements, row-major, and `c` is not aliased.
        unsafe {
            gemm::gemm(
                n,
                n,
                n,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                n as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(threads),
            );
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny run of both engines completes with the reference keys, and — same seed, same
    /// batches — both engines end at the same training loss (float noise ~1e-7; 1e-4 allowed).
    #[test]
    fn tiny_runs_of_both_engines_agree() {
        let mut losses = Vec::new();
        for engine in [EngineKind::Burn, EngineKind::Fused] {
            let cfg = BenchConfig {
                threads: 2,
                width: 16,
                depth: 2,
                batch: 64,
                engine,
                train_steps: 30,
                warmup_steps: 2,
                sample_points: 50,
                sample_steps: 4,
                device: crate::device::DeviceChoice::Cpu,
                dopri5: true,
                nll_points: 20,
                seed: 1,
                unet: None,
            };
            let BenchOutcome::Mlp(rep) = run(&cfg).expect("bench runs") else {
                panic!("the MLP workload reports as the MLP's");
            };
            assert_eq!(rep.engine, engine.name());
            assert!(rep.sample_finite && rep.train_steps_per_s > 0.0 && rep.final_loss.is_finite());
            assert!(rep.dopri5.as_ref().is_some_and(|t| t.nfe > 6));
            assert!(rep
                .nll
                .as_ref()
                .is_some_and(|t| t.nll.is_some_and(f64::is_finite)));
            let json = serde_json::to_value(&rep).expect("serialises");
            for key in [
                "bench",
                "threads",
                "dataset",
                "batch",
                "train_steps_timed",
                "train_steps_per_s",
                "train_samples_per_s",
                "sample_points",
                "sample_euler_steps",
                "sample_time_s",
                "sample_point_steps_per_s",
                "sample_finite",
            ] {
                assert!(json.get(key).is_some(), "missing key {key}");
            }
            losses.push(rep.final_loss);
        }
        assert!(
            (losses[0] - losses[1]).abs() < 1e-4 * losses[0],
            "final losses {losses:?}"
        );
        assert!(matches!(
            "gpu".parse::<EngineKind>(),
            Err(Error::InvalidInput(_))
        ));
    }

    /// The U-Net workload on a tiny network: the keys of `unet_torch.py --bench` with positive
    /// finite values, the parameter count of the configuration, 8 timed steps behind 1
    /// warm-up, and `steps_per_s` = 1000 / `step_ms` exactly; a fused engine and points are
    /// refused.
    #[test]
    fn tiny_unet_workload_reports_the_torch_keys() {
        let settings = TrainSettings {
            base: 8,
            attention: false,
            ..TrainSettings::defaults_for("digits")
        };
        let cfg = BenchConfig {
            batch: 8,
            train_steps: 8,
            warmup_steps: 1,
            sample_points: 4,
            sample_steps: 2,
            ..BenchConfig::unet(&settings).unwrap()
        };
        assert_eq!(BenchConfig::unet(&settings).unwrap().batch, 128);
        let BenchOutcome::Unet(rep) = run(&cfg).unwrap() else {
            panic!("the U-Net workload reports as the U-Net's");
        };
        let unet = cfg.unet.as_ref().unwrap();
        assert_eq!(rep.params, unet.num_params());
        assert_eq!((rep.train_steps_timed, rep.threads), (8, 2));
        assert!((rep.steps_per_s - 1e3 / rep.step_ms).abs() < 1e-9 * rep.steps_per_s);
        assert!(rep.step_ms_min <= rep.step_ms && rep.sample_finite);
        let json = serde_json::to_value(BenchOutcome::Unet(rep)).unwrap();
        for key in [
            "step_ms",
            "steps_per_s",
            "sample_s",
            "samples_per_s",
            "params",
        ] {
            let v = json[key].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{key} = {v}");
        }
        assert_eq!(json["impl"], "scoreflow");
        let fused = BenchConfig {
            engine: EngineKind::Fused,
            ..cfg
        };
        assert!(matches!(run(&fused), Err(Error::InvalidInput(_))));
        let points = TrainSettings::defaults_for("moons");
        assert!(matches!(
            BenchConfig::unet(&points),
            Err(Error::InvalidInput(_))
        ));
    }
}
