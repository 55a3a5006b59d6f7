//! `scoreflow diagnose`.

use anyhow::{bail, Result};

use crate::cli::DiagnoseArgs;
use crate::output::Mode;

/// Runs `scoreflow diagnose`.
pub fn run(args: DiagnoseArgs, mode: Mode) -> Result<()> {
    let _ = (args, mode);
    bail!("'scoreflow diagnose' is not available yet")
}
