//! Evaluating a model's samples the way the acceptance of every method is judged: sliced W₂,
//! MMD², energy distance, moment errors and (for mixtures) per-mode weights of the samples
//! against held-out data, next to the *noise floor* — fresh data of the same size scored against
//! the same reference, i.e. what a perfect model would score — and, when asked, the held-out
//! negative log-likelihood next to the true one.
//!
//! Reference and floor: for a built-in generator, two independent fresh draws (seed and
//! seed ⊕ 0x9e37…); for a finite set (a file, or the run's held-out split), its two halves.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::Model;
use crate::data::{self, Points};
use crate::error::{Error, Result};
use crate::likelihood::LikelihoodOptions;
use crate::metrics::{self, FloorRatios, MetricOptions, MetricReport, Modes};
use crate::tensor;

/// Mode-radius factor k: a sample farther than k·σ from every mixture mean counts as off-mode.
const MODE_K: f64 = 4.0;

/// The held-out likelihood part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct NllReport {
    /// Points evaluated.
    pub n: usize,
    /// Model NLL −mean log p (nats per point, data units).
    pub nll: f64,
    /// Its standard error over points.
    pub se: f64,
    /// The true NLL of the same points, when the density is known.
    pub true_nll: Option<f64>,
    /// Field evaluations of the likelihood solve.
    pub nfe: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
}

/// `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The run directory.
    pub run: PathBuf,
    /// Where the samples came from: a file or "sampler NAME (NFE n)".
    pub samples_from: String,
    /// Where the reference points came from.
    pub reference_from: String,
    /// The samples against the reference.
    pub samples: MetricReport,
    /// Fresh data against the same reference: what a perfect model scores.
    pub floor: MetricReport,
    /// samples / floor, metric by metric (≈ 1: as good as the data).
    pub ratio: FloorRatios,
    /// Held-out NLL, when asked.
    pub nll: Option<NllReport>,
    /// Wall time of the whole evaluation, seconds.
    pub wall_s: f64,
}

/// Inputs of one evaluation.
pub struct EvalJob<'a> {
    /// The run.
    pub model: &'a Model,
    /// Samples in data units.
    pub samples: &'a Points,
    /// Description of the samples.
    pub samples_from: String,
    /// Reference file, if not the run's own held-out data.
    pub reference: Option<&'a Path>,
    /// Held-out points to use (and fresh points for the floor).
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Held-out NLL points (0 = skip).
    pub nll: usize,
}

/// The reference set and the floor's fresh data (data units) with a description.
fn reference_and_fresh(job: &EvalJob, n_fresh: usize) -> Result<(Points, Points, String)> {
    let d = job.model.dim();
    match (job.reference, job.model.dataset()) {
        (None, Some(ds)) => {
            // Independent draws of the generator: reference and floor data from two seeds.
            let reference = job.model.held_out(job.n, job.seed)?;
            let fresh = job
                .model
                .held_out(n_fresh, job.seed ^ 0x9e37_79b9_7f4a_7c15)?;
            let what = format!("{} fresh draws of {ds}", reference.len());
            Ok((reference, fresh, what))
        }
        (r, _) => {
            // A finite set: half of it is the reference, the other half the floor's "fresh" data.
            let (all, what) = match r {
                Some(p) => {
                    if !p.exists() {
                        return Err(Error::InvalidInput(format!(
                            "{}: no such file",
                            p.display()
                        )));
                    }
                    (data::load_points(p, Some(d))?, p.display().to_string())
                }
                None => (
                    job.model.held_out(usize::MAX, job.seed)?,
                    "the run's held-out split".to_string(),
                ),
            };
            if all.len() < 4 {
                return Err(Error::InvalidInput(format!(
                    "{what}: need at least 4 reference points, found {}",
                    all.len()
                )));
            }
            let (a, b) = data::split(&all, 0.5, job.seed)?;
            Ok((
                a,
                b,
                format!(
                    "{what} ({} points as reference, {} for the floor)",
                    all.len() / 2,
                    all.len() - all.len() / 2
                ),
            ))
        }
    }
}

/// Computes the report (and the NLL when asked).
pub fn evaluate(job: &EvalJob) -> Result<EvalReport> {
    let started = Instant::now();
    let model = job.model;
    let (reference, fresh, reference_from) = reference_and_fresh(job, job.samples.len())?;
    let opts = MetricOptions {
        modes: model
            .dataset()
            .and_then(|d| d.mixture())
            .map(|m| Modes::from_mixture(&m, MODE_K)),
        ..MetricOptions::default()
    };
    let mut rng = tensor::rng(job.seed);
    rng.set_stream(0x4556_414c); // "EVAL"
    let samples = metrics::evaluate(job.samples, &reference, &opts, &mut rng)?;
    let floor = metrics::evaluate(&fresh, &reference, &opts, &mut rng)?;
    let nll = if job.nll > 0 {
        let pts = model.held_out(job.nll, job.seed ^ 0x4e4c_4c00)?;
        let t = Instant::now();
        let lik = model.log_likelihood(
            &pts,
            &LikelihoodOptions {
                round_trip: false,
                ..LikelihoodOptions::default()
            },
            &mut rng,
        )?;
        let true_nll = match model.dataset() {
            Some(ds) => ds
                .log_density(&pts)?
                .map(|lp| -lp.iter().sum::<f64>() / lp.len() as f64),
            None => None,
        };
        Some(NllReport {
            n: pts.len(),
            nll: lik.nll,
            se: lik.se,
            true_nll,
            nfe: lik.nfe,
            wall_s: t.elapsed().as_secs_f64(),
        })
    } else {
        None
    };
    Ok(EvalReport {
        run: model.dir.clone().unwrap_or_default(),
        samples_from: job.samples_from.clone(),
        reference_from,
        ratio: samples.ratio_to(&floor),
        samples,
        floor,
        nll,
        wall_s: started.elapsed().as_secs_f64(),
    })
}
