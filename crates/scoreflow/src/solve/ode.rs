//! Explicit Runge–Kutta solvers for dx/dt = v(x, t) over batched tensors, in either time
//! direction. Methods are Butcher tableaux driven by one stepper (as in torchdiffeq): Euler,
//! Midpoint, Heun, RK4 with fixed steps, and Dormand–Prince 5(4) with an adaptive step.
//!
//! One step: kᵢ = v(x + h Σⱼ aᵢⱼ kⱼ, t + cᵢ h), x ← x + h Σᵢ bᵢ kᵢ; the embedded error estimate
//! is h Σᵢ (bᵢ − b̂ᵢ) kᵢ. Adaptive control uses the RMS norm of err / (atol + rtol·max(|x₀|,|x₁|))
//! over the whole batch (torchdiffeq's default), so NFE are comparable with torchdiffeq.

use crate::error::{Error, Result};
use crate::field::VectorField;
use crate::tensor::{times_like, to_vec, Tensor};

/// A Butcher tableau: stage times c, stage matrix a (lower triangular), weights b and, for
/// embedded pairs, the lower-order weights b̂ used for the error estimate.
#[derive(Debug, Clone, Copy)]
pub struct Tableau {
    /// Stage times cᵢ.
    pub c: &'static [f64],
    /// Row i holds aᵢ₀ … aᵢ,ᵢ₋₁.
    pub a: &'static [&'static [f64]],
    /// Solution weights bᵢ.
    pub b: &'static [f64],
    /// Embedded weights b̂ᵢ (adaptive methods only).
    pub b_hat: Option<&'static [f64]>,
    /// Order of the solution.
    pub order: usize,
    /// First-same-as-last: the last stage equals v at the new point (reused as next k₁).
    pub fsal: bool,
}

/// Forward Euler, order 1.
pub const EULER: Tableau = Tableau { c: &[0.0], a: &[&[]], b: &[1.0], b_hat: None, order: 1, fsal: false };
/// Explicit midpoint, order 2.
pub const MIDPOINT: Tableau =
    Tableau { c: &[0.0, 0.5], a: &[&[], &[0.5]], b: &[0.0, 1.0], b_hat: None, order: 2, fsal: false };
/// Heun's method (explicit trapezoid), order 2.
pub const HEUN: Tableau =
    Tableau { c: &[0.0, 1.0], a: &[&[], &[1.0]], b: &[0.5, 0.5], b_hat: None, order: 2, fsal: false };
/// Classic Runge–Kutta, order 4.
pub const RK4: Tableau = Tableau {
    c: &[0.0, 0.5, 0.5, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    b_hat: None,
    order: 4,
    fsal: false,
};
/// Dormand–Prince 5(4) (Dormand & Prince 1980), FSAL.
pub const DOPRI5: Tableau = Tableau {
    c: &[0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    a: &[
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
        &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
        &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
    ],
    b: &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0],
    b_hat: Some(&[
        5179.0 / 57600.0,
        0.0,
        7571.0 / 16695.0,
        393.0 / 640.0,
        -92097.0 / 339200.0,
        187.0 / 2100.0,
        1.0 / 40.0,
    ]),
    order: 5,
    fsal: true,
};

/// ODE method, chosen by name at the edges (`"euler"`, `"midpoint"`, `"heun"`, `"rk4"`, `"dopri5"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Forward Euler (fixed step).
    Euler,
    /// Explicit midpoint (fixed step).
    Midpoint,
    /// Heun / explicit trapezoid (fixed step).
    Heun,
    /// Classic RK4 (fixed step).
    Rk4,
    /// Dormand–Prince 5(4) (adaptive).
    Dopri5,
}

impl Method {
    /// Every method, for listings and help texts.
    pub const ALL: [Method; 5] = [Method::Euler, Method::Midpoint, Method::Heun, Method::Rk4, Method::Dopri5];

