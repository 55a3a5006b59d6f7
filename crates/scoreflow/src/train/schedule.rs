//! Learning-rate schedules: lr(n) for the optimiser step n = 0, 1, …, N − 1 of an N-step run.
//!
//! Pure functions of (n, N), so a resumed run continues on exactly the same curve.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A learning-rate schedule relative to the base (peak) rate lr₀.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// lr(n) = lr₀.
    #[default]
    Constant,
    /// Linear warm-up then constant: lr(n) = lr₀·min(1, (n + 1)/W).
    Warmup {
        /// Warm-up steps W ≥ 1.
        warmup: usize,
    },
    /// Linear warm-up then cosine decay: lr(n) = lr₀·(n + 1)/W for n < W, else
    /// lr_min + ½(lr₀ − lr_min)(1 + cos(π (n − W)/(N − W))) with lr_min = r·lr₀.
    Cosine {
        /// Warm-up steps W (0 for none).
        warmup: usize,
        /// Final ratio r = lr_min/lr₀ ∈ [0, 1].
        #[serde(default)]
        final_ratio: f64,
    },
    /// One-cycle (Smith & Topin; PyTorch `OneCycleLR`, cosine annealing, two phases): from
    /// lr₀/a up to lr₀ over the first p·N steps, then down to lr₀/(a·b), each phase
    /// lr = e + ½(s − e)(1 + cos(π·f)) with f the fraction of the phase done; phase ends at
    /// steps p·N − 1 and N − 1 as in PyTorch.
    OneCycle {
        /// Fraction p of the run spent increasing (PyTorch default 0.3).
        pct_start: f64,
        /// a = lr₀/lr_initial (PyTorch default 25).
        div_factor: f64,
        /// b = lr_initial/lr_final (PyTorch default 1e4).
        final_div_factor: f64,
    },
}

/// The learning-rate schedules by name (`--schedule`), each made concrete for a run of N steps
/// with a warm-up fraction by [`ScheduleKind::schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ScheduleKind {
    /// lr throughout.
    Constant,
    /// Linear warm-up over the warm-up fraction, then constant.
    Warmup,
    /// Linear warm-up, then cosine decay to 0.
    Cosine,
    /// One-cycle (PyTorch OneCycleLR): cosine rise from lr/25 to lr over the warm-up fraction, then cosine decay to lr/2.5e5.
    #[default]
    Onecycle,
}

impl ScheduleKind {
    /// The schedule for an N-step run with warm-up fraction `warmup` ∈ [0, 1): W = max(1,
    /// round(warmup·N)) warm-up steps; one-cycle rises over max(warmup, 2/N) of the run (it
    /// needs ≥ 2 rising steps and ≥ 1 falling step) and runs under 4 steps use a constant rate;
    /// the cosine schedule has no warm-up when `warmup` = 0.
    pub fn schedule(self, steps: usize, warmup: f64) -> LrSchedule {
        let warm = ((warmup * steps as f64).round() as usize).max(1);
        match self {
            ScheduleKind::Constant => LrSchedule::Constant,
            ScheduleKind::Warmup => LrSchedule::Warmup { warmup: warm },
            ScheduleKind::Cosine => LrSchedule::Cosine {
                warmup: if warmup > 0.0 { warm } else { 0 },
                final_ratio: 0.0,
            },
            ScheduleKind::Onecycle if steps < 4 => LrSchedule::Constant,
            ScheduleKind::Onecycle => LrSchedule::OneCycle {
                pct_start: warmup.max(2.0 / steps as f64),
                div_factor: 25.0,
                final_div_factor: 1e4,
            },
        }
    }
}

