//! The event catalog: every JSM and TC event of the seed document, spelled exactly as there,
//! with its description and the answers a compliance server may give to it.
//!
//! This file owns names, kinds and answer rules (packet types live in `packet.rs`). It must not
//! know about profiles, servers or configuration files, and [`EventId::lookup`], on the hot
//! path, must not allocate.
//!
//! The seed lists 12 JSM events and 28 TC events (40 in all). `docs/protocol.md` and `docs/configuration.md` say
//! "27 TC" and "39 events"; that is a miscount of the seed's own table, and the seed is the
//! behaviour spec, so every event it names is accepted here (dropping one would make a router
//! that sends it get `bad-request`).

pub use super::packet::{PacketFilter, PacketType};
use std::fmt;

/// Whether an event comes from the Jabber Session Manager or from Text Conferencing.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum EventKind {
    /// A Jabber Session Manager event: about one user's stanza (`e_SESSION`, `es_IN`...); it has a
    /// packet type.
    Jsm,
    /// A Text Conferencing event: about a room (`onBeforeJoin`...); it has no packet type.
    Tc,
}

impl EventKind {
    /// `JSM` or `TC`, as the catalog listing prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Jsm => "JSM",
            EventKind::Tc => "TC",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which answers a compliance server may give to a wait-mode event (docs/protocol.md §4).
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum AnswerRule {
    /// PASS (plain or with a modified stanza), HANDLE, or an error.
    Any,
    /// "The only valid response is PASS": HANDLE and errors are refused; a modified stanza is
    /// still a PASS, so it is accepted.
    PassOnly,
    /// "PASS with nothing in it" / "PASS with no modification": like `PassOnly`, and a modified
    /// stanza is refused too.
    PassUnmodified,
    /// onServiceReconfig: a notification; the server must not answer at all.
    NotifyOnly,
}

/// The shape of one answer, as far as [`AnswerRule::permits`] needs to know it.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum AnswerKind {
    /// `pass` with the stanza unchanged.
    Pass,
    /// `pass` with a modified stanza in it.
    PassModified,
    /// `handle`: the server took the stanza over.
    Handle,
    /// An `<iq type='error'>` answer.
    Error,
}

impl AnswerRule {
    /// Whether `answer` is valid for an event with this rule. A refused answer is a protocol
    /// violation by the compliance server; the engine treats it as a plain PASS.
    pub fn permits(self, answer: AnswerKind) -> bool {
        match self {
            AnswerRule::Any => true,
            AnswerRule::PassOnly => matches!(answer, AnswerKind::Pass | AnswerKind::PassModified),
            AnswerRule::PassUnmodified => answer == AnswerKind::Pass,
            AnswerRule::NotifyOnly => false,
        }
    }

    /// Whether the gateway waits for an answer at all; a notify-only event is always sent as a
    /// fire-and-forget notification whatever its profile entry says.
    pub fn expects_answer(self) -> bool {
        self != AnswerRule::NotifyOnly
    }

    /// A short human summary, used by `palisade events`.
    pub fn summary(self) -> &'static str {
        match self {
            AnswerRule::Any => "PASS (may modify), HANDLE, error",
            AnswerRule::PassOnly => "PASS only (may modify)",
            AnswerRule::PassUnmodified => "PASS only, unmodified",
            AnswerRule::NotifyOnly => "none (notification only)",
        }
    }
}

/// One row of the catalog.
#[derive(Debug)]
pub struct EventSpec {
    /// Exactly as spelled in the seed.
    pub name: &'static str,
    /// Whether it is a JSM or a TC event (decides whether a packet type applies).
    pub kind: EventKind,
    /// What the event is, in the seed's words (without the answer-rule sentences).
    pub description: &'static str,
    /// Which answers a compliance server may give to it.
    pub answer: AnswerRule,
    /// The seed's own sentences about valid answers, verbatim; empty when it says nothing.
    pub seed_rule: &'static str,
}

