//! The command line: parses arguments with clap and dispatches to the layer that owns each command.
//!
//! This module only translates between argv/exit codes and library calls; it holds no behaviour
//! of its own beyond printing what those calls return.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "palisade",
    version,
    about = "Sharded compliance gateway for XMPP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the embedded loopback configuration without --config).
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file: prints `ok`, warnings and errors as FILE:LINE:COL: message.
    CheckConfig { file: PathBuf },
    /// List the 12 JSM and 28 TC events of the seed with their answer rules.
    Events,
    /// Tuning calculators (high-availability re-login limits).
    Tuning {
        #[command(subcommand)]
        command: crate::tuning::cli::TuningCommand,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => crate::policy::check_config_command(&file),
        Command::Events => {
            print!("{}", crate::policy::events_command());
            0
        }
        Command::Run { config } => run(config.as_deref()),
        Command::Tuning { command } => crate::tuning::cli::run(command),
    }
}

/// `palisade run`: loads the configuration (reporting every problem at once) and runs.
fn run(path: Option<&std::path::Path>) -> i32 {
    let config = match path {
        None => crate::policy::default_config(),
        Some(path) => match crate::policy::load_file(path) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{w}");
                }
                loaded.config
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                eprintln!("palisade: not starting: the configuration is invalid");
                return 1;
            }
        },
    };
    match crate::runtime::run(config) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("palisade: {e}");
            1
        }
    }
}
