//! Evaluating a model's samples the way the acceptance of every method is judged: sliced W₂,
//! MMD², energy distance, moment errors and (for mixtures) per-mode weights of the samples
//! against held-out data, next to the *noise floor* — fresh data of the same size scored against
//! the same reference, i.e. what a perfect model would score — and, when asked, the held-out
//! negative log-likelihood next to the true one.
//!
//! Reference and floor: for a built-in generator, two independent fresh draws (seed and
//! seed ⊕ 0x9e37…); for a finite set (a file, or the run's held-out split), its two halves.
//!
//! Image runs are scored in pixel space (data units) on the data's lattice: samples are
//! rounded to the nearest level first ([`ImageFormat::quantize`]); the reference is every
//! held-out image and the floor as many training images as samples (draws of the data the
//! model never had to generate: what a perfect model scores — and a model that copied its
//! training set, which the memorisation check beside it catches: [`Images::memorisation`], the
//! mean distance of samples to their nearest training image against that of the held-out
//! images). MMD's bandwidths are set by the median heuristic on the reference, h = m·{¼, ½, 1,
//! 2, 4} with m the median pairwise distance, since the fixed ones (0.05–2, for data of unit
//! scale) see 64 pixels of levels 0–16 as all equally far apart.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::Model;
use crate::data::images::{ImageFormat, Images, Memorisation};
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
    /// Image runs: bits per dimension of the dequantised held-out images (the NLL is then the
    /// discrete one, in nats per image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_per_dim: Option<f64>,
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
    /// The MMD bandwidths h used.
    pub mmd_bandwidths: Vec<f64>,
    /// Image runs: the memorisation check of the (rounded) samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memorisation: Option<Memorisation>,
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
    if let (None, Some(_)) = (job.reference, job.model.image) {
        let (train, test) = image_split(job.model)?;
        check_sample_count(job.model, n_fresh)?;
        // n_fresh training images without replacement.
        let fresh = data::DataSource::finite(
            "training images",
            train.pixels.clone(),
            Some(train.pixels.clone()),
        )?
        .held_out(n_fresh, job.seed ^ 0x9e37_79b9_7f4a_7c15)?;
        let what = format!(
            "the run's {} held-out images; floor: {} of its {} training images",
            test.len(),
            fresh.len(),
            train.len()
        );
        return Ok((test.pixels, fresh, what));
    }
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

/// Checks that `n` samples can be scored: an image run's floor draws as many of its training
/// images (without replacement), so `n` may not exceed their number. (Call it before drawing
/// the samples.)
pub fn check_sample_count(model: &Model, n: usize) -> Result<()> {
    if model.image.is_none() {
        return Ok(());
    }
    let (train, _) = image_split(model)?;
    if n > train.len() {
        return Err(Error::InvalidInput(format!(
            "{n} samples: the floor of an image run draws as many training images, and this run has {} (ask for at most that many)",
            train.len()
        )));
    }
    Ok(())
}

/// The training and held-out images of an image run.
fn image_split(model: &Model) -> Result<(Images, Images)> {
    model.settings.image_split()?.ok_or_else(|| {
        Error::InvalidInput(format!(
            "{}: the run's images are not available",
            model.settings.data
        ))
    })
}

/// Samples rounded to the levels of `format` (data units).
fn quantized(samples: &Points, format: ImageFormat) -> Result<Points> {
    let mut v = samples.as_slice().to_vec();
    format.quantize(&mut v);
    Points::new(v, samples.dim())
}

/// MMD bandwidths m·{¼, ½, 1, 2, 4} from the median m of the pairwise distances of (at most
/// the first 500 points of) `reference`.
fn median_bandwidths(reference: &Points) -> Vec<f64> {
    let rows: Vec<&[f64]> = reference.rows().take(500).collect();
    let mut dist = Vec::with_capacity(rows.len() * rows.len() / 2);
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[..i] {
            let d2: f64 = a.iter().zip(*b).map(|(x, y)| (x - y) * (x - y)).sum();
            dist.push(d2.sqrt());
        }
    }
    dist.sort_by(f64::total_cmp);
    let m = dist
        .get(dist.len() / 2)
        .copied()
        .filter(|m| *m > 0.0)
        .unwrap_or(1.0);
    [0.25, 0.5, 1.0, 2.0, 4.0].iter().map(|f| f * m).collect()
}

/// Computes the report (and the NLL when asked).
pub fn evaluate(job: &EvalJob) -> Result<EvalReport> {
    let started = Instant::now();
    let model = job.model;
    let image_samples = match model.image {
        Some(f) => Some(quantized(job.samples, f)?),
        None => None,
    };
    let scored = image_samples.as_ref().unwrap_or(job.samples);
    let (reference, fresh, reference_from) = reference_and_fresh(job, scored.len())?;
    let mut opts = MetricOptions {
        modes: model
            .dataset()
            .and_then(|d| d.mixture())
            .map(|m| Modes::from_mixture(&m, MODE_K)),
        ..MetricOptions::default()
    };
    let memorisation = match &image_samples {
        Some(s) => {
            opts.bandwidths = median_bandwidths(&reference);
            let (train, test) = image_split(model)?;
            Some(train.memorisation(s, &test.pixels)?)
        }
        None => None,
    };
    let mut rng = tensor::rng(job.seed);
    rng.set_stream(0x4556_414c); // "EVAL"
    let samples = metrics::evaluate(scored, &reference, &opts, &mut rng)?;
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
            bits_per_dim: lik.bpd,
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
        mmd_bandwidths: opts.bandwidths,
        memorisation,
        wall_s: started.elapsed().as_secs_f64(),
    })
}
