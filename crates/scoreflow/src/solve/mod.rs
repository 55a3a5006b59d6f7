//! Following a field: ODE solvers ([`ode`]); SDE and Langevin samplers live beside them.

pub mod langevin;
pub mod ode;
pub mod sde;

pub use langevin::{AnnealedLangevin, LangevinCorrector, Mala, Ula};
pub use ode::{odeint, Method, OdeOptions, OdeSolution};
pub use sde::{
    Denoise, Predictor, PredictorCorrector, ProbabilityFlowSampler, Sample, Sampler, SamplerConfig,
    SamplerKind,
};
