//! What a trained network computes ([`ModelKind`]): a flow-matching velocity on a probability
//! path, a score under a forward SDE, or a time-independent score — and everything that follows
//! from it: the training objective, the field a sampler follows, the model's own time for a
//! flow time, the prior a likelihood integrates to, the samplers that apply.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::source::FlowSource;
use crate::error::{Error, Result};
use crate::field::convert::NoiseInput;
use crate::field::VectorField;
use crate::objective::cfm::FlowMatching;
use crate::objective::classifier::Classifier;
use crate::objective::dsm::{Dsm, DsmConfig};
use crate::objective::edm::{Edm, EdmConfig};
use crate::objective::sm::ScoreMatching;
use crate::objective::Objective;
use crate::path::{GaussianPath, PathKind, PerturbationKernel};
use crate::sde::{EdmSde, Sde, SdeConfig};

#[cfg(doc)]
use crate::objective::edm::Preconditioned;

/// The training methods by name (`--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum TrainMethod {
    /// Conditional flow matching on a probability path (--path); samples with ODE solvers.
    #[default]
    #[cfg_attr(feature = "clap", value(alias = "velocity"))]
    Cfm,
    /// Denoising score matching under an SDE (--sde); samples with em/pc/ald/ode.
    #[cfg_attr(feature = "clap", value(alias = "score"))]
    Dsm,
    /// Hyvärinen (exact) score matching on the clean data.
    Sm,
    /// Sliced score matching on the clean data.
    Ssm,
    /// EDM (Karras et al. 2022): the preconditioned denoiser, log-normal σ, EDM's loss weight;
    /// samples with edm-heun and every score sampler under EDM's SDE (σ 0.002 → 80).
    Edm,
    /// A time-dependent classifier p(y | x_t, t) (K logits, cross-entropy on noised labelled
    /// data) under the SDE (--sde) or path (--path) of the models it guides (--process); used
    /// by `scoreflow sample MODEL --class K --classifier RUN`.
    Classifier,
}

/// Which noising process a classifier is trained under (`--process`): the forward SDE of score
/// models (`--sde`) or the probability path of flows (`--path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ProcessKind {
    /// The forward SDE of --sde (diffusion time τ), as dsm models.
    #[default]
    Sde,
    /// The probability path of --path from N(0, I) (flow time t), as cfm models.
    Path,
}

/// The noising process x_t = m(t)·x + s(t)·z of a model's time axis: a flow's probability path
/// (flow time, x_t = α(t)·x₁ + σ(t)·x₀) or a forward SDE's marginal (diffusion time τ).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Process {
    /// A probability path from N(0, I), flow time t ∈ [0, 1].
    Path(PathKind),
    /// A forward SDE, diffusion time τ ∈ [ε, T].
    Sde(SdeConfig),
}

impl Process {
    /// The kernel (m(t), s(t)) on the process's own time axis.
    pub fn kernel(&self) -> Result<Arc<dyn PerturbationKernel + Send + Sync>> {
        Ok(match self {
            Process::Path(p) => Arc::new(GaussianPath::new(*p)),
            Process::Sde(c) => c.build()?,
        })
    }

    /// The times a classifier trains on: an SDE's [sampling ε, T], a path's [0, 1].
    pub fn t_range(&self) -> Result<(f64, f64)> {
        Ok(match self {
            Process::Path(_) => (0.0, 1.0),
            Process::Sde(c) => {
                let sde = c.build()?;
                (sde.sampling_eps(), sde.t_max())
            }
        })
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Process::Path(p) => write!(f, "the {} path", p.name()),
            Process::Sde(c) => write!(f, "the {}", sde_description(c)),
        }
    }
}

