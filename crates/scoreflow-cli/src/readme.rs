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

/// The README's "a run as a library value" example; compiled, not run (it needs a run).
#[allow(dead_code)]
fn model_example() -> scoreflow::Result<()> {
    // BEGIN README
    use scoreflow::model::{Model, Plan};
    use scoreflow::solve::{SamplerName, SamplerSpec};
    use scoreflow::{likelihood::LikelihoodOptions, tensor::rng};

    let model = Model::load("runs/vp".as_ref())?; // any run directory: trained or imported
    let pc = SamplerSpec {
        steps: Some(500),
        snr: Some(0.16),
        ..SamplerSpec::new(SamplerName::Pc) // reverse-SDE predictor + Langevin corrector
    };
    let x = model.sample(&Plan::new(10_000, None), 0, &pc)?.points; // data units, seeded blocks
    let logp = model.log_likelihood(&x, &LikelihoodOptions::default(), &mut rng(0))?;
    println!("mean log p = {:.3} nats", logp.mean_log_prob);

    // END README
    Ok(())
}

/// The code between `// BEGIN README` and the next `// END README` after byte `from` of this
/// file, unindented.
fn block(src: &str, from: usize) -> (String, usize) {
    let start =
        src[from..].find("// BEGIN README\n").expect("marker") + from + "// BEGIN README\n".len();
    let end = src[start..].find("    // END README").expect("marker") + start;
    let code = src[start..end]
        .trim_end()
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    (code, end)
}

#[test]
fn readme_shows_these_examples() {
    let readme = include_str!("../../../README.md");
    let src = include_str!("readme.rs");
    let (first, end) = block(src, 0);
    let (second, _) = block(src, end);
    for code in [first, second] {
        assert!(
            readme.contains(&format!("```rust\n{code}```")),
            "README example differs from crates/scoreflow-cli/src/readme.rs:\n{code}"
        );
    }
}
