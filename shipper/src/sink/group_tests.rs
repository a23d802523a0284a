//! Log-group settings against the fake CloudWatch: what CreateLogGroup carries, the
//! retention that follows it, denials that never stop the data, `retention_apply = always`
//! and `create_groups = false`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::testing::{FakeCloudWatch, Fault, Op, fast_options};
use super::*;
use crate::config::{GroupPolicy, GroupSettings, LogGroupClass, RetentionApply};

const GROUP: &str = "k8s_test_default_app_main";
const STREAM: &str = "pod-1_main";

fn settings() -> GroupSettings {
    GroupSettings {
        retention_days: Some(14),
        log_group_class: Some(LogGroupClass::InfrequentAccess),
        kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/abc".into()),
        tags: BTreeMap::from([("team".into(), "platform".into())]),
    }
}

fn sink(url: &str, dir: &Path, groups: GroupOptions) -> (CloudWatch, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let client = client_for_endpoint(url, "us-east-1", Duration::from_secs(10));
    let options = fast_options(dir, groups);
    (CloudWatch::new(client, options, Arc::clone(&metrics)), metrics)
}

fn options(settings: GroupSettings) -> GroupOptions {
    GroupOptions { policy: Arc::new(GroupPolicy::uniform(settings)), ..GroupOptions::default() }
}

fn batch(stream: &str, n: usize) -> Batch {
    let now = unix_ms(SystemTime::now());
    Batch {
        dest: Arc::new(Destination { group: GROUP.into(), stream: stream.into() }),
        events: (0..n).map(|i| Event { timestamp_ms: now + i as i64, message: format!("m{i}") }).collect(),
    }
}

async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut).await.expect("finishes in time")
}

#[tokio::test]
async fn a_created_group_carries_class_key_and_tags_then_gets_its_retention() {
    let fake = FakeCloudWatch::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cw, metrics) = sink(&fake.url, dir.path(), options(settings()));
    let report = bounded(cw.deliver(&batch(STREAM, 3), &CancellationToken::new())).await.unwrap();
    assert_eq!(report.accepted, 3);
    let got = fake.group_settings(GROUP).expect("group created");
    assert_eq!(got["logGroupClass"], json!("INFREQUENT_ACCESS"));
    assert_eq!(got["kmsKeyId"], json!("arn:aws:kms:us-east-1:123456789012:key/abc"));
    assert_eq!(got["tags"], json!({"team": "platform"}));
    assert_eq!(got["retentionInDays"], json!(14));
    assert_eq!(
        fake.calls(),
        vec![
            Op::PutLogEvents,
            Op::CreateLogStream,
            Op::CreateLogGroup,
            Op::PutRetentionPolicy,
            Op::CreateLogStream,
            Op::PutLogEvents
        ]
    );
    assert_eq!(metrics.group_settings_denied.get("retention"), 0);
}

#[tokio::test]
async fn a_throttled_retention_is_retried_not_lost() {
    let fake = FakeCloudWatch::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.fail_next(Op::PutRetentionPolicy, Fault::Throttle, 2);
    fake.fail_next(Op::PutRetentionPolicy, Fault::Unavailable, 2);
    let (cw, _) = sink(&fake.url, dir.path(), options(settings()));
    let report = bounded(cw.deliver(&batch(STREAM, 2), &CancellationToken::new())).await.unwrap();
    assert_eq!(report.accepted, 2);
    assert_eq!(fake.group_settings(GROUP).unwrap()["retentionInDays"], json!(14));
    assert_eq!(fake.calls().iter().filter(|op| **op == Op::PutRetentionPolicy).count(), 5);
}

#[tokio::test]
async fn a_retention_deferred_with_its_batch_is_applied_on_the_next_attempt() {
    let fake = FakeCloudWatch::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.fail_next(Op::PutRetentionPolicy, Fault::Throttle, 3);
    let (cw, _) = sink(&fake.url, dir.path(), options(settings()));
    let cancel = CancellationToken::new();
    let first = bounded(cw.deliver_or_defer(&batch(STREAM, 2), &cancel, Some(3))).await.unwrap();
    assert!(matches!(first, Delivery::Deferred { .. }), "{first:?}");
    assert!(fake.group_settings(GROUP).unwrap().get("retentionInDays").is_none());
    let second = bounded(cw.deliver_or_defer(&batch(STREAM, 2), &cancel, Some(3))).await.unwrap();
    assert!(matches!(second, Delivery::Done(DeliveryReport { accepted: 2, .. })), "{second:?}");
    assert_eq!(fake.group_settings(GROUP).unwrap()["retentionInDays"], json!(14));
}

