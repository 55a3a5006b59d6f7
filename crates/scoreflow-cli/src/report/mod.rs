//! HTML reports of runs and lessons (`scoreflow report`): one self-contained page per
//! directory — pictures inlined as `data:` URIs, the style sheet inline, no script, no font or
//! other file to fetch (a Content-Security-Policy in the page forbids any load) — and an
//! index page over a directory of them.
//!
//! **A run** (a directory with `meta.json`) shows: the metrics of `metrics.json` against the
//! noise floor, every PNG and GIF (the standard pictures of `scoreflow plot` first, with what
//! each shows), charts of `train_log.csv` drawn as inline SVG, diagnostics (`curl.png`,
//! `stiffness.png`, any `diagnostics*.json`), the settings (`config.toml`, `meta.json`) and
//! any other JSON file.
//!
//! **A lesson** (a directory with `lesson.json`) shows its claim, its tables, its pictures,
//! its other numbers and its settings. `lesson.json` may hold, all optional:
//!
//! ```json
//! {
//!   "lesson": "sharp-modes",                 // name (else the directory's)
//!   "title": "Sharp modes and Lipschitz bias", // heading (else the name)
//!   "note": "004",                           // the note it measures
//!   "command": "scoreflow lesson sharp-modes", // what made it
//!   "claim": "One paragraph: what the lesson shows.",
//!   "verdict": {"holds": true, "evidence": ["w(light) = 0.21 vs 0.20 ± 0.01: yes"]},
//!   "tables": [{"title": "…", "columns": ["pipeline", "w(light)"],
//!               "rows": [["SM + Langevin", "0.05"]], "notes": ["…"]}],
//!   "pictures": ["fields.png", {"file": "error.png", "caption": "Where each score is wrong."}],
//!   "config": { … settings … },
//!   "…": "anything else is shown under Numbers"
//! }
//! ```
//!
//! (`holds` may also stand at the top level, and `table` give a single table.)
//! A table may also be a list of objects (one row each, a column per key) or a string (shown
//! as printed). Pictures are matched by file name (a path's last component); the directory's
//! other pictures follow by name.
//!
//! **A directory of runs and lessons** gets one page per sub-directory plus `index.html`
//! linking them: separate pages keep each one a file that can be sent alone and keep the
//! index light (every page carries megabytes of pictures).

pub mod chart;
pub mod contents;
pub mod format;
pub mod json;
pub mod page;
