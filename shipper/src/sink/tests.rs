//! `deliver` against the in-process fake CloudWatch: the error policy end to end.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::testing::{FakeCloudWatch, Fault, Op, RejectStyle, fast_options};
use super::*;

const GROUP: &str = "k8s_test_default_app_main";
const STREAM: &str = "pod-1_main";
const DAY_MS: i64 = 24 * 3600 * 1000;

fn options(dir: &Path) -> SinkOptions {
    fast_options(dir, GroupOptions::default())
}

fn sink(url: &str, dir: &Path) -> (CloudWatch, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let client = client_for_endpoint(url, "us-east-1", Duration::from_secs(10));
    (CloudWatch::new(client, options(dir), Arc::clone(&metrics)), metrics)
}

fn batch(events: &[(i64, &str)]) -> Batch {
    Batch {
        dest: Arc::new(Destination { group: GROUP.into(), stream: STREAM.into() }),
        events: events.iter().map(|&(timestamp_ms, m)| Event { timestamp_ms, message: m.into() }).collect(),
    }
}

fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// `n` events one millisecond apart, starting a minute ago, messages `e0`, `e1`...
fn recent(n: usize) -> Vec<(i64, String)> {
    let start = now_ms() - 60_000;
    (0..n).map(|i| (start + i as i64, format!("e{i}"))).collect()
}

fn as_refs(events: &[(i64, String)]) -> Vec<(i64, &str)> {
    events.iter().map(|(t, m)| (*t, m.as_str())).collect()
}

fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(dir.join(DEAD_LETTER_FILE)) {
        Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Fail the test instead of hanging if a retry loop never ends.
async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut).await.expect("deliver did not finish")
}

#[tokio::test]
async fn happy_path_is_one_call_and_events_are_sent_sorted() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let t = now_ms() - 1000;
    // Out of order, with a tie whose spool order must be kept.
    let b = batch(&[(t + 3, "c"), (t + 1, "a"), (t + 2, "b1"), (t + 2, "b2")]);

    let report = bounded(cw.deliver(&b, &CancellationToken::new())).await.unwrap();

    assert_eq!(report, DeliveryReport { accepted: 4, dropped: vec![], retries: 0 });
    assert_eq!(fake.calls(), vec![Op::PutLogEvents]);
    let stored: Vec<_> = fake.stored(GROUP, STREAM).into_iter().map(|(_, m)| m).collect();
    assert_eq!(stored, ["a", "b1", "b2", "c"]);
    assert_eq!(metrics.put_requests_total(PutOutcome::Ok), 1);
    assert_eq!(metrics.events_delivered.load(std::sync::atomic::Ordering::Relaxed), 4);
}

#[tokio::test]
async fn throttling_is_retried_and_events_are_delivered_once() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.fail_next(Op::PutLogEvents, Fault::Throttle, 3);
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let events = recent(5);

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    assert_eq!(report.accepted, 5);
    assert_eq!(report.retries, 3);
    assert_eq!(metrics.retries.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(metrics.put_requests_total(PutOutcome::Throttled), 3);
    assert_eq!(metrics.put_requests_total(PutOutcome::Ok), 1);
    assert_eq!(fake.stored(GROUP, STREAM), events);
}

