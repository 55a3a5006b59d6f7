//! `scoreflow lesson sde-zoo` (`scoreflow::lessons::sde_zoo`): VP, sub-VP and VE as wind and
//! fog, their prior mismatch, a Fokker–Planck check and their learned fields.

use std::path::{Path, PathBuf};

use anyhow::Result;
use scoreflow::data::Points;
use scoreflow::field::analytic::MixtureScore;
use scoreflow::field::VectorField;
use scoreflow::lessons::sde_zoo::{run as run_lesson, SdeZooConfig, SdeZooLesson, SdeZooReport};
use scoreflow::sde::Sde;
use scoreflow::tensor::{self, DType};

use super::{sig3, Outcome, Overrides, Table};
use crate::commands::plot::pairs;
use crate::plot::{
    self, Bounds, ColorMap, HeatPanel, LinePanel, QuiverPanel, ScatterPanel, Series, DATA_COLOR,
    P2, PALETTE, SAMPLE_COLOR,
};

/// Runs the lesson: `--steps` (3,000), `--num` (4,000), `--seed`.
pub fn run(ov: &Overrides, dir: &Path) -> Result<Outcome> {
    let mut cfg = if ov.quick {
        SdeZooConfig::small()
    } else {
        SdeZooConfig::default()
    };
    ov.apply(&mut cfg.train.steps, &mut cfg.samples, &mut cfg.seed);
    let l = run_lesson(&cfg)?;
    let pictures = draw(dir, &l, &cfg)?;
    let r = &l.report;
    Outcome::new(&cfg, r, r.verdict(), tables(r), pictures)
}

fn tables(r: &SdeZooReport) -> Vec<Table> {
    let mut priors = Table::new(
        "where each SDE ends: signal m(T), noise s(T), total fog ∫g², prior mismatch",
        &[
            "SDE",
            "m(T)",
            "s(T)",
            "prior std",
            "∫₀ᵀ g² dτ",
            "KL(p_T ‖ prior)",
        ],
    );
    let mut fp = Table::new(
        "Fokker–Planck check: ∫|p_numerical − p_τ| against the exact perturbed mixture",
        &["SDE", "grid", "cells", "steps", "L1 at τ", "mass drift"],
    );
    let mut learned = Table::new(
        "learned scores (same network and budget) and their samples",
        &["SDE", "score error at τ", "SW2", "loss"],
    );
    for row in &r.rows {
        priors.row(vec![
            row.sde.clone(),
            sig3(row.signal_at_t),
            sig3(row.noise_at_t),
            sig3(row.prior_std),
            sig3(row.total_fog),
            sig3(row.prior_kl),
        ]);
        let f = &row.fokker_planck;
        fp.row(vec![
            row.sde.clone(),
            format!("[±{:.1}]²", f.half_width),
            format!("{}²", f.cells),
            f.steps.to_string(),
            f.l1.iter()
                .map(|p| format!("{}: {:.1e}", p[0], p[1]))
                .collect::<Vec<_>>()
                .join(", "),
            format!("{:.0e}", f.mass_drift),
        ]);
        learned.row(vec![
            row.sde.clone(),
            row.score_error
                .iter()
                .map(|p| format!("{}: {:.3}", p[0], p[1]))
                .collect::<Vec<_>>()
                .join(", "),
            sig3(row.sw2),
            sig3(row.final_loss),
        ]);
    }
    priors.note("KL by midpoint quadrature of the exact densities on [±8 prior std]²");
    if let Some(row) = r.rows.first() {
        fp.note(format!("scheme: {}", row.fokker_planck.scheme));
    }
    learned.note(format!(
        "relative RMS error against the exact score at points of p_τ; SW2 of reverse-diffusion samples against fresh data (noise floor {})",
        sig3(r.noise_floor_sw2)
    ));
    vec![priors, fp, learned]
}

