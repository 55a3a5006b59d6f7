//! Forward SDEs dx = f(x, τ) dτ + g(τ) dw in diffusion time τ ∈ [0, T] (τ = 0 data, τ = T
//! prior), after Song et al. (2021), "Score-Based Generative Modeling through SDEs".
//!
//! Every SDE here has a linear drift f(x, τ) = a(τ)·x, so its perturbation kernel is Gaussian:
//! x_τ | x₀ ~ N(m(τ) x₀, s(τ)² I) with a = d log m / dτ and g² = d(s²)/dτ − 2a·s². Only
//! such SDEs make denoising score matching exact, and the kernel is what the analytic fields
//! ([`crate::field::analytic`]) and the DSM objective use, so [`Sde`] extends
//! [`PerturbationKernel`] (its `mean_std(τ)` is the marginal (m(τ), s(τ))).
//!
//! From any SDE and any score field s(x, τ) ≈ ∇ log p_τ, [`ReverseDrift`] builds the drift of
//! the reverse-time SDE dx = [f − g² s] dτ + g dw̄ and of the probability-flow ODE
//! dx/dτ = f − ½ g² s, as [`VectorField`]s in τ. [`SdePath`] views an SDE marginal as a
//! flow-matching path; it holds the crate's one time conversion t = 1 − τ/T.
//!
//! The numerical floor ε: scores blow up as s(τ) → 0, so training draws τ ~ U(ε, T) with
//! [`Sde::t_min`] (1e-5 by default) and samplers stop at [`Sde::sampling_eps`] (1e-3 for VP and
//! sub-VP, 1e-5 for VE, as in score_sde).

mod edm;
mod ve;
mod vp;

pub use edm::EdmSde;
pub use ve::VeSde;
pub use vp::{BetaSchedule, SubVpSde, VpSde};

use std::fmt::Debug;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::field::convert::per_row;
use crate::field::VectorField;
use crate::path::PerturbationKernel;
use crate::path::Scheduler;
use crate::tensor::{randn, DType, Device, Rng, Tensor};

/// A forward SDE dx = a(τ)·x dτ + g(τ) dw on τ ∈ [0, T] with Gaussian marginal kernel
/// (m(τ), s(τ)) (the supertrait) and prior N(0, s_prior² I).
pub trait Sde: PerturbationKernel + Debug + Send + Sync {
    /// Short name ("vp", "subvp", "ve", "edm").
    fn name(&self) -> &'static str;

    /// T, the end of diffusion time (1 as in score_sde, except EDM's, whose time is σ itself
    /// and T = σ_max).
    fn t_max(&self) -> f64 {
        1.0
    }

    /// ε, the smallest τ the score is trained at (DSM draws τ ~ U(ε, T)).
    fn t_min(&self) -> f64;

    /// Default end time of reverse samplers: integrate T → this.
    fn sampling_eps(&self) -> f64;

    /// a(τ) in the linear drift f(x, τ) = a(τ)·x.
    fn drift_coef(&self, tau: f64) -> f64;

    /// g(τ), the diffusion coefficient.
    fn diffusion(&self, tau: f64) -> f64;

    /// Standard deviation of the prior N(0, s_prior² I) that samplers start from.
    fn prior_std(&self) -> f64;

    /// f(x, τ) = a(τ)·x, one τ per row.
    fn drift(&self, x: &Tensor<2>, tau: &Tensor<1>) -> Tensor<2> {
        x.clone() * per_row(tau, |t| self.drift_coef(t))
    }

    /// `n` draws of the prior N(0, s_prior² I) in R^d.
    fn prior_sample(
        &self,
        n: usize,
        d: usize,
        device: &Device,
        dtype: DType,
        rng: &mut Rng,
    ) -> Tensor<2> {
        randn(n, d, device, dtype, rng) * self.prior_std()
    }

    /// log N(x; 0, s_prior² I) = −½ (d log(2π s²) + ‖x‖²/s²) per row.
    fn prior_log_density(&self, x: &Tensor<2>) -> Tensor<1> {
        let [n, d] = x.dims();
        let var = self.prior_std().powi(2);
        let sq = x.clone().powi_scalar(2).sum_dim(1).reshape([n]);
        sq * (-0.5 / var) - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * var).ln()
    }

    /// The exact transition between two times `from < to`: x_to = r·x_from + G·z with
    /// r = m(to)/m(from) and G² = s(to)² − r² s(from)². Returns (r, G²). This is the
    /// discretisation of the reverse-diffusion and ancestral predictors (DDPM's βᵢ = 1 − r²
    /// for VP, SMLD's σᵢ² − σᵢ₋₁² for VE).
    fn transition(&self, from: f64, to: f64) -> (f64, f64) {
        let (m0, s0) = self.mean_std(from);
        let (m1, s1) = self.mean_std(to);
        let r = m1 / m0;
        (r, (s1 * s1 - r * r * s0 * s0).max(0.0))
    }
}

