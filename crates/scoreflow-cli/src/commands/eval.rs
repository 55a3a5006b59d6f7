//! `scoreflow eval`.

use anyhow::{bail, Result};

use crate::cli::EvalArgs;
use crate::output::Mode;

/// Runs `scoreflow eval`.
pub fn run(args: EvalArgs, mode: Mode) -> Result<()> {
    let _ = (args, mode);
    bail!("'scoreflow eval' is not available yet")
}
