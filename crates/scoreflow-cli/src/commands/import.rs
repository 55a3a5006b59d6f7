//! `scoreflow import`: a PyTorch `nn.Sequential` MLP as a run directory
//! ([`scoreflow::model::import`]).

use anyhow::{bail, Result};
use scoreflow::model::import::import_mlp;
use serde::Serialize;

use crate::cli::ImportArgs;
use crate::config::TrainOpts;
use crate::output::Mode;

/// What `scoreflow import` reports (`--json`).
#[derive(Debug, Serialize)]
struct ImportSummary {
    run: String,
    layers: Vec<(usize, usize)>,
    prefix: String,
    parameters: usize,
    width: usize,
    depth: usize,
    activation: String,
    method: String,
    kind: serde_json::Value,
}

/// Runs `scoreflow import`.
pub fn run(args: ImportArgs, mode: Mode) -> Result<()> {
    let given = args.opts.training_only();
    if !given.is_empty() {
        bail!(
            "--{} only concern{} training; an imported network is not trained (width and depth come from the weights)",
            given.join(", --"),
            if given.len() == 1 { "s" } else { "" }
        );
    }
    let (settings, out) = args.opts.resolve(TrainOpts::default())?;
    let Some(out) = out else {
        bail!("--out DIR is required: the run directory to write");
    };
    if out.join("meta.json").exists() {
        bail!(
            "{} already holds a run; choose another --out (nothing was written)",
            out.display()
        );
    }
    let imp = import_mlp(&args.weights, settings, args.time_column, &out)?;
    let s = &imp.model.settings;
    let summary = ImportSummary {
        run: out.display().to_string(),
        layers: imp.layout.dims.clone(),
        prefix: imp.layout.prefix.clone(),
        parameters: imp.parameters,
        width: s.width,
        depth: s.depth,
        activation: s.activation.name().into(),
        method: s.method.name().into(),
        kind: serde_json::to_value(&imp.model.kind)?,
    };
    mode.json(&summary)?;
    let dims: Vec<String> = summary
        .layers
        .iter()
        .map(|(i, o)| format!("{i}→{o}"))
        .collect();
    mode.say(format!(
        "imported {} ({} Linear layers {}, {} parameters, {}; keys '{}0.weight' …) as a {} model on {}",
        args.weights.display(),
        summary.layers.len(),
        dims.join(", "),
        summary.parameters,
        summary.activation,
        summary.prefix,
        summary.method,
        s.data
    ));
    mode.say(format!(
        "wrote {}; try `scoreflow sample {0}` and `scoreflow eval {0}`",
        out.display()
    ));
    Ok(())
}
