//! The model API's dispatch of the few-step samplers and of EDM models: which samplers apply,
//! what they cost, that they sample the exact field at the floor, and that an EDM network's
//! field is the score its preconditioning defines.

use super::evaluate::{evaluate, EvalJob};
use super::*;
use crate::data::{Dataset, Points};
use crate::field::analytic::{Gaussian, GaussianMixture, MixtureScore};
use crate::field::FnField;
use crate::objective::edm::EdmConfig;
use crate::sde::{EdmSde, SdeKind};
use crate::tensor::{cpu, matrix, times_like, to_vec};

/// SW₂ of n samples of `spec` over the floor (the evaluation of `scoreflow eval`), and the NFE.
fn ratio(model: &Model, spec: &SamplerSpec, n: usize) -> (f64, usize) {
    let s = model.sample(&Plan::new(n, None), 1, spec).unwrap();
    let report = evaluate(&EvalJob {
        model,
        samples: &s.points,
        samples_from: String::new(),
        reference: None,
        n,
        seed: 2,
        nll: 0,
    })
    .unwrap();
    (report.ratio.sw2.unwrap(), s.stats.nfe_per_path())
}

/// The few-step samplers dispatch through `Model::sample_each` on exact score models under VP
/// and EDM's SDE, spend the NFE their update rules say (N per step; edm-heun and dpmpp-2s
/// 2N − 1) and converge to the probability-flow ODE's map of the same noise: their SW₂ ratio
/// must come within 0.2 of that of Dopri5 (1e-5) on the same prior draws. (The exact map's own
/// ratio is a property of the draws, 0.48–1.30 over seeds 1, 5, 9 at n = 2,000, identical to
/// three digits for dpmpp-2m at 200 steps, and both SDEs; at these step counts the samplers
/// measured within 0.07 of it, while a wrong update or spacing lands 3–60× the floor.)
#[test]
fn few_step_samplers_converge_to_the_probability_flow_map() {
    let cases = [
        (SdeKind::Vp, SamplerName::Dpmpp2m, 20, 20),
        (SdeKind::Vp, SamplerName::Unipc, 20, 20),
        (SdeKind::Vp, SamplerName::DpmSolver, 10, 10),
        (SdeKind::Edm, SamplerName::EdmHeun, 40, 79),
        (SdeKind::Edm, SamplerName::Dpmpp2s, 10, 19),
    ];
    let mut pf = std::collections::BTreeMap::new();
    for (sde, sampler, steps, nfe) in cases {
        let model = Model::exact_score(Dataset::EightGaussians, sde).unwrap();
        let ode = *pf
            .entry(sde.name())
            .or_insert_with(|| ratio(&model, &SamplerSpec::new(SamplerName::Ode), 2000).0);
        model.check_sampler(sampler).unwrap();
        let spec = SamplerSpec {
            steps: Some(steps),
            ..SamplerSpec::new(sampler)
        };
        let (r, got) = ratio(&model, &spec, 2000);
        eprintln!(
            "{sampler} {steps} steps on {}: NFE {got}, SW2 {r:.3}× the floor (PF-ODE {ode:.3}×)",
            sde.name()
        );
        assert_eq!(got, nfe, "{sampler} {steps} steps");
        assert!(
            (r - ode).abs() < 0.2,
            "{sampler} on {}: SW2 {r:.3}× the floor, PF-ODE {ode:.3}×",
            sde.name()
        );
    }
}

/// The few-step samplers dispatch on flow-matching models too (the path as the noise schedule,
/// the velocity read as x̂₁ and ε̂): on the exact CondOT and cosine velocities of 8gaussians
/// they spend N NFE (edm-heun 2N − 1) and converge to the flow ODE's map of the same noise —
/// SW₂ ratio within 0.2 of Dopri5 (1e-5) from t = 0 (the few-step grids start at λ = −5,
/// CondOT t = 0.0067, from σ(t)× the same draws: an O(α) change of the map, as VP's prior),
/// as in the score-model test above.
#[test]
fn few_step_samplers_converge_to_the_flow_map() {
    use crate::path::PathKind;
    for path in [PathKind::Condot, PathKind::Cosine] {
        let flow = Model::exact(
            Dataset::EightGaussians,
            ModelKind::Cfm {
                path,
                source: Default::default(),
            },
        )
        .unwrap();
        let ode = ratio(&flow, &SamplerSpec::new(SamplerName::Dopri5), 2000).0;
        for (sampler, steps, nfe) in [
            (SamplerName::Dpmpp2m, 20, 20),
            (SamplerName::Unipc, 20, 20),
            (SamplerName::EdmHeun, 20, 39),
        ] {
            let spec = SamplerSpec {
                steps: Some(steps),
                ..SamplerSpec::new(sampler)
            };
            let (r, got) = ratio(&flow, &spec, 2000);
            eprintln!(
                "{sampler} {steps} steps on {path:?}: NFE {got}, SW2 {r:.3}× (ODE {ode:.3}×)"
            );
            assert_eq!(got, nfe, "{sampler} on {path:?}");
            assert!(
                (r - ode).abs() < 0.2,
                "{sampler} on {path:?}: {r:.3} vs ODE {ode:.3}"
            );
        }
    }
}

