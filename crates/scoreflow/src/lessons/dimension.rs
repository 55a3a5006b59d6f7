//! The curse of dimensionality in score estimation (`shared/notes/004`, "Challenges in score
//! approximation"): even for an isotropic Gaussian, a score learned from a fixed number n of
//! samples gets worse as the dimension d grows — each coordinate's error is small, but they
//! add up over d — and so do the statistics of the samples drawn with it; more data helps.
//!
//! **Experiment.** Standardised data N(0, I_d) under the VP SDE, so that p_τ = N(0, I) at
//! every τ and the closed-form score is s(x, τ) = −x: a rank-d linear map. For each model,
//! each d and each training-set size n, a score network (score prediction, ¼ ln s(τ) noise
//! input, fused engine) is trained by continuous-time DSM on the *same n points* for the same
//! number of steps. Two models: **linear** (no hidden layer: s = Wx + b + w·¼ln s(τ), a class
//! that contains the truth, so its error is estimation error from n points — the note's
//! claim, checked by the verdict) and an **MLP** of width max(64, d) (which adds
//! approximation and optimisation error, growing with d too).
//!
//! * **score error**: the relative RMS error √(Σ‖s_θ − s‖²/Σ‖s‖²) at fresh points x ~ p_τ,
//!   averaged over a few τ; beside it the error of DSM's own optimum on the n points, the score
//!   of the smoothed empirical distribution (1/n) Σᵢ N(m xᵢ, s² I) — the "memorising" score,
//!   which is what a network of unlimited capacity would converge to: its error is the part
//!   that no architecture removes at this n;
//! * **second-moment error**: the relative Frobenius error ‖M̂ − vI‖_F/‖vI‖_F of the second
//!   moment M̂ = (1/N) Σ x xᵀ of N reverse-SDE samples, next to its noise floor (N fresh exact
//!   samples; ≈ √((d + 1)/N)) and the training set's own error (≈ √((d + 1)/n)).

use std::sync::Arc;

use rand::Rng as _;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{recipe, relative_rms, train_fused, Verdict};
use crate::data::Points;
use crate::error::{Error, Result};
use crate::field::convert::{NoiseInput, Prediction};
use crate::field::mlp::MlpConfig;
use crate::field::VectorField;
use crate::objective::dsm::{Dsm, DsmConfig};
use crate::sde::{Sde, VpSde};
use crate::solve::{Predictor, PredictorCorrector, Sampler};
use crate::tensor::{cpu, randn, rng, to_vec, DType, Rng};
use crate::train::TrainConfig;

/// Settings of the lesson.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionConfig {
    /// Dimensions d.
    pub dims: Vec<usize>,
    /// Training-set sizes n (the first is the "fixed" one, the others "more data").
    pub train_sizes: Vec<usize>,
    /// Data variance v per coordinate.
    pub data_variance: f64,
    /// The score models compared; the claim is checked on the first.
    pub models: Vec<ScoreModel>,
    /// Optimiser steps, batch, learning-rate schedule, EMA, seed (the peak rate is each
    /// model's own).
    pub train: TrainConfig,
    /// Diffusion times τ at which the score error is measured.
    pub eval_taus: Vec<f64>,
    /// Fresh points per τ for the score errors.
    pub eval_points: usize,
    /// Samples drawn for the second-moment error.
    pub samples: usize,
    /// Reverse-diffusion steps of the sampler.
    pub sampler_steps: usize,
    /// Seed of data, evaluation points and sampler noise.
    pub seed: u64,
}

/// A score network family: 2 → max(`min_width`, d)^`depth` → d (SiLU) with its learning rate.
/// Depth 0 is the affine model s = W x + b + w·¼ln s(τ), which contains the true score −x.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreModel {
    /// Name in the tables ("linear", "mlp").
    pub name: String,
    /// Hidden layers (0 = affine).
    pub depth: usize,
    /// Width floor w₀: the width is max(w₀, d), so the network can carry a rank-d map.
    pub min_width: usize,
    /// Peak learning rate.
    pub lr: f64,
}

