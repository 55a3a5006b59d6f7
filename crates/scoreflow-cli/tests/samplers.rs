//! End-to-end tests of the few-step samplers and EDM on the command line (issue 14): a few-step
//! sampler on an exact field reaches the data's noise floor, options that do not apply are
//! one-line errors, and an EDM run trains and samples with its own and the generic samplers.

mod common;

use common::{assert_one_line_error, scoreflow};
use std::process::Output;

use scoreflow::data::{load_points, Dataset, Points};
use scoreflow::metrics::sliced_wasserstein2;
use scoreflow::tensor::rng;

#[track_caller]
fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// SW₂ (256 directions, fixed seed) of `x` against n fresh draws of `data`.
fn sw2_to_fresh(x: &Points, data: Dataset, seed: u64) -> f64 {
    let reference = data.sample(x.len(), &mut rng(seed));
    sliced_wasserstein2(x, &reference, 256, &mut rng(30_000)).unwrap()
}

/// The noise floor's bound at n points of 8gaussians: SW₂ between two independent n-samples,
/// measured on 8 independent pairs; mean + 4·sd of those (and the floors).
fn floor_bound(n: usize) -> (f64, Vec<f64>) {
    let pairs = 8;
    let floors: Vec<f64> = (0..pairs)
        .map(|k| {
            let fresh = Dataset::EightGaussians.sample(n, &mut rng(500 + k));
            sw2_to_fresh(&fresh, Dataset::EightGaussians, 10_000)
        })
        .collect();
    let mean = floors.iter().sum::<f64>() / pairs as f64;
    let var = floors.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / (pairs - 1) as f64;
    (mean + 4.0 * var.sqrt(), floors)
}

/// `scoreflow sample --exact 8gaussians --sde vp --sampler dpmpp-2m --steps 10` spends 10 NFE
/// and its n = 4096 samples are within the noise floor's own spread at this n. The bound comes
/// from n: SW₂ between two independent n-samples of the data (which shrinks like n^(−1/2) and
/// at n = 4096 varies by ±30 % with the multinomial mode weights) is measured here on 8
/// independent pairs, and the samples must score below mean + 4·sd of those. DPM-Solver++ 2M's
/// own bias at 10 steps (second order; ≈ 0.13 in SW₂, from `samplers spacing`: 0.147 at 10
/// steps, 0.059 at 20, floor 0.048) fits inside it; a first-order or broken update does not
/// (edm-euler at 10 steps scores 0.22–0.29 here).
#[test]
fn dpmpp_2m_on_the_exact_field_reaches_the_noise_floor() {
    let dir = tempfile::tempdir().unwrap();
    let n = 4096;
    let out = scoreflow(
        &[
            "sample",
            "--exact",
            "8gaussians",
            "--sde",
            "vp",
            "--sampler",
            "dpmpp-2m",
            "--steps",
            "10",
            "-n",
            "4096",
            "--out",
            "s.npy",
            "--json",
        ],
        dir.path(),
    );
    let summary = json(&out);
    assert_eq!(summary["nfe"], 10, "{summary}");
    assert_eq!(summary["sampler"], "dpmpp-2m");
    let x = load_points(dir.path().join("s.npy"), Some(2)).unwrap();
    assert_eq!(x.len(), n);
    let (bound, floors) = floor_bound(n);
    let got = sw2_to_fresh(&x, Dataset::EightGaussians, 10_000);
    eprintln!("dpmpp-2m 10 steps: SW2 {got:.4}, floors {floors:?}, bound {bound:.4}");
    assert!(
        got < bound,
        "SW2 {got} vs bound {bound} (floors {floors:?})"
    );
}

/// Options that do not apply to a sampler, or samplers that do not apply to a model, are
/// one-line errors naming the flag; `--sde` needs `--exact`.
#[test]
fn inapplicable_sampler_options_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["--sampler", "dpmpp-2m", "--churn", "1"],
            &["--churn", "edm-heun"],
        ),
        (
            &["--sampler", "em", "--spacing", "karras"],
            &["--spacing", "em"],
        ),
        (
            &["--sampler", "dpmpp-2m", "--order", "3"],
            &["--order", "dpmpp-3m"],
        ),
        (
            &["--sampler", "unipc", "--order", "4"],
            &["--order must be 1, 2 or 3"],
        ),
        (&["--sampler", "ddim", "--eta=-1"], &["--eta must be >= 0"]),
        (&["--sampler", "heun"], &["edm-heun"]),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["sample", "--exact", "8gaussians", "-n", "10"];
        args.extend_from_slice(extra);
        assert_one_line_error(&scoreflow(&args, dir.path()), needles);
    }
    assert_one_line_error(
        &scoreflow(&["sample", "--exact", "moons"], dir.path()),
        &["moons", "8gaussians"],
    );
}

