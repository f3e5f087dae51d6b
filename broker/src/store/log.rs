//! A segmented, append-only record log with group commit: the on-disk form of a Raft log.
//!
//! Why our own log and not an embedded database: a queue's messages are written once, in
//! order, and read back mostly soon after; a Raft log has exactly that shape. An append
//! log with one `fdatasync` per batch of concurrent writers (group commit) reaches the
//! disk's sequential bandwidth; an LSM (RocksDB, fjall) writes each byte several times and
//! stalls on compaction, and a B-tree (redb) rewrites pages on every commit. Space is freed
//! by deleting whole segments once nothing below a floor is needed, which costs nothing.
//!
//! Layout: `<dir>/<sequence number, 20 digits>.seg`, each a run of records:
//!
//! ```text
//! crc32c u32 | payload length u32 | kind u8 | reserved [u8; 3] | index u64 | payload
//! ```
//!
//! The CRC covers everything after itself, seeded with the segment's sequence number, so
//! records left over from a recycled file's previous life never pass for current ones.
//! Entry records carry consecutive indexes. Marker
//! records (kind >= 2) carry small state the owner wants persisted in order with the
//! entries (the committed and purged log ids); the latest of each kind is written again at
//! the start of every new segment and after a truncation, so deleting old segments never
//! loses it.
//!
//! Segments no longer needed are recycled (up to a few kept aside, the rest deleted): a new
//! segment then overwrites blocks the file system already holds, so a sync flushes data
//! and no allocation metadata, and no large file is deleted (which on a file system
//! mounted with `discard` stalls the disk).
//!
//! Recovery reads every header; the newest segment is also checked record by record. The
//! first record that is torn (short) or fails its CRC ends the log: the file is truncated
//! there and later segments are removed, so a crash mid-write is never served. Older
//! segments are checked lazily, on read: a bad CRC there is an error, never data.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes before each record's payload.
pub const HEADER_LEN: usize = 20;
/// Record kind of a log entry.
pub const KIND_ENTRY: u8 = 1;
/// Record kind that closes a segment the writer moved on from.
const KIND_END: u8 = 255;
/// Payloads above this are refused: a sign of a corrupt length, not a real record.
const MAX_PAYLOAD: u32 = 1 << 30;

/// Tuning of a [`SegmentLog`].
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A new segment starts once the active one is this large.
    pub segment_bytes: u64,
    /// `fdatasync` after each batch. Off only in tests that measure the rest.
    pub fsync: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            fsync: true,
        }
    }
}

/// Called once the records of an append are durable (or failed to be).
pub type Durable = Box<dyn FnOnce(io::Result<()>) + Send>;

/// Observes each group commit: how many records it carried and how long the sync took.
pub trait CommitObserver: Send + Sync {
    fn committed(&self, records: usize, bytes: usize, sync_time: Duration);
}

/// One record to append: its header is filled in by the writer, in place, so the payload
/// is never copied on its way to the file.
#[derive(Debug, Clone)]
pub struct Record {
    kind: u8,
    index: u64,
    /// `HEADER_LEN` bytes for the header, then the payload.
    frame: Vec<u8>,
}

impl Record {
    pub fn new(kind: u8, index: u64, payload: &[u8]) -> Self {
        let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
        frame.resize(HEADER_LEN, 0);
        frame.extend_from_slice(payload);
        Self { kind, index, frame }
    }

