//! A cluster of three real broker processes on loopback: it forms from
//! `--initial-members`, any node serves any request, `/v1/cluster` tells members, roles,
//! leader and lag, and members can be added, drained and removed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_client::{Client, MemberRole, QueueAttributesUpdate, ReceiveRequest, SendMessage};
use sluice_e2e::checker::Checker;
use sluice_e2e::{Cluster, test_dir, workload};

/// Readiness probes sent to every node under load, a quarter second apart.
const PROBES: u32 = 40;
/// A kubelet counts a probe unanswered after this long (the broker pods' `timeoutSeconds`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed probes in a row that take a pod out of service (the broker pods'
/// `failureThreshold`).
const PROBE_FAILURE_THRESHOLD: u32 = 3;

fn receive(max: u32) -> ReceiveRequest {
    ReceiveRequest {
        max: Some(max),
        wait_seconds: Some(1),
        visibility_seconds: Some(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_cluster_and_any_node_serves_any_request() {
    let dir = test_dir("cluster-basic").expect("dir");
    let cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");

    // Created through a follower, sent through another node, received through a third.
    cluster
        .client(follower)
        .put_queue("orders", &QueueAttributesUpdate::default())
        .await
        .expect("create via a follower");
    let sent = cluster
        .client(leader)
        .send("orders", &SendMessage::text("hello cluster"))
        .await
        .expect("send");
    let third = (1..=3)
        .find(|id| *id != leader && *id != follower)
        .expect("third");
    let got = cluster
        .client(third)
        .receive("orders", &receive(1))
        .await
        .expect("receive");
    assert_eq!(got[0].id, sent.id);
    assert_eq!(got[0].body.as_deref(), Some("hello cluster"));

    let status = cluster
        .client(follower)
        .cluster()
        .await
        .expect("cluster status");
    assert_eq!(status.members.len(), 3);
    assert!(status.members.iter().all(|m| m.role == MemberRole::Voter));
    assert_eq!(
        status.groups.len(),
        4,
        "the metadata group and three data groups"
    );
    assert_eq!(status.groups[0].leader, Some(leader));
    assert!(
        status.groups.iter().all(|g| g.voters.len() == 3),
        "every group on three nodes: {status:?}"
    );
    assert!(
        status.members.iter().all(|m| m.lag.is_some()),
        "the leader knows every member's lag: {status:?}"
    );
    // Leaderships spread: each node leads a data group once the balancer has run.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = cluster.client(third).cluster().await.expect("status");
        let mut leaders: Vec<u64> = status.groups[1..].iter().filter_map(|g| g.leader).collect();
        leaders.sort_unstable();
        if leaders == [1, 2, 3] {
            assert!(status.members.iter().all(|m| m.leader), "{status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "data group leaders never spread over the nodes: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in 1..=3 {
        assert!(cluster.client(id).ready().await.expect("readyz"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_from_a_snapshot_and_serves_old_messages_after_the_others_leave() {
    let dir = test_dir("cluster-join").expect("dir");
    // Snapshots every 50 entries, so the log a new node needs is long purged.
    let flags = ["--snapshot-logs", "50"];
    let mut cluster = Cluster::start_with(dir.path(), 3, &flags)
        .await
        .expect("cluster");
    let c = cluster.client(1);
    c.put_queue("q", &QueueAttributesUpdate::default())
        .await
        .expect("create");
    let mut ids = Vec::new();
    for i in 0..300 {
        let sent = c
            .send("q", &SendMessage::text(format!("message {i}")))
            .await
            .expect("send");
        ids.push(sent.id);
    }

    let new = cluster.launch_joiner(&flags).expect("launch node 4");
    let status = c
        .add_member(new, &cluster.peer_address(new))
        .await
        .expect("add node 4");
    let added = status.members.iter().find(|m| m.id == new).expect("listed");
    assert_eq!(added.role, MemberRole::Voter, "promoted once caught up");
    cluster
        .node_mut(new)
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("node 4 ready");

    // Leave node 4 leading alone among the first members' departures: drain and remove
    // the three others one by one.
    for old in 1..=3 {
        let leader = cluster
            .leader(Duration::from_secs(10))
            .await
            .expect("leader");
        let via = if leader == old { new } else { leader };
        cluster.client(via).drain_member(old).await.expect("drain");
        let status = cluster
            .client(new)
            .remove_member(old)
            .await
            .expect("remove");
        assert!(status.members.iter().all(|m| m.id != old), "{status:?}");
        cluster
            .node_mut(old)
            .kill9()
            .expect("stop the removed node");
    }
    let status = cluster.client(new).cluster().await.expect("status");
    assert_eq!(status.groups[0].leader, Some(new));
    assert_eq!(status.members.len(), 1);

    // Every message, sent before node 4 existed, is there with its body.
    let mut seen = 0;
    while seen < ids.len() {
        let got = cluster
            .client(new)
            .receive("q", &receive(32))
            .await
            .expect("receive");
        assert!(
            !got.is_empty(),
            "only {seen} of {} messages came back",
            ids.len()
        );
        for m in got {
            let n: usize = ids.iter().position(|id| *id == m.id).expect("a sent id");
            assert_eq!(m.body.as_deref(), Some(format!("message {n}").as_str()));
            seen += 1;
        }
    }
}

/// A client that does not retry, sending through a follower just after the leader of the
/// queue's group was SIGKILLed: the follower holds the request through the election and
/// relays it to the new leader, so the one attempt succeeds and is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_holds_a_request_through_its_leaders_failover() {
    let dir = test_dir("cluster-failover-relay").expect("dir");
    let mut cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    cluster
        .client(1)
        .put_queue("orders", &QueueAttributesUpdate::default())
        .await
        .expect("create");
    let leader = cluster
        .leader_of_queue("orders", Duration::from_secs(10))
        .await
        .expect("leader of the queue's group");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let once = cluster.client(follower).retry_for(Duration::ZERO);

    cluster.node_mut(leader).kill9().expect("kill the leader");
    let started = std::time::Instant::now();
    let sent = once
        .send("orders", &SendMessage::text("across the failover"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "one attempt through the follower failed after {:?}: {e}\n{}",
                started.elapsed(),
                cluster.log_tails()
            )
        });
    println!(
        "send through node {follower} answered {:?} after node {leader} was killed",
        started.elapsed()
    );

    let got = once.receive("orders", &receive(10)).await.expect("receive");
    assert_eq!(got.len(), 1, "stored once: {got:?}");
    assert_eq!(got[0].id, sent.id);
    assert_eq!(got[0].body.as_deref(), Some("across the failover"));
}

/// Under steady, unpaced sends, and with a follower restarted in the middle of the load,
/// the kubelet never takes a node out of service: probed the way the broker pods' probe
/// does (one request at a time, unanswered after two seconds), no node fails as many
/// probes in a row as the probe's failure threshold. The leader of the busy queue's group
/// always has a batch committed but not yet applied; readiness waits for it rather than
/// counting it as lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_leaves_service_under_load() {
    let dir = test_dir("cluster-ready-under-load").expect("dir");
    let mut cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    let urls: Vec<String> = (1..=3).map(|id| cluster.node(id).url()).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let client = Client::with_nodes(&urls)
        .expect("client")
        .retry_for(Duration::from_secs(20));
    client
        .put_queue("orders", &QueueAttributesUpdate::default())
        .await
        .expect("create");
    let leader = cluster
        .leader_of_queue("orders", Duration::from_secs(10))
        .await
        .expect("leader of the queue's group");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");

    let checker = Arc::new(Checker::new());
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..3)
        .map(|task| {
            tokio::spawn(workload::sender(
                client.clone(),
                checker.clone(),
                "orders",
                task,
                8,
                stop.clone(),
            ))
        })
        .collect();

    cluster
        .node_mut(follower)
        .kill9()
        .expect("kill the follower");
    cluster.node_mut(follower).relaunch().expect("relaunch");
    cluster
        .node_mut(follower)
        .wait_ready(Duration::from_secs(60))
        .await
        .expect("the restarted follower is ready under load");

    let probes: Vec<Client> = (1..=3)
        .map(|id| cluster.client(id).retry_for(Duration::ZERO))
        .collect();
    let mut ready = [0u32; 3];
    let mut failed_in_a_row = [0u32; 3];
    let mut most_failed_in_a_row = [0u32; 3];
    for _ in 0..PROBES {
        for (node, probe) in probes.iter().enumerate() {
            let answer = tokio::time::timeout(PROBE_TIMEOUT, probe.ready()).await;
            if matches!(answer, Ok(Ok(true))) {
                ready[node] += 1;
                failed_in_a_row[node] = 0;
            } else {
                failed_in_a_row[node] += 1;
                most_failed_in_a_row[node] = most_failed_in_a_row[node].max(failed_in_a_row[node]);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let queue_leader = cluster
        .leader_of_queue("orders", Duration::from_secs(10))
        .await
        .expect("leader of the queue's group");
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.expect("sender");
    }
    let sent = checker.verdict().sends_acknowledged;
    println!(
        "ready at [node 1, 2, 3] = {ready:?} of {PROBES} probes each, at most \
         {most_failed_in_a_row:?} failed in a row; node {follower} restarted, node \
         {queue_leader} led the queue's group; {sent} sends acknowledged"
    );
    assert!(sent > 100, "too little load: {sent} sends acknowledged");
    assert!(
        most_failed_in_a_row
            .iter()
            .all(|failed| *failed < PROBE_FAILURE_THRESHOLD),
        "ready at {ready:?} of {PROBES} probes under load, at most {most_failed_in_a_row:?} \
         failed in a row\n{}",
        cluster.log_tails()
    );
}
