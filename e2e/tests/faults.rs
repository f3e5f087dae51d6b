//! Faults under load on a three-node cluster of real processes: SIGKILL of the leader
//! (of the group holding the standard queue) and of a follower, SIGSTOP of the leader past
//! the election timeout, a restart of every node at once, and the leader cut off from its
//! peers (packets dropped by iptables).
//! Clients send to a standard and a FIFO queue and receive and acknowledge all along; at
//! the end the queues are drained and the checker holds: every acknowledged send
//! received with its exact body, no message delivered again after its ack was answered,
//! FIFO order kept within each group. A second test runs a deliberately unsafe broker
//! (sends answered before commit) and shows the checker catching it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};

use sluice_client::{Client, QueueAttributesUpdate, SendMessage};
use sluice_e2e::checker::{Checker, Verdict};
use sluice_e2e::{Cluster, test_dir, workload};

const STANDARD: &str = "standard";
const FIFO: &str = "fifo";
const GROUPS: usize = 3;
const LOAD_BETWEEN_FAULTS: Duration = Duration::from_secs(2);

fn cluster_client(cluster: &Cluster) -> Client {
    let urls: Vec<String> = (1..=cluster.nodes.len() as u64)
        .map(|id| cluster.node(id).url())
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    Client::with_nodes(&urls)
        .expect("client")
        .retry_for(Duration::from_secs(20))
}

