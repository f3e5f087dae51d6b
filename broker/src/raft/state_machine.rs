//! openraft's state machine: applies committed commands to the queues, answers each, and
//! persists itself as snapshots.
//!
//! The state (queues, their indexes, the clock) lives in memory; bodies stay in the log.
//! A snapshot writes the state to a file, after which openraft may purge the log below
//! it; on restart the snapshot is loaded and the log after it replayed. Each snapshot
//! also tells the log store the oldest place any queue still refers to, below which
//! segments may be deleted.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use futures::TryStreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use sluice_client::{ApiError, ErrorCode};
use tokio::sync::Notify;

use super::command::{Command, Request, Response, Responses};
use super::log_store::LogStore;
use super::{Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::queue::{Home, Queues};
use crate::topic::Topics;

/// A snapshot as openraft passes it around: the encoded state and, when it comes from
/// another node, the log entries (postcard-encoded, oldest first, from the snapshot's
/// floor to its last entry) that its messages live in.
#[derive(Default)]
pub struct SnapshotData {
    pub state: Vec<u8>,
    pub entries: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotData")
            .field("state_bytes", &self.state.len())
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// What the state machine holds.
#[derive(Debug, Default)]
pub struct SmState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// The largest entry time applied: the state machine's clock.
    pub clock_ms: u64,
    pub queues: Queues,
    pub topics: Topics,
    /// Nodes no leadership should go to (kept by the metadata group).
    pub drained: BTreeSet<u64>,
    /// Nodes leaving the cluster, which data groups move their voters off.
    pub retiring: BTreeSet<u64>,
}

/// The encoded body of a snapshot.
#[derive(Deserialize)]
struct SnapshotBody {
    clock_ms: u64,
    queues: Queues,
    topics: Topics,
    drained: BTreeSet<u64>,
    retiring: BTreeSet<u64>,
}

/// The same, borrowed from the state, for encoding without a copy.
#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    clock_ms: u64,
    queues: &'a Queues,
    topics: &'a Topics,
    drained: &'a BTreeSet<u64>,
    retiring: &'a BTreeSet<u64>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    /// The oldest log index the state's messages live in.
    floor: u64,
    last_log_id: Option<LogId>,
    membership: StoredMembership,
}

