//! What a shard counts: every event's terminal state (overall, per event name, per deciding
//! profile and server), per-server step outcomes, and per-server answer latency.
//!
//! Plain data with `merge` so shards' copies can be summed for status and metrics; counting is
//! the engine's job, formatting the admin layer's.

use crate::policy::{EventId, ProfileId, ServerId};
use hdrhistogram::Histogram;

/// How an event ended (docs/protocol.md §5).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Terminal {
    /// Every step passed it: the router delivers it (maybe modified).
    Pass,
    /// A server took it over: the router delivers nothing, the server acts for it.
    Handle,
    /// Refused back to its sender, with the cause.
    Bounce,
    /// Discarded without a word to the sender (bounce with fire-and-forget).
    Drop,
    /// A pass that came from an error or a timeout.
    FailedOpen,
}

impl Terminal {
    /// Every terminal state, in [`Terminal::index`] order (for tables and metrics).
    pub const ALL: [Terminal; 5] = [
        Terminal::Pass,
        Terminal::Handle,
        Terminal::Bounce,
        Terminal::Drop,
        Terminal::FailedOpen,
    ];

    /// Its column in a [`TerminalCounts`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in metrics and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Terminal::Pass => "pass",
            Terminal::Handle => "handle",
            Terminal::Bounce => "bounce",
            Terminal::Drop => "drop",
            Terminal::FailedOpen => "failed_open",
        }
    }
}

/// Counts indexed by [`Terminal::index`].
pub type TerminalCounts = [u64; 5];

/// Outcomes of steps on one server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerCounters {
    /// Wait-mode requests written.
    pub sent: u64,
    /// Fire-and-forget notifications written.
    pub notified: u64,
    /// Answers PASS with the stanza unchanged.
    pub passed: u64,
    /// Answers PASS with a modified stanza.
    pub modified: u64,
    /// Answers HANDLE.
    pub handled: u64,
    /// Answers with an error (the step failed as its handling says).
    pub errors: u64,
    /// Steps whose event timer fired before the answer came.
    pub timeouts: u64,
    /// Answers refused by the PASS-only rules (treated as a plain PASS) or unreadable.
    pub protocol_violations: u64,
    /// Answers to requests no longer waiting (after a timeout or a move).
    pub late_answers: u64,
    /// Steps that failed at once because the server's queue was full.
    pub queue_full: u64,
    /// Requests sent again after the stream they went out on was lost.
    pub resent: u64,
    /// Requests moved to another server after this one left the ring.
    pub moved_away: u64,
    /// Notifications lost because the server stayed away past their timer.
    pub notifications_lost: u64,
    /// Requests and notifications the runtime could not write yet (the stream's output was
    /// full, or it was going away): queued again in their place, to go out once there is room.
    pub deferred: u64,
}

impl ServerCounters {
    fn merge(&mut self, o: &ServerCounters) {
        self.sent += o.sent;
        self.notified += o.notified;
        self.passed += o.passed;
        self.modified += o.modified;
        self.handled += o.handled;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        self.protocol_violations += o.protocol_violations;
        self.late_answers += o.late_answers;
        self.queue_full += o.queue_full;
        self.resent += o.resent;
        self.moved_away += o.moved_away;
        self.notifications_lost += o.notifications_lost;
        self.deferred += o.deferred;
    }
}

/// Everything one shard counted. See the module documentation.
#[derive(Clone, Debug)]
pub struct Counters {
    /// Events accepted by this shard's engine.
    pub received: u64,
    /// Events that reached each terminal state (their verdicts released).
    pub terminal: TerminalCounts,
    /// Per event name.
    pub by_event: Vec<TerminalCounts>,
    /// `[profile][server + 1]`: the step that decided. Server column 0 is "no server" (the
    /// step had none routable); the last row, past every profile, counts events no step decided
    /// (an empty chain, or a pass through every step).
    pub by_decider: Vec<Vec<TerminalCounts>>,
    /// Per server, by id: how its steps went.
    pub servers: Vec<ServerCounters>,
    /// Answer latency per server, microseconds.
    pub latency: Vec<Histogram<u64>>,
    /// The exact sum of each server's answer latencies, microseconds.
    pub latency_sum_us: Vec<u64>,
    /// Gateway residence time of every released verdict, microseconds.
    pub residence: Histogram<u64>,
    /// The exact sum of those residence times, microseconds.
    pub residence_sum_us: u64,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 h at 3 significant digits: constant, valid bounds.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

impl Counters {
    /// Zero counts for `profiles` profiles and `servers` servers.
    pub fn new(profiles: usize, servers: usize) -> Counters {
        Counters {
            received: 0,
            terminal: [0; 5],
            by_event: vec![[0; 5]; EventId::COUNT],
            by_decider: vec![vec![[0; 5]; servers + 1]; profiles + 1],
            servers: vec![ServerCounters::default(); servers],
            latency: (0..servers).map(|_| histogram()).collect(),
            latency_sum_us: vec![0; servers],
            residence: histogram(),
            residence_sum_us: 0,
        }
    }

