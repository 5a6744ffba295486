//! The durable spool of one shard, sans-IO: records that could not reach a compliance server
//! (docs/protocol.md §8), kept in an append-only log of numbered segment files until they are
//! replayed.
//!
//! Owns the record index (what is pending, per profile, oldest first), the byte bound, segment
//! rolling and deletion, and group-commit bookkeeping: appends accumulate in memory; the
//! runtime takes them as one [`IoBatch`] (writes, then one sync per segment written, then
//! removals), carries it out, and reports [`Spool::on_durable`] (or [`Spool::on_failed`]) for
//! the batch's last record. One batch is in flight at a time, so one sync covers every record
//! appended while the previous one ran.
//!
//! Must not: perform I/O, read a clock or know anything of glommio. [`SpoolFiles`] is the small
//! file trait a synchronous driver ([`execute`], [`load`]) works over: tests plug a
//! fault-injecting double into it, start-up a plain std one; the gateway's running shards
//! carry batches out on glommio's files instead (`runtime/spool.rs`).
#![forbid(unsafe_code)]
// No clock, file, randomness or randomly seeded map here (clippy.toml lists them).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![deny(missing_docs)]

pub mod format;

#[cfg(test)]
mod tests;

use bytes::Bytes;
pub use format::{Record, RecordRef, Tail};
use std::collections::BTreeMap;

/// The number of a record in this shard's spool: increasing, never reused in one run.
pub type Seq = u64;

/// One file operation of a batch, carried out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpoolIo {
    /// Create segment `segment` (empty; its header comes as the first write).
    Create {
        /// The segment's number (its file name).
        segment: u64,
    },
    /// Write `bytes` at `offset` of `segment`.
    Write {
        /// The segment written to.
        segment: u64,
        /// Where in it the bytes go (always its current end).
        offset: u64,
        /// The frames to append.
        bytes: Vec<u8>,
    },
    /// Make everything written to `segment` durable (fdatasync).
    Sync {
        /// The segment's number (its file name).
        segment: u64,
    },
    /// Delete `segment`: every record in it was delivered.
    Remove {
        /// The segment's number (its file name).
        segment: u64,
    },
}

/// Operations covering every record appended up to `upto` (none when `upto` is 0 and the
/// batch only removes segments).
#[derive(Clone, Debug, Default)]
pub struct IoBatch {
    /// The operations, to carry out in order.
    pub ops: Vec<SpoolIo>,
    /// The last record the batch makes durable; report it to [`Spool::on_durable`] once every
    /// operation succeeded.
    pub upto: Seq,
}

/// A read of consecutive records of one segment, to replay them: what replay needs that is
/// not held in memory. The runtime reads `len` bytes at `offset` of `segment` and reports them
/// to [`Spool::on_loaded`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    /// The segment read.
    pub segment: u64,
    /// The first frame's offset.
    pub offset: u64,
    /// Bytes to read: whole frames only.
    pub len: u64,
    /// The first record the read brings back.
    pub first: Seq,
}

/// Bytes one [`Load`] reads at most (one record more if a single record is larger).
pub const LOAD_CHUNK: u64 = 1 << 20;

/// Why a record was not kept.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// It would take the spool past `max_bytes` (fail closed: the caller bounces).
    Full,
    /// It is larger than a segment may be.
    TooLarge,
}

/// A spooled record waiting for replay.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The segment that holds it (which cannot be removed while it is pending).
    pub segment: u64,
    /// Where its frame starts in the segment.
    pub offset: u64,
    /// Index in [`Spool::profiles`].
    pub profile: usize,
    /// The conversation key's stable hash, to pick the replay's server.
    pub stable_key: u64,
    /// The encoded payload ([`format::decode_payload`] gives the record back), while it is
    /// held in memory: records past the memory bound ([`Spool::memory_bound`]) are only on
    /// disk, and replay reads them back ([`Spool::want_load`]).
    pub payload: Option<Bytes>,
    /// Frame size on disk.
    pub bytes: u64,
    /// When it was spooled, in milliseconds since the Unix epoch (the record's stamp).
    pub born_ms: u64,
    /// Handed to a stream and not yet confirmed written (skipped by replay scans).
    pub in_transit: bool,
}