#[tokio::test]
async fn throttled_puts_stretch_the_flush_interval_and_other_failures_do_not() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let pace = Arc::new(Pace::new(Duration::from_millis(200), Duration::from_secs(30)));
    let options = SinkOptions { pace: pace.clone(), ..options(dir.path()) };
    let client = client_for_endpoint(&fake.url, "us-east-1", Duration::from_secs(10));
    let cw = CloudWatch::new(client, options, metrics.clone());

    fake.fail_next(Op::PutLogEvents, Fault::Unavailable, 3);
    bounded(cw.deliver(&batch(&as_refs(&recent(2))), &CancellationToken::new())).await.unwrap();
    assert_eq!(pace.interval(), Duration::from_millis(200), "a 503 is not the shared quota");

    fake.fail_next(Op::PutLogEvents, Fault::Throttle, 3);
    let started = std::time::Instant::now();
    bounded(cw.deliver(&batch(&as_refs(&recent(2))), &CancellationToken::new())).await.unwrap();
    let stretched = pace.interval();
    // Each throttled answer stretches by 1.5-2.5x at most once per interval, and a throttled
    // call waits about one stretched interval (at least half) before it is tried again.
    assert!(stretched >= Duration::from_millis(300), "{stretched:?}");
    assert!(stretched <= Duration::from_millis(200).mul_f64(2.5f64.powi(3)), "{stretched:?}");
    assert!(started.elapsed() >= Duration::from_millis(150), "retried after {:?}", started.elapsed());
    let exported = format!("shipper_flush_interval_seconds {}", stretched.as_millis() as f64 / 1000.0);
    assert!(metrics.render().lines().any(|l| l == exported), "{exported} not in /metrics");
}

#[tokio::test]
async fn service_unavailable_is_retried() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.fail_next(Op::PutLogEvents, Fault::Unavailable, 2);
    fake.fail_next(
        Op::PutLogEvents,
        Fault::Error { status: 500, kind: "InternalFailure", message: "oops" },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let events = recent(3);

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    assert_eq!((report.accepted, report.retries), (3, 3));
    assert_eq!(metrics.put_requests_total(PutOutcome::ServerError), 3);
    assert_eq!(fake.stored(GROUP, STREAM), events);
}

#[tokio::test]
async fn connection_refused_is_retried_until_the_service_is_up() {
    // Reserve a port, then free it: connections are refused until the fake binds it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&format!("http://{addr}"), dir.path());
    let events = recent(2);
    let starter = {
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            while metrics.put_requests_total(PutOutcome::Network) < 3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let fake = FakeCloudWatch::start_on(addr).await;
            fake.with_stream(GROUP, Some(STREAM));
            fake
        })
    };

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    let fake = starter.await.unwrap();
    assert_eq!(report.accepted, 2);
    assert!(metrics.put_requests_total(PutOutcome::Network) >= 3);
    assert_eq!(report.retries, metrics.put_requests_total(PutOutcome::Network));
    assert_eq!(fake.stored(GROUP, STREAM), events);
}

