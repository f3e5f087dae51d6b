//! `sluice-bench`: throughput and latency of Sluice beside the physical limit of this
//! machine (`--system disk`), measured in the same run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;
use sluice_client::Client;
use sluice_e2e::bench::{
    FANOUT_TABLE_HEADER, FanoutDelivery, FanoutResult, RunConfig, RunResult, System, TABLE_HEADER,
    Target, Workload, fanout_table_row, run_bare_push, run_disk, run_fanout, run_idle, run_sluice,
    table_row,
};
use sluice_e2e::{Broker, BrokerOptions, Cluster};

// The client shares the machine with the server: keep its allocation cost low too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug, Clone)]
#[command(name = "sluice-bench", about)]
struct Args {
    /// What to measure; repeat to measure several in one run (e.g. `--system disk
    /// --system sluice`), each later one reported as a ratio to the first.
    #[arg(long, value_enum, default_values_t = [System::Sluice])]
    system: Vec<System>,
    /// Replicas of the system under test.
    #[arg(long, default_value_t = 1)]
    replicas: u32,
    #[arg(long, value_enum, default_value_t = Workload::Send)]
    workload: Workload,
    /// Bytes per message.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Messages per request.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Requests in flight at once; repeat to measure each system at several (the other
    /// workloads take the first).
    #[arg(long, default_values_t = [16])]
    concurrency: Vec<usize>,
    /// Also write SVG charts of the runs into this directory: throughput against
    /// concurrency, and latency percentiles at the middle concurrency.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Seconds each system runs.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Messages per second to offer (all workers together); unlimited if absent.
    #[arg(long)]
    rate: Option<u64>,
    /// A running Sluice broker to measure instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Where the started broker and the disk system write (default: a temporary
    /// directory, on the same disk as the system's temporary files).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run the whole comparison with the peers (send and cycle at 100 B, 1 KiB and 16
    /// KiB, fan-out, one node and three, three replicas against concurrency) and write
    /// it into this Markdown file between its markers, with the charts in `docs/bench/`
    /// beside it. Takes about 45 minutes at the default duration; other options but
    /// `--duration` and `--dir` are ignored.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print one JSON object per run after the table.
    #[arg(long)]
    json: bool,
    /// Queues the `idle` workload creates.
    #[arg(long, default_value_t = 10_000)]
    queues: usize,
    /// Data groups of a three-replica cluster (0: the metadata group holds the queues).
    #[arg(long, default_value_t = sluice_e2e::CLUSTER_DATA_GROUPS)]
    data_groups: u32,
    /// Leader kills of the `failover` workload.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// HTTP subscriptions of the `fanout` workload.
    #[arg(long, default_value_t = 10)]
    subscriptions: usize,
    /// How `fanout` subscribers get their messages: Sluice's HTTP push, or every
    /// system's subscribers reading their copy in batches (`pull`).
    #[arg(long, value_enum, default_value_t = FanoutDelivery::Push)]
    deliver: FanoutDelivery,
    /// Deliveries in flight per subscription (`fanout` by push).
    #[arg(long, default_value_t = sluice_client::limits::MAX_IN_FLIGHT_DEFAULT)]
    max_in_flight: u32,
    /// Partitions of the `fanout` workload's topic (spread over the data groups).
    #[arg(long, default_value_t = 1)]
    partitions: u32,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.replicas != 1 && args.replicas != 3 {
        bail!("--replicas must be 1 or 3");
    }
    if args.batch == 0 || args.batch > 256 || args.concurrency.contains(&0) || args.size == 0 {
        bail!("--batch must be 1 to 256, --concurrency and --size at least 1");
    }
    let scratch = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::Builder::new()
                .prefix("sluice-bench-")
                .tempdir_in(dir)?
        }
        None => tempfile::Builder::new().prefix("sluice-bench-").tempdir()?,
    };
    if let Some(path) = &args.report {
        return report(&args, path, scratch.path()).await;
    }
    if args.workload == Workload::Idle {
        return idle(&args, scratch.path()).await;
    }
    if args.workload == Workload::Failover {
        return failover(&args, scratch.path()).await;
    }
    if args.workload == Workload::Fanout {
        fanout(&args, scratch.path()).await?;
        return Ok(());
    }
    let mut all: Vec<RunResult> = Vec::new();
    for &concurrency in &args.concurrency {
        // Each level starts its systems afresh, in directories of their own.
        let dir = scratch.path().join(format!("concurrency-{concurrency}"));
        std::fs::create_dir_all(&dir)?;
        all.extend(compare(&args, concurrency, &dir).await?);
    }
    if let Some(dir) = &args.plot {
        write_plots(&args, &all, dir)?;
    }
    Ok(())
}

