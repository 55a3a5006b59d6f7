//! Samplers chosen by name ([`SamplerName`]) with their options ([`SamplerSpec`]): the one
//! place where a sampler's defaults live and where options that do not apply to it are refused
//! rather than silently ignored (a `--steps` given to the adaptive `dopri5`, tolerances given to
//! a fixed-step method, a corrector snr given to a sampler without a corrector, …).
//!
//! A spec is built into a runnable sampler for a forward SDE ([`SamplerSpec::build`]) or into
//! [`OdeOptions`] for an ODE solver that follows a field directly ([`SamplerSpec::ode_options`]).
//! Which samplers apply to which model is the model's business (the `model` module).

use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::diffusion::{Churn, DiffusionSamplerConfig, DiffusionSamplerKind};
use super::langevin::{AnnealedLangevin, LangevinCorrector, Ula};
use super::ode::{Method, OdeOptions};
use super::sampler::{check_t_end, Denoise, Sampler};
use super::sde::{Predictor, PredictorCorrector, ProbabilityFlowSampler};
use crate::error::{Error, Result};
use crate::schedule::{FinalStep, Spacing};
use crate::sde::Sde;

/// Every sampler, by the name `--sampler` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SamplerName {
    /// ODE, forward Euler (fixed steps).
    Euler,
    /// ODE, explicit midpoint (fixed steps).
    Midpoint,
    /// ODE, Heun (fixed steps).
    Heun,
    /// ODE, classic Runge–Kutta 4 (fixed steps).
    Rk4,
    /// ODE, adaptive Dormand–Prince 5(4) (--rtol/--atol).
    Dopri5,
    /// Score models: reverse-time SDE, Euler–Maruyama.
    Em,
    /// Score models: predictor–corrector (reverse diffusion + Langevin corrector).
    Pc,
    /// Score models: annealed Langevin dynamics over a noise ladder.
    Ald,
    /// Score models: probability-flow ODE with --solver.
    Ode,
    /// Score models and flows: unadjusted Langevin dynamics at one noise level.
    Ula,
    /// Score models and flows: DDIM (Song et al. 2021), η = --eta (0: deterministic, order 1).
    Ddim,
    /// Score models and flows: multistep DPM-Solver, noise prediction, order --order 1–3 (Lu et al. 2022a).
    #[serde(rename = "dpm-solver")]
    #[cfg_attr(feature = "clap", value(name = "dpm-solver", alias = "dpm_solver"))]
    DpmSolver,
    /// Score models and flows: multistep DPM-Solver++(2M), data prediction (Lu et al. 2022b; k-diffusion's dpmpp_2m).
    #[serde(rename = "dpmpp-2m")]
    #[cfg_attr(feature = "clap", value(name = "dpmpp-2m", alias = "dpmpp_2m"))]
    Dpmpp2m,
    /// Score models and flows: multistep DPM-Solver++(3M).
    #[serde(rename = "dpmpp-3m")]
    #[cfg_attr(feature = "clap", value(name = "dpmpp-3m", alias = "dpmpp_3m"))]
    Dpmpp3m,
    /// Score models and flows: singlestep DPM-Solver++(2S), ancestral with --eta > 0.
    #[serde(rename = "dpmpp-2s")]
    #[cfg_attr(feature = "clap", value(name = "dpmpp-2s", alias = "dpmpp_2s"))]
    Dpmpp2s,
    /// Score models and flows: UniPC predictor–corrector (Zhao et al. 2023), bh2, order --order + 1.
    Unipc,
    /// Score models and flows: Euler on the Karras σ grid (Karras et al. 2022), --churn.
    #[serde(rename = "edm-euler")]
    #[cfg_attr(feature = "clap", value(name = "edm-euler", alias = "edm_euler"))]
    EdmEuler,
    /// Score models and flows: Heun on the Karras σ grid (Karras et al. 2022, Alg. 2), --churn.
    #[serde(rename = "edm-heun")]
    #[cfg_attr(feature = "clap", value(name = "edm-heun", alias = "edm_heun"))]
    EdmHeun,
}

