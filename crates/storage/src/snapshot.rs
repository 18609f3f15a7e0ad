//! State checkpoints as snapshot files: one base run and delta runs, each a sorted stream
//! of `(table, key, value or deletion)` records, bound together by a manifest that is
//! replaced atomically. The design of Solana's full and incremental snapshots, for the
//! same reason: a checkpoint of a million changed accounts is one sequential write
//! (about a tenth of a second of one core here) instead of a million B-tree updates
//! (about two seconds in redb), and the checkpointer's core is one the signature
//! verifiers need.
//!
//! Layout under `DIR/checkpoint/`:
//! - `run-NNNNNNNNNNNN.bin`: records sorted by (table, key); a later run's record for a
//!   key replaces an earlier one's. Each record: table `u8`, key length `u32` LE, key,
//!   then `0` (deleted) or `1`, value length `u32` LE, value.
//! - `MANIFEST`: borsh of `Manifest` (the state's header fields and the runs, oldest
//!   first, each with its length, record count and blake3), then the blake3 of those
//!   bytes. Written to `MANIFEST.tmp`, fsynced, renamed over the old one, and the
//!   directory fsynced: the rename is the checkpoint's commit point. Runs are written
//!   and fsynced before the manifest that names them; files no manifest names are
//!   deleted after the switch (and on open, after a crash).
//!
//! When the delta runs add up to half the base (or there are more than
//! `RUNS_MAX` runs), all runs are merged into a new base, dropping deletions: each
//! byte is rewritten a bounded number of times, and a load reads at most about twice
//! the state.

use borsh::{BorshDeserialize, BorshSerialize};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Tables inside a run, in the order they sort.
pub(crate) const TABLE_ACCOUNT: u8 = 0;
pub(crate) const TABLE_ASSET: u8 = 1;
pub(crate) const TABLE_OBJECT: u8 = 2;

/// Limits a decoder enforces on a run's records (a corrupt length must not allocate
/// gigabytes).
const KEY_BYTES_MAX: usize = 1 << 10;
const VALUE_BYTES_MAX: usize = 1 << 20;
const MANIFEST_BYTES_MAX: usize = 1 << 20;
/// At most this many runs (one base and deltas) before they are merged.
pub(crate) const RUNS_MAX: usize = 16;
const FORMAT: &str = "tessera-snapshot-v1";
const IO_BUFFER_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub(crate) struct RunRef {
    pub file: String,
    pub records: u64,
    pub bytes: u64,
    pub hash: [u8; 32],
}

#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub(crate) struct Manifest<M> {
    pub format: String,
    pub meta: M,
    /// State runs, oldest (the base) first.
    pub runs: Vec<RunRef>,
    /// Transaction-index runs (`IndexEntry` records sorted by id), oldest first.
    pub index_runs: Vec<RunRef>,
    /// Number for the next run file's name.
    pub next_run: u64,
}

/// One record, with owned buffers that a reader reuses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub table: u8,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl Record {
    fn sort_key(&self) -> (u8, &[u8]) {
        (self.table, &self.key)
    }
}

/// A writer (or reader) that hashes and counts what passes through it. It sits under the
/// buffer, so it sees large chunks.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn corrupt(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// A file written through a buffer and a hash, then fsynced and renamed into place.
struct SyncedFile {
    out: BufWriter<Hashing<File>>,
    tmp: PathBuf,
    path: PathBuf,
    file: String,
}

impl SyncedFile {
    fn create(dir: &Path, file: String) -> io::Result<SyncedFile> {
        let path = dir.join(&file);
        let tmp = dir.join(format!("{file}.tmp"));
        let f = File::create(&tmp)?;
        let hashing = Hashing { inner: f, hasher: blake3::Hasher::new(), bytes: 0 };
        Ok(SyncedFile { out: BufWriter::with_capacity(IO_BUFFER_BYTES, hashing), tmp, path, file })
    }

    fn finish(self, records: u64) -> io::Result<RunRef> {
        let Hashing { inner: file, hasher, bytes } = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        Ok(RunRef { file: self.file, records, bytes, hash: *hasher.finalize().as_bytes() })
    }
}

