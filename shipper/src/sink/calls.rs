//! The three CloudWatch calls the sink makes, each bounded by the per-call timeout and
//! cancellation, with the SDK's answer reduced to a [`CallResult`].

use std::time::Duration;

use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use tokio_util::sync::CancellationToken;

use super::classify::{Failure, classify};
use super::rejected::Rejections;
use super::retry::or_cancel;
use super::{Cancelled, CloudWatch};
use crate::route::Destination;
use crate::spool::Event;
use crate::telemetry::Metrics;

/// One call's result, reduced to what the state machine needs.
pub(super) enum CallResult<T> {
    Ok(T),
    Failed { failure: Failure, message: Option<String>, detail: String },
}

impl CloudWatch {
    /// One PutLogEvents call.
    pub(super) async fn put(
        &self,
        dest: &Destination,
        events: &[&Event],
        cancel: &CancellationToken,
    ) -> Result<CallResult<Option<Rejections>>, Cancelled> {
        let log_events = events
            .iter()
            .map(|e| InputLogEvent::builder().timestamp(e.timestamp_ms).message(e.message.clone()).build())
            .collect::<Result<Vec<_>, _>>();
        let log_events = match log_events {
            Ok(v) => v,
            // Only possible if a required field were missing; both are always set.
            Err(err) => {
                return Ok(CallResult::Failed {
                    failure: Failure::Other,
                    message: None,
                    detail: err.to_string(),
                });
            }
        };
        let send = self
            .inner
            .client
            .put_log_events()
            .log_group_name(&dest.group)
            .log_stream_name(&dest.stream)
            .set_log_events(Some(log_events))
            .send();
        Ok(match self.with_timeout(send, cancel).await? {
            Some(Ok(out)) => CallResult::Ok(Rejections::from_info(out.rejected_log_events_info())),
            Some(Err(err)) => failed(&err),
            None => timed_out(self.inner.options.request_timeout),
        })
    }

    /// One CreateLogStream call; "already exists" is success.
    pub(super) async fn create_stream(
        &self,
        dest: &Destination,
        cancel: &CancellationToken,
    ) -> Result<CallResult<()>, Cancelled> {
        let send = self
            .inner
            .client
            .create_log_stream()
            .log_group_name(&dest.group)
            .log_stream_name(&dest.stream)
            .send();
        Ok(match self.with_timeout(send, cancel).await? {
            Some(Ok(_)) => {
                Metrics::add(&self.inner.metrics.streams_created, 1);
                tracing::info!(group = %dest.group, stream = %dest.stream, "log stream created");
                CallResult::Ok(())
            }
            Some(Err(err)) => already_exists_is_ok(failed(&err)),
            None => timed_out(self.inner.options.request_timeout),
        })
    }

    /// One CreateLogGroup call; "already exists" is success.
    pub(super) async fn create_group(
        &self,
        dest: &Destination,
        cancel: &CancellationToken,
    ) -> Result<CallResult<()>, Cancelled> {
        let send = self.inner.client.create_log_group().log_group_name(&dest.group).send();
        Ok(match self.with_timeout(send, cancel).await? {
            Some(Ok(_)) => {
                Metrics::add(&self.inner.metrics.groups_created, 1);
                tracing::info!(group = %dest.group, "log group created");
                CallResult::Ok(())
            }
            Some(Err(err)) => already_exists_is_ok(failed(&err)),
            None => timed_out(self.inner.options.request_timeout),
        })
    }

    /// Await `fut` under the per-call timeout (`None` when it elapsed) unless cancelled.
    pub(super) async fn with_timeout<F: Future>(
        &self,
        fut: F,
        cancel: &CancellationToken,
    ) -> Result<Option<F::Output>, Cancelled> {
        let timeout = self.inner.options.request_timeout;
        if timeout.is_zero() {
            return or_cancel(cancel, fut).await.map(Some);
        }
        or_cancel(cancel, tokio::time::timeout(timeout, fut)).await.map(Result::ok)
    }
}

impl<T> CallResult<T> {
    pub(super) fn map<U>(self, f: impl FnOnce(T) -> U) -> CallResult<U> {
        match self {
            CallResult::Ok(t) => CallResult::Ok(f(t)),
            CallResult::Failed { failure, message, detail } => {
                CallResult::Failed { failure, message, detail }
            }
        }
    }
}

pub(super) fn failed<T, E>(err: &SdkError<E, HttpResponse>) -> CallResult<T>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    CallResult::Failed {
        failure: classify(err),
        message: err.message().map(str::to_owned),
        detail: DisplayErrorContext(err).to_string(),
    }
}

pub(super) fn timed_out<T>(after: Duration) -> CallResult<T> {
    CallResult::Failed {
        failure: Failure::Network,
        message: None,
        detail: format!("no answer within {after:?}"),
    }
}

pub(super) fn already_exists_is_ok(result: CallResult<()>) -> CallResult<()> {
    match result {
        CallResult::Failed { failure: Failure::AlreadyExists, .. } => CallResult::Ok(()),
        other => other,
    }
}
