//! Realistic router events (docs/protocol.md §2) for `palisade load`: a population of users spread
//! over one or more domains, each with a handful of regular contacts (so conversations recur,
//! as the gateway's per-key ordering sees in production), rooms on the first domain's
//! conference service, and logins and logouts that walk the population in turn (so N logins
//! log N different users in, as a failover storm does).
//!
//! Events are written straight into the connection's output buffer: no allocation per event.
//! A chat event is about 400 bytes. Generated values are plain ASCII that needs no escaping
//! (domains are checked when the population is built). Must not time or send anything.

use super::id::{put_dec, put_hex, write_id};
use super::mix::{Mix, Template};
use crate::policy::EventId;
use crate::protocol::NS;
use crate::rng::Rng;
use bytes::{BufMut, BytesMut};
use std::fmt;
use std::sync::Arc;

/// How many regular contacts each user writes to.
const CONTACTS: u32 = 8;

/// Chat lines, already escaped, of varied length (mean about 110 bytes).
const BODIES: [&str; 12] = [
    "Morning. Can you send me the deck before the 10:00?",
    "Sure, give me five minutes, I am just finishing the numbers for Q3 &amp; Q4.",
    "The client asked whether the settlement date can move to Friday; I said we would confirm by noon.",
    "ok",
    "Lunch at 12:30? The usual place, or we can try the new one on the corner if it is not too busy.",
    "I have updated the shared spreadsheet with the latest figures &amp; comments from legal. Please review the highlighted rows and sign off when you can.",
    "On a call, will ping you after.",
    "Thanks! That works for me.",
    "Reminder: the compliance training is due by end of month, the link is in the intranet under HR &gt; Training.",
    "Can you join the bridge? We need a quick decision on the vendor contract before they close for the weekend.",
    "Draft looks good. Two small changes: the date on page 3, and the footnote about fees should reference the 2025 schedule.",
    "brb",
];

const RESOURCES: [&str; 3] = ["desk", "mobile", "web"];

/// Why a population cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PopulationError {
    TooFewUsers,
    NoRooms,
    BadDomain(String),
    BadName(String),
}

impl fmt::Display for PopulationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PopulationError::TooFewUsers => f.write_str("--users must be at least 2"),
            PopulationError::NoRooms => f.write_str("--rooms must be at least 1 for room events"),
            PopulationError::BadDomain(d) => write!(
                f,
                "domain {d:?}: use letters, digits, '-' and '.' only (e.g. example.com)"
            ),
            PopulationError::BadName(n) => write!(
                f,
                "component name {n:?}: use letters, digits, '-' and '.' only"
            ),
        }
    }
}

impl std::error::Error for PopulationError {}

fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !s.starts_with('.')
        && !s.ends_with('.')
}

/// Who sends events: users `user{i}@{domain}` (user `i` on domain `i mod D`) and rooms
/// `room{r}@conference.{first domain}`.
#[derive(Clone, Debug)]
pub struct Population {
    users: u32,
    domains: Vec<String>,
    rooms: u32,
    conference: String,
}

impl Population {
    pub fn new(users: u32, domains: &[String], rooms: u32) -> Result<Population, PopulationError> {
        if users < 2 {
            return Err(PopulationError::TooFewUsers);
        }
        if let Some(bad) = domains.iter().find(|d| !plain_name(d)) {
            return Err(PopulationError::BadDomain(bad.clone()));
        }
        let first = domains
            .first()
            .ok_or_else(|| PopulationError::BadDomain(String::new()))?;
        Ok(Population {
            users,
            domains: domains.to_vec(),
            rooms,
            conference: format!("conference.{first}"),
        })
    }

    pub fn users(&self) -> u32 {
        self.users
    }

    pub fn rooms(&self) -> u32 {
        self.rooms
    }

