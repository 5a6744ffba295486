//! The command line: parses arguments with clap and dispatches to the layer that owns each command.
//!
//! This module only translates between argv/exit codes and library calls; it holds no behaviour
//! of its own beyond printing what those calls return, finding the configuration file
//! ([`config_source`]), and setting up the log of `palisade run`.

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

/// The configuration file `palisade run` reads when neither `--config` nor `PALISADE_CONFIG`
/// names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/palisade/palisade.toml";
/// The environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "PALISADE_CONFIG";

const CONFIG_HELP: &str = "The configuration file [default: $PALISADE_CONFIG, else \
                           /etc/palisade/palisade.toml if it exists, else the embedded loopback \
                           configuration]";

#[derive(Parser, Debug)]
#[command(
    name = "palisade",
    version = crate::build_info::LONG_VERSION,
    about = "Sharded compliance gateway for XMPP",
    long_about = "Sharded compliance gateway for XMPP: routers send every event (XEP-0114 \
                  component streams), compliance servers answer, and the gateway returns each \
                  verdict. Documentation: docs/configuration.md and docs/protocol.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway until SIGTERM or SIGINT; SIGHUP reloads the configuration.
    Run {
        #[arg(long, value_name = "FILE", help = CONFIG_HELP)]
        config: Option<PathBuf>,
        /// The least severe records written: error, warn, info, debug or trace, or
        /// RUST_LOG-style directives such as "info,glommio=debug" [default: $RUST_LOG, else
        /// [log] level, else info].
        #[arg(long, value_name = "LEVEL")]
        log_level: Option<String>,
        /// How records are written on stderr [default: [log] format, else text].
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<LogFormatArg>,
    },
    /// Validate a configuration file: prints `ok`, warnings and errors as FILE:LINE:COL: message.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
    /// List the 12 JSM and 28 TC events of the seed with their answer rules.
    Events,
    /// Print a summary of a running gateway (from its admin endpoint).
    Status {
        /// The admin endpoint; default: `[gateway] admin` of the configuration.
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        #[arg(long, value_name = "FILE", help = CONFIG_HELP)]
        config: Option<PathBuf>,
        /// Print the raw /status JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running gateway to reload its configuration file, and print the outcome.
    Reload {
        /// The admin endpoint to ask (POST /reload); default: `[gateway] admin` of the
        /// configuration.
        #[arg(long, value_name = "ADDR", conflicts_with = "pid")]
        admin: Option<std::net::SocketAddr>,
        #[arg(long, value_name = "FILE", help = CONFIG_HELP)]
        config: Option<PathBuf>,
        /// Send SIGHUP to this process instead (the outcome is then only in its log and in
        /// `palisade status`).
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
    },
    /// Check every compliance server: resolve, connect, handshake, a test event.
    Troubleshoot {
        #[arg(long, value_name = "FILE", help = CONFIG_HELP)]
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
    /// Print a shell completion script: `palisade completions bash > /etc/bash_completion.d/palisade`.
    Completions {
        /// The shell to complete for.
        shell: CompletionShell,
    },
    /// Print the manual page (roff): `palisade man | man -l -`.
    Man {
        /// Write palisade.1 and one page per command (palisade-run.1, ...) into DIR instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `--log-format`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// One line per record: STAMP LEVEL [shard N] message.
    Text,
    /// One JSON object per line: timestamp, level, shard, target, msg, fields.
    Json,
}

impl From<LogFormatArg> for crate::policy::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => crate::policy::LogFormat::Text,
            LogFormatArg::Json => crate::policy::LogFormat::Json,
        }
    }
}

/// The shells `palisade completions` writes for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Where a command's configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config`, `PALISADE_CONFIG`, or the default path that exists.
    File(PathBuf),
    /// None of them: the embedded loopback configuration.
    Embedded,
}

/// `--config` if given, else `PALISADE_CONFIG` if set and not empty, else
/// [`DEFAULT_CONFIG_PATH`] if `exists` says it does, else the embedded configuration.
pub fn config_source(
    flag: Option<&Path>,
    env: Option<&std::ffi::OsStr>,
    exists: impl Fn(&Path) -> bool,
) -> ConfigSource {
    if let Some(path) = flag {
        return ConfigSource::File(path.to_path_buf());
    }
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return ConfigSource::File(PathBuf::from(path));
    }
    let default = Path::new(DEFAULT_CONFIG_PATH);
    if exists(default) {
        return ConfigSource::File(default.to_path_buf());
    }
    ConfigSource::Embedded
}

