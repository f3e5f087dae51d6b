//! The `sluice` command line against a real broker: each command, its JSON output parsed,
//! and the exit codes scripts rely on (0 done, 1 refused, 2 bad command line, 3 not
//! found, 4 unreachable, 5 some batch entries failed).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use sluice_e2e::{Broker, BrokerOptions, cli_binary, test_dir};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `sluice` against `url` with `args`, feeding `stdin`.
fn sluice(url: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(cli_binary().expect("the sluice binary builds"))
        .env("SLUICE_URL", url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice runs");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("sluice finishes");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn broker(name: &str) -> (tempfile::TempDir, Broker) {
    let dir = test_dir(name).expect("dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker");
    (dir, broker)
}

#[tokio::test]
async fn queue_commands_manage_queues() {
    let (_dir, broker) = broker("cli-queues").await;
    let url = broker.url();
    let q = sluice(
        &url,
        &[
            "queue",
            "create",
            "orders",
            "--visibility",
            "60",
            "-o",
            "json",
        ],
        None,
    )
    .json();
    assert_eq!(q["attributes"]["visibilitySeconds"], 60);
    sluice(&url, &["queue", "create", "orders-dlq"], None);
    let set = sluice(
        &url,
        &[
            "queue",
            "set",
            "orders",
            "--dead-letter",
            "orders-dlq",
            "--max-receives",
            "3",
            "-o",
            "json",
        ],
        None,
    )
    .json();
    assert_eq!(set["attributes"]["deadLetter"]["queue"], "orders-dlq");

    // A person's table names the queue; a script's JSON lists both with counts.
    let table = sluice(&url, &["queue", "list"], None);
    assert_eq!(table.code, 0);
    assert!(table.stdout.contains("orders-dlq"), "{}", table.stdout);
    let list = sluice(
        &url,
        &["queue", "list", "--prefix", "orders", "-o", "json"],
        None,
    )
    .json();
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|q| q["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["orders", "orders-dlq"]);

    // `set` never creates; a missing queue is exit code 3 with a hint.
    let missing = sluice(&url, &["queue", "set", "nope", "--visibility", "5"], None);
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("sluice queue list"),
        "{}",
        missing.stderr
    );
    assert!(
        broker.client.get_queue("nope").await.is_err(),
        "set created the queue"
    );
    // A value the broker refuses is exit code 1 with its reason.
    let refused = sluice(
        &url,
        &["queue", "set", "orders", "--visibility", "999999"],
        None,
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("visibility"), "{}", refused.stderr);

    sluice(&url, &["send", "orders", "x"], None);
    let purged = sluice(&url, &["queue", "purge", "orders", "-o", "json"], None).json();
    assert_eq!(purged["purged"], 1);
    assert_eq!(sluice(&url, &["queue", "delete", "orders"], None).code, 0);
    assert_eq!(sluice(&url, &["queue", "get", "orders"], None).code, 3);
}

#[tokio::test]
async fn messages_flow_through_send_receive_ack_peek_and_lookup() {
    let (dir, broker) = broker("cli-messages").await;
    let url = broker.url();
    sluice(&url, &["queue", "create", "jobs"], None);

    let by_arg = sluice(
        &url,
        &[
            "send",
            "jobs",
            "from an argument",
            "--key",
            "job-1",
            "--attr",
            "kind=build",
            "--priority",
            "1",
            "-o",
            "json",
        ],
        None,
    )
    .json();
    let id = by_arg["id"].as_str().expect("id").to_string();
    let file = dir.path().join("body.txt");
    std::fs::write(&file, "from a file").expect("write");
    sluice(
        &url,
        &["send", "jobs", "--file", file.to_str().expect("path")],
        None,
    );
    sluice(&url, &["send", "jobs"], Some("from stdin"));

    let peeked = sluice(&url, &["peek", "jobs", "-o", "json"], None).json();
    let mut bodies: Vec<&str> = peeked
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec!["from a file", "from an argument", "from stdin"]
    );
    let found = sluice(&url, &["message", "jobs", &id, "-o", "json"], None).json();
    assert_eq!(found["attributes"]["kind"], "build");
    let queried = sluice(
        &url,
        &["query", "jobs", "--key", "job-1", "-o", "json"],
        None,
    )
    .json();
    assert_eq!(queried[0]["id"], id.as_str());

    // Priority 1 comes first; a received message is acknowledged by its receipt.
    let got = sluice(&url, &["receive", "jobs", "--max", "1", "-o", "json"], None).json();
    assert_eq!(got[0]["body"], "from an argument");
    let receipt = got[0]["receipt"].as_str().expect("receipt");
    assert_eq!(sluice(&url, &["ack", "jobs", receipt], None).code, 0);
    // A receipt that is not one: the batch partly failed, exit code 5.
    let partial = sluice(&url, &["ack", "jobs", receipt, "garbage"], None);
    assert_eq!(partial.code, 5, "{}", partial.stderr);
    let acked = sluice(
        &url,
        &["receive", "jobs", "--max", "10", "--ack", "-o", "json"],
        None,
    );
    assert_eq!(acked.json().as_array().expect("array").len(), 2);
    let counts = broker.client.get_queue("jobs").await.expect("get").counts;
    assert_eq!((counts.visible, counts.in_flight), (0, 0));

    // Many messages: one per line, then drained.
    let lines: String = (0..600).map(|i| format!("line {i}\n")).collect();
    let sent = sluice(
        &url,
        &["send", "jobs", "--lines", "-o", "json"],
        Some(&lines),
    )
    .json();
    assert_eq!(sent["sent"], 600);
    assert_eq!(
        broker
            .client
            .get_queue("jobs")
            .await
            .expect("get")
            .counts
            .visible,
        600
    );
    let drained = sluice(&url, &["drain", "jobs"], None);
    assert_eq!(drained.code, 0, "{}", drained.stderr);
    let mut drained_lines: Vec<&str> = drained.stdout.lines().collect();
    drained_lines.sort();
    let mut expected: Vec<String> = (0..600).map(|i| format!("line {i}")).collect();
    expected.sort();
    assert_eq!(drained_lines, expected);
    assert!(drained.stderr.contains("drained 600"), "{}", drained.stderr);
}