impl TrainMethod {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            TrainMethod::Cfm => "cfm",
            TrainMethod::Dsm => "dsm",
            TrainMethod::Sm => "sm",
            TrainMethod::Ssm => "ssm",
            TrainMethod::Edm => "edm",
            TrainMethod::Classifier => "classifier",
        }
    }

    /// True for objectives that are weighted regressions (the fused engine trains them).
    pub fn is_regression(self) -> bool {
        matches!(self, TrainMethod::Cfm | TrainMethod::Dsm | TrainMethod::Edm)
    }
}

/// What the network of a run computes; stored as `meta.json`'s `objective` (tag `method`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum ModelKind {
    /// A flow-matching velocity v(x, t) on `path`, t = 0 the source (N(0, I) unless `source`
    /// says otherwise), t = 1 data.
    Cfm {
        /// The probability path x_t = α(t)·x₁ + σ(t)·x₀.
        #[serde(default)]
        path: PathKind,
        /// The source p₀ (absent = N(0, I): every run written before sources existed).
        #[serde(default, skip_serializing_if = "FlowSource::is_gaussian")]
        source: FlowSource,
    },
    /// A score network under an SDE, taking diffusion time τ (τ = 0 data) through its noise
    /// input.
    Dsm {
        /// The forward SDE.
        sde: SdeConfig,
        /// Target, weighting, noise levels, noise input.
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
    /// An EDM network F (Karras et al. 2022): the denoiser D(x; σ) = c_skip x + c_out F(c_in x,
    /// ¼ ln σ) ([`Preconditioned`]), under EDM's SDE x_σ = y + σn (time τ = σ), whose score is
    /// s = (D − x)/σ².
    Edm {
        /// The forward SDE: always [`SdeConfig::Edm`].
        sde: SdeConfig,
        /// σ_d, P_mean, P_std.
        edm: EdmConfig,
    },
    /// A time-dependent classifier p(y | x_t, t): an MLP with K logits f(x_t, c(t)) trained by
    /// cross-entropy on data noised by `process` ([`Classifier`]); not a generative model — it
    /// guides one on the same process ([`crate::model::Model::guided_field`]).
    Classifier {
        /// The noising process of its inputs (and its time axis).
        process: Process,
        /// The network's time input c(t).
        noise_input: NoiseInput,
    },
}

impl ModelKind {
    /// The training method.
    pub fn method(&self) -> TrainMethod {
        match self {
            ModelKind::Cfm { .. } => TrainMethod::Cfm,
            ModelKind::Dsm { .. } => TrainMethod::Dsm,
            ModelKind::Edm { .. } => TrainMethod::Edm,
            ModelKind::NoiseFree {
                objective: ScoreMatching::Hyvarinen(_),
            } => TrainMethod::Sm,
            ModelKind::NoiseFree {
                objective: ScoreMatching::Sliced(_),
            } => TrainMethod::Ssm,
            ModelKind::Classifier { .. } => TrainMethod::Classifier,
        }
    }

