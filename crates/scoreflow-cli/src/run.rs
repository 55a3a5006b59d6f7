//! Run directories as the CLI sees them: the data a run trained on, what its network is (a
//! flow-matching velocity or a score under an SDE), loading it back, and sampling from it.
//!
//! A run directory holds `config.toml` (the CLI settings), `meta.json` + `model.safetensors` +
//! `train_state.safetensors` (the library's checkpoint; `meta.json`'s `objective` is a
//! [`ModelSpec`], its `normalization` a [`Normalizer`]), `train_log.csv`, and for file data the
//! held-out split `heldout.npy`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use scoreflow::checkpoint::{self, RunMeta};
use scoreflow::data::{self, DataSource, Dataset, Normalizer, Points};
use scoreflow::field::convert::{Prediction, ScoreField};
use scoreflow::field::mlp::{Activation, Mlp, MlpConfig, TimeEmbedding};
use scoreflow::fused::FusedMlp;
use scoreflow::objective::dsm::{Dsm, DsmConfig, NoiseLevels, Weighting};
use scoreflow::objective::Objective;
use scoreflow::sde::BetaSchedule;
use scoreflow::sde::{ReverseDrift, Sde, SdeConfig};
use scoreflow::solve::{odeint, Method, OdeOptions};
use scoreflow::tensor::{self, DType, Tensor};
use scoreflow::VectorField;
use serde::{Deserialize, Serialize};

use crate::cli::SamplerName;
use crate::config::{
    ActivationName, MethodName, SdeName, TargetName, TimeName, TrainSettings, WeightingName,
};
use crate::sampling::{run_blocks, BlockResult, Plan, SampleOutput};

/// File of the held-out split of a file data set.
pub const HELDOUT_FILE: &str = "heldout.npy";
/// File of the CLI settings.
pub const CONFIG_FILE: &str = "config.toml";
/// File of the training log.
pub const LOG_FILE: &str = "train_log.csv";

/// What the network of a run computes; stored as `meta.json`'s `objective`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum ModelSpec {
    /// A flow-matching velocity v(x, t) on the straight path, t = 0 noise N(0, I), t = 1 data.
    Cfm {
        /// The probability path ("condot").
        path: String,
    },
    /// A score network under an SDE, taking diffusion time τ (τ = 0 data).
    Dsm {
        /// The forward SDE.
        sde: SdeConfig,
        /// Target, weighting, noise levels.
        dsm: DsmConfig,
    },
}

impl ModelSpec {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            ModelSpec::Cfm { .. } => "cfm",
            ModelSpec::Dsm { .. } => "dsm",
        }
    }
}

/// The built-in data set named `name`, if it is one.
pub fn builtin(name: &str) -> Option<Dataset> {
    name.parse::<Dataset>().ok()
}

/// Loads points from a .csv/.npy file, or explains what `name` could have been.
pub fn load_file_or_explain(name: &str, expected_dim: Option<usize>) -> Result<Points> {
    let p = Path::new(name);
    let is_file_like =
        p.extension().is_some() || p.exists() || name.contains(std::path::MAIN_SEPARATOR);
    if !is_file_like {
        // Neither a built-in name nor a path: the data set list is the useful answer.
        let err = name.parse::<Dataset>().expect_err("not a built-in");
        bail!("{err} (or give a .csv/.npy file)");
    }
    if !p.exists() {
        bail!("{name}: no such file");
    }
    Ok(data::load_points(p, expected_dim)?)
}

