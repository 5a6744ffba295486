//! The compliance policy: the event catalog, profiles, compliance servers and routers as the
//! administrator configures them, the conversation key, and the matcher that turns all of it
//! into per-event chains at load time.
//!
//! This module is pure: it performs no I/O other than reading the configuration file it is
//! asked to load, and uses no clock, executor or thread. The engine calls it on the hot path
//! through [`EventId::lookup`], [`PacketType::classify`], [`conversation_key`],
//! [`CompiledPolicy::node_id`] and [`CompiledPolicy::chain`], none of which allocates beyond the
//! key it returns.
// A core module: it reads peer bytes or decides on them, and needs no unsafe code.
#![forbid(unsafe_code)]
// No clock, file, randomness or randomly seeded map here (clippy.toml lists them).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![deny(missing_docs)]

pub mod catalog;
pub mod config;
pub mod det_hash;
pub mod duration;
pub mod jid;
pub mod key;
pub mod matcher;
pub mod packet;
pub mod profile;
pub mod reload;

pub use catalog::{
    render_catalog, AnswerKind, AnswerRule, EventId, EventKind, EventSpec, PacketFilter,
    PacketType, CATALOG,
};
pub use config::{check_report, ClientIdentity, DialTls, FileRef, TlsConfig};
pub use config::{
    default_config, generated_component_name, load_bytes, load_str, unreadable_file, AcceptMode,
    Config, Diagnostic, GatewayConfig, Limits, ListenConfig, Loaded, LogConfig, LogFormat,
    LogLevel, RouterConfig, ServerConfig, ServerId, ServerMode, Severity, SpoolConfig, Timers,
    DEFAULT_TOML,
};
pub use det_hash::{DetHashMap, DetHashSet, DetState};
pub use duration::{format_duration, parse_duration, DurationError};
pub use jid::{Jid, JidError, ParsedJid};
pub use key::{conversation_key, conversation_key_into, Address, KeyError};
pub use matcher::{CompiledPolicy, NodeId, ServerInfo, Step};
pub use profile::{
    check_profile_name, Entry, Handling, Profile, ProfileId, ProfileNameError,
    SYSTEM_DEFAULT_PROFILE,
};

/// What `palisade events` prints.
pub fn events_command() -> String {
    render_catalog()
}