impl Args {
    fn first_concurrency(&self) -> usize {
        self.concurrency.first().copied().unwrap_or(16)
    }
}

/// Every system at one concurrency, each in turn; their table, ratios to the first, and
/// the results.
async fn compare(
    args: &Args,
    concurrency: usize,
    scratch: &std::path::Path,
) -> Result<Vec<RunResult>> {
    let mut results: Vec<RunResult> = Vec::new();
    for system in &args.system {
        let config = RunConfig {
            system: *system,
            replicas: args.replicas,
            workload: args.workload,
            size: args.size,
            batch: args.batch,
            concurrency,
            duration: Duration::from_secs(args.duration),
            rate: args.rate,
            progress: !args.json,
        };
        eprintln!(
            "measuring {system:?} ({:?}) for {}s ...",
            args.workload, args.duration
        );
        let result = match system {
            System::Disk => run_disk(&config, scratch).await?,
            System::Nats => sluice_e2e::peers::run_nats(&config, scratch).await?,
            System::Rabbitmq => sluice_e2e::peers::run_rabbitmq(&config, scratch).await?,
            System::Sluice => match &args.url {
                Some(url) => run_sluice(&config, Target::Node(&Client::new(url)?), &[]).await?,
                None if args.replicas == 1 => {
                    let broker = Broker::start(BrokerOptions::single(scratch)?).await?;
                    let pids: Vec<u32> = broker.pid().into_iter().collect();
                    let r = run_sluice(&config, Target::Node(&broker.client), &pids).await;
                    drop(broker);
                    r?
                }
                None => {
                    let cluster = Cluster::start_grouped(scratch, 3, args.data_groups, &[]).await?;
                    let pids: Vec<u32> = cluster.nodes.iter().filter_map(Broker::pid).collect();
                    let r = run_sluice(&config, Target::Cluster(&cluster), &pids).await;
                    drop(cluster);
                    r?
                }
            },
        };
        results.push(result);
    }
    println!("{TABLE_HEADER}");
    for r in &results {
        println!("{}", table_row(r));
    }
    if let Some(base) = results.first()
        && results.len() > 1
    {
        for r in &results[1..] {
            println!(
                "{:?}/{:?}: throughput {:.2}, p99 {:.2}",
                r.system,
                base.system,
                r.msgs_per_sec / base.msgs_per_sec,
                r.p99_ms / base.p99_ms
            );
        }
    }
    if args.json {
        for r in &results {
            println!("{}", serde_json::to_string(r)?);
        }
    }
    Ok(results)
}

