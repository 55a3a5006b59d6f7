//! Run directories as the CLI sees them: the data a run trained on, what its network is (a
//! flow-matching velocity or a score under an SDE), loading it back, and sampling from it.
//!
//! A run directory holds `config.toml` (the CLI settings), `meta.json` + `model.safetensors` +
//! `train_state.safetensors` (the library's checkpoint; `meta.json`'s `objective` is a
//! [`ModelSpec`], its `normalization` a [`Normalizer`]), `train_log.csv`, and for file data the
//! held-out split `heldout.npy`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use scoreflow::checkpoint::{self, RunMeta};
use scoreflow::data::{self, DataSource, Dataset, Normalizer, Points};
use scoreflow::field::convert::{NoiseInput, Prediction};
use scoreflow::field::mlp::{Activation, Mlp, MlpConfig, TimeEmbedding};
use scoreflow::fused::FusedMlp;
use scoreflow::likelihood::{log_likelihood, IsotropicGaussian, Likelihood, LikelihoodOptions};
use scoreflow::objective::dsm::{Dsm, DsmConfig, NoiseLevels, Weighting};
use scoreflow::objective::sm::ScoreMatching;
use scoreflow::objective::Objective;
use scoreflow::sde::BetaSchedule;
use scoreflow::sde::{ReverseDrift, Sde, SdeConfig};
use scoreflow::solve::{
    odeint, Denoise, Method, OdeOptions, Predictor, Sampler, SamplerConfig, SamplerKind, Ula,
};
use scoreflow::tensor::{self, DType, Rng, Tensor};
use scoreflow::VectorField;
use serde::{Deserialize, Serialize};

use crate::cli::SamplerName;
use crate::config::{
    ActivationName, MethodName, NoiseInputName, NormalizeMode, SdeName, TargetName, TimeName,
    TrainSettings, WeightingName,
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
    /// A time-independent score s(x) ≈ ∇log p(x) trained by noise-free score matching
    /// (Hyvärinen "sm" or sliced "ssm"); the network's time input is held at the objective's
    /// constant `time`.
    #[serde(rename = "sm")]
    NoiseFree {
        /// The objective (its `method` tag says sm or ssm).
        objective: ScoreMatching,
    },
}

impl ModelSpec {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            ModelSpec::Cfm { .. } => "cfm",
            ModelSpec::Dsm { .. } => "dsm",
            ModelSpec::NoiseFree {
                objective: ScoreMatching::Hyvarinen(_),
            } => "sm",
            ModelSpec::NoiseFree {
                objective: ScoreMatching::Sliced(_),
            } => "ssm",
        }
    }

    /// The fixed time input of a noise-free score model.
    fn noise_free_time(&self) -> Option<f64> {
        match self {
            ModelSpec::NoiseFree {
                objective: ScoreMatching::Hyvarinen(h),
            } => Some(h.time),
            ModelSpec::NoiseFree {
                objective: ScoreMatching::Sliced(s),
            } => Some(s.time),
            _ => None,
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
        Some(ds) => DataSource::generator(ds),
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
    let standardise = match s.normalize {
        NormalizeMode::Yes => true,
        NormalizeMode::No => false,
        NormalizeMode::Auto => source.dataset().is_none(),
    };
    let norm = if standardise {
        // Generators: fit on 100,000 draws of a fixed stream; files: on the training split.
        let fit_on = match (source.dataset(), source.train()) {
            (Some(ds), _) => {
                let mut r = tensor::rng(0x4e4f_524d); // "NORM"
                ds.sample(100_000, &mut r)
            }
            (None, Some(train)) => train.clone(),
            (None, None) => bail!("data source has neither a generator nor points"),
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
        activation,
        time,
        ..MlpConfig::new(dim, s.width, s.depth)
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
                    noise_input: match s.noise_input {
                        NoiseInputName::Time => NoiseInput::Time,
                        NoiseInputName::Logsigma => NoiseInput::LogSigma,
                    },
                },
            }
        }
        MethodName::Sm | MethodName::Ssm => ModelSpec::NoiseFree {
            objective: ScoreMatching::from_name(s.method.name())?,
        },
    })
}

