//! The operator proven on a real Kubernetes node (`e2e/k8s/`): the chart installs the
//! CRDs, the RBAC and two operator replicas in pods; a SluiceCluster becomes three broker
//! pods forming one Raft cluster (a metadata group and three data groups) from the
//! project's own images; Queue, Topic and Subscription resources become broker state
//! used from a client pod; then, under a send/receive/ack load checked by the checker,
//! the cluster is scaled 3→5→3, rolled to a new image tag and has a broker pod deleted. Deletion policies, drift repair,
//! pausing and the API server's refusal of bad specs are checked on the way. It prints
//! a table of the day-2 operations.
//!
//! Needs root, Docker and the Kubernetes binaries (`e2e/k8s/build.sh` makes them once,
//! about 20 minutes, into a cache outside the repository).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use sluice_client::Client;
use sluice_e2e::checker::{Checker, Verdict};
use sluice_e2e::kube::{KubeNode, build_images, ready, wait_for, workspace};
use sluice_e2e::workload;

const NS: &str = "e2e";
/// Where the chart test installs its release (and its cluster, named after it).
const CHART_NS: &str = "chart";
const OPERATOR_NS: &str = "sluice-system";
const LOAD_QUEUE: &str = "load";
const SETTLE: Duration = Duration::from_secs(300);

fn cluster_yaml(replicas: u32, tag: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: SluiceCluster
metadata: {{name: demo}}
spec:
  replicas: {replicas}
  image: sluice-broker:{tag}
  imagePullPolicy: Never
  storage: {{size: 200Mi}}
"#
    )
}

fn queue_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: Queue\nmetadata: {{name: {name}}}\nspec:\n  clusterRef: {{name: demo}}\n{extra}"
    )
}

/// Waits until the SluiceCluster is Ready with `n` voters and `n` ready pods; its status.
async fn cluster_settles(node: &KubeNode, n: usize, image: &str) -> Result<Value> {
    settles(node, NS, "demo", n, image).await
}

/// Waits until SluiceCluster `name` in `ns` is Ready with `n` voters and `n` ready pods
/// running `image`; its last state.
async fn settles(node: &KubeNode, ns: &str, name: &str, n: usize, image: &str) -> Result<Value> {
    wait_for(
        &format!("a ready cluster of {n} on {image}"),
        SETTLE,
        || {
            let Some(c) = node.get(ns, "sluicecluster", name)? else {
                return Ok(None);
            };
            let status = &c["status"];
            let voters = status["members"]
                .as_array()
                .map(|m| m.iter().filter(|m| m["role"] == "voter").count())
                .unwrap_or(0);
            let settled = ready(&c).0
                && voters == n
                && status["readyReplicas"] == n as u64
                && status["replicas"] == n as u64
                && status["image"] == image;
            if !settled {
                return Ok(None);
            }
            // What the status says, the pods show.
            let selector =
                format!("app.kubernetes.io/instance={name},app.kubernetes.io/component=broker");
            let pods = node.list(ns, "pod", &selector)?;
            let on_image = pods.len() == n
                && pods
                    .iter()
                    .all(|p| p["spec"]["containers"][0]["image"] == image);
            Ok(on_image.then_some(c))
        },
    )
    .await
}

async fn resource_ready(node: &KubeNode, kind: &str, name: &str) -> Result<Value> {
    wait_for(
        &format!("{kind} {name} Ready"),
        Duration::from_secs(120),
        || Ok(node.get(NS, kind, name)?.filter(|o| ready(o).0)),
    )
    .await
}

/// The identity holding the operator's leader Lease.
fn lease_holder(node: &KubeNode) -> Result<String> {
    node.get(OPERATOR_NS, "lease", "sluice-operator")?
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
        .context("no holder of the operator's Lease")
}

/// Runs the `sluice` CLI in a pod of its own image; its output.
async fn cli_pod(node: &KubeNode, name: &str, args: &[&str]) -> Result<String> {
    let mut command = vec![
        "run",
        name,
        "-n",
        NS,
        "--image=sluice-cli:e2e",
        "--image-pull-policy=Never",
        "--restart=Never",
        "--",
    ];
    command.extend_from_slice(args);
    node.kubectl(&command)?;
    let phase = wait_for(
        &format!("pod {name} to finish"),
        Duration::from_secs(90),
        || {
            let phase = node
                .get(NS, "pod", name)?
                .and_then(|p| p["status"]["phase"].as_str().map(str::to_string));
            Ok(phase.filter(|p| p == "Succeeded" || p == "Failed"))
        },
    )
    .await?;
    let logs = node.kubectl(&["logs", "-n", NS, name])?;
    node.kubectl(&["delete", "pod", "-n", NS, name, "--wait=false"])?;
    if phase != "Succeeded" {
        bail!("sluice {args:?} in pod {name} failed:\n{logs}");
    }
    Ok(logs)
}