/// The charts of a comparison: msg/s against concurrency per system, and the latency
/// percentiles of each system at the middle concurrency.
fn write_plots(args: &Args, results: &[RunResult], dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    use sluice_e2e::plot::{Chart, Series};
    std::fs::create_dir_all(dir)?;
    let what = format!(
        "{}, {} B, {} replica{}",
        format!("{:?}", args.workload).to_lowercase(),
        args.size,
        args.replicas,
        if args.replicas == 1 { "" } else { "s" }
    );
    let stem = format!("{:?}-{}-r{}", args.workload, args.size, args.replicas).to_lowercase();
    let systems = || args.system.iter().filter(|s| **s != System::Disk);
    // Concurrency levels are spread evenly along the x axis, by their order.
    let levels: Vec<usize> = args.concurrency.clone();
    let throughput = Chart {
        title: &format!("Throughput ({what})"),
        x_label: "requests in flight",
        y_label: "msg/s",
        x_ticks: levels
            .iter()
            .enumerate()
            .map(|(i, c)| (i as f64, c.to_string()))
            .collect(),
        log_y: false,
        series: systems()
            .map(|system| Series {
                name: format!("{system:?}"),
                points: levels
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        results
                            .iter()
                            .find(|r| r.system == *system && r.concurrency == *c)
                            .map(|r| (i as f64, r.msgs_per_sec))
                    })
                    .collect(),
            })
            .collect(),
    };
    let middle = levels[levels.len() / 2];
    let latency = Chart {
        title: &format!("Latency of a request, {middle} in flight ({what})"),
        x_label: "percentile",
        y_label: "ms (log scale)",
        x_ticks: ["p50", "p99", "p99.9"]
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64, p.to_string()))
            .collect(),
        log_y: true,
        series: systems()
            .filter_map(|system| {
                let r = results
                    .iter()
                    .find(|r| r.system == *system && r.concurrency == middle)?;
                Some(Series {
                    name: format!("{system:?}"),
                    points: vec![(0.0, r.p50_ms), (1.0, r.p99_ms), (2.0, r.p999_ms)],
                })
            })
            .collect(),
    };
    let mut written = Vec::new();
    for (name, chart) in [("throughput", throughput), ("latency", latency)] {
        let path = dir.join(format!("{name}-{stem}.svg"));
        std::fs::write(&path, chart.svg())?;
        eprintln!("wrote {}", path.display());
        written.push(path);
    }
    Ok(written)
}

/// `--report`: every comparison with the peers, written into `path` between its
/// markers; the charts go to `docs/bench/` beside it.
async fn report(args: &Args, path: &std::path::Path, scratch: &std::path::Path) -> Result<()> {
    use sluice_e2e::report::{Report, splice};
    const SIZES: [usize; 3] = [100, 1024, 16384];
    const CONCURRENCY: usize = 32;
    const SWEEP: [usize; 3] = [8, 32, 64];
    const FANOUT_PACED_RATE: u64 = 1_000;
    let document_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let charts_dir = document_dir.join("docs").join("bench");
    let every = vec![System::Disk, System::Sluice, System::Nats, System::Rabbitmq];
    let brokers = vec![System::Sluice, System::Nats, System::Rabbitmq];
    let mut report = Report {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        machine: machine(),
        duration_secs: args.duration,
        ..Default::default()
    };
    let setting = |system: &[System], replicas, workload, size, concurrency: &[usize]| Args {
        system: system.to_vec(),
        replicas,
        workload,
        size,
        concurrency: concurrency.to_vec(),
        batch: 32,
        rate: None,
        url: None,
        plot: None,
        report: None,
        deliver: FanoutDelivery::Pull,
        subscriptions: 10,
        ..args.clone()
    };
    for replicas in [1, 3] {
        for workload in [Workload::Send, Workload::Cycle] {
            for size in SIZES {
                let dir = scratch.join(format!("r{replicas}-{workload:?}-{size}"));
                std::fs::create_dir_all(&dir)?;
                let a = setting(&every, replicas, workload, size, &[CONCURRENCY]);
                report.runs.extend(compare(&a, CONCURRENCY, &dir).await?);
            }
        }
        // At every size as fast as the publishers go (throughput), then at 1 KiB paced
        // at a rate every system keeps up with (latency).
        let fanouts = SIZES
            .iter()
            .map(|size| (*size, None))
            .chain([(1024, Some(FANOUT_PACED_RATE))]);
        for (size, rate) in fanouts {
            let a = Args {
                rate,
                ..setting(&brokers, replicas, Workload::Fanout, size, &[CONCURRENCY])
            };
            let dir = scratch.join(format!("r{replicas}-fanout-{size}-{}", rate.unwrap_or(0)));
            std::fs::create_dir_all(&dir)?;
            report.fanouts.extend(fanout(&a, &dir).await?);
        }
    }
    for workload in [Workload::Send, Workload::Cycle] {
        let a = setting(&brokers, 3, workload, 1024, &SWEEP);
        let mut runs = Vec::new();
        for concurrency in SWEEP {
            let dir = scratch.join(format!("sweep-{workload:?}-{concurrency}"));
            std::fs::create_dir_all(&dir)?;
            runs.extend(compare(&a, concurrency, &dir).await?);
        }
        for chart in write_plots(&a, &runs, &charts_dir)? {
            let relative = chart.strip_prefix(document_dir).unwrap_or(&chart);
            report.charts.push(relative.display().to_string());
        }
        report.sweeps.extend(runs);
    }
    let document = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, splice(&document, &report.markdown()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The CPU model and how many cores this machine has, from `/proc/cpuinfo`.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "an unknown CPU".into());
    let cores = info.lines().filter(|l| l.starts_with("processor")).count();
    format!("{cores} cores of {model}")
}

