//! Framer tests: chunking invariance, the hostile corpus, limits, and property tests.

use super::*;
use crate::wire::error::Condition;
use proptest::prelude::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
    xmlns:stream='http://etherx.jabber.org/streams' to='imp1.example.com'>";

/// A printable summary of a frame, so different chunkings can be compared for equality.
fn summary(frame: &Frame) -> String {
    match frame {
        Frame::Header(h) => format!("H[{:?} {:?} {:?} {:?}]", h.prefix, h.default_ns, h.to, h.id),
        Frame::Stanza(s) => format!(
            "S[{} id={:?} type={:?} from={:?} to={:?} elems={:?}]{}",
            String::from_utf8_lossy(s.name()),
            s.id(),
            s.type_(),
            s.from(),
            s.to(),
            s.elements()
                .iter()
                .map(|e| (
                    String::from_utf8_lossy(s.element_name(e)).into_owned(),
                    e.depth
                ))
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(s.bytes())
        ),
        Frame::End => "E".to_owned(),
    }
}

/// Feeds `chunks` in order, draining frames after each; returns the frames and the error, if any.
fn run(chunks: &[&[u8]], limits: Limits) -> (Vec<String>, Option<FrameError>) {
    let mut framer = Framer::new(limits);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.feed(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(f)) => out.push(summary(&f)),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn whole(input: &[u8]) -> (Vec<String>, Option<FrameError>) {
    run(&[input], Limits::default())
}

/// Asserts that feeding `input` whole, byte by byte and split at every offset gives one result.
fn assert_chunking_invariant(input: &[u8]) -> (Vec<String>, Option<FrameError>) {
    let reference = whole(input);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes, Limits::default()), reference, "byte by byte");
    for cut in 0..=input.len() {
        let (a, b) = input.split_at(cut);
        assert_eq!(run(&[a, b], Limits::default()), reference, "split at {cut}");
    }
    reference
}

fn stream(body: &str) -> Vec<u8> {
    format!("{HEADER}{body}").into_bytes()
}

#[test]
fn frames_header_stanzas_and_end() {
    let input = stream(
        "<iq type='set' id='R1' from='imp1.example.com' to='palisade.example.com'>\
           <event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
             <message xmlns='jabber:client' from='alice@example.com/l' to='bob@example.com' type='chat'>\
               <body>hello &amp; &#x263A;</body></message></event></iq> \n\t\
         <handshake/><message to=\"a\" from='b' id=\"x'y\"><body><![CDATA[<not a tag> ]] >]]></body></message>\
         </stream:stream>",
    );
    let (frames, err) = assert_chunking_invariant(&input);
    assert_eq!(err, None);
    assert_eq!(frames.len(), 5, "{frames:#?}");
    assert!(frames[0]
        .starts_with("H[\"stream\" Some(\"jabber:component:accept\") Some(\"imp1.example.com\")"));
    assert!(frames[1].starts_with(
        "S[iq id=Some(\"R1\") type=Some(\"set\") from=Some(\"imp1.example.com\") to=Some(\"palisade.example.com\") \
         elems=[(\"event\", 1), (\"message\", 2)]]<iq "
    ));
    assert!(frames[2].starts_with("S[handshake "));
    assert!(frames[3].contains("id=Some(\"x'y\")"));
    assert_eq!(frames[4], "E");
}

#[test]
fn stanza_views_are_slices_of_the_input() {
    let mut framer = Framer::new(Limits::default());
    framer.feed(&stream(
        "<iq id='a&amp;b' to='x' from='y'><query xmlns='q' node='n&lt;1'/></iq>",
    ));
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Header(_)))));
    let Ok(Some(Frame::Stanza(s))) = framer.next_frame() else {
        panic!("no stanza")
    };
    assert_eq!(s.raw(s.attrs().id), Some(&b"a&amp;b"[..]));
    assert_eq!(s.id().as_deref(), Some("a&b"));
    let query = s.children().next().unwrap();
    assert_eq!(s.element_local_name(query), b"query");
    assert_eq!(s.element_attr(query, "node").as_deref(), Some("n<1"));
    assert_eq!(
        &s.slice(query.span)[..],
        b"<query xmlns='q' node='n&lt;1'/>"
    );
    assert_eq!(s.attrs().id.unwrap().quote, b'\'');
}

