//! The command tree (clap): every subcommand, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use scoreflow::data::Dataset;
use scoreflow::device::DeviceChoice;
use scoreflow::field::mlp::TimeColumn;
use scoreflow::model::{ArchKind, PosteriorMethod, TrainMethod};
use scoreflow::schedule::{FinalStep, Spacing};
use scoreflow::sde::SdeKind;
use scoreflow::solve::{Denoise, Method, Predictor, SamplerName, SamplerSpec};
use scoreflow::train::EngineKind;

use crate::config::TrainOpts;

/// scoreflow: learn a vector field from samples (flow matching, score matching), follow it to
/// generate, and measure what you made.
#[derive(Debug, Parser)]
#[command(
    name = "scoreflow",
    version,
    about = "Vector-field generative modelling: flow matching and score-based diffusion",
    long_about = "Vector-field generative modelling: flow matching and score-based diffusion.\n\n\
        Train a model on a built-in 2-D data set or your own CSV/NPY points, sample from it with \
        ODE or SDE solvers, evaluate samples against held-out data, compute likelihoods and \
        draw pictures. Start with `scoreflow quickstart`.",
    after_help = "Examples:\n  scoreflow quickstart\n  scoreflow train --data moons --steps 3000 --out runs/moons\n  \
        scoreflow sample runs/moons -n 10000 --sampler dopri5\n  scoreflow eval runs/moons\n  scoreflow plot runs/moons --gif"
)]
pub struct Cli {
    /// Print nothing but errors.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// Print one JSON object with the results on stdout (no progress bar, no other output).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Worker threads for tensor maths [default: all cores, or RAYON_NUM_THREADS].
    #[arg(long, global = true, value_name = "N", help_heading = "Global options")]
    pub threads: Option<usize>,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a small flow-matching model on a built-in data set, sample, evaluate and plot (< 1 min).
    Quickstart(QuickstartArgs),
    /// Train a model from a TOML config file and/or flags; writes a run directory.
    Train(Box<TrainArgs>),
    /// Generate samples from a trained run with an ODE or SDE sampler.
    Sample(Box<SampleArgs>),
    /// Compare samples with held-out data: SW2, MMD, energy distance, moments, noise floor.
    Eval(EvalArgs),
    /// Draw a run: data vs samples, the vector field, trajectories, loss curve (PNG/GIF).
    Plot(PlotArgs),
    /// Speed benchmark: training steps/s and Euler sampling throughput, as one JSON line.
    Bench(BenchArgs),
    /// Per-point log-likelihood log p(x) through the flow (or probability-flow) ODE.
    Likelihood(LikelihoodArgs),
    /// Diagnose a learned field: Jacobian asymmetry, curl, stiffness, stable Euler step.
    Diagnose(DiagnoseArgs),
    /// A principle of the notes, measured: `lesson NAME` runs it, `lesson --list` lists them.
    Lesson(LessonArgs),
    /// Turn a PyTorch nn.Sequential MLP (TorchCFM, Meta flow_matching, the reference scripts) into a run directory.
    Import(Box<ImportArgs>),
    /// One self-contained HTML page of a run or lesson (or of every one in a directory, plus an index).
    Report(ReportArgs),
    /// Flows between any shapes in a row (A → B → C …): one run per leg, one animation of the chain.
    Chain(Box<ChainArgs>),
}

