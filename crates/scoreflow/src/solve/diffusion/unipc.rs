//! UniPC (Zhao et al. 2023): a multistep predictor (UniP-p) followed, once the next field
//! evaluation is available, by a corrector (UniC) that reuses that evaluation — so order p + 1
//! at one field evaluation per step. Exactly diffusers' `UniPCMultistepScheduler` (its default
//! is `solver_type="bh2"`, `predict_x0=True`, order 2).
//!
//! With h = λ_t − λ_{s₀}, (scale, mult, ĥ) of [`SolverTarget`], the predictions m₀ (at s₀) and
//! mᵢ at earlier levels sᵢ, rᵢ = (λ_{sᵢ} − λ_{s₀})/h, Dᵢ = (mᵢ − m₀)/rᵢ (i = 1 … p − 1), and
//! B(h) = ĥ (bh1) or e^{ĥ} − 1 (bh2):
//! * φ-recursion: hφ₁ = e^{ĥ} − 1, φ̂₁ = hφ₁/ĥ − 1, bᵢ = i!·φ̂ᵢ/B(h), φ̂ᵢ₊₁ = φ̂ᵢ/ĥ − 1/(i+1)!;
//!   R = [rⱼ^{i−1}]ᵢⱼ with r_p = 1;
//! * predictor UniP-p: ρ solves R[:p−1, :p−1]·ρ = b[:p−1] (ρ = ½ for p = 2),
//!   x_t = scale·x − mult·hφ₁·m₀ − mult·B(h)·Σᵢ ρᵢ Dᵢ;
//! * corrector UniC-p at t with the new prediction m_t: ρ solves R·ρ = b (ρ = ½ for p = 1),
//!   x_t^c = scale·x_{s₀} − mult·hφ₁·m₀ − mult·B(h)·(Σᵢ ρᵢ Dᵢ + ρ_p·(m_t − m₀)).
//!
//! The corrected x_t is the state for the next predictor; the stored prediction m_t is the
//! one evaluated at the uncorrected x_t (as diffusers). Orders: step i uses
//! min(p, i + 1, N − i) (the last with `lower_order_final`, which diffusers applies at every N);
//! the corrector of step i uses the predictor order of step i − 1. A step that lands on the
//! clean level is first order (x̂₀) and is not corrected (no evaluation follows).

use std::collections::VecDeque;
use std::sync::Arc;

use super::denoiser::{Denoiser, ExpStep, SolverTarget};
use super::{check_dim, finish};
use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::linalg::solve;
use crate::schedule::{Grid, Level, NoiseSchedule, TimestepFamily};
use crate::solve::sampler::{Sample, Sampler};
use crate::tensor::{Rng, Tensor};

/// UniPC's B(h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UniPcVariant {
    /// B(h) = ĥ.
    Bh1,
    /// B(h) = e^{ĥ} − 1 (diffusers' default).
    #[default]
    Bh2,
}

/// The UniPC multistep predictor–corrector.
#[derive(Debug, Clone)]
pub struct UniPc {
    /// The noise schedule (and the field's time axis).
    pub schedule: Arc<dyn NoiseSchedule>,
    /// The time-step grid.
    pub grid: Grid,
    /// Predictor order p ∈ {1, 2, 3} (the corrector raises it by one).
    pub order: usize,
    /// Data (diffusers' `predict_x0=True`) or noise prediction.
    pub target: SolverTarget,
    /// B(h).
    pub variant: UniPcVariant,
    /// Use order min(p, N − i) at step i (diffusers' `lower_order_final`).
    pub lower_order_final: bool,
}

/// The coefficients rᵢ, ρ and the shared first-order part of one UniP / UniC update.
struct UniCoefs {
    e: ExpStep,
    phi1: f64,
    bh: f64,
    rks: Vec<f64>,
    b: Vec<f64>,
}

impl UniPc {
    /// rᵢ for the `k − 1` history levels before s₀ and the vector b of length k.
    fn coefs(&self, s0: &Level, t: &Level, earlier: &[f64], k: usize) -> UniCoefs {
        let e = self.target.step(s0, t);
        let mut rks: Vec<f64> = earlier
            .iter()
            .take(k - 1)
            .map(|l| (l - s0.lambda()) / e.h)
            .collect();
        rks.push(1.0);
        let phi1 = e.hh.exp_m1();
        let bh = match self.variant {
            UniPcVariant::Bh1 => e.hh,
            UniPcVariant::Bh2 => phi1,
        };
        let mut phik = phi1 / e.hh - 1.0;
        let mut fact = 1.0;
        let mut b = Vec::with_capacity(k);
        for i in 1..=k {
            b.push(phik * fact / bh);
            fact *= (i + 1) as f64;
            phik = phik / e.hh - 1.0 / fact;
        }
        UniCoefs {
            e,
            phi1,
            bh,
            rks,
            b,
        }
    }