    /// The `k`-th regular contact of user `a` (never `a` itself).
    fn contact(&self, a: u32, k: u32) -> u32 {
        let spread = (u64::from(k) * 7919 + u64::from(a) * 31) % u64::from(self.users - 1);
        ((u64::from(a) + 1 + spread) % u64::from(self.users)) as u32
    }

    /// The `j`-th member of room `r`.
    fn member(&self, r: u32, j: u32) -> u32 {
        ((u64::from(r) + u64::from(self.rooms) * u64::from(j)) % u64::from(self.users)) as u32
    }
}

/// One connection's event writer. See the module documentation.
pub struct Generator {
    mix: Mix,
    pop: Arc<Population>,
    /// `' from='ROUTER' to='GATEWAY'><event xmlns='NS' name='`: the same for every event,
    /// so it is one copy instead of five.
    head: Vec<u8>,
    conn: u32,
    /// Logins and logouts of this connection walk users `conn, conn + conns, ...`.
    conns: u32,
    rng: Rng,
    login_cursor: u32,
    logout_cursor: u32,
    /// Events written, by catalog index.
    pub counts: [u64; EventId::COUNT],
}

impl Generator {
    pub fn new(
        mix: Mix,
        pop: Arc<Population>,
        router: &str,
        gateway: &str,
        conn: u32,
        conns: u32,
        rng: Rng,
    ) -> Result<Generator, PopulationError> {
        for name in [router, gateway] {
            if !plain_name(name) {
                return Err(PopulationError::BadName(name.to_string()));
            }
        }
        if pop.rooms == 0 && mix.entries().iter().any(|e| e.template.has_room()) {
            return Err(PopulationError::NoRooms);
        }
        let head = format!("' from='{router}' to='{gateway}'><event xmlns='{NS}' name='");
        Ok(Generator {
            mix,
            pop,
            head: head.into_bytes(),
            conn,
            conns: conns.max(1),
            rng,
            login_cursor: 0,
            logout_cursor: 0,
            counts: [0; EventId::COUNT],
        })
    }

    fn next_walker(&mut self, login: bool) -> u32 {
        let cursor = if login {
            &mut self.login_cursor
        } else {
            &mut self.logout_cursor
        };
        let step = u64::from(*cursor) * u64::from(self.conns) + u64::from(self.conn);
        *cursor = cursor.wrapping_add(1);
        (step % u64::from(self.pop.users)) as u32
    }

