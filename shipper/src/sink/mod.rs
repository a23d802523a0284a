//! Sending to CloudWatch Logs: one PutLogEvents per spool chunk, group/stream creation,
//! retry forever on transient errors, bisection of invalid batches, dead letters.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::spool::Batch;
use crate::telemetry::{DropReason, Metrics};

/// Tunables.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// First retry delay.
    pub backoff_base: Duration,
    /// Largest retry delay (full jitter below it).
    pub backoff_cap: Duration,
    /// Per-call timeout.
    pub request_timeout: Duration,
    /// Where rejected events are written, one JSON object per line.
    pub dead_letter_dir: PathBuf,
    /// Log groups created per second at most (CreateLogGroup is 10 TPS per account).
    pub create_group_rate: f64,
}

/// What happened to a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Events CloudWatch accepted.
    pub accepted: u64,
    /// Events dropped, with the reason (all were dead-lettered).
    pub dropped: Vec<(DropReason, u64)>,
    /// Calls that were retried.
    pub retries: u64,
}

/// Delivery was cancelled (shutdown); the chunk stays in the spool.
#[derive(Debug, thiserror::Error)]
#[error("delivery cancelled by shutdown")]
pub struct Cancelled;

/// The CloudWatch Logs client with the shipper's error policy.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    _private: (),
}

impl CloudWatch {
    /// Build from an SDK client.
    pub fn new(
        _client: aws_sdk_cloudwatchlogs::Client,
        _options: SinkOptions,
        _metrics: Arc<Metrics>,
    ) -> Self {
        unimplemented!("sink::CloudWatch::new")
    }

    /// Deliver one batch. Returns only once every event was accepted or dropped with a
    /// reason; transient failures are retried forever until `cancel` fires.
    pub async fn deliver(
        &self,
        _batch: &Batch,
        _cancel: &CancellationToken,
    ) -> Result<DeliveryReport, Cancelled> {
        unimplemented!("sink::CloudWatch::deliver")
    }
}
