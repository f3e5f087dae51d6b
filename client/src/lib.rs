//! sluice-client: a typed async client of the Sluice v1 HTTP API and every wire type it
//! speaks. The broker, the operator, the CLI, the end-to-end tests and the benchmark all
//! use these types, so each exists once.

#![forbid(unsafe_code)]

mod error;
pub mod names;
pub mod timefmt;
pub mod types;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub use error::{ApiError, Error, ErrorBody, ErrorCode};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use types::*;

/// A client of a Sluice cluster. Any node serves any request (it forwards to the leader
/// it needs). Requests that fail for a passing reason (no leader yet, a node down, shed
/// load, an error answered by something other than a broker) are retried, against the
/// next node when several are known, for up to the retry window; sends carry an
/// idempotency key, so a retried send is stored once.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    bases: Arc<Vec<Url>>,
    /// The node requests go to first; moves on when one fails.
    current: Arc<AtomicUsize>,
    retry_for: Duration,
}

/// The default time a request is retried for.
pub const RETRY_FOR: Duration = Duration::from_secs(15);

/// The header that makes a send idempotent: a retry with the same key within two
/// minutes answers as the first did and stores nothing.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A fresh idempotency key: 128 random bits as 32 hex digits.
pub fn idempotency_key() -> String {
    random_token()
}

/// 128 random bits as 32 hex digits (keys, secrets).
pub fn random_token() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // RandomState is seeded from the OS for each process.
    let random = std::collections::hash_map::RandomState::new();
    let high = random.hash_one((now, n, std::process::id(), 1u8));
    let low = random.hash_one((now, n, std::process::id(), 2u8));
    format!("{high:016x}{low:016x}")
}

impl Client {
    /// A client of the broker at `base_url`, e.g. `http://127.0.0.1:8080`.
    pub fn new(base_url: &str) -> Result<Self, Error> {
        Self::with_nodes(&[base_url])
    }