/// `--method edm` trains (σ_data estimated and recorded), samples with its default edm-heun
/// (2N − 1 NFE) and with dpmpp-2m under EDM's SDE; EDM settings are refused for other methods.
#[test]
fn edm_runs_train_and_sample_with_few_step_samplers() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("edm");
    let run_s = run.to_str().unwrap();
    let out = scoreflow(
        &[
            "train", "--method", "edm", "--steps", "50", "--width", "16", "--depth", "2", "--out",
            run_s, "--quiet",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["objective"]["method"], "edm");
    // 8gaussians has per-coordinate standard deviation ≈ 2.02 (modes at radius 2√2, σ 0.5).
    let sd = meta["objective"]["edm"]["sigma_data"].as_f64().unwrap();
    assert!((sd - 2.02).abs() < 0.1, "sigma_data {sd}");
    for (extra, nfe) in [
        (vec!["--steps", "10"], 19),
        (vec!["--sampler", "dpmpp-2m", "--steps", "8"], 8),
    ] {
        let mut args = vec!["sample", run_s, "-n", "100", "--json"];
        args.extend(extra);
        assert_eq!(json(&scoreflow(&args, dir.path()))["nfe"], nfe);
    }
    assert_one_line_error(
        &scoreflow(
            &[
                "train",
                "--method",
                "dsm",
                "--sigma-data",
                "1",
                "--steps",
                "5",
            ],
            dir.path(),
        ),
        &["--sigma-data", "--method edm"],
    );
}

/// Flows take the few-step samplers (the path is the noise schedule, the velocity is read as
/// x̂₁ and ε̂): `scoreflow sample --exact 8gaussians --method cfm --sampler unipc --steps 10`
/// spends 10 NFE and its n = 4096 samples are within the noise floor's bound (`floor_bound`:
/// mean + 4 sd of 8 data-vs-data SW₂ at this n), and at least 25 % closer to fresh data than the
/// first-order Euler step of the same flow ODE at the same 10 NFE (`--sampler euler --steps
/// 10`; DDIM on this path is the same update): measured 0.059 vs 0.114. The floor bound alone
/// does not separate the orders at this n (floors 0.05–0.14, bound 0.195: both pass), hence the
/// paired comparison on the same reference set. A trained cfm run samples with
/// `--sampler dpmpp-2m --steps 10` (10 NFE), and a score-only sampler on it is a one-line
/// error naming the few-step samplers.
#[test]
fn flows_sample_with_few_step_samplers() {
    let dir = tempfile::tempdir().unwrap();
    let n = 4096;
    let (bound, floors) = floor_bound(n);
    let mut sw2 = Vec::new();
    for sampler in ["unipc", "euler"] {
        let out = scoreflow(
            &[
                "sample",
                "--exact",
                "8gaussians",
                "--method",
                "cfm",
                "--sampler",
                sampler,
                "--steps",
                "10",
                "-n",
                "4096",
                "--out",
                "f.npy",
                "--json",
            ],
            dir.path(),
        );
        let summary = json(&out);
        assert_eq!(summary["nfe"], 10, "{summary}");
        let x = load_points(dir.path().join("f.npy"), Some(2)).unwrap();
        let got = sw2_to_fresh(&x, Dataset::EightGaussians, 10_000);
        eprintln!("cfm {sampler} 10 steps: SW2 {got:.4}, bound {bound:.4} (floors {floors:?})");
        sw2.push(got);
    }
    assert!(sw2[0] < bound, "unipc: SW2 {} vs bound {bound}", sw2[0]);
    assert!(
        sw2[0] < 0.75 * sw2[1],
        "unipc {} vs Euler {}",
        sw2[0],
        sw2[1]
    );
    let run = dir.path().join("cfm");
    let run_s = run.to_str().unwrap();
    let out = scoreflow(
        &[
            "train", "--steps", "50", "--width", "16", "--depth", "2", "--out", run_s, "--quiet",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = [
        "sample",
        run_s,
        "-n",
        "100",
        "--sampler",
        "dpmpp-2m",
        "--steps",
        "10",
        "--json",
    ];
    assert_eq!(json(&scoreflow(&args, dir.path()))["nfe"], 10);
    assert_one_line_error(
        &scoreflow(
            &["sample", run_s, "-n", "10", "--sampler", "em"],
            dir.path(),
        ),
        &["flow-matching", "dpmpp-2m"],
    );
}