fn eval(field: &dyn VectorField, tau: f64, pts: &[P2]) -> Result<Vec<P2>> {
    let x = Points::new(pts.iter().flatten().copied().collect(), 2)?
        .to_tensor(&tensor::cpu(), DType::F32);
    let v = tensor::to_vec(&field.eval_at(&x, tau));
    Ok(v.chunks(2).map(|c| [c[0], c[1]]).collect())
}

fn square(a: f64) -> Bounds {
    Bounds {
        x: (-a, a),
        y: (-a, a),
    }
}

fn draw(dir: &Path, l: &SdeZooLesson, cfg: &SdeZooConfig) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let data_p = pairs(&l.reference);
    // Forward marginals p_τ (exact), one file per SDE.
    let times = [0.0, 0.1, 0.3, 0.6, 1.0];
    for run in &l.runs {
        let sde = &run.sde;
        let a = 1.2 * (3.0 + 2.5 * sde.mean_std(sde.t_max()).1).max(4.0);
        let b = square(a);
        let n = 120;
        let cells = b.grid(n);
        let panels = times
            .iter()
            .map(|&t| {
                let (m, s) = sde.mean_std(t);
                let p = l.data.perturbed(m, s)?;
                Ok(HeatPanel {
                    title: format!("{}: p_τ at τ = {t} (m {:.2}, s {:.2})", sde.name(), m, s),
                    values: cells.iter().map(|c| p.log_density(c).exp()).collect(),
                    n,
                    cmap: ColorMap::Viridis,
                    label: "density".into(),
                    overlay: None,
                    range: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let path = dir.join(format!("marginals_{}.png", sde.name()));
        plot::heatmap(&path, &panels, b)?;
        written.push(path);
    }
    // Wind and fog: m(τ), s(τ), g(τ)².
    let taus: Vec<f64> = (0..=200).map(|i| i as f64 / 200.0).collect();
    let curve = |f: &dyn Fn(&dyn Sde, f64) -> f64| -> Vec<Series> {
        l.runs
            .iter()
            .enumerate()
            .map(|(k, run)| Series {
                label: run.sde.name().into(),
                points: taus
                    .iter()
                    .filter(|t| **t > 0.0)
                    .map(|t| [*t, f(&*run.sde, *t)])
                    .collect(),
                color: PALETTE[k],
                dashed: false,
                markers: false,
            })
            .collect()
    };
    let schedules = dir.join("schedules.png");
    plot::lines(
        &schedules,
        &[
            LinePanel {
                title: "wind: the drift f = a(τ)·x".into(),
                x_label: "τ".into(),
                y_label: "−a(τ)".into(),
                series: curve(&|s: &dyn Sde, t: f64| -s.drift_coef(t)),
                log_x: false,
                log_y: false,
            },
            LinePanel {
                title: "fog: the diffusion g(τ)²".into(),
                x_label: "τ".into(),
                y_label: "g(τ)²".into(),
                series: curve(&|s: &dyn Sde, t: f64| s.diffusion(t).powi(2)),
                log_x: false,
                log_y: true,
            },
            LinePanel {
                title: "what is left: signal m(τ), noise s(τ) (dashed)".into(),
                x_label: "τ".into(),
                y_label: "m(τ), s(τ)".into(),
                series: {
                    let mut v = curve(&|s: &dyn Sde, t: f64| s.mean_std(t).0);
                    let mut noise = curve(&|s: &dyn Sde, t: f64| s.mean_std(t).1);
                    noise.iter_mut().for_each(|s| {
                        s.dashed = true;
                        s.label = format!("{} s(τ)", s.label);
                    });
                    v.iter_mut()
                        .for_each(|s| s.label = format!("{} m(τ)", s.label));
                    v.extend(noise);
                    v
                },
                log_x: false,
                log_y: true,
            },
        ],
    )?;
    written.push(schedules);
    // The wind f(x, τ) and the mass flow f − ½g²∇log p_τ (the probability-flow velocity).
    let b = square(4.0);
    let origins = b.grid(17);
    let tau = 0.3;
    let mut wind = Vec::new();
    for run in &l.runs {
        let a = run.sde.drift_coef(tau);
        let g2 = run.sde.diffusion(tau).powi(2);
        let exact = MixtureScore::new(l.data.clone(), run.sde.clone());
        let s = eval(&exact, tau, &origins)?;
        wind.push(QuiverPanel {
            title: format!(
                "{}: wind f at τ = {tau}{}",
                run.sde.name(),
                if a == 0.0 { " (none)" } else { "" }
            ),
            vectors: origins.iter().map(|o| [a * o[0], a * o[1]]).collect(),
            origins: origins.clone(),
        });
        wind.push(QuiverPanel {
            title: format!("{}: mass flow f − ½g²∇log p_τ", run.sde.name()),
            vectors: origins
                .iter()
                .zip(&s)
                .map(|(o, s)| [a * o[0] - 0.5 * g2 * s[0], a * o[1] - 0.5 * g2 * s[1]])
                .collect(),
            origins: origins.clone(),
        });
    }
    let wind_path = dir.join("wind.png");
    plot::quiver(&wind_path, &wind, b, Some(&data_p))?;
    written.push(wind_path);
    // Fokker–Planck: the numerical density at the second check time and its error.
    let k = 1.min(cfg.check_times.len() - 1);
    let t_check = cfg.check_times[k];
    for run in &l.runs {
        let (grid, dens) = &run.fp_density;
        let (m, s) = run.sde.mean_std(t_check);
        let p = l.data.perturbed(m, s)?;
        let exact: Vec<f64> = grid
            .centres()
            .iter()
            .map(|c| p.log_density(c).exp())
            .collect();
        let err: Vec<f64> = dens[k]
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs().max(1e-12).log10())
            .collect();
        let b = Bounds {
            x: grid.x,
            y: grid.y,
        };
        let path = dir.join(format!("fokker_planck_{}.png", run.sde.name()));
        plot::heatmap(
            &path,
            &[
                HeatPanel {
                    title: format!("{}: Fokker–Planck p at τ = {t_check}", run.sde.name()),
                    values: dens[k].clone(),
                    n: grid.n,
                    cmap: ColorMap::Viridis,
                    label: "density".into(),
                    overlay: None,
                    range: None,
                },
                HeatPanel {
                    title: "error against the exact p_τ".into(),
                    values: err,
                    n: grid.n,
                    cmap: ColorMap::Viridis,
                    label: "log₁₀ |p_num − p_τ|".into(),
                    overlay: None,
                    range: Some((-8.0, -2.0)),
                },
            ],
            b,
        )?;
        written.push(path);
    }
    // Learned against exact scores at τ = 0.1.
    let tau = 0.1;
    let mut learned = Vec::new();
    for run in &l.runs {
        let exact = MixtureScore::new(l.data.clone(), run.sde.clone());
        learned.push(QuiverPanel {
            title: format!("{}: exact score, τ = {tau}", run.sde.name()),
            vectors: eval(&exact, tau, &origins)?,
            origins: origins.clone(),
        });
        learned.push(QuiverPanel {
            title: format!("{}: learned score", run.sde.name()),
            vectors: eval(&*run.score, tau, &origins)?,
            origins: origins.clone(),
        });
    }
    let learned_path = dir.join("learned.png");
    plot::quiver(&learned_path, &learned, square(4.0), Some(&data_p))?;
    written.push(learned_path);
    let sample_pairs: Vec<Vec<P2>> = l.runs.iter().map(|r| pairs(&r.samples)).collect();
    let mut panels = vec![ScatterPanel {
        title: "data".into(),
        points: &data_p,
        color: DATA_COLOR,
    }];
    for (run, p) in l.runs.iter().zip(&sample_pairs) {
        panels.push(ScatterPanel {
            title: format!("{} samples", run.sde.name()),
            points: p,
            color: SAMPLE_COLOR,
        });
    }
    let samples = dir.join("samples.png");
    plot::scatter(&samples, &panels)?;
    written.push(samples);
    Ok(written)
}
