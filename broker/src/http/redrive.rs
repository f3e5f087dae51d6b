//! Redrive: move a dead-letter queue's messages back to the queues they came from.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use sluice_client::{RedriveRequest, RedriveState, RedriveTask, RedriveTasks};

use super::error::{HttpError, HttpResult};
use super::extract::{Json, Path};
use super::queues::{check_name, time};
use crate::node::Node;
use crate::queue::redrive::{RedriveTaskState, TaskState};
use crate::raft::command::{Command, Response};
use crate::raft::state_machine::unexpected;

fn wire(queue: &str, t: &RedriveTaskState) -> RedriveTask {
    RedriveTask {
        id: t.id.to_string(),
        queue: queue.to_string(),
        state: match t.state {
            TaskState::Running => RedriveState::Running,
            TaskState::Completed => RedriveState::Completed,
            TaskState::Cancelled => RedriveState::Cancelled,
        },
        max_per_second: t.max_per_second,
        total: t.total,
        moved: t.moved,
        failed: t.failed,
        started_at: time(t.started_ms),
        finished_at: t.finished_ms.map(time),
    }
}

fn task(queue: &str, response: Response) -> HttpResult<Json<RedriveTask>> {
    match response {
        Response::Redrive(t) => Ok(Json(wire(queue, &t))),
        other => Err(unexpected(&other).into()),
    }
}

/// `POST /v1/queues/{queue}/redrive`: 201 with the new task.
pub async fn start(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(request): Json<RedriveRequest>,
) -> HttpResult<(StatusCode, Json<RedriveTask>)> {
    check_name(&name)?;
    if request.max_per_second == Some(0) {
        return Err(HttpError::invalid(
            "maxPerSecond is 0; leave it out for no limit",
        ));
    }
    let response = node
        .propose(Command::StartRedrive {
            queue: name.clone(),
            max_per_second: request.max_per_second,
        })
        .await?;
    Ok((StatusCode::CREATED, task(&name, response)?))
}

/// `GET /v1/queues/{queue}/redrive`: the running task first, then recent ones.
pub async fn list(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> HttpResult<Json<RedriveTasks>> {
    check_name(&name)?;
    let state = node.group_of(&name).state.read();
    let tasks = state
        .queues
        .redrive_tasks(&name)?
        .iter()
        .map(|t| wire(&name, t))
        .collect();
    Ok(Json(RedriveTasks { tasks }))
}

/// `DELETE /v1/queues/{queue}/redrive`: cancels the running task.
pub async fn cancel(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> HttpResult<Json<RedriveTask>> {
    check_name(&name)?;
    let response = node
        .propose(Command::CancelRedrive {
            queue: name.clone(),
        })
        .await?;
    task(&name, response)
}
