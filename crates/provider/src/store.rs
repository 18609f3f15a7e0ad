//! The provider's durable memory: per channel, the best voucher at the current nonce, what
//! has been billed, what earlier claims took, and a claim in flight.
//!
//! An append-only log, `vouchers.log`: every write is one checksummed frame appended and
//! fdatasynced before its callers hear of it (into space allocated ahead with zeros, so
//! that the sync has no file size to record); writes from many concurrent calls that queue
//! while one is being synced go out together in the next frame (group commit). Reading it
//! back replays the frames in order, the last record of a channel winning. A crash can only
//! tear the last frame, which was never acknowledged: a bad frame that reaches the end of the
//! file is cut off on open, a bad frame with more after it is corruption and refuses to open.
//! When the log has grown well past what it holds, the writer rewrites it as one frame per
//! few thousand live channels into a new file and renames it over the old one.
//!
//! Why not a B-tree store (redb, which this replaced): a voucher write is one small record
//! on the critical path of every paid call. A redb commit with `Durability::Immediate` costs
//! copy-on-write pages and more than one synced write; an append is one write and one
//! fdatasync of a single page (BENCHMARKS.md, provider overhead). A `vouchers.redb` left by
//! an earlier version is imported once on open and renamed `vouchers.redb.imported`.

use borsh::{BorshDeserialize, BorshSerialize};
use crossbeam_channel::{Receiver, Sender};
use primitives::{framelog, Amount, Signature};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChannelRecord {
    /// The nonce the best voucher is for.
    pub nonce: u64,
    /// The largest voucher accepted at `nonce`, and its signature.
    pub best: Option<(Amount, Signature)>,
    /// Σ cost of every finished call on this channel, ever.
    pub billed: Amount,
    /// Σ of every claim that has landed (earlier nonces).
    pub paid: Amount,
    /// A claim submitted at `nonce` for this amount, not yet seen on chain.
    pub claim_in_flight: Option<Amount>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("voucher store at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("voucher store at {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("the voucher store's writer has stopped")]
    Stopped,
}

/// The log's first bytes.
const MAGIC: &[u8; 24] = b"tessera-vouchers-log-v1\n";
/// Frames (`primitives::framelog`) follow, each a borsh `Vec<(u64, ChannelRecord)>`.
/// No frame is longer (the compacted log splits its records into frames of `CHUNK`).
const FRAME_MAX: usize = 64 << 20;
const CHUNK: usize = 4096;
/// The log is rewritten once it is this much longer than it was after the last rewrite
/// (or open), and more than four times as long.
const COMPACT_GROWTH: u64 = 8 << 20;

/// Whom the writer tells that a write is durable: a blocked thread, or an async task
/// (woken directly by the writer thread, with no thread of its own waiting).
enum Done {
    Blocking(Sender<Result<(), String>>),
    Async(tokio::sync::oneshot::Sender<Result<(), String>>),
}

impl Done {
    fn send(self, result: Result<(), String>) {
        match self {
            Done::Blocking(tx) => drop(tx.send(result)),
            Done::Async(tx) => drop(tx.send(result)),
        }
    }
}

/// Records to write and whom to tell once they are durable (`None`: nobody waits).
type Write = (Vec<(u64, ChannelRecord)>, Option<Done>);

/// How long a write nobody waits for may stay unwritten when no other write comes.
const EVENTUAL_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// Durable per-channel records with group commit.
pub struct VoucherStore {
    path: PathBuf,
    /// `None` only while dropping.
    writes: Option<Sender<Write>>,
    writer: Option<std::thread::JoinHandle<()>>,
    loaded: BTreeMap<u64, ChannelRecord>,
}

impl Drop for VoucherStore {
    /// Stops the writer after the pending writes and closes the file, so the store can be
    /// opened again at once.
    fn drop(&mut self) {
        self.writes.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Space the log allocates ahead of its end, written with zeros, so that appending a frame
/// overwrites allocated blocks and its fdatasync has no file size or extent to record.
const PREALLOCATE: u64 = 1 << 20;

/// One frame holding `records`.
fn frame<'a>(records: impl IntoIterator<Item = &'a (u64, ChannelRecord)>, out: &mut Vec<u8>) {
    let records: Vec<&(u64, ChannelRecord)> = records.into_iter().collect();
    framelog::push_frame(&primitives::codec::encode(&records), out);
}

/// What a log's bytes hold: the records, and where its last good frame ends (before a torn
/// last frame or the zeros allocated ahead).
fn replay(bytes: &[u8], path: &Path) -> Result<(BTreeMap<u64, ChannelRecord>, usize), StoreError> {
    let corrupt = |what: String| StoreError::Corrupt { path: path.to_path_buf(), what };
    let scanned = framelog::scan(bytes, MAGIC.len(), FRAME_MAX).map_err(|e| corrupt(e.to_string()))?;
    if let Some(what) = scanned.torn {
        tracing::warn!(
            path = %path.display(),
            offset = scanned.end,
            dropped_bytes = bytes.len() - scanned.end,
            "the voucher log ends in an unfinished frame ({what}); cutting it off (it was never acknowledged)"
        );
    }
    let mut map = BTreeMap::new();
    for (at, payload) in scanned.frames {
        let records: Vec<(u64, ChannelRecord)> =
            primitives::codec::decode(payload, FRAME_MAX).map_err(|e| corrupt(format!("frame at offset {at}: {e}")))?;
        map.extend(records);
    }
    Ok((map, scanned.end))
}

/// Syncs the directory, so that a file created or renamed in it stays after a crash.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Writes `records` as a complete log at `tmp`, synced, and renames it to `path`.
fn write_whole(dir: &Path, tmp: &Path, path: &Path, records: &BTreeMap<u64, ChannelRecord>) -> Result<(), StoreError> {
    let mut bytes = MAGIC.to_vec();
    // `(&u64, &ChannelRecord)` encodes as `(u64, ChannelRecord)`: no copy of the records.
    let all: Vec<(&u64, &ChannelRecord)> = records.iter().collect();
    for chunk in all.chunks(CHUNK) {
        framelog::push_frame(&primitives::codec::encode(chunk), &mut bytes);
    }
    let mut f = File::create(tmp).map_err(io_err(tmp))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err(tmp))?;
    std::fs::rename(tmp, path).map_err(io_err(path))?;
    sync_dir(dir)
}

/// The records of an earlier version's `vouchers.redb`.
fn read_redb(path: &Path) -> Result<BTreeMap<u64, ChannelRecord>, StoreError> {
    use redb::{ReadableTable, TableDefinition};
    const CHANNELS: TableDefinition<u64, &[u8]> = TableDefinition::new("channels");
    let err = |e: redb::Error| StoreError::Corrupt { path: path.to_path_buf(), what: e.to_string() };
    let db = redb::Database::open(path).map_err(|e| err(e.into()))?;
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let mut map = BTreeMap::new();
    let table = match txn.open_table(CHANNELS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(map),
        Err(e) => return Err(err(e.into())),
    };
    for item in table.iter().map_err(|e| err(e.into()))? {
        let (k, v) = item.map_err(|e| err(e.into()))?;
        let rec = primitives::codec::decode(v.value(), 1 << 12)
            .map_err(|e| StoreError::Corrupt { path: path.to_path_buf(), what: e.to_string() })?;
        map.insert(k.value(), rec);
    }
    Ok(map)
}

/// The writer thread's side: the open log and what it holds.
struct Log {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Where the next frame goes: the end of the last good one.
    len: u64,
    /// The file's length: `len` and zeros after it.
    alloc: u64,
    /// The log's length after the last rewrite (or open).
    base: u64,
    live: BTreeMap<u64, ChannelRecord>,
    compact_growth: u64,
    /// Set when a write failed and the file could not be put back: nothing more is written.
    broken: Option<String>,
    buf: Vec<u8>,
}

impl Log {
    fn append(&mut self, batch: &[Write]) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        if batch.iter().all(|(records, _)| records.is_empty()) {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        self.buf.clear();
        frame(batch.iter().flat_map(|(records, _)| records), &mut self.buf);
        let end = self.len + self.buf.len() as u64;
        let written = (|| {
            if end > self.alloc {
                // Extended in the same fdatasync as the frame: the zeros need no sync of
                // their own (a crash leaves zeros or nothing after the last good frame).
                let alloc = end.next_multiple_of(PREALLOCATE);
                let zeros = vec![0u8; (alloc - self.alloc) as usize];
                self.file.write_all_at(&zeros, self.alloc)?;
                self.alloc = alloc;
            }
            self.file.write_all_at(&self.buf, self.len)?;
            self.file.sync_data()
        })();
        if let Err(e) = written {
            // Nothing of this frame counts: zero what may have been written, so that the
            // next frame, written at the same place, is followed by zeros again. After a
            // failed fsync the file's pages are in doubt; stop writing.
            let why = format!("{}: {e}", self.path.display());
            let zeros = vec![0u8; self.buf.len()];
            let restored = self.file.write_all_at(&zeros, self.len).and_then(|()| self.file.sync_data());
            if restored.is_err() || e.kind() != std::io::ErrorKind::StorageFull {
                self.broken = Some(format!("stopped after a failed write ({why})"));
            }
            return Err(why);
        }
        self.len = end;
        for (records, _) in batch {
            for (id, rec) in records {
                self.live.insert(*id, rec.clone());
            }
        }
        Ok(())
    }

    /// Rewrites the log as its live records when it has grown enough. A failure leaves the
    /// old log in place (the rename is atomic) and is only logged.
    fn maybe_compact(&mut self) {
        if self.broken.is_some() || self.len < self.base + self.compact_growth || self.len < 4 * self.base {
            return;
        }
        let tmp = self.dir.join("vouchers.log.compact");
        let reopened = write_whole(&self.dir, &tmp, &self.path, &self.live).and_then(|()| {
            let file = OpenOptions::new().write(true).open(&self.path).map_err(io_err(&self.path))?;
            let len = file.metadata().map_err(io_err(&self.path))?.len();
            Ok((file, len))
        });
        match reopened {
            Ok((file, len)) => {
                tracing::debug!(from = self.len, to = len, channels = self.live.len(), "voucher log compacted");
                (self.file, self.len, self.alloc, self.base) = (file, len, len, len);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                // Later appends go on into the old file, which the rename left alone; the
                // next compaction is tried after as much growth again.
                self.base = self.len;
                tracing::warn!(error = %e, "voucher log compaction failed; the log stays as it is");
            }
        }
    }
}

impl VoucherStore {
    /// Opens (or creates) `dir/vouchers.log` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<VoucherStore, StoreError> {
        Self::open_with(dir, COMPACT_GROWTH, EVENTUAL_DELAY)
    }

    /// [`VoucherStore::open`], compacting after `compact_growth` bytes of growth and holding
    /// writes nobody waits for up to `eventual_delay` (tests).
    #[doc(hidden)]
    pub fn open_with(
        dir: &Path,
        compact_growth: u64,
        eventual_delay: std::time::Duration,
    ) -> Result<VoucherStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join("vouchers.log");
        // A compaction interrupted before its rename: the log itself is whole.
        let tmp = dir.join("vouchers.log.compact");
        if tmp.exists() {
            std::fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        }
        if !path.exists() {
            let old = dir.join("vouchers.redb");
            let imported = if old.exists() { read_redb(&old)? } else { BTreeMap::new() };
            write_whole(dir, &tmp, &path, &imported)?;
            if old.exists() {
                std::fs::rename(&old, dir.join("vouchers.redb.imported")).map_err(io_err(&old))?;
                sync_dir(dir)?;
                tracing::info!(channels = imported.len(), "imported the voucher store of an earlier version");
            }
        }
        let mut bytes = Vec::new();
        File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_err(&path))?;
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(StoreError::Corrupt { path, what: "not a Tessera voucher log".into() });
        }
        let (loaded, valid) = replay(&bytes, &path)?;
        let file = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
        // Zeros after the last good frame are allocated space; anything else there is a torn
        // frame, cut off.
        let mut alloc = bytes.len() as u64;
        if bytes[valid..].iter().any(|&b| b != 0) {
            file.set_len(valid as u64).and_then(|()| file.sync_all()).map_err(io_err(&path))?;
            alloc = valid as u64;
        }
        let log = Log {
            dir: dir.to_path_buf(),
            path: path.clone(),
            file,
            len: valid as u64,
            alloc,
            base: valid as u64,
            live: loaded.clone(),
            compact_growth,
            broken: None,
            buf: Vec::new(),
        };
        let (tx, rx) = crossbeam_channel::unbounded::<Write>();
        let handle = std::thread::Builder::new()
            .name("voucher-store".into())
            .spawn(move || writer(log, rx, eventual_delay))
            .map_err(io_err(&path))?;
        Ok(VoucherStore { path, writes: Some(tx), writer: Some(handle), loaded })
    }

    /// What was stored when the store was opened.
    pub fn loaded(&self) -> &BTreeMap<u64, ChannelRecord> {
        &self.loaded
    }

    /// Writes the records durably; returns once they are fsynced (grouped with whatever
    /// other writes are pending).
    pub fn put(&self, records: Vec<(u64, ChannelRecord)>) -> Result<(), StoreError> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        self.queue(records, Some(Done::Blocking(done_tx)))?;
        match done_rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(what)) => Err(StoreError::Corrupt { path: self.path.clone(), what }),
            Err(_) => Err(StoreError::Stopped),
        }
    }

    fn queue(&self, records: Vec<(u64, ChannelRecord)>, done: Option<Done>) -> Result<(), StoreError> {
        let writes = self.writes.as_ref().ok_or(StoreError::Stopped)?;
        writes.send((records, done)).map_err(|_| StoreError::Stopped)
    }

    /// Nothing to write: a [`Durable`] that is durable already.
    pub fn nothing(&self) -> Durable {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let _ = done_tx.send(Ok(()));
        Durable { rx: done_rx, path: self.path.clone() }
    }

    /// Queues the records for the next group commit and returns at once; `Durable::wait`
    /// returns when they are fsynced. Writes are applied in the order they were queued.
    pub fn put_later(&self, records: Vec<(u64, ChannelRecord)>) -> Result<Durable, StoreError> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        self.queue(records, Some(Done::Async(done_tx)))?;
        Ok(Durable { rx: done_rx, path: self.path.clone() })
    }

    /// Queues records nobody waits for: they go out with the next write that is waited
    /// for, or on their own after at most 20 ms without one (or when the store closes), so
    /// that they cost no fsync of their own while writes are frequent. A crash can lose
    /// the last 20 ms of them: only for records whose loss is harmless (a billing total,
    /// whose loss can only make the provider claim less).
    pub fn put_eventually(&self, records: Vec<(u64, ChannelRecord)>) -> Result<(), StoreError> {
        self.queue(records, None)
    }
}

