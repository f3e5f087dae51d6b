//! Liveness, readiness and metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::node::Node;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long a readiness probe waits for a replica to apply what was committed when it
/// asked: well inside the probe's timeout, and ample for a replica that keeps up.
const CATCH_UP_WITHIN: Duration = Duration::from_millis(800);

/// `GET /readyz`: 200 when every group of the node has a leader, applies what it knew to
/// be committed when asked, and the node is not shutting down; else 503 naming each group
/// that is not ready and why.
pub async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    if node.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    let groups = node.groups();
    let answers =
        futures::future::join_all(groups.iter().map(|g| g.catch_up(CATCH_UP_WITHIN))).await;
    let not_ready: String = groups
        .iter()
        .zip(answers)
        .filter_map(|(group, answer)| Some(format!("group {}: {}\n", group.id, answer.err()?)))
        .collect();
    if not_ready.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, not_ready)
    }
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.render(),
    )
}