#[test]
fn whitespace_keepalives_are_discarded_between_stanzas() {
    let mut framer = Framer::new(Limits::default());
    framer.feed(&stream(""));
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Header(_)))));
    for _ in 0..10_000 {
        framer.feed(b" \n");
        assert!(matches!(framer.next_frame(), Ok(None)));
    }
    assert_eq!(framer.buffered(), 0);
}

#[test]
fn header_without_declaration_and_with_from_only() {
    let input = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:connect' from='c.example'>";
    let (frames, err) = assert_chunking_invariant(input);
    assert_eq!(err, None);
    assert_eq!(
        frames,
        vec!["H[\"stream\" Some(\"jabber:component:connect\") None None]"]
    );
}

fn refused(input: &[u8]) -> FrameError {
    let (_, err) = assert_chunking_invariant(input);
    err.unwrap_or_else(|| panic!("accepted: {}", String::from_utf8_lossy(input)))
}

#[test]
fn hostile_corpus_is_refused_with_the_right_condition() {
    let billion_laughs = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>\
        <!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>\
        <stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>";
    let cases: Vec<(Vec<u8>, Condition)> = vec![
        (billion_laughs.into(), Condition::RestrictedXml),
        (
            stream("<!DOCTYPE x SYSTEM 'file:///etc/passwd'>"),
            Condition::RestrictedXml,
        ),
        (stream("<message>&xxe;</message>"), Condition::RestrictedXml),
        (stream("<message a='&lol9;'/>"), Condition::RestrictedXml),
        (stream("<?php echo 1; ?>"), Condition::RestrictedXml),
        (
            stream("<message><?pi x?></message>"),
            Condition::RestrictedXml,
        ),
        (stream("<!-- hello -->"), Condition::RestrictedXml),
        (
            stream("<message><!-- hi --></message>"),
            Condition::RestrictedXml,
        ),
        (
            stream("<message><body>x</message></body>"),
            Condition::NotWellFormed,
        ),
        (stream("<message></iq>"), Condition::NotWellFormed),
        (stream("<a b='1' b='2'/>"), Condition::NotWellFormed),
        (stream("<a b=1/>"), Condition::NotWellFormed),
        (stream("hello"), Condition::NotWellFormed),
        (stream("<a>&</a>"), Condition::NotWellFormed),
        (stream("<a>\u{1}</a>"), Condition::NotWellFormed),
        (stream("<![CDATA[x]]>"), Condition::NotWellFormed),
        (
            stream("</x>")
                .into_iter()
                .chain(b"</stream:stream>".iter().copied())
                .collect(),
            Condition::NotWellFormed,
        ),
        (
            [HEADER.as_bytes(), b"<a>\xff\xfe</a>"].concat(),
            Condition::NotWellFormed,
        ),
        (
            b"<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:component:accept'>".to_vec(),
            Condition::InvalidNamespace,
        ),
        (b"<html><body>".to_vec(), Condition::InvalidNamespace),
        (
            b"<?xml version='1.0'?><?xml version='1.0'?>".to_vec(),
            Condition::RestrictedXml,
        ),
        (b"GET / HTTP/1.1\r\n".to_vec(), Condition::NotWellFormed),
    ];
    for (input, condition) in cases {
        let err = refused(&input);
        assert_eq!(
            err.condition(),
            condition,
            "{} gave {err:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

#[test]
fn deep_nesting_hits_the_depth_limit_before_the_stanza_ends() {
    let input = stream(&"<a>".repeat(100_000));
    let err = refused(&input[..HEADER.len() + 3 * 40]);
    assert_eq!(err, FrameError::TooDeep { limit: 32 });
    // Exactly at the limit is fine.
    let ok = stream(&format!("{}{}", "<a>".repeat(32), "</a>".repeat(32)));
    assert_eq!(whole(&ok).1, None);
    let over = stream(&format!("{}{}", "<a>".repeat(33), "</a>".repeat(33)));
    assert_eq!(whole(&over).1, Some(FrameError::TooDeep { limit: 32 }));
}

#[test]
fn attribute_limit_is_its_own_error() {
    let attrs: String = (0..65).map(|i| format!(" a{i}='x'")).collect();
    let err = whole(&stream(&format!("<message{attrs}/>"))).1;
    assert_eq!(err, Some(FrameError::TooManyAttributes { limit: 64 }));
    let attrs: String = (0..64).map(|i| format!(" a{i}='x'")).collect();
    assert_eq!(whole(&stream(&format!("<message{attrs}/>"))).1, None);
}

#[test]
fn duplicate_attributes_are_found_whatever_their_digests() {
    // `name` and `node` have the same length and first and last bytes, so the same digest:
    // told apart by their bytes, and a repeat of either is still refused.
    assert_eq!(
        super::name_signature(b"name"),
        super::name_signature(b"node")
    );
    assert_eq!(whole(&stream("<a name='1' node='2'/>")).1, None);
    for tag in [
        "<a name='1' node='2' name='3'/>",
        "<a node='1' name='2' node='3'/>",
        "<a x:b='1' xmlns:x='u' x:b='2'/>",
        "<a b='1' c='2' d='3' e='4' b='5'/>",
    ] {
        let err = refused(&stream(tag));
        assert_eq!(
            err,
            FrameError::Malformed("duplicate attribute"),
            "{tag} gave {err:?}"
        );
    }
    // Every start tag begins with no names seen: the same names on the next element are new.
    assert_eq!(whole(&stream("<a b='1'><c b='2'/><c b='3'/></a>")).1, None);
    // Many distinct names, so that most digest bits are set: none is taken for a repeat.
    let attrs: String = (0..64).map(|i| format!(" n{i}x='v'")).collect();
    assert_eq!(whole(&stream(&format!("<message{attrs}/>"))).1, None);
}

#[test]
fn ten_megabyte_attribute_is_refused_with_bounded_memory() {
    let mut framer = Framer::new(Limits::default());
    framer.feed(&stream("<message body='"));
    let chunk = vec![b'A'; 64 * 1024];
    let mut error = None;
    for _ in 0..160 {
        framer.feed(&chunk);
        match framer.next_frame() {
            Ok(Some(Frame::Header(_))) | Ok(None) => {}
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        assert!(framer.buffered() <= 256 * 1024 + 2 * chunk.len() + HEADER.len());
    }
    assert_eq!(
        error,
        Some(FrameError::StanzaTooLarge { limit: 256 * 1024 })
    );
    assert_eq!(error.unwrap().condition(), Condition::PolicyViolation);
}

#[test]
fn truncated_streams_yield_nothing_and_stay_pending() {
    let input = stream("<message to='a'><body>cut");
    let (frames, err) = assert_chunking_invariant(&input);
    assert_eq!((frames.len(), err), (1, None));
    let mut framer = Framer::new(Limits::default());
    framer.feed(&input);
    while let Ok(Some(_)) = framer.next_frame() {}
    assert!(framer.in_frame());
}

#[test]
fn reading_into_spare_space_frames_like_feeding() {
    let input = stream("<message from='a' to='b'><body>x</body></message><presence/>");
    let mut framer = Framer::new(Limits::default());
    let mut frames = Vec::new();
    for chunk in input.chunks(7) {
        let spare = framer.spare(64);
        spare[..chunk.len()].copy_from_slice(chunk);
        // Bytes past `n` must not leak into the stream.
        spare[chunk.len()..].fill(b'<');
        framer.commit(chunk.len());
        while let Ok(Some(f)) = framer.next_frame() {
            frames.push(summary(&f));
        }
    }
    assert_eq!((frames, None), whole(&input));
}

#[test]
fn an_idle_framer_lets_its_empty_buffer_go_and_keeps_a_partial_stanza() {
    let mut framer = Framer::new(Limits::default());
    framer.feed(&stream("<message/>"));
    while let Ok(Some(_)) = framer.next_frame() {}
    assert_eq!(framer.buffered(), 0);
    let spare = framer.spare(4096);
    assert_eq!(spare.len(), 4096);
    framer.commit(0);
    assert!(
        framer.room() >= 4096,
        "the room of a read stays for the next one"
    );
    framer.release_idle(8192);
    assert!(framer.room() >= 4096, "room up to `keep` stays");
    framer.release_idle(0);
    assert_eq!(framer.room(), 0, "an empty buffer goes");
    // A partial stanza is never dropped, whatever `keep` says.
    framer.feed(b"<message><body>half");
    framer.release_idle(0);
    assert_eq!(framer.buffered(), 19);
    framer.feed(b"</body></message>");
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Stanza(_)))));
}

