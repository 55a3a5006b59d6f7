//! End-to-end tests of the `scoreflow` binary: help texts, one-line errors for bad input, and a
//! tiny train → sample → eval → plot round trip.

mod common;

use common::{assert_one_line_error, scoreflow};
use std::path::Path;
use std::process::{Command, Output};

const SUBCOMMANDS: [&str; 11] = [
    "quickstart",
    "train",
    "sample",
    "eval",
    "plot",
    "bench",
    "likelihood",
    "diagnose",
    "lesson",
    "import",
    "report",
];

#[test]
fn help_works_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let top = scoreflow(&["--help"], dir.path());
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout);
    for sub in SUBCOMMANDS {
        assert!(text.contains(sub), "top-level help lacks {sub}");
        let out = scoreflow(&[sub, "--help"], dir.path());
        assert!(out.status.success(), "{sub} --help failed");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains(&format!("Usage: scoreflow {sub}")),
            "{sub}: {help}"
        );
        assert!(help.contains("Example"), "{sub} --help has no example");
    }
    let version = scoreflow(&["--version"], dir.path());
    assert!(version.status.success());
}

#[test]
fn usage_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    assert_one_line_error(
        &scoreflow(&["train", "--widht", "3"], dir.path()),
        &["--widht", "scoreflow train --help"],
    );
    assert_one_line_error(&scoreflow(&["sample"], dir.path()), &["RUN_DIR"]);
    assert_one_line_error(&scoreflow(&["frobnicate"], dir.path()), &["frobnicate"]);
    assert_one_line_error(
        &scoreflow(&["train", "--method", "gan"], dir.path()),
        &["gan", "cfm"],
    );
    assert_one_line_error(
        &scoreflow(&["train", "--steps", "many"], dir.path()),
        &["many"],
    );
}

#[test]
fn malformed_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "width = 64\nwidht = 32\n").unwrap();
    assert_one_line_error(
        &scoreflow(&["train", "--config", "bad.toml"], dir.path()),
        &["bad.toml", "line 2", "widht"],
    );
    std::fs::write(&cfg, "steps = \"lots\"\n").unwrap();
    assert_one_line_error(
        &scoreflow(&["train", "--config", "bad.toml"], dir.path()),
        &["bad.toml", "steps"],
    );
    std::fs::write(&cfg, "ema = 2.0\n").unwrap();
    assert_one_line_error(
        &scoreflow(&["train", "--config", "bad.toml"], dir.path()),
        &["--ema"],
    );
    assert_one_line_error(
        &scoreflow(&["train", "--config", "missing.toml"], dir.path()),
        &["missing.toml"],
    );
}

/// Tiny, fast training settings for the round-trip tests (width 16 and depth 2 unless given).
const TINY: [&str; 6] = ["--batch", "64", "--checkpoint-every", "10", "--seed", "3"];

fn tiny_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--quiet", "--out", out];
    args.extend_from_slice(&TINY);
    for (flag, value) in [("--width", "16"), ("--depth", "2")] {
        if !extra.contains(&flag) {
            args.extend_from_slice(&[flag, value]);
        }
    }
    args.extend_from_slice(extra);
    args
}

