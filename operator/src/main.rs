//! `sluice-operator run` reconciles Sluice resources; `sluice-operator crds` prints or
//! writes their CRDs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::routing::get;
use clap::{Parser, Subcommand};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::{Api, Resource};
use sluice_operator::cluster;
use sluice_operator::context::{Capabilities, Context};
use sluice_operator::crd::{self, Queue, SluiceCluster, Subscription, Topic};
use sluice_operator::lease::{LeaseLock, RETRY_INTERVAL};
use sluice_operator::metrics::Metrics;
use sluice_operator::topology::{self, Topology};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "sluice-operator",
    version,
    about = "The Sluice Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile SluiceCluster, Queue, Topic and Subscription resources.
    Run(RunArgs),
    /// Print every CRD as YAML (`kubectl apply -f -` takes it), or write one file per
    /// kind into a directory.
    Crds {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Delete the Sluice resources matching a label selector in a namespace, and wait
    /// until the running operator has cleaned each up (the Helm chart's pre-delete hook,
    /// so an uninstall leaves nothing behind).
    Cleanup {
        #[arg(long, env = "POD_NAMESPACE")]
        namespace: String,
        #[arg(long)]
        selector: String,
        /// Seconds to wait for everything to go.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "SLUICE_NAMESPACE")]
    namespace: Option<String>,
    /// One broker address for every cluster, instead of each cluster's Service (for an
    /// operator run outside the cluster against brokers on loopback).
    #[arg(long, env = "SLUICE_BROKER_URL")]
    broker_url: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "SLUICE_METRICS_LISTEN", default_value = "0.0.0.0:8081")]
    metrics_listen: SocketAddr,
    /// Namespace of the leader-election Lease (default: the pod's, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    #[arg(long, env = "SLUICE_LEASE_NAME", default_value = "sluice-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Logs as JSON lines (for log collectors) rather than text.
    #[arg(long, env = "SLUICE_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds { dir } => print_crds(dir),
        Command::Run(args) => run(args).await,
        Command::Cleanup {
            namespace,
            selector,
            timeout,
        } => {
            cleanup(
                &namespace,
                &selector,
                std::time::Duration::from_secs(timeout),
            )
            .await
        }
    }
}

fn print_crds(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut all = String::new();
    for (file, crd) in crd::all() {
        let yaml = crd::to_yaml(&crd).context("writing a CRD as YAML")?;
        match &dir {
            Some(dir) => std::fs::write(dir.join(file), yaml)
                .with_context(|| format!("writing {}", dir.join(file).display()))?,
            None => {
                all.push_str("---\n");
                all.push_str(&yaml);
            }
        }
    }
    print!("{all}");
    Ok(())
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logs(args.log_json);
    let kube = kube::Client::try_default()
        .await
        .context("no Kubernetes API server found (in-cluster config or KUBECONFIG)")?;
    check_crds(&kube).await?;
    let capabilities = Capabilities {
        pdb_v1: kube
            .list_api_group_resources("policy/v1")
            .await
            .is_ok_and(|list| {
                list.resources
                    .iter()
                    .any(|r| r.name == "poddisruptionbudgets")
            }),
    };
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("sluice-operator-{}", std::process::id()));
    let metrics = Arc::new(Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(serve_metrics(args.metrics_listen, metrics.clone()));
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = shutdown_tx.send(true);
    });

    // Only the Lease holder reconciles.
    let lease_namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let lock = LeaseLock::new(
        Api::<Lease>::namespaced(kube.clone(), &lease_namespace),
        &args.lease_name,
        &identity,
    );
    tracing::info!(%identity, lease = %args.lease_name, namespace = %lease_namespace, "waiting to lead");
    let mut stop = shutdown_rx.clone();
    loop {
        match lock.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_INTERVAL) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
    metrics.leader.set(1);
    tracing::info!(%identity, ?capabilities, "leading: reconciling");

    let ctx = Arc::new(Context {
        kube: kube.clone(),
        broker_url: args.broker_url.clone(),
        metrics: metrics.clone(),
        reporter: Reporter {
            controller: "sluice-operator".into(),
            instance: Some(identity.clone()),
        },
        capabilities,
    });
    let controllers = run_controllers(&kube, args.namespace.as_deref(), ctx, shutdown_rx.clone());
    let renewal = keep_lease(&lock, shutdown_rx.clone());
    tokio::select! {
        () = controllers => {}
        lost = renewal => {
            // Another replica may lead now: stop at once rather than reconcile beside it.
            lost?;
        }
    }
    metrics.leader.set(0);
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the Lease");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Renews the Lease until shutdown; an error when it is lost.
async fn keep_lease(lock: &LeaseLock, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETRY_INTERVAL) => {}
            _ = stop.changed() => return Ok(()),
        }
        match lock.try_acquire_or_renew().await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => bail!("the leader Lease was taken by another replica"),
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the Lease");
                let lease = std::time::Duration::from_secs(
                    u64::try_from(sluice_operator::lease::LEASE_SECONDS).unwrap_or(15),
                );
                if last_renewed.elapsed() > lease / 2 {
                    bail!("the leader Lease could not be renewed in time");
                }
            }
        }
    }
}