/// The `idle` workload: what many queues cost when nothing happens.
async fn idle(args: &Args, dir: &std::path::Path) -> Result<()> {
    let config = RunConfig {
        system: System::Sluice,
        replicas: args.replicas,
        workload: Workload::Idle,
        size: args.size,
        batch: args.batch,
        concurrency: args.first_concurrency(),
        duration: Duration::from_secs(args.duration),
        rate: None,
        progress: false,
    };
    eprintln!(
        "creating {} queues on {} node(s), then idling {}s ...",
        args.queues, args.replicas, args.duration
    );
    let result = if args.replicas == 1 {
        let broker = Broker::start(BrokerOptions::single(dir)?).await?;
        let pids: Vec<u32> = broker.pid().into_iter().collect();
        run_idle(&config, &broker.client, &pids, args.queues).await?
    } else {
        let cluster = Cluster::start_grouped(dir, 3, args.data_groups, &[]).await?;
        let leader = cluster.leader(Duration::from_secs(30)).await?;
        let pids: Vec<u32> = cluster.nodes.iter().filter_map(Broker::pid).collect();
        run_idle(&config, &cluster.client(leader), &pids, args.queues).await?
    };
    println!(
        "| replicas | queues | created in s | idle server cores (all nodes) | RSS per node MiB |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {:.3} | {} |",
        result.replicas,
        result.queues,
        result.create_seconds,
        result.idle_server_cores,
        result
            .server_rss_mib
            .iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

/// The `fanout` workload for every system listed (the disk's limit for the same
/// publishes first when `--system disk` is among them), each later system's figures
/// as ratios to Sluice's.
async fn fanout(args: &Args, dir: &std::path::Path) -> Result<Vec<FanoutResult>> {
    let config = |system| RunConfig {
        system,
        replicas: args.replicas,
        workload: Workload::Fanout,
        size: args.size,
        batch: args.batch,
        concurrency: args.first_concurrency(),
        duration: Duration::from_secs(args.duration),
        rate: args.rate,
        progress: !args.json,
    };
    let mut disk = None;
    let mut bare = None;
    let mut results = Vec::new();
    for system in &args.system {
        eprintln!(
            "measuring {system:?} (fanout to {} subscriptions, {} replicas) for {}s ...",
            args.subscriptions, args.replicas, args.duration
        );
        let run_dir = dir.join(format!("fanout-{system:?}").to_lowercase());
        std::fs::create_dir_all(&run_dir)?;
        match system {
            System::Disk => disk = Some(run_disk(&config(System::Disk), &run_dir).await?),
            System::Nats => results.push(
                sluice_e2e::peers::run_nats_fanout(&config(*system), &run_dir, args.subscriptions)
                    .await?,
            ),
            System::Rabbitmq => results.push(
                sluice_e2e::peers::run_rabbitmq_fanout(
                    &config(*system),
                    &run_dir,
                    args.subscriptions,
                )
                .await?,
            ),
            System::Sluice => {
                if args.deliver == FanoutDelivery::Push {
                    let posts_in_flight = args.subscriptions * args.max_in_flight.max(1) as usize;
                    eprintln!(
                        "measuring bare HTTP pushes ({posts_in_flight} in flight) for {}s ...",
                        args.duration
                    );
                    bare = Some(
                        run_bare_push(
                            posts_in_flight,
                            args.size,
                            Duration::from_secs(args.duration),
                        )
                        .await?,
                    );
                }
                let run = async |target: Target<'_>, pids: Vec<u32>| {
                    run_fanout(
                        &config(System::Sluice),
                        target,
                        &pids,
                        args.deliver,
                        args.subscriptions,
                        args.max_in_flight,
                        args.partitions,
                    )
                    .await
                };
                let result = if args.replicas == 1 {
                    let broker = Broker::start(BrokerOptions::single(&run_dir)?).await?;
                    let pids: Vec<u32> = broker.pid().into_iter().collect();
                    run(Target::Node(&broker.client), pids).await?
                } else {
                    let cluster =
                        Cluster::start_grouped(&run_dir, 3, args.data_groups, &[]).await?;
                    let pids: Vec<u32> = cluster.nodes.iter().filter_map(Broker::pid).collect();
                    run(Target::Cluster(&cluster), pids).await?
                };
                results.push(result);
            }
        }
    }
    println!("{FANOUT_TABLE_HEADER}");
    for r in &results {
        println!("{}", fanout_table_row(r));
    }
    if let Some(sluice) = results.iter().find(|r| r.system == System::Sluice) {
        for r in results.iter().filter(|r| r.system != System::Sluice) {
            println!(
                "Sluice/{:?}: published {:.2}, deliveries {:.2}, delivery p99 {:.2}",
                r.system,
                sluice.published_per_sec / r.published_per_sec,
                sluice.deliveries_per_sec / r.deliveries_per_sec,
                sluice.delivery_p99_ms / r.delivery_p99_ms
            );
        }
        if let Some((bare_per_sec, bare_cores)) = bare {
            println!(
                "bare HTTP pushes: {bare_per_sec:.0}/s using {bare_cores:.2} cores; Sluice deliveries/bare: {:.2}",
                sluice.deliveries_per_sec / bare_per_sec
            );
        }
        if let Some(disk) = &disk {
            println!("{TABLE_HEADER}");
            println!("{}", table_row(disk));
            println!(
                "Sluice published/disk: {:.2}; deliveries/disk: {:.2}",
                sluice.published_per_sec / disk.msgs_per_sec,
                sluice.deliveries_per_sec / disk.msgs_per_sec
            );
        }
    }
    if args.json {
        for r in &results {
            println!("{}", serde_json::to_string(r)?);
        }
    }
    Ok(results)
}

/// The `failover` workload: while a sender keeps sending, the leader of a three-node
/// cluster is SIGKILLed; the time until the next send succeeds through another node is
/// the failover time. The killed node is restarted before the next round.
async fn failover(args: &Args, dir: &std::path::Path) -> Result<()> {
    let mut cluster = Cluster::start_grouped(dir, 3, args.data_groups, &[]).await?;
    let client = cluster.client(1);
    client
        .put_queue("failover", &sluice_client::QueueAttributesUpdate::default())
        .await?;
    let mut times = Vec::new();
    for round in 1..=args.kills {
        // Some load, so the leader is busy when it dies.
        for _ in 0..20 {
            cluster
                .client(1)
                .send("failover", &sluice_client::SendMessage::text("before"))
                .await?;
        }
        let leader = cluster
            .leader_of_queue("failover", Duration::from_secs(30))
            .await?;
        let survivor = (1..=3).find(|id| *id != leader).unwrap_or(1);
        let probe = cluster.client(survivor).retry_for(Duration::ZERO);
        let killed = std::time::Instant::now();
        cluster.node_mut(leader).kill9()?;
        loop {
            let sent = probe
                .send("failover", &sluice_client::SendMessage::text("probe"))
                .await;
            if sent.is_ok() {
                break;
            }
            if killed.elapsed() > Duration::from_secs(60) {
                bail!("no send succeeded within 60 s of the leader's death");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = killed.elapsed();
        eprintln!(
            "round {round}: leader node {leader} killed, a send succeeded after {} ms",
            took.as_millis()
        );
        times.push(took);
        cluster.node_mut(leader).relaunch()?;
        cluster.wait_all_ready(Duration::from_secs(60)).await?;
    }
    times.sort();
    let ms = |d: &Duration| d.as_millis();
    println!("| kills | min ms | median ms | max ms |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} |",
        times.len(),
        ms(&times[0]),
        ms(&times[times.len() / 2]),
        ms(&times[times.len() - 1])
    );
    Ok(())
}