    /// A record whose payload `fill` appends to the buffer it is given.
    pub fn build(
        kind: u8,
        index: u64,
        fill: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<Self> {
        let mut frame = vec![0; HEADER_LEN];
        fill(&mut frame)?;
        Ok(Self { kind, index, frame })
    }

    pub fn kind(&self) -> u8 {
        self.kind
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn payload(&self) -> &[u8] {
        &self.frame[HEADER_LEN..]
    }

    /// Writes the header: length, kind, index, and the CRC over all of it but itself,
    /// seeded with the sequence number of the segment it goes into.
    fn seal(&mut self, seq: u64) {
        let len = (self.frame.len() - HEADER_LEN) as u32;
        self.frame[4..8].copy_from_slice(&len.to_le_bytes());
        self.frame[8] = self.kind;
        self.frame[9..12].copy_from_slice(&[0; 3]);
        self.frame[12..20].copy_from_slice(&self.index.to_le_bytes());
        let crc = crc32c::crc32c_append(crc_seed(seq), &self.frame[4..]);
        self.frame[..4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Records at least this large are written straight from their own buffer; smaller ones
/// are gathered into one write.
const DIRECT_WRITE: usize = 8 << 10;

/// What recovery found on open.
#[derive(Debug, Default)]
pub struct Recovered {
    /// First and last entry index present, if any.
    pub entries: Option<(u64, u64)>,
    /// Latest payload of each marker kind.
    pub markers: BTreeMap<u8, Vec<u8>>,
    /// Bytes cut off a torn or corrupt tail, and where.
    pub truncated: Option<(PathBuf, u64, u64)>,
    /// Spare segment files to reuse.
    pub free: Vec<PathBuf>,
}

/// A segmented record log. Appends are queued to one writer thread that batches them under
/// a single `fdatasync`; reads go straight to the files.
pub struct SegmentLog {
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    dir: PathBuf,
    options: LogOptions,
    index: Mutex<Index>,
}

/// Where every written entry is, per segment.
#[derive(Default)]
struct Index {
    segments: Vec<Segment>,
    /// The index the next entry must have; `None` while the log has never held one.
    next_entry: Option<u64>,
}

struct Segment {
    seq: u64,
    /// Index of the first entry; meaningless while `offsets` is empty.
    first_index: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Byte offset of each entry record, entry `first_index + i` at `offsets[i]`.
    offsets: Vec<u64>,
    /// Bytes of records (not counting an end record).
    len: u64,
    /// The segment ends with an end record, at `len`.
    sealed: bool,
}

impl Segment {
    fn last_index(&self) -> Option<u64> {
        (!self.offsets.is_empty()).then(|| self.first_index + self.offsets.len() as u64 - 1)
    }
}

enum Op {
    Append(Vec<Record>, Option<Durable>),
    TruncateAfter(u64, mpsc::SyncSender<io::Result<()>>),
    Reset(u64, mpsc::SyncSender<io::Result<()>>),
    DeleteBefore(u64),
    Sync(mpsc::SyncSender<io::Result<()>>),
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

struct Header {
    crc: u32,
    len: u32,
    kind: u8,
    index: u64,
}

fn decode_header(bytes: &[u8; HEADER_LEN]) -> Header {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    Header {
        crc: u32_at(0),
        len: u32_at(4),
        kind: bytes[8],
        index: u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")),
    }
}

fn crc_seed(seq: u64) -> u32 {
    crc32c::crc32c(&seq.to_le_bytes())
}

fn record_crc(seq: u64, header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c_append(crc_seed(seq), &header[4..]), payload)
}

/// Spare segment files kept for reuse.
const POOL_MAX: usize = 4;

fn free_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.free"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail.
    pub fn open(
        dir: &Path,
        options: LogOptions,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> io::Result<(Self, Recovered)> {
        fs::create_dir_all(dir)?;
        let (index, recovered) = recover(dir)?;
        let fsync = options.fsync;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            options,
            index: Mutex::new(index),
        });
        let (tx, rx) = mpsc::channel();
        let (sync_tx, sync_rx) = mpsc::channel();
        let syncer = std::thread::Builder::new()
            .name("log-syncer".into())
            .spawn(move || run_syncer(sync_rx, fsync, observer))?;
        let (janitor_tx, janitor_rx) = mpsc::channel();
        let janitor = std::thread::Builder::new()
            .name("log-janitor".into())
            .spawn(move || run_janitor(janitor_rx))?;
        let writer = Writer {
            shared: shared.clone(),
            sticky: recovered.markers.clone(),
            buf: Vec::new(),
            job: SyncJob::default(),
            syncer: Some(sync_tx),
            janitor: Some(janitor_tx),
            pool: recovered.free.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run(rx, syncer, janitor))?;
        Ok((
            Self {
                shared,
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
            },
            recovered,
        ))
    }

    fn send(&self, op: Op) -> io::Result<()> {
        let tx = lock(&self.tx);
        match tx.as_ref() {
            Some(tx) => tx
                .send(op)
                .map_err(|_| io::Error::other("log writer has stopped")),
            None => Err(io::Error::other("log is closed")),
        }
    }

    /// Queues records for writing; `durable` runs once they are synced. Entry records must
    /// continue the log without a gap. Returns at once.
    pub fn append(&self, records: Vec<Record>, durable: Option<Durable>) -> io::Result<()> {
        self.send(Op::Append(records, durable))
    }

    /// Removes every entry after `index` (and keeps `index`), waiting until done.
    pub fn truncate_after(&self, index: u64) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Op::TruncateAfter(index, tx))?;
        rx.recv()
            .map_err(|_| io::Error::other("log writer has stopped"))?
    }

    /// Drops every segment and starts empty, the next entry being `next_index`.
    pub fn reset(&self, next_index: u64) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Op::Reset(next_index, tx))?;
        rx.recv()
            .map_err(|_| io::Error::other("log writer has stopped"))?
    }

    /// Waits until everything queued before is durable.
    pub fn sync(&self) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Op::Sync(tx))?;
        rx.recv()
            .map_err(|_| io::Error::other("log writer has stopped"))?
    }

    /// Deletes whole segments whose entries all lie below `index`. The segment holding
    /// `index` (and the active one) stays.
    pub fn delete_before(&self, index: u64) -> io::Result<()> {
        self.send(Op::DeleteBefore(index))
    }

    /// Reads the payload of entry `index` if it has been written. Verifies its CRC.
    pub fn read(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        let file = {
            let idx = lock(&self.shared.index);
            let Some(seg) = idx
                .segments
                .iter()
                .rev()
                .find(|s| !s.offsets.is_empty() && s.first_index <= index)
            else {
                return Ok(None);
            };
            let Some(&offset) = seg.offsets.get((index - seg.first_index) as usize) else {
                return Ok(None);
            };
            (seg.file.clone(), offset, seg.seq)
        };
        let (file, offset, seq) = (file.0, file.1, file.2);
        let mut header = [0u8; HEADER_LEN];
        file.read_exact_at(&mut header, offset)?;
        let h = decode_header(&header);
        if h.index != index || h.kind != KIND_ENTRY || h.len > MAX_PAYLOAD {
            return Err(corrupt(format!(
                "entry {index}: header at offset {offset} names entry {} kind {}",
                h.index, h.kind
            )));
        }
        let mut payload = vec![0u8; h.len as usize];
        file.read_exact_at(&mut payload, offset + HEADER_LEN as u64)?;
        if record_crc(seq, &header, &payload) != h.crc {
            return Err(corrupt(format!(
                "entry {index}: checksum mismatch at offset {offset}"
            )));
        }
        Ok(Some(payload))
    }

    /// First and last written entry index.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        lock(&self.shared.index).bounds()
    }

    /// Bytes on disk, over all segments.
    pub fn disk_bytes(&self) -> u64 {
        lock(&self.shared.index)
            .segments
            .iter()
            .map(|s| s.len)
            .sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        lock(&self.shared.index).segments.len()
    }

    /// Stops the writer after it has written and synced what was queued.
    pub fn close(&self) {
        lock(&self.tx).take();
        if let Some(handle) = lock(&self.writer).take() {
            let _ = handle.join();
        }
    }
}

