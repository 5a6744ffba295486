//! The XEP-0114 component stream, both sides, as a sans-IO state machine (docs/protocol.md §1).
//!
//! Feed it received bytes and the current time; poll it for events (a name to look up, the
//! stream becoming active, stanzas, the stream closing) and for bytes to write; ask it when its
//! next timer is due. It owns the framer, the handshake, every stream error with the
//! header-first rule, the `from` check after activation, whitespace keepalives and the
//! handshake, stanza-completion and dead-peer timers.
//!
//! It never touches a socket, a clock or a random source: `now` and the stream id's random
//! bytes are parameters.

use super::error::{Condition, FrameError};
use super::framer::{Frame, Framer, Header};
use super::handshake;
use super::limits::Limits;
use super::stanza::{local, Stanza};
use super::write;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The component namespace a component connecting to a server uses.
pub const NS_ACCEPT: &str = "jabber:component:accept";
/// The component namespace a server connecting to a component uses.
pub const NS_CONNECT: &str = "jabber:component:connect";

/// Timers and limits of one stream.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// What the peer may send (stanza size, depth, attributes).
    pub limits: Limits,
    /// The stream must be active within this long of its creation.
    pub handshake_timeout: Duration,
    /// A started stanza must be complete within this long.
    pub stanza_timeout: Duration,
    /// Send a whitespace keepalive after this much quiet on our side.
    pub keepalive: Option<Duration>,
    /// Treat the peer as dead after this much silence.
    pub dead_interval: Option<Duration>,
}

impl StreamConfig {
    /// How often a driver that checks the timers on a fixed tick should look: an eighth of the
    /// shortest timer, between 5 ms and 1 s, so that no timer is late by more than that.
    pub fn timer_tick(&self) -> Duration {
        let shortest = [
            Some(self.handshake_timeout),
            Some(self.stanza_timeout),
            self.keepalive,
            self.dead_interval.map(|d| d / 2),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(1));
        (shortest / 8).clamp(Duration::from_millis(5), Duration::from_secs(1))
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
            stanza_timeout: Duration::from_secs(30),
            keepalive: Some(Duration::from_secs(30)),
            dead_interval: Some(Duration::from_secs(90)),
        }
    }
}

/// How the `from` of a peer's stanzas is checked once the stream is active.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FromCheck {
    /// The domain of `from` must be the peer's NAME (the peer is a component).
    PeerDomain,
    /// The domain of `from` must be NAME or a subdomain of it (the peer is a server relaying
    /// its users' stanzas).
    PeerDomainOrSubdomain,
    /// No check.
    None,
}

/// Which side of the handshake this stream plays.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opened the TCP connection: sends the header and proves the secret.
    Initiator,
    /// Accepted the TCP connection: answers with a stream id and checks the secret.
    Receiver,
}

/// What the stream reports to its driver.
// Stanzas are the hot path and move by value; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum StreamEvent {
    /// Receiver only: the initiator announced NAME. Answer with [`ComponentStream::accept_name`]
    /// or [`ComponentStream::refuse`] (`host-unknown`, `conflict`).
    NameAnnounced {
        /// The name from the initiator's stream header (`to`).
        name: String,
    },
    /// The handshake succeeded.
    Active,
    /// A stanza from the active peer.
    Stanza(Stanza),
    /// The stream is over; flush the output, then close the transport.
    Closed(Closed),
}

/// How a stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The peer ended its stream with `</stream:stream>`.
    PeerEnded,
    /// The peer sent a stream error, then (normally) its end tag.
    PeerError {
        /// The condition the peer gave.
        condition: Condition,
        /// The peer's `<text/>`, if any.
        text: Option<String>,
    },
    /// We refused what the peer did and sent this stream error: the peer's fault.
    Refused {
        /// The condition we sent.
        condition: Condition,
        /// Why, as the stream error's `<text/>` said it.
        reason: String,
    },
    /// The peer was silent past the dead interval.
    PeerSilent,
    /// We ended the stream ourselves.
    LocalEnded,
    /// The transport ended (EOF, reset, write error) without a stream close.
    TransportEnded,
}

