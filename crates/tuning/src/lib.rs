//! Tuning calculators: the high-availability re-login limits of the seed document's 12 profile
//! tables, as data plus a model that reproduces them.
//!
//! This module owns the profile data (`tuning/relogin-profiles.toml`, embedded at build time), the
//! model (lower = Critical Service Down Delay, upper = lower + users / login rate rounded half
//! up), the list of rows where the seed breaks its own pattern, and the text the CLI prints. It is
//! pure: it must not do I/O, read the clock, or run load; a measured login rate reaches it as a
//! plain [`LoginRate`] argument, the same way the seed's rates do.

pub mod cli;
mod print;
mod profiles;
mod relogin;

pub use print::{render_limits, render_table};
pub use profiles::{Catalog, Profile, Row, Table};
pub use relogin::{
    anomalies, caption_anomalies, relogin_limits, upper_limit, Anomaly, CaptionAnomaly, Limits,
};

use std::fmt;
use std::str::FromStr;

/// The high-availability deployment type of a presence redundancy group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Both nodes serve users; after a failover the surviving node takes the failed node's users,
    /// so the table is read with the user count of the busiest node.
    ActiveActive,
    /// One node serves everyone; the table is read with the group's total user count.
    ActiveStandby,
}

impl Mode {
    /// The spelling used in the data file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ActiveActive => "active-active",
            Mode::ActiveStandby => "active-standby",
        }
    }

    /// The seed's spelling, for output an operator compares with the document.
    pub fn seed_label(self) -> &'static str {
        match self {
            Mode::ActiveActive => "active/active",
            Mode::ActiveStandby => "active/standby",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = TuningError;

    /// Accepts `active-active`, `active/active`, `active_active`, `aa` (and the standby forms),
    /// case-insensitively, because operators copy the seed's `active/active` spelling.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        match key.as_str() {
            "activeactive" | "aa" => Ok(Mode::ActiveActive),
            "activestandby" | "as" => Ok(Mode::ActiveStandby),
            _ => Err(TuningError::UnknownMode(s.to_string())),
        }
    }
}

/// A login rate in logins per second, held in thousandths so that the model's rounding is exact
/// integer arithmetic (a float `12.5` tie must round up, not wherever `f64` error lands it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LoginRate {
    millis_per_sec: u64,
}

impl LoginRate {
    /// A rate from thousandths of a login per second; zero is refused (it would never finish).
    pub fn from_millis_per_sec(millis_per_sec: u64) -> Result<Self, TuningError> {
        if millis_per_sec == 0 {
            return Err(TuningError::InvalidRate("0".to_string()));
        }
        Ok(LoginRate { millis_per_sec })
    }

    /// A rate from logins per second, rounded to the nearest thousandth. This is the entry point
    /// for a measured rate (e.g. e_SESSION events/s from a login-storm run).
    pub fn from_per_sec(per_sec: f64) -> Result<Self, TuningError> {
        let millis = (per_sec * 1000.0).round();
        // NaN and infinities fall outside the range too; the upper bound keeps the model's
        // arithmetic far from overflow.
        if !(1.0..=1e12).contains(&millis) {
            return Err(TuningError::InvalidRate(per_sec.to_string()));
        }
        Self::from_millis_per_sec(millis as u64)
    }

    pub fn millis_per_sec(self) -> u64 {
        self.millis_per_sec
    }

    pub fn per_sec(self) -> f64 {
        self.millis_per_sec as f64 / 1000.0
    }
}

impl fmt::Display for LoginRate {
    /// `1.5`, `8`, `0.125`: no trailing zeros, so the README and the output read like the seed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.millis_per_sec / 1000;
        let frac = self.millis_per_sec % 1000;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl FromStr for LoginRate {
    type Err = TuningError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: f64 = s
            .trim()
            .parse()
            .map_err(|_| TuningError::InvalidRate(s.to_string()))?;
        LoginRate::from_per_sec(value).map_err(|_| TuningError::InvalidRate(s.to_string()))
    }
}

/// The `--users` argument: one count, or a comma-separated count per node (`2000,1000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCounts(Vec<u64>);

impl UserCounts {
    pub fn new(counts: Vec<u64>) -> Result<Self, TuningError> {
        if counts.is_empty() {
            return Err(TuningError::InvalidUsers(String::new()));
        }
        Ok(UserCounts(counts))
    }

    pub fn counts(&self) -> &[u64] {
        &self.0
    }

    /// The count the tables are read with: the busiest node for active/active (its users all log
    /// in to the survivor on top of the survivor's own, but the seed sizes by the larger node),
    /// the whole group for active/standby (every user logs in to the standby).
    pub fn effective(&self, mode: Mode) -> Result<u64, TuningError> {
        let users = match mode {
            Mode::ActiveActive => self.0.iter().copied().max().unwrap_or(0),
            Mode::ActiveStandby => self
                .0
                .iter()
                .try_fold(0u64, |sum, &n| sum.checked_add(n))
                .ok_or(TuningError::TooManyUsers)?,
        };
        if users == 0 {
            return Err(TuningError::NoUsers);
        }
        Ok(users)
    }
}

