//! The spool through the shard's gateway core: what goes in, verdicts held until durable,
//! failing closed when full or when a write failed, and replay with the original record id.

use super::*;
use crate::spool::{Spool, SpoolIo};

impl Harness {
    fn with_spool(max_bytes: u64) -> Harness {
        Harness::build(TWO_PROFILES, 100, Through::Gateway, |engine| {
            engine.attach_spool(Spool::new(max_bytes, 64 << 10, 0), 0xb007)
        })
    }

    /// The next batch of the spool's file work, as the runtime's writer takes it.
    fn take_spool_batch(&mut self) -> Option<crate::spool::IoBatch> {
        match &mut self.drive {
            Drive::Gateway { core, .. } => core.take_spool_batch(),
            Drive::Engine(engine) => engine.take_spool_batch(),
        }
    }

    /// The writer made the records up to `upto` durable.
    fn spool_durable(&mut self, upto: u64) {
        let now = self.now;
        match &mut self.drive {
            Drive::Gateway { core, .. } => core.handle_spool_durable(upto, now),
            Drive::Engine(engine) => engine.handle_spool_durable(upto, now),
        }
        self.collect();
    }

    /// The writer failed to make the records up to `upto` durable.
    fn spool_failed(&mut self, upto: u64) {
        let now = self.now;
        match &mut self.drive {
            Drive::Gateway { core, .. } => core.handle_spool_failed(upto, now),
            Drive::Engine(engine) => engine.handle_spool_failed(upto, now),
        }
        self.collect();
    }

    /// Carries out the spool's pending batch as a disk that never fails; returns its size.
    fn sync_spool(&mut self) -> usize {
        let Some(batch) = self.take_spool_batch() else {
            return 0;
        };
        let n = batch.ops.len();
        self.spool_durable(batch.upto);
        n
    }

    /// The read-back of spooled records replay waits for, as the runtime's replay task takes it.
    fn take_spool_load(&mut self) -> Option<crate::spool::Load> {
        match &mut self.drive {
            Drive::Gateway { core, .. } => core.take_spool_load(),
            Drive::Engine(engine) => engine.take_spool_load(),
        }
    }

    /// The replay task read `data` back for `load`.
    fn spool_loaded(&mut self, load: &crate::spool::Load, data: &[u8]) {
        let now = self.now;
        match &mut self.drive {
            Drive::Gateway { core, .. } => core.handle_spool_loaded(load, Ok(data), now),
            Drive::Engine(engine) => engine.handle_spool_loaded(load, Ok(data), now),
        }
        self.collect();
    }

    /// One replay turn if one is due; whether it was.
    fn replay_turn(&mut self) -> bool {
        let now = self.now;
        let due = match &mut self.drive {
            Drive::Gateway { core, .. } => {
                core.replay_due() && {
                    core.handle_replay_turn(now);
                    true
                }
            }
            Drive::Engine(engine) => {
                engine.replay_due() && {
                    engine.replay_turn(now);
                    true
                }
            }
        };
        self.collect();
        due
    }

    fn records(&self) -> u64 {
        self.engine().spool().map_or(0, Spool::records)
    }
}

fn attr<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let at = xml.find(&format!(" {name}='"))? + name.len() + 3;
    Some(&xml[at..at + xml[at..].find('\'')?])
}

#[test]
fn every_request_carries_a_record_id_stable_across_resends() {
    let mut h = Harness::build(TWO_PROFILES, 100, Through::Gateway, |e| e.set_boot(0xabc));
    for s in [CS1, CS2, CS3] {
        h.up(s);
    }
    h.chat("alice", "bob");
    let first = attr(&h.sent[0].xml, "record").unwrap().to_owned();
    assert_eq!(first, "abc.0.1.0");
    // The stream is lost ungracefully: the request is sent again with the same record.
    let server = h.sent[0].server;
    h.link(server, LinkChange::Down(Closing::Abrupt));
    h.up(server);
    assert_eq!(h.sent.len(), 2);
    assert_eq!(attr(&h.sent[1].xml, "record"), Some(first.as_str()));
    h.pass(1);
    assert_eq!(
        attr(&h.sent[2].xml, "record"),
        Some("abc.0.1.1"),
        "next step"
    );
}

#[test]
fn a_notify_with_no_server_is_spooled_and_its_verdict_waits_for_the_sync() {
    let mut h = Harness::with_spool(1 << 20);
    // es_IN is fire-and-forget with handling bounce: a drop once the record is kept.
    let id = h.event(
        "es_IN",
        "",
        "<message from='a@example.com/r' to='b@example.com' type='chat'><body>x</body></message>",
    );
    assert!(h.sent.is_empty());
    assert_eq!(h.records(), 1);
    assert!(h.verdicts.is_empty(), "held until the record is durable");
    let ops = h.sync_spool();
    assert!(ops >= 3, "create, write, sync");
    assert!(h.verdict_for(&id).contains("action='drop'"));
}

