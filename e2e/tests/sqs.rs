//! The SQS protocols with the real clients, unchanged: the programs in `examples/sqs/`
//! (written with boto3 as its documentation shows) run against a real broker with only
//! the endpoint set, over the JSON protocol (current botocore) and the query protocol
//! (botocore 1.31, from before SQS moved to JSON), and the aws CLI drives a whole flow.
//!
//! The older botocore lives outside the repository, where `.ci/run` installs it:
//! `pip install --target ~/.cache/sluice/boto-query boto3==1.28.0 botocore==1.31.0`
//! (or set `SLUICE_BOTO_QUERY` to another such directory).

use std::path::PathBuf;
use std::time::Duration;

use sluice_client::{ListQueues, QueueAttributesUpdate, ReceiveRequest, SendMessage};
use sluice_e2e::aws::{self, aws_command, boto3_snippet, check, query_boto};
use sluice_e2e::{Broker, BrokerOptions, test_dir};

const EXAMPLES: [&str; 4] = ["queues", "fifo", "dead_letter", "errors"];

fn run_example(name: &str, endpoint: &str, python_path: Option<&PathBuf>) {
    aws::run_example("sqs", name, endpoint, python_path.map(PathBuf::as_path));
}

/// The protocol the botocore on `python_path` speaks to SQS.
fn botocore_protocol(python_path: Option<&PathBuf>) -> String {
    let output = aws_command("python3", "unused", python_path.map(PathBuf::as_path))
        .args([
            "-c",
            "import botocore.session; print(botocore.session.get_session().get_service_model('sqs').metadata['protocol'])",
        ])
        .output()
        .expect("python3 runs");
    check(output, "asking botocore for its SQS protocol")
        .trim()
        .to_string()
}

#[tokio::test]
async fn boto3_programs_run_unchanged_over_the_json_protocol() {
    assert_eq!(botocore_protocol(None), "json", "pip install boto3");
    let dir = test_dir("sqs-json").expect("dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker");
    for name in EXAMPLES {
        run_example(name, &broker.url(), None);
    }
}

#[tokio::test]
async fn older_sdks_run_the_same_programs_over_the_query_protocol() {
    let boto = query_boto();
    assert!(
        boto.join("botocore").is_dir(),
        "botocore 1.31 is not at {}; install it with: pip install --target {} boto3==1.28.0 botocore==1.31.0",
        boto.display(),
        boto.display()
    );
    assert_eq!(botocore_protocol(Some(&boto)), "query");
    let dir = test_dir("sqs-query").expect("dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker");
    for name in EXAMPLES {
        run_example(name, &broker.url(), Some(&boto));
    }
}

