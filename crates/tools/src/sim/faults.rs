//! Scheduled outages for drills: `--fault graceful@10s,hang@20s,crash@30s,recover@40s`, times
//! relative to the simulator's start, and the shared state the connections obey.
//!
//! What each mode means (docs/protocol.md §5 names the outages the gateway must tell apart):
//! - `graceful`: every stream gets `<stream:error><system-shutdown/></stream:error>` and
//!   `</stream:stream>`; new streams are answered the same way, so none becomes active;
//! - `hang`: streams stay open but are neither read nor answered, and new connections wait in
//!   the listen backlog (or are not dialed);
//! - `crash`: every connection is reset (TCP RST, nothing flushed, pending answers lost) and new
//!   ones are refused (the listening socket is closed: `ECONNREFUSED`);
//! - `recover`: back to normal; what a hang held is read and answered.
//!
//! Owns the syntax, the schedule and the mode word; must not touch sockets (the listener and the
//! connections act on the mode).

use crate::units::{parse_span, UnitError};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::time::Duration;

/// One scheduled change.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Graceful,
    Hang,
    Crash,
    Recover,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Graceful => "graceful",
            Fault::Hang => "hang",
            Fault::Crash => "crash",
            Fault::Recover => "recover",
        }
    }

    fn mode(self) -> Mode {
        match self {
            Fault::Graceful => Mode::Graceful,
            Fault::Hang => Mode::Hang,
            Fault::Crash => Mode::Crash,
            Fault::Recover => Mode::Normal,
        }
    }
}

/// What the simulator is doing now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Graceful,
    Hang,
    Crash,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Graceful => "graceful",
            Mode::Hang => "hang",
            Mode::Crash => "crash",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// An item without `@`.
    NoTime(String),
    UnknownFault(String),
    Time(UnitError),
    /// Two changes at the same instant: which one wins would be arbitrary.
    SameTime(String),
}

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultError::NoTime(item) => {
                write!(f, "bad fault {item:?}: write KIND@TIME, e.g. crash@30s")
            }
            FaultError::UnknownFault(kind) => write!(
                f,
                "unknown fault {kind:?}: expected graceful, hang, crash or recover"
            ),
            FaultError::Time(e) => write!(f, "bad fault time: {e}"),
            FaultError::SameTime(item) => {
                write!(f, "fault {item:?} is at the same time as another one")
            }
        }
    }
}

impl std::error::Error for FaultError {}

/// The changes, sorted by time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    steps: Vec<(Duration, Fault)>,
}

impl std::str::FromStr for Schedule {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Schedule, FaultError> {
        let mut steps = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, at) = item
                .split_once('@')
                .ok_or_else(|| FaultError::NoTime(item.to_string()))?;
            let fault = match kind.trim() {
                "graceful" => Fault::Graceful,
                "hang" => Fault::Hang,
                "crash" => Fault::Crash,
                "recover" => Fault::Recover,
                other => return Err(FaultError::UnknownFault(other.to_string())),
            };
            let at = parse_span(at.trim()).map_err(FaultError::Time)?;
            if steps.iter().any(|&(t, _)| t == at) {
                return Err(FaultError::SameTime(item.to_string()));
            }
            steps.push((at, fault));
        }
        steps.sort_by_key(|&(t, _)| t);
        Ok(Schedule { steps })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .steps
            .iter()
            .map(|(t, k)| format!("{}@{}", k.name(), crate::units::human(*t)))
            .collect();
        f.write_str(&items.join(","))
    }
}

impl Schedule {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn steps(&self) -> &[(Duration, Fault)] {
        &self.steps
    }

    /// The mode in force `elapsed` after the start.
    pub fn mode_at(&self, elapsed: Duration) -> Mode {
        self.steps
            .iter()
            .take_while(|&&(t, _)| t <= elapsed)
            .last()
            .map_or(Mode::Normal, |&(_, f)| f.mode())
    }

    /// When the next change after `elapsed` happens.
    pub fn next_after(&self, elapsed: Duration) -> Option<Duration> {
        self.steps.iter().map(|&(t, _)| t).find(|&t| t > elapsed)
    }
}

/// The mode every connection obeys, with a count of each disruptive change so that a
/// connection notices a `crash` (or `graceful`) even when a `recover` followed it before the
/// connection looked.
#[derive(Debug, Default)]
pub struct FaultState {
    mode: AtomicU8,
    crashes: AtomicU32,
    gracefuls: AtomicU32,
}

