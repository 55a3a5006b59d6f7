//! Time-step grids for the few-step samplers: which noise levels N steps visit.
//!
//! Continuous spacings between t_noise and the end time ε (any schedule):
//! * [`Spacing::Time`]: uniform in t (DDIM's and Song et al.'s grid; DPM-Solver's
//!   `time_uniform`);
//! * [`Spacing::LogSnr`]: uniform in λ = ln(α/σ) (DPM-Solver's `logSNR`, recommended by Lu et
//!   al. for low-resolution data; diffusers' `use_lu_lambdas`);
//! * [`Spacing::Karras`]: σ̃ᵢ = (σ̃_max^{1/ρ} + i/(n−1)·(σ̃_min^{1/ρ} − σ̃_max^{1/ρ}))^ρ in
//!   σ̃ = σ/α (Karras et al. 2022, eq. 5; ρ = 7), i = 0 … n−1.
//!
//! Discrete spacings of diffusers (a [`super::DiscreteSchedule`] with T training timesteps),
//! written as each scheduler family writes them ([`TimestepFamily`]):
//! * `leading`: (0, r, 2r, …)·reversed + offset with r = T // n;
//! * `trailing`: round(T, T − T/n, …, > 0) − 1;
//! * `linspace`: np.linspace(0, T − 1, n) reversed.
//!
//! where n = N for DDIM and Euler/Heun, and n = N + 1 with the last (timestep 0) dropped for
//! the multistep solvers (DPM-Solver, UniPC); DDIM and the multistep family round to integers
//! (half to even, as numpy), Euler/Heun keep fractional timesteps.
//!
//! **Where the grid ends** ([`FinalStep`]): with N steps, the sampler evaluates the field at N
//! levels and then takes its last step to
//! * [`FinalStep::Zero`] — the clean data σ = 0 (diffusers' `final_sigmas_type="zero"` and
//!   `set_alpha_to_one=True`; k-diffusion's appended σ = 0): continuous grids then place the N
//!   evaluated levels from t_noise to ε inclusive (uniform in t: ε defaults to the N-th of N + 1
//!   uniform times to the data end, [`Grid::end_time`]);
//! * [`FinalStep::Eps`] — the end time ε itself (σ > 0; diffusers' `"sigma_min"`; DPM-Solver's
//!   default): continuous grids place N + 1 levels from t_noise to ε, the last not evaluated;
//! * [`FinalStep::Tweedie`] — as `Eps`, then x̂₀ = E[x₀ | x_ε] by Tweedie's formula (+1 NFE;
//!   DPM-Solver's `denoise_to_zero`).

use std::str::FromStr;

use super::{Level, NoiseSchedule};
use crate::error::{Error, Result};

/// How the evaluated noise levels are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Spacing {
    /// Uniform in the schedule's time t.
    #[cfg_attr(feature = "clap", value(alias = "uniform"))]
    Time,
    /// Uniform in λ = ln(α/σ).
    #[serde(rename = "logsnr")]
    #[cfg_attr(feature = "clap", value(name = "logsnr"))]
    LogSnr,
    /// Karras et al.'s ρ-spacing of σ̃ = σ/α (ρ from [`Grid::rho`]).
    Karras,
    /// diffusers' `leading` (discrete schedules).
    Leading,
    /// diffusers' `trailing` (discrete schedules).
    Trailing,
    /// diffusers' `linspace` (discrete schedules).
    Linspace,
}

impl Spacing {
    /// Every spacing, for help texts.
    pub const ALL: [Spacing; 6] = [
        Spacing::Time,
        Spacing::LogSnr,
        Spacing::Karras,
        Spacing::Leading,
        Spacing::Trailing,
        Spacing::Linspace,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Spacing::Time => "time",
            Spacing::LogSnr => "logsnr",
            Spacing::Karras => "karras",
            Spacing::Leading => "leading",
            Spacing::Trailing => "trailing",
            Spacing::Linspace => "linspace",
        }
    }

    /// True for diffusers' discrete timestep spacings.
    pub fn is_discrete(self) -> bool {
        matches!(
            self,
            Spacing::Leading | Spacing::Trailing | Spacing::Linspace
        )
    }
}