/// `scoreflow quickstart`.
#[derive(Debug, Args)]
#[command(
    long_about = "Train the default model on a built-in 2-D data set, draw 10,000 samples (Euler, \
        100 steps), evaluate them against 10,000 held-out points next to the noise floor, write \
        the run directory with pictures (samples, field, trajectories, loss, flow.gif) and print \
        a summary. The default model is `scoreflow train`'s: conditional flow matching with a \
        3→128×4→2 SiLU MLP, 5,000 Adam steps of batch 256, a one-cycle learning rate peaking at \
        2e-3, sampling with EMA (0.999) weights; it beats the 3→512×4→2 PyTorch reference \
        (5,000 steps of batch 1024) on 8gaussians, moons and checkerboard in SW2, MMD and energy \
        distance at a sixteenth of the parameters.",
    after_help = "Example:\n  scoreflow quickstart --data moons --out runs/quick-moons"
)]
pub struct QuickstartArgs {
    /// Built-in data set (8gaussians, 25gaussians, gmm_aniso, checkerboard, moons, circles, rings, 2spirals, pinwheel, swissroll).
    #[arg(long, default_value = "8gaussians", value_name = "NAME")]
    pub data: String,
    /// Run directory [default: runs/<data>-quickstart-<time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Training steps.
    #[arg(long, default_value_t = crate::config::QUICKSTART_STEPS, value_name = "N")]
    pub steps: usize,
    /// Random seed (training, sampling and evaluation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `scoreflow train`.
#[derive(Debug, Args)]
#[command(
    long_about = "Train a model. Settings come from flags, then from the TOML file given by \
        --config (its keys are the flag names without '--', e.g. `width = 256`), then from the \
        defaults shown below. The run directory receives config.toml (the full resolved \
        settings: `scoreflow train --config RUN/config.toml` repeats the run), model.safetensors, \
        meta.json, train_log.csv (step, loss, lr, grad_norm, steps_per_s) and periodic \
        checkpoints. Ctrl-C saves a checkpoint and exits; `--resume RUN_DIR` continues a run \
        from its last checkpoint, also after a crash.",
    after_help = "Examples:\n  scoreflow train --data moons --steps 3000 --out runs/moons\n  \
        scoreflow train --config my.toml --lr 3e-4\n  scoreflow train --method dsm --sde vp --data checkerboard\n  \
        scoreflow train --data points.csv --width 256 --depth 4\n  scoreflow train --resume runs/moons --steps 6000\n  \
        scoreflow train --data digits --out runs/digits   (images: the U-Net, bits/dim; --device vulkan on a GPU build)"
)]
pub struct TrainArgs {
    /// TOML file of settings (keys = flag names); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its last checkpoint (its config.toml; --steps may extend it).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Training settings.
    #[command(flatten)]
    pub opts: TrainOpts,
    /// Device to train on (checkpoints are portable between devices): cpu, vulkan (= vulkan:0), vulkan:N (the N-th discrete GPU) or wgpu; GPUs need a build with `--features vulkan`.
    #[arg(long, default_value = "cpu", value_name = "cpu|vulkan[:N]|wgpu")]
    pub device: DeviceChoice,
}

/// The options of a sampler, as flags; each applies to some samplers only and is refused by the
/// others (never silently ignored). Defaults live in the library (`scoreflow::solve::choice`).
#[derive(Debug, Clone, Default, Args)]
pub struct SamplerOptions {
    /// ODE method of `--sampler ode` (the probability-flow ODE) [default: dopri5].
    #[arg(long, value_enum, value_name = "METHOD")]
    pub solver: Option<Method>,
    /// Steps of fixed-step samplers [default: 100 for ODE solvers, 1000 for em/pc/ula, 100 per level for ald, 20 for the few-step samplers ddim … edm-heun]; not for dopri5, which chooses its own.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Relative tolerance of dopri5 [default: 1e-5].
    #[arg(long, value_name = "X")]
    pub rtol: Option<f64>,
    /// Absolute tolerance of dopri5 [default: 1e-5].
    #[arg(long, value_name = "X")]
    pub atol: Option<f64>,
    /// Signal-to-noise ratio r of the pc sampler's Langevin corrector: its step is chosen so that ‖score step‖/‖noise‖ ≈ r (score_sde uses 0.16 for images; 0.16 over-concentrates 2-D modes) [default: 0.05].
    #[arg(long, value_name = "R")]
    pub snr: Option<f64>,
    /// Predictor of the pc sampler: reverse-diffusion (score_sde's), ancestral (DDPM / SMLD) or euler-maruyama [default: reverse-diffusion].
    #[arg(long, value_enum, value_name = "NAME")]
    pub predictor: Option<Predictor>,
    /// Langevin corrector steps per predictor step of the pc sampler; 0 runs the predictor alone [default: 1].
    #[arg(long, value_name = "M")]
    pub corrector_steps: Option<usize>,
    /// Final step of em/pc/ald/ode: mean (the last update's noise-free mean; the default of em/pc/ald), none (the default of ode), or tweedie (x̂₀ = (x + σ²·score)/m, +1 NFE).
    #[arg(long, value_enum, value_name = "NAME")]
    pub denoise: Option<Denoise>,
    /// Langevin step: ε of ula [default: 0.01, in standardised units] or the ratio ρ of ald (εᵢ = ρσᵢ²) [default: 0.05].
    #[arg(long, value_name = "X")]
    pub step: Option<f64>,
    /// Time-step spacing of the few-step samplers: time (uniform in τ), logsnr (uniform in λ = ln α/σ), karras (ρ = 7 in σ/α) [default: logsnr for ddim, dpm-solver, dpmpp-2m/3m, unipc; karras for edm-euler, edm-heun, dpmpp-2s].
    #[arg(long, value_enum, value_name = "NAME")]
    pub spacing: Option<Spacing>,
    /// Where the last step of a few-step sampler lands: zero (σ = 0, the clean data), eps (the SDE's ε) or tweedie (ε, then x̂₀, +1 NFE) [default: zero].
    #[arg(long, value_enum, value_name = "NAME")]
    pub final_step: Option<FinalStep>,
    /// Order of dpm-solver (1–3) or of unipc's predictor (1–3; the corrector adds one) [default: 2].
    #[arg(long, value_name = "K")]
    pub order: Option<usize>,
    /// Stochasticity η of ddim (0 = deterministic DDIM, 1 = DDPM-like ancestral) and dpmpp-2s (ancestral) [default: 0].
    #[arg(long, value_name = "X")]
    pub eta: Option<f64>,
    /// Karras et al.'s S_churn of edm-euler / edm-heun (0 = deterministic; γ = min(S_churn/N, √2 − 1)) [default: 0].
    #[arg(long, value_name = "X")]
    pub churn: Option<f64>,
}

