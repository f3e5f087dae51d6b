//! `sluice-cluster`: a local cluster on loopback for people to try: N brokers on
//! 127.0.0.1, client API on ports 8081.., peer traffic on 7071.., data under
//! `--data-dir`. Ctrl-C stops them all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use sluice_e2e::{Broker, BrokerOptions};

#[derive(Parser, Debug)]
#[command(name = "sluice-cluster", about)]
struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Client API port of node 1; node n listens on this + n - 1.
    #[arg(long, default_value_t = 8081)]
    api_port: u16,
    /// Peer port of node 1; node n listens on this + n - 1.
    #[arg(long, default_value_t = 7071)]
    peer_port: u16,
    /// Data groups (Raft groups holding queues and topics), led by different nodes.
    #[arg(long, default_value_t = sluice_e2e::CLUSTER_DATA_GROUPS)]
    data_groups: u32,
    /// Where the nodes keep their data (node-1, node-2, ...), and their logs.
    #[arg(long, default_value = "./sluice-cluster-data")]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.data_dir)?;
    let peer = |n: u64| SocketAddr::from(([127, 0, 0, 1], args.peer_port + n as u16 - 1));
    let api = |n: u64| SocketAddr::from(([127, 0, 0, 1], args.api_port + n as u16 - 1));
    let members: Vec<String> = (1..=args.nodes)
        .map(|n| format!("{n}={}", peer(n)))
        .collect();
    let mut nodes = Vec::new();
    for n in 1..=args.nodes {
        let options = BrokerOptions {
            node_id: n,
            data_dir: args.data_dir.join(format!("node-{n}")),
            listen: api(n),
            peer_listen: peer(n),
            extra_args: vec![
                "--initial-members".into(),
                members.join(","),
                "--data-groups".into(),
                args.data_groups.to_string(),
            ],
            env: Vec::new(),
        };
        nodes.push(Broker::launch(options)?);
    }
    for node in &mut nodes {
        node.wait_ready(Duration::from_secs(60)).await?;
    }
    println!("a {}-node Sluice cluster is up:", args.nodes);
    for n in 1..=args.nodes {
        println!(
            "  node {n}: http://{}  (log: {}/node-{n}.log)",
            api(n),
            args.data_dir.display()
        );
    }
    println!(
        "try: curl http://{}/v1/cluster    (Ctrl-C stops the cluster)",
        api(1)
    );
    tokio::signal::ctrl_c().await?;
    for node in &mut nodes {
        let _ = node.terminate(Duration::from_secs(10));
    }
    Ok(())
}