/// [`config_source`] from this process's environment and file system.
fn find_config(flag: Option<&Path>) -> ConfigSource {
    config_source(flag, std::env::var_os(CONFIG_ENV).as_deref(), Path::is_file)
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => {
            let (report, code) = crate::config::check_config_report(&file);
            print!("{report}");
            code
        }
        Command::Events => {
            print!("{}", crate::policy::events_command());
            0
        }
        Command::Run {
            config,
            log_level,
            log_format,
        } => run(
            find_config(config.as_deref()),
            log_level.as_deref(),
            log_format.map(Into::into),
        ),
        Command::Status {
            admin,
            config,
            json,
        } => status(admin, &find_config(config.as_deref()), json),
        Command::Reload { admin, config, pid } => {
            reload(admin, &find_config(config.as_deref()), pid)
        }
        Command::Troubleshoot { config } => troubleshoot(&find_config(config.as_deref())),
        Command::Completions { shell } => {
            print!("{}", completions(shell));
            0
        }
        Command::Man { dir: Some(dir) } => match man_pages(&dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!(
                    "palisade: cannot write the manual pages to {}: {e}",
                    dir.display()
                );
                1
            }
        },
        Command::Man { dir: None } => match man_page() {
            Ok(page) => {
                use std::io::Write;
                // A closed pipe (`palisade man | head`) is not an error worth a panic.
                let _ = std::io::stdout().write_all(&page);
                0
            }
            Err(e) => {
                eprintln!("palisade: cannot render the manual page: {e}");
                1
            }
        },
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

/// The completion script for `shell`.
pub fn completions(shell: CompletionShell) -> String {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "palisade", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The manual page, palisade(1), in roff: the commands, then each command's synopsis and
/// options, the files and the environment.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    out.extend_from_slice(b".SH \"COMMAND OPTIONS\"\n");
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        out.extend_from_slice(format!(".SS \"palisade {}\"\n", sub.get_name()).as_bytes());
        let page = clap_mangen::Man::new(sub.clone());
        for render in [
            clap_mangen::Man::render_synopsis_section,
            clap_mangen::Man::render_options_section,
        ] {
            let mut section = Vec::new();
            render(&page, &mut section)?;
            // Each section starts with its `.SH` line: the subsection above stands for it.
            let text = String::from_utf8_lossy(&section);
            let body = text.split_once("\n.SH ").map_or(&text[..], |(_, rest)| {
                rest.split_once('\n').map_or("", |(_, body)| body)
            });
            out.extend_from_slice(body.as_bytes());
        }
    }
    out.extend_from_slice(
        b".SH FILES\n.TP\n/etc/palisade/palisade.toml\nThe configuration file when neither \
          \\-\\-config nor PALISADE_CONFIG names one.\n.SH ENVIRONMENT\n.TP\nPALISADE_CONFIG\n\
          The configuration file when \\-\\-config is not given.\n.TP\nRUST_LOG\nThe log filter \
          of palisade run when \\-\\-log\\-level is not given (it overrides [log] level).\n",
    );
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// Writes palisade.1 (as [`man_page`]) and one page per command into `dir`.
pub fn man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    std::fs::write(dir.join("palisade.1"), man_page()?)
}

