//! # scoreflow
//!
//! Vector-field generative modelling: a generative model *is* a vector field v(x, t) on R^d —
//! a score s(x, t) = ∇ₓ log p_t(x), a noise prediction ε, or a flow-matching velocity.
//! This crate learns such fields from samples, follows them to generate, measures with them
//! (likelihoods, sample metrics, diagnostics) and composes them.
//!
//! ## Conventions (decided once, here)
//! * Tensors are burn [`Tensor`](burn::tensor::Tensor)s of shape `(batch, d)`; times are
//!   `(batch,)`. New tensors always take their dtype and device from an existing one
//!   (see [`tensor`]), so the same code runs in f32 (default) and f64 (tests).
//! * **Time.** Probability paths ([`path`]) use flow-matching time: t = 0 is the source
//!   (noise), t = 1 is the data, x_t = α(t)·x₁ + σ(t)·x₀. SDEs ([`sde`]) use diffusion time
//!   τ ∈ [0, T]: τ = 0 is the data, τ = T the prior, as in Song et al. A score network takes
//!   diffusion time; a flow-matching velocity takes flow time. The one conversion,
//!   t = 1 − τ/T, lives in `sde` where an SDE is viewed as a path.
//! * Every random draw takes an explicit seeded [`tensor::Rng`].
//! * Nothing in this crate prints; errors are values ([`Error`]).

pub mod bench;
pub mod checkpoint;
pub mod coupling;
pub mod data;
pub mod device;
pub mod diagnostics;
pub mod error;
pub mod field;
pub mod fokker_planck;
pub mod fsutil;
pub mod fused;
pub mod gaussian;
pub mod guidance;
pub mod inverse;
pub mod lessons;
pub mod likelihood;
pub mod linalg;
pub mod metrics;
pub mod model;
pub mod objective;
pub mod path;
pub mod schedule;
pub mod sde;
pub mod solve;
pub mod state;
pub mod tensor;
pub mod train;
pub mod transport;

pub use error::{Error, Result};
pub use field::VectorField;
