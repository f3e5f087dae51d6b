//! Replication: every state change is a [`command::Command`] in a Raft log (openraft), also
//! on a single node (one voter), so one code path serves every cluster size.

pub mod command;
pub mod log_store;
pub mod network;
pub mod proposer;
pub mod state_machine;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::{BasicNode, Config, SnapshotPolicy};

use crate::store::log::{CommitObserver, LogOptions};
use command::{Command, Request, Response, Responses};
use log_store::LogStore;
use network::PeerNetwork;
use proposer::Proposer;
use state_machine::StateMachine;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The types Sluice's Raft groups are made of.
    pub TypeConfig:
        D = Request,
        R = Responses,
        NodeId = NodeId,
        Node = BasicNode,
);

pub type Raft = openraft::Raft<TypeConfig, StateMachine>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type Snapshot =
    openraft::type_config::alias::SnapshotOf<TypeConfig, state_machine::SnapshotData>;

/// Milliseconds since the epoch by this node's clock: the time stamped on proposals.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a group could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// This node does not lead the group; the leader, when known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, String)> },
    /// The entry was appended but lost to a leader change: it may or may not apply.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The group has stopped (shutdown, or a storage failure).
    #[error("group stopped: {0}")]
    Stopped(String),
}

/// Where and how a group keeps its data.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub group_id: u32,
    pub node_id: NodeId,
    pub dir: PathBuf,
    /// The address peers dial for this node's Raft traffic.
    pub advertise_peer: String,
    pub log: LogOptions,
}

/// Timing of every group: heartbeats well apart from elections, so a busy machine does
/// not see false failures, and elections fast enough to fail over within seconds.
fn raft_config() -> Result<Arc<Config>, GroupError> {
    let config = Config {
        cluster_name: "sluice".into(),
        heartbeat_interval: 150,
        election_timeout_min: 750,
        election_timeout_max: 1500,
        install_snapshot_timeout: 30_000,
        // A snapshot encodes every queue's state while apply waits: keep them rare.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(50_000),
        max_in_snapshot_log_to_keep: 1_000,
        purge_batch_size: 256,
        max_payload_entries: 512,
        ..Default::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| GroupError::Raft(e.to_string()))
}

/// One Raft group on this node: its log, state machine and Raft instance.
pub struct Group {
    pub id: u32,
    pub node_id: NodeId,
    pub raft: Raft,
    pub state: StateMachine,
    pub log: LogStore,
    proposer: Proposer,
}

impl Group {
    /// Opens the group's storage and starts Raft; a group never initialised becomes a
    /// cluster of this one node.
    pub async fn open(
        options: GroupOptions,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<Self, GroupError> {
        let log = LogStore::open(&options.dir, options.log.clone(), observer)?;
        let state = StateMachine::new(&options.dir.join("snapshots"), log.clone())?;
        let raft = Raft::new(
            options.node_id,
            raft_config()?,
            PeerNetwork,
            log.clone(),
            state.clone(),
        )
        .await
        .map_err(|e| GroupError::Raft(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| GroupError::Raft(e.to_string()))?;
        if !initialized {
            let members = BTreeMap::from([(
                options.node_id,
                BasicNode {
                    addr: options.advertise_peer.clone(),
                },
            )]);
            raft.initialize(members)
                .await
                .map_err(|e| GroupError::Raft(e.to_string()))?;
        }
        Ok(Self {
            id: options.group_id,
            node_id: options.node_id,
            proposer: Proposer::start(raft.clone()),
            raft,
            state,
            log,
        })
    }

    /// Replicates a command and returns the state machine's answer once applied.
    pub async fn propose(&self, command: Command) -> Result<Response, ProposeError> {
        self.proposer.propose(command).await
    }

    /// True when this node leads the group now.
    pub fn is_leader(&self) -> bool {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.current_leader == Some(self.node_id)
    }

    /// True when the group has a leader and this node applied what it knows committed.
    pub fn is_ready(&self) -> bool {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.current_leader.is_some()
            && m.running_state.is_ok()
            && m.last_applied.map(|l| l.index) >= m.local_committed.map(|l| l.index)
    }

    /// Waits until the group has a leader, for at most `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(), ProposeError> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map(|_| ())
            .map_err(|e| ProposeError::Stopped(e.to_string()))
    }

    /// Stops Raft and syncs the log.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, group = self.id, "raft shutdown");
        }
        self.log.close();
    }
}
