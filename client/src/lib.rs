//! sluice-client: a typed async client of the Sluice v1 HTTP API and every wire type it
//! speaks. The broker, the operator, the CLI, the end-to-end tests and the benchmark all
//! use these types, so each exists once.

#![forbid(unsafe_code)]

mod error;
pub mod names;
pub mod timefmt;
pub mod types;

use std::time::Duration;

pub use error::{ApiError, Error, ErrorBody, ErrorCode};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use types::*;

/// A client of one broker (any node: it forwards to the leader it needs).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    /// A client of the broker at `base_url`, e.g. `http://127.0.0.1:8080`.
    pub fn new(base_url: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        Self::with_http(base_url, http)
    }

    /// A client that uses the given `reqwest` client (timeouts, pools).
    pub fn with_http(base_url: &str, http: reqwest::Client) -> Result<Self, Error> {
        let base = Url::parse(base_url)
            .map_err(|e| Error::InvalidArgument(format!("base URL {base_url:?}: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(Error::InvalidArgument(format!(
                "base URL {base_url:?} cannot hold a path"
            )));
        }
        Ok(Self { http, base })
    }

    /// The broker's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            // `cannot_be_a_base` was ruled out in `with_http`.
            let mut path = url.path_segments_mut().expect("base URL holds a path");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    async fn call<B: Serialize + ?Sized, Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let mut request = self.http.request(method, self.url(segments));
        if let Some(query) = query {
            request = request.query(query);
        }
        if let Some(body) = body {
            // sonic-rs scans strings with SIMD: message bodies dominate what is encoded.
            let bytes = sonic_rs::to_vec(body)
                .map_err(|e| Error::InvalidArgument(format!("cannot encode the request: {e}")))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
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

    pub async fn send(&self, queue: &str, message: &SendMessage) -> Result<Sent, Error> {
        self.post(&["v1", "queues", queue, "messages"], message)
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
        let results: batch_wire::Results<batch_wire::SentOrError> = self
            .post(&["v1", "queues", queue, "messages"], &Batch { messages })
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

    // ---- the node ----

    /// True when the node answers `/healthz` with 200.
    pub async fn healthy(&self) -> Result<bool, Error> {
        let response = self.http.get(self.url(&["healthz"])).send().await?;
        Ok(response.status().is_success())
    }

    /// True when the node answers `/readyz` with 200 (has a leader and is caught up).
    pub async fn ready(&self) -> Result<bool, Error> {
        let response = self.http.get(self.url(&["readyz"])).send().await?;
        Ok(response.status().is_success())
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> Result<String, Error> {
        let response = self.http.get(self.url(&["metrics"])).send().await?;
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
                    self.base
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
