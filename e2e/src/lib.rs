//! The end-to-end harness: real `sluice-broker` processes on loopback, each with its own
//! data directory and ports, that tests start, SIGKILL, SIGTERM and restart.
//!
//! The broker binary is built (or found up to date) by cargo the first time a process
//! needs it, in the same profile as the caller, so a test never runs a stale broker.
//! `SLUICE_BROKER_BIN` points at a prebuilt binary instead.

pub mod aws;
pub mod bench;
pub mod browser;
pub mod checker;
pub mod cluster;
pub mod kube;
pub mod peers;
pub mod plot;
pub mod report;
pub mod sink;
pub mod workload;

pub use cluster::Cluster;

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sluice_client::Client;

/// The `sluice-broker` binary, built on first use (or `SLUICE_BROKER_BIN`).
pub fn broker_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            match std::env::var("SLUICE_BROKER_BIN") {
                Ok(path) => Ok(PathBuf::from(path)),
                Err(_) => build_binary("sluice-broker", "sluice-broker"),
            }
            .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// The `sluice` command line, built on first use.
pub fn cli_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| build_binary("sluice-cli", "sluice").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Builds a binary of the workspace in this build's profile; its path.
fn build_binary(package: &str, bin: &str) -> Result<PathBuf> {
    let release = !cfg!(debug_assertions);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("e2e crate has a parent directory")?;
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running cargo build for {bin}"))?;
    if !out.status.success() {
        bail!(
            "building {bin} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    let path = target
        .join(if release { "release" } else { "debug" })
        .join(bin);
    if !path.exists() {
        bail!("built {bin} but found no binary at {}", path.display());
    }
    Ok(path)
}

/// A free TCP port on loopback (the OS picks; a collision then shows as a bind failure).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What to start a broker with.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub peer_listen: SocketAddr,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl BrokerOptions {
    /// One node with fresh loopback ports and its data under `dir`.
    pub fn single(dir: &Path) -> Result<Self> {
        Ok(Self {
            node_id: 1,
            data_dir: dir.join("node-1"),
            listen: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            peer_listen: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            extra_args: Vec::new(),
            env: Vec::new(),
        })
    }
}

/// A range of loopback addresses `127.a.b.1`, `127.a.b.2`, ... for one cluster, picked
/// at random so concurrent tests do not meet. Nodes on distinct addresses can be cut off
/// from each other by address (see [`Cluster::isolate`]).
pub fn pick_subnet() -> [u8; 2] {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let v = h.finish();
    [16 + (v % 238) as u8, 1 + ((v >> 8) % 254) as u8]
}

/// The loopback address of node `id` in `subnet`.
pub fn node_ip(subnet: [u8; 2], id: u64) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, subnet[0], subnet[1], id as u8)
}

/// The client API port and peer port every node of a cluster uses (each on its own IP).
pub const CLUSTER_API_PORT: u16 = 8080;
pub const CLUSTER_PEER_PORT: u16 = 7070;
/// Data groups of every test cluster: one per node of a three-node cluster, so each node
/// leads one (the README's local cluster uses the same).
pub const CLUSTER_DATA_GROUPS: u32 = 3;

impl BrokerOptions {
    /// Node `id` of a cluster in `subnet` whose first members are `1..=size`, with
    /// `data_groups` data groups.
    pub fn member(dir: &Path, subnet: [u8; 2], id: u64, size: u64, data_groups: u32) -> Self {
        let members: Vec<String> = (1..=size)
            .map(|n| format!("{n}={}:{CLUSTER_PEER_PORT}", node_ip(subnet, n)))
            .collect();
        let ip = node_ip(subnet, id);
        Self {
            node_id: id,
            data_dir: dir.join(format!("node-{id}")),
            listen: SocketAddr::from((ip, CLUSTER_API_PORT)),
            peer_listen: SocketAddr::from((ip, CLUSTER_PEER_PORT)),
            extra_args: vec![
                "--initial-members".into(),
                members.join(","),
                "--data-groups".into(),
                data_groups.to_string(),
            ],
            env: Vec::new(),
        }
    }
}

/// A running (or stopped) broker process.
pub struct Broker {
    pub options: BrokerOptions,
    pub client: Client,
    child: Option<Child>,
    log_path: PathBuf,
    starts: u32,
}

impl Broker {
    /// Starts a broker and waits until it is ready.
    pub async fn start(options: BrokerOptions) -> Result<Self> {
        let mut broker = Self::launch(options)?;
        broker.wait_ready(Duration::from_secs(30)).await?;
        Ok(broker)
    }

    /// Starts a broker without waiting for it (a cluster member is ready only once a
    /// quorum is up).
    pub fn launch(options: BrokerOptions) -> Result<Self> {
        let client = Client::new(&format!("http://{}", options.listen))?;
        let log_path = options.data_dir.with_extension("log");
        let mut broker = Self {
            options,
            client,
            child: None,
            log_path,
            starts: 0,
        };
        broker.spawn()?;
        Ok(broker)
    }

    /// Whether the process is running (not killed; a stopped one still counts).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGSTOP: the process freezes, its connections stay open.
    pub fn pause(&self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }

    /// SIGCONT after [`Broker::pause`].
    pub fn resume(&self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("broker is not running"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)?;
        Ok(())
    }

    /// Starts the process again after [`Broker::kill9`] without waiting for readiness.
    pub fn relaunch(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn()
    }

    /// The base URL of the client API.
    pub fn url(&self) -> String {
        format!("http://{}", self.options.listen)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> Result<()> {
        fs::create_dir_all(&self.options.data_dir)?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        self.starts += 1;
        let mut cmd = Command::new(broker_binary()?);
        cmd.arg("--node-id")
            .arg(self.options.node_id.to_string())
            .arg("--listen")
            .arg(self.options.listen.to_string())
            .arg("--peer-listen")
            .arg(self.options.peer_listen.to_string())
            .arg("--data-dir")
            .arg(&self.options.data_dir)
            .args(&self.options.extra_args)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(cmd.spawn().context("spawning sluice-broker")?);
        Ok(())
    }

    /// Waits until `/readyz` answers 200; fails early if the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "broker exited with {status} before it was ready; log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(true) = self.client.ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "broker not ready after {timeout:?}; log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: the process dies at once, with whatever it had not synced.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit (at most `timeout`, then SIGKILL).
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("broker is not running"))?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                bail!("broker did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the process again on the same ports and data, and waits until ready.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn()?;
        self.wait_ready(Duration::from_secs(60)).await
    }

    /// The end of the broker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// A temporary directory for a test's brokers, kept when `SLUICE_KEEP_TEST_DATA` is set.
pub fn test_dir(name: &str) -> Result<tempfile::TempDir> {
    let keep = std::env::var_os("SLUICE_KEEP_TEST_DATA").is_some();
    let dir = tempfile::Builder::new()
        .prefix(&format!("sluice-{name}-"))
        .disable_cleanup(keep)
        .tempdir()?;
    if keep {
        eprintln!("test data kept in {}", dir.path().display());
    }
    Ok(dir)
}