#[tokio::test]
async fn topics_subscriptions_pull_redrive_and_cluster() {
    let (_dir, broker) = broker("cli-topics").await;
    let url = broker.url();
    sluice(&url, &["queue", "create", "paid"], None);
    sluice(
        &url,
        &["topic", "create", "orders", "--retention", "3600"],
        None,
    );
    let sub = sluice(
        &url,
        &[
            "sub", "create", "orders", "billing", "--queue", "paid", "--tag", "paid", "-o", "json",
        ],
        None,
    )
    .json();
    assert_eq!(sub["endpoint"]["queue"], "paid");
    sluice(&url, &["sub", "create", "orders", "phone", "--pull"], None);
    let two = sluice(
        &url,
        &[
            "sub", "create", "orders", "bad", "--pull", "--queue", "paid",
        ],
        None,
    );
    assert_eq!(
        two.code, 2,
        "two endpoints are a usage error: {}",
        two.stderr
    );

    sluice(
        &url,
        &["publish", "orders", "order 1", "--tag", "paid"],
        None,
    );
    sluice(
        &url,
        &["publish", "orders", "order 2", "--tag", "unpaid"],
        None,
    );
    let fanned = sluice(
        &url,
        &["receive", "paid", "--max", "10", "-o", "json"],
        None,
    )
    .json();
    assert_eq!(fanned.as_array().expect("array").len(), 1);
    assert_eq!(fanned[0]["body"], "order 1");

    let first = sluice(
        &url,
        &[
            "pull", "orders", "phone", "--device", "ipad", "--commit", "-o", "json",
        ],
        None,
    )
    .json();
    assert_eq!(first["messages"].as_array().expect("array").len(), 2);
    let again = sluice(
        &url,
        &["pull", "orders", "phone", "--device", "ipad", "-o", "json"],
        None,
    )
    .json();
    assert!(
        again["messages"].as_array().expect("array").is_empty(),
        "{again}"
    );
    let subs = sluice(&url, &["sub", "list", "orders", "-o", "json"], None).json();
    assert_eq!(subs.as_array().expect("array").len(), 2);

    let topics = sluice(&url, &["topic", "list", "-o", "json"], None).json();
    assert_eq!(topics[0]["name"], "orders");

    // A message dead-lettered after one receive goes back with a redrive.
    sluice(&url, &["queue", "create", "dlq"], None);
    sluice(
        &url,
        &[
            "queue",
            "create",
            "work",
            "--dead-letter",
            "dlq",
            "--max-receives",
            "1",
        ],
        None,
    );
    sluice(&url, &["send", "work", "poison"], None);
    sluice(&url, &["receive", "work", "--visibility", "0"], None);
    let moved = sluice(
        &url,
        &["receive", "work", "--wait", "1", "-o", "json"],
        None,
    )
    .json();
    assert!(moved.as_array().expect("array").is_empty(), "{moved}");
    assert_eq!(
        sluice(&url, &["queue", "get", "dlq", "-o", "json"], None).json()["counts"]["visible"],
        1
    );
    let started = sluice(&url, &["redrive", "start", "dlq", "-o", "json"], None).json();
    assert_eq!(started[0]["queue"], "dlq");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let tasks = sluice(&url, &["redrive", "list", "dlq", "-o", "json"], None).json();
        if tasks[0]["state"] == "completed" {
            assert_eq!(tasks[0]["moved"], 1, "{tasks}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{tasks}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let back = sluice(
        &url,
        &["receive", "work", "--wait", "2", "-o", "json"],
        None,
    )
    .json();
    assert_eq!(back[0]["body"], "poison");
    let tasks = sluice(&url, &["redrive", "list", "paid", "-o", "json"], None).json();
    assert!(tasks.as_array().expect("array").is_empty());
    let status = sluice(&url, &["cluster", "status", "-o", "json"], None).json();
    assert_eq!(status["members"][0]["role"], "voter");
    assert_eq!(sluice(&url, &["topic", "delete", "orders"], None).code, 0);
    assert_eq!(sluice(&url, &["topic", "get", "orders"], None).code, 3);
}

#[tokio::test]
async fn bad_command_lines_and_unreachable_brokers_have_their_exit_codes() {
    let usage = sluice("http://127.0.0.1:1", &["queue", "create"], None);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    let unreachable = sluice("http://127.0.0.1:1", &["queue", "list"], None);
    assert_eq!(unreachable.code, 4, "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("SLUICE_URL"),
        "{}",
        unreachable.stderr
    );
    let completions = sluice("http://127.0.0.1:1", &["completions", "bash"], None);
    assert_eq!(completions.code, 0);
    assert!(completions.stdout.contains("_sluice"));
}

#[tokio::test]
async fn check_sends_a_message_and_gets_it_back() {
    let (_dir, mut broker) = broker("cli-check").await;
    let url = broker.url();
    let first = sluice(&url, &["check", "-o", "json"], None).json();
    assert_eq!(first["ok"], true);
    assert_eq!(first["queue"], "sluice-check");
    // Again, on the queue the first check made; nothing of the check is left behind.
    let again = sluice(&url, &["check", "--queue", "sluice-check"], None);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.starts_with("ok: sluice-check"),
        "{}",
        again.stdout
    );
    let counts = sluice(&url, &["queue", "get", "sluice-check", "-o", "json"], None).json();
    assert_eq!(counts["counts"]["visible"], 0);
    assert_eq!(counts["counts"]["inFlight"], 0);
    // A broker that is down fails the check with the "unreachable" code.
    broker.kill9().expect("kill");
    let down = sluice(&url, &["check", "--timeout", "2"], None);
    assert_eq!(down.code, 4, "{}", down.stderr);
}

