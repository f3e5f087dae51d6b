//! The `SluiceCluster` controller: applies the owned objects, then takes one step of
//! [`plan`] (scale, membership, roll) and reports the cluster in status.

pub mod plan;
pub mod resources;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_client::{ClusterStatus, MemberRole};

use crate::broker::Broker;
use crate::context::{Context, Failure, client};
use crate::crd::{ClusterMember, SluiceCluster, conditions, set_condition};
use crate::topology::{FIELD_MANAGER, is_paused, patch_status, publish};
use plan::{Action, Observed, PodView, Step, node_id, plan};
use resources::{CLIENT_PORT, Names, PEER_PORT};

/// How soon a cluster that is changing is looked at again.
const STEP_INTERVAL: Duration = Duration::from_secs(3);
/// How often a settled cluster is looked at again.
const SETTLED_INTERVAL: Duration = Duration::from_secs(30);

pub async fn reconcile(
    cluster: Arc<SluiceCluster>,
    ctx: Arc<Context>,
) -> Result<ControllerAction, Failure> {
    let started = Instant::now();
    let result = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics.reconciled("SluiceCluster", started.elapsed());
    if let Err(e) = &result {
        ctx.metrics.failed("SluiceCluster", e.reason());
        // Say why in status too, where a person looks first (best effort: the write
        // may fail for the same reason).
        let mut status = cluster.status.clone().unwrap_or_default();
        set_condition(
            &mut status.conditions,
            conditions::READY,
            false,
            e.reason(),
            e.to_string(),
            cluster.meta().generation,
        );
        let api: Api<SluiceCluster> =
            Api::namespaced(ctx.kube.clone(), &cluster.namespace().unwrap_or_default());
        let _ = patch_status(&api, &*cluster, &status).await;
    }
    result
}

pub fn error_policy(
    cluster: Arc<SluiceCluster>,
    error: &Failure,
    _ctx: Arc<Context>,
) -> ControllerAction {
    tracing::warn!(cluster = %cluster.name_any(), %error, "reconcile failed");
    ControllerAction::requeue(error.retry_after())
}

async fn apply<K>(api: &Api<K>, object: &K) -> Result<K, Failure>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    Ok(api
        .patch(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?)
}

