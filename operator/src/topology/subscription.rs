//! How a `Subscription` is declared on and removed from a broker: it names a Topic
//! resource, whose broker name it is declared under, and maybe a Secret holding its
//! push-signing key.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use sluice_client::ErrorCode;

use super::{Topology, broker_name};
use crate::broker::Broker;
use crate::context::{Context, Failure};
use crate::crd::{
    DeletionPolicy, EndpointSpec, ResourceStatus, Subscription, SubscriptionStatus, Topic,
    conditions,
};

/// What a subscription needs from the API server.
pub struct Resolved {
    /// The broker name of its topic.
    pub topic: String,
    pub secret: Option<String>,
}

/// The broker name of the Topic resource `name` in `namespace`, if it exists.
async fn topic_broker_name(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, kube::Error> {
    let topics: Api<Topic> = Api::namespaced(kube.clone(), namespace);
    Ok(topics.get_opt(name).await?.map(|t| t.broker_name()))
}

impl Subscription {
    pub fn broker_name(&self) -> String {
        broker_name(&self.spec.name, self.name_any())
    }

    /// Endpoint checks the broker would make too, so the reason is `InvalidEndpoint`.
    fn check_endpoint(&self) -> Result<(), Failure> {
        let invalid = |message: String| Failure::Invalid {
            reason: conditions::INVALID_ENDPOINT,
            message,
        };
        match &self.spec.endpoint {
            EndpointSpec::Http { url } => {
                let host = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"));
                match host {
                    None => Err(invalid(format!(
                        "endpoint.http.url {url:?}: the broker pushes to http:// and https:// URLs"
                    ))),
                    Some("") => Err(invalid(format!("endpoint.http.url {url:?} names no host"))),
                    Some(_) => Ok(()),
                }
            }
            EndpointSpec::Email { to } if !to.contains('@') => Err(invalid(format!(
                "endpoint.email.to {to:?} is not an email address"
            ))),
            _ => Ok(()),
        }
    }
}

impl Topology for Subscription {
    const KIND: &'static str = "Subscription";
    type Resolved = Resolved;
    type Status = SubscriptionStatus;

    fn cluster(&self) -> &str {
        &self.spec.cluster_ref.name
    }
    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }
    fn conditions(&self) -> Option<&ResourceStatus> {
        self.status.as_ref().map(|s| &s.common)
    }

    async fn resolve(&self, ctx: &Context) -> Result<Resolved, Failure> {
        let namespace = self.namespace().unwrap_or_default();
        let topic_ref = &self.spec.topic_ref.name;
        let topic = topic_broker_name(&ctx.kube, &namespace, topic_ref)
            .await?
            .ok_or_else(|| Failure::Pending {
                reason: conditions::TOPIC_NOT_FOUND,
                message: format!(
                    "Topic {topic_ref} does not exist in this namespace; create it or fix spec.topicRef.name"
                ),
            })?;
        let secret = match &self.spec.secret_ref {
            None => None,
            Some(selector) => {
                let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
                let missing = |what: String| Failure::Pending {
                    reason: "SecretNotFound",
                    message: what,
                };
                let secret = secrets
                    .get_opt(&selector.name)
                    .await?
                    .ok_or_else(|| missing(format!("Secret {} does not exist", selector.name)))?;
                let bytes = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&selector.key))
                    .ok_or_else(|| {
                        missing(format!(
                            "Secret {} has no key {}",
                            selector.name, selector.key
                        ))
                    })?;
                let text = String::from_utf8(bytes.0.clone()).map_err(|_| Failure::Invalid {
                    reason: "InvalidSecret",
                    message: format!(
                        "key {} of Secret {} is not UTF-8 text",
                        selector.key, selector.name
                    ),
                })?;
                Some(text)
            }
        };
        Ok(Resolved { topic, secret })
    }

    async fn resolve_for_removal(&self, ctx: &Context) -> Result<Option<Resolved>, Failure> {
        // The topic it was declared on, even if the Topic resource is gone.
        let declared_on = self.status.as_ref().and_then(|s| s.topic.clone());
        let topic = match declared_on {
            Some(topic) => Some(topic),
            None => {
                let namespace = self.namespace().unwrap_or_default();
                topic_broker_name(&ctx.kube, &namespace, &self.spec.topic_ref.name).await?
            }
        };
        Ok(topic.map(|topic| Resolved {
            topic,
            secret: None,
        }))
    }

    async fn declare<B: Broker>(
        &self,
        resolved: &Resolved,
        broker: &B,
    ) -> Result<SubscriptionStatus, Failure> {
        self.check_endpoint()?;
        let spec = self
            .spec
            .to_wire(resolved.secret.clone())
            .map_err(|message| Failure::Invalid {
                reason: "InvalidFilter",
                message,
            })?;
        let sub = broker
            .put_subscription(&resolved.topic, &self.broker_name(), &spec)
            .await
            .map_err(|e| match e.code() {
                Some(ErrorCode::TopicNotFound) => Failure::Pending {
                    reason: conditions::TOPIC_NOT_FOUND,
                    message: format!(
                        "topic {} is not on the broker yet (its Topic resource is not ready)",
                        resolved.topic
                    ),
                },
                _ => Failure::from_broker(self.cluster(), e),
            })?;
        Ok(SubscriptionStatus {
            common: ResourceStatus::default(),
            topic: Some(resolved.topic.clone()),
            delivered: Some(sub.counts.delivered),
            backlog: Some(sub.counts.backlog),
            retrying: Some(sub.counts.retrying),
            failed: Some(sub.counts.failed),
        })
    }

    async fn remove<B: Broker>(&self, resolved: &Resolved, broker: &B) -> Result<(), Failure> {
        super::removed(
            self.cluster(),
            broker
                .delete_subscription(&resolved.topic, &self.broker_name())
                .await,
        )
    }

    fn status_without_counts(&self, common: ResourceStatus) -> SubscriptionStatus {
        SubscriptionStatus {
            common,
            ..self.status.clone().unwrap_or_default()
        }
    }

    fn with_conditions(status: SubscriptionStatus, common: ResourceStatus) -> SubscriptionStatus {
        SubscriptionStatus { common, ..status }
    }
}