/// Receivers waiting (long polling) for messages in a queue.
#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    /// The notifier of a queue; call [`Waiters::release`] with it when done waiting.
    pub fn get(&self, queue: &str) -> Arc<Notify> {
        lock(&self.map)
            .entry(queue.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    pub fn release(&self, queue: &str, notify: Arc<Notify>) {
        let mut map = lock(&self.map);
        // One count is ours, one the map's: nobody else waits.
        if Arc::strong_count(&notify) <= 2 {
            map.remove(queue);
        }
    }

    fn notify(&self, queue: &str) {
        if let Some(n) = lock(&self.map).get(queue) {
            n.notify_waiters();
        }
    }

    fn notify_all(&self) {
        for n in lock(&self.map).values() {
            n.notify_waiters();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state machine of one group. Cheap to clone: clones share the state, so the HTTP
/// layer reads what apply writes.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    state: RwLock<SmState>,
    waiters: Waiters,
    log: LogStore,
    last_snapshot: Mutex<Option<(SnapshotMeta, Instant)>>,
    home: Home,
}

impl StateMachine {
    /// A state machine whose snapshots live in `dir`; it starts empty, and openraft installs
    /// the latest snapshot on start.
    pub fn new(dir: &Path, log: LogStore, home: Home) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut state = SmState::default();
        state.queues.set_home(home);
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                home,
                state: RwLock::new(state),
                waiters: Waiters::default(),
                log,
                last_snapshot: Mutex::new(None),
            }),
        })
    }

    /// Reads the state (briefly: apply waits while this is held).
    pub fn read(&self) -> RwLockReadGuard<'_, SmState> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, SmState> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn waiters(&self) -> &Waiters {
        &self.inner.waiters
    }

    fn snapshot_path(&self) -> PathBuf {
        self.inner.dir.join("snapshot")
    }

    fn encode(state: &SmState) -> io::Result<(SnapshotMeta, Vec<u8>)> {
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
        };
        let header = postcard::to_allocvec(&SnapshotHeader {
            floor: Self::retain_floor(state),
            last_log_id: state.last_applied,
            membership: state.membership.clone(),
        })
        .map_err(io::Error::other)?;
        let mut data = Vec::with_capacity(header.len() + 64);
        data.extend_from_slice(&(header.len() as u32).to_le_bytes());
        data.extend_from_slice(&header);
        postcard::to_io(
            &SnapshotBodyRef {
                clock_ms: state.clock_ms,
                queues: &state.queues,
                topics: &state.topics,
                drained: &state.drained,
                retiring: &state.retiring,
            },
            &mut data,
        )
        .map_err(io::Error::other)?;
        let crc = crc32c::crc32c(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        Ok((meta, data))
    }

    /// The oldest log index an encoded snapshot's messages live in.
    pub fn snapshot_floor(data: &[u8]) -> io::Result<u64> {
        Self::decode_header(data).map(|(header, _)| header.floor)
    }

    /// Checks a snapshot's checksum and reads its header; returns where the body starts.
    fn decode_header(data: &[u8]) -> io::Result<(SnapshotHeader, usize)> {
        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        if data.len() < 8 {
            return Err(bad("snapshot too short".into()));
        }
        let (body, crc) = data.split_at(data.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(bad("snapshot checksum mismatch".into()));
        }
        let header_len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
        let header_end = 4usize
            .checked_add(header_len)
            .filter(|&e| e <= body.len())
            .ok_or_else(|| bad("snapshot header length out of range".into()))?;
        let header: SnapshotHeader = postcard::from_bytes(&body[4..header_end])
            .map_err(|e| bad(format!("snapshot header: {e}")))?;
        Ok((header, header_end))
    }

    fn decode(data: &[u8]) -> io::Result<(SnapshotHeader, SnapshotBody)> {
        let (header, body_start) = Self::decode_header(data)?;
        let body: SnapshotBody =
            postcard::from_bytes(&data[body_start..data.len() - 4]).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("snapshot body: {e}"))
            })?;
        Ok((header, body))
    }

    /// Persists a snapshot file atomically, then lets the log drop what it no longer needs.
    /// Hands the data back, so it is never copied.
    async fn persist(&self, meta: &SnapshotMeta, data: Vec<u8>, floor: u64) -> io::Result<Vec<u8>> {
        let path = self.snapshot_path();
        let dir = self.inner.dir.clone();
        let data = tokio::task::spawn_blocking(move || -> io::Result<Vec<u8>> {
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, &data)?;
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&dir)?.sync_all()?;
            Ok(data)
        })
        .await
        .map_err(io::Error::other)??;
        *lock(&self.inner.last_snapshot) = Some((meta.clone(), Instant::now()));
        self.inner.log.set_retain_floor(floor)?;
        Ok(data)
    }

    /// The lowest log index the state refers to (messages' bodies) or needs (replay).
    fn retain_floor(state: &SmState) -> u64 {
        let next = state.last_applied.map(|l| l.index + 1).unwrap_or(0);
        [state.queues.oldest_loc(), state.topics.oldest_loc()]
            .into_iter()
            .flatten()
            .map(|loc| loc.index())
            .fold(next, u64::min)
    }
}

/// The metadata group's marks on nodes.
struct NodeMarks<'a> {
    drained: &'a mut BTreeSet<u64>,
    retiring: &'a mut BTreeSet<u64>,
}

fn mark(set: &mut BTreeSet<u64>, node: u64, on: bool) {
    if on {
        set.insert(node);
    } else {
        set.remove(&node);
    }
}

