//! `scoreflow lesson dimension` (`scoreflow::lessons::dimension`): errors against d.

use std::path::Path;

use anyhow::Result;
use scoreflow::lessons::dimension::{run as run_lesson, DimensionConfig, DimensionReport};

use super::{sig3, Outcome, Overrides, Table};
use crate::plot::{self, LinePanel, Series, PALETTE};

/// Runs the lesson: `--steps` (3,000), `--num` (4,000 samples), `--seed`.
pub fn run(ov: &Overrides, dir: &Path) -> Result<Outcome> {
    let mut cfg = if ov.quick {
        DimensionConfig::small()
    } else {
        DimensionConfig::default()
    };
    ov.apply(&mut cfg.train.steps, &mut cfg.samples, &mut cfg.seed);
    let report = run_lesson(&cfg)?;
    let pictures = vec![draw(dir, &report, &cfg)?];
    Outcome::new(
        &cfg,
        &report,
        report.verdict(),
        tables(&report, &cfg),
        pictures,
    )
}

fn tables(r: &DimensionReport, cfg: &DimensionConfig) -> Vec<Table> {
    cfg.models
        .iter()
        .map(|m| {
            let mut t = Table::new(
                format!(
                    "{} score model (width max({}, d), {} hidden layers), N(0, I_d) data",
                    m.name, m.min_width, m.depth
                ),
                &[
                    "d",
                    "n",
                    "score err",
                    "DSM optimum err",
                    "2nd-moment err",
                    "floor",
                    "excess",
                    "data's own",
                ],
            );
            for row in r.rows.iter().filter(|row| row.model == m.name) {
                t.row(vec![
                    row.dim.to_string(),
                    row.train_size.to_string(),
                    sig3(row.mean_score_error),
                    sig3(row.empirical_optimum_error),
                    sig3(row.moment_error),
                    sig3(row.moment_floor),
                    sig3(row.moment_excess),
                    sig3(row.train_moment_error),
                ]);
            }
            t.note(format!(
                "score err: relative RMS error against −x at points of p_τ, mean over τ = {:?}; DSM optimum: the score of the smoothed training set, what unlimited capacity converges to",
                cfg.eval_taus
            ));
            t.note(format!(
                "2nd-moment err: ‖M̂ − I‖_F/‖I‖_F of {} reverse-SDE samples; floor: the same for {} exact samples; excess: √(err² − floor²); data's own: the n training points' error",
                cfg.samples, cfg.samples
            ));
            t
        })
        .collect()
}

fn draw(dir: &Path, r: &DimensionReport, cfg: &DimensionConfig) -> Result<std::path::PathBuf> {
    let mut score = Vec::new();
    let mut moment = Vec::new();
    let mut k = 0;
    for m in &cfg.models {
        for &n in &cfg.train_sizes {
            let rows = r.at(&m.name, n);
            let color = PALETTE[k % PALETTE.len()];
            k += 1;
            let label = format!("{}, n = {n}", m.name);
            score.push(Series {
                label: label.clone(),
                points: rows
                    .iter()
                    .map(|x| [x.dim as f64, x.mean_score_error])
                    .collect(),
                color,
                dashed: false,
                markers: true,
            });
            moment.push(Series {
                label,
                points: rows
                    .iter()
                    .map(|x| [x.dim as f64, x.moment_error])
                    .collect(),
                color,
                dashed: false,
                markers: true,
            });
        }
    }
    if let (Some(m), Some(&n)) = (cfg.models.first(), cfg.train_sizes.first()) {
        moment.push(Series {
            label: format!("floor ({} exact samples)", cfg.samples),
            points: r
                .at(&m.name, n)
                .iter()
                .map(|x| [x.dim as f64, x.moment_floor])
                .collect(),
            color: PALETTE[7],
            dashed: true,
            markers: false,
        });
    }
    let path = dir.join("errors.png");
    plot::lines(
        &path,
        &[
            LinePanel {
                title: "learned score vs the closed form".into(),
                x_label: "dimension d".into(),
                y_label: "relative score error".into(),
                series: score,
                log_x: true,
                log_y: true,
            },
            LinePanel {
                title: "second moment of the samples".into(),
                x_label: "dimension d".into(),
                y_label: "‖M̂ − I‖_F / ‖I‖_F".into(),
                series: moment,
                log_x: true,
                log_y: true,
            },
        ],
    )?;
    Ok(path)
}
