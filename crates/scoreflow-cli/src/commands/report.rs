//! `scoreflow report`: a self-contained HTML page of a run or lesson directory, or of every
//! run and lesson in a directory plus an index page (see [`crate::report`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use serde::Serialize;

use crate::cli::{Cli, Command, ReportArgs};
use crate::output::{atomic_write, Mode};
use crate::report::contents::{children, Contents, Kind, INDEX_FILE, REPORT_FILE};
use crate::report::format;
use crate::report::page::{self, IndexEntry};
use scoreflow::model::{Model, ModelKind, LOG_FILE};

/// One page written.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Where.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What `scoreflow report` did (`--json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportSummary {
    /// The report of each run or lesson.
    pub reports: Vec<Page>,
    /// The index over them, when DIR held several.
    pub index: Option<Page>,
    /// Pictures drawn because they were missing.
    pub drawn: Vec<PathBuf>,
}

/// The standard pictures of a run that `report` draws when one is missing: those of
/// `scoreflow plot RUN --gif` (no GIF for Langevin-sampled runs, no loss without a log); for
/// an image run those of `scoreflow plot RUN`: the sample grid, the neighbour panel, the flow
/// animation and the loss.
fn missing_pictures(run: &Model, dir: &Path) -> Vec<PathBuf> {
    let gif = !matches!(run.kind, ModelKind::NoiseFree { .. });
    let mut wanted = if run.image.is_some() {
        vec!["samples.png", "neighbours.png"]
    } else {
        vec!["samples.png", "field.png"]
    };
    if dir.join(LOG_FILE).exists() {
        wanted.push("loss.png");
    }
    if gif && run.image.is_some() {
        wanted.push("flow.gif");
    } else if gif {
        wanted.extend(["trajectories.png", "flow.gif"]);
    }
    wanted
        .into_iter()
        .map(|f| dir.join(f))
        .filter(|p| !p.exists())
        .collect()
}

/// Draws the missing standard pictures of the run in `dir` by running `scoreflow plot DIR
/// [--gif]` itself (parsed by the same command line, so with that command's defaults: the
/// run's samples.csv or 5,000 fresh samples; 100 for an image run). Runs on points of another
/// dimension than 2 have no pictures. Returns the files drawn.
fn draw_missing(dir: &Path) -> Result<Vec<PathBuf>> {
    let run = Model::load(dir)?;
    if run.dim() != 2 && run.image.is_none() {
        return Ok(Vec::new());
    }
    let missing = missing_pictures(&run, dir);
    if missing.is_empty() {
        return Ok(missing);
    }
    let mut argv: Vec<&OsStr> = vec!["scoreflow".as_ref(), "plot".as_ref(), dir.as_os_str()];
    if !matches!(run.kind, ModelKind::NoiseFree { .. }) && run.image.is_none() {
        argv.push("--gif".as_ref());
    }
    let cli = Cli::try_parse_from(argv).map_err(|e| anyhow!("{e}"))?;
    let Command::Plot(args) = cli.command else {
        bail!("internal: `scoreflow plot` did not parse as the plot command");
    };
    let names: Vec<String> = missing
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    crate::commands::plot::run(args, Mode::Quiet).with_context(|| {
        format!(
            "{}: drawing the missing {} (pass --no-sample to render only what is there)",
            dir.display(),
            names.join(", ")
        )
    })?;
    Ok(missing.into_iter().filter(|p| p.exists()).collect())
}

/// Writes the page of one run or lesson; `back` links to the index above it.
fn one(
    dir: &Path,
    back: Option<&str>,
    no_sample: bool,
    summary: &mut ReportSummary,
) -> Result<IndexEntry> {
    if Kind::of(dir) == Some(Kind::Run) && !no_sample {
        summary.drawn.extend(draw_missing(dir)?);
    }
    let contents = Contents::read(dir)?;
    let html = page::report(&contents, back).into_string();
    let path = dir.join(REPORT_FILE);
    atomic_write(&path, html.as_bytes())?;
    summary.reports.push(Page {
        path,
        bytes: html.len() as u64,
    });
    Ok(IndexEntry::of(&contents))
}

/// Runs `scoreflow report`.
pub fn run(args: ReportArgs, mode: Mode) -> Result<()> {
    let dir = &args.dir;
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    let mut summary = ReportSummary::default();
    if Kind::of(dir).is_some() {
        one(dir, None, args.no_sample, &mut summary)?;
    } else {
        let kids = children(dir)?;
        if kids.is_empty() {
            bail!(
                "{}: no run (meta.json) or lesson (lesson.json) in it or in its sub-directories",
                dir.display()
            );
        }
        let back = format!("../{INDEX_FILE}");
        let mut entries = Vec::with_capacity(kids.len());
        for k in &kids {
            entries.push(one(k, Some(&back), args.no_sample, &mut summary)?);
        }
        let title = std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        let html = page::index(&title, &entries).into_string();
        let path = dir.join(INDEX_FILE);
        atomic_write(&path, html.as_bytes())?;
        summary.index = Some(Page {
            path,
            bytes: html.len() as u64,
        });
    }
    mode.json(&summary)?;
    for p in &summary.drawn {
        mode.say(format!("drew {}", p.display()));
    }
    for p in summary.reports.iter().chain(&summary.index) {
        mode.say(format!(
            "wrote {} ({})",
            p.path.display(),
            format::bytes(p.bytes)
        ));
    }
    Ok(())
}
