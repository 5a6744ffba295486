//! Stream state machine tests: both handshake directions against each other and against
//! hand-written peers, every refusal, the timers, and a property test over chunking.

// The tests read the clock once for a base instant; the stream takes time as a parameter.
#![allow(clippy::disallowed_methods)]

use super::*;
use proptest::prelude::*;

const SECRET: &[u8] = b"s3cret";
const NAME: &str = "imp1.example.com";

fn t0() -> Instant {
    Instant::now()
}

fn receiver(now: Instant) -> ComponentStream {
    ComponentStream::receiver(StreamConfig::default(), [7; 16], FromCheck::PeerDomain, now)
}

fn initiator(now: Instant, secret: &[u8]) -> ComponentStream {
    ComponentStream::initiator(
        StreamConfig::default(),
        NAME,
        secret,
        NS_ACCEPT,
        FromCheck::None,
        now,
    )
}

/// Drains events; answers `NameAnnounced` for NAME with SECRET, refuses other names.
fn events(s: &mut ComponentStream) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(e) = s.poll_event() {
        match e {
            StreamEvent::NameAnnounced { name } => {
                if name == NAME {
                    s.accept_name(SECRET);
                } else {
                    s.refuse(Condition::HostUnknown, "unknown component");
                }
                out.push(format!("name:{name}"));
            }
            StreamEvent::Active => out.push("active".into()),
            StreamEvent::Stanza(st) => {
                out.push(format!("stanza:{}", String::from_utf8_lossy(st.bytes())))
            }
            StreamEvent::Closed(c) => out.push(format!("closed:{c:?}")),
        }
    }
    out
}

/// Moves bytes both ways until neither side has output; returns each side's events.
fn pump(
    a: &mut ComponentStream,
    b: &mut ComponentStream,
    now: Instant,
) -> (Vec<String>, Vec<String>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let mut moved = false;
        if let Some(bytes) = a.take_output() {
            b.receive(&bytes, now);
            moved = true;
        }
        eb.extend(events(b));
        if let Some(bytes) = b.take_output() {
            a.receive(&bytes, now);
            moved = true;
        }
        ea.extend(events(a));
        if !moved {
            break;
        }
    }
    (ea, eb)
}