/// The training data of `settings`: the source of minibatches (in data units), the normaliser
/// and, for files, the held-out split.
pub fn training_data(s: &TrainSettings) -> Result<(DataSource, Normalizer)> {
    let source = match builtin(&s.data) {
        Some(ds) => DataSource::Generator(ds),
        None => {
            let pts = load_file_or_explain(&s.data, None)?;
            if pts.len() < 2 {
                bail!(
                    "{}: need at least 2 points to train, found {}",
                    s.data,
                    pts.len()
                );
            }
            let name = Path::new(&s.data)
                .file_name()
                .map_or(s.data.clone(), |f| f.to_string_lossy().into_owned());
            DataSource::finite_split(name, &pts, s.holdout, s.seed)?
        }
    };
    let norm = if s.normalize {
        // Generators: fit on 100,000 draws of a fixed stream; files: on the training split.
        let fit_on = match &source {
            DataSource::Generator(ds) => {
                let mut r = tensor::rng(0x4e4f_524d); // "NORM"
                ds.sample(100_000, &mut r)
            }
            DataSource::Finite { train, .. } => train.clone(),
        };
        Normalizer::fit(&fit_on)?
    } else {
        Normalizer::identity(source.dim())
    };
    Ok((source, norm))
}

/// The network architecture of `settings` in dimension `dim`.
pub fn mlp_config(s: &TrainSettings, dim: usize) -> MlpConfig {
    let activation = match s.activation {
        ActivationName::Silu => Activation::Silu,
        ActivationName::Relu => Activation::Relu,
        ActivationName::Tanh => Activation::Tanh,
        ActivationName::Softplus => Activation::Softplus,
    };
    let time = match s.time_embedding {
        TimeName::Raw => TimeEmbedding::Raw,
        // 16 frequencies ~ N(0, 1) from a stream of the run seed (stored in meta.json).
        TimeName::Fourier => {
            let mut r = tensor::rng(s.seed);
            r.set_stream(0x5449_4d45); // "TIME"
            TimeEmbedding::fourier(16, 1.0, &mut r)
        }
    };
    MlpConfig {
        dim,
        width: s.width,
        depth: s.depth,
        activation,
        time,
    }
}

/// The model description of `settings`; `data` (normalised) sets VE's σ_max when not given.
pub fn model_spec(s: &TrainSettings, data: impl FnOnce() -> Points) -> Result<ModelSpec> {
    Ok(match s.method {
        MethodName::Cfm => ModelSpec::Cfm {
            path: "condot".into(),
        },
        MethodName::Dsm => {
            let t_min = 1e-5;
            let linear = BetaSchedule::Linear {
                beta_min: s.beta_min,
                beta_max: s.beta_max,
            };
            let sde = match s.sde {
                SdeName::Vp => SdeConfig::Vp {
                    schedule: linear,
                    t_min,
                },
                SdeName::VpCosine => SdeConfig::Vp {
                    schedule: BetaSchedule::cosine(),
                    t_min,
                },
                SdeName::Subvp => SdeConfig::SubVp {
                    schedule: linear,
                    t_min,
                },
                SdeName::Ve => {
                    let sigma_max = match s.sigma_max {
                        Some(m) => m,
                        None => scoreflow::sde::VeSde::sigma_max_for(&data()),
                    };
                    SdeConfig::Ve {
                        sigma_min: s.sigma_min,
                        sigma_max,
                        t_min,
                    }
                }
            };
            let target = match s.target {
                TargetName::Eps => Prediction::Epsilon,
                TargetName::Score => Prediction::Score,
                TargetName::X0 => Prediction::Data,
            };
            let weighting = match s.weighting {
                WeightingName::Sigma2 => Weighting::Sigma2,
                WeightingName::Likelihood => Weighting::Likelihood,
                WeightingName::Uniform => Weighting::Uniform,
            };
            let noise = match s.noise_levels {
                0 => NoiseLevels::Continuous,
                l => NoiseLevels::Ladder { levels: l },
            };
            ModelSpec::Dsm {
                sde,
                dsm: DsmConfig {
                    target,
                    weighting,
                    noise,
                },
            }
        }
        MethodName::Sm | MethodName::Ssm => {
            bail!(
                "--method {} (noise-free score matching) is not wired into the CLI yet",
                s.method.name()
            )
        }
    })
}