    /// The method's tableau.
    pub fn tableau(self) -> &'static Tableau {
        match self {
            Method::Euler => &EULER,
            Method::Midpoint => &MIDPOINT,
            Method::Heun => &HEUN,
            Method::Rk4 => &RK4,
            Method::Dopri5 => &DOPRI5,
        }
    }

    /// True for adaptive (embedded) methods.
    pub fn is_adaptive(self) -> bool {
        self.tableau().b_hat.is_some()
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Euler => "euler",
            Method::Midpoint => "midpoint",
            Method::Heun => "heun",
            Method::Rk4 => "rk4",
            Method::Dopri5 => "dopri5",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                Error::InvalidInput(format!("unknown ODE method '{s}' (choose one of {})", names.join(", ")))
            })
    }
}

/// Solver options. Fixed-step methods use `steps`; adaptive ones `rtol`, `atol`, `max_steps`,
/// `min_step` and an optional `first_step` (else Hairer's initial-step heuristic).
#[derive(Debug, Clone)]
pub struct OdeOptions {
    /// The method.
    pub method: Method,
    /// Number of uniform steps (fixed-step methods).
    pub steps: usize,
    /// Relative tolerance (adaptive).
    pub rtol: f64,
    /// Absolute tolerance (adaptive).
    pub atol: f64,
    /// Most steps (accepted + rejected) before giving up with an error (adaptive).
    pub max_steps: usize,
    /// Smallest |h| before giving up with an error (adaptive).
    pub min_step: f64,
    /// First step size (adaptive); `None` selects it automatically.
    pub first_step: Option<f64>,
    /// Keep (t, x) after every accepted step.
    pub save_trajectory: bool,
}

impl Default for OdeOptions {
    fn default() -> Self {
        Self {
            method: Method::Dopri5,
            steps: 100,
            rtol: 1e-5,
            atol: 1e-5,
            max_steps: 100_000,
            min_step: 1e-10,
            first_step: None,
            save_trajectory: false,
        }
    }
}

impl OdeOptions {
    /// Fixed-step options for `method` with `steps` steps.
    pub fn fixed(method: Method, steps: usize) -> Self {
        Self { method, steps, ..Self::default() }
    }

    /// Adaptive Dopri5 options with the given tolerances.
    pub fn dopri5(rtol: f64, atol: f64) -> Self {
        Self { method: Method::Dopri5, rtol, atol, ..Self::default() }
    }
}

/// Result of [`odeint`]: the final state and the solver's statistics.
#[derive(Debug, Clone)]
pub struct OdeSolution {
    /// x(t₁).
    pub x: Tensor<2>,
    /// Number of field evaluations.
    pub nfe: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps (adaptive only).
    pub rejected: usize,
    /// (t, x) at the start and after every accepted step, when requested.
    pub trajectory: Vec<(f64, Tensor<2>)>,
}

/// Integrates dx/dt = v(x, t) from `t0` to `t1` (either direction) starting at `x0`.
///
/// Errors (never a hang or a silent NaN): a non-finite state, more than `max_steps` steps, a
/// step below `min_step`, or invalid options.
pub fn odeint(field: &dyn VectorField, x0: Tensor<2>, t0: f64, t1: f64, opts: &OdeOptions) -> Result<OdeSolution> {
    let [_, d] = x0.dims();
    if d != field.dim() {
        return Err(Error::Shape(format!("state has dimension {d}, field expects {}", field.dim())));
    }
    if !t0.is_finite() || !t1.is_finite() {
        return Err(Error::InvalidInput(format!("non-finite time interval [{t0}, {t1}]")));
    }
    if opts.method.is_adaptive() {
        if !(opts.rtol > 0.0 && opts.atol >= 0.0) {
            return Err(Error::InvalidInput(format!("need rtol > 0 and atol >= 0 (got {}, {})", opts.rtol, opts.atol)));
        }
        adaptive(field, x0, t0, t1, opts)
    } else {
        if opts.steps == 0 {
            return Err(Error::InvalidInput("fixed-step solver needs steps >= 1".into()));
        }
        fixed(field, x0, t0, t1, opts)
    }
}

