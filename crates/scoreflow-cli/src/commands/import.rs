//! `scoreflow import`: a PyTorch `nn.Sequential` MLP as a run directory
//! ([`scoreflow::model::import`]).

use anyhow::{bail, Result};
use scoreflow::field::convert::NoiseInput;
use scoreflow::model::import::import_mlp;
use scoreflow::model::TrainSettings;
use serde::Serialize;

use crate::cli::ImportArgs;
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
    if args.out.join("meta.json").exists() {
        bail!(
            "{} already holds a run; choose another --out (nothing was written)",
            args.out.display()
        );
    }
    let m = args.model;
    let d = TrainSettings::default();
    let settings = TrainSettings {
        data: m.data,
        method: m.method,
        activation: m.activation,
        path: m.path.unwrap_or(d.path),
        sde: m.sde.unwrap_or(d.sde),
        target: m.target.unwrap_or(d.target),
        noise_input: m.noise_input.unwrap_or(NoiseInput::Time),
        beta_min: m.beta_min.unwrap_or(d.beta_min),
        beta_max: m.beta_max.unwrap_or(d.beta_max),
        sigma_min: m.sigma_min.unwrap_or(d.sigma_min),
        sigma_max: m.sigma_max.or(d.sigma_max),
        normalize: m.normalize.unwrap_or(scoreflow::data::NormalizeMode::No),
        ..d
    };
    let imp = import_mlp(&args.weights, settings, args.time_column, &args.out)?;
    let s = &imp.model.settings;
    let summary = ImportSummary {
        run: args.out.display().to_string(),
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
        args.out.display()
    ));
    Ok(())
}
