//! XMPP packet types as compliance profiles see them: the type derived from a stanza, and the
//! `packet` filter of a JSM profile entry.
//!
//! This file owns classification and matching only; both run on the hot path and must not
//! allocate. It must not know about events, profiles or configuration files.

use std::fmt;

/// The packet type of a stanza, derived from it (docs/protocol.md §2), never declared.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum PacketType {
    /// An `<iq>`.
    Iq,
    /// A `<message>`.
    Message,
    /// A `<presence>` other than a subscription.
    Presence,
    /// A presence of type subscribe, subscribed, unsubscribe or unsubscribed.
    Subscription,
}

impl PacketType {
    /// Every packet type, in [`PacketType::index`] order.
    pub const ALL: [PacketType; 4] = [
        PacketType::Iq,
        PacketType::Message,
        PacketType::Presence,
        PacketType::Subscription,
    ];

    /// Classifies a stanza by its local name and `type` attribute; `None` for anything that is
    /// not one of the three stanza kinds.
    pub fn classify(local_name: &[u8], type_attr: Option<&[u8]>) -> Option<PacketType> {
        match local_name {
            b"message" => Some(PacketType::Message),
            b"iq" => Some(PacketType::Iq),
            b"presence" => match type_attr {
                Some(b"subscribe" | b"subscribed" | b"unsubscribe" | b"unsubscribed") => {
                    Some(PacketType::Subscription)
                }
                _ => Some(PacketType::Presence),
            },
            _ => None,
        }
    }

    /// The spelling in configuration and in the catalog: `iq`, `message`, `presence`,
    /// `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketType::Iq => "iq",
            PacketType::Message => "message",
            PacketType::Presence => "presence",
            PacketType::Subscription => "subscription",
        }
    }

    /// A dense index 0..4, for tables.
    pub fn index(self) -> usize {
        match self {
            PacketType::Iq => 0,
            PacketType::Message => 1,
            PacketType::Presence => 2,
            PacketType::Subscription => 3,
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `packet` of a JSM profile entry: which packet types the entry applies to.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Default)]
pub enum PacketFilter {
    /// Every packet type (the default).
    #[default]
    All,
    /// `<iq>` only.
    Iq,
    /// `<message>` only.
    Message,
    /// `<presence>` other than subscriptions.
    Presence,
    /// Subscription presences only.
    Subscription,
}

impl PacketFilter {
    /// The spellings accepted in configuration, in the order the seed lists them.
    pub const NAMES: [&'static str; 5] = ["all", "iq", "message", "presence", "subscription"];

    /// `presence` and `subscription` are distinct: a subscription request is not matched by a
    /// `presence` entry, as the seed lists them as separate packet types.
    pub fn matches(self, packet: PacketType) -> bool {
        match self {
            PacketFilter::All => true,
            PacketFilter::Iq => packet == PacketType::Iq,
            PacketFilter::Message => packet == PacketType::Message,
            PacketFilter::Presence => packet == PacketType::Presence,
            PacketFilter::Subscription => packet == PacketType::Subscription,
        }
    }

    /// One of [`PacketFilter::NAMES`]; `None` for anything else.
    pub fn parse(text: &str) -> Option<PacketFilter> {
        match text {
            "all" => Some(PacketFilter::All),
            "iq" => Some(PacketFilter::Iq),
            "message" => Some(PacketFilter::Message),
            "presence" => Some(PacketFilter::Presence),
            "subscription" => Some(PacketFilter::Subscription),
            _ => None,
        }
    }

    /// The spelling in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketFilter::All => "all",
            PacketFilter::Iq => "iq",
            PacketFilter::Message => "message",
            PacketFilter::Presence => "presence",
            PacketFilter::Subscription => "subscription",
        }
    }
}

impl fmt::Display for PacketFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_packets() {
        use PacketType::*;
        assert_eq!(
            PacketType::classify(b"message", Some(b"chat")),
            Some(Message)
        );
        assert_eq!(PacketType::classify(b"iq", Some(b"get")), Some(Iq));
        assert_eq!(PacketType::classify(b"presence", None), Some(Presence));
        assert_eq!(
            PacketType::classify(b"presence", Some(b"unavailable")),
            Some(Presence)
        );
        for t in ["subscribe", "subscribed", "unsubscribe", "unsubscribed"] {
            assert_eq!(
                PacketType::classify(b"presence", Some(t.as_bytes())),
                Some(Subscription)
            );
        }
        assert_eq!(
            PacketType::classify(b"message", Some(b"subscribe")),
            Some(Message)
        );
        assert_eq!(PacketType::classify(b"handshake", None), None);
        assert_eq!(PacketType::classify(b"Message", None), None);
    }

    #[test]
    fn filters_match_only_their_type() {
        for filter in PacketFilter::NAMES
            .iter()
            .filter_map(|n| PacketFilter::parse(n))
        {
            for packet in PacketType::ALL {
                let want = filter == PacketFilter::All || filter.as_str() == packet.as_str();
                assert_eq!(filter.matches(packet), want, "{filter} vs {packet}");
            }
        }
        assert_eq!(PacketFilter::parse("Message"), None);
        assert_eq!(PacketFilter::default(), PacketFilter::All);
    }
}
