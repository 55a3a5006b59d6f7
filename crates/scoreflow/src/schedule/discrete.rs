//! DDPM's discrete noise schedule exactly as diffusers builds it: betas βᵢ (i = 0 … N−1),
//! ᾱᵢ = Πⱼ≤ᵢ (1 − βⱼ), and between training timesteps diffusers' own interpolation
//! (`EulerDiscreteScheduler`: np.interp of σ̃ᵢ = √((1 − ᾱᵢ)/ᾱᵢ) over i).

use super::NoiseSchedule;
use crate::error::{Error, Result};
use crate::path::PerturbationKernel;

/// How the betas are laid out over the N training timesteps (diffusers' `beta_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaTable {
    /// βᵢ = β_start + (β_end − β_start)·i/(N − 1) (DDPM; diffusers' `linear`).
    #[default]
    Linear,
    /// βᵢ = (√β_start + (√β_end − √β_start)·i/(N − 1))² (latent diffusion; `scaled_linear`).
    ScaledLinear,
    /// βᵢ = min(1 − ᾱ((i+1)/N)/ᾱ(i/N), 0.999), ᾱ(u) = cos²((u + 0.008)/1.008·π/2) (Nichol &
    /// Dhariwal; `squaredcos_cap_v2`; β_start/β_end unused).
    #[serde(rename = "squaredcos_cap_v2")]
    Cosine,
}

/// A discrete DDPM schedule: ᾱᵢ for training timesteps i = 0 … N−1, viewed as a continuous
/// schedule on t ∈ [0, N−1] by diffusers' interpolation σ̃(t) = np.interp(t, i, σ̃ᵢ) with
/// σ̃ᵢ = √((1 − ᾱᵢ)/ᾱᵢ); then α_t = 1/√(1 + σ̃²), σ_t = σ̃ α_t (at integer t: √ᾱ_t, √(1 − ᾱ_t)).
///
/// Sampling starts at t = N − 1 from N(0, I); t = 0 is the least noisy training level
/// (σ_0 = √β₀), and the clean data (diffusers' `final_alpha_cumprod = 1`, `final_sigmas_type =
/// "zero"`) is [`super::Level::clean`].
///
/// ᾱ is accumulated in f64; diffusers does it in f32, so tables agree to ~1e-6 relative.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteSchedule {
    table: BetaTable,
    beta_start: f64,
    beta_end: f64,
    alphas_cumprod: Vec<f64>,
    sigmas_ve: Vec<f64>,
}

impl Default for DiscreteSchedule {
    /// diffusers' default: `linear`, β 1e-4 → 0.02, 1000 timesteps (DDPM).
    fn default() -> Self {
        Self::new(BetaTable::Linear, 1e-4, 0.02, 1000).expect("valid default")
    }
}