impl ScoreModel {
    /// The affine model (depth 0), peak rate 1e-2.
    pub fn linear() -> Self {
        Self {
            name: "linear".into(),
            depth: 0,
            min_width: 1,
            lr: 1e-2,
        }
    }

    /// The MLP of width max(64, d) with 2 hidden layers, peak rate 2e-3.
    pub fn mlp() -> Self {
        Self {
            name: "mlp".into(),
            depth: 2,
            min_width: 64,
            lr: 2e-3,
        }
    }

    /// The width at dimension d.
    pub fn width(&self, d: usize) -> usize {
        self.min_width.max(d)
    }
}

impl Default for DimensionConfig {
    /// d = 2, 8, 32, 128, 256; n = 500 and 5,000; v = 1; the linear model and the MLP;
    /// 3,000 steps of batch 256 ([`recipe`]); τ = 0.05, 0.1, 0.25, 0.5, 1; 1,000 points per
    /// τ; 4,000 samples by 200 reverse-diffusion steps.
    fn default() -> Self {
        Self {
            dims: vec![2, 8, 32, 128, 256],
            train_sizes: vec![500, 5000],
            data_variance: 1.0,
            models: vec![ScoreModel::linear(), ScoreModel::mlp()],
            train: recipe(3000, 256, 1e-3, 0),
            eval_taus: vec![0.05, 0.1, 0.25, 0.5, 1.0],
            eval_points: 1000,
            samples: 4000,
            sampler_steps: 200,
            seed: 0,
        }
    }
}

/// One (model, d, n) cell of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionRow {
    /// The model's name.
    pub model: String,
    /// Dimension d.
    pub dim: usize,
    /// Training-set size n.
    pub train_size: usize,
    /// Network width.
    pub width: usize,
    /// Relative RMS score error of the network at each τ of `eval_taus`.
    pub score_error: Vec<f64>,
    /// Its mean over τ.
    pub mean_score_error: f64,
    /// Mean over τ of the relative error of DSM's optimum on the n points (the smoothed
    /// empirical score).
    pub empirical_optimum_error: f64,
    /// ‖M̂ − vI‖_F/‖vI‖_F of the samples.
    pub moment_error: f64,
    /// The same for N fresh exact samples (the floor).
    pub moment_floor: f64,
    /// The model's own share √(max(0, e² − f²)) of the samples' error e over the floor f
    /// (independent errors add in quadrature: E‖M̂ − M‖² = ‖M_model − M‖² + floor²).
    pub moment_excess: f64,
    /// The same for the n training points.
    pub train_moment_error: f64,
    /// |tr M̂/(d v) − 1| of the samples (the error of the mean squared radius).
    pub trace_error: f64,
    /// Final training loss.
    pub final_loss: f64,
}

/// The lesson's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionReport {
    /// One row per (model, d, n), in that nesting.
    pub rows: Vec<DimensionRow>,
}

impl DimensionReport {
    /// The rows of model `model` and training-set size n, by increasing d.
    pub fn at(&self, model: &str, n: usize) -> Vec<&DimensionRow> {
        let mut r: Vec<&DimensionRow> = self
            .rows
            .iter()
            .filter(|r| r.train_size == n && r.model == model)
            .collect();
        r.sort_by_key(|r| r.dim);
        r
    }

