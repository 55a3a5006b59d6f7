//! Helpers shared by the end-to-end tests: run the binary, expect success, expect a one-line
//! error. (Each test file uses its own subset.)
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `scoreflow` binary with `args` in `cwd` on two worker threads.
pub fn scoreflow(args: &[&str], cwd: &Path) -> Output {
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
pub fn assert_one_line_error(out: &Output, needles: &[&str]) {
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

/// `out`, asserting that the command succeeded.
#[track_caller]
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
