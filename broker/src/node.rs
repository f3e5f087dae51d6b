//! A broker node: its Raft groups, its metrics, the leaders' housekeeping and shutdown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_client::{ApiError, ErrorCode};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::metrics::{CommandLabels, Metrics};
use crate::placement::Placement;
use crate::push::deliver::Mailer;
use crate::raft::command::{Command, Entity, Response, TransferItem};
use crate::raft::network::PeerNetwork;
use crate::raft::state_machine::SmState;
use crate::raft::{Group, GroupError, GroupOptions, ProposeError, Raft, now_ms};
use crate::store::log::LogOptions;

/// How often the leader checks for time-driven work (lapsed deadlines, retention).
const TICK_EVERY: Duration = Duration::from_millis(250);
/// How often running redrives move a step.
const REDRIVE_EVERY: Duration = Duration::from_millis(100);
/// How long a shutting-down leader waits for another node to take over.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(3);
/// Proposals slower than this are logged, to find what stalls the pipeline.
const SLOW_PROPOSAL: Duration = Duration::from_millis(50);
/// Messages one redrive step moves when no rate is set.
const REDRIVE_STEP_MAX: u32 = 1_000;
/// How often data groups' leaders bring their members in line with the metadata group.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// How long housekeeping waits for the meta group to apply what is committed before it
/// lifts this node's drain (it tries again at the next round).
const META_CATCH_UP_WITHIN: Duration = Duration::from_millis(200);
/// How often leaders offer their groups to the nodes that should lead them.
const BALANCE_EVERY: Duration = Duration::from_secs(2);
/// How often leaders look for outbox items to ship, and how many go at once.
const OUTBOX_EVERY: Duration = Duration::from_millis(20);
const OUTBOX_BATCH: usize = 512;
/// How long a command proposed on another node's group may take: longer than that
/// node's own wait for the commit, so its answer, not our timeout, tells the outcome.
const REMOTE_PROPOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a read waits for this node's replica to catch up with the leader.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a group without a leader to elect one before it is
/// refused: a failover takes 1.5-2 s here when quiet (heartbeats missed, then an
/// election), more on a loaded machine.
pub const LEADER_WAIT: Duration = Duration::from_secs(5);
/// Between proposals a leader refuses while its lease is young or it hands over.
const LEADER_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// One broker process.
pub struct Node {
    pub node_id: u64,
    /// Where every queue and topic lives.
    pub placement: Placement,
    /// The groups this node holds a replica of, by id: the metadata group first.
    groups: Vec<Group>,
    pub metrics: Arc<Metrics>,
    /// Pooled HTTP connections to the other nodes' peer ports (Raft and forwarding).
    pub http: reqwest::Client,
    /// The SMTP server email subscriptions go through, when one is configured.
    pub mailer: Option<Mailer>,
    /// The keys AWS-protocol requests must be signed with; none: no signatures checked.
    pub access_keys: Option<Arc<crate::compat::auth::AccessKeys>>,
    /// The region named in SQS and SNS ARNs.
    pub region: String,
    /// Recent answers to SQS FIFO receives, by `ReceiveRequestAttemptId`.
    pub receive_attempts: crate::compat::sqs::attempts::ReceiveAttempts,
    /// Held while partitions are synced with their partition 0 (`crate::partitions`), so
    /// this node's copies go out in the order of the changes they copy.
    pub partition_sync: tokio::sync::Mutex<()>,
    shutting_down: AtomicBool,
    shutdown: watch::Sender<bool>,
}

