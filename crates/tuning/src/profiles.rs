//! The profile catalog: parses and validates the embedded `tuning/relogin-profiles.toml` and
//! finds a table by (loosely spelled) profile name and mode.
//!
//! It holds the seed's numbers exactly as printed and must not correct them: anomalies are the
//! model's business ([`super::relogin`]), and the data file stays a faithful transcription.

use super::{LoginRate, Mode, TuningError};
use serde::Deserialize;

/// The data file, compiled into the binary so the calculator needs no files at run time.
const EMBEDDED: &str = include_str!("../../../tuning/relogin-profiles.toml");

/// One printed row: `users` is the table's step, `lower`/`upper` the seed's limits in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub users: u64,
    pub lower: u64,
    pub upper: u64,
}

/// One of the seed's 12 tables: a profile's hardware in one mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The seed's table number (1..=12).
    pub number: u8,
    pub mode: Mode,
    /// The caption exactly as printed ("Table N: ...").
    pub caption: String,
    /// The rate a caption states outright (tables 11 and 12 only), to be checked against `login_rate`.
    pub caption_login_rate: Option<LoginRate>,
    /// The minimum CPU clock an "Attention" note recommends for this table, if any.
    pub min_clock_mhz: Option<u32>,
    /// The login rate the rows imply (worked out from them; see tuning/README.md).
    pub login_rate: LoginRate,
    /// Strictly increasing in `users`.
    pub rows: Vec<Row>,
}

impl Table {
    /// The largest user count this table covers.
    pub fn largest_step(&self) -> u64 {
        self.rows.last().map_or(0, |r| r.users)
    }

    /// The row used for `users`: the first step at or above it (the seed's "round up to the
    /// nearest value"), or `None` when the table stops below it.
    pub fn row_for(&self, users: u64) -> Option<&Row> {
        self.rows.iter().find(|r| r.users >= users)
    }
}

/// A deployment size ("15000 Users Full UC") with its hardware and its two tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The canonical name, e.g. `15000-full-uc`.
    pub name: String,
    /// The deployment size the profile is named after.
    pub users: u64,
    /// The section heading as printed, e.g. "15000 Users Full UC (4 vCPU 8GB)".
    pub heading: String,
    pub vcpu: u32,
    /// The clock the heading states (only the three smallest profiles state one).
    pub clock_mhz: Option<u32>,
    pub memory_gb: u32,
    pub tables: Vec<Table>,
}

impl Profile {
    pub fn table(&self, mode: Mode) -> Option<&Table> {
        self.tables.iter().find(|t| t.mode == mode)
    }

    /// Whether `given` names this profile: the canonical name, the bare size (`15000`), or the
    /// seed's heading words (`15000 Users Full UC`), ignoring case and separators.
    fn answers_to(&self, given: &str) -> bool {
        let key = normalize_profile_name(given);
        key == self.name || key == self.users.to_string()
    }
}

/// Lowercases, splits on anything that is not a letter or digit, drops the words "user"/"users",
/// and joins with `-`, so "15000 Users Full UC" and "15000_full_uc" both become "15000-full-uc".
fn normalize_profile_name(given: &str) -> String {
    given
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && *w != "users" && *w != "user")
        .collect::<Vec<_>>()
        .join("-")
}

/// All profiles plus the model's constants, in ascending deployment size.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// The Critical Service Down Delay the printed tables assume (120 s).
    pub assumed_delay_s: u64,
    /// The Server Recovery Manager's default Critical Service Down Delay (90 s).
    pub default_delay_s: u64,
    pub profiles: Vec<Profile>,
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn embedded() -> Result<Catalog, TuningError> {
        Catalog::parse(EMBEDDED)
    }

    /// Parses and validates a profile file in the `relogin-profiles.toml` format.
    pub fn parse(text: &str) -> Result<Catalog, TuningError> {
        let file: FileDoc = toml::from_str(text).map_err(|e| TuningError::Data(e.to_string()))?;
        file.into_catalog()
    }

    /// Finds a profile by any spelling [`Profile::answers_to`] accepts.
    pub fn profile(&self, given: &str) -> Result<&Profile, TuningError> {
        self.profiles
            .iter()
            .find(|p| p.answers_to(given))
            .ok_or_else(|| TuningError::UnknownProfile {
                given: given.to_string(),
                known: self.profiles.iter().map(|p| p.name.clone()).collect(),
            })
    }

    /// The table of `profile` for `mode`.
    pub fn table(&self, profile: &str, mode: Mode) -> Result<(&Profile, &Table), TuningError> {
        let p = self.profile(profile)?;
        // Validation guarantees both modes exist, so this only fails on a hand-built catalog.
        let t = p
            .table(mode)
            .ok_or_else(|| TuningError::Data(format!("profile {} has no {mode} table", p.name)))?;
        Ok((p, t))
    }

    /// Every table in seed order (by table number).
    pub fn tables(&self) -> impl Iterator<Item = (&Profile, &Table)> {
        let mut all: Vec<_> = self
            .profiles
            .iter()
            .flat_map(|p| p.tables.iter().map(move |t| (p, t)))
            .collect();
        all.sort_by_key(|(_, t)| t.number);
        all.into_iter()
    }

    /// The smallest profile larger than `after` whose `mode` table covers `users`.
    pub fn next_covering(&self, after: &Profile, mode: Mode, users: u64) -> Option<&Profile> {
        self.profiles
            .iter()
            .filter(|p| p.users > after.users)
            .filter(|p| p.table(mode).is_some_and(|t| t.largest_step() >= users))
            .min_by_key(|p| p.users)
    }
}