#[test]
fn errors_are_sticky() {
    let mut framer = Framer::new(Limits::default());
    framer.feed(&stream("<!-- x -->"));
    let _ = framer.next_frame();
    let first = framer.next_frame().unwrap_err();
    framer.feed(b"<message/>");
    assert_eq!(framer.next_frame().unwrap_err(), first);
}

#[test]
fn end_tag_must_match_the_stream() {
    let err = whole(&stream("</stream:other>")).1;
    assert!(matches!(err, Some(FrameError::Malformed(_))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Any chunking of a valid stream gives the same frames as feeding it whole.
    #[test]
    fn chunking_never_changes_frames(cuts in proptest::collection::vec(0usize..2000, 0..12)) {
        let input = stream(
            "<message from='a@b/c' to='d@e' id='1'><body>x &lt; y</body></message> \
             <presence from='a@b'/><iq type='get' id='2' from='x' to='y'><q xmlns='z'><i a='&#65;'/></q></iq>\
             <message><body><![CDATA[ <]] ]]></body></message></stream:stream>",
        );
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for c in cuts {
            chunks.push(&input[last..c]);
            last = c;
        }
        chunks.push(&input[last..]);
        prop_assert_eq!(run(&chunks, Limits::default()), whole(&input));
    }

    /// Arbitrary bytes never panic and never make the buffer grow past the limit plus one chunk.
    #[test]
    fn arbitrary_input_is_safe(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 0..16)) {
        let limits = Limits { max_stanza_bytes: 1024, ..Limits::default() };
        let mut framer = Framer::new(limits);
        framer.feed(HEADER.as_bytes());
        for chunk in &chunks {
            framer.feed(chunk);
            while let Ok(Some(_)) = framer.next_frame() {}
            prop_assert!(framer.buffered() <= 1024 + 1 + chunk.len() + HEADER.len());
        }
    }

    /// Stanza-shaped random input: whatever the verdict, chunking does not change it.
    #[test]
    fn random_markup_is_chunking_invariant(body in "[<>/a-c '\"=&;!\\[\\]?-]{0,60}", cut in 0usize..200) {
        let input = stream(&body);
        let cut = cut % (input.len() + 1);
        let (a, b) = input.split_at(cut);
        prop_assert_eq!(run(&[a, b], Limits::default()), whole(&input));
    }
}

/// Characters of each UTF-8 length above one byte.
const WIDE: [char; 3] = ['é', '€', '😀'];

/// A stanza `<handshake x='AAA…'/>` (or with the filler as text) where the character `ch`
/// starts at byte `at` of the stanza and `after` filler bytes follow it.
fn straddling(at: usize, ch: char, after: usize, in_text: bool) -> Vec<u8> {
    let (open, close) = if in_text {
        ("<handshake>", "</handshake>")
    } else {
        ("<handshake x='", "'/>")
    };
    let mut s = String::from(open);
    while s.len() < at {
        s.push('A');
    }
    s.push(ch);
    s.extend(std::iter::repeat_n('A', after));
    s.push_str(close);
    s.into_bytes()
}

/// The exact report: one character straddling the stanza limit, sent before the handshake.
/// It used to cut the fast path's window inside the character, hand xmlparser a `&str` that
/// was not UTF-8, and panic the shard.
#[test]
fn a_character_straddling_the_limit_is_refused_without_panicking() {
    for limit in [300, 4096, 32768] {
        let stanza = straddling(limit - 1, 'é', 100, false);
        let input = [HEADER.as_bytes(), &stanza].concat();
        let limits = Limits {
            max_stanza_bytes: limit,
            ..Limits::default()
        };
        let (frames, err) = run(&[&input], limits);
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(err, Some(FrameError::StanzaTooLarge { limit }));
    }
}

/// Feeds `input` in the chunks that `cuts` (sorted offsets) make.
fn run_cut(input: &[u8], cuts: &[usize], limits: Limits) -> (Vec<String>, Option<FrameError>) {
    let mut chunks = Vec::new();
    let mut last = 0;
    for &c in cuts {
        let c = c.clamp(last, input.len());
        chunks.push(&input[last..c]);
        last = c;
    }
    chunks.push(&input[last..]);
    run(&chunks, limits)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Multi-byte characters at every offset around a small random limit, in an attribute
    /// value or in text, fed whole and in random chunks: never a panic, the same frames
    /// whatever the chunking, and the stanza refused exactly when it is longer than the limit.
    #[test]
    fn characters_around_the_limit_frame_the_same_in_any_chunking(
        // The stream header counts against the limit too.
        limit in HEADER.len()..HEADER.len() + 300,
        after in 0usize..8,
        in_text in any::<bool>(),
        cuts in proptest::collection::vec(0usize..1000, 0..6),
    ) {
        let limits = Limits { max_stanza_bytes: limit, ..Limits::default() };
        for ch in WIDE {
            for at in limit.saturating_sub(ch.len_utf8() + 3)..limit + 2 {
                let stanza = straddling(at, ch, after, in_text);
                // A stanza after it shows whether framing went on.
                let input = [HEADER.as_bytes(), &stanza, b"<presence/>"].concat();
                let whole = run(&[&input], limits);
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
                cuts.sort_unstable();
                prop_assert_eq!(&run_cut(&input, &cuts, limits), &whole, "cuts {:?}", cuts);
                let expected = if stanza.len() > limit {
                    (1, Some(FrameError::StanzaTooLarge { limit }))
                } else {
                    (3, None)
                };
                prop_assert_eq!((whole.0.len(), whole.1), expected, "{} bytes", stanza.len());
            }
        }
    }
}

/// What the framer says about `input` when nothing more is coming: an error is final at once;
/// `Ok(None)` would leave it to the stanza timer.
fn verdict_now(input: &[u8]) -> Option<FrameError> {
    let (_, err) = assert_chunking_invariant(input);
    err
}

#[test]
fn broken_nesting_is_refused_before_the_stanza_timer() {
    let cases = [
        // The stream's end tag cutting a stanza short.
        "<message><body>hi</stream:stream>",
        "<message></stream:stream>",
        // A second stream header where a stanza should start.
        "<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='imp1.example.com'>",
        "<stream:stream/>",
        "<stream:stream></stream:stream>",
        // Unclosed or mismatched elements.
        "<message><body>hi</message>",
        "<message><body><b>hi</body>",
        "<message><body>hi</bodyx></message>",
        // Found by the fuzzer: xmlparser reads `</:message>` as `message`.
        "<message>y</:message>",
    ];
    for body in cases {
        let err = verdict_now(&stream(body));
        assert!(
            matches!(err, Some(FrameError::Malformed(_))),
            "{body} gave {err:?}"
        );
        assert_eq!(err.unwrap().condition(), Condition::NotWellFormed);
    }
    // Well-formed but incomplete stays pending, for the stanza timer.
    assert_eq!(verdict_now(&stream("<message><body>hi</body>")), None);
    assert_eq!(
        verdict_now(&stream("<message><body >hi</body ></message >")),
        None
    );
}

#[test]
fn unbound_namespace_prefixes_are_refused() {
    for body in [
        "<message><z:body>hi</z:body></message>",
        "<message z:a='1'/>",
        "<z:message/>",
        "<message><x xmlns:z='urn:z'/><z:y/></message>",
        "<message><x xmlns:z='urn:z'><y/></x><b z:a='1'/></message>",
        "<xmlns:message/>",
    ] {
        let err = verdict_now(&stream(body));
        assert_eq!(
            err,
            Some(FrameError::Malformed("unbound namespace prefix")),
            "{body}"
        );
    }
    for body in [
        "<message xml:lang='en'><body xml:lang='fr'>salut</body></message>",
        "<message xmlns:z='urn:z'><z:body z:a='1'>hi</z:body></message>",
        "<z:message z:a='1' xmlns:z='urn:z'/>",
        "<message><x xmlns:z='urn:z'><z:y><z:w/></z:y></x></message>",
        // Prefixes bound on the stream header are in scope in every stanza.
        "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    ] {
        let (frames, err) = assert_chunking_invariant(&stream(body));
        assert_eq!((frames.len(), err), (2, None), "{body}");
    }
    let with_db =
        "<stream:stream xmlns='jabber:component:accept' xmlns:db='jabber:server:dialback' \
                   xmlns:stream='http://etherx.jabber.org/streams'><db:result db:x='1'/>";
    let (frames, err) = assert_chunking_invariant(with_db.as_bytes());
    assert_eq!((frames.len(), err), (2, None));
}

/// The fast tokenizer's pass over `input` beside xmlparser's, under `limits`: whenever the fast
/// one yields an element, xmlparser yields the same one; whenever xmlparser yields one, the
/// fast one yields it too or stands aside for xmlparser (never "incomplete", never an error).
fn assert_tokenizers_agree(input: &[u8], limits: Limits) -> Result<(), TestCaseError> {
    let scratch = || Scratch {
        header_prefixes: vec![b"stream".as_slice().into()],
        ..Scratch::default()
    };
    let fast = parse_fast(input, &limits, &mut scratch());
    // xmlparser reads text: it gets the input's valid UTF-8 prefix, as the framer's window
    // holds only what comes before a bad byte (which belongs to whatever follows the stanza).
    let valid = match std::str::from_utf8(input) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&input[..e.valid_up_to()]).unwrap_or_default(),
    };
    let exact = parse_element(valid, &limits, &mut scratch()).ok().flatten();
    let shown = String::from_utf8_lossy(input);
    match (&fast, &exact) {
        (Ok(f), Some(e)) => prop_assert_eq!(f, e, "{}", shown),
        (Ok(f), None) => prop_assert!(false, "only the fast tokenizer accepts {shown}: {f:?}"),
        (Err(Fallback::Xmlparser), _) | (Err(Fallback::BoundaryScan), None) => {}
        (Err(Fallback::BoundaryScan), Some(e)) => {
            prop_assert!(false, "only xmlparser accepts {shown}: {e:?}")
        }
    }
    Ok(())
}

