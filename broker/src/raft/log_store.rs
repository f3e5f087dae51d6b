//! openraft's log storage over the segmented log: entries are encoded with postcard, the
//! vote lives in its own small file, and the committed and purged log ids ride in the log
//! as marker records.
//!
//! The log is also where message bodies live: a queue refers to its messages by place in
//! this log (see `queue::ids`). So purging (which openraft asks for after a snapshot) only
//! hides entries from openraft; segments are deleted once no message refers to them
//! (below the *retention floor* the state machine reports with each snapshot).
//!
//! A snapshot installed from another node comes with the entries its messages live in;
//! they go to an *archive*, a second segmented log beside the first, read when the main
//! log does not hold an entry. openraft's view of the main log is untouched by it.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::fs;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, OptionalSend};

use super::command::{Command, Request};
use super::{Entry, LogId, TypeConfig, Vote};
use crate::queue::ids::MsgLoc;
use crate::queue::message::NewMessage;
use crate::store::log::{CommitObserver, KIND_ENTRY, LogOptions, Record, SegmentLog};

const MARKER_COMMITTED: u8 = 2;
const MARKER_PURGED: u8 = 3;
/// Entries kept decoded in memory after they are durable, for replication, apply and
/// reading bodies of recent messages.
const CACHE_BYTES: usize = 32 << 20;
/// Older entries read back from disk, kept decoded for the next message of the batch.
const READ_CACHE_ENTRIES: usize = 256;

/// A message as the log holds it: a view into the (shared) entry that carried it.
pub struct StoredMessage {
    entry: Arc<Entry>,
    time_ms: u64,
    /// Which send of the entry, and which of its messages.
    command: usize,
    at: usize,
}

impl StoredMessage {
    /// When the send was proposed, ms since the epoch.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// The topic the message was published to (whichever partition holds it); `None` for
    /// a message sent to a queue.
    pub fn topic(&self) -> Option<&str> {
        let EntryPayload::Normal(request) = &self.entry.payload else {
            return None;
        };
        match &request.commands[self.command] {
            Command::Publish { topic, .. } => Some(crate::topic::partition::topic_of(topic)),
            Command::Transfer { items, .. } => items[self.at].topic.as_deref(),
            _ => None,
        }
    }

    pub fn message(&self) -> &NewMessage {
        // `LogStore::message` made this view only after finding the message here.
        let EntryPayload::Normal(request) = &self.entry.payload else {
            unreachable!("a stored message lives in a normal entry")
        };
        match &request.commands[self.command] {
            Command::Send { messages, .. } | Command::Publish { messages, .. } => {
                &messages[self.at]
            }
            Command::Transfer { items, .. } => &items[self.at].message,
            _ => unreachable!("a stored message lives in a send, a publish or a transfer"),
        }
    }
}

/// Which send of a request holds the message in `slot`, and where in it.
fn find_slot(request: &Request, slot: usize) -> Option<(usize, usize)> {
    let mut first = 0;
    for (i, command) in request.commands.iter().enumerate() {
        let n = command.slots();
        if slot < first + n {
            return Some((i, slot - first));
        }
        first += n;
    }
    None
}

/// The log store of one Raft group. Cheap to clone: every clone shares the same log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    log: SegmentLog,
    /// Entries that came with an installed snapshot.
    archive: SegmentLog,
    state: Mutex<State>,
    read_cache: Mutex<ReadCache>,
}

struct State {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    last_log_id: Option<LogId>,
    /// Recent entries, `cache[0]` being entry `cache_first`.
    cache: VecDeque<(Arc<Entry>, usize)>,
    cache_first: u64,
    cache_bytes: usize,
    /// Every entry up to here is durable and may leave the cache.
    durable_upto: Option<u64>,
    /// The state machine's latest snapshot refers to nothing below this index.
    retain_floor: u64,
}