/// Per-profile figures, for status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileStats {
    /// The profile's name.
    pub name: String,
    /// Records of the profile waiting for replay.
    pub records: u64,
    /// Bytes on disk those records take.
    pub bytes: u64,
    /// Records of the profile replayed so far in this run.
    pub replayed: u64,
}

#[derive(Clone, Debug)]
struct Segment {
    size: u64,
    live: u64,
    /// Never appended to again.
    sealed: bool,
}

/// What start-up found in a shard's spool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Segment files read back.
    pub segments: usize,
    /// Records found pending in them.
    pub records: u64,
    /// Bytes those segments take.
    pub bytes: u64,
    /// (segment, offset, bytes dropped) for each torn or corrupt tail.
    pub torn: Vec<(u64, u64, u64)>,
    /// Files that were not segments (no header), removed.
    pub not_segments: Vec<u64>,
    /// Frames whose checksum held but whose payload could not be read.
    pub unreadable: u64,
    /// Records whose payload start-up kept in memory (the rest is read back for replay).
    pub in_memory: u64,
}

/// Counters kept across the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpoolCounters {
    /// Records appended.
    pub spooled: u64,
    /// Records replayed to a server and removed.
    pub replayed: u64,
    /// Records refused because the spool was full (their events bounced).
    pub refused_full: u64,
    /// Batches that failed (a write, sync or removal returned an error).
    pub io_errors: u64,
    /// Records a failed batch did not keep (their events bounced: nothing was delivered without its
    /// record).
    pub lost_on_error: u64,
    /// Records read back for replay whose frame no longer passed its checksum: dropped.
    pub unreadable: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Spool {
    max_bytes: u64,
    segment_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    current: Option<u64>,
    next_segment: u64,
    /// Operations not yet handed out, in order.
    queued: Vec<SpoolIo>,
    /// The write being built for the current segment: (segment, offset, bytes).
    pending_write: Option<(u64, u64, Vec<u8>)>,
    /// Segments written since the last batch was taken (each gets one sync).
    dirty: Vec<u64>,
    appended: Seq,
    durable: Seq,
    /// The `upto` of the batch in flight, if any.
    in_flight: Option<Seq>,
    /// Bytes on disk (or about to be): the sum of the segments' sizes.
    bytes: u64,
    records: BTreeMap<Seq, Pending>,
    profiles: Vec<ProfileStats>,
    full: bool,
    /// The last batch failed and no record has been made durable since.
    failing: bool,
    /// Payload bytes held in memory, and their bound.
    held_bytes: u64,
    memory_bound: u64,
    /// Records whose payloads were read back for replay, oldest load first: dropped again
    /// from memory first when the bound is passed.
    loaded: std::collections::VecDeque<Seq>,
    /// The read replay waits for: handed out (`true`) or not yet.
    load: Option<(Load, bool)>,
    /// What the spool did in this run, for metrics and status.
    pub counters: SpoolCounters,
}

impl Spool {
    /// An empty spool bounded by `max_bytes`, rolling segments at `segment_bytes`; new segment
    /// numbers start at `first_segment`.
    pub fn new(max_bytes: u64, segment_bytes: u64, first_segment: u64) -> Spool {
        Spool {
            max_bytes,
            segment_bytes: segment_bytes.max(4096),
            segments: BTreeMap::new(),
            current: None,
            next_segment: first_segment,
            queued: Vec::new(),
            pending_write: None,
            dirty: Vec::new(),
            appended: 0,
            durable: 0,
            in_flight: None,
            bytes: 0,
            records: BTreeMap::new(),
            profiles: Vec::new(),
            full: false,
            failing: false,
            held_bytes: 0,
            memory_bound: Spool::memory_bound_for(max_bytes),
            loaded: std::collections::VecDeque::new(),
            load: None,
            counters: SpoolCounters::default(),
        }
    }

    /// The segment size a spool of `max_bytes` rolls at: small enough that a delivered
    /// segment frees space early, large enough that rolling is rare.
    pub fn segment_size_for(max_bytes: u64) -> u64 {
        (max_bytes / 16).clamp(64 << 10, 64 << 20)
    }