impl SamplerName {
    /// Every sampler.
    pub const ALL: [SamplerName; 18] = [
        SamplerName::Euler,
        SamplerName::Midpoint,
        SamplerName::Heun,
        SamplerName::Rk4,
        SamplerName::Dopri5,
        SamplerName::Em,
        SamplerName::Pc,
        SamplerName::Ald,
        SamplerName::Ode,
        SamplerName::Ula,
        SamplerName::Ddim,
        SamplerName::DpmSolver,
        SamplerName::Dpmpp2m,
        SamplerName::Dpmpp3m,
        SamplerName::Dpmpp2s,
        SamplerName::Unipc,
        SamplerName::EdmEuler,
        SamplerName::EdmHeun,
    ];

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            SamplerName::Euler => "euler",
            SamplerName::Midpoint => "midpoint",
            SamplerName::Heun => "heun",
            SamplerName::Rk4 => "rk4",
            SamplerName::Dopri5 => "dopri5",
            SamplerName::Em => "em",
            SamplerName::Pc => "pc",
            SamplerName::Ald => "ald",
            SamplerName::Ode => "ode",
            SamplerName::Ula => "ula",
            SamplerName::Ddim => "ddim",
            SamplerName::DpmSolver => "dpm-solver",
            SamplerName::Dpmpp2m => "dpmpp-2m",
            SamplerName::Dpmpp3m => "dpmpp-3m",
            SamplerName::Dpmpp2s => "dpmpp-2s",
            SamplerName::Unipc => "unipc",
            SamplerName::EdmEuler => "edm-euler",
            SamplerName::EdmHeun => "edm-heun",
        }
    }

    /// The few-step diffusion sampler of this name ([`crate::solve::diffusion`]), if it is one.
    pub fn diffusion_kind(self) -> Option<DiffusionSamplerKind> {
        use DiffusionSamplerKind as K;
        Some(match self {
            SamplerName::Ddim => K::Ddim,
            SamplerName::DpmSolver => K::DpmSolver,
            SamplerName::Dpmpp2m => K::Dpmpp2m,
            SamplerName::Dpmpp3m => K::Dpmpp3m,
            SamplerName::Dpmpp2s => K::Dpmpp2s,
            SamplerName::Unipc => K::UniPc,
            SamplerName::EdmEuler => K::EdmEuler,
            SamplerName::EdmHeun => K::EdmHeun,
            _ => return None,
        })
    }

    /// True for the few-step diffusion samplers (ddim … edm-heun).
    pub fn is_few_step(self) -> bool {
        self.diffusion_kind().is_some()
    }

    /// The ODE method of the solvers that follow a field directly (euler … dopri5).
    pub fn ode_method(self) -> Option<Method> {
        match self {
            SamplerName::Euler => Some(Method::Euler),
            SamplerName::Midpoint => Some(Method::Midpoint),
            SamplerName::Heun => Some(Method::Heun),
            SamplerName::Rk4 => Some(Method::Rk4),
            SamplerName::Dopri5 => Some(Method::Dopri5),
            _ => None,
        }
    }

    /// True for the ODE solvers that follow a field directly.
    pub fn is_ode_solver(self) -> bool {
        self.ode_method().is_some()
    }

    /// True for samplers that always draw fresh noise (the rest are deterministic maps of the
    /// start; ddim / dpmpp-2s with η > 0 and edm-euler / edm-heun with churn draw noise too).
    pub fn is_stochastic(self) -> bool {
        matches!(
            self,
            SamplerName::Em | SamplerName::Pc | SamplerName::Ald | SamplerName::Ula
        )
    }

    /// True for the samplers of a score under a forward SDE (em, pc, ald, ode, ula and the
    /// few-step samplers).
    pub fn is_sde_sampler(self) -> bool {
        !self.is_ode_solver()
    }
}