#[test]
fn a_failed_open_wait_step_is_spooled_a_server_that_answered_never_is() {
    let mut h = Harness::with_spool(1 << 20);
    h.up(CS3);
    // Wall's servers never came up: es_OUT's Wall step (bounce) times out in the queue and
    // bounces (nothing to record); e_SESSION (handling pass) fails open and is kept.
    let id = h.event(
        "e_SESSION",
        "",
        "<presence from='a@example.com/r' to='example.com'/>",
    );
    h.advance(TIMEOUT + Duration::from_millis(1));
    assert_eq!(h.records(), 1);
    assert!(h.verdicts.is_empty());
    h.sync_spool();
    assert!(h.verdict_for(&id).contains("action='pass'"));
    assert_eq!(
        h.engine().counters().terminal[Terminal::FailedOpen.index()],
        1
    );
    // An error from a server that saw the event is not a record.
    let mut h = Harness::with_spool(1 << 20);
    h.up(CS1);
    h.up(CS2);
    h.event(
        "e_SESSION",
        "",
        "<presence from='a@example.com/r' to='example.com'/>",
    );
    h.answer(
        0,
        "error",
        "<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    );
    assert_eq!(h.records(), 0);
    assert_eq!(h.verdicts.len(), 1);
}

#[test]
fn a_full_spool_bounces_with_resource_constraint_and_raises_spool_full() {
    let mut h = Harness::with_spool(600);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(h.event(
            "es_IN",
            "",
            &format!(
                "<message from='a{i}@example.com/r' to='b@example.com'><body>{}</body></message>",
                "x".repeat(80)
            ),
        ));
    }
    h.sync_spool();
    let bounced: Vec<&String> = h
        .verdicts
        .iter()
        .filter(|v| v.contains("<resource-constraint"))
        .collect();
    assert!(!bounced.is_empty(), "{:?}", h.verdicts);
    assert!(bounced
        .iter()
        .all(|v| v.contains("action='bounce'") && v.contains("type='wait'")));
    assert!(h.alarms.contains(&Alarm::SpoolFull {
        state: crate::engine::AlarmState::Raised
    }));
    assert_eq!(
        h.verdicts.len(),
        6,
        "the kept ones dropped, the others bounced"
    );
    // Replay frees the space: the alarm clears.
    h.up(CS1);
    h.up(CS2);
    assert_eq!(h.records(), 0);
    assert!(h.alarms.contains(&Alarm::SpoolFull {
        state: crate::engine::AlarmState::Cleared
    }));
}

#[test]
fn a_failed_write_fails_the_held_events_closed() {
    let mut h = Harness::with_spool(1 << 20);
    let id = h.event(
        "es_IN",
        "",
        "<message from='a@example.com/r' to='b@example.com'/>",
    );
    let batch = h.take_spool_batch().unwrap();
    h.spool_failed(batch.upto);
    let v = h.verdict_for(&id);
    assert!(
        v.contains("action='bounce'") && v.contains("resource-constraint"),
        "{v}"
    );
    assert_eq!(h.records(), 0);
}

#[test]
fn replay_sends_each_record_once_with_its_id_and_stamp_when_a_server_is_back() {
    let mut h = Harness::with_spool(1 << 20);
    for i in 0..20 {
        h.event(
            "es_IN",
            "",
            &format!("<message from='u{i}@example.com/r' to='b@example.com'/>"),
        );
    }
    h.sync_spool();
    assert_eq!(h.records(), 20);
    assert_eq!(h.verdicts.len(), 20);
    h.up(CS1);
    // cs2 is still in its (start-up) outage window: only cs1's share goes out.
    let to_cs1 = h.sent.len();
    assert!(to_cs1 > 0 && to_cs1 < 20, "{to_cs1}");
    h.up(CS2);
    assert_eq!(h.sent.len(), 20);
    assert_eq!(h.records(), 0);
    let mut ids: Vec<&str> = h
        .sent
        .iter()
        .map(|s| attr(&s.xml, "record").unwrap())
        .collect();
    assert!(h
        .sent
        .iter()
        .all(|s| s.xml.contains("replay='1'") && s.xml.contains("mode='notify'")));
    assert!(h.sent.iter().all(|s| s.xml.starts_with("<message ")));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "every record once");
    // Removal: the segment goes once all its records were delivered.
    let batch = h.take_spool_batch().unwrap();
    assert!(
        batch
            .ops
            .iter()
            .any(|o| matches!(o, SpoolIo::Remove { .. })),
        "{:?}",
        batch.ops
    );
}

