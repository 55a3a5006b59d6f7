//! `scoreflow lesson nonlinear-drift` (`scoreflow::lessons::nonlinear_drift`): DSM on simulated
//! transitions of an energy-based drift against analytic-kernel DSM.

use std::path::{Path, PathBuf};

use anyhow::Result;
use scoreflow::lessons::nonlinear_drift::{
    run as run_lesson, NonlinearDriftConfig, NonlinearDriftLesson,
};

use super::{sig3, Outcome, Overrides, Table};
use crate::commands::plot::pairs;
use crate::plot::{
    self, Bounds, ColorMap, HeatPanel, LinePanel, ScatterPanel, Series, DATA_COLOR, P2, PALETTE,
    SAMPLE_COLOR,
};

/// Runs the lesson: `--steps` (3,000), `--num` (4,000), `--seed`.
pub fn run(ov: &Overrides, dir: &Path) -> Result<Outcome> {
    let mut cfg = if ov.quick {
        NonlinearDriftConfig::small()
    } else {
        NonlinearDriftConfig::default()
    };
    ov.apply(&mut cfg.train.steps, &mut cfg.samples, &mut cfg.seed);
    let l = run_lesson(&cfg)?;
    let r = &l.report;
    let mut t = Table::new(
        format!(
            "dx = −(β/2)(1 + c‖x‖²)x dτ + √β dw, β = {}: DSM targets against the true score",
            cfg.beta
        ),
        &[
            "target",
            "c",
            "target power",
            "score error at τ",
            "SW2",
            "escaped",
            "objective gap (z)",
            "loss",
        ],
    );
    for row in &r.rows {
        t.row(vec![
            row.target.clone(),
            format!("{}", row.quartic),
            format!("{:.2}", row.target_power),
            row.score_error
                .iter()
                .map(|p| format!("{}: {:.3}", p[0], p[1]))
                .collect::<Vec<_>>()
                .join(", "),
            sig3(row.sw2),
            format!("{:.1}%", 100.0 * row.diverged),
            row.objective_gap
                .map_or("–".into(), |g| format!("{} ({:.1})", sig3(g.mean), g.z())),
            sig3(row.final_loss),
        ]);
    }
    t.note("analytic: x_τ = m x₀ + s z exactly (c = 0 only); last-step: −z_K/√(βδ) from the last Euler–Maruyama step (exact in expectation for the simulated process, δ ≤ δ_max); gaussian-pair: −(x_τ − m x₀)/s², the linear part's kernel applied to simulated pairs (biased when c > 0)");
    t.note(format!(
        "target power: mean s(τ)²‖target‖²/d (1 for an analytic ε target); score error: p_τ-weighted relative RMS over the grid, truth = exact mixture (c = 0) or Fokker–Planck (c = {}; refinement L1 {:.1e})",
        cfg.quartic, r.fp_refinement_l1
    ));
    t.note(format!(
        "objective gap at τ = {}: loss of the true score minus the network's on the row's own simulated objective; > 0 (z ≫ 0) means the objective's minimiser is not the true score, i.e. the target is biased",
        cfg.gap_time
    ));
    t.note("SW2 of the reverse-SDE samples that stayed bounded; escaped: share of chains that left ‖x‖ ≤ 50 (run backwards, −f pushes outward and only the learned score holds them in)");
    t.note(format!(
        "prior mismatch KL(p_1 ‖ prior): {} (c = 0, N(0, I)), {} (c = {}, π ∝ e^(−V)); SW2 noise floor {}",
        sig3(r.prior_kl[0]),
        sig3(r.prior_kl[1]),
        cfg.quartic,
        sig3(r.noise_floor_sw2)
    ));
    let pictures = draw(dir, &l, &cfg)?;
    Outcome::new(&cfg, r, r.verdict(), vec![t], pictures)
}

fn draw(dir: &Path, l: &NonlinearDriftLesson, cfg: &NonlinearDriftConfig) -> Result<Vec<PathBuf>> {
    let (grid, dens) = &l.densities;
    let b = Bounds {
        x: grid.x,
        y: grid.y,
    };
    let panels: Vec<HeatPanel> = cfg
        .eval_times
        .iter()
        .zip(dens)
        .map(|(t, p)| HeatPanel {
            title: format!("c = {}: p_τ at τ = {t} (Fokker–Planck)", cfg.quartic),
            values: p.clone(),
            n: grid.n,
            cmap: ColorMap::Viridis,
            label: "density".into(),
            overlay: None,
            range: None,
        })
        .collect();
    let densities = dir.join("densities.png");
    plot::heatmap(&densities, &panels, b)?;
    let series: Vec<Series> = l
        .report
        .rows
        .iter()
        .enumerate()
        .map(|(k, r)| Series {
            label: format!("{}, c = {}", r.target, r.quartic),
            points: r.score_error.iter().map(|p| [p[0], p[1]]).collect(),
            color: PALETTE[k % PALETTE.len()],
            dashed: false,
            markers: true,
        })
        .collect();
    let errors = dir.join("errors.png");
    plot::lines(
        &errors,
        &[LinePanel {
            title: "learned score against the true one".into(),
            x_label: "τ".into(),
            y_label: "relative score error".into(),
            series,
            log_x: true,
            log_y: true,
        }],
    )?;
    let data = l.data.sample(
        cfg.samples,
        &mut scoreflow::tensor::rng(cfg.seed.wrapping_add(100)),
    );
    let data_p = pairs(&data);
    let sample_pairs: Vec<Vec<P2>> = l.samples.iter().map(pairs).collect();
    let mut scatter = vec![ScatterPanel {
        title: "data".into(),
        points: &data_p,
        color: DATA_COLOR,
    }];
    for (r, p) in l.report.rows.iter().zip(&sample_pairs) {
        scatter.push(ScatterPanel {
            title: format!("{}, c = {}", r.target, r.quartic),
            points: p,
            color: SAMPLE_COLOR,
        });
    }
    let samples = dir.join("samples.png");
    plot::scatter(&samples, &scatter)?;
    Ok(vec![densities, errors, samples])
}
