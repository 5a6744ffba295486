//! Text rendering for the tuning commands: one query's limits, and a whole profile table with the
//! model beside the seed.
//!
//! Renders to `String` and never writes to a stream, so the CLI decides where output goes and
//! tests can compare text; it computes nothing the model does not already expose.

use super::{upper_limit, Catalog, Limits, LoginRate, Profile, Table};
use std::fmt::Write as _;

/// "4 vCPU, 8 GB, 2.5 GHz min": the hardware a table applies to.
fn hardware(p: &Profile, t: &Table) -> String {
    let mut s = format!("{} vCPU, {} GB", p.vcpu, p.memory_gb);
    if let Some(mhz) = p.clock_mhz {
        let _ = write!(s, ", {mhz} MHz");
    }
    if let Some(mhz) = t.min_clock_mhz {
        let _ = write!(s, ", at least {} GHz recommended", ghz(mhz));
    }
    s
}

/// 2600 MHz → "2.6", 2500 → "2.5", 3000 → "3".
fn ghz(mhz: u32) -> String {
    let frac = format!("{:03}", mhz % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", mhz / 1000)
    } else {
        format!("{}.{frac}", mhz / 1000)
    }
}

/// The limits of one query, as the `tuning relogin` command prints them.
///
/// `per_node` is the `--users` list as given (to show which count was used); `rate_origin` says
/// where the rate came from ("the seed's table 9", "--rate", later "measured ...").
pub fn render_limits(
    catalog: &Catalog,
    profile: &Profile,
    table: &Table,
    limits: &Limits,
    per_node: &[u64],
    rate_origin: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "profile {} ({}), {}: table {}",
        profile.name,
        hardware(profile, table),
        table.mode.seed_label(),
        table.number
    );
    let users_note = match per_node.len() {
        0 | 1 => String::new(),
        _ => {
            let list: Vec<String> = per_node.iter().map(u64::to_string).collect();
            match table.mode {
                super::Mode::ActiveActive => format!(" (the busiest node of {})", list.join(",")),
                super::Mode::ActiveStandby => format!(" (the group total of {})", list.join("+")),
            }
        }
    };
    let _ = writeln!(
        s,
        "users {}{} -> table row {}",
        limits.users, users_note, limits.users_step
    );
    let _ = writeln!(s, "Client Re-Login Lower Limit: {}", limits.lower);
    let _ = writeln!(s, "Client Re-Login Upper Limit: {}", limits.upper);
    let _ = writeln!(
        s,
        "model: lower = Critical Service Down Delay ({} s); upper = {} + {} users / {} logins/s ({}), rounded half up",
        limits.delay_s, limits.delay_s, limits.users_step, limits.rate, rate_origin
    );
    if limits.delay_s != catalog.default_delay_s {
        let _ = writeln!(
            s,
            "note: the seed's tables assume a Critical Service Down Delay of {} s; the service default is {} s. \
             The lower limit must equal your configured delay (--critical-service-down-delay).",
            catalog.assumed_delay_s, catalog.default_delay_s
        );
    }
    if let Some(last) = limits.extends_table_from {
        let _ = writeln!(
            s,
            "note: table {} stops at {last} users; row {} extends it with its step width and \
             its rate, as the seed's worked example 2 does. A profile whose table covers this \
             count measures it instead: see --table, or the next larger profile",
            table.number, limits.users_step
        );
    }
    // Say so when the seed prints something else for the very row used.
    if let Some(row) = table.rows.iter().find(|r| r.users == limits.users_step) {
        let model = upper_limit(row.users, catalog.assumed_delay_s, table.login_rate);
        if row.upper != model || row.lower != catalog.assumed_delay_s {
            let _ = writeln!(
                s,
                "note: for this row the seed prints {}/{} but its own pattern gives {}/{}: a seed anomaly \
                 (see tuning/README.md); the limits above follow the model",
                row.lower, row.upper, catalog.assumed_delay_s, model
            );
        }
    }
    s
}