fn output_str(s: &mut ComponentStream) -> String {
    s.take_output()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[test]
fn initiator_and_receiver_complete_the_handshake_and_exchange_stanzas() {
    let now = t0();
    let (mut i, mut r) = (initiator(now, SECRET), receiver(now));
    let (ei, er) = pump(&mut i, &mut r, now);
    assert_eq!(ei, vec!["active"]);
    assert_eq!(er, vec![format!("name:{NAME}"), "active".into()]);
    assert_eq!(i.stream_id(), r.stream_id());
    assert_eq!(r.stream_id().unwrap().len(), 32);

    i.writer()
        .unwrap()
        .put_slice(b"<message from='imp1.example.com' to='gw' id='1'/>");
    r.writer()
        .unwrap()
        .put_slice(b"<iq type='result' from='gw' to='imp1.example.com' id='1'/>");
    let (ei, er) = pump(&mut i, &mut r, now);
    assert_eq!(
        er,
        vec!["stanza:<message from='imp1.example.com' to='gw' id='1'/>"]
    );
    assert_eq!(
        ei,
        vec!["stanza:<iq type='result' from='gw' to='imp1.example.com' id='1'/>"]
    );

    i.close();
    let (ei, er) = pump(&mut i, &mut r, now);
    assert_eq!(er, vec!["closed:PeerEnded"]);
    assert_eq!(ei, vec!["closed:LocalEnded"]);
    assert!(Closed::PeerEnded.is_graceful());
}

#[test]
fn receiver_answers_a_handwritten_initiator_byte_for_byte() {
    let now = t0();
    let mut r = receiver(now);
    r.receive(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:connect' \
          xmlns:stream='http://etherx.jabber.org/streams' from='imp1.example.com'>",
        now,
    );
    assert_eq!(events(&mut r), vec![format!("name:{NAME}")]);
    let id = handshake::stream_id([7; 16]);
    assert_eq!(
        output_str(&mut r),
        format!(
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns='jabber:component:connect' from='{NAME}' id='{id}'>"
        )
    );
    // Uppercase hex and an explicit xmlns on <handshake> are both accepted.
    let hex = handshake::digest_hex(&id, SECRET).to_uppercase();
    r.receive(
        format!("<handshake xmlns='jabber:component:connect'>{hex}</handshake>").as_bytes(),
        now,
    );
    assert_eq!(events(&mut r), vec!["active"]);
    assert_eq!(output_str(&mut r), "<handshake/>");
}

#[test]
fn pipelined_header_and_handshake_in_one_read() {
    let now = t0();
    let mut r = receiver(now);
    let id = handshake::stream_id([7; 16]);
    let hex = handshake::digest_hex(&id, SECRET);
    r.receive(
        format!(
            "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' \
             to='{NAME}'><handshake>{hex}</handshake><message from='{NAME}' to='x'/>"
        )
        .as_bytes(),
        now,
    );
    assert_eq!(
        events(&mut r),
        vec![
            format!("name:{NAME}"),
            "active".into(),
            format!("stanza:<message from='{NAME}' to='x'/>")
        ]
    );
}

#[test]
fn wrong_secret_is_not_authorized_on_both_sides() {
    let now = t0();
    let (mut i, mut r) = (initiator(now, b"wrong"), receiver(now));
    let (ei, er) = pump(&mut i, &mut r, now);
    assert!(
        er.last()
            .unwrap()
            .contains("Refused { condition: NotAuthorized"),
        "{er:?}"
    );
    assert!(
        ei.last()
            .unwrap()
            .contains("PeerError { condition: NotAuthorized"),
        "{ei:?}"
    );
    assert!(!i.is_active() && !r.is_active());
}

#[test]
fn unknown_name_is_host_unknown_after_the_header() {
    let now = t0();
    let mut i = ComponentStream::initiator(
        StreamConfig::default(),
        "nobody.example",
        SECRET,
        NS_ACCEPT,
        FromCheck::None,
        now,
    );
    let mut r = receiver(now);
    let (ei, er) = pump(&mut i, &mut r, now);
    assert!(
        er.last()
            .unwrap()
            .contains("Refused { condition: HostUnknown"),
        "{er:?}"
    );
    assert!(
        ei.last()
            .unwrap()
            .contains("PeerError { condition: HostUnknown"),
        "{ei:?}"
    );
}

#[test]
fn wrong_namespace_opens_the_stream_before_the_error() {
    let now = t0();
    let mut r = receiver(now);
    r.receive(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x'>",
        now,
    );
    assert!(events(&mut r)[0].contains("InvalidNamespace"));
    let out = output_str(&mut r);
    assert!(out.starts_with("<stream:stream "), "{out}");
    let header_end = out.find('>').unwrap();
    assert!(
        out[header_end..].contains("<stream:error><invalid-namespace "),
        "{out}"
    );
    assert!(out.ends_with("</stream:stream>"));
}

#[test]
fn wrong_streams_namespace_is_invalid_namespace() {
    let now = t0();
    let mut r = receiver(now);
    r.receive(
        b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='urn:nope' to='x'>",
        now,
    );
    assert!(events(&mut r)[0].contains("InvalidNamespace"));
    assert!(output_str(&mut r).starts_with("<stream:stream "));
}

#[test]
fn garbage_before_the_header_still_gets_header_first() {
    let now = t0();
    let mut r = receiver(now);
    r.receive(b"<!DOCTYPE x [<!ENTITY a 'b'>]>", now);
    assert!(events(&mut r)[0].contains("RestrictedXml"));
    let out = output_str(&mut r);
    assert!(
        out.starts_with("<stream:stream ") && out.contains("<restricted-xml "),
        "{out}"
    );
    assert!(
        !out.contains("ENTITY"),
        "offending bytes must never be echoed: {out}"
    );
}

#[test]
fn stanza_before_handshake_is_not_authorized() {
    let now = t0();
    let mut r = receiver(now);
    r.receive(
        format!("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{NAME}'><message/>").as_bytes(),
        now,
    );
    let ev = events(&mut r);
    assert!(ev.last().unwrap().contains("NotAuthorized"), "{ev:?}");
}

fn active_pair(now: Instant) -> (ComponentStream, ComponentStream) {
    let (mut i, mut r) = (initiator(now, SECRET), receiver(now));
    pump(&mut i, &mut r, now);
    assert!(i.is_active() && r.is_active());
    (i, r)
}

#[test]
fn from_check_after_activation() {
    let now = t0();
    for (from, ok) in [
        ("imp1.example.com", true),
        ("IMP1.Example.COM", true),
        ("user@imp1.example.com/res", true),
        ("evil.example.com", false),
        ("imp1.example.com.evil", false),
        ("sub.imp1.example.com", false),
    ] {
        let (mut i, mut r) = active_pair(now);
        i.writer()
            .unwrap()
            .put_slice(format!("<message from='{from}' to='gw'/>").as_bytes());
        let (_, er) = pump(&mut i, &mut r, now);
        assert_eq!(er[0].starts_with("stanza:"), ok, "{from}: {er:?}");
        if !ok {
            assert!(er[0].contains("InvalidFrom"));
        }
    }
    let (mut i, mut r) = active_pair(now);
    i.writer().unwrap().put_slice(b"<message to='gw'/>");
    assert!(pump(&mut i, &mut r, now).1[0].contains("InvalidFrom"));
    let (mut i, mut r) = active_pair(now);
    i.writer()
        .unwrap()
        .put_slice(format!("<message from='{NAME}'/>").as_bytes());
    assert!(pump(&mut i, &mut r, now).1[0].contains("ImproperAddressing"));
}

#[test]
fn subdomain_rule_for_servers_relaying_users() {
    let now = t0();
    let mut r = ComponentStream::receiver(
        StreamConfig::default(),
        [1; 16],
        FromCheck::PeerDomainOrSubdomain,
        now,
    );
    let mut i = initiator(now, SECRET);
    pump(&mut i, &mut r, now);
    i.writer()
        .unwrap()
        .put_slice(b"<message from='alice@muc.imp1.example.com/x' to='gw'/>");
    assert!(pump(&mut i, &mut r, now).1[0].starts_with("stanza:"));
    i.writer()
        .unwrap()
        .put_slice(b"<message from='alice@xmuc-imp1.example.com' to='gw'/>");
    assert!(pump(&mut i, &mut r, now).1[0].contains("InvalidFrom"));
}

#[test]
fn peer_stream_errors_are_reported_with_condition_and_text() {
    let now = t0();
    let (mut i, mut r) = active_pair(now);
    r.refuse(Condition::SystemShutdown, "going down");
    let (ei, _) = pump(&mut i, &mut r, now);
    assert_eq!(
        ei,
        vec![format!(
            "closed:{:?}",
            Closed::PeerError {
                condition: Condition::SystemShutdown,
                text: Some("going down".into())
            }
        )]
    );
}

#[test]
fn handshake_timeout() {
    let now = t0();
    let mut r = receiver(now);
    assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(10)));
    r.handle_timeout(now + Duration::from_secs(9));
    assert!(events(&mut r).is_empty());
    r.handle_timeout(now + Duration::from_secs(10));
    assert!(events(&mut r)[0].contains("ConnectionTimeout"));
}