#[derive(Default)]
struct ReadCache {
    entries: HashMap<u64, Arc<Entry>>,
    order: VecDeque<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn decode_err(what: &str, e: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    fs::write(&tmp, bytes)?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

impl LogStore {
    /// Opens the log in `dir`, recovering what a crash left.
    pub fn open(
        dir: &Path,
        options: LogOptions,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let (log, recovered) = SegmentLog::open(&dir.join("log"), options.clone(), observer)?;
        let (archive, _) = SegmentLog::open(&dir.join("archive"), options, None)?;
        let vote = match fs::read(dir.join("vote")) {
            Ok(bytes) => Some(postcard::from_bytes(&bytes).map_err(|e| decode_err("vote", e))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let marker = |kind: u8| -> io::Result<Option<LogId>> {
            match recovered.markers.get(&kind) {
                Some(bytes) => postcard::from_bytes(bytes).map_err(|e| decode_err("marker", e)),
                None => Ok(None),
            }
        };
        let committed = marker(MARKER_COMMITTED)?;
        let last_purged = marker(MARKER_PURGED)?;
        let last_log_id = match recovered.entries {
            Some((_, last)) => {
                let bytes = log.read(last)?.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "last entry vanished")
                })?;
                let entry: Entry =
                    postcard::from_bytes(&bytes).map_err(|e| decode_err("entry", e))?;
                Some(entry.log_id)
            }
            None => None,
        };
        // Entries at or below the purge point are gone as far as openraft knows.
        let last_log_id = match (last_log_id, last_purged) {
            (Some(last), Some(purged)) if last.index <= purged.index => Some(purged),
            (None, purged) => purged,
            (last, _) => last,
        };
        let cache_first = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                log,
                archive,
                state: Mutex::new(State {
                    vote,
                    committed,
                    last_purged,
                    last_log_id,
                    cache: VecDeque::new(),
                    cache_first,
                    cache_bytes: 0,
                    durable_upto: last_log_id.map(|l| l.index),
                    retain_floor: 0,
                }),
                read_cache: Mutex::new(ReadCache::default()),
            }),
        })
    }

    /// One entry by index, from memory or disk, hidden or not by a purge.
    fn entry(&self, index: u64) -> io::Result<Option<Arc<Entry>>> {
        {
            let state = lock(&self.inner.state);
            if index >= state.cache_first
                && let Some((entry, _)) = state.cache.get((index - state.cache_first) as usize)
            {
                return Ok(Some(entry.clone()));
            }
        }
        if let Some(entry) = lock(&self.inner.read_cache).entries.get(&index) {
            return Ok(Some(entry.clone()));
        }
        let Some(bytes) = self.raw_entry(index)? else {
            return Ok(None);
        };
        let entry: Arc<Entry> =
            Arc::new(postcard::from_bytes(&bytes).map_err(|e| decode_err("entry", e))?);
        let mut rc = lock(&self.inner.read_cache);
        if rc.entries.insert(index, entry.clone()).is_none() {
            rc.order.push_back(index);
        }
        while rc.order.len() > READ_CACHE_ENTRIES {
            if let Some(old) = rc.order.pop_front() {
                rc.entries.remove(&old);
            }
        }
        Ok(Some(entry))
    }

    /// The message at `loc`, if the log still holds it.
    pub fn message(&self, loc: MsgLoc) -> io::Result<Option<StoredMessage>> {
        let Some(entry) = self.entry(loc.index())? else {
            return Ok(None);
        };
        let EntryPayload::Normal(request) = &entry.payload else {
            return Ok(None);
        };
        let time_ms = request.time_ms;
        Ok(
            find_slot(request, loc.slot()).map(|(command, at)| StoredMessage {
                entry: entry.clone(),
                time_ms,
                command,
                at,
            }),
        )
    }

    /// The state machine's latest snapshot needs nothing below `index`: segments wholly
    /// below it, and below the purge point, may go.
    pub fn set_retain_floor(&self, index: u64) -> io::Result<()> {
        let purged_next = {
            let mut state = lock(&self.inner.state);
            state.retain_floor = index;
            state.last_purged.map(|p| p.index + 1).unwrap_or(0)
        };
        self.inner.archive.delete_before(index)?;
        self.inner.log.delete_before(index.min(purged_next))
    }

    /// An entry's encoded bytes, from the log or the archive, purged or not.
    pub fn raw_entry(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        match self.inner.log.read(index)? {
            Some(bytes) => Ok(Some(bytes)),
            None => self.inner.archive.read(index),
        }
    }

    /// Replaces the archive with the entries of a snapshot from another node.
    pub fn install_archive(&self, entries: &[Vec<u8>]) -> io::Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let first: Entry =
            postcard::from_bytes(first).map_err(|e| decode_err("snapshot entry", e))?;
        self.inner.archive.reset(first.log_id.index)?;
        let records = entries
            .iter()
            .enumerate()
            .map(|(i, bytes)| Record::new(KIND_ENTRY, first.log_id.index + i as u64, bytes))
            .collect();
        self.inner.archive.append(records, None)?;
        self.inner.archive.sync()?;
        lock(&self.inner.read_cache).entries.clear();
        Ok(())
    }

    /// Bytes of log on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.inner.log.disk_bytes()
    }

    /// Stops the writer after syncing what it has.
    pub fn close(&self) {
        self.inner.log.close();
        self.inner.archive.close();
    }

    fn read_range<RB: RangeBounds<u64>>(&self, range: RB) -> io::Result<Vec<Entry>> {
        let (first, last) = {
            let state = lock(&self.inner.state);
            let Some(last) = state.last_log_id.map(|l| l.index) else {
                return Ok(Vec::new());
            };
            let purged_next = state.last_purged.map(|p| p.index + 1).unwrap_or(0);
            let cached = (!state.cache.is_empty()).then_some(state.cache_first);
            let written = self.inner.log.bounds().map(|(first, _)| first);
            let present = match (cached, written) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(last + 1),
            };
            (purged_next.max(present), last)
        };
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        }
        .max(first);
        let end = match range.end_bound() {
            Bound::Included(&e) => e.min(last),
            Bound::Excluded(&0) => return Ok(Vec::new()),
            Bound::Excluded(&e) => (e - 1).min(last),
            Bound::Unbounded => last,
        };
        if start > end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - start) as usize + 1);
        for index in start..=end {
            match self.entry(index)? {
                Some(entry) => out.push(Entry::clone(&entry)),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("log entry {index} is missing (log holds {first}..={last})"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        self.read_range(range)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(lock(&self.inner.state).vote)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        // Bound one replication read to what the cache budget allows.
        let end = end.min(start + 4096);
        self.read_range(start..end)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let state = lock(&self.inner.state);
        Ok(LogState {
            last_purged_log_id: state.last_purged,
            last_log_id: state.last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        // Everything appended before the vote is made durable first: writes stay ordered.
        self.inner.log.sync()?;
        let bytes = postcard::to_allocvec(vote).map_err(io::Error::other)?;
        write_atomically(&self.inner.dir, "vote", &bytes)?;
        lock(&self.inner.state).vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        lock(&self.inner.state).committed = committed;
        let payload = postcard::to_allocvec(&committed).map_err(io::Error::other)?;
        // Durable with the next group commit; a lost one only means replaying less.
        self.inner
            .log
            .append(vec![Record::new(MARKER_COMMITTED, 0, &payload)], None)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(lock(&self.inner.state).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Encode outside the lock; readers only wait for the pushes into the cache.
        let mut records = Vec::new();
        let mut cached = Vec::new();
        for entry in entries {
            let record = Record::build(KIND_ENTRY, entry.log_id.index, |buf| {
                postcard::to_io(&entry, buf)
                    .map(|_| ())
                    .map_err(io::Error::other)
            })?;
            cached.push((Arc::new(entry), record.payload().len()));
            records.push(record);
        }
        let last = cached.last().map(|(entry, _)| entry.log_id);
        {
            let mut state = lock(&self.inner.state);
            for (entry, bytes) in cached {
                let index = entry.log_id.index;
                if state.cache.is_empty() {
                    state.cache_first = index;
                }
                debug_assert_eq!(state.cache_first + state.cache.len() as u64, index);
                state.cache_bytes += bytes;
                state.cache.push_back((entry, bytes));
            }
            if last.is_some() {
                state.last_log_id = last;
            }
        }
        let Some(last) = last else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let inner = self.inner.clone();
        self.inner.log.append(
            records,
            Some(Box::new(move |result: io::Result<()>| {
                if result.is_ok() {
                    let mut state = lock(&inner.state);
                    state.durable_upto = Some(last.index);
                    evict(&mut state);
                }
                callback.io_completed(result);
            })),
        )
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let keep_upto = last_log_id.map(|l| l.index);
        {
            let mut state = lock(&self.inner.state);
            let keep = match keep_upto {
                Some(k) if k + 1 >= state.cache_first => (k + 1 - state.cache_first) as usize,
                _ => 0,
            };
            while state.cache.len() > keep {
                if let Some((_, bytes)) = state.cache.pop_back() {
                    state.cache_bytes -= bytes;
                }
            }
            if state.last_log_id.map(|l| l.index) > keep_upto {
                state.last_log_id = last_log_id.or(state.last_purged);
            }
            if state.durable_upto > keep_upto {
                state.durable_upto = keep_upto;
            }
        }
        lock(&self.inner.read_cache)
            .entries
            .retain(|&i, _| Some(i) <= keep_upto);
        match keep_upto {
            Some(index) => self.inner.log.truncate_after(index),
            None => {
                let next = lock(&self.inner.state)
                    .last_purged
                    .map(|p| p.index + 1)
                    .unwrap_or(0);
                self.inner.log.reset(next)
            }
        }
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let (beyond_last, floor) = {
            let mut state = lock(&self.inner.state);
            state.last_purged = Some(log_id);
            let beyond_last = state.last_log_id.is_none_or(|l| l.index <= log_id.index);
            if beyond_last {
                state.last_log_id = Some(log_id);
                state.cache.clear();
                state.cache_bytes = 0;
                state.cache_first = log_id.index + 1;
                state.durable_upto = Some(log_id.index);
            } else {
                while state.cache_first <= log_id.index {
                    match state.cache.pop_front() {
                        Some((_, bytes)) => {
                            state.cache_bytes -= bytes;
                            state.cache_first += 1;
                        }
                        None => {
                            state.cache_first = log_id.index + 1;
                            break;
                        }
                    }
                }
            }
            (beyond_last, state.retain_floor)
        };
        if beyond_last {
            // Nothing of the old log is wanted (a snapshot replaced it): start afresh,
            // with the purge point recorded in the new segment.
            lock(&self.inner.read_cache).entries.clear();
            self.inner.log.reset(log_id.index + 1)?;
        }
        let payload = postcard::to_allocvec(&Some(log_id)).map_err(io::Error::other)?;
        self.inner
            .log
            .append(vec![Record::new(MARKER_PURGED, 0, &payload)], None)?;
        if !beyond_last {
            self.inner.log.delete_before(floor.min(log_id.index + 1))?;
        }
        Ok(())
    }
}

/// Drops durable entries from the front of the cache while it is over budget.
fn evict(state: &mut State) {
    while state.cache_bytes > CACHE_BYTES {
        let durable = state.durable_upto.is_some_and(|d| state.cache_first <= d);
        if !durable {
            break;
        }
        match state.cache.pop_front() {
            Some((_, bytes)) => {
                state.cache_bytes -= bytes;
                state.cache_first += 1;
            }
            None => break,
        }
    }
}
