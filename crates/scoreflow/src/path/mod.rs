//! Gaussian probability paths x_t = α(t)·x₁ + σ(t)·x₀ (flow-matching time: t = 0 source,
//! t = 1 data), their schedules, and the one place where prediction targets are converted.
//!
//! With x₀ ~ N(0, I) independent of x₁, the marginal score and velocity are related by
//! E[x₀ | x_t] = −σ(t)·∇log p_t(x_t), and the velocity u = α̇ x₁ + σ̇ x₀ can be written from any
//! of x̂₁ (data prediction), ε̂ = x̂₀ (noise prediction) or the score:
//! * u = (σ̇/σ)·x + (α̇ − σ̇α/σ)·x̂₁
//! * u = (α̇/α)·x + (σ̇ − α̇σ/α)·ε̂
//! * s = −ε̂/σ

use std::sync::Arc;

use crate::tensor::{col, to_vec, vector_like, Tensor};

/// A schedule (α(t), σ(t)) with derivatives, t ∈ [0, 1] in flow-matching time.
pub trait Scheduler {
    /// α(t): coefficient of the data point x₁.
    fn alpha(&self, t: f64) -> f64;
    /// σ(t): coefficient of the source point x₀.
    fn sigma(&self, t: f64) -> f64;
    /// α̇(t) = dα/dt.
    fn d_alpha(&self, t: f64) -> f64;
    /// σ̇(t) = dσ/dt.
    fn d_sigma(&self, t: f64) -> f64;
}

/// The data and noise predictions of a velocity, as coefficients: x̂₁ = a₁·x + c₁·u and
/// ε̂ = a₀·x + c₀·u, returned as ((a₁, c₁), (a₀, c₀)), from solving
/// x = α·x̂₁ + σ·ε̂, u = α̇·x̂₁ + σ̇·ε̂ (x̂₁ = E[x₁ | x_t], ε̂ = E[x₀ | x_t], for any coupling of a
/// path without extra noise):
///
/// x̂₁ = (σ̇·x − σ·u)/D,  ε̂ = (α·u − α̇·x)/D,  D = α·σ̇ − σ·α̇ = −α·σ·dλ/dt (λ = ln(α/σ)).
///
/// D ≠ 0 wherever λ is strictly monotone, including the ends α = 0 and σ = 0 (CondOT: D = −1,
/// x̂₁ = x + (1 − t)·u, ε̂ = x − t·u).
pub fn velocity_prediction_coefficients(
    alpha: f64,
    sigma: f64,
    d_alpha: f64,
    d_sigma: f64,
) -> ((f64, f64), (f64, f64)) {
    let det = alpha * d_sigma - sigma * d_alpha;
    ((d_sigma / det, -sigma / det), (-d_alpha / det, alpha / det))
}

/// The straight (conditional-OT / rectified) schedule α(t) = t, σ(t) = 1 − t.
#[derive(Debug, Clone, Copy, Default)]
pub struct CondOt;

impl Scheduler for CondOt {
    fn alpha(&self, t: f64) -> f64 {
        t
    }
    fn sigma(&self, t: f64) -> f64 {
        1.0 - t
    }
    fn d_alpha(&self, _t: f64) -> f64 {
        1.0
    }
    fn d_sigma(&self, _t: f64) -> f64 {
        -1.0
    }
}

/// (m(t), s(t)) of a Gaussian perturbation kernel x_t | x ~ N(m(t)·x, s(t)²·I), where x is the
/// clean (data) point and t is whatever time the field is evaluated at.
///
/// An SDE marginal (diffusion time τ, τ = 0 data) and a flow path (flow time t, t = 1 data,
/// (m, s) = (α(t), σ(t))) are both kernels; [`FnKernel`] wraps any `Fn(f64) -> (f64, f64)`.
pub trait PerturbationKernel {
    /// (m(t), s(t)): mean coefficient and standard deviation of x_t given the clean point.
    fn mean_std(&self, t: f64) -> (f64, f64);
}

impl<K: PerturbationKernel + ?Sized> PerturbationKernel for &K {
    fn mean_std(&self, t: f64) -> (f64, f64) {
        (**self).mean_std(t)
    }
}
impl<K: PerturbationKernel + ?Sized> PerturbationKernel for Box<K> {
    fn mean_std(&self, t: f64) -> (f64, f64) {
        (**self).mean_std(t)
    }
}
impl<K: PerturbationKernel + ?Sized> PerturbationKernel for Arc<K> {
    fn mean_std(&self, t: f64) -> (f64, f64) {
        (**self).mean_std(t)
    }
}

