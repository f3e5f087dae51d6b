//! One pure builder per object a `SluiceCluster` owns. Each takes the cluster (and what
//! was read from the API server before it) and returns the object to apply; nothing
//! here talks to the API server.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource,
    HTTPGetAction, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::crd::{SecretFile, SluiceCluster};

pub const CLIENT_PORT: i32 = 8080;
pub const PEER_PORT: i32 = 7070;
/// Where the broker keeps its log, on the pod's volume claim.
const DATA_DIR: &str = "/var/lib/sluice";
/// The unprivileged user the broker runs as (the images' `USER`).
pub const BROKER_UID: i64 = 65532;
/// Pod annotation carrying a hash of the broker configuration, so a change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "sluice.dev/config-hash";
/// Label of the Service of one broker pod, so monitoring can scrape each broker once.
pub const POD_SERVICE_LABEL: &str = "sluice.dev/pod-service";

/// Names of the objects of one cluster, derived from its name in one place.
pub struct Names {
    pub cluster: String,
}

impl Names {
    pub fn of(cluster: &SluiceCluster) -> Self {
        Self {
            cluster: cluster.name_any(),
        }
    }
    /// The StatefulSet; its pods are `<cluster>-<ordinal>`.
    pub fn statefulset(&self) -> String {
        self.cluster.clone()
    }
    pub fn pod(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.cluster)
    }
    /// The Service of one broker pod, named as the pod: a stable address for its peer
    /// and client ports that survives the pod's restarts (its IP does not), and needs no
    /// cluster DNS.
    pub fn pod_service(&self, ordinal: i32) -> String {
        self.pod(ordinal)
    }
    /// The headless Service the StatefulSet names its pods under.
    pub fn peer_service(&self) -> String {
        format!("{}-peers", self.cluster)
    }
    /// The Service clients use.
    pub fn client_service(&self) -> String {
        format!("{}-broker", self.cluster)
    }
    pub fn config_map(&self) -> String {
        format!("{}-config", self.cluster)
    }
    pub fn service_account(&self) -> String {
        format!("{}-broker", self.cluster)
    }
    pub fn pdb(&self) -> String {
        self.cluster.clone()
    }
    /// The volume claim of a pod, as the StatefulSet names it.
    pub fn claim(&self, ordinal: i32) -> String {
        format!("data-{}", self.pod(ordinal))
    }
}

/// The labels every object of the cluster carries; the pods' selector is these.
pub fn labels(cluster: &SluiceCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "sluice".into()),
        ("app.kubernetes.io/instance".into(), cluster.name_any()),
        ("app.kubernetes.io/component".into(), "broker".into()),
        (
            "app.kubernetes.io/managed-by".into(),
            "sluice-operator".into(),
        ),
    ])
}

/// The selector of the cluster's broker pods, as a label-selector string.
pub fn selector_string(cluster: &SluiceCluster) -> String {
    labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn owner(cluster: &SluiceCluster) -> Vec<OwnerReference> {
    cluster.controller_owner_ref(&()).into_iter().collect()
}

fn meta(cluster: &SluiceCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cluster.namespace(),
        labels: Some(labels(cluster)),
        owner_references: Some(owner(cluster)),
        ..ObjectMeta::default()
    }
}