    /// Payload bytes a spool of `max_bytes` keeps in memory (plus what replay reads back
    /// ahead of it, two [`LOAD_CHUNK`]s at most): an eighth of the spool, between 1 and 64 MiB. What is spooled past it is only on disk until replay reads
    /// it back, a chunk at a time.
    pub fn memory_bound_for(max_bytes: u64) -> u64 {
        (max_bytes / 8).clamp(1 << 20, 64 << 20)
    }

    /// Sets the bound on payload bytes held in memory (see [`Spool::memory_bound_for`]).
    pub fn set_memory_bound(&mut self, bytes: u64) {
        self.memory_bound = bytes;
    }

    /// The bound on payload bytes held in memory.
    pub fn memory_bound(&self) -> u64 {
        self.memory_bound
    }

    /// Payload bytes held in memory now.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// A copy of `payload` if the memory bound has room for it.
    fn hold(&mut self, payload: &[u8]) -> Option<Bytes> {
        let n = payload.len() as u64;
        (self.held_bytes + n <= self.memory_bound).then(|| {
            self.held_bytes += n;
            Bytes::copy_from_slice(payload)
        })
    }

    /// Rebuilds the spool from segment files read back (`segments`: number and content, any
    /// order). Every valid record is pending and durable; every recovered segment is sealed
    /// (new records go to a new one); a torn tail is dropped and reported; a segment without
    /// valid records is removed by the first batch.
    pub fn recover(
        max_bytes: u64,
        segment_bytes: u64,
        mut segments: Vec<(u64, Bytes)>,
        born_ms: impl Fn(&Record) -> u64,
    ) -> (Spool, Recovered) {
        segments.sort_by_key(|(n, _)| *n);
        let first = segments.last().map_or(0, |(n, _)| n + 1);
        let mut spool = Spool::new(max_bytes, segment_bytes, first);
        let mut report = Recovered::default();
        for (number, data) in segments {
            spool.recover_segment(&mut report, number, &data, &born_ms);
        }
        spool.durable = spool.appended;
        (spool, report)
    }

    /// Adds one segment read back at start-up (in increasing order), to a spool made with
    /// [`Spool::new`] whose `first_segment` follows the last segment found. Payloads are
    /// copied while the memory bound has room, so `data` can go once this returns.
    pub fn recover_segment(
        &mut self,
        report: &mut Recovered,
        number: u64,
        data: &Bytes,
        born_ms: &impl Fn(&Record) -> u64,
    ) {
        let scan = format::scan(data);
        match scan.tail {
            Tail::NoHeader => {
                report.not_segments.push(number);
                self.queued.push(SpoolIo::Remove { segment: number });
                return;
            }
            Tail::Torn { at, bytes } => report.torn.push((number, at, bytes)),
            Tail::Clean => {}
        }
        report.segments += 1;
        let size = data.len() as u64;
        self.segments.insert(
            number,
            Segment {
                size,
                live: 0,
                sealed: true,
            },
        );
        self.bytes += size;
        for (offset, payload) in scan.frames {
            let Some(record) = format::decode_payload(&payload) else {
                report.unreadable += 1;
                continue;
            };
            let profile = self.profile_index(&record.profile);
            let seq = self.appended + 1;
            self.appended = seq;
            self.durable = seq;
            let bytes = format::frame_len(payload.len());
            let held = self.hold(&payload);
            if held.is_some() {
                report.in_memory += 1;
            }
            self.insert(
                seq,
                Pending {
                    segment: number,
                    offset,
                    profile,
                    stable_key: record.stable_key,
                    payload: held,
                    bytes,
                    born_ms: born_ms(&record),
                    in_transit: false,
                },
            );
            report.records += 1;
            report.bytes += bytes;
        }
        self.release_if_empty(number);
    }