async fn reconcile_inner(
    cluster: &SluiceCluster,
    ctx: &Context,
) -> Result<ControllerAction, Failure> {
    let namespace = cluster.namespace().unwrap_or_default();
    let clusters: Api<SluiceCluster> = Api::namespaced(ctx.kube.clone(), &namespace);
    let mut status = cluster.status.clone().unwrap_or_default();
    if is_paused(cluster) {
        set_condition(
            &mut status.conditions,
            conditions::PAUSED,
            true,
            conditions::PAUSED,
            "annotation sluice.dev/paused=true: the operator leaves this cluster alone",
            cluster.meta().generation,
        );
        patch_status(&clusters, cluster, &status).await?;
        return Ok(ControllerAction::await_change());
    }
    status.conditions.retain(|c| c.type_ != conditions::PAUSED);
    if cluster.meta().deletion_timestamp.is_some() {
        // Owned objects go with it by garbage collection.
        return Ok(ControllerAction::await_change());
    }
    let names = Names::of(cluster);
    let kube = ctx.kube.clone();
    let services: Api<Service> = Api::namespaced(kube.clone(), &namespace);
    let statefulsets: Api<StatefulSet> = Api::namespaced(kube.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(kube.clone(), &namespace);

    // The objects that do not depend on the step.
    apply(
        &Api::<ServiceAccount>::namespaced(kube.clone(), &namespace),
        &resources::service_account(cluster),
    )
    .await?;
    apply(&services, &resources::peer_service(cluster)).await?;
    let client_service = apply(&services, &resources::client_service(cluster)).await?;
    apply_pdb(cluster, ctx, &namespace).await?;

    let existing = statefulsets.get_opt(&names.statefulset()).await?;
    let current = existing
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    let pod_count = current.unwrap_or(0).max(cluster.spec.replicas);
    // A stable address per pod, before any pod needs it.
    let mut peer_addresses = std::collections::BTreeMap::new();
    let mut client_urls = Vec::new();
    for ordinal in 0..pod_count {
        let service = apply(&services, &resources::pod_service(cluster, ordinal)).await?;
        if let Some(ip) = service
            .spec
            .and_then(|s| s.cluster_ip)
            .filter(|ip| ip != "None")
        {
            peer_addresses.insert(ordinal, format!("{ip}:{PEER_PORT}"));
            client_urls.push(format!("http://{ip}:{CLIENT_PORT}"));
        }
    }
    let Some(bootstrap) = peer_addresses.get(&0).cloned() else {
        return Err(Failure::BrokerUnreachable {
            cluster: names.cluster.clone(),
            detail: "the Service of pod 0 has no cluster IP yet".into(),
        });
    };
    let config_maps = Api::<ConfigMap>::namespaced(kube.clone(), &namespace);
    let made_with = config_maps.get_opt(&names.config_map()).await?;
    let data_groups = resources::data_groups(cluster, made_with.as_ref());
    let config = resources::config_map(cluster, &bootstrap, data_groups);
    let hash = resources::config_hash(&config);
    apply(&config_maps, &config).await?;

    // What the pods and the brokers say.
    let pod_list = pods
        .list(&ListParams::default().labels(&resources::selector_string(cluster)))
        .await?;
    let broker = match &ctx.broker_url {
        Some(url) => client(&names.cluster, &[url.as_str()])?,
        None => {
            let urls: Vec<&str> = client_urls.iter().map(String::as_str).collect();
            client(&names.cluster, &urls)?
        }
    };
    let cluster_status = Broker::cluster(&broker).await.ok();
    // The pod template does not depend on the replicas, which the step decides below.
    let mut wanted = resources::statefulset(cluster, cluster.spec.replicas, &hash);
    let observed = Observed {
        statefulset_settled: existing
            .as_ref()
            .is_some_and(|s| statefulset_settled(s, &wanted)),
        desired: cluster.spec.replicas,
        statefulset_replicas: current,
        update_revision: existing
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.update_revision.clone()),
        pods: pod_list.items.iter().filter_map(pod_view).collect(),
        members: cluster_status.as_ref().map(|c| c.members.clone()),
        peer_addresses,
    };
    let step = plan(&observed);
    if let Some(spec) = wanted.spec.as_mut() {
        spec.replicas = Some(step.statefulset_replicas);
    }
    apply(&statefulsets, &wanted).await?;
    let outcome = take(&step, cluster, &broker, &pods).await;
    clean_up_beyond(
        cluster,
        ctx,
        &namespace,
        step.statefulset_replicas,
        &observed,
    )
    .await?;
    own_claims(cluster, ctx, &namespace).await?;

    // Status.
    status.replicas = i32::try_from(observed.pods.len()).unwrap_or(i32::MAX);
    status.ready_replicas =
        i32::try_from(observed.pods.iter().filter(|p| p.ready).count()).unwrap_or(i32::MAX);
    status.selector = resources::selector_string(cluster);
    status.data_groups = Some(data_groups);
    status.observed_generation = cluster.meta().generation;
    status.endpoint = client_service
        .spec
        .and_then(|s| s.cluster_ip)
        .map(|ip| format!("http://{ip}:{CLIENT_PORT}"));
    if let Some(c) = &cluster_status {
        status.members = members(c, &names, &observed.peer_addresses);
        status.leader = status
            .members
            .iter()
            .find(|m| m.leader)
            .map(|m| m.pod.clone());
    }
    let settled = matches!(step.action, Action::Done);
    // The image every broker runs, once all of them run it.
    let running: Vec<Option<&str>> = pod_list
        .items
        .iter()
        .map(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.as_deref())
        })
        .collect();
    if settled
        && running
            .iter()
            .all(|i| *i == Some(cluster.spec.image.as_str()))
    {
        status.image = Some(cluster.spec.image.clone());
    }
    let (ready, reason, message) = match (&step.action, &outcome) {
        (_, Err(failure)) => (false, failure.reason(), failure.to_string()),
        (Action::Done, Ok(())) => (
            true,
            "Running",
            format!("{} brokers ready, one Raft cluster", cluster.spec.replicas),
        ),
        (Action::Blocked(why), Ok(())) => (false, "Blocked", why.clone()),
        (Action::Wait(why), Ok(())) => (false, conditions::PROGRESSING, why.clone()),
        (Action::AddMember { id, .. }, Ok(())) => {
            (false, conditions::PROGRESSING, format!("added node {id}"))
        }
        (Action::RemoveMember { id }, Ok(())) => {
            (false, conditions::PROGRESSING, format!("removed node {id}"))
        }
        (Action::Roll { ordinal, .. }, Ok(())) => (
            false,
            "Rolling",
            format!("restarted pod {} on the new revision", names.pod(*ordinal)),
        ),
    };
    let previous = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::READY)
        .map(|c| c.reason.clone());
    set_condition(
        &mut status.conditions,
        conditions::READY,
        ready,
        reason,
        message.clone(),
        cluster.meta().generation,
    );
    patch_status(&clusters, cluster, &status).await?;
    if previous.as_deref() != Some(reason) || !matches!(step.action, Action::Wait(_) | Action::Done)
    {
        let type_ = if matches!(step.action, Action::Blocked(_)) || outcome.is_err() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(
            ctx,
            cluster,
            Event {
                type_,
                reason: reason.into(),
                note: Some(message),
                action: "Reconcile".into(),
                secondary: None,
            },
        )
        .await;
    }
    Ok(ControllerAction::requeue(if settled {
        SETTLED_INTERVAL
    } else {
        STEP_INTERVAL
    }))
}