impl SamplerOptions {
    /// The library's sampler spec for `sampler` with these options.
    pub fn spec(&self, sampler: SamplerName, trajectories: bool) -> SamplerSpec {
        SamplerSpec {
            solver: self.solver,
            steps: self.steps,
            rtol: self.rtol,
            atol: self.atol,
            snr: self.snr,
            predictor: self.predictor,
            corrector_steps: self.corrector_steps,
            denoise: self.denoise,
            step: self.step,
            trajectories,
            spacing: self.spacing,
            final_step: self.final_step,
            order: self.order,
            eta: self.eta,
            churn: self.churn,
            ..SamplerSpec::new(sampler)
        }
    }
}

/// `scoreflow sample`.
#[derive(Debug, Args)]
#[command(
    long_about = "Generate samples from a trained run (or a built-in mixture's exact prior, \
        --exact), optionally conditioned on a class (--class, --guidance) or an observation \
        (--observe, --posterior). Flow-matching runs integrate the learned \
        velocity from noise (t = 0) to data (t = 1) with an ODE solver; score runs use the \
        reverse SDE (em, pc), annealed Langevin (ald), the probability-flow ODE (ode) or a \
        few-step sampler (ddim, dpm-solver, dpmpp-2m, dpmpp-3m, dpmpp-2s, unipc, edm-euler, \
        edm-heun; --steps counts sampler steps, the printed NFE network evaluations). --exact \
        NAME samples a built-in Gaussian mixture's exact score instead of a run. \
        Points are produced in fixed blocks of 4096 whose noise is seeded by (seed, block), so \
        `--shard K/N` jobs are independent of how a job is split: the union of the N shards is \
        bit-for-bit the single run. Prints the number of field evaluations (NFE).",
    after_help = "Examples:\n  scoreflow sample runs/moons -n 10000\n  scoreflow sample runs/moons --sampler dopri5 --rtol 1e-5 --atol 1e-5 --out s.npy\n  \
        scoreflow sample runs/vp --sampler pc --steps 500\n  \
        scoreflow sample runs/vp --sampler dpmpp-2m --steps 10        # few-step: 10 NFE\n  \
        scoreflow sample --exact 8gaussians --sde vp --sampler unipc --steps 5   # no learning error\n  \
        scoreflow sample runs/moons -n 1000000 --shard 3/8 --out part3.npy   # 3rd of 8 slices\n  \
        scoreflow sample runs/moons-to-8g --from moons_points.csv --steps 4   # carry given points\n  \
        scoreflow sample runs/c8 --class 3 --guidance 2 --plot guided.png   # a --conditional run\n  \
        scoreflow sample runs/vp --observe obs.json --posterior dps --zeta 0.3\n  \
        scoreflow sample --exact 8gaussians --class 5 --guidance 0 --classifier-scale 1\n  \
        scoreflow sample runs/vp --class 3 --classifier runs/clf --classifier-scale 2   # a --method classifier run"
)]
pub struct SampleArgs {
    /// Run directory written by `scoreflow train` (or --exact NAME instead).
    #[arg(value_name = "RUN_DIR", required_unless_present = "exact")]
    pub run: Option<PathBuf>,
    /// Sample a built-in Gaussian mixture's exact field (closed form, no network) instead of a run: 8gaussians, 25gaussians or gmm_aniso; tells sampler error from learning error.
    #[arg(long, value_name = "NAME", conflicts_with = "run")]
    pub exact: Option<Dataset>,
    /// What the --exact model is: dsm (the exact perturbed score under --sde), cfm (the straight path's exact velocity), edm, or sm (the data's score) [default: dsm].
    #[arg(long, value_enum, requires = "exact")]
    pub method: Option<TrainMethod>,
    /// Forward SDE of an --exact score model [default: vp].
    #[arg(long, value_enum, requires = "exact")]
    pub sde: Option<SdeKind>,
    /// Sample class K: a --conditional run's label, or an exact mixture's component.
    #[arg(long, value_name = "K")]
    pub class: Option<usize>,
    /// Classifier-free guidance scale G, diffusers' convention: u + G·(c − u), 1 = conditional, 0 = unconditional, > 1 guided (Ho & Salimans' w = G − 1).
    #[arg(long, value_name = "G", default_value_t = 1.0, requires = "class")]
    pub guidance: f64,
    /// Classifier guidance scale S, diffusers' convention (1 = Bayes' rule: the exact conditional with the exact classifier, 0 = off, > 1 sharper): adds S·∇ log p(K | x_t, t) of --classifier, or of an --exact model's own mixture classifier [default with --classifier: 1].
    #[arg(long, value_name = "S", requires = "class")]
    pub classifier_scale: Option<f64>,
    /// A time-dependent classifier run (`scoreflow train --method classifier`) on the model's process and data units whose input gradient guides the model to --class K.
    #[arg(long, value_name = "RUN", requires = "class")]
    pub classifier: Option<PathBuf>,
    /// Condition on an observation y = A x + σ ε: OBS.json with {"A": [[…]], "y": […], "sigma": σ} or {"mask": [0/1 per coordinate], "values": […], "sigma": σ}, in data units.
    #[arg(long, value_name = "OBS.json")]
    pub observe: Option<PathBuf>,
    /// Posterior method with --observe: pigdm, tmpd or noisy (a field: any sampler, any model), dps or replacement (score models; replacement needs a mask) [default: pigdm].
    #[arg(long, value_enum, requires = "observe")]
    pub posterior: Option<PosteriorMethod>,
    /// DPS step size ζ on ‖y − A x̂₀‖ [default: 1].
    #[arg(long, value_name = "ZETA", requires = "observe")]
    pub zeta: Option<f64>,
    /// With --class or --observe (2-D models): also draw FILE.png, three quiver panels at flow time 0.7 — the model's own field | the condition's term (likelihood, or guidance G·(c − u)) | their sum, the field sampled — with the samples in the background.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Number of samples (of the whole job when --shard is given).
    #[arg(short = 'n', long = "num", default_value_t = 10_000, value_name = "N")]
    pub n: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampler [default: euler for flow matching, em for DSM, edm-heun for EDM, ula for sm/ssm runs].
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerName>,
    /// Options of the sampler (options that do not apply to it are refused).
    #[command(flatten)]
    pub options: SamplerOptions,
    /// Output file, .csv or .npy [default: RUN_DIR/samples.csv, or RUN_DIR/samples-K-of-N.csv with --shard; with --exact NAME: exact-NAME-SDE.csv in the current directory].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write every intermediate state to <out>.trajectories.csv (columns t, index, x1..xd).
    #[arg(long)]
    pub trajectories: bool,
    /// Produce only slice K of N (1-based), e.g. 2/4: deterministic, non-overlapping, and the N slices together equal the unsharded run.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Start a flow from these points (.csv/.npy, in the units of the run's source) instead of fresh source draws; one output point per input point.
    #[arg(long, value_name = "POINTS", conflicts_with_all = ["n", "shard"])]
    pub from: Option<PathBuf>,
    /// Device: cpu, vulkan (= vulkan:0), vulkan:N (the N-th discrete GPU) or wgpu; GPUs need a build with `--features vulkan`.
    #[arg(long, default_value = "cpu", value_name = "cpu|vulkan[:N]|wgpu")]
    pub device: DeviceChoice,
}

