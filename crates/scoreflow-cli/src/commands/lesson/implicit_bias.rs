//! `scoreflow lesson implicit-bias` (`scoreflow::lessons::implicit_bias`): the antisymmetric
//! part of a linear DSM score decays at rate 2c.

use std::path::{Path, PathBuf};

use anyhow::Result;
use scoreflow::lessons::implicit_bias::{
    run as run_lesson, ImplicitBiasConfig, ImplicitBiasReport,
};
use scoreflow::lessons::Lesson;

use super::{Outcome, Overrides, Table};
use crate::plot::{self, LinePanel, Series, PALETTE};

/// Runs the lesson: `--seed`; no network, no samples.
pub fn run(ov: &Overrides, dir: &Path) -> Result<Outcome> {
    ov.reject(Lesson::ImplicitBias, true, true)?;
    let mut cfg = ImplicitBiasConfig::default();
    if let Some(s) = ov.seed {
        cfg.seed = s;
    }
    let r = run_lesson(&cfg)?;
    let mut t = Table::new(
        format!(
            "DSM on s(y) = W y, d = {}, σ = {}: decay rate of ‖W_A‖_F = ‖(W − Wᵀ)/2‖_F",
            cfg.dim, cfg.sigma
        ),
        &[
            "c",
            "2c",
            "flow rate",
            "rel. error",
            "SGD rate",
            "rel. error",
        ],
    );
    for row in &r.rows {
        let rel = |x: f64| format!("{:+.2}%", 100.0 * (x / (2.0 * row.c) - 1.0));
        t.row(vec![
            format!("{}", row.c),
            format!("{}", 2.0 * row.c),
            format!("{:.5}", row.flow.fitted_rate),
            rel(row.flow.fitted_rate),
            format!("{:.4}", row.sgd.fitted_rate),
            rel(row.sgd.fitted_rate),
        ]);
    }
    t.note(format!(
        "flow: RK4 with {} steps on [0, 2/c]; SGD: batch {}, lr = {}/c, time = lr × steps (its rate carries the O(c·lr) bias ln(1 − 2c·lr)/lr)",
        cfg.flow_steps, cfg.batch, cfg.lr_times_c
    ));
    let pictures = vec![draw(dir, &r)?];
    Outcome::new(&cfg, &r, r.verdict(), vec![t], pictures)
}

fn draw(dir: &Path, r: &ImplicitBiasReport) -> Result<PathBuf> {
    let mut series = Vec::new();
    for (k, row) in r.rows.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let a0 = row.flow.antisymmetric_norm[0];
        series.push(Series {
            label: format!("c = {}: e^(−2ct)", row.c),
            points: row
                .flow
                .times
                .iter()
                .map(|t| [*t, a0 * (-2.0 * row.c * t).exp()])
                .collect(),
            color: PALETTE[7],
            dashed: true,
            markers: false,
        });
        series.push(Series {
            label: format!("c = {}: gradient flow", row.c),
            points: row
                .flow
                .times
                .iter()
                .zip(&row.flow.antisymmetric_norm)
                .map(|(t, a)| [*t, *a])
                .collect(),
            color,
            dashed: false,
            markers: false,
        });
        series.push(Series {
            label: format!("c = {}: SGD", row.c),
            points: row
                .sgd
                .times
                .iter()
                .zip(&row.sgd.antisymmetric_norm)
                .step_by(5)
                .map(|(t, a)| [*t, *a])
                .collect(),
            color,
            dashed: false,
            markers: true,
        });
    }
    let path = dir.join("decay.png");
    plot::lines(
        &path,
        &[LinePanel {
            title: "antisymmetric part of W under DSM".into(),
            x_label: "training time t".into(),
            y_label: "‖W_A‖_F".into(),
            series,
            log_x: false,
            log_y: true,
        }],
    )?;
    Ok(path)
}