impl Drop for SegmentLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the index as consistent as before it: every
    // change to it is a single push or truncate.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Scans the directory, truncating a torn or corrupt tail.
fn recover(dir: &Path) -> io::Result<(Index, Recovered)> {
    let mut seqs: Vec<(u64, PathBuf)> = Vec::new();
    let mut free: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(".seg")
            && let Ok(seq) = stem.parse::<u64>()
        {
            seqs.push((seq, path));
        } else if name.ends_with(".free") {
            free.push(path);
        }
    }
    seqs.sort();

    let mut recovered = Recovered {
        free,
        ..Recovered::default()
    };
    let mut index = Index::default();
    let count = seqs.len();
    let mut cut_rest = false;
    for (i, (seq, path)) in seqs.into_iter().enumerate() {
        if cut_rest {
            tracing::error!(path = %path.display(), "removing segment after a corrupt record");
            fs::remove_file(&path)?;
            continue;
        }
        let newest = i + 1 == count;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let scan = scan_segment(&file, seq, index.next_entry, newest, &mut recovered.markers)?;
        // A segment the writer left for the next one ends with an end record; anything
        // after it is what a recycled file held before. The newest segment has none: its
        // tail may be torn. An older one without it is where the log really ends (a
        // crash came before its end record was durable, so nothing after it was
        // acknowledged), and the segments after it go.
        let tail_is_torn = newest || scan.sealed_at.is_none();
        if tail_is_torn && scan.valid_len < scan.file_len {
            tracing::info!(
                path = %path.display(),
                at = scan.valid_len,
                bytes = scan.file_len - scan.valid_len,
                "cutting the log after its last valid record (a torn write, or a reused file's old content)"
            );
            file.set_len(scan.valid_len)?;
            file.sync_all()?;
            recovered.truncated =
                Some((path.clone(), scan.valid_len, scan.file_len - scan.valid_len));
        }
        if !newest && scan.sealed_at.is_none() {
            cut_rest = true;
        }
        let first_index = scan.first_index.or(index.next_entry).unwrap_or(0);
        if !scan.offsets.is_empty() {
            index.next_entry = Some(first_index + scan.offsets.len() as u64);
        }
        index.segments.push(Segment {
            seq,
            first_index,
            path,
            file: Arc::new(file),
            offsets: scan.offsets,
            len: scan.sealed_at.unwrap_or(scan.valid_len),
            sealed: scan.sealed_at.is_some(),
        });
    }
    if cut_rest {
        sync_dir(dir)?;
    }
    recovered.entries = index.bounds();
    Ok((index, recovered))
}

impl Index {
    fn bounds(&self) -> Option<(u64, u64)> {
        let first = self
            .segments
            .iter()
            .find_map(|s| (!s.offsets.is_empty()).then_some(s.first_index))?;
        let last = self.segments.iter().rev().find_map(Segment::last_index)?;
        Some((first, last))
    }
}

struct Scan {
    first_index: Option<u64>,
    offsets: Vec<u64>,
    valid_len: u64,
    file_len: u64,
    /// Where the end record starts, if the segment has one.
    sealed_at: Option<u64>,
}

