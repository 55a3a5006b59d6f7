//! End-to-end tests of sampling p(x | y) with the `scoreflow` binary (issue 12): class-
//! conditional training and classifier-free guidance, exact priors sampled by class and given an
//! observation, and one-line errors for bad conditions.

mod common;

use common::{assert_one_line_error, scoreflow};
use std::path::Path;
use std::process::Output;

use scoreflow::data::{self, Dataset, Points};
use scoreflow::gaussian::{GaussianMixture, LowRankMixture};
use scoreflow::inverse::Observation;

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The share of `points` whose most responsible 8gaussians component is `class`.
fn share_in_mode(points: &Points, class: usize) -> f64 {
    let mix = GaussianMixture::from(&Dataset::EightGaussians.mixture().unwrap());
    let hits = points
        .rows()
        .filter(|r| {
            let resp = mix.responsibilities(r);
            (0..resp.len()).max_by(|&a, &b| resp[a].total_cmp(&resp[b])) == Some(class)
        })
        .count();
    hits as f64 / points.len() as f64
}

fn load(path: &Path) -> Points {
    data::load_points(path, Some(2)).unwrap()
}

/// A conditional flow-matching run on labelled 8gaussians (400 steps, no EMA: the average of
/// 400 steps at decay 0.999 would still be mostly the initial weights) samples the requested
/// mode: ≥ 99 % of 2,000 `--class 3` samples are in mode 3 by the mixture's responsibilities,
/// at G = 1 and guided at G = 3. Exact samples of a mode land in a neighbour with probability
/// 2Φ(−(half the spacing)/σ) = 2Φ(−1.08/0.354) ≈ 0.22 % (4.5 of 2,000, sd 2.1), so 1 % (20) leaves
/// room for learning error but not for a wrong or ignored label (12.5 % of samples per mode).
/// The run's config records the conditional settings; classes out of range are one-line errors.
#[test]
fn conditional_run_samples_the_requested_class() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_ok(&scoreflow(
        &[
            "--quiet",
            "train",
            "--conditional",
            "--steps",
            "400",
            "--ema",
            "0",
            "--out",
            "c8",
        ],
        d,
    ));
    let cfg = std::fs::read_to_string(d.join("c8/config.toml")).unwrap();
    assert!(
        cfg.contains("conditional = true") && cfg.contains("label-dropout = 0.1"),
        "{cfg}"
    );
    for g in ["1", "3"] {
        let out = format!("s{g}.csv");
        assert_ok(&scoreflow(
            &[
                "--quiet",
                "sample",
                "c8",
                "--class",
                "3",
                "--guidance",
                g,
                "-n",
                "2000",
                "--out",
                &out,
            ],
            d,
        ));
        let share = share_in_mode(&load(&d.join(&out)), 3);
        assert!(share >= 0.99, "G = {g}: {share} of samples in mode 3");
    }
    assert_one_line_error(
        &scoreflow(&["sample", "c8", "--class", "8", "-n", "10"], d),
        &["--class 8", "out of range", "0..7"],
    );
}

