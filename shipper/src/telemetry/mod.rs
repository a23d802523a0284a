//! Telemetry: typed events that update Prometheus metrics and write structured logs.
//!
//! Every place that loses, drops or retries data, and every PutLogEvents answer, is one typed
//! event ([`InternalEvent`]) that counts and logs in one place, so a drop always carries a
//! reason, is always counted, and says whether it was intended.

mod events;
mod logging;
mod metrics;

pub use events::{
    CallRetried, DeadLetterWriteRetried, EmptyLineDropped, EventKind, EventsRejected, InternalEvent,
    PutAnswered, SourceLost, SourceOpenFailed, SourceSkipped, SpoolEventsLost, UnroutableFile,
};
pub use logging::{LogFormat, init_logging};
pub use metrics::{DropReason, LossReason, Metrics, OpenFailure, PutOutcome, SkipReason};
