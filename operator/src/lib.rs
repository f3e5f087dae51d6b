//! sluice-operator: the CRD types of `sluice.dev/v1alpha1`, the controllers that turn
//! them into brokers and broker configuration, and what those controllers share.
//!
//! `crd` holds the types alone; `cluster` the SluiceCluster controller (pure builders
//! and a pure step planner, then the reconcile that applies them); `topology` the one
//! reconciler of Queue, Topic and Subscription; `broker` the broker calls behind a
//! trait; `lease` leader election.

#![forbid(unsafe_code)]

pub mod broker;
pub mod cluster;
pub mod context;
pub mod crd;
pub mod lease;
pub mod metrics;
pub mod topology;