    /// Appends event `seq` (a full `<iq type='set'>` with its `<event/>`) to `out`.
    pub fn write_event(&mut self, out: &mut BytesMut, seq: u64) -> EventId {
        let entry = *self.mix.pick(&mut self.rng);
        self.counts[entry.event.index()] += 1;
        let t = entry.template;
        let walker = match t {
            Template::Login => Some(self.next_walker(true)),
            Template::Logout => Some(self.next_walker(false)),
            _ => None,
        };
        // Field borrows, not an Arc clone: no atomic traffic per event.
        let pop: &Population = &self.pop;
        let rng = &mut self.rng;
        let room = if t.has_room() && pop.rooms > 0 {
            rng.below(pop.rooms)
        } else {
            0
        };
        let user = match walker {
            Some(u) => u,
            None if t.has_room() => pop.member(room, rng.below(64)),
            None => rng.below(pop.users),
        };
        let peer = pop.contact(user, rng.below(CONTACTS));

        out.put_slice(b"<iq type='set' id='");
        write_id(out, self.conn, seq);
        out.put_slice(&self.head);
        out.put_slice(entry.event.name().as_bytes());
        if t.has_room() {
            out.put_slice(b"' room='");
            put_room(out, pop, room);
        }
        out.put_slice(b"'>");
        let w = &mut Stanza { out, pop, seq };
        match t {
            Template::Chat => {
                // es_IN is the receiving side: the contact writes to the user's session.
                let (from, to) = if entry.event.name() == "es_IN" {
                    (peer, user)
                } else {
                    (user, peer)
                };
                w.open("message", from, Some(Addr::User(to)), Some("chat"), b'm');
                w.body(rng.below(BODIES.len() as u32));
                w.raw(b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>");
            }
            Template::Presence => {
                w.open("presence", user, Some(Addr::User(peer)), None, b'p');
                w.raw(b"<show>away</show><status>In a meeting</status><priority>5</priority>\
                    <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://palisade.example/load' \
                    ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>");
            }
            Template::Subscription => {
                w.open_bare("presence", user, Addr::User(peer), "subscribe");
                w.raw(b"</presence>");
            }
            Template::UserIq => {
                w.open("iq", user, Some(Addr::User(peer)), Some("get"), b'v');
                w.raw(b"<vCard xmlns='vcard-temp'/></iq>");
            }
            Template::Login => {
                w.open("iq", user, Some(Addr::Domain(user)), Some("set"), b's');
                w.raw(b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
            }
            Template::Logout => {
                w.open("presence", user, None, Some("unavailable"), b'u');
                w.raw(b"<status>Logged out</status></presence>");
            }
            Template::ServerIq => {
                w.open("iq", user, Some(Addr::Domain(user)), Some("get"), b'd');
                w.raw(b"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
            }
            Template::RoomJoin => {
                w.open(
                    "presence",
                    user,
                    Some(Addr::Occupant(room, user)),
                    None,
                    b'j',
                );
                w.raw(b"<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='20'/></x></presence>");
            }
            Template::RoomMessage => {
                w.open(
                    "message",
                    user,
                    Some(Addr::Room(room)),
                    Some("groupchat"),
                    b'g',
                );
                w.body(rng.below(BODIES.len() as u32));
                w.raw(b"</message>");
            }
            Template::RoomLeave => {
                w.open(
                    "presence",
                    user,
                    Some(Addr::Occupant(room, user)),
                    Some("unavailable"),
                    b'l',
                );
                w.raw(b"</presence>");
            }
            Template::RoomSubject => {
                w.open(
                    "message",
                    user,
                    Some(Addr::Room(room)),
                    Some("groupchat"),
                    b't',
                );
                w.raw(b"<subject>Desk notes for today</subject></message>");
            }
            Template::RoomInvite => {
                w.open("message", user, Some(Addr::Room(room)), None, b'i');
                w.raw(b"<x xmlns='http://jabber.org/protocol/muc#user'><invite to='");
                w.user(peer);
                w.raw(b"'><reason>Join us for the morning call</reason></invite></x></message>");
            }
            Template::RoomAdmin => {
                w.open("iq", user, Some(Addr::Room(room)), Some("set"), b'a');
                w.raw(b"<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='");
                w.user(peer);
                w.raw(b"'/></query></iq>");
            }
            Template::RoomInfo => {
                w.open("iq", user, Some(Addr::Room(room)), Some("get"), b'q');
                w.raw(b"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
            }
            Template::RoomDestroy => {
                w.open("iq", user, Some(Addr::Room(room)), Some("set"), b'x');
                w.raw(b"<query xmlns='http://jabber.org/protocol/muc#owner'><destroy><reason>Closing the room</reason></destroy></query></iq>");
            }
            Template::Service => {
                w.open("iq", user, Some(Addr::Conference), Some("get"), b'c');
                w.raw(b"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
            }
        }
        out.put_slice(b"</event></iq>");
        entry.event
    }
}

fn put_user(out: &mut BytesMut, pop: &Population, i: u32) {
    out.put_slice(b"user");
    put_dec(out, u64::from(i));
    out.put_u8(b'@');
    out.put_slice(pop.domains[i as usize % pop.domains.len()].as_bytes());
}

fn put_room(out: &mut BytesMut, pop: &Population, r: u32) {
    out.put_slice(b"room");
    put_dec(out, u64::from(r));
    out.put_u8(b'@');
    out.put_slice(pop.conference.as_bytes());
}

/// A stanza's `to`.
#[derive(Copy, Clone)]
enum Addr {
    User(u32),
    /// The domain of this user.
    Domain(u32),
    Room(u32),
    /// A room occupant: room, user (the nick).
    Occupant(u32, u32),
    Conference,
}

/// Writes one inner stanza.
struct Stanza<'a> {
    out: &'a mut BytesMut,
    pop: &'a Population,
    seq: u64,
}

impl Stanza<'_> {
    fn raw(&mut self, b: &[u8]) {
        self.out.put_slice(b);
    }

    fn user(&mut self, i: u32) {
        put_user(self.out, self.pop, i);
    }

    fn full(&mut self, i: u32) {
        put_user(self.out, self.pop, i);
        self.out.put_u8(b'/');
        self.out
            .put_slice(RESOURCES[i as usize % RESOURCES.len()].as_bytes());
    }

    fn addr(&mut self, a: Addr) {
        match a {
            Addr::User(u) => self.user(u),
            Addr::Domain(u) => self
                .out
                .put_slice(self.pop.domains[u as usize % self.pop.domains.len()].as_bytes()),
            Addr::Room(r) => put_room(self.out, self.pop, r),
            Addr::Occupant(r, u) => {
                put_room(self.out, self.pop, r);
                self.out.put_slice(b"/u");
                put_dec(self.out, u64::from(u));
            }
            Addr::Conference => self.out.put_slice(self.pop.conference.as_bytes()),
        }
    }

    /// `<name xmlns='jabber:client' [type=..] id='Pseq' from='FULL' [to='..']>`
    fn open(&mut self, name: &str, from: u32, to: Option<Addr>, type_: Option<&str>, prefix: u8) {
        self.out.put_u8(b'<');
        self.out.put_slice(name.as_bytes());
        self.out.put_slice(b" xmlns='jabber:client'");
        if let Some(t) = type_ {
            self.out.put_slice(b" type='");
            self.out.put_slice(t.as_bytes());
            self.out.put_u8(b'\'');
        }
        self.out.put_slice(b" id='");
        self.out.put_u8(prefix);
        put_hex(self.out, self.seq);
        self.out.put_slice(b"' from='");
        self.full(from);
        if let Some(to) = to {
            self.out.put_slice(b"' to='");
            self.addr(to);
        }
        self.out.put_slice(b"'>");
    }

    /// Like [`Stanza::open`] with a bare `from` (subscriptions are between bare JIDs).
    fn open_bare(&mut self, name: &str, from: u32, to: Addr, type_: &str) {
        self.out.put_u8(b'<');
        self.out.put_slice(name.as_bytes());
        self.out.put_slice(b" xmlns='jabber:client' type='");
        self.out.put_slice(type_.as_bytes());
        self.out.put_slice(b"' from='");
        self.user(from);
        self.out.put_slice(b"' to='");
        self.addr(to);
        self.out.put_slice(b"'>");
    }

    fn body(&mut self, i: u32) {
        self.out.put_slice(b"<body>");
        self.out
            .put_slice(BODIES[i as usize % BODIES.len()].as_bytes());
        self.out.put_slice(b"</body>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CompiledPolicy;
    use crate::protocol::{parse_event, Reply};
    use crate::wire::{Frame, Framer, Limits};

    fn generator(mix: &str, users: u32, domains: &[&str]) -> Generator {
        let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        let pop = Arc::new(Population::new(users, &domains, 10).unwrap());
        Generator::new(
            mix.parse().unwrap(),
            pop,
            "imp1.example.com",
            "palisade.example.com",
            1,
            2,
            Rng::new(5),
        )
        .unwrap()
    }

    /// Frames what was written and reads every event as the gateway does.
    fn read_all(bytes: &[u8]) -> Vec<crate::protocol::InboundEvent> {
        let mut f = Framer::new(Limits::default());
        f.feed(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>");
        f.feed(bytes);
        let node = CompiledPolicy::compile(&crate::policy::default_config()).unknown_node();
        let mut out = Vec::new();
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Stanza(s))) => {
                    let reply = Reply::of(&s).unwrap();
                    out.push(
                        parse_event(&s, reply, |_| node).unwrap_or_else(|e| {
                            panic!("{e}: {}", String::from_utf8_lossy(s.bytes()))
                        }),
                    );
                }
                Ok(Some(_)) => {}
                Ok(None) => return out,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn every_event_of_the_catalog_is_readable_by_the_gateway() {
        let mix: String = EventId::all()
            .map(|e| format!("{}=1", e.name()))
            .collect::<Vec<_>>()
            .join(",");
        let mut g = generator(&mix, 100, &["example.com"]);
        let mut out = BytesMut::new();
        for seq in 0..2000 {
            g.write_event(&mut out, seq);
        }
        let events = read_all(&out);
        assert_eq!(events.len(), 2000);
        assert!(g.counts.iter().all(|&c| c > 0), "{:?}", g.counts);
        for ev in &events {
            if ev.event.kind() == crate::policy::EventKind::Tc
                && !ev.event.name().starts_with("onService")
            {
                assert!(ev.key().starts_with("room"), "{}", ev.key());
            }
        }
    }

    #[test]
    fn chat_is_about_400_bytes_and_keys_recur() {
        let mut g = generator("es_OUT=1", 1000, &["example.com"]);
        let mut out = BytesMut::new();
        for seq in 0..1000 {
            g.write_event(&mut out, seq);
        }
        let mean = out.len() / 1000;
        assert!((330..480).contains(&mean), "{mean}");
        let events = read_all(&out);
        let keys: std::collections::HashSet<&str> = events.iter().map(|e| e.key()).collect();
        // 1000 events among 1000 users with 8 contacts each: some conversations repeat.
        assert!(keys.len() < 1000 && keys.len() > 300, "{}", keys.len());
        assert!(events.iter().all(|e| e.key().contains('|')));
        assert!(out.starts_with(b"<iq type='set' id='e1.0' from='imp1.example.com' to='palisade.example.com'><event xmlns='urn:palisade:compliance:0' name='es_OUT'><message xmlns='jabber:client' type='chat' id='m0' from='user"));
    }

    #[test]
    fn logins_walk_the_population_once_across_connections() {
        let domains = vec!["a.example".to_string(), "b.example".to_string()];
        let pop = Arc::new(Population::new(10, &domains, 1).unwrap());
        let mut seen = std::collections::BTreeSet::new();
        for conn in 0..2 {
            let mut g = Generator::new(
                "e_SESSION=1".parse().unwrap(),
                pop.clone(),
                "imp1.example.com",
                "gw.example.com",
                conn,
                2,
                Rng::new(1),
            )
            .unwrap();
            let mut out = BytesMut::new();
            for seq in 0..5 {
                g.write_event(&mut out, seq);
            }
            for ev in read_all(&out) {
                assert!(seen.insert(ev.key().to_owned()), "{} twice", ev.key());
            }
        }
        assert_eq!(seen.len(), 10);
        assert!(seen.contains("user3@b.example") && seen.contains("user4@a.example"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let d = vec!["example.com".to_string()];
        assert_eq!(
            Population::new(1, &d, 1).unwrap_err(),
            PopulationError::TooFewUsers
        );
        assert!(matches!(
            Population::new(5, &["ex'ample.com".to_string()], 1),
            Err(PopulationError::BadDomain(_))
        ));
        let pop = Arc::new(Population::new(5, &d, 0).unwrap());
        let g = Generator::new(
            "onBeforeJoin=1".parse().unwrap(),
            pop.clone(),
            "imp1",
            "gw",
            0,
            1,
            Rng::new(1),
        );
        assert_eq!(g.err(), Some(PopulationError::NoRooms));
        let g = Generator::new(
            "es_OUT=1".parse().unwrap(),
            pop,
            "imp<1",
            "gw",
            0,
            1,
            Rng::new(1),
        );
        assert!(matches!(g.err(), Some(PopulationError::BadName(_))));
    }
}