/// How long after `since` a send through a surviving node succeeds again.
async fn time_to_first_send(
    cluster: &Cluster,
    checker: &Checker,
    survivor: u64,
    since: Instant,
) -> Duration {
    let probe = cluster.client(survivor).retry_for(Duration::ZERO);
    let mut n = 0;
    loop {
        n += 1;
        let body = format!("probe-{}-{n}", since.elapsed().as_nanos());
        checker.sending(body.as_bytes());
        if let Ok(sent) = probe.send(STANDARD, &SendMessage::text(body.clone())).await {
            checker.sent(&sent.id, body.as_bytes(), None);
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Load {
    stop_senders: Arc<AtomicBool>,
    stop_consumers: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<()>>,
    consumers: Vec<tokio::task::JoinHandle<()>>,
}

async fn start_load(cluster: &Cluster, checker: &Arc<Checker>) -> Load {
    let client = cluster_client(cluster);
    client
        .put_queue(STANDARD, &QueueAttributesUpdate::default())
        .await
        .expect("standard queue");
    client
        .put_queue(
            FIFO,
            &QueueAttributesUpdate {
                fifo: Some(true),
                ..QueueAttributesUpdate::default()
            },
        )
        .await
        .expect("fifo queue");
    let stop_senders = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for task in 0..2 {
        senders.push(tokio::spawn(workload::sender(
            cluster_client(cluster),
            checker.clone(),
            STANDARD,
            task,
            4,
            stop_senders.clone(),
        )));
    }
    for group in 0..GROUPS {
        senders.push(tokio::spawn(workload::fifo_sender(
            cluster_client(cluster),
            checker.clone(),
            FIFO,
            group,
            stop_senders.clone(),
        )));
    }
    let mut consumers = Vec::new();
    for queue in [STANDARD, STANDARD, FIFO] {
        consumers.push(tokio::spawn(workload::consumer(
            cluster_client(cluster),
            checker.clone(),
            queue,
            3,
            stop_consumers.clone(),
        )));
    }
    Load {
        stop_senders,
        stop_consumers,
        senders,
        consumers,
    }
}

/// Stops the senders, lets the consumers empty both queues, and judges.
async fn drain(cluster: &Cluster, load: Load, checker: &Checker) -> Verdict {
    load.stop_senders.store(true, Ordering::Relaxed);
    for s in load.senders {
        s.await.expect("sender");
    }
    let client = cluster_client(cluster);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut left = 0;
        for queue in [STANDARD, FIFO] {
            let c = client.get_queue(queue).await.expect("queue").counts;
            left += c.visible + c.in_flight + c.delayed;
        }
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} messages left after 90 s of draining\n{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    load.stop_consumers.store(true, Ordering::Relaxed);
    for c in load.consumers {
        c.await.expect("consumer");
    }
    checker.verdict()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_or_redelivered_under_faults() {
    let dir = test_dir("faults").expect("dir");
    let mut cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    let checker = Arc::new(Checker::new());
    let load = start_load(&cluster, &checker).await;
    let mut faults: Vec<String> = Vec::new();
    let mut failovers: Vec<Duration> = Vec::new();
    let settle = Duration::from_secs(60);

    // 1. SIGKILL the leader, twice; time the failover each time.
    for _ in 0..2 {
        tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
        let leader = cluster
            .leader_of_queue(STANDARD, settle)
            .await
            .expect("leader");
        let killed_at = Instant::now();
        cluster.node_mut(leader).kill9().expect("kill");
        let survivor = (1..=3).find(|id| *id != leader).expect("survivor");
        failovers.push(time_to_first_send(&cluster, &checker, survivor, killed_at).await);
        faults.push(format!("kill -9 leader (node {leader})"));
        cluster.node_mut(leader).relaunch().expect("relaunch");
        cluster.wait_all_ready(settle).await.expect("ready again");
    }

    // 2. SIGKILL a follower.
    tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
    let leader = cluster
        .leader_of_queue(STANDARD, settle)
        .await
        .expect("leader");
    let follower = (1..=3).find(|id| *id != leader).expect("follower");
    cluster.node_mut(follower).kill9().expect("kill");
    faults.push(format!("kill -9 follower (node {follower})"));
    tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
    cluster.node_mut(follower).relaunch().expect("relaunch");
    cluster.wait_all_ready(settle).await.expect("ready again");

    // 3. SIGSTOP the leader for longer than the election timeout (1.5 s at most).
    tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
    let leader = cluster
        .leader_of_queue(STANDARD, settle)
        .await
        .expect("leader");
    cluster.node(leader).pause().expect("stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.node(leader).resume().expect("continue");
    faults.push(format!("SIGSTOP leader (node {leader}) for 3 s"));
    cluster.wait_all_ready(settle).await.expect("ready again");

    // 4. Every node killed and restarted at once.
    tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
    for id in 1..=3 {
        cluster.node_mut(id).kill9().expect("kill");
    }
    for id in 1..=3 {
        cluster.node_mut(id).relaunch().expect("relaunch");
    }
    faults.push("kill -9 of all three nodes, restarted together".into());
    cluster.wait_all_ready(settle).await.expect("ready again");

    // 5. The leader cut off from its peers for 3 s.
    tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
    let leader = cluster
        .leader_of_queue(STANDARD, settle)
        .await
        .expect("leader");
    cluster.isolate(leader).expect("isolate (needs iptables)");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.heal().expect("heal");
    faults.push(format!(
        "leader (node {leader}) cut off from its peers for 3 s"
    ));
    cluster.wait_all_ready(settle).await.expect("ready again");

    tokio::time::sleep(LOAD_BETWEEN_FAULTS).await;
    let verdict = drain(&cluster, load, &checker).await;
    println!("| fault injected |\n|---|");
    for f in &faults {
        println!("| {f} |");
    }
    println!("\n{verdict}");
    for (i, f) in failovers.iter().enumerate() {
        println!(
            "failover {}: a send succeeded {} ms after the leader's SIGKILL",
            i + 1,
            f.as_millis()
        );
    }
    assert!(
        verdict.sends_acknowledged > 200,
        "too little load:\n{verdict}"
    );
    assert!(
        verdict.acks_acknowledged > 100,
        "too little load:\n{verdict}"
    );
    assert!(verdict.ok(), "{verdict}\n{}", cluster.log_tails());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_a_broker_that_answers_before_commit() {
    let dir = test_dir("faults-unsafe").expect("dir");
    let mut cluster = Cluster::start_with(dir.path(), 3, &["--unsafe-ack-before-commit"])
        .await
        .expect("cluster");
    let checker = Arc::new(Checker::new());
    let load = start_load(&cluster, &checker).await;
    let settle = Duration::from_secs(60);
    let mut kills = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let leader = cluster
            .leader_of_queue(STANDARD, settle)
            .await
            .expect("leader");
        // Freeze it first so what it answered cannot reach the followers.
        cluster.node(leader).pause().expect("stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.node_mut(leader).kill9().expect("kill");
        kills += 1;
        cluster.node_mut(leader).relaunch().expect("relaunch");
        cluster.wait_all_ready(settle).await.expect("ready again");
    }
    let verdict = drain(&cluster, load, &checker).await;
    println!("unsafe broker, {kills} x (SIGSTOP then kill -9) of the leader:\n{verdict}");
    assert!(
        !verdict.ok() && verdict.lost > 0,
        "the checker must catch acknowledged sends lost by a broker that answers before commit:\n{verdict}"
    );
}