fn train_tiny(cwd: &Path, out: &str, extra: &[&str]) -> Output {
    let o = scoreflow(&tiny_args(out, extra), cwd);
    assert!(
        o.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn bad_inputs_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_one_line_error(
        &scoreflow(&["train", "--data", "nothere.csv"], d),
        &["nothere.csv", "no such file"],
    );
    assert_one_line_error(
        &scoreflow(&["train", "--data", "spirals"], d),
        &["spirals", "8gaussians", "moons", "checkerboard"],
    );
    assert_one_line_error(&scoreflow(&["sample", "no-such-run"], d), &["no-such-run"]);
    std::fs::write(d.join("bad.csv"), "x,y\n1,2\n3,abc\n4,5\n").unwrap();
    assert_one_line_error(
        &scoreflow(&["train", "--data", "bad.csv"], d),
        &["bad.csv", "line 3"],
    );
    std::fs::write(d.join("ragged.csv"), "x,y\n1,2\n3\n").unwrap();
    assert_one_line_error(
        &scoreflow(&["train", "--data", "ragged.csv"], d),
        &["ragged.csv", "line 3"],
    );
    // A directory that is not a run.
    std::fs::create_dir(d.join("empty")).unwrap();
    assert_one_line_error(
        &scoreflow(&["eval", "empty"], d),
        &["empty", "not a scoreflow run"],
    );
    assert_one_line_error(
        &scoreflow(&["train", "--resume", "empty"], d),
        &["empty", "config.toml"],
    );
}

/// A run whose weights come from another architecture, and a score model asked for an ODE
/// sampler of velocity fields, are refused with one line each; nothing in the run changes.
#[test]
fn runs_of_a_different_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train_tiny(d, "a", &["--steps", "10"]);
    train_tiny(d, "b", &["--steps", "10", "--width", "24"]);
    let before = std::fs::read(d.join("b/meta.json")).unwrap();
    std::fs::copy(d.join("a/model.safetensors"), d.join("b/model.safetensors")).unwrap();
    assert_one_line_error(
        &scoreflow(&["sample", "b", "-n", "10"], d),
        &["model.safetensors"],
    );
    assert_eq!(std::fs::read(d.join("b/meta.json")).unwrap(), before);
    // Resuming a run into a directory that already holds another run needs --resume.
    assert_one_line_error(
        &scoreflow(&["train", "--out", "a", "--steps", "5"], d),
        &["already holds a run", "--resume"],
    );
    train_tiny(d, "vp", &["--steps", "10", "--method", "dsm"]);
    assert_one_line_error(
        &scoreflow(&["sample", "vp", "--sampler", "euler"], d),
        &["score model", "--sampler em"],
    );
    // pc: NFE = steps × (1 + corrector steps); --corrector-steps 0 is the predictor alone.
    for (m, nfe) in [("0", 20), ("2", 60)] {
        let out = scoreflow(
            &[
                "--json",
                "sample",
                "vp",
                "--sampler",
                "pc",
                "--predictor",
                "ancestral",
                "--corrector-steps",
                m,
                "--steps",
                "20",
                "-n",
                "10",
                "--out",
                "pc.csv",
            ],
            d,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["nfe"].as_u64(), Some(nfe), "corrector steps {m}");
    }
    assert_one_line_error(
        &scoreflow(
            &["sample", "vp", "--sampler", "pc", "--predictor", "heun"],
            d,
        ),
        &["invalid value 'heun'", "ancestral"],
    );
    // Options that do not apply are refused, not silently ignored.
    assert_one_line_error(
        &scoreflow(&["sample", "vp", "--sampler", "em", "--rtol", "1e-3"], d),
        &["--rtol/--atol apply to the adaptive dopri5 only"],
    );
    assert_one_line_error(
        &scoreflow(&["sample", "vp", "--sampler", "ode", "--steps", "10"], d),
        &["--steps does not apply to dopri5"],
    );
    assert_one_line_error(
        &scoreflow(&["sample", "vp", "--sampler", "em", "--snr", "0.1"], d),
        &["options of --sampler pc"],
    );
    // --denoise tweedie ends with one more score evaluation than the default noise-free mean.
    let out = scoreflow(
        &[
            "--json",
            "sample",
            "vp",
            "--sampler",
            "em",
            "--steps",
            "20",
            "-n",
            "10",
            "--denoise",
            "tweedie",
            "--out",
            "tw.csv",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nfe"].as_u64(), Some(21));
    assert_one_line_error(
        &scoreflow(&["sample", "vp", "--denoise", "blur"], d),
        &["invalid value 'blur'", "tweedie"],
    );
    // DSM runs feed the network ¼ ln σ unless told otherwise; the choice is saved with the run.
    let noise_input = |run: &str| {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(run).join("meta.json")).unwrap()).unwrap();
        meta["objective"]["dsm"]["noise_input"].clone()
    };
    assert_eq!(noise_input("vp"), "logsigma");
    train_tiny(
        d,
        "vpt",
        &["--steps", "10", "--method", "dsm", "--noise-input", "time"],
    );
    assert_eq!(noise_input("vpt"), "time");
    assert_one_line_error(
        &scoreflow(&["sample", "a", "--sampler", "pc"], d),
        &["flow-matching", "euler"],
    );
}