/// Few-step samplers apply to score models (DSM, EDM) and to flows from N(0, I) on a path
/// without extra noise; a flow from another source, with path noise (--cfm-sigma, the sb
/// bridge) or re-noised (η, churn) under a coupling that breaks the Gaussian kernel is a
/// one-line error naming what applies; `--from` (transport of given points) takes ODE solvers
/// only; score-only samplers name the flow's options. EDM models default to Karras et al.'s
/// Heun.
#[test]
fn few_step_samplers_apply_to_score_models_and_gaussian_flows() {
    use crate::coupling::CouplingKind;
    use crate::data::Normalizer;
    let flow = Model::exact(
        Dataset::EightGaussians,
        ModelKind::Cfm {
            path: Default::default(),
            source: Default::default(),
        },
    )
    .unwrap();
    for s in SamplerName::ALL {
        let ok = s.is_ode_solver() || s.is_few_step();
        assert_eq!(flow.check_sampler(s).is_ok(), ok, "{s}");
    }
    let e = flow.check_sampler(SamplerName::Em).unwrap_err().to_string();
    assert!(e.contains("flow-matching") && e.contains("dpmpp-2m"), "{e}");
    let spec = SamplerSpec {
        steps: Some(4),
        ..SamplerSpec::new(SamplerName::Dpmpp2m)
    };
    let x0 = Points::new(vec![0.0; 4], 2).unwrap();
    let e = flow.transport(&x0, &spec).unwrap_err().to_string();
    assert!(e.contains("--from") && e.contains("dopri5"), "{e}");
    let mut bridge = Model::exact(Dataset::EightGaussians, flow.kind.clone()).unwrap();
    bridge.kind = ModelKind::Cfm {
        path: Default::default(),
        source: FlowSource::Dataset {
            name: Dataset::Moons,
            normalizer: Normalizer::identity(2),
        },
    };
    let e = bridge
        .check_sampler(SamplerName::Unipc)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("moons") && e.contains("N(0, I)") && e.contains("dopri5"),
        "{e}"
    );
    let mut noisy = Model::exact(Dataset::EightGaussians, flow.kind.clone()).unwrap();
    noisy.settings.cfm_sigma = 0.1;
    let e = noisy
        .check_sampler(SamplerName::Ddim)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--cfm-sigma 0.1") && e.contains("euler"), "{e}");
    noisy.settings.cfm_sigma = 0.0;
    noisy.settings.coupling = CouplingKind::Sb;
    let e = noisy
        .check_sampler(SamplerName::Ddim)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sb coupling"), "{e}");
    noisy.settings.coupling = CouplingKind::Ot;
    noisy.check_sampler(SamplerName::Ddim).unwrap();
    let plan = Plan::new(8, None);
    noisy
        .sample(&plan, 0, &SamplerSpec::new(SamplerName::Ddim))
        .unwrap();
    let eta = SamplerSpec {
        eta: Some(1.0),
        ..SamplerSpec::new(SamplerName::Ddim)
    };
    let e = noisy.sample(&plan, 0, &eta).unwrap_err().to_string();
    assert!(e.contains("ot coupling") && e.contains("η = 0"), "{e}");
    flow.sample(&plan, 0, &eta).unwrap();
    let score = Model::exact_score(Dataset::EightGaussians, SdeKind::Vp).unwrap();
    let e = score
        .check_sampler(SamplerName::Heun)
        .unwrap_err()
        .to_string();
    assert!(e.contains("edm-heun") && e.contains("dpmpp-2m"), "{e}");
    let edm = TrainSettings {
        method: TrainMethod::Edm,
        sigma_data: Some(1.0),
        ..TrainSettings::default()
    }
    .model_kind(|| unreachable!())
    .unwrap();
    let edm = Model::exact(Dataset::EightGaussians, edm).unwrap();
    assert_eq!(edm.default_sampler(), SamplerName::EdmHeun);
    for s in SamplerName::ALL {
        assert_eq!(edm.check_sampler(s).is_ok(), !s.is_ode_solver(), "{s}");
    }
}

