//! Workload profiles (`palisade load --profile perf/profiles/NAME.toml`) and how they combine
//! with the command line into the settings of one run: a flag given on the command line wins
//! over the profile's key of the same name, and the built-in default applies when neither
//! says anything.
//!
//! # Format (TOML; every key optional, named like the flags)
//!
//! ```toml
//! description = "Steady one-to-one chat"
//! connect = "127.0.0.1:5275"     # the gateway's router port
//! name = "imp1.example.com"      # the router's component name ([[router]] name)
//! secret = "..."
//! gateway = "palisade.example.com"
//! connections = 2
//! users = 15000
//! domain = "example.com"         # or a list: users spread over the domains in turn
//! rooms = 200
//! rate = 20000                   # events/s in all (open loop), or "max" (closed loop)
//! in_flight = 1000               # closed loop: events outstanding per connection
//! duration = "60s"               # and/or
//! events = 1000000               # whichever ends first
//! drain = "5s"
//! seed = 42
//!
//! [mix]                          # EVENT[.PACKET] = weight (see `mix.rs`)
//! es_OUT = 40
//! es_IN = 30
//! ```
//!
//! Owns the file format, the defaults and the merge; must not run anything.

use super::mix::{Mix, MixError, DEFAULT_MIX};
use crate::units::{parse_span, Rate, UnitError};
use clap::Args;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONNECT: &str = "127.0.0.1:5275";
pub const DEFAULT_NAME: &str = "imp1.example.com";
pub const DEFAULT_GATEWAY: &str = "palisade.example.com";
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

#[derive(Args, Debug, Clone, Default)]
pub struct LoadArgs {
    /// A workload profile (TOML, perf/profiles/); flags override its keys.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// The gateway's router port [default: 127.0.0.1:5275].
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<String>,
    /// The router's component name, as the gateway's `[[router]]` name [default: imp1.example.com].
    #[arg(long)]
    pub name: Option<String>,
    /// The router's shared secret.
    #[arg(long)]
    pub secret: Option<String>,
    /// Dial with direct TLS, trusting the CA certificates in FILE (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// With --tls-ca: the name the gateway's certificate must carry.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub tls_name: String,
    /// The gateway's component name, the `to` of events [default: palisade.example.com].
    #[arg(long, value_name = "NAME")]
    pub gateway: Option<String>,
    /// Router connections (streams), each on its own thread [default: 1].
    #[arg(long, value_name = "N")]
    pub connections: Option<u32>,
    /// Users in the population [default: 1000].
    #[arg(long, value_name = "N")]
    pub users: Option<u32>,
    /// The users' domain, or several separated by commas [default: example.com].
    #[arg(long)]
    pub domain: Option<String>,
    /// Rooms on conference.DOMAIN [default: 50].
    #[arg(long, value_name = "N")]
    pub rooms: Option<u32>,
    /// Event mix: EVENT[.PACKET]=WEIGHT,... [default: es_OUT=40,es_IN=30,e_SESSION=5,es_END=5,onBeforeJoin=5,onBeforeSend=10,onLeave=5].
    #[arg(long, value_name = "SPEC")]
    pub mix: Option<String>,
    /// Events per second in all (open loop), or `max` (closed loop) [default: 1000].
    #[arg(long)]
    pub rate: Option<Rate>,
    /// Closed loop: events outstanding per connection [default: 1000].
    #[arg(long, value_name = "N")]
    pub in_flight: Option<u64>,
    /// How long to send [default: 10s unless --events is given].
    #[arg(long, value_parser = parse_span, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// How many events to send in all.
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,
    /// After sending, how long to wait for the last verdicts [default: 5s].
    #[arg(long, value_parser = parse_span, value_name = "DURATION")]
    pub drain: Option<Duration>,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw the latency-percentile chart as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write one JSON line per answer to FILE (`conn`, `seq`, `action`), to reconcile a run
    /// against a simulator's archive event by event.
    #[arg(long, value_name = "FILE")]
    pub verdict_log: Option<PathBuf>,
    /// Seed of the random choices, for a reproducible event stream.
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum RateSpec {
    Number(f64),
    Text(String),
}

/// A profile file. See the module documentation.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub description: Option<String>,
    connect: Option<String>,
    name: Option<String>,
    secret: Option<String>,
    gateway: Option<String>,
    connections: Option<u32>,
    users: Option<u32>,
    domain: Option<OneOrMany>,
    rooms: Option<u32>,
    mix: Option<BTreeMap<String, u32>>,
    rate: Option<RateSpec>,
    in_flight: Option<u64>,
    duration: Option<String>,
    events: Option<u64>,
    drain: Option<String>,
    seed: Option<u64>,
}

