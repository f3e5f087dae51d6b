//! The peer port: Raft RPCs from other nodes (`crate::raft::network` sends them), routed to
//! the group they name, and client requests other nodes forward to this one (under
//! `/api`). RPC bodies are postcard-encoded; a refusal is a non-2xx status with a text
//! body, which the sender treats as the peer being unreachable for now.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::node::Node;
use crate::raft::command::Command;
use crate::raft::network::SnapshotTransfer;
use crate::raft::state_machine::SnapshotData;
use crate::raft::{Raft, Snapshot, TypeConfig};

/// Snapshots carry the log entries their messages live in: allow large bodies.
const PEER_BODY_LIMIT: usize = 4 << 30;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/raft/{group}/append", post(append))
        .route("/raft/{group}/vote", post(vote))
        .route("/raft/{group}/transfer-leader", post(transfer_leader))
        .route("/raft/{group}/snapshot", post(snapshot))
        .route("/groups/{group}/applied", get(applied))
        .route("/groups/{group}/propose", post(propose))
        .layer(DefaultBodyLimit::max(PEER_BODY_LIMIT))
        .with_state(node.clone())
        // Requests other nodes forward to this one, when it leads.
        .nest(
            "/api",
            crate::http::router(node.clone()).layer(axum::middleware::from_fn(mark_via_peer)),
        )
        .fallback(unknown_route)
        .layer(axum::middleware::map_response_with_state(node, served_by))
}

/// Signs every answer with this node's id (see `forward::SERVED_BY`).
async fn served_by(State(node): State<Arc<Node>>, mut response: Response) -> Response {
    response.headers_mut().insert(
        crate::http::forward::SERVED_BY,
        axum::http::HeaderValue::from(node.node_id),
    );
    response
}

/// A request for no route of the peer port: most likely a client that was given the
/// peer port for the client port. Said in the body and the log, never an empty 404.
async fn unknown_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    tracing::warn!(%method, %uri, "a request for no route of the peer port");
    Refusal(
        StatusCode::NOT_FOUND,
        format!("{method} {uri} is not a route of the peer port; clients use the client port"),
    )
    .into_response()
}

/// Marks a request that came in on the peer port: what another node forwarded. A mark in
/// the request's extensions, which no client can set (unlike a header).
#[derive(Debug, Clone, Copy)]
pub struct ViaPeer;

async fn mark_via_peer(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    request.extensions_mut().insert(ViaPeer);
    next.run(request).await
}

/// An RPC this node cannot serve: a status and a reason for the sender's log.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// Decodes the RPC, hands it to the group's Raft, and encodes the answer.
async fn rpc<Req, Resp, Fut>(
    node: &Node,
    group: u32,
    body: &[u8],
    call: impl FnOnce(Raft, Req) -> Fut,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: Future<Output = Result<Resp, String>>,
{
    let Some(raft) = node.raft(group) else {
        return Refusal(StatusCode::NOT_FOUND, format!("no group {group} here")).into_response();
    };
    let request: Req = match postcard::from_bytes(body) {
        Ok(r) => r,
        Err(e) => {
            return Refusal(StatusCode::BAD_REQUEST, format!("undecodable RPC: {e}"))
                .into_response();
        }
    };
    match call(raft, request).await {
        Ok(answer) => match postcard::to_allocvec(&answer) {
            Ok(bytes) => bytes.into_response(),
            Err(e) => {
                Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}")).into_response()
            }
        },
        Err(e) => Refusal(StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
    }
}

async fn append(State(node): State<Arc<Node>>, Path(group): Path<u32>, body: Bytes) -> Response {
    rpc(
        &node,
        group,
        &body,
        |raft, rpc: AppendEntriesRequest<TypeConfig>| async move {
            raft.append_entries(rpc).await.map_err(|e| e.to_string())
        },
    )
    .await
}

async fn vote(State(node): State<Arc<Node>>, Path(group): Path<u32>, body: Bytes) -> Response {
    rpc(
        &node,
        group,
        &body,
        |raft, rpc: VoteRequest<TypeConfig>| async move {
            raft.vote(rpc).await.map_err(|e| e.to_string())
        },
    )
    .await
}

async fn transfer_leader(
    State(node): State<Arc<Node>>,
    Path(group): Path<u32>,
    body: Bytes,
) -> Response {
    rpc(
        &node,
        group,
        &body,
        |raft, rpc: TransferLeaderRequest<TypeConfig>| async move {
            raft.handle_transfer_leader(rpc)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
}

async fn snapshot(State(node): State<Arc<Node>>, Path(group): Path<u32>, body: Bytes) -> Response {
    rpc(
        &node,
        group,
        &body,
        |raft, transfer: SnapshotTransfer| async move {
            let snapshot = Snapshot {
                meta: transfer.meta,
                snapshot: SnapshotData {
                    state: transfer.state,
                    entries: transfer.entries,
                },
            };
            raft.install_full_snapshot(transfer.vote, snapshot)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
}

/// `GET /groups/{group}/applied`: the last index the leader applied (empty when none), for
/// a replica elsewhere to wait for before it reads (`Node::caught_up`).
async fn applied(State(node): State<Arc<Node>>, Path(group): Path<u32>) -> Response {
    match node.group(group) {
        Some(g) if g.is_leader() => g
            .applied_index()
            .map(|i| i.to_string())
            .unwrap_or_default()
            .into_response(),
        Some(_) => Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not the leader of group {group}"),
        )
        .into_response(),
        None => Refusal(StatusCode::NOT_FOUND, format!("no group {group} here")).into_response(),
    }
}

/// `POST /groups/{group}/propose`: a command proposed here because this node leads the
/// group (a transfer from another group's outbox, a drain mark, or a request's command
/// that its node was refused when leadership moved under it), postcard-encoded.
/// Answers the postcard-encoded `Result<Response, ApiError>`.
async fn propose(State(node): State<Arc<Node>>, Path(group): Path<u32>, body: Bytes) -> Response {
    let command: Command = match postcard::from_bytes(&body) {
        Ok(c) => c,
        Err(e) => {
            return Refusal(StatusCode::BAD_REQUEST, format!("undecodable command: {e}"))
                .into_response();
        }
    };
    let Some(answer) = node.propose_for_peer(group, command).await else {
        return Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not the leader of group {group}"),
        )
        .into_response();
    };
    match postcard::to_allocvec(&answer) {
        Ok(bytes) => bytes.into_response(),
        Err(e) => {
            Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}")).into_response()
        }
    }
}
