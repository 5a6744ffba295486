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