#[tokio::test]
async fn missing_group_and_stream_are_created_in_order_then_resent() {
    let fake = FakeCloudWatch::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let events = recent(2);

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    assert_eq!(report.accepted, 2);
    assert_eq!(
        fake.calls(),
        vec![
            Op::PutLogEvents,
            Op::CreateLogStream,
            Op::CreateLogGroup,
            Op::CreateLogStream,
            Op::PutLogEvents
        ]
    );
    assert_eq!(metrics.groups_created.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(metrics.streams_created.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(metrics.put_requests_total(PutOutcome::NotFound), 1);
    assert_eq!(fake.stored(GROUP, STREAM), events);

    // The stream is now known: the next batch is one call.
    let more = recent(1);
    bounded(cw.deliver(&batch(&as_refs(&more)), &CancellationToken::new())).await.unwrap();
    assert_eq!(fake.calls().len(), 6);
}

#[tokio::test]
async fn already_exists_from_a_racing_agent_counts_as_created() {
    let fake = FakeCloudWatch::start().await;
    // The group is missing; by the time we create them, another agent has created both.
    fake.fail_next(
        Op::CreateLogStream,
        Fault::Error {
            status: 400,
            kind: "ResourceNotFoundException",
            message: "The specified log group does not exist.",
        },
        1,
    );
    fake.fail_next(Op::CreateLogGroup, Fault::CreatedByAnotherAgent, 1);
    fake.fail_next(Op::CreateLogStream, Fault::CreatedByAnotherAgent, 1);
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let events = recent(1);

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    assert_eq!(report.accepted, 1);
    assert_eq!(
        fake.calls(),
        vec![
            Op::PutLogEvents,
            Op::CreateLogStream,
            Op::CreateLogGroup,
            Op::CreateLogStream,
            Op::PutLogEvents
        ]
    );
    assert_eq!(metrics.groups_created.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(metrics.streams_created.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(fake.stored(GROUP, STREAM), events);
}

#[tokio::test]
async fn throttled_creates_are_retried_without_ending_delivery() {
    let fake = FakeCloudWatch::start().await;
    fake.fail_next(Op::CreateLogGroup, Fault::Throttle, 2);
    fake.fail_next(Op::CreateLogStream, Fault::Unavailable, 1);
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let events = recent(3);

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    assert_eq!(report.accepted, 3);
    assert_eq!(metrics.groups_created.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(fake.stored(GROUP, STREAM), events);
    // PutLogEvents was answered only twice: NotFound, then Ok.
    assert_eq!(metrics.put_requests_total(PutOutcome::NotFound), 1);
    assert_eq!(metrics.put_requests_total(PutOutcome::Ok), 1);
}

#[tokio::test]
async fn a_poisoned_event_is_isolated_by_bisection_and_dead_lettered() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.poison("e5");
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let events = recent(11);

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    assert_eq!(report.accepted, 10);
    assert_eq!(report.dropped, vec![(DropReason::Invalid, 1)]);
    assert_eq!(metrics.dropped_total(DropReason::Invalid), 1);
    let good: Vec<_> = events.iter().filter(|(_, m)| m != "e5").cloned().collect();
    assert_eq!(fake.stored(GROUP, STREAM), good, "the rest arrive once, in order");
    let letters = dead_letters(dir.path());
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["reason"], "invalid");
    assert_eq!(letters[0]["message"], "e5");
    assert_eq!(letters[0]["timestamp"], events[5].0);
    assert_eq!(letters[0]["group"], GROUP);
    assert_eq!(letters[0]["stream"], STREAM);
}

#[tokio::test]
async fn an_invalid_stream_name_dead_letters_the_batch_instead_of_blocking() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, None);
    fake.fail_next(
        Op::CreateLogStream,
        Fault::Error {
            status: 400,
            kind: "InvalidParameterException",
            message: "1 validation error detected: Value at 'logStreamName' failed to satisfy constraint",
        },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let (cw, _metrics) = sink(&fake.url, dir.path());
    let events = recent(4);

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    assert_eq!(report.accepted, 0);
    assert_eq!(report.dropped, vec![(DropReason::Invalid, 4)]);
    assert_eq!(dead_letters(dir.path()).len(), 4);
}

#[tokio::test]
async fn legacy_data_already_accepted_counts_as_delivered() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.fail_next(
        Op::PutLogEvents,
        Fault::Error { status: 400, kind: "DataAlreadyAcceptedException", message: "dup" },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let (cw, _metrics) = sink(&fake.url, dir.path());

    let report = bounded(cw.deliver(&batch(&as_refs(&recent(3))), &CancellationToken::new())).await.unwrap();

    assert_eq!(report, DeliveryReport { accepted: 3, dropped: vec![], retries: 0 });
    assert_eq!(fake.calls(), vec![Op::PutLogEvents]);
}

/// 2 too old, 1 expired (retention 1 day), 3 fine, 2 too new.
fn mixed_ages() -> Vec<(i64, String)> {
    let now = now_ms();
    [
        (now - 30 * DAY_MS, "old-1"),
        (now - 20 * DAY_MS, "old-2"),
        (now - 3 * DAY_MS, "expired-1"),
        (now - 3_000, "ok-1"),
        (now - 2_000, "ok-2"),
        (now - 1_000, "ok-3"),
        (now + 5 * 3600 * 1000, "new-1"),
        (now + 6 * 3600 * 1000, "new-2"),
    ]
    .into_iter()
    .map(|(t, m)| (t, m.to_owned()))
    .collect()
}

async fn deliver_mixed_ages(style: RejectStyle) -> (DeliveryReport, Vec<serde_json::Value>, Vec<String>) {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.rejections(style, Some(DAY_MS));
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let mut events = mixed_ages();
    events.reverse(); // the sink must sort before the indices mean anything

    let report = bounded(cw.deliver(&batch(&as_refs(&events)), &CancellationToken::new())).await.unwrap();

    for (reason, n) in &report.dropped {
        assert_eq!(metrics.dropped_total(*reason), *n);
    }
    let stored = fake.stored(GROUP, STREAM).into_iter().map(|(_, m)| m).collect();
    (report, dead_letters(dir.path()), stored)
}

#[tokio::test]
async fn documented_rejections_are_counted_per_reason_and_dead_lettered() {
    let (report, letters, stored) = deliver_mixed_ages(RejectStyle::Aws).await;

    assert_eq!(report.accepted, 3);
    assert_eq!(
        report.dropped,
        vec![(DropReason::TooOld, 2), (DropReason::TooNew, 2), (DropReason::Expired, 1)]
    );
    assert_eq!(stored, ["ok-1", "ok-2", "ok-3"]);
    insta::assert_yaml_snapshot!(letters, {
        "[].at" => "[at]",
        "[].timestamp" => "[timestamp]",
    });
}

#[tokio::test]
async fn moto_style_rejections_lose_nothing() {
    let (report, letters, stored) = deliver_mixed_ages(RejectStyle::Moto).await;

    // moto has no retention check: the "expired" event is stored and counted delivered.
    assert_eq!(report.accepted, 4);
    assert_eq!(report.dropped, vec![(DropReason::TooOld, 2), (DropReason::TooNew, 2)]);
    assert_eq!(stored, ["expired-1", "ok-1", "ok-2", "ok-3"]);
    let dead: Vec<_> = letters.iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(dead, ["old-1", "old-2", "new-1", "new-2"]);
}

#[tokio::test]
async fn cancellation_ends_endless_throttling() {
    let fake = FakeCloudWatch::start().await;
    fake.fail_always(Fault::Throttle);
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());
    let cancel = CancellationToken::new();
    {
        let (cancel, metrics) = (cancel.clone(), Arc::clone(&metrics));
        tokio::spawn(async move {
            while metrics.put_requests_total(PutOutcome::Throttled) < 5 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cancel.cancel();
        });
    }

    let result = bounded(cw.deliver(&batch(&as_refs(&recent(2))), &cancel)).await;

    assert!(matches!(result, Err(Cancelled)));
    assert!(metrics.put_requests_total(PutOutcome::Throttled) >= 5);
    assert_eq!(metrics.events_delivered.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(dead_letters(dir.path()).is_empty());
}

#[tokio::test]
async fn an_empty_batch_makes_no_call() {
    let fake = FakeCloudWatch::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cw, _metrics) = sink(&fake.url, dir.path());
    let report = cw.deliver(&batch(&[]), &CancellationToken::new()).await.unwrap();
    assert_eq!(report, DeliveryReport::default());
    assert!(fake.calls().is_empty());
}

/// A credentials chain that finds nothing (no env, no IRSA, no IMDS).
#[derive(Debug)]
struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded("test: none"),
        ))
    }
}