    /// Makes room for the profiles and servers a reload added (ids only ever grow).
    pub fn grow(&mut self, profiles: usize, servers: usize) {
        if servers > self.servers.len() {
            self.servers.resize(servers, ServerCounters::default());
        }
        while self.latency.len() < servers {
            self.latency.push(histogram());
        }
        if servers > self.latency_sum_us.len() {
            self.latency_sum_us.resize(servers, 0);
        }
        let columns = self.servers.len() + 1;
        // The last row counts undecided events: it stays last.
        let undecided = self.by_decider.pop().unwrap_or_default();
        while self.by_decider.len() < profiles {
            self.by_decider.push(Vec::new());
        }
        self.by_decider.push(undecided);
        for row in &mut self.by_decider {
            row.resize(columns, [0; 5]);
        }
    }

    /// One server's step tallies, to count an outcome.
    pub(super) fn server_mut(&mut self, server: ServerId) -> Option<&mut ServerCounters> {
        self.servers.get_mut(server.index())
    }

    /// An answer from `server` came `micros` after its request was written.
    pub(super) fn record_answer(&mut self, server: ServerId, micros: u64) {
        if let Some(h) = self.latency.get_mut(server.index()) {
            h.saturating_record(micros.max(1));
        }
        if let Some(sum) = self.latency_sum_us.get_mut(server.index()) {
            *sum += micros;
        }
    }

    /// A verdict left after `micros` in the gateway: counted overall, per event name and per
    /// deciding step (`decider`: its profile and server; `None` when no step decided).
    pub(super) fn count_terminal(
        &mut self,
        event: EventId,
        terminal: Terminal,
        decider: Option<(ProfileId, Option<ServerId>)>,
        micros: u64,
    ) {
        let t = terminal.index();
        self.terminal[t] += 1;
        if let Some(e) = self.by_event.get_mut(event.index()) {
            e[t] += 1;
        }
        let (profile, server) = match decider {
            Some((p, s)) => (p.index(), s.map_or(0, |s| s.index() + 1)),
            // No step decided (an empty chain, or a pass through every step): the last row.
            None => (self.by_decider.len() - 1, 0),
        };
        if let Some(row) = self.by_decider.get_mut(profile) {
            if let Some(cell) = row.get_mut(server) {
                cell[t] += 1;
            }
        }
        self.residence.saturating_record(micros.max(1));
        self.residence_sum_us += micros;
    }

    /// Events that have reached a terminal state.
    pub fn terminal_total(&self) -> u64 {
        self.terminal.iter().sum()
    }

    /// Adds another shard's counts.
    pub fn merge(&mut self, o: &Counters) {
        // Shards that applied a reload before the others count more profiles and servers.
        self.grow(o.by_decider.len().saturating_sub(1), o.servers.len());
        self.received += o.received;
        add(&mut self.terminal, &o.terminal);
        for (a, b) in self.by_event.iter_mut().zip(&o.by_event) {
            add(a, b);
        }
        let add_row = |pa: &mut Vec<TerminalCounts>, pb: &Vec<TerminalCounts>| {
            for (a, b) in pa.iter_mut().zip(pb) {
                add(a, b);
            }
        };
        if let (Some((mine, my_rows)), Some((theirs, their_rows))) =
            (self.by_decider.split_last_mut(), o.by_decider.split_last())
        {
            add_row(mine, theirs);
            for (pa, pb) in my_rows.iter_mut().zip(their_rows) {
                add_row(pa, pb);
            }
        }
        for (a, b) in self.servers.iter_mut().zip(&o.servers) {
            a.merge(b);
        }
        for (a, b) in self.latency.iter_mut().zip(&o.latency) {
            let _ = a.add(b);
        }
        for (a, b) in self.latency_sum_us.iter_mut().zip(&o.latency_sum_us) {
            *a += b;
        }
        let _ = self.residence.add(&o.residence);
        self.residence_sum_us += o.residence_sum_us;
    }
}

fn add(a: &mut TerminalCounts, b: &TerminalCounts) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
