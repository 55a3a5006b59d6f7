//! `scoreflow bench`.

use anyhow::{bail, Result};

use crate::cli::BenchArgs;
use crate::output::Mode;

/// Runs `scoreflow bench`.
pub fn run(args: BenchArgs, mode: Mode, threads: Option<usize>) -> Result<()> {
    let _ = (args, mode, threads);
    bail!("'scoreflow bench' is not available yet")
}
