//! `scoreflow lesson NAME`: a principle of the notes as a measured experiment
//! (`scoreflow::lessons`). This file dispatches, prints the tables and the verdict and writes
//! `lesson.json`; each lesson's module maps the flags onto its configuration, turns its report
//! into tables and draws its pictures.
//!
//! `lesson.json` holds: `lesson` (name), `note`, `claim`, `command`, `config` and `report` (the
//! library's values), `verdict` (`holds`, `evidence`), `tables` (each `title`, `columns`,
//! `rows` of strings, `notes`), `pictures` (paths) and `wall_s`.

mod dimension;
mod implicit_bias;
mod low_density;
mod nonlinear_drift;
mod sde_zoo;
mod sharp_modes;
mod stationary_sampler;
mod stiffness;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use scoreflow::lessons::{Lesson, Verdict};
use serde::Serialize;

use crate::cli::LessonArgs;
use crate::output::{default_run_dir, human_secs, write_json, Mode};

/// A table of strings, as printed and as stored in `lesson.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// Title line.
    pub title: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows (one cell per column).
    pub rows: Vec<Vec<String>>,
    /// Notes printed under the table.
    pub notes: Vec<String>,
}

impl Table {
    /// A titled table with these columns and no rows.
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Self {
        Self {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Appends a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "{}", self.title);
        self.rows.push(cells);
    }

    /// Appends a note.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// The table as text: the first column left-aligned, the others right-aligned.
    pub fn render(&self) -> String {
        let n = self.columns.len();
        let width = |j: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(j))
                .chain(std::iter::once(&self.columns[j]))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..n).map(width).collect();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (j, c) in cells.iter().enumerate().take(n) {
                let pad = widths[j].saturating_sub(c.chars().count());
                if j == 0 {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str("  ");
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
            }
            s.trim_end().to_string()
        };
        let mut out = format!("{}\n{}\n", self.title, line(&self.columns));
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        for note in &self.notes {
            out.push_str(&format!("({note})\n"));
        }
        out
    }
}

/// The flags every lesson reads (each maps what applies to it; see `--help`).
#[derive(Debug, Clone)]
pub struct Overrides {
    /// Training steps of every network.
    pub steps: Option<usize>,
    /// Samples or chains drawn.
    pub n: Option<usize>,
    /// Seed.
    pub seed: Option<u64>,
    /// The lesson's small settings (its library test's).
    pub quick: bool,
    /// low-density's noise-free objective.
    pub objective: String,
}

impl Overrides {
    /// Sets a lesson's training steps, sample count and seed from the flags that were given.
    pub fn apply(&self, steps: &mut usize, samples: &mut usize, seed: &mut u64) {
        if let Some(s) = self.steps {
            *steps = s;
        }
        if let Some(n) = self.n {
            *samples = n;
        }
        if let Some(s) = self.seed {
            *seed = s;
        }
    }

    /// An error when a flag was given that `lesson` has no use for.
    pub fn reject(&self, lesson: Lesson, steps: bool, n: bool) -> Result<()> {
        if steps && self.steps.is_some() {
            bail!("lesson {lesson} trains no network; --steps does not apply");
        }
        if n && self.n.is_some() {
            bail!("lesson {lesson} draws no samples to count; --num does not apply");
        }
        Ok(())
    }
}

/// What a lesson's module hands back.
pub struct Outcome {
    /// The configuration used.
    pub config: serde_json::Value,
    /// The report.
    pub report: serde_json::Value,
    /// The verdict on the claim.
    pub verdict: Verdict,
    /// The tables.
    pub tables: Vec<Table>,
    /// Pictures written.
    pub pictures: Vec<PathBuf>,
}

impl Outcome {
    /// An outcome from serialisable config and report.
    pub fn new<C: Serialize, R: Serialize>(
        config: &C,
        report: &R,
        verdict: Verdict,
        tables: Vec<Table>,
        pictures: Vec<PathBuf>,
    ) -> Result<Self> {
        Ok(Self {
            config: serde_json::to_value(config)?,
            report: serde_json::to_value(report)?,
            verdict,
            tables,
            pictures,
        })
    }
}

/// `lesson.json` and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct LessonSummary {
    /// The lesson's name.
    pub lesson: Lesson,
    /// The note it measures.
    pub note: &'static str,
    /// Its claim.
    pub claim: &'static str,
    /// The command line that made this run.
    pub command: String,
    /// The settings.
    pub config: serde_json::Value,
    /// The numbers.
    pub report: serde_json::Value,
    /// Whether the claim held.
    pub verdict: Verdict,
    /// The printed tables.
    pub tables: Vec<Table>,
    /// Pictures written.
    pub pictures: Vec<PathBuf>,
    /// Wall time, seconds.
    pub wall_s: f64,
}

