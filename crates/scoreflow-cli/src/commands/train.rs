//! `scoreflow train`.

use anyhow::{bail, Result};

use crate::cli::TrainArgs;
use crate::output::Mode;

/// Runs `scoreflow train`.
pub fn run(args: TrainArgs, mode: Mode) -> Result<()> {
    let _ = (args, mode);
    bail!("'scoreflow train' is not available yet")
}
