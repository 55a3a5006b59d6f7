//! Guidance as composition: fields built from fields, so that every sampler works on them
//! unchanged — classifier-free guidance ([`ClassifierFree`]), classifier guidance and Bayes'
//! rule in score form ([`BayesScore`] with a [`ClassifierGradient`] or a likelihood term), and
//! the path conversions that let flow models take score-space guidance ([`flow`]).
//!
//! **One convention, diffusers'.** A guidance scale g combines an unconditional field u and a
//! conditional one c as
//!
//!   ũ = u + g·(c − u):  g = 1 is plain conditional sampling, g = 0 unconditional, g > 1 guided.
//!
//! Ho & Salimans (2022) write ũ = (1 + w)·c − w·u: the same field with **w = g − 1**. The
//! classifier scale γ follows suit: s̃ = s + γ·∇ₓ log p(y | x_t, t) is the exact conditional
//! score at γ = 1, unconditional at γ = 0 (Dhariwal & Nichol's scale s is γ).
//!
//! The combinations are linear in the fields, so they commute with the affine maps between
//! ε, x̂₀, score and velocity under a Gaussian path (`field::convert`, `path`): guiding the
//! network's raw output and then converting is guiding the score.

pub mod cfg;
pub mod classifier;
pub mod flow;

pub use cfg::ClassifierFree;
pub use classifier::{BayesScore, ClassifierGradient, NoiseLevelMatched};
pub use flow::{GuidedVelocity, ScoreVelocity};