const fn jsm(name: &'static str, description: &'static str) -> EventSpec {
    EventSpec {
        name,
        kind: EventKind::Jsm,
        description,
        answer: AnswerRule::Any,
        seed_rule: "",
    }
}

const fn tc(name: &'static str, description: &'static str) -> EventSpec {
    EventSpec {
        name,
        kind: EventKind::Tc,
        description,
        answer: AnswerRule::Any,
        seed_rule: "",
    }
}

const fn tc_rule(
    name: &'static str,
    description: &'static str,
    answer: AnswerRule,
    seed_rule: &'static str,
) -> EventSpec {
    EventSpec {
        name,
        kind: EventKind::Tc,
        description,
        answer,
        seed_rule,
    }
}

const ONLY_PASS: &str = "The only valid response is PASS.";
const NOTHING_IN_IT: &str = "The only valid response is PASS with nothing in it.";
const NO_MODIFICATION: &str =
    "The only valid response is PASS with no modification to the original stanza.";

use AnswerRule::{NotifyOnly, PassOnly, PassUnmodified};

/// Every event, JSM first, each group in the seed's table order. [`EventId`] indexes this.
#[rustfmt::skip]
pub static CATALOG: [EventSpec; 40] = [
    jsm("e_SESSION", "Packets sent during login, which is the creation of a new session."),
    jsm("e_OFFLINE", "Packets sent to users who are offline. Offline users are users who do not \
        have an active session."),
    jsm("e_SERVER", "Packets sent directly to the server for internal handling."),
    jsm("e_DELIVER", "The first event for packets coming in from another server; the second \
        event for packets coming in from a user on the same server. (The first event for \
        packets coming in from the same server is es_IN.)"),
    jsm("e_AUTH", "IQ packets sent during authentication."),
    jsm("e_REGISTER", "Packets generated during registration of a new account by a user."),
    jsm("e_STATS", "Packets sent periodically that contain server statistics."),
    jsm("e_DISCOFEAT", "Triggered when a user sends a disco#info query."),
    jsm("e_PRISESSION", "Determines a user's primary or default session when the user has more \
        than one session. An EventBroker component may dictate the choice of a user's primary \
        session."),
    jsm("es_IN", "Generated when a stanza is about to be received by a user's session."),
    jsm("es_OUT", "Generated when a stanza is sent from a user's session."),
    jsm("es_END", "Packets generated when a user logs out."),
    tc("onServicePacket", "The system receives a packet from the router that is either \
        addressed directly to the TC service or to a room that does not currently exist on the \
        system."),
    tc("onBeforeRoomCreate", "A gear is attempting to create a room on the system."),
    tc_rule("onAfterRoomCreate", "A room has been successfully created on the system.",
        PassUnmodified, NO_MODIFICATION),
    tc_rule("onServiceDiscoInfo", "An entity has sent a disco#info packet to the TC service.",
        PassOnly, ONLY_PASS),
    tc_rule("onServiceReconfig", "The TC service receives a signal to reconfigure itself.",
        NotifyOnly, "The only valid response is PASS. This is a notification event only. The \
        XDB packet will be of a type=\"set\". The external component should not respond to this \
        packet."),
    tc_rule("onDestroy", "A room owner closes a room.", PassOnly, ONLY_PASS),
    tc("onClose", "A gear requests to close a room."),
    tc("onPacket", "A new XML stanza is directed at a room, or participant within a room."),
    tc_rule("onMetaInfoGet", "Room configuration information is available.", PassOnly, ONLY_PASS),
    tc("onBeforeMetaInfoSet", "A room configuration is about to be modified by a user."),
    tc_rule("onAfterMetaInfoSet", "A room configuration has been modified by a user.",
        PassUnmodified, NOTHING_IN_IT),
    tc_rule("onExamineRoom", "A Jabber entity requests information, either by browse or disco, \
        from a room.", PassOnly, ONLY_PASS),
    tc("onBeforeChangeUser", "A change has been requested of a user role, nickname, or \
        presence. This includes on entry, exit, nick change, availability change, or any role \
        change (granting or revoking voice, moderator privilege)."),
    tc_rule("onAfterChangeUser", "A user has changed.", PassUnmodified, NOTHING_IN_IT),
    tc("onBeforeChangeAffiliation", "A user affiliation is about to change."),
    tc_rule("onAfterChangeAffiliation", "A user affiliation has changed.",
        PassUnmodified, NOTHING_IN_IT),
    tc("onBeforeRemoveAffiliation", "A user affiliation is about to be removed."),
    tc_rule("onAfterRemoveAffiliation", "A user affiliation has been removed.",
        PassUnmodified, NO_MODIFICATION),
    tc("onBeforeJoin", "A user is about to join a room."),
    tc_rule("onAfterJoin", "A user has joined a room.", PassUnmodified, NOTHING_IN_IT),
    tc_rule("onLeave", "A user has left a room.", PassOnly, ONLY_PASS),
    tc("onBeforeSubject", "A room subject is about to change."),
    tc_rule("onAfterSubject", "A room subject has changed.", PassUnmodified, NOTHING_IN_IT),
    tc("onBeforeInvite", "A user is about to be invited to a room."),
    tc_rule("onAfterInvite", "A user has been invited to a room.", PassUnmodified, NOTHING_IN_IT),
    tc_rule("onHistory", "A room's history has been requested.", PassOnly, ONLY_PASS),
    tc("onBeforeSend", "A message is about to be sent in a room."),
    tc("onBeforeBroadcast", "A message is about to be broadcast in a room."),
];