#[test]
fn slow_stanza_times_out() {
    let now = t0();
    let (mut i, mut r) = active_pair(now);
    i.writer()
        .unwrap()
        .put_slice(b"<message from='imp1.example.com' to='gw'><bo");
    pump(&mut i, &mut r, now);
    let due = r.poll_timeout().unwrap();
    assert_eq!(due, now + Duration::from_secs(30));
    r.handle_timeout(due);
    assert!(events(&mut r)[0].contains("stanza not completed"));
}

/// Input that can never become a well-formed stanza is refused when it arrives, with
/// not-well-formed, and the stanza timer is not what ends the stream.
#[test]
fn not_well_formed_stanzas_are_refused_at_once() {
    let now = t0();
    for bad in [
        "<message from='imp1.example.com' to='gw'><body>hi</stream:stream>",
        "<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='x'>",
        "<message from='imp1.example.com' to='gw'><body>hi</message>",
        "<message from='imp1.example.com' to='gw'><z:body>hi</z:body></message>",
        "<message from='imp1.example.com' to='gw' z:a='1'/>",
    ] {
        let (mut i, mut r) = active_pair(now);
        i.writer().unwrap().put_slice(bad.as_bytes());
        let (_, er) = pump(&mut i, &mut r, now);
        assert_eq!(er.len(), 1, "{bad}: {er:?}");
        assert!(
            er[0].starts_with("closed:Refused { condition: NotWellFormed"),
            "{bad}: {er:?}"
        );
        assert!(r.is_closed() && r.poll_timeout().is_none(), "{bad}");
    }
}

