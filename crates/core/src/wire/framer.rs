//! The incremental stanza framer: bytes in, validated top-level elements out.
//!
//! Feed it arbitrary chunks; it yields the stream header, each complete stanza (as a zero-copy
//! [`Stanza`] view of the receive buffer) and the stream's end. It works in two passes:
//!
//! 1. a resumable *boundary scan* that jumps between `<`, `>` and quotes with `memchr`, tracks
//!    element depth, refuses comments, DTDs and processing instructions as soon as it sees them,
//!    and enforces the size and depth limits before a stanza is complete, so memory stays bounded
//!    whatever a peer sends;
//! 2. once a stanza is complete, one *validation* pass over just its bytes: each tag is read
//!    (names, attributes, quoting, matching end tags, attribute limits and duplicates, the
//!    spans that [`Stanza`] exposes) by the framer's own byte tokenizer (`tags`) when its names
//!    are ASCII, and by `xmlparser` otherwise or whenever the fast one is unsure (every error
//!    comes from xmlparser's reading); the character data between tags is checked by a
//!    table-driven scan of our own (forbidden characters, `]]>`, entity references), and UTF-8
//!    is checked over the stanza's bytes only when one of them is not ASCII.
//!
//! A stanza already complete at the front of the buffer skips the boundary scan: the
//! validation pass finds its end itself.
//!
//! The framer knows nothing of XEP-0114 (handshakes, names, namespaces of stanzas) and nothing of
//! time or sockets: the stream state machine drives it.

use super::error::FrameError;
use super::limits::Limits;
use super::stanza::{AttrSpan, ElementRef, RootAttrs, Span, Stanza};
use super::xml::{self, is_space};
use bytes::{Buf, Bytes, BytesMut};
use smallvec::SmallVec;
use tags::{EndKind, Stop, Tok};
use xmlparser::{ElementEnd, Token, Tokenizer};

mod tags;

/// The namespace of the `<stream:stream>` root.
pub const STREAMS_NS: &str = "http://etherx.jabber.org/streams";

/// The fast path's window starts at this many bytes and follows the size of the last stanza
/// (twice it) up to [`FAST_WINDOW_MAX`]: each attempt checks the window's UTF-8 once, so
/// keeping it near the stanzas' size keeps that check proportional to the bytes framed, and a
/// burst of small stanzas after a large one does not pay for the large one's window.
const FAST_WINDOW_MIN: usize = 1024;
/// Stanzas longer than this (rare: file transfers, large forms) always take the boundary scan.
const FAST_WINDOW_MAX: usize = 16 * 1024;

/// What the framer yields.
#[derive(Debug)]
pub enum Frame {
    /// The stream's opening tag, with any leading XML declaration.
    Header(Header),
    /// A complete top-level element inside the stream.
    Stanza(Stanza),
    /// The stream's closing tag.
    End,
}

/// A parsed stream header. Attribute values are unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The prefix bound to the streams namespace (`stream` in practice).
    pub prefix: String,
    /// The default namespace (`xmlns`), e.g. `jabber:component:accept`.
    pub default_ns: Option<String>,
    /// The header's `to` (unescaped), if present.
    pub to: Option<String>,
    /// The header's `from` (unescaped), if present.
    pub from: Option<String>,
    /// The header's `id` (unescaped), if present.
    pub id: Option<String>,
    /// The header's `version`, if present.
    pub version: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Scan {
    /// Between tags.
    Text,
    /// Just after `<`.
    TagOpen,
    /// Inside a start tag; `quote` is the open quote character or 0.
    StartTag { quote: u8 },
    /// Inside `</...>`.
    EndTag,
    /// After `<!`, waiting for enough bytes to tell CDATA from a declaration.
    Markup,
    /// Inside `<![CDATA[`, looking for `]]>`.
    Cdata,
    /// Inside a leading `<?xml ...?>`.
    Declaration,
}

/// The incremental framer. See the module documentation.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// Scan position in `buf`.
    pos: usize,
    /// Position of the `<` that opened the tag being scanned.
    tag_start: usize,
    scan: Scan,
    /// Open elements, the stream root included.
    depth: usize,
    /// A frame (stanza or header) has started at `buf[0]` and is not complete yet.
    in_frame: bool,
    /// Only the very first construct may be an XML declaration.
    declaration_allowed: bool,
    /// The header's qualified name, to check the closing tag against.
    root_name: Option<Vec<u8>>,
    /// Names of the elements open in the stanza being scanned, outermost first (at most
    /// `max_depth`): an end tag that does not match is refused as soon as it is seen, not when
    /// the stanza timer runs out.
    open: Vec<Span>,
    ended: bool,
    error: Option<FrameError>,
    limits: Limits,
    /// How many bytes the fast path checks and parses at most (see [`FAST_WINDOW_MIN`]).
    fast_window: usize,
    /// Where the region handed out by [`Framer::spare`] starts.
    spare_from: Option<usize>,
    /// Reused by every validation pass, so that none allocates once warmed up.
    scratch: Scratch,
}

/// Working space of [`parse_element`].
#[derive(Debug, Default)]
struct Scratch {
    stack: Vec<Open>,
    attr_names: Vec<Span>,
    /// Prefixes declared (`xmlns:p`) by the open elements, with the depth that declared each.
    declared: Vec<(Span, usize)>,
    /// Prefixes the start tag being read uses (its name's and its attributes').
    used: Vec<Span>,
    /// Prefixes the stream header declares: in scope in every stanza.
    header_prefixes: Vec<Box<[u8]>>,
}