macro_rules! forward_sde {
    ($($ptr:ty),*) => {$(
        impl<S: Sde + ?Sized> Sde for $ptr {
            fn name(&self) -> &'static str { (**self).name() }
            fn t_max(&self) -> f64 { (**self).t_max() }
            fn t_min(&self) -> f64 { (**self).t_min() }
            fn sampling_eps(&self) -> f64 { (**self).sampling_eps() }
            fn drift_coef(&self, tau: f64) -> f64 { (**self).drift_coef(tau) }
            fn diffusion(&self, tau: f64) -> f64 { (**self).diffusion(tau) }
            fn prior_std(&self) -> f64 { (**self).prior_std() }
            fn transition(&self, from: f64, to: f64) -> (f64, f64) { (**self).transition(from, to) }
        }
    )*};
}
forward_sde!(&S, Box<S>, Arc<S>);

/// The reverse-time drift v(x, τ) = f(x, τ) − λ·g(τ)²·s(x, τ) of an SDE with score field s:
/// λ = 1 gives the reverse SDE dx = v dτ + g dw̄ (Anderson 1982), λ = ½ the probability-flow
/// ODE dx/dτ = v, whose solutions share the marginals p_τ. Both run backwards, τ: T → ε.
#[derive(Debug, Clone)]
pub struct ReverseDrift<S, F> {
    /// The forward SDE.
    pub sde: S,
    /// The score field s(x, τ) ≈ ∇ₓ log p_τ(x), in diffusion time.
    pub score: F,
    /// λ: 1 for the reverse SDE, ½ for the probability-flow ODE.
    pub lambda: f64,
}

impl<S: Sde, F: VectorField> ReverseDrift<S, F> {
    /// The reverse-SDE drift f − g²·s.
    pub fn reverse_sde(sde: S, score: F) -> Self {
        Self {
            sde,
            score,
            lambda: 1.0,
        }
    }

    /// The probability-flow ODE field f − ½ g²·s.
    pub fn probability_flow(sde: S, score: F) -> Self {
        Self {
            sde,
            score,
            lambda: 0.5,
        }
    }

    fn coefs(&self, tau: &Tensor<1>) -> (Tensor<2>, Tensor<2>) {
        let a = per_row(tau, |t| self.sde.drift_coef(t));
        let c = per_row(tau, |t| -self.lambda * self.sde.diffusion(t).powi(2));
        (a, c)
    }
}

impl<S: Sde, F: VectorField> VectorField for ReverseDrift<S, F> {
    fn dim(&self) -> usize {
        self.score.dim()
    }

    /// a(τ)·x − λ g(τ)²·s(x, τ).
    fn eval(&self, x: &Tensor<2>, tau: &Tensor<1>) -> Tensor<2> {
        let (a, c) = self.coefs(tau);
        x.clone() * a + self.score.eval(x, tau) * c
    }

    /// J·u = a(τ)·u − λ g(τ)²·J_s·u (exact when the score's jvp is).
    fn jvp(&self, x: &Tensor<2>, tau: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (a, c) = self.coefs(tau);
        let (s, js) = self.score.jvp(x, tau, u);
        (
            x.clone() * a.clone() + s * c.clone(),
            u.clone() * a + js * c,
        )
    }

    fn exact_jvp(&self) -> bool {
        self.score.exact_jvp()
    }

    /// ∇·v = d·a(τ) − λ g(τ)²·∇·s.
    fn divergence(&self, x: &Tensor<2>, tau: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = x.dims();
        let (a, c) = self.coefs(tau);
        let (s, ds) = self.score.divergence(x, tau);
        let v = x.clone() * a.clone() + s * c.clone();
        (v, a.reshape([n]) * d as f64 + ds * c.reshape([n]))
    }
}

