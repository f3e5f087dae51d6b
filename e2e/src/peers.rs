//! The peers Sluice is measured against, started by the bench on loopback and driven
//! with the same workloads: NATS JetStream (Debian's `nats-server`, file storage, via
//! async-nats) and RabbitMQ quorum queues (Debian's `rabbitmq-server`, via lapin); one
//! node each, or three clustered on loopback with the stream or queue replicated to all
//! three (acknowledged = stored on a quorum).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, consumer::PullConsumer, stream::StorageType};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::bench::{
    FANOUT_READ_MAX, FanoutDelivery, FanoutMeter, FanoutResult, FanoutShape, FanoutSubscribers,
    Pacer, RunConfig, RunResult, Tally, Workload, body, finish, measure, measure_fanout,
};

/// `nats-server`s with JetStream (one, or three routed into a cluster), killed when
/// dropped.
pub struct NatsServers {
    children: Vec<Child>,
    /// The first server's client URL.
    pub url: String,
}

/// Waits until something listens on `port` of loopback.
async fn listening(port: u16, what: &str, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("{what} did not listen on port {port} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

impl NatsServers {
    /// Starts `count` servers (1 or 3) with JetStream storing under `dir`; three form
    /// a cluster through routes on loopback.
    pub async fn start(dir: &Path, count: u32) -> Result<Self> {
        let ports = (0..count)
            .map(|_| Ok((crate::free_port()?, crate::free_port()?)))
            .collect::<Result<Vec<(u16, u16)>>>()?;
        let routes = ports
            .iter()
            .map(|(_, route)| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut children = Vec::new();
        for (i, (port, route)) in ports.iter().enumerate() {
            // A directory of its own per run: JetStream's state names its cluster's peers.
            let store = dir.join(format!("nats-{}-{i}", ports[0].0));
            std::fs::create_dir_all(&store)?;
            let mut cmd = Command::new("nats-server");
            cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(&store)
                .args(["-n", &format!("n{i}")]);
            if count > 1 {
                cmd.args([
                    "--cluster_name",
                    "bench",
                    "--cluster",
                    &format!("nats://127.0.0.1:{route}"),
                    "--routes",
                    &routes,
                ]);
            }
            children.push(
                cmd.stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting nats-server (apt-get install nats-server)")?,
            );
        }
        let servers = Self {
            children,
            url: format!("nats://127.0.0.1:{}", ports[0].0),
        };
        for (port, _) in &ports {
            listening(*port, "nats-server", Duration::from_secs(20)).await?;
        }
        Ok(servers)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for NatsServers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const STREAM: &str = "BENCH";
const SUBJECT: &str = "bench";

/// Creates the benchmark stream, file-backed, replicated to `replicas` servers; a new
/// cluster takes a moment to elect its JetStream meta leader.
async fn bench_stream(js: &jetstream::Context, replicas: u32) -> Result<jetstream::stream::Stream> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let created = js
            .create_stream(jetstream::stream::Config {
                name: STREAM.to_string(),
                subjects: vec![SUBJECT.to_string()],
                storage: StorageType::File,
                num_replicas: replicas as usize,
                ..Default::default()
            })
            .await;
        match created {
            Ok(stream) => return Ok(stream),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(anyhow::anyhow!(e).context("creating the benchmark stream")),
        }
    }
}

/// Publishes a batch to JetStream and waits for every publish acknowledgement; how many
/// were stored (the others count as errors).
async fn nats_publish(js: &jetstream::Context, bodies: Vec<bytes::Bytes>, tally: &Tally) -> u64 {
    let mut pending = Vec::with_capacity(bodies.len());
    for b in bodies {
        match js.publish(SUBJECT, b).await {
            Ok(ack) => pending.push(ack),
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut sent = 0u64;
    for ack in pending {
        match ack.await {
            Ok(_) => sent += 1,
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    sent
}

/// The `send` and `cycle` workloads against JetStream: a worker publishes a batch and
/// waits for every publish acknowledgement (the stream has stored each message); in
/// `cycle` it then fetches as many from a shared durable pull consumer and acknowledges
/// each, waiting for the server to confirm the ack (`double_ack`).
pub async fn run_nats(config: &RunConfig, dir: &Path) -> Result<RunResult> {
    let server = NatsServers::start(dir, config.replicas).await?;
    let client = async_nats::connect(&server.url)
        .await
        .context("connecting to nats-server")?;
    let js = jetstream::new(client);
    let stream = bench_stream(&js, config.replicas).await?;
    let consumer: PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("bench".to_string()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 1 << 20,
            ..Default::default()
        })
        .await
        .context("creating the benchmark consumer")?;
    let tally = Arc::new(Tally::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..config.concurrency {
        let (js, consumer, tally, stop, config) = (
            js.clone(),
            consumer.clone(),
            tally.clone(),
            stop.clone(),
            config.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut pacer = Pacer::new(config.rate, worker, config.concurrency, config.batch);
            let bodies: Vec<bytes::Bytes> = (0..config.batch as u64)
                .map(|n| bytes::Bytes::from(body(config.size, worker, n)))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                pacer.wait().await;
                let started = Instant::now();
                let sent = nats_publish(&js, bodies.clone(), &tally).await;
                if config.workload != Workload::Cycle {
                    tally.record(started, sent).await;
                    continue;
                }
                let mut acked = 0u64;
                let mut want = sent;
                while want > 0 {
                    let batch = consumer
                        .fetch()
                        .max_messages(want.min(32) as usize)
                        .expires(Duration::from_millis(500))
                        .messages()
                        .await;
                    let Ok(mut batch) = batch else {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    };
                    let mut got = 0u64;
                    while let Some(message) = batch.next().await {
                        let Ok(message) = message else {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        got += 1;
                        match message.double_ack().await {
                            Ok(()) => acked += 1,
                            Err(_) => {
                                tally.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if got == 0 {
                        break;
                    }
                    want = want.saturating_sub(got);
                }
                tally.record(started, acked).await;
            }
        }));
    }
    let pids = server.pids();
    let (elapsed, server_cpu, client_cpu) = measure(config, &tally, &stop, &pids, workers).await?;
    finish(config, &tally, elapsed, server_cpu, client_cpu, &pids).await
}

/// A `rabbitmq-server` node of its own (name, ports and data under the bench's
/// directory), killed with its process group when dropped.
pub struct RabbitServer {
    child: Child,
    node_name: String,
    pub url: String,
}

impl RabbitServer {
    /// Starts a node with its data in `dir/name`; Debian's wrapper runs it as the
    /// `rabbitmq` user (with that user's home, so every node shares one Erlang cookie),
    /// so its directories are handed to that user.
    pub async fn start(dir: &Path, name: &str) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let port = crate::free_port()?;
        let dist_port = crate::free_port()?;
        let base = dir.join(format!("{name}-{port}"));
        let node_name = format!("bench{port}@localhost");
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(base.join(sub))?;
        }
        std::fs::write(base.join("enabled_plugins"), "[].\n")?;
        let owned = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&base)
            .status()
            .context("chown for rabbitmq")?;
        if !owned.success() {
            bail!("cannot hand {} to the rabbitmq user", base.display());
        }
        let child = Command::new("rabbitmq-server")
            .process_group(0)
            .env("HOME", &base)
            .env("RABBITMQ_NODENAME", &node_name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", base.join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                base.join("enabled_plugins"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting rabbitmq-server (apt-get install rabbitmq-server)")?;
        let server = Self {
            child,
            node_name,
            url: format!("amqp://127.0.0.1:{port}/%2f"),
        };
        listening(port, "rabbitmq-server", Duration::from_secs(60)).await?;
        Ok(server)
    }

    /// Makes this node a member of `first`'s cluster (`rabbitmqctl join_cluster`).
    fn join(&self, first: &RabbitServer) -> Result<()> {
        for args in [
            vec!["stop_app"],
            vec!["join_cluster", first.node_name.as_str()],
            vec!["start_app"],
        ] {
            let out = Command::new("rabbitmqctl")
                .args(["-n", &self.node_name])
                .args(&args)
                .output()
                .context("running rabbitmqctl")?;
            if !out.status.success() {
                bail!(
                    "rabbitmqctl {} on {}: {}",
                    args.join(" "),
                    self.node_name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(())
    }

    /// The node's Erlang VM, for CPU and memory. The wrapper starts it in a session of
    /// its own as another user, so it is found by the node name in its environment.
    pub fn pids(&self) -> Vec<u32> {
        let wanted = format!("RABBITMQ_NODENAME={}", self.node_name);
        let Ok(out) = Command::new("pgrep").arg("beam.smp").output() else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == wanted.as_bytes()))
            })
            .collect()
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Starts `replicas` RabbitMQ nodes clustered (the first alone, since it makes the
/// shared Erlang cookie, then the others joined to it) and connects to the first.
async fn rabbit_cluster(dir: &Path, replicas: u32) -> Result<(Vec<RabbitServer>, Connection)> {
    let mut servers = vec![RabbitServer::start(dir, "rabbitmq-0").await?];
    for i in 1..replicas {
        let node = RabbitServer::start(dir, &format!("rabbitmq-{i}")).await?;
        node.join(&servers[0])?;
        servers.push(node);
    }
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    let connection = Connection::connect(&servers[0].url, properties)
        .await
        .context("connecting to rabbitmq-server")?;
    Ok((servers, connection))
}

/// Declares a durable quorum queue replicated to `replicas` nodes.
async fn declare_quorum_queue(channel: &Channel, name: &str, replicas: u32) -> Result<()> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments.insert(
        "x-quorum-initial-group-size".into(),
        AMQPValue::LongInt(replicas as i32),
    );
    channel
        .queue_declare(
            name,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .context("declaring the quorum queue")?;
    Ok(())
}

/// Publishes a batch of persistent messages on a channel in confirm mode and waits for
/// every confirm; how many were confirmed (the others count as errors).
async fn rabbit_publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    bodies: &[Vec<u8>],
    tally: &Tally,
) -> u64 {
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let mut pending = Vec::with_capacity(bodies.len());
    for b in bodies {
        match channel
            .basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions::default(),
                b,
                persistent.clone(),
            )
            .await
        {
            Ok(confirm) => pending.push(confirm),
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut sent = 0u64;
    for confirm in pending {
        match confirm.await {
            Ok(c) if c.is_ack() => sent += 1,
            _ => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    sent
}

/// The `send` and `cycle` workloads against a RabbitMQ quorum queue: each worker has a
/// channel in confirm mode, publishes a batch of persistent messages and waits for every
/// confirm (the quorum has stored it); in `cycle` it then takes as many deliveries from
/// its own consumer and acknowledges them with one `multiple` ack.
pub async fn run_rabbitmq(config: &RunConfig, dir: &Path) -> Result<RunResult> {
    let (servers, connection) = rabbit_cluster(dir, config.replicas).await?;
    let setup = connection.create_channel().await?;
    declare_quorum_queue(&setup, "bench", config.replicas).await?;
    let tally = Arc::new(Tally::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..config.concurrency {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consumer = if config.workload == Workload::Cycle {
            channel
                .basic_qos(config.batch.max(1) as u16 * 2, BasicQosOptions::default())
                .await?;
            Some(
                channel
                    .basic_consume(
                        "bench",
                        format!("w{worker}").as_str(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?,
            )
        } else {
            None
        };
        let (tally, stop, config) = (tally.clone(), stop.clone(), config.clone());
        workers.push(tokio::spawn(async move {
            let mut pacer = Pacer::new(config.rate, worker, config.concurrency, config.batch);
            let bodies: Vec<Vec<u8>> = (0..config.batch as u64)
                .map(|n| body(config.size, worker, n).into_bytes())
                .collect();
            while !stop.load(Ordering::Relaxed) {
                pacer.wait().await;
                let started = Instant::now();
                let sent = rabbit_publish(&channel, "", "bench", &bodies, &tally).await;
                let Some(consumer) = consumer.as_mut() else {
                    tally.record(started, sent).await;
                    continue;
                };
                let mut last = None;
                let mut got = 0u64;
                while got < sent {
                    let next =
                        tokio::time::timeout(Duration::from_millis(500), consumer.next()).await;
                    match next {
                        Ok(Some(Ok(delivery))) => {
                            got += 1;
                            last = Some(delivery);
                        }
                        _ => break,
                    }
                }
                let mut acked = 0u64;
                if let Some(delivery) = last {
                    match delivery.ack(BasicAckOptions { multiple: true }).await {
                        Ok(_) => acked = got,
                        Err(_) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                tally.record(started, acked).await;
            }
        }));
    }
    let pids: Vec<u32> = servers.iter().flat_map(RabbitServer::pids).collect();
    let (elapsed, server_cpu, client_cpu) = measure(config, &tally, &stop, &pids, workers).await?;
    finish(config, &tally, elapsed, server_cpu, client_cpu, &pids).await
}

/// A NATS or RabbitMQ subscriber acknowledges everything up to its latest delivery once
/// half a read's worth has arrived, or when nothing more came for this long.
const ACK_WHEN_IDLE: Duration = Duration::from_millis(20);

/// A NATS or RabbitMQ subscriber: observes each delivery and acknowledges everything up
/// to the latest (`ack`) once half a read's worth has arrived or nothing more came for
/// [`ACK_WHEN_IDLE`], until `done`.
async fn read_and_ack<M, S, A, Fut>(
    deliveries: S,
    meter: &FanoutMeter,
    done: &AtomicBool,
    payload: impl Fn(&M) -> &[u8],
    ack: A,
) -> Result<()>
where
    S: futures::Stream<Item = Result<M>>,
    A: Fn(M) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut deliveries = std::pin::pin!(deliveries);
    let mut unacked = None;
    let mut count = 0;
    while !done.load(Ordering::Relaxed) {
        if let Ok(next) = tokio::time::timeout(ACK_WHEN_IDLE, deliveries.next()).await {
            let Some(delivery) = next else { break };
            let delivery = delivery?;
            meter.observe(payload(&delivery));
            unacked = Some(delivery);
            count += 1;
            if count < FANOUT_READ_MAX / 2 {
                continue;
            }
        }
        if let Some(delivery) = unacked.take() {
            ack(delivery).await?;
            count = 0;
        }
    }
    Ok(())
}

/// The `fanout` workload against JetStream: one file-backed stream (replicated like the
/// other workloads), `subscriptions` durable pull consumers, each reading every message
/// in batches and acknowledging with `AckPolicy::All`.
pub async fn run_nats_fanout(
    config: &RunConfig,
    dir: &Path,
    subscriptions: usize,
) -> Result<FanoutResult> {
    let server = NatsServers::start(dir, config.replicas).await?;
    let client = async_nats::connect(&server.url)
        .await
        .context("connecting to nats-server")?;
    let js = jetstream::new(client);
    let stream = bench_stream(&js, config.replicas).await?;
    let mut subscribers = FanoutSubscribers::new()?;
    for i in 0..subscriptions {
        let consumer: PullConsumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some(format!("s{i}")),
                ack_policy: jetstream::consumer::AckPolicy::All,
                max_ack_pending: FANOUT_READ_MAX as i64 * 4,
                ..Default::default()
            })
            .await
            .context("creating a consumer")?;
        let (meter, done) = (subscribers.meter.clone(), subscribers.done.clone());
        subscribers.spawn(async move {
            let messages = consumer
                .stream()
                .max_messages_per_batch(FANOUT_READ_MAX as usize)
                .messages()
                .await
                .context("consuming")?;
            // A missed heartbeat is reported and the stream goes on.
            let messages = messages.filter_map(|m| std::future::ready(m.ok().map(Ok)));
            read_and_ack(
                messages,
                &meter,
                &done,
                |m: &jetstream::Message| &m.payload[..],
                |m: jetstream::Message| async move { m.ack().await.map_err(|e| anyhow::anyhow!(e)) },
            )
            .await
        });
    }
    js.publish(SUBJECT, "warm-up".into())
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let shape = FanoutShape {
        delivery: FanoutDelivery::Pull,
        subscriptions,
        per_subscription: FANOUT_READ_MAX,
    };
    measure_fanout(
        config,
        subscribers,
        shape,
        &server.pids(),
        move |_, batch, tally| {
            let js = js.clone();
            async move {
                let bodies = batch.into_iter().map(bytes::Bytes::from).collect();
                Some(nats_publish(&js, bodies, &tally).await)
            }
        },
    )
    .await
}

/// The `fanout` workload against RabbitMQ: a durable fanout exchange bound to
/// `subscriptions` quorum queues (replicated like the other workloads), each with its
/// own consumer (prefetch of a read) acknowledging with `multiple` acks. Publishers
/// publish persistent messages to the exchange and wait for the confirms (every bound
/// queue has stored the message).
pub async fn run_rabbitmq_fanout(
    config: &RunConfig,
    dir: &Path,
    subscriptions: usize,
) -> Result<FanoutResult> {
    const EXCHANGE: &str = "fanout";
    let (servers, connection) = rabbit_cluster(dir, config.replicas).await?;
    let setup = connection.create_channel().await?;
    setup
        .exchange_declare(
            EXCHANGE,
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .context("declaring the fanout exchange")?;
    let mut subscribers = FanoutSubscribers::new()?;
    for i in 0..subscriptions {
        let queue = format!("fanout-{i}");
        declare_quorum_queue(&setup, &queue, config.replicas).await?;
        setup
            .queue_bind(
                &queue,
                EXCHANGE,
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("binding a queue to the exchange")?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(FANOUT_READ_MAX as u16, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                &queue,
                &format!("s{i}"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (meter, done) = (subscribers.meter.clone(), subscribers.done.clone());
        subscribers.spawn(async move {
            read_and_ack(
                consumer.map(|d| d.context("consuming")),
                &meter,
                &done,
                |d: &lapin::message::Delivery| &d.data[..],
                |d: lapin::message::Delivery| async move {
                    d.ack(BasicAckOptions { multiple: true })
                        .await
                        .map(drop)
                        .context("acknowledging")
                },
            )
            .await
        });
    }
    let mut channels = Vec::new();
    for _ in 0..config.concurrency.max(1) {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channels.push(channel);
    }
    let warm = Tally::new();
    if rabbit_publish(&channels[0], EXCHANGE, "", &[b"warm-up".to_vec()], &warm).await != 1 {
        bail!("the warm-up message was not confirmed");
    }
    let shape = FanoutShape {
        delivery: FanoutDelivery::Pull,
        subscriptions,
        per_subscription: FANOUT_READ_MAX,
    };
    let pids: Vec<u32> = servers.iter().flat_map(RabbitServer::pids).collect();
    let channels = Arc::new(channels);
    measure_fanout(
        config,
        subscribers,
        shape,
        &pids,
        move |worker, batch, tally| {
            let channels = channels.clone();
            async move {
                let bodies: Vec<Vec<u8>> = batch.into_iter().map(String::into_bytes).collect();
                Some(rabbit_publish(&channels[worker], EXCHANGE, "", &bodies, &tally).await)
            }
        },
    )
    .await
}
