//! `scoreflow report` end to end: a flow-matching run, a DSM run and a lesson at toy settings,
//! their pages and the index, loaded in headless Chromium (see `browser/mod.rs`): no console
//! error, no request beyond the page itself, every image decoded, no sideways scrolling at
//! phone width, and a screenshot of each page at desktop and phone width under
//! `target/tmp/report-browser/`. Chromium is required: without it the test fails and says
//! what to install.

mod browser;

mod common;

use common::{ok, scoreflow};
use std::path::Path;
use std::time::Instant;

use serde_json::Value;

/// Toy training: `steps` steps of a 16 × 2 MLP.
fn train(cwd: &Path, out: &str, steps: &str, extra: &[&str]) {
    let mut args = vec![
        "train", "--quiet", "--out", out, "--steps", steps, "--batch", "64", "--width", "16",
        "--depth", "2", "--seed", "3",
    ];
    args.extend_from_slice(extra);
    ok(scoreflow(&args, cwd));
}

/// The directory's pictures: the report draws the missing ones (`plot RUN --gif`).
const RUN_PICTURES: [&str; 5] = [
    "samples.png",
    "field.png",
    "trajectories.png",
    "loss.png",
    "flow.gif",
];

#[test]
fn reports_of_runs_and_lessons_open_cleanly_in_headless_chromium() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "runs/flow", "60", &["--data", "moons"]);
    ok(scoreflow(&["eval", "runs/flow", "-n", "500", "-q"], d));
    train(
        d,
        "runs/dsm",
        "60",
        &["--method", "dsm", "--sde", "vp", "--data", "8gaussians"],
    );
    ok(scoreflow(
        &[
            "lesson",
            "low-density",
            "--steps",
            "20",
            "-n",
            "200",
            "--out",
            "runs/lesson",
            "-q",
        ],
        d,
    ));
    let made = Instant::now();

    let out = ok(scoreflow(&["--json", "report", "runs"], d));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["reports"].as_array().unwrap().len(), 3, "{summary}");
    assert!(summary["index"]["path"].is_string(), "{summary}");
    // Both runs lacked every picture; the lesson draws its own.
    assert_eq!(summary["drawn"].as_array().unwrap().len(), 10, "{summary}");
    for run in ["flow", "dsm"] {
        for f in RUN_PICTURES {
            assert!(d.join("runs").join(run).join(f).exists(), "{run}/{f}");
        }
    }
    let rendered = Instant::now();

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let mut b = browser::Browser::launch();
    let pages = [
        ("flow", "runs/flow/report.html", 5),
        ("dsm", "runs/dsm/report.html", 5),
        ("lesson", "runs/lesson/report.html", 4),
        ("index", "runs/index.html", 0),
    ];
    for (name, page, images) in pages {
        let html = std::fs::read_to_string(d.join(page)).unwrap();
        let r = b.check(&d.join(page), &shots.join(name));
        assert!(r.errors.is_empty(), "{name}: {:?}", r.errors);
        assert!(r.requests.is_empty(), "{name} loaded {:?}", r.requests);
        assert_eq!(r.images.len(), images, "{name}: {:?}", r.images);
        for i in &r.images {
            assert!(i.decoded && i.size.0 > 0 && i.size.1 > 0, "{name}: {i:?}");
            assert!(i.src.starts_with("data:image/"), "{name}: {}", i.src);
        }
        assert!(
            r.phone_overflow <= 0,
            "{name} scrolls sideways by {} px on a phone",
            r.phone_overflow
        );
        let dom = &r.dom;
        assert_eq!(dom["scripts"], 0, "{name}");
        assert_eq!(dom["unscopedTh"], 0, "{name}: a <th> without scope");
        assert_eq!(dom["imgNoAlt"], 0, "{name}: an <img> without alt");
        let sections: Vec<&str> = dom["sections"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let text = dom["text"].as_str().unwrap_or_default();
        match name {
            "flow" => {
                assert_eq!(sections, ["metrics", "pictures", "training", "settings"]);
                assert_eq!(dom["charts"], 3, "loss, learning rate, gradient norm");
                assert!(
                    text.contains("sliced W₂") && text.contains("noise floor"),
                    "{text}"
                );
                assert!(text.to_lowercase().contains("flow-matching run"), "{text}");
            }
            "dsm" => {
                assert_eq!(sections, ["metrics", "pictures", "training", "settings"]);
                assert!(text.contains("No metrics.json yet"), "{text}");
                assert!(text.to_lowercase().contains("dsm, vp sde"), "{text}");
            }
            "lesson" => {
                assert!(
                    sections.contains(&"pictures") && sections.contains(&"numbers"),
                    "{sections:?}"
                );
                assert!(
                    text.contains("sm+langevin") && text.contains("dsm+annealed"),
                    "{text}"
                );
            }
            _ => {
                // The index links each page, and each link resolves to the file written.
                let mut links = r.links.clone();
                links.sort();
                assert_eq!(
                    links,
                    ["dsm/report.html", "flow/report.html", "lesson/report.html"]
                );
                for l in &links {
                    assert!(d.join("runs").join(l).is_file(), "{l}");
                }
            }
        }
        // Self-contained in the file itself too: no address to fetch anywhere in the page.
        for needle in ["http://", "https://", "src=\"file", "@import", "url("] {
            assert!(!html.contains(needle), "{name} contains {needle}");
        }
        for s in &r.screenshots {
            assert!(
                std::fs::metadata(s).unwrap().len() > 5_000,
                "{}",
                s.display()
            );
        }
        if !r.warnings.is_empty() {
            eprintln!("{name}: browser warnings: {:?}", r.warnings);
        }
    }
    drop(b);
    eprintln!(
        "report browser test: runs {:.1} s, report {:.1} s, browser {:.1} s; screenshots in {}",
        (made - started).as_secs_f64(),
        (rendered - made).as_secs_f64(),
        rendered.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// `--no-sample` renders what is there and draws nothing; errors are one line.
#[test]
fn no_sample_renders_only_what_is_there_and_errors_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "run", "5", &["--data", "moons"]);
    let out = ok(scoreflow(&["--json", "report", "run", "--no-sample"], d));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["drawn"].as_array().unwrap().len(), 0);
    let html = std::fs::read_to_string(d.join("run/report.html")).unwrap();
    assert!(
        !html.contains("<img"),
        "no pictures were drawn, so none is shown"
    );
    assert!(
        html.contains("scoreflow plot"),
        "the page says how to draw them"
    );
    for f in RUN_PICTURES {
        assert!(
            !d.join("run").join(f).exists(),
            "{f} drawn despite --no-sample"
        );
    }
    std::fs::create_dir(d.join("empty")).unwrap();
    let help = ok(scoreflow(&["report", "--help"], d));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Usage: scoreflow report") && help.contains("--no-sample"));
    for (args, needle) in [
        (vec!["report", "missing"], "missing: no such directory"),
        (vec!["report", "empty"], "no run (meta.json) or lesson"),
    ] {
        let e = scoreflow(&args, d);
        assert!(!e.status.success());
        let err = String::from_utf8_lossy(&e.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    }
}
