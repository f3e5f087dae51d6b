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

use openraft::errors::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, SnapshotPolicy};
use sluice_client::{GroupStatus, Member, MemberRole};

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

/// Why a replica is not ready to serve.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("stopped: {0}")]
    Stopped(String),
    #[error("no leader known")]
    NoLeader,
    #[error("applied {} of {committed} committed entries", applied.map_or_else(|| "none".to_string(), |a| a.to_string()))]
    Behind {
        applied: Option<u64>,
        committed: u64,
    },
}

/// Why a group could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a membership change was not made.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("not the leader")]
    NotLeader,
    #[error("node {0} is not a member")]
    NotAMember(NodeId),
    #[error("node {0} is the last voter; a cluster needs one")]
    LastVoter(NodeId),
    #[error("{0}")]
    Conflict(String),
    #[error("raft stopped: {0}")]
    Stopped(String),
}

impl From<RaftError<TypeConfig, ClientWriteError<TypeConfig>>> for MembershipError {
    fn from(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => MembershipError::NotLeader,
            RaftError::APIError(e) => MembershipError::Conflict(e.to_string()),
            RaftError::Fatal(e) => MembershipError::Stopped(e.to_string()),
        }
    }
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

/// Entries a member may be behind and still count as caught up: to become a voter, or to
/// be handed leadership.
const CAUGHT_UP_LAG: u64 = 256;
/// A node that acknowledged a heartbeat this recently counts as alive (heartbeats go
/// every 150 ms).
const ALIVE_WITHIN: Duration = Duration::from_millis(600);

/// Where and how a group keeps its data.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub group_id: u32,
    pub node_id: NodeId,
    pub dir: PathBuf,
    /// The address peers dial for this node's Raft traffic.
    pub advertise_peer: String,
    /// The cluster's first members (id, peer address), the same on every node; `None`
    /// makes a cluster of this node alone. A node not in the list waits to be added.
    pub initial_members: Option<Vec<(NodeId, String)>>,
    /// Log entries between snapshots.
    pub snapshot_logs: u64,
    /// Test only: answer sends once they have a log position (see the broker flag).
    pub unsafe_ack_before_commit: bool,
    pub log: LogOptions,
    /// The cluster's layout: which names live in this group.
    pub placement: crate::placement::Placement,
}