/// The exact prior of 8gaussians (no network) by class: ≥ 99 % of 2,000 `--class 5` samples in
/// mode 5 (the Bayes error above, 0.22 %); and given a mask observation x₁ = 2 ± 0.1 with TMPD
/// on the exact VP score, the posterior sample mean of x₁ is the exact posterior's E[x₁ | y] =
/// 2.002 (Observation::posterior, Woodbury) within 0.05: 4 SE of 1,000 samples (sd ≈ 0.3, SE
/// 0.01) plus TMPD's approximation error (≈ 0.01 here); the two modes at x₂ = ±2 are equally
/// likely a posteriori (0.481 each), so each holds 48 % ± 6 % of the samples (4 SE = 0.063).
/// `--plot` writes the prior | likelihood | posterior picture.
#[test]
fn exact_prior_by_class_and_given_an_observation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_ok(&scoreflow(
        &[
            "--quiet",
            "sample",
            "--exact",
            "8gaussians",
            "--class",
            "5",
            "-n",
            "2000",
            "--out",
            "e5.csv",
        ],
        d,
    ));
    let share = share_in_mode(&load(&d.join("e5.csv")), 5);
    assert!(share >= 0.99, "{share} of exact class-5 samples in mode 5");
    // The unconditional exact field (G = 0) guided by the exact classifier at γ = 1 samples
    // class 5 just as well (the same field to float precision, tested in the library).
    assert_ok(&scoreflow(
        &[
            "--quiet",
            "sample",
            "--exact",
            "8gaussians",
            "--class",
            "5",
            "--guidance",
            "0",
            "--classifier-scale",
            "1",
            "-n",
            "2000",
            "--out",
            "c5.csv",
        ],
        d,
    ));
    let share = share_in_mode(&load(&d.join("c5.csv")), 5);
    assert!(
        share >= 0.99,
        "{share} of classifier-guided samples in mode 5"
    );

    let obs_text = r#"{"mask": [1, 0], "values": [2.0, 0.0], "sigma": 0.1}"#;
    std::fs::write(d.join("obs.json"), obs_text).unwrap();
    assert_ok(&scoreflow(
        &[
            "--quiet",
            "sample",
            "--exact",
            "8gaussians",
            "--method",
            "dsm",
            "--observe",
            "obs.json",
            "--posterior",
            "tmpd",
            "--steps",
            "500",
            "-n",
            "1000",
            "--out",
            "post.csv",
            "--plot",
            "post.png",
        ],
        d,
    ));
    let png = std::fs::read(d.join("post.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG", "post.png is not a PNG");
    let obs = Observation::from_json(obs_text, "obs").unwrap();
    let prior = LowRankMixture::from(&GaussianMixture::from(
        &Dataset::EightGaussians.mixture().unwrap(),
    ));
    let exact = obs.posterior(&prior).unwrap().mean();
    let p = load(&d.join("post.csv"));
    let n = p.len() as f64;
    let mean_x = p.rows().map(|r| r[0]).sum::<f64>() / n;
    assert!(
        (mean_x - exact[0]).abs() < 0.05,
        "E[x1 | y]: samples {mean_x}, exact {}",
        exact[0]
    );
    for side in [1.0, -1.0] {
        let share = p.rows().filter(|r| r[1] * side > 1.0).count() as f64 / n;
        assert!(
            (share - 0.481).abs() < 0.063,
            "mode at x2 = {side}·2: {share}"
        );
    }
}

/// Bad conditions are one-line errors: malformed OBS.json (shapes, σ < 0, unknown keys), an
/// observation of another dimension, a class or guidance on an unconditional run, --guidance
/// without --class, DPS on a flow model, --plot without a condition, --conditional on a set
/// without classes, and
/// --label-column without --conditional.
#[test]
fn bad_conditions_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_ok(&scoreflow(
        &["--quiet", "train", "--steps", "2", "--out", "u"],
        d,
    ));
    let exact = ["sample", "--exact", "8gaussians", "-n", "10"];
    for (text, needles) in [
        (
            r#"{"A": [[1, 0], [0, 1, 2]], "y": [0, 0], "sigma": 0.1}"#,
            &["bad.json", "row 1"][..],
        ),
        (
            r#"{"A": [[1, 0]], "y": [0, 1], "sigma": 0.1}"#,
            &["bad.json", "y has 2"][..],
        ),
        (
            r#"{"A": [[1, 0]], "y": [0], "sigma": -1}"#,
            &["bad.json", "sigma"][..],
        ),
        (
            r#"{"mask": [1, 0], "values": [1, 2, 3], "sigma": 0}"#,
            &["bad.json", "3 values"][..],
        ),
        (
            r#"{"A": [[1, 0, 0]], "y": [0], "sigma": 0.1}"#,
            &["R^3"][..],
        ),
        (r#"{"B": 1}"#, &["bad.json"][..]),
    ] {
        std::fs::write(d.join("bad.json"), text).unwrap();
        let mut args = exact.to_vec();
        args.extend(["--observe", "bad.json"]);
        assert_one_line_error(&scoreflow(&args, d), needles);
    }
    let mut args = exact.to_vec();
    args.extend(["--plot", "x.png"]);
    assert_one_line_error(&scoreflow(&args, d), &["x.png", "--plot", "--class"]);
    assert_one_line_error(
        &scoreflow(&["sample", "u", "--class", "1", "-n", "10"], d),
        &["--class 1", "unconditional", "--conditional"],
    );
    assert_one_line_error(
        &scoreflow(&["sample", "u", "--guidance", "2", "-n", "10"], d),
        &["--class"],
    );
    assert_one_line_error(
        &scoreflow(
            &[
                "sample",
                "u",
                "--class",
                "0",
                "--classifier-scale",
                "1",
                "-n",
                "10",
            ],
            d,
        ),
        &["unconditional"],
    );
    std::fs::write(
        d.join("ok.json"),
        r#"{"mask": [1, 0], "values": [2, 0], "sigma": 0.1}"#,
    )
    .unwrap();
    let mut args = exact.to_vec();
    args.extend([
        "--method",
        "cfm",
        "--observe",
        "ok.json",
        "--posterior",
        "dps",
    ]);
    assert_one_line_error(&scoreflow(&args, d), &["dps", "--method dsm"]);
    assert_one_line_error(
        &scoreflow(&["train", "--conditional", "--data", "checkerboard"], d),
        &["checkerboard", "no classes"],
    );
    assert_one_line_error(
        &scoreflow(&["train", "--label-column", "y"], d),
        &["--label-column", "--conditional"],
    );
}

