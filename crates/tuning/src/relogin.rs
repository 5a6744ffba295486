//! The re-login model: lower limit = Critical Service Down Delay, upper limit = lower + users /
//! login rate rounded half up, with users rounded up to the table's next step; and the list of
//! seed rows (and captions) that this model does not reproduce.
//!
//! Pure functions over a [`Catalog`]; the login rate is always an argument so that a measured rate
//! and the seed's rate go through the same arithmetic. Nothing here prints or measures.

use super::{Catalog, LoginRate, Mode, TuningError};

/// The limits for one query, and how they were obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The seed table the step came from.
    pub table: u8,
    /// The effective user count asked about (busiest node, or group total).
    pub users: u64,
    /// `users` rounded up to the table's next step: the row that was used.
    pub users_step: u64,
    /// Client Re-Login Lower Limit, seconds.
    pub lower: u64,
    /// Client Re-Login Upper Limit, seconds.
    pub upper: u64,
    /// The rate the upper limit was computed with.
    pub rate: LoginRate,
    /// The Critical Service Down Delay used, seconds.
    pub delay_s: u64,
    /// Set when `users` lies past the table's last step but within the profile's own size: the
    /// table's last step, which the row above extends (see [`relogin_limits`]).
    pub extends_table_from: Option<u64>,
}

/// The model's upper limit: `delay_s + users / rate`, the quotient rounded half up (12.5 s → 13 s,
/// as table 12's 100-user row requires). Exact integer arithmetic in thousandths of a login/s;
/// saturates rather than wrapping for absurd inputs.
pub fn upper_limit(users: u64, delay_s: u64, rate: LoginRate) -> u64 {
    let m = u128::from(rate.millis_per_sec());
    // round(users * 1000 / m) half up == floor((2 * users * 1000 + m) / (2 * m))
    let seconds = (2 * 1000 * u128::from(users) + m) / (2 * m);
    let total = seconds + u128::from(delay_s);
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// The re-login limits for `users` on `profile` in `mode`.
///
/// `users` is already the effective count ([`super::UserCounts::effective`]). `rate` overrides the
/// table's login rate (a `--rate` or a measured rate); `None` uses the seed's. The user count is
/// rounded up to the table's next step in either case, because the step is what the seed's
/// procedure configures.
///
/// Some tables stop below their profile's own size (the 5000-user profile's active/active table
/// ends at 2500 users per node). Between the last step and the profile's size the table is
/// extended with its own step width and login rate, which is what the seed's second worked
/// example does (4700 users on the 5000-user profile, rounded up to 5000: 120 / 953); the result
/// says so in [`Limits::extends_table_from`]. A count above the profile's size is an error naming
/// the next profile that covers it.
pub fn relogin_limits(
    catalog: &Catalog,
    profile: &str,
    mode: Mode,
    users: u64,
    critical_service_down_delay_s: u64,
    rate: Option<LoginRate>,
) -> Result<Limits, TuningError> {
    if users == 0 {
        return Err(TuningError::NoUsers);
    }
    let (p, table) = catalog.table(profile, mode)?;
    let (users_step, extends_table_from) = match table.row_for(users) {
        Some(row) => (row.users, None),
        None => match extended_step(table, p.users, users) {
            Some(step) => (step, Some(table.largest_step())),
            None => {
                return Err(TuningError::BeyondProfile {
                    profile: p.name.clone(),
                    mode,
                    users,
                    largest_step: table.largest_step(),
                    suggestion: catalog
                        .next_covering(p, mode, users)
                        .map(|n| n.name.clone()),
                })
            }
        },
    };
    let rate = rate.unwrap_or(table.login_rate);
    Ok(Limits {
        table: table.number,
        users,
        users_step,
        lower: critical_service_down_delay_s,
        upper: upper_limit(users_step, critical_service_down_delay_s, rate),
        rate,
        delay_s: critical_service_down_delay_s,
        extends_table_from,
    })
}

/// The step that `users` rounds up to when the table stops below it: the table's last step
/// width carried on, never past the profile's own size. `None` past that size (the profile is
/// too small) or for a table too short to have a step width.
fn extended_step(table: &super::Table, profile_users: u64, users: u64) -> Option<u64> {
    let last = table.largest_step();
    let width = match table.rows.len() {
        n if n >= 2 => last.checked_sub(table.rows[n - 2].users)?,
        _ => return None,
    };
    if users > profile_users || width == 0 {
        return None;
    }
    let steps = (users - last).div_ceil(width);
    Some(
        last.saturating_add(steps.saturating_mul(width))
            .min(profile_users),
    )
}

/// A printed row that the model does not reproduce at the tables' own delay and rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub table: u8,
    pub profile: String,
    pub mode: Mode,
    pub users: u64,
    /// What the seed prints.
    pub seed_lower: u64,
    pub seed_upper: u64,
    /// What the model gives.
    pub model_lower: u64,
    pub model_upper: u64,
}

/// A caption that states a login rate different from the one its rows imply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionAnomaly {
    pub table: u8,
    pub caption: String,
    /// The rate the caption states.
    pub stated: LoginRate,
    /// The rate the table's rows imply (the one the model uses).
    pub implied: LoginRate,
}