#[test]
fn keepalives_and_dead_peers() {
    let now = t0();
    let (mut i, _r) = active_pair(now);
    assert_eq!(i.poll_timeout(), Some(now + Duration::from_secs(30)));
    i.handle_timeout(now + Duration::from_secs(30));
    assert_eq!(output_str(&mut i), " ");
    i.receive(b" ", now + Duration::from_secs(60));
    i.handle_timeout(now + Duration::from_secs(149));
    assert!(!i.is_closed());
    i.handle_timeout(now + Duration::from_secs(150));
    assert_eq!(events(&mut i), vec!["closed:PeerSilent"]);
    assert!(!Closed::PeerSilent.is_graceful());
}

#[test]
fn reads_held_by_us_are_not_the_peers_silence() {
    let now = t0();
    let (mut i, _r) = active_pair(now);
    // Held from 60 s to 140 s: the dead interval (90 s) counts from the last hold, not from
    // the last bytes read.
    i.handle_reads_held(now + Duration::from_secs(60));
    i.handle_reads_held(now + Duration::from_secs(140));
    i.handle_timeout(now + Duration::from_secs(229));
    assert!(!i.is_closed());
    i.handle_timeout(now + Duration::from_secs(230));
    assert_eq!(events(&mut i), vec!["closed:PeerSilent"]);
}

#[test]
fn transport_end_is_ungraceful_unless_we_were_closing() {
    let now = t0();
    let (mut i, mut r) = active_pair(now);
    r.transport_closed();
    assert_eq!(events(&mut r), vec!["closed:TransportEnded"]);
    assert!(!Closed::TransportEnded.is_graceful());
    i.close();
    i.transport_closed();
    assert_eq!(events(&mut i), vec!["closed:LocalEnded"]);
}

#[test]
fn conflict_can_be_refused_after_the_name() {
    let now = t0();
    let mut i = initiator(now, SECRET);
    let mut r = receiver(now);
    r.receive(&i.take_output().unwrap(), now);
    match r.poll_event() {
        Some(StreamEvent::NameAnnounced { .. }) => {
            r.refuse(Condition::Conflict, "already connected")
        }
        other => panic!("{other:?}"),
    }
    i.receive(&r.take_output().unwrap(), now);
    assert!(events(&mut i)[0].contains("Conflict"));
}

proptest! {
    /// However the initiator's bytes are cut, the receiver sees the same events.
    #[test]
    fn handshake_survives_any_chunking(cuts in proptest::collection::vec(0usize..400, 0..8)) {
        let now = t0();
        let mut r = receiver(now);
        let id = handshake::stream_id([7; 16]);
        let input = format!(
            "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{NAME}'>\
             <handshake>{}</handshake><message from='{NAME}' to='gw'><body>x</body></message>",
            handshake::digest_hex(&id, SECRET)
        ).into_bytes();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % input.len()).collect();
        cuts.sort_unstable();
        let mut seen = Vec::new();
        let mut last = 0;
        for c in cuts.into_iter().chain([input.len()]) {
            r.receive(&input[last..c], now);
            last = c;
            seen.extend(events(&mut r));
        }
        prop_assert_eq!(seen, vec![
            format!("name:{NAME}"), "active".to_string(),
            format!("stanza:<message from='{NAME}' to='gw'><body>x</body></message>"),
        ]);
    }
}

#[test]
fn quiet_peers_are_pinged_before_being_declared_dead() {
    let now = t0();
    let (mut i, mut r) = active_pair(now);
    i.enable_pings("gw", NAME);
    // Half the dead interval (90 s) of silence: one ping, not two.
    let half = now + Duration::from_secs(45);
    i.handle_timeout(half);
    let out = output_str(&mut i);
    assert!(out.contains("<iq type='get' id='palisade-ka-0' from='gw' to='imp1.example.com'><ping xmlns='urn:xmpp:ping'/></iq>"), "{out}");
    i.handle_timeout(half + Duration::from_secs(1));
    assert!(!output_str(&mut i).contains("<iq"), "one ping per silence");
    // The peer answers (even with an error): the answer is consumed and the peer is alive.
    r.receive(out.as_bytes(), half);
    let _ = events(&mut r);
    i.receive(
        b"<iq type='error' id='palisade-ka-0' from='imp1.example.com' to='gw'/>",
        half + Duration::from_secs(2),
    );
    assert!(events(&mut i).is_empty(), "ping answers are not passed on");
    i.handle_timeout(now + Duration::from_secs(91));
    assert!(!i.is_closed(), "the answer reset the dead timer");
    i.handle_timeout(half + Duration::from_secs(2 + 90));
    assert_eq!(events(&mut i), vec!["closed:PeerSilent"]);
}