/// A CSV label column: labels 10 and 20 become classes 0 and 1 (K = 2, so class 2 is out of
/// range); a file without --label-column is refused.
#[test]
fn csv_label_column_sets_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut csv = String::from("x,y,label\n");
    for i in 0..200 {
        let (c, l) = if i % 2 == 0 { (-2.0, 10) } else { (2.0, 20) };
        csv.push_str(&format!(
            "{},{},{l}\n",
            c + 0.01 * i as f64,
            0.5 - 0.005 * i as f64
        ));
    }
    std::fs::write(d.join("two.csv"), csv).unwrap();
    assert_ok(&scoreflow(
        &[
            "--quiet",
            "train",
            "--data",
            "two.csv",
            "--conditional",
            "--label-column",
            "label",
            "--steps",
            "20",
            "--out",
            "two",
        ],
        d,
    ));
    assert_ok(&scoreflow(
        &["--quiet", "sample", "two", "--class", "1", "-n", "10"],
        d,
    ));
    assert_one_line_error(
        &scoreflow(&["sample", "two", "--class", "2", "-n", "10"], d),
        &["--class 2", "0..1"],
    );
    assert_one_line_error(
        &scoreflow(&["train", "--data", "two.csv", "--conditional"], d),
        &["--label-column"],
    );
}

