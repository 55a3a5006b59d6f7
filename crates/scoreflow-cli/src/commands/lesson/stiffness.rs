//! `scoreflow lesson stiffness` (`scoreflow::lessons::stiffness`): explicit Euler just below
//! and just above h_max near a sharp mode.

use std::path::{Path, PathBuf};

use anyhow::Result;
use scoreflow::lessons::stiffness::{run as run_lesson, StiffnessConfig, StiffnessReport};

use super::{sig3, Outcome, Overrides, Table};
use crate::plot::{self, LinePanel, Series, PALETTE};

/// Runs the lesson: `--steps` (training, 4,000), `--num` (chains, 200), `--seed`.
pub fn run(ov: &Overrides, dir: &Path) -> Result<Outcome> {
    let mut cfg = if ov.quick {
        StiffnessConfig::small()
    } else {
        StiffnessConfig::default()
    };
    if let Some(s) = ov.steps {
        cfg.sharp.train.steps = s;
    }
    if let Some(n) = ov.n {
        cfg.chains = n;
    }
    if let Some(s) = ov.seed {
        cfg.sharp.seed = s;
    }
    let r = &run_lesson(&cfg)?;
    let mut fields = Table::new(
        format!(
            "the Jacobian at each field's mode x* (narrow mode σ_n = {}; a round Gaussian mode has h_max = 2σ_n² = {})",
            cfg.sharp.narrow_std,
            sig3(r.exact_h_max)
        ),
        &["score", "‖x* − μ_n‖/σ_n", "eigenvalues of J(x*)", "h_max", "stiffness ratio"],
    );
    let mut euler = Table::new(
        format!(
            "Euler x ← x + h s(x), {} steps of {} chains from x* + 10⁻²σ_n noise",
            cfg.euler_steps, cfg.chains
        ),
        &[
            "score",
            "h/h_max",
            "h",
            "predicted max|1 + hλ|",
            "measured rate",
            "at x* after",
        ],
    );
    for row in &r.rows {
        let eig: Vec<String> = row
            .eigenvalues
            .iter()
            .map(|[re, im]| {
                if im.abs() > 1e-9 * re.abs() {
                    format!("{}{:+}i", sig3(*re), sig3(*im))
                } else {
                    sig3(*re)
                }
            })
            .collect();
        fields.row(vec![
            row.name.clone(),
            format!("{:.3}", row.fixed_point_offset),
            eig.join(", "),
            sig3(row.h_max),
            row.stiffness_ratio
                .map_or("–".into(), |s| format!("{s:.2}")),
        ]);
        for e in &row.euler {
            euler.row(vec![
                row.name.clone(),
                format!("{}", e.factor),
                sig3(e.step),
                format!("{:.4}", e.predicted_rate),
                format!("{:.4}", e.measured_rate),
                format!("{:.0}%", 100.0 * e.converged_share),
            ]);
        }
    }
    euler.note("measured rate: growth factor per step of the median distance to x*, least-squares slope of ln distance from step 5 while it lies in [10⁻² d₀, 0.3σ_n]; at x* after: share of chains within 0.1σ_n at the end");
    let pictures = draw(dir, r)?;
    Outcome::new(&cfg, r, r.verdict(), vec![fields, euler], pictures)
}

fn draw(dir: &Path, r: &StiffnessReport) -> Result<Vec<PathBuf>> {
    let mut series = Vec::new();
    for (k, row) in r.rows.iter().enumerate() {
        for e in &row.euler {
            series.push(Series {
                label: format!("{}, h = {} h_max", row.name, e.factor),
                points: e
                    .median_distance
                    .iter()
                    .enumerate()
                    .map(|(i, d)| [i as f64, *d])
                    .collect(),
                color: PALETTE[k % PALETTE.len()],
                dashed: e.factor < 1.0,
                markers: false,
            });
        }
    }
    let distance = dir.join("distance.png");
    plot::lines(
        &distance,
        &[LinePanel {
            title: "explicit Euler near the narrow mode".into(),
            x_label: "Euler step".into(),
            y_label: "median ‖x − x*‖ / σ_n".into(),
            series,
            log_x: false,
            log_y: true,
        }],
    )?;
    Ok(vec![distance])
}
