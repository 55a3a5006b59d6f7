//! `scoreflow lesson stationary-sampler` (`scoreflow::lessons::stationary_sampler`): a
//! fixed-step ULA on a time-dependent score against the reverse SDE, both on exact scores.

use std::path::{Path, PathBuf};

use anyhow::Result;
use scoreflow::lessons::stationary_sampler::{
    run as run_lesson, StationarySamplerConfig, StationarySamplerLesson,
};
use scoreflow::lessons::Lesson;

use super::{sig3, Outcome, Overrides, Table};
use crate::commands::plot::pairs;
use crate::plot::{self, LinePanel, ScatterPanel, Series, DATA_COLOR, PALETTE, SAMPLE_COLOR};

/// Runs the lesson: `--num` (10,000 samples per run), `--seed`; no training.
pub fn run(ov: &Overrides, dir: &Path) -> Result<Outcome> {
    ov.reject(Lesson::StationarySampler, true, false)?;
    let mut cfg = if ov.quick {
        StationarySamplerConfig::small()
    } else {
        StationarySamplerConfig::default()
    };
    if let Some(n) = ov.n {
        cfg.samples = n;
    }
    if let Some(s) = ov.seed {
        cfg.seed = s;
    }
    let l = run_lesson(&cfg)?;
    let r = &l.report;
    let pct = |v: &[f64]| {
        v.iter()
            .map(|e| format!("{:+.1}%", 100.0 * e))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let list = |v: &[f64]| v.iter().map(|x| sig3(*x)).collect::<Vec<_>>().join(", ");
    let mut mc = Table::new(
        format!(
            "Monte Carlo, exact scores, VE σ {} → {}, {} samples; stationary ULA step ε = {}",
            cfg.sigma_min, cfg.sigma_max, cfg.samples, cfg.ula_step
        ),
        &[
            "data",
            "sampler",
            "K",
            "mean",
            "max |mean|/SE",
            "variance",
            "target",
            "error",
            "max |ΔV|/SE",
        ],
    );
    for row in &r.monte_carlo {
        mc.row(vec![
            row.data.clone(),
            row.sampler.name().into(),
            row.steps.to_string(),
            list(&row.mean),
            format!("{:.1}", row.mean_z()),
            list(&row.variance),
            list(&row.target_variance),
            pct(&row.relative_variance_error()),
            format!("{:.1}", row.variance_z()),
        ]);
    }
    mc.note("per coordinate (x₁, x₂); target: the variance of p_ε, the data's plus σ(ε)²; SE from the samples' own moments");
    let mut exact = Table::new(
        format!(
            "exact output variance on N(0, diag({})) by the recursion",
            list(&cfg.variances)
        ),
        &["sampler", "K", "variance", "error"],
    );
    for row in &r.exact {
        exact.row(vec![
            row.sampler.name().into(),
            row.steps.to_string(),
            list(&row.variance),
            pct(&row.relative_error),
        ]);
    }
    exact.note("the reverse SDE's error shrinks with K to the prior mismatch (p_T ≠ N(0, σ_max² I)); the fixed-step ULA's does not: it keeps ULA's bias ≈ ε/(2v − ε)");
    let pictures = draw(dir, &l, &cfg)?;
    Outcome::new(&cfg, r, r.verdict(), vec![mc, exact], pictures)
}

fn draw(
    dir: &Path,
    l: &StationarySamplerLesson,
    cfg: &StationarySamplerConfig,
) -> Result<Vec<PathBuf>> {
    let p = &l.paths;
    let panels: Vec<LinePanel> = cfg
        .variances
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let curve = |label: &str, ys: &[f64], k: usize, dashed: bool| Series {
                label: label.into(),
                points: p.tau.iter().zip(ys).map(|(t, y)| [*t, *y]).collect(),
                color: PALETTE[k],
                dashed,
                markers: false,
            };
            LinePanel {
                title: format!("coordinate {} (data variance {v}), K = {}", i + 1, p.steps),
                x_label: "diffusion time τ (the run goes from 1 to 0)".into(),
                y_label: "variance".into(),
                series: vec![
                    curve("Var p_τ (exact)", &p.target[i], 7, true),
                    curve("reverse SDE", &p.reverse_sde[i], 0, false),
                    curve("stationary ULA", &p.stationary_ula[i], 1, false),
                ],
                log_x: false,
                log_y: true,
            }
        })
        .collect();
    let variance = dir.join("variance.png");
    plot::lines(&variance, &panels)?;
    let [em, ula, data] = &l.two_modes_samples;
    let (em, ula, data) = (pairs(em), pairs(ula), pairs(data));
    let samples = dir.join("samples.png");
    plot::scatter(
        &samples,
        &[
            ScatterPanel {
                title: "two-mode data".into(),
                points: &data,
                color: DATA_COLOR,
            },
            ScatterPanel {
                title: "reverse SDE".into(),
                points: &em,
                color: SAMPLE_COLOR,
            },
            ScatterPanel {
                title: format!("stationary ULA (ε = {})", cfg.ula_step),
                points: &ula,
                color: SAMPLE_COLOR,
            },
        ],
    )?;
    Ok(vec![variance, samples])
}
