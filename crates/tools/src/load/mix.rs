//! The event mix of `palisade load`: which events, in what proportions, and which kind of
//! stanza each carries (`--mix es_OUT=40,es_IN=30,e_SESSION=5,es_OUT.presence=5`).
//!
//! Each item is `EVENT[.PACKET]=WEIGHT`. EVENT is a catalog name (`palisade events`); PACKET
//! (`message`, `presence`, `subscription`, `iq`) picks the stanza for events that can carry
//! several, otherwise each event gets the stanza it most typically carries (e_SESSION a session
//! iq, es_END an unavailable presence, onBeforeJoin a MUC join presence...). Owns the syntax
//! and the weighted draw; must not write stanzas (see `gen.rs`).

use crate::policy::{EventId, EventKind};
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::fmt;

/// The mix used when none is given: a chat-heavy day with some logins and room traffic.
pub const DEFAULT_MIX: &str =
    "es_OUT=40,es_IN=30,e_SESSION=5,es_END=5,onBeforeJoin=5,onBeforeSend=10,onLeave=5";

/// The kind of stanza an event carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Template {
    /// A one-to-one chat message with a body.
    Chat,
    /// A directed presence with show, status and caps.
    Presence,
    /// A presence subscription request.
    Subscription,
    /// A one-to-one iq (vCard get).
    UserIq,
    /// A login: the session iq of the next user in turn.
    Login,
    /// A logout: the unavailable presence of the next user in turn.
    Logout,
    /// An iq to the server (disco#info).
    ServerIq,
    RoomJoin,
    RoomMessage,
    RoomLeave,
    RoomSubject,
    RoomInvite,
    /// A MUC admin iq (affiliation change).
    RoomAdmin,
    /// A disco#info iq to a room.
    RoomInfo,
    /// A MUC owner iq destroying a room.
    RoomDestroy,
    /// An iq to the conference service itself (no room).
    Service,
}

impl Template {
    /// What `event` carries by default.
    pub fn default_for(event: EventId) -> Template {
        match event.name() {
            "e_SESSION" => Template::Login,
            "es_END" => Template::Logout,
            "es_IN" | "es_OUT" | "e_OFFLINE" | "e_DELIVER" => Template::Chat,
            "e_PRISESSION" => Template::Presence,
            "e_SERVER" | "e_AUTH" | "e_REGISTER" | "e_STATS" | "e_DISCOFEAT" => Template::ServerIq,
            "onLeave" => Template::RoomLeave,
            "onBeforeSend" | "onBeforeBroadcast" | "onPacket" => Template::RoomMessage,
            "onBeforeSubject" | "onAfterSubject" => Template::RoomSubject,
            "onBeforeInvite" | "onAfterInvite" => Template::RoomInvite,
            "onBeforeChangeAffiliation"
            | "onAfterChangeAffiliation"
            | "onBeforeRemoveAffiliation"
            | "onAfterRemoveAffiliation"
            | "onBeforeMetaInfoSet"
            | "onAfterMetaInfoSet" => Template::RoomAdmin,
            "onMetaInfoGet" | "onExamineRoom" | "onHistory" => Template::RoomInfo,
            "onDestroy" | "onClose" => Template::RoomDestroy,
            "onServicePacket" | "onServiceDiscoInfo" | "onServiceReconfig" => Template::Service,
            _ => match event.kind() {
                EventKind::Jsm => Template::Chat,
                EventKind::Tc => Template::RoomJoin,
            },
        }
    }

    /// What `event` carries when the mix asks for `packet`.
    fn for_packet(event: EventId, packet: &str) -> Option<Template> {
        Some(match (event.kind(), packet) {
            (EventKind::Jsm, "message") => Template::Chat,
            (EventKind::Jsm, "presence") => Template::Presence,
            (EventKind::Jsm, "subscription") => Template::Subscription,
            (EventKind::Jsm, "iq") => Template::UserIq,
            (EventKind::Tc, "message") => Template::RoomMessage,
            (EventKind::Tc, "presence") => Template::RoomJoin,
            (EventKind::Tc, "iq") => Template::RoomInfo,
            _ => return None,
        })
    }

    /// Room events carry the room's JID as the event's `room` attribute (docs/protocol.md §2).
    pub fn has_room(self) -> bool {
        matches!(
            self,
            Template::RoomJoin
                | Template::RoomMessage
                | Template::RoomLeave
                | Template::RoomSubject
                | Template::RoomInvite
                | Template::RoomAdmin
                | Template::RoomInfo
                | Template::RoomDestroy
        )
    }
}

/// One weighted item of a mix.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MixEntry {
    pub event: EventId,
    pub template: Template,
    pub weight: u32,
}

/// A weighted set of events. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    entries: Vec<MixEntry>,
    /// Running sums of the weights, for the draw.
    cumulative: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MixError {
    /// An item without `=WEIGHT`.
    NoWeight(String),
    BadWeight(String),
    UnknownEvent {
        name: String,
        suggestion: Option<&'static str>,
    },
    UnknownPacket {
        event: String,
        packet: String,
    },
    Empty,
}