/// Writes one run file, durably, from records already in (table, key) order.
pub(crate) struct RunWriter {
    out: SyncedFile,
    records: u64,
    last: Option<(u8, Vec<u8>)>,
}

impl RunWriter {
    pub fn create(dir: &Path, file: String) -> io::Result<RunWriter> {
        Ok(RunWriter { out: SyncedFile::create(dir, file)?, records: 0, last: None })
    }

    pub fn push(&mut self, table: u8, key: &[u8], value: Option<&[u8]>) -> io::Result<()> {
        assert!(key.len() <= KEY_BYTES_MAX, "snapshot key of {} bytes", key.len());
        if let Some((t, k)) = &self.last {
            assert!((*t, k.as_slice()) < (table, key), "snapshot records out of order");
        }
        match &mut self.last {
            Some((t, k)) => {
                *t = table;
                k.clear();
                k.extend_from_slice(key);
            }
            None => self.last = Some((table, key.to_vec())),
        }
        let out = &mut self.out.out;
        out.write_all(&[table])?;
        out.write_all(&(key.len() as u32).to_le_bytes())?;
        out.write_all(key)?;
        match value {
            None => out.write_all(&[0])?,
            Some(v) => {
                assert!(v.len() <= VALUE_BYTES_MAX, "snapshot value of {} bytes", v.len());
                out.write_all(&[1])?;
                out.write_all(&(v.len() as u32).to_le_bytes())?;
                out.write_all(v)?;
            }
        }
        self.records += 1;
        Ok(())
    }

    /// Flushes, fsyncs and renames the file into place.
    pub fn finish(self) -> io::Result<RunRef> {
        self.out.finish(self.records)
    }
}

/// Reads one run file, checking its length and hash against the manifest at the end.
pub(crate) struct RunReader<R = File> {
    input: BufReader<Hashing<R>>,
    run: RunRef,
    left: u64,
}

impl RunReader {
    pub fn open(dir: &Path, run: &RunRef) -> io::Result<RunReader> {
        let f = File::open(dir.join(&run.file))?;
        let len = f.metadata()?.len();
        if len != run.bytes {
            return Err(corrupt(format!("{} is {len} bytes, the manifest says {}", run.file, run.bytes)));
        }
        Ok(RunReader::new(f, run))
    }
}

impl<R: Read> RunReader<R> {
    /// Reads `run`'s records from `input` (a file, or bytes under test).
    pub fn new(input: R, run: &RunRef) -> RunReader<R> {
        let hashing = Hashing { inner: input, hasher: blake3::Hasher::new(), bytes: 0 };
        RunReader { input: BufReader::with_capacity(IO_BUFFER_BYTES, hashing), run: run.clone(), left: run.records }
    }

    fn read_len(&mut self, max: usize, what: &str) -> io::Result<usize> {
        let mut b = [0u8; 4];
        self.input.read_exact(&mut b)?;
        let n = u32::from_le_bytes(b) as usize;
        if n > max {
            return Err(corrupt(format!("{}: {what} of {n} bytes", self.run.file)));
        }
        Ok(n)
    }

    /// Reads the next record into `rec` (reusing its buffers); `false` after the last,
    /// once the file's hash has been checked.
    pub fn next_into(&mut self, rec: &mut Record) -> io::Result<bool> {
        if self.left == 0 {
            let mut rest = [0u8; 1];
            if self.input.read(&mut rest)? != 0 {
                return Err(corrupt(format!("{}: bytes after the last record", self.run.file)));
            }
            if *self.input.get_ref().hasher.finalize().as_bytes() != self.run.hash {
                return Err(corrupt(format!("{}: hash differs from the manifest's", self.run.file)));
            }
            return Ok(false);
        }
        self.left -= 1;
        let mut tag = [0u8; 1];
        self.input.read_exact(&mut tag)?;
        rec.table = tag[0];
        let n = self.read_len(KEY_BYTES_MAX, "key")?;
        rec.key.resize(n, 0);
        self.input.read_exact(&mut rec.key)?;
        self.input.read_exact(&mut tag)?;
        match tag[0] {
            0 => rec.value = None,
            1 => {
                let n = self.read_len(VALUE_BYTES_MAX, "value")?;
                let v = rec.value.get_or_insert_with(Vec::new);
                v.resize(n, 0);
                self.input.read_exact(v)?;
            }
            t => return Err(corrupt(format!("{}: record tag {t}", self.run.file))),
        }
        Ok(true)
    }
}