/// `scoreflow eval`.
#[derive(Debug, Args)]
#[command(
    long_about = "Score samples against held-out data with sliced Wasserstein-2, MMD² (Gaussian \
        kernels, bandwidths 0.05–2), energy distance and mean/covariance errors, next to the \
        data-vs-data noise floor (fresh data of the same size scored the same way) and each \
        metric's ratio to it. Without --samples, draws samples from the run first. Writes \
        RUN_DIR/metrics.json.\n\n\
        Image runs are scored in pixel space (data units) with samples rounded to the data's \
        levels: against every held-out image, next to the floor of as many training images, with \
        MMD bandwidths from the median pairwise distance (¼–4×), and the memorisation check — the \
        mean distance of a sample to its nearest training image against that of a held-out \
        image (ratio ≪ 1: copies). bits/dim is `scoreflow likelihood`'s (or --nll N here).\n\n\
        On a classifier run (--method classifier): its accuracy and \
        cross-entropy on -n noised held-out points at flow times 0.25, 0.5, 0.75, 0.9 and 1, next \
        to the exact (Bayes) classifier's for the built-in mixtures.",
    after_help = "Examples:\n  scoreflow eval runs/moons\n  scoreflow eval runs/moons --samples s.npy\n  scoreflow eval runs/moons --sampler dopri5 -n 5000 --json\n  scoreflow eval runs/digits -n 500"
)]
pub struct EvalArgs {
    /// Run directory written by `scoreflow train`.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Samples to score (.csv or .npy) [default: sample now with --sampler].
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
    /// Number of samples to draw (without --samples) and of held-out points [default: 10000; image runs: 1000, at most the training images]
    #[arg(short = 'n', long = "num", value_name = "N")]
    pub n: Option<usize>,
    /// Sampler used without --samples [default: as `scoreflow sample`].
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerName>,
    /// Steps of the sampler used without --samples.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Random seed (sampling, held-out data, random projections).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Held-out points to compare with, .csv or .npy [default: fresh draws of a built-in set, or the run's held-out split].
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// Also report the held-out negative log-likelihood on this many points (0 = skip).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub nll: usize,
    /// Where to write the metrics [default: RUN_DIR/metrics.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `scoreflow plot`.
#[derive(Debug, Args)]
#[command(
    long_about = "Draw a run as PNG files in the run directory (or --out-dir): samples.png (data \
        vs samples), field.png (the learned vector field as arrows at each of --times, coloured \
        by magnitude), trajectories.png, loss.png (training loss on a log scale from \
        train_log.csv); with --gif flow.gif (samples flowing from noise to data); with \
        --density density.png (model log-density on a grid next to the true one when known); \
        with --diagnose curl.png and stiffness.png. With --class K: instead the guidance pictures \
        guidance.png (samples of class K at each scale of --guidance, or of --classifier-scale \
        with --classifier, over the data with class K highlighted) and guidance-tradeoff.png \
        (share of samples in class K and their spread against the scale), numbers with --json.",
    after_help = "Examples:\n  scoreflow plot runs/moons\n  scoreflow plot runs/moons --times 0,0.5,0.9,1 --gif\n  scoreflow plot runs/moons --density --diagnose\n  \
        scoreflow plot runs/c8 --class 3 --guidance 0,1,2,4           # a --conditional run (CFG)\n  \
        scoreflow plot runs/vp --class 3 --classifier runs/clf --classifier-scale 0,1,2,4\n  \
        scoreflow plot --exact 8gaussians --class 3 --guidance 0 --classifier-scale 0,1,2,4"
)]
pub struct PlotArgs {
    /// Run directory written by `scoreflow train` (or --exact NAME with --class).
    #[arg(value_name = "RUN_DIR", required_unless_present = "exact")]
    pub run: Option<PathBuf>,
    /// Draw the guidance pictures of a built-in Gaussian mixture's exact score (VP SDE) instead of a run (with --class).
    #[arg(long, value_name = "NAME", conflicts_with = "run", requires = "class")]
    pub exact: Option<Dataset>,
    /// Draw the guidance pictures of class K (guidance.png, guidance-tradeoff.png) instead of the run's pictures.
    #[arg(long, value_name = "K")]
    pub class: Option<usize>,
    /// Classifier-free guidance scales G (a list sweeps them; one value with --classifier-scale), diffusers' convention [default: 0,1,2,4, or 1 when --classifier-scale sweeps].
    #[arg(long, value_delimiter = ',', value_name = "G,..", requires = "class")]
    pub guidance: Option<Vec<f64>>,
    /// Classifier guidance scales S to sweep (with --classifier, or the exact classifier of --exact) [default with --classifier: 0,1,2,4].
    #[arg(long, value_delimiter = ',', value_name = "S,..", requires = "class")]
    pub classifier_scale: Option<Vec<f64>>,
    /// A classifier run (`scoreflow train --method classifier`) guiding the run (see `scoreflow sample --classifier`).
    #[arg(long, value_name = "RUN", requires = "class")]
    pub classifier: Option<PathBuf>,
    /// Sampler of the guidance pictures [default: as `scoreflow sample`].
    #[arg(long, value_enum, requires = "class")]
    pub sampler: Option<SamplerName>,
    /// Sampler steps of the guidance pictures [default: the sampler's].
    #[arg(long, value_name = "N", requires = "class")]
    pub steps: Option<usize>,
    /// Samples to draw [default: RUN_DIR/samples.csv if present, else sample now].
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
    /// Points to sample and draw when sampling now.
    #[arg(short = 'n', long = "num", default_value_t = 5_000, value_name = "N")]
    pub n: usize,
    /// Flow times t at which to draw the field (flow-matching time: 0 = noise, 1 = data).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.5,0.9,1",
        value_name = "T,.."
    )]
    pub times: Vec<f64>,
    /// Arrows per side of the quiver grid.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub grid: usize,
    /// Also write flow.gif: samples flowing from noise to data.
    #[arg(long)]
    pub gif: bool,
    /// Also write density.png: the model density on a grid (and the true density when known).
    #[arg(long)]
    pub density: bool,
    /// Also write curl.png and stiffness.png (2-D field diagnostics).
    #[arg(long)]
    pub diagnose: bool,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory for the pictures [default: RUN_DIR].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `scoreflow bench`.