    /// The claim, for the first model. At the first training-set size: the score error and the
    /// second-moment error (its excess over the Monte Carlo floor) at the largest d are at least twice those at the smallest d, and each grows over
    /// the dimensions (every step up in d raises it, allowing a 10% dip for Monte Carlo
    /// noise). More data: at the largest d, every larger n has a smaller score error and a
    /// smaller second-moment error than the first n.
    pub fn verdict(&self) -> Verdict {
        let mut checks = Vec::new();
        let mut sizes: Vec<usize> = Vec::new();
        for r in &self.rows {
            if !sizes.contains(&r.train_size) {
                sizes.push(r.train_size);
            }
        }
        let (Some(&n0), Some(model)) = (sizes.first(), self.rows.first().map(|r| &r.model)) else {
            return Verdict::from_checks(vec![("no rows".into(), false)]);
        };
        let base = self.at(model, n0);
        type Get = fn(&DimensionRow) -> f64;
        let metrics: [(&str, Get); 2] = [
            ("score error", |r| r.mean_score_error),
            ("second-moment error (excess over the floor)", |r| {
                r.moment_excess
            }),
        ];
        if let (Some(first), Some(last)) = (base.first(), base.last()) {
            for (name, get) in metrics {
                let series: Vec<String> = base
                    .iter()
                    .map(|r| format!("d={}: {:.3}", r.dim, get(r)))
                    .collect();
                let rising = base.windows(2).all(|w| get(w[1]) >= 0.9 * get(w[0]));
                checks.push((
                    format!(
                        "{model}, n={n0}: {name} grows with d ({}; ×{:.1} from d={} to d={})",
                        series.join(", "),
                        get(last) / get(first),
                        first.dim,
                        last.dim
                    ),
                    rising && get(last) > 2.0 * get(first),
                ));
            }
            for &n in &sizes[1..] {
                if let Some(big) = self.at(model, n).last() {
                    for (name, get) in metrics {
                        checks.push((
                            format!(
                                "{model}, d={}: more data shrinks the {name} ({:.3} at n={n0} → {:.3} at n={n})",
                                big.dim,
                                get(last),
                                get(big)
                            ),
                            get(big) < get(last),
                        ));
                    }
                }
            }
        }
        Verdict::from_checks(checks)
    }
}

/// The score of the smoothed empirical distribution (1/n) Σᵢ N(m xᵢ, s² I) at the rows of `x`:
/// Σᵢ rᵢ(x)·(m xᵢ − x)/s² with rᵢ ∝ exp(−‖x − m xᵢ‖²/(2s²)) — the minimiser of the DSM loss on
/// the finite set {xᵢ} at this noise level.
pub fn empirical_score(train: &Points, m: f64, s: f64, x: &Points) -> Vec<f64> {
    let d = x.dim();
    let s2 = s * s;
    x.as_slice()
        .par_chunks(d)
        .flat_map_iter(|xr| {
            let logits: Vec<f64> = train
                .rows()
                .map(|t| {
                    -xr.iter()
                        .zip(t)
                        .map(|(a, b)| (a - m * b).powi(2))
                        .sum::<f64>()
                        / (2.0 * s2)
                })
                .collect();
            let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = logits.iter().map(|l| (l - top).exp()).collect();
            let z: f64 = w.iter().sum();
            let mut out = vec![0.0; d];
            for (wi, t) in w.iter().zip(train.rows()) {
                for ((o, a), b) in out.iter_mut().zip(xr).zip(t) {
                    *o += wi / z * (m * b - a) / s2;
                }
            }
            out
        })
        .collect()
}