/// One explicit RK step from (x, t) with step h; `k1` is v(x, t) when already known (FSAL).
/// Returns (x_new, stages).
fn rk_step(
    field: &dyn VectorField,
    tab: &Tableau,
    x: &Tensor<2>,
    t: f64,
    h: f64,
    k1: Option<Tensor<2>>,
) -> (Tensor<2>, Vec<Tensor<2>>) {
    let mut ks: Vec<Tensor<2>> = Vec::with_capacity(tab.c.len());
    ks.push(k1.unwrap_or_else(|| field.eval(x, &times_like(x, t))));
    for i in 1..tab.c.len() {
        let xi = combine(x, h, tab.a[i], &ks);
        ks.push(field.eval(&xi, &times_like(x, t + tab.c[i] * h)));
    }
    (combine(x, h, tab.b, &ks), ks)
}

/// x + h Σᵢ wᵢ kᵢ (zero weights skipped).
fn combine(x: &Tensor<2>, h: f64, w: &[f64], ks: &[Tensor<2>]) -> Tensor<2> {
    let mut acc = x.clone();
    for (wi, ki) in w.iter().zip(ks) {
        if *wi != 0.0 {
            acc = acc + ki.clone() * (h * wi);
        }
    }
    acc
}

fn check_finite(x: &Tensor<2>, t: f64) -> Result<()> {
    if crate::tensor::all_finite(x) {
        Ok(())
    } else {
        Err(Error::Solver(format!("state became non-finite (NaN or inf) at t = {t:.6}")))
    }
}

fn fixed(field: &dyn VectorField, x0: Tensor<2>, t0: f64, t1: f64, opts: &OdeOptions) -> Result<OdeSolution> {
    let tab = opts.method.tableau();
    let n = opts.steps;
    let h = (t1 - t0) / n as f64;
    let mut x = x0;
    let mut traj = Vec::new();
    if opts.save_trajectory {
        traj.push((t0, x.clone()));
    }
    for i in 0..n {
        let t = t0 + i as f64 * h;
        x = rk_step(field, tab, &x, t, h, None).0;
        let tn = if i + 1 == n { t1 } else { t0 + (i + 1) as f64 * h };
        if opts.save_trajectory {
            traj.push((tn, x.clone()));
        }
    }
    check_finite(&x, t1)?;
    Ok(OdeSolution { x, nfe: n * tab.c.len(), accepted: n, rejected: 0, trajectory: traj })
}

/// RMS norm over every element.
fn rms(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    (v.iter().map(|e| e * e).sum::<f64>() / v.len() as f64).sqrt()
}

/// Hairer, Nørsett & Wanner's initial step (as in torchdiffeq `_select_initial_step`); 1 NFE.
fn initial_step(field: &dyn VectorField, x0: &Tensor<2>, t0: f64, f0: &Tensor<2>, order: usize, opts: &OdeOptions, dir: f64) -> f64 {
    let y0 = to_vec(x0);
    let fv = to_vec(f0);
    let scale: Vec<f64> = y0.iter().map(|y| opts.atol + y.abs() * opts.rtol).collect();
    let d0 = rms(&y0.iter().zip(&scale).map(|(y, s)| y / s).collect::<Vec<_>>());
    let d1 = rms(&fv.iter().zip(&scale).map(|(f, s)| f / s).collect::<Vec<_>>());
    let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
    let y1 = x0.clone() + f0.clone() * (dir * h0);
    let f1 = to_vec(&field.eval(&y1, &times_like(x0, t0 + dir * h0)));
    let d2 = rms(&f1.iter().zip(&fv).zip(&scale).map(|((a, b), s)| (a - b) / s).collect::<Vec<_>>()) / h0;
    let h1 = if d1.max(d2) <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / d1.max(d2)).powf(1.0 / (order as f64 + 1.0))
    };
    (100.0 * h0).min(h1)
}

