//! `scoreflow lesson sharp-modes` (`scoreflow::lessons::sharp_modes`): flatter learned scores,
//! wider Langevin samples.

use std::path::{Path, PathBuf};

use anyhow::Result;
use scoreflow::data::Points;
use scoreflow::field::analytic::MixtureScore;
use scoreflow::field::VectorField;
use scoreflow::lessons::sharp_modes::{run as run_lesson, SharpModesConfig, SharpModesLesson};
use scoreflow::tensor::{self, DType};

use super::{sig3, Outcome, Overrides, Table};
use crate::plot::{self, LinePanel, Series, P2, PALETTE};

/// Runs the lesson: `--steps` (4,000), `--num` (4,000 chains), `--seed`.
pub fn run(ov: &Overrides, dir: &Path) -> Result<Outcome> {
    let mut cfg = if ov.quick {
        SharpModesConfig::small()
    } else {
        SharpModesConfig::default()
    };
    ov.apply(&mut cfg.train.steps, &mut cfg.samples, &mut cfg.seed);
    let l = run_lesson(&cfg)?;
    let pictures = draw(dir, &l, &cfg)?;
    let r = &l.report;
    let mut t = Table::new(
        format!(
            "narrow mode σ_n = {}: true max ‖∇²log p‖₂ = {}, slope 1/σ_n² = {}",
            cfg.narrow_std,
            sig3(r.true_lipschitz),
            sig3(r.true_slope)
        ),
        &[
            "score",
            "L̂ = max‖J‖₂",
            "mean ‖J‖₂ near μ_n",
            "slopes at x*",
            "‖x* − μ_n‖/σ_n",
            "samples' mean shift/σ_n",
            "narrow std/σ_n",
            "± SE",
            "predicted",
            "wide std/σ_w",
            "narrow share",
        ],
    );
    for row in &r.rows {
        t.row(vec![
            row.name.clone(),
            sig3(row.lipschitz),
            sig3(row.near_mode_slope),
            row.mode_slopes
                .iter()
                .map(|k| sig3(*k))
                .collect::<Vec<_>>()
                .join(", "),
            format!("{:.2}", row.mode_shift),
            format!("{:.2}", row.sample_shift),
            format!("{:.3}", row.narrow_inflation),
            format!("{:.3}", row.narrow_inflation_se),
            format!("{:.3}", row.predicted_inflation),
            format!("{:.3}", row.wide_inflation),
            format!("{:.3}", row.narrow_share),
        ]);
    }
    t.note(format!(
        "x*: the field's own mode near μ_n; narrow std about the samples' own mean; ULA ε = {} σ_n² = {}, {} steps from {} data points; predicted: √(½Σ 1/(kᵢσ_n²(1 − εkᵢ/2))) from the slopes kᵢ at x* (a linearisation: rough for a network); networks 2 → width^{} → 2 trained by explicit score matching",
        cfg.step_ratio,
        sig3(r.ula_step),
        cfg.ula_steps,
        cfg.samples,
        cfg.depth
    ));
    Outcome::new(&cfg, r, r.verdict(), vec![t], pictures)
}

fn eval(field: &dyn VectorField, pts: &[P2]) -> Result<Vec<P2>> {
    let x = Points::new(pts.iter().flatten().copied().collect(), 2)?
        .to_tensor(&tensor::cpu(), DType::F64);
    let v = tensor::to_vec(&field.eval_at(&x, 0.0));
    Ok(v.chunks(2).map(|c| [c[0], c[1]]).collect())
}

fn draw(dir: &Path, l: &SharpModesLesson, cfg: &SharpModesConfig) -> Result<Vec<PathBuf>> {
    let exact = MixtureScore::fixed(l.mixture.clone());
    let mut fields: Vec<(String, &dyn VectorField)> = vec![("true score".into(), &exact)];
    for t in &l.networks {
        fields.push((format!("width {}", t.width), &t.net));
    }
    let [mx, my] = cfg.narrow_mean;
    let slice = |lo: f64, hi: f64| -> Result<Vec<Series>> {
        let xs: Vec<P2> = (0..=400)
            .map(|i| [lo + (hi - lo) * i as f64 / 400.0, my])
            .collect();
        fields
            .iter()
            .enumerate()
            .map(|(k, (name, f))| {
                Ok(Series {
                    label: name.clone(),
                    points: xs
                        .iter()
                        .zip(eval(*f, &xs)?)
                        .map(|(x, v)| [x[0], v[0]])
                        .collect(),
                    color: PALETTE[k % PALETTE.len()],
                    dashed: k == 0,
                    markers: false,
                })
            })
            .collect()
    };
    let s = cfg.narrow_std;
    let slices = dir.join("slices.png");
    plot::lines(
        &slices,
        &[
            LinePanel {
                title: "score s₁ along x₂ = 0".into(),
                x_label: "x₁".into(),
                y_label: "s₁(x₁, 0)".into(),
                series: slice(-3.0, 3.0)?,
                log_x: false,
                log_y: false,
            },
            LinePanel {
                title: format!("zoom: μ_n ± 6σ_n (σ_n = {s})"),
                x_label: "x₁".into(),
                y_label: "s₁(x₁, 0)".into(),
                series: slice(mx - 6.0 * s, mx + 6.0 * s)?,
                log_x: false,
                log_y: false,
            },
        ],
    )?;
    // Histograms of (x₁ − μ_n)/σ_n of the samples nearest the narrow mean, as densities.
    let bins = 60;
    let (lo, hi) = (-6.0, 6.0);
    let w = (hi - lo) / bins as f64;
    let mut series = vec![Series {
        label: "N(0, 1): the narrow component".into(),
        points: (0..=240)
            .map(|i| {
                let z = lo + (hi - lo) * i as f64 / 240.0;
                [
                    z,
                    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt(),
                ]
            })
            .collect(),
        color: PALETTE[7],
        dashed: true,
        markers: false,
    }];
    for (k, (x, row)) in l.samples.iter().zip(&l.report.rows).enumerate() {
        let mut counts = vec![0usize; bins];
        let mut total = 0usize;
        // The lesson's narrow group: within a quarter of the distance between the means.
        let radius = 0.25 * (mx - cfg.wide_mean[0]).hypot(my - cfg.wide_mean[1]);
        for r in x.rows() {
            if (r[0] - mx).hypot(r[1] - my) <= radius {
                total += 1;
                let z = (r[0] - mx) / s;
                if z >= lo && z < hi {
                    counts[((z - lo) / w) as usize] += 1;
                }
            }
        }
        series.push(Series {
            label: format!("ULA, {} score (std ×{:.2})", row.name, row.narrow_inflation),
            points: counts
                .iter()
                .enumerate()
                .map(|(b, c)| {
                    [
                        lo + (b as f64 + 0.5) * w,
                        *c as f64 / (total.max(1) as f64 * w),
                    ]
                })
                .collect(),
            color: PALETTE[k % PALETTE.len()],
            dashed: false,
            markers: false,
        });
    }
    let narrow = dir.join("narrow_mode.png");
    plot::lines(
        &narrow,
        &[LinePanel {
            title: "Langevin samples of the narrow mode".into(),
            x_label: "(x₁ − μ_n) / σ_n".into(),
            y_label: "density".into(),
            series,
            log_x: false,
            log_y: false,
        }],
    )?;
    Ok(vec![slices, narrow])
}
