//! Raft traffic between nodes. A single node has no peers: every call reports the peer
//! unreachable, which openraft treats as a node that is down.

use std::future::Future;

use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};

use super::state_machine::SnapshotData;
use super::{NodeId, Snapshot, TypeConfig, Vote};

/// Connects a node to its peers.
#[derive(Clone, Default)]
pub struct PeerNetwork;

/// The link to one peer.
pub struct PeerLink {
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> PeerLink {
        PeerLink { target }
    }
}

impl PeerLink {
    fn unreachable(&self) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!("node {} is not reachable", self.target))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerLink {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}