#[derive(Debug, Args)]
#[command(
    long_about = "The speed benchmark of ../shared/bench/reference_fm.py --bench-only on the same \
        work: flow matching on 8gaussians with Adam 1e-3, 20 warm-up + 200 timed training steps at \
        the given batch, then Euler sampling of 10,000 points × 100 steps. With --json prints one \
        JSON line with the reference's keys (train_steps_per_s, sample_point_steps_per_s, …) plus \
        the engine, GFLOP/s and the machine's measured GEMM peak.\n\n\
        --arch unet times the image U-Net instead, the workload of bench/unet_torch.py --bench: \
        flow matching on the dequantised 8×8 digits with Adam 1e-3, 3 warm-up + 20 timed steps \
        (forward + backward + Adam; the median is step_ms) at `train --data digits`'s batch and \
        network (--base, --mults, --res-blocks, --attention as in train), then Euler sampling of \
        256 images × 100 steps; the JSON line has that script's keys (step_ms, steps_per_s, \
        sample_s, samples_per_s, params).",
    after_help = "Examples:\n  scoreflow bench --threads 2 --json\n  scoreflow bench --width 128 --depth 4 --batch 256 --engine burn\n  scoreflow --threads 2 bench --arch unet --json   (compare: bench/unet_compare.sh)"
)]
pub struct BenchArgs {
    /// Network: mlp (the reference_fm workload; auto means mlp here) or unet (the U-Net on the 8×8 digits) [default: mlp]
    #[arg(long, value_enum)]
    pub arch: Option<ArchKind>,
    /// Hidden width of the MLP [default: 512]
    #[arg(long, value_name = "W")]
    pub width: Option<usize>,
    /// Hidden layers of the MLP [default: 4]
    #[arg(long, value_name = "D")]
    pub depth: Option<usize>,
    /// U-Net base channels (as `train`) [default: 32]
    #[arg(long, value_name = "C")]
    pub base: Option<usize>,
    /// U-Net channel multipliers (as `train`) [default: 1,2]
    #[arg(long, value_delimiter = ',', value_name = "M,..")]
    pub mults: Option<Vec<usize>>,
    /// U-Net residual blocks per level (as `train`) [default: 1]
    #[arg(long, value_name = "N")]
    pub res_blocks: Option<usize>,
    /// U-Net self-attention at the lowest resolution (as `train`) [default: true]
    #[arg(long, value_name = "BOOL")]
    pub attention: Option<bool>,
    /// Training batch size [default: 1024; --arch unet: 128, `train --data digits`'s]
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Points (images) sampled with Euler [default: 10000; --arch unet: 256]
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// Euler steps of the sampling [default: 100]
    #[arg(long, value_name = "M")]
    pub euler_steps: Option<usize>,
    /// Engine: auto (= fused on the CPU, burn on a GPU; burn for the U-Net), fused (the fused CPU MLP engine) or burn (burn autodiff, the reference).
    #[arg(long, value_enum, default_value_t = EngineKind::Auto)]
    pub engine: EngineKind,
    /// Also time Dopri5 sampling (rtol = atol = 1e-5) of the same 10,000 points (MLP only).
    #[arg(long)]
    pub dopri5: bool,
    /// Also time the exact-divergence likelihood of this many points (0 = skip; MLP only).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub nll: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, vulkan (= vulkan:0), vulkan:N (the N-th discrete GPU) or wgpu; GPUs need a build with `--features vulkan`.
    #[arg(long, default_value = "cpu", value_name = "cpu|vulkan[:N]|wgpu")]
    pub device: DeviceChoice,
}

