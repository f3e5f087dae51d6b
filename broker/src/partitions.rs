//! Keeps a partitioned topic's partitions in step with its partition 0, where clients'
//! changes land (see `crate::topic::partition`).
//!
//! A change of a topic's settings or subscriptions is replicated in partition 0's group
//! first; then [`sync`] copies partition 0's settings and subscriptions to the other
//! partitions, in their groups, before the request is answered, so a publish after the
//! answer reaches every subscription in every partition. A node that crashes between the
//! two leaves partitions behind; [`repair_loop`], on the leader of each partition 0's
//! group, finds them and syncs them again.
//!
//! Copies only add and update subscriptions: one that arrives late (from a leader that
//! lost its place) can never take a subscription, with its delivery state, away.
//! Subscriptions are taken away by [`remove_subscription`], and by the repair only while
//! partition 0's leader has applied everything committed. A node's copies go out one at
//! a time, each read from partition 0 as it is then. Copies carry partition 0's topic
//! id, so a partition a deleted topic left behind is started afresh when the name is
//! used again.

use std::sync::Arc;
use std::time::Duration;

use sluice_client::{ApiError, ErrorCode};

use crate::node::Node;
use crate::raft::command::Command;
use crate::topic::TopicState;
use crate::topic::config::{SubscriptionConfig, TopicConfig};
use crate::topic::partition::partition_name;

/// How often the leaders of partitioned topics check that every partition is in step.
const REPAIR_EVERY: Duration = Duration::from_secs(2);
/// How long a repair waits for its leader's read barrier before it leaves extra
/// subscriptions for the next round.
const AUTHORITY_WITHIN: Duration = Duration::from_millis(500);
/// The longest a repair waits for one partition's group.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(3);

/// What every partition copies from partition 0.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    topic_id: u64,
    config: TopicConfig,
    subscriptions: Vec<(String, SubscriptionConfig)>,
}

impl Shape {
    fn of(t: &TopicState) -> Self {
        Self {
            topic_id: t.id,
            config: t.config.clone(),
            subscriptions: t
                .subscriptions
                .values()
                .map(|s| (s.name.clone(), s.config.clone()))
                .collect(),
        }
    }

    fn read(node: &Node, topic: &str) -> Result<Self, ApiError> {
        let state = node.group_of(topic).state.read();
        Ok(Self::of(state.topics.get(topic)?))
    }

    fn command(&self, topic: &str, p: u32) -> Command {
        Command::SyncPartition {
            topic: partition_name(topic, p),
            topic_id: self.topic_id,
            config: self.config.clone(),
            subscriptions: self.subscriptions.clone(),
        }
    }
}

/// Proposes every command, all at once; the first error, if any, but for the
/// `tolerated` ones (the thing was gone already).
async fn propose_all(
    node: &Node,
    commands: impl IntoIterator<Item = Command>,
    tolerated: &[ErrorCode],
) -> Result<(), ApiError> {
    let answers = commands.into_iter().map(|c| node.propose(c));
    for answer in futures::future::join_all(answers).await {
        match answer {
            Err(e) if !tolerated.contains(&e.code) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Copies partition 0's settings and subscriptions to the topic's other partitions.
pub async fn sync(node: &Node, topic: &str) -> Result<(), ApiError> {
    let _one_at_a_time = node.partition_sync.lock().await;
    let shape = Shape::read(node, topic)?;
    propose_all(
        node,
        (1..shape.config.partitions).map(|p| shape.command(topic, p)),
        &[],
    )
    .await
}

/// Makes partitions `from..to` of a topic that is about to grow to `to`, copied from
/// partition 0 as it is, so that no publish is routed to a partition that does not
/// exist yet.
pub async fn grow(node: &Node, topic: &str, to: u32) -> Result<(), ApiError> {
    let _one_at_a_time = node.partition_sync.lock().await;
    let mut shape = Shape::read(node, topic)?;
    let from = shape.config.partitions.max(1);
    shape.config.partitions = to;
    propose_all(node, (from..to).map(|p| shape.command(topic, p)), &[]).await
}

/// Takes a subscription, removed from partition 0, away from the other partitions.
pub async fn remove_subscription(
    node: &Node,
    topic: &str,
    partitions: u32,
    sub: &str,
) -> Result<(), ApiError> {
    let _one_at_a_time = node.partition_sync.lock().await;
    let removals = (1..partitions).map(|p| Command::DeleteSubscription {
        topic: partition_name(topic, p),
        subscription: sub.to_string(),
    });
    let gone = [ErrorCode::TopicNotFound, ErrorCode::SubscriptionNotFound];
    propose_all(node, removals, &gone).await
}

/// Deletes partitions 1.. of a topic whose partition 0 is gone.
pub async fn delete(node: &Node, topic: &str, partitions: u32) -> Result<(), ApiError> {
    let deletes = (1..partitions).map(|p| Command::DeleteTopic {
        topic: partition_name(topic, p),
    });
    propose_all(node, deletes, &[ErrorCode::TopicNotFound]).await
}

/// Runs [`repair`] every [`REPAIR_EVERY`] until shutdown.
pub async fn repair_loop(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REPAIR_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        repair(&node).await;
    }
}

/// Syncs every partition that is not in step with its partition 0, for the partitioned
/// topics whose partition 0 this node leads, and takes away subscriptions partition 0
/// no longer has. The partitions are read from this node's replicas, which may lag:
/// syncing a partition that was already in step changes nothing.
pub async fn repair(node: &Node) {
    let _one_at_a_time = node.partition_sync.lock().await;
    let mut commands = Vec::new();
    for group in node.data_groups().filter(|g| g.is_leader()) {
        // Only a leader that applied everything committed knows which subscriptions
        // partition 0 no longer has.
        let authoritative = group.leads_and_applied_all(AUTHORITY_WITHIN).await;
        let shapes: Vec<(String, Shape)> = {
            let state = group.state.read();
            state
                .topics
                .iter()
                .filter(|t| t.config.partitions > 1)
                .map(|t| (t.name.clone(), Shape::of(t)))
                .collect()
        };
        for (topic, shape) in shapes {
            for p in 1..shape.config.partitions {
                let name = partition_name(&topic, p);
                let (in_step, extra) = {
                    let state = node.group_of(&name).state.read();
                    match state.topics.get(&name) {
                        Ok(t) => {
                            let mut copy = Shape::of(t);
                            let extra: Vec<String> = copy
                                .subscriptions
                                .iter()
                                .map(|(sub, _)| sub)
                                .filter(|sub| !shape.subscriptions.iter().any(|(s, _)| s == *sub))
                                .cloned()
                                .collect();
                            copy.subscriptions.retain(|(sub, _)| !extra.contains(sub));
                            (copy == shape, extra)
                        }
                        Err(_) => (false, Vec::new()),
                    }
                };
                if !in_step {
                    commands.push(shape.command(&topic, p));
                }
                if authoritative {
                    commands.extend(extra.into_iter().map(|subscription| {
                        Command::DeleteSubscription {
                            topic: name.clone(),
                            subscription,
                        }
                    }));
                }
            }
        }
    }
    let repairs = commands.into_iter().map(|command| async move {
        let what = command.kind();
        match tokio::time::timeout(REPAIR_TIMEOUT, node.propose(command)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(what, error = %e.message, "partition repair not replicated; trying again later"),
            Err(_) => tracing::debug!(what, "partition repair timed out; trying again later"),
        }
    });
    futures::future::join_all(repairs).await;
}