/// What a connection remembers of the fault state when it starts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Epoch {
    crashes: u32,
    gracefuls: u32,
}

impl FaultState {
    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Acquire) {
            1 => Mode::Graceful,
            2 => Mode::Hang,
            3 => Mode::Crash,
            _ => Mode::Normal,
        }
    }

    pub fn epoch(&self) -> Epoch {
        Epoch {
            crashes: self.crashes.load(Ordering::Acquire),
            gracefuls: self.gracefuls.load(Ordering::Acquire),
        }
    }

    /// What a connection that started at `since` must do now: `Crash` and `Graceful` if such a
    /// change happened since (a crash wins), else the current mode.
    pub fn for_connection(&self, since: Epoch) -> Mode {
        let now = self.epoch();
        if now.crashes != since.crashes {
            Mode::Crash
        } else if now.gracefuls != since.gracefuls {
            Mode::Graceful
        } else {
            self.mode()
        }
    }

    /// Switches to `mode`; returns false when it was already in force.
    pub fn set(&self, mode: Mode) -> bool {
        let code = match mode {
            Mode::Normal => 0,
            Mode::Graceful => 1,
            Mode::Hang => 2,
            Mode::Crash => 3,
        };
        if self.mode.swap(code, Ordering::AcqRel) == code {
            return false;
        }
        match mode {
            Mode::Crash => {
                self.crashes.fetch_add(1, Ordering::AcqRel);
            }
            Mode::Graceful => {
                self.gracefuls.fetch_add(1, Ordering::AcqRel);
            }
            Mode::Normal | Mode::Hang => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_the_documented_schedule() {
        let sch: Schedule = "graceful@10s,hang@20s,crash@30s,recover@40s"
            .parse()
            .unwrap();
        assert_eq!(
            sch.steps(),
            &[
                (s(10), Fault::Graceful),
                (s(20), Fault::Hang),
                (s(30), Fault::Crash),
                (s(40), Fault::Recover)
            ]
        );
        assert_eq!(sch.mode_at(s(0)), Mode::Normal);
        assert_eq!(sch.mode_at(s(10)), Mode::Graceful);
        assert_eq!(sch.mode_at(s(25)), Mode::Hang);
        assert_eq!(sch.mode_at(s(35)), Mode::Crash);
        assert_eq!(sch.mode_at(s(99)), Mode::Normal);
        assert_eq!(sch.next_after(s(10)), Some(s(20)));
        assert_eq!(sch.next_after(s(40)), None);
        assert_eq!(
            sch.to_string(),
            "graceful@10.00s,hang@20.00s,crash@30.00s,recover@40.00s"
        );
    }

    #[test]
    fn order_and_units_and_errors() {
        let sch: Schedule = "recover@2s, crash@500ms".parse().unwrap();
        assert_eq!(
            sch.steps(),
            &[
                (Duration::from_millis(500), Fault::Crash),
                (s(2), Fault::Recover)
            ]
        );
        assert_eq!("".parse::<Schedule>().unwrap(), Schedule::default());
        assert!(matches!(
            "crash".parse::<Schedule>(),
            Err(FaultError::NoTime(_))
        ));
        assert!(matches!(
            "explode@1s".parse::<Schedule>(),
            Err(FaultError::UnknownFault(_))
        ));
        assert!(matches!(
            "crash@1".parse::<Schedule>(),
            Err(FaultError::Time(_))
        ));
        assert!(matches!(
            "crash@1s,hang@1000ms".parse::<Schedule>(),
            Err(FaultError::SameTime(_))
        ));
    }

    #[test]
    fn a_connection_sees_a_crash_even_after_recovery() {
        let st = FaultState::default();
        let before = st.epoch();
        assert_eq!(st.for_connection(before), Mode::Normal);
        assert!(!st.set(Mode::Normal));
        assert!(st.set(Mode::Hang));
        assert_eq!(st.for_connection(before), Mode::Hang);
        assert!(st.set(Mode::Crash));
        assert!(st.set(Mode::Normal));
        assert_eq!(st.mode(), Mode::Normal);
        assert_eq!(st.for_connection(before), Mode::Crash);
        // A connection made after the recovery is unaffected.
        assert_eq!(st.for_connection(st.epoch()), Mode::Normal);
        let mid = st.epoch();
        st.set(Mode::Graceful);
        st.set(Mode::Normal);
        assert_eq!(st.for_connection(mid), Mode::Graceful);
    }
}
