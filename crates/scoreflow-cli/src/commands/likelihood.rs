//! `scoreflow likelihood`.

use anyhow::{bail, Result};

use crate::cli::LikelihoodArgs;
use crate::output::Mode;

/// Runs `scoreflow likelihood`.
pub fn run(args: LikelihoodArgs, mode: Mode) -> Result<()> {
    let _ = (args, mode);
    bail!("'scoreflow likelihood' is not available yet")
}
