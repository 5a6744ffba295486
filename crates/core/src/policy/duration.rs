//! Durations as the configuration writes them: one whole number and one unit, `"250ms"`,
//! `"30s"`, `"5m"`, `"1h"`.
//!
//! This file owns the syntax and its error messages only; which durations are sensible (non-zero,
//! ordered against each other) is decided by the configuration validator.

use std::fmt;
use std::time::Duration;

/// What is wrong with a duration string; the text is shown to the administrator as is.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum DurationError {
    /// The string is empty.
    Empty,
    /// Leading, trailing or inner whitespace.
    Whitespace,
    /// A leading `-`: durations are never negative.
    Negative,
    /// No digits before the unit, e.g. `"s"` or `"1.5s"`.
    NoNumber,
    /// Digits only, e.g. `"5"`: a bare number is ambiguous.
    NoUnit {
        /// The digits given.
        number: String,
    },
    /// A unit other than `ms`, `s`, `m` or `h`.
    UnknownUnit {
        /// The unit given.
        unit: String,
    },
    /// A fraction such as `"1.5s"`: write `"1500ms"` instead.
    Fraction,
    /// Several number-unit pairs, e.g. `"1m30s"`.
    Compound,
    /// The number does not fit a `Duration` in that unit.
    Overflow,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => f.write_str("the duration is empty"),
            DurationError::Whitespace => f.write_str("the duration contains whitespace"),
            DurationError::Negative => f.write_str("a duration cannot be negative"),
            DurationError::NoNumber => f.write_str("the duration has no number before its unit"),
            DurationError::NoUnit { number } => {
                write!(f, "the duration {number:?} has no unit (ms, s, m or h)")
            }
            DurationError::UnknownUnit { unit } => {
                write!(f, "unknown duration unit {unit:?}: expected ms, s, m or h")
            }
            DurationError::Fraction => f.write_str("a duration must be a whole number of its unit"),
            DurationError::Compound => {
                f.write_str("a duration is one number and one unit, not several")
            }
            DurationError::Overflow => f.write_str("the duration is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

impl DurationError {
    /// A suggestion for the administrator, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            DurationError::NoUnit { number } => Some(format!("write \"{number}s\" for seconds")),
            DurationError::Fraction => Some("use a smaller unit, e.g. \"1500ms\"".to_string()),
            DurationError::Compound => Some("write \"90s\" rather than \"1m30s\"".to_string()),
            DurationError::Empty | DurationError::NoNumber | DurationError::UnknownUnit { .. } => {
                Some("write e.g. \"250ms\", \"30s\", \"5m\" or \"1h\"".to_string())
            }
            _ => None,
        }
    }
}

/// Parses `"<whole number><unit>"` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(DurationError::Whitespace);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let digits_end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err(if number.is_empty() {
            DurationError::NoNumber
        } else {
            DurationError::Fraction
        });
    }
    if number.is_empty() {
        return Err(DurationError::NoNumber);
    }
    if unit.is_empty() {
        return Err(DurationError::NoUnit {
            number: number.to_string(),
        });
    }
    if unit.bytes().any(|b| b.is_ascii_digit()) {
        return Err(DurationError::Compound);
    }
    let value: u64 = number.parse().map_err(|_| DurationError::Overflow)?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
            })
        }
    };
    let millis = value
        .checked_mul(millis_per_unit)
        .ok_or(DurationError::Overflow)?;
    Ok(Duration::from_millis(millis))
}

/// The shortest exact spelling of `d` in the configuration's syntax (sub-millisecond parts are
/// dropped, as the syntax cannot express them).
pub fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis == 0 {
        return "0ms".to_string();
    }
    for (unit, per) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000)] {
        if millis.is_multiple_of(per) {
            return format!("{}{unit}", millis / per);
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn rejects_with_a_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("5"),
            Err(DurationError::NoUnit { number: "5".into() })
        );
        assert_eq!(parse_duration("-1s"), Err(DurationError::Negative));
        assert_eq!(parse_duration("s"), Err(DurationError::NoNumber));
        assert_eq!(parse_duration(" 5s"), Err(DurationError::Whitespace));
        assert_eq!(parse_duration("5 s"), Err(DurationError::Whitespace));
        assert_eq!(parse_duration("1.5s"), Err(DurationError::Fraction));
        assert_eq!(parse_duration(".5s"), Err(DurationError::NoNumber));
        assert_eq!(
            parse_duration("5sec"),
            Err(DurationError::UnknownUnit { unit: "sec".into() })
        );
        assert_eq!(
            parse_duration("5S"),
            Err(DurationError::UnknownUnit { unit: "S".into() })
        );
        assert_eq!(parse_duration("1m30s"), Err(DurationError::Compound));
    }

    #[test]
    fn rejects_overflow_instead_of_wrapping() {
        assert_eq!(
            parse_duration("18446744073709551616ms"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615ms"),
            Ok(Duration::from_millis(u64::MAX))
        );
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let msg = |s: &str| {
            parse_duration(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(msg("5"), "the duration \"5\" has no unit (ms, s, m or h)");
        assert_eq!(
            msg("5x"),
            "unknown duration unit \"x\": expected ms, s, m or h"
        );
        assert_eq!(msg("-1s"), "a duration cannot be negative");
        assert_eq!(msg(""), "the duration is empty");
        assert_eq!(msg("99999999999999999999s"), "the duration is too large");
        assert_eq!(
            parse_duration("5").err().and_then(|e| e.hint()),
            Some("write \"5s\" for seconds".to_string())
        );
    }

    #[test]
    fn format_round_trips() {
        for text in ["250ms", "30s", "5m", "1h", "90s", "1500ms", "0ms"] {
            let d = parse_duration(text).unwrap_or_default();
            assert_eq!(format_duration(d), text);
        }
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }
}