/// The commands the other tests leave out: cluster add, drain and remove on a real
/// cluster, `--url` instead of SLUICE_URL, sub get and delete, a delayed FIFO-less send,
/// and redrive cancel when nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_membership_and_the_remaining_commands() {
    let dir = test_dir("cli-cluster").expect("dir");
    let mut cluster = sluice_e2e::Cluster::start(dir.path(), 1)
        .await
        .expect("a one-node cluster");
    let joiner = cluster.launch_joiner(&[]).expect("node 2 starts");
    let first = cluster.node(1).url();
    let peer = cluster.peer_address(joiner);
    let added = sluice(
        &first,
        &["cluster", "add", &joiner.to_string(), &peer, "-o", "json"],
        None,
    )
    .json();
    let member = added["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["id"] == joiner)
        .cloned()
        .expect("node 2 listed");
    assert_eq!(member["role"], "voter", "{added}");

    // Node 1 hands its leadership to node 2, then leaves; node 2 goes on alone.
    let drained = sluice(&first, &["cluster", "drain", "1", "-o", "json"], None).json();
    let leader = drained["groups"][0]["leader"].clone();
    assert_eq!(leader, joiner, "{drained}");
    let second = cluster.node(joiner).url();
    let removed = Command::new(cli_binary().expect("the sluice binary builds"))
        .args(["--url", &second, "cluster", "remove", "1", "-o", "json"])
        .output()
        .expect("sluice runs");
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let status: Value = serde_json::from_slice(&removed.stdout).expect("json");
    let ids: Vec<&Value> = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, [&Value::from(joiner)], "{status}");
    let missing = sluice(&second, &["cluster", "remove", "9"], None);
    assert_eq!(missing.code, 3, "{}", missing.stderr);

    // Subscriptions by name, a delayed send, and redrive cancel with nothing running.
    sluice(&second, &["queue", "create", "later"], None);
    sluice(&second, &["topic", "create", "news"], None);
    sluice(&second, &["sub", "create", "news", "feed", "--pull"], None);
    let sub = sluice(&second, &["sub", "get", "news", "feed", "-o", "json"], None).json();
    assert_eq!(sub["name"], "feed");
    assert_eq!(
        sluice(&second, &["sub", "delete", "news", "feed"], None).code,
        0
    );
    assert_eq!(
        sluice(&second, &["sub", "get", "news", "feed"], None).code,
        3
    );
    let sent = sluice(
        &second,
        &["send", "later", "tomorrow", "--delay", "60"],
        None,
    );
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let queue = sluice(&second, &["queue", "get", "later", "-o", "json"], None).json();
    assert_eq!(queue["counts"]["delayed"], 1, "{queue}");
    let cancel = sluice(&second, &["redrive", "cancel", "later"], None);
    assert_eq!(cancel.code, 3, "{}", cancel.stderr);
}
