//! The cluster: members, their roles and lag; adding, removing and draining members.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use sluice_client::{AddMember, ClusterStatus, ErrorCode};

use super::error::{HttpError, HttpResult};
use super::extract::{Json, Path};
use crate::node::Node;
use crate::raft::MembershipError;

/// How long a drain waits for leadership to move.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);

pub fn status(node: &Node) -> ClusterStatus {
    let (group, members) = node.group.status();
    ClusterStatus {
        node: node.node_id,
        members,
        groups: vec![group],
    }
}

fn membership_error(e: MembershipError) -> HttpError {
    match e {
        MembershipError::NotLeader => HttpError::new(
            ErrorCode::Unavailable,
            "leadership moved while the change was under way; retry",
        ),
        MembershipError::NotAMember(id) => HttpError::new(
            ErrorCode::MemberNotFound,
            format!("node {id} is not a member of the cluster"),
        ),
        MembershipError::LastVoter(id) => HttpError::new(
            ErrorCode::ClusterConflict,
            format!("node {id} is the last voter; add another node before removing it"),
        ),
        MembershipError::Conflict(detail) => HttpError::new(
            ErrorCode::ClusterConflict,
            format!("the membership cannot change now: {detail}"),
        ),
        MembershipError::Stopped(detail) => HttpError::internal("changing membership", detail),
    }
}

/// `GET /v1/cluster`.
pub async fn get(State(node): State<Arc<Node>>) -> Json<ClusterStatus> {
    Json(status(&node))
}

/// `POST /v1/cluster/members`: joins as a learner, then a voter once caught up.
pub async fn add(
    State(node): State<Arc<Node>>,
    Json(request): Json<AddMember>,
) -> HttpResult<Json<ClusterStatus>> {
    if request.id == 0 {
        return Err(HttpError::invalid("node ids start at 1"));
    }
    if !request.peer_address.contains(':') {
        return Err(HttpError::invalid(format!(
            "peerAddress {:?} has no port; give host:port of the node's --peer-listen",
            request.peer_address
        )));
    }
    node.group
        .add_member(request.id, request.peer_address)
        .await
        .map_err(membership_error)?;
    Ok(Json(status(&node)))
}

/// `DELETE /v1/cluster/members/{id}`: hands its leaderships away, then removes it.
pub async fn remove(
    State(node): State<Arc<Node>>,
    Path(id): Path<u64>,
) -> HttpResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if id == node.node_id && !node.group.hand_off_leadership(HANDOFF_TIMEOUT).await {
        return Err(HttpError::new(
            ErrorCode::ClusterConflict,
            "this node leads and no other voter could take over; add a node first",
        ));
    }
    if id == node.node_id {
        // Leadership moved: the new leader removes this node.
        let Some((_, leader)) = node.group.leader() else {
            return Err(HttpError::new(
                ErrorCode::Unavailable,
                "leadership was handed over and no new leader is known yet; retry",
            ));
        };
        let answer = super::forward::send(
            &node,
            &leader,
            axum::http::Method::DELETE,
            &format!("/v1/cluster/members/{id}"),
            &axum::http::HeaderMap::new(),
            bytes::Bytes::new(),
        )
        .await;
        return Ok(answer);
    }
    node.group
        .remove_member(id)
        .await
        .map_err(membership_error)?;
    Ok(Json(status(&node)).into_response())
}

/// `POST /v1/cluster/members/{id}/drain`: the node's leaderships go to other nodes.
pub async fn drain(
    State(node): State<Arc<Node>>,
    Path(id): Path<u64>,
) -> HttpResult<Json<ClusterStatus>> {
    let (group, members) = node.group.status();
    if !members.iter().any(|m| m.id == id) {
        return Err(membership_error(MembershipError::NotAMember(id)));
    }
    if group.leader == Some(id) {
        if id != node.node_id {
            // Only the leader hands its leadership over; the request is forwarded to it.
            return Err(HttpError::new(
                ErrorCode::Unavailable,
                "the node to drain leads; retry, the request will reach it",
            ));
        }
        if !node.group.hand_off_leadership(HANDOFF_TIMEOUT).await {
            return Err(HttpError::new(
                ErrorCode::ClusterConflict,
                "no other voter could take over the leadership",
            ));
        }
    }
    Ok(Json(status(&node)))
}
