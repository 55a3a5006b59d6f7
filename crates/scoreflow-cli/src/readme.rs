//! The README's "library in ten lines" example, compiled: the function below holds it verbatim
//! (indented), and a test checks that the README shows exactly this code.

/// The README example; compiled, not run (it trains for 2,000 steps).
#[allow(dead_code)]
fn library_example() -> scoreflow::Result<()> {
    // BEGIN README
    use scoreflow::path::{CondOt, GaussianPath};
    use scoreflow::solve::{odeint, Method, OdeOptions};
    use scoreflow::tensor::{cpu, randn, rng, DType, Rng};
    use scoreflow::train::{Control, StepInfo, TrainConfig, Trainer};
    use scoreflow::{data::Dataset, field::mlp::MlpConfig, objective::cfm::FlowMatching};

    let config = TrainConfig::new(2000, 256, 1e-3, 0); // steps, batch, learning rate, seed
    let model = config.init_model(&MlpConfig::new(2, 128, 4), &cpu(), DType::F32);
    let mut trainer = Trainer::new(&model, config)?;
    let cfm = FlowMatching::new(GaussianPath::new(CondOt)); // x_t = t·x₁ + (1 − t)·x₀
    let mut data = |n: usize, r: &mut Rng| Dataset::Moons.sample(n, r);
    trainer.run(&cfm, &mut data, &mut |_: &StepInfo| Control::Continue)?;
    let noise = randn(10_000, 2, &cpu(), DType::F32, &mut rng(1));
    let euler = OdeOptions::fixed(Method::Euler, 100);
    let samples = odeint(&trainer.sampling_model(), noise, 0.0, 1.0, &euler)?.x; // (10000, 2)

    // END README
    let _ = samples;
    Ok(())
}

#[test]
fn readme_shows_this_example() {
    let readme = include_str!("../../../README.md");
    let src = include_str!("readme.rs");
    let start = src.find("// BEGIN README\n").expect("marker") + "// BEGIN README\n".len();
    let end = src.find("    // END README").expect("marker");
    let code: String = src[start..end]
        .trim_end()
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(
        readme.contains(&format!("```rust\n{code}```")),
        "README example differs from crates/scoreflow-cli/src/readme.rs"
    );
}