impl FromStr for UserCounts {
    type Err = TuningError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let counts = s
            .split(',')
            .map(|part| {
                let part = part.trim();
                part.parse::<u64>()
                    .map_err(|_| TuningError::InvalidUsers(part.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        UserCounts::new(counts)
    }
}

/// Everything that can go wrong in this module; every variant is about the caller's input except
/// [`TuningError::Data`], which means the embedded profile file is broken (a build-time mistake
/// the tests catch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TuningError {
    /// The embedded `relogin-profiles.toml` does not parse or fails validation.
    Data(String),
    UnknownProfile {
        given: String,
        known: Vec<String>,
    },
    UnknownMode(String),
    /// A `--users` entry that is not a non-negative integer.
    InvalidUsers(String),
    /// The effective user count is zero: nobody re-logs in, there is nothing to size.
    NoUsers,
    /// The per-node counts do not fit in 64 bits when summed.
    TooManyUsers,
    InvalidRate(String),
    /// The profile's table stops below the requested user count.
    BeyondProfile {
        profile: String,
        mode: Mode,
        users: u64,
        largest_step: u64,
        /// The smallest larger profile whose table for the same mode covers `users`, if any.
        suggestion: Option<String>,
    },
}

impl fmt::Display for TuningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TuningError::Data(msg) => write!(f, "embedded relogin-profiles.toml is invalid: {msg}"),
            TuningError::UnknownProfile { given, known } => write!(
                f,
                "unknown profile `{given}` (known: {}; a bare size such as `15000` also works)",
                known.join(", ")
            ),
            TuningError::UnknownMode(given) => write!(
                f,
                "unknown mode `{given}` (expected active-active or active-standby)"
            ),
            TuningError::InvalidUsers(given) => write!(
                f,
                "invalid user count `{given}` (expected N or a comma-separated list per node, e.g. 2000,1000)"
            ),
            TuningError::NoUsers => write!(f, "the user count is zero: there is nothing to size"),
            TuningError::TooManyUsers => write!(f, "the per-node user counts overflow when summed"),
            TuningError::InvalidRate(given) => write!(
                f,
                "invalid login rate `{given}` (expected logins per second, at least 0.001)"
            ),
            TuningError::BeyondProfile {
                profile,
                mode,
                users,
                largest_step,
                suggestion,
            } => {
                write!(
                    f,
                    "profile {profile} does not cover {users} users {}: its table stops at {largest_step}",
                    match mode {
                        Mode::ActiveActive => "on the busiest node (active/active)",
                        Mode::ActiveStandby => "in the group (active/standby)",
                    }
                )?;
                match suggestion {
                    Some(next) => write!(f, "; use the next larger profile, {next}"),
                    None => write!(
                        f,
                        "; no profile in the seed covers that many users"
                    ),
                }
            }
        }
    }
}

impl std::error::Error for TuningError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_accepts_the_seed_spellings() {
        for s in ["active-active", "Active/Active", "active_active", "AA"] {
            assert_eq!(s.parse::<Mode>(), Ok(Mode::ActiveActive), "{s}");
        }
        for s in ["active-standby", "active /standby", "as"] {
            assert_eq!(s.parse::<Mode>(), Ok(Mode::ActiveStandby), "{s}");
        }
        assert!(matches!(
            "standby".parse::<Mode>(),
            Err(TuningError::UnknownMode(_))
        ));
    }

    #[test]
    fn rate_is_exact_in_thousandths() {
        let r: LoginRate = "1.5".parse().unwrap();
        assert_eq!(r.millis_per_sec(), 1500);
        assert_eq!(r.to_string(), "1.5");
        assert_eq!("8".parse::<LoginRate>().unwrap().to_string(), "8");
        assert_eq!("0.125".parse::<LoginRate>().unwrap().to_string(), "0.125");
        assert_eq!(LoginRate::from_per_sec(0.1).unwrap().millis_per_sec(), 100);
        for bad in ["0", "-3", "nan", "inf", "abc", "0.0001"] {
            assert!(bad.parse::<LoginRate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn user_lists_pick_the_busiest_node_or_the_total() {
        let u: UserCounts = "2000, 1000".parse().unwrap();
        assert_eq!(u.effective(Mode::ActiveActive), Ok(2000));
        assert_eq!(u.effective(Mode::ActiveStandby), Ok(3000));
        let one: UserCounts = "4700".parse().unwrap();
        assert_eq!(one.effective(Mode::ActiveActive), Ok(4700));
        assert_eq!(one.effective(Mode::ActiveStandby), Ok(4700));
    }

    #[test]
    fn user_lists_reject_garbage_zero_and_overflow() {
        for bad in ["", "x", "2000,", "-5", "1.5"] {
            assert!(
                matches!(bad.parse::<UserCounts>(), Err(TuningError::InvalidUsers(_))),
                "{bad}"
            );
        }
        let zero: UserCounts = "0,0".parse().unwrap();
        assert_eq!(
            zero.effective(Mode::ActiveActive),
            Err(TuningError::NoUsers)
        );
        let huge = UserCounts::new(vec![u64::MAX, 1]).unwrap();
        assert_eq!(
            huge.effective(Mode::ActiveStandby),
            Err(TuningError::TooManyUsers)
        );
    }
}