/// Names the generator puts on elements and attributes: ordinary ones, ones the fast tokenizer
/// leaves to xmlparser (non-ASCII, an empty prefix), and ones xmlparser refuses.
const NAMES: &[&str] = &[
    "a",
    "iq",
    "body",
    "x:y",
    "stream:error",
    "b.c-d_e",
    "_u",
    "Z9",
    "é",
    "aé",
    "x:é",
    ":a",
    "a:",
    "1a",
    "-a",
    "a:b:c",
    "xmlns",
    "xmlns:x",
    "x:a",
    "xml:lang",
    "a\u{B7}",
    "",
];

/// Attribute values: plain, with references good and bad, with markup characters, control
/// characters, non-characters and non-ASCII text.
const VALUES: &[&str] = &[
    "",
    "v",
    "a b",
    "&amp;",
    "&#65;",
    "&#x1F600;",
    "&bad;",
    "&",
    ">",
    "<",
    "]]>",
    "\u{1}",
    "\t\n",
    "\u{FFFE}",
    "\u{FFFF}",
    "é€😀",
    "it's",
    "say \"hi\"",
    "u:x",
];

/// Spacing between the parts of a tag (xmlparser requires some before an attribute).
const SPACES: &[&str] = &["", " ", "  ", "\t", "\r\n", "\u{A0}"];

