//! The workloads of `sluice-bench` and what they measure: throughput, latency
//! percentiles, and the CPU of the server and of the client itself (they share the
//! machine, so both count).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use sluice_client::{
    Client, Endpoint, PublishMessage, QueueAttributesUpdate, ReceiveRequest, SendMessage,
    SubscriptionSpec, TopicAttributesUpdate,
};
use tokio::sync::{Mutex, oneshot};

/// What runs the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// A Sluice broker.
    Sluice,
    /// The physical limit: the same batches appended to a file, one fdatasync per group
    /// of concurrent writes; no HTTP, no Raft.
    Disk,
    /// NATS JetStream (Debian's `nats-server`), a file-backed stream, via async-nats.
    Nats,
    /// RabbitMQ (Debian's `rabbitmq-server`), a quorum queue with publisher confirms,
    /// via lapin.
    Rabbitmq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Send batches.
    Send,
    /// Send a batch, receive it, acknowledge it.
    Cycle,
    /// Create `--queues` queues, then measure what the brokers cost doing nothing.
    Idle,
    /// Three nodes: SIGKILL the leader `--kills` times and time until a send succeeds.
    Failover,
    /// Publish batches to a topic with `--subscriptions` HTTP subscriptions, delivered
    /// to an endpoint in this process: publish throughput and publish-to-delivery
    /// latency.
    Fanout,
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub system: System,
    pub replicas: u32,
    pub workload: Workload,
    pub size: usize,
    pub batch: usize,
    pub concurrency: usize,
    pub duration: Duration,
    /// Messages per second to offer, across all workers; unlimited when `None`.
    pub rate: Option<u64>,
    pub progress: bool,
}

/// One run's figures; the JSON form is the contract's last line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub system: System,
    pub replicas: u32,
    pub workload: Workload,
    pub size: usize,
    pub batch: usize,
    pub concurrency: usize,
    pub msgs_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Busy time of the server process over the run, in cores (1.0 = one core).
    pub server_cores: Option<f64>,
    /// Busy time of this benchmark process over the run, in cores.
    pub client_cores: f64,
    /// The server's peak resident memory, MiB.
    pub server_peak_rss_mib: Option<f64>,
    pub offered_rate: Option<u64>,
    pub messages: u64,
    pub seconds: f64,
}

/// CPU time (user + system) of a process so far, from `/proc`.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports in clock ticks of 1/100 s on every platform we run on.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Peak resident memory of a process, MiB, from `/proc/<pid>/status`.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Current resident memory of a process, MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Latencies (µs) and message counts shared by the workers of a run.
pub(crate) struct Tally {
    latency: Mutex<Histogram<u64>>,
    pub(crate) messages: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            ),
            messages: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub(crate) async fn record(&self, started: Instant, messages: u64) {
        let micros = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
        self.latency.lock().await.saturating_record(micros);
        self.messages.fetch_add(messages, Ordering::Relaxed);
    }
}

/// Paces one worker to its share of the offered rate.
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next: tokio::time::Instant,
}

impl Pacer {
    /// Worker `worker` of `workers` starts its schedule a fraction of an interval in, so
    /// the workers' requests interleave instead of arriving in bursts.
    pub(crate) fn new(rate: Option<u64>, worker: usize, workers: usize, batch: usize) -> Self {
        let interval = rate.filter(|r| *r > 0).map(|r| {
            let batches_per_sec = r as f64 / (workers * batch) as f64;
            Duration::from_secs_f64(1.0 / batches_per_sec)
        });
        let offset = interval
            .map(|i| i.mul_f64(worker as f64 / workers as f64))
            .unwrap_or_default();
        Self {
            interval,
            next: tokio::time::Instant::now() + offset,
        }
    }

    pub(crate) async fn wait(&mut self) {
        if let Some(interval) = self.interval {
            tokio::time::sleep_until(self.next).await;
            self.next += interval;
        }
    }
}