/// True when `existing` has the pod template of `wanted` and its controller has seen
/// its latest spec, so its `updateRevision` is the revision of that template.
fn statefulset_settled(existing: &StatefulSet, wanted: &StatefulSet) -> bool {
    let template = |s: &StatefulSet| {
        let t = s.spec.as_ref().map(|s| &s.template);
        let image = t
            .and_then(|t| t.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone());
        let hash = t
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(resources::CONFIG_HASH_ANNOTATION).cloned());
        (image, hash)
    };
    let seen = existing.status.as_ref().and_then(|s| s.observed_generation)
        >= existing.metadata.generation;
    seen && template(existing) == template(wanted)
}

fn pod_view(pod: &Pod) -> Option<PodView> {
    let name = pod.name_any();
    let ordinal: i32 = name.rsplit('-').next()?.parse().ok()?;
    let status = pod.status.as_ref();
    let running = pod.meta().deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status.and_then(|s| s.pod_ip.as_ref()).is_some();
    let ready = running
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(PodView {
        ordinal,
        running,
        ready,
        revision: pod.labels().get("controller-revision-hash").cloned(),
    })
}

/// Carries out a step's membership change or pod action.
async fn take(
    step: &Step,
    cluster: &SluiceCluster,
    broker: &sluice_client::Client,
    pods: &Api<Pod>,
) -> Result<(), Failure> {
    let name = cluster.name_any();
    let failure = |e| Failure::from_broker(&name, e);
    match &step.action {
        Action::AddMember { id, peer_address } => {
            tracing::info!(cluster = %name, id, %peer_address, "adding a member");
            broker
                .add_member(*id, peer_address)
                .await
                .map_err(failure)?;
        }
        Action::RemoveMember { id } => {
            tracing::info!(cluster = %name, id, "removing a member");
            Broker::remove_member(broker, *id).await.map_err(failure)?;
        }
        Action::Roll { ordinal, id } => {
            // Leadership first, so the restart costs no election; a lone broker has
            // no one to hand it to.
            if cluster.spec.replicas > 1 {
                Broker::drain_member(broker, *id).await.map_err(failure)?;
            }
            let pod = Names::of(cluster).pod(*ordinal);
            tracing::info!(cluster = %name, %pod, "restarting on the new revision");
            pods.delete(&pod, &DeleteParams::default()).await?;
        }
        Action::Wait(_) | Action::Blocked(_) | Action::Done => {}
    }
    Ok(())
}

