//! Following a field: ODE solvers ([`ode`]); SDE and Langevin samplers live beside them, and
//! the few-step diffusion samplers (DDIM, DPM-Solver(++), UniPC, EDM) in [`diffusion`].

pub mod choice;
pub mod diffusion;
pub mod langevin;
pub mod ode;
pub mod sampler;
pub mod sde;

pub use choice::{SamplerName, SamplerSpec};
pub use langevin::{AnnealedLangevin, LangevinCorrector, Mala, Ula};
pub use ode::{odeint, Method, OdeOptions, OdeSolution};
pub use sampler::{Denoise, Sample, Sampler};
pub use sde::{Predictor, PredictorCorrector, ProbabilityFlowSampler};