pub fn service_account(cluster: &SluiceCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(cluster, Names::of(cluster).service_account()),
        // Brokers do not call the API server.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// Data groups of a new cluster whose spec names none.
pub const DEFAULT_DATA_GROUPS: u32 = 3;

/// The data groups the brokers of `cluster` run with. A broker refuses a data directory
/// made with another number, so what the cluster was made with wins: its status says,
/// else its ConfigMap (`existing`; one without the key predates the setting, which was
/// 0 then). Only a new cluster takes the spec's number, or the default.
pub fn data_groups(cluster: &SluiceCluster, existing: Option<&ConfigMap>) -> u32 {
    let recorded = cluster
        .status
        .as_ref()
        .and_then(|s| s.data_groups)
        .or_else(|| {
            existing.map(|c| {
                c.data
                    .as_ref()
                    .and_then(|d| d.get(DATA_GROUPS_KEY))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            })
        });
    match (recorded, cluster.spec.data_groups) {
        (Some(made), Some(asked)) if made != asked => {
            tracing::warn!(
                cluster = %cluster.name_any(),
                made,
                asked,
                "spec.dataGroups differs from what the cluster was made with; keeping it"
            );
            made
        }
        (Some(made), _) => made,
        (None, asked) => asked.unwrap_or(DEFAULT_DATA_GROUPS),
    }
}

const DATA_GROUPS_KEY: &str = "SLUICE_DATA_GROUPS";

/// The broker's configuration as environment variables: the fixed ones, then the
/// user's `spec.env`. `bootstrap_peer` is node 1's stable peer address: node 1 starts
/// the cluster alone on an empty volume, every other node waits for the operator to
/// add it.
pub fn config_map(cluster: &SluiceCluster, bootstrap_peer: &str, data_groups: u32) -> ConfigMap {
    let mut data: BTreeMap<String, String> = cluster.spec.env.clone();
    data.insert("SLUICE_LISTEN".into(), format!("0.0.0.0:{CLIENT_PORT}"));
    data.insert("SLUICE_PEER_LISTEN".into(), format!("0.0.0.0:{PEER_PORT}"));
    data.insert("SLUICE_DATA_DIR".into(), DATA_DIR.into());
    data.insert(
        "SLUICE_INITIAL_MEMBERS".into(),
        format!("1={bootstrap_peer}"),
    );
    data.insert(DATA_GROUPS_KEY.into(), data_groups.to_string());
    for (file, flag) in secret_files(cluster) {
        data.insert(flag.into(), file.path());
    }
    ConfigMap {
        metadata: meta(cluster, Names::of(cluster).config_map()),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// A Secret's file the brokers read: where it is mounted.
struct MountedSecret<'a> {
    volume: &'static str,
    secret: &'a SecretFile,
    default_key: &'static str,
}

impl MountedSecret<'_> {
    fn key(&self) -> &str {
        self.secret.key.as_deref().unwrap_or(self.default_key)
    }

    fn dir(&self) -> String {
        format!("/etc/sluice/{}", self.volume)
    }

    fn path(&self) -> String {
        format!("{}/{}", self.dir(), self.key())
    }
}

/// The Secrets the spec names, each with the broker flag (env var) that reads it.
fn secret_files(cluster: &SluiceCluster) -> Vec<(MountedSecret<'_>, &'static str)> {
    let spec = &cluster.spec;
    let mut files = Vec::new();
    if let Some(secret) = &spec.access_keys {
        files.push((
            MountedSecret {
                volume: "access-keys",
                secret,
                default_key: "keys.json",
            },
            "SLUICE_ACCESS_KEYS",
        ));
    }
    if let Some(secret) = &spec.push_ca {
        files.push((
            MountedSecret {
                volume: "push-ca",
                secret,
                default_key: "ca.crt",
            },
            "SLUICE_PUSH_CA_FILE",
        ));
    }
    files
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// The headless Service the StatefulSet requires; not-ready pods are listed too, since a
/// broker becomes ready only after it has reached its peers.
pub fn peer_service(cluster: &SluiceCluster) -> Service {
    Service {
        metadata: meta(cluster, Names::of(cluster).peer_service()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(labels(cluster)),
            ports: Some(vec![port("peer", PEER_PORT), port("http", CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `<cluster>-broker`: the Service clients send to, ready brokers only.
pub fn client_service(cluster: &SluiceCluster) -> Service {
    Service {
        metadata: meta(cluster, Names::of(cluster).client_service()),
        spec: Some(ServiceSpec {
            selector: Some(labels(cluster)),
            ports: Some(vec![port("http", CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service of one broker pod: its stable peer address.
pub fn pod_service(cluster: &SluiceCluster, ordinal: i32) -> Service {
    let names = Names::of(cluster);
    let mut selector = labels(cluster);
    selector.insert(
        "statefulset.kubernetes.io/pod-name".into(),
        names.pod(ordinal),
    );
    let mut metadata = meta(cluster, names.pod_service(ordinal));
    if let Some(labels) = metadata.labels.as_mut() {
        labels.insert(POD_SERVICE_LABEL.into(), "true".into());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            publish_not_ready_addresses: Some(true),
            selector: Some(selector),
            ports: Some(vec![port("peer", PEER_PORT), port("http", CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(CLIENT_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// The brokers. `replicas` is what the operator decided this step (it follows
/// `spec.replicas` in step with Raft membership); `config_hash` rolls the pods when the
/// configuration changes. Pods start in parallel (a restarted cluster needs a quorum
/// before any pod is ready) and are replaced only when the operator deletes them
/// (`OnDelete`), one at a time after draining their leaderships.
pub fn statefulset(cluster: &SluiceCluster, replicas: i32, config_hash: &str) -> StatefulSet {
    let names = Names::of(cluster);
    let spec = &cluster.spec;
    let overrides = spec.pod.clone().unwrap_or_default();
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(labels(cluster));
    let mut annotations = overrides.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    let container = Container {
        name: "broker".into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(
            spec.image_pull_policy
                .clone()
                .unwrap_or_else(|| "IfNotPresent".into()),
        ),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: CLIENT_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("peer".into()),
                container_port: PEER_PORT,
                ..ContainerPort::default()
            },
        ]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: names.config_map(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        volume_mounts: Some(
            std::iter::once(VolumeMount {
                name: "data".into(),
                mount_path: DATA_DIR.into(),
                ..VolumeMount::default()
            })
            .chain(secret_files(cluster).iter().map(|(file, _)| VolumeMount {
                name: file.volume.into(),
                mount_path: file.dir(),
                read_only: Some(true),
                ..VolumeMount::default()
            }))
            .collect(),
        ),
        readiness_probe: Some(http_probe("/readyz", 2, 3)),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            ..http_probe("/healthz", 10, 6)
        }),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(BROKER_UID),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(labels(cluster)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    StatefulSet {
        metadata: meta(cluster, names.statefulset()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names.peer_service()),
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(labels(cluster)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(
                        overrides
                            .service_account_name
                            .clone()
                            .unwrap_or_else(|| names.service_account()),
                    ),
                    automount_service_account_token: Some(false),
                    containers: vec![container],
                    volumes: {
                        let volumes: Vec<Volume> = secret_files(cluster)
                            .iter()
                            .map(|(file, _)| Volume {
                                name: file.volume.into(),
                                secret: Some(SecretVolumeSource {
                                    secret_name: Some(file.secret.secret_name.clone()),
                                    items: Some(vec![KeyToPath {
                                        key: file.key().into(),
                                        path: file.key().into(),
                                        ..KeyToPath::default()
                                    }]),
                                    ..SecretVolumeSource::default()
                                }),
                                ..Volume::default()
                            })
                            .collect();
                        (!volumes.is_empty()).then_some(volumes)
                    },
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(BROKER_UID),
                        run_as_group: Some(BROKER_UID),
                        fs_group: Some(BROKER_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    // A broker hands its leaderships away and syncs on SIGTERM.
                    termination_grace_period_seconds: Some(30),
                    node_selector: (!overrides.node_selector.is_empty())
                        .then(|| overrides.node_selector.clone()),
                    tolerations: (!overrides.tolerations.is_empty())
                        .then(|| overrides.tolerations.clone()),
                    affinity: overrides.affinity.clone(),
                    priority_class_name: overrides.priority_class_name.clone(),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// At most one broker down at a time by a voluntary disruption (a drain of a node), so a
/// quorum stays up. The same object is served as policy/v1 or, on servers without it,
/// policy/v1beta1 (the fields are the same).
pub fn pdb(cluster: &SluiceCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(cluster, Names::of(cluster).pdb()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels(cluster)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// A stable hash of the configuration that pods read at start, so a change rolls them.
/// FNV-1a: fixed across Rust releases, unlike `DefaultHasher`.
pub fn config_hash(config: &ConfigMap) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in config.data.iter().flatten() {
        for byte in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{SluiceClusterSpec, SluiceClusterStatus};

    fn cluster() -> SluiceCluster {
        let mut c = SluiceCluster::new(
            "demo",
            SluiceClusterSpec {
                replicas: 3,
                data_groups: None,
                image: "sluice-broker:dev".into(),
                image_pull_policy: None,
                storage: Default::default(),
                resources: None,
                pod: None,
                env: BTreeMap::new(),
                access_keys: None,
                push_ca: None,
            },
        );
        c.metadata.namespace = Some("apps".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    #[test]
    fn every_object_is_owned_by_the_cluster_and_labelled() {
        let c = cluster();
        let metas = [
            service_account(&c).metadata,
            config_map(&c, "10.96.0.10:7070", 3).metadata,
            peer_service(&c).metadata,
            client_service(&c).metadata,
            pod_service(&c, 0).metadata,
            statefulset(&c, 3, "h").metadata,
            pdb(&c).metadata,
        ];
        for meta in metas {
            assert_eq!(meta.namespace.as_deref(), Some("apps"));
            let owner = &meta.owner_references.expect("owner")[0];
            assert_eq!(
                (owner.kind.as_str(), owner.controller),
                ("SluiceCluster", Some(true))
            );
            assert_eq!(
                meta.labels.expect("labels")["app.kubernetes.io/instance"],
                "demo"
            );
        }
    }

    #[test]
    fn the_client_service_is_named_after_the_cluster() {
        let s = client_service(&cluster());
        assert_eq!(s.metadata.name.as_deref(), Some("demo-broker"));
        let ports = s.spec.expect("spec").ports.expect("ports");
        assert_eq!(ports[0].port, CLIENT_PORT);
    }

    #[test]
    fn a_pod_service_selects_its_pod_even_before_it_is_ready() {
        let spec = pod_service(&cluster(), 2).spec.expect("spec");
        assert_eq!(
            spec.selector.expect("selector")["statefulset.kubernetes.io/pod-name"],
            "demo-2"
        );
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let labels = pod_service(&cluster(), 2).metadata.labels.expect("labels");
        assert_eq!(labels[POD_SERVICE_LABEL], "true");
        assert_eq!(
            peer_service(&cluster())
                .spec
                .expect("spec")
                .cluster_ip
                .as_deref(),
            Some("None")
        );
    }

    #[test]
    fn node_1_bootstraps_and_the_user_env_is_kept() {
        let mut c = cluster();
        c.spec
            .env
            .insert("SLUICE_SMTP_SERVER".into(), "mail:25".into());
        let data = config_map(&c, "10.96.0.10:7070", 3).data.expect("data");
        assert_eq!(data["SLUICE_INITIAL_MEMBERS"], "1=10.96.0.10:7070");
        assert_eq!(data["SLUICE_DATA_GROUPS"], "3");
        assert_eq!(data["SLUICE_LISTEN"], "0.0.0.0:8080");
        assert_eq!(data["SLUICE_SMTP_SERVER"], "mail:25");
    }

    #[test]
    fn a_cluster_keeps_the_data_groups_it_was_made_with() {
        let mut c = cluster();
        assert_eq!(data_groups(&c, None), DEFAULT_DATA_GROUPS, "a new cluster");
        let made_before = config_map(&c, "10.96.0.10:7070", 0);
        assert_eq!(
            data_groups(&c, Some(&made_before)),
            0,
            "a cluster made when the default was 0 keeps 0"
        );
        let mut older = made_before.clone();
        older.data.as_mut().expect("data").remove(DATA_GROUPS_KEY);
        assert_eq!(
            data_groups(&c, Some(&older)),
            0,
            "a ConfigMap from before the setting means 0"
        );
        c.spec.data_groups = Some(5);
        assert_eq!(data_groups(&c, None), 5, "a new cluster takes the spec's");
        assert_eq!(
            data_groups(&c, Some(&made_before)),
            0,
            "a spec set later does not change a running cluster"
        );
        c.status = Some(SluiceClusterStatus {
            data_groups: Some(3),
            ..SluiceClusterStatus::default()
        });
        assert_eq!(
            data_groups(&c, None),
            3,
            "the status remembers it when the ConfigMap is gone"
        );
    }

    #[test]
    fn a_change_of_configuration_changes_the_hash() {
        let mut c = cluster();
        let before = config_hash(&config_map(&c, "10.96.0.10:7070", 3));
        assert_eq!(before, config_hash(&config_map(&c, "10.96.0.10:7070", 3)));
        c.spec
            .env
            .insert("SLUICE_SNAPSHOT_LOGS".into(), "1000".into());
        assert_ne!(before, config_hash(&config_map(&c, "10.96.0.10:7070", 3)));
    }

    #[test]
    fn brokers_start_together_are_rolled_by_the_operator_and_run_locked_down() {
        let mut c = cluster();
        c.spec.storage.size = "5Gi".into();
        c.spec.storage.storage_class_name = Some("fast".into());
        let sts = statefulset(&c, 5, "abc");
        let spec = sts.spec.expect("spec");
        assert_eq!(spec.replicas, Some(5));
        assert_eq!(spec.service_name.as_deref(), Some("demo-peers"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(
            spec.update_strategy.and_then(|u| u.type_).as_deref(),
            Some("OnDelete")
        );
        let claim = &spec.volume_claim_templates.expect("claims")[0];
        let claim_spec = claim.spec.as_ref().expect("claim spec");
        assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            claim_spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .expect("requests")["storage"]
                .0,
            "5Gi"
        );
        let template = spec.template;
        assert_eq!(
            template
                .metadata
                .expect("meta")
                .annotations
                .expect("annotations")[CONFIG_HASH_ANNOTATION],
            "abc"
        );
        let pod = template.spec.expect("pod");
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("sluice-broker:dev"));
        let security = container.security_context.as_ref().expect("security");
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(
            security.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(
            container
                .readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.as_deref()),
            Some("/readyz")
        );
        assert_eq!(
            pod.security_context
                .and_then(|s| s.seccomp_profile)
                .map(|p| p.type_),
            Some("RuntimeDefault".to_string())
        );
    }

    #[test]
    fn secrets_named_by_the_spec_are_mounted_and_passed_as_broker_flags() {
        let mut c = cluster();
        let plain = statefulset(&c, 3, "h");
        let pod = plain.spec.expect("spec").template.spec.expect("pod");
        assert_eq!(pod.volumes, None, "no Secret, no volume");
        c.spec.access_keys = Some(SecretFile {
            secret_name: "sluice-keys".into(),
            key: None,
        });
        c.spec.push_ca = Some(SecretFile {
            secret_name: "internal-ca".into(),
            key: Some("bundle.pem".into()),
        });
        let env = config_map(&c, "10.0.0.1:7070", 3).data.expect("data");
        assert_eq!(
            env["SLUICE_ACCESS_KEYS"],
            "/etc/sluice/access-keys/keys.json"
        );
        assert_eq!(env["SLUICE_PUSH_CA_FILE"], "/etc/sluice/push-ca/bundle.pem");
        let pod = statefulset(&c, 3, "h")
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod");
        let volumes = pod.volumes.expect("volumes");
        let secrets: Vec<(&str, &str)> = volumes
            .iter()
            .map(|v| {
                let secret = v.secret.as_ref().expect("a secret volume");
                (
                    v.name.as_str(),
                    secret.secret_name.as_deref().expect("secret name"),
                )
            })
            .collect();
        assert_eq!(
            secrets,
            vec![("access-keys", "sluice-keys"), ("push-ca", "internal-ca")]
        );
        let mounts = pod.containers[0].volume_mounts.clone().expect("mounts");
        assert!(mounts.iter().any(|m| m.name == "access-keys"
            && m.mount_path == "/etc/sluice/access-keys"
            && m.read_only == Some(true)));
    }

    #[test]
    fn at_most_one_broker_is_disrupted_at_a_time() {
        let spec = pdb(&cluster()).spec.expect("spec");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    }
}