#[test]
fn replay_is_paced_by_the_streams_flow_control() {
    let mut h = Harness::with_spool(1 << 22);
    for i in 0..200 {
        h.event(
            "es_IN",
            "",
            &format!("<message from='u{i}@example.com/r' to='b@example.com'/>"),
        );
    }
    h.sync_spool();
    h.limit(CS1, 2000);
    h.limit(CS2, 2000);
    h.up(CS1);
    h.up(CS2);
    let first = h.sent.len();
    assert!(
        first < 200,
        "one batch per stream, not everything at once: {first}"
    );
    for _ in 0..100 {
        h.drain(CS1);
        h.drain(CS2);
        h.advance(Duration::from_millis(1));
    }
    assert_eq!(h.records(), 0);
    let mut ids: Vec<&str> = h
        .sent
        .iter()
        .map(|s| attr(&s.xml, "record").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}

#[test]
fn record_ids_fit_their_buffer_at_the_largest_values() {
    let id =
        super::super::shard::RecordId::new_for_test([0xffff_ffff_ffff, 0xffff, u64::MAX, 0xffff]);
    assert_eq!(id, "ffffffffffff.ffff.ffffffffffffffff.ffff");
}

#[test]
fn a_notify_handed_back_by_a_full_stream_keeps_its_record_when_its_server_leaves() {
    let mut h = Harness::with_spool(1 << 20);
    // Streams that take one request, then defer every later one until drained.
    h.limit(CS1, 0);
    h.limit(CS2, 0);
    h.up(CS1);
    h.up(CS2);
    let stanza =
        "<message from='a@example.com/r' to='b@example.com' type='chat'><body>x</body></message>";
    h.event("es_IN", "", stanza);
    assert_eq!(h.sent.len(), 1, "the first notify is written");
    let server = h.sent[0].server;
    let first = attr(&h.sent[0].xml, "record").unwrap().to_owned();
    h.event("es_IN", "", stanza);
    assert_eq!(
        h.sent.len(),
        1,
        "the second is handed back by the full stream"
    );
    assert_eq!(h.streams[server.index()].deferred, 1);
    assert_eq!(
        h.records(),
        0,
        "nothing is spooled while it can still be delivered"
    );
    // Its server leaves the ring with the notify still queued: it can no longer be delivered.
    h.link(server, LinkChange::Down(Closing::Graceful));
    h.collect();
    assert_eq!(h.records(), 1, "the notify's record is kept");
    assert_eq!(
        h.engine().counters().servers[server.index()].notifications_lost,
        0
    );
    h.sync_spool();
    // Replayed once its server is back, with the record id it had and its stanza.
    h.streams[CS1.index()].limit = None;
    h.streams[CS2.index()].limit = None;
    h.up(server);
    let replayed: Vec<&Sent> = h
        .sent
        .iter()
        .filter(|s| s.xml.contains("replay='1'"))
        .collect();
    assert_eq!(
        replayed.len(),
        1,
        "{:?}",
        h.sent.iter().map(|s| &s.xml).collect::<Vec<_>>()
    );
    let id = attr(&replayed[0].xml, "record").unwrap();
    assert_ne!(id, first);
    assert!(id.starts_with("b007.0."), "{id}");
    assert!(replayed[0].xml.contains(stanza));
    assert!(replayed[0]
        .xml
        .contains("name='es_IN' packet='message' profile='Wall'"));
    assert_eq!(h.records(), 0);
}

#[test]
fn a_failed_write_raises_spool_full_until_a_record_is_durable_again() {
    let raised = Alarm::SpoolFull {
        state: crate::engine::AlarmState::Raised,
    };
    let cleared = Alarm::SpoolFull {
        state: crate::engine::AlarmState::Cleared,
    };
    let mut h = Harness::with_spool(1 << 20);
    let msg = |i: usize| format!("<message from='a{i}@example.com/r' to='b@example.com'/>");
    // A durable record first: a later failure must not take it.
    h.event("es_IN", "", &msg(0));
    h.sync_spool();
    assert_eq!(h.records(), 1);
    for i in 1..4 {
        let id = h.event("es_IN", "", &msg(i));
        let batch = h.take_spool_batch().unwrap();
        h.spool_failed(batch.upto);
        assert!(h.verdict_for(&id).contains("resource-constraint"));
    }
    assert_eq!(
        h.alarms.iter().filter(|a| **a == raised).count(),
        1,
        "raised once"
    );
    assert!(h.engine().spool().unwrap().refusing());
    assert_eq!(h.records(), 1, "the durable record is kept");
    assert_eq!(h.engine().spool().unwrap().counters.io_errors, 3);
    // Space is back: the next record is durable, the alarm clears.
    let id = h.event("es_IN", "", &msg(9));
    h.sync_spool();
    assert!(
        h.verdict_for(&id).contains("action='drop'"),
        "{:?}",
        h.verdicts
    );
    assert!(h.alarms.contains(&cleared));
    assert!(!h.engine().spool().unwrap().refusing());
    assert_eq!(h.records(), 2);
}

#[test]
fn a_notify_read_back_from_its_bytes_is_the_record_it_was_written_from() {
    let mut h = Harness::with_spool(1 << 20);
    h.up(CS1);
    h.up(CS2);
    // A stanza with entities and quotes comes back byte for byte.
    let stanza = "<message from='a@example.com/o&apos;neil&amp;co' to='b@example.com'><body>a &lt; b &amp; &apos;c&apos;</body></message>";
    h.event("es_IN", "", stanza);
    let xml = h.sent[0].xml.clone();
    let payload = h
        .engine()
        .record_of_request(xml.as_bytes())
        .expect("a notify this engine wrote");
    let r = crate::spool::format::decode_payload(&payload).unwrap();
    assert_eq!(Some(r.id.as_str()), attr(&xml, "record"));
    assert_eq!(Some(r.stamp.as_str()), attr(&xml, "stamp"));
    assert_eq!(r.profile, "Wall");
    assert_eq!(r.event.name(), "es_IN");
    assert_eq!(r.packet, Some(crate::policy::PacketType::Message));
    assert_eq!(r.handling, crate::policy::Handling::Bounce);
    assert_eq!(r.node, "imp1");
    assert_eq!(r.key, "a@example.com|b@example.com");
    assert_eq!(r.stable_key, crate::routing::stable_hash(r.key.as_bytes()));
    assert_eq!(&r.stanza[..], stanza.as_bytes());
    // Not a notify: nothing.
    assert!(h.engine().record_of_request(b"<iq type='set'/>").is_none());
    assert!(h.engine().record_of_request(b"").is_none());
}

/// Segment files in memory, for the replay of records that are only on disk.
#[derive(Default)]
struct MemFiles(std::collections::BTreeMap<u64, Vec<u8>>);

impl crate::spool::SpoolFiles for MemFiles {
    fn list(&mut self) -> std::io::Result<Vec<u64>> {
        Ok(self.0.keys().copied().collect())
    }
    fn read(&mut self, segment: u64) -> std::io::Result<Vec<u8>> {
        Ok(self.0.get(&segment).cloned().unwrap_or_default())
    }
    fn create(&mut self, segment: u64) -> std::io::Result<()> {
        self.0.entry(segment).or_default();
        Ok(())
    }
    fn write(&mut self, segment: u64, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let f = self.0.entry(segment).or_default();
        f.truncate(offset as usize);
        f.extend_from_slice(bytes);
        Ok(())
    }
    fn sync(&mut self, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn remove(&mut self, segment: u64) -> std::io::Result<()> {
        self.0.remove(&segment);
        Ok(())
    }
}

#[test]
fn records_past_the_memory_bound_are_read_back_and_replayed_once_each() {
    let mut h = Harness::build(TWO_PROFILES, 100, Through::Gateway, |engine| {
        let mut spool = Spool::new(1 << 22, 4 << 10, 0);
        spool.set_memory_bound(1000);
        engine.attach_spool(spool, 0xb007)
    });
    let mut files = MemFiles::default();
    let carry = |h: &mut Harness, files: &mut MemFiles| {
        while let Some(batch) = h.take_spool_batch() {
            crate::spool::execute(&batch, files).unwrap();
            h.spool_durable(batch.upto);
        }
    };
    for i in 0..100 {
        h.event(
            "es_IN",
            "",
            &format!(
                "<message from='u{i}@example.com/r' to='b@example.com'><body>{i}</body></message>"
            ),
        );
    }
    carry(&mut h, &mut files);
    assert_eq!(h.records(), 100);
    assert!(h.engine().spool().unwrap().held_bytes() <= 1000);
    h.up(CS1);
    h.up(CS2);
    let mut reads = 0;
    for _ in 0..1000 {
        carry(&mut h, &mut files);
        let Some(load) = h.take_spool_load() else {
            if h.replay_turn() {
                continue;
            }
            break;
        };
        reads += 1;
        let f = &files.0[&load.segment];
        let data = f[load.offset as usize..(load.offset + load.len) as usize].to_vec();
        h.spool_loaded(&load, &data);
    }
    assert!(reads > 0);
    assert_eq!(h.records(), 0, "after {reads} reads");
    let mut ids: Vec<&str> = h
        .sent
        .iter()
        .map(|s| attr(&s.xml, "record").unwrap())
        .collect();
    assert_eq!(ids.len(), 100);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "each once");
}
