//! Stream-level error conditions (RFC 6120 §4.9.3) and the framer's own findings.
//!
//! This module only names failures and says whose fault they are; it neither writes bytes nor
//! decides what to do about them (the stream state machine does).

use std::fmt;

/// A stream error condition, as sent in `<stream:error>`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// `bad-format`: XML the stream cannot process (RFC 6120 §4.9.3.1).
    BadFormat,
    /// `conflict`: a stream for the same name already exists.
    Conflict,
    /// `connection-timeout`: the peer was silent too long.
    ConnectionTimeout,
    /// `host-unknown`: the name the peer announced is not one we serve.
    HostUnknown,
    /// `improper-addressing`: a stanza without the addresses it needs.
    ImproperAddressing,
    /// `internal-server-error`: our own fault, not the peer's.
    InternalServerError,
    /// `invalid-from`: a `from` the peer may not use.
    InvalidFrom,
    /// `invalid-namespace`: the wrong stream or content namespace.
    InvalidNamespace,
    /// `invalid-xml`: XML outside what the stream accepts.
    InvalidXml,
    /// `not-authorized`: a stanza before the handshake, or a wrong handshake.
    NotAuthorized,
    /// `not-well-formed`: XML that is not well-formed.
    NotWellFormed,
    /// `policy-violation`: the peer went past a local limit.
    PolicyViolation,
    /// `remote-connection-failed`: a connection the stream depends on failed.
    RemoteConnectionFailed,
    /// `resource-constraint`: we lack the resources to serve the stream.
    ResourceConstraint,
    /// `restricted-xml`: comments, processing instructions, DTDs or entities (RFC 6120 §11.1).
    RestrictedXml,
    /// `system-shutdown`: the gateway is stopping.
    SystemShutdown,
    /// `undefined-condition`: none of the others fits.
    UndefinedCondition,
    /// `unsupported-stanza-type`: a first-level element that is not a stanza.
    UnsupportedStanzaType,
}

impl Condition {
    /// The element name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::BadFormat => "bad-format",
            Condition::Conflict => "conflict",
            Condition::ConnectionTimeout => "connection-timeout",
            Condition::HostUnknown => "host-unknown",
            Condition::ImproperAddressing => "improper-addressing",
            Condition::InternalServerError => "internal-server-error",
            Condition::InvalidFrom => "invalid-from",
            Condition::InvalidNamespace => "invalid-namespace",
            Condition::InvalidXml => "invalid-xml",
            Condition::NotAuthorized => "not-authorized",
            Condition::NotWellFormed => "not-well-formed",
            Condition::PolicyViolation => "policy-violation",
            Condition::RemoteConnectionFailed => "remote-connection-failed",
            Condition::ResourceConstraint => "resource-constraint",
            Condition::RestrictedXml => "restricted-xml",
            Condition::SystemShutdown => "system-shutdown",
            Condition::UndefinedCondition => "undefined-condition",
            Condition::UnsupportedStanzaType => "unsupported-stanza-type",
        }
    }

    /// Parses a condition element name; unknown names map to `UndefinedCondition`
    /// because a peer may use conditions from a later RFC.
    pub fn from_name(name: &[u8]) -> Condition {
        const ALL: [Condition; 18] = [
            Condition::BadFormat,
            Condition::Conflict,
            Condition::ConnectionTimeout,
            Condition::HostUnknown,
            Condition::ImproperAddressing,
            Condition::InternalServerError,
            Condition::InvalidFrom,
            Condition::InvalidNamespace,
            Condition::InvalidXml,
            Condition::NotAuthorized,
            Condition::NotWellFormed,
            Condition::PolicyViolation,
            Condition::RemoteConnectionFailed,
            Condition::ResourceConstraint,
            Condition::RestrictedXml,
            Condition::SystemShutdown,
            Condition::UndefinedCondition,
            Condition::UnsupportedStanzaType,
        ];
        ALL.into_iter()
            .find(|c| c.as_str().as_bytes() == name)
            .unwrap_or(Condition::UndefinedCondition)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the framer found wrong with the bytes a peer sent. Every variant is the peer's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// Syntax that is not well-formed XML (unbalanced tags, bad attribute syntax, stray text...).
    Malformed(&'static str),
    /// A DOCTYPE or entity declaration.
    Doctype,
    /// A processing instruction other than a leading XML declaration.
    ProcessingInstruction,
    /// An XML comment.
    Comment,
    /// A reference to an entity other than the five predefined ones.
    UndeclaredEntity,
    /// One stanza (or the stream header) longer than the configured limit.
    StanzaTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Elements nested deeper than the configured limit.
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
    /// One element with more attributes than the configured limit.
    TooManyAttributes {
        /// The configured limit.
        limit: usize,
    },
    /// The stream's root element is not `<stream:stream>` in the streams namespace.
    NotAStream,
}

impl FrameError {
    /// The stream error condition this finding is reported with (docs/protocol.md §1.4, §6).
    pub fn condition(&self) -> Condition {
        match self {
            FrameError::InvalidUtf8 | FrameError::Malformed(_) => Condition::NotWellFormed,
            FrameError::Doctype
            | FrameError::ProcessingInstruction
            | FrameError::Comment
            | FrameError::UndeclaredEntity => Condition::RestrictedXml,
            FrameError::StanzaTooLarge { .. }
            | FrameError::TooDeep { .. }
            | FrameError::TooManyAttributes { .. } => Condition::PolicyViolation,
            FrameError::NotAStream => Condition::InvalidNamespace,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::InvalidUtf8 => f.write_str("input is not valid UTF-8"),
            FrameError::Malformed(what) => write!(f, "XML is not well-formed: {what}"),
            FrameError::Doctype => f.write_str("DTDs and entity declarations are not allowed"),
            FrameError::ProcessingInstruction => {
                f.write_str("processing instructions are not allowed")
            }
            FrameError::Comment => f.write_str("XML comments are not allowed"),
            FrameError::UndeclaredEntity => {
                f.write_str("only the five predefined entities may be referenced")
            }
            FrameError::StanzaTooLarge { limit } => {
                write!(f, "stanza exceeds the limit of {limit} bytes")
            }
            FrameError::TooDeep { limit } => {
                write!(f, "elements nested deeper than the limit of {limit}")
            }
            FrameError::TooManyAttributes { limit } => {
                write!(f, "element has more than the limit of {limit} attributes")
            }
            FrameError::NotAStream => {
                f.write_str("root element is not <stream:stream> in the streams namespace")
            }
        }
    }
}

impl std::error::Error for FrameError {}