/// An SDE marginal viewed as a flow-matching path in flow time t = 1 − τ/T:
/// α(t) = m(τ), σ(t) = s(τ), α̇ = −T·a(τ)·m(τ), σ̇ = −T·(g² + 2a·s²)/(2s).
///
/// σ̇ is infinite at t = 1 (τ = 0, s = 0) for VP and sub-VP: stop flows at t = 1 − ε/T.
#[derive(Debug, Clone)]
pub struct SdePath<S>(pub S);

impl<S: Sde> SdePath<S> {
    /// τ = T·(1 − t): diffusion time of a flow time.
    pub fn diffusion_time(&self, t: f64) -> f64 {
        self.0.t_max() * (1.0 - t)
    }

    /// t = 1 − τ/T: flow time of a diffusion time.
    pub fn flow_time(&self, tau: f64) -> f64 {
        1.0 - tau / self.0.t_max()
    }
}

impl<S: Sde> Scheduler for SdePath<S> {
    fn alpha(&self, t: f64) -> f64 {
        self.0.mean_std(self.diffusion_time(t)).0
    }
    fn sigma(&self, t: f64) -> f64 {
        self.0.mean_std(self.diffusion_time(t)).1
    }
    fn d_alpha(&self, t: f64) -> f64 {
        let tau = self.diffusion_time(t);
        -self.0.t_max() * self.0.drift_coef(tau) * self.0.mean_std(tau).0
    }
    fn d_sigma(&self, t: f64) -> f64 {
        let tau = self.diffusion_time(t);
        let s = self.0.mean_std(tau).1;
        let ds2 = self.0.diffusion(tau).powi(2) + 2.0 * self.0.drift_coef(tau) * s * s;
        -self.0.t_max() * ds2 / (2.0 * s)
    }
}

/// A serialisable description of an SDE, built at the edges (CLI, `meta.json`) into an
/// `Arc<dyn Sde>` by [`SdeConfig::build`]; names parse with `FromStr`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SdeConfig {
    /// Variance-preserving dx = −½β x dτ + √β dw.
    Vp {
        /// The β(τ) schedule.
        schedule: BetaSchedule,
        /// Training floor ε.
        #[serde(default = "default_t_min")]
        t_min: f64,
    },
    /// Sub-variance-preserving dx = −½β x dτ + √(β(1 − e^{−2∫β})) dw.
    #[serde(rename = "subvp")]
    SubVp {
        /// The β(τ) schedule.
        schedule: BetaSchedule,
        /// Training floor ε.
        #[serde(default = "default_t_min")]
        t_min: f64,
    },
    /// Variance-exploding dx = √(d σ²/dτ) dw with σ(τ) = σ_min (σ_max/σ_min)^τ.
    Ve {
        /// σ_min.
        sigma_min: f64,
        /// σ_max (≈ the largest pairwise distance of the data; see [`VeSde::sigma_max_for`]).
        sigma_max: f64,
        /// Training floor ε.
        #[serde(default = "default_t_min")]
        t_min: f64,
    },
    /// Karras et al.'s x_σ = y + σ n with time τ = σ ∈ [σ_min, σ_max] ([`EdmSde`]).
    Edm {
        /// σ_min (0.002): the training floor and the end of sampling.
        #[serde(default = "default_edm_sigma_min")]
        sigma_min: f64,
        /// σ_max (80): where sampling starts.
        #[serde(default = "default_edm_sigma_max")]
        sigma_max: f64,
    },
}

fn default_edm_sigma_min() -> f64 {
    EdmSde::DEFAULT_SIGMA_MIN
}

fn default_edm_sigma_max() -> f64 {
    EdmSde::DEFAULT_SIGMA_MAX
}

/// The forward SDEs by name (`--sde`): the family of an [`SdeConfig`] without its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SdeKind {
    /// Variance preserving, linear β from β_min to β_max (DDPM's continuous limit).
    #[default]
    Vp,
    /// Variance preserving with Nichol & Dhariwal's cosine schedule.
    #[serde(rename = "vp-cosine")]
    #[cfg_attr(feature = "clap", value(name = "vp-cosine"))]
    VpCosine,
    /// Sub-variance-preserving (linear β).
    Subvp,
    /// Variance exploding, geometric σ from σ_min to σ_max (NCSN's continuous limit).
    Ve,
}

impl SdeKind {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            SdeKind::Vp => "vp",
            SdeKind::VpCosine => "vp-cosine",
            SdeKind::Subvp => "subvp",
            SdeKind::Ve => "ve",
        }
    }
}

