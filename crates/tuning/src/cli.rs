//! The `palisade tuning ...` subcommands: argument definitions and their handling.
//!
//! Owns only the translation from arguments to calls on the tuning model and from results to text
//! and exit codes; all arithmetic lives in `relogin`, all formatting in `print`. It measures
//! nothing itself: `--measured` asks `palisade_tools::login_rate` for a rate, which becomes a
//! [`RateOverride`] passed to [`relogin_report`] like `--rate` is.

use super::{
    relogin_limits, render_limits, render_table, Catalog, LoginRate, Mode, TuningError, UserCounts,
};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum TuningCommand {
    /// Client re-login lower/upper limits after a high-availability failover (the seed's 12
    /// profile tables): lower = Critical Service Down Delay, upper = lower + users / login rate.
    Relogin(ReloginArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ReloginArgs {
    /// Profile: 500, 1000, 2000, 5000, 15000 or 25000 (also 15000-full-uc, "15000 Users Full UC").
    #[arg(long)]
    pub profile: String,

    /// Deployment type: active-active (or active/active) or active-standby.
    #[arg(long)]
    pub mode: Mode,

    /// Users: N, or one count per node (2000,1000). Active-active sizes by the busiest node,
    /// active-standby by the total. Rounded up to the table's next step.
    #[arg(long, required_unless_present = "table")]
    pub users: Option<UserCounts>,

    /// Critical Service Down Delay in seconds (the lower limit). Defaults to 120, the value the
    /// seed's tables assume; the service's own default is 90.
    #[arg(long, value_name = "S")]
    pub critical_service_down_delay: Option<u64>,

    /// Print the whole profile table (model beside the seed for rows where they differ).
    #[arg(long)]
    pub table: bool,

    /// Compute with this login rate (logins/s, e.g. a measured e_SESSION rate) instead of the
    /// seed's rate for the table.
    #[arg(long, value_name = "LOGINS_PER_SEC", conflicts_with = "measured")]
    pub rate: Option<LoginRate>,

    /// Measure the login rate instead: run a login storm (e_SESSION) through a gateway and its
    /// compliance servers and compute with what they sustain. Without --connect, a gateway and a
    /// simulator are started here on loopback.
    #[arg(long)]
    pub measured: bool,

    /// With --measured: how long the storm runs.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = palisade_core::policy::parse_duration)]
    pub measure_for: std::time::Duration,

    /// With --measured: measure a running gateway at this router address instead.
    #[arg(long, value_name = "ADDR", requires_all = ["router_name", "router_secret"])]
    pub connect: Option<String>,

    /// With --connect: the router name to play (a `[[router]] name` of that gateway).
    #[arg(long, value_name = "NAME")]
    pub router_name: Option<String>,

    /// With --connect: that router's secret.
    #[arg(long, value_name = "SECRET")]
    pub router_secret: Option<String>,

    /// With --measured and no --connect: gateway shards (0: one per core).
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
}

/// A login rate that replaces the table's, with a description of where it came from for the
/// output ("--rate", "measured: 412.7 e_SESSION/s over 60 s ...").
#[derive(Debug, Clone, PartialEq)]
pub struct RateOverride {
    pub rate: LoginRate,
    pub origin: String,
    /// True when the rate was measured (the report then compares it with the seed's).
    pub measured: bool,
}

/// The text `tuning relogin` prints for `args`, with the rate taken from `rate_override` when
/// given (callers map `--rate` and, later, `--measured` to it), else from the seed's table.
pub fn relogin_report(
    catalog: &Catalog,
    args: &ReloginArgs,
    rate_override: Option<&RateOverride>,
) -> Result<String, TuningError> {
    let (profile, table) = catalog.table(&args.profile, args.mode)?;
    let delay = args
        .critical_service_down_delay
        .unwrap_or(catalog.assumed_delay_s);
    let rate = rate_override.map_or(table.login_rate, |o| o.rate);
    let origin = rate_override.map_or_else(
        || format!("the seed's rate for table {}", table.number),
        |o| o.origin.clone(),
    );
    let mut out = String::new();
    if let Some(users) = &args.users {
        let effective = users.effective(args.mode)?;
        let limits = relogin_limits(
            catalog,
            &args.profile,
            args.mode,
            effective,
            delay,
            Some(rate),
        )?;
        out.push_str(&render_limits(
            catalog,
            profile,
            table,
            &limits,
            users.counts(),
            &origin,
        ));
    }
    if let (Some(o), Some(users)) = (rate_override.filter(|o| o.measured), &args.users) {
        out.push_str(&compare_with_seed(
            catalog,
            args,
            table.login_rate,
            o.rate,
            users,
        )?);
    }
    if args.table {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&render_table(catalog, profile, table, delay, rate));
    }
    Ok(out)
}

/// Which side bounds the re-login window: the IM and Presence node (the seed's rate for the
/// profile) or the compliance path (the measured rate through the gateway and its servers).
fn compare_with_seed(
    catalog: &Catalog,
    args: &ReloginArgs,
    seed: LoginRate,
    measured: LoginRate,
    users: &UserCounts,
) -> Result<String, TuningError> {
    let delay = args
        .critical_service_down_delay
        .unwrap_or(catalog.assumed_delay_s);
    let effective = users.effective(args.mode)?;
    let with_seed = relogin_limits(
        catalog,
        &args.profile,
        args.mode,
        effective,
        delay,
        Some(seed),
    )?;
    let binding = if measured.per_sec() >= seed.per_sec() {
        format!(
            "the gateway and its compliance servers take {:.0} logins/s, more than the {} logins/s the seed's table assumes for the IM and Presence node itself: the node bounds the window, so configure the seed's limits (lower {}, upper {}); the compliance path adds at most {:.1} s to it.",
            measured.per_sec(),
            seed.per_sec(),
            with_seed.lower,
            with_seed.upper,
            effective as f64 / measured.per_sec()
        )
    } else {
        format!(
            "the gateway and its compliance servers take only {:.0} logins/s, fewer than the node's {} logins/s: the compliance path bounds the window, so configure the measured limits above (the seed's table would give an upper limit of {}, too short); or add compliance servers or gateway shards and measure again.",
            measured.per_sec(),
            seed.per_sec(),
            with_seed.upper
        )
    };
    Ok(format!("sizing: {binding}\n"))
}

/// Runs the measurement `--measured` asks for and turns it into the rate the model uses.
fn measured_rate(args: &ReloginArgs) -> Result<RateOverride, String> {
    let target = match (&args.connect, &args.router_name, &args.router_secret) {
        (Some(connect), Some(name), Some(secret)) => palisade_tools::login_rate::Target::Running {
            connect: connect.clone(),
            name: name.clone(),
            secret: secret.clone(),
        },
        _ => palisade_tools::login_rate::Target::Local {
            shards: args.shards,
        },
    };
    eprintln!("measuring the login rate for {:?}...", args.measure_for);
    let m = palisade_tools::login_rate::measure(&target, args.measure_for)
        .map_err(|e| e.to_string())?;
    let rate = LoginRate::from_per_sec(m.logins_per_s).map_err(|e| e.to_string())?;
    Ok(RateOverride {
        rate,
        origin: format!("{} (p99 {:.1} ms)", m.origin, m.p99_ms),
        measured: true,
    })
}

/// Runs a `tuning` subcommand; returns the process exit code (0 ok, 1 on any tuning error).
pub fn run(command: TuningCommand) -> i32 {
    match command {
        TuningCommand::Relogin(args) => {
            let mut rate_override = args.rate.map(|rate| RateOverride {
                rate,
                origin: "--rate".to_string(),
                measured: false,
            });
            if args.measured {
                match measured_rate(&args) {
                    Ok(o) => rate_override = Some(o),
                    Err(e) => {
                        eprintln!("palisade: tuning relogin --measured: {e}");
                        return 1;
                    }
                }
            }
            let result = Catalog::embedded()
                .and_then(|catalog| relogin_report(&catalog, &args, rate_override.as_ref()));
            match result {
                Ok(text) => {
                    print!("{text}");
                    0
                }
                Err(e) => {
                    eprintln!("palisade: tuning relogin: {e}");
                    1
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(profile: &str, mode: Mode, users: Option<&str>) -> ReloginArgs {
        ReloginArgs {
            profile: profile.to_string(),
            mode,
            users: users.map(|u| u.parse().unwrap()),
            critical_service_down_delay: None,
            table: false,
            rate: None,
            measured: false,
            measure_for: std::time::Duration::from_secs(5),
            connect: None,
            router_name: None,
            router_secret: None,
            shards: 1,
        }
    }

    #[test]
    fn report_uses_the_busiest_node_for_active_active() {
        let c = Catalog::embedded().unwrap();
        let text = relogin_report(
            &c,
            &args("15000", Mode::ActiveActive, Some("2000,1000")),
            None,
        )
        .unwrap();
        assert!(text.contains("Upper Limit: 253\n"), "{text}");
    }

    #[test]
    fn report_sums_active_standby_and_rounds_up() {
        let c = Catalog::embedded().unwrap();
        // 2000 + 1000 = 3000 on table 10 at 6/s: 120 + 500.
        let text = relogin_report(
            &c,
            &args("15000", Mode::ActiveStandby, Some("2000,1000")),
            None,
        )
        .unwrap();
        assert!(text.contains("Upper Limit: 620\n"), "{text}");
        assert!(text.contains("the group total of 2000+1000"), "{text}");
    }

    #[test]
    fn report_takes_an_override_rate_and_delay() {
        let c = Catalog::embedded().unwrap();
        let mut a = args("15000", Mode::ActiveActive, Some("2000"));
        a.critical_service_down_delay = Some(90);
        let o = RateOverride {
            rate: "40".parse().unwrap(),
            origin: "measured".into(),
            measured: false,
        };
        let text = relogin_report(&c, &a, Some(&o)).unwrap();
        assert!(text.contains("Lower Limit: 90\n"), "{text}");
        assert!(text.contains("Upper Limit: 140\n"), "{text}");
        assert!(text.contains("(measured)"), "{text}");
    }

    #[test]
    fn a_measured_rate_is_compared_with_the_seeds() {
        let c = Catalog::embedded().unwrap();
        let a = args("15000", Mode::ActiveStandby, Some("15000"));
        let fast = RateOverride {
            rate: "200000".parse().unwrap(),
            origin: "measured here".into(),
            measured: true,
        };
        let text = relogin_report(&c, &a, Some(&fast)).unwrap();
        assert!(text.contains("Upper Limit: 120\n"), "{text}");
        assert!(text.contains("the node bounds the window, so configure the seed's limits (lower 120, upper 2620)"), "{text}");
        let slow = RateOverride {
            rate: "3".parse().unwrap(),
            origin: "measured here".into(),
            measured: true,
        };
        let text = relogin_report(&c, &a, Some(&slow)).unwrap();
        assert!(text.contains("Upper Limit: 5120\n"), "{text}");
        assert!(
            text.contains("the compliance path bounds the window"),
            "{text}"
        );
    }

    #[test]
    fn report_table_only_and_errors() {
        let c = Catalog::embedded().unwrap();
        let mut a = args("500", Mode::ActiveActive, None);
        a.table = true;
        let text = relogin_report(&c, &a, None).unwrap();
        assert!(text.starts_with("Table 1: "), "{text}");
        assert!(!text.contains("Upper Limit"), "{text}");
        let e = relogin_report(&c, &args("500", Mode::ActiveActive, Some("501")), None);
        assert!(matches!(e, Err(TuningError::BeyondProfile { .. })));
        let e = relogin_report(&c, &args("600", Mode::ActiveActive, Some("1")), None);
        assert!(matches!(e, Err(TuningError::UnknownProfile { .. })));
    }
}