/// The identity kernel (m, s) = (1, 0) at every t: the unperturbed density itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Unperturbed;

impl PerturbationKernel for Unperturbed {
    fn mean_std(&self, _t: f64) -> (f64, f64) {
        (1.0, 0.0)
    }
}

/// (m(t), s(t)) = f(t) for any closure `f: Fn(f64) -> (f64, f64)`.
#[derive(Debug, Clone, Copy)]
pub struct FnKernel<F>(pub F);

impl<F: Fn(f64) -> (f64, f64)> PerturbationKernel for FnKernel<F> {
    fn mean_std(&self, t: f64) -> (f64, f64) {
        (self.0)(t)
    }
}

/// A flow path in flow time: x_t = α(t)·x₁ + σ(t)·x₀ with x₁ the data, so (m, s) = (α(t), σ(t)).
impl<S: Scheduler> PerturbationKernel for GaussianPath<S> {
    fn mean_std(&self, t: f64) -> (f64, f64) {
        (self.scheduler.alpha(t), self.scheduler.sigma(t))
    }
}

/// The trigonometric (cosine) schedule α(t) = sin(πt/2), σ(t) = cos(πt/2) (Meta flow_matching's
/// `CosineScheduler`; a variance-preserving path: α² + σ² = 1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cosine;

impl Scheduler for Cosine {
    fn alpha(&self, t: f64) -> f64 {
        (std::f64::consts::FRAC_PI_2 * t).sin()
    }
    fn sigma(&self, t: f64) -> f64 {
        (std::f64::consts::FRAC_PI_2 * t).cos()
    }
    fn d_alpha(&self, t: f64) -> f64 {
        std::f64::consts::FRAC_PI_2 * (std::f64::consts::FRAC_PI_2 * t).cos()
    }
    fn d_sigma(&self, t: f64) -> f64 {
        -std::f64::consts::FRAC_PI_2 * (std::f64::consts::FRAC_PI_2 * t).sin()
    }
}

/// The probability paths a flow-matching run can be trained on, by name (what a run's
/// `meta.json` records as `path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PathKind {
    /// [`CondOt`]: the straight path α = t, σ = 1 − t (rectified flow / conditional OT).
    #[default]
    #[serde(alias = "cond-ot")]
    Condot,
    /// [`Cosine`]: α = sin(πt/2), σ = cos(πt/2).
    Cosine,
}

impl PathKind {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Condot => "condot",
            PathKind::Cosine => "cosine",
        }
    }
}

/// A [`PathKind`] is the scheduler it names.
impl Scheduler for PathKind {
    fn alpha(&self, t: f64) -> f64 {
        match self {
            PathKind::Condot => CondOt.alpha(t),
            PathKind::Cosine => Cosine.alpha(t),
        }
    }
    fn sigma(&self, t: f64) -> f64 {
        match self {
            PathKind::Condot => CondOt.sigma(t),
            PathKind::Cosine => Cosine.sigma(t),
        }
    }
    fn d_alpha(&self, t: f64) -> f64 {
        match self {
            PathKind::Condot => CondOt.d_alpha(t),
            PathKind::Cosine => Cosine.d_alpha(t),
        }
    }
    fn d_sigma(&self, t: f64) -> f64 {
        match self {
            PathKind::Condot => CondOt.d_sigma(t),
            PathKind::Cosine => Cosine.d_sigma(t),
        }
    }
}

/// One draw from a path: x_t = α x₁ + σ x₀ and its conditional velocity dx_t = α̇ x₁ + σ̇ x₀.
#[derive(Debug, Clone)]
pub struct PathSample {
    /// Source points x₀, `(batch, d)`.
    pub x0: Tensor<2>,
    /// Data points x₁, `(batch, d)`.
    pub x1: Tensor<2>,
    /// Times t, `(batch,)`.
    pub t: Tensor<1>,
    /// x_t = α(t) x₁ + σ(t) x₀.
    pub x_t: Tensor<2>,
    /// d/dt x_t = α̇(t) x₁ + σ̇(t) x₀ (the conditional flow-matching target).
    pub dx_t: Tensor<2>,
}

/// An affine Gaussian path built from a [`Scheduler`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GaussianPath<S> {
    /// The schedule (α, σ).
    pub scheduler: S,
}

impl<S: Scheduler> GaussianPath<S> {
    /// A path from a schedule.
    pub fn new(scheduler: S) -> Self {
        Self { scheduler }
    }