/// ‖(1/N) Σ x xᵀ − vI‖_F / (v√d) and |tr/(d v) − 1| of the rows of `x`.
pub fn second_moment_errors(x: &Points, v: f64) -> (f64, f64) {
    let (n, d) = (x.len() as f64, x.dim());
    let rows: Vec<&[f64]> = x.rows().collect();
    let (f2, tr) = (0..d)
        .into_par_iter()
        .map(|i| {
            let mut f2 = 0.0;
            let mut tr = 0.0;
            for j in i..d {
                let mij = rows.iter().map(|r| r[i] * r[j]).sum::<f64>() / n;
                let e = mij - if i == j { v } else { 0.0 };
                f2 += if i == j { e * e } else { 2.0 * e * e };
                if i == j {
                    tr += mij;
                }
            }
            (f2, tr)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    (
        f2.sqrt() / (v * (d as f64).sqrt()),
        (tr / (d as f64 * v) - 1.0).abs(),
    )
}

fn gaussian(n: usize, d: usize, std: f64, rng: &mut Rng) -> Points {
    Points::from_tensor(&(randn(n, d, &cpu(), DType::F64, rng) * std))
}

impl DimensionConfig {
    /// The small settings of the library test: d = 2 and 128, n = 500 and 5,000, the linear
    /// model only, 1,500 steps of batch 256 at 1e-2, τ = 0.05, 0.25 and 1, 500 points per τ,
    /// 2,000 samples by 100 steps.
    pub fn small() -> Self {
        Self {
            dims: vec![2, 128],
            train_sizes: vec![500, 5000],
            models: vec![ScoreModel::linear()],
            train: recipe(1500, 256, 1e-2, 0),
            eval_taus: vec![0.05, 0.25, 1.0],
            eval_points: 500,
            samples: 2000,
            sampler_steps: 100,
            ..Default::default()
        }
    }

    fn check(&self) -> Result<()> {
        if self.models.is_empty() {
            return Err(Error::InvalidInput("need at least one score model".into()));
        }
        if self.dims.is_empty() || self.dims.contains(&0) {
            return Err(Error::InvalidInput("need dimensions ≥ 1".into()));
        }
        if self.train_sizes.is_empty() || self.train_sizes.contains(&0) {
            return Err(Error::InvalidInput("need training-set sizes ≥ 1".into()));
        }
        if !super::positive(self.data_variance) || self.samples < 2 || self.eval_points == 0 {
            return Err(Error::InvalidInput(
                "need a positive data variance, ≥ 2 samples and ≥ 1 evaluation point".into(),
            ));
        }
        if self.eval_taus.iter().any(|t| !(*t > 0.0 && *t <= 1.0)) || self.eval_taus.is_empty() {
            return Err(Error::InvalidInput(
                "evaluation times must lie in (0, 1]".into(),
            ));
        }
        Ok(())
    }
}

/// One (model, d, n) cell: train, measure the score, sample, measure the moments.
fn run_cell(model: &ScoreModel, d: usize, n: usize, cfg: &DimensionConfig) -> Result<DimensionRow> {
    let v = cfg.data_variance;
    let seed = cfg.seed.wrapping_add(7919 * d as u64);
    let train_set = gaussian(n, d, v.sqrt(), &mut rng(seed));
    let sde: Arc<dyn Sde> = Arc::new(VpSde::default());
    let dsm = Dsm::new(
        sde.clone(),
        DsmConfig {
            target: Prediction::Score,
            noise_input: NoiseInput::LogSigma,
            ..Default::default()
        },
    )?;
    let width = model.width(d);
    let mut batches = |k: usize, r: &mut Rng| {
        let mut out = Vec::with_capacity(k * d);
        for _ in 0..k {
            out.extend_from_slice(train_set.row(r.random_range(0..n)));
        }
        Points::new(out, d).expect("rows of length d")
    };
    let mut train = cfg.train.clone();
    train.optimizer.lr = model.lr;
    let (net, final_loss) = train_fused(
        &dsm,
        &mut batches,
        &MlpConfig::new(d, width, model.depth),
        &train,
    )?;
    let score = dsm.score_field(net);
    let (mut score_error, mut empirical) = (Vec::new(), Vec::new());
    for (k, &tau) in cfg.eval_taus.iter().enumerate() {
        let (m, s) = sde.mean_std(tau);
        let var = m * m * v + s * s; // = 1 for v = 1 under VP
        let x = gaussian(
            cfg.eval_points,
            d,
            var.sqrt(),
            &mut rng(seed.wrapping_add(100 + k as u64)),
        );
        let truth: Vec<f64> = x.as_slice().iter().map(|a| -a / var).collect();
        let learned = to_vec(&score.eval_at(&x.to_tensor(&cpu(), DType::F32), tau));
        score_error.push(relative_rms(&learned, &truth)?);
        empirical.push(relative_rms(
            &empirical_score(&train_set, m, s, &x),
            &truth,
        )?);
    }
    let sampler =
        PredictorCorrector::new(sde.clone(), Predictor::ReverseDiffusion, cfg.sampler_steps);
    let prior = sde.prior_sample(
        cfg.samples,
        d,
        &cpu(),
        DType::F32,
        &mut rng(seed.wrapping_add(200)),
    );
    let out = sampler.sample(&score, prior, &mut rng(seed.wrapping_add(201)))?;
    let samples = Points::from_tensor(&out.x);
    let (moment_error, trace_error) = second_moment_errors(&samples, v);
    let fresh = gaussian(cfg.samples, d, v.sqrt(), &mut rng(seed.wrapping_add(300)));
    let moment_floor = second_moment_errors(&fresh, v).0;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(DimensionRow {
        model: model.name.clone(),
        dim: d,
        train_size: n,
        width,
        mean_score_error: mean(&score_error),
        empirical_optimum_error: mean(&empirical),
        score_error,
        moment_error,
        moment_excess: (moment_error.powi(2) - moment_floor.powi(2))
            .max(0.0)
            .sqrt(),
        moment_floor,
        train_moment_error: second_moment_errors(&train_set, v).0,
        trace_error,
        final_loss,
    })
}

/// Runs every (d, n) cell.
pub fn run(cfg: &DimensionConfig) -> Result<DimensionReport> {
    cfg.check()?;
    let mut rows = Vec::new();
    for model in &cfg.models {
        for &d in &cfg.dims {
            for &n in &cfg.train_sizes {
                rows.push(run_cell(model, d, n, cfg)?);
            }
        }
    }
    Ok(DimensionReport { rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The empirical score is the exact score of a finite mixture: for one training point x₁
    /// it is (m x₁ − x)/s²; the moment errors of the exact second moment are 0 and of 2·v·I
    /// are 1 (Frobenius) and 1 (trace).
    #[test]
    fn empirical_score_and_moment_errors_in_closed_form() {
        let t = Points::new(vec![1.0, -2.0], 2).unwrap();
        let x = Points::new(vec![0.5, 0.5, -1.0, 3.0], 2).unwrap();
        let s = empirical_score(&t, 0.8, 0.5, &x);
        let want = [
            (0.8 - 0.5) / 0.25,
            (-1.6 - 0.5) / 0.25,
            (0.8 + 1.0) / 0.25,
            (-1.6 - 3.0) / 0.25,
        ];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
        // Rows ±√(2v) eᵢ: M = diag(2v … ) … use two rows (√2, 0), (0, √2) → M = I = 2·(½ I).
        let p = Points::new(vec![2f64.sqrt(), 0.0, 0.0, 2f64.sqrt()], 2).unwrap();
        let (f, tr) = second_moment_errors(&p, 0.5);
        assert!((f - 1.0).abs() < 1e-12 && (tr - 1.0).abs() < 1e-12);
        let (f, tr) = second_moment_errors(&p, 1.0);
        assert!(f.abs() < 1e-12 && tr.abs() < 1e-12);
    }

    /// The claim at small settings ([`DimensionConfig::small`]). The second-moment
    /// noise floors at N = 2000 are √(3/2000) ≈ 0.04 (d = 2) and √(129/2000) ≈ 0.25 (d = 128);
    /// the training sets' own errors at n = 500 are ≈ 0.08 and ≈ 0.51, so a model that follows
    /// its data shows the growth above the floor (measured as the excess in quadrature).
    #[test]
    fn errors_grow_with_dimension_and_shrink_with_data() {
        let cfg = DimensionConfig::small();
        let r = run(&cfg).unwrap();
        let v = r.verdict();
        eprintln!("{:#?}", r.rows);
        assert!(v.holds, "{:#?}", v.evidence);
    }
}
