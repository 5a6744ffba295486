//! How long the simulator waits before answering: nothing, a fixed delay, or a distribution
//! (`--latency 2ms`, `uniform:1ms..5ms`, `exp:2ms`).
//!
//! Owns the syntax and the sampling; must not sleep or schedule anything (the connection's
//! delay queue does that with the sampled values).

use crate::rng::Rng;
use crate::units::{parse_span, UnitError};
use std::fmt;
use std::time::Duration;

/// A latency model. See the module documentation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Latency {
    /// Answer in the same batch as the request arrived.
    #[default]
    None,
    Fixed(Duration),
    /// Uniform between the two bounds (inclusive of the lower).
    Uniform(Duration, Duration),
    /// Exponential with this mean (memoryless service times: a server at the edge of its
    /// capacity). Capped at 50 times the mean so a single draw cannot stall a test.
    Exp(Duration),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LatencyError {
    Span(UnitError),
    /// `uniform:` without `A..B`.
    NoRange(String),
    /// `uniform:A..B` with `B < A`.
    Reversed(String),
    UnknownKind(String),
}

impl fmt::Display for LatencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyError::Span(e) => write!(f, "{e}"),
            LatencyError::NoRange(t) => {
                write!(
                    f,
                    "bad latency {t:?}: write uniform:LOW..HIGH, e.g. uniform:1ms..5ms"
                )
            }
            LatencyError::Reversed(t) => {
                write!(f, "bad latency {t:?}: the upper bound is below the lower")
            }
            LatencyError::UnknownKind(t) => write!(
                f,
                "bad latency {t:?}: expected a duration (2ms), uniform:1ms..5ms or exp:2ms"
            ),
        }
    }
}

impl std::error::Error for LatencyError {}

impl std::str::FromStr for Latency {
    type Err = LatencyError;

    fn from_str(text: &str) -> Result<Latency, LatencyError> {
        let span = |t: &str| parse_span(t).map_err(LatencyError::Span);
        let latency = match text.split_once(':') {
            None => match span(text)? {
                d if d.is_zero() => Latency::None,
                d => Latency::Fixed(d),
            },
            Some(("uniform", range)) => {
                let (low, high) = range
                    .split_once("..")
                    .ok_or_else(|| LatencyError::NoRange(text.to_string()))?;
                let (low, high) = (span(low)?, span(high)?);
                if high < low {
                    return Err(LatencyError::Reversed(text.to_string()));
                }
                Latency::Uniform(low, high)
            }
            Some(("exp", mean)) => match span(mean)? {
                d if d.is_zero() => Latency::None,
                d => Latency::Exp(d),
            },
            Some(_) => return Err(LatencyError::UnknownKind(text.to_string())),
        };
        Ok(latency)
    }
}

impl Latency {
    pub fn is_none(self) -> bool {
        self == Latency::None
    }

    /// One delay.
    pub fn sample(self, rng: &mut Rng) -> Duration {
        match self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform(low, high) => {
                let span = (high - low).as_nanos() as f64;
                low + Duration::from_nanos((rng.unit() * span) as u64)
            }
            Latency::Exp(mean) => {
                let mean = mean.as_nanos() as f64;
                let draw = -mean * (1.0 - rng.unit()).ln();
                Duration::from_nanos(draw.min(mean * 50.0) as u64)
            }
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::units::human;
        match self {
            Latency::None => f.write_str("none"),
            Latency::Fixed(d) => f.write_str(&human(*d)),
            Latency::Uniform(a, b) => write!(f, "uniform {}..{}", human(*a), human(*b)),
            Latency::Exp(m) => write!(f, "exponential, mean {}", human(*m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn syntax() {
        assert_eq!("0".parse(), Ok(Latency::None));
        assert_eq!("2ms".parse(), Ok(Latency::Fixed(ms(2))));
        assert_eq!(
            "uniform:1ms..5ms".parse(),
            Ok(Latency::Uniform(ms(1), ms(5)))
        );
        assert_eq!(
            "uniform:500us..1ms".parse(),
            Ok(Latency::Uniform(Duration::from_micros(500), ms(1)))
        );
        assert_eq!("exp:2ms".parse(), Ok(Latency::Exp(ms(2))));
        assert!(matches!(
            "uniform:5ms".parse::<Latency>(),
            Err(LatencyError::NoRange(_))
        ));
        assert!(matches!(
            "uniform:5ms..1ms".parse::<Latency>(),
            Err(LatencyError::Reversed(_))
        ));
        assert!(matches!(
            "normal:2ms".parse::<Latency>(),
            Err(LatencyError::UnknownKind(_))
        ));
        assert!(matches!("2".parse::<Latency>(), Err(LatencyError::Span(_))));
    }

    #[test]
    fn samples_stay_in_their_distribution() {
        let mut rng = Rng::new(3);
        assert_eq!(Latency::Fixed(ms(2)).sample(&mut rng), ms(2));
        let u = Latency::Uniform(ms(1), ms(5));
        let mut sum = Duration::ZERO;
        for _ in 0..10_000 {
            let d = u.sample(&mut rng);
            assert!(d >= ms(1) && d <= ms(5), "{d:?}");
            sum += d;
        }
        let mean = sum / 10_000;
        assert!(
            mean > ms(2) + Duration::from_micros(800) && mean < ms(3) + Duration::from_micros(200)
        );
        let e = Latency::Exp(ms(2));
        let mut sum = Duration::ZERO;
        for _ in 0..20_000 {
            let d = e.sample(&mut rng);
            assert!(d <= ms(100));
            sum += d;
        }
        let mean = sum / 20_000;
        assert!(
            mean > Duration::from_micros(1_900) && mean < Duration::from_micros(2_100),
            "{mean:?}"
        );
    }
}