    /// The noising process of the model's time axis (`None` for a noise-free score model).
    pub fn process(&self) -> Option<Process> {
        match self {
            ModelKind::Cfm { path, .. } => Some(Process::Path(*path)),
            ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } => {
                Some(Process::Sde(sde.clone()))
            }
            ModelKind::NoiseFree { .. } => None,
            ModelKind::Classifier { process, .. } => Some(process.clone()),
        }
    }

    /// True for a classifier run (which guides models but generates nothing itself).
    pub fn is_classifier(&self) -> bool {
        matches!(self, ModelKind::Classifier { .. })
    }

    /// The error of using a classifier run as a generative model.
    pub fn not_generative(&self) -> Error {
        Error::InvalidInput(format!(
            "this run is a {self}, not a generative model: it guides one (`scoreflow sample MODEL --class K --classifier RUN --classifier-scale S`); `scoreflow eval RUN` reports its accuracy"
        ))
    }

    /// The training objective.
    pub fn objective(&self) -> Result<Box<dyn Objective>> {
        Ok(match self {
            ModelKind::Cfm { path, .. } => Box::new(FlowMatching::new(GaussianPath::new(*path))),
            ModelKind::Dsm { sde, dsm } => Box::new(Dsm::new(sde.build()?, dsm.clone())?),
            ModelKind::NoiseFree { objective } => Box::new(*objective),
            ModelKind::Edm { edm, .. } => Box::new(Edm::new(*edm)?),
            ModelKind::Classifier {
                process,
                noise_input,
            } => match process {
                Process::Path(p) => Box::new(Classifier::new(
                    GaussianPath::new(*p),
                    process.t_range()?,
                    *noise_input,
                )?),
                Process::Sde(c) => Box::new(Classifier::new(
                    c.build()?,
                    process.t_range()?,
                    *noise_input,
                )?),
            },
        })
    }

    /// The source of a flow (N(0, I) for every other kind, whose samplers start from noise).
    pub fn flow_source(&self) -> FlowSource {
        match self {
            ModelKind::Cfm { source, .. } => source.clone(),
            _ => FlowSource::Gaussian,
        }
    }

    /// The training objective of a class-conditional network: [`ModelKind::objective`] with
    /// label dropout p (each label replaced by the null label with probability p, for
    /// classifier-free guidance); cfm and dsm only.
    pub fn conditional_objective(&self, label_dropout: f64) -> Result<Box<dyn Objective>> {
        Ok(match self {
            ModelKind::Cfm { path, .. } => Box::new(
                FlowMatching::new(GaussianPath::new(*path)).with_label_dropout(label_dropout)?,
            ),
            ModelKind::Dsm { sde, dsm } => {
                Box::new(Dsm::new(sde.build()?, dsm.clone())?.with_label_dropout(label_dropout)?)
            }
            _ => {
                return Err(Error::InvalidInput(format!(
                    "--conditional trains cfm and dsm models, not {}",
                    self.method().name()
                )))
            }
        })
    }

    /// The forward SDE of a score model (DSM, EDM).
    pub fn sde(&self) -> Result<Option<Arc<dyn Sde>>> {
        match self {
            ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } => Ok(Some(sde.build()?)),
            _ => Ok(None),
        }
    }

    /// The fixed time input of a noise-free score model.
    pub fn noise_free_time(&self) -> Option<f64> {
        match self {
            ModelKind::NoiseFree {
                objective: ScoreMatching::Hyvarinen(h),
            } => Some(h.time),
            ModelKind::NoiseFree {
                objective: ScoreMatching::Sliced(s),
            } => Some(s.time),
            _ => None,
        }
    }

    /// True when the network's field is a velocity (flow matching), false for a score.
    pub fn is_velocity(&self) -> bool {
        matches!(self, ModelKind::Cfm { .. })
    }

    /// The model's own time for a flow time t ∈ [0, 1] (0 = noise, 1 = data): t itself for
    /// flow matching, τ = T(1 − t) clamped to [ε, T] for SDE models, the fixed time for
    /// noise-free score models.
    pub fn model_time(&self, t: f64) -> Result<f64> {
        Ok(match self {
            ModelKind::Cfm { .. } => t,
            ModelKind::Dsm { sde, .. } | ModelKind::Edm { sde, .. } => {
                let sde = sde.build()?;
                (sde.t_max() * (1.0 - t)).clamp(sde.sampling_eps(), sde.t_max())
            }
            ModelKind::NoiseFree { .. } => self.noise_free_time().unwrap_or(0.0),
            ModelKind::Classifier { process, .. } => match process {
                Process::Path(_) => t,
                Process::Sde(c) => {
                    let sde = c.build()?;
                    (sde.t_max() * (1.0 - t)).clamp(sde.sampling_eps(), sde.t_max())
                }
            },
        })
    }

    /// The field a sampler follows, from the network's field `net` (model units, model time):
    /// the velocity itself (flow matching, noise-free score models), the score of a DSM
    /// network s = a(τ)·x + c(τ)·net(x, c_noise(τ)) (its target and noise input), or the score
    /// s = (D − x)/σ² of an EDM network's preconditioned denoiser D.
    /// A classifier run has no field: an error.
    pub fn field<'a>(&self, net: Box<dyn VectorField + 'a>) -> Result<Box<dyn VectorField + 'a>> {
        Ok(match self {
            ModelKind::Classifier { .. } => return Err(self.not_generative()),
            ModelKind::Dsm { sde, dsm } => Box::new(dsm.score_field(net, sde.build()?)),
            ModelKind::Edm { sde, edm } => {
                Box::new(Edm::new(*edm)?.score_field(net, edm_sde(sde)?))
            }
            _ => net,
        })
    }

    /// Errors unless the kind's parameters are valid (the SDE builds, the DSM config is
    /// consistent with it).
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelKind::Dsm { sde, dsm } => Dsm::new(sde.build()?, dsm.clone()).map(|_| ()),
            ModelKind::Edm { sde, edm } => {
                edm_sde(sde)?;
                edm.validate()
            }
            ModelKind::Classifier { process, .. } => {
                if let Process::Sde(SdeConfig::Edm { .. }) = process {
                    return Err(Error::InvalidInput(
                        "a classifier trains under --sde vp, vp-cosine, subvp or ve (or --process path); it guides EDM models through the matching noise level".into(),
                    ));
                }
                process.t_range().map(|_| ())
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelKind::Cfm { path, source } if !source.is_gaussian() => write!(
                f,
                "flow matching ({} → data, {} path)",
                source.name(),
                path.name()
            ),
            ModelKind::Cfm { path, .. } => write!(f, "flow matching ({} path)", path.name()),
            ModelKind::Dsm { sde, .. } => write!(f, "score model ({} SDE)", sde_name(sde)),
            ModelKind::NoiseFree { .. } => {
                write!(f, "noise-free score model ({})", self.method().name())
            }
            ModelKind::Edm { edm, .. } => write!(
                f,
                "EDM score model (preconditioned, σ_data = {:.4})",
                edm.sigma_data
            ),
            ModelKind::Classifier { process, .. } => {
                write!(f, "time-dependent classifier p(y | x_t, t) on {process}")
            }
        }
    }
}