/// A message body of `size` bytes that names its worker and number.
pub(crate) fn body(size: usize, worker: usize, n: u64) -> String {
    let mut s = format!("w{worker}-{n}-");
    s.truncate(size);
    s.push_str(&"x".repeat(size - s.len()));
    s
}

/// Where a run sends its requests: one broker, or a cluster, where they go to the node
/// leading the group of the queue or topic under test, as a client of that node would
/// (with no forwarding hop).
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Node(&'a Client),
    Cluster(&'a crate::cluster::Cluster),
}

impl Target<'_> {
    /// A client of some node, for creating things.
    pub fn any(&self) -> Client {
        match self {
            Target::Node(client) => (*client).clone(),
            Target::Cluster(cluster) => cluster.client(1),
        }
    }

    /// A client of the node that leads the group holding queue (or, with `topic`,
    /// topic) `name`, which exists.
    pub async fn leading(&self, name: &str, topic: bool) -> Result<Client> {
        let cluster = match self {
            Target::Node(client) => return Ok((*client).clone()),
            Target::Cluster(cluster) => cluster,
        };
        let any = cluster.client(1);
        let group = if topic {
            any.get_topic(name).await?.group
        } else {
            any.get_queue(name).await?.group
        };
        let leader = cluster
            .leader_of_group(group, Duration::from_secs(30))
            .await?;
        Ok(cluster.client(leader))
    }
}