/// Loads the configuration (or the embedded default), printing warnings; `None` after printing
/// every problem of an invalid file.
fn load_config(source: &ConfigSource) -> Option<crate::policy::Config> {
    match source {
        ConfigSource::Embedded => Some(crate::policy::default_config()),
        ConfigSource::File(path) => match crate::config::load_file(path) {
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
fn status(admin: Option<std::net::SocketAddr>, config: &ConfigSource, json: bool) -> i32 {
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
fn troubleshoot(source: &ConfigSource) -> i32 {
    let Some(config) = load_config(source) else {
        return 1;
    };
    let admin = config
        .gateway
        .admin
        .and_then(|a| crate::tools::http_get::get(a, "/status").ok())
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

/// `palisade reload`: POST /reload on the admin endpoint (or SIGHUP to `--pid`); exit 0 only
/// when the gateway put the file in force.
fn reload(admin: Option<std::net::SocketAddr>, config: &ConfigSource, pid: Option<u32>) -> i32 {
    if let Some(pid) = pid {
        return match crate::ops::reload::signal(pid) {
            Ok(()) => {
                println!(
                    "sent SIGHUP to process {pid}; the outcome is in its log and in `palisade status`"
                );
                0
            }
            Err(e) => {
                eprintln!("palisade: {e}");
                1
            }
        };
    }
    let admin = match admin {
        Some(a) => a,
        None => match load_config(config).and_then(|c| c.gateway.admin) {
            Some(a) => a,
            None => {
                eprintln!(
                    "palisade: no admin endpoint: pass --admin ADDR, --pid PID, or a --config \
                     with [gateway] admin"
                );
                return 1;
            }
        },
    };
    match crate::ops::reload::request(admin) {
        Ok(outcome) => {
            println!("{}", outcome.message);
            i32::from(!outcome.ok)
        }
        Err(e) => {
            eprintln!("palisade: {e}");
            1
        }
    }
}

/// `palisade run`: loads the configuration (reporting every problem at once), sets up the log
/// and runs.
fn run(
    source: ConfigSource,
    log_level: Option<&str>,
    log_format: Option<crate::policy::LogFormat>,
) -> i32 {
    let Some(config) = load_config(&source) else {
        eprintln!("palisade: not starting");
        return 1;
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    let settings = crate::runtime::log::Settings::choose(
        log_level,
        rust_log.as_deref(),
        log_format,
        config.log,
    );
    if let Err(e) = crate::runtime::log::install(&settings) {
        eprintln!("palisade: {e}; not starting");
        return 1;
    }
    let file = match source {
        ConfigSource::File(path) => Some(path),
        ConfigSource::Embedded => {
            crate::runtime::log::record(
                crate::runtime::log::Level::Warn,
                None,
                &format!(
                    "no configuration file (no --config, {CONFIG_ENV} not set, \
                     {DEFAULT_CONFIG_PATH} not found): running the embedded loopback \
                     configuration; see `palisade run --help`"
                ),
            );
            None
        }
    };
    match crate::runtime::run(config, file) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("palisade: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every command, with the path of commands leading to it.
    fn all_args(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Arg)>) {
        for arg in cmd.get_arguments() {
            out.push((path.clone(), arg.clone()));
        }
        for sub in cmd.get_subcommands() {
            all_args(sub, format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_flag_and_argument_has_a_help_line() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut args = Vec::new();
        all_args(&cmd, "palisade".into(), &mut args);
        let missing: Vec<String> = args
            .iter()
            .filter(|(_, a)| !a.is_hide_set() && a.get_help().is_none())
            .filter(|(_, a)| !matches!(a.get_id().as_str(), "help" | "version"))
            .map(|(path, a)| format!("{path} {}", a.get_id()))
            .collect();
        assert!(missing.is_empty(), "no help line: {missing:?}");
        cmd.debug_assert();
    }

    #[test]
    fn every_command_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "palisade", &mut missing);
        assert!(missing.is_empty(), "no help line: {missing:?}");
    }

    #[test]
    fn the_config_file_is_the_flag_then_the_environment_then_the_default_path() {
        let flag = Path::new("/tmp/a.toml");
        let env = std::ffi::OsStr::new("/tmp/b.toml");
        let yes = |_: &Path| true;
        let no = |_: &Path| false;
        assert_eq!(
            config_source(Some(flag), Some(env), yes),
            ConfigSource::File(flag.into())
        );
        assert_eq!(
            config_source(None, Some(env), yes),
            ConfigSource::File(env.into())
        );
        assert_eq!(
            config_source(None, Some(std::ffi::OsStr::new("")), yes),
            ConfigSource::File(DEFAULT_CONFIG_PATH.into())
        );
        assert_eq!(config_source(None, None, no), ConfigSource::Embedded);
    }

    #[test]
    fn completions_name_the_commands_for_each_shell() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let script = completions(shell);
            for word in ["check-config", "troubleshoot", "completions", "log-format"] {
                assert!(script.contains(word), "{shell:?} lacks {word}");
            }
        }
    }

    #[test]
    fn the_man_page_has_every_command_and_the_files() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH palisade 1"),
            "{page}"
        );
        for word in [
            "palisade run",
            "palisade reload",
            "log\\-format",
            "/etc/palisade/palisade.toml",
        ] {
            assert!(page.contains(word), "the page lacks {word}");
        }
    }
}
