//! The `palisade tuning ...` subcommands: argument definitions and their handling.
//!
//! Owns only the translation from arguments to calls on the tuning model and from results to text
//! and exit codes; all arithmetic lives in `relogin`, all formatting in `print`. It must not
//! measure anything itself: a measured rate (the future `--measured`) is turned into a
//! [`RateOverride`] by its caller and passed to [`relogin_report`] like `--rate` is.

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
    #[arg(long, value_name = "LOGINS_PER_SEC")]
    pub rate: Option<LoginRate>,
}

/// A login rate that replaces the table's, with a description of where it came from for the
/// output ("--rate", "measured: 412.7 e_SESSION/s over 60 s ...").
#[derive(Debug, Clone, PartialEq)]
pub struct RateOverride {
    pub rate: LoginRate,
    pub origin: String,
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
    if args.table {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&render_table(catalog, profile, table, delay, rate));
    }
    Ok(out)
}

/// Runs a `tuning` subcommand; returns the process exit code (0 ok, 1 on any tuning error).
pub fn run(command: TuningCommand) -> i32 {
    match command {
        TuningCommand::Relogin(args) => {
            let rate_override = args.rate.map(|rate| RateOverride {
                rate,
                origin: "--rate".to_string(),
            });
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
        };
        let text = relogin_report(&c, &a, Some(&o)).unwrap();
        assert!(text.contains("Lower Limit: 90\n"), "{text}");
        assert!(text.contains("Upper Limit: 140\n"), "{text}");
        assert!(text.contains("(measured)"), "{text}");
    }

    #[test]
    fn report_table_only_and_errors() {
        let c = Catalog::embedded().unwrap();
        let mut a = args("500", Mode::ActiveActive, None);
        a.table = true;
        let text = relogin_report(&c, &a, None).unwrap();
        assert!(text.starts_with("Table 1: "), "{text}");
        assert!(!text.contains("Upper Limit"), "{text}");
        let e = relogin_report(&c, &args("500", Mode::ActiveActive, Some("251")), None);
        assert!(matches!(e, Err(TuningError::BeyondProfile { .. })));
        let e = relogin_report(&c, &args("600", Mode::ActiveActive, Some("1")), None);
        assert!(matches!(e, Err(TuningError::UnknownProfile { .. })));
    }
}
