//! `scoreflow eval`: sample-quality metrics against held-out data, next to the noise floor.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::data::{self, Points};
use scoreflow::likelihood::LikelihoodOptions;
use scoreflow::metrics::{self, FloorRatios, MetricOptions, MetricReport, Modes};
use scoreflow::tensor;
use serde::Serialize;

use crate::cli::EvalArgs;
use crate::output::{write_json, Mode};
use crate::run::{Run, SamplerSpec};
use crate::sampling::Plan;

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
    pub run: &'a Run,
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
    let d = job.run.dim();
    match (job.reference, job.run.dataset()) {
        (None, Some(ds)) => {
            // Independent draws of the generator: reference and floor data from two seeds.
            let reference = job.run.held_out(job.n, job.seed)?;
            let fresh = job
                .run
                .held_out(n_fresh, job.seed ^ 0x9e37_79b9_7f4a_7c15)?;
            let what = format!("{} fresh draws of {ds}", reference.len());
            Ok((reference, fresh, what))
        }
        (r, _) => {
            // A finite set: half of it is the reference, the other half the floor's "fresh" data.
            let (all, what) = match r {
                Some(p) => {
                    if !p.exists() {
                        bail!("{}: no such file", p.display());
                    }
                    (data::load_points(p, Some(d))?, p.display().to_string())
                }
                None => (
                    job.run.held_out(usize::MAX, job.seed)?,
                    "the run's held-out split".to_string(),
                ),
            };
            if all.len() < 4 {
                bail!(
                    "{what}: need at least 4 reference points, found {}",
                    all.len()
                );
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
    let run = job.run;
    let (reference, fresh, reference_from) = reference_and_fresh(job, job.samples.len())?;
    let opts = MetricOptions {
        modes: run
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
        let pts = run.held_out(job.nll, job.seed ^ 0x4e4c_4c00)?;
        let t = Instant::now();
        let lik = run.log_likelihood(
            &pts,
            &LikelihoodOptions {
                round_trip: false,
                ..LikelihoodOptions::default()
            },
            &mut rng,
        )?;
        let true_nll = match run.dataset() {
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
        run: run.dir.clone(),
        samples_from: job.samples_from.clone(),
        reference_from,
        ratio: samples.ratio_to(&floor),
        samples,
        floor,
        nll,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// The report as a small table.
pub fn table(r: &EvalReport) -> String {
    let ratio = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.2}"));
    let mut s = format!(
        "samples: {}\nreference: {}\n",
        r.samples_from, r.reference_from
    );
    s.push_str(&format!(
        "{:<22}{:>12}{:>12}{:>10}\n",
        "metric", "samples", "floor", "ratio"
    ));
    let rows = [
        ("sliced W2", r.samples.sw2, r.floor.sw2, r.ratio.sw2),
        (
            "MMD² (6 bandwidths)",
            r.samples.mmd2,
            r.floor.mmd2,
            r.ratio.mmd2,
        ),
        (
            "energy distance",
            r.samples.energy,
            r.floor.energy,
            r.ratio.energy,
        ),
        (
            "mean error",
            r.samples.mean_error,
            r.floor.mean_error,
            r.ratio.mean_error,
        ),
        (
            "covariance error",
            r.samples.cov_error,
            r.floor.cov_error,
            r.ratio.cov_error,
        ),
    ];
    for (name, a, b, q) in rows {
        s.push_str(&format!("{name:<22}{a:>12.3e}{b:>12.3e}{:>10}\n", ratio(q)));
    }
    if let (Some(m), Some(f)) = (&r.samples.modes, &r.floor.modes) {
        let w = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        s.push_str(&format!(
            "mode weights (samples): {}  off-mode {:.4}\n",
            w(&m.weights),
            m.off_modes
        ));
        s.push_str(&format!(
            "mode weights (floor):   {}  off-mode {:.4}\n",
            w(&f.weights),
            f.off_modes
        ));
    }
    if let Some(n) = &r.nll {
        s.push_str(&format!(
            "held-out NLL: {:.4} ± {:.4} nats on {} points ({} NFE, {:.1} s)",
            n.nll, n.se, n.n, n.nfe, n.wall_s
        ));
        if let Some(t) = n.true_nll {
            s.push_str(&format!("; true NLL of the same points {t:.4}"));
        }
        s.push('\n');
    }
    s.push_str("ratio = samples / floor: ≈ 1 means as good as fresh data at this sample size");
    s
}

/// Runs `scoreflow eval`.
pub fn run(args: EvalArgs, mode: Mode) -> Result<()> {
    let run = Run::load(&args.run)?;
    if args.n < 2 {
        bail!("-n must be at least 2");
    }
    let (samples, from) = match &args.samples {
        Some(p) => {
            if !p.exists() {
                bail!("{}: no such file", p.display());
            }
            (
                data::load_points(p, Some(run.dim()))?,
                p.display().to_string(),
            )
        }
        None => {
            let spec = SamplerSpec {
                steps: args.steps,
                ..SamplerSpec::new(args.sampler.unwrap_or_else(|| run.default_sampler()))
            };
            spec.validate()?;
            let out = run.sample(&Plan::new(args.n, None), args.seed, &spec, |_| {})?;
            (
                out.points.clone(),
                format!(
                    "{} points, sampler {} (NFE {})",
                    out.points.len(),
                    spec.sampler.name(),
                    out.nfe_per_path()
                ),
            )
        }
    };
    let report = evaluate(&EvalJob {
        run: &run,
        samples: &samples,
        samples_from: from,
        reference: args.reference.as_deref(),
        n: args.n,
        seed: args.seed,
        nll: args.nll,
    })?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| run.dir.join("metrics.json"));
    write_json(&out, &report)?;
    mode.json(&report)?;
    mode.say(table(&report));
    mode.say(format!("wrote {}", out.display()));
    Ok(())
}
