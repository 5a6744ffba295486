//! Compliance profiles: named lists of entries (event, packet type, handling, fire-and-forget),
//! the naming rule, and the built-in `SystemDefaultComplianceProfile`.
//!
//! This file owns what a profile is and which of its entries applies to an event. It must not
//! know about servers, nodes or routing priority (the matcher combines those), nor about files.

use super::catalog::{EventId, EventKind, PacketFilter, PacketType};
use std::fmt;

/// The name of the built-in profile, which always exists and cannot be redefined.
pub const SYSTEM_DEFAULT_PROFILE: &str = "SystemDefaultComplianceProfile";

/// An index into `Config::profiles` (the built-in profile is always 0).
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord)]
pub struct ProfileId(pub u16);

impl ProfileId {
    /// The built-in `SystemDefaultComplianceProfile`.
    pub const SYSTEM_DEFAULT: ProfileId = ProfileId(0);

    /// The position in `Config::profiles`, for per-profile tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What an error (or a timeout) from the compliance server does to the event.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Default)]
pub enum Handling {
    /// The error goes back to the originator and the event stops.
    #[default]
    Bounce,
    /// The error is discarded and the event goes on.
    Pass,
}

impl Handling {
    /// The spellings accepted in configuration.
    pub const NAMES: [&'static str; 2] = ["bounce", "pass"];

    /// `bounce` or `pass`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Handling> {
        match text {
            "bounce" => Some(Handling::Bounce),
            "pass" => Some(Handling::Pass),
            _ => None,
        }
    }

    /// The spelling in configuration: `bounce` or `pass`.
    pub fn as_str(self) -> &'static str {
        match self {
            Handling::Bounce => "bounce",
            Handling::Pass => "pass",
        }
    }
}

impl fmt::Display for Handling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured event of a profile.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub struct Entry {
    /// The event the entry sends to the profile's servers.
    pub event: EventId,
    /// Always `All` for TC events, which have no packet type.
    pub packet: PacketFilter,
    /// What an error or timeout from the server does to the event.
    pub handling: Handling,
    /// Send and go on without waiting for the answer.
    pub fire_and_forget: bool,
}

impl Entry {
    /// An entry as configured.
    pub fn new(
        event: EventId,
        packet: PacketFilter,
        handling: Handling,
        fire_and_forget: bool,
    ) -> Entry {
        Entry {
            event,
            packet,
            handling,
            fire_and_forget,
        }
    }

    /// The seed's caution: such an event is sent to the compliance server and then discarded.
    pub fn drops_event(&self) -> bool {
        self.handling == Handling::Bounce && self.fire_and_forget
    }
}

/// A compliance profile: the events it sends to its servers, and how each is handled.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Profile {
    /// Its name (letters and digits only), as servers are assigned to it.
    pub name: String,
    /// Free text for the administrator.
    pub description: String,
    /// Its entries, in file order.
    pub entries: Vec<Entry>,
}

impl Profile {
    /// `SystemDefaultComplianceProfile` exactly as docs/configuration.md lists it: four JSM and five TC
    /// events, all waiting for an answer.
    pub fn system_default() -> Profile {
        let entries = [
            ("e_SESSION", PacketFilter::All, Handling::Pass),
            ("es_END", PacketFilter::All, Handling::Pass),
            ("es_IN", PacketFilter::Message, Handling::Bounce),
            ("es_OUT", PacketFilter::Message, Handling::Bounce),
            ("onBeforeInvite", PacketFilter::All, Handling::Bounce),
            ("onBeforeJoin", PacketFilter::All, Handling::Bounce),
            ("onBeforeRoomCreate", PacketFilter::All, Handling::Bounce),
            ("onBeforeSend", PacketFilter::All, Handling::Bounce),
            ("onLeave", PacketFilter::All, Handling::Bounce),
        ]
        .iter()
        .filter_map(|&(name, packet, handling)| {
            EventId::lookup(name.as_bytes()).map(|event| Entry::new(event, packet, handling, false))
        })
        .collect();
        Profile {
            name: SYSTEM_DEFAULT_PROFILE.to_string(),
            description: "Built-in default profile (read-only)".to_string(),
            entries,
        }
    }

    /// True for the built-in `SystemDefaultComplianceProfile`.
    pub fn is_system_default(&self) -> bool {
        self.name == SYSTEM_DEFAULT_PROFILE
    }

    /// The entry that applies to `event` with packet type `packet` (`None`: the stanza is not a
    /// message, iq or presence, so only an `all` entry can apply). An entry for the exact packet
    /// type wins over an `all` entry, so `es_OUT/message` can refine `es_OUT/all`.
    pub fn entry_for(&self, event: EventId, packet: Option<PacketType>) -> Option<&Entry> {
        let mut general = None;
        for entry in self.entries.iter().filter(|e| e.event == event) {
            if event.kind() == EventKind::Tc || entry.packet == PacketFilter::All {
                general = general.or(Some(entry));
            } else if packet.is_some_and(|p| entry.packet.matches(p)) {
                return Some(entry);
            }
        }
        general
    }
}