    /// ρ solving R[:m, :m] ρ = b[:m] with R = [rⱼ^{i−1}].
    fn rhos(c: &UniCoefs, m: usize) -> Result<Vec<f64>> {
        let r: Vec<f64> = (0..m)
            .flat_map(|i| (0..m).map(move |j| (i, j)))
            .map(|(i, j)| c.rks[j].powi(i as i32))
            .collect();
        solve(&r, &c.b[..m]).ok_or_else(|| {
            Error::Solver("UniPC: singular order conditions (repeated noise levels?)".into())
        })
    }

    /// scale·x − mult·hφ₁·m₀ − mult·B(h)·(Σ ρᵢ Dᵢ [+ ρ_last·(m_t − m₀)]).
    fn update(
        c: &UniCoefs,
        x: &Tensor<2>,
        m0: &Tensor<2>,
        hist: &[Tensor<2>],
        rhos: &[f64],
        last: Option<&Tensor<2>>,
    ) -> Tensor<2> {
        let mut out = x.clone() * c.e.scale - m0.clone() * (c.e.mult * c.phi1);
        let w = -c.e.mult * c.bh;
        for (i, (m, rho)) in hist.iter().zip(rhos).enumerate() {
            out = out + (m.clone() - m0.clone()) * (w * rho / c.rks[i]);
        }
        if let Some(mt) = last {
            out = out + (mt.clone() - m0.clone()) * (w * rhos[rhos.len() - 1]);
        }
        out
    }
}

impl Sampler for UniPc {
    fn name(&self) -> &'static str {
        "unipc"
    }

    fn sample(&self, score: &dyn VectorField, x: Tensor<2>, _rng: &mut Rng) -> Result<Sample> {
        check_dim(score, &x)?;
        if !(1..=3).contains(&self.order) {
            return Err(Error::InvalidInput(format!(
                "UniPC order must be 1, 2 or 3, got {}",
                self.order
            )));
        }
        let levels = self
            .grid
            .levels(&*self.schedule, TimestepFamily::Multistep)?;
        let n = levels.len() - 1;
        let den = Denoiser::new(score, &*self.schedule);
        // (prediction, λ) newest first; the previous step's (x_{s₀}, order).
        let mut hist: VecDeque<(Tensor<2>, f64)> = VecDeque::with_capacity(self.order + 1);
        let mut last: Option<(Tensor<2>, usize)> = None;
        let mut x = x;
        for i in 0..n {
            let (s, t) = (&levels[i], &levels[i + 1]);
            let d = den.at(&x, s);
            let m = self.target.of(&d);
            if let Some((x_prev, k)) = last.take() {
                // UniC at s with the new prediction m; hist[0] is the previous level's.
                let s0 = &levels[i - 1];
                let earlier: Vec<f64> = hist.iter().skip(1).map(|h| h.1).collect();
                let c = self.coefs(s0, s, &earlier, k);
                let rhos = if k == 1 {
                    vec![0.5]
                } else {
                    Self::rhos(&c, k)?
                };
                let older: Vec<Tensor<2>> = hist
                    .iter()
                    .skip(1)
                    .take(k - 1)
                    .map(|h| h.0.clone())
                    .collect();
                x = Self::update(&c, &x_prev, &hist[0].0, &older, &rhos, Some(&m));
            }
            if t.is_clean() {
                x = d.x0 * t.alpha;
                continue;
            }
            hist.push_front((m, s.lambda()));
            hist.truncate(self.order);
            let mut k = self.order;
            if self.lower_order_final {
                k = k.min(n - i);
            }
            k = k.min(i + 1).min(hist.len());
            let earlier: Vec<f64> = hist.iter().skip(1).map(|h| h.1).collect();
            let c = self.coefs(s, t, &earlier, k);
            let rhos = match k {
                1 => vec![],
                2 => vec![0.5],
                _ => Self::rhos(&c, k - 1)?,
            };
            let older: Vec<Tensor<2>> = hist
                .iter()
                .skip(1)
                .take(k - 1)
                .map(|h| h.0.clone())
                .collect();
            let next = Self::update(&c, &x, &hist[0].0, &older, &rhos, None);
            last = Some((x, k));
            x = next;
        }
        finish(self.name(), &den, &self.grid, &levels, x)
    }
}
