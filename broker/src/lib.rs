//! sluice-broker: durable queues over HTTP, every state change through openraft.
//!
//! A request travels down the module tree: [`http`] (one handler file per resource) →
//! [`raft`] (the replicated command, log store, state machine, network) → [`queue`] (the
//! queue semantics, pure and deterministic) → [`store`] (the segmented log on disk).
//! [`node`] ties a process together; [`server`] runs it.

#![forbid(unsafe_code)]

pub mod compat;
pub mod config;
pub mod console;
pub mod http;
pub mod metrics;
pub mod node;
pub mod partitions;
pub mod peer;
pub mod placement;
pub mod push;
pub mod queue;
pub mod raft;
pub mod server;
pub mod store;
pub mod topic;
pub mod xml;