/// `scoreflow import`.
#[derive(Debug, Args)]
#[command(
    long_about = "Read the safetensors state dict of a PyTorch nn.Sequential MLP (Linear layers \
        with one parameter-free activation in between, input [x, t] or [t, x]) and write a run \
        directory that sample, likelihood, eval, plot, diagnose and report accept. Width and \
        depth come from the weights; what the network computes is yours to say: a flow velocity \
        (--method cfm, alias velocity, on --path condot: TorchCFM with sigma = 0, flow_matching's \
        CondOTProbPath) or a score / noise prediction under an SDE (--method dsm, alias score, \
        with --sde, --target, --noise-input). PyTorch models see raw data, so no normalisation \
        is applied unless --normalize yes.",
    after_help = "Examples:\n  python -c \"from safetensors.torch import save_file; save_file(model.state_dict(), 'mlp.safetensors')\"\n  scoreflow import mlp.safetensors --data 8gaussians --activation selu --out runs/torchcfm\n  scoreflow sample runs/torchcfm -n 10000 && scoreflow eval runs/torchcfm"
)]
pub struct ImportArgs {
    /// The PyTorch weights (safetensors; keys like net.0.weight … or 0.weight …).
    #[arg(value_name = "WEIGHTS")]
    pub weights: PathBuf,
    /// Where t sits among the network's inputs: last ([x, t]: TorchCFM, flow_matching's 2-D flow-matching example, the reference scripts) or first ([t, x]).
    #[arg(long, value_enum, default_value_t = TimeColumn::Last)]
    pub time_column: TimeColumn,
    /// What the network computes and on which data: `train`'s flags (--data, --method, --path, --sde, --target, --noise-input, --beta-*, --sigma-*, --activation, --normalize, --out); flags that only concern training are refused.
    #[command(flatten)]
    pub opts: TrainOpts,
}

