//! A few-step sampler chosen by name plus options ([`DiffusionSamplerConfig`]), built for a
//! noise schedule into a [`Sampler`].

use std::str::FromStr;
use std::sync::Arc;

use super::{Churn, Ddim, DpmSolver, DpmSolverPp2s, EdmSampler, SolverTarget, UniPc, UniPcVariant};
use crate::error::{Error, Result};
use crate::schedule::{FinalStep, Grid, NoiseSchedule, SampledField, Spacing};
use crate::sde::Sde;
use crate::solve::sampler::Sampler;

/// The few-step samplers, by the names users type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DiffusionSamplerKind {
    /// DDIM, η ≥ 0 (order 1 at η = 0).
    #[serde(rename = "ddim")]
    Ddim,
    /// Multistep DPM-Solver with noise prediction, order 1–3 (default 2).
    #[serde(rename = "dpm-solver")]
    DpmSolver,
    /// Multistep DPM-Solver++ of order 2 (data prediction).
    #[serde(rename = "dpmpp-2m")]
    Dpmpp2m,
    /// Multistep DPM-Solver++ of order 3.
    #[serde(rename = "dpmpp-3m")]
    Dpmpp3m,
    /// Singlestep DPM-Solver++(2S), optionally ancestral (η > 0).
    #[serde(rename = "dpmpp-2s")]
    Dpmpp2s,
    /// UniPC predictor–corrector (bh2, order 2 + 1 by default).
    #[serde(rename = "unipc")]
    UniPc,
    /// Euler on the Karras σ grid, optional churn.
    #[serde(rename = "edm-euler")]
    EdmEuler,
    /// Heun on the Karras σ grid, optional churn.
    #[serde(rename = "edm-heun")]
    EdmHeun,
}

impl DiffusionSamplerKind {
    /// Every kind, for help texts.
    pub const ALL: [DiffusionSamplerKind; 8] = [
        DiffusionSamplerKind::Ddim,
        DiffusionSamplerKind::DpmSolver,
        DiffusionSamplerKind::Dpmpp2m,
        DiffusionSamplerKind::Dpmpp3m,
        DiffusionSamplerKind::Dpmpp2s,
        DiffusionSamplerKind::UniPc,
        DiffusionSamplerKind::EdmEuler,
        DiffusionSamplerKind::EdmHeun,
    ];

    /// The name: "ddim", "dpm-solver", "dpmpp-2m", "dpmpp-3m", "dpmpp-2s", "unipc",
    /// "edm-euler", "edm-heun".
    pub fn name(self) -> &'static str {
        match self {
            DiffusionSamplerKind::Ddim => "ddim",
            DiffusionSamplerKind::DpmSolver => "dpm-solver",
            DiffusionSamplerKind::Dpmpp2m => "dpmpp-2m",
            DiffusionSamplerKind::Dpmpp3m => "dpmpp-3m",
            DiffusionSamplerKind::Dpmpp2s => "dpmpp-2s",
            DiffusionSamplerKind::UniPc => "unipc",
            DiffusionSamplerKind::EdmEuler => "edm-euler",
            DiffusionSamplerKind::EdmHeun => "edm-heun",
        }
    }

    /// The global order of the deterministic sampler with its default options.
    pub fn order(self) -> usize {
        match self {
            DiffusionSamplerKind::Ddim | DiffusionSamplerKind::EdmEuler => 1,
            DiffusionSamplerKind::DpmSolver
            | DiffusionSamplerKind::Dpmpp2m
            | DiffusionSamplerKind::Dpmpp2s
            | DiffusionSamplerKind::EdmHeun => 2,
            DiffusionSamplerKind::Dpmpp3m | DiffusionSamplerKind::UniPc => 3,
        }
    }

    /// The default spacing: on a discrete (diffusers) schedule that of the diffusers
    /// counterpart (DDIM `leading`, the others `linspace`); on a continuous one uniform λ
    /// for the exponential integrators (DDIM, DPM-Solver(++), UniPC) and Karras ρ = 7 for
    /// EDM's Euler / Heun and DPM-Solver++(2S) (k-diffusion's grid).
    pub fn default_spacing(self, discrete: bool) -> Spacing {
        use DiffusionSamplerKind as K;
        match (self, discrete) {
            (K::Ddim, true) => Spacing::Leading,
            (_, true) => Spacing::Linspace,
            (K::EdmEuler | K::EdmHeun | K::Dpmpp2s, false) => Spacing::Karras,
            (_, false) => Spacing::LogSnr,
        }
    }

    /// The default spacing on `schedule`: on a flow path ([`SampledField::Velocity`]) uniform
    /// flow time ending on the data (diffusers' flow sigmas; on the exact CondOT velocity of
    /// 8gaussians best or equal at every one of 5–50 NFE for ddim, dpmpp-2m, unipc, dpmpp-3m,
    /// and 2–8× closer to the floor at 5–10 NFE than uniform λ: BENCHMARKS.md), except EDM's
    /// Euler / Heun, which keep Karras ρ = 7 (from λ = −5 the same grid and map as on VP;
    /// uniform time was within 1.1× of it at 20–50 NFE but further from the flow ODE's map at
    /// 20 steps in the tests); otherwise [`Self::default_spacing`].
    pub fn default_spacing_for(self, schedule: &dyn NoiseSchedule) -> Spacing {
        use DiffusionSamplerKind as K;
        match (schedule.sampled_field(schedule.t_noise()), self) {
            (SampledField::Velocity { .. }, K::EdmEuler | K::EdmHeun) => Spacing::Karras,
            (SampledField::Velocity { .. }, _) => Spacing::Time,
            (SampledField::Score, _) => self.default_spacing(schedule.train_timesteps().is_some()),
        }
    }
}

