//! `sluice-bench`: throughput and latency of Sluice beside the physical limit of this
//! machine (`--system disk`), measured in the same run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;
use sluice_client::Client;
use sluice_e2e::bench::{
    RunConfig, RunResult, System, TABLE_HEADER, Workload, run_disk, run_sluice, table_row,
};
use sluice_e2e::{Broker, BrokerOptions};

// The client shares the machine with the server: keep its allocation cost low too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
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
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
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
    /// Print one JSON object per run after the table.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.replicas != 1 {
        bail!(
            "--replicas {}: only single-node runs are measured so far",
            args.replicas
        );
    }
    if args.batch == 0 || args.batch > 256 || args.concurrency == 0 || args.size == 0 {
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
    let mut results: Vec<RunResult> = Vec::new();
    for system in &args.system {
        let config = RunConfig {
            system: *system,
            replicas: args.replicas,
            workload: args.workload,
            size: args.size,
            batch: args.batch,
            concurrency: args.concurrency,
            duration: Duration::from_secs(args.duration),
            rate: args.rate,
            progress: !args.json,
        };
        eprintln!(
            "measuring {system:?} ({:?}) for {}s ...",
            args.workload, args.duration
        );
        let result = match system {
            System::Disk => run_disk(&config, scratch.path()).await?,
            System::Sluice => match &args.url {
                Some(url) => run_sluice(&config, &Client::new(url)?, None).await?,
                None => {
                    let broker = Broker::start(BrokerOptions::single(scratch.path())?).await?;
                    let r = run_sluice(&config, &broker.client, broker.pid()).await;
                    drop(broker);
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
    Ok(())
}
