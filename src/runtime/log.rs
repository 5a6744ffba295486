//! The gateway's log, on `tracing`: the facade [`record`] every runtime module calls, the
//! subscriber that writes records to stderr (`text`: `STAMP LEVEL [shard N] message`, or
//! `json`: one object per line), the filter (`[log] level`, `RUST_LOG`, `--log-level`), the
//! bridge that brings the `log` records of glommio and other dependencies into it, and the
//! rate limit for records that could repeat once per event.
//!
//! The component state lines of docs/protocol.md §5 are written verbatim as the message (the
//! `msg` field in JSON). Records are rare (connections, alarms, violations), never one per
//! event at the default level, so a blocking write from the executor thread is acceptable;
//! per-event problems are counted, and their lines go through a [`RateLimit`]. Debug and
//! trace records are filtered before their text is built ([`enabled`]).
//!
//! The core (wire, protocol, policy, engine, admin) never logs: it returns what happened, and
//! the runtime decides what to write.

use crate::policy::{LogFormat, LogLevel};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer};

/// The target of the gateway's own records (dependencies' records keep theirs).
pub const TARGET: &str = "palisade";

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn from_tracing(level: tracing::Level) -> Level {
        match level {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::INFO => Level::Info,
            tracing::Level::DEBUG => Level::Debug,
            _ => Level::Trace,
        }
    }

    /// As the text format writes it, padded to five characters.
    fn padded(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

/// Writes one record (at the default level, debug and trace records are dropped).
pub fn record(level: Level, shard: Option<u16>, message: &str) {
    ensure_installed();
    match level {
        Level::Error => tracing::error!(target: TARGET, shard, "{message}"),
        Level::Warn => tracing::warn!(target: TARGET, shard, "{message}"),
        Level::Info => tracing::info!(target: TARGET, shard, "{message}"),
        Level::Debug => tracing::debug!(target: TARGET, shard, "{message}"),
        Level::Trace => tracing::trace!(target: TARGET, shard, "{message}"),
    }
}

/// Whether a record at `level` would be written: build a debug line's text only when it is.
pub fn enabled(level: Level) -> bool {
    ensure_installed();
    match level {
        Level::Error => tracing::enabled!(target: TARGET, tracing::Level::ERROR),
        Level::Warn => tracing::enabled!(target: TARGET, tracing::Level::WARN),
        Level::Info => tracing::enabled!(target: TARGET, tracing::Level::INFO),
        Level::Debug => tracing::enabled!(target: TARGET, tracing::Level::DEBUG),
        Level::Trace => tracing::enabled!(target: TARGET, tracing::Level::TRACE),
    }
}

// === the subscriber ===

/// What `palisade run` decided about its log: the filter directives and the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// A level (`info`) or `RUST_LOG`-style directives (`info,glommio=debug`).
    pub filter: String,
    pub format: LogFormat,
}

impl Settings {
    /// The filter is `--log-level` if given, else `RUST_LOG` if set and not empty, else
    /// `[log] level`; the format is `--log-format` if given, else `[log] format`.
    pub fn choose(
        flag_level: Option<&str>,
        rust_log: Option<&str>,
        flag_format: Option<LogFormat>,
        config: crate::policy::LogConfig,
    ) -> Settings {
        let filter = flag_level
            .or(rust_log.filter(|s| !s.trim().is_empty()))
            .map_or_else(|| config.level.as_str().to_owned(), str::to_owned);
        Settings {
            filter,
            format: flag_format.unwrap_or(config.format),
        }
    }
}

/// Checks `filter` as `--log-level` or `RUST_LOG` would be read; the error says what is wrong.
pub fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("invalid log filter {filter:?}: {e}"))
}

static INSTALL: Once = Once::new();

/// Installs the process's subscriber with `settings`. The first call wins (a process has one
/// log); a record written before any call installs the default (`info`, text).
pub fn install(settings: &Settings) -> Result<(), String> {
    let filter = parse_filter(&settings.filter)?;
    let mut result = Ok(());
    INSTALL.call_once(|| result = install_now(filter, settings.format));
    result
}

fn ensure_installed() {
    INSTALL.call_once(|| {
        let filter = EnvFilter::new(LogLevel::default().as_str());
        let _ = install_now(filter, LogFormat::Text);
    });
}

fn install_now(filter: EnvFilter, format: LogFormat) -> Result<(), String> {
    let max = filter
        .max_level_hint()
        .and_then(|l| l.to_string().parse::<tracing_log::log::LevelFilter>().ok())
        .unwrap_or(tracing_log::log::LevelFilter::Trace);
    let writer = Writer {
        format,
        sink: Sink::Stderr,
    };
    let subscriber = tracing_subscriber::registry().with(writer.with_filter(filter));
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| format!("cannot install the log: {e}"))?;
    // The `log` records of glommio and other dependencies, as tracing events (their own
    // target, no shard). Another `log` logger already set keeps them (a test harness).
    let _ = tracing_log::LogTracer::builder().with_max_level(max).init();
    Ok(())
}

