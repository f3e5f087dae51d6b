//! One reconciler for `Queue`, `Topic` and `Subscription`: each kind says how to declare
//! itself on a broker and how to remove itself ([`Topology`]); this module does the rest
//! the same way for all three: the finalizer, the deletion policy, the `Ready` condition,
//! Events, the periodic refresh that repairs drift and updates counts, and pausing.

mod queue;
mod subscription;
mod topic;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::broker::Broker;
use crate::context::{Context, Failure};
use crate::crd::{DeletionPolicy, ResourceStatus, SluiceCluster, conditions, set_condition};

/// The finalizer that lets the operator delete the broker's side first.
pub const FINALIZER: &str = "sluice.dev/cleanup";
/// Annotation that stops the operator from touching a resource (`"true"`).
pub const PAUSED_ANNOTATION: &str = "sluice.dev/paused";
/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "sluice-operator";
/// How often a ready resource is looked at again: counts in status, drift repaired.
pub const REFRESH: Duration = Duration::from_secs(30);
/// A cleanup whose brokers stay unreachable this long after deletion began gives up
/// (with a Warning event) rather than wedge the namespace.
const CLEANUP_GIVE_UP: Duration = Duration::from_secs(120);

/// A kind the generic reconciler handles.
pub trait Topology:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The kind, for metrics and logs.
    const KIND: &'static str;
    /// What is read from the API server before declaring (a subscription's topic and
    /// secret).
    type Resolved: Send + Sync;
    /// The kind's status, counts included.
    type Status: Serialize + Send + Sync;

    fn cluster(&self) -> &str;
    fn deletion_policy(&self) -> DeletionPolicy;
    fn conditions(&self) -> Option<&ResourceStatus>;

    fn resolve(
        &self,
        ctx: &Context,
    ) -> impl Future<Output = Result<Self::Resolved, Failure>> + Send;

    /// What removal needs, when it can still be known; `None`: nothing to remove.
    fn resolve_for_removal(
        &self,
        ctx: &Context,
    ) -> impl Future<Output = Result<Option<Self::Resolved>, Failure>> + Send {
        async move { self.resolve(ctx).await.map(Some) }
    }

    /// Makes the broker match the spec (creating what is missing) and reads the counts.
    fn declare<B: Broker>(
        &self,
        resolved: &Self::Resolved,
        broker: &B,
    ) -> impl Future<Output = Result<Self::Status, Failure>> + Send;

    /// Deletes the broker's side; what is already gone counts as removed.
    fn remove<B: Broker>(
        &self,
        resolved: &Self::Resolved,
        broker: &B,
    ) -> impl Future<Output = Result<(), Failure>> + Send;

    /// The status to write when declaring failed: the conditions and what was known.
    fn status_without_counts(&self, common: ResourceStatus) -> Self::Status;

    /// Puts the conditions into a status `declare` returned.
    fn with_conditions(status: Self::Status, common: ResourceStatus) -> Self::Status;
}

/// The broker-side name: `spec.name`, else `metadata.name`.
pub fn broker_name(spec_name: &Option<String>, meta_name: String) -> String {
    spec_name.clone().unwrap_or(meta_name)
}

/// The outcome of a broker delete: what is already gone counts as removed.
pub fn removed(cluster: &str, result: Result<(), sluice_client::Error>) -> Result<(), Failure> {
    match result {
        Ok(()) => Ok(()),
        Err(sluice_client::Error::Api { status: 404, .. }) => Ok(()),
        Err(e) => Err(Failure::from_broker(cluster, e)),
    }
}

/// Partitions only grow: a spec asking for fewer than the broker has (as last reported
/// in status) is refused with a reason, before the broker is asked.
pub fn check_partitions(what: &str, wanted: Option<u32>, had: Option<u32>) -> Result<(), Failure> {
    match (wanted, had) {
        (Some(wanted), Some(had)) if wanted < had => Err(Failure::Invalid {
            reason: conditions::PARTITIONS_DECREASED,
            message: format!(
                "spec.partitions is {wanted} but {what} has {had}; partitions may only grow"
            ),
        }),
        _ => Ok(()),
    }
}

pub fn is_paused<K: Resource>(obj: &K) -> bool {
    obj.annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The reconcile of every topology kind.
pub async fn reconcile<T: Topology>(obj: Arc<T>, ctx: Arc<Context>) -> Result<Action, Failure> {
    let started = Instant::now();
    let result = reconcile_inner(obj, &ctx).await;
    ctx.metrics.reconciled(T::KIND, started.elapsed());
    if let Err(e) = &result {
        ctx.metrics.failed(T::KIND, e.reason());
    }
    result
}

/// What the controller does after a reconcile failed outright (the API server refused a
/// write): try again after a while.
pub fn error_policy<T: Topology>(obj: Arc<T>, error: &Failure, _ctx: Arc<Context>) -> Action {
    tracing::warn!(kind = T::KIND, name = %obj.name_any(), %error, "reconcile failed");
    Action::requeue(error.retry_after())
}

async fn reconcile_inner<T: Topology>(obj: Arc<T>, ctx: &Context) -> Result<Action, Failure> {
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<T> = Api::namespaced(ctx.kube.clone(), &namespace);
    if is_paused(&*obj) && obj.meta().deletion_timestamp.is_none() {
        let mut common = obj.conditions().cloned().unwrap_or_default();
        set_condition(
            &mut common.conditions,
            conditions::PAUSED,
            true,
            conditions::PAUSED,
            format!("annotation {PAUSED_ANNOTATION}=true: the operator leaves this resource alone"),
            obj.meta().generation,
        );
        patch_status(&api, &*obj, &obj.status_without_counts(common)).await?;
        return Ok(Action::await_change());
    }
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            finalizer::Event::Apply(obj) => apply(&api, obj, ctx).await,
            finalizer::Event::Cleanup(obj) => cleanup(obj, ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
            Failure::Kube(e)
        }
        other => Failure::Invalid {
            reason: "FinalizerError",
            message: other.to_string(),
        },
    })
}