/// One entry of `--list --json`.
#[derive(Debug, Clone, Serialize)]
struct ListEntry {
    lesson: Lesson,
    note: &'static str,
    claim: &'static str,
}

/// Runs `scoreflow lesson`.
pub fn run(args: LessonArgs, mode: Mode) -> Result<()> {
    if args.list {
        return list(mode);
    }
    let Some(name) = args.name.as_deref() else {
        let names: Vec<&str> = Lesson::ALL.iter().map(|l| l.name()).collect();
        bail!(
            "name a lesson: one of {} ('scoreflow lesson --list' shows their claims)",
            names.join(", ")
        );
    };
    let lesson: Lesson = name.parse()?;
    if args.steps == Some(0) {
        bail!("--steps must be at least 1");
    }
    if args.n.is_some_and(|n| n < 2) {
        bail!("--num must be at least 2");
    }
    let started = Instant::now();
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir("lesson", lesson.name()));
    prepare(&dir)?;
    mode.say(format!(
        "lesson {lesson} (note {}): {}",
        lesson.note(),
        lesson.claim()
    ));
    let ov = Overrides {
        steps: args.steps,
        n: args.n,
        seed: args.seed,
        quick: args.quick,
        objective: args.objective.clone(),
    };
    let out = match lesson {
        Lesson::LowDensity => low_density::run(&ov, &dir, mode)?,
        Lesson::Dimension => dimension::run(&ov, &dir)?,
        Lesson::SharpModes => sharp_modes::run(&ov, &dir)?,
        Lesson::StationarySampler => stationary_sampler::run(&ov, &dir)?,
        Lesson::SdeZoo => sde_zoo::run(&ov, &dir)?,
        Lesson::NonlinearDrift => nonlinear_drift::run(&ov, &dir)?,
        Lesson::Stiffness => stiffness::run(&ov, &dir)?,
        Lesson::ImplicitBias => implicit_bias::run(&ov, &dir)?,
    };
    let summary = LessonSummary {
        lesson,
        note: lesson.note(),
        claim: lesson.claim(),
        command: command_line(),
        config: out.config,
        report: out.report,
        verdict: out.verdict,
        tables: out.tables,
        pictures: out.pictures,
        wall_s: started.elapsed().as_secs_f64(),
    };
    write_json(&dir.join("lesson.json"), &summary)?;
    mode.json(&summary)?;
    if mode == Mode::Normal {
        for t in &summary.tables {
            crate::outln!("\n{}", t.render().trim_end());
        }
        crate::outln!(
            "\nclaim {}: {}",
            if summary.verdict.holds {
                "holds"
            } else {
                "does NOT hold"
            },
            lesson.claim()
        );
        for e in &summary.verdict.evidence {
            crate::outln!("  {e}");
        }
        crate::outln!(
            "\nwrote {} in {}",
            dir.display(),
            human_secs(summary.wall_s)
        );
        for p in &summary.pictures {
            crate::outln!("  {}", p.display());
        }
    }
    Ok(())
}

fn list(mode: Mode) -> Result<()> {
    let entries: Vec<ListEntry> = Lesson::ALL
        .iter()
        .map(|&l| ListEntry {
            lesson: l,
            note: l.note(),
            claim: l.claim(),
        })
        .collect();
    mode.json(&entries)?;
    if mode == Mode::Normal {
        let w = Lesson::ALL
            .iter()
            .map(|l| l.name().len())
            .max()
            .unwrap_or(0);
        for e in &entries {
            crate::outln!("{:<w$}  {}", e.lesson.name(), e.claim);
        }
    }
    Ok(())
}

/// The command line as typed (program name shortened to `scoreflow`).
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::iter::once("scoreflow".to_string())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates `dir`, refusing a non-empty directory that holds no earlier lesson (so nothing else
/// is overwritten).
fn prepare(dir: &Path) -> Result<()> {
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !dir.join("lesson.json").exists() {
        bail!(
            "{}: directory exists, is not empty and holds no earlier lesson; choose another --out",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create directory: {e}", dir.display()))
}

/// A number in 3 significant digits (scientific outside [1e-3, 1e5)).
pub fn sig3(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        format!("{v}")
    } else if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    }
}