/// A bad spec is refused by the API server (kubectl's own check off), naming the field.
fn refused(node: &KubeNode, yaml: &str, expect: &[&str]) -> String {
    let error = node
        .apply_with(NS, yaml, &["--validate=false"])
        .expect_err("the API server must refuse this spec")
        .to_string();
    for part in expect {
        assert!(error.contains(part), "refusal lacks {part:?}:\n{error}");
    }
    error
        .lines()
        .find(|l| l.contains("Invalid") || l.contains("invalid"))
        .unwrap_or("")
        .trim()
        .to_string()
}

struct Load {
    stop_senders: Arc<AtomicBool>,
    stop_consumers: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    consumers: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(client: &Client, checker: &Arc<Checker>) -> Load {
    start_load_on(client, checker, LOAD_QUEUE)
}

fn start_load_on(client: &Client, checker: &Arc<Checker>, queue: &'static str) -> Load {
    let stop_senders = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let tasks = (0..2)
        .map(|task| {
            tokio::spawn(workload::sender(
                client.clone(),
                checker.clone(),
                queue,
                task,
                4,
                stop_senders.clone(),
            ))
        })
        .collect();
    let consumers = (0..2)
        .map(|_| {
            tokio::spawn(workload::consumer(
                client.clone(),
                checker.clone(),
                queue,
                10,
                stop_consumers.clone(),
            ))
        })
        .collect();
    Load {
        stop_senders,
        stop_consumers,
        tasks,
        consumers,
    }
}

/// Stops the senders, lets the consumers empty `queue`, and judges.
async fn drain(client: &Client, load: Load, checker: &Checker, queue: &str) -> Result<Verdict> {
    load.stop_senders.store(true, Ordering::Relaxed);
    for task in load.tasks {
        task.await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = client.get_queue(queue).await?.counts;
        if c.visible + c.in_flight + c.delayed == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} messages left after draining for 120 s",
                c.visible + c.in_flight + c.delayed
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    load.stop_consumers.store(true, Ordering::Relaxed);
    for task in load.consumers {
        task.await?;
    }
    Ok(checker.verdict())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_sluice_on_a_real_node() {
    let node = KubeNode::up().expect("a Kubernetes node (run as root, with Docker)");
    if let Err(e) = scenario(&node).await {
        panic!("{e:#}\n\n{}", node.diagnostics(NS));
    }
}

async fn scenario(node: &KubeNode) -> Result<()> {
    let mut table: Vec<(String, String)> = Vec::new();
    let started = Instant::now();
    build_images(&["e2e", "e2e-2"])?;
    table.push((
        "build images from the working tree".into(),
        format!("{} s", started.elapsed().as_secs()),
    ));

    // Install: CRDs, RBAC and the operator from the chart. Kubernetes 1.20's server-side
    // apply refuses fields it does not know (the CRDs' validation rules), so helm applies
    // on the client side here; the server drops those rules and keeps the rest.
    let chart = workspace().join("charts/sluice");
    let chart = chart.to_string_lossy();
    node.helm(&[
        "install",
        "sluice",
        &chart,
        "-n",
        OPERATOR_NS,
        "--create-namespace",
        "--server-side=false",
        "--set",
        "operator.image.tag=e2e",
        "--set",
        "operator.image.pullPolicy=Never",
        "--wait",
        "--timeout",
        "180s",
    ])?;
    node.kubectl(&["create", "namespace", NS])?;
    table.push((
        "helm install (2 operator replicas, one leads)".into(),
        "deployed".into(),
    ));

    // Bad specs never reach the operator.
    let why = refused(
        node,
        &queue_yaml("bad", "  visibilitySeconds: 50000\n"),
        &["spec.visibilitySeconds", "43200"],
    );
    table.push((
        "Queue with visibilitySeconds 50000".into(),
        format!("refused: {why}"),
    ));
    refused(
        node,
        "apiVersion: sluice.dev/v1alpha1\nkind: Queue\nmetadata: {name: bad}\nspec: {visibilitySeconds: 5}\n",
        &["spec.clusterRef", "Required"],
    );
    refused(
        node,
        &cluster_yaml(0, "e2e").replace("name: demo", "name: bad"),
        &["spec.replicas"],
    );
    let why = refused(
        node,
        "apiVersion: sluice.dev/v1alpha1\nkind: Subscription\nmetadata: {name: bad}\nspec:\n  clusterRef: {name: demo}\n  topicRef: {name: events}\n  endpoint: {queue: a, pull: {}}\n",
        &["spec.endpoint"],
    );
    table.push((
        "Subscription with two endpoints".into(),
        format!("refused: {why}"),
    ));

    // A cluster of three brokers.
    let t = Instant::now();
    node.apply(NS, &cluster_yaml(3, "e2e"))?;
    let cluster = cluster_settles(node, 3, "sluice-broker:e2e").await?;
    table.push((
        "SluiceCluster of 3: pods, one Raft cluster".into(),
        format!(
            "ready in {} s, leader {}",
            t.elapsed().as_secs(),
            cluster["status"]["leader"]
        ),
    ));
    let url = format!("http://{}:8080", node.service_ip(NS, "demo-broker")?);
    let client = Client::new(&url)?.retry_for(Duration::from_secs(60));
    // A new cluster gets three data groups, each on three voters.
    let status = client.cluster().await?;
    ensure!(
        status.groups.len() == 4 && status.groups.iter().all(|g| g.voters.len() == 3),
        "the metadata group and three data groups, each on the three brokers: {status:?}"
    );

    // Queue, Topic, Subscription; used from a pod.
    node.apply(NS, &queue_yaml("orders", "  visibilitySeconds: 60\n"))?;
    node.apply(NS, &queue_yaml(LOAD_QUEUE, ""))?;
    node.apply(
        NS,
        "apiVersion: sluice.dev/v1alpha1\nkind: Topic\nmetadata: {name: events}\nspec: {clusterRef: {name: demo}}\n---\napiVersion: sluice.dev/v1alpha1\nkind: Subscription\nmetadata: {name: to-orders}\nspec:\n  clusterRef: {name: demo}\n  topicRef: {name: events}\n  endpoint: {queue: orders}\n",
    )?;
    for (kind, name) in [
        ("queue", "orders"),
        ("queue", LOAD_QUEUE),
        ("topic", "events"),
        ("subscription", "to-orders"),
    ] {
        resource_ready(node, kind, name).await?;
    }
    assert_eq!(
        client
            .get_queue("orders")
            .await?
            .attributes
            .visibility_seconds,
        60
    );
    cli_pod(
        node,
        "send",
        &["--url", &url, "send", "orders", "hello from a pod"],
    )
    .await?;
    cli_pod(
        node,
        "publish",
        &["--url", &url, "publish", "events", "published in a pod"],
    )
    .await?;
    let received = cli_pod(
        node,
        "receive",
        &[
            "--url", &url, "-o", "json", "receive", "orders", "--max", "10", "--wait", "5", "--ack",
        ],
    )
    .await?;
    assert!(received.contains("hello from a pod"), "{received}");
    assert!(
        received.contains("published in a pod"),
        "fan-out into the queue: {received}"
    );
    table.push((
        "Queue, Topic, Subscription used from a client pod".into(),
        "sent, published, received".into(),
    ));

    // Drift: the broker's queue deleted behind the operator's back comes back.
    client.delete_queue("orders").await?;
    let t = Instant::now();
    let back = async {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if client.get_queue("orders").await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        false
    }
    .await;
    assert!(back, "the operator did not recreate queue orders");
    table.push((
        "queue deleted behind the operator's back".into(),
        format!("recreated in {} s", t.elapsed().as_secs()),
    ));

    // Day-2 operations under load, checked.
    let checker = Arc::new(Checker::new());
    let load = start_load(&client, &checker);
    tokio::time::sleep(Duration::from_secs(5)).await;

    let t = Instant::now();
    node.kubectl(&["scale", "-n", NS, "sluicecluster/demo", "--replicas=5"])?;
    cluster_settles(node, 5, "sluice-broker:e2e").await?;
    table.push((
        "kubectl scale 3→5 under load".into(),
        format!("5 voters in {} s", t.elapsed().as_secs()),
    ));

    let t = Instant::now();
    node.kubectl(&["scale", "-n", NS, "sluicecluster/demo", "--replicas=3"])?;
    cluster_settles(node, 3, "sluice-broker:e2e").await?;
    let claims = node
        .list(NS, "pvc", "app.kubernetes.io/instance=demo")?
        .len();
    table.push((
        "kubectl scale 5→3 under load".into(),
        format!(
            "3 voters, {claims} claims left, in {} s",
            t.elapsed().as_secs()
        ),
    ));

    let t = Instant::now();
    node.kubectl(&[
        "patch",
        "-n",
        NS,
        "sluicecluster/demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"sluice-broker:e2e-2"}}"#,
    ])?;
    cluster_settles(node, 3, "sluice-broker:e2e-2").await?;
    let images: Vec<String> = node
        .list(NS, "pod", "app.kubernetes.io/instance=demo")?
        .iter()
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        images.iter().all(|i| i == "sluice-broker:e2e-2"),
        "{images:?}"
    );
    table.push((
        "rolling upgrade to a new image tag under load".into(),
        format!("one pod at a time, done in {} s", t.elapsed().as_secs()),
    ));

    let t = Instant::now();
    node.kubectl(&["delete", "pod", "-n", NS, "demo-1"])?;
    cluster_settles(node, 3, "sluice-broker:e2e-2").await?;
    table.push((
        "broker pod deleted under load".into(),
        format!("back and caught up in {} s", t.elapsed().as_secs()),
    ));

    let verdict = drain(&client, load, &checker, LOAD_QUEUE).await?;

    // Pausing, and both deletion policies.
    node.kubectl(&[
        "annotate",
        "-n",
        NS,
        "queue/orders",
        "sluice.dev/paused=true",
    ])?;
    wait_for("the Paused condition", Duration::from_secs(60), || {
        let q = node.get(NS, "queue", "orders")?;
        Ok(q.filter(|q| {
            q["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Paused" && c["status"] == "True")
            })
        }))
    })
    .await?;
    node.kubectl(&["annotate", "-n", NS, "queue/orders", "sluice.dev/paused-"])?;
    node.apply(NS, &queue_yaml("kept", "  deletionPolicy: Retain\n"))?;
    node.apply(NS, &queue_yaml("dropped", "  deletionPolicy: Delete\n"))?;
    resource_ready(node, "queue", "kept").await?;
    resource_ready(node, "queue", "dropped").await?;
    node.kubectl(&[
        "delete",
        "-n",
        NS,
        "queue",
        "kept",
        "dropped",
        "--timeout=60s",
    ])?;
    assert!(
        client.get_queue("kept").await.is_ok(),
        "Retain keeps the broker's queue"
    );
    assert!(
        client.get_queue("dropped").await.is_err(),
        "Delete removes the broker's queue"
    );
    table.push((
        "delete Queue with Retain / Delete".into(),
        "kept on the broker / removed".into(),
    ));

    // The operator's metrics, then its failover: the Lease holder's pod is deleted and
    // the other replica reconciles a new queue.
    let holder = lease_holder(node)?;
    let holder_ip = node
        .get(OPERATOR_NS, "pod", &holder)?
        .and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .context("the leading operator pod has no IP")?;
    let metrics = reqwest::get(format!("http://{holder_ip}:8081/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("sluice_operator_reconciles_total{kind=\"Queue\"}"),
        "{metrics}"
    );
    let t = Instant::now();
    node.kubectl(&["delete", "pod", "-n", OPERATOR_NS, &holder, "--wait=false"])?;
    node.apply(NS, &queue_yaml("after-failover", ""))?;
    resource_ready(node, "queue", "after-failover").await?;
    let successor = lease_holder(node)?;
    assert_ne!(successor, holder, "another replica must lead");
    table.push((
        "leading operator pod deleted".into(),
        format!(
            "{successor} leads; a new Queue ready in {} s",
            t.elapsed().as_secs()
        ),
    ));

    // With the cluster gone, its resources can still be deleted.
    node.kubectl(&[
        "delete",
        "-n",
        NS,
        "sluicecluster",
        "demo",
        "--timeout=120s",
    ])?;
    node.kubectl(&[
        "delete",
        "-n",
        NS,
        "queues,topics,subscriptions",
        "--all",
        "--timeout=60s",
    ])?;
    table.push((
        "SluiceCluster deleted, then its queues, topic, subscription".into(),
        "all deleted, nothing wedged".into(),
    ));

    println!("\n| day-2 operation | result |\n|---|---|");
    for (op, result) in &table {
        println!("| {op} | {result} |");
    }
    println!("\n{verdict}");
    assert!(
        verdict.sends_acknowledged > 100,
        "too little load:\n{verdict}"
    );
    assert!(
        verdict.acks_acknowledged > 50,
        "too little load:\n{verdict}"
    );
    assert!(verdict.ok(), "{verdict}");
    Ok(())
}

