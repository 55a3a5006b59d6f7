//! `scoreflow sample`.

use anyhow::{bail, Result};

use crate::cli::SampleArgs;
use crate::output::Mode;

/// Runs `scoreflow sample`.
pub fn run(args: SampleArgs, mode: Mode) -> Result<()> {
    let _ = (args, mode);
    bail!("'scoreflow sample' is not available yet")
}