fn default_t_min() -> f64 {
    1e-5
}

impl SdeConfig {
    /// The accepted names, for help texts.
    pub const NAMES: [&'static str; 5] = ["vp", "vp-cosine", "subvp", "ve", "edm"];

    /// Builds the SDE, validating its parameters.
    pub fn build(&self) -> Result<Arc<dyn Sde>> {
        Ok(match self {
            SdeConfig::Vp { schedule, t_min } => Arc::new(VpSde::new(schedule.clone(), *t_min)?),
            SdeConfig::SubVp { schedule, t_min } => {
                Arc::new(SubVpSde::new(schedule.clone(), *t_min)?)
            }
            SdeConfig::Ve {
                sigma_min,
                sigma_max,
                t_min,
            } => Arc::new(VeSde::new(*sigma_min, *sigma_max, *t_min)?),
            SdeConfig::Edm {
                sigma_min,
                sigma_max,
            } => Arc::new(EdmSde::new(*sigma_min, *sigma_max)?),
        })
    }
}

impl Default for SdeConfig {
    /// VP with the linear schedule β: 0.1 → 20 (the reference).
    fn default() -> Self {
        SdeConfig::Vp {
            schedule: BetaSchedule::default(),
            t_min: default_t_min(),
        }
    }
}

impl std::str::FromStr for SdeConfig {
    type Err = Error;
    /// `vp` (linear β 0.1 → 20), `vp-cosine`, `subvp` (also `sub-vp`), `ve` (σ 0.01 → 10),
    /// `edm` (σ 0.002 → 80), with their default parameters.
    fn from_str(s: &str) -> Result<Self> {
        let t_min = default_t_min();
        match s.to_ascii_lowercase().as_str() {
            "vp" => Ok(SdeConfig::Vp {
                schedule: BetaSchedule::default(),
                t_min,
            }),
            "vp-cosine" | "cosine" => Ok(SdeConfig::Vp {
                schedule: BetaSchedule::cosine(),
                t_min,
            }),
            "subvp" | "sub-vp" => Ok(SdeConfig::SubVp {
                schedule: BetaSchedule::default(),
                t_min,
            }),
            "ve" => Ok(SdeConfig::Ve {
                sigma_min: VeSde::DEFAULT_SIGMA_MIN,
                sigma_max: VeSde::DEFAULT_SIGMA_MAX,
                t_min,
            }),
            "edm" => Ok(SdeConfig::Edm {
                sigma_min: EdmSde::DEFAULT_SIGMA_MIN,
                sigma_max: EdmSde::DEFAULT_SIGMA_MAX,
            }),
            other => Err(Error::InvalidInput(format!(
                "unknown SDE '{other}' (choose one of {})",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

/// Checks 0 < ε < T for a training floor.
pub(crate) fn check_t_min(t_min: f64) -> Result<()> {
    if t_min > 0.0 && t_min < 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "t_min (ε) must lie in (0, 1), got {t_min}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::analytic::{GaussianMixture, MixtureScore};
    use crate::tensor::{cpu, matrix, rng, times_like, to_vec};

    fn all_sdes() -> Vec<Arc<dyn Sde>> {
        ["vp", "vp-cosine", "subvp", "ve", "edm"]
            .iter()
            .map(|n| n.parse::<SdeConfig>().unwrap().build().unwrap())
            .collect()
    }

    /// The Gaussian-kernel identities every SDE must satisfy, by central differences
    /// (h = 1e-6, relative error O(h²) plus rounding ≈ 1e-7): a = d log m/dτ and
    /// g² = d(s²)/dτ − 2a·s², at interior times.
    #[test]
    fn drift_and_diffusion_agree_with_the_marginal() {
        let h = 1e-6;
        for sde in all_sdes() {
            for &tau in &[0.01, 0.2, 0.5, 0.77, 0.95] {
                let (mp, sp) = sde.mean_std(tau + h);
                let (mm, sm) = sde.mean_std(tau - h);
                let (m, s) = sde.mean_std(tau);
                let a_fd = (mp.ln() - mm.ln()) / (2.0 * h);
                let a = sde.drift_coef(tau);
                assert!(
                    (a - a_fd).abs() < 1e-6 * (1.0 + a.abs()),
                    "{} τ={tau}: a {a} vs {a_fd}",
                    sde.name()
                );
                let g2_fd = (sp * sp - sm * sm) / (2.0 * h) - 2.0 * a * s * s;
                let g2 = sde.diffusion(tau).powi(2);
                assert!(
                    (g2 - g2_fd).abs() < 1e-5 * (1.0 + g2),
                    "{} τ={tau}: g² {g2} vs {g2_fd}",
                    sde.name()
                );
                assert!(m > 0.0 && s > 0.0);
            }
        }
    }

    /// VP marginal in closed form (the reference's α(t) = exp(−¼t²(β₁−β₀) − ½tβ₀),
    /// σ² = 1 − α²), sub-VP σ = 1 − α², VE σ = σ_min (σ_max/σ_min)^τ; priors match at T.
    #[test]
    fn marginals_match_closed_forms() {
        let vp = VpSde::default();
        let sub = SubVpSde::default();
        let ve = VeSde::new(0.01, 10.0, 1e-5).unwrap();
        for &t in &[1e-5, 1e-3, 0.3, 1.0] {
            // reference_dsm.py: σ = sqrt(−expm1(2 log α)).
            let la: f64 = -0.25 * t * t * 19.9 - 0.5 * t * 0.1;
            let (m, s) = vp.mean_std(t);
            assert!(
                (m - la.exp()).abs() < 1e-15
                    && (s / (-(2.0 * la).exp_m1()).sqrt() - 1.0).abs() < 1e-14
            );
            let (m2, s2) = sub.mean_std(t);
            assert!((m2 - m).abs() < 1e-15 && (s2 / -(2.0 * la).exp_m1() - 1.0).abs() < 1e-14);
            let (m3, s3) = ve.mean_std(t);
            assert!(m3 == 1.0 && (s3 - 0.01 * 1000f64.powf(t)).abs() < 1e-12 * s3);
        }
        // The prior is close to the marginal at T: VP m(1) = e^{-5.025} ≈ 6.6e-3.
        assert!(vp.mean_std(1.0).0 < 7e-3 && (vp.mean_std(1.0).1 - 1.0).abs() < 1e-4);
        assert_eq!(ve.prior_std(), 10.0);
    }

    /// Reverse drift and PF-ODE field against the formula f − λ g² s with the exact score of a
    /// Gaussian N(0, v): p_τ = N(0, m²v + s²), s(x) = −x/(m²v + s²); the PF-ODE divergence is
    /// d·(a + ½ g²/(m²v + s²)).
    #[test]
    fn reverse_and_probability_flow_fields() {
        let v = 0.5;
        let mix: GaussianMixture = crate::field::analytic::Gaussian::isotropic(vec![0.0, 0.0], v)
            .unwrap()
            .into();
        for sde in all_sdes() {
            let score = MixtureScore::new(mix.clone(), sde.clone());
            let x = matrix(vec![0.3, -1.0, 2.0, 0.5], 2, 2, &cpu(), DType::F64);
            let tau = 0.4;
            let (m, s) = sde.mean_std(tau);
            let var = m * m * v + s * s;
            let (a, g2) = (sde.drift_coef(tau), sde.diffusion(tau).powi(2));
            let rev = ReverseDrift::reverse_sde(sde.clone(), &score);
            let pf = ReverseDrift::probability_flow(sde.clone(), &score);
            let (r, p) = (to_vec(&rev.eval_at(&x, tau)), to_vec(&pf.eval_at(&x, tau)));
            for (i, xi) in to_vec(&x).iter().enumerate() {
                assert!((r[i] - (a * xi + g2 * xi / var)).abs() < 1e-10 * (1.0 + r[i].abs()));
                assert!((p[i] - (a * xi + 0.5 * g2 * xi / var)).abs() < 1e-10 * (1.0 + p[i].abs()));
            }
            assert!(pf.exact_jvp());
            let (_, div) = pf.divergence(&x, &times_like(&x, tau));
            let expect = 2.0 * (a + 0.5 * g2 / var);
            for dv in to_vec(&div) {
                assert!(
                    (dv - expect).abs() < 1e-9 * (1.0 + expect.abs()),
                    "{}: {dv} vs {expect}",
                    sde.name()
                );
            }
        }
    }

    /// The flow view: t = 1 − τ/T round-trips; α̇, σ̇ equal central differences of α, σ in t.
    #[test]
    fn sde_path_is_the_marginal_in_flow_time() {
        let h = 1e-6;
        for sde in all_sdes() {
            let path = SdePath(sde.clone());
            for &t in &[0.1, 0.5, 0.9] {
                assert!((path.flow_time(path.diffusion_time(t)) - t).abs() < 1e-15);
                assert_eq!(path.alpha(t), sde.mean_std(1.0 - t).0);
                let da = (path.alpha(t + h) - path.alpha(t - h)) / (2.0 * h);
                let ds = (path.sigma(t + h) - path.sigma(t - h)) / (2.0 * h);
                assert!(
                    (path.d_alpha(t) - da).abs() < 1e-6 * (1.0 + da.abs()),
                    "{} t={t}",
                    sde.name()
                );
                assert!(
                    (path.d_sigma(t) - ds).abs() < 1e-6 * (1.0 + ds.abs()),
                    "{} t={t}",
                    sde.name()
                );
            }
        }
    }

    /// Prior log-density against the closed form, and 20,000 prior draws have variance
    /// s_prior² within 4 SE (SE of a sample variance of normals: s²·√(2/n), n = 40,000 values).
    #[test]
    fn prior_sampling_and_density() {
        for sde in all_sdes() {
            let x = sde.prior_sample(20_000, 2, &cpu(), DType::F64, &mut rng(3));
            let v = to_vec(&x);
            let var = v.iter().map(|a| a * a).sum::<f64>() / v.len() as f64;
            let s2 = sde.prior_std().powi(2);
            assert!(
                (var - s2).abs() < 4.0 * s2 * (2.0 / v.len() as f64).sqrt(),
                "{}: {var} vs {s2}",
                sde.name()
            );
            let pt = matrix(vec![0.5, -1.5], 1, 2, &cpu(), DType::F64);
            let lp = to_vec(&sde.prior_log_density(&pt))[0];
            let expect = -(2.0 * std::f64::consts::PI * s2).ln() - (0.25 + 2.25) / (2.0 * s2);
            assert!((lp - expect).abs() < 1e-12, "{}", sde.name());
        }
    }

    /// The exact transition composes with the marginal: s(to)² = r² s(from)² + G², and for VE
    /// it is SMLD's σ(to)² − σ(from)².
    #[test]
    fn transition_matches_marginals() {
        for sde in all_sdes() {
            let (a, b) = (0.3, 0.31);
            let (r, g2) = sde.transition(a, b);
            let (ma, sa) = sde.mean_std(a);
            let (mb, sb) = sde.mean_std(b);
            assert!((r * ma - mb).abs() < 1e-14 && (r * r * sa * sa + g2 - sb * sb).abs() < 1e-14);
        }
        let ve = VeSde::default();
        let (r, g2) = ve.transition(0.2, 0.4);
        assert!(r == 1.0 && (g2 - (ve.sigma(0.4).powi(2) - ve.sigma(0.2).powi(2))).abs() < 1e-12);
    }

    #[test]
    fn configs_parse_serialise_and_validate() {
        for name in SdeConfig::NAMES {
            let cfg: SdeConfig = name.parse().unwrap();
            let json = serde_json::to_string(&cfg).unwrap();
            let back: SdeConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(cfg, back);
            assert!(cfg.build().is_ok());
        }
        let e = "vq".parse::<SdeConfig>().unwrap_err().to_string();
        assert!(e.contains("unknown SDE 'vq'") && e.contains("subvp"), "{e}");
        let bad = [
            SdeConfig::Ve {
                sigma_min: 1.0,
                sigma_max: 0.5,
                t_min: 1e-5,
            },
            SdeConfig::Ve {
                sigma_min: 0.0,
                sigma_max: 5.0,
                t_min: 1e-5,
            },
            SdeConfig::Vp {
                schedule: BetaSchedule::Linear {
                    beta_min: 0.1,
                    beta_max: 20.0,
                },
                t_min: 0.0,
            },
            SdeConfig::Vp {
                schedule: BetaSchedule::Linear {
                    beta_min: -1.0,
                    beta_max: 20.0,
                },
                t_min: 1e-5,
            },
            SdeConfig::SubVp {
                schedule: BetaSchedule::Cosine {
                    s: 0.008,
                    max_beta: 0.0,
                },
                t_min: 1e-5,
            },
        ];
        for b in bad {
            assert!(b.build().is_err(), "{b:?} should be rejected");
        }
        let json = r#"{"kind":"ve","sigma_min":0.01,"sigma_max":5.0}"#;
        let cfg: SdeConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.build().unwrap().t_min(), 1e-5);
    }
}