impl std::fmt::Display for SamplerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SamplerName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase().replace('_', "-");
        SamplerName::ALL
            .into_iter()
            .find(|k| k.name() == lower)
            .ok_or_else(|| {
                let names: Vec<_> = SamplerName::ALL.iter().map(|k| k.name()).collect();
                Error::InvalidInput(format!(
                    "unknown sampler '{s}' (choose one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// Default steps of the fixed-step ODE solvers.
pub const ODE_STEPS: usize = 100;
/// Default steps of em, pc and ula.
pub const SDE_STEPS: usize = 1000;
/// Default steps per noise level of ald.
pub const ALD_STEPS: usize = 100;
/// Default noise levels of ald.
pub const ALD_LEVELS: usize = 20;
/// Default step ratio ρ of ald (step at level i = ρ·σᵢ²).
pub const ALD_STEP_RATIO: f64 = 0.05;
/// Default ULA step in normalised units: √(2·0.01·1000) ≈ 4.5 standard deviations of
/// diffusion over the default 1000 steps, enough to mix on standardised data, with a
/// stationary-variance bias of ≈ ε/(2σ²) ≈ 0.5 % for unit-variance modes.
pub const ULA_STEP: f64 = 0.01;
/// Default steps of the few-step samplers (ddim … edm-heun): 20, the middle of the 10–25 NFE
/// diffusers and k-diffusion users run (edm-heun spends 2N − 1 = 39 evaluations).
pub const FEW_STEPS: usize = 20;
/// Default dopri5 tolerances (rtol = atol), as `reference_fm.py` / `reference_dsm.py`.
pub const TOLERANCE: f64 = 1e-5;

/// [`OdeOptions`] for `method`: fixed `steps` (default [`ODE_STEPS`]) for a fixed-step method,
/// tolerances (default [`TOLERANCE`]) for dopri5. Options that do not apply are refused with the
/// flag named — steps for the adaptive method (it chooses its own), tolerances for a fixed-step
/// one — rather than silently ignored.
pub fn ode_options(
    method: Method,
    steps: Option<usize>,
    rtol: Option<f64>,
    atol: Option<f64>,
) -> Result<OdeOptions> {
    let name = method.name();
    if method.is_adaptive() {
        if steps.is_some() {
            return Err(refuse(format!(
                "--steps does not apply to {name}: it chooses its own steps; set its accuracy with --rtol/--atol"
            )));
        }
        let (r, a) = (rtol.unwrap_or(TOLERANCE), atol.unwrap_or(TOLERANCE));
        if !(r > 0.0 && r.is_finite()) {
            return Err(refuse(format!("--rtol must be > 0 (got {r})")));
        }
        if !(a >= 0.0 && a.is_finite()) {
            return Err(refuse(format!("--atol must be >= 0 (got {a})")));
        }
        Ok(OdeOptions::dopri5(r, a))
    } else {
        if rtol.is_some() || atol.is_some() {
            return Err(refuse(format!(
                "--rtol/--atol apply to the adaptive dopri5 only; {name} takes fixed --steps"
            )));
        }
        match steps {
            Some(0) => Err(refuse("--steps must be at least 1".into())),
            s => Ok(OdeOptions::fixed(method, s.unwrap_or(ODE_STEPS))),
        }
    }
}

/// A sampler and the options given for it; `None` means the sampler's default (the constants
/// above, [`LangevinCorrector::default`], [`Predictor::default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerSpec {
    /// The sampler.
    pub sampler: SamplerName,
    /// Steps of a fixed-step sampler (steps per level for ald).
    #[serde(default)]
    pub steps: Option<usize>,
    /// ODE method of `ode` (the probability-flow ODE); default dopri5.
    #[serde(default)]
    pub solver: Option<Method>,
    /// Relative tolerance of an adaptive solver.
    #[serde(default)]
    pub rtol: Option<f64>,
    /// Absolute tolerance of an adaptive solver.
    #[serde(default)]
    pub atol: Option<f64>,
    /// pc: Langevin corrector signal-to-noise ratio.
    #[serde(default)]
    pub snr: Option<f64>,
    /// pc: the predictor.
    #[serde(default)]
    pub predictor: Option<Predictor>,
    /// pc: corrector steps per predictor step (0 = the predictor alone).
    #[serde(default)]
    pub corrector_steps: Option<usize>,
    /// em / pc / ald / ode: the final step (default: the noise-free mean for stochastic
    /// samplers, none for the ODE).
    #[serde(default)]
    pub denoise: Option<Denoise>,
    /// ula: the step ε; ald: the ratio ρ.
    #[serde(default)]
    pub step: Option<f64>,
    /// ald: number of noise levels.
    #[serde(default)]
    pub levels: Option<usize>,
    /// SDE samplers: end time ε (default the SDE's sampling ε); few-step samplers of a flow:
    /// the flow time the grid ends at (default where λ = 5).
    #[serde(default)]
    pub t_end: Option<f64>,
    /// Keep intermediate states (deterministic samplers only).
    #[serde(default)]
    pub trajectories: bool,
    /// Few-step samplers: time-step spacing (default [`DiffusionSamplerKind::default_spacing`]).
    #[serde(default)]
    pub spacing: Option<Spacing>,
    /// Few-step samplers: where the last step lands (default [`FinalStep::Zero`]: σ = 0).
    #[serde(default)]
    pub final_step: Option<FinalStep>,
    /// dpm-solver, unipc: the order 1–3 (default 2).
    #[serde(default)]
    pub order: Option<usize>,
    /// ddim, dpmpp-2s: the stochasticity η ≥ 0 (default 0).
    #[serde(default)]
    pub eta: Option<f64>,
    /// edm-euler, edm-heun: S_churn ≥ 0 (default 0, deterministic).
    #[serde(default)]
    pub churn: Option<f64>,
}

fn refuse(msg: String) -> Error {
    Error::InvalidInput(msg)
}

impl SamplerSpec {
    /// `sampler` with every option at its default.
    pub fn new(sampler: SamplerName) -> Self {
        Self {
            sampler,
            steps: None,
            solver: None,
            rtol: None,
            atol: None,
            snr: None,
            predictor: None,
            corrector_steps: None,
            denoise: None,
            step: None,
            levels: None,
            t_end: None,
            trajectories: false,
            spacing: None,
            final_step: None,
            order: None,
            eta: None,
            churn: None,
        }
    }

    /// The ODE method this spec integrates with, if it is an ODE (a direct solver, or `ode`
    /// with its solver).
    pub fn ode_method(&self) -> Option<Method> {
        match self.sampler {
            SamplerName::Ode => Some(self.solver.unwrap_or(Method::Dopri5)),
            s => s.ode_method(),
        }
    }

    /// Checks values and refuses options that do not apply to the sampler, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let s = self.sampler;
        let name = s.name();
        if self.steps == Some(0) {
            return Err(refuse("--steps must be at least 1".into()));
        }
        if self.solver.is_some() && s != SamplerName::Ode {
            return Err(refuse(format!(
                "--solver chooses the ODE method of --sampler ode; --sampler {name} does not take it{}",
                if s.is_ode_solver() { " (it is an ODE method itself)" } else { "" }
            )));
        }
        match self.ode_method() {
            Some(m) => {
                ode_options(m, self.steps, self.rtol, self.atol)?;
            }
            None if self.rtol.is_some() || self.atol.is_some() => {
                return Err(refuse(format!(
                    "--rtol/--atol apply to the adaptive dopri5 only; --sampler {name} takes fixed --steps"
                )));
            }
            None => {}
        }
        if s != SamplerName::Pc
            && (self.snr.is_some() || self.predictor.is_some() || self.corrector_steps.is_some())
        {
            return Err(refuse(format!(
                "--snr, --predictor and --corrector-steps are options of --sampler pc, not {name}"
            )));
        }
        if let Some(snr) = self.snr {
            if !(snr > 0.0 && snr.is_finite()) {
                return Err(refuse(format!("--snr must be positive (got {snr})")));
            }
        }
        if self.denoise.is_some()
            && !matches!(
                s,
                SamplerName::Em | SamplerName::Pc | SamplerName::Ald | SamplerName::Ode
            )
        {
            return Err(refuse(format!(
                "--denoise is the final step of em, pc, ald and ode, not of {name}"
            )));
        }
        if self.step.is_some() && !matches!(s, SamplerName::Ula | SamplerName::Ald) {
            return Err(refuse(format!(
                "--step is the Langevin step of ula and ald, not of {name}"
            )));
        }
        if let Some(st) = self.step {
            if !(st > 0.0 && st.is_finite()) {
                return Err(refuse(format!("--step must be positive (got {st})")));
            }
        }
        if self.levels.is_some() && s != SamplerName::Ald {
            return Err(refuse(format!(
                "the number of noise levels is an option of ald, not of {name}"
            )));
        }
        if self.trajectories && s.is_stochastic() {
            return Err(refuse(format!(
                "--trajectories needs a deterministic ODE sampler (not {name})"
            )));
        }
        self.validate_few_step()
    }

    /// The few-step samplers' options: each refused where it does not apply, values checked.
    fn validate_few_step(&self) -> Result<()> {
        let s = self.sampler;
        let name = s.name();
        let kind = s.diffusion_kind();
        if kind.is_none() && (self.spacing.is_some() || self.final_step.is_some()) {
            return Err(refuse(format!(
                "--spacing and --final-step are options of the few-step samplers (ddim, dpm-solver, dpmpp-2m, dpmpp-3m, dpmpp-2s, unipc, edm-euler, edm-heun), not of {name}"
            )));
        }
        if self.order.is_some() && !matches!(s, SamplerName::DpmSolver | SamplerName::Unipc) {
            return Err(refuse(format!(
                "--order is an option of dpm-solver and unipc, not of {name}{}",
                match s {
                    SamplerName::Dpmpp2m | SamplerName::Dpmpp3m =>
                        " (its order is in its name; dpmpp-2m is 2, dpmpp-3m 3)",
                    _ => "",
                }
            )));
        }
        if let Some(k) = self.order {
            if !(1..=3).contains(&k) {
                return Err(refuse(format!("--order must be 1, 2 or 3 (got {k})")));
            }
        }
        if self.eta.is_some() && !matches!(s, SamplerName::Ddim | SamplerName::Dpmpp2s) {
            return Err(refuse(format!(
                "--eta is the stochasticity of ddim and dpmpp-2s, not of {name}"
            )));
        }
        if let Some(e) = self.eta {
            if !(e >= 0.0 && e.is_finite()) {
                return Err(refuse(format!("--eta must be >= 0 (got {e})")));
            }
        }
        if self.churn.is_some() && !matches!(s, SamplerName::EdmEuler | SamplerName::EdmHeun) {
            return Err(refuse(format!(
                "--churn is the stochasticity of edm-euler and edm-heun, not of {name}"
            )));
        }
        if let Some(c) = self.churn {
            if !(c >= 0.0 && c.is_finite()) {
                return Err(refuse(format!("--churn must be >= 0 (got {c})")));
            }
        }
        if kind.is_some() && self.trajectories {
            return Err(refuse(format!(
                "--trajectories records ODE solvers and --sampler ode; {name} keeps no intermediate states"
            )));
        }
        Ok(())
    }

    /// The few-step sampler's configuration ([`DiffusionSamplerConfig`]) with the spec's options
    /// over its defaults ([`FEW_STEPS`] steps, [`DiffusionSamplerConfig::new`]); `None` for the
    /// other samplers.
    pub fn diffusion_config(&self) -> Option<DiffusionSamplerConfig> {
        let kind = self.sampler.diffusion_kind()?;
        let base = DiffusionSamplerConfig::new(kind, self.steps.unwrap_or(FEW_STEPS));
        Some(DiffusionSamplerConfig {
            spacing: self.spacing,
            final_step: self.final_step.unwrap_or(base.final_step),
            t_end: self.t_end,
            eta: self.eta.unwrap_or(base.eta),
            order: self.order,
            churn: Churn {
                s_churn: self.churn.unwrap_or(base.churn.s_churn),
                ..base.churn
            },
            ..base
        })
    }

    /// [`OdeOptions`] of an ODE spec ([`ode_options`] with the spec's steps and tolerances, and
    /// the trajectory kept when asked); `None` for a stochastic sampler or invalid options.
    pub fn ode_options(&self) -> Option<OdeOptions> {
        let opts = ode_options(self.ode_method()?, self.steps, self.rtol, self.atol).ok()?;
        Some(OdeOptions {
            save_trajectory: self.trajectories,
            ..opts
        })
    }

    /// The spec as a sampler of the score of `sde`: em, pc, ald, ode (the probability-flow ODE),
    /// ula (at the SDE's sampling ε, step in the units of the data the score is of) or a
    /// few-step sampler on the SDE's noise schedule ([`SamplerSpec::diffusion_config`]).
    /// Validates first; an ODE solver name is an error here (it follows a field directly).
    pub fn build(&self, sde: Arc<dyn Sde>) -> Result<Box<dyn Sampler>> {
        self.validate()?;
        let t_end = self.t_end.unwrap_or_else(|| sde.sampling_eps());
        check_t_end(&*sde, t_end)?;
        let stochastic_denoise = self.denoise.unwrap_or(Denoise::Mean);
        Ok(match self.sampler {
            SamplerName::Em | SamplerName::Pc => {
                let steps = self.steps.unwrap_or(SDE_STEPS);
                let mut pc = PredictorCorrector::new(
                    sde,
                    if self.sampler == SamplerName::Em {
                        Predictor::EulerMaruyama
                    } else {
                        self.predictor.unwrap_or_default()
                    },
                    steps,
                );
                if self.sampler == SamplerName::Pc {
                    let default = LangevinCorrector::default();
                    let c = LangevinCorrector {
                        snr: self.snr.unwrap_or(default.snr),
                        steps: self.corrector_steps.unwrap_or(default.steps),
                    };
                    if c.steps > 0 {
                        c.validate()?;
                        pc.corrector = Some(c);
                    }
                }
                pc.t_end = t_end;
                pc.denoise = stochastic_denoise;
                Box::new(pc)
            }
            SamplerName::Ald => {
                let mut ald = AnnealedLangevin::new(
                    sde,
                    self.levels.unwrap_or(ALD_LEVELS),
                    self.steps.unwrap_or(ALD_STEPS),
                    self.step.unwrap_or(ALD_STEP_RATIO),
                )?;
                ald.t_end = t_end;
                ald.denoise = stochastic_denoise;
                Box::new(ald)
            }
            SamplerName::Ode => {
                let options = self.ode_options().expect("ode is an ODE spec");
                Box::new(ProbabilityFlowSampler {
                    sde,
                    options,
                    t_end,
                    denoise: self.denoise.unwrap_or(Denoise::None),
                })
            }
            SamplerName::Ula => Box::new(Ula {
                step: self.step.unwrap_or(ULA_STEP),
                steps: self.steps.unwrap_or(SDE_STEPS),
                tau: t_end,
            }),
            s if s.is_few_step() => self
                .diffusion_config()
                .expect("a few-step sampler")
                .build_for_sde(sde)?,
            s => {
                return Err(refuse(format!(
                    "--sampler {s} follows a field directly; it is not a sampler of an SDE's score (use em, pc, ald, ode, ula or a few-step sampler such as dpmpp-2m, or --sampler ode --solver {s})"
                )))
            }
        })
    }
}

impl From<SamplerName> for SamplerSpec {
    fn from(s: SamplerName) -> Self {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::VpSde;

    #[test]
    fn specs_build_every_sde_sampler_and_reject_bad_settings() {
        let sde: Arc<dyn Sde> = Arc::new(VpSde::default());
        for name in [
            SamplerName::Em,
            SamplerName::Pc,
            SamplerName::Ald,
            SamplerName::Ode,
            SamplerName::Ula,
        ] {
            let spec = SamplerSpec::new(name);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<SamplerSpec>(&json).unwrap(), spec);
            assert_eq!(spec.build(sde.clone()).unwrap().name(), name.name());
        }
        let e = "heunn".parse::<SamplerName>().unwrap_err().to_string();
        assert!(
            e.contains("unknown sampler 'heunn'") && e.contains("ald"),
            "{e}"
        );
        assert!(SamplerSpec::new(SamplerName::Heun)
            .build(sde.clone())
            .is_err());
        let bad = SamplerSpec {
            snr: Some(0.0),
            ..SamplerSpec::new(SamplerName::Pc)
        };
        assert!(bad.build(sde.clone()).is_err());
        let bad = SamplerSpec {
            t_end: Some(1.5),
            ..SamplerSpec::new(SamplerName::Em)
        };
        assert!(bad.build(sde.clone()).is_err());
        let bad = SamplerSpec {
            levels: Some(1),
            ..SamplerSpec::new(SamplerName::Ald)
        };
        assert!(bad.build(sde.clone()).is_err());
        // pc with 0 corrector steps is the predictor alone.
        let rd = SamplerSpec {
            corrector_steps: Some(0),
            predictor: Some(Predictor::Ancestral),
            ..SamplerSpec::new(SamplerName::Pc)
        };
        assert_eq!(rd.build(sde).unwrap().name(), "ancestral");
    }

    /// Every few-step name parses (also with k-diffusion's underscores), round-trips through
    /// serde, builds on VP and EDM's SDE into the sampler of its name, and takes its defaults
    /// from one place ([`FEW_STEPS`], [`DiffusionSamplerConfig::new`]); the spec's options reach
    /// the configuration; options of other samplers are refused with the flag named.
    #[test]
    fn few_step_specs_build_and_refuse_foreign_options() {
        let sdes: [Arc<dyn Sde>; 2] = [
            Arc::new(VpSde::default()),
            Arc::new(crate::sde::EdmSde::default()),
        ];
        for name in SamplerName::ALL.into_iter().filter(|s| s.is_few_step()) {
            assert_eq!(name.name().parse::<SamplerName>().unwrap(), name);
            let under = name.name().replace('-', "_");
            assert_eq!(under.parse::<SamplerName>().unwrap(), name);
            let spec = SamplerSpec::new(name);
            let json = serde_json::to_string(&spec).unwrap();
            assert!(json.contains(&format!("\"{}\"", name.name())), "{json}");
            assert_eq!(serde_json::from_str::<SamplerSpec>(&json).unwrap(), spec);
            for sde in &sdes {
                assert_eq!(spec.build(sde.clone()).unwrap().name(), name.name());
            }
            let c = spec.diffusion_config().unwrap();
            assert_eq!(c.steps, FEW_STEPS);
            let kind = name.diffusion_kind().unwrap();
            assert_eq!(c, DiffusionSamplerConfig::new(kind, FEW_STEPS));
            assert_eq!(kind.name(), name.name());
        }
        let c = SamplerSpec {
            steps: Some(7),
            eta: Some(0.5),
            spacing: Some(Spacing::Karras),
            final_step: Some(FinalStep::Tweedie),
            ..SamplerSpec::new(SamplerName::Ddim)
        }
        .diffusion_config()
        .unwrap();
        assert_eq!(
            (c.steps, c.eta, c.spacing, c.final_step),
            (7, 0.5, Some(Spacing::Karras), FinalStep::Tweedie)
        );
        let c = SamplerSpec {
            churn: Some(10.0),
            ..SamplerSpec::new(SamplerName::EdmHeun)
        };
        assert_eq!(c.diffusion_config().unwrap().churn.s_churn, 10.0);
        assert!(c.build(sdes[1].clone()).is_ok());
        assert!(SamplerSpec::new(SamplerName::Em)
            .diffusion_config()
            .is_none());
        let cases: Vec<(SamplerSpec, &str)> = vec![
            (
                SamplerSpec {
                    order: Some(3),
                    ..SamplerSpec::new(SamplerName::Dpmpp2m)
                },
                "--order is an option of dpm-solver and unipc",
            ),
            (
                SamplerSpec {
                    order: Some(0),
                    ..SamplerSpec::new(SamplerName::DpmSolver)
                },
                "--order must be 1, 2 or 3",
            ),
            (
                SamplerSpec {
                    eta: Some(1.0),
                    ..SamplerSpec::new(SamplerName::Unipc)
                },
                "--eta is the stochasticity of ddim and dpmpp-2s",
            ),
            (
                SamplerSpec {
                    churn: Some(1.0),
                    ..SamplerSpec::new(SamplerName::Ddim)
                },
                "--churn is the stochasticity of edm-euler and edm-heun",
            ),
            (
                SamplerSpec {
                    churn: Some(-1.0),
                    ..SamplerSpec::new(SamplerName::EdmEuler)
                },
                "--churn must be >= 0",
            ),
            (
                SamplerSpec {
                    spacing: Some(Spacing::Karras),
                    ..SamplerSpec::new(SamplerName::Ode)
                },
                "--spacing and --final-step are options of the few-step samplers",
            ),
            (
                SamplerSpec {
                    snr: Some(0.1),
                    ..SamplerSpec::new(SamplerName::Unipc)
                },
                "options of --sampler pc",
            ),
            (
                SamplerSpec {
                    rtol: Some(1e-3),
                    ..SamplerSpec::new(SamplerName::Dpmpp2m)
                },
                "takes fixed --steps",
            ),
            (
                SamplerSpec {
                    denoise: Some(Denoise::Tweedie),
                    ..SamplerSpec::new(SamplerName::Dpmpp3m)
                },
                "--denoise",
            ),
            (
                SamplerSpec {
                    trajectories: true,
                    ..SamplerSpec::new(SamplerName::Ddim)
                },
                "keeps no intermediate states",
            ),
        ];
        for (spec, needle) in cases {
            let e = spec.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{spec:?}: {e}");
            assert!(spec.build(sdes[0].clone()).is_err());
        }
        // A discrete spacing on a continuous SDE is refused when the sampler is built.
        let leading = SamplerSpec {
            spacing: Some(Spacing::Leading),
            ..SamplerSpec::new(SamplerName::Ddim)
        };
        assert!(leading.build(sdes[0].clone()).is_err());
    }

    /// Options that do not apply are refused with the flag named, never silently ignored (the
    /// review found `--steps` ignored by dopri5 and `--rtol/--atol` by fixed-step methods).
    #[test]
    fn inapplicable_options_are_refused() {
        let cases: Vec<(SamplerSpec, &str)> = vec![
            (
                SamplerSpec {
                    steps: Some(50),
                    ..SamplerSpec::new(SamplerName::Dopri5)
                },
                "--steps does not apply to dopri5",
            ),
            (
                SamplerSpec {
                    steps: Some(50),
                    ..SamplerSpec::new(SamplerName::Ode)
                },
                "--steps does not apply to dopri5",
            ),
            (
                SamplerSpec {
                    rtol: Some(1e-3),
                    ..SamplerSpec::new(SamplerName::Euler)
                },
                "--rtol/--atol apply to the adaptive dopri5 only",
            ),
            (
                SamplerSpec {
                    atol: Some(1e-3),
                    solver: Some(Method::Rk4),
                    ..SamplerSpec::new(SamplerName::Ode)
                },
                "rk4 takes fixed --steps",
            ),
            (
                SamplerSpec {
                    atol: Some(1e-3),
                    ..SamplerSpec::new(SamplerName::Em)
                },
                "--sampler em takes fixed --steps",
            ),
            (
                SamplerSpec {
                    snr: Some(0.1),
                    ..SamplerSpec::new(SamplerName::Em)
                },
                "options of --sampler pc",
            ),
            (
                SamplerSpec {
                    solver: Some(Method::Euler),
                    ..SamplerSpec::new(SamplerName::Euler)
                },
                "--solver chooses the ODE method",
            ),
            (
                SamplerSpec {
                    denoise: Some(Denoise::Tweedie),
                    ..SamplerSpec::new(SamplerName::Euler)
                },
                "--denoise",
            ),
            (
                SamplerSpec {
                    step: Some(0.1),
                    ..SamplerSpec::new(SamplerName::Pc)
                },
                "--step is the Langevin step",
            ),
            (
                SamplerSpec {
                    trajectories: true,
                    ..SamplerSpec::new(SamplerName::Em)
                },
                "--trajectories needs a deterministic",
            ),
        ];
        for (spec, needle) in cases {
            let e = spec.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{spec:?}: {e}");
        }
        // What applies is accepted, and the defaults come from one place.
        let ok = SamplerSpec {
            rtol: Some(1e-6),
            ..SamplerSpec::new(SamplerName::Dopri5)
        };
        ok.validate().unwrap();
        let o = ok.ode_options().unwrap();
        assert_eq!((o.rtol, o.atol), (1e-6, TOLERANCE));
        let e = SamplerSpec {
            steps: Some(7),
            ..SamplerSpec::new(SamplerName::Rk4)
        };
        assert_eq!(e.ode_options().unwrap().steps, 7);
        assert_eq!(
            SamplerSpec::new(SamplerName::Euler)
                .ode_options()
                .unwrap()
                .steps,
            ODE_STEPS
        );
    }
}