impl Framer {
    /// A framer expecting a stream header first, enforcing `limits` on everything after it.
    pub fn new(limits: Limits) -> Framer {
        Framer {
            buf: BytesMut::new(),
            pos: 0,
            tag_start: 0,
            scan: Scan::Text,
            depth: 0,
            in_frame: false,
            declaration_allowed: true,
            root_name: None,
            open: Vec::new(),
            ended: false,
            error: None,
            limits,
            fast_window: FAST_WINDOW_MIN,
            spare_from: None,
            scratch: Scratch::default(),
        }
    }

    /// Appends received bytes (a copy). Once the input was refused or the stream ended,
    /// further bytes are dropped.
    pub fn feed(&mut self, data: &[u8]) {
        if self.error.is_none() && !self.ended {
            self.buf.extend_from_slice(data);
        }
    }

    /// A zeroed region of at least `len` bytes at the end of the buffer, to read into directly;
    /// [`Framer::commit`] then keeps the first `n` bytes of it. Bytes already buffered can never
    /// be changed from outside.
    pub fn spare(&mut self, len: usize) -> &mut [u8] {
        let from = self.spare_from.unwrap_or(self.buf.len());
        self.buf.truncate(from);
        self.buf.resize(from + len, 0);
        self.spare_from = Some(from);
        &mut self.buf[from..]
    }

    /// Keeps `n` bytes of the region returned by [`Framer::spare`].
    pub fn commit(&mut self, n: usize) {
        if let Some(from) = self.spare_from.take() {
            let keep = if self.error.is_none() && !self.ended {
                n
            } else {
                0
            };
            self.buf.truncate(from + keep.min(self.buf.len() - from));
        }
    }

