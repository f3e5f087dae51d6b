//! Data groups on clusters of real processes: queues and topics in different
//! Raft groups, led by different nodes, and messages that move between groups through
//! the source group's outbox (a topic feeding a queue, dead letters, a redrive) arrive
//! exactly once, also when the source group's leader is killed while it ships; and a
//! topic's partitions spread over the groups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sluice_client::{
    Client, ClusterStatus, DeadLetter, DeliveryFormat, Endpoint, ErrorCode, ListQueues,
    PublishMessage, PullQuery, QueueAttributesUpdate, ReceiveRequest, RedriveRequest, RedriveState,
    SendMessage, SubscriptionFilter, SubscriptionSpec, TopicAttributesUpdate, TopicMessage,
};
use sluice_e2e::cluster::Cluster;
use sluice_e2e::sink::Sink;
use sluice_e2e::test_dir;

fn receive(max: u32, visibility: u32) -> ReceiveRequest {
    ReceiveRequest {
        max: Some(max),
        wait_seconds: Some(1),
        visibility_seconds: Some(visibility),
    }
}

/// Creates queues named `{prefix}-0`, `{prefix}-1`, ... until one lands outside group
/// `avoid`; returns its name and group.
async fn queue_outside(
    c: &Client,
    prefix: &str,
    avoid: u32,
    attrs: &QueueAttributesUpdate,
) -> (String, u32) {
    for i in 0..32 {
        let name = format!("{prefix}-{i}");
        let q = c.put_queue(&name, attrs).await.expect("create queue");
        if q.group != avoid {
            return (name, q.group);
        }
        c.delete_queue(&name).await.expect("delete");
    }
    panic!("no name of 32 left group {avoid}: placement does not spread names");
}

/// Receives and acknowledges until `want` bodies came or `timeout` passed; the bodies in
/// the order received (a repeat shows up twice).
async fn drain(c: &Client, queue: &str, want: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut bodies = Vec::new();
    while bodies.len() < want && Instant::now() < deadline {
        let Ok(got) = c.receive(queue, &receive(32, 30)).await else {
            continue;
        };
        let receipts: Vec<String> = got.iter().filter_map(|m| m.receipt.clone()).collect();
        bodies.extend(got.into_iter().filter_map(|m| m.body));
        if !receipts.is_empty() {
            c.ack(queue, &receipts).await.expect("ack");
        }
    }
    bodies
}

/// Receives and acknowledges until every body of `expected` came or `timeout` passed;
/// the bodies of `expected` in the order received (a repeat shows up twice).
async fn drain_until(
    c: &Client,
    queue: &str,
    expected: &BTreeSet<String>,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut bodies: Vec<String> = Vec::new();
    while !expected.iter().all(|b| bodies.contains(b)) && Instant::now() < deadline {
        let more = drain(c, queue, 1, Duration::from_secs(1)).await;
        bodies.extend(more.into_iter().filter(|b| expected.contains(b)));
    }
    bodies
}

