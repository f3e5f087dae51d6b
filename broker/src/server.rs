//! Runs a broker: opens its node, serves the client API and the peer port, and shuts down
//! in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::push::deliver::{Mailer, MailerError};
use crate::raft::GroupError;
use crate::{http, peer, push};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Mailer(#[from] MailerError),
    #[error(transparent)]
    AccessKeys(#[from] crate::compat::auth::KeyFileError),
    #[error(transparent)]
    PushTls(#[from] crate::push::client::PushTlsError),
    #[error("cannot open the node: {0}")]
    Open(#[from] GroupError),
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

/// Serves until `shutdown` resolves; then stops taking requests, lets the ones in progress
/// finish, hands leadership to another node, stops Raft and syncs the log. The peer port
/// stays open until Raft has stopped, so the handover can happen.
pub async fn serve(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let client_listener = bind(config.listen).await?;
    let peer_listener = bind(config.peer_listen).await?;
    let metrics = Arc::new(Metrics::new());
    let mailer = match &config.smtp_server {
        Some(server) => Some(Mailer::new(server, &config.smtp_from)?),
        None => None,
    };
    let access_keys = match &config.access_keys {
        Some(path) => Some(Arc::new(crate::compat::auth::AccessKeys::load(path)?)),
        None => None,
    };
    let push_client = crate::push::client::PushClient::new(config.push_ca_file.as_deref())?;
    let node = Node::open(&config, metrics, mailer.clone(), access_keys).await?;
    tracing::info!(
        node = node.node_id,
        listen = %config.listen,
        peer = %config.peer_listen,
        data = %config.data_dir.display(),
        "sluice broker serving"
    );
    let raft_stopped = Arc::new(Notify::new());
    let peer_server = {
        let stopped = raft_stopped.clone();
        let router = peer::router(node.clone());
        tokio::spawn(async move {
            axum::serve(peer_listener, router)
                .with_graceful_shutdown(async move { stopped.notified().await })
                .await
        })
    };
    let housekeeping = tokio::spawn(node.clone().housekeeping());
    let shipping = tokio::spawn(node.clone().ship_outboxes());
    let pushing = tokio::spawn(push::supervise(node.clone(), mailer, push_client));
    let repairing = tokio::spawn(crate::partitions::repair_loop(node.clone()));
    let draining = node.clone();
    let served = axum::serve(client_listener, http::router(node.clone()))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests");
            draining.begin_shutdown();
        })
        .await;
    node.finish_shutdown().await;
    raft_stopped.notify_one();
    let _ = housekeeping.await;
    let _ = shipping.await;
    let _ = pushing.await;
    let _ = repairing.await;
    if let Ok(Err(e)) = peer_server.await {
        tracing::warn!(error = %e, "peer server");
    }
    tracing::info!("stopped");
    served.map_err(ServeError::Serve)
}