impl Closed {
    /// Graceful ends are the ones where the peer (or we) closed the stream on purpose
    /// (docs/protocol.md §5); everything else is an ungraceful outage.
    pub fn is_graceful(&self) -> bool {
        matches!(
            self,
            Closed::PeerEnded | Closed::PeerError { .. } | Closed::LocalEnded
        )
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    AwaitingHeader,
    AwaitingDecision,
    AwaitingHandshake,
    Active,
    /// We sent our end tag and wait for the peer's.
    Closing,
    Closed,
}

/// One XEP-0114 stream. See the module documentation.
#[derive(Debug)]
pub struct ComponentStream {
    role: Role,
    state: State,
    config: StreamConfig,
    framer: Framer,
    out: BytesMut,
    events: VecDeque<StreamEvent>,
    namespace: String,
    /// The NAME of the stream (announced by the initiator).
    name: Option<String>,
    /// The name the peer's `from` is checked against, when it is not the stream's NAME.
    peer_name: Option<String>,
    /// Initiator: the secret to prove. Receiver: the secret to check against.
    secret: Vec<u8>,
    stream_id: Option<String>,
    header_sent: bool,
    from_check: FromCheck,
    now: Instant,
    created: Instant,
    last_rx: Instant,
    last_tx: Instant,
    partial_since: Option<Instant>,
    /// `(from, to)` of the liveness pings this side sends, once set.
    ping_addresses: Option<(String, String)>,
    /// A liveness ping was sent since the peer last said anything.
    ping_outstanding: bool,
    pings_sent: u64,
}

/// Ids of liveness pings start with this; their answers are consumed by the stream.
const PING_ID_PREFIX: &[u8] = b"palisade-ka-";

impl ComponentStream {
    /// The side that dialed: announces `name` (in `to`) and will prove `secret`.
    pub fn initiator(
        config: StreamConfig,
        name: &str,
        secret: &[u8],
        namespace: &str,
        from_check: FromCheck,
        now: Instant,
    ) -> ComponentStream {
        let mut s = ComponentStream::new(Role::Initiator, config, from_check, now);
        s.name = Some(name.to_owned());
        s.secret = secret.to_vec();
        s.namespace = namespace.to_owned();
        write::stream_header(&mut s.out, namespace, Some(name), None, None);
        s.header_sent = true;
        s
    }

    /// The side that accepted: `random` supplies the 128 bits of the stream id it will send.
    pub fn receiver(
        config: StreamConfig,
        random: [u8; 16],
        from_check: FromCheck,
        now: Instant,
    ) -> ComponentStream {
        let mut s = ComponentStream::new(Role::Receiver, config, from_check, now);
        s.stream_id = Some(handshake::stream_id(random));
        s
    }

    fn new(role: Role, config: StreamConfig, from_check: FromCheck, now: Instant) -> Self {
        ComponentStream {
            role,
            state: State::AwaitingHeader,
            framer: Framer::new(config.limits),
            config,
            out: BytesMut::new(),
            events: VecDeque::new(),
            namespace: NS_ACCEPT.to_owned(),
            name: None,
            peer_name: None,
            secret: Vec::new(),
            stream_id: None,
            header_sent: false,
            from_check,
            now,
            created: now,
            last_rx: now,
            last_tx: now,
            partial_since: None,
            ping_addresses: None,
            ping_outstanding: false,
            pings_sent: 0,
        }
    }

    /// Enables liveness pings (XEP-0199) from `from` to `to`: after half the dead interval of
    /// silence the stream asks the peer for a sign of life, so a quiet but healthy peer that
    /// sends no whitespace keepalives is never taken for a dead one. Any answer, even an error,
    /// counts; the answer itself is consumed here.
    pub fn enable_pings(&mut self, from: &str, to: &str) {
        self.ping_addresses = Some((from.to_owned(), to.to_owned()));
    }

    /// Whether this side initiated the stream or received it.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The timers and limits the stream runs with.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// The NAME this stream is for, once known.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The stream id, once the receiver has chosen it.
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref()
    }

    /// True once the handshake succeeded and until the stream ends.
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    /// True once the stream has ended; it then reads and writes nothing more.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True once our end tag (or a stream error) has been queued: nothing more will be sent.
    pub fn is_ending(&self) -> bool {
        matches!(self.state, State::Closing | State::Closed)
    }

    /// Checks the peer's `from` against `name` instead of the stream's NAME (an initiator
    /// announces its own NAME; the peer it reaches may be a server named otherwise).
    pub fn expect_peer(&mut self, name: &str) {
        self.peer_name = Some(name.to_owned());
    }

    /// Receiver: NAME is known and this is its secret; answers the initiator's header.
    pub fn accept_name(&mut self, secret: &[u8]) {
        if self.state != State::AwaitingDecision {
            return;
        }
        self.secret = secret.to_vec();
        self.send_receiver_header();
        self.state = State::AwaitingHandshake;
    }