impl Node {
    /// Opens the node's storage and joins (or forms) its cluster.
    pub async fn open(
        config: &BrokerConfig,
        metrics: Arc<Metrics>,
        mailer: Option<Mailer>,
        access_keys: Option<Arc<crate::compat::auth::AccessKeys>>,
    ) -> Result<Arc<Self>, GroupError> {
        let node_id = config.node_id();
        // Peer connections leave from the peer address's IP, so tests can cut links
        // between nodes on loopback by address.
        let local_ip = Some(config.peer_listen.ip()).filter(|ip| !ip.is_unspecified());
        let http = PeerNetwork::http_client(local_ip);
        let placement = Placement::new(config.data_groups);
        check_layout(&config.data_dir, placement)?;
        let mut groups = Vec::new();
        for group_id in placement.groups() {
            let group = Group::open(
                GroupOptions {
                    group_id,
                    node_id,
                    dir: config.data_dir.join("groups").join(group_id.to_string()),
                    advertise_peer: config.advertise_peer(),
                    initial_members: config.initial_members.as_ref().map(|m| m.0.clone()),
                    snapshot_logs: config.snapshot_logs,
                    unsafe_ack_before_commit: config.unsafe_ack_before_commit,
                    log: LogOptions {
                        segment_bytes: config.segment_bytes.max(1 << 16),
                        ..LogOptions::default()
                    },
                    placement,
                },
                http.clone(),
                Some(metrics.clone()),
            )
            .await?;
            groups.push(group);
        }
        metrics.watch_queues(groups.iter().map(|g| g.state.clone()).collect());
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Self {
            node_id,
            placement,
            groups,
            metrics,
            http,
            mailer,
            access_keys,
            region: config.region.clone(),
            receive_attempts: Default::default(),
            partition_sync: tokio::sync::Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            shutdown,
        }))
    }

    /// The metadata group: members and drained nodes (and, without data groups, all).
    pub fn meta(&self) -> &Group {
        &self.groups[0]
    }

    /// Every group this node holds, the metadata group first.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub fn group(&self, id: u32) -> Option<&Group> {
        self.groups.get(id as usize)
    }

    /// The group that holds the queue or topic of this name.
    pub fn group_of(&self, name: &str) -> &Group {
        &self.groups[self.placement.group_of(name) as usize]
    }

    /// The groups that hold queues and topics.
    pub fn data_groups(&self) -> impl Iterator<Item = &Group> {
        self.placement
            .data_groups()
            .filter_map(|id| self.groups.get(id as usize))
    }

    /// Replicates a command in the group of the queue or topic it names (housekeeping
    /// commands go to the metadata group); a refusal by the state machine comes back as
    /// its API error.
    pub async fn propose(&self, command: Command) -> Result<Response, ApiError> {
        let group = match command.entity() {
            Some(Entity::Queue(name) | Entity::Topic(name)) => self.placement.group_of(name),
            None => 0,
        };
        self.propose_to(group, command).await
    }

    /// Replicates a command in group `group`.
    pub async fn propose_to(&self, group: u32, command: Command) -> Result<Response, ApiError> {
        self.propose_in(group, command).await
    }

    /// Replicates a command another node sent here because this node leads `group`.
    /// `None` when it was not proposed because this node does not lead, so the sender
    /// may send it to the new leader.
    pub async fn propose_for_peer(
        &self,
        group: u32,
        command: Command,
    ) -> Option<Result<Response, ApiError>> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        self.propose_while_leading(self.group(group)?, &command, deadline)
            .await
    }

    /// Proposes `command` while this node leads `target`: a new leader refuses writes
    /// until a quorum has acknowledged it (its lease), so a refusal is asked again until
    /// `deadline`. `None` when it was never proposed because this node does not lead.
    async fn propose_while_leading(
        &self,
        target: &Group,
        command: &Command,
        deadline: tokio::time::Instant,
    ) -> Option<Result<Response, ApiError>> {
        loop {
            if self.is_shutting_down() || !target.is_leader() {
                return None;
            }
            match target.propose(command.clone()).await {
                Err(ProposeError::NotLeader { .. }) => {
                    if tokio::time::Instant::now() >= deadline {
                        return None;
                    }
                    tokio::time::sleep(LEADER_RETRY_PAUSE).await;
                }
                Ok(Response::Failed(error)) => return Some(Err(error)),
                Ok(response) => return Some(Ok(response)),
                Err(e) => return Some(Err(propose_error(e))),
            }
        }
    }

    async fn propose_in(&self, group: u32, command: Command) -> Result<Response, ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the node is shutting down; retry against another node",
            ));
        }
        let Some(target) = self.group(group) else {
            return Err(ApiError::new(
                ErrorCode::Internal,
                format!("group {group} is not on this node"),
            ));
        };
        if !target.is_leader()
            && let Some((_, leader)) = target.leader()
        {
            if command.entity().is_none() {
                return self.propose_remotely(&leader, group, &command).await.into();
            }
            // A queue's or topic's command from a node that does not lead its group (a
            // partition of a topic led elsewhere): on to the leader.
            return self.propose_after_election(target, command).await;
        }
        let kind = command.kind();
        let started = std::time::Instant::now();
        let retry = command.clone();
        let result = target.propose(command).await;
        let elapsed = started.elapsed();
        self.metrics
            .propose_seconds
            .get_or_create(&CommandLabels { command: kind })
            .observe(elapsed.as_secs_f64());
        if elapsed > SLOW_PROPOSAL {
            tracing::info!(
                command = kind,
                group,
                ms = elapsed.as_millis() as u64,
                "slow proposal"
            );
        }
        match result {
            Err(ProposeError::NotLeader { .. }) => self.propose_after_election(target, retry).await,
            Ok(Response::Failed(error)) => Err(error),
            Ok(response) => Ok(response),
            Err(e) => Err(propose_error(e)),
        }
    }

    /// A command this node was refused as leader before it reached the log, or one for a
    /// group this node follows, so it may go (again): here while this node still counts
    /// itself leader (a young lease), else on the leader (a handover, a lost election, a
    /// partition led elsewhere), whose answer this replica catches up with before the
    /// handler reads its own state.
    async fn propose_after_election(
        &self,
        target: &Group,
        command: Command,
    ) -> Result<Response, ApiError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let time_left = !left.is_zero();
            match target.wait_for_leader(left).await {
                Some((id, _)) if id == self.node_id => {
                    if let Some(answer) =
                        self.propose_while_leading(target, &command, deadline).await
                    {
                        return answer;
                    }
                }
                Some((_, leader)) => {
                    match self.propose_remotely(&leader, target.id, &command).await {
                        Remote::NotTaken(_) if time_left => {}
                        // A publish's answer is all its handler reads.
                        Remote::Answered(answer) if matches!(command, Command::Publish { .. }) => {
                            return answer;
                        }
                        Remote::Answered(answer) => {
                            if let Err(e) = self.caught_up(target.id).await {
                                // Done all the same: the handler may read an older state
                                // of its own.
                                tracing::debug!(error = %e.message, group = target.id, "catching up after a handoff");
                            }
                            return answer;
                        }
                        other => return other.into(),
                    }
                }
                None => return Err(propose_error(ProposeError::NotLeader { leader: None })),
            }
            if !time_left {
                return Err(propose_error(ProposeError::NotLeader { leader: None }));
            }
            tokio::time::sleep(LEADER_RETRY_PAUSE).await;
        }
    }

    /// The Raft instance of a group this node serves.
    pub fn raft(&self, group: u32) -> Option<Raft> {
        self.group(group).map(|g| g.raft.clone())
    }

    /// This node's replica of `group`, once it has applied everything its leader had
    /// applied when asked: a read from it sees every write acknowledged before. On the
    /// leader at once; elsewhere one question to the leader's peer port.
    pub async fn caught_up(&self, group: u32) -> Result<&Group, ApiError> {
        let unavailable = |why: String| ApiError::new(ErrorCode::Unavailable, why);
        let target = self
            .group(group)
            .ok_or_else(|| unavailable(format!("group {group} is not on this node")))?;
        if target.is_leader() {
            return Ok(target);
        }
        let (_, leader) = target.leader().ok_or_else(|| {
            unavailable("no leader yet (an election is under way); retry shortly".into())
        })?;
        let answer = self
            .http
            .get(format!("http://{leader}/groups/{group}/applied"))
            .timeout(CATCH_UP_TIMEOUT)
            .send()
            .await
            .and_then(|a| a.error_for_status())
            .map_err(|e| unavailable(format!("the leader of group {group} did not answer: {e}")))?
            .text()
            .await
            .map_err(|e| unavailable(format!("the leader of group {group} did not answer: {e}")))?;
        if let Ok(index) = answer.trim().parse::<u64>() {
            target
                .wait_applied(index, CATCH_UP_TIMEOUT)
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "this node's replica of group {group} is behind; retry"
                    ))
                })?;
        }
        Ok(target)
    }

    /// Every data group, each caught up as [`Node::caught_up`] makes it: for reads that
    /// span every queue or topic.
    pub async fn caught_up_data_groups(&self) -> Result<Vec<&Group>, ApiError> {
        let mut groups = Vec::new();
        for id in self.placement.data_groups() {
            groups.push(self.caught_up(id).await?);
        }
        Ok(groups)
    }

    /// One list over every data group: `page` gives a group's first `limit` items in
    /// name order and whether more follow; the answer is the first `limit` of them all,
    /// in name order, and whether more follow.
    pub async fn list_across<T>(
        &self,
        limit: usize,
        page: impl Fn(&SmState, u32) -> (Vec<T>, bool),
        name: impl Fn(&T) -> &str,
    ) -> Result<(Vec<T>, bool), ApiError> {
        let mut all = Vec::new();
        let mut more = false;
        for group in self.caught_up_data_groups().await? {
            let (items, group_more) = page(&group.state.read(), group.id);
            more |= group_more;
            all.extend(items);
        }
        all.sort_by(|a, b| name(a).cmp(name(b)));
        more |= all.len() > limit;
        all.truncate(limit);
        Ok((all, more))
    }

    /// Nodes marked drained: no group's leadership goes to them.
    pub fn drained(&self) -> Vec<u64> {
        self.meta().state.read().drained.iter().copied().collect()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Resolves when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops taking work: readiness turns false and long polls return at once.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.shutdown.send_replace(true);
    }

    /// Hands every leadership this node holds to other nodes, waiting at most `timeout`
    /// for each; true when it leads no group any more.
    pub async fn hand_off_leaderships(&self, timeout: Duration) -> bool {
        let mut all = true;
        for group in &self.groups {
            if group.is_leader() && !group.hand_off_leadership(timeout).await {
                all = false;
            }
        }
        all
    }

    /// Hands leadership to other nodes, stops Raft and syncs the logs, once the HTTP
    /// server has drained.
    pub async fn finish_shutdown(&self) {
        self.begin_shutdown();
        if self.groups.iter().any(Group::is_leader)
            && self.hand_off_leaderships(HANDOFF_TIMEOUT).await
        {
            tracing::info!("leadership handed over");
        }
        for group in &self.groups {
            group.shutdown().await;
        }
    }

    /// The leader's background work, for every group this node leads: proposes ticks
    /// when time-driven changes are due, moves running redrives along at their rate,
    /// ships outboxes, and hands leaderships to the nodes that should hold them. Returns
    /// on shutdown.
    pub async fn housekeeping(self: Arc<Self>) {
        let mut shutdown = self.shutdown_signal();
        let mut redrive = tokio::time::interval(REDRIVE_EVERY);
        redrive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_tick = tokio::time::Instant::now();
        let mut last_balance = tokio::time::Instant::now();
        let mut last_follow = tokio::time::Instant::now();
        // A drain lasts until the node restarts: a restarted node takes leaderships again.
        let mut undrained = false;
        // Redrive tokens per task: a token bucket refilled at the task's rate.
        let mut tokens: HashMap<(u32, u64), f64> = HashMap::new();
        loop {
            tokio::select! {
                _ = redrive.tick() => {}
                _ = shutdown.changed() => return,
            }
            let tick_due = last_tick.elapsed() >= TICK_EVERY;
            if tick_due {
                last_tick = tokio::time::Instant::now();
            }
            for group in self.groups.iter().filter(|g| g.is_leader()) {
                if tick_due {
                    self.tick(group).await;
                }
                self.step_redrives(group, &mut tokens).await;
            }
            if last_follow.elapsed() >= FOLLOW_EVERY {
                last_follow = tokio::time::Instant::now();
                self.follow_membership().await;
                if !undrained && self.meta().catch_up(META_CATCH_UP_WITHIN).await.is_ok() {
                    undrained = self.undrain_self().await;
                }
            }
            if last_balance.elapsed() >= BALANCE_EVERY {
                last_balance = tokio::time::Instant::now();
                self.balance_leaders().await;
            }
        }
    }

    async fn tick(&self, group: &Group) {
        let due = {
            let state = group.state.read();
            [state.queues.next_due(), state.topics.next_due()]
                .into_iter()
                .flatten()
                .min()
        };
        if due.is_some_and(|d| d <= now_ms())
            && let Err(e) = self.propose_to(group.id, Command::Tick).await
        {
            tracing::debug!(error = %e, group = group.id, "tick not applied");
        }
    }

    async fn step_redrives(&self, group: &Group, tokens: &mut HashMap<(u32, u64), f64>) {
        let running = group.state.read().queues.running_redrives();
        tokens.retain(|(g, task), _| *g != group.id || running.iter().any(|(_, t, _)| t == task));
        for (queue, task, rate) in running {
            let max = match rate {
                None => REDRIVE_STEP_MAX,
                Some(rate) => {
                    let bucket = tokens.entry((group.id, task)).or_insert(0.0);
                    *bucket =
                        (*bucket + rate as f64 * REDRIVE_EVERY.as_secs_f64()).min(rate as f64);
                    let whole = bucket.floor();
                    if whole < 1.0 {
                        continue;
                    }
                    *bucket -= whole;
                    whole as u32
                }
            };
            if let Err(e) = self
                .propose_to(group.id, Command::RedriveStep { queue, task, max })
                .await
            {
                tracing::debug!(error = %e, task, "redrive step not applied");
            }
        }
    }

    /// Clears this node's drain mark, if it has one; true once it has none.
    async fn undrain_self(&self) -> bool {
        if !self.drained().contains(&self.node_id) {
            return true;
        }
        let command = Command::SetDrained {
            node: self.node_id,
            drained: false,
        };
        match self.propose_to(0, command).await {
            Ok(_) => {
                tracing::info!("drain mark cleared on restart");
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "drain mark not cleared yet");
                false
            }
        }
    }

    /// Makes the members of every data group this node leads follow the metadata group's
    /// voters, one change per group at a time: each data group has three of them voting
    /// (chosen by [`crate::placement::group_voters`]) and the others as learners, which
    /// keep a copy so that every node can serve reads of every group.
    async fn follow_membership(&self) {
        if self.placement.data_groups == 0 {
            return;
        }
        let (meta, members) = self.meta().status();
        let wanted: BTreeMap<u64, String> = members
            .into_iter()
            .filter(|m| meta.voters.contains(&m.id))
            .map(|m| (m.id, m.peer_address))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let retiring = self.meta().state.read().retiring.clone();
        let candidates: Vec<u64> = meta
            .voters
            .iter()
            .copied()
            .filter(|id| !retiring.contains(id))
            .collect();
        if candidates.is_empty() {
            return;
        }
        for group in self.data_groups().filter(|g| g.is_leader()) {
            let voters = crate::placement::group_voters(group.id, &candidates);
            if let Err(e) = group.follow(&wanted, &voters).await {
                tracing::debug!(group = group.id, error = %e, "membership not changed yet");
            }
        }
    }

    /// Offers each group this node leads to its preferred leader (see
    /// [`Group::preferred_leader`]), skipping drained nodes, so leaderships spread over
    /// the nodes again after failovers and restarts.
    async fn balance_leaders(&self) {
        if self.is_shutting_down() {
            return;
        }
        let drained = self.drained();
        for group in self.groups.iter().filter(|g| g.is_leader()) {
            if let Some(preferred) = group.preferred_leader(&drained)
                && preferred != self.node_id
                && group.offer_leadership(preferred).await
            {
                tracing::info!(
                    group = group.id,
                    to = preferred,
                    "leadership offered to its preferred node"
                );
            }
        }
    }

    /// Ships the outboxes of the groups this node leads: moves of messages into queues of
    /// other groups (see `queue::outbox`). Returns on shutdown.
    pub async fn ship_outboxes(self: Arc<Self>) {
        let mut shutdown = self.shutdown_signal();
        let mut every = tokio::time::interval(OUTBOX_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            for group in &self.groups {
                while group.is_leader() && !group.state.read().queues.outbox.is_empty() {
                    if let Err(e) = self.ship_outbox(group).await {
                        tracing::debug!(group = group.id, error = %e, "outbox not shipped yet");
                        break;
                    }
                }
            }
        }
    }

    /// Ships up to [`OUTBOX_BATCH`] of a group's outbox items and records them shipped.
    async fn ship_outbox(&self, group: &Group) -> Result<(), String> {
        let pending = group.state.read().queues.outbox.pending(OUTBOX_BATCH);
        let Some(last) = pending.last().map(|i| i.seq) else {
            return Ok(());
        };
        let mut by_target: BTreeMap<u32, Vec<TransferItem>> = BTreeMap::new();
        for item in pending {
            let stored = group.log.message(item.loc).map_err(|e| e.to_string())?;
            let Some(stored) = stored else {
                tracing::warn!(group = group.id, queue = %item.queue, "an outbox item's body is gone; skipped");
                continue;
            };
            let mut message = stored.message().clone();
            // A moved message is no new send: no de-duplication, no delay of its own.
            message.dedup = None;
            message.visible_at_ms = None;
            by_target
                .entry(self.placement.group_of(&item.queue))
                .or_default()
                .push(TransferItem {
                    seq: item.seq,
                    queue: item.queue,
                    message,
                    origin: item.origin,
                    topic: stored.topic().map(str::to_string),
                    published: item.published,
                });
        }
        for (target, items) in by_target {
            let command = Command::Transfer {
                from: group.id,
                items: items.into(),
            };
            self.propose_to(target, command)
                .await
                .map_err(|e| e.message)?;
        }
        self.propose_to(group.id, Command::OutboxShipped { upto: last })
            .await
            .map(|_| ())
            .map_err(|e| e.message)
    }

    /// Proposes a command on its group's leader elsewhere, through the leader's peer port.
    async fn propose_remotely(&self, leader: &str, group: u32, command: &Command) -> Remote {
        let body = match postcard::to_allocvec(command) {
            Ok(body) => body,
            Err(e) => return Remote::NotTaken(format!("cannot encode the command: {e}")),
        };
        let answer = self
            .http
            .post(format!("http://{leader}/groups/{group}/propose"))
            .timeout(REMOTE_PROPOSE_TIMEOUT)
            .body(body)
            .send()
            .await;
        let answer = match answer {
            Ok(a) if a.status().is_success() => a,
            // The leader refused it (it no longer leads, it could not decode it).
            Ok(a) => return Remote::NotTaken(format!("the leader answered {}", a.status())),
            Err(e) if e.is_connect() => return Remote::NotTaken(e.to_string()),
            Err(e) => return Remote::Unknown(e.to_string()),
        };
        match answer.bytes().await {
            Ok(bytes) => match postcard::from_bytes::<Result<Response, ApiError>>(&bytes) {
                Ok(answer) => Remote::Answered(answer),
                Err(e) => Remote::Unknown(format!("undecodable answer: {e}")),
            },
            Err(e) => Remote::Unknown(e.to_string()),
        }
    }
}