    /// Room left in the receive buffer's allocation: a read that fits in it costs no
    /// allocation.
    pub fn room(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Lets the receive buffer go if it holds nothing and more than `keep` bytes of room, so an
    /// idle connection does not keep the room a burst needed. The next bytes get a buffer of
    /// their own size.
    pub fn release_idle(&mut self, keep: usize) {
        if self.buf.is_empty() && self.spare_from.is_none() && self.buf.capacity() > keep {
            self.buf = BytesMut::new();
        }
    }

    /// Bytes received and not yet yielded as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True while a frame has started and is not complete (for the stanza-completion timer).
    pub fn in_frame(&self) -> bool {
        self.in_frame && self.error.is_none() && !self.ended
    }

    /// True once the stream's closing tag was framed.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next complete frame, `None` when more input is needed. Errors are sticky: once the
    /// input is refused, every later call returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.ended {
            return Ok(None);
        }
        if let Some(stanza) = self.try_whole_stanza() {
            return Ok(Some(Frame::Stanza(stanza)));
        }
        match self.scan_to_boundary() {
            Ok(None) => Ok(None),
            Ok(Some(Boundary::Header(end))) => {
                let bytes = self.take(end);
                let header = self.parse_header(bytes);
                header
                    .map(|h| Some(Frame::Header(h)))
                    .map_err(|e| self.fail(e))
            }
            Ok(Some(Boundary::Stanza(end))) => {
                // The next stanza of this size can take the fast path.
                self.fast_window = (2 * end).clamp(FAST_WINDOW_MIN, FAST_WINDOW_MAX);
                let bytes = self.take(end);
                let stanza = validate_stanza(bytes, &self.limits, &mut self.scratch);
                stanza
                    .map(|s| Some(Frame::Stanza(s)))
                    .map_err(|e| self.fail(e))
            }
            Ok(Some(Boundary::Close(end))) => {
                let tag = self.take(end);
                let name = tag[2..tag.len() - 1].trim_ascii_end();
                if self.root_name.as_deref() != Some(name) {
                    return Err(
                        self.fail(FrameError::Malformed("end tag does not match the stream"))
                    );
                }
                self.ended = true;
                Ok(Some(Frame::End))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.error = Some(e.clone());
        // Nothing more will be framed: let the refused bytes go now.
        self.buf = BytesMut::new();
        self.pos = 0;
        e
    }

    /// Splits the first `end` bytes off the buffer as one frame.
    fn take(&mut self, end: usize) -> Bytes {
        let bytes = self.buf.split_to(end).freeze();
        self.pos = 0;
        self.in_frame = false;
        bytes
    }

    /// Drops `n` bytes (inter-stanza whitespace) from the front of the buffer.
    fn discard(&mut self, n: usize) {
        self.buf.advance(n);
    }

    /// The fast path: when a stanza starts at the front of the buffer and is already complete,
    /// one pass finds its end and validates it (the framer's own tag tokenizer, or xmlparser
    /// for tags it does not read). Anything else (a stanza cut by the end of the buffer, or
    /// input that is refused) is left to the boundary scan, which is exact and resumable; both
    /// paths share [`parse_with`], so they agree on every verdict.
    fn try_whole_stanza(&mut self) -> Option<Stanza> {
        if self.in_frame || self.depth != 1 || self.scan != Scan::Text || self.pos != 0 {
            return None;
        }
        let ws = self.buf.iter().take_while(|&&b| is_space(b)).count();
        self.discard(ws);
        if self.buf.len() < 2 || self.buf[0] != b'<' || matches!(self.buf[1], b'/' | b'!' | b'?') {
            return None;
        }
        // Only a bounded window is checked, so that a read full of small stanzas costs one
        // window per stanza, not the whole buffer per stanza; a stanza that does not fit goes
        // to the boundary scan, which is exact. The window ends on a character boundary, never
        // inside a character that straddles it: a UTF-8 character is at most 4 bytes, so at
        // most 3 continuation bytes (`10xxxxxx`) separate the cut from its first byte.
        let mut cap = self
            .buf
            .len()
            .min(self.limits.max_stanza_bytes)
            .min(self.fast_window);
        for _ in 0..3 {
            if self.buf.get(cap).is_some_and(|&b| b & 0xC0 == 0x80) {
                cap -= 1;
            }
        }
        let parsed = match parse_fast(&self.buf[..cap], &self.limits, &mut self.scratch) {
            Ok(parsed) => parsed,
            Err(Fallback::BoundaryScan) => return None,
            // A tag the fast tokenizer does not read (a non-ASCII name, say): xmlparser reads
            // the window, checked as UTF-8 first.
            Err(Fallback::Xmlparser) => {
                let text = match std::str::from_utf8(&self.buf[..cap]) {
                    Ok(text) => text,
                    // Bytes that are not UTF-8 (the peer's fault): the stanza may still end
                    // before them; if not, the boundary scan refuses it.
                    Err(e) => std::str::from_utf8(&self.buf[..e.valid_up_to()]).ok()?,
                };
                parse_element(text, &self.limits, &mut self.scratch)
                    .ok()
                    .flatten()?
            }
        };
        if self.root_name.as_deref() == Some(&self.buf[parsed.name.range()]) {
            // A second stream header: the boundary scan refuses it.
            return None;
        }
        // Room for the next stanza if it is up to twice this one's size.
        self.fast_window = (2 * parsed.end).clamp(FAST_WINDOW_MIN, FAST_WINDOW_MAX);
        let bytes = self.take(parsed.end);
        Some(parsed.into_stanza(bytes))
    }

    /// Advances the boundary scan as far as the buffered bytes allow.
    ///
    /// A frame (stanza or header) always starts at `buf[0]`, and the scan never looks at its
    /// bytes past the limit: a frame longer than the limit is refused exactly when it is, and
    /// whatever comes after the limit cannot change the verdict with the chunking.
    fn scan_to_boundary(&mut self) -> Result<Option<Boundary>, FrameError> {
        let limit = self.limits.max_stanza_bytes;
        loop {
            if self.in_frame && self.pos >= limit && self.buf.len() > limit {
                return Err(FrameError::StanzaTooLarge { limit });
            }
            let end = if self.in_frame {
                self.buf.len().min(limit)
            } else {
                self.buf.len()
            };
            if self.pos >= end {
                return Ok(None);
            }
            let rest = &self.buf[self.pos..end];
            match self.scan {
                Scan::Text => {
                    let lt = memchr::memchr(b'<', rest);
                    let text_len = lt.unwrap_or(rest.len());
                    if self.depth <= 1 && !rest[..text_len].iter().all(|&b| is_space(b)) {
                        return Err(FrameError::Malformed("character data outside a stanza"));
                    }
                    if !self.in_frame {
                        // Whitespace between stanzas (keepalives): drop it so it never piles up.
                        self.discard(self.pos + text_len);
                        self.pos = 0;
                    } else {
                        self.pos += text_len;
                    }
                    if lt.is_some() {
                        if self.depth <= 1 && !self.in_frame {
                            self.in_frame = true;
                        }
                        self.tag_start = self.pos;
                        self.pos += 1;
                        self.scan = Scan::TagOpen;
                    }
                }
                Scan::TagOpen => match rest[0] {
                    b'/' => {
                        self.pos += 1;
                        self.scan = Scan::EndTag;
                    }
                    b'!' => {
                        self.pos += 1;
                        self.scan = Scan::Markup;
                    }
                    b'?' if self.depth == 0 && self.declaration_allowed => {
                        self.pos += 1;
                        self.scan = Scan::Declaration;
                    }
                    b'?' => return Err(FrameError::ProcessingInstruction),
                    _ => self.scan = Scan::StartTag { quote: 0 },
                },
                Scan::StartTag {
                    quote: q @ (b'"' | b'\''),
                } => match memchr::memchr(q, rest) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.scan = Scan::StartTag { quote: 0 };
                    }
                    None => self.pos = end,
                },
                Scan::StartTag { .. } => match memchr::memchr3(b'>', b'"', b'\'', rest) {
                    Some(i) if rest[i] == b'>' => {
                        let gt = self.pos + i;
                        self.pos = gt + 1;
                        self.scan = Scan::Text;
                        self.declaration_allowed = false;
                        let empty = gt > self.tag_start + 1 && self.buf[gt - 1] == b'/';
                        if let Some(b) = self.start_tag_closed(gt, empty)? {
                            return Ok(Some(b));
                        }
                    }
                    Some(i) => {
                        self.pos += i + 1;
                        self.scan = Scan::StartTag { quote: rest[i] };
                    }
                    None => self.pos = end,
                },
                Scan::EndTag => match memchr::memchr(b'>', rest) {
                    Some(i) => {
                        let gt = self.pos + i;
                        self.pos = gt + 1;
                        self.scan = Scan::Text;
                        if self.depth >= 2 {
                            // Inside a stanza: the end tag must close the innermost element
                            // (this also catches the stream's end tag cutting a stanza short).
                            let name = self.buf[self.tag_start + 2..gt].trim_ascii_end();
                            let open = self.open.pop().map(|s| &self.buf[s.range()]);
                            if open != Some(name) {
                                return Err(FrameError::Malformed(
                                    "end tag does not match start tag",
                                ));
                            }
                        }
                        match self.depth {
                            0 => return Err(FrameError::Malformed("end tag without a start tag")),
                            1 => {
                                self.depth = 0;
                                return Ok(Some(Boundary::Close(self.pos)));
                            }
                            2 => {
                                self.depth = 1;
                                return Ok(Some(Boundary::Stanza(self.pos)));
                            }
                            _ => self.depth -= 1,
                        }
                    }
                    None => self.pos = end,
                },
                Scan::Markup => {
                    let tag = &self.buf[self.tag_start..end];
                    const CDATA: &[u8] = b"<![CDATA[";
                    match tag.get(2) {
                        None => {
                            self.pos = end;
                            continue;
                        }
                        Some(b'-') => return Err(FrameError::Comment),
                        Some(b'[') => {}
                        Some(c) if c.is_ascii_uppercase() => return Err(FrameError::Doctype),
                        Some(_) => return Err(FrameError::Malformed("unknown markup after <!")),
                    }
                    let n = tag.len().min(CDATA.len());
                    if tag[..n] != CDATA[..n] {
                        return Err(FrameError::Malformed("unknown markup after <!["));
                    }
                    if n < CDATA.len() {
                        self.pos = end;
                        continue;
                    }
                    if self.depth < 2 {
                        return Err(FrameError::Malformed("CDATA outside a stanza"));
                    }
                    self.pos = self.tag_start + CDATA.len();
                    self.scan = Scan::Cdata;
                }
                Scan::Cdata => match memchr::memchr(b'>', rest) {
                    Some(i) => {
                        let gt = self.pos + i;
                        self.pos = gt + 1;
                        let content_start = self.tag_start + 9;
                        if gt >= content_start + 2 && &self.buf[gt - 2..gt] == b"]]" {
                            self.scan = Scan::Text;
                        }
                    }
                    None => self.pos = end,
                },
                Scan::Declaration => match memchr::memchr(b'>', rest) {
                    Some(i) => {
                        let gt = self.pos + i;
                        self.pos = gt + 1;
                        if self.buf[gt - 1] == b'?' {
                            let decl = &self.buf[self.tag_start..gt];
                            if decl.len() < 6 || &decl[..5] != b"<?xml" || !is_space(decl[5]) {
                                return Err(FrameError::ProcessingInstruction);
                            }
                            self.declaration_allowed = false;
                            self.scan = Scan::Text;
                        }
                    }
                    None => self.pos = end,
                },
            }
        }
    }

    /// Bookkeeping at the `>` of a start tag.
    fn start_tag_closed(&mut self, gt: usize, empty: bool) -> Result<Option<Boundary>, FrameError> {
        let name_start = self.tag_start + 1;
        let name_end = self.buf[name_start..gt]
            .iter()
            .position(|&b| is_space(b) || b == b'/')
            .map_or(gt, |i| name_start + i);
        if self.depth == 1 && self.root_name.as_deref() == Some(&self.buf[name_start..name_end]) {
            return Err(FrameError::Malformed(
                "a second stream header inside the stream",
            ));
        }
        if empty {
            return match self.depth {
                0 => Err(FrameError::Malformed("the stream root cannot be empty")),
                1 => Ok(Some(Boundary::Stanza(self.pos))),
                _ => Ok(None),
            };
        }
        self.depth += 1;
        // The stream root is depth 1; a stanza's own depth starts at its root.
        if self.depth - 1 > self.limits.max_depth {
            return Err(FrameError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        if self.depth == 2 {
            self.open.clear();
        }
        if self.depth >= 2 {
            self.open.push(Span::new(name_start, name_end));
        }
        Ok((self.depth == 1).then_some(Boundary::Header(self.pos)))
    }

    fn parse_header(&mut self, bytes: Bytes) -> Result<Header, FrameError> {
        let text = std::str::from_utf8(&bytes).map_err(|_| FrameError::InvalidUtf8)?;
        let mut header = Header::default();
        let mut qname = None;
        let mut streams_ns = None;
        let mut attributes = 0;
        let mut prefixes = Vec::new();
        for token in Tokenizer::from(text) {
            match token.map_err(|_| FrameError::Malformed("bad stream header"))? {
                Token::Declaration { .. } => {}
                Token::ElementStart { prefix, span, .. } => {
                    header.prefix = prefix.as_str().to_owned();
                    qname = Some(span.as_str().as_bytes()[1..].to_vec());
                }
                Token::Attribute {
                    prefix,
                    local,
                    value,
                    ..
                } => {
                    attributes += 1;
                    if attributes > self.limits.max_attributes {
                        return Err(FrameError::TooManyAttributes {
                            limit: self.limits.max_attributes,
                        });
                    }
                    xml::check_references(value.as_bytes())?;
                    let value = Some(xml::unescape(value.as_str()).into_owned());
                    if prefix.as_str() == "xmlns" {
                        prefixes.push(local.as_str().as_bytes().into());
                    }
                    match (prefix.as_str(), local.as_str()) {
                        ("", "xmlns") => header.default_ns = value,
                        ("xmlns", p) if p == header.prefix => streams_ns = value,
                        ("", "to") => header.to = value,
                        ("", "from") => header.from = value,
                        ("", "id") => header.id = value,
                        ("", "version") => header.version = value,
                        _ => {}
                    }
                }
                Token::ElementEnd { .. } => break,
                _ => return Err(FrameError::Malformed("bad stream header")),
            }
        }
        let is_stream = qname
            .as_deref()
            .is_some_and(|q| super::stanza::local(q) == b"stream");
        let ns_ok = if header.prefix.is_empty() {
            header.default_ns.as_deref() == Some(STREAMS_NS)
        } else {
            streams_ns.as_deref() == Some(STREAMS_NS)
        };
        if !is_stream || !ns_ok {
            return Err(FrameError::NotAStream);
        }
        self.root_name = qname;
        self.scratch.header_prefixes = prefixes;
        Ok(header)
    }
}

enum Boundary {
    /// The stream header ends at this offset.
    Header(usize),
    /// A stanza ends at this offset.
    Stanza(usize),
    /// The stream's closing tag ends at this offset.
    Close(usize),
}

/// One open element during validation.
#[derive(Debug)]
struct Open {
    name: Span,
    /// Index in the stanza's element list, for depth 1 and 2.
    recorded: Option<usize>,
}

/// What [`parse_with`] learned about the element at the start of its input.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    /// Offset just past the element's end.
    end: usize,
    name: Span,
    attrs: RootAttrs,
    elements: SmallVec<[ElementRef; 4]>,
}