    /// Ends the stream with a stream error (opening our side first if we have not yet).
    pub fn refuse(&mut self, condition: Condition, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        if !self.header_sent {
            self.send_receiver_header();
        }
        write::stream_error(&mut self.out, condition, Some(reason));
        write::stream_end(&mut self.out);
        self.finish(Closed::Refused {
            condition,
            reason: reason.to_owned(),
        });
    }

    /// Ends the stream with `</stream:stream>`; the peer's end tag completes the close.
    pub fn close(&mut self) {
        match self.state {
            State::Closed | State::Closing => {}
            _ => {
                if !self.header_sent {
                    self.send_receiver_header();
                }
                write::stream_end(&mut self.out);
                self.state = State::Closing;
            }
        }
    }

    /// The transport ended (EOF, reset or write error).
    pub fn transport_closed(&mut self) {
        match self.state {
            State::Closed => {}
            State::Closing => self.finish(Closed::LocalEnded),
            _ => self.finish(Closed::TransportEnded),
        }
    }

    /// A region to read into directly (see [`Framer::spare`]); then call
    /// [`ComponentStream::commit`].
    pub fn spare(&mut self, len: usize) -> &mut [u8] {
        self.framer.spare(len)
    }

    /// Keeps `n` bytes read into [`ComponentStream::spare`], received at `now`.
    pub fn commit(&mut self, n: usize, now: Instant) {
        self.framer.commit(n);
        self.received(now);
    }

    /// Gives back the region of [`ComponentStream::spare`] unused: the read found nothing
    /// (it would block, or failed), so nothing is recorded as received.
    pub fn unspare(&mut self) {
        self.framer.commit(0);
    }

    /// Room left in the receive buffer (see [`Framer::room`]).
    pub fn room(&self) -> usize {
        self.framer.room()
    }

    /// Bytes received and not yet framed (see [`Framer::buffered`]).
    pub fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    /// Lets idle buffers go: the receive buffer if it is empty, and the output buffer if it is
    /// empty, when either keeps more than `keep` bytes of room (see [`Framer::release_idle`]).
    pub fn release_idle(&mut self, keep: usize) {
        self.framer.release_idle(keep);
        if self.out.is_empty() && self.out.capacity() > keep {
            self.out = BytesMut::new();
        }
    }

    /// Copies `data` in and records it as received at `now`.
    pub fn receive(&mut self, data: &[u8], now: Instant) {
        self.framer.feed(data);
        self.received(now);
    }

    /// The transport is not being read at `now` because our side holds its reads (flow
    /// control): whatever the peer sent waits in the socket, so silence since the last read
    /// proves nothing. Restarts the dead-peer and stanza-completion clocks; they run again once
    /// reading resumes.
    pub fn handle_reads_held(&mut self, now: Instant) {
        self.now = now;
        self.last_rx = now;
        if self.partial_since.is_some() {
            self.partial_since = Some(now);
        }
    }

    fn received(&mut self, now: Instant) {
        self.now = now;
        self.last_rx = now;
        self.ping_outstanding = false;
    }

    /// Bytes to write to the peer, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    /// Pending output size (for back-pressure decisions).
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Where to write outgoing stanzas; `None` unless the stream is active.
    pub fn writer(&mut self) -> Option<&mut BytesMut> {
        if self.state != State::Active {
            return None;
        }
        self.last_tx = self.now;
        Some(&mut self.out)
    }

