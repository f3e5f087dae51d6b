//! The broker's flags, each also read from an environment variable `SLUICE_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// `sluice-broker`: durable, Raft-replicated message queues over HTTP.
#[derive(Parser, Debug, Clone)]
#[command(name = "sluice-broker", version, about)]
pub struct BrokerConfig {
    /// This node's id in the cluster (1, 2, ...). Inside a StatefulSet it may be left out:
    /// the pod's ordinal (the number ending its hostname) plus one is used.
    #[arg(long, env = "SLUICE_NODE_ID")]
    pub node_id: Option<u64>,

    /// Address of the client HTTP API.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address of peer (Raft) traffic.
    #[arg(long, env = "SLUICE_PEER_LISTEN", default_value = "127.0.0.1:7070")]
    pub peer_listen: SocketAddr,

    /// The address other nodes dial for this node's peer traffic (default: --peer-listen).
    #[arg(long, env = "SLUICE_ADVERTISE_PEER")]
    pub advertise_peer: Option<String>,

    /// Where the log and snapshots live.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,

    /// Static bootstrap, the same on every node: `1=host:port,2=host:port,3=host:port`.
    /// A node not in the list waits to be added with `POST /v1/cluster/members`.
    #[arg(long, env = "SLUICE_INITIAL_MEMBERS", value_parser = parse_members)]
    pub initial_members: Option<Members>,

    /// Data groups: Raft groups that hold the queues and topics, each led by one node, so
    /// several nodes lead at once (0: the metadata group holds everything). Every node
    /// of a cluster must give the same number, and a cluster keeps it for its life.
    #[arg(long, env = "SLUICE_DATA_GROUPS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub data_groups: u32,

    /// Log entries between snapshots (after which the log before them may be purged).
    #[arg(long, env = "SLUICE_SNAPSHOT_LOGS", default_value_t = 50_000)]
    pub snapshot_logs: u64,

    /// Size of a log segment file, the unit in which disk space is freed.
    #[arg(long, env = "SLUICE_SEGMENT_BYTES", default_value_t = 64 << 20)]
    pub segment_bytes: u64,

    /// The SMTP server (`host:port`, plain SMTP) that email subscriptions are sent
    /// through; without it, email subscriptions are refused.
    #[arg(long, env = "SLUICE_SMTP_SERVER")]
    pub smtp_server: Option<String>,

    /// PEM certificates trusted for `https://` push endpoints besides the public (Mozilla)
    /// roots the broker carries: the CA of endpoints inside the cluster.
    #[arg(long, env = "SLUICE_PUSH_CA_FILE")]
    pub push_ca_file: Option<PathBuf>,

    /// The sender of email deliveries.
    #[arg(long, env = "SLUICE_SMTP_FROM", default_value = "sluice@localhost")]
    pub smtp_from: String,

    /// A JSON file of access keys (`{"keys": [{"accessKeyId", "secretAccessKey",
    /// "queues"}]}`); when given, SQS requests must carry an AWS Signature Version 4 by
    /// one of them.
    #[arg(long, env = "SLUICE_ACCESS_KEYS")]
    pub access_keys: Option<std::path::PathBuf>,

    /// The AWS region the SQS and SNS layers name in ARNs (`arn:aws:sns:<region>:...`),
    /// in answers and in the notifications they deliver. Set it to the region the
    /// clients are configured with when they compare ARNs.
    #[arg(long, env = "SLUICE_REGION", default_value = "us-east-1")]
    pub region: String,

    /// For tests of the test checker only: answer a send once it has a log position,
    /// before it is replicated or synced. Loses acknowledged messages on a crash.
    #[arg(long, hide = true, env = "SLUICE_UNSAFE_ACK_BEFORE_COMMIT")]
    pub unsafe_ack_before_commit: bool,
}

/// `id=host:port` pairs of a cluster's first members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members(pub Vec<(u64, String)>);

fn parse_members(text: &str) -> Result<Members, String> {
    let mut members = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("{id:?} in {part:?} is not a node id (a positive number)"))?;
        if id == 0 {
            return Err("node ids start at 1".into());
        }
        let addr = addr.trim();
        if !addr.contains(':') {
            return Err(format!("{addr:?} in {part:?} has no port"));
        }
        if members.iter().any(|(other, _)| *other == id) {
            return Err(format!("node {id} is listed twice"));
        }
        members.push((id, addr.to_string()));
    }
    if members.is_empty() {
        return Err("no members listed".into());
    }
    Ok(Members(members))
}

impl BrokerConfig {
    /// The node id: the flag, else the StatefulSet ordinal + 1, else 1.
    pub fn node_id(&self) -> u64 {
        if let Some(id) = self.node_id {
            return id;
        }
        std::env::var("HOSTNAME")
            .ok()
            .and_then(|h| h.rsplit_once('-').and_then(|(_, n)| n.parse::<u64>().ok()))
            .map(|ordinal| ordinal + 1)
            .unwrap_or(1)
    }

    /// The peer address this node advertises.
    pub fn advertise_peer(&self) -> String {
        self.advertise_peer
            .clone()
            .unwrap_or_else(|| self.peer_listen.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_and_refuse_with_reasons() {
        assert_eq!(
            parse_members("1=a:1, 2=b:2").expect("ok"),
            Members(vec![(1, "a:1".into()), (2, "b:2".into())])
        );
        assert!(parse_members("1=a").unwrap_err().contains("port"));
        assert!(parse_members("x=a:1").unwrap_err().contains("node id"));
        assert!(parse_members("1=a:1,1=b:2").unwrap_err().contains("twice"));
        assert!(parse_members("0=a:1").unwrap_err().contains("start at 1"));
    }

    #[test]
    fn defaults_are_the_contract() {
        let c = BrokerConfig::parse_from(["sluice-broker"]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.peer_listen.to_string(), "127.0.0.1:7070");
        assert_eq!(c.data_dir, PathBuf::from("./sluice-data"));
    }
}