impl Parsed {
    fn into_stanza(self, bytes: Bytes) -> Stanza {
        Stanza {
            bytes,
            name: self.name,
            attrs: self.attrs,
            elements: self.elements,
        }
    }
}

/// The slow path's validation of one complete stanza found by the boundary scan: the fast
/// tokenizer when it reads the whole stanza, xmlparser otherwise (and for every error).
fn validate_stanza(
    bytes: Bytes,
    limits: &Limits,
    scratch: &mut Scratch,
) -> Result<Stanza, FrameError> {
    if let Ok(parsed) = parse_fast(&bytes, limits, scratch) {
        if parsed.end == bytes.len() {
            return Ok(parsed.into_stanza(bytes));
        }
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| FrameError::InvalidUtf8)?;
    match parse_element(text, limits, scratch)? {
        Some(parsed) if parsed.end == text.len() => Ok(parsed.into_stanza(bytes)),
        _ => Err(FrameError::Malformed("invalid XML syntax")),
    }
}

/// Which tokenizer reads the tags of a stanza.
#[derive(Copy, Clone)]
enum Tags<'t> {
    /// [`tags::tag`], on bytes; it stands aside for anything it does not read exactly.
    Fast,
    /// xmlparser, on checked UTF-8 text: exact, and the source of every verdict the fast one
    /// leaves open.
    Exact(&'t str),
}

