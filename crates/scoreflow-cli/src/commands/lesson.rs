//! `scoreflow lesson`: noise-free score matching + Langevin vs multi-σ DSM + annealed Langevin
//! on a two-mode mixture (`scoreflow::lessons::low_density`), with pictures of each learned field
//! next to the true one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::data::Points;
use scoreflow::field::analytic::GaussianMixture;
use scoreflow::lessons::low_density::{
    classic_lesson, two_modes, ClassicLessonConfig, ClassicLessonReport, PipelineRun, ScoreError,
};
use scoreflow::objective::sm::ScoreMatching;
use scoreflow::tensor::{self, times_like, DType};
use serde::Serialize;

use crate::cli::LessonArgs;
use crate::commands::plot::pairs;
use crate::output::{default_run_dir, human_secs, write_json, Mode};
use crate::plot::{
    self, Bounds, ColorMap, HeatPanel, QuiverPanel, ScatterPanel, DATA_COLOR, P2, SAMPLE_COLOR,
};

/// Arrows per axis in fields.png.
const QUIVER_N: usize = 21;
/// Cells per axis in error.png.
const HEAT_N: usize = 120;

/// What `scoreflow lesson` reports (`--json`) and writes to lesson.json.
#[derive(Debug, Clone, Serialize)]
pub struct LessonSummary {
    /// The settings.
    pub config: ClassicLessonConfig,
    /// The numbers.
    pub report: ClassicLessonReport,
    /// Pictures written.
    pub pictures: Vec<PathBuf>,
    /// Wall time, seconds.
    pub wall_s: f64,
}

/// Runs `scoreflow lesson`.
pub fn run(args: LessonArgs, mode: Mode) -> Result<()> {
    let started = Instant::now();
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if args.n < 2 {
        bail!("--num must be at least 2");
    }
    let mut cfg = ClassicLessonConfig::new(args.steps);
    cfg.noise_free = ScoreMatching::from_name(&args.objective)?;
    cfg.samples = args.n;
    cfg.seed = args.seed;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir("lesson", &args.objective));
    prepare(&dir)?;
    let mix = two_modes();
    mode.say(format!(
        "training {} and multi-σ DSM ({} steps each) on 0.2·N((−2.5, −2.5), 0.25 I) + 0.8·N((2.5, 2.5), 0.25 I) …",
        args.objective, args.steps
    ));
    let lesson = classic_lesson(&mix, &cfg)?;
    let pictures = draw(
        &dir,
        &mix,
        &lesson.data,
        &cfg,
        [&lesson.sm_langevin, &lesson.dsm_annealed],
    )?;
    let summary = LessonSummary {
        config: cfg,
        report: lesson.report,
        pictures,
        wall_s: started.elapsed().as_secs_f64(),
    };
    write_json(&dir.join("lesson.json"), &summary)?;
    mode.json(&summary)?;
    if mode == Mode::Normal {
        print_table(&summary);
        println!(
            "\nwrote {} in {}",
            dir.display(),
            human_secs(summary.wall_s)
        );
        for p in &summary.pictures {
            println!("  {}", p.display());
        }
    }
    Ok(())
}

/// Creates `dir`, refusing a non-empty directory that holds no earlier lesson (so nothing else
/// is overwritten).
fn prepare(dir: &Path) -> Result<()> {
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !dir.join("lesson.json").exists() {
        bail!(
            "{}: directory exists, is not empty and holds no earlier lesson; choose another --out",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create directory: {e}", dir.display()))
}

fn print_table(s: &LessonSummary) {
    let r = &s.report;
    println!(
        "\n{:<24} {:>9} {:>9} {:>9} {:>8}   score error on data / in box, by σ",
        "pipeline", "w(light)", "w(heavy)", "off-mode", "SW2"
    );
    println!(
        "{:<24} {:>9.3} {:>9.3} {:>9} {:>8.4}",
        "truth / noise floor", r.true_weights[0], r.true_weights[1], "", r.noise_floor_sw2
    );
    for p in [&r.sm_langevin, &r.dsm_annealed] {
        let errs: Vec<String> = p
            .score_errors
            .iter()
            .map(|e| format!("σ={:.2}: {:.2} / {:.2}", e.sigma, e.on_data, e.in_box))
            .collect();
        println!(
            "{:<24} {:>9.3} {:>9.3} {:>9.3} {:>8.4}   {}",
            p.name,
            p.mode_weights[0],
            p.mode_weights[1],
            p.off_modes,
            p.sw2,
            errs.join(", ")
        );
    }
    println!(
        "(binomial SE of a weight: {:.3}; score error = relative RMS error of the learned score against ∇log(p ∗ N(0, σ²I)), at data points / over the box [−{a}, {a}]²)",
        r.weight_se[0],
        a = s.config.start_box
    );
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
