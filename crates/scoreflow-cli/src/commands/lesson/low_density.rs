//! `scoreflow lesson low-density`: noise-free score matching + Langevin vs multi-σ DSM +
//! annealed Langevin on a two-mode mixture (`scoreflow::lessons::low_density`), with pictures of
//! each learned field next to the true one.

use std::path::{Path, PathBuf};

use anyhow::Result;
use scoreflow::data::Points;
use scoreflow::field::analytic::GaussianMixture;
use scoreflow::lessons::low_density::{
    classic_lesson, two_modes, ClassicLessonConfig, ClassicLessonReport, PipelineRun, ScoreError,
};
use scoreflow::objective::sm::ScoreMatching;
use scoreflow::tensor::{self, times_like, DType};

use super::{sig3, Outcome, Overrides, Table};
use crate::commands::plot::pairs;
use crate::output::Mode;
use crate::plot::{
    self, Bounds, ColorMap, HeatPanel, QuiverPanel, ScatterPanel, DATA_COLOR, P2, SAMPLE_COLOR,
};

/// Arrows per axis in fields.png.
const QUIVER_N: usize = 21;
/// Cells per axis in error.png.
const HEAT_N: usize = 120;

/// Runs the lesson: `--steps` (3,000), `--num` (4,000 samples), `--objective`, `--seed`
/// (the samplers'; training uses seed 0).
pub fn run(ov: &Overrides, dir: &Path, mode: Mode) -> Result<Outcome> {
    let mut cfg = if ov.quick {
        ClassicLessonConfig::small()
    } else {
        ClassicLessonConfig::new(3000)
    };
    ov.apply(&mut cfg.train.steps, &mut cfg.samples, &mut cfg.seed);
    cfg.noise_free = ScoreMatching::from_name(&ov.objective)?;
    mode.say(format!(
        "training {} and multi-σ DSM ({} steps each) on 0.2·N((−2.5, −2.5), 0.25 I) + 0.8·N((2.5, 2.5), 0.25 I) …",
        ov.objective, cfg.train.steps
    ));
    let mix = two_modes();
    let lesson = classic_lesson(&mix, &cfg)?;
    let pictures = draw(
        dir,
        &mix,
        &lesson.data,
        &cfg,
        [&lesson.sm_langevin, &lesson.dsm_annealed],
    )?;
    let verdict = lesson.report.verdict();
    Outcome::new(
        &cfg,
        &lesson.report,
        verdict,
        vec![table(&lesson.report, &cfg)],
        pictures,
    )
}

fn table(r: &ClassicLessonReport, cfg: &ClassicLessonConfig) -> Table {
    let mut t = Table::new(
        "mode weights and score errors",
        &[
            "pipeline",
            "w(light)",
            "w(heavy)",
            "off-mode",
            "SW2",
            "score error on data / in box, by σ",
        ],
    );
    t.row(vec![
        "truth / noise floor".into(),
        format!("{:.3}", r.true_weights[0]),
        format!("{:.3}", r.true_weights[1]),
        String::new(),
        sig3(r.noise_floor_sw2),
        String::new(),
    ]);
    for p in [&r.sm_langevin, &r.dsm_annealed] {
        let errs: Vec<String> = p
            .score_errors
            .iter()
            .map(|e| format!("σ={:.2}: {:.2} / {:.2}", e.sigma, e.on_data, e.in_box))
            .collect();
        t.row(vec![
            p.name.clone(),
            format!("{:.3}", p.mode_weights[0]),
            format!("{:.3}", p.mode_weights[1]),
            format!("{:.3}", p.off_modes),
            sig3(p.sw2),
            errs.join(", "),
        ]);
    }
    t.note(format!(
        "binomial SE of a weight: {:.3}; score error = relative RMS error of the learned score against ∇log(p ∗ N(0, σ²I)), at data points / over the box [−{a}, {a}]²",
        r.weight_se[0],
        a = cfg.start_box
    ));
    t
}

/// The learned score of `run` at `pts`, at model time τ.
fn learned(run: &PipelineRun, tau: f64, pts: &[P2]) -> Result<Vec<P2>> {
    let x = Points::new(pts.iter().flat_map(|p| *p).collect(), 2)?
        .to_tensor(&tensor::cpu(), DType::F32);
    let v = tensor::to_vec(&run.score.eval(&x, &times_like(&x, tau)));
    Ok(v.chunks(2).map(|c| [c[0], c[1]]).collect())
}

