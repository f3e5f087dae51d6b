//! Prometheus metrics: requests and their latency, group commits (fsync time and batch
//! size), and each queue's depth, read from the state machine at scrape time.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::raft::state_machine::StateMachine;
use crate::store::log::CommitObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
    state: &'static str,
}

/// Every metric of a broker process.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram>,
    pub fsync_seconds: Histogram,
    pub commit_records: Histogram,
    pub commit_bytes: Counter,
    /// Time from proposing a command to its answer from the state machine, by kind.
    pub propose_seconds: Family<CommandLabels, Histogram>,
    queues: Arc<QueueDepths>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: &'static str,
}

/// Reads queue depths from the state machine on each scrape.
#[derive(Debug, Default)]
struct QueueDepths {
    groups: OnceLock<Vec<StateMachine>>,
}

impl Collector for QueueDepths {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(groups) = self.groups.get() else {
            return Ok(());
        };
        let mut rows: Vec<(String, [u64; 3])> = Vec::new();
        for sm in groups {
            let state = sm.read();
            rows.extend(state.queues.iter().map(|q| {
                let c = q.counts();
                (q.name.clone(), [c.visible, c.in_flight, c.delayed])
            }));
        }
        let mut family = encoder.encode_descriptor(
            "sluice_queue_messages",
            "Messages in each queue, by state.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (queue, counts) in rows {
            for (state, value) in ["visible", "in_flight", "delayed"].into_iter().zip(counts) {
                let labels = QueueLabels {
                    queue: queue.clone(),
                    state,
                };
                ConstGauge::new(value as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status.",
            requests.clone(),
        );
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            request_seconds.clone(),
        );
        let fsync_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register(
            "log_fsync_duration_seconds",
            "Time of one group commit's fdatasync.",
            fsync_seconds.clone(),
        );
        let commit_records = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "log_commit_batch_records",
            "Records (entries and markers) made durable by one group commit.",
            commit_records.clone(),
        );
        let commit_bytes = Counter::default();
        registry.register(
            "log_written_bytes",
            "Bytes appended to the log.",
            commit_bytes.clone(),
        );
        let propose_seconds = Family::<CommandLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "raft_propose_duration_seconds",
            "Time from proposing a command to the state machine's answer, by command.",
            propose_seconds.clone(),
        );
        let queues = Arc::new(QueueDepths::default());
        registry.register_collector(Box::new(queues.clone()));
        Self {
            registry,
            requests,
            request_seconds,
            fsync_seconds,
            commit_records,
            commit_bytes,
            propose_seconds,
            queues,
        }
    }

    /// Makes queue depths part of every scrape.
    pub fn watch_queues(&self, groups: Vec<StateMachine>) {
        let _ = self.queues.groups.set(groups);
    }

    /// The Prometheus (OpenMetrics) text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, records: usize, bytes: usize, sync_time: Duration) {
        self.fsync_seconds.observe(sync_time.as_secs_f64());
        self.commit_records.observe(records as f64);
        self.commit_bytes.inc_by(bytes as u64);
    }
}
