//! `palisade sim`: a compliance server for tests, demos and outage drills, or (with
//! `--router-echo`) a stand-in for the gateway that answers router events itself.
//!
//! ```text
//! palisade sim --listen 127.0.0.1:7999 --secret S [--name op-cs1.palisade-example-com]
//! palisade sim --connect 127.0.0.1:5276 --name cs1.example.com --secret S [--connections N]
//!     [--rules FILE] [--archive FILE] [--latency 2ms|uniform:1ms..5ms|exp:2ms]
//!     [--error-rate 0.01] [--handle-rate 0.01]
//!     [--fault graceful@10s,hang@20s,crash@30s,recover@40s] [--duration 60s] [--seed N] [--quiet]
//! palisade sim --router-echo --listen 127.0.0.1:5275 --secret S [--gateway palisade.example.com]
//! ```
//!
//! - Open-port mode (`--listen`): the gateway dials in, one stream per shard, all under the same
//!   component NAME; any number are accepted (only `--name` when given). The first line on
//!   stdout is `listening on ADDR` (useful with port 0).
//! - Inbound mode (`--connect`): the simulator dials the gateway's compliance port as NAME and
//!   keeps `--connections` streams up, redialing when one drops.
//! - Answers (docs/protocol.md §4) come from `--rules` (see [`rules`] for the format), else PASS;
//!   `--error-rate` and `--handle-rate` then turn a share of the remaining PASSes of events that
//!   accept any answer into errors and HANDLEs. Notifications are archived, never answered.
//! - `--archive FILE`: one JSON line per request or notification ([`archive::Record`]),
//!   flushed within 100 ms and on exit (SIGINT, SIGTERM or `--duration`).
//! - `--fault`: scheduled outages, see [`faults`].
//!
//! This file owns the arguments, their validation and the wiring; the roles, the connection
//! loop and the listener live in the files beside it.

pub mod answer;
pub mod archive;
pub mod body;
pub mod comply;
pub mod conn;
pub mod echo;
pub mod faults;
pub mod latency;
pub mod pattern;
pub mod request;
pub mod rules;
pub mod server;
pub mod stats;

use crate::rng::Rng;
use crate::signal;
use crate::units::{human, parse_span};
use archive::Archive;
use clap::Args;
use crossbeam_channel::Sender;
use faults::{FaultState, Schedule};
use latency::Latency;
use rules::{Rules, RulesError};
use stats::Counters;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Open-port mode: listen on ADDR; the gateway dials in (any number of streams).
    #[arg(
        long,
        value_name = "ADDR",
        conflicts_with = "connect",
        required_unless_present = "connect"
    )]
    pub listen: Option<String>,
    /// Inbound mode: dial the gateway's compliance port at ADDR (needs --name).
    #[arg(long, value_name = "ADDR", requires = "name")]
    pub connect: Option<String>,
    /// The component NAME: with --connect the name to announce; with --listen the only name
    /// accepted (default: any).
    #[arg(long)]
    pub name: Option<String>,
    /// The shared secret of the XEP-0114 handshake.
    #[arg(long)]
    pub secret: String,
    /// With --listen: accept direct TLS, presenting the certificate chain in FILE (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key", requires = "listen")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Inbound mode: how many streams to keep up.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub connections: u32,
    /// Ethical walls and content rules (TOML); default: PASS everything.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Write one JSON line per event received to FILE.
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// Delay before each answer: 2ms, uniform:1ms..5ms or exp:2ms (mean).
    #[arg(long, default_value = "0", value_name = "SPEC")]
    pub latency: Latency,
    /// Share of answers (of events that accept any answer) that are errors.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub error_rate: f64,
    /// Share of answers (of events that accept any answer) that are HANDLE.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub handle_rate: f64,
    /// Scheduled outages, times from the start: graceful@10s,hang@20s,crash@30s,recover@40s.
    #[arg(long, default_value = "", value_name = "SCHEDULE")]
    pub fault: Schedule,
    /// Stand in for the gateway: accept router streams and answer each event with a verdict.
    #[arg(long, requires = "listen")]
    pub router_echo: bool,
    /// Router-echo: the gateway name verdicts come from.
    #[arg(long, default_value = "palisade.example.com", value_name = "NAME")]
    pub gateway: String,
    /// Seed of the random draws (latency, rates), for a reproducible run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Exit after this long (archive flushed), e.g. 60s.
    #[arg(long, value_parser = parse_span, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// No status lines on stderr (errors still print).
    #[arg(long)]
    pub quiet: bool,
}

