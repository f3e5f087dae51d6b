//! sluice-broker: durable queues over HTTP, every state change through openraft.
//!
//! A request travels down the module tree: [`http`] (one handler file per resource) →
//! [`raft`] (the replicated command, log store, state machine, network) → [`queue`] (the
//! queue semantics, pure and deterministic) → [`store`] (the segmented log on disk).

#![forbid(unsafe_code)]

pub mod queue;
pub mod store;
pub mod raft;