#[tokio::test]
async fn missing_credentials_are_retried_as_credentials_failures_until_cancelled() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatchlogs::config::Region::new("us-east-1"))
        .endpoint_url(&fake.url)
        .credentials_provider(NoCredentials)
        .retry_config(aws_sdk_cloudwatchlogs::config::retry::RetryConfig::disabled())
        .build();
    let cw = CloudWatch::new(
        aws_sdk_cloudwatchlogs::Client::from_conf(config),
        options(dir.path()),
        Arc::clone(&metrics),
    );
    let cancel = CancellationToken::new();
    {
        let (cancel, metrics) = (cancel.clone(), Arc::clone(&metrics));
        tokio::spawn(async move {
            while metrics.put_requests_total(PutOutcome::Credentials) < 3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cancel.cancel();
        });
    }

    let result = bounded(cw.deliver(&batch(&as_refs(&recent(1))), &cancel)).await;

    assert!(matches!(result, Err(Cancelled)));
    assert!(metrics.put_requests_total(PutOutcome::Credentials) >= 3);
    assert_eq!(metrics.put_requests_total(PutOutcome::Network), 0);
    assert!(fake.calls().is_empty(), "nothing is sent unsigned");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out_and_is_retried() {
    // Accepts connections and never answers (the gateway's "blackhole").
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let mut opts = options(dir.path());
    opts.request_timeout = Duration::from_millis(20);
    let cw = CloudWatch::new(
        client_for_endpoint(&url, "us-east-1", Duration::from_secs(60)),
        opts,
        Arc::clone(&metrics),
    );
    let cancel = CancellationToken::new();
    {
        let (cancel, metrics) = (cancel.clone(), Arc::clone(&metrics));
        tokio::spawn(async move {
            while metrics.put_requests_total(PutOutcome::Network) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cancel.cancel();
        });
    }

    let result = bounded(cw.deliver(&batch(&as_refs(&recent(1))), &cancel)).await;

    assert!(matches!(result, Err(Cancelled)));
    assert!(metrics.put_requests_total(PutOutcome::Network) >= 2);
    assert!(metrics.retries.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

#[tokio::test]
async fn a_destination_that_keeps_failing_gives_way_after_the_allowed_failures() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.fail_always(Fault::Error { status: 400, kind: "AccessDeniedException", message: "denied" });
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path());

    let delivery =
        bounded(cw.deliver_or_defer(&batch(&as_refs(&recent(2))), &CancellationToken::new(), Some(3)))
            .await
            .unwrap();

    let Delivery::Deferred { retries, .. } = delivery else {
        panic!("expected a deferral, got {delivery:?}")
    };
    assert_eq!(retries, 3);
    assert_eq!(fake.calls(), vec![Op::PutLogEvents; 3]);
    assert!(fake.stored(GROUP, STREAM).is_empty());
    assert_eq!(metrics.events_delivered.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(dead_letters(dir.path()).is_empty(), "a deferral drops nothing");
}

#[tokio::test]
async fn fewer_failures_than_allowed_are_retried_in_place() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.fail_next(Op::PutLogEvents, Fault::Unavailable, 2);
    let dir = tempfile::tempdir().unwrap();
    let (cw, _metrics) = sink(&fake.url, dir.path());
    let events = recent(3);

    let delivery =
        bounded(cw.deliver_or_defer(&batch(&as_refs(&events)), &CancellationToken::new(), Some(3)))
            .await
            .unwrap();

    assert_eq!(delivery, Delivery::Done(DeliveryReport { accepted: 3, dropped: vec![], retries: 2 }));
    assert_eq!(fake.stored(GROUP, STREAM), events);
}