/// Classifier guidance with a trained classifier: an unconditional DSM model and a
/// `--method classifier` run on 8gaussians (VP SDE both; small MLPs, a few hundred steps), then
/// `sample --class 3 --classifier RUN2 --classifier-scale S` with 200 Euler–Maruyama steps on
/// 2,000 points. At S = 0 (the model alone) the share of mode 3 by the mixture's
/// responsibilities is the mixture weight 1/8 within 4 SE (√(p(1 − p)/n) = 0.0074 → 0.03, plus
/// the short model's own mode imbalance, ±0.03); at S = 2 it is ≥ 90 %: the exact classifier at
/// S = 1 gives ≥ 99 % (library test), a classifier that ignored the class would leave 12.5 %
/// and a wrong sign less, so 90 % leaves room for the learning error of short runs only.
/// `eval` on the classifier reports its accuracy at five times. Refused with one line each: a
/// classifier trained on another process (the straight path) naming both processes, one in
/// other data units, --classifier naming a run that is not a classifier, --classifier without
/// --class, a class out of the classifier's range, and sampling the classifier run itself.
#[test]
fn trained_classifier_guides_an_unconditional_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let small = ["--width", "64", "--depth", "2", "--ema", "0"];
    let mut args = vec![
        "--quiet", "train", "--method", "dsm", "--steps", "600", "--out", "m",
    ];
    args.extend(small);
    assert_ok(&scoreflow(&args, d));
    let mut args = vec![
        "--quiet",
        "train",
        "--method",
        "classifier",
        "--steps",
        "400",
        "--lr",
        "0.003",
        "--out",
        "c",
    ];
    args.extend(small);
    assert_ok(&scoreflow(&args, d));
    let cfg = std::fs::read_to_string(d.join("c/config.toml")).unwrap();
    assert!(cfg.contains("method = \"classifier\""), "{cfg}");
    let share = |s: &str| {
        let out = format!("s{s}.csv");
        assert_ok(&scoreflow(
            &[
                "--quiet",
                "sample",
                "m",
                "--class",
                "3",
                "--classifier",
                "c",
                "--classifier-scale",
                s,
                "--steps",
                "200",
                "-n",
                "2000",
                "--out",
                &out,
            ],
            d,
        ));
        share_in_mode(&load(&d.join(&out)), 3)
    };
    let s0 = share("0");
    assert!(
        (s0 - 0.125).abs() < 0.06,
        "S = 0: {s0} of samples in mode 3"
    );
    let s2 = share("2");
    assert!(s2 >= 0.9, "S = 2: {s2} of samples in mode 3");

    let out = scoreflow(&["--json", "eval", "c", "-n", "500"], d);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let scores = report["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 5);
    let last = &scores[4];
    assert!(
        last["accuracy"].as_f64().unwrap() > 0.95
            && last["bayes_accuracy"].as_f64().unwrap() > 0.99,
        "{last}"
    );

    let mut args = vec![
        "--quiet",
        "train",
        "--method",
        "classifier",
        "--process",
        "path",
        "--steps",
        "2",
        "--out",
        "cp",
    ];
    args.extend(small);
    assert_ok(&scoreflow(&args, d));
    let mut args = vec![
        "--quiet",
        "train",
        "--method",
        "classifier",
        "--normalize",
        "yes",
        "--steps",
        "2",
        "--out",
        "cn",
    ];
    args.extend(small);
    assert_ok(&scoreflow(&args, d));
    let guided = |clf: &str, class: &str| {
        scoreflow(
            &[
                "sample",
                "m",
                "--class",
                class,
                "--classifier",
                clf,
                "-n",
                "10",
            ],
            d,
        )
    };
    assert_one_line_error(&guided("cp", "3"), &["condot path", "vp SDE", "--sde"]);
    assert_one_line_error(&guided("cn", "3"), &["data units", "--normalize"]);
    assert_one_line_error(
        &guided("m", "3"),
        &["not a classifier", "--method classifier"],
    );
    assert_one_line_error(&guided("c", "8"), &["--class 8", "0..7"]);
    assert_one_line_error(
        &scoreflow(&["sample", "m", "--classifier", "c", "-n", "10"], d),
        &["--class"],
    );
    assert_one_line_error(
        &scoreflow(&["sample", "c", "-n", "10"], d),
        &["classifier", "not a generative model", "--classifier"],
    );
    assert_one_line_error(
        &scoreflow(&["likelihood", "c"], d),
        &["not a generative model"],
    );
}

/// `plot --exact 8gaussians --class 3 --guidance 0 --classifier-scale 0,1,4` draws the two
/// guidance pictures and reports (--json) shares that rise from the mixture weight 1/8 (within
/// 4 SE of 600 samples: 0.054) to ≥ 95 % at S = 1 and S = 4, while at S = 4 the sliced W₂ to
/// the class's data exceeds its floor by 0.03 (measured 0.11 vs 0.04: the diversity lost; the
/// library test derives the bounds on more samples).
#[test]
fn guidance_pictures_of_the_exact_prior() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = scoreflow(
        &[
            "--json",
            "plot",
            "--exact",
            "8gaussians",
            "--class",
            "3",
            "--guidance",
            "0",
            "--classifier-scale",
            "0,1,4",
            "--steps",
            "200",
            "-n",
            "600",
        ],
        d,
    );
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in ["guidance.png", "guidance-tradeoff.png"] {
        let png = std::fs::read(d.join(f)).unwrap();
        assert_eq!(&png[..4], b"\x89PNG", "{f} is not a PNG");
    }
    let pts = v["sweep"]["points"].as_array().unwrap();
    let share = |i: usize| pts[i]["share"].as_f64().unwrap();
    assert!((share(0) - 0.125).abs() < 0.054, "{v}");
    assert!(share(1) >= 0.95 && share(2) >= 0.95, "{v}");
    let sw2 = pts[2]["sw2"].as_f64().unwrap();
    assert!(
        sw2 > v["sweep"]["sw2_floor"].as_f64().unwrap() + 0.03,
        "{v}"
    );
    assert_one_line_error(
        &scoreflow(&["plot", "--exact", "8gaussians"], d),
        &["--class"],
    );
}
