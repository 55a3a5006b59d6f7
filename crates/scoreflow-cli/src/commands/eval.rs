//! `scoreflow eval`: sample-quality metrics against held-out data, next to the noise floor.

use anyhow::{bail, Result};
use scoreflow::data;
use std::path::PathBuf;

use scoreflow::model::conditional::ClassifierScore;
use scoreflow::model::evaluate::{check_sample_count, evaluate, EvalJob, EvalReport};
use scoreflow::model::{Model, Plan};
use scoreflow::solve::SamplerSpec;

use crate::cli::EvalArgs;
use crate::output::{write_json, Mode};
use serde::Serialize;

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
    let mmd_label = format!("MMD² ({} bandwidths)", r.mmd_bandwidths.len());
    let rows = [
        ("sliced W2", r.samples.sw2, r.floor.sw2, r.ratio.sw2),
        (
            mmd_label.as_str(),
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
        if let Some(b) = n.bits_per_dim {
            s.push_str(&format!("; {b:.4} bits/dim"));
        }
        s.push('\n');
    }
    if let Some(m) = &r.memorisation {
        s.push_str(&format!(
            "memorisation: mean distance to the nearest training image {:.3} for {} samples, {:.3} for {} held-out images (ratio {:.2}; ≪ 1 = copies)\n",
            m.sample_nn_mean, m.samples, m.held_out_nn_mean, m.held_out, m.ratio
        ));
    }
    s.push_str("ratio = samples / floor: ≈ 1 means as good as fresh data at this sample size");
    s
}

/// Flow times at which `eval` scores a classifier run.
const CLASSIFIER_TIMES: [f64; 5] = [0.25, 0.5, 0.75, 0.9, 1.0];

/// What `scoreflow eval` reports on a classifier run (`metrics.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierReport {
    /// The run directory.
    pub run: PathBuf,
    /// Held-out points per time.
    pub n: usize,
    /// One row per flow time.
    pub scores: Vec<ClassifierScore>,
}

/// `eval` of a classifier run: accuracy and cross-entropy at [`CLASSIFIER_TIMES`].
fn eval_classifier(model: &Model, args: &EvalArgs, n: usize, mode: Mode) -> Result<()> {
    if args.samples.is_some() || args.sampler.is_some() || args.steps.is_some() || args.nll > 0 {
        bail!("a classifier run is scored on noised held-out data: --samples, --sampler, --steps and --nll do not apply");
    }
    let scores = model.classifier_scores(&CLASSIFIER_TIMES, n, args.seed)?;
    let report = ClassifierReport {
        run: args.run.clone(),
        n,
        scores,
    };
    let out = write_report(args, &report, mode)?;
    let opt = |v: Option<f64>, p: usize| v.map_or("—".to_string(), |x| format!("{x:.p$}"));
    let mut s = format!(
        "{}\nheld-out accuracy on {} noised points (Bayes = the exact classifier of the data's mixture)\n{:>6}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
        model.kind, n, "t", "τ", "accuracy", "Bayes", "CE", "Bayes CE"
    );
    for r in &report.scores {
        s.push_str(&format!(
            "{:>6.2}{:>10.4}{:>10.4}{:>10}{:>10.4}{:>10}\n",
            r.t,
            r.model_time,
            r.accuracy,
            opt(r.bayes_accuracy, 4),
            r.cross_entropy,
            opt(r.bayes_cross_entropy, 4)
        ));
    }
    s.push_str(&format!("wrote {}", out.display()));
    mode.say(s);
    Ok(())
}

/// Writes an eval report to `--out` (default `RUN_DIR/metrics.json`) atomically and prints it
/// in JSON mode; returns the path written.
fn write_report<T: Serialize>(args: &EvalArgs, report: &T, mode: Mode) -> Result<PathBuf> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join("metrics.json"));
    write_json(&out, report)?;
    mode.json(report)?;
    Ok(out)
}

/// Runs `scoreflow eval`.
pub fn run(args: EvalArgs, mode: Mode) -> Result<()> {
    let model = Model::load(&args.run)?;
    let n = args
        .n
        .unwrap_or(if model.image.is_some() { 1000 } else { 10_000 });
    if n < 2 {
        bail!("-n must be at least 2");
    }
    if model.kind.is_classifier() {
        return eval_classifier(&model, &args, n, mode);
    }
    if args.samples.is_none() && args.reference.is_none() {
        check_sample_count(&model, n)?;
    }
    let (samples, from) = match &args.samples {
        Some(p) => {
            if !p.exists() {
                bail!("{}: no such file", p.display());
            }
            (
                data::load_points(p, Some(model.dim()))?,
                p.display().to_string(),
            )
        }
        None => {
            let spec = SamplerSpec {
                steps: args.steps,
                ..SamplerSpec::new(args.sampler.unwrap_or_else(|| model.default_sampler()))
            };
            let out = model.sample(&Plan::new(n, None), args.seed, &spec)?;
            (
                out.points.clone(),
                format!(
                    "{} points, sampler {} (NFE {})",
                    out.points.len(),
                    spec.sampler.name(),
                    out.stats.nfe_per_path()
                ),
            )
        }
    };
    let report = evaluate(&EvalJob {
        model: &model,
        samples: &samples,
        samples_from: from,
        reference: args.reference.as_deref(),
        n,
        seed: args.seed,
        nll: args.nll,
    })?;
    let out = write_report(&args, &report, mode)?;
    mode.say(table(&report));
    mode.say(format!("wrote {}", out.display()));
    Ok(())
}
