//! Acceptance of class conditioning and guidance on labelled 8gaussians (issue 12):
//!
//! 1. `cfg`: trains a class-conditional flow-matching model (8 classes = the mixture's
//!    components, label dropout 0.1, fused engine), then for every class and guidance scale g
//!    (diffusers' convention: 1 conditional, 0 unconditional; Ho & Salimans' w = g − 1) draws
//!    n points and reports the share in the requested mode (by the exact mixture's
//!    responsibilities), the per-class SW₂ against exact draws of that component next to the
//!    per-class noise floor (two independent exact draws), and the spread (the samples' RMS
//!    distance to the component mean over the exact one: 1 = the true spread).
//! 2. `t0`: the flow-guidance clamp near t = 0 measured with exact fields: the exact
//!    unconditional velocity guided by the exact classifier (`GuidedVelocity`) for several
//!    t_min, Euler from t = 0; and the alternative of starting at t_min from exact p_{t_min}.
//! 3. `classifier`: trains a time-dependent classifier on the same path (burn engine) and guides
//!    the conditional model's unconditional branch with it (scale 1), next to the exact
//!    classifier.
//!
//! Run: `cargo run --release --example guidance -- cfg [--steps 6000] [--n 2000]`
//!      `cargo run --release --example guidance -- t0 [--n 2000]`
//!      `cargo run --release --example guidance -- classifier [--steps 6000] [--csteps 3000]`

use scoreflow::data::{DataSource, Dataset, Points};
use scoreflow::field::analytic::{GaussianMixture, LabelledMixture};
use scoreflow::field::convert::NoiseInput;
use scoreflow::field::mlp::{Mlp, MlpConfig};
use scoreflow::field::network::Conditioned;
use scoreflow::fused::FusedMlp;
use scoreflow::guidance::{ClassifierFree, ClassifierGradient, GuidedVelocity, ScoreVelocity};
use scoreflow::metrics::sliced_wasserstein2;
use scoreflow::objective::cfm::FlowMatching;
use scoreflow::objective::classifier::Classifier;
use scoreflow::path::{CondOt, GaussianPath};
use scoreflow::solve::{odeint, Method, OdeOptions};
use scoreflow::tensor::{cpu, randn, rng, DType};
use scoreflow::train::{Control, EngineKind, StepInfo, TrainConfig, Trainer};
use scoreflow::VectorField;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn arg<T: std::str::FromStr>(args: &[String], key: &str, default: T) -> T {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Share of rows whose most responsible component is `k`, and the RMS distance to μₖ of the
/// rows, under the clean mixture.
fn mode_stats(mix: &GaussianMixture, x: &Points, k: usize) -> (f64, f64) {
    let mu = &mix.components()[k].mean().to_vec();
    let mut hits = 0usize;
    let mut sq = 0.0;
    for row in x.rows() {
        let r = mix.responsibilities(row);
        let best = (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b]));
        if best == Some(k) {
            hits += 1;
        }
        sq += row
            .iter()
            .zip(mu)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>();
    }
    (hits as f64 / x.len() as f64, (sq / x.len() as f64).sqrt())
}

/// Euler (100 steps) from N(0, I) at t = 0 to t = 1 of a velocity field.
fn sample(field: &dyn VectorField, n: usize, seed: u64) -> Res<Points> {
    let x0 = randn(n, 2, &cpu(), DType::F32, &mut rng(seed));
    let out = odeint(field, x0, 0.0, 1.0, &OdeOptions::fixed(Method::Euler, 100))?;
    Ok(Points::from_tensor(&out.x))
}

fn train_conditional(steps: usize) -> Res<FusedMlp> {
    let arch = MlpConfig::new(2, 256, 4).with_classes(8);
    let cfg = TrainConfig::recipe(steps, 512, 0);
    let model = cfg.init_model(&arch, &cpu(), DType::F32);
    let mut t = Trainer::new_on(EngineKind::Fused, &model, cfg)?;
    let obj = FlowMatching::new(GaussianPath::new(CondOt));
    let mut data = DataSource::generator(Dataset::EightGaussians);
    let started = std::time::Instant::now();
    let out = t.run(&obj, &mut data, &mut |_: &StepInfo| Control::Continue)?;
    eprintln!(
        "trained {} steps in {:.1} s (last loss {:.4})",
        out.step,
        started.elapsed().as_secs_f64(),
        out.last_loss
    );
    Ok(FusedMlp::from_mlp(&t.sampling_model()))
}

/// One class's report line for samples `x` of class k.
fn report(label: &str, mix: &GaussianMixture, x: &Points, k: usize, n: usize) -> Res<()> {
    let comp = GaussianMixture::from(mix.components()[k].clone());
    let exact = comp.sample(n, &mut rng(100 + k as u64));
    let exact2 = comp.sample(n, &mut rng(200 + k as u64));
    let sw = sliced_wasserstein2(x, &exact, 200, &mut rng(7))?;
    let floor = sliced_wasserstein2(&exact2, &exact, 200, &mut rng(7))?;
    let (acc, rms) = mode_stats(mix, x, k);
    let (_, rms_exact) = mode_stats(mix, &exact, k);
    println!(
        "{label:<22} class {k}: in mode {:>6.2} %  SW₂ {sw:.4} (floor {floor:.4})  spread {:.3}",
        100.0 * acc,
        rms / rms_exact
    );
    Ok(())
}