/// train → sample (whole and in shards) → eval → plot on a tiny model; the shards concatenate
/// to the unsharded file byte for byte, and every output exists and parses.
#[test]
fn train_sample_eval_plot_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train_tiny(d, "run", &["--steps", "30", "--data", "moons"]);
    for f in [
        "config.toml",
        "meta.json",
        "model.safetensors",
        "train_state.safetensors",
        "train_log.csv",
    ] {
        assert!(d.join("run").join(f).exists(), "{f} missing");
    }
    let log = std::fs::read_to_string(d.join("run/train_log.csv")).unwrap();
    assert!(log.starts_with("step,loss,lr,grad_norm,steps_per_s\n"));
    assert_eq!(log.lines().count(), 31);

    let n = "9000"; // three blocks of 4096, so shards cut between blocks
    let out = scoreflow(&["sample", "run", "-n", n, "--out", "all.csv", "--json"], d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["nfe"], 100);
    let mut joined = String::new();
    for k in 1..=2 {
        let name = format!("part{k}.csv");
        let o = scoreflow(
            &[
                "sample",
                "run",
                "-n",
                n,
                "--shard",
                &format!("{k}/2"),
                "--out",
                &name,
                "-q",
            ],
            d,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(d.join(&name)).unwrap();
        let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
        joined.push_str(&body);
    }
    let all = std::fs::read_to_string(d.join("all.csv")).unwrap();
    let all_body: String = all.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(all.lines().count(), 9001);
    assert!(joined == all_body, "shards differ from the single run");

    let ev = scoreflow(
        &[
            "eval",
            "run",
            "--samples",
            "all.csv",
            "-n",
            "2000",
            "--json",
        ],
        d,
    );
    assert!(
        ev.status.success(),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    for key in ["sw2", "mmd2", "energy", "mean_error", "cov_error"] {
        assert!(
            m["samples"][key].is_number() && m["floor"][key].is_number(),
            "{key}"
        );
    }
    assert!(d.join("run/metrics.json").exists());

    let pl = scoreflow(
        &[
            "plot",
            "run",
            "--samples",
            "all.csv",
            "-n",
            "500",
            "--grid",
            "8",
            "-q",
        ],
        d,
    );
    assert!(
        pl.status.success(),
        "{}",
        String::from_utf8_lossy(&pl.stderr)
    );
    for f in ["samples.png", "field.png", "trajectories.png", "loss.png"] {
        assert!(
            std::fs::metadata(d.join("run").join(f)).unwrap().len() > 1000,
            "{f}"
        );
    }
}

/// 20 steps + `--resume` to 40 reproduce the losses of 40 uninterrupted steps exactly (with
/// a constant learning rate: schedules are functions of the total step count, so extending a
/// one-cycle run changes its remaining rates by design).
#[test]
fn resume_continues_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train_tiny(d, "full", &["--steps", "40", "--schedule", "constant"]);
    train_tiny(d, "part", &["--steps", "20", "--schedule", "constant"]);
    let o = scoreflow(&["train", "--resume", "part", "--steps", "40", "-q"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let losses = |run: &str| -> Vec<String> {
        std::fs::read_to_string(d.join(run).join("train_log.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(losses("part"), losses("full"));
    let cfg = std::fs::read_to_string(d.join("part/config.toml")).unwrap();
    assert!(cfg.contains("steps = 40"), "{cfg}");
    // Changing the model on resume is refused.
    assert_one_line_error(
        &scoreflow(&["train", "--resume", "part", "--width", "32"], d),
        &["--resume", "--steps"],
    );
}

/// A run killed with SIGKILL mid-training resumes from its last checkpoint.
#[cfg(unix)]
#[test]
fn killed_run_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = tiny_args("k", &["--steps", "1000000"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_scoreflow"))
        .args(&args)
        .current_dir(d)
        .env("RAYON_NUM_THREADS", "2")
        .spawn()
        .unwrap();
    let meta = d.join("k/meta.json");
    let start = std::time::Instant::now();
    while !meta.exists() {
        assert!(start.elapsed().as_secs() < 60, "no checkpoint after 60 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // meta.json is written last in a checkpoint, so the training state may be one checkpoint
    // (10 steps) ahead of it; resume to 25 steps past meta.json's step.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("k/meta.json")).unwrap()).unwrap();
    let step = meta["step"].as_u64().unwrap() as usize;
    assert!(
        step >= 10 && step.is_multiple_of(10),
        "checkpoint at step {step}"
    );
    let target = step + 25;
    let o = scoreflow(
        &[
            "train",
            "--resume",
            "k",
            "--steps",
            &target.to_string(),
            "--json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["step"].as_u64().unwrap() as usize, target);
    // The log has every step exactly once, 1..=target: rows written before a checkpoint are
    // kept, rows after the checkpoint resumed from are dropped and retrained.
    let log = std::fs::read_to_string(d.join("k/train_log.csv")).unwrap();
    let steps: Vec<usize> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=target).collect::<Vec<_>>());
}

/// Training on a CSV file: 10% is held out (heldout.npy), the data are standardised (the
/// normaliser in meta.json is the training split's mean and std), and eval/sample work from the
/// run directory alone.
#[test]
fn file_data_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 600 points on two well-separated lines, far from the origin and at a large scale.
    let mut csv = String::from("a,b\n");
    for i in 0..600 {
        let s = i as f64 / 600.0;
        let (x, y) = if i % 2 == 0 {
            (100.0 + 10.0 * s, 50.0)
        } else {
            (100.0 + 10.0 * s, 70.0)
        };
        csv.push_str(&format!("{x},{y}\n"));
    }
    std::fs::write(d.join("points.csv"), csv).unwrap();
    train_tiny(d, "f", &["--steps", "20", "--data", "points.csv"]);
    assert!(d.join("f/heldout.npy").exists());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("f/meta.json")).unwrap()).unwrap();
    let (mean, std) = (
        &meta["normalization"]["mean"],
        &meta["normalization"]["std"],
    );
    // Means ≈ (105, 60) and stds ≈ (2.9, 10) up to the 10% split: far from the identity map.
    assert!(
        (mean[0].as_f64().unwrap() - 105.0).abs() < 1.0
            && (mean[1].as_f64().unwrap() - 60.0).abs() < 2.0,
        "{mean}"
    );
    assert!((std[1].as_f64().unwrap() - 10.0).abs() < 1.0, "{std}");
    let ev = scoreflow(&["eval", "f", "-n", "500", "--json"], d);
    assert!(
        ev.status.success(),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    assert_eq!(m["samples"]["n_reference"], 30); // half of the 60 held-out points
    let s = scoreflow(&["sample", "f", "-n", "100", "--out", "s.npy", "-q"], d);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    // Samples come back in data units (around (105, 60), not around the origin).
    let o = scoreflow(&["eval", "f", "--samples", "s.npy", "--json"], d);
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        m["samples"]["mean_error"].as_f64().unwrap() < 20.0,
        "{}",
        m["samples"]["mean_error"]
    );
}

/// `lesson --list` names every lesson with its claim (text and JSON); a missing, unknown or
/// misapplied lesson argument is a one-line error.
#[test]
fn lesson_list_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "low-density",
        "dimension",
        "sharp-modes",
        "stationary-sampler",
        "sde-zoo",
        "nonlinear-drift",
        "stiffness",
        "implicit-bias",
    ];
    let out = scoreflow(&["lesson", "--list"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), names.len(), "{text}");
    for n in names {
        assert!(
            text.lines().any(|l| l.starts_with(n)),
            "{n} missing: {text}"
        );
    }
    let out = scoreflow(&["--json", "lesson", "--list"], dir.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), names.len());
    assert!(v[0]["claim"].as_str().unwrap().len() > 20);
    assert_one_line_error(
        &scoreflow(&["lesson"], dir.path()),
        &["name a lesson", "--list"],
    );
    assert_one_line_error(
        &scoreflow(&["lesson", "classic"], dir.path()),
        &["unknown lesson 'classic'", "low-density"],
    );
    assert_one_line_error(
        &scoreflow(
            &["lesson", "stationary-sampler", "--steps", "5"],
            dir.path(),
        ),
        &["trains no network"],
    );
    assert_one_line_error(
        &scoreflow(&["lesson", "implicit-bias", "-n", "5"], dir.path()),
        &["--num does not apply"],
    );
}

/// `lesson low-density` at toy settings: the report has both pipelines with their weights and
/// score errors at every compared level (one for noise-free SM, three for DSM), the claim and a
/// verdict, and the four pictures exist. The mathematics is tested in the library.
#[test]
fn lesson_writes_report_and_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let out = scoreflow(
        &[
            "--json",
            "lesson",
            "low-density",
            "--quick",
            "--steps",
            "20",
            "-n",
            "200",
            "--out",
            "l",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lesson"], "low-density");
    assert!(v["claim"].as_str().unwrap().contains("annealed Langevin"));
    assert!(v["verdict"]["holds"].is_boolean());
    let r = &v["report"];
    assert_eq!(r["true_weights"][0].as_f64(), Some(0.2));
    for (p, levels) in [("sm_langevin", 1), ("dsm_annealed", 3)] {
        let w = r[p]["mode_weights"].as_array().unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(
            r[p]["score_errors"].as_array().unwrap().len(),
            levels,
            "{p}"
        );
    }
    for f in [
        "lesson.json",
        "fields.png",
        "fields_noisy.png",
        "error.png",
        "samples.png",
    ] {
        assert!(dir.path().join("l").join(f).exists(), "{f} missing");
    }
    // A non-empty directory that holds no lesson is refused, not overwritten.
    std::fs::write(dir.path().join("other.txt"), "keep").unwrap();
    let bad = scoreflow(
        &["lesson", "low-density", "--steps", "1", "--out", "."],
        dir.path(),
    );
    assert_one_line_error(&bad, &["holds no earlier lesson"]);
}

/// `scoreflow import` turns TorchCFM's trained SELU MLP (the library's fixture) into a run whose
/// log-likelihoods match torchdiffeq's (dopri5 at 1e-8, float64) to 1e-3 nats, and refuses a
/// wrong activation name, a missing file and an occupied run directory in one line each.
#[test]
fn imported_torchcfm_model_matches_torchdiffeq() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scoreflow/tests/data/torchcfm");
    let weights = fixtures.join("model.safetensors");
    let w = weights.to_str().unwrap();
    let out = scoreflow(
        &[
            "import",
            w,
            "--data",
            "8gaussians",
            "--activation",
            "selu",
            "--kind",
            "velocity",
            "--out",
            "run",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The fixture's 32 points and torchdiffeq's log p.
    let text = std::fs::read_to_string(fixtures.join("loglik.csv")).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let pts: String = rows
        .iter()
        .map(|r| format!("{},{}\n", r[0], r[1]))
        .collect();
    std::fs::write(dir.path().join("pts.csv"), pts).unwrap();
    let out = scoreflow(
        &[
            "likelihood",
            "run",
            "--data",
            "pts.csv",
            "--solver",
            "dopri5",
            "--rtol",
            "1e-7",
            "--atol",
            "1e-7",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = std::fs::read_to_string(dir.path().join("run/logp.csv")).unwrap();
    let ours: Vec<f64> = ours
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(ours.len(), rows.len());
    for (a, r) in ours.iter().zip(&rows) {
        assert!((a - r[2]).abs() < 1e-3, "log p {a} vs torchdiffeq {}", r[2]);
    }
    // Sampling the imported run works with the run's default sampler.
    let out = scoreflow(&["sample", "run", "-n", "100"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = scoreflow(
        &["import", w, "--activation", "swish", "--out", "x"],
        dir.path(),
    );
    assert_one_line_error(&bad, &["swish"]);
    let bad = scoreflow(&["import", "missing.safetensors", "--out", "x"], dir.path());
    assert_one_line_error(&bad, &["missing.safetensors"]);
    let bad = scoreflow(&["import", w, "--out", "run"], dir.path());
    assert_one_line_error(&bad, &["already holds a run"]);
    assert!(!dir.path().join("x").exists());
}

/// Every other lesson at toy settings (`--quick`, few steps and samples): it succeeds, writes
/// lesson.json with its claim, a verdict, non-empty tables and pictures that exist. Whether
/// the claim holds is the library tests' business (these settings are too small to judge).
#[test]
fn every_lesson_runs_at_toy_settings() {
    let dir = tempfile::tempdir().unwrap();
    let toy: [(&str, &[&str]); 7] = [
        ("dimension", &["--steps", "30", "-n", "100"]),
        ("sharp-modes", &["--steps", "200", "-n", "200"]),
        ("stationary-sampler", &["-n", "200"]),
        ("sde-zoo", &["--steps", "30", "-n", "200"]),
        ("nonlinear-drift", &["--steps", "30", "-n", "200"]),
        ("stiffness", &["--steps", "400", "-n", "20"]),
        ("implicit-bias", &[]),
    ];
    for (name, extra) in toy {
        let mut args = vec!["--json", "lesson", name, "--quick", "--out", name];
        args.extend_from_slice(extra);
        let out = scoreflow(&args, dir.path());
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["lesson"], name);
        assert!(
            v["verdict"]["evidence"].as_array().unwrap().len() >= 2,
            "{name}"
        );
        let tables = v["tables"].as_array().unwrap();
        assert!(
            !tables.is_empty()
                && tables
                    .iter()
                    .all(|t| !t["rows"].as_array().unwrap().is_empty()),
            "{name}"
        );
        let pictures = v["pictures"].as_array().unwrap();
        assert!(!pictures.is_empty(), "{name}");
        for p in pictures {
            let len = std::fs::metadata(dir.path().join(p.as_str().unwrap()))
                .unwrap()
                .len();
            assert!(len > 2000, "{name}: {p} has {len} bytes");
        }
        assert!(dir.path().join(name).join("lesson.json").exists());
    }
}

/// A reader that goes away (`scoreflow … | head`) ends the program quietly with success, not
/// with a panic: stdout is closed before the program writes its lines.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scoreflow"))
        .args(["lesson", "--list"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