    fn profile_index(&mut self, name: &str) -> usize {
        match self.profiles.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                self.profiles.push(ProfileStats {
                    name: name.to_owned(),
                    ..Default::default()
                });
                self.profiles.len() - 1
            }
        }
    }

    fn insert(&mut self, seq: Seq, p: Pending) {
        if let Some(s) = self.segments.get_mut(&p.segment) {
            s.live += 1;
        }
        if let Some(stats) = self.profiles.get_mut(p.profile) {
            stats.records += 1;
            stats.bytes += p.bytes;
        }
        self.records.insert(seq, p);
    }

    /// Appends a record; returns its number. It is durable once [`Spool::durable`] reaches it.
    pub fn append(&mut self, record: &RecordRef<'_>, born_ms: u64) -> Result<Seq, Refused> {
        let payload = format::encode_payload(record);
        self.append_encoded(payload, record.profile, record.stable_key, born_ms)
    }

    /// [`Spool::append`] of a payload already encoded ([`format::encode_payload`]).
    pub fn append_encoded(
        &mut self,
        payload: Vec<u8>,
        profile: &str,
        stable_key: u64,
        born_ms: u64,
    ) -> Result<Seq, Refused> {
        let frame = format::frame_len(payload.len());
        let header = format::SEGMENT_MAGIC.len() as u64;
        if frame + header > self.segment_bytes.max(format::MAX_PAYLOAD as u64) {
            return Err(Refused::TooLarge);
        }
        // Roll when the record does not fit in the current segment.
        let roll = match self.current.and_then(|c| self.segments.get(&c)) {
            Some(seg) => seg.size + frame > self.segment_bytes && seg.size > header,
            None => true,
        };
        let extra = if roll { header } else { 0 };
        if self.bytes + frame + extra > self.max_bytes {
            self.full = true;
            self.counters.refused_full += 1;
            return Err(Refused::Full);
        }
        if roll {
            self.roll();
        }
        let Some(segment) = self.current else {
            return Err(Refused::Full);
        };
        let mut framed = Vec::with_capacity(frame as usize);
        format::put_frame(&mut framed, &payload);
        let seg = self.segments.entry(segment).or_insert(Segment {
            size: 0,
            live: 0,
            sealed: false,
        });
        let offset = seg.size;
        seg.size += frame;
        self.bytes += frame;
        match &mut self.pending_write {
            Some((s, o, buf)) if *s == segment && *o + buf.len() as u64 == offset => {
                buf.extend_from_slice(&framed)
            }
            _ => {
                self.flush_write();
                self.pending_write = Some((segment, offset, framed));
            }
        }
        let profile = self.profile_index(profile);
        let seq = self.appended + 1;
        self.appended = seq;
        let held = self.hold(&payload);
        self.insert(
            seq,
            Pending {
                segment,
                offset,
                profile,
                stable_key,
                payload: held,
                bytes: frame,
                born_ms,
                in_transit: false,
            },
        );
        self.counters.spooled += 1;
        Ok(seq)
    }

    fn flush_write(&mut self) {
        if let Some((segment, offset, bytes)) = self.pending_write.take() {
            if !self.dirty.contains(&segment) {
                self.dirty.push(segment);
            }
            self.queued.push(SpoolIo::Write {
                segment,
                offset,
                bytes,
            });
        }
    }

    /// Seals the current segment and starts a new one.
    fn roll(&mut self) {
        self.flush_write();
        if let Some(c) = self.current.take() {
            if let Some(s) = self.segments.get_mut(&c) {
                s.sealed = true;
            }
            self.release_if_empty(c);
        }
        let n = self.next_segment;
        self.next_segment += 1;
        let header = format::SEGMENT_MAGIC.len() as u64;
        self.segments.insert(
            n,
            Segment {
                size: header,
                live: 0,
                sealed: false,
            },
        );
        self.bytes += header;
        self.queued.push(SpoolIo::Create { segment: n });
        self.pending_write = Some((n, 0, format::SEGMENT_MAGIC.to_vec()));
        self.current = Some(n);
    }

    /// Removes a sealed segment with nothing pending in it.
    fn release_if_empty(&mut self, segment: u64) {
        let Some(s) = self.segments.get(&segment) else {
            return;
        };
        if s.live > 0 || !s.sealed {
            return;
        }
        let size = s.size;
        self.segments.remove(&segment);
        self.bytes = self.bytes.saturating_sub(size);
        self.dirty.retain(|d| *d != segment);
        if matches!(&self.pending_write, Some((s, _, _)) if *s == segment) {
            self.pending_write = None;
        }
        self.queued.push(SpoolIo::Remove { segment });
        if self.full && self.bytes < self.max_bytes {
            self.full = false;
        }
    }

    /// The next batch to carry out, when none is in flight and there is something to do.
    pub fn take_batch(&mut self) -> Option<IoBatch> {
        if self.in_flight.is_some() {
            return None;
        }
        self.flush_write();
        if self.queued.is_empty() {
            return None;
        }
        let mut ops = std::mem::take(&mut self.queued);
        for segment in self.dirty.drain(..) {
            ops.push(SpoolIo::Sync { segment });
        }
        // Removals last: a sync never names a file already gone.
        let (mut removes, mut rest): (Vec<SpoolIo>, Vec<SpoolIo>) = ops
            .into_iter()
            .partition(|op| matches!(op, SpoolIo::Remove { .. }));
        rest.append(&mut removes);
        let upto = self.appended;
        self.in_flight = Some(upto);
        Some(IoBatch { ops: rest, upto })
    }

    /// The batch in flight was carried out: every record up to `upto` is durable.
    pub fn on_durable(&mut self, upto: Seq) {
        self.in_flight = None;
        if upto > self.durable {
            // Records reached the disk again: writes work.
            self.failing = false;
        }
        self.durable = self.durable.max(upto);
    }

    /// The batch in flight (up to `upto`) failed: no record after the last durable one is
    /// kept, including those appended since (their frames would follow a torn one in the same
    /// segment, where recovery never reaches them). They leave the index (the caller fails
    /// their events closed); the segment being written is abandoned (sealed) and new records
    /// go to a fresh one. Returns the last record number that was not kept.
    pub fn on_failed(&mut self, upto: Seq) -> Seq {
        self.in_flight = None;
        self.failing = true;
        self.counters.io_errors += 1;
        let upto = upto.max(self.appended);
        // Writes not carried out yet belong to the abandoned records; removals still hold.
        self.queued
            .retain(|op| matches!(op, SpoolIo::Remove { .. }));
        self.pending_write = None;
        self.dirty.clear();
        let lost: Vec<Seq> = self
            .records
            .range(self.durable + 1..=upto)
            .map(|(s, _)| *s)
            .collect();
        for seq in &lost {
            self.remove(*seq, false);
        }
        self.counters.lost_on_error += lost.len() as u64;
        if let Some(c) = self.current.take() {
            if let Some(s) = self.segments.get_mut(&c) {
                s.sealed = true;
            }
            self.release_if_empty(c);
        }
        self.durable = self.durable.max(upto);
        upto
    }

    fn remove(&mut self, seq: Seq, replayed: bool) -> Option<Pending> {
        let p = self.records.remove(&seq)?;
        if let Some(payload) = &p.payload {
            self.held_bytes = self.held_bytes.saturating_sub(payload.len() as u64);
        }
        if let Some(stats) = self.profiles.get_mut(p.profile) {
            stats.records = stats.records.saturating_sub(1);
            stats.bytes = stats.bytes.saturating_sub(p.bytes);
            if replayed {
                stats.replayed += 1;
            }
        }
        if let Some(s) = self.segments.get_mut(&p.segment) {
            s.live = s.live.saturating_sub(1);
            // The current segment, once all it holds is delivered, is sealed so that its
            // space comes back; the next record starts a new one.
            if s.live == 0 && !s.sealed && self.current == Some(p.segment) {
                s.sealed = true;
                self.flush_write();
                self.current = None;
            }
        }
        self.release_if_empty(p.segment);
        Some(p)
    }

    /// Pending records from `from` on, oldest first.
    pub fn pending_from(&self, from: Seq) -> impl Iterator<Item = (Seq, &Pending)> + '_ {
        self.records
            .range(from..)
            .filter(|(_, p)| !p.in_transit)
            .map(|(s, p)| (*s, p))
    }

    /// A replayed record was handed to a stream: it is skipped until confirmed or handed back.
    pub fn set_in_transit(&mut self, seq: Seq, in_transit: bool) {
        if let Some(p) = self.records.get_mut(&seq) {
            p.in_transit = in_transit;
        }
    }

    /// A replayed record was written to a server's stream: it leaves the spool.
    pub fn delivered(&mut self, seq: Seq) {
        if self.remove(seq, true).is_some() {
            self.counters.replayed += 1;
        }
    }

    /// The pending record with sequence number `seq`, if it is still in the spool.
    pub fn get(&self, seq: Seq) -> Option<&Pending> {
        self.records.get(&seq)
    }

    /// Replay reached record `seq`, whose payload is only on disk: the read that brings it
    /// (and the records after it in its segment, up to [`LOAD_CHUNK`]) back. `false` when that
    /// cannot be asked now: a read is already waited for, or `seq` is not durable yet (it is
    /// read once it is).
    pub fn want_load(&mut self, seq: Seq) -> bool {
        if self.load.is_some() || seq > self.durable {
            return false;
        }
        let Some(first) = self.records.get(&seq) else {
            return false;
        };
        let (segment, offset) = (first.segment, first.offset);
        let mut end = offset;
        for (_, p) in self.records.range(seq..) {
            if p.segment != segment
                || p.offset != end
                || p.payload.is_some()
                || (end > offset && end - offset + p.bytes > LOAD_CHUNK)
            {
                break;
            }
            end += p.bytes;
        }
        if end == offset {
            return false;
        }
        self.load = Some((
            Load {
                segment,
                offset,
                len: end - offset,
                first: seq,
            },
            false,
        ));
        true
    }

    /// The read replay waits for, once (see [`Spool::want_load`]).
    pub fn take_load(&mut self) -> Option<Load> {
        match &mut self.load {
            Some((load, handed @ false)) => {
                *handed = true;
                Some(load.clone())
            }
            _ => None,
        }
    }

    /// A read replay waits for is not handed out yet.
    pub fn load_wanted(&self) -> bool {
        matches!(self.load, Some((_, false)))
    }

    /// A read replay waits for: asked and not reported yet.
    pub fn loading(&self) -> bool {
        self.load.is_some()
    }

    /// The runtime read `load` back: `Ok(bytes)` (its content) or `Err` (it could not be
    /// read; replay asks again on its next pass). Frames are checked again; a frame that no
    /// longer passes its checksum is dropped from the spool (counted in
    /// [`SpoolCounters::unreadable`]). Payloads read back count against the memory bound:
    /// the ones read earliest, not yet on their way, are dropped from memory again to stay
    /// within it (plus two chunks: the one replay sends and the one read ahead of it). Returns how many records have their payload now.
    pub fn on_loaded(&mut self, load: &Load, data: Result<&[u8], ()>) -> usize {
        if self.load.as_ref().map(|(l, _)| l) == Some(load) {
            self.load = None;
        }
        let Ok(data) = data else {
            return 0;
        };
        // The records it covers follow `first` in order (some may have left meanwhile).
        let seqs: Vec<(Seq, u64)> = self
            .records
            .range(load.first..)
            .take_while(|(_, p)| {
                p.segment == load.segment
                    && p.offset >= load.offset
                    && p.offset + p.bytes <= load.offset + load.len
            })
            .filter(|(_, p)| p.payload.is_none())
            .map(|(s, p)| (*s, p.offset - load.offset))
            .collect();
        let mut filled = 0;
        for (seq, at) in seqs {
            let frame = data.get(at as usize..).and_then(format::read_frame);
            match frame {
                Some(payload) => {
                    self.held_bytes += payload.len() as u64;
                    if let Some(p) = self.records.get_mut(&seq) {
                        p.payload = Some(Bytes::copy_from_slice(payload));
                    }
                    self.loaded.push_back(seq);
                    filled += 1;
                }
                None if data.len() as u64 >= load.len => {
                    // Read whole, and not what was written: lost.
                    self.counters.unreadable += 1;
                    self.remove(seq, false);
                }
                None => {}
            }
        }
        // Stay within the bound: the payloads read back longest ago, not in transit, go.
        let mut budget = self.loaded.len();
        while self.held_bytes > self.memory_bound + 2 * LOAD_CHUNK && budget > 0 {
            budget -= 1;
            let Some(seq) = self.loaded.pop_front() else {
                break;
            };
            if let Some(p) = self.records.get_mut(&seq) {
                if p.in_transit {
                    self.loaded.push_back(seq);
                    continue;
                }
                if let Some(payload) = p.payload.take() {
                    self.held_bytes = self.held_bytes.saturating_sub(payload.len() as u64);
                }
            }
        }
        filled
    }

    /// The last record known to be durable (0: none yet).
    pub fn durable(&self) -> Seq {
        self.durable
    }

    /// The last record appended (0: none yet).
    pub fn appended(&self) -> Seq {
        self.appended
    }

    /// Records waiting for replay.
    pub fn records(&self) -> u64 {
        self.records.len() as u64
    }

    /// Bytes on disk, or about to be: the sum of the segments' sizes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The byte bound the spool fails closed at.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The spool refused a record and has not freed space since (alarm `SpoolFull`).
    pub fn full(&self) -> bool {
        self.full
    }

    /// The last batch failed (a write, sync or removal returned an error) and no record has
    /// been made durable since: records are still tried, each batch being the probe that sees
    /// the disk work again.
    pub fn failing(&self) -> bool {
        self.failing
    }

    /// The spool refuses records: it is full, or its writes fail (alarm `SpoolFull`).
    pub fn refusing(&self) -> bool {
        self.full || self.failing
    }

    /// Per-profile figures, indexed as [`Pending::profile`].
    pub fn profiles(&self) -> &[ProfileStats] {
        &self.profiles
    }

    /// The oldest pending record's birth, per profile index and overall.
    pub fn oldest_ms(&self) -> (Option<u64>, Vec<Option<u64>>) {
        let mut per = vec![None; self.profiles.len()];
        let mut all: Option<u64> = None;
        let mut left = self.profiles.iter().filter(|p| p.records > 0).count();
        for p in self.records.values() {
            if left == 0 {
                break;
            }
            if let Some(slot @ None) = per.get_mut(p.profile) {
                *slot = Some(p.born_ms);
                left -= 1;
            }
            all = Some(all.map_or(p.born_ms, |a| a.min(p.born_ms)));
        }
        (all, per)
    }

    /// Something waits for the next batch.
    pub fn has_work(&self) -> bool {
        !self.queued.is_empty() || self.pending_write.is_some()
    }

    /// Nothing waits to be written or is being written.
    pub fn idle(&self) -> bool {
        self.in_flight.is_none() && self.queued.is_empty() && self.pending_write.is_none()
    }
}