impl DiscreteSchedule {
    /// The table with `steps` training timesteps; errors unless steps ≥ 2 and
    /// 0 < β_start ≤ β_end < 1 (linear kinds).
    pub fn new(table: BetaTable, beta_start: f64, beta_end: f64, steps: usize) -> Result<Self> {
        if steps < 2 {
            return Err(Error::InvalidInput(format!(
                "a discrete schedule needs at least 2 training timesteps, got {steps}"
            )));
        }
        if table != BetaTable::Cosine
            && !(beta_start > 0.0 && beta_end >= beta_start && beta_end < 1.0)
        {
            return Err(Error::InvalidInput(format!(
                "discrete betas need 0 < beta_start <= beta_end < 1 (got {beta_start}, {beta_end})"
            )));
        }
        let n = steps as f64 - 1.0;
        let betas: Vec<f64> = (0..steps)
            .map(|i| {
                let u = i as f64 / n;
                match table {
                    BetaTable::Linear => beta_start + (beta_end - beta_start) * u,
                    BetaTable::ScaledLinear => {
                        let r = beta_start.sqrt() + (beta_end.sqrt() - beta_start.sqrt()) * u;
                        r * r
                    }
                    BetaTable::Cosine => {
                        let abar = |u: f64| {
                            ((u + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                                .cos()
                                .powi(2)
                        };
                        let (u1, u2) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
                        (1.0 - abar(u2) / abar(u1)).min(0.999)
                    }
                }
            })
            .collect();
        let mut acc = 1.0;
        let alphas_cumprod: Vec<f64> = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        let sigmas_ve = alphas_cumprod
            .iter()
            .map(|a| ((1.0 - a) / a).sqrt())
            .collect();
        Ok(Self {
            table,
            beta_start,
            beta_end,
            alphas_cumprod,
            sigmas_ve,
        })
    }

    /// Stable Diffusion's table: `scaled_linear`, β 0.00085 → 0.012, 1000 timesteps.
    pub fn scaled_linear() -> Self {
        Self::new(BetaTable::ScaledLinear, 0.00085, 0.012, 1000).expect("valid table")
    }

    /// The beta layout.
    pub fn table(&self) -> BetaTable {
        self.table
    }

    /// (β_start, β_end).
    pub fn beta_range(&self) -> (f64, f64) {
        (self.beta_start, self.beta_end)
    }

    /// ᾱᵢ, i = 0 … N−1.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// σ̃(t) = np.interp(t, [0 … N−1], σ̃ᵢ): linear between timesteps, constant outside.
    pub fn sigma_ve(&self, t: f64) -> f64 {
        let s = &self.sigmas_ve;
        let last = s.len() - 1;
        if t.is_nan() {
            return f64::NAN;
        }
        if t <= 0.0 {
            return s[0];
        }
        if t >= last as f64 {
            return s[last];
        }
        let i = t.floor() as usize;
        let w = t - i as f64;
        s[i] + w * (s[i + 1] - s[i])
    }
}

impl PerturbationKernel for DiscreteSchedule {
    /// (1/√(1 + σ̃(t)²), σ̃(t)/√(1 + σ̃(t)²)).
    fn mean_std(&self, t: f64) -> (f64, f64) {
        let s = self.sigma_ve(t);
        let a = 1.0 / (1.0 + s * s).sqrt();
        (a, s * a)
    }
}

impl NoiseSchedule for DiscreteSchedule {
    fn schedule_name(&self) -> &'static str {
        "ddpm"
    }
    /// The last training timestep N − 1.
    fn t_noise(&self) -> f64 {
        (self.alphas_cumprod.len() - 1) as f64
    }
    /// Timestep 0 (σ = √β₀).
    fn t_end(&self) -> f64 {
        0.0
    }
    fn t_data(&self) -> f64 {
        0.0
    }
    fn start_std(&self) -> f64 {
        1.0
    }
    fn train_timesteps(&self) -> Option<usize> {
        Some(self.alphas_cumprod.len())
    }

    /// Exact inverse of the piecewise-linear σ̃: λ = −ln σ̃.
    fn time_of_lambda(&self, lambda: f64) -> f64 {
        let target = (-lambda).exp();
        let s = &self.sigmas_ve;
        if target <= s[0] {
            return 0.0;
        }
        let last = s.len() - 1;
        if target >= s[last] {
            return last as f64;
        }
        // First i with s[i + 1] >= target (σ̃ is increasing).
        let i = s.partition_point(|v| *v < target) - 1;
        i as f64 + (target - s[i]) / (s[i + 1] - s[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ᾱ against diffusers 0.42 (`DDPMScheduler(beta_schedule=…).alphas_cumprod`, f32) at a
    /// few timesteps, to 2e-6 relative (their f32 accumulation over ≤ 1000 factors; the
    /// cosine table's last entry, 2e-9, is a difference of f32 numbers near 1, so 1e-3), for
    /// `linear`, `scaled_linear` and `squaredcos_cap_v2`; at integer t the kernel is
    /// (√ᾱ, √(1 − ᾱ)).
    #[test]
    fn tables_match_diffusers() {
        let lin = DiscreteSchedule::default();
        for (t, want) in [
            (0usize, 0.999_899_983_4_f64),
            (1, 0.999_780_058_9),
            (499, 0.078_587_234_0),
            (999, 4.035_830_352e-5),
        ] {
            let got = lin.alphas_cumprod()[t];
            assert!(
                (got / want - 1.0).abs() < 2e-6,
                "linear ᾱ[{t}] {got} vs {want}"
            );
            let (a, s) = lin.mean_std(t as f64);
            assert!((a - got.sqrt()).abs() < 1e-12 && (s - (1.0 - got).sqrt()).abs() < 1e-12);
        }
        let sl = DiscreteSchedule::scaled_linear();
        for (t, want) in [(0usize, 0.999_149_978_2_f64), (999, 4.660_095_088e-3)] {
            let got = sl.alphas_cumprod()[t];
            assert!(
                (got / want - 1.0).abs() < 2e-6,
                "scaled ᾱ[{t}] {got} vs {want}"
            );
        }
        let cos = DiscreteSchedule::new(BetaTable::Cosine, 0.0, 0.0, 1000).unwrap();
        for (t, want, tol) in [
            (0usize, 0.999_958_693_98_f64, 2e-6),
            (500, 0.492_285_043_0, 2e-6),
            (999, 2.428_734_991e-9, 1e-3),
        ] {
            let got = cos.alphas_cumprod()[t];
            assert!(
                (got / want - 1.0).abs() < tol,
                "cosine ᾱ[{t}] {got} vs {want}"
            );
        }
    }

    /// σ̃ interpolates linearly between timesteps and clamps outside; time_of_lambda inverts it
    /// exactly (to 1e-9 in t) at integer and fractional times.
    #[test]
    fn interpolation_and_inverse() {
        let d = DiscreteSchedule::default();
        let (s3, s4) = (d.sigma_ve(3.0), d.sigma_ve(4.0));
        assert!((d.sigma_ve(3.25) - (0.75 * s3 + 0.25 * s4)).abs() < 1e-15);
        assert_eq!(d.sigma_ve(-2.0), d.sigma_ve(0.0));
        assert_eq!(d.sigma_ve(1e4), d.sigma_ve(999.0));
        for t in [0.0, 0.5, 3.25, 100.0, 577.7, 998.9, 999.0] {
            let back = d.time_of_lambda(d.lambda(t));
            assert!((back - t).abs() < 1e-9, "{t} → {back}");
        }
        assert!(DiscreteSchedule::new(BetaTable::Linear, 0.0, 0.02, 1000).is_err());
        assert!(DiscreteSchedule::new(BetaTable::Linear, 1e-4, 0.02, 1).is_err());
    }
}
