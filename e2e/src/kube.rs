//! The harness of the Kubernetes tests: the real single-node Kubernetes of
//! `e2e/k8s/` (built once into a cache outside the repo, started per test run), the
//! project's images built from the working tree, and `kubectl` and `helm` driven as a
//! person would drive them. Objects are read back as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The repository root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn scripts() -> PathBuf {
    workspace().join("e2e/k8s")
}

/// Runs a command; its stdout, or an error with its stderr.
fn run(cmd: &mut Command, input: Option<&str>) -> Result<String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {shown}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            stdout
        );
    }
    Ok(stdout)
}

/// A running single-node Kubernetes; brought down when dropped.
pub struct KubeNode {
    run_dir: PathBuf,
    helm: PathBuf,
}

impl KubeNode {
    /// Builds the Kubernetes binaries if the cache lacks them, starts the node (after
    /// clearing what a previous run left), and finds helm.
    pub fn up() -> Result<Self> {
        run(Command::new("bash").arg(scripts().join("build.sh")), None)
            .context("building the Kubernetes node (e2e/k8s/build.sh)")?;
        run(
            Command::new("bash")
                .arg(scripts().join("node.sh"))
                .arg("up"),
            None,
        )
        .context("starting the Kubernetes node (e2e/k8s/node.sh up)")?;
        let helm = run(
            Command::new("bash").arg(scripts().join("install-helm.sh")),
            None,
        )
        .context("finding helm (e2e/k8s/install-helm.sh)")?;
        let run_dir = std::env::var("SLUICE_K8S_RUN").unwrap_or_else(|_| "/tmp/sluice-k8s".into());
        Ok(Self {
            run_dir: run_dir.into(),
            helm: PathBuf::from(helm.trim()),
        })
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.run_dir.join("kubeconfig")
    }

    /// `kubectl ARGS`; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        run(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(self.kubeconfig())
                .args(args),
            None,
        )
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, namespace: &str, yaml: &str) -> Result<String> {
        self.apply_with(namespace, yaml, &[])
    }

    /// `kubectl apply -f - EXTRA...` of `yaml`.
    pub fn apply_with(&self, namespace: &str, yaml: &str, extra: &[&str]) -> Result<String> {
        run(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(self.kubeconfig())
                .args(["apply", "-n", namespace, "-f", "-"])
                .args(extra),
            Some(yaml),
        )
    }

    /// `kubectl get KIND NAME -o json`; `None` when it does not exist.
    pub fn get(&self, namespace: &str, kind: &str, name: &str) -> Result<Option<Value>> {
        let out = self.kubectl(&[
            "get",
            "-n",
            namespace,
            kind,
            name,
            "-o",
            "json",
            "--ignore-not-found",
        ])?;
        if out.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::from_str(&out)?))
    }

    /// `kubectl get KIND -l SELECTOR -o json`'s items.
    pub fn list(&self, namespace: &str, kind: &str, selector: &str) -> Result<Vec<Value>> {
        let out = self.kubectl(&["get", "-n", namespace, kind, "-l", selector, "-o", "json"])?;
        let list: Value = serde_json::from_str(&out)?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// `helm ARGS` with this node's kubeconfig.
    pub fn helm(&self, args: &[&str]) -> Result<String> {
        run(
            Command::new(&self.helm)
                .env("KUBECONFIG", self.kubeconfig())
                .env("HELM_CACHE_HOME", self.run_dir.join("helm/cache"))
                .env("HELM_CONFIG_HOME", self.run_dir.join("helm/config"))
                .env("HELM_DATA_HOME", self.run_dir.join("helm/data"))
                .args(args),
            None,
        )
    }

    /// The cluster IP of a Service.
    pub fn service_ip(&self, namespace: &str, name: &str) -> Result<String> {
        let service = self
            .get(namespace, "service", name)?
            .with_context(|| format!("no Service {name}"))?;
        service["spec"]["clusterIP"]
            .as_str()
            .map(str::to_string)
            .context("Service without clusterIP")
    }

    /// What went on, for a failure message: first what each broker says of its readiness
    /// and the brokers' log tails (output is often cut in the middle), then pods,
    /// resources, events and the operator's log tail.
    pub fn diagnostics(&self, namespace: &str) -> String {
        let mut out = self.broker_answers(namespace);
        let mut operator_namespaces = vec!["sluice-system", namespace];
        operator_namespaces.dedup();
        for args in [
            vec![
                "logs",
                "-n",
                namespace,
                "-l",
                "app.kubernetes.io/component=broker",
                "--tail=60",
                "--prefix",
            ],
            vec!["get", "pods", "-A", "-o", "wide"],
            vec!["get", "sluice", "-n", namespace, "-o", "wide"],
            vec!["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"],
        ]
        .into_iter()
        .chain(operator_namespaces.into_iter().map(|operator_namespace| {
            vec![
                "logs",
                "-n",
                operator_namespace,
                "-l",
                "app.kubernetes.io/component=operator",
                "--tail=40",
                "--prefix",
            ]
        })) {
            out.push_str(&format!("$ kubectl {}\n", args.join(" ")));
            match self.kubectl(&args) {
                Ok(text) => out.push_str(&text),
                Err(e) => out.push_str(&format!("{e:#}\n")),
            }
        }
        out
    }

    /// Each broker pod's answer to `/readyz` and `/v1/cluster`, asked at its pod IP.
    fn broker_answers(&self, namespace: &str) -> String {
        let pods = self.kubectl(&[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/component=broker",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}",
        ]);
        let mut out = String::new();
        for line in pods.unwrap_or_default().lines() {
            let Some((pod, ip)) = line.split_once(' ') else {
                continue;
            };
            for path in ["/readyz", "/v1/cluster"] {
                let answer = http_get(&format!("{ip}:{BROKER_PORT}"), path)
                    .unwrap_or_else(|e| format!("{e:#}"));
                out.push_str(&format!("$ GET {pod} {path}\n{}\n", answer.trim_end()));
            }
        }
        out
    }
}

/// The brokers' client port in a pod.
const BROKER_PORT: u16 = 8080;

/// A bare HTTP/1.0 GET, for diagnostics: the status line and body.
fn http_get(address: &str, path: &str) -> Result<String> {
    use std::io::Read;
    let timeout = Duration::from_secs(3);
    let address: std::net::SocketAddr = address.parse().context("pod address")?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok(format!("{status}\n{body}"))
}

impl Drop for KubeNode {
    fn drop(&mut self) {
        if std::env::var_os("SLUICE_K8S_KEEP").is_some() {
            return;
        }
        let _ = run(
            Command::new("bash")
                .arg(scripts().join("node.sh"))
                .arg("down"),
            None,
        );
    }
}

/// Waits until `check` answers `Some`, polling; an error with `what` after `timeout`.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_error = String::new();
    loop {
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {}s waiting for {what} {last_error}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The `Ready` condition's status and message of an object.
pub fn ready(object: &Value) -> (bool, String) {
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match conditions.iter().find(|c| c["type"] == "Ready") {
        Some(c) => (
            c["status"] == "True",
            format!("{}: {}", c["reason"], c["message"]),
        ),
        None => (false, "no Ready condition yet".into()),
    }
}

/// Builds the broker, operator and CLI images from the working tree
/// (`e2e/k8s/images.sh`), each tagged with every one of `tags`.
pub fn build_images(tags: &[&str]) -> Result<()> {
    run(
        Command::new("bash")
            .arg(scripts().join("images.sh"))
            .args(tags),
        None,
    )
    .context("building the images (e2e/k8s/images.sh)")?;
    Ok(())
}
