//! Queue attributes as the state machine keeps them, and their validation.
//!
//! The wire types live in sluice-client; these are the replicated (log and snapshot)
//! forms, so the on-disk format does not move when the JSON API grows.

use serde::{Deserialize, Serialize};
use sluice_client::{ApiError, DeadLetter, ErrorCode, QueueAttributes, QueueAttributesUpdate};
use sluice_client::{limits, names};

/// A queue's resolved attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub visibility_seconds: u32,
    pub delay_seconds: u32,
    pub retention_seconds: u32,
    pub max_message_bytes: u32,
    pub receive_wait_seconds: u32,
    pub fifo: bool,
    pub content_dedup: bool,
    pub dead_letter: Option<DeadLetterConfig>,
    pub partitions: u32,
    /// The queues that may use this one as their dead-letter queue; `None`: any.
    pub redrive_allow: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterConfig {
    pub queue: String,
    pub max_receives: u32,
}

/// A validated change of attributes; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    pub visibility_seconds: Option<u32>,
    pub delay_seconds: Option<u32>,
    pub retention_seconds: Option<u32>,
    pub max_message_bytes: Option<u32>,
    pub receive_wait_seconds: Option<u32>,
    pub fifo: Option<bool>,
    pub content_dedup: Option<bool>,
    pub dead_letter: Option<Option<DeadLetterConfig>>,
    pub partitions: Option<u32>,
    pub redrive_allow: Option<Option<Vec<String>>>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        let d = QueueAttributes::default();
        Self {
            visibility_seconds: d.visibility_seconds,
            delay_seconds: d.delay_seconds,
            retention_seconds: d.retention_seconds,
            max_message_bytes: d.max_message_bytes,
            receive_wait_seconds: d.receive_wait_seconds,
            fifo: d.fifo,
            content_dedup: d.content_dedup,
            dead_letter: None,
            partitions: d.partitions,
            redrive_allow: None,
        }
    }
}

/// Queues a `redriveAllow` may list, as SQS allows.
const REDRIVE_ALLOW_MAX: usize = 10;

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidAttribute, message)
}

fn check_range(name: &str, value: Option<u32>, min: u32, max: u32) -> Result<(), ApiError> {
    match value {
        Some(v) if v < min || v > max => Err(invalid(format!(
            "{name} is {v}; it must be between {min} and {max}"
        ))),
        _ => Ok(()),
    }
}

impl ConfigUpdate {
    /// Checks every range and name of a `PUT` body; what depends on the queue's current
    /// state (immutable attributes, the dead-letter queue's existence) is checked on apply.
    pub fn from_wire(update: &QueueAttributesUpdate) -> Result<Self, ApiError> {
        use limits::*;
        check_range(
            "visibilitySeconds",
            update.visibility_seconds,
            0,
            VISIBILITY_SECONDS_MAX,
        )?;
        check_range("delaySeconds", update.delay_seconds, 0, DELAY_SECONDS_MAX)?;
        check_range(
            "retentionSeconds",
            update.retention_seconds,
            RETENTION_SECONDS_MIN,
            RETENTION_SECONDS_MAX,
        )?;
        check_range(
            "maxMessageBytes",
            update.max_message_bytes,
            MAX_MESSAGE_BYTES_MIN,
            MAX_MESSAGE_BYTES_MAX,
        )?;
        check_range(
            "receiveWaitSeconds",
            update.receive_wait_seconds,
            0,
            RECEIVE_WAIT_SECONDS_MAX,
        )?;
        check_range("partitions", update.partitions, 1, PARTITIONS_MAX)?;
        let dead_letter = match &update.dead_letter {
            None => None,
            Some(None) => Some(None),
            Some(Some(DeadLetter {
                queue,
                max_receives,
            })) => {
                names::validate_name("dead-letter queue", queue).map_err(invalid)?;
                check_range(
                    "deadLetter.maxReceives",
                    Some(*max_receives),
                    1,
                    MAX_RECEIVES_MAX,
                )?;
                Some(Some(DeadLetterConfig {
                    queue: queue.clone(),
                    max_receives: *max_receives,
                }))
            }
        };
        if let Some(Some(sources)) = &update.redrive_allow {
            if sources.len() > REDRIVE_ALLOW_MAX {
                return Err(invalid(format!(
                    "redriveAllow lists {} queues; the limit is {REDRIVE_ALLOW_MAX}",
                    sources.len()
                )));
            }
            for source in sources {
                names::validate_name("redriveAllow queue", source).map_err(invalid)?;
            }
        }
        Ok(Self {
            visibility_seconds: update.visibility_seconds,
            delay_seconds: update.delay_seconds,
            retention_seconds: update.retention_seconds,
            max_message_bytes: update.max_message_bytes,
            receive_wait_seconds: update.receive_wait_seconds,
            fifo: update.fifo,
            content_dedup: update.content_dedup,
            dead_letter,
            partitions: update.partitions,
            redrive_allow: update.redrive_allow.clone(),
        })
    }
}