/// The training objective of a model description.
pub fn objective(spec: &ModelSpec) -> Result<Box<dyn Objective>> {
    Ok(match spec {
        ModelSpec::Cfm { .. } => Box::new(scoreflow::objective::cfm::FlowMatching::new(
            scoreflow::path::GaussianPath::new(scoreflow::path::CondOt),
        )),
        ModelSpec::Dsm { sde, dsm } => Box::new(Dsm::new(sde.build()?, dsm.clone())?),
        ModelSpec::NoiseFree { objective } => Box::new(*objective),
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
        if norm.dim() != meta.model.dim() {
            bail!(
                "{}: normalization is {}-D but the model is {}-D",
                meta_path.display(),
                norm.dim(),
                meta.model.dim()
            );
        }
        let arch = meta
            .model
            .as_mlp()
            .ok_or_else(|| anyhow!("{}: not an MLP run", dir.display()))?;
        let model = Mlp::load_safetensors(
            &dir.join(checkpoint::MODEL_FILE),
            arch,
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
        self.meta.model.dim()
    }

    /// The built-in data set the run trained on, if any.
    pub fn dataset(&self) -> Option<Dataset> {
        builtin(&self.settings.data)
    }

    /// `n` held-out data points (data units): fresh draws of a built-in set from a dedicated
    /// stream, or the run's saved held-out split (all of it when n exceeds it).
    pub fn held_out(&self, n: usize, seed: u64) -> Result<Points> {
        match self.dataset() {
            Some(ds) => Ok(DataSource::generator(ds).held_out(n, seed)?),
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
            ModelSpec::NoiseFree { .. } => SamplerName::Ula,
        }
    }

    /// Samples `plan` (data units) with `spec`; `progress(points done)` after each block.
    /// Every sampler starts from the block's N(0, I) noise (scaled to the prior's std).
    pub fn sample(
        &self,
        plan: &Plan,
        seed: u64,
        spec: &SamplerSpec,
        progress: impl FnMut(usize),
    ) -> Result<SampleOutput> {
        let net = self.fused();
        let dev = tensor::cpu();
        let d = self.dim();
        let s = spec.sampler;
        if spec.trajectories && !(s.is_ode_solver() || s == SamplerName::Ode) {
            bail!(
                "--trajectories needs a deterministic ODE sampler (not {})",
                s.name()
            );
        }
        let mut out = match &self.spec {
            ModelSpec::Cfm { .. } => {
                if !s.is_ode_solver() {
                    bail!("--sampler {} is for score models; this run is a flow-matching model: use euler, midpoint, heun, rk4 or dopri5", s.name());
                }
                let opts = spec.ode_options(ode_method(s), 100)?;
                run_blocks(
                    plan,
                    seed,
                    d,
                    &dev,
                    |x0, _| ode_block(&net, x0, 0.0, 1.0, &opts),
                    progress,
                )?
            }
            ModelSpec::Dsm { sde, dsm } => {
                let sde = sde.build()?;
                let score = dsm.score_field(net, sde.clone());
                let prior = sde.prior_std();
                if s.is_ode_solver() {
                    bail!(
                        "this run is a score model ({} SDE); sample it with --sampler em, pc, ald or ode (--sampler ode --solver {} integrates the probability-flow ODE)",
                        sde.name(),
                        s.name()
                    );
                }
                if s == SamplerName::Ode {
                    // The probability-flow ODE dx/dτ = f − ½g²s from τ = T to ε.
                    let opts = spec.ode_options(spec.solver.parse()?, 100)?;
                    let field = ReverseDrift::probability_flow(sde.clone(), score);
                    let (t0, t1) = (sde.t_max(), sde.sampling_eps());
                    run_blocks(
                        plan,
                        seed,
                        d,
                        &dev,
                        |x0, _| ode_block(&field, x0 * prior, t0, t1, &opts),
                        progress,
                    )?
                } else {
                    let sampler: Box<dyn Sampler> = if s == SamplerName::Ula {
                        Box::new(Ula {
                            step: spec.step.unwrap_or(ULA_STEP),
                            steps: spec.steps.unwrap_or(1000),
                            tau: sde.sampling_eps(),
                        })
                    } else {
                        spec.sde_sampler(s)?.build(sde.clone())?
                    };
                    run_blocks(
                        plan,
                        seed,
                        d,
                        &dev,
                        |x0, rng| sampler_block(sampler.as_ref(), &score, x0 * prior, rng),
                        progress,
                    )?
                }
            }
            ModelSpec::NoiseFree { .. } => {
                if s != SamplerName::Ula {
                    bail!("this run is a noise-free score model ({}); sample it with --sampler ula (Langevin dynamics)", self.spec.method());
                }
                let tau = self.spec.noise_free_time().unwrap_or(0.0);
                let ula = Ula {
                    step: spec.step.unwrap_or(ULA_STEP),
                    steps: spec.steps.unwrap_or(1000),
                    tau,
                };
                run_blocks(
                    plan,
                    seed,
                    d,
                    &dev,
                    |x0, rng| sampler_block(&ula, &net, x0, rng),
                    progress,
                )?
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

    /// The field the network defines, in model (normalised) units and the model's own time:
    /// the velocity (flow matching) or the score (score models).
    pub fn field(&self) -> Result<Box<dyn VectorField>> {
        let net = self.fused();
        Ok(match &self.spec {
            ModelSpec::Cfm { .. } => Box::new(net),
            ModelSpec::Dsm { sde, dsm } => Box::new(dsm.score_field(net, sde.build()?)),
            ModelSpec::NoiseFree { .. } => Box::new(net),
        })
    }

    /// The model's own time for a flow time t ∈ [0, 1] (0 = noise, 1 = data): t itself for
    /// flow matching, τ = T(1 − t) clamped to [ε, T] for SDE models, the fixed time for
    /// noise-free score models.
    pub fn model_time(&self, t: f64) -> Result<f64> {
        Ok(match &self.spec {
            ModelSpec::Cfm { .. } => t,
            ModelSpec::Dsm { sde, .. } => {
                let sde = sde.build()?;
                (sde.t_max() * (1.0 - t)).clamp(sde.sampling_eps(), sde.t_max())
            }
            ModelSpec::NoiseFree { .. } => self.spec.noise_free_time().unwrap_or(0.0),
        })
    }

    /// True when the network's field is a velocity (else a score).
    pub fn is_velocity(&self) -> bool {
        matches!(self.spec, ModelSpec::Cfm { .. })
    }

    /// The learned velocity (flow matching) or score at points `x` (data units) at the model's
    /// time `t`, converted to data units: v_x = σ ⊙ v_z(z) for a velocity, s_x = s_z(z) / σ for
    /// a score, with z = (x − μ)/σ.
    pub fn field_at(&self, x: &[[f64; 2]], t: f64) -> Result<Vec<[f64; 2]>> {
        if self.dim() != 2 {
            bail!(
                "field pictures need 2-D data (this run is {}-D)",
                self.dim()
            );
        }
        let pts = Points::new(x.iter().flatten().copied().collect(), 2)?;
        let z = self.norm.apply(&pts)?.to_tensor(&tensor::cpu(), DType::F32);
        let v = tensor::to_vec(&self.field()?.eval_at(&z, t));
        let (s, velocity) = (&self.norm.std, self.is_velocity());
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

impl Run {
    /// log p(x) of points `x` in data units by the instantaneous change of variables along the
    /// flow ODE (flow matching: t = 1 → 0 to N(0, I)) or the probability-flow ODE (DSM: τ = ε →
    /// T to the SDE's prior). The model works in normalised units z = (x − μ)/σ, so
    /// log p_x(x) = log p_z(z) − Σᵢ log σᵢ.
    pub fn log_likelihood(
        &self,
        x: &Points,
        opts: &LikelihoodOptions,
        rng: &mut Rng,
    ) -> Result<Likelihood> {
        let z = self.norm.apply(x)?.to_tensor(&tensor::cpu(), DType::F32);
        let net = self.fused();
        let mut lik = match &self.spec {
            ModelSpec::Cfm { .. } => log_likelihood(&net, &IsotropicGaussian::standard(), &z, 1.0, 0.0, opts, rng)?,
            ModelSpec::Dsm { sde, dsm } => {
                let sde = sde.build()?;
                let pf = ReverseDrift::probability_flow(sde.clone(), dsm.score_field(net, sde.clone()));
                let prior = |x: &Tensor<2>| sde.prior_log_density(x);
                log_likelihood(&pf, &prior, &z, sde.sampling_eps(), sde.t_max(), opts, rng)?
            }
            ModelSpec::NoiseFree { .. } => bail!(
                "a noise-free score model ({}) defines no flow to integrate, so it has no ODE likelihood; train with --method cfm or dsm",
                self.spec.method()
            ),
        };
        let c: f64 = self.norm.std.iter().map(|s| s.ln()).sum();
        for v in &mut lik.log_prob {
            *v -= c;
        }
        lik.mean_log_prob -= c;
        lik.nll += c;
        Ok(lik)
    }

    /// The network's field in data units (see [`DataUnits`]).
    pub fn field_in_data_units(&self) -> Result<DataUnits<Box<dyn VectorField>>> {
        Ok(DataUnits {
            field: self.field()?,
            mean: self.norm.mean.clone(),
            std: self.norm.std.clone(),
            velocity: self.is_velocity(),
        })
    }
}

/// A field of normalised coordinates z = (x − μ)/σ seen in data coordinates x (chain rule):
/// a velocity transforms as v_x(x) = σ ⊙ v_z(z), with J_x u = σ ⊙ J_z(u/σ); a score (a
/// gradient of log p, whose density also picks up the constant Jacobian 1/Πσ) as
/// s_x(x) = s_z(z)/σ, with J_x u = J_z(u/σ)/σ.
pub struct DataUnits<F> {
    /// The field in normalised units.
    pub field: F,
    /// μ.
    pub mean: Vec<f64>,
    /// σ.
    pub std: Vec<f64>,
    /// True for a velocity, false for a score.
    pub velocity: bool,
}

impl<F: VectorField> DataUnits<F> {
    fn row(&self, v: &[f64], like: &Tensor<2>) -> Tensor<2> {
        tensor::matrix_like(v.to_vec(), 1, v.len(), like)
    }
    fn out_scale(&self, v: Tensor<2>) -> Tensor<2> {
        let s = self.row(&self.std, &v);
        if self.velocity {
            v * s
        } else {
            v / s
        }
    }
}

impl<F: VectorField> VectorField for DataUnits<F> {
    fn dim(&self) -> usize {
        self.field.dim()
    }
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let z = (x.clone() - self.row(&self.mean, x)) / self.row(&self.std, x);
        self.out_scale(self.field.eval(&z, t))
    }
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let s = self.row(&self.std, x);
        let z = (x.clone() - self.row(&self.mean, x)) / s.clone();
        let (v, jv) = self.field.jvp(&z, t, &(u.clone() / s));
        (self.out_scale(v), self.out_scale(jv))
    }
    fn exact_jvp(&self) -> bool {
        self.field.exact_jvp()
    }
}

/// Default ULA step in normalised units: √(2·0.01·1000) ≈ 4.5 standard deviations of
/// diffusion over the default 1000 steps, enough to mix on standardised data, with a
/// stationary-variance bias of ≈ ε/(2σ²) ≈ 0.5% for unit-variance modes.
pub const ULA_STEP: f64 = 0.01;

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
    /// Langevin corrector signal-to-noise ratio (pc).
    pub snr: f64,
    /// Predictor of pc (reverse-diffusion, ancestral, euler-maruyama).
    pub predictor: Predictor,
    /// Langevin corrector steps per predictor step of pc (0 = the predictor alone).
    pub corrector_steps: usize,
    /// Final step of em/pc/ald (None = the sampler's default: the noise-free mean).
    pub denoise: Option<Denoise>,
    /// Langevin step: ε for ula, the ratio ρ (εᵢ = ρσᵢ²) for ald (None = default).
    pub step: Option<f64>,
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
            snr: scoreflow::solve::LangevinCorrector::default().snr,
            predictor: Predictor::default(),
            corrector_steps: 1,
            denoise: None,
            step: None,
            trajectories: false,
        }
    }

    /// ODE options for `method` (fixed steps default to `default_steps`).
    fn ode_options(&self, method: Method, default_steps: usize) -> Result<OdeOptions> {
        Ok(OdeOptions {
            save_trajectory: self.trajectories,
            ..if method.is_adaptive() {
                OdeOptions::dopri5(self.rtol, self.atol)
            } else {
                OdeOptions::fixed(method, self.steps.unwrap_or(default_steps))
            }
        })
    }

    /// The library's configuration of an SDE sampler (em, pc, ald) with our overrides.
    fn sde_sampler(&self, s: SamplerName) -> Result<SamplerConfig> {
        let kind = match s {
            SamplerName::Em => SamplerKind::Em,
            SamplerName::Pc => SamplerKind::Pc,
            SamplerName::Ald => SamplerKind::Ald,
            other => bail!("--sampler {} is not an SDE sampler", other.name()),
        };
        let mut c = SamplerConfig::new(kind);
        if let Some(n) = self.steps {
            c.steps = n;
        }
        if let Some(st) = self.step {
            c.step = st;
        }
        c.snr = self.snr;
        c.predictor = self.predictor;
        c.corrector_steps = self.corrector_steps;
        if self.denoise.is_some() {
            c.denoise = self.denoise;
        }
        Ok(c)
    }

    /// Checks steps, tolerances and step sizes.
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
        if let Some(st) = self.step {
            if !(st > 0.0 && st.is_finite()) {
                bail!("--step must be positive (got {st})");
            }
        }
        self.solver.parse::<Method>()?;
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

/// Runs a stochastic sampler on one block.
fn sampler_block(
    sampler: &dyn Sampler,
    score: &dyn VectorField,
    x0: Tensor<2>,
    rng: &mut Rng,
) -> scoreflow::Result<BlockResult> {
    let out = sampler.sample(score, x0, rng)?;
    Ok(BlockResult {
        x: out.x,
        nfe: out.nfe,
        trajectory: Vec::new(),
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
    use scoreflow::field::FnField;

    /// The data-units view obeys the chain rule: for the linear velocity v_z(z) = A z, the
    /// data-units field is v_x(x) = σ ⊙ A((x − μ)/σ) with Jacobian diag(σ) A diag(1/σ); for a
    /// score s_x = s_z/σ with Jacobian diag(1/σ) A diag(1/σ). Checked entry by entry.
    #[test]
    fn data_units_follow_the_chain_rule() {
        let a = [[-1.0, 2.0], [0.5, -3.0]];
        let (mu, sd) = ([1.0, -2.0], [2.0, 0.5]);
        let lin = FnField::new(2, move |x: &Tensor<2>, _t: &Tensor<1>| {
            let m = tensor::matrix_like(vec![a[0][0], a[1][0], a[0][1], a[1][1]], 2, 2, x);
            x.clone().matmul(m)
        });
        let dev = tensor::cpu();
        let x = tensor::matrix(vec![0.3, 0.7, -1.0, 2.0], 2, 2, &dev, DType::F64);
        let t = tensor::times_like(&x, 0.5);
        for velocity in [true, false] {
            let f = DataUnits {
                field: &lin,
                mean: mu.to_vec(),
                std: sd.to_vec(),
                velocity,
            };
            let (v, jac) = f.jacobian(&x, &t);
            let (v, jac) = (tensor::to_vec(&v), tensor::to_vec(&jac));
            let xs = [[0.3, 0.7], [-1.0, 2.0]];
            for (r, xr) in xs.iter().enumerate() {
                let z = [(xr[0] - mu[0]) / sd[0], (xr[1] - mu[1]) / sd[1]];
                for i in 0..2 {
                    let vz = a[i][0] * z[0] + a[i][1] * z[1];
                    let want = if velocity { sd[i] * vz } else { vz / sd[i] };
                    assert!((v[r * 2 + i] - want).abs() < 1e-12);
                    for j in 0..2 {
                        let want = if velocity {
                            sd[i] * a[i][j] / sd[j]
                        } else {
                            a[i][j] / (sd[i] * sd[j])
                        };
                        assert!((jac[r * 4 + i * 2 + j] - want).abs() < 1e-9, "J[{i}{j}]");
                    }
                }
            }
        }
    }

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