/// The training objective of a model description.
pub fn objective(spec: &ModelSpec) -> Result<Box<dyn Objective>> {
    Ok(match spec {
        ModelSpec::Cfm { .. } => Box::new(scoreflow::objective::cfm::FlowMatching::new(
            scoreflow::path::GaussianPath::new(scoreflow::path::CondOt),
        )),
        ModelSpec::Dsm { sde, dsm } => Box::new(Dsm::new(sde.build()?, dsm.clone())?),
    })
}

/// A trained run loaded from its directory.
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// Its CLI settings.
    pub settings: TrainSettings,
    /// Its checkpoint metadata.
    pub meta: RunMeta,
    /// What the network computes.
    pub spec: ModelSpec,
    /// The data normalisation (model units = normalised units).
    pub norm: Normalizer,
    /// The sampling weights (EMA when on), f32.
    pub model: Mlp,
}

impl Run {
    /// Loads `dir`, with errors that say what is wrong with it.
    pub fn load(dir: &Path) -> Result<Run> {
        if !dir.is_dir() {
            bail!("{}: no such run directory", dir.display());
        }
        let meta_path = dir.join(checkpoint::META_FILE);
        if !meta_path.exists() {
            bail!("{}: not a scoreflow run directory (no meta.json; train one with `scoreflow train --out DIR`)", dir.display());
        }
        let cfg_path = dir.join(CONFIG_FILE);
        let settings = TrainSettings::from_file(&cfg_path)?;
        let meta = checkpoint::read_meta(&meta_path)?;
        let spec: ModelSpec = serde_json::from_value(meta.objective.clone()).map_err(|e| {
            anyhow!(
                "{}: the run's objective is not one this CLI knows: {e}",
                meta_path.display()
            )
        })?;
        if spec.method() != settings.method.name() {
            bail!(
                "{}: config.toml says method {} but meta.json holds a {} model; the files come from different runs",
                dir.display(),
                settings.method.name(),
                spec.method()
            );
        }
        let norm: Normalizer = serde_json::from_value(meta.normalization.clone())
            .map_err(|e| anyhow!("{}: malformed normalization: {e}", meta_path.display()))?;
        norm.validate()?;
        if norm.dim() != meta.model.dim {
            bail!(
                "{}: normalization is {}-D but the model is {}-D",
                meta_path.display(),
                norm.dim(),
                meta.model.dim
            );
        }
        let model = checkpoint::load_mlp_safetensors(
            &dir.join(checkpoint::MODEL_FILE),
            &meta.model,
            &tensor::cpu(),
            DType::F32,
        )?;
        Ok(Run {
            dir: dir.to_path_buf(),
            settings,
            meta,
            spec,
            norm,
            model,
        })
    }

    /// Data dimension d.
    pub fn dim(&self) -> usize {
        self.meta.model.dim
    }

    /// The built-in data set the run trained on, if any.
    pub fn dataset(&self) -> Option<Dataset> {
        builtin(&self.settings.data)
    }

    /// `n` held-out data points (data units): fresh draws of a built-in set from a dedicated
    /// stream, or the run's saved held-out split (all of it when n exceeds it).
    pub fn held_out(&self, n: usize, seed: u64) -> Result<Points> {
        match self.dataset() {
            Some(ds) => Ok(DataSource::Generator(ds).held_out(n, seed)?),
            None => {
                let p = self.dir.join(HELDOUT_FILE);
                if !p.exists() {
                    bail!(
                        "{}: missing (the held-out split of the run's data)",
                        p.display()
                    );
                }
                let test = data::load_points(&p, Some(self.dim()))?;
                let src = DataSource::finite("held-out", test.clone(), Some(test))?;
                Ok(src.held_out(n, seed)?)
            }
        }
    }

    /// The fast f32 evaluator of the network.
    pub fn fused(&self) -> FusedMlp {
        FusedMlp::from_mlp(&self.model)
    }

    /// The default sampler of the run's model kind.
    pub fn default_sampler(&self) -> SamplerName {
        match self.spec {
            ModelSpec::Cfm { .. } => SamplerName::Euler,
            ModelSpec::Dsm { .. } => SamplerName::Em,
        }
    }

