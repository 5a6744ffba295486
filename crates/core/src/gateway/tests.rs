//! The gateway core without sockets: handshakes, the trust rule, routing to owner shards,
//! link flow control and reload decisions, driven through its inputs and read from its outputs.

use super::*;
use crate::engine::Closing;
use crate::policy::load_str;
use crate::wire::Condition;
use std::time::SystemTime;

mod decisions;

const CONFIG: &str = r#"
[gateway]
name = "gw.example.com"
[listen]
compliance = "127.0.0.1:5276"
[[router]]
name = "imp1.example.com"
secret = "s3cret"
[[profile]]
name = "Wall"
events = [ { event = "es_OUT", packet = "message", handling = "bounce" } ]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = 1
password = "p"
profile = "Wall"
[[profile]]
name = "Rooms"
events = [ { event = "onBeforeJoin" } ]
[[server]]
name = "in1"
mode = "inbound"
component = "in1.gw.example.com"
password = "q"
profile = "Rooms"
connections = 1
"#;

const CS1: ServerId = ServerId(0);

struct Shard {
    core: Gateway,
    now: Instant,
}

fn shard(id: u16, shards: u16) -> Shard {
    shard_with(CONFIG, id, shards)
}

/// Shard `id` of `shards` under configuration `toml`, its first outputs taken.
fn shard_with(toml: &str, id: u16, shards: u16) -> Shard {
    let config = Arc::new(
        load_str(toml, "gateway-test.toml")
            .unwrap_or_else(|d| panic!("{d:?}"))
            .config,
    );
    let policy = Arc::new(CompiledPolicy::compile(&config));
    let now = Instant::now();
    let engine = ShardEngine::new(engine_config(id, shards, &config), policy.clone(), now);
    let mut shard = Shard {
        core: Gateway::new(engine, config, policy),
        now,
    };
    // The dialers it starts (see `a_new_core_starts_the_dialers_its_shard_keeps`).
    let _ = shard.outputs();
    shard
}

fn stanza(xml: &str) -> Stanza {
    crate::wire::test_stanza(xml.as_bytes())
}

impl Shard {
    fn now(&self) -> Now {
        Now {
            at: self.now,
            wall: SystemTime::now(),
        }
    }

    /// Every output so far; offers are taken (the stream has room) unless `refuse`.
    fn outputs_with(&mut self, refuse: bool) -> Vec<Output> {
        let mut all = Vec::new();
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Offer(offer) => {
                    let outcome = if refuse {
                        Offered::Refused
                    } else {
                        Offered::Taken
                    };
                    let text = String::from_utf8_lossy(offer.bytes()).into_owned();
                    let conn = offer.conn();
                    self.core.handle_offer(offer, outcome, self.now);
                    all.push(Output::Write {
                        conn,
                        bytes: Bytes::from(format!("offered:{outcome:?}:{text}")),
                    });
                }
                other => all.push(other),
            }
        }
        all
    }

    fn outputs(&mut self) -> Vec<Output> {
        self.outputs_with(false)
    }

    fn router(&mut self) -> ConnId {
        let conn = self
            .core
            .handle_connection_opened(Peer::RouterInbound, "10.0.0.1:1000".into());
        let name = "imp1.example.com".to_owned();
        let now = self.now;
        self.core
            .handle_connection_event(conn, ConnectionEvent::NameAnnounced { name }, now);
        self.core
            .handle_connection_event(conn, ConnectionEvent::Active, now);
        let _ = self.outputs();
        conn
    }

    fn link(&mut self, server: ServerId) -> ConnId {
        let conn = self.core.handle_connection_opened(
            Peer::ServerOutbound {
                server,
                generation: 0,
            },
            "127.0.0.1:1".into(),
        );
        let now = self.now;
        self.core
            .handle_connection_event(conn, ConnectionEvent::Active, now);
        conn
    }

    fn chat(&mut self, router: ConnId, id: &str, from: &str) {
        let xml = format!(
            "<iq type='set' id='{id}' from='imp1.example.com' to='gw.example.com'>\
             <event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
             <message from='{from}@example.com/r' to='bob@example.com' type='chat'><body>hi</body></message>\
             </event></iq>"
        );
        let now = self.now();
        self.core.handle_stanza(router, &stanza(&xml), now);
    }
}

fn logs(outputs: &[Output]) -> Vec<(Level, String)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Log { level, text } => Some((*level, text.clone())),
            _ => None,
        })
        .collect()
}

