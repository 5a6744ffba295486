//! Limits on what a peer may send (docs/protocol.md §6). Plain data: enforcement lives in the framer.

/// Per-stream input limits. Depth counts elements inside one stanza, the stanza itself being 1.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest stanza (or stream header) in bytes, whatever the chunking.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting inside one stanza, the stanza being 1.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
        }
    }
}