/// Runs a workload against Sluice at `target`; `server_pids`, the broker processes, for
/// CPU (summed) and peak RSS (the largest).
pub async fn run_sluice(
    config: &RunConfig,
    target: Target<'_>,
    server_pids: &[u32],
) -> Result<RunResult> {
    let client = &target.any();
    let queue = format!(
        "bench-{:?}-{}",
        config.workload,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    )
    .to_lowercase();
    // A cluster just started may still be settling its leadership: retry while it says
    // so, as a client of it would.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = client
            .put_queue(
                &queue,
                &QueueAttributesUpdate {
                    max_message_bytes: Some(1 << 20),
                    ..Default::default()
                },
            )
            .await;
        match created {
            Ok(_) => break,
            Err(e)
                if e.code() == Some(sluice_client::ErrorCode::Unavailable)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e).context("creating the benchmark queue"),
        }
    }
    let client = &target.leading(&queue, false).await?;
    let tally = Arc::new(Tally::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..config.concurrency {
        let client = client.clone();
        let queue = queue.clone();
        let tally = tally.clone();
        let stop = stop.clone();
        let config = config.clone();
        workers.push(tokio::spawn(async move {
            let mut pacer = Pacer::new(config.rate, worker, config.concurrency, config.batch);
            // One batch per worker, sent again and again: building bodies is not what
            // is measured.
            let batch: Vec<SendMessage> = (0..config.batch as u64)
                .map(|n| SendMessage::text(body(config.size, worker, n)))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                pacer.wait().await;
                let started = Instant::now();
                let sent = match client.send_batch(&queue, &batch).await {
                    Ok(results) => results.iter().filter(|r| r.is_ok()).count() as u64,
                    Err(_) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                match config.workload {
                    Workload::Send | Workload::Idle | Workload::Failover | Workload::Fanout => {
                        tally.record(started, sent).await
                    }
                    Workload::Cycle => {
                        let mut acked = 0u64;
                        let mut want = sent;
                        while want > 0 {
                            let request = ReceiveRequest {
                                max: Some(want.min(32) as u32),
                                wait_seconds: Some(0),
                                visibility_seconds: Some(60),
                            };
                            let Ok(got) = client.receive(&queue, &request).await else {
                                tally.errors.fetch_add(1, Ordering::Relaxed);
                                break;
                            };
                            if got.is_empty() {
                                break;
                            }
                            want = want.saturating_sub(got.len() as u64);
                            let receipts: Vec<String> =
                                got.into_iter().filter_map(|m| m.receipt).collect();
                            match client.ack(&queue, &receipts).await {
                                Ok(r) => acked += r.iter().filter(|r| r.is_ok()).count() as u64,
                                Err(_) => {
                                    tally.errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        tally.record(started, acked).await;
                    }
                }
            }
        }));
    }
    let (elapsed, server_cpu, client_cpu) =
        measure(config, &tally, &stop, server_pids, workers).await?;
    finish(config, &tally, elapsed, server_cpu, client_cpu, server_pids).await
}

/// Lets the workers run for the configured time, with a progress bar; returns the run's
/// wall time and the CPU each side used.
pub(crate) async fn measure(
    config: &RunConfig,
    tally: &Tally,
    stop: &AtomicBool,
    server_pids: &[u32],
    workers: Vec<tokio::task::JoinHandle<()>>,
) -> Result<(Duration, Option<Duration>, Duration)> {
    let servers_cpu = || -> Option<Duration> {
        if server_pids.is_empty() {
            return None;
        }
        server_pids.iter().map(|p| cpu_time(Some(*p))).sum()
    };
    let server_before = servers_cpu();
    let client_before = cpu_time(None).unwrap_or_default();
    let started = Instant::now();
    let bar = if config.progress {
        let bar = indicatif::ProgressBar::new(config.duration.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    while started.elapsed() < config.duration {
        tokio::time::sleep(Duration::from_millis(250).min(config.duration)).await;
        if let Some(bar) = &bar {
            let rate =
                tally.messages.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(format!("{rate:.0} msg/s"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let server_after = servers_cpu();
    let client_after = cpu_time(None).unwrap_or_default();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for w in workers {
        w.await.context("worker panicked")?;
    }
    let server_cpu = server_before
        .zip(server_after)
        .map(|(b, a)| a.saturating_sub(b));
    Ok((
        elapsed,
        server_cpu,
        client_after.saturating_sub(client_before),
    ))
}

pub(crate) async fn finish(
    config: &RunConfig,
    tally: &Tally,
    elapsed: Duration,
    server_cpu: Option<Duration>,
    client_cpu: Duration,
    server_pids: &[u32],
) -> Result<RunResult> {
    let messages = tally.messages.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    if messages == 0 {
        bail!("no message got through ({errors} errors)");
    }
    let h = tally.latency.lock().await;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let secs = elapsed.as_secs_f64();
    Ok(RunResult {
        system: config.system,
        replicas: config.replicas,
        workload: config.workload,
        size: config.size,
        batch: config.batch,
        concurrency: config.concurrency,
        msgs_per_sec: messages as f64 / secs,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        server_cores: server_cpu.map(|c| c.as_secs_f64() / secs),
        client_cores: client_cpu.as_secs_f64() / secs,
        server_peak_rss_mib: server_pids
            .iter()
            .filter_map(|p| peak_rss_mib(*p))
            .reduce(f64::max),
        offered_rate: config.rate,
        messages,
        seconds: secs,
    })
}

/// How the subscribers of the `fanout` workload get their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FanoutDelivery {
    /// Sluice pushes every message to each subscription's HTTP endpoint (served by the
    /// bench), one POST per message; 2xx is the acknowledgement.
    Push,
    /// Each subscriber reads its own copy of the stream in batches and acknowledges its
    /// position once per batch: Sluice pull subscriptions (timeline reads and a
    /// committed cursor), NATS durable pull consumers (`AckPolicy::All`), RabbitMQ
    /// consumers of their own quorum queue bound to a fanout exchange (`multiple` acks).
    Pull,
}

/// What a subscriber takes per read in the `pull` fan-out (and RabbitMQ's prefetch).
pub(crate) const FANOUT_READ_MAX: u32 = sluice_client::limits::PULL_MAX;

/// What the `fanout` workload measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutResult {
    pub system: System,
    pub workload: Workload,
    pub delivery: FanoutDelivery,
    pub replicas: u32,
    pub subscriptions: usize,
    /// Deliveries in flight per subscription (push), or messages per read (pull).
    pub max_in_flight: u32,
    pub size: usize,
    pub batch: usize,
    pub concurrency: usize,
    /// Messages per second offered by the publishers; as fast as they go when `None`.
    pub offered_rate: Option<u64>,
    /// Published messages per second (the contract's `msgsPerSec`).
    #[serde(rename = "msgsPerSec")]
    pub published_per_sec: f64,
    pub publish_p99_ms: f64,
    /// Deliveries per second, from the first publish until the last delivery.
    pub deliveries_per_sec: f64,
    /// Publish (request start) to delivery (endpoint reached): the contract's `p50Ms`,
    /// `p99Ms` and `p999Ms` for this workload.
    #[serde(rename = "p50Ms")]
    pub delivery_p50_ms: f64,
    #[serde(rename = "p99Ms")]
    pub delivery_p99_ms: f64,
    #[serde(rename = "p999Ms")]
    pub delivery_p999_ms: f64,
    pub delivered: u64,
    pub expected: u64,
    /// Server and client (publishers and subscribers) CPU over the publishing time.
    pub server_cores: Option<f64>,
    pub client_cores: f64,
    pub seconds: f64,
}

/// Marks where a fan-out body says when it was published (µs since the run began).
const PUBLISHED_MARK: &[u8] = b"@t=";

/// When a fan-out delivery's message was published, read from its body (in any format).
fn published_at(body: &[u8]) -> Option<u64> {
    let at = body
        .windows(PUBLISHED_MARK.len())
        .position(|w| w == PUBLISHED_MARK)?
        + PUBLISHED_MARK.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// What the subscribers of a fan-out run see, the same for every system: each published
/// body starts with the time it was published (`@t=µs;`), so a delivery's latency is
/// read from the body itself.
pub(crate) struct FanoutMeter {
    began: Instant,
    latency: std::sync::Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    /// µs since `began` of the latest delivery.
    last_delivery: AtomicU64,
    /// µs since `began` when the measured publishing started.
    publishing_from: AtomicU64,
}

impl FanoutMeter {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            began: Instant::now(),
            latency: std::sync::Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram")?,
            ),
            delivered: AtomicU64::new(0),
            last_delivery: AtomicU64::new(0),
            publishing_from: AtomicU64::new(0),
        }))
    }

    fn now_micros(&self) -> u64 {
        self.began.elapsed().as_micros() as u64
    }

    /// The bodies of one published batch, stamped with now.
    pub(crate) fn stamped_batch(
        &self,
        config: &RunConfig,
        worker: usize,
        n: &mut u64,
    ) -> Vec<String> {
        let stamp = format!("@t={};", self.now_micros());
        (0..config.batch)
            .map(|_| {
                *n += 1;
                let mut text = stamp.clone();
                text.push_str(&body(
                    config.size.saturating_sub(stamp.len()).max(1),
                    worker,
                    *n,
                ));
                text
            })
            .collect()
    }

    /// One delivery reached a subscriber.
    pub(crate) fn observe(&self, body: &[u8]) {
        let now = self.now_micros();
        if let Some(published) = published_at(body) {
            let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
            h.saturating_record(now.saturating_sub(published).max(1));
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.last_delivery.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Waits (at most `within`) until `count` deliveries have arrived; false if they did
    /// not.
    pub(crate) async fn wait_for(&self, count: u64, within: Duration) -> bool {
        let until = Instant::now() + within;
        while self.delivered() < count {
            if Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Forgets the warm-up: what follows is measured.
    pub(crate) fn start_publishing(&self) {
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        h.reset();
        self.delivered.store(0, Ordering::Relaxed);
        self.publishing_from
            .store(self.now_micros(), Ordering::Relaxed);
    }

    /// After publishing stopped: waits (up to a minute) for the deliveries still under
    /// way, then puts the figures together.
    pub(crate) async fn finish(
        &self,
        config: &RunConfig,
        shape: &FanoutShape,
        tally: &Tally,
        (elapsed, server_cpu, client_cpu): (Duration, Option<Duration>, Duration),
    ) -> Result<FanoutResult> {
        let published = tally.messages.load(Ordering::Relaxed);
        if published == 0 {
            bail!(
                "nothing was published ({} errors)",
                tally.errors.load(Ordering::Relaxed)
            );
        }
        let expected = published * shape.subscriptions as u64;
        self.wait_for(expected, Duration::from_secs(60)).await;
        let publish = tally.latency.lock().await;
        let h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let delivering_secs =
            self.last_delivery
                .load(Ordering::Relaxed)
                .saturating_sub(self.publishing_from.load(Ordering::Relaxed)) as f64
                / 1e6;
        let secs = elapsed.as_secs_f64();
        Ok(FanoutResult {
            system: config.system,
            workload: config.workload,
            delivery: shape.delivery,
            replicas: config.replicas,
            subscriptions: shape.subscriptions,
            max_in_flight: shape.per_subscription,
            size: config.size,
            batch: config.batch,
            concurrency: config.concurrency,
            offered_rate: config.rate,
            published_per_sec: published as f64 / secs,
            publish_p99_ms: ms(&publish, 0.99),
            deliveries_per_sec: self.delivered() as f64 / delivering_secs.max(1e-3),
            delivery_p50_ms: ms(&h, 0.5),
            delivery_p99_ms: ms(&h, 0.99),
            delivery_p999_ms: ms(&h, 0.999),
            delivered: self.delivered(),
            expected,
            server_cores: server_cpu.map(|c| c.as_secs_f64() / secs),
            client_cores: client_cpu.as_secs_f64() / secs,
            seconds: secs,
        })
    }
}

/// A fan-out run's subscribers as a system starts them: they feed the meter and stop
/// once `done` is set.
pub(crate) struct FanoutSubscribers {
    pub(crate) meter: Arc<FanoutMeter>,
    pub(crate) done: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
}

impl FanoutSubscribers {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            meter: FanoutMeter::new()?,
            done: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
        })
    }

    pub(crate) fn spawn(
        &mut self,
        subscriber: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) {
        self.tasks.push(tokio::spawn(subscriber));
    }
}

/// What a fan-out run's subscriptions are, for its figures.
pub(crate) struct FanoutShape {
    pub(crate) delivery: FanoutDelivery,
    pub(crate) subscriptions: usize,
    /// Deliveries in flight per subscription (push), or messages per read (pull).
    pub(crate) per_subscription: u32,
}

/// What every system's fan-out run shares once its subscribers run and a warm-up
/// message is on its way to each: waits for the warm-up, publishes stamped batches from
/// `config.concurrency` workers with `publish` (how many were stored; `None` when the
/// request failed) for the configured time, waits for the deliveries, stops the
/// subscribers and puts the figures together.
pub(crate) async fn measure_fanout<P, Fut>(
    config: &RunConfig,
    subscribers: FanoutSubscribers,
    shape: FanoutShape,
    server_pids: &[u32],
    publish: P,
) -> Result<FanoutResult>
where
    P: Fn(usize, Vec<String>, Arc<Tally>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<u64>> + Send,
{
    let FanoutSubscribers { meter, done, tasks } = subscribers;
    if !meter
        .wait_for(shape.subscriptions as u64, Duration::from_secs(10))
        .await
    {
        bail!("the warm-up message did not reach every subscriber within 10s");
    }
    meter.start_publishing();
    let tally = Arc::new(Tally::new());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = (0..config.concurrency)
        .map(|worker| {
            let (meter, tally, stop, config, publish) = (
                meter.clone(),
                tally.clone(),
                stop.clone(),
                config.clone(),
                publish.clone(),
            );
            tokio::spawn(async move {
                let mut pacer = Pacer::new(config.rate, worker, config.concurrency, config.batch);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    pacer.wait().await;
                    let started = Instant::now();
                    let batch = meter.stamped_batch(&config, worker, &mut n);
                    if let Some(stored) = publish(worker, batch, tally.clone()).await {
                        tally.record(started, stored).await;
                    }
                }
            })
        })
        .collect();
    let measured = measure(config, &tally, &stop, server_pids, workers).await?;
    let result = meter.finish(config, &shape, &tally, measured).await;
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.context("subscriber panicked")??;
    }
    result
}

/// The `fanout` workload against Sluice: publishers at the configured concurrency and
/// rate to a topic with `subscriptions` subscriptions, delivered as `delivery` says
/// (push: to an endpoint served by this process; pull: read by a subscriber task per
/// subscription). The topic has `partitions` partitions. After the publishing time, waits
/// (up to a minute) for the deliveries still under way.
#[allow(clippy::too_many_arguments)]
pub async fn run_fanout(
    config: &RunConfig,
    target: Target<'_>,
    server_pids: &[u32],
    delivery: FanoutDelivery,
    subscriptions: usize,
    max_in_flight: u32,
    partitions: u32,
) -> Result<FanoutResult> {
    let mut subscribers = FanoutSubscribers::new()?;
    let observer: crate::sink::Observer = {
        let meter = subscribers.meter.clone();
        Arc::new(move |_endpoint: &str, body: &[u8]| meter.observe(body))
    };
    let (_sink, base) = crate::sink::Sink::start_observed(observer).await?;
    let topic = "fanout-bench";
    let client = &target.any();
    client
        .put_topic(
            topic,
            &TopicAttributesUpdate {
                max_message_bytes: Some(1 << 20),
                retention_seconds: Some(600),
                partitions: Some(partitions),
            },
        )
        .await
        .context("creating the benchmark topic")?;
    let client = &target.leading(topic, true).await?;
    for i in 0..subscriptions {
        let name = format!("s{i}");
        let spec = match delivery {
            FanoutDelivery::Push => {
                let mut spec = SubscriptionSpec::new(Endpoint::Http {
                    url: format!("{base}/{name}"),
                });
                spec.max_in_flight = Some(max_in_flight);
                spec
            }
            FanoutDelivery::Pull => SubscriptionSpec::new(Endpoint::Pull {}),
        };
        client
            .put_subscription(topic, &name, &spec)
            .await
            .context("creating a subscription")?;
        if delivery == FanoutDelivery::Pull {
            let (client, meter, done) = (
                client.clone(),
                subscribers.meter.clone(),
                subscribers.done.clone(),
            );
            subscribers
                .spawn(async move { pull_subscriber(&client, topic, &name, &meter, &done).await });
        }
    }
    // One message through every subscription first: the leader starts a subscription's
    // worker within a supervision period, which is not what this measures.
    client
        .publish(topic, &PublishMessage::text("warm-up"))
        .await
        .context("publishing the warm-up message")?;
    let shape = FanoutShape {
        delivery,
        subscriptions,
        per_subscription: match delivery {
            FanoutDelivery::Push => max_in_flight,
            FanoutDelivery::Pull => FANOUT_READ_MAX,
        },
    };
    let client = client.clone();
    measure_fanout(
        config,
        subscribers,
        shape,
        server_pids,
        move |_, batch, tally| {
            let client = client.clone();
            async move {
                let batch: Vec<PublishMessage> =
                    batch.into_iter().map(PublishMessage::text).collect();
                match client.publish_batch(topic, &batch).await {
                    Ok(results) => Some(results.iter().filter(|r| r.is_ok()).count() as u64),
                    Err(_) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            }
        },
    )
    .await
}

/// One pull subscriber: reads the subscription's timeline in batches, as far as it is
/// published, and commits its cursor after each batch, until `done`.
async fn pull_subscriber(
    client: &Client,
    topic: &str,
    subscription: &str,
    meter: &FanoutMeter,
    done: &AtomicBool,
) -> Result<()> {
    let device = "bench";
    let mut after: Option<String> = None;
    while !done.load(Ordering::Relaxed) {
        let read = client
            .pull(
                topic,
                subscription,
                &sluice_client::PullQuery {
                    after: after.clone(),
                    device: Some(device.to_string()),
                    max: Some(FANOUT_READ_MAX),
                    wait_seconds: Some(1),
                },
            )
            .await
            .context("pulling")?;
        if read.messages.is_empty() {
            continue;
        }
        for m in &read.messages {
            meter.observe(m.body.as_deref().unwrap_or_default().as_bytes());
        }
        client
            .commit_cursor(topic, subscription, device, &read.cursor)
            .await
            .context("committing the cursor")?;
        after = Some(read.cursor);
    }
    Ok(())
}

/// The physical limit of push delivery on this machine: `posts_in_flight` loops POSTing
/// `size`-byte bodies straight to the same kind of endpoint, with the HTTP client the
/// broker pushes with; no broker, no log, no Raft. Deliveries per second and the cores of
/// this process (both ends).
pub async fn run_bare_push(
    posts_in_flight: usize,
    size: usize,
    duration: Duration,
) -> Result<(f64, f64)> {
    let delivered = Arc::new(AtomicU64::new(0));
    let observer: crate::sink::Observer = {
        let delivered = delivered.clone();
        Arc::new(move |_endpoint: &str, _body: &[u8]| {
            delivered.fetch_add(1, Ordering::Relaxed);
        })
    };
    let (_sink, base) = crate::sink::Sink::start_observed(observer).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let body = bytes::Bytes::from(body(size, 0, 0));
    let cpu_before = cpu_time(None).unwrap_or_default();
    let started = Instant::now();
    let loops: Vec<_> = (0..posts_in_flight.max(1))
        .map(|i| {
            let (http, stop, body) = (http.clone(), stop.clone(), body.clone());
            let url = format!("{base}/bare{i}");
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = http.post(&url).body(body.clone()).send().await;
                }
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let count = delivered.load(Ordering::Relaxed);
    let cores = (cpu_time(None).unwrap_or_default() - cpu_before).as_secs_f64() / secs;
    for l in loops {
        let _ = l.await;
    }
    Ok((count as f64 / secs, cores))
}

/// A group-commit writer: appends what concurrent writers hand it, one fdatasync per
/// group, then answers them all.
fn disk_writer(
    path: &Path,
    rx: std::sync::mpsc::Receiver<(Vec<u8>, oneshot::Sender<()>)>,
) -> Result<()> {
    let mut file = File::create(path)?;
    let mut written = 0u64;
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while let Ok(next) = rx.try_recv() {
            group.push(next);
        }
        for (buf, _) in &group {
            file.write_all(buf)?;
            written += buf.len() as u64;
        }
        file.sync_data()?;
        for (_, done) in group {
            let _ = done.send(());
        }
        // Keep the file from growing without bound on long runs.
        if written > 1 << 30 {
            file = File::create(path)?;
            written = 0;
        }
    }
    Ok(())
}

/// Runs the `disk` system: the physical limit of the same batches.
pub async fn run_disk(config: &RunConfig, dir: &Path) -> Result<RunResult> {
    let path: PathBuf = dir.join("disk-bench.dat");
    let (tx, rx) = std::sync::mpsc::channel::<(Vec<u8>, oneshot::Sender<()>)>();
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || disk_writer(&writer_path, rx));
    let tally = Arc::new(Tally::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..config.concurrency {
        let tx = tx.clone();
        let tally = tally.clone();
        let stop = stop.clone();
        let config = config.clone();
        workers.push(tokio::spawn(async move {
            let mut pacer = Pacer::new(config.rate, worker, config.concurrency, config.batch);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pacer.wait().await;
                let mut buf = Vec::with_capacity(config.size * config.batch);
                for _ in 0..config.batch {
                    n += 1;
                    buf.extend_from_slice(body(config.size, worker, n).as_bytes());
                }
                let started = Instant::now();
                let (done_tx, done_rx) = oneshot::channel();
                if tx.send((buf, done_tx)).is_err() || done_rx.await.is_err() {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                tally.record(started, config.batch as u64).await;
            }
        }));
    }
    drop(tx);
    let (elapsed, _, client_cpu) = measure(config, &tally, &stop, &[], workers).await?;
    let result = finish(config, &tally, elapsed, None, client_cpu, &[]).await;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("disk writer panicked"))??;
    let _ = fs::remove_file(&path);
    result
}

/// A row of the results table.
pub fn table_row(r: &RunResult) -> String {
    format!(
        "| {:?} | {} | {:?} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {} |",
        r.system,
        r.replicas,
        r.workload,
        r.size,
        r.batch,
        r.concurrency,
        r.msgs_per_sec,
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
        r.server_cores
            .map(|c| format!("{c:.2}"))
            .unwrap_or_else(|| "-".into()),
        r.client_cores,
        r.server_peak_rss_mib
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "-".into()),
    )
}

pub const TABLE_HEADER: &str = "| system | replicas | workload | size | batch | concurrency | msg/s | p50 ms | p99 ms | p999 ms | server cores | client cores | server peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// A fan-out run as a Markdown table row, under [`FANOUT_TABLE_HEADER`].
pub fn fanout_table_row(r: &FanoutResult) -> String {
    let cores = |c: Option<f64>| c.map(|c| format!("{c:.2}")).unwrap_or_else(|| "-".into());
    format!(
        "| {:?} | {} | {:?} | {} | {} | {} | {:.0} | {:.2} | {:.0} | {}/{} | {:.2} | {:.2} | {:.2} | {} | {:.2} |",
        r.system,
        r.replicas,
        r.delivery,
        r.subscriptions,
        r.size,
        r.concurrency,
        r.published_per_sec,
        r.publish_p99_ms,
        r.deliveries_per_sec,
        r.delivered,
        r.expected,
        r.delivery_p50_ms,
        r.delivery_p99_ms,
        r.delivery_p999_ms,
        cores(r.server_cores),
        r.client_cores,
    )
}

pub const FANOUT_TABLE_HEADER: &str = "| system | replicas | delivery | subs | size | publishers | published msg/s | publish p99 ms | deliveries/s | delivered/expected | delivery p50 ms | p99 ms | p99.9 ms | server cores | client cores |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// What idle queues cost.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleResult {
    pub replicas: u32,
    pub queues: usize,
    /// Seconds to create them all.
    pub create_seconds: f64,
    /// CPU of all broker processes together while idle, in cores.
    pub idle_server_cores: f64,
    pub idle_seconds: f64,
    /// Resident memory of each broker after the idle period, MiB.
    pub server_rss_mib: Vec<f64>,
}

/// Creates `queues` queues (concurrently), then measures the brokers while nothing
/// happens.
pub async fn run_idle(
    config: &RunConfig,
    client: &Client,
    server_pids: &[u32],
    queues: usize,
) -> Result<IdleResult> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..config.concurrency {
        let client = client.clone();
        let next = next.clone();
        creators.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= queues {
                    return Ok::<_, anyhow::Error>(());
                }
                client
                    .put_queue(&format!("idle-{n:06}"), &QueueAttributesUpdate::default())
                    .await
                    .with_context(|| format!("creating queue {n}"))?;
            }
        }));
    }
    for c in creators {
        c.await.context("creator panicked")??;
    }
    let create_seconds = started.elapsed().as_secs_f64();
    // Let snapshots and compaction after the burst of creations finish first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = || -> Duration { server_pids.iter().filter_map(|p| cpu_time(Some(*p))).sum() };
    let before = cpu();
    let idle_started = Instant::now();
    tokio::time::sleep(config.duration).await;
    let idle = idle_started.elapsed();
    let used = cpu().saturating_sub(before);
    Ok(IdleResult {
        replicas: config.replicas,
        queues,
        create_seconds,
        idle_server_cores: used.as_secs_f64() / idle.as_secs_f64(),
        idle_seconds: idle.as_secs_f64(),
        server_rss_mib: server_pids.iter().filter_map(|p| rss_mib(*p)).collect(),
    })
}
