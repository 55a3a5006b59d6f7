//! Lessons: each principle of the notes (`shared/notes/001`, `004`) as a measured experiment
//! whose claim is checked by the numbers it produces.
//!
//! A lesson is a module with a `Config` (its defaults run in under three minutes on two cores;
//! every random draw is seeded from `Config::seed`), a `run` function returning the serialisable
//! `Report` (plus whatever the pictures need), and `Report::verdict`, which decides from the
//! report's own numbers whether the claim held in this run. The library tests run every lesson
//! at small settings and assert its verdict (and the specific numbers behind it).
//!
//! | lesson | note | claim |
//! |---|---|---|
//! | [`low_density`] | 004 | noise-free SM + Langevin gets mode weights wrong; multi-σ DSM + annealed Langevin gets them right |
//! | [`dimension`] | 004 | at a fixed number of training samples, score and second-moment errors grow with d; more data shrinks them |
//! | [`sharp_modes`] | 004 | a small network's learned score is flatter than a sharp mode's, so Langevin samples of that mode are too wide |
//! | [`stationary_sampler`] | 004 | a fixed-step ULA on a time-dependent score keeps the mean and gets the variance wrong; the reverse SDE does not |
//! | [`sde_zoo`] | 001 | VP, sub-VP and VE move mass differently (wind and fog), end at different priors, and obey the Fokker–Planck equation |
//! | [`nonlinear_drift`] | 001 §4 | with a nonlinear drift the kernel is not Gaussian: simulated-transition DSM is noisy or biased where analytic-kernel DSM is exact |
//! | [`stiffness`] | 004 | explicit Euler on a learned field is stable just below h_max = min −2Re λ/|λ|² and unstable just above |
//! | [`implicit_bias`] | 004 | DSM gradient flow drives a linear score's antisymmetric part to zero at rate 2c |

pub mod dimension;
pub mod implicit_bias;
pub mod low_density;
pub mod nonlinear_drift;
pub mod sde_zoo;
pub mod sharp_modes;
pub mod stationary_sampler;
pub mod stiffness;

use serde::{Deserialize, Serialize};

use crate::data::Points;
use crate::error::{Error, Result};
use crate::field::mlp::MlpConfig;
use crate::fused::FusedMlp;
use crate::objective::Objective;
use crate::train::{Control, EmaConfig, EngineKind, LrSchedule, Minibatches, TrainConfig, Trainer};

/// The lessons, by the names the command line uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lesson {
    /// [`low_density`].
    LowDensity,
    /// [`dimension`].
    Dimension,
    /// [`sharp_modes`].
    SharpModes,
    /// [`stationary_sampler`].
    StationarySampler,
    /// [`sde_zoo`].
    SdeZoo,
    /// [`nonlinear_drift`].
    NonlinearDrift,
    /// [`stiffness`].
    Stiffness,
    /// [`implicit_bias`].
    ImplicitBias,
}

impl Lesson {
    /// Every lesson, in the order `--list` shows them.
    pub const ALL: [Lesson; 8] = [
        Lesson::LowDensity,
        Lesson::Dimension,
        Lesson::SharpModes,
        Lesson::StationarySampler,
        Lesson::SdeZoo,
        Lesson::NonlinearDrift,
        Lesson::Stiffness,
        Lesson::ImplicitBias,
    ];

    /// The command-line name ("low-density", …).
    pub fn name(self) -> &'static str {
        match self {
            Lesson::LowDensity => "low-density",
            Lesson::Dimension => "dimension",
            Lesson::SharpModes => "sharp-modes",
            Lesson::StationarySampler => "stationary-sampler",
            Lesson::SdeZoo => "sde-zoo",
            Lesson::NonlinearDrift => "nonlinear-drift",
            Lesson::Stiffness => "stiffness",
            Lesson::ImplicitBias => "implicit-bias",
        }
    }

    /// The note the lesson measures (`shared/notes/NNN`).
    pub fn note(self) -> &'static str {
        match self {
            Lesson::SdeZoo => "001",
            Lesson::NonlinearDrift => "001 §4",
            _ => "004",
        }
    }

    /// The claim, in one line.
    pub fn claim(self) -> &'static str {
        match self {
            Lesson::LowDensity => {
                "noise-free score matching + plain Langevin gets the weights of separated modes wrong; multi-σ DSM + annealed Langevin gets them right"
            }
            Lesson::Dimension => {
                "at a fixed number of training samples the learned score's error and the samples' second-moment error grow with the dimension; more data shrinks them"
            }
            Lesson::SharpModes => {
                "a network of limited capacity learns a score flatter than the true one near a sharp mode (its Lipschitz constant is too small), so Langevin samples of that mode come out too wide; more capacity narrows them"
            }
            Lesson::StationarySampler => {
                "a fixed-step (stationary) Langevin run on a time-dependent score keeps the mean but gets the variance wrong, however long it runs; the schedule-aware reverse SDE does not"
            }
            Lesson::SdeZoo => {
                "VP, sub-VP and VE move probability mass differently (drift = wind, diffusion = fog), end at different distances from their priors, and their densities obey the Fokker–Planck equation"
            }
            Lesson::NonlinearDrift => {
                "with an energy-based drift −∇U the perturbation kernel is not Gaussian: DSM on simulated transitions is either noisy (exact last-step target) or biased (Gaussian pair target), where analytic-kernel DSM is neither"
            }
            Lesson::Stiffness => {
                "explicit Euler on a learned field near a sharp mode is stable just below h_max = min −2 Re λ / |λ|² of the Jacobian's eigenvalues and unstable just above it"
            }
            Lesson::ImplicitBias => {
                "denoising score matching drives the antisymmetric part of a linear score model to zero, at rate 2c for isotropic data of variance c"
            }
        }
    }
}