    /// Per-sample coefficient g(t) as a `(batch, 1)` column.
    fn coef(&self, t: &Tensor<1>, g: impl Fn(f64) -> f64) -> Tensor<2> {
        col(&vector_like(to_vec(t).into_iter().map(g).collect(), t))
    }

    /// Draws x_t and dx_t for given x₀, x₁ and t.
    pub fn sample(&self, x0: Tensor<2>, x1: Tensor<2>, t: Tensor<1>) -> PathSample {
        let s = &self.scheduler;
        let (a, sg) = (self.coef(&t, |t| s.alpha(t)), self.coef(&t, |t| s.sigma(t)));
        let (da, ds) = (
            self.coef(&t, |t| s.d_alpha(t)),
            self.coef(&t, |t| s.d_sigma(t)),
        );
        let x_t = x1.clone() * a + x0.clone() * sg;
        let dx_t = x1.clone() * da + x0.clone() * ds;
        PathSample {
            x0,
            x1,
            t,
            x_t,
            dx_t,
        }
    }

    /// u = (σ̇/σ)·x + (α̇ − σ̇α/σ)·x̂₁.
    pub fn x1_to_velocity(&self, x1_hat: Tensor<2>, x: Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let s = &self.scheduler;
        let a = self.coef(t, |t| s.d_sigma(t) / s.sigma(t));
        let b = self.coef(t, |t| s.d_alpha(t) - s.d_sigma(t) * s.alpha(t) / s.sigma(t));
        x * a + x1_hat * b
    }

    /// x̂₁ = (u − (σ̇/σ) x) / (α̇ − σ̇α/σ), the inverse of [`Self::x1_to_velocity`].
    pub fn velocity_to_x1(&self, u: Tensor<2>, x: Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let s = &self.scheduler;
        let a = self.coef(t, |t| s.d_sigma(t) / s.sigma(t));
        let b = self.coef(t, |t| {
            1.0 / (s.d_alpha(t) - s.d_sigma(t) * s.alpha(t) / s.sigma(t))
        });
        (u - x * a) * b
    }

    /// u = (α̇/α)·x + (σ̇ − α̇σ/α)·ε̂.
    pub fn epsilon_to_velocity(&self, eps: Tensor<2>, x: Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let s = &self.scheduler;
        let a = self.coef(t, |t| s.d_alpha(t) / s.alpha(t));
        let b = self.coef(t, |t| s.d_sigma(t) - s.d_alpha(t) * s.sigma(t) / s.alpha(t));
        x * a + eps * b
    }

    /// ε̂ = (u − (α̇/α) x) / (σ̇ − α̇σ/α), the inverse of [`Self::epsilon_to_velocity`].
    pub fn velocity_to_epsilon(&self, u: Tensor<2>, x: Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let s = &self.scheduler;
        let a = self.coef(t, |t| s.d_alpha(t) / s.alpha(t));
        let b = self.coef(t, |t| {
            1.0 / (s.d_sigma(t) - s.d_alpha(t) * s.sigma(t) / s.alpha(t))
        });
        (u - x * a) * b
    }

    /// s = −ε̂/σ (for a N(0, I) source).
    pub fn epsilon_to_score(&self, eps: Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let s = &self.scheduler;
        eps * self.coef(t, |t| -1.0 / s.sigma(t))
    }

    /// ε̂ = −σ·s.
    pub fn score_to_epsilon(&self, score: Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let s = &self.scheduler;
        score * self.coef(t, |t| -s.sigma(t))
    }

    /// (a(t), b(t)) with u = a·x + b·s, the velocity of the score s at flow time t:
    /// a = α̇/α, b = σ(α̇σ/α − σ̇) (CondOT: a = 1/t, b = (1 − t)/t). Both blow up as α(t) → 0
    /// (the noise end, t → 0): callers clamp t there (see `guidance::flow`).
    pub fn score_velocity_coefficients(&self, t: f64) -> (f64, f64) {
        let s = &self.scheduler;
        let (a, sg, da, ds) = (s.alpha(t), s.sigma(t), s.d_alpha(t), s.d_sigma(t));
        (da / a, sg * (da * sg / a - ds))
    }

    /// u from the score: u = (α̇/α)·x − (σ̇ − α̇σ/α)·σ·s.
    pub fn score_to_velocity(&self, score: Tensor<2>, x: Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let eps = self.score_to_epsilon(score, t);
        self.epsilon_to_velocity(eps, x, t)
    }

    /// s from the velocity: s = −ε̂(u)/σ.
    pub fn velocity_to_score(&self, u: Tensor<2>, x: Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let eps = self.velocity_to_epsilon(u, x, t);
        self.epsilon_to_score(eps, t)
    }
}
