//! The Helm chart rendered by a real `helm` (from `e2e/k8s/install-helm.sh`) with several
//! value sets: it lints, every object parses as its Kubernetes type (or Sluice's CRD
//! type), what each value switches on is there, and a bad values file is refused by
//! the chart's schema with a message that names the value.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sluice_operator::crd::{Queue, SluiceCluster};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helm() -> PathBuf {
    let out = Command::new("bash")
        .arg(root().join("e2e/k8s/install-helm.sh"))
        .output()
        .expect("install-helm.sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `helm ARGS` on the chart; (succeeded, stdout, stderr).
fn run_helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm())
        .args(args)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("sluice-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("sluice-helm-config"),
        )
        .output()
        .expect("helm runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn chart() -> String {
    root().join("charts/sluice").to_string_lossy().into_owned()
}

/// The objects `helm template` renders with `sets`, as JSON values.
fn render(sets: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec!["template", "rel", chart.as_str(), "-n", "apps"];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, stdout, stderr) = run_helm(&args);
    assert!(ok, "helm template {sets:?} failed:\n{stderr}");
    serde_saphyr::from_multiple::<Value>(&stdout)
        .expect("the rendered YAML parses")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn parse<T: DeserializeOwned>(object: &Value) {
    if let Err(e) = serde_json::from_value::<T>(object.clone()) {
        panic!(
            "{} {} does not parse: {e}",
            object["kind"], object["metadata"]["name"]
        );
    }
}

/// Every object parses as its type; the kinds rendered, sorted.
fn check_types(objects: &[Value]) -> Vec<String> {
    let mut kinds = Vec::new();
    for object in objects {
        let kind = object["kind"].as_str().expect("kind").to_string();
        match kind.as_str() {
            "Deployment" => parse::<Deployment>(object),
            "Job" => parse::<Job>(object),
            "Service" => parse::<Service>(object),
            "ServiceAccount" => parse::<ServiceAccount>(object),
            "ClusterRole" => parse::<ClusterRole>(object),
            "ClusterRoleBinding" => parse::<ClusterRoleBinding>(object),
            "Role" => parse::<Role>(object),
            "RoleBinding" => parse::<RoleBinding>(object),
            "ConfigMap" => parse::<ConfigMap>(object),
            "NetworkPolicy" => parse::<NetworkPolicy>(object),
            "Pod" => parse::<Pod>(object),
            "SluiceCluster" => parse::<SluiceCluster>(object),
            "Queue" => parse::<Queue>(object),
            // Prometheus Operator kinds: no Rust type here; their shape is checked below.
            "ServiceMonitor" | "PrometheusRule" => {
                assert!(object["spec"].is_object(), "{kind} without spec")
            }
            other => panic!("unexpected kind {other} in the chart"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    kinds
}

#[test]
fn the_chart_lints() {
    let chart = chart();
    for sets in [
        vec![],
        vec!["cluster.enabled=true", "networkPolicy.enabled=true"],
    ] {
        let mut args = vec!["lint", chart.as_str(), "--strict"];
        for set in &sets {
            args.extend(["--set", set]);
        }
        let (ok, stdout, stderr) = run_helm(&args);
        assert!(ok, "helm lint {sets:?}:\n{stdout}{stderr}");
    }
}

#[test]
fn the_operator_alone_by_default() {
    let objects = render(&[]);
    let kinds = check_types(&objects);
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Job",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}

#[test]
fn a_cluster_queues_monitoring_and_a_network_policy_when_asked() {
    let objects = render(&[
        "cluster.enabled=true",
        "cluster.storage.storageClassName=fast",
        "queues[0].name=orders",
        "queues[0].visibilitySeconds=60",
        "monitoring.serviceMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.grafanaDashboard.enabled=true",
        "networkPolicy.enabled=true",
        "cluster.accessKeys.secretName=sluice-keys",
    ]);
    let kinds = check_types(&objects);
    for kind in [
        "SluiceCluster",
        "Queue",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "NetworkPolicy",
        "Pod",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    let cluster = objects
        .iter()
        .find(|o| o["kind"] == "SluiceCluster")
        .expect("cluster");
    assert_eq!(cluster["spec"]["storage"]["storageClassName"], "fast");
    assert_eq!(cluster["spec"]["accessKeys"]["secretName"], "sluice-keys");
    assert!(cluster["spec"].get("pushCa").is_none());
    let queue = objects
        .iter()
        .find(|o| o["kind"] == "Queue")
        .expect("queue");
    assert_eq!(queue["spec"]["clusterRef"]["name"], "rel");
    assert_eq!(queue["spec"]["visibilitySeconds"], 60);
    let dashboard = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("dashboard");
    let json = dashboard["data"]["sluice.json"]
        .as_str()
        .expect("dashboard json");
    let parsed: Value = serde_json::from_str(json).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    // Raft traffic only between brokers.
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy")
        .expect("policy");
    let peer_rule = &policy["spec"]["ingress"][1];
    assert_eq!(peer_rule["ports"][0]["port"], 7070);
    assert_eq!(
        peer_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "broker"
    );
}

#[test]
fn a_bad_values_file_is_refused_by_the_schema() {
    let chart = chart();
    let values = std::env::temp_dir().join("sluice-bad-values.yaml");
    std::fs::write(
        &values,
        "cluster:\n  replicas: 0\n  storage: {size: lots}\n",
    )
    .expect("write");
    let (ok, _, stderr) = run_helm(&[
        "template",
        "rel",
        chart.as_str(),
        "-f",
        &values.to_string_lossy(),
    ]);
    assert!(!ok, "a values file with replicas 0 must be refused");
    assert!(stderr.contains("/cluster/replicas"), "{stderr}");
    assert!(stderr.contains("/cluster/storage/size"), "{stderr}");
    let (ok, _, stderr) = run_helm(&[
        "template",
        "rel",
        chart.as_str(),
        "--set",
        "operator.replicaz=2",
    ]);
    assert!(
        !ok && stderr.contains("replicaz"),
        "an unknown value must be refused: {stderr}"
    );
}