impl std::fmt::Display for Lesson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Lesson {
    type Err = Error;
    /// A lesson by its command-line name (underscores accepted for hyphens).
    fn from_str(s: &str) -> Result<Self> {
        let key = s.to_ascii_lowercase().replace('_', "-");
        Lesson::ALL
            .into_iter()
            .find(|l| l.name() == key)
            .ok_or_else(|| {
                let names: Vec<&str> = Lesson::ALL.iter().map(|l| l.name()).collect();
                Error::InvalidInput(format!(
                    "unknown lesson '{s}' (choose one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// Whether a lesson's claim held in one run, and the numbers that say so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when every condition of the claim held.
    pub holds: bool,
    /// The conditions, each with its numbers ("w(light) = 0.21 vs 0.20 ± 0.01: yes").
    pub evidence: Vec<String>,
}

impl Verdict {
    /// A verdict from (condition text, held) pairs: it holds when all of them do.
    pub fn from_checks(checks: Vec<(String, bool)>) -> Self {
        Verdict {
            holds: checks.iter().all(|(_, ok)| *ok),
            evidence: checks
                .into_iter()
                .map(|(text, ok)| format!("{text}: {}", if ok { "yes" } else { "NO" }))
                .collect(),
        }
    }
}

/// The lessons' training recipe: Adam at peak rate `lr` on a one-cycle schedule (5% warm-up,
/// ÷25 → peak → ÷2.5·10⁵) with an EMA of the weights whose decay warms up as
/// min(0.999, (1 + n)/(10 + n)), so that short runs average their last ~10% of steps instead
/// of remembering the initial weights (a plain 0.999 EMA still holds e^{−1} of them after
/// 1,000 steps).
pub fn recipe(steps: usize, batch: usize, lr: f64, seed: u64) -> TrainConfig {
    TrainConfig {
        schedule: LrSchedule::OneCycle {
            pct_start: 0.05,
            div_factor: 25.0,
            final_div_factor: 1e4,
        },
        ema: Some(EmaConfig {
            decay: 0.999,
            warmup: true,
        }),
        ..TrainConfig::new(steps, batch, lr, seed)
    }
}

/// Trains `network` on `objective` (a regression objective) with the fused engine and returns
/// the sampling weights (EMA when on) as a fused network, with the final minibatch loss.
pub fn train_fused(
    objective: &dyn Objective,
    data: &mut dyn Minibatches,
    network: &MlpConfig,
    train: &TrainConfig,
) -> Result<(FusedMlp, f64)> {
    let model = train.init_model(network, &crate::tensor::cpu(), crate::tensor::DType::F32);
    let mut trainer = Trainer::new_on(EngineKind::Fused, &model, train.clone())?;
    let out = trainer.run(objective, data, &mut |_| Control::Continue)?;
    Ok((FusedMlp::from_mlp(&trainer.sampling_model()), out.last_loss))
}

/// √(Σ‖a − b‖² / Σ‖b‖²): the relative RMS error of `a` against the reference `b` (flat,
/// same layout). Errors when `a` is not finite or the lengths differ.
pub fn relative_rms(a: &[f64], b: &[f64]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::Shape(format!(
            "{} values against {} reference values",
            a.len(),
            b.len()
        )));
    }
    let e2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    if !e2.is_finite() {
        return Err(Error::InvalidInput(
            "a learned field is not finite at some point".into(),
        ));
    }
    let b2: f64 = b.iter().map(|y| y * y).sum();
    Ok((e2 / b2.max(f64::MIN_POSITIVE)).sqrt())
}

/// x > 0 and finite (settings checks).
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0 && x.is_finite()
}

/// Per-coordinate sample means and variances (n − 1 denominator) of `x`.
pub fn coordinate_moments(x: &Points) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (x.len(), x.dim());
    let mut mean = vec![0.0; d];
    for r in x.rows() {
        mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n as f64);
    }
    let mut var = vec![0.0; d];
    for r in x.rows() {
        var.iter_mut()
            .zip(r.iter().zip(&mean))
            .for_each(|(s, (v, m))| *s += (v - m) * (v - m) / (n.max(2) - 1) as f64);
    }
    (mean, var)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_one_line_errors() {
        for l in Lesson::ALL {
            assert_eq!(l.name().parse::<Lesson>().unwrap(), l);
            assert!(!l.claim().contains('\n'));
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.name()));
        }
        assert_eq!("sharp_modes".parse::<Lesson>().unwrap(), Lesson::SharpModes);
        let e = "classic".parse::<Lesson>().unwrap_err().to_string();
        assert!(e.contains("unknown lesson 'classic'") && e.contains("low-density"));
    }

    #[test]
    fn relative_rms_and_moments() {
        assert!((relative_rms(&[1.0, 1.0], &[2.0, 0.0]).unwrap() - 0.5f64.sqrt()).abs() < 1e-15);
        assert!(relative_rms(&[f64::NAN], &[1.0]).is_err());
        assert!(relative_rms(&[1.0], &[1.0, 2.0]).is_err());
        let p = Points::new(vec![1.0, 0.0, 3.0, 2.0], 2).unwrap();
        let (m, v) = coordinate_moments(&p);
        assert_eq!(m, vec![2.0, 1.0]);
        assert_eq!(v, vec![2.0, 2.0]);
        let v = Verdict::from_checks(vec![("a".into(), true), ("b".into(), false)]);
        assert!(!v.holds && v.evidence[1] == "b: NO");
    }
}