/// Character data between tags.
const TEXTS: &[&str] = &[
    "",
    "hi",
    "x &lt; y",
    "&bogus;",
    "a > b",
    "]]>",
    "é",
    "\u{0}",
    "\u{FFFF}",
    "<![CDATA[ <]] ]]>",
    "<!-- c -->",
    "<?pi?>",
    "<!DOCTYPE x>",
    " ",
];

fn pick<'a>(list: &'a [&'a str]) -> impl Strategy<Value = &'a str> {
    (0..list.len()).prop_map(move |i| list[i])
}

fn attribute() -> impl Strategy<Value = String> {
    (
        pick(SPACES),
        pick(NAMES),
        pick(SPACES),
        pick(SPACES),
        any::<bool>(),
        pick(VALUES),
    )
        .prop_map(|(lead, name, before, after, double, value)| {
            let q = if double { '"' } else { '\'' };
            // Either quote may also appear inside the value (xmlparser ends it there).
            format!("{lead}{name}{before}={after}{q}{value}{q}")
        })
}

/// One element, its attributes and (to a few levels) its content.
fn element() -> impl Strategy<Value = String> {
    let leaf = (
        pick(NAMES),
        proptest::collection::vec(attribute(), 0..4),
        pick(SPACES),
        any::<bool>(),
        pick(TEXTS),
    )
        .prop_map(|(name, attrs, space, empty, text)| {
            let attrs = attrs.concat();
            if empty {
                format!("<{name}{attrs}{space}/>")
            } else {
                format!("<{name}{attrs}{space}>{text}</{name}{space}>")
            }
        });
    leaf.prop_recursive(3, 24, 4, |inner| {
        (
            pick(NAMES),
            proptest::collection::vec(attribute(), 0..4),
            proptest::collection::vec((pick(TEXTS), inner), 0..4),
            pick(TEXTS),
            pick(SPACES),
        )
            .prop_map(|(name, attrs, children, tail, space)| {
                let attrs = attrs.concat();
                let content: String = children
                    .into_iter()
                    .map(|(t, c)| t.to_owned() + &c)
                    .collect();
                format!("<{name}{attrs}>{content}{tail}</{name}{space}>")
            })
    })
}

/// A byte-level change to an otherwise generated stanza: none, a byte replaced, inserted or
/// removed, or the input cut short (as a window ending inside a stanza is).
#[derive(Clone, Debug)]
enum Mutation {
    None,
    Replace(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        Just(b'<'),
        Just(b'>'),
        Just(b'/'),
        Just(b'\''),
        Just(b'"'),
        Just(b'='),
        Just(b':'),
        Just(b' '),
        Just(b'&'),
        Just(0xC3),
        Just(0x80),
        Just(0xFF),
        Just(0),
        any::<u8>(),
    ];
    prop_oneof![
        2 => Just(Mutation::None),
        1 => (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        1 => (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Cut),
    ]
}

fn mutate(s: String, m: &Mutation) -> Vec<u8> {
    let mut b = s.into_bytes();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *m {
        Mutation::None => {}
        Mutation::Replace(i, x) if !b.is_empty() => {
            let i = at(i, b.len());
            b[i] = x;
        }
        Mutation::Insert(i, x) => {
            let i = at(i, b.len() + 1);
            b.insert(i, x);
        }
        Mutation::Remove(i) if !b.is_empty() => {
            let i = at(i, b.len());
            b.remove(i);
        }
        Mutation::Cut(i) => {
            let i = at(i, b.len() + 1);
            b.truncate(i);
        }
        _ => {}
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, .. ProptestConfig::default() })]

    /// The framer's tag tokenizer and xmlparser agree on every element either accepts, under
    /// the default limits and tight ones, with a stanza after it (as in a buffer holding more).
    #[test]
    fn fast_tokenizer_agrees_with_xmlparser(
        stanza in element(),
        m in mutation(),
        tight in any::<bool>(),
        trailer in pick(&["", "<presence/>", " <a", "\u{FF}"]),
    ) {
        let limits = if tight {
            Limits { max_stanza_bytes: 1 << 16, max_depth: 3, max_attributes: 2 }
        } else {
            Limits::default()
        };
        let mut input = mutate(stanza, &m);
        assert_tokenizers_agree(&input, limits)?;
        input.extend_from_slice(trailer.as_bytes());
        assert_tokenizers_agree(&input, limits)?;
    }

    /// Printable ASCII soup around tag characters: the same agreement.
    #[test]
    fn fast_tokenizer_agrees_on_random_markup(body in "<[<>/a-c:x '\"=&;!\\[\\]?\t-]{0,80}") {
        assert_tokenizers_agree(body.as_bytes(), Limits::default())?;
    }

    /// Any chunking of a stream with wide characters, refused tags and ordinary stanzas gives
    /// the frames the whole stream gives, whichever tokenizer reads each stanza.
    #[test]
    fn mixed_tokenizers_are_chunking_invariant(
        stanzas in proptest::collection::vec(element(), 1..5),
        cut in 0usize..4000,
    ) {
        let input = stream(&stanzas.concat());
        let cut = cut % (input.len() + 1);
        let (a, b) = input.split_at(cut);
        prop_assert_eq!(run(&[a, b], Limits::default()), whole(&input));
    }
}