/// The true score ∇log (p ∗ N(0, σ²I)) at `pts`.
fn truth(mix: &GaussianMixture, sigma: f64, pts: &[P2]) -> Result<Vec<P2>> {
    let m = mix.perturbed(1.0, sigma)?;
    Ok(pts
        .iter()
        .map(|p| {
            let s = m.score(p);
            [s[0], s[1]]
        })
        .collect())
}

/// fields.png, fields_noisy.png, error.png and samples.png.
fn draw(
    dir: &Path,
    mix: &GaussianMixture,
    data: &Points,
    cfg: &ClassicLessonConfig,
    runs: [&PipelineRun; 2],
) -> Result<Vec<PathBuf>> {
    let a = cfg.start_box;
    let b = Bounds {
        x: (-a, a),
        y: (-a, a),
    };
    let data_p = pairs(data);
    let origins = b.grid(QUIVER_N);
    let quiver_panel = |title: String, vectors: Vec<P2>| QuiverPanel {
        title,
        vectors,
        origins: origins.clone(),
    };
    // (pipeline, level) for every compared noise level, SM's σ = 0 first.
    let levels: Vec<(&PipelineRun, &ScoreError)> = runs
        .iter()
        .flat_map(|r| r.result.score_errors.iter().map(move |e| (*r, e)))
        .collect();

    // The learned fields at the smallest level next to the true score, then DSM's at the larger
    // levels, each next to the true score of p ∗ N(0, σ²I).
    let mut clean = vec![quiver_panel(
        "true score ∇log p".into(),
        truth(mix, 0.0, &origins)?,
    )];
    let mut noisy = Vec::new();
    for (r, e) in &levels {
        let panel = quiver_panel(
            format!("{} at σ = {:.2}", r.result.name, e.sigma),
            learned(r, e.tau, &origins)?,
        );
        if e.sigma < 0.5 {
            clean.push(panel);
        } else {
            noisy.push(quiver_panel(
                format!("true score of p ∗ N(0, {:.0}²I)", e.sigma),
                truth(mix, e.sigma, &origins)?,
            ));
            noisy.push(panel);
        }
    }
    let fields = dir.join("fields.png");
    plot::quiver(&fields, &clean, b, Some(&data_p))?;
    let mut written = vec![fields];
    if !noisy.is_empty() {
        let path = dir.join("fields_noisy.png");
        plot::quiver(&path, &noisy, b, Some(&data_p))?;
        written.push(path);
    }

    // Where each learned field is wrong: log10 of the relative error per cell.
    let cells = b.grid(HEAT_N);
    let mut heat = Vec::new();
    for (r, e) in &levels {
        let (v, s) = (learned(r, e.tau, &cells)?, truth(mix, e.sigma, &cells)?);
        let values = v
            .iter()
            .zip(&s)
            .map(|(v, s)| {
                let err = (v[0] - s[0]).hypot(v[1] - s[1]);
                (err / s[0].hypot(s[1]).max(1e-12)).max(1e-4).log10()
            })
            .collect();
        heat.push(HeatPanel {
            title: format!(
                "{} σ={:.2}: {:.2} data, {:.2} box",
                r.result.name, e.sigma, e.on_data, e.in_box
            ),
            values,
            n: HEAT_N,
            cmap: ColorMap::Viridis,
            label: "log₁₀ ‖s_θ − s‖ / ‖s‖".into(),
            overlay: Some(&data_p),
            range: Some((-3.0, 1.0)),
        });
    }
    let error = dir.join("error.png");
    plot::heatmap(&error, &heat, b)?;
    written.push(error);

    // The samples.
    let sm_p = pairs(&runs[0].samples);
    let dsm_p = pairs(&runs[1].samples);
    let weights = |r: &PipelineRun| {
        format!(
            "{} — weights {:.2} / {:.2}",
            r.result.name, r.result.mode_weights[0], r.result.mode_weights[1]
        )
    };
    let samples = dir.join("samples.png");
    plot::scatter(
        &samples,
        &[
            ScatterPanel {
                title: format!(
                    "data — weights {:.1} / {:.1}",
                    mix.weights()[0],
                    mix.weights()[1]
                ),
                points: &data_p,
                color: DATA_COLOR,
            },
            ScatterPanel {
                title: weights(runs[0]),
                points: &sm_p,
                color: SAMPLE_COLOR,
            },
            ScatterPanel {
                title: weights(runs[1]),
                points: &dsm_p,
                color: SAMPLE_COLOR,
            },
        ],
    )?;
    written.push(samples);
    Ok(written)
}
