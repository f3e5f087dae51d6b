//! Queue semantics: every queue of a group and the operations on them. Pure and
//! deterministic: the replicated state machine calls these with each log entry's
//! timestamp and place, so every replica computes the same state.

pub mod config;
pub mod deque;
pub mod idempotency;
pub mod ids;
pub mod message;
pub mod outbox;
pub mod redrive;
pub mod state;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_client::{ApiError, ErrorCode};

use config::{ConfigUpdate, QueueConfig};
use ids::{MsgLoc, Receipt};
use message::NewMessage;
use outbox::Outbox;
use redrive::{RedriveTaskState, TaskState};
use state::{Delivery, Meta, Moved, QueueState, SendOutcome, Stage};

/// Redrive tasks kept per queue, the running one included.
const REDRIVE_HISTORY: usize = 10;
/// Tags a queue may carry, as in SQS.
pub const TAGS_MAX: usize = 50;

fn queue_not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::QueueNotFound,
        format!("queue {name} does not exist; create it with PUT /v1/queues/{name}"),
    )
}

/// Every queue of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queues {
    by_name: BTreeMap<String, QueueState>,
    names: HashMap<u64, String>,
    next_id: u64,
    redrives: BTreeMap<String, Vec<RedriveTaskState>>,
    next_task: u64,
    /// Moves into queues of other groups, and the moves into this group already applied.
    pub outbox: Outbox,
    /// Ids given to queues of other groups that dead letters here came from.
    foreign: BTreeMap<String, u64>,
    /// Which group this is, and where every other name lives (not part of the state:
    /// set when the state machine is made or a snapshot installed).
    #[serde(skip)]
    home: Home,
}

/// The group a state machine serves, and the cluster's layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Home {
    pub group: u32,
    pub placement: crate::placement::Placement,
}

impl Home {
    /// True when a queue of this name lives in another group.
    pub fn is_remote(&self, name: &str) -> bool {
        self.placement.group_of(name) != self.group
    }
}

impl Queues {
    pub fn set_home(&mut self, home: Home) {
        self.home = home;
    }

    pub fn home(&self) -> Home {
        self.home
    }