    /// The next event, pulling frames from the buffered input as needed.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            let framing = matches!(
                self.state,
                State::AwaitingHeader | State::AwaitingHandshake | State::Active | State::Closing
            );
            if !framing {
                return None;
            }
            match self.framer.next_frame() {
                Ok(Some(frame)) => {
                    self.partial_since = None;
                    if let Some(stanza) = self.on_frame(frame) {
                        return Some(StreamEvent::Stanza(stanza));
                    }
                }
                Ok(None) => {
                    if self.framer.in_frame() {
                        self.partial_since.get_or_insert(self.now);
                    }
                    return None;
                }
                Err(e) => self.refuse_frame(e),
            }
        }
    }

    /// When [`ComponentStream::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.state != State::Active {
            consider(self.created + self.config.handshake_timeout);
        }
        if let Some(since) = self.partial_since {
            consider(since + self.config.stanza_timeout);
        }
        if let Some(dead) = self.config.dead_interval {
            consider(self.last_rx + dead);
            if self.ping_due_enabled() {
                consider(self.last_rx + dead / 2);
            }
        }
        if let (Some(k), State::Active) = (self.config.keepalive, self.state) {
            consider(self.last_tx + k);
        }
        next
    }

    fn ping_due_enabled(&self) -> bool {
        self.state == State::Active && self.ping_addresses.is_some() && !self.ping_outstanding
    }

    /// Runs whatever timers are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.state == State::Closed {
            return;
        }
        if self.state != State::Active && now >= self.created + self.config.handshake_timeout {
            let reason = format!("no handshake within {:?}", self.config.handshake_timeout);
            return self.refuse(Condition::ConnectionTimeout, &reason);
        }
        if let Some(since) = self.partial_since {
            if now >= since + self.config.stanza_timeout {
                let reason = format!(
                    "stanza not completed within {:?}",
                    self.config.stanza_timeout
                );
                return self.refuse(Condition::ConnectionTimeout, &reason);
            }
        }
        if let Some(dead) = self.config.dead_interval {
            if now >= self.last_rx + dead {
                write::stream_error(
                    &mut self.out,
                    Condition::ConnectionTimeout,
                    Some("peer silent"),
                );
                write::stream_end(&mut self.out);
                return self.finish(Closed::PeerSilent);
            }
            if self.ping_due_enabled() && now >= self.last_rx + dead / 2 {
                self.send_ping();
            }
        }
        if let (Some(k), State::Active) = (self.config.keepalive, self.state) {
            if now >= self.last_tx + k {
                self.out.put_u8(b' ');
                self.last_tx = now;
            }
        }
    }

    fn send_ping(&mut self) {
        let Some((from, to)) = &self.ping_addresses else {
            return;
        };
        let id = format!(
            "{}{}",
            std::str::from_utf8(PING_ID_PREFIX).unwrap_or(""),
            self.pings_sent
        );
        let body = write::Element::open(&mut self.out, "iq")
            .attr("type", "get")
            .attr("id", &id)
            .attr("from", from)
            .attr("to", to)
            .start_content();
        write::Element::open(body, "ping")
            .attr("xmlns", "urn:xmpp:ping")
            .empty();
        write::close(body, "iq");
        self.pings_sent += 1;
        self.ping_outstanding = true;
        self.last_tx = self.now;
    }

    fn finish(&mut self, how: Closed) {
        self.state = State::Closed;
        self.events.push_back(StreamEvent::Closed(how));
    }

    fn send_receiver_header(&mut self) {
        let ns = self.namespace.clone();
        write::stream_header(
            &mut self.out,
            &ns,
            None,
            self.name.as_deref(),
            self.stream_id.as_deref(),
        );
        self.header_sent = true;
    }

    fn refuse_frame(&mut self, e: FrameError) {
        self.refuse(e.condition(), &e.to_string());
    }

    /// Handles one frame; returns a stanza for the driver when the stream is active.
    fn on_frame(&mut self, frame: Frame) -> Option<Stanza> {
        match frame {
            Frame::Header(h) => {
                self.on_header(h);
                None
            }
            Frame::End => {
                let how = if self.state == State::Closing {
                    Closed::LocalEnded
                } else {
                    write::stream_end(&mut self.out);
                    Closed::PeerEnded
                };
                self.finish(how);
                None
            }
            Frame::Stanza(s) => {
                if local(s.name()) == b"error" && s.name() != b"error" {
                    self.on_stream_error(&s);
                    return None;
                }
                match self.state {
                    State::AwaitingHandshake => {
                        self.on_handshake_stage(&s);
                        None
                    }
                    State::Active => self.check_active_stanza(s).filter(|s| !is_ping_answer(s)),
                    // Stanzas that cross our end tag are dropped: we are closing.
                    _ => None,
                }
            }
        }
    }

    fn on_header(&mut self, h: Header) {
        let ns_ok = matches!(h.default_ns.as_deref(), Some(NS_ACCEPT | NS_CONNECT));
        match self.role {
            Role::Receiver => {
                if let Some(ns) = &h.default_ns {
                    if ns_ok {
                        self.namespace = ns.clone();
                    }
                }
                self.name = h.to.or(h.from);
                if !ns_ok {
                    return self.refuse(
                        Condition::InvalidNamespace,
                        "the stream namespace must be jabber:component:accept or jabber:component:connect",
                    );
                }
                match &self.name {
                    Some(name) => {
                        let name = name.clone();
                        self.state = State::AwaitingDecision;
                        self.events.push_back(StreamEvent::NameAnnounced { name });
                    }
                    None => self.refuse(
                        Condition::HostUnknown,
                        "the stream header names no component",
                    ),
                }
            }
            Role::Initiator => {
                if !ns_ok {
                    return self.refuse(Condition::InvalidNamespace, "unexpected stream namespace");
                }
                let Some(id) = h.id else {
                    return self.refuse(Condition::InvalidXml, "the stream header has no id");
                };
                let digest = handshake::digest_hex(&id, &self.secret);
                let body = write::Element::open(&mut self.out, "handshake").start_content();
                body.put_slice(digest.as_bytes());
                write::close(body, "handshake");
                self.stream_id = Some(id);
                self.last_tx = self.now;
                self.state = State::AwaitingHandshake;
            }
        }
    }

    fn on_handshake_stage(&mut self, s: &Stanza) {
        if s.name() != b"handshake" {
            return self.refuse(
                Condition::NotAuthorized,
                "a stanza arrived before the handshake",
            );
        }
        if let Some(ns) = s.value(s.attrs().xmlns) {
            if ns != NS_ACCEPT && ns != NS_CONNECT {
                return self.refuse(
                    Condition::InvalidNamespace,
                    "handshake in a foreign namespace",
                );
            }
        }
        match self.role {
            Role::Receiver => {
                let id = self.stream_id.clone().unwrap_or_default();
                if !handshake::verify(&id, &self.secret, &s.text()) {
                    return self.refuse(
                        Condition::NotAuthorized,
                        "handshake does not match the secret",
                    );
                }
                write::Element::open(&mut self.out, "handshake").empty();
                self.last_tx = self.now;
            }
            Role::Initiator => {
                if !s.content().is_empty() && !s.text().trim().is_empty() {
                    return self.refuse(Condition::NotAuthorized, "unexpected handshake answer");
                }
            }
        }
        self.state = State::Active;
        self.events.push_back(StreamEvent::Active);
    }

    fn on_stream_error(&mut self, s: &Stanza) {
        let mut condition = Condition::UndefinedCondition;
        let mut text = None;
        for child in s.children() {
            match s.element_local_name(child) {
                b"text" => {
                    let content = child.content(s.bytes());
                    let raw = super::stanza::as_str(&s.bytes()[content.range()]);
                    text = Some(super::xml::unescape(raw).into_owned());
                }
                name => {
                    if condition == Condition::UndefinedCondition {
                        condition = Condition::from_name(name);
                    }
                }
            }
        }
        self.finish(Closed::PeerError { condition, text });
    }

    fn check_active_stanza(&mut self, s: Stanza) -> Option<Stanza> {
        let Some(from) = s.raw(s.attrs().from) else {
            self.refuse(Condition::InvalidFrom, "stanza without a from address");
            return None;
        };
        if s.attrs().to.is_none() {
            self.refuse(Condition::ImproperAddressing, "stanza without a to address");
            return None;
        }
        let name = self
            .peer_name
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or("")
            .as_bytes();
        let domain = domain_of(from);
        let ok = match self.from_check {
            FromCheck::None => true,
            FromCheck::PeerDomain => domain.eq_ignore_ascii_case(name),
            FromCheck::PeerDomainOrSubdomain => {
                domain.eq_ignore_ascii_case(name)
                    || (domain.len() > name.len()
                        && domain[domain.len() - name.len() - 1] == b'.'
                        && domain[domain.len() - name.len()..].eq_ignore_ascii_case(name))
            }
        };
        if !ok {
            self.refuse(
                Condition::InvalidFrom,
                "the from address is not this component's",
            );
            return None;
        }
        Some(s)
    }
}

/// An answer to one of our liveness pings.
fn is_ping_answer(s: &Stanza) -> bool {
    s.name() == b"iq"
        && matches!(s.raw(s.attrs().type_), Some(b"result" | b"error"))
        && s.raw(s.attrs().id)
            .is_some_and(|id| id.starts_with(PING_ID_PREFIX))
}

/// The domain part of a raw JID: between any `@` (before the first `/`) and the first `/`.
fn domain_of(jid: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'/', jid).unwrap_or(jid.len());
    let bare = &jid[..end];
    match memchr::memchr(b'@', bare) {
        Some(at) => &bare[at + 1..],
        None => bare,
    }
}

#[cfg(test)]
mod tests;
