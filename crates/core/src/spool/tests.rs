use super::*;
use crate::policy::DetHashMap;
use crate::policy::{EventId, Handling, PacketType};
use proptest::prelude::*;
use std::io;

/// A disk that keeps what was synced apart from what was only written, fails or tears a write
/// at a chosen byte of everything written, and can "crash" (lose whatever was not synced).
#[derive(Default)]
struct FaultFiles {
    /// Synced content per segment.
    disk: DetHashMap<u64, Vec<u8>>,
    /// Written content (synced or not) per segment.
    cache: DetHashMap<u64, Vec<u8>>,
    /// Bytes written so far, over all writes.
    written: u64,
    /// Fail the write that would cross this many bytes written, after writing up to it.
    tear_at: Option<u64>,
    fail_sync: bool,
}

impl FaultFiles {
    /// What survives a crash: the synced content, plus `extra` bytes of what was written after.
    fn crash(&self, extra: usize) -> Vec<(u64, Bytes)> {
        let mut out: Vec<(u64, Bytes)> = self
            .cache
            .iter()
            .map(|(n, c)| {
                let synced = self.disk.get(n).map_or(0, Vec::len);
                let keep = (synced + extra).min(c.len());
                (*n, Bytes::copy_from_slice(&c[..keep]))
            })
            .collect();
        out.sort_by_key(|(n, _)| *n);
        out
    }
}

impl SpoolFiles for FaultFiles {
    fn list(&mut self) -> io::Result<Vec<u64>> {
        let mut v: Vec<u64> = self.cache.keys().copied().collect();
        v.sort();
        Ok(v)
    }
    fn read(&mut self, segment: u64) -> io::Result<Vec<u8>> {
        Ok(self.cache.get(&segment).cloned().unwrap_or_default())
    }
    fn create(&mut self, segment: u64) -> io::Result<()> {
        self.cache.entry(segment).or_default();
        self.disk.entry(segment).or_default();
        Ok(())
    }
    fn write(&mut self, segment: u64, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let file = self.cache.entry(segment).or_default();
        assert_eq!(file.len() as u64, offset, "appends only");
        let mut n = bytes.len();
        let torn = self
            .tear_at
            .filter(|&t| self.written + bytes.len() as u64 > t)
            .map(|t| (t - self.written.min(t)) as usize);
        if let Some(k) = torn {
            n = k;
        }
        file.extend_from_slice(&bytes[..n]);
        self.written += n as u64;
        match torn {
            Some(_) => Err(io::Error::other("injected write failure")),
            None => Ok(()),
        }
    }
    fn sync(&mut self, segment: u64) -> io::Result<()> {
        if self.fail_sync {
            return Err(io::Error::other("injected sync failure"));
        }
        let c = self.cache.get(&segment).cloned().unwrap_or_default();
        self.disk.insert(segment, c);
        Ok(())
    }
    fn remove(&mut self, segment: u64) -> io::Result<()> {
        self.cache.remove(&segment);
        self.disk.remove(&segment);
        Ok(())
    }
}

fn record(i: usize, stanza_len: usize) -> Record {
    Record {
        id: format!("b.0.{i:x}.0"),
        stamp: "2026-11-21T10:00:00.123Z".into(),
        stable_key: i as u64 * 7919,
        profile: if i.is_multiple_of(3) { "Audit" } else { "Wall" }.into(),
        event: EventId::lookup(b"es_OUT").unwrap(),
        packet: Some(PacketType::Message),
        handling: Handling::Pass,
        node: "imp1".into(),
        key: format!("a{i}@example.com|b@example.com"),
        stanza: Bytes::from(format!(
            "<message><body>{}</body></message>",
            "x".repeat(stanza_len)
        )),
    }
}

fn ids(spool: &Spool) -> Vec<String> {
    spool
        .pending_from(0)
        .map(|(_, p)| {
            format::decode_payload(p.payload.as_ref().unwrap())
                .unwrap()
                .id
        })
        .collect()
}