#[tokio::test]
async fn denied_retention_and_tags_are_counted_once_per_group_and_the_data_goes_on() {
    let fake = FakeCloudWatch::start().await;
    let dir = tempfile::tempdir().unwrap();
    let denied = Fault::Error { status: 400, kind: "AccessDeniedException", message: "not authorized" };
    fake.fail_next(Op::PutRetentionPolicy, denied.clone(), 1);
    // CreateLogGroup with tags needs logs:TagResource; without it the create is denied.
    fake.fail_next(Op::CreateLogGroup, denied, 1);
    let (cw, metrics) = sink(&fake.url, dir.path(), options(settings()));
    let cancel = CancellationToken::new();
    let report = bounded(cw.deliver(&batch(STREAM, 2), &cancel)).await.unwrap();
    assert_eq!(report.accepted, 2);
    let report = bounded(cw.deliver(&batch("pod-2_main", 2), &cancel)).await.unwrap();
    assert_eq!(report.accepted, 2);
    let got = fake.group_settings(GROUP).expect("created without tags");
    assert!(got.get("tags").is_none(), "{got:?}");
    assert_eq!(got["logGroupClass"], json!("INFREQUENT_ACCESS"));
    assert!(got.get("retentionInDays").is_none());
    assert_eq!(metrics.group_settings_denied.get("retention"), 1);
    assert_eq!(metrics.group_settings_denied.get("tags"), 1);
    assert!(metrics.render().contains("shipper_group_settings_denied_total{setting=\"retention\"} 1"));
}

#[tokio::test]
async fn retention_apply_always_fixes_existing_groups_once_per_process() {
    let fake = FakeCloudWatch::start().await;
    fake.with_stream(GROUP, Some(STREAM));
    fake.with_stream(GROUP, Some("pod-2_main"));
    let dir = tempfile::tempdir().unwrap();
    let mut groups = options(settings());
    let (cw, _) = sink(&fake.url, dir.path(), groups.clone());
    bounded(cw.deliver(&batch(STREAM, 1), &CancellationToken::new())).await.unwrap();
    // `created` (the default) leaves groups it did not create alone.
    assert!(fake.group_settings(GROUP).unwrap().get("retentionInDays").is_none());

    groups.retention_apply = RetentionApply::Always;
    let (cw, _) = sink(&fake.url, dir.path(), groups);
    let cancel = CancellationToken::new();
    bounded(cw.deliver(&batch(STREAM, 1), &cancel)).await.unwrap();
    bounded(cw.deliver(&batch("pod-2_main", 1), &cancel)).await.unwrap();
    assert_eq!(fake.group_settings(GROUP).unwrap()["retentionInDays"], json!(14));
    let calls = fake.calls();
    assert_eq!(calls.iter().filter(|op| **op == Op::DescribeLogGroups).count(), 1, "{calls:?}");
    assert_eq!(calls.iter().filter(|op| **op == Op::PutRetentionPolicy).count(), 1, "{calls:?}");
}

#[tokio::test]
async fn without_create_groups_a_missing_group_blocks_only_its_stream_until_it_exists() {
    let fake = FakeCloudWatch::start().await;
    let dir = tempfile::tempdir().unwrap();
    let groups = GroupOptions { create_groups: false, ..options(settings()) };
    let (cw, metrics) = sink(&fake.url, dir.path(), groups);
    let cancel = CancellationToken::new();
    let missing = batch(STREAM, 2);
    let delivery = bounded(cw.deliver_or_defer(&missing, &cancel, Some(3))).await.unwrap();
    assert!(matches!(delivery, Delivery::Deferred { .. }), "{delivery:?}");
    assert_eq!(metrics.streams_blocked_group_missing.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(!fake.calls().contains(&Op::CreateLogGroup));
    assert!(metrics.render().contains("shipper_streams_blocked{reason=\"group_missing\"} 1"));

    // Another group that exists is unaffected; its stream is created on demand.
    fake.with_stream("other", None);
    let other =
        Batch { dest: Arc::new(Destination { group: "other".into(), stream: "s".into() }), ..batch("s", 1) };
    let report = bounded(cw.deliver(&other, &cancel)).await.unwrap();
    assert_eq!(report.accepted, 1);

    // Someone creates the group: the blocked stream resumes.
    fake.with_stream(GROUP, None);
    let report = bounded(cw.deliver(&missing, &cancel)).await.unwrap();
    assert_eq!(report.accepted, 2);
    assert_eq!(fake.stored(GROUP, STREAM).len(), 2);
    assert_eq!(metrics.streams_blocked_group_missing.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(!fake.calls().contains(&Op::CreateLogGroup));
}

#[tokio::test]
async fn a_retention_pending_at_a_restart_is_applied_by_the_next_process() {
    let fake = FakeCloudWatch::start().await;
    let dir = tempfile::tempdir().unwrap();
    let groups =
        GroupOptions { pending_file: Some(dir.path().join("groups-pending.json")), ..options(settings()) };
    // The first process creates the group, then every PutRetentionPolicy fails until it
    // stops (the batch is deferred, as the dispatcher lets it).
    fake.fail_next(Op::PutRetentionPolicy, Fault::Unavailable, 3);
    let (first, _) = sink(&fake.url, dir.path(), groups.clone());
    let cancel = CancellationToken::new();
    let delivery = bounded(first.deliver_or_defer(&batch(STREAM, 1), &cancel, Some(3))).await.unwrap();
    assert!(matches!(delivery, Delivery::Deferred { .. }), "{delivery:?}");
    drop(first);
    assert!(fake.group_settings(GROUP).unwrap().get("retentionInDays").is_none());

    let (second, _) = sink(&fake.url, dir.path(), groups);
    bounded(second.deliver(&batch(STREAM, 1), &cancel)).await.unwrap();
    assert_eq!(fake.group_settings(GROUP).unwrap()["retentionInDays"], json!(14));
    let saved = std::fs::read_to_string(dir.path().join("groups-pending.json")).unwrap();
    assert_eq!(saved, "[]");
}