/// Writes each record that passes the filter as one line on stderr.
struct Writer {
    format: LogFormat,
    sink: Sink,
}

enum Sink {
    Stderr,
    #[cfg(test)]
    Buffer(std::sync::Arc<std::sync::Mutex<String>>),
}

impl<S: tracing::Subscriber> Layer<S> for Writer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        use tracing_log::NormalizeEvent;
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = format_line(
            self.format,
            SystemTime::now(),
            Level::from_tracing(*meta.level()),
            meta.target(),
            &fields,
        );
        match &self.sink {
            // A closed stderr must not take the gateway down.
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            #[cfg(test)]
            Sink::Buffer(b) => b.lock().unwrap().push_str(&line),
        }
    }
}

/// An event's fields: the message, the shard, and the rest as written.
#[derive(Default, Debug)]
struct Fields {
    msg: String,
    shard: Option<u64>,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, serde_json::Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, serde_json::Value::String(value.to_owned()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "shard" {
            self.shard = Some(value);
        } else {
            self.put(field, value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        match field.name() {
            "message" => {
                self.msg = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }
            }
            // What the `log` bridge adds: the record's own metadata, already in the line.
            name if name.starts_with("log.") => {}
            name => {
                self.rest.insert(name.to_owned(), value);
            }
        }
    }
}

fn format_line(
    format: LogFormat,
    now: SystemTime,
    level: Level,
    target: &str,
    fields: &Fields,
) -> String {
    let stamp = crate::protocol::stamp::format(now);
    match format {
        LogFormat::Text => {
            let mut line = format!("{stamp} {}", level.padded());
            if let Some(s) = fields.shard {
                let _ = write!(line, " [shard {s}]");
            }
            if target != TARGET {
                let _ = write!(line, " {target}:");
            }
            // One record, one line: a multi-line message (a dependency's pretty-printed error,
            // a diagnostic with its hint) continues on the same line.
            for (i, part) in fields.msg.lines().enumerate() {
                let part = if i == 0 { part } else { part.trim() };
                if i == 0 || !part.is_empty() {
                    let _ = write!(line, " {part}");
                }
            }
            for (k, v) in &fields.rest {
                match v {
                    serde_json::Value::String(s) => {
                        let _ = write!(line, " {k}={s:?}");
                    }
                    other => {
                        let _ = write!(line, " {k}={other}");
                    }
                }
            }
            line.push('\n');
            line
        }
        LogFormat::Json => {
            // Written by hand to keep the keys in this order (serde_json sorts a map's keys).
            let json = |v: &serde_json::Value| v.to_string();
            let shard = fields
                .shard
                .map_or_else(|| "null".to_owned(), |s| s.to_string());
            format!(
                "{{\"timestamp\":\"{stamp}\",\"level\":\"{}\",\"shard\":{shard},\"target\":{},\"msg\":{},\"fields\":{}}}\n",
                level.padded().trim_end(),
                json(&target.into()),
                json(&fields.msg.as_str().into()),
                json(&serde_json::Value::Object(fields.rest.clone())),
            )
        }
    }
}

// === rate limits ===

/// How often a rate-limited record may repeat by default.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Lets `burst` lines through per `window`, counting the ones it holds back, so that the next
/// line can say how many were suppressed. Time is a parameter.
#[derive(Debug)]
pub struct RateLimit {
    window: Duration,
    burst: u32,
    /// When the current window started, and the lines let through in it.
    current: Option<(Instant, u32)>,
    held_back: u64,
}

impl Default for RateLimit {
    /// One line per [`LOG_EVERY`].
    fn default() -> RateLimit {
        RateLimit::new(LOG_EVERY, 1)
    }
}

impl RateLimit {
    pub const fn new(window: Duration, burst: u32) -> RateLimit {
        RateLimit {
            window,
            burst,
            current: None,
            held_back: 0,
        }
    }

    /// Whether a line would be let through at `now` (nothing is counted).
    pub fn is_open(&self, now: Instant) -> bool {
        match self.current {
            Some((start, used)) => now.duration_since(start) >= self.window || used < self.burst,
            None => true,
        }
    }

    /// `Some(lines held back since the last one let through)` when a line may be written at
    /// `now`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match &mut self.current {
            Some((start, used)) if now.duration_since(*start) < self.window => {
                if *used >= self.burst {
                    self.held_back += 1;
                    return None;
                }
                *used += 1;
            }
            _ => self.current = Some((now, 1)),
        }
        Some(std::mem::take(&mut self.held_back))
    }
}