/// Timing of every group: heartbeats well apart from elections, so a busy machine does
/// not see false failures, and elections fast enough to fail over within seconds.
/// Heartbeats are most of an idle node's work, once per group: 150 ms rather than 100
/// cut three idle brokers with four groups from 0.097 to 0.061 cores (BENCHMARKS.md).
fn raft_config(snapshot_logs: u64) -> Result<Arc<Config>, GroupError> {
    let config = Config {
        cluster_name: "sluice".into(),
        heartbeat_interval: 150,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        install_snapshot_timeout: 30_000,
        // A snapshot encodes every queue's state while apply waits: keep them rare.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_logs.max(1)),
        max_in_snapshot_log_to_keep: 1_000,
        purge_batch_size: 256,
        // Entries per replication RPC: each may carry many requests' commands.
        max_payload_entries: 64,
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
        http: reqwest::Client,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<Self, GroupError> {
        let log = LogStore::open(&options.dir, options.log.clone(), observer)?;
        let home = crate::queue::Home {
            group: options.group_id,
            placement: options.placement,
        };
        let state = StateMachine::new(&options.dir.join("snapshots"), log.clone(), home)?;
        let raft = Raft::new(
            options.node_id,
            raft_config(options.snapshot_logs)?,
            PeerNetwork::new(http, options.group_id, log.clone()),
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
            // Every first member initialises with the same list; Raft elects one leader.
            let members: Option<BTreeMap<NodeId, BasicNode>> = match &options.initial_members {
                None => Some(BTreeMap::from([(
                    options.node_id,
                    BasicNode {
                        addr: options.advertise_peer.clone(),
                    },
                )])),
                Some(list) if list.iter().any(|(id, _)| *id == options.node_id) => Some(
                    list.iter()
                        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                        .collect(),
                ),
                Some(_) => None,
            };
            match members {
                Some(members) => raft
                    .initialize(members)
                    .await
                    .map_err(|e| GroupError::Raft(e.to_string()))?,
                None => tracing::info!(
                    node = options.node_id,
                    "not among the initial members: waiting to be added to the cluster"
                ),
            }
        }
        Ok(Self {
            id: options.group_id,
            node_id: options.node_id,
            proposer: Proposer::start(raft.clone(), options.unsafe_ack_before_commit),
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

    /// Ok when the group has a leader, runs, and this node applies, within `within`,
    /// every entry it knew to be committed when asked. Under steady load a healthy replica
    /// is always an entry or so behind the commit index at any instant, so comparing the
    /// two at one instant would keep it unready for as long as the load lasts.
    pub async fn catch_up(&self, within: Duration) -> Result<(), NotReady> {
        use openraft::async_runtime::WatchReceiver;
        let committed = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            if let Err(e) = &m.running_state {
                return Err(NotReady::Stopped(e.to_string()));
            }
            if m.current_leader.is_none() {
                return Err(NotReady::NoLeader);
            }
            m.local_committed.map(|l| l.index)
        };
        let Some(committed) = committed else {
            return Ok(());
        };
        self.wait_applied(committed, within)
            .await
            .map_err(|_| NotReady::Behind {
                applied: self.applied_index(),
                committed,
            })
    }

    /// True when this node leads the group and has applied every entry committed before
    /// the call, those of earlier leaders included (a read barrier: the leader confirms
    /// its leadership with a quorum), within `within`.
    pub async fn leads_and_applied_all(&self, within: Duration) -> bool {
        let barrier = self
            .raft
            .ensure_linearizable(openraft::ReadPolicy::ReadIndex);
        matches!(tokio::time::timeout(within, barrier).await, Ok(Ok(_)))
    }

    /// The last log index this replica applied.
    pub fn applied_index(&self) -> Option<u64> {
        use openraft::async_runtime::WatchReceiver;
        self.raft
            .metrics()
            .borrow_watched()
            .last_applied
            .map(|l| l.index)
    }

    /// Waits (at most `timeout`) until this replica applied entry `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), ProposeError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "caught up")
            .await
            .map(|_| ())
            .map_err(|e| ProposeError::Stopped(e.to_string()))
    }

    /// The voter that should lead this group when it can: the group's id picks one of
    /// the voters (in id order) that are not `avoid`ed, so groups' leaders spread over
    /// the nodes. `None` when no voter qualifies.
    pub fn preferred_leader(&self, avoid: &[NodeId]) -> Option<NodeId> {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let mut voters: Vec<NodeId> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| !avoid.contains(id))
            .collect();
        voters.sort_unstable();
        (!voters.is_empty()).then(|| voters[self.id as usize % voters.len()])
    }

    /// If this node leads and `target` is alive (it acknowledged a heartbeat lately) and
    /// caught up, hands leadership to it. True when a handover was started. A handover
    /// stops this leader taking writes until the target wins, so one to a dead node would
    /// leave the group without a leader for an election timeout.
    pub async fn offer_leadership(&self, target: NodeId) -> bool {
        use openraft::async_runtime::WatchReceiver;
        use openraft::rt::Instant;
        let caught_up = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            let alive = m.heartbeat.as_ref().is_some_and(|acked| {
                acked
                    .get(&target)
                    .and_then(|at| at.as_ref())
                    .is_some_and(|at| at.elapsed() < ALIVE_WITHIN)
            });
            m.current_leader == Some(self.node_id)
                && alive
                && m.replication.as_ref().is_some_and(|progress| {
                    progress.get(&target).is_some_and(|matched| {
                        let held = matched.map(|l| l.index + 1).unwrap_or(0);
                        let last = m.last_log_index.map(|l| l + 1).unwrap_or(0);
                        last.saturating_sub(held) <= CAUGHT_UP_LAG
                    })
                })
        };
        caught_up && self.raft.trigger().transfer_leader(target).await.is_ok()
    }

    /// One step (at most one membership change), taken by the leader, towards `members`
    /// (id, peer address) with `voters` among them voting: a missing node joins as a
    /// learner, a learner meant to vote becomes a voter once caught up, and only when
    /// every node meant to vote does, a voter not meant to vote steps down to learner and
    /// a node no longer a member leaves (a leader first hands its leadership over). So a
    /// replacement holds the data before the node it replaces goes. Data groups follow
    /// the metadata group this way.
    pub async fn follow(
        &self,
        members: &BTreeMap<NodeId, String>,
        voters: &[NodeId],
    ) -> Result<(), MembershipError> {
        let (status, progress) = self.status();
        if status.leader != Some(self.node_id) {
            return Ok(());
        }
        let is_member = |id: &NodeId| status.voters.contains(id) || status.learners.contains(id);
        if let Some((id, addr)) = members.iter().find(|(id, _)| !is_member(id)) {
            tracing::info!(group = self.id, node = id, "adding a learner");
            self.raft
                .add_learner(*id, BasicNode { addr: addr.clone() }, false)
                .await?;
            return Ok(());
        }
        let caught_up = |id: &NodeId| {
            progress
                .iter()
                .any(|m| m.id == *id && m.lag.is_some_and(|lag| lag <= CAUGHT_UP_LAG))
        };
        if let Some(id) = status
            .learners
            .iter()
            .find(|id| voters.contains(id) && caught_up(id))
        {
            tracing::info!(group = self.id, node = id, "promoting a learner to voter");
            self.raft
                .change_membership(ChangeMembers::AddVoterIds([*id].into()), false)
                .await?;
            return Ok(());
        }
        if !voters.iter().all(|id| status.voters.contains(id)) {
            return Ok(());
        }
        let leaving = status
            .voters
            .iter()
            .chain(&status.learners)
            .copied()
            .find(|id| !members.contains_key(id));
        let stepping_down = status
            .voters
            .iter()
            .copied()
            .find(|id| !voters.contains(id));
        match (leaving, stepping_down) {
            (Some(id), _) | (None, Some(id)) if id == self.node_id => {
                self.hand_off_leadership(Duration::from_secs(3)).await;
                Ok(())
            }
            (Some(id), _) => {
                tracing::info!(group = self.id, node = id, "removing a member");
                self.remove_member(id).await
            }
            (None, Some(id)) => {
                tracing::info!(group = self.id, node = id, "a voter steps down to learner");
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters([id].into()), true)
                    .await?;
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// The leader's id and peer address, when known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())?;
        Some((id, addr))
    }

    /// The group as this node sees it, and its members (lag is known on the leader only).
    pub fn status(&self) -> (GroupStatus, Vec<Member>) {
        use openraft::async_runtime::WatchReceiver;
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let last = m.last_log_index;
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                peer_address: node.addr.clone(),
                role: if voters.contains(id) {
                    MemberRole::Voter
                } else {
                    MemberRole::Learner
                },
                leader: m.current_leader == Some(*id),
                // Entries the leader holds that this member does not (yet).
                lag: match &m.replication {
                    Some(progress) => progress.get(id).map(|matched| {
                        let held = matched.map(|l| l.index + 1).unwrap_or(0);
                        last.map(|l| l + 1).unwrap_or(0).saturating_sub(held)
                    }),
                    None if *id == self.node_id => Some(0),
                    None => None,
                },
            })
            .collect();
        let status = GroupStatus {
            id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            voters,
            learners,
            last_index: last,
            committed: m.local_committed.map(|l| l.index),
            applied: m.last_applied.map(|l| l.index),
        };
        (status, members)
    }

    /// Adds a node as a learner, waits until it has caught up, then makes it a voter.
    pub async fn add_member(
        &self,
        id: NodeId,
        peer_address: String,
    ) -> Result<(), MembershipError> {
        self.raft
            .add_learner(id, BasicNode { addr: peer_address }, true)
            .await
            .map_err(MembershipError::from)?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
            .await
            .map_err(MembershipError::from)?;
        Ok(())
    }

    /// Removes a node: first as a voter, then from the group entirely.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), MembershipError> {
        let (status, _) = self.status();
        if !status.voters.contains(&id) && !status.learners.contains(&id) {
            return Err(MembershipError::NotAMember(id));
        }
        if status.voters.contains(&id) {
            if status.voters.len() == 1 {
                return Err(MembershipError::LastVoter(id));
            }
            self.raft
                .change_membership(ChangeMembers::RemoveVoters([id].into()), true)
                .await
                .map_err(MembershipError::from)?;
        }
        self.raft
            .change_membership(ChangeMembers::RemoveNodes([id].into()), false)
            .await
            .map_err(MembershipError::from)?;
        Ok(())
    }

    /// If this node leads the group, hands leadership to the most caught-up other voter
    /// and waits (at most `timeout`) until it has moved. True when this node no longer
    /// leads.
    pub async fn hand_off_leadership(&self, timeout: Duration) -> bool {
        use openraft::async_runtime::WatchReceiver;
        let target = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            if m.current_leader != Some(self.node_id) {
                return true;
            }
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            m.replication.as_ref().and_then(|progress| {
                progress
                    .iter()
                    .filter(|(id, _)| **id != self.node_id && voters.contains(id))
                    .max_by_key(|(_, matched)| matched.map(|l| l.index))
                    .map(|(id, _)| *id)
            })
        };
        let Some(target) = target else {
            return false;
        };
        if self.raft.trigger().transfer_leader(target).await.is_err() {
            return false;
        }
        let me = self.node_id;
        self.raft
            .wait(Some(timeout))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != Some(me),
                "leadership moved",
            )
            .await
            .is_ok()
    }

    /// Waits, for at most `timeout`, until the group has a leader; that leader, if one
    /// came.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<(NodeId, String)> {
        let elected = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await;
        elected.ok().and_then(|_| self.leader())
    }

    /// Stops Raft and syncs the log.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, group = self.id, "raft shutdown");
        }
        self.log.close();
    }
}
