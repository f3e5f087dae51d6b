//! A real HTTP endpoint on loopback that records the pushes a broker makes to it, and
//! fails them on demand, for the topic tests and the fan-out benchmark.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Push {
    /// The last path segment of the URL it was POSTed to (one per subscription).
    pub endpoint: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The status the sink answered.
    pub status: u16,
}

impl Push {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Inner {
    pushes: Vec<Push>,
    /// Per endpoint: how many more requests to fail with 500 (`u32::MAX`: all of them).
    failing: HashMap<String, u32>,
    /// Endpoints whose requests are held unanswered until released.
    held: HashSet<String>,
    /// Per endpoint: requests being held now.
    waiting: HashMap<String, u32>,
}

/// Sees each request instead of the sink keeping it (for benchmarks): endpoint, body.
pub type Observer = Arc<dyn Fn(&str, &[u8]) + Send + Sync>;

/// The sink; cheap to clone.
#[derive(Clone, Default)]
pub struct Sink {
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
    released: Arc<Notify>,
    observer: Option<Observer>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sink {
    /// Serves on a free loopback port; returns the sink and its base URL (add
    /// `/<endpoint>`).
    pub async fn start() -> Result<(Self, String)> {
        Self::serve(Self::default()).await
    }

    /// A sink that answers every request 200 at once and only shows it to `observer`.
    pub async fn start_observed(observer: Observer) -> Result<(Self, String)> {
        Self::serve(Self {
            observer: Some(observer),
            ..Self::default()
        })
        .await
    }

    async fn serve(sink: Self) -> Result<(Self, String)> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let router = sink.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((sink, base))
    }

    /// Every endpoint `/<name>`, recorded by this sink.
    fn router(&self) -> Router {
        Router::new()
            .route("/{endpoint}", post(receive))
            .with_state(self.clone())
    }

    /// Answers the next `count` requests to `endpoint` with 500 (`u32::MAX`: until told
    /// otherwise).
    pub fn fail(&self, endpoint: &str, count: u32) {
        lock(&self.inner)
            .failing
            .insert(endpoint.to_string(), count);
    }

    /// Holds requests to `endpoint` unanswered (a hung endpoint) until [`Sink::release`].
    pub fn hold(&self, endpoint: &str) {
        lock(&self.inner).held.insert(endpoint.to_string());
    }

    pub fn release(&self, endpoint: &str) {
        lock(&self.inner).held.remove(endpoint);
        self.released.notify_waiters();
    }

    /// Requests to `endpoint` being held now.
    pub fn waiting(&self, endpoint: &str) -> u32 {
        lock(&self.inner)
            .waiting
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Every answered request so far.
    pub fn pushes(&self) -> Vec<Push> {
        lock(&self.inner).pushes.clone()
    }

    /// Requests to `endpoint` answered 2xx.
    pub fn delivered(&self, endpoint: &str) -> Vec<Push> {
        lock(&self.inner)
            .pushes
            .iter()
            .filter(|p| p.endpoint == endpoint && p.status < 300)
            .cloned()
            .collect()
    }

    /// Waits until `done` holds for the requests answered so far, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: std::time::Duration,
        done: impl Fn(&[Push]) -> bool,
    ) -> bool {
        self.wait(timeout, |inner| done(&inner.pushes)).await
    }

    /// Waits until `count` requests to `endpoint` are being held, or `timeout` passes.
    pub async fn wait_held(
        &self,
        timeout: std::time::Duration,
        endpoint: &str,
        count: u32,
    ) -> bool {
        self.wait(timeout, |inner| {
            inner.waiting.get(endpoint).copied().unwrap_or(0) >= count
        })
        .await
    }

    async fn wait(&self, timeout: std::time::Duration, done: impl Fn(&Inner) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if done(&lock(&self.inner)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return done(&lock(&self.inner));
            }
        }
    }
}

async fn receive(
    State(sink): State<Sink>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if let Some(observe) = &sink.observer {
        observe(&endpoint, &body);
        return StatusCode::OK;
    }
    let mut counted = false;
    loop {
        let released = sink.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        {
            let mut inner = lock(&sink.inner);
            if !inner.held.contains(&endpoint) {
                if counted {
                    *inner.waiting.entry(endpoint.clone()).or_default() -= 1;
                }
                break;
            }
            if !counted {
                counted = true;
                *inner.waiting.entry(endpoint.clone()).or_default() += 1;
            }
        }
        sink.arrived.notify_waiters();
        released.await;
    }
    let status = {
        let mut inner = lock(&sink.inner);
        let status = match inner.failing.get_mut(&endpoint) {
            Some(0) | None => StatusCode::OK,
            Some(left) => {
                if *left != u32::MAX {
                    *left -= 1;
                }
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        inner.pushes.push(Push {
            endpoint,
            headers,
            body,
            at: Instant::now(),
            status: status.as_u16(),
        });
        status
    };
    sink.arrived.notify_waiters();
    status
}

/// The sink's certificate: a self-signed one for `127.0.0.1`, to trust with
/// `--push-ca-file`.
pub struct SinkCertificate {
    pub pem: String,
}

impl Sink {
    /// Serves over TLS on a free loopback port; the sink, its `https://` base URL and
    /// the certificate a broker must trust to reach it.
    pub async fn start_tls() -> Result<(Self, String, SinkCertificate)> {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::service::TowerToHyperService;
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

        let generated = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base = format!("https://{}", listener.local_addr()?);
        let sink = Self::default();
        let router = sink.router();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                tokio::spawn(async move {
                    // A client that fails the handshake (an untrusted certificate) just
                    // goes away; nothing reaches the sink.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok((
            sink,
            base,
            SinkCertificate {
                pem: generated.cert.pem(),
            },
        ))
    }
}