/// Why a run cannot be set up.
#[derive(Debug)]
pub enum SettingsError {
    ReadProfile {
        path: PathBuf,
        source: std::io::Error,
    },
    ProfileSyntax {
        path: PathBuf,
        message: String,
    },
    Profile {
        key: &'static str,
        error: UnitError,
    },
    Mix(MixError),
    NoSecret,
    Zero(&'static str),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::ReadProfile { path, source } => {
                write!(f, "cannot read the profile {}: {source}", path.display())
            }
            SettingsError::ProfileSyntax { path, message } => {
                write!(f, "{}: {message}", path.display())
            }
            SettingsError::Profile { key, error } => write!(f, "profile key {key}: {error}"),
            SettingsError::Mix(e) => write!(f, "{e}"),
            SettingsError::NoSecret => {
                f.write_str("no secret: give --secret (the router's [[router]] secret) or set it in the profile")
            }
            SettingsError::Zero(what) => write!(f, "{what} must be at least 1"),
        }
    }
}

impl std::error::Error for SettingsError {}

impl Profile {
    pub fn load(path: &Path) -> Result<Profile, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ReadProfile {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| SettingsError::ProfileSyntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// Everything one run needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: Option<String>,
    pub description: Option<String>,
    pub connect: String,
    pub name: String,
    pub secret: String,
    pub gateway: String,
    pub connections: u32,
    pub users: u32,
    pub domains: Vec<String>,
    pub rooms: u32,
    pub mix: Mix,
    pub rate: Rate,
    pub in_flight: u64,
    /// At least one of `duration` and `events` is set.
    pub duration: Option<Duration>,
    pub events: Option<u64>,
    pub drain: Duration,
    pub seed: Option<u64>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub verdict_log: Option<PathBuf>,
    pub quiet: bool,
}

fn span(key: &'static str, text: Option<&str>) -> Result<Option<Duration>, SettingsError> {
    text.map(|t| parse_span(t).map_err(|error| SettingsError::Profile { key, error }))
        .transpose()
}

fn split_domains(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Settings {
    /// Merges `args` over the profile it names (if any) over the defaults.
    pub fn resolve(args: &LoadArgs) -> Result<Settings, SettingsError> {
        let p = match &args.profile {
            Some(path) => Profile::load(path)?,
            None => Profile::default(),
        };
        let mix = match (&args.mix, &p.mix) {
            (Some(text), _) => text.parse().map_err(SettingsError::Mix)?,
            (None, Some(table)) => Mix::from_table(table).map_err(SettingsError::Mix)?,
            (None, None) => DEFAULT_MIX.parse().map_err(SettingsError::Mix)?,
        };
        let rate = match (&args.rate, &p.rate) {
            (Some(r), _) => *r,
            (None, Some(RateSpec::Number(n))) => n
                .to_string()
                .parse()
                .map_err(|error| SettingsError::Profile { key: "rate", error })?,
            (None, Some(RateSpec::Text(t))) => t
                .parse()
                .map_err(|error| SettingsError::Profile { key: "rate", error })?,
            (None, None) => Rate::PerSecond(1000.0),
        };
        let domains = match (&args.domain, &p.domain) {
            (Some(d), _) => split_domains(d),
            (None, Some(OneOrMany::One(d))) => split_domains(d),
            (None, Some(OneOrMany::Many(list))) => list.clone(),
            (None, None) => vec!["example.com".to_string()],
        };
        let events = args.events.or(p.events);
        let mut duration = match args.duration {
            Some(d) => Some(d),
            None => span("duration", p.duration.as_deref())?,
        };
        if duration.is_none() && events.is_none() {
            duration = Some(DEFAULT_DURATION);
        }
        let drain = match args.drain {
            Some(d) => d,
            None => span("drain", p.drain.as_deref())?.unwrap_or(Duration::from_secs(5)),
        };
        let secret = args
            .secret
            .clone()
            .or(p.secret)
            .ok_or(SettingsError::NoSecret)?;
        let settings = Settings {
            profile: args.profile.as_ref().map(|p| p.display().to_string()),
            description: p.description,
            connect: args
                .connect
                .clone()
                .or(p.connect)
                .unwrap_or_else(|| DEFAULT_CONNECT.into()),
            name: args
                .name
                .clone()
                .or(p.name)
                .unwrap_or_else(|| DEFAULT_NAME.into()),
            secret,
            gateway: args
                .gateway
                .clone()
                .or(p.gateway)
                .unwrap_or_else(|| DEFAULT_GATEWAY.into()),
            connections: args.connections.or(p.connections).unwrap_or(1),
            users: args.users.or(p.users).unwrap_or(1000),
            domains,
            rooms: args.rooms.or(p.rooms).unwrap_or(50),
            mix,
            rate,
            in_flight: args.in_flight.or(p.in_flight).unwrap_or(1000),
            duration,
            events,
            drain,
            seed: args.seed.or(p.seed),
            json: args.json.clone(),
            plot: args.plot.clone(),
            verdict_log: args.verdict_log.clone(),
            quiet: args.quiet,
        };
        if settings.connections == 0 {
            return Err(SettingsError::Zero("--connections"));
        }
        if settings.in_flight == 0 {
            return Err(SettingsError::Zero("--in-flight"));
        }
        if settings.events == Some(0) {
            return Err(SettingsError::Zero("--events"));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_profile(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("palisade-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_without_a_profile() {
        let args = LoadArgs {
            secret: Some("s".into()),
            ..LoadArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.connect, DEFAULT_CONNECT);
        assert_eq!(s.name, DEFAULT_NAME);
        assert_eq!(s.rate, Rate::PerSecond(1000.0));
        assert_eq!(s.duration, Some(DEFAULT_DURATION));
        assert_eq!(s.events, None);
        assert_eq!(s.domains, ["example.com"]);
        assert_eq!(s.mix.to_string(), DEFAULT_MIX);
        assert!(matches!(
            Settings::resolve(&LoadArgs::default()),
            Err(SettingsError::NoSecret)
        ));
    }

    #[test]
    fn flags_override_the_profile() {
        let path = write_profile(
            "p.toml",
            r#"
            description = "storm"
            secret = "from-profile"
            users = 15000
            domain = ["a.example", "b.example"]
            rate = 6
            events = 15000
            drain = "30s"
            [mix]
            e_SESSION = 1
            "#,
        );
        let args = LoadArgs {
            profile: Some(path.clone()),
            rate: Some(Rate::Max),
            users: Some(100),
            ..LoadArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.secret, "from-profile");
        assert_eq!(s.users, 100);
        assert_eq!(s.rate, Rate::Max);
        assert_eq!(s.events, Some(15000));
        assert_eq!(s.duration, None);
        assert_eq!(s.drain, Duration::from_secs(30));
        assert_eq!(s.domains, ["a.example", "b.example"]);
        assert_eq!(s.mix.to_string(), "e_SESSION=1");
        assert_eq!(s.description.as_deref(), Some("storm"));
        let s = Settings::resolve(&LoadArgs {
            profile: Some(path),
            ..LoadArgs::default()
        })
        .unwrap();
        assert_eq!(s.rate, Rate::PerSecond(6.0));
    }

    #[test]
    fn bad_profiles_say_where() {
        let path = write_profile("bad.toml", "rate = \"fast\"\nsecret = \"s\"\n");
        let e = Settings::resolve(&LoadArgs {
            profile: Some(path),
            ..LoadArgs::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("profile key rate"), "{e}");
        let path = write_profile("typo.toml", "secrte = \"s\"\n");
        let e = Settings::resolve(&LoadArgs {
            profile: Some(path.clone()),
            ..LoadArgs::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(e.to_string().contains("typo.toml"), "{e}");
        let e = Settings::resolve(&LoadArgs {
            secret: Some("s".into()),
            connections: Some(0),
            ..LoadArgs::default()
        })
        .unwrap_err();
        assert!(matches!(e, SettingsError::Zero("--connections")));
    }

    #[test]
    fn shipped_profiles_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../perf/profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let s = Settings::resolve(&LoadArgs {
                profile: Some(path.clone()),
                secret: Some("s".into()),
                ..LoadArgs::default()
            })
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(s.description.is_some(), "{}", path.display());
            n += 1;
        }
        assert!(n >= 4, "expected at least 4 profiles, found {n}");
    }
}