/// How a command sent to another node's peer port ended.
enum Remote {
    /// The leader proposed it; its outcome.
    Answered(Result<Response, ApiError>),
    /// It was never proposed: it may be sent again.
    NotTaken(String),
    /// It may or may not have been proposed (the answer was lost).
    Unknown(String),
}

impl From<Remote> for Result<Response, ApiError> {
    fn from(remote: Remote) -> Self {
        match remote {
            Remote::Answered(answer) => answer,
            Remote::NotTaken(why) => Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("the group's leader did not take the command ({why}); retry"),
            )),
            Remote::Unknown(why) => Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("the group's leader did not answer ({why}); its outcome is unknown, retry"),
            )),
        }
    }
}

/// A data directory made with one number of data groups cannot be opened with another:
/// names would be looked for in the wrong groups.
fn check_layout(data_dir: &std::path::Path, placement: Placement) -> Result<(), GroupError> {
    let path = data_dir.join("layout");
    let wanted = format!("data-groups={}\n", placement.data_groups);
    match std::fs::read_to_string(&path) {
        Ok(found) if found == wanted => Ok(()),
        Ok(found) => Err(GroupError::Raft(format!(
            "{} was made with {}, but --data-groups is {}: every node of a cluster keeps the number it was created with",
            data_dir.display(),
            found.trim(),
            placement.data_groups
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let had_data = data_dir.join("groups").join("0").exists();
            if had_data && placement.data_groups != 0 {
                return Err(GroupError::Raft(format!(
                    "{} holds a cluster without data groups; --data-groups must stay 0 for it",
                    data_dir.display()
                )));
            }
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&path, wanted)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A proposal that did not reach the state machine, as the client sees it.
pub fn propose_error(e: ProposeError) -> ApiError {
    match e {
        ProposeError::NotLeader { .. } => ApiError::new(
            ErrorCode::Unavailable,
            "no leader yet (an election is under way); retry shortly",
        ),
        ProposeError::Unknown(detail) => {
            tracing::warn!(%detail, "proposal outcome unknown");
            ApiError::new(
                ErrorCode::Unavailable,
                "leadership changed while the request was in progress; its outcome is unknown, retry it",
            )
        }
        ProposeError::Stopped(detail) => {
            tracing::error!(%detail, "raft group stopped");
            ApiError::new(
                ErrorCode::Unavailable,
                "the node's replication has stopped; retry against another node",
            )
        }
    }
}