/// The file operations a spool needs, synchronously (start-up, tests).
pub trait SpoolFiles {
    /// Segment numbers present.
    fn list(&mut self) -> std::io::Result<Vec<u64>>;
    /// The whole content of segment `segment`.
    fn read(&mut self, segment: u64) -> std::io::Result<Vec<u8>>;
    /// Creates segment `segment`, empty.
    fn create(&mut self, segment: u64) -> std::io::Result<()>;
    /// Writes `bytes` at `offset` of segment `segment`.
    fn write(&mut self, segment: u64, offset: u64, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes everything written to segment `segment` durable (fdatasync).
    fn sync(&mut self, segment: u64) -> std::io::Result<()>;
    /// Deletes segment `segment`.
    fn remove(&mut self, segment: u64) -> std::io::Result<()>;
}

/// Carries out a batch on `files`, stopping at the first error.
pub fn execute<F: SpoolFiles>(batch: &IoBatch, files: &mut F) -> std::io::Result<()> {
    for op in &batch.ops {
        match op {
            SpoolIo::Create { segment } => files.create(*segment)?,
            SpoolIo::Write {
                segment,
                offset,
                bytes,
            } => files.write(*segment, *offset, bytes)?,
            SpoolIo::Sync { segment } => files.sync(*segment)?,
            SpoolIo::Remove { segment } => files.remove(*segment)?,
        }
    }
    Ok(())
}

/// Reads every segment of `files` back ([`Spool::recover`]).
pub fn load<F: SpoolFiles>(
    files: &mut F,
    max_bytes: u64,
    segment_bytes: u64,
    born_ms: impl Fn(&Record) -> u64,
) -> std::io::Result<(Spool, Recovered)> {
    let mut numbers = files.list()?;
    numbers.sort_unstable();
    let first = numbers.last().map_or(0, |n| n + 1);
    let mut spool = Spool::new(max_bytes, segment_bytes, first);
    let mut report = Recovered::default();
    // One segment in memory at a time: what is kept of it is copied out.
    for n in numbers {
        let data = Bytes::from(files.read(n)?);
        spool.recover_segment(&mut report, n, &data, &born_ms);
    }
    Ok((spool, report))
}