/// How one pass over the element at the start of its input ended.
#[derive(Debug)]
enum Outcome {
    /// The element is complete and valid; `classes` are the byte classes seen in its
    /// character data and attribute values ([`check_chars`]).
    Done { parsed: Parsed, classes: u8 },
    /// The input ends before the element does.
    Incomplete,
    /// The fast tokenizer stood aside: only xmlparser can tell.
    Unsupported,
}

/// What [`parse_fast`] leaves to its caller when it yields no element.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Fallback {
    /// A tag the fast tokenizer does not read: xmlparser may.
    Xmlparser,
    /// Incomplete or refused: the boundary scan decides (and xmlparser says what is wrong).
    BoundaryScan,
}

/// The fast pass over `bytes` (not checked as UTF-8 beforehand): the element if the fast
/// tokenizer read it whole and its bytes are UTF-8. It agrees with [`parse_element`] on every
/// element it yields (the property tests check this).
fn parse_fast(bytes: &[u8], limits: &Limits, scratch: &mut Scratch) -> Result<Parsed, Fallback> {
    // The pass reads from a `<`: both callers start there, but what does not is xmlparser's
    // to refuse, never this tokenizer's to read from its second byte on.
    if bytes.first() != Some(&b'<') {
        return Err(Fallback::Xmlparser);
    }
    match parse_with(bytes, Tags::Fast, limits, scratch) {
        Ok(Outcome::Done { parsed, classes }) => {
            // Names are ASCII on this path; only text and values can hold other bytes.
            if classes & NON_ASCII != 0 && std::str::from_utf8(&bytes[..parsed.end]).is_err() {
                return Err(Fallback::BoundaryScan);
            }
            Ok(parsed)
        }
        Ok(Outcome::Unsupported) => Err(Fallback::Xmlparser),
        Ok(Outcome::Incomplete) | Err(_) => Err(Fallback::BoundaryScan),
    }
}

/// One pass over the element that starts `text`: checks well-formedness, the restricted-XML
/// rules and the limits, and records the spans a [`Stanza`] exposes. Returns `Ok(None)` when
/// `text` ends before the element does.
///
/// Every tag (names, attributes, end tags) is tokenized by xmlparser; the character data
/// between tags is checked by [`check_text`], a table-driven byte scan: text is most of a
/// chat stanza's bytes, and decoding it character by character was most of the framer's cost.
fn parse_element(
    text: &str,
    limits: &Limits,
    scratch: &mut Scratch,
) -> Result<Option<Parsed>, FrameError> {
    match parse_with(text.as_bytes(), Tags::Exact(text), limits, scratch)? {
        Outcome::Done { parsed, .. } => Ok(Some(parsed)),
        // xmlparser never stands aside.
        Outcome::Incomplete | Outcome::Unsupported => Ok(None),
    }
}

