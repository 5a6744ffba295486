//! One router connection of `palisade load`: dial and handshake, wait for the common start,
//! then send events at the planned pace and check every verdict that comes back, until the
//! run ends and the drain period is over.
//!
//! Pacing (why latencies are honest):
//! - open loop (`--rate N`): event `k` of a connection is *meant* to leave at `k / rate`; each
//!   pass of the loop writes every event due by now, and its latency is measured from that
//!   intended time. When the peer or this process stalls, the events that pile up keep their
//!   intended times, so the stall shows in the latencies (coordinated omission corrected);
//! - closed loop (`--rate max`): a window of `--in-flight` events per connection; latency from
//!   the actual write.
//!
//! Events are written straight into the stream's output buffer and leave in one `write(2)` per
//! pass; verdicts are read many per `read(2)`. Must not print: the main thread reports.

use super::gen::Generator;
use super::stats::{Live, Tally};
use super::track::{Check, Tracker};
use super::verdict::{self, Action, Reading};
use crate::net::{self, Link, READ_CHUNK};
use crate::policy::EventId;
use crate::protocol::service;
use crate::signal;
use crate::wire::StreamEvent;
use crossbeam_channel::{Receiver, Sender};
use std::time::{Duration, Instant};

/// At most this many events are written per pass (about 1.6 MB of chat).
const MAX_BATCH: u64 = 4096;
/// Past this much unwritten output, no more events are generated until the peer reads.
const MAX_BACKLOG: usize = 32 << 20;
const READ_BUDGET: usize = 4 * READ_CHUNK;
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// The longest the loop sleeps when nothing is due.
const IDLE: Duration = Duration::from_millis(10);

/// How fast one connection sends.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Pacing {
    /// Events per second on this connection.
    Open { per_sec: f64 },
    /// Events outstanding on this connection.
    Closed { window: u64 },
}

/// What one connection is asked to do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub conn: u32,
    pub addr: String,
    pub name: String,
    pub secret: Vec<u8>,
    pub pacing: Pacing,
    /// Events to send on this connection (`--events` shared out), if bounded.
    pub limit: Option<u64>,
    /// Stop generating this long after the start (`--duration`), if bounded.
    pub duration: Option<Duration>,
    pub drain: Duration,
    /// Keep every answer's sequence number and action (`--verdict-log`).
    pub log_verdicts: bool,
}

/// How one connection's run ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub conn: u32,
    pub sent: u64,
    pub unanswered: u64,
    /// The first few unanswered ids.
    pub unanswered_ids: Vec<String>,
    /// The stream ended before the run did (or could not be closed cleanly), and why.
    pub lost: Option<String>,
    /// When generation stopped and when the last verdict arrived, since the start.
    pub generation_ended: Duration,
    pub last_verdict: Duration,
    /// Events sent, by catalog index.
    pub sent_by_event: Vec<u64>,
    /// Every answer's sequence number and action, when the plan asked for them.
    pub verdicts: Vec<(u64, &'static str)>,
}

/// Dials, reports readiness on `ready`, waits for the start time on `go` (`None` aborts), runs.
pub fn run(
    plan: Plan,
    mut gen: Generator,
    live: &Live,
    ready: Sender<Result<u32, String>>,
    go: Receiver<Option<Instant>>,
) -> Outcome {
    let config = net::tool_config(None);
    let link = match net::dial(
        &plan.addr,
        &plan.name,
        &plan.secret,
        config,
        Duration::from_secs(5),
    ) {
        Ok(l) => {
            let _ = ready.send(Ok(plan.conn));
            l
        }
        Err(e) => {
            let _ = ready.send(Err(format!("connection {}: {e}", plan.conn)));
            return Outcome {
                conn: plan.conn,
                lost: Some(e.to_string()),
                ..Outcome::default()
            };
        }
    };
    let Ok(Some(start)) = go.recv() else {
        link.close_gracefully(Duration::from_millis(200));
        return Outcome {
            conn: plan.conn,
            ..Outcome::default()
        };
    };
    let now = Instant::now();
    if start > now {
        std::thread::sleep(start - now);
    }
    let mut w = Worker {
        plan,
        link,
        tracker: Tracker::default(),
        tally: Tally::default(),
        start,
        live,
        last_verdict: Duration::ZERO,
        verdicts: Vec::new(),
    };
    let (generation_ended, lost) = w.run_loop(&mut gen);
    w.tally.publish(live);
    // Our end tag, so the peer sees a graceful close; never hold up the report for long.
    w.link.stream.close();
    let _ = w.link.flush_for(Duration::from_millis(200));
    Outcome {
        conn: w.plan.conn,
        sent: w.tracker.next_seq(),
        unanswered: w.tracker.outstanding(),
        unanswered_ids: w
            .tracker
            .unanswered(5)
            .into_iter()
            .map(|s| format!("e{:x}.{s:x}", w.plan.conn))
            .collect(),
        lost,
        generation_ended,
        last_verdict: w.last_verdict,
        sent_by_event: gen.counts[..EventId::COUNT].to_vec(),
        verdicts: std::mem::take(&mut w.verdicts),
    }
}