fn commit(spool: &mut Spool, files: &mut FaultFiles) -> io::Result<()> {
    while let Some(batch) = spool.take_batch() {
        match execute(&batch, files) {
            Ok(()) => spool.on_durable(batch.upto),
            Err(e) => {
                spool.on_failed(batch.upto);
                return Err(e);
            }
        }
    }
    Ok(())
}

#[test]
fn records_round_trip_and_payloads_decode() {
    let r = record(5, 40);
    let payload = format::encode_payload(&r.as_ref());
    assert_eq!(format::decode_payload(&payload), Some(r));
    assert_eq!(format::decode_payload(&payload[..payload.len() - 1]), None);
}

#[test]
fn group_commit_syncs_once_per_batch_and_recovers_everything_durable() {
    let mut spool = Spool::new(1 << 20, 64 << 10, 0);
    let mut files = FaultFiles::default();
    for i in 0..10 {
        spool.append(&record(i, 10).as_ref(), 0).unwrap();
    }
    let batch = spool.take_batch().unwrap();
    let syncs = batch
        .ops
        .iter()
        .filter(|o| matches!(o, SpoolIo::Sync { .. }))
        .count();
    assert_eq!(syncs, 1, "one sync covers the ten records: {:?}", batch.ops);
    assert_eq!(batch.upto, 10);
    // While it is in flight, more records wait for the next batch.
    spool.append(&record(10, 10).as_ref(), 0).unwrap();
    assert!(spool.take_batch().is_none());
    execute(&batch, &mut files).unwrap();
    spool.on_durable(batch.upto);
    assert_eq!(spool.durable(), 10);
    commit(&mut spool, &mut files).unwrap();
    assert_eq!(spool.durable(), 11);
    let (back, report) = Spool::recover(1 << 20, 64 << 10, files.crash(0), |_| 0);
    assert_eq!(report.records, 11);
    assert!(report.torn.is_empty());
    assert_eq!(ids(&back), ids(&spool));
    assert_eq!(back.bytes(), spool.bytes());
}

#[test]
fn a_full_spool_refuses_and_frees_space_as_segments_are_delivered() {
    let mut spool = Spool::new(16 << 10, 4096, 0);
    let mut files = FaultFiles::default();
    let mut kept = Vec::new();
    let refused = loop {
        match spool.append(&record(kept.len(), 200).as_ref(), 0) {
            Ok(seq) => kept.push(seq),
            Err(e) => break e,
        }
    };
    assert_eq!(refused, Refused::Full);
    assert!(spool.full());
    assert!(spool.bytes() <= 16 << 10);
    commit(&mut spool, &mut files).unwrap();
    assert!(files.cache.len() > 1, "it rolled segments");
    for seq in &kept {
        spool.delivered(*seq);
    }
    assert!(!spool.full());
    assert_eq!(spool.records(), 0);
    assert_eq!(spool.bytes(), 0);
    commit(&mut spool, &mut files).unwrap();
    assert!(
        files.cache.is_empty(),
        "every segment removed: {:?}",
        files.list()
    );
    assert_eq!(
        spool.profiles().iter().map(|p| p.replayed).sum::<u64>(),
        kept.len() as u64
    );
}

#[test]
fn a_failed_write_loses_only_the_batch_in_flight_and_the_spool_goes_on() {
    let mut spool = Spool::new(1 << 20, 64 << 10, 0);
    let mut files = FaultFiles::default();
    for i in 0..3 {
        spool.append(&record(i, 10).as_ref(), 0).unwrap();
    }
    commit(&mut spool, &mut files).unwrap();
    files.tear_at = Some(files.written + 30);
    for i in 3..6 {
        spool.append(&record(i, 10).as_ref(), 0).unwrap();
    }
    assert!(commit(&mut spool, &mut files).is_err());
    assert_eq!(
        spool.records(),
        3,
        "the failed batch's records left the index"
    );
    assert_eq!(spool.counters.lost_on_error, 3);
    files.tear_at = None;
    spool.append(&record(6, 10).as_ref(), 0).unwrap();
    commit(&mut spool, &mut files).unwrap();
    // Everything written reaches the disk, the torn write's bytes included.
    let (back, report) = Spool::recover(1 << 20, 64 << 10, files.crash(1 << 20), |_| 0);
    assert_eq!(report.records, 4);
    assert_eq!(report.torn.len(), 1, "the torn write is found: {report:?}");
    assert_eq!(ids(&back), ids(&spool));
}