/// The pass shared by both tokenizers: markup, character data and the bookkeeping of
/// [`ElementPass`] are the same; only the reading of each tag differs.
fn parse_with(
    bytes: &[u8],
    tags: Tags<'_>,
    limits: &Limits,
    scratch: &mut Scratch,
) -> Result<Outcome, FrameError> {
    let mut p = ElementPass {
        bytes,
        limits,
        scratch,
        elements: SmallVec::new(),
        root_name: Span::default(),
        root: RootAttrs::default(),
        done: None,
        attr_bits: 0,
    };
    p.scratch.stack.clear();
    p.scratch.attr_names.clear();
    p.scratch.declared.clear();
    let mut classes = 0u8;
    let mut pos = 0;
    loop {
        // `pos` is at a `<`. Markup xmlparser would refuse or skip is handled here; a tag is
        // read from its `<` up to the token that ends it.
        match bytes.get(pos + 1) {
            None => return Ok(Outcome::Incomplete),
            Some(b'!') => match markup_end(bytes, pos, &mut classes)? {
                Some(end) => pos = end,
                None => return Ok(Outcome::Incomplete),
            },
            Some(b'?') => return Err(FrameError::ProcessingInstruction),
            Some(_) => {
                let read = match tags {
                    Tags::Fast => tags::tag(bytes, pos, &mut classes, &mut p)?,
                    Tags::Exact(text) => exact_tag(text, pos, &mut p)?,
                };
                if let Some(end) = p.done {
                    let parsed = Parsed {
                        end,
                        name: p.root_name,
                        attrs: p.root,
                        elements: std::mem::take(&mut p.elements),
                    };
                    return Ok(Outcome::Done { parsed, classes });
                }
                match read {
                    Ok(end) => pos = end,
                    Err(Stop::Incomplete) => return Ok(Outcome::Incomplete),
                    Err(Stop::Unsupported) => return Ok(Outcome::Unsupported),
                }
            }
        }
        match next_tag(bytes, pos, &mut classes)? {
            Some(lt) => pos = lt,
            None => return Ok(Outcome::Incomplete),
        }
    }
}

/// xmlparser reads the tag whose `<` is at `lt`; its tokens go to `p` as [`Tok`]s. Within a
/// window, a tag cut short is an error here; the caller treats any error of a possibly
/// partial window as "not complete yet".
fn exact_tag(
    text: &str,
    lt: usize,
    p: &mut ElementPass<'_>,
) -> Result<Result<usize, Stop>, FrameError> {
    let base = text.as_ptr() as usize;
    let span = |s: &str| {
        Span::new(
            s.as_ptr() as usize - base,
            s.as_ptr() as usize - base + s.len(),
        )
    };
    // Only a non-empty prefix points into the input.
    let prefix = |s: &str| (!s.is_empty()).then(|| span(s));
    let mut tokens = Tokenizer::from_fragment(text, lt..text.len());
    loop {
        let Some(token) = tokens.next() else {
            return Ok(Err(Stop::Incomplete));
        };
        let tok = match token.map_err(|_| FrameError::Malformed("invalid XML syntax"))? {
            Token::ElementStart {
                prefix: pre,
                span: s,
                ..
            } => Tok::Start {
                span: span(s.as_str()),
                prefix: prefix(pre.as_str()),
            },
            Token::Attribute {
                prefix: pre,
                local,
                value,
                ..
            } => Tok::Attr {
                prefix: prefix(pre.as_str()),
                local: span(local.as_str()),
                value: span(value.as_str()),
                references: true,
            },
            Token::ElementEnd { end, span: s } => Tok::End {
                kind: match end {
                    ElementEnd::Open => EndKind::Open,
                    ElementEnd::Empty => EndKind::Empty,
                    ElementEnd::Close(..) => EndKind::Close,
                },
                span: span(s.as_str()),
            },
            // Tags never hold these; character data is checked between tags.
            Token::Text { .. } | Token::Cdata { .. } => {
                return Err(FrameError::Malformed("invalid XML syntax"))
            }
            Token::Comment { .. } => return Err(FrameError::Comment),
            Token::ProcessingInstruction { .. } | Token::Declaration { .. } => {
                return Err(FrameError::ProcessingInstruction)
            }
            Token::DtdStart { .. }
            | Token::EmptyDtd { .. }
            | Token::EntityDeclaration { .. }
            | Token::DtdEnd { .. } => return Err(FrameError::Doctype),
        };
        let tag_end = match tok {
            Tok::End { span, .. } => Some(span.end as usize),
            _ => None,
        };
        p.token(tok)?;
        if let Some(end) = tag_end {
            return Ok(Ok(end));
        }
    }
}

/// The position of the next `<` after `from`, once the character data before it passed
/// [`check_text`] (its byte classes are added to `classes`); `None` when the input ends first.
fn next_tag(bytes: &[u8], from: usize, classes: &mut u8) -> Result<Option<usize>, FrameError> {
    let Some(i) = memchr::memchr(b'<', &bytes[from..]) else {
        return Ok(None);
    };
    *classes |= check_text(&bytes[from..from + i])?;
    Ok(Some(from + i))
}