/// Bytes the tag tokenizer's value scan must stop at or look at, for [`long_value`].
const VALUE_SPECIALS: &[&str] = &[
    "", "'", "\"", "<", ">", "&amp;", "&bad;", "&", "&#1;", "\u{1}", "\u{0}", "\t", "\u{7F}",
    "\u{80}", "é", "€", "\u{FFFE}", "\u{FFFF}", "\u{FFFD}", "]]>",
];

/// A value longer than a word, with at most one byte that is not plain somewhere in it (the
/// tokenizer scans values eight bytes at a time while they hold only plain ones).
fn long_value() -> impl Strategy<Value = String> {
    (
        "[a-z0-9 .:/@=-]{0,27}",
        pick(VALUE_SPECIALS),
        "[a-z0-9 ]{0,17}",
    )
        .prop_map(|(head, special, tail)| format!("{head}{special}{tail}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, .. ProptestConfig::default() })]

    /// Long attribute values with a quote, `<`, a reference, a control or a non-ASCII
    /// character at any offset (or a byte replaced by one that breaks UTF-8), each cut short
    /// anywhere: the tag tokenizer agrees with xmlparser.
    #[test]
    fn fast_tokenizer_agrees_on_long_values(
        first in long_value(),
        second in long_value(),
        double in any::<bool>(),
        bad in proptest::option::of((0usize..90, prop_oneof![Just(0xFFu8), Just(0xC3), Just(0x00), Just(b'\'')])),
        cut in 0usize..120,
    ) {
        let q = if double { '"' } else { '\'' };
        let stanza = format!("<message a={q}{first}{q} xmlns:b='{second}' to={q}{second}{q}><body/></message>");
        let mut bytes = stanza.into_bytes();
        if let Some((at, b)) = bad {
            let at = at % bytes.len();
            bytes[at] = b;
        }
        assert_tokenizers_agree(&bytes, Limits::default())?;
        assert_tokenizers_agree(&bytes[..cut.min(bytes.len())], Limits::default())?;
    }
}

#[test]
fn fast_tokenizer_reads_ordinary_stanzas_and_leaves_the_rest() {
    let limits = Limits::default();
    let mut scratch = Scratch::default();
    for ordinary in [
        "<iq type='set' id='R1' from='imp1.example.com' to='palisade.example.com'>\
         <event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
         <message xmlns='jabber:client' from='a@example.com/desk' to='b@example.com' type='chat' id='m1'>\
         <body>Quarterly numbers look fine; caf\u{E9} at 10?</body>\
         <active xmlns='http://jabber.org/protocol/chatstates'/></message></event></iq>",
        "<iq type='result' id='g0.1.0' from='op-cs1.example.com' to='palisade.example.com'/>",
        "<presence\n\tfrom=\"a@b\" xml:lang = 'en' ><x xmlns:q='urn:q' q:a='&amp;&#65;'/></presence >",
        "<message><body><![CDATA[ <b> ]]></body></message>",
    ] {
        let parsed = parse_fast(ordinary.as_bytes(), &limits, &mut scratch);
        assert!(parsed.is_ok(), "{ordinary}: {parsed:?}");
        let exact = parse_element(ordinary, &limits, &mut scratch).unwrap();
        assert_eq!(parsed.ok(), exact, "{ordinary}");
    }
    for (other, fallback) in [
        ("<caf\u{E9}/>", Fallback::Xmlparser),
        ("<a b\u{E9}='1'/>", Fallback::Xmlparser),
        ("<a b='<'/>", Fallback::Xmlparser),
        ("<a b='1'c='2'/>", Fallback::Xmlparser),
        ("<a b='\u{1}'/>", Fallback::Xmlparser),
        ("<:a/>", Fallback::Xmlparser),
        ("<a b='1'", Fallback::BoundaryScan),
        ("<a><b></a>", Fallback::BoundaryScan),
        ("<a b='1' b='2'/>", Fallback::BoundaryScan),
        ("<a>\u{0}</a>", Fallback::BoundaryScan),
    ] {
        let got = parse_fast(other.as_bytes(), &limits, &mut scratch);
        assert_eq!(got.err(), Some(fallback), "{other:?}");
    }
    // Bytes that are not UTF-8 in text or a value: never accepted by the fast pass.
    for bad in [
        &b"<a>\xC3</a>"[..],
        b"<a b='\xFF'/>",
        b"<a>\xED\xA0\x80</a>",
    ] {
        assert_eq!(
            parse_fast(bad, &limits, &mut scratch).err(),
            Some(Fallback::BoundaryScan)
        );
    }
}