fn writes(outputs: &[Output], to: ConnId) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Write { conn, bytes } | Output::Verdict { conn, bytes } if *conn == to => {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_router_stream_is_accepted_by_name_with_its_secret_and_an_unknown_one_refused() {
    let mut s = shard(0, 1);
    let now = s.now;
    let known = s
        .core
        .handle_connection_opened(Peer::RouterInbound, "a".into());
    let name = "imp1.example.com".to_owned();
    s.core
        .handle_connection_event(known, ConnectionEvent::NameAnnounced { name }, now);
    let out = s.outputs();
    assert!(matches!(
        &out[..],
        [Output::Stream { conn, command: StreamCommand::AcceptName { secret } }]
            if *conn == known && secret == b"s3cret"
    ));
    let unknown = s
        .core
        .handle_connection_opened(Peer::RouterInbound, "b".into());
    let name = "who.example.com".to_owned();
    s.core
        .handle_connection_event(unknown, ConnectionEvent::NameAnnounced { name }, now);
    let out = s.outputs();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Stream {
            command: StreamCommand::Refuse {
                condition: Condition::HostUnknown,
                ..
            },
            ..
        }
    )));
    assert_eq!(
        logs(&out),
        [(
            Level::Warn,
            "Refused a router stream for unknown name 'who.example.com'".to_owned()
        )]
    );
}

#[test]
fn an_event_from_a_user_is_refused_before_it_is_read() {
    let mut s = shard(0, 1);
    let router = s.router();
    let xml = "<iq type='set' id='U1' from='alice@imp1.example.com' to='gw.example.com'>\
               <event xmlns='urn:palisade:compliance:0' name='es_OUT'/></iq>";
    let now = s.now();
    s.core.handle_stanza(router, &stanza(xml), now);
    let out = s.outputs();
    let answers = writes(&out, router);
    assert_eq!(answers.len(), 1);
    assert!(answers[0].contains("forbidden"), "{answers:?}");
    assert_eq!(s.core.counters().forbidden_events, 1);
    assert_eq!(s.core.in_flight(), 0);
}

#[test]
fn events_go_to_their_owner_shard_and_verdicts_back_to_the_router() {
    let (mut owned_here, mut sent_away) = (0, 0);
    for n in 0..40 {
        let mut s = shard(0, 2);
        let link = s.link(CS1);
        let _ = s.outputs();
        let router = s.router();
        s.chat(router, &format!("R{n}"), &format!("user{n}"));
        let out = s.outputs();
        let offered = writes(&out, link);
        let away = out.iter().any(|o| {
            matches!(
                o,
                Output::ToShard {
                    shard: 1,
                    message: PeerMessage::Event { .. }
                }
            )
        });
        assert!(offered.len() + usize::from(away) == 1, "{out:?}");
        if away {
            sent_away += 1;
            assert_eq!(s.core.in_flight(), 0);
            continue;
        }
        owned_here += 1;
        // The server answers; the verdict goes to the router's connection.
        let id = offered[0]
            .split("id='")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap_or_default()
            .to_owned();
        let answer = format!("<iq type='result' id='{id}' from='cs1' to='gw.example.com'/>");
        let now = s.now();
        s.core.handle_stanza(link, &stanza(&answer), now);
        let out = s.outputs();
        let verdicts = writes(&out, router);
        assert_eq!(verdicts.len(), 1, "{out:?}");
        assert!(verdicts[0].contains(&format!("id='R{n}'")));
    }
    assert!(
        owned_here > 0 && sent_away > 0,
        "keys spread over both shards"
    );
}

#[test]
fn a_link_coming_and_going_reaches_every_shard_and_alarms_are_raised_once() {
    let mut s = shard(0, 2);
    let link = s.link(CS1);
    let out = s.outputs();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::ToShard {
            shard: 1,
            message: PeerMessage::Link {
                server: CS1,
                link: 0,
                change: LinkChange::Up
            }
        }
    )));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::WatchRoom { conn, server: CS1 } if *conn == link)));
    let now = s.now;
    s.core.handle_connection_event(
        link,
        ConnectionEvent::Ended(crate::wire::Closed::TransportEnded),
        now,
    );
    let out = s.outputs();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::ToShard {
            message: PeerMessage::Link {
                change: LinkChange::Down(Closing::Abrupt),
                ..
            },
            ..
        }
    )));
    let raised = |out: &[Output]| {
        logs(out)
            .iter()
            .filter(|(_, t)| t.contains("ComplianceServerConnectionLost raised"))
            .count()
    };
    assert_eq!(raised(&out), 1);
    // The other shard's stream was never up: its loss raises nothing new.
    s.core.handle_peer_message(
        PeerMessage::Link {
            server: CS1,
            link: 1,
            change: LinkChange::Down(Closing::Abrupt),
        },
        s.now(),
    );
    let out = s.outputs();
    assert_eq!(raised(&out), 0);
    assert_eq!(s.core.alarms().len(), 1);
}

