//! SNS with the real clients, unchanged: the programs in `examples/sns/` (written with
//! boto3 as its documentation shows) run against a real broker with only the endpoints
//! set: topics fanned out into SQS queues (wrapped in SNS notifications and raw, with
//! filter policies), an HTTP endpoint on loopback, and SNS's errors as boto3's
//! exceptions. The aws CLI drives a flow the v1 API then sees; signatures and per-key
//! topic limits are checked; a follower of a cluster serves SNS like the leader.

use std::time::Duration;

use sluice_client::{Endpoint, ReceiveRequest};
use sluice_e2e::aws::{self, aws_command, boto3_snippet, query_boto, run_example};
use sluice_e2e::{Broker, BrokerOptions, Cluster, test_dir};

const EXAMPLES: [&str; 3] = ["fanout", "http_endpoint", "errors"];

#[tokio::test]
async fn boto3_programs_run_unchanged() {
    let dir = test_dir("sns-boto3").expect("dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker");
    for name in EXAMPLES {
        run_example("sns", name, &broker.url(), None);
    }
    // An older SDK (botocore 1.31) speaks the same query protocol to SNS.
    let boto = query_boto();
    assert!(
        boto.join("botocore").is_dir(),
        "botocore 1.31 is not at {}; install it with: pip install --target {} boto3==1.28.0 botocore==1.31.0",
        boto.display(),
        boto.display()
    );
    run_example("sns", "fanout", &broker.url(), Some(boto.as_path()));
}

#[tokio::test]
async fn the_aws_cli_publishes_into_a_queue_the_v1_api_sees() {
    let dir = test_dir("sns-cli").expect("dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker");
    let endpoint = broker.url();
    let aws = |service: &str, args: &[&str]| aws::aws_cli(&endpoint, &[&[service], args].concat());
    let topic = aws("sns", &["create-topic", "--name", "cli-events"])["TopicArn"]
        .as_str()
        .expect("a topic ARN")
        .to_string();
    assert!(topic.ends_with(":000000000000:cli-events"), "{topic}");
    aws("sqs", &["create-queue", "--queue-name", "cli-inbox"]);
    let queue_arn = "arn:aws:sqs:us-east-1:000000000000:cli-inbox";
    let sub = aws(
        "sns",
        &[
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "sqs",
            "--notification-endpoint",
            queue_arn,
            "--attributes",
            r#"{"RawMessageDelivery":"true","FilterPolicy":"{\"kind\":[\"order\"]}"}"#,
        ],
    )["SubscriptionArn"]
        .as_str()
        .expect("a subscription ARN")
        .to_string();
    for (body, kind) in [("skipped", "refund"), ("kept", "order")] {
        aws(
            "sns",
            &[
                "publish",
                "--topic-arn",
                &topic,
                "--message",
                body,
                "--message-attributes",
                &format!(r#"{{"kind":{{"DataType":"String","StringValue":"{kind}"}}}}"#),
            ],
        );
    }

    // The v1 API sees the same topic, subscription and queue message.
    let subs = broker
        .client
        .list_subscriptions("cli-events")
        .await
        .expect("v1 subscriptions");
    assert_eq!(subs.len(), 1);
    assert!(sub.ends_with(&subs[0].name), "{sub} vs {}", subs[0].name);
    assert_eq!(subs[0].endpoint, Endpoint::Queue("cli-inbox".into()));
    let got = broker
        .client
        .receive(
            "cli-inbox",
            &ReceiveRequest {
                max: Some(10),
                wait_seconds: Some(2),
                visibility_seconds: None,
            },
        )
        .await
        .expect("v1 receive");
    let bodies: Vec<_> = got.iter().map(|m| m.body.as_deref()).collect();
    assert_eq!(bodies, vec![Some("kept")]);
    assert_eq!(got[0].topic.as_deref(), Some("cli-events"));
    assert_eq!(got[0].attributes["kind"], "order");

    // A failing call exits non-zero with SNS's error code.
    let output = aws_command("aws", &endpoint, None)
        .args([
            "--endpoint-url",
            &endpoint,
            "sns",
            "publish",
            "--topic-arn",
            "arn:aws:sns:us-east-1:000000000000:cli-missing",
            "--message",
            "x",
        ])
        .output()
        .expect("aws runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NotFound"), "{stderr}");
}

#[tokio::test]
async fn signatures_and_topic_limits_are_checked_when_the_broker_has_keys() {
    let dir = test_dir("sns-auth").expect("dir");
    let broker = aws::broker_with_keys(
        dir.path(),
        r#"{"keys": [
            {"accessKeyId": "sluice-test", "secretAccessKey": "sluice-test-secret"},
            {"accessKeyId": "team-a", "secretAccessKey": "team-a-secret",
             "queues": ["team-a-*"], "topics": ["team-a-*"]}
        ]}"#,
    )
    .await
    .expect("broker");
    let endpoint = broker.url();

    // Signed with a configured key: the whole fan-out program runs.
    run_example("sns", "fanout", &endpoint, None);

    let wrong = boto3_snippet(
        &endpoint,
        "sluice-test",
        "not-the-secret",
        "sns.list_topics()",
    )
    .expect_err("a wrong secret is refused");
    assert!(wrong.contains("SignatureDoesNotMatch"), "{wrong}");
    let unsigned = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("Action=ListTopics&Version=2010-03-31")
        .send()
        .await
        .expect("answered");
    assert_eq!(unsigned.status(), 403);
    let text = unsigned.text().await.expect("body");
    assert!(
        text.contains("<Code>MissingAuthenticationToken</Code>"),
        "{text}"
    );

    // A key limited to some topics and queues reaches only those.
    let team = |code: &str| boto3_snippet(&endpoint, "team-a", "team-a-secret", code);
    team("sns.create_topic(Name='team-a-events'); sqs.create_queue(QueueName='team-a-inbox')")
        .expect("its own topic and queue");
    let denied = team("sns.create_topic(Name='payroll')").expect_err("another topic");
    assert!(denied.contains("AuthorizationError"), "{denied}");
    let denied = team(
        "sns.subscribe(TopicArn='arn:aws:sns:us-east-1:000000000000:team-a-events', Protocol='sqs', Endpoint='arn:aws:sqs:us-east-1:000000000000:payroll')",
    )
    .expect_err("another queue");
    assert!(denied.contains("AuthorizationError"), "{denied}");
    let listed = team("print([t['TopicArn'] for t in sns.list_topics()['Topics']])").expect("list");
    assert!(listed.contains("team-a-events"), "{listed}");
    assert!(!listed.contains("example-orders"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_of_a_cluster_serves_sns() {
    let dir = test_dir("sns-cluster").expect("dir");
    let cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let endpoint = cluster.node(follower).url();
    run_example("sns", "fanout", &endpoint, None);
    run_example("sns", "errors", &endpoint, None);
}
