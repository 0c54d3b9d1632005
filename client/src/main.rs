//! `passerelle`: the command-line tool of a structure's staff (and, later, of hub operators and
//! state analysts). Exit codes: 0 success, 1 the node cannot be reached or failed, 2 a usage or
//! validation error (the message on stderr names the field and the rule).
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    // Completions need neither a node nor a runtime: clap writes them from the command definition.
    if let cli::args::Command::Completions { shell } = args.command {
        clap_complete::generate(shell, &mut cli::args::Cli::command(), "passerelle", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, passerelle_client::Error::AuditBroken(_)) {
                ExitCode::from(3)
            } else if e.is_usage() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