#[test]
fn a_failed_sync_is_a_failed_batch() {
    let mut spool = Spool::new(1 << 20, 64 << 10, 0);
    let mut files = FaultFiles {
        fail_sync: true,
        ..Default::default()
    };
    spool.append(&record(0, 10).as_ref(), 0).unwrap();
    assert!(commit(&mut spool, &mut files).is_err());
    assert_eq!(spool.records(), 0);
}

#[test]
fn a_file_without_a_header_is_not_a_segment() {
    let (spool, report) = Spool::recover(
        1 << 20,
        64 << 10,
        vec![(3, Bytes::from_static(b"PALS"))],
        |_| 0,
    );
    assert_eq!(report.not_segments, vec![3]);
    assert_eq!(spool.records(), 0);
    let mut spool = spool;
    let batch = spool.take_batch().unwrap();
    assert_eq!(batch.ops, vec![SpoolIo::Remove { segment: 3 }]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Append records in batches, crash with the last segment cut at every offset: recovery
    /// keeps exactly the records whose frames are whole, reports a tear iff the cut is inside a
    /// frame, and never yields a record that was not appended.
    #[test]
    fn tear_at_every_offset_and_recover(
        sizes in proptest::collection::vec(0usize..120, 1..12),
        batch_every in 1usize..5,
    ) {
        let mut spool = Spool::new(1 << 20, 1 << 20, 0);
        let mut files = FaultFiles::default();
        let mut ends = vec![format::SEGMENT_MAGIC.len() as u64];
        for (i, &len) in sizes.iter().enumerate() {
            spool.append(&record(i, len).as_ref(), 0).unwrap();
            ends.push(spool.bytes());
            if i % batch_every == 0 {
                commit(&mut spool, &mut files).unwrap();
            }
        }
        commit(&mut spool, &mut files).unwrap();
        let whole = files.cache.get(&0).cloned().unwrap();
        prop_assert_eq!(whole.len() as u64, *ends.last().unwrap());
        let all: Vec<String> = ids(&spool);
        for cut in 0..=whole.len() {
            let data = Bytes::copy_from_slice(&whole[..cut]);
            let (back, report) = Spool::recover(1 << 20, 1 << 20, vec![(0, data)], |_| 0);
            let whole_frames = ends.iter().filter(|&&e| e <= cut as u64).count().saturating_sub(1);
            prop_assert_eq!(ids(&back), all[..whole_frames].to_vec());
            let on_boundary = ends.contains(&(cut as u64));
            if cut < format::SEGMENT_MAGIC.len() {
                prop_assert_eq!(report.not_segments.clone(), vec![0]);
            } else {
                prop_assert_eq!(report.torn.is_empty(), on_boundary, "cut {}", cut);
            }
        }
    }

    /// A corrupted byte anywhere in a frame is caught by its checksum: the records before it
    /// are kept, nothing after it is trusted.
    #[test]
    fn a_flipped_byte_never_yields_a_wrong_record(
        sizes in proptest::collection::vec(0usize..60, 1..8),
        at in any::<prop::sample::Index>(),
    ) {
        let mut spool = Spool::new(1 << 20, 1 << 20, 0);
        let mut files = FaultFiles::default();
        for (i, &len) in sizes.iter().enumerate() {
            spool.append(&record(i, len).as_ref(), 0).unwrap();
        }
        commit(&mut spool, &mut files).unwrap();
        let mut data = files.cache.get(&0).cloned().unwrap();
        let i = at.index(data.len() - format::SEGMENT_MAGIC.len()) + format::SEGMENT_MAGIC.len();
        data[i] ^= 0x5a;
        let (back, report) = Spool::recover(1 << 20, 1 << 20, vec![(0, Bytes::from(data))], |_| 0);
        let all = ids(&spool);
        let got = ids(&back);
        prop_assert!(got.len() < all.len());
        prop_assert_eq!(&all[..got.len()], &got[..]);
        prop_assert_eq!(report.torn.len(), 1);
    }

    /// Whatever is appended, delivered and crashed: every durable, undelivered record comes
    /// back, and nothing else but records written after the last sync (at least once).
    #[test]
    fn crash_after_any_history_recovers_every_durable_record(
        ops in proptest::collection::vec(0u8..4, 1..60),
        extra in 0usize..200,
    ) {
        let mut spool = Spool::new(1 << 20, 4096, 0);
        let mut files = FaultFiles::default();
        let mut n = 0;
        for op in ops {
            match op {
                0 | 1 => {
                    spool.append(&record(n, 50).as_ref(), 0).unwrap();
                    n += 1;
                }
                2 => commit(&mut spool, &mut files).unwrap(),
                _ => {
                    let first = spool.pending_from(0).map(|(s, _)| s).next();
                    if let Some(seq) = first {
                        spool.delivered(seq);
                    }
                }
            }
        }
        let durable: Vec<String> = spool
            .pending_from(0)
            .filter(|(s, _)| *s <= spool.durable())
            .map(|(_, p)| format::decode_payload(p.payload.as_ref().unwrap()).unwrap().id)
            .collect();
        let everything: Vec<String> = (0..n).map(|i| record(i, 50).id).collect();
        let (back, _) = Spool::recover(1 << 20, 4096, files.crash(extra), |_| 0);
        let got = ids(&back);
        for id in &durable {
            prop_assert!(got.contains(id), "durable {} lost", id);
        }
        for id in &got {
            prop_assert!(everything.contains(id));
        }
    }
}

#[test]
fn records_appended_during_a_failed_batch_are_not_kept_either() {
    let mut spool = Spool::new(1 << 20, 64 << 10, 0);
    let mut files = FaultFiles::default();
    spool.append(&record(0, 10).as_ref(), 0).unwrap();
    commit(&mut spool, &mut files).unwrap();
    spool.append(&record(1, 10).as_ref(), 0).unwrap();
    let batch = spool.take_batch().unwrap();
    // Appended while the failing batch runs: its frame would follow the torn one.
    spool.append(&record(2, 10).as_ref(), 0).unwrap();
    files.tear_at = Some(files.written + 5);
    assert!(execute(&batch, &mut files).is_err());
    assert_eq!(spool.on_failed(batch.upto), 3, "everything not durable");
    assert_eq!(ids(&spool), vec![record(0, 10).id]);
    files.tear_at = None;
    spool.append(&record(3, 10).as_ref(), 0).unwrap();
    commit(&mut spool, &mut files).unwrap();
    let (back, _) = Spool::recover(1 << 20, 64 << 10, files.crash(1 << 20), |_| 0);
    assert_eq!(ids(&back), vec![record(0, 10).id, record(3, 10).id]);
}

/// Reads what a load asks for from the written content.
fn read_load(files: &FaultFiles, load: &Load) -> Vec<u8> {
    let c = &files.cache[&load.segment];
    c[load.offset as usize..(load.offset + load.len) as usize].to_vec()
}

#[test]
fn past_the_memory_bound_records_stay_on_disk_and_replay_reads_them_back_in_chunks() {
    let mut spool = Spool::new(1 << 22, 16 << 10, 0);
    spool.set_memory_bound(2000);
    let mut files = FaultFiles::default();
    for i in 0..60 {
        spool.append(&record(i, 200).as_ref(), 0).unwrap();
        assert!(spool.held_bytes() <= 2000);
    }
    commit(&mut spool, &mut files).unwrap();
    let on_disk_only = spool
        .pending_from(0)
        .filter(|(_, p)| p.payload.is_none())
        .count();
    assert!(on_disk_only > 50, "{on_disk_only}");
    // Not durable yet: no read is asked for a record the disk may not have.
    let mut got = Vec::new();
    let mut loads = 0;
    loop {
        let next = spool.pending_from(0).next().map(|(s, p)| (s, p.clone()));
        let Some((seq, p)) = next else {
            break;
        };
        if p.payload.is_none() {
            assert!(spool.want_load(seq));
            assert!(!spool.want_load(seq), "one read at a time");
            let load = spool.take_load().unwrap();
            assert!(spool.take_load().is_none(), "handed out once");
            assert_eq!(load.offset, p.offset);
            let data = read_load(&files, &load);
            assert!(spool.on_loaded(&load, Ok(&data)) >= 1);
            assert!(!spool.loading());
            assert!(spool.held_bytes() <= 2000 + LOAD_CHUNK);
            loads += 1;
            continue;
        }
        got.push(
            format::decode_payload(p.payload.as_ref().unwrap())
                .unwrap()
                .id,
        );
        spool.delivered(seq);
    }
    let want: Vec<String> = (0..60).map(|i| record(i, 200).id).collect();
    assert_eq!(got, want, "every record once, oldest first");
    // 60 records of about 300 bytes in 16 KiB segments: one read per segment.
    assert_eq!(loads, 2, "one read per segment");
    assert_eq!(spool.held_bytes(), 0);
}

#[test]
fn a_record_not_yet_durable_is_not_read_back_and_a_corrupt_one_read_back_is_dropped() {
    let mut spool = Spool::new(1 << 22, 64 << 10, 0);
    spool.set_memory_bound(0);
    let mut files = FaultFiles::default();
    let a = spool.append(&record(1, 50).as_ref(), 0).unwrap();
    assert!(!spool.want_load(a), "not durable yet");
    let b = spool.append(&record(2, 50).as_ref(), 0).unwrap();
    commit(&mut spool, &mut files).unwrap();
    assert!(spool.want_load(a));
    let load = spool.take_load().unwrap();
    let mut data = read_load(&files, &load);
    // The second frame's last byte went bad on disk.
    let last = data.len() - 1;
    data[last] ^= 0xff;
    assert_eq!(spool.on_loaded(&load, Ok(&data)), 1);
    assert!(spool.get(a).unwrap().payload.is_some());
    assert!(spool.get(b).is_none(), "dropped");
    assert_eq!(spool.counters.unreadable, 1);
    // A read that failed: asked again later.
    let mut spool = Spool::new(1 << 22, 64 << 10, 0);
    spool.set_memory_bound(0);
    let a = spool.append(&record(1, 50).as_ref(), 0).unwrap();
    commit(&mut spool, &mut FaultFiles::default()).unwrap();
    assert!(spool.want_load(a));
    let load = spool.take_load().unwrap();
    assert_eq!(spool.on_loaded(&load, Err(())), 0);
    assert!(spool.want_load(a));
}

#[test]
fn start_up_keeps_payloads_within_the_memory_bound_and_reads_the_rest_back() {
    // 8 MiB: 1 MiB of payloads in memory at most.
    let mut spool = Spool::new(1 << 23, 256 << 10, 0);
    let mut files = FaultFiles::default();
    for i in 0..40 {
        spool.append(&record(i, 100 << 10).as_ref(), 0).unwrap();
    }
    commit(&mut spool, &mut files).unwrap();
    let (mut back, report) = load(&mut files, 1 << 23, 256 << 10, |_| 0).unwrap();
    assert_eq!(report.records, 40);
    let bound = Spool::memory_bound_for(1 << 23);
    assert_eq!(bound, 1 << 20);
    assert!(report.in_memory < 40 && report.in_memory > 0, "{report:?}");
    assert!(back.held_bytes() <= bound);
    let first_on_disk = back
        .pending_from(0)
        .find(|(_, p)| p.payload.is_none())
        .map(|(s, _)| s)
        .unwrap();
    assert!(back.want_load(first_on_disk));
    let l = back.take_load().unwrap();
    let data = read_load(&files, &l);
    assert!(back.on_loaded(&l, Ok(&data)) >= 1);
    let p = back.get(first_on_disk).unwrap();
    let r = format::decode_payload(p.payload.as_ref().unwrap()).unwrap();
    assert_eq!(r.id, record(report.in_memory as usize, 0).id);
}