/// Reads a segment's records. Checks every CRC when `verify`, else only the framing (and
/// always the markers'). The first entry must be `expected` when the log already holds
/// entries.
fn scan_segment(
    file: &File,
    seq: u64,
    expected: Option<u64>,
    verify: bool,
    markers: &mut BTreeMap<u8, Vec<u8>>,
) -> io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(0))?;
    let mut first_index = None;
    let mut offsets = Vec::new();
    let mut pos = 0u64;
    let mut payload = Vec::new();
    let mut sealed_at = None;
    loop {
        if pos + HEADER_LEN as u64 > file_len {
            break;
        }
        let mut header = [0u8; HEADER_LEN];
        reader.read_exact(&mut header)?;
        let h = decode_header(&header);
        let end = pos + HEADER_LEN as u64 + h.len as u64;
        let next_entry = match first_index {
            Some(first) => Some(first + offsets.len() as u64),
            None => expected,
        };
        let framing_ok = h.len <= MAX_PAYLOAD
            && end <= file_len
            && h.kind != 0
            && (h.kind != KIND_ENTRY || next_entry.is_none_or(|n| n == h.index));
        if !framing_ok {
            break;
        }
        // Markers are always read (they are small); entries only when verifying.
        if verify || h.kind != KIND_ENTRY {
            payload.resize(h.len as usize, 0);
            reader.read_exact(&mut payload)?;
            if record_crc(seq, &header, &payload) != h.crc {
                break;
            }
            if h.kind == KIND_END {
                sealed_at = Some(pos);
                pos = end;
                break;
            }
            if h.kind != KIND_ENTRY {
                markers.insert(h.kind, payload.clone());
            }
        } else {
            reader.seek_relative(h.len as i64)?;
        }
        if h.kind == KIND_ENTRY {
            first_index.get_or_insert(h.index);
            offsets.push(pos);
        }
        pos = end;
    }
    Ok(Scan {
        first_index,
        offsets,
        valid_len: pos,
        file_len,
        sealed_at,
    })
}

/// What the writer hands the syncer: the files it wrote since the last hand-off, and who
/// to answer once they are durable.
#[derive(Default)]
struct SyncJob {
    files: Vec<Arc<File>>,
    /// A directory whose entries changed (a new segment).
    dir: Option<PathBuf>,
    records: usize,
    bytes: usize,
    waiting: Vec<Durable>,
    replies: Vec<mpsc::SyncSender<io::Result<()>>>,
    /// A write failed: nobody in this job is durable.
    failed: Option<io::Error>,
}

impl SyncJob {
    fn touch(&mut self, file: &Arc<File>) {
        if !self.files.iter().any(|f| Arc::ptr_eq(f, file)) {
            self.files.push(file.clone());
        }
    }

    fn merge(&mut self, other: SyncJob) {
        for f in &other.files {
            self.touch(f);
        }
        if other.dir.is_some() {
            self.dir = other.dir;
        }
        self.records += other.records;
        self.bytes += other.bytes;
        self.waiting.extend(other.waiting);
        self.replies.extend(other.replies);
        if self.failed.is_none() {
            self.failed = other.failed;
        }
    }

    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.waiting.is_empty() && self.replies.is_empty()
    }
}

/// The syncer: makes what the writer wrote durable, one `fdatasync` per file for all the
/// jobs that queued up while the previous one ran, then answers them in order. Writing
/// and syncing overlap, so the disk is never idle while records wait.
fn run_syncer(rx: Receiver<SyncJob>, fsync: bool, observer: Option<Arc<dyn CommitObserver>>) {
    while let Ok(mut job) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            job.merge(more);
        }
        let started = Instant::now();
        let mut result = match job.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        };
        if fsync && result.is_ok() {
            for file in &job.files {
                if let Err(e) = file.sync_data() {
                    result = Err(e);
                    break;
                }
            }
            if result.is_ok()
                && let Some(dir) = &job.dir
            {
                result = sync_dir(dir);
            }
        }
        if let Some(observer) = &observer
            && !job.files.is_empty()
        {
            observer.committed(job.records, job.bytes, started.elapsed());
        }
        for done in job.waiting {
            done(result.as_ref().map(|_| ()).map_err(clone_err));
        }
        for reply in job.replies {
            let _ = reply.send(result.as_ref().map(|_| ()).map_err(clone_err));
        }
    }
}

