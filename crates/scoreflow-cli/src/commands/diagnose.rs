//! `scoreflow diagnose`: Jacobian diagnostics of a learned field at data points.

use anyhow::{bail, Result};
use scoreflow::data::{Dataset, Points};
use scoreflow::diagnostics::{diagnose, Stats, Summary};
use scoreflow::model::{load_points_or_explain, Model};
use scoreflow::tensor::{self, DType};
use scoreflow::VectorField as _;
use serde::Serialize;

use crate::cli::DiagnoseArgs;
use crate::output::Mode;

/// The diagnostics at one time.
#[derive(Debug, Clone, Serialize)]
pub struct TimeDiagnostics {
    /// Flow time t (0 = noise, 1 = data).
    pub t: f64,
    /// The model's own time (τ for SDE models).
    pub model_time: f64,
    /// Aggregates over the points (per-point values omitted).
    pub summary: Summary,
}

/// The report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct DiagnoseReport {
    /// Field kind: "velocity" or "score".
    pub field: String,
    /// Points probed and where they came from.
    pub points: String,
    /// Per time.
    pub times: Vec<TimeDiagnostics>,
    /// What the error row compares against, if anything.
    pub reference: Option<String>,
    /// How the Jacobian was computed: "exact" (forward-mode tangents) or "central differences".
    pub jacobian: String,
    /// The diagnostics not computed for this field, each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_computed: Vec<String>,
}

fn fmt_stats(s: &Option<Stats>) -> String {
    match s {
        Some(s) => format!(
            "{:>11.3e}{:>11.3e}{:>11.3e}{:>11.3e}",
            s.mean, s.q05, s.q50, s.q95
        ),
        None => format!("{:>11}{:>11}{:>11}{:>11}", "—", "—", "—", "—"),
    }
}

/// Runs `scoreflow diagnose`.
pub fn run(args: DiagnoseArgs, mode: Mode) -> Result<()> {
    let run = Model::load(&args.run)?;
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let (points, what): (Points, String) = match &args.points {
        None => (
            run.held_out(args.n, args.seed)?,
            format!("held-out data of {}", run.settings.data),
        ),
        Some(name) => match name.parse::<Dataset>().ok() {
            Some(ds) if ds.dim() != run.dim() => bail!(
                "--points {ds} is a {}-D built-in set, but the field of {} is {}-D{}",
                ds.dim(),
                args.run.display(),
                run.dim(),
                if run.image.is_some() {
                    " (an image run: probe its held-out images, the default, or a .csv/.npy file of images)"
                } else {
                    ""
                }
            ),
            Some(ds) => (
                ds.sample(args.n, &mut tensor::rng(args.seed)),
                format!("{} draws of {ds}", args.n),
            ),
            None => (load_points_or_explain(name, Some(run.dim()))?, name.clone()),
        },
    };
    let x = points.to_tensor(&tensor::cpu(), DType::F32);
    let field = run.field_in_data_units()?;
    let reference = run.exact_field()?;
    let mut times = Vec::new();
    for &t in &args.times {
        if !(0.0..=1.0).contains(&t) {
            bail!("--times: {t} is outside [0, 1] (flow time: 0 = noise, 1 = data)");
        }
        let mt = run.kind.model_time(t)?;
        let d = diagnose(
            &field,
            &x,
            &tensor::times_like(&x, mt),
            reference.as_ref().map(|r| r.0.as_ref()),
        )?;
        times.push(TimeDiagnostics {
            t,
            model_time: mt,
            summary: d.summary,
        });
    }
    let mut not_computed = Vec::new();
    if run.dim() != 2 {
        not_computed.push(format!(
            "curl: the scalar curl ∂v₂/∂x₁ − ∂v₁/∂x₂ is defined in 2-D; this field is {}-D (the antisymmetric share measures its rotation instead)",
            run.dim()
        ));
    }
    if reference.is_none() {
        not_computed.push(if run.image.is_some() {
            "error against the true field: image data have no closed-form density".to_string()
        } else {
            "error against the true field: the data have no closed-form density".to_string()
        });
    }
    let report = DiagnoseReport {
        field: if run.kind.is_velocity() {
            "velocity".into()
        } else {
            "score".into()
        },
        points: format!("{} points: {what}", points.len()),
        times,
        reference: reference.map(|r| r.1),
        jacobian: if field.exact_jvp() {
            "exact".into()
        } else {
            "central differences".into()
        },
        not_computed,
    };
    mode.json(&report)?;
    if mode == Mode::Normal {
        crate::outln!(
            "{} field of {} at {} (data units)",
            report.field,
            args.run.display(),
            report.points
        );
        for td in &report.times {
            let head = format!("t = {} (model time {:.4})", td.t, td.model_time);
            crate::outln!(
                "\n{head:<38}{:>11}{:>11}{:>11}{:>11}",
                "mean",
                "q05",
                "median",
                "q95"
            );
            let s = &td.summary;
            crate::outln!(
                "{:<38}{}",
                "antisymmetric share ‖J_A‖/‖J‖",
                fmt_stats(&s.antisymmetric_share)
            );
            crate::outln!(
                "{:<38}{}",
                "stiffness ratio max|λ|/min|λ|",
                fmt_stats(&s.stiffness_ratio)
            );
            crate::outln!("{:<38}{}", "stable Euler step h_max", fmt_stats(&s.h_max));
            crate::outln!("{:<38}{}", "divergence", fmt_stats(&s.divergence));
            if s.curl.is_some() {
                crate::outln!("{:<38}{}", "curl", fmt_stats(&s.curl));
            }
            if s.error.is_some() {
                crate::outln!(
                    "{:<38}{}  (relative RMS {:.3})",
                    if run.kind.is_velocity() {
                        "‖v − v_true‖"
                    } else {
                        "‖s − s_true‖"
                    },
                    fmt_stats(&s.error),
                    s.relative_error.unwrap_or(f64::NAN)
                );
            }
            if let Some(h) = &s.h_max {
                crate::outln!(
                    "explicit Euler is stable at every probed point for h ≤ {:.3e}",
                    h.min
                );
            }
        }
        if let Some(r) = &report.reference {
            crate::outln!("\nreference: {r}");
        }
        crate::outln!(
            "\nJacobian: {} ({} JVPs per point)",
            report.jacobian,
            run.dim()
        );
        for n in &report.not_computed {
            crate::outln!("not computed: {n}");
        }
    }
    Ok(())
}
