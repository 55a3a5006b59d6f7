//! `scoreflow likelihood`: per-point log p(x) by the instantaneous change of variables.

use std::path::PathBuf;

use anyhow::{bail, Result};
use scoreflow::data::{Dataset, Points};
use scoreflow::likelihood::{Divergence, LikelihoodOptions, ProbeNoise, RoundTrip};
use scoreflow::model::{load_points_or_explain, Model};
use scoreflow::solve::choice::ode_options;
use scoreflow::tensor;
use serde::Serialize;

use crate::cli::LikelihoodArgs;
use crate::output::{atomic_write, human_secs, write_json, Mode};

/// What `scoreflow likelihood` reports (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct LikelihoodSummary {
    /// Points evaluated.
    pub n: usize,
    /// Where they came from.
    pub data: String,
    /// mean log p(x), nats per point (data units).
    pub mean_log_prob: f64,
    /// Negative log-likelihood −mean log p.
    pub nll: f64,
    /// Standard error of the mean over points.
    pub se: f64,
    /// Standard error added by Hutchinson's estimator (k ≥ 2 probes).
    pub estimator_se: Option<f64>,
    /// The true NLL of the same points, when the data set's density is known.
    pub true_nll: Option<f64>,
    /// "exact" or "hutchinson(k)".
    pub divergence: String,
    /// ODE method.
    pub solver: String,
    /// Field evaluations (encode pass).
    pub nfe: usize,
    /// Wall time of the encode pass, seconds.
    pub wall_time_s: f64,
    /// Encode → decode reconstruction error.
    pub round_trip: Option<RoundTrip>,
    /// Per-point CSV written.
    pub out: PathBuf,
    /// Bits per dimension over the data's levels (image runs: 17 for digits, 256 for 8-bit
    /// images), from the dequantised log-likelihood.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_per_dim: Option<f64>,
}

/// The likelihood solver settings of `args` for `model` (no decode pass for image runs: it
/// would double the cost of the most expensive evaluation).
fn options(args: &LikelihoodArgs, model: &Model) -> Result<LikelihoodOptions> {
    let ode = ode_options(args.solver, args.steps, args.rtol, args.atol)?;
    let divergence = match args.hutchinson {
        None => Divergence::Auto,
        Some(0) => bail!("--hutchinson needs at least 1 probe"),
        Some(k) => Divergence::Hutchinson {
            probes: k,
            noise: ProbeNoise::Rademacher,
        },
    };
    Ok(LikelihoodOptions {
        ode,
        divergence,
        round_trip: model.image.is_none(),
        chunk: None,
    })
}

/// Runs `scoreflow likelihood`.
pub fn run(args: LikelihoodArgs, mode: Mode) -> Result<()> {
    let model = Model::load_on(&args.run, args.device)?;
    let opts = options(&args, &model)?;
    let data = match &args.data {
        Some(d) => d.clone(),
        None => match model.dataset() {
            Some(ds) => ds.name().to_string(),
            None => {
                if args.n == 0 {
                    bail!("-n must be at least 1");
                }
                let held = model.held_out(args.n, args.seed)?;
                return evaluate(
                    &args,
                    &model,
                    &opts,
                    held,
                    "the run's held-out split".into(),
                    None,
                    mode,
                );
            }
        },
    };
    let (points, what, truth): (Points, String, Option<Vec<f64>>) =
        match data.parse::<Dataset>().ok() {
            Some(ds) => {
                if args.n == 0 {
                    bail!("-n must be at least 1");
                }
                let mut r = tensor::rng(args.seed);
                r.set_stream(0x4c49_4b45); // "LIKE"
                let pts = ds.sample(args.n, &mut r);
                let truth = ds.log_density(&pts)?;
                (
                    pts,
                    format!("{} fresh draws of {ds} (seed {})", args.n, args.seed),
                    truth,
                )
            }
            None => (
                load_points_or_explain(&data, Some(model.dim()))?,
                data.clone(),
                None,
            ),
        };
    evaluate(&args, &model, &opts, points, what, truth, mode)
}

/// Evaluates, writes and reports the log-likelihood of `points`.
fn evaluate(
    args: &LikelihoodArgs,
    model: &Model,
    opts: &LikelihoodOptions,
    points: Points,
    what: String,
    truth: Option<Vec<f64>>,
    mode: Mode,
) -> Result<()> {
    let pb = mode.progress(1, "likelihood");
    pb.set_message(format!("{} points", points.len()));
    let lik = model.log_likelihood(&points, opts, &mut tensor::rng(args.seed))?;
    pb.finish_and_clear();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join("logp.csv"));
    let mut csv = String::from(if lik.log_prob_se.is_some() {
        "index,log_prob,log_prob_se\n"
    } else {
        "index,log_prob\n"
    });
    for (i, lp) in lik.log_prob.iter().enumerate() {
        match &lik.log_prob_se {
            Some(se) => csv.push_str(&format!("{i},{lp},{}\n", se[i])),
            None => csv.push_str(&format!("{i},{lp}\n")),
        }
    }
    atomic_write(&out, csv.as_bytes())?;
    let divergence = match lik.divergence {
        Divergence::Hutchinson { probes, .. } => format!("hutchinson({probes})"),
        _ => "exact".into(),
    };
    let true_nll = truth
        .filter(|t| t.iter().all(|v| v.is_finite()))
        .map(|t| -t.iter().sum::<f64>() / t.len() as f64);
    let summary = LikelihoodSummary {
        n: lik.n,
        data: what,
        mean_log_prob: lik.mean_log_prob,
        nll: lik.nll,
        se: lik.se,
        estimator_se: lik.estimator_se,
        true_nll,
        divergence,
        solver: lik.method.clone(),
        nfe: lik.nfe,
        wall_time_s: lik.wall_time_s,
        round_trip: lik.round_trip.clone(),
        out: out.clone(),
        bits_per_dim: lik.bpd,
    };
    // The summary beside the per-point CSV (what `scoreflow report` shows, e.g. bits/dim).
    write_json(&out.with_extension("json"), &summary)?;
    mode.json(&summary)?;
    mode.say(format!(
        "log p(x) on {}: mean {:.4} ± {:.4} nats (NLL {:.4}){}{}",
        summary.data,
        summary.mean_log_prob,
        summary.se,
        summary.nll,
        summary
            .estimator_se
            .map(|e| format!(", estimator SE {e:.4}"))
            .unwrap_or_default(),
        summary
            .true_nll
            .map(|t| format!("; true NLL {t:.4}"))
            .unwrap_or_default()
    ));
    if let Some(b) = summary.bits_per_dim {
        mode.say(format!(
            "bits/dim {b:.4} over {} levels (dequantised: a bound on the discrete likelihood)",
            model.image.map_or(0, |f| f.levels)
        ));
    }
    mode.say(format!(
        "{} divergence, {} NFE, {}",
        summary.divergence,
        summary.nfe,
        human_secs(summary.wall_time_s)
    ));
    if let Some(rt) = &summary.round_trip {
        mode.say(format!(
            "round trip data → prior → data: mean error {:.2e} (max {:.2e}, relative {:.2e}); if this is not small, tighten --rtol/--atol",
            rt.mean_error, rt.max_error, rt.relative_error
        ));
    }
    mode.say(format!("wrote {}", out.display()));
    Ok(())
}
