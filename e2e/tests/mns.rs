//! MNS (Alibaba Cloud Message Service) with its real Python SDK, unchanged: the programs
//! in `examples/mns/` (written with `aliyun-mns-sdk` as its documentation shows) run
//! against a real broker with only the endpoint set: queues (create, attributes,
//! batches, priorities, delays, peeks, visibility, receipt handles, errors) and topics
//! (fan-out into queues filtered by tag, XML notifications pushed to an HTTP endpoint
//! on loopback and put in queues). Signatures are checked when the broker has keys, and
//! a follower of a cluster serves MNS like the leader.
//!
//! `pip install aliyun-mns-sdk` (`.ci/run` does).

use std::process::Output;
use std::time::Duration;

use sluice_client::ListQueues;
use sluice_e2e::aws::{self, check, examples_dir};
use sluice_e2e::{Broker, BrokerOptions, test_dir};

const EXAMPLES: [&str; 2] = ["queues", "topics"];

/// Runs a Python program with the MNS settings it reads from the environment.
fn python(endpoint: &str, key: &str, secret: &str, args: &[&str]) -> Output {
    std::process::Command::new("python3")
        .arg("-W")
        .arg("ignore::DeprecationWarning")
        .args(args)
        .env("MNS_ENDPOINT", endpoint)
        .env("MNS_ACCESS_KEY_ID", key)
        .env("MNS_ACCESS_KEY_SECRET", secret)
        .output()
        .expect("python3 runs")
}

fn run_example(name: &str, endpoint: &str, key: &str, secret: &str) {
    let script = examples_dir("mns").join(format!("{name}.py"));
    let output = python(
        endpoint,
        key,
        secret,
        &[script.to_str().expect("a UTF-8 path")],
    );
    check(
        output,
        &format!("examples/mns/{name}.py against {endpoint}"),
    );
}

/// Creates queue `name` with key/secret; the MNS error code when refused.
fn create_queue(endpoint: &str, key: &str, secret: &str, name: &str) -> Result<(), String> {
    let program = format!(
        "import os\nfrom mns.account import Account\nfrom mns.queue import QueueMeta\nfrom mns.mns_exception import MNSServerException\ntry:\n    Account(os.environ['MNS_ENDPOINT'], os.environ['MNS_ACCESS_KEY_ID'], os.environ['MNS_ACCESS_KEY_SECRET']).get_queue('{name}').create(QueueMeta())\nexcept MNSServerException as e:\n    print(e.type)\n    raise SystemExit(1)"
    );
    let output = python(endpoint, key, secret, &["-c", &program]);
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

#[tokio::test]
async fn sdk_programs_run_unchanged() {
    let dir = test_dir("mns-sdk").expect("dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker");
    for name in EXAMPLES {
        // Without keys any credentials do.
        run_example(name, &broker.url(), "any", "any");
    }
    // The queues and topics MNS made are the v1 API's.
    let topics = broker
        .client
        .list_topics(&ListQueues::default())
        .await
        .expect("v1 topics");
    assert!(
        topics.topics.is_empty(),
        "the examples delete their topics: {topics:?}"
    );
    let queue = broker
        .client
        .get_queue("example-sports")
        .await
        .expect("the queue the topics example made");
    assert_eq!(queue.attributes.max_message_bytes, 65_536);
}

#[tokio::test]
async fn signatures_and_key_limits_are_checked_when_the_broker_has_keys() {
    let dir = test_dir("mns-auth").expect("dir");
    let broker = aws::broker_with_keys(
        dir.path(),
        r#"{"keys": [
            {"accessKeyId": "ops", "secretAccessKey": "ops-secret"},
            {"accessKeyId": "team-a", "secretAccessKey": "team-a-secret",
             "queues": ["team-a-*"], "topics": ["team-a-*"]}
        ]}"#,
    )
    .await
    .expect("broker");
    let endpoint = broker.url();
    for name in EXAMPLES {
        run_example(name, &endpoint, "ops", "ops-secret");
    }
    assert_eq!(
        create_queue(&endpoint, "ops", "not-the-secret", "q1"),
        Err("SignatureDoesNotMatch".into())
    );
    assert_eq!(
        create_queue(&endpoint, "nobody", "x", "q1"),
        Err("InvalidAccessKeyId".into())
    );
    assert_eq!(
        create_queue(&endpoint, "team-a", "team-a-secret", "payroll"),
        Err("AccessDenied".into())
    );
    create_queue(&endpoint, "team-a", "team-a-secret", "team-a-jobs").expect("its own queue");
    let unsigned = reqwest::Client::new()
        .put(format!("{endpoint}/queues/unsigned"))
        .send()
        .await
        .expect("answered");
    assert_eq!(unsigned.status(), 400);
    let text = unsigned.text().await.expect("body");
    assert!(
        text.contains("<Code>InvalidAuthorizationHeader</Code>"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_of_a_cluster_serves_mns() {
    let dir = test_dir("mns-cluster").expect("dir");
    let cluster = aws::cluster_with_keys(
        dir.path(),
        3,
        r#"{"keys": [{"accessKeyId": "ops", "secretAccessKey": "ops-secret"}]}"#,
    )
    .await
    .expect("cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    // Signed requests through a follower, which checks them and forwards to the leader.
    for name in EXAMPLES {
        run_example(name, &cluster.node(follower).url(), "ops", "ops-secret");
    }
}
