//! Multistep DPM-Solver (Lu et al. 2022a, noise prediction) and DPM-Solver++ (Lu et al. 2022b,
//! data prediction), orders 1–3, exactly as diffusers' `DPMSolverMultistepScheduler`
//! (`solver_type="midpoint"`): one field evaluation per step, the history of predictions kept
//! inside the sampler.
//!
//! With h = λ_t − λ_{s₀}, h₀ = λ_{s₀} − λ_{s₁}, h₁ = λ_{s₁} − λ_{s₂}, r₀ = h₀/h, r₁ = h₁/h, the
//! integrated predictions m₀, m₁, m₂ at the last three levels s₀, s₁, s₂ and (scale, mult, ĥ) of
//! [`SolverTarget`] (data: σ_t/σ_{s₀}, α_t, −h; noise: α_t/α_{s₀}, σ_t, h):
//! * order 1 (= DDIM): x_t = scale·x − mult·(e^{ĥ} − 1)·m₀;
//! * order 2 (2M, midpoint): D₁ = (m₀ − m₁)/r₀, x_t = [order 1] − ½·mult·(e^{ĥ} − 1)·D₁;
//! * order 3 (3M): D₁₀ = (m₀ − m₁)/r₀, D₁₁ = (m₁ − m₂)/r₁, D₁ = D₁₀ + r₀/(r₀ + r₁)·(D₁₀ − D₁₁),
//!   D₂ = (D₁₀ − D₁₁)/(r₀ + r₁), x_t = [order 1] + mult·(1 − (e^{ĥ} − 1)/ĥ)·D₁
//!   − 2·mult·((e^{ĥ} − 1 − ĥ)/ĥ² − ½)·D₂.
//!
//! **The factor 2 in the third-order term is not in diffusers, DPM-Solver's reference code or
//! k-diffusion's `dpmpp_3m_sde`**, which use −mult·((e^{ĥ} − 1 − ĥ)/ĥ² − ½)·D₂. Their
//! divided difference is D₂ ≈ h²·m''/2 (for m = λ² on a uniform grid D₂ = h² exactly), while
//! the Taylor term of the exact solution x_t = scale·x_s + mult·∫ e^{…}m dλ is
//! mult·h³φ₃(ĥ)·m'' = 2·mult·h·φ₃(ĥ)·D₂ with their (e^{ĥ} − 1 − ĥ)/ĥ² − ½ = −h·φ₃(ĥ) (data
//! prediction); DPM-Solver's singlestep `taylor` variant defines D₂ = 2(D₁₁ − D₁₀)/(r₂ − r₁)
//! ≈ h²m'' and is consistent. Without the factor the local error is O(h³) and the method
//! is second order (observed slope 2.3 against the exact map of a Gaussian; 3.0–3.3 with it).
//!
//! Order schedule (diffusers'): step i uses order min(k, i + 1) (warm-up); with
//! `lower_order_final` and fewer than 15 steps the last step is first order and the one before
//! at most second order; a step that lands on the clean level (σ = 0, λ = ∞) is always first
//! order, which there returns x̂₀.

use std::collections::VecDeque;
use std::sync::Arc;

use super::denoiser::{Denoiser, SolverTarget};
use super::{check_dim, finish};
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::schedule::{Grid, NoiseSchedule, TimestepFamily};
use crate::solve::sampler::{Sample, Sampler};
use crate::tensor::{Rng, Tensor};

/// Multistep DPM-Solver(++) of order 1–3.
#[derive(Debug, Clone)]
pub struct DpmSolver {
    /// The noise schedule (and the field's time axis).
    pub schedule: Arc<dyn NoiseSchedule>,
    /// The time-step grid.
    pub grid: Grid,
    /// Noise prediction (DPM-Solver) or data prediction (DPM-Solver++).
    pub target: SolverTarget,
    /// Order k ∈ {1, 2, 3}.
    pub order: usize,
    /// Lower the order of the last steps when there are fewer than 15 (diffusers' default).
    pub lower_order_final: bool,
}

impl DpmSolver {
    /// The order of step i of n (see the module docs).
    pub(crate) fn step_order(order: usize, i: usize, n: usize, lower_order_final: bool) -> usize {
        let mut k = order.min(i + 1);
        if lower_order_final && n < 15 {
            if i + 1 == n {
                k = 1;
            } else if i + 2 == n {
                k = k.min(2);
            }
        }
        k
    }
}

impl Sampler for DpmSolver {
    fn name(&self) -> &'static str {
        match (self.target, self.order) {
            (SolverTarget::Noise, _) => "dpm-solver",
            (SolverTarget::Data, 1) => "dpmpp-1m",
            (SolverTarget::Data, 2) => "dpmpp-2m",
            (SolverTarget::Data, _) => "dpmpp-3m",
        }
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, _rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        if !(1..=3).contains(&self.order) {
            return Err(Error::InvalidInput(format!(
                "DPM-Solver order must be 1, 2 or 3, got {}",
                self.order
            )));
        }
        let levels = self
            .grid
            .levels(&*self.schedule, TimestepFamily::Multistep)?;
        let n = levels.len() - 1;
        let den = Denoiser::new(score, &*self.schedule);
        // (m, λ) of the last `order` levels, newest first.
        let mut hist: VecDeque<(Tensor<2>, f64)> = VecDeque::with_capacity(self.order);
        let mut x = x;
        for i in 0..n {
            let (s, t) = (&levels[i], &levels[i + 1]);
            let d = den.at(&x, s);
            if t.is_clean() {
                x = d.x0 * t.alpha;
                continue;
            }
            hist.push_front((self.target.of(&d), s.lambda()));
            hist.truncate(self.order);
            let k = Self::step_order(self.order, i, n, self.lower_order_final).min(hist.len());
            let e = self.target.step(s, t);
            let phi = e.hh.exp_m1();
            let m0 = &hist[0].0;
            let mut next = x.clone() * e.scale - m0.clone() * (e.mult * phi);
            if k >= 2 {
                let r0 = (hist[0].1 - hist[1].1) / e.h;
                let d10 = (m0.clone() - hist[1].0.clone()) / r0;
                if k == 2 {
                    next = next - d10 * (0.5 * e.mult * phi);
                } else {
                    let r1 = (hist[1].1 - hist[2].1) / e.h;
                    let d11 = (hist[1].0.clone() - hist[2].0.clone()) / r1;
                    let diff = d10.clone() - d11;
                    let d1 = d10 + diff.clone() * (r0 / (r0 + r1));
                    let d2 = diff / (r0 + r1);
                    next = next + d1 * (e.mult * (1.0 - phi / e.hh))
                        - d2 * (2.0 * e.mult * ((phi - e.hh) / (e.hh * e.hh) - 0.5));
                }
            }
            x = next;
        }
        finish(self.name(), &den, &self.grid, &levels, x)
    }
}
