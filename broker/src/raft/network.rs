//! Raft traffic between nodes: RPCs over HTTP on the peer port, encoded with postcard.
//! One pooled HTTP client serves every peer and every group, so all groups between two
//! nodes share their connections. The receiving side is `crate::peer`.

use std::future::Future;
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::log_store::LogStore;
use super::state_machine::{SnapshotData, StateMachine};
use super::{NodeId, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// How long an append that carries entries may take.
const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How a snapshot travels: the receiver's vote check, the snapshot's meta, the encoded
/// state, and the log entries (postcard-encoded, oldest first) that its messages live in.
#[derive(Serialize, serde::Deserialize)]
pub struct SnapshotTransfer {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub state: Vec<u8>,
    pub entries: Vec<Vec<u8>>,
}

/// Encodes with postcard into a buffer of exactly the encoded size. An append carries up to
/// 64 entries of batched messages: growing the buffer as it fills copied each RPC about
/// twice more, the largest single cost a profile of a three-node leader showed.
pub fn encode_exactly<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    let size = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())?;
    postcard::to_extend(value, Vec::with_capacity(size))
}

/// Connects a group to its peers.
#[derive(Clone)]
pub struct PeerNetwork {
    http: reqwest::Client,
    group: u32,
    /// This node's log: snapshots sent to peers carry the entries they refer to.
    log: LogStore,
}

impl PeerNetwork {
    pub fn new(http: reqwest::Client, group: u32, log: LogStore) -> Self {
        Self { http, group, log }
    }

    /// The HTTP client every group of a node shares; its connections leave from
    /// `local_ip` when given.
    pub fn http_client(local_ip: Option<std::net::IpAddr>) -> reqwest::Client {
        reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .connect_timeout(Duration::from_secs(1))
            .local_address(local_ip)
            .build()
            .unwrap_or_default()
    }
}

/// The link from one group to one peer.
pub struct PeerLink {
    http: reqwest::Client,
    target: NodeId,
    base: String,
    group: u32,
    log: LogStore,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerLink {
        PeerLink {
            http: self.http.clone(),
            target,
            base: format!("http://{}/raft/{}", node.addr, self.group),
            group: self.group,
            log: self.log.clone(),
        }
    }
}

/// The error body a peer answers with when it refuses an RPC.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PeerRefused(String);

impl PeerLink {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        action: RPCTypes,
        request: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = encode_exactly(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let sent = self
            .http
            .post(format!("{}/{path}", self.base))
            .timeout(ttl)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: 0,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            Err(e) if e.is_connect() => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            // The peer is up but cannot serve this group (not yet started, stopped).
            let refused = PeerRefused(format!(
                "node {} group {}: {status}: {}",
                self.target,
                self.group,
                String::from_utf8_lossy(&bytes)
            ));
            return Err(RPCError::Unreachable(Unreachable::new(&refused)));
        }
        postcard::from_bytes(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerLink {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // openraft gives every append the heartbeat's time to live; one that carries
        // entries also waits for the follower's fsync and may be megabytes long.
        let ttl = if rpc.entries.is_empty() {
            option.hard_ttl()
        } else {
            option.hard_ttl().max(APPEND_TIMEOUT)
        };
        self.call("append", RPCTypes::AppendEntries, &rpc, ttl)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("vote", RPCTypes::Vote, &rpc, option.hard_ttl())
            .await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(
            "transfer-leader",
            RPCTypes::TransferLeader,
            &rpc,
            option.hard_ttl(),
        )
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let state = snapshot.snapshot.state;
        // The entries the snapshot's messages live in, so the peer can serve them.
        let floor = StateMachine::snapshot_floor(&state).map_err(|e| {
            StreamingError::Network(NetworkError::from_string(format!("snapshot: {e}")))
        })?;
        let last = snapshot.meta.last_log_id.map(|l| l.index);
        let mut entries = Vec::new();
        if let Some(last) = last {
            for index in floor..=last {
                match self.log.raw_entry(index) {
                    Ok(Some(bytes)) => entries.push(bytes),
                    Ok(None) => {
                        return Err(StreamingError::Network(NetworkError::from_string(format!(
                            "entry {index} of the snapshot's span is missing from the log"
                        ))));
                    }
                    Err(e) => return Err(StreamingError::Network(NetworkError::new(&e))),
                }
            }
        }
        let transfer = SnapshotTransfer {
            vote,
            meta: snapshot.meta,
            state,
            entries,
        };
        // Large snapshots take long: allow a second per 16 MiB on top of the base.
        let bytes: usize =
            transfer.state.len() + transfer.entries.iter().map(Vec::len).sum::<usize>();
        let ttl = option.hard_ttl() + Duration::from_secs((bytes >> 24) as u64);
        tokio::pin!(cancel);
        tokio::select! {
            closed = &mut cancel => Err(StreamingError::Closed(closed)),
            result = self.call("snapshot", RPCTypes::InstallSnapshot, &transfer, ttl) => Ok(result?),
        }
    }
}