impl LrSchedule {
    /// One-cycle with PyTorch's defaults p = 0.3, a = 25, b = 10⁴.
    pub fn one_cycle() -> Self {
        LrSchedule::OneCycle {
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }

    /// Checks the parameters for an N-step run.
    pub fn validate(&self, total: usize) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("learning-rate schedule: {m}")));
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Warmup { warmup: 0 } => bad("warm-up needs warmup ≥ 1 steps".into()),
            LrSchedule::Warmup { .. } => Ok(()),
            LrSchedule::Cosine {
                warmup,
                final_ratio,
            } => {
                if !(0.0..=1.0).contains(&final_ratio) {
                    bad(format!(
                        "cosine final_ratio {final_ratio} is outside [0, 1]"
                    ))
                } else if warmup >= total {
                    bad(format!(
                        "cosine warm-up of {warmup} steps leaves nothing of a {total}-step run"
                    ))
                } else {
                    Ok(())
                }
            }
            LrSchedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                if !(pct_start > 0.0 && pct_start < 1.0) {
                    bad(format!("one-cycle pct_start {pct_start} is outside (0, 1)"))
                } else if !(div_factor >= 1.0 && final_div_factor >= 1.0) {
                    bad(format!("one-cycle div_factor {div_factor} and final_div_factor {final_div_factor} must be ≥ 1"))
                } else if pct_start * total as f64 - 1.0 <= 0.0
                    || (pct_start * total as f64) >= total as f64 - 1.0
                {
                    bad(format!(
                        "one-cycle pct_start {pct_start} of {total} steps leaves an empty phase"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// lr(n) for step n of an N-step run with base rate lr₀ (steps past N − 1 keep lr(N − 1)).
    pub fn lr(&self, base: f64, n: usize, total: usize) -> f64 {
        let n = n.min(total.saturating_sub(1));
        let cos_anneal = |start: f64, end: f64, f: f64| {
            end + 0.5 * (start - end) * (1.0 + (std::f64::consts::PI * f).cos())
        };
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Warmup { warmup } => {
                base * ((n + 1) as f64 / warmup.max(1) as f64).min(1.0)
            }
            LrSchedule::Cosine {
                warmup,
                final_ratio,
            } => {
                if n < warmup {
                    base * (n + 1) as f64 / warmup as f64
                } else {
                    let f = (n - warmup) as f64 / (total - warmup).max(1) as f64;
                    cos_anneal(base, final_ratio * base, f)
                }
            }
            LrSchedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let initial = base / div_factor;
                let min_lr = initial / final_div_factor;
                let end1 = pct_start * total as f64 - 1.0;
                let end2 = total as f64 - 1.0;
                let n = n as f64;
                if n <= end1 {
                    cos_anneal(initial, base, n / end1)
                } else {
                    cos_anneal(base, min_lr, (n - end1) / (end2 - end1))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-300), "{a} vs {b}");
    }

    /// Values at known steps, from the formulas evaluated by hand.
    #[test]
    fn schedules_at_known_steps() {
        let lr0 = 1e-3;
        close(LrSchedule::Constant.lr(lr0, 57, 100), lr0);

        let w = LrSchedule::Warmup { warmup: 10 };
        close(w.lr(lr0, 0, 100), 1e-4); // (0 + 1)/10
        close(w.lr(lr0, 4, 100), 5e-4);
        close(w.lr(lr0, 9, 100), lr0);
        close(w.lr(lr0, 50, 100), lr0);

        let c = LrSchedule::Cosine {
            warmup: 10,
            final_ratio: 0.1,
        };
        close(c.lr(lr0, 0, 110), 1e-4);
        close(c.lr(lr0, 10, 110), lr0); // cos 0 = 1
        close(c.lr(lr0, 60, 110), 1e-4 + 0.5 * 9e-4); // halfway: (lr0 + lr_min)/2
        close(
            c.lr(lr0, 35, 110),
            1e-4 + 0.5 * 9e-4 * (1.0 + std::f64::consts::FRAC_1_SQRT_2),
        ); // quarter: cos(π/4)
        close(
            c.lr(lr0, 109, 110),
            1e-4 + 0.5 * 9e-4 * (1.0 + (0.99 * std::f64::consts::PI).cos()),
        ); // last step: f = 99/100

        // PyTorch OneCycleLR(max_lr=1e-3, total_steps=100): starts at 4e-5, peaks at step
        // 0.3·100 − 1 = 29, ends at step 99 at 4e-5/1e4 = 4e-9.
        let o = LrSchedule::one_cycle();
        close(o.lr(lr0, 0, 100), 4e-5);
        close(o.lr(lr0, 29, 100), lr0);
        close(o.lr(lr0, 99, 100), 4e-9);
        // Phase 1 at step 14 (f = 14/29), annealing from 4e-5 up to lr0.
        let mid = o.lr(lr0, 14, 100);
        close(
            mid,
            lr0 + 0.5 * (4e-5 - lr0) * (1.0 + (std::f64::consts::PI * 14.0 / 29.0).cos()),
        );
        // Phase 2 at step 64 = 29 + 35 of 70: f = 0.5.
        close(o.lr(lr0, 64, 100), 4e-9 + 0.5 * (lr0 - 4e-9));
    }

    #[test]
    fn invalid_schedules_are_errors() {
        assert!(LrSchedule::Warmup { warmup: 0 }.validate(10).is_err());
        assert!(LrSchedule::Cosine {
            warmup: 10,
            final_ratio: 0.0
        }
        .validate(10)
        .is_err());
        assert!(LrSchedule::Cosine {
            warmup: 0,
            final_ratio: 1.5
        }
        .validate(10)
        .is_err());
        assert!(LrSchedule::OneCycle {
            pct_start: 1.2,
            div_factor: 25.0,
            final_div_factor: 1e4
        }
        .validate(100)
        .is_err());
        assert!(LrSchedule::one_cycle().validate(2).is_err());
        assert!(LrSchedule::one_cycle().validate(100).is_ok());
        assert!(LrSchedule::Cosine {
            warmup: 5,
            final_ratio: 0.0
        }
        .validate(100)
        .is_ok());
    }
}