/// The single writer: owns the active segment's tail.
struct Writer {
    shared: Arc<Shared>,
    /// The latest payload of each marker kind, written again at each segment start.
    sticky: BTreeMap<u8, Vec<u8>>,
    buf: Vec<u8>,
    /// The job being filled for the syncer.
    job: SyncJob,
    syncer: Option<Sender<SyncJob>>,
    janitor: Option<Sender<Vec<PathBuf>>>,
    /// Files of deleted segments kept for new ones.
    pool: Vec<PathBuf>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Op>, syncer: JoinHandle<()>, janitor: JoinHandle<()>) {
        while let Ok(first) = rx.recv() {
            let mut ops = vec![first];
            while let Ok(op) = rx.try_recv() {
                ops.push(op);
                if ops.len() >= 4096 {
                    break;
                }
            }
            self.handle(ops);
        }
        // Let the syncer and the janitor finish what they have, then stop.
        self.syncer.take();
        self.janitor.take();
        let _ = syncer.join();
        let _ = janitor.join();
    }

    /// Writes every queued append and hands the lot to the syncer.
    fn handle(&mut self, ops: Vec<Op>) {
        for op in ops {
            match op {
                Op::Append(batch, done) => {
                    self.job.records += batch.len();
                    if self.job.failed.is_none() {
                        match self.write(batch) {
                            Ok(n) => self.job.bytes += n,
                            Err(e) => self.job.failed = Some(e),
                        }
                    }
                    if let Some(done) = done {
                        self.job.waiting.push(done);
                    }
                }
                Op::Sync(reply) => self.job.replies.push(reply),
                Op::TruncateAfter(index, reply) => {
                    // Everything queued before the truncation is made durable first.
                    let r = self.drain().and_then(|_| self.truncate_after(index));
                    let _ = reply.send(r);
                }
                Op::Reset(next, reply) => {
                    let r = self.drain().and_then(|_| self.reset(next));
                    let _ = reply.send(r);
                }
                Op::DeleteBefore(index) => {
                    if let Err(e) = self.delete_before(index) {
                        tracing::warn!(error = %e, "could not delete old log segments");
                    }
                }
            }
        }
        self.hand_off();
    }

    /// Passes the current job to the syncer.
    fn hand_off(&mut self) {
        if self.job.is_empty() && self.job.failed.is_none() {
            return;
        }
        let job = std::mem::take(&mut self.job);
        if let Some(syncer) = &self.syncer
            && let Err(mpsc::SendError(job)) = syncer.send(job)
        {
            for done in job.waiting {
                done(Err(io::Error::other("log syncer has stopped")));
            }
        }
    }

    /// Waits until everything written so far is durable.
    fn drain(&mut self) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.job.replies.push(tx);
        self.hand_off();
        rx.recv()
            .map_err(|_| io::Error::other("log syncer has stopped"))?
    }

    /// Appends a batch to the active segment, rolling to a new one when it is full.
    /// Returns the bytes written.
    fn write(&mut self, mut batch: Vec<Record>) -> io::Result<usize> {
        for record in &batch {
            if record.kind != KIND_ENTRY {
                self.sticky.insert(record.kind, record.payload().to_vec());
            }
        }
        let mut written = 0;
        let mut i = 0;
        while i < batch.len() {
            let need_new = match lock(&self.shared.index).segments.last() {
                None => true,
                Some(seg) => seg.len >= self.shared.options.segment_bytes,
            };
            if need_new {
                self.roll()?;
            }
            // Fill the active segment up to its size limit (at least one record).
            let (file, seq, start_len, mut first_index, had_entries, mut next_entry) = {
                let idx = lock(&self.shared.index);
                let seg = idx.segments.last().expect("a segment after roll");
                (
                    seg.file.clone(),
                    seg.seq,
                    seg.len,
                    seg.first_index,
                    !seg.offsets.is_empty(),
                    idx.next_entry,
                )
            };
            self.buf.clear();
            let mut offsets = Vec::new();
            // Bytes of this segment written so far in this round, directly or via `buf`.
            let mut flushed = 0u64;
            let mut first_in_segment = true;
            while i < batch.len() {
                let pos = start_len + flushed + self.buf.len() as u64;
                if !first_in_segment && pos >= self.shared.options.segment_bytes {
                    break;
                }
                first_in_segment = false;
                let record = &mut batch[i];
                if record.kind == KIND_ENTRY {
                    if let Some(expected) = next_entry
                        && record.index != expected
                    {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "append of entry {} leaves a gap: the log expects {expected}",
                                record.index
                            ),
                        ));
                    }
                    if !had_entries && offsets.is_empty() {
                        first_index = record.index;
                    }
                    offsets.push(pos);
                    next_entry = Some(record.index + 1);
                }
                record.seal(seq);
                if record.frame.len() >= DIRECT_WRITE {
                    if !self.buf.is_empty() {
                        file.write_all_at(&self.buf, start_len + flushed)?;
                        flushed += self.buf.len() as u64;
                        self.buf.clear();
                    }
                    file.write_all_at(&record.frame, start_len + flushed)?;
                    flushed += record.frame.len() as u64;
                } else {
                    self.buf.extend_from_slice(&record.frame);
                }
                i += 1;
            }
            file.write_all_at(&self.buf, start_len + flushed)?;
            flushed += self.buf.len() as u64;
            written += flushed as usize;
            self.job.touch(&file);
            let mut idx = lock(&self.shared.index);
            idx.next_entry = next_entry;
            let seg = idx.segments.last_mut().expect("active segment");
            seg.first_index = first_index;
            seg.offsets.extend(offsets);
            seg.len = start_len + flushed;
        }
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok(written)
    }

    /// Closes the active segment with an end record and starts a new one. The syncer syncs
    /// the old one with the next job: it is in the job's files, before the new one.
    fn roll(&mut self) -> io::Result<()> {
        let active = lock(&self.shared.index)
            .segments
            .last()
            .map(|seg| (seg.seq, seg.file.clone(), seg.len));
        let seq = match active {
            Some((seq, file, len)) => {
                let mut end = Record::new(KIND_END, 0, &[]);
                end.seal(seq);
                file.write_all_at(&end.frame, len)?;
                self.job.touch(&file);
                if let Some(seg) = lock(&self.shared.index).segments.last_mut() {
                    seg.sealed = true;
                }
                seq + 1
            }
            None => 0,
        };
        self.create_segment(seq)
    }

    /// A new segment file: a recycled one when there is one (its blocks are reused), else
    /// a fresh one.
    fn create_segment(&mut self, seq: u64) -> io::Result<()> {
        let path = segment_path(&self.shared.dir, seq);
        let recycled = match self.pool.pop() {
            Some(free) => match fs::rename(&free, &path) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(path = %free.display(), error = %e, "cannot reuse a segment file");
                    false
                }
            },
            None => false,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(!recycled)
            .open(&path)?;
        let mut buf = Vec::new();
        for (&kind, payload) in &self.sticky {
            let mut record = Record::new(kind, 0, payload);
            record.seal(seq);
            buf.extend_from_slice(&record.frame);
        }
        file.write_all_at(&buf, 0)?;
        let file = Arc::new(file);
        // The new file and its directory entry become durable with the next sync, before
        // anything written to it is acknowledged; the writer does not wait for that here.
        self.job.touch(&file);
        self.job.dir = Some(self.shared.dir.clone());
        let mut idx = lock(&self.shared.index);
        let first_index = idx.next_entry.unwrap_or(0);
        idx.segments.push(Segment {
            seq,
            first_index,
            path,
            file,
            offsets: Vec::new(),
            len: buf.len() as u64,
            sealed: false,
        });
        Ok(())
    }

    fn truncate_after(&mut self, index: u64) -> io::Result<()> {
        let mut removed = Vec::new();
        {
            let mut idx = lock(&self.shared.index);
            // Whole segments whose entries all come after `index` go (but one stays).
            while idx.segments.len() > 1 {
                let seg = idx.segments.last().expect("non-empty");
                if !seg.offsets.is_empty() && seg.first_index > index {
                    removed.push(idx.segments.pop().expect("last").path);
                } else if seg.offsets.is_empty() {
                    // An entry-less segment after the cut point holds only markers.
                    removed.push(idx.segments.pop().expect("last").path);
                } else {
                    break;
                }
            }
            if let Some(seg) = idx.segments.last_mut() {
                let mut cut = None;
                let keep = (index + 1).saturating_sub(seg.first_index) as usize;
                if !seg.offsets.is_empty() && keep < seg.offsets.len() {
                    cut = Some(seg.offsets[keep]);
                    seg.offsets.truncate(keep);
                }
                // The segment becomes the active one again: its end record goes.
                if cut.is_none() && seg.sealed {
                    cut = Some(seg.len);
                }
                if let Some(cut) = cut {
                    seg.file.set_len(cut)?;
                    seg.len = cut;
                    seg.sealed = false;
                }
            }
            idx.next_entry = Some(index + 1);
            if let Some(seg) = idx.segments.last_mut()
                && seg.offsets.is_empty()
            {
                seg.first_index = index + 1;
            }
        }
        for path in &removed {
            fs::remove_file(path)?;
        }
        self.rewrite_sticky()?;
        self.sync_active()?;
        if !removed.is_empty() {
            sync_dir(&self.shared.dir)?;
        }
        Ok(())
    }

    fn reset(&mut self, next: u64) -> io::Result<()> {
        let (removed, seq): (Vec<PathBuf>, u64) = {
            let mut idx = lock(&self.shared.index);
            let seq = idx.segments.last().map(|s| s.seq + 1).unwrap_or(0);
            idx.next_entry = Some(next);
            (idx.segments.drain(..).map(|s| s.path).collect(), seq)
        };
        // Create the new segment before removing the old ones, so a crash in between
        // leaves markers (and so the purge point) on disk.
        self.create_segment(seq)?;
        self.sync_active()?;
        sync_dir(&self.shared.dir)?;
        for path in &removed {
            fs::remove_file(path)?;
        }
        sync_dir(&self.shared.dir)
    }

    /// Writes the sticky markers again at the active tail (after a truncation cut them).
    fn rewrite_sticky(&mut self) -> io::Result<()> {
        if self.sticky.is_empty() {
            return Ok(());
        }
        let markers: Vec<Record> = self
            .sticky
            .iter()
            .map(|(&kind, payload)| Record::new(kind, 0, payload))
            .collect();
        self.write(markers).map(|_| ())
    }

    fn sync_active(&self) -> io::Result<()> {
        if !self.shared.options.fsync {
            return Ok(());
        }
        let file = lock(&self.shared.index)
            .segments
            .last()
            .map(|s| s.file.clone());
        match file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    fn delete_before(&mut self, index: u64) -> io::Result<()> {
        let removed: Vec<(u64, PathBuf)> = {
            let mut idx = lock(&self.shared.index);
            let mut n = 0;
            // A segment goes when every entry in it is below `index`; never the active one.
            while n + 1 < idx.segments.len() {
                let seg = &idx.segments[n];
                let below = match seg.last_index() {
                    Some(last) => last < index,
                    None => true,
                };
                if below {
                    n += 1;
                } else {
                    break;
                }
            }
            idx.segments.drain(..n).map(|s| (s.seq, s.path)).collect()
        };
        // A few files are kept to be reused by new segments; the rest are deleted by the
        // janitor, since unlinking large files can take long (the file system may discard
        // their blocks) and writes go on meanwhile. A crash in between leaves old,
        // already-purged segments, which recovery accepts.
        let mut doomed = Vec::new();
        for (seq, path) in removed {
            if self.pool.len() < POOL_MAX {
                let free = free_path(&self.shared.dir, seq);
                match fs::rename(&path, &free) {
                    Ok(()) => self.pool.push(free),
                    Err(_) => doomed.push(path),
                }
            } else {
                doomed.push(path);
            }
        }
        if !doomed.is_empty()
            && let Some(janitor) = &self.janitor
        {
            let _ = janitor.send(doomed);
        }
        Ok(())
    }
}