/// Why a profile name is refused: the seed allows letters and digits only, no spaces.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ProfileNameError {
    /// The name is empty.
    Empty,
    /// The name holds something other than an ASCII letter or digit.
    BadChar {
        /// The first such character.
        ch: char,
    },
}

impl fmt::Display for ProfileNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileNameError::Empty => f.write_str("a profile name cannot be empty"),
            ProfileNameError::BadChar { ch } => write!(
                f,
                "a profile name may contain only letters and digits, not {ch:?}"
            ),
        }
    }
}

impl std::error::Error for ProfileNameError {}

/// Checks the seed's rule for profile names: ASCII letters and digits, nothing else.
pub fn check_profile_name(name: &str) -> Result<(), ProfileNameError> {
    if name.is_empty() {
        return Err(ProfileNameError::Empty);
    }
    match name.chars().find(|c| !c.is_ascii_alphanumeric()) {
        Some(ch) => Err(ProfileNameError::BadChar { ch }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> EventId {
        EventId::lookup(name.as_bytes()).unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn system_default_has_exactly_config_md_content() {
        let p = Profile::system_default();
        assert!(p.is_system_default());
        let got: Vec<_> = p
            .entries
            .iter()
            .map(|e| (e.event.name(), e.packet, e.handling, e.fire_and_forget))
            .collect();
        use Handling::{Bounce, Pass};
        use PacketFilter::{All, Message};
        assert_eq!(
            got,
            vec![
                ("e_SESSION", All, Pass, false),
                ("es_END", All, Pass, false),
                ("es_IN", Message, Bounce, false),
                ("es_OUT", Message, Bounce, false),
                ("onBeforeInvite", All, Bounce, false),
                ("onBeforeJoin", All, Bounce, false),
                ("onBeforeRoomCreate", All, Bounce, false),
                ("onBeforeSend", All, Bounce, false),
                ("onLeave", All, Bounce, false),
            ]
        );
        let jsm = p
            .entries
            .iter()
            .filter(|e| e.event.kind() == EventKind::Jsm)
            .count();
        assert_eq!(
            (jsm, p.entries.len() - jsm),
            (4, 5),
            "seed: four JSM and five TC events"
        );
    }

    #[test]
    fn entry_for_respects_packet_filters() {
        let p = Profile::system_default();
        let out = id("es_OUT");
        assert!(p.entry_for(out, Some(PacketType::Message)).is_some());
        assert!(p.entry_for(out, Some(PacketType::Presence)).is_none());
        assert!(p.entry_for(out, None).is_none());
        assert!(p.entry_for(id("e_SESSION"), Some(PacketType::Iq)).is_some());
        assert!(p.entry_for(id("e_SESSION"), None).is_some());
        assert!(p
            .entry_for(id("onLeave"), Some(PacketType::Presence))
            .is_some());
        assert!(p
            .entry_for(id("onPacket"), Some(PacketType::Message))
            .is_none());
    }

    #[test]
    fn specific_entry_beats_all_whatever_the_order() {
        let out = id("es_OUT");
        let general = Entry::new(out, PacketFilter::All, Handling::Pass, false);
        let specific = Entry::new(out, PacketFilter::Message, Handling::Bounce, false);
        for entries in [vec![general, specific], vec![specific, general]] {
            let p = Profile {
                name: "P".into(),
                description: String::new(),
                entries,
            };
            assert_eq!(p.entry_for(out, Some(PacketType::Message)), Some(&specific));
            assert_eq!(p.entry_for(out, Some(PacketType::Iq)), Some(&general));
            assert_eq!(p.entry_for(out, None), Some(&general));
        }
    }

    #[test]
    fn bounce_and_forget_drops() {
        let e = |h, ff| Entry::new(id("es_OUT"), PacketFilter::All, h, ff).drops_event();
        assert!(e(Handling::Bounce, true));
        assert!(!e(Handling::Bounce, false));
        assert!(!e(Handling::Pass, true));
    }

    #[test]
    fn profile_names_are_letters_and_digits() {
        assert_eq!(check_profile_name("EthicalWall2"), Ok(()));
        assert_eq!(check_profile_name(""), Err(ProfileNameError::Empty));
        assert_eq!(
            check_profile_name("Ethical Wall"),
            Err(ProfileNameError::BadChar { ch: ' ' })
        );
        assert_eq!(
            check_profile_name("IM-log"),
            Err(ProfileNameError::BadChar { ch: '-' })
        );
        assert_eq!(
            check_profile_name("Prüfung"),
            Err(ProfileNameError::BadChar { ch: 'ü' })
        );
        assert_eq!(
            ProfileNameError::BadChar { ch: '_' }.to_string(),
            "a profile name may contain only letters and digits, not '_'"
        );
    }

    #[test]
    fn handling_spellings() {
        assert_eq!(Handling::parse("bounce"), Some(Handling::Bounce));
        assert_eq!(Handling::parse("pass"), Some(Handling::Pass));
        assert_eq!(Handling::parse("Pass"), None);
        assert_eq!(Handling::default(), Handling::Bounce);
    }
}