/// Applies one command at `now` (the entry's time) from the entry at `index`, whose sends
/// number their messages from `first_slot`.
fn execute(
    queues: &mut Queues,
    topics: &mut Topics,
    nodes: &mut NodeMarks<'_>,
    now: u64,
    index: u64,
    first_slot: usize,
    command: &Command,
) -> Response {
    let result: Result<Response, ApiError> = match command {
        Command::PutQueue { queue, update } => queues
            .put(now, queue, update)
            .map(|created| Response::QueuePut { created }),
        Command::DeleteQueue { queue } => queues.delete(queue).map(|_| Response::Done),
        Command::PurgeQueue { queue } => queues.purge(queue).map(Response::Purged),
        Command::TagQueue { queue, set, remove } => {
            queues.tag(queue, set, remove).map(|_| Response::Done)
        }
        Command::Send {
            queue,
            messages,
            key,
        } => queues
            .send(now, queue, index, first_slot, messages, *key)
            .map(Response::Sent),
        Command::Receive {
            queue,
            max,
            visibility_ms,
        } => queues
            .receive(now, queue, *max as usize, *visibility_ms)
            .map(Response::Received),
        Command::Ack { queue, receipts } => queues.ack(now, queue, receipts).map(Response::Acked),
        Command::ChangeVisibility { queue, entries } => queues
            .change_visibility(now, queue, entries, false)
            .map(Response::Visibility),
        Command::ExtendVisibility { queue, entries } => queues
            .change_visibility(now, queue, entries, true)
            .map(Response::Visibility),
        Command::StartRedrive {
            queue,
            max_per_second,
        } => queues
            .start_redrive(now, queue, *max_per_second)
            .map(Response::Redrive),
        Command::RedriveStep { queue, task, max } => queues
            .redrive_step(now, queue, *task, *max as usize)
            .map(Response::Redrive),
        Command::CancelRedrive { queue } => {
            queues.cancel_redrive(now, queue).map(Response::Redrive)
        }
        Command::Tick => {
            queues.tick(now);
            topics.tick(now);
            Ok(Response::Done)
        }
        Command::PutTopic { topic, update } => topics
            .put(now, topic, update)
            .map(|created| Response::QueuePut { created }),
        Command::DeleteTopic { topic } => topics.delete(topic).map(|_| Response::Done),
        Command::Publish {
            topic,
            messages,
            key,
        } => topics
            .publish(now, topic, index, first_slot, messages, *key, queues)
            .map(Response::Sent),
        Command::PutSubscription {
            topic,
            subscription,
            config,
        } => topics
            .put_subscription(now, topic, subscription, config.clone(), queues)
            .map(|created| Response::QueuePut { created }),
        Command::DeleteSubscription {
            topic,
            subscription,
        } => topics
            .delete_subscription(topic, subscription)
            .map(|_| Response::Done),
        Command::CommitCursor {
            topic,
            subscription,
            device,
            position,
        } => topics
            .commit_cursor(topic, subscription, device, *position)
            .map(|_| Response::Done),
        Command::ReportDelivery {
            topic,
            subscription,
            report,
        } => topics
            .report(now, topic, subscription, report, queues)
            .map(|_| Response::Done),
        Command::SyncPartition {
            topic,
            topic_id,
            config,
            subscriptions,
        } => Ok(Response::QueuePut {
            created: topics.sync_partition(now, topic, *topic_id, config, subscriptions),
        }),
        Command::Transfer { from, items } => {
            queues.accept_transfer(now, index, first_slot, *from, items);
            Ok(Response::Done)
        }
        Command::OutboxShipped { upto } => {
            queues.outbox.shipped(*upto);
            Ok(Response::Done)
        }
        Command::SetDrained { node, drained } => {
            mark(nodes.drained, *node, *drained);
            Ok(Response::Done)
        }
        Command::SetRetiring { node, retiring } => {
            mark(nodes.retiring, *node, *retiring);
            Ok(Response::Done)
        }
    };
    result.unwrap_or_else(Response::Failed)
}

/// Who to wake after a command: a queue, everyone, or no one.
enum Wake<'a> {
    Queue(&'a str),
    All,
    None,
}

fn wakes(command: &Command) -> Wake<'_> {
    match command {
        Command::Send { queue, .. }
        | Command::ChangeVisibility { queue, .. }
        | Command::ExtendVisibility { queue, .. } => Wake::Queue(queue),
        Command::DeleteQueue { queue } => Wake::Queue(queue),
        // Receives may dead-letter into another queue; ticks and redrives make messages
        // visible anywhere; a publish reaches subscribed queues, pulls and push workers.
        Command::Receive { .. }
        | Command::Tick
        | Command::RedriveStep { .. }
        | Command::Publish { .. }
        | Command::Transfer { .. }
        | Command::ReportDelivery { .. } => Wake::All,
        _ => Wake::None,
    }
}

impl SmState {
    fn apply(&mut self, entry: &Entry) -> Responses {
        if self
            .last_applied
            .is_some_and(|applied| entry.log_id <= applied)
        {
            return Responses::default();
        }
        self.last_applied = Some(entry.log_id);
        match &entry.payload {
            EntryPayload::Blank => Responses::default(),
            EntryPayload::Membership(m) => {
                self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                Responses::default()
            }
            EntryPayload::Normal(Request { time_ms, commands }) => {
                self.clock_ms = self.clock_ms.max(*time_ms);
                let mut slot = 0;
                let responses = commands
                    .iter()
                    .map(|command| {
                        let response = execute(
                            &mut self.queues,
                            &mut self.topics,
                            &mut NodeMarks {
                                drained: &mut self.drained,
                                retiring: &mut self.retiring,
                            },
                            self.clock_ms,
                            entry.log_id.index,
                            slot,
                            command,
                        );
                        slot += command.slots();
                        response
                    })
                    .collect();
                Responses(responses)
            }
        }
    }
}

