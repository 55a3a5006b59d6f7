//! Following a field: ODE solvers ([`ode`]); SDE and Langevin samplers live beside them.

pub mod ode;

pub use ode::{odeint, Method, OdeOptions, OdeSolution};