/// `scoreflow likelihood`.
#[derive(Debug, Args)]
#[command(
    long_about = "Exact log-likelihood log p(x) of points under a trained run, by the \
        instantaneous change of variables along the flow (or probability-flow) ODE from the data \
        to the prior. Writes per-point log p as CSV and prints mean ± standard error, NFE and \
        wall time (--json: mean_log_prob, nll, …). The divergence is exact for d ≤ 16 and \
        Hutchinson–Skilling with --hutchinson K probes otherwise (or when asked).",
    after_help = "Examples:\n  scoreflow likelihood runs/moons --data moons -n 5000\n  scoreflow likelihood runs/mine --data held_out.csv --out logp.csv --json"
)]
pub struct LikelihoodArgs {
    /// Run directory written by `scoreflow train`.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Points to evaluate: a CSV/NPY file or a built-in data set name (fresh draws) [default: the run's held-out split (file and image data) or fresh draws of its built-in set]. Image runs take integer levels and report bits/dim.
    #[arg(long, value_name = "FILE|NAME")]
    pub data: Option<String>,
    /// Points to draw from a built-in set (files are used whole).
    #[arg(short = 'n', long = "num", default_value_t = 5_000, value_name = "N")]
    pub n: usize,
    /// Random seed (built-in draws, Hutchinson probes).
    #[arg(long, default_value_t = 987_654_321)]
    pub seed: u64,
    /// ODE method.
    #[arg(long, value_enum, default_value_t = Method::Dopri5, value_name = "METHOD")]
    pub solver: Method,
    /// Steps of a fixed-step method [default: 100]; not for dopri5, which chooses its own.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Relative tolerance of dopri5 [default: 1e-5].
    #[arg(long, value_name = "X")]
    pub rtol: Option<f64>,
    /// Absolute tolerance of dopri5 [default: 1e-5].
    #[arg(long, value_name = "X")]
    pub atol: Option<f64>,
    /// Use Hutchinson's estimator with K Rademacher probes instead of the exact divergence.
    #[arg(long, value_name = "K")]
    pub hutchinson: Option<usize>,
    /// Per-point log p CSV [default: RUN_DIR/logp.csv]; the summary (NLL, bits/dim for images) goes beside it as .json.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Device: cpu, vulkan (= vulkan:0), vulkan:N (the N-th discrete GPU) or wgpu; GPUs need a build with `--features vulkan`.
    #[arg(long, default_value = "cpu", value_name = "cpu|vulkan[:N]|wgpu")]
    pub device: DeviceChoice,
}

/// `scoreflow diagnose`.
#[derive(Debug, Args)]
#[command(
    long_about = "Questions the score-based literature asks of a field, at data points and chosen \
        times: the antisymmetric share ‖(J − Jᵀ)/2‖_F / ‖J‖_F of the Jacobian (0 for a true \
        score), curl (2-D), eigenvalues, stiffness ratio max|λ|/min|λ| and the largest stable \
        explicit-Euler step h_max = min over λ of −2 Re λ / |λ|². Prints a table (or JSON).",
    after_help = "Examples:\n  scoreflow diagnose runs/moons\n  scoreflow diagnose runs/vp --times 0.5,0.9,0.99 --json"
)]
pub struct DiagnoseArgs {
    /// Run directory written by `scoreflow train`.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Points to probe: a CSV/NPY file or a built-in set name [default: held-out data of the run].
    #[arg(long, value_name = "FILE|NAME")]
    pub points: Option<String>,
    /// Number of probe points.
    #[arg(short = 'n', long = "num", default_value_t = 1_000, value_name = "N")]
    pub n: usize,
    /// Flow times t to probe (0 = noise, 1 = data); score models are probed at diffusion time τ = T·(1 − t).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.5,0.9",
        value_name = "T,.."
    )]
    pub times: Vec<f64>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `scoreflow lesson`.