    /// The SDE of a score model.
    pub fn sde(&self) -> Result<Option<Arc<dyn Sde>>> {
        match &self.spec {
            ModelSpec::Dsm { sde, .. } => Ok(Some(sde.build()?)),
            _ => Ok(None),
        }
    }

    /// Samples `plan` (data units) with `spec`; `progress(points done)` after each block.
    pub fn sample(
        &self,
        plan: &Plan,
        seed: u64,
        spec: &SamplerSpec,
        progress: impl FnMut(usize),
    ) -> Result<SampleOutput> {
        let net = self.fused();
        let dev = tensor::cpu();
        let mut out = match (&self.spec, spec.sampler) {
            (ModelSpec::Cfm { .. }, s) if s.is_ode_solver() => {
                let opts = spec.ode_options(ode_method(s), 100);
                run_blocks(
                    plan,
                    seed,
                    self.dim(),
                    &dev,
                    |x0, _| ode_block(&net, x0, 0.0, 1.0, &opts),
                    progress,
                )?
            }
            (ModelSpec::Cfm { .. }, s) => {
                bail!("--sampler {} is for score models; this run is a flow-matching model: use euler, midpoint, heun, rk4 or dopri5", s.name())
            }
            (ModelSpec::Dsm { sde, dsm }, s) => {
                let sde = sde.build()?;
                let score = ScoreField::new(net, sde.clone(), dsm.target);
                match s {
                    SamplerName::Ode => {
                        let method: Method = spec.solver.parse()?;
                        let opts = spec.ode_options(method, 100);
                        let field = ReverseDrift::probability_flow(sde.clone(), score);
                        let (t0, t1, prior) = (sde.t_max(), sde.sampling_eps(), sde.prior_std());
                        run_blocks(plan, seed, self.dim(), &dev, |x0, _| ode_block(&field, x0 * prior, t0, t1, &opts), progress)?
                    }
                    s if s.is_ode_solver() => bail!(
                        "this run is a score model ({}); sample it with --sampler em, pc, ald, or ode --solver {}",
                        sde.name(),
                        s.name()
                    ),
                    s => bail!("--sampler {} is not available in this build yet; use --sampler ode", s.name()),
                }
            }
        };
        // Back to data units.
        out.points = self.norm.invert(&out.points)?;
        for (_, traj) in &mut out.trajectories {
            for (_, pts) in traj.iter_mut() {
                *pts = self.norm.invert(pts)?;
            }
        }
        Ok(out)
    }

    /// The learned velocity (flow matching) or score (DSM) at points `x` (data units) at the
    /// model's time `t`, converted to data units: v_x = σ ⊙ v_z(z) for a velocity,
    /// s_x = s_z(z) / σ for a score, with z = (x − μ)/σ.
    pub fn field_at(&self, x: &[[f64; 2]], t: f64) -> Result<Vec<[f64; 2]>> {
        if self.dim() != 2 {
            bail!(
                "field pictures need 2-D data (this run is {}-D)",
                self.dim()
            );
        }
        let pts = Points::new(x.iter().flatten().copied().collect(), 2)?;
        let z = self.norm.apply(&pts)?.to_tensor(&tensor::cpu(), DType::F32);
        let net = self.fused();
        let (v, velocity) = match &self.spec {
            ModelSpec::Cfm { .. } => (net.eval_at(&z, t), true),
            ModelSpec::Dsm { sde, dsm } => (
                ScoreField::new(net, sde.build()?, dsm.target).eval_at(&z, t),
                false,
            ),
        };
        let v = tensor::to_vec(&v);
        let s = &self.norm.std;
        Ok(v.chunks_exact(2)
            .map(|c| {
                if velocity {
                    [c[0] * s[0], c[1] * s[1]]
                } else {
                    [c[0] / s[0], c[1] / s[1]]
                }
            })
            .collect())
    }
}

