//! `scoreflow plot`.

use anyhow::{bail, Result};

use crate::cli::PlotArgs;
use crate::output::Mode;

/// Runs `scoreflow plot`.
pub fn run(args: PlotArgs, mode: Mode) -> Result<()> {
    let _ = (args, mode);
    bail!("'scoreflow plot' is not available yet")
}
