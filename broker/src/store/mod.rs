//! Storage: the segmented log that holds every Raft entry, and so every message body.

pub mod log;