/// The chart as a platform engineer uses it: `helm install` with a cluster and a queue,
/// `helm test`, `helm upgrade` to a new broker image under a checked load, and
/// `helm uninstall`, after which nothing of the release is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_tests_upgrades_and_uninstalls() {
    let node = KubeNode::up().expect("a Kubernetes node (run as root, with Docker)");
    if let Err(e) = chart_scenario(&node).await {
        panic!("{e:#}\n\n{}", node.diagnostics(CHART_NS));
    }
}

async fn chart_scenario(node: &KubeNode) -> Result<()> {
    build_images(&["e2e", "e2e-2"])?;
    let chart = workspace().join("charts/sluice");
    let chart = chart.to_string_lossy();
    let images = [
        "operator.image.tag=e2e",
        "operator.image.pullPolicy=Never",
        "cluster.image.tag=e2e",
        "cluster.image.pullPolicy=Never",
        "tests.image.tag=e2e",
        "tests.image.pullPolicy=Never",
    ];
    let mut install = vec![
        "install",
        "sluice",
        &chart,
        "-n",
        CHART_NS,
        "--create-namespace",
        // Kubernetes 1.20's server-side apply refuses the CRDs' validation rules.
        "--server-side=false",
        "--set",
        "cluster.enabled=true",
        "--set",
        "cluster.storage.size=200Mi",
        "--set",
        "queues[0].name=orders",
        "--set",
        "queues[0].visibilitySeconds=20",
        "--wait",
        "--timeout",
        "180s",
    ];
    for set in &images {
        install.extend(["--set", set]);
    }
    let t = Instant::now();
    node.helm(&install)?;
    settles(node, CHART_NS, "sluice", 3, "sluice-broker:e2e").await?;
    wait_for("queue orders Ready", Duration::from_secs(120), || {
        Ok(node
            .get(CHART_NS, "queue", "orders")?
            .filter(|q| ready(q).0))
    })
    .await?;
    println!(
        "helm install: operator, 3 brokers and a queue ready in {} s",
        t.elapsed().as_secs()
    );

    let tested = node.helm(&["test", "sluice", "-n", CHART_NS, "--timeout", "120s"])?;
    assert!(tested.contains("Succeeded"), "{tested}");
    println!("helm test: passed");

    // An upgrade to a new broker image rolls the brokers under load; nothing is lost.
    let url = format!(
        "http://{}:8080",
        node.service_ip(CHART_NS, "sluice-broker")?
    );
    let client = Client::new(&url)?.retry_for(Duration::from_secs(60));
    let checker = Arc::new(Checker::new());
    let load = start_load_on(&client, &checker, "orders");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = Instant::now();
    node.helm(&[
        "upgrade",
        "sluice",
        &chart,
        "-n",
        CHART_NS,
        "--server-side=false",
        "--reuse-values",
        "--set",
        "cluster.image.tag=e2e-2",
        "--wait",
        "--timeout",
        "180s",
    ])?;
    settles(node, CHART_NS, "sluice", 3, "sluice-broker:e2e-2").await?;
    let verdict = drain(&client, load, &checker, "orders").await?;
    println!(
        "helm upgrade to a new image tag: rolled in {} s\n{verdict}",
        t.elapsed().as_secs()
    );
    assert!(
        verdict.sends_acknowledged > 50,
        "too little load:\n{verdict}"
    );
    assert!(verdict.ok(), "{verdict}");

    // Uninstall: the hook deletes the release's resources while the operator runs.
    let t = Instant::now();
    node.helm(&[
        "uninstall",
        "sluice",
        "-n",
        CHART_NS,
        "--wait",
        "--timeout",
        "300s",
    ])?;
    let left = wait_for(
        "nothing of the release left",
        Duration::from_secs(180),
        || {
            let mut left = Vec::new();
            for kind in [
                "pods",
                "statefulsets",
                "services",
                "pvc",
                "deployments",
                "jobs",
                "sluiceclusters",
                "queues",
            ] {
                for object in node.list(CHART_NS, kind, "app.kubernetes.io/name=sluice")? {
                    left.push(format!(
                        "{kind}/{}",
                        object["metadata"]["name"].as_str().unwrap_or("?")
                    ));
                }
            }
            let roles = node.kubectl(&[
                "get",
                "clusterroles",
                "-l",
                "app.kubernetes.io/instance=sluice",
                "-o",
                "name",
            ])?;
            left.extend(roles.lines().map(str::to_string));
            Ok(left.is_empty().then_some(left))
        },
    )
    .await?;
    assert!(left.is_empty());
    println!(
        "helm uninstall: nothing left after {} s",
        t.elapsed().as_secs()
    );
    Ok(())
}