struct Worker<'a> {
    plan: Plan,
    link: Link,
    tracker: Tracker,
    tally: Tally,
    start: Instant,
    live: &'a Live,
    last_verdict: Duration,
    verdicts: Vec<(u64, &'static str)>,
}

impl Worker<'_> {
    fn since_start(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Runs until the drain is over. Returns when generation stopped and, if the stream was
    /// lost, why.
    fn run_loop(&mut self, gen: &mut Generator) -> (Duration, Option<String>) {
        let deadline = self.plan.duration.map(|d| self.start + d);
        let mut generating = true;
        let mut generation_ended = Duration::ZERO;
        let mut drain_until = None;
        let mut last_publish = Instant::now();
        let interval_ns = match self.plan.pacing {
            Pacing::Open { per_sec } => 1e9 / per_sec,
            Pacing::Closed { .. } => 0.0,
        };
        loop {
            let now = Instant::now();
            let t_ns = self.since_start(now);
            if generating {
                let done = signal::stop_requested()
                    || deadline.is_some_and(|d| now >= d)
                    || self
                        .plan
                        .limit
                        .is_some_and(|l| self.tracker.next_seq() >= l);
                if done {
                    generating = false;
                    generation_ended = now.saturating_duration_since(self.start);
                    drain_until = Some(now + self.plan.drain);
                }
            }
            if generating && self.link.backlog() < MAX_BACKLOG {
                self.generate(gen, t_ns, interval_ns);
            }
            // Whitespace keepalives when the run is quiet (a slow profile, a long drain).
            self.link.tick(now);
            if let Err(e) = self.link.flush() {
                return (generation_ended, Some(format!("write failed: {e}")));
            }
            if !generating
                && (self.tracker.outstanding() == 0 || drain_until.is_some_and(|d| now >= d))
            {
                return (generation_ended, None);
            }
            let timeout = match (generating, self.plan.pacing) {
                (true, Pacing::Open { .. }) if self.link.backlog() < MAX_BACKLOG => {
                    let next_ns = (self.tracker.next_seq() as f64 * interval_ns) as u64;
                    Duration::from_nanos(next_ns.saturating_sub(t_ns)).min(IDLE)
                }
                (false, _) => {
                    drain_until.map_or(IDLE, |d| d.saturating_duration_since(now).min(IDLE))
                }
                _ => IDLE,
            };
            if let Err(e) = self.link.wait(true, timeout) {
                return (generation_ended, Some(format!("poll failed: {e}")));
            }
            // A read error surfaces as the stream's close once the input read so far is used.
            let _ = self.link.read_some(READ_BUDGET, Instant::now());
            let received = Instant::now();
            if let Some(why) = self.take_verdicts(received) {
                return (
                    if generating {
                        received.saturating_duration_since(self.start)
                    } else {
                        generation_ended
                    },
                    Some(why),
                );
            }
            if last_publish.elapsed() >= PUBLISH_EVERY {
                self.tally.publish(self.live);
                last_publish = Instant::now();
            }
        }
    }

    /// Writes the events due now into the stream's output.
    fn generate(&mut self, gen: &mut Generator, t_ns: u64, interval_ns: f64) {
        let sent = self.tracker.next_seq();
        let mut target = match self.plan.pacing {
            // Event k is due at k * interval: events 0..=t/interval are due by now.
            Pacing::Open { .. } => (t_ns as f64 / interval_ns) as u64 + 1,
            Pacing::Closed { window } => sent + window.saturating_sub(self.tracker.outstanding()),
        };
        if let Some(limit) = self.plan.limit {
            target = target.min(limit);
        }
        let n = target.saturating_sub(sent).min(MAX_BATCH);
        if n == 0 {
            return;
        }
        let Some(out) = self.link.stream.writer() else {
            return;
        };
        for _ in 0..n {
            let seq = self.tracker.next_seq();
            let intended = match self.plan.pacing {
                Pacing::Open { .. } => (seq as f64 * interval_ns) as u64,
                Pacing::Closed { .. } => t_ns,
            };
            self.tracker.push(intended);
            gen.write_event(out, seq);
        }
        self.tally.counts.sent += n;
    }

    /// Handles every stanza read so far; returns why the stream ended, if it did.
    fn take_verdicts(&mut self, received: Instant) -> Option<String> {
        let now_ns = self.since_start(received);
        let mut any = false;
        while let Some(ev) = self.link.poll_event() {
            let s = match ev {
                StreamEvent::Stanza(s) => s,
                StreamEvent::Closed(c) => {
                    return Some(format!("the stream ended: {}", net::closed(&c)));
                }
                StreamEvent::NameAnnounced { .. } | StreamEvent::Active => continue,
            };
            match verdict::read(&s) {
                Reading::Verdict { id, action } => {
                    if self.check(id, now_ns, "verdict") {
                        any = true;
                        let c = &mut self.tally.counts;
                        let name = match action {
                            Action::Pass => {
                                c.pass += 1;
                                "pass"
                            }
                            Action::PassModified => {
                                c.pass_modified += 1;
                                "pass_modified"
                            }
                            Action::Handle => {
                                c.handle += 1;
                                "handle"
                            }
                            Action::Bounce => {
                                c.bounce += 1;
                                "bounce"
                            }
                            Action::Drop => {
                                c.drop += 1;
                                "drop"
                            }
                        };
                        self.log_verdict(id.seq, name);
                    }
                }
                Reading::BadRequest { id } => {
                    if self.check(id, now_ns, "bad-request") {
                        any = true;
                        self.tally.counts.bad_request += 1;
                        self.log_verdict(id.seq, "bad_request");
                    }
                }
                Reading::Error { id } => {
                    if self.check(id, now_ns, "error") {
                        any = true;
                        self.tally.counts.iq_error += 1;
                        self.log_verdict(id.seq, "error");
                    }
                }
                Reading::Malformed { id, what } => {
                    self.tally.counts.malformed += 1;
                    let raw = String::from_utf8_lossy(s.bytes());
                    let shown: String = raw.chars().take(200).collect();
                    self.live.note(format!(
                        "connection {}: malformed answer ({what}): {shown}",
                        self.plan.conn
                    ));
                    if let Some(id) = id {
                        // It was an answer to that event, if not a valid one: the event is
                        // not also reported as unanswered.
                        if id.conn == self.plan.conn {
                            let _ = self.tracker.answer(id.seq);
                        }
                    }
                }
                Reading::Request => {
                    self.tally.counts.requests += 1;
                    let name = self.plan.name.clone();
                    if let Some(out) = self.link.stream.writer() {
                        service::answer(out, &name, &s);
                    }
                }
                Reading::Other => {}
            }
        }
        if any {
            self.last_verdict = received.saturating_duration_since(self.start);
        }
        None
    }

    fn log_verdict(&mut self, seq: u64, action: &'static str) {
        if self.plan.log_verdicts {
            self.verdicts.push((seq, action));
        }
    }

    /// Checks an answer's id; true (and its latency recorded) when it was outstanding.
    fn check(&mut self, id: super::id::EventRef, now_ns: u64, what: &str) -> bool {
        if id.conn != self.plan.conn {
            self.tally.counts.misrouted += 1;
            self.live.note(format!(
                "connection {}: {what} for e{:x}.{:x}, an event of connection {}",
                self.plan.conn, id.conn, id.seq, id.conn
            ));
            return false;
        }
        match self.tracker.answer(id.seq) {
            Check::Expected { intended_ns } => {
                self.tally.counts.answered += 1;
                self.tally.record(now_ns.saturating_sub(intended_ns));
                true
            }
            Check::Duplicate => {
                self.tally.counts.duplicate += 1;
                self.live.note(format!(
                    "connection {}: a second {what} for e{:x}.{:x}",
                    self.plan.conn, id.conn, id.seq
                ));
                false
            }
            Check::Unknown => {
                self.tally.counts.unknown_id += 1;
                self.live.note(format!(
                    "connection {}: {what} for e{:x}.{:x}, which was never sent",
                    self.plan.conn, id.conn, id.seq
                ));
                false
            }
        }
    }
}