/// `" (N more suppressed since the last report)"`, or nothing for 0.
pub fn suppressed(held_back: u64) -> String {
    match held_back {
        0 => String::new(),
        n => format!(" ({n} more suppressed since the last report)"),
    }
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
    use super::*;

    #[test]
    fn os_errors_read_like_the_seed() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(
            super::os_error_text(&e),
            (111, "Connection refused".to_owned())
        );
    }

    fn fields(msg: &str, shard: Option<u64>) -> Fields {
        Fields {
            msg: msg.to_owned(),
            shard,
            rest: serde_json::Map::new(),
        }
    }

    #[test]
    fn text_lines_keep_the_seed_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_123);
        let f = fields("Component cs1.example.com is ACTIVE", Some(1));
        assert_eq!(
            format_line(LogFormat::Text, t, Level::Info, TARGET, &f),
            "1970-01-01T00:16:40.123Z INFO  [shard 1] Component cs1.example.com is ACTIVE\n"
        );
        let f = fields("Error: Os {\n    code: 12,\n}\n", Some(0));
        assert_eq!(
            format_line(LogFormat::Text, t, Level::Warn, "glommio::sys::uring", &f),
            "1970-01-01T00:16:40.123Z WARN  [shard 0] glommio::sys::uring: Error: Os { code: 12, }\n"
        );
        let mut f = fields("woke", None);
        f.rest.insert("fd".into(), 7.into());
        assert_eq!(
            format_line(LogFormat::Text, t, Level::Debug, "glommio::reactor", &f),
            "1970-01-01T00:16:40.123Z DEBUG glommio::reactor: woke fd=7\n"
        );
    }

    #[test]
    fn json_lines_are_one_object_with_the_message_verbatim() {
        let t = SystemTime::UNIX_EPOCH;
        let f = fields("Component \"x\" is GONE", Some(0));
        let line = format_line(LogFormat::Json, t, Level::Warn, TARGET, &f);
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["msg"], "Component \"x\" is GONE");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["shard"], 0);
        assert_eq!(v["target"], TARGET);
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000Z");
        assert!(v["fields"].as_object().unwrap().is_empty());
    }

    /// Runs `f` with a subscriber at `filter` writing text into the returned buffer.
    fn captured(filter: &str, f: impl FnOnce()) -> String {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let writer = Writer {
            format: LogFormat::Text,
            sink: Sink::Buffer(buffer.clone()),
        };
        let subscriber =
            tracing_subscriber::registry().with(writer.with_filter(parse_filter(filter).unwrap()));
        // The bridge is process-wide; another test may have set it already, which is as good.
        let _ = tracing_log::LogTracer::init();
        tracing::subscriber::with_default(subscriber, f);
        let text = buffer.lock().unwrap().clone();
        text
    }

    #[test]
    fn dependencies_log_records_reach_the_log_with_their_target() {
        let text = captured("info", || {
            tracing_log::log::warn!(target: "glommio::executor::stall", "a stall of 7ms");
            tracing_log::log::debug!(target: "glommio::sys", "not at info");
        });
        assert!(
            text.ends_with("WARN  glommio::executor::stall: a stall of 7ms\n"),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 1, "{text:?}");
    }

    #[test]
    fn records_carry_the_shard_and_debug_is_off_at_info() {
        let text = captured("info", || {
            record(Level::Info, Some(3), "Component c is ACTIVE");
            record(Level::Debug, Some(3), "a debug line");
        });
        assert!(
            text.ends_with("INFO  [shard 3] Component c is ACTIVE\n"),
            "{text:?}"
        );
        assert!(!text.contains("debug line"), "{text:?}");
        let text = captured("warn,palisade=debug", || {
            record(Level::Debug, None, "a debug line");
            tracing::info!(target: "glommio", "filtered");
        });
        assert!(text.ends_with("DEBUG a debug line\n"), "{text:?}");
        assert!(!text.contains("filtered"), "{text:?}");
    }

    #[test]
    fn the_flag_beats_rust_log_which_beats_the_file() {
        let file = crate::policy::LogConfig {
            level: LogLevel::Warn,
            format: LogFormat::Json,
        };
        let s = Settings::choose(None, None, None, file);
        assert_eq!((s.filter.as_str(), s.format), ("warn", LogFormat::Json));
        let s = Settings::choose(None, Some("debug"), None, file);
        assert_eq!(s.filter, "debug");
        let s = Settings::choose(None, Some(" "), None, file);
        assert_eq!(s.filter, "warn");
        let s = Settings::choose(Some("trace"), Some("debug"), Some(LogFormat::Text), file);
        assert_eq!((s.filter.as_str(), s.format), ("trace", LogFormat::Text));
    }

    #[test]
    fn filters_are_checked() {
        assert!(parse_filter("info,glommio=debug").is_ok());
        assert!(parse_filter("palisade=loud").is_err());
    }

    #[test]
    fn a_burst_passes_then_the_next_window_reports_what_was_held_back() {
        let mut r = RateLimit::new(Duration::from_secs(1), 3);
        let t = Instant::now();
        let seen: Vec<_> = (0..5).map(|_| r.allow(t)).collect();
        assert_eq!(seen, [Some(0), Some(0), Some(0), None, None]);
        assert!(!r.is_open(t));
        assert!(r.is_open(t + Duration::from_secs(1)));
        assert_eq!(r.allow(t + Duration::from_secs(1)), Some(2));
        assert_eq!(r.allow(t + Duration::from_secs(1)), Some(0));
        assert_eq!(suppressed(2), " (2 more suppressed since the last report)");
        assert_eq!(suppressed(0), "");
    }
}