/// Why the simulator could not start.
#[derive(Debug)]
pub enum SimError {
    Usage(String),
    Rules(RulesError),
    Archive {
        path: PathBuf,
        source: std::io::Error,
    },
    Bind {
        addr: String,
        source: std::io::Error,
    },
    Thread(std::io::Error),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Usage(m) => f.write_str(m),
            SimError::Rules(e) => write!(f, "rules: {e}"),
            SimError::Archive { path, source } => {
                write!(f, "cannot create the archive {}: {source}", path.display())
            }
            SimError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            SimError::Thread(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

/// What every stream of one simulator shares.
pub struct Shared {
    pub rules: Rules,
    pub latency: Latency,
    pub error_rate: f64,
    pub handle_rate: f64,
    pub faults: FaultState,
    pub start: Instant,
    pub seed: u64,
    /// The next archive `sim_id`.
    pub sim_ids: AtomicU64,
    pub counters: Counters,
    /// Router-echo: the name verdicts come from.
    pub echo_name: String,
    pub quiet: bool,
    archive: Mutex<Option<Sender<Vec<u8>>>>,
    stopping: AtomicBool,
}

impl Shared {
    /// True once the simulator is exiting (signal, `--duration`).
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed) || signal::stop_requested()
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// A sender to the archive writer, if there is an archive.
    pub fn archive_sender(&self) -> Option<Sender<Vec<u8>>> {
        self.archive.lock().ok().and_then(|a| a.clone())
    }

    /// When an answer to a request received at `now` should leave (`None`: at once).
    pub fn due(&self, now: Instant, rng: &mut Rng) -> Option<Instant> {
        if self.latency.is_none() {
            None
        } else {
            Some(now + self.latency.sample(rng))
        }
    }
}

fn check_rate(flag: &str, p: f64) -> Result<f64, SimError> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(SimError::Usage(format!(
            "{flag} must be between 0 and 1, not {p}"
        )))
    }
}

/// Runs `palisade sim` and returns the exit code.
pub fn run(args: SimArgs) -> i32 {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match crate::tls::tool_acceptor(cert, key) {
            Ok(config) => super::net::use_tls(super::net::ToolTls::Accept(config)),
            Err(e) => {
                eprintln!("palisade sim: {e}");
                return 2;
            }
        }
    }
    match run_sim(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("palisade sim: {e}");
            2
        }
    }
}

fn run_sim(args: SimArgs) -> Result<(), SimError> {
    let error_rate = check_rate("--error-rate", args.error_rate)?;
    let handle_rate = check_rate("--handle-rate", args.handle_rate)?;
    if error_rate + handle_rate > 1.0 {
        return Err(SimError::Usage(
            "--error-rate and --handle-rate add up to more than 1".into(),
        ));
    }
    let rules = match &args.rules {
        Some(path) => Rules::load(path).map_err(SimError::Rules)?,
        None => Rules::pass_all(),
    };
    if args.router_echo && (args.rules.is_some() || args.archive.is_some()) {
        return Err(SimError::Usage(
            "--router-echo answers router events with verdicts; --rules and --archive apply to the compliance role only".into(),
        ));
    }
    let archive = match &args.archive {
        Some(path) => Some(Archive::create(path).map_err(|source| SimError::Archive {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    signal::install();
    let seed = args.seed.unwrap_or_else(|| Rng::from_entropy().next_u64());
    let shared = Arc::new(Shared {
        rules,
        latency: args.latency,
        error_rate,
        handle_rate,
        faults: FaultState::default(),
        start: Instant::now(),
        seed,
        sim_ids: AtomicU64::new(1),
        counters: Counters::default(),
        echo_name: args.gateway.clone(),
        quiet: args.quiet,
        archive: Mutex::new(archive.as_ref().map(Archive::sender)),
        stopping: AtomicBool::new(false),
    });
    let role = if args.router_echo {
        "router-echo (stand-in gateway)".to_string()
    } else {
        format!("compliance server; rules: {}", shared.rules.summary())
    };
    server::log(
        &shared,
        &format!(
            "{role}; latency {}; error-rate {error_rate}; handle-rate {handle_rate}; faults [{}]; seed {seed}",
            args.latency, args.fault
        ),
    );
    let result = match (&args.listen, &args.connect) {
        (Some(addr), _) => {
            let echo = args.router_echo.then(|| {
                crate::policy::CompiledPolicy::compile(&crate::policy::default_config())
                    .unknown_node()
            });
            let accept = server::Accept {
                name: args.name.clone(),
                secret: args.secret.clone().into_bytes(),
                echo,
            };
            server::listen(shared.clone(), addr, accept, &args.fault, args.duration)
        }
        (None, Some(addr)) => {
            let name = args.name.as_deref().unwrap_or_default();
            server::connect(
                shared.clone(),
                addr,
                name,
                args.secret.as_bytes(),
                args.connections.max(1),
                &args.fault,
                args.duration,
            )
        }
        (None, None) => Err(SimError::Usage(
            "give --listen ADDR or --connect ADDR".into(),
        )),
    };
    shared.stop();
    if let Ok(mut a) = shared.archive.lock() {
        a.take();
    }
    if let Some(a) = archive {
        if let Err(e) = a.finish(Duration::from_secs(1)) {
            eprintln!("palisade sim: archive: {e}");
        }
    }
    let c = shared.counters.snapshot();
    server::log(
        &shared,
        &format!(
            "done after {}: {}",
            human(shared.start.elapsed()),
            stats::status_line(&c, &stats::Local::default(), shared.start.elapsed())
        ),
    );
    result
}