/// `<!...` inside a stanza: a CDATA section (its end, after checking its characters), or a
/// comment or declaration, which restricted XML refuses. `None` when the input ends first.
fn markup_end(bytes: &[u8], lt: usize, classes: &mut u8) -> Result<Option<usize>, FrameError> {
    const CDATA: &[u8] = b"<![CDATA[";
    let rest = &bytes[lt..];
    match rest.get(2) {
        None => Ok(None),
        Some(b'-') => Err(FrameError::Comment),
        Some(b'[') => {
            let n = rest.len().min(CDATA.len());
            if rest[..n] != CDATA[..n] {
                return Err(FrameError::Malformed("unknown markup after <!["));
            }
            if n < CDATA.len() {
                return Ok(None);
            }
            let content = &rest[CDATA.len()..];
            let Some(close) = memchr::memmem::find(content, b"]]>") else {
                return Ok(None);
            };
            *classes |= check_chars(&content[..close])?;
            Ok(Some(lt + CDATA.len() + close + 3))
        }
        Some(c) if c.is_ascii_uppercase() => Err(FrameError::Doctype),
        Some(_) => Err(FrameError::Malformed("unknown markup after <!")),
    }
}

/// The class of `&` (in [`TEXT_CLASS`]): a reference starts here.
const AMPERSAND: u8 = 2;
/// The class of bytes that are not ASCII (in [`TEXT_CLASS`]).
const NON_ASCII: u8 = 16;

/// Byte classes for [`check_text`]: bit 1 a control character XML forbids, bit 2 `&`, bit 4
/// `>`, bit 8 the first byte of U+FFFE or U+FFFF, bit 16 ([`NON_ASCII`]) any byte above 0x7F.
static TEXT_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        if b != b'\t' as usize && b != b'\n' as usize && b != b'\r' as usize {
            t[b] = 1;
        }
        b += 1;
    }
    t[b'&' as usize] = AMPERSAND;
    t[b'>' as usize] = 4;
    let mut b = 0x80;
    while b < 0x100 {
        t[b] = NON_ASCII;
        b += 1;
    }
    t[0xEF] = 8 | NON_ASCII;
    t
};

/// Character data between tags: only XML characters, references only to the predefined
/// entities or characters, and no `]]>`. Returns the byte classes seen.
fn check_text(text: &[u8]) -> Result<u8, FrameError> {
    let classes = check_chars(text)?;
    if classes & AMPERSAND != 0 {
        xml::check_references(text)?;
    }
    if classes & 4 != 0 && memchr::memmem::find(text, b"]]>").is_some() {
        return Err(FrameError::Malformed("']]>' in character data"));
    }
    Ok(classes)
}

/// Refuses the characters XML 1.0 excludes (controls other than tab, newline and carriage
/// return; U+FFFE and U+FFFF); returns the classes seen, for [`check_text`].
fn check_chars(text: &[u8]) -> Result<u8, FrameError> {
    let classes = text
        .iter()
        .fold(0u8, |acc, &b| acc | TEXT_CLASS[usize::from(b)]);
    if classes & 1 != 0 {
        return Err(FrameError::Malformed("a character XML does not allow"));
    }
    if classes & 8 != 0
        && (memchr::memmem::find(text, "\u{FFFE}".as_bytes()).is_some()
            || memchr::memmem::find(text, "\u{FFFF}".as_bytes()).is_some())
    {
        return Err(FrameError::Malformed("a character XML does not allow"));
    }
    Ok(classes)
}

/// The state of one [`parse_with`] pass.
struct ElementPass<'a> {
    bytes: &'a [u8],
    limits: &'a Limits,
    scratch: &'a mut Scratch,
    elements: SmallVec<[ElementRef; 4]>,
    root_name: Span,
    root: RootAttrs,
    /// Set when the root's end is read: the offset just past it.
    done: Option<usize>,
    /// The [`name_signature`] bits of the attribute names read in the current start tag.
    attr_bits: u64,
}

/// A cheap digest of an attribute's qualified name (never empty): equal names give equal
/// digests, so a bit not yet set proves a name new in its tag.
#[inline(always)]
fn name_signature(qname: &[u8]) -> u32 {
    let first = qname.first().copied().unwrap_or(0);
    let last = qname.last().copied().unwrap_or(0);
    (qname.len() as u32)
        .wrapping_mul(7)
        .wrapping_add(u32::from(first).wrapping_mul(3))
        .wrapping_add(u32::from(last))
}

