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
    /// The bundled compliance-server simulator (or, with --router-echo, a stand-in gateway).
    Sim(crate::tools::sim::SimArgs),
    /// The bundled router-side load generator.
    Load(crate::tools::load::LoadArgs),
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
        Command::Run { .. } => {
            eprintln!("palisade: this command is not built yet");
            2
        }
        Command::Tuning { command } => crate::tuning::cli::run(command),
        Command::Sim(args) => crate::tools::sim::run(args),
        Command::Load(args) => crate::tools::load::run(args),
    }
}