impl FromStr for Spacing {
    type Err = Error;
    /// "time" (or "uniform"), "logsnr", "karras", "leading", "trailing", "linspace".
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        if lower == "uniform" {
            return Ok(Spacing::Time);
        }
        Spacing::ALL
            .into_iter()
            .find(|k| k.name() == lower)
            .ok_or_else(|| {
                let names: Vec<_> = Spacing::ALL.iter().map(|k| k.name()).collect();
                Error::InvalidInput(format!(
                    "unknown time-step spacing '{s}' (choose one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// Where the last step lands (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum FinalStep {
    /// The last step lands on the clean data σ = 0 (no extra NFE).
    #[default]
    Zero,
    /// The last step lands on the end time ε (σ > 0).
    Eps,
    /// As `Eps`, then Tweedie's x̂₀ at ε (+1 NFE).
    Tweedie,
}

impl FinalStep {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            FinalStep::Zero => "zero",
            FinalStep::Eps => "eps",
            FinalStep::Tweedie => "tweedie",
        }
    }
}

impl FromStr for FinalStep {
    type Err = Error;
    /// "zero", "eps" (or "sigma_min"), "tweedie".
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "zero" => Ok(FinalStep::Zero),
            "eps" | "sigma_min" | "sigma-min" => Ok(FinalStep::Eps),
            "tweedie" => Ok(FinalStep::Tweedie),
            other => Err(Error::InvalidInput(format!(
                "unknown final step '{other}' (choose one of zero, eps, tweedie)"
            ))),
        }
    }
}

/// Which diffusers scheduler family's reading of `leading` / `trailing` / `linspace` to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepFamily {
    /// `DDIMScheduler`: n = N timesteps, rounded.
    Ddim,
    /// `DPMSolverMultistepScheduler`, `UniPCMultistepScheduler`: n = N + 1, last dropped,
    /// rounded.
    Multistep,
    /// `EulerDiscreteScheduler`, `HeunDiscreteScheduler`: n = N timesteps, fractional.
    Euler,
}

/// A sampler's time-step grid: N = `steps` steps spaced by `spacing`, ending as `final_step`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// Number of steps N (≥ 1).
    pub steps: usize,
    /// How the levels are spaced.
    pub spacing: Spacing,
    /// Where the last step lands.
    pub final_step: FinalStep,
    /// ρ of the Karras spacing (7).
    #[serde(default = "default_rho")]
    pub rho: f64,
    /// diffusers' `steps_offset` for `leading` (0).
    #[serde(default)]
    pub steps_offset: usize,
    /// End time ε; `None` uses the schedule's [`NoiseSchedule::t_end`].
    #[serde(default)]
    pub t_end: Option<f64>,
}

fn default_rho() -> f64 {
    7.0
}

/// numpy's `linspace(start, stop, num)`: start + i·((stop − start)/(num − 1)), last = stop.
fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    (0..num)
        .map(|i| {
            if i == num - 1 {
                stop
            } else {
                start + i as f64 * step
            }
        })
        .collect()
}

impl Grid {
    /// N steps of `spacing` ending as `final_step`, ρ = 7, no offset, the schedule's ε.
    pub fn new(steps: usize, spacing: Spacing, final_step: FinalStep) -> Self {
        Self {
            steps,
            spacing,
            final_step,
            rho: default_rho(),
            steps_offset: 0,
            t_end: None,
        }
    }

    /// The end time ε for `schedule`: [`Grid::t_end`] if set; else, for the continuous
    /// [`Spacing::Time`] with a final step to the data ([`FinalStep::Zero`]) and N ≥ 2,
    /// ε = t_noise + (t_data − t_noise)·(N − 1)/N — N + 1 uniform times from t_noise to the
    /// data end with the last (the data) not evaluated, diffusers' `linspace` on a continuous
    /// axis (VP: ε = T/N; a flow path: the flow sigmas) rather than a last step from the
    /// schedule's tiny ε; otherwise the schedule's [`NoiseSchedule::t_end`].
    pub fn end_time<N: NoiseSchedule + ?Sized>(&self, schedule: &N) -> f64 {
        if let Some(t) = self.t_end {
            return t;
        }
        let n = self.steps;
        if self.spacing == Spacing::Time && self.final_step == FinalStep::Zero && n >= 2 {
            let (t0, t1) = (schedule.t_noise(), schedule.t_data());
            return t0 + (t1 - t0) * (n - 1) as f64 / n as f64;
        }
        schedule.t_end()
    }

