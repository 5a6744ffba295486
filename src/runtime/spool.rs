//! The spool's files: each shard's segments under `[spool] dir`/`shard-N/`, read back at start
//! (before any router is accepted) and written by one task per shard that carries out the
//! engine's spool batches on glommio files and reports the sync covering them.
//!
//! Owns files only; what goes in the spool, when a verdict may leave and what is replayed are
//! the engine's and the spool core's. Writes go through glommio's buffered files (io_uring
//! writes and fdatasync, so a sync never blocks the shard's thread); start-up reads with std
//! before the shard serves anything.

use super::log::Level;
use super::shard::ShardCtx;
use crate::spool::{IoBatch, Record, Recovered, Spool, SpoolFiles, SpoolIo};
use glommio::io::BufferedFile;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

/// Segment file name: the number in 16 hex digits.
fn segment_name(n: u64) -> String {
    format!("{n:016x}.seg")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// One shard's directory.
pub fn shard_dir(root: &Path, shard: u16) -> PathBuf {
    root.join(format!("shard-{shard}"))
}

/// A shard's segment directory with std files (start-up only).
pub struct StdFiles {
    pub dir: PathBuf,
}

impl StdFiles {
    fn path(&self, n: u64) -> PathBuf {
        self.dir.join(segment_name(n))
    }
}

impl SpoolFiles for StdFiles {
    fn list(&mut self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(n) = entry.file_name().to_str().and_then(parse_segment_name) {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
    fn read(&mut self, n: u64) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(n))
    }
    fn create(&mut self, n: u64) -> io::Result<()> {
        std::fs::File::create(self.path(n)).map(drop)
    }
    fn write(&mut self, n: u64, offset: u64, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(self.path(n))?;
        f.write_all_at(bytes, offset)
    }
    fn sync(&mut self, n: u64) -> io::Result<()> {
        std::fs::File::open(self.path(n))?.sync_data()
    }
    fn remove(&mut self, n: u64) -> io::Result<()> {
        match std::fs::remove_file(self.path(n)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Moves the segments of shard directories no shard has any more (the shard count went down)
/// into `own`, numbered after its own, so they are replayed too. `shard-J` goes to shard
/// `J mod shards`.
fn adopt_orphans(root: &Path, shard: u16, shards: u16, own: &mut StdFiles) -> io::Result<usize> {
    let mut moved = 0;
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(j) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if j < u32::from(shards) || j % u32::from(shards) != u32::from(shard) {
            continue;
        }
        let mut theirs = StdFiles { dir: entry.path() };
        for n in theirs.list()? {
            let next = own.list()?.last().map_or(0, |m| m + 1);
            std::fs::rename(theirs.path(n), own.path(next))?;
            moved += 1;
        }
        let _ = std::fs::remove_dir(entry.path());
    }
    Ok(moved)
}

/// Reads shard `shard`'s spool back; logs what it found. An error (the directory cannot be
/// created or read) stops the gateway: running without the spool it was told to keep would
/// lose records silently.
pub fn load(root: &Path, shard: u16, shards: u16, max_bytes: u64) -> Result<Spool, String> {
    let dir = shard_dir(root, shard);
    let fail = |what: &str, e: io::Error| {
        format!(
            "spool: cannot {what} {}: {e} (check [spool] dir and its permissions)",
            dir.display()
        )
    };
    std::fs::create_dir_all(&dir).map_err(|e| fail("create", e))?;
    let mut files = StdFiles { dir: dir.clone() };
    let adopted = adopt_orphans(root, shard, shards, &mut files).map_err(|e| fail("adopt", e))?;
    let per_shard = (max_bytes / u64::from(shards.max(1))).max(1 << 16);
    let segment = Spool::segment_size_for(per_shard);
    let started = Instant::now();
    let (mut spool, found) =
        crate::spool::load(&mut files, per_shard, segment, born_ms).map_err(|e| fail("read", e))?;
    report(shard, &dir, &found, adopted, started);
    // Segments found without a record are removed now, before anything is written.
    if let Some(batch) = spool.take_batch() {
        match crate::spool::execute(&batch, &mut files) {
            Ok(()) => spool.on_durable(batch.upto),
            Err(e) => return Err(fail("clean up", e)),
        }
    }
    Ok(spool)
}

fn born_ms(r: &Record) -> u64 {
    crate::protocol::stamp::parse_millis(&r.stamp).unwrap_or(0)
}

fn report(shard: u16, dir: &Path, found: &Recovered, adopted: usize, started: Instant) {
    let log = |level, msg: String| super::log::record(level, Some(shard), &msg);
    for (segment, at, bytes) in &found.torn {
        log(
            Level::Warn,
            format!(
                "spool: segment {} of {} ends in a torn or corrupt record at byte {at}: \
                 {bytes} byte(s) dropped (a write the crash cut short; never acknowledged)",
                segment_name(*segment),
                dir.display()
            ),
        );
    }
    for segment in &found.not_segments {
        log(
            Level::Warn,
            format!(
                "spool: {} in {} is not a spool segment (no header): removed",
                segment_name(*segment),
                dir.display()
            ),
        );
    }
    if found.unreadable > 0 {
        log(
            Level::Warn,
            format!(
                "spool: {} record(s) in {} passed their checksum but could not be read: skipped",
                found.unreadable,
                dir.display()
            ),
        );
    }
    log(
        Level::Info,
        format!(
            "spool: {} record(s), {} byte(s) in {} segment(s) to replay from {}{} (read in {} ms; \
             {} held in memory, the rest read back as replay reaches them)",
            found.records,
            found.bytes,
            found.segments,
            dir.display(),
            if adopted > 0 {
                format!(", {adopted} segment(s) adopted from a shard no longer running")
            } else {
                String::new()
            },
            started.elapsed().as_millis(),
            found.in_memory,
        ),
    );
}

/// The shard's writer: carries out each batch the engine's spool hands out (writes, one
/// fdatasync per segment written, removals), then reports the records it made durable. While
/// one batch runs, new records gather for the next: one sync covers them all.
pub async fn writer(ctx: Rc<ShardCtx>, root: PathBuf) {
    let dir = shard_dir(&root, ctx.id);
    let mut open: HashMap<u64, BufferedFile> = HashMap::new();
    // Batches failed in a row: the first is logged, then one line when writes work again (a
    // full disk fails every batch until space is freed; one line each would flood the log).
    let mut failed_in_a_row: u64 = 0;
    loop {
        let batch = ctx.core.borrow_mut().take_spool_batch();
        let Some(batch) = batch else {
            ctx.spool_wake.wait().await;
            continue;
        };
        let result = carry_out(&dir, &batch, &mut open).await;
        let now = Instant::now();
        match result {
            Ok(()) => {
                let wrote = batch
                    .ops
                    .iter()
                    .any(|op| matches!(op, SpoolIo::Write { .. }));
                if failed_in_a_row > 0 && wrote {
                    ctx.log(
                        Level::Info,
                        &format!(
                            "spool: writing {} works again after {failed_in_a_row} failed \
                             batch(es); records are kept again",
                            dir.display()
                        ),
                    );
                    failed_in_a_row = 0;
                }
                ctx.feed(|core| core.handle_spool_durable(batch.upto, now));
            }
            Err((segment, e)) => {
                if let Some(f) = open.remove(&segment) {
                    let _ = f.close().await;
                }
                if failed_in_a_row == 0 {
                    ctx.log(
                        Level::Error,
                        &format!(
                            "spool: writing {} failed: {e}; the events whose records it held \
                             are refused (fail closed) until a write succeeds again (logged \
                             once; palisade_spool_write_errors_total counts every failure)",
                            dir.join(segment_name(segment)).display()
                        ),
                    );
                }
                failed_in_a_row += 1;
                ctx.feed(|core| core.handle_spool_failed(batch.upto, now));
            }
        }
    }
}

/// The shard's replay: one bounded turn of the engine's replay pass at a time, every other
/// task of the shard (readers, writers, timers) let run between turns, so live traffic keeps
/// its latency and the replay runs as fast as the streams and the CPU allow, without waiting
/// for a timer between turns.
///
/// It also reads back, one chunk at a time, the records a pass reached whose payloads are not
/// held in memory (past the spool's memory bound): the pass waits for that read, not the shard.
pub async fn replay(ctx: Rc<ShardCtx>, root: PathBuf) {
    let dir = shard_dir(&root, ctx.id);
    loop {
        let load = ctx.core.borrow_mut().take_spool_load();
        if let Some(load) = load {
            // Its own task: the pass goes on while the records ahead of it are read.
            let (ctx, dir) = (ctx.clone(), dir.clone());
            glommio::spawn_local(async move {
                let data = read_back(&dir, &load).await;
                if let Err(e) = &data {
                    ctx.log(
                        Level::Error,
                        &format!(
                            "spool: reading {} back for replay failed: {e}; tried again later",
                            dir.join(segment_name(load.segment)).display()
                        ),
                    );
                }
                let now = Instant::now();
                ctx.feed(|core| {
                    core.handle_spool_loaded(&load, data.as_deref().map_err(|_| ()), now)
                });
            })
            .detach();
            continue;
        }
        let due = ctx.core.borrow().replay_due();
        if !due {
            ctx.replay_wake.wait().await;
            continue;
        }
        ctx.feed(|core| core.handle_replay_turn(Instant::now()));
        futures_lite::future::yield_now().await;
    }
}

/// Reads `load`'s bytes of its segment.
async fn read_back(dir: &Path, load: &crate::spool::Load) -> io::Result<Vec<u8>> {
    let f = BufferedFile::open(dir.join(segment_name(load.segment))).await?;
    let mut out = Vec::with_capacity(load.len as usize);
    while (out.len() as u64) < load.len {
        let at = load.offset + out.len() as u64;
        let want = (load.len - out.len() as u64) as usize;
        let got = f.read_at(at, want).await;
        let got = match got {
            Ok(got) => got,
            Err(e) => {
                let _ = f.close().await;
                return Err(e.into());
            }
        };
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    let _ = f.close().await;
    Ok(out)
}

async fn carry_out(
    dir: &Path,
    batch: &IoBatch,
    open: &mut HashMap<u64, BufferedFile>,
) -> Result<(), (u64, io::Error)> {
    let mut dir_changed = false;
    for op in &batch.ops {
        match op {
            SpoolIo::Create { segment } => {
                let f = BufferedFile::create(dir.join(segment_name(*segment)))
                    .await
                    .map_err(|e| (*segment, e.into()))?;
                open.insert(*segment, f);
                dir_changed = true;
            }
            SpoolIo::Write {
                segment,
                offset,
                bytes,
            } => {
                let f = open.get(segment).ok_or_else(|| {
                    (
                        *segment,
                        io::Error::new(io::ErrorKind::NotFound, "segment not open"),
                    )
                })?;
                let mut at = 0;
                while at < bytes.len() {
                    let n = f
                        .write_at(bytes[at..].to_vec(), offset + at as u64)
                        .await
                        .map_err(|e| (*segment, e.into()))?;
                    if n == 0 {
                        return Err((*segment, io::ErrorKind::WriteZero.into()));
                    }
                    at += n;
                }
            }
            SpoolIo::Sync { segment } => {
                if dir_changed {
                    // A new segment's name must survive a crash as well as its bytes.
                    let d = glommio::io::Directory::open(dir)
                        .await
                        .map_err(|e| (*segment, e.into()))?;
                    d.sync().await.map_err(|e| (*segment, e.into()))?;
                    let _ = d.close().await;
                    dir_changed = false;
                }
                if let Some(f) = open.get(segment) {
                    f.fdatasync().await.map_err(|e| (*segment, e.into()))?;
                }
            }
            SpoolIo::Remove { segment } => {
                if let Some(f) = open.remove(segment) {
                    let _ = f.close().await;
                }
                match glommio::io::remove(dir.join(segment_name(*segment))).await {
                    Ok(()) => {}
                    Err(e) => {
                        let e: io::Error = e.into();
                        if e.kind() != io::ErrorKind::NotFound {
                            return Err((*segment, e));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
