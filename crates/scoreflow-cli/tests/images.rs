//! End-to-end tests of image runs (issue 16): a tiny U-Net on the built-in 8 × 8 digits through
//! train → resume → sample → likelihood → plot, and the one-line errors of the image and device
//! flags. Networks are tiny (base 8, a few steps) so the file runs in seconds; the quality of a
//! full-size run is measured in BENCHMARKS.md, not here.

mod common;

use common::{assert_one_line_error, scoreflow};
use std::path::Path;
use std::process::Output;

/// The JSON line a `--json` command printed, after asserting success.
#[track_caller]
fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().expect("a JSON line")).expect("valid JSON")
}

/// Losses of a run's train_log.csv (columns step,loss,…).
fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("train_log.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

/// (width, height) from a PNG's IHDR chunk, after checking the signature.
fn png_size(p: &Path) -> (u32, u32) {
    let b = std::fs::read(p).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        p.display()
    );
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

const TINY: [&str; 14] = [
    "--data",
    "digits",
    "--base",
    "8",
    "--batch",
    "16",
    "--checkpoint-every",
    "4",
    "--schedule",
    "constant",
    "--ema",
    "0",
    "--seed",
    "3",
];

/// Digits pick the U-Net with the burn engine; a 4-step run extended by `--resume` to 8 trains
/// exactly the steps of an uninterrupted 8-step one (the same losses to the last bit: batches,
/// dequantisation noise and path noise come from the saved RNG streams, and the constant
/// learning rate does not depend on the total); samples come back in
/// data units within [0, 16] (clamped, continuous), the first 100 as a grid PNG of the layout's
/// size; bits/dim is −E log p/(d ln 2) of the dequantised held-out digits in data units, so it
/// equals nll/(64 ln 2) of the same report; plot draws the grid, the animation and the
/// neighbour panel.
#[test]
fn tiny_unet_on_digits_trains_resumes_samples_and_reports_bits_per_dim() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut whole: Vec<&str> = vec!["train", "--steps", "8", "--out", "whole", "--json"];
    whole.extend(TINY);
    let s = json(&scoreflow(&whole, cwd));
    assert_eq!(s["engine"], "burn");
    assert_eq!(s["device"], "cpu");
    assert_eq!(s["step"], 8);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("whole/meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["model"]["arch"], "unet");
    assert_eq!(meta["model"]["base"], 8);
    assert!(cwd.join("whole/images.json").exists());

    let mut half: Vec<&str> = vec!["train", "--steps", "4", "--out", "split", "--json"];
    half.extend(TINY);
    json(&scoreflow(&half, cwd));
    json(&scoreflow(
        &["train", "--resume", "split", "--steps", "8", "--json"],
        cwd,
    ));
    let (a, b) = (losses(&cwd.join("whole")), losses(&cwd.join("split")));
    assert_eq!(a.len(), 8);
    assert_eq!(a, b, "resumed losses differ from the uninterrupted run");

    let out = json(&scoreflow(
        &["sample", "whole", "-n", "12", "--steps", "4", "--json"],
        cwd,
    ));
    assert_eq!(out["n"], 12);
    let grid = cwd.join("whole/samples.png");
    assert_eq!(
        out["grid"].as_str().map(|g| cwd.join(g)),
        Some(grid.clone())
    );
    // 10 columns of 8·4 pixels with 2 between and around; 2 rows.
    assert_eq!(png_size(&grid), (10 * 34 + 2, 2 * 34 + 2));
    let text = std::fs::read_to_string(cwd.join("whole/samples.csv")).unwrap();
    let vals: Vec<f64> = text
        .lines()
        .skip(1)
        .flat_map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()))
        .collect();
    assert_eq!(vals.len(), 12 * 64);
    assert!(
        vals.iter().all(|v| (0.0..=16.0).contains(v)),
        "out of range"
    );
    assert!(
        vals.iter().any(|v| *v > 0.0 && *v < 16.0),
        "every value clamped"
    );

    let lik = json(&scoreflow(
        &[
            "likelihood",
            "whole",
            "-n",
            "3",
            "--solver",
            "rk4",
            "--steps",
            "4",
            "--json",
        ],
        cwd,
    ));
    assert_eq!(lik["n"], 3);
    let bpd = lik["bits_per_dim"].as_f64().expect("bits_per_dim key");
    assert!(bpd.is_finite() && bpd > 0.0, "{bpd}");
    let nll = lik["nll"].as_f64().unwrap();
    let expected = nll / (64.0 * std::f64::consts::LN_2);
    assert!(
        (bpd - expected).abs() < 1e-9 * (1.0 + bpd),
        "{bpd} vs {expected}"
    );
    assert_eq!(lik["divergence"], "hutchinson(1)");

    let plot = json(&scoreflow(&["plot", "whole", "--json"], cwd));
    let files: Vec<String> = plot["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    for name in ["samples.png", "flow.gif", "neighbours.png"] {
        assert!(files.iter().any(|f| f.ends_with(name)), "{name}: {files:?}");
    }
    let gif = std::fs::read(cwd.join("whole/flow.gif")).unwrap();
    assert_eq!(&gif[..6], b"GIF89a");
    let m = &plot["memorisation"];
    assert_eq!(m["samples"], 12);
    assert!(m["sample_nn_mean"].as_f64().unwrap() > 0.0);

    image_run_evaluates_diagnoses_and_reports(cwd, &cwd.join("whole"));
}

