//! Queue resources: create or update, get, list, delete, purge.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sluice_client::{
    ErrorCode, ListQueues, Purged, Queue, QueueAttributesUpdate, QueueCounts, QueueList,
    QueueTotals, limits, names,
};

use super::error::{HttpError, HttpResult};
use super::extract::{Json, Path, Query};
use crate::node::Node;
use crate::queue::check_dead_letter_target;
use crate::queue::config::{ConfigUpdate, QueueConfig};
use crate::queue::state::QueueState;
use crate::raft::command::{Command, Response};
use crate::raft::state_machine::unexpected;

/// Checks a queue name from a path.
pub fn check_name(name: &str) -> HttpResult<()> {
    names::validate_name("queue", name).map_err(|m| HttpError::new(ErrorCode::InvalidName, m))
}

pub fn time(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or_default()
}

/// The wire view of a queue held by group `group`.
pub fn view(queue: &QueueState, group: u32) -> Queue {
    let counts = queue.counts();
    Queue {
        name: queue.name.clone(),
        attributes: queue.config.to_wire(),
        counts: QueueCounts {
            visible: counts.visible,
            in_flight: counts.in_flight,
            delayed: counts.delayed,
        },
        totals: QueueTotals {
            sent: queue.totals.sent,
            received: queue.totals.received,
            acked: queue.totals.acked,
        },
        tags: queue.tags.clone(),
        created_at: time(queue.created_ms),
        group,
    }
}

/// The current view of a queue, or 404.
pub fn get_view(node: &Node, name: &str) -> HttpResult<Queue> {
    let group = node.group_of(name);
    let state = group.state.read();
    Ok(view(state.queues.get(name)?, group.id))
}

/// `PUT /v1/queues/{queue}`: 201 when created, 200 when updated.
pub async fn put(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(update): Json<QueueAttributesUpdate>,
) -> HttpResult<(StatusCode, Json<Queue>)> {
    check_name(&name)?;
    let update = ConfigUpdate::from_wire(&update)?;
    check_remote_dead_letter(&node, &name, &update).await?;
    let response = node
        .propose(Command::PutQueue {
            queue: name.clone(),
            update,
        })
        .await?;
    let Response::QueuePut { created } = response else {
        return Err(unexpected(&response).into());
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(get_view(&node, &name)?)))
}

/// A dead-letter queue in another group is checked here, against that group's state
/// (the state machine checks one in its own group).
async fn check_remote_dead_letter(
    node: &Node,
    name: &str,
    update: &ConfigUpdate,
) -> HttpResult<()> {
    let config = {
        let state = node.group_of(name).state.read();
        match state.queues.get(name) {
            Ok(queue) => queue.config.change(update)?,
            Err(_) => QueueConfig::create(update)?,
        }
    };
    let Some(dl) = &config.dead_letter else {
        return Ok(());
    };
    let home = node.placement.group_of(name);
    let target = node.placement.group_of(&dl.queue);
    if target == home {
        return Ok(());
    }
    let group = node.caught_up(target).await?;
    let state = group.state.read();
    check_dead_letter_target(name, &config, state.queues.get(&dl.queue).ok())?;
    Ok(())
}

/// `GET /v1/queues/{queue}`.
pub async fn get(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> HttpResult<Json<Queue>> {
    check_name(&name)?;
    Ok(Json(get_view(&node, &name)?))
}

/// `GET /v1/queues?prefix=&limit=&after=`.
pub async fn list(
    State(node): State<Arc<Node>>,
    Query(params): Query<ListQueues>,
) -> HttpResult<Json<QueueList>> {
    let limit = params.limit.unwrap_or(limits::LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > limits::LIST_LIMIT_MAX {
        return Err(HttpError::invalid(format!(
            "limit is {limit}; it must be between 1 and {}",
            limits::LIST_LIMIT_MAX
        )));
    }
    let prefix = params.prefix.as_deref().unwrap_or("");
    let (queues, more) = node
        .list_across(
            limit as usize,
            |state, group| {
                let (page, more) =
                    state
                        .queues
                        .list(prefix, params.after.as_deref(), limit as usize);
                (page.into_iter().map(|q| view(q, group)).collect(), more)
            },
            |q: &Queue| q.name.as_str(),
        )
        .await?;
    let next = more
        .then(|| queues.last().map(|q| q.name.clone()))
        .flatten();
    Ok(Json(QueueList { queues, next }))
}

/// `DELETE /v1/queues/{queue}`: 204.
pub async fn delete(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> HttpResult<StatusCode> {
    check_name(&name)?;
    node.propose(Command::DeleteQueue { queue: name }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets and removes tags of a queue (for the SQS protocol's TagQueue and UntagQueue).
pub async fn tag(
    node: &Node,
    name: String,
    set: std::collections::BTreeMap<String, String>,
    remove: Vec<String>,
) -> HttpResult<()> {
    check_name(&name)?;
    node.propose(Command::TagQueue {
        queue: name,
        set,
        remove,
    })
    .await?;
    Ok(())
}

/// `POST /v1/queues/{queue}/purge`.
pub async fn purge(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> HttpResult<Json<Purged>> {
    check_name(&name)?;
    let response = node.propose(Command::PurgeQueue { queue: name }).await?;
    let Response::Purged(purged) = response else {
        return Err(unexpected(&response).into());
    };
    Ok(Json(Purged { purged }))
}