    /// A client of a cluster, given the base URL of one or more of its nodes.
    pub fn with_nodes(base_urls: &[&str]) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        Self::with_http(base_urls, http)
    }

    /// A client that uses the given `reqwest` client (timeouts, pools).
    pub fn with_http(base_urls: &[&str], http: reqwest::Client) -> Result<Self, Error> {
        let mut bases = Vec::new();
        for base_url in base_urls {
            let base = Url::parse(base_url)
                .map_err(|e| Error::InvalidArgument(format!("base URL {base_url:?}: {e}")))?;
            if base.cannot_be_a_base() {
                return Err(Error::InvalidArgument(format!(
                    "base URL {base_url:?} cannot hold a path"
                )));
            }
            bases.push(base);
        }
        if bases.is_empty() {
            return Err(Error::InvalidArgument("no base URL given".into()));
        }
        Ok(Self {
            http,
            bases: Arc::new(bases),
            current: Arc::new(AtomicUsize::new(0)),
            retry_for: RETRY_FOR,
        })
    }

    /// Retries failed requests for this long (zero: never).
    pub fn retry_for(mut self, window: Duration) -> Self {
        self.retry_for = window;
        self
    }

    /// The base URL requests go to now.
    pub fn base_url(&self) -> &Url {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    fn url(&self, base: &Url, segments: &[&str]) -> Url {
        let mut url = base.clone();
        {
            // `cannot_be_a_base` was ruled out in `with_http`.
            let mut path = url.path_segments_mut().expect("base URL holds a path");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// Moves on to the next known node after `base` failed.
    fn next_node(&self, failed: usize) {
        let _ = self.current.compare_exchange(
            failed,
            (failed + 1) % self.bases.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    async fn call<B: Serialize + ?Sized, Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<T, Error> {
        self.call_keyed(method, segments, query, body, None).await
    }

    /// One request, retried while it fails for a passing reason. `key` goes in the
    /// idempotency header of every attempt.
    async fn call_keyed<B: Serialize + ?Sized, Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<&Q>,
        body: Option<&B>,
        key: Option<&str>,
    ) -> Result<T, Error> {
        // sonic-rs scans strings with SIMD: message bodies dominate what is encoded.
        let body = match body {
            Some(body) => Some(bytes::Bytes::from(sonic_rs::to_vec(body).map_err(|e| {
                Error::InvalidArgument(format!("cannot encode the request: {e}"))
            })?)),
            None => None,
        };
        let deadline = tokio::time::Instant::now() + self.retry_for;
        let mut backoff = Duration::from_millis(25);
        loop {
            let node = self.current.load(Ordering::Relaxed) % self.bases.len();
            let mut request = self
                .http
                .request(method.clone(), self.url(&self.bases[node], segments));
            if let Some(query) = query {
                request = request.query(query);
            }
            if let Some(key) = key {
                request = request.header(IDEMPOTENCY_KEY, key);
            }
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let result = Self::answer(request).await;
            let passing = match &result {
                Err(Error::Transport(_)) => true,
                Err(Error::Api { error, .. }) => error.code.is_transient(),
                // A broker's every error has an error body: an error status without one
                // came from something between (a proxy, a Service not yet routed).
                Err(Error::Decode { status, .. }) => *status >= 400,
                _ => false,
            };
            if !passing || tokio::time::Instant::now() + backoff > deadline {
                return result;
            }
            self.next_node(node);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    async fn answer<T: DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, Error> {
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status.is_success() {
            let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            sonic_rs::from_slice(bytes).map_err(|e| Error::Decode {
                status: status.as_u16(),
                detail: e.to_string(),
            })
        } else {
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => Err(Error::Api {
                    status: status.as_u16(),
                    error: body.error,
                }),
                Err(_) => Err(Error::Decode {
                    status: status.as_u16(),
                    detail: String::from_utf8_lossy(&bytes).into_owned(),
                }),
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, Error> {
        self.call::<(), (), T>(Method::GET, segments, None, None)
            .await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, Error> {
        self.call::<B, (), T>(Method::POST, segments, None, Some(body))
            .await
    }

    // ---- queues ----

    /// Creates a queue, or updates the mutable attributes of an existing one.
    pub async fn put_queue(
        &self,
        queue: &str,
        attributes: &QueueAttributesUpdate,
    ) -> Result<Queue, Error> {
        self.call::<_, (), _>(
            Method::PUT,
            &["v1", "queues", queue],
            None,
            Some(attributes),
        )
        .await
    }

    pub async fn get_queue(&self, queue: &str) -> Result<Queue, Error> {
        self.get(&["v1", "queues", queue]).await
    }

    /// One page of queues, in name order.
    pub async fn list_queues(&self, params: &ListQueues) -> Result<QueueList, Error> {
        self.call::<(), _, _>(Method::GET, &["v1", "queues"], Some(params), None)
            .await
    }

    pub async fn delete_queue(&self, queue: &str) -> Result<(), Error> {
        self.call::<(), (), ()>(Method::DELETE, &["v1", "queues", queue], None, None)
            .await
    }

    /// Drops every message of the queue and keeps the queue.
    pub async fn purge_queue(&self, queue: &str) -> Result<Purged, Error> {
        self.post(&["v1", "queues", queue, "purge"], &serde_json::json!({}))
            .await
    }

    // ---- messages ----

    /// Sends one message (retried safely: the broker stores it once).
    pub async fn send(&self, queue: &str, message: &SendMessage) -> Result<Sent, Error> {
        let key = idempotency_key();
        self.call_keyed::<_, (), _>(
            Method::POST,
            &["v1", "queues", queue, "messages"],
            None,
            Some(message),
            Some(&key),
        )
        .await
    }

    /// Sends a batch; one result per message, in order.
    pub async fn send_batch(
        &self,
        queue: &str,
        messages: &[SendMessage],
    ) -> Result<Vec<Result<Sent, ApiError>>, Error> {
        #[derive(Serialize)]
        struct Batch<'a> {
            messages: &'a [SendMessage],
        }
        let key = idempotency_key();
        let results: batch_wire::Results<batch_wire::SentOrError> = self
            .call_keyed::<_, (), _>(
                Method::POST,
                &["v1", "queues", queue, "messages"],
                None,
                Some(&Batch { messages }),
                Some(&key),
            )
            .await?;
        Ok(results.results.into_iter().map(Into::into).collect())
    }

    /// Receives up to `request.max` messages, waiting up to `waitSeconds` for the first.
    pub async fn receive(
        &self,
        queue: &str,
        request: &ReceiveRequest,
    ) -> Result<Vec<Message>, Error> {
        let messages: Messages = self
            .post(&["v1", "queues", queue, "receive"], request)
            .await?;
        Ok(messages.messages)
    }

    /// Acknowledges a batch of receipts; one result per receipt, in order.
    pub async fn ack(
        &self,
        queue: &str,
        receipts: &[String],
    ) -> Result<Vec<Result<(), ApiError>>, Error> {
        #[derive(Serialize)]
        struct Ack<'a> {
            receipts: &'a [String],
        }
        let results: batch_wire::Results<batch_wire::AckedOrError> = self
            .post(&["v1", "queues", queue, "ack"], &Ack { receipts })
            .await?;
        Ok(results.results.into_iter().map(Into::into).collect())
    }

    /// Acknowledges one receipt.
    pub async fn ack_one(&self, queue: &str, receipt: &str) -> Result<(), Error> {
        self.call::<(), (), ()>(
            Method::DELETE,
            &["v1", "queues", queue, "receipts", receipt],
            None,
            None,
        )
        .await
    }

    /// Changes the visibility of a batch of received messages; a new receipt each.
    pub async fn change_visibility(
        &self,
        queue: &str,
        entries: &[VisibilityEntry],
    ) -> Result<Vec<Result<NewReceipt, ApiError>>, Error> {
        #[derive(Serialize)]
        struct Visibility<'a> {
            entries: &'a [VisibilityEntry],
        }
        let results: batch_wire::Results<batch_wire::ReceiptOrError> = self
            .post(
                &["v1", "queues", queue, "visibility"],
                &Visibility { entries },
            )
            .await?;
        Ok(results.results.into_iter().map(Into::into).collect())
    }

    /// Hides (or shows, with 0) one received message for `seconds` from now.
    pub async fn change_visibility_one(
        &self,
        queue: &str,
        receipt: &str,
        seconds: u32,
    ) -> Result<NewReceipt, Error> {
        self.call::<_, (), _>(
            Method::PUT,
            &["v1", "queues", queue, "receipts", receipt, "visibility"],
            None,
            Some(&VisibilityChange { seconds }),
        )
        .await
    }

    /// Looks at up to `max` messages that a receive would return, without receiving them.
    pub async fn peek(&self, queue: &str, max: u32) -> Result<Vec<Message>, Error> {
        let messages: Messages = self
            .call::<(), _, _>(
                Method::GET,
                &["v1", "queues", queue, "peek"],
                Some(&[("max", max)]),
                None,
            )
            .await?;
        Ok(messages.messages)
    }

    /// One message by id, while it is in the queue.
    pub async fn get_message(&self, queue: &str, id: &str) -> Result<Message, Error> {
        self.get(&["v1", "queues", queue, "messages", id]).await
    }

    /// Messages in the queue with the given key and send time range.
    pub async fn query_messages(
        &self,
        queue: &str,
        query: &MessageQuery,
    ) -> Result<Vec<Message>, Error> {
        let messages: Messages = self
            .call::<(), _, _>(
                Method::GET,
                &["v1", "queues", queue, "messages"],
                Some(query),
                None,
            )
            .await?;
        Ok(messages.messages)
    }

    // ---- redrive ----

    /// Starts moving the messages of dead-letter queue `queue` back to their sources.
    pub async fn start_redrive(
        &self,
        queue: &str,
        request: &RedriveRequest,
    ) -> Result<RedriveTask, Error> {
        self.post(&["v1", "queues", queue, "redrive"], request)
            .await
    }

    pub async fn list_redrives(&self, queue: &str) -> Result<Vec<RedriveTask>, Error> {
        let tasks: RedriveTasks = self.get(&["v1", "queues", queue, "redrive"]).await?;
        Ok(tasks.tasks)
    }

    /// Cancels the running redrive of `queue`; messages already moved stay moved.
    pub async fn cancel_redrive(&self, queue: &str) -> Result<RedriveTask, Error> {
        self.call::<(), (), _>(
            Method::DELETE,
            &["v1", "queues", queue, "redrive"],
            None,
            None,
        )
        .await
    }

    // ---- topics ----

    /// Creates a topic, or updates the attributes of an existing one.
    pub async fn put_topic(
        &self,
        topic: &str,
        attributes: &TopicAttributesUpdate,
    ) -> Result<Topic, Error> {
        self.call::<_, (), _>(
            Method::PUT,
            &["v1", "topics", topic],
            None,
            Some(attributes),
        )
        .await
    }

    pub async fn get_topic(&self, topic: &str) -> Result<Topic, Error> {
        self.get(&["v1", "topics", topic]).await
    }

    /// One page of topics, in name order.
    pub async fn list_topics(&self, params: &ListQueues) -> Result<TopicList, Error> {
        self.call::<(), _, _>(Method::GET, &["v1", "topics"], Some(params), None)
            .await
    }

    /// Deletes a topic with its subscriptions and timeline.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), Error> {
        self.call::<(), (), ()>(Method::DELETE, &["v1", "topics", topic], None, None)
            .await
    }

    /// Publishes one message (retried safely: the broker stores it once).
    pub async fn publish(&self, topic: &str, message: &PublishMessage) -> Result<Sent, Error> {
        let key = idempotency_key();
        self.call_keyed::<_, (), _>(
            Method::POST,
            &["v1", "topics", topic, "messages"],
            None,
            Some(message),
            Some(&key),
        )
        .await
    }

    /// Publishes a batch; one result per message, in order.
    pub async fn publish_batch(
        &self,
        topic: &str,
        messages: &[PublishMessage],
    ) -> Result<Vec<Result<Sent, ApiError>>, Error> {
        #[derive(Serialize)]
        struct Batch<'a> {
            messages: &'a [PublishMessage],
        }
        let key = idempotency_key();
        let results: batch_wire::Results<batch_wire::SentOrError> = self
            .call_keyed::<_, (), _>(
                Method::POST,
                &["v1", "topics", topic, "messages"],
                None,
                Some(&Batch { messages }),
                Some(&key),
            )
            .await?;
        Ok(results.results.into_iter().map(Into::into).collect())
    }

    /// Creates a subscription, or replaces an existing one's settings.
    pub async fn put_subscription(
        &self,
        topic: &str,
        subscription: &str,
        spec: &SubscriptionSpec,
    ) -> Result<Subscription, Error> {
        self.call::<_, (), _>(
            Method::PUT,
            &["v1", "topics", topic, "subscriptions", subscription],
            None,
            Some(spec),
        )
        .await
    }

    pub async fn get_subscription(
        &self,
        topic: &str,
        subscription: &str,
    ) -> Result<Subscription, Error> {
        self.get(&["v1", "topics", topic, "subscriptions", subscription])
            .await
    }

    pub async fn list_subscriptions(&self, topic: &str) -> Result<Vec<Subscription>, Error> {
        let list: SubscriptionList = self.get(&["v1", "topics", topic, "subscriptions"]).await?;
        Ok(list.subscriptions)
    }

    pub async fn delete_subscription(&self, topic: &str, subscription: &str) -> Result<(), Error> {
        self.call::<(), (), ()>(
            Method::DELETE,
            &["v1", "topics", topic, "subscriptions", subscription],
            None,
            None,
        )
        .await
    }

    /// Reads a pull subscription's timeline after `query.after` (or the device's
    /// committed cursor), waiting up to `waitSeconds` for the first message.
    pub async fn pull(
        &self,
        topic: &str,
        subscription: &str,
        query: &PullQuery,
    ) -> Result<PullResponse, Error> {
        self.call::<(), _, _>(
            Method::GET,
            &[
                "v1",
                "topics",
                topic,
                "subscriptions",
                subscription,
                "messages",
            ],
            Some(query),
            None,
        )
        .await
    }

    /// Commits a device's position on a timeline subscription.
    pub async fn commit_cursor(
        &self,
        topic: &str,
        subscription: &str,
        device: &str,
        cursor: &str,
    ) -> Result<(), Error> {
        let _: CursorPosition = self
            .call::<_, (), _>(
                Method::PUT,
                &[
                    "v1",
                    "topics",
                    topic,
                    "subscriptions",
                    subscription,
                    "cursors",
                    device,
                ],
                None,
                Some(&CursorPosition {
                    cursor: cursor.to_string(),
                }),
            )
            .await?;
        Ok(())
    }

    /// A device's committed position (the oldest retained message if it has none).
    pub async fn get_cursor(
        &self,
        topic: &str,
        subscription: &str,
        device: &str,
    ) -> Result<String, Error> {
        let position: CursorPosition = self
            .get(&[
                "v1",
                "topics",
                topic,
                "subscriptions",
                subscription,
                "cursors",
                device,
            ])
            .await?;
        Ok(position.cursor)
    }

    // ---- the cluster ----

    /// Members, their roles, groups, leaders and lag.
    pub async fn cluster(&self) -> Result<ClusterStatus, Error> {
        self.get(&["v1", "cluster"]).await
    }

    /// Adds a node: it joins as a learner and becomes a voter once caught up.
    pub async fn add_member(&self, id: u64, peer_address: &str) -> Result<ClusterStatus, Error> {
        self.post(
            &["v1", "cluster", "members"],
            &AddMember {
                id,
                peer_address: peer_address.to_string(),
            },
        )
        .await
    }

    /// Removes a node from the cluster (after moving its leaderships away).
    pub async fn remove_member(&self, id: u64) -> Result<ClusterStatus, Error> {
        let id = id.to_string();
        self.call::<(), (), _>(
            Method::DELETE,
            &["v1", "cluster", "members", &id],
            None,
            None,
        )
        .await
    }

    /// Hands a node's leaderships to other nodes, before it restarts.
    pub async fn drain_member(&self, id: u64) -> Result<ClusterStatus, Error> {
        let id = id.to_string();
        self.post(
            &["v1", "cluster", "members", &id, "drain"],
            &serde_json::json!({}),
        )
        .await
    }

    // ---- the node ----

    /// True when the node answers `/healthz` with 200.
    pub async fn healthy(&self) -> Result<bool, Error> {
        let response = self
            .http
            .get(self.url(self.base_url(), &["healthz"]))
            .send()
            .await?;
        Ok(response.status().is_success())
    }

    /// True when the node answers `/readyz` with 200 (has a leader and is caught up).
    pub async fn ready(&self) -> Result<bool, Error> {
        let response = self
            .http
            .get(self.url(self.base_url(), &["readyz"]))
            .send()
            .await?;
        Ok(response.status().is_success())
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> Result<String, Error> {
        let response = self
            .http
            .get(self.url(self.base_url(), &["metrics"]))
            .send()
            .await?;
        Ok(response.text().await?)
    }

    /// Waits until `/readyz` answers 200, polling every 20 ms, or gives up after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(true) = self.ready().await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "broker at {} not ready after {timeout:?}",
                    self.base_url()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers the first `gateway` requests as a network gateway does for
    /// an address nothing routes yet (an empty 404), then as a broker.
    async fn flaky_route(gateway: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let answer = if n < gateway {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_string()
                } else {
                    let body = r#"{"queues":[]}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn an_error_without_a_broker_body_is_retried() {
        let client = Client::new(&flaky_route(2).await).expect("client");
        let list = client
            .list_queues(&ListQueues::default())
            .await
            .expect("answered by the broker on the third attempt");
        assert!(list.queues.is_empty());
    }

    #[tokio::test]
    async fn a_gateway_error_that_persists_is_reported_after_the_retry_window() {
        let client = Client::new(&flaky_route(usize::MAX).await)
            .expect("client")
            .retry_for(Duration::from_millis(200));
        match client.list_queues(&ListQueues::default()).await {
            Err(Error::Decode { status: 404, .. }) => {}
            other => panic!("expected the gateway's 404 after the retry window: {other:?}"),
        }
    }
}
