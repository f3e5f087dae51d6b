//! A broker node: its Raft group, its metrics, the leader's housekeeping and shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_client::{ApiError, ErrorCode};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::metrics::{CommandLabels, Metrics};
use crate::push::deliver::Mailer;
use crate::raft::command::{Command, Response};
use crate::raft::network::PeerNetwork;
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

/// One broker process.
pub struct Node {
    pub node_id: u64,
    pub group: Group,
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
        let group = Group::open(
            GroupOptions {
                group_id: 0,
                node_id,
                dir: config.data_dir.join("groups").join("0"),
                advertise_peer: config.advertise_peer(),
                initial_members: config.initial_members.as_ref().map(|m| m.0.clone()),
                snapshot_logs: config.snapshot_logs,
                unsafe_ack_before_commit: config.unsafe_ack_before_commit,
                log: LogOptions {
                    segment_bytes: config.segment_bytes.max(1 << 16),
                    ..LogOptions::default()
                },
            },
            http.clone(),
            Some(metrics.clone()),
        )
        .await?;
        metrics.watch_queues(group.state.clone());
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Self {
            node_id,
            group,
            metrics,
            http,
            mailer,
            access_keys,
            region: config.region.clone(),
            receive_attempts: Default::default(),
            shutting_down: AtomicBool::new(false),
            shutdown,
        }))
    }

    /// Replicates a command; a refusal by the state machine comes back as its API error.
    pub async fn propose(&self, command: Command) -> Result<Response, ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the node is shutting down; retry against another node",
            ));
        }
        let kind = command.kind();
        let started = std::time::Instant::now();
        let result = self.group.propose(command).await;
        let elapsed = started.elapsed();
        self.metrics
            .propose_seconds
            .get_or_create(&CommandLabels { command: kind })
            .observe(elapsed.as_secs_f64());
        if elapsed > SLOW_PROPOSAL {
            tracing::info!(
                command = kind,
                ms = elapsed.as_millis() as u64,
                "slow proposal"
            );
        }
        match result {
            Ok(Response::Failed(error)) => Err(error),
            Ok(response) => Ok(response),
            Err(e) => Err(propose_error(e)),
        }
    }

    /// The Raft instance of a group this node serves.
    pub fn raft(&self, group: u32) -> Option<Raft> {
        (group == self.group.id).then(|| self.group.raft.clone())
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

    /// Hands leadership to another node, stops Raft and syncs the log, once the HTTP
    /// server has drained.
    pub async fn finish_shutdown(&self) {
        self.begin_shutdown();
        if self.group.is_leader() && self.group.hand_off_leadership(HANDOFF_TIMEOUT).await {
            tracing::info!("leadership handed over");
        }
        self.group.shutdown().await;
    }

    /// The leader's background work: proposes ticks when time-driven changes are due,
    /// and moves running redrives along at their rate. Returns on shutdown.
    pub async fn housekeeping(self: Arc<Self>) {
        let mut shutdown = self.shutdown_signal();
        let mut redrive = tokio::time::interval(REDRIVE_EVERY);
        redrive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_tick = tokio::time::Instant::now();
        // Redrive tokens per task: a token bucket refilled at the task's rate.
        let mut tokens: HashMap<u64, f64> = HashMap::new();
        loop {
            tokio::select! {
                _ = redrive.tick() => {}
                _ = shutdown.changed() => return,
            }
            if !self.group.is_leader() {
                continue;
            }
            if last_tick.elapsed() >= TICK_EVERY {
                last_tick = tokio::time::Instant::now();
                let due = {
                    let state = self.group.state.read();
                    [state.queues.next_due(), state.topics.next_due()]
                        .into_iter()
                        .flatten()
                        .min()
                };
                if due.is_some_and(|d| d <= now_ms())
                    && let Err(e) = self.propose(Command::Tick).await
                {
                    tracing::debug!(error = %e, "tick not applied");
                }
            }
            let running = self.group.state.read().queues.running_redrives();
            tokens.retain(|task, _| running.iter().any(|(_, t, _)| t == task));
            for (queue, task, rate) in running {
                let max = match rate {
                    None => REDRIVE_STEP_MAX,
                    Some(rate) => {
                        let bucket = tokens.entry(task).or_insert(0.0);
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
                    .propose(Command::RedriveStep { queue, task, max })
                    .await
                {
                    tracing::debug!(error = %e, task, "redrive step not applied");
                }
            }
        }
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
