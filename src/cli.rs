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
    /// Print a summary of a running gateway (from its admin endpoint).
    Status {
        /// The admin endpoint; default: `[gateway] admin` of --config.
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the raw /status JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every compliance server: resolve, connect, handshake, a test event.
    Troubleshoot {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The bundled compliance-server simulator (or, with --router-echo, a stand-in gateway).
    Sim(crate::tools::sim::SimArgs),
    /// The bundled router-side load generator.
    Load(crate::tools::load::LoadArgs),
    /// Gateway, simulator (with an ethical wall) and load generator together on loopback.
    Demo(crate::tools::demo::DemoArgs),
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
        Command::CheckConfig { file } => {
            let (report, code) = crate::tls::check_config_report(&file);
            print!("{report}");
            code
        }
        Command::Events => {
            print!("{}", crate::policy::events_command());
            0
        }
        Command::Run { config } => run(config.as_deref()),
        Command::Status {
            admin,
            config,
            json,
        } => status(admin, config.as_deref(), json),
        Command::Troubleshoot { config } => troubleshoot(config.as_deref()),
        Command::Tuning { command } => crate::tuning::cli::run(command),
        Command::Sim(args) => crate::tools::sim::run(args),
        Command::Load(args) => crate::tools::load::run(args),
        Command::Demo(args) => match crate::tools::demo::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("palisade: {e}");
                1
            }
        },
    }
}

/// Loads `--config` (or the embedded default), printing warnings; `None` after printing every
/// problem of an invalid file.
fn load_config(path: Option<&std::path::Path>) -> Option<crate::policy::Config> {
    match path {
        None => Some(crate::policy::default_config()),
        Some(path) => match crate::policy::load_file(path) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{w}");
                }
                Some(loaded.config)
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                eprintln!("palisade: the configuration is invalid");
                None
            }
        },
    }
}

/// `palisade status`.
fn status(
    admin: Option<std::net::SocketAddr>,
    config: Option<&std::path::Path>,
    json: bool,
) -> i32 {
    let admin = match admin {
        Some(a) => a,
        None => match load_config(config).and_then(|c| c.gateway.admin) {
            Some(a) => a,
            None => {
                eprintln!("palisade: no admin endpoint: pass --admin ADDR or a --config with [gateway] admin");
                return 1;
            }
        },
    };
    match crate::ops::status::run(admin, json) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("palisade: {e}");
            1
        }
    }
}

/// `palisade troubleshoot`: exit 0 only when every server is green.
fn troubleshoot(path: Option<&std::path::Path>) -> i32 {
    let Some(config) = load_config(path) else {
        return 1;
    };
    let admin = config
        .gateway
        .admin
        .and_then(|a| crate::ops::http_get::get(a, "/status").ok())
        .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok());
    let outcomes = crate::ops::troubleshoot::run(&config, admin.as_ref());
    if outcomes.is_empty() {
        println!("no compliance servers configured");
    }
    for o in &outcomes {
        println!("{o}");
    }
    i32::from(outcomes.iter().any(|o| !o.green))
}

/// `palisade run`: loads the configuration (reporting every problem at once) and runs.
fn run(path: Option<&std::path::Path>) -> i32 {
    let Some(config) = load_config(path) else {
        eprintln!("palisade: not starting");
        return 1;
    };
    match crate::runtime::run(config, path.map(std::path::Path::to_path_buf)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("palisade: {e}");
            1
        }
    }
}
