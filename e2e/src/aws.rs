//! Running the AWS SDKs' own programs (boto3, the aws CLI) against a broker: the
//! settings they read from the environment, and their outcome.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Result;

use crate::{Broker, BrokerOptions, Cluster};

/// A single broker under `dir` that checks signatures by the keys of `keys_json` (the
/// `--access-keys` file's content).
pub async fn broker_with_keys(dir: &Path, keys_json: &str) -> Result<Broker> {
    let keys = dir.join("access-keys.json");
    std::fs::write(&keys, keys_json)?;
    let mut options = BrokerOptions::single(dir)?;
    options
        .extra_args
        .extend(["--access-keys".to_string(), keys.display().to_string()]);
    Broker::start(options).await
}

/// The examples written with each SDK, `examples/<dir>` of the repository.
pub fn examples_dir(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(dir)
}

/// A cluster of `size` under `dir` whose nodes check signatures by the keys of
/// `keys_json`.
pub async fn cluster_with_keys(dir: &Path, size: u64, keys_json: &str) -> Result<Cluster> {
    let keys = dir.join("access-keys.json");
    std::fs::write(&keys, keys_json)?;
    let keys = keys.display().to_string();
    Cluster::start_with(dir, size, &["--access-keys", &keys]).await
}

/// Where the query-protocol botocore (1.31, before SQS moved to JSON) is installed:
/// `SLUICE_BOTO_QUERY`, or `~/.cache/sluice/boto-query` where `.ci/run` puts it.
pub fn query_boto() -> PathBuf {
    std::env::var_os("SLUICE_BOTO_QUERY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/sluice/boto-query")
        })
}

/// A command with the AWS settings a program reads from the environment: the endpoint
/// (`SQS_ENDPOINT`, `SNS_ENDPOINT`), dummy keys (the broker checks signatures only when
/// it has keys) and a region; `python_path` puts another boto3 first.
pub fn aws_command(program: &str, endpoint: &str, python_path: Option<&Path>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("SQS_ENDPOINT", endpoint)
        .env("SNS_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", "sluice-test")
        .env("AWS_SECRET_ACCESS_KEY", "sluice-test-secret")
        .env("AWS_DEFAULT_REGION", "eu-central-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    if let Some(path) = python_path {
        cmd.env("PYTHONPATH", path);
    }
    cmd
}

/// The program's stdout; panics with both outputs when it failed.
pub fn check(output: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs the aws CLI (`aws --endpoint-url <endpoint> --output json <args>`) and parses
/// what it prints; panics when it fails. Null when it prints nothing.
pub fn aws_cli(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let output = aws_command("aws", endpoint, None)
        .args(["--endpoint-url", endpoint, "--output", "json"])
        .args(args)
        .output()
        .expect("the aws CLI runs (pip install awscli)");
    let stdout = check(output, &format!("aws {}", args.join(" ")));
    if stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&stdout).expect("the CLI prints JSON")
    }
}

/// Runs `examples/<dir>/<name>.py` against `endpoint`; panics when it fails.
pub fn run_example(dir: &str, name: &str, endpoint: &str, python_path: Option<&Path>) {
    let script = examples_dir(dir).join(format!("{name}.py"));
    let output = aws_command("python3", endpoint, python_path)
        .arg(&script)
        .output()
        .expect("python3 runs");
    check(
        output,
        &format!("examples/{dir}/{name}.py against {endpoint}"),
    );
}

/// Runs a Python snippet with boto3 clients `sqs` and `sns` signed by `key`/`secret`;
/// its stdout, or its stderr when it failed.
pub fn boto3_snippet(
    endpoint: &str,
    key: &str,
    secret: &str,
    code: &str,
) -> Result<String, String> {
    let program = format!(
        "import boto3, os\nsqs = boto3.client('sqs', endpoint_url=os.environ['SQS_ENDPOINT'])\nsns = boto3.client('sns', endpoint_url=os.environ['SNS_ENDPOINT'])\n{code}"
    );
    let output = aws_command("python3", endpoint, None)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .args(["-c", &program])
        .output()
        .expect("python3 runs");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