// ---- the file format --------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    model: ModelDoc,
    profile: Vec<ProfileDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDoc {
    assumed_critical_service_down_delay_s: u64,
    default_critical_service_down_delay_s: u64,
    rounding: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileDoc {
    name: String,
    users: u64,
    heading: String,
    vcpu: u32,
    clock_mhz: Option<u32>,
    memory_gb: u32,
    table: Vec<TableDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableDoc {
    number: u8,
    mode: String,
    caption: String,
    caption_login_rate: Option<f64>,
    min_clock_mhz: Option<u32>,
    login_rate: f64,
    rows: Vec<[u64; 3]>,
}

impl FileDoc {
    fn into_catalog(self) -> Result<Catalog, TuningError> {
        let bad = |msg: String| TuningError::Data(msg);
        // The model in `relogin` rounds half up; a file claiming another rounding would be
        // silently misread, so refuse it.
        if self.model.rounding != "half-up" {
            return Err(bad(format!(
                "rounding `{}` is not supported (only half-up)",
                self.model.rounding
            )));
        }
        let mut profiles = Vec::with_capacity(self.profile.len());
        let mut numbers = Vec::new();
        for p in self.profile {
            let mut tables = Vec::with_capacity(p.table.len());
            for t in p.table {
                let mode: Mode = t
                    .mode
                    .parse()
                    .map_err(|_| bad(format!("table {}: unknown mode `{}`", t.number, t.mode)))?;
                let rate = |r: f64| {
                    LoginRate::from_per_sec(r)
                        .map_err(|_| bad(format!("table {}: bad login rate {r}", t.number)))
                };
                let rows: Vec<Row> = t
                    .rows
                    .iter()
                    .map(|&[users, lower, upper]| Row {
                        users,
                        lower,
                        upper,
                    })
                    .collect();
                if rows.is_empty() || rows.windows(2).any(|w| w[0].users >= w[1].users) {
                    return Err(bad(format!(
                        "table {}: rows must be non-empty and strictly increasing in users",
                        t.number
                    )));
                }
                if tables.iter().any(|x: &Table| x.mode == mode) {
                    return Err(bad(format!("profile {}: two {mode} tables", p.name)));
                }
                numbers.push(t.number);
                tables.push(Table {
                    number: t.number,
                    mode,
                    caption: t.caption,
                    caption_login_rate: t.caption_login_rate.map(rate).transpose()?,
                    min_clock_mhz: t.min_clock_mhz,
                    login_rate: rate(t.login_rate)?,
                    rows,
                });
            }
            if tables.len() != 2 {
                return Err(bad(format!(
                    "profile {}: expected an active-active and an active-standby table",
                    p.name
                )));
            }
            profiles.push(Profile {
                name: p.name,
                users: p.users,
                heading: p.heading,
                vcpu: p.vcpu,
                clock_mhz: p.clock_mhz,
                memory_gb: p.memory_gb,
                tables,
            });
        }
        numbers.sort_unstable();
        if numbers.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("duplicate table numbers".to_string()));
        }
        if profiles.windows(2).any(|w| w[0].users >= w[1].users) {
            return Err(bad(
                "profiles must be listed in strictly increasing size".to_string()
            ));
        }
        Ok(Catalog {
            assumed_delay_s: self.model.assumed_critical_service_down_delay_s,
            default_delay_s: self.model.default_critical_service_down_delay_s,
            profiles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_has_the_seeds_twelve_tables() {
        let c = Catalog::embedded().unwrap();
        let numbers: Vec<u8> = c.tables().map(|(_, t)| t.number).collect();
        assert_eq!(numbers, (1..=12).collect::<Vec<u8>>());
        assert_eq!(c.assumed_delay_s, 120);
        assert_eq!(c.default_delay_s, 90);
        let rows: usize = c.tables().map(|(_, t)| t.rows.len()).sum();
        assert_eq!(rows, 128);
    }

    #[test]
    fn profile_names_are_accepted_loosely() {
        let c = Catalog::embedded().unwrap();
        for given in [
            "15000",
            "15000-full-uc",
            "15000 Users Full UC",
            "15000_FULL_UC",
            " 15000-users-full-uc ",
        ] {
            assert_eq!(c.profile(given).unwrap().name, "15000-full-uc", "{given}");
        }
        for bad in ["1500", "15000-lite", "", "full-uc"] {
            assert!(
                matches!(c.profile(bad), Err(TuningError::UnknownProfile { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn rows_round_up_to_the_next_step() {
        let c = Catalog::embedded().unwrap();
        let (_, t) = c.table("5000", Mode::ActiveActive).unwrap();
        assert_eq!(t.row_for(1).map(|r| r.users), Some(100));
        assert_eq!(t.row_for(100).map(|r| r.users), Some(100));
        assert_eq!(t.row_for(101).map(|r| r.users), Some(500));
        assert_eq!(t.row_for(2500).map(|r| r.users), Some(2500));
        assert_eq!(t.row_for(2501), None);
    }

    #[test]
    fn validation_rejects_broken_files() {
        let good = EMBEDDED;
        let cases = [
            good.replace("rounding = \"half-up\"", "rounding = \"ceil\""),
            good.replace("login_rate = 1.5", "login_rate = 0"),
            good.replace(
                "[[100, 120, 187], [250, 120, 287]]",
                "[[250, 120, 287], [100, 120, 187]]",
            ),
            good.replace("mode = \"active-standby\"", "mode = \"active-active\""),
            good.replace("number = 12", "number = 11"),
            good.replace("vcpu = 6", "vcpu = 6\ncolour = 1"),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_ne!(text, good, "case {i} did not change the file");
            assert!(
                matches!(Catalog::parse(text), Err(TuningError::Data(_))),
                "case {i} was accepted"
            );
        }
    }
}
