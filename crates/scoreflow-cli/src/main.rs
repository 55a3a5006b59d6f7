//! `scoreflow`: the command-line tool. It only wires the library together, formats results and
//! draws pictures; the science lives in the `scoreflow` crate.
//!
//! Error policy: every user error becomes one line `error: …` on stderr and a non-zero exit
//! status (2 for command-line usage, 1 otherwise); no panics, no backtraces.

mod cli;
mod commands;
mod config;
mod output;
mod plot;
#[cfg(test)]
mod readme;
mod report;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::output::Mode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let mode = Mode::from_flags(cli.quiet, cli.json);
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        if let Err(e) = rayon_threads(n) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Quickstart(a) => commands::quickstart::run(a, mode),
        Command::Train(a) => commands::train::run(*a, mode),
        Command::Sample(a) => commands::sample::run(*a, mode),
        Command::Eval(a) => commands::eval::run(a, mode),
        Command::Plot(a) => commands::plot::run(a, mode),
        Command::Bench(a) => commands::bench::run(a, mode, cli.threads),
        Command::Likelihood(a) => commands::likelihood::run(a, mode),
        Command::Diagnose(a) => commands::diagnose::run(a, mode),
        Command::Lesson(a) => commands::lesson::run(a, mode),
        Command::Import(a) => commands::import::run(*a, mode),
        Command::Report(a) => commands::report::run(a, mode),
        Command::Chain(a) => commands::chain::run(*a, mode),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line ("outer: inner: root"), newlines flattened.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // Skip a cause already quoted by its parent (libraries often embed the source).
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// Help and version go to stdout with exit 0; a usage error becomes one `error:` line (clap's
/// message without its usage block) plus where to find help, exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's message up to its usage block, flattened onto one line.
            let text = e.render().to_string();
            let mut msg = String::new();
            for line in text.lines().map(str::trim) {
                if line.starts_with("Usage:") || line.starts_with("For more information") {
                    break;
                }
                if line.is_empty() {
                    continue;
                }
                let line = line.trim_start_matches("error: ");
                if let Some(tip) = line.strip_prefix("tip: ") {
                    msg.push_str(&format!(" ({tip})"));
                } else {
                    if !msg.is_empty() {
                        msg.push(' ');
                    }
                    msg.push_str(line);
                }
            }
            use clap::CommandFactory;
            let sub = std::env::args()
                .skip(1)
                .find(|a| !a.starts_with('-'))
                .filter(|a| Cli::command().find_subcommand(a).is_some())
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            eprintln!("error: {msg}; see 'scoreflow{sub} --help'");
            ExitCode::from(2)
        }
    }
}

/// Sizes rayon's global pool, which burn Flex and gemm run on; also exported as
/// `RAYON_NUM_THREADS` for pools created later. Called once at start-up, before any pool exists.
fn rayon_threads(n: usize) -> anyhow::Result<()> {
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| anyhow::anyhow!("cannot start {n} worker threads: {e}"))
}