/// Every row of every table where the seed and the model disagree, in table and row order.
/// Computed, not listed: a row is anomalous exactly when the model misses it.
pub fn anomalies(catalog: &Catalog) -> Vec<Anomaly> {
    let delay = catalog.assumed_delay_s;
    let mut out = Vec::new();
    for (p, t) in catalog.tables() {
        for row in &t.rows {
            let model_upper = upper_limit(row.users, delay, t.login_rate);
            if row.lower != delay || row.upper != model_upper {
                out.push(Anomaly {
                    table: t.number,
                    profile: p.name.clone(),
                    mode: t.mode,
                    users: row.users,
                    seed_lower: row.lower,
                    seed_upper: row.upper,
                    model_lower: delay,
                    model_upper,
                });
            }
        }
    }
    out
}

/// Every caption whose stated rate differs from its rows' rate.
pub fn caption_anomalies(catalog: &Catalog) -> Vec<CaptionAnomaly> {
    catalog
        .tables()
        .filter_map(|(_, t)| {
            let stated = t.caption_login_rate?;
            (stated != t.login_rate).then(|| CaptionAnomaly {
                table: t.number,
                caption: t.caption.clone(),
                stated,
                implied: t.login_rate,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> LoginRate {
        s.parse().unwrap()
    }

    #[test]
    fn upper_rounds_half_up() {
        // 100 / 8 = 12.5 → 13 (table 12 prints 133); 500 / 8 = 62.5 → 63 (183).
        assert_eq!(upper_limit(100, 120, rate("8")), 133);
        assert_eq!(upper_limit(500, 120, rate("8")), 183);
        // 100 / 15 = 6.67 → 7 (127); 500 / 15 = 33.3 → 33 (153): not a ceiling.
        assert_eq!(upper_limit(100, 120, rate("15")), 127);
        assert_eq!(upper_limit(500, 120, rate("15")), 153);
        // Non-integer rates: 250 / 1.5 = 166.67 → 167.
        assert_eq!(upper_limit(250, 120, rate("1.5")), 287);
        // The delay shifts both limits alike.
        assert_eq!(upper_limit(2000, 90, rate("15")), 90 + 133);
        assert_eq!(upper_limit(u64::MAX, u64::MAX, rate("0.001")), u64::MAX);
    }

    #[test]
    fn limits_use_the_next_step_and_the_given_rate() {
        let c = Catalog::embedded().unwrap();
        let l = relogin_limits(&c, "15000", Mode::ActiveActive, 1999, 120, None).unwrap();
        assert_eq!(
            (l.table, l.users_step, l.lower, l.upper),
            (9, 2000, 120, 253)
        );
        let l =
            relogin_limits(&c, "15000", Mode::ActiveActive, 1999, 120, Some(rate("20"))).unwrap();
        assert_eq!((l.users_step, l.upper), (2000, 220));
        assert_eq!(
            relogin_limits(&c, "15000", Mode::ActiveActive, 0, 120, None),
            Err(TuningError::NoUsers)
        );
    }

    #[test]
    fn beyond_the_table_names_the_next_profile() {
        let c = Catalog::embedded().unwrap();
        // 5001 users is past the 5000-user profile itself, not just past its table.
        let e = relogin_limits(&c, "5000", Mode::ActiveActive, 5001, 120, None).unwrap_err();
        assert_eq!(
            e,
            TuningError::BeyondProfile {
                profile: "5000-full-uc".into(),
                mode: Mode::ActiveActive,
                users: 5001,
                largest_step: 2500,
                suggestion: Some("15000-full-uc".into()),
            }
        );
        let e = relogin_limits(&c, "25000", Mode::ActiveStandby, 25001, 120, None).unwrap_err();
        assert!(matches!(
            e,
            TuningError::BeyondProfile {
                suggestion: None,
                ..
            }
        ));
    }

    #[test]
    fn a_table_that_stops_below_its_profile_is_extended_at_its_rate() {
        let c = Catalog::embedded().unwrap();
        // The seed's worked example 2: 4700 users, 5000-user profile, active/active.
        let l = relogin_limits(&c, "5000", Mode::ActiveActive, 4700, 120, None).unwrap();
        assert_eq!(
            (l.table, l.users_step, l.lower, l.upper),
            (7, 5000, 120, 953)
        );
        assert_eq!(l.extends_table_from, Some(2500));
        // The step width (500) carries on past the last row.
        let l = relogin_limits(&c, "5000", Mode::ActiveActive, 2501, 120, None).unwrap();
        assert_eq!((l.users_step, l.upper), (3000, 620));
        // Inside the table nothing is extended.
        let l = relogin_limits(&c, "5000", Mode::ActiveActive, 2500, 120, None).unwrap();
        assert_eq!(l.extends_table_from, None);
    }

    #[test]
    fn only_table_twelves_caption_contradicts_its_rows() {
        let c = Catalog::embedded().unwrap();
        let a = caption_anomalies(&c);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].table, a[0].stated, a[0].implied),
            (12, rate("16"), rate("8"))
        );
    }
}