async fn apply<T: Topology>(api: &Api<T>, obj: Arc<T>, ctx: &Context) -> Result<Action, Failure> {
    let namespace = obj.namespace().unwrap_or_default();
    let outcome = async {
        let resolved = obj.resolve(ctx).await?;
        let broker = ctx.broker_for(&namespace, obj.cluster()).await?;
        obj.declare(&resolved, &broker).await
    }
    .await;
    let mut common = obj.conditions().cloned().unwrap_or_default();
    common.conditions.retain(|c| c.type_ != conditions::PAUSED);
    common.observed_generation = obj.meta().generation;
    let previous_reason = common
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::READY)
        .map(|c| c.reason.clone());
    let (status, action, event) = match outcome {
        Ok(status) => {
            set_condition(
                &mut common.conditions,
                conditions::READY,
                true,
                conditions::RECONCILED,
                format!("the broker has this {} as the spec says", T::KIND),
                obj.meta().generation,
            );
            let event = Event {
                type_: EventType::Normal,
                reason: conditions::RECONCILED.into(),
                note: Some(format!("{} declared on cluster {}", T::KIND, obj.cluster())),
                action: "Declare".into(),
                secondary: None,
            };
            (
                T::with_conditions(status, common),
                Action::requeue(REFRESH),
                event,
            )
        }
        Err(failure) => {
            if let Failure::Kube(_) = failure {
                return Err(failure);
            }
            ctx.metrics.failed(T::KIND, failure.reason());
            set_condition(
                &mut common.conditions,
                conditions::READY,
                false,
                failure.reason(),
                failure.to_string(),
                obj.meta().generation,
            );
            let event = Event {
                type_: EventType::Warning,
                reason: failure.reason().into(),
                note: Some(failure.to_string()),
                action: "Declare".into(),
                secondary: None,
            };
            (
                obj.status_without_counts(common),
                Action::requeue(failure.retry_after()),
                event,
            )
        }
    };
    patch_status(api, &*obj, &status).await?;
    // An Event when the outcome changes, not on every refresh.
    if previous_reason.as_deref() != Some(event.reason.as_str()) {
        publish(ctx, &*obj, event).await;
    }
    Ok(action)
}

async fn cleanup<T: Topology>(obj: Arc<T>, ctx: &Context) -> Result<Action, Failure> {
    let name = obj.name_any();
    if obj.deletion_policy() == DeletionPolicy::Retain {
        tracing::info!(kind = T::KIND, %name, "deletionPolicy Retain: left on the broker");
        return Ok(Action::await_change());
    }
    let namespace = obj.namespace().unwrap_or_default();
    // A cluster that is gone or going takes its queues with it: nothing to delete.
    let clusters: Api<SluiceCluster> = Api::namespaced(ctx.kube.clone(), &namespace);
    match clusters.get_opt(obj.cluster()).await? {
        None => return Ok(Action::await_change()),
        Some(c) if c.meta().deletion_timestamp.is_some() => return Ok(Action::await_change()),
        Some(_) => {}
    }
    let outcome = async {
        let Some(resolved) = obj.resolve_for_removal(ctx).await? else {
            return Ok(());
        };
        let broker = ctx.broker_for(&namespace, obj.cluster()).await?;
        obj.remove(&resolved, &broker).await
    }
    .await;
    match outcome {
        Ok(()) => Ok(Action::await_change()),
        Err(failure @ Failure::BrokerUnreachable { .. })
            if deleting_for(&*obj) > CLEANUP_GIVE_UP =>
        {
            publish(
                ctx,
                &*obj,
                Event {
                    type_: EventType::Warning,
                    reason: "CleanupAbandoned".into(),
                    note: Some(format!(
                        "{failure}; gave up after {}s so the resource can go; the broker may still hold it",
                        CLEANUP_GIVE_UP.as_secs()
                    )),
                    action: "Delete".into(),
                    secondary: None,
                },
            )
            .await;
            Ok(Action::await_change())
        }
        Err(failure) => Err(failure),
    }
}

fn deleting_for<K: Resource>(obj: &K) -> Duration {
    obj.meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| {
            let since = k8s_openapi::jiff::Timestamp::now().duration_since(t.0);
            Duration::try_from(since).unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Writes the status subresource with a server-side apply patch by the operator's field
/// manager.
pub async fn patch_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<(), Failure>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Publishes an Event about `obj`; a failure to do so is logged, never fatal.
pub async fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, event: Event) {
    let recorder = Recorder::new(ctx.kube.clone(), ctx.reporter.clone());
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an Event");
    }
}

#[cfg(test)]
mod tests;