#[tokio::test]
async fn the_aws_cli_sends_receives_and_deletes_and_v1_sees_the_same_queue() {
    let dir = test_dir("sqs-cli").expect("dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker");
    let endpoint = broker.url();
    let aws = |args: &[&str]| aws::aws_cli(&endpoint, &[&["sqs"], args].concat());
    let url = aws(&[
        "create-queue",
        "--queue-name",
        "cli-orders",
        "--attributes",
        "VisibilityTimeout=45",
    ])["QueueUrl"]
        .as_str()
        .expect("a queue URL")
        .to_string();
    assert!(url.ends_with("/000000000000/cli-orders"), "{url}");

    // The queue is the same one the v1 API sees, and a v1 send is an SQS message.
    let queue = broker.client.get_queue("cli-orders").await.expect("v1 get");
    assert_eq!(queue.attributes.visibility_seconds, 45);
    let mut v1 = SendMessage::text("sent over v1");
    v1.attributes.insert("origin".into(), "v1".into());
    broker
        .client
        .send("cli-orders", &v1)
        .await
        .expect("v1 send");
    aws(&[
        "send-message",
        "--queue-url",
        &url,
        "--message-body",
        "sent by the cli",
        "--message-attributes",
        r#"{"origin":{"DataType":"String","StringValue":"cli"}}"#,
    ]);
    let got = aws(&[
        "receive-message",
        "--queue-url",
        &url,
        "--max-number-of-messages",
        "10",
        "--wait-time-seconds",
        "2",
        "--message-attribute-names",
        "All",
    ]);
    let messages = got["Messages"].as_array().expect("messages");
    let mut bodies: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["Body"].as_str().expect("body"),
                m["MessageAttributes"]["origin"]["StringValue"]
                    .as_str()
                    .expect("origin"),
            )
        })
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec![("sent by the cli", "cli"), ("sent over v1", "v1")]
    );
    for m in messages {
        aws(&[
            "delete-message",
            "--queue-url",
            &url,
            "--receipt-handle",
            m["ReceiptHandle"].as_str().expect("handle"),
        ]);
    }
    let counts = broker
        .client
        .get_queue("cli-orders")
        .await
        .expect("get")
        .counts;
    assert_eq!((counts.visible, counts.in_flight), (0, 0), "both deleted");
    let v1_receive = ReceiveRequest {
        max: Some(10),
        wait_seconds: Some(0),
        visibility_seconds: None,
    };
    assert!(
        broker
            .client
            .receive("cli-orders", &v1_receive)
            .await
            .expect("receive")
            .is_empty()
    );

    // A failing call exits non-zero with the SQS error code.
    let output = aws_command("aws", &endpoint, None)
        .args([
            "--endpoint-url",
            &endpoint,
            "sqs",
            "get-queue-url",
            "--queue-name",
            "cli-missing",
        ])
        .output()
        .expect("aws runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("AWS.SimpleQueueService.NonExistentQueue"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn signatures_are_checked_when_the_broker_has_access_keys() {
    let dir = test_dir("sqs-auth").expect("dir");
    let broker = aws::broker_with_keys(
        dir.path(),
        r#"{"keys": [
            {"accessKeyId": "sluice-test", "secretAccessKey": "sluice-test-secret", "tenant": "ops"},
            {"accessKeyId": "team-a", "secretAccessKey": "team-a-secret", "queues": ["team-a-*"]}
        ]}"#,
    )
    .await
    .expect("broker");
    let endpoint = broker.url();

    // Signed with a configured key (the one aws_command sets): both protocols work.
    run_example("queues", &endpoint, None);
    run_example("errors", &endpoint, Some(&query_boto()));

    // A wrong secret, an unknown key, and no signature at all are refused.
    let wrong = boto3_snippet(
        &endpoint,
        "sluice-test",
        "not-the-secret",
        "sqs.list_queues()",
    )
    .expect_err("a wrong secret is refused");
    assert!(wrong.contains("SignatureDoesNotMatch"), "{wrong}");
    let unknown = boto3_snippet(&endpoint, "nobody", "x", "sqs.list_queues()")
        .expect_err("an unknown key is refused");
    assert!(unknown.contains("InvalidClientTokenId"), "{unknown}");
    let unsigned = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("X-Amz-Target", "AmazonSQS.ListQueues")
        .header("Content-Type", "application/x-amz-json-1.0")
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert_eq!(unsigned.status(), 403);
    assert!(
        unsigned
            .headers()
            .get("x-amzn-query-error")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("MissingAuthenticationToken")),
        "{:?}",
        unsigned.headers()
    );
    // Headers that claim a request was forwarded with a verified key do not get a client
    // past the check: only the peer port trusts them.
    let spoofed = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("X-Amz-Target", "AmazonSQS.ListQueues")
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("x-sluice-forwarded-by", "2")
        .header("x-sluice-access-key", "sluice-test")
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert_eq!(spoofed.status(), 403, "a spoofed key was trusted");
    // The v1 API is not behind SQS keys.
    broker
        .client
        .list_queues(&ListQueues::default())
        .await
        .expect("v1 list");

    // A key limited to some queues reaches only those, and sees only those.
    let team = |code: &str| boto3_snippet(&endpoint, "team-a", "team-a-secret", code);
    team("sqs.create_queue(QueueName='team-a-jobs')").expect("its own queue");
    let denied = team("sqs.create_queue(QueueName='payroll')").expect_err("another queue");
    assert!(denied.contains("AccessDenied"), "{denied}");
    let denied = team(&format!(
        "sqs.send_message(QueueUrl='{endpoint}/000000000000/example-other', MessageBody='x')"
    ))
    .expect_err("another queue");
    assert!(denied.contains("AccessDenied"), "{denied}");
    broker
        .client
        .put_queue("ops-only", &QueueAttributesUpdate::default())
        .await
        .expect("v1 create");
    let listed = team("print(sorted(sqs.list_queues().get('QueueUrls', [])))").expect("list");
    assert!(listed.contains("team-a-jobs"), "{listed}");
    assert!(!listed.contains("ops-only"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_of_a_cluster_serves_sqs() {
    let dir = test_dir("sqs-cluster").expect("dir");
    // Signatures on: the follower a client reaches checks them, the leader trusts it.
    let cluster = aws::cluster_with_keys(
        dir.path(),
        3,
        r#"{"keys": [{"accessKeyId": "sluice-test", "secretAccessKey": "sluice-test-secret"}]}"#,
    )
    .await
    .expect("cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    // Both protocols through a follower, which forwards to the leader: queue URLs name
    // the follower the client addressed, and the signature is checked there.
    let endpoint = cluster.node(follower).url();
    run_example("queues", &endpoint, None);
    run_example("fifo", &endpoint, Some(&query_boto()));
    cluster
        .client(leader)
        .put_queue("after", &QueueAttributesUpdate::default())
        .await
        .expect("v1 create on the leader");
    run_example("errors", &endpoint, None);
}
