//! Telemetry: typed events that update Prometheus metrics and write structured logs.
//!
//! Every place that loses, drops or retries data reports it through one of the typed
//! functions here, so a drop always carries a reason and is always counted.

mod logging;
mod metrics;

pub use logging::{LogFormat, init_logging};
pub use metrics::{DropReason, LossReason, Metrics, OpenFailure, PutOutcome, SkipReason};