/// A catalog event: a one-byte index into [`CATALOG`], cheap to copy into every in-flight event.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord)]
pub struct EventId(u8);

// Names are bucketed by length at compile time so a lookup compares against at most
// `BUCKET` candidates of the right length, without hashing or allocating.
const MAX_NAME_LEN: usize = 25;
const BUCKET: usize = 6;
const EMPTY: u8 = u8::MAX;

static BY_LEN: [[u8; BUCKET]; MAX_NAME_LEN + 1] = build_buckets();

const fn build_buckets() -> [[u8; BUCKET]; MAX_NAME_LEN + 1] {
    let mut table = [[EMPTY; BUCKET]; MAX_NAME_LEN + 1];
    let mut i = 0;
    while i < CATALOG.len() {
        let len = CATALOG[i].name.len();
        assert!(len <= MAX_NAME_LEN, "raise MAX_NAME_LEN");
        let mut slot = 0;
        while table[len][slot] != EMPTY {
            slot += 1;
            assert!(slot < BUCKET, "raise BUCKET");
        }
        table[len][slot] = i as u8;
        i += 1;
    }
    table
}

impl EventId {
    /// Number of events in the catalog (12 JSM + 28 TC).
    pub const COUNT: usize = CATALOG.len();

    /// The event with exactly this name (case-sensitive, as the seed spells it).
    pub fn lookup(name: &[u8]) -> Option<EventId> {
        let bucket = BY_LEN.get(name.len())?;
        for &index in bucket {
            if index == EMPTY {
                return None;
            }
            if CATALOG[index as usize].name.as_bytes() == name {
                return Some(EventId(index));
            }
        }
        None
    }

    /// The event at `index` in [`CATALOG`], if there is one.
    pub fn from_index(index: usize) -> Option<EventId> {
        if index < Self::COUNT {
            Some(EventId(index as u8))
        } else {
            None
        }
    }

    /// Every event in catalog order.
    pub fn all() -> impl Iterator<Item = EventId> {
        (0..Self::COUNT as u8).map(EventId)
    }