fn cfg(args: &[String]) -> Res<()> {
    let steps = arg(args, "--steps", 6000);
    let n = arg(args, "--n", 2000);
    let net = train_conditional(steps)?;
    let mix = GaussianMixture::from(&Dataset::EightGaussians.mixture().unwrap());
    let scales = [0.0, 1.0, 1.5, 2.0, 3.0, 5.0];
    println!(
        "g (w = g − 1): share in the requested mode, per-class SW₂ vs floor, spread (1 = exact)"
    );
    let mut summary = Vec::new();
    for &g in &scales {
        let (mut acc, mut sw_sum, mut floor_sum, mut spread) = (0.0, 0.0, 0.0, 0.0);
        for k in 0..8 {
            let field = ClassifierFree::for_class(net.clone(), k, g)?;
            let x = sample(&field, n, 1 + k as u64)?;
            if g == 1.0 || k == 0 {
                report(&format!("cfg g={g}"), &mix, &x, k, n)?;
            }
            let comp = GaussianMixture::from(mix.components()[k].clone());
            let exact = comp.sample(n, &mut rng(100 + k as u64));
            let exact2 = comp.sample(n, &mut rng(200 + k as u64));
            sw_sum += sliced_wasserstein2(&x, &exact, 200, &mut rng(7))?;
            floor_sum += sliced_wasserstein2(&exact2, &exact, 200, &mut rng(7))?;
            let (a, rms) = mode_stats(&mix, &x, k);
            let (_, rms_exact) = mode_stats(&mix, &exact, k);
            acc += a / 8.0;
            spread += rms / rms_exact / 8.0;
        }
        summary.push((g, acc, sw_sum / 8.0, floor_sum / 8.0, spread));
    }
    println!(
        "\n{:>5} {:>5} {:>12} {:>12} {:>12} {:>8}",
        "g", "w", "in mode %", "SW₂ (mean)", "floor", "spread"
    );
    for (g, acc, sw, floor, spread) in summary {
        println!(
            "{g:>5.1} {:>5.1} {:>12.2} {sw:>12.4} {floor:>12.4} {spread:>8.3}",
            g - 1.0,
            100.0 * acc
        );
    }
    Ok(())
}

fn t0(args: &[String]) -> Res<()> {
    let n = arg(args, "--n", 2000);
    let path = GaussianPath::new(CondOt);
    let m = LabelledMixture::for_dataset(Dataset::EightGaussians, path)?;
    let mix = m.score.mixture.clone();
    println!("exact 8gaussians velocity + exact classifier (γ = 1), Euler 100 steps, class 3");
    for t_min in [0.1, 0.03, 0.01, 0.003, 0.001] {
        let field = GuidedVelocity::new(
            ScoreVelocity::new(m.score.clone(), path).with_t_min(t_min)?,
            m.class_gradient(3)?,
            path,
            1.0,
        )?
        .with_t_min(t_min)?;
        let x0 = randn(n, 2, &cpu(), DType::F64, &mut rng(3));
        let out = odeint(&field, x0, 0.0, 1.0, &OdeOptions::fixed(Method::Euler, 100))?;
        report(
            &format!("clamp t_min={t_min}"),
            &mix,
            &Points::from_tensor(&out.x),
            3,
            n,
        )?;
        // Start at t_min from exact draws of p_{t_min} (the unconditional mixture perturbed).
        let pt = m.score.at(t_min)?;
        let start = pt.sample(n, &mut rng(4)).to_tensor(&cpu(), DType::F64);
        let steps = ((1.0 - t_min) * 100.0).round().max(1.0) as usize;
        let out = odeint(
            &field,
            start,
            t_min,
            1.0,
            &OdeOptions::fixed(Method::Euler, steps),
        )?;
        report(
            &format!("start at t_min={t_min}"),
            &mix,
            &Points::from_tensor(&out.x),
            3,
            n,
        )?;
    }
    Ok(())
}

fn classifier(args: &[String]) -> Res<()> {
    let steps = arg(args, "--steps", 6000);
    let csteps = arg(args, "--csteps", 3000);
    let n = arg(args, "--n", 2000);
    let net = train_conditional(steps)?;
    let path = GaussianPath::new(CondOt);
    let obj = Classifier::new(path, (0.0, 1.0), NoiseInput::Time)?;
    let arch = MlpConfig::new(2, 128, 3).with_outputs(8);
    let cfg = TrainConfig::recipe(csteps, 512, 1);
    let model: Mlp = cfg.init_model(&arch, &cpu(), DType::F32);
    let mut t = Trainer::new(&model, cfg)?;
    let mut data = DataSource::generator(Dataset::EightGaussians);
    t.run(&obj, &mut data, &mut |_: &StepInfo| Control::Continue)?;
    let clf = t.sampling_model();
    let mix = GaussianMixture::from(&Dataset::EightGaussians.mixture().unwrap());
    let exact = LabelledMixture::for_dataset(Dataset::EightGaussians, path)?;
    println!("unconditional branch (null label) + classifier guidance at γ = 1 (t_min 0.01)");
    for k in [0, 3, 6] {
        let uncond = Conditioned::unconditional(net.clone());
        let learned = ClassifierGradient::new(clf.clone(), k, path, NoiseInput::Time)?;
        let field = GuidedVelocity::new(&uncond, learned, path, 1.0)?;
        let x = sample(&field, n, 11 + k as u64)?;
        report("learned classifier", &mix, &x, k, n)?;
        let field = GuidedVelocity::new(&uncond, exact.class_gradient(k)?, path, 1.0)?;
        let x = sample(&field, n, 11 + k as u64)?;
        report("exact classifier", &mix, &x, k, n)?;
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("cfg") => cfg(&args),
        Some("t0") => t0(&args),
        Some("classifier") => classifier(&args),
        _ => {
            eprintln!("usage: guidance cfg|t0|classifier [--steps N] [--n N]");
            Ok(())
        }
    }
}