/// A whole table. At the seed's own delay and rate it prints the seed's rows and, beside every
/// anomalous row, the model's value; at any other delay or rate it prints the model's limits with
/// the seed's row beside each for comparison.
pub fn render_table(
    catalog: &Catalog,
    profile: &Profile,
    table: &Table,
    delay_s: u64,
    rate: LoginRate,
) -> String {
    let seed_delay = catalog.assumed_delay_s;
    let at_seed = delay_s == seed_delay && rate == table.login_rate;
    let mut s = String::new();
    let _ = writeln!(s, "Table {}: {}", table.number, table.caption);
    let _ = writeln!(
        s,
        "profile {} ({}), {}; the rows imply {} logins/s",
        profile.name,
        hardware(profile, table),
        table.mode.seed_label(),
        table.login_rate
    );
    if at_seed {
        let _ = writeln!(
            s,
            "model: upper = {seed_delay} + users / {rate}, rounded half up (the seed's delay and rate)"
        );
        let _ = writeln!(s, "{:>7} {:>6} {:>6}", "users", "lower", "upper");
    } else {
        let _ = writeln!(
            s,
            "model: upper = {delay_s} + users / {rate}, rounded half up; seed columns at {seed_delay} s and {} logins/s",
            table.login_rate
        );
        let _ = writeln!(
            s,
            "{:>7} {:>6} {:>6}   {:>10} {:>10}",
            "users", "lower", "upper", "seed lower", "seed upper"
        );
    }
    for row in &table.rows {
        let seed_model = upper_limit(row.users, seed_delay, table.login_rate);
        let anomalous = row.upper != seed_model || row.lower != seed_delay;
        if at_seed {
            let _ = write!(s, "{:>7} {:>6} {:>6}", row.users, row.lower, row.upper);
            if anomalous {
                let _ = write!(
                    s,
                    "   <- seed anomaly: the model gives {seed_delay}/{seed_model}"
                );
            }
        } else {
            let _ = write!(
                s,
                "{:>7} {:>6} {:>6}   {:>10} {:>10}",
                row.users,
                delay_s,
                upper_limit(row.users, delay_s, rate),
                row.lower,
                row.upper
            );
            if anomalous {
                let _ = write!(
                    s,
                    "   <- seed anomaly: at its delay and rate the model gives {seed_model}"
                );
            }
        }
        s.push('\n');
    }
    if let Some(stated) = table.caption_login_rate.filter(|&r| r != table.login_rate) {
        let _ = writeln!(
            s,
            "note: the caption states {stated} logins/s, but the rows imply {}",
            table.login_rate
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{relogin_limits, Mode};

    #[test]
    fn limits_text_carries_both_limits_and_the_row() {
        let c = Catalog::embedded().unwrap();
        let (p, t) = c.table("15000", Mode::ActiveActive).unwrap();
        let l = relogin_limits(&c, "15000", Mode::ActiveActive, 2000, 120, None).unwrap();
        let text = render_limits(&c, p, t, &l, &[2000, 1000], "the seed's table 9");
        assert!(
            text.contains("Client Re-Login Lower Limit: 120\n"),
            "{text}"
        );
        assert!(
            text.contains("Client Re-Login Upper Limit: 253\n"),
            "{text}"
        );
        assert!(text.contains("the busiest node of 2000,1000"), "{text}");
        assert!(text.contains("table row 2000"), "{text}");
        assert!(text.contains("4 vCPU, 8 GB, at least 2.5 GHz"), "{text}");
    }

    #[test]
    fn limits_text_flags_an_anomalous_row() {
        let c = Catalog::embedded().unwrap();
        let (p, t) = c.table("25000", Mode::ActiveStandby).unwrap();
        let l = relogin_limits(&c, "25000", Mode::ActiveStandby, 7600, 120, None).unwrap();
        let text = render_limits(&c, p, t, &l, &[7600], "the seed's table 12");
        assert!(text.contains("Upper Limit: 1120\n"), "{text}");
        assert!(text.contains("the seed prints 120/1058"), "{text}");
    }

    #[test]
    fn table_text_marks_exactly_the_anomalies() {
        let c = Catalog::embedded().unwrap();
        let (p, t) = c.table("25000", Mode::ActiveStandby).unwrap();
        let text = render_table(&c, p, t, 120, t.login_rate);
        assert_eq!(text.matches("seed anomaly").count(), 6, "{text}");
        assert!(text.contains("   8000    120   1058   <- seed anomaly: the model gives 120/1120"));
        assert!(text.contains("caption states 16 logins/s, but the rows imply 8"));
        let shifted = render_table(&c, p, t, 90, t.login_rate);
        assert!(
            shifted.contains("    100     90    103          120        133"),
            "{shifted}"
        );
    }
}
