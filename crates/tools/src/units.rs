//! Command-line quantities of the tools: durations (with microseconds, which the configuration's
//! strict syntax does not need) and rates (`300000`, `300000/s`, `max`).
//!
//! Whole numbers only, like the configuration: the syntax beyond `us` and `0` is
//! [`crate::policy::parse_duration`]'s, so an operator learns one form. Must not accept
//! fractions or compound durations.

use crate::policy::{parse_duration, DurationError};
use std::fmt;
use std::time::Duration;

/// Why a tool's duration or rate argument cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitError {
    Duration { text: String, error: DurationError },
    Micros { text: String },
    Rate { text: String },
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitError::Duration { text, error } => {
                write!(f, "bad duration {text:?}: {error}")?;
                match error.hint() {
                    Some(h) => write!(f, " ({h}, or \"500us\")"),
                    None => Ok(()),
                }
            }
            UnitError::Micros { text } => {
                write!(f, "bad duration {text:?}: expected a whole number of us")
            }
            UnitError::Rate { text } => write!(
                f,
                "bad rate {text:?}: expected events per second (\"50000\" or \"50000/s\") or \"max\""
            ),
        }
    }
}

impl std::error::Error for UnitError {}

/// A duration: `"0"`, `"250us"`, or the configuration's `"2ms"`, `"10s"`, `"5m"`, `"1h"`.
pub fn parse_span(text: &str) -> Result<Duration, UnitError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if let Some(number) = text.strip_suffix("us") {
        return number
            .parse::<u64>()
            .ok()
            .filter(|_| number.bytes().all(|b| b.is_ascii_digit()))
            .map(Duration::from_micros)
            .ok_or_else(|| UnitError::Micros {
                text: text.to_string(),
            });
    }
    parse_duration(text).map_err(|error| UnitError::Duration {
        text: text.to_string(),
        error,
    })
}

/// A short human form of a duration for reports: `850us`, `2.41ms`, `1.20s`.
pub fn human(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.0}us", ns as f64 / 1e3)
    } else if ns < 10_000_000 {
        format!("{:.2}ms", ns as f64 / 1e6)
    } else if ns < 100_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else if ns < 1_000_000_000 {
        format!("{:.0}ms", ns as f64 / 1e6)
    } else {
        format!("{:.2}s", ns as f64 / 1e9)
    }
}

/// How fast `palisade load` sends.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Rate {
    /// Open loop: this many events per second in all, whatever the answers do.
    PerSecond(f64),
    /// Closed loop: as fast as the in-flight window allows.
    Max,
}

impl std::str::FromStr for Rate {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Rate, UnitError> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let number = text.strip_suffix("/s").unwrap_or(text);
        match number.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Rate::PerSecond(r)),
            _ => Err(UnitError::Rate {
                text: text.to_string(),
            }),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(r) => write!(f, "{r}/s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(parse_span("0"), Ok(Duration::ZERO));
        assert_eq!(parse_span("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_span("2ms"), Ok(Duration::from_millis(2)));
        assert_eq!(parse_span("10s"), Ok(Duration::from_secs(10)));
        assert!(matches!(parse_span("1.5us"), Err(UnitError::Micros { .. })));
        assert!(matches!(parse_span("+5us"), Err(UnitError::Micros { .. })));
        assert!(matches!(parse_span("5"), Err(UnitError::Duration { .. })));
        assert!(parse_span("5").unwrap_err().to_string().contains("500us"));
    }

    #[test]
    fn rates() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("5000".parse::<Rate>(), Ok(Rate::PerSecond(5000.0)));
        assert_eq!("2.5/s".parse::<Rate>(), Ok(Rate::PerSecond(2.5)));
        for bad in ["0", "-1", "fast", "inf", "NaN", "10/m"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(human(Duration::from_nanos(850)), "850ns");
        assert_eq!(human(Duration::from_micros(850)), "850us");
        assert_eq!(human(Duration::from_micros(2410)), "2.41ms");
        assert_eq!(human(Duration::from_millis(1200)), "1.20s");
        assert_eq!(human(Duration::from_millis(500)), "500ms");
        assert_eq!(human(Duration::from_micros(27_430)), "27.4ms");
    }
}