/// `eval`, `diagnose` and `report` on the image run of the test above (shared to train once).
///
/// eval: pixel-space metrics of 12 samples against all 180 held-out digits, the floor from 12
/// training digits, 5 median-heuristic MMD bandwidths and the memorisation check over all
/// held-out digits. Exact checks: scoring the held-out digits themselves as samples gives SW₂ =
/// 0 (the same set: every sorted projection coincides) and a memorisation ratio of exactly 1
/// (the same points measured against the same training set); asking for more samples than
/// training digits is a one-line error. diagnose: the 64-D U-Net field is probed with its
/// exact Jacobian (forward-mode tangents), curl and the true-field error named as not computed; a 2-D
/// built-in set as probe points is a one-line error. report: the page holds the redrawn
/// neighbour panel, the memorisation line and the bits/dim of `likelihood`'s logp.json.
fn image_run_evaluates_diagnoses_and_reports(cwd: &Path, run: &Path) {
    let run_s = run.to_str().unwrap();
    let ev = json(&scoreflow(
        &["eval", run_s, "-n", "12", "--steps", "4", "--json"],
        cwd,
    ));
    assert_eq!(ev["samples"]["n_samples"], 12);
    assert_eq!(ev["samples"]["n_reference"], 180);
    assert_eq!(ev["floor"]["n_samples"], 12);
    assert_eq!(ev["mmd_bandwidths"].as_array().unwrap().len(), 5);
    for k in ["sw2", "energy", "mean_error"] {
        let (a, f) = (
            ev["samples"][k].as_f64().unwrap(),
            ev["floor"][k].as_f64().unwrap(),
        );
        assert!(
            a.is_finite() && a > 0.0 && f.is_finite() && f > 0.0,
            "{k}: {a} {f}"
        );
    }
    let m = &ev["memorisation"];
    assert_eq!(
        (m["samples"].as_u64(), m["held_out"].as_u64()),
        (Some(12), Some(180))
    );
    let (snn, hnn) = (
        m["sample_nn_mean"].as_f64().unwrap(),
        m["held_out_nn_mean"].as_f64().unwrap(),
    );
    assert!(snn > 0.0 && hnn > 0.0);
    assert!((m["ratio"].as_f64().unwrap() - snn / hnn).abs() < 1e-12);
    assert!(run.join("metrics.json").exists());

    let held = run.join("heldout.npy");
    let same = json(&scoreflow(
        &[
            "eval",
            run_s,
            "--samples",
            held.to_str().unwrap(),
            "--out",
            "self.json",
            "--json",
        ],
        cwd,
    ));
    assert!(
        same["samples"]["sw2"].as_f64().unwrap().abs() < 1e-12,
        "{}",
        same["samples"]
    );
    assert!((same["memorisation"]["ratio"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    let out = scoreflow(&["eval", run_s, "-n", "5000"], cwd);
    assert_one_line_error(&out, &["5000", "training images"]);

    let d = json(&scoreflow(
        &["diagnose", run_s, "-n", "2", "--times", "0.5", "--json"],
        cwd,
    ));
    assert_eq!(d["jacobian"], "exact");
    let not: Vec<&str> = d["not_computed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        not.iter()
            .any(|n| n.starts_with("curl") && n.contains("64-D")),
        "{not:?}"
    );
    assert!(not.iter().any(|n| n.contains("true field")), "{not:?}");
    let h = &d["times"][0]["summary"]["antisymmetric_share"]["mean"];
    assert!(h.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)), "{h}");
    let out = scoreflow(&["diagnose", run_s, "--points", "moons"], cwd);
    assert_one_line_error(&out, &["--points moons", "2-D", "64-D"]);

    std::fs::remove_file(run.join("neighbours.png")).unwrap();
    let r = json(&scoreflow(&["report", run_s, "--json"], cwd));
    let drawn: Vec<&str> = r["drawn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        drawn.iter().any(|f| f.ends_with("neighbours.png")),
        "{drawn:?}"
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    for needle in [
        "Memorisation check",
        "nearest training image",
        "Bits per dimension",
        "data:image/gif;base64",
        "U-Net base 8",
    ] {
        assert!(html.contains(needle), "{needle} missing from the report");
    }
}

/// A noise-free score model trains on the U-Net (exact divergence through forward-mode
/// tangents), and its missing ODE likelihood is a one-line error.
#[test]
fn sliced_score_matching_trains_a_unet_and_refuses_a_likelihood() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let mut a: Vec<&str> = vec![
        "train", "--method", "ssm", "--steps", "2", "--out", "ssm", "--json",
    ];
    a.extend(TINY);
    let s = json(&scoreflow(&a, cwd));
    assert_eq!(s["method"], "ssm");
    assert_eq!(s["step"], 2);
    let out = scoreflow(&["likelihood", "ssm", "-n", "2"], cwd);
    assert_one_line_error(&out, &["noise-free", "likelihood"]);
}

/// `bench --arch unet` times the U-Net with the keys of `bench/unet_torch.py --bench`, every
/// value positive and finite, the parameter count that of the network asked for (base 8 × (1,
/// 2), one block, no attention: the count `UnetConfig::num_params` gives, checked in the
/// library); flags of the other workload are one-line errors.
#[test]
fn bench_unet_prints_the_torch_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let b = json(&scoreflow(
        &[
            "--threads",
            "2",
            "bench",
            "--arch",
            "unet",
            "--base",
            "8",
            "--attention",
            "false",
            "--batch",
            "8",
            "--samples",
            "4",
            "--euler-steps",
            "2",
            "--json",
        ],
        cwd,
    ));
    for key in [
        "step_ms",
        "steps_per_s",
        "sample_s",
        "samples_per_s",
        "params",
    ] {
        let v = b[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }
    assert_eq!(
        (b["impl"].as_str(), b["batch"].as_u64()),
        (Some("scoreflow"), Some(8))
    );
    assert_eq!(
        (b["samples"].as_u64(), b["euler_steps"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(b["attention"], false);
    let out = scoreflow(&["bench", "--arch", "unet", "--width", "64"], cwd);
    assert_one_line_error(&out, &["--width", "MLP"]);
    let out = scoreflow(&["bench", "--base", "16"], cwd);
    assert_one_line_error(&out, &["--base", "--arch unet"]);
}

/// Every train flag that does not apply to image data or to the U-Net is refused with its
/// name (also at its default value, when given), and the U-Net's flags on points; nothing
/// is trained (each fails in validation).
#[test]
fn flags_that_do_not_apply_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let digits = ["train", "--data", "digits", "--steps", "1"];
    let refused: [(&[&str], &[&str]); 9] = [
        (&["--normalize", "yes"], &["--normalize", "image data"]),
        (&["--normalize", "no"], &["--normalize", "[-1, 1)"]),
        (&["--width", "64"], &["--width", "MLP", "U-Net"]),
        (&["--width", "128"], &["--width", "MLP"]),
        (&["--depth", "2"], &["--depth", "MLP"]),
        (&["--activation", "relu"], &["--activation", "MLP"]),
        (
            &["--time-embedding", "fourier"],
            &["--time-embedding", "MLP"],
        ),
        (
            &["--conditional", "--label-column", "y"],
            &["--label-column", "images"],
        ),
        (
            &["--arch", "mlp", "--mults", "1,2"],
            &["--mults", "U-Net", "--arch mlp"],
        ),
    ];
    for (extra, needles) in refused {
        let mut a = digits.to_vec();
        a.extend(extra);
        assert_one_line_error(&scoreflow(&a, cwd), needles);
    }
    let out = scoreflow(&["train", "--data", "moons", "--base", "16"], cwd);
    assert_one_line_error(&out, &["--base", "U-Net", "point data"]);
    assert!(
        std::fs::read_dir(cwd).unwrap().next().is_none(),
        "a run directory was left"
    );
}

#[test]
fn image_and_device_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let out = scoreflow(&["train", "--data", "moons", "--arch", "unet"], cwd);
    assert_one_line_error(&out, &["--arch unet", "image data"]);
    let out = scoreflow(
        &[
            "train", "--data", "digits", "--engine", "fused", "--steps", "1",
        ],
        cwd,
    );
    assert_one_line_error(&out, &["fused", "U-Net"]);
    let out = scoreflow(&["train", "--data", "digits", "--base", "7"], cwd);
    assert_one_line_error(&out, &["--base"]);
    let out = scoreflow(&["train", "--device", "tpu"], cwd);
    assert_one_line_error(&out, &["tpu", "vulkan"]);
    #[cfg(not(feature = "vulkan"))]
    {
        let out = scoreflow(
            &[
                "train", "--data", "digits", "--device", "vulkan", "--out", "gpu",
            ],
            cwd,
        );
        assert_one_line_error(&out, &["vulkan", "feature"]);
        assert!(!cwd.join("gpu").exists(), "a run directory was left behind");
        let out = scoreflow(&["bench", "--device", "vulkan:1"], cwd);
        assert_one_line_error(&out, &["vulkan:1", "feature"]);
    }
}