impl QueueConfig {
    /// The attributes of a new queue: defaults, overridden by the update.
    pub fn create(update: &ConfigUpdate) -> Result<Self, ApiError> {
        let base = QueueConfig {
            fifo: update.fifo.unwrap_or(false),
            ..QueueConfig::default()
        };
        base.change(update)
    }

    /// The attributes after an update of an existing queue. `fifo` is immutable and
    /// `partitions` may only grow: either refused with 409.
    pub fn change(&self, update: &ConfigUpdate) -> Result<Self, ApiError> {
        if let Some(fifo) = update.fifo
            && fifo != self.fifo
        {
            return Err(ApiError::new(
                ErrorCode::ImmutableAttribute,
                format!(
                    "fifo cannot change after creation (the queue has fifo={}); create a new queue",
                    self.fifo
                ),
            ));
        }
        if let Some(partitions) = update.partitions
            && partitions < self.partitions
        {
            return Err(ApiError::new(
                ErrorCode::ImmutableAttribute,
                format!(
                    "partitions may only grow: the queue has {}, asked for {partitions}",
                    self.partitions
                ),
            ));
        }
        let next = QueueConfig {
            visibility_seconds: update.visibility_seconds.unwrap_or(self.visibility_seconds),
            delay_seconds: update.delay_seconds.unwrap_or(self.delay_seconds),
            retention_seconds: update.retention_seconds.unwrap_or(self.retention_seconds),
            max_message_bytes: update.max_message_bytes.unwrap_or(self.max_message_bytes),
            receive_wait_seconds: update
                .receive_wait_seconds
                .unwrap_or(self.receive_wait_seconds),
            fifo: self.fifo,
            content_dedup: update.content_dedup.unwrap_or(self.content_dedup),
            dead_letter: update
                .dead_letter
                .clone()
                .unwrap_or_else(|| self.dead_letter.clone()),
            partitions: update.partitions.unwrap_or(self.partitions),
            redrive_allow: update
                .redrive_allow
                .clone()
                .unwrap_or_else(|| self.redrive_allow.clone()),
        };
        if next.content_dedup && !next.fifo {
            return Err(invalid(
                "contentDedup applies to FIFO queues only; set fifo: true at creation".into(),
            ));
        }
        Ok(next)
    }

    pub fn to_wire(&self) -> QueueAttributes {
        QueueAttributes {
            visibility_seconds: self.visibility_seconds,
            delay_seconds: self.delay_seconds,
            retention_seconds: self.retention_seconds,
            max_message_bytes: self.max_message_bytes,
            receive_wait_seconds: self.receive_wait_seconds,
            fifo: self.fifo,
            content_dedup: self.content_dedup,
            dead_letter: self.dead_letter.as_ref().map(|d| DeadLetter {
                queue: d.queue.clone(),
                max_receives: d.max_receives,
            }),
            partitions: self.partitions,
            redrive_allow: self.redrive_allow.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_with_the_field_named() {
        let err = ConfigUpdate::from_wire(&QueueAttributesUpdate {
            visibility_seconds: Some(50_000),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidAttribute);
        assert!(err.message.contains("visibilitySeconds"));
        let err = ConfigUpdate::from_wire(&QueueAttributesUpdate {
            retention_seconds: Some(10),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.message.contains("retentionSeconds"));
    }

    #[test]
    fn fifo_is_immutable_and_partitions_only_grow() {
        let config = QueueConfig::create(&ConfigUpdate {
            fifo: Some(true),
            partitions: Some(2),
            ..Default::default()
        })
        .expect("valid");
        assert!(config.fifo);
        let err = config
            .change(&ConfigUpdate {
                fifo: Some(false),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ImmutableAttribute);
        let err = config
            .change(&ConfigUpdate {
                partitions: Some(1),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ImmutableAttribute);
        let grown = config
            .change(&ConfigUpdate {
                partitions: Some(4),
                visibility_seconds: Some(5),
                ..Default::default()
            })
            .expect("grow");
        assert_eq!(grown.partitions, 4);
        assert_eq!(grown.visibility_seconds, 5);
    }

    #[test]
    fn content_dedup_needs_fifo() {
        let err = QueueConfig::create(&ConfigUpdate {
            content_dedup: Some(true),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidAttribute);
    }
}
