//! One module per subcommand.

pub mod bench;
pub mod diagnose;
pub mod eval;
pub mod import;
pub mod lesson;
pub mod likelihood;
pub mod plot;
pub mod quickstart;
pub mod report;
pub mod sample;
pub mod train;