/// An SDE configuration with its parameters, for messages ("VP SDE (β 0.1 → 20)").
pub fn sde_description(sde: &SdeConfig) -> String {
    match sde {
        SdeConfig::Vp {
            schedule: crate::sde::BetaSchedule::Linear { beta_min, beta_max },
            ..
        } => format!("vp SDE (β {beta_min} → {beta_max})"),
        SdeConfig::SubVp {
            schedule: crate::sde::BetaSchedule::Linear { beta_min, beta_max },
            ..
        } => format!("subvp SDE (β {beta_min} → {beta_max})"),
        SdeConfig::Ve {
            sigma_min,
            sigma_max,
            ..
        } => format!("ve SDE (σ {sigma_min} → {sigma_max:.4})"),
        SdeConfig::Edm {
            sigma_min,
            sigma_max,
        } => format!("edm SDE (σ {sigma_min} → {sigma_max})"),
        other => format!("{} SDE", sde_name(other)),
    }
}

/// The name of an SDE configuration.
fn sde_name(sde: &SdeConfig) -> String {
    sde.build()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|e: Error| format!("invalid: {e}"))
}

/// The EDM SDE of an EDM model's configuration; any other SDE is an error.
fn edm_sde(sde: &SdeConfig) -> Result<EdmSde> {
    match sde {
        SdeConfig::Edm {
            sigma_min,
            sigma_max,
        } => EdmSde::new(*sigma_min, *sigma_max),
        other => Err(Error::InvalidInput(format!(
            "an EDM model lives on EDM's SDE (x_σ = y + σn), not on {}",
            sde_name(other)
        ))),
    }
}