/// Deletes segment files handed to it, off the writer's path.
fn run_janitor(rx: Receiver<Vec<PathBuf>>) {
    while let Ok(paths) = rx.recv() {
        for path in paths {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not delete a log segment");
            }
        }
    }
}

fn clone_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, body: &str) -> Record {
        Record::new(KIND_ENTRY, index, body.as_bytes())
    }

    fn open(dir: &Path, segment_bytes: u64) -> (SegmentLog, Recovered) {
        SegmentLog::open(
            dir,
            LogOptions {
                segment_bytes,
                fsync: true,
            },
            None,
        )
        .expect("open")
    }

    fn append_sync(log: &SegmentLog, records: Vec<Record>) {
        let (tx, rx) = mpsc::channel();
        log.append(records, Some(Box::new(move |r| tx.send(r).expect("send"))))
            .expect("append");
        rx.recv().expect("durable").expect("ok");
    }

    #[test]
    fn appends_read_back_across_segments_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, rec) = open(dir.path(), 100);
            assert!(rec.entries.is_none());
            for i in 1..=50 {
                append_sync(&log, vec![entry(i, &format!("entry-{i}"))]);
            }
            assert!(log.segment_count() > 5);
            assert_eq!(log.read(7).expect("read").expect("present"), b"entry-7");
        }
        let (log, rec) = open(dir.path(), 100);
        assert_eq!(rec.entries, Some((1, 50)));
        assert!(rec.truncated.is_none());
        for i in 1..=50 {
            assert_eq!(
                log.read(i).expect("read").expect("present"),
                format!("entry-{i}").as_bytes()
            );
        }
        assert!(log.read(51).expect("read").is_none());
    }

    #[test]
    fn markers_survive_segment_deletion_and_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, _) = open(dir.path(), 64);
            append_sync(&log, vec![Record::new(3, 0, b"purged-at-0")]);
            for i in 1..=20 {
                append_sync(&log, vec![entry(i, "x")]);
            }
            log.delete_before(15).expect("delete");
            log.truncate_after(17).expect("truncate");
            log.sync().expect("sync");
        }
        let (log, rec) = open(dir.path(), 64);
        assert_eq!(
            rec.markers.get(&3).map(Vec::as_slice),
            Some(&b"purged-at-0"[..])
        );
        let (first, last) = rec.entries.expect("entries");
        assert!(first > 1 && first <= 15, "first {first}");
        assert_eq!(last, 17);
        assert!(log.read(18).expect("read").is_none());
        append_sync(&log, vec![entry(18, "new")]);
        assert_eq!(log.read(18).expect("read").expect("present"), b"new");
    }

    #[test]
    fn a_torn_tail_is_cut_and_never_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, _) = open(dir.path(), 1 << 20);
            for i in 1..=10 {
                append_sync(&log, vec![entry(i, "payload")]);
            }
        }
        let seg = segment_path(dir.path(), 0);
        let len = fs::metadata(&seg).expect("meta").len();
        // A crash in the middle of writing entry 10: half of it reached the disk.
        let f = OpenOptions::new().write(true).open(&seg).expect("open");
        f.set_len(len - 5).expect("truncate");
        drop(f);
        let (log, rec) = open(dir.path(), 1 << 20);
        assert_eq!(rec.entries, Some((1, 9)));
        assert!(rec.truncated.is_some());
        assert!(log.read(10).expect("read").is_none());
        append_sync(&log, vec![entry(10, "again")]);
        assert_eq!(log.read(10).expect("read").expect("present"), b"again");
    }

    #[test]
    fn a_corrupt_record_ends_the_log_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, _) = open(dir.path(), 1 << 20);
            for i in 1..=10 {
                append_sync(&log, vec![entry(i, "payload")]);
            }
        }
        let seg = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&seg).expect("read");
        // Flip a byte in the payload of entry 6.
        let record_len = HEADER_LEN + "payload".len();
        bytes[5 * record_len + HEADER_LEN + 2] ^= 0xff;
        fs::write(&seg, &bytes).expect("write");
        let (log, rec) = open(dir.path(), 1 << 20);
        assert_eq!(rec.entries, Some((1, 5)));
        assert!(log.read(6).expect("read").is_none());
    }

    #[test]
    fn deleted_segments_are_reused_and_their_old_records_never_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let count_files = |ext: &str| {
            fs::read_dir(dir.path())
                .expect("dir")
                .filter(|e| {
                    e.as_ref()
                        .map(|e| e.path().extension().is_some_and(|x| x == ext))
                        .unwrap_or(false)
                })
                .count()
        };
        {
            let (log, _) = open(dir.path(), 256);
            for i in 1..=100 {
                append_sync(&log, vec![entry(i, &format!("first-life-{i:04}"))]);
            }
            log.delete_before(80).expect("delete");
            log.sync().expect("sync");
            assert!(count_files("free") > 0, "deleted segments wait for reuse");
            let free_before = count_files("free");
            for i in 101..=110 {
                append_sync(&log, vec![entry(i, &format!("second-life-{i:04}"))]);
            }
            log.sync().expect("sync");
            assert!(
                count_files("free") < free_before,
                "new segments took spare files"
            );
        }
        let (log, rec) = open(dir.path(), 256);
        let (first, last) = rec.entries.expect("entries");
        assert_eq!(last, 110, "nothing from a reused file's old content");
        assert!(first <= 80);
        for i in first..=last {
            let payload = log.read(i).expect("read").expect("present");
            let text = String::from_utf8(payload).expect("utf8");
            assert!(
                text.ends_with(&format!("{i:04}")),
                "entry {i} read back as {text}"
            );
        }
        // And it goes on from there.
        append_sync(&log, vec![entry(111, "third")]);
        assert_eq!(log.read(111).expect("read").expect("present"), b"third");
    }

    #[test]
    fn an_older_segment_without_its_end_record_ends_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, _) = open(dir.path(), 100);
            for i in 1..=30 {
                append_sync(&log, vec![entry(i, "payload")]);
            }
        }
        // The end record of the second segment never reached the disk.
        let second = segment_path(dir.path(), 1);
        let len = fs::metadata(&second).expect("meta").len();
        let f = OpenOptions::new().write(true).open(&second).expect("open");
        f.set_len(len - HEADER_LEN as u64).expect("cut");
        drop(f);
        let (_log, rec) = open(dir.path(), 100);
        let (_, last) = rec.entries.expect("entries");
        assert!(last < 30, "the log ends in the second segment, at {last}");
        assert!(
            !segment_path(dir.path(), 2).exists(),
            "later segments are gone"
        );
    }

    #[test]
    fn a_gap_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), 1 << 20);
        append_sync(&log, vec![entry(1, "a")]);
        let (tx, rx) = mpsc::channel();
        log.append(
            vec![entry(3, "c")],
            Some(Box::new(move |r| tx.send(r).expect("send"))),
        )
        .expect("queued");
        assert!(rx.recv().expect("answer").is_err());
    }

    #[test]
    fn concurrent_appends_share_a_sync() {
        struct Count(
            std::sync::atomic::AtomicUsize,
            std::sync::atomic::AtomicUsize,
        );
        impl CommitObserver for Count {
            fn committed(&self, records: usize, _: usize, _: Duration) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.1
                    .fetch_add(records, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let count = Arc::new(Count(Default::default(), Default::default()));
        let (log, _) =
            SegmentLog::open(dir.path(), LogOptions::default(), Some(count.clone())).expect("open");
        let (tx, rx) = mpsc::channel();
        for i in 1..=1000 {
            let tx = tx.clone();
            log.append(
                vec![entry(i, "m")],
                Some(Box::new(move |r| tx.send(r).expect("send"))),
            )
            .expect("append");
        }
        for _ in 0..1000 {
            rx.recv().expect("answer").expect("ok");
        }
        let syncs = count.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(count.1.load(std::sync::atomic::Ordering::Relaxed), 1000);
        assert!(
            syncs < 1000,
            "{syncs} syncs for 1000 appends: no group commit"
        );
    }
}