impl ElementPass<'_> {
    /// At the end of a start tag, once all its declarations are known: every prefix it uses
    /// must be bound, by the tag itself, an enclosing element or the stream header (or be
    /// `xml`, which is always bound). A stanza with an unbound prefix is not namespace
    /// well-formed, and forwarding it would break the stream of whoever receives it.
    fn check_prefixes(&self) -> Result<(), FrameError> {
        let bytes = self.bytes;
        let scratch = &*self.scratch;
        let bound = |p: &[u8]| {
            p == b"xml"
                || scratch.declared.iter().any(|(d, _)| &bytes[d.range()] == p)
                || scratch.header_prefixes.iter().any(|h| &h[..] == p)
        };
        if scratch.used.iter().all(|u| bound(&bytes[u.range()])) {
            Ok(())
        } else {
            Err(FrameError::Malformed("unbound namespace prefix"))
        }
    }

    /// Applies one token of a tag (xmlparser's reading); once the root's end tag closes it,
    /// [`ElementPass::done`] says where the element ends. The fast tokenizer calls the three
    /// steps directly, each inlined where the token is read.
    fn token(&mut self, token: Tok) -> Result<(), FrameError> {
        match token {
            Tok::Start { span, prefix } => self.start(span, prefix),
            Tok::Attr {
                prefix,
                local,
                value,
                references,
            } => self.attr(prefix, local, value, references),
            Tok::End { kind, span } => self.end(kind, span),
        }
    }

    /// `<name`: the span covers the `<` and the qualified name; `prefix` is a non-empty prefix.
    #[inline(always)]
    fn start(&mut self, span: Span, prefix: Option<Span>) -> Result<(), FrameError> {
        let start = span.start as usize;
        self.scratch.used.clear();
        if let Some(p) = prefix {
            self.scratch.used.push(p);
        }
        let name = Span::new(start + 1, span.end as usize);
        let stack = &mut self.scratch.stack;
        let depth = stack.len();
        if depth + 1 > self.limits.max_depth {
            return Err(FrameError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        let recorded = match depth {
            0 => {
                self.root_name = name;
                None
            }
            1 | 2 => {
                let name_len = u16::try_from(name.end - name.start)
                    .map_err(|_| FrameError::Malformed("element name too long"))?;
                self.elements.push(ElementRef {
                    span: Span::new(start, start),
                    tag_end: 0,
                    name_len,
                    depth: depth as u8,
                });
                Some(self.elements.len() - 1)
            }
            _ => None,
        };
        stack.push(Open { name, recorded });
        self.scratch.attr_names.clear();
        self.attr_bits = 0;
        Ok(())
    }

    /// `name='value'`: see [`Tok::Attr`].
    #[inline(always)]
    fn attr(
        &mut self,
        prefix: Option<Span>,
        local: Span,
        value: Span,
        references: bool,
    ) -> Result<(), FrameError> {
        let bytes = self.bytes;
        if self.scratch.attr_names.len() >= self.limits.max_attributes {
            return Err(FrameError::TooManyAttributes {
                limit: self.limits.max_attributes,
            });
        }
        if references {
            xml::check_references(&bytes[value.range()])?;
        }
        let qname = Span {
            start: prefix.map_or(local.start, |p| p.start),
            end: local.end,
        };
        let qbytes = &bytes[qname.range()];
        // A name's length and its first and last bytes pick one of 64 bits: the tag's earlier
        // names are compared only when this one's bit is already set, which for the few,
        // distinct names of a stanza's tags it almost never is.
        let bit = 1u64 << (name_signature(qbytes) & 63);
        if self.attr_bits & bit != 0 {
            let duplicate = self
                .scratch
                .attr_names
                .iter()
                .any(|n| &bytes[n.range()] == qbytes);
            if duplicate {
                return Err(FrameError::Malformed("duplicate attribute"));
            }
        }
        self.attr_bits |= bit;
        self.scratch.attr_names.push(qname);
        match prefix {
            None => {}
            Some(p) if &bytes[p.range()] == b"xmlns" => {
                let depth = self.scratch.stack.len();
                self.scratch.declared.push((local, depth));
            }
            Some(p) => self.scratch.used.push(p),
        }
        if self.scratch.stack.len() == 1 {
            let attr = AttrSpan {
                value,
                quote: bytes[value.start as usize - 1],
            };
            match qbytes {
                b"id" => self.root.id = Some(attr),
                b"type" => self.root.type_ = Some(attr),
                b"from" => self.root.from = Some(attr),
                b"to" => self.root.to = Some(attr),
                b"xmlns" => self.root.xmlns = Some(attr),
                _ => {}
            }
        }
        Ok(())
    }

    /// The end of a tag: see [`Tok::End`].
    #[inline(always)]
    fn end(&mut self, kind: EndKind, span: Span) -> Result<(), FrameError> {
        let bytes = self.bytes;
        let end_at = span.end as usize;
        if matches!(kind, EndKind::Open | EndKind::Empty) {
            self.check_prefixes()?;
        }
        let depth = self.scratch.stack.len();
        while self
            .scratch
            .declared
            .last()
            .is_some_and(|&(_, d)| d >= depth)
            && !matches!(kind, EndKind::Open)
        {
            self.scratch.declared.pop();
        }
        let stack = &mut self.scratch.stack;
        match kind {
            EndKind::Open => {
                if let Some(i) = stack.last().and_then(|o| o.recorded) {
                    self.elements[i].tag_end = end_at as u32;
                }
                return Ok(());
            }
            EndKind::Empty => {}
            EndKind::Close => {
                // The raw name, byte for byte, as the boundary scan compares it:
                // xmlparser reads `</:a>` as `a` with an empty prefix.
                let tag = &bytes[span.range()];
                let name = tag.get(2..tag.len() - 1).unwrap_or_default();
                let open = stack.last().map(|o| &bytes[o.name.range()]);
                if open != Some(name.trim_ascii_end()) {
                    return Err(FrameError::Malformed("end tag does not match start tag"));
                }
            }
        }
        let open = stack
            .pop()
            .ok_or(FrameError::Malformed("end tag without a start tag"))?;
        if let Some(i) = open.recorded {
            if matches!(kind, EndKind::Empty) {
                self.elements[i].tag_end = end_at as u32;
            }
            self.elements[i].span.end = end_at as u32;
        }
        if stack.is_empty() {
            self.done = Some(end_at);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