fn adaptive(field: &dyn VectorField, x0: Tensor<2>, t0: f64, t1: f64, opts: &OdeOptions) -> Result<OdeSolution> {
    let tab = opts.method.tableau();
    let b_hat = tab.b_hat.expect("adaptive tableau");
    let err_w: Vec<f64> = tab.b.iter().zip(b_hat).map(|(b, bh)| b - bh).collect();
    let (safety, ifactor, dfactor) = (0.9, 10.0, 0.2);
    let span = (t1 - t0).abs();
    let dir = if t1 >= t0 { 1.0 } else { -1.0 };
    let mut x = x0;
    let mut t = t0;
    let mut nfe = 0;
    let (mut accepted, mut rejected) = (0, 0);
    let mut traj = Vec::new();
    if opts.save_trajectory {
        traj.push((t0, x.clone()));
    }
    if span == 0.0 {
        return Ok(OdeSolution { x, nfe, accepted, rejected, trajectory: traj });
    }
    let mut k1 = field.eval(&x, &times_like(&x, t));
    nfe += 1;
    let mut h = match opts.first_step {
        Some(h) => h.abs(),
        None => {
            nfe += 1;
            initial_step(field, &x, t, &k1, tab.order - 1, opts, dir)
        }
    };
    loop {
        let remaining = (t1 - t).abs();
        if remaining <= 1e-12 * span.max(1.0) {
            break;
        }
        if accepted + rejected >= opts.max_steps {
            return Err(Error::Solver(format!(
                "dopri5 gave up after {} steps at t = {t:.6} (max_steps); the field is stiff or tolerances too tight",
                opts.max_steps
            )));
        }
        // Clamp the last step to land exactly on t1: never evaluate the field beyond it.
        let last = h >= remaining;
        let hs = dir * if last { remaining } else { h };
        let (x_new, ks) = rk_step(field, tab, &x, t, hs, Some(k1.clone()));
        nfe += ks.len() - 1;
        let err = combine(&(x.clone() * 0.0), hs, &err_w, &ks);
        let (e, y0, y1) = (to_vec(&err), to_vec(&x), to_vec(&x_new));
        let ratios: Vec<f64> = e
            .iter()
            .zip(y0.iter().zip(&y1))
            .map(|(e, (a, b))| e / (opts.atol + opts.rtol * a.abs().max(b.abs())))
            .collect();
        let ratio = rms(&ratios);
        if ratio.is_finite() && ratio <= 1.0 {
            t = if last { t1 } else { t + hs };
            x = x_new;
            k1 = if tab.fsal {
                ks.last().cloned().expect("stages")
            } else {
                nfe += 1;
                field.eval(&x, &times_like(&x, t))
            };
            accepted += 1;
            if opts.save_trajectory {
                traj.push((t, x.clone()));
            }
        } else {
            rejected += 1;
        }
        let factor = if !ratio.is_finite() {
            dfactor
        } else if ratio == 0.0 {
            ifactor
        } else {
            let lo = if ratio < 1.0 { 1.0 } else { dfactor };
            (safety * ratio.powf(-1.0 / tab.order as f64)).clamp(lo, ifactor)
        };
        h = hs.abs() * factor;
        if h < opts.min_step && (t1 - t).abs() > 1e-12 * span.max(1.0) {
            return Err(Error::Solver(format!(
                "dopri5 step size {h:.3e} fell below min_step {:.1e} at t = {t:.6}{}",
                opts.min_step,
                if ratio.is_finite() { "" } else { " (the field returned NaN or inf)" }
            )));
        }
    }
    check_finite(&x, t1)?;
    Ok(OdeSolution { x, nfe, accepted, rejected, trajectory: traj })
}