    /// Errors on N = 0, ρ ≤ 0, a discrete spacing on a continuous schedule, or ε outside
    /// [t_data, t_noise) with σ(ε) > 0.
    pub fn validate<N: NoiseSchedule + ?Sized>(&self, schedule: &N) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::InvalidInput("a sampler needs steps >= 1".into()));
        }
        if !(self.rho > 0.0 && self.rho.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "Karras ρ must be > 0, got {}",
                self.rho
            )));
        }
        if self.spacing.is_discrete() {
            let Some(train) = schedule.train_timesteps() else {
                return Err(Error::InvalidInput(format!(
                    "the '{}' spacing needs a discrete (DDPM) schedule; '{}' is continuous (use time, logsnr or karras)",
                    self.spacing.name(),
                    schedule.schedule_name()
                )));
            };
            if self.steps > train {
                return Err(Error::InvalidInput(format!(
                    "{} steps exceed the schedule's {train} training timesteps",
                    self.steps
                )));
            }
        }
        let eps = self.end_time(schedule);
        let (data, noise) = (schedule.t_data(), schedule.t_noise());
        // ε lies between the data end (included) and the start (excluded), on either
        // orientation of the time axis (SDE time runs down to the data, flow time up).
        let ok = (eps - data) * (noise - eps) >= 0.0 && eps != noise;
        if !(ok && schedule.mean_std(eps).1 > 0.0) {
            let range = if data <= noise {
                format!("[{data}, {noise})")
            } else {
                format!("({noise}, {data}]")
            };
            return Err(Error::InvalidInput(format!(
                "sampler end time ε must lie in {range} with σ(ε) > 0, got {eps}"
            )));
        }
        Ok(())
    }

    /// The diffusers timesteps (evaluated levels, noisiest first) for `family`.
    fn diffusers_timesteps(&self, train: usize, family: TimestepFamily) -> Vec<f64> {
        let n = self.steps;
        let t = train as f64;
        let round = |v: f64| v.round_ties_even();
        let offset = self.steps_offset as f64;
        let ts: Vec<f64> = match (family, self.spacing) {
            (TimestepFamily::Ddim, Spacing::Linspace) => np_linspace(0.0, t - 1.0, n)
                .into_iter()
                .rev()
                .map(round)
                .collect(),
            (TimestepFamily::Euler, Spacing::Linspace) => {
                np_linspace(0.0, t - 1.0, n).into_iter().rev().collect()
            }
            (TimestepFamily::Multistep, Spacing::Linspace) => {
                let mut v: Vec<f64> = np_linspace(0.0, t - 1.0, n + 1)
                    .into_iter()
                    .rev()
                    .map(round)
                    .collect();
                v.pop();
                v
            }
            (TimestepFamily::Ddim | TimestepFamily::Euler, Spacing::Leading) => {
                let ratio = (train / n) as f64;
                (0..n)
                    .rev()
                    .map(|i| round(i as f64 * ratio) + offset)
                    .collect()
            }
            (TimestepFamily::Multistep, Spacing::Leading) => {
                let ratio = (train / (n + 1)) as f64;
                (1..=n)
                    .rev()
                    .map(|i| round(i as f64 * ratio) + offset)
                    .collect()
            }
            (_, _) => {
                // trailing: np.arange(T, 0, −T/n) rounded, minus one.
                let ratio = t / n as f64;
                (0..n).map(|i| round(t - i as f64 * ratio) - 1.0).collect()
            }
        };
        ts
    }

    /// The levels visited: N evaluated levels (noisiest first) and then the level the last step
    /// lands on (see [`FinalStep`]); consecutive duplicates (equal λ) are merged, so the
    /// number of steps can be below N on a coarse discrete table.
    pub fn levels<N: NoiseSchedule + ?Sized>(
        &self,
        schedule: &N,
        family: TimestepFamily,
    ) -> Result<Vec<Level>> {
        self.validate(schedule)?;
        let n = self.steps;
        let t0 = schedule.t_noise();
        let eps = self.end_time(schedule);
        let zero = self.final_step == FinalStep::Zero;
        let mut levels: Vec<Level> = if self.spacing.is_discrete() {
            let train = schedule.train_timesteps().unwrap_or(0);
            let mut v: Vec<Level> = self
                .diffusers_timesteps(train, family)
                .into_iter()
                .map(|t| Level::at(schedule, t))
                .collect();
            if !zero {
                v.push(Level::at(schedule, eps));
            }
            v
        } else {
            // Zero: n points t_noise … ε inclusive, all evaluated; Eps: n + 1 points.
            let count = if zero { n } else { n + 1 };
            match self.spacing {
                Spacing::Time => np_linspace(t0, eps, count)
                    .into_iter()
                    .map(|t| Level::at(schedule, t))
                    .collect(),
                Spacing::LogSnr => {
                    let (l0, l1) = (schedule.lambda(t0), schedule.lambda(eps));
                    np_linspace(l0, l1, count)
                        .into_iter()
                        .enumerate()
                        .map(|(i, l)| match i {
                            0 => Level::at(schedule, t0),
                            i if i == count - 1 => Level::at(schedule, eps),
                            _ => Level::at_lambda(schedule, l),
                        })
                        .collect()
                }
                _ => {
                    let (smax, smin) = (
                        Level::at(schedule, t0).sigma_ve(),
                        Level::at(schedule, eps).sigma_ve(),
                    );
                    let (a, b) = (smax.powf(1.0 / self.rho), smin.powf(1.0 / self.rho));
                    np_linspace(0.0, 1.0, count)
                        .into_iter()
                        .enumerate()
                        .map(|(i, r)| match i {
                            0 => Level::at(schedule, t0),
                            i if i == count - 1 => Level::at(schedule, eps),
                            _ => {
                                let s = (a + r * (b - a)).powf(self.rho);
                                Level::at_lambda(schedule, -s.ln())
                            }
                        })
                        .collect()
                }
            }
        };
        if zero {
            levels.push(Level::clean());
        }
        levels.dedup_by(|b, a| a.lambda() >= b.lambda());
        if levels.len() < 2 {
            return Err(Error::InvalidInput(
                "the time-step grid has no step (start and end coincide)".into(),
            ));
        }
        Ok(levels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::DiscreteSchedule;
    use crate::sde::{EdmSde, VpSde};

    fn times(levels: &[Level]) -> Vec<f64> {
        levels.iter().map(|l| l.t).collect()
    }

    /// diffusers 0.42's `set_timesteps(n)` output for the default 1000-step table, printed by
    /// `bench/diffusers_compare.py --print-timesteps`: DDIM (leading), DPM-Solver/UniPC
    /// (linspace), Euler/Heun (linspace, fractional), and the trailing / other variants.
    #[test]
    fn diffusers_timesteps_match() {
        let d = DiscreteSchedule::default();
        let cases: Vec<(TimestepFamily, Spacing, usize, Vec<f64>)> = vec![
            (
                TimestepFamily::Ddim,
                Spacing::Leading,
                10,
                vec![900., 800., 700., 600., 500., 400., 300., 200., 100., 0.],
            ),
            (
                TimestepFamily::Ddim,
                Spacing::Trailing,
                6,
                vec![999., 832., 666., 499., 332., 166.],
            ),
            (
                TimestepFamily::Ddim,
                Spacing::Linspace,
                7,
                vec![999., 832., 666., 500., 333., 166., 0.],
            ),
            (
                TimestepFamily::Multistep,
                Spacing::Linspace,
                6,
                vec![999., 832., 666., 500., 333., 166.],
            ),
            (
                TimestepFamily::Multistep,
                Spacing::Leading,
                5,
                vec![830., 664., 498., 332., 166.],
            ),
            (
                TimestepFamily::Multistep,
                Spacing::Trailing,
                3,
                vec![999., 666., 332.],
            ),
            (
                TimestepFamily::Euler,
                Spacing::Linspace,
                4,
                vec![999., 666., 333., 0.],
            ),
            (
                TimestepFamily::Euler,
                Spacing::Leading,
                4,
                vec![750., 500., 250., 0.],
            ),
            (
                TimestepFamily::Euler,
                Spacing::Trailing,
                3,
                vec![999., 666., 332.],
            ),
        ];
        for (family, spacing, n, want) in cases {
            let g = Grid::new(n, spacing, FinalStep::Zero);
            let lv = g.levels(&d, family).unwrap();
            let got = times(&lv[..lv.len() - 1]);
            assert_eq!(got, want, "{family:?} {spacing:?} n={n}");
            assert!(lv.last().unwrap().is_clean());
        }
        // Euler's linspace keeps fractions: np.linspace(0, 999, 7)[::-1].
        let g = Grid::new(7, Spacing::Linspace, FinalStep::Zero);
        let lv = g.levels(&d, TimestepFamily::Euler).unwrap();
        assert_eq!(
            times(&lv[..7]),
            vec![999., 832.5, 666., 499.5, 333., 166.5, 0.]
        );
        // numpy rounds half to even: DDIM linspace with n = 7 has 166.5 → 166, 832.5 → 832.
    }

    /// Continuous grids: Zero puts N evaluated levels from T to ε inclusive then the clean
    /// level (uniform in t: ε = T/N, so all N + 1 times are uniform); Eps puts N + 1 levels. LogSnr levels are equally spaced in λ, Karras levels in
    /// σ̃^{1/ρ}, Time levels in t — to 1e-10.
    #[test]
    fn continuous_spacings() {
        let vp = VpSde::default();
        for spacing in [Spacing::Time, Spacing::LogSnr, Spacing::Karras] {
            let z = Grid::new(8, spacing, FinalStep::Zero)
                .levels(&vp, TimestepFamily::Multistep)
                .unwrap();
            assert_eq!(z.len(), 9);
            // Time ends at the 8th of 9 uniform times to the data (T/N = 1/8), the others at ε.
            let end = if spacing == Spacing::Time {
                0.125
            } else {
                1e-3
            };
            assert!(z[8].is_clean() && z[0].t == 1.0 && (z[7].t - end).abs() < 1e-15);
            let e = Grid::new(8, spacing, FinalStep::Eps)
                .levels(&vp, TimestepFamily::Multistep)
                .unwrap();
            assert_eq!(e.len(), 9);
            assert!(e[0].t == 1.0 && e[8].t == 1e-3 && !e[8].is_clean());
            let f = |l: &Level| match spacing {
                Spacing::Time => l.t,
                Spacing::LogSnr => l.lambda(),
                _ => l.sigma_ve().powf(1.0 / 7.0),
            };
            let d0 = f(&e[1]) - f(&e[0]);
            for w in e.windows(2) {
                assert!(
                    ((f(&w[1]) - f(&w[0])) - d0).abs() < 1e-10 * d0.abs().max(1.0),
                    "{spacing:?}"
                );
            }
        }
        // On EDM's SDE the Karras grid is the paper's σ grid from 80 to 0.002.
        let edm = EdmSde::default();
        let k = Grid::new(18, Spacing::Karras, FinalStep::Zero)
            .levels(&edm, TimestepFamily::Euler)
            .unwrap();
        assert!((k[0].sigma_ve() - 80.0).abs() < 1e-12 && (k[17].sigma_ve() - 0.002).abs() < 1e-15);
        let want = |i: f64| {
            (80f64.powf(1.0 / 7.0) + i / 17.0 * (0.002f64.powf(1.0 / 7.0) - 80f64.powf(1.0 / 7.0)))
                .powi(7)
        };
        for (i, l) in k.iter().take(18).enumerate() {
            assert!((l.sigma_ve() - want(i as f64)).abs() < 1e-12 * want(i as f64));
        }
    }

    #[test]
    fn bad_grids_are_errors() {
        let vp = VpSde::default();
        let e = Grid::new(10, Spacing::Leading, FinalStep::Zero)
            .levels(&vp, TimestepFamily::Ddim)
            .unwrap_err()
            .to_string();
        assert!(e.contains("discrete") && e.contains("leading"), "{e}");
        assert!(Grid::new(0, Spacing::Time, FinalStep::Zero)
            .validate(&vp)
            .is_err());
        let mut g = Grid::new(5, Spacing::Time, FinalStep::Eps);
        g.t_end = Some(0.0);
        assert!(g.validate(&vp).is_err());
        g.t_end = Some(2.0);
        assert!(g.validate(&vp).is_err());
        assert!("karras".parse::<Spacing>().unwrap() == Spacing::Karras);
        let e = "cosine".parse::<Spacing>().unwrap_err().to_string();
        assert!(e.contains("'cosine'") && e.contains("logsnr"), "{e}");
        assert_eq!("sigma_min".parse::<FinalStep>().unwrap(), FinalStep::Eps);
    }
}