fn scoped<K>(kube: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(kube.clone(), ns),
        None => Api::all(kube.clone()),
    }
}

async fn run_controllers(
    kube: &kube::Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    shutdown: watch::Receiver<bool>,
) {
    let stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopping| *stopping).await;
    };
    let clusters = Controller::new(
        scoped::<SluiceCluster>(kube, namespace),
        watcher::Config::default(),
    )
    .owns(
        scoped::<StatefulSet>(kube, namespace),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(stop(shutdown.clone()))
    .run(cluster::reconcile, cluster::error_policy, ctx.clone())
    .for_each(|_| async {});
    let queues = topology_controller::<Queue>(kube, namespace, ctx.clone(), stop(shutdown.clone()));
    let topics = topology_controller::<Topic>(kube, namespace, ctx.clone(), stop(shutdown.clone()));
    let subscriptions =
        topology_controller::<Subscription>(kube, namespace, ctx, stop(shutdown.clone()));
    futures::join!(clusters, queues, topics, subscriptions);
}

async fn topology_controller<T: Topology>(
    kube: &kube::Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(scoped::<T>(kube, namespace), watcher::Config::default())
        .graceful_shutdown_on(stop)
        .run(topology::reconcile::<T>, topology::error_policy::<T>, ctx)
        .for_each(|_| async {})
        .await;
}

async fn cleanup(
    namespace: &str,
    selector: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    init_logs(false);
    let kube = kube::Client::try_default()
        .await
        .context("no Kubernetes API server found (in-cluster config or KUBECONFIG)")?;
    let deadline = tokio::time::Instant::now() + timeout;
    // Subscriptions before their topics; queues; the clusters last, while their
    // brokers can still be asked to delete what the others name.
    delete_all::<Subscription>(&kube, namespace, selector, deadline).await?;
    delete_all::<Topic>(&kube, namespace, selector, deadline).await?;
    delete_all::<Queue>(&kube, namespace, selector, deadline).await?;
    delete_all::<SluiceCluster>(&kube, namespace, selector, deadline).await?;
    Ok(())
}

/// Deletes every `K` matching `selector` and waits until they are gone.
async fn delete_all<K>(
    kube: &kube::Client,
    namespace: &str,
    selector: &str,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(kube.clone(), namespace);
    let params = kube::api::ListParams::default().labels(selector);
    let kind = K::kind(&());
    let names: Vec<String> = api
        .list(&params)
        .await?
        .items
        .iter()
        .map(|o| kube::ResourceExt::name_any(o))
        .collect();
    for name in &names {
        tracing::info!(%kind, %name, "deleting");
        match api.delete(name, &kube::api::DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    loop {
        let left = api.list(&params).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "{left} {kind} resources are still there (is the operator running?); `helm uninstall --no-hooks` skips this step"
            );
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Fails with what to do when the CRDs are not installed.
async fn check_crds(kube: &kube::Client) -> anyhow::Result<()> {
    let api: Api<SluiceCluster> = Api::all(kube.clone());
    if let Err(e) = api.list(&kube::api::ListParams::default().limit(1)).await {
        bail!(
            "the Sluice CRDs are not installed ({e}); install them with `sluice-operator crds | kubectl apply -f -` or the Helm chart"
        );
    }
    Ok(())
}

async fn serve_metrics(addr: SocketAddr, metrics: Arc<Metrics>) {
    let app = Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        }
        Err(e) => tracing::error!(%addr, error = %e, "cannot serve metrics"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