/// The hash that picks a keyed message's partition (README, Topics: Partitions).
fn fnv1a64(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_feeds_a_queue_of_another_group_exactly_once_across_a_leader_kill() {
    let dir = test_dir("groups-fanout").expect("dir");
    let mut cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    let c = cluster.client(1).retry_for(Duration::from_secs(30));
    let topic = c
        .put_topic("news", &TopicAttributesUpdate::default())
        .await
        .expect("topic");
    let (queue, queue_group) =
        queue_outside(&c, "inbox", topic.group, &QueueAttributesUpdate::default()).await;
    assert_ne!(queue_group, topic.group);
    c.put_subscription(
        "news",
        "to-inbox",
        &SubscriptionSpec::new(Endpoint::Queue(queue.clone())),
    )
    .await
    .expect("subscribe the queue");

    // Publish through every node in turn; halfway, SIGKILL the topic group's leader
    // (which ships the outbox) and bring it back.
    let clients: Vec<Client> = (1..=3)
        .map(|id| cluster.client(id).retry_for(Duration::from_secs(30)))
        .collect();
    let mut acknowledged = BTreeSet::new();
    let total = 300;
    let mut killed = None;
    for i in 0..total {
        if i == total / 2 {
            let leader = cluster
                .leader_of_group(topic.group, Duration::from_secs(20))
                .await
                .expect("leader");
            cluster.node_mut(leader).kill9().expect("kill");
            killed = Some(leader);
        }
        let via = (1..=3u64)
            .map(|id| (id + i as u64) % 3 + 1)
            .find(|id| Some(*id) != killed)
            .expect("a running node");
        let body = format!("news {i}");
        if clients[via as usize - 1]
            .publish("news", &PublishMessage::text(body.clone()))
            .await
            .is_ok()
        {
            acknowledged.insert(body);
        }
        if i == total / 2 + 50
            && let Some(id) = killed.take()
        {
            cluster.node_mut(id).relaunch().expect("relaunch");
        }
    }
    cluster
        .wait_all_ready(Duration::from_secs(60))
        .await
        .expect("all ready");

    let bodies = drain(&c, &queue, acknowledged.len(), Duration::from_secs(60)).await;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &bodies {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|b| !counts.contains_key(b.as_str()))
        .collect();
    println!(
        "| published | acknowledged | delivered to {queue} (group {queue_group}) | lost | repeated |\n|---|---|---|---|---|\n| {total} | {} | {} | {} | {} |",
        acknowledged.len(),
        bodies.len(),
        lost.len(),
        repeated.len()
    );
    assert!(
        acknowledged.len() >= total - 10,
        "most publishes were acknowledged"
    );
    assert!(
        lost.is_empty(),
        "acknowledged publishes never reached the queue: {lost:?}"
    );
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert!(
        counts.keys().all(|b| b.starts_with("news ")),
        "only published bodies arrive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_cross_groups_and_redrive_back_to_their_source() {
    let dir = test_dir("groups-deadletter").expect("dir");
    let cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    let c = cluster.client(2).retry_for(Duration::from_secs(30));
    let graveyard = c
        .put_queue("graveyard", &QueueAttributesUpdate::default())
        .await
        .expect("dead-letter queue");
    let (work, work_group) = queue_outside(
        &c,
        "work",
        graveyard.group,
        &QueueAttributesUpdate {
            dead_letter: Some(Some(DeadLetter {
                queue: "graveyard".into(),
                max_receives: 1,
            })),
            ..QueueAttributesUpdate::default()
        },
    )
    .await;
    assert_ne!(work_group, graveyard.group);

    let n = 20;
    for i in 0..n {
        c.send(&work, &SendMessage::text(format!("poison {i}")))
            .await
            .expect("send");
    }
    // Received once and never acknowledged: the next receive moves them on.
    let mut received = 0;
    while received < n {
        received += c
            .receive(&work, &receive(10, 1))
            .await
            .expect("receive")
            .len();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        c.receive(&work, &receive(10, 1))
            .await
            .expect("receive")
            .is_empty()
    );

    // They arrive in the other group's queue, each once, naming their source.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dead = Vec::new();
    while dead.len() < n && Instant::now() < deadline {
        dead.extend(
            c.receive("graveyard", &receive(10, 1))
                .await
                .expect("receive"),
        );
    }
    let bodies: BTreeSet<String> = dead.iter().filter_map(|m| m.body.clone()).collect();
    assert_eq!(dead.len(), n, "each dead letter once");
    assert_eq!(bodies, (0..n).map(|i| format!("poison {i}")).collect());
    assert!(
        dead.iter()
            .all(|m| m.source_queue.as_deref() == Some(work.as_str()))
    );

    // A redrive sends them back across the groups once their visibility lapses.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let task = c
        .start_redrive("graveyard", &RedriveRequest::default())
        .await
        .expect("redrive");
    assert_eq!(task.total, n as u64);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = c.list_redrives("graveyard").await.expect("tasks");
        if tasks[0].state == RedriveState::Completed {
            assert_eq!(tasks[0].moved, n as u64);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redrive did not complete: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = drain(&c, &work, n, Duration::from_secs(20)).await;
    assert_eq!(back.len(), n, "each redriven once: {back:?}");
    assert_eq!(
        back.into_iter().collect::<BTreeSet<_>>(),
        (0..n).map(|i| format!("poison {i}")).collect()
    );
}

/// The cluster's status once every data group of a five-node cluster votes on three
/// nodes and has the other two as learners.
async fn data_groups_on_three_voters(cluster: &Cluster) -> ClusterStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster.client(1).cluster().await.expect("status");
        let settled = status.groups[1..]
            .iter()
            .all(|g| g.voters.len() == 3 && g.learners.len() == 2);
        if settled {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "data groups never settled on three voters: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_five_nodes_each_data_group_has_three_voters_and_scaling_down_keeps_them() {
    let dir = test_dir("groups-five").expect("dir");
    let mut cluster = Cluster::start(dir.path(), 5).await.expect("cluster");
    let status = data_groups_on_three_voters(&cluster).await;
    assert_eq!(
        status.groups[0].voters.len(),
        5,
        "the metadata group has every node"
    );
    let voter_sets: BTreeSet<Vec<u64>> = status.groups[1..]
        .iter()
        .map(|g| g.voters.clone())
        .collect();
    assert!(
        voter_sets.len() > 1,
        "groups vote on different nodes: {status:?}"
    );

    // A queue is served through every node, voter of its group or not.
    let c = cluster.client(1);
    let q = c
        .put_queue("spread", &QueueAttributesUpdate::default())
        .await
        .expect("create");
    let group = &status.groups[q.group as usize];
    for id in 1..=5u64 {
        cluster
            .client(id)
            .send("spread", &SendMessage::text(format!("via {id}")))
            .await
            .expect("send");
    }
    let learner = group.learners[0];
    let bodies = drain(
        &cluster.client(learner),
        "spread",
        5,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        bodies.into_iter().collect::<BTreeSet<_>>(),
        (1..=5).map(|id| format!("via {id}")).collect()
    );
    let listed = cluster
        .client(learner)
        .list_queues(&Default::default())
        .await
        .expect("list");
    assert!(listed.queues.iter().any(|q| q.name == "spread"));

    // Scaling down: two members removed one right after the other (as an operator
    // does), each stopped once removed. Their groups' voters move first, so every group
    // keeps a quorum and the queue stays served.
    for gone in [5, 4] {
        let status = cluster.client(1).remove_member(gone).await.expect("remove");
        assert!(status.members.iter().all(|m| m.id != gone), "{status:?}");
        assert!(
            status.groups.iter().all(|g| !g.voters.contains(&gone)),
            "no group counts on node {gone}: {status:?}"
        );
        cluster
            .node_mut(gone)
            .kill9()
            .expect("stop the removed node");
    }
    let c = cluster.client(2).retry_for(Duration::from_secs(20));
    c.send("spread", &SendMessage::text("after"))
        .await
        .expect("send after scaling down");
    let bodies = drain(&c, "spread", 1, Duration::from_secs(20)).await;
    assert_eq!(bodies, ["after"]);
    let status = c.cluster().await.expect("status");
    assert!(
        status
            .groups
            .iter()
            .all(|g| g.voters.len() == 3 && g.leader.is_some()),
        "{status:?}"
    );
}

/// Every message a pull subscription has after `after` (the device's committed cursor
/// when `None`), following the cursors until a pull comes back empty; and the last
/// cursor.
async fn pull_all(
    c: &Client,
    topic: &str,
    sub: &str,
    after: Option<String>,
    device: Option<&str>,
) -> (Vec<TopicMessage>, String) {
    let mut messages = Vec::new();
    let mut after = after;
    loop {
        let page = c
            .pull(
                topic,
                sub,
                &PullQuery {
                    after: after.clone(),
                    device: device.map(str::to_string),
                    max: Some(50),
                    wait_seconds: None,
                },
            )
            .await
            .expect("pull");
        let done = page.messages.is_empty();
        messages.extend(page.messages);
        after = Some(page.cursor.clone());
        if done {
            return (messages, page.cursor);
        }
    }
}

/// Bodies that are not there exactly once: (body, times seen).
fn not_once<'a>(expected: &'a BTreeSet<String>, seen: &[String]) -> Vec<(&'a str, usize)> {
    expected
        .iter()
        .map(|b| (b.as_str(), seen.iter().filter(|s| *s == b).count()))
        .filter(|(_, n)| *n != 1)
        .collect()
}

/// Keyed messages of `phase` read out of their key's order (a keyed body starts
/// `{key} {n}`, the key's n-th message).
fn key_order_violations(phase: &BTreeSet<String>, read: &[String]) -> Vec<String> {
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    let mut violations = Vec::new();
    for body in read.iter().filter(|b| phase.contains(*b)) {
        let mut words = body.split(' ');
        let (Some(key), Some(n)) = (words.next(), words.next().and_then(|n| n.parse().ok())) else {
            continue;
        };
        if key == "unkeyed" {
            continue;
        }
        if last.get(key).is_some_and(|prev| *prev >= n) {
            violations.push(body.clone());
        }
        last.insert(key, n);
    }
    violations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_topic_spreads_over_groups_and_every_subscription_gets_every_message() {
    let dir = test_dir("groups-partitions").expect("dir");
    let cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    let c = cluster.client(1).retry_for(Duration::from_secs(30));
    let (sink, base) = Sink::start().await.expect("sink");
    let partitioned = |n| TopicAttributesUpdate {
        partitions: Some(n),
        ..TopicAttributesUpdate::default()
    };
    let topic = c.put_topic("events", &partitioned(4)).await.expect("topic");
    assert_eq!(topic.attributes.partitions, 4);
    assert_eq!(topic.partition_groups.len(), 4, "{topic:?}");
    let spread: BTreeSet<u32> = topic.partition_groups.iter().copied().collect();
    assert!(spread.len() >= 2, "partitions share one group: {topic:?}");

    c.put_queue("events-copy", &QueueAttributesUpdate::default())
        .await
        .expect("queue");
    c.put_subscription(
        "events",
        "copy",
        &SubscriptionSpec::new(Endpoint::Queue("events-copy".into())),
    )
    .await
    .expect("queue subscription");
    let mut hook = SubscriptionSpec::new(Endpoint::Http {
        url: format!("{base}/hook"),
    });
    hook.format = Some(DeliveryFormat::Simplified);
    c.put_subscription("events", "hook", &hook)
        .await
        .expect("push subscription");
    c.put_subscription("events", "feed", &SubscriptionSpec::new(Endpoint::Pull {}))
        .await
        .expect("pull subscription");
    let mut vip = SubscriptionSpec::new(Endpoint::Pull {});
    vip.filter = Some(SubscriptionFilter {
        tags: vec!["vip".into()],
        attributes: BTreeMap::new(),
    });
    c.put_subscription("events", "vip", &vip)
        .await
        .expect("filtered subscription");

    // Two phases of batches of four through every node in turn: eight keys, every fifth
    // message without one, every third tagged `vip`. Between them the topic grows to six
    // partitions, which moves keys (as Kafka's do): order per key holds within a phase.
    let clients: Vec<Client> = (1..=3)
        .map(|id| cluster.client(id).retry_for(Duration::from_secs(30)))
        .collect();
    let mut phases: Vec<BTreeSet<String>> = vec![BTreeSet::new(), BTreeSet::new()];
    let mut vips = BTreeSet::new();
    let mut per_key: BTreeMap<String, u64> = BTreeMap::new();
    let mut i = 0;
    for (phase, bodies) in phases.iter_mut().enumerate() {
        if phase == 1 {
            let grown = clients[1]
                .put_topic("events", &partitioned(6))
                .await
                .expect("grow");
            assert_eq!(grown.partition_groups.len(), 6, "{grown:?}");
            let (status, code) = match c.put_topic("events", &partitioned(5)).await {
                Err(sluice_client::Error::Api { status, error }) => (status, error.code),
                other => panic!("shrinking must be refused, got {other:?}"),
            };
            assert_eq!((status, code), (409, ErrorCode::ImmutableAttribute));
        }
        for batch in 0..30 {
            let mut messages = Vec::new();
            for _ in 0..4 {
                let key = (i % 5 != 4).then(|| format!("user-{}", i % 8));
                let n = per_key.entry(key.clone().unwrap_or_default()).or_default();
                *n += 1;
                let body = match &key {
                    Some(key) => format!("{key} {n} phase {phase} message {i}"),
                    None => format!("unkeyed {i}"),
                };
                let mut m = PublishMessage::text(body.clone());
                m.key = key;
                if i % 3 == 0 {
                    m.tag = Some("vip".into());
                    vips.insert(body.clone());
                }
                messages.push(m);
                bodies.insert(body);
                i += 1;
            }
            let results = clients[batch % 3]
                .publish_batch("events", &messages)
                .await
                .expect("publish");
            assert!(
                results.iter().all(|r| r.is_ok()),
                "every message of the batch was stored: {results:?}"
            );
        }
    }
    let published: BTreeSet<String> = phases.iter().flatten().cloned().collect();
    assert_eq!(published.len(), 240);

    // The pull subscription reads each message once, through any node, in key order.
    let (read, cursor) = pull_all(&clients[2], "events", "feed", None, None).await;
    let bodies: Vec<String> = read.iter().filter_map(|m| m.body.clone()).collect();
    assert_eq!(
        not_once(&published, &bodies),
        vec![],
        "pulled not exactly once"
    );
    for phase in &phases {
        assert_eq!(key_order_violations(phase, &bodies), Vec::<String>::new());
    }
    let (vip_read, _) = pull_all(&c, "events", "vip", None, None).await;
    let vip_bodies: Vec<String> = vip_read.into_iter().filter_map(|m| m.body).collect();
    assert_eq!(not_once(&vips, &vip_bodies), vec![]);
    assert_eq!(vip_bodies.len(), vips.len(), "only tagged messages");

    // A device's cursor holds a position in every partition.
    c.commit_cursor("events", "feed", "phone", &cursor)
        .await
        .expect("commit");
    assert_eq!(
        clients[1]
            .get_cursor("events", "feed", "phone")
            .await
            .expect("cursor"),
        cursor
    );
    let (none, _) = pull_all(&c, "events", "feed", None, Some("phone")).await;
    assert!(none.is_empty(), "a committed device reads nothing again");
    let mut late = PublishMessage::text("late".to_string());
    late.key = Some("user-3".into());
    c.publish("events", &late).await.expect("publish");
    let (after_commit, _) = pull_all(&c, "events", "feed", None, Some("phone")).await;
    let after_commit: Vec<String> = after_commit.into_iter().filter_map(|m| m.body).collect();
    assert_eq!(after_commit, vec!["late".to_string()]);
    let mut everything = published.clone();
    everything.insert("late".into());

    // The queue gets each message once (across groups, through the outboxes); the push
    // endpoint at least once.
    let copied = drain(&c, "events-copy", everything.len(), Duration::from_secs(60)).await;
    assert_eq!(not_once(&everything, &copied), vec![], "queue copy");
    let pushed = sink
        .wait_for(Duration::from_secs(60), |pushes| {
            let got: BTreeSet<&[u8]> = pushes
                .iter()
                .filter(|p| p.endpoint == "hook" && p.status < 300)
                .map(|p| p.body.as_ref())
                .collect();
            everything.iter().all(|b| got.contains(b.as_bytes()))
        })
        .await;
    assert!(pushed, "every message pushed to the endpoint");

    // The views add the partitions up, and the listing shows the topic once.
    let t = c.get_topic("events").await.expect("topic");
    assert_eq!(t.messages, everything.len() as u64);
    assert_eq!(t.subscriptions, 4);
    let deadline = Instant::now() + Duration::from_secs(20);
    let hook_view = loop {
        let s = c.get_subscription("events", "hook").await.expect("sub");
        if s.counts.delivered >= everything.len() as u64 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        hook_view.counts.delivered >= everything.len() as u64 && hook_view.counts.backlog == 0,
        "{hook_view:?}"
    );
    let listed = c.list_topics(&ListQueues::default()).await.expect("list");
    let names: Vec<&str> = listed.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["events"]);

    // Deleted, and made again: nothing of the old partitions comes back.
    c.delete_topic("events").await.expect("delete");
    assert!(c.get_topic("events").await.is_err(), "gone");
    c.put_topic("events", &partitioned(6)).await.expect("again");
    c.put_subscription("events", "feed", &SubscriptionSpec::new(Endpoint::Pull {}))
        .await
        .expect("pull subscription");
    let again = c.get_topic("events").await.expect("topic");
    assert_eq!(again.messages, 0, "{again:?}");
    let (old, _) = pull_all(&c, "events", "feed", None, None).await;
    assert!(old.is_empty(), "the old topic's messages are gone: {old:?}");
}

/// A subscription that partition 0 took but could not copy to partition 1, whose group
/// had lost its leader and quorum, is copied by partition 0's leader once that group is
/// back (the request itself fails with 503: it was not done everywhere). From then on
/// the subscription gets every message of both partitions, and the one made before
/// keeps getting its own, each exactly once. Run with the repair turned off, no message
/// of partition 1 ever reaches the new subscription and the test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_a_partition_missed_while_it_had_no_quorum_is_made_once_it_is_back() {
    let dir = test_dir("groups-partition-repair").expect("dir");
    let mut cluster = Cluster::start(dir.path(), 5).await.expect("cluster");
    let status = data_groups_on_three_voters(&cluster).await;
    let voters = |group: u32| status.groups[group as usize].voters.clone();
    let c = cluster.client(1).retry_for(Duration::from_secs(30));

    // A topic whose two partitions are in groups voting on different nodes.
    let two = TopicAttributesUpdate {
        partitions: Some(2),
        ..TopicAttributesUpdate::default()
    };
    let mut chosen = None;
    for i in 0..32 {
        let name = format!("alerts-{i}");
        let t = c.put_topic(&name, &two).await.expect("topic");
        let (first, second) = (t.partition_groups[0], t.partition_groups[1]);
        if voters(first) != voters(second) {
            chosen = Some((name, first, second));
            break;
        }
        c.delete_topic(&name).await.expect("delete");
    }
    let (topic, first, second) =
        chosen.expect("no topic of 32 had its partitions in groups with different voters");
    // Fan-out into queues: each partition's group ships its messages to the queue of
    // every subscription it has, so a subscription a partition lacks misses that
    // partition's messages.
    let into = |queue: &str| SubscriptionSpec::new(Endpoint::Queue(queue.into()));
    for queue in ["before-copy", "late-copy"] {
        c.put_queue(queue, &QueueAttributesUpdate::default())
            .await
            .expect("queue");
    }
    c.put_subscription(&topic, "before", &into("before-copy"))
        .await
        .expect("subscription before");

    // Partition 1's leader and one more of its group's voters are killed, at most one of
    // them a voter of partition 0's group: partition 1's group is left without a leader
    // (so nothing of the request reaches its log), while partition 0's group and the
    // metadata group (five voters) keep a quorum.
    let leader = cluster
        .leader_of_group(second, Duration::from_secs(10))
        .await
        .expect("partition 1's leader");
    let only_second = voters(second)
        .into_iter()
        .find(|n| !voters(first).contains(n))
        .expect("a voter of partition 1's group only");
    let also = if leader == only_second || !voters(first).contains(&leader) {
        voters(second).into_iter().find(|n| *n != leader)
    } else {
        Some(only_second)
    };
    let stopped = [leader, also.expect("another voter of partition 1's group")];
    for id in stopped {
        cluster.node_mut(id).kill9().expect("kill");
    }
    // Asked of partition 0's leader itself, so its answer comes when the request's
    // handler is done (a node relaying it could give up first, leaving the handler to
    // make the copy once the group is back, which would not test the repair).
    let deadline = Instant::now() + Duration::from_secs(30);
    let via = loop {
        match cluster
            .leader_of_group(first, Duration::from_secs(10))
            .await
        {
            Ok(id) if !stopped.contains(&id) => break id,
            other => assert!(
                Instant::now() < deadline,
                "partition 0's group has no running leader: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let once = cluster.client(via).retry_for(Duration::ZERO);
    let asked = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        once.put_subscription(&topic, "late", &into("late-copy")),
    )
    .await;
    println!(
        "with nodes {stopped:?} killed, the subscription was answered after {:?}: {answer:?}",
        asked.elapsed()
    );
    assert!(
        matches!(answer, Ok(Err(_))),
        "a subscription that could not reach partition 1 was answered {answer:?} (groups \
         {first} and {second}, nodes {stopped:?} killed)"
    );
    let taken = once.get_subscription(&topic, "late").await;
    assert!(taken.is_ok(), "partition 0 took it: {taken:?}");
    for id in stopped {
        cluster.node_mut(id).relaunch().expect("relaunch");
    }

    // Within the repair's rounds a message published to partition 1 reaches `late`
    // too: probes keyed to partition 1 until one does.
    let on_partition_1 = (0..)
        .map(|i| format!("probe-key-{i}"))
        .find(|key| fnv1a64(key) % 2 == 1)
        .expect("a key of partition 1");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut probe = 0;
    'repaired: loop {
        assert!(
            Instant::now() < deadline,
            "no message of partition 1 reached the late subscription\n{}",
            cluster.log_tails()
        );
        probe += 1;
        c.publish(
            &topic,
            &PublishMessage {
                key: Some(on_partition_1.clone()),
                ..PublishMessage::text(format!("probe {probe}"))
            },
        )
        .await
        .expect("publish a probe");
        for body in drain(&c, "late-copy", 1, Duration::from_secs(1)).await {
            if body.starts_with("probe") {
                break 'repaired;
            }
        }
    }

    // Then every message, on either partition, reaches both subscriptions exactly once.
    let messages: Vec<PublishMessage> = (0..40)
        .map(|i| PublishMessage {
            key: Some(format!("k{}", i % 8)),
            ..PublishMessage::text(format!("after {i}"))
        })
        .collect();
    let partitions: BTreeSet<u64> = messages
        .iter()
        .filter_map(|m| m.key.as_deref())
        .map(|key| fnv1a64(key) % 2)
        .collect();
    assert_eq!(partitions.len(), 2, "the keys cover both partitions");
    for sent in c.publish_batch(&topic, &messages).await.expect("publish") {
        sent.expect("published");
    }
    let expected: BTreeSet<String> = (0..40).map(|i| format!("after {i}")).collect();
    for queue in ["late-copy", "before-copy"] {
        let got = drain_until(&c, queue, &expected, Duration::from_secs(30)).await;
        assert_eq!(not_once(&expected, &got), vec![], "{queue} got {got:?}");
    }
}
