//! The CloudWatch calls the sink makes, each bounded by the per-call timeout and
//! cancellation, with the SDK's answer reduced to a [`CallResult`].

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::{InputLogEvent, LogGroupClass as SdkLogGroupClass};
use tokio_util::sync::CancellationToken;

use super::classify::{Failure, classify};
use super::rejected::Rejections;
use super::retry::or_cancel;
use super::{Cancelled, CloudWatch};
use crate::config::GroupSettings;
use crate::route::Destination;
use crate::spool::Event;
use crate::telemetry::Metrics;

/// One call's result, reduced to what the state machine needs.
pub(super) enum CallResult<T> {
    Ok(T),
    Failed { failure: Failure, message: Option<String>, detail: String, denied: bool },
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
                    denied: false,
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

    /// One CreateLogGroup call carrying the group's class, KMS key and (unless `with_tags`
    /// is false) tags. `Ok(true)`: created now; `Ok(false)`: it already existed.
    pub(super) async fn create_group(
        &self,
        dest: &Destination,
        settings: &GroupSettings,
        with_tags: bool,
        cancel: &CancellationToken,
    ) -> Result<CallResult<bool>, Cancelled> {
        let mut request = self.inner.client.create_log_group().log_group_name(&dest.group);
        if let Some(key) = &settings.kms_key_id {
            request = request.kms_key_id(key);
        }
        if let Some(class) = settings.log_group_class {
            request = request.log_group_class(SdkLogGroupClass::from(class.as_str()));
        }
        if with_tags && !settings.tags.is_empty() {
            request = request.set_tags(Some(settings.tags.clone().into_iter().collect::<HashMap<_, _>>()));
        }
        Ok(match self.with_timeout(request.send(), cancel).await? {
            Some(Ok(_)) => {
                Metrics::add(&self.inner.metrics.groups_created, 1);
                tracing::info!(group = %dest.group, retention_days = ?settings.retention_days,
                    class = ?settings.log_group_class, kms = settings.kms_key_id.is_some(),
                    tags = if with_tags { settings.tags.len() } else { 0 }, "log group created");
                CallResult::Ok(true)
            }
            Some(Err(err)) => match failed(&err) {
                CallResult::Failed { failure: Failure::AlreadyExists, .. } => CallResult::Ok(false),
                other => other,
            },
            None => timed_out(self.inner.options.request_timeout),
        })
    }

    /// One PutRetentionPolicy call.
    pub(super) async fn put_retention(
        &self,
        group: &str,
        days: u32,
        cancel: &CancellationToken,
    ) -> Result<CallResult<()>, Cancelled> {
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        let send =
            self.inner.client.put_retention_policy().log_group_name(group).retention_in_days(days).send();
        Ok(match self.with_timeout(send, cancel).await? {
            Some(Ok(_)) => {
                tracing::info!(group, retention_days = days, "log group retention set");
                CallResult::Ok(())
            }
            Some(Err(err)) => failed(&err),
            None => timed_out(self.inner.options.request_timeout),
        })
    }

    /// The retention `group` has now: `Ok(None)` when the group does not exist,
    /// `Ok(Some(None))` for "never expire".
    pub(super) async fn describe_retention(
        &self,
        group: &str,
        cancel: &CancellationToken,
    ) -> Result<CallResult<Option<Option<i32>>>, Cancelled> {
        // The prefix may match other groups too; the exact name is picked from the page.
        // One page of 50 is enough unless 50 groups share this name as a prefix and sort
        // before it, which the exact name never does (it sorts first among its extensions).
        let send = self.inner.client.describe_log_groups().log_group_name_prefix(group).limit(50).send();
        Ok(match self.with_timeout(send, cancel).await? {
            Some(Ok(out)) => CallResult::Ok(
                out.log_groups()
                    .iter()
                    .find(|g| g.log_group_name() == Some(group))
                    .map(|g| g.retention_in_days()),
            ),
            Some(Err(err)) => failed(&err),
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
            CallResult::Failed { failure, message, detail, denied } => {
                CallResult::Failed { failure, message, detail, denied }
            }
        }
    }
}

pub(super) fn failed<T, E>(err: &SdkError<E, HttpResponse>) -> CallResult<T>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // AccessDenied is a credentials failure for data calls, but for a group setting it means
    // "the policy lacks this action": the setting is skipped, the data goes on.
    let denied = err.code().is_some_and(|c| c.rsplit('#').next() == Some("AccessDeniedException"));
    CallResult::Failed {
        failure: classify(err),
        message: err.message().map(str::to_owned),
        detail: DisplayErrorContext(err).to_string(),
        denied,
    }
}

pub(super) fn timed_out<T>(after: Duration) -> CallResult<T> {
    CallResult::Failed {
        failure: Failure::Network,
        message: None,
        detail: format!("no answer within {after:?}"),
        denied: false,
    }
}

pub(super) fn already_exists_is_ok(result: CallResult<()>) -> CallResult<()> {
    match result {
        CallResult::Failed { failure: Failure::AlreadyExists, .. } => CallResult::Ok(()),
        other => other,
    }
}