/// The manifest of `dir`, if one was ever committed.
pub(crate) fn read_manifest<M: BorshDeserialize>(dir: &Path) -> io::Result<Option<Manifest<M>>> {
    match fs::read(dir.join("MANIFEST")) {
        Ok(bytes) => decode_manifest(&bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Decodes a manifest's bytes: checksum, size limit, format.
pub(crate) fn decode_manifest<M: BorshDeserialize>(bytes: &[u8]) -> io::Result<Manifest<M>> {
    if bytes.len() < 32 || bytes.len() > MANIFEST_BYTES_MAX {
        return Err(corrupt(format!("MANIFEST of {} bytes", bytes.len())));
    }
    let (body, hash) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != hash {
        return Err(corrupt("MANIFEST checksum"));
    }
    let manifest: Manifest<M> = borsh::from_slice(body).map_err(|e| corrupt(format!("MANIFEST: {e}")))?;
    if manifest.format != FORMAT {
        return Err(corrupt(format!("snapshot format {:?}, expected {FORMAT:?}", manifest.format)));
    }
    Ok(manifest)
}

/// Commits `manifest`: written beside, fsynced, renamed over the old one, directory
/// fsynced. Files it no longer names stay until the caller removes them (`remove_unnamed`)
/// once no reader can still be using the old manifest.
pub(crate) fn commit_manifest<M: BorshSerialize>(dir: &Path, manifest: &Manifest<M>) -> io::Result<()> {
    let mut bytes = borsh::to_vec(manifest)?;
    let hash = blake3::hash(&bytes);
    bytes.extend_from_slice(hash.as_bytes());
    let tmp = dir.join("MANIFEST.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    // The runs' renames and the manifest's must be durable before anything is deleted.
    sync_dir(dir)?;
    fs::rename(&tmp, dir.join("MANIFEST"))?;
    sync_dir(dir)
}

/// Deletes run files (and leftovers of interrupted writes) that `named` does not name.
pub(crate) fn remove_unnamed<'a>(dir: &Path, named: impl Iterator<Item = &'a RunRef> + Clone) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let run_file = name.starts_with("run-") || name.starts_with("txi-");
        let stray = name.ends_with(".tmp") || (run_file && !named.clone().any(|r| r.file == name));
        if stray {
            fs::remove_file(dir.join(name))?;
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn new_manifest<M>(meta: M) -> Manifest<M> {
    Manifest { format: FORMAT.to_string(), meta, runs: Vec::new(), index_runs: Vec::new(), next_run: 1 }
}

impl<M> Manifest<M> {
    pub fn run_name(&mut self) -> String {
        let name = format!("run-{:012}.bin", self.next_run);
        self.next_run += 1;
        name
    }

    pub fn index_run_name(&mut self) -> String {
        let name = format!("txi-{:012}.bin", self.next_run);
        self.next_run += 1;
        name
    }

    /// Whether the runs should be merged into one: the deltas have grown to half the
    /// base, or there are too many runs to read on every start.
    pub fn merge_due(&self) -> bool {
        let Some((base, deltas)) = self.runs.split_first() else { return false };
        let delta_bytes: u64 = deltas.iter().map(|r| r.bytes).sum();
        self.runs.len() > RUNS_MAX || (!deltas.is_empty() && delta_bytes * 2 >= base.bytes)
    }
}

/// Merges `runs` (oldest first) into one new run: for each key the newest record wins,
/// and deletions are dropped (nothing older remains for them to hide).
pub(crate) fn merge(dir: &Path, runs: &[RunRef], file: String) -> io::Result<RunRef> {
    let mut readers = runs.iter().map(|r| RunReader::open(dir, r)).collect::<io::Result<Vec<_>>>()?;
    // The current record of each reader; `None` once it is exhausted.
    let mut heads: Vec<Option<Record>> = Vec::with_capacity(readers.len());
    for r in &mut readers {
        let mut rec = Record::default();
        heads.push(if r.next_into(&mut rec)? { Some(rec) } else { None });
    }
    let mut out = RunWriter::create(dir, file)?;
    let mut key = Vec::new();
    loop {
        // The smallest key among the heads; among equal keys, the newest run's record.
        let mut pick: Option<usize> = None;
        for (i, head) in heads.iter().enumerate() {
            let Some(rec) = head else { continue };
            match pick {
                Some(p) if rec.sort_key() > heads[p].as_ref().map(Record::sort_key).expect("picked head") => {}
                _ => pick = Some(i),
            }
        }
        let Some(p) = pick else { break };
        let winner = heads[p].as_ref().expect("picked head");
        if let Some(v) = &winner.value {
            out.push(winner.table, &winner.key, Some(v))?;
        }
        let table = winner.table;
        key.clear();
        key.extend_from_slice(&winner.key);
        // Advance every reader positioned on this key.
        for (i, head) in heads.iter_mut().enumerate() {
            let on_key = head.as_ref().is_some_and(|r| r.sort_key() == (table, key.as_slice()));
            if on_key {
                let rec = head.as_mut().expect("checked");
                if !readers[i].next_into(rec)? {
                    *head = None;
                }
            }
        }
    }
    out.finish()
}

/// One transaction-index record: id, height, position in the block. Fixed size, so a
/// run can be binary-searched in place.
pub(crate) const INDEX_ENTRY_BYTES: usize = 32 + 8 + 4;

pub(crate) type IndexEntry = ([u8; 32], u64, u32);

fn encode_entry((id, height, index): &IndexEntry) -> [u8; INDEX_ENTRY_BYTES] {
    let mut b = [0u8; INDEX_ENTRY_BYTES];
    b[..32].copy_from_slice(id);
    b[32..40].copy_from_slice(&height.to_le_bytes());
    b[40..].copy_from_slice(&index.to_le_bytes());
    b
}

fn decode_entry(b: &[u8; INDEX_ENTRY_BYTES]) -> IndexEntry {
    let (id, rest) = b.split_at(32);
    let (height, index) = rest.split_at(8);
    (
        id.try_into().expect("32"),
        u64::from_le_bytes(height.try_into().expect("8")),
        u32::from_le_bytes(index.try_into().expect("4")),
    )
}

/// Writes an index run from entries sorted by id (no id twice).
pub(crate) fn write_index_run(dir: &Path, file: String, sorted: &[IndexEntry]) -> io::Result<RunRef> {
    let mut out = SyncedFile::create(dir, file)?;
    for (i, e) in sorted.iter().enumerate() {
        assert!(i == 0 || sorted[i - 1].0 < e.0, "index entries out of order");
        out.out.write_all(&encode_entry(e))?;
    }
    out.finish(sorted.len() as u64)
}

/// Reads an index run in order, checking its hash at the end.
struct IndexReader {
    input: BufReader<Hashing<File>>,
    run: RunRef,
    left: u64,
}

impl IndexReader {
    fn open(dir: &Path, run: &RunRef) -> io::Result<IndexReader> {
        let f = File::open(dir.join(&run.file))?;
        let len = f.metadata()?.len();
        if len != run.bytes || len != run.records * INDEX_ENTRY_BYTES as u64 {
            return Err(corrupt(format!("{} is {len} bytes, the manifest says {}", run.file, run.bytes)));
        }
        let hashing = Hashing { inner: f, hasher: blake3::Hasher::new(), bytes: 0 };
        Ok(IndexReader {
            input: BufReader::with_capacity(IO_BUFFER_BYTES, hashing),
            run: run.clone(),
            left: run.records,
        })
    }

    fn next(&mut self) -> io::Result<Option<IndexEntry>> {
        if self.left == 0 {
            if *self.input.get_ref().hasher.finalize().as_bytes() != self.run.hash {
                return Err(corrupt(format!("{}: hash differs from the manifest's", self.run.file)));
            }
            return Ok(None);
        }
        self.left -= 1;
        let mut b = [0u8; INDEX_ENTRY_BYTES];
        self.input.read_exact(&mut b)?;
        Ok(Some(decode_entry(&b)))
    }
}

/// Merges two index runs (`newer` wins for an id in both: a block re-indexed after a
/// restart carries the same location anyway).
pub(crate) fn merge_index(dir: &Path, older: &RunRef, newer: &RunRef, file: String) -> io::Result<RunRef> {
    let (mut a, mut b) = (IndexReader::open(dir, older)?, IndexReader::open(dir, newer)?);
    let mut out = SyncedFile::create(dir, file)?;
    let mut records = 0u64;
    let (mut x, mut y) = (a.next()?, b.next()?);
    loop {
        let take = match (&x, &y) {
            (None, None) => break,
            (Some(_), None) => x.take(),
            (None, Some(_)) => y.take(),
            (Some(ea), Some(eb)) => match ea.0.cmp(&eb.0) {
                std::cmp::Ordering::Less => x.take(),
                std::cmp::Ordering::Greater => y.take(),
                std::cmp::Ordering::Equal => {
                    x = None;
                    y.take()
                }
            },
        };
        out.out.write_all(&encode_entry(&take.expect("one side had an entry")))?;
        records += 1;
        if x.is_none() {
            x = a.next()?;
        }
        if y.is_none() {
            y = b.next()?;
        }
    }
    out.finish(records)
}

/// After a new index run was appended: merge the newest two while they are of
/// comparable size (the newer at least half the older), so the runs' sizes fall
/// geometrically, a lookup reads O(log n) runs and an entry is rewritten O(log n) times.
pub(crate) fn merge_index_runs<M>(dir: &Path, manifest: &mut Manifest<M>) -> io::Result<()> {
    while let [.., older, newer] = &manifest.index_runs[..] {
        if newer.bytes * 2 < older.bytes {
            break;
        }
        let (older, newer) = (older.clone(), newer.clone());
        let name = manifest.index_run_name();
        let merged = merge_index(dir, &older, &newer, name)?;
        let n = manifest.index_runs.len();
        manifest.index_runs.truncate(n - 2);
        manifest.index_runs.push(merged);
    }
    Ok(())
}

/// Binary search for `id` in one index run, reading entries in place.
pub(crate) fn find_in_index_run(dir: &Path, run: &RunRef, id: &[u8; 32]) -> io::Result<Option<(u64, u32)>> {
    use std::io::Seek;
    let mut f = File::open(dir.join(&run.file))?;
    let (mut lo, mut hi) = (0u64, run.records);
    let mut b = [0u8; INDEX_ENTRY_BYTES];
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        f.seek(io::SeekFrom::Start(mid * INDEX_ENTRY_BYTES as u64))?;
        f.read_exact(&mut b)?;
        let (found, height, index) = decode_entry(&b);
        match found.cmp(id) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(Some((height, index))),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type Model = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

    fn write(dir: &Path, file: &str, recs: &BTreeMap<(u8, Vec<u8>), Option<Vec<u8>>>) -> RunRef {
        let mut w = RunWriter::create(dir, file.to_string()).unwrap();
        for ((t, k), v) in recs {
            w.push(*t, k, v.as_deref()).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(dir: &Path, runs: &[RunRef]) -> Model {
        let mut model = Model::new();
        for run in runs {
            let mut r = RunReader::open(dir, run).unwrap();
            let mut rec = Record::default();
            while r.next_into(&mut rec).unwrap() {
                match &rec.value {
                    Some(v) => model.insert((rec.table, rec.key.clone()), v.clone()),
                    None => model.remove(&(rec.table, rec.key.clone())),
                };
            }
        }
        model
    }

    proptest::proptest! {
        #[test]
        fn merging_runs_gives_what_reading_them_in_order_gives(
            runs in proptest::collection::vec(
                proptest::collection::btree_map(
                    (0u8..3, proptest::collection::vec(0u8..4, 0..3)),
                    proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..5)),
                    0..12,
                ),
                1..5,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let refs: Vec<RunRef> =
                runs.iter().enumerate().map(|(i, r)| write(dir.path(), &format!("run-{i}.bin"), r)).collect();
            let expected = read_all(dir.path(), &refs);
            let merged = merge(dir.path(), &refs, "run-merged.bin".into()).unwrap();
            proptest::prop_assert_eq!(read_all(dir.path(), std::slice::from_ref(&merged)), expected.clone());
            // No deletions survive a merge.
            proptest::prop_assert_eq!(merged.records as usize, expected.len());
        }
    }

    proptest::proptest! {
        // Each case writes and fsyncs up to 30 files: fewer cases than the default 256.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn index_runs_find_every_id_and_stay_few(
            batches in proptest::collection::vec(
                proptest::collection::btree_map(proptest::num::u8::ANY, (0u64..9, 0u32..9), 0..40),
                1..30,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut m = new_manifest(());
            let mut model = BTreeMap::new();
            let id = |b: u8| {
                let mut id = [b.wrapping_mul(37); 32];
                id[0] = b;
                id
            };
            for batch in &batches {
                if batch.is_empty() {
                    continue;
                }
                let entries: Vec<IndexEntry> = batch.iter().map(|(b, (h, i))| (id(*b), *h, *i)).collect();
                for (b, loc) in batch {
                    model.insert(*b, *loc);
                }
                let name = m.index_run_name();
                m.index_runs.push(write_index_run(dir.path(), name, &entries).unwrap());
                merge_index_runs(dir.path(), &mut m).unwrap();
            }
            for b in 0..=255u8 {
                let found = m
                    .index_runs
                    .iter()
                    .rev()
                    .find_map(|r| find_in_index_run(dir.path(), r, &id(b)).unwrap());
                proptest::prop_assert_eq!(found, model.get(&b).copied(), "id {}", b);
            }
            // Sizes fall geometrically (each run under half the one before), so there are
            // O(log n) of them.
            for w in m.index_runs.windows(2) {
                proptest::prop_assert!(w[1].bytes * 2 < w[0].bytes);
            }
        }
    }

    #[test]
    fn a_changed_byte_or_length_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let mut recs = BTreeMap::new();
        recs.insert((0u8, vec![1u8, 2]), Some(vec![3u8; 40]));
        recs.insert((1u8, vec![1u8]), None);
        let run = write(dir.path(), "run-1.bin", &recs);
        assert_eq!(read_all(dir.path(), std::slice::from_ref(&run)).len(), 1);
        let path = dir.path().join("run-1.bin");
        let mut bytes = fs::read(&path).unwrap();
        bytes[20] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let mut r = RunReader::open(dir.path(), &run).unwrap();
        let mut rec = Record::default();
        let err = loop {
            match r.next_into(&mut rec) {
                Ok(true) => continue,
                Ok(false) => panic!("a flipped byte went unnoticed"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("hash"), "{err}");
        bytes.push(0);
        fs::write(&path, &bytes).unwrap();
        assert!(RunReader::open(dir.path(), &run).is_err());
    }

    #[test]
    fn a_damaged_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = new_manifest(7u64);
        m.runs.push(RunRef { file: "run-000000000001.bin".into(), records: 0, bytes: 0, hash: [0; 32] });
        fs::write(dir.path().join("run-000000000001.bin"), b"").unwrap();
        fs::write(dir.path().join("run-000000000009.bin"), b"orphan").unwrap();
        commit_manifest(dir.path(), &m).unwrap();
        assert!(dir.path().join("run-000000000009.bin").exists(), "committing deletes nothing");
        remove_unnamed(dir.path(), m.runs.iter()).unwrap();
        assert!(!dir.path().join("run-000000000009.bin").exists(), "an unnamed run is removed");
        assert!(dir.path().join("run-000000000001.bin").exists());
        let back: Manifest<u64> = read_manifest(dir.path()).unwrap().unwrap();
        assert_eq!((back.meta, back.runs), (7, m.runs));
        let path = dir.path().join("MANIFEST");
        let mut bytes = fs::read(&path).unwrap();
        bytes[3] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        assert!(read_manifest::<u64>(dir.path()).is_err());
    }
}
