//! `scoreflow quickstart`.

use anyhow::{bail, Result};

use crate::cli::QuickstartArgs;
use crate::output::Mode;

/// Runs `scoreflow quickstart`.
pub fn run(args: QuickstartArgs, mode: Mode) -> Result<()> {
    let _ = (args, mode);
    bail!("'scoreflow quickstart' is not available yet")
}
