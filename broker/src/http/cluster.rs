//! The cluster: members, their roles and lag; adding, removing and draining members.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use sluice_client::{AddMember, ClusterStatus, ErrorCode, GroupStatus};

use super::error::{HttpError, HttpResult};
use super::extract::{Json, Path};
use crate::node::Node;
use crate::raft::MembershipError;
use crate::raft::command::Command;

/// How long a drain waits for leadership to move.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);

/// How long membership changes wait for every data group to follow the metadata group.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30);

/// Members as the metadata group knows them (`leader`: leads any group), and every group.
pub fn status(node: &Node) -> ClusterStatus {
    let (_, mut members) = node.meta().status();
    let groups: Vec<GroupStatus> = node.groups().iter().map(|g| g.status().0).collect();
    for member in &mut members {
        member.leader = groups.iter().any(|g| g.leader == Some(member.id));
    }
    ClusterStatus {
        node: node.node_id,
        members,
        groups,
    }
}

/// Waits until every group on this node satisfies `done` (the data groups' leaders
/// follow the metadata group's membership, see `Node::follow_membership`).
async fn wait_for_groups(node: &Node, done: impl Fn(&GroupStatus) -> bool) {
    let deadline = tokio::time::Instant::now() + FOLLOW_TIMEOUT;
    while tokio::time::Instant::now() < deadline
        && !node.groups().iter().all(|g| done(&g.status().0))
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let id = request.id;
    node.meta()
        .add_member(id, request.peer_address)
        .await
        .map_err(membership_error)?;
    // Each data group takes it as a voter where the placement wants it to vote (so a
    // drain right after can hand leaderships to it), elsewhere as a learner.
    let candidates: Vec<u64> = {
        let (meta, _) = node.meta().status();
        let retiring = node.meta().state.read().retiring.clone();
        meta.voters
            .into_iter()
            .filter(|v| !retiring.contains(v))
            .collect()
    };
    wait_for_groups(&node, |g| {
        if g.id == 0 || crate::placement::group_voters(g.id, &candidates).contains(&id) {
            g.voters.contains(&id)
        } else {
            g.learners.contains(&id)
        }
    })
    .await;
    Ok(Json(status(&node)))
}

/// `DELETE /v1/cluster/members/{id}`: hands its leaderships away, moves its data groups'
/// voters to other nodes, then removes it.
pub async fn remove(
    State(node): State<Arc<Node>>,
    Path(id): Path<u64>,
) -> HttpResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if id == node.node_id && !node.hand_off_leaderships(HANDOFF_TIMEOUT).await {
        return Err(HttpError::new(
            ErrorCode::ClusterConflict,
            "this node leads and no other voter could take over; add a node first",
        ));
    }
    if id == node.node_id {
        // Leadership moved: the new leader removes this node.
        let Some((_, leader)) = node.meta().leader() else {
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
        .await
        .unwrap_or_else(axum::response::Response::from);
        return Ok(answer);
    }
    let (meta, _) = node.meta().status();
    if !meta.voters.contains(&id) && !meta.learners.contains(&id) {
        return Err(membership_error(MembershipError::NotAMember(id)));
    }
    if meta.voters == [id] {
        return Err(membership_error(MembershipError::LastVoter(id)));
    }
    // Its data groups' voters move to other nodes first: a replacement catches up
    // before the node stops counting towards any group's quorum.
    node.propose_to(
        0,
        Command::SetRetiring {
            node: id,
            retiring: true,
        },
    )
    .await?;
    wait_for_groups(&node, |g| g.id == 0 || !g.voters.contains(&id)).await;
    let removed = node
        .meta()
        .remove_member(id)
        .await
        .map_err(membership_error);
    if removed.is_ok() {
        wait_for_groups(&node, |g| {
            !g.voters.contains(&id) && !g.learners.contains(&id)
        })
        .await;
    }
    node.propose_to(
        0,
        Command::SetRetiring {
            node: id,
            retiring: false,
        },
    )
    .await?;
    removed?;
    if node.drained().contains(&id) {
        node.propose_to(
            0,
            Command::SetDrained {
                node: id,
                drained: false,
            },
        )
        .await?;
    }
    Ok(Json(status(&node)).into_response())
}

/// `POST /v1/cluster/members/{id}/drain`: the node's leaderships go to other nodes, and
/// no leadership goes to it until it is undrained (`DELETE` on the same path) or
/// restarts (the operator drains a broker before restarting it).
pub async fn drain(
    State(node): State<Arc<Node>>,
    Path(id): Path<u64>,
) -> HttpResult<Json<ClusterStatus>> {
    set_drained(&node, id, true).await?;
    if id == node.node_id && !node.hand_off_leaderships(HANDOFF_TIMEOUT).await {
        return Err(HttpError::new(
            ErrorCode::ClusterConflict,
            "no other voter could take over the leadership",
        ));
    }
    // Other nodes' leaders hand their groups over at their next balancing round.
    let deadline = tokio::time::Instant::now() + HANDOFF_TIMEOUT * 2;
    while tokio::time::Instant::now() < deadline
        && node
            .groups()
            .iter()
            .any(|g| g.status().0.leader == Some(id))
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if node
        .groups()
        .iter()
        .any(|g| g.status().0.leader == Some(id))
    {
        return Err(HttpError::new(
            ErrorCode::ClusterConflict,
            "the node still leads a group: no other voter could take over",
        ));
    }
    Ok(Json(status(&node)))
}

/// `DELETE /v1/cluster/members/{id}/drain`: leaderships may go to the node again.
pub async fn undrain(
    State(node): State<Arc<Node>>,
    Path(id): Path<u64>,
) -> HttpResult<Json<ClusterStatus>> {
    set_drained(&node, id, false).await?;
    Ok(Json(status(&node)))
}

async fn set_drained(node: &Node, id: u64, drained: bool) -> HttpResult<()> {
    let (_, members) = node.meta().status();
    if !members.iter().any(|m| m.id == id) {
        return Err(membership_error(MembershipError::NotAMember(id)));
    }
    node.propose_to(0, Command::SetDrained { node: id, drained })
        .await?;
    Ok(())
}
