//! Redrive tasks: moving a dead-letter queue's messages back to the queues they came from.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Running,
    Completed,
    Cancelled,
}

/// A redrive task as the state machine keeps it. The leader moves messages in steps, each
/// a replicated command, at most `max_per_second`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveTaskState {
    pub id: u64,
    pub state: TaskState,
    pub max_per_second: Option<u32>,
    /// Dead letters waiting when the task started.
    pub total: u64,
    pub moved: u64,
    /// Dead letters whose source queue no longer exists; they stay as plain messages.
    pub failed: u64,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
}