/// Sampler settings from the command line.
#[derive(Debug, Clone)]
pub struct SamplerSpec {
    /// The sampler.
    pub sampler: SamplerName,
    /// ODE method for `--sampler ode`.
    pub solver: String,
    /// Fixed steps (None = the sampler's default).
    pub steps: Option<usize>,
    /// dopri5 tolerances.
    pub rtol: f64,
    /// dopri5 tolerances.
    pub atol: f64,
    /// Langevin corrector signal-to-noise ratio.
    pub snr: f64,
    /// Keep intermediate states.
    pub trajectories: bool,
}

impl SamplerSpec {
    /// Defaults for `sampler`.
    pub fn new(sampler: SamplerName) -> Self {
        Self {
            sampler,
            solver: "dopri5".into(),
            steps: None,
            rtol: 1e-5,
            atol: 1e-5,
            snr: 0.16,
            trajectories: false,
        }
    }

    fn ode_options(&self, method: Method, default_steps: usize) -> OdeOptions {
        OdeOptions {
            save_trajectory: self.trajectories,
            ..if method.is_adaptive() {
                OdeOptions::dopri5(self.rtol, self.atol)
            } else {
                OdeOptions::fixed(method, self.steps.unwrap_or(default_steps))
            }
        }
    }

    /// Checks steps and tolerances.
    pub fn validate(&self) -> Result<()> {
        if self.steps == Some(0) {
            bail!("--steps must be at least 1");
        }
        if !(self.rtol > 0.0 && self.atol >= 0.0 && self.rtol.is_finite() && self.atol.is_finite())
        {
            bail!(
                "need --rtol > 0 and --atol >= 0 (got {}, {})",
                self.rtol,
                self.atol
            );
        }
        if !(self.snr > 0.0 && self.snr.is_finite()) {
            bail!("--snr must be positive (got {})", self.snr);
        }
        Ok(())
    }
}

/// The ODE method of an ODE sampler name.
fn ode_method(s: SamplerName) -> Method {
    match s {
        SamplerName::Euler => Method::Euler,
        SamplerName::Midpoint => Method::Midpoint,
        SamplerName::Heun => Method::Heun,
        SamplerName::Rk4 => Method::Rk4,
        _ => Method::Dopri5,
    }
}

/// Integrates one block from t0 to t1.
fn ode_block(
    field: &dyn VectorField,
    x0: Tensor<2>,
    t0: f64,
    t1: f64,
    opts: &OdeOptions,
) -> scoreflow::Result<BlockResult> {
    let sol = odeint(field, x0, t0, t1, opts)?;
    Ok(BlockResult {
        x: sol.x,
        nfe: sol.nfe,
        trajectory: sol.trajectory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_spec_round_trips_through_meta_json() {
        let s = TrainSettings {
            method: MethodName::Dsm,
            sde: SdeName::Ve,
            sigma_max: Some(6.0),
            ..TrainSettings::default()
        };
        let spec = model_spec(&s, || unreachable!()).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["method"], "dsm");
        let back: ModelSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back, spec);
        assert!(objective(&back).is_ok());
    }

    #[test]
    fn unknown_data_names_list_the_builtins() {
        let e = load_file_or_explain("spirals", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("8gaussians") && e.contains("moons") && e.contains(".csv"),
            "{e}"
        );
        let e = load_file_or_explain("nowhere/points.csv", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;

    /// The fused evaluator used for sampling computes the same field as the burn network
    /// (f32 rounding only: relative 1e-4).
    #[test]
    fn fused_sampling_field_matches_burn() {
        let cfg = MlpConfig::new(2, 64, 3);
        let mut r = tensor::rng(3);
        let mlp = cfg.init(&tensor::cpu(), DType::F32, &mut r);
        let x = tensor::randn(50, 2, &tensor::cpu(), DType::F32, &mut r);
        let t = tensor::uniform(50, 0.0, 1.0, &tensor::cpu(), DType::F32, &mut r);
        let a = tensor::to_vec(&mlp.forward(&x, &t));
        let b = tensor::to_vec(&FusedMlp::from_mlp(&mlp).eval(&x, &t));
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() <= 1e-4 * (1.0 + u.abs()), "{u} vs {v}");
        }
    }
}
