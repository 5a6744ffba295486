//! The simulator's archive (`--archive FILE`): one JSON line per event received, so that a
//! reconciliation can count what the compliance server saw against what the router was told.
//!
//! Connections serialize their records into a per-batch buffer and hand whole batches to one
//! writer thread over a bounded channel (a slow disk slows the simulator down rather than
//! growing its memory). The writer flushes to the file within 100 ms of receiving data and on
//! exit. Must not decide what is recorded: [`Record`] is filled by the connection.

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use serde::Serialize;
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Data reaches the file at most this long after it reached the writer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// One archived event. Field names are the archive's format; keep them stable.
#[derive(Serialize, Debug)]
pub struct Record<'a> {
    /// The simulator's own sequence number, unique across its streams.
    pub sim_id: u64,
    /// Milliseconds since the simulator started.
    pub t_ms: f64,
    /// The stream (connection) number, in accept or dial order.
    pub conn: u32,
    /// The stream's component NAME (what the gateway calls this server).
    pub component: &'a str,
    /// The request's `from`: the gateway.
    pub from: Option<Cow<'a, str>>,
    /// The gateway's request id.
    pub id: Option<Cow<'a, str>>,
    pub event: Option<Cow<'a, str>>,
    /// `wait` or `notify`, as the outer element says.
    pub mode: &'static str,
    pub packet: Option<Cow<'a, str>>,
    pub profile: Option<Cow<'a, str>>,
    pub handling: Option<Cow<'a, str>>,
    pub key: Option<Cow<'a, str>>,
    pub stamp: Option<Cow<'a, str>>,
    pub node: Option<Cow<'a, str>>,
    /// The embedded stanza, exactly as received.
    pub stanza: Cow<'a, str>,
    /// `pass`, `pass-modified`, `handle`, `error`, or `none` for a notification.
    pub answer: &'static str,
    /// The rule that decided, if one did (`--error-rate` and `--handle-rate` say so too).
    pub rule: Option<&'a str>,
}

impl Record<'_> {
    /// Appends the record and a newline to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        // Serializing plain strings and numbers into a Vec cannot fail.
        if serde_json::to_writer(&mut *out, self).is_ok() {
            out.push(b'\n');
        }
    }
}

/// The writer thread and the way to reach it.
pub struct Archive {
    tx: Sender<Vec<u8>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<()>>,
}

impl Archive {
    /// Creates (truncates) `path` and starts the writer.
    pub fn create(path: &Path) -> io::Result<Archive> {
        let file = File::create(path)?;
        let (tx, rx) = bounded::<Vec<u8>>(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sim-archive".into())
            .spawn(move || write_loop(BufWriter::with_capacity(1 << 20, file), rx, &stop2))?;
        Ok(Archive { tx, stop, thread })
    }

    /// A handle for one connection.
    pub fn sender(&self) -> Sender<Vec<u8>> {
        self.tx.clone()
    }

    /// Writes everything received so far and stops the writer; waits at most `limit` for
    /// connections still holding a sender to hand over their last batch.
    pub fn finish(self, limit: Duration) -> io::Result<()> {
        drop(self.tx);
        let deadline = Instant::now() + limit;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Release);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(io::Error::other("the archive writer panicked")),
        }
    }
}

fn write_loop<W: Write>(mut w: W, rx: Receiver<Vec<u8>>, stop: &AtomicBool) -> io::Result<()> {
    let mut dirty_since: Option<Instant> = None;
    loop {
        let wait = dirty_since.map_or(FLUSH_EVERY, |t| {
            (t + FLUSH_EVERY).saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(batch) => {
                w.write_all(&batch)?;
                dirty_since.get_or_insert_with(Instant::now);
            }
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Acquire) && rx.is_empty() {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if dirty_since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY) {
            w.flush()?;
            dirty_since = None;
        }
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stanza: &str) -> Record<'_> {
        Record {
            sim_id: 7,
            t_ms: 1.5,
            conn: 0,
            component: "op-cs1.palisade-example-com",
            from: Some("palisade.example.com".into()),
            id: Some("g0.1.1".into()),
            event: Some("es_OUT".into()),
            mode: "wait",
            packet: Some("message".into()),
            profile: Some("EthicalWall".into()),
            handling: Some("bounce".into()),
            key: Some("a@x|b@x".into()),
            stamp: Some("2026-11-21T10:00:00.123Z".into()),
            node: Some("imp1".into()),
            stanza: stanza.into(),
            answer: "pass",
            rule: None,
        }
    }

    #[test]
    fn one_json_object_per_line_with_the_documented_fields() {
        let mut out = Vec::new();
        record("<message to='b@x'><body>a \"quoted\"\nline</body></message>").write_line(&mut out);
        record("<presence/>").write_line(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        for field in [
            "sim_id",
            "t_ms",
            "conn",
            "component",
            "from",
            "id",
            "event",
            "mode",
            "packet",
            "profile",
            "handling",
            "key",
            "stamp",
            "node",
            "stanza",
            "answer",
            "rule",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(
            v["stanza"],
            "<message to='b@x'><body>a \"quoted\"\nline</body></message>"
        );
        assert_eq!(v["rule"], serde_json::Value::Null);
        assert_eq!(v["event"], "es_OUT");
    }

    #[test]
    fn the_writer_flushes_without_being_closed() {
        let dir = std::env::temp_dir().join(format!("palisade-archive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.jsonl");
        let archive = Archive::create(&path).unwrap();
        let tx = archive.sender();
        let mut batch = Vec::new();
        record("<presence/>").write_line(&mut batch);
        tx.send(batch).unwrap();
        // Still open (the sender lives): the data must reach the file within FLUSH_EVERY.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut lines = 0;
        while Instant::now() < deadline && lines == 0 {
            std::thread::sleep(Duration::from_millis(20));
            lines = std::fs::read_to_string(&path).unwrap().lines().count();
        }
        assert_eq!(lines, 1);
        drop(tx);
        archive.finish(Duration::from_secs(1)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
