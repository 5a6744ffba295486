//! The gateway's log: one line per record on stderr, `STAMP LEVEL [shard N] message`, with the
//! component state lines of docs/protocol.md §5 verbatim inside the message.
//!
//! Records are rare (connections, alarms, violations), never one per event, so a blocking
//! write from the executor thread is acceptable; per-event problems are counted, and their log
//! lines are rate-limited by the caller.

use std::io::Write;
use std::time::SystemTime;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
        }
    }
}

/// Writes one record.
pub fn record(level: Level, shard: Option<u16>, message: &str) {
    let stamp = crate::protocol::stamp::format(SystemTime::now());
    let line = match shard {
        Some(s) => format!("{stamp} {} [shard {s}] {message}\n", level.as_str()),
        None => format!("{stamp} {} {message}\n", level.as_str()),
    };
    // A closed stderr must not take the gateway down.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The text of an OS error without Rust's " (os error N)" suffix, for the seed's log format.
pub fn os_error_text(e: &std::io::Error) -> (i32, String) {
    let code = e.raw_os_error().unwrap_or(0);
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    (code, text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn os_errors_read_like_the_seed() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(
            super::os_error_text(&e),
            (111, "Connection refused".to_owned())
        );
    }
}
