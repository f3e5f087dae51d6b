//! Runs a broker: opens its node, serves the client API, and shuts down in order.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::BrokerConfig;
use crate::http;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::raft::GroupError;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the node: {0}")]
    Open(#[from] GroupError),
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Serves until `shutdown` resolves; then stops taking requests, lets the ones in progress
/// finish, stops Raft and syncs the log.
pub async fn serve(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let metrics = Arc::new(Metrics::new());
    let node = Node::open(&config, metrics).await?;
    tracing::info!(
        node = node.node_id,
        listen = %config.listen,
        data = %config.data_dir.display(),
        "sluice broker serving"
    );
    let housekeeping = tokio::spawn(node.clone().housekeeping());
    let app = http::router(node.clone());
    let draining = node.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests");
            draining.begin_shutdown();
        })
        .await;
    node.finish_shutdown().await;
    let _ = housekeeping.await;
    tracing::info!("stopped");
    served.map_err(ServeError::Serve)
}