/// An EDM model's field is s = (D − x)/σ² of its preconditioned denoiser: with the ideal raw
/// network F* = (D* − c_skip·x)/c_out (D* the exact posterior mean of a Gaussian under
/// x = y + σn), `ModelKind::field` reproduces the exact score of p_σ to 1e-9. The kind
/// round-trips through meta.json's `objective` with its σ_data.
#[test]
fn edm_kind_field_is_the_score_of_its_denoiser() {
    let g = Gaussian::new(vec![0.5, -0.2], vec![1.0, 0.3, 0.3, 0.5]).unwrap();
    let kind = TrainSettings {
        method: TrainMethod::Edm,
        sigma_data: Some(0.8),
        ..TrainSettings::default()
    }
    .model_kind(|| unreachable!())
    .unwrap();
    let cfg = match &kind {
        ModelKind::Edm { edm, .. } => *edm,
        k => panic!("{k:?}"),
    };
    assert_eq!(cfg, EdmConfig::for_data_std(0.8));
    let exact = MixtureScore::new(GaussianMixture::from(g.clone()), EdmSde::default());
    let ideal = FnField::new(2, move |u: &Tensor<2>, c: &Tensor<1>| {
        let sigma = (4.0 * to_vec(c)[0]).exp();
        let (skip, out, cin, _) = cfg.coefficients(sigma);
        let x = u.clone() / cin;
        let s = exact.eval(&x, &times_like(&x, sigma));
        let d = x.clone() + s * (sigma * sigma);
        (d - x * skip) / out
    });
    let field = kind.field(Box::new(ideal)).unwrap();
    let exact = MixtureScore::new(GaussianMixture::from(g), EdmSde::default());
    let x = matrix(vec![0.3, -1.0, 2.0, 0.5], 2, 2, &cpu(), DType::F64);
    for sigma in [0.01, 0.5, 3.0, 60.0] {
        let (got, want) = (
            to_vec(&field.eval_at(&x, sigma)),
            to_vec(&exact.eval_at(&x, sigma)),
        );
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                "σ {sigma}: {a} vs {b}"
            );
        }
    }
    let v = serde_json::to_value(&kind).unwrap();
    assert_eq!(v["method"], "edm");
    assert_eq!(serde_json::from_value::<ModelKind>(v).unwrap(), kind);
    assert_eq!(kind.method(), TrainMethod::Edm);
}

/// σ_data is estimated as √(tr Σ / d) of the data: for N(0, diag(4, 1)) points it is
/// √2.5 within 4 standard errors (the sample variance of n points has relative SE √(2/n) per
/// coordinate, so SE(σ̂_d) ≈ σ_d·√(2/n)/2 at most); EDM settings are refused for other methods.
#[test]
fn edm_settings_estimate_sigma_data_and_are_refused_elsewhere() {
    let n = 20_000;
    let g =
        GaussianMixture::from(Gaussian::new(vec![1.0, -3.0], vec![4.0, 0.0, 0.0, 1.0]).unwrap());
    let x = g.sample(n, &mut tensor::rng(3));
    let s = TrainSettings {
        method: TrainMethod::Edm,
        ..TrainSettings::default()
    };
    let cfg = s.edm_config(|| x);
    let want = 2.5f64.sqrt();
    let se = want * (2.0 / n as f64).sqrt() / 2.0;
    assert!(
        (cfg.sigma_data - want).abs() < 4.0 * se,
        "{}",
        cfg.sigma_data
    );
    assert!((cfg.p_mean - (-1.2 + (cfg.sigma_data / 0.5).ln())).abs() < 1e-12);
    let bad = TrainSettings {
        sigma_data: Some(1.0),
        ..TrainSettings::default()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("--sigma-data") && e.contains("--method edm"),
        "{e}"
    );
    let bad = TrainSettings {
        p_std: Some(0.0),
        ..s
    };
    assert!(bad.validate().unwrap_err().to_string().contains("--p-std"));
}