#[test]
fn a_refused_offer_holds_that_engine_until_the_stream_has_room() {
    let mut s = shard(0, 1);
    let link = s.link(CS1);
    let _ = s.outputs();
    let router = s.router();
    // The stream is full: the first request is refused and goes back to its queue.
    s.chat(router, "R0", "alice");
    let out = s.outputs_with(true);
    assert_eq!(writes(&out, link).len(), 1);
    assert!(writes(&out, link)[0].starts_with("offered:Refused"));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::WakeRoom { conn } if *conn == link)),
        "the engine waits for room: {out:?}"
    );
    assert_eq!(s.core.room_wanted(CS1, link), Some(true));
    // Later sends of that engine are not even offered while it waits.
    s.chat(router, "R1", "carol");
    let out = s.outputs();
    assert!(writes(&out, link).is_empty(), "{out:?}");
    // Room: both go out, in their order.
    let now = s.now;
    s.core
        .handle_connection_event(link, ConnectionEvent::Drained, now);
    let out = s.outputs();
    let offered = writes(&out, link);
    assert_eq!(offered.len(), 2, "{out:?}");
    assert!(offered[0].contains("alice@") && offered[1].contains("carol@"));
    assert_eq!(s.core.room_wanted(CS1, link), Some(false));
}

#[test]
fn an_inbound_server_gets_the_streams_it_may_have_and_no_more() {
    let mut s = shard(0, 2);
    let now = s.now;
    let open = |s: &mut Shard| {
        let conn = s
            .core
            .handle_connection_opened(Peer::ServerInbound, "10.0.0.9:5".into());
        let name = "IN1.gw.example.com".to_owned();
        s.core
            .handle_connection_event(conn, ConnectionEvent::NameAnnounced { name }, now);
        conn
    };
    let first = open(&mut s);
    let out = s.outputs();
    assert!(matches!(
        &out[..],
        [Output::Stream { conn, command: StreamCommand::AcceptName { secret } }]
            if *conn == first && secret == b"q"
    ));
    s.core
        .handle_connection_event(first, ConnectionEvent::Active, now);
    let _ = s.outputs();
    let second = open(&mut s);
    let out = s.outputs();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Stream {
            conn,
            command: StreamCommand::Refuse {
                condition: Condition::Conflict,
                ..
            }
        } if *conn == second
    )));
}

#[test]
fn a_reload_that_removes_a_server_retires_its_stream_after_an_event_timeout() {
    let mut s = shard(0, 1);
    let link = s.link(CS1);
    let _ = s.outputs();
    let toml = CONFIG.replace("name = \"cs1\"", "name = \"cs9\"");
    let config = Arc::new(load_str(&toml, "reload.toml").unwrap().config);
    let policy = Arc::new(CompiledPolicy::compile_after(
        &config,
        Some(s.core.policy()),
    ));
    let now = s.now;
    s.core.handle_reconfigure(config, policy, now);
    let out = s.outputs();
    assert!(out.iter().any(|o| matches!(
        o,
        Output::CloseLater { conn, server: CS1, .. } if *conn == link
    )));
    assert!(!s.core.link_current(CS1, 0), "its dialer stands down");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Dial(Dial::Server { .. }))),
        "the new server is dialed: {out:?}"
    );
    s.core.handle_retire_due(CS1, link);
    let out = s.outputs();
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Close { conn } if *conn == link)));
    assert!(!s.core.has_link(0));
}

#[test]
fn a_new_core_starts_the_dialers_its_shard_keeps() {
    let config = Arc::new(load_str(CONFIG, "t.toml").unwrap().config);
    let policy = Arc::new(CompiledPolicy::compile(&config));
    let engine = ShardEngine::new(engine_config(0, 2, &config), policy.clone(), Instant::now());
    let mut core = Gateway::new(engine, config, policy);
    let out: Vec<Output> = std::iter::from_fn(|| core.poll_output()).collect();
    let dials: Vec<&Dial> = out
        .iter()
        .filter_map(|o| match o {
            Output::Dial(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(
        dials,
        [&Dial::Server {
            server: CS1,
            generation: 0
        }],
        "the outbound server only; the inbound one dials us"
    );
}