    pub fn get(&self, name: &str) -> Result<&QueueState, ApiError> {
        self.by_name.get(name).ok_or_else(|| queue_not_found(name))
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Result<&mut QueueState, ApiError> {
        self.by_name
            .get_mut(name)
            .ok_or_else(|| queue_not_found(name))
    }

    /// The name of the queue with this id, if it still exists.
    pub fn name_of(&self, id: u64) -> Option<&str> {
        self.names.get(&id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &QueueState> {
        self.by_name.values()
    }

    /// Queues in name order whose name starts with `prefix`, after `after`, up to `limit`;
    /// and whether more follow.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<&QueueState>, bool) {
        use std::ops::Bound;
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut page = Vec::new();
        let mut more = false;
        for (name, queue) in self.by_name.range((start, Bound::Unbounded)) {
            if !name.starts_with(prefix) {
                break;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(queue);
        }
        (page, more)
    }

    /// The oldest log place any queue still refers to.
    pub fn oldest_loc(&self) -> Option<MsgLoc> {
        self.by_name
            .values()
            .filter_map(QueueState::oldest_loc)
            .chain(self.outbox.oldest_loc())
            .min()
    }

    /// The earliest instant at which a [`Queues::tick`] has something to do.
    pub fn next_due(&self) -> Option<u64> {
        self.by_name.values().filter_map(QueueState::next_due).min()
    }

    fn check_dead_letter(&self, name: &str, config: &QueueConfig) -> Result<(), ApiError> {
        match &config.dead_letter {
            // Another group holds it: the HTTP layer checked it against that group.
            Some(dl) if !self.home.is_remote(&dl.queue) => {
                check_dead_letter_target(name, config, self.by_name.get(&dl.queue))
            }
            _ => Ok(()),
        }
    }

    /// Creates a queue or updates its mutable attributes; true when created.
    pub fn put(&mut self, now: u64, name: &str, update: &ConfigUpdate) -> Result<bool, ApiError> {
        match self.by_name.get(name) {
            Some(queue) => {
                let config = queue.config.change(update)?;
                self.check_dead_letter(name, &config)?;
                self.get_mut(name)?.config = config;
                Ok(false)
            }
            None => {
                let config = QueueConfig::create(update)?;
                self.check_dead_letter(name, &config)?;
                self.next_id += 1;
                let id = self.next_id;
                self.names.insert(id, name.to_string());
                self.by_name.insert(
                    name.to_string(),
                    QueueState::new(id, name.to_string(), config, now),
                );
                Ok(true)
            }
        }
    }

    pub fn delete(&mut self, name: &str) -> Result<(), ApiError> {
        let queue = self
            .by_name
            .remove(name)
            .ok_or_else(|| queue_not_found(name))?;
        self.names.remove(&queue.id);
        self.redrives.remove(name);
        Ok(())
    }

    pub fn purge(&mut self, name: &str) -> Result<u64, ApiError> {
        Ok(self.get_mut(name)?.purge())
    }

    /// Stores the messages of a send in the entry at log `index`, the first at slot
    /// `first_slot`; one outcome per message. A send whose idempotency `key` was seen
    /// within the window answers as the first did and stores nothing.
    pub fn send(
        &mut self,
        now: u64,
        name: &str,
        index: u64,
        first_slot: usize,
        messages: &[NewMessage],
        key: Option<u128>,
    ) -> Result<Vec<Result<SendOutcome, ApiError>>, ApiError> {
        let queue = self.get_mut(name)?;
        queue.idempotency.expire(now);
        if let Some(key) = key
            && let Some(recorded) = queue.idempotency.get(key)
        {
            let recorded = recorded.clone();
            return Ok(messages
                .iter()
                .enumerate()
                .map(|(i, msg)| match recorded.outcome(i) {
                    Some(outcome) => Ok(outcome),
                    None => check_message(&queue.config, msg).and(Err(ApiError::new(
                        ErrorCode::InvalidMessage,
                        "this message was refused when the send was first made",
                    ))),
                })
                .collect());
        }
        let outcomes: Vec<Result<SendOutcome, ApiError>> = messages
            .iter()
            .enumerate()
            .map(|(i, msg)| {
                check_message(&queue.config, msg)?;
                let loc = MsgLoc::new(index, first_slot + i);
                if queue.config.fifo && queue.config.content_dedup && msg.dedup.is_none() {
                    let mut with_id = msg.clone();
                    with_id.dedup = Some(content_dedup_id(&msg.body));
                    return Ok(queue.send(now, loc, &with_id));
                }
                Ok(queue.send(now, loc, msg))
            })
            .collect();
        if let Some(key) = key {
            let recorded = outcomes.iter().map(|o| o.as_ref().ok().cloned()).collect();
            queue.idempotency.record(now, key, recorded);
        }
        Ok(outcomes)
    }

    /// Receives from a queue; messages over their dead-letter receive count move first.
    pub fn receive(
        &mut self,
        now: u64,
        name: &str,
        max: usize,
        visibility_ms: u64,
    ) -> Result<Vec<Delivery>, ApiError> {
        let queue = self.get(name)?;
        let dead_letter = queue
            .config
            .dead_letter
            .as_ref()
            .filter(|dl| self.home.is_remote(&dl.queue) || self.by_name.contains_key(&dl.queue))
            .cloned();
        let source_id = queue.id;
        let queue = self.get_mut(name)?;
        let (deliveries, moved) = queue.receive(
            now,
            max,
            visibility_ms,
            dead_letter.as_ref().map(|dl| dl.max_receives),
        )?;
        if let Some(dl) = dead_letter
            .as_ref()
            .filter(|dl| self.home.is_remote(&dl.queue))
        {
            for m in moved {
                self.outbox
                    .push(&dl.queue, m.loc, Some(name.to_string()), false);
            }
        } else if let Some(dl) = dead_letter {
            let target = self.get_mut(&dl.queue)?;
            for mut m in moved {
                m.origin = Some(source_id);
                target.accept_moved(m);
            }
        }
        Ok(deliveries)
    }

    pub fn ack(
        &mut self,
        now: u64,
        name: &str,
        receipts: &[Receipt],
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        let queue = self.get_mut(name)?;
        Ok(receipts.iter().map(|r| queue.ack(now, r)).collect())
    }

    /// Sets and removes tags of a queue, all or none: at most [`TAGS_MAX`] remain.
    pub fn tag(
        &mut self,
        name: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), ApiError> {
        let queue = self.get_mut(name)?;
        let mut tags = queue.tags.clone();
        for key in remove {
            tags.remove(key);
        }
        tags.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        if tags.len() > TAGS_MAX {
            return Err(ApiError::new(
                ErrorCode::InvalidAttribute,
                format!(
                    "queue {name} would have {} tags; the limit is {TAGS_MAX}",
                    tags.len()
                ),
            ));
        }
        queue.tags = tags;
        Ok(())
    }

    /// Changes the visibility of in-flight messages; `keep_receipt` leaves each receipt
    /// valid (SQS), else each gets a new one and the old goes stale.
    pub fn change_visibility(
        &mut self,
        now: u64,
        name: &str,
        entries: &[(Receipt, u64)],
        keep_receipt: bool,
    ) -> Result<Vec<Result<Receipt, ApiError>>, ApiError> {
        let queue = self.get_mut(name)?;
        Ok(entries
            .iter()
            .map(|(r, ms)| queue.change_visibility(now, r, *ms, keep_receipt))
            .collect())
    }

    /// Applies every transition due by `now` in every queue.
    pub fn tick(&mut self, now: u64) {
        for queue in self.by_name.values_mut() {
            if queue.next_due().is_some_and(|due| due <= now) {
                queue.advance(now);
            }
        }
    }

    // ---- redrive ----

    pub fn redrive_tasks(&self, name: &str) -> Result<&[RedriveTaskState], ApiError> {
        self.get(name)?;
        Ok(self.redrives.get(name).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// Every running redrive, as (queue, task id, max per second).
    pub fn running_redrives(&self) -> Vec<(String, u64, Option<u32>)> {
        self.redrives
            .iter()
            .flat_map(|(name, tasks)| {
                tasks
                    .iter()
                    .filter(|t| t.state == TaskState::Running)
                    .map(|t| (name.clone(), t.id, t.max_per_second))
            })
            .collect()
    }

    pub fn start_redrive(
        &mut self,
        now: u64,
        name: &str,
        max_per_second: Option<u32>,
    ) -> Result<RedriveTaskState, ApiError> {
        let queue = self.get(name)?;
        let is_target = self.by_name.values().any(|q| {
            q.config
                .dead_letter
                .as_ref()
                .is_some_and(|dl| dl.queue == name)
        });
        let waiting = queue.dead_letter_count();
        if !is_target && waiting == 0 {
            return Err(ApiError::new(
                ErrorCode::RedriveConflict,
                format!(
                    "queue {name} is no queue's dead-letter queue and holds no dead-lettered messages"
                ),
            ));
        }
        let tasks = self.redrives.entry(name.to_string()).or_default();
        if tasks.iter().any(|t| t.state == TaskState::Running) {
            return Err(ApiError::new(
                ErrorCode::RedriveConflict,
                format!(
                    "a redrive of {name} is already running; cancel it or wait for it to finish"
                ),
            ));
        }
        self.next_task += 1;
        let task = RedriveTaskState {
            id: self.next_task,
            state: TaskState::Running,
            max_per_second,
            total: waiting,
            moved: 0,
            failed: 0,
            started_ms: now,
            finished_ms: None,
        };
        tasks.insert(0, task.clone());
        tasks.truncate(REDRIVE_HISTORY);
        Ok(task)
    }

    /// Moves up to `max` dead letters of a running task back to their sources.
    pub fn redrive_step(
        &mut self,
        now: u64,
        name: &str,
        task_id: u64,
        max: usize,
    ) -> Result<RedriveTaskState, ApiError> {
        let running = self
            .redrives
            .get(name)
            .and_then(|tasks| tasks.iter().find(|t| t.id == task_id))
            .is_some_and(|t| t.state == TaskState::Running);
        if !running || !self.by_name.contains_key(name) {
            return Err(ApiError::new(
                ErrorCode::TaskNotFound,
                format!("no running redrive task {task_id} on {name}"),
            ));
        }
        let taken = self.get_mut(name)?.take_for_redrive(now, max);
        let done = taken.len() < max;
        let mut moved = 0;
        let mut failed = Vec::new();
        for mut m in taken {
            let source = m.origin.and_then(|id| self.names.get(&id)).cloned();
            if let Some(source) = source.as_ref().filter(|s| self.home.is_remote(s)) {
                self.outbox.push(source, m.loc, None, false);
                moved += 1;
                continue;
            }
            match source.and_then(|s| self.by_name.get_mut(&s)) {
                Some(target) => {
                    m.origin = None;
                    target.accept_moved(m);
                    moved += 1;
                }
                None => failed.push(m),
            }
        }
        let failed_count = failed.len() as u64;
        let dlq = self.get_mut(name)?;
        for mut m in failed {
            // Its source is gone: it stays here as a plain message.
            m.origin = None;
            dlq.accept_moved(m);
        }
        let task = self
            .redrives
            .get_mut(name)
            .and_then(|tasks| tasks.iter_mut().find(|t| t.id == task_id))
            .expect("checked above");
        task.moved += moved;
        task.failed += failed_count;
        if done {
            task.state = TaskState::Completed;
            task.finished_ms = Some(now);
        }
        Ok(task.clone())
    }

    /// Applies messages another group moved here (see [`outbox`]); the `i`th takes slot
    /// `first_slot + i` of the entry at `index`. A repeated item, or one for a queue that
    /// no longer exists, stores nothing.
    pub fn accept_transfer(
        &mut self,
        now: u64,
        index: u64,
        first_slot: usize,
        from: u32,
        items: &[crate::raft::command::TransferItem],
    ) {
        for (i, item) in items.iter().enumerate() {
            if !self.outbox.first_arrival(from, item.seq) {
                continue;
            }
            let loc = MsgLoc::new(index, first_slot + i);
            let origin = item.origin.as_ref().map(|name| self.foreign_id(name));
            let Ok(queue) = self.get_mut(&item.queue) else {
                tracing::warn!(queue = %item.queue, from, "a moved message's queue is gone; dropped");
                continue;
            };
            if item.published {
                if item.message.size() <= queue.config.max_message_bytes as usize
                    && !queue.config.fifo
                {
                    queue.send(now, loc, &item.message);
                }
                continue;
            }
            queue.accept_moved(Moved {
                loc,
                meta: Meta {
                    sent_ms: now,
                    priority: item.message.priority,
                    receive_count: 0,
                    receipt_seq: 0,
                    first_received_ms: 0,
                    stage: Stage::Visible,
                    group: item.message.group.clone(),
                },
                origin,
            });
        }
    }

    /// The id naming a queue of another group as a dead letter's origin.
    fn foreign_id(&mut self, name: &str) -> u64 {
        if let Some(id) = self.foreign.get(name) {
            return *id;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.foreign.insert(name.to_string(), id);
        self.names.insert(id, name.to_string());
        id
    }

    pub fn cancel_redrive(&mut self, now: u64, name: &str) -> Result<RedriveTaskState, ApiError> {
        self.get(name)?;
        let task = self
            .redrives
            .get_mut(name)
            .and_then(|tasks| tasks.iter_mut().find(|t| t.state == TaskState::Running))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::TaskNotFound,
                    format!("no redrive of {name} is running"),
                )
            })?;
        task.state = TaskState::Cancelled;
        task.finished_ms = Some(now);
        Ok(task.clone())
    }
}

/// The rules a queue's dead-letter queue (`target`, `None` when missing) must keep. The
/// HTTP layer checks a dead-letter queue of another group with this too.
pub fn check_dead_letter_target(
    name: &str,
    config: &QueueConfig,
    target: Option<&QueueState>,
) -> Result<(), ApiError> {
    let Some(dl) = &config.dead_letter else {
        return Ok(());
    };
    if dl.queue == name {
        return Err(ApiError::new(
            ErrorCode::InvalidAttribute,
            "deadLetter.queue names the queue itself; name another queue",
        ));
    }
    let target = target.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidAttribute,
            format!(
                "dead-letter queue {} does not exist; create it first",
                dl.queue
            ),
        )
    })?;
    if let Some(allowed) = &target.config.redrive_allow
        && !allowed.iter().any(|q| q == name)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidAttribute,
            format!(
                "queue {} does not allow {name} to use it as a dead-letter queue (its redriveAllow lists {})",
                dl.queue,
                if allowed.is_empty() {
                    "no queue".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
        ));
    }
    if target.config.fifo != config.fifo {
        return Err(ApiError::new(
            ErrorCode::InvalidAttribute,
            format!(
                "dead-letter queue {} must be {} like this queue",
                dl.queue,
                if config.fifo { "FIFO" } else { "standard" }
            ),
        ));
    }
    Ok(())
}

/// The checks of a message against its queue that the HTTP layer cannot make alone.
fn check_message(config: &QueueConfig, msg: &NewMessage) -> Result<(), ApiError> {
    let size = msg.size();
    if size > config.max_message_bytes as usize {
        return Err(ApiError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "the message is {size} bytes (body and attributes); the queue's maxMessageBytes is {}",
                config.max_message_bytes
            ),
        ));
    }
    if config.fifo {
        if msg.group.is_none() {
            return Err(ApiError::new(
                ErrorCode::InvalidMessage,
                "groupId is required on a FIFO queue",
            ));
        }
        if msg.visible_at_ms.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidMessage,
                "a FIFO queue takes no per-message delay or deliverAt; set the queue's delaySeconds",
            ));
        }
    }
    Ok(())
}

/// The de-duplication id of a body on a queue with `contentDedup`: its SHA-256, in hex.
pub fn content_dedup_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
