//! A cluster of real broker processes on loopback, each node on its own address
//! (`127.a.b.<id>`) so faults can be injected per node: SIGKILL, SIGSTOP, restart, and
//! network partitions made of iptables rules that drop the packets between addresses.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sluice_client::Client;

use crate::{Broker, BrokerOptions, CLUSTER_DATA_GROUPS, node_ip, pick_subnet};

/// Nodes of one cluster; node `id` is `nodes[id - 1]`.
pub struct Cluster {
    pub nodes: Vec<Broker>,
    pub subnet: [u8; 2],
    dir: PathBuf,
    size: u64,
    data_groups: u32,
    /// iptables rules in place: (source, destination) pairs that are dropped.
    cuts: Vec<(String, String)>,
}

impl Cluster {
    /// Starts `size` nodes that bootstrap together, and waits until all are ready.
    pub async fn start(dir: &std::path::Path, size: u64) -> Result<Self> {
        Self::start_with(dir, size, &[]).await
    }

    /// The same, with extra broker flags on every node.
    pub async fn start_with(dir: &std::path::Path, size: u64, extra: &[&str]) -> Result<Self> {
        Self::start_grouped(dir, size, CLUSTER_DATA_GROUPS, extra).await
    }

    /// The same, with `data_groups` data groups instead of [`CLUSTER_DATA_GROUPS`].
    pub async fn start_grouped(
        dir: &std::path::Path,
        size: u64,
        data_groups: u32,
        extra: &[&str],
    ) -> Result<Self> {
        let subnet = pick_subnet();
        let mut nodes = Vec::new();
        for id in 1..=size {
            let mut options = BrokerOptions::member(dir, subnet, id, size, data_groups);
            options
                .extra_args
                .extend(extra.iter().map(|s| s.to_string()));
            nodes.push(Broker::launch(options)?);
        }
        let mut cluster = Self {
            nodes,
            subnet,
            dir: dir.to_path_buf(),
            size,
            data_groups,
            cuts: Vec::new(),
        };
        cluster.wait_all_ready(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// Starts one more node that is not among the first members: it waits to be added.
    pub fn launch_joiner(&mut self, extra: &[&str]) -> Result<u64> {
        let id = self.nodes.len() as u64 + 1;
        let mut options =
            BrokerOptions::member(&self.dir, self.subnet, id, self.size, self.data_groups);
        options
            .extra_args
            .extend(extra.iter().map(|s| s.to_string()));
        self.nodes.push(Broker::launch(options)?);
        Ok(id)
    }

    pub fn node(&self, id: u64) -> &Broker {
        &self.nodes[id as usize - 1]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Broker {
        &mut self.nodes[id as usize - 1]
    }

    /// The peer address of node `id`, as others dial it.
    pub fn peer_address(&self, id: u64) -> String {
        self.node(id).options.peer_listen.to_string()
    }

    /// A client of node `id`.
    pub fn client(&self, id: u64) -> Client {
        self.node(id).client.clone()
    }

    /// Ids of the nodes whose process runs.
    pub fn running(&self) -> Vec<u64> {
        (1..=self.nodes.len() as u64)
            .filter(|id| self.node(*id).is_running())
            .collect()
    }

    /// Waits until every running node answers `/readyz` with 200.
    pub async fn wait_all_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for id in self.running() {
            let left = deadline.saturating_duration_since(Instant::now());
            self.node_mut(id)
                .wait_ready(left)
                .await
                .with_context(|| format!("node {id}"))?;
        }
        Ok(())
    }

    /// The leader as the running nodes see it, once they agree on one.
    pub async fn leader(&self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            for id in self.running() {
                if let Ok(status) = self.client(id).cluster().await
                    && let Some(leader) = status.groups.first().and_then(|g| g.leader)
                {
                    return Ok(leader);
                }
            }
            if Instant::now() > deadline {
                bail!("no leader after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader of group `group` as the running nodes see it, once one is known.
    pub async fn leader_of_group(&self, group: u32, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            for id in self.running() {
                if let Ok(status) = self.client(id).cluster().await
                    && let Some(leader) = status
                        .groups
                        .iter()
                        .find(|g| g.id == group)
                        .and_then(|g| g.leader)
                {
                    return Ok(leader);
                }
            }
            if Instant::now() > deadline {
                bail!("group {group} has no leader after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader of the group that holds queue `queue`: the node a fault must hit to
    /// disturb that queue.
    pub async fn leader_of_queue(&self, queue: &str, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        let group = loop {
            let mut found = None;
            for id in self.running() {
                if let Ok(q) = self.client(id).get_queue(queue).await {
                    found = Some(q.group);
                    break;
                }
            }
            if let Some(group) = found {
                break group;
            }
            if Instant::now() > deadline {
                bail!("queue {queue} not found after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.leader_of_group(group, deadline.saturating_duration_since(Instant::now()))
            .await
    }

    fn iptables(args: &[&str]) -> Result<()> {
        let out = Command::new("iptables")
            .args(args)
            .output()
            .context("running iptables (needed for partition tests)")?;
        if !out.status.success() {
            bail!(
                "iptables {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Cuts node `id` off from every other node: packets between their addresses are
    /// dropped both ways. Clients on 127.0.0.1 still reach it.
    pub fn isolate(&mut self, id: u64) -> Result<()> {
        let me = node_ip(self.subnet, id).to_string();
        for other in 1..=self.nodes.len() as u64 {
            if other == id {
                continue;
            }
            let them = node_ip(self.subnet, other).to_string();
            for (src, dst) in [(me.clone(), them.clone()), (them, me.clone())] {
                Self::iptables(&["-I", "INPUT", "-s", &src, "-d", &dst, "-j", "DROP"])?;
                self.cuts.push((src, dst));
            }
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&mut self) -> Result<()> {
        for (src, dst) in std::mem::take(&mut self.cuts) {
            Self::iptables(&["-D", "INPUT", "-s", &src, "-d", &dst, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// The ends of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.options.node_id, n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The rules live in the machine's firewall, not the test: take them out.
        let _ = self.heal();
    }
}
