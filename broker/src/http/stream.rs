//! `GET /v1/topics/{topic}/subscriptions/{sub}/stream`: a WebSocket that carries a
//! timeline subscription's messages as they are published.
//!
//! Any node serves a stream from its own replica of the timeline (followers too), so
//! streams spread over the cluster. A client commits its device's cursor by sending
//! `{"commit": "<cursor>"}`; the commit is replicated in each partition's group.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use sluice_client::{ApiError, ErrorCode, PullQuery, StreamCommit, StreamEvent};
use tokio::sync::mpsc;

use super::error::HttpResult;
use super::extract::{Path, Query};
use super::topics::{
    TimelineWaiters, check_subscription, check_topic, commit_position, decode_cursor,
    read_timeline, start_position, topic_shape,
};
use crate::node::Node;

/// Messages read from the timeline per send burst, unless the client asks for fewer.
const STREAM_BATCH: u32 = 64;
/// The longest a stream waits without looking again (a safety net for missed wakes).
const IDLE_MAX: Duration = Duration::from_secs(1);

/// Upgrades to a WebSocket once the subscription and the starting position check out.
pub async fn stream(
    State(node): State<Arc<Node>>,
    Path((topic, sub)): Path<(String, String)>,
    Query(query): Query<PullQuery>,
    upgrade: WebSocketUpgrade,
) -> HttpResult<Response> {
    check_topic(&topic)?;
    check_subscription(&sub)?;
    let start = start_position(
        &node,
        &topic,
        &sub,
        query.after.as_deref(),
        query.device.as_deref(),
    )?;
    let batch = query
        .max
        .unwrap_or(STREAM_BATCH)
        .clamp(1, sluice_client::limits::PULL_MAX) as usize;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let session = Session {
            node,
            topic,
            sub,
            device: query.device,
        };
        session.run(socket, start, batch).await;
    }))
}

struct Session {
    node: Arc<Node>,
    topic: String,
    sub: String,
    device: Option<String>,
}

impl Session {
    async fn run(self, socket: WebSocket, start: Vec<u64>, batch: usize) {
        let (mut sender, mut receiver) = socket.split();
        let (replies, mut outbox) = mpsc::channel::<StreamEvent>(16);
        let this = &self;
        // Reads the client's commits and answers each through the writer.
        let reading = async move {
            while let Some(Ok(frame)) = receiver.next().await {
                let text = match frame {
                    Message::Text(text) => text,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let event = match this.commit(text.as_str()).await {
                    Ok(cursor) => StreamEvent::Committed { cursor },
                    Err(error) => StreamEvent::Error { error },
                };
                if replies.send(event).await.is_err() {
                    break;
                }
            }
        };
        // Sends new messages as they arrive, and the answers to commits.
        let writing = async move {
            let node = &this.node;
            let mut waiters = TimelineWaiters::new(node, &this.topic, start.len());
            let mut shutdown = node.shutdown_signal();
            let mut position = start;
            loop {
                // A topic that grew: its new partitions are read from their start.
                if let Ok((_, partitions)) = topic_shape(node, &this.topic)
                    && partitions as usize > position.len()
                {
                    position.resize(partitions as usize, 0);
                    waiters.release();
                    waiters = TimelineWaiters::new(node, &this.topic, position.len());
                }
                let open = {
                    let published = waiters.published();
                    tokio::pin!(published);
                    let mut events = Vec::new();
                    let mut gone = false;
                    let caught_up =
                        match read_timeline(node, &this.topic, &this.sub, &position, batch) {
                            Ok((messages, resume)) => {
                                let caught_up = resume == position;
                                position = resume;
                                events.extend(
                                    messages
                                        .into_iter()
                                        .map(|message| StreamEvent::Message { message }),
                                );
                                caught_up
                            }
                            // The topic or subscription is gone: say so and end the stream.
                            Err(e) => {
                                events.push(StreamEvent::Error { error: e.0 });
                                gone = true;
                                false
                            }
                        };
                    while let Ok(event) = outbox.try_recv() {
                        events.push(event);
                    }
                    let mut open = !gone;
                    for event in &events {
                        if send(&mut sender, event).await.is_err() {
                            open = false;
                            break;
                        }
                    }
                    if open && caught_up {
                        tokio::select! {
                            _ = &mut published => {}
                            _ = tokio::time::sleep(IDLE_MAX) => {}
                            _ = shutdown.changed() => open = false,
                            event = outbox.recv() => match event {
                                Some(event) => open = send(&mut sender, &event).await.is_ok(),
                                None => open = false,
                            },
                        }
                    }
                    open
                };
                if !open || *shutdown.borrow() {
                    break;
                }
            }
            waiters.release();
            let _ = sender.close().await;
        };
        tokio::select! {
            _ = reading => {}
            _ = writing => {}
        }
    }

    /// Commits the device's cursor from a client frame; answers the committed cursor.
    async fn commit(&self, frame: &str) -> Result<String, ApiError> {
        let Some(device) = &self.device else {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "this stream has no device; open it with ?device=<name> to commit cursors",
            ));
        };
        let commit: StreamCommit = serde_json::from_str(frame).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("expected {{\"commit\": \"<cursor>\"}}: {e}"),
            )
        })?;
        let (topic_id, partitions) = topic_shape(&self.node, &self.topic).map_err(|e| e.0)?;
        let position = decode_cursor(topic_id, partitions, &commit.commit).map_err(|e| e.0)?;
        commit_position(&self.node, &self.topic, &self.sub, device, position).await?;
        Ok(commit.commit)
    }
}

async fn send(
    sender: &mut futures::stream::SplitSink<WebSocket, Message>,
    event: &StreamEvent,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(event).unwrap_or_default();
    sender.send(Message::Text(text.into())).await
}