#[derive(Debug, Args)]
#[command(
    long_about = "A principle of the notes, measured: each lesson runs a seeded experiment (at most \
        3 minutes on 2 cores at its defaults), prints its table and whether its claim held, and \
        writes lesson.json and pictures into the output directory. `scoreflow lesson --list` \
        shows the lessons with their claims: low-density (noise-free SM + Langevin vs multi-σ \
        DSM + annealed Langevin), dimension (score and moment errors grow with d at fixed data), \
        sharp-modes (a network's score is flatter than a sharp mode; Langevin samples too wide), \
        stationary-sampler (a fixed-step Langevin run on a time-dependent score gets the \
        variance wrong; the reverse SDE does not), sde-zoo (VP, sub-VP and VE: wind, fog, prior \
        mismatch, a Fokker–Planck check), nonlinear-drift (DSM on simulated transitions of an \
        energy-based drift: noisy or biased), stiffness (Euler just below and above h_max), \
        implicit-bias (DSM drives a linear score's antisymmetric part to zero at rate 2c). \
        --steps and --num override the training steps and the number of samples (chains) where \
        a lesson has them; --quick runs the small settings of the lesson's library test.",
    after_help = "Examples:\n  scoreflow lesson --list\n  scoreflow lesson sharp-modes --out runs/sharp\n  \
        scoreflow lesson low-density --objective ssm\n  scoreflow lesson dimension --quick"
)]
pub struct LessonArgs {
    /// The lesson (see --list).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// List the lessons with their one-line claims.
    #[arg(long)]
    pub list: bool,
    /// Output directory [default: runs/lesson-<name>-<time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Adam steps of every network the lesson trains [default: the lesson's own].
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Samples (or chains) the lesson draws [default: the lesson's own].
    #[arg(short = 'n', long = "num", value_name = "N")]
    pub n: Option<usize>,
    /// The small settings of the lesson's library test (seconds instead of minutes).
    #[arg(long)]
    pub quick: bool,
    /// low-density: the noise-free objective, sm (Hyvärinen, exact divergence) or ssm (sliced).
    #[arg(long, default_value = "sm", value_name = "sm|ssm")]
    pub objective: String,
    /// Seed of the lesson's data and samplers [default: the lesson's own].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// `scoreflow report`.
#[derive(Debug, Args)]
#[command(
    long_about = "Write DIR/report.html: one self-contained HTML page of a run or lesson, with \
        every picture inlined (no network, no other file needed; readable on a phone, light or \
        dark). A run's page shows the metrics against the noise floor (metrics.json), every \
        picture and the flow animation, training curves from train_log.csv, diagnostics and the \
        settings (config.toml, meta.json); a lesson's page its claim, its tables and its \
        pictures. Missing standard pictures of a run are drawn first as by `scoreflow plot RUN \
        --gif` (which samples the model; --no-sample renders only what is there). When DIR \
        holds runs or lessons in its sub-directories, each gets its page and DIR/index.html \
        links them.",
    after_help = "Examples:\n  scoreflow report runs/moons\n  scoreflow report runs              # every run and lesson in runs/, plus runs/index.html\n  \
        scoreflow report runs/moons --no-sample"
)]
pub struct ReportArgs {
    /// A run or lesson directory, or a directory holding them.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Render only what the directories hold: draw no missing picture (drawing samples the model).
    #[arg(long)]
    pub no_sample: bool,
}

/// `scoreflow chain`.
#[derive(Debug, Args)]
#[command(
    long_about = "Train one flow per consecutive pair of SHAPES (A → B, B → C, …; built-in sets \
        or .csv/.npy files), each a run directory DIR/<k>-<A>-to-<B> made as by `scoreflow train \
        --source A --data B`, then carry -n fresh draws of the first shape through every flow in \
        turn (the end points of one leg start the next, as `scoreflow sample --from`) with Euler \
        and write DIR/chain.gif (the points flowing shape to shape) and DIR/chain.json (per leg: \
        training time, SW2 of the carried points to held-out targets next to the noise floor). \
        A chain of four shapes takes about a minute on two cores: 8,000 steps per leg of \
        `scoreflow train`'s default model (3→128×4→2 MLP, independent coupling); every train \
        flag overrides them (--coupling ot straightens the paths at ~9 ms per batch of 256). The shapes star, bullseye, x_shape, h_lines, v_lines, dots, slant_up and \
        circle all have mean 0 and covariance I: the moments never change along the chain.",
    after_help = "Examples:\n  scoreflow chain star bullseye x_shape dots --out runs/chain\n  \
        scoreflow chain moons 8gaussians circle --out runs/c2 --steps 3000 --coupling sinkhorn"
)]
pub struct ChainArgs {
    /// The shapes in order (at least two): built-in sets or .csv/.npy files.
    #[arg(value_name = "SHAPE", num_args = 2.., required = true)]
    pub shapes: Vec<String>,
    /// Points carried through the chain in the animation.
    #[arg(short = 'n', long = "num", default_value_t = 2_000, value_name = "N")]
    pub n: usize,
    /// Euler steps per leg (one animation frame each).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub euler_steps: usize,
    /// Training settings of every leg (--out DIR: the chain's directory; --steps defaults to 8000 here).
    #[command(flatten)]
    pub opts: TrainOpts,
}