    /// The event's catalog row.
    pub fn spec(self) -> &'static EventSpec {
        &CATALOG[self.0 as usize]
    }

    /// The position in the catalog, for per-event tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The event's name exactly as the seed spells it (`e_SESSION`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// JSM or TC.
    pub fn kind(self) -> EventKind {
        self.spec().kind
    }

    /// Which answers a server may give to it.
    pub fn answer(self) -> AnswerRule {
        self.spec().answer
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The catalog as an aligned table, for `palisade events`.
pub fn render_catalog() -> String {
    let name_width = CATALOG.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let answer_width = CATALOG
        .iter()
        .map(|e| e.answer.summary().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let header = format!(
        "{:<4}  {:<name_width$}  {:<answer_width$}  DESCRIPTION\n",
        "KIND", "EVENT", "VALID ANSWERS"
    );
    out.push_str(&header);
    for spec in CATALOG.iter() {
        out.push_str(&format!(
            "{:<4}  {:<name_width$}  {:<answer_width$}  {}",
            spec.kind.as_str(),
            spec.name,
            spec.answer.summary(),
            spec.description
        ));
        if !spec.seed_rule.is_empty() {
            out.push(' ');
            out.push_str(spec.seed_rule);
        }
        out.push('\n');
    }
    let jsm = CATALOG.iter().filter(|e| e.kind == EventKind::Jsm).count();
    out.push_str(&format!(
        "\n{} events: {} JSM, {} TC.\nJSM entries filter on packet type: {}.\n",
        CATALOG.len(),
        jsm,
        CATALOG.len() - jsm,
        PacketFilter::NAMES.join(", ")
    ));
    out.push_str(
        "A refused answer is logged as a protocol violation and treated as a plain PASS.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str) -> AnswerRule {
        EventId::lookup(name.as_bytes())
            .map(|e| e.answer())
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn counts_match_the_seed_tables() {
        let jsm = CATALOG.iter().filter(|e| e.kind == EventKind::Jsm).count();
        let tc = CATALOG.iter().filter(|e| e.kind == EventKind::Tc).count();
        assert_eq!((jsm, tc, EventId::COUNT), (12, 28, 40));
    }

    #[test]
    fn jsm_events_in_seed_order_and_all_answerable() {
        let names: Vec<_> = CATALOG
            .iter()
            .filter(|e| e.kind == EventKind::Jsm)
            .map(|e| e.name)
            .collect();
        assert_eq!(
            names,
            [
                "e_SESSION",
                "e_OFFLINE",
                "e_SERVER",
                "e_DELIVER",
                "e_AUTH",
                "e_REGISTER",
                "e_STATS",
                "e_DISCOFEAT",
                "e_PRISESSION",
                "es_IN",
                "es_OUT",
                "es_END"
            ]
        );
        for name in names {
            assert_eq!(rule(name), AnswerRule::Any, "{name}");
        }
    }

    #[test]
    fn every_tc_event_has_the_seed_answer_rule() {
        use AnswerRule::*;
        let expected: [(&str, AnswerRule); 28] = [
            ("onServicePacket", Any),
            ("onBeforeRoomCreate", Any),
            ("onAfterRoomCreate", PassUnmodified),
            ("onServiceDiscoInfo", PassOnly),
            ("onServiceReconfig", NotifyOnly),
            ("onDestroy", PassOnly),
            ("onClose", Any),
            ("onPacket", Any),
            ("onMetaInfoGet", PassOnly),
            ("onBeforeMetaInfoSet", Any),
            ("onAfterMetaInfoSet", PassUnmodified),
            ("onExamineRoom", PassOnly),
            ("onBeforeChangeUser", Any),
            ("onAfterChangeUser", PassUnmodified),
            ("onBeforeChangeAffiliation", Any),
            ("onAfterChangeAffiliation", PassUnmodified),
            ("onBeforeRemoveAffiliation", Any),
            ("onAfterRemoveAffiliation", PassUnmodified),
            ("onBeforeJoin", Any),
            ("onAfterJoin", PassUnmodified),
            ("onLeave", PassOnly),
            ("onBeforeSubject", Any),
            ("onAfterSubject", PassUnmodified),
            ("onBeforeInvite", Any),
            ("onAfterInvite", PassUnmodified),
            ("onHistory", PassOnly),
            ("onBeforeSend", Any),
            ("onBeforeBroadcast", Any),
        ];
        let tc: Vec<_> = CATALOG
            .iter()
            .filter(|e| e.kind == EventKind::Tc)
            .map(|e| e.name)
            .collect();
        let expected_names: Vec<_> = expected.iter().map(|(n, _)| *n).collect();
        assert_eq!(tc, expected_names, "seed table order");
        for (name, want) in expected {
            assert_eq!(rule(name), want, "{name}");
        }
    }

    #[test]
    fn seed_rule_wording_matches_the_rule() {
        for spec in CATALOG.iter() {
            let want = match spec.answer {
                AnswerRule::Any => "",
                AnswerRule::PassOnly => ONLY_PASS,
                AnswerRule::PassUnmodified if spec.seed_rule.contains("nothing in it") => {
                    NOTHING_IN_IT
                }
                AnswerRule::PassUnmodified => NO_MODIFICATION,
                AnswerRule::NotifyOnly => {
                    assert!(spec.seed_rule.contains("notification event only"));
                    continue;
                }
            };
            assert_eq!(spec.seed_rule, want, "{}", spec.name);
        }
    }

    #[test]
    fn permits_follows_protocol_section_4() {
        use AnswerKind::*;
        let all = [Pass, PassModified, Handle, Error];
        let allowed = |r: AnswerRule| -> Vec<AnswerKind> {
            all.iter().filter(|a| r.permits(**a)).copied().collect()
        };
        assert_eq!(allowed(AnswerRule::Any), Vec::from(all));
        assert_eq!(allowed(AnswerRule::PassOnly), vec![Pass, PassModified]);
        assert_eq!(allowed(AnswerRule::PassUnmodified), vec![Pass]);
        assert_eq!(allowed(AnswerRule::NotifyOnly), Vec::<AnswerKind>::new());
        assert!(!AnswerRule::NotifyOnly.expects_answer());
        assert!(AnswerRule::PassOnly.expects_answer());
    }

    #[test]
    fn lookup_finds_every_name_and_rejects_near_misses() {
        for (i, spec) in CATALOG.iter().enumerate() {
            let id = EventId::lookup(spec.name.as_bytes());
            assert_eq!(id.map(EventId::index), Some(i), "{}", spec.name);
            assert_eq!(id.map(EventId::name), Some(spec.name));
        }
        for bad in [
            "",
            "e_session",
            "ES_OUT",
            "es_OUT ",
            "onBeforeBroadcastX",
            "e_",
            "x",
        ] {
            assert_eq!(EventId::lookup(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(EventId::lookup(&[b'a'; 300]), None);
        assert_eq!(EventId::lookup(&[0xff, 0xfe]), None);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = CATALOG.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventId::COUNT);
    }

    #[test]
    fn render_lists_every_event_once_aligned() {
        let text = render_catalog();
        for spec in CATALOG.iter() {
            let line = text
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(spec.name))
                .unwrap_or_else(|| panic!("{} missing", spec.name));
            assert!(line.starts_with(spec.kind.as_str()));
            assert!(line.contains(spec.answer.summary()));
            assert!(line.contains(spec.description));
        }
        assert!(text.contains("40 events: 12 JSM, 28 TC."));
        let header = text.lines().next().unwrap_or_default();
        let col = header.find("DESCRIPTION").unwrap_or(0);
        for spec in CATALOG.iter() {
            let line = text
                .lines()
                .find(|l| l.contains(spec.description))
                .unwrap_or_default();
            assert_eq!(line.find(spec.description), Some(col), "{}", spec.name);
        }
    }
}