/// A queued write; `wait` until it is durable.
#[derive(Debug)]
#[must_use = "wait for the write to be durable before acknowledging it"]
pub struct Durable {
    rx: tokio::sync::oneshot::Receiver<Result<(), String>>,
    path: PathBuf,
}

impl Durable {
    /// Waits, blocking the thread (not from an async task: use `done` there).
    pub fn wait(self) -> Result<(), StoreError> {
        let path = self.path;
        Self::verdict(path, self.rx.blocking_recv())
    }

    /// Waits without blocking a thread: the writer wakes the task.
    pub async fn done(self) -> Result<(), StoreError> {
        let path = self.path;
        Self::verdict(path, self.rx.await)
    }

    fn verdict(
        path: PathBuf,
        r: Result<Result<(), String>, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<(), StoreError> {
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(what)) => Err(StoreError::Corrupt { path, what }),
            Err(_) => Err(StoreError::Stopped),
        }
    }
}

/// Takes every pending write, appends them as one synced frame, acknowledges them all.
/// Writes nobody waits for are held back until a write that is waited for comes (they
/// go in its frame, first, as they were queued first) or `eventual_delay` passes.
fn writer(mut log: Log, rx: Receiver<Write>, eventual_delay: std::time::Duration) {
    use crossbeam_channel::RecvTimeoutError;
    let mut batch: Vec<Write> = Vec::new();
    let mut open = true;
    while open {
        let next = if batch.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(eventual_delay)
        };
        match next {
            Ok(w) => {
                batch.push(w);
                batch.extend(rx.try_iter());
                if batch.iter().all(|(_, done)| done.is_none()) {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        let result = log.append(&batch);
        if let Err(e) = &result {
            if batch.iter().all(|(_, done)| done.is_none()) {
                tracing::warn!(error = %e, "the voucher store could not write billing totals");
            }
        }
        for (_, done) in batch.drain(..) {
            if let Some(done) = done {
                done.send(result.clone());
            }
        }
        log.maybe_compact();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(nonce: u64, billed: u128) -> ChannelRecord {
        ChannelRecord { nonce, billed: Amount(billed), ..ChannelRecord::default() }
    }

    fn file_len(dir: &Path) -> u64 {
        std::fs::metadata(dir.join("vouchers.log")).unwrap().len()
    }

    /// Where the log's last good frame ends.
    fn log_end(dir: &Path) -> u64 {
        let path = dir.join("vouchers.log");
        replay(&std::fs::read(&path).unwrap(), &path).unwrap().1 as u64
    }

    #[test]
    fn the_last_record_of_each_channel_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = VoucherStore::open(dir.path()).unwrap();
            assert!(s.loaded().is_empty());
            s.put(vec![(1, rec(0, 10)), (2, rec(0, 5))]).unwrap();
            s.put(vec![(1, rec(0, 30))]).unwrap();
            let later = s.put_later(vec![(2, rec(1, 7)), (3, rec(4, 1))]).unwrap();
            later.wait().unwrap();
            s.nothing().wait().unwrap();
        }
        let s = VoucherStore::open(dir.path()).unwrap();
        let want: BTreeMap<u64, ChannelRecord> = [(1, rec(0, 30)), (2, rec(1, 7)), (3, rec(4, 1))].into();
        assert_eq!(s.loaded(), &want);
    }

    /// What the log file holds right now (the store may still be open).
    fn on_disk(dir: &Path) -> BTreeMap<u64, ChannelRecord> {
        let path = dir.join("vouchers.log");
        replay(&std::fs::read(&path).unwrap(), &path).unwrap().0
    }

    #[test]
    fn writes_nobody_waits_for_go_out_with_the_next_or_on_their_own() {
        let dir = tempfile::tempdir().unwrap();
        // A delay no test machine outlasts, so that "held back" is not a race.
        let s = VoucherStore::open_with(dir.path(), COMPACT_GROWTH, std::time::Duration::from_secs(600)).unwrap();
        s.put_eventually(vec![(1, rec(0, 10))]).unwrap();
        // Held back: no frame of its own yet.
        assert!(on_disk(dir.path()).is_empty());
        let before = log_end(dir.path());
        s.put(vec![(2, rec(0, 5))]).unwrap();
        // One frame with both, the earlier write first.
        let want: BTreeMap<u64, ChannelRecord> = [(1, rec(0, 10)), (2, rec(0, 5))].into();
        assert_eq!(on_disk(dir.path()), want);
        let mut one = Vec::new();
        frame(&[(1, rec(0, 10)), (2, rec(0, 5))], &mut one);
        assert_eq!(log_end(dir.path()), before + one.len() as u64);
        // One still held back when the store closes is written then.
        s.put_eventually(vec![(3, rec(0, 1))]).unwrap();
        drop(s);
        assert_eq!(on_disk(dir.path())[&3], rec(0, 1));
        // Alone, with the real delay, it is written after it.
        let s = VoucherStore::open(dir.path()).unwrap();
        s.put_eventually(vec![(1, rec(0, 11))]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while on_disk(dir.path())[&1] != rec(0, 11) {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// A closed store whose log holds two frames: channel 1 billed 10, then 20.
    fn two_frames() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let s = VoucherStore::open(dir.path()).unwrap();
        s.put(vec![(1, rec(0, 10))]).unwrap();
        s.put(vec![(1, rec(0, 20))]).unwrap();
        dir
    }

    #[test]
    fn a_torn_last_frame_is_cut_off_and_the_log_goes_on() {
        let dir = two_frames();
        let whole = log_end(dir.path());
        // The file is allocated ahead with zeros.
        assert_eq!(file_len(dir.path()), PREALLOCATE);
        // The last frame cut short at every length, at the end of the file or followed by
        // zeros: each opens at the state before it.
        let bytes = std::fs::read(dir.path().join("vouchers.log")).unwrap()[..whole as usize].to_vec();
        let last_frame = {
            let mut one = Vec::new();
            frame(&[(1, rec(0, 20))], &mut one);
            one.len()
        };
        for cut in 1..last_frame {
            for zeros_after in [0, 4096] {
                if zeros_after > 0 && bytes[bytes.len() - cut..].iter().all(|&b| b == 0) {
                    // Only zeros were cut: with zeros after, the frame is whole again.
                    continue;
                }
                let mut torn = bytes[..bytes.len() - cut].to_vec();
                torn.resize(torn.len() + zeros_after, 0);
                std::fs::write(dir.path().join("vouchers.log"), &torn).unwrap();
                let s = VoucherStore::open(dir.path()).unwrap();
                assert_eq!(s.loaded()[&1], rec(0, 10), "cut {cut}");
                drop(s);
                let before = (bytes.len() - last_frame) as u64;
                assert_eq!(log_end(dir.path()), before);
                assert_eq!(file_len(dir.path()), before, "the torn tail is truncated");
            }
        }
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 4096]);
        std::fs::write(dir.path().join("vouchers.log"), &zeros).unwrap();
        let s = VoucherStore::open(dir.path()).unwrap();
        assert_eq!(s.loaded()[&1], rec(0, 20));
        // Writing goes on after the cut, and reads back.
        s.put(vec![(1, rec(0, 25))]).unwrap();
        drop(s);
        assert_eq!(log_end(dir.path()), whole + last_frame as u64);
        assert_eq!(file_len(dir.path()), (bytes.len() + 4096) as u64, "zeros after the log are kept");
        assert_eq!(VoucherStore::open(dir.path()).unwrap().loaded()[&1], rec(0, 25));
    }

    #[test]
    fn a_damaged_frame_before_good_ones_refuses_to_open() {
        let dir = two_frames();
        let path = dir.path().join("vouchers.log");
        let good = std::fs::read(&path).unwrap();
        // A flipped bit in the first frame's payload.
        let mut bad = good.clone();
        bad[MAGIC.len() + framelog::FRAME_HEAD + 3] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let e = VoucherStore::open(dir.path()).err().expect("corrupt");
        assert!(e.to_string().contains("fails its checksum"), "{e}");
        // The file is left as it was, for an operator to look at.
        assert_eq!(std::fs::read(&path).unwrap(), bad);
        // Not a log at all.
        std::fs::write(&path, b"hello").unwrap();
        let e = VoucherStore::open(dir.path()).err().expect("not a log");
        assert!(e.to_string().contains("not a Tessera voucher log"), "{e}");
    }

    #[test]
    fn compaction_keeps_every_channel_and_shrinks_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut want = BTreeMap::new();
        {
            let s = VoucherStore::open_with(dir.path(), 4 << 10, EVENTUAL_DELAY).unwrap();
            for i in 0..600u64 {
                let r = rec(i / 200, i as u128);
                want.insert(i % 10, r.clone());
                s.put(vec![(i % 10, r)]).unwrap();
            }
            // Ten channels: a compacted log is under 1 KiB and is compacted again after 4 KiB
            // of growth; 600 frames without compaction would be over 30 KiB.
            assert!(log_end(dir.path()) < 8 << 10, "compacted: {}", log_end(dir.path()));
        }
        assert!(!dir.path().join("vouchers.log.compact").exists());
        assert_eq!(VoucherStore::open(dir.path()).unwrap().loaded(), &want);
    }

    #[test]
    fn an_earlier_versions_redb_store_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("vouchers.redb");
        {
            const CHANNELS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("channels");
            let db = redb::Database::create(&old).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(CHANNELS).unwrap();
                t.insert(7, primitives::codec::encode(&rec(2, 99)).as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let s = VoucherStore::open(dir.path()).unwrap();
        assert_eq!(s.loaded()[&7], rec(2, 99));
        s.put(vec![(7, rec(3, 100))]).unwrap();
        drop(s);
        assert!(!old.exists() && dir.path().join("vouchers.redb.imported").exists());
        assert_eq!(VoucherStore::open(dir.path()).unwrap().loaded()[&7], rec(3, 100));
    }
}