impl fmt::Display for MixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MixError::NoWeight(item) => write!(f, "mix item {item:?}: write EVENT=WEIGHT, e.g. es_OUT=40"),
            MixError::BadWeight(item) => write!(f, "mix item {item:?}: the weight must be a whole number"),
            MixError::UnknownEvent { name, suggestion } => {
                write!(f, "unknown event {name:?} in the mix")?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean {s}?)"),
                    None => write!(f, " (`palisade events` lists them)"),
                }
            }
            MixError::UnknownPacket { event, packet } => write!(
                f,
                "{event}.{packet}: the packet must be message, presence, subscription or iq (room events: message, presence or iq)"
            ),
            MixError::Empty => f.write_str("the mix has no event with a weight above 0"),
        }
    }
}

impl std::error::Error for MixError {}

impl Mix {
    /// Builds a mix from `(EVENT[.PACKET], weight)` items.
    pub fn from_items<'a>(
        items: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<Mix, MixError> {
        let mut entries = Vec::new();
        for (name, weight) in items {
            let (event_name, packet) = match name.split_once('.') {
                Some((e, p)) => (e, Some(p)),
                None => (name, None),
            };
            let event =
                EventId::lookup(event_name.as_bytes()).ok_or_else(|| MixError::UnknownEvent {
                    name: event_name.to_string(),
                    suggestion: EventId::all()
                        .map(|e| e.name())
                        .min_by_key(|n| strsim::levenshtein(n, event_name))
                        .filter(|n| strsim::levenshtein(n, event_name) <= 3),
                })?;
            let template = match packet {
                None => Template::default_for(event),
                Some(p) => {
                    Template::for_packet(event, p).ok_or_else(|| MixError::UnknownPacket {
                        event: event_name.to_string(),
                        packet: p.to_string(),
                    })?
                }
            };
            if weight > 0 {
                entries.push(MixEntry {
                    event,
                    template,
                    weight,
                });
            }
        }
        if entries.is_empty() {
            return Err(MixError::Empty);
        }
        let mut sum = 0u32;
        let cumulative = entries
            .iter()
            .map(|e| {
                sum = sum.saturating_add(e.weight);
                sum
            })
            .collect();
        Ok(Mix {
            entries,
            cumulative,
        })
    }

    /// From a table of weights (a profile's `[mix]`).
    pub fn from_table(table: &BTreeMap<String, u32>) -> Result<Mix, MixError> {
        Mix::from_items(table.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    pub fn entries(&self) -> &[MixEntry] {
        &self.entries
    }

    /// One weighted draw.
    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> &MixEntry {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let r = rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= r);
        &self.entries[i.min(self.entries.len() - 1)]
    }
}

impl std::str::FromStr for Mix {
    type Err = MixError;

    fn from_str(text: &str) -> Result<Mix, MixError> {
        let mut items = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, weight) = item
                .split_once('=')
                .ok_or_else(|| MixError::NoWeight(item.to_string()))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| MixError::BadWeight(item.to_string()))?;
            items.push((name.trim(), weight));
        }
        Mix::from_items(items)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{}={}", e.event.name(), e.weight))
            .collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mix_parses_with_typical_stanzas() {
        let mix: Mix = DEFAULT_MIX.parse().unwrap();
        assert_eq!(mix.entries().len(), 7);
        let t = |name: &str| {
            mix.entries()
                .iter()
                .find(|e| e.event.name() == name)
                .unwrap()
                .template
        };
        assert_eq!(t("es_OUT"), Template::Chat);
        assert_eq!(t("e_SESSION"), Template::Login);
        assert_eq!(t("es_END"), Template::Logout);
        assert_eq!(t("onBeforeJoin"), Template::RoomJoin);
        assert_eq!(t("onBeforeSend"), Template::RoomMessage);
        assert_eq!(t("onLeave"), Template::RoomLeave);
        assert_eq!(mix.to_string(), DEFAULT_MIX);
    }

    #[test]
    fn every_catalog_event_has_a_stanza() {
        for e in EventId::all() {
            let t = Template::default_for(e);
            if e.kind() == EventKind::Tc && !e.name().starts_with("onService") {
                assert!(t.has_room(), "{e}");
            }
        }
    }

    #[test]
    fn packets_and_errors() {
        let mix: Mix = "es_OUT.presence=1, es_IN.subscription=1, onBeforeSend.iq=1, es_END=0"
            .parse()
            .unwrap();
        let ts: Vec<Template> = mix.entries().iter().map(|e| e.template).collect();
        assert_eq!(
            ts,
            [
                Template::Presence,
                Template::Subscription,
                Template::RoomInfo
            ]
        );
        assert!(matches!(
            "es_OUT".parse::<Mix>(),
            Err(MixError::NoWeight(_))
        ));
        assert!(matches!(
            "es_OUT=x".parse::<Mix>(),
            Err(MixError::BadWeight(_))
        ));
        assert!(matches!(
            "es_OTU=1".parse::<Mix>(),
            Err(MixError::UnknownEvent {
                suggestion: Some("es_OUT"),
                ..
            })
        ));
        assert!(matches!(
            "onLeave.subscription=1".parse::<Mix>(),
            Err(MixError::UnknownPacket { .. })
        ));
        assert!(matches!("es_OUT=0".parse::<Mix>(), Err(MixError::Empty)));
        assert!(matches!("".parse::<Mix>(), Err(MixError::Empty)));
    }

    #[test]
    fn draws_follow_the_weights() {
        let mix: Mix = "es_OUT=75,es_IN=25".parse().unwrap();
        let mut rng = Rng::new(9);
        let outs = (0..100_000)
            .filter(|_| mix.pick(&mut rng).event.name() == "es_OUT")
            .count();
        assert!((74_000..76_000).contains(&outs), "{outs}");
    }
}