/// Makes the cluster own its brokers' volume claims (which the StatefulSet makes but
/// never deletes), so they go with it, unless `storage.retainClaims` says otherwise.
async fn own_claims(
    cluster: &SluiceCluster,
    ctx: &Context,
    namespace: &str,
) -> Result<(), Failure> {
    if cluster.spec.storage.retain_claims {
        return Ok(());
    }
    let Some(owner) = cluster.controller_owner_ref(&()) else {
        return Ok(());
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.kube.clone(), namespace);
    let list = claims
        .list(&ListParams::default().labels(&resources::selector_string(cluster)))
        .await?;
    for claim in list.items {
        let owned = claim.owner_references().iter().any(|o| o.uid == owner.uid);
        if owned {
            continue;
        }
        let patch = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim.name_any(), "ownerReferences": [owner]},
        });
        claims
            .patch(
                &claim.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
    }
    Ok(())
}

/// After a shrink: the Services and volume claims of pods that are gone and whose nodes
/// left Raft, so a later growth starts those nodes afresh.
async fn clean_up_beyond(
    cluster: &SluiceCluster,
    ctx: &Context,
    namespace: &str,
    replicas: i32,
    observed: &Observed,
) -> Result<(), Failure> {
    let Some(members) = &observed.members else {
        return Ok(());
    };
    let names = Names::of(cluster);
    let services: Api<Service> = Api::namespaced(ctx.kube.clone(), namespace);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.kube.clone(), namespace);
    let claim_list = claims
        .list(&ListParams::default().labels(&resources::selector_string(cluster)))
        .await?;
    for claim in claim_list.items {
        let claim_name = claim.name_any();
        let Some(ordinal) = claim_name
            .rsplit('-')
            .next()
            .and_then(|o| o.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = ordinal >= replicas
            && !observed.pods.iter().any(|p| p.ordinal == ordinal)
            && !members.iter().any(|m| m.id == node_id(ordinal));
        if gone && claim_name == names.claim(ordinal) {
            tracing::info!(claim = %claim_name, "deleting the volume claim of a removed broker");
            claims.delete(&claim_name, &DeleteParams::default()).await?;
            if services
                .get_opt(&names.pod_service(ordinal))
                .await?
                .is_some()
            {
                services
                    .delete(&names.pod_service(ordinal), &DeleteParams::default())
                    .await?;
            }
        }
    }
    Ok(())
}

/// The PodDisruptionBudget as policy/v1, or policy/v1beta1 where the server lacks v1.
async fn apply_pdb(cluster: &SluiceCluster, ctx: &Context, namespace: &str) -> Result<(), Failure> {
    let pdb = resources::pdb(cluster);
    if ctx.capabilities.pdb_v1 {
        apply(
            &Api::<PodDisruptionBudget>::namespaced(ctx.kube.clone(), namespace),
            &pdb,
        )
        .await?;
        return Ok(());
    }
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "policy",
        "v1beta1",
        "PodDisruptionBudget",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.kube.clone(), namespace, &resource);
    let mut value = serde_json::to_value(&pdb).map_err(|e| Failure::Invalid {
        reason: "Internal",
        message: e.to_string(),
    })?;
    value["apiVersion"] = "policy/v1beta1".into();
    value["kind"] = "PodDisruptionBudget".into();
    api.patch(
        &pdb.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await?;
    Ok(())
}

/// The Raft members with the pods they run in (found by their stable peer address).
fn members(
    status: &ClusterStatus,
    names: &Names,
    peers: &std::collections::BTreeMap<i32, String>,
) -> Vec<ClusterMember> {
    status
        .members
        .iter()
        .map(|m| {
            let ordinal = peers
                .iter()
                .find(|(_, a)| **a == m.peer_address)
                .map(|(o, _)| *o);
            ClusterMember {
                id: m.id,
                pod: ordinal
                    .map(|o| names.pod(o))
                    .unwrap_or_else(|| format!("(node {})", m.id)),
                role: match m.role {
                    MemberRole::Voter => "voter".into(),
                    MemberRole::Learner => "learner".into(),
                },
                peer_address: m.peer_address.clone(),
                leader: m.leader,
                lag: m.lag,
            }
        })
        .collect()
}