/// Takes a snapshot of the state on the state machine's task, and writes it on another.
pub struct SnapshotBuilder {
    sm: StateMachine,
    meta: SnapshotMeta,
    data: Vec<u8>,
    floor: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let data = std::mem::take(&mut self.data);
        let state = self.sm.persist(&self.meta, data, self.floor).await?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: SnapshotData {
                state,
                entries: Vec::new(),
            },
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let mut batch = Vec::new();
        while let Some(item) = entries.try_next().await? {
            batch.push(item);
        }
        let mut answers = Vec::with_capacity(batch.len());
        let mut wake_all = false;
        let mut wake: Vec<String> = Vec::new();
        {
            let mut state = self.write();
            for (entry, responder) in batch {
                let response = state.apply(&entry);
                if let EntryPayload::Normal(request) = &entry.payload {
                    for command in &request.commands {
                        match wakes(command) {
                            Wake::Queue(q) => wake.push(q.to_string()),
                            Wake::All => wake_all = true,
                            Wake::None => {}
                        }
                    }
                }
                answers.push((responder, response));
            }
        }
        for (responder, response) in answers {
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        if wake_all {
            self.inner.waiters.notify_all();
        } else {
            wake.dedup();
            for queue in wake {
                self.inner.waiters.notify(&queue);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        let started = Instant::now();
        let state = self.read();
        let floor = Self::retain_floor(&state);
        // Encoding a state we hold in memory cannot fail but for a serializer bug; an
        // empty body then fails loudly on install rather than here.
        let (meta, data) = Self::encode(&state).unwrap_or_else(|e| {
            tracing::error!(error = %e, "encoding a snapshot failed");
            (
                SnapshotMeta {
                    last_log_id: state.last_applied,
                    last_membership: state.membership.clone(),
                },
                Vec::new(),
            )
        });
        tracing::info!(
            bytes = data.len(),
            ms = started.elapsed().as_millis() as u64,
            last = ?meta.last_log_id.map(|l| l.index),
            "snapshot encoded"
        );
        SnapshotBuilder {
            sm: self.clone(),
            meta,
            data,
            floor,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let SnapshotData {
            state: data,
            entries,
        } = snapshot;
        let (header, body) = Self::decode(&data)?;
        if header.last_log_id != meta.last_log_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot data is of {:?}, its meta says {:?}",
                    header.last_log_id, meta.last_log_id
                ),
            ));
        }
        // A snapshot from another node brings the entries its messages live in; they are
        // kept beside the log, which openraft restarts after the snapshot.
        if !entries.is_empty() {
            self.inner.log.install_archive(&entries)?;
        }
        let floor = {
            let mut state = self.write();
            *state = SmState {
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
                clock_ms: body.clock_ms,
                queues: body.queues,
                topics: body.topics,
                drained: body.drained,
                retiring: body.retiring,
            };
            state.queues.set_home(self.inner.home);
            Self::retain_floor(&state)
        };
        let already_current = lock(&self.inner.last_snapshot)
            .as_ref()
            .is_some_and(|(m, _)| m == meta);
        let on_disk = !already_current
            && fs::read(self.snapshot_path())
                .ok()
                .and_then(|d| Self::decode_header(&d).ok())
                .is_some_and(|(h, _)| h.last_log_id == meta.last_log_id);
        if already_current || on_disk {
            *lock(&self.inner.last_snapshot) = Some((meta.clone(), Instant::now()));
            self.inner.log.set_retain_floor(floor)?;
        } else {
            self.persist(meta, data, floor).await?;
        }
        self.inner.waiters.notify_all();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let data = match fs::read(self.snapshot_path()) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let (header, _) = Self::decode_header(&data)?;
        Ok(Some(Snapshot {
            meta: SnapshotMeta {
                last_log_id: header.last_log_id,
                last_membership: header.membership,
            },
            snapshot: SnapshotData {
                state: data,
                entries: Vec::new(),
            },
        }))
    }
}

/// An answer of the wrong kind: a bug, reported as an internal error.
pub fn unexpected(response: &Response) -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        format!("unexpected state machine answer {response:?}"),
    )
}