impl FromStr for DiffusionSamplerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase().replace('_', "-");
        DiffusionSamplerKind::ALL
            .into_iter()
            .find(|k| k.name() == lower)
            .ok_or_else(|| {
                let names: Vec<_> = DiffusionSamplerKind::ALL.iter().map(|k| k.name()).collect();
                Error::InvalidInput(format!(
                    "unknown diffusion sampler '{s}' (choose one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// A few-step sampler: kind, steps and options; unset options take the kind's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiffusionSamplerConfig {
    /// Which sampler.
    pub kind: DiffusionSamplerKind,
    /// Sampler steps N (the NFE is reported separately).
    pub steps: usize,
    /// Time-step spacing; `None`: [`DiffusionSamplerKind::default_spacing`].
    #[serde(default)]
    pub spacing: Option<Spacing>,
    /// Where the last step lands (the clean data by default).
    #[serde(default)]
    pub final_step: FinalStep,
    /// Karras ρ (7).
    #[serde(default = "default_rho")]
    pub rho: f64,
    /// diffusers' `steps_offset` for `leading` (0).
    #[serde(default)]
    pub steps_offset: usize,
    /// End time ε; `None`: the schedule's.
    #[serde(default)]
    pub t_end: Option<f64>,
    /// ddim / dpmpp-2s: stochasticity η (0).
    #[serde(default)]
    pub eta: f64,
    /// dpm-solver: order 1–3 (2); unipc: predictor order 1–3 (2). Fixed for dpmpp-2m/3m.
    #[serde(default)]
    pub order: Option<usize>,
    /// unipc: data or noise prediction (data).
    #[serde(default)]
    pub target: SolverTarget,
    /// unipc: B(h) (bh2).
    #[serde(default)]
    pub variant: UniPcVariant,
    /// Multistep methods: lower the order of the final steps as diffusers does (true).
    #[serde(default = "yes")]
    pub lower_order_final: bool,
    /// edm-euler / edm-heun: churn (none).
    #[serde(default)]
    pub churn: Churn,
}

fn default_rho() -> f64 {
    7.0
}
fn yes() -> bool {
    true
}

impl DiffusionSamplerConfig {
    /// `kind` with `steps` steps and every default.
    pub fn new(kind: DiffusionSamplerKind, steps: usize) -> Self {
        Self {
            kind,
            steps,
            spacing: None,
            final_step: FinalStep::Zero,
            rho: default_rho(),
            steps_offset: 0,
            t_end: None,
            eta: 0.0,
            order: None,
            target: SolverTarget::Data,
            variant: UniPcVariant::Bh2,
            lower_order_final: true,
            churn: Churn::default(),
        }
    }

    /// The grid for `schedule`.
    pub fn grid(&self, schedule: &dyn NoiseSchedule) -> Grid {
        Grid {
            steps: self.steps,
            spacing: self
                .spacing
                .unwrap_or_else(|| self.kind.default_spacing_for(schedule)),
            final_step: self.final_step,
            rho: self.rho,
            steps_offset: self.steps_offset,
            t_end: self.t_end,
        }
    }

    /// The sampler for an SDE's schedule (its diffusion time τ, from T to its sampling ε).
    pub fn build_for_sde(&self, sde: Arc<dyn Sde>) -> Result<Box<dyn Sampler>> {
        self.build(Arc::new(sde))
    }

    /// The sampler for `schedule`; errors on out-of-range options (checked now, not at
    /// sampling time).
    pub fn build(&self, schedule: Arc<dyn NoiseSchedule>) -> Result<Box<dyn Sampler>> {
        use DiffusionSamplerKind as K;
        let grid = self.grid(&*schedule);
        grid.validate(&*schedule)?;
        let order = |default: usize| -> Result<usize> {
            let k = self.order.unwrap_or(default);
            if (1..=3).contains(&k) {
                Ok(k)
            } else {
                Err(Error::InvalidInput(format!(
                    "{} order must be 1, 2 or 3, got {k}",
                    self.kind.name()
                )))
            }
        };
        if !(self.eta >= 0.0 && self.eta.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "η must be >= 0, got {}",
                self.eta
            )));
        }
        self.churn.validate()?;
        let multistep = |target, order| DpmSolver {
            schedule: schedule.clone(),
            grid: grid.clone(),
            target,
            order,
            lower_order_final: self.lower_order_final,
        };
        Ok(match self.kind {
            K::Ddim => Box::new(Ddim {
                schedule,
                grid,
                eta: self.eta,
            }),
            K::DpmSolver => Box::new(multistep(SolverTarget::Noise, order(2)?)),
            K::Dpmpp2m => Box::new(multistep(SolverTarget::Data, 2)),
            K::Dpmpp3m => Box::new(multistep(SolverTarget::Data, 3)),
            K::Dpmpp2s => Box::new(DpmSolverPp2s {
                schedule,
                grid,
                eta: self.eta,
                s_noise: self.churn.s_noise,
            }),
            K::UniPc => Box::new(UniPc {
                schedule,
                grid,
                order: order(2)?,
                target: self.target,
                variant: self.variant,
                lower_order_final: self.lower_order_final,
            }),
            K::EdmEuler | K::EdmHeun => Box::new(EdmSampler {
                schedule,
                grid,
                heun: self.kind == K::EdmHeun,
                churn: self.churn,
            }),
        })
    }
}
