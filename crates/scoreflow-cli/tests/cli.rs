//! End-to-end tests of the `scoreflow` binary: help texts, one-line errors for bad input, and a
//! tiny train → sample → eval → plot round trip.

use std::path::Path;
use std::process::{Command, Output};

fn scoreflow(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scoreflow"))
        .args(args)
        .current_dir(cwd)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("the scoreflow binary runs")
}

/// Asserts a user error: non-zero exit, nothing on stdout, exactly one stderr line that starts
/// with `error:` and contains every `needle`; no panic text or backtrace.
#[track_caller]
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "exit code 101 means a panic: {err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

const SUBCOMMANDS: [&str; 8] = [
    "quickstart",
    "train",
    "sample",
    "eval",
    "plot",
    "bench",
    "likelihood",
    "diagnose",
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