/// A stream PutLogEvents keeps not finding right after CreateLogStream said it exists (a
/// janitor deleting it, a lagging service) is a failure that backs off and gives way, not a
/// loop between the two calls with no sleep.
#[tokio::test]
async fn a_stream_that_stays_missing_backs_off_instead_of_spinning() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    let missing = Fault::Error {
        status: 400,
        kind: "ResourceNotFoundException",
        message: "The specified log stream does not exist.",
    };
    fake.fail_next(Op::PutLogEvents, missing, 40);
    let dir = tempfile::tempdir().unwrap();
    let (cw, _metrics) = sink(&fake.url, dir.path());

    let delivery =
        bounded(cw.deliver_or_defer(&batch(&as_refs(&recent(2))), &CancellationToken::new(), Some(3)))
            .await
            .unwrap();

    let Delivery::Deferred { .. } = delivery else {
        panic!("expected a deferral after 3 failures, got {delivery:?} after {:?}", fake.calls())
    };
    let puts = fake.calls().iter().filter(|op| **op == Op::PutLogEvents).count();
    // The first "not found" is a new stream (create at once); the next three are failures.
    assert_eq!(puts, 4, "{:?}", fake.calls());
    assert!(dead_letters(dir.path()).is_empty(), "a deferral drops nothing");
}
